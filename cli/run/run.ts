// `eci run`: the side effects. Makes a bundle under $ECI_RUN_DIR/standalone/<id> (config.json,
// hostname/hosts files, rootfs: an overlay of the image with a writable layer kept on disk under
// $ECI_STATE_DIR/containers/<id>; the state dir is 0700, while runc in the user namespace must
// reach the bundle's files), runs it through
// bin/eci-runc (so the manager applies every eci rule, as for Docker), forwards signals, and
// removes everything when the container ends: the container is always removed (--rm is implied).
// Errors before the container runs exit 125 (Docker's code); after that, the container's status.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EciError } from '../../actors/errors.ts';
import { mountOverlay, runLauncherSync, spawnLauncher, startLauncher, unmount } from '../../native/index.ts';
import { control } from '../control-client.ts';
import type { ManagerConfig } from '../../actors/config.ts';
import { alive, ImageStore, parseImageRef, refString, type ImageRecord } from '../images/store.ts';
import { BUSYBOX_REF, ensureBusybox } from '../images/busybox.ts';
import { buildSpec } from './spec.ts';
import type { RunOptions } from './flags.ts';

export interface RunPaths {
  /** bin/eci-runc */
  launcher: string;
}

/** How long a container may outlive the hangup of eci run's terminal (SIGHUP) before it is killed. */
export const HANGUP_GRACE_MS = 5000;

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;
const SIGNUM: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

/** Where eci run keeps a container's bundle and the runc state of its containers. */
export const runDirs = (config: ManagerConfig) => ({
  bundles: join(config.runDir, 'standalone'), layers: join(config.stateDir, 'containers'), runcRoot: join(config.runDir, 'runc'),
});

async function image(store: ImageStore, name: string): Promise<{ rec: ImageRecord; rootfs: string }> {
  const ref = parseImageRef(name);
  let rec = store.get(ref);
  if (!rec && ref.name === BUSYBOX_REF.name && ref.tag === BUSYBOX_REF.tag) rec = await ensureBusybox(store);
  if (!rec) throw new EciError('ENOIMAGE', `no such image: ${refString(ref)} (import it with: eci image import FILE ${refString(ref)})`);
  return { rec, rootfs: store.rootfs(ref) };
}

