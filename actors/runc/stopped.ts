// Whether a container runc still knows has no process left: its init is gone and the pid namespace was
// its own (the kernel ends every process of a pid namespace with its init). Then `runc delete` only
// forgets it (cgroup, state dir): nothing of it uses its rootfs or its uid range any more.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initPidOf, type RuncInitState } from '../restore.ts';
import { runcStateDir } from './cli.ts';

/** The fields of runc's state.json read here. */
export interface RuncStoppedState extends RuncInitState {
  config?: { namespaces?: { type?: string; path?: string }[] };
}

/**
 * True only on evidence: runc's state names the init (pid and start time), that process is gone (or the
 * pid is another process now), and the container had a pid namespace of its own. Anything unknown: false.
 */
export function noProcessLeft(state: RuncStoppedState | undefined, stat: (pid: number) => string | undefined): boolean {
  if (!state?.init_process_pid || state.init_process_start === undefined) return false;
  const ownPidNs = state.config?.namespaces?.some((n) => n.type === 'NEWPID' && !n.path) ?? false;
  return ownPidNs && initPidOf({}, state, stat) === undefined;
}

/** noProcessLeft for container `id` under runc root `root`, from its state.json and /proc. */
export function runcContainerEmpty(root: string | undefined, id: string): boolean {
  let state: RuncStoppedState;
  try {
    state = JSON.parse(readFileSync(join(runcStateDir(root, id), 'state.json'), 'utf8')) as RuncStoppedState;
  } catch {
    return false;
  }
  return noProcessLeft(state, (pid) => {
    try {
      return readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return undefined;
    }
  });
}
