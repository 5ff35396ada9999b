// eci procfs: a FUSE filesystem (libfuse3 low-level API) of files whose content JavaScript renders per
// caller. Meant to be bind-mounted over /proc/uptime, /proc/meminfo... in containers (mount, read-only)
// and for the per-container sysctl views (mountRw, some files writable). Both are one implementation.
//
// Exports (on exports.procfs):
//   mount(mountpoint: string, files: string[], onRead: (id: number, file: string, pid: number) => void)
//     -> { reply(id: number, text: string | null, errno: number): void, close(): void }
//   onRead runs on the event loop for every read at offset 0 (and for a read at a later offset of a
//   file descriptor that was never rendered); JS answers with reply(id, text) or reply(id, null, errno).
//   A read not answered within 2 s fails with EIO. Later offsets are served from the per-open buffer.
//   close() stops the session thread, fails pending reads (and writes) with EIO and unmounts (MNT_DETACH).
//   mount(..., cacheMs?: number[]) also returns cache(pidns: number, on: boolean): see "Render cache".
//   mount() also returns addView(name) and removeView(name): see "Views". onRead gets a fourth argument,
//   the view's name ('' for the top-level files).
//   mountRw(mountpoint, files: string[], writable: string[], onRead(id, file, pid, view),
//           onWrite(id, file, pid, uid, data: string, view))
//     -> { reply(id, text|null, errno), replyWrite(id, errno /* 0: accepted */), close(), addView, removeView }
//   Files named in `writable` are 0666 (callers are judged in JS, by pid and uid) and accept opens
//   for writing and O_TRUNC; the others are 0444 as with mount(). A write at offset 0 calls onWrite on
//   the event loop; JS answers replyWrite(id, 0) (the whole write is accepted) or an errno. A write at
//   a later offset is accepted and ignored (as the kernel's sysctl_writes_strict does for numbers).
//   An answer later than 2 s fails the write with EIO.
//
// Views: the kernel reads through the page cache of the inode for splice/sendfile/copy_file_range and
// private mmaps even with direct_io (6.5+: fuse_splice_read is filemap_splice_read), and that cache is
// shared by every reader of the inode: with one inode per file, a container could read another's text
// (or the host's). So each container gets a directory of its own (a view) with the same files under
// inodes of their own, rendered for that container whoever reads them; the page cache of a view's inode
// then only ever holds that container's text. Inode numbers are never reused (view k: k*(n+1)+1 is the
// directory, k*(n+1)+2+i file i; k = 0 is the root and the top-level files), so a stale kernel inode of
// a removed view answers ENOENT and never another view's text.
// Both mount() and mountRw() have views; a write through a view's file is that view's (onWrite's view).
//
// One session thread polls /dev/fuse and an eventfd (for close); replies to reads and writes come from
// the JS thread (libfuse replies are thread-safe), so a slow render never blocks other requests.
#define FUSE_USE_VERSION 31
#include <fuse_lowlevel.h>
#include <napi.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "system-error.h"

namespace eci_procfs {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kReplyTimeout = std::chrono::milliseconds(2000);  // for onRead and onWrite alike
constexpr fuse_ino_t kRootIno = FUSE_ROOT_ID;  // 1; file i has inode i + 2
constexpr double kAttrTimeout = 1.0;
constexpr off_t kNominalSize = 32768;

struct OpenFile {
  std::mutex mu;
  size_t index;
  uint64_t view = 0;     // 0: a top-level file
  std::string viewName;  // kept from the open: the view may be removed while the file is open
  bool rendered = false;
  std::string data;
};

// A read or write waiting for its answer from JS.
struct Pending {
  fuse_req_t req;
  OpenFile* of;  // nullptr for a write
  size_t size;
  off_t off;
  Clock::time_point deadline;
  uint64_t pidns = 0;   // the cache scope (caller's pid namespace, or kViewScope | view) when kept, else 0
  uint64_t cacheGen = 0;
  size_t file = 0;      // index, for the cache
  // req is nullptr for a background refresh of a cache entry (nobody waits for it).
};

// ---------- Render cache ----------
// Rendering in JS costs a round trip to the event loop per read. A container's file changes slowly, so
// JS's answer for a caller in a registered container's pid namespace is kept for the file's TTL
// (mount's cacheMs) and served to every reader of that namespace from the session thread. Keyed by
// pid namespace inode, as JS attributes reads; only namespaces JS registered (cache(ns, true)) are kept,
// and cache(ns, false) drops them and bumps a generation so a render already on its way is not kept.
// An entry past its TTL is still served for one more TTL while one background render (for the
// reader's pid) replaces it, so a busy reader never waits for JS and no answer is older than 2 TTLs.

struct RenderCache {
  struct Entry {
    std::string text;
    Clock::time_point expires;
    bool refreshing = false;
  };
  enum class Hit { kMiss, kFresh, kStaleRefresh };
  std::vector<int> ttlMs;  // per file; 0: never cached
  std::mutex mu;           // guards what follows
  std::set<uint64_t> namespaces;
  std::map<std::pair<uint64_t, size_t>, Entry> entries;
  uint64_t gen = 0;

