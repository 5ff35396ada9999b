/* The control socket's framing, shared by eci-runc and eci-run (see control-frame.h). */
#include "control-frame.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void frame_append(struct frame_buf *b, const void *s, size_t l)
{
	if (b->n + l > b->cap) {
		b->cap = (b->n + l) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			frame_out_of_memory();
	}
	memcpy(b->p + b->n, s, l);
	b->n += l;
}

void frame_put(struct frame_buf *b, const char *s)
{
	frame_append(b, s, strlen(s) + 1);
}

void frame_putnum(struct frame_buf *b, long v)
{
	char num[32];
	snprintf(num, sizeof num, "%ld", v);
	frame_put(b, num);
}

int frame_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int frame_parse_reply(const struct frame_buf *in, struct frame_reply *r)
{
	if (!in->n)
		return 0;
	char *p = in->p, *end = in->p + in->n;
	char *z = memchr(p, 0, (size_t)(end - p));
	if (!z)
		return 0;
	char *action = p;
	p = z + 1;
	z = memchr(p, 0, (size_t)(end - p));
	if (!z)
		return 0;
	long n = strtol(p, NULL, 10);
	if (n < 0 || n > FRAME_MAX_FIELDS)
		return -1;
	p = z + 1;
	char **f = calloc((size_t)n + 1, sizeof(char *));
	if (!f)
		frame_out_of_memory();
	for (long i = 0; i < n; i++) {
		z = memchr(p, 0, (size_t)(end - p));
		if (!z) {
			free(f);
			return 0;
		}
		f[i] = p;
		p = z + 1;
	}
	r->action = action;
	r->f = f;
	r->nf = (int)n;
	return 1;
}

/* Where reply r, parsed from the start of `in`, ends: after its last field, or after its count. */
static size_t reply_end(const struct frame_buf *in, const struct frame_reply *r)
{
	const char *last = r->nf ? r->f[r->nf - 1] : r->action + strlen(r->action) + 1;
	return (size_t)(last + strlen(last) + 1 - in->p);
}

int frame_read_reply(int fd, struct frame_buf *in, struct frame_reply *r)
{
	if (in->used) {
		memmove(in->p, in->p + in->used, in->n - in->used);
		in->n -= in->used;
		in->used = 0;
	}
	for (;;) {
		int got = frame_parse_reply(in, r);
		if (got > 0)
			in->used = reply_end(in, r);
		if (got)
			return got;
		if (in->n == in->cap) {
			in->cap = in->cap ? in->cap * 2 : 4096;
			in->p = realloc(in->p, in->cap);
			if (!in->p)
				frame_out_of_memory();
		}
		ssize_t n = read(fd, in->p + in->n, in->cap - in->n);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		in->n += (size_t)n;
	}
}
