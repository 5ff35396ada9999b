// What a restarted manager needs to pick up a running container where the previous one left it: the
// record kept in KV `eci-containers` (beyond the machine's context), and the container's init pid,
// checked against runc's own state so that a recycled pid is never taken for the container.
import type { ContainerRecord } from './container.actor.ts';

export interface StoredRecord extends ContainerRecord {
  /** Host pid of the container's init, as runc reported it on the seccomp agent socket. */
  initPid?: number;
  /** Its start time (clock ticks since boot, /proc/<pid>/stat field 22): a pid reused since, or after a reboot, is not it. */
  initStart?: number;
  /** The engine's path of its overlay rootfs, where its host view goes (absent: a bind rootfs, or an older record). */
  hostView?: string;
  /** Container paths of eci-managed mounts (never unmounted or moved by the container). */
  protectedPaths?: string[];
  /** Container paths of its volumes (setuid/setgid refused there). */
  volumePaths?: string[];
  /** The key of the group whose range it shares (manager/groups.ts); absent in older records: its own id. */
  group?: string;
}

/** The fields of runc's state.json used here. */
export interface RuncInitState {
  init_process_pid?: number;
  /** Start time of the init, in clock ticks since boot (field 22 of /proc/<pid>/stat). */
  init_process_start?: number;
}

/** Field 22 (starttime) of a /proc/<pid>/stat line; the command name may hold spaces and parens. */
export function statStartTime(stat: string): number | undefined {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const v = Number(rest[19]);
  return Number.isInteger(v) ? v : undefined;
}

/**
 * The container's init pid if it still runs: the recorded pid, else runc's; it must be runc's init
 * (same pid when runc knows it) and, when runc recorded a start time, have that start time (a pid
 * reused by another process fails this). undefined: not known or gone (then nothing is resumed).
 */
export function initPidOf(rec: Pick<StoredRecord, 'initPid'>, runc: RuncInitState | undefined, stat: (pid: number) => string | undefined): number | undefined {
  const pid = rec.initPid ?? runc?.init_process_pid;
  if (!pid || !Number.isInteger(pid) || pid <= 0) return undefined;
  if (runc?.init_process_pid !== undefined && runc.init_process_pid !== pid) return undefined;
  const line = stat(pid);
  if (line === undefined) return undefined;
  if (runc?.init_process_start !== undefined && statStartTime(line) !== runc.init_process_start) return undefined;
  return pid;
}
