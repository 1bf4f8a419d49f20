/* test_ctx_project.c: selective projection and path syntax
 * (src/ctx/project.c).
 *
 * The fixture is a small dealership context: ten messages m0..m9, fifteen
 * vehicles v0..v14, so every slice result can be written out literally.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "test_json.h"
#include "ctx/ctx.h"

/* ---- helpers ---------------------------------------------------------- */



static json_t *fixture(void) {
  json_t *msgs = json_array(), *vehicles = json_array();
  for (int i = 0; i < 10; i++)
    json_array_append_new(
        msgs, json_pack("{s:s, s:s+}", "role", i % 2 ? "assistant" : "user",
                        "content", "m", (char[]){(char)('0' + i), 0}));
  for (int i = 0; i < 15; i++)
    json_array_append_new(vehicles, json_pack("{s:i}", "v", i));
  return json_pack(
      "{s:{s:o, s:s, s:{s:s}, s:s, s:s},"
      " s:{s:s, s:{s:s, s:i}, s:[]},"
      " s:{s:s, s:{s:s}, s:{s:s}},"
      " s:{s:{s:o, s:i}, s:{s:b}}}",
      "conversation", "messages", msgs, "intent", "buy", "entities", "model",
      "civic", "sentiment", "neutral", "language", "en", "workflow",
      "currentStep", "quote", "variables", "vin", "1HGCM82633A004352", "budget",
      30000, "completedSteps", "user", "id", "u1", "preferences", "contact",
      "email", "profile", "name", "Ada", "business", "inventory", "vehicles",
      vehicles, "count", 15, "policies", "financing", 1);
}

/* The selection of messages (or vehicles) with these indexes, as the
 * output array should hold them. */
static json_t *msgs_at(const int *idx, size_t n) {
  json_t *all = fixture(), *out = json_array();
  json_t *msgs =
      json_object_get(json_object_get(all, "conversation"), "messages");
  for (size_t i = 0; i < n; i++)
    json_array_append(out, json_array_get(msgs, (size_t)idx[i]));
  json_decref(all);
  return out;
}

/* Project the fixture onto `paths` (JSON text) and compare with want;
 * want_missing may be NULL for "[]". */
static void project_ok(const char *paths, json_t *want,
                       const char *want_missing) {
  json_t *data = fixture(), *before = fixture(), *p = J(paths);
  json_t *out = NULL, *missing = NULL;
  sb_error err = {0};
  if (sb_ctx_project(data, p, &out, &missing, &err) != 0)
    fail_msg("project %s: %s", paths, err.msg);
  assert_json_eq(out, want);
  json_t *wm = J(want_missing ? want_missing : "[]");
  assert_json_eq(missing, wm);
  assert_json_eq(data, before);
  json_decref(wm);
  json_decref(out);
  json_decref(missing);
  json_decref(data);
  json_decref(before);
  json_decref(p);
  json_decref(want);
}

/* {"conversation": {"messages": [...]}} for message indexes. */
static json_t *conv_msgs(const int *idx, size_t n) {
  return json_pack("{s:{s:o}}", "conversation", "messages", msgs_at(idx, n));
}

