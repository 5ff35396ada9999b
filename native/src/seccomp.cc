// eci_native, seccomp part: the agent socket that runc hands notify fds to, and the notify fds themselves.
// Only native/index.ts uses this; it is exported from the addon as `seccomp`:
//
//   seccomp.listen(path, cb) -> { close(): void }
//       AF_UNIX SOCK_STREAM socket at path (a stale socket there is unlinked; anything else -> EEXIST),
//       mode 0600. One background thread polls the listening socket and every open connection; each
//       connection is read until EOF or the end of a complete top-level JSON object, whichever comes
//       first (runc 1.1.5 does not close its end), at most 64 KiB, collecting SCM_RIGHTS fds from every message
//       (the first 4 are kept, marked CLOEXEC; any beyond are closed), then cb({ payload, fds,
//       truncated, timedOut }) runs on the JS thread and owns the fds. A connection silent for 5 s is
//       dropped: delivered as timedOut when something had arrived, silently closed otherwise. close()
//       stops the thread, closes open connections (and fds not yet delivered) and unlinks the socket.
//   seccomp.watch(notifyFd, cb) -> { close(): void }
//       A thread per fd polls it (the event loop never blocks). Each notification is received into a
//       zeroed buffer sized from SECCOMP_GET_NOTIF_SIZES, its pointer arguments are read through
//       process_vm_readv (the call is still pending after the reads: NOTIF_ID_VALID), and cb(notif) runs with
//         { id: bigint, pid, nr, arch, args: bigint[6], syscall, strings, stringIssues, mountAttr?, valid }
//       `strings` (name -> text, or null when the pointer is NULL, unreadable, truncated or not read;
//       which arguments, and how, is the registry's `reads`: actors/vetter/syscalls/*.ts, vetted-syscalls.h):
//         mount: source, target, fstype, data (data only for text-option filesystems: fstype tmpfs,
//                proc, sysfs, overlay, bind, devpts, mqueue, cgroup, cgroup2, ramfs, or MS_BIND/MS_MOVE;
//                otherwise null with issue 'binary')
//         umount2: target          open_tree, fspick, mount_setattr: path
//         move_mount: from_path, to_path      fsopen: fsname
//         fsconfig: key (for the SET_* commands), value (SET_STRING, SET_PATH, SET_PATH_EMPTY only)
//         chmod, fchmodat, fchmodat2: path      fchmod, fsmount: none
//       `stringIssues[name]` is 'null' | 'unreadable' | 'truncated' (no NUL within PATH_MAX bytes) |
//       'binary', present only for strings that are null for a reason other than a normal read.
//       mountAttr ({ attrSet, attrClr, propagation, usernsFd }: bigints) for mount_setattr when the size
//       argument is >= MOUNT_ATTR_SIZE_VER0 (32) and the struct could be read (only the first 32 bytes).
//       valid: the second NOTIF_ID_VALID check passed (the bytes were read from the syscall's memory).
//       Syscalls decoded: x86_64, x32 (X32 bit) and i386 numbers of the registry's syscalls;
//       anything else is 'unknown'. When the filter has no users any more (POLLHUP), or RECV fails
//       for good, cb({ closed: true, error? }) runs once, the fd is closed and watching stops.
//       close() stops watching and closes the fd (no closed callback then).
//   seccomp.respond(notifyFd, id, { kind: 'continue' } | { kind: 'errno', errno } | { kind: 'value', val })
//   seccomp.idValid(notifyFd, id) -> boolean          seccomp.closeFd(fd)
//   seccomp.watch(notifyFd, cb, tag) additionally sends "SEEN <tag> <id>" for every notification received
//       to the fd-holder connection set with seccomp.holderNotes(fd | -1), before anything else is done
//       with it (fire and forget), so a manager that dies mid-decision leaves the id behind.
//   watch(...).fast(table | null) -> boolean
//       The fast path (actors/vetter/fast-path.ts): the rules, the pacer's budget and `sock`, the
//       manager's end of a SOCK_SEQPACKET pair whose other end is the fd's performer's fd 5 (owned by
//       the addon from the call on, closed with the watcher). A valid notification matching a rule,
//       within the budget, is sent to the performer as a run (perform.h's request, run id with bit 31
//       set, PERFORM_ANSWER) by the watcher thread, then posted with fastId and fastRule.
//   watch(...).charge(): a call the vetter's path took, counted against the fast path's budget.
//   seccomp.fastMatch(table, notif) -> { rule, argv } | null: the same matcher, for tests.
//   seccomp.socketPair() -> [fd, fd]: AF_UNIX SOCK_SEQPACKET, CLOEXEC.
//   seccomp.holderConnect(path) -> fd
//       A connection to the fd-holder (native/cmd/eci-fdholder.c: AF_UNIX SOCK_SEQPACKET at path), CLOEXEC,
//       with 2 s send/receive timeouts (the holder answers at once; a stuck holder must not hang us).
//   seccomp.holderCall(fd, request, passFd?) -> { reply: string, taken: { tag, fd }[], pending: { tag, id }[] }
//       Sends one request (with passFd in SCM_RIGHTS when given: the kernel duplicates it, the caller
//       keeps its own) and reads the answer; for "TAKE", every "FD <tag>" message up to "END <n>". A
//       "PENDING <tag> <id>" answers of TAKE are in pending (id: bigint). A
//       taken fd that is not a seccomp notify fd is closed and left out (fail closed): the caller owns
//       the rest, CLOEXEC. Any way to adopt them is seccomp.watch(fd, cb), the same as runc's fds.
//   seccomp.holderCallAsync(fd, request, passFd?) -> Promise of the same answer: the round trip runs on
//       libuv's thread pool (passFd is duplicated at the call and that copy sent). One at a time per fd.
//   seccomp.dupFd(fd) -> fd: a CLOEXEC copy (the caller owns it; seccomp.closeFd).
// Failures throw SystemError-shaped errors { code, errno, syscall } (respond: ENOENT when the target
// is gone or was interrupted; EINPROGRESS when already answered).
#include <napi.h>

#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../cmd/errno-names.h"
#include "../cmd/sched-slice.h"
#include "vetted-syscalls.h"

#ifndef AUDIT_ARCH_X86_64
#define AUDIT_ARCH_X86_64 0xC000003EU
#endif
#ifndef AUDIT_ARCH_I386
#define AUDIT_ARCH_I386 0x40000003U
#endif
#define X32_SYSCALL_BIT 0x40000000U
// Linux >= 6.6; this glibc's headers predate it.
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
// <sys/mount.h> and <linux/mount.h> clash on glibc 2.36: the few values needed, by their kernel numbers.
#define ECI_MS_BIND 4096UL
#define ECI_MS_MOVE 8192UL
#define ECI_FSCONFIG_SET_STRING 1
#define ECI_FSCONFIG_SET_BINARY 2
#define ECI_FSCONFIG_SET_PATH 3
#define ECI_FSCONFIG_SET_PATH_EMPTY 4
#define ECI_FSCONFIG_SET_FD 5

