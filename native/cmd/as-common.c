/* as-common: see as-common.h. */
#include "helper.h"
#include "as-common.h"
#include "spare-timing.h"
/*
 * --name's number. With u: an unsigned long, decimal, 0x-hex or 0-octal (no sign). Otherwise into *i:
 * a decimal int, negative ones included (P's fd numbers: AT_FDCWD is -100).
 */
int as_parse_number(const char *name, const char *s, unsigned long *u, int *i)
{
	char *end;
	if (!s || !*s || (u && *s == '-'))
		return usage_error("--%s needs a number", name);
	errno = 0;
	if (u) {
		unsigned long v = strtoul(s, &end, 0);
		if (errno || *end)
			return usage_error("--%s: %s is not a number", name, s);
		*u = v;
		return 0;
	}
	long v = strtol(s, &end, 10);
	if (errno || *end || v < INT_MIN || v > INT_MAX)
		return usage_error("--%s: %s is not an int", name, s);
	*i = (int)v;
	return 0;
}

/* One common option. 0: taken; -1: usage error (recorded); 1: not a common option. */
int as_common_opt(struct as_common *c, int opt, const char *arg, const char *dev_option)
{
	unsigned long v;
	int r = 0;
	switch (opt) {
	case AS_OPT_PID:
		r = as_parse_number("pid", arg, &v, NULL);
		if (r == 0 && (v == 0 || v > INT_MAX))
			r = usage_error("--pid must be a process id");
		c->pid = (long)v;
		return r;
	case AS_OPT_NOTIF_FD:
		r = as_parse_number("notif-fd", arg, &v, NULL);
		if (r == 0 && v > INT_MAX)
			r = usage_error("--notif-fd is not an fd");
		c->notif_fd = (int)v;
		c->have_notif_fd = true;
		return r;
	case AS_OPT_NOTIF_ID: {
		char *end;
		errno = 0;
		unsigned long long id = strtoull(arg, &end, 0);
		if (errno || *end || !*arg || *arg == '-')
			r = usage_error("--notif-id: %s is not a 64-bit id", arg);
		c->notif_id = id;
		c->have_notif_id = true;
		return r;
	}
	case AS_OPT_PROTECT_ID:
		r = as_parse_number("protect-id", arg, &v, NULL);
		if (r == 0 && c->nprotect >= (int)(sizeof c->protect / sizeof c->protect[0]))
			r = usage_error("too many --protect-id");
		if (r == 0)
			c->protect[c->nprotect++] = v;
		return r;
	case AS_OPT_DEV: {
		unsigned int ma, mi;
		char tail;
		if (sscanf(arg, "%u:%u%c", &ma, &mi, &tail) != 2)
			return usage_error("--%s: %s is not major:minor", dev_option, arg);
		if (c->ndev >= (int)(sizeof c->dev / sizeof c->dev[0]))
			return usage_error("too many --%s", dev_option);
		c->dev[c->ndev].major = ma;
		c->dev[c->ndev].minor = mi;
		c->ndev++;
		return 0;
	}
	default: return 1;
	}
}

/*
 * Parses argv[2..] (longopts: AS_COMMON_LONGOPTS(dev_option) and the command's own, which own() takes:
 * 0 taken, -1 usage error, 1 not its option). Returns 0, or -1 with the first usage error recorded.
 */
int as_getopt(int argc, char **argv, const struct option *longopts, const char *dev_option,
		     struct as_common *c, int (*own)(int opt, const char *arg, void *ctx), void *ctx)
{
	int opt;
	/*
	 * getopt's state is re-initialized (optind 0) on each parse: a performer's runs share it (perform.c
	 * runs them in its own memory). argv[1], the command, stands as getopt's program name.
	 */
	int n = argc - 1;
	char **v = argv + 1;
	opterr = 0;
	optind = 0;
	while ((opt = getopt_long(n, v, "", longopts, NULL)) != -1) {
		int r = as_common_opt(c, opt, optarg, dev_option);
		if (r > 0)
			r = own(opt, optarg, ctx);
		if (r > 0)
			r = usage_error("unknown or incomplete option %s", v[optind - 1]);
		if (r < 0)
			return -1;
	}
	if (optind < n)
		return usage_error("unexpected argument %s", v[optind]);
	return 0;
}

