// The notification feed over fake native sides: performing, answering and auditing vetted calls
// (moved out of vetter.test.ts, which keeps the pure decisions and the seccomp rules).
import { describe, expect, it } from 'vitest';
import { decide, type VetRequest, type Verdict } from '../../actors/vetter/decide.ts';
import { AUDIT_BATCH_MS, NotifyFeed, type FeedNative } from '../../actors/notify-feed.ts';
import type { AsNotify, AsOutcome } from '../../native/seccomp-agent.ts';
import { fromWire as fromWireV, toWire as toWireV } from '../../actors/vetter.actor.ts';
import { mountAt as mountAtV, parseMountInfo as parseMountInfoV } from '../../actors/mountinfo.ts';
import { readFileSync as readFileSyncV } from 'node:fs';

/**
 * A fake native seccomp side for NotifyFeed: one agent connection (returned `connect`), one listener
 * on fd 42 whose notifications come from `iterate`, answers collected in `responses`.
 */
function fakeSeccomp(responses: unknown[], iterate: () => AsyncGenerator<unknown>, rest: Partial<Record<'mountAs' | 'umountAs' | 'chmodAs', unknown>>) {
  let onConn!: (c: { state: unknown; notifyFd: number | null }) => void;
  const native = {
    serveSeccompAgent: (_p: string, cb: typeof onConn) => ((onConn = cb), { close: async () => {} }),
    listenSeccomp: () => ({ fd: 42, respond: async (_id: bigint, r: unknown) => void responses.push(r), close: async () => {}, [Symbol.asyncIterator]: iterate }),
    mountAs: async () => {}, umountAs: async () => {}, chmodAs: async () => {},
    ...rest,
  } as unknown as FeedNative;
  const connect = () => onConn({ state: { metadata: 'c1', state: { id: 'c1', pid: process.pid } }, notifyFd: 42 });
  return { native, connect };
}

