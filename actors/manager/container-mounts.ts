// A container's mounts under $ECI_RUN_DIR/containers/<id>: the idmapped rootfs and binds eci makes
// (exactly those are taken down again, by mount id), and the run dir that holds them.
import { chmodSync, chownSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EciError } from '../errors.ts';
import type { Logger } from 'pino';
import type { IdRange, MountRef } from '../../statecharts/events.ts';
import { mountBindsAsync, mountHostViewAt, mountHostViewOf, mountRootfsOnly, unmountRootfs, unmountRootfsAsync, type BindPlan, type RootfsNative, type RootfsPlan, type RootfsTimes } from '../rootfs.ts';
import type { TestPause } from '../test-pause.ts';

/**
 * Container root (an unmapped host uid) must be able to walk down to its rootfs under the run dir:
 * every directory on the way needs the search bit for others.
 */
export function checkTraversable(dir: string): void {
  for (let d = dir; ; d = dirname(d)) {
    const mode = statSync(d).mode;
    if (!(mode & 0o001)) {
      throw new EciError('ECONFIG', `${d} (mode ${(mode & 0o777).toString(8)}) must be searchable by others (o+x): container rootfs mounts live under ${dir}`);
    }
    if (d === '/') return;
  }
}

/** eci owns the run dir and its containers/: container roots must pass through (an existing dir keeps its mode under mkdir). */
export function openRunDir(runDir: string): void {
  chmodSync(runDir, 0o711);
  chmodSync(join(runDir, 'containers'), 0o711);
  checkTraversable(join(runDir, 'containers'));
}

/** What to mount for a container: its rootfs and its idmapped binds. */
export interface MountPlan { rootfs: RootfsPlan; binds: BindPlan[] }

export class ContainerMounts {
  /**
   * @param settledFor resolves once a container's bus writes so far have landed (a test pause point
   *   must not stop the manager before what precedes it is recorded).
   */
  constructor(
    private readonly runDir: string,
    private readonly native: RootfsNative,
    private readonly pause: () => TestPause,
    private readonly settledFor: (id: string) => Promise<void>,
    private readonly log: Logger,
  ) {}

  containerDir(id: string): string {
    return join(this.runDir, 'containers', id);
  }

  rootfsTarget(id: string): string {
    return join(this.containerDir(id), 'rootfs');
  }

  /**
   * The host view of container `id`'s overlay rootfs on the engine's path `engine`, for a container whose
   * manager died between its overlay and its view (the restarted manager mounts it from the record).
   */
  async mountView(id: string, engine: string, uid: IdRange, gid: IdRange): Promise<MountRef> {
    return mountHostViewAt(this.native, engine, this.rootfsTarget(id), uid, gid);
  }

