// eci_native: the node-addon-api addon. Only native/addon.ts loads it (its TypeScript type is there).
//
// Exports:
//   umount2(path: string, flags: number): void
//   umount2Async(path: string, flags: number): Promise<void>   (the same on libuv's thread pool: an
//       unmount under load can take tens of ms, and the manager's event loop must not wait for it)
//   umountTopAsync(mounts: {path, id}[], flags: number): Promise<number[]>   (on the thread pool, in the
//       order given: each mount still the top one at its path (statx STATX_MNT_ID) is unmounted; one
//       result per mount: 0 unmounted, 1 not there (skipped), 2 undecided (the kernel cannot tell; this
//       and all later mounts are left to the caller), or -errno of its umount2)
//   isMountpoint(path: string): boolean   (false when the path does not exist)
//   mountIdAt(path: string): number | null | undefined   (the mount whose root path is; null: kernel cannot tell)
//   mountInfoAt(path: string): string | null   (that mount's mountinfo line, src/statmount.cc; null: kernel cannot tell)
//   bindMount(source: string, target: string): void
//   mountOverlay(lowerdir: string, upperdir: string, workdir: string, target: string): void
//   constants: { MNT_FORCE, MNT_DETACH, MNT_EXPIRE, UMOUNT_NOFOLLOW }
//   seccomp: { listen, watch, respond, idValid, closeFd, constants } (src/seccomp.cc)
// Failures throw an Error shaped like Node's SystemError: code ('EINVAL'), errno (positive), syscall, path.
#include <napi.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "system-error.h"

namespace eci_idmap { void Init(Napi::Env env, Napi::Object exports); }
namespace eci_statmount { void Init(Napi::Env env, Napi::Object exports); }

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

namespace eci_seccomp {
void Init(Napi::Env env, Napi::Object exports);  // src/seccomp.cc: exports.seccomp
}
namespace eci_procfs { void Init(Napi::Env env, Napi::Object exports); }  // src/procfs.cc: exports.procfs

namespace {

Napi::Error SystemError(Napi::Env env, int err, const char* syscall, const std::string& path) {
  return EciSystemError(env, err, syscall, path);
}

std::string PathArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " (path) must be a string");
  std::string path = info[i].As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos)
    throw Napi::TypeError::New(info.Env(), "path must be a non-empty string without NUL bytes");
  return path;
}

void Umount2(const Napi::CallbackInfo& info) {
  const std::string path = PathArg(info, 0);
  if (info.Length() < 2 || !info[1].IsNumber())
    throw Napi::TypeError::New(info.Env(), "argument 1 (flags) must be a number");
  const int flags = static_cast<int>(info[1].As<Napi::Number>().Uint32Value());
  if (::umount2(path.c_str(), flags) < 0)
    throw SystemError(info.Env(), errno, "umount2", path);
}

// umount2 on a thread-pool thread; the promise settles on the JS thread, rejected with the same error.
class Umount2Worker : public Napi::AsyncWorker {
 public:
  Umount2Worker(Napi::Env env, std::string path, int flags)
      : Napi::AsyncWorker(env, "eci:umount2"), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)), flags_(flags) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    if (::umount2(path_.c_str(), flags_) < 0) err_ = errno;
  }
  void OnOK() override {
    if (err_) deferred_.Reject(SystemError(Env(), err_, "umount2", path_).Value());
    else deferred_.Resolve(Env().Undefined());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  int flags_;
  int err_ = 0;
};

Napi::Value Umount2Async(const Napi::CallbackInfo& info) {
  const std::string path = PathArg(info, 0);
  if (info.Length() < 2 || !info[1].IsNumber())
    throw Napi::TypeError::New(info.Env(), "argument 1 (flags) must be a number");
  auto* w = new Umount2Worker(info.Env(), path, static_cast<int>(info[1].As<Napi::Number>().Uint32Value()));
  Napi::Promise p = w->Promise();
  w->Queue();  // deletes itself once settled
  return p;
}

