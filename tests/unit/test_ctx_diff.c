/* test_ctx_diff.c: sb_ctx_diff (src/ctx/diff.c).
 *
 * Two promises are tested: correctness (applying diff(a, b) to a gives b,
 * checked on thousands of random documents and mutations from a fixed
 * seed, so a failure reproduces) and compactness in the cases contexts
 * live in (appending messages, one deep leaf, one insert or delete).
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


static char *dump(const json_t *v) {
  return json_dumps(v, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
}

/* diff(from, to), check that it applies back to `to`; returns the patch. */
static json_t *diff_roundtrip(const json_t *from, const json_t *to) {
  json_t *patch = NULL, *back = NULL;
  sb_error err = {0};
  if (sb_ctx_diff(from, to, &patch, &err) != 0) fail_msg("diff: %s", err.msg);
  assert_true(json_is_array(patch));
  if (sb_ctx_patch_apply(from, patch, &back, &err) != 0 ||
      !json_equal(back, to)) {
    char *f = dump(from), *t = dump(to), *p = dump(patch), *b = dump(back);
    print_error("from  %s\nto    %s\npatch %s\nback  %s\nerr   %s\n", f, t, p,
                b ? b : "NULL", err.msg);
    sb_free(f);
    sb_free(t);
    sb_free(p);
    sb_free(b);
    fail();
  }
  json_decref(back);
  return patch;
}

static void assert_patch(const json_t *patch, const char *want) {
  json_t *w = J(want);
  if (!json_equal(patch, w)) {
    char *g = dump(patch), *x = dump(w);
    print_error("patch %s\nwant  %s\n", g, x);
    sb_free(g);
    sb_free(x);
    fail();
  }
  json_decref(w);
}

static void check_diff(const char *from, const char *to, const char *want) {
  json_t *f = J(from), *t = J(to);
  json_t *patch = diff_roundtrip(f, t);
  assert_patch(patch, want);
  json_decref(patch);
  json_decref(f);
  json_decref(t);
}

/* A context-like document with n messages. */
static json_t *conversation(int n) {
  json_t *msgs = json_array();
  for (int i = 0; i < n; i++)
    json_array_append_new(
        msgs, json_pack("{s:s, s:o}", "role", i % 2 ? "assistant" : "user",
                        "content", json_sprintf("message %d", i)));
  return json_pack("{s:{s:{s:o, s:s}, s:{s:{s:{s:[{s:s, s:i}]}}}}}", "data",
                   "conversation", "messages", msgs, "intent", "buy",
                   "business", "inventory", "lots", "north", "vin",
                   "1HGCM82633A004352", "price", 20000);
}

/* ---- fixed cases ------------------------------------------------------ */

static void test_diff_basic_cases(void **state) {
  (void)state;
  check_diff("{'a': 1}", "{'a': 1}", "[]");
  check_diff("{'a': 1, 'b': 2}", "{'a': 3, 'c': 4}",
             "[{'op': 'replace', 'path': '/a', 'value': 3},"
             " {'op': 'remove', 'path': '/b'},"
             " {'op': 'add', 'path': '/c', 'value': 4}]");
  /* a type change at the root replaces the whole document */
  check_diff("{'a': 1}", "[1]",
             "[{'op': 'replace', 'path': '', 'value': [1]}]");
  /* 1 and 1.0 are different JSON values for storage */
  check_diff("{'n': 1}", "{'n': 1.0}",
             "[{'op': 'replace', 'path': '/n', 'value': 1.0}]");
  /* keys that need escaping */
  check_diff("{'a/b': {'m~n': 1}}", "{'a/b': {'m~n': 2}}",
             "[{'op': 'replace', 'path': '/a~1b/m~0n', 'value': 2}]");
  check_diff("{'': 1}", "{'': 2}",
             "[{'op': 'replace', 'path': '/', 'value': 2}]");
  /* arrays: append, insert at front, delete in the middle, shrink */
  check_diff("[1, 2]", "[1, 2, 3, 4]",
             "[{'op': 'add', 'path': '/-', 'value': 3},"
             " {'op': 'add', 'path': '/-', 'value': 4}]");
  check_diff("[1, 2]", "[0, 1, 2]",
             "[{'op': 'add', 'path': '/0', 'value': 0}]");
  check_diff("[1, 2, 3, 4]", "[1, 2, 4]", "[{'op': 'remove', 'path': '/2'}]");
  check_diff("[1, 2, 3, 4]", "[1]",
             "[{'op': 'remove', 'path': '/3'}, {'op': 'remove', 'path': '/2'},"
             " {'op': 'remove', 'path': '/1'}]");
  check_diff("[1, 2, 3]", "[1, 9, 3]",
             "[{'op': 'replace', 'path': '/1', 'value': 9}]");
  check_diff("[]", "[[]]", "[{'op': 'add', 'path': '/-', 'value': []}]");
  /* changes at both ends find the common middle */
  check_diff("[1, 2, 3]", "[2, 3, 4]",
             "[{'op': 'remove', 'path': '/0'},"
             " {'op': 'add', 'path': '/-', 'value': 4}]");
  check_diff("[1, 2, 3, 4, 5]", "[0, 1, 2, 9, 4, 5, 6]",
             "[{'op': 'add', 'path': '/0', 'value': 0},"
             " {'op': 'replace', 'path': '/3', 'value': 9},"
             " {'op': 'add', 'path': '/-', 'value': 6}]");
  check_diff("[1, 2, 3, 4]", "[4, 3, 2, 1]",
             "[{'op': 'remove', 'path': '/2'}, {'op': 'remove', 'path': '/1'},"
             " {'op': 'remove', 'path': '/0'},"
             " {'op': 'add', 'path': '/-', 'value': 3},"
             " {'op': 'add', 'path': '/-', 'value': 2},"
             " {'op': 'add', 'path': '/-', 'value': 1}]");
}