/* The check of the common options that comes after the command's own checks. */
int as_check_common(const struct as_common *c)
{
	if (c->have_notif_fd != c->have_notif_id)
		return usage_error("--notif-fd and --notif-id go together");
	return 0;
}

bool as_protected_mount(const struct as_common *c, uint64_t mnt_id)
{
	for (int i = 0; i < c->nprotect; i++)
		if (c->protect[i] == mnt_id)
			return true;
	return false;
}

bool as_listed_dev(const struct as_common *c, unsigned int major, unsigned int minor)
{
	for (int i = 0; i < c->ndev; i++)
		if (c->dev[i].major == major && c->dev[i].minor == minor)
			return true;
	return false;
}

struct as_creds {
	unsigned long uid[4], gid[4]; /* real, effective, saved, fs: host ids, then translated */
	gid_t groups[256];
	int ngroups;
	uint64_t cap_inh, cap_prm, cap_eff;
};

/* Reads a small /proc file (relative to dirfd) into buf, NUL-terminated. */
int as_read_file(int dirfd, const char *name, char *buf, size_t size)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(errno, "open", "open /proc/<pid>/%s", name);
	size_t have = 0;
	for (;;) {
		ssize_t n = read(fd, buf + have, size - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			close(fd);
			return fail(err, "read", "read /proc/<pid>/%s", name);
		}
		if (n == 0 || have + (size_t)n >= size - 1) {
			have += (size_t)(n > 0 ? n : 0);
			break;
		}
		have += (size_t)n;
	}
	close(fd);
	buf[have] = '\0';
	return 0;
}

/* "Uid:\t0\t0\t0\t0" style line: up to max numbers after key. Returns how many were read. */
int as_status_numbers(const char *status, const char *key, unsigned long *out, int max, int base)
{
	size_t klen = strlen(key);
	for (const char *line = status; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, key, klen) != 0)
			continue;
		const char *p = line + klen;
		int n = 0;
		while (n < max) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '\n' || *p == '\0')
				break;
			char *end;
			errno = 0;
			unsigned long long v = strtoull(p, &end, base);
			if (end == p || errno)
				break;
			out[n++] = (unsigned long)v;
			p = end;
		}
		return n;
	}
	return -1;
}

const struct as_userns *as_known_userns;
int as_nknown_userns;
struct as_userns as_learned_userns;
bool as_learned;
/* This run's read of P's maps, parsed (when they fit): as_learned_userns once proven P's. */
static struct as_userns as_read_userns;
static bool as_read_parsed;

/* Host id -> id inside the namespace whose map (as read from the host) is map. -1 when unmapped. */
static long long as_translate(const char *map, unsigned long host)
{
	for (const char *line = map; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned long inside, outside, count;
		if (sscanf(line, "%lu %lu %lu", &inside, &outside, &count) != 3)
			continue;
		if (host >= outside && host - outside < count)
			return (long long)(inside + (host - outside));
	}
	return -1;
}

/* The same through a parsed map. */
static long long as_map_translate(const struct as_idmap *m, unsigned long host)
{
	for (uint32_t i = 0; i < m->n; i++)
		if (host >= m->lower[i] && host - m->lower[i] < m->count[i])
			return (long long)m->first[i] + (long long)(host - m->lower[i]);
	return -1;
}

