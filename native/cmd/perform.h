/*
 * eci-helper perform PARENT_PID: the performer of one container's vetted mount/umount calls, so that a
 * vetted call costs one fork of a small process, made ahead of time, and no spawn. Part of
 * eci-helper (perform.c, over as-common.c and serve.c); not a program of its own.
 *
 * The manager (native/index.ts) starts one per seccomp notify fd, with fd 3 one end of a unix
 * socketpair, fd 4 that notify fd and, optionally, fd 5 one end of a SOCK_SEQPACKET pair whose other
 * end the manager's watcher thread of that fd holds (the fast path, native/src/seccomp.cc): there each
 * datagram is one request as on fd 3 (run ids with bit 31 set, always PERFORM_ANSWER), read by the
 * spare like those of fd 3; its reply goes to fd 3 like any other. PARENT_PID is the manager's pid. It dies with the manager
 * (PR_SET_PDEATHSIG) and exits once the manager shuts fd 3 (it does with the notify fd).
 *
 * Frames on fd 3 (integers little-endian), after one 'R' (ready) frame from the performer:
 *   request  (manager -> spare): u32 len (of what follows), u32 id, u8 flags, u64 notification id,
 *            NUL-terminated strings: argv[1..] of a mount-as or umount-as run (with --notif-fd 4
 *            --notif-id ID). Flag 1 (PERFORM_ANSWER): the caller is answered here, not by the manager;
 *   reply    (performer -> manager): u32 len, u32 id, u8 kind, then
 *            'D' i32 exit code, i32 signal (0: exited), u32 stdout length, stdout (serve.h's 'D' frame), or
 *            'A' as 'D', with u64 when answered (CLOCK_MONOTONIC us), i32 the errno answered (0: the
 *              call returned 0), i32 the answer's own errno (0: sent) between the stdout length and stdout, or
 *            'F' reason: nothing was run (the manager runs the call another way).
 *
 * Who does what. Every hand-over between processes is a wake-up, ~40-50 us each on the machines
 * measured (bench mountlat), so a call's path has as few as can be:
 *   - fast-path requests (fd 5) go to the performer's lane: a child made ahead of time with CLONE_VM,
 *     sharing its memory (warm), waits on fd 5 itself and runs the request, instead of a forked
 *     spare (perform.c, "The lane": the lock on the shared memory, and what happens when a run
 *     stalls or dies); it answers the caller, and the performer reports the outcome and makes the
 *     next waiting child. ECI_PERFORM_LANE=0: spares take fd 5's requests too, as below;
 *   - the spare, a child forked ahead of time (perform_spare_child), reads the next request itself,
 *     straight from fd 3: the performer never reads fd 3 while a spare waits (so exactly one
 *     process reads it at a time). The spare closes fd 3 once it has its request (the manager's
 *     socket never comes along into the container), tells the performer it started ('S' note, then
 *     a signal, whose wake-up does not pull the performer onto this spare's core: perform_started),
 *     runs main() with the request's argv (stdout: a shared page), and reports ('D' note);
 *   - with PERFORM_ANSWER, the spare answers the caller itself when it ran in place (mount-as's
 *     runs but a new proc mount): the answer is the one the manager would give
 *     (actors/notify-feed.ts): 0, the mount/umount2's own errno, or EPERM for anything else. For
 *     that the notify fd stays open in the spare inside P's namespaces until the answer (as_run
 *     otherwise closes it on the way in). Nothing in the container can take it from there: the spare
 *     is not dumpable and its memory belongs to the host's user namespace, so ptrace,
 *     pidfd_getfd and /proc/PID/fd all need CAP_SYS_PTRACE over the host;
 *   - the performer forks spares (the next one as soon as a run starts), tells the manager each outcome, answers the caller where the
 *     spare did not (a run not in place, one that died, or one still going after
 *     PERFORM_TIMEOUT_MS, which is killed; either may have done something: EPERM, fail closed).
 * The manager asks for PERFORM_ANSWER only where nothing of its own must happen between the call
 * and the answer. Requests are taken in order; the next spare is forked as soon as a run starts, so
 * up to PERFORM_MAX_RUNS runs (of a container's several threads) may go on at once, each judged on
 * its own fd; a container's calls never wait for another container's (each has its own performer). The performer itself stays in
 * the host's namespaces with host root's credentials, and is not dumpable either.
 */
#ifndef ECI_PERFORM_H
#define ECI_PERFORM_H

#include "helper.h"

int main_perform(int argc, char **argv);

#endif