describe('notify feed: setuid/setgid chmods', () => {
  /** A feed over fakes: the vetter answers with decide(), chmodAs calls are recorded. */
  function feed(volumePaths: string[] | undefined, fail?: { code: string; errno: number; syscall: string }, vet?: (r: VetRequest) => Verdict) {
    const chmods: Parameters<FeedNative['chmodAs']>[0][] = [];
    const responses: unknown[] = [];
    let push!: (n: unknown) => void;
    const { native, connect } = fakeSeccomp(responses, async function* () { yield await new Promise((r) => (push = r)); }, {
      chmodAs: async (o: Parameters<FeedNative['chmodAs']>[0]) => { chmods.push(o); if (fail) throw Object.assign(new Error('x'), fail); },
    });
    const events: Record<string, unknown>[] = [];
    const f = new NotifyFeed({
      log: { warn() {}, error() {} } as never,
      nc: { request: async (_s: string, data: string) => {
        if (vet) throw new Error('the bus must not be asked when the vetter is in process');
        return { string: () => toWireV(decide(fromWireV(data))) };
      } } as never,
      publish: async (_s, _t, data) => void events.push(data as Record<string, unknown>),
      protectedPaths: () => ['/'], volumePaths: () => volumePaths, ranges: () => ({}),
      ...(vet ? { vet } : {}),
    }, native);
    f.start('/s');
    connect();
    return { chmods, responses, events, notify: (n: unknown) => push(n), settle: () => new Promise((r) => setTimeout(r, 50)) };
  }
  const rootId = mountAtV(parseMountInfoV(readFileSyncV('/proc/self/mountinfo', 'utf8')), '/')!.id;

  it('performs them with the volume mounts (id and device) as the protected ones', async () => {
    const t = feed(['/']);
    t.notify({ id: 1n, pid: 77, syscall: 'fchmodat', args: [5n, 0n, 0o4755n, 0n, 0n, 0n], strings: { path: 'f' } });
    await t.settle();
    expect(t.chmods).toHaveLength(1);
    expect(t.chmods[0]).toMatchObject({ pid: 77, syscall: 'fchmodat', dirfd: 5, path: 'f', mode: 0o4755, protect: [rootId], notify: { fd: 42, id: 1n } });
    expect(t.chmods[0].protectDevs).toHaveLength(1);
    expect(t.responses).toEqual([{ kind: 'value', val: 0 }]);
    expect(t.events[0]).toMatchObject({ syscall: 'fchmodat', verdict: 'performed', flags: '04755' });
  });
  it("answers the helper's chmod errno (EPERM on a volume)", async () => {
    const t = feed([], { code: 'EPERM', errno: 1, syscall: 'chmod' });
    t.notify({ id: 2n, pid: 77, syscall: 'chmod', args: [0n, 0o2755n, 0n, 0n, 0n, 0n], strings: { path: '/v/f' } });
    await t.settle();
    expect(t.chmods[0]).toMatchObject({ protect: [], protectDevs: [] });
    expect(t.responses).toEqual([{ kind: 'errno', errno: 1 }]);
    expect(t.events[0]).toMatchObject({ verdict: 'refused', errno: 'EPERM' });
  });
  it('asks the in-process vetter directly (no bus request), with its rate limit, and times each step', async () => {
    const asked: VetRequest[] = [];
    let allowed = 1;
    const t = feed(['/'], undefined, (r) => {
      asked.push(r);
      return allowed-- > 0 ? decide(r) : { kind: 'errno', errno: 11, code: 'EAGAIN', reason: 'rate limited' };
    });
    t.notify({ id: 4n, pid: 77, syscall: 'fchmodat', args: [5n, 0n, 0o4755n, 0n, 0n, 0n], strings: { path: 'f' } });
    await t.settle();
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({ container: 'c1', pid: 77, syscall: 'fchmodat' });
    expect(t.chmods).toHaveLength(1);
    expect(t.responses).toEqual([{ kind: 'value', val: 0 }]);
    const spans = t.events[0]!.spansUs as { decide: number; perform: number; respond: number };
    expect(Object.keys(spans).sort()).toEqual(['decide', 'perform', 'respond']);
    for (const v of Object.values(spans)) expect(v).toBeGreaterThanOrEqual(0);
    expect(spans.decide + spans.perform + spans.respond).toBeLessThanOrEqual((t.events[0]!.latencyUs as number) + 3);
  });
  it('refuses (fail closed) when the in-process vetter throws', async () => {
    const t = feed(['/'], undefined, () => { throw new Error('broken'); });
    t.notify({ id: 5n, pid: 77, syscall: 'chmod', args: [0n, 0o4755n, 0n, 0n, 0n, 0n], strings: { path: '/f' } });
    await t.settle();
    expect(t.chmods).toEqual([]);
    expect(t.responses).toEqual([{ kind: 'errno', errno: 1 }]);
    expect(t.events[0]).toMatchObject({ verdict: 'refused', errno: 'EPERM', reason: expect.stringContaining('broken') });
  });
  it('refuses them (fail closed) when the volumes of the container are not known', async () => {
    const t = feed(undefined);
    t.notify({ id: 3n, pid: 77, syscall: 'fchmod', args: [3n, 0o4755n, 0n, 0n, 0n, 0n], strings: {} });
    await t.settle();
    expect(t.chmods).toEqual([]);
    expect(t.responses).toEqual([{ kind: 'errno', errno: 1 }]);
    expect(t.events[0]).toMatchObject({ verdict: 'refused', errno: 'EPERM', reason: expect.stringContaining('not known') });
  });
});


