/*
 * eci-run: the client of `eci run` (bin/eci execs it for `run`, so no Node starts). Everything that
 * needs Node (flags, image store, spec, bundle, cleanup) is done by the already-running manager
 * (cli/run/session.ts); this program only moves argv, environment, signals and exit statuses:
 *   1. sends its argv (after `run`), cwd, pid and environment (RUN1);
 *   2. the manager answers `print` (--help), `fail` (one `eci:` line, exit 125) or `start`: the
 *      `eci-runc run` command line, run here as a child with our stdin (with -i), stdout and
 *      terminal, so runc stays in the user's session (raw mode, SIGWINCH) and a manager restart
 *      does not touch it; its stderr is passed through and its tail kept (for 126/127);
 *   3. reports how it ended (RUNX) and exits with the status the manager answers once it has
 *      removed the bundle. INT, TERM, HUP, QUIT, USR1, USR2 go to the child; a HUP is also told
 *      to the manager (SIGN), which kills a container still running HANGUP_GRACE_MS later, as it
 *      does when this client dies (its connection ends); with no manager connected, the client
 *      kills it itself.
 * Fails closed: no manager, no container (exit 125). Wire format: actors/shim-protocol.ts.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control-frame.h"

extern char **environ;

#define DEFAULT_RUN_DIR "/run/eci"
#define TAIL_MAX 4096
/* After the child ends, how long its stderr may stay open (a process of the container holding it). */
#define STDERR_LINGER_MS 1000
/* cli/run/run.ts HANGUP_GRACE_MS: after a hangup, how long the container may go on. */
#define HANGUP_GRACE_MS 5000

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, 0 };
static int sig_r = -1, sig_w = -1; /* self-pipe: one byte per signal caught */

static void on_signal(int sig)
{
	int e = errno;
	unsigned char c = (unsigned char)sig;
	(void)!write(sig_w, &c, 1);
	errno = e;
}

static void die(const char *what)
{
	fprintf(stderr, "eci: %s: %s\n", what, strerror(errno));
	exit(125);
}

void frame_out_of_memory(void)
{
	fprintf(stderr, "eci: out of memory\n");
	exit(125);
}

/* Whether `in` holds a whole reply; parses it into r (pointing into in). */
static int parse_reply(struct frame_buf *in, struct frame_reply *r)
{
	int got = frame_parse_reply(in, r);
	if (got < 0) {
		fprintf(stderr, "eci: bad reply from the eci manager\n");
		exit(125);
	}
	return got;
}

static pid_t child;
static int started;
static long long hup_deadline; /* when a hangup while the child runs is due (monotonic ms), 0: none */

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}
static int cancel_sig; /* a signal that came before the container started: do not start it */

/* Handles the signals caught since last time: forwarded to the child, a hangup told to the manager. */
static void handle_signals(int sock, int *manager_up)
{
	unsigned char c[64];
	ssize_t n = read(sig_r, c, sizeof c);
	for (ssize_t i = 0; i < n; i++) {
		int sig = c[i];
		if (sig == SIGCHLD)
			continue;
		if (started && child > 0) {
			kill(child, sig);
			if (sig == SIGHUP && !hup_deadline)
				hup_deadline = now_ms() + HANGUP_GRACE_MS;
		}
		else if (!started && !cancel_sig)
			cancel_sig = sig;
		if (sig == SIGHUP && *manager_up) {
			struct frame_buf b = { 0 };
			frame_put(&b, "SIGN");
			frame_putnum(&b, SIGHUP);
			if (frame_write_all(sock, b.p, b.n) < 0)
				*manager_up = 0;
			free(b.p);
		}
	}
}

/* Reads from the manager until a whole reply is in; signals are handled meanwhile. 0: connection lost. */
static int await_reply(int sock, struct frame_buf *in, struct frame_reply *r, int *manager_up)
{
	in->n = 0;
	for (;;) {
		if (in->n && parse_reply(in, r))
			return 1;
		struct pollfd p[2] = { { sock, POLLIN, 0 }, { sig_r, POLLIN, 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p[1].revents & POLLIN)
			handle_signals(sock, manager_up);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char chunk[4096];
			ssize_t got = read(sock, chunk, sizeof chunk);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				*manager_up = 0;
				return 0;
			}
			frame_append(in, chunk, (size_t)got);
		}
	}
}

