/*
 * eci-runc: the runc-compatible command that engines call several times per container. Its fixed
 * cost decides eci's start-time overhead, so it is a tiny C program: verbs that need no policy go
 * straight to runc (exec, no round trip); the rest are forwarded to the already-running manager
 * (TypeScript) over a unix socket, which answers with what to run. All decisions live in the
 * manager; this file only moves argv, fds and exit statuses (and, told to, does runc start's fifo
 * read itself: start_native). Wire format: actors/shim-protocol.ts.
 *
 * Fails closed: if the manager cannot be reached, create/run/exec/restore are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control-frame.h"

#ifndef ECI_VERSION
#define ECI_VERSION "0.1.0"
#endif

#define DEFAULT_SOCKET "/run/eci/eci.sock"
#define REPLY_TIMEOUT_S 120

extern char **environ;

static pid_t child_pid;

/*
 * ECI_LAUNCHER_TRACE=<file> (off by default; for measuring the per-call cost): one line per call is
 * appended there: the verb, the wall-clock start, then µs from it to each step reached (connected,
 * answered, runc spawned, runc exited, finished) and the manager's action.
 */
enum { T_CONN, T_REPLY, T_SPAWNED, T_EXITED, T_DONE, T_N };
static struct {
	const char *path, *verb;
	struct timespec t0;
	long us[T_N];
} trace;

static void trace_mark(int step)
{
	if (!trace.path)
		return;
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	trace.us[step] = (t.tv_sec - trace.t0.tv_sec) * 1000000L + (t.tv_nsec - trace.t0.tv_nsec) / 1000;
}

static void trace_flush(const char *action)
{
	if (!trace.path)
		return;
	trace_mark(T_DONE);
	char line[256];
	int n = snprintf(line, sizeof line, "%s %ld.%06ld conn=%ld reply=%ld spawned=%ld exited=%ld done=%ld %s\n",
			 trace.verb ? trace.verb : "-", (long)trace.t0.tv_sec, trace.t0.tv_nsec / 1000, trace.us[T_CONN],
			 trace.us[T_REPLY], trace.us[T_SPAWNED], trace.us[T_EXITED], trace.us[T_DONE], action);
	/* O_NOFOLLOW: the launcher runs as root and the file is often in /tmp, where anyone may plant a link. */
	int fd = open(trace.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		(void)!write(fd, line, (size_t)n); /* one write: lines of concurrent calls do not mix */
		close(fd);
	}
}

static const char *runc_path(void)
{
	const char *r = getenv("ECI_RUNC");
	return (r && *r) ? r : "runc";
}

/* Global runc flags that take a value (runc 1.1.5 main.go). */
static int global_takes_value(const char *name)
{
	static const char *v[] = { "root", "log", "log-format", "criu", "rootless", NULL };
	for (int i = 0; v[i]; i++)
		if (strcmp(name, v[i]) == 0)
			return 1;
	return 0;
}

/* Verbs that carry no policy decision: runc directly, no manager round trip. */
static int bypass_verb(const char *verb)
{
	static const char *v[] = { "state", "kill", "ps", "list", "events", "pause", "resume", "spec",
				   "update", "checkpoint", "features", "help", "h", NULL };
	if (!verb)
		return 1;
	for (int i = 0; v[i]; i++)
		if (strcmp(verb, v[i]) == 0)
			return 1;
	return 0;
}

/* Verbs that must never run without the manager: they would start an unprotected process. */
static int protected_verb(const char *verb)
{
	return strcmp(verb, "create") == 0 || strcmp(verb, "run") == 0 || strcmp(verb, "exec") == 0 ||
	       strcmp(verb, "restore") == 0;
}

static void exec_runc(int argc, char **argv)
{
	char **a = calloc((size_t)argc + 1, sizeof(char *));
	if (!a)
		_exit(1);
	a[0] = (char *)runc_path();
	for (int i = 1; i < argc; i++)
		a[i] = argv[i];
	execvp(a[0], a);
	fprintf(stderr, "eci: cannot run %s: %s\n", a[0], strerror(errno));
	_exit(127);
}

