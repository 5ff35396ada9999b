// The native fast path's rule table (issue 17): the verdicts that need nothing beyond the call's
// register arguments, its strings and the container's static facts (its protected mounts and
// read-only-at-start devices), compiled per container by the vetter and pushed down to the native
// watcher thread (native/src/seccomp.cc, FastMatch). A notification that matches a rule is written
// by that thread straight to the container's performer (no hop through Node); everything else, and
// anything in doubt, takes the actor's path. Every rule's verdict is the actor's for the same input
// (test/unit/vetter-fast-path.test.ts checks it over generated inputs, and the integration test
// checks the C matcher against this one). Pure: no I/O.
import { asHelperArgs, type FastRuleSpec } from '../../native/seccomp-agent.ts';
import { MS, type MountOp } from './syscalls/mount.ts';
import type { UmountOp } from './syscalls/umount.ts';
import type { Protection, VetRequest } from './types.ts';

/**
 * One rule: a syscall, what its flags argument must set and must not set, and a few string tests (the
 * native side's `FastRuleSpec`, with the rule names this module makes). `dataNoIds`: the actor turns
 * host ids in uid=/gid= options into container ids on remounts (translateIdOptions), which the
 * native side does not do, so such calls take the actor's path.
 */
export interface FastRule extends FastRuleSpec {
  /** Named in the audit event (`fastRule`). */
  name: 'tmpfs-mount' | 'remount' | 'umount';
}

/** What the native watcher gets for one container. */
export interface FastTable {
  rules: readonly FastRule[];
  /** Passed to every run, as the actor's path does (--protect-id, --ro-dev). */
  protect: readonly number[];
  roDevs: readonly string[];
  /** The pacer's settings (vetter/pace.ts): the watcher keeps the same budget per container. */
  ratePerSecond: number;
  burst: number;
}

const PROPAGATION = MS.SHARED | MS.PRIVATE | MS.SLAVE | MS.UNBINDABLE;

/** The rules, in the order they are tried (the first match wins; they do not overlap). */
export const FAST_RULES: readonly FastRule[] = [
  // A new tmpfs: nothing of the host's is reachable through it.
  { name: 'tmpfs-mount', syscall: 'mount', flagsArg: 3, all: 0n, none: MS.REMOUNT | MS.BIND | MS.MOVE | PROPAGATION, fstype: 'tmpfs', dataNoIds: false, op: 'mount' },
  // A remount: the performer refuses there, on the very mount, to make writable what was read-only at start.
  { name: 'remount', syscall: 'mount', flagsArg: 3, all: MS.REMOUNT, none: 0n, dataNoIds: true, op: 'mount' },
  // An unmount: the performer refuses there, by mount id, to unmount eci-managed mounts.
  { name: 'umount', syscall: 'umount2', flagsArg: 1, all: 0n, none: 0n, dataNoIds: false, op: 'umount' },
];

/** The container's table, from its protection (read once by the feed) and the pacer's settings. */
export function compileFastTable(p: Protection, pace: { ratePerSecond: number; burst: number }): FastTable {
  return { rules: [...FAST_RULES], protect: [...p.ids], roDevs: [...p.roDevs], ratePerSecond: pace.ratePerSecond, burst: pace.burst };
}

/** What the native side accepts in a string: printable ASCII (anything else is in doubt: the actor's path). */
const PLAIN = /^[\x20-\x7e]*$/;

const hasIdOption = (data: string) => data.split(',').some((o) => o.startsWith('uid=') || o.startsWith('gid='));

/**
 * The rule a request matches and the op it performs, or undefined (the actor's path). `issues`: the
 * watcher's stringIssues; a string null for any reason but a NULL pointer is in doubt. The same
 * logic as FastMatch in native/src/seccomp.cc.
 */
export function matchFast(
  t: Pick<FastTable, 'rules'>,
  r: Pick<VetRequest, 'pid' | 'syscall' | 'args' | 'strings'>,
  issues: Record<string, string> = {},
): { rule: FastRule; op: MountOp | UmountOp } | undefined {
  if (!(r.pid > 0)) return undefined;
  for (const [k, v] of Object.entries(r.strings)) {
    if (v === null && issues[k] !== 'null') return undefined;
    if (v !== null && !PLAIN.test(v)) return undefined;
  }
  const target = r.strings.target;
  if (target == null || target === '') return undefined;
  for (const rule of t.rules) {
    if (rule.syscall !== r.syscall) continue;
    const flags = r.args[rule.flagsArg] ?? 0n;
    if ((flags & rule.all) !== rule.all || (flags & rule.none) !== 0n) continue;
    if (rule.fstype !== undefined && r.strings.fstype !== rule.fstype) continue;
    const data = r.strings.data ?? undefined;
    if (rule.dataNoIds && data !== undefined && hasIdOption(data)) continue;
    const str = (k: string) => r.strings[k] ?? undefined;
    const op: MountOp | UmountOp = rule.op === 'umount'
      ? { op: 'umount', target, flags }
      : { op: 'mount', source: str('source'), target, fstype: str('fstype'), flags, data };
    return { rule, op };
  }
  return undefined;
}

/** The performer's argv for a matched op: what the actor's path passes (native/seccomp.ts runAsHelper). */
export function fastHelperArgs(t: Pick<FastTable, 'protect' | 'roDevs'>, op: MountOp | UmountOp, pid: number, notifId: bigint, notifFd: number): string[] {
  const notify = { fd: notifFd, id: notifId };
  if (op.op === 'umount') return asHelperArgs('umount-as', { pid, target: op.target, flags: op.flags, notify, protect: [...t.protect] }, notifFd);
  return asHelperArgs('mount-as', { pid, source: op.source, target: op.target, fstype: op.fstype, flags: op.flags, data: op.data, notify, protect: [...t.protect], roDevs: [...t.roDevs] }, notifFd);
}
