/* Unit tests for src/mcp/client.c. The client talks to switchboard's own
 * MCP server in-process (a loopback transport), and to a scripted fake
 * legacy agent for the era fallback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mcp/mcp.h"

/* ---- loopback: client -> server -> client -------------------------------- */

typedef struct loopback {
  uv_loop_t loop;
  sb_mcp_server *srv;
  sb_mcp_session *session;
  sb_mcp_out out; /* server -> client */
  sb_mcp_client *client;
  json_t *sent;   /* every message the client sent */
  json_t *notes;  /* notifications the client did not claim */
  json_t *agent_requests;
  /* answers */
  json_t *result, *error, *progress;
  int answered;
  sb_mcp_outcome outcome;
} loopback;

static int lb_out_write(sb_mcp_out *out, json_t *msg, int final) {
  loopback *lb = out->data;
  sb_mcp_client_receive(lb->client, msg);
  return 0;
}

static int lb_send(void *t, json_t *msg) {
  loopback *lb = t;
  json_array_append(lb->sent, msg);
  sb_mcp_server_dispatch(lb->srv, lb->session, &lb->out, msg);
  return 0;
}

static void lb_note(void *ud, const char *method, json_t *params) {
  loopback *lb = ud;
  json_array_append_new(lb->notes, json_string(method));
}

static void lb_agent_request(void *ud, json_t *id, const char *method,
                             json_t *params, sb_mcp_request *related,
                             int guessed) {
  (void)guessed;
  loopback *lb = ud;
  json_array_append_new(lb->agent_requests, json_string(method));
  assert_non_null(related);
  sb_mcp_client_respond(lb->client, id,
                        json_pack("{sss{ss}}", "action", "accept", "content",
                                  "answer", "green"),
                        NULL);
}

static void on_answer(void *ud, sb_mcp_outcome outcome, json_t *result,
                      json_t *error) {
  loopback *lb = ud;
  lb->outcome = outcome;
  json_decref(lb->result);
  json_decref(lb->error);
  lb->result = json_incref(result);
  lb->error = json_incref(error);
  lb->answered++;
}

static void on_progress(void *ud, json_t *params) {
  loopback *lb = ud;
  json_array_append(lb->progress, params);
}

static int setup_era(void **state, sb_mcp_client_era_pref era) {
  loopback *lb = calloc(1, sizeof *lb);
  uv_loop_init(&lb->loop);
  sb_mcp_server_options so = {.limits = {.cache_ttl_ms = 60000},
                              .loop = &lb->loop};
  lb->srv = sb_mcp_server_new(&so);
  lb->out.write = lb_out_write;
  lb->out.data = lb;
  lb->session = sb_mcp_session_new(lb->srv, &lb->out);
  lb->sent = json_array();
  lb->notes = json_array();
  lb->agent_requests = json_array();
  lb->progress = json_array();
  json_t *caps = json_pack("{s{}}", "elicitation");
  sb_mcp_client_options co = {
      .loop = &lb->loop,
      .name = "loop",
      .transport = {.send = lb_send, .t = lb},
      .events = {.on_notification = lb_note,
                 .on_agent_request = lb_agent_request,
                 .ud = lb},
      .era = era,
      .capabilities = caps};
  lb->client = sb_mcp_client_new(&co);
  json_decref(caps);
  *state = lb;
  return lb->client ? 0 : -1;
}

static int setup_auto(void **state) { return setup_era(state, SB_MCP_CLIENT_AUTO); }
static int setup_legacy(void **state) { return setup_era(state, SB_MCP_CLIENT_LEGACY); }

static int teardown(void **state) {
  loopback *lb = *state;
  sb_mcp_client_free(lb->client);
  sb_mcp_out_detach(&lb->out);
  sb_mcp_session_free(lb->session);
  sb_mcp_server_free(lb->srv);
  uv_run(&lb->loop, UV_RUN_DEFAULT);
  uv_loop_close(&lb->loop);
  json_decref(lb->sent);
  json_decref(lb->notes);
  json_decref(lb->agent_requests);
  json_decref(lb->progress);
  json_decref(lb->result);
  json_decref(lb->error);
  free(lb);
  return 0;
}

