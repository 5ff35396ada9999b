// Idmapped bind mounts made in-process (no helper exec): volumes and other binds a container gets.
// Only the user namespace needs a process of its own; a fork()ed child that calls nothing but raw
// syscalls is safe even from a threaded Node process. Each bind clones the source with open_tree,
// checks it is the very inode the policy checked (dev/ino), idmaps it with the container's mapping
// (plus nosuid/nodev/rdonly as asked) and attaches it on the target. All or nothing.
#include <napi.h>

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "system-error.h"

namespace eci_idmap {

namespace {


bool WriteFile(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  return ok;
}

struct UsernsChild { int pipefd[2]; };

// Lets a holder child exit: a byte, not EOF. Holders are made on several thread-pool threads at once,
// and each child gets a copy of the fd table as it was at its clone: one holder may hold the write end
// of another's pipe, and EOF would wait for that holder, which may wait for ours (a deadlock, seen
// under 20 creates at once: two pool threads in waitpid for good).
void ReleaseHolder(int wfd) {
  const char one = 1;
  while (::write(wfd, &one, 1) < 0 && errno == EINTR) {}
  ::close(wfd);
}

// The child of clone(CLONE_VM): it shares our memory, so it runs nothing but close and read (which
// touch no shared state but errno, and only on failure) until the parent has taken its namespace.
int HoldUserns(void* arg) {
  auto* c = static_cast<UsernsChild*>(arg);
  char b;
  ::close(c->pipefd[1]);
  while (::read(c->pipefd[0], &b, 1) < 0 && errno == EINTR) {}
  ::_exit(0);
}

int MapAndOpen(pid_t pid, uint32_t uid, uint32_t gid, uint32_t size) {
  const std::string proc = "/proc/" + std::to_string(pid);
  const std::string um = "0 " + std::to_string(uid) + " " + std::to_string(size) + "\n";
  const std::string gm = "0 " + std::to_string(gid) + " " + std::to_string(size) + "\n";
  if (!WriteFile(proc + "/uid_map", um) || !WriteFile(proc + "/gid_map", gm)) return -(errno ? errno : EIO);
  int nsfd = ::open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
  return nsfd < 0 ? -errno : nsfd;
}

int MakeUsernsForked(uint32_t uid, uint32_t gid, uint32_t size);

// A user namespace with mapping 0 -> host/size, held by an fd. Returns -errno on failure. The holder
// is cloned into the new namespace sharing our memory: no copy of the manager's page tables (a
// fork of the Node process cost milliseconds per create, tens of them on a loaded host).
int MakeUserns(uint32_t uid, uint32_t gid, uint32_t size) {
  constexpr size_t kStack = 64 * 1024;
  void* stack = ::mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return MakeUsernsForked(uid, gid, size);
  UsernsChild c;
  if (::pipe2(c.pipefd, O_CLOEXEC) < 0) { int e = errno; ::munmap(stack, kStack); return -e; }
  pid_t pid = ::clone(HoldUserns, static_cast<char*>(stack) + kStack, CLONE_VM | CLONE_NEWUSER | SIGCHLD, &c);
  if (pid < 0) {
    ::close(c.pipefd[0]);
    ::close(c.pipefd[1]);
    ::munmap(stack, kStack);
    return MakeUsernsForked(uid, gid, size);  // a kernel that refuses the combination
  }
  ::close(c.pipefd[0]);
  int r = MapAndOpen(pid, uid, gid, size);
  ReleaseHolder(c.pipefd[1]);
  int st;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  ::munmap(stack, kStack);  // only once the child, which ran on it, is gone
  return r;
}

// The same with a fork()ed child (the way before; kept for kernels that refuse clone(CLONE_VM|CLONE_NEWUSER)).
int MakeUsernsForked(uint32_t uid, uint32_t gid, uint32_t size) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) < 0) return -errno;
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return -err;
  }
  if (pid == 0) {
    // Child: raw syscalls only (the parent is multithreaded).
    char c;
    if (::unshare(CLONE_NEWUSER) < 0) ::_exit(1);
    ::close(pipefd[1]);
    while (::read(pipefd[0], &c, 1) < 0 && errno == EINTR) {}
    ::_exit(0);
  }
  ::close(pipefd[0]);
  const std::string proc = "/proc/" + std::to_string(pid);
  int nsfd = -1, err = 0;
  // Wait until the child has its own user namespace (its ns link differs from ours).
  struct stat self, other;
  ::stat("/proc/self/ns/user", &self);
  for (int i = 0; i < 2000; i++) {
    if (::stat((proc + "/ns/user").c_str(), &other) == 0 && other.st_ino != self.st_ino) break;
    ::usleep(100);
  }
  const std::string um = "0 " + std::to_string(uid) + " " + std::to_string(size) + "\n";
  const std::string gm = "0 " + std::to_string(gid) + " " + std::to_string(size) + "\n";
  if (!WriteFile(proc + "/uid_map", um) || !WriteFile(proc + "/gid_map", gm)) err = errno ? errno : EIO;
  if (!err) {
    nsfd = ::open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) err = errno;
  }
  ReleaseHolder(pipefd[1]);
  int st;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  return err ? -err : nsfd;
}

