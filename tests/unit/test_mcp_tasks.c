/* Unit tests for src/mcp/tasks.c: who gets a task, what is announced, and
 * the shapes of both revisions, over a fake task provider whose one task
 * the tests set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mcp/mcp.h"

typedef struct capture {
  sb_mcp_out out;
  json_t *msgs;
} capture;

static int capture_write(sb_mcp_out *out, json_t *msg, int final) {
  (void)final;
  json_array_append(((capture *)out->data)->msgs, msg);
  return 0;
}

/* The fake provider: one task, "t1"; anything else is unknown. */
typedef struct fake {
  json_t *task;      /* neutral form, what get answers */
  int ended;         /* cancel: the task had ended */
  json_t *responses; /* the last tasks/update's */
  int calls;         /* call_tool runs */
  sb_mcp_call *waiting; /* a tasks/result waiting for the client */
} fake;

typedef struct fixture {
  uv_loop_t loop;
  sb_mcp_server *srv;
  capture cap;
  fake fk;
} fixture;

static const char *const task_tools[] = {"echo", NULL};

static int known(sb_mcp_call *call, const char *id) {
  if (strcmp(id, "t1") == 0) return 1;
  sb_mcp_call_fail_task_unknown(call);
  return 0;
}

static void fk_call_tool(void *ud, sb_mcp_call *call, const char *name,
                         json_t *args) {
  (void)name;
  (void)args;
  fake *fk = ud;
  fk->calls++;
  sb_mcp_call_reply_task(call, json_deep_copy(fk->task));
}

static void fk_get(void *ud, sb_mcp_call *call, const char *id) {
  if (known(call, id)) sb_mcp_call_reply_task(call, json_deep_copy(((fake *)ud)->task));
}

static void fk_cancel(void *ud, sb_mcp_call *call, const char *id) {
  fake *fk = ud;
  if (!known(call, id)) return;
  if (fk->ended) {
    sb_mcp_call_task_cancel_refused(call, json_deep_copy(fk->task));
    return;
  }
  json_object_set_new(fk->task, "status", json_string("cancelled"));
  sb_mcp_call_reply_task(call, json_deep_copy(fk->task));
}

static void fk_update(void *ud, sb_mcp_call *call, const char *id,
                      json_t *responses) {
  fake *fk = ud;
  if (!known(call, id)) return;
  json_decref(fk->responses);
  fk->responses = json_incref(responses);
  sb_mcp_call_reply(call, json_object());
}

static void fk_answered(sb_mcp_call *call, json_t *result, json_t *error,
                        void *ud) {
  (void)error;
  fake *fk = ud;
  if (!call) return;
  fk->waiting = NULL;
  json_t *r = json_pack("{s[{ssss}]}", "content", "type", "text", "text",
                        json_string_value(json_object_get(result, "action")));
  sb_mcp_call_reply(call, r);
}

static void fk_result(void *ud, sb_mcp_call *call, const char *id) {
  fake *fk = ud;
  if (!known(call, id)) return;
  fk->waiting = call;
  assert_int_equal(sb_mcp_call_ask_client(call, "elicitation/create",
                                          json_pack("{ss}", "message", "slot?"),
                                          fk_answered, fk),
                   0);
}

static void fk_list(void *ud, sb_mcp_call *call, const char *cursor) {
  fake *fk = ud;
  json_t *tasks = json_array();
  if (!cursor) json_array_append_new(tasks, json_deep_copy(fk->task));
  sb_mcp_call_reply_tasks(call, tasks, cursor ? NULL : "page2");
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  sb_mcp_server_options opts = {.loop = &f->loop};
  f->srv = sb_mcp_server_new(&opts);
  f->cap.out.write = capture_write;
  f->cap.out.data = &f->cap;
  f->cap.msgs = json_array();
  f->fk.task = json_pack(
      "{sssssssssnsi}", "taskId", "t1", "status", "working", "createdAt",
      "2026-12-02T08:00:00.000Z", "lastUpdatedAt", "2026-12-02T08:00:01.000Z",
      "ttlMs", "pollIntervalMs", 500);
  sb_mcp_task_provider p = {.ud = &f->fk,
                            .tools = task_tools,
                            .call_tool = fk_call_tool,
                            .get = fk_get,
                            .cancel = fk_cancel,
                            .update = fk_update,
                            .result = fk_result,
                            .list = fk_list};
  sb_mcp_server_set_task_provider(f->srv, &p);
  *state = f;
  return f->srv ? 0 : -1;
}