#define RUNC_DEFAULT_ROOT "/run/runc" /* runc 1.1.5's --root for uid 0 */
#define STOP_SIGNAL_FILE "eci-stop-signal" /* actors/stop-signal.ts */

/* Whether a runc kill signal argument is SIGTERM, what engines send to stop a container. */
static int is_sigterm(const char *s)
{
	return strcmp(s, "15") == 0 || strcmp(s, "TERM") == 0 || strcmp(s, "SIGTERM") == 0;
}

/*
 * `kill [flags] <id> [signal]` with SIGTERM (or none: runc's default is SIGTERM) for a container whose
 * manager left a stop signal in runc's state dir (systemd halts on SIGRTMIN+3; see actors/stop-signal.ts):
 * runs runc with that signal instead. Anything else, or no such file, leaves argv as it is.
 */
static void kill_with_stop_signal(int argc, char **argv, int verb_at, const char *root)
{
	int pos[3], np = 0;
	for (int j = verb_at + 1; j < argc; j++) {
		if (argv[j][0] == '-')
			continue; /* runc 1.1.5 kill's flags (--all) take no value */
		if (np == 3)
			return;
		pos[np++] = j;
	}
	if (np < 1 || np > 2 || (np == 2 && !is_sigterm(argv[pos[1]])))
		return;
	const char *id = argv[pos[0]];
	if (!*id || strchr(id, '/') || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return;
	char path[4096], sig[16];
	if (snprintf(path, sizeof path, "%s/%s/%s", root ? root : RUNC_DEFAULT_ROOT, id, STOP_SIGNAL_FILE) >= (int)sizeof path)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	ssize_t n = read(fd, sig, sizeof sig - 1);
	close(fd);
	if (n <= 0)
		return;
	sig[n] = 0;
	sig[strcspn(sig, "\n")] = 0;
	char *end;
	long v = strtol(sig, &end, 10);
	if (*end || v < 1 || v > 64)
		return;
	char **a = calloc((size_t)argc + 2, sizeof(char *));
	if (!a)
		return;
	for (int j = 0; j < argc; j++)
		a[j] = argv[j];
	if (np == 2)
		a[pos[1]] = sig;
	else
		a[argc++] = sig;
	exec_runc(argc, a);
}

/* Appends an error to runc's --log file, where containerd and Docker look for the reason. */
static void log_error(const char *log, const char *format, const char *msg)
{
	if (!log)
		return;
	FILE *f = fopen(log, "a");
	if (!f)
		return;
	char ts[64];
	time_t now = time(NULL);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	if (format && strcmp(format, "json") == 0) {
		fputs("{\"level\":\"error\",\"msg\":\"", f);
		for (const char *p = msg; *p; p++) {
			if (*p == '"' || *p == '\\')
				fputc('\\', f);
			if ((unsigned char)*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
		fprintf(f, "\",\"time\":\"%s\"}\n", ts);
	} else {
		fprintf(f, "time=\"%s\" level=error msg=\"%s\"\n", ts, msg);
	}
	fclose(f);
}

void frame_out_of_memory(void)
{
	_exit(1);
}

static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static int spawn_and_wait(char **argv)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGPIPE, 0 };
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = forward;
	sa.sa_flags = SA_RESTART;
	for (int i = 0; sigs[i]; i++)
		sigaction(sigs[i], &sa, NULL);
	/* posix_spawn (a vfork underneath): no copy of our page tables per call. A signal caught here
	 * is reset to its default in the child by exec, as it was after fork. The forwarded signals are
	 * held until child_pid is known (the spawn lasts until runc's exec); the child gets our mask as it was. */
	sigset_t fwd, old;
	sigemptyset(&fwd);
	for (int i = 0; sigs[i]; i++)
		sigaddset(&fwd, sigs[i]);
	sigprocmask(SIG_BLOCK, &fwd, &old);
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &old);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	pid_t pid;
	int e = posix_spawnp(&pid, argv[0], NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	trace_mark(T_SPAWNED);
	child_pid = e ? 0 : pid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (e) {
		fprintf(stderr, "eci: cannot run %s: %s\n", argv[0], strerror(e));
		return 127;
	}
	int st;
	while (waitpid(child_pid, &st, 0) < 0)
		if (errno != EINTR)
			return 127;
	child_pid = 0;
	trace_mark(T_EXITED);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 1;
}

/* Whether pid runs (a zombie has ended: runc 1.1.5's exec() looks at the same state letter). */
static int init_alive(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *close_paren = strrchr(buf, ')');
	return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

/*
 * `start` of a created container without starting runc (reply "fifo", actors/shim-protocol.ts): what
 * runc 1.1.5's start does for one (libcontainer's exec(): open the exec fifo its init blocks on, take
 * the byte the init writes just before it execs the process, remove the fifo), minus the Go binary's
 * start (~4 ms of CPU and of wall per `docker run`). Returns -1 where runc start must answer instead,
 * before anything is consumed: no fifo (the container is not `created`: runc says why), an init that
 * died before it wrote (runc's own check, every 100 ms, is the same), nothing to read (another start
 * took it), or NOTIFY_SOCKET (runc relays sd_notify). Else the exit status: 0.
 */
static int start_native(const char *fifo, pid_t init)
{
	const char *notify = getenv("NOTIFY_SOCKET");
	if ((notify && *notify) || init <= 0)
		return -1;
	int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
		close(fd);
		return -1;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, 100);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0)
			break; /* data, or a writer that came and went: the read decides */
		if (r < 0 || !init_alive(init)) {
			close(fd);
			return -1;
		}
	}
	char b[16];
	ssize_t n;
	do
		n = read(fd, b, sizeof b);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return -1;
	unlink(fifo); /* as runc does once the byte is read */
	return 0;
}