static void connect_ok(loopback *lb) {
  assert_int_equal(sb_mcp_client_connect(lb->client, 1000, on_answer, lb), 0);
  uv_run(&lb->loop, UV_RUN_NOWAIT);
  assert_int_equal(lb->answered, 1);
  assert_null(lb->error);
  assert_true(sb_mcp_client_connected(lb->client));
  lb->answered = 0;
}

static const char *text_of(json_t *result) {
  return json_string_value(json_object_get(
      json_array_get(json_object_get(result, "content"), 0), "text"));
}

static void test_connect_modern(void **state) {
  loopback *lb = *state;
  connect_ok(lb);
  assert_true(sb_mcp_client_is_modern(lb->client));
  assert_string_equal(sb_mcp_client_version(lb->client), "2026-07-28");
  assert_non_null(json_object_get(sb_mcp_client_server_capabilities(lb->client), "tools"));
  assert_string_equal(json_string_value(json_object_get(
                          sb_mcp_client_server_info(lb->client), "name")),
                      "switchboard");
  /* no initialize was ever sent */
  size_t i;
  json_t *m;
  json_array_foreach(lb->sent, i, m)
      assert_string_not_equal(json_string_value(json_object_get(m, "method")),
                              "initialize");
  sb_mcp_client_request(lb->client, "tools/call",
                        json_pack("{sss{ss}}", "name", "echo", "arguments",
                                  "text", "hi"),
                        1000, NULL, on_answer, lb);
  assert_int_equal(lb->answered, 1);
  assert_string_equal(text_of(lb->result), "hi");
  assert_string_equal(json_string_value(json_object_get(lb->result, "resultType")),
                      "complete");
}

static void test_connect_legacy(void **state) {
  loopback *lb = *state;
  connect_ok(lb);
  assert_false(sb_mcp_client_is_modern(lb->client));
  assert_string_equal(sb_mcp_client_version(lb->client), "2025-11-25");
  /* initialize, then notifications/initialized */
  assert_string_equal(json_string_value(json_object_get(json_array_get(lb->sent, 0), "method")),
                      "initialize");
  assert_string_equal(json_string_value(json_object_get(json_array_get(lb->sent, 1), "method")),
                      "notifications/initialized");
  sb_mcp_client_request(lb->client, "tools/call",
                        json_pack("{sss{ss}}", "name", "echo", "arguments",
                                  "text", "legacy"),
                        1000, NULL, on_answer, lb);
  assert_string_equal(text_of(lb->result), "legacy");
  assert_null(json_object_get(lb->result, "resultType"));
}

static void test_progress(void **state) {
  loopback *lb = *state;
  connect_ok(lb);
  sb_mcp_client_request(lb->client, "tools/call",
                        json_pack("{sss{sisi}}", "name", "slow_count",
                                  "arguments", "steps", 3, "interval_ms", 1),
                        5000, on_progress, on_answer, lb);
  assert_int_equal(lb->answered, 0);
  uv_run(&lb->loop, UV_RUN_DEFAULT);
  assert_int_equal(lb->answered, 1);
  assert_int_equal(json_array_size(lb->progress), 3);
  assert_string_equal(text_of(lb->result), "counted to 3");
}

static void test_timeout_cancels(void **state) {
  loopback *lb = *state;
  connect_ok(lb);
  sb_mcp_client_request(lb->client, "tools/call",
                        json_pack("{sss{sisi}}", "name", "slow_count",
                                  "arguments", "steps", 2, "interval_ms",
                                  60000),
                        20, NULL, on_answer, lb);
  uv_run(&lb->loop, UV_RUN_DEFAULT); /* ends: the agent's timer was cancelled */
  assert_int_equal(lb->answered, 1);
  assert_non_null(lb->error);
  assert_int_equal(lb->outcome, SB_MCP_TIMED_OUT);
  assert_null(json_object_get(lb->error, "data")); /* nothing to forge */
  assert_non_null(strstr(json_string_value(json_object_get(lb->error, "message")),
                         "agent loop"));
  /* the agent was told */
  json_t *last = json_array_get(lb->sent, json_array_size(lb->sent) - 1);
  assert_string_equal(json_string_value(json_object_get(last, "method")),
                      "notifications/cancelled");
}