static int teardown(void **state) {
  fixture *f = *state;
  sb_mcp_out_detach(&f->cap.out);
  sb_mcp_server_free(f->srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_loop_close(&f->loop);
  json_decref(f->cap.msgs);
  json_decref(f->fk.task);
  json_decref(f->fk.responses);
  free(f);
  return 0;
}

#define META_TASKS                                                             \
  "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","     \
  "\"io.modelcontextprotocol/clientCapabilities\":{\"extensions\":{"           \
  "\"io.modelcontextprotocol/tasks\":{}}}}"
#define META_PLAIN                                                             \
  "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","     \
  "\"io.modelcontextprotocol/clientCapabilities\":{}}"

static json_t *send_on(fixture *f, sb_mcp_session *s, const char *text) {
  json_t *msg = json_loads(text, 0, NULL);
  assert_non_null(msg);
  json_array_clear(f->cap.msgs);
  sb_mcp_server_dispatch(f->srv, s, &f->cap.out, msg);
  json_decref(msg);
  size_t n = json_array_size(f->cap.msgs);
  return n ? json_array_get(f->cap.msgs, n - 1) : NULL;
}

static json_t *result(json_t *msg) { return json_object_get(msg, "result"); }
static const char *str(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}
static int error_code(json_t *msg) {
  return (int)json_integer_value(
      json_object_get(json_object_get(msg, "error"), "code"));
}

static sb_mcp_session *legacy(fixture *f, const char *version, json_t **caps) {
  sb_mcp_session *s = sb_mcp_session_new(f->srv, &f->cap.out);
  char req[400];
  snprintf(req, sizeof req,
           "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":"
           "{\"protocolVersion\":\"%s\",\"capabilities\":{\"elicitation\":{},"
           "\"tasks\":{}},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
           version);
  json_t *r = send_on(f, s, req);
  assert_non_null(result(r));
  if (caps) *caps = json_incref(json_object_get(result(r), "capabilities"));
  return s;
}

/* ---- announced -------------------------------------------------------- */

static void test_announced(void **state) {
  fixture *f = *state;
  json_t *r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                               "\"server/discover\",\"params\":{" META_PLAIN "}}");
  json_t *caps = json_object_get(result(r), "capabilities");
  assert_true(json_is_object(json_object_get(json_object_get(caps, "extensions"),
                                             "io.modelcontextprotocol/tasks")));
  assert_null(json_object_get(caps, "tasks"));

  json_t *lc = NULL;
  sb_mcp_session *s = legacy(f, "2025-11-25", &lc);
  assert_true(json_is_object(json_object_get(
      json_object_get(json_object_get(json_object_get(lc, "tasks"), "requests"),
                      "tools"),
      "call")));
  assert_non_null(json_object_get(json_object_get(lc, "tasks"), "list"));
  assert_non_null(json_object_get(json_object_get(lc, "tasks"), "cancel"));
  assert_null(json_object_get(lc, "extensions"));
  json_decref(lc);
  /* tools/list: the task tool says it may run as one, the others not. */
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
  size_t i;
  json_t *t;
  int seen = 0;
  json_array_foreach(json_object_get(result(r), "tools"), i, t) {
    json_t *ex = json_object_get(t, "execution");
    if (strcmp(str(t, "name"), "echo") == 0) {
      assert_string_equal(str(ex, "taskSupport"), "optional");
      seen = 1;
    } else {
      assert_null(ex);
    }
  }
  assert_true(seen);
  sb_mcp_session_free(s);

  /* A revision before tasks: nothing announced, no tasks/ methods. */
  s = legacy(f, "2025-06-18", &lc);
  assert_null(json_object_get(lc, "tasks"));
  json_decref(lc);
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tasks/get\","
                    "\"params\":{\"taskId\":\"t1\"}}");
  assert_int_equal(error_code(r), SB_RPC_METHOD_NOT_FOUND);
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\","
                    "\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":"
                    "\"hi\"},\"task\":{}}}");
  assert_null(json_object_get(result(r), "task")); /* served as usual */
  assert_non_null(json_object_get(result(r), "content"));
  sb_mcp_session_free(s);
}

/* ---- 2026-07-28 ------------------------------------------------------- */

