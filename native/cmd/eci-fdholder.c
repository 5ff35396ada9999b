/*
 * eci-fdholder SOCKET PIDFILE
 *
 * Keeps a duplicate of every container's seccomp notify fd so that the containers stay vetted across a
 * manager restart: while one process holds a notify fd, the kernel keeps the filter's listener alive
 * and queues the notifications (the callers wait) instead of failing them with ENOSYS. A new manager
 * takes the fds back and answers the queue. The holder itself never answers, receives or reads a
 * notification: it only holds fds, so it has nothing to decide and nothing to get wrong.
 *
 * The manager starts it in a session of its own (so a kill of the manager's process group does not
 * reach it) and keeps one connection open. Single-threaded, one poll loop over the listening socket,
 * the connections and the held fds (polled for POLLHUP only: a notify fd reports POLLHUP once no task
 * uses the filter any more, i.e. the container is gone, and then the holder closes its copy).
 *
 * Protocol: AF_UNIX SOCK_SEQPACKET at SOCKET (mode 0600; peers must have the holder's uid), one text
 * message per request, at most 512 bytes:
 *   PUT <tag>   with exactly one fd (SCM_RIGHTS), a seccomp notify fd  -> "OK <held>" | "ERR <why>"
 *   DROP <tag>  closes every fd held under tag                           -> "OK <dropped>"
 *   TAKE        sends a copy of every held fd, one "FD <tag>" message each with its fd, then one
 *               "PENDING <tag> <id>" per remembered id (the taker checks which are still waiting), then "END <n>";
 *               the holder keeps its own copies (the new manager may die too)
 *   SEEN <tag> <id>  no answer: the manager received notification <id> (decimal) on one of tag's fds.
 *               The holder remembers the last 64 per tag, so that a new manager can answer a call the
 *               dead one received but never answered (the kernel does not queue it again).
 *   PING        -> "OK <pid> <held>"
 *   QUIT        -> "OK", then exits (closing every fd it holds)
 * A tag is 1..200 bytes of [A-Za-z0-9_.:-] (eci uses the container id). Anything else is "ERR ...".
 *
 * It exits by itself when it holds no fd and no client is connected (waiting up to 10 s for the first
 * connection): the last container gone with no manager around, or a manager that stopped with no
 * containers. SIGTERM/SIGINT: exits too. On exit it removes SOCKET and PIDFILE if they are still its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG 512
#define MAX_TAG 200
#define MAX_CLIENTS 16
#define GRACE_MS 10000

struct held {
	int fd;
	char tag[MAX_TAG + 1];
};

#define SEEN_IDS 64

struct seen {
	char tag[MAX_TAG + 1];
	unsigned long long ids[SEEN_IDS];
	size_t n, pos;
};

static struct held *held;
static struct seen *seen;
static size_t nseen, capseen;
static size_t nheld, capheld;
static int clients[MAX_CLIENTS];
static size_t nclients;
static bool had_client; /* the 10 s grace is only for the first connection */
static volatile sig_atomic_t stop_now;
static const char *sock_path, *pid_path;
static dev_t sock_dev;
static ino_t sock_ino;

static void on_term(int sig)
{
	(void)sig;
	stop_now = 1;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool good_tag(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > MAX_TAG)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == ':' || c == '-'))
			return false;
	}
	return true;
}

/* Only seccomp notify fds are held: anything else sent here is a bug or an attack. */
static bool is_notify_fd(int fd)
{
	char p[64], link[64];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, link, sizeof link - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return strcmp(link, "anon_inode:seccomp notify") == 0;
}

/* A client that stops reading for 2 s is dropped: it must not stall the holder for everyone. */
static bool client_stuck;

