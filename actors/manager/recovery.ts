// After a manager restart: containers runc still knows are picked up again from their KV records,
// the rest are cleaned up (mounts, range, a final event), orphan ranges are freed and mounts no
// record speaks for are swept; then the picked-up containers get their emulated files and vetting back.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { containerRecordKeys } from '../../bus/keys.ts';
import { subjects } from '../../bus/subjects.ts';
import type { IdRange, MountRef } from '../../statecharts/events.ts';
import type { AllocatorActor } from '../allocator.actor.ts';
import type { FdHolder } from '../fd-holder.ts';
import type { NotifyFeed } from '../notify-feed.ts';
import { adoptHostView, hostViewOf, sweepOrphans } from '../reconcile.ts';
import { initPidOf, type StoredRecord } from '../restore.ts';
import { procStat, readRuncState } from '../runc/state.ts';
import { runcStateDir } from '../runc/cli.ts';
import type { EmulatedFiles } from './emulated-files.ts';
import type { EventSink } from './publisher.ts';
import type { ContainerTable } from './table.ts';

export interface RecoveryDeps {
  /** KV `eci-containers`. */
  records: KV;
  allocator: Pick<AllocatorActor, 'free' | 'held' | 'settled'>;
  events: EventSink;
  table: ContainerTable;
  files: EmulatedFiles;
  native: { unmount(target: string, o?: { detach?: boolean }): void; closeFd?(fd: number): void };
  /** Starts the actor of a container from its record (in the table once this returns). */
  revive(id: string, rec: StoredRecord): void;
  /** Unmounts what eci mounted for a container and removes its run dir. */
  removeRootfs(id: string, mounts: MountRef[] | undefined): void;
  runDir: string;
  log: Logger;
  /** Mounts container id's host view on the engine's path (its manager died before it could). */
  mountView?(id: string, engine: string, uid: IdRange, gid: IdRange): Promise<unknown>;
  /** /proc/<pid>/stat of a pid (undefined: none); procStat unless a test stands in. */
  stat?: (pid: number) => string | undefined;
}

/**
 * A record whose host view was still being mounted gets it from the mount table (read once, and only
 * then). When the manager died before the view was mounted, it is mounted now, before the engine's next
 * call is served (the engine's path would show the engine's own overlay, not the container's rootfs).
 */
function viewAdopter(d: RecoveryDeps): (rec: StoredRecord, id: string, mount: boolean) => Promise<StoredRecord> {
  let table: string | undefined;
  return async (rec, id, mount) => {
    if (!rec.context.viewPending && !rec.context.leaving) return rec;
    const rootfs = join(d.runDir, 'containers', id, 'rootfs');
    table ??= readFileSync('/proc/self/mountinfo', 'utf8');
    const { uid, gid } = rec.context;
    if (mount && rec.context.viewPending && !rec.context.leaving && rec.hostView && uid && gid && d.mountView && !hostViewOf(table, rootfs)) {
      try {
        await d.mountView(id, rec.hostView, uid, gid);
        table = readFileSync('/proc/self/mountinfo', 'utf8');
        d.log.info({ id, path: rec.hostView }, 'host view mounted after a restart');
      } catch (e) {
        d.log.warn({ id, path: rec.hostView, err: e instanceof Error ? e.message : String(e) }, 'host view not mounted after a restart: the engine path shows its own overlay');
      }
    }
    return { ...rec, context: adoptHostView(rec.context, table, rootfs) };
  };
}

