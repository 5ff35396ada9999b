/* prefault: see prefault.h. */
#include "helper.h"
#include "prefault.h"
#include <link.h>

#define PREFAULT_PAGE 4096UL
/* A run's stack below the spare's wait (mount-as, as_run, /proc parsing, stdio): 6 pages measured. */
#define PREFAULT_STACK (32 * 1024)
/* What a run allocates (fmemopen's FILE, directory and file buffers): 2 heap pages measured. */
#define PREFAULT_HEAP (16 * 1024)

static int prefault_mem = -1;

/*
 * One byte of the mapping written back unchanged through /proc/self/mem: the kernel copies that
 * page (copy-on-write, as for a debugger's breakpoint), which gives the mapping its anon_vma. The
 * mapping's protection never changes (no writable text, not even briefly), and its bytes stay the
 * file's.
 */
static void prefault_anon_vma(uintptr_t lo)
{
	unsigned char b = *(volatile const unsigned char *)lo;
	if (pwrite(prefault_mem, &b, 1, (off_t)lo) != 1)
		errno = 0;
}

static int prefault_segments(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	(void)data;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) || ph->p_memsz == 0)
			continue;
		uintptr_t lo = (info->dlpi_addr + ph->p_vaddr) & ~(PREFAULT_PAGE - 1);
		uintptr_t hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		prefault_anon_vma(lo);
		for (uintptr_t a = lo; a < hi; a += PREFAULT_PAGE)
			(void)*(volatile const unsigned char *)a;
	}
	return 1; /* the program only: it comes first (the vDSO after it is left as it is) */
}

void prefault_share_text(void)
{
	prefault_mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (prefault_mem < 0) {
		errno = 0;
		return;
	}
	dl_iterate_phdr(prefault_segments, NULL);
	close(prefault_mem);
	prefault_mem = -1;
}

/* Not inlined, so that its frame lies below the caller's, where the run's frames will be. */
__attribute__((noinline)) static void prefault_stack(void)
{
	volatile char pages[PREFAULT_STACK];
	for (size_t i = 0; i < sizeof pages; i += PREFAULT_PAGE)
		pages[i] = 0;
	pages[sizeof pages - 1] = 0;
}

void prefault_spare(char *out, size_t out_len)
{
	prefault_stack();
	/* The heap's next pages, where the run's allocations go (and free gives them back to the top). */
	volatile char *h = malloc(PREFAULT_HEAP);
	if (h) {
		for (size_t i = 0; i < PREFAULT_HEAP; i += PREFAULT_PAGE)
			h[i] = 0;
		free((void *)h);
	}
	/* A MAP_SHARED page: fork copies none of its entries. The performer cleared it: zeros stay zeros. */
	for (size_t i = 0; i < out_len; i += PREFAULT_PAGE)
		((volatile char *)out)[i] = 0;
}