static void test_explicit_cancel(void **state) {
  loopback *lb = *state;
  connect_ok(lb);
  sb_mcp_request *r = sb_mcp_client_request(
      lb->client, "tools/call",
      json_pack("{sss{si}}", "name", "slow_count", "arguments", "interval_ms",
                60000),
      0, NULL, on_answer, lb);
  assert_non_null(r);
  assert_true(sb_mcp_request_sent(r));
  sb_mcp_request_cancel(r, "user closed the chat");
  assert_int_equal(lb->answered, 1);
  assert_int_equal(lb->outcome, SB_MCP_CANCELLED);
  uv_run(&lb->loop, UV_RUN_DEFAULT);
  assert_int_equal(lb->answered, 1); /* no late answer */
}

static void test_agent_request(void **state) {
  loopback *lb = *state;
  connect_ok(lb); /* legacy: the server asks us with elicitation/create */
  sb_mcp_client_request(lb->client, "tools/call",
                        json_pack("{ss}", "name", "ask_user"), 1000, NULL,
                        on_answer, lb);
  assert_int_equal(json_array_size(lb->agent_requests), 1);
  assert_string_equal(json_string_value(json_array_get(lb->agent_requests, 0)),
                      "elicitation/create");
  assert_string_equal(text_of(lb->result), "you said: green");
}

static void test_notifications(void **state) {
  loopback *lb = *state;
  connect_ok(lb);
  sb_mcp_client_request(lb->client, "resources/subscribe",
                        json_pack("{ss}", "uri", "switchboard://notes/n1"),
                        1000, NULL, on_answer, lb);
  sb_mcp_client_request(lb->client, "tools/call",
                        json_pack("{sss{ssss}}", "name", "note_write",
                                  "arguments", "name", "n1", "text", "x"),
                        1000, NULL, on_answer, lb);
  assert_int_equal(json_array_size(lb->notes), 2);
  assert_string_equal(json_string_value(json_array_get(lb->notes, 0)),
                      "notifications/resources/updated");
}

static void test_transport_lost(void **state) {
  loopback *lb = *state;
  connect_ok(lb);
  sb_mcp_client_request(lb->client, "tools/call",
                        json_pack("{sss{si}}", "name", "slow_count",
                                  "arguments", "interval_ms", 60000),
                        0, NULL, on_answer, lb);
  sb_mcp_client_transport_lost(lb->client, "exited with status 1");
  assert_int_equal(lb->answered, 1);
  assert_int_equal(lb->outcome, SB_MCP_LOST); /* it had been sent */
  assert_non_null(strstr(json_string_value(json_object_get(lb->error, "message")),
                         "exited with status 1"));
  assert_false(sb_mcp_client_connected(lb->client));
  lb->answered = 0;
  /* not connected: the request fails at once, through the callback */
  assert_null(sb_mcp_client_request(lb->client, "tools/list", NULL, 100, NULL,
                                    on_answer, lb));
  assert_int_equal(lb->answered, 1);
  assert_int_equal(lb->outcome, SB_MCP_UNSENT);
  sb_mcp_out_detach(&lb->out); /* the server's pending slow_count */
}

/* ---- a scripted legacy agent that has never heard of server/discover ----- */

typedef struct fake {
  sb_mcp_client *client;
  json_t *sent;
  int answered;
  json_t *error;
  sb_mcp_outcome outcome;
  int expired; /* on_session_expired calls */
  int defer;   /* tools/call: answer nothing now (the test does) */
  int discover_empty; /* server/discover: answer {} (any method's result) */
  int discover_held;  /* server/discover: answer nothing (the test does) */
  int bad_error;      /* tools/call: an error whose code is no integer */
} fake;