static void send_text(int c, const char *text, int fd)
{
	if (client_stuck)
		return;
	struct iovec iov = { (void *)text, strlen(text) };
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		memset(&u, 0, sizeof u);
		mh.msg_control = u.b;
		mh.msg_controllen = sizeof u.b;
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	/* A TAKE answer is many messages: wait (briefly) for room rather than lose one. */
	for (;;) {
		if (sendmsg(c, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
			return;
		if (errno == EINTR)
			continue;
		struct pollfd p = { c, POLLOUT, 0 };
		if (errno != EAGAIN || poll(&p, 1, 2000) <= 0 || !(p.revents & POLLOUT)) {
			client_stuck = true;
			return;
		}
	}
}

static bool holds_tag(const char *tag)
{
	for (size_t i = 0; i < nheld; i++)
		if (strcmp(held[i].tag, tag) == 0)
			return true;
	return false;
}

/* The remembered ids of a tag go with its last fd. */
static void forget_seen_unless_held(const char *tag)
{
	if (holds_tag(tag))
		return;
	for (size_t i = 0; i < nseen; i++)
		if (strcmp(seen[i].tag, tag) == 0) {
			seen[i] = seen[--nseen];
			return;
		}
}

static void drop_at(size_t i)
{
	char tag[MAX_TAG + 1];
	snprintf(tag, sizeof tag, "%s", held[i].tag);
	close(held[i].fd);
	held[i] = held[--nheld];
	forget_seen_unless_held(tag);
}

static void note_seen(const char *tag, unsigned long long id)
{
	if (!holds_tag(tag))
		return; /* only for fds held here */
	struct seen *e = NULL;
	for (size_t i = 0; i < nseen && !e; i++)
		if (strcmp(seen[i].tag, tag) == 0)
			e = &seen[i];
	if (!e) {
		if (nseen == capseen) {
			size_t cap = capseen ? capseen * 2 : 16;
			struct seen *n = realloc(seen, cap * sizeof *n);
			if (!n)
				return;
			seen = n;
			capseen = cap;
		}
		e = &seen[nseen++];
		memset(e, 0, sizeof *e);
		snprintf(e->tag, sizeof e->tag, "%s", tag);
	}
	e->ids[e->pos] = id;
	e->pos = (e->pos + 1) % SEEN_IDS;
	if (e->n < SEEN_IDS)
		e->n++;
}

static void handle(int c, char *msg, int fd)
{
	char out[MAX_MSG];
	if (strncmp(msg, "PUT ", 4) == 0) {
		const char *tag = msg + 4;
		if (!good_tag(tag)) {
			send_text(c, "ERR bad tag", -1);
		} else if (fd < 0) {
			send_text(c, "ERR PUT needs exactly one fd", -1);
		} else if (!is_notify_fd(fd)) {
			send_text(c, "ERR not a seccomp notify fd", -1);
		} else {
			if (nheld == capheld) {
				size_t cap = capheld ? capheld * 2 : 64;
				struct held *h = realloc(held, cap * sizeof *h);
				if (!h) {
					send_text(c, "ERR out of memory", -1);
					close(fd);
					return;
				}
				held = h;
				capheld = cap;
			}
			held[nheld].fd = fd;
			memcpy(held[nheld].tag, tag, strlen(tag) + 1); /* good_tag: at most MAX_TAG bytes */
			nheld++;
			snprintf(out, sizeof out, "OK %zu", nheld);
			send_text(c, out, -1);
			return; /* kept */
		}
	} else if (strncmp(msg, "DROP ", 5) == 0) {
		size_t dropped = 0;
		for (size_t i = 0; i < nheld;) {
			if (strcmp(held[i].tag, msg + 5) == 0) {
				drop_at(i);
				dropped++;
			} else {
				i++;
			}
		}
		snprintf(out, sizeof out, "OK %zu", dropped);
		send_text(c, out, -1);
	} else if (strncmp(msg, "SEEN ", 5) == 0) {
		char tag[MAX_TAG + 1];
		unsigned long long id;
		char end;
		if (sscanf(msg + 5, "%200s %llu%c", tag, &id, &end) == 2 && good_tag(tag))
			note_seen(tag, id);
		/* no answer: sent from the manager's watcher threads, which do not wait */
	} else if (strcmp(msg, "TAKE") == 0) {
		for (size_t i = 0; i < nheld; i++) {
			snprintf(out, sizeof out, "FD %s", held[i].tag);
			send_text(c, out, held[i].fd);
		}
		for (size_t i = 0; i < nseen; i++)
			for (size_t k = 0; k < seen[i].n; k++) {
				snprintf(out, sizeof out, "PENDING %s %llu", seen[i].tag, seen[i].ids[k]);
				send_text(c, out, -1);
			}
		snprintf(out, sizeof out, "END %zu", nheld);
		send_text(c, out, -1);
	} else if (strcmp(msg, "PING") == 0) {
		snprintf(out, sizeof out, "OK %ld %zu", (long)getpid(), nheld);
		send_text(c, out, -1);
	} else if (strcmp(msg, "QUIT") == 0) {
		send_text(c, "OK", -1);
		stop_now = 1;
	} else {
		send_text(c, "ERR unknown request", -1);
	}
	if (fd >= 0)
		close(fd);
}

/* Reads one request from client c. Returns false when the client is gone (or misbehaved). */
static bool serve_client(int c)
{
	char msg[MAX_MSG + 1];
	union {
		char b[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { msg, MAX_MSG };
	struct msghdr mh;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.b;
	mh.msg_controllen = sizeof u.b;
	ssize_t n = recvmsg(c, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	int fd = -1, extra = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (fd < 0) {
				fd = f;
			} else {
				close(f);
				extra++;
			}
		}
	}
	if (n == 0 && fd < 0)
		return false; /* EOF */
	bool ok = !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) && extra == 0;
	msg[n] = '\0';
	if (!ok || memchr(msg, '\0', (size_t)n)) {
		if (fd >= 0)
			close(fd);
		send_text(c, "ERR malformed request (one text message, at most one fd)", -1);
		return true;
	}
	client_stuck = false;
	handle(c, msg, fd);
	return !client_stuck;
}

static void accept_clients(int ls)
{
	for (;;) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0)
			return;
		struct ucred cr;
		socklen_t len = sizeof cr;
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.uid != geteuid() ||
		    nclients >= MAX_CLIENTS) {
			close(c);
			continue;
		}
		clients[nclients++] = c;
		had_client = true;
	}
}

