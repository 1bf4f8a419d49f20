/* test_json_read.c: the single-pass JSON reader (src/core/json_read.c)
 * against jansson's own parser. What the reader accepts must be jansson's
 * tree exactly (equal, and dumping to the same bytes); what it declines,
 * sb_json_loadb hands to jansson, so the verdict and the error message are
 * jansson's. tests/fuzz/fuzz_json.c checks the same on any input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "core/core.h"

static const size_t RPC_FLAGS = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY;

/* Both parsers' trees are the same value and dump to the same text. */
static void assert_same_tree(const char *text, size_t len, json_t *fast,
                             size_t flags) {
  json_error_t jerr;
  json_t *slow = json_loadb(text, len, flags, &jerr);
  if (!slow)
    fail_msg("the reader accepted %.*s, jansson refuses it: %s", (int)len,
             text, jerr.text);
  if (!json_equal(fast, slow)) fail_msg("trees differ for %.*s", (int)len, text);
  size_t dump = JSON_COMPACT | JSON_ENCODE_ANY;
  char *a = json_dumps(fast, dump), *b = json_dumps(slow, dump);
  assert_non_null(a);
  assert_non_null(b);
  assert_string_equal(a, b);
  sb_free(a);
  sb_free(b);
  json_decref(slow);
}

static void accepts(const char *text, size_t flags) {
  json_t *fast = sb_json_read_fast(text, strlen(text), flags);
  if (!fast) fail_msg("the reader declined %s", text);
  assert_same_tree(text, strlen(text), fast, flags);
  json_decref(fast);
}

/* Declined by the reader; sb_json_loadb answers exactly as jansson, but
 * for the message that names jansson's flag. */
static void declines_len(const char *text, size_t len, size_t flags) {
  json_t *fast = sb_json_read_fast(text, len, flags);
  if (fast) fail_msg("the reader took %.*s; it should decline", (int)len, text);
  json_error_t e1, e2;
  json_t *ours = sb_json_loadb(text, len, flags, &e1);
  json_t *theirs = json_loadb(text, len, flags, &e2);
  assert_int_equal(ours != NULL, theirs != NULL);
  if (ours) {
    assert_true(json_equal(ours, theirs));
  } else {
    if (strstr(e2.text, "JSON_ALLOW_NUL"))
      assert_string_equal(e1.text, "\\u0000 is not allowed in a string");
    else
      assert_string_equal(e1.text, e2.text);
    assert_int_equal(e1.line, e2.line);
    assert_int_equal(e1.column, e2.column);
  }
  json_decref(ours);
  json_decref(theirs);
}

static void declines(const char *text, size_t flags) {
  declines_len(text, strlen(text), flags);
}

static void reads_messages_as_jansson_does(void **state) {
  (void)state;
  static const char *const texts[] = {
      "{\"jsonrpc\":\"2.0\",\"id\":12345,\"method\":\"tools/call\",\"params\":"
      "{\"name\":\"echo\",\"arguments\":{\"text\":\"hello\"},\"_meta\":{"
      "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}",
      "{}",
      "[]",
      " \t\r\n{ \"a\" : [ 1 , -2 , 0 , -0 , 3.25 , -1e3 , 2E+2 , 5e-1 ] }\n ",
      "[true,false,null,\"\",{},[]]",
      "[123456789012345678,-123456789012345678]",
      "[0.1,1.7976931348623157e308,2.2250738585072014e-308,1e22]",
      "{\"k\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x97\"}",
      "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
      "[\"\\u00e9\\u20AC\\ud83d\\ude97\\u0041\\u007f\"]",
      "{\"\\u00e9t\\u00e9\":1,\"a\\nb\":2}",
      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
      "{\"z\":1,\"a\":2,\"m\":{\"y\":[],\"b\":{}}}",
      "[\"\x7f\"]",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    accepts(texts[i], RPC_FLAGS);
    accepts(texts[i], 0);
  }
  /* scalars only with JSON_DECODE_ANY, as jansson */
  accepts("42", JSON_DECODE_ANY);
  accepts(" \"x\" ", JSON_DECODE_ANY);
  accepts("null", JSON_DECODE_ANY);
  declines("42", 0);
  declines("\"x\"", JSON_REJECT_DUPLICATES);
}

