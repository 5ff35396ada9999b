// The per-notify-fd performer (eci-helper perform, native/cmd/perform.h) against a real runc 1.1.5
// container: vetted mount/umount calls are done by one long-lived child of the manager that holds the
// notify fd; it still re-checks each notification (a wrong id is refused, nothing mounted), a killed
// performer is replaced by the next call, and it exits once the notify fd is closed.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answeredOf, listenSeccomp, mountAs, serveSeccompAgent, umountAs, type SeccompListener, type SeccompNotif } from '../../native/index.ts';
import { closePerformer } from '../../native/performer.ts';
import { childrenOf, performers } from '../helpers/bundle.ts';
import { makeBusyboxRootfs } from '../helpers/busybox.ts';
import { runCmd } from '../helpers/run.ts';
import { seccompSkipReason } from '../helpers/skip.ts';

const { EPERM } = constants.errno;
function skipReason(): string | null {
  const r = seccompSkipReason();
  if (r) return r;
  if (process.env.ECI_HELPER_SERVER === '0' || process.env.ECI_HELPER_PERFORMER === '0') return 'performers are turned off in this environment';
  return null;
}
const skip = skipReason();

const gone = (pid: number) => !existsSync(`/proc/${pid}`) || /^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The performer serving a call just handed to mountAs: it may not be started yet when mountAs returns
 * its promise, and an earlier one (`not`: ended in this test, or not yet reaped from another) is not it.
 */
async function performerFor(not: number[]): Promise<number> {
  let p: number | undefined;
  await until('the call\'s performer', () => (p = performers({ zombies: false }).find((q) => !not.includes(q))) !== undefined);
  return p!;
}

/**
 * A busybox bundle under `dir` whose script runs with `caps` (as `uid`, then ambient too, so that they
 * survive its exec), `notify` sent to agent<name>.sock.
 */
let dir: string;
async function bundle(name: string, script: string, notify: string[], caps = ['CAP_SYS_ADMIN'], uid = 0, additionalGids: number[] = []): Promise<{ sock: string; b: string }> {
  const sock = join(dir, `agent${name}.sock`);
  const b = join(dir, `bundle${name}`);
  await makeBusyboxRootfs(join(b, 'rootfs'));
  mkdirSync(join(b, 'rootfs', 'mnt'));
  writeFileSync(join(b, 'config.json'), JSON.stringify({
    ociVersion: '1.0.2',
    process: {
      terminal: false, user: { uid, gid: uid, additionalGids }, args: ['/bin/sh', '-c', script], env: ['PATH=/bin:/'], cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ...(uid ? { inheritable: caps, ambient: caps } : {}) },
    },
    root: { path: 'rootfs', readonly: false },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }, { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755', 'size=65536k'] }],
    linux: {
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'user'].map((type) => ({ type })),
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      seccomp: { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], listenerPath: sock, syscalls: [{ names: notify, action: 'SCMP_ACT_NOTIFY' }] },
    },
  }));
  return { sock, b };
}

/** Serves an agent at sock, runs bundle b with runc as container `id`, hands each notification to `on`; cleans up. */
async function runWithAgent(sock: string, b: string, id: string, on: (n: SeccompNotif, l: SeccompListener) => Promise<void>) {
  const listeners: SeccompListener[] = [];
  const agent = serveSeccompAgent(sock, (c) => {
    if (c.notifyFd === null) return;
    const l = listenSeccomp(c.notifyFd);
    listeners.push(l);
    void (async () => { for await (const n of l) await on(n, l); })();
  });
  try {
    return await runCmd('runc', ['--root', join(dir, 'runc'), 'run', '--bundle', b, id], undefined, undefined, 120_000);
  } finally {
    await agent.close();
    for (const l of listeners) await l.close();
    await runCmd('runc', ['--root', join(dir, 'runc'), 'delete', '--force', id], undefined, undefined, 60_000);
  }
}

/**
 * A second answer to a call the performer answered: ENOENT once the caller has woken and the kernel
 * dropped the call; EINPROGRESS while it is answered but not yet woken (retried: nothing is pending
 * either way, but the kernel still holds it).
 */
