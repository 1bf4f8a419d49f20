/* test_json_write.c: sb_json_dumps and sb_json_dumpb (src/core/json_write.c)
 * against jansson's own dump. Without a real that needs 17 digits the text
 * is jansson's, byte for byte, whatever the flags; a real is written in
 * the fewest digits that read back as the same double, never longer than
 * jansson's, and text inside strings is never touched. Compact text is
 * written by json_write.c's own walk, anything else through jansson's
 * callback: JSON_REAL_PRECISION(17) (jansson's default) takes the long
 * way to the same text, so the two are compared too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static const size_t FLAG_SETS[] = {
    0,
    JSON_COMPACT,
    JSON_COMPACT | JSON_SORT_KEYS,
    JSON_INDENT(2) | JSON_PRESERVE_ORDER,
    JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH,
    JSON_COMPACT | JSON_ENCODE_ANY,
};

static void same_as_jansson(const char *text) {
  json_error_t jerr;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
  if (!v) fail_msg("bad test input %s: %s", text, jerr.text);
  for (size_t i = 0; i < sizeof FLAG_SETS / sizeof FLAG_SETS[0]; i++) {
    size_t flags =
        FLAG_SETS[i] |
        (json_is_object(v) || json_is_array(v) ? 0 : JSON_ENCODE_ANY);
    char *want = json_dumps(v, flags), *got = sb_json_dumps(v, flags);
    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    sb_free(want);
    sb_free(got);
  }
  json_decref(v);
}

/* The direct walk and jansson's callback give the same text. */
static void both_ways_agree(const json_t *v) {
  size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
  char *direct = sb_json_dumps(v, flags);
  char *callback = sb_json_dumps(v, flags | JSON_REAL_PRECISION(17));
  assert_non_null(direct);
  assert_non_null(callback);
  assert_string_equal(direct, callback);
  sb_free(direct);
  sb_free(callback);
}

/* Strings and keys that look like reals, quotes and escapes of every
 * kind, integers of every length, exact reals: jansson's text. */
static void text_without_long_reals_is_jansson_s(void **state) {
  (void)state;
  same_as_jansson("{\"a\":\"0.20000000000000001\",\"0.10000000000000001\":1}");
  same_as_jansson(
      "[\"\\\"\",\"0.30000000000000004\\\"\",\"\\\"1.1000000000000001\"]");
  same_as_jansson("{\"q\":\"a\\\"b\\\\c\\n\\u0001\\/é\u2028\",\"n\":null}");
  same_as_jansson("[0,-1,12345678901234567,-9223372036854775807,true,false]");
  same_as_jansson("[0.5,0.25,-2.5,1.0,100.0,1e22,0.0,-0.0]");
  same_as_jansson(
      "{\"deep\":[[[{\"x\":[1,{\"y\":\"z\"}]}]]],\"e\":{},\"f\":[]}");
  same_as_jansson("\"12345678901234567.0\"");
  same_as_jansson("42");
}

/* Every control character, DEL, UTF-8 of two, three and four bytes, in
 * keys and values, keys with a NUL, the integers at both ends. */
static void compact_text_is_jansson_s(void **state) {
  (void)state;
  static const char tail[] = "\x7f\"\\/\xc3\xa9\xe2\x80\xa8\xf0\x9f\x9a\x97";
  char raw[32 + sizeof tail];
  for (int c = 0; c < 32; c++)
    raw[c] = (char)c;
  memcpy(raw + 32, tail, sizeof tail);
  json_t *v = json_object();
  json_object_set_new(v, "k\x01\"\\\n",
                      json_stringn(raw, 32 + sizeof tail - 1));
  json_object_setn_new(v, "nul\0key", 7, json_stringn("a\0b", 3));
  json_object_set_new(v, "min", json_integer(INT64_MIN));
  json_object_set_new(v, "max", json_integer(INT64_MAX));
  json_object_set_new(v, "a", json_pack("[{}[]{s[]}nbbi]", "x", 1, 0, -7));
  size_t sets[] = {JSON_COMPACT, JSON_COMPACT | JSON_ENCODE_ANY};
  for (size_t i = 0; i < 2; i++) {
    char *want = json_dumps(v, sets[i]), *got = sb_json_dumps(v, sets[i]);
    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    sb_free(want);
    sb_free(got);
  }
  both_ways_agree(v);
  json_decref(v);
}