  bool Enabled(size_t file) const { return file < ttlMs.size() && ttlMs[file] > 0; }

  // Generation to hand back to Put, or 0 when ns is not registered.
  uint64_t Registered(uint64_t ns) {
    std::lock_guard<std::mutex> g(mu);
    return namespaces.count(ns) ? gen + 1 : 0;
  }

  // kStaleRefresh: served stale, and the caller must start the one background render (or Unmark).
  Hit Get(uint64_t ns, size_t file, std::string* out) {
    std::lock_guard<std::mutex> g(mu);
    auto it = entries.find({ns, file});
    if (it == entries.end()) return Hit::kMiss;
    const auto now = Clock::now();
    Entry& e = it->second;
    if (e.expires > now) {
      *out = e.text;
      return Hit::kFresh;
    }
    if (now - e.expires > std::chrono::milliseconds(ttlMs[file])) return Hit::kMiss;
    *out = e.text;
    if (e.refreshing) return Hit::kFresh;
    e.refreshing = true;
    return Hit::kStaleRefresh;
  }

  // A background render failed or was never sent: let the next reader try again.
  void Unmark(uint64_t ns, size_t file) {
    std::lock_guard<std::mutex> g(mu);
    auto it = entries.find({ns, file});
    if (it != entries.end()) it->second.refreshing = false;
  }

  void Put(uint64_t ns, size_t file, uint64_t readGen, const std::string& text) {
    std::lock_guard<std::mutex> g(mu);
    if (readGen != gen + 1 || !namespaces.count(ns)) return;  // unregistered meanwhile
    const auto now = Clock::now();
    if (entries.size() > 4096)
      for (auto it = entries.begin(); it != entries.end();) it = it->second.expires <= now ? entries.erase(it) : std::next(it);
    entries[{ns, file}] = Entry{text, now + std::chrono::milliseconds(ttlMs[file])};
  }

