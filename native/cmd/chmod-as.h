/*
 * eci-helper chmod-as: one chmod(2)-family call that sets S_ISUID or S_ISGID, performed *for* a
 * container process after the syscall vetter sent it here. Refused (EPERM) when the object is on one
 * of the container's volumes: those are host directories, and a file there is owned by uid 0 on the
 * host disk (the volume is idmapped), so a setuid file planted there would run as root for any host
 * user. Inside the container's own rootfs the call is made (package installs need it). Included by
 * eci-helper.c after mount-as.h (it uses its as_* helpers); not a program of its own.
 *
 *   eci-helper chmod-as --pid P [--dirfd N] [--fd N] [--path S] --mode M [--flags F] [--syscall NAME]
 *                       [--protect-id ID]... [--protect-dev MAJ:MIN]... [--notif-fd FD --notif-id ID]
 *
 * The object is --fd (fchmod: P's fd N) or --path (chmod/fchmodat/fchmodat2: S relative to P's fd
 * --dirfd, or to P's cwd without it or with -100, AT_FDCWD). --flags are fchmodat2's: AT_SYMLINK_NOFOLLOW
 * (0x100) and AT_EMPTY_PATH (0x1000). Output: eci-helper's JSON contract; syscall "chmod" when the call
 * failed or was refused (that errno is what P should see), anything else for a failure to get there.
 *
 * Steps (single-threaded, like mount-as):
 *   1. open /proc/P, its ns/ files, root, cwd, status, uid_map, gid_map (as mount-as), and, still host root
 *      in the host namespaces, take P's --fd / --dirfd with pidfd_getfd (pidfd_open with PIDFD_THREAD:
 *      P is the calling thread). Then NOTIF_ID_VALID: P is still the caller, so the fds are its fds.
 *   2. setgroups(0), setns into P's user, mount and other namespaces, fork into its pid namespace.
 *   3. the child takes P's root, cwd, ids and capabilities (as mount-as), then opens the object once:
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
#include <sys/vfs.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
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
	long pid;
	const char *syscall; /* for messages: chmod, fchmod, fchmodat, fchmodat2 */
	const char *path;
	bool have_fd, have_dirfd;
	int fd, dirfd;
	unsigned long mode, flags;
	bool have_mode;
	int notif_fd;
	uint64_t notif_id;
	bool have_notif_fd, have_notif_id;
	uint64_t protect[64];
	int nprotect;
	struct { unsigned int major, minor; } dev[64];
	int ndev;
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