/* Parses a map as read from the host; false when it is empty (not written yet), odd, or has more than AS_MAP_MAX lines. */
static bool as_parse_map(const char *text, struct as_idmap *m)
{
	m->n = 0;
	for (const char *p = text; *p;) {
		unsigned long v[3];
		for (int k = 0; k < 3; k++) {
			while (*p == ' ')
				p++;
			char *end;
			errno = 0;
			v[k] = strtoul(p, &end, 10);
			if (end == p || errno || v[k] > UINT32_MAX)
				return false;
			p = end;
		}
		while (*p == ' ')
			p++;
		if (*p == '\n')
			p++;
		else if (*p)
			return false;
		if (m->n == AS_MAP_MAX)
			return false;
		m->first[m->n] = (uint32_t)v[0];
		m->lower[m->n] = (uint32_t)v[1];
		m->count[m->n] = (uint32_t)v[2];
		m->n++;
	}
	return m->n > 0;
}

/*
 * P's user namespace among those a performer knows (as_known_userns), or NULL. What it reads is P's
 * only if NOTIF_ID_VALID later says so; a caller of the syscall cannot change namespace meanwhile.
 */
static const struct as_userns *as_known(int procfd, struct stat *ns)
{
	if (fstatat(procfd, "ns/user", ns, 0) < 0) {
		ns->st_ino = 0;
		return NULL;
	}
	for (int i = 0; i < as_nknown_userns; i++)
		if (as_known_userns[i].dev == (uint64_t)ns->st_dev && as_known_userns[i].ino == (uint64_t)ns->st_ino)
			return &as_known_userns[i];
	return NULL;
}

static int as_load_creds(int procfd, struct as_creds *c)
{
	static char status[16384];
	char uid_map[4096], gid_map[4096];
	if (as_read_file(procfd, "status", status, sizeof(status)) < 0)
		return -1;
	spare_mark("status");
	struct stat ns = { 0 };
	const struct as_userns *known = as_known_userns ? as_known(procfd, &ns) : NULL;
	as_read_parsed = false;
	if (!known) {
		if (as_read_file(procfd, "uid_map", uid_map, sizeof(uid_map)) < 0 ||
		    as_read_file(procfd, "gid_map", gid_map, sizeof(gid_map)) < 0)
			return -1;
		/* A performer learns the maps of a namespace it does not know yet (only a performer: as_known_userns set). */
		if (as_known_userns && ns.st_ino && as_parse_map(uid_map, &as_read_userns.uid) && as_parse_map(gid_map, &as_read_userns.gid)) {
			as_read_userns.dev = (uint64_t)ns.st_dev;
			as_read_userns.ino = (uint64_t)ns.st_ino;
			as_read_parsed = true;
			known = &as_read_userns;
		}
	}
#define AS_TRANSLATE(which, host) (known ? as_map_translate(&known->which, host) : as_translate(which##_map, host))
	unsigned long caps[1];
	if (as_status_numbers(status, "Uid:", c->uid, 4, 10) != 4 || as_status_numbers(status, "Gid:", c->gid, 4, 10) != 4)
		return fail(EPROTO, "read", "no Uid:/Gid: lines in /proc/<pid>/status");
	if (as_status_numbers(status, "CapInh:", caps, 1, 16) != 1)
		return fail(EPROTO, "read", "no CapInh: in /proc/<pid>/status");
	c->cap_inh = caps[0];
	if (as_status_numbers(status, "CapPrm:", caps, 1, 16) != 1)
		return fail(EPROTO, "read", "no CapPrm: in /proc/<pid>/status");
	c->cap_prm = caps[0];
	if (as_status_numbers(status, "CapEff:", caps, 1, 16) != 1)
		return fail(EPROTO, "read", "no CapEff: in /proc/<pid>/status");
	c->cap_eff = caps[0];
	/* Host ids, set before entering P's namespaces (as_run): unmapped ones included, as P has them. */
	unsigned long groups[256];
	int ng = as_status_numbers(status, "Groups:", groups, 256, 10);
	c->ngroups = ng > 0 ? ng : 0;
	for (int i = 0; i < c->ngroups; i++)
		c->groups[i] = (gid_t)groups[i];
	for (int i = 0; i < 4; i++) {
		long long u = AS_TRANSLATE(uid, c->uid[i]);
		long long g = AS_TRANSLATE(gid, c->gid[i]);
		if (u < 0 || g < 0)
			return fail(EOVERFLOW, "read", "uid %lu / gid %lu of the process are not mapped in its user namespace",
				    c->uid[i], c->gid[i]);
		c->uid[i] = (unsigned long)u;
		c->gid[i] = (unsigned long)g;
	}
#undef AS_TRANSLATE
	return 0;
}

