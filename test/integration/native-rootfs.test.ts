// Rootfs mounts of native/ (eci-helper + addon) against the real kernel and a real runc container:
// container root (host uid 100000) sees a root-owned rootfs and its writes land on disk as uid 0.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxRootfs } from '../helpers/busybox.ts';
import { buildC, gccMissing } from '../helpers/cprog.ts';
import { mountsUnder } from '../helpers/dockerd.ts';
import {
  helperPath,
  isMountpoint,
  mountHostView,
  mountRootfsBind,
  mountRootfsOverlay,
  NativeError,
  unmount,
  type IdRange,
} from '../../native/index.ts';

const RANGE: IdRange = { hostID: 100000, size: 65536 };
const TMP = '/run/eci/tmp';
const ADDON = new URL('../../native/build/Release/eci_native.node', import.meta.url).pathname;

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  const [maj = 0, min = 0] = release().split('.').map(Number);
  if (maj < 5 || (maj === 5 && min < 19)) return `kernel ${release()} < 5.19 (overlay on idmapped layers)`;
  if (!existsSync(helperPath())) return `${helperPath()} not built (npm run build)`;
  if (!existsSync(ADDON)) return 'native addon not built (npm run build)';
  if (!existsSync('/bin/busybox')) return 'no /bin/busybox (busybox-static)';
  if (spawnSync('runc', ['--version']).status !== 0) return 'no runc on PATH';
  return undefined;
}

const skip = skipReason();
const T = 60_000;

/** Mount points under /run/eci/tmp and entries in it: the helper must leave neither behind. */
function tmpState(): { mounts: string[]; entries: string[] } {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((mp) => mp === TMP || mp.startsWith(`${TMP}/`));
  return { mounts, entries: existsSync(TMP) ? readdirSync(TMP).sort() : [] };
}

function runcBin(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('runc', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The pid of the eci-hostview serving `view`, from /proc. */
function hostViewServer(view: string): number | undefined {
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('/eci-hostview') && argv.includes(view)) return Number(p);
    } catch { /* gone meanwhile */ }
  }
  return undefined;
}

