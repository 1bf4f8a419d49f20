/* test_mcp_param_headers.c: tool parameters mirrored into HTTP headers
 * (src/mcp/param_headers.c, 2026-07-28 "Custom Headers from Tool
 * Parameters"): which declarations are valid, the headers a client sends,
 * what a server accepts, and the value encoding they share with Mcp-Name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "core/core.h"
#include "mcp/mcp.h"

static json_t *parse(const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, 0, &e);
  if (!v) fail_msg("bad JSON in the test: %s: %s", text, e.text);
  return v;
}

/* A schema with a region (string), a shard (integer) and a nested flag
 * (boolean) mirrored into headers, and a query that is not. */
static const char *const spanner =
    "{\"type\":\"object\",\"properties\":{"
    "\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
    "\"shard\":{\"type\":\"integer\",\"x-mcp-header\":\"Shard\"},"
    "\"opts\":{\"type\":\"object\",\"properties\":{"
    "\"dry\":{\"type\":\"boolean\",\"x-mcp-header\":\"Dry-Run\"}}},"
    "\"query\":{\"type\":\"string\"}}}";

static void check_rules(void **state) {
  (void)state;
  static const struct {
    const char *schema, *why; /* why NULL: valid */
  } cases[] = {
      {"{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}",
       NULL},
      {NULL, NULL}, /* the spanner schema */
      {"{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"number\","
       "\"x-mcp-header\":\"N\"}}}",
       "x-mcp-header at n: number: allowed only on a property of type "
       "string, integer or boolean"},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\","
       "\"x-mcp-header\":\"\"}}}",
       "x-mcp-header at a: expected a non-empty string"},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\","
       "\"x-mcp-header\":\"My Region\"}}}",
       "x-mcp-header at a: \"My Region\" is not an HTTP header name token "
       "(letters, digits and !#$%&'*+-.^_`|~)"},
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\","
       "\"x-mcp-header\":\"Region\"},\"b\":{\"type\":\"string\","
       "\"x-mcp-header\":\"REGION\"}}}",
       "x-mcp-header at b: \"REGION\" is declared twice (names are "
       "case-insensitive)"},
      {"{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\","
       "\"items\":{\"type\":\"string\",\"x-mcp-header\":\"L\"}}}}",
       "x-mcp-header at l: allowed only on a property reached from the root "
       "through `properties` alone"},
      {"{\"type\":\"object\",\"anyOf\":[{\"properties\":{\"a\":{\"type\":"
       "\"string\",\"x-mcp-header\":\"A\"}}}]}",
       "x-mcp-header at a: allowed only on a property reached from the root "
       "through `properties` alone"},
      {"{\"type\":\"object\",\"$defs\":{\"d\":{\"type\":\"string\","
       "\"x-mcp-header\":\"D\"}}}",
       "x-mcp-header at the schema's root: allowed only on a property "
       "reached from the root through `properties` alone"},
      {"{\"type\":\"object\",\"x-mcp-header\":\"Root\"}",
       "x-mcp-header at the schema's root: allowed only on a property "
       "reached from the root through `properties` alone"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    json_t *s = parse(cases[i].schema ? cases[i].schema : spanner);
    sb_error err = {0};
    int rc = sb_mcp_tool_headers_check(s, &err);
    if (cases[i].why ? rc != SB_EINVAL || strcmp(err.msg, cases[i].why) != 0
                     : rc != 0)
      fail_msg("case %zu: rc %d\n got  %s\n want %s", i, rc, err.msg,
               cases[i].why ? cases[i].why : "valid");
    json_decref(s);
  }
  json_t *s = parse(spanner);
  assert_int_equal(sb_mcp_tool_headers_declared(s), 1);
  json_decref(s);
  /* nesting is bounded through any keyword, not `properties` alone */
  s = json_pack("{ss}", "type", "object");
  json_t *at = s;
  for (int i = 0; i < 100; i++) {
    json_t *inner = json_object();
    json_object_set_new(at, "items", inner);
    at = inner;
  }
  sb_error err = {0};
  assert_int_equal(sb_mcp_tool_headers_check(s, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "nested too deeply"));
  json_decref(s);
  s = parse("{\"type\":\"object\"}");
  assert_int_equal(sb_mcp_tool_headers_declared(s), 0);
  json_decref(s);
}

