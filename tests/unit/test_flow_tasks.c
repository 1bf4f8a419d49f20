/* Unit tests for src/app/flow_tasks.c: the task a run view maps to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "app/app_internal.h"

static json_t *run_of(const char *status, const char *extra) {
  char text[1024];
  snprintf(text, sizeof text,
           "{\"id\":\"r1\",\"workflow\":\"w\",\"status\":\"%s\","
           "\"createdAt\":1764662400123,\"updatedAt\":1764662401000,"
           "\"current\":[],\"waiting\":[],\"history\":[]%s%s}",
           status, extra ? "," : "", extra ? extra : "");
  json_t *run = json_loads(text, 0, NULL);
  assert_non_null(run);
  return run;
}

static const char *str(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static void test_fields(void **state) {
  (void)state;
  json_t *run = run_of("running", NULL);
  json_object_set_new(run, "current", json_pack("[ss]", "quote", "search"));
  json_t *t = app_task_of_run(run);
  assert_string_equal(str(t, "taskId"), "r1");
  assert_string_equal(str(t, "status"), "working");
  assert_string_equal(str(t, "createdAt"), "2025-12-02T08:00:00.123Z");
  assert_string_equal(str(t, "lastUpdatedAt"), "2025-12-02T08:00:01.000Z");
  assert_true(json_is_null(json_object_get(t, "ttlMs")));
  assert_true(json_integer_value(json_object_get(t, "pollIntervalMs")) > 0);
  assert_string_equal(str(t, "statusMessage"), "running step quote, search");
  assert_null(json_object_get(t, "result"));
  json_decref(t);
  json_decref(run);
}

static void test_waiting(void **state) {
  (void)state;
  /* An ask: input_required, one elicitation per question, keyed by the
   * step and its visit. */
  json_t *run = run_of("waiting", NULL);
  json_object_set_new(
      run, "waiting",
      json_pack("[{sssssisss{ss}}]", "step", "confirm", "kind", "ask", "visit",
                2, "message", "Which slot?", "schema", "type", "object"));
  json_t *t = app_task_of_run(run);
  assert_string_equal(str(t, "status"), "input_required");
  json_t *req = json_object_get(json_object_get(t, "inputRequests"), "confirm/2");
  assert_non_null(req);
  assert_int_equal(json_object_size(json_object_get(t, "inputRequests")), 1);
  assert_string_equal(str(req, "method"), "elicitation/create");
  json_t *params = json_object_get(req, "params");
  assert_string_equal(str(params, "message"), "Which slot?");
  assert_string_equal(str(params, "mode"), "form");
  assert_string_equal(str(json_object_get(params, "requestedSchema"), "type"),
                      "object");
  json_decref(t);
  /* A wait for an event is the server's own: working. */
  json_object_set_new(run, "waiting",
                      json_pack("[{sssssiss}]", "step", "approval", "kind",
                                "wait", "visit", 1, "event", "finance.approved"));
  t = app_task_of_run(run);
  assert_string_equal(str(t, "status"), "working");
  assert_null(json_object_get(t, "inputRequests"));
  assert_non_null(strstr(str(t, "statusMessage"), "finance.approved"));
  json_decref(t);
  json_decref(run);
}

static void test_ended(void **state) {
  (void)state;
  json_t *run = run_of("completed", NULL);
  json_t *t = app_task_of_run(run);
  assert_string_equal(str(t, "status"), "completed");
  json_t *res = json_object_get(t, "result");
  assert_string_equal(str(json_object_get(res, "structuredContent"), "id"), "r1");
  assert_null(json_object_get(res, "isError"));
  json_decref(t);
  json_decref(run);

  /* A failed run is a tool result with isError, not a JSON-RPC error. */
  run = run_of("failed", "\"error\":{\"step\":\"quote\",\"message\":\"agent down\"}");
  t = app_task_of_run(run);
  assert_string_equal(str(t, "status"), "completed");
  assert_true(json_is_true(json_object_get(json_object_get(t, "result"), "isError")));
  assert_null(json_object_get(t, "error"));
  assert_non_null(strstr(str(t, "statusMessage"), "agent down"));
  json_decref(t);
  json_decref(run);

  run = run_of("cancelled", NULL);
  t = app_task_of_run(run);
  assert_string_equal(str(t, "status"), "cancelled");
  assert_null(json_object_get(t, "result"));
  json_decref(t);
  json_decref(run);
}

/* A run this server cannot bring back (blocked): working, with no
 * question to answer (answers are refused), saying why. */
static void test_blocked(void **state) {
  (void)state;
  json_t *run = run_of("waiting", "\"blocked\":{\"reason\":\"definition\","
                                   "\"message\":\"its definition no longer "
                                   "loads: x\"}");
  json_object_set_new(
      run, "waiting",
      json_pack("[{sssssisss{ss}}]", "step", "confirm", "kind", "ask", "visit",
                1, "message", "Which slot?", "schema", "type", "object"));
  json_t *t = app_task_of_run(run);
  assert_string_equal(str(t, "status"), "working");
  assert_null(json_object_get(t, "inputRequests"));
  assert_string_equal(str(t, "statusMessage"),
                      "blocked: its definition no longer loads: x "
                      "(cancelling ends it)");
  json_decref(t);
  json_decref(run);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fields),
      cmocka_unit_test(test_waiting),
      cmocka_unit_test(test_ended),
      cmocka_unit_test(test_blocked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
