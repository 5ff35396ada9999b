// The manager's fd-holder client over a fake connection (the real holder: test/integration/fd-holder.test.ts),
// the init-pid check a restarted manager does before resuming a container, and the feed's adopt path.
import { describe, expect, it } from 'vitest';
import { FdHolder, type FdHolderConnection } from '../../actors/fd-holder.ts';
import { holderTag, parseHolderReply } from '../../native/fd-holder.ts';
import { initPidOf, statStartTime } from '../../actors/restore.ts';
import { NotifyFeed, type FeedNative } from '../../actors/notify-feed.ts';
import { toWire, fromWire } from '../../actors/vetter.actor.ts';
import { decide } from '../../actors/vetter/decide.ts';

const log = { warn() {}, info() {}, error() {}, debug() {} } as never;

/** A fake holder: a map of tag -> fds, and a switch to break the connection. */
function fakeHolder() {
  const held = new Map<string, number[]>();
  const calls: string[] = [];
  let broken = false;
  let connects = 0;
  let launched = 0;
  let running = false;
  const conn = (): FdHolderConnection => ({
    fd: 9,
    call(req, passFd) {
      calls.push(req);
      if (broken) throw Object.assign(new Error('EPIPE: broken pipe'), { code: 'EPIPE' });
      const [op, tag] = req.split(' ');
      if (op === 'PUT') {
        if (passFd === undefined) return { reply: 'ERR PUT needs exactly one fd', taken: [] };
        if (passFd === 666) return { reply: 'ERR not a seccomp notify fd', taken: [] };
        held.set(tag, [...(held.get(tag) ?? []), passFd]);
        return { reply: `OK ${[...held.values()].flat().length}`, taken: [] };
      }
      if (op === 'DROP') { const n = held.get(tag)?.length ?? 0; held.delete(tag); return { reply: `OK ${n}`, taken: [] }; }
      if (op === 'TAKE') return { reply: 'END', taken: [...held].flatMap(([t, fds]) => fds.map((fd) => ({ tag: t, fd: fd + 100 }))), pending: [{ tag: 'c1', id: 7n }, { tag: 'c1', id: 9n }] };
      if (op === 'PING') return { reply: `OK 4242 ${[...held.values()].flat().length}`, taken: [] };
      if (op === 'QUIT') { running = false; return { reply: 'OK', taken: [] }; }
      return { reply: 'ERR unknown request', taken: [] };
    },
    close() {},
  });
  const holder = new FdHolder({
    socket: '/run/x/fdholder.sock', pidFile: '/run/x/fdholder.pid', log, startTimeoutMs: 500,
    native: {
      launchFdHolder: () => { launched++; running = true; },
      connectFdHolder: () => { connects++; if (!running) throw Object.assign(new Error('ECONNREFUSED'), { code: 'ECONNREFUSED' }); broken = false; return conn(); },
      closeFd: () => {},
    },
  });
  return { holder, held, calls, breakIt: () => { broken = true; }, stats: () => ({ connects, launched }), setRunning: (r: boolean) => { running = r; } };
}

