/* Unit tests for src/mcp/: request handling of both eras, driven through
 * sb_mcp_server_dispatch with an output that records every message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/mcp.h"

typedef struct capture {
  sb_mcp_out out;
  json_t *msgs; /* every message written, in order */
  int finals;
} capture;

static int capture_write(sb_mcp_out *out, json_t *msg, int final) {
  capture *c = out->data;
  json_array_append(c->msgs, msg);
  c->finals += final;
  return 0;
}

static void capture_init(capture *c) {
  memset(c, 0, sizeof *c);
  c->out.write = capture_write;
  c->out.data = c;
  c->msgs = json_array();
}

static void capture_clear(capture *c) { json_array_clear(c->msgs); }

typedef struct fixture {
  sb_mcp_limits cfg;
  uv_loop_t loop;
  sb_mcp_server *srv;
  capture cap;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->cfg.cache_ttl_ms = 60000;
  uv_loop_init(&f->loop);
  sb_mcp_server_options opts = {.limits = f->cfg, .loop = &f->loop};
  f->srv = sb_mcp_server_new(&opts);
  capture_init(&f->cap);
  *state = f;
  return f->srv ? 0 : -1;
}

static int teardown(void **state) {
  fixture *f = *state;
  sb_mcp_out_detach(&f->cap.out);
  sb_mcp_server_free(f->srv);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* close timers */
  uv_loop_close(&f->loop);
  json_decref(f->cap.msgs);
  free(f);
  return 0;
}

#define MODERN_META                                                            \
  "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","     \
  "\"io.modelcontextprotocol/clientCapabilities\":{}}"
#define MODERN_META_ELICIT                                                     \
  "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","     \
  "\"io.modelcontextprotocol/clientCapabilities\":{\"elicitation\":{}}}"

/* Dispatch one JSON text; return the last message written (borrowed). */
static json_t *send_on(fixture *f, sb_mcp_session *s, const char *text) {
  json_error_t e;
  json_t *msg = json_loads(text, 0, &e);
  assert_non_null(msg);
  capture_clear(&f->cap);
  sb_mcp_server_dispatch(f->srv, s, &f->cap.out, msg);
  json_decref(msg);
  size_t n = json_array_size(f->cap.msgs);
  return n ? json_array_get(f->cap.msgs, n - 1) : NULL;
}

static json_t *send_msg(fixture *f, const char *text) {
  return send_on(f, NULL, text);
}

static int error_code(json_t *msg) {
  return (int)json_integer_value(
      json_object_get(json_object_get(msg, "error"), "code"));
}

static const char *error_message(json_t *msg) {
  return json_string_value(
      json_object_get(json_object_get(msg, "error"), "message"));
}

static json_t *result(json_t *msg) { return json_object_get(msg, "result"); }

static const char *first_text(json_t *msg) {
  return json_string_value(json_object_get(
      json_array_get(json_object_get(result(msg), "content"), 0), "text"));
}

static sb_mcp_session *legacy_session(fixture *f, const char *version) {
  sb_mcp_session *s = sb_mcp_session_new(f->srv, &f->cap.out);
  char req[512];
  snprintf(req, sizeof req,
           "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
           "\"params\":{\"protocolVersion\":\"%s\",\"capabilities\":"
           "{\"elicitation\":{}},\"clientInfo\":{\"name\":\"t\",\"version\":"
           "\"1\"}}}",
           version);
  json_t *r = send_on(f, s, req);
  assert_non_null(result(r));
  return s;
}

/* ---- modern envelope --------------------------------------------------- */

static void test_discover(void **state) {
  fixture *f = *state;
  json_t *r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                      "\"server/discover\",\"params\":{" MODERN_META "}}");
  json_t *res = result(r);
  assert_non_null(res);
  assert_string_equal(json_string_value(json_object_get(res, "resultType")),
                      "complete");
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(res, "supportedVersions"), 0)),
      "2026-07-28");
  assert_true(json_is_integer(json_object_get(res, "ttlMs")));
  assert_string_equal(json_string_value(json_object_get(res, "cacheScope")),
                      "public");
  assert_non_null(json_object_get(json_object_get(res, "capabilities"), "tools"));
  assert_int_equal(sb_mcp_http_status(r), 200);
}

static void test_modern_missing_caps(void **state) {
  fixture *f = *state;
  json_t *r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\","
                      "\"params\":{\"_meta\":{\"io.modelcontextprotocol/"
                      "protocolVersion\":\"2026-07-28\"}}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_non_null(strstr(error_message(r), "clientCapabilities"));
  assert_int_equal(sb_mcp_http_status(r), 400);
}