static void long_escaped_string_decodes_off_the_stack(void **state) {
  (void)state;
  /* past the reader's 512-byte stack buffer for escaped strings */
  size_t n = 3000;
  char *text = sb_malloc(n * 2 + 8);
  assert_non_null(text);
  size_t len = 0;
  text[len++] = '[';
  text[len++] = '"';
  for (size_t i = 0; i < n; i++) {
    text[len++] = '\\';
    text[len++] = "nt\"\\"[i % 4];
  }
  text[len++] = '"';
  text[len++] = ']';
  text[len] = '\0';
  accepts(text, RPC_FLAGS);
  sb_free(text);
}

static void declines_what_jansson_must_answer(void **state) {
  (void)state;
  /* valid for jansson, but outside what the reader answers itself */
  declines("[1234567890123456789]", RPC_FLAGS);  /* 19 digits */
  declines("[9223372036854775807]", RPC_FLAGS);  /* INT64_MAX */
  declines("[1e-320]", RPC_FLAGS);               /* strtod underflows */
  declines("{\"a\":1,\"a\":2}", 0);              /* last one wins */
  declines("[\"\\u0000\"]", JSON_ALLOW_NUL);     /* a flag it leaves */
  /* refused by jansson, with its message */
  static const char *const bad[] = {
      "",
      "   ",
      "{",
      "[1,]",
      "{\"a\":1,}",
      "{\"a\" 1}",
      "{a:1}",
      "[01]",
      "[1.]",
      "[.5]",
      "[+1]",
      "[-]",
      "[1e]",
      "[1e+]",
      "[tru]",
      "[nulls]",
      "{} x",
      "[1] [2]",
      "[\"\\u0000\"]",
      "[\"\\ud800\"]",
      "[\"\\udc00\"]",
      "[\"\\ud800\\u0041\"]",
      "[\"\\x\"]",
      "[\"\\u12g4\"]",
      "[\"tab\there\"]",
      "[\"\xc3\"]",
      "[\"\xc0\xaf\"]",
      "[\"\xed\xa0\x80\"]",
      "[\"\xf4\x90\x80\x80\"]",
      "[\"\xff\"]",
      "[\"unterminated]",
      "[1e400]",
      "{\"a\":1,\"a\":2}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    declines(bad[i], RPC_FLAGS);
  /* an embedded NUL, and text that stops inside an escape */
  declines_len("[\"a\0b\"]", 7, RPC_FLAGS);
  declines_len("[\"\\", 3, RPC_FLAGS);
  declines_len("[\"\\u00", 6, RPC_FLAGS);
}

static void deep_nesting_goes_to_jansson(void **state) {
  (void)state;
  /* 300 levels: past the reader's 256, within jansson's 2048 */
  char text[602];
  memset(text, '[', 300);
  memset(text + 300, ']', 300);
  text[600] = '\0';
  declines(text, RPC_FLAGS);
}

static void depth_limit_declines_deeper_text(void **state) {
  (void)state;
  const char *three = "{\"a\":[{\"b\":1}]}";
  json_t *v = sb_json_read_fast_within(three, strlen(three), RPC_FLAGS, 3);
  assert_non_null(v);
  assert_same_tree(three, strlen(three), v, RPC_FLAGS);
  json_decref(v);
  assert_null(sb_json_read_fast_within(three, strlen(three), RPC_FLAGS, 2));
  assert_null(sb_json_read_fast_within(three, strlen(three), RPC_FLAGS, 0));
  /* a limit past the reader's own (256) is the reader's */
  char text[602];
  memset(text, '[', 300);
  memset(text + 300, ']', 300);
  assert_null(sb_json_read_fast_within(text, 600, RPC_FLAGS, 1000));
  v = sb_json_read_fast_within(text + 44, 512, RPC_FLAGS, 1000); /* 256 */
  assert_non_null(v);
  json_decref(v);
  assert_null(sb_json_read_fast_within(text + 44, 512, RPC_FLAGS, 255));
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_messages_as_jansson_does),
      cmocka_unit_test(long_escaped_string_decodes_off_the_stack),
      cmocka_unit_test(declines_what_jansson_must_answer),
      cmocka_unit_test(deep_nesting_goes_to_jansson),
      cmocka_unit_test(depth_limit_declines_deeper_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
