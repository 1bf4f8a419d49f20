/* test_rpc.c: JSON-RPC parsing, classification and builders (src/rpc/rpc.c).
 *
 * Every malformed-message case checks both the JSON-RPC code and that the
 * message names the offending member, because the message is what a client
 * developer reads when their request is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "rpc/rpc.h"

/* ---- helpers ---------------------------------------------------------- */

/* Parse text that must be accepted; returns a new reference. */
static json_t *parse_ok(const char *text) {
  json_t *root = NULL;
  sb_error err = {0};
  int rc = sb_rpc_parse(text, strlen(text), NULL, &root, &err);
  if (rc != 0) fail_msg("parse of %s failed: %d %s", text, rc, err.msg);
  assert_non_null(root);
  return root;
}

/* Parse text that must be refused; returns the code, fills err. */
static int parse_fail(const char *text, const sb_rpc_limits *limits,
                      sb_error *err) {
  json_t *root = (json_t *)1; /* must be reset to NULL on failure */
  int rc = sb_rpc_parse(text, strlen(text), limits, &root, err);
  assert_int_not_equal(rc, 0);
  assert_null(root);
  assert_int_equal(err->code, rc);
  return rc;
}

/* Parse + classify text that must classify cleanly. Caller decrefs
 * msg->root. */
static void classify_ok(const char *text, sb_rpc_msg *msg) {
  json_t *root = parse_ok(text);
  sb_error err = {0};
  int rc = sb_rpc_classify(root, msg, &err);
  if (rc != 0) fail_msg("classify of %s failed: %s", text, err.msg);
  assert_ptr_equal(msg->root, root);
}

/* Parse + classify text whose classification must fail with
 * SB_RPC_INVALID_REQUEST and a message containing `needle`. */
static void classify_fail(const char *text, const char *needle) {
  json_t *root = parse_ok(text);
  sb_rpc_msg msg;
  sb_error err = {0};
  int rc = sb_rpc_classify(root, &msg, &err);
  if (rc != SB_RPC_INVALID_REQUEST)
    fail_msg("classify of %s: expected -32600, got %d", text, rc);
  assert_int_equal(err.code, SB_RPC_INVALID_REQUEST);
  if (!strstr(err.msg, needle))
    fail_msg("classify of %s: message \"%s\" does not mention \"%s\"", text,
             err.msg, needle);
  json_decref(root);
}

/* Compare a built message's compact dump to the exact expected text, then
 * release the message. */
static void assert_dump(json_t *msg, const char *expected) {
  assert_non_null(msg);
  size_t len = 0;
  char *s = sb_rpc_dump(msg, &len);
  assert_non_null(s);
  assert_string_equal(s, expected);
  assert_int_equal(len, strlen(expected));
  sb_free(s);
  json_decref(msg);
}

/* ---- classification of valid messages --------------------------------- */

static void request_with_integer_id(void **state) {
  (void)state;
  sb_rpc_msg m;
  classify_ok("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\","
              "\"params\":{\"cursor\":\"abc\"}}",
              &m);
  assert_int_equal(m.kind, SB_RPC_REQUEST);
  assert_true(json_is_integer(m.id));
  assert_int_equal(json_integer_value(m.id), 7);
  assert_string_equal(m.method, "tools/list");
  assert_true(json_is_object(m.params));
  assert_string_equal(json_string_value(json_object_get(m.params, "cursor")),
                      "abc");
  assert_null(m.result);
  assert_null(m.error);
  json_decref(m.root);
}

static void request_with_string_id_no_params(void **state) {
  (void)state;
  sb_rpc_msg m;
  classify_ok("{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"method\":\"ping\"}", &m);
  assert_int_equal(m.kind, SB_RPC_REQUEST);
  assert_string_equal(json_string_value(m.id), "req-1");
  assert_string_equal(m.method, "ping");
  assert_null(m.params);
  json_decref(m.root);
}

