/*
 * eci-setkey -exec-root=DIR CONTAINER_ID SHORT_CONTROLLER_ID      (the OCI state on stdin)
 *
 * Docker's libnetwork-setkey prestart hook, without starting dockerd. dockerd 20.10 puts into every
 * container's spec a hook that re-executes the daemon's own binary
 *   /proc/<dockerd pid>/exe libnetwork-setkey -exec-root=DIR <container id> <short controller id>
 * whose only work is to tell the daemon which network namespace the container got: it reads the OCI
 * state runc writes on its stdin, connects to DIR/libnetwork/<short id>.sock, sends
 *   {"ContainerID":"<container id>","Key":"/proc/<state pid>/ns/net"}
 * and waits for "success" (anything else is the daemon's error). Starting that ~100 MB Go program
 * costs ~90 ms of CPU per container (measured: more than all of eci's own work per container) and
 * tens of ms of every `docker run`. This does the same exchange and nothing else.
 *
 * eci's spec rewrite (actors/spec/docker-setkey.ts) points the hook here only when its command line
 * has exactly that form; any other form (another Docker version's) runs Docker's own. Failure: the
 * reason on stderr, exit 1, as Docker's hook (runc then fails the create with it).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define STATE_MAX (1 << 20)

static int fail(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "eci-setkey: ");
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  return 1;
}

/* Go's errno texts start lowercase ("no such file or directory"): so do these. */
static const char *errtext(int e) {
  static char buf[128];
  snprintf(buf, sizeof buf, "%s", strerror(e));
  buf[0] = (char)tolower((unsigned char)buf[0]);
  return buf;
}

static int all_of(const char *s, const char *set, size_t max) {
  size_t n = strlen(s);
  return n > 0 && n <= max && strspn(s, set) == n;
}

/*
 * The value of the top-level key "pid" of a JSON object, or -1. A small scanner, not a search: keys
 * and strings inside nested values (annotations) are skipped, so only runc's own field counts.
 */
static long state_pid(const char *s, size_t n) {
  int depth = 0, in_str = 0, esc = 0, key_next = 0;
  const char *key = NULL;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (esc) esc = 0;
      else if (c == '\\') esc = 1;
      else if (c == '"') {
        in_str = 0;
        if (depth == 1 && key_next && key) {
          size_t len = (size_t)(s + i - key);
          size_t j = i + 1;
          while (j < n && isspace((unsigned char)s[j])) j++;
          if (j < n && s[j] == ':') {
            if (len == 3 && memcmp(key, "pid", 3) == 0) {
              j++;
              while (j < n && isspace((unsigned char)s[j])) j++;
              if (j >= n || !isdigit((unsigned char)s[j])) return -1;
              long v = 0;
              while (j < n && isdigit((unsigned char)s[j])) {
                v = v * 10 + (s[j] - '0');
                if (v > 0x7fffffff) return -1;
                j++;
              }
              return v;
            }
            key_next = 0;
          }
        }
        key = NULL;
      }
      continue;
    }
    switch (c) {
      case '"': in_str = 1; key = s + i + 1; break;
      case '{': depth++; key_next = depth == 1; break;
      case '[': depth++; break;
      case '}': case ']': depth--; break;
      case ',': if (depth == 1) key_next = 1; break;
      default: break;
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  static const char HEX[] = "0123456789abcdef";
  const char *opt = "-exec-root=";
  if (argc != 4 || strncmp(argv[1], opt, strlen(opt)) != 0)
    return fail("usage: eci-setkey -exec-root=DIR CONTAINER_ID SHORT_CONTROLLER_ID%s%s", "", "");
  const char *root = argv[1] + strlen(opt), *id = argv[2], *ctl = argv[3];
  if (root[0] != '/') return fail("-exec-root must be an absolute path: %s%s", root, "");
  if (!all_of(id, HEX, 128)) return fail("bad container id: %s%s", id, "");
  if (!all_of(ctl, HEX, 64)) return fail("bad controller id: %s%s", ctl, "");

  char *state = malloc(STATE_MAX);
  if (!state) return fail("out of memory%s%s", "", "");
  size_t got = 0;
  for (;;) {
    ssize_t r = read(0, state + got, STATE_MAX - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail("reading the state: %s%s", errtext(errno), "");
    if (r == 0) break;
    got += (size_t)r;
    if (got == STATE_MAX) return fail("the state on stdin is over 1 MiB%s%s", "", "");
  }
  long pid = state_pid(state, got);
  if (pid <= 0) return fail("the state on stdin has no pid%s%s", "", "");

  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/libnetwork/%s.sock", root, ctl);
  if (n < 0 || (size_t)n >= sizeof sa.sun_path) return fail("socket path too long: %s/libnetwork/%s.sock", root, ctl);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket: %s%s", errtext(errno), "");
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
    return fail("dial unix %s: connect: %s", sa.sun_path, errtext(errno));

  /* One write, no newline (20.10's json.Marshal): the daemon reads the request with a single read. */
  char msg[512];
  n = snprintf(msg, sizeof msg, "{\"ContainerID\":\"%s\",\"Key\":\"/proc/%ld/ns/net\"}", id, pid);
  ssize_t w;
  do w = write(fd, msg, (size_t)n); while (w < 0 && errno == EINTR);
  if (w != n) return fail("sendKey failed with : %s%s", w < 0 ? errtext(errno) : "short write", "");

  char buf[1025];
  ssize_t r;
  do r = read(fd, buf, sizeof buf - 1); while (r < 0 && errno == EINTR);
  if (r < 0) return fail("failed to read buf in processReturn : %s%s", errtext(errno), "");
  if (r == 0) return fail("failed to read buf in processReturn : EOF%s%s", "", "");
  buf[r] = 0;
  if (strcmp(buf, "success") != 0) {
    fprintf(stderr, "%s\n", buf); /* the daemon's own error, as Docker's hook prints it */
    return 1;
  }
  return 0;
}
