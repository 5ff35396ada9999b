// Unit tests of the sysctl reconciler pieces: value parsing, the event schema, and a manager restart
// (the baseline and container values come back from KV; containers gone meanwhile lower the host).
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { keyByName, parseValue, RECONCILED } from '../../actors/sysctl/keys.ts';
import { SysctlReconciler, type SysctlHost } from '../../actors/sysctl/reconciler.actor.ts';
import { sysctlBaselineKeys } from '../../bus/keys.ts';
import { initialTransition, transition } from 'xstate';
import { sysctlMachine } from '../../statecharts/sysctl.machine.ts';
import { memKv } from '../helpers/mem-kv.ts';
import { validateSysctlEvent } from '../../bus/schemas/v1.ts';
import { envelope } from '../../bus/events.ts';
import { sysctlSubjects } from '../../bus/subjects.ts';
import { subjectFilter } from '../../cli/events.ts';

const baselineKey = sysctlBaselineKeys.key;

function memHost(v: number): SysctlHost & { v: number } {
  const h = { v, async exists() { return true; }, async read() { return h.v; }, async write(_k: unknown, n: number) { h.v = n; } };
  return h;
}
const FM = keyByName('fs.file-max')!;

describe('sysctl values', () => {
  it('accepts one integer in range, with blanks and a newline', () => {
    expect(parseValue(FM, '123\n')).toBe(123);
    expect(parseValue(FM, '  7 ')).toBe(7);
  });
  it.each(['-5\n', '1.5\n', 'abc', '', '1 2', '99999999999999999999', '0x10'])('refuses %j with EINVAL', (t) => {
    expect(() => parseValue(FM, t)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
  it('knows the kernel ranges and FUSE file names', () => {
    expect(() => parseValue(keyByName('fs.nr_open')!, '63')).toThrow(/outside/);
    expect(RECONCILED.map((k) => k.file)).toEqual(['sys-fs-file-max', 'sys-fs-nr-open', 'sys-net-netfilter-nf-conntrack-max']);
    expect(sysctlSubjects.written('net.netfilter.nf_conntrack_max')).toBe('eci.v1.evt.sysctl.net-netfilter-nf_conntrack_max.written');
  });
  it('eci events --kind sysctl follows both sysctl event types', () => {
    expect(subjectFilter({ kind: 'sysctl' })).toBe('eci.v1.evt.sysctl.>');
  });
  it('validates sysctl.written events', () => {
    expect(validateSysctlEvent(envelope('sysctl.written', { key: 'fs.file-max', old: 1, new: 2, container: 'a' })).data.new).toBe(2);
    expect(() => validateSysctlEvent(envelope('sysctl.written', { key: 'fs.file-max', old: 1, new: 1.5, container: 'a' }))).toThrow(/new/);
  });
});

describe('SysctlReconciler', () => {
  it('answers bad requests without touching the host', async () => {
    const host = memHost(100);
    const r = new SysctlReconciler({ kv: memKv(), host, keys: [FM], log: pino({ level: 'silent' }), publish: async () => {} });
    await r.start();
    expect(await r.set('a', 'fs.file-max', -1)).toMatchObject({ ok: false, code: 'EINVAL' });
    expect(await r.set('a', 'kernel.pid_max', 5)).toMatchObject({ ok: false, code: 'ENOENT' });
    await r.settled();
    expect(host.v).toBe(100);
    r.stop();
  });

  it('refuses a set for a container id the manager does not know (a made-up id never holds the host up)', async () => {
    const host = memHost(100);
    const r = new SysctlReconciler({ kv: memKv(), host, keys: [FM], log: pino({ level: 'silent' }), publish: async () => {}, isLive: (id) => id === 'live1' });
    expect(await r.set('made-up', 'fs.file-max', 5000)).toMatchObject({ ok: false, code: 'EPERM' });
    expect(await r.set('live1', 'fs.file-max', 5000)).toEqual({ ok: true });
    await r.settled();
    expect(host.v).toBe(5000);
    r.stop();
  });

  it('raises the host no higher than the ceiling, whatever a container sets', async () => {
    const host = memHost(100);
    let ceilings: Record<string, number> = { 'fs.file-max': 1000 };
    const r = new SysctlReconciler({ kv: memKv(), host, keys: [FM], log: pino({ level: 'silent' }), publish: async () => {}, ceilings: () => ceilings });
    await r.start();
    expect(await r.set('a', 'fs.file-max', Number.MAX_SAFE_INTEGER)).toEqual({ ok: true });
    await r.settled();
    expect(host.v).toBe(1000);
    expect(r.valueOf('a', 'fs.file-max')).toBe(1000);
    ceilings = { 'fs.file-max': 2000 }; // a settings reload applies to the next write
    await r.set('b', 'fs.file-max', 1500);
    await r.settled();
    expect(host.v).toBe(1500);
    r.stop();
  });

  it('keeps the baseline across a restart and lowers the host for containers gone meanwhile', async () => {
    const kv = memKv();
    const host = memHost(100);
    const events: unknown[] = [];
    const mk = () => new SysctlReconciler({ kv, host, keys: [FM], log: pino({ level: 'silent' }), publish: async (_s, _t, d) => { events.push(d); } });
    const r1 = mk();
    await r1.start();
    await r1.set('a', 'fs.file-max', 300);
    await r1.set('b', 'fs.file-max', 200);
    await r1.settled();
    expect(host.v).toBe(300);
    r1.stop();
    // the restarted manager reads 300 from the host, but the baseline (100) comes from KV
    const r2 = mk();
    await r2.start();
    await r2.settled();
    expect(r2.context().entries['fs.file-max']).toMatchObject({ baseline: 100, host: 300, containers: { a: 300, b: 200 } });
    r2.retainOnly(['b']);
    await r2.settled();
    expect(host.v).toBe(200);
    r2.gone('b');
    await r2.settled();
    expect(host.v).toBe(100);
    expect(events).toEqual([
      { key: 'fs.file-max', old: 100, new: 300, container: 'a' },
      { key: 'fs.file-max', old: 300, new: 200, container: 'a' },
      { key: 'fs.file-max', old: 200, new: 100, container: 'b' },
    ]);
    r2.stop();
  });

  it('adopts a host value changed outside eci as the new baseline on the next write, with an event', async () => {
    const kv = memKv();
    const host = memHost(100);
    const events: [string, string, unknown][] = [];
    const r = new SysctlReconciler({ kv, host, keys: [FM], log: pino({ level: 'silent' }), publish: async (sub, t, d) => { events.push([sub, t, d]); } });
    await r.start();
    await r.set('a', 'fs.file-max', 300);
    await r.settled();
    host.v = 150; // an admin lowers it while a holds 300
    await r.set('b', 'fs.file-max', 400);
    await r.settled();
    expect(host.v).toBe(400);
    expect(r.context().entries['fs.file-max']).toMatchObject({ baseline: 150, host: 400 });
    expect((await kv.get(baselineKey('fs.file-max')))!.json()).toEqual({ key: 'fs.file-max', baseline: 150, written: 400 });
    host.v = 250; // and raises it again
    r.gone('b');
    r.gone('a');
    await r.settled();
    expect(host.v).toBe(250); // not the stale 100 nor 150
    expect(events.map((e) => e[1])).toEqual(['sysctl.written', 'sysctl.baseline', 'sysctl.written', 'sysctl.baseline']);
    expect(events[1]).toEqual([sysctlSubjects.baseline('fs.file-max'), 'sysctl.baseline', { key: 'fs.file-max', old: 100, new: 150, container: 'host' }]);
    expect(events[2][2]).toEqual({ key: 'fs.file-max', old: 150, new: 400, container: 'b' });
    expect(events[3][2]).toEqual({ key: 'fs.file-max', old: 150, new: 250, container: 'host' });
    for (const e of events) expect(validateSysctlEvent(envelope(e[1] as 'sysctl.written', e[2] as never)).type).toBe(e[1]);
    r.stop();
  });
});

describe('SysctlReconciler across a restart', () => {
  it('takes a host value changed while no manager ran as the baseline, instead of writing over it', async () => {
    const kv = memKv();
    const host = memHost(100);
    const events: [string, unknown][] = [];
    const mk = () => new SysctlReconciler({ kv, host, keys: [FM], log: pino({ level: 'silent' }), publish: async (_s, t, d) => { events.push([t, d]); } });
    const r1 = mk();
    await r1.start();
    await r1.set('a', 'fs.file-max', 300);
    await r1.settled();
    r1.stop();
    host.v = 500; // the admin, while eci is down
    const r2 = mk();
    await r2.start();
    await r2.settled();
    expect(host.v).toBe(500); // max(500, a's 300): nothing to write
    expect(r2.context().entries['fs.file-max']).toMatchObject({ baseline: 500, host: 500 });
    r2.gone('a');
    await r2.settled();
    expect(host.v).toBe(500); // and a leaving does not bring back the old 100
    expect(events).toEqual([
      ['sysctl.written', { key: 'fs.file-max', old: 100, new: 300, container: 'a' }],
      ['sysctl.baseline', { key: 'fs.file-max', old: 100, new: 500, container: 'host' }],
    ]);
    expect((await kv.get(baselineKey('fs.file-max')))!.json()).toMatchObject({ baseline: 500 });
    r2.stop();
  });
});

describe('SysctlReconciler that never wrote', () => {
  it('at start, takes a host value other than its stored baseline as the new one (it never wrote it)', async () => {
    const kv = memKv();
    await kv.put(baselineKey('fs.file-max'), JSON.stringify({ key: 'fs.file-max', baseline: 100 }));
    const host = memHost(400);
    const events: unknown[] = [];
    const r = new SysctlReconciler({ kv, host, keys: [FM], log: pino({ level: 'silent' }), publish: async (_s, t, d) => { events.push([t, d]); } });
    await r.start();
    await r.settled();
    expect(host.v).toBe(400);
    expect(r.context().entries['fs.file-max'].baseline).toBe(400);
    expect(events).toEqual([['sysctl.baseline', { key: 'fs.file-max', old: 100, new: 400, container: 'host' }]]);
    r.stop();
  });
});

describe('sysctl machine: an outside change', () => {
  it('host.changed in writing: the value becomes baseline and host, the next write follows', () => {
    let [snap, actions] = initialTransition(sysctlMachine);
    [snap] = transition(sysctlMachine, snap, { type: 'restore', entries: { k: { baseline: 100, host: 100 } } });
    [snap, actions] = transition(sysctlMachine, snap, { type: 'container.set', container: 'a', key: 'k', value: 300 });
    expect(snap.value).toBe('writing');
    expect(actions.find((a) => a.type === 'writeHost')?.params).toEqual({ key: 'k', old: 100, new: 300, cause: 'a' });
    [snap, actions] = transition(sysctlMachine, snap, { type: 'host.changed', key: 'k', value: 500 });
    expect(actions.find((a) => a.type === 'saveBaseline')?.params).toEqual({ key: 'k', old: 100, new: 500 });
    expect(snap.context.entries.k).toMatchObject({ baseline: 500, host: 500 });
    expect(snap.value).toBe('ready'); // wanted = max(500, 300) = 500 = host: nothing to write
    expect(actions.some((a) => a.type === 'writeHost')).toBe(false);
    // a host.changed for another key is not ours
    const [other] = transition(sysctlMachine, snap, { type: 'host.changed', key: 'x', value: 1 });
    expect(other.context).toEqual(snap.context);
  });
});
