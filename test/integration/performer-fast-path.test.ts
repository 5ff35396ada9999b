// The performer's fast path against a real runc container: once the table is pushed, the watcher
// thread sends matching calls to the performer's fd 5 itself and its lane answers them (the listener
// only learns the outcome); the performer then holds that socket and nothing more; a killed performer
// means the next call goes the usual way (a new performer), and the table is pushed to the new one.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { answeredOf, listenSeccomp, mountAs, serveSeccompAgent, umountAs, type SeccompListener, type SeccompNotif } from '../../native/index.ts';
import { FastFallbackError } from '../../native/seccomp-agent.ts';
import { compileFastTable } from '../../actors/vetter/fast-path.ts';
import { alive, childrenOf, performers } from '../helpers/bundle.ts';
import { makeBusyboxRootfs } from '../helpers/busybox.ts';
import { runCmd } from '../helpers/run.ts';
import { seccompSkipReason } from '../helpers/skip.ts';

function skipReason(): string | null {
  const r = seccompSkipReason();
  if (r) return r;
  if (process.env.ECI_HELPER_SERVER === '0' || process.env.ECI_HELPER_PERFORMER === '0' || process.env.ECI_FAST_PATH === '0') return 'performers or the fast path are turned off in this environment';
  return null;
}
const skip = skipReason();

const fdsOf = (pid: number) => Object.fromEntries(readdirSync(`/proc/${pid}/fd`).map((fd) => [fd, readlinkSync(`/proc/${pid}/fd/${fd}`)]));
const niceOf = (pid: number) => { const st = readFileSync(`/proc/${pid}/stat`, 'utf8'); return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[16]); };
/** A performer's live children: its spares (at its nice value) and its lane's (at -20: perform.c's PERFORM_LANE_NICE). */
const kidsOf = (p: number) => {
  const all = childrenOf(p, { zombies: false }).filter((k) => { try { niceOf(k); return true; } catch { return false; } });
  return { spares: all.filter((k) => niceOf(k) !== -20), lane: all.filter((k) => niceOf(k) === -20) };
};

/** A shell loop waiting for the agent's marker file /<f> (created in the rootfs), at most 20 s. */
const waitFor = (f: string) => `i=0; while [ ! -e /${f} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done`;

/** A test's end: its agent and listeners closed, its runc container deleted. */
async function stop(agent: { close(): Promise<void> }, listeners: SeccompListener[], id: string): Promise<void> {
  await agent.close();
  for (const l of listeners) await l.close();
  await runCmd('runc', ['--root', join(dir, 'runc'), 'delete', '--force', id], undefined, undefined, 60_000);
}

let dir: string;
async function bundle(name: string, script: string, user: { uid: number; gid: number; additionalGids?: number[] } = { uid: 0, gid: 0 }): Promise<{ sock: string; b: string }> {
  const sock = join(dir, `agent${name}.sock`);
  const b = join(dir, `bundle${name}`);
  await makeBusyboxRootfs(join(b, 'rootfs'));
  for (const m of ['m1', 'm2', 'm3', 'm4']) mkdirSync(join(b, 'rootfs', m));
  const caps = ['CAP_SYS_ADMIN'];
  writeFileSync(join(b, 'config.json'), JSON.stringify({
    ociVersion: '1.0.2',
    process: {
      terminal: false, user, args: ['/bin/sh', '-c', script], env: ['PATH=/bin:/'], cwd: '/',
      // Not root: ambient too, so that they survive the exec.
      capabilities: { bounding: caps, effective: caps, permitted: caps, ...(user.uid ? { inheritable: caps, ambient: caps } : {}) },
    },
    root: { path: 'rootfs', readonly: false },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }, { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755', 'size=65536k'] }],
    linux: {
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'user'].map((type) => ({ type })),
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      seccomp: { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], listenerPath: sock, syscalls: [{ names: ['mount', 'umount2'], action: 'SCMP_ACT_NOTIFY' }] },
    },
  }));
  return { sock, b };
}

