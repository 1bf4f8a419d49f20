/* test_flow_cond.c: conditions (src/flow/cond.c) evaluated against a
 * small dealership context, "$path" templates and durations
 * (src/flow/template.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "flow/flow.h"
#include "test_json.h"

/* ---- conditions and templates ----------------------------------------- */

static json_t *context_doc(void) {
  return J("{'id': 'ctx-1', 'version': 7, 'data': {"
           " 'conversation': {'intent': 'buy', 'messages': ["
           "   {'role': 'user', 'content': 'a red civic please'}],"
           "   'entities': {'tags': ['web', 'new']}},"
           " 'workflow': {'variables': {'budget': 30000, 'vin': null,"
           "   'score': 0.75}, 'outputs': {'intake': {'intent': 'buy'}}},"
           " 'user': {'id': 'u1'}, 'business': {}}}");
}

/* The condition (JSON text) parsed as a one-case branch of a workflow:
 * the definition, whose steps[0].cases[0].cond it is. */
static sb_flow_def *branch_on(const char *cond) {
  char text[1024];
  snprintf(text, sizeof text,
           "{'name': 'w', 'steps': [{'id': 'r', 'branch': [{'if': %s, "
           "'goto': 'r'}]}]}",
           cond);
  json_t *src = J(text);
  sb_flow_def *d = NULL;
  sb_error err;
  if (sb_flow_def_from_json(src, NULL, "c", &d, &err) != 0)
    fail_msg("%s: %s", cond, err.msg);
  json_decref(src);
  return d;
}

/* Parse the condition and evaluate it. */
static int holds(const char *cond, const sb_flow_scope *scope) {
  sb_flow_def *d = branch_on(cond);
  int r = sb_flow_cond_eval(&d->steps[0].cases[0].cond, scope);
  sb_flow_def_free(d);
  return r;
}

static void test_conditions(void **state) {
  (void)state;
  json_t *ctx = context_doc();
  sb_flow_scope sc = {ctx, "run-9", "lead"};
  /* equals, not_equals: JSON values, numbers by value */
  assert_true(holds("{'path': 'conversation.intent', 'equals': 'buy'}", &sc));
  assert_false(holds("{'path': 'conversation.intent', 'equals': 'sell'}", &sc));
  assert_true(
      holds("{'path': 'workflow.variables.budget', 'equals': 30000.0}", &sc));
  assert_true(holds("{'path': 'workflow.outputs.intake', 'equals': {'intent': "
                    "'buy'}}",
                    &sc));
  assert_true(holds("{'path': 'conversation.intent', 'equals': "
                    "'$workflow.outputs.intake.intent'}",
                    &sc));
  assert_true(holds("{'path': 'context.id', 'equals': 'ctx-1'}", &sc));
  assert_true(holds("{'path': 'context.version', 'equals': 7}", &sc));
  assert_true(holds("{'path': 'run.workflow', 'equals': 'lead'}", &sc));
  assert_true(holds("{'path': 'user.nope', 'equals': null}", &sc));
  assert_true(holds("{'path': 'conversation.intent', 'not_equals': 'x'}", &sc));
  assert_false(
      holds("{'path': 'conversation.intent', 'not_equals': 'buy'}", &sc));
  /* in */
  assert_true(
      holds("{'path': 'conversation.intent', 'in': ['sell', 'buy']}", &sc));
  assert_false(holds("{'path': 'conversation.intent', 'in': []}", &sc));
  assert_true(
      holds("{'path': 'workflow.variables.budget', 'in': [1, 3e4]}", &sc));
  /* exists: null counts as missing */
  assert_true(holds("{'path': 'user.id', 'exists': true}", &sc));
  assert_false(holds("{'path': 'user.name', 'exists': true}", &sc));
  assert_true(holds("{'path': 'user.name', 'exists': false}", &sc));
  assert_true(
      holds("{'path': 'workflow.variables.vin', 'exists': false}", &sc));
  /* gt, gte, lt, lte: numbers only */
  assert_true(holds("{'path': 'workflow.variables.budget', 'gt': 20000}", &sc));
  assert_false(
      holds("{'path': 'workflow.variables.budget', 'gt': 30000}", &sc));
  assert_true(
      holds("{'path': 'workflow.variables.budget', 'gte': 30000}", &sc));
  assert_true(holds("{'path': 'workflow.variables.score', 'lt': 1}", &sc));
  assert_true(holds("{'path': 'workflow.variables.score', 'lte': 0.75}", &sc));
  assert_false(holds("{'path': 'conversation.intent', 'lt': 5}", &sc));
  assert_false(holds("{'path': 'user.none', 'gte': 0}", &sc));
  assert_true(holds("{'path': 'workflow.variables.score', 'lt': "
                    "'$workflow.variables.budget'}",
                    &sc));
  /* contains: substring or array membership */
  assert_true(holds("{'path': 'conversation.messages[-1].content', "
                    "'contains': 'civic'}",
                    &sc));
  assert_false(holds("{'path': 'conversation.messages[-1].content', "
                     "'contains': 'accord'}",
                     &sc));
  assert_true(holds("{'path': 'conversation.entities.tags', 'contains': "
                    "'web'}",
                    &sc));
  assert_false(holds("{'path': 'conversation.entities.tags', 'contains': "
                     "'old'}",
                     &sc));
  assert_false(
      holds("{'path': 'workflow.variables.budget', 'contains': 3}", &sc));
  /* all, any, not */
  assert_true(holds("{'all': [{'path': 'user.id', 'exists': true}, "
                    "{'path': 'conversation.intent', 'equals': 'buy'}]}",
                    &sc));
  assert_false(holds("{'all': [{'path': 'user.id', 'exists': true}, "
                     "{'path': 'conversation.intent', 'equals': 'x'}]}",
                     &sc));
  assert_true(holds("{'any': [{'path': 'user.id', 'exists': false}, "
                    "{'path': 'conversation.intent', 'equals': 'buy'}]}",
                    &sc));
  assert_false(holds("{'any': [{'path': 'user.id', 'exists': false}]}", &sc));
  assert_true(holds("{'not': {'path': 'user.id', 'exists': false}}", &sc));
  /* no scope: every path is missing */
  assert_true(holds("{'path': 'user.id', 'exists': false}", NULL));
  assert_int_equal(sb_flow_cond_eval(NULL, &sc), 0);
  json_decref(ctx);
}

