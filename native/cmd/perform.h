/*
 * eci-helper perform PARENT_PID: the performer of one container's vetted mount/umount calls, so that a
 * vetted call costs one fork of a small process and two hops (manager -> performer -> manager), not a
 * spawn, or a fork of the helper server that forks again. Included by eci-helper.c (after mount-as.h
 * and serve.h, before main); not a program of its own.
 *
 * The manager (native/index.ts) starts one per seccomp notify fd, with fd 3 one end of a unix
 * socketpair and fd 4 that notify fd; PARENT_PID is the manager's pid. It dies with the manager
 * (PR_SET_PDEATHSIG) and exits on EOF of fd 3 (the manager closes it with the notify fd).
 *
 * Frames (integers little-endian), after one 'R' (ready) frame from the performer:
 *   request  (manager -> performer): u32 len (of what follows), u32 id, u8 flags, u64 notification id,
 *            NUL-terminated strings: argv[1..] of a mount-as or umount-as run (with --notif-fd 4
 *            --notif-id ID). Flag 1 (PERFORM_ANSWER): the performer answers the notification itself;
 *   reply    (performer -> manager): u32 len, u32 id, u8 kind, then
 *            'D' i32 exit code, i32 signal (0: exited), u32 stdout length, stdout (serve.h's 'D' frame), or
 *            'A' as 'D', with u64 when answered (CLOCK_MONOTONIC us), i32 the errno answered (0: the
 *              call returned 0), i32 the answer's own errno (0: sent) between the stdout length and stdout, or
 *            'F' reason: nothing was run (the manager runs the call another way).
 * Answering here takes the hop back to the manager (a wake-up of its event loop, ~150 us measured)
 * off the caller's path: the manager learns the outcome after the caller has it. The answer is the
 * one the manager would give (actors/notify-feed.ts): 0, the mount/umount2's own errno, or EPERM for
 * anything else, including a run that timed out or died (it may have done something: fail closed).
 * The manager asks for it only where nothing of its own must happen between the call and the answer.
 * Requests are run one at a time, in order: a container's calls wait for each other, never for another
 * container's (each has its own performer).
 *
 * Each run is a fork (a spare, forked ahead: see perform_spare) that runs main() with the request's argv,
 * its stdout a shared page; mount-as's as_run then does every check of a spawned helper (the
 * notification's ID_VALID after pinning /proc/P, P's namespaces, root, cwd, ids and capabilities). The performer itself
 * stays in the host's namespaces with host root's credentials; it is not dumpable, so nothing that
 * gains access to its children's namespaces can read its memory or fds. A run still going after
 * PERFORM_TIMEOUT_MS is killed (SIGKILL), as a spawned helper would be.
 */
#include <sys/mman.h>

#define PERFORM_FD 3
#define PERFORM_NOTIFY_FD 4
#define PERFORM_TIMEOUT_MS 60000
#define PERFORM_MAX_FRAME (1u << 20)
#define PERFORM_OUT 8192
#define PERFORM_ANSWER 1u
#define PERFORM_HEAD 13 /* u32 id, u8 flags, u64 notification id */

/* What a run tells the performer when it is done: its exit code and its failure, if any. */
struct perform_done {
	int32_t rc;
	int32_t err;
	char syscall[32];
};