static void request_with_negative_and_zero_ids(void **state) {
  (void)state;
  sb_rpc_msg m;
  classify_ok("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"ping\"}", &m);
  assert_int_equal(json_integer_value(m.id), 0);
  json_decref(m.root);
  classify_ok("{\"jsonrpc\":\"2.0\",\"id\":-5,\"method\":\"ping\"}", &m);
  assert_int_equal(json_integer_value(m.id), -5);
  json_decref(m.root);
  classify_ok("{\"jsonrpc\":\"2.0\",\"id\":\"\",\"method\":\"ping\"}", &m);
  assert_string_equal(json_string_value(m.id), "");
  json_decref(m.root);
}

static void notification(void **state) {
  (void)state;
  sb_rpc_msg m;
  classify_ok("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
              "\"params\":{\"requestId\":3}}",
              &m);
  assert_int_equal(m.kind, SB_RPC_NOTIFICATION);
  assert_null(m.id);
  assert_string_equal(m.method, "notifications/cancelled");
  assert_non_null(m.params);
  json_decref(m.root);
}

static void result_response(void **state) {
  (void)state;
  sb_rpc_msg m;
  classify_ok("{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"result\":{\"ok\":true}}",
              &m);
  assert_int_equal(m.kind, SB_RPC_RESPONSE);
  assert_string_equal(json_string_value(m.id), "s1");
  assert_null(m.method);
  assert_true(json_is_object(m.result));
  assert_null(m.error);
  json_decref(m.root);
}

static void error_response(void **state) {
  (void)state;
  sb_rpc_msg m;
  classify_ok("{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32601,"
              "\"message\":\"Method not found\",\"data\":{\"m\":\"x\"}}}",
              &m);
  assert_int_equal(m.kind, SB_RPC_RESPONSE);
  assert_int_equal(json_integer_value(m.id), 4);
  assert_null(m.result);
  assert_int_equal(json_integer_value(json_object_get(m.error, "code")),
                   -32601);
  json_decref(m.root);
}

/* MCP makes the id optional on error responses, and JSON-RPC peers send
 * "id": null when they could not read the request's id (our own
 * sb_rpc_error_new does too). Both must classify as responses. */
static void error_response_without_id(void **state) {
  (void)state;
  sb_rpc_msg m;
  classify_ok("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,"
              "\"message\":\"Parse error\"}}",
              &m);
  assert_int_equal(m.kind, SB_RPC_RESPONSE);
  assert_null(m.id);
  json_decref(m.root);
  classify_ok("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
              "\"message\":\"Parse error\"}}",
              &m);
  assert_int_equal(m.kind, SB_RPC_RESPONSE);
  assert_null(m.id);
  assert_non_null(m.error);
  json_decref(m.root);
}

static void own_error_builder_output_classifies(void **state) {
  (void)state;
  json_t *e = sb_rpc_error_new(NULL, SB_RPC_PARSE_ERROR, NULL, NULL);
  assert_non_null(e);
  sb_rpc_msg m;
  sb_error err = {0};
  assert_int_equal(sb_rpc_classify(e, &m, &err), 0);
  assert_int_equal(m.kind, SB_RPC_RESPONSE);
  json_decref(e);
}

/* ---- ids ---------------------------------------------------------------- */

static void id_null_rejected(void **state) {
  (void)state;
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", "id");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}", "id");
}

static void id_float_rejected(void **state) {
  (void)state;
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", "id");
  /* 1.0 is a real in JSON terms, not an integer. */
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1.0,\"method\":\"ping\"}", "id");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1e3,\"method\":\"ping\"}", "id");
}

static void id_bool_rejected(void **state) {
  (void)state;
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", "id");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":false,\"result\":{}}", "id");
}

static void id_object_and_array_rejected(void **state) {
  (void)state;
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"ping\"}",
                "id");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}", "id");
}

