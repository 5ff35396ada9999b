/* serve: see serve.h. */
#include "helper.h"
#include "serve.h"
#include <poll.h>
#include <time.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define SERVE_TIMEOUT_MS 60000
#define SERVE_MAX_JOBS 128
#define SERVE_MAX_FRAME (8u << 20)
#define SERVE_MAX_OUTPUT (16u << 20)
#define SERVE_FD 3

struct serve_buf {
	char *p;
	size_t len, cap;
};

struct serve_job {
	bool used, exited;
	uint32_t id;
	pid_t pid;
	int pidfd, outfd, errfd, status;
	long long deadline;
	struct serve_buf out, err;
};

static struct serve_job serve_jobs[SERVE_MAX_JOBS];
static int serve_njobs;
static int serve_parent_pidfd = -1;

static long long serve_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int serve_buf_add(struct serve_buf *b, const void *data, size_t n, size_t max)
{
	if (b->len + n > max)
		n = b->len < max ? max - b->len : 0;
	if (n == 0)
		return 0;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

static void serve_put32(struct serve_buf *b, uint32_t v)
{
	unsigned char c[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff };
	if (serve_buf_add(b, c, 4, SIZE_MAX) < 0)
		_exit(1);
}

uint32_t serve_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* n integers, little-endian, into dst (4 * n bytes): the fixed head of a reply frame (serve's and perform's). */
void serve_pack32(unsigned char *dst, const uint32_t *v, int n)
{
	for (int i = 0; i < n; i++)
		for (int k = 0; k < 4; k++)
			dst[i * 4 + k] = (unsigned char)(v[i] >> (8 * k));
}

/* Closes every fd from `first` up (close_range, or one by one on kernels without it). */
void serve_close_from(int first)
{
	if (syscall(SYS_close_range, (unsigned int)first, ~0U, 0) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	for (int fd = first; fd < (max > 0 ? max : 65536); fd++)
		close(fd);
}

/*
 * For `serve PARENT_PID` and `perform PARENT_PID`: dies with the manager (PR_SET_PDEATHSIG), and only
 * runs as its child. Returns 0, or the exit status: 2 for bad arguments, 1 when not the child of PARENT_PID.
 */
int serve_child_of(int argc, char **argv, pid_t *parent)
{
	char *end;
	long p = argc == 3 ? strtol(argv[2], &end, 10) : 0;
	if (p <= 1 || *end)
		return 2;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != (pid_t)p)
		return 1;
	*parent = (pid_t)p;
	return 0;
}

/* Sends one reply frame on fd (serve's and perform's); the manager being gone ends the process. */
void serve_send_frame(int fd, uint32_t id, char kind, const void *a, size_t alen, const void *b, size_t blen,
			     const void *c, size_t clen)
{
	struct serve_buf f = { 0 };
	serve_put32(&f, (uint32_t)(4 + 1 + alen + blen + clen));
	serve_put32(&f, id);
	if (serve_buf_add(&f, &kind, 1, SIZE_MAX) < 0 || serve_buf_add(&f, a, alen, SIZE_MAX) < 0 ||
	    serve_buf_add(&f, b, blen, SIZE_MAX) < 0 || serve_buf_add(&f, c, clen, SIZE_MAX) < 0)
		_exit(1);
	for (size_t done = 0; done < f.len;) {
		ssize_t w = send(fd, f.p + done, f.len - done, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			poll(&p, 1, -1);
			continue;
		}
		if (w <= 0)
			_exit(0);
		done += (size_t)w;
	}
	free(f.p);
}

static void serve_reply(uint32_t id, char kind, const void *a, size_t alen, const void *b, size_t blen,
			const void *c, size_t clen)
{
	serve_send_frame(SERVE_FD, id, kind, a, alen, b, blen, c, clen);
}

static void serve_fallback(uint32_t id, const char *why)
{
	serve_reply(id, 'F', why, strlen(why), NULL, 0, NULL, 0);
}

/* In the forked run: become a freshly spawned eci-helper and run main(). Never returns. */
static void serve_child(int devnull, int outw, int errw, int passed, int argc, char **argv, char **env)
{
	sigset_t none;
	sigemptyset(&none);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Every source fd is above SERVE_FD (0..3 stay taken in the server), so none is clobbered. */
	if (dup2(devnull, 0) < 0 || dup2(outw, 1) < 0 || dup2(errw, 2) < 0 || (passed >= 0 && dup2(passed, 3) < 0))
		_exit(127);
	serve_close_from(passed >= 0 ? 4 : 3);
	clearenv();
	for (char **e = env; *e; e++)
		putenv(*e);
	exit(main(argc, argv));
}

/* One request frame (len bytes at p, after its length). */
static void serve_request(const unsigned char *p, uint32_t len, const char *argv0)
{
	if (len < 16)
		_exit(1); /* not our protocol */
	uint32_t id = serve_get32(p), nargs = serve_get32(p + 8), nenv = serve_get32(p + 12);
	int32_t fd = (int32_t)serve_get32(p + 4);
	const char *s = (const char *)p + 16, *end = (const char *)p + len;
	if (nargs < 1 || nargs > 4096 || nenv > 65536)
		return serve_fallback(id, "bad request counts");
	size_t n = 1 + (size_t)nargs + nenv;
	char **strs = calloc(n + 2, sizeof(char *));
	if (!strs)
		return serve_fallback(id, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *z = memchr(s, '\0', (size_t)(end - s));
		if (!z) {
			free(strs);
			return serve_fallback(id, "truncated request");
		}
		strs[i + 1] = (char *)s; /* strs[0]: argv[0]; strs[1]: cwd; then argv[1..], NULL, environ */
		s = z + 1;
	}
	/* argv = { argv0, args..., NULL } (args move down over cwd), env = { ..., NULL } where it is. */
	char *cwd = strs[1];
	strs[0] = (char *)argv0;
	for (uint32_t i = 0; i < nargs; i++)
		strs[1 + i] = strs[2 + i];
	strs[nargs + 1] = NULL;
	strs[nargs + 2 + nenv] = NULL;
	char **args = strs, **env = &strs[nargs + 2];

	struct serve_job *j = NULL;
	int passed = -1, devnull = -1, outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	const char *why = NULL;
	for (int i = 0; i < SERVE_MAX_JOBS && !j; i++)
		if (!serve_jobs[i].used)
			j = &serve_jobs[i];
	if (strcmp(args[1], "serve") == 0 || strcmp(args[1], "perform") == 0)
		why = "serve and perform are not requests";
	else if (!j)
		why = "too many runs";
	else if (fd >= 0 && (passed = (int)syscall(SYS_pidfd_getfd, serve_parent_pidfd, fd, 0)) < 0)
		why = "pidfd_getfd failed";
	else if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0 || pipe2(outp, O_CLOEXEC) < 0 ||
		 pipe2(errp, O_CLOEXEC) < 0)
		why = "cannot open /dev/null or pipes";
	else if (chdir(cwd) < 0)
		why = "cannot chdir to the cwd";
	pid_t pid = -1;
	if (!why) {
		pid = fork();
		if (pid == 0)
			serve_child(devnull, outp[1], errp[1], passed, (int)nargs + 1, args, env);
		if (chdir("/") < 0) {
			/* nothing to do: every run gets its own cwd anyway */
		}
		if (pid < 0)
			why = "fork failed";
	}
	int fds[] = { passed, devnull, outp[1], errp[1] };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(strs);
	if (why) {
		if (outp[0] >= 0)
			close(outp[0]);
		if (errp[0] >= 0)
			close(errp[0]);
		return serve_fallback(id, why);
	}
	memset(j, 0, sizeof(*j));
	j->used = true;
	j->id = id;
	j->pid = pid;
	j->pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* -1: polled with WNOHANG instead */
	j->outfd = outp[0];
	j->errfd = errp[0];
	j->deadline = serve_now_ms() + SERVE_TIMEOUT_MS;
	serve_njobs++;
	serve_reply(id, 'S', NULL, 0, NULL, 0, NULL, 0);
}

