/*
 * eci-helper mount-as / umount-as: one mount(2) or umount2(2) performed *for* a container process,
 * with arguments the syscall vetter has already checked. Part of eci-helper (mount-as.c, over
 * as-common.c); not a program of its own.
 *
 *   eci-helper mount-as  --pid P [--source S] --target T [--fstype F] [--flags N] [--data D]
 *                        [--protect-id ID]... [--ro-dev MAJ:MIN]... [--notif-fd FD --notif-id ID]
 *   eci-helper umount-as --pid P --target T [--flags N] [--protect-id ID]... [--ro-dev MAJ:MIN]...
 *                        [--notif-fd FD --notif-id ID]
 *
 * N is decimal or 0x-hex. An absent --source/--fstype/--data is passed as NULL. T relative: resolved
 * against P's cwd; absolute: against P's root. --protect-id: eci-managed mounts (by mount id), never
 * unmounted or moved. --ro-dev: devices (st_dev) of the mounts that were read-only when the container
 * started: a read-only mount of these filesystems (the mount itself, a bind or a clone of it) is never
 * made writable. Output (eci-helper's contract): {"ok":true}, or
 * {"ok":false,"code","errno","syscall","message"} where syscall is "mount"/"umount2" when the call
 * itself failed (that errno is what P should see) and anything else for a failure to get there.
 *
 * Steps: as_run() (as-common.h) pins /proc/P, re-checks the notification, enters P's namespaces, forks
 * and takes P's credentials and capabilities (so the kernel checks the call as it would have checked P:
 * CAP_SYS_ADMIN over the mount namespace's owner); mount_as_child() then opens and judges the target
 * and makes the mount()/umount2() on it.
 */
#ifndef ECI_MOUNT_AS_H
#define ECI_MOUNT_AS_H

#include "helper.h"

int main_as(int argc, char **argv);

#endif