static void test_modern(void **state) {
  fixture *f = *state;
  /* Without the extension: the tool as usual, never a task. */
  json_t *r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                               "\"tools/call\",\"params\":{\"name\":\"echo\","
                               "\"arguments\":{\"text\":\"hi\"}," META_PLAIN "}}");
  assert_string_equal(str(result(r), "resultType"), "complete");
  assert_int_equal(f->fk.calls, 0);
  /* With it: CreateTaskResult, the task without what its status inlines. */
  json_object_set_new(f->fk.task, "status", json_string("completed"));
  json_object_set_new(f->fk.task, "result",
                      json_pack("{s[]sb}", "content", "isError", 1));
  r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
                       "\"params\":{\"name\":\"echo\",\"arguments\":{}," META_TASKS
                       "}}");
  json_t *t = result(r);
  assert_int_equal(f->fk.calls, 1);
  assert_string_equal(str(t, "resultType"), "task");
  assert_string_equal(str(t, "taskId"), "t1");
  assert_true(json_is_null(json_object_get(t, "ttlMs")));
  assert_int_equal(json_integer_value(json_object_get(t, "pollIntervalMs")), 500);
  assert_null(json_object_get(t, "result"));
  /* tasks/get inlines the result; isError stays "completed". */
  r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tasks/get\","
                       "\"params\":{\"taskId\":\"t1\"," META_TASKS "}}");
  t = result(r);
  assert_string_equal(str(t, "resultType"), "complete");
  assert_string_equal(str(t, "status"), "completed");
  assert_true(json_is_true(json_object_get(json_object_get(t, "result"), "isError")));
  assert_null(json_object_get(t, "inputRequests"));
  /* input_required inlines inputRequests, not the result. */
  json_object_set_new(f->fk.task, "status", json_string("input_required"));
  json_object_set_new(f->fk.task, "inputRequests",
                      json_pack("{s{ss}}", "ask/1", "method", "elicitation/create"));
  r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tasks/get\","
                       "\"params\":{\"taskId\":\"t1\"," META_TASKS "}}");
  assert_non_null(json_object_get(json_object_get(result(r), "inputRequests"), "ask/1"));
  assert_null(json_object_get(result(r), "result"));
  /* tasks/update: inputResponses required; then an empty acknowledgement. */
  r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tasks/update\","
                       "\"params\":{\"taskId\":\"t1\"," META_TASKS "}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tasks/update\","
                       "\"params\":{\"taskId\":\"t1\",\"inputResponses\":{"
                       "\"ask/1\":{\"action\":\"accept\"}}," META_TASKS "}}");
  assert_string_equal(str(result(r), "resultType"), "complete");
  assert_non_null(json_object_get(f->fk.responses, "ask/1"));
  /* tasks/cancel: acknowledged, even for a task that had ended. */
  f->fk.ended = 1;
  r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tasks/cancel\","
                       "\"params\":{\"taskId\":\"t1\"," META_TASKS "}}");
  assert_non_null(result(r));
  assert_null(json_object_get(result(r), "status"));
  /* Unknown ids: -32602; 2025-11-25 methods do not exist here. */
  r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tasks/get\","
                       "\"params\":{\"taskId\":\"nope\"," META_TASKS "}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tasks/result\","
                       "\"params\":{\"taskId\":\"t1\"," META_TASKS "}}");
  assert_int_equal(error_code(r), SB_RPC_METHOD_NOT_FOUND);
  r = send_on(f, NULL, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tasks/get\","
                       "\"params\":{" META_TASKS "}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
}

/* ---- 2025-11-25 ------------------------------------------------------- */