static int fake_send(void *t, json_t *msg) {
  fake *f = t;
  json_array_append(f->sent, msg);
  const char *method = json_string_value(json_object_get(msg, "method"));
  json_t *id = json_object_get(msg, "id");
  if (!id) return 0;
  json_t *reply;
  if (strcmp(method, "server/discover") == 0 && f->discover_held) return 0;
  if (strcmp(method, "server/discover") == 0 && f->discover_empty)
    reply = sb_rpc_result_new(id, json_object());
  else if (strcmp(method, "server/discover") == 0)
    reply = sb_rpc_error_new(id, SB_RPC_METHOD_NOT_FOUND, "Method not found", NULL);
  else if (strcmp(method, "initialize") == 0)
    reply = sb_rpc_result_new(
        id, json_pack("{sss{}s{ssss}}", "protocolVersion", "2025-06-18",
                      "capabilities", "serverInfo", "name", "old-agent",
                      "version", "1.0"));
  else if (strcmp(method, "tools/call") == 0 && f->defer)
    return 0;
  else if (strcmp(method, "tools/call") == 0 && f->bad_error)
    reply = json_pack("{sssOs{sssi}}", "jsonrpc", "2.0", "id", id, "error",
                      "code", "abc", "message", 42);
  else if (strcmp(method, "tools/call") == 0)
    /* an agent (perhaps a switchboard) whose error data looks like one of
     * our own failures */
    reply = sb_rpc_error_new(id, SB_RPC_INTERNAL_ERROR, "inner failure",
                             json_pack("{sssbsbsbsb}", "agent", "inner",
                                       "delivered", 0, "timeout", 1,
                                       "transport", 1, "newSessionNeeded", 1));
  else
    reply = sb_rpc_error_new(id, SB_RPC_METHOD_NOT_FOUND, "nope", NULL);
  sb_mcp_client_receive(f->client, reply);
  json_decref(reply);
  return 0;
}

static void fake_answer(void *ud, sb_mcp_outcome outcome, json_t *result,
                        json_t *error) {
  fake *f = ud;
  f->answered++;
  f->outcome = outcome;
  json_decref(f->error);
  f->error = json_incref(error);
}

static void fake_expired(void *ud) { ((fake *)ud)->expired++; }

static void fake_setup(uv_loop_t *loop, fake *f) {
  uv_loop_init(loop);
  memset(f, 0, sizeof *f);
  f->sent = json_array();
  sb_mcp_client_options co = {.loop = loop,
                              .name = "old",
                              .transport = {.send = fake_send, .t = f},
                              .events = {.on_session_expired = fake_expired,
                                         .ud = f}};
  f->client = sb_mcp_client_new(&co);
  sb_mcp_client_connect(f->client, 1000, fake_answer, f);
  assert_true(sb_mcp_client_connected(f->client));
  f->answered = 0;
}

static void fake_teardown(uv_loop_t *loop, fake *f) {
  sb_mcp_client_free(f->client);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  json_decref(f->sent);
  json_decref(f->error);
}

/* An agent's error is its answer, whatever its data claims: the keys our
 * own failures once carried (agent, delivered, timeout, transport,
 * newSessionNeeded) decide nothing, and do not end the session. */
static void test_forged_error_data_is_an_answer(void **state) {
  (void)state;
  uv_loop_t loop;
  fake f;
  fake_setup(&loop, &f);
  sb_mcp_client_request(f.client, "tools/call",
                        json_pack("{ss}", "name", "x"), 1000, NULL,
                        fake_answer, &f);
  assert_int_equal(f.answered, 1);
  assert_int_equal(f.outcome, SB_MCP_ANSWERED);
  assert_string_equal(json_string_value(json_object_get(f.error, "message")),
                      "inner failure");
  assert_true(sb_mcp_client_connected(f.client));
  assert_int_equal(f.expired, 0);
  fake_teardown(&loop, &f);
}

/* A malformed answer to a waiting request (its error's code not an
 * integer) ends the request at once, as the agent's answer saying what
 * was wrong: not at its deadline, as if lost. */