/** Whether pid runs (a zombie, waiting for a parent that may never reap it, has ended). */
function processLive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe.skipIf(skip !== undefined)(`native rootfs mounts${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir = '';
  const containers: string[] = [];
  const runcRoot = () => join(dir, 'runc-root');

  /** Runs the test command in a runc container whose rootfs is `rootfs`, with the 100000 mapping. */
  async function runContainer(name: string, rootfs: string, o: { args?: string[]; uid?: number; nnp?: boolean } = {}) {
    const bundle = join(dir, `bundle-${name}`);
    await mkdir(bundle, { recursive: true });
    const mapping = [{ containerID: 0, hostID: RANGE.hostID, size: RANGE.size }];
    const config = {
      ociVersion: '1.0.2',
      process: {
        terminal: false,
        user: { uid: o.uid ?? 0, gid: o.uid ?? 0 },
        args: o.args ?? ['sh', '-c', 'id -u; echo x > /etc/f; stat -c %u /etc/img; cat /proc/self/uid_map'],
        env: ['PATH=/bin'],
        cwd: '/',
        noNewPrivileges: o.nnp ?? true,
      },
      root: { path: rootfs, readonly: false },
      hostname: name,
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      ],
      linux: {
        namespaces: ['pid', 'ipc', 'uts', 'mount', 'network', 'user'].map((type) => ({ type })),
        uidMappings: mapping,
        gidMappings: mapping,
      },
    };
    await writeFile(join(bundle, 'config.json'), JSON.stringify(config, null, 2));
    const id = `eci-native-${process.pid}-${name}`;
    containers.push(id);
    const r = await runcBin(['--root', runcRoot(), 'run', '--bundle', bundle, id]);
    await runcBin(['--root', runcRoot(), 'delete', '-f', id]);
    return r;
  }

  function expectContainerOutput(r: { code: number | null; stdout: string; stderr: string }) {
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('0'); // id -u
    expect(lines[1]).toBe('0'); // stat -c %u /etc/img
    expect(lines[2]?.trim().split(/\s+/)).toEqual(['0', String(RANGE.hostID), String(RANGE.size)]);
  }

  function statSummary(p: string) {
    const s = statSync(p);
    return { uid: s.uid, gid: s.gid, mode: s.mode, size: s.size, mtimeMs: s.mtimeMs, data: readFileSync(p, 'utf8') };
  }

  beforeAll(async () => {
    dir = await mkdtemp('/var/tmp/eci-native-');
    // runc walks to the rootfs as container root (host uid 100000): the path must be searchable.
    spawnSync('chmod', ['0755', dir]);
  }, T);

  afterAll(async () => {
    if (!dir) return;
    for (const id of containers) await runcBin(['--root', runcRoot(), 'delete', '-f', id]).catch(() => undefined);
    // Deepest first; never rm a tree that still has something mounted in it.
    for (const mp of (await mountsUnder(dir)).reverse()) {
      try {
        unmount(mp, { detach: true });
      } catch {
        /* reported below */
      }
    }
    const left = await mountsUnder(dir);
    if (left.length) throw new Error(`mounts left under ${dir}: ${left.join(' ')}`);
    await rm(dir, { recursive: true, force: true });
  }, T);

  it('mounts an overlay of idmapped layers that a runc container owns, with writes landing as uid 0', async () => {
    // Docker overlay2 layout: base/<layer>/diff, base/l/SHORT -> ../<layer>/diff, base/<ctr>/{diff,work}.
    const base = join(dir, 'overlay2');
    const lowerDir = join(base, 'img', 'diff');
    await makeBusyboxRootfs(lowerDir);
    await writeFile(join(lowerDir, 'etc', 'img'), 'image file\n', { mode: 0o644 });
    await mkdir(join(base, 'l'));
    await symlink('../img/diff', join(base, 'l', 'IMG'));
    await mkdir(join(base, 'ctr', 'diff'), { recursive: true });
    await mkdir(join(base, 'ctr', 'work'));
    const target = join(dir, 'rootfs-overlay');
    const img = join(lowerDir, 'etc', 'img');
    const before = statSummary(img);
    expect(before.uid).toBe(0);
    const tmpBefore = tmpState();

    await mountRootfsOverlay({
      base,
      lower: [join(base, 'l', 'IMG')],
      upper: join(base, 'ctr', 'diff'),
      work: join(base, 'ctr', 'work'),
      target,
      uid: RANGE,
      gid: RANGE,
    });
    expect(isMountpoint(target)).toBe(true);
    const mine = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === target);
    // Made by host root: trusted.overlay.* metadata like the engine's own overlay (no userxattr).
    expect(mine).toMatch(/ - overlay overlay rw,/);
    expect(mine).not.toMatch(/userxattr/);
    expect(tmpState()).toEqual(tmpBefore); // the temporary idmapped mount is gone already
    expect(statSync(img.replace(lowerDir, target)).uid).toBe(RANGE.hostID); // host view through the idmap

    expectContainerOutput(await runContainer('overlay', target));

    const f = join(base, 'ctr', 'diff', 'etc', 'f');
    expect(statSync(f).uid).toBe(0);
    expect(statSync(f).gid).toBe(0);
    expect(readFileSync(f, 'utf8')).toBe('x\n');
    expect(existsSync(join(lowerDir, 'etc', 'f'))).toBe(false);
    expect(statSummary(img)).toEqual(before);

    unmount(target);
    expect(isMountpoint(target)).toBe(false);
    expect(await mountsUnder(target)).toEqual([]);
    expect(tmpState()).toEqual(tmpBefore);
  }, T);

  it("gives the engine's path a host view of the overlay with on-disk ids, creating files as the caller's ids, whose server ends with the mount", async () => {
    const base = join(dir, 'overlay2-view');
    const lowerDir = join(base, 'img', 'diff');
    await makeBusyboxRootfs(lowerDir);
    await writeFile(join(lowerDir, 'etc', 'img'), 'image file\n', { mode: 0o644 });
    await chown(join(lowerDir, 'etc', 'img'), 33, 34);
    await mkdir(join(base, 'ctr', 'diff'), { recursive: true });
    await mkdir(join(base, 'ctr', 'work'));
    const target = join(dir, 'rootfs-view');
    const view = join(dir, 'engine-merged');
    await mkdir(view);
    await mountRootfsOverlay({ base, lower: [lowerDir], upper: join(base, 'ctr', 'diff'), work: join(base, 'ctr', 'work'), target, uid: RANGE, gid: RANGE });
    await mountHostView({ source: target, target: view, uid: RANGE, gid: RANGE });
    try {
      const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === view);
      expect(line).toContain(` - fuse.eci-rootfs ${target} `);
      // eci's overlay shows host ids; the view shows them as on disk, as the engine's own overlay would.
      expect(statSync(join(target, 'etc', 'img')).uid).toBe(RANGE.hostID + 33);
      expect([statSync(join(view, 'etc', 'img')).uid, statSync(join(view, 'etc', 'img')).gid]).toEqual([33, 34]);
      expect(readFileSync(join(view, 'etc', 'img'), 'utf8')).toBe('image file\n');

      // Host root writing through the view (docker cp) makes container root's files: on disk uid 0.
      await writeFile(join(view, 'etc', 'cp-in'), 'from host\n');
      await mkdir(join(view, 'srv'));
      await writeFile(join(view, 'srv', 'owned'), 'x');
      await chown(join(view, 'srv', 'owned'), 1000, 1001); // an archive's ids (docker cp -a)
      const upper = join(base, 'ctr', 'diff');
      expect([statSync(join(upper, 'etc', 'cp-in')).uid, statSync(join(upper, 'etc', 'cp-in')).gid]).toEqual([0, 0]);
      expect(statSync(join(upper, 'srv')).uid).toBe(0);
      expect([statSync(join(upper, 'srv', 'owned')).uid, statSync(join(upper, 'srv', 'owned')).gid]).toEqual([1000, 1001]);
      expect(statSync(join(target, 'etc', 'cp-in')).uid).toBe(RANGE.hostID);
      // A file capability set through the view is container root's, stored as under runc (v2, no root id).
      await copyFile('/bin/busybox', join(view, 'bin', 'capped'));
      const setcap = spawnSync('setcap', ['cap_net_raw+ep', join(view, 'bin', 'capped')], { encoding: 'utf8' });
      expect(setcap.status, setcap.stderr).toBe(0);
      const getcap = (p: string) => spawnSync('getcap', [p], { encoding: 'utf8' }).stdout.trim().split(/\s+/).slice(1).join(' ');
      expect(getcap(join(upper, 'bin', 'capped'))).toBe('cap_net_raw=ep');
      expect(getcap(join(view, 'bin', 'capped'))).toBe('cap_net_raw=ep');
      // What the container writes, the view shows at once (no stale cache of the running rootfs).
      await writeFile(join(target, 'etc', 'img'), 'changed\n');
      expect(readFileSync(join(view, 'etc', 'img'), 'utf8')).toBe('changed\n');
      expect(statSync(join(upper, 'etc', 'img')).uid).toBe(33); // copied up with its owner
      // A symlink is never followed by the view itself: chown of one changes the link only.
      await symlink('/etc/passwd', join(view, 'etc', 'to-host'));
      const hostPasswd = statSummary('/etc/passwd');
      spawnSync('chown', ['-h', '5:5', join(view, 'etc', 'to-host')]);
      expect(statSummary('/etc/passwd')).toEqual(hostPasswd);
      expect(lstatSync(join(upper, 'etc', 'to-host')).uid).toBe(5);
    } finally {
      const server = hostViewServer(view);
      unmount(view);
      // The server ends by itself once its mount is gone.
      for (let i = 0; server && i < 100 && processLive(server); i++) await sleep(100);
      if (server) expect(processLive(server), `eci-hostview ${server} still serving after its unmount (waited 10 s)`).toBe(false);
      unmount(target);
    }
  }, T);

  it('bind-mounts a plain directory rootfs idmapped, with writes landing in the source as uid 0', async () => {
    const source = join(dir, 'plain-rootfs');
    await makeBusyboxRootfs(source);
    await writeFile(join(source, 'etc', 'img'), 'image file\n', { mode: 0o644 });
    const target = join(dir, 'rootfs-bind');
    const img = join(source, 'etc', 'img');
    const before = statSummary(img);

    await mountRootfsBind({ source, target, uid: RANGE, gid: RANGE });
    expect(isMountpoint(target)).toBe(true);
    expect(statSync(join(target, 'etc', 'img')).uid).toBe(RANGE.hostID);

    expectContainerOutput(await runContainer('bind', target));

    const f = join(source, 'etc', 'f');
    expect(statSync(f).uid).toBe(0);
    expect(statSync(f).gid).toBe(0);
    expect(readFileSync(f, 'utf8')).toBe('x\n');
    expect(statSummary(img)).toEqual(before);

    unmount(target, { detach: true });
    expect(isMountpoint(target)).toBe(false);
    expect(await mountsUnder(target)).toEqual([]);
  }, T);

  it('refuses a lower layer outside base, mounting nothing', async () => {
    const base = join(dir, 'base-out');
    await mkdir(join(base, 'up'), { recursive: true });
    await mkdir(join(base, 'wk'));
    const elsewhere = join(dir, 'elsewhere');
    await mkdir(elsewhere);
    const target = join(dir, 'rootfs-out');
    const tmpBefore = tmpState();

    const err = await mountRootfsOverlay({
      base, lower: [elsewhere], upper: join(base, 'up'), work: join(base, 'wk'), target, uid: RANGE, gid: RANGE,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect(err).toMatchObject({ code: 'EUSAGE', errno: 22 });
    expect((err as NativeError).message).toContain('not under base');
    expect(existsSync(target)).toBe(false);
    expect(tmpState()).toEqual(tmpBefore);
  }, T);

  // real-hosts.md 1.1: setuid and file caps need the overlay's superblock to belong to an ancestor of
  // the container's user namespace; opaque dirs need trusted.overlay.* (what image layers carry).
  it.skipIf(gccMissing !== null)('honours setuid-root files and opaque dirs of the layers; host root writes land as a foreign id', async () => {
    const base = join(dir, 'ovl-suid');
    const low = join(base, 'low', 'diff');
    const top = join(base, 'top', 'diff');
    await makeBusyboxRootfs(low);
    await mkdir(join(low, 'etc', 'x'));
    await writeFile(join(low, 'etc', 'x', 'old'), 'old\n');
    await copyFile(await buildC('euid'), join(low, 'bin', 'euid'));
    await chmod(join(low, 'bin', 'euid'), 0o4755); // setuid, owned by on-disk root
    await mkdir(join(top, 'etc', 'x'), { recursive: true });
    await writeFile(join(top, 'etc', 'x', 'new'), 'new\n');
    // Docker's overlay2 marks a directory a layer deleted and made anew as opaque.
    const xa = spawnSync('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], "trusted.overlay.opaque", b"y")', join(top, 'etc', 'x')]);
    expect(xa.status, xa.stderr?.toString()).toBe(0);
    await mkdir(join(base, 'ctr', 'diff'), { recursive: true });
    await mkdir(join(base, 'ctr', 'work'));
    const target = join(dir, 'rootfs-suid');
    await mountRootfsOverlay({ base, lower: [top, low], upper: join(base, 'ctr', 'diff'), work: join(base, 'ctr', 'work'), target, uid: RANGE, gid: RANGE });

    const suid = await runContainer('suid', target, { uid: 1000, nnp: false, args: ['/bin/euid'] });
    expect(suid.code, suid.stderr).toBe(0);
    expect(suid.stdout.trim()).toMatch(/^ruid=1000 euid=0 /);
    const nnp = await runContainer('suid-nnp', target, { uid: 1000, nnp: true, args: ['/bin/euid'] });
    expect(nnp.stdout.trim()).toMatch(/^ruid=1000 euid=1000 capeff=0+$/); // no_new_privs still wins
    const ls = await runContainer('opaque', target, { args: ['sh', '-c', 'ls /etc/x; rm -rf /etc/x; mkdir /etc/x; ls -a /etc/x | wc -l'] });
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.trim().split('\n')).toEqual(['new', '2']);
    // What the container made opaque is marked the way the engine's own overlay reads it.
    const mark = spawnSync('python3', ['-c', 'import os,sys; print(os.getxattr(sys.argv[1], "trusted.overlay.opaque"))', join(base, 'ctr', 'diff', 'etc', 'x')]);
    expect(mark.stdout.toString().trim()).toBe("b'y'");

    // Host root (docker cp into a running container) can write; on disk the file is not container root's.
    await writeFile(join(target, 'from-host'), 'h\n');
    expect(statSync(join(base, 'ctr', 'diff', 'from-host')).uid).toBe(RANGE.size);
    const seen = await runContainer('hostfile', target, { args: ['stat', '-c', '%u %g', '/from-host'] });
    expect(seen.stdout.trim()).toBe('65534 65534');
    unmount(target);
  }, T);

  it('undoes the idmapped base mount when the overlay itself fails (missing upper)', async () => {
    const base = join(dir, 'base-noupper');
    await makeBusyboxRootfs(join(base, 'low'));
    await mkdir(join(base, 'wk'));
    const target = join(dir, 'rootfs-noupper');
    const tmpBefore = tmpState();

    const err = await mountRootfsOverlay({
      base, lower: [join(base, 'low')], upper: join(base, 'missing'), work: join(base, 'wk'), target, uid: RANGE, gid: RANGE,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect(err).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'fsconfig' });
    expect(existsSync(target)).toBe(false);
    expect(tmpState()).toEqual(tmpBefore);
    expect(await mountsUnder(dir)).toEqual([]);
  }, T);

  it('reports ENOENT for a bind source that does not exist, mounting nothing', async () => {
    const target = join(dir, 'rootfs-nosource');
    const err = await mountRootfsBind({ source: join(dir, 'no-such-dir'), target, uid: RANGE, gid: RANGE }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NativeError);
    expect(err).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'open_tree' });
    expect(existsSync(target)).toBe(false);
  }, T);

  it('unmount of a path that is not a mount point throws NativeError EINVAL from umount2', () => {
    expect(() => unmount(dir)).toThrow(NativeError);
    try {
      unmount(dir);
    } catch (e) {
      expect(e).toMatchObject({ code: 'EINVAL', errno: 22, syscall: 'umount2' });
    }
  });

  it('eci-helper answers bad usage with one EUSAGE JSON line and exit 2', async () => {
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(helperPath(), ['umount', '--target', 'relative/path'], (err, stdout) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout });
      });
    });
    expect(r.code).toBe(2);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'EUSAGE', errno: 22 });
  });
});
