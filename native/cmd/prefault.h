/*
 * prefault: moves a performer's spare's page faults off the call's path (issue 17). A spare is a
 * fresh fork: after its request it faulted ~19 pages per run (text 3, rodata 2, stack 6, data 4,
 * heap 2, its output page, the vDSO), each a trap on the caller's critical path.
 */
#ifndef ECI_PREFAULT_H
#define ECI_PREFAULT_H

/*
 * Once, in the performer before its first fork: maps every page of the program's read-only
 * segments (text, rodata) and gives each such mapping an anon_vma, so that fork copies their page
 * table entries into every spare (fork does not copy those of a private file mapping without one:
 * mm/memory.c vma_needs_copy; the child would fault them again, 16 pages per fault). Best effort:
 * without it a spare is slower, not weaker.
 */
void prefault_share_text(void);

/* In a spare before it waits for its request: the stack its run uses and its output page, written once. */
void prefault_spare(char *out, size_t out_len);

#endif
