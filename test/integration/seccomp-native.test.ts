// The native half of syscall vetting against a real runc 1.1.5 container: the agent socket receives
// runc's state and notify fd, notifications arrive decoded (strings read from the container's memory,
// struct mount_attr), answers reach the container (errno, or a mount done for it by eci-helper
// mount-as/umount-as and answered with value 0), garbage on the socket is reported and never crashes,
// and the listener reports closed when the container is gone.
import { execFileSync } from 'node:child_process';
import { runCmd } from '../helpers/run.ts';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NativeError,
  listenSeccomp,
  mountAs,
  serveSeccompAgent,
  umountAs,
  type SeccompAgentConnection,
  type SeccompListener,
  type SeccompNotif,
} from '../../native/index.ts';
import { makeBusyboxRootfs } from '../helpers/busybox.ts';
import { buildC } from '../helpers/cprog.ts';
import { seccompSkipReason } from '../helpers/skip.ts';

const { EPERM, EXDEV } = constants.errno;
const skip = seccompSkipReason({ gcc: true });

const NOTIFIED = ['mount', 'umount2', 'mount_setattr', 'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick'];
const CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_SYS_ADMIN',
];

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`timed out: ${what}`)), ms))]);
}

const runc = (args: string[]) => runCmd('runc', args, undefined, undefined, 120_000);

/** Connects with Node's net (no fds), writes data, and resolves when the server closes the connection. */
function rawConnect(path: string, data: string | Buffer | null): Promise<number> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.createConnection(path, () => {
      if (data !== null) s.end(data);
    });
    s.on('error', () => {}); // EPIPE/ECONNRESET when the server stops reading at 64 KiB
    s.on('close', () => resolve(Date.now() - t0));
  });
}

