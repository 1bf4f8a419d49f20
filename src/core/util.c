/* util.c: errors, logging, clocks, byte buffers, random ids and base64:
 * the small helpers every module uses. */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#endif

/* ---- errors ----------------------------------------------------------- */
const char *sb_strerror(int code) {
  switch (code) {
  case SB_OK: return "OK";
  case SB_ENOMEM: return "ENOMEM";
  case SB_EINVAL: return "EINVAL";
  case SB_ENOENT: return "ENOENT";
  case SB_EIO: return "EIO";
  case SB_ETOOBIG: return "ETOOBIG";
  case SB_ECONFLICT: return "ECONFLICT";
  case SB_ETIMEDOUT: return "ETIMEDOUT";
  case SB_ECANCELED: return "ECANCELED";
  case SB_EPROTO: return "EPROTO";
  case SB_ESTATE: return "ESTATE";
  case SB_EBUSY: return "EBUSY";
  case SB_EPERM: return "EPERM";
  default: return "EUNKNOWN";
  }
}

int sb_error_set(sb_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->scope[0] = '\0';
  }
  return code;
}

int sb_error_refuse(sb_error *err, const char *scope, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = SB_EPERM;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    snprintf(err->scope, sizeof err->scope, "%s", scope ? scope : "");
  }
  return SB_EPERM;
}

size_t sb_json_escape(const char *in, char *out, size_t cap) {
  size_t o = 0, n = strlen(in);
  const unsigned char *p = (const unsigned char *)in;
  if (!cap) return 0;
  for (size_t i = 0; i < n;) {
    char esc[8];
    const char *piece = esc;
    size_t len, adv = 1;
    size_t seq = sb_utf8_seq(p + i, n - i);
    if (seq == 0) {
      piece = "\\ufffd";
      len = 6;
    } else if (seq > 1) {
      piece = in + i;
      len = adv = seq;
    } else if (p[i] == '"' || p[i] == '\\') {
      esc[0] = '\\';
      esc[1] = (char)p[i];
      len = 2;
    } else if (p[i] < 0x20 || p[i] == 0x7f) {
      len = (size_t)snprintf(esc, sizeof esc, "\\u%04x", p[i]);
    } else {
      piece = in + i;
      len = 1;
    }
    if (o + len >= cap) break; /* cut whole: never half an escape */
    memcpy(out + o, piece, len);
    o += len;
    i += adv;
  }
  out[o] = '\0';
  return o;
}

size_t sb_escape_controls(const char *in, size_t len, char *out, size_t cap,
                          unsigned flags) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  if (!cap) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    char esc[4];
    size_t n = 0;
    if ((c == '\t' && (flags & SB_ESC_KEEP_TAB)) ||
        (c == '\n' && (flags & SB_ESC_KEEP_NEWLINE))) {
      esc[n++] = (char)c;
    } else if ((c == '\n' || c == '\r') && (flags & SB_ESC_NAMED_CRLF)) {
      esc[n++] = '\\';
      esc[n++] = c == '\n' ? 'n' : 'r';
    } else if ((c == '"' || c == '\\') && (flags & SB_ESC_QUOTE)) {
      esc[n++] = '\\';
      esc[n++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      esc[n++] = '\\';
      esc[n++] = 'x';
      esc[n++] = hex[c >> 4];
      esc[n++] = hex[c & 15];
    } else {
      esc[n++] = (char)c;
    }
    if (o + n >= cap) break; /* cut whole: never half an escape */
    memcpy(out + o, esc, n);
    o += n;
  }
  out[o] = '\0';
  return o;
}

/* ---- time ------------------------------------------------------------- */
uint64_t sb_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t sb_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- byte buffer ------------------------------------------------------ */
int sb_buf_reserve(sb_buf *b, size_t extra) {
  /* len + extra + 1 must not wrap, or a huge request would look satisfied. */
  if (extra > SIZE_MAX - b->len - 1) return SB_ENOMEM;
  if (b->len + extra + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) {
    if (cap > SIZE_MAX / 2) return SB_ENOMEM;
    cap *= 2;
  }
  char *d = sb_realloc(b->data, cap);
  if (!d) return SB_ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

int sb_buf_append(sb_buf *b, const void *data, size_t n) {
  if (sb_buf_reserve(b, n) != 0) return SB_ENOMEM;
  if (n) memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int sb_buf_append_str(sb_buf *b, const char *s) {
  return sb_buf_append(b, s, strlen(s));
}

int sb_buf_read_file(sb_buf *b, FILE *f, size_t max) {
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b->len + n > max) return SB_ETOOBIG;
    if (sb_buf_append(b, chunk, n) != 0) return SB_ENOMEM;
  }
  return ferror(f) ? SB_EIO : 0;
}

