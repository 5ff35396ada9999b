/*
 * eci-hostview: the host's view of a running container's overlay rootfs, as under runc.
 *
 *   eci-hostview --source SRC --target TGT --uid-host U --gid-host G --size N
 *
 * eci's rootfs overlay (SRC, under the run dir) is built over idmapped layers, so its inodes carry the
 * container's host ids (U + id), and it cannot itself be idmapped back (overlayfs refuses
 * MOUNT_ATTR_IDMAP, on a bind of it too). Engines read and write a running container's rootfs through
 * their own path (TGT: docker's .../overlay2/<id>/merged): docker cp/export/diff there must see on-disk
 * ids (0..N-1) and put files in as root or as the archive's ids. So TGT gets this FUSE passthrough of
 * SRC that shows each host id U+k as k (host root, which the layers' idmap maps to on-disk N, as N) and
 * creates or chowns with the caller's id k as U+k (what lands on disk as k).
 *
 * It mounts TGT (fsname SRC, type fuse.eci-rootfs, default_permissions: only the mounter, root, may
 * enter), prints one JSON line as eci-helper does ({"ok":true}, or the failure and exit 1), and leaves a
 * daemon of its own session serving it. The daemon ends when TGT is unmounted (the kernel ends the
 * connection); it outlives a manager restart. It never follows a symlink: every name is resolved with
 * O_NOFOLLOW relative to the directory the kernel looked it up in.
 *
 * Inodes: a directory node keeps an O_PATH fd; any other node keeps (parent directory, last name), so
 * that a large tree read through the view (docker export) does not hold one fd per file. A name that no
 * longer leads to the node's inode answers ESTALE until the kernel looks it up again (entry and attr
 * timeouts are 0: the container changes the tree under the view).
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <linux/capability.h>
#include <linux/xattr.h>
#include <unistd.h>

#include "errno-names.h"

/*
 * Entry and attr timeouts: 0, the container changes the tree underneath (a cached size would cut a copy
 * of a file it just grew). Measured here: tar of 5190 files (114 MB) through the view took 5.7 s at 0
 * and 1.6 s at 1.0 (0.12 s on the overlay itself, busy machine); engines' copies, exports and diffs are
 * not on any container's path, so coherence wins.
 */
#define HV_TIMEOUT 0.0

/* ---------- ids: the layers' idmap, inverted ---------- */

static unsigned long base_uid, base_gid, size;

/* A host id as the view shows it: U+k -> k, host root -> N (its on-disk id), others unchanged. */
static uint32_t out_id(uint32_t host, unsigned long base)
{
	if (host >= base && host - base < size)
		return host - base;
	if (host == 0 && base > 0)
		return (uint32_t)size;
	return host;
}

/* A caller's or a chown's id k as the host id that lands on disk as k; (uint32_t)-1 when none does. */
static uint32_t in_id(uint32_t k, unsigned long base)
{
	if (k == (uint32_t)-1)
		return k;
	if (k < size)
		return (uint32_t)(base + k);
	if (k == size && base > 0)
		return 0;
	return (uint32_t)-1;
}

static void map_stat(struct stat *st)
{
	st->st_uid = out_id(st->st_uid, base_uid);
	st->st_gid = out_id(st->st_gid, base_gid);
}

/*
 * fsuid/fsgid for the next creation, keeping every capability effective (a change of fsuid away from 0
 * drops the file capabilities, and overlay needs DAC override on its upper layer). Returns 0 or -errno.
 */
static int set_fs_ids(uint32_t uid, uint32_t gid)
{
	setfsgid(gid);
	setfsuid(uid);
	if ((uint32_t)setfsuid((uid_t)-1) != uid || (uint32_t)setfsgid((gid_t)-1) != gid)
		return -EPERM;
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	d[0].effective = d[0].permitted;
	d[1].effective = d[1].permitted;
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	return 0;
}

/* Creation as the caller: its ids mapped as a chown's would be. Returns 0 or an errno. */
static int as_caller(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	uint32_t uid = in_id(c->uid, base_uid), gid = in_id(c->gid, base_gid);
	if (uid == (uint32_t)-1 || gid == (uint32_t)-1)
		return EOVERFLOW;
	int r = set_fs_ids(uid, gid);
	return r < 0 ? -r : 0;
}

