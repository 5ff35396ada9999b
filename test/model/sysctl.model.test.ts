// Model-based test of the sysctl reconciler: xstate/graph finds a shortest path to every distinct state
// (container values, host value, pending write, failed write, an admin's outside change) of one reconciled key with two
// containers, and each path is replayed against the real SysctlReconciler over an in-memory KV and a
// fake host file whose writes the test settles. After every step the actor, the host file, the KV and
// the published events must agree with the model.
import { describe, expect, it } from 'vitest';
import { createTestModel } from 'xstate/graph';
import { pino } from 'pino';
import { sysctlMachine, wanted, valuesOf, type SysctlContext, type SysctlEvent } from '../../statecharts/sysctl.machine.ts';
import { SysctlReconciler, type SysctlHost, type SysctlKv } from '../../actors/sysctl/reconciler.actor.ts';
import { sysctlBaselineKeys, sysctlContainerKeys } from '../../bus/keys.ts';
import { keyByName } from '../../actors/sysctl/keys.ts';

const baselineKey = sysctlBaselineKeys.key;
const containerKey = sysctlContainerKeys.key;

const KEY = 'fs.file-max';
const BASE = 100;
const CONTAINERS = ['a', 'b'];
const VALUES = [90, 110, 120];
const ADMIN = 115;
const flush = () => new Promise((r) => setImmediate(r));

function eventsFor(snap: { context: SysctlContext; value: unknown }): SysctlEvent[] {
  if (snap.value === 'loading') return [{ type: 'restore', entries: { [KEY]: { baseline: BASE, host: BASE } } }];
  const out: SysctlEvent[] = [];
  for (const c of CONTAINERS) {
    for (const v of VALUES) out.push({ type: 'container.set', container: c, key: KEY, value: v });
    out.push({ type: 'container.gone', container: c });
  }
  const p = snap.context.pending;
  if (p) {
    out.push({ type: 'host.written', key: p.key, value: p.new }, { type: 'host.failed', key: p.key, reason: 'EPERM' });
    // an admin changed the host value since eci's last write (found by the read before the write)
    if (p.old !== ADMIN) out.push({ type: 'host.changed', key: p.key, value: ADMIN });
  }
  return out;
}

export function fakeKv() {
  const data = new Map<string, string>();
  const kv: SysctlKv = {
    async get(k) { const v = data.get(k); return v === undefined ? null : { operation: 'PUT', json: <T>() => JSON.parse(v) as T }; },
    async put(k, v) { data.set(k, v); },
    async delete(k) { data.delete(k); },
    async keys(filter) {
      const prefix = filter?.replace(/>$/, '') ?? '';
      return (async function* () { yield* [...data.keys()].filter((k) => k.startsWith(prefix)); })();
    },
  };
  return { kv, data };
}

/**
 * A host sysctl file. Once gated (after start), the reconciler's read before each write waits for
 * settle(): 'ok'/'fail' answer the current value and let the write succeed/fail; 'admin' first sets
 * the value as an admin would, so the read finds it changed and nothing is written.
 */
function fakeHost(initial: number) {
  let value = initial;
  let gated = false;
  let failNext = false;
  let pendingRead: (() => void) | undefined;
  const host: SysctlHost = {
    async exists() { return true; },
    read() { return gated ? new Promise((resolve) => { pendingRead = () => resolve(value); }) : Promise.resolve(value); },
    async write(_k, v) {
      if (failNext) { failNext = false; throw Object.assign(new Error('EPERM'), { code: 'EPERM' }); }
      value = v;
    },
  };
  return {
    host,
    value: () => value,
    gate() { gated = true; },
    settle(how: 'ok' | 'fail' | 'admin') {
      const r = pendingRead!;
      pendingRead = undefined;
      if (how === 'admin') value = ADMIN;
      failNext = how === 'fail';
      r();
    },
  };
}

