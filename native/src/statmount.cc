// mountInfoAt(path): the mountinfo line of the mount whose root `path` is, from statmount(2) (Linux
// 6.8; the options since 6.11) instead of the whole /proc/self/mountinfo, whose size grows with every
// mount on the host (a create read ~0.3 MB of it, tens of ms on a loaded host). The line has the
// fields mountinfo.ts parses, escaped the same way; '' when path is no mount's root; null when this
// kernel cannot tell (the caller then reads mountinfo).
#include <napi.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "system-error.h"

namespace eci_statmount {

namespace {

#ifndef SYS_statmount
#define SYS_statmount 457
#endif
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U
#endif

// The kernel's uapi (linux/mount.h, 6.8+), copied: the system headers here predate it.
struct MntIdReq { uint32_t size; uint32_t spare; uint64_t mnt_id; uint64_t param; };
struct StatMount {
  uint32_t size, mnt_opts;
  uint64_t mask;
  uint32_t sb_dev_major, sb_dev_minor;
  uint64_t sb_magic;
  uint32_t sb_flags, fs_type;
  uint64_t mnt_id, mnt_parent_id;
  uint32_t mnt_id_old, mnt_parent_id_old;
  uint64_t mnt_attr, mnt_propagation, mnt_peer_group, mnt_master, propagate_from;
  uint32_t mnt_root, mnt_point;
  uint64_t mnt_ns_id;
  uint32_t fs_subtype, sb_source;
  uint32_t opt_num, opt_array, opt_sec_num, opt_sec_array;
  uint64_t spare2[46];
  char str[];
};
constexpr uint64_t SB_BASIC = 0x1, MNT_BASIC = 0x2, MNT_ROOT = 0x8, MNT_POINT = 0x10, FS_TYPE = 0x20, MNT_OPTS = 0x80, FS_SUBTYPE = 0x100;
constexpr uint32_t SB_RDONLY = 0x1;
constexpr uint64_t ATTR_RDONLY = 0x1;

// mountinfo's escaping of paths (fs/proc_namespace.c: mangle " \t\n\\" as octal).
std::string Mangle(const char* s) {
  std::string out;
  for (; *s; s++) {
    const unsigned char c = static_cast<unsigned char>(*s);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\\') {
      char b[5];
      snprintf(b, sizeof b, "\\%03o", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string PathArg(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "mountInfoAt(path: string)");
  return info[0].As<Napi::String>().Utf8Value();
}

Napi::Value MountInfoAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = PathArg(info);
  struct statx stx;
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_MNT_ID_UNIQUE, &stx) < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Napi::String::New(env, "");
    throw EciSystemError(env, errno, "statx", path);
  }
  if (!(stx.stx_mask & STATX_MNT_ID_UNIQUE) || !(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) return env.Null();
  if (!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) return Napi::String::New(env, "");
  const uint64_t want = SB_BASIC | MNT_BASIC | MNT_ROOT | MNT_POINT | FS_TYPE | MNT_OPTS;
  MntIdReq req{24, 0, stx.stx_mnt_id, want | FS_SUBTYPE};
  std::vector<char> buf(64 * 1024);
  for (;;) {
    if (::syscall(SYS_statmount, &req, buf.data(), buf.size(), 0) == 0) break;
    if (errno == EOVERFLOW && buf.size() < (16u << 20)) { buf.resize(buf.size() * 4); continue; }
    if (errno == ENOSYS || errno == EINVAL || errno == EPERM) return env.Null();
    if (errno == ENOENT) return Napi::String::New(env, "");  // unmounted meanwhile
    throw EciSystemError(env, errno, "statmount", path);
  }
  const auto* sm = reinterpret_cast<const StatMount*>(buf.data());
  if ((sm->mask & (want & ~MNT_OPTS)) != (want & ~MNT_OPTS)) return env.Null();
  // No options reported: a filesystem without any, or a kernel that cannot give them (< 6.11). An
  // overlay always has some, so for one the caller reads mountinfo instead.
  const bool opts = (sm->mask & MNT_OPTS) != 0;
  std::string line = std::to_string(sm->mnt_id_old) + " " + std::to_string(sm->mnt_parent_id_old) + " " +
                     std::to_string(sm->sb_dev_major) + ":" + std::to_string(sm->sb_dev_minor) + " " +
                     Mangle(sm->str + sm->mnt_root) + " " + Mangle(sm->str + sm->mnt_point) + " " +
                     ((sm->mnt_attr & ATTR_RDONLY) ? "ro" : "rw") + " - " + Mangle(sm->str + sm->fs_type) +
                     ((sm->mask & FS_SUBTYPE) && sm->str[sm->fs_subtype] ? "." + Mangle(sm->str + sm->fs_subtype) : "") + " none " +
                     ((sm->sb_flags & SB_RDONLY) ? "ro" : "rw");
  if (opts && sm->str[sm->mnt_opts]) line += std::string(",") + (sm->str + sm->mnt_opts);
  else if (!opts && std::string(sm->str + sm->fs_type) == "overlay") return env.Null();  // an overlay always has options
  return Napi::String::New(env, line + "\n");
}

}  // namespace

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mountInfoAt", Napi::Function::New(env, MountInfoAt, "mountInfoAt"));
}

}  // namespace eci_statmount