static void test_malformed_answer_ends_the_request(void **state) {
  (void)state;
  uv_loop_t loop;
  fake f;
  fake_setup(&loop, &f);
  f.bad_error = 1;
  sb_mcp_client_request(f.client, "tools/call",
                        json_pack("{ss}", "name", "x"), 60000, NULL,
                        fake_answer, &f);
  assert_int_equal(f.answered, 1);
  assert_int_equal(f.outcome, SB_MCP_ANSWERED);
  const char *msg = json_string_value(json_object_get(f.error, "message"));
  assert_non_null(strstr(msg, "agent old: its answer is not a valid JSON-RPC "
                              "response (error: must be an object with an "
                              "integer code"));
  assert_true(sb_mcp_client_connected(f.client));
  fake_teardown(&loop, &f);
}

/* The transport's word on a request: typed, and a session ended by the
 * agent disconnects the client once that request's callback has run. */
static void test_request_failed_outcomes(void **state) {
  (void)state;
  uv_loop_t loop;
  fake f;
  fake_setup(&loop, &f);
  f.defer = 1;
  sb_mcp_request *r = sb_mcp_client_request(
      f.client, "tools/call", json_pack("{ss}", "name", "x"), 1000, NULL,
      fake_answer, &f);
  json_t *id = json_integer(sb_mcp_request_id(r));
  sb_mcp_client_request_failed(f.client, id, SB_MCP_UNSENT, 0, "refused");
  assert_int_equal(f.outcome, SB_MCP_UNSENT);
  assert_non_null(strstr(json_string_value(json_object_get(f.error, "message")),
                         "agent old: refused"));
  json_decref(id);
  r = sb_mcp_client_request(f.client, "tools/call",
                            json_pack("{ss}", "name", "x"), 1000, NULL,
                            fake_answer, &f);
  id = json_integer(sb_mcp_request_id(r));
  sb_mcp_client_request_failed(f.client, id, SB_MCP_SESSION_EXPIRED, 1,
                               "session expired (HTTP 404)");
  assert_int_equal(f.answered, 2);
  assert_int_equal(f.outcome, SB_MCP_SESSION_EXPIRED);
  assert_int_equal(f.expired, 1);
  assert_false(sb_mcp_client_connected(f.client));
  /* an id nobody waits for changes nothing but the session */
  sb_mcp_client_request_failed(f.client, id, SB_MCP_LOST, 0, "late");
  assert_int_equal(f.answered, 2);
  json_decref(id);
  fake_teardown(&loop, &f);
}

/* A legacy agent answers the probe with -32601, or (some servers answer
 * any method) with an empty result: either way it is spoken to with
 * initialize. */
static void test_fallback_to_initialize(void **state) {
  (void)state;
  for (int empty = 0; empty < 2; empty++) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake f = {0};
    f.sent = json_array();
    f.discover_empty = empty;
    sb_mcp_client_options co = {.loop = &loop,
                                .name = "old",
                                .transport = {.send = fake_send, .t = &f}};
    f.client = sb_mcp_client_new(&co);
    sb_mcp_client_connect(f.client, 1000, fake_answer, &f);
    assert_int_equal(f.answered, 1);
    assert_null(f.error);
    assert_false(sb_mcp_client_is_modern(f.client));
    assert_string_equal(sb_mcp_client_version(f.client), "2025-06-18");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(f.sent, 1), "method")),
        "initialize");
    sb_mcp_client_free(f.client);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    json_decref(f.sent);
  }
}

/* An agent that refuses the probe at the door (HTTP 401/403) has no era
 * yet: the connect fails, saying why, and no initialize follows (it would
 * be refused too; the owner gets a token and connects again). */
static void test_refused_probe_fails_the_connect(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake f = {0};
  f.sent = json_array();
  f.discover_held = 1;
  sb_mcp_client_options co = {.loop = &loop,
                              .name = "guarded",
                              .transport = {.send = fake_send, .t = &f}};
  f.client = sb_mcp_client_new(&co);
  sb_mcp_client_connect(f.client, 1000, fake_answer, &f);
  assert_int_equal(json_array_size(f.sent), 1);
  json_t *id = json_object_get(json_array_get(f.sent, 0), "id");
  sb_mcp_client_request_failed(f.client, id, SB_MCP_REFUSED, 0,
                               "HTTP 401 (WWW-Authenticate: Bearer)");
  assert_int_equal(f.answered, 1);
  assert_int_equal(f.outcome, SB_MCP_REFUSED);
  assert_non_null(strstr(json_string_value(json_object_get(f.error, "message")),
                         "HTTP 401"));
  assert_int_equal(json_array_size(f.sent), 1);
  assert_false(sb_mcp_client_connected(f.client));
  /* and it may connect again */
  f.discover_held = 0;
  assert_int_equal(sb_mcp_client_connect(f.client, 1000, fake_answer, &f), 0);
  assert_true(sb_mcp_client_connected(f.client));
  sb_mcp_client_free(f.client);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  json_decref(f.error);
  json_decref(f.sent);
}