// The delete path: all of a container's mounts in one thread-pool job instead of a hop (and a JS statx)
// per mount. Sequential, in the caller's order (newest first), so a mount is only taken down once the
// one stacked on it at the same path is gone; only a mount whose id is still the top one is touched.
class UmountTopWorker : public Napi::AsyncWorker {
 public:
  struct Mount { std::string path; uint64_t id; };
  UmountTopWorker(Napi::Env env, std::vector<Mount> mounts, int flags)
      : Napi::AsyncWorker(env, "eci:umountTop"), deferred_(Napi::Promise::Deferred::New(env)), mounts_(std::move(mounts)),
        results_(mounts_.size(), kUndecided), flags_(flags) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    for (size_t i = 0; i < mounts_.size(); i++) {
      const int r = TopIs(mounts_[i]);
      if (r == kUndecided) return;  // the caller reads the mount table for this one and the rest
      if (r == kAbsent) { results_[i] = kAbsent; continue; }
      results_[i] = ::umount2(mounts_[i].path.c_str(), flags_) < 0 ? -errno : kUnmounted;
    }
  }
  void OnOK() override {
    Napi::Array out = Napi::Array::New(Env(), results_.size());
    for (size_t i = 0; i < results_.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(Env(), results_[i]));
    deferred_.Resolve(out);
  }

 private:
  static constexpr int kUnmounted = 0, kAbsent = 1, kUndecided = 2;
  // As MountIdAt: is the top mount at m.path the one with m.id? (statx does not ask a FUSE server.)
  static int TopIs(const Mount& m) {
    struct statx stx;
    if (::statx(AT_FDCWD, m.path.c_str(), AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) < 0)
      return errno == ENOENT || errno == ENOTDIR ? kAbsent : kUndecided;
    if (!(stx.stx_mask & STATX_MNT_ID) || !(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) return kUndecided;
    if (!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) return kAbsent;
    return stx.stx_mnt_id == m.id ? kUnmounted : kAbsent;
  }
  Napi::Promise::Deferred deferred_;
  std::vector<Mount> mounts_;
  std::vector<int> results_;
  int flags_;
};

Napi::Value UmountTopAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "umountTopAsync(mounts: {path, id}[], flags: number)");
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<UmountTopWorker::Mount> mounts;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, "mounts[" + std::to_string(i) + "] must be {path, id}");
    Napi::Object o = v.As<Napi::Object>();
    Napi::Value p = o.Get("path"), id = o.Get("id");
    if (!p.IsString() || !id.IsNumber()) throw Napi::TypeError::New(env, "mounts[" + std::to_string(i) + "] must be {path: string, id: number}");
    std::string path = p.As<Napi::String>().Utf8Value();
    if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos)
      throw Napi::TypeError::New(env, "mounts[" + std::to_string(i) + "].path must be absolute, without NUL bytes");
    mounts.push_back({std::move(path), static_cast<uint64_t>(id.As<Napi::Number>().Int64Value())});
  }
  auto* w = new UmountTopWorker(env, std::move(mounts), static_cast<int>(info[1].As<Napi::Number>().Uint32Value()));
  Napi::Promise p = w->Promise();
  w->Queue();  // deletes itself once settled
  return p;
}

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

// Binds the mount at `source` (not its submounts) on top of `target`, with the new mount API so the
// clone keeps the source's idmapping. Safe from a threaded process: no namespace is entered.
void BindMount(const Napi::CallbackInfo& info) {
  const std::string source = PathArg(info, 0);
  const std::string target = PathArg(info, 1);
  const int fd = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | O_CLOEXEC));
  if (fd < 0) throw SystemError(info.Env(), errno, "open_tree", source);
  if (::syscall(SYS_move_mount, fd, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    const int err = errno;
    ::close(fd);
    throw SystemError(info.Env(), err, "move_mount", target);
  }
  ::close(fd);
}

// mount(2) of a plain overlay (no idmapping) on target, in this process's mount namespace: what
// `mount -t overlay overlay -o lowerdir=L,upperdir=U,workdir=W target` does. lowerdir is colon-joined;
// native/mounts.ts refuses ',' and ':' inside the paths.
void MountOverlay(const Napi::CallbackInfo& info) {
  const std::string lower = PathArg(info, 0);
  const std::string upper = PathArg(info, 1);
  const std::string work = PathArg(info, 2);
  const std::string target = PathArg(info, 3);
  const std::string data = "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work;
  if (::mount("overlay", target.c_str(), "overlay", 0, data.c_str()) < 0)
    throw SystemError(info.Env(), errno, "mount", target);
}