int sb_buf_printf(sb_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return SB_EINVAL;
  if (sb_buf_reserve(b, (size_t)n) != 0) return SB_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void sb_buf_consume(sb_buf *b, size_t n) {
  if (n >= b->len) {
    sb_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

void sb_buf_reset(sb_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void sb_buf_free(sb_buf *b) {
  sb_free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ---- JSON in error messages ------------------------------------------ */
const char *sb_json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  default: return "null";
  }
}

const char *sb_json_unknown_key(const json_t *obj, const char *const *known) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    size_t i = 0;
    while (known[i] && strcmp(known[i], key) != 0)
      i++;
    if (!known[i]) return key;
  }
  return NULL;
}

void sb_join_names(const char *const *names, char *out, size_t cap) {
  out[0] = '\0';
  for (size_t i = 0; names[i]; i++) {
    size_t n = strlen(out);
    snprintf(out + n, cap - n, "%s%s", i ? ", " : "", names[i]);
  }
}

/* ---- files named by the operator ---------------------------------------- */
int sb_open_regular(const char *path) {
  /* O_NONBLOCK so that the open of a FIFO returns, to be refused. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  /* Back to blocking reads: a regular file reads the same either way. */
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

FILE *sb_fopen_regular(const char *path) {
  int fd = sb_open_regular(path);
  if (fd < 0) return NULL;
  FILE *f = fdopen(fd, "rb");
  if (!f) close(fd);
  return f;
}

/* ---- text from the wire ----------------------------------------------- */
/* json_read.c keeps its own copy of this check, inlined in its hot loop. */
size_t sb_utf8_seq(const unsigned char *s, size_t n) {
  if (n == 0) return 0;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned min;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, min = 0x10000;
  else
    return 0;
  if (n < len) return 0;
  unsigned cp = c & (0x3F >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

int sb_parse_digits(const char *s, size_t n, int64_t *out) {
  if (!s || n == 0) return SB_EINVAL;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return SB_EINVAL;
    int d = s[i] - '0';
    if (v > (INT64_MAX - d) / 10) {
      /* Past INT64_MAX, unless a later byte is not a digit at all: that
       * is the better thing to report. */
      for (i++; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return SB_EINVAL;
      return SB_ETOOBIG;
    }
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int sb_text_plain(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    if (p[i] < 0x20 || p[i] == 0x7F) return 0;
    size_t k = sb_utf8_seq(p + i, n - i);
    if (k == 0) return 0;
    if (k == 2 && p[i] == 0xC2 && p[i + 1] < 0xA0) return 0; /* C1 */
    i += k;
  }
  return 1;
}

void sb_utf8_scrub(char *s) {
  unsigned char *p = (unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    size_t k = sb_utf8_seq(p + i, n - i);
    if (k == 0) {
      p[i++] = '?';
      continue;
    }
    i += k;
  }
}

/* ---- JSON paths ------------------------------------------------------- */
/* Append n bytes of s, as far as the buffer holds (cut, NUL-terminated).
 * Paths are pushed for every member a validator visits, error or not:
 * no snprintf here (it was ~4% of making an update's next version). */
static void jpath_put(sb_jpath *p, const char *s, size_t n) {
  size_t room = sizeof p->buf - 1 - p->len;
  if (n > room) n = room;
  memcpy(p->buf + p->len, s, n);
  p->len += n;
  p->buf[p->len] = '\0';
}

size_t sb_jpath_key(sb_jpath *p, const char *key) {
  size_t mark = p->len;
  if (p->len) jpath_put(p, ".", 1);
  jpath_put(p, key, strnlen(key, 80));
  return mark;
}

size_t sb_jpath_index(sb_jpath *p, size_t i) {
  size_t mark = p->len;
  char digits[24], *at = digits + sizeof digits;
  *--at = ']';
  do
    *--at = (char)('0' + i % 10);
  while ((i /= 10) != 0);
  *--at = '[';
  jpath_put(p, at, (size_t)(digits + sizeof digits - at));
  return mark;
}

void sb_jpath_pop(sb_jpath *p, size_t mark) {
  p->len = mark;
  p->buf[mark] = '\0';
}

/* ---- random ids ------------------------------------------------------- */
void sb_random_hex(char *out, size_t nbytes) {
  unsigned char raw[64];
  if (nbytes > sizeof raw) nbytes = sizeof raw;
  randombytes_buf(raw, nbytes);
  sodium_bin2hex(out, nbytes * 2 + 1, raw, nbytes);
}

/* ---- base64 ----------------------------------------------------------- */
char *sb_base64_encode(const void *data, size_t n) {
  size_t len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
  char *out = sb_malloc(len);
  if (!out) return NULL;
  sodium_bin2base64(out, len, data, n, sodium_base64_VARIANT_ORIGINAL);
  return out;
}

unsigned char *sb_base64_decode(const char *s, size_t slen, size_t *out_len) {
  size_t cap = slen / 4 * 3 + 3;
  unsigned char *out = sb_malloc(cap + 1);
  if (!out) return NULL;
  size_t n = 0;
  const char *end = NULL;
  if (sodium_base642bin(out, cap, s, slen, NULL, &n, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != s + slen) {
    sb_free(out);
    return NULL;
  }
  out[n] = '\0';
  if (out_len) *out_len = n;
  return out;
}

/* ---- timestamps and time-ordered ids ---------------------------------- */
void sb_time_format(int64_t ms, char out[32]) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static int parse_digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if ((*p)[i] < '0' || (*p)[i] > '9') return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return 0;
}

int sb_time_parse(const char *s, int64_t *ms) {
  int Y, M, D, h, m, sec, frac_ms = 0;
  const char *p = s;
  if (!s || parse_digits(&p, 4, &Y) || *p++ != '-' || parse_digits(&p, 2, &M) ||
      *p++ != '-' || parse_digits(&p, 2, &D) ||
      (*p != 'T' && *p != 't' && *p != ' '))
    return SB_EINVAL;
  p++;
  if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &m) ||
      *p++ != ':' || parse_digits(&p, 2, &sec))
    return SB_EINVAL;
  if (*p == '.') {
    p++;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
      if (digits < 3) frac_ms = frac_ms * 10 + (*p - '0');
      digits++;
      p++;
    }
    if (digits == 0) return SB_EINVAL;
    for (; digits < 3; digits++)
      frac_ms *= 10;
  }
  int offset_min = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om;
    if (parse_digits(&p, 2, &oh) || *p++ != ':' || parse_digits(&p, 2, &om) ||
        oh > 23 || om > 59)
      return SB_EINVAL;
    offset_min = sign * (oh * 60 + om);
  } else {
    return SB_EINVAL;
  }
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
  if (*p || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] + (M == 2 && leap) ||
      h > 23 || m > 59 || sec > 60)
    return SB_EINVAL;
  /* days from civil (proleptic Gregorian), after H. Hinnant */
  int y = Y - (M <= 2);
  int era = (y >= 0 ? y : y - 399) / 400;
  int yoe = y - era * 400;
  int doy = (153 * (M + (M > 2 ? -3 : 9)) + 2) / 5 + D - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = (int64_t)era * 146097 + doe - 719468;
  *ms = ((days * 86400 + h * 3600 + m * 60 + (sec > 59 ? 59 : sec)) -
         (int64_t)offset_min * 60) *
            1000 +
        frac_ms;
  return 0;
}

void sb_uuid_v7(char out[37]) {
  unsigned char b[16];
  uint64_t ms = sb_wall_ms();
  for (int i = 0; i < 6; i++)
    b[i] = (unsigned char)(ms >> (8 * (5 - i)));
  randombytes_buf(b + 6, 10);
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x70); /* version 7 */
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  static const char hex[] = "0123456789abcdef";
  char *o = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
    *o++ = hex[b[i] >> 4];
    *o++ = hex[b[i] & 15];
  }
  *o = '\0';
}

void sb_thread_background(void) {
#if defined(__linux__)
  static _Thread_local int done;
  if (done) return;
  done = 1;
  /* On Linux a thread id names one thread for setpriority. Failure
   * (a sandbox refusing it) only means the thread keeps its priority. */
  if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0) return;
#endif
}
