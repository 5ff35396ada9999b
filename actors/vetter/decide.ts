// What the syscall vetter answers for each notified syscall. Pure: the notification in, a verdict
// out. The rule that makes it race-free: a decision that depends on memory the container can still
// change (a path, a string) is never enforced with CONTINUE. Such calls are either refused or
// *performed* by eci's helper inside the container's namespaces, with the arguments eci read, and
// with the checks done there on the object the call acts on (see native/cmd/eci-helper.c mount-as).
// CONTINUE is used only where every variant of the call is safe (the decision rests on register
// arguments, which cannot change, or on nothing). Each syscall's judge lives in its module under
// syscalls/, listed in registry.ts.

import { judge, type PerformOp, type Verdict } from './registry.ts';
import type { VetRequest } from './types.ts';

export type { PerformOp, Verdict, VetRequest };
export { MS, translateIdOptions } from './syscalls/mount.ts';
export { MOUNT_ATTR } from './syscalls/new-mount-api.ts';
export { SETID_BITS } from './syscalls/chmod.ts';

/** The verdict on one notification: its syscall's pure judge (registry.ts), EPERM for any other. */
export function decide(r: VetRequest): Verdict {
  return judge(r);
}

