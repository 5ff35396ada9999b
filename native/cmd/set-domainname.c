/* set-domainname: see set-domainname.h. */
#include "helper.h"
#include "as-common.h"
#include "set-domainname.h"
#include <sys/utsname.h>

int main_set_domainname(int argc, char **argv)
{
	long pid = -1;
	const char *name = NULL;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--pid") == 0) {
			char *end;
			pid = strtol(argv[i + 1], &end, 10);
			if (*end || pid <= 0) pid = -1;
		} else if (strcmp(argv[i], "--name") == 0) {
			name = argv[i + 1];
		} else {
			usage_error("set-domainname: unknown option %s", argv[i]);
			return report();
		}
	}
	if (argc % 2 || pid < 0 || !name || strlen(name) >= sizeof(((struct utsname *)0)->domainname)) {
		usage_error("usage: eci-helper set-domainname --pid P --name NAME (at most 64 bytes)");
		return report();
	}
	char path[64];
	int userns = -1, uts = -1;
	snprintf(path, sizeof path, "/proc/%ld/ns/user", pid);
	userns = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof path, "/proc/%ld/ns/uts", pid);
	uts = open(path, O_RDONLY | O_CLOEXEC);
	if (userns < 0 || uts < 0) {
		fail(errno, "open", "namespaces of process %ld", pid);
		goto out;
	}
	if (setns(userns, CLONE_NEWUSER) < 0) {
		fail(errno, "setns", "user namespace of process %ld", pid);
		goto out;
	}
	if (setns(uts, CLONE_NEWUTS) < 0) {
		fail(errno, "setns", "UTS namespace of process %ld", pid);
		goto out;
	}
	if (setdomainname(name, strlen(name)) < 0)
		fail(errno, "setdomainname", "setdomainname %s", name);
out:
	if (uts >= 0) close(uts);
	if (userns >= 0) close(userns);
	return report();
}
