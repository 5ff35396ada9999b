/*
 * caller-path: a path argument of a vetted call resolved as the *caller* sees it, where that differs
 * from what the helper acting for it sees. Part of eci-helper (caller-path.c); used by mount-as.
 *
 * The helper enters the caller's namespaces, root and cwd (as-common.h), so relative paths and the
 * caller's own /proc already resolve as for the caller, but /proc/self and /proc/thread-self name
 * whoever looks them up: the helper (not even present in the container's pid namespace when it runs
 * in place: ENOENT), never the caller. systemd and runc mount onto /proc/self/fd/N. So:
 *   - caller_path_pin (on the host, in as_run's prepare hook, before the notification is re-checked):
 *     for /proc/self/<link>... and /proc/thread-self/<link>..., where <link> is one of the caller's
 *     magic links it may follow itself (fd/N, ns/X, cwd, root, exe), opens that link through the host's
 *     /proc/<host tgid> (self) or /proc/<host tid> (thread-self) with O_PATH: the object the caller's
 *     link points to, which nothing in the container can redirect (its /proc may be mounted over).
 *     Any other /proc/self/X is rewritten to /proc/<the caller's pid in its own pid namespace>/X;
 *   - caller_path_open (once the helper is the caller, chrooted into its root): opens what follows
 *     the link relative to the pinned fd, so the rest (symlinks, "..") resolves in the caller's
 *     root, as the kernel would resolve it for the caller; other paths are opened as given, and so
 *     is every path when the caller's /proc is not a procfs (a tmpfs mounted over it has a plain "self").
 * Checks made on the opened object (mount ids, read-only) are unchanged: a /proc/self/fd/N path
 * reaches the same object, and is judged the same way, as its plain path.
 */
#ifndef ECI_CALLER_PATH_H
#define ECI_CALLER_PATH_H

#include "helper.h"

struct caller_path {
	int fd;             /* the pinned magic link, or -1 */
	const char *rest;   /* what follows it (relative to fd), when fd >= 0 */
	char rewritten[PATH_MAX]; /* the /proc/<pid>/... form, when not empty and fd < 0 */
};
#define CALLER_PATH_INIT { .fd = -1, .rest = NULL, .rewritten = "" }

/* 0, or -1 with the failure recorded. procfd: the host's /proc/<caller tid> (O_PATH). */
int caller_path_pin(struct caller_path *c, int procfd, const char *path);
/* An O_PATH fd for path as the caller sees it (pinned by caller_path_pin), or -1 with errno set. */
int caller_path_open(const struct caller_path *c, const char *path);
void caller_path_close(struct caller_path *c);

#endif
