/* perform: see perform.h. */
#include "helper.h"
#include <time.h>
#include "as-common.h"
#include "serve.h"
#include "perform.h"
#include "spare-timing.h"
#include "sched-slice.h"
#include <sys/mman.h>
#include <sys/resource.h>
#include <linux/futex.h>

/* Whether fd 5 (the fast path's socket) was open at start (the fd layout), and is still read. */
static bool perform_native, perform_native_open;
/*
 * Fast-path requests (fd 5) are taken by the performer's lane (see "The lane" below), not by a forked
 * spare; spares then read fd 3 only. ECI_PERFORM_LANE=0: spares read fd 5 too, as before.
 */
static bool perform_lane;

#define PERFORM_FD 3
#define PERFORM_NOTIFY_FD 4
#define PERFORM_NATIVE_FD 5 /* the fast path's requests (SOCK_SEQPACKET from the manager's watcher threads), if open */
/* In a spare: its note pipe to the performer, next after the fds above. */
#define PERFORM_DONE_FD (perform_native ? PERFORM_NATIVE_FD + 1 : PERFORM_NATIVE_FD)
/* The spare's wake-up of the performer for its 'S' note (see perform_started). */
#define PERFORM_START_SIG SIGUSR1
#define PERFORM_TIMEOUT_MS 60000
#ifndef PERFORM_NICE
#define PERFORM_NICE -5
#endif
#define PERFORM_MAX_FRAME (1u << 20)
#define PERFORM_OUT 8192
#define PERFORM_ANSWER 1u
#define PERFORM_HEAD 13 /* u32 id, u8 flags, u64 notification id */

/* A spare's note to the performer, one write each (smaller than PIPE_BUF, so never torn). */
struct perform_note {
	char kind;        /* 'S' started, 'D' done, 'F' not run */
	uint8_t flags;    /* the request's */
	uint8_t answered; /* 'D': the spare answered the caller */
	uint32_t id;
	uint64_t notif_id;
	int32_t rc, err;              /* 'D': main()'s exit code; its failure's errno (0: none) */
	int32_t answer_err, send_err; /* answered: the errno answered (0: returned 0); the ioctl's own errno */
	uint64_t answered_us;
	char syscall[64]; /* 'D': the failure's syscall; 'F': why nothing was run */
	uint8_t learned;          /* 'D': userns holds the maps of the caller's user namespace, which the spare entered */
	struct as_userns userns;
};