int main(int argc, char **argv)
{
	trace.path = getenv("ECI_LAUNCHER_TRACE");
	if (trace.path && !*trace.path)
		trace.path = NULL;
	if (trace.path)
		clock_gettime(CLOCK_REALTIME, &trace.t0);
	const char *verb = NULL, *log = NULL, *log_format = NULL, *root = NULL;
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || strcmp(a, "-") == 0)
			break;
		const char *name = a + (a[1] == '-' ? 2 : 1);
		const char *eq = strchr(name, '=');
		char nbuf[32];
		size_t nl = eq ? (size_t)(eq - name) : strlen(name);
		if (nl >= sizeof nbuf)
			continue;
		memcpy(nbuf, name, nl);
		nbuf[nl] = 0;
		if (strcmp(nbuf, "version") == 0 || strcmp(nbuf, "v") == 0) {
			printf("eci-runc version %s\n", ECI_VERSION);
			fflush(stdout);
			exec_runc(argc, argv);
		}
		if (global_takes_value(nbuf)) {
			const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (strcmp(nbuf, "log") == 0)
				log = val;
			if (strcmp(nbuf, "root") == 0)
				root = val;
			if (strcmp(nbuf, "log-format") == 0)
				log_format = val;
		}
	}
	if (i < argc)
		verb = argv[i];
	trace.verb = verb;
	if (verb && strcmp(verb, "kill") == 0)
		kill_with_stop_signal(argc, argv, i, root);
	if (bypass_verb(verb))
		exec_runc(argc, argv);

	const char *path = getenv("ECI_SOCKET");
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		fprintf(stderr, "eci: socket path too long: %s\n", path);
		return 1;
	}
	strcpy(sun.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		if (!protected_verb(verb))
			exec_runc(argc, argv);
		char msg[512];
		snprintf(msg, sizeof msg,
			 "the eci manager is not reachable at %s (%s): refusing to %s a container without isolation; "
			 "start it with `eci daemon`",
			 path, strerror(errno), verb);
		log_error(log, log_format, msg);
		fprintf(stderr, "eci: %s\n", msg);
		return 1;
	}
	trace_mark(T_CONN);
	struct timeval tv = { REPLY_TIMEOUT_S, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

	struct frame_buf out = { 0 }, in = { 0 };
	char cwd[4096];
	if (!getcwd(cwd, sizeof cwd))
		cwd[0] = 0;
	frame_put(&out, "ECI1");
	frame_put(&out, cwd);
	frame_putnum(&out, argc - 1);
	for (int j = 1; j < argc; j++)
		frame_put(&out, argv[j]);
	if (frame_write_all(fd, out.p, out.n) < 0)
		goto lost;

	struct frame_reply r;
	if (frame_read_reply(fd, &in, &r) < 0)
		goto lost;
	trace_mark(T_REPLY);
	char *action = r.action, **f = r.f;
	int nf = r.nf;
	if (strcmp(action, "exec") == 0 && nf > 0) {
		close(fd);
		trace_flush("exec");
		execvp(f[0], f);
		fprintf(stderr, "eci: cannot run %s: %s\n", f[0], strerror(errno));
		return 127;
	} else if ((strcmp(action, "tell") == 0 && nf > 0) || (strcmp(action, "fifo") == 0 && nf > 2)) {
		/* The manager only learns how it ended: no answer to wait for (actors/shim-protocol.ts). */
		int status = -1;
		if (action[0] == 'f') {
			status = start_native(f[0], (pid_t)atoi(f[1]));
			f += 2;
			if (status >= 0)
				trace_mark(T_EXITED);
		}
		if (status < 0)
			status = spawn_and_wait(f);
		out.n = 0;
		frame_put(&out, "EXIT");
		frame_putnum(&out, status);
		(void)!frame_write_all(fd, out.p, out.n); /* a manager gone reconciles later */
		trace_flush(action);
		return status;
	} else if (strcmp(action, "spawn") == 0 && nf > 0) {
		/* The run itself may outlive any timeout (runc run in the foreground). */
		struct timeval none = { 0, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
		int status = spawn_and_wait(f);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		out.n = 0;
		frame_put(&out, "EXIT");
		frame_putnum(&out, status);
		if (frame_write_all(fd, out.p, out.n) < 0)
			return status; /* manager gone: it reconciles later */
		/* next reply says how to finish (done/error) */
		struct frame_reply r2;
		if (frame_read_reply(fd, &in, &r2) < 0)
			return status;
		if (strcmp(r2.action, "error") == 0 && r2.nf > 0) {
			fprintf(stderr, "eci: %s\n", r2.f[0]);
			return status ? status : 1;
		}
		trace_flush(strcmp(r2.action, "pass") == 0 ? "spawn-pass" : "spawn");
		if (strcmp(r2.action, "pass") == 0)
			return status; /* the manager's part was done before runc's */
		if (strcmp(r2.action, "done") == 0 && r2.nf > 0)
			return atoi(r2.f[0]);
		return status;
	} else if (strcmp(action, "error") == 0 && nf > 0) {
		fprintf(stderr, "eci: %s\n", f[0]);
		return 1;
	} else if (strcmp(action, "done") == 0 && nf > 0) {
		return atoi(f[0]);
	} else if (strcmp(action, "print") == 0 && nf > 1) {
		fputs(f[0], stdout);
		return atoi(f[1]);
	}
	fprintf(stderr, "eci: unexpected reply %s from the manager\n", action);
	return 1;
lost:
	if (!protected_verb(verb))
		exec_runc(argc, argv);
	log_error(log, log_format, "lost the connection to the eci manager: refusing to run without isolation");
	fprintf(stderr, "eci: lost the connection to the eci manager at %s: refusing to %s without isolation\n", path, verb);
	return 1;
}
