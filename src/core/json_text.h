/* json_text.h: the byte-level rules the JSON reader (json_read.c) and
 * writer (json_write.c) share; private to core/.
 *
 * A JSON string's bytes are mostly "plain": printable ASCII other than the
 * quote and the backslash, copied as they are both ways. The rest is an
 * escape, a control character, or a UTF-8 sequence that must be valid
 * (jansson's rules, which both sides keep byte for byte).
 */
#ifndef SB_CORE_JSON_TEXT_H
#define SB_CORE_JSON_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline int json_text_plain(unsigned char c) {
  return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* How many of the n bytes at p are plain before the first that is not.
 * Eight at a time: a byte is flagged (its top bit set in the mask) when it
 * is below 0x20, equals '"' or '\\', or is 0x80 or more. The subtractions
 * borrow only out of a flagged byte, so the lowest flag is exact, which is
 * all that is read. */
static inline size_t json_text_plain_run(const unsigned char *p, size_t n) {
  size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  /* An unaligned 8-byte load, not memcpy: unoptimised (and sanitizer)
   * builds make memcpy a call, which made the scan slower than a byte at
   * a time there. */
  typedef uint64_t unaligned_u64 __attribute__((may_alias, aligned(1)));
  const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
  for (; n - i >= 8; i += 8) {
    uint64_t w = *(const unaligned_u64 *)(p + i);
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    /* below 0x20 (a byte of 0x80 or more may show here too: it is
     * flagged by w itself anyway), '"', '\\', 0x80 or more */
    uint64_t flagged = ((w - ones * 0x20) | ((quote - ones) & ~quote) |
                        ((backslash - ones) & ~backslash) | w) &
                       high;
    if (flagged) return i + ((size_t)__builtin_ctzll(flagged) >> 3);
  }
#endif
  while (i < n && json_text_plain(p[i]))
    i++;
  return i;
}

/* The length of the valid UTF-8 sequence at p (n > 0 bytes, p[0] >=
 * 0x80), or 0: RFC 3629 as jansson reads it (no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
static inline size_t json_text_utf8_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  size_t k;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    k = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    k = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    k = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < k) return 0;
  for (size_t i = 1; i < k; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  if (k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
  if (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return k;
}

#endif