/* Reads exactly n bytes of fd 3. 0: done; -1: EOF or error (the manager is gone). */
static int perform_read(void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(PERFORM_FD, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
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

/*
 * The spare: a child forked ahead of time, waiting for its one request on a pipe, so that neither the
 * fork nor the exit of a run is on a call's path. It answers through the shared page `out` (its
 * stdout) and then a struct perform_done on its done pipe; the performer answers (the caller, the
 * manager) at that point, and collects the run's exit later (perform_reap), without waiting for it. Its fds: 0-2, 4 (the notify fd), 5 (request pipe), 6 (done pipe).
 */
struct perform_spare {
	pid_t pid;
	int req_w, done_r;
};

/*
 * Touches, before the request comes, what a run writes first: the pages a fork shares copy-on-write
 * with the performer (stack, stdio and getopt state, the heap) are copied now, not on the call's path.
 * Leaves no state behind: the failure is reset, and getopt restarts at optind = 2 for every command.
 */
static __attribute__((noinline)) void perform_warm_up(void)
{
	volatile char stack[96 * 1024];
	memset((char *)stack, 0, sizeof stack);
	char scratch[256];
	FILE *f = fmemopen(scratch, sizeof scratch, "w");
	if (f) {
		FILE *keep = stdout;
		stdout = f;
		char a0[] = "eci-helper", a1[] = "mount-as", a2[] = "--target", a3[] = "/";
		char *args[] = { a0, a1, a2, a3, NULL };
		main(4, args); /* a usage error (no --pid): parses and reports, nothing else */
		fflush(f);
		stdout = keep;
		fclose(f);
	}
	for (int i = 0; i < AS_NNS; i++)
		as_self_ns_id(i); /* a namespace type this kernel lacks stays unknown: looked up (and failing) in the run */
	memset(&failure, 0, sizeof failure);
	void *m = malloc(64 * 1024);
	if (m) {
		memset(m, 0, 64 * 1024);
		free(m);
	}
}

static void perform_spare_child(int req_r, int done_w, char *argv0, char *out, unsigned char *frame)
{
	if (dup2(req_r, 5) < 0 || dup2(done_w, 6) < 0)
		_exit(127);
	if (syscall(SYS_close_range, 7, ~0U, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (int fd = 7; fd < (max > 0 ? max : 65536); fd++)
			close(fd);
	}
	close(PERFORM_FD); /* a run answers through `out` only; it never touches the manager's socket */
	perform_warm_up();
	unsigned char lenb[4];
	ssize_t n = read(5, lenb, 4);
	if (n != 4)
		_exit(0); /* not needed: the performer is done or gone */
	uint32_t len = serve_get32(lenb);
	for (uint32_t got = 0; got < len;) {
		n = read(5, frame + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(127);
		got += (uint32_t)n;
	}
	close(5);
	char *args[128], *p = (char *)frame, *end = (char *)frame + len;
	int argc = 0;
	args[argc++] = argv0;
	while (p < end && argc < (int)(sizeof args / sizeof args[0]) - 1) {
		char *z = memchr(p, '\0', (size_t)(end - p));
		if (!z)
			_exit(127);
		args[argc++] = p;
		p = z + 1;
	}
	args[argc] = NULL;
	FILE *f = fmemopen(out, PERFORM_OUT - 1, "w");
	if (!f)
		_exit(127);
	stdout = f;
	struct perform_done d = { 0 };
	d.rc = main(argc, args);
	fflush(f);
	if (failure.set) {
		d.err = failure.err;
		memcpy(d.syscall, failure.syscall, sizeof d.syscall);
		d.syscall[sizeof d.syscall - 1] = '\0';
	}
	if (write(6, &d, sizeof d) != sizeof d)
		_exit(127);
	_exit(d.rc);
}

/* Forks the next spare; pid -1 when that failed (the next call tries again). */
static struct perform_spare perform_fork_spare(char *argv0, char *out, unsigned char *frame)
{
	struct perform_spare sp = { -1, -1, -1 };
	int req[2], done[2];
	if (pipe2(req, O_CLOEXEC) < 0)
		return sp;
	if (pipe2(done, O_CLOEXEC) < 0) {
		close(req[0]);
		close(req[1]);
		return sp;
	}
	pid_t pid = fork();
	if (pid == 0)
		perform_spare_child(req[0], done[1], argv0, out, frame);
	close(req[0]);
	close(done[1]);
	if (pid < 0) {
		close(req[1]);
		close(done[0]);
		return sp;
	}
	sp.pid = pid;
	sp.req_w = req[1];
	sp.done_r = done[0];
	return sp;
}

static void perform_drop(struct perform_spare *sp)
{
	if (sp->pid > 0) {
		kill(sp->pid, SIGKILL);
		while (waitpid(sp->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (sp->req_w >= 0)
		close(sp->req_w);
	if (sp->done_r >= 0)
		close(sp->done_r);
	sp->pid = sp->req_w = sp->done_r = -1;
}

/* The errno the manager would answer for a run (0: the call returned 0); done: the run reported. */
static int perform_answer_errno(bool done, const struct perform_done *d)
{
	if (!done)
		return EPERM;
	if (d->rc == 0 && d->err == 0)
		return 0;
	if (d->err > 0 && (strcmp(d->syscall, "mount") == 0 || strcmp(d->syscall, "umount2") == 0))
		return d->err;
	return EPERM;
}

/* SECCOMP_IOCTL_NOTIF_SEND; 0 or the ioctl's errno (ENOENT: the caller left the syscall). */
static int perform_send(uint64_t notif_id, int err)
{
	struct seccomp_notif_resp resp = { .id = notif_id, .val = 0, .error = err ? -err : 0, .flags = 0 };
	return ioctl(PERFORM_NOTIFY_FD, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 ? errno : 0;
}

static uint64_t perform_now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/*
 * Hands one request (len bytes of strings) to the spare; replies 'D' with its status and output, or,
 * with `answer`, first answers notification notif_id and then replies 'A'.
 */
static void perform_run(uint32_t id, bool answer, uint64_t notif_id, const unsigned char *body, uint32_t len,
			struct perform_spare *spare, char *argv0, char *out, unsigned char *frame)
{
	memset(out, 0, PERFORM_OUT);
	if (spare->pid < 0)
		*spare = perform_fork_spare(argv0, out, frame);
	struct perform_spare cur = *spare;
	if (cur.pid < 0)
		return perform_fallback(id, "fork failed");
	unsigned char lenb[4] = { len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, (len >> 24) & 0xff };
	bool sent = write(cur.req_w, lenb, 4) == 4;
	for (uint32_t done = 0; sent && done < len;) {
		ssize_t w = write(cur.req_w, body + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		sent = w > 0;
		done += w > 0 ? (uint32_t)w : 0;
	}
	close(cur.req_w);
	cur.req_w = -1;
	spare->pid = spare->req_w = spare->done_r = -1; /* the next one is forked once this call is answered */
	if (!sent) {
		/* The spare died before its request: nothing was run. */
		perform_drop(&cur);
		return perform_fallback(id, "the spare run is gone");
	}
	struct perform_done d = { 0 };
	ssize_t n = 0;
	struct pollfd p = { .fd = cur.done_r, .events = POLLIN };
	int r;
	do
		r = poll(&p, 1, PERFORM_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		do
			n = read(cur.done_r, &d, sizeof d);
		while (n < 0 && errno == EINTR);
	bool done = n == (ssize_t)sizeof d;
	d.syscall[sizeof d.syscall - 1] = '\0';
	/* The caller's answer first (a run that timed out is answered once it is killed, below). */
	int answer_err = 0, send_err = 0;
	uint64_t answered_us = 0;
	if (answer && done) {
		answer_err = perform_answer_errno(true, &d);
		send_err = perform_send(notif_id, answer_err);
		answered_us = perform_now_us();
	}
	unsigned char head[28];
	uint32_t v[7];
	uint32_t olen = 0;
	if (done) {
		/* Answered: the run exits on its own, and perform_reap collects it. */
		close(cur.done_r);
		olen = (uint32_t)strnlen(out, PERFORM_OUT - 1);
		v[0] = (uint32_t)d.rc;
		v[1] = 0;
	} else {
		/* Timed out, or died without an answer: it may have done something, so it fails (closed). */
		int status = 0;
		kill(cur.pid, SIGKILL);
		while (waitpid(cur.pid, &status, 0) < 0 && errno == EINTR)
			;
		close(cur.done_r);
		v[0] = (uint32_t)-1;
		v[1] = WIFSIGNALED(status) ? (uint32_t)WTERMSIG(status) : SIGKILL;
		if (answer) {
			answer_err = perform_answer_errno(false, &d);
			send_err = perform_send(notif_id, answer_err);
			answered_us = perform_now_us();
		}
	}
	v[2] = olen;
	v[3] = (uint32_t)answered_us;
	v[4] = (uint32_t)(answered_us >> 32);
	v[5] = (uint32_t)answer_err;
	v[6] = (uint32_t)send_err;
	int nv = answer ? 7 : 3;
	for (int i = 0; i < nv; i++)
		for (int k = 0; k < 4; k++)
			head[i * 4 + k] = (unsigned char)(v[i] >> (8 * k));
	perform_reply(id, answer ? 'A' : 'D', head, (size_t)nv * 4, out, olen);
	/*
	 * The next spare is forked now, off the call's path: forked while the run works, its fork and
	 * warm-up took CPU and the performer's attention from the run it waits for (measured: slower).
	 */
	*spare = perform_fork_spare(argv0, out, frame);
}

/* Reaps finished runs; a spare that died is forgotten (the next call forks another). */
static void perform_reap(struct perform_spare *spare)
{
	pid_t pid;
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		if (pid == spare->pid) {
			spare->pid = -1;
			perform_drop(spare);
		}
}

/* One request frame body (len bytes at p, after its length). */
static void perform_request(unsigned char *p, uint32_t len, struct perform_spare *spare, char *argv0, char *out,
			    unsigned char *frame)
{
	if (len < PERFORM_HEAD)
		_exit(1); /* not our protocol */
	uint32_t id = serve_get32(p);
	bool answer = (p[4] & PERFORM_ANSWER) != 0;
	uint64_t notif_id = (uint64_t)serve_get32(p + 5) | ((uint64_t)serve_get32(p + 9) << 32);
	const char *s = (const char *)p + PERFORM_HEAD, *end = (const char *)p + len;
	int argc = 0;
	const char *first = s;
	while (s < end) {
		const char *z = memchr(s, '\0', (size_t)(end - s));
		if (!z)
			return perform_fallback(id, "truncated request");
		argc++;
		s = z + 1;
	}
	if (argc > 120)
		return perform_fallback(id, "too many arguments");
	if (argc < 1 || (strcmp(first, "mount-as") != 0 && strcmp(first, "umount-as") != 0))
		return perform_fallback(id, "the performer runs mount-as and umount-as only");
	perform_run(id, answer, notif_id, p + PERFORM_HEAD, len - PERFORM_HEAD, spare, argv0, out, frame);
	perform_reap(spare);
}

static int main_perform(int argc, char **argv)
{
	char *end;
	long parent = argc == 3 ? strtol(argv[2], &end, 10) : 0;
	if (parent <= 1 || *end)
		return 2;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != (pid_t)parent)
		return 1;
	/* Host root with the notify fd: nothing in a container may read this process (see above). */
	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		return 1;
	if (fcntl(PERFORM_NOTIFY_FD, F_GETFD) < 0 || fcntl(PERFORM_FD, F_GETFD) < 0)
		return 1;
	/* Nothing else of the manager's (an fd it leaked without CLOEXEC) may reach the runs. */
	if (syscall(SYS_close_range, PERFORM_NOTIFY_FD + 1, ~0U, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (int fd = PERFORM_NOTIFY_FD + 1; fd < (max > 0 ? max : 65536); fd++)
			close(fd);
	}
	int fl = fcntl(PERFORM_FD, F_GETFL);
	if (fl < 0 || fcntl(PERFORM_FD, F_SETFL, fl & ~O_NONBLOCK) < 0 || chdir("/") < 0)
		return 1;
	fcntl(PERFORM_FD, F_SETFD, FD_CLOEXEC);
	char *out = mmap(NULL, PERFORM_OUT, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	unsigned char *frame = malloc(PERFORM_MAX_FRAME), *spare_frame = malloc(PERFORM_MAX_FRAME);
	if (out == MAP_FAILED || !frame || !spare_frame)
		return 1;
	struct perform_spare spare = perform_fork_spare(argv[0], out, spare_frame);
	perform_reply(0, 'R', NULL, 0, NULL, 0);
	for (;;) {
		unsigned char lenb[4];
		if (perform_read(lenb, 4) < 0) {
			perform_drop(&spare);
			return 0; /* the manager closed the notify fd, or is gone */
		}
		uint32_t len = serve_get32(lenb);
		if (len > PERFORM_MAX_FRAME || perform_read(frame, len) < 0) {
			perform_drop(&spare);
			return 1;
		}
		perform_request(frame, len, &spare, argv[0], out, spare_frame);
	}
}