namespace eci_seccomp {
namespace {

// ---------- small helpers ----------

Napi::Error SysError(Napi::Env env, int err, const char* syscall, const std::string& what) {
  const std::string code = eci_errno_name(err);
  Napi::Error e = Napi::Error::New(env, code + ": " + std::strerror(err) + ", " + what);
  e.Set("code", code);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", syscall);
  return e;
}

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void WakeFd(int efd) {
  uint64_t one = 1;
  ssize_t r;
  do r = ::write(efd, &one, sizeof(one));
  while (r < 0 && errno == EINTR);
}

struct NotifSizes {
  size_t notif = sizeof(struct seccomp_notif);
  size_t resp = sizeof(struct seccomp_notif_resp);
};

const NotifSizes& Sizes() {
  static NotifSizes s = [] {
    NotifSizes r;
    struct seccomp_notif_sizes k;
    std::memset(&k, 0, sizeof(k));
    if (::syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &k) == 0) {
      r.notif = std::max<size_t>(r.notif, k.seccomp_notif);
      r.resp = std::max<size_t>(r.resp, k.seccomp_notif_resp);
    }
    return r;
  }();
  return s;
}

bool IdValid(int fd, uint64_t id) {
  return ::ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

// ---------- listener: the socket runc connects to ----------

constexpr size_t kMaxPayload = 64 * 1024;
constexpr size_t kMaxFdsKept = 4;
constexpr int64_t kIdleMs = 5000;
constexpr size_t kMaxConns = 128;

struct Delivery {
  std::string payload;
  std::vector<int> fds;
  bool truncated = false;
  bool timedOut = false;
  ~Delivery() {
    for (int fd : fds) ::close(fd);  // only those never handed to JS
  }
};

// Spots the end of a top-level JSON object in a byte stream (strings and escapes respected). runc 1.1.5
// keeps its end of the connection open after its one sendmsg (a dup of the socket stays open in the
// runc process), so waiting for EOF would stall every `runc create` until the idle timeout.
struct JsonEnd {
  bool started = false, inString = false, escape = false, complete = false, notObject = false;
  int depth = 0;
  void Feed(const char* p, size_t n) {
    for (size_t i = 0; i < n && !complete && !notObject; i++) {
      const char ch = p[i];
      if (!started) {
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') continue;
        if (ch != '{') {
          notObject = true;  // garbage: wait for EOF (or the cap, or the idle timeout)
          return;
        }
        started = true;
        depth = 1;
        continue;
      }
      if (inString) {
        if (escape)
          escape = false;
        else if (ch == '\\')
          escape = true;
        else if (ch == '"')
          inString = false;
        continue;
      }
      if (ch == '"')
        inString = true;
      else if (ch == '{' || ch == '[')
        depth++;
      else if ((ch == '}' || ch == ']') && --depth == 0)
        complete = true;
    }
  }
};

struct Conn {
  int fd = -1;
  int64_t last = 0;
  std::unique_ptr<Delivery> d{new Delivery};
  bool got = false;  // any byte or fd arrived
  JsonEnd json;
};

struct Listener {
  std::string path;
  int sock = -1;
  int wake = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  std::thread thread;
  Napi::ThreadSafeFunction tsfn;
  std::atomic<bool> stop{false};
  bool closed = false;
};

std::mutex gMu;  // guards the two maps below (JS thread + env cleanup only, but cheap)
std::map<uint32_t, std::shared_ptr<Listener>> gListeners;
uint32_t gNextHandle = 1;

// The handle registries (listeners, watchers): JS holds a number, the addon the object.
template <class T>
uint32_t AddHandle(std::map<uint32_t, std::shared_ptr<T>>& m, std::shared_ptr<T> v) {
  std::lock_guard<std::mutex> g(gMu);
  uint32_t handle = gNextHandle++;
  m[handle] = std::move(v);
  return handle;
}

// Removes and returns the object of `handle` (null if it was already taken).
template <class T>
std::shared_ptr<T> TakeHandle(std::map<uint32_t, std::shared_ptr<T>>& m, uint32_t handle) {
  std::lock_guard<std::mutex> g(gMu);
  auto it = m.find(handle);
  if (it == m.end()) return nullptr;
  std::shared_ptr<T> v = it->second;
  m.erase(it);
  return v;
}

template <class T>
void EraseValue(std::map<uint32_t, std::shared_ptr<T>>& m, const std::shared_ptr<T>& v) {
  std::lock_guard<std::mutex> g(gMu);
  for (auto it = m.begin(); it != m.end(); ++it)
    if (it->second == v) {
      m.erase(it);
      return;
    }
}

void Deliver(const std::shared_ptr<Listener>& l, std::unique_ptr<Delivery> d) {
  Delivery* raw = d.release();
  auto call = [](Napi::Env env, Napi::Function cb, Delivery* dv) {
    std::unique_ptr<Delivery> owned(dv);
    if (env == nullptr || cb == nullptr) return;  // torn down: the destructor closes the fds
    Napi::Object o = Napi::Object::New(env);
    o.Set("payload", Napi::String::New(env, dv->payload));
    Napi::Array fds = Napi::Array::New(env, dv->fds.size());
    for (size_t i = 0; i < dv->fds.size(); i++) fds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, dv->fds[i]));
    o.Set("fds", fds);
    o.Set("truncated", Napi::Boolean::New(env, dv->truncated));
    o.Set("timedOut", Napi::Boolean::New(env, dv->timedOut));
    dv->fds.clear();  // JS owns them now
    cb.Call({o});
  };
  if (l->tsfn.NonBlockingCall(raw, call) != napi_ok) delete raw;
}

// One recvmsg (EINTR retried) with room for MaxFds SCM_RIGHTS fds, received close-on-exec; each fd
// goes to onFd (which keeps or closes it). Returns recvmsg's result (errno set when -1).
template <size_t MaxFds, typename OnFd>
ssize_t RecvWithFds(int s, char* buf, size_t len, int flags, OnFd onFd) {
  union {
    char b[CMSG_SPACE(MaxFds * sizeof(int))];
    struct cmsghdr align;
  } u;
  struct iovec iov = {buf, len};
  struct msghdr mh;
  std::memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = u.b;
  mh.msg_controllen = sizeof(u.b);
  ssize_t n;
  do n = ::recvmsg(s, &mh, flags | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0 || mh.msg_controllen == 0) return n;
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      onFd(fd);
    }
  }
  return n;
}

// Reads what is available on c. Returns false when the connection is finished (EOF, error or cap).
bool ReadConn(Conn& c) {
  for (;;) {
    char buf[16384];
    ssize_t n = RecvWithFds<16>(c.fd, buf, sizeof(buf), MSG_DONTWAIT, [&c](int fd) {
      if (c.d->fds.size() < kMaxFdsKept)
        c.d->fds.push_back(fd);
      else
        ::close(fd);
      c.got = true;
    });
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    if (n == 0) return false;
    c.got = true;
    c.last = NowMs();
    size_t room = kMaxPayload - c.d->payload.size();
    if (static_cast<size_t>(n) > room) {
      c.d->payload.append(buf, room);
      c.d->truncated = true;
      return false;
    }
    c.d->payload.append(buf, static_cast<size_t>(n));
    c.json.Feed(buf, static_cast<size_t>(n));
    if (c.json.complete) return false;  // one whole JSON object: that is the message
  }
}