const mountedUnder = (dir: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((p) => p && (p === dir || p.startsWith(`${dir}/`)));

/** Removes a bundle: our overlay first (detached if busy), then the dir, never through a live mount. */
function removeBundle(bundle: string): void {
  const rootfs = resolve(bundle, 'rootfs');
  for (let i = 0; i < 4 && mountedUnder(bundle).length; i++) {
    try {
      unmount(rootfs, { detach: i >= 2 });
    } catch { /* try again, then detached */ }
  }
  if (mountedUnder(bundle).length) throw new EciError('ECLEANUP', `cannot unmount ${rootfs}; ${bundle} is left in place`);
  rmSync(bundle, { recursive: true, force: true });
}


/**
 * Removes what an `eci run` killed with SIGKILL left: a bundle whose owner (pid in its `owner`
 * file) is gone and whose container runc no longer knows, and its writable layer. A bundle without
 * an owner file is being made right now and is left alone.
 */
export function sweepStale(config: ManagerConfig): string[] {
  const { bundles, layers, runcRoot } = runDirs(config);
  const swept: string[] = [];
  if (!existsSync(bundles)) return swept;
  for (const id of readdirSync(bundles)) {
    let owner = 0;
    try {
      owner = Number(readFileSync(join(bundles, id, 'owner'), 'utf8'));
    } catch { continue; }
    if (!owner || alive(owner) || existsSync(join(runcRoot, id))) continue;
    try {
      removeBundle(join(bundles, id));
      if (!mountedUnder(join(layers, id)).length) rmSync(join(layers, id), { recursive: true, force: true });
      swept.push(id);
    } catch { /* still busy: a later run tries again */ }
  }
  return swept;
}

/** Runs a container in the foreground; resolves with the exit status `eci run` should end with. */
export async function runContainer(config: ManagerConfig, opts: RunOptions, paths: RunPaths): Promise<number> {
  // Fail closed: no manager, no container (eci-runc would refuse too, after we made the bundle).
  await control(config.socket, { op: 'ping' }, 10_000).catch((e) => {
    throw new EciError('EDOWN', `the eci manager is not reachable at ${config.socket}: start it with \`eci daemon\` (eci run never runs a container without isolation)`, { cause: e });
  });
  for (const v of opts.volumes) {
    if (!existsSync(v.source)) throw new EciError('EUSAGE', `-v ${v.source}:${v.destination}: ${v.source} does not exist`);
  }
  sweepStale(config);
  const store = new ImageStore(config.stateDir);
  const img = await image(store, opts.image);
  const id = opts.name ?? `eci-${randomBytes(6).toString('hex')}`;
  const { bundles, layers, runcRoot } = runDirs(config);
  const bundle = join(bundles, id);
  const layer = join(layers, id);
  const hostname = opts.hostname ?? id.slice(0, 12);
  const spec = buildSpec({ id, opts, image: img.rec.config, hostnameFile: join(bundle, 'hostname'), hostsFile: join(bundle, 'hosts') });

  mkdirSync(bundles, { recursive: true, mode: 0o711 });
  mkdirSync(layers, { recursive: true, mode: 0o700 });
  try {
    mkdirSync(bundle, { mode: 0o711 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new EciError('EEXIST', `the container name "${id}" is already in use`);
    throw e;
  }
  let child: ChildProcess | undefined;
  let cancelled: NodeJS.Signals | undefined;
  let hangup: NodeJS.Timeout | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (!child?.pid) {
      cancelled = sig;
      return;
    }
    child.kill(sig);
    // Our terminal (or session) is gone: nobody can reach the container any more and eci run
    // cannot detach, so a container that outlives SIGHUP by HANGUP_GRACE_MS is killed.
    if (sig === 'SIGHUP' && !hangup) {
      hangup = setTimeout(() => {
        startLauncher(['--root', runcRoot, 'kill', id, 'KILL'], { socket: config.socket, launcher: paths.launcher });
      }, HANGUP_GRACE_MS);
      hangup.unref();
    }
  };
  for (const s of FORWARDED) process.on(s, onSignal);
  try {
    writeFileSync(join(bundle, 'owner'), String(process.pid));
    mkdirSync(join(bundle, 'rootfs'), { mode: 0o755 });
    rmSync(layer, { recursive: true, force: true }); // debris of a killed eci run of the same name
    mkdirSync(layer, { mode: 0o700 });
    for (const d of ['upper', 'work']) mkdirSync(join(layer, d), { mode: 0o755 });
    writeFileSync(join(bundle, 'hostname'), `${hostname}\n`, { mode: 0o644 });
    writeFileSync(join(bundle, 'hosts'), `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${hostname}\n`, { mode: 0o644 });
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2), { mode: 0o600 });
    // The writable layer: an overlay of the image, as an engine's graph driver makes. The manager
    // sees an overlay rootfs and rebuilds it over idmapped layers inside the user namespace.
    const layerDirs = [img.rootfs, join(layer, 'upper'), join(layer, 'work')];
    // overlay options are split at ',' and lowerdir at ':': such a state dir cannot be used.
    if (layerDirs.some((d) => /[,:]/.test(d))) throw new EciError('ECONFIG', `ECI_STATE_DIR ${config.stateDir}: eci run needs a path without ',' or ':'`);
    try {
      mountOverlay({ lower: [resolve(img.rootfs)], upper: resolve(layer, 'upper'), work: resolve(layer, 'work'), target: resolve(bundle, 'rootfs') });
    } catch (e) {
      throw new EciError('EMOUNT', `cannot mount the container's writable layer: ${(e as Error).message}`);
    }
    if (cancelled) return 128 + (SIGNUM[cancelled] ?? 0);

    const pidFile = join(bundle, 'pid');
    const runcArgs = ['--root', runcRoot, 'run', '--bundle', bundle, '--pid-file', pidFile];
    let stderrTail = '';
    // With -t, runc run in the foreground owns the terminal: it makes the pty, puts our terminal
    // in raw mode (restored at exit), copies both ways and resizes the pty on SIGWINCH (which
    // eci-runc forwards); --console-socket is only for detached runs.
    child = spawnLauncher([...runcArgs, id], { socket: config.socket, launcher: paths.launcher, interactive: opts.interactive });
    child.stderr!.on('data', (b: Buffer) => {
      process.stderr.write(b);
      stderrTail = (stderrTail + b.toString('utf8')).slice(-4096);
    });
    const status = await new Promise<number>((res, rej) => {
      child!.once('error', (e) => rej(new EciError('ESPAWN', `cannot run ${paths.launcher}: ${e.message}`)));
      child!.once('close', (code, sig) => res(code ?? 128 + (sig ? SIGNUM[sig] ?? 0 : 0)));
    });
    if (status !== 0 && !existsSync(pidFile)) {
      // The container never started: refused by eci, or runc could not create it (Docker's codes).
      if (/executable file not found|no such file or directory/i.test(stderrTail) && /exec/.test(stderrTail)) return 127;
      if (/permission denied/i.test(stderrTail) && /exec/.test(stderrTail)) return 126;
      return 125;
    }
    return status;
  } finally {
    clearTimeout(hangup);
    for (const s of FORWARDED) process.off(s, onSignal);
    // runc run removes its container when it ends; one that is still known (eci run itself was
    // killed mid-way) is deleted through the launcher, which frees its range and mounts.
    if (existsSync(join(runcRoot, id))) {
      try {
        runLauncherSync(['--root', runcRoot, 'delete', '--force', id], { socket: config.socket, launcher: paths.launcher });
      } catch { /* reported below if anything stays */ }
    }
    removeBundle(resolve(bundle));
    if (mountedUnder(layer).length) throw new EciError('ECLEANUP', `${layer} is still mounted; left in place`);
    rmSync(layer, { recursive: true, force: true });
  }
}
