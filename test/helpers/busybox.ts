// Minimal container rootfs made from the host's static busybox (Debian: busybox-static).
// Used wherever a test needs an image or an OCI bundle and no registry is reachable.
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The static busybox binary copied into every rootfs. */
export const BUSYBOX = '/bin/busybox';

const PASSWD =
  'root:x:0:0:root:/root:/bin/sh\n' +
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const GROUP = 'root:x:0:\nnobody:x:65534:\n';

/**
 * Populate `dir` (created if needed) with: bin/busybox + one symlink per applet
 * (`busybox --list`), etc/passwd and etc/group (root, nobody), and the empty
 * mount-point dirs proc, sys, dev, root (0700), tmp (1777).
 */
export async function makeBusyboxRootfs(dir: string): Promise<void> {
  const root = resolve(dir);
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'root', 'tmp']) {
    await mkdir(join(root, d), { recursive: true });
  }
  await chmod(root, 0o755);
  await chmod(join(root, 'root'), 0o700);
  await chmod(join(root, 'tmp'), 0o1777); // after mkdir: the umask would drop the sticky/world bits

  const bin = join(root, 'bin', 'busybox');
  await copyFile(BUSYBOX, bin);
  await chmod(bin, 0o755);

  const { stdout } = await run(BUSYBOX, ['--list']);
  const applets = [...new Set(stdout.split('\n').map((s) => s.trim()))].filter(
    (a) => a !== '' && a !== 'busybox' && !a.includes('/'),
  );
  if (applets.length === 0) throw new Error(`${BUSYBOX} --list printed no applets`);
  await Promise.all(
    applets.map(async (a) => {
      const link = join(root, 'bin', a);
      await rm(link, { force: true });
      await symlink('busybox', link);
    }),
  );

  await writeFile(join(root, 'etc', 'passwd'), PASSWD, { mode: 0o644 });
  await writeFile(join(root, 'etc', 'group'), GROUP, { mode: 0o644 });
}

/**
 * Write a tarball of a fresh busybox rootfs at `path` (every entry owned by 0:0,
 * --numeric-owner) and return its absolute path. Suitable for `docker import`,
 * `podman import`, or unpacking as an OCI bundle rootfs.
 */
export async function makeBusyboxTarball(path: string): Promise<string> {
  const out = resolve(path);
  await mkdir(dirname(out), { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'eci-bb-'));
  try {
    const rootfs = join(work, 'rootfs');
    await makeBusyboxRootfs(rootfs);
    await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', out, '.']);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return out;
}