/* A condition reads the context where it is: comparing two arrays of
 * 100,000 numbers takes no copy of either (before, each condition of a
 * branch deep-copied both, on the loop: seconds for a few dozen). With at
 * most a few dozen allocations allowed, a copy would fail and the
 * condition with it. The template's own values are not copied either. */
static void test_conditions_copy_nothing(void **state) {
  (void)state;
  json_t *big = json_array(), *big2 = json_array();
  for (int i = 0; i < 100000; i++) {
    json_array_append_new(big, json_integer(i));
    json_array_append_new(big2, json_integer(i));
  }
  json_t *ctx = J("{'id': 'c', 'version': 1, 'data': {'workflow': "
                  "{'variables': {}}}}");
  json_t *vars = json_object_get(
      json_object_get(json_object_get(ctx, "data"), "workflow"), "variables");
  json_object_set_new(vars, "big", big);
  json_object_set_new(vars, "big2", big2);
  sb_flow_scope sc = {ctx, "run-1", "w"};
  const char *cond = "{'all': [{'path': 'workflow.variables.big', 'equals': "
                     "'$workflow.variables.big2'}, {'path': "
                     "'workflow.variables.big', 'contains': 99999}, "
                     "{'path': 'workflow.variables.big[-1:]', 'equals': "
                     "[99999]}]}";
  sb_flow_def *d = branch_on(cond);
  sb_alloc_fail_after(64);
  int r = sb_flow_cond_eval(&d->steps[0].cases[0].cond, &sc);
  sb_alloc_fail_after(0);
  assert_true(r);
  /* ...and unchanged: what it read is the context's own. */
  assert_int_equal(json_array_size(json_object_get(vars, "big")), 100000);
  json_array_set_new(json_object_get(vars, "big2"), 5, json_integer(-1));
  assert_false(sb_flow_cond_eval(&d->steps[0].cases[0].cond, &sc));
  sb_flow_def_free(d);
  json_decref(ctx);
}

