// Model-based test of the allocator: xstate/graph finds a shortest path to every distinct state
// (held ranges, queue, writes in flight) of a 2-range allocator with three containers, and each path
// is replayed against the real AllocatorActor over an in-memory KV whose writes the test settles.
// The actor's view and the KV must match the model after every path.
import { describe, expect, it } from 'vitest';
import { createTestModel } from 'xstate/graph';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { allocatorMachine, type AllocatorContext } from '../../statecharts/allocator.machine.ts';
import type { AllocationResult, AllocatorEvent } from '../../statecharts/events.ts';
import { AllocatorActor, type RangeRecord } from '../../actors/allocator.actor.ts';
import { rangeKeys } from '../../bus/keys.ts';

const rangeKey = rangeKeys.key;

const CFG = { base: 100000, size: 65536, count: 2 };
const OWNERS = ['a', 'b', 'c'];
const flush = () => new Promise((r) => setImmediate(r));
const keyOf = (e: unknown) => rangeKeys.key((e as { index: number }).index);

function eventsFor(snap: { context: AllocatorContext; value: unknown }): AllocatorEvent[] {
  const c = snap.context;
  if (snap.value === 'loading') return [{ type: 'restore', held: {} }];
  const out: AllocatorEvent[] = [];
  for (const o of OWNERS) out.push({ type: 'allocate', owner: o }, { type: 'free', owner: o });
  for (const [i, owner] of Object.entries(c.pending)) {
    const index = Number(i);
    out.push({ type: 'persisted', owner, index }, { type: 'persist.conflict', owner, index, holder: 'z' },
      { type: 'persist.failed', owner, index, reason: 'disk full' });
  }
  return out;
}

/** In-memory KV with compare-and-set create; each create waits for the test to settle it (by key:
 * several may be in flight). A create is compare-and-set when it starts, as JetStream checks it. */
function fakeKv() {
  const data = new Map<string, string>();
  const pendingCreates = new Map<string, { key: string; value: string; resolve(): void; reject(e: Error): void }>();
  const kv = {
    async keys() { return (async function* () { yield* [...data.keys()]; })(); },
    async get(k: string) {
      const v = data.get(k);
      return v === undefined ? null : { operation: 'PUT', json: () => JSON.parse(v) };
    },
    create(k: string, v: string) {
      return new Promise<number>((resolve, reject) => {
        if (pendingCreates.has(k)) throw new Error(`two creates of ${k} in flight`);
        pendingCreates.set(k, { key: k, value: v, resolve: () => resolve(1), reject });
      });
    },
    async delete(k: string) { data.delete(k); },
  };
  return {
    kv: kv as unknown as KV,
    data,
    settle(key: string, outcome: 'ok' | 'conflict' | 'failed') {
      const p = pendingCreates.get(key)!;
      pendingCreates.delete(key);
      if (outcome === 'ok') { data.set(p.key, p.value); p.resolve(); }
      else if (outcome === 'conflict') { data.set(p.key, JSON.stringify({ owner: 'z' })); p.reject(new Error('wrong last sequence')); }
      else p.reject(new Error('disk full'));
    },
  };
}

describe('allocator model', () => {
  const model = createTestModel(allocatorMachine, { input: CFG } as never);
  const paths = model.getShortestPaths({
    events: eventsFor as never,
    filterEvents: (snap, e) => snap.can(e),
    serializeState: (snap) => JSON.stringify({ v: snap.value, c: snap.context }),
  });

  it('explores exhaustion, conflicts and failures', () => {
    const all = paths.flatMap((p) => p.steps.map((s) => s.state.context as AllocatorContext));
    const finals = all;
    expect(finals.some((c) => Object.keys(c.held).length === CFG.count)).toBe(true);
    expect(finals.some((c) => Object.values(c.held).includes('z'))).toBe(true);
    expect(all.some((c) => c.queue.length > 0 && Object.keys(c.pending).length > 0)).toBe(true);
    expect(all.some((c) => Object.keys(c.pending).length === CFG.count)).toBe(true);
    expect(new Set(all.map((c) => JSON.stringify(c))).size).toBeGreaterThan(20);
  });

  paths.forEach((path, i) => {
    it(`path ${i + 1}: ${path.steps.slice(1).map((s) => `${s.event.type}${'owner' in s.event ? `(${s.event.owner})` : ''}`).join(' > ') || 'start'}`, async () => {
      const k = fakeKv();
      const sut = new AllocatorActor(CFG, {
        nc: { subscribe: () => ({ unsubscribe() {} }) } as unknown as NatsConnection,
        kv: k.kv, publish: async () => {}, log: pino({ level: 'silent' }),
      });
      const answers: AllocationResult[] = [];
      await path.test({
        events: {
          restore: async () => { await sut.start(); },
          allocate: async ({ event }) => { void sut.allocate((event as unknown as { owner: string }).owner).then((r) => answers.push(r)); await flush(); },
          free: async ({ event }) => { sut.free((event as unknown as { owner: string }).owner); await flush(); },
          persisted: async ({ event }) => { k.settle(keyOf(event), 'ok'); await flush(); await flush(); },
          'persist.conflict': async ({ event }) => { k.settle(keyOf(event), 'conflict'); await flush(); await flush(); },
          'persist.failed': async ({ event }) => { k.settle(keyOf(event), 'failed'); await flush(); await flush(); },
        },
        states: {
          '*': async (m) => {
            const ctx = m.context as AllocatorContext;
            await flush();
            expect(sut.held()).toEqual(ctx.held);
            // Every range we hold (not a foreign 'z' entry) is in the KV under its index, owned by its owner.
            for (const [idx, owner] of Object.entries(ctx.held)) {
              if (owner === 'z') continue;
              const rec = JSON.parse(k.data.get(rangeKey(Number(idx)))!) as RangeRecord;
              expect(rec.owner).toBe(owner);
              expect(rec.uid.hostID).toBe(CFG.base + Number(idx) * CFG.size);
            }
            // No two answers ever gave the same index to different live owners.
            const live = answers.filter((a) => a.ok && ctx.held[(a as { index: number }).index] === a.owner);
            expect(new Set(live.map((a) => (a as { index: number }).index)).size).toBe(live.length);
          },
        },
      });
      sut.stop();
    });
  });
});