static void test_legacy(void **state) {
  fixture *f = *state;
  sb_mcp_session *s = legacy(f, "2025-11-25", NULL);
  /* No params.task: the tool as usual. */
  json_t *r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                            "\"tools/call\",\"params\":{\"name\":\"echo\","
                            "\"arguments\":{\"text\":\"hi\"}}}");
  assert_non_null(json_object_get(result(r), "content"));
  assert_int_equal(f->fk.calls, 0);
  /* A task on a tool without task support: -32601. */
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
                    "\"params\":{\"name\":\"fail\",\"arguments\":{},\"task\":{}}}");
  assert_int_equal(error_code(r), SB_RPC_METHOD_NOT_FOUND);
  /* CreateTaskResult {task}: begins in working, ttl and pollInterval. */
  json_object_set_new(f->fk.task, "status", json_string("input_required"));
  json_object_set_new(f->fk.task, "statusMessage", json_string("asks"));
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
                    "\"params\":{\"name\":\"echo\",\"arguments\":{},\"task\":{"
                    "\"ttl\":60000}}}");
  json_t *t = json_object_get(result(r), "task");
  assert_string_equal(str(t, "taskId"), "t1");
  assert_string_equal(str(t, "status"), "working");
  assert_true(json_is_null(json_object_get(t, "ttl")));
  assert_int_equal(json_integer_value(json_object_get(t, "pollInterval")), 500);
  assert_null(json_object_get(t, "ttlMs"));
  assert_null(json_object_get(result(r), "resultType"));
  /* tasks/get: a tool result with isError is a failed task, no result. */
  json_object_set_new(f->fk.task, "status", json_string("completed"));
  json_object_set_new(f->fk.task, "result",
                      json_pack("{s[]sb}", "content", "isError", 1));
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tasks/get\","
                    "\"params\":{\"taskId\":\"t1\"}}");
  assert_string_equal(str(result(r), "status"), "failed");
  assert_null(json_object_get(result(r), "result"));
  assert_string_equal(str(result(r), "createdAt"), "2026-12-02T08:00:00.000Z");
  /* tasks/list: the tasks of 2025-11-25 and the cursor. */
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tasks/list\"}");
  assert_int_equal(json_array_size(json_object_get(result(r), "tasks")), 1);
  assert_string_equal(str(result(r), "nextCursor"), "page2");
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tasks/list\","
                    "\"params\":{\"cursor\":5}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tasks/list\","
                    "\"params\":{\"cursor\":\"\"}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_string_equal(str(json_object_get(r, "error"), "message"),
                      "Invalid cursor");
  /* tasks/cancel of an ended task: -32602 naming its status. */
  f->fk.ended = 1;
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tasks/cancel\","
                    "\"params\":{\"taskId\":\"t1\"}}");
  assert_int_equal(error_code(r), SB_RPC_INVALID_PARAMS);
  assert_non_null(strstr(str(json_object_get(r, "error"), "message"),
                         "terminal status 'failed'"));
  /* ... of a working one: the cancelled task. */
  f->fk.ended = 0;
  json_object_set_new(f->fk.task, "status", json_string("working"));
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tasks/cancel\","
                    "\"params\":{\"taskId\":\"t1\"}}");
  assert_string_equal(str(result(r), "status"), "cancelled");
  /* tasks/update is 2026 only. */
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tasks/update\","
                    "\"params\":{\"taskId\":\"t1\",\"inputResponses\":{}}}");
  assert_int_equal(error_code(r), SB_RPC_METHOD_NOT_FOUND);
  /* tasks/result: the question and the result carry related-task. */
  r = send_on(f, s, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tasks/result\","
                    "\"params\":{\"taskId\":\"t1\"}}");
  assert_string_equal(str(r, "method"), "elicitation/create");
  assert_string_equal(
      str(json_object_get(json_object_get(json_object_get(r, "params"), "_meta"),
                          "io.modelcontextprotocol/related-task"),
          "taskId"),
      "t1");
  char answer[200];
  snprintf(answer, sizeof answer,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"action\":\"accept\","
           "\"content\":{}}}",
           (long long)json_integer_value(json_object_get(r, "id")));
  r = send_on(f, s, answer);
  assert_null(f->fk.waiting);
  assert_int_equal(json_integer_value(json_object_get(r, "id")), 10);
  assert_string_equal(
      str(json_object_get(json_object_get(result(r), "_meta"),
                          "io.modelcontextprotocol/related-task"),
          "taskId"),
      "t1");
  sb_mcp_session_free(s);
}

static void test_http_headers(void **state) {
  (void)state;
  json_t *msg = json_loads("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                           "\"tasks/get\",\"params\":{\"taskId\":\"t1\","
                           META_TASKS "}}",
                           0, NULL);
  sb_error err = {0};
  assert_int_equal(
      sb_mcp_check_http_headers(msg, "2026-07-28", "tasks/get", "t1", &err), 0);
  assert_int_equal(
      sb_mcp_check_http_headers(msg, "2026-07-28", "tasks/get", "t2", &err),
      SB_RPC_HEADER_MISMATCH);
  assert_int_equal(
      sb_mcp_check_http_headers(msg, "2026-07-28", "tasks/get", NULL, &err),
      SB_RPC_HEADER_MISMATCH);
  json_decref(msg);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_announced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_modern, setup, teardown),
      cmocka_unit_test_setup_teardown(test_legacy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_headers, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