struct Bind {
  std::string source, target;
  uint64_t dev, ino;
  uint64_t attrs;
};

// What made a run fail: errno, the syscall and the path it was about (err 0: none).
struct Failure {
  int err = 0;
  const char* syscall = "";
  std::string path;
};

bool Fail(Failure* f, int err, const char* syscall, const std::string& path) {
  f->err = err;
  f->syscall = syscall;
  f->path = path;
  return false;
}

// The binds themselves: raw syscalls only, no JavaScript, so it runs on the JS thread or a pool thread.
// All or nothing: on failure the binds already made are undone.
bool MakeBinds(const std::vector<Bind>& binds, uint32_t uid, uint32_t gid, uint32_t size, Failure* f) {
  int nsfd = MakeUserns(uid, gid, size);
  if (nsfd < 0) return Fail(f, -nsfd, "unshare", "user namespace");
  std::vector<std::string> done;
  auto undo = [&]() {
    for (auto it = done.rbegin(); it != done.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    ::close(nsfd);
  };
  for (const Bind& b : binds) {
    // AT_SYMLINK_NOFOLLOW: the policy checked a resolved path; a symlink swapped in now is refused.
    int fd = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, b.source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW));
    if (fd < 0) { int e = errno; undo(); return Fail(f, e, "open_tree", b.source); }
    struct stat st;
    if (::fstat(fd, &st) < 0) { int e = errno; ::close(fd); undo(); return Fail(f, e, "fstat", b.source); }
    if (static_cast<uint64_t>(st.st_dev) != b.dev || static_cast<uint64_t>(st.st_ino) != b.ino) {
      ::close(fd);
      undo();
      return Fail(f, ESTALE, "open_tree", b.source + " (changed after it was checked)");
    }
    struct mount_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.attr_set = b.attrs;
    attr.propagation = MS_PRIVATE;  // never join the source's peer group (see eci-helper.c)
    attr.userns_fd = static_cast<uint64_t>(nsfd);
    if (::syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
      int e = errno; ::close(fd); undo(); return Fail(f, e, "mount_setattr", b.source);
    }
    // The target is made to match: a directory for a directory, an empty file for anything else.
    if (S_ISDIR(st.st_mode)) {
      if (::mkdir(b.target.c_str(), 0755) < 0 && errno != EEXIST) { int e = errno; ::close(fd); undo(); return Fail(f, e, "mkdir", b.target); }
    } else {
      int t = ::open(b.target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (t < 0) { int e = errno; ::close(fd); undo(); return Fail(f, e, "open", b.target); }
      ::close(t);
    }
    if (::syscall(SYS_move_mount, fd, "", AT_FDCWD, b.target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
      int e = errno; ::close(fd); undo(); return Fail(f, e, "move_mount", b.target);
    }
    ::close(fd);
    done.push_back(b.target);
  }
  ::close(nsfd);
  return true;
}

struct BindsCall {
  std::vector<Bind> binds;
  uint32_t uid, gid, size;
};

// The arguments of idmapBinds and idmapBindsAsync, checked on the JS thread.
BindsCall ParseBinds(const Napi::CallbackInfo& info, const char* name) {
  Napi::Env env = info.Env();
  const std::string fn(name);
  if (info.Length() < 4 || !info[0].IsArray()) throw Napi::TypeError::New(env, fn + "(binds, uid, gid, size)");
  BindsCall c;
  c.uid = info[1].As<Napi::Number>().Uint32Value();
  c.gid = info[2].As<Napi::Number>().Uint32Value();
  c.size = info[3].As<Napi::Number>().Uint32Value();
  if (c.uid == 0 || c.gid == 0 || c.size == 0) throw Napi::TypeError::New(env, fn + ": uid, gid and size must be non-zero");
  Napi::Array arr = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    bool lossless;
    Bind b;
    b.source = o.Get("source").As<Napi::String>().Utf8Value();
    b.target = o.Get("target").As<Napi::String>().Utf8Value();
    b.dev = o.Get("dev").As<Napi::BigInt>().Uint64Value(&lossless);
    b.ino = o.Get("ino").As<Napi::BigInt>().Uint64Value(&lossless);
    b.attrs = MOUNT_ATTR_IDMAP;
    if (o.Get("nosuid").ToBoolean()) b.attrs |= MOUNT_ATTR_NOSUID;
    if (o.Get("nodev").ToBoolean()) b.attrs |= MOUNT_ATTR_NODEV;
    if (o.Get("rdonly").ToBoolean()) b.attrs |= MOUNT_ATTR_RDONLY;
    if (b.source.empty() || b.source[0] != '/' || b.target.empty() || b.target[0] != '/')
      throw Napi::TypeError::New(env, fn + ": source and target must be absolute paths");
    c.binds.push_back(b);
  }
  return c;
}