static void id_valid_predicate(void **state) {
  (void)state;
  json_t *vals[] = {json_integer(1), json_string("x"), json_null(),
                    json_real(1.0),  json_true(),      json_object()};
  int expect[] = {1, 1, 0, 0, 0, 0};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    assert_int_equal(!!sb_rpc_id_valid(vals[i]), expect[i]);
    json_decref(vals[i]);
  }
  assert_false(sb_rpc_id_valid(NULL));
}

/* An id that could be read is reported even when the message is refused, so
 * the error response can carry it. */
static void id_kept_on_invalid_request(void **state) {
  (void)state;
  json_t *root = parse_ok("{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":17}");
  sb_rpc_msg m;
  sb_error err = {0};
  assert_int_equal(sb_rpc_classify(root, &m, &err), SB_RPC_INVALID_REQUEST);
  assert_non_null(m.id);
  assert_int_equal(json_integer_value(m.id), 42);
  json_decref(root);

  root = parse_ok("{\"jsonrpc\":\"1.0\",\"id\":\"abc\",\"method\":\"x\"}");
  assert_int_equal(sb_rpc_classify(root, &m, &err), SB_RPC_INVALID_REQUEST);
  assert_string_equal(json_string_value(m.id), "abc");
  json_decref(root);
}

/* ---- envelope errors ---------------------------------------------------- */

static void jsonrpc_wrong_or_missing(void **state) {
  (void)state;
  classify_fail("{\"id\":1,\"method\":\"ping\"}", "jsonrpc");
  classify_fail("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}",
                "jsonrpc");
  classify_fail("{\"jsonrpc\":2.0,\"id\":1,\"method\":\"ping\"}", "jsonrpc");
  classify_fail("{\"jsonrpc\":\"2.0 \",\"id\":1,\"method\":\"ping\"}",
                "jsonrpc");
}

static void method_missing(void **state) {
  (void)state;
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1}", "method");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"params\":{}}", "method");
}

static void method_not_string_or_empty(void **state) {
  (void)state;
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", "method");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":null}", "method");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":[\"a\"]}", "method");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}", "method");
}

static void params_not_object(void **state) {
  (void)state;
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\","
                "\"params\":[1,2]}",
                "params");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\","
                "\"params\":\"s\"}",
                "params");
  classify_fail("{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":null}",
                "params");
}

static void result_and_error_together(void **state) {
  (void)state;
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},"
                "\"error\":{\"code\":1,\"message\":\"m\"}}",
                "result");
  /* A request carrying a result is neither. */
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\","
                "\"result\":{}}",
                "result");
}

static void malformed_error_object(void **state) {
  (void)state;
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"boom\"}", "error");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"message\":\"m\"}}",
                "code");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1.5,"
                "\"message\":\"m\"}}",
                "code");
  classify_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}",
                "message");
}

static void result_without_id(void **state) {
  (void)state;
  classify_fail("{\"jsonrpc\":\"2.0\",\"result\":{}}", "id");
}

static void classify_non_object(void **state) {
  (void)state;
  json_t *arr = json_array();
  sb_rpc_msg m;
  sb_error err = {0};
  assert_int_equal(sb_rpc_classify(arr, &m, &err), SB_RPC_INVALID_REQUEST);
  assert_non_null(strstr(err.msg, "object"));
  json_decref(arr);
}

static void classify_null_err_is_allowed(void **state) {
  (void)state;
  json_t *root = parse_ok("{\"id\":1}");
  sb_rpc_msg m;
  assert_int_equal(sb_rpc_classify(root, &m, NULL), SB_RPC_INVALID_REQUEST);
  json_decref(root);
}

/* ---- parse limits and malformed input ----------------------------------- */

