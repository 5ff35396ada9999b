// A private dockerd (Debian docker.io 20.10) for integration tests: own data-root, exec-root,
// pidfile, socket, config file and trust key, all under one short temp dir, so it never touches
// /var/lib/docker, /run/docker/*.sock or /etc/docker/daemon.json of the system. It starts its own
// containerd under <dir>/exec/containerd (the shim sockets go to /run/containerd/s/<hash>, and
// dockerd creates an empty /run/docker/plugins: both hard-coded in 20.10, both harmless).
//
//   const d = await startDockerd({ runtimes: { eci: '/abs/bin/eci-runc' } });
//   const img = await importBusyboxImage(d);
//   const r = await d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', img, 'true']);
//   await d.stop();
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsc, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeBusyboxTarball } from './busybox.ts';

/** The daemon and its matching client (the `docker` at /usr/local/bin is a newer, other client). */
export const DOCKERD = '/usr/sbin/dockerd';
export const DOCKER = '/usr/bin/docker';

/**
 * Flags every `docker run` against this daemon should carry: `--network none`.
 *
 * None is strictly required. The daemon runs with `--bridge=none` (no docker0, no iptables:
 * nothing on the host network changes). Checked here with 20.10.24: a plain `docker run` still
 * works (the "default" network resolves to a "bridge" network that does not exist and is silently
 * skipped; `-p` is silently ignored) and the container gets a fresh netns with only `lo`.
 * But that path is unlike any real Docker: the OCI spec has no prestart hook. With
 * `--network none` (as with Docker's usual bridge network) libnetwork is involved and the spec
 * carries the `libnetwork-setkey` prestart hook (`/proc/<dockerd pid>/exe libnetwork-setkey
 * -exec-root=...`), which a runtime must run correctly. So tests see the realistic spec, and
 * `docker inspect` shows NetworkMode "none" instead of a phantom "bridge" endpoint. Cost here:
 * `docker run --rm ... true` takes ~240 ms with it vs ~160 ms without (runc). In both cases
 * the spec asks for a new network namespace without a path (runc creates it).
 * Never use `--network host` unless the test is about sharing host namespaces.
 */
export const RUN_FLAGS: readonly string[] = Object.freeze(['--network', 'none']);

import { runCmd } from './run.ts';

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Dockerd {
  /** Absolute path of the API socket (`-H unix://<socket>`). */
  socket: string;
  /** The temp dir holding everything of this daemon (data, exec, dockerd.log, ...). */
  dir: string;
  /** Pid of the dockerd process this harness started. */
  pid: number;
  /** Run /usr/bin/docker against this daemon. Rejects only on spawn failure or timeout. */
  docker(args: string[], o?: { input?: string; timeoutMs?: number }): Promise<DockerResult>;
  /** Remove containers, stop dockerd (SIGTERM, then SIGKILL), unmount leftovers, remove the dir. */
  stop(): Promise<void>;
}

export interface StartDockerdOptions {
  /** Extra OCI runtimes, name -> absolute path (`--add-runtime name=path`). */
  runtimes?: Record<string, string>;
  /** Where to put everything. Default: a fresh mkdtemp('/tmp/ecid-'). Keep it short. */
  dir?: string;
  /** Extra environment for dockerd (and so for containerd and the runtimes it starts). */
  env?: Record<string, string>;
  /** How long to wait for `docker version` to answer. Default 60 s. */
  startTimeoutMs?: number;
  /** Runs once the daemon's own daemon.json is written, before dockerd starts (e.g. `eci install` on it). */
  beforeStart?: (daemonJson: string) => Promise<void> | void;
  /**
   * Run dockerd (and its containerd, shims, docker-proxy) in this network namespace (a name from
   * `ip netns add`), with Docker's default bridge network, iptables and `-p`: docker0 and the NAT
   * rules then exist only there, so they collide with neither the host nor other test dockerds.
   * Only the network namespace is entered (nsenter --net), not a mount namespace as `ip netns exec`
   * would: the manager must see the engine's mounts. Reach published ports with `ip netns exec`.
   */
  bridgeNetns?: string;
}

const SYSTEM_DIRS = ['/var/lib/docker', '/run/docker', '/var/run/docker', '/var/lib/containerd', '/run/containerd'];
const UNIX_PATH_MAX = 107; // sun_path is 108 bytes including the NUL
const DEFAULT_DOCKER_TIMEOUT_MS = 120_000;

/** Whether this machine can run the harness; `reason` says why not. */
export function dockerdAvailable(): { ok: boolean; reason?: string } {
  if (process.platform !== 'linux') return { ok: false, reason: 'not Linux' };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { ok: false, reason: 'not root (dockerd needs root)' };
  }
  for (const bin of [DOCKERD, DOCKER]) {
    if (!isExecutable(bin)) return { ok: false, reason: `${bin} missing (apt-get install docker.io; see .ci/deps)` };
  }
  const containerd = ['/usr/bin/containerd', '/usr/sbin/containerd', '/usr/local/bin/containerd'].some(isExecutable);
  if (!containerd) return { ok: false, reason: 'containerd missing (apt-get install docker.io)' };
  return { ok: true };
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsc.X_OK);
    return true;
  } catch {
    return false;
  }
}