static const struct {
	const char *name;
	int type;
} as_namespaces[] = {
	/* user first (it grants the capabilities the others need), then mnt, pid last (used by fork). */
	{ "user", CLONE_NEWUSER }, { "mnt", CLONE_NEWNS }, { "cgroup", CLONE_NEWCGROUP }, { "ipc", CLONE_NEWIPC },
	{ "uts", CLONE_NEWUTS },   { "net", CLONE_NEWNET }, { "pid", CLONE_NEWPID },
};
#define AS_NNS ((int)(sizeof(as_namespaces) / sizeof(as_namespaces[0])))

/* Our own namespaces, looked up once per process, before any setns (our /proc/self is gone after setns mnt). */
static struct {
	bool known;
	dev_t dev;
	ino_t ino;
} as_self_ns[AS_NNS];

static int as_self_ns_id(int i)
{
	if (as_self_ns[i].known)
		return 0;
	char self[64];
	struct stat b;
	snprintf(self, sizeof(self), "/proc/self/ns/%s", as_namespaces[i].name);
	if (stat(self, &b) < 0)
		return fail(errno, "stat", "stat %s", self);
	as_self_ns[i].known = true;
	as_self_ns[i].dev = b.st_dev;
	as_self_ns[i].ino = b.st_ino;
	return 0;
}

/* 1 when the namespace file fd is namespace i that we are already in, 0 when not, -1 on error. */
static int as_same_ns(int fd, int i)
{
	struct stat a;
	if (fstat(fd, &a) < 0)
		return fail(errno, "fstat", "fstat ns/%s", as_namespaces[i].name);
	if (as_self_ns_id(i) < 0)
		return -1;
	return a.st_dev == as_self_ns[i].dev && a.st_ino == as_self_ns[i].ino;
}

/* In the forked child: become P (root, cwd, ids, capabilities). Returns 0, or -1 with the failure recorded. */
static int as_become(long pid, const struct as_creds *c, int rootfd, int cwdfd)
{
	if (fchdir(rootfd) < 0)
		return fail(errno, "fchdir", "fchdir to the root of process %ld", pid);
	if (chroot(".") < 0)
		return fail(errno, "chroot", "chroot to the root of process %ld", pid);
	if (fchdir(cwdfd) < 0)
		return fail(errno, "fchdir", "fchdir to the cwd of process %ld", pid);
	if (setresgid((gid_t)c->gid[0], (gid_t)c->gid[1], (gid_t)c->gid[2]) < 0)
		return fail(errno, "setresgid", "setresgid %lu %lu %lu", c->gid[0], c->gid[1], c->gid[2]);
	if (setresuid((uid_t)c->uid[0], (uid_t)c->uid[1], (uid_t)c->uid[2]) < 0)
		return fail(errno, "setresuid", "setresuid %lu %lu %lu", c->uid[0], c->uid[1], c->uid[2]);
	setfsgid((gid_t)c->gid[3]);
	setfsuid((uid_t)c->uid[3]);
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2] = {
		{ .effective = (uint32_t)c->cap_eff, .permitted = (uint32_t)c->cap_prm, .inheritable = (uint32_t)c->cap_inh },
		{ .effective = (uint32_t)(c->cap_eff >> 32), .permitted = (uint32_t)(c->cap_prm >> 32),
		  .inheritable = (uint32_t)(c->cap_inh >> 32) },
	};
	if (syscall(SYS_capset, &hdr, data) < 0)
		return fail(errno, "capset", "capset to the capabilities of process %ld", pid);
	return 0;
}