/* A window over the conversation: the oldest message drops out as a new
 * one comes in. Two ops, not a rewrite of 200 messages. */
static void test_diff_sliding_window_is_compact(void **state) {
  (void)state;
  json_t *from = conversation(200), *to = json_deep_copy(from);
  json_t *msgs = json_object_get(
      json_object_get(json_object_get(to, "data"), "conversation"), "messages");
  json_array_remove(msgs, 0);
  json_array_remove(msgs, 0);
  json_array_append_new(
      msgs, json_pack("{s:s, s:s}", "role", "agent", "content", "new"));
  json_t *patch = diff_roundtrip(from, to);
  assert_patch(patch,
               "[{'op': 'remove', 'path': '/data/conversation/messages/1'},"
               " {'op': 'remove', 'path': '/data/conversation/messages/0'},"
               " {'op': 'add', 'path': '/data/conversation/messages/-',"
               "  'value': {'role': 'agent', 'content': 'new'}}]");
  json_decref(patch);
  json_decref(from);
  json_decref(to);
}

static void test_diff_append_messages_is_compact(void **state) {
  (void)state;
  json_t *from = conversation(200), *to = json_deep_copy(from);
  json_t *msgs = json_object_get(
      json_object_get(json_object_get(to, "data"), "conversation"), "messages");
  for (int i = 0; i < 3; i++)
    json_array_append_new(
        msgs, json_pack("{s:s, s:i}", "role", "agent", "content", i));
  json_t *patch = diff_roundtrip(from, to);
  assert_int_equal(json_array_size(patch), 3);
  for (size_t i = 0; i < 3; i++) {
    json_t *op = json_array_get(patch, i);
    assert_string_equal(json_string_value(json_object_get(op, "op")), "add");
    assert_string_equal(json_string_value(json_object_get(op, "path")),
                        "/data/conversation/messages/-");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(op, "value"), "content")),
                     (json_int_t)i);
  }
  json_decref(patch);
  json_decref(from);
  json_decref(to);
}

static void test_diff_deep_leaf_is_one_op(void **state) {
  (void)state;
  json_t *from = conversation(200), *to = json_deep_copy(from);
  json_t *vehicle = json_array_get(
      json_object_get(
          json_object_get(
              json_object_get(
                  json_object_get(json_object_get(to, "data"), "business"),
                  "inventory"),
              "lots"),
          "north"),
      0);
  json_object_set_new(vehicle, "price", json_integer(18500));
  /* and one message in the middle edited in place */
  json_t *msg = json_array_get(
      json_object_get(
          json_object_get(json_object_get(to, "data"), "conversation"),
          "messages"),
      117);
  json_object_set_new(msg, "content", json_string("edited"));
  json_t *patch = diff_roundtrip(from, to);
  assert_patch(patch, "[{'op': 'replace', 'path': "
                      "'/data/conversation/messages/117/content', "
                      "'value': 'edited'},"
                      " {'op': 'replace', 'path': "
                      "'/data/business/inventory/lots/north/0/price', "
                      "'value': 18500}]");
  json_decref(patch);
  json_decref(from);
  json_decref(to);
}