static void test_modern_unsupported_version(void **state) {
  fixture *f = *state;
  json_t *r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\","
                      "\"params\":{\"_meta\":{\"io.modelcontextprotocol/"
                      "protocolVersion\":\"1900-01-01\",\"io.modelcontext"
                      "protocol/clientCapabilities\":{}}}}");
  assert_int_equal(error_code(r), SB_RPC_UNSUPPORTED_PROTOCOL_VERSION);
  json_t *data = json_object_get(json_object_get(r, "error"), "data");
  assert_string_equal(json_string_value(json_object_get(data, "requested")),
                      "1900-01-01");
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(data, "supported"), 0)),
      "2026-07-28");
  assert_int_equal(sb_mcp_http_status(r), 400);
}

static void test_modern_legacy_only_method(void **state) {
  fixture *f = *state;
  json_t *r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\","
                      "\"params\":{" MODERN_META "}}");
  assert_int_equal(error_code(r), SB_RPC_METHOD_NOT_FOUND);
  assert_int_equal(sb_mcp_http_status(r), 404);
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"no/such\","
              "\"params\":{" MODERN_META "}}");
  assert_int_equal(error_code(r), SB_RPC_METHOD_NOT_FOUND);
  assert_non_null(strstr(error_message(r), "no/such"));
}

static void test_invalid_messages(void **state) {
  fixture *f = *state;
  json_t *r = send_msg(f, "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_REQUEST);
  assert_non_null(strstr(error_message(r), "jsonrpc"));
  assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_REQUEST);
  assert_non_null(strstr(error_message(r), "null"));
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":3}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_REQUEST);
  assert_non_null(strstr(error_message(r), "method"));
}

/* ---- legacy lifecycle -------------------------------------------------- */

static void test_legacy_before_initialize(void **state) {
  fixture *f = *state;
  sb_mcp_session *s = sb_mcp_session_new(f->srv, &f->cap.out);
  /* Uninitialized (as on stdio), a request without _meta's protocolVersion
   * can only be a malformed 2026-07-28 one: -32602, the message naming
   * both ways in. */
  json_t *r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                            "\"tools/list\"}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_non_null(strstr(error_message(r), "initialize"));
  assert_non_null(strstr(error_message(r), SB_MCP_META_PROTOCOL_VERSION));
  assert_int_equal(sb_mcp_http_status(r), 400);
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
                    "\"tools/list\",\"params\":{\"_meta\":{\"x\":1}}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_non_null(strstr(error_message(r), "initialize"));
  /* A ping is the one request the lifecycle lets a client send before
   * initialize: answered, in a session; without one (HTTP's session-less
   * path) a request missing its _meta is still malformed. */
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
  assert_true(json_is_object(result(r)));
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_false(sb_mcp_session_initialized(s));
  sb_mcp_session_free(s);
}

static void test_legacy_negotiation(void **state) {
  fixture *f = *state;
  sb_mcp_session *s = legacy_session(f, "2025-06-18");
  assert_string_equal(sb_mcp_session_version(s), "2025-06-18");
  json_t *r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
                            "\"initialize\",\"params\":{\"protocolVersion\":"
                            "\"2025-06-18\"}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_REQUEST);
  sb_mcp_session_free(s);

  s = legacy_session(f, "1999-01-01"); /* unknown: we offer our latest */
  assert_string_equal(sb_mcp_session_version(s), "2025-11-25");
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
  assert_non_null(result(r));
  /* Legacy results carry no resultType. */
  assert_null(json_object_get(result(r), "resultType"));
  sb_mcp_session_free(s);
}

static void test_legacy_initialize_bad_params(void **state) {
  fixture *f = *state;
  sb_mcp_session *s = sb_mcp_session_new(f->srv, &f->cap.out);
  json_t *r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                            "\"initialize\",\"params\":{}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_non_null(strstr(error_message(r), "protocolVersion"));
  assert_false(sb_mcp_session_initialized(s));
  /* What a session would keep is bounded: a huge clientInfo (or one long
   * field, or huge capabilities) is refused, naming the param and limit. */
  static const char *const fields[] = {"clientInfo", "clientInfo.name",
                                       "capabilities"};
  for (int i = 0; i < 3; i++) {
    size_t n = i == 0 ? 3 * 1024 * 1024 : i == 1 ? 300 : 20000;
    char *pad = malloc(n + 1);
    memset(pad, 'x', n);
    pad[n] = '\0';
    json_t *msg = json_pack(
        "{sssiss s{ss so so}}", "jsonrpc", "2.0", "id", 2, "method",
        "initialize", "params", "protocolVersion", "2025-11-25", "capabilities",
        i == 2 ? json_pack("{s{ss}}", "experimental", "pad", pad)
               : json_object(),
        "clientInfo",
        i == 0 ? json_pack("{ssssss}", "name", "t", "version", "1", "blob", pad)
        : i == 1 ? json_pack("{ssss}", "name", pad, "version", "1")
                 : json_pack("{ssss}", "name", "t", "version", "1"));
    free(pad);
    capture_clear(&f->cap);
    sb_mcp_server_dispatch(f->srv, s, &f->cap.out, msg);
    json_decref(msg);
    r = json_array_get(f->cap.msgs, 0);
    assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(r, "error"), "data"), "param")),
        fields[i]);
    assert_non_null(strstr(error_message(r), "limit"));
    assert_false(sb_mcp_session_initialized(s));
  }
  sb_mcp_session_free(s);
}

