// What the syscall vetter answers for each notified syscall. Pure: the notification in, a verdict
// out. The rule that makes it race-free: a decision that depends on memory the container can still
// change (a path, a string) is never enforced with CONTINUE. Such calls are either refused or
// *performed* by eci's helper inside the container's namespaces, with the arguments eci read, and
// with the checks done there on the object the call acts on (see native/cmd/eci-helper.c mount-as).
// CONTINUE is used only where every variant of the call is safe (the decision rests on register
// arguments, which cannot change, or on nothing).

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

export type PerformOp =
  | { op: 'mount'; source?: string; target: string; fstype?: string; flags: bigint; data?: string }
  | { op: 'umount'; target: string; flags: bigint }
  /**
   * chmod(2) family with S_ISUID/S_ISGID in the mode, performed by eci-helper chmod-as, which refuses it
   * on the container's volumes. The object: `path` (relative to `dirfd`, the caller's fd number, or
   * the caller's cwd when dirfd is absent or AT_FDCWD) or, for fchmod, the caller's `fd`. `flags` are
   * fchmodat2's (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH); the fchmodat syscall has none.
   */
  | { op: 'chmod'; syscall: 'chmod' | 'fchmod' | 'fchmodat' | 'fchmodat2'; path?: string; dirfd?: number; fd?: number; mode: number; flags: number };

export type Verdict =
  | { kind: 'perform'; perform: PerformOp; reason: string }
  | { kind: 'errno'; errno: number; code: string; reason: string }
  | { kind: 'continue'; reason: string };

// <linux/mount.h>, <sys/mount.h>
export const MS = {
  RDONLY: 0x1n, NOSUID: 0x2n, NODEV: 0x4n, NOEXEC: 0x8n, REMOUNT: 0x20n, BIND: 0x1000n, MOVE: 0x2000n, REC: 0x4000n,
  UNBINDABLE: 0x20000n, PRIVATE: 0x40000n, SLAVE: 0x80000n, SHARED: 0x100000n,
} as const;
export const MOUNT_ATTR = { RDONLY: 0x1n, NOSUID: 0x2n, NODEV: 0x4n, NOEXEC: 0x8n, IDMAP: 0x100000n, NOSYMFOLLOW: 0x200000n } as const;
const OPEN_TREE_CLONE = 1n;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4n;
const FSCONFIG_CMD_RECONFIGURE = 7n;
/** S_ISUID | S_ISGID: the bits whose chmod is vetted (the seccomp rules notify only modes with one of them). */
export const SETID_BITS = 0o6000n;
const MODE_BITS = 0o7777n; // S_IALLUGO: what chmod takes of its mode argument
const AT_FDCWD = -100;
/** An int argument (fd, flags) as the kernel reads it from a 64-bit register. */
const int = (v: bigint) => Number(BigInt.asIntN(32, v));

const EPERM = (reason: string): Verdict => ({ kind: 'errno', errno: 1, code: 'EPERM', reason });
const perform = (p: PerformOp, reason: string): Verdict => ({ kind: 'perform', perform: p, reason });

/** Flags that loosen a mount; clearing any of them through mount_setattr is refused. */
const PROTECTIVE_ATTRS = MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC | MOUNT_ATTR.NOSYMFOLLOW;