static void malformed_json_reports_position(void **state) {
  (void)state;
  sb_error err = {0};
  const char *text = "{\"jsonrpc\":\"2.0\",\n \"id\": 1,\n \"method\": }";
  assert_int_equal(parse_fail(text, NULL, &err), SB_RPC_PARSE_ERROR);
  /* the bad token is on the third line */
  assert_non_null(strstr(err.msg, "line 3"));
  assert_non_null(strstr(err.msg, "column"));

  assert_int_equal(parse_fail("{\"a\":1", NULL, &err), SB_RPC_PARSE_ERROR);
  assert_non_null(strstr(err.msg, "line 1"));
  assert_int_equal(parse_fail("", NULL, &err), SB_RPC_PARSE_ERROR);
  assert_int_equal(parse_fail("{} {}", NULL, &err), SB_RPC_PARSE_ERROR);
  assert_int_equal(parse_fail("{'a':1}", NULL, &err), SB_RPC_PARSE_ERROR);
  assert_int_equal(parse_fail("{\"a\":1,}", NULL, &err), SB_RPC_PARSE_ERROR);
}

static void invalid_utf8_and_nul(void **state) {
  (void)state;
  sb_error err = {0};
  assert_int_equal(parse_fail("{\"a\":\"\xff\xfe\"}", NULL, &err),
                   SB_RPC_PARSE_ERROR);
  assert_int_equal(parse_fail("{\"a\":\"\\ud800\"}", NULL, &err),
                   SB_RPC_PARSE_ERROR);
  /* A raw NUL inside the byte range must not truncate the input silently. */
  const char with_nul[] = "{\"a\":1}\0{\"b\":2}";
  json_t *root = (json_t *)1;
  int rc = sb_rpc_parse(with_nul, sizeof with_nul - 1, NULL, &root, &err);
  assert_int_equal(rc, SB_RPC_PARSE_ERROR);
  assert_null(root);
}

/* The parse error quotes the bytes near the fault; when they are not
 * UTF-8 the message is still text an error response can carry (found by
 * fuzz_mcp_server: the stdio server left such a line unanswered). */
static void parse_error_message_is_utf8(void **state) {
  (void)state;
  sb_error err = {0};
  assert_int_equal(parse_fail("{\"params-\\\xd6\x90\xc6\x01\xe0\"}", NULL,
                              &err),
                   SB_RPC_PARSE_ERROR);
  assert_non_null(strstr(err.msg, "invalid escape"));
  json_t *reply = sb_rpc_error_new(NULL, err.code, err.msg, NULL);
  assert_non_null(reply);
  json_decref(reply);
}

static void oversized_rejected_naming_limit(void **state) {
  (void)state;
  sb_rpc_limits lim = {.max_bytes = 32, .max_depth = 0};
  sb_error err = {0};
  const char *big =
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}"; /* 48 */
  assert_int_equal(parse_fail(big, &lim, &err), SB_RPC_INVALID_REQUEST);
  assert_non_null(strstr(err.msg, "32"));
  assert_non_null(strstr(err.msg, "limit"));

  /* exactly at the limit is accepted */
  lim.max_bytes = strlen(big);
  json_t *root = NULL;
  assert_int_equal(sb_rpc_parse(big, strlen(big), &lim, &root, &err), 0);
  json_decref(root);
}

static void default_limits_apply_when_zero(void **state) {
  (void)state;
  sb_rpc_limits lim = {0, 0};
  json_t *root = NULL;
  sb_error err = {0};
  assert_int_equal(sb_rpc_parse("{}", 2, &lim, &root, &err), 0);
  json_decref(root);
  /* 65 levels exceed the default depth of 64 */
  char deep[200];
  memset(deep, '[', 65);
  memset(deep + 65, ']', 65);
  deep[130] = '\0';
  assert_int_equal(parse_fail(deep, &lim, &err), SB_RPC_INVALID_REQUEST);
  deep[64] = ']';
  deep[129] = '\0'; /* 64 levels: fine */
  root = NULL;
  assert_int_equal(sb_rpc_parse(deep, 128, &lim, &root, &err), 0);
  assert_true(json_is_array(root));
  json_decref(root);
}