static void as_root(void)
{
	if (set_fs_ids(0, 0) < 0)
		abort(); /* never serve a request with the wrong ids */
}

/* ---------- nodes ---------- */

struct node {
	struct node *hnext;
	dev_t dev;
	ino_t ino;
	uint64_t nlookup; /* the kernel's references */
	uint64_t kids;    /* non-directory nodes naming this one as parent */
	int fd;           /* directories: O_PATH fd; others: -1 */
	bool hashed;      /* false once a new object took its (dev, ino): then only its old references use it */
	struct node *parent;
	char *name;
};

#define NBUCKETS 65536
static struct node *buckets[NBUCKETS];
static struct node root;

static size_t bucket(dev_t dev, ino_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) ^ dev) % NBUCKETS;
}

static struct node *node_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &root : (struct node *)(uintptr_t)ino;
}

static struct node *find(dev_t dev, ino_t ino)
{
	for (struct node *n = buckets[bucket(dev, ino)]; n; n = n->hnext)
		if (n->dev == dev && n->ino == ino)
			return n;
	return NULL;
}

static void maybe_free(struct node *n)
{
	while (n && n != &root && n->nlookup == 0 && n->kids == 0) {
		if (n->hashed) {
			struct node **p = &buckets[bucket(n->dev, n->ino)];
			while (*p != n)
				p = &(*p)->hnext;
			*p = n->hnext;
		}
		if (n->fd >= 0)
			close(n->fd);
		struct node *parent = n->parent;
		free(n->name);
		free(n);
		if (!parent)
			return;
		parent->kids--;
		n = parent;
	}
}

/* A non-directory node's last known name. */
static int set_name(struct node *n, struct node *parent, const char *name)
{
	char *copy = strdup(name);
	if (!copy)
		return ENOMEM;
	free(n->name);
	n->name = copy;
	if (n->parent != parent) {
		parent->kids++;
		struct node *old = n->parent;
		n->parent = parent;
		if (old) {
			old->kids--;
			maybe_free(old);
		}
	}
	return 0;
}

/* An O_PATH fd of the node (*own: the caller closes it), or -1 with errno. */
static int node_fd(struct node *n, bool *own)
{
	*own = false;
	if (n->fd >= 0)
		return n->fd;
	int fd = openat(n->parent->fd, n->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			errno = ESTALE;
		return -1;
	}
	struct stat st;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != n->dev || st.st_ino != n->ino) {
		close(fd);
		errno = ESTALE;
		return -1;
	}
	*own = true;
	return fd;
}

/* Looks name up in parent and counts one kernel reference. Returns 0 or an errno. */
static int do_lookup(struct node *parent, const char *name, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int err = errno;
		close(fd);
		return err;
	}
	bool dir = S_ISDIR(e->attr.st_mode);
	struct node *n = find(e->attr.st_dev, e->attr.st_ino);
	if (n && (n->fd >= 0) != dir) {
		/* The inode number was reused by an object of another kind while the kernel still holds the
		 * old one: that node keeps serving its old references only, the new object gets its own. */
		struct node **p = &buckets[bucket(n->dev, n->ino)];
		while (*p != n)
			p = &(*p)->hnext;
		*p = n->hnext;
		n->hashed = false;
		n = NULL;
	}
	if (n) {
		if (!dir) {
			int err = set_name(n, parent, name);
			if (err) {
				close(fd);
				return err;
			}
		}
		close(fd);
	} else {
		n = calloc(1, sizeof(*n));
		if (!n) {
			close(fd);
			return ENOMEM;
		}
		n->dev = e->attr.st_dev;
		n->ino = e->attr.st_ino;
		n->fd = -1;
		if (dir) {
			n->fd = fd;
		} else {
			close(fd);
			int err = set_name(n, parent, name);
			if (err) {
				free(n);
				return err;
			}
		}
		size_t b = bucket(n->dev, n->ino);
		n->hnext = buckets[b];
		buckets[b] = n;
		n->hashed = true;
	}
	n->nlookup++;
	e->attr_timeout = e->entry_timeout = HV_TIMEOUT;
	map_stat(&e->attr);
	e->ino = (uintptr_t)n;
	return 0;
}

