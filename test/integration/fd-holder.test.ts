// eci-fdholder against the kernel: a process with a real seccomp listener (test/fixtures/c/notify_self.c)
// hands its notify fd to the agent socket; the fd goes to the holder; the receiver's copy is closed (a
// manager that died) and the process's next vetted call is held by the kernel (not ENOSYS); a taker of
// the holder's copy receives that queued call and its answer reaches the process. The holder drops a
// copy when the process is gone or on DROP, refuses anything that is not a notify fd, and exits by
// itself once it holds nothing and nobody is connected.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as native from '../../native/index.ts';
import type { SeccompAgentConnection } from '../../native/index.ts';
import { FdHolder } from '../../actors/fd-holder.ts';
import { buildC, gccMissing } from '../helpers/cprog.ts';

const HOLDER = new URL('../../native/bin/eci-fdholder', import.meta.url);
const skip = process.getuid?.() !== 0 ? 'needs root' : gccMissing ?? (!existsSync(HOLDER) ? 'native code not built (make -C native)' : null);
const log = pino({ level: 'silent' });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

async function until(f: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A notify_self process: lines it printed, and a way to ask for one vetted call. */
function startProcess(bin: string, socket: string, id: string) {
  const child = spawn(bin, [socket, id]) as ChildProcessWithoutNullStreams;
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  return {
    child,
    lines,
    call() { child.stdin.write('call\n'); },
    end() { child.stdin.end(); },
  };
}

describe.skipIf(skip !== null)(`eci-fdholder${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  let bin: string;
  let agent: { close(): Promise<void> };
  const conns: SeccompAgentConnection[] = [];
  const holderPids = new Set<number>();
  let holder: FdHolder;

  const holderOf = (name: string) => new FdHolder({ socket: join(dir, `${name}.sock`), pidFile: join(dir, `${name}.pid`), native, log });
  const pidOf = (name: string) => Number(readFileSync(join(dir, `${name}.pid`), 'utf8'));
  const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/eci-fdholder-');
    bin = await buildC('notify_self');
    agent = native.serveSeccompAgent(join(dir, 'agent.sock'), (c) => conns.push(c));
    holder = holderOf('h');
    expect(await holder.open()).toBe(true);
    holderPids.add(pidOf('h'));
  });

  afterAll(async () => {
    holder?.close();
    await agent?.close();
    for (const pid of holderPids) if (alive(pid)) process.kill(pid, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs in a session of its own, and a second start on the same socket leaves the first in charge', () => {
    const pid = pidOf('h');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    expect(Number(stat[3])).toBe(pid); // session: its own
    expect(Number(stat[2])).toBe(pid); // process group: its own
    const r = spawnSync(HOLDER.pathname, [join(dir, 'h.sock'), join(dir, 'h.pid')]);
    expect(r.status).toBe(0);
    expect(pidOf('h')).toBe(pid);
    expect(holder.ping()).toEqual({ pid, held: 0 });
  });

  it('keeps a notify fd: the call waits while only the holder has it, and a taker answers it', async () => {
    const p = startProcess(bin, join(dir, 'agent.sock'), 'c1');
    try {
      await until(() => conns.length === 1 && p.lines.includes('ready'), 5000, 'the agent connection');
      const c = conns.shift()!;
      expect(c.notifyFd).not.toBeNull();
      expect(holder.put('c1', c.notifyFd!)).toBe(true);
      expect(holder.ping()?.held).toBe(1);
      native.closeFd(c.notifyFd!); // the manager dies: its copy is gone
      p.call();
      await new Promise((r) => setTimeout(r, 300));
      expect(p.lines.filter((l) => l.startsWith('result'))).toEqual([]); // queued, not ENOSYS

      const taken = holder.take();
      expect([...taken.fds.keys()]).toEqual(['c1']);
      expect(holder.ping()?.held).toBe(1); // the holder keeps its own copy
      const l = native.listenSeccomp(taken.fds.get('c1')![0]);
      const it = l[Symbol.asyncIterator]();
      const n = await Promise.race([it.next(), new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no notification')), 3000))]);
      expect(n.done).toBe(false);
      expect(n.value.syscall).toBe('unknown'); // getpriority is not one eci decodes
      await l.respond(n.value.id, { kind: 'errno', errno: 42 });
      await until(() => p.lines.some((x) => x.startsWith('result')), 3000, 'the answer');
      expect(p.lines).toContain('result -1 42');
      await l.close();
    } finally {
      p.end();
    }
    // The process is gone: the holder notices (POLLHUP on its copy) and closes it.
    await until(() => holder.ping()?.held === 0, 5000, 'the holder dropping the fd of a gone process');
  });

  it('a call received by a manager that died before answering is found again (SEEN ids) and answered', async () => {
    const p = startProcess(bin, join(dir, 'agent.sock'), 'c4');
    try {
      await until(() => conns.length === 1 && p.lines.includes('ready'), 5000, 'the agent connection');
      const fd = conns.shift()!.notifyFd!;
      expect(holder.put('c4', fd)).toBe(true);
      const first = native.listenSeccomp(fd, { holderTag: 'c4' });
      const it1 = first[Symbol.asyncIterator]();
      p.call();
      const got = await Promise.race([it1.next(), new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no notification')), 3000))]);
      const lostId = got.value!.id;
      await first.close(); // dies deciding: never answers
      await new Promise((r) => setTimeout(r, 300));
      expect(p.lines.filter((l) => l.startsWith('result'))).toEqual([]); // still waiting

      const taken = holder.take();
      expect(taken.seen.get('c4')).toContain(lostId);
      const second = native.listenSeccomp(taken.fds.get('c4')![0], { holderTag: 'c4' });
      expect(second.idValid(lostId)).toBe(true); // the kernel still waits for this answer
      await second.respond(lostId, { kind: 'errno', errno: 1 });
      await until(() => p.lines.some((x) => x.startsWith('result')), 3000, 'the answer');
      expect(p.lines).toContain('result -1 1');
      expect(second.idValid(lostId)).toBe(false);
      await second.close();
    } finally {
      p.end();
    }
    await until(() => holder.ping()?.held === 0, 5000, 'the holder dropping the fd of a gone process');
    // Its noted ids went with the last fd of the tag.
    expect(holder.take().seen.size).toBe(0);
  });

  it('without any copy, the call fails with ENOSYS (what the holder prevents)', async () => {
    const p = startProcess(bin, join(dir, 'agent.sock'), 'c2');
    try {
      await until(() => conns.length === 1 && p.lines.includes('ready'), 5000, 'the agent connection');
      native.closeFd(conns.shift()!.notifyFd!);
      p.call();
      await until(() => p.lines.some((x) => x.startsWith('result')), 3000, 'the answer');
      expect(p.lines).toContain('result -1 38');
    } finally {
      p.end();
    }
  });

  it('DROP closes a container\'s copies; the fd count of the holder goes back', async () => {
    const pid = pidOf('h');
    const before = fdCount(pid);
    const p = startProcess(bin, join(dir, 'agent.sock'), 'c3');
    try {
      await until(() => conns.length === 1 && p.lines.includes('ready'), 5000, 'the agent connection');
      const fd = conns.shift()!.notifyFd!;
      expect(holder.put('c3', fd)).toBe(true);
      expect(holder.put('c3', fd)).toBe(true); // a second process of the same container (exec)
      native.closeFd(fd);
      expect(fdCount(pid)).toBe(before + 2);
      holder.drop('c3');
      expect(fdCount(pid)).toBe(before);
      expect(holder.ping()?.held).toBe(0);
      p.call(); // nobody holds it now: ENOSYS, as without a holder
      await until(() => p.lines.some((x) => x.startsWith('result')), 3000, 'the answer');
      expect(p.lines).toContain('result -1 38');
    } finally {
      p.end();
    }
  });

  it('hands back 500 fds in one TAKE (more than a socket buffer holds at once) and drops them all', async () => {
    const pid = pidOf('h');
    const before = fdCount(pid);
    const p = startProcess(bin, join(dir, 'agent.sock'), 'c5');
    try {
      await until(() => conns.length === 1 && p.lines.includes('ready'), 5000, 'the agent connection');
      const fd = conns.shift()!.notifyFd!;
      for (let i = 0; i < 500; i++) expect(holder.put(`m${i}`, fd)).toBe(true);
      native.closeFd(fd);
      const t = holder.take();
      const fds = [...t.fds.values()].flat();
      expect(fds).toHaveLength(500);
      for (const f of fds) native.closeFd(f);
      for (let i = 0; i < 500; i++) holder.drop(`m${i}`);
      expect(holder.ping()?.held).toBe(0);
      expect(fdCount(pid)).toBe(before);
    } finally {
      p.end();
    }
  });

  it('refuses fds that are not notify fds, bad tags and garbage, and keeps serving', () => {
    const fd = openSync('/dev/null', 'r');
    try {
      expect(holder.put('x', fd)).toBe(false);
    } finally {
      closeSync(fd);
    }
    expect(() => holder.put('bad tag', 0)).toThrow(/bad container id/);
    const conn = native.connectFdHolder(join(dir, 'h.sock'));
    try {
      expect(conn.call('PUT ../x').reply).toBe('ERR bad tag');
      expect(conn.call('PUT c9').reply).toBe('ERR PUT needs exactly one fd');
      expect(conn.call('HELLO').reply).toBe('ERR unknown request');
      expect(conn.call('TAKE').taken).toEqual([]);
    } finally {
      conn.close();
    }
    expect(holder.ping()).toEqual({ pid: pidOf('h'), held: 0 });
  });

  it('holds and releases off the event loop: the fd copied at the call, a sync request meanwhile refused', async () => {
    const pid = pidOf('h');
    // The tests before leave copies the holder drops on their hang-up, when it next runs: counted from none held.
    await until(() => holder.ping()?.held === 0, 5000, 'the holder to drop the copies of the tests before');
    const before = fdCount(pid);
    const p = startProcess(bin, join(dir, 'agent.sock'), 'c6');
    try {
      await until(() => conns.length === 1 && p.lines.includes('ready'), 5000, 'the agent connection');
      const fd = conns.shift()!.notifyFd!;
      const holds = Array.from({ length: 20 }, (_, i) => holder.hold(`a${i}`, fd));
      native.closeFd(fd); // the caller's own copy may go at once: each request sent its own
      expect(holder.ping()).toBeUndefined(); // a synchronous request cannot cut in (EBUSY); the connection stays
      expect(await Promise.all(holds)).toEqual(Array(20).fill(true));
      expect(holder.connected).toBe(true);
      expect(holder.ping()?.held).toBe(20);
      expect(fdCount(pid)).toBe(before + 20);
      await Promise.all(Array.from({ length: 20 }, (_, i) => holder.release(`a${i}`)));
      expect(holder.ping()?.held).toBe(0);
      expect(fdCount(pid)).toBe(before);
      expect(await holder.hold('c6', 99999)).toBe(false); // no such fd to copy: refused here, the connection kept
      expect(holder.connected).toBe(true);
    } finally {
      p.end();
    }
  });

  it('the async round trip on a real connection: answers in order, a sync call meanwhile is EBUSY', async () => {
    const h = holderOf('a');
    expect(await h.open()).toBe(true);
    holderPids.add(pidOf('a'));
    const p = startProcess(bin, join(dir, 'agent.sock'), 'c7');
    const conn = native.connectFdHolder(join(dir, 'a.sock'));
    try {
      await until(() => conns.length === 1 && p.lines.includes('ready'), 5000, 'the agent connection');
      const fd = conns.shift()!.notifyFd!;
      const puts = Array.from({ length: 10 }, (_, i) => conn.callAsync(`PUT b${i}`, fd));
      native.closeFd(fd);
      expect(() => conn.call('PING')).toThrow(expect.objectContaining({ code: 'EBUSY' }));
      expect((await Promise.all(puts)).map((a) => a.reply)).toEqual(Array.from({ length: 10 }, (_, i) => `OK ${i + 1}`));
      const drops = Array.from({ length: 10 }, (_, i) => conn.callAsync(`DROP b${i}`));
      expect((await Promise.all(drops)).map((a) => a.reply)).toEqual(Array(10).fill('OK 1'));
      expect(conn.call('PING').reply).toBe(`OK ${pidOf('a')} 0`);
      await expect(conn.callAsync('PUT ../x')).resolves.toEqual({ reply: 'ERR bad tag', taken: [], pending: [] });
    } finally {
      conn.close();
      p.end();
      h.quit();
    }
  });

  it('exits by itself when it holds nothing and nobody is connected; QUIT stops it at once', async () => {
    const pid = pidOf('h');
    holder.close();
    await until(() => !alive(pid), 3000, 'the idle holder to exit');
    expect(existsSync(join(dir, 'h.sock'))).toBe(false);
    expect(existsSync(join(dir, 'h.pid'))).toBe(false);

    const q = holderOf('q');
    expect(await q.open()).toBe(true);
    const qpid = pidOf('q');
    holderPids.add(qpid);
    q.quit();
    await until(() => !alive(qpid), 3000, 'QUIT');
  });
});
