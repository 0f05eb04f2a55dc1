/* html: a growing text buffer for writing HTML and SVG, with the escapes
 * they need (HTML text and attributes, JSON strings inside attributes) and
 * base64 for data: URIs. Allocation never fails (xrealloc). */
#ifndef SIAMESE_HTML_H
#define SIAMESE_HTML_H

#include <stddef.h>

#include "../nn/util.h"

typedef struct Buf {
    char *p; /* NUL-terminated once anything was written */
    size_t len, cap;
} Buf;

void buf_put(Buf *b, const void *s, size_t n);
void buf_puts(Buf *b, const char *s);
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s with & < > " ' as character references: safe in text and in quoted
 * attributes. */
void buf_esc(Buf *b, const char *s);
/* s as a JSON string literal (quotes included) whose characters are also
 * safe inside a single-quoted HTML attribute. */
void buf_json_str(Buf *b, const char *s);
/* A number as JSON: %.6g, or null when it is not finite. */
void buf_json_num(Buf *b, double v);
/* n bytes as base64 (RFC 4648, padded). */
void buf_base64(Buf *b, const void *p, size_t n);
void buf_free(Buf *b);

/* A number for people: %.4g, but no exponent between 1e-4 and 1e7, and
 * "-" for NaN. out: at least 32 bytes. */
void fmt_num(char *out, size_t n, double v);

#endif