/* "/proc/self/fd/N" of a directory fd, or of parent/name for others: what *xattr and open need. */
static int proc_path(struct node *n, char *buf, size_t len)
{
	int w = n->fd >= 0 ? snprintf(buf, len, "/proc/self/fd/%d", n->fd)
			   : snprintf(buf, len, "/proc/self/fd/%d/%s", n->parent->fd, n->name);
	return w < 0 || (size_t)w >= len ? ENAMETOOLONG : 0;
}

/* ---------- operations ---------- */

static void hv_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int err = do_lookup(node_of(parent), name, &e);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void hv_forget_one(fuse_ino_t ino, uint64_t n)
{
	struct node *x = node_of(ino);
	if (x == &root)
		return;
	x->nlookup = n > x->nlookup ? 0 : x->nlookup - n;
	maybe_free(x);
}

static void hv_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
	hv_forget_one(ino, n);
	fuse_reply_none(req);
}

static void hv_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		hv_forget_one(f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void reply_attr_of(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct stat st;
	int r;
	if (fi) {
		r = fstat((int)fi->fh, &st);
	} else {
		bool own;
		int fd = node_fd(n, &own);
		if (fd < 0)
			return (void)fuse_reply_err(req, errno);
		r = fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		int err = errno;
		if (own)
			close(fd);
		errno = err;
	}
	if (r < 0)
		return (void)fuse_reply_err(req, errno);
	map_stat(&st);
	fuse_reply_attr(req, &st, HV_TIMEOUT);
}

static void hv_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	reply_attr_of(req, node_of(ino), fi);
}

static void hv_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid, struct fuse_file_info *fi)
{
	struct node *n = node_of(ino);
	char path[64];
	bool own;
	int fd = node_fd(n, &own), r = 0;
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	/* A symlink's mode and size are not its own to set: nothing may reach its target through the path. */
	struct stat cur;
	if (fstatat(fd, "", &cur, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		r = -1;
	else if (S_ISLNK(cur.st_mode))
		valid &= ~(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_SIZE);
	if (r == 0 && (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uint32_t uid = (valid & FUSE_SET_ATTR_UID) ? in_id(attr->st_uid, base_uid) : (uint32_t)-1;
		uint32_t gid = (valid & FUSE_SET_ATTR_GID) ? in_id(attr->st_gid, base_gid) : (uint32_t)-1;
		if (((valid & FUSE_SET_ATTR_UID) && uid == (uint32_t)-1) || ((valid & FUSE_SET_ATTR_GID) && gid == (uint32_t)-1)) {
			errno = EINVAL;
			r = -1;
		} else {
			r = fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		}
	}
	/* After the chown, which clears set-id bits, as chown(2) then chmod(2) would. */
	if (r == 0 && (valid & FUSE_SET_ATTR_MODE))
		r = fi ? fchmod((int)fi->fh, attr->st_mode) : chmod(path, attr->st_mode);
	if (r == 0 && (valid & FUSE_SET_ATTR_SIZE))
		r = fi ? ftruncate((int)fi->fh, attr->st_size) : truncate(path, attr->st_size);
	if (r == 0 && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		/* On the node itself, a symlink included. */
		r = utimensat(fd, "", tv, AT_EMPTY_PATH);
	}
	int err = errno;
	if (own)
		close(fd);
	if (r < 0)
		return (void)fuse_reply_err(req, err);
	reply_attr_of(req, n, fi);
}

static void hv_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	bool own;
	int fd = node_fd(node_of(ino), &own);
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	ssize_t r = readlinkat(fd, "", buf, sizeof(buf));
	int err = errno;
	if (own)
		close(fd);
	if (r < 0)
		return (void)fuse_reply_err(req, err);
	if (r == (ssize_t)sizeof(buf))
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	buf[r] = '\0';
	fuse_reply_readlink(req, buf);
}

/* mknod, mkdir or symlink (link != NULL) in parent, as the caller. */
static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev, const char *link)
{
	struct node *p = node_of(parent);
	int err = as_caller(req);
	if (!err) {
		int r = link ? symlinkat(link, p->fd, name) : S_ISDIR(mode) ? mkdirat(p->fd, name, mode) : mknodat(p->fd, name, mode, rdev);
		err = r < 0 ? errno : 0;
	}
	as_root();
	struct fuse_entry_param e;
	if (!err)
		err = do_lookup(p, name, &e);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void hv_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	make_node(req, parent, name, mode, rdev, NULL);
}

static void hv_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, parent, name, S_IFDIR | mode, 0, NULL);
}