/* ---- tools --------------------------------------------------------------- */

static void test_tools_list_order_and_pages(void **state) {
  fixture *f = *state;
  f->cfg.page_size = 4; /* a server with pages of 4 */
  sb_mcp_server_free(f->srv);
  sb_mcp_server_options opts = {.limits = f->cfg, .loop = &f->loop};
  f->srv = sb_mcp_server_new(&opts);
  json_t *r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\","
                      "\"params\":{" MODERN_META "}}");
  json_t *tools = json_object_get(result(r), "tools");
  assert_int_equal(json_array_size(tools), 4);
  assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
                      "switchboard_info");
  assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 1), "name")),
                      "echo");
  const char *cursor =
      json_string_value(json_object_get(result(r), "nextCursor"));
  assert_non_null(cursor);
  char req[512];
  snprintf(req, sizeof req,
           "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\","
           "\"params\":{\"cursor\":\"%s\"," MODERN_META "}}",
           cursor);
  r = send_msg(f, req);
  tools = json_object_get(result(r), "tools");
  assert_int_equal(json_array_size(tools), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 1), "name")),
                      "ask_user");
  assert_null(json_object_get(result(r), "nextCursor"));

  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\","
              "\"params\":{\"cursor\":\"bm9wZQ==\"," MODERN_META "}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_string_equal(error_message(r), "Invalid cursor");
  /* "o:2", a NUL, then junk: not a cursor of ours either */
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\","
              "\"params\":{\"cursor\":\"bzoyAHp6\"," MODERN_META "}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_string_equal(error_message(r), "Invalid cursor");
}

static void test_tools_call(void **state) {
  fixture *f = *state;
  json_t *r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                      "\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":"
                      "\"vin 1HGCM\"}," MODERN_META "}}");
  assert_string_equal(first_text(r), "vin 1HGCM");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(result(r), "structuredContent"), "text")),
                      "vin 1HGCM");
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
              "\"params\":{\"name\":\"echo\",\"arguments\":{}," MODERN_META "}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_non_null(strstr(error_message(r), "'text'"));
  assert_int_equal(sb_mcp_http_status(r), 200);
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
              "\"params\":{\"name\":\"nope\"," MODERN_META "}}");
  assert_string_equal(error_message(r), "Unknown tool: nope");
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\","
              "\"params\":{\"name\":\"fail\"," MODERN_META "}}");
  assert_true(json_is_true(json_object_get(result(r), "isError")));
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\","
              "\"params\":{\"name\":\"switchboard_info\"," MODERN_META "}}");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(result(r), "structuredContent"), "name")),
                      "switchboard");
}

static void test_slow_count_progress_and_log(void **state) {
  fixture *f = *state;
  send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":"
          "{\"name\":\"slow_count\",\"arguments\":{\"steps\":3,\"interval_ms\":"
          "1},\"_meta\":{\"progressToken\":\"tok\",\"io.modelcontextprotocol/"
          "protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/"
          "clientCapabilities\":{},\"io.modelcontextprotocol/logLevel\":"
          "\"info\"}}}");
  assert_int_equal(json_array_size(f->cap.msgs), 0); /* answered later */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  /* 3 x (progress, log) then the result */
  assert_int_equal(json_array_size(f->cap.msgs), 7);
  json_t *p = json_array_get(f->cap.msgs, 2);
  assert_string_equal(json_string_value(json_object_get(p, "method")),
                      "notifications/progress");
  assert_int_equal((int)json_number_value(json_object_get(json_object_get(p, "params"), "progress")), 2);
  assert_int_equal((int)json_number_value(json_object_get(json_object_get(p, "params"), "total")), 3);
  json_t *log = json_array_get(f->cap.msgs, 1);
  assert_string_equal(json_string_value(json_object_get(log, "method")),
                      "notifications/message");
  json_t *last = json_array_get(f->cap.msgs, 6);
  assert_string_equal(first_text(last), "counted to 3");
  assert_int_equal(f->cap.finals, 1);
}

