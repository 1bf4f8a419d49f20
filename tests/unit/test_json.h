/* test_json.h: JSON helpers shared by the C unit tests. Include after
 * <cmocka.h>. J() parses test JSON written with single quotes. */
#ifndef SB_TEST_JSON_H
#define SB_TEST_JSON_H

#include <jansson.h>
#include <string.h>

#include "core/core.h"

/* Parse `text` with ' standing for " (new reference; fails the test on bad
 * JSON). */
static inline json_t *J(const char *text) {
  char buf[4096];
  size_t n = strlen(text);
  assert_true(n < sizeof buf);
  for (size_t i = 0; i <= n; i++)
    buf[i] = text[i] == '\'' ? '"' : text[i];
  json_error_t jerr;
  json_t *v = json_loads(buf, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
  if (!v) fail_msg("bad test JSON %s: %s", buf, jerr.text);
  return v;
}

/* Fail the test, printing both, unless got and want are equal JSON. */
static inline void assert_json_eq(const json_t *got, const json_t *want) {
  if (json_equal(got, want)) return;
  char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS);
  char *w = json_dumps(want, JSON_ENCODE_ANY | JSON_SORT_KEYS);
  print_error("got  %s\nwant %s\n", g ? g : "NULL", w ? w : "NULL");
  sb_free(g);
  sb_free(w);
  fail();
}

#endif