async function answerAgain(respond: () => Promise<void>): Promise<string | undefined> {
  for (const end = Date.now() + 5000; ;) {
    const code = await respond().then(() => 'answered twice', (e: unknown) => (e as { code?: string }).code);
    if (code !== 'EINPROGRESS' || Date.now() > end) return code;
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.skipIf(skip !== null)(`performer with runc${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-performer-');
    chmodSync(dir, 0o755);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('performs through one child holding the notify fd, re-checks each notification, is replaced when killed, exits with the fd', async () => {
    const script = [
      'mount -t tmpfs tmpfs /mnt; echo "a=$?"; echo "a-mounts=$(grep -c " /mnt " /proc/mounts)"',
      'umount /mnt; echo "ua=$?"',
      'mount -t tmpfs -o size=1m tmpfs /mnt; echo "b=$?"; echo "b-mounts=$(grep -c " /mnt " /proc/mounts)"',
      'umount /mnt; echo "ub=$?"',
      'mount -t tmpfs tmpfs /mnt; echo "c=$?"; echo "c-mounts=$(grep -c " /mnt " /proc/mounts)"',
    ].join('\n');
    const { sock, b } = await bundle('', script, ['mount', 'umount2'], ['CAP_SYS_ADMIN', 'CAP_SETUID', 'CAP_SETGID', 'CAP_DAC_OVERRIDE']);

    const listeners: SeccompListener[] = [];
    const handlers: Promise<void>[] = [];
    const seenPerformers: number[][] = [];
    const errors: unknown[] = [];
    let wrongId: unknown;
    let mounts = 0;
    const handle = async (l: SeccompListener) => {
      for await (const n of l) {
        try {
          if (n.syscall === 'mount') {
            mounts++;
            if (mounts === 2) {
              // Kill the performer the first mount started: the next call must get a new one.
              const [p] = performers({ zombies: true });
              seenPerformers.push([p!]);
              process.kill(p!, 'SIGKILL');
              await until('killed performer gone', () => gone(p!));
              await new Promise((r) => setTimeout(r, 200)); // the manager side sees its socket close
            }
            if (mounts === 3) {
              // A notification id that is not this call's: the performer's run must refuse it.
              wrongId = await mountAs({ pid: n.pid, source: 'tmpfs', target: '/mnt', fstype: 'tmpfs', notify: { fd: l.fd, id: n.id + 1000n } }).then(() => 'performed', (e: unknown) => e);
              await l.respond(n.id, { kind: 'errno', errno: EPERM });
              continue;
            }
            await mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, flags: n.args[3], data: n.strings.data, notify: { fd: l.fd, id: n.id } });
            seenPerformers.push(performers({ zombies: true }));
          } else {
            await umountAs({ pid: n.pid, target: n.strings.target!, flags: n.args[1], notify: { fd: l.fd, id: n.id } });
          }
          await l.respond(n.id, { kind: 'value', val: 0 });
        } catch (e) {
          errors.push(e);
          await l.respond(n.id, { kind: 'errno', errno: EPERM }).catch(() => {});
        }
      }
    };
    const agent = serveSeccompAgent(sock, (c) => {
      if (c.notifyFd === null) return;
      const l = listenSeccomp(c.notifyFd);
      listeners.push(l);
      handlers.push(handle(l));
    });
    try {
      expect(performers({ zombies: true })).toEqual([]);
      const r = await runCmd('runc', ['--root', join(dir, 'runc'), 'run', '--bundle', b, 'eci-performer'], undefined, undefined, 120_000);
      expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
      expect(errors).toEqual([]);
      // Mounted for the container by a performer, and by a new one after the first was killed.
      expect(r.stdout).toContain('a=0');
      expect(r.stdout).toContain('a-mounts=1');
      expect(r.stdout).toContain('ua=0');
      expect(r.stdout).toContain('b=0');
      expect(r.stdout).toContain('b-mounts=1');
      expect(r.stdout).toContain('ub=0');
      const [first, killed, second] = seenPerformers;
      expect(first).toHaveLength(1);
      expect(killed).toEqual(first);
      expect(second).toHaveLength(1);
      expect(second![0]).not.toBe(first![0]);
      // The wrong id was refused by the ID_VALID check (nothing mounted), so the caller saw EPERM.
      expect(wrongId).toMatchObject({ syscall: 'ioctl', code: 'ENOENT' });
      expect(r.stdout).toMatch(/c=[1-9]/);
      expect(r.stdout).toContain('c-mounts=0');
      // The container is gone: the listener closes its fd, and with it the performer.
      await until('listener closed', () => listeners[0]!.fd === -1);
      await until('performer exited', () => gone(second![0]!));
      expect(performers({ zombies: true })).toEqual([]);
    } finally {
      await agent.close();
      for (const l of listeners) await l.close();
      await Promise.allSettled(handlers);
      await runCmd('runc', ['--root', join(dir, 'runc'), 'delete', '--force', 'eci-performer'], undefined, undefined, 60_000);
    }
  });

  it('finishes a run it has taken when the manager closes it at once (no call performed but reported refused)', async () => {
    // The listener's close can be reported while a request is on its way: the spare that took it
    // must run it to the end, not be killed by its performer seeing the socket's end.
    const script = [...Array.from({ length: 6 }, (_, i) => `mount -t tmpfs tmpfs /mnt; echo "r${i}=$?"`), 'echo "mounts=$(grep -c " /mnt " /proc/mounts)"'].join('\n');
    const { sock, b } = await bundle('closing', script, ['mount'], ['CAP_SYS_ADMIN', 'CAP_SETUID', 'CAP_SETGID', 'CAP_DAC_OVERRIDE']);
    const outcomes: string[] = [];
    const r = await runWithAgent(sock, b, 'eci-performer-closing', async (n, l) => {
      const run = mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, flags: n.args[3], data: n.strings.data, notify: { fd: l.fd, id: n.id } });
      closePerformer(l.fd, l); // as a late-reported close would, with the request just written
      const ok = await run.then(() => true, (e: unknown) => { outcomes.push(String((e as Error).message)); return false; });
      await l.respond(n.id, ok ? { kind: 'value', val: 0 } : { kind: 'errno', errno: EPERM });
    });
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    expect(outcomes, outcomes.join(' | ')).toEqual([]);
    for (let i = 0; i < 6; i++) expect(r.stdout).toContain(`r${i}=0`);
    expect(r.stdout).toContain('mounts=6');
  });

  it('holds the notify fd and nothing else of the manager (and the user namespace its calls came from); its spare run waits on the manager socket with the notify fd and its note pipe only', async () => {
    const { sock, b } = await bundle('2', 'mount -t tmpfs tmpfs /mnt; echo "m=$?"; sleep 1', ['mount']);
    let shape: { fds: Record<string, string>; spare: Record<string, string> } | undefined;
    let userns = '';
    const listeners: SeccompListener[] = [];
    const agent = serveSeccompAgent(sock, (c) => {
      if (c.notifyFd === null) return;
      const l = listenSeccomp(c.notifyFd);
      listeners.push(l);
      void (async () => {
        for await (const n of l) {
          userns = readlinkSync(`/proc/${n.pid}/ns/user`);
          await mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, notify: { fd: l.fd, id: n.id } })
            .then(() => l.respond(n.id, { kind: 'value', val: 0 }), () => l.respond(n.id, { kind: 'errno', errno: EPERM }));
          const [p] = performers({ zombies: true });
          if (p) {
            const fdsOf = (pid: number) => Object.fromEntries(readdirSync(`/proc/${pid}/fd`).map((fd) => [fd, readlinkSync(`/proc/${pid}/fd/${fd}`)]));
            // The spare: the performer's one live child once the call was answered (the run is reaped after its answer).
            await new Promise((r) => setTimeout(r, 100));
            const kids = childrenOf(p, { zombies: false });
            shape = { fds: fdsOf(p), spare: kids.length === 1 ? fdsOf(kids[0]!) : { kids: String(kids) } };
          }
        }
      })();
    });
    try {
      const r = await runCmd('runc', ['--root', join(dir, 'runc'), 'run', '--bundle', b, 'eci-performer2'], undefined, undefined, 120_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('m=0');
      expect(shape).toBeDefined();
      const { fds, spare } = shape!;
      for (const fd of ['0', '1', '2']) expect(fds[fd]).toBe('/dev/null');
      expect(fds['3']).toMatch(/^socket:/);
      expect(fds['4']).toMatch(/seccomp/);
      // Beyond those: the spare's note pipe and the caller's user namespace (whose maps its spares no
      // longer read: perform.c's perform_learn), nothing else.
      const extra = Object.keys(fds).filter((fd) => Number(fd) > 4).map((fd) => fds[fd]!).sort();
      expect(extra).toHaveLength(2);
      expect(extra[0]).toMatch(/^pipe:/);
      expect(extra[1]).toBe(userns);
      // The spare waits on the manager's socket itself (the performer does not relay requests).
      expect(Object.keys(spare).sort()).toEqual(['0', '1', '2', '3', '4', '5']);
      expect(spare['3']).toBe(fds['3']);
      expect(spare['4']).toMatch(/seccomp/);
      expect(spare['5']).toMatch(/^pipe:/);
    } finally {
      await agent.close();
      for (const l of listeners) await l.close();
      await runCmd('runc', ['--root', join(dir, 'runc'), 'delete', '--force', 'eci-performer2'], undefined, undefined, 60_000);
    }
  });

  it('learns the id maps of a user namespace its calls come from; a nested namespace\'s calls get that namespace\'s own maps', async () => {
    // uid 1000 in the container (ambient CAP_SYS_ADMIN) is host uid 101000; in a user namespace of its own
    // (unshare -r) it is 0. Translated through the container's maps instead, the nested calls would run
    // as uid 1000, which that namespace does not map: setresuid fails and the call is refused.
    // Its supplementary groups (1000, and 1, which the nested namespace does not map) cannot be set from
    // inside that namespace (unshare -r denies setgroups): the performer sets them before entering it.
    const script = [
      'for i in 1 2 3; do mount -t tmpfs t /mnt; echo "m$i=$?"; umount /mnt; echo "u$i=$?"; done',
      `unshare -U -r -m sh -c 'for i in 1 2 3; do mount -t tmpfs t /mnt; echo "n$i=$?"; umount /mnt; echo "nu$i=$?"; done; cat /proc/self/uid_map'`,
    ].join('\n');
    const { sock, b } = await bundle('learn', script, ['mount', 'umount2'], ['CAP_SYS_ADMIN'], 1000, [1000, 1]);
    const callers = new Set<string>();
    const pinned = new Set<string>();
    const r = await runWithAgent(sock, b, 'eci-performer-learn', async (n, l) => {
      callers.add(readlinkSync(`/proc/${n.pid}/ns/user`));
      const notify = { fd: l.fd, id: n.id, answer: true };
      const run = n.syscall === 'mount'
        ? mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, flags: n.args[3], notify })
        : umountAs({ pid: n.pid, target: n.strings.target!, flags: n.args[1], notify });
      const o = await run.then((x) => x, (e: unknown) => ({ answered: answeredOf(e) }));
      if (!o.answered) await l.respond(n.id, { kind: 'errno', errno: EPERM });
      for (const p of performers({ zombies: false }))
        for (const fd of readdirSync(`/proc/${p}/fd`)) {
          try { const t = readlinkSync(`/proc/${p}/fd/${fd}`); if (t.startsWith('user:')) pinned.add(t); } catch { /* closed meanwhile */ }
        }
    });
    expect(r.code, r.stderr).toBe(0);
    for (const k of ['m', 'u', 'n', 'nu']) for (const i of [1, 2, 3]) expect(r.stdout).toContain(`${k}${i}=0`);
    expect(r.stdout).toMatch(/^\s*0\s+1000\s+1\s*$/m); // the nested namespace's map, seen from the container
    expect(callers.size).toBe(2);
    expect([...pinned].sort()).toEqual([...callers].sort());
  });

  it('answers the caller itself when asked: 0, or the call\'s own errno, and the manager only learns the outcome', async () => {
    // The proc mount is not run in place (it forks into the pid namespace): the performer answers that one.
    const script = 'mount -t tmpfs tmpfs /mnt; echo "a=$?"; grep -c " /mnt " /proc/mounts; mount -t tmpfs tmpfs /nowhere; echo "b=$?"; umount /mnt; echo "u=$?"; mount -t proc proc /mnt; echo "p=$?"; ls /mnt/1 >/dev/null && echo p-own';
    const { sock, b } = await bundle('3', script, ['mount', 'umount2']);
    const outcomes: unknown[] = [];
    const r = await runWithAgent(sock, b, 'eci-performer3', async (n, l) => {
      const notify = { fd: l.fd, id: n.id, answer: true };
      const run = n.syscall === 'mount'
        ? mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, notify })
        : umountAs({ pid: n.pid, target: n.strings.target!, flags: n.args[1], notify });
      // Answered by the performer: a second answer must find nothing pending.
      const o = await run.then((x) => x, (e: unknown) => ({ failed: e, answered: answeredOf(e) }));
      outcomes.push(o);
      if (!o.answered) await l.respond(n.id, { kind: 'errno', errno: EPERM });
      else outcomes.push(await answerAgain(() => l.respond(n.id, { kind: 'value', val: 0 })));
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/a=0\n1\n/);
    expect(r.stdout).toMatch(/b=[1-9]/);
    expect(r.stdout + r.stderr).toMatch(/No such file or directory/);
    expect(r.stdout).toContain('u=0');
    expect(r.stdout).toContain('p=0');
    expect(r.stdout).toContain('p-own');
    const [ok, again1, noent, again2, um, again3, proc, again4] = outcomes as [{ answered: { errno: number; sendErrno: number; atUs: number } }, string, { failed: { syscall: string; code: string }; answered: { errno: number } }, string, { answered: { errno: number } }, string, { answered: { errno: number } }, string];
    expect(proc.answered).toMatchObject({ errno: 0, sendErrno: 0 });
    expect([again3, again4]).toEqual(['ENOENT', 'ENOENT']);
    expect(ok.answered).toMatchObject({ errno: 0, sendErrno: 0 });
    expect(Math.abs(ok.answered.atUs - Number(process.hrtime.bigint() / 1000n))).toBeLessThan(120_000_000);
    expect(noent.failed).toMatchObject({ syscall: 'mount', code: 'ENOENT' });
    expect(noent.answered).toMatchObject({ errno: constants.errno.ENOENT });
    expect(um.answered).toMatchObject({ errno: 0 });
    expect([again1, again2]).toEqual(['ENOENT', 'ENOENT']);
  });

  it('fails closed when a run dies: the caller gets EPERM from the performer; a spare that dies waiting ends its performer, and the next call gets a new one', async () => {
    const script = 'mount -t tmpfs tmpfs /stall; echo "s=$?"; mount -t tmpfs tmpfs /mnt; echo "m=$?"; grep -c " /stall " /proc/mounts; true';
    const { sock, b } = await bundle('4', script, ['mount']);
    mkdirSync(join(b, 'rootfs', 'stall'));
    const outcomes: unknown[] = [];
    const performerPids: number[] = [];
    const earlier = performers({ zombies: true });
    const spareOf = (p: number) => childrenOf(p, { zombies: false });
    process.env.ECI_TEST_SPARE_STALL = '/stall';
    try {
      const r = await runWithAgent(sock, b, 'eci-performer4', async (n, l) => {
        const run = mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, notify: { fd: l.fd, id: n.id, answer: true } });
        const p = await performerFor([...earlier, ...performerPids]);
        performerPids.push(p);
        if (n.strings.target === '/stall') {
          // The run stops in the stall hook: kill it there (it has told the performer it started).
          await until('the stalled run', () => spareOf(p!).length === 1, 5000);
          await new Promise((r) => setTimeout(r, 100));
          const [stalled] = spareOf(p!);
          process.kill(stalled!, 'SIGKILL');
          outcomes.push(await run.then((x) => x, (e: unknown) => ({ failed: e, answered: answeredOf(e) })));
          // Now kill the fresh spare while it waits for a request: its performer must end.
          await until('a new spare', () => spareOf(p!).some((k) => k !== stalled), 5000);
          const [waiting] = spareOf(p!).filter((k) => k !== stalled);
          process.kill(waiting!, 'SIGKILL');
          await until('the performer ended', () => gone(p!), 5000);
          await new Promise((r) => setTimeout(r, 200)); // the manager side sees its socket close
          return;
        }
        const o = await run.then((x) => x, (e: unknown) => ({ failed: e, answered: answeredOf(e) }));
        outcomes.push(o);
        if (!o.answered) await l.respond(n.id, { kind: 'errno', errno: EPERM });
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/s=[1-9]/);
      expect(r.stdout + r.stderr).toMatch(/Operation not permitted|permission denied/i);
      expect(r.stdout).toContain('m=0');
      expect(r.stdout).toMatch(/\n0\n?$/); // nothing was mounted at /stall
      const [stalled, next] = outcomes as [{ failed: { message: string }; answered: { errno: number } }, { answered: { errno: number } }];
      expect(stalled.answered).toMatchObject({ errno: EPERM });
      expect(stalled.failed.message).toMatch(/SIGKILL/);
      expect(next.answered).toMatchObject({ errno: 0 });
      expect(performerPids[1]).not.toBe(performerPids[0]);
    } finally {
      delete process.env.ECI_TEST_SPARE_STALL;
    }
  });

  it('has the next spare ready while a run goes on: a stalled run does not hold back the next call, and is refused (EPERM) once killed', async () => {
    // Two callers: the first stalls in its run; the second's call must be performed meanwhile.
    const script = '(mount -t tmpfs tmpfs /stall; echo "s=$?") & sleep 0.3; mount -t tmpfs tmpfs /mnt; echo "m=$?"; wait; grep -c " /stall " /proc/mounts; true';
    const { sock, b } = await bundle('5', script, ['mount']);
    mkdirSync(join(b, 'rootfs', 'stall'));
    const earlier = performers({ zombies: true });
    let stalledRun: Promise<unknown> | undefined;
    let stalledPid: number | undefined;
    let niceValues: number[] = [];
    let slices: number[] = [];
    let watcherThreads: { nice: number; slice: number }[] = [];
    // sched-slice.h's EEVDF slice (ns), from /proc/<pid>/sched (Linux 6.12+ honours a requested one).
    const sliceOf = (path: string) => Number(/^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(path, 'utf8'))?.[1]);
    const niceOf = (pid: number) => { const st = readFileSync(`/proc/${pid}/stat`, 'utf8'); return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[16]); };
    let next: { answered?: { errno: number }; stalledAlive?: boolean } | undefined;
    process.env.ECI_TEST_SPARE_STALL = '/stall';
    try {
      const r = await runWithAgent(sock, b, 'eci-performer5', async (n, l) => {
        const run = mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, notify: { fd: l.fd, id: n.id, answer: true } });
        if (n.strings.target === '/stall') {
          stalledRun = run.then((x) => x, (e: unknown) => ({ failed: e, answered: answeredOf(e) }));
          const p = await performerFor(earlier);
          // The stalled run plus the spare forked as it started.
          await until('a spare beside the stalled run', () => childrenOf(p!, { zombies: false }).length === 2, 5000);
          stalledPid = childrenOf(p!, { zombies: false })[0];
          // perform.c's PERFORM_NICE, inherited by its runs and spares (the test runs as root).
          niceValues = [p!, ...childrenOf(p!, { zombies: false })].map(niceOf);
          slices = [p!, ...childrenOf(p!, { zombies: false })].map((pid) => sliceOf(`/proc/${pid}/sched`));
          // The listener's watcher thread (native/src/seccomp.cc) in this process: the same nice value and slice.
          watcherThreads = readdirSync('/proc/self/task').map((t) => ({ nice: niceOf(Number(t)), slice: sliceOf(`/proc/self/task/${t}/sched`) })).filter((t) => t.nice === -5);
          return; // not awaited: the next notification is handled while this run stalls
        }
        const o = await run.then((x) => x, (e: unknown) => ({ failed: e, answered: answeredOf(e) }));
        next = { ...o, stalledAlive: stalledPid !== undefined && !gone(stalledPid) };
        process.kill(stalledPid!, 'SIGKILL');
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('m=0');
      expect(r.stdout).toMatch(/s=[1-9]/);
      expect(r.stdout).toMatch(/\n0\n?$/); // nothing was mounted at /stall
      expect(next).toMatchObject({ answered: { errno: 0 }, stalledAlive: true });
      expect(niceValues).toEqual([-5, -5, -5]);
      expect(slices).toEqual([100_000, 100_000, 100_000]);
      expect(watcherThreads.length).toBeGreaterThan(0);
      expect(watcherThreads.every((t) => t.slice === 100_000)).toBe(true);
      const stalled = (await stalledRun) as { failed: { message: string }; answered: { errno: number } };
      expect(stalled.answered).toMatchObject({ errno: EPERM });
      expect(stalled.failed.message).toMatch(/SIGKILL/);
    } finally {
      delete process.env.ECI_TEST_SPARE_STALL;
    }
  });
});