void ListenLoop(std::shared_ptr<Listener> l) {
  std::vector<Conn> conns;
  std::vector<struct pollfd> pfds;
  while (!l->stop.load()) {
    pfds.clear();
    pfds.push_back({l->wake, POLLIN, 0});
    pfds.push_back({l->sock, POLLIN, 0});
    int64_t now = NowMs();
    int timeout = -1;
    for (auto& c : conns) {
      pfds.push_back({c.fd, POLLIN, 0});
      int64_t left = std::max<int64_t>(0, c.last + kIdleMs - now);
      if (timeout < 0 || left < timeout) timeout = static_cast<int>(left);
    }
    int r = ::poll(pfds.data(), pfds.size(), timeout);
    if (r < 0 && errno != EINTR) break;
    if (l->stop.load()) break;
    now = NowMs();
    std::vector<Conn> keep;
    for (size_t i = 0; i < conns.size(); i++) {
      Conn& c = conns[i];
      bool open = true;
      if (r > 0 && pfds[i + 2].revents) open = ReadConn(c);
      if (open && now - c.last >= kIdleMs) {
        // Silent for 5 s: deliver whatever arrived (marked), drop a connection that sent nothing.
        ::close(c.fd);
        if (c.got) {
          c.d->timedOut = true;
          Deliver(l, std::move(c.d));
        }
        continue;
      }
      if (!open) {
        ::close(c.fd);
        Deliver(l, std::move(c.d));
        continue;
      }
      keep.push_back(std::move(c));
    }
    conns = std::move(keep);
    if (r > 0 && (pfds[1].revents & POLLIN)) {
      for (;;) {
        int fd = ::accept4(l->sock, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;  // EAGAIN, or a transient error: poll again
        if (conns.size() >= kMaxConns) {
          ::close(fd);
          continue;
        }
        Conn c;
        c.fd = fd;
        c.last = NowMs();
        conns.push_back(std::move(c));
      }
    }
  }
  for (auto& c : conns) ::close(c.fd);  // undelivered fds closed by ~Delivery
}

// Stops the thread and releases the socket. Idempotent; JS thread only (close() or the TSFN finalizer).
void StopListenerThread(const std::shared_ptr<Listener>& l) {
  if (!l->thread.joinable()) return;
  l->stop.store(true);
  WakeFd(l->wake);
  l->thread.join();
  struct stat st;
  if (::lstat(l->path.c_str(), &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino) ::unlink(l->path.c_str());
  ::close(l->sock);
  ::close(l->wake);
}

void EraseListener(const std::shared_ptr<Listener>& l) { EraseValue(gListeners, l); }

Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsFunction())
    throw Napi::TypeError::New(env, "listen(path: string, callback: function)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path) || path.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, "listen: path must be 1.." + std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  std::memcpy(addr.sun_path, path.c_str(), path.size());

  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw SysError(env, EEXIST, "bind", "listen: " + path + " exists and is not a socket");
    ::unlink(path.c_str());
  }
  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sock < 0) throw SysError(env, errno, "socket", "socket");
  // bind, then chmod, then listen: nobody can connect before the mode is 0600.
  if (::bind(sock, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) < 0) {
    int err = errno;
    ::close(sock);
    throw SysError(env, err, "bind", "bind " + path);
  }
  const char* step = nullptr;
  if (::chmod(path.c_str(), 0600) < 0)
    step = "chmod";
  else if (::lstat(path.c_str(), &st) < 0)
    step = "lstat";
  else if (::listen(sock, 64) < 0)
    step = "listen";
  int wake = step ? -1 : ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!step && wake < 0) step = "eventfd";
  if (step) {
    int err = errno;
    ::close(sock);
    ::unlink(path.c_str());
    throw SysError(env, err, step, std::string(step) + " " + path);
  }
  auto l = std::make_shared<Listener>();
  l->path = path;
  l->sock = sock;
  l->wake = wake;
  l->dev = st.st_dev;
  l->ino = st.st_ino;
  // The finalizer runs after close() (nothing left to do) or at environment teardown, where it must
  // join the thread before the TSFN is freed.
  l->tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "eci-seccomp-listener", 0, 1,
                                          [](Napi::Env, std::shared_ptr<Listener>* held) {
                                            StopListenerThread(*held);
                                            EraseListener(*held);
                                            delete held;
                                          },
                                          new std::shared_ptr<Listener>(l));
  l->thread = std::thread(ListenLoop, l);
  const uint32_t handle = AddHandle(gListeners, l);
  Napi::Object o = Napi::Object::New(env);
  o.Set("close", Napi::Function::New(env, [handle](const Napi::CallbackInfo&) {
          std::shared_ptr<Listener> l = TakeHandle(gListeners, handle);
          if (!l) return;
          if (l->closed) return;
          l->closed = true;
          StopListenerThread(l);
          l->tsfn.Release();
        }, "close"));
  return o;
}

// ---------- watcher: one notify fd ----------

enum class StrIssue { None, Null, Unreadable, Truncated, Binary };

struct StrArg {
  std::string name;
  StrIssue issue = StrIssue::None;
  std::string value;
};

struct Notif {
  bool closed = false;
  std::string error;  // for closed: why, when not a plain hangup
  uint64_t id = 0;
  uint32_t pid = 0;
  int32_t nr = 0;
  uint32_t arch = 0;
  uint64_t args[6] = {0, 0, 0, 0, 0, 0};
  const char* syscall = "unknown";
  std::vector<StrArg> strings;
  bool hasAttr = false;
  uint64_t attr[4] = {0, 0, 0, 0};
  bool valid = false;
  double recvUs = 0;  // CLOCK_MONOTONIC (Node's hrtime clock) when the kernel handed it over
  double readUs = 0;  // ... and when its arguments had been read (posted to JS)
  uint32_t fastId = 0;   // != 0: sent to the performer by the fast path under this run id
  uint32_t fastGen = 0;  // ... of the table pushed as this generation (which performer)
  std::string fastRule;  // ... matching this rule
};

// Microseconds on CLOCK_MONOTONIC, the clock of Node's process.hrtime: spans across the JS hop.
double MonotonicUs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// A connection to the fd-holder for "SEEN <tag> <id>" notes (-1: none); set from JS (holderNotes).
std::atomic<int> gNoteFd{-1};

struct FastTable;

struct Watcher {
  int fd = -1;
  std::mutex fastMu;               // guards `fast` (set from JS, read by the thread)
  std::shared_ptr<FastTable> fast;  // the fast path's rules and performer socket, or null
  std::string tag;  // the holder's tag for this fd ("": no notes)
  int wake = -1;
  std::thread thread;
  Napi::ThreadSafeFunction tsfn;
  std::atomic<bool> stop{false};
  bool closed = false;  // JS thread only
};

std::map<uint32_t, std::shared_ptr<Watcher>> gWatchers;

// The names, numbers and argument reads come from the registry (vetted-syscalls.h, generated from
// actors/vetter/registry.ts); anything else is SC_UNKNOWN.
Sc Decode(uint32_t arch, int32_t snr) {
  const uint32_t nr = static_cast<uint32_t>(snr);
  if (arch == AUDIT_ARCH_X86_64) return ScOfX86_64(nr & ~X32_SYSCALL_BIT);  // x32 shares these numbers
  if (arch == AUDIT_ARCH_I386) return ScOfI386(nr);
  return SC_UNKNOWN;
}

// Reads n bytes at addr of process pid's memory: how many were read (the first page that cannot be
// read ends it), or -1. process_vm_readv moves whole iovecs or none, so each is one page at most.
ssize_t ReadRemote(pid_t pid, uint64_t addr, void* to, size_t n) {
  constexpr uint64_t kPage = 4096;
  size_t have = 0;
  while (have < n) {
    const uint64_t at = addr + have;
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n - have, kPage - (at % kPage)));
    struct iovec local = {static_cast<char*>(to) + have, chunk};
    struct iovec remote = {reinterpret_cast<void*>(static_cast<uintptr_t>(at)), chunk};
    const ssize_t got = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return have ? static_cast<ssize_t>(have) : -1;
    have += static_cast<size_t>(got);
  }
  return static_cast<ssize_t>(have);
}

// Reads a NUL-terminated string of at most PATH_MAX bytes (NUL included) at addr of process pid, page by
// page (most strings end in their first page: one syscall).
void ReadString(pid_t pid, uint64_t addr, StrArg& out) {
  if (addr == 0) {
    out.issue = StrIssue::Null;
    return;
  }
  if (pid <= 0) {
    out.issue = StrIssue::Unreadable;
    return;
  }
  char buf[PATH_MAX];
  size_t have = 0;
  while (have < sizeof(buf)) {
    const uint64_t at = addr + have;
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(sizeof(buf) - have, 4096 - (at % 4096)));
    const ssize_t n = ReadRemote(pid, at, buf + have, chunk);
    if (n <= 0) break;
    const void* nul = std::memchr(buf + have, '\0', static_cast<size_t>(n));
    have += static_cast<size_t>(n);
    if (nul) {
      out.value.assign(buf, static_cast<const char*>(nul) - buf);
      return;
    }
    if (static_cast<size_t>(n) < chunk) break;
  }
  out.issue = have == sizeof(buf) ? StrIssue::Truncated : StrIssue::Unreadable;
}