/* ---- many requests in flight, answered in any order ------------------------ */

typedef struct holder {
  sb_mcp_client *client;
  json_t *held; /* tools/call requests not answered yet */
  int got[300]; /* got[i]: times request i's callback ran */
  int wrong;    /* callbacks that got another request's answer */
} holder;

typedef struct held_call {
  holder *h;
  int i;
} held_call;

static int holder_send(void *t, json_t *msg) {
  holder *h = t;
  const char *method = json_string_value(json_object_get(msg, "method"));
  json_t *id = json_object_get(msg, "id");
  if (!id || !method) return 0; /* a notification, or our answer */
  if (strcmp(method, "tools/call") == 0) {
    json_array_append(h->held, msg);
    return 0;
  }
  json_t *reply =
      strcmp(method, "initialize") == 0
          ? sb_rpc_result_new(id, json_pack("{sss{}s{ssss}}", "protocolVersion",
                                            "2025-11-25", "capabilities",
                                            "serverInfo", "name", "holder",
                                            "version", "1"))
          : sb_rpc_error_new(id, SB_RPC_METHOD_NOT_FOUND, "nope", NULL);
  sb_mcp_client_receive(h->client, reply);
  json_decref(reply);
  return 0;
}

static void held_answer(void *ud, sb_mcp_outcome outcome, json_t *result,
                        json_t *error) {
  held_call *c = ud;
  c->h->got[c->i]++;
  json_int_t echoed = json_integer_value(json_object_get(result, "i"));
  if (error || echoed != c->i) c->h->wrong++;
}

static void test_many_pending_out_of_order(void **state) {
  (void)state;
  enum { N = 300 };
  uv_loop_t loop;
  uv_loop_init(&loop);
  holder h = {0};
  static held_call calls[N];
  h.held = json_array();
  sb_mcp_client_options co = {.loop = &loop,
                              .name = "holder",
                              .era = SB_MCP_CLIENT_LEGACY,
                              .transport = {.send = holder_send, .t = &h}};
  h.client = sb_mcp_client_new(&co);
  fake connect = {0};
  sb_mcp_client_connect(h.client, 1000, fake_answer, &connect);
  assert_int_equal(connect.answered, 1);
  assert_null(connect.error);
  assert_true(sb_mcp_client_connected(h.client));
  /* more than the id index starts with (64), so it grows twice */
  for (int i = 0; i < N; i++) {
    calls[i] = (held_call){&h, i};
    assert_non_null(sb_mcp_client_request(
        h.client, "tools/call", json_pack("{ss}", "name", "slow"), 5000, NULL,
        held_answer, &calls[i]));
  }
  assert_int_equal(json_array_size(h.held), N);
  /* answer the odd ones newest first, then the even ones oldest first */
  for (int pass = 0; pass < 2; pass++) {
    for (int k = 0; k < N; k++) {
      int i = pass == 0 ? N - 1 - k : k;
      if ((i % 2) != (pass == 0)) continue;
      json_t *id = json_object_get(json_array_get(h.held, (size_t)i), "id");
      json_t *reply = sb_rpc_result_new(id, json_pack("{si}", "i", i));
      sb_mcp_client_receive(h.client, reply);
      json_decref(reply);
    }
  }
  /* an answer to nothing pending is dropped */
  json_t *stray = json_integer(123456);
  json_t *reply = sb_rpc_result_new(stray, json_object());
  sb_mcp_client_receive(h.client, reply);
  json_decref(reply);
  json_decref(stray);
  for (int i = 0; i < N; i++) assert_int_equal(h.got[i], 1);
  assert_int_equal(h.wrong, 0);
  sb_mcp_client_free(h.client);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  json_decref(h.held);
}