static void test_cancel_by_notification(void **state) {
  fixture *f = *state;
  sb_mcp_session *s = legacy_session(f, "2025-11-25");
  send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":\"slow\",\"method\":\"tools/call\","
                "\"params\":{\"name\":\"slow_count\",\"arguments\":{\"steps\":"
                "1000,\"interval_ms\":1000}}}");
  send_on(f, s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
                "\"params\":{\"requestId\":\"slow\",\"reason\":\"user\"}}");
  uv_run(&f->loop, UV_RUN_DEFAULT); /* returns: no timer left running */
  assert_int_equal(json_array_size(f->cap.msgs), 0);
  json_t *r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":"
                            "\"tools/call\",\"params\":{\"name\":\"echo\","
                            "\"arguments\":{\"text\":\"still here\"}}}");
  assert_string_equal(first_text(r), "still here");
  sb_mcp_session_free(s);
}

static void test_cancel_by_detach(void **state) {
  fixture *f = *state;
  capture other;
  capture_init(&other);
  json_t *msg = json_loads(
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
      "{\"name\":\"slow_count\",\"arguments\":{\"interval_ms\":60000}," MODERN_META "}}",
      0, NULL);
  sb_mcp_server_dispatch(f->srv, NULL, &other.out, msg);
  json_decref(msg);
  assert_true(sb_mcp_out_busy(&other.out));
  sb_mcp_out_detach(&other.out);
  assert_false(sb_mcp_out_busy(&other.out));
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(json_array_size(other.msgs), 0);
  json_decref(other.msgs);
}

/* ---- multi round-trip ---------------------------------------------------- */

static void test_mrtr_round_trip(void **state) {
  fixture *f = *state;
  json_t *r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                      "\"params\":{\"name\":\"ask_user\"," MODERN_META_ELICIT "}}");
  json_t *res = result(r);
  assert_string_equal(json_string_value(json_object_get(res, "resultType")),
                      "input_required");
  assert_string_equal(json_string_value(json_object_get(json_object_get(
                          json_object_get(res, "inputRequests"), "answer"), "method")),
                      "elicitation/create");
  assert_null(json_object_get(res, "ttlMs"));
  char *state_str = sb_strdup(json_string_value(json_object_get(res, "requestState")));
  assert_non_null(state_str);

  char req[2048];
  snprintf(req, sizeof req,
           "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
           "{\"name\":\"ask_user\",\"requestState\":\"%s\",\"inputResponses\":"
           "{\"answer\":{\"action\":\"accept\",\"content\":{\"answer\":\"red "
           "truck\"}}}," MODERN_META_ELICIT "}}",
           state_str);
  r = send_msg(f, req);
  assert_string_equal(first_text(r), "you said: red truck");

  /* Flip one character of the MAC: refused. */
  size_t n = strlen(state_str);
  state_str[n - 3] = state_str[n - 3] == 'A' ? 'B' : 'A';
  snprintf(req, sizeof req,
           "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
           "{\"name\":\"ask_user\",\"requestState\":\"%s\",\"inputResponses\":"
           "{\"answer\":{\"action\":\"accept\",\"content\":{\"answer\":\"x\"}}},"
           MODERN_META_ELICIT "}}",
           state_str);
  r = send_msg(f, req);
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_non_null(strstr(error_message(r), "requestState"));
  sb_free(state_str);

  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\","
              "\"params\":{\"name\":\"ask_user\"," MODERN_META "}}");
  assert_int_equal(error_code(r), SB_RPC_MISSING_CLIENT_CAPABILITY);
}

static void test_legacy_elicitation(void **state) {
  fixture *f = *state;
  sb_mcp_session *s = legacy_session(f, "2025-11-25");
  json_t *req = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":"
                              "\"tools/call\",\"params\":{\"name\":"
                              "\"ask_user\"}}");
  assert_string_equal(json_string_value(json_object_get(req, "method")),
                      "elicitation/create");
  json_int_t id = json_integer_value(json_object_get(req, "id"));
  char resp[256];
  snprintf(resp, sizeof resp,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"action\":"
           "\"accept\",\"content\":{\"answer\":\"blue\"}}}",
           (long long)id);
  json_t *r = send_on(f, s, resp);
  assert_int_equal(json_integer_value(json_object_get(r, "id")), 5);
  assert_string_equal(first_text(r), "you said: blue");
  sb_mcp_session_free(s);
}

/* ---- resources, subscriptions, prompts ----------------------------------- */