static void hv_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_node(req, parent, name, S_IFLNK, 0, link);
}

static void hv_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct node *n = node_of(ino), *np = node_of(newparent);
	if (n->fd >= 0)
		return (void)fuse_reply_err(req, EPERM); /* directories have no hard links */
	bool own;
	int fd = node_fd(n, &own); /* checks that the name still leads to the node */
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	close(fd);
	struct fuse_entry_param e;
	int err = linkat(n->parent->fd, n->name, np->fd, newname, 0) < 0 ? errno : do_lookup(np, newname, &e);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void hv_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(node_of(parent)->fd, name, 0) < 0 ? errno : 0);
}

static void hv_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(node_of(parent)->fd, name, AT_REMOVEDIR) < 0 ? errno : 0);
}

static void hv_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct node *p = node_of(parent), *np = node_of(newparent);
	if (syscall(SYS_renameat2, p->fd, name, np->fd, newname, flags) < 0)
		return (void)fuse_reply_err(req, errno);
	/* The moved node's name (a file the kernel still holds would otherwise answer ESTALE). */
	struct stat st;
	if (fstatat(np->fd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
		struct node *n = find(st.st_dev, st.st_ino);
		if (n && n->fd < 0)
			set_name(n, np, newname);
	}
	fuse_reply_err(req, 0);
}

static int open_node(struct node *n, int flags)
{
	char path[PATH_MAX];
	int err = proc_path(n, path, sizeof(path));
	if (err) {
		errno = err;
		return -1;
	}
	/* The trailing name is opened with O_NOFOLLOW: a symlink put there meanwhile is never followed. */
	return open(path, (flags & ~(O_CREAT | O_EXCL)) | O_CLOEXEC | (n->fd >= 0 ? 0 : O_NOFOLLOW));
}

static void hv_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = node_of(ino);
	bool own;
	int check = node_fd(n, &own);
	if (check < 0)
		return (void)fuse_reply_err(req, errno);
	if (own)
		close(check);
	int fd = open_node(n, fi->flags);
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	fi->fh = (uint64_t)fd;
	if (fuse_reply_open(req, fi) != 0)
		close(fd);
}

static void hv_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	struct node *p = node_of(parent);
	int fd = -1, err = as_caller(req);
	if (!err) {
		fd = openat(p->fd, name, (fi->flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC), mode);
		err = fd < 0 ? errno : 0;
	}
	as_root();
	struct fuse_entry_param e;
	if (!err)
		err = do_lookup(p, name, &e);
	if (err) {
		if (fd >= 0)
			close(fd);
		return (void)fuse_reply_err(req, err);
	}
	fi->fh = (uint64_t)fd;
	if (fuse_reply_create(req, &e, fi) != 0)
		close(fd);
}

static void hv_read(fuse_req_t req, fuse_ino_t ino, size_t len, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(len);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = (int)fi->fh;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void hv_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = (int)fi->fh;
	out.buf[0].pos = off;
	ssize_t r = fuse_buf_copy(&out, in, 0);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_write(req, (size_t)r);
}

static void hv_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_err(req, close(dup((int)fi->fh)) < 0 ? errno : 0);
}

static void hv_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

static void hv_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	int r = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);
	fuse_reply_err(req, r < 0 ? errno : 0);
}

struct dir_handle {
	DIR *dp;
	struct dirent *entry;
	off_t offset;
};

static void hv_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = node_of(ino);
	if (n->fd < 0)
		return (void)fuse_reply_err(req, ENOTDIR);
	struct dir_handle *d = calloc(1, sizeof(*d));
	if (!d)
		return (void)fuse_reply_err(req, ENOMEM);
	int fd = openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		free(d);
		return (void)fuse_reply_err(req, err);
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0) {
		closedir(d->dp);
		free(d);
	}
}