#ifndef PIDFD_THREAD
#define AS_PIDFD_THREAD O_EXCL /* PIDFD_THREAD (Linux 6.9) */
#else
#define AS_PIDFD_THREAD PIDFD_THREAD
#endif

/* SECCOMP_IOCTL_NOTIF_ID_VALID for --notif-fd/--notif-id (none given: nothing to check). */
static int as_notif_valid(const struct as_common *o)
{
	uint64_t id = o->notif_id;
	if (o->have_notif_fd && ioctl(o->notif_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0)
		return fail(errno, "ioctl", "seccomp notification %llu is no longer valid", (unsigned long long)o->notif_id);
	return 0;
}

/*
 * Set by a performer's spare that answers the caller itself (perform.h): an in-place run then keeps
 * the notify fd open into P's namespaces, for that answer. as_notif_closed: it was closed on the way.
 */
bool as_keep_notif, as_notif_closed;
void (*as_outcome_final)(void);

/* The notify fd must not come along into P's namespaces (but see as_keep_notif). */
static void as_close_notif(const struct as_common *o)
{
	if (!o->have_notif_fd || (as_keep_notif && o->in_place))
		return;
	close(o->notif_fd);
	as_notif_closed = true;
}

/*
 * The slow path of step 2: opens P's ns/ files through the pinned procfd, re-checks the notification
 * (so they too provably belong to the caller), then enters, one setns each, the namespaces that are
 * not already ours (user first, then mnt, pid last; pid not at all in place). Fills nsfd (the caller closes).
 */
static int as_enter_each(const struct as_common *o, int procfd, const char *path, int nsfd[AS_NNS])
{
	for (int i = 0; i < AS_NNS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "ns/%s", as_namespaces[i].name);
		nsfd[i] = openat(procfd, name, O_RDONLY | O_CLOEXEC);
		if (nsfd[i] < 0) {
			if (errno == ENOENT && as_namespaces[i].type != CLONE_NEWUSER && as_namespaces[i].type != CLONE_NEWNS)
				continue; /* a namespace type this kernel lacks */
			return fail(errno, "open", "open %s/%s", path, name);
		}
	}
	if (as_notif_valid(o) < 0)
		return -1;
	as_close_notif(o);
	/* Compare with our own namespaces before entering any (our /proc/self is gone after setns mnt). */
	bool same[AS_NNS];
	for (int i = 0; i < AS_NNS; i++) {
		int r = nsfd[i] < 0 ? 1 : as_same_ns(nsfd[i], i);
		if (r < 0)
			return -1;
		same[i] = r == 1;
	}
	for (int i = 0; i < AS_NNS; i++) {
		if (same[i] || (o->in_place && as_namespaces[i].type == CLONE_NEWPID))
			continue;
		if (setns(nsfd[i], as_namespaces[i].type) < 0)
			return fail(errno, "setns", "setns into the %s namespace of process %ld", as_namespaces[i].name, o->pid);
	}
	return 0;
}

/*
 * Steps 1-5 above for o->pid. prepare(procfd, arg), when not NULL, runs after /proc/P's fds and P's
 * credentials are taken and before the notification is re-checked, in the host namespaces; it returns
 * 0 or -1 with the failure recorded (what it opens is its caller's to close). child(arg) runs in the
 * forked child once it is P, and reports with fail(). Returns 0, or -1 with the failure recorded.
 */
