/* chmod-as: see chmod-as.h. */
#include "helper.h"
#include "as-common.h"
#include "chmod-as.h"
#include <sys/vfs.h>

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif
#define CA_AT_FDCWD (-100)
#define CA_SETID (S_ISUID | S_ISGID)

struct ca_opts {
	struct as_common c; /* --pid, --notif-fd/--notif-id, --protect-id, --protect-dev (in c.dev) */
	const char *syscall; /* for messages: chmod, fchmod, fchmodat, fchmodat2 */
	const char *path;
	bool have_fd, have_dirfd;
	int fd, dirfd;
	unsigned long mode, flags;
	bool have_mode;
};

/* What ca_prepare takes from P before the notification is re-checked, for the child. */
struct ca_run {
	const struct ca_opts *o;
	long nspid, nstgid;
	int pidfd, objfd, dirfd; /* objfd: P's --fd; dirfd: P's --dirfd (-1: none, or not used) */
};

/* P's pid and tgid in its own (innermost) pid namespace: the last NSpid: / NStgid: numbers. */
static int ca_ns_ids(int procfd, long *nspid, long *nstgid)
{
	static char status[16384];
	unsigned long v[32];
	if (as_read_file(procfd, "status", status, sizeof(status)) < 0)
		return -1;
	int n = as_status_numbers(status, "NSpid:", v, 32, 10);
	if (n < 1)
		return fail(EPROTO, "read", "no NSpid: in /proc/<pid>/status");
	*nspid = (long)v[n - 1];
	n = as_status_numbers(status, "NStgid:", v, 32, 10);
	if (n < 1)
		return fail(EPROTO, "read", "no NStgid: in /proc/<pid>/status");
	*nstgid = (long)v[n - 1];
	return 0;
}

/* P's path as P would resolve it: /proc/self[/...] and /proc/thread-self[/...] name P's entries. */
static const char *ca_rewrite(const char *path, long nspid, long nstgid, char *buf, size_t size)
{
	static const char self[] = "/proc/self", tself[] = "/proc/thread-self";
	const char *rest = NULL;
	int w = -1;
	if (strncmp(path, tself, sizeof(tself) - 1) == 0 && (path[sizeof(tself) - 1] == '/' || !path[sizeof(tself) - 1])) {
		rest = path + sizeof(tself) - 1;
		w = snprintf(buf, size, "/proc/%ld/task/%ld%s", nstgid, nspid, rest);
	} else if (strncmp(path, self, sizeof(self) - 1) == 0 && (path[sizeof(self) - 1] == '/' || !path[sizeof(self) - 1])) {
		rest = path + sizeof(self) - 1;
		w = snprintf(buf, size, "/proc/%ld%s", nstgid, rest);
	}
	if (!rest)
		return path;
	return w > 0 && (size_t)w < size ? buf : NULL;
}

