/*
 * A measurement aid for issue 17, compiled in only with -DECI_SPARE_TIMING (off by default): a
 * performer's spare records CLOCK_MONOTONIC at each step of its run (spare_mark), and writes one
 * line per run, after its answer, to ECI_SPARE_TIMING_LOG (opened before the request, on the host):
 * "<label>=<ns since the request was read> ... minflt=<minor faults during the run>".
 * test/bench/spare-steps.ts sums such lines per step. Without the define, every call compiles away.
 * With -DECI_SPARE_FAULTS too, each mark also carries the minor faults so far ("<label>=<ns>,<faults>"),
 * and each run writes which pages it faulted to ECI_SPARE_PAGES_LOG (perform.c: /proc/self/pagemap
 * before the request against after the answer, per mapping: "<mapping>=<newly present>/<copied>").
 */
#ifndef ECI_SPARE_TIMING_H
#define ECI_SPARE_TIMING_H

#ifdef ECI_SPARE_TIMING
#include <time.h>
#include <sys/resource.h>
#define ECI_SPARE_TIMING_LOG "/tmp/eci-spare-timing.log"
#define ECI_SPARE_PAGES_LOG "/tmp/eci-spare-pages.log"
#define SPARE_MAX_MARKS 24
struct spare_timing {
	int n, fd;
	long minflt;
	const char *label[SPARE_MAX_MARKS];
	struct timespec at[SPARE_MAX_MARKS];
	long flt[SPARE_MAX_MARKS];
};
extern struct spare_timing spare_timing;
static inline void spare_mark(const char *label)
{
	if (spare_timing.n < SPARE_MAX_MARKS) {
		spare_timing.label[spare_timing.n] = label;
#ifdef ECI_SPARE_FAULTS
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		spare_timing.flt[spare_timing.n] = ru.ru_minflt;
#endif
		clock_gettime(CLOCK_MONOTONIC, &spare_timing.at[spare_timing.n++]);
	}
}
#else
#define spare_mark(label) ((void)0)
#endif

#endif
