// A private Podman (Debian podman 4.3.1) for integration tests: own storage root, run root, libpod
// tmp dir (file locks, events log, exit files), network config dir, config files and cgroup parent,
// all under one temp dir, so it never reads or writes /var/lib/containers/storage, /run/libpod,
// /dev/shm/libpod_lock or /etc/containers/{containers,storage}.conf.
//
//   const p = await startPodman();
//   const img = await importPodmanBusybox(p);
//   const r = await p.podman(['--runtime', m.runtime, 'run', '--rm', ...p.runFlags, img, 'true']);
//   await p.stop();
//
// What still touches the system, unavoidably with 4.3.1:
//   - c/image's blob-info cache is hard-wired for root to /var/lib/containers/cache: stop() removes it
//     again when /var/lib/containers did not exist before start.
//   - /etc/containers/policy.json and registries.conf.d are read (never written).
//
// `startPodman({ defaultStorage: true })` instead uses Podman's DEFAULT rootful storage
// (/var/lib/containers/storage, /run/containers/storage, /run/libpod), as a real host does: only
// cgroupfs, the file events backend and --network none are set, every container it runs carries the
// label eci-test=<token>, and stop() removes exactly those containers, the images imported through
// it and the volumes made with its `volume()` (by name; nothing else of the shared storage).
//   - `podman ... state <id>` is called without runtime flags, so the runtime's default --root
//     (/run/runc for eci-runc, as for runc) is used for every container: do not pass --runtime-flag root.
import { accessSync, constants as fsc, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeBusyboxTarball } from './busybox.ts';
import { mountsUnder } from './dockerd.ts';

export const PODMAN = '/usr/bin/podman';
export const CONMON = '/usr/bin/conmon';

import { runCmd } from './run.ts';

export interface PodmanResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Podman {
  /** The temp dir holding everything of this Podman. */
  dir: string;
  /** Run podman with the isolating global flags and environment. Rejects only on spawn failure or timeout. */
  podman(args: string[], o?: { timeoutMs?: number }): Promise<PodmanResult>;
  /**
   * Flags every `podman run`/`create` should carry:
   *   - `--network none`: no netns path from Podman, no CNI bridge, no iptables (the default "podman"
   *     network would create cni-podman0, iptables chains, /run/netns and /var/lib/cni on the host);
   *   - `--cgroup-parent /<unique>`: container and conmon cgroups (cgroupfs manager) go under a tree
   *     that stop() removes;
   *   (no `--ulimit`: Podman's default rlimits, nofile 1048576, exceed this machine's hard limit;
   *   eci clamps them to its own hard limits, see clampRlimits in actors/runc/spec.ts)
   */
  runFlags: readonly string[];
  /** Remove all containers (no stop timeout) and images, unmount leftovers, remove cgroups and the dir. */
  stop(): Promise<void>;
  /** Default-storage mode: images and volumes stop() removes by name (importPodmanBusybox adds its image). */
  created?: { images: string[]; volumes: string[] };
}

const DEFAULT_TIMEOUT_MS = 120_000;

/** Whether this machine can run Podman tests; `reason` says why not. */
export function podmanAvailable(): { ok: boolean; reason?: string } {
  if (process.platform !== 'linux') return { ok: false, reason: 'not Linux' };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, reason: 'not root (the tests run rootful Podman)' };
  for (const bin of [PODMAN, CONMON]) {
    try {
      accessSync(bin, fsc.X_OK);
    } catch {
      return { ok: false, reason: `${bin} missing (apt-get install podman; see .ci/deps)` };
    }
  }
  return { ok: true };
}

