// Mounts: the idmapped container rootfs (eci-helper rootfs-overlay / rootfs-bind: a user namespace
// needs a process of its own), idmapped binds and plain mount calls made in this process (the addon).
import { isAbsolute } from 'node:path';
import { callAddon, loadAddon, type IdmapBind } from './addon.ts';
import { NativeError, usageError } from './errors.ts';
import { runHelper } from './helpers.ts';

export type { IdmapBind } from './addon.ts';

// A host id range mapped to container id 0: the one IdRange type (pure, beside the machines).
import type { IdRange } from '../statecharts/events.ts';
export type { IdRange } from '../statecharts/events.ts';

export interface RootfsOverlayOptions {
  /** Directory that holds every layer (e.g. /var/lib/docker/overlay2); it is idmapped as a whole. */
  base: string;
  /** Lower layers, top first, all under base. Symlinks inside base (Docker's l/SHORT) are fine. */
  lower: string[];
  upper: string;
  work: string;
  target: string;
  uid: IdRange;
  gid: IdRange;
}

export interface RootfsBindOptions {
  source: string;
  target: string;
  uid: IdRange;
  gid: IdRange;
}

export interface HostViewOptions {
  /** eci's rootfs overlay (under the run dir), whose inodes carry the container's host ids. */
  source: string;
  /** The engine's path of the rootfs (docker's .../merged), where the view is mounted. */
  target: string;
  uid: IdRange;
  gid: IdRange;
}

export interface UnmountOptions {
  /** MNT_DETACH: lazy unmount. */
  detach?: boolean;
}

function mappingArgs(uid: IdRange, gid: IdRange): string[] {
  for (const [name, r] of [['uid', uid], ['gid', gid]] as const) {
    if (!Number.isInteger(r.hostID) || r.hostID < 0 || !Number.isInteger(r.size) || r.size < 1 ||
        r.hostID + r.size > 0xffffffff)
      throw usageError(`${name} range ${r.hostID}+${r.size} is not a valid host id range`);
  }
  if (uid.size !== gid.size) throw usageError(`uid and gid ranges must have the same size (${uid.size} != ${gid.size})`);
  return ['--uid-host', String(uid.hostID), '--gid-host', String(gid.hostID), '--size', String(uid.size)];
}

/**
 * Mounts on o.target an overlay of idmapped layers, so that container root (host uid o.uid.hostID) owns
 * the rootfs and its writes land in o.upper as uid 0. No chown anywhere.
 */
export async function mountRootfsOverlay(o: RootfsOverlayOptions): Promise<void> {
  const ids = mappingArgs(o.uid, o.gid);
  if (o.lower.length === 0) throw usageError('an overlay needs at least one lower layer');
  const bad = o.lower.find((l) => l.includes(':'));
  if (bad !== undefined) throw usageError(`lower layer ${bad} contains ':'`);
  await runHelper([
    'rootfs-overlay', ...ids, '--base', o.base, '--lower', o.lower.join(':'),
    '--upper', o.upper, '--work', o.work, '--target', o.target,
  ]);
}

/** Mounts on o.target an idmapped bind mount of the plain directory rootfs o.source. */
export async function mountRootfsBind(o: RootfsBindOptions): Promise<void> {
  const ids = mappingArgs(o.uid, o.gid);
  await runHelper(['rootfs-bind', ...ids, '--source', o.source, '--target', o.target]);
}

/**
 * Mounts on o.target the host's view of the rootfs o.source (cmd/eci-hostview.c): a FUSE passthrough
 * that shows host id hostID+k as k and creates or chowns with id k as hostID+k, as the engine's own
 * overlay would under runc. Its server is a process of its own session: it ends when o.target is
 * unmounted, and outlives the manager.
 */
export async function mountHostView(o: HostViewOptions): Promise<void> {
  const ids = mappingArgs(o.uid, o.gid);
  if (!isAbsolute(o.source) || !isAbsolute(o.target)) throw usageError(`host view needs absolute paths, got ${o.source} and ${o.target}`);
  await runHelper(['host-view', ...ids, '--source', o.source, '--target', o.target]);
}

/** umount2(target) (never following a symlink), lazily with detach. Throws NativeError. */
export function unmount(target: string, o: UnmountOptions = {}): void {
  if (!isAbsolute(target)) throw usageError(`unmount target must be an absolute path, got ${target}`);
  callAddon((a) => a.umount2(target, (o.detach ? a.constants.MNT_DETACH : 0) | a.constants.UMOUNT_NOFOLLOW));
}

/** unmount on libuv's thread pool: under load an umount2 takes tens of ms the event loop must not wait. Rejects with NativeError. */
export async function unmountAsync(target: string, o: UnmountOptions = {}): Promise<void> {
  if (!isAbsolute(target)) throw usageError(`unmount target must be an absolute path, got ${target}`);
  const a = loadAddon();
  try {
    await a.umount2Async(target, (o.detach ? a.constants.MNT_DETACH : 0) | a.constants.UMOUNT_NOFOLLOW);
  } catch (err) {
    throw NativeError.from(err);
  }
}