static bool ca_protected(const struct ca_opts *o, const struct statx *sx)
{
	for (int i = 0; i < o->nprotect; i++)
		if (o->protect[i] == sx->stx_mnt_id)
			return true;
	for (int i = 0; i < o->ndev; i++)
		if (o->dev[i].major == sx->stx_dev_major && o->dev[i].minor == sx->stx_dev_minor)
			return true;
	return false;
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

/* In the forked child: become P, open the object once, judge it, chmod it. objfd/dirfd: from P. */
static void ca_child(const struct ca_opts *o, const struct as_creds *c, int rootfd, int cwdfd, int objfd, int dirfd,
		     long nspid, long nstgid)
{
	if (fchdir(rootfd) < 0 || chroot(".") < 0) {
		fail(errno, "chroot", "chroot to the root of process %ld", o->pid);
		return;
	}
	if (fchdir(cwdfd) < 0) {
		fail(errno, "fchdir", "fchdir to the cwd of process %ld", o->pid);
		return;
	}
	if (setgroups((size_t)c->ngroups, c->groups) < 0 && c->ngroups > 0) {
		fail(errno, "setgroups", "setgroups (%d groups of process %ld)", c->ngroups, o->pid);
		return;
	}
	if (setresgid((gid_t)c->gid[0], (gid_t)c->gid[1], (gid_t)c->gid[2]) < 0) {
		fail(errno, "setresgid", "setresgid %lu %lu %lu", c->gid[0], c->gid[1], c->gid[2]);
		return;
	}
	if (setresuid((uid_t)c->uid[0], (uid_t)c->uid[1], (uid_t)c->uid[2]) < 0) {
		fail(errno, "setresuid", "setresuid %lu %lu %lu", c->uid[0], c->uid[1], c->uid[2]);
		return;
	}
	setfsgid((gid_t)c->gid[3]);
	setfsuid((uid_t)c->uid[3]);
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2] = {
		{ .effective = (uint32_t)c->cap_eff, .permitted = (uint32_t)c->cap_prm, .inheritable = (uint32_t)c->cap_inh },
		{ .effective = (uint32_t)(c->cap_eff >> 32), .permitted = (uint32_t)(c->cap_prm >> 32),
		  .inheritable = (uint32_t)(c->cap_inh >> 32) },
	};
	if (syscall(SYS_capset, &hdr, data) < 0) {
		fail(errno, "capset", "capset to the capabilities of process %ld", o->pid);
		return;
	}

	char what[PATH_MAX + 64];
	int tfd;
	if (o->have_fd) {
		snprintf(what, sizeof what, "fd %d", o->fd);
		int fl = fcntl(objfd, F_GETFL);
		if (fl < 0 || (fl & O_PATH)) { /* fchmod refuses O_PATH fds */
			fail(EBADF, "chmod", "%s %s", o->syscall, what);
			return;
		}
		tfd = objfd;
	} else {
		snprintf(what, sizeof what, "%s", o->path);
		if (o->flags & ~(unsigned long)(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
			fail(EINVAL, "chmod", "%s flags 0x%lx", o->syscall, o->flags);
			return;
		}
		int dir = dirfd >= 0 ? dirfd : AT_FDCWD;
		if (!o->path[0]) {
			if (!(o->flags & AT_EMPTY_PATH)) {
				fail(ENOENT, "chmod", "%s \"\"", o->syscall);
				return;
			}
			tfd = dirfd >= 0 ? dirfd : open(".", O_PATH | O_CLOEXEC);
		} else {
			char buf[PATH_MAX + 64];
			const char *p = ca_rewrite(o->path, nspid, nstgid, buf, sizeof buf);
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
	if ((o->mode & CA_SETID) && ca_protected(o, &sx)) {
		fail(EPERM, "chmod", "%s %s to 0%lo: on a volume shared with the host, setuid/setgid bits are not allowed",
		     o->syscall, what, o->mode);
		return;
	}
	ca_chmod_fd(o, tfd, what);
}

static int cmd_chmod_as(const struct ca_opts *o)
{
	int procfd = -1, rootfd = -1, cwdfd = -1, pidfd = -1, objfd = -1, dirfd = -1, nsfd[AS_NNS];
	int rc = -1, pipefd[2] = { -1, -1 };
	long nspid = 0, nstgid = 0;
	struct as_creds creds;
	char path[64];

	for (int i = 0; i < AS_NNS; i++)
		nsfd[i] = -1;
	snprintf(path, sizeof(path), "/proc/%ld", o->pid);
	procfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0) {
		fail(errno == ENOENT ? ESRCH : errno, "open", "open %s", path);
		goto out;
	}
	for (int i = 0; i < AS_NNS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "ns/%s", as_namespaces[i].name);
		nsfd[i] = openat(procfd, name, O_RDONLY | O_CLOEXEC);
		if (nsfd[i] < 0) {
			if (errno == ENOENT && as_namespaces[i].type != CLONE_NEWUSER && as_namespaces[i].type != CLONE_NEWNS)
				continue;
			fail(errno, "open", "open %s/%s", path, name);
			goto out;
		}
	}
	rootfd = openat(procfd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	cwdfd = rootfd < 0 ? -1 : openat(procfd, "cwd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0 || cwdfd < 0) {
		fail(errno, "open", "open %s/%s", path, rootfd < 0 ? "root" : "cwd");
		goto out;
	}
	if (as_load_creds(procfd, &creds) < 0 || ca_ns_ids(procfd, &nspid, &nstgid) < 0)
		goto out;

	/* P's fds, taken while we are host root in the host namespaces (PTRACE_MODE_ATTACH over P). The
	 * dirfd only when the kernel would use it: an absolute path ignores it, even an invalid one. */
	if (o->have_fd || (o->have_dirfd && o->dirfd != CA_AT_FDCWD && o->path[0] != '/')) {
		int want = o->have_fd ? o->fd : o->dirfd;
		if (want < 0) { /* what the kernel answers P for a negative fd */
			fail(EBADF, "chmod", "%s: fd %d", o->syscall, want);
			goto out;
		}
		pidfd = (int)syscall(SYS_pidfd_open, (pid_t)o->pid, PIDFD_THREAD);
		if (pidfd < 0 && errno == EINVAL) /* before Linux 6.9: no PIDFD_THREAD (P must be a leader) */
			pidfd = (int)syscall(SYS_pidfd_open, (pid_t)o->pid, 0);
		if (pidfd < 0) {
			fail(errno, "pidfd_open", "pidfd_open %ld", o->pid);
			goto out;
		}
		int got = (int)syscall(SYS_pidfd_getfd, pidfd, want, 0);
		if (got < 0) {
			/* EBADF: P has no such fd, which is what P itself would be told. */
			fail(errno, errno == EBADF ? "chmod" : "pidfd_getfd", "%s: fd %d of process %ld", o->syscall, want, o->pid);
			goto out;
		}
		if (o->have_fd)
			objfd = got;
		else
			dirfd = got;
	}
	/* Everything above (the /proc fds, the pidfd and P's fds) now provably belongs to the caller. */
	if (o->have_notif_fd) {
		uint64_t id = o->notif_id;
		if (ioctl(o->notif_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) {
			fail(errno, "ioctl", "seccomp notification %llu is no longer valid", (unsigned long long)o->notif_id);
			goto out;
		}
		close(o->notif_fd);
	}

	if (setgroups(0, NULL) < 0) {
		fail(errno, "setgroups", "setgroups(0)");
		goto out;
	}
	bool same[AS_NNS];
	for (int i = 0; i < AS_NNS; i++) {
		int r = nsfd[i] < 0 ? 1 : as_same_ns(nsfd[i], as_namespaces[i].name);
		if (r < 0)
			goto out;
		same[i] = r == 1;
	}
	for (int i = 0; i < AS_NNS; i++) {
		if (!same[i] && setns(nsfd[i], as_namespaces[i].type) < 0) {
			fail(errno, "setns", "setns into the %s namespace of process %ld", as_namespaces[i].name, o->pid);
			goto out;
		}
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		fail(errno, "pipe2", "pipe2");
		goto out;
	}
	fflush(NULL);
	pid_t child = fork();
	if (child < 0) {
		fail(errno, "fork", "fork into the pid namespace of process %ld", o->pid);
		goto out;
	}
	if (child == 0) {
		struct msg m;
		close(pipefd[0]);
		struct pollfd pp = { .fd = pipefd[1], .events = POLLOUT };
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || poll(&pp, 1, 0) != 1 || (pp.revents & (POLLERR | POLLHUP)))
			_exit(1);
		ca_child(o, &creds, rootfd, cwdfd, objfd, dirfd, nspid, nstgid);
		memset(&m, 0, sizeof(m));
		if (failure.set) {
			m.err = failure.err ? failure.err : EIO;
			memcpy(m.syscall, failure.syscall, sizeof(m.syscall));
			memcpy(m.message, failure.message, sizeof(m.message) - 1);
		}
		ssize_t w = write(pipefd[1], &m, sizeof(m));
		_exit(w == (ssize_t)sizeof(m) ? 0 : 1);
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	struct msg m;
	ssize_t n;
	do
		n = read(pipefd[0], &m, sizeof(m));
	while (n < 0 && errno == EINTR);
	while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(m)) {
		fail(ECHILD, "fork", "the child in the namespaces of process %ld died without a result", o->pid);
		goto out;
	}
	m.syscall[sizeof(m.syscall) - 1] = '\0';
	m.message[sizeof(m.message) - 1] = '\0';
	if (m.err) {
		child_failed(&m);
		goto out;
	}
	rc = 0;
out:
	for (int i = 0; i < AS_NNS; i++)
		if (nsfd[i] >= 0)
			close(nsfd[i]);
	int fds[] = { procfd, rootfd, cwdfd, pidfd, objfd, dirfd, pipefd[0], pipefd[1] };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return rc;
}

static int parse_int_any(const char *name, const char *s, int *out)
{
	char *end;
	if (!s || !*s)
		return usage_error("--%s needs a number", name);
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < INT_MIN || v > INT_MAX)
		return usage_error("--%s: %s is not an int", name, s);
	*out = (int)v;
	return 0;
}

/* Entry point for argv[1] == "chmod-as". Returns the process exit status. */
static int main_chmod_as(int argc, char **argv)
{
	enum { C_PID = 1, C_DIRFD, C_FD, C_PATH, C_MODE, C_FLAGS, C_SYSCALL, C_NOTIF_FD, C_NOTIF_ID, C_PROTECT, C_DEV };
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, C_PID },
		{ "dirfd", required_argument, NULL, C_DIRFD },
		{ "fd", required_argument, NULL, C_FD },
		{ "path", required_argument, NULL, C_PATH },
		{ "mode", required_argument, NULL, C_MODE },
		{ "flags", required_argument, NULL, C_FLAGS },
		{ "syscall", required_argument, NULL, C_SYSCALL },
		{ "notif-fd", required_argument, NULL, C_NOTIF_FD },
		{ "notif-id", required_argument, NULL, C_NOTIF_ID },
		{ "protect-id", required_argument, NULL, C_PROTECT },
		{ "protect-dev", required_argument, NULL, C_DEV },
		{ NULL, 0, NULL, 0 },
	};
	struct ca_opts o = { .pid = -1, .notif_fd = -1, .fd = -1, .dirfd = CA_AT_FDCWD };
	unsigned long v;
	int opt;

	opterr = 0;
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int r = 0;
		switch (opt) {
		case C_PID:
			r = parse_ulong_any("pid", optarg, &v);
			if (r == 0 && (v == 0 || v > INT_MAX))
				r = usage_error("--pid must be a process id");
			o.pid = (long)v;
			break;
		case C_DIRFD: r = parse_int_any("dirfd", optarg, &o.dirfd); o.have_dirfd = true; break;
		case C_FD: r = parse_int_any("fd", optarg, &o.fd); o.have_fd = true; break;
		case C_PATH: o.path = optarg; break;
		case C_MODE:
			r = parse_ulong_any("mode", optarg, &o.mode);
			if (r == 0 && o.mode > 07777)
				r = usage_error("--mode: %s is not a mode (0..07777)", optarg);
			o.have_mode = true;
			break;
		case C_FLAGS:
			r = parse_ulong_any("flags", optarg, &o.flags);
			if (r == 0 && o.flags > UINT_MAX)
				r = usage_error("--flags: fchmodat2 flags are an unsigned int");
			break;
		case C_SYSCALL: o.syscall = optarg; break;
		case C_NOTIF_FD:
			r = parse_ulong_any("notif-fd", optarg, &v);
			if (r == 0 && v > INT_MAX)
				r = usage_error("--notif-fd is not an fd");
			o.notif_fd = (int)v;
			o.have_notif_fd = true;
			break;
		case C_NOTIF_ID: {
			char *end;
			errno = 0;
			unsigned long long id = strtoull(optarg, &end, 0);
			if (errno || *end || !*optarg || *optarg == '-')
				r = usage_error("--notif-id: %s is not a 64-bit id", optarg);
			o.notif_id = id;
			o.have_notif_id = true;
			break;
		}
		case C_PROTECT:
			r = parse_ulong_any("protect-id", optarg, &v);
			if (r == 0 && o.nprotect >= (int)(sizeof o.protect / sizeof o.protect[0]))
				r = usage_error("too many --protect-id");
			if (r == 0)
				o.protect[o.nprotect++] = v;
			break;
		case C_DEV: {
			unsigned int ma, mi;
			char tail;
			if (sscanf(optarg, "%u:%u%c", &ma, &mi, &tail) != 2)
				r = usage_error("--protect-dev: %s is not major:minor", optarg);
			else if (o.ndev >= (int)(sizeof o.dev / sizeof o.dev[0]))
				r = usage_error("too many --protect-dev");
			else {
				o.dev[o.ndev].major = ma;
				o.dev[o.ndev].minor = mi;
				o.ndev++;
			}
			break;
		}
		default: r = usage_error("unknown or incomplete option %s", argv[optind - 1]); break;
		}
		if (r < 0)
			return report();
	}
	if (!o.syscall || !*o.syscall)
		o.syscall = o.have_fd ? "fchmod" : o.have_dirfd ? "fchmodat" : "chmod";
	if (optind < argc)
		usage_error("unexpected argument %s", argv[optind]);
	else if (o.pid < 0 || !o.have_mode)
		usage_error("chmod-as needs --pid and --mode");
	else if (o.have_fd == (o.path != NULL))
		usage_error("chmod-as needs exactly one of --fd and --path");
	else if (o.have_fd && o.have_dirfd)
		usage_error("--dirfd goes with --path");
	else if (o.path && strlen(o.path) >= PATH_MAX)
		usage_error("--path is too long");
	else if (o.have_notif_fd != o.have_notif_id)
		usage_error("--notif-fd and --notif-id go together");
	else
		cmd_chmod_as(&o);
	return report();
}
