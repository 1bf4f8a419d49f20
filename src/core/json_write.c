/* json_write.c: JSON text from a jansson tree, as jansson writes it but
 * faster, and with real numbers in their shortest form.
 *
 * Reals: jansson writes a real with 17 significant digits ("%.17g"):
 * always read back as the same double, but 0.2 comes out as
 * 0.20000000000000001 and 19.99 as 19.989999999999998, in every answer,
 * stored context and log line. Here each real is written in the fewest
 * digits (15, 16 or 17) that read back as the same double, as JavaScript
 * and Python print numbers: 0.2, 19.99. Only one that took all 17 digits
 * can have a shorter form: a real with fewer is exact at that length
 * already. Kept as jansson writes them: a real that would read as an
 * integer gets ".0" (1.0, not 1), an exponent has no '+' and no leading
 * zeros (1e20). The C locale's decimal point is assumed, as everywhere in
 * switchboard (it never calls setlocale).
 *
 * Two ways to the text:
 *
 * - Compact text (JSON_COMPACT, with or without JSON_ENCODE_ANY: every
 *   message and stored document) is written here, walking the tree
 *   once: runs of plain bytes copied whole, integers converted by hand.
 *   jansson's own dump goes through a callback per token and snprintf per
 *   integer, and took 1.5-1.8 us of a 220-byte JSON-RPC message, the
 *   largest part of a relayed call's own cost after parsing. Its rules
 *   are kept byte for byte: the escapes it writes (\" \\ \b \f \n \r
 *   \t, \u00XX in upper case for the other controls, nothing else), the
 *   UTF-8 it refuses (a string that is not valid UTF-8 fails the whole
 *   dump), object members in their order, a scalar at the top only with
 *   JSON_ENCODE_ANY.
 * - Any other flags (indentation, sorted keys, JSON_ENSURE_ASCII, a real
 *   precision), and a tree nested deeper than MAX_DEPTH (jansson also
 *   finds a tree that contains itself), go through json_dump_callback,
 *   whose pieces are copied but for a real's (below).
 *
 * tests/unit/test_json_write.c and tests/fuzz/fuzz_json.c check both ways
 * against jansson and against each other: JSON_REAL_PRECISION(17) is
 * jansson's default precision, so it writes the same text the long way.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/json_text.h"

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

/* jansson hands the callback one piece of text per token: a real is one
 * piece of its own (jsonp_dtostr's output), and a string is a `"` piece,
 * its unescaped runs and escapes, and another `"` piece; an unescaped run
 * never holds a `"`. So a piece that is one `"` opens or closes a string,
 * and a piece outside a string with a '.' or an exponent is a real. */
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

/* ---- the direct writer (compact text) ---------------------------------- */

/* Deeper than this, jansson writes it (and finds a tree that contains
 * itself, which would recurse here for ever). */
enum { MAX_DEPTH = 512 };

static void put_byte(dump_out *o, char c) {
  if (o->buf && o->len < o->size) o->buf[o->len] = c;
  o->len++;
}

static int write_string(dump_out *o, const char *text, size_t n) {
  const unsigned char *s = (const unsigned char *)text;
  size_t run = 0, i = 0;
  put_byte(o, '"');
  while (i < n) {
    i += json_text_plain_run(s + i, n - i);
    if (i == n) break;
    unsigned char c = s[i];
    if (c >= 0x80) {
      size_t k = json_text_utf8_len(s + i, n - i);
      if (k == 0) return -1;
      i += k;
      continue;
    }
    put(o, text + run, i - run);
    char esc[6] = {'\\', 0};
    size_t len = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    default: {
      static const char hex[] = "0123456789ABCDEF";
      memcpy(esc + 1, "u00", 3);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      len = 6;
    }
    }
    put(o, esc, len);
    run = ++i;
  }
  put(o, text + run, n - run);
  put_byte(o, '"');
  return 0;
}

static void write_integer(dump_out *o, json_int_t v) {
  char digits[24];
  size_t at = sizeof digits;
  /* in unsigned arithmetic, so the most negative value has its digits */
  unsigned long long u =
      v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  do {
    digits[--at] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) digits[--at] = '-';
  put(o, digits + at, sizeof digits - at);
}