#define CONV(...)                                                              \
  conv_msgs((const int[]){__VA_ARGS__},                                        \
            sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

/* ---- projection ------------------------------------------------------- */

static void test_project_slices_and_indexes(void **state) {
  (void)state;
  project_ok("['conversation.messages[-5:]']", CONV(5, 6, 7, 8, 9), NULL);
  project_ok("['conversation.messages[0]']", CONV(0), NULL);
  project_ok("['conversation.messages[-1]']", CONV(9), NULL);
  project_ok("['conversation.messages[2:4]']", CONV(2, 3), NULL);
  project_ok("['conversation.messages[:2]']", CONV(0, 1), NULL);
  project_ok("['conversation.messages[8:]']", CONV(8, 9), NULL);
  project_ok("['conversation.messages[-3:-1]']", CONV(7, 8), NULL);
  /* slices clamp like Python's; an empty slice is not "missing" */
  project_ok("['conversation.messages[-50:2]']", CONV(0, 1), NULL);
  project_ok("['conversation.messages[5:2]']",
             J("{'conversation': {'messages': []}}"), NULL);
  project_ok("['conversation.messages[20:]']",
             J("{'conversation': {'messages': []}}"), NULL);
  /* the spec's vehicles example: the last ten of fifteen */
  json_t *want = J("{'business': {'inventory': {'vehicles': [{'v': 5}, "
                   "{'v': 6}, {'v': 7}, {'v': 8}, {'v': 9}, {'v': 10}, "
                   "{'v': 11}, {'v': 12}, {'v': 13}, {'v': 14}]}}}");
  project_ok("['business.inventory.vehicles[-10:]']", want, NULL);
}

static void test_project_keeps_nesting_and_merges(void **state) {
  (void)state;
  json_t *want = CONV(5, 6, 7, 8, 9);
  json_object_set_new(want, "workflow",
                      J("{'variables': {'vin': '1HGCM82633A004352'}}"));
  project_ok("['conversation.messages[-5:]', 'workflow.variables.vin']", want,
             NULL);
  /* overlapping selections: one array, source order, no duplicates */
  project_ok("['conversation.messages[-3:]', 'conversation.messages[0]', "
             "'conversation.messages[8]', 'conversation.messages[7:9]']",
             CONV(0, 7, 8, 9), NULL);
  /* a parent path includes the whole subtree, in either order */
  json_t *conv = fixture();
  want =
      json_pack("{s:O}", "conversation", json_object_get(conv, "conversation"));
  project_ok("['conversation.messages[0]', 'conversation', "
             "'conversation.intent']",
             want, NULL);
  /* inside elements: fields merge per element */
  project_ok("['conversation.messages[-1].content', "
             "'conversation.messages[-1].role', "
             "'conversation.messages[0].role']",
             J("{'conversation': {'messages': [{'role': 'user'}, "
               "{'role': 'assistant', 'content': 'm9'}]}}"),
             NULL);
  /* whole sections and objects */
  want =
      json_pack("{s:O, s:{s:O}}", "user", json_object_get(conv, "user"),
                "business", "policies",
                json_object_get(json_object_get(conv, "business"), "policies"));
  project_ok("['user', 'business.policies', 'user.preferences']", want, NULL);
  json_decref(conv);
  /* nothing asked, nothing given */
  project_ok("[]", J("{}"), NULL);
}

static void test_project_missing(void **state) {
  (void)state;
  project_ok("['user.preferences.color', 'workflow.variables.vin', "
             "'business.inventory.vehicles[99]', 'conversation.intent.x', "
             "'conversation.messages.x', 'user.id[0]', "
             "'workflow.completedSteps[0]']",
             J("{'workflow': {'variables': {'vin': '1HGCM82633A004352'}}}"),
             "['user.preferences.color', 'business.inventory.vehicles[99]', "
             "'conversation.intent.x', 'conversation.messages.x', "
             "'user.id[0]', 'workflow.completedSteps[0]']");
  /* a path below a slice that no element has is missing (not an empty
   * list counted as covered); an empty slice itself is not */
  project_ok("['conversation.messages[-2:].agentId']", J("{}"),
             "['conversation.messages[-2:].agentId']");
  project_ok("['workflow.completedSteps[-2:]']",
             J("{'workflow': {'completedSteps': []}}"), NULL);
  project_ok("['workflow.completedSteps[-2:].x']", J("{}"),
             "['workflow.completedSteps[-2:].x']");
  {
    /* elements of a slice that lack the rest are skipped */
    json_t *d = J("{'conversation': {'messages': [{'agentId': 'sales'}, "
                  "{'role': 'user'}, {'agentId': 'parts', 'role': 'x'}]}}");
    json_t *ps = J("['conversation.messages[-3:].agentId']");
    json_t *o = NULL, *m = NULL;
    assert_int_equal(sb_ctx_project(d, ps, &o, &m, NULL), 0);
    json_t *w = J("{'conversation': {'messages': [{'agentId': 'sales'}, "
                  "{'agentId': 'parts'}]}}"),
           *wm = J("[]");
    assert_json_eq(o, w);
    assert_json_eq(m, wm);
    json_decref(o);
    json_decref(m);
    json_decref(w);
    json_decref(wm);
    json_decref(d);
    json_decref(ps);
  }
  /* a section absent from the data */
  json_t *data = J("{'conversation': {}}"), *paths = J("['user.id']");
  json_t *out = NULL, *missing = NULL;
  assert_int_equal(sb_ctx_project(data, paths, &out, &missing, NULL), 0);
  json_t *want_out = J("{}"), *want_missing = J("['user.id']");
  assert_json_eq(out, want_out);
  assert_json_eq(missing, want_missing);
  json_decref(out);
  json_decref(missing);
  /* missing is optional */
  assert_int_equal(sb_ctx_project(data, paths, &out, NULL, NULL), 0);
  assert_json_eq(out, want_out);
  json_decref(out);
  json_decref(want_out);
  json_decref(want_missing);
  json_decref(data);
  json_decref(paths);
}

static void test_project_output_is_independent(void **state) {
  (void)state;
  json_t *data = fixture(), *before = fixture();
  json_t *paths = J("['conversation.messages[0]', 'user.preferences']");
  json_t *out = NULL;
  assert_int_equal(sb_ctx_project(data, paths, &out, NULL, NULL), 0);
  json_object_set_new(
      json_array_get(
          json_object_get(json_object_get(out, "conversation"), "messages"), 0),
      "content", json_string("changed"));
  json_object_clear(
      json_object_get(json_object_get(out, "user"), "preferences"));
  assert_json_eq(data, before);
  json_decref(out);
  json_decref(data);
  json_decref(before);
  json_decref(paths);
}

/* ---- path syntax ------------------------------------------------------ */

static void test_path_syntax(void **state) {
  (void)state;
  static const char *const good[] = {
      "conversation",
      "conversation.messages",
      "conversation.messages[-5:]",
      "conversation.messages[0]",
      "conversation.messages[2:4]",
      "conversation.messages[:]",
      "conversation.messages[-1].content",
      "business.inventory.vehicles[-10:]",
      "workflow.variables.vin",
      "user.preferences",
      "workflow.variables.matrix[0][1]",
      "user.profile.e-mail addr",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    sb_error err = {0};
    if (sb_ctx_path_validate(good[i], &err) != 0)
      fail_msg("%s refused: %s", good[i], err.msg);
  }
  static const struct {
    const char *path;
    const char *why;
  } bad[] = {
      {"", "invalid path \"\": empty path"},
      {"conversation..messages",
       "invalid path \"conversation..messages\": empty segment at offset 13"},
      {".conversation", "empty segment at offset 0"},
      {"conversation.", "empty segment at offset 13"},
      {"conversation.messages[", "unclosed '[' at offset 21"},
      {"conversation.messages[0", "unclosed '[' at offset 21"},
      {"conversation.messages[a]", "expected an integer or slice"},
      {"conversation.messages[]", "expected an integer or slice"},
      {"conversation.messages[1:x]", "unexpected 'x' at offset 24"},
      {"conversation.messages[::2]", "unexpected ':'"},
      {"conversation.messages[01]", "leading zero"},
      {"conversation.messages[-0]", "leading zero"},
      {"conversation.messages[-]", "'-' without digits"},
      {"conversation.messages[ 1]", "expected an integer or slice"},
      {"conversation.messages[1]x", "unexpected 'x' at offset 24"},
      {"conversation.messages]", "unexpected ']' at offset 21"},
      {"conversation.messages[9999999999999999]", "too large"},
      {"orders.items",
       "invalid path \"orders.items\": unknown section \"orders\" (expected "
       "conversation, workflow, user or business)"},
      {"data.conversation", "unknown section \"data\""},
      {"[0]", "empty segment at offset 0"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sb_error err = {0};
    int rc = sb_ctx_path_validate(bad[i].path, &err);
    if (rc != SB_EINVAL) fail_msg("%s accepted", bad[i].path);
    if (!strstr(err.msg, bad[i].why))
      fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].path, err.msg, bad[i].why);
  }
}

