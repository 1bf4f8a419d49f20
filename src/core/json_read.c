/* json_read.c: a single-pass JSON reader that builds jansson values.
 *
 * jansson's own parser reads its input one character at a time through a
 * stream, checking UTF-8 per character and copying every token into a
 * growing buffer before it becomes a value: 3.7 us for a 217-byte
 * tools/call on the benchmark machine, when building the same tree takes
 * 0.5 us. Every message switchboard relays is parsed at least twice (the
 * client's and the agent's answer), and every agent on the project's MCP
 * code parses each request once, so that parser was the largest single
 * cost of a relayed call.
 *
 * This reader walks the text with a pointer and hands jansson finished
 * keys and strings. It takes on itself only what it can answer exactly as
 * json_loadb would; everything else makes it decline (return NULL), and
 * sb_json_loadb then lets jansson parse the text again, so jansson's
 * verdict and its error message stand for every input this reader does
 * not accept:
 *   - invalid text of any kind (syntax, UTF-8, a control character in a
 *     string, trailing bytes);
 *   - "\u0000" (jansson refuses it without JSON_ALLOW_NUL) and a \u escape
 *     that is half of a surrogate pair without its other half;
 *   - an integer outside int64 and a real that strtod over- or underflows;
 *   - a duplicate key (refused under JSON_REJECT_DUPLICATES, else jansson's
 *     "last one wins");
 *   - nesting deeper than READ_MAX_DEPTH (jansson allows 2048);
 *   - any flag but JSON_REJECT_DUPLICATES and JSON_DECODE_ANY.
 * tests/fuzz/fuzz_json.c checks the contract: whatever this reader
 * accepts, jansson accepts as an equal tree that dumps to the same bytes.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/json_text.h"

enum {
  READ_MAX_DEPTH = 256, /* deeper: jansson's (recursive, 2048 levels) */
  NUMBER_MAX = 64,      /* longer number tokens: jansson's */
  STRING_STACK = 512,   /* escaped strings up to this decode on the stack */
};

typedef struct reader {
  const unsigned char *p, *end;
  int depth, max_depth;
} reader;

static void skip_ws(reader *r) {
  while (r->p < r->end &&
         (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
    r->p++;
}

static int hex4(const unsigned char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = p[i], d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return -1;
    v = (v << 4) | d;
  }
  *out = v;
  return 0;
}

static size_t utf8_put(unsigned char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Decode the escaped string body [s, e) into out (room for e - s bytes:
 * an escape never decodes longer than it is written). Its length, or -1
 * to decline. */
static long unescape(const unsigned char *s, const unsigned char *e,
                     unsigned char *out) {
  unsigned char *o = out;
  while (s < e) {
    if (*s != '\\') {
      *o++ = *s++;
      continue;
    }
    s++; /* the scan made sure an escape has its next byte */
    switch (*s++) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '/': *o++ = '/'; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': {
      unsigned cp, lo;
      if (e - s < 4 || hex4(s, &cp) != 0) return -1;
      s += 4;
      if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return -1;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (e - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) != 0 ||
            lo < 0xDC00 || lo > 0xDFFF)
          return -1;
        s += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      o += utf8_put(o, cp);
      break;
    }
    default: return -1;
    }
  }
  return (long)(o - out);
}

/* A string at r->p (its opening quote). Calls take(ud, bytes, len) with the
 * decoded text, whose result it returns; -1 to decline. */
typedef int (*string_cb)(void *ud, const char *s, size_t len);

static int read_string(reader *r, string_cb take, void *ud) {
  const unsigned char *s = ++r->p, *p = s;
  int escaped = 0;
  for (;;) {
    /* the common bytes first: printable ASCII but the quote and backslash */
    p += json_text_plain_run(p, (size_t)(r->end - p));
    if (p >= r->end) return -1;
    if (*p == '"') break;
    if (*p == '\\') {
      if (r->end - p < 2) return -1;
      escaped = 1;
      p += 2;
    } else if (*p >= 0x80) {
      size_t n = json_text_utf8_len(p, (size_t)(r->end - p));
      if (!n) return -1;
      p += n;
    } else {
      return -1; /* a control character */
    }
  }
  r->p = p + 1;
  if (!escaped) return take(ud, (const char *)s, (size_t)(p - s));
  unsigned char stack[STRING_STACK];
  unsigned char *buf = (size_t)(p - s) <= sizeof stack
                           ? stack
                           : sb_malloc((size_t)(p - s));
  if (!buf) return -1;
  long n = unescape(s, p, buf);
  int rc = n < 0 ? -1 : take(ud, (const char *)buf, (size_t)n);
  if (buf != stack) sb_free(buf);
  return rc;
}

static int take_string(void *ud, const char *s, size_t len) {
  json_t **out = ud;
  *out = json_stringn_nocheck(s, len);
  return *out ? 0 : -1;
}