// True when path (symlinks followed) is the root of a mount. statx's STATX_ATTR_MOUNT_ROOT (Linux 5.8+)
// also sees bind mounts of a directory of the same filesystem; without it, fall back to comparing the
// device with the parent's (which misses same-filesystem bind mounts).
Napi::Value IsMountpoint(const Napi::CallbackInfo& info) {
  const std::string path = PathArg(info, 0);
  Napi::Env env = info.Env();
  struct statx stx;
  if (::statx(AT_FDCWD, path.c_str(), 0, STATX_BASIC_STATS, &stx) < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Napi::Boolean::New(env, false);
    throw SystemError(env, errno, "statx", path);
  }
  if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
    return Napi::Boolean::New(env, (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0);
  struct stat self, parent;
  const std::string up = path + "/..";
  if (::stat(path.c_str(), &self) < 0) throw SystemError(env, errno, "stat", path);
  if (!S_ISDIR(self.st_mode)) return Napi::Boolean::New(env, false);
  if (::stat(up.c_str(), &parent) < 0) throw SystemError(env, errno, "stat", up);
  return Napi::Boolean::New(env, self.st_dev != parent.st_dev || self.st_ino == parent.st_ino);
}

// The id (as in mountinfo) of the top mount whose root is exactly path, from one statx instead of reading
// the whole mount table: undefined when path is no mount's root or does not exist; null when this kernel
// cannot tell (no STATX_MNT_ID / STATX_ATTR_MOUNT_ROOT before 5.8): the caller then reads mountinfo.
Napi::Value MountIdAt(const Napi::CallbackInfo& info) {
  const std::string path = PathArg(info, 0);
  Napi::Env env = info.Env();
  struct statx stx;
  // AT_STATX_DONT_SYNC: the mount id and mount-root bit come from the VFS; a FUSE mount (a host view)
  // is then not asked for its attributes, so a hung or gone server cannot block or fail this call.
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return env.Undefined();
    throw SystemError(env, errno, "statx", path);
  }
  if (!(stx.stx_mask & STATX_MNT_ID) || !(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) return env.Null();
  if (!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) return env.Undefined();
  return Napi::Number::New(env, static_cast<double>(stx.stx_mnt_id));
}

// Marks every fd from 3 up close-on-exec, once at manager start: fds the manager inherited from whoever
// started it must not reach its children (nats-server, the fd-holder, helpers that enter containers).
void CloexecInherited(const Napi::CallbackInfo& info) {
#ifdef CLOSE_RANGE_CLOEXEC
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
#endif
  // Older kernels: each open fd in turn.
  long max = ::sysconf(_SC_OPEN_MAX);
  if (max <= 0 || max > 65536) max = 65536;
  for (int fd = 3; fd < max; fd++) {
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC) && ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
      throw SystemError(info.Env(), errno, "fcntl", "fd " + std::to_string(fd));
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("cloexecInherited", Napi::Function::New(env, CloexecInherited, "cloexecInherited"));
  exports.Set("umount2", Napi::Function::New(env, Umount2, "umount2"));
  exports.Set("umount2Async", Napi::Function::New(env, Umount2Async, "umount2Async"));
  exports.Set("umountTopAsync", Napi::Function::New(env, UmountTopAsync, "umountTopAsync"));
  exports.Set("isMountpoint", Napi::Function::New(env, IsMountpoint, "isMountpoint"));
  exports.Set("mountIdAt", Napi::Function::New(env, MountIdAt, "mountIdAt"));
  exports.Set("bindMount", Napi::Function::New(env, BindMount, "bindMount"));
  exports.Set("mountOverlay", Napi::Function::New(env, MountOverlay, "mountOverlay"));
  eci_idmap::Init(env, exports);
  eci_statmount::Init(env, exports);
  Napi::Object constants = Napi::Object::New(env);
  constants.Set("MNT_FORCE", Napi::Number::New(env, MNT_FORCE));
  constants.Set("MNT_DETACH", Napi::Number::New(env, MNT_DETACH));
  constants.Set("MNT_EXPIRE", Napi::Number::New(env, MNT_EXPIRE));
  constants.Set("UMOUNT_NOFOLLOW", Napi::Number::New(env, UMOUNT_NOFOLLOW));
  exports.Set("constants", constants);
  eci_seccomp::Init(env, exports);
  eci_procfs::Init(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(eci_native, Init)