int as_run(const struct as_common *o, int (*prepare)(int procfd, void *arg), void (*child)(void *arg), void *arg)
{
	int procfd = -1, pidfd = -1, rootfd = -1, cwdfd = -1, nsfd[AS_NNS];
	int rc = -1, pipefd[2] = { -1, -1 };
	struct as_creds creds;
	char path[64];

	for (int i = 0; i < AS_NNS; i++)
		nsfd[i] = -1;
	spare_mark("as_run");
	snprintf(path, sizeof(path), "/proc/%ld", o->pid);
	procfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0) {
		fail(errno == ENOENT ? ESRCH : errno, "open", "open %s", path);
		goto out;
	}
	spare_mark("open_proc");
	/* A pidfd of the calling thread (PIDFD_THREAD: it may not lead its thread group), for the one-call setns. */
	pidfd = (int)syscall(SYS_pidfd_open, (pid_t)o->pid, AS_PIDFD_THREAD);
	spare_mark("pidfd");
	rootfd = openat(procfd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		fail(errno, "open", "open %s/root", path);
		goto out;
	}
	cwdfd = openat(procfd, "cwd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwdfd < 0) {
		fail(errno, "open", "open %s/cwd", path);
		goto out;
	}
	spare_mark("root_cwd");
	if (as_load_creds(procfd, &creds) < 0)
		goto out;
	spare_mark("creds");
	if (prepare && prepare(procfd, arg) < 0)
		goto out;
	spare_mark("prepare");
	/* Everything taken above (the /proc fds, the pidfd, and whatever prepare took from P) now provably belongs to the caller. */
	if (as_notif_valid(o) < 0)
		goto out;
	spare_mark("id_valid");
	if (as_read_parsed) {
		as_learned_userns = as_read_userns;
		as_learned = true;
	}
	/*
	 * P's supplementary groups instead of host root's, set here, as host ids: in P's user namespace they
	 * are then P's own. Set from inside, they would need that namespace to allow setgroups, which an
	 * unprivileged one denies (/proc/P/setgroups: `unshare -r`, rootless engines in a container).
	 */
	if (setgroups((size_t)creds.ngroups, creds.groups) < 0) {
		fail(errno, "setgroups", "setgroups (%d groups of process %ld)", creds.ngroups, o->pid);
		goto out;
	}
	spare_mark("setgroups");
	/*
	 * Fast path: all of P's namespaces in one setns on the pidfd (Linux >= 5.8). It is atomic: on
	 * failure nothing changed. It fails (EINVAL, EPERM) where P shares one of our namespaces (re-entering
	 * our own user namespace is refused; a host-owned one needs host capabilities once in P's user
	 * namespace); then the per-namespace path below enters only those that differ.
	 */
	int all = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET |
		  (o->in_place ? 0 : CLONE_NEWPID);
	if (pidfd >= 0 && setns(pidfd, all) == 0) {
		as_close_notif(o);
	} else if (as_enter_each(o, procfd, path, nsfd) < 0) {
		goto out;
	}
	spare_mark("setns");

	if (o->in_place) {
		if (as_become(o->pid, &creds, rootfd, cwdfd) == 0) {
			spare_mark("become");
			child(arg);
		}
		rc = failure.set ? -1 : 0;
		goto out;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		fail(errno, "pipe2", "pipe2");
		goto out;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fail(errno, "fork", "fork into the pid namespace of process %ld", o->pid);
		goto out;
	}
	if (pid == 0) {
		struct msg m;
		close(pipefd[0]);
		/* getppid() is 0 here (the parent is outside this pid namespace): the helper is known to be
		 * alive while the pipe's read end is open (POLLERR on the write end once it is gone). */
		struct pollfd pp = { .fd = pipefd[1], .events = POLLOUT };
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || poll(&pp, 1, 0) != 1 || (pp.revents & (POLLERR | POLLHUP)))
			_exit(1);
		if (as_become(o->pid, &creds, rootfd, cwdfd) == 0)
			child(arg);
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
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
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
	int fds[] = { procfd, pidfd, rootfd, cwdfd, pipefd[0], pipefd[1] };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return rc;
}