bool IsTextFs(const std::string& fs) {
  static const char* const kText[] = {"tmpfs", "proc", "sysfs", "overlay", "bind", "devpts", "mqueue",
                                      "cgroup", "cgroup2", "ramfs"};
  for (const char* t : kText)
    if (fs == t) return true;
  return false;
}

// Fills n from a received notification: decode, then read the pointer arguments between two ID_VALIDs.
void Inspect(int notifyFd, const struct seccomp_notif* k, Notif& n) {
  n.id = k->id;
  n.pid = k->pid;
  n.nr = k->data.nr;
  n.arch = k->data.arch;
  for (int i = 0; i < 6; i++) n.args[i] = k->data.args[i];
  const Sc sc = Decode(k->data.arch, k->data.nr);
  n.syscall = kScNames[sc];

  // Read straight from the caller's memory by pid (process_vm_readv: no /proc/<pid>/mem to open, check
  // and close on each call's path). Whatever is read is only trusted if the call is still pending after
  // the last read (the ID_VALID below): a pid recycled before a read means the caller had gone, and so
  // had its call.
  const pid_t pid = static_cast<pid_t>(k->pid);
  auto str = [&](const char* name, uint64_t addr) -> StrArg& {
    StrArg a;
    a.name = name;
    ReadString(pid, addr, a);
    n.strings.push_back(std::move(a));
    return n.strings.back();
  };
  auto skip = [&](const char* name, StrIssue why) {
    StrArg a;
    a.name = name;
    a.issue = why;
    n.strings.push_back(std::move(a));
  };
  const __u64* a = k->data.args;
  for (const ArgRead& r : kArgReads) {
    if (r.sc != sc) continue;
    const uint64_t v = a[r.arg];
    switch (r.how) {
      case ArgReader::kReadString: str(r.name, v); break;
      case ArgReader::kReadMountData: {
        // Text only for text-option filesystems (fstype read before it) or MS_BIND/MS_MOVE.
        const bool bindOrMove = (a[3] & (ECI_MS_BIND | ECI_MS_MOVE)) != 0;
        bool text = false;
        for (const StrArg& s : n.strings)
          if (s.name == "fstype") text = s.issue == StrIssue::None && IsTextFs(s.value);
        if (bindOrMove || text)
          str(r.name, v);
        else
          skip(r.name, v == 0 ? StrIssue::Null : StrIssue::Binary);
        break;
      }
      case ArgReader::kReadFsconfigKey:
        if (a[1] <= ECI_FSCONFIG_SET_FD) str(r.name, v);
        break;
      case ArgReader::kReadFsconfigValue: {
        const uint64_t cmd = a[1];
        if (cmd == ECI_FSCONFIG_SET_STRING || cmd == ECI_FSCONFIG_SET_PATH || cmd == ECI_FSCONFIG_SET_PATH_EMPTY)
          str(r.name, v);
        else if (cmd == ECI_FSCONFIG_SET_BINARY)
          skip(r.name, StrIssue::Binary);
        break;
      }
      case ArgReader::kReadMountAttr: {
        // struct mount_attr at v, its size in the next argument: only the first 32 bytes (VER0).
        const uint64_t size = a[r.arg + 1];
        uint64_t buf[4] = {0, 0, 0, 0};
        if (pid > 0 && v != 0 && size >= sizeof(buf)) {
          if (ReadRemote(pid, v, buf, sizeof(buf)) == static_cast<ssize_t>(sizeof(buf))) {
            n.hasAttr = true;
            std::memcpy(n.attr, buf, sizeof(buf));
          }
        }
        break;
      }
    }
  }
  // Every byte read above is only trusted if the syscall is still the one waiting.
  n.valid = IdValid(notifyFd, k->id);
}

// ---------- fast path: rules pushed down by the vetter (actors/vetter/fast-path.ts) ----------
// A notification matching one of its container's rules is written by the watcher thread straight to
// the container's performer (native/cmd/perform.c reads it on its fd 5, performs, answers the caller)
// and then posted to JS with fastId/fastRule for the audit event. Anything not matched, any string in
// doubt, a container over its budget, or a full or closed socket: posted as usual (the actor's path).

// One rule (FastRule in fast-path.ts): a syscall, the bits its flags argument must set and must not.
struct FastRule {
  std::string name;
  Sc sc = SC_UNKNOWN;
  int flagsArg = 0;
  uint64_t all = 0, none = 0;
  bool hasFstype = false;
  std::string fstype;
  bool dataNoIds = false;
  bool umount = false;
};

struct FastTable {
  std::vector<FastRule> rules;
  std::vector<std::string> protect;  // mount ids, as decimal text
  std::vector<std::string> roDevs;
  int sock = -1;  // SOCK_SEQPACKET to the performer's fd 5, owned (-1: match only, for tests)
  // The pacer's budget (actors/vetter/pace.ts, the same generic cell rate algorithm): a call past it
  // is left to the actor, which paces it. The actor's calls are charged here too (charge()), so the
  // two paths share one budget. tatUs under paceMu; nextId: watcher thread only.
  double intervalUs = 5000, burst = 400, tatUs = 0;
  std::mutex paceMu;
  uint32_t nextId = 0;
  uint32_t gen = 0;  // JS's number for this table (and its performer)
  FastTable() = default;
  FastTable(const FastTable&) = delete;
  FastTable& operator=(const FastTable&) = delete;
  ~FastTable() {
    if (sock >= 0) ::close(sock);
  }
};