/* ---- which call an agent's own request belongs to -------------------------
 */

typedef struct asked {
  sb_mcp_client *client;
  sb_mcp_request *related;
  int guessed, times;
} asked;

static void asked_request(void *ud, json_t *id, const char *method,
                          json_t *params, sb_mcp_request *related,
                          int guessed) {
  (void)method;
  (void)params;
  asked *k = ud;
  k->related = related;
  k->guessed = guessed;
  k->times++;
  sb_mcp_client_respond(k->client, id, json_object(), NULL);
}

static void feed_question(holder *h, const json_t *related_id) {
  json_t *q =
      json_pack("{sssiss}", "jsonrpc", "2.0", "id", 7, "method", "roots/list");
  sb_mcp_client_receive_related(h->client, q, related_id);
  json_decref(q);
}

/* The response stream a question came on names its call (none when that
 * request is gone); without it the newest call is taken, as a guess. */
static void test_agent_request_related(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  holder h = {0};
  asked k = {0};
  h.held = json_array();
  sb_mcp_client_options co = {
      .loop = &loop,
      .name = "holder",
      .era = SB_MCP_CLIENT_LEGACY,
      .transport = {.send = holder_send, .t = &h},
      .events = {.on_agent_request = asked_request, .ud = &k}};
  h.client = k.client = sb_mcp_client_new(&co);
  fake connect = {0};
  sb_mcp_client_connect(h.client, 1000, fake_answer, &connect);
  assert_true(sb_mcp_client_connected(h.client));
  static held_call calls[2];
  sb_mcp_request *req[2];
  for (int i = 0; i < 2; i++) {
    calls[i] = (held_call){&h, i};
    req[i] = sb_mcp_client_request(h.client, "tools/call",
                                   json_pack("{ss}", "name", "slow"), 5000,
                                   NULL, held_answer, &calls[i]);
    assert_non_null(req[i]);
  }
  json_t *older = json_object_get(json_array_get(h.held, 0), "id");
  feed_question(&h, older);
  assert_ptr_equal(k.related, req[0]);
  assert_int_equal(k.guessed, 0);
  feed_question(&h, NULL);
  assert_ptr_equal(k.related, req[1]);
  assert_int_equal(k.guessed, 1);
  json_t *gone = json_integer(99999); /* names no request: no call's */
  feed_question(&h, gone);
  json_decref(gone);
  assert_null(k.related);
  assert_int_equal(k.guessed, 0);
  /* the newer one answered: the one left, still a guess */
  json_t *reply =
      sb_rpc_result_new(json_object_get(json_array_get(h.held, 1), "id"),
                        json_pack("{si}", "i", 1));
  sb_mcp_client_receive(h.client, reply);
  json_decref(reply);
  feed_question(&h, NULL);
  assert_ptr_equal(k.related, req[0]);
  assert_int_equal(k.guessed, 1);
  assert_int_equal(k.times, 4);
  sb_mcp_client_free(h.client);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  json_decref(h.held);
}

int main(void) {
  sb_core_init();
  sb_log_set_level(SB_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_connect_modern, setup_auto,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_connect_legacy, setup_legacy,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_progress, setup_auto, teardown),
      cmocka_unit_test_setup_teardown(test_progress, setup_legacy, teardown),
      cmocka_unit_test_setup_teardown(test_timeout_cancels, setup_auto,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_timeout_cancels, setup_legacy,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_explicit_cancel, setup_legacy,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_agent_request, setup_legacy,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_notifications, setup_legacy,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_transport_lost, setup_auto,
                                      teardown),
      cmocka_unit_test(test_malformed_answer_ends_the_request),
      cmocka_unit_test(test_fallback_to_initialize),
      cmocka_unit_test(test_forged_error_data_is_an_answer),
      cmocka_unit_test(test_request_failed_outcomes),
      cmocka_unit_test(test_refused_probe_fails_the_connect),
      cmocka_unit_test(test_many_pending_out_of_order),
      cmocka_unit_test(test_agent_request_related),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
