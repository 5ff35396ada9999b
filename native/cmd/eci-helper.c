/*
 * eci-helper: the small single-threaded executable that eci runs once per mount operation.
 *
 * Node cannot do these steps itself: a multithreaded process may not enter a new user namespace (the
 * vetted mounts join the container's) nor create one to serve as an idmap, nor change its fsuid alone.
 *
 *   eci-helper rootfs-overlay --uid-host U --gid-host G --size N --base BASE --lower L1[:L2...]
 *                             --upper UP --work WK --target TGT
 *   eci-helper rootfs-bind    --uid-host U --gid-host G --size N --source SRC --target TGT
 *   eci-helper umount         --target TGT [--detach]
 *   eci-helper host-view      --source SRC --target TGT --uid-host U --gid-host G --size N  (execs eci-hostview)
 *   eci-helper mount-as       --pid P [--source S] --target T [--fstype F] [--flags N] [--data D]
 *   eci-helper umount-as      --pid P --target T [--flags N]       (both: see mount-as.h)
 *   eci-helper serve PARENT_PID / perform PARENT_PID: long-lived runners of the above (serve.h, perform.h)
 *
 * Output: exactly one JSON line on stdout. {"ok":true} and exit 0 on success;
 * {"ok":false,"code":"EINVAL","errno":22,"syscall":"fsconfig","message":"..."} and exit 1 on failure;
 * the same with code "EUSAGE" and exit 2 on bad usage. On failure nothing this run made is left behind.
 *
 * How rootfs-overlay builds a rootfs without chown (mapping 0 -> U, size N):
 *   1. fork a child that unshares a user namespace J; the parent (root) writes its maps, "0 U N" plus
 *      "N 0 1" (host root, see below), opens /proc/<child>/ns/user and lets the child go: J is only an
 *      idmap, no process ever runs in it.
 *   2. the parent clones BASE (open_tree), idmaps the clone with J (mount_setattr MOUNT_ATTR_IDMAP) and
 *      attaches it on a fresh directory under /run/eci/tmp.
 *   3. the parent builds the overlay over the idmapped layers itself, as host root: its superblock
 *      belongs to the initial user namespace, an ancestor of every container's, so setuid/setgid bits
 *      and file capabilities on the rootfs are honoured inside the container (fs/namespace.c
 *      mnt_may_suid), and overlay keeps its metadata in trusted.overlay.* exactly as the engine's own
 *      overlay does (opaque dirs of image layers are read, those the container makes are written so).
 *      While the overlay is created the parent's fsuid/fsgid are U (capabilities kept): overlay
 *      records its mounter's credentials and does its work-dir and copy-up steps with them, and U is
 *      what lands on disk as 0 through the idmapped upper.
 *   4. the parent attaches the overlay on TGT and detaches the temporary idmapped mount; the overlay
 *      holds its own private clones of the layers.
 * Container root (host uid U) then sees a root-owned rootfs, and what it writes lands on disk as uid 0,
 * whatever range the container gets next time. Host root writing through the engine's path (docker cp
 * into a running container) lands on disk as uid N (65536): outside the container's ids, so the
 * container sees such files as nobody's, and never as its own root's.
 */
#include "helper.h"
#include "as-common.h"
#include "mount-as.h"
#include "bind-into.h"
#include "set-domainname.h"
#include "chmod-as.h"
#include "serve.h"
#include "perform.h"

/* ---------- the one failure this run reports (the first one wins; cleanup never overwrites it) ---------- */

struct helper_failure failure;

static void vfail(bool usage, int err, const char *sc, const char *fmt, va_list ap)
{
	if (failure.set)
		return;
	failure.set = true;
	failure.usage = usage;
	failure.err = err;
	snprintf(failure.syscall, sizeof(failure.syscall), "%s", sc);
	vsnprintf(failure.message, sizeof(failure.message), fmt, ap);
}

/* Records "<what>: <strerror(err)>" as the failure of syscall sc. Returns -1. */
int fail(int err, const char *sc, const char *what_fmt, ...)
{
	char what[768];
	va_list ap;
	va_start(ap, what_fmt);
	vsnprintf(what, sizeof(what), what_fmt, ap);
	va_end(ap);
	if (!failure.set) {
		failure.set = true;
		failure.err = err;
		snprintf(failure.syscall, sizeof(failure.syscall), "%s", sc);
		snprintf(failure.message, sizeof(failure.message), "%s: %s", what, strerror(err));
	}
	return -1;
}