/* A string that is not UTF-8 (jansson's nocheck constructors take
 * anything) fails the dump, as a value fails jansson's: overlong forms,
 * surrogates, past U+10FFFF, cut-off sequences, stray continuations. As a
 * key too, where jansson 2.14 writes broken text ({":null}). */
static void text_that_is_not_utf8_is_refused(void **state) {
  (void)state;
  static const char *bad[] = {
      "\xc0\x80",         "\xc1\xbf",         "\xe0\x9f\xbf", "\xed\xa0\x80",
      "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82",     "\x80",
      "a\xff\x62"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *in_value = json_pack("{so}", "k", json_string_nocheck(bad[i]));
    assert_null(json_dumps(in_value, JSON_COMPACT));
    json_t *in_key = json_object();
    json_object_set_new_nocheck(in_key, bad[i], json_null());
    json_t *trees[] = {in_value, in_key};
    for (size_t t = 0; t < 2; t++) {
      assert_null(sb_json_dumps(trees[t], JSON_COMPACT));
      assert_int_equal(sb_json_dumpb(trees[t], NULL, 0, JSON_COMPACT), 0);
    }
    json_decref(in_value);
    json_decref(in_key);
  }
}

/* Past the walk's depth jansson writes the text, from the start. */
static void a_deep_tree_is_written_whole(void **state) {
  (void)state;
  json_t *top = json_array(), *at = top;
  for (int i = 0; i < 700; i++) {
    json_t *next = i % 2 ? json_array() : json_object();
    if (json_is_array(at))
      json_array_append_new(at, next);
    else
      json_object_set_new(at, "k", next);
    at = next;
  }
  json_array_append_new(top, json_real(0.1));
  char *want = json_dumps(top, JSON_COMPACT),
       *got = sb_json_dumps(top, JSON_COMPACT);
  assert_non_null(want);
  assert_non_null(got);
  assert_int_equal(strlen(got),
                   strlen(want) - strlen("0.10000000000000001") + 3);
  assert_string_equal(got + strlen(got) - 8, "}]},0.1]");
  sb_free(want);
  sb_free(got);
  json_decref(top);
}

static char *dump(json_t *v) {
  char *s = sb_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(v);
  assert_non_null(s);
  return s;
}

static void assert_real_text(double d, const char *want) {
  char *s = dump(json_real(d));
  assert_string_equal(s, want);
  sb_free(s);
}

static void reals_take_the_fewest_digits(void **state) {
  (void)state;
  assert_real_text(0.2, "0.2");
  assert_real_text(0.1, "0.1");
  assert_real_text(19.99, "19.99");
  assert_real_text(-432.17, "-432.17");
  assert_real_text(0.1 + 0.2, "0.30000000000000004"); /* needs all 17 */
  assert_real_text(1.0, "1.0");
  assert_real_text(1e16, "1e16");     /* jansson: 10000000000000000.0 */
  assert_real_text(1.1e-7, "1.1e-7"); /* jansson: 1.0999999999999999e-07 */
  assert_real_text(2.2e22, "2.2e22");
  assert_real_text(-3.3e-300, "-3.3e-300");
  assert_real_text(1e300, "1e300"); /* jansson: 1.0000000000000001e300 */
  /* inside a message: the string beside it kept as it is */
  char *s =
      dump(json_pack("{sfss}", "temperature", 0.2, "t", "0.20000000000000001"));
  assert_string_equal(s, "{\"temperature\":0.2,\"t\":\"0.20000000000000001\"}");
  sb_free(s);
}

/* Any double reads back as itself, in no more bytes than jansson's. */
static void every_real_reads_back_as_itself(void **state) {
  (void)state;
  uint64_t x = 0x9e3779b97f4a7c15u;
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    double d;
    uint64_t bits = i % 2 ? x
                          : (x & 0x800fffffffffffffu) |
                                ((uint64_t)(1023 + (int)(x % 40) - 20) << 52);
    memcpy(&d, &bits, sizeof d);
    if (!isfinite(d)) continue;
    if (i % 3 == 0) d = (double)(x % 100000) / 100.0; /* prices */
    json_t *v = json_real(d);
    both_ways_agree(v);
    char *mine = sb_json_dumps(v, JSON_ENCODE_ANY);
    char *theirs = json_dumps(v, JSON_ENCODE_ANY);
    json_decref(v);
    assert_non_null(mine);
    assert_non_null(theirs);
    json_t *back = json_loads(mine, JSON_DECODE_ANY, NULL);
    if (!json_is_real(back) ||
        memcmp(&(double){json_real_value(back)}, &d, sizeof d) != 0)
      fail_msg("%s (jansson: %s) does not read back as itself", mine, theirs);
    if (strlen(mine) > strlen(theirs))
      fail_msg("%s is longer than jansson's %s", mine, theirs);
    json_decref(back);
    sb_free(mine);
    sb_free(theirs);
  }
}