static void encode_and_decode(void **state) {
  (void)state;
  static const struct {
    const char *value, *encoded;
  } cases[] = {
      {"us-west1", "us-west1"},
      {"Hello, \xe4\xb8\x96\xe7\x95\x8c", "=?base64?SGVsbG8sIOS4lueVjA==?="},
      {" padded ", "=?base64?IHBhZGRlZCA=?="},
      {"line1\nline2", "=?base64?bGluZTEKbGluZTI=?="},
      {"=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *e = sb_mcp_header_encode(cases[i].value);
    assert_string_equal(e, cases[i].encoded);
    char *d = sb_mcp_header_decode(e);
    assert_string_equal(d, cases[i].value);
    sb_free(e);
    sb_free(d);
  }
  /* broken base64, base64 of bytes that are not UTF-8, a raw control */
  assert_null(sb_mcp_header_decode("=?base64?!!!?="));
  assert_null(sb_mcp_header_decode("=?base64?/w==?="));
  assert_null(sb_mcp_header_decode("a\rb"));
  /* plain values are visible ASCII, space and tab only: raw UTF-8 or DEL
   * must come base64-encoded */
  assert_null(sb_mcp_header_decode("caf\xc3\xa9"));
  assert_null(sb_mcp_header_decode("a\x7f"));
  char *tab = sb_mcp_header_decode("a\tb ~");
  assert_string_equal(tab, "a\tb ~");
  sb_free(tab);
}

static void headers_for_arguments(void **state) {
  (void)state;
  json_t *s = parse(spanner);
  json_t *args = parse("{\"region\":\"eu \xc3\xa9\",\"shard\":42,"
                       "\"opts\":{\"dry\":true},\"query\":\"SELECT 1\"}");
  json_t *h = sb_mcp_tool_headers_for(s, args);
  json_t *want = parse("{\"Mcp-Param-Region\":\"=?base64?ZXUgw6k=?=\","
                       "\"Mcp-Param-Shard\":\"42\","
                       "\"Mcp-Param-Dry-Run\":\"true\"}");
  assert_true(json_equal(h, want));
  json_decref(h);
  json_decref(want);
  json_decref(args);
  /* null and absent values have no header; nothing at all is NULL */
  args = parse("{\"region\":null,\"query\":\"x\"}");
  assert_null(sb_mcp_tool_headers_for(s, args));
  json_decref(args);
  /* an integer past 2^53 - 1 has none either */
  args = parse("{\"shard\":9007199254740993}");
  assert_null(sb_mcp_tool_headers_for(s, args));
  json_decref(args);
  json_decref(s);
}

static const char *lookup(void *ud, const char *name) {
  const char *v = json_string_value(json_object_get(ud, name));
  return v;
}

static int verify(const char *schema, const char *args, const char *headers,
                  sb_error *err) {
  json_t *s = parse(schema), *a = parse(args), *h = parse(headers);
  int rc = sb_mcp_tool_headers_verify(s, a, lookup, h, err);
  json_decref(s);
  json_decref(a);
  json_decref(h);
  return rc;
}

static void server_verifies(void **state) {
  (void)state;
  sb_error err = {0};
  const char *args = "{\"region\":\"us-west1\",\"shard\":42,\"query\":\"x\"}";
  assert_int_equal(verify(spanner, args,
                          "{\"Mcp-Param-Region\":\"us-west1\","
                          "\"Mcp-Param-Shard\":\"42\"}",
                          &err),
                   0);
  /* integers as numbers: 42.0 is 42; base64 decoded before comparing */
  assert_int_equal(verify(spanner, args,
                          "{\"Mcp-Param-Region\":\"=?base64?dXMtd2VzdDE=?=\","
                          "\"Mcp-Param-Shard\":\"42.0\"}",
                          &err),
                   0);
  assert_int_equal(verify(spanner, args, "{\"Mcp-Param-Shard\":\"42\"}", &err),
                   SB_RPC_HEADER_MISMATCH);
  assert_string_equal(err.msg, "Header mismatch: the Mcp-Param-Region header "
                               "is required (the arguments carry us-west1)");
  assert_int_equal(verify(spanner, args,
                          "{\"Mcp-Param-Region\":\"us-east1\","
                          "\"Mcp-Param-Shard\":\"42\"}",
                          &err),
                   SB_RPC_HEADER_MISMATCH);
  assert_string_equal(err.msg,
                      "Header mismatch: the Mcp-Param-Region header value "
                      "'us-east1' does not match the arguments' 'us-west1'");
  assert_int_equal(verify(spanner, args,
                          "{\"Mcp-Param-Region\":\"=?base64?***?=\","
                          "\"Mcp-Param-Shard\":\"42\"}",
                          &err),
                   SB_RPC_HEADER_MISMATCH);
  assert_non_null(strstr(err.msg, "not valid"));
  /* a value the arguments do not carry: its header is not expected */
  assert_int_equal(verify(spanner, "{\"shard\":7,\"region\":null}",
                          "{\"Mcp-Param-Shard\":\"7\"}", &err),
                   0);
  /* ...and one sent all the same says what the body does not */
  assert_int_equal(verify(spanner, "{\"shard\":7,\"region\":null}",
                          "{\"Mcp-Param-Shard\":\"7\","
                          "\"Mcp-Param-Region\":\"x\"}",
                          &err),
                   SB_RPC_HEADER_MISMATCH);
  assert_string_equal(err.msg,
                      "Header mismatch: the Mcp-Param-Region header "
                      "is sent but the arguments have no value for it");
  /* a raw non-ASCII value is refused, not compared */
  assert_int_equal(verify(spanner, "{\"region\":\"\xc3\xa9\",\"shard\":1}",
                          "{\"Mcp-Param-Region\":\"\xc3\xa9\","
                          "\"Mcp-Param-Shard\":\"1\"}",
                          &err),
                   SB_RPC_HEADER_MISMATCH);
  assert_non_null(strstr(err.msg, "not valid"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(check_rules),
      cmocka_unit_test(encode_and_decode),
      cmocka_unit_test(headers_for_arguments),
      cmocka_unit_test(server_verifies),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