export async function startDockerd(o: StartDockerdOptions = {}): Promise<Dockerd> {
  let ownsDir: boolean;
  let dir: string;
  if (o.dir === undefined) {
    dir = await mkdtemp('/tmp/ecid-');
    ownsDir = true;
  } else {
    dir = resolve(o.dir);
    ownsDir = !existsSync(dir) || (await readdir(dir)).length === 0;
    await mkdir(dir, { recursive: true });
  }
  for (const s of SYSTEM_DIRS) {
    if (dir === s || dir.startsWith(s + '/')) throw new Error(`startDockerd: refusing dir ${dir} (system ${s})`);
  }

  const dataRoot = join(dir, 'data');
  const execRoot = join(dir, 'exec');
  const socket = join(dir, 'docker.sock');
  const pidfile = join(dir, 'dockerd.pid');
  const config = join(dir, 'daemon.json');
  const log = join(dir, 'dockerd.log');
  const clientConfig = join(dir, 'client');
  const longestSock = join(execRoot, 'containerd', 'containerd.sock.ttrpc');
  if (new TextEncoder().encode(longestSock).length > UNIX_PATH_MAX) {
    throw new Error(`startDockerd: dir ${dir} too long for unix sockets (${longestSock})`);
  }
  await Promise.all([dataRoot, execRoot, clientConfig].map((d) => mkdir(d, { recursive: true })));
  // Own config file: /etc/docker/daemon.json is not read; the trust key is not written to
  // /etc/docker/key.json (no command-line flag for it in 20.10, only this config key).
  await writeFile(config, JSON.stringify({ 'deprecated-key-path': join(dir, 'key.json') }, null, 2) + '\n');
  await o.beforeStart?.(config);

  const args = [
    '--config-file', config,
    '--data-root', dataRoot,
    '--exec-root', execRoot,
    '--pidfile', pidfile,
    '-H', `unix://${socket}`,
    ...(process.env.ECI_DOCKERD_DEBUG ? ['--debug'] : []), // with ECI_KEEP_DOCKERD_LOG, to diagnose a hang
    ...(o.bridgeNetns === undefined ? ['--iptables=false', '--ip-masq=false', '--bridge=none'] : []),
  ];
  for (const [name, path] of Object.entries(o.runtimes ?? {})) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`startDockerd: bad runtime name ${name}`);
    if (!path.startsWith('/')) throw new Error(`startDockerd: runtime ${name} path must be absolute: ${path}`);
    args.push('--add-runtime', `${name}=${path}`);
  }

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH']) delete env[k];
  env.PATH = `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${env.PATH ? ':' + env.PATH : ''}`;
  Object.assign(env, o.env ?? {});

  const logFile = await open(log, 'a');
  let child: ChildProcess;
  try {
    child = o.bridgeNetns === undefined
      ? spawn(DOCKERD, args, { stdio: ['ignore', logFile.fd, logFile.fd], env })
      : spawn('nsenter', [`--net=/run/netns/${o.bridgeNetns}`, DOCKERD, ...args], { stdio: ['ignore', logFile.fd, logFile.fd], env });
  } finally {
    await logFile.close();
  }
  const exited = new Promise<{ code: number | null; signal: string | null }>((res) => {
    child.once('exit', (code, signal) => res({ code, signal }));
  });
  let exitInfo: { code: number | null; signal: string | null } | undefined;
  void exited.then((e) => (exitInfo = e));
  const spawnError = new Promise<Error>((res) => child.once('error', res));
  const pid = child.pid;
  if (pid === undefined) {
    const err = await spawnError;
    throw new Error(`startDockerd: cannot spawn ${DOCKERD}: ${err.message}`);
  }

  const clientEnv: Record<string, string> = { ...env, DOCKER_CONFIG: clientConfig };

  const docker: Dockerd['docker'] = (dargs, opts = {}) =>
    runCmd(DOCKER, ['-H', `unix://${socket}`, ...dargs], clientEnv, opts.input, opts.timeoutMs ?? DEFAULT_DOCKER_TIMEOUT_MS);

  const waitExit = async (ms: number): Promise<boolean> => {
    if (exitInfo) return true;
    // The timer is cancelled once dockerd exits, so no 30 s timer keeps the test worker alive.
    const ac = new AbortController();
    const t = sleep(ms, false, { signal: ac.signal }).catch(() => false);
    try {
      return await Promise.race([exited.then(() => true), t]);
    } finally {
      ac.abort();
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exitInfo) {
        // Removing containers first makes the SIGTERM quick (dockerd otherwise gives each
        // running container its 10 s stop timeout).
        try {
          const ps = await docker(['ps', '-aq'], { timeoutMs: 15_000 });
          const ids = ps.stdout.split(/\s+/).filter(Boolean);
          if (ps.code === 0 && ids.length > 0) await docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
        } catch {
          /* the daemon may be wedged; SIGTERM/SIGKILL below */
        }
      }
      if (!exitInfo) {
        signal(pid, 'SIGTERM');
        if (!(await waitExit(30_000))) {
          signal(pid, 'SIGKILL');
          await waitExit(10_000);
        }
      }
      await killStragglers(dir, execRoot);
      await unmountUnder(dir);
      const left = await mountsUnder(dir);
      if (left.length > 0) throw new Error(`dockerd stop: mounts left under ${dir}: ${left.join(' ')}`);
      if (process.env.ECI_KEEP_DOCKERD_LOG) await copyFile(log, `${dir}.dockerd.log`).catch(() => {});
      if (ownsDir) {
        await rm(dir, { recursive: true, force: true });
      } else {
        for (const p of [dataRoot, execRoot, clientConfig, socket, pidfile, config, log, join(dir, 'key.json')]) {
          await rm(p, { recursive: true, force: true });
        }
      }
    })();
    return stopping;
  };

  // Wait for the API: `docker version` must answer with a server part.
  const deadline = Date.now() + (o.startTimeoutMs ?? 60_000);
  let last = '';
  for (;;) {
    if (exitInfo) {
      const tail = await logTail(log);
      await stop().catch(() => {});
      throw new Error(
        `dockerd exited during start (code ${exitInfo.code}, signal ${exitInfo.signal}); dockerd.log tail:\n${tail}`,
      );
    }
    if (existsSync(socket)) {
      const r = await docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 }).catch(
        (e: Error) => ({ code: -1, stdout: '', stderr: e.message }),
      );
      if (r.code === 0 && r.stdout.trim() !== '') break;
      last = r.stderr.trim();
    }
    if (Date.now() > deadline) {
      const tail = await logTail(log);
      await stop().catch(() => {});
      throw new Error(`dockerd did not answer within ${o.startTimeoutMs ?? 60_000} ms (${last}); log tail:\n${tail}`);
    }
    await sleep(50);
  }

  return { socket, dir, pid, docker, stop };
}