static void test_paths_validate_and_project_errors(void **state) {
  (void)state;
  sb_error err = {0};
  json_t *paths = J("['conversation.messages', 'user..id']");
  assert_int_equal(sb_ctx_paths_validate(paths, &err), SB_EINVAL);
  assert_string_equal(err.msg, "paths[1]: invalid path \"user..id\": empty "
                               "segment at offset 5");
  json_t *data = fixture(), *out = (json_t *)1, *missing = (json_t *)1;
  /* a malformed path fails the whole projection */
  assert_int_equal(sb_ctx_project(data, paths, &out, &missing, &err),
                   SB_EINVAL);
  assert_null(out);
  assert_null(missing);
  assert_non_null(strstr(err.msg, "paths[1]"));
  json_decref(paths);

  paths = J("['conversation', 3]");
  assert_int_equal(sb_ctx_paths_validate(paths, &err), SB_EINVAL);
  assert_string_equal(err.msg, "paths[1]: expected a string");
  json_decref(paths);

  paths = J("{'a': 1}");
  assert_int_equal(sb_ctx_paths_validate(paths, &err), SB_EINVAL);
  assert_int_equal(sb_ctx_project(data, paths, &out, NULL, &err), SB_EINVAL);
  json_decref(paths);

  paths = J("['conversation']");
  json_t *not_object = J("[1]");
  assert_int_equal(sb_ctx_project(not_object, paths, &out, NULL, &err),
                   SB_EINVAL);
  assert_string_equal(err.msg, "data: expected an object");
  json_decref(not_object);
  json_decref(paths);

  paths = J("[]");
  assert_int_equal(sb_ctx_paths_validate(paths, &err), 0);
  json_decref(paths);
  json_decref(data);
}

