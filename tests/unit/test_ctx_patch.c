/* test_ctx_patch.c: JSON Pointer (src/ctx/pointer.c), JSON Patch
 * (src/ctx/patch.c) and JSON Merge Patch (src/ctx/merge.c).
 *
 * The RFC appendices are the backbone: RFC 6901 section 5, RFC 6902
 * appendix A (A.1-A.16) and RFC 7386 appendix A, each case as published.
 * Around them: atomicity (a failing op leaves nothing behind), the wording
 * of errors (they reach API clients), and allocation failure at every
 * point of an apply.
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

/* Parse JSON test text (single quotes stand for double quotes, to keep the
 * cases readable); new reference. */


/* Apply patch to doc and expect `want`; also checks doc is untouched. */
static void patch_ok(const char *doc, const char *patch, const char *want) {
  json_t *d = J(doc), *p = J(patch), *w = J(want), *before = J(doc);
  json_t *out = NULL;
  sb_error err = {0};
  int rc = sb_ctx_patch_apply(d, p, &out, &err);
  if (rc != 0) fail_msg("patch %s on %s failed: %s", patch, doc, err.msg);
  assert_json_eq(out, w);
  assert_json_eq(d, before);
  json_decref(out);
  json_decref(d);
  json_decref(p);
  json_decref(w);
  json_decref(before);
}

/* Apply patch to doc, expect failure with code and a message containing
 * `needle`; checks out is NULL and doc untouched. */
static void patch_fail(const char *doc, const char *patch, int code,
                       const char *needle) {
  json_t *d = J(doc), *p = J(patch), *before = J(doc);
  json_t *out = (json_t *)1;
  sb_error err = {0};
  int rc = sb_ctx_patch_apply(d, p, &out, &err);
  if (rc == 0) fail_msg("patch %s on %s should fail", patch, doc);
  assert_null(out);
  assert_int_equal(rc, code);
  assert_int_equal(err.code, code);
  if (!strstr(err.msg, needle))
    fail_msg("error \"%s\" lacks \"%s\"", err.msg, needle);
  assert_json_eq(d, before);
  json_decref(d);
  json_decref(p);
  json_decref(before);
}

/* ---- RFC 6901 --------------------------------------------------------- */