static void hv_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info *fi)
{
	(void)ino;
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = calloc(1, size), *p = buf;
	size_t rem = size;
	int err = 0;
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				err = errno;
				break;
			}
		}
		struct stat st = { .st_ino = d->entry->d_ino, .st_mode = (mode_t)d->entry->d_type << 12 };
		size_t n = fuse_add_direntry(req, p, rem, d->entry->d_name, &st, d->entry->d_off);
		if (n > rem)
			break;
		p += n;
		rem -= n;
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	/* An error is only reported when nothing was gathered. */
	if (err && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void hv_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void hv_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	int fd = dirfd(((struct dir_handle *)(uintptr_t)fi->fh)->dp);
	fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}

static void hv_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs s;
	bool own;
	int fd = node_fd(node_of(ino), &own);
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	int r = fstatvfs(fd, &s), err = errno;
	if (own)
		close(fd);
	if (r < 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_statfs(req, &s);
}

/*
 * A file capability read through the idmapped layers names its root: an on-disk v2 one (root 0) reads as
 * v3 with root U. As on disk: root U+k is k, and a root of 0 is v2 again (as the kernel stores it).
 * Returns the new size.
 */
static size_t caps_as_on_disk(unsigned char *v, size_t n)
{
	if (n != XATTR_CAPS_SZ_3)
		return n;
	uint32_t magic = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
	if ((magic & VFS_CAP_REVISION_MASK) != VFS_CAP_REVISION_3)
		return n;
	uint32_t rootid = (uint32_t)v[20] | (uint32_t)v[21] << 8 | (uint32_t)v[22] << 16 | (uint32_t)v[23] << 24;
	uint32_t disk = out_id(rootid, base_uid);
	if (disk == 0) {
		magic = (magic & ~VFS_CAP_REVISION_MASK) | VFS_CAP_REVISION_2;
		for (int i = 0; i < 4; i++)
			v[i] = (unsigned char)(magic >> (8 * i));
		return XATTR_CAPS_SZ_2;
	}
	for (int i = 0; i < 4; i++)
		v[20 + i] = (unsigned char)(disk >> (8 * i));
	return n;
}

/* The l*xattr calls on "/proc/self/fd/<dir>[/<name>]": the node itself, never a symlink's target. */
/* Answers a getxattr/listxattr of `size` (0: only the length is asked) with its result `r` read into
 * `value` (errno set when r < 0), and frees `value`. */
static void reply_xattr(fuse_req_t req, ssize_t r, char *value, size_t size)
{
	if (r < 0)
		fuse_reply_err(req, errno);
	else if (size)
		fuse_reply_buf(req, value, (size_t)r);
	else
		fuse_reply_xattr(req, (size_t)r);
	free(value);
}

static void hv_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char path[PATH_MAX];
	int err = proc_path(node_of(ino), path, sizeof(path));
	if (err)
		return (void)fuse_reply_err(req, err);
	struct node *n = node_of(ino);
	if (strcmp(name, XATTR_NAME_CAPS) == 0) {
		unsigned char v[XATTR_CAPS_SZ_3 + 8];
		ssize_t r = n->fd >= 0 ? getxattr(path, name, v, sizeof(v)) : lgetxattr(path, name, v, sizeof(v));
		if (r < 0)
			return (void)fuse_reply_err(req, errno);
		size_t len = caps_as_on_disk(v, (size_t)r);
		if (!size)
			return (void)fuse_reply_xattr(req, len);
		if (size < len)
			return (void)fuse_reply_err(req, ERANGE);
		return (void)fuse_reply_buf(req, (const char *)v, len);
	}
	char *value = size ? malloc(size) : NULL;
	if (size && !value)
		return (void)fuse_reply_err(req, ENOMEM);
	reply_xattr(req, n->fd >= 0 ? getxattr(path, name, value, size) : lgetxattr(path, name, value, size), value, size);
}

static void hv_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char path[PATH_MAX];
	int err = proc_path(node_of(ino), path, sizeof(path));
	if (err)
		return (void)fuse_reply_err(req, err);
	struct node *n = node_of(ino);
	char *value = size ? malloc(size) : NULL;
	if (size && !value)
		return (void)fuse_reply_err(req, ENOMEM);
	reply_xattr(req, n->fd >= 0 ? listxattr(path, value, size) : llistxattr(path, value, size), value, size);
}

