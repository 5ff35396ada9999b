/* bind-into: see bind-into.h. */
#include "helper.h"
#include "as-common.h"
#include "bind-into.h"
#include <sys/stat.h>

#define BIND_INTO_MAX 64

int main_bind_into(int argc, char **argv)
{
	long pid = -1;
	const char *sources[BIND_INTO_MAX], *targets[BIND_INTO_MAX];
	int ns = 0, nt = 0;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--pid") == 0) {
			char *end;
			pid = strtol(argv[i + 1], &end, 10);
			if (*end || pid <= 0) pid = -1;
		} else if (strcmp(argv[i], "--source") == 0 && ns < BIND_INTO_MAX) {
			sources[ns++] = argv[i + 1];
		} else if (strcmp(argv[i], "--target") == 0 && nt < BIND_INTO_MAX) {
			targets[nt++] = argv[i + 1];
		} else {
			usage_error("bind-into: unknown or repeated-too-often option %s", argv[i]);
			return report();
		}
	}
	bool paths_ok = ns > 0 && ns == nt;
	for (int i = 0; paths_ok && i < ns; i++)
		paths_ok = sources[i][0] == '/' && targets[i][0] == '/';
	if (argc % 2 || pid < 0 || !paths_ok) {
		usage_error("usage: eci-helper bind-into --pid P --source /host/path --target /path/in/container [--source ... --target ...]");
		return report();
	}
	char path[64];
	int trees[BIND_INTO_MAX], mntns = -1, netns = -1, root = -1, tfd = -1;
	for (int i = 0; i < ns; i++) trees[i] = -1;
	for (int i = 0; i < ns; i++) {
		trees[i] = (int)syscall(SYS_open_tree, AT_FDCWD, sources[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (trees[i] < 0) {
			fail(errno, "open_tree", "open_tree %s", sources[i]);
			goto out;
		}
	}
	snprintf(path, sizeof path, "/proc/%ld/ns/mnt", pid);
	mntns = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof path, "/proc/%ld/ns/net", pid);
	netns = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof path, "/proc/%ld/root", pid);
	root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (mntns < 0 || netns < 0 || root < 0) {
		fail(errno, "open", "namespaces of process %ld", pid);
		goto out;
	}
	if (setns(mntns, CLONE_NEWNS) < 0) {
		fail(errno, "setns", "mount namespace of process %ld", pid);
		goto out;
	}
	if (setns(netns, CLONE_NEWNET) < 0) {
		fail(errno, "setns", "network namespace of process %ld", pid);
		goto out;
	}
	if (fchdir(root) < 0 || chroot(".") < 0) {
		fail(errno, "chroot", "root of process %ld", pid);
		goto out;
	}
	for (int i = 0; i < ns; i++) {
		tfd = open(targets[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (tfd < 0 && errno == ENOENT)
			continue; /* not in this container (e.g. a kernel entry its namespaces lack) */
		if (tfd < 0) {
			fail(errno, "open", "%s in the container", targets[i]);
			goto out;
		}
		if (syscall(SYS_move_mount, trees[i], "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
			fail(errno, "move_mount", "%s onto %s", sources[i], targets[i]);
			goto out;
		}
		close(tfd);
		tfd = -1;
	}
out:
	if (tfd >= 0) close(tfd);
	if (root >= 0) close(root);
	if (mntns >= 0) close(mntns);
	if (netns >= 0) close(netns);
	for (int i = 0; i < ns; i++)
		if (trees[i] >= 0) close(trees[i]);
	return report();
}