// What fast-path.ts calls PLAIN: printable ASCII. Other bytes reach JS as UTF-8 text that the
// actor's path would pass re-encoded; rather than differ, such calls take that path.
bool Plain(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

bool HasIdOption(const std::string& data) {
  size_t at = 0;
  for (;;) {
    if (data.compare(at, 4, "uid=") == 0 || data.compare(at, 4, "gid=") == 0) return true;
    const size_t comma = data.find(',', at);
    if (comma == std::string::npos) return false;
    at = comma + 1;
  }
}

// The rule n matches (and the performer's argv for it: asHelperArgs's order), or null.
const FastRule* FastMatch(const FastTable& t, const Notif& n, std::vector<std::string>& argv) {
  if (n.pid == 0) return nullptr;
  const StrArg *source = nullptr, *target = nullptr, *fstype = nullptr, *data = nullptr;
  for (const StrArg& s : n.strings) {
    if (s.issue == StrIssue::Null) continue;
    if (s.issue != StrIssue::None || !Plain(s.value)) return nullptr;  // in doubt
    if (s.name == "source") source = &s;
    else if (s.name == "target") target = &s;
    else if (s.name == "fstype") fstype = &s;
    else if (s.name == "data") data = &s;
  }
  if (!target || target->value.empty()) return nullptr;
  for (const FastRule& r : t.rules) {
    if (std::strcmp(kScNames[r.sc], n.syscall) != 0) continue;
    const uint64_t flags = n.args[r.flagsArg];
    if ((flags & r.all) != r.all || (flags & r.none) != 0) continue;
    if (r.hasFstype && (!fstype || fstype->value != r.fstype)) continue;
    if (r.dataNoIds && data && HasIdOption(data->value)) continue;
    argv.clear();
    argv.push_back(r.umount ? "umount-as" : "mount-as");
    argv.push_back("--pid");
    argv.push_back(std::to_string(n.pid));
    if (!r.umount) {
      for (const StrArg* s : {source, fstype, data}) {
        if (!s) continue;
        argv.push_back("--" + s->name);
        argv.push_back(s->value);
      }
    }
    argv.push_back("--target");
    argv.push_back(target->value);
    argv.push_back("--flags");
    argv.push_back(std::to_string(flags));
    argv.push_back("--notif-fd");
    argv.push_back("4");  // the notify fd's number in the performer (PERFORM_NOTIFY_FD)
    argv.push_back("--notif-id");
    argv.push_back(std::to_string(n.id));
    for (const std::string& id : t.protect) {
      argv.push_back("--protect-id");
      argv.push_back(id);
    }
    if (!r.umount)
      for (const std::string& d : t.roDevs) {
        argv.push_back("--ro-dev");
        argv.push_back(d);
      }
    return &r;
  }
  return nullptr;
}

constexpr uint32_t kFastIdBit = 0x80000000u;  // run ids of the fast path; JS's own stay below
constexpr uint8_t kPerformAnswer = 1;         // perform.h's PERFORM_ANSWER: the performer answers the caller

void PutU32(std::string& b, uint32_t v) {
  for (int i = 0; i < 4; i++) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// On a match within the budget, sends the run to the performer; n then carries fastId.
void TryFast(Watcher& w, Notif& n) {
  std::shared_ptr<FastTable> t;
  {
    std::lock_guard<std::mutex> g(w.fastMu);
    t = w.fast;
  }
  if (!t || t->sock < 0) return;
  std::vector<std::string> argv;
  const FastRule* r = FastMatch(*t, n, argv);
  if (!r) return;
  {
    std::lock_guard<std::mutex> g(t->paceMu);
    const double now = MonotonicUs();
    const double tat = std::max(t->tatUs, now);
    if (tat - (t->burst - 1) * t->intervalUs - now > 0) return;  // over budget: the actor paces it
    t->tatUs = tat + t->intervalUs;
  }
  const uint32_t id = kFastIdBit | (t->nextId++ & ~kFastIdBit);
  std::string body;
  for (const std::string& a : argv) {
    body += a;
    body.push_back('\0');
  }
  std::string frame;
  PutU32(frame, static_cast<uint32_t>(13 + body.size()));
  PutU32(frame, id);
  frame.push_back(static_cast<char>(kPerformAnswer));
  PutU32(frame, static_cast<uint32_t>(n.id & 0xffffffffu));
  PutU32(frame, static_cast<uint32_t>(n.id >> 32));
  frame += body;
  // One datagram: whole or not at all. Full or gone: the actor's path.
  const ssize_t sent = ::send(t->sock, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent != static_cast<ssize_t>(frame.size())) {
    std::lock_guard<std::mutex> g(t->paceMu);
    t->tatUs -= t->intervalUs;  // not sent: the actor's path takes it, and charges it itself
    return;
  }
  n.fastId = id;
  n.fastGen = t->gen;
  n.fastRule = r->name;
}

uint64_t U64Of(Napi::Value v) {
  if (v.IsBigInt()) {
    bool lossless = false;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  if (v.IsNumber()) return static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
  return 0;
}

Sc ScOfName(const std::string& name) {
  for (size_t i = 0; i < sizeof(kScNames) / sizeof(kScNames[0]); i++)
    if (name == kScNames[i]) return static_cast<Sc>(i);
  return SC_UNKNOWN;
}

// A FastTable (fast-path.ts) from JS; the socket fd (if any) is the table's from here on.
std::shared_ptr<FastTable> ParseFastTable(Napi::Env env, Napi::Object o) {
  auto t = std::make_shared<FastTable>();
  if (o.Get("sock").IsNumber()) t->sock = o.Get("sock").As<Napi::Number>().Int32Value();
  if (o.Get("gen").IsNumber()) t->gen = o.Get("gen").As<Napi::Number>().Uint32Value();
  if (!o.Get("rules").IsArray()) throw Napi::TypeError::New(env, "fast table: rules must be an array");
  Napi::Array rules = o.Get("rules").As<Napi::Array>();
  for (uint32_t i = 0; i < rules.Length(); i++) {
    Napi::Object ro = rules.Get(i).As<Napi::Object>();
    FastRule r;
    r.name = ro.Get("name").ToString().Utf8Value();
    r.sc = ScOfName(ro.Get("syscall").ToString().Utf8Value());
    r.flagsArg = ro.Get("flagsArg").ToNumber().Int32Value();
    if (r.sc == SC_UNKNOWN || r.flagsArg < 0 || r.flagsArg > 5) throw Napi::TypeError::New(env, "fast table: bad rule " + r.name);
    r.all = U64Of(ro.Get("all"));
    r.none = U64Of(ro.Get("none"));
    r.hasFstype = ro.Get("fstype").IsString();
    if (r.hasFstype) r.fstype = ro.Get("fstype").As<Napi::String>().Utf8Value();
    r.dataNoIds = ro.Get("dataNoIds").ToBoolean().Value();
    r.umount = ro.Get("op").ToString().Utf8Value() == "umount";
    t->rules.push_back(std::move(r));
  }
  if (o.Get("protect").IsArray()) {
    Napi::Array a = o.Get("protect").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) t->protect.push_back(std::to_string(a.Get(i).ToNumber().Int64Value()));
  }
  if (o.Get("roDevs").IsArray()) {
    Napi::Array a = o.Get("roDevs").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) t->roDevs.push_back(a.Get(i).ToString().Utf8Value());
  }
  const double rate = o.Get("ratePerSecond").IsNumber() ? o.Get("ratePerSecond").As<Napi::Number>().DoubleValue() : 0;
  const double burst = o.Get("burst").IsNumber() ? o.Get("burst").As<Napi::Number>().DoubleValue() : 0;
  if (!(rate > 0) || !(burst >= 1)) throw Napi::TypeError::New(env, "fast table: ratePerSecond > 0 and burst >= 1");
  t->intervalUs = 1e6 / rate;
  t->burst = burst;
  return t;
}

// Tests only: seccomp.fastMatch(table, notif) -> { rule, argv } | null, the watcher's own matcher
// on a notification given as JS sees one (pid, syscall, args, strings, stringIssues).
Napi::Value FastMatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject()) throw Napi::TypeError::New(env, "fastMatch(table, notif)");
  Napi::Object to = info[0].As<Napi::Object>();
  to.Delete("sock");
  std::shared_ptr<FastTable> t = ParseFastTable(env, to);
  Napi::Object no = info[1].As<Napi::Object>();
  Notif n;
  n.id = U64Of(no.Get("id"));
  n.pid = no.Get("pid").ToNumber().Uint32Value();
  n.syscall = kScNames[ScOfName(no.Get("syscall").ToString().Utf8Value())];
  Napi::Array args = no.Get("args").As<Napi::Array>();
  for (uint32_t i = 0; i < 6 && i < args.Length(); i++) n.args[i] = U64Of(args.Get(i));
  Napi::Object strings = no.Get("strings").As<Napi::Object>();
  Napi::Object issues = no.Get("stringIssues").IsObject() ? no.Get("stringIssues").As<Napi::Object>() : Napi::Object::New(env);
  Napi::Array names = strings.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); i++) {
    StrArg a;
    a.name = names.Get(i).ToString().Utf8Value();
    Napi::Value v = strings.Get(a.name);
    if (v.IsString()) {
      a.value = v.As<Napi::String>().Utf8Value();
    } else {
      const std::string why = issues.Get(a.name).IsString() ? issues.Get(a.name).As<Napi::String>().Utf8Value() : "unreadable";
      a.issue = why == "null" ? StrIssue::Null : why == "truncated" ? StrIssue::Truncated : why == "binary" ? StrIssue::Binary : StrIssue::Unreadable;
    }
    n.strings.push_back(std::move(a));
  }
  std::vector<std::string> argv;
  const FastRule* r = FastMatch(*t, n, argv);
  if (!r) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("rule", r->name);
  Napi::Array av = Napi::Array::New(env, argv.size());
  for (size_t i = 0; i < argv.size(); i++) av.Set(static_cast<uint32_t>(i), argv[i]);
  out.Set("argv", av);
  return out;
}