static void nesting_too_deep(void **state) {
  (void)state;
  sb_rpc_limits lim = {.max_bytes = 0, .max_depth = 4};
  sb_error err = {0};
  json_t *root = NULL;
  const char *four = "{\"a\":[{\"b\":[1]}]}";
  assert_int_equal(sb_rpc_parse(four, strlen(four), &lim, &root, &err), 0);
  json_decref(root);
  assert_int_equal(parse_fail("{\"a\":[{\"b\":[{}]}]}", &lim, &err),
                   SB_RPC_INVALID_REQUEST);
  assert_non_null(strstr(err.msg, "4"));
  assert_non_null(strstr(err.msg, "deep"));
  /* Unbalanced openers are refused before jansson ever recurses. */
  char hostile[10001];
  memset(hostile, '[', sizeof hostile - 1);
  hostile[sizeof hostile - 1] = '\0';
  assert_int_equal(parse_fail(hostile, NULL, &err), SB_RPC_INVALID_REQUEST);
}

static void brackets_inside_strings_do_not_count(void **state) {
  (void)state;
  sb_rpc_limits lim = {.max_bytes = 0, .max_depth = 2};
  json_t *root = NULL;
  sb_error err = {0};
  const char *text = "{\"jsonrpc\":\"2.0\",\"method\":\"[[[[{{{{\","
                     "\"params\":{\"t\":\"x\\\"[[[[\\\\\",\"u\":\"{{{{\"}}";
  int rc = sb_rpc_parse(text, strlen(text), &lim, &root, &err);
  if (rc != 0) fail_msg("rejected: %s", err.msg);
  sb_rpc_msg m;
  assert_int_equal(sb_rpc_classify(root, &m, &err), 0);
  assert_string_equal(m.method, "[[[[{{{{");
  assert_string_equal(json_string_value(json_object_get(m.params, "t")),
                      "x\"[[[[\\");
  json_decref(root);
}

static void duplicate_keys_rejected(void **state) {
  (void)state;
  sb_error err = {0};
  assert_int_equal(parse_fail("{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,"
                              "\"method\":\"x\"}",
                              NULL, &err),
                   SB_RPC_PARSE_ERROR);
  assert_non_null(strstr(err.msg, "id"));
  /* nested objects too */
  assert_int_equal(parse_fail("{\"params\":{\"a\":1,\"a\":1}}", NULL, &err),
                   SB_RPC_PARSE_ERROR);
}

static void top_level_scalar_rejected(void **state) {
  (void)state;
  const char *scalars[] = {"1", "\"ping\"", "null", "true", "3.5"};
  for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
    sb_error err = {0};
    int rc = parse_fail(scalars[i], NULL, &err);
    /* A well-formed value that is not a message is an Invalid Request, as
     * in the JSON-RPC 2.0 spec's own example ("--> 1"). */
    if (rc != SB_RPC_INVALID_REQUEST)
      fail_msg("%s: expected -32600, got %d (%s)", scalars[i], rc, err.msg);
    assert_non_null(strstr(err.msg, "object"));
  }
}

/* The document parser (REST bodies) applies the same limits. */
static void document_parser_same_limits(void **state) {
  (void)state;
  sb_rpc_limits lim = {64, 4};
  json_t *v = (json_t *)1;
  sb_error err = {0};
  assert_int_equal(sb_rpc_parse_document("[[[[[1]]]]]", 11, &lim, &v, &err),
                   SB_RPC_INVALID_REQUEST);
  assert_null(v);
  assert_non_null(strstr(err.msg, "limit of 4 levels"));
  const char *big = "{\"a\":\"0123456789012345678901234567890123456789"
                    "012345678901234567890123456789\"}";
  assert_int_equal(sb_rpc_parse_document(big, strlen(big), &lim, &v, &err),
                   SB_RPC_INVALID_REQUEST);
  const char *dup = "{\"a\":1,\"a\":2}";
  assert_int_equal(sb_rpc_parse_document(dup, strlen(dup), &lim, &v, &err),
                   SB_RPC_PARSE_ERROR);
  assert_int_equal(sb_rpc_parse_document("[[[1]]]", 7, &lim, &v, &err), 0);
  assert_true(json_is_array(v));
  json_decref(v);
}