static void template_is(const char *tmpl, const char *want,
                        const sb_flow_scope *sc) {
  json_t *t = J(tmpl), *w = J(want);
  json_t *got = sb_flow_template(t, sc);
  assert_non_null(got);
  assert_json_eq(got, w);
  json_decref(got);
  json_decref(t);
  json_decref(w);
}

static void test_templates(void **state) {
  (void)state;
  json_t *ctx = context_doc();
  sb_flow_scope sc = {ctx, "run-9", "lead"};
  template_is("'$conversation.intent'", "'buy'", &sc);
  template_is("'$conversation.messages[-1]'",
              "{'role': 'user', 'content': 'a red civic please'}", &sc);
  template_is("'$conversation.messages[0:].role'", "['user']", &sc);
  template_is("'$user.missing'", "null", &sc);
  template_is("'$$literal'", "'$literal'", &sc);
  template_is("'$$'", "'$'", &sc);
  template_is("'plain $ text'", "'plain $ text'", &sc);
  template_is("{'ctx': '$context.id', 'v': '$context.version', "
              "'run': '$run.id', 'wf': '$run.workflow', 'n': 3, 'b': true,"
              " 'list': ['$user.id', {'deep': '$workflow.variables.budget'}],"
              " 'none': null}",
              "{'ctx': 'ctx-1', 'v': 7, 'run': 'run-9', 'wf': 'lead', 'n': 3,"
              " 'b': true, 'list': ['u1', {'deep': 30000}], 'none': null}",
              &sc);
  sb_flow_scope no_run = {ctx, NULL, NULL};
  template_is("['$run.id', '$run.workflow']", "[null, null]", &no_run);
  template_is("'$user.id'", "null", NULL);
  /* the result shares nothing with the context */
  json_t *t = J("'$workflow.outputs'");
  json_t *got = sb_flow_template(t, &sc);
  json_object_set_new(got, "x", json_true());
  json_t *again = sb_flow_template(t, &sc);
  assert_null(json_object_get(again, "x"));
  json_decref(again);
  json_decref(got);
  /* allocation failures give NULL and leak nothing */
  json_t *big = J("{'a': ['$conversation.messages', '$context.id', '$$x'], "
                  "'b': {'c': '$workflow'}}");
  size_t base = sb_alloc_live_bytes();
  int failures = 0;
  for (long n = 1; n < 200; n++) {
    sb_alloc_fail_after(n);
    json_t *r = sb_flow_template(big, &sc);
    sb_alloc_fail_after(0);
    if (r) {
      json_decref(r);
      break;
    }
    failures++;
    assert_int_equal(sb_alloc_live_bytes(), base);
  }
  assert_true(failures > 5);
  json_decref(big);
  json_decref(t);
  json_decref(ctx);
}

static void test_durations(void **state) {
  (void)state;
  static const struct {
    const char *s;
    uint64_t ms;
  } ok[] = {{"0ms", 0},
            {"500ms", 500},
            {"90s", 90000},
            {"5m", 300000},
            {"1h", 3600000},
            {"2d", 172800000},
            {"366d", 366ULL * 86400000},
            {"007s", 7000}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint64_t ms = 1;
    assert_int_equal(sb_flow_duration_parse(ok[i].s, &ms), 0);
    assert_int_equal(ms, ok[i].ms);
  }
  static const char *const bad_durations[] = {"",
                                              "s",
                                              "10",
                                              "10 s",
                                              "1.5s",
                                              "-1s",
                                              "10S",
                                              "10sec",
                                              "1w",
                                              "367d",
                                              "9999999999999ms",
                                              " 1s",
                                              "1s ",
                                              "1h30m"};
  for (size_t i = 0; i < sizeof bad_durations / sizeof bad_durations[0]; i++) {
    uint64_t ms = 42;
    if (sb_flow_duration_parse(bad_durations[i], &ms) != SB_EINVAL)
      fail_msg("\"%s\" parsed", bad_durations[i]);
    assert_int_equal(ms, 42);
  }
  uint64_t ms;
  assert_int_equal(sb_flow_duration_parse(NULL, &ms), SB_EINVAL);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conditions),
      cmocka_unit_test(test_conditions_copy_nothing),
      cmocka_unit_test(test_templates),
      cmocka_unit_test(test_durations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