static void test_resources_and_subscriptions(void **state) {
  fixture *f = *state;
  capture notes;
  capture_init(&notes);
  sb_mcp_session *s = legacy_session(f, "2025-11-25");
  sb_mcp_session_set_notify_out(s, &notes.out);
  json_t *r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                            "\"resources/subscribe\",\"params\":{\"uri\":"
                            "\"switchboard://notes/ro\"}}");
  assert_non_null(result(r));

  /* A modern listener on another output. */
  capture listen;
  capture_init(&listen);
  json_t *lmsg = json_loads(
      "{\"jsonrpc\":\"2.0\",\"id\":\"L\",\"method\":\"subscriptions/listen\","
      "\"params\":{\"notifications\":{\"resourceSubscriptions\":["
      "\"switchboard://notes/ro\"],\"toolsListChanged\":true}," MODERN_META "}}",
      0, NULL);
  sb_mcp_server_dispatch(f->srv, NULL, &listen.out, lmsg);
  json_decref(lmsg);
  json_t *ack = json_array_get(listen.msgs, 0);
  assert_string_equal(json_string_value(json_object_get(ack, "method")),
                      "notifications/subscriptions/acknowledged");
  assert_int_equal(listen.finals, 0);

  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
                    "\"params\":{\"name\":\"note_write\",\"arguments\":{"
                    "\"name\":\"ro\",\"text\":\"oil change due\"}}}");
  assert_non_null(result(r));
  /* legacy: updated + list_changed on the session's notify_out */
  assert_int_equal(json_array_size(notes.msgs), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(notes.msgs, 0), "method")),
                      "notifications/resources/updated");
  /* modern: only updated (resourcesListChanged not requested) */
  assert_int_equal(json_array_size(listen.msgs), 2);
  json_t *upd = json_array_get(listen.msgs, 1);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_object_get(upd, "params"), "_meta"),
                          "io.modelcontextprotocol/subscriptionId")),
                      "L");

  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":"
                    "\"resources/read\",\"params\":{\"uri\":"
                    "\"switchboard://notes/ro\"}}");
  assert_string_equal(json_string_value(json_object_get(json_array_get(
                          json_object_get(result(r), "contents"), 0), "text")),
                      "oil change due");
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":"
                    "\"resources/read\",\"params\":{\"uri\":"
                    "\"switchboard://notes/none\"}}");
  assert_int_equal(error_code(r), SB_RPC_RESOURCE_NOT_FOUND_LEGACY);

  /* Server shutdown ends the listen stream with a complete result. */
  sb_mcp_session_free(s);
  sb_mcp_server_free(f->srv);
  f->srv = NULL;
  assert_int_equal(listen.finals, 1);
  json_t *end = json_array_get(listen.msgs, json_array_size(listen.msgs) - 1);
  assert_string_equal(json_string_value(json_object_get(result(end), "resultType")),
                      "complete");
  json_decref(notes.msgs);
  json_decref(listen.msgs);
  sb_mcp_server_options opts = {.limits = f->cfg, .loop = &f->loop};
  f->srv = sb_mcp_server_new(&opts);
}

/* A provider whose subscriptions take effect later, as an agent's do: it
 * holds every acknowledgement until the test releases it. */
typedef struct holder {
  sb_mcp_sub_wait *held[4];
  int n, ons, offs;
} holder;

static void hold_subscribe(void *ud, const char *uri, int on,
                           sb_mcp_sub_wait *w) {
  holder *h = ud;
  (void)uri;
  if (!on) {
    h->offs++;
    return;
  }
  h->ons++;
  assert_true(h->n < 4);
  h->held[h->n++] = sb_mcp_sub_wait_hold(w);
}

static holder *add_holder(fixture *f) {
  static holder h;
  memset(&h, 0, sizeof h);
  sb_mcp_provider p = {.name = "holder", .ud = &h, .subscribe = hold_subscribe};
  assert_int_equal(sb_mcp_server_add_provider(f->srv, &p), 0);
  return &h;
}

#define SUBSCRIBE(id)                                                          \
  "{\"jsonrpc\":\"2.0\",\"id\":" #id ",\"method\":\"resources/subscribe\","    \
  "\"params\":{\"uri\":\"switchboard://notes/ro\"}}"

/* The ids answered in f->cap, in order, as a string ("1:ok 2:-32603"). */
static const char *answers(fixture *f) {
  static char buf[128];
  buf[0] = '\0';
  size_t i;
  json_t *m;
  json_array_foreach(f->cap.msgs, i, m) {
    size_t len = strlen(buf);
    json_t *err = json_object_get(m, "error");
    snprintf(buf + len, sizeof buf - len, "%s%lld:%s", len ? " " : "",
             (long long)json_integer_value(json_object_get(m, "id")),
             err ? json_string_value(json_object_get(err, "message")) : "ok");
  }
  return buf;
}