  /**
   * Mounts the rootfs and binds mapped to the range; on failure, leaves nothing behind. An overlay's
   * host view on the engine's path is started once the overlay is up and is not waited for: `view`
   * (runc does not use that path; the create waits for it after `runc create`, before its answer).
   */
  async mount(id: string, plan: MountPlan, uid: IdRange, gid: IdRange): Promise<{ path: string; mounts: MountRef[]; view?: Promise<MountRef> }> {
    await this.pause().at('create.after-range', id, () => this.settledFor(id));
    const target = this.rootfsTarget(id);
    // 0700 and owned by the container's root: runc walks in as that user, nobody else on the host can.
    const dir = this.containerDir(id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownSync(dir, uid.hostID, gid.hostID);
    chmodSync(dir, 0o700);
    mkdirSync(target, { recursive: true, mode: 0o711 });
    let mounts: MountRef[] = [];
    let binds: MountRef[] = [];
    let view: Promise<MountRef> | undefined;
    const t = performance.now();
    const times: RootfsTimes = {};
    // For the create.before-view pause: resolves a turn after mount() returns (its 'mounted' record then queued).
    let returned = () => {};
    const mountReturned = new Promise<void>((r) => (returned = r));
    // The rootfs is built by a helper process while the binds are made on the thread pool: the two overlap.
    const rootfs = mountRootfsOnly(this.native, plan.rootfs, target, uid, gid, undefined, times).then((m) => {
      mounts = m;
      if (plan.rootfs.kind !== 'overlay') return;
      const v = this.pause().at('create.view-fails', id)
        .then(() => this.pause().at('create.before-view', id, async () => { await mountReturned; await this.settledFor(id); }))
        .then(() => mountHostViewOf(this.native, plan.rootfs, target, uid, gid, undefined, times))
        .then(async (r) => {
          await this.pause().at('create.after-view', id, () => this.settledFor(id));
          return r!;
        });
      v.then((r) => this.log.debug({ id, viewMs: times.viewMs, sinceMs: +(performance.now() - t).toFixed(2) }, 'host view mounted'), () => {});
      v.catch(() => {}); // the create awaits it; the failure path below too
      view = v;
    });
    rootfs.catch(() => {}); // awaited below, also when the binds fail first
    try {
      if (plan.binds.length) mkdirSync(join(this.containerDir(id), 'binds'), { mode: 0o711 });
      binds = await mountBindsAsync(this.native, plan.binds, uid, gid);
      const tb = performance.now();
      await rootfs;
      this.log.debug({ id, ms: +(performance.now() - t).toFixed(2), bindsMs: +(tb - t).toFixed(2), overlayMs: times.overlayMs }, 'rootfs mounted');
      mounts = [...mounts, ...binds];
      await this.pause().at('create.after-rootfs', id, () => this.settledFor(id));
      setImmediate(returned);
      return { path: target, mounts, view };
    } catch (e) {
      // The rootfs may still be under way when a bind failed: wait for it (and its view), so its mounts are taken down too.
      await rootfs.catch(() => {});
      const v = await view?.catch(() => undefined);
      if (v) unmountRootfs(this.native, [v]);
      unmountRootfs(this.native, binds);
      unmountRootfs(this.native, mounts);
      // Whatever is still mounted on our own fresh rootfs dir is ours: take it down too.
      for (let i = 0; i < 8 && this.native.isMountpoint(target); i++) this.native.unmount(target, { detach: true });
      try {
        rmSync(this.containerDir(id), { recursive: true, force: true });
      } catch (rmErr) {
        this.log.error({ err: rmErr, id }, 'cannot remove the run dir of a failed container');
      }
      throw e;
    }
  }

  /** The delete path's unmounts, between its two test pause points; resolves with the mounts that would not go. */
  async unmount(id: string, mounts: MountRef[] | undefined): Promise<MountRef[]> {
    await this.pause().at('delete.before-unmount', id, () => this.settledFor(id));
    // Off the event loop: under load one umount2 takes tens of ms.
    const left = await unmountRootfsAsync(this.native, mounts ?? []);
    await this.pause().at('delete.after-unmount', id, () => this.settledFor(id));
    return left;
  }

  /** After unmount: removes the run dir with async fs (kept if a mount is stuck on it). */
  async removeRunDir(id: string, left: MountRef[]): Promise<void> {
    if (!this.keepDir(id, left)) await rm(this.containerDir(id), { recursive: true, force: true });
  }

  /** Unmounts what eci mounted for a container and removes its run dir (kept if a mount is stuck). */
  remove(id: string, mounts: MountRef[] | undefined): void {
    this.removeDir(id, unmountRootfs(this.native, mounts ?? []));
  }

  private removeDir(id: string, left: MountRef[]): void {
    if (!this.keepDir(id, left)) rmSync(this.containerDir(id), { recursive: true, force: true });
  }

  /** A run dir with a mount still on it is kept (removing it would reach into the mount), and logged. */
  private keepDir(id: string, left: MountRef[]): boolean {
    if (left.length) {
      this.log.error({ id, left }, 'cannot unmount rootfs mounts');
      return true;
    }
    if (this.native.isMountpoint(this.rootfsTarget(id))) {
      this.log.warn({ id }, 'a mount not made by eci remains on the rootfs path; leaving it');
      return true;
    }
    return false;
  }
}