/** `docker import` a fresh busybox rootfs tarball as `name` (CMD ["sh"]); returns `name`. */
export async function importBusyboxImage(d: Dockerd, name = 'eci-busybox'): Promise<string> {
  const tar = await makeBusyboxTarball(join(d.dir, 'busybox.tar'));
  try {
    const r = await d.docker(['import', '--change', 'CMD ["sh"]', tar, name]);
    if (r.code !== 0) throw new Error(`docker import ${name} failed (${r.code}): ${r.stderr.trim()}`);
  } finally {
    await rm(tar, { force: true });
  }
  return name;
}


function signal(pid: number, sig: 'SIGTERM' | 'SIGKILL'): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

async function logTail(path: string, lines = 40): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * After dockerd is gone: SIGKILL the containerd it started and containerd shims of its containers,
 * if any outlived it (only after a SIGKILL of dockerd). Only processes whose command line names this
 * harness's own unique dir are touched.
 */
async function killStragglers(dir: string, execRoot: string): Promise<void> {
  const mine = (cmd: string) => cmd.includes(dir + '/');
  const pids: number[] = [];
  try {
    const p = Number((await readFile(join(execRoot, 'containerd', 'containerd.pid'), 'utf8')).trim());
    if (p > 1 && mine(await cmdline(p))) pids.push(p);
  } catch {
    /* no pidfile */
  }
  for (const e of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const p = Number(e);
    const cmd = await cmdline(p);
    if (cmd.includes('containerd-shim') && mine(cmd)) pids.push(p);
  }
  if (pids.length === 0) return;
  for (const p of pids) signal(p, 'SIGKILL');
  for (let i = 0; i < 50 && pids.some((p) => existsSync(`/proc/${p}`)); i++) await sleep(100);
}

async function cmdline(pid: number): Promise<string> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
  } catch {
    return '';
  }
}

/** Mount points at or below `dir` in this mount namespace (from /proc/self/mountinfo). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const base = resolve(dir);
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = f[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === base || mp.startsWith(base + '/')) out.push(mp);
  }
  return out;
}

/** `umount -l` everything at or below `dir`, deepest first, until nothing is left (max 5 rounds). */
async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mps = [...new Set(await mountsUnder(dir))];
    if (mps.length === 0) return;
    mps.sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
    for (const mp of mps) {
      await new Promise<void>((res) => {
        const c = spawn('umount', ['-l', mp], { stdio: 'ignore' });
        c.once('error', () => res());
        c.once('close', () => res());
      });
    }
  }
}