describe('sysctl reconciler model', () => {
  const model = createTestModel(sysctlMachine);
  const paths = model.getShortestPaths({
    events: eventsFor as never,
    filterEvents: (snap, e) => snap.can(e),
    serializeState: (snap) => JSON.stringify({ v: snap.value, c: snap.context }),
  });

  it('explores raises, lowering back, failures, outside changes and writes overtaken by changes', () => {
    const all = paths.flatMap((p) => p.steps.map((s) => s.state.context as SysctlContext));
    const e = (c: SysctlContext) => c.entries[KEY];
    expect(all.some((c) => e(c) && e(c).host === 120)).toBe(true);
    expect(all.some((c) => e(c) && e(c).failed !== undefined)).toBe(true);
    expect(all.some((c) => e(c) && e(c).baseline === ADMIN && c.pending)).toBe(true); // adopted, then written over by a container
    // a write pending while the wanted value already moved elsewhere
    expect(all.some((c) => c.pending && e(c) && wanted(e(c)) !== c.pending.new)).toBe(true);
    expect(paths.length).toBeGreaterThan(50);
  });

  paths.forEach((path, i) => {
    it(`path ${i + 1}: ${path.steps.slice(1).map((s) => `${s.event.type}${'container' in s.event ? `(${s.event.container}${'value' in s.event ? `=${s.event.value}` : ''})` : ''}`).join(' > ') || 'start'}`, async () => {
      const k = fakeKv();
      const h = fakeHost(BASE);
      const published: { subject: string; type: string; data: { key: string; old: number; new: number; container: string } }[] = [];
      const sut = new SysctlReconciler({
        kv: k.kv, host: h.host, log: pino({ level: 'silent' }), keys: [keyByName(KEY)!],
        publish: async (subject, type, data) => { published.push({ subject, type, data: data as never }); },
      });
      let written = 0;
      let adopted = 0;
      await path.test({
        events: {
          restore: async () => { await sut.start(); h.gate(); await flush(); },
          'container.set': async ({ event }) => {
            const ev = event as Extract<SysctlEvent, { type: 'container.set' }>;
            expect(await sut.set(ev.container, ev.key, ev.value)).toEqual({ ok: true });
            await flush();
          },
          'container.gone': async ({ event }) => { sut.gone((event as unknown as { container: string }).container); await flush(); },
          'host.written': async () => { written++; h.settle('ok'); await flush(); await flush(); },
          'host.failed': async () => { h.settle('fail'); await flush(); await flush(); },
          'host.changed': async () => { adopted++; h.settle('admin'); await flush(); await flush(); },
        },
        states: {
          '*': async (m) => {
            const ctx = m.context as SysctlContext;
            await flush();
            expect(sut.context()).toEqual(ctx);
            const e = ctx.entries[KEY];
            if (!e) return;
            expect(h.value()).toBe(e.host);
            expect(JSON.parse(k.data.get(baselineKey(KEY))!).baseline).toBe(e.baseline);
            expect(e.baseline).toBe(adopted ? ADMIN : BASE);
            for (const c of CONTAINERS) {
              const rec = k.data.get(containerKey(c));
              const vals = valuesOf(ctx, c);
              if (Object.keys(vals).length === 0) expect(rec === undefined || JSON.parse(rec).values[KEY] === undefined).toBe(true);
              else expect(JSON.parse(rec!).values).toEqual(vals);
            }
            // every host write is one event, old -> new, with the container that caused it; every
            // adopted outside change one sysctl.baseline event
            expect(published.filter((p) => p.type === 'sysctl.written').length).toBe(written);
            expect(published.filter((p) => p.type === 'sysctl.baseline').length).toBe(adopted);
            for (const p of published) {
              expect(p.subject).toBe(`eci.v1.evt.sysctl.fs-file-max.${p.type === 'sysctl.written' ? 'written' : 'baseline'}`);
              if (p.type === 'sysctl.baseline') expect(p.data).toMatchObject({ new: ADMIN, container: 'host' });
            }
            // settled: the host holds max(baseline, live values), unless that very value failed
            if (!ctx.pending) expect(e.host === wanted(e) || e.failed === wanted(e)).toBe(true);
            else expect(ctx.pending.old).toBe(e.host);
          },
        },
      });
      sut.stop();
    });
  });
});
