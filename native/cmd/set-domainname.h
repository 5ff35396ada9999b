/*
 * eci-helper set-domainname --pid P --name NAME
 *
 * setdomainname(2) in the UTS namespace of process P (a container's init, after `runc create`).
 * Docker passes --domainname as the sysctl kernel.domainname, which runc writes to /proc/sys from
 * inside the container's user namespace: Linux 6.x refuses that (EACCES) although the UTS namespace
 * is the container's, and runc 1.1 ignores the OCI `domainname` field. So eci drops the sysctl and
 * sets the name here: join P's user namespace (as its root: every capability there), then its UTS
 * namespace, and call setdomainname. Nothing else of the container is touched.
 * Output: the usual one JSON line.
 */
#ifndef ECI_SET_DOMAINNAME_H
#define ECI_SET_DOMAINNAME_H

#include "helper.h"

int main_set_domainname(int argc, char **argv);

#endif
