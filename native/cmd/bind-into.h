/*
 * eci-helper bind-into --pid P --source HOSTPATH --target PATH [--source HOSTPATH --target PATH ...]
 *
 * Puts a clone of a host mount (an eci FUSE file) over PATH inside the container of process P,
 * where runc refuses bind targets (e.g. /proc/sys/fs/file-max), for every source/target pair in one
 * run (a container gets a dozen of them). Done after `runc create`, before `start`. The clones are
 * made in the host namespaces; then only P's mount namespace is joined (staying host root: attaching
 * a host-made mount needs privilege over both sides) and its network namespace (a /proc/sys/net
 * entry is a different dentry in every netns: one looked up from the host's netns would carry a
 * mount the container never crosses), P's root is taken, and each target is opened
 * once and its clone attached to that very object. A target missing in the container is skipped;
 * any other failure stops the run (the pairs before it stay in place) and is reported.
 * Output: the usual one JSON line.
 */
#ifndef ECI_BIND_INTO_H
#define ECI_BIND_INTO_H

#include "helper.h"

int main_bind_into(int argc, char **argv);

#endif
