// Vetted mount syscalls through Docker: mounts inside containers still work, read-only mounts never
// become writable (mount, mount_setattr, open_tree + move_mount, binds, a two-thread race), eci's
// mounts cannot be unmounted, a dead manager means the calls wait for the next one, and every decision is audited.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import type { TestManager } from '../helpers/manager.ts';
import { installC } from '../helpers/cprog.ts';
import { replay } from '../helpers/events.ts';

const avail = dockerdAvailable();

describe.skipIf(!avail.ok)(`vetted mount syscalls through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let dir: string;
  let vol: string;
  let bin: string;
  const run = (...args: string[]) => d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', '--cap-add', 'SYS_ADMIN', ...args]);
  const results = (out: string) => Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ')));
  /** A probe of bin/ run under eci and under plain runc with SYS_ADMIN (both must exit 0): each one's results. */
  const underBoth = async (script: string) => {
    const probe = (runtime: string) => d.docker(['run', '--rm', ...RUN_FLAGS, `--runtime=${runtime}`, '--cap-add', 'SYS_ADMIN',
      '-v', `${bin}:/eci-bin:ro`, img, 'sh', '-c', script]);
    const [eci, runc] = [await probe('eci'), await probe('runc')];
    expect(eci.code, eci.stderr).toBe(0);
    expect(runc.code, runc.stderr).toBe(0);
    return [results(eci.stdout), results(runc.stdout)] as const;
  };

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
    dir = mkdtempSync('/tmp/eciw-');
    chmodSync(dir, 0o755);
    vol = join(dir, 'vol');
    bin = join(dir, 'bin');
    mkdirSync(vol);
    await installC(bin, 'ro_escape', 'remount_race', 'proc_self_mount', 'mount_strings');
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses remount,rw of a :ro volume with the message users know', async () => {
    const r = await run('-v', `${vol}:/mnt:ro`, img, 'mount', '-o', 'remount,rw', '/mnt', '/mnt');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('mount: permission denied (are you root?)');
  });

  it('lets the container mount, remount ro and rw its own tmpfs', async () => {
    const r = await run(img, 'sh', '-c', [
      'mkdir -p /root/tmpfs', 'mount -t tmpfs tmpfs /root/tmpfs', 'echo a > /root/tmpfs/f',
      'mount -o remount,ro /root/tmpfs', '! touch /root/tmpfs/g 2>/dev/null', 'mount -o remount,rw /root/tmpfs',
      'touch /root/tmpfs/g', 'grep " /root/tmpfs " /proc/mounts', 'umount /root/tmpfs', 'echo done',
    ].join(' && '));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/tmpfs \/root\/tmpfs tmpfs rw/);
    expect(r.stdout.trim().endsWith('done')).toBe(true);
  });

  it('keeps a :ro volume read-only through mount_setattr, open_tree + move_mount, binds and fspick', async () => {
    const r = await run('-v', `${vol}:/mnt:ro`, '-v', `${bin}:/eci-bin:ro`, img, '/eci-bin/ro_escape', '/mnt');
    expect(r.code, r.stderr).toBe(0);
    const x = results(r.stdout);
    console.log(`ro escape attempts under eci: ${JSON.stringify(x)}`);
    expect(x.mount_setattr_clear_rdonly).toBe('EPERM');
    expect(x.remount_rw).toBe('EPERM');
    expect(x.remount_rw_bind).toBe('EPERM');
    expect(x.fspick).toBe('EPERM');
    expect(x.umount_managed).toBe('EPERM');
    for (const k of Object.keys(x).filter((k) => k.startsWith('write_after_'))) expect(x[k], k).not.toBe('ok');
    if (x.open_tree_clone === 'ok') {
      expect(x.clone_mount_setattr_clear_rdonly).toBe('EPERM');
      expect(x.remount_rw_clone).not.toBe('ok');
    }
    expect(readdirSync(vol)).toEqual([]);
  });

  it('never makes the volume writable while a second thread flips the path during remounts', async () => {
    const r = await run('-v', `${vol}:/mnt:ro`, '-v', `${bin}:/eci-bin:ro`, img, 'sh', '-c',
      'mkdir -p /tmp/rw && mount -t tmpfs tmpfs /tmp/rw && /eci-bin/remount_race /mnt /tmp/rw 300');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('volume_writable no');
    expect(Number(/remounts_ok (\d+)/.exec(r.stdout)![1])).toBeGreaterThan(0); // the writable target did get remounted
    expect(readdirSync(vol)).toEqual([]);
  });

  it('resolves /proc/self/fd/N and /proc/thread-self/fd/N targets and sources as the caller does, like runc (issue 14)', async () => {
    // runc and systemd mount onto O_PATH fds through /proc/self/fd/N; inside eci's helper /proc/self
    // would be the helper itself (ENOENT, or "only bind mounts onto files").
    const [x, y] = await underBoth('mkdir -p /tmp/ps && /eci-bin/proc_self_mount /tmp/ps');
    console.log(`/proc/self/fd mounts under eci: ${JSON.stringify(x)}; under runc: ${JSON.stringify(y)}`);
    for (const k of ['tmpfs_self_fd', 'tmpfs_thread_self_fd', 'bind_relative_src', 'bind_fd_src', 'bind_onto_file', 'tmpfs_fd_subpath', 'tmpfs_fd_abs_symlink', 'tmpfs_self_cwd', 'bind_self_ns'])
      expect(x[k], k).toBe('ok');
    expect(x).toEqual(y);
  });

  it('reads a target string wherever it lies in the caller\'s memory, and refuses one it cannot read whole', async () => {
    // The watcher reads strings page by page (process_vm_readv moves whole pages or nothing).
    const [x, y] = await underBoth('mkdir -p /tmp/ms && /eci-bin/mount_strings /tmp/ms');
    console.log(`awkward target strings under eci: ${JSON.stringify(x)}; under runc: ${JSON.stringify(y)}`);
    for (const k of ['straddle', 'page_end', 'long_path']) {
      expect(x[k], k).toBe('ok');
      expect(y[k], k).toBe('ok');
    }
    // The kernel says EFAULT and ENAMETOOLONG; eci refuses what it could not read (fail closed).
    expect([y.unmapped, y.no_nul]).toEqual(['EFAULT', 'ENAMETOOLONG']);
    expect([x.unmapped, x.no_nul]).toEqual(['EPERM', 'EPERM']);
  });

  it('handles file mounts and non-mountpoints as the kernel does under runc (runc inside an inner engine relies on it)', async () => {
    // runc makes its file binds private, binds and unmounts its own binary, masks a directory with
    // /dev/null (ENOTDIR, then a tmpfs); dockerd unmounts paths that are no mounts (EINVAL).
    const script = [
      'touch /f /g; mkdir -p /d',
      'mount --bind /f /g; echo bind=$?',
      'mount --make-private /g; echo private=$?',
      'mount -o remount,bind,ro /g; echo remount=$?',
      'echo x > /g 2>/dev/null; echo write=$?',
      'umount /g; echo umount=$?',
      'grep -c " /g " /proc/mounts',
      'mount --bind /f /d 2>&1 | grep -o "Not a directory"',
      'umount /etc 2>&1 | grep -o "Invalid argument"',
    ].join('; ');
    const probe = (runtime: string) => d.docker(['run', '--rm', ...RUN_FLAGS, `--runtime=${runtime}`, '--cap-add', 'SYS_ADMIN', img, 'sh', '-c', script]);
    const [eci, runc] = [await probe('eci'), await probe('runc')];
    expect(runc.stdout.trim().split('\n')).toEqual(['bind=0', 'private=0', 'remount=0', 'write=1', 'umount=0', '0', 'Not a directory', 'Invalid argument']);
    expect(eci.stdout, eci.stderr).toBe(runc.stdout);
    // eci's own file mounts stay: unmounting the emulated /proc/meminfo is refused.
    const own = await run(img, 'sh', '-c', 'umount /proc/meminfo; echo rc=$?; grep -c " /proc/meminfo " /proc/mounts');
    expect(own.stdout.trim().split('\n')).toEqual(['rc=1', '1']);
  });

  it('keeps a :ro volume read-only when it is named through /proc/self/fd/N', async () => {
    const r = await run('-v', `${vol}:/mnt:ro`, '-v', `${bin}:/eci-bin:ro`, img, 'sh', '-c', 'mkdir -p /tmp/ps && /eci-bin/proc_self_mount /tmp/ps /mnt');
    expect(r.code, r.stderr).toBe(0);
    const x = results(r.stdout);
    expect(x.remount_rw_ro).toBe('EPERM');
    expect(x.remount_rw_bind_ro).toBe('EPERM');
    expect(x.bind_ro).toBe('ok');
    expect(x.remount_rw_bind_of_ro).toBe('EPERM');
    expect(x.write_after).not.toBe('ok');
    expect(readdirSync(vol)).toEqual([]);
  });

  it("is not fooled by a fake /proc: eci never acts through the container's own /proc", async () => {
    // The container replaces /proc with a tmpfs whose self/fd/N links all point at the ro volume,
    // then remounts its own tmpfs rw and unmounts another: neither may touch the volume.
    const r = await run('-v', `${vol}:/mnt:ro`, img, 'sh', '-c', [
      'mkdir -p /own /own2', 'mount -t tmpfs tmpfs /own', 'mount -t tmpfs tmpfs /own2', 'mount -o remount,ro /own',
      'mount -t tmpfs tmpfs /proc', 'mkdir -p /proc/self/fd /proc/thread-self/fd',
      'for i in $(seq 0 40); do ln -s /mnt /proc/self/fd/$i; ln -s /mnt /proc/thread-self/fd/$i; done',
      'mount -o remount,rw /own', 'umount /own2', 'touch /own/ok', 'touch /mnt/escape 2>/dev/null && echo ESCAPED; echo done',
    ].join(' && '));
    expect(r.stdout, r.stderr).toContain('done');
    expect(r.stdout).not.toContain('ESCAPED');
    expect(readdirSync(vol)).toEqual([]);
  });

  it('audits every decision on the bus', async () => {
    const id = (await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', '--cap-add', 'SYS_ADMIN', '-v', `${vol}:/mnt:ro`, img, 'sh', '-c',
      'mount -o remount,rw /mnt; mkdir -p /x && mount -t tmpfs tmpfs /x; true'])).stdout.trim();
    await d.docker(['wait', id]);
    await d.docker(['rm', id]);
    const ev = (await replay(m.natsUrl, `eci.v1.evt.vetter.${id}.decision`)).map((e) => e.event.data as Record<string, unknown>);
    expect(ev.find((e) => (e.strings as Record<string, string>).target === '/mnt')).toMatchObject({ syscall: 'mount', verdict: 'refused', errno: 'EPERM', flags: expect.stringMatching(/^0x/) });
    // The whole event on a mismatch: its reason says why a call was refused.
    const x = ev.find((e) => (e.strings as Record<string, string>).target === '/x');
    expect(x, JSON.stringify(x)).toMatchObject({ syscall: 'mount', verdict: 'performed' });
    for (const e of ev) expect(typeof e.latencyUs).toBe('number');
  });

  it('never lets a vetted call through while the manager is down: it waits, and the restarted manager answers it', async () => {
    // The fd-holder keeps the notify fd, so the call is queued in the kernel (not ENOSYS, not allowed).
    // Without a holder it fails with ENOSYS: docker-restart-vetting.test.ts.
    const id = (await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', '--cap-add', 'SYS_ADMIN', img, 'sh', '-c',
      'mkdir -p /y; sleep 3; mount -t tmpfs tmpfs /y; echo rc=$?; grep -c " /y " /proc/mounts; true'])).stdout.trim();
    await m.kill9();
    await new Promise((r) => setTimeout(r, 4500));
    expect((await d.docker(['logs', id])).stdout).not.toContain('rc=');
    await m.restart();
    await d.docker(['wait', id]);
    const logs = await d.docker(['logs', id]);
    expect(logs.stdout).toContain('rc=0');
    expect(logs.stdout.trim().split('\n').at(-1)).toBe('1');
    await d.docker(['rm', '-f', id]);
  });
});