/* As jansson's jsonp_dtostr at its default precision, then shortened. */
static int write_real(dump_out *o, double v) {
  char text[REAL_MAX];
  int k = snprintf(text, sizeof text, "%.17g", v);
  if (k <= 0 || (size_t)k >= sizeof text - 2) return -1;
  size_t n = (size_t)k;
  char *e = memchr(text, 'e', n);
  if (!e && !memchr(text, '.', n)) {
    memcpy(text + n, ".0", 3);
    n += 2;
  }
  if (e) { /* "e+05" -> "e5", "e-05" -> "e-5" */
    char *from = e + 1, *to = e + 1;
    if (*from == '-')
      from++, to++;
    else if (*from == '+')
      from++;
    while (*from == '0' && from[1] != '\0')
      from++;
    memmove(to, from, (size_t)(text + n - from) + 1);
    n -= (size_t)(from - to);
  }
  char shorter[REAL_MAX];
  size_t w = n > LONG_REAL_DIGITS && digits_in(text, n) >= LONG_REAL_DIGITS
                 ? shortest_real(text, n, shorter)
                 : 0;
  if (w)
    put(o, shorter, w);
  else
    put(o, text, n);
  return 0;
}

typedef enum { WROTE, REFUSED, TOO_DEEP } write_result;

static write_result write_value(dump_out *o, const json_t *v, int depth) {
  if (depth > MAX_DEPTH) return TOO_DEEP;
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    put_byte(o, '{');
    int first = 1;
    for (void *it = json_object_iter((json_t *)v); it;
         it = json_object_iter_next((json_t *)v, it)) {
      if (!first) put_byte(o, ',');
      first = 0;
      if (write_string(o, json_object_iter_key(it),
                       json_object_iter_key_len(it)) != 0)
        return REFUSED;
      put_byte(o, ':');
      write_result r = write_value(o, json_object_iter_value(it), depth + 1);
      if (r != WROTE) return r;
    }
    put_byte(o, '}');
    return WROTE;
  }
  case JSON_ARRAY: {
    put_byte(o, '[');
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
      if (i) put_byte(o, ',');
      write_result r = write_value(o, json_array_get(v, i), depth + 1);
      if (r != WROTE) return r;
    }
    put_byte(o, ']');
    return WROTE;
  }
  case JSON_STRING:
    return write_string(o, json_string_value(v), json_string_length(v)) == 0
               ? WROTE
               : REFUSED;
  case JSON_INTEGER: write_integer(o, json_integer_value(v)); return WROTE;
  case JSON_REAL:
    return write_real(o, json_real_value(v)) == 0 ? WROTE : REFUSED;
  case JSON_TRUE: put(o, "true", 4); return WROTE;
  case JSON_FALSE: put(o, "false", 5); return WROTE;
  case JSON_NULL: put(o, "null", 4); return WROTE;
  }
  return REFUSED;
}

size_t sb_json_dumpb(const json_t *json, char *buf, size_t size, size_t flags) {
  if (!json) return 0;
  dump_out o = {.buf = buf, .size = size};
  if ((flags & ~(size_t)JSON_ENCODE_ANY) == JSON_COMPACT) {
    if (!(flags & JSON_ENCODE_ANY) && !json_is_object(json) &&
        !json_is_array(json))
      return 0;
    write_result r = write_value(&o, json, 0);
    if (r == WROTE) return o.len;
    if (r == REFUSED) return 0;
    o.len = 0; /* too deep: jansson's, from the start */
  }
  if (json_dump_callback(json, on_piece, &o, flags) != 0) return 0;
  return o.len;
}

char *sb_json_dumps(const json_t *json, size_t flags) {
  return sb_json_dumps_len(json, flags, NULL);
}

char *sb_json_dump_to(const json_t *json, size_t flags, char *buf, size_t cap,
                      size_t reserve, size_t *len, char **heap) {
  *heap = NULL;
  size_t room = cap > reserve ? cap - reserve : 0;
  size_t n = sb_json_dumpb(json, buf, room, flags);
  if (n == 0) return NULL;
  if (n <= room) {
    *len = n;
    return buf;
  }
  char *s = sb_malloc(n + reserve);
  if (!s) return NULL;
  if (sb_json_dumpb(json, s, n, flags) != n) {
    sb_free(s); /* cannot happen: the same value dumps to the same size */
    return NULL;
  }
  *len = n;
  return *heap = s;
}

char *sb_json_dumps_len(const json_t *json, size_t flags, size_t *len) {
  /* Most texts fit the stack buffer: one exact allocation and a copy.
   * json_dumps would grow its own buffer from 16 bytes by doubling and
   * then duplicate it (a 220-byte message: six allocations). */
  char stack[4096], *heap;
  size_t n;
  char *text = sb_json_dump_to(json, flags, stack, sizeof stack, 1, &n, &heap);
  if (!text) return NULL;
  if (!heap) {
    if (!(heap = sb_malloc(n + 1))) return NULL;
    memcpy(heap, stack, n);
  }
  heap[n] = '\0';
  if (len) *len = n;
  return heap;
}