/** What became of one mount in unmountTopAsync; `errno` is umount2's when it failed. */
export interface UnmountTopResult {
  outcome: 'unmounted' | 'absent' | 'undecided' | 'failed';
  errno?: number;
}

/**
 * The delete path's unmounts in one thread-pool job: in the order given (newest first), each mount whose
 * id is still the top one at its path is unmounted (statx STATX_MNT_ID, never a mount below it);
 * 'absent': not there any more (skipped); 'undecided': the kernel cannot tell, so this one and all
 * after it are left to the caller (read mountinfo).
 */
export async function unmountTopAsync(mounts: readonly { path: string; id: number }[], o: UnmountOptions = {}): Promise<UnmountTopResult[]> {
  for (const m of mounts) if (!isAbsolute(m.path)) throw usageError(`unmount target must be an absolute path, got ${m.path}`);
  const a = loadAddon();
  let codes: number[];
  try {
    codes = await a.umountTopAsync(mounts.map((m) => ({ path: m.path, id: m.id })), (o.detach ? a.constants.MNT_DETACH : 0) | a.constants.UMOUNT_NOFOLLOW);
  } catch (err) {
    throw NativeError.from(err);
  }
  return codes.map((c) => (c < 0 ? { outcome: 'failed', errno: -c } : { outcome: (['unmounted', 'absent', 'undecided'] as const)[c] }));
}

/** Whether path (symlinks followed) is the root of a mount; false when it does not exist. */
export function isMountpoint(path: string): boolean {
  return callAddon((a) => a.isMountpoint(path));
}

/** The id (as in mountinfo) of the top mount whose root is `path`: undefined when none, null when the kernel cannot tell. */
export function mountIdAt(path: string): number | null | undefined {
  return callAddon((a) => a.mountIdAt(path));
}

/**
 * The mountinfo line of the top mount whose root is `path` (statmount(2): no read of the whole table):
 * '' when none, null when the kernel cannot tell (then read /proc/self/mountinfo).
 */
export function mountInfoAt(path: string): string | null {
  return callAddon((a) => a.mountInfoAt(path));
}

/** Stacks a clone of the mount at `source` (keeping its idmapping; not its submounts) on `target`. */
export function bindMount(source: string, target: string): void {
  if (!isAbsolute(source) || !isAbsolute(target)) throw usageError(`bindMount needs absolute paths, got ${source} and ${target}`);
  callAddon((a) => a.bindMount(source, target));
}

/**
 * Idmapped bind mounts (container mapping 0 -> uid/gid.hostID), in-process. A source that is no
 * longer the checked inode fails with ESTALE; the final path component is never followed. All or
 * nothing: on failure the binds already made are undone.
 */
export function idmapBinds(binds: IdmapBind[], uid: IdRange, gid: IdRange): void {
  if (uid.size !== gid.size) throw usageError('uid and gid ranges must have the same size');
  callAddon((a) => a.idmapBinds(binds, uid.hostID, gid.hostID, uid.size));
}

/** idmapBinds on libuv's thread pool: the user namespace and the mounts take milliseconds under load. Rejects with NativeError. */
export async function idmapBindsAsync(binds: IdmapBind[], uid: IdRange, gid: IdRange): Promise<void> {
  if (uid.size !== gid.size) throw usageError('uid and gid ranges must have the same size');
  const a = loadAddon();
  try {
    await a.idmapBindsAsync(binds, uid.hostID, gid.hostID, uid.size);
  } catch (err) {
    throw NativeError.from(err);
  }
}

/** A plain overlay (no idmapping), as an engine's graph driver makes for a container's writable layer. */
export interface OverlayOptions {
  /** Lower layers, top first. */
  lower: string[];
  upper: string;
  work: string;
  target: string;
}

/**
 * mount(2) of an overlay of o.lower with o.upper/o.work on o.target, in this process's mount namespace.
 * Paths must be absolute; the layers' also free of ',' (overlay splits its options there) and ':' (it
 * splits lowerdir there). Throws NativeError (syscall 'mount').
 */
export function mountOverlay(o: OverlayOptions): void {
  if (o.lower.length === 0) throw usageError('an overlay needs at least one lower layer');
  const bad = [...o.lower, o.upper, o.work].find((p) => !isAbsolute(p) || /[,:]/.test(p));
  if (bad !== undefined) throw usageError(`overlay layer ${bad} must be an absolute path without ',' or ':'`);
  if (!isAbsolute(o.target)) throw usageError(`overlay target must be an absolute path, got ${o.target}`);
  callAddon((a) => a.mountOverlay(o.lower.join(':'), o.upper, o.work, o.target));
}