int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(true, EINVAL, "", fmt, ap);
	va_end(ap);
	return -1;
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

int report(void)
{
	if (!failure.set) {
		printf("{\"ok\":true}\n");
		return 0;
	}
	printf("{\"ok\":false,\"code\":");
	json_string(stdout, failure.usage ? "EUSAGE" : eci_errno_name(failure.err));
	printf(",\"errno\":%d,\"syscall\":", failure.err);
	json_string(stdout, failure.syscall);
	printf(",\"message\":");
	json_string(stdout, failure.message);
	printf("}\n");
	return failure.usage ? 2 : 1;
}

/* ---------- arguments ---------- */

struct opts {
	const char *cmd;
	unsigned long uid_host, gid_host, size;
	bool have_uid, have_gid, have_size;
	char *base, *lower, *upper, *work, *target, *source;
	bool detach;
};

static int parse_u32(const char *name, const char *s, unsigned long *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return usage_error("--%s needs a decimal number", name);
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return usage_error("--%s: %s is not a number in 0..4294967295", name, s);
	*out = v;
	return 0;
}

/*
 * An absolute path with no empty, "." or ".." component; trailing slashes are dropped in place.
 * The prefix checks below are only honest on paths of that shape.
 */
static int check_path(const char *name, char *p)
{
	if (!p || p[0] != '/')
		return usage_error("--%s must be an absolute path, got %s", name, p ? p : "(nothing)");
	size_t n = strlen(p);
	if (n >= PATH_MAX)
		return usage_error("--%s is too long", name);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	for (const char *c = p; *c;) {
		c++; /* past '/' */
		const char *e = strchrnul(c, '/');
		size_t len = (size_t)(e - c);
		if ((len == 0 && *e) || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return usage_error("--%s: %s must not contain empty, '.' or '..' components", name, p);
		c = e;
	}
	return 0;
}

/* An overlay layer path: also free of ':' (separates --lower layers) and '\\' (overlay's escape). */
static int check_layer_path(const char *name, char *p)
{
	if (check_path(name, p) < 0)
		return -1;
	if (strpbrk(p, ":\\"))
		return usage_error("--%s: %s must not contain ':' or '\\'", name, p);
	return 0;
}

/* p relative to base ("l/ABC"), or NULL when p is not strictly below base. */
static const char *below(const char *base, const char *p)
{
	if (strcmp(base, "/") == 0)
		return p[1] ? p + 1 : NULL;
	size_t n = strlen(base);
	if (strncmp(p, base, n) != 0 || p[n] != '/')
		return NULL;
	return p + n + 1;
}

static int check_mapping(const struct opts *o)
{
	if (!o->have_uid || !o->have_gid || !o->have_size)
		return usage_error("%s needs --uid-host, --gid-host and --size", o->cmd);
	if (o->size == 0)
		return usage_error("--size must be at least 1");
	if (o->uid_host + o->size - 1 > UINT32_MAX - 1 || o->gid_host + o->size - 1 > UINT32_MAX - 1)
		return usage_error("--uid-host/--gid-host + --size overflow the 32-bit id space");
	return 0;
}

/* ---------- parent <-> child messages over a SOCK_SEQPACKET socketpair ---------- */

static int send_msg(int sock, const struct msg *m, int fd)
{
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(*m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t r;
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r == (ssize_t)sizeof(*m) ? 0 : -1;
}

/* Returns 1 on a message, 0 when the peer is gone, -1 on error. *fd gets a passed fd or -1. */
static int recv_msg(int sock, struct msg *m, int *fd)
{
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	ssize_t r;
	if (fd)
		*fd = -1;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int got;
			memcpy(&got, CMSG_DATA(c), sizeof(int));
			if (fd && *fd < 0)
				*fd = got;
			else
				close(got);
		}
	}
	if (r == 0)
		return 0;
	if (r != (ssize_t)sizeof(*m)) {
		errno = EPROTO;
		return -1;
	}
	m->syscall[sizeof(m->syscall) - 1] = '\0';
	m->message[sizeof(m->message) - 1] = '\0';
	return 1;
}

/* ---------- the child: it only provides a user namespace (an idmap) ---------- */

struct child_job {
	bool host_root; /* also map host root to on-disk id N (the rootfs: see the top of this file) */
};

static struct msg child_reply;