static void batch_returned_as_array(void **state) {
  (void)state;
  json_t *root = parse_ok("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"},"
                          "{\"jsonrpc\":\"2.0\",\"method\":\"b\"},"
                          "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}]");
  assert_true(json_is_array(root));
  assert_int_equal(json_array_size(root), 3);
  sb_rpc_kind kinds[] = {SB_RPC_REQUEST, SB_RPC_NOTIFICATION, SB_RPC_RESPONSE};
  for (size_t i = 0; i < 3; i++) {
    sb_rpc_msg m;
    sb_error err = {0};
    assert_int_equal(sb_rpc_classify(json_array_get(root, i), &m, &err), 0);
    assert_int_equal(m.kind, kinds[i]);
  }
  json_decref(root);
  /* an empty batch parses; the caller decides what it means */
  root = parse_ok("[]");
  assert_int_equal(json_array_size(root), 0);
  json_decref(root);
}

/* ---- builders ------------------------------------------------------------ */

static void build_result(void **state) {
  (void)state;
  json_t *id = json_integer(5);
  assert_dump(sb_rpc_result_new(id, json_pack("{s:b}", "ok", 1)),
              "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"ok\":true}}");
  /* id is borrowed: still ours */
  assert_int_equal(id->refcount, 1);
  json_decref(id);
  json_t *sid = json_string("a\"b");
  assert_dump(sb_rpc_result_new(sid, json_object()),
              "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\",\"result\":{}}");
  json_decref(sid);
  /* a NULL result (e.g. a failed json_pack) propagates as NULL */
  json_t *one = json_integer(1);
  assert_null(sb_rpc_result_new(one, NULL));
  json_decref(one);
}

static void build_error(void **state) {
  (void)state;
  json_t *id = json_string("r1");
  assert_dump(sb_rpc_error_new(id, SB_RPC_METHOD_NOT_FOUND,
                               "Method not found: foo", NULL),
              "{\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"error\":{\"code\":-32601,"
              "\"message\":\"Method not found: foo\"}}");
  json_decref(id);
  /* NULL id gives "id": null; NULL message gives the code's name */
  /* an unreadable id is left out, never null (MCP: optional, not nullable) */
  assert_dump(sb_rpc_error_new(NULL, SB_RPC_PARSE_ERROR, NULL, NULL),
              "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,"
              "\"message\":\"Parse error\"}}");
  /* a message quoting a peer's bytes that are not UTF-8 (or a character
   * cut short) still makes an error: '?' in their place (before: NULL,
   * and the request waiting for it was never answered) */
  assert_dump(sb_rpc_error_new(NULL, SB_RPC_INTERNAL_ERROR,
                               "agent a: HTTP 401: caf\xe9 \xc3", NULL),
              "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32603,"
              "\"message\":\"agent a: HTTP 401: caf? ?\"}}");
}

static void build_error_with_data(void **state) {
  (void)state;
  json_t *id = json_integer(9);
  json_t *data = json_pack("{s:[s]}", "supported", "2026-07-28");
  assert_dump(sb_rpc_error_new(id, SB_RPC_UNSUPPORTED_PROTOCOL_VERSION,
                               "Unsupported protocol version", data),
              "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32022,"
              "\"message\":\"Unsupported protocol version\","
              "\"data\":{\"supported\":[\"2026-07-28\"]}}}");
  json_decref(id);
}