/* A second resources/subscribe of a URI whose first is still waiting for
 * a provider is not told yes before the first is: it gets the first one's
 * answer, and a failure leaves the session unsubscribed. */
static void test_subscribe_twice_while_pending(void **state) {
  fixture *f = *state;
  holder *h = add_holder(f);
  sb_mcp_session *s = legacy_session(f, "2025-11-25");
  assert_null(send_on(f, s, SUBSCRIBE(1)));
  assert_null(send_on(f, s, SUBSCRIBE(2)));
  assert_int_equal(h->ons, 1); /* the provider is asked once */
  capture_clear(&f->cap);
  sb_mcp_sub_wait_fail(h->held[0], -32603, "agent refused", NULL);
  assert_string_equal(answers(f), "1:agent refused 2:agent refused");
  assert_int_equal(h->offs, 1); /* undone once, for both */

  /* Not subscribed any more: a new subscribe asks the provider again. */
  assert_null(send_on(f, s, SUBSCRIBE(3)));
  assert_null(send_on(f, s, SUBSCRIBE(4)));
  assert_int_equal(h->ons, 2);
  capture_clear(&f->cap);
  sb_mcp_sub_wait_done(h->held[1]);
  assert_string_equal(answers(f), "3:ok 4:ok");
  /* In effect now: answered at once, without asking again. */
  assert_non_null(result(send_on(f, s, SUBSCRIBE(5))));
  assert_int_equal(h->ons, 2);
  sb_mcp_session_free(s);
  assert_int_equal(h->offs, 2);
}

/* The first subscriber's call ends (cancelled) before the provider
 * answers: the follower still gets the answer, and a failure still
 * unsubscribes the session. */
static void test_subscribe_pending_first_cancelled(void **state) {
  fixture *f = *state;
  holder *h = add_holder(f);
  sb_mcp_session *s = legacy_session(f, "2025-11-25");
  assert_null(send_on(f, s, SUBSCRIBE(1)));
  assert_null(send_on(f, s, SUBSCRIBE(2)));
  assert_null(send_on(f, s, "{\"jsonrpc\":\"2.0\",\"method\":"
                            "\"notifications/cancelled\",\"params\":"
                            "{\"requestId\":1}}"));
  capture_clear(&f->cap);
  sb_mcp_sub_wait_fail(h->held[0], -32603, "agent refused", NULL);
  assert_string_equal(answers(f), "2:agent refused");
  assert_int_equal(h->offs, 1);
  sb_mcp_session_free(s);
  assert_int_equal(h->offs, 1); /* nothing left to undo */
}

/* Unsubscribed while the subscribe waits: its later failure undoes
 * nothing more, and a session that ends with a subscribe (and a follower)
 * waiting leaves a wait that answers no one. */
static void test_subscribe_pending_then_unsubscribed(void **state) {
  fixture *f = *state;
  holder *h = add_holder(f);
  sb_mcp_session *s = legacy_session(f, "2025-11-25");
  assert_null(send_on(f, s, SUBSCRIBE(1)));
  assert_non_null(result(send_on(
      f, s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
            "\"resources/unsubscribe\",\"params\":{\"uri\":"
            "\"switchboard://notes/ro\"}}")));
  assert_int_equal(h->offs, 1);
  assert_null(send_on(f, s, SUBSCRIBE(3))); /* a fresh subscribe */
  assert_int_equal(h->ons, 2);
  capture_clear(&f->cap);
  sb_mcp_sub_wait_fail(h->held[0], -32603, "agent refused", NULL);
  assert_string_equal(answers(f), "1:agent refused");
  assert_int_equal(h->offs, 1); /* the fresh one is not undone */
  assert_null(send_on(f, s, SUBSCRIBE(4))); /* follows 3 */
  sb_mcp_session_free(s);
  assert_int_equal(h->offs, 2);
  capture_clear(&f->cap);
  sb_mcp_sub_wait_done(h->held[1]);
  assert_int_equal(json_array_size(f->cap.msgs), 0);
}