static void test_project_allocation_failures(void **state) {
  (void)state;
  json_t *data = fixture();
  json_t *paths = J("['conversation.messages[-3:]', 'conversation.messages[0]',"
                    " 'workflow.variables.vin', 'user', 'user.nope']");
  json_t *want = NULL, *want_missing = NULL;
  assert_int_equal(sb_ctx_project(data, paths, &want, &want_missing, NULL), 0);
  int failures = 0;
  for (long n = 1; n < 300; n++) {
    size_t live = sb_alloc_live_bytes();
    json_t *out = NULL, *missing = NULL;
    sb_alloc_fail_after(n);
    int rc = sb_ctx_project(data, paths, &out, &missing, NULL);
    sb_alloc_fail_after(0);
    if (rc == 0) {
      assert_json_eq(out, want);
      assert_json_eq(missing, want_missing);
    } else {
      failures++;
      assert_int_equal(rc, SB_ENOMEM);
      assert_null(out);
      assert_null(missing);
    }
    json_decref(out);
    json_decref(missing);
    assert_int_equal(sb_alloc_live_bytes(), live);
  }
  assert_true(failures > 10);
  json_decref(want);
  json_decref(want_missing);
  json_decref(data);
  json_decref(paths);
}

/* ---- sb_ctx_path_get / sb_ctx_path_set -------------------------------- */

/* The value at path in the fixture equals want (JSON text, ' for "). */
static void get_ok(const char *path, const char *want) {
  json_t *data = fixture(), *out = NULL, *w = J(want);
  sb_error err = {0};
  int rc = sb_ctx_path_get(data, path, &out, &err);
  if (rc != 0) fail_msg("%s: rc %d: %s", path, rc, err.msg);
  assert_json_eq(out, w);
  /* a copy: changing it leaves the data alone */
  if (json_is_object(out)) json_object_set_new(out, "zz", json_true());
  json_t *again = NULL;
  assert_int_equal(sb_ctx_path_get(data, path, &again, NULL), 0);
  assert_json_eq(again, w);
  json_decref(again);
  json_decref(out);
  json_decref(w);
  json_decref(data);
}

static void get_rc(const char *path, int want_rc) {
  json_t *data = fixture(), *sentinel = J("1"), *out = sentinel;
  sb_error err = {0};
  assert_int_equal(sb_ctx_path_get(data, path, &out, &err), want_rc);
  assert_null(out); /* set to NULL, whatever it held */
  json_decref(sentinel);
  if (want_rc == SB_EINVAL) assert_non_null(strstr(err.msg, "invalid path"));
  json_decref(data);
}

static void test_path_get(void **state) {
  (void)state;
  get_ok("conversation.messages[-1].content", "'m9'");
  get_ok("conversation.messages[0]", "{'role': 'user', 'content': 'm0'}");
  get_ok("conversation.intent", "'buy'");
  get_ok("workflow.variables.budget", "30000");
  get_ok("workflow.completedSteps", "[]");
  get_ok("user.profile", "{'name': 'Ada'}");
  get_ok("conversation.messages[-3:].content", "['m7', 'm8', 'm9']");
  get_ok("conversation.messages[1:3].role", "['assistant', 'user']");
  get_ok("business.inventory.vehicles[13:].v", "[13, 14]");
  get_ok("business.inventory.vehicles[20:]", "[]");
  get_ok("business.inventory.vehicles[-1:]", "[{'v': 14}]");
  /* what follows a slice applies to each element */
  get_ok("business.inventory.vehicles[-1:][0]", "[]");
  get_ok("conversation.messages[-2:].nope", "[]"); /* skipped elements */
  get_rc("conversation.nope", SB_ENOENT);
  get_rc("conversation.messages[10]", SB_ENOENT);
  get_rc("conversation.messages[-11]", SB_ENOENT);
  get_rc("conversation.intent.x", SB_ENOENT);  /* through a string */
  get_rc("conversation.intent[0]", SB_ENOENT); /* index into a string */
  get_rc("conversation.entities[0]", SB_ENOENT);
  get_rc("workflow.outputs.intake", SB_ENOENT); /* no outputs in fixture */
  get_rc("conversation..intent", SB_EINVAL);
  get_rc("context.id", SB_EINVAL);
  get_rc("conversation.messages[01]", SB_EINVAL);
  get_rc("", SB_EINVAL);
  json_t *out = NULL;
  assert_int_equal(sb_ctx_path_get(NULL, "user.id", &out, NULL), SB_ENOENT);
  assert_int_equal(sb_ctx_path_get(NULL, NULL, &out, NULL), SB_EINVAL);
}

