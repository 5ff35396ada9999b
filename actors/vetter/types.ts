// The shapes a vetted syscall is described by (see registry.ts): what the vetter is asked, what it
// answers, and one syscall's entry: its seccomp rule, the arguments read from the caller, its pure
// judge and the audit rendering of its flags. Pure types and tiny helpers, no I/O.

import type { AsNotify, AsOutcome } from '../../native/seccomp-agent.ts';

export interface VetRequest {
  container: string;
  pid: number;
  syscall: string;
  args: bigint[];
  strings: Record<string, string | null>;
  mountAttr?: { attrSet: bigint; attrClr: bigint; propagation: bigint; usernsFd: bigint };
  /** The container's id mapping (container id 0 -> hostID). */
  uid?: { hostID: number; size: number };
  gid?: { hostID: number; size: number };
}

/** A verdict whose perform op is P (registry.ts composes the union of every family's op). */
export type VerdictOf<P> =
  | { kind: 'perform'; perform: P; reason: string }
  | { kind: 'errno'; errno: number; code: string; reason: string }
  | { kind: 'continue'; reason: string };

/**
 * How the native watcher reads one argument of the caller's memory, between two ID_VALID checks
 * (native/src/seccomp.cc, the reader of the same name):
 * - `string`: a NUL-terminated string (at most PATH_MAX);
 * - `mount-data`: mount's data as a string, only for text-option filesystems or MS_BIND/MS_MOVE;
 * - `fsconfig-key` / `fsconfig-value`: fsconfig's key/value, only for the commands that carry text;
 * - `mount-attr`: mount_setattr's struct mount_attr (arg: its pointer, the size is the next argument),
 *   delivered as VetRequest.mountAttr, not as a string.
 */
export type ArgReader = 'string' | 'mount-data' | 'fsconfig-key' | 'fsconfig-value' | 'mount-attr';
export interface ArgRead { name: string; arg: number; how: ArgReader }

/**
 * When the seccomp filter sends the call to eci: `always`, or only when the mode argument (index
 * `modeArg`) sets S_ISUID or S_ISGID (argument-filtered rules; see actors/runc/seccomp.ts).
 */
export type NotifyRule = 'always' | { modeArg: number };

export interface SyscallEntry<P> {
  name: string;
  /** Syscall numbers: x86_64 (x32 shares them, with the X32 bit) and i386. */
  nr: { x86_64: number; i386: number };
  notify: NotifyRule;
  /** The pointer arguments read from the caller (in this order). */
  reads: readonly ArgRead[];
  /** Pure: the notification in, the verdict out. */
  judge(r: VetRequest): VerdictOf<P>;
  /** Its flags for the audit event (mount flags in hex, a chmod mode in octal), if it has any. */
  auditFlags?(args: readonly bigint[]): string | undefined;
}

export const EPERM = (reason: string) => ({ kind: 'errno' as const, errno: 1, code: 'EPERM', reason });
export const CONTINUE = (reason: string) => ({ kind: 'continue' as const, reason });
export const perform = <P>(p: P, reason: string) => ({ kind: 'perform' as const, perform: p, reason });
/** An int argument (fd, flags) as the kernel reads it from a 64-bit register. */
export const int = (v: bigint) => Number(BigInt.asIntN(32, v));
/** Argument i, 0 when absent. */
export const arg = (r: { args: readonly bigint[] }, i: number) => r.args[i] ?? 0n;
export const hex = (v: bigint | undefined) => `0x${(v ?? 0n).toString(16)}`;

/** What the container must never undo (read once from its init's mount table by the feed). */
export interface Protection {
  /** Mount ids of eci-managed mounts (never unmounted or moved). */
  ids: number[];
  /** Devices of the mounts read-only at start. */
  roDevs: string[];
  /** The volumes' mount ids and devices (setuid/setgid refused there); null when the volumes are not known. */
  volumes: { ids: number[]; devs: string[] } | null;
}

/** What a performer is given besides the op: the caller, its notification, and the container's protection. */
export interface PerformContext {
  pid: number;
  notify: AsNotify;
  protection: Protection;
}

/** How one perform op is carried out: which native performer (eci-helper mount-as/umount-as/chmod-as). */
export interface Performer<P, N> {
  /** The syscalls a native error names when the call itself failed: its errno is then the caller's answer. */
  syscalls: readonly string[];
  /** A new mount that gets eci's emulated files first: the manager answers it, after binding them. */
  emulates?(p: P): { fstype: string; target: string } | undefined;
  run(native: N, p: P, c: PerformContext): Promise<AsOutcome | void>;
}