/* Keeps the last TAIL_MAX bytes of the child's stderr (NULs made spaces: the tail is one field). */
static void keep_tail(char *tail, size_t *len, const char *b, size_t n)
{
	if (n >= TAIL_MAX) {
		b += n - TAIL_MAX;
		n = TAIL_MAX;
	}
	if (*len + n > TAIL_MAX) {
		size_t drop = *len + n - TAIL_MAX;
		memmove(tail, tail + drop, *len - drop);
		*len -= drop;
	}
	for (size_t i = 0; i < n; i++)
		tail[(*len)++] = b[i] ? b[i] : ' ';
}

static int exit_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 1;
}

/*
 * A hangup's kill when no manager is connected to do it (it died or was restarted): the start
 * command line is `<launcher> --root <R> run ... <id>` (actors/shim-protocol.ts), so the kill is
 * `<launcher> --root <R> kill <id> KILL`, which the launcher passes straight to runc.
 */
static void kill_container(char **argv, const char *socket_path)
{
	int n = 0;
	while (argv[n])
		n++;
	if (n < 5 || strcmp(argv[1], "--root") != 0 || strcmp(argv[3], "run") != 0)
		return;
	char *k[] = { argv[0], argv[1], argv[2], "kill", argv[n - 1], "KILL", NULL };
	pid_t p = fork();
	if (p == 0) {
		setenv("ECI_SOCKET", socket_path, 1);
		execv(k[0], k);
		_exit(127);
	}
}

