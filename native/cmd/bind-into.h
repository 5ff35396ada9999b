/*
 * eci-helper bind-into --pid P --source HOSTPATH --target PATH
 *
 * Puts a clone of a host mount (an eci FUSE file) over PATH inside the container of process P,
 * where runc refuses bind targets (e.g. /proc/sys/fs/file-max). Done after `runc create`, before
 * `start`. The clone is made in the host namespaces; then only P's mount namespace is joined
 * (staying host root: attaching a host-made mount needs privilege over both sides), P's root is
 * taken, and the target is opened once and the clone attached to that very object.
 * Output: the usual one JSON line.
 */
#include <sys/stat.h>

static int main_bind_into(int argc, char **argv)
{
	long pid = -1;
	const char *source = NULL, *target = NULL;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--pid") == 0) {
			char *end;
			pid = strtol(argv[i + 1], &end, 10);
			if (*end || pid <= 0) pid = -1;
		} else if (strcmp(argv[i], "--source") == 0) {
			source = argv[i + 1];
		} else if (strcmp(argv[i], "--target") == 0) {
			target = argv[i + 1];
		} else {
			usage_error("bind-into: unknown option %s", argv[i]);
			return report();
		}
	}
	if (argc % 2 || pid < 0 || !source || source[0] != '/' || !target || target[0] != '/') {
		usage_error("usage: eci-helper bind-into --pid P --source /host/path --target /path/in/container");
		return report();
	}
	char path[64];
	int tree = -1, mntns = -1, root = -1, tfd = -1;
	tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (tree < 0) {
		fail(errno, "open_tree", "open_tree %s", source);
		goto out;
	}
	snprintf(path, sizeof path, "/proc/%ld/ns/mnt", pid);
	mntns = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof path, "/proc/%ld/root", pid);
	root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (mntns < 0 || root < 0) {
		fail(errno, "open", "namespaces of process %ld", pid);
		goto out;
	}
	if (setns(mntns, CLONE_NEWNS) < 0) {
		fail(errno, "setns", "mount namespace of process %ld", pid);
		goto out;
	}
	if (fchdir(root) < 0 || chroot(".") < 0) {
		fail(errno, "chroot", "root of process %ld", pid);
		goto out;
	}
	tfd = open(target, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (tfd < 0) {
		fail(errno, "open", "%s in the container", target);
		goto out;
	}
	if (syscall(SYS_move_mount, tree, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
		fail(errno, "move_mount", "%s onto %s", source, target);
		goto out;
	}
out:
	if (tfd >= 0) close(tfd);
	if (root >= 0) close(root);
	if (mntns >= 0) close(mntns);
	if (tree >= 0) close(tree);
	return report();
}
