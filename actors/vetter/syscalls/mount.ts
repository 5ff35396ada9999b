// mount(2): every variant is performed for the caller by eci-helper mount-as (native/cmd/mount-as.c),
// never CONTINUE: its target is a path in memory the caller can still change, so the checks are done
// there, on the very mount the target resolves to.
import type { AsNotify, AsOutcome } from '../../../native/seccomp-agent.ts';
import { EPERM, hex, perform, type Performer, type SyscallEntry, type VetRequest } from '../types.ts';

// <linux/mount.h>, <sys/mount.h>
export const MS = {
  RDONLY: 0x1n, NOSUID: 0x2n, NODEV: 0x4n, NOEXEC: 0x8n, REMOUNT: 0x20n, BIND: 0x1000n, MOVE: 0x2000n, REC: 0x4000n,
  UNBINDABLE: 0x20000n, PRIVATE: 0x40000n, SLAVE: 0x80000n, SHARED: 0x100000n,
} as const;

export type MountOp = { op: 'mount'; source?: string; target: string; fstype?: string; flags: bigint; data?: string };

/**
 * The kernel shows some mount options in host ids (tmpfs prints uid=/gid= in the initial user
 * namespace), and `mount -o remount` echoes them back from /proc/mounts, which the container's user
 * namespace then cannot parse (EINVAL). Ids inside the container's host range are turned back into
 * container ids; anything else is left for the kernel to judge.
 */
export function translateIdOptions(data: string | undefined, uid?: VetRequest['uid'], gid?: VetRequest['gid']): string | undefined {
  if (!data || (!uid && !gid)) return data;
  return data.split(',').map((o) => {
    const m = /^(uid|gid)=(\d+)$/.exec(o);
    const r = m?.[1] === 'uid' ? uid : gid;
    if (!m || !r) return o;
    const n = Number(m[2]);
    return n >= r.hostID && n < r.hostID + r.size ? `${m[1]}=${n - r.hostID}` : o;
  }).join(',');
}

export function judgeMount(r: VetRequest) {
  const target = r.strings.target;
  if (target == null) return EPERM('mount: the target could not be read from the caller');
  const flags = r.args[3] ?? 0n;
  const str = (k: string) => r.strings[k] ?? undefined;
  // Remounts (also of eci-managed mounts) are performed with the read-only check done on the
  // very mount the target resolves to: a read-only mount never becomes writable.
  const data = flags & MS.REMOUNT ? translateIdOptions(str('data'), r.uid, r.gid) : str('data');
  const op: MountOp = { op: 'mount', source: str('source'), target, fstype: str('fstype'), flags, data };
  if (flags & MS.REMOUNT) return perform(op, (flags & MS.RDONLY) ? 'remount read-only' : 'remount (refused there if the mount is read-only)');
  if (flags & MS.MOVE) return perform(op, 'move (refused there for eci-managed mounts)');
  if (flags & MS.BIND) return perform(op, 'bind (a bind of a read-only mount stays read-only)');
  if (flags & (MS.SHARED | MS.PRIVATE | MS.SLAVE | MS.UNBINDABLE)) return perform(op, 'propagation change');
  return perform(op, `new ${op.fstype ?? 'unknown'} mount`);
}

export const mountSyscalls: SyscallEntry<MountOp>[] = [{
  name: 'mount',
  nr: { x86_64: 165, i386: 21 },
  notify: 'always',
  reads: [
    { name: 'source', arg: 0, how: 'string' }, { name: 'target', arg: 1, how: 'string' },
    { name: 'fstype', arg: 2, how: 'string' }, { name: 'data', arg: 4, how: 'mount-data' },
  ],
  judge: judgeMount,
  auditFlags: (a) => hex(a[3]),
}];

export interface MountNative {
  /** With notify.answer the call may be answered for the caller already: then AsOutcome.answered says how (also on a rejection). */
  mountAs(o: { pid: number; source?: string | null; target: string; fstype?: string | null; flags?: bigint; data?: string | null; notify?: AsNotify; protect?: number[]; roDevs?: string[] }): Promise<AsOutcome | void>;
}

export const mountPerformer: Performer<MountOp, MountNative> = {
  // mount-as and umount-as are one C performer (native/cmd/mount-as.h): either name is the call's own.
  syscalls: ['mount', 'umount2'],
  // A new proc/sysfs mount gets eci's files before the caller returns.
  emulates: (p) => (p.fstype === 'proc' || p.fstype === 'sysfs') && !(p.flags & (MS.REMOUNT | MS.BIND | MS.MOVE)) ? { fstype: p.fstype, target: p.target } : undefined,
  run: (native, p, c) => native.mountAs({
    pid: c.pid, source: p.source, target: p.target, fstype: p.fstype, flags: p.flags, data: p.data,
    notify: c.notify, protect: c.protection.ids, roDevs: c.protection.roDevs,
  }),
};