  void Set(uint64_t ns, bool on) {
    std::lock_guard<std::mutex> g(mu);
    gen++;
    if (on) {
      namespaces.insert(ns);
      return;
    }
    namespaces.erase(ns);
    for (auto it = entries.begin(); it != entries.end();) it = it->first.first == ns ? entries.erase(it) : std::next(it);
  }
};

// Cache scope of view k: pid namespace inodes are 32-bit, so the two never meet.
constexpr uint64_t kViewScope = 1ull << 63;

// Inode of host pid `pid`'s pid namespace, 0 when it is gone.
uint64_t PidNsOf(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/ns/pid", static_cast<int>(pid));
  struct stat st;
  return ::stat(path, &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

// One call of onRead(id, file, pid) or, with write set, onWrite(id, file, pid, uid, data).
struct JsCall {
  uint64_t id;
  std::string file;
  int32_t pid;
  bool write = false;
  uint32_t uid = 0;
  std::string data;
  std::string view;  // the view's name, '' at the top level
};

void CallJs(Napi::Env env, Napi::Function cb, std::nullptr_t*, JsCall* call) {
  std::unique_ptr<JsCall> c(call);
  if (env == nullptr || cb.IsEmpty()) return;  // torn down; the timeout (or close) answers the request
  try {
    if (c->write)
      cb.Call({Napi::Number::New(env, static_cast<double>(c->id)), Napi::String::New(env, c->file),
               Napi::Number::New(env, c->pid), Napi::Number::New(env, c->uid), Napi::String::New(env, c->data),
               Napi::String::New(env, c->view)});
    else
      cb.Call({Napi::Number::New(env, static_cast<double>(c->id)), Napi::String::New(env, c->file),
               Napi::Number::New(env, c->pid), Napi::String::New(env, c->view)});
  } catch (const Napi::Error& e) {
    // An exception thrown synchronously by the callback: the read (or write) times out with EIO. Never
    // let it escape into the event loop.
    (void)e;
  }
}

using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, JsCall, CallJs>;

// One mount: mount() is a Server with rw unset (no file writable, no write/setattr/init ops).
struct Server {
  std::string mountpoint;
  std::vector<std::string> files;
  std::vector<bool> writable;  // per file; all false unless rw
  bool rw = false;             // mountRw: onWrite, replyWrite, the write/setattr/init ops
  fuse_session* se = nullptr;
  int efd = -1;
  std::thread thread;
  Tsfn onRead;
  Tsfn onWrite;   // only when rw
  std::mutex mu;  // guards pending, nextId, closed
  std::map<uint64_t, Pending> pending;
  uint64_t nextId = 1;
  bool closed = false;
  std::atomic<bool> stop{false};
  RenderCache cache;  // mount() with cacheMs only
  std::mutex viewsMu;  // guards what follows (see "Views")
  std::map<uint64_t, std::string> views;
  std::map<std::string, uint64_t> viewByName;
  uint64_t nextView = 1;

  uint64_t Stride() const { return files.size() + 1; }
  bool ViewLive(uint64_t k) {
    if (k == 0) return true;
    std::lock_guard<std::mutex> g(viewsMu);
    return views.count(k) != 0;
  }

  void Wake() {
    uint64_t one = 1;
    if (efd >= 0) (void)!::write(efd, &one, sizeof one);
  }
};

Server* Of(fuse_req_t req) { return static_cast<Server*>(fuse_req_userdata(req)); }

// A file's index and view (0: top level), when ino is a file of the root or of a live view.
bool FileIndex(Server* s, fuse_ino_t ino, size_t* index, uint64_t* view = nullptr) {
  if (ino < 1) return false;
  const uint64_t k = (ino - 1) / s->Stride(), j = (ino - 1) % s->Stride();
  if (j == 0 || !s->ViewLive(k)) return false;
  *index = j - 1;
  if (view) *view = k;
  return true;
}

// Whether ino is the root (view 0) or a live view's directory; sets *view.
bool DirOf(Server* s, fuse_ino_t ino, uint64_t* view) {
  if (ino < 1 || (ino - 1) % s->Stride() != 0) return false;
  *view = (ino - 1) / s->Stride();
  return s->ViewLive(*view);
}

fuse_ino_t DirIno(const Server* s, uint64_t view) { return view * s->Stride() + 1; }
fuse_ino_t FileIno(const Server* s, uint64_t view, size_t i) { return view * s->Stride() + 2 + i; }

void FillAttr(Server* s, fuse_ino_t ino, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = 0;
  st->st_gid = 0;
  size_t idx;
  if ((ino - 1) % s->Stride() == 0) {  // the root or a view's directory
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
  } else {
    // Writable files are 0666: callers are judged in JS, by pid and uid.
    st->st_mode = S_IFREG | (FileIndex(s, ino, &idx) && s->writable[idx] ? 0666 : 0444);
    st->st_nlink = 1;
    // Not the real size (unknown before rendering). read() ignores it (direct_io), but splice/sendfile
    // (busybox cat) go through the page cache, which stops at i_size: a size of 0 would read as empty.
    // A short read at the real end makes the kernel shrink i_size to it.
    st->st_size = kNominalSize;
  }
  st->st_blksize = 4096;
}

void ReplySlice(fuse_req_t req, const std::string& data, size_t size, off_t off) {
  if (off < 0 || static_cast<size_t>(off) >= data.size()) {
    fuse_reply_buf(req, nullptr, 0);
    return;
  }
  const size_t n = std::min(size, data.size() - static_cast<size_t>(off));
  fuse_reply_buf(req, data.data() + off, n);
}

// Fails a pending read or write with err; a background refresh just lets the next reader retry.
void FailPending(Server* s, const Pending& p, int err) {
  if (p.req != nullptr) fuse_reply_err(p.req, err);
  else s->cache.Unmark(p.pidns, p.file);
}

// Hands call to JS through fn; the request is then answered by reply()/replyWrite(), its deadline
// (EIO) or close() (EIO).
void CallOut(Server* s, Tsfn& fn, fuse_req_t req, JsCall* call, OpenFile* of, size_t size, off_t off,
             uint64_t pidns = 0, uint64_t cacheGen = 0, size_t fileIndex = 0) {
  {
    std::lock_guard<std::mutex> g(s->mu);
    const Pending p{req, of, size, off, Clock::now() + kReplyTimeout, pidns, cacheGen, of ? of->index : fileIndex};
    if (s->closed) {
      delete call;
      FailPending(s, p, EIO);
      return;
    }
    call->id = s->nextId++;
    s->pending[call->id] = p;
  }
  const uint64_t id = call->id;
  if (fn.NonBlockingCall(call) != napi_ok) {
    delete call;
    std::lock_guard<std::mutex> g(s->mu);
    auto it = s->pending.find(id);
    if (it != s->pending.end()) {
      const Pending p = it->second;
      s->pending.erase(it);
      FailPending(s, p, EIO);
    }
  }
}

void ReplyEntry(fuse_req_t req, Server* s, fuse_ino_t ino) {
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = ino;
  e.attr_timeout = kAttrTimeout;
  e.entry_timeout = kAttrTimeout;
  FillAttr(s, e.ino, &e.attr);
  fuse_reply_entry(req, &e);
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Server* s = Of(req);
  uint64_t view;
  if (!DirOf(s, parent, &view)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  for (size_t i = 0; i < s->files.size(); i++) {
    if (s->files[i] == name) {
      ReplyEntry(req, s, FileIno(s, view, i));
      return;
    }
  }
  if (view == 0) {
    uint64_t k = 0;
    {
      std::lock_guard<std::mutex> g(s->viewsMu);
      auto it = s->viewByName.find(name);
      if (it != s->viewByName.end()) k = it->second;
    }
    if (k != 0) {
      ReplyEntry(req, s, DirIno(s, k));
      return;
    }
  }
  fuse_reply_err(req, ENOENT);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Server* s = Of(req);
  size_t idx;
  uint64_t view;
  if (!DirOf(s, ino, &view) && !FileIndex(s, ino, &idx)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st;
  FillAttr(s, ino, &st);
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Server* s = Of(req);
  uint64_t view;
  if (!DirOf(s, ino, &view)) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  std::string buf;
  auto add = [&](const char* name, fuse_ino_t child) {
    struct stat st;
    FillAttr(s, child, &st);
    const size_t len = fuse_add_direntry(req, nullptr, 0, name, nullptr, 0);
    const size_t at = buf.size();
    buf.resize(at + len);
    fuse_add_direntry(req, &buf[at], len, name, &st, static_cast<off_t>(at + len));
  };
  add(".", ino);
  add("..", kRootIno);
  for (size_t i = 0; i < s->files.size(); i++) add(s->files[i].c_str(), FileIno(s, view, i));
  if (view == 0) {
    std::vector<std::pair<std::string, uint64_t>> vs;
    {
      std::lock_guard<std::mutex> g(s->viewsMu);
      vs.assign(s->viewByName.begin(), s->viewByName.end());
    }
    for (const auto& [name, k] : vs) add(name.c_str(), DirIno(s, k));
  }
  ReplySlice(req, buf, size, off);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Server* s = Of(req);
  size_t idx;
  uint64_t view = 0;
  if (!FileIndex(s, ino, &idx, &view)) {
    fuse_reply_err(req, DirOf(s, ino, &view) ? EISDIR : ENOENT);
    return;
  }
  if (((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) && !s->writable[idx]) {
    fuse_reply_err(req, EACCES);
    return;
  }
  auto* of = new OpenFile();
  of->index = idx;
  of->view = view;
  if (view != 0) {
    std::lock_guard<std::mutex> g(s->viewsMu);
    auto it = s->views.find(view);
    if (it == s->views.end()) {  // removed since the check
      delete of;
      fuse_reply_err(req, ENOENT);
      return;
    }
    of->viewName = it->second;
  }
  fi->fh = reinterpret_cast<uint64_t>(of);
  fi->direct_io = 1;
  fi->keep_cache = 0;
  fi->nonseekable = 0;
  if (fuse_reply_open(req, fi) != 0) delete of;  // the open was interrupted: no release will follow
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  Server* s = Of(req);
  auto* of = reinterpret_cast<OpenFile*>(fi->fh);
  {
    std::lock_guard<std::mutex> g(of->mu);
    if (off > 0 && of->rendered) {
      ReplySlice(req, of->data, size, off);
      return;
    }
  }
  const pid_t pid = fuse_req_ctx(req)->pid;
  // A view's text is its container's whoever reads it; a top-level file's is the caller's namespace's.
  uint64_t ns = 0, gen = 0;
  if (s->cache.Enabled(of->index) && (ns = of->view ? kViewScope | of->view : PidNsOf(pid)) != 0 &&
      (gen = s->cache.Registered(ns)) != 0) {
    std::string text;
    const RenderCache::Hit hit = s->cache.Get(ns, of->index, &text);
    if (hit == RenderCache::Hit::kStaleRefresh) {
      auto* refresh = new JsCall{0, s->files[of->index], static_cast<int32_t>(pid), false, 0, {}, of->viewName};
      CallOut(s, s->onRead, nullptr, refresh, nullptr, 0, 0, ns, gen, of->index);
    }
    if (hit != RenderCache::Hit::kMiss) {
      std::string slice;
      {
        std::lock_guard<std::mutex> g(of->mu);
        of->data = std::move(text);
        of->rendered = true;
        if (off >= 0 && static_cast<size_t>(off) < of->data.size()) slice = of->data.substr(static_cast<size_t>(off), size);
      }
      fuse_reply_buf(req, slice.data(), slice.size());
      return;
    }
  }
  auto* call = new JsCall{0, s->files[of->index], static_cast<int32_t>(pid), false, 0, {}, of->viewName};
  CallOut(s, s->onRead, req, call, of, size, off, gen ? ns : 0, gen);
}

// mountRw only. A write at offset 0 goes to onWrite; one at a later offset is accepted and ignored (as
// the kernel's sysctl_writes_strict does for numbers).
void OpWrite(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  Server* s = Of(req);
  auto* of = reinterpret_cast<OpenFile*>(fi->fh);
  if (!s->writable[of->index]) {
    fuse_reply_err(req, EBADF);
    return;
  }
  if (off > 0) {
    fuse_reply_write(req, size);
    return;
  }
  const fuse_ctx* ctx = fuse_req_ctx(req);
  // A write through a view goes to the view's container, whoever writes (JS still judges the writer).
  auto* call = new JsCall{0, s->files[of->index], static_cast<int32_t>(ctx->pid), true,
                          static_cast<uint32_t>(ctx->uid), std::string(buf, size), of->viewName};
  CallOut(s, s->onWrite, req, call, nullptr, size, off);
}

// mountRw only. Only truncation (O_TRUNC, `>` in a shell) and time updates of writable files; nothing
// changes.
void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat*, int to_set, fuse_file_info*) {
  Server* s = Of(req);
  size_t idx;
  uint64_t view;
  if (!FileIndex(s, ino, &idx)) {
    fuse_reply_err(req, DirOf(s, ino, &view) ? EPERM : ENOENT);
    return;
  }
  const int allowed = FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
                      FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME;
  if (!s->writable[idx] || (to_set & ~allowed)) {
    fuse_reply_err(req, s->writable[idx] ? EPERM : EACCES);
    return;
  }
  struct stat st;
  FillAttr(s, ino, &st);
  fuse_reply_attr(req, &st, kAttrTimeout);
}

// mountRw only. Truncation must come as a setattr answered with the nominal size: with atomic O_TRUNC
// the kernel would set i_size to 0 at open, and a failed write would then leave the file reading as
// empty through the page cache (splice/sendfile).
void OpInit(void*, fuse_conn_info* conn) { conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC; }

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete reinterpret_cast<OpenFile*>(fi->fh);
  fuse_reply_err(req, 0);
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  uint64_t view;
  if (!DirOf(Of(req), ino, &view)) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  fuse_reply_open(req, fi);
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs sv;
  std::memset(&sv, 0, sizeof sv);
  sv.f_bsize = 4096;
  sv.f_namemax = 255;
  fuse_reply_statfs(req, &sv);
}

// mount() leaves write, setattr and init unset (libfuse answers ENOSYS, atomic O_TRUNC stays on).
const fuse_lowlevel_ops* Ops(bool rw) {
  auto make = [](bool withWrite) {
    fuse_lowlevel_ops o;
    std::memset(&o, 0, sizeof o);
    o.lookup = OpLookup;
    o.getattr = OpGetattr;
    o.opendir = OpOpendir;
    o.readdir = OpReaddir;
    o.open = OpOpen;
    o.read = OpRead;
    o.release = OpRelease;
    o.statfs = OpStatfs;
    if (withWrite) {
      o.init = OpInit;
      o.setattr = OpSetattr;
      o.write = OpWrite;
    }
    return o;
  };
  static const fuse_lowlevel_ops ro = make(false), rwOps = make(true);
  return rw ? &rwOps : &ro;
}

// Fails every request whose deadline has passed; returns the poll timeout (ms) until the next deadline.
int ExpirePending(Server* s) {
  std::lock_guard<std::mutex> g(s->mu);
  const auto now = Clock::now();
  int next = -1;
  for (auto it = s->pending.begin(); it != s->pending.end();) {
    if (it->second.deadline <= now) {
      FailPending(s, it->second, EIO);
      it = s->pending.erase(it);
    } else {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(it->second.deadline - now).count() + 1;
      if (next < 0 || ms < next) next = static_cast<int>(ms);
      ++it;
    }
  }
  return next;
}

void SessionLoop(Server* s) {
  fuse_buf buf;
  std::memset(&buf, 0, sizeof buf);
  pollfd pfd[2] = {{fuse_session_fd(s->se), POLLIN, 0}, {s->efd, POLLIN, 0}};
  while (!s->stop.load() && !fuse_session_exited(s->se)) {
    const int timeout = ExpirePending(s);
    const int n = ::poll(pfd, 2, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pfd[1].revents) break;  // close()
    if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) break;  // unmounted or aborted
    if (pfd[0].revents & POLLIN) {
      const int res = fuse_session_receive_buf(s->se, &buf);
      if (res == -EINTR || res == -EAGAIN) continue;
      if (res <= 0) break;
      fuse_session_process_buf(s->se, &buf);
    }
  }
  std::free(buf.mem);
}

// Idempotent: stops the thread, fails pending reads and writes, unmounts, releases the TSFNs.
void Shutdown(Server* s) {
  {
    std::lock_guard<std::mutex> g(s->mu);
    if (s->closed) return;
    s->closed = true;
  }
  s->stop.store(true);
  s->Wake();
  if (s->thread.joinable()) s->thread.join();
  {
    std::lock_guard<std::mutex> g(s->mu);
    for (auto& [id, p] : s->pending) FailPending(s, p, EIO);
    s->pending.clear();
  }
  // Closes /dev/fuse (aborting the connection, so nothing can hang on it) and detaches the mount.
  fuse_session_unmount(s->se);
  ::umount2(s->mountpoint.c_str(), MNT_DETACH);  // in case libfuse went through fusermount3 and failed
  fuse_session_destroy(s->se);
  s->se = nullptr;
  ::close(s->efd);
  s->efd = -1;
  s->onRead.Release();
  if (s->rw) s->onWrite.Release();
}

void Reply(Server* s, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "reply(id, text, errno): id must be a number");
  const uint64_t id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  std::string text;
  bool ok = info.Length() >= 2 && info[1].IsString();
  if (ok) text = info[1].As<Napi::String>().Utf8Value();
  int err = EIO;
  if (!ok && info.Length() >= 3 && info[2].IsNumber()) err = info[2].As<Napi::Number>().Int32Value();
  if (err <= 0) err = EIO;
  Pending p;
  {
    std::lock_guard<std::mutex> g(s->mu);
    auto it = s->pending.find(id);
    if (it == s->pending.end()) return;  // timed out already, or closed
    p = it->second;
    s->pending.erase(it);
  }
  if (!ok) {
    FailPending(s, p, err);
    return;
  }
  if (p.pidns != 0 && s->cache.Enabled(p.file)) s->cache.Put(p.pidns, p.file, p.cacheGen, text);
  if (p.req == nullptr) return;  // a background refresh: the cache was all it was for
  // The reply lets the caller go on and close the file, and the session thread may then free the
  // OpenFile (release): touch it only before replying, and reply from a copy.
  std::string slice;
  {
    std::lock_guard<std::mutex> fg(p.of->mu);
    p.of->data = std::move(text);
    p.of->rendered = true;
    if (p.off >= 0 && static_cast<size_t>(p.off) < p.of->data.size())
      slice = p.of->data.substr(static_cast<size_t>(p.off), p.size);
  }
  fuse_reply_buf(p.req, slice.data(), slice.size());
}

void ReplyWrite(Server* s, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "replyWrite(id, errno): numbers");
  const uint64_t id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  int err = info[1].As<Napi::Number>().Int32Value();
  if (err < 0) err = EIO;
  Pending p;
  {
    std::lock_guard<std::mutex> g(s->mu);
    auto it = s->pending.find(id);
    if (it == s->pending.end() || it->second.of != nullptr || it->second.req == nullptr) return;  // timed out, closed, or a read
    p = it->second;
    s->pending.erase(it);
  }
  if (err == 0) fuse_reply_write(p.req, p.size);
  else fuse_reply_err(p.req, err);
}

std::string MountpointArg(Napi::Env env, Napi::Value v) {
  std::string mp = v.As<Napi::String>().Utf8Value();
  if (mp.empty() || mp[0] != '/' || mp.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, "mountpoint must be an absolute path");
  return mp;
}

// addView(name): a directory `name` with the files under inodes of their own (see "Views"); its
// renders are kept (Render cache) until removeView(name). Idempotent.
void AddView(Server* s, const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "addView(name: string)");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  bool clash = name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
               name.find('\0') != std::string::npos || name.size() > 255;
  for (const auto& f : s->files) clash = clash || f == name;
  if (clash) throw Napi::TypeError::New(info.Env(), "view name '" + name + "' is not a plain name apart from the files");
  uint64_t k;
  {
    std::lock_guard<std::mutex> g(s->viewsMu);
    if (s->viewByName.count(name)) return;
    k = s->nextView++;
    s->views[k] = name;
    s->viewByName[name] = k;
  }
  s->cache.Set(kViewScope | k, true);
}