static void remove_own_files(void)
{
	struct stat st;
	if (lstat(sock_path, &st) == 0 && st.st_dev == sock_dev && st.st_ino == sock_ino)
		unlink(sock_path);
	FILE *f = fopen(pid_path, "r");
	if (f) {
		long pid = 0;
		if (fscanf(f, "%ld", &pid) == 1 && pid == (long)getpid())
			unlink(pid_path);
		fclose(f);
	}
}

static int listen_at(const char *path)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof a.sun_path) {
		fprintf(stderr, "eci-fdholder: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(a.sun_path, path);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	/* Another holder answering here: it keeps the fds, this one is not needed. */
	if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
		close(s);
		return -2;
	}
	close(s);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "eci-fdholder: %s exists and is not a socket\n", path);
			return -1;
		}
		unlink(path);
	}
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old = umask(0177); /* 0600 from the start: nobody else may connect, even briefly */
	int r = s < 0 ? -1 : bind(s, (struct sockaddr *)&a, sizeof a);
	umask(old);
	if (r < 0 || lstat(path, &st) < 0) {
		fprintf(stderr, "eci-fdholder: cannot listen at %s: %s\n", path, strerror(errno));
		if (s >= 0)
			close(s);
		return -1;
	}
	sock_dev = st.st_dev;
	sock_ino = st.st_ino;
	return s;
}

int main(int argc, char **argv)
{
	if (argc != 3 || argv[1][0] != '/' || argv[2][0] != '/') {
		fprintf(stderr, "eci: usage: eci-fdholder /abs/socket /abs/pidfile\n");
		return 2;
	}
	sock_path = argv[1];
	pid_path = argv[2];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (chdir("/") < 0)
		return 1;
	int ls = listen_at(sock_path);
	if (ls == -2)
		return 0;
	if (ls < 0)
		return 1;
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.%ld", pid_path, (long)getpid());
	FILE *pf = fopen(tmp, "w");
	if (!pf || fprintf(pf, "%ld\n", (long)getpid()) < 0 || fclose(pf) != 0 || rename(tmp, pid_path) < 0) {
		fprintf(stderr, "eci-fdholder: cannot write %s: %s\n", pid_path, strerror(errno));
		unlink(tmp);
		remove_own_files();
		return 1;
	}
	/* Listening only now: whoever can connect finds the pid file written. */
	if (listen(ls, 16) < 0) {
		fprintf(stderr, "eci-fdholder: cannot listen at %s: %s\n", sock_path, strerror(errno));
		remove_own_files();
		return 1;
	}
	const long long started = now_ms();
	struct pollfd *p = NULL;
	size_t capp = 0;
	while (!stop_now) {
		if (nheld == 0 && nclients == 0 && (had_client || now_ms() - started >= GRACE_MS))
			break;
		size_t want = 1 + nclients + nheld;
		if (want > capp) {
			struct pollfd *q = realloc(p, want * 2 * sizeof *q);
			if (!q)
				break;
			p = q;
			capp = want * 2;
		}
		size_t k = 0;
		p[k++] = (struct pollfd){ ls, POLLIN, 0 };
		for (size_t i = 0; i < nclients; i++)
			p[k++] = (struct pollfd){ clients[i], POLLIN, 0 };
		/* events 0: only POLLHUP/POLLERR/POLLNVAL come back, never "a notification is pending" */
		for (size_t i = 0; i < nheld; i++)
			p[k++] = (struct pollfd){ held[i].fd, 0, 0 };
		int timeout = (nheld == 0 && nclients == 0 && !had_client) ? (int)(GRACE_MS - (now_ms() - started)) : -1;
		if (timeout < -1)
			timeout = 0;
		int r = poll(p, k, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		/* Held fds first (their slots index held[] as it was when polled), from the back so drop_at's
		 * move of the last entry never skips one. */
		for (size_t i = nheld; i-- > 0;)
			if (p[1 + nclients + i].revents & (POLLHUP | POLLERR | POLLNVAL))
				drop_at(i);
		size_t polled = nclients;
		for (size_t i = polled; i-- > 0;) {
			short re = p[1 + i].revents;
			bool keep = true;
			if (re & POLLIN)
				keep = serve_client(clients[i]);
			else if (re & (POLLHUP | POLLERR | POLLNVAL))
				keep = false;
			if (!keep) {
				close(clients[i]);
				clients[i] = clients[--nclients];
			}
			if (stop_now)
				break;
		}
		if (p[0].revents & POLLIN)
			accept_clients(ls);
	}
	remove_own_files();
	return 0;
}