static void build_notification(void **state) {
  (void)state;
  assert_dump(
      sb_rpc_notification_new("notifications/progress",
                              json_pack("{s:s,s:i,s:i}", "progressToken", "t",
                                        "progress", 1, "total", 5)),
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
      "\"params\":{\"progressToken\":\"t\",\"progress\":1,"
      "\"total\":5}}");
  assert_dump(sb_rpc_notification_new("notifications/initialized", NULL),
              "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
}

static void build_request(void **state) {
  (void)state;
  json_t *id = json_integer(3);
  json_t *req = sb_rpc_request_new(id, "ping", NULL);
  assert_non_null(req);
  /* the request round-trips through parse + classify */
  size_t len = 0;
  char *s = sb_rpc_dump(req, &len);
  assert_non_null(s);
  assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":3}");
  sb_rpc_msg m;
  json_t *back = parse_ok(s);
  assert_int_equal(sb_rpc_classify(back, &m, NULL), 0);
  assert_int_equal(m.kind, SB_RPC_REQUEST);
  assert_int_equal(json_integer_value(m.id), 3);
  json_decref(back);
  sb_free(s);
  json_decref(req);
  json_decref(id);

  json_t *sid = json_string("e1");
  assert_dump(sb_rpc_request_new(sid, "elicitation/create",
                                 json_pack("{s:s}", "message", "hi")),
              "{\"jsonrpc\":\"2.0\",\"method\":\"elicitation/create\","
              "\"params\":{\"message\":\"hi\"},\"id\":\"e1\"}");
  json_decref(sid);
}

static void dump_without_len(void **state) {
  (void)state;
  json_t *n = sb_rpc_notification_new("x", NULL);
  char *s = sb_rpc_dump(n, NULL);
  assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}");
  sb_free(s);
  json_decref(n);
}

/* Messages on both sides of the dump's 4096-byte stack buffer come out
 * whole and exact (compared with jansson's own json_dumps), and a value
 * that is not a message is refused. */
static void dump_sizes_around_the_stack_buffer(void **state) {
  (void)state;
  static const size_t sizes[] = {4000, 4050, 4060, 4061, 4062, 4063,
                                 4070, 4095, 4096, 4097, 100000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    /* {"jsonrpc":"2.0","method":"x","params":{"t":"aaa..."}} is 48 bytes
     * plus the text */
    size_t text_len = sizes[i] - 48;
    char *text = sb_malloc(text_len + 1);
    assert_non_null(text);
    memset(text, 'a', text_len);
    text[text_len] = '\0';
    json_t *n = sb_rpc_notification_new("x", json_pack("{s:s}", "t", text));
    sb_free(text);
    char *want = json_dumps(n, JSON_COMPACT);
    assert_int_equal(strlen(want), sizes[i]);
    size_t len = 0;
    char *got = sb_rpc_dump(n, &len);
    assert_non_null(got);
    assert_int_equal(len, sizes[i]);
    assert_string_equal(got, want);
    sb_free(got);
    sb_free(want);
    json_decref(n);
  }
  json_t *scalar = json_integer(1);
  assert_null(sb_rpc_dump(scalar, NULL));
  json_decref(scalar);
}

static void builders_survive_allocation_failure(void **state) {
  (void)state;
  /* Fail each allocation in turn: builders must return NULL (not crash or
   * leak; ASan's leak check covers the latter) until they succeed. */
  json_t *id = json_integer(1);
  const char *full = "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,"
                     "\"message\":\"boom\",\"data\":\"d\"}}";
  int succeeded = 0;
  for (long n = 1; n < 40 && !succeeded; n++) {
    json_t *data = json_string("d");
    assert_non_null(data);
    sb_alloc_fail_after(n);
    json_t *e = sb_rpc_error_new(id, SB_RPC_INTERNAL_ERROR, "boom", data);
    sb_alloc_fail_after(0);
    if (e) {
      /* a message that is returned must be complete, never missing members
       * whose allocation failed */
      assert_dump(e, full);
      succeeded = 1;
    }
  }
  assert_true(succeeded);
  succeeded = 0;
  for (long n = 1; n < 40 && !succeeded; n++) {
    json_t *params = json_pack("{s:s}", "name", "echo");
    assert_non_null(params);
    sb_alloc_fail_after(n);
    json_t *r = sb_rpc_request_new(id, "tools/call", params);
    sb_alloc_fail_after(0);
    if (r) {
      assert_dump(r, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\","
                     "\"params\":{\"name\":\"echo\"},\"id\":1}");
      succeeded = 1;
    }
  }
  assert_true(succeeded);
  json_decref(id);
}