__attribute__((format(printf, 3, 4))) static int child_fail(int err, const char *sc, const char *what_fmt, ...)
{
	char what[700];
	va_list ap;
	va_start(ap, what_fmt);
	vsnprintf(what, sizeof(what), what_fmt, ap);
	va_end(ap);
	child_reply.err = err;
	snprintf(child_reply.syscall, sizeof(child_reply.syscall), "%s", sc);
	snprintf(child_reply.message, sizeof(child_reply.message), "%s: %s", what, strerror(err));
	return -1;
}

__attribute__((noreturn)) static void child_main(int sock, pid_t parent)
{
	struct msg go;

	/* Never outlive the helper, and never act for a parent that is already gone. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(1);
	memset(&child_reply, 0, sizeof(child_reply));
	if (unshare(CLONE_NEWUSER) < 0)
		child_fail(errno, "unshare", "unshare(CLONE_NEWUSER)");
	if (send_msg(sock, &child_reply, -1) < 0 || child_reply.err)
		_exit(1);
	/* Wait until the parent holds the namespace (or gives up): then there is nothing left to do. */
	recv_msg(sock, &go, NULL);
	_exit(0);
}

/* ---------- the parent side ---------- */

struct userns_child {
	pid_t pid;
	int sock;
	int nsfd;
};

static void child_stop(struct userns_child *c, bool kill_it)
{
	if (c->nsfd >= 0)
		close(c->nsfd);
	if (c->sock >= 0)
		close(c->sock); /* EOF: a waiting child exits by itself */
	if (c->pid > 0) {
		if (kill_it)
			kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	c->pid = -1;
	c->sock = c->nsfd = -1;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(errno, "open", "open %s", path);
	ssize_t n = write(fd, text, strlen(text));
	int err = errno;
	close(fd);
	if (n != (ssize_t)strlen(text))
		return fail(n < 0 ? err : EIO, "write", "write %s", path);
	return 0;
}

/* Adopts the failure the child reported as this run's failure. Returns -1. */
int child_failed(const struct msg *m)
{
	if (!failure.set) {
		failure.set = true;
		failure.err = m->err;
		memcpy(failure.syscall, m->syscall, sizeof(failure.syscall));
		snprintf(failure.message, sizeof(failure.message), "%s", m->message);
	}
	return -1;
}

/* Forks the child, waits until it has its user namespace, maps 0 -> host ids, opens the ns fd. */
static int child_start(struct userns_child *c, const struct opts *o, const struct child_job *job)
{
	int sv[2];
	struct msg m;
	char path[64], map[96];

	c->pid = -1;
	c->sock = c->nsfd = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return fail(errno, "socketpair", "socketpair");
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(sv[0]);
		close(sv[1]);
		return fail(err, "fork", "fork");
	}
	if (pid == 0) {
		close(sv[0]);
		child_main(sv[1], parent);
	}
	close(sv[1]);
	c->pid = pid;
	c->sock = sv[0];

	int r = recv_msg(c->sock, &m, NULL);
	if (r < 0)
		return fail(errno, "recvmsg", "waiting for the user namespace child");
	if (r == 0)
		return fail(ECHILD, "fork", "the user namespace child exited early");
	if (m.err)
		return child_failed(&m);
	/*
	 * As root in the parent namespace, gid_map may be written without denying setgroups first. Host
	 * root gets on-disk id N only where the range does not start at 0 (maps may not overlap).
	 */
	bool root_uid = job->host_root && o->uid_host > 0 && o->size < UINT32_MAX;
	bool root_gid = job->host_root && o->gid_host > 0 && o->size < UINT32_MAX;
	snprintf(map, sizeof(map), root_uid ? "0 %lu %lu\n%lu 0 1\n" : "0 %lu %lu\n", o->uid_host, o->size, o->size);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	if (write_file(path, map) < 0)
		return -1;
	snprintf(map, sizeof(map), root_gid ? "0 %lu %lu\n%lu 0 1\n" : "0 %lu %lu\n", o->gid_host, o->size, o->size);
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
	if (write_file(path, map) < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	c->nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (c->nsfd < 0)
		return fail(errno, "open", "open %s", path);
	return 0;
}

/* A detached clone of path, idmapped with the child's user namespace. Returns the tree fd or -1. */
static int idmapped_clone(const char *path, int nsfd)
{
	int fd = sys_open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (fd < 0)
		return fail(errno, "open_tree", "open_tree %s", path);
	/* Private: a clone of a shared mount (Docker makes its data root shared) would join its peer group,
	 * receive mounts the engine makes meanwhile, and take them along when detached. */
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP, .propagation = MS_PRIVATE, .userns_fd = (uint64_t)nsfd };
	if (sys_mount_setattr(fd, "", AT_EMPTY_PATH, &attr) < 0) {
		int err = errno;
		close(fd);
		return fail(err, "mount_setattr", "mount_setattr idmap %s", path);
	}
	return fd;
}