static void test_prompts_and_completion(void **state) {
  fixture *f = *state;
  json_t *r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/get\","
                      "\"params\":{\"name\":\"greeting\",\"arguments\":{"
                      "\"name\":\"Dana\"}," MODERN_META "}}");
  json_t *m = json_array_get(json_object_get(result(r), "messages"), 0);
  assert_non_null(strstr(json_string_value(json_object_get(
                             json_object_get(m, "content"), "text")), "Dana"));
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"prompts/get\","
              "\"params\":{\"name\":\"greeting\"," MODERN_META "}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_non_null(strstr(error_message(r), "'name'"));
  /* Arguments are strings (PromptArgument values): a number is not a
   * missing argument, nor is an arguments value that is not an object. */
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"prompts/get\","
              "\"params\":{\"name\":\"greeting\",\"arguments\":{\"name\":5},"
              MODERN_META "}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_string_equal(error_message(r),
                      "params.arguments.name: must be a string");
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"prompts/get\","
              "\"params\":{\"name\":\"greeting\",\"arguments\":[\"Dana\"],"
              MODERN_META "}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_string_equal(error_message(r),
                      "params.arguments: must be an object of strings");
  r = send_msg(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"completion/complete\","
              "\"params\":{\"ref\":{\"type\":\"ref/prompt\",\"name\":"
              "\"greeting\"},\"argument\":{\"name\":\"name\",\"value\":\"a\"},"
              MODERN_META "}}");
  json_t *values = json_object_get(json_object_get(result(r), "completion"), "values");
  assert_int_equal(json_array_size(values), 2);
  assert_string_equal(json_string_value(json_array_get(values, 0)), "Alice");
}

/* subscriptions/listen: the filter's URIs and a tenant's open streams are
 * capped; a closed stream frees its place. */
static void test_listen_caps(void **state) {
  fixture *f = *state;
  f->cfg.max_listen_uris = 3;
  f->cfg.max_listen_streams_per_tenant = 2;
  sb_mcp_server_free(f->srv);
  sb_mcp_server_options opts = {.limits = f->cfg, .loop = &f->loop};
  f->srv = sb_mcp_server_new(&opts);
  static const char *const four =
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"subscriptions/listen\","
      "\"params\":{\"notifications\":{\"resourceSubscriptions\":[\"a:1\","
      "\"a:2\",\"a:3\",\"a:4\"]}," MODERN_META "}}";
  json_t *r = send_msg(f, four);
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_non_null(strstr(error_message(r), "max_listen_uris"));
  assert_non_null(strstr(error_message(r), "4 URIs"));

  /* Two streams of tenant t1 stay open; a third is refused, t2's is not. */
  capture streams[4];
  const char *tenants[4] = {"t1", "t1", "t1", "t2"};
  json_t *msg = json_loads(
      "{\"jsonrpc\":\"2.0\",\"id\":\"L\",\"method\":\"subscriptions/"
      "listen\",\"params\":{\"notifications\":{\"resourceSubscriptions\":"
      "[\"a:1\",\"a:2\",\"a:3\"]}," MODERN_META "}}",
      0, NULL);
  for (int i = 0; i < 4; i++) {
    capture_init(&streams[i]);
    streams[i].out.tenant = tenants[i];
    sb_mcp_server_dispatch(f->srv, NULL, &streams[i].out, msg);
    json_t *first = json_array_get(streams[i].msgs, 0);
    if (i == 2) {
      assert_int_equal(error_code(first), SB_RPC_SERVER_BUSY);
      assert_non_null(
          strstr(error_message(first), "max_listen_streams_per_tenant"));
    } else {
      assert_string_equal(json_string_value(json_object_get(first, "method")),
                          "notifications/subscriptions/acknowledged");
    }
  }
  /* Closing one (the client goes away) lets the next one in. */
  sb_mcp_out_detach(&streams[0].out);
  capture_clear(&streams[2]);
  sb_mcp_server_dispatch(f->srv, NULL, &streams[2].out, msg);
  assert_string_equal(json_string_value(json_object_get(
                          json_array_get(streams[2].msgs, 0), "method")),
                      "notifications/subscriptions/acknowledged");
  json_decref(msg);
  for (int i = 0; i < 4; i++) {
    sb_mcp_out_detach(&streams[i].out);
    json_decref(streams[i].msgs);
  }
}

/* ---- batches ------------------------------------------------------------- */