describe.skipIf(skip !== null)(`seccomp notify with runc${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  let runcRoot: string;
  const bins: Record<string, string> = {};

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/eci-seccomp-');
    chmodSync(dir, 0o755); // container root (host uid 100000) must traverse to its rootfs
    runcRoot = join(dir, 'runc');
    for (const name of ['mount_setattr_rw', 'mount_at', 'mount_loop', 'sendfds']) bins[name] = await buildC(name);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function bundle(name: string, script: string, sock: string): Promise<string> {
    const b = join(dir, name);
    const rootfs = join(b, 'rootfs');
    await makeBusyboxRootfs(rootfs);
    mkdirSync(join(rootfs, 'mnt'));
    for (const n of ['mount_setattr_rw', 'mount_at', 'mount_loop']) copyFileSync(bins[n], join(rootfs, n));
    const config = {
      ociVersion: '1.0.2',
      process: {
        terminal: false,
        user: { uid: 0, gid: 0 },
        args: ['/bin/sh', '-c', script],
        env: ['PATH=/bin:/'],
        cwd: '/',
        capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
      },
      root: { path: 'rootfs', readonly: false },
      hostname: name,
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      ],
      linux: {
        namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'user'].map((type) => ({ type })),
        uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        // No `flags`: runc 1.1.5 rejects any.
        seccomp: {
          defaultAction: 'SCMP_ACT_ALLOW',
          architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
          listenerPath: sock,
          syscalls: [{ names: NOTIFIED, action: 'SCMP_ACT_NOTIFY' }],
        },
      },
    };
    writeFileSync(join(b, 'config.json'), JSON.stringify(config));
    return b;
  }

  it('vets a container\'s mounts: errno answers, mounts done for it, mount_setattr decoded, closed at exit', async () => {
    const sock = join(dir, 'agent.sock');
    const script = [
      'mount -t tmpfs tmpfs /mnt; echo "first=$?"',
      'mount -t tmpfs -o size=1m tmpfs /mnt; echo "second=$?"',
      'grep " /mnt " /proc/mounts || echo "no-mnt-mount"',
      'mkdir -p /tmp/sub && cd /tmp && /mount_at tmpfs sub tmpfs size=2m; grep " /tmp/sub " /proc/mounts; cd /',
      '/mount_setattr_rw /mnt 32',
      '/mount_setattr_rw /mnt 16',
      'umount /mnt; echo "umount=$?"; echo "mnt-mounts=$(grep -c " /mnt " /proc/mounts)"',
      '/mount_loop 400',
    ].join('\n');
    const b = await bundle('vet', script, sock);

    const conns: SeccompAgentConnection[] = [];
    const listeners: SeccompListener[] = [];
    const seen: SeccompNotif[] = [];
    const unexpected: unknown[] = [];
    const asMs: number[] = [];
    const handlers: Promise<void>[] = [];
    let mounts = 0;

    const handle = async (l: SeccompListener) => {
      for await (const n of l) {
        seen.push(n);
        try {
          if (n.syscall === 'mount' && n.strings.source === 'bench') {
            await l.respond(n.id, { kind: 'errno', errno: EPERM });
          } else if (n.syscall === 'mount' && ++mounts === 1) {
            await l.respond(n.id, { kind: 'errno', errno: EPERM });
          } else if (n.syscall === 'mount' || n.syscall === 'umount2') {
            const t0 = performance.now();
            try {
              if (n.syscall === 'mount')
                await mountAs({
                  pid: n.pid, source: n.strings.source, target: n.strings.target!, fstype: n.strings.fstype,
                  flags: n.args[3], data: n.strings.data, notify: { fd: l.fd, id: n.id },
                });
              else await umountAs({ pid: n.pid, target: n.strings.target!, flags: n.args[1], notify: { fd: l.fd, id: n.id } });
              await l.respond(n.id, { kind: 'value', val: 0 });
            } catch (e) {
              unexpected.push(e);
              const ne = e as NativeError;
              await l.respond(n.id, { kind: 'errno', errno: ne.syscall === n.syscall ? ne.errno : EPERM });
            }
            asMs.push(performance.now() - t0);
          } else if (n.syscall === 'mount_setattr') {
            await l.respond(n.id, { kind: 'errno', errno: EXDEV });
          } else {
            unexpected.push(n);
            await l.respond(n.id, { kind: 'continue' });
          }
        } catch (e) {
          if (!(e instanceof NativeError && e.code === 'ENOENT')) unexpected.push(e);
        }
      }
    };

    const agent = serveSeccompAgent(sock, (c) => {
      conns.push(c);
      if (c.notifyFd === null) return;
      const l = listenSeccomp(c.notifyFd);
      listeners.push(l);
      handlers.push(handle(l));
    });
    try {
      const tRun = performance.now();
      const r = await runc(['--root', runcRoot, 'run', '--bundle', b, 'eci-seccomp-vet']);
      console.log(`runc run took ${(performance.now() - tRun).toFixed(0)} ms`);
      const out = r.stdout;
      expect(r.code, `${r.stderr}\n${out}`).toBe(0);

      // The state runc sent, and the fd.
      expect(conns).toHaveLength(1);
      const c = conns[0];
      expect(c.error).toBeUndefined();
      expect(c.notifyFd).toBeGreaterThanOrEqual(0);
      const st = c.state as { ociVersion: string; fds: string[]; pid: number; state: { id: string; pid: number; status: string; bundle: string } };
      expect(st.fds).toEqual(['seccompFd']);
      expect(st.state.id).toBe('eci-seccomp-vet');
      expect(st.state.status).toBe('creating');
      expect(st.state.bundle).toBe(b);
      expect(st.pid).toBeGreaterThan(0);
      expect(st.state.pid).toBe(st.pid);
      expect(c.raw.startsWith('{')).toBe(true);

      // First mount: decoded, answered EPERM, seen as permission denied by busybox.
      const m1 = seen.find((n) => n.syscall === 'mount')!;
      expect(m1.strings).toMatchObject({ source: 'tmpfs', target: '/mnt', fstype: 'tmpfs' });
      expect(m1.nr).toBe(165);
      expect(m1.arch).toBe(0xc000003e);
      expect(typeof m1.id).toBe('bigint');
      expect(m1.args).toHaveLength(6);
      expect(out).toMatch(/first=[1-9]/);
      expect(r.stderr).toMatch(/permission denied/i);

      // Second mount: done for the container by eci-helper mount-as, answered value 0.
      const m2 = seen.filter((n) => n.syscall === 'mount')[1];
      expect(m2.strings.data).toContain('size=1m');
      expect(out).toContain('second=0');
      expect(out).toMatch(/^tmpfs \/mnt tmpfs rw.*size=1024k/m);
      expect(out).not.toContain('no-mnt-mount');

      // Relative target: resolved against the caller's cwd (/tmp).
      const rel = seen.find((n) => n.syscall === 'mount' && n.strings.target === 'sub')!;
      expect(rel.strings).toMatchObject({ source: 'tmpfs', fstype: 'tmpfs', data: 'size=2m' });
      expect(out).toContain('mount=0 errno=0');
      expect(out).toMatch(/^tmpfs \/tmp\/sub tmpfs rw.*size=2048k/m);

      // mount_setattr: struct mount_attr decoded when size >= 32, not at all with size 16.
      const msa = seen.filter((n) => n.syscall === 'mount_setattr');
      expect(msa).toHaveLength(2);
      expect(msa[0].strings.path).toBe('/mnt');
      expect(msa[0].mountAttr).toEqual({ attrSet: 6n, attrClr: 1n, propagation: 1n << 18n, usernsFd: 42n });
      expect(msa[0].args[4]).toBe(32n);
      expect(msa[1].mountAttr).toBeUndefined();
      expect(msa[1].args[4]).toBe(16n);
      expect(out.match(/mount_setattr=-1 errno=18/g)).toHaveLength(2);

      // umount2 done for it by eci-helper umount-as.
      const um = seen.find((n) => n.syscall === 'umount2')!;
      expect(um.strings.target).toBe('/mnt');
      expect(out).toContain('umount=0');
      expect(out).toContain('mnt-mounts=0');

      // Round trip as the container sees it.
      const loop = /mount_loop n=400 ok=0 p50_us=([\d.]+) p90_us=([\d.]+) p99_us=([\d.]+) max_us=([\d.]+)/.exec(out);
      expect(loop, out).not.toBeNull();
      const sorted = [...asMs].sort((x, y) => x - y);
      console.log(
        `seccomp round trip (mount -> errno answer, in container): p50 ${loop![1]} us, p90 ${loop![2]} us, ` +
          `p99 ${loop![3]} us, max ${loop![4]} us; mount-as/umount-as + respond: ` +
          `median ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} ms over ${sorted.length}`,
      );

      expect(unexpected).toEqual([]);
      // Once the container is gone the filter has no users: the listener reports closed.
      await withTimeout(listeners[0].closed, 5000, 'listener closed');
      expect(listeners[0].fd).toBe(-1);
      await withTimeout(Promise.all(handlers), 5000, 'handlers ended');
      expect(listeners[0].idValid(m1.id)).toBe(false);
      await expect(listeners[0].respond(m1.id, { kind: 'continue' })).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await agent.close();
      for (const l of listeners) await l.close();
      await runc(['--root', runcRoot, 'delete', '--force', 'eci-seccomp-vet']);
    }
    expect(existsSync(sock)).toBe(false);
  });

  it('reports garbage on the agent socket as errors, closes stray fds, and keeps serving', async () => {
    const sock = join(dir, 'garbage.sock');
    const got: SeccompAgentConnection[] = [];
    const waiters: (() => void)[] = [];
    const next = () => new Promise<SeccompAgentConnection>((resolve) => {
      const n = got.length;
      const check = () => (got.length > n ? resolve(got[n]) : waiters.push(check));
      check();
    });
    const agent = serveSeccompAgent(sock, (c) => {
      got.push(c);
      for (const w of waiters.splice(0)) w();
    });
    const sendfds = (n: number, payload: string, split = false) =>
      execFileSync(bins.sendfds, [sock, String(n), payload, ...(split ? ['split'] : [])], { encoding: 'utf8' });
    const good = JSON.stringify({ ociVersion: '1.0.2-dev', fds: ['seccompFd'], pid: 4242, state: { id: 'x', pid: 4242, status: 'creating', bundle: '/b' } });
    try {
      const fds0 = fdCount();

      // A silent connection is dropped after 5 s; meanwhile other connections are served at once.
      const silent = rawConnect(sock, null);

      let p = next();
      await rawConnect(sock, 'this is not json');
      let c = await withTimeout(p, 2000, 'bad json');
      expect(c).toMatchObject({ notifyFd: null, state: null, raw: 'this is not json' });
      expect(c.error).toMatch(/not JSON/);

      p = next();
      await rawConnect(sock, good);
      c = await withTimeout(p, 2000, 'no fd');
      expect(c.notifyFd).toBeNull();
      expect(c.error).toBe('no fd received (SCM_RIGHTS)');
      expect((c.state as { pid: number }).pid).toBe(4242);

      p = next();
      sendfds(2, good);
      c = await withTimeout(p, 2000, 'two fds');
      expect(c.notifyFd).toBeNull();
      expect(c.error).toMatch(/received 2 fds but the payload names 1/);

      p = next();
      sendfds(6, good);
      c = await withTimeout(p, 2000, 'six fds');
      expect(c.error).toMatch(/received 4 fds/); // fds beyond the first 4 are closed on receipt

      p = next();
      await rawConnect(sock, Buffer.alloc(100 * 1024, 'x'));
      c = await withTimeout(p, 2000, 'oversize');
      expect(c.error).toMatch(/larger than 65536/);
      expect(c.raw.length).toBe(65536);

      p = next();
      sendfds(1, '{"fds":["other"],"pid":1,"state":{"id":"x"}}');
      c = await withTimeout(p, 2000, 'no seccompFd name');
      expect(c.error).toMatch(/names no "seccompFd"/);

      // Well-formed, sent in two messages with the fd on the second: accepted.
      p = next();
      sendfds(1, good, true);
      c = await withTimeout(p, 2000, 'split');
      expect(c.error).toBeUndefined();
      expect(c.notifyFd).toBeGreaterThan(2);
      closeSync(c.notifyFd!);

      const silentMs = await withTimeout(silent, 9000, 'silent connection dropped');
      expect(silentMs).toBeGreaterThanOrEqual(4900);
      expect(got).toHaveLength(7); // the silent one delivered nothing
      expect(fdCount()).toBe(fds0);
    } finally {
      await agent.close();
    }
    expect(existsSync(sock)).toBe(false);
  }, 30_000);

  it('mount-as reports a vanished process as a failure to get there, not as the mount errno', async () => {
    await expect(mountAs({ pid: 0x3ffffff0, source: 'tmpfs', target: '/mnt', fstype: 'tmpfs' })).rejects.toMatchObject({
      code: 'ESRCH',
      syscall: 'open',
    });
    await expect(umountAs({ pid: 1, target: '' })).rejects.toThrow(/target/);
  });
});