/* As json_dumpb: the whole length, and as much as fits written. */
static void dumpb_counts_past_the_buffer(void **state) {
  (void)state;
  json_t *v = json_pack("{sfss}", "p", 19.99, "s", "0.1");
  char whole[64], part[8];
  size_t n = sb_json_dumpb(v, whole, sizeof whole, JSON_COMPACT);
  assert_int_equal(n, strlen("{\"p\":19.99,\"s\":\"0.1\"}"));
  assert_memory_equal(whole, "{\"p\":19.99,\"s\":\"0.1\"}", n);
  assert_int_equal(sb_json_dumpb(v, part, sizeof part, JSON_COMPACT), n);
  assert_memory_equal(part, whole, sizeof part);
  assert_int_equal(sb_json_dumpb(v, NULL, 0, JSON_COMPACT), n);
  /* a long one goes through the heap */
  json_t *big = json_array();
  for (int i = 0; i < 2000; i++)
    json_array_append_new(big, json_real(0.1 * i));
  char *s = sb_json_dumps(big, JSON_COMPACT);
  assert_non_null(s);
  assert_true(strlen(s) > 4096);
  assert_non_null(strstr(s, ",0.30000000000000004,0.4,0.5,"));
  sb_free(s);
  json_decref(big);
  /* what jansson will not dump, neither does this */
  json_t *str = json_string("x");
  assert_null(sb_json_dumps(str, JSON_COMPACT));
  assert_int_equal(sb_json_dumpb(str, whole, sizeof whole, JSON_COMPACT), 0);
  json_decref(str);
  json_decref(v);
}

/* sb_json_dump_to: the caller's buffer while the text fits it with the
 * bytes reserved, else an allocation of the text's length plus them. */
static void dump_to_uses_the_buffer_while_it_fits(void **state) {
  (void)state;
  json_t *v = json_pack("{ss}", "k", "abcdef"); /* {"k":"abcdef"}: 14 bytes */
  char buf[16], *heap;
  size_t len = 0;
  char *text =
      sb_json_dump_to(v, JSON_COMPACT, buf, sizeof buf, 2, &len, &heap);
  assert_ptr_equal(text, buf);
  assert_null(heap);
  assert_int_equal(len, 14);
  assert_memory_equal(text, "{\"k\":\"abcdef\"}", 14);
  /* one byte more reserved: no longer fits */
  text = sb_json_dump_to(v, JSON_COMPACT, buf, sizeof buf, 3, &len, &heap);
  assert_non_null(heap);
  assert_ptr_equal(text, heap);
  assert_int_equal(len, 14);
  assert_memory_equal(text, "{\"k\":\"abcdef\"}", 14);
  text[14] = text[15] = text[16] = '\n'; /* the reserve is there */
  sb_free(heap);
  /* a scalar without JSON_ENCODE_ANY cannot be dumped */
  json_t *n = json_integer(1);
  assert_null(
      sb_json_dump_to(n, JSON_COMPACT, buf, sizeof buf, 0, &len, &heap));
  assert_null(heap);
  json_decref(n);
  json_decref(v);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(text_without_long_reals_is_jansson_s),
      cmocka_unit_test(compact_text_is_jansson_s),
      cmocka_unit_test(text_that_is_not_utf8_is_refused),
      cmocka_unit_test(a_deep_tree_is_written_whole),
      cmocka_unit_test(reals_take_the_fewest_digits),
      cmocka_unit_test(every_real_reads_back_as_itself),
      cmocka_unit_test(dumpb_counts_past_the_buffer),
      cmocka_unit_test(dump_to_uses_the_buffer_while_it_fits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
