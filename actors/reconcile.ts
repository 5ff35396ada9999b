// Reconcile at start, for what a killed manager leaves that KV does not know about: mounts under
// <runDir>/containers/<id> of containers the manager does not hold (killed between mounting the
// rootfs and recording the mount), and the engine-path views of those overlays. Planning is pure
// (mountinfo text in, mounts out); the sweep does the unmounts and removes the run dirs.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseMountInfo, type MountInfo } from './mountinfo.ts';
import type { ContainerContext } from '../statecharts/container.machine.ts';

export interface OrphanPlan {
  /** Container ids whose run dir is to go. */
  ids: string[];
  /** Mounts to detach, newest first (a stack unmounts from the top). */
  mounts: MountInfo[];
}

/** The filesystem type of the host view eci mounts on an engine's rootfs path (native/cmd/eci-hostview.c). */
export const HOST_VIEW_FSTYPE = 'fuse.eci-rootfs';

/**
 * The mounts under `containersDir/<id>/` of ids not in `known`, plus, for an orphan overlay rootfs,
 * its host view on the engine's rootfs path (a FUSE mount whose source names eci's overlay), and other
 * mounts of the same overlay superblock (a manager before the host view stacked the overlay itself
 * there; the engine's own overlay is a different superblock, so it is never matched).
 */
export function planOrphans(mountinfo: string, containersDir: string, dirIds: string[], known: ReadonlySet<string>): OrphanPlan {
  const all = parseMountInfo(mountinfo);
  const prefix = `${containersDir}/`;
  const idOf = (m: MountInfo) => (m.mountPoint.startsWith(prefix) ? m.mountPoint.slice(prefix.length).split('/')[0] : undefined);
  const mine = all.filter((m) => { const id = idOf(m); return id !== undefined && !known.has(id); });
  const overlayDevs = new Set(mine.filter((m) => m.fsType === 'overlay').map((m) => m.dev));
  const orphanOf = (src: string) => { const id = src.startsWith(prefix) ? src.slice(prefix.length).split('/')[0] : undefined; return id !== undefined && !known.has(id); };
  const copies = all.filter((m) => !mine.includes(m) && idOf(m) === undefined &&
    ((m.fsType === 'overlay' && overlayDevs.has(m.dev)) || (m.fsType === HOST_VIEW_FSTYPE && orphanOf(m.source))));
  const ids = new Set([...dirIds.filter((d) => !known.has(d)), ...mine.map((m) => idOf(m)!)]);
  return { ids: [...ids].sort(), mounts: [...mine, ...copies].sort((a, b) => b.id - a.id) };
}

/** The newest host view whose source is `rootfs` in `mountinfo` (undefined: none). */
export function hostViewOf(mountinfo: string, rootfs: string): MountInfo | undefined {
  return parseMountInfo(mountinfo).filter((m) => m.fsType === HOST_VIEW_FSTYPE && m.source === rootfs).sort((a, b) => b.id - a.id)[0];
}

/**
 * A create that was in flight when the manager stopped: its host view is mounted beside runc create,
 * so its record may not list it yet (`viewPending`). The view whose source is this container's rootfs
 * joins the mounts (its release takes it down); the wait for it is over either way.
 */
export function adoptHostView(ctx: ContainerContext, mountinfo: string, rootfs: string): ContainerContext {
  if (!ctx.viewPending && !ctx.leaving) return ctx;
  const mounts = ctx.mounts ?? [];
  const view = hostViewOf(mountinfo, rootfs);
  const have = view && mounts.some((m) => m.id === view.id);
  const { viewPending: _p, leaving: _l, ...rest } = ctx;
  return { ...rest, mounts: view && !have ? [...mounts, { path: view.mountPoint, id: view.id }] : mounts };
}

export interface SweepResult { unmounted: string[]; removed: string[]; kept: string[] }

/**
 * Detaches the planned mounts and removes each orphan's run dir, unless something is still
 * mounted below it (a recursive remove would walk into the mounted files).
 */
export function sweepOrphans(
  native: { unmount(target: string, o?: { detach?: boolean }): void },
  containersDir: string,
  known: ReadonlySet<string>,
  readMountInfo: () => string = () => readFileSync('/proc/self/mountinfo', 'utf8'),
): SweepResult {
  let dirIds: string[] = [];
  try { dirIds = readdirSync(containersDir); } catch { /* no run dir yet */ }
  const plan = planOrphans(readMountInfo(), containersDir, dirIds, known);
  const unmounted: string[] = [];
  for (const m of plan.mounts) {
    try {
      native.unmount(m.mountPoint, { detach: true });
      unmounted.push(m.mountPoint);
    } catch { /* reported below as kept */ }
  }
  const removed: string[] = [];
  const kept: string[] = [];
  const left = parseMountInfo(readMountInfo()).map((m) => m.mountPoint);
  for (const id of plan.ids) {
    const dir = join(containersDir, id);
    if (left.some((p) => p === dir || p.startsWith(`${dir}/`))) { kept.push(id); continue; }
    rmSync(dir, { recursive: true, force: true });
    removed.push(id);
  }
  return { unmounted, removed, kept };
}
