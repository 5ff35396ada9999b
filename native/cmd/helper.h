/*
 * What eci-helper's units share (eci-helper.c and the commands in as-common.c, mount-as.c, bind-into.c,
 * set-domainname.c, chmod-as.c, serve.c, perform.c): system headers, the new mount API's syscall
 * numbers and thin wrappers, and the one failure a run reports (eci-helper.c).
 */
#ifndef ECI_HELPER_H
#define ECI_HELPER_H

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/mount.h>

#include "errno-names.h"

/* Syscall numbers are the same on every architecture for these (they came after the unification). */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef MOUNT_ATTR_SIZE_VER0
#define MOUNT_ATTR_SIZE_VER0 32
struct mount_attr {
	uint64_t attr_set;
	uint64_t attr_clr;
	uint64_t propagation;
	uint64_t userns_fd;
};
#endif
/* <sys/mount.h> is not included: it clashes with <linux/mount.h> on glibc 2.36. */
#ifndef MNT_DETACH
#define MNT_DETACH 0x00000002
#endif
#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 0x00000008
#endif

/* Scratch mounts live in $ECI_RUN_DIR/tmp (default /run/eci/tmp), 0700; the run dir itself is
 * 0711 because container root must traverse it to reach rootfs mounts under containers/. */
#define DEFAULT_RUN_DIR "/run/eci"

static inline int sys_open_tree(int dfd, const char *path, unsigned int flags)
{
	return (int)syscall(SYS_open_tree, dfd, path, flags);
}
static inline int sys_move_mount(int from_dfd, const char *from, int to_dfd, const char *to, unsigned int flags)
{
	return (int)syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
}
static inline int sys_mount_setattr(int dfd, const char *path, unsigned int flags, struct mount_attr *attr)
{
	return (int)syscall(SYS_mount_setattr, dfd, path, flags, attr, sizeof(*attr));
}
static inline int sys_fsopen(const char *fsname, unsigned int flags)
{
	return (int)syscall(SYS_fsopen, fsname, flags);
}
static inline int sys_fsconfig(int fd, unsigned int cmd, const char *key, const void *value, int aux)
{
	return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}
static inline int sys_fsmount(int fd, unsigned int flags, unsigned int attr_flags)
{
	return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}
static inline int sys_umount2(const char *target, int flags)
{
	return (int)syscall(SYS_umount2, target, flags);
}

/* The one failure this run reports (the first one wins; cleanup never overwrites it). */
struct helper_failure {
	bool set;
	bool usage;
	int err;
	char syscall[32];
	char message[1024];
};
extern struct helper_failure failure;

/* Records "<what>: <strerror(err)>" as the failure of syscall sc. Returns -1. */
__attribute__((format(printf, 3, 4))) int fail(int err, const char *sc, const char *what_fmt, ...);
/* Records a usage error (code EUSAGE). Returns -1. */
__attribute__((format(printf, 1, 2))) int usage_error(const char *fmt, ...);
/* A failure (or success: err 0) sent back by a child process. */
struct msg {
	int32_t err; /* 0: ok */
	char syscall[32];
	char message[1000];
};
/* Adopts the failure the child reported as this run's failure. Returns -1. */
int child_failed(const struct msg *m);
/* Prints the run's one JSON line; returns the exit status (0, 1 failure, 2 usage). */
int report(void);
/* The entry point: serve and perform run the other commands through it, in forks. */
int main(int argc, char **argv);

#endif
