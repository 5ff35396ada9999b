// The one table of vetted syscalls, after kinvolk/seccompagent's pkg/registry: a syscall name maps to
// its entry (seccomp rule, arguments read, pure judge, audit flags; see types.ts), and a perform op to
// its native performer. Adding a syscall: a module under syscalls/ (plus its C performer when it is
// performed), one line here, and `npm run gen:syscalls` for the native watcher's table.
import type { Performer, SyscallEntry, VerdictOf, VetRequest } from './types.ts';
import { EPERM } from './types.ts';
import { mountPerformer, mountSyscalls, type MountNative, type MountOp } from './syscalls/mount.ts';
import { umountPerformer, umountSyscalls, type UmountNative, type UmountOp } from './syscalls/umount.ts';
import { newMountApiSyscalls } from './syscalls/new-mount-api.ts';
import { chmodPerformer, chmodSyscalls, type ChmodNative, type ChmodOp } from './syscalls/chmod.ts';

export type PerformOp = MountOp | UmountOp | ChmodOp;
export type Verdict = VerdictOf<PerformOp>;
/** The native performers every op needs (eci-helper mount-as, umount-as, chmod-as). */
export type PerformNative = MountNative & UmountNative & ChmodNative;

/** Every vetted syscall, in the order of their seccomp rules. */
export const SYSCALLS: readonly SyscallEntry<PerformOp>[] = [...mountSyscalls, ...umountSyscalls, ...newMountApiSyscalls, ...chmodSyscalls];

const PERFORMERS: { [K in PerformOp['op']]: Performer<Extract<PerformOp, { op: K }>, PerformNative> } = {
  mount: mountPerformer,
  umount: umountPerformer,
  chmod: chmodPerformer,
};

const byName = new Map(SYSCALLS.map((s) => [s.name, s]));

export function lookup(name: string): SyscallEntry<PerformOp> | undefined {
  return byName.get(name);
}

/** The performer of an op (the union is narrowed by its `op`). */
export function performerOf<P extends PerformOp>(p: P): Performer<P, PerformNative> {
  return PERFORMERS[p.op] as unknown as Performer<P, PerformNative>;
}

/** The default handler: a syscall eci does not vet is refused (the filter should never send one). */
export function judge(r: VetRequest): Verdict {
  return lookup(r.syscall)?.judge(r) ?? EPERM(`${r.syscall}: not a syscall eci vets; refused`);
}