static uint64_t perform_now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Reads exactly n bytes of fd. true: done; false: EOF or error. */
static bool perform_read(int fd, void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

/* One reply frame; the manager being gone ends the performer. */
static void perform_reply(uint32_t id, char kind, const void *a, size_t alen, const void *b, size_t blen)
{
	serve_send_frame(PERFORM_FD, id, kind, a, alen, b, blen, NULL, 0);
}

static void perform_fallback(uint32_t id, const char *why)
{
	perform_reply(id, 'F', why, strlen(why), NULL, 0);
}

/* The errno the manager would answer for a run that reported (0: the call returned 0). */
static int perform_answer_errno(int32_t rc, int32_t err, const char *syscall)
{
	if (rc == 0 && err == 0)
		return 0;
	if (err > 0 && (strcmp(syscall, "mount") == 0 || strcmp(syscall, "umount2") == 0))
		return err;
	return EPERM;
}

/* SECCOMP_IOCTL_NOTIF_SEND on the notify fd; 0 or the ioctl's errno (ENOENT: the caller left the syscall). */
static int perform_send(uint64_t notif_id, int err)
{
	struct seccomp_notif_resp resp = { .id = notif_id, .val = 0, .error = err ? -err : 0, .flags = 0 };
	return ioctl(PERFORM_NOTIFY_FD, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 ? errno : 0;
}

static void perform_note(const struct perform_note *n)
{
	if (write(PERFORM_DONE_FD, n, sizeof *n) != (ssize_t)sizeof *n)
		_exit(127);
}

/*
 * The spare's 'S' note. The performer does not poll a waiting spare's note pipe for input (only for
 * its end), so that write wakes nobody; a signal then wakes the performer, which forks the next
 * spare. A pipe's wake-up is a synchronous one: it pulls the performer onto this spare's core,
 * where its fork ran before this run's call (+51 us p50 on the spare's path to its syscall, issue
 * 17); a signal's is not, so the fork runs beside the call where a core allows.
 */
static void perform_started(pid_t performer, const struct perform_note *n)
{
	perform_note(n);
	if (kill(performer, PERFORM_START_SIG) < 0)
		_exit(127);
}

/* Checks a request's strings (len bytes at p) and splits them into args[1..]; NULL or why not. */
static const char *perform_args(char *p, uint32_t len, char *argv0, char **args, int max, int *argc)
{
	char *end = p + len;
	int n = 0;
	args[n++] = argv0;
	while (p < end) {
		char *z = memchr(p, '\0', (size_t)(end - p));
		if (!z)
			return "truncated request";
		if (n >= max - 1)
			return "too many arguments";
		args[n++] = p;
		p = z + 1;
	}
	args[n] = NULL;
	if (n < 2 || (strcmp(args[1], "mount-as") != 0 && strcmp(args[1], "umount-as") != 0))
		return "the performer runs mount-as and umount-as only";
	*argc = n;
	return NULL;
}

/* One fast-path request: a whole datagram of fd 5 (u32 length, then the frame); its length or 0 (none, try again). */
static uint32_t perform_native_request(unsigned char *frame)
{
	unsigned char lenb[4];
	struct iovec iov[2] = { { lenb, 4 }, { frame, PERFORM_MAX_FRAME } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	ssize_t n = recvmsg(PERFORM_NATIVE_FD, &mh, MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 4 + PERFORM_HEAD || (mh.msg_flags & MSG_TRUNC) || serve_get32(lenb) != (uint32_t)n - 4)
		return UINT32_MAX; /* closed, or not our protocol */
	return (uint32_t)n - 4;
}

/*
 * The spare's next request, from fd 3 (the manager's event loop) or fd 5 (its watcher threads, the
 * fast path): whichever comes first; the spare is the only reader of both while it waits.
 */
static uint32_t perform_spare_request(unsigned char *frame)
{
	struct pollfd p[2] = { { .fd = PERFORM_FD, .events = POLLIN }, { .fd = perform_native_open && !perform_lane ? PERFORM_NATIVE_FD : -1, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(126);
		}
		if (p[0].revents) {
			unsigned char lenb[4];
			if (!perform_read(PERFORM_FD, lenb, 4))
				_exit(0); /* the manager is done or gone */
			uint32_t len = serve_get32(lenb);
			if (len < PERFORM_HEAD || len > PERFORM_MAX_FRAME || !perform_read(PERFORM_FD, frame, len))
				_exit(126); /* not our protocol, or torn: the performer gives up (no 'S') */
			return len;
		}
		if (p[1].revents & POLLIN) {
			uint32_t len = perform_native_request(frame);
			if (len == UINT32_MAX)
				p[1].fd = -1; /* the manager closed the fast path: fd 3 only */
			else if (len)
				return len;
		} else if (p[1].revents) {
			p[1].fd = -1;
		}
	}
}

#ifdef ECI_SPARE_TIMING
struct spare_timing spare_timing = { .fd = -1 };

/* One line of the run's marks (spare-timing.h), after its answer. */
static void perform_timing_line(int rc)
{
	struct rusage ru;
	char line[1024];
	int k = 0;
	getrusage(RUSAGE_SELF, &ru);
	const struct timespec *t0 = &spare_timing.at[0];
	for (int i = 0; i < spare_timing.n && k < (int)sizeof line - 64; i++) {
		k += snprintf(line + k, sizeof line - (size_t)k, "%s=%lld", spare_timing.label[i],
			      (long long)(spare_timing.at[i].tv_sec - t0->tv_sec) * 1000000000LL + (spare_timing.at[i].tv_nsec - t0->tv_nsec));
#ifdef ECI_SPARE_FAULTS
		k += snprintf(line + k, sizeof line - (size_t)k, ",%ld", spare_timing.flt[i] - spare_timing.minflt);
#endif
		k += snprintf(line + k, sizeof line - (size_t)k, " ");
	}
	k += snprintf(line + k, sizeof line - (size_t)k, "minflt=%ld rc=%d\n", ru.ru_minflt - spare_timing.minflt, rc);
	if (spare_timing.fd >= 0 && write(spare_timing.fd, line, (size_t)k) < 0)
		errno = 0;
}

#ifdef ECI_SPARE_FAULTS
/* Which pages a run faulted: /proc/self/pagemap of every mapping, before the request and after the answer. */
#define SF_MAX_VMAS 48
#define SF_MAX_PAGES 16384
struct sf_snap {
	int n;
	unsigned used;
	struct { unsigned long lo, hi; unsigned at; char name[40]; } v[SF_MAX_VMAS];
	uint64_t pm[SF_MAX_PAGES];
};
static struct sf_snap sf_before, sf_after;
/* Opened before the request: after its setns, /proc/self may not be this process. */
static int sf_maps = -1, sf_pagemap = -1, sf_log = -1;

static void sf_take(struct sf_snap *s)
{
	static char maps[16384];
	int fd = sf_maps, pm = sf_pagemap;
	ssize_t len = 0, r;
	while (fd >= 0 && len < (ssize_t)sizeof maps - 1 && (r = pread(fd, maps + len, sizeof maps - 1 - (size_t)len, len)) > 0)
		len += r;
	maps[len] = '\0';
	s->n = 0;
	s->used = 0;
	for (char *l = maps; *l && s->n < SF_MAX_VMAS;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = '\0';
		unsigned long lo, hi;
		char perms[8], path[256] = "";
		if (sscanf(l, "%lx-%lx %7s %*s %*s %*s %255s", &lo, &hi, perms, path) >= 3) {
			unsigned np = (unsigned)((hi - lo) / 4096);
			if (s->used + np <= SF_MAX_PAGES && strcmp(path, "[vsyscall]") != 0) {
				const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : (*path ? path : "anon");
				s->v[s->n].lo = lo;
				s->v[s->n].hi = hi;
				s->v[s->n].at = s->used;
				snprintf(s->v[s->n].name, sizeof s->v[s->n].name, "%s:%.4s", base, perms);
				if (pread(pm, &s->pm[s->used], np * 8, (off_t)(lo / 4096) * 8) != (ssize_t)(np * 8))
					memset(&s->pm[s->used], 0, np * 8);
				s->used += np;
				s->n++;
			}
		}
		l = nl ? nl + 1 : l + strlen(l);
	}
}

/* One line: per mapping, the pages present after and not before, and those whose frame changed (copied on write). */
static void sf_line(void)
{
	char line[2048];
	int k = 0;
	sf_take(&sf_after);
	for (int i = 0; i < sf_after.n && k < (int)sizeof line - 80; i++) {
		int b = -1;
		for (int j = 0; j < sf_before.n; j++)
			if (sf_before.v[j].lo == sf_after.v[i].lo)
				b = j;
		unsigned fresh = 0, copied = 0;
		for (unsigned long a = sf_after.v[i].lo; a < sf_after.v[i].hi; a += 4096) {
			uint64_t pa = sf_after.pm[sf_after.v[i].at + (a - sf_after.v[i].lo) / 4096], pb = 0;
			if (b >= 0 && a < sf_before.v[b].hi)
				pb = sf_before.pm[sf_before.v[b].at + (a - sf_before.v[b].lo) / 4096];
			bool in_a = (pa >> 63) & 1, in_b = (pb >> 63) & 1;
			if (in_a && !in_b)
				fresh++;
			else if (in_a && in_b && (pa & ((1ULL << 55) - 1)) != (pb & ((1ULL << 55) - 1)))
				copied++;
		}
		if (fresh || copied)
			k += snprintf(line + k, sizeof line - (size_t)k, "%s@%lx=%u/%u ", sf_after.v[i].name, sf_after.v[i].lo, fresh, copied);
	}
	line[k++] = '\n';
	if (sf_log >= 0 && write(sf_log, line, (size_t)k) < 0)
		errno = 0;
}
#endif
#endif

/* Answers the caller, once, where this spare is the one to (its run's outcome: rc, err, syscall). */
static void perform_answer(struct perform_note *n, int32_t rc, int32_t err, const char *syscall)
{
	if (!as_keep_notif || as_notif_closed || n->answered)
		return;
	n->answer_err = perform_answer_errno(rc, err, syscall);
	n->send_err = perform_send(n->notif_id, n->answer_err);
	n->answered_us = perform_now_us();
	n->answered = 1;
	spare_mark("answered");
}

/* The note of this spare's run, for perform_answer_now. */
static struct perform_note *answer_note;

/*
 * as_outcome_final in a spare that answers the caller: the answer as the end of the run would give it
 * (the command's rc is 0 exactly when no failure was recorded), sent as soon as the outcome is final.
 */
static void perform_answer_now(void)
{
	if (answer_note)
		perform_answer(answer_note, failure.set ? 1 : 0, failure.set ? failure.err : 0, failure.set ? failure.syscall : "");
}

/* A request's 'S' note, from its frame's head (u32 id, u8 flags, u64 notification id). */
static struct perform_note perform_request_note(const unsigned char *frame)
{
	struct perform_note n = { .kind = 'S', .flags = frame[4], .id = serve_get32(frame) };
	n.notif_id = (uint64_t)serve_get32(frame + 5) | ((uint64_t)serve_get32(frame + 9) << 32);
	return n;
}

/*
 * The run state in this memory, cleared before a run: a spare forked while a lane run was under way in
 * the performer's memory inherits that run's, and the lane's runs share it.
 */
static void perform_run_reset(void)
{
	memset(&failure, 0, sizeof failure);
	as_keep_notif = as_notif_closed = as_learned = false;
	answer_note = NULL;
	as_outcome_final = NULL;
}

/* Test-only, inert unless set: a run whose --target is $ECI_TEST_SPARE_STALL stops here until killed. */
static void perform_test_stall(int argc, char **args)
{
	const char *stall = getenv("ECI_TEST_SPARE_STALL");
	for (int i = 2; stall && *stall && i + 1 < argc; i++)
		if (strcmp(args[i], "--target") == 0 && strcmp(args[i + 1], stall) == 0)
			for (;;)
				pause();
}

/* A run's outcome into its note: main()'s exit code, its failure, and the user namespace it learned. */
static void perform_note_outcome(struct perform_note *n, int rc)
{
	n->rc = rc;
	if (failure.set) {
		n->err = failure.err;
		memcpy(n->syscall, failure.syscall, sizeof n->syscall);
		n->syscall[sizeof n->syscall - 1] = '\0';
	}
	if (as_learned) {
		n->learned = 1;
		n->userns = as_learned_userns;
	}
}

/*
 * The spare: waits for the next request on fd 3 (or fd 5) and runs it; see the top of this file.
 * Its fds: 0-2, 3 and 5 with the fast path (until it has its request), 4 (the notify fd), then its note pipe.
 */
static void perform_spare_child(pid_t performer, int note_w, const sigset_t *mask, char *argv0, char *out, FILE *out_file, unsigned char *frame)
{
	/* It shares fd 3 with the performer: a spare left behind would keep the manager's socket open and take requests nobody watches. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != performer)
		_exit(127);
	if (dup2(note_w, PERFORM_DONE_FD) < 0)
		_exit(127);
	serve_close_from(PERFORM_DONE_FD + 1);
	/* The performer's handler and mask for PERFORM_START_SIG are not the run's. */
	if (signal(PERFORM_START_SIG, SIG_DFL) == SIG_ERR || sigprocmask(SIG_SETMASK, mask, NULL) < 0)
		_exit(127);
	/*
	 * No warm-up (touching the stack, stdio and heap pages a run writes, so their copy-on-write faults
	 * come before the request): it made the spare ready ~130 us later, mostly after the request had
	 * come, and its CPU competed with the call's path. Without it, mount+umount p50 was ~110 us lower
	 * (bench mountlat, 5 alternating pairs: 838 vs 948 us).
	 */
#ifdef ECI_SPARE_TIMING
	spare_timing.fd = open(ECI_SPARE_TIMING_LOG, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
#ifdef ECI_SPARE_FAULTS
	sf_maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	sf_pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	sf_log = open(ECI_SPARE_PAGES_LOG, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	sf_take(&sf_before);
	sf_take(&sf_after); /* its own pages (the snapshot's), before the request */
	sf_take(&sf_before);
#endif
#endif
	uint32_t len = perform_spare_request(frame);
#ifdef ECI_SPARE_TIMING
	struct rusage ru0;
	spare_mark("request");
	getrusage(RUSAGE_SELF, &ru0);
	spare_timing.minflt = ru0.ru_minflt;
#endif
	close(PERFORM_FD);
	if (perform_native)
		close(PERFORM_NATIVE_FD);
	spare_mark("closed");
	perform_run_reset();
	struct perform_note n = perform_request_note(frame);
	perform_started(performer, &n);
	spare_mark("noted");
	char *args[128];
	int argc = 0;
	const char *why = perform_args((char *)frame + PERFORM_HEAD, len - PERFORM_HEAD, argv0, args, 128, &argc);
	if (why) {
		n.kind = 'F';
		snprintf(n.syscall, sizeof n.syscall, "%s", why);
		perform_note(&n);
		_exit(0);
	}
	perform_test_stall(argc, args);
	spare_mark("args");
	/*
	 * The run's output stream: the one the performer made for this slot (never written there, so
	 * it starts empty here); made now only if that failed. An fmemopen per run cost ~11 us of the
	 * call's path: its allocation and stdio's list are copies on write after fork (issue 17).
	 */
	FILE *f = out_file ? out_file : fmemopen(out, PERFORM_OUT - 1, "w");
	if (!f)
		_exit(127);
	stdout = f;
	as_keep_notif = (n.flags & PERFORM_ANSWER) != 0;
	answer_note = &n;
	as_outcome_final = perform_answer_now;
	spare_mark("main");
	int rc = main(argc, args);
	fflush(f);
	perform_note_outcome(&n, rc);
	perform_answer(&n, n.rc, n.err, n.syscall); /* unless as_outcome_final did */
#ifdef ECI_SPARE_TIMING
	perform_timing_line(n.rc);
#ifdef ECI_SPARE_FAULTS
	sf_line();
#endif
#endif
	n.kind = 'D';
	perform_note(&n);
	_exit(n.rc);
}

/*
 * Runs in flight at once, besides the spare waiting. The next spare is forked as soon as a run starts
 * ('S'), not when it ends: a caller's next call then finds a spare ready instead of waiting for the
 * performer to wake, fork, and for the new spare's first run (on a busy host, each of those waits for
 * a core: issue 17). So a container's calls from several threads may run side by side, each judged
 * on its own fd as before. The cap bounds the processes one container's calls can make at once
 * (pacing bounds their rate); at the cap, the next request waits in its socket until a run ends.
 */
#define PERFORM_MAX_RUNS 4

/* A spare (no 'S' yet) or a run: its process, its note pipe, its output page (a slot of perform_out). */
struct perform_child {
	pid_t pid;
	int note_r;
	int slot;
	struct perform_note started; /* a run's 'S' */
	uint64_t deadline;           /* a run's, ms */
};

/* PERFORM_MAX_RUNS + 1 output pages shared with the children (MAP_SHARED): one per spare or run. */
static char *perform_out;
static bool perform_slot_used[PERFORM_MAX_RUNS + 1];

/* Each page's output stream, made once (NULL where fmemopen failed: the run makes its own). */
static FILE *perform_out_file[PERFORM_MAX_RUNS + 1];

static char *perform_page(const struct perform_child *c)
{
	return perform_out + (size_t)c->slot * PERFORM_OUT;
}

/* Forks the next spare (its output page cleared first); pid -1 when that failed. */
static sigset_t perform_mask; /* the signal mask the performer started with (and its runs have) */

static struct perform_child perform_fork_spare(char *argv0, unsigned char *frame)
{
	struct perform_child sp = { .pid = -1, .note_r = -1, .slot = -1 };
	for (int i = 0; i <= PERFORM_MAX_RUNS && sp.slot < 0; i++)
		if (!perform_slot_used[i])
			sp.slot = i;
	int note[2];
	if (sp.slot < 0 || pipe2(note, O_CLOEXEC) < 0)
		return sp;
	memset(perform_page(&sp), 0, PERFORM_OUT);
	pid_t self = getpid();
	pid_t pid = fork();
	if (pid == 0)
		perform_spare_child(self, note[1], &perform_mask, argv0, perform_page(&sp), perform_out_file[sp.slot], frame);
	close(note[1]);
	if (pid < 0) {
		close(note[0]);
		return sp;
	}
	perform_slot_used[sp.slot] = true;
	sp.pid = pid;
	sp.note_r = note[0];
	return sp;
}

/* Finished runs exit on their own; they are collected here, without waiting (a full list waits for its oldest). */
static pid_t perform_finished[16];
static int perform_nfinished;

static void perform_collect(pid_t add)
{
	int k = 0;
	for (int i = 0; i < perform_nfinished; i++)
		if (waitpid(perform_finished[i], NULL, WNOHANG) == 0)
			perform_finished[k++] = perform_finished[i];
	perform_nfinished = k;
	if (add <= 0)
		return;
	if (perform_nfinished == (int)(sizeof perform_finished / sizeof perform_finished[0])) {
		while (waitpid(perform_finished[0], NULL, 0) < 0 && errno == EINTR)
			;
		memmove(perform_finished, perform_finished + 1, sizeof perform_finished - sizeof perform_finished[0]);
		perform_nfinished--;
	}
	perform_finished[perform_nfinished++] = add;
}

/* Ends a child (its pipe, its page): killed if not done, and reaped; returns its wait status. */
static int perform_end(struct perform_child *c)
{
	int status = 0;
	kill(c->pid, SIGKILL);
	while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
		;
	close(c->note_r);
	perform_slot_used[c->slot] = false;
	c->pid = c->note_r = c->slot = -1;
	return status;
}

/* Ends a run that is not done (timed out, or gone); returns its signal. */
static int perform_kill(struct perform_child *c)
{
	int status = perform_end(c);
	return WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
}

/*
 * Tells the manager how run `s` ('S' note) went: d is its 'D' note, or NULL when it died or timed out
 * (signal sig). Answers the caller first where it asked and the spare did not.
 */
static void perform_finish(const struct perform_note *s, const struct perform_note *d, int sig, const char *out)
{
	bool answer = (s->flags & PERFORM_ANSWER) != 0;
	struct perform_note a = { 0 };
	if (d && d->answered) {
		a = *d;
	} else if (answer) {
		a.answer_err = d ? perform_answer_errno(d->rc, d->err, d->syscall) : EPERM;
		a.send_err = perform_send(s->notif_id, a.answer_err);
		a.answered_us = perform_now_us();
	}
	uint32_t olen = d ? (uint32_t)strnlen(out, PERFORM_OUT - 1) : 0;
	uint32_t v[7] = { d ? (uint32_t)d->rc : (uint32_t)-1, d ? 0 : (uint32_t)sig, olen, (uint32_t)a.answered_us,
			  (uint32_t)(a.answered_us >> 32), (uint32_t)a.answer_err, (uint32_t)a.send_err };
	unsigned char head[28];
	int nv = answer ? 7 : 3;
	serve_pack32(head, v, nv);
	perform_reply(s->id, answer ? 'A' : 'D', head, (size_t)nv * 4, out, olen);
}

/*
 * The user namespaces whose maps the spares need not read (as_known_userns): each held open here, so
 * its ns/user inode stays its own. A container's calls mostly come from one or two.
 */
#define PERFORM_KNOWN_USERNS 4
static struct as_userns perform_known[PERFORM_KNOWN_USERNS];

/*
 * What spare `pid` learned of its caller's user namespace (its 'D' note). The spare entered that
 * namespace and is not reaped yet (its pid cannot be another process's), so its ns/user is the
 * namespace itself: kept if its inode is the one the maps were read for. Later spares inherit it.
 */
static void perform_learn(pid_t pid, const struct as_userns *u)
{
	if (as_nknown_userns == PERFORM_KNOWN_USERNS)
		return;
	for (int i = 0; i < as_nknown_userns; i++)
		if (perform_known[i].dev == u->dev && perform_known[i].ino == u->ino)
			return;
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_dev != u->dev || (uint64_t)st.st_ino != u->ino) {
		close(fd);
		return;
	}
	perform_known[as_nknown_userns++] = *u; /* fd stays open for good: the pin */
}

/* Run i is over (reported or ended): its slot in runs[] goes to the last one. */
static void perform_drop(struct perform_child *runs, int *nruns, int i)
{
	runs[i] = runs[--*nruns];
}

/* A run's note (or its end): reports it to the manager and ends it; false while it goes on. */
static bool perform_run_event(struct perform_child *r)
{
	struct perform_note n;
	ssize_t k;
	do
		k = read(r->note_r, &n, sizeof n);
	while (k < 0 && errno == EINTR);
	if (k == (ssize_t)sizeof n && n.id == r->started.id && (n.kind == 'D' || n.kind == 'F')) {
		n.syscall[sizeof n.syscall - 1] = '\0';
		if (n.kind == 'F')
			perform_fallback(n.id, n.syscall);
		else
			perform_finish(&r->started, &n, 0, perform_page(r));
		if (n.kind == 'D' && n.learned)
			perform_learn(r->pid, &n.userns);
		close(r->note_r);
		perform_slot_used[r->slot] = false;
		perform_collect(r->pid);
		return true;
	}
	/* It died (or sent garbage): it may have done something, so it fails (closed). */
	struct perform_note s = r->started;
	int sig = perform_kill(r);
	perform_finish(&s, NULL, sig, "");
	return true;
}

/*
 * The lane. A forked spare is a fresh process: each run pays for its page tables, its copy-on-write
 * and text faults and its cold caches (~120 us of a vetted call's ~175 us on the machines measured,
 * issue 17). A lane child, made with CLONE_VM, shares the performer's memory instead (as
 * posix_spawn's does): nothing to copy, everything warm. Its credentials, namespaces, root and cwd
 * (no CLONE_FS), fd table (no CLONE_FILES: a copy) and signal handlers (no CLONE_SIGHAND) are its
 * own, so entering P's namespaces and becoming P changes nothing of the performer's. Like a spare, it
 * is in no namespace of the container's processes that lets them see, signal or trace it (the
 * memory is the performer's: not dumpable).
 *
 * Lane children wait for the next fast-path request themselves, on fd 5, two at a time (the performer
 * does not read fd 5 then): the watcher's datagram wakes one of them, not the performer, and while it
 * runs the call the other waits for the caller's next. The shared memory
 * (errno and stdio included) has one user at a time, by a lock (lane_lock: a futex word holding
 * the holder's pid, taken with raw syscalls): the performer holds it but while it sleeps in ppoll;
 * the child takes it for its setup and again once it has its request, and gives it up at its flag
 * (shared_done), after which it makes raw syscalls only (the answer, its one-byte note, exit) and
 * writes its own slot only. So a child preempted by the caller it just answered holds nothing back,
 * and the performer makes the next waiting child while that call's caller makes its next call.
 *
 * A run that holds the lock for PERFORM_LANE_STALL_MS (a mount hanging on the container's own FUSE
 * server, say) is stalled: the performer goes on without the lock, reads fd 5 and turns the fast
 * path's requests back to the manager (which runs them through fd 3 and the spares), as does a
 * waiting child whose request finds the lock held that long ('B'); the performer's syscalls
 * can then fail and write errno under the run, which at worst changes the errno of a failure (fails
 * closed). A run lasts at most PERFORM_TIMEOUT_MS. A child that dies holding the lock may have left
 * the shared memory mid-change (a SIGKILL from a host user of the container's ids, say): the
 * performer then answers its caller (EPERM), reports, and ends (the manager starts another).
 */
#define PERFORM_LANE_SLOTS 4
#define PERFORM_LANE_STACK (256 * 1024)
#define PERFORM_LANE_STALL_MS 100

enum { LANE_FREE, LANE_WAITING, LANE_RUNNING };

struct perform_lane_slot {
	pid_t pid;                 /* 0: free; else the child's, until reaped */
	pid_t performer;           /* its parent's */
	int state;                 /* LANE_*: WAITING until it has a request (the child sets RUNNING) */
	int note_r;                /* its note pipe, -1 once read (or when it died) */
	int note_w;                /* (the child's end, in the child) */
	uint64_t start_ms;         /* RUNNING since */
	struct perform_note s;     /* the request ('S') */
	struct perform_note n;     /* the outcome, the child's: 'D', or 'F' (nothing run: why), 'C' (fd 5 closed) */
	int shared_done;           /* the child's flag (atomic) */
	char *argv0;
	char *args[128];
	char *out;                 /* its output page, and the stream on it */
	FILE *out_file;
	unsigned char frame[PERFORM_MAX_FRAME];
	char stack[PERFORM_LANE_STACK] __attribute__((aligned(64)));
};
static struct perform_lane_slot *perform_lane_slots; /* PERFORM_LANE_SLOTS of them */
static struct perform_lane_slot *lane_self;             /* in a child: its own slot */
static bool perform_lane_broken;                         /* a child could not set itself up: none made any more */

/*
 * The lane child's scheduling. Its run sleeps mid-call (an unmount waits for an RCU grace period), and
 * under EEVDF a task that has used more than its share since it woke is not eligible on its next
 * wake-up: on a core a CPU-bound task holds, it then waits for the tick (4 ms at HZ=250), as 58% of a
 * busy host's lane unmounts did at nice -5. PERFORM_LANE_NICE's weight leaves a short run eligible.
 * It keeps the short slice (so that it preempts on wake-up). Its CPU is bounded by the calls' pacing,
 * not by this weight. Best effort.
 */
#ifndef PERFORM_LANE_NICE
#define PERFORM_LANE_NICE -20
#endif

/* Raw syscalls: glibc's wrappers write errno, which is shared. */
static inline long lane_raw(long nr, long a, long b, long c, long d)
{
#if defined(__x86_64__)
	long r;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
	return r;
#else
#error "the performer's lane needs raw syscalls for this architecture"
#endif
}

static uint64_t lane_raw_now_ms(void)
{
	struct timespec t = { 0, 0 };
	lane_raw(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&t, 0, 0);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* The lock on the shared memory: 0, or the holder's pid. */
static int lane_lock_word;

/* Takes the lock as `self`; with a deadline (ms, 0: none), false once it has passed. */
static bool lane_lock(int self, uint64_t deadline_ms)
{
	for (;;) {
		int free_ = 0;
		if (__atomic_compare_exchange_n(&lane_lock_word, &free_, self, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return true;
		struct timespec ts, *tp = NULL;
		if (deadline_ms) {
			uint64_t now = lane_raw_now_ms();
			if (now >= deadline_ms)
				return false;
			ts.tv_sec = (time_t)((deadline_ms - now) / 1000);
			ts.tv_nsec = (long)((deadline_ms - now) % 1000) * 1000000L;
			tp = &ts;
		}
		lane_raw(SYS_futex, (long)&lane_lock_word, FUTEX_WAIT_PRIVATE, free_, (long)tp);
	}
}

static void lane_unlock(void)
{
	__atomic_store_n(&lane_lock_word, 0, __ATOMIC_RELEASE);
	lane_raw(SYS_futex, (long)&lane_lock_word, FUTEX_WAKE_PRIVATE, 1, 0);
}

/*
 * The lock back for the performer (after its sleep, or once a stalled child has ended): 0 once it holds
 * it, or the pid of a child holding it past PERFORM_LANE_STALL_MS (1 ms when that child was already
 * stalled). A holder that lets go between the attempt and the look is not taken for a stalled one.
 */
static int perform_lane_relock(int self, int stalled)
{
	if (__atomic_load_n(&lane_lock_word, __ATOMIC_ACQUIRE) == self)
		return 0;
	uint64_t wait = stalled ? 1 : PERFORM_LANE_STALL_MS;
	for (;;) {
		if (lane_lock(self, lane_raw_now_ms() + wait))
			return 0;
		int holder = __atomic_load_n(&lane_lock_word, __ATOMIC_ACQUIRE);
		if (holder)
			return holder;
		wait = 1;
	}
}

/* The child's one-byte note ('D' done, 'F' nothing run, 'B' the lock busy, 'C' fd 5 closed, 'E' no set-up), then exit: raw, without the lock. */
__attribute__((noreturn)) static void lane_note_exit(int note, char kind, int rc)
{
	lane_raw(SYS_write, note, (long)&kind, 1, 0);
	for (;;)
		lane_raw(SYS_exit, rc, 0, 0, 0);
}

/*
 * The end of a lane run, in the child: the outcome into its slot, the flag and the lock given up, then
 * (raw) the answer where the run is the one to give it, the note and exit. rc: the command's exit code.
 */
__attribute__((noreturn)) static void lane_end(int rc)
{
	struct perform_lane_slot *l = lane_self;
	fflush(stdout);
	perform_note_outcome(&l->n, rc);
	const bool answer = as_keep_notif && !as_notif_closed;
	l->n.answer_err = perform_answer_errno(l->n.rc, l->n.err, l->n.syscall);
	const int note = l->note_w;
	l->n.kind = 'D';
	__atomic_store_n(&l->shared_done, 1, __ATOMIC_RELEASE);
	lane_unlock();
	/* From here: raw syscalls, this slot and this stack only. */
	if (answer) {
		struct seccomp_notif_resp resp = { .id = l->n.notif_id, .val = 0, .error = l->n.answer_err ? -l->n.answer_err : 0, .flags = 0 };
		long r = lane_raw(SYS_ioctl, PERFORM_NOTIFY_FD, (long)SECCOMP_IOCTL_NOTIF_SEND, (long)&resp, 0);
		l->n.send_err = r < 0 ? (int32_t)-r : 0;
		struct timespec t = { 0, 0 };
		lane_raw(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&t, 0, 0);
		l->n.answered_us = (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
		l->n.answered = 1;
	}
	lane_note_exit(note, 'D', rc);
}

/* as_outcome_final in a lane child: the run's report now, then its end (the command's clean-up is its exit). */
static void lane_outcome_final(void)
{
	lane_end(report());
}

static int perform_lane_child(void *arg)
{
	struct perform_lane_slot *l = arg;
	const int self = (int)lane_raw(SYS_getpid, 0, 0, 0, 0);
	/* Before it waits for the lock: a performer gone meanwhile would hold it for ever. */
	if (lane_raw(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0) < 0 || lane_raw(SYS_getppid, 0, 0, 0, 0) != l->performer)
		lane_note_exit(l->note_w, 'E', 127);
	lane_lock(self, 0);
	eci_sched_latency(0, PERFORM_LANE_NICE);
	if (signal(PERFORM_START_SIG, SIG_DFL) == SIG_ERR ||
	    sigprocmask(SIG_SETMASK, &perform_mask, NULL) < 0 || dup2(l->note_w, PERFORM_NATIVE_FD + 1) < 0) {
		lane_unlock();
		lane_note_exit(l->note_w, 'E', 127);
	}
	const int note = l->note_w = PERFORM_NATIVE_FD + 1;
	/* Its copy of the fd table: the manager's socket and the performer's pipes stay behind. */
	close(PERFORM_FD);
	serve_close_from(PERFORM_NATIVE_FD + 2);
	lane_unlock();

	/* The next fast-path request, straight from the watcher (raw, without the lock). */
	unsigned char lenb[4];
	struct iovec iov[2] = { { lenb, 4 }, { l->frame, PERFORM_MAX_FRAME } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	long n;
	do
		n = lane_raw(SYS_recvmsg, PERFORM_NATIVE_FD, (long)&mh, 0, 0);
	while (n == -EINTR);
	if (n < 4 + PERFORM_HEAD || (mh.msg_flags & MSG_TRUNC) || serve_get32(lenb) != (uint32_t)n - 4)
		lane_note_exit(note, 'C', 0); /* closed, or not our protocol: no more requests on fd 5 */
	if (!lane_lock(self, lane_raw_now_ms() + PERFORM_LANE_STALL_MS)) {
		/* Another child's run holds the memory (stalled): this request goes back ('B': its id in this slot, private). */
		l->s.id = serve_get32(l->frame);
		lane_note_exit(note, 'B', 0);
	}
	lane_self = l; /* shared: set by whichever child holds the lock for its run */
	lane_raw(SYS_close, PERFORM_NATIVE_FD, 0, 0, 0);
	const uint32_t len = (uint32_t)n - 4;
	l->s = perform_request_note(l->frame);
	l->n = l->s;
	l->n.kind = 0;
	l->start_ms = lane_raw_now_ms();
	__atomic_store_n(&l->state, LANE_RUNNING, __ATOMIC_RELEASE);
	perform_run_reset();
	int argc = 0;
	const char *why = perform_args((char *)l->frame + PERFORM_HEAD, len - PERFORM_HEAD, l->argv0, l->args, 128, &argc);
	if (why) {
		snprintf(l->n.syscall, sizeof l->n.syscall, "%s", why);
		l->n.kind = 'F';
		__atomic_store_n(&l->shared_done, 1, __ATOMIC_RELEASE);
		lane_unlock();
		lane_note_exit(note, 'F', 0);
	}
	perform_test_stall(argc, l->args);
	l->out[0] = '\0'; /* the stream writes its own NUL after what it writes */
	rewind(l->out_file);
	stdout = l->out_file;
	as_keep_notif = (l->s.flags & PERFORM_ANSWER) != 0;
	as_outcome_final = lane_outcome_final;
	lane_end(main(argc, l->args));
}

static bool perform_lane_init(char *argv0)
{
	perform_lane_slots = mmap(NULL, sizeof(struct perform_lane_slot) * PERFORM_LANE_SLOTS, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (perform_lane_slots == MAP_FAILED)
		return false;
	for (int i = 0; i < PERFORM_LANE_SLOTS; i++) {
		struct perform_lane_slot *l = &perform_lane_slots[i];
		l->note_r = -1;
		l->argv0 = argv0;
		l->out = mmap(NULL, PERFORM_OUT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (l->out == MAP_FAILED || !(l->out_file = fmemopen(l->out, PERFORM_OUT - 1, "w")))
			return false;
	}
	return true;
}

/* Reaps slot l's child once it has noted (or died) and exited; true when the slot is free. */
static bool perform_lane_reap(struct perform_lane_slot *l)
{
	if (l->pid <= 0 || l->note_r >= 0)
		return l->pid <= 0;
	pid_t r;
	do
		r = waitpid(l->pid, NULL, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == l->pid || (r < 0 && errno == ECHILD)) {
		l->pid = 0;
		l->state = LANE_FREE;
	}
	return l->pid <= 0;
}

/*
 * Lane children waiting for a request (at most PERFORM_LANE_WAITING: while one runs a call, the next
 * waits for the caller's next call; the kernel gives each datagram to one of them), into kids[], and
 * whether one is running a request (before its flag).
 */
#define PERFORM_LANE_WAITING 2
static int perform_lane_waiting(struct perform_lane_slot *kids[PERFORM_LANE_SLOTS], bool *running)
{
	int n = 0;
	*running = false;
	for (int i = 0; i < PERFORM_LANE_SLOTS; i++) {
		struct perform_lane_slot *l = &perform_lane_slots[i];
		if (l->pid <= 0 || l->note_r < 0 || __atomic_load_n(&l->shared_done, __ATOMIC_ACQUIRE))
			continue;
		if (__atomic_load_n(&l->state, __ATOMIC_ACQUIRE) == LANE_WAITING)
			kids[n++] = l;
		else
			*running = true;
	}
	return n;
}

/* Makes the next waiting child (the lock held: it waits for it). false: none could be made. */
static bool perform_lane_spawn(void)
{
	struct perform_lane_slot *l = NULL;
	for (int i = 0; i < PERFORM_LANE_SLOTS && !l; i++)
		if (perform_lane_reap(&perform_lane_slots[i]))
			l = &perform_lane_slots[i];
	int note[2];
	if (!l || pipe2(note, O_CLOEXEC) < 0)
		return false;
	l->state = LANE_WAITING;
	l->shared_done = 0;
	l->note_w = note[1];
	l->performer = getpid();
	pid_t pid = clone(perform_lane_child, l->stack + PERFORM_LANE_STACK, CLONE_VM | SIGCHLD, l);
	close(note[1]);
	if (pid < 0) {
		close(note[0]);
		l->state = LANE_FREE;
		return false;
	}
	l->pid = pid;
	l->note_r = note[0];
	return true;
}

/*
 * Slot l's note (or end, or timeout): reports its run. A child gone while it held the lock leaves the
 * shared memory in doubt: true then, and the performer ends.
 */
static bool perform_lane_event(struct perform_lane_slot *l, bool timed_out)
{
	char kind = 0;
	ssize_t k = timed_out ? 0 : read(l->note_r, &kind, 1);
	if (k < 0 && errno == EINTR)
		return false;
	close(l->note_r);
	l->note_r = -1;
	if (k == 1 && kind == 'D' && l->n.kind == 'D') {
		if (l->n.learned)
			perform_learn(l->pid, &l->n.userns); /* not reaped yet: its pid is still its own */
		perform_finish(&l->s, &l->n, 0, l->out);
		perform_lane_reap(l);
		return false;
	}
	if (k == 1 && kind == 'F') {
		perform_fallback(l->s.id, l->n.syscall);
		perform_lane_reap(l);
		return false;
	}
	if (k == 1 && kind == 'B') {
		perform_fallback(l->s.id, "the performer's lane is busy");
		perform_lane_reap(l);
		return false;
	}
	if (k == 1 && kind == 'C') {
		perform_native_open = false; /* the manager closed the fast path (or it spoke another protocol) */
		perform_lane_reap(l);
		return false;
	}
	if (k == 1 && kind == 'E')
		perform_lane_broken = true; /* it could not set itself up: no more lane children (fd 5 goes back) */
	/* It died, failed to start, or timed out. */
	const int state = __atomic_load_n(&l->state, __ATOMIC_ACQUIRE);
	const bool done = __atomic_load_n(&l->shared_done, __ATOMIC_ACQUIRE);
	int status = 0;
	kill(l->pid, SIGKILL);
	while (waitpid(l->pid, &status, 0) < 0 && errno == EINTR)
		;
	const bool held = __atomic_load_n(&lane_lock_word, __ATOMIC_ACQUIRE) == l->pid;
	l->pid = 0;
	l->state = LANE_FREE;
	if (state == LANE_RUNNING) /* it may have done something, so it fails (closed) */
		perform_finish(&l->s, l->n.answered ? &l->n : NULL, WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL, "");
	return held || (state == LANE_RUNNING && !done);
}

/* Only interrupts ppoll (the spare's note is then looked for). */
static void perform_on_start_sig(int sig)
{
	(void)sig;
}

/* Whether fd has input now (a waiting spare's note: its pipe is not polled for input). */
static bool perform_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

int main_perform(int argc, char **argv)
{
	pid_t parent;
	int bad = serve_child_of(argc, argv, &parent);
	if (bad)
		return bad;
	/* Host root with the notify fd: nothing in a container may read this process (see above). */
	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		return 1;
	/*
	 * A vetted call waits for the spare's wake-up; on a busy host each wake-up waits for a core (issue 17).
	 * A higher priority and a short slice (its spares inherit both: sched-slice.h) make those waits
	 * shorter. It cannot starve the host:
	 * the calls are paced (a burst of 400, then 200/s per container, actors/vetter/pace.ts and the
	 * watcher's budget), at most PERFORM_MAX_RUNS run at once, and each is one short mount-as/umount-as.
	 * Best effort: without the privilege, the default.
	 */
	eci_sched_latency(0, PERFORM_NICE);
	if (fcntl(PERFORM_NOTIFY_FD, F_GETFD) < 0 || fcntl(PERFORM_FD, F_GETFD) < 0)
		return 1;
	perform_native = perform_native_open = fcntl(PERFORM_NATIVE_FD, F_GETFD) >= 0;
	const char *lane = getenv("ECI_PERFORM_LANE");
	perform_lane = perform_native && !(lane && strcmp(lane, "0") == 0);
	/* Nothing else of the manager's (an fd it leaked without CLOEXEC) may reach the runs. */
	serve_close_from(PERFORM_NATIVE_FD + 1);
	int fl = fcntl(PERFORM_FD, F_GETFL);
	if (fl < 0 || fcntl(PERFORM_FD, F_SETFL, fl & ~O_NONBLOCK) < 0 || chdir("/") < 0)
		return 1;
	/* PERFORM_START_SIG: blocked but while the performer waits in ppoll (so none is missed), where it interrupts. */
	sigset_t start_sig, wait_mask;
	struct sigaction sa = { .sa_handler = perform_on_start_sig };
	sigemptyset(&start_sig);
	sigaddset(&start_sig, PERFORM_START_SIG);
	if (sigaction(PERFORM_START_SIG, &sa, NULL) < 0 || sigprocmask(SIG_BLOCK, &start_sig, &perform_mask) < 0)
		return 1;
	wait_mask = perform_mask;
	sigdelset(&wait_mask, PERFORM_START_SIG);
	as_known_userns = perform_known; /* none yet: its runs learn them */
	perform_out = mmap(NULL, (size_t)(PERFORM_MAX_RUNS + 1) * PERFORM_OUT, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned char *frame = malloc(PERFORM_MAX_FRAME);
	if (perform_out == MAP_FAILED || !frame)
		return 1;
	for (int i = 0; i <= PERFORM_MAX_RUNS; i++)
		perform_out_file[i] = fmemopen(perform_out + (size_t)i * PERFORM_OUT, PERFORM_OUT - 1, "w");
	if (perform_lane && !perform_lane_init(argv[0]))
		perform_lane = false;
	const int self = getpid();
	if (perform_lane) /* the performer holds the shared memory but while it sleeps */
		lane_lock(self, 0);
	int stalled = 0; /* the pid of a lane child that has held the lock past PERFORM_LANE_STALL_MS */
	struct perform_child spare = perform_fork_spare(argv[0], frame);
	perform_reply(0, 'R', NULL, 0, NULL, 0);
	struct perform_child runs[PERFORM_MAX_RUNS];
	int nruns = 0;
	/* fork_failed: no spare although one was wanted (not merely the cap): requests are turned back. */
	bool manager_gone = false, draining = false, fork_failed = spare.pid < 0;
	uint64_t drain_deadline = 0;
	for (;;) {
		/* The lock is the performer's here, unless a lane child stalled holding it (then it goes on without). */
		const bool held = stalled != 0;
		struct perform_lane_slot *kids[PERFORM_LANE_SLOTS];
		bool lane_running = false;
		int waiting = perform_lane ? perform_lane_waiting(kids, &lane_running) : 0;
		if (manager_gone)
			for (int i = 0; i < waiting; i++)
				kill(kids[i]->pid, SIGKILL); /* no request of a manager that is done will come: its end is the note's EOF */
		else
			while (waiting < PERFORM_LANE_WAITING && perform_lane && !perform_lane_broken && perform_native_open && !held &&
			       perform_lane_spawn())
				waiting++;
		int nlane = 0;
		struct perform_lane_slot *lanes[PERFORM_LANE_SLOTS];
		for (int i = 0; perform_lane && i < PERFORM_LANE_SLOTS; i++)
			if (perform_lane_slots[i].note_r >= 0)
				lanes[nlane++] = &perform_lane_slots[i];
		if (manager_gone && nruns == 0 && nlane == 0) {
			/*
			 * The manager closed the notify fd, or is gone. The spare reads fd 3 itself: it may have
			 * taken a request written just before the close and not reported it ('S') yet. Killing it
			 * then could end a call it already performed (or answered) and have it reported as refused:
			 * let it see the end of fd 3 and exit, or report its run, within the run timeout.
			 */
			if (spare.pid <= 0)
				return 0;
			uint64_t now = perform_now_us() / 1000;
			if (!draining) {
				draining = true;
				drain_deadline = now + PERFORM_TIMEOUT_MS;
			} else if (now >= drain_deadline) {
				perform_end(&spare);
				return 0;
			}
		}
		if (spare.pid < 0 && !manager_gone && nruns < PERFORM_MAX_RUNS) {
			spare = perform_fork_spare(argv[0], frame);
			fork_failed = spare.pid < 0;
		}
		bool turn_back = spare.pid < 0 && fork_failed && !manager_gone;
		/*
		 * With a spare waiting, fd 3 is its to read: here only the manager's shutdown is watched (and,
		 * once seen, no longer: runs still going are waited for, without spinning on the hang-up).
		 * At the cap (no spare, no failure), requests wait in fd 3 and fd 5 for the next spare.
		 */
		/* A waiting spare's pipe only for its end (its 'S' note comes with a signal: perform_started). */
		struct pollfd p[3 + PERFORM_MAX_RUNS + PERFORM_LANE_SLOTS] = {
			{ .fd = manager_gone ? -1 : PERFORM_FD, .events = POLLRDHUP | (turn_back ? POLLIN : 0) },
			{ .fd = spare.pid > 0 ? spare.note_r : -1, .events = 0 },
			/* The lane's requests: read here only while no lane child can (a stalled run, or none made). */
			{ .fd = perform_lane && perform_native_open && !manager_gone && (held || !waiting) ? PERFORM_NATIVE_FD : -1, .events = POLLIN },
		};
		if (turn_back && !perform_lane) /* no spare: fast-path requests are turned back here too */
			p[1] = (struct pollfd){ .fd = perform_native_open ? PERFORM_NATIVE_FD : -1, .events = POLLIN };
		for (int i = 0; i < nruns; i++)
			p[3 + i] = (struct pollfd){ .fd = runs[i].note_r, .events = POLLIN };
		for (int i = 0; i < nlane; i++)
			p[3 + nruns + i] = (struct pollfd){ .fd = lanes[i]->note_r, .events = POLLIN };
		uint64_t now = perform_now_us() / 1000;
		int timeout = -1;
		for (int i = 0; i < nruns; i++) {
			int t = runs[i].deadline > now ? (int)(runs[i].deadline - now) : 0;
			timeout = timeout < 0 || t < timeout ? t : timeout;
		}
		for (int i = 0; i < nlane; i++) {
			if (__atomic_load_n(&lanes[i]->state, __ATOMIC_ACQUIRE) != LANE_RUNNING)
				continue;
			uint64_t end = __atomic_load_n(&lanes[i]->start_ms, __ATOMIC_ACQUIRE) + PERFORM_TIMEOUT_MS;
			int t = end > now ? (int)(end - now) : 0;
			timeout = timeout < 0 || t < timeout ? t : timeout;
		}
		/* A run may start while the performer sleeps: its deadline is looked for every second. */
		if ((waiting || lane_running) && (timeout < 0 || timeout > 1000))
			timeout = 1000;
		if (held && (timeout < 0 || timeout > 10))
			timeout = 10; /* a stalled lane run: look for its end now and then */
		if (draining && nruns == 0)
			timeout = drain_deadline > now ? (int)(drain_deadline - now) : 0;
		if (turn_back && (timeout < 0 || timeout > 100))
			timeout = 100; /* fork failed: try again soon */
		struct timespec ts = { .tv_sec = timeout / 1000, .tv_nsec = (long)(timeout % 1000) * 1000000L };
		if (perform_lane && !held)
			lane_unlock();
		int r = ppoll(p, (nfds_t)(3 + nruns + nlane), timeout < 0 ? NULL : &ts, &wait_mask);
		int ppoll_err = r < 0 ? errno : 0; /* read before the lock: a lane child may be using errno */
		if (perform_lane) /* the lock again; a child holding it past PERFORM_LANE_STALL_MS is stalled (gone on without it) */
			stalled = perform_lane_relock(self, stalled);
		if (r < 0 && ppoll_err != EINTR)
			return 1;
		if (r < 0) /* a spare's 'S' (or another signal): nothing polled is reported */
			for (int i = 0; i < 3 + nruns + nlane; i++)
				p[i].revents = 0;
		if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			manager_gone = true;
			continue;
		}
		/* fd 5 here: no lane child could take it (stalled, or none made). The manager runs it the usual way. */
		if (p[2].revents & POLLIN) {
			uint32_t len = perform_native_request(frame);
			if (len == UINT32_MAX)
				perform_native_open = false; /* closed: no more fast-path requests */
			else if (len)
				perform_fallback(serve_get32(frame), held ? "the performer's lane is busy" : "no lane child");
		} else if (p[2].revents) {
			perform_native_open = false;
		}
		now = perform_now_us() / 1000;
		for (int i = 0; i < nlane; i++) {
			bool ev = (p[3 + nruns + i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
			bool late = __atomic_load_n(&lanes[i]->state, __ATOMIC_ACQUIRE) == LANE_RUNNING &&
				    now >= __atomic_load_n(&lanes[i]->start_ms, __ATOMIC_ACQUIRE) + PERFORM_TIMEOUT_MS;
			if (!ev && !late)
				continue;
			if (lanes[i]->pid == stalled)
				stalled = 0; /* its end: the lock is looked at again below */
			if (perform_lane_event(lanes[i], !ev))
				return 1; /* a lane child died holding the lock: this memory is in doubt */
		}
		if (perform_lane && !stalled)
			stalled = perform_lane_relock(self, 0);
		/* Runs first (from the last, so that dropping one keeps the others' poll entries in place). */
		now = perform_now_us() / 1000;
		for (int i = nruns - 1; i >= 0; i--) {
			if (p[3 + i].revents & (POLLIN | POLLHUP | POLLERR)) {
				if (perform_run_event(&runs[i]))
					perform_drop(runs, &nruns, i);
			} else if (now >= runs[i].deadline) {
				/* Timed out: it may have done something, so it fails (closed). */
				struct perform_note s = runs[i].started;
				int sig = perform_kill(&runs[i]);
				perform_finish(&s, NULL, sig, "");
				perform_drop(runs, &nruns, i);
			}
		}
		if (turn_back) {
			/* No spare could be forked: a request waiting is not run; the manager runs it another way. */
			if (p[0].revents & POLLIN) {
				unsigned char lenb[4];
				uint32_t len;
				if (!perform_read(PERFORM_FD, lenb, 4) || (len = serve_get32(lenb)) < PERFORM_HEAD ||
				    len > PERFORM_MAX_FRAME || !perform_read(PERFORM_FD, frame, len))
					return 1;
				perform_fallback(serve_get32(frame), "fork failed");
			}
			if (p[1].revents & POLLIN) {
				uint32_t len = perform_native_request(frame);
				if (len && len != UINT32_MAX)
					perform_fallback(serve_get32(frame), "fork failed");
				else if (len == UINT32_MAX)
					perform_native_open = false; /* closed: no more fast-path requests */
			} else if (p[1].revents) {
				perform_native_open = false;
			}
			continue;
		}
		if (spare.pid <= 0 || !((p[1].revents & (POLLHUP | POLLERR)) || perform_readable(spare.note_r)))
			continue;
		struct perform_note n;
		ssize_t k;
		do
			k = read(spare.note_r, &n, sizeof n);
		while (k < 0 && errno == EINTR);
		if (k == (ssize_t)sizeof n && n.kind == 'S') {
			/* A run now: the next spare is forked at the top of the loop, while this one runs. */
			spare.started = n;
			spare.deadline = perform_now_us() / 1000 + PERFORM_TIMEOUT_MS;
			runs[nruns++] = spare;
			spare.pid = spare.note_r = spare.slot = -1;
			continue;
		}
		/* The spare ended (or sent garbage) before it had a request. */
		int status = perform_end(&spare);
		if (k == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			/* It saw the end of fd 3 with no request: nothing was run, and the manager is done. */
			manager_gone = true;
			continue;
		}
		/* Before it had a whole request: fd 3 may be left mid-frame, so this performer is done (its runs fail, closed). */
		for (int i = nruns - 1; i >= 0; i--) {
			struct perform_note s = runs[i].started;
			int sig = perform_kill(&runs[i]);
			perform_finish(&s, NULL, sig, "");
			perform_drop(runs, &nruns, i);
		}
		return 1;
	}
}