export async function startPodman(o: { defaultStorage?: boolean } = {}): Promise<Podman> {
  if (o.defaultStorage) return startDefaultPodman();
  const dir = await mkdtemp('/tmp/ecip-');
  const storage = join(dir, 'storage');
  const runroot = join(dir, 'run');
  const tmp = join(dir, 'libpod');
  const cgroupParent = `/eci-podman-test-${dir.slice('/tmp/ecip-'.length)}`;
  const varLibContainersExisted = existsSync('/var/lib/containers');
  for (const d of [storage, runroot, tmp, join(dir, 'net'), join(dir, 'vartmp'), join(dir, 'xdg-run'), join(dir, 'xdg-config'), join(dir, 'xdg-data')]) {
    await mkdir(d, { recursive: true, mode: 0o700 });
  }
  const containersConf = join(dir, 'containers.conf');
  const storageConf = join(dir, 'storage.conf');
  const registriesConf = join(dir, 'registries.conf');
  // CONTAINERS_CONF: only this file is read (not /usr/share/containers or /etc/containers).
  await writeFile(
    containersConf,
    [
      '[containers]',
      'netns = "none"',
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${join(tmp, 'events.log')}"`,
      'lock_type = "file"', // not the system-wide /dev/shm/libpod_lock
      `tmp_dir = "${tmp}"`,
      `static_dir = "${join(storage, 'libpod')}"`,
      `volume_path = "${join(storage, 'volumes')}"`,
      '[network]',
      `network_config_dir = "${join(dir, 'net')}"`,
      '',
    ].join('\n'),
  );
  await writeFile(storageConf, `[storage]\ndriver = "overlay"\ngraphroot = "${storage}"\nrunroot = "${runroot}"\n`);
  await writeFile(registriesConf, 'unqualified-search-registries = []\n');

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  for (const k of ['CONTAINER_HOST', 'CONTAINER_CONNECTION', 'CONTAINERS_HOOKS_DIR']) delete env[k];
  Object.assign(env, {
    CONTAINERS_CONF: containersConf,
    CONTAINERS_STORAGE_CONF: storageConf,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    TMPDIR: join(dir, 'vartmp'), // image copies (default /var/tmp)
    XDG_RUNTIME_DIR: join(dir, 'xdg-run'),
    XDG_CONFIG_HOME: join(dir, 'xdg-config'),
    XDG_DATA_HOME: join(dir, 'xdg-data'),
    PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${env.PATH ? ':' + env.PATH : ''}`,
  });
  const global = [
    '--root', storage,
    '--runroot', runroot,
    '--tmpdir', tmp,
    '--cgroup-manager=cgroupfs',
    '--events-backend=file',
    '--storage-driver', 'overlay',
  ];
  const podman: Podman['podman'] = (args, o = {}) => runCmd(PODMAN, [...global, ...args], env, undefined, o.timeoutMs ?? DEFAULT_TIMEOUT_MS);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await podman(['rm', '-a', '-f', '-t', '0'], { timeoutMs: 60_000 }).catch(() => undefined);
      await podman(['rmi', '-a', '-f'], { timeoutMs: 60_000 }).catch(() => undefined);
      await killConmons(dir);
      await unmountUnder(dir);
      const left = await mountsUnder(dir);
      await removeCgroupTree(cgroupParent);
      if (!varLibContainersExisted) {
        await rm('/var/lib/containers/cache/blob-info-cache-v1.boltdb', { force: true });
        await rmdir('/var/lib/containers/cache').catch(() => undefined);
        await rmdir('/var/lib/containers').catch(() => undefined);
      }
      if (left.length > 0) throw new Error(`podman stop: mounts left under ${dir}: ${left.join(' ')}`);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const runFlags = Object.freeze([
    '--network', 'none',
    '--cgroup-parent', cgroupParent,
  ]);
  return { dir, podman, runFlags, stop };
}

/** `podman import` a fresh busybox rootfs tarball as `name` (CMD ["sh"]); returns the full name. */
export async function importPodmanBusybox(p: Podman, name = 'eci-busybox'): Promise<string> {
  const tar = await makeBusyboxTarball(join(p.dir, 'busybox.tar'));
  p.created?.images.push(`localhost/${name}`);
  try {
    const r = await p.podman(['import', '--change', 'CMD ["sh"]', tar, name]);
    if (r.code !== 0) throw new Error(`podman import ${name} failed (${r.code}): ${r.stderr.trim()}`);
  } finally {
    await rm(tar, { force: true });
  }
  return `localhost/${name}`;
}

/** Rootful Podman with its default storage and run dirs (see the file comment). */
async function startDefaultPodman(): Promise<Podman> {
  const dir = await mkdtemp('/tmp/ecip-');
  const token = dir.slice('/tmp/ecip-'.length);
  const cgroupParent = `/eci-podman-test-${token}`;
  const registriesConf = join(dir, 'registries.conf');
  await writeFile(registriesConf, 'unqualified-search-registries = []\n');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  for (const k of ['CONTAINER_HOST', 'CONTAINER_CONNECTION', 'CONTAINERS_HOOKS_DIR', 'CONTAINERS_CONF', 'CONTAINERS_STORAGE_CONF']) delete env[k];
  Object.assign(env, {
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    TMPDIR: dir,
    PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${env.PATH ? ':' + env.PATH : ''}`,
  });
  const global = ['--cgroup-manager=cgroupfs', '--events-backend=file'];
  const podman: Podman['podman'] = (args, o = {}) => runCmd(PODMAN, [...global, ...args], env, undefined, o.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const label = `eci-test=${token}`;
  const created = { images: [] as string[], volumes: [] as string[] };
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const ps = await podman(['ps', '-a', '-q', '--filter', `label=${label}`], { timeoutMs: 60_000 }).catch(() => undefined);
      const ids = ps?.stdout.split(/\s+/).filter(Boolean) ?? [];
      if (ids.length) await podman(['rm', '-f', '-t', '0', ...ids], { timeoutMs: 60_000 }).catch(() => undefined);
      if (created.volumes.length) await podman(['volume', 'rm', '-f', ...created.volumes], { timeoutMs: 60_000 }).catch(() => undefined);
      if (created.images.length) await podman(['rmi', '-f', ...created.images], { timeoutMs: 60_000 }).catch(() => undefined);
      await removeCgroupTree(cgroupParent);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const runFlags = Object.freeze(['--network', 'none', '--cgroup-parent', cgroupParent, '--label', label]);
  return { dir, podman, runFlags, stop, created };
}

export { runCmd };

/** The mount points of every cgroup hierarchy (v1 controllers, or the v2 unified one). */
async function cgroupMounts(): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of info.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const fstype = post.split(' ')[0];
    if (fstype === 'cgroup' || fstype === 'cgroup2') out.push(pre.split(' ')[4]);
  }
  return out;
}

