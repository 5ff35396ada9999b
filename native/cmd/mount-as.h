/*
 * eci-helper mount-as / umount-as: one mount(2) or umount2(2) performed *for* a container process,
 * with arguments the syscall vetter has already checked. Included by eci-helper.c (after its failure
 * reporting functions); not a program of its own.
 *
 *   eci-helper mount-as  --pid P [--source S] --target T [--fstype F] [--flags N] [--data D]
 *                        [--notif-fd FD --notif-id ID]
 *   eci-helper umount-as --pid P --target T [--flags N] [--notif-fd FD --notif-id ID]
 *
 * N is decimal or 0x-hex. An absent --source/--fstype/--data is passed as NULL. T relative: resolved
 * against P's cwd; absolute: against P's root. Output (eci-helper's contract): {"ok":true}, or
 * {"ok":false,"code","errno","syscall","message"} where syscall is "mount"/"umount2" when the call
 * itself failed (that errno is what P should see) and anything else for a failure to get there.
 *
 * Steps, all in this single-threaded process (setns into a user namespace is refused to threaded ones):
 *   1. open /proc/P (O_PATH) and, relative to it, ns/{user,mnt,cgroup,ipc,uts,net,pid}, root, cwd,
 *      status, uid_map, gid_map. With --notif-fd/--notif-id (the seccomp notify fd, inherited), check
 *      SECCOMP_IOCTL_NOTIF_ID_VALID now: it proves these fds belong to the process that made the call,
 *      not to a recycled pid. Fails with syscall "ioctl" / ENOENT otherwise.
 *   2. drop the helper's own supplementary groups (host root's), then setns into P's user namespace,
 *      then its mount namespace, then cgroup/ipc/uts/net/pid (each only when it differs from ours).
 *   3. fork (the child is then in P's pid namespace, which matters for proc; it dies with the helper):
 *      fchdir(root) + chroot("."), fchdir(cwd); setgroups(P's groups), setresgid/setresuid + setfsgid/
 *      setfsuid to P's real/effective/saved/fs ids, translated into P's user namespace through its
 *      uid_map/gid_map (so host uid 100000 becomes 0 in a 0->100000 container).
 *   4. capabilities: after setns the process holds every capability in P's user namespace (and none
 *      outside it). capset() then sets exactly P's permitted, effective and inheritable sets (CapPrm,
 *      CapEff, CapInh of /proc/P/status), so the call runs with P's credentials in P's namespaces:
 *      the kernel checks it as it would have checked P (CAP_SYS_ADMIN over the mount namespace's owner).
 *      The bounding and ambient sets are left alone (nothing is exec'd).
 *   5. mount()/umount2(); the child sends its errno back over a pipe.
 */
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/fsuid.h>
#include <linux/capability.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <linux/seccomp.h>

struct as_opts {
	bool umount;
	long pid;
	const char *source, *target, *fstype, *data;
	unsigned long flags;
	int notif_fd;
	uint64_t notif_id;
	bool have_notif_fd, have_notif_id;
	/* eci-managed mounts (by mount id): never unmounted or moved. */
	uint64_t protect[64];
	int nprotect;
	/* Devices (st_dev) of the mounts that were read-only when the container started: a read-only
	 * mount of these filesystems (the mount itself, a bind or a clone of it) is never made writable. */
	struct { unsigned int major, minor; } rodev[64];
	int nrodev;
};

struct as_creds {
	unsigned long uid[4], gid[4]; /* real, effective, saved, fs: host ids, then translated */
	gid_t groups[256];
	int ngroups;
	uint64_t cap_inh, cap_prm, cap_eff;
};

/* Reads a small /proc file (relative to dirfd) into buf, NUL-terminated. */
static int as_read_file(int dirfd, const char *name, char *buf, size_t size)
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
static int as_status_numbers(const char *status, const char *key, unsigned long *out, int max, int base)
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