static void test_batches(void **state) {
  fixture *f = *state;
  sb_mcp_session *old = legacy_session(f, "2025-03-26");
  json_t *r = send_on(f, old, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                              "\"ping\"},{\"jsonrpc\":\"2.0\",\"method\":"
                              "\"notifications/initialized\"},{\"jsonrpc\":"
                              "\"2.0\",\"id\":2,\"method\":\"nope\"}]");
  assert_true(json_is_array(r));
  assert_int_equal(json_array_size(r), 2);
  assert_int_equal(error_code(json_array_get(r, 1)), SB_RPC_METHOD_NOT_FOUND);
  r = send_on(f, old, "[]");
  assert_int_equal(error_code(r), SB_RPC_INVALID_REQUEST);
  /* Members that are not requests at all: still one array, written once
   * as the final message, each error with "id": null (JSON-RPC 2.0). */
  static const char *const invalid[] = {"[1]", "[{}]", "[[]]", "[1,{},[]]"};
  f->cap.finals = 0;
  for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
    r = send_on(f, old, invalid[i]);
    assert_int_equal(json_array_size(f->cap.msgs), 1);
    assert_int_equal(f->cap.finals, 1);
    f->cap.finals = 0;
    assert_true(json_is_array(r));
    assert_int_equal(json_array_size(r), i == 3 ? 3 : 1);
    for (size_t k = 0; k < json_array_size(r); k++) {
      json_t *e = json_array_get(r, k);
      assert_int_equal(error_code(e), SB_RPC_INVALID_REQUEST);
      assert_true(json_is_null(json_object_get(e, "id")));
    }
  }
  /* A valid request beside an invalid member keeps its own id. */
  r = send_on(f, old,
              "[1,{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":"
              "\"ping\"}]");
  assert_int_equal(json_array_size(r), 2);
  assert_true(json_is_null(json_object_get(json_array_get(r, 0), "id")));
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(r, 1), "id")), 5);
  f->cap.finals = 0;
  sb_mcp_session_free(old);

  sb_mcp_session *s = legacy_session(f, "2025-11-25");
  r = send_on(f, s, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]");
  assert_int_equal(error_code(r), SB_RPC_INVALID_REQUEST);
  assert_non_null(strstr(error_message(r), "2025-03-26"));
  sb_mcp_session_free(s);
}

static void test_async_batch(void **state) {
  fixture *f = *state;
  sb_mcp_session *s = legacy_session(f, "2025-03-26");
  send_on(f, s, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                "\"params\":{\"name\":\"slow_count\",\"arguments\":{\"steps\":"
                "1,\"interval_ms\":1}}},{\"jsonrpc\":\"2.0\",\"id\":2,"
                "\"method\":\"ping\"}]");
  assert_int_equal(json_array_size(f->cap.msgs), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  json_t *r = json_array_get(f->cap.msgs, json_array_size(f->cap.msgs) - 1);
  assert_true(json_is_array(r));
  assert_int_equal(json_array_size(r), 2);
  sb_mcp_session_free(s);
}

/* ---- HTTP header rules --------------------------------------------------- */

static void test_http_headers(void **state) {
  (void)state;
  json_t *msg = json_loads(
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
      "{\"name\":\"echo\"," MODERN_META "}}",
      0, NULL);
  sb_error err = {0};
  assert_int_equal(sb_mcp_check_http_headers(msg, "2026-07-28", "tools/call",
                                             "echo", &err),
                   0);
  assert_int_equal(sb_mcp_check_http_headers(msg, "2026-07-28", "tools/list",
                                             "echo", &err),
                   SB_RPC_HEADER_MISMATCH);
  assert_non_null(strstr(err.msg, "Mcp-Method"));
  assert_int_equal(sb_mcp_check_http_headers(msg, "2026-07-28", "tools/call",
                                             NULL, &err),
                   SB_RPC_HEADER_MISMATCH);
  assert_non_null(strstr(err.msg, "Mcp-Name"));
  assert_int_equal(sb_mcp_check_http_headers(msg, "2025-11-25", "tools/call",
                                             "echo", &err),
                   SB_RPC_HEADER_MISMATCH);
  assert_non_null(strstr(err.msg, "MCP-Protocol-Version"));
  /* "echo" in the base64 sentinel form */
  assert_int_equal(sb_mcp_check_http_headers(msg, "2026-07-28", "tools/call",
                                             "=?base64?ZWNobw==?=", &err),
                   0);
  json_decref(msg);
}

int main(void) {
  sb_core_init();
  sb_log_set_level(SB_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_discover, setup, teardown),
      cmocka_unit_test_setup_teardown(test_modern_missing_caps, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_modern_unsupported_version, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_modern_legacy_only_method, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_invalid_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_legacy_before_initialize, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_legacy_negotiation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_legacy_initialize_bad_params, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_tools_list_order_and_pages, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_tools_call, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slow_count_progress_and_log, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cancel_by_notification, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cancel_by_detach, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mrtr_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_legacy_elicitation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_subscribe_twice_while_pending,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_subscribe_pending_first_cancelled,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_subscribe_pending_then_unsubscribed,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_resources_and_subscriptions, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_prompts_and_completion, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_listen_caps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_async_batch, setup, teardown),
      cmocka_unit_test(test_http_headers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