describe.skipIf(skip !== null)(`the performer's fast path with runc${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-fastpath-');
    chmodSync(dir, 0o755);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sends matching calls to the performer from the watcher thread; a killed performer is replaced and gets the table again', async () => {
    // The script waits for the agent's marker files (created in its rootfs), for at most 20 s each.
    const script = [
      'mount -t tmpfs tmpfs /m1; echo "a=$?"', waitFor('pushed1'), // the usual way: then the table is pushed
      'mount -t tmpfs tmpfs /m2; echo "b=$?"', waitFor('killed'), // fast; the agent then kills the performer
      'umount /m2; echo "c=$?"', waitFor('pushed2'), // the usual way (no performer on the line): a new one, pushed again
      'mount -t tmpfs tmpfs /m3; echo "d=$?"; grep -c " /m3 " /proc/mounts', // fast, through the new performer
    ].join('; ');
    const { sock, b } = await bundle('1', script);
    const table = compileFastTable({ ids: [], roDevs: [], volumes: null }, { ratePerSecond: 200, burst: 400 });
    const seen: { syscall: string; target: string | null; fastRule?: string; fastGen?: number; outcome?: unknown }[] = [];
    let layout: { perf: Record<string, string>; spare: Record<string, string>; lane: Record<string, string> } | undefined;
    let laneLeft: number[] = [-1];
    const pushed: boolean[] = [];
    const listeners: SeccompListener[] = [];
    const agent = serveSeccompAgent(sock, (c) => {
      if (c.notifyFd === null) return;
      const l = listenSeccomp(c.notifyFd, { fastPath: true });
      listeners.push(l);
      void (async () => {
        for await (const n of l as AsyncIterable<SeccompNotif>) {
          const rec: (typeof seen)[number] = { syscall: n.syscall, target: n.strings.target, fastRule: n.fastRule, fastGen: n.fastGen };
          seen.push(rec);
          if (n.fastId !== undefined) {
            rec.outcome = await l.fastOutcome!({ fastId: n.fastId, fastGen: n.fastGen }).then((o) => o, (e: unknown) => ({ failed: String(e) }));
            if (seen.length === 2) {
              const [p] = performers({ zombies: false });
              // The next spare is forked after the answer.
              for (const end = Date.now() + 5000; (kidsOf(p!).spares.length !== 1 || kidsOf(p!).lane.length !== 2) && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
              layout = { perf: fdsOf(p!), spare: fdsOf(kidsOf(p!).spares[0]!), lane: fdsOf(kidsOf(p!).lane[0]!) };
              const lane = kidsOf(p!).lane;
              process.kill(p!, 'SIGKILL');
              for (const end = Date.now() + 5000; alive(p!) && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
              // Its lane's waiting children die with it (PR_SET_PDEATHSIG, set before they wait for the lock).
              for (const end = Date.now() + 5000; lane.some(alive) && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
              laneLeft = lane.filter(alive);
              writeFileSync(join(b, 'rootfs', 'killed'), '');
            }
            continue;
          }
          const notify = { fd: l.fd, id: n.id, answer: true };
          const o = await (n.syscall === 'mount'
            ? mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, notify })
            : umountAs({ pid: n.pid, target: n.strings.target!, flags: n.args[1], notify })).then((x) => x, (e: unknown) => ({ failed: String(e) }));
          rec.outcome = o;
          if (!('answered' in o && o.answered)) await l.respond(n.id, { kind: 'errno', errno: 1 }).catch(() => {});
          pushed.push(l.fastPath!(table));
          writeFileSync(join(b, 'rootfs', `pushed${pushed.length}`), '');
        }
      })();
    });
    try {
      const r = await runCmd('runc', ['--root', join(dir, 'runc'), 'run', '--bundle', b, 'eci-fastpath1'], undefined, undefined, 120_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/a=0\nb=0\nc=0\nd=0\n1\n/);
      expect(seen.map((s) => [s.syscall, s.target, s.fastRule ?? 'usual', s.fastGen ?? 0])).toEqual([
        ['mount', '/m1', 'usual', 0], ['mount', '/m2', 'tmpfs-mount', 1], ['umount2', '/m2', 'usual', 0], ['mount', '/m3', 'tmpfs-mount', 2],
      ]);
      for (const s of seen) expect(s.outcome, JSON.stringify(s)).toMatchObject({ answered: { errno: 0, sendErrno: 0 } });
      expect(pushed).toEqual([true, true]);
      expect(laneLeft).toEqual([]);
      // The performer holds the fast path's socket (fd 5) besides what it held before; the spare holds it too
      // (its fd layout), but reads fd 3 only: the lane's waiting child takes fd 5's requests.
      const { perf, spare, lane } = layout!;
      for (const fd of ['0', '1', '2']) expect(perf[fd]).toBe('/dev/null');
      expect(perf['3']).toMatch(/^socket:/);
      expect(perf['4']).toMatch(/seccomp/);
      expect(perf['5']).toMatch(/^socket:/);
      // Beyond those: the note pipes of the spare and of the lane's two waiting children and, once a run has
      // reported, the container's user namespace (perform.c's perform_learn; performer.test.ts checks which one).
      const extra = Object.keys(perf).filter((fd) => Number(fd) > 5).map((fd) => perf[fd]!);
      expect(extra.filter((t) => !t.startsWith('user:'))).toEqual([1, 2, 3].map(() => expect.stringMatching(/^pipe:/)));
      expect(extra.filter((t) => t.startsWith('user:')).length).toBeLessThanOrEqual(1);
      expect(Object.keys(spare).sort()).toEqual(['0', '1', '2', '3', '4', '5', '6']);
      expect([spare['3'], spare['5']]).toEqual([perf['3'], perf['5']]);
      expect(spare['6']).toMatch(/^pipe:/);
      // A lane child waiting: the notify fd, the fast path's socket and its note pipe; not the manager's socket.
      expect(Object.keys(lane).sort()).toEqual(['0', '1', '2', '4', '5', '6']);
      expect([lane['4'], lane['5']]).toEqual([perf['4'], perf['5']]);
      expect(lane['6']).toMatch(/^pipe:/);
    } finally {
      await stop(agent, listeners, 'eci-fastpath1');
    }
  });

  it('runs fast-path calls in its lane, not in spares, and a nested user namespace\'s with that namespace\'s own ids and groups', async () => {
    // uid 1000 (groups 1000 and 1) with CAP_SYS_ADMIN; then in a user namespace of its own (unshare -r:
    // it is 0 there, and setgroups is denied there), whose calls take that namespace's maps.
    const calls = (tag: string) => `for i in 1 2 3; do mount -t tmpfs t /m2; echo "${tag}m$i=$?"; umount /m2; echo "${tag}u$i=$?"; done`;
    const script = ['mount -t tmpfs tmpfs /m1; echo "a=$?"', waitFor('pushed1'), calls('c'), `unshare -U -r -m sh -c '${calls('n')}'`, waitFor('seen')].join('; ');
    const { sock, b } = await bundle('3', script, { uid: 1000, gid: 1000, additionalGids: [1000, 1] });
    const table = compileFastTable({ ids: [], roDevs: [], volumes: null }, { ratePerSecond: 200, burst: 400 });
    const outcomes: unknown[] = [];
    const rules: string[] = [];
    let performer = 0;
    let spares: number[][] = [];
    const liveKids = async () => {
      await new Promise((r) => setTimeout(r, 100)); // a lane child exits right after its note
      return kidsOf(performer).spares;
    };
    const listeners: SeccompListener[] = [];
    const agent = serveSeccompAgent(sock, (c) => {
      if (c.notifyFd === null) return;
      const l = listenSeccomp(c.notifyFd, { fastPath: true });
      listeners.push(l);
      void (async () => {
        for await (const n of l as AsyncIterable<SeccompNotif>) {
          rules.push(n.fastRule ?? 'usual');
          if (n.fastId !== undefined) {
            outcomes.push(await l.fastOutcome!({ fastId: n.fastId, fastGen: n.fastGen }).then((o) => o, (e: unknown) => ({ failed: String(e) })));
            if (outcomes.length === 6 || outcomes.length === 12) spares.push(await liveKids());
            if (outcomes.length === 12) writeFileSync(join(b, 'rootfs', 'seen'), '');
            continue;
          }
          const o = await mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, flags: n.args[3], notify: { fd: l.fd, id: n.id, answer: true } })
            .then((x) => x, (e: unknown) => ({ failed: String(e), answered: undefined }));
          if (!o.answered) await l.respond(n.id, { kind: 'errno', errno: 1 }).catch(() => {});
          if (!performer) {
            expect(l.fastPath!(table)).toBe(true);
            [performer] = performers({ zombies: false });
            spares = [await liveKids()];
            writeFileSync(join(b, 'rootfs', 'pushed1'), '');
          }
        }
      })();
    });
    try {
      const r = await runCmd('runc', ['--root', join(dir, 'runc'), 'run', '--bundle', b, 'eci-fastpath3'], undefined, undefined, 120_000);
      expect(r.code, r.stderr).toBe(0);
      for (const k of ['cm', 'cu', 'nm', 'nu']) for (const i of [1, 2, 3]) expect(r.stdout, r.stderr).toContain(`${k}${i}=0`);
      // unshare's own make-private of / goes the usual way (no rule); the 12 tmpfs mounts and unmounts are fast.
      expect(rules.filter((x) => x !== "usual"), JSON.stringify(rules)).toHaveLength(12);
      for (const o of outcomes) expect(o, JSON.stringify(o)).toMatchObject({ answered: { errno: 0, sendErrno: 0 } });
      // The spare forked before the first fast call took none of the six that followed (unshare's own call,
      // the usual way, then took it: one spare again after the nested six).
      expect(spares).toHaveLength(3);
      expect(spares[0]).toHaveLength(1);
      expect(spares[1]).toEqual(spares[0]);
      expect(spares[2]).toHaveLength(1);
    } finally {
      await stop(agent, listeners, 'eci-fastpath3');
    }
  });

  it('turns fast-path calls back while a lane run stalls, and ends once that run is killed before its outcome (the caller gets EPERM)', async () => {
    const script = [
      'mkdir -p /stall; mount -t tmpfs tmpfs /m1', waitFor('pushed1'),
      '(mount -t tmpfs t /stall; echo "s=$?") &', 'sleep 0.5', // the lane stalls on it (test hook), past PERFORM_LANE_STALL_MS
      'mount -t tmpfs t /m2; echo "b=$?"', waitFor('killed'), 'wait',
      'mount -t tmpfs t /m3; echo "d=$?"',
    ].join('\n');
    const { sock, b } = await bundle('4', script);
    const table = compileFastTable({ ids: [], roDevs: [], volumes: null }, { ratePerSecond: 200, burst: 400 });
    const seen: string[] = [];
    const listeners: SeccompListener[] = [];
    process.env.ECI_TEST_SPARE_STALL = '/stall';
    let performer = 0;
    const agent = serveSeccompAgent(sock, (c) => {
      if (c.notifyFd === null) return;
      const l = listenSeccomp(c.notifyFd, { fastPath: true });
      listeners.push(l);
      const usual = async (n: SeccompNotif) => {
        const o = await mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, flags: n.args[3], notify: { fd: l.fd, id: n.id, answer: true } })
          .then((x) => x, (e: unknown) => ({ failed: String(e), answered: answeredOf(e) }));
        if (!o.answered) await l.respond(n.id, { kind: 'errno', errno: 1 }).catch(() => {});
      };
      void (async () => {
        for await (const n of l as AsyncIterable<SeccompNotif>) {
          if (n.fastId === undefined) {
            seen.push(`${n.strings.target} usual`);
            await usual(n);
            if (!performer) {
              expect(l.fastPath!(table)).toBe(true);
              [performer] = performers({ zombies: false });
              writeFileSync(join(b, 'rootfs', 'pushed1'), '');
            }
            continue;
          }
          const outcome = l.fastOutcome!({ fastId: n.fastId, fastGen: n.fastGen });
          if (n.strings.target === '/stall') {
            seen.push('/stall fast');
            void outcome.then((o) => seen.push(`/stall ${JSON.stringify(o)}`), (e: unknown) => seen.push(`/stall failed ${answeredOf(e)?.errno ?? String(e)}`));
            continue;
          }
          const o = await outcome.then(() => 'ran', (e: unknown) => (e instanceof FastFallbackError ? 'turned back' : String(e)));
          seen.push(`${n.strings.target} ${o}`);
          if (o === 'turned back') await usual(n); // as the feed does
          if (n.strings.target === '/m2') {
            // The stalled lane child: the performer's one child at the lane's nice value (no next one is made
            // to wait for requests while a run is stalled).
            const lane = kidsOf(performer).lane;
            expect(lane).toHaveLength(1);
            process.kill(lane[0]!, 'SIGKILL');
            for (const end = Date.now() + 5000; alive(performer) && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
            seen.push(`performer ${alive(performer) ? 'alive' : 'ended'}`);
            writeFileSync(join(b, 'rootfs', 'killed'), '');
          }
        }
      })();
    });
    try {
      const r = await runCmd('runc', ['--root', join(dir, 'runc'), 'run', '--bundle', b, 'eci-fastpath4'], undefined, undefined, 120_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('b=0');
      expect(r.stdout).toContain('d=0');
      expect(r.stdout).toMatch(/s=[1-9]/);
      // The killed run's caller got EPERM from the performer, which then ended; the next call went the usual way.
      expect(seen).toEqual(['/m1 usual', '/stall fast', '/m2 turned back', `/stall failed ${constants.errno.EPERM}`, 'performer ended', '/m3 usual']);
    } finally {
      delete process.env.ECI_TEST_SPARE_STALL;
      await stop(agent, listeners, 'eci-fastpath4');
    }
  });

  it('keeps one budget for both paths: past it (calls of the usual path charged too) calls go the usual way', async () => {
    const script = ['mount -t tmpfs tmpfs /m1', waitFor('pushed1'), ...['m2', 'm3', 'm4', 'm1'].map((m) => `umount /${m} 2>/dev/null; mount -t tmpfs tmpfs /${m}`), 'echo done'].join('; ');
    const { sock, b } = await bundle('2', script);
    // A burst of 3, then one call every 100 s: nothing is refilled while the test runs.
    const table = compileFastTable({ ids: [], roDevs: [], volumes: null }, { ratePerSecond: 0.01, burst: 3 });
    const seen: string[] = [];
    const listeners: SeccompListener[] = [];
    const agent = serveSeccompAgent(sock, (c) => {
      if (c.notifyFd === null) return;
      const l = listenSeccomp(c.notifyFd, { fastPath: true });
      listeners.push(l);
      void (async () => {
        let pushes = 0;
        for await (const n of l as AsyncIterable<SeccompNotif>) {
          seen.push(`${n.syscall} ${n.strings.target} ${n.fastRule ?? 'usual'}`);
          if (n.fastId !== undefined) {
            await l.fastOutcome!({ fastId: n.fastId, fastGen: n.fastGen }).catch(() => {});
            continue;
          }
          const notify = { fd: l.fd, id: n.id, answer: true };
          const o = await (n.syscall === 'mount'
            ? mountAs({ pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype, notify })
            : umountAs({ pid: n.pid, target: n.strings.target!, flags: n.args[1], notify })).then((x) => x, (e: unknown) => ({ failed: String(e), answered: undefined }));
          if (!o.answered) await l.respond(n.id, { kind: 'errno', errno: 1 }).catch(() => {});
          if (pushes++ === 0) {
            expect(l.fastPath!(table)).toBe(true);
            l.fastCharge!(); // as the feed does for a call of the usual path: one of the 3 is used
            writeFileSync(join(b, 'rootfs', 'pushed1'), '');
          }
        }
      })();
    });
    try {
      const r = await runCmd('runc', ['--root', join(dir, 'runc'), 'run', '--bundle', b, 'eci-fastpath2'], undefined, undefined, 120_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('done');
      // After the first (usual) call: 2 left in the budget, then the usual path again.
      expect(seen, JSON.stringify(seen)).toEqual([
        'mount /m1 usual', 'umount2 /m2 umount', 'mount /m2 tmpfs-mount',
        'umount2 /m3 usual', 'mount /m3 usual', 'umount2 /m4 usual', 'mount /m4 usual', 'umount2 /m1 usual', 'mount /m1 usual',
      ]);
    } finally {
      await stop(agent, listeners, 'eci-fastpath2');
    }
  });
});
