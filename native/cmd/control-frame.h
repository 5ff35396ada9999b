/*
 * The framing both manager clients (eci-runc, eci-run) use on the control socket: NUL-terminated
 * fields, replies `<action> \0 <n> \0 <f1> \0 ... <fn> \0`. Wire format: actors/shim-protocol.ts.
 */
#ifndef ECI_CONTROL_FRAME_H
#define ECI_CONTROL_FRAME_H

#include <stddef.h>

#define FRAME_MAX_FIELDS 4096

/* Each program says how it ends when memory runs out (its own exit status). */
void frame_out_of_memory(void);

/* A growable byte buffer. */
struct frame_buf {
	char *p;
	size_t n, cap;
	size_t used; /* frame_read_reply: the bytes of the reply it returned last */
};

struct frame_reply {
	char *action;
	char **f; /* NULL-terminated, pointing into the buffer; the caller frees the array */
	int nf;
};

void frame_append(struct frame_buf *b, const void *s, size_t l);
/* Appends s and its NUL: one field. */
void frame_put(struct frame_buf *b, const char *s);
void frame_putnum(struct frame_buf *b, long v);
int frame_write_all(int fd, const char *p, size_t n);
/* 1: `in` holds a whole reply, parsed into r; 0: not yet; -1: a bad field count. */
int frame_parse_reply(const struct frame_buf *in, struct frame_reply *r);
/* Blocking read of one reply into `in`, after dropping the one it returned before (what followed that
 * one is kept: a manager may send its next reply early). 1: got it; -1: connection lost or bad reply. */
int frame_read_reply(int fd, struct frame_buf *in, struct frame_reply *r);

#endif
