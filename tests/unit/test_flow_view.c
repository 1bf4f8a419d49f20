/* test_flow_view.c: the view of a stored run (sb_flow_run_view in
 * src/flow/engine.c), what REST, MCP and the CLI's `runs get|list` show:
 * the engine's bookkeeping left out, what the run waits for spelled out,
 * and lists without history and input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "core/core.h"
#include "flow/flow.h"

static const char stored[] =
    "{\"id\": \"r1\", \"workflow\": \"w\", \"status\": \"waiting\","
    " \"contextId\": \"c1\", \"contextVersion\": 3,"
    " \"definition\": {\"name\": \"w\"}, \"visits\": {\"confirm\": 1},"
    " \"lastAgent\": \"intake\", \"input\": {\"variables\": {\"a\": 1}},"
    " \"history\": [{\"step\": \"intake\", \"status\": \"completed\"}],"
    " \"active\": [{\"step\": \"confirm\", \"visit\": 1, \"kind\": \"ask\","
    "   \"startedAt\": 5, \"message\": \"Which slot?\","
    "   \"schema\": {\"type\": \"object\"}},"
    "  {\"step\": \"quote\", \"visit\": 1, \"kind\": \"call\"}]}";

static void test_view_of_a_stored_run(void **state) {
  (void)state;
  json_t *v = sb_flow_run_view(stored, 0);
  assert_non_null(v);
  assert_null(json_object_get(v, "definition"));
  assert_null(json_object_get(v, "visits"));
  assert_null(json_object_get(v, "lastAgent"));
  assert_null(json_object_get(v, "active"));
  assert_int_equal(json_integer_value(json_object_get(v, "contextVersion")), 3);
  json_t *current = json_object_get(v, "current");
  assert_int_equal(json_array_size(current), 2);
  assert_string_equal(json_string_value(json_array_get(current, 0)), "confirm");
  json_t *waiting = json_object_get(v, "waiting");
  assert_int_equal(json_array_size(waiting), 1); /* the call waits for no one */
  json_t *w = json_array_get(waiting, 0);
  assert_string_equal(json_string_value(json_object_get(w, "kind")), "ask");
  assert_string_equal(json_string_value(json_object_get(w, "message")),
                      "Which slot?");
  assert_non_null(json_object_get(w, "schema"));
  assert_int_equal(json_array_size(json_object_get(v, "history")), 1);
  assert_non_null(json_object_get(v, "input"));
  json_decref(v);
}

static void test_listing_and_unreadable(void **state) {
  (void)state;
  json_t *v = sb_flow_run_view(stored, 1);
  assert_non_null(v);
  assert_null(json_object_get(v, "history"));
  assert_null(json_object_get(v, "input"));
  assert_string_equal(json_string_value(json_object_get(v, "status")),
                      "waiting");
  json_decref(v);
  assert_null(sb_flow_run_view("{not json", 0));
  assert_null(sb_flow_run_view("[1, 2]", 0));
  assert_null(sb_flow_run_view(NULL, 0));
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_view_of_a_stored_run),
      cmocka_unit_test(test_listing_and_unreadable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