Napi::Object NotifToJs(Napi::Env env, const Notif& n) {
  Napi::Object o = Napi::Object::New(env);
  if (n.closed) {
    o.Set("closed", Napi::Boolean::New(env, true));
    if (!n.error.empty()) o.Set("error", n.error);
    return o;
  }
  o.Set("id", Napi::BigInt::New(env, n.id));
  o.Set("recvUs", Napi::Number::New(env, n.recvUs));
  o.Set("readUs", Napi::Number::New(env, n.readUs));
  o.Set("pid", Napi::Number::New(env, n.pid));
  o.Set("nr", Napi::Number::New(env, n.nr));
  o.Set("arch", Napi::Number::New(env, n.arch));
  Napi::Array args = Napi::Array::New(env, 6);
  for (uint32_t i = 0; i < 6; i++) args.Set(i, Napi::BigInt::New(env, n.args[i]));
  o.Set("args", args);
  o.Set("syscall", n.syscall);
  Napi::Object strings = Napi::Object::New(env);
  Napi::Object issues = Napi::Object::New(env);
  for (const StrArg& s : n.strings) {
    if (s.issue == StrIssue::None) {
      strings.Set(s.name, Napi::String::New(env, s.value));
      continue;
    }
    strings.Set(s.name, env.Null());
    const char* why = s.issue == StrIssue::Null ? "null"
                      : s.issue == StrIssue::Truncated ? "truncated"
                      : s.issue == StrIssue::Binary ? "binary"
                                                    : "unreadable";
    issues.Set(s.name, why);
  }
  o.Set("strings", strings);
  o.Set("stringIssues", issues);
  if (n.hasAttr) {
    Napi::Object ma = Napi::Object::New(env);
    ma.Set("attrSet", Napi::BigInt::New(env, n.attr[0]));
    ma.Set("attrClr", Napi::BigInt::New(env, n.attr[1]));
    ma.Set("propagation", Napi::BigInt::New(env, n.attr[2]));
    ma.Set("usernsFd", Napi::BigInt::New(env, n.attr[3]));
    o.Set("mountAttr", ma);
  }
  o.Set("valid", Napi::Boolean::New(env, n.valid));
  if (n.fastId) {
    o.Set("fastId", Napi::Number::New(env, n.fastId));
    o.Set("fastGen", Napi::Number::New(env, n.fastGen));
    o.Set("fastRule", n.fastRule);
  }
  return o;
}

// Stops the thread and closes the notify fd. Idempotent; JS thread only.
void StopWatcherThread(const std::shared_ptr<Watcher>& w) {
  if (!w->thread.joinable()) return;
  w->stop.store(true);
  WakeFd(w->wake);
  w->thread.join();
  {
    std::lock_guard<std::mutex> g(w->fastMu);
    w->fast.reset();  // closes the fast path's socket: the performer stops reading it
  }
  ::close(w->fd);
  ::close(w->wake);
}

void StopWatcher(const std::shared_ptr<Watcher>& w) {
  if (w->closed) return;
  w->closed = true;
  StopWatcherThread(w);
  w->tsfn.Release();
}

void EraseWatcher(const std::shared_ptr<Watcher>& w) { EraseValue(gWatchers, w); }

struct WatchItem {
  std::shared_ptr<Watcher> w;
  Notif n;
};

void Post(const std::shared_ptr<Watcher>& w, Notif&& n) {
  WatchItem* item = new WatchItem{w, std::move(n)};
  auto call = [](Napi::Env env, Napi::Function cb, WatchItem* it) {
    std::unique_ptr<WatchItem> owned(it);
    if (env == nullptr || cb == nullptr) return;
    if (it->w->closed) return;  // closed by JS meanwhile: nothing more to say
    if (it->n.closed) {
      // The thread has ended: close the fd here, on the JS thread, so no respond() can race the close.
      StopWatcher(it->w);
      EraseWatcher(it->w);
    }
    cb.Call({NotifToJs(env, it->n)});
  };
  if (w->tsfn.NonBlockingCall(item, call) != napi_ok) delete item;
}

// The watcher thread's nice value (the manager's other threads keep theirs).
constexpr int kWatcherNice = -5;

void WatchLoop(std::shared_ptr<Watcher> w) {
  // Each vetted call waits for this thread's wake-up, then the performer's spare's; on a busy host each
  // waits for a core (issue 17). A higher priority shortens that; the calls it serves are paced (see
  // perform.c's PERFORM_NICE). Best effort: without the privilege, the default.
  eci_sched_latency(0, kWatcherNice);
  const NotifSizes& sz = Sizes();
  std::vector<unsigned char> buf(sz.notif);
  for (;;) {
    struct pollfd p[2] = {{w->fd, POLLIN, 0}, {w->wake, POLLIN, 0}};
    int r = ::poll(p, 2, -1);
    if (w->stop.load()) return;
    if (r < 0) {
      if (errno == EINTR) continue;
      Notif n;
      n.closed = true;
      n.error = std::string("poll: ") + std::strerror(errno);
      Post(w, std::move(n));
      return;
    }
    if (p[0].revents & POLLIN) {
      std::fill(buf.begin(), buf.end(), 0);
      auto* k = reinterpret_cast<struct seccomp_notif*>(buf.data());
      if (::ioctl(w->fd, SECCOMP_IOCTL_NOTIF_RECV, k) < 0) {
        if (errno == ENOENT || errno == EINTR) continue;  // target gone or interrupted
        Notif n;
        n.closed = true;
        n.error = std::string("SECCOMP_IOCTL_NOTIF_RECV: ") + std::strerror(errno);
        Post(w, std::move(n));
        return;
      }
      // Tell the holder before anything else: if this manager dies before answering, the next one
      // learns the id and can still answer (the kernel will not hand it out again).
      const int note = gNoteFd.load();
      if (note >= 0 && !w->tag.empty()) {
        char msg[300];
        int len = std::snprintf(msg, sizeof(msg), "SEEN %s %llu", w->tag.c_str(), static_cast<unsigned long long>(k->id));
        if (len > 0 && static_cast<size_t>(len) < sizeof(msg)) (void)::send(note, msg, static_cast<size_t>(len), MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      Notif n;
      n.recvUs = MonotonicUs();
      Inspect(w->fd, k, n);
      if (n.valid) TryFast(*w, n);
      n.readUs = MonotonicUs();
      Post(w, std::move(n));
      continue;
    }
    if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
      Notif n;
      n.closed = true;
      if (p[0].revents & POLLNVAL) n.error = "notify fd is not open";
      Post(w, std::move(n));
      return;
    }
  }
}

int FdArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " (fd) must be a number");
  int fd = info[i].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::TypeError::New(info.Env(), "fd must be >= 0");
  return fd;
}

uint64_t IdArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsBigInt())
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " (id) must be a bigint");
  bool lossless = false;
  uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::TypeError::New(info.Env(), "id does not fit in 64 bits");
  return v;
}