static void code_names(void **state) {
  (void)state;
  assert_string_equal(sb_rpc_code_name(-32700), "Parse error");
  assert_string_equal(sb_rpc_code_name(-32600), "Invalid Request");
  assert_string_equal(sb_rpc_code_name(-32601), "Method not found");
  assert_string_equal(sb_rpc_code_name(-32602), "Invalid params");
  assert_string_equal(sb_rpc_code_name(-32603), "Internal error");
  assert_string_equal(sb_rpc_code_name(-32020), "Header mismatch");
  assert_string_equal(sb_rpc_code_name(-32021),
                      "Missing required client capability");
  assert_string_equal(sb_rpc_code_name(-32022), "Unsupported protocol version");
  assert_string_equal(sb_rpc_code_name(-32000), "Server error");
  assert_string_equal(sb_rpc_code_name(0), "Server error");
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(request_with_integer_id),
      cmocka_unit_test(request_with_string_id_no_params),
      cmocka_unit_test(request_with_negative_and_zero_ids),
      cmocka_unit_test(notification),
      cmocka_unit_test(result_response),
      cmocka_unit_test(error_response),
      cmocka_unit_test(error_response_without_id),
      cmocka_unit_test(own_error_builder_output_classifies),
      cmocka_unit_test(id_null_rejected),
      cmocka_unit_test(id_float_rejected),
      cmocka_unit_test(id_bool_rejected),
      cmocka_unit_test(id_object_and_array_rejected),
      cmocka_unit_test(id_valid_predicate),
      cmocka_unit_test(id_kept_on_invalid_request),
      cmocka_unit_test(jsonrpc_wrong_or_missing),
      cmocka_unit_test(method_missing),
      cmocka_unit_test(method_not_string_or_empty),
      cmocka_unit_test(params_not_object),
      cmocka_unit_test(result_and_error_together),
      cmocka_unit_test(malformed_error_object),
      cmocka_unit_test(result_without_id),
      cmocka_unit_test(classify_non_object),
      cmocka_unit_test(classify_null_err_is_allowed),
      cmocka_unit_test(malformed_json_reports_position),
      cmocka_unit_test(invalid_utf8_and_nul),
      cmocka_unit_test(parse_error_message_is_utf8),
      cmocka_unit_test(oversized_rejected_naming_limit),
      cmocka_unit_test(default_limits_apply_when_zero),
      cmocka_unit_test(nesting_too_deep),
      cmocka_unit_test(brackets_inside_strings_do_not_count),
      cmocka_unit_test(duplicate_keys_rejected),
      cmocka_unit_test(top_level_scalar_rejected),
      cmocka_unit_test(batch_returned_as_array),
      cmocka_unit_test(document_parser_same_limits),
      cmocka_unit_test(build_result),
      cmocka_unit_test(build_error),
      cmocka_unit_test(build_error_with_data),
      cmocka_unit_test(build_notification),
      cmocka_unit_test(build_request),
      cmocka_unit_test(dump_without_len),
      cmocka_unit_test(dump_sizes_around_the_stack_buffer),
      cmocka_unit_test(builders_survive_allocation_failure),
      cmocka_unit_test(code_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
