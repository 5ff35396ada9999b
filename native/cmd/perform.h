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
 *   request  (manager -> performer): u32 len (of what follows), u32 id, NUL-terminated strings: argv[1..]
 *            of a mount-as or umount-as run (with --notif-fd 4 --notif-id ID);
 *   reply    (performer -> manager): u32 len, u32 id, u8 kind, then
 *            'D' i32 exit code, i32 signal (0: exited), u32 stdout length, stdout (serve.h's 'D' frame), or
 *            'F' reason: nothing was run (the manager runs the call another way).
 * Requests are run one at a time, in order: a container's calls wait for each other, never for another
 * container's (each has its own performer).
 *
 * Each run is a fork that runs main() with the request's argv, its stdout a shared page read back once
 * it has exited; mount-as's as_run then does every check of a spawned helper (the notification's
 * ID_VALID after pinning /proc/P, P's namespaces, root, cwd, ids and capabilities). The performer itself
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
	struct serve_buf f = { 0 };
	serve_put32(&f, (uint32_t)(4 + 1 + alen + blen));
	serve_put32(&f, id);
	if (serve_buf_add(&f, &kind, 1, SIZE_MAX) < 0 || serve_buf_add(&f, a, alen, SIZE_MAX) < 0 ||
	    serve_buf_add(&f, b, blen, SIZE_MAX) < 0)
		_exit(1);
	for (size_t done = 0; done < f.len;) {
		ssize_t w = send(PERFORM_FD, f.p + done, f.len - done, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(0);
		done += (size_t)w;
	}
	free(f.p);
}

static void perform_fallback(uint32_t id, const char *why)
{
	perform_reply(id, 'F', why, strlen(why), NULL, 0);
}

/* Runs argv (argv[1] mount-as/umount-as) in a fork; answers 'D' with its exit and output. */
static void perform_run(uint32_t id, int argc, char **argv, char *out)
{
	memset(out, 0, PERFORM_OUT);
	pid_t pid = fork();
	if (pid < 0)
		return perform_fallback(id, "fork failed");
	if (pid == 0) {
		/* The run answers through its stdout only; it never touches the manager's socket. */
		close(PERFORM_FD);
		FILE *f = fmemopen(out, PERFORM_OUT - 1, "w");
		if (!f)
			_exit(127);
		stdout = f;
		int rc = main(argc, argv);
		fflush(f);
		_exit(rc);
	}
	int status = 0;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd >= 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int r;
		do
			r = poll(&p, 1, PERFORM_TIMEOUT_MS);
		while (r < 0 && errno == EINTR);
		if (r == 0)
			kill(pid, SIGKILL);
		close(pidfd);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	unsigned char head[12];
	uint32_t len = WIFEXITED(status) ? (uint32_t)strnlen(out, PERFORM_OUT - 1) : 0;
	uint32_t v[3] = { (uint32_t)(WIFEXITED(status) ? WEXITSTATUS(status) : -1),
			  (uint32_t)(WIFSIGNALED(status) ? WTERMSIG(status) : 0), len };
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 4; k++)
			head[i * 4 + k] = (unsigned char)(v[i] >> (8 * k));
	perform_reply(id, 'D', head, sizeof head, out, len);
}

/* One request frame body (len bytes at p, after its length). */
static void perform_request(unsigned char *p, uint32_t len, char *argv0, char *out)
{
	if (len < 4)
		_exit(1); /* not our protocol */
	uint32_t id = serve_get32(p);
	char *s = (char *)p + 4, *end = (char *)p + len;
	char *args[128];
	int argc = 0;
	args[argc++] = argv0;
	while (s < end) {
		char *z = memchr(s, '\0', (size_t)(end - s));
		if (!z)
			return perform_fallback(id, "truncated request");
		if (argc >= (int)(sizeof args / sizeof args[0]) - 1)
			return perform_fallback(id, "too many arguments");
		args[argc++] = s;
		s = z + 1;
	}
	args[argc] = NULL;
	if (argc < 2 || (strcmp(args[1], "mount-as") != 0 && strcmp(args[1], "umount-as") != 0))
		return perform_fallback(id, "the performer runs mount-as and umount-as only");
	perform_run(id, argc, args, out);
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
	unsigned char *frame = malloc(PERFORM_MAX_FRAME);
	if (out == MAP_FAILED || !frame)
		return 1;
	perform_reply(0, 'R', NULL, 0, NULL, 0);
	for (;;) {
		unsigned char lenb[4];
		if (perform_read(lenb, 4) < 0)
			return 0; /* the manager closed the notify fd, or is gone */
		uint32_t len = serve_get32(lenb);
		if (len > PERFORM_MAX_FRAME || perform_read(frame, len) < 0)
			return 1;
		perform_request(frame, len, argv[0], out);
	}
}