describe('notify feed: calls answered by the performer', () => {
  /** A feed over fakes whose mountAs/umountAs play a performer that answers the caller itself. */
  function feed(perform: (o: { notify?: AsNotify; fstype?: string | null }) => Promise<AsOutcome | void>) {
    const calls: { notify?: AsNotify; fstype?: string | null }[] = [];
    const responses: unknown[] = [];
    const batches: { type: string; data: Record<string, unknown> }[][] = [];
    const single: unknown[] = [];
    const queue: unknown[] = [];
    let wake: (() => void) | undefined;
    const { native, connect } = fakeSeccomp(responses, async function* () {
      for (;;) {
        while (!queue.length) await new Promise<void>((r) => (wake = r));
        yield queue.shift();
      }
    }, {
      mountAs: async (o: { notify?: AsNotify; fstype?: string | null }) => { calls.push(o); return perform(o); },
      umountAs: async (o: { notify?: AsNotify }) => { calls.push(o); return perform(o); },
    });
    const f = new NotifyFeed({
      log: { warn() {}, error() {} } as never,
      nc: {} as never,
      publish: async (_s, _t, data) => void single.push(data),
      publishMany: async (es) => void batches.push(es as { type: string; data: Record<string, unknown> }[]),
      protectedPaths: () => [], ranges: () => ({}), vet: (r) => decide(r),
    }, native);
    f.start('/s');
    connect();
    const mount = (id: bigint, fstype: string, target = '/mnt') => { queue.push({ id, pid: 77, syscall: 'mount', args: [0n, 0n, 0n, 0n, 0n, 0n], strings: { source: fstype, target, fstype, data: null } }); wake?.(); };
    return { f, calls, responses, batches, single, mount, settle: () => new Promise((r) => setTimeout(r, AUDIT_BATCH_MS + 40)) };
  }
  const answeredAt = () => Number(process.hrtime.bigint() / 1000n);

  it('does not answer again what the performer answered, and audits it as the performer answered', async () => {
    const t = feed(async (o) => ({ answered: o.notify?.answer ? { errno: 0, atUs: answeredAt(), sendErrno: 0 } : undefined }));
    t.mount(1n, 'tmpfs');
    await t.settle();
    expect(t.calls[0]!.notify).toEqual({ fd: 42, id: 1n, answer: true });
    expect(t.responses).toEqual([]);
    const ev = t.batches.flat()[0]!.data;
    expect(ev).toMatchObject({ syscall: 'mount', verdict: 'performed', answeredBy: 'performer', spansUs: { respond: 0 } });
    expect(ev.latencyUs as number).toBeGreaterThanOrEqual(0);
  });

  it('audits a call the performer answered 0 as performed, even if it reported a failure after the answer', async () => {
    const t = feed(async (o) => {
      throw Object.assign(new Error('late report: broken pipe'), { code: 'EPIPE', errno: 32, syscall: 'write', answered: { errno: 0, atUs: answeredAt(), sendErrno: 0 }, notify: o.notify });
    });
    t.mount(3n, 'tmpfs', '/x');
    await t.settle();
    expect(t.responses).toEqual([]);
    const d = t.batches.flat()[0]!.data as { verdict: string; reason: string; errno?: string };
    expect(d).toMatchObject({ verdict: 'performed', answeredBy: 'performer' });
    expect(d.errno).toBeUndefined();
    expect(d.reason).toMatch(/after answering: late report: broken pipe/);
  });

  it("audits the call's own errno the performer answered with (no second answer)", async () => {
    const t = feed(async (o) => {
      throw Object.assign(new Error('/nope: No such file or directory'), { code: 'ENOENT', errno: 2, syscall: 'mount', answered: { errno: 2, atUs: answeredAt(), sendErrno: 0 }, notify: o.notify });
    });
    t.mount(2n, 'tmpfs', '/nope');
    await t.settle();
    expect(t.responses).toEqual([]);
    expect(t.batches.flat()[0]!.data).toMatchObject({ verdict: 'refused', errno: 'ENOENT', answeredBy: 'performer' });
  });

  it('answers a new proc mount itself, after putting its emulated files on it', async () => {
    const t = feed(async () => ({}));
    t.mount(3n, 'proc', '/p');
    await t.settle();
    expect(t.calls[0]!.notify).toEqual({ fd: 42, id: 3n, answer: false });
    expect(t.responses).toEqual([{ kind: 'value', val: 0 }]);
    expect(t.batches.flat()[0]!.data).not.toHaveProperty('answeredBy');
  });

  it('publishes the audit events of a burst as one batch, and what is left at stop', async () => {
    const t = feed(async () => ({ answered: { errno: 0, atUs: answeredAt(), sendErrno: 0 } }));
    for (let i = 10n; i < 14n; i++) t.mount(i, 'tmpfs');
    await t.settle();
    expect(t.single).toEqual([]);
    expect(t.batches.flat()).toHaveLength(4);
    expect(t.batches.length).toBeLessThan(4);
    expect(t.batches.flat().every((e) => e.type === 'vetter.decision')).toBe(true);
    t.mount(20n, 'tmpfs');
    await new Promise((r) => setTimeout(r, 1));
    await t.f.stop();
    expect(t.batches.flat()).toHaveLength(5);
  });
});