static void test_diff_is_independent_of_inputs(void **state) {
  (void)state;
  json_t *from = J("{}"), *to = J("{'v': {'x': [1]}}");
  json_t *patch = diff_roundtrip(from, to);
  json_t *value = json_object_get(json_array_get(patch, 0), "value");
  json_array_append_new(json_object_get(value, "x"), json_integer(2));
  json_t *want = J("{'v': {'x': [1]}}");
  assert_true(json_equal(to, want));
  json_decref(want);
  json_decref(patch);
  json_decref(from);
  json_decref(to);
}

/* ---- property test ---------------------------------------------------- */

/* xorshift64*: a fixed, portable sequence so failures reproduce. */
static uint64_t rng_state;
static uint32_t rnd(uint32_t n) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 33) % n;
}

static const char *const keys[] = {"a",   "b", "c",        "a/b",  "~",
                                   "m~0", "",  "messages", "x~1y", "vin"};

static json_t *random_value(int depth) {
  int kind = (int)rnd(depth > 0 ? 9 : 6);
  switch (kind) {
  case 0: return json_null();
  case 1: return json_boolean(rnd(2));
  case 2: return json_integer((json_int_t)rnd(5));
  case 3: return json_real(rnd(4) / 2.0);
  case 4:
  case 5: return json_string(keys[rnd(10)]);
  case 6:
  case 7: {
    json_t *a = json_array();
    for (uint32_t i = rnd(5); i > 0; i--)
      json_array_append_new(a, random_value(depth - 1));
    return a;
  }
  default: {
    json_t *o = json_object();
    for (uint32_t i = rnd(5); i > 0; i--)
      json_object_set_new(o, keys[rnd(10)], random_value(depth - 1));
    return o;
  }
  }
}

/* A random container inside v (or v itself), borrowed. */
static json_t *random_container(json_t *v) {
  for (;;) {
    if (rnd(3) == 0) return v;
    json_t *child = NULL;
    if (json_is_array(v) && json_array_size(v))
      child = json_array_get(v, rnd((uint32_t)json_array_size(v)));
    else if (json_is_object(v) && json_object_size(v)) {
      void *it = json_object_iter(v);
      for (uint32_t i = rnd((uint32_t)json_object_size(v)); i > 0; i--)
        it = json_object_iter_next(v, it);
      child = json_object_iter_value(it);
    }
    if (!json_is_array(child) && !json_is_object(child)) return v;
    v = child;
  }
}

/* Mutate doc in place the way context updates do, plus some shuffling. */
static void mutate(json_t *doc) {
  json_t *c = random_container(doc);
  if (json_is_object(c)) {
    const char *key = keys[rnd(10)];
    if (rnd(3) == 0)
      json_object_del(c, key);
    else
      json_object_set_new(c, key, random_value(2));
    return;
  }
  if (!json_is_array(c)) return;
  size_t n = json_array_size(c);
  switch (rnd(6)) {
  case 0: json_array_append_new(c, random_value(2)); break;
  case 1:
    json_array_insert_new(c, rnd((uint32_t)n + 1), random_value(2));
    break;
  case 2:
    if (n) json_array_remove(c, rnd((uint32_t)n));
    break;
  case 3:
    if (n) json_array_set_new(c, rnd((uint32_t)n), random_value(2));
    break;
  case 4:
    if (n > 1) { /* swap two elements */
      size_t i = rnd((uint32_t)n), j = rnd((uint32_t)n);
      json_t *a = json_incref(json_array_get(c, i));
      json_array_set(c, i, json_array_get(c, j));
      json_array_set_new(c, j, a);
    }
    break;
  default: json_array_clear(c); break;
  }
}