/** rmdir the cgroup `rel` (e.g. "/eci-test") and every cgroup below it, in every hierarchy; busy ones stay. */
export async function removeCgroupTree(rel: string): Promise<void> {
  if (!rel.startsWith('/') || rel === '/' || rel.includes('..')) throw new Error(`removeCgroupTree: bad cgroup ${rel}`);
  const removeDeep = async (d: string): Promise<void> => {
    let ents: string[];
    try {
      ents = (await readdir(d, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of ents) await removeDeep(join(d, e));
    for (let i = 0; i < 20; i++) {
      try {
        await rmdir(d);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY') return;
        await sleep(50); // a process that just exited may still be charged to it
      }
    }
  };
  for (const mp of await cgroupMounts()) await removeDeep(join(mp, rel));
}

/** SIGKILL conmon processes whose command line names this Podman's dir (only left after a failure). */
async function killConmons(dir: string): Promise<void> {
  const pids: number[] = [];
  for (const e of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (cmd.startsWith(CONMON + '\0') && cmd.includes(dir + '/')) pids.push(Number(e));
  }
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch { /* gone */ }
  }
  for (let i = 0; i < 50 && pids.some((p) => existsSync(`/proc/${p}`)); i++) await sleep(100);
}

/** `umount -l` everything at or below `dir`, deepest first (c/storage bind-mounts its overlay home). */
async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mps = [...new Set(await mountsUnder(dir))];
    if (mps.length === 0) return;
    mps.sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
    for (const mp of mps) await runCmd('umount', ['-l', mp], undefined, undefined, 10_000).catch(() => undefined);
  }
}
