/*
 * eci-helper serve PARENT_PID: a long-lived, single-threaded runner of eci-helper subcommands, so that
 * the manager does not pay for a process spawn per vetted mount/umount/chmod. Part of eci-helper
 * (serve.c); not a program of its own.
 *
 * The manager (native/index.ts) starts it with fd 3 one end of a unix socketpair; PARENT_PID is the
 * manager's pid. It dies with the manager (PR_SET_PDEATHSIG) and exits on EOF of fd 3.
 *
 * Request (manager -> serve), all integers little-endian:
 *   u32 len (of what follows), u32 id, i32 fd (the manager's fd to put at fd 3 of the run, or -1),
 *   u32 nargs, u32 nenv, then 1 + nargs + nenv NUL-terminated strings: cwd, argv[1..], environ.
 * The fd is taken from the manager with pidfd_getfd (Node cannot send SCM_RIGHTS of an arbitrary fd).
 *
 * Replies (serve -> manager): u32 len, u32 id, u8 kind, then
 *   'S': the run is forked (from here on it may have done something: never run it again);
 *   'F' reason: nothing was run (the manager runs the helper itself instead);
 *   'D' i32 exit code, i32 signal (0: exited), u32 stdout length, stdout, stderr: the run is over.
 *
 * Each run is a fresh fork of this single-threaded process (setns into a user namespace needs that)
 * that looks like a freshly spawned eci-helper: signal dispositions default and mask empty, fd 0
 * /dev/null, fds 1 and 2 pipes back here, fd 3 the passed fd if any, no other fd, the request's cwd
 * and environment. It then runs main() with the request's argv and exits with its status. A run still
 * going after SERVE_TIMEOUT_MS is killed (SIGKILL), as the manager does with a spawned helper.
 */
#ifndef ECI_SERVE_H
#define ECI_SERVE_H

#include "helper.h"

int main_serve(int argc, char **argv);
uint32_t serve_get32(const unsigned char *p);
void serve_pack32(unsigned char *dst, const uint32_t *v, int n);
void serve_close_from(int first);
int serve_child_of(int argc, char **argv, pid_t *parent);
void serve_send_frame(int fd, uint32_t id, char kind, const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen);

#endif
