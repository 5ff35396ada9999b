/*
 * A nice value and a short EEVDF slice for the vetted call's path (the performer, its spares, the
 * watcher thread). On a busy host each of the call's wake-ups waits for a core; under EEVDF (Linux
 * 6.12+) a task that asks for a slice shorter than the running one's may preempt it on wake-up
 * (PREEMPT_SHORT) and gets an earlier deadline, while its CPU share stays that of its nice value: a
 * flood of calls gains no more CPU than before. Older kernels take the nice value alone.
 * ECI_SCHED_SLICE_US: the slice in microseconds (100 to 100000); 0 keeps the kernel's default slice.
 * Best effort: without the privilege or the kernel's support, what setpriority allows.
 */
#ifndef ECI_SCHED_SLICE_H
#define ECI_SCHED_SLICE_H
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ECI_SCHED_SLICE_DEFAULT_US 100

/* The uapi's struct sched_attr (SCHED_ATTR_SIZE_VER0); glibc 2.36 has no wrapper. */
struct eci_sched_attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

/* tid 0: the calling thread. Keeps errno. */
static inline void eci_sched_latency(int tid, int nice)
{
	int saved = errno;
	long us = ECI_SCHED_SLICE_DEFAULT_US;
	const char *env = getenv("ECI_SCHED_SLICE_US");
	if (env && *env)
		us = strtol(env, NULL, 10);
	struct eci_sched_attr a = { .size = sizeof a, .policy = SCHED_OTHER, .nice = nice, .runtime = us > 0 ? (uint64_t)us * 1000u : 0 };
	if (syscall(SYS_sched_setattr, tid, &a, 0) < 0)
		(void)setpriority(PRIO_PROCESS, (id_t)tid, nice);
	errno = saved;
}
#endif
