/*
 * What eci-helper's "-as" commands (mount-as.h: mount-as/umount-as, chmod-as.h: chmod-as) share: one
 * syscall performed *for* a container process P, with P's credentials in P's namespaces, after the
 * syscall vetter has checked it. Part of eci-helper (as-common.c); not a program of its own.
 *
 * Common options (parsed by as_getopt): --pid P, --notif-fd FD --notif-id ID (the seccomp notify fd,
 * inherited, and the notification's id), and two lists whose meaning belongs to the command:
 * --protect-id ID... (mount ids) and MAJ:MIN devices under a name of its own (mount-as --ro-dev,
 * chmod-as --protect-dev).
 *
 * as_run() does the steps, all in this single-threaded process (setns into a user namespace is refused
 * to threaded ones):
 *   1. open /proc/P (O_PATH), a pidfd of P and, relative to /proc/P, root, cwd, status, uid_map,
 *      gid_map (the maps not where a performer knows P's user namespace: as_known_userns); then the command's prepare hook, if any (still host root in the host namespaces:
 *      chmod-as takes P's fds there). With --notif-fd/--notif-id, check SECCOMP_IOCTL_NOTIF_ID_VALID
 *      now: it proves these fds (and what prepare took) belong to the process that made the call, not
 *      to a recycled pid. Fails with syscall "ioctl" / ENOENT otherwise.
 *   2. replace the helper's own supplementary groups (host root's) with P's (host ids: inside they are
 *      then P's own, even where P's user namespace denies setgroups), then enter P's user, mount, cgroup,
 *      ipc, uts, net (and pid) namespaces in one atomic setns on the pidfd. Where that is refused (P
 *      shares our user namespace, an old kernel): open /proc/P/ns/{user,mnt,...}, re-check ID_VALID,
 *      and setns into user, then mnt, then the others, each only when it differs from ours.
 *   3. fork (the child is then in P's pid namespace, which matters for proc; it dies with the helper;
 *      with in_place, when the call does not depend on the pid namespace, no fork: this process does 3-5):
 *      fchdir(root) + chroot("."), fchdir(cwd); setresgid/setresuid + setfsgid/
 *      setfsuid to P's real/effective/saved/fs ids, translated into P's user namespace through its
 *      uid_map/gid_map (so host uid 100000 becomes 0 in a 0->100000 container).
 *   4. capabilities: after setns the process holds every capability in P's user namespace (and none
 *      outside it). capset() then sets exactly P's permitted, effective and inheritable sets (CapPrm,
 *      CapEff, CapInh of /proc/P/status), so the call runs with P's credentials in P's namespaces:
 *      the kernel checks it as it would have checked P (for a mount, CAP_SYS_ADMIN over the mount
 *      namespace's owner). The bounding and ambient sets are left alone (nothing is exec'd).
 *   5. the command's child function makes the call; the child sends its failure (errno, syscall,
 *      message) back over a pipe, and the helper reports it as its own.
 */
#ifndef ECI_AS_COMMON_H
#define ECI_AS_COMMON_H

#include "helper.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/fsuid.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <linux/seccomp.h>

/* pidfd syscalls (chmod-as, serve): older libc headers may lack the numbers. */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

struct as_dev {
	unsigned int major, minor;
};

/* The options every -as command takes. */
struct as_common {
	long pid;
	int notif_fd;
	uint64_t notif_id;
	bool have_notif_fd, have_notif_id;
	uint64_t protect[64]; /* --protect-id: mount ids (mount-as: eci-managed mounts; chmod-as: volumes) */
	int nprotect;
	struct as_dev dev[64]; /* the command's device list (st_dev major:minor) */
	int ndev;
	/*
	 * Set by the command: its call does not depend on the caller's pid namespace (which only a child
	 * forked after setns enters). as_run then becomes P and makes the call in this very process: no
	 * fork, no pipe, no wait, which is most of a vetted mount's cost. This process is not in P's pid
	 * namespace, so the container cannot see, signal or trace it; it exits right after the call.
	 */
	bool in_place;
};
#define AS_COMMON_INIT { .pid = -1, .notif_fd = -1 }

/* getopt_long values: the common options', then the command's own from AS_OPT_OWN up. */
enum { AS_OPT_PID = 1, AS_OPT_NOTIF_FD, AS_OPT_NOTIF_ID, AS_OPT_PROTECT_ID, AS_OPT_DEV, AS_OPT_OWN };
#define AS_COMMON_LONGOPTS(dev_option)                                                                        \
	{ "pid", required_argument, NULL, AS_OPT_PID }, { "notif-fd", required_argument, NULL, AS_OPT_NOTIF_FD }, \
		{ "notif-id", required_argument, NULL, AS_OPT_NOTIF_ID },                                         \
		{ "protect-id", required_argument, NULL, AS_OPT_PROTECT_ID },                                     \
		{ dev_option, required_argument, NULL, AS_OPT_DEV }

/* Set by a performer's spare that answers the caller itself (see as-common.c). */
extern bool as_keep_notif, as_notif_closed;
/*
 * Set by such a spare: called by a command once its outcome is final (the vetted call made, or refused),
 * so that the caller is answered before the command's clean-up (closing its fds, which for an unmount
 * ends the detached mount) and its JSON report: ~13 us less on each vetted call's path (issue 17).
 */
extern void (*as_outcome_final)(void);
/*
 * A user namespace's id maps (uid_map, gid_map), parsed, as a performer keeps them (perform.c): up to
 * AS_MAP_MAX extents each (a container's has one). The maps of a user namespace never change once
 * written, so a namespace pinned open keeps the maps it had.
 */
#define AS_MAP_MAX 5
struct as_idmap {
	uint32_t n;
	uint32_t first[AS_MAP_MAX], lower[AS_MAP_MAX], count[AS_MAP_MAX];
};
struct as_userns {
	uint64_t dev, ino; /* its ns/user file's */
	struct as_idmap uid, gid;
};
/* Set by a performer: user namespaces it holds open and whose maps it knows (as_run reads no map for P in one). */
extern const struct as_userns *as_known_userns;
extern int as_nknown_userns;
/* Filled by as_run when it read P's maps and NOTIF_ID_VALID then proved them P's: for the performer to learn. */
extern struct as_userns as_learned_userns;
extern bool as_learned;
int as_parse_number(const char *name, const char *s, unsigned long *u, int *i);
int as_common_opt(struct as_common *c, int opt, const char *arg, const char *dev_option);
int as_getopt(int argc, char **argv, const struct option *longopts, const char *dev_option, struct as_common *c, int (*own)(int opt, const char *arg, void *ctx), void *ctx);
int as_check_common(const struct as_common *c);
bool as_protected_mount(const struct as_common *c, uint64_t mnt_id);
bool as_listed_dev(const struct as_common *c, unsigned int major, unsigned int minor);
int as_read_file(int dirfd, const char *name, char *buf, size_t size);
int as_status_numbers(const char *status, const char *key, unsigned long *out, int max, int base);
int as_run(const struct as_common *o, int (*prepare)(int procfd, void *arg), void (*child)(void *arg), void *arg);

#endif
