// Presents a container's rootfs through idmapped mounts, with no chown. eci's mount lives at
// <runDir>/containers/<id>/rootfs (a path container root can traverse; engine dirs such as
// /var/lib/docker are 0710) and config.json's root.path points there:
//   - an overlay rootfs (Docker's overlay2) is rebuilt by host root over idmapped layers (so its
//     superblock is the initial user namespace's: setuid and file caps work in the container, and
//     trusted.overlay.* markers are read); writes go to the engine's upper dir as ids 0..65535. The
//     engine's rootfs path gets the host's view of that same overlay (two live overlays on one upper
//     dir would be undefined behaviour, and an overlay cannot be idmapped): a FUSE passthrough that
//     shows ids as on disk and creates files as the caller's ids would land there, so docker
//     cp/diff/export/commit of a running container see and do what they do under runc;
//   - a plain directory gets an idmapped bind mount.
// Cleanup unmounts exactly the mounts eci made (by mount id), never the engine's below them.
import { mkdirSync, realpathSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { EciError } from './errors.ts';
import { commonAncestor, mountAt, overlayLayers, parseMountInfo } from './mountinfo.ts';
import type { IdRange } from './runc/spec.ts';
import type { MountRef } from '../statecharts/events.ts';

export type RootfsPlan =
  | { kind: 'overlay'; engine: string; base: string; lower: string[]; upper: string; work: string}
  | { kind: 'bind'; source: string };

/** A bind mount (volume, engine socket) eci idmaps for a container; `index` is its spec.mounts entry. */
export interface BindPlan {
  index: number;
  source: string;
  target: string;
  dev: bigint;
  ino: bigint;
  rdonly: boolean;
  nosuid: boolean;
  nodev: boolean;
}

export interface RootfsNative {
  mountRootfsOverlay(o: { base: string; lower: string[]; upper: string; work: string; target: string; uid: IdRange; gid: IdRange }): Promise<void>;
  mountRootfsBind(o: { source: string; target: string; uid: IdRange; gid: IdRange }): Promise<void>;
  /** The engine path's view of eci's overlay, with on-disk ids (native/cmd/eci-hostview.c). */
  mountHostView(o: { source: string; target: string; uid: IdRange; gid: IdRange }): Promise<void>;
  unmount(target: string, o?: { detach?: boolean }): void;
  /** The same off the event loop (a thread-pool thread); absent: the synchronous one is used. */
  unmountAsync?(target: string, o?: { detach?: boolean }): Promise<void>;
  /** The delete path's unmounts in one thread-pool job (native/mounts.ts); absent: one by one. */
  unmountTopAsync?(mounts: readonly MountRef[], o?: { detach?: boolean }): Promise<{ outcome: 'unmounted' | 'absent' | 'undecided' | 'failed' }[]>;
  isMountpoint(path: string): boolean;
  /** One statx instead of a mountinfo read (null or absent: read mountinfo). */
  mountIdAt?(path: string): number | null | undefined;
  bindMount(source: string, target: string): void;
  idmapBinds(binds: { source: string; target: string; dev: bigint; ino: bigint; rdonly?: boolean; nosuid?: boolean; nodev?: boolean }[], uid: IdRange, gid: IdRange): void;
  idmapBindsAsync?(binds: { source: string; target: string; dev: bigint; ino: bigint; rdonly?: boolean; nosuid?: boolean; nodev?: boolean }[], uid: IdRange, gid: IdRange): Promise<void>;
}

const readMountInfo = () => readFileSync('/proc/self/mountinfo', 'utf8');

function real(p: string, what: string): string {
  try {
    return realpathSync(p);
  } catch (e) {
    throw new EciError('EROOTFS', `${what} ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}

/** Decides how to map the rootfs at `rootPath` (absolute), from the host's mount table. */
export function planRootfs(rootPath: string, mountinfo = readMountInfo()): RootfsPlan {
  const path = real(rootPath, 'rootfs');
  if (!statSync(path).isDirectory()) throw new EciError('EROOTFS', `rootfs ${path} is not a directory`);
  const m = mountAt(parseMountInfo(mountinfo), path);
  if (m?.fsType !== 'overlay') return { kind: 'bind', source: path };
  const l = overlayLayers(m.superOptions);
  if (!l.lower.length) throw new EciError('EROOTFS', `rootfs ${path}: overlay without lowerdir`);
  if (!l.upper || !l.work) {
    throw new EciError('EROOTFS', `rootfs ${path}: a read-only overlay (no upperdir) is not supported yet`);
  }
  // Docker's overlay2 mounts long layer lists with paths relative to its driver home, which is
  // the grandparent of the mountpoint (<home>/<id>/merged).
  const home = dirname(dirname(path));
  const abs = (p: string, what: string) => real(isAbsolute(p) ? p : resolve(home, p), what);
  const lower = l.lower.map((p) => abs(p, 'overlay lowerdir'));
  const upper = abs(l.upper, 'overlay upperdir');
  const work = abs(l.work, 'overlay workdir');
  return { kind: 'overlay', engine: path, base: commonAncestor([...lower, upper, work]), lower, upper, work };
}

/** The top mount at exactly `path`: one statx where the kernel can tell, else the whole mount table. */
function topId(path: string, mountinfo: () => string, native?: Pick<RootfsNative, 'mountIdAt'>): number | undefined {
  if (native?.mountIdAt) {
    let id: number | null | undefined = null;
    try {
      id = native.mountIdAt(path);
    } catch {
      // statx asks the filesystem: a host view whose server is gone answers ENOTCONN. The table can tell.
    }
    if (id !== null) return id;
  }
  return mountAt(parseMountInfo(mountinfo()), path)?.id;
}

function newTop(path: string, before: number | undefined, mountinfo: () => string, native?: Pick<RootfsNative, 'mountIdAt'>): MountRef {
  const id = topId(path, mountinfo, native);
  if (id === undefined || id === before) throw new EciError('EROOTFS', `rootfs ${path}: the idmapped mount did not appear`);
  return { path, id };
}

/** How long mountRootfs's two steps took, ms (the debug log's split of `rootfs mounted`). */
export interface RootfsTimes { overlayMs?: number; viewMs?: number }

/**
 * Mounts the rootfs at `target` (an empty directory) and returns the mounts made, newest last: the
 * overlay's or the bind's, then the overlay's host view on the engine's path (mountHostViewOf).
 * On failure, whatever was mounted is unmounted again.
 */
export async function mountRootfs(native: RootfsNative, plan: RootfsPlan, target: string, uid: IdRange, gid: IdRange, mountinfo = readMountInfo, times: RootfsTimes = {}): Promise<MountRef[]> {
  const made = await mountRootfsOnly(native, plan, target, uid, gid, mountinfo, times);
  try {
    const view = await mountHostViewOf(native, plan, target, uid, gid, mountinfo, times);
    return view ? [...made, view] : made;
  } catch (e) {
    unmountRootfs(native, made, mountinfo);
    throw e;
  }
}

/** The rootfs at `target` without its host view: one mount. On failure nothing is left mounted. */
export async function mountRootfsOnly(native: RootfsNative, plan: RootfsPlan, target: string, uid: IdRange, gid: IdRange, mountinfo = readMountInfo, times: RootfsTimes = {}): Promise<MountRef[]> {
  const made: MountRef[] = [];
  const t0 = performance.now();
  try {
    const before = topId(target, mountinfo, native);
    if (plan.kind === 'overlay') {
      // A workdir of eci's own, next to the engine's: the engine's is busy under its own overlay, and
      // one that held a volatile overlay (Podman's --rm) refuses any second mount.
      const work = join(dirname(plan.upper), 'eci-work');
      rmSync(work, { recursive: true, force: true });
      mkdirSync(work, { mode: 0o700 });
      await native.mountRootfsOverlay({ base: plan.base, lower: plan.lower, upper: plan.upper, work, target, uid, gid });
    } else {
      await native.mountRootfsBind({ source: plan.source, target, uid, gid });
    }
    made.push(newTop(target, before, mountinfo, native));
    times.overlayMs = +(performance.now() - t0).toFixed(2);
    return made;
  } catch (e) {
    unmountRootfs(native, made, mountinfo);
    throw e;
  }
}

/**
 * For an overlay rootfs mounted at `target`: its host view on the engine's rootfs path, the mount
 * made (undefined: a bind rootfs has none). The helper leaves nothing mounted when it fails.
 */
export async function mountHostViewOf(native: RootfsNative, plan: RootfsPlan, target: string, uid: IdRange, gid: IdRange, mountinfo = readMountInfo, times: RootfsTimes = {}): Promise<MountRef | undefined> {
  if (plan.kind !== 'overlay') return undefined;
  const t0 = performance.now();
  const view = await mountHostViewAt(native, plan.engine, target, uid, gid, mountinfo);
  times.viewMs = +(performance.now() - t0).toFixed(2);
  return view;
}

/** The host view of the overlay at `target` on the engine's path `engine` (also a restarted manager's, from the record). */
export async function mountHostViewAt(native: RootfsNative, engine: string, target: string, uid: IdRange, gid: IdRange, mountinfo = readMountInfo): Promise<MountRef> {
  const engineBefore = topId(engine, mountinfo, native);
  await native.mountHostView({ source: target, target: engine, uid, gid });
  return newTop(engine, engineBefore, mountinfo, native);
}

/** Unmounts each mount eci made that is still the top mount at its path, newest first. Idempotent. */
export function unmountRootfs(native: RootfsNative, mounts: MountRef[], mountinfo = readMountInfo): MountRef[] {
  const left: MountRef[] = [];
  for (const m of [...mounts].reverse()) {
    if (topId(m.path, mountinfo, native) !== m.id) continue;
    try {
      native.unmount(m.path, { detach: true });
    } catch {
      left.push(m);
    }
  }
  return left;
}

/**
 * unmountRootfs off the event loop (under load one umount2 takes tens of ms): with unmountTopAsync, all of
 * them in one thread-pool job that checks each mount id itself; else one umount2 at a time. Newest first
 * either way: a mount is only taken down once the one stacked on it is gone.
 */
export async function unmountRootfsAsync(native: RootfsNative, mounts: MountRef[], mountinfo = readMountInfo): Promise<MountRef[]> {
  const newestFirst = [...mounts].reverse();
  const left: MountRef[] = [];
  let from = 0;
  if (native.unmountTopAsync) {
    const results = await native.unmountTopAsync(newestFirst, { detach: true });
    for (; from < newestFirst.length && results[from].outcome !== 'undecided'; from++) {
      if (results[from].outcome === 'failed') left.push(newestFirst[from]);
    }
  }
  // What the kernel could not decide (no STATX_MNT_ID, a statx error): the mount table decides, one by one.
  const rest = newestFirst.slice(from);
  if (!rest.length) return left;
  if (!native.unmountAsync) return [...left, ...unmountRootfs(native, rest.reverse(), mountinfo)];
  for (const m of rest) {
    if (topId(m.path, mountinfo, native) !== m.id) continue;
    try {
      await native.unmountAsync(m.path, { detach: true });
    } catch {
      left.push(m);
    }
  }
  return left;
}

/** Idmapped binds for the volumes, all or nothing; returns their mounts. */
export function mountBinds(native: RootfsNative, binds: BindPlan[], uid: IdRange, gid: IdRange, mountinfo = readMountInfo): MountRef[] {
  if (!binds.length) return [];
  native.idmapBinds(binds, uid, gid);
  return bindRefs(native, binds, mountinfo);
}

/** mountBinds with the binds made off the event loop (the create path under load). */
export async function mountBindsAsync(native: RootfsNative, binds: BindPlan[], uid: IdRange, gid: IdRange, mountinfo = readMountInfo): Promise<MountRef[]> {
  if (!binds.length) return [];
  if (!native.idmapBindsAsync) return mountBinds(native, binds, uid, gid, mountinfo);
  await native.idmapBindsAsync(binds, uid, gid);
  return bindRefs(native, binds, mountinfo);
}

/** The mounts the binds made, one per target. */
function bindRefs(native: RootfsNative, binds: BindPlan[], mountinfo: () => string): MountRef[] {
  let table: string | undefined; // read at most once, and only where statx cannot tell
  const once = () => (table ??= mountinfo());
  return binds.map((b) => {
    const id = topId(b.target, once, native);
    if (id === undefined) throw new EciError('EROOTFS', `volume ${b.source}: the idmapped mount did not appear at ${b.target}`);
    return { path: b.target, id };
  });
}
