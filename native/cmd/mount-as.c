/* mount-as: see mount-as.h. */
#include "helper.h"
#include "as-common.h"
#include "mount-as.h"
#include "caller-path.h"
#include "spare-timing.h"
#include <sys/statvfs.h>

struct as_opts {
	struct as_common c; /* --pid, --notif-fd/--notif-id, --protect-id, --ro-dev (in c.dev) */
	bool umount;
	const char *source, *target, *fstype, *data;
	unsigned long flags;
	struct caller_path tpin, spin; /* the target's and source's /proc/self links, pinned (caller-path.h) */
	int selffd;                    /* the host's /proc/<this helper>/fd (O_PATH), for unmounting a file mount */
};

/* A bind or move names its source as a path (anything else: a device, a name, or nothing). */
static bool mount_as_opens_source(const struct as_opts *o)
{
	return (o->flags & (MS_BIND | MS_MOVE)) && !(o->flags & MS_REMOUNT) && o->source;
}

/*
 * as_run's prepare hook, on the host with /proc/P pinned: /proc/self and /proc/thread-self in the
 * target and source mean the caller, not this helper (see caller-path.h).
 */
static int mount_as_prepare(int procfd, void *arg)
{
	struct as_opts *o = arg;
	if (caller_path_pin(&o->tpin, procfd, o->target) < 0)
		return -1;
	if (mount_as_opens_source(o) && caller_path_pin(&o->spin, procfd, o->source) < 0)
		return -1;
	/* Opened here, on the host: the container's /proc (where we act later) may be mounted over. */
	if (o->umount && (o->selffd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return fail(errno, "open", "open /proc/self/fd");
	return 0;
}

/* The propagation types of mount(2) flags (one of them, or 0). */
#define MS_PROPAGATION (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE)

/*
 * A bind remount (MS_BIND|MS_REMOUNT) of a file mount, on the judged mount itself: mount_setattr on
 * its fd sets exactly the given per-mount flags, as the classic call does (atime left as it is).
 * systemd does this for a unit's namespace (ProtectKernelLogs= makes /proc/kmsg read-only). The
 * kernel still refuses to clear a locked flag, and the read-only check above runs first.
 */
static int remount_file_mount(int tfd, unsigned long flags)
{
	static const struct { unsigned long ms; uint64_t attr; } map[] = {
		{ MS_RDONLY, MOUNT_ATTR_RDONLY }, { MS_NOSUID, MOUNT_ATTR_NOSUID },
		{ MS_NODEV, MOUNT_ATTR_NODEV }, { MS_NOEXEC, MOUNT_ATTR_NOEXEC },
	};
	struct mount_attr a = { 0 };
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		if (flags & map[i].ms)
			a.attr_set |= map[i].attr;
		else
			a.attr_clr |= map[i].attr;
	}
	return sys_mount_setattr(tfd, "", AT_EMPTY_PATH, &a);
}

/* In the forked child, once it is P (as_run): judge the target and make the call. */
static void mount_as_do(void *arg)
{
	const struct as_opts *o = arg;
	/*
	 * The checks are made on the object the call will act on, with no window to swap it: the
	 * target is opened once (as the caller would resolve it, symlinks and all) and judged through
	 * the fd; the call is then made on that same object (see below).
	 */
	int tfd = caller_path_open(&o->tpin, o->target);
	if (tfd < 0) {
		fail(errno, o->umount ? "umount2" : "mount", "%s", o->target);
		return;
	}
	struct statx sx;
	if (statx(tfd, "", AT_EMPTY_PATH, STATX_MNT_ID | STATX_BASIC_STATS, &sx) < 0) {
		fail(errno, "statx", "statx %s", o->target);
		return;
	}
	const bool is_protected = as_protected_mount(&o->c, sx.stx_mnt_id);
	/*
	 * Act on the judged objects themselves, never on a path the container could redirect (its own
	 * /proc included: a container may mount over it): directories through the cwd ("." after
	 * fchdir to the fd), binds, moves and propagation through the new mount API on fds, unmounts of
	 * a file mount through the fd's magic link in the host's /proc. Non-directory targets get only
	 * binds, bind remounts, propagation changes and unmounts; other remounts and moves onto a file
	 * mount are refused.
	 */
	const bool is_dir = S_ISDIR(sx.stx_mode);
	int sfd = -1;
	struct statx ss; /* the source's mount id (a move) and type (a bind) */
	if (mount_as_opens_source(o)) {
		sfd = caller_path_open(&o->spin, o->source);
		if (sfd < 0 || statx(sfd, "", AT_EMPTY_PATH, STATX_MNT_ID | STATX_TYPE, &ss) < 0) {
			fail(errno, "mount", "%s", o->source);
			return;
		}
	}
	if (o->umount) {
		/* As the kernel answers: a path that is no mount's root is EINVAL, whatever it lies in. */
		if ((sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && !(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
			fail(EINVAL, "umount2", "%s is not a mount point", o->target);
			return;
		}
		if (is_protected) {
			fail(EPERM, "umount2", "%s is an eci-managed mount", o->target);
			return;
		}
		if (!is_dir) {
			/*
			 * A file cannot be the cwd: unmount it through its judged fd's magic link in the host's
			 * /proc (opened in prepare; a link, so no UMOUNT_NOFOLLOW). Detached, as below: the fd
			 * itself keeps the mount busy.
			 */
			char name[16];
			snprintf(name, sizeof name, "%d", tfd);
			if (o->selffd < 0 || fchdir(o->selffd) < 0 ||
			    syscall(SYS_umount2, name, (int)(o->flags & ~(unsigned long)UMOUNT_NOFOLLOW) | MNT_DETACH) < 0)
				fail(errno, "umount2", "umount2 %s", o->target);
			return;
		}
		/*
		 * Linux has no unmount-by-fd, and the fd we judged holds a reference that makes a plain
		 * unmount EBUSY: detach it (lazy unmount). The cost is that a mount still in use is detached
		 * rather than refused with EBUSY; the gain is that no other mount can be swapped in.
		 */
		if (fchdir(tfd) < 0) {
			fail(errno, "umount2", "umount2 %s", o->target);
			return;
		}
		spare_mark("judged");
		if (syscall(SYS_umount2, ".", (int)o->flags | MNT_DETACH) < 0)
			fail(errno, "umount2", "umount2 %s", o->target);
		spare_mark("syscall");
		return;
	}
	if ((o->flags & MS_REMOUNT) && !(o->flags & MS_RDONLY)) {
		struct statvfs vfs;
		if (fstatvfs(tfd, &vfs) < 0) {
			fail(errno, "fstatvfs", "statvfs %s", o->target);
			return;
		}
		if ((vfs.f_flag & ST_RDONLY) && as_listed_dev(&o->c, sx.stx_dev_major, sx.stx_dev_minor)) {
			fail(EPERM, "mount", "%s is read-only and stays read-only", o->target);
			return;
		}
	}
	if (sfd >= 0 && (o->flags & MS_MOVE)) {
		if (as_protected_mount(&o->c, ss.stx_mnt_id)) {
			fail(EPERM, "mount", "%s is an eci-managed mount", o->source);
			return;
		}
		if (syscall(SYS_move_mount, sfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			fail(errno, "mount", "move %s to %s", o->source, o->target);
		return;
	}
	if (sfd >= 0 && (o->flags & MS_BIND)) {
		/* As the kernel answers a bind of a file onto a directory or back (runc's maskPath relies on
		 * it: ENOTDIR makes it mask a directory with a read-only tmpfs instead). */
		if (S_ISDIR(ss.stx_mode) != is_dir) {
			fail(ENOTDIR, "mount", "bind %s on %s", o->source, o->target);
			return;
		}
		int cfd = (int)syscall(SYS_open_tree, sfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH |
		                                          ((o->flags & MS_REC) ? AT_RECURSIVE : 0));
		if (cfd < 0) {
			fail(errno, "mount", "bind %s", o->source);
			return;
		}
		if (syscall(SYS_move_mount, cfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			fail(errno, "mount", "bind %s on %s", o->source, o->target);
		close(cfd);
		return;
	}
	if (!is_dir && (o->flags & MS_REMOUNT) && (o->flags & MS_BIND)) {
		if (remount_file_mount(tfd, o->flags) < 0)
			fail(errno, "mount", "remount %s", o->target);
		return;
	}
	/* A propagation change of a file mount (runc makes its file binds private): on the judged mount. */
	if (!is_dir && (o->flags & MS_PROPAGATION) && !(o->flags & (MS_BIND | MS_MOVE | MS_REMOUNT))) {
		struct mount_attr a = { .propagation = o->flags & MS_PROPAGATION };
		if (sys_mount_setattr(tfd, "", AT_EMPTY_PATH | ((o->flags & MS_REC) ? AT_RECURSIVE : 0), &a) < 0)
			fail(errno, "mount", "propagation of %s", o->target);
		return;
	}
	if (!is_dir) {
		fail(EPERM, "mount", "%s: only bind mounts onto files are supported by eci", o->target);
		return;
	}
	if (fchdir(tfd) < 0) {
		fail(errno, "mount", "%s", o->target);
		return;
	}
	spare_mark("judged");
	long rc = syscall(SYS_mount, o->source, ".", o->fstype, o->flags, o->data);
	spare_mark("syscall");
	/*
	 * A new sysfs where the container's own is read-only (the kernel locks it so: mount_too_revealing)
	 * is made read-only too, instead of failing: an inner --privileged container gets the /sys its
	 * outer container has, no more.
	 */
	if (rc < 0 && errno == EPERM && o->fstype && strcmp(o->fstype, "sysfs") == 0 && !(o->flags & (MS_RDONLY | MS_REMOUNT | MS_BIND)))
		rc = syscall(SYS_mount, o->source, ".", o->fstype, o->flags | MS_RDONLY, o->data);
	if (rc < 0)
		fail(errno, "mount", "mount %s on %s (type %s)", o->source ? o->source : "(null)", o->target,
		     o->fstype ? o->fstype : "(null)");
}

/* The call, then its answer at once where the spare answers (as_outcome_final): the rest is clean-up. */
static void mount_as_child(void *arg)
{
	mount_as_do(arg);
	if (as_outcome_final)
		as_outcome_final();
}

/* mount-as's own options (the common ones: as_common_opt). */
enum { M_SOURCE = AS_OPT_OWN, M_TARGET, M_FSTYPE, M_FLAGS, M_DATA };

static int mount_as_opt(int opt, const char *arg, void *ctx)
{
	struct as_opts *o = ctx;
	int r = 0;
	switch (opt) {
	case M_SOURCE: r = o->umount ? usage_error("umount-as takes no --source") : 0; o->source = arg; return r;
	case M_TARGET: o->target = arg; return 0;
	case M_FSTYPE: r = o->umount ? usage_error("umount-as takes no --fstype") : 0; o->fstype = arg; return r;
	case M_FLAGS: return as_parse_number("flags", arg, &o->flags, NULL);
	case M_DATA: r = o->umount ? usage_error("umount-as takes no --data") : 0; o->data = arg; return r;
	default: return 1;
	}
}

static int mount_as_check(const struct as_opts *o, const char *cmd)
{
	if (o->c.pid < 0 || !o->target || !*o->target)
		return usage_error("%s needs --pid and --target", cmd);
	if (strlen(o->target) >= PATH_MAX)
		return usage_error("--target is too long");
	if (as_check_common(&o->c) < 0)
		return -1;
	if (o->umount && o->flags > INT_MAX)
		return usage_error("--flags: umount2 flags are an int");
	return 0;
}

/* Entry point for argv[1] == "mount-as" / "umount-as". Returns the process exit status. */
int main_as(int argc, char **argv)
{
	static const struct option longopts[] = {
		AS_COMMON_LONGOPTS("ro-dev"),
		{ "source", required_argument, NULL, M_SOURCE },
		{ "target", required_argument, NULL, M_TARGET },
		{ "fstype", required_argument, NULL, M_FSTYPE },
		{ "flags", required_argument, NULL, M_FLAGS },
		{ "data", required_argument, NULL, M_DATA },
		{ NULL, 0, NULL, 0 },
	};
	struct as_opts o = { .c = AS_COMMON_INIT, .umount = strcmp(argv[1], "umount-as") == 0,
			     .tpin = CALLER_PATH_INIT, .spin = CALLER_PATH_INIT, .selffd = -1 };

	spare_mark("main_as");
	if (as_getopt(argc, argv, longopts, "ro-dev", &o.c, mount_as_opt, &o) == 0 && mount_as_check(&o, argv[1]) == 0) {
		spare_mark("parsed");
		/* Only a new proc mount takes the pid namespace of the mounting task; everything else runs in place. */
		o.c.in_place = o.umount || !o.fstype || strcmp(o.fstype, "proc") != 0 || (o.flags & (MS_REMOUNT | MS_BIND | MS_MOVE));
		as_run(&o.c, mount_as_prepare, mount_as_child, &o);
		caller_path_close(&o.tpin);
		caller_path_close(&o.spin);
		if (o.selffd >= 0)
			close(o.selffd);
	}
	return report();
}
