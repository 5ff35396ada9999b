// `eci run`: the side effects, run in the manager for the client (native/cmd/eci-run.c; see
// session.ts). prepareRun makes a bundle under $ECI_RUN_DIR/standalone/<id> (config.json,
// hostname/hosts files, rootfs: an overlay of the image with a writable layer kept on disk under
// $ECI_STATE_DIR/containers/<id>; the state dir is 0700, while runc in the user namespace must
// reach the bundle's files); the client runs it through bin/eci-runc (so the manager applies every
// eci rule, as for Docker) with its own stdio; finishRun removes everything when the container
// ends: the container is always removed (--rm is implied).
// Errors before the container runs exit 125 (Docker's code); after that, the container's status.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EciError } from '../../actors/errors.ts';
import { mountOverlay, runLauncher, unmount } from '../../native/index.ts';
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

/** A bundle made and mounted, ready for `eci-runc run` in the client. */
export interface PreparedRun {
  id: string;
  bundle: string;
  layer: string;
  runcRoot: string;
  pidFile: string;
  /** The launcher's command line (argv[0] included). */
  argv: string[];
}

/**
 * Makes the bundle and the writable layer of a run for client `owner` (its pid goes in the bundle's
 * `owner` file, for sweepStale). Whatever it made is removed again when it fails.
 */
export async function prepareRun(config: ManagerConfig, opts: RunOptions, owner: number, paths: RunPaths): Promise<PreparedRun> {
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
  const pidFile = join(bundle, 'pid');
  const run: PreparedRun = {
    id, bundle, layer, runcRoot, pidFile, argv: [paths.launcher, '--root', runcRoot, 'run', '--bundle', bundle, '--pid-file', pidFile, id],
  };
  try {
    writeFileSync(join(bundle, 'owner'), String(owner));
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
    return run;
  } catch (e) {
    await cleanupRun(config, run, paths);
    throw e;
  }
}

/** How the client's `eci-runc run` ended (or that it never started: a signal came first). */
export interface RunEnd { status: number; started: boolean; stderrTail: string }

/**
 * The status `eci run` ends with, after removing everything the run made. A run that never
 * started ends 128+N for the signal N that cancelled it.
 */
export async function finishRun(config: ManagerConfig, run: PreparedRun, end: RunEnd, paths: RunPaths): Promise<number> {
  const started = end.started;
  const pidFileMade = existsSync(run.pidFile);
  await cleanupRun(config, run, paths);
  if (!started) return end.status;
  const tail = end.stderrTail;
  if (end.status !== 0 && !pidFileMade) {
    // The container never started: refused by eci, or runc could not create it (Docker's codes).
    if (/executable file not found|no such file or directory/i.test(tail) && /exec/.test(tail)) return 127;
    if (/permission denied/i.test(tail) && /exec/.test(tail)) return 126;
    return 125;
  }
  return end.status;
}

/** Removes what a run made; throws ECLEANUP when a mount stays. */
async function cleanupRun(config: ManagerConfig, run: PreparedRun, paths: RunPaths): Promise<void> {
  // runc run removes its container when it ends; one that is still known (the client's runc was
  // killed mid-way) is deleted through the launcher, which frees its range and mounts.
  if (existsSync(join(run.runcRoot, run.id))) {
    try {
      await runLauncher(['--root', run.runcRoot, 'delete', '--force', run.id], { socket: config.socket, launcher: paths.launcher });
    } catch { /* reported below if anything stays */ }
  }
  removeBundle(resolve(run.bundle));
  if (mountedUnder(run.layer).length) throw new EciError('ECLEANUP', `${run.layer} is still mounted; left in place`);
  rmSync(run.layer, { recursive: true, force: true });
}
