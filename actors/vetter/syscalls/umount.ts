// umount2(2): performed for the caller by eci-helper umount-as (native/cmd/mount-as.c), which refuses
// it there for eci-managed mounts (by mount id, on the mount the target resolves to).
import type { AsNotify, AsOutcome } from '../../../native/seccomp-agent.ts';
import { EPERM, hex, perform, type Performer, type SyscallEntry, type VetRequest } from '../types.ts';

export type UmountOp = { op: 'umount'; target: string; flags: bigint };

export function judgeUmount(r: VetRequest) {
  const target = r.strings.target;
  if (target == null) return EPERM('umount2: the target could not be read from the caller');
  return perform<UmountOp>({ op: 'umount', target, flags: r.args[1] ?? 0n }, 'unmount (refused there for eci-managed mounts)');
}

export const umountSyscalls: SyscallEntry<UmountOp>[] = [{
  name: 'umount2',
  nr: { x86_64: 166, i386: 52 },
  notify: 'always',
  reads: [{ name: 'target', arg: 0, how: 'string' }],
  judge: judgeUmount,
  auditFlags: (a) => hex(a[1]),
}];

export interface UmountNative {
  umountAs(o: { pid: number; target: string; flags?: bigint; notify?: AsNotify; protect?: number[] }): Promise<AsOutcome | void>;
}

export const umountPerformer: Performer<UmountOp, UmountNative> = {
  syscalls: ['mount', 'umount2'], // one C performer with mount-as (native/cmd/mount-as.h)
  run: (native, p, c) => native.umountAs({ pid: c.pid, target: p.target, flags: p.flags, notify: c.notify, protect: c.protection.ids }),
};
