/* caller-path: see caller-path.h. */
#include "helper.h"
#include "as-common.h"
#include "caller-path.h"
#include <sys/vfs.h>
#include <linux/magic.h>

/* The path after "/proc/self" or "/proc/thread-self" (any run of slashes between), or NULL. */
static const char *after_proc_self(const char *p, bool *thread)
{
	while (*p == '/')
		p++;
	if (strncmp(p, "proc/", 5) != 0)
		return NULL;
	p += 5;
	while (*p == '/')
		p++;
	size_t n = strcspn(p, "/");
	if (n == 4 && strncmp(p, "self", 4) == 0)
		*thread = false;
	else if (n == 11 && strncmp(p, "thread-self", 11) == 0)
		*thread = true;
	else
		return NULL;
	return p + n;
}

/* The length of the magic link at the start of rel ("fd/3", "cwd"...), 0 when it does not start with one. */
static size_t magic_link_len(const char *rel)
{
	size_t n = strcspn(rel, "/");
	if ((n == 3 && (strncmp(rel, "cwd", 3) == 0 || strncmp(rel, "exe", 3) == 0)) || (n == 4 && strncmp(rel, "root", 4) == 0))
		return n;
	bool fd = n == 2 && strncmp(rel, "fd", 2) == 0;
	/* Not map_files: the caller may not follow those (CAP_CHECKPOINT_RESTORE over the host), so they are rewritten. */
	bool two = fd || (n == 2 && strncmp(rel, "ns", 2) == 0);
	if (!two || rel[n] != '/')
		return 0;
	const char *name = rel + n + 1; /* one slash: "fd//3" is left to the rewrite */
	size_t m = strcspn(name, "/");
	if (m == 0 || (fd && strspn(name, "0123456789") != m))
		return 0;
	return n + 1 + m;
}

/* The last number of a status line ("NSpid:\t9\t1": the innermost pid namespace's), or -1. */
static long status_last(const char *status, const char *key)
{
	unsigned long v[32];
	int n = as_status_numbers(status, key, v, 32, 10);
	return n > 0 ? (long)v[n - 1] : -1;
}

int caller_path_pin(struct caller_path *c, int procfd, const char *path)
{
	bool thread;
	const char *rel = after_proc_self(path, &thread);
	if (!rel)
		return 0;
	static char status[16384];
	if (as_read_file(procfd, "status", status, sizeof status) < 0)
		return -1;
	while (*rel == '/')
		rel++;
	size_t link = magic_link_len(rel);
	if (link == 0) {
		/* Not a magic link: the same file of the caller's own /proc/<pid>, in its pid namespace. */
		long tgid = status_last(status, "NStgid:"), tid = status_last(status, "NSpid:");
		if (tgid <= 0 || tid <= 0)
			return fail(EPROTO, "read", "no NStgid:/NSpid: in /proc/<pid>/status");
		int n = thread ? snprintf(c->rewritten, sizeof c->rewritten, "/proc/%ld/task/%ld%s%s", tgid, tid, *rel ? "/" : "", rel)
			       : snprintf(c->rewritten, sizeof c->rewritten, "/proc/%ld%s%s", tgid, *rel ? "/" : "", rel);
		if (n < 0 || (size_t)n >= sizeof c->rewritten)
			return fail(ENAMETOOLONG, "mount", "%s", path);
		return 0;
	}
	/* self: the thread group's links (its leader's fd table); thread-self: the calling thread's. */
	int dirfd = procfd;
	if (!thread) {
		long tgid = status_last(status, "Tgid:");
		char dir[64];
		snprintf(dir, sizeof dir, "/proc/%ld", tgid);
		dirfd = tgid > 0 ? open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
		if (dirfd < 0)
			return fail(tgid > 0 ? errno : EPROTO, "open", "open the caller's %s", tgid > 0 ? dir : "Tgid");
	}
	char name[PATH_MAX];
	snprintf(name, sizeof name, "%.*s", (int)link, rel);
	c->fd = openat(dirfd, name, O_PATH | O_CLOEXEC);
	int err = errno;
	if (dirfd != procfd)
		close(dirfd);
	if (c->fd < 0)
		return fail(err, "mount", "%s", path);
	c->rest = rel + link;
	while (*c->rest == '/')
		c->rest++;
	return 0;
}

/* Whether the caller's /proc (in its root, where this process now is) is a procfs: only there does self mean the caller. */
static bool caller_proc_is_procfs(void)
{
	int fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct statfs st;
	bool yes = fd >= 0 && fstatfs(fd, &st) == 0 && st.f_type == PROC_SUPER_MAGIC;
	if (fd >= 0)
		close(fd);
	return yes;
}

int caller_path_open(const struct caller_path *c, const char *path)
{
	if ((c->fd >= 0 || c->rewritten[0]) && !caller_proc_is_procfs())
		return open(path, O_PATH | O_CLOEXEC); /* a tmpfs or the like over /proc: its self is a plain name */
	if (c->fd >= 0)
		return *c->rest ? openat(c->fd, c->rest, O_PATH | O_CLOEXEC) : fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
	return open(c->rewritten[0] ? c->rewritten : path, O_PATH | O_CLOEXEC);
}

void caller_path_close(struct caller_path *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