/* Set path to value (JSON text) in a copy of the fixture; want_rc, and on
 * success the value reads back. */
static void set_case(const char *path, const char *value, int want_rc,
                     const char *want_msg) {
  json_t *data = fixture(), *before = json_deep_copy(data), *v = J(value);
  sb_error err = {0};
  int rc = sb_ctx_path_set(data, path, v, &err);
  if (rc != want_rc) fail_msg("%s: rc %d (%s)", path, rc, err.msg);
  if (rc == 0) {
    json_t *got = NULL;
    assert_int_equal(sb_ctx_path_get(data, path, &got, NULL), 0);
    assert_json_eq(got, v);
    json_decref(got);
    assert_true(v->refcount >= 2); /* borrowed: data holds its own */
  } else {
    assert_json_eq(data, before); /* nothing changed */
    if (want_msg && strcmp(err.msg, want_msg) != 0)
      fail_msg("got \"%s\", want \"%s\"", err.msg, want_msg);
  }
  json_decref(v);
  json_decref(before);
  json_decref(data);
}

static void test_path_set(void **state) {
  (void)state;
  set_case("workflow.outputs.intake", "{'intent': 'buy'}", 0, NULL);
  set_case("workflow.outputs.a.b.c", "1", 0, NULL); /* creates a and b */
  set_case("workflow.variables.vin", "'X'", 0, NULL); /* replaces */
  set_case("conversation.messages[9].content", "'edited'", 0, NULL);
  set_case("conversation.messages[0]", "null", 0, NULL);
  set_case("user", "{'id': 'u2'}", 0, NULL);
  set_case("business.inventory.vehicles[1:2]", "1", SB_EINVAL,
           "cannot set \"business.inventory.vehicles[1:2]\": a slice names "
           "several values");
  set_case("conversation.messages[-1].content", "1", SB_EINVAL,
           "cannot set \"conversation.messages[-1].content\": negative "
           "index");
  set_case("conversation.intent.x", "1", SB_EINVAL,
           "cannot set \"conversation.intent.x\": conversation.intent is a "
           "string, not an object");
  set_case("conversation.entities[0]", "1", SB_EINVAL,
           "cannot set \"conversation.entities[0]\": conversation.entities "
           "is an object, not an array");
  set_case("workflow.outputs.x[0]", "1", SB_EINVAL,
           "cannot set \"workflow.outputs.x[0]\": workflow.outputs.x does "
           "not exist (an index needs an existing array)");
  set_case("conversation.messages[10]", "1", SB_ENOENT,
           "cannot set \"conversation.messages[10]\": "
           "conversation.messages has 10 elements");
  set_case("conversation..x", "1", SB_EINVAL, NULL);
  set_case("context.id", "1", SB_EINVAL, NULL);
  /* created objects are new: the path through them reads back */
  json_t *data = J("{}"), *one = J("1");
  assert_int_equal(sb_ctx_path_set(data, "workflow.outputs.intake", one, NULL),
                   0);
  json_t *want = J("{'workflow': {'outputs': {'intake': 1}}}");
  assert_json_eq(data, want);
  assert_int_equal(sb_ctx_path_set(one, "user.id", data, NULL), SB_EINVAL);
  json_decref(want);
  json_decref(one);
  json_decref(data);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_project_slices_and_indexes),
      cmocka_unit_test(test_project_keeps_nesting_and_merges),
      cmocka_unit_test(test_project_missing),
      cmocka_unit_test(test_project_output_is_independent),
      cmocka_unit_test(test_path_syntax),
      cmocka_unit_test(test_paths_validate_and_project_errors),
      cmocka_unit_test(test_project_allocation_failures),
      cmocka_unit_test(test_path_get),
      cmocka_unit_test(test_path_set),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