static json_t *read_number(reader *r) {
  const unsigned char *s = r->p, *p = s;
  int real = 0;
  if (p < r->end && *p == '-') p++;
  if (p >= r->end) return NULL;
  if (*p == '0') {
    p++;
  } else if (*p >= '1' && *p <= '9') {
    while (p < r->end && *p >= '0' && *p <= '9') p++;
  } else {
    return NULL;
  }
  if (p < r->end && *p == '.') {
    real = 1;
    p++;
    const unsigned char *digits = p;
    while (p < r->end && *p >= '0' && *p <= '9') p++;
    if (p == digits) return NULL;
  }
  if (p < r->end && (*p == 'e' || *p == 'E')) {
    real = 1;
    p++;
    if (p < r->end && (*p == '+' || *p == '-')) p++;
    const unsigned char *digits = p;
    while (p < r->end && *p >= '0' && *p <= '9') p++;
    if (p == digits) return NULL;
  }
  size_t len = (size_t)(p - s);
  r->p = p;
  if (!real) {
    /* up to 18 digits cannot overflow int64 */
    size_t digits = len - (*s == '-');
    if (digits > 18) return NULL;
    int64_t v = 0;
    for (const unsigned char *q = s + (*s == '-'); q < p; q++)
      v = v * 10 + (*q - '0');
    return json_integer((json_int_t)(*s == '-' ? -v : v));
  }
  if (len >= NUMBER_MAX) return NULL;
  char text[NUMBER_MAX], *end;
  memcpy(text, s, len);
  text[len] = '\0';
  errno = 0;
  double v = strtod(text, &end);
  /* ERANGE (over- or underflow), or a locale whose decimal point is not
   * '.': jansson's to answer */
  if (errno || end != text + len) return NULL;
  return json_real(v);
}

static json_t *read_value(reader *r);

typedef struct member {
  reader *r;
  json_t *obj;
} member;

/* A key has been read: its value, into the object. */
static int take_member(void *ud, const char *key, size_t len) {
  member *m = ud;
  skip_ws(m->r);
  if (m->r->p >= m->r->end || *m->r->p != ':') return -1;
  m->r->p++;
  skip_ws(m->r);
  json_t *v = read_value(m->r);
  if (!v) return -1;
  /* A duplicate key replaces the first one's value and leaves the size as
   * it was: then the text is jansson's to judge (one hash of the key, not
   * a lookup before the insertion as well). */
  size_t size = json_object_size(m->obj);
  if (json_object_setn_new_nocheck(m->obj, key, len, v) != 0) return -1;
  return json_object_size(m->obj) == size + 1 ? 0 : -1;
}

static json_t *read_object(reader *r) {
  json_t *obj = json_object();
  if (!obj) return NULL;
  r->p++;
  skip_ws(r);
  if (r->p < r->end && *r->p == '}') {
    r->p++;
    return obj;
  }
  member m = {r, obj};
  for (;;) {
    if (r->p >= r->end || *r->p != '"' || read_string(r, take_member, &m))
      break;
    skip_ws(r);
    if (r->p >= r->end) break;
    if (*r->p == '}') {
      r->p++;
      return obj;
    }
    if (*r->p++ != ',') break;
    skip_ws(r);
  }
  json_decref(obj);
  return NULL;
}

static json_t *read_array(reader *r) {
  json_t *arr = json_array();
  if (!arr) return NULL;
  r->p++;
  skip_ws(r);
  if (r->p < r->end && *r->p == ']') {
    r->p++;
    return arr;
  }
  for (;;) {
    json_t *v = read_value(r);
    if (!v || json_array_append_new(arr, v) != 0) break;
    skip_ws(r);
    if (r->p >= r->end) break;
    if (*r->p == ']') {
      r->p++;
      return arr;
    }
    if (*r->p++ != ',') break;
    skip_ws(r);
  }
  json_decref(arr);
  return NULL;
}

static json_t *read_literal(reader *r, const char *word, json_t *v) {
  size_t n = strlen(word);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return NULL;
  r->p += n;
  return v;
}

static json_t *read_value(reader *r) {
  if (r->p >= r->end) return NULL;
  json_t *v = NULL;
  switch (*r->p) {
  case '{':
  case '[':
    if (++r->depth > r->max_depth) return NULL;
    v = *r->p == '{' ? read_object(r) : read_array(r);
    r->depth--;
    return v;
  case '"': return read_string(r, take_string, &v) == 0 ? v : NULL;
  case 't': return read_literal(r, "true", json_true());
  case 'f': return read_literal(r, "false", json_false());
  case 'n': return read_literal(r, "null", json_null());
  default: return read_number(r);
  }
}

json_t *sb_json_read_fast(const char *text, size_t len, size_t flags) {
  return sb_json_read_fast_within(text, len, flags, READ_MAX_DEPTH);
}

json_t *sb_json_read_fast_within(const char *text, size_t len, size_t flags,
                                 int max_depth) {
  if (flags & ~(size_t)(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY))
    return NULL;
  reader r = {(const unsigned char *)text, (const unsigned char *)text + len, 0,
              max_depth < READ_MAX_DEPTH ? max_depth : READ_MAX_DEPTH};
  skip_ws(&r);
  if (r.p >= r.end) return NULL;
  if (!(flags & JSON_DECODE_ANY) && *r.p != '{' && *r.p != '[') return NULL;
  json_t *v = read_value(&r);
  if (!v) return NULL;
  skip_ws(&r);
  if (r.p != r.end) {
    json_decref(v);
    return NULL;
  }
  return v;
}

json_t *sb_json_loadb(const char *text, size_t len, size_t flags,
                      json_error_t *err) {
  json_t *v = sb_json_read_fast(text, len, flags);
  if (v) return v;
  v = json_loadb(text, len, flags, err);
  /* jansson names its own flag ("...without JSON_ALLOW_NUL"): say what is
   * wrong with the text instead. */
  if (!v && err && strstr(err->text, "JSON_ALLOW_NUL"))
    snprintf(err->text, sizeof err->text,
             "\\u0000 is not allowed in a string");
  return v;
}