void RemoveView(Server* s, const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "removeView(name: string)");
  uint64_t k;
  {
    std::lock_guard<std::mutex> g(s->viewsMu);
    auto it = s->viewByName.find(info[0].As<Napi::String>().Utf8Value());
    if (it == s->viewByName.end()) return;
    k = it->second;
    s->views.erase(k);
    s->viewByName.erase(it);
  }
  s->cache.Set(kViewScope | k, false);
}

// Fills s->files and s->writable (a file is writable when named in `writable`).
void SetFiles(Napi::Env env, Server* s, Napi::Array files, const std::vector<std::string>& writable) {
  for (uint32_t i = 0; i < files.Length(); i++) {
    Napi::Value v = files.Get(i);
    if (!v.IsString()) throw Napi::TypeError::New(env, "files must be strings");
    std::string f = v.As<Napi::String>().Utf8Value();
    if (f.empty() || f == "." || f == ".." || f.find('/') != std::string::npos || f.find('\0') != std::string::npos)
      throw Napi::TypeError::New(env, "file name '" + f + "' is not a plain name");
    s->files.push_back(f);
    bool rw = false;
    for (const auto& x : writable) rw = rw || x == f;
    s->writable.push_back(rw);
  }
}

// Mounts s (mountpoint and files set), starts its session thread and returns the JS handle.
Napi::Value Start(Napi::Env env, const std::shared_ptr<Server>& s, Napi::Function onRead, Napi::Function onWrite) {
  // suid,dev: libfuse would add nosuid,nodev, which become locked flags in a container's user namespace,
  // so runc's read-only remount of a bind of these files (flags without them) would fail with EPERM.
  // Harmless here: the filesystem only ever holds 0444/0666 regular files.
  const char* argv[] = {"eci-procfs", "-o", "allow_other,default_permissions,suid,dev,fsname=eci-procfs,subtype=eci-procfs"};
  fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  const fuse_lowlevel_ops* ops = Ops(s->rw);
  s->se = fuse_session_new(&args, ops, sizeof *ops, s.get());
  if (s->se == nullptr) throw EciSystemError(env, EINVAL, "fuse_session_new", s->mountpoint);
  if (fuse_session_mount(s->se, s->mountpoint.c_str()) != 0) {
    fuse_session_destroy(s->se);
    struct stat st;
    const int err = ::stat(s->mountpoint.c_str(), &st) < 0 ? errno : (S_ISDIR(st.st_mode) ? EIO : ENOTDIR);
    throw EciSystemError(env, err, "mount", s->mountpoint);
  }
  s->efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->efd < 0) {
    const int err = errno;
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    throw EciSystemError(env, err, "eventfd", s->mountpoint);
  }
  s->onRead = Tsfn::New(env, onRead, "eci-procfs", 0, 1);
  if (s->rw) s->onWrite = Tsfn::New(env, onWrite, "eci-procfs-write", 0, 1);
  s->thread = std::thread(SessionLoop, s.get());

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("reply", Napi::Function::New(env, [s](const Napi::CallbackInfo& i) { Reply(s.get(), i); }, "reply"));
  if (s->rw)
    handle.Set("replyWrite",
               Napi::Function::New(env, [s](const Napi::CallbackInfo& i) { ReplyWrite(s.get(), i); }, "replyWrite"));
  handle.Set("close", Napi::Function::New(env, [s](const Napi::CallbackInfo&) { Shutdown(s.get()); }, "close"));
  handle.Set("addView", Napi::Function::New(env, [s](const Napi::CallbackInfo& i) { AddView(s.get(), i); }, "addView"));
  handle.Set("removeView",
             Napi::Function::New(env, [s](const Napi::CallbackInfo& i) { RemoveView(s.get(), i); }, "removeView"));
  if (!s->rw)
    handle.Set("cache", Napi::Function::New(env, [s](const Napi::CallbackInfo& i) {
      if (i.Length() < 2 || !i[0].IsNumber() || !i[1].IsBoolean())
        throw Napi::TypeError::New(i.Env(), "cache(pidns: number, on: boolean)");
      s->cache.Set(static_cast<uint64_t>(i[0].As<Napi::Number>().Int64Value()), i[1].As<Napi::Boolean>().Value());
    }, "cache"));
  return handle;
}

Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsFunction())
    throw Napi::TypeError::New(env, "mount(mountpoint: string, files: string[], onRead: function)");
  auto s = std::make_shared<Server>();
  s->mountpoint = MountpointArg(env, info[0]);
  SetFiles(env, s.get(), info[1].As<Napi::Array>(), {});
  if (info.Length() >= 4 && info[3].IsArray()) {  // cacheMs, per file
    Napi::Array ttl = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < s->files.size(); i++) {
      Napi::Value v = i < ttl.Length() ? ttl.Get(i) : env.Undefined();
      s->cache.ttlMs.push_back(v.IsNumber() ? std::max(0, std::min(60000, v.As<Napi::Number>().Int32Value())) : 0);
    }
  }
  return Start(env, s, info[2].As<Napi::Function>(), Napi::Function());
}

Napi::Value MountRw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsArray() || !info[3].IsFunction() ||
      !info[4].IsFunction())
    throw Napi::TypeError::New(env, "mountRw(mountpoint: string, files: string[], writable: string[], onRead, onWrite)");
  auto s = std::make_shared<Server>();
  s->rw = true;
  s->mountpoint = MountpointArg(env, info[0]);
  Napi::Array writable = info[2].As<Napi::Array>();
  std::vector<std::string> w;
  for (uint32_t i = 0; i < writable.Length(); i++) {
    Napi::Value v = writable.Get(i);
    if (!v.IsString()) throw Napi::TypeError::New(env, "writable must be strings");
    w.push_back(v.As<Napi::String>().Utf8Value());
  }
  SetFiles(env, s.get(), info[1].As<Napi::Array>(), w);
  return Start(env, s, info[3].As<Napi::Function>(), info[4].As<Napi::Function>());
}

}  // namespace

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object procfs = Napi::Object::New(env);
  procfs.Set("mount", Napi::Function::New(env, Mount, "mount"));
  procfs.Set("mountRw", Napi::Function::New(env, MountRw, "mountRw"));
  exports.Set("procfs", procfs);
}

}  // namespace eci_procfs