/* chmod of exactly the object behind tfd. */
static void ca_chmod_fd(const struct ca_opts *o, int tfd, const char *what)
{
	if (syscall(SYS_fchmodat2, tfd, "", (mode_t)o->mode, AT_EMPTY_PATH) == 0)
		return;
	if (errno != ENOSYS) {
		fail(errno, "chmod", "%s %s", o->syscall, what);
		return;
	}
	/* Before Linux 6.6: the magic link, checked to name the object judged (see step 5 above). */
	char link[64];
	struct statfs fs;
	struct statx a, b;
	snprintf(link, sizeof link, "/proc/self/fd/%d", tfd);
	int again = open(link, O_PATH | O_CLOEXEC);
	if (again < 0) {
		fail(errno, "open", "%s: %s needs /proc (no fchmodat2 on this kernel)", what, link);
		return;
	}
	bool same = statfs("/proc/self/fd", &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC &&
		    statx(tfd, "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &a) == 0 &&
		    statx(again, "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &b) == 0 && a.stx_ino == b.stx_ino &&
		    a.stx_dev_major == b.stx_dev_major && a.stx_dev_minor == b.stx_dev_minor && a.stx_mnt_id == b.stx_mnt_id;
	close(again);
	if (!same) {
		fail(EPERM, "open", "%s: %s does not name the object checked", what, link);
		return;
	}
	if (chmod(link, (mode_t)o->mode) < 0)
		fail(errno, "chmod", "%s %s", o->syscall, what);
}

/* as_run's prepare hook: P's own pid numbers, and P's fds. */
static int ca_prepare(int procfd, void *arg)
{
	struct ca_run *r = arg;
	const struct ca_opts *o = r->o;
	if (ca_ns_ids(procfd, &r->nspid, &r->nstgid) < 0)
		return -1;
	/* P's fds, taken while we are host root in the host namespaces (PTRACE_MODE_ATTACH over P). The
	 * dirfd only when the kernel would use it: an absolute path ignores it, even an invalid one. */
	if (o->have_fd || (o->have_dirfd && o->dirfd != CA_AT_FDCWD && o->path[0] != '/')) {
		int want = o->have_fd ? o->fd : o->dirfd;
		if (want < 0) { /* what the kernel answers P for a negative fd */
			fail(EBADF, "chmod", "%s: fd %d", o->syscall, want);
			return -1;
		}
		r->pidfd = (int)syscall(SYS_pidfd_open, (pid_t)o->c.pid, PIDFD_THREAD);
		if (r->pidfd < 0 && errno == EINVAL) /* before Linux 6.9: no PIDFD_THREAD (P must be a leader) */
			r->pidfd = (int)syscall(SYS_pidfd_open, (pid_t)o->c.pid, 0);
		if (r->pidfd < 0) {
			fail(errno, "pidfd_open", "pidfd_open %ld", o->c.pid);
			return -1;
		}
		int got = (int)syscall(SYS_pidfd_getfd, r->pidfd, want, 0);
		if (got < 0) {
			/* EBADF: P has no such fd, which is what P itself would be told. */
			fail(errno, errno == EBADF ? "chmod" : "pidfd_getfd", "%s: fd %d of process %ld", o->syscall, want, o->c.pid);
			return -1;
		}
		if (o->have_fd)
			r->objfd = got;
		else
			r->dirfd = got;
	}
	return 0;
}

/* In the forked child, once it is P (as_run): open the object once, judge it, chmod it. */
static void ca_child(void *arg)
{
	const struct ca_run *r = arg;
	const struct ca_opts *o = r->o;
	char what[PATH_MAX + 64];
	int tfd;
	if (o->have_fd) {
		snprintf(what, sizeof what, "fd %d", o->fd);
		int fl = fcntl(r->objfd, F_GETFL);
		if (fl < 0 || (fl & O_PATH)) { /* fchmod refuses O_PATH fds */
			fail(EBADF, "chmod", "%s %s", o->syscall, what);
			return;
		}
		tfd = r->objfd;
	} else {
		snprintf(what, sizeof what, "%s", o->path);
		if (o->flags & ~(unsigned long)(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
			fail(EINVAL, "chmod", "%s flags 0x%lx", o->syscall, o->flags);
			return;
		}
		int dir = r->dirfd >= 0 ? r->dirfd : AT_FDCWD;
		if (!o->path[0]) {
			if (!(o->flags & AT_EMPTY_PATH)) {
				fail(ENOENT, "chmod", "%s \"\"", o->syscall);
				return;
			}
			tfd = r->dirfd >= 0 ? r->dirfd : open(".", O_PATH | O_CLOEXEC);
		} else {
			char buf[PATH_MAX + 64];
			const char *p = ca_rewrite(o->path, r->nspid, r->nstgid, buf, sizeof buf);
			if (!p) {
				fail(ENAMETOOLONG, "chmod", "%s", o->path);
				return;
			}
			tfd = openat(dir, p, O_PATH | O_CLOEXEC | ((o->flags & AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0));
		}
		if (tfd < 0) {
			fail(errno, "chmod", "%s %s", o->syscall, o->path);
			return;
		}
	}
	struct statx sx;
	if (statx(tfd, "", AT_EMPTY_PATH, STATX_MNT_ID | STATX_TYPE, &sx) < 0) {
		fail(errno, "statx", "statx %s", what);
		return;
	}
	/* On a volume: one of its mounts (--protect-id), or any mount of a volume's filesystem (--protect-dev). */
	const bool on_volume = as_protected_mount(&o->c, sx.stx_mnt_id) || as_listed_dev(&o->c, sx.stx_dev_major, sx.stx_dev_minor);
	if ((o->mode & CA_SETID) && on_volume) {
		fail(EPERM, "chmod", "%s %s to 0%lo: on a volume shared with the host, setuid/setgid bits are not allowed",
		     o->syscall, what, o->mode);
		return;
	}
	ca_chmod_fd(o, tfd, what);
}

static int cmd_chmod_as(const struct ca_opts *o)
{
	struct ca_run r = { .o = o, .pidfd = -1, .objfd = -1, .dirfd = -1 };
	int rc = as_run(&o->c, ca_prepare, ca_child, &r);
	int fds[] = { r.pidfd, r.objfd, r.dirfd };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return rc;
}

/* chmod-as's own options (the common ones: as_common_opt). */
enum { C_DIRFD = AS_OPT_OWN, C_FD, C_PATH, C_MODE, C_FLAGS, C_SYSCALL };

static int chmod_as_opt(int opt, const char *arg, void *ctx)
{
	struct ca_opts *o = ctx;
	int r = 0;
	switch (opt) {
	case C_DIRFD: o->have_dirfd = true; return as_parse_number("dirfd", arg, NULL, &o->dirfd);
	case C_FD: o->have_fd = true; return as_parse_number("fd", arg, NULL, &o->fd);
	case C_PATH: o->path = arg; return 0;
	case C_MODE:
		r = as_parse_number("mode", arg, &o->mode, NULL);
		if (r == 0 && o->mode > 07777)
			r = usage_error("--mode: %s is not a mode (0..07777)", arg);
		o->have_mode = true;
		return r;
	case C_FLAGS:
		r = as_parse_number("flags", arg, &o->flags, NULL);
		if (r == 0 && o->flags > UINT_MAX)
			r = usage_error("--flags: fchmodat2 flags are an unsigned int");
		return r;
	case C_SYSCALL: o->syscall = arg; return 0;
	default: return 1;
	}
}

static int chmod_as_check(const struct ca_opts *o)
{
	if (o->c.pid < 0 || !o->have_mode)
		return usage_error("chmod-as needs --pid and --mode");
	if (o->have_fd == (o->path != NULL))
		return usage_error("chmod-as needs exactly one of --fd and --path");
	if (o->have_fd && o->have_dirfd)
		return usage_error("--dirfd goes with --path");
	if (o->path && strlen(o->path) >= PATH_MAX)
		return usage_error("--path is too long");
	return as_check_common(&o->c);
}

/* Entry point for argv[1] == "chmod-as". Returns the process exit status. */
int main_chmod_as(int argc, char **argv)
{
	static const struct option longopts[] = {
		AS_COMMON_LONGOPTS("protect-dev"),
		{ "dirfd", required_argument, NULL, C_DIRFD },
		{ "fd", required_argument, NULL, C_FD },
		{ "path", required_argument, NULL, C_PATH },
		{ "mode", required_argument, NULL, C_MODE },
		{ "flags", required_argument, NULL, C_FLAGS },
		{ "syscall", required_argument, NULL, C_SYSCALL },
		{ NULL, 0, NULL, 0 },
	};
	struct ca_opts o = { .c = AS_COMMON_INIT, .fd = -1, .dirfd = CA_AT_FDCWD };

	if (as_getopt(argc, argv, longopts, "protect-dev", &o.c, chmod_as_opt, &o) < 0)
		return report();
	if (!o.syscall || !*o.syscall)
		o.syscall = o.have_fd ? "fchmod" : o.have_dirfd ? "fchmodat" : "chmod";
	if (chmod_as_check(&o) == 0)
		cmd_chmod_as(&o);
	return report();
}
