/* fuzz_http_framing.c: libFuzzer target for the RFC 9112 framing check
 * switchboard runs on every request's headers before libmicrohttpd reads
 * a body (src/net/http_conn.c, http_framing_of), and for the log
 * redaction every log line passes through (src/core/redact.c), which sees
 * whatever a client put in a header or a body that ends up logged.
 *
 * The input is header lines ("Name: value\n"); the verdict must be one of
 * the enum's values and must not depend on the case of the names; the
 * redactor must not read or write out of bounds, must always terminate
 * its output, and its output must not grow past the buffer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "net/http_internal.h"

#define MAX_HEADERS 64

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 16384) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';

  char *names[MAX_HEADERS], *values[MAX_HEADERS], *upper[MAX_HEADERS];
  size_t n = 0;
  for (char *line = text, *next; line && n < MAX_HEADERS; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    char *colon = strchr(line, ':');
    if (!colon) continue;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ')
      v++;
    names[n] = line;
    values[n] = v;
    n++;
  }
  http_framing f = http_framing_of((const char *const *)names,
                                   (const char *const *)values, n);
  check(f >= HTTP_FRAMING_OK && f <= HTTP_FRAMING_UNKNOWN_CODING);
  /* Header names are case-insensitive: the verdict too. */
  for (size_t i = 0; i < n; i++) {
    upper[i] = strdup(names[i]);
    for (char *p = upper[i]; p && *p; p++)
      if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
  }
  check(http_framing_of((const char *const *)upper, (const char *const *)values,
                        n) == f);
  for (size_t i = 0; i < n; i++)
    free(upper[i]);

  /* The redactor, on the raw input (cut at its first NUL) and into a
   * buffer smaller than it. */
  memcpy(text, data, size);
  text[size] = '\0';
  char out[256];
  size_t len = sb_log_redact(text, out, sizeof out);
  check(len < sizeof out && strlen(out) == len);
  char *big = malloc(size * 2 + 64);
  if (big) {
    len = sb_log_redact(text, big, size * 2 + 64);
    check(strlen(big) == len);
    free(big);
  }
  /* A URL as clients see it: whole (never cut), nothing masked where
   * there was no userinfo, query or fragment. */
  char *shown = sb_url_redacted(text, "<x>");
  check(shown != NULL);
  if (!strpbrk(text, "@?#")) check(strcmp(shown, text) == 0);
  sb_free(shown);
  free(text);
  return 0;
}
