// The notification feed and the native fast path, over a fake native side: the table is pushed once a
// mount or unmount went the actor's path, a call the watcher sent to the performer is only audited
// (path 'native', counted against the container's budget), a run the performer did not take goes the
// actor's path, and one that failed without an answer is refused (fail closed).
import { describe, expect, it } from 'vitest';
import { decide, type VetRequest } from '../../actors/vetter/decide.ts';
import { AUDIT_BATCH_MS, NotifyFeed, type FeedNative, type FeedNotif } from '../../actors/notify-feed.ts';
import type { FastTable } from '../../actors/vetter/fast-path.ts';
import { FastFallbackError, type AsOutcome } from '../../native/seccomp-agent.ts';

const answeredAt = () => Number(process.hrtime.bigint() / 1000n);

function feed(outcome: (n: { fastId: number }) => Promise<AsOutcome>) {
  const queue: FeedNotif[] = [];
  let wake: (() => void) | undefined;
  const responses: unknown[] = [];
  const pushed: FastTable[] = [];
  const performed: unknown[] = [];
  const vetted: VetRequest[] = [];
  const charged: string[] = [];
  const nativeCharges: number[] = [];
  const events: Record<string, unknown>[] = [];
  let onConn!: (c: { state: unknown; notifyFd: number | null }) => void;
  const listener = {
    fd: 42,
    respond: async (_id: bigint, r: unknown) => void responses.push(r),
    close: async () => {},
    fastPath: (t: FastTable) => (pushed.push(t), true),
    fastOutcome: outcome,
    fastCharge: () => void nativeCharges.push(1),
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (queue.length) yield queue.shift()!;
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
  const native = {
    serveSeccompAgent: (_p: string, cb: typeof onConn) => ((onConn = cb), { close: async () => {} }),
    listenSeccomp: () => listener,
    mountAs: async (o: unknown) => (performed.push(o), { answered: { errno: 0, atUs: answeredAt(), sendErrno: 0 } }),
    umountAs: async (o: unknown) => (performed.push(o), { answered: { errno: 0, atUs: answeredAt(), sendErrno: 0 } }),
    chmodAs: async () => {},
  } as unknown as FeedNative;
  const f = new NotifyFeed({
    log: { warn() {}, error() {} } as never,
    nc: {} as never,
    publish: async (_s, _t, data) => void events.push(data as Record<string, unknown>),
    protectedPaths: () => [], ranges: () => ({}),
    vet: (r) => (vetted.push(r), decide(r)),
    charge: (c) => void charged.push(c),
  }, native);
  f.start('/s');
  onConn({ state: { metadata: 'c1', state: { id: 'c1', pid: process.pid } }, notifyFd: 42 });
  const notify = (n: Partial<FeedNotif>) => {
    queue.push({ id: 1n, pid: 77, syscall: 'mount', args: [0n, 0n, 0n, 0n, 0n, 0n], strings: { source: 'tmpfs', target: '/t', fstype: 'tmpfs', data: null }, ...n });
    wake?.();
  };
  const settle = () => new Promise((r) => setTimeout(r, AUDIT_BATCH_MS + 40));
  return { responses, pushed, performed, vetted, charged, nativeCharges, events, notify, settle };
}

describe('notify feed: the native fast path', () => {
  it('pushes the container\'s table after a mount went the actor\'s path, and not before', async () => {
    const t = feed(async () => ({}));
    await t.settle();
    expect(t.pushed).toEqual([]);
    t.notify({ id: 1n });
    await t.settle();
    expect(t.performed).toHaveLength(1);
    expect(t.pushed).toHaveLength(1);
    expect(t.pushed[0]!.rules.map((r) => r.name)).toEqual(['tmpfs-mount', 'remount', 'umount']);
    expect(t.pushed[0]).toMatchObject({ protect: [], ratePerSecond: 200, burst: 400 });
  });

  it('keeps one budget for both paths: a call of the actor\'s path is charged natively, a fast one to the actor', async () => {
    const t = feed(async () => ({ answered: { errno: 0, atUs: answeredAt(), sendErrno: 0 } }));
    t.notify({ id: 1n });
    await t.settle();
    expect([t.nativeCharges.length, t.charged.length]).toEqual([1, 0]);
    t.notify({ id: 2n, fastId: 0x80000009, fastGen: 1, fastRule: 'tmpfs-mount' });
    await t.settle();
    expect([t.nativeCharges.length, t.charged.length]).toEqual([1, 1]);
  });

  it('only audits a call the watcher sent to the performer: path native, its rule, charged to the container\'s budget', async () => {
    const asked: number[] = [];
    const t = feed(async (n) => (asked.push(n.fastId), { answered: { errno: 0, atUs: answeredAt(), sendErrno: 0 } }));
    const recvUs = answeredAt();
    t.notify({ id: 5n, fastId: 0x80000001, fastGen: 1, fastRule: 'tmpfs-mount', recvUs, readUs: recvUs + 10 });
    await t.settle();
    expect(asked).toEqual([0x80000001]);
    expect(t.vetted).toEqual([]); // not asked again: the rule's verdict is the vetter's
    expect(t.performed).toEqual([]);
    expect(t.responses).toEqual([]);
    expect(t.charged).toEqual(['c1']);
    expect(t.events[0]).toMatchObject({ syscall: 'mount', verdict: 'performed', answeredBy: 'performer', path: 'native', fastRule: 'tmpfs-mount' });
    expect(t.events[0]!.reason).toMatch(/new tmpfs mount \(native fast path: tmpfs-mount\)/);
    // The caller's time: from the kernel's hand-over to the performer's answer; the feed was not on its path.
    expect(t.events[0]!.latencyUs as number).toBeGreaterThanOrEqual(0);
    expect(t.events[0]!.spansUs).toMatchObject({ inspect: 10, decide: 0, respond: 0 });
  });

  it('audits the errno the performer answered a fast-path call with (a refused remount)', async () => {
    const t = feed(async () => {
      throw Object.assign(new Error('remount: read-only at start'), { code: 'EPERM', errno: 1, syscall: 'mount', answered: { errno: 1, atUs: answeredAt(), sendErrno: 0 } });
    });
    t.notify({ id: 6n, args: [0n, 0n, 0n, 0x20n, 0n, 0n], strings: { source: null, target: '/ro', fstype: null, data: null }, fastId: 0x80000002, fastGen: 1, fastRule: 'remount' });
    await t.settle();
    expect(t.responses).toEqual([]);
    expect(t.events[0]).toMatchObject({ verdict: 'refused', errno: 'EPERM', path: 'native', fastRule: 'remount' });
  });

  it('takes the actor\'s path when the performer ran nothing for it', async () => {
    const t = feed(async () => { throw new FastFallbackError('no spare'); });
    t.notify({ id: 7n, fastId: 0x80000003, fastGen: 1, fastRule: 'tmpfs-mount' });
    await t.settle();
    expect(t.vetted).toHaveLength(1);
    expect(t.performed).toHaveLength(1);
    expect(t.events[0]).toMatchObject({ verdict: 'performed' });
    expect(t.events[0]).not.toHaveProperty('path');
  });

  it('refuses a fast-path call whose performer died without answering (fail closed)', async () => {
    const t = feed(async () => { throw Object.assign(new Error('eci-helper perform died'), { code: 'EHELPER', syscall: 'perform' }); });
    t.notify({ id: 8n, syscall: 'umount2', args: [0n, 0n, 0n, 0n, 0n, 0n], strings: { target: '/t' }, fastId: 0x80000004, fastGen: 1, fastRule: 'umount' });
    await t.settle();
    expect(t.responses).toEqual([{ kind: 'errno', errno: 1 }]);
    expect(t.events[0]).toMatchObject({ syscall: 'umount2', verdict: 'refused', errno: 'EPERM', path: 'native' });
  });
});
