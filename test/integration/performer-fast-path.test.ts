// The performer's fast path against a real runc container: once the table is pushed, the watcher
// thread sends matching calls to the performer's fd 5 itself and the spare answers them (the listener
// only learns the outcome); the performer then holds that socket and nothing more; a killed performer
// means the next call goes the usual way (a new performer), and the table is pushed to the new one.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenSeccomp, mountAs, serveSeccompAgent, umountAs, type SeccompListener, type SeccompNotif } from '../../native/index.ts';
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

let dir: string;
async function bundle(name: string, script: string): Promise<{ sock: string; b: string }> {
  const sock = join(dir, `agent${name}.sock`);
  const b = join(dir, `bundle${name}`);
  await makeBusyboxRootfs(join(b, 'rootfs'));
  for (const m of ['m1', 'm2', 'm3', 'm4']) mkdirSync(join(b, 'rootfs', m));
  const caps = ['CAP_SYS_ADMIN'];
  writeFileSync(join(b, 'config.json'), JSON.stringify({
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/bin/sh', '-c', script], env: ['PATH=/bin:/'], cwd: '/', capabilities: { bounding: caps, effective: caps, permitted: caps } },
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
    const waitFor = (f: string) => `i=0; while [ ! -e /${f} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done`;
    const script = [
      'mount -t tmpfs tmpfs /m1; echo "a=$?"', waitFor('pushed1'), // the usual way: then the table is pushed
      'mount -t tmpfs tmpfs /m2; echo "b=$?"', waitFor('killed'), // fast; the agent then kills the performer
      'umount /m2; echo "c=$?"', waitFor('pushed2'), // the usual way (no performer on the line): a new one, pushed again
      'mount -t tmpfs tmpfs /m3; echo "d=$?"; grep -c " /m3 " /proc/mounts', // fast, through the new performer
    ].join('; ');
    const { sock, b } = await bundle('1', script);
    const table = compileFastTable({ ids: [], roDevs: [], volumes: null }, { ratePerSecond: 200, burst: 400 });
    const seen: { syscall: string; target: string | null; fastRule?: string; fastGen?: number; outcome?: unknown }[] = [];
    let layout: { perf: Record<string, string>; spare: Record<string, string> } | undefined;
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
              for (const end = Date.now() + 5000; childrenOf(p!, { zombies: false }).length !== 1 && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
              layout = { perf: fdsOf(p!), spare: fdsOf(childrenOf(p!, { zombies: false })[0]!) };
              process.kill(p!, 'SIGKILL');
              for (const end = Date.now() + 5000; alive(p!) && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
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
      // The performer holds the fast path's socket (fd 5) besides what it held before; the spare waits on both.
      const { perf, spare } = layout!;
      for (const fd of ['0', '1', '2']) expect(perf[fd]).toBe('/dev/null');
      expect(perf['3']).toMatch(/^socket:/);
      expect(perf['4']).toMatch(/seccomp/);
      expect(perf['5']).toMatch(/^socket:/);
      expect(Object.keys(perf).filter((fd) => Number(fd) > 5).map((fd) => perf[fd])).toEqual([expect.stringMatching(/^pipe:/)]);
      expect(Object.keys(spare).sort()).toEqual(['0', '1', '2', '3', '4', '5', '6']);
      expect([spare['3'], spare['5']]).toEqual([perf['3'], perf['5']]);
      expect(spare['6']).toMatch(/^pipe:/);
    } finally {
      await agent.close();
      for (const l of listeners) await l.close();
      await runCmd('runc', ['--root', join(dir, 'runc'), 'delete', '--force', 'eci-fastpath1'], undefined, undefined, 60_000);
    }
  });

  it('keeps one budget for both paths: past it (calls of the usual path charged too) calls go the usual way', async () => {
    const waitFor = (f: string) => `i=0; while [ ! -e /${f} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done`;
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
      await agent.close();
      for (const l of listeners) await l.close();
      await runCmd('runc', ['--root', join(dir, 'runc'), 'delete', '--force', 'eci-fastpath2'], undefined, undefined, 60_000);
    }
  });
});