static void test_diff_property_random(void **state) {
  (void)state;
  rng_state = 0x5eed5eed12345678ULL;
  size_t total_ops = 0;
  for (int iter = 0; iter < 4000; iter++) {
    /* mostly containers at the top, where mutations can happen */
    json_t *from = rnd(8) ? json_object() : random_value(4);
    if (json_is_object(from))
      for (uint32_t k = 1 + rnd(5); k > 0; k--)
        json_object_set_new(from, keys[rnd(10)], random_value(3));
    json_t *to = json_deep_copy(from);
    int nmut = 1 + (int)rnd(4);
    if (json_is_array(to) || json_is_object(to))
      for (int m = 0; m < nmut; m++)
        mutate(to);
    else if (rnd(2)) {
      json_decref(to);
      to = random_value(3);
    }
    json_t *patch = diff_roundtrip(from, to);
    total_ops += json_array_size(patch);
    if (json_equal(from, to)) assert_int_equal(json_array_size(patch), 0);
    json_decref(patch);
    /* and the other way round */
    patch = diff_roundtrip(to, from);
    json_decref(patch);
    json_decref(from);
    json_decref(to);
  }
  /* the mutations really changed things */
  if (total_ops < 4000) fail_msg("only %zu ops in all", total_ops);
}

/* Arrays under many inserts and deletes: always correct, and never more
 * ops than the edits made while those stay within the edit budget. */
static void test_diff_property_arrays(void **state) {
  (void)state;
  rng_state = 0xa11a7ULL;
  for (int iter = 0; iter < 3000; iter++) {
    json_t *from = json_array();
    for (uint32_t i = rnd(80); i > 0; i--)
      json_array_append_new(from, json_integer((json_int_t)rnd(6)));
    json_t *to = json_deep_copy(from);
    uint32_t edits = rnd(iter % 2 ? 120 : 20);
    for (uint32_t e = 0; e < edits; e++) {
      size_t n = json_array_size(to);
      if (n && rnd(2))
        json_array_remove(to, rnd((uint32_t)n));
      else
        json_array_insert_new(to, rnd((uint32_t)n + 1),
                              json_integer((json_int_t)rnd(6)));
    }
    json_t *patch = diff_roundtrip(from, to);
    if (edits <= 32 && json_array_size(patch) > edits)
      fail_msg("%zu ops for %u edits", json_array_size(patch), edits);
    json_decref(patch);
    json_decref(from);
    json_decref(to);
  }
  /* far past the budget: a reversal of 300 distinct elements */
  json_t *from = json_array(), *to = json_array();
  for (int i = 0; i < 300; i++) {
    json_array_append_new(from, json_integer(i));
    json_array_append_new(to, json_integer(299 - i));
  }
  json_t *patch = diff_roundtrip(from, to);
  assert_int_equal(json_array_size(patch), 300); /* one replace each */
  json_decref(patch);
  json_decref(from);
  json_decref(to);
}

static void test_diff_allocation_failures(void **state) {
  (void)state;
  json_t *from = conversation(5), *to = conversation(7);
  /* dropping the first message sends the arrays through Myers */
  json_array_remove(json_object_get(json_object_get(json_object_get(to, "data"),
                                                    "conversation"),
                                    "messages"),
                    0);
  json_object_set_new(json_object_get(to, "data"), "user",
                      json_pack("{s:s}", "id", "u1"));
  json_t *want = NULL;
  assert_int_equal(sb_ctx_diff(from, to, &want, NULL), 0);
  int failures = 0;
  for (long n = 1; n < 200; n++) {
    size_t live = sb_alloc_live_bytes();
    json_t *out = NULL;
    sb_alloc_fail_after(n);
    int rc = sb_ctx_diff(from, to, &out, NULL);
    sb_alloc_fail_after(0);
    if (rc == 0)
      assert_true(json_equal(out, want));
    else {
      failures++;
      assert_int_equal(rc, SB_ENOMEM);
      assert_null(out);
    }
    json_decref(out);
    assert_int_equal(sb_alloc_live_bytes(), live);
  }
  assert_true(failures > 5);
  json_decref(want);
  json_decref(from);
  json_decref(to);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_diff_basic_cases),
      cmocka_unit_test(test_diff_append_messages_is_compact),
      cmocka_unit_test(test_diff_deep_leaf_is_one_op),
      cmocka_unit_test(test_diff_sliding_window_is_compact),
      cmocka_unit_test(test_diff_is_independent_of_inputs),
      cmocka_unit_test(test_diff_property_random),
      cmocka_unit_test(test_diff_property_arrays),
      cmocka_unit_test(test_diff_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