/* mkdir that accepts an existing directory. *made tells whether this call created it. */
static int ensure_dir(const char *path, mode_t mode, bool *made)
{
	struct stat st;
	if (made)
		*made = false;
	if (mkdir(path, mode) == 0) {
		if (made)
			*made = true;
		return 0;
	}
	if (errno != EEXIST)
		return fail(errno, "mkdir", "mkdir %s", path);
	if (lstat(path, &st) < 0)
		return fail(errno, "lstat", "lstat %s", path);
	if (!S_ISDIR(st.st_mode))
		return fail(ENOTDIR, "mkdir", "%s", path);
	return 0;
}

/* Attaches the detached mount fd on target (creating the directory if needed). */
static int attach(int fd, const char *target, bool *made, bool *mounted)
{
	if (ensure_dir(target, 0755, made) < 0)
		return -1;
	if (sys_move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return fail(errno, "move_mount", "move_mount to %s", target);
	*mounted = true;
	return 0;
}

/* Undoes attach() after a later failure. */
static void detach(const char *target, bool made, bool mounted)
{
	if (mounted && sys_umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
		fail(errno, "umount2", "undo: umount2 %s", target);
	if (made && rmdir(target) < 0)
		fail(errno, "rmdir", "undo: rmdir %s", target);
}

/* The layers of one overlay, named relative to BASE (the cwd while it is built). */
struct overlay_layers {
	const char *base; /* for messages */
	char **lower_rel; /* top first */
	int nlower;
	const char *upper_rel, *work_rel;
};

/* Appends the filesystem context's own messages ("overlay: ...") to this run's failure message. */
static void append_fs_log(int fsfd)
{
	char line[512];
	ssize_t n;
	while ((n = read(fsfd, line, sizeof(line) - 1)) > 0) {
		line[n] = '\0';
		size_t used = strlen(failure.message);
		if (used + 4 < sizeof(failure.message))
			snprintf(failure.message + used, sizeof(failure.message) - used, " (%s)", line);
	}
}

/* fsconfig; a layer value (under_base set) is named "upperdir=C/diff under BASE" in messages. */
static int overlay_fsconfig(int fsfd, unsigned int cmd, const char *key, const char *value, const char *under_base)
{
	if (sys_fsconfig(fsfd, cmd, key, value, 0) == 0)
		return 0;
	fail(errno, "fsconfig", "fsconfig %s%s%s%s%s", key ? key : "create", value ? "=" : "", value ? value : "",
	     under_base ? " under " : "", under_base ? under_base : "");
	append_fs_log(fsfd);
	return -1;
}

/* The lower layers: one "lowerdir+" each (Linux 6.7+, no 256-byte limit on the list), else one "lowerdir". */
static int overlay_lowers(int fsfd, const struct overlay_layers *l)
{
	if (l->nlower > 1 && sys_fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", l->lower_rel[0], 0) == 0) {
		for (int i = 1; i < l->nlower; i++)
			if (overlay_fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", l->lower_rel[i], l->base) < 0)
				return -1;
		return 0;
	}
	if (l->nlower > 1) {
		int err = errno;
		char log[512];
		ssize_t n = read(fsfd, log, sizeof(log) - 1);
		log[n > 0 ? n : 0] = '\0';
		if (err != EINVAL || !strstr(log, "nknown parameter")) {
			fail(err, "fsconfig", "fsconfig lowerdir+=%s under %s%s%s%s", l->lower_rel[0], l->base,
			     log[0] ? " (" : "", log, log[0] ? ")" : "");
			append_fs_log(fsfd);
			return -1;
		}
	}
	char joined[PATH_MAX];
	size_t used = 0;
	joined[0] = '\0';
	for (int i = 0; i < l->nlower; i++) {
		int w = snprintf(joined + used, sizeof(joined) - used, "%s%s", i ? ":" : "", l->lower_rel[i]);
		if (w < 0 || (size_t)w >= sizeof(joined) - used)
			return fail(ENAMETOOLONG, "fsconfig", "fsconfig lowerdir (too many layers)");
		used += (size_t)w;
	}
	if (used > 255)
		return fail(EINVAL, "fsconfig", "fsconfig lowerdir: %d layers take %zu bytes, over the 256 bytes one fsconfig "
			    "value may have (lowerdir+ needs Linux 6.7)", l->nlower, used);
	return overlay_fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir", joined, l->base);
}

/*
 * Sets fsuid/fsgid (U, or back to 0) keeping every capability effective: a change of fsuid away from 0
 * drops the file capabilities from the effective set, and overlay needs them in its mounter's
 * credentials (trusted.* xattrs, whiteouts, chown on copy-up).
 */
static int set_fs_ids(unsigned long uid, unsigned long gid)
{
	setfsgid((gid_t)gid);
	setfsuid((uid_t)uid);
	if ((unsigned long)setfsuid((uid_t)-1) != uid || (unsigned long)setfsgid((gid_t)-1) != gid)
		return fail(EPERM, "setfsuid", "setfsuid/setfsgid %lu/%lu", uid, gid);
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return fail(errno, "capget", "capget");
	d[0].effective = d[0].permitted;
	d[1].effective = d[1].permitted;
	if (syscall(SYS_capset, &h, d) < 0)
		return fail(errno, "capset", "capset (keep capabilities with fsuid %lu)", uid);
	return 0;
}

/*
 * Builds the overlay over the idmapped BASE, whose root is rootfd, as host root with fsuid/fsgid U/G
 * (see the top of this file). Returns the detached overlay mount fd or -1.
 */
static int build_overlay(const struct overlay_layers *l, int rootfd, const struct opts *o)
{
	/* Layers are named relative to the idmapped BASE through the cwd: short fsconfig values (the kernel
	 * caps each at 256 bytes) that cannot resolve outside it. */
	if (fchdir(rootfd) < 0)
		return fail(errno, "fchdir", "fchdir to the idmapped base");
	if (set_fs_ids(o->uid_host, o->gid_host) < 0)
		return -1;
	int rc = -1, mntfd = -1;
	int fsfd = sys_fsopen("overlay", FSOPEN_CLOEXEC);
	if (fsfd < 0) {
		fail(errno, "fsopen", "fsopen overlay");
		goto out;
	}
	if (overlay_fsconfig(fsfd, FSCONFIG_SET_STRING, "source", "overlay", NULL) < 0 || overlay_lowers(fsfd, l) < 0 ||
	    overlay_fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", l->upper_rel, l->base) < 0 ||
	    overlay_fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", l->work_rel, l->base) < 0 ||
	    overlay_fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, NULL) < 0)
		goto out;
	/* A work dir overlay could not use (EOVERFLOW, ...) makes it fall back to read-only: refuse that. */
	char log[512];
	ssize_t n;
	while ((n = read(fsfd, log, sizeof(log) - 1)) > 0) {
		log[n] = '\0';
		if (strstr(log, "read-only") || strstr(log, "read only")) {
			fail(EROFS, "fsconfig", "overlay under %s would be read-only (%s)", l->base, log);
			goto out;
		}
	}
	mntfd = sys_fsmount(fsfd, FSMOUNT_CLOEXEC, 0);
	if (mntfd < 0) {
		fail(errno, "fsmount", "fsmount overlay");
		goto out;
	}
	rc = 0;
out:
	if (fsfd >= 0)
		close(fsfd);
	if (set_fs_ids(0, 0) < 0 && rc == 0) {
		close(mntfd);
		rc = -1;
	}
	if (chdir("/") < 0 && rc == 0) {
		close(mntfd);
		rc = fail(errno, "chdir", "chdir /");
	}
	return rc < 0 ? -1 : mntfd;
}

static int cmd_overlay(struct opts *o)
{
	char *lowers[512];
	int nlower = 0;

	if (check_mapping(o) < 0)
		return -1;
	if (!o->base || !o->lower || !o->upper || !o->work || !o->target)
		return usage_error("rootfs-overlay needs --base, --lower, --upper, --work and --target");
	if (check_layer_path("base", o->base) < 0 || check_layer_path("upper", o->upper) < 0 ||
	    check_layer_path("work", o->work) < 0 || check_path("target", o->target) < 0)
		return -1;
	for (char *save = NULL, *l = o->lower;; l = NULL) {
		char *tok = strtok_r(l, ":", &save);
		if (!tok)
			break;
		if (nlower == (int)(sizeof(lowers) / sizeof(lowers[0])))
			return usage_error("too many --lower layers");
		if (check_layer_path("lower", tok) < 0)
			return -1;
		lowers[nlower++] = tok;
	}
	if (nlower == 0)
		return usage_error("--lower needs at least one directory");

	struct overlay_layers layers = { .base = o->base, .lower_rel = lowers, .nlower = nlower };
	for (int i = 0; i < nlower; i++) {
		const char *rel = below(o->base, lowers[i]);
		if (!rel)
			return usage_error("lower %s is not under base %s", lowers[i], o->base);
		lowers[i] = (char *)rel;
	}
	if (!(layers.upper_rel = below(o->base, o->upper)))
		return usage_error("upper %s is not under base %s", o->upper, o->base);
	if (!(layers.work_rel = below(o->base, o->work)))
		return usage_error("work %s is not under base %s", o->work, o->base);

	struct child_job job = { .host_root = true };
	struct userns_child c = { .pid = -1, .sock = -1, .nsfd = -1 };
	const char *run_dir = getenv("ECI_RUN_DIR");
	if (!run_dir || run_dir[0] != '/')
		run_dir = DEFAULT_RUN_DIR;
	char tmp_dir[PATH_MAX], tmp[PATH_MAX];
	if (snprintf(tmp_dir, sizeof tmp_dir, "%s/tmp", run_dir) >= (int)sizeof tmp_dir ||
	    snprintf(tmp, sizeof tmp, "%s/ovl-XXXXXX", tmp_dir) >= (int)sizeof tmp)
		return usage_error("ECI_RUN_DIR is too long");
	bool tmp_made = false, tmp_mounted = false, tgt_made = false, tgt_mounted = false;
	int treefd = -1, mntfd = -1, rc = -1;

	if (ensure_dir(run_dir, 0711, NULL) < 0 || ensure_dir(tmp_dir, 0700, NULL) < 0)
		goto out;
	if (!mkdtemp(tmp)) {
		fail(errno, "mkdir", "mkdtemp %s", tmp);
		goto out;
	}
	tmp_made = true;
	if (child_start(&c, o, &job) < 0)
		goto out;
	if ((treefd = idmapped_clone(o->base, c.nsfd)) < 0)
		goto out;
	child_stop(&c, false); /* the idmapped mount holds its own reference to the user namespace */
	/* Attached, so that overlay can take private clones of the layers (they must be in our namespace). */
	if (sys_move_mount(treefd, "", AT_FDCWD, tmp, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		fail(errno, "move_mount", "move_mount idmapped %s to %s", o->base, tmp);
		goto out;
	}
	tmp_mounted = true;
	if ((mntfd = build_overlay(&layers, treefd, o)) < 0)
		goto out;
	if (attach(mntfd, o->target, &tgt_made, &tgt_mounted) < 0)
		goto out;
	rc = 0;
out:
	if (mntfd >= 0)
		close(mntfd);
	if (treefd >= 0)
		close(treefd);
	child_stop(&c, rc < 0);
	/* The overlay keeps private clones of its layers: the temporary idmapped mount can go. */
	if (tmp_mounted && sys_umount2(tmp, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
		rc = fail(errno, "umount2", "umount2 %s", tmp);
	if (tmp_made && rmdir(tmp) < 0)
		rc = fail(errno, "rmdir", "rmdir %s", tmp);
	if (rc < 0)
		detach(o->target, tgt_made, tgt_mounted);
	return rc;
}

static int cmd_bind(struct opts *o)
{
	if (check_mapping(o) < 0)
		return -1;
	if (!o->source || !o->target)
		return usage_error("rootfs-bind needs --source and --target");
	if (check_path("source", o->source) < 0 || check_path("target", o->target) < 0)
		return -1;

	struct child_job job = { .host_root = false };
	struct userns_child c = { .pid = -1, .sock = -1, .nsfd = -1 };
	bool tgt_made = false, tgt_mounted = false;
	int treefd = -1, rc = -1;

	if (child_start(&c, o, &job) < 0)
		goto out;
	if ((treefd = idmapped_clone(o->source, c.nsfd)) < 0)
		goto out;
	child_stop(&c, false); /* the mount holds its own reference to the user namespace */
	if (attach(treefd, o->target, &tgt_made, &tgt_mounted) < 0)
		goto out;
	rc = 0;
out:
	if (treefd >= 0)
		close(treefd);
	child_stop(&c, rc < 0);
	if (rc < 0)
		detach(o->target, tgt_made, tgt_mounted);
	return rc;
}

static int cmd_umount(struct opts *o)
{
	if (!o->target)
		return usage_error("umount needs --target");
	if (check_path("target", o->target) < 0)
		return -1;
	if (sys_umount2(o->target, (o->detach ? MNT_DETACH : 0) | UMOUNT_NOFOLLOW) < 0)
		return fail(errno, "umount2", "umount2 %s", o->target);
	return 0;
}

/*
 * host-view: exec native/bin/eci-hostview (beside this program) with the same options. The FUSE server
 * lives in a program of its own, so that libfuse is not in this one; going through here lets the
 * helper server start it with a fork and an exec instead of a spawn from Node.
 */
static int main_host_view(int argc, char **argv)
{
	char self[PATH_MAX], prog[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		fail(errno, "readlink", "readlink /proc/self/exe");
		return report();
	}
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(prog, sizeof(prog), "%s/eci-hostview", self);
	argv[1] = prog;
	fflush(NULL);
	execv(prog, argv + 1);
	(void)argc;
	fail(errno, "execve", "exec %s", prog);
	return report();
}

int main(int argc, char **argv)
{
	enum { O_UID = 1, O_GID, O_SIZE, O_BASE, O_LOWER, O_UPPER, O_WORK, O_TARGET, O_SOURCE, O_DETACH };
	static const struct option longopts[] = {
		{ "uid-host", required_argument, NULL, O_UID },
		{ "gid-host", required_argument, NULL, O_GID },
		{ "size", required_argument, NULL, O_SIZE },
		{ "base", required_argument, NULL, O_BASE },
		{ "lower", required_argument, NULL, O_LOWER },
		{ "upper", required_argument, NULL, O_UPPER },
		{ "work", required_argument, NULL, O_WORK },
		{ "target", required_argument, NULL, O_TARGET },
		{ "source", required_argument, NULL, O_SOURCE },
		{ "detach", no_argument, NULL, O_DETACH },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { 0 };
	int opt;

	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && strcmp(argv[1], "serve") == 0)
		return main_serve(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "perform") == 0)
		return main_perform(argc, argv);
	if (argc >= 2 && (strcmp(argv[1], "mount-as") == 0 || strcmp(argv[1], "umount-as") == 0))
		return main_as(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "chmod-as") == 0)
		return main_chmod_as(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "bind-into") == 0)
		return main_bind_into(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "set-domainname") == 0)
		return main_set_domainname(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "host-view") == 0)
		return main_host_view(argc, argv);
	if (argc < 2 || argv[1][0] == '-') {
		usage_error("usage: eci-helper rootfs-overlay|rootfs-bind|umount --option value ...");
		return report();
	}
	o.cmd = argv[1];
	opterr = 0;
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int r = 0;
		switch (opt) {
		case O_UID: r = parse_u32("uid-host", optarg, &o.uid_host); o.have_uid = true; break;
		case O_GID: r = parse_u32("gid-host", optarg, &o.gid_host); o.have_gid = true; break;
		case O_SIZE: r = parse_u32("size", optarg, &o.size); o.have_size = true; break;
		case O_BASE: o.base = optarg; break;
		case O_LOWER: o.lower = optarg; break;
		case O_UPPER: o.upper = optarg; break;
		case O_WORK: o.work = optarg; break;
		case O_TARGET: o.target = optarg; break;
		case O_SOURCE: o.source = optarg; break;
		case O_DETACH: o.detach = true; break;
		default: r = usage_error("unknown or incomplete option %s", argv[optind - 1]); break;
		}
		if (r < 0)
			return report();
	}
	if (optind < argc) {
		usage_error("unexpected argument %s", argv[optind]);
		return report();
	}
	if (strcmp(o.cmd, "rootfs-overlay") == 0)
		cmd_overlay(&o);
	else if (strcmp(o.cmd, "rootfs-bind") == 0)
		cmd_bind(&o);
	else if (strcmp(o.cmd, "umount") == 0)
		cmd_umount(&o);
	else
		usage_error("unknown subcommand %s", o.cmd);
	return report();
}