static int as_load_creds(int procfd, struct as_creds *c)
{
	static char status[16384];
	char uid_map[4096], gid_map[4096];
	if (as_read_file(procfd, "status", status, sizeof(status)) < 0 ||
	    as_read_file(procfd, "uid_map", uid_map, sizeof(uid_map)) < 0 ||
	    as_read_file(procfd, "gid_map", gid_map, sizeof(gid_map)) < 0)
		return -1;
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
	unsigned long groups[256];
	int ng = as_status_numbers(status, "Groups:", groups, 256, 10);
	c->ngroups = 0;
	for (int i = 0; i < ng; i++) {
		long long g = as_translate(gid_map, groups[i]);
		if (g >= 0) /* unmapped groups are overflow groups to P as well: they cannot be set, skip them */
			c->groups[c->ngroups++] = (gid_t)g;
	}
	for (int i = 0; i < 4; i++) {
		long long u = as_translate(uid_map, c->uid[i]);
		long long g = as_translate(gid_map, c->gid[i]);
		if (u < 0 || g < 0)
			return fail(EOVERFLOW, "read", "uid %lu / gid %lu of the process are not mapped in its user namespace",
				    c->uid[i], c->gid[i]);
		c->uid[i] = (unsigned long)u;
		c->gid[i] = (unsigned long)g;
	}
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

/* 1 when the namespace file fd is the namespace we are already in, 0 when not, -1 on error. */
static int as_same_ns(int fd, const char *name)
{
	char self[64];
	struct stat a, b;
	snprintf(self, sizeof(self), "/proc/self/ns/%s", name);
	if (fstat(fd, &a) < 0)
		return fail(errno, "fstat", "fstat ns/%s", name);
	if (stat(self, &b) < 0)
		return fail(errno, "stat", "stat %s", self);
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* In the forked child: become P (root, cwd, ids, capabilities) and make the call. */
static void as_child(const struct as_opts *o, const struct as_creds *c, int rootfd, int cwdfd)
{
	if (fchdir(rootfd) < 0) {
		fail(errno, "fchdir", "fchdir to the root of process %ld", o->pid);
		return;
	}
	if (chroot(".") < 0) {
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
	/*
	 * The checks are made on the object the call will act on, with no window to swap it: the
	 * target is opened once (as the caller would resolve it, symlinks and all) and judged through
	 * the fd; the call is then made on that same object (see below).
	 */
	int tfd = open(o->target, O_PATH | O_CLOEXEC);
	if (tfd < 0) {
		fail(errno, o->umount ? "umount2" : "mount", "%s", o->target);
		return;
	}
	struct statx sx;
	if (statx(tfd, "", AT_EMPTY_PATH, STATX_MNT_ID | STATX_BASIC_STATS, &sx) < 0) {
		fail(errno, "statx", "statx %s", o->target);
		return;
	}
	bool is_protected = false;
	for (int i = 0; i < o->nprotect; i++)
		if (o->protect[i] == sx.stx_mnt_id)
			is_protected = true;
	/*
	 * Act on the judged objects themselves, never on a path the container could redirect (its own
	 * /proc included: a container may mount over it): directories through the cwd ("." after
	 * fchdir to the fd), binds and moves through the new mount API on fds. Non-directory targets
	 * get only binds; remounting, moving or unmounting a file mount is refused.
	 */
	const bool is_dir = S_ISDIR(sx.stx_mode);
	int sfd = -1;
	if ((o->flags & (MS_BIND | MS_MOVE)) && !(o->flags & MS_REMOUNT) && o->source) {
		sfd = open(o->source, O_PATH | O_CLOEXEC);
		if (sfd < 0) {
			fail(errno, "mount", "%s", o->source);
			return;
		}
	}
	if (o->umount) {
		if (is_protected) {
			fail(EPERM, "umount2", "%s is an eci-managed mount", o->target);
			return;
		}
		if (!is_dir) {
			fail(EPERM, "umount2", "%s: unmounting a file mount is not supported by eci", o->target);
			return;
		}
		/*
		 * Linux has no unmount-by-fd, and the fd we judged holds a reference that makes a plain
		 * unmount EBUSY: detach it (lazy unmount). The cost is that a mount still in use is detached
		 * rather than refused with EBUSY; the gain is that no other mount can be swapped in.
		 */
		if (fchdir(tfd) < 0 || syscall(SYS_umount2, ".", (int)o->flags | MNT_DETACH) < 0)
			fail(errno, "umount2", "umount2 %s", o->target);
		return;
	}
	if ((o->flags & MS_REMOUNT) && !(o->flags & MS_RDONLY)) {
		struct statvfs vfs;
		if (fstatvfs(tfd, &vfs) < 0) {
			fail(errno, "fstatvfs", "statvfs %s", o->target);
			return;
		}
		for (int i = 0; (vfs.f_flag & ST_RDONLY) && i < o->nrodev; i++) {
			if (o->rodev[i].major == sx.stx_dev_major && o->rodev[i].minor == sx.stx_dev_minor) {
				fail(EPERM, "mount", "%s is read-only and stays read-only", o->target);
				return;
			}
		}
	}
	if (sfd >= 0 && (o->flags & MS_MOVE)) {
		struct statx ss;
		if (statx(sfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &ss) < 0) {
			fail(errno, "mount", "%s", o->source);
			return;
		}
		for (int i = 0; i < o->nprotect; i++)
			if (o->protect[i] == ss.stx_mnt_id) {
				fail(EPERM, "mount", "%s is an eci-managed mount", o->source);
				return;
			}
		if (syscall(SYS_move_mount, sfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			fail(errno, "mount", "move %s to %s", o->source, o->target);
		return;
	}
	if (sfd >= 0 && (o->flags & MS_BIND)) {
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
	if (!is_dir) {
		fail(EPERM, "mount", "%s: only bind mounts onto files are supported by eci", o->target);
		return;
	}
	if (fchdir(tfd) < 0) {
		fail(errno, "mount", "%s", o->target);
		return;
	}
	if (syscall(SYS_mount, o->source, ".", o->fstype, o->flags, o->data) < 0)
		fail(errno, "mount", "mount %s on %s (type %s)", o->source ? o->source : "(null)", o->target,
		     o->fstype ? o->fstype : "(null)");
}

static int cmd_as(const struct as_opts *o)
{
	int procfd = -1, rootfd = -1, cwdfd = -1, nsfd[AS_NNS];
	int rc = -1, pipefd[2] = { -1, -1 };
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
				continue; /* a namespace type this kernel lacks */
			fail(errno, "open", "open %s/%s", path, name);
			goto out;
		}
	}
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
	if (as_load_creds(procfd, &creds) < 0)
		goto out;
	if (o->have_notif_fd) {
		uint64_t id = o->notif_id;
		if (ioctl(o->notif_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0) {
			fail(errno, "ioctl", "seccomp notification %llu is no longer valid", (unsigned long long)o->notif_id);
			goto out;
		}
		close(o->notif_fd);
	}

	/* Host root's supplementary groups must not come along into the container. */
	if (setgroups(0, NULL) < 0) {
		fail(errno, "setgroups", "setgroups(0)");
		goto out;
	}
	/* Compare with our own namespaces before entering any (our /proc/self is gone after setns mnt). */
	bool same[AS_NNS];
	for (int i = 0; i < AS_NNS; i++) {
		int r = nsfd[i] < 0 ? 1 : as_same_ns(nsfd[i], as_namespaces[i].name);
		if (r < 0)
			goto out;
		same[i] = r == 1;
	}
	for (int i = 0; i < AS_NNS; i++) {
		if (same[i])
			continue;
		if (setns(nsfd[i], as_namespaces[i].type) < 0) {
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
		/* getppid() is 0 here (the parent is outside this pid namespace): the helper is known to be
		 * alive while the pipe's read end is open (POLLERR on the write end once it is gone). */
		struct pollfd pp = { .fd = pipefd[1], .events = POLLOUT };
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || poll(&pp, 1, 0) != 1 || (pp.revents & (POLLERR | POLLHUP)))
			_exit(1);
		as_child(o, &creds, rootfd, cwdfd);
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
	int status = 0;
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
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
	if (procfd >= 0)
		close(procfd);
	if (rootfd >= 0)
		close(rootfd);
	if (cwdfd >= 0)
		close(cwdfd);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	return rc;
}

static int parse_ulong_any(const char *name, const char *s, unsigned long *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return usage_error("--%s needs a number", name);
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || *end)
		return usage_error("--%s: %s is not a number", name, s);
	*out = v;
	return 0;
}

/* Entry point for argv[1] == "mount-as" / "umount-as". Returns the process exit status. */
static int main_as(int argc, char **argv)
{
	enum { A_PID = 1, A_SOURCE, A_TARGET, A_FSTYPE, A_FLAGS, A_DATA, A_NOTIF_FD, A_NOTIF_ID, A_PROTECT, A_RODEV };
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, A_PID },
		{ "source", required_argument, NULL, A_SOURCE },
		{ "target", required_argument, NULL, A_TARGET },
		{ "fstype", required_argument, NULL, A_FSTYPE },
		{ "flags", required_argument, NULL, A_FLAGS },
		{ "data", required_argument, NULL, A_DATA },
		{ "notif-fd", required_argument, NULL, A_NOTIF_FD },
		{ "notif-id", required_argument, NULL, A_NOTIF_ID },
		{ "protect-id", required_argument, NULL, A_PROTECT },
		{ "ro-dev", required_argument, NULL, A_RODEV },
		{ NULL, 0, NULL, 0 },
	};
	struct as_opts o = { .umount = strcmp(argv[1], "umount-as") == 0, .pid = -1, .notif_fd = -1 };
	unsigned long v;
	int opt;

	opterr = 0;
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int r = 0;
		switch (opt) {
		case A_PID:
			r = parse_ulong_any("pid", optarg, &v);
			if (r == 0 && (v == 0 || v > INT_MAX))
				r = usage_error("--pid must be a process id");
			o.pid = (long)v;
			break;
		case A_SOURCE: r = o.umount ? usage_error("umount-as takes no --source") : 0; o.source = optarg; break;
		case A_TARGET: o.target = optarg; break;
		case A_FSTYPE: r = o.umount ? usage_error("umount-as takes no --fstype") : 0; o.fstype = optarg; break;
		case A_FLAGS: r = parse_ulong_any("flags", optarg, &o.flags); break;
		case A_DATA: r = o.umount ? usage_error("umount-as takes no --data") : 0; o.data = optarg; break;
		case A_NOTIF_FD:
			r = parse_ulong_any("notif-fd", optarg, &v);
			if (r == 0 && v > INT_MAX)
				r = usage_error("--notif-fd is not an fd");
			o.notif_fd = (int)v;
			o.have_notif_fd = true;
			break;
		case A_NOTIF_ID:
			errno = 0;
			{
				char *end;
				unsigned long long id = strtoull(optarg, &end, 0);
				if (errno || *end || !*optarg || *optarg == '-')
					r = usage_error("--notif-id: %s is not a 64-bit id", optarg);
				o.notif_id = id;
			}
			o.have_notif_id = true;
			break;
		case A_PROTECT:
			r = parse_ulong_any("protect-id", optarg, &v);
			if (r == 0 && o.nprotect >= (int)(sizeof o.protect / sizeof o.protect[0]))
				r = usage_error("too many --protect-id");
			if (r == 0)
				o.protect[o.nprotect++] = v;
			break;
		case A_RODEV: {
			unsigned int ma, mi;
			char tail;
			if (sscanf(optarg, "%u:%u%c", &ma, &mi, &tail) != 2)
				r = usage_error("--ro-dev: %s is not major:minor", optarg);
			else if (o.nrodev >= (int)(sizeof o.rodev / sizeof o.rodev[0]))
				r = usage_error("too many --ro-dev");
			else {
				o.rodev[o.nrodev].major = ma;
				o.rodev[o.nrodev].minor = mi;
				o.nrodev++;
			}
			break;
		}
		default: r = usage_error("unknown or incomplete option %s", argv[optind - 1]); break;
		}
		if (r < 0)
			return report();
	}
	if (optind < argc)
		usage_error("unexpected argument %s", argv[optind]);
	else if (o.pid < 0 || !o.target || !*o.target)
		usage_error("%s needs --pid and --target", argv[1]);
	else if (strlen(o.target) >= PATH_MAX)
		usage_error("--target is too long");
	else if (o.have_notif_fd != o.have_notif_id)
		usage_error("--notif-fd and --notif-id go together");
	else if (o.umount && o.flags > INT_MAX)
		usage_error("--flags: umount2 flags are an int");
	else
		cmd_as(&o);
	return report();
}