describe('fd-holder client', () => {
  it('parses answers and refuses bad tags before sending anything', () => {
    expect(parseHolderReply('OK')).toEqual([]);
    expect(parseHolderReply('OK 3')).toEqual([3]);
    expect(parseHolderReply('OK 12 0')).toEqual([12, 0]);
    expect(() => parseHolderReply('ERR not a seccomp notify fd')).toThrow('fd-holder: not a seccomp notify fd');
    expect(() => parseHolderReply('FD x')).toThrow(/unexpected answer/);
    expect(holderTag('abc_D-9')).toBe('abc_D-9');
    for (const bad of ['', 'a b', '../x', 'a'.repeat(129), 'x\n']) expect(() => holderTag(bad)).toThrow(/bad container id/);
  });

  it('launches a holder when none answers, then puts, takes and drops by container', async () => {
    const f = fakeHolder();
    expect(await f.holder.open()).toBe(true);
    expect(f.stats().launched).toBe(1);
    expect(f.holder.put('c1', 5)).toBe(true);
    expect(f.holder.put('c1', 6)).toBe(true);
    expect(f.holder.put('c2', 7)).toBe(true);
    expect(f.holder.put('c3', 666)).toBe(false); // refused by the holder: logged, not thrown
    expect(f.holder.ping()).toEqual({ pid: 4242, held: 3 });
    const t = f.holder.take();
    expect([...t.fds]).toEqual([['c1', [105, 106]], ['c2', [107]]]);
    expect([...t.seen]).toEqual([['c1', [7n, 9n]]]);
    f.holder.drop('c1');
    expect([...f.held.keys()]).toEqual(['c2']);
  });

  it('uses a running holder without launching another', async () => {
    const f = fakeHolder();
    f.setRunning(true);
    expect(await f.holder.open()).toBe(true);
    expect(f.stats()).toEqual({ connects: 1, launched: 0 });
  });

  it('gives up (false) when a launched holder never answers: no holder, vetting as before', async () => {
    const f = fakeHolder();
    const h = new FdHolder({
      socket: '/s', pidFile: '/p', log, startTimeoutMs: 100,
      native: { launchFdHolder: () => {}, connectFdHolder: () => { throw new Error('ENOENT'); }, closeFd: () => {} },
    });
    expect(await h.open()).toBe(false);
    expect(h.connected).toBe(false);
    expect(h.put('c1', 5)).toBe(false);
    expect([...h.take().fds]).toEqual([]);
    void f;
  });

  it('a lost connection is noticed, and recover() puts the live fds into a new holder', async () => {
    const f = fakeHolder();
    await f.holder.open();
    f.holder.put('c1', 5);
    f.breakIt();
    f.held.clear(); // the old holder died with its copies
    expect(f.holder.put('c2', 7)).toBe(false);
    expect(f.holder.connected).toBe(false);
    expect(await f.holder.recover(() => [{ container: 'c1', fd: 5 }, { container: 'c2', fd: 7 }])).toBe(true);
    expect([...f.held]).toEqual([['c1', [5]], ['c2', [7]]]);
  });
});

describe('fd-holder client off the event loop (hold, release)', () => {
  /** A connection whose async requests answer a tick later (the real one queues them: test/integration/fd-holder.test.ts). */
  function asyncConn() {
    const f = fakeHolder();
    const order: string[] = [];
    let broken = false;
    const h = new FdHolder({
      socket: '/s', pidFile: '/p', log,
      native: {
        launchFdHolder: () => {},
        connectFdHolder: () => {
          f.setRunning(true);
          const sync = (f.holder as unknown as { o: { native: { connectFdHolder(): FdHolderConnection } } }).o.native.connectFdHolder();
          return {
            ...sync,
            call: () => { throw new Error('the synchronous call was used'); },
            async callAsync(req: string, passFd?: number) {
              order.push(req);
              await new Promise((r) => setImmediate(r));
              if (broken) throw Object.assign(new Error('EPIPE: broken pipe'), { code: 'EPIPE' });
              return sync.call(req, passFd);
            },
          };
        },
        closeFd: () => {},
      },
    });
    return { h, held: f.held, order, breakIt: () => { broken = true; } };
  }

  it('holds and releases in call order, without the synchronous call', async () => {
    const a = asyncConn();
    expect(await a.h.open()).toBe(true);
    const holds = [a.h.hold('c1', 5), a.h.hold('c2', 7), a.h.hold('c3', 666)];
    const released = a.h.release('c1');
    expect(await Promise.all(holds)).toEqual([true, true, false]); // 666: refused by the holder, logged
    await released;
    expect(a.order).toEqual(['PUT c1', 'PUT c2', 'PUT c3', 'DROP c1']);
    expect([...a.held]).toEqual([['c2', [7]]]);
  });

  it('a hold on a lost connection answers false and closes it; recover holds the live fds again', async () => {
    const a = asyncConn();
    await a.h.open();
    a.breakIt();
    expect(await a.h.hold('c1', 5)).toBe(false);
    expect(a.h.connected).toBe(false);
    const b = asyncConn();
    expect(await b.h.hold('c1', 5)).toBe(false); // never opened: nothing to hold with
    expect(await b.h.recover(() => [{ container: 'c1', fd: 5 }, { container: 'c2', fd: 7 }])).toBe(true);
    expect([...b.held]).toEqual([['c1', [5]], ['c2', [7]]]);
    expect(b.order).toEqual(['PUT c1', 'PUT c2']);
  });
});