Napi::Value Watch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0);
  if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "watch(fd, callback: function)");
  if (::fcntl(fd, F_GETFD) < 0) throw SysError(env, errno, "fcntl", "watch: fd " + std::to_string(fd));
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) throw SysError(env, errno, "eventfd", "eventfd");
  (void)Sizes();  // query once on the JS thread
  // Synchronous wake-ups (issue 17): the caller blocks as soon as it has notified, so its CPU is the
  // one free for the watcher thread, and the answerer's (a spare's or this thread's) is free for the
  // caller once answered. Without it each wake-up may wait behind a busy task on another core.
  // The flag is the notify file's (the performer's and the holder's copies share it); best effort:
  // before Linux 6.6 the ioctl fails (EINVAL/ENOTTY) and the wake-ups stay as they were.
  (void)::ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, static_cast<unsigned long>(SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP));
  auto w = std::make_shared<Watcher>();
  w->fd = fd;
  w->wake = wake;
  if (info.Length() > 2 && info[2].IsString()) w->tag = info[2].As<Napi::String>().Utf8Value().substr(0, 200);
  w->tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "eci-seccomp-watch", 0, 1,
                                          [](Napi::Env, std::shared_ptr<Watcher>* held) {
                                            StopWatcherThread(*held);
                                            EraseWatcher(*held);
                                            delete held;
                                          },
                                          new std::shared_ptr<Watcher>(w));
  w->thread = std::thread(WatchLoop, w);
  const uint32_t handle = AddHandle(gWatchers, w);
  Napi::Object o = Napi::Object::New(env);
  o.Set("close", Napi::Function::New(env, [handle](const Napi::CallbackInfo&) {
          std::shared_ptr<Watcher> w = TakeHandle(gWatchers, handle);
          if (!w) return;
          StopWatcher(w);
        }, "close"));
  // fast(table | null): the fast path's rules and performer socket (the table owns it from here on).
  o.Set("fast", Napi::Function::New(env, [handle](const Napi::CallbackInfo& info) {
          std::shared_ptr<FastTable> t;
          if (info.Length() > 0 && info[0].IsObject()) t = ParseFastTable(info.Env(), info[0].As<Napi::Object>());
          std::shared_ptr<Watcher> w;
          {
            std::lock_guard<std::mutex> g(gMu);
            auto it = gWatchers.find(handle);
            if (it != gWatchers.end()) w = it->second;
          }
          if (!w) return Napi::Boolean::New(info.Env(), false);  // closed: t (and its socket) goes away here
          std::lock_guard<std::mutex> g(w->fastMu);
          w->fast = std::move(t);
          return Napi::Boolean::New(info.Env(), true);
        }, "fast"));
  // charge(): a call the actor's path took counts against the fast path's budget too.
  o.Set("charge", Napi::Function::New(env, [handle](const Napi::CallbackInfo&) {
          std::shared_ptr<FastTable> t;
          {
            std::lock_guard<std::mutex> g(gMu);
            auto it = gWatchers.find(handle);
            if (it == gWatchers.end()) return;
            std::lock_guard<std::mutex> g2(it->second->fastMu);
            t = it->second->fast;
          }
          if (!t) return;
          std::lock_guard<std::mutex> g(t->paceMu);
          t->tatUs = std::max(t->tatUs, MonotonicUs()) + t->intervalUs;
        }, "charge"));
  return o;
}

void Respond(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0);
  const uint64_t id = IdArg(info, 1);
  if (info.Length() < 3 || !info[2].IsObject()) throw Napi::TypeError::New(env, "respond(fd, id, response)");
  Napi::Object r = info[2].As<Napi::Object>();
  const std::string kind = r.Get("kind").IsString() ? r.Get("kind").As<Napi::String>().Utf8Value() : "";
  std::vector<unsigned char> buf(Sizes().resp, 0);
  auto* resp = reinterpret_cast<struct seccomp_notif_resp*>(buf.data());
  resp->id = id;
  if (kind == "continue") {
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  } else if (kind == "errno") {
    Napi::Value e = r.Get("errno");
    if (!e.IsNumber()) throw Napi::TypeError::New(env, "respond: errno must be a number");
    const int64_t v = e.As<Napi::Number>().Int64Value();
    if (v <= 0 || v > 4095) throw Napi::TypeError::New(env, "respond: errno must be in 1..4095");
    resp->error = -static_cast<int32_t>(v);
  } else if (kind == "value") {
    Napi::Value v = r.Get("val");
    if (!v.IsNumber() && !v.IsBigInt()) throw Napi::TypeError::New(env, "respond: val must be a number");
    bool lossless = true;
    resp->val = v.IsBigInt() ? v.As<Napi::BigInt>().Int64Value(&lossless) : v.As<Napi::Number>().Int64Value();
  } else {
    throw Napi::TypeError::New(env, "respond: kind must be 'continue', 'errno' or 'value'");
  }
  if (::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0)
    throw SysError(env, errno, "ioctl", "SECCOMP_IOCTL_NOTIF_SEND id " + std::to_string(id));
}

Napi::Value IdValidJs(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  uint64_t id = IdArg(info, 1);
  if (::ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  throw SysError(info.Env(), errno, "ioctl", "SECCOMP_IOCTL_NOTIF_ID_VALID");
}

void CloseFd(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  if (::close(fd) < 0 && errno != EINTR) throw SysError(info.Env(), errno, "close", "close fd " + std::to_string(fd));
}


// ---------- fd-holder client: hand notify fds to eci-fdholder and take them back ----------

bool IsNotifyFd(int fd) {
  char p[64], link[64];
  std::snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(p, link, sizeof(link) - 1);
  if (n < 0) return false;
  link[n] = '\0';
  return std::strcmp(link, "anon_inode:seccomp notify") == 0;
}

// Where watcher threads send "SEEN" notes: an fd-holder connection (holderConnect), or -1 for none.
// The previous connection is retired in place: an unconnected socket is put on its fd number (dup3),
// which ends the connection (the holder sees it close) while a watcher thread that loaded the number
// just before can still send there harmlessly (ENOTCONN) and never into a reused fd. The caller must
// not close a connection it gave here; its number stays taken by the dead socket.
void HolderNotes(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "holderNotes(fd | -1)");
  const int old = gNoteFd.exchange(std::max(-1, info[0].As<Napi::Number>().Int32Value()));
  if (old < 0) return;
  int dead = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (dead < 0) return;  // then the old connection just stays open
  ::dup3(dead, old, O_CLOEXEC);
  ::close(dead);
}

Napi::Value HolderConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "holderConnect(path: string)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path) || path.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, "holderConnect: bad socket path");
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) throw SysError(env, errno, "socket", "socket");
  struct timeval tv = {2, 0};
  ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(s, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) < 0) {
    int err = errno;
    ::close(s);
    throw SysError(env, err, "connect", "connect " + path);
  }
  return Napi::Number::New(env, s);
}

// One message: its text and at most one fd (-1 if none).
bool HolderRecv(int s, std::string& text, int& fd, int& err) {
  char buf[513];
  fd = -1;
  ssize_t n = RecvWithFds<4>(s, buf, sizeof(buf) - 1, 0, [&fd](int f) {
    if (fd < 0) fd = f;
    else ::close(f);
  });
  if (n < 0) {
    err = errno;
    return false;
  }
  if (n == 0 && fd < 0) {
    err = ECONNRESET;  // the holder went away
    return false;
  }
  text.assign(buf, static_cast<size_t>(n));
  return true;
}

// One request and its answer, on any thread (no JS values): the sync and async calls share it.
struct HolderAnswer {
  std::string reply;
  std::vector<std::pair<std::string, int>> taken;       // tag, fd (the caller's)
  std::vector<std::pair<std::string, uint64_t>> pending;  // tag, id
  int err = 0;
  const char* syscall = nullptr;
  const char* what = nullptr;
};