static void serve_drain(struct serve_job *j, int *fd, struct serve_buf *b)
{
	char chunk[65536];
	ssize_t n = read(*fd, chunk, sizeof chunk);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	if (serve_buf_add(b, chunk, (size_t)n, SERVE_MAX_OUTPUT) < 0) {
		kill(j->pid, SIGKILL);
		_exit(1);
	}
}

static void serve_finish(struct serve_job *j)
{
	int32_t code = WIFEXITED(j->status) ? WEXITSTATUS(j->status) : -1;
	int32_t sig = WIFSIGNALED(j->status) ? WTERMSIG(j->status) : 0;
	unsigned char head[12];
	uint32_t v[3] = { (uint32_t)code, (uint32_t)sig, (uint32_t)j->out.len };
	serve_pack32(head, v, 3);
	serve_reply(j->id, 'D', head, sizeof head, j->out.p, j->out.len, j->err.p, j->err.len);
	free(j->out.p);
	free(j->err.p);
	memset(j, 0, sizeof(*j));
	serve_njobs--;
}

int main_serve(int argc, char **argv)
{
	pid_t parent;
	int bad = serve_child_of(argc, argv, &parent);
	if (bad)
		return bad;
	serve_parent_pidfd = (int)syscall(SYS_pidfd_open, (pid_t)parent, 0);
	if (getppid() != (pid_t)parent)
		return 1;
	/* fds 0..3 stay taken, so that every fd opened later is above SERVE_FD (see serve_child). */
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			return 1;
	int fl = fcntl(SERVE_FD, F_GETFL);
	if (fl < 0 || fcntl(SERVE_FD, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return 1;
	fcntl(SERVE_FD, F_SETFD, FD_CLOEXEC);
	if (chdir("/") < 0)
		return 1;

	struct serve_buf in = { 0 };
	bool eof = false;
	for (;;) {
		if (eof && serve_njobs == 0)
			return 0;
		struct pollfd pfd[1 + 3 * SERVE_MAX_JOBS];
		struct { struct serve_job *j; int what; } who[1 + 3 * SERVE_MAX_JOBS];
		int n = 0;
		bool unpolled = false;
		long long now = serve_now_ms(), wait = -1;
		if (!eof && serve_njobs < SERVE_MAX_JOBS) {
			pfd[n] = (struct pollfd){ .fd = SERVE_FD, .events = POLLIN };
			who[n++].j = NULL;
		}
		for (int i = 0; i < SERVE_MAX_JOBS; i++) {
			struct serve_job *j = &serve_jobs[i];
			if (!j->used)
				continue;
			if (j->outfd >= 0) {
				pfd[n] = (struct pollfd){ .fd = j->outfd, .events = POLLIN };
				who[n].j = j;
				who[n++].what = 1;
			}
			if (j->errfd >= 0) {
				pfd[n] = (struct pollfd){ .fd = j->errfd, .events = POLLIN };
				who[n].j = j;
				who[n++].what = 2;
			}
			if (!j->exited && j->pidfd >= 0) {
				pfd[n] = (struct pollfd){ .fd = j->pidfd, .events = POLLIN };
				who[n].j = j;
				who[n++].what = 3;
			} else if (!j->exited) {
				unpolled = true;
			}
			if (!j->exited && j->deadline > 0) {
				long long left = j->deadline - now;
				if (left < 0)
					left = 0;
				if (wait < 0 || left < wait)
					wait = left;
			}
		}
		if (unpolled && (wait < 0 || wait > 10))
			wait = 10;
		int r = poll(pfd, (nfds_t)n, wait < 0 ? -1 : (int)(wait > INT_MAX ? INT_MAX : wait));
		if (r < 0 && errno != EINTR)
			return 1;
		for (int i = 0; r > 0 && i < n; i++) {
			if (!pfd[i].revents)
				continue;
			struct serve_job *j = who[i].j;
			if (!j) {
				char chunk[65536];
				ssize_t got = recv(SERVE_FD, chunk, sizeof chunk, MSG_DONTWAIT);
				if (got < 0 && (errno == EINTR || errno == EAGAIN))
					continue;
				if (got <= 0) {
					eof = true; /* the manager is gone or done: finish what runs, then exit */
					continue;
				}
				if (serve_buf_add(&in, chunk, (size_t)got, SIZE_MAX) < 0)
					return 1;
				size_t off = 0;
				while (in.len - off >= 4) {
					uint32_t flen = serve_get32((unsigned char *)in.p + off);
					if (flen > SERVE_MAX_FRAME)
						return 1;
					if (in.len - off - 4 < flen)
						break;
					serve_request((unsigned char *)in.p + off + 4, flen, argv[0]);
					off += 4 + (size_t)flen;
				}
				memmove(in.p, in.p + off, in.len - off);
				in.len -= off;
			} else if (who[i].what == 1) {
				serve_drain(j, &j->outfd, &j->out);
			} else if (who[i].what == 2) {
				serve_drain(j, &j->errfd, &j->err);
			}
		}
		/* Reap, kill what is overdue, and answer what is over. */
		now = serve_now_ms();
		for (int i = 0; i < SERVE_MAX_JOBS; i++) {
			struct serve_job *j = &serve_jobs[i];
			if (!j->used)
				continue;
			if (!j->exited) {
				pid_t w = waitpid(j->pid, &j->status, WNOHANG);
				if (w == j->pid) {
					j->exited = true;
					if (j->pidfd >= 0)
						close(j->pidfd);
					j->pidfd = -1;
				} else if (j->deadline > 0 && now >= j->deadline) {
					kill(j->pid, SIGKILL);
					j->deadline = 0;
				}
			}
			if (j->exited && j->outfd < 0 && j->errfd < 0)
				serve_finish(j);
		}
	}
}
