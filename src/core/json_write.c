/* json_write.c: jansson's dump, with real numbers in their shortest form.
 *
 * jansson writes a real with 17 significant digits ("%.17g"): always read
 * back as the same double, but 0.2 comes out as 0.20000000000000001 and
 * 19.99 as 19.989999999999998, in every answer, stored context and log
 * line. Here the dump goes through json_dump_callback, and each real is
 * written again in the fewest digits (15, 16 or 17) that read back as the
 * same double, as JavaScript and Python print numbers: 0.2, 19.99.
 *
 * jansson hands the callback one piece of text per token: a real is one
 * piece of its own (jsonp_dtostr's output), and a string is a `"` piece,
 * its unescaped runs and escapes, and another `"` piece; an unescaped run
 * never holds a `"`. So a piece that is one `"` opens or closes a string,
 * and a piece outside a string with a '.' or an exponent is a real. Only
 * one that took all 17 digits can have a shorter form: a real with fewer
 * is exact at that length already.
 *
 * Kept as jansson writes them: a real that would read as an integer gets
 * ".0" (1.0, not 1), an exponent has no '+' and no leading zeros (1e20).
 * The C locale's decimal point is assumed, as everywhere in switchboard
 * (it never calls setlocale). tests/unit/test_json_write.c checks the
 * output against jansson's for the same trees, reals apart.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* The longest real jansson writes: "-2.2250738585072014e-308". */
enum { REAL_MAX = 32, LONG_REAL_DIGITS = 17 };

typedef struct dump_out {
  char *buf;   /* where the text goes, or NULL: counted only */
  size_t size; /* of buf */
  size_t len;  /* the text's whole length so far */
  int in_string;
} dump_out;

static void put(dump_out *o, const char *p, size_t n) {
  if (o->buf && o->len < o->size) {
    size_t room = o->size - o->len;
    memcpy(o->buf + o->len, p, n < room ? n : room);
  }
  o->len += n;
}

static size_t digits_in(const char *p, size_t n) {
  size_t d = 0;
  for (size_t i = 0; i < n && p[i] != 'e' && p[i] != 'E'; i++)
    d += p[i] >= '0' && p[i] <= '9';
  return d;
}

/* The real written as text (n bytes, jansson's) in its shortest form, in
 * out: its length, or 0 to keep jansson's. */
static size_t shortest_real(const char *text, size_t n, char out[REAL_MAX]) {
  char in[REAL_MAX];
  if (n >= sizeof in) return 0;
  memcpy(in, text, n);
  in[n] = '\0';
  double v = strtod(in, NULL);
  char form[REAL_MAX];
  int k = 0;
  for (int prec = 15; prec < LONG_REAL_DIGITS; prec++) {
    k = snprintf(form, sizeof form, "%.*g", prec, v);
    if (k > 0 && (size_t)k < sizeof form && strtod(form, NULL) == v) break;
    k = 0;
  }
  if (k == 0) return 0; /* it takes all 17 digits: jansson's is shortest */
  /* jansson's shape: the exponent without '+' or leading zeros... */
  size_t w = 0;
  for (int i = 0; i < k; i++) {
    out[w++] = form[i];
    if (form[i] != 'e') continue;
    if (form[i + 1] == '-') out[w++] = form[++i];
    if (form[i + 1] == '+') i++;
    while (form[i + 1] == '0' && form[i + 2] != '\0')
      i++;
  }
  /* ...and a real that reads as a real. */
  out[w] = '\0';
  if (strspn(out, "0123456789-") == w) {
    out[w++] = '.';
    out[w++] = '0';
  }
  return w < n ? w : 0; /* 4277834443099750.0 stays: 4.27783444309975e15
                           is no shorter */
}

static int on_piece(const char *p, size_t n, void *ud) {
  dump_out *o = ud;
  if (n == 1 && p[0] == '"') {
    o->in_string = !o->in_string;
  } else if (!o->in_string && n > LONG_REAL_DIGITS &&
             digits_in(p, n) >= LONG_REAL_DIGITS &&
             (memchr(p, '.', n) || memchr(p, 'e', n))) {
    char real[REAL_MAX];
    size_t w = shortest_real(p, n, real);
    if (w) {
      put(o, real, w);
      return 0;
    }
  }
  put(o, p, n);
  return 0;
}

size_t sb_json_dumpb(const json_t *json, char *buf, size_t size, size_t flags) {
  dump_out o = {.buf = buf, .size = size};
  if (json_dump_callback(json, on_piece, &o, flags) != 0) return 0;
  return o.len;
}

char *sb_json_dumps(const json_t *json, size_t flags) {
  char stack[4096];
  size_t n = sb_json_dumpb(json, stack, sizeof stack, flags);
  if (n == 0) return NULL;
  char *s = sb_malloc(n + 1);
  if (!s) return NULL;
  if (n <= sizeof stack)
    memcpy(s, stack, n);
  else if (sb_json_dumpb(json, s, n, flags) != n) {
    sb_free(s); /* cannot happen: the same value dumps to the same size */
    return NULL;
  }
  s[n] = '\0';
  return s;
}