void HolderRoundTrip(int s, const std::string& req, int pass, HolderAnswer& a) {
  struct iovec iov = {const_cast<char*>(req.data()), req.size()};
  union {
    char b[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  std::memset(&u, 0, sizeof(u));
  struct msghdr mh;
  std::memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (pass >= 0) {
    mh.msg_control = u.b;
    mh.msg_controllen = sizeof(u.b);
    struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &pass, sizeof(int));
  }
  ssize_t w;
  do w = ::sendmsg(s, &mh, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    a.err = errno, a.syscall = "sendmsg", a.what = "fd-holder request";
    return;
  }
  const bool take = req == "TAKE";
  for (;;) {
    std::string text;
    int fd = -1, err = 0;
    if (!HolderRecv(s, text, fd, err)) {
      // Fds already collected are the caller's only if it gets them: close them on failure.
      for (auto& t : a.taken) ::close(t.second);
      a.taken.clear();
      a.err = err, a.syscall = "recvmsg", a.what = "fd-holder answer";
      return;
    }
    if (take && text.rfind("FD ", 0) == 0) {
      if (fd < 0) continue;
      if (!IsNotifyFd(fd)) {
        ::close(fd);
        continue;
      }
      a.taken.emplace_back(text.substr(3), fd);
      continue;
    }
    if (fd >= 0) ::close(fd);
    if (take && text.rfind("PENDING ", 0) == 0) {
      const size_t sp = text.rfind(' ');
      char* end = nullptr;
      const unsigned long long id = std::strtoull(text.c_str() + sp + 1, &end, 10);
      if (sp > 8 && end && *end == '\0') a.pending.emplace_back(text.substr(8, sp - 8), static_cast<uint64_t>(id));
      continue;
    }
    a.reply = text;
    return;
  }
}

// [{tag, <key>: value(v)}] for the holder's (tag, value) pairs.
template <typename T, typename F>
Napi::Array TaggedJs(Napi::Env env, const std::vector<std::pair<std::string, T>>& pairs, const char* key, F value) {
  Napi::Array arr = Napi::Array::New(env, pairs.size());
  for (uint32_t i = 0; i < pairs.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("tag", pairs[i].first);
    o.Set(key, value(pairs[i].second));
    arr.Set(i, o);
  }
  return arr;
}

Napi::Object HolderAnswerJs(Napi::Env env, const HolderAnswer& a) {
  Napi::Object out = Napi::Object::New(env);
  Napi::Array taken = TaggedJs(env, a.taken, "fd", [&](int fd) { return Napi::Number::New(env, fd); });
  Napi::Array pending = TaggedJs(env, a.pending, "id", [&](uint64_t id) { return Napi::BigInt::New(env, id); });
  out.Set("reply", a.reply);
  out.Set("taken", taken);
  out.Set("pending", pending);
  return out;
}

struct HolderArgs {
  int s;
  std::string req;
  int pass = -1;
};

HolderArgs HolderCallArgs(const Napi::CallbackInfo& info, const char* name) {
  Napi::Env env = info.Env();
  HolderArgs h;
  h.s = FdArg(info, 0);
  if (info.Length() < 2 || !info[1].IsString()) throw Napi::TypeError::New(env, std::string(name) + "(fd, request, passFd?)");
  h.req = info[1].As<Napi::String>().Utf8Value();
  if (h.req.empty() || h.req.size() > 512) throw Napi::TypeError::New(env, std::string(name) + ": request must be 1..512 bytes");
  if (info.Length() > 2 && !info[2].IsUndefined()) h.pass = FdArg(info, 2);
  return h;
}

Napi::Value HolderCall(const Napi::CallbackInfo& info) {
  const HolderArgs h = HolderCallArgs(info, "holderCall");
  HolderAnswer a;
  HolderRoundTrip(h.s, h.req, h.pass, a);
  if (a.err) throw SysError(info.Env(), a.err, a.syscall, a.what);
  return HolderAnswerJs(info.Env(), a);
}

// holderCall on a thread-pool thread (the round trip blocks up to the 2 s socket timeouts). passFd is
// duplicated at the call, so the number sent is still the caller's fd even if the caller closes its
// own meanwhile; the copy is closed once sent. One call per connection at a time (the caller's rule).
class HolderCallWorker : public Napi::AsyncWorker {
 public:
  HolderCallWorker(Napi::Env env, HolderArgs h)
      : Napi::AsyncWorker(env, "eci:holderCall"), deferred_(Napi::Promise::Deferred::New(env)), h_(std::move(h)) {}
  ~HolderCallWorker() override {
    if (h_.pass >= 0) ::close(h_.pass);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    HolderRoundTrip(h_.s, h_.req, h_.pass, a_);
    if (h_.pass >= 0) ::close(h_.pass);
    h_.pass = -1;
  }
  void OnOK() override {
    if (a_.err) deferred_.Reject(SysError(Env(), a_.err, a_.syscall, a_.what).Value());
    else deferred_.Resolve(HolderAnswerJs(Env(), a_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  HolderArgs h_;
  HolderAnswer a_;
};

Napi::Value HolderCallAsync(const Napi::CallbackInfo& info) {
  HolderArgs h = HolderCallArgs(info, "holderCallAsync");
  if (h.pass >= 0) {
    const int copy = ::fcntl(h.pass, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) throw SysError(info.Env(), errno, "fcntl", "fd-holder passFd");
    h.pass = copy;
  }
  auto* w = new HolderCallWorker(info.Env(), std::move(h));
  Napi::Promise p = w->Promise();
  w->Queue();  // deletes itself once settled
  return p;
}
// dupFd(fd) -> a CLOEXEC copy (F_DUPFD_CLOEXEC): a request queued for later keeps its own fd to send.
Napi::Value DupFd(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw SysError(info.Env(), errno, "fcntl", "dup fd " + std::to_string(fd));
  return Napi::Number::New(info.Env(), copy);
}

// socketPair() -> [a, b]: AF_UNIX SOCK_SEQPACKET, CLOEXEC (the fast path's line to a performer).
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) throw SysError(info.Env(), errno, "socketpair", "socketpair");
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::Number::New(info.Env(), sv[0]));
  a.Set(1u, Napi::Number::New(info.Env(), sv[1]));
  return a;
}
}  // namespace

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object s = Napi::Object::New(env);
  s.Set("listen", Napi::Function::New(env, Listen, "listen"));
  s.Set("watch", Napi::Function::New(env, Watch, "watch"));
  s.Set("respond", Napi::Function::New(env, Respond, "respond"));
  s.Set("idValid", Napi::Function::New(env, IdValidJs, "idValid"));
  s.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  s.Set("holderConnect", Napi::Function::New(env, HolderConnect, "holderConnect"));
  s.Set("holderCall", Napi::Function::New(env, HolderCall, "holderCall"));
  s.Set("holderCallAsync", Napi::Function::New(env, HolderCallAsync, "holderCallAsync"));
  s.Set("dupFd", Napi::Function::New(env, DupFd, "dupFd"));
  s.Set("holderNotes", Napi::Function::New(env, HolderNotes, "holderNotes"));
  s.Set("fastMatch", Napi::Function::New(env, FastMatchJs, "fastMatch"));
  s.Set("socketPair", Napi::Function::New(env, SocketPair, "socketPair"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("AUDIT_ARCH_X86_64", Napi::Number::New(env, AUDIT_ARCH_X86_64));
  c.Set("AUDIT_ARCH_I386", Napi::Number::New(env, AUDIT_ARCH_I386));
  c.Set("SECCOMP_USER_NOTIF_FLAG_CONTINUE", Napi::Number::New(env, SECCOMP_USER_NOTIF_FLAG_CONTINUE));
  s.Set("constants", c);
  exports.Set("seccomp", s);
}

}  // namespace eci_seccomp