/*
 * A user namespace whose root is container root (0 -> U, size N), made on first use: a file capability
 * set from within it is stored for container root (v2 on disk, as under runc), where host root's would
 * be stored for on-disk id N (v3, root id N) and not apply in the container. The fd, or -1 with errno.
 */
static int caps_ns = -1;

static int make_caps_ns(void)
{
	int go[2], ready[2];
	if (pipe2(go, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(ready, O_CLOEXEC) < 0) {
		close(go[0]);
		close(go[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(go[1]); /* or its read below never sees EOF */
		close(ready[0]);
		char b = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
		if (write(ready[1], &b, 1) != 1 || b != 'y')
			_exit(1);
		(void)!read(go[0], &b, 1); /* until the parent holds the namespace (EOF) */
		_exit(0);
	}
	close(go[0]);
	close(ready[1]);
	char b = 'n', path[64], map[64];
	int fd = -1, err = EIO;
	if (pid > 0 && read(ready[0], &b, 1) == 1 && b == 'y') {
		snprintf(map, sizeof(map), "0 %lu %lu\n", base_uid, size);
		snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
		int m = open(path, O_WRONLY | O_CLOEXEC);
		bool ok = m >= 0 && write(m, map, strlen(map)) == (ssize_t)strlen(map);
		if (m >= 0)
			close(m);
		snprintf(map, sizeof(map), "0 %lu %lu\n", base_gid, size);
		snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
		m = ok ? open(path, O_WRONLY | O_CLOEXEC) : -1;
		ok = m >= 0 && write(m, map, strlen(map)) == (ssize_t)strlen(map);
		if (m >= 0)
			close(m);
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		if (ok)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		err = errno;
	} else if (pid < 0) {
		err = errno;
	}
	close(go[1]);
	close(ready[0]);
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	errno = err;
	return fd;
}

/* setxattr of security.capability as container root (a child joins caps_ns). Returns 0 or an errno. */
static int set_caps(struct node *n, const char *path, const char *value, size_t len, int flags)
{
	if (caps_ns < 0 && (caps_ns = make_caps_ns()) < 0)
		return errno ? errno : EIO;
	pid_t pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		if (syscall(SYS_setns, caps_ns, CLONE_NEWUSER) < 0)
			_exit(errno & 0xff);
		int r = n->fd >= 0 ? setxattr(path, XATTR_NAME_CAPS, value, len, flags) : lsetxattr(path, XATTR_NAME_CAPS, value, len, flags);
		_exit(r < 0 ? errno & 0xff : 0);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return EIO;
	return WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
}

static void hv_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags)
{
	char path[PATH_MAX];
	int err = proc_path(node_of(ino), path, sizeof(path));
	if (err)
		return (void)fuse_reply_err(req, err);
	if (strcmp(name, XATTR_NAME_CAPS) == 0)
		return (void)fuse_reply_err(req, set_caps(node_of(ino), path, value, size, flags));
	int r = node_of(ino)->fd >= 0 ? setxattr(path, name, value, size, flags) : lsetxattr(path, name, value, size, flags);
	fuse_reply_err(req, r < 0 ? errno : 0);
}

static void hv_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char path[PATH_MAX];
	int err = proc_path(node_of(ino), path, sizeof(path));
	if (err)
		return (void)fuse_reply_err(req, err);
	int r = node_of(ino)->fd >= 0 ? removexattr(path, name) : lremovexattr(path, name);
	fuse_reply_err(req, r < 0 ? errno : 0);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = hv_lookup,
	.forget = hv_forget,
	.forget_multi = hv_forget_multi,
	.getattr = hv_getattr,
	.setattr = hv_setattr,
	.readlink = hv_readlink,
	.mknod = hv_mknod,
	.mkdir = hv_mkdir,
	.symlink = hv_symlink,
	.link = hv_link,
	.unlink = hv_unlink,
	.rmdir = hv_rmdir,
	.rename = hv_rename,
	.open = hv_open,
	.create = hv_create,
	.read = hv_read,
	.write_buf = hv_write_buf,
	.flush = hv_flush,
	.release = hv_release,
	.fsync = hv_fsync,
	.opendir = hv_opendir,
	.readdir = hv_readdir,
	.releasedir = hv_releasedir,
	.fsyncdir = hv_fsyncdir,
	.statfs = hv_statfs,
	.getxattr = hv_getxattr,
	.listxattr = hv_listxattr,
	.setxattr = hv_setxattr,
	.removexattr = hv_removexattr,
};

/* ---------- the command ---------- */

static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

/* The one JSON failure line eci-helper's callers parse; exit 1 (2: bad usage). */
static int failed(bool usage, int err, const char *syscall_name, const char *message)
{
	printf("{\"ok\":false,\"code\":");
	json_string(usage ? "EUSAGE" : eci_errno_name(err));
	printf(",\"errno\":%d,\"syscall\":", err);
	json_string(syscall_name);
	printf(",\"message\":");
	json_string(message);
	printf("}\n");
	return usage ? 2 : 1;
}

static int parse_ulong(const char *s, unsigned long *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno || *end || *out > UINT32_MAX ? -1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "source", required_argument, NULL, 's' },
		{ "target", required_argument, NULL, 't' },
		{ "uid-host", required_argument, NULL, 'u' },
		{ "gid-host", required_argument, NULL, 'g' },
		{ "size", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *source = NULL, *target = NULL;
	bool have_u = false, have_g = false, have_n = false;
	char msg[PATH_MAX + 128];
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': source = optarg; break;
		case 't': target = optarg; break;
		case 'u': have_u = parse_ulong(optarg, &base_uid) == 0; break;
		case 'g': have_g = parse_ulong(optarg, &base_gid) == 0; break;
		case 'n': have_n = parse_ulong(optarg, &size) == 0; break;
		default: return failed(true, EINVAL, "", "usage: eci-hostview --source SRC --target TGT --uid-host U --gid-host G --size N");
		}
	}
	if (optind < argc || !source || !target || source[0] != '/' || target[0] != '/' || !have_u || !have_g || !have_n ||
	    size == 0 || base_uid + size > UINT32_MAX || base_gid + size > UINT32_MAX)
		return failed(true, EINVAL, "", "usage: eci-hostview --source SRC --target TGT --uid-host U --gid-host G --size N (absolute paths, a valid range)");
	/* fsname goes into the mount options, which ',' separates: such a source is named by its type only. */
	bool plain_name = !strpbrk(source, ",\\ \t\n");

	umask(0); /* the kernel applied the caller's umask already */
	root.fd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root.fd < 0) {
		snprintf(msg, sizeof(msg), "open %s: %s", source, strerror(errno));
		return failed(false, errno, "open", msg);
	}
	struct stat st;
	if (fstat(root.fd, &st) < 0) {
		snprintf(msg, sizeof(msg), "stat %s: %s", source, strerror(errno));
		return failed(false, errno, "fstat", msg);
	}
	root.dev = st.st_dev;
	root.ino = st.st_ino;
	root.nlookup = 1;

	/* Directory nodes keep an fd each: as many as the hard limit allows. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	char opts[PATH_MAX + 128];
	snprintf(opts, sizeof(opts), "default_permissions,subtype=eci-rootfs,fsname=%s", plain_name ? source : "eci-rootfs");
	char *args_v[] = { argv[0], "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, args_v);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return failed(false, EINVAL, "fuse_session_new", "cannot create the FUSE session");
	if (fuse_session_mount(se, target) != 0) {
		snprintf(msg, sizeof(msg), "cannot mount the host view on %s (see the manager's stderr)", target);
		return failed(false, EIO, "mount", msg);
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		fuse_session_unmount(se);
		return failed(false, err, "fork", "fork the host view's server");
	}
	if (pid > 0) {
		printf("{\"ok\":true}\n");
		return 0;
	}
	/* The server: a session of its own (an engine's or a test's signal to the manager's group does not
	 * reach it), no stdio (the caller reads until they close). */
	setsid();
	if (chdir("/") < 0) /* no hold on the caller's cwd (a mount someone may want to take down) */
		_exit(1);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	int r = fuse_session_loop(se);
	/* The mount is gone (or was never reached again): nothing to unmount. */
	fuse_session_destroy(se);
	return r < 0 ? 1 : 0;
}