static void test_pointer_rfc6901_examples(void **state) {
  (void)state;
  json_t *doc = J("{'foo': ['bar', 'baz'], '': 0, 'a/b': 1, 'c%d': 2, "
                  "'e^f': 3, 'g|h': 4, 'i\\\\j': 5, 'k\\'l': 6, ' ': 7, "
                  "'m~n': 8}");
  static const struct {
    const char *ptr;
    const char *want;
  } cases[] = {
      {"/foo", "['bar', 'baz']"},
      {"/foo/0", "'bar'"},
      {"/", "0"},
      {"/a~1b", "1"},
      {"/c%d", "2"},
      {"/e^f", "3"},
      {"/g|h", "4"},
      {"/i\\j", "5"},
      {"/k\"l", "6"},
      {"/ ", "7"},
      {"/m~0n", "8"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *got = NULL, *want = J(cases[i].want);
    sb_error err = {0};
    if (sb_ctx_ptr_get(doc, cases[i].ptr, &got, &err) != 0)
      fail_msg("%s: %s", cases[i].ptr, err.msg);
    assert_json_eq(got, want);
    json_decref(want);
  }
  json_t *whole = NULL;
  assert_int_equal(sb_ctx_ptr_get(doc, "", &whole, NULL), 0);
  assert_ptr_equal(whole, doc);
  json_decref(doc);
}

static void test_pointer_parse_and_errors(void **state) {
  (void)state;
  sb_ctx_ptr p;
  sb_error err = {0};
  assert_int_equal(sb_ctx_ptr_parse("/a~1b/~0/~01/", 13, &p, &err), 0);
  assert_int_equal(p.ntokens, 4);
  assert_string_equal(p.tokens[0].s, "a/b");
  assert_string_equal(p.tokens[1].s, "~");
  assert_string_equal(p.tokens[2].s, "~1"); /* ~01 is ~ then 1, not / */
  assert_int_equal(p.tokens[3].len, 0);
  sb_ctx_ptr_free(&p);

  assert_int_equal(sb_ctx_ptr_parse("foo", 3, &p, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "\"foo\""));
  assert_int_equal(sb_ctx_ptr_parse("/a~2", 4, &p, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "'~' at offset 2"));
  assert_int_equal(sb_ctx_ptr_parse("/a~", 3, &p, &err), SB_EINVAL);
  sb_ctx_ptr_free(&p); /* zeroed on failure, so freeing is harmless */

  /* array indexes: no leading zeros, no signs, "-" is special */
  size_t idx = 99;
  sb_ctx_ptr_token t0 = {"0", 1}, t12 = {"12", 2}, t01 = {"01", 2},
                   tdash = {"-", 1}, tneg = {"-1", 2},
                   tbig = {"99999999999999999"
                           "9999999",
                           24};
  assert_int_equal(sb_ctx_ptr_index(&t0, &idx), 0);
  assert_int_equal(idx, 0);
  assert_int_equal(sb_ctx_ptr_index(&t12, &idx), 0);
  assert_int_equal(idx, 12);
  assert_int_equal(sb_ctx_ptr_index(&t01, &idx), SB_EINVAL);
  assert_int_equal(sb_ctx_ptr_index(&tdash, &idx), 1);
  assert_int_equal(sb_ctx_ptr_index(&tneg, &idx), SB_EINVAL);
  assert_int_equal(sb_ctx_ptr_index(&tbig, &idx), SB_EINVAL);

  json_t *doc = J("{'a': [1, 2]}"), *got = NULL;
  assert_int_equal(sb_ctx_ptr_get(doc, "/a/2", &got, &err), SB_ENOENT);
  assert_string_equal(err.msg, "/a/2: path does not exist");
  assert_int_equal(sb_ctx_ptr_get(doc, "/a/01", &got, &err), SB_ENOENT);
  assert_int_equal(sb_ctx_ptr_get(doc, "/a/1/x", &got, &err), SB_ENOENT);
  assert_null(got);
  json_decref(doc);

  sb_buf b = SB_BUF_INIT;
  assert_int_equal(sb_ctx_ptr_append(&b, "a/b~c", 5), 0);
  assert_int_equal(sb_ctx_ptr_append(&b, "", 0), 0);
  assert_string_equal(b.data, "/a~1b~0c/");
  sb_buf_free(&b);
}

/* ---- RFC 6902 appendix A ---------------------------------------------- */

static void test_rfc6902_appendix_a(void **state) {
  (void)state;
  /* A.1 Adding an Object Member */
  patch_ok("{'foo': 'bar'}", "[{'op': 'add', 'path': '/baz', 'value': 'qux'}]",
           "{'baz': 'qux', 'foo': 'bar'}");
  /* A.2 Adding an Array Element */
  patch_ok("{'foo': ['bar', 'baz']}",
           "[{'op': 'add', 'path': '/foo/1', 'value': 'qux'}]",
           "{'foo': ['bar', 'qux', 'baz']}");
  /* A.3 Removing an Object Member */
  patch_ok("{'baz': 'qux', 'foo': 'bar'}", "[{'op': 'remove', 'path': '/baz'}]",
           "{'foo': 'bar'}");
  /* A.4 Removing an Array Element */
  patch_ok("{'foo': ['bar', 'qux', 'baz']}",
           "[{'op': 'remove', 'path': '/foo/1'}]", "{'foo': ['bar', 'baz']}");
  /* A.5 Replacing a Value */
  patch_ok("{'baz': 'qux', 'foo': 'bar'}",
           "[{'op': 'replace', 'path': '/baz', 'value': 'boo'}]",
           "{'baz': 'boo', 'foo': 'bar'}");
  /* A.6 Moving a Value */
  patch_ok("{'foo': {'bar': 'baz', 'waldo': 'fred'}, "
           "'qux': {'corge': 'grault'}}",
           "[{'op': 'move', 'from': '/foo/waldo', 'path': '/qux/thud'}]",
           "{'foo': {'bar': 'baz'}, "
           "'qux': {'corge': 'grault', 'thud': 'fred'}}");
  /* A.7 Moving an Array Element */
  patch_ok("{'foo': ['all', 'grass', 'cows', 'eat']}",
           "[{'op': 'move', 'from': '/foo/1', 'path': '/foo/3'}]",
           "{'foo': ['all', 'cows', 'eat', 'grass']}");
  /* A.8 Testing a Value: Success */
  patch_ok("{'baz': 'qux', 'foo': ['a', 2, 'c']}",
           "[{'op': 'test', 'path': '/baz', 'value': 'qux'}, "
           "{'op': 'test', 'path': '/foo/1', 'value': 2}]",
           "{'baz': 'qux', 'foo': ['a', 2, 'c']}");
  /* A.9 Testing a Value: Error */
  patch_fail("{'baz': 'qux'}",
             "[{'op': 'test', 'path': '/baz', 'value': 'bar'}]", SB_ECONFLICT,
             "patch[0] test /baz: test failed");
  /* A.10 Adding a Nested Member Object */
  patch_ok("{'foo': 'bar'}",
           "[{'op': 'add', 'path': '/child', 'value': {'grandchild': {}}}]",
           "{'foo': 'bar', 'child': {'grandchild': {}}}");
  /* A.11 Ignoring Unrecognized Elements */
  patch_ok("{'foo': 'bar'}",
           "[{'op': 'add', 'path': '/baz', 'value': 'qux', 'xyz': 123}]",
           "{'foo': 'bar', 'baz': 'qux'}");
  /* A.12 Adding to a Nonexistent Target */
  patch_fail("{'foo': 'bar'}",
             "[{'op': 'add', 'path': '/baz/bat', 'value': 'qux'}]", SB_ENOENT,
             "patch[0] add /baz/bat: parent /baz does not exist");
  /* A.13 Invalid JSON Patch Document: the duplicate "op" member is refused
   * by the parser every switchboard entry point uses (duplicates rejected),
   * so such a patch never reaches sb_ctx_patch_apply. */
  json_error_t jerr;
  assert_null(json_loads("[{\"op\": \"add\", \"path\": \"/baz\", "
                         "\"value\": \"qux\", \"op\": \"remove\"}]",
                         JSON_REJECT_DUPLICATES, &jerr));
  /* A.14 ~ Escape Ordering */
  patch_ok("{'/': 9, '~1': 10}",
           "[{'op': 'test', 'path': '/~01', 'value': 10}]",
           "{'/': 9, '~1': 10}");
  /* A.15 Comparing Strings and Numbers */
  patch_fail("{'/': 9, '~1': 10}",
             "[{'op': 'test', 'path': '/~01', 'value': '10'}]", SB_ECONFLICT,
             "patch[0] test /~01: test failed");
  /* A.16 Adding an Array Value */
  patch_ok("{'foo': ['bar']}",
           "[{'op': 'add', 'path': '/foo/-', 'value': ['abc', 'def']}]",
           "{'foo': ['bar', ['abc', 'def']]}");
}

/* ---- beyond the appendix ---------------------------------------------- */

static void test_patch_atomic_and_error_names_op(void **state) {
  (void)state;
  /* ops 0 and 1 succeed on the working copy; op 2 fails; nothing leaks
   * out and the message names op, index and path */
  patch_fail("{'conversation': {'messages': []}}",
             "[{'op': 'add', 'path': '/conversation/messages/-', "
             "'value': {'role': 'user', 'content': 'hi'}},"
             " {'op': 'add', 'path': '/workflow', 'value': {}},"
             " {'op': 'replace', 'path': '/conversation/intent', "
             "'value': 'buy'}]",
             SB_ENOENT,
             "patch[2] replace /conversation/intent: path does not exist");
}

static void test_patch_errors(void **state) {
  (void)state;
  const char *doc = "{'a': {'b': 1}, 'arr': [1, 2, 3]}";
  patch_fail(doc, "{'op': 'add'}", SB_EINVAL,
             "patch: expected an array of operations");
  patch_fail(doc, "[1]", SB_EINVAL, "patch[0]: expected an object");
  patch_fail(doc, "[{'path': '/a'}]", SB_EINVAL, "patch[0]: missing \"op\"");
  patch_fail(doc, "[{'op': 'frob', 'path': '/a'}]", SB_EINVAL,
             "patch[0] frob /a: unknown op");
  patch_fail(doc, "[{'op': 'add', 'value': 1}]", SB_EINVAL,
             "patch[0] add: missing \"path\"");
  patch_fail(doc, "[{'op': 'add', 'path': 5, 'value': 1}]", SB_EINVAL,
             "\"path\" must be a string");
  patch_fail(doc, "[{'op': 'add', 'path': '/x'}]", SB_EINVAL,
             "patch[0] add /x: missing \"value\"");
  patch_fail(doc, "[{'op': 'copy', 'path': '/x'}]", SB_EINVAL,
             "patch[0] copy /x: missing \"from\"");
  patch_fail(doc, "[{'op': 'add', 'path': 'x', 'value': 1}]", SB_EINVAL,
             "must be empty or start with '/'");
  patch_fail(doc, "[{'op': 'remove', 'path': '/a/c'}]", SB_ENOENT,
             "patch[0] remove /a/c: path does not exist");
  patch_fail(doc, "[{'op': 'remove', 'path': ''}]", SB_EINVAL,
             "cannot remove the whole document");
  patch_fail(doc, "[{'op': 'remove', 'path': '/arr/-'}]", SB_ENOENT,
             "\"-\" names no existing array element");
  patch_fail(doc, "[{'op': 'remove', 'path': '/arr/3'}]", SB_ENOENT,
             "index 3 out of range (array has 3)");
  patch_fail(doc, "[{'op': 'add', 'path': '/arr/4', 'value': 0}]", SB_ENOENT,
             "index 4 out of range");
  patch_fail(doc, "[{'op': 'add', 'path': '/arr/01', 'value': 0}]", SB_EINVAL,
             "\"01\" is not an array index");
  patch_fail(doc, "[{'op': 'replace', 'path': '/arr/x', 'value': 0}]",
             SB_ENOENT, "path does not exist");
  patch_fail(doc, "[{'op': 'add', 'path': '/a/b/c', 'value': 0}]", SB_EINVAL,
             "parent is a number");
  patch_fail(doc, "[{'op': 'move', 'from': '/a', 'path': '/a/b/c'}]", SB_EINVAL,
             "cannot move /a into one of its own children");
  patch_fail(doc, "[{'op': 'move', 'from': '/nope', 'path': '/x'}]", SB_ENOENT,
             "patch[0] move /x: from /nope does not exist");
  patch_fail(doc, "[{'op': 'test', 'path': '/zz', 'value': 1}]", SB_ENOENT,
             "patch[0] test /zz: path does not exist");
}

/* Copies double the document at will ("/" into "/a", then into "/b"...):
 * a patch's copies are held to a budget, so a patch of a few dozen ops
 * cannot grow a context past memory. */
static void test_patch_copy_budget(void **state) {
  (void)state;
  json_t *doc = json_pack("{s{ss}}", "data", "text",
                          "0123456789012345678901234567890123456789");
  json_t *patch = json_array();
  for (int i = 0; i < 40; i++) {
    char path[32];
    snprintf(path, sizeof path, "/data/c%d", i);
    json_array_append_new(patch, json_pack("{ssssss}", "op", "copy", "from",
                                           "/data", "path", path));
  }
  json_t *out = NULL;
  sb_error err = {0};
  assert_int_equal(sb_ctx_patch_apply(doc, patch, &out, &err), SB_ETOOBIG);
  assert_null(out);
  assert_non_null(strstr(err.msg, "copy /data/c"));
  assert_non_null(strstr(err.msg, "the patch's copies would add over"));
  /* A few copies are fine. */
  while (json_array_size(patch) > 4) json_array_remove(patch, 4);
  assert_int_equal(sb_ctx_patch_apply(doc, patch, &out, &err), 0);
  assert_int_equal(json_object_size(json_object_get(out, "data")), 5);
  json_decref(out);
  json_decref(patch);
  json_decref(doc);
}

static void test_patch_more_ops(void **state) {
  (void)state;
  const char *doc = "{'a': {'b': 1}, 'arr': [1, 2, 3]}";
  /* the empty path is the whole document */
  patch_ok(doc, "[{'op': 'replace', 'path': '', 'value': [1]}]", "[1]");
  patch_ok(doc, "[{'op': 'add', 'path': '', 'value': {'z': 0}}]", "{'z': 0}");
  /* move onto itself is a no-op; move to a sibling prefix is allowed */
  patch_ok(doc, "[{'op': 'move', 'from': '/a', 'path': '/a'}]", doc);
  patch_ok("{'a': 1}", "[{'op': 'move', 'from': '/a', 'path': '/ab'}]",
           "{'ab': 1}");
  /* copy is deep: changing the copy leaves the source */
  patch_ok(doc,
           "[{'op': 'copy', 'from': '/a', 'path': '/c'},"
           " {'op': 'replace', 'path': '/c/b', 'value': 2}]",
           "{'a': {'b': 1}, 'c': {'b': 2}, 'arr': [1, 2, 3]}");
  /* add on an existing member replaces it; add at the array end index */
  patch_ok(doc,
           "[{'op': 'add', 'path': '/a', 'value': null},"
           " {'op': 'add', 'path': '/arr/3', 'value': 4}]",
           "{'a': null, 'arr': [1, 2, 3, 4]}");
  /* test compares numbers by value and objects regardless of order */
  patch_ok("{'n': 1, 'o': {'x': 1, 'y': [2.0]}}",
           "[{'op': 'test', 'path': '/n', 'value': 1.0},"
           " {'op': 'test', 'path': '/o', 'value': {'y': [2], 'x': 1}}]",
           "{'n': 1, 'o': {'x': 1, 'y': [2.0]}}");
  /* an empty patch is an identity */
  patch_ok(doc, "[]", doc);
}

static void test_patch_result_is_independent(void **state) {
  (void)state;
  json_t *doc = J("{'a': {'b': [1]}}"),
         *patch = J("[{'op': 'add', 'path': '/v', 'value': {'deep': [1]}}]");
  json_t *out = NULL;
  assert_int_equal(sb_ctx_patch_apply(doc, patch, &out, NULL), 0);
  /* mutate the result everywhere it could share with an input */
  json_array_append_new(json_object_get(json_object_get(out, "a"), "b"),
                        json_integer(2));
  json_array_append_new(json_object_get(json_object_get(out, "v"), "deep"),
                        json_integer(2));
  json_t *want_doc = J("{'a': {'b': [1]}}"),
         *want_patch =
             J("[{'op': 'add', 'path': '/v', 'value': {'deep': [1]}}]");
  assert_json_eq(doc, want_doc);
  assert_json_eq(patch, want_patch);
  json_decref(out);
  json_decref(doc);
  json_decref(patch);
  json_decref(want_doc);
  json_decref(want_patch);
}

static void test_json_equal_numbers(void **state) {
  (void)state;
  json_t *a = json_integer(3), *b = json_real(3.0), *c = json_real(3.5);
  json_t *big = json_integer(9007199254740993LL); /* 2^53 + 1 */
  json_t *bigr = json_real(9007199254740992.0);
  assert_true(sb_ctx_json_equal(a, b));
  assert_false(sb_ctx_json_equal(a, c));
  assert_false(sb_ctx_json_equal(big, bigr)); /* no rounding through double */
  json_t *s1 = json_stringn("a\0b", 3), *s2 = json_stringn("a\0c", 3);
  assert_false(sb_ctx_json_equal(s1, s2));
  json_decref(a);
  json_decref(b);
  json_decref(c);
  json_decref(big);
  json_decref(bigr);
  json_decref(s1);
  json_decref(s2);
}

/* Every allocation of an apply fails in turn: the call must report ENOMEM
 * (or succeed with the right result) and leave no memory behind. */
static void test_patch_allocation_failures(void **state) {
  (void)state;
  json_t *doc = J("{'a': {'b': [1, 2, 3]}, 'c': 'x'}");
  json_t *patch = J("[{'op': 'add', 'path': '/a/b/-', 'value': {'k': [1]}},"
                    " {'op': 'copy', 'from': '/a', 'path': '/d'},"
                    " {'op': 'move', 'from': '/c', 'path': '/a/c'},"
                    " {'op': 'replace', 'path': '/a/b/0', 'value': 'z'}]");
  json_t *want = NULL;
  assert_int_equal(sb_ctx_patch_apply(doc, patch, &want, NULL), 0);
  int failures = 0;
  for (long n = 1; n < 400; n++) {
    size_t live = sb_alloc_live_bytes();
    json_t *out = NULL;
    sb_error err = {0};
    sb_alloc_fail_after(n);
    int rc = sb_ctx_patch_apply(doc, patch, &out, &err);
    sb_alloc_fail_after(0);
    if (rc == 0) {
      assert_json_eq(out, want);
      json_decref(out);
    } else {
      failures++;
      assert_int_equal(rc, SB_ENOMEM);
      assert_null(out);
    }
    assert_int_equal(sb_alloc_live_bytes(), live);
  }
  assert_true(failures > 10); /* the injection really hit the code */
  json_decref(want);
  json_decref(doc);
  json_decref(patch);
}

/* ---- RFC 7386 appendix A ---------------------------------------------- */

static void test_rfc7386_appendix_a(void **state) {
  (void)state;
  static const char *const cases[][3] = {
      {"{'a':'b'}", "{'a':'c'}", "{'a':'c'}"},
      {"{'a':'b'}", "{'b':'c'}", "{'a':'b','b':'c'}"},
      {"{'a':'b'}", "{'a':null}", "{}"},
      {"{'a':'b','b':'c'}", "{'a':null}", "{'b':'c'}"},
      {"{'a':['b']}", "{'a':'c'}", "{'a':'c'}"},
      {"{'a':'c'}", "{'a':['b']}", "{'a':['b']}"},
      {"{'a':{'b':'c'}}", "{'a':{'b':'d','c':null}}", "{'a':{'b':'d'}}"},
      {"{'a':[{'b':'c'}]}", "{'a':[1]}", "{'a':[1]}"},
      {"['a','b']", "['c','d']", "['c','d']"},
      {"{'a':'b'}", "['c']", "['c']"},
      {"{'a':'foo'}", "null", "null"},
      {"{'a':'foo'}", "'bar'", "'bar'"},
      {"{'e':null}", "{'a':1}", "{'e':null,'a':1}"},
      {"[1,2]", "{'a':'b','c':null}", "{'a':'b'}"},
      {"{}", "{'a':{'bb':{'ccc':null}}}", "{'a':{'bb':{}}}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *t = J(cases[i][0]), *p = J(cases[i][1]), *w = J(cases[i][2]);
    json_t *before = J(cases[i][0]), *out = NULL;
    assert_int_equal(sb_ctx_merge_apply(t, p, &out, NULL), 0);
    assert_json_eq(out, w);
    assert_json_eq(t, before);
    /* a merge patch is idempotent */
    json_t *again = NULL;
    assert_int_equal(sb_ctx_merge_apply(out, p, &again, NULL), 0);
    assert_json_eq(again, w);
    json_decref(again);
    json_decref(out);
    json_decref(t);
    json_decref(p);
    json_decref(w);
    json_decref(before);
  }
  /* a missing target behaves like an absent member */
  json_t *p = J("{'a': {'b': null, 'c': 1}}"), *w = J("{'a': {'c': 1}}");
  json_t *out = NULL;
  assert_int_equal(sb_ctx_merge_apply(NULL, p, &out, NULL), 0);
  assert_json_eq(out, w);
  json_decref(out);
  json_decref(p);
  json_decref(w);
}

static void test_merge_allocation_failures(void **state) {
  (void)state;
  json_t *t = J("{'a': {'b': 'c', 'x': [1, 2]}, 'k': 1}");
  json_t *p = J("{'a': {'b': null, 'n': {'deep': {'er': 1}}}, 'k': [1]}");
  json_t *want = NULL;
  assert_int_equal(sb_ctx_merge_apply(t, p, &want, NULL), 0);
  for (long n = 1; n < 200; n++) {
    size_t live = sb_alloc_live_bytes();
    json_t *out = NULL;
    sb_alloc_fail_after(n);
    int rc = sb_ctx_merge_apply(t, p, &out, NULL);
    sb_alloc_fail_after(0);
    if (rc == 0)
      assert_json_eq(out, want);
    else
      assert_int_equal(rc, SB_ENOMEM);
    json_decref(out);
    assert_int_equal(sb_alloc_live_bytes(), live);
  }
  json_decref(want);
  json_decref(t);
  json_decref(p);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pointer_rfc6901_examples),
      cmocka_unit_test(test_pointer_parse_and_errors),
      cmocka_unit_test(test_rfc6902_appendix_a),
      cmocka_unit_test(test_patch_atomic_and_error_names_op),
      cmocka_unit_test(test_patch_errors),
      cmocka_unit_test(test_patch_copy_budget),
      cmocka_unit_test(test_patch_more_ops),
      cmocka_unit_test(test_patch_result_is_independent),
      cmocka_unit_test(test_json_equal_numbers),
      cmocka_unit_test(test_patch_allocation_failures),
      cmocka_unit_test(test_rfc7386_appendix_a),
      cmocka_unit_test(test_merge_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
