/*
 * eci-helper chmod-as: one chmod(2)-family call that sets S_ISUID or S_ISGID, performed *for* a
 * container process after the syscall vetter sent it here. Refused (EPERM) when the object is on one
 * of the container's volumes: those are host directories, and a file there is owned by uid 0 on the
 * host disk (the volume is idmapped), so a setuid file planted there would run as root for any host
 * user. Inside the container's own rootfs the call is made (package installs need it). Part of
 * eci-helper (chmod-as.c, over as-common.c's as_run and common options); not a program of its own.
 *
 *   eci-helper chmod-as --pid P [--dirfd N] [--fd N] [--path S] --mode M [--flags F] [--syscall NAME]
 *                       [--protect-id ID]... [--protect-dev MAJ:MIN]... [--notif-fd FD --notif-id ID]
 *
 * The object is --fd (fchmod: P's fd N) or --path (chmod/fchmodat/fchmodat2: S relative to P's fd
 * --dirfd, or to P's cwd without it or with -100, AT_FDCWD). --flags are fchmodat2's: AT_SYMLINK_NOFOLLOW
 * (0x100) and AT_EMPTY_PATH (0x1000). Output: eci-helper's JSON contract; syscall "chmod" when the call
 * failed or was refused (that errno is what P should see), anything else for a failure to get there.
 *
 * Steps (as_run, as-common.h, single-threaded like mount-as):
 *   1. open /proc/P, its ns/ files, root, cwd, status, uid_map, gid_map, and, still host root in the
 *      host namespaces, take P's --fd / --dirfd with pidfd_getfd (ca_prepare; pidfd_open with
 *      PIDFD_THREAD: P is the calling thread). Then NOTIF_ID_VALID: P is still the caller, so the fds
 *      are its fds.
 *   2. setgroups(0), setns into P's user, mount and other namespaces, fork into its pid namespace.
 *   3. the child takes P's root, cwd, ids and capabilities, then opens the object once:
 *      openat(dir, S, O_PATH | (AT_SYMLINK_NOFOLLOW ? O_NOFOLLOW : 0)), resolved as P would resolve it
 *      (a path starting with /proc/self or /proc/thread-self is rewritten to P's own /proc entry: the
 *      helper is not P, and libc's fchmodat(AT_SYMLINK_NOFOLLOW) emulation passes /proc/self/fd/N).
 *   4. statx(fd, STATX_MNT_ID): on a --protect-id mount, or on a --protect-dev filesystem (any other
 *      mount of a volume's filesystem, e.g. a bind of the volume made in the container), a mode with
 *      S_ISUID|S_ISGID is refused with EPERM.
 *   5. the chmod acts on that very fd, never on a path again: fchmodat2(fd, "", mode, AT_EMPTY_PATH)
 *      (Linux 6.6; works on O_PATH fds). On older kernels chmod("/proc/self/fd/N"), after checking
 *      that this magic link names the same object (a container that controls its /proc could otherwise
 *      point it elsewhere; a remount between that check and the chmod is the remaining window there).
 */
#ifndef ECI_CHMOD_AS_H
#define ECI_CHMOD_AS_H

#include "helper.h"

int main_chmod_as(int argc, char **argv);

#endif