export function decide(r: VetRequest): Verdict {
  const a = (i: number) => r.args[i] ?? 0n;
  switch (r.syscall) {
    case 'mount': {
      const target = r.strings.target;
      if (target == null) return EPERM('mount: the target could not be read from the caller');
      const flags = a(3);
      const str = (k: string) => r.strings[k] ?? undefined;
      // Remounts (also of eci-managed mounts) are performed with the read-only check done on the
      // very mount the target resolves to: a read-only mount never becomes writable.
      const data = flags & MS.REMOUNT ? translateIdOptions(str('data'), r.uid, r.gid) : str('data');
      const op: PerformOp = { op: 'mount', source: str('source'), target, fstype: str('fstype'), flags, data };
      if (flags & MS.REMOUNT) return perform(op, (flags & MS.RDONLY) ? 'remount read-only' : 'remount (refused there if the mount is read-only)');
      if (flags & MS.MOVE) return perform(op, 'move (refused there for eci-managed mounts)');
      if (flags & MS.BIND) return perform(op, 'bind (a bind of a read-only mount stays read-only)');
      if (flags & (MS.SHARED | MS.PRIVATE | MS.SLAVE | MS.UNBINDABLE)) return perform(op, 'propagation change');
      return perform(op, `new ${op.fstype ?? 'unknown'} mount`);
    }
    case 'umount2': {
      const target = r.strings.target;
      if (target == null) return EPERM('umount2: the target could not be read from the caller');
      return perform({ op: 'umount', target, flags: a(1) }, 'unmount (refused there for eci-managed mounts)');
    }
    case 'mount_setattr': {
      const attr = r.mountAttr;
      if (!attr) return EPERM('mount_setattr: the mount_attr could not be read from the caller');
      if (attr.attrClr & PROTECTIVE_ATTRS) return EPERM('mount_setattr may not clear read-only, nosuid, nodev, noexec or nosymfollow');
      if (attr.attrSet & MOUNT_ATTR.IDMAP) return EPERM('mount_setattr may not idmap mounts');
      // Only tightening flags or propagation remains: safe whichever mount a racing thread names.
      return { kind: 'continue', reason: 'only tightens mount attributes' };
    }
    case 'open_tree':
      // A clone keeps the source's flags (read-only stays read-only); an uncloned mount fd could
      // move an eci-managed mount, so it is refused.
      return (a(2) & OPEN_TREE_CLONE) ? { kind: 'continue', reason: 'detached clone keeps its flags' } : EPERM('open_tree without OPEN_TREE_CLONE is not allowed');
    case 'move_mount':
      if (!(a(4) & MOVE_MOUNT_F_EMPTY_PATH) || (r.strings.from_path ?? '') !== '') return EPERM('move_mount of a mount named by path is not allowed (use mount --move)');
      return { kind: 'continue', reason: 'attaches a mount held by fd; its flags travel with it' };
    case 'fsopen':
    case 'fsmount':
      return { kind: 'continue', reason: 'new filesystem, gated by the kernel for the user namespace' };
    case 'fsconfig':
      return a(1) === FSCONFIG_CMD_RECONFIGURE ? EPERM('fsconfig reconfigure of an existing superblock is not allowed') : { kind: 'continue', reason: 'configures a new filesystem context' };
    case 'fspick':
      return EPERM('fspick (reconfiguring an existing superblock) is not allowed');
    case 'chmod':
    case 'fchmod':
    case 'fchmodat':
    case 'fchmodat2': {
      const sc = r.syscall;
      const mode = a(sc === 'fchmodat' || sc === 'fchmodat2' ? 2 : 1) & MODE_BITS;
      // The filter notifies only modes with S_ISUID/S_ISGID; anything else is as the kernel would have
      // had it (the mode is a register value: the caller cannot change it any more).
      if (!(mode & SETID_BITS)) return { kind: 'continue', reason: `${sc}: mode 0${mode.toString(8)} sets neither setuid nor setgid` };
      const what = `${mode & 0o4000n ? 'setuid' : 'setgid'} mode 0${mode.toString(8)}`;
      const reason = `${sc} to ${what} (refused there on the container's volumes)`;
      if (sc === 'fchmod') return perform({ op: 'chmod', syscall: sc, fd: int(a(0)), mode: Number(mode), flags: 0 }, reason);
      const path = r.strings.path;
      if (typeof path !== 'string') return EPERM(`${sc}: the path could not be read from the caller`);
      const dirfd = sc === 'chmod' ? AT_FDCWD : int(a(0));
      const flags = sc === 'fchmodat2' ? int(a(3)) : 0;
      return perform({ op: 'chmod', syscall: sc, path, ...(dirfd === AT_FDCWD ? {} : { dirfd }), mode: Number(mode), flags }, reason);
    }
    default:
      return EPERM(`${r.syscall}: not a syscall eci vets; refused`);
  }
}