/** Keep containers runc still knows, clean up the rest, free orphan ranges, sweep orphan mounts. */
export async function restoreContainers(d: RecoveryDeps): Promise<void> {
  const kv = d.records;
  const withView = viewAdopter(d);
  const stat = d.stat ?? procStat;
  for await (const key of await kv.keys(containerRecordKeys.all)) {
    const id = containerRecordKeys.idOf(key);
    const e = await kv.get(key);
    if (!e || e.operation !== 'PUT') continue;
    const rec = e.json<StoredRecord>();
    const alive = existsSync(runcStateDir(rec.runcRoot, id));
    if ((rec.state === 'mounted' || rec.state === 'running') && alive) {
      d.revive(id, await withView(rec, id, true));
      const runc = readRuncState(rec.runcRoot, id);
      const pid = initPidOf(rec, runc, stat);
      if (pid) d.table.setInitPid(id, pid, runc?.init_process_start ?? rec.initStart);
      d.log.info({ id, state: rec.state }, 'restored container');
      continue;
    }
    // Fail closed: runc no longer knows it, but while its init runs (same pid, same start time when the
    // record has it) its range and mounts stay its own; the reconcile releases them once the init ends.
    const orphanInit = rec.state === 'mounted' || rec.state === 'running' ? initPidOf(rec, { init_process_start: rec.initStart }, stat) : undefined;
    if (orphanInit) {
      d.revive(id, await withView(rec, id, false)); // runc's container is gone: no view to give the engine
      d.table.setInitPid(id, orphanInit, rec.initStart);
      d.log.warn({ id, pid: orphanInit }, 'runc no longer knows this container, but its init still runs: it keeps its range and mounts');
      continue;
    }
    d.removeRootfs(id, rec.context.mounts);
    // Its range is freed below unless a restored container of its group still holds it.
    // Killed after the final transition was recorded (during delete): its event is out already.
    if (rec.state === 'stopped' || rec.state === 'failed') { await kv.delete(containerRecordKeys.key(id)); continue; }
    const final = rec.state === 'created' || rec.state === 'mapped' ? 'failed' : 'stopped';
    await d.events.publish(subjects.containerEvent(id, final), `container.${final}`, {
      container: id, state: final, from: rec.state, uid: rec.context.uid, gid: rec.context.gid, bundle: rec.context.bundle,
      reason: 'ended while the manager was down',
    });
    await kv.delete(containerRecordKeys.key(id));
  }
  // A range is held under its group's key: kept while a restored member lives, else freed.
  for (const [, owner] of Object.entries(d.allocator.held())) {
    if (!d.table.groups.live(owner)) d.allocator.free(owner);
  }
  await d.allocator.settled();
  sweepOrphanMounts(d);
}

/**
 * After restoreContainers: the restored containers get their emulated /proc files back and their
 * vetting resumes from the notify fds the fd-holder kept (the calls they made meanwhile are queued
 * in the kernel and answered now). A container whose init cannot be identified is not resumed: its
 * fds are closed, and its vetted calls fail with ENOSYS as without a holder (fail closed).
 */
export async function resumeContainers(d: RecoveryDeps, holder: FdHolder | undefined, feed: NotifyFeed): Promise<void> {
  for (const c of d.table.all()) {
    const pid = d.table.initPid(c.id);
    if (pid) await d.files.reattach(c.id, pid);
  }
  if (!holder?.connected) return;
  const taken = holder.take();
  for (const [id, fds] of taken.fds) {
    const pid = d.table.has(id) ? d.table.initPid(id) : undefined;
    if (!pid) {
      for (const fd of fds) d.native.closeFd!(fd);
      if (!d.table.has(id)) holder.drop(id);
      d.log.warn({ id, fds: fds.length }, 'notify fds of a container that is not restored: closed');
      continue;
    }
    // Each noted id belongs to one of the fds; on the others ID_VALID just says no.
    for (const fd of fds) feed.adopt(id, pid, fd, taken.seen.get(id));
    d.log.info({ id, fds: fds.length, pid }, 'vetting resumed');
  }
}

/** Mounts and run dirs of containers no record speaks for (killed before the mount was recorded). */
function sweepOrphanMounts(d: RecoveryDeps): void {
  const r = sweepOrphans(d.native, join(d.runDir, 'containers'), new Set(d.table.ids()));
  if (r.unmounted.length || r.removed.length) d.log.info(r, 'swept mounts and run dirs of containers that are gone');
  if (r.kept.length) d.log.error({ ids: r.kept }, 'run dirs kept: a mount below them could not be removed');
}