/* Runs the manager's `eci-runc run` command line; returns its exit status, with its stderr tail. */
static int run_child(char **argv, int with_stdin, const char *socket_path, int sock, int *manager_up, char *tail, size_t *tail_len)
{
	int errp[2];
	if (pipe2(errp, O_CLOEXEC) < 0)
		die("pipe");
	started = 1;
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		for (int i = 0; forwarded[i]; i++)
			sigaction(forwarded[i], &dfl, NULL);
		sigaction(SIGCHLD, &dfl, NULL);
		sigaction(SIGPIPE, &dfl, NULL);
		if (!with_stdin) {
			int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (nul < 0 || dup2(nul, 0) < 0)
				_exit(125);
		}
		if (dup2(errp[1], 2) < 0)
			_exit(125);
		setenv("ECI_SOCKET", socket_path, 1);
		execv(argv[0], argv);
		fprintf(stderr, "eci: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(125);
	}
	close(errp[1]);
	int err = errp[0], st = 0, reaped = 0;
	for (;;) {
		if (!reaped) {
			pid_t w = waitpid(child, &st, WNOHANG);
			if (w == child) {
				reaped = 1;
				child = 0;
			}
		}
		if (reaped && err < 0)
			break;
		if (!reaped && hup_deadline && now_ms() >= hup_deadline) {
			hup_deadline = 0;
			if (!*manager_up)
				kill_container(argv, socket_path);
		}
		struct pollfd p[3] = { { sig_r, POLLIN, 0 }, { err, err >= 0 ? POLLIN : 0, 0 }, { *manager_up ? sock : -1, POLLIN, 0 } };
		int timeout = reaped ? STDERR_LINGER_MS : -1;
		if (!reaped && hup_deadline) {
			long long left = hup_deadline - now_ms();
			timeout = left < 0 ? 0 : (int)left;
		}
		int r = poll(p, 3, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (r == 0 && reaped)
			break; /* a process of the container still holds stderr: stop waiting for it */
		if (p[0].revents & POLLIN)
			handle_signals(sock, manager_up);
		if (err >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			char b[4096];
			ssize_t n = read(err, b, sizeof b);
			if (n > 0) {
				(void)!frame_write_all(2, b, (size_t)n);
				keep_tail(tail, tail_len, b, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(err);
				err = -1;
			}
		}
		/* The manager's side: nothing is due while the child runs, so readable means it went away. */
		if (*manager_up && (p[2].revents & (POLLIN | POLLHUP | POLLERR)))
			*manager_up = 0;
	}
	if (err >= 0)
		close(err);
	return exit_status(st);
}

static void finish(const struct frame_reply *r)
{
	if (strcmp(r->action, "done") == 0 && r->nf == 1)
		exit(atoi(r->f[0]));
	if ((strcmp(r->action, "fail") == 0 || strcmp(r->action, "print") == 0) && r->nf == 2) {
		FILE *out = r->action[0] == 'f' ? stderr : stdout;
		fputs(r->f[0], out);
		fflush(out);
		exit(atoi(r->f[1]));
	}
	fprintf(stderr, "eci: unexpected reply %s from the eci manager\n", r->action);
	exit(125);
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "run") != 0) {
		fprintf(stderr, "eci-run: usage: eci-run run [FLAGS] IMAGE [CMD...] (through bin/eci)\n");
		return 125;
	}
	int sp[2];
	if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0)
		die("pipe");
	sig_r = sp[0];
	sig_w = sp[1];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	for (int i = 0; forwarded[i]; i++)
		sigaction(forwarded[i], &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a manager gone shows as EPIPE */

	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *env_sock = getenv("ECI_SOCKET"), *run_dir = getenv("ECI_RUN_DIR");
	int plen = env_sock && *env_sock ? snprintf(path, sizeof path, "%s", env_sock)
					: snprintf(path, sizeof path, "%s/eci.sock", run_dir && *run_dir ? run_dir : DEFAULT_RUN_DIR);
	if (plen < 0 || (size_t)plen >= sizeof path) {
		fprintf(stderr, "eci: socket path too long: %s\n", env_sock ? env_sock : run_dir);
		return 125;
	}
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, (size_t)plen + 1);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sun, sizeof sun) < 0) {
		fprintf(stderr, "eci: the eci manager is not reachable at %s: start it with `eci daemon` "
				"(eci run never runs a container without isolation)\n", path);
		return 125;
	}

	struct frame_buf out = { 0 }, in = { 0 };
	char cwd[4096];
	if (!getcwd(cwd, sizeof cwd))
		cwd[0] = 0;
	frame_put(&out, "RUN1");
	frame_put(&out, cwd);
	frame_putnum(&out, (long)getpid());
	frame_putnum(&out, argc - 2);
	for (int i = 2; i < argc; i++)
		frame_put(&out, argv[i]);
	long ne = 0;
	for (char **e = environ; *e; e++)
		ne++;
	frame_putnum(&out, ne);
	for (char **e = environ; *e; e++)
		frame_put(&out, *e);
	int manager_up = 1;
	struct frame_reply r;
	if (frame_write_all(sock, out.p, out.n) < 0 || !await_reply(sock, &in, &r, &manager_up)) {
		fprintf(stderr, "eci: lost the connection to the eci manager at %s before the container started\n", path);
		return 125;
	}
	if (strcmp(r.action, "start") != 0 || r.nf < 2)
		finish(&r);

	int status;
	char tail[TAIL_MAX];
	size_t tail_len = 0;
	if (cancel_sig) {
		status = 128 + cancel_sig;
	} else {
		status = run_child(r.f + 1, strcmp(r.f[0], "1") == 0, path, sock, &manager_up, tail, &tail_len);
	}
	if (!manager_up)
		return status; /* the manager died: a later run sweeps the bundle */
	out.n = 0;
	frame_put(&out, "RUNX");
	frame_putnum(&out, status);
	frame_put(&out, started ? "1" : "0");
	frame_append(&out, tail, tail_len);
	frame_append(&out, "", 1);
	if (frame_write_all(sock, out.p, out.n) < 0 || !await_reply(sock, &in, &r, &manager_up))
		return status;
	finish(&r);
	return status;
}
