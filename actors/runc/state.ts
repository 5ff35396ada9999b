// What eci reads of runc's state.json (<root>/<id>/state.json, runc's libcontainer State): the init
// pid (from the file's head), and whether a container runc still knows has no process left.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { initPidOf, type RuncInitState } from '../restore.ts';
import { runcStateDir } from './cli.ts';

/** The fields of runc's state.json eci reads as a whole. */
export interface RuncState extends RuncInitState {
  config?: { namespaces?: { type?: string; path?: string }[] };
}

/** runc's state.json of container `id` under `root`, parsed whole (undefined: none, or unreadable). */
export function readRuncState(root: string | undefined, id: string): RuncState | undefined {
  try {
    return JSON.parse(readFileSync(join(runcStateDir(root, id), 'state.json'), 'utf8')) as RuncState;
  } catch {
    return undefined;
  }
}

/** /proc/<pid>/stat (undefined: no such process), for initPidOf's start-time check. */
export function procStat(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
}

/** How much of the file initPidOf reads first: the pid is among its first fields. */
const HEAD_BYTES = 4096;

/**
 * The init pid in state.json's text `head` (a prefix of it), or undefined when it is not there.
 * runc writes its State struct's fields in order (id, init_process_pid, ..., then the whole config),
 * so the first `"init_process_pid":` key is the top-level one: a quote inside a JSON string is
 * always escaped, and the config (with the seccomp profile, tens of KiB) comes after it.
 */
export function initPidInHead(head: string): number | undefined {
  const m = /"init_process_pid":\s*(\d+)\s*[,}]/.exec(head);
  if (!m) return undefined;
  const pid = Number(m[1]);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * A container's init pid from runc's state.json (undefined: unknown). Reads only the file's head, not
 * the whole file through JSON.parse (a cost on every create's answer); the whole file when the
 * head does not say.
 */
export function runcInitPid(root: string | undefined, id: string): number | undefined {
  const path = join(runcStateDir(root, id), 'state.json');
  try {
    const fd = openSync(path, 'r');
    let head: string;
    try {
      const buf = Buffer.alloc(HEAD_BYTES);
      head = buf.toString('utf8', 0, readSync(fd, buf, 0, HEAD_BYTES, 0));
    } finally {
      closeSync(fd);
    }
    const pid = initPidInHead(head);
    if (pid !== undefined) return pid;
  } catch {
    return undefined;
  }
  const whole: unknown = readRuncState(root, id)?.init_process_pid;
  return typeof whole === 'number' && Number.isSafeInteger(whole) && whole > 0 ? whole : undefined;
}

/**
 * Whether a container runc still knows has no process left, true only on evidence: runc's state names
 * the init (pid and start time), that process is gone (or the pid is another process now), and the
 * pid namespace was the container's own (the kernel ends every process of a pid namespace with its
 * init). Then `runc delete` only forgets it (cgroup, state dir). Anything unknown: false.
 */
export function noProcessLeft(state: RuncState | undefined, stat: (pid: number) => string | undefined): boolean {
  if (!state?.init_process_pid || state.init_process_start === undefined) return false;
  const ownPidNs = state.config?.namespaces?.some((n) => n.type === 'NEWPID' && !n.path) ?? false;
  return ownPidNs && initPidOf({}, state, stat) === undefined;
}

/** noProcessLeft for container `id` under runc root `root`, from its state.json and /proc. */
export function runcContainerEmpty(root: string | undefined, id: string): boolean {
  return noProcessLeft(readRuncState(root, id), procStat);
}