describe('restore: the init pid of a container', () => {
  // /proc/<pid>/stat with a command name holding ") " and spaces; starttime is field 22.
  const stat = (start: number) => `123 (sh ) x) S 1 123 123 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 ${start} 1000 1 18446744073709551615`;

  it('reads the start time past a tricky command name', () => {
    expect(statStartTime(stat(98765))).toBe(98765);
  });

  it('takes the recorded pid when runc agrees and the start time matches', () => {
    expect(initPidOf({ initPid: 123 }, { init_process_pid: 123, init_process_start: 98765 }, () => stat(98765))).toBe(123);
    expect(initPidOf({}, { init_process_pid: 123, init_process_start: 98765 }, () => stat(98765))).toBe(123);
    expect(initPidOf({ initPid: 123 }, undefined, () => stat(1))).toBe(123);
  });

  it('refuses a recycled pid, a pid runc does not know as the init, a gone one, or none', () => {
    expect(initPidOf({ initPid: 123 }, { init_process_pid: 123, init_process_start: 98765 }, () => stat(5))).toBeUndefined();
    expect(initPidOf({ initPid: 123 }, { init_process_pid: 456 }, () => stat(1))).toBeUndefined();
    expect(initPidOf({ initPid: 123 }, {}, () => undefined)).toBeUndefined();
    expect(initPidOf({}, undefined, () => stat(1))).toBeUndefined();
    expect(initPidOf({ initPid: -1 }, undefined, () => stat(1))).toBeUndefined();
  });
});

describe('notify feed: fds handed over and adopted', () => {
  function feed() {
    const received: [string, number][] = [];
    const responses: [number, unknown][] = [];
    const pushes = new Map<number, (n: unknown) => void>();
    let onConn!: (c: { state: unknown; notifyFd: number | null }) => void;
    const native = {
      serveSeccompAgent: (_p: string, cb: typeof onConn) => ((onConn = cb), { close: async () => {} }),
      listenSeccomp: (fd: number, o?: { holderTag?: string }) => ({
        fd,
        tag: o?.holderTag,
        idValid: (id: bigint) => id === 3n, // 3 is still waiting, anything else was answered
        respond: async (_id: bigint, r: unknown) => void responses.push([fd, r]),
        close: async () => {},
        async *[Symbol.asyncIterator]() { yield await new Promise((r) => pushes.set(fd, r)); },
      }),
      mountAs: async () => {}, umountAs: async () => {}, chmodAs: async () => {},
    } as unknown as FeedNative;
    const events: Record<string, unknown>[] = [];
    const f = new NotifyFeed({
      log, nc: { request: async (_s: string, data: string) => ({ string: () => toWire(decide(fromWire(data))) }) } as never,
      publish: async (_s, _t, d) => void events.push(d as Record<string, unknown>), protectedPaths: () => [], ranges: () => ({}),
      notifyFdReceived: (c, fd) => void received.push([c, fd]),
    }, native);
    f.start('/s');
    return { f, received, responses, events, pushes, connect: (fd: number) => onConn({ state: { metadata: 'c1', state: { id: 'c1', pid: process.pid } }, notifyFd: fd }) };
  }

  it('hands each notify fd from runc to notifyFdReceived before watching it', () => {
    const t = feed();
    t.connect(41);
    expect(t.received).toEqual([['c1', 41]]);
    expect(t.f.watched()).toEqual([{ container: 'c1', fd: 41 }]);
  });

  it('answers the notifications of an adopted fd like those of a fresh one', async () => {
    const t = feed();
    t.f.adopt('c9', process.pid, 77);
    expect(t.received).toEqual([]); // the holder has it already
    expect(t.f.watched()).toEqual([{ container: 'c9', fd: 77 }]);
    await new Promise((r) => setTimeout(r, 10));
    // any verdict will do: what matters is that it goes back on the adopted fd
    t.pushes.get(77)!({ id: 5n, pid: 1234, syscall: 'fsopen', args: [0n, 0n, 0n, 0n, 0n, 0n], strings: { fsname: 'bogusfs' } });
    await new Promise((r) => setTimeout(r, 50));
    expect(t.responses).toHaveLength(1);
    expect(t.responses[0][0]).toBe(77);
  });

  it('refuses, and audits, a call the dead manager received but never answered; answered ones are left alone', async () => {
    const t = feed();
    t.f.adopt('c9', process.pid, 78, [2n, 3n, 4n]);
    expect(t.responses).toEqual([[78, { kind: 'errno', errno: 1 }]]);
    await new Promise((r) => setTimeout(r, 10));
    expect(t.events).toEqual([expect.objectContaining({ container: 'c9', verdict: 'refused', errno: 'EPERM', reason: expect.stringMatching(/died before answering/) })]);
  });
});