// idmapBinds on a thread-pool thread: under load the user namespace and the mounts take milliseconds
// the event loop would otherwise wait out. The promise settles on the JS thread with the same error.
class IdmapBindsWorker : public Napi::AsyncWorker {
 public:
  IdmapBindsWorker(Napi::Env env, BindsCall call)
      : Napi::AsyncWorker(env, "eci:idmapBinds"), deferred_(Napi::Promise::Deferred::New(env)), call_(std::move(call)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override { MakeBinds(call_.binds, call_.uid, call_.gid, call_.size, &failure_); }
  void OnOK() override {
    if (failure_.err) deferred_.Reject(EciSystemError(Env(), failure_.err, failure_.syscall, failure_.path).Value());
    else deferred_.Resolve(Env().Undefined());
  }

 private:
  Napi::Promise::Deferred deferred_;
  BindsCall call_;
  Failure failure_;
};

}  // namespace

// idmapBinds(binds: {source, target, dev: bigint, ino: bigint, nosuid, nodev, rdonly}[], uid, gid, size)
Napi::Value IdmapBinds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BindsCall c = ParseBinds(info, "idmapBinds");
  if (c.binds.empty()) return env.Undefined();
  Failure f;
  if (!MakeBinds(c.binds, c.uid, c.gid, c.size, &f)) throw EciSystemError(env, f.err, f.syscall, f.path);
  return env.Undefined();
}

// idmapBindsAsync(the same arguments): Promise<void>, the work on libuv's thread pool.
Napi::Value IdmapBindsAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BindsCall c = ParseBinds(info, "idmapBindsAsync");
  if (c.binds.empty()) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  auto* w = new IdmapBindsWorker(env, std::move(c));
  Napi::Promise p = w->Promise();
  w->Queue();  // deletes itself once settled
  return p;
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("idmapBinds", Napi::Function::New(env, IdmapBinds, "idmapBinds"));
  exports.Set("idmapBindsAsync", Napi::Function::New(env, IdmapBindsAsync, "idmapBindsAsync"));
}

}  // namespace eci_idmap
