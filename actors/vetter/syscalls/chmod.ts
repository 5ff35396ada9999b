// The chmod family (chmod, fchmod, fchmodat, fchmodat2), notified only when the mode sets S_ISUID or
// S_ISGID: performed by eci-helper chmod-as (native/cmd/chmod-as.c), which refuses it on the container's
// volumes (files there are uid 0 on the host disk: a setuid file would run as root for any host user)
// and performs it elsewhere, on the object it opened.
import type { AsOutcome } from '../../../native/seccomp-agent.ts';
import { arg, CONTINUE, EPERM, int, perform, type Performer, type SyscallEntry, type VetRequest } from '../types.ts';

type ChmodSyscall = 'chmod' | 'fchmod' | 'fchmodat' | 'fchmodat2';
/**
 * The object: `path` (relative to `dirfd`, the caller's fd number, or the caller's cwd when dirfd is
 * absent or AT_FDCWD) or, for fchmod, the caller's `fd`. `flags` are fchmodat2's
 * (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH); the fchmodat syscall has none.
 */
export type ChmodOp = { op: 'chmod'; syscall: ChmodSyscall; path?: string; dirfd?: number; fd?: number; mode: number; flags: number };

/** S_ISUID | S_ISGID: the bits whose chmod is vetted (the seccomp rules notify only modes with one of them). */
export const SETID_BITS = 0o6000n;
const MODE_BITS = 0o7777n; // S_IALLUGO: what chmod takes of its mode argument
const AT_FDCWD = -100;

function judgeChmod(sc: ChmodSyscall, modeArg: number) {
  return (r: VetRequest) => {
    const mode = arg(r, modeArg) & MODE_BITS;
    // The filter notifies only modes with S_ISUID/S_ISGID; anything else is as the kernel would have
    // had it (the mode is a register value: the caller cannot change it any more).
    if (!(mode & SETID_BITS)) return CONTINUE(`${sc}: mode 0${mode.toString(8)} sets neither setuid nor setgid`);
    const what = `${mode & 0o4000n ? 'setuid' : 'setgid'} mode 0${mode.toString(8)}`;
    const reason = `${sc} to ${what} (refused there on the container's volumes)`;
    if (sc === 'fchmod') return perform<ChmodOp>({ op: 'chmod', syscall: sc, fd: int(arg(r, 0)), mode: Number(mode), flags: 0 }, reason);
    const path = r.strings.path;
    if (typeof path !== 'string') return EPERM(`${sc}: the path could not be read from the caller`);
    const dirfd = sc === 'chmod' ? AT_FDCWD : int(arg(r, 0));
    const flags = sc === 'fchmodat2' ? int(arg(r, 3)) : 0;
    return perform<ChmodOp>({ op: 'chmod', syscall: sc, path, ...(dirfd === AT_FDCWD ? {} : { dirfd }), mode: Number(mode), flags }, reason);
  };
}

/**
 * fchmodat2 is unknown to libseccomp < 2.5.5 (Debian 12's 2.5.4-1+deb12u1 knows it): runc then skips
 * every rule naming it ("unknown seccomp syscall ignored", never an error). The engine's profile does
 * not list it either (Docker 20.10), so it stays refused by the default action or by runc's -ENOSYS stub
 * for syscalls newer than the profile (libc falls back to fchmodat). Only a profile-less (--privileged)
 * container on such a libseccomp would have fchmodat2 unfiltered; with a libseccomp that knows it,
 * the rules apply to it as to fchmodat.
 */
const entry = (name: ChmodSyscall, nr: SyscallEntry<ChmodOp>['nr'], modeArg: number, pathArg?: number): SyscallEntry<ChmodOp> => ({
  name, nr, notify: { modeArg },
  reads: pathArg === undefined ? [] : [{ name: 'path', arg: pathArg, how: 'string' }],
  judge: judgeChmod(name, modeArg),
  // Its mode (octal) stands for the flags in the audit event.
  auditFlags: (a) => (a[modeArg] === undefined ? undefined : `0${(a[modeArg] & MODE_BITS).toString(8)}`),
});

export const chmodSyscalls: SyscallEntry<ChmodOp>[] = [
  entry('chmod', { x86_64: 90, i386: 15 }, 1, 0),
  entry('fchmod', { x86_64: 91, i386: 94 }, 1),
  entry('fchmodat', { x86_64: 268, i386: 306 }, 2, 1),
  entry('fchmodat2', { x86_64: 452, i386: 452 }, 2, 1),
];

export interface ChmodNative {
  chmodAs(o: { pid: number; syscall?: ChmodSyscall; path?: string; dirfd?: number; fd?: number; mode: number; flags?: number; notify?: { fd: number; id: bigint }; protect?: number[]; protectDevs?: string[] }): Promise<void>;
}

export const chmodPerformer: Performer<ChmodOp, ChmodNative> = {
  syscalls: ['chmod'],
  run(native, p, c): Promise<AsOutcome | void> {
    const volumes = c.protection.volumes;
    if (!volumes) {
      const message = `${p.syscall}: the volumes of this container are not known (created before the manager started): setuid/setgid refused`;
      return Promise.reject(Object.assign(new Error(message), { code: 'EPERM', errno: 1, syscall: 'chmod' }));
    }
    return native.chmodAs({ pid: c.pid, syscall: p.syscall, path: p.path, dirfd: p.dirfd, fd: p.fd, mode: p.mode, flags: p.flags, notify: c.notify, protect: volumes.ids, protectDevs: volumes.devs });
  },
};
