/* Unit tests for src/ctx/manager.c: versioned, tenant-isolated contexts on
 * the SQLite store, through the asynchronous manager API (each operation
 * is started, then the loop runs until its callback has answered). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx/ctx.h"
#include "ctx/ctx_internal.h" /* ctx_doc_weight */
#include "test_loop.h"
#include "store/store.h"

#define DEADLINE_MS 20000

typedef struct fixture {
  char dir[64];
  char path[128];
  uv_loop_t loop;
  sb_store *store;
  sb_ctx_manager *m;
  int changes;
  int64_t last_version;
} fixture;

static void on_change(void *ud, const char *tenant, const char *id,
                      int64_t version) {
  fixture *f = ud;
  f->changes++;
  f->last_version = version;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/sb-ctx-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->path, sizeof f->path, "%s/sb.db", f->dir);
  uv_loop_init(&f->loop);
  sb_error err = {0};
  sb_store_options so = {.path = f->path, .loop = &f->loop};
  f->store = sb_store_open_sqlite(&so, &err);
  sb_ctx_manager_options mo = {.store = f->store, .snapshot_every = 4};
  f->m = sb_ctx_manager_new(&mo);
  sb_ctx_manager_on_change(f->m, on_change, f);
  *state = f;
  return f->store && f->m ? 0 : -1;
}

static int teardown(void **state) {
  fixture *f = *state;
  sb_ctx_manager_free(f->m);
  sb_store_close(f->store);
  assert_int_equal(loop_finish(&f->loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  int rc = system(cmd);
  free(f);
  return rc == 0 ? 0 : -1;
}

/* ---- one operation at a time ----------------------------------------- */

typedef struct waiter {
  int done, rc, count;
  sb_error err;
  json_t *doc;
  int64_t version;
  char *text; /* res->text, copied (when the test asks: keep_text) */
  int keep_text;
} waiter;

static void on_done(void *ud, const sb_ctx_result *res) {
  waiter *w = ud;
  w->done = 1;
  w->rc = res->rc;
  w->err = res->err;
  w->doc = json_incref(res->doc);
  w->version = res->version;
  w->count = res->count;
  if (w->keep_text && res->text) w->text = sb_strdup(res->text);
}

/* Wait for w (started with `submitted`): rc, *out (new ref), *cur, *err,
 * as the synchronous calls of old answered. */
static int await(fixture *f, int submitted, waiter *w, json_t **out,
                 int64_t *cur, sb_error *err) {
  if (out) *out = NULL;
  if (submitted != 0) return submitted; /* err filled by the call */
  assert_true(run_until(&f->loop, flag_set, &w->done, DEADLINE_MS));
  if (w->rc != 0 && err) *err = w->err;
  if (cur && w->rc == SB_ECONFLICT) *cur = w->version;
  if (out) *out = w->doc;
  else json_decref(w->doc);
  return w->rc;
}

static int w_create(fixture *f, const char *tenant, json_t *in, json_t **out,
                    sb_error *err) {
  waiter w = {0};
  return await(f, sb_ctx_create_async(f->m, tenant, in, on_done, &w, err), &w,
               out, NULL, err);
}

static int w_get(fixture *f, const char *tenant, const char *id, int64_t v,
                 json_t **out, sb_error *err) {
  waiter w = {0};
  return await(f, sb_ctx_get_async(f->m, tenant, id, v, on_done, &w, err), &w,
               out, NULL, err);
}

/* A get of the head through manager m (not the fixture's). */
static int w_get_m(fixture *f, sb_ctx_manager *m, const char *id) {
  waiter w = {0};
  sb_error err = {0};
  return await(f, sb_ctx_get_async(m, "t", id, 0, on_done, &w, &err), &w,
               NULL, NULL, &err);
}

static int w_get_projected(fixture *f, const char *tenant, const char *id,
                           json_t *paths, json_t **out, sb_error *err) {
  waiter w = {0};
  return await(f, sb_ctx_get_projected_async(f->m, tenant, id, paths, on_done,
                                             &w, err),
               &w, out, NULL, err);
}

static int w_update(fixture *f, const char *tenant, const char *id,
                    int64_t expected, sb_ctx_patch_kind kind, json_t *patch,
                    json_t **out, int64_t *cur, sb_error *err) {
  waiter w = {0};
  return await(f, sb_ctx_update_async(f->m, tenant, id, expected, kind, patch,
                                      on_done, &w, err),
               &w, out, cur, err);
}

/* A merge patch written as a run's failure (SB_CTX_WRITE_FAILURE). */
static int w_update_failure(fixture *f, const char *id, int64_t expected,
                            json_t *patch, json_t **out, sb_error *err) {
  waiter w = {0};
  int64_t cur = 0;
  return await(f,
               sb_ctx_update_ex_async(f->m, "t", id, expected,
                                      SB_CTX_MERGE_PATCH, patch, NULL,
                                      SB_CTX_WRITE_FAILURE, on_done, &w, err),
               &w, out, &cur, err);
}

static int w_history(fixture *f, const char *tenant, const char *id,
                     int64_t before, size_t limit, json_t **out,
                     sb_error *err) {
  waiter w = {0};
  return await(f, sb_ctx_history_async(f->m, tenant, id, before, limit,
                                       on_done, &w, err),
               &w, out, NULL, err);
}

static int w_diff(fixture *f, const char *tenant, const char *id, int64_t from,
                  int64_t to, json_t **out, sb_error *err) {
  waiter w = {0};
  return await(f, sb_ctx_diff_versions_async(f->m, tenant, id, from, to,
                                             on_done, &w, err),
               &w, out, NULL, err);
}

static int w_sweep(fixture *f, sb_error *err) {
  waiter w = {0};
  int rc = await(f, sb_ctx_sweep_async(f->m, on_done, &w, err), &w, NULL, NULL,
                 err);
  return rc ? rc : w.count;
}

static json_t *parse(const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, 0, &e);
  if (!v) fail_msg("bad test JSON: %s", e.text);
  return v;
}

static json_t *create(fixture *f, const char *tenant, const char *input) {
  json_t *in = parse(input), *out = NULL;
  sb_error err = {0};
  int rc = w_create(f, tenant, in, &out, &err);
  json_decref(in);
  if (rc != 0) fail_msg("create: %s", err.msg);
  return out;
}

static const char *id_of(json_t *doc) {
  return json_string_value(json_object_get(doc, "id"));
}

static void test_create_defaults(void **state) {
  fixture *f = *state;
  json_t *c = create(f, "dealer-a",
                     "{\"workflowId\":\"wf-1\",\"sessionId\":\"s-1\",\"data\":"
                     "{\"conversation\":{\"intent\":\"test_drive\"}}}");
  assert_int_equal(strlen(id_of(c)), 36);
  assert_int_equal(id_of(c)[14], '7'); /* UUIDv7 */
  assert_string_equal(json_string_value(json_object_get(c, "tenantId")), "dealer-a");
  assert_int_equal(json_integer_value(json_object_get(c, "version")), 1);
  json_t *conv = json_object_get(json_object_get(c, "data"), "conversation");
  assert_string_equal(json_string_value(json_object_get(conv, "sentiment")), "neutral");
  assert_true(json_is_array(json_object_get(conv, "messages")));
  assert_non_null(json_object_get(json_object_get(c, "metadata"), "expiresAt"));
  assert_int_equal(f->changes, 1);
  json_decref(c);
}

static void test_create_rejects(void **state) {
  fixture *f = *state;
  sb_error err = {0};
  json_t *out = NULL;
  json_t *in = parse("{\"tenantId\":\"dealer-b\"}");
  assert_int_equal(w_create(f, "dealer-a", in, &out, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "tenantId"));
  json_decref(in);
  in = parse("{\"data\":{\"conversation\":{\"sentiment\":\"angry\"}}}");
  assert_int_equal(w_create(f, "dealer-a", in, &out, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "data.conversation.sentiment"));
  json_decref(in);
  in = parse("{\"id\":\"mine\"}");
  assert_int_equal(w_create(f, "dealer-a", in, &out, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "id:"));
  json_decref(in);
  assert_int_equal(f->changes, 0);
}

static void test_update_and_conflict(void **state) {
  fixture *f = *state;
  json_t *c = create(f, "t", "{}");
  char *id = sb_strdup(id_of(c));
  json_decref(c);
  sb_error err = {0};
  json_t *out = NULL;
  int64_t cur = 0;
  json_t *merge = parse("{\"data\":{\"conversation\":{\"intent\":\"trade_in\"}}}");
  assert_int_equal(w_update(f, "t", id, 1, SB_CTX_MERGE_PATCH, merge,
                                 &out, &cur, &err), 0);
  assert_int_equal(json_integer_value(json_object_get(out, "version")), 2);
  json_decref(out);
  /* a stale writer gets a conflict carrying the current version */
  assert_int_equal(w_update(f, "t", id, 1, SB_CTX_MERGE_PATCH, merge,
                                 &out, &cur, &err), SB_ECONFLICT);
  assert_int_equal(cur, 2);
  json_decref(merge);

  json_t *patch = parse("[{\"op\":\"add\",\"path\":\"/data/conversation/"
                        "messages/-\",\"value\":{\"role\":\"user\",\"content\":"
                        "\"Is the F-150 still available?\"}}]");
  assert_int_equal(w_update(f, "t", id, 2, SB_CTX_JSON_PATCH, patch,
                                 &out, &cur, &err), 0);
  json_decref(out);
  json_decref(patch);

  /* an invalid result is refused, naming the path, and changes nothing */
  patch = parse("[{\"op\":\"replace\",\"path\":\"/data/conversation/"
                "sentiment\",\"value\":\"furious\"}]");
  assert_int_equal(w_update(f, "t", id, 3, SB_CTX_JSON_PATCH, patch,
                                 &out, &cur, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "data.conversation.sentiment"));
  json_decref(patch);
  /* server-owned / indexed fields are immutable */
  patch = parse("{\"tenantId\":\"other\"}");
  assert_int_equal(w_update(f, "t", id, 3, SB_CTX_MERGE_PATCH, patch,
                                 &out, &cur, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "tenantId"));
  json_decref(patch);
  /* a failing patch op names itself; a path it names that is not there
   * makes the update invalid (not found is for the context) */
  patch = parse("[{\"op\":\"remove\",\"path\":\"/data/nope\"}]");
  assert_int_equal(w_update(f, "t", id, 3, SB_CTX_JSON_PATCH, patch,
                                 &out, &cur, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "patch[0]"));
  json_decref(patch);

  json_t *head = NULL;
  assert_int_equal(w_get(f, "t", id, 0, &head, &err), 0);
  assert_int_equal(json_integer_value(json_object_get(head, "version")), 3);
  json_decref(head);
  sb_free(id);
}

/* A document stays within max_doc_bytes: a create or update past it is
 * SB_ETOOBIG naming both sizes and changes nothing, and a JSON Patch's
 * copies stop at that budget instead of doubling the document until
 * memory runs out. */
static void test_size_limit(void **state) {
  fixture *f = *state;
  sb_ctx_manager *roomy = f->m;
  sb_ctx_manager_options mo = {.store = f->store, .max_doc_bytes = 2048};
  assert_non_null(f->m = sb_ctx_manager_new(&mo));
  char big[4000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  sb_error err = {0};
  json_t *out = NULL;
  int64_t cur = 0;
  json_t *in = json_pack("{s{s{s{ss}}}}", "data", "workflow", "variables", "notes", big);
  assert_int_equal(w_create(f, "t", in, &out, &err), SB_ETOOBIG);
  assert_non_null(strstr(err.msg, "over the limit of 2048"));
  json_decref(in);
  assert_int_equal(f->changes, 0);

  json_t *c = create(f, "t", "{\"data\":{\"workflow\":{\"variables\":{\"notes\":\"short\"}}}}");
  char *id = sb_strdup(id_of(c));
  json_decref(c);
  /* a merge patch that grows it past the limit */
  json_t *merge = json_pack("{s{s{s{ss}}}}", "data", "workflow", "variables", "notes", big);
  assert_int_equal(w_update(f, "t", id, 1, SB_CTX_MERGE_PATCH, merge, &out,
                            &cur, &err), SB_ETOOBIG);
  assert_non_null(strstr(err.msg, "the context would be"));
  json_decref(merge);
  /* copies of copies: stopped at the budget, the op named */
  json_t *bomb = json_array();
  for (int i = 0; i < 40; i++) {
    char path[48];
    snprintf(path, sizeof path, "/data/workflow/variables/c%d", i);
    json_array_append_new(bomb, json_pack("{ssssss}", "op", "copy", "from",
                                          "/data/workflow", "path", path));
  }
  assert_int_equal(w_update(f, "t", id, 1, SB_CTX_JSON_PATCH, bomb, &out, &cur,
                            &err), SB_ETOOBIG);
  assert_non_null(strstr(err.msg, "the patch's copies would add over 2048"));
  json_decref(bomb);
  /* what fits still goes in, and nothing before it changed the context */
  json_t *ok = json_pack("{s{s{s{ss}}}}", "data", "workflow", "variables", "notes", "longer");
  assert_int_equal(w_update(f, "t", id, 1, SB_CTX_MERGE_PATCH, ok, &out, &cur,
                            &err), 0);
  assert_int_equal(json_integer_value(json_object_get(out, "version")), 2);
  json_decref(out);
  json_decref(ok);
  /* a run's failure may pass the limit by SB_CTX_FAILURE_SLACK, no more */
  char *text = NULL;
  memset(big, 'y', 2048 + SB_CTX_FAILURE_SLACK / 4); /* + ~600 of fields */
  big[2048 + SB_CTX_FAILURE_SLACK / 4] = '\0';
  json_t *fail =
      json_pack("{s{s{s{ss}}}}", "data", "workflow", "variables", "notes", big);
  assert_int_equal(
      w_update(f, "t", id, 2, SB_CTX_MERGE_PATCH, fail, &out, &cur, &err),
      SB_ETOOBIG);
  assert_int_equal(w_update_failure(f, id, 2, fail, &out, &err), 0);
  assert_int_equal(json_integer_value(json_object_get(out, "version")), 3);
  assert_non_null(text = json_dumps(out, JSON_COMPACT));
  assert_true(strlen(text) > 2048);
  sb_free(text);
  json_decref(out);
  json_decref(fail);
  memset(big, 'z', 2048 + SB_CTX_FAILURE_SLACK);
  big[2048 + SB_CTX_FAILURE_SLACK] = '\0';
  fail =
      json_pack("{s{s{s{ss}}}}", "data", "workflow", "variables", "notes", big);
  assert_int_equal(w_update_failure(f, id, 3, fail, &out, &err), SB_ETOOBIG);
  assert_non_null(strstr(err.msg, "over the limit of 2048"));
  json_decref(fail);
  sb_free(id);
  /* a context written under a larger limit (lowered since): a failure
   * that does not grow it may still be written, nothing else may */
  sb_ctx_manager *small = f->m;
  f->m = roomy;
  memset(big, 'w', 3500);
  big[3500] = '\0';
  c = create(f, "t", "{\"data\":{\"workflow\":{\"variables\":{}}}}");
  id = sb_strdup(id_of(c));
  json_decref(c);
  json_t *grow =
      json_pack("{s{s{s{ss}}}}", "data", "workflow", "variables", "notes", big);
  assert_int_equal(
      w_update(f, "t", id, 1, SB_CTX_MERGE_PATCH, grow, &out, &cur, &err), 0);
  json_decref(out);
  json_decref(grow);
  f->m = small;
  json_t *same = json_object();
  assert_int_equal(
      w_update(f, "t", id, 2, SB_CTX_MERGE_PATCH, same, &out, &cur, &err),
      SB_ETOOBIG);
  assert_int_equal(w_update_failure(f, id, 2, same, &out, &err), 0);
  assert_int_equal(json_integer_value(json_object_get(out, "version")), 3);
  json_decref(out);
  json_decref(same);
  json_t *more =
      json_pack("{s{s{s{ss}}}}", "data", "workflow", "variables", "why", "x");
  assert_int_equal(w_update_failure(f, id, 3, more, &out, &err), SB_ETOOBIG);
  assert_non_null(strstr(err.msg, "even with the 1024"));
  json_decref(more);
  sb_free(id);
  sb_ctx_manager_free(f->m);
  f->m = roomy;
}

/* A get of the head hands back the document's stored text (what REST and
 * the gateway use instead of serialising it again); an older version,
 * rebuilt from its chain, has none. */
static void test_get_head_text(void **state) {
  fixture *f = *state;
  json_t *c = create(f, "t",
                     "{\"data\":{\"workflow\":{\"currentStep\":\"a\"}}}");
  char *id = sb_strdup(id_of(c));
  sb_error err = {0};
  json_t *p = parse("{\"data\":{\"workflow\":{\"currentStep\":\"b\"}}}");
  json_t *v2 = NULL;
  assert_int_equal(w_update(f, "t", id, 1, SB_CTX_MERGE_PATCH, p, &v2, NULL,
                            &err), 0);
  json_decref(p);
  waiter w = {.keep_text = 1};
  json_t *head = NULL;
  assert_int_equal(await(f, sb_ctx_get_async(f->m, "t", id, 0, on_done, &w,
                                             &err),
                         &w, &head, NULL, &err),
                   0);
  assert_non_null(w.text);
  char *want = json_dumps(head, JSON_COMPACT | JSON_SORT_KEYS);
  assert_string_equal(w.text, want);
  assert_true(json_equal(head, v2));
  sb_free(want);
  sb_free(w.text);
  json_decref(head);
  waiter old = {.keep_text = 1};
  json_t *v1 = NULL;
  assert_int_equal(await(f, sb_ctx_get_async(f->m, "t", id, 1, on_done, &old,
                                             &err),
                         &old, &v1, NULL, &err),
                   0);
  assert_true(json_equal(v1, c));
  assert_null(old.text);
  json_decref(v1);
  json_decref(v2);
  json_decref(c);
  sb_free(id);
}

static void test_versions_history_diff(void **state) {
  fixture *f = *state;
  json_t *c = create(f, "t", "{}");
  char *id = sb_strdup(id_of(c));
  json_t *versions[21] = {0};
  versions[1] = c;
  sb_error err = {0};
  for (int v = 1; v < 20; v++) {
    char text[256];
    snprintf(text, sizeof text,
             "[{\"op\":\"add\",\"path\":\"/data/conversation/messages/-\","
             "\"value\":{\"role\":\"user\",\"content\":\"message %d\"}},"
             "{\"op\":\"replace\",\"path\":\"/data/workflow/currentStep\","
             "\"value\":\"step-%d\"}]",
             v, v);
    json_t *p = parse(text);
    assert_int_equal(w_update(f, "t", id, v, SB_CTX_JSON_PATCH, p,
                                   &versions[v + 1], NULL, &err), 0);
    json_decref(p);
  }
  /* every past version reads back exactly (snapshots every 4 versions) */
  for (int v = 1; v <= 20; v++) {
    json_t *got = NULL;
    assert_int_equal(w_get(f, "t", id, v, &got, &err), 0);
    assert_true(json_equal(got, versions[v]));
    json_decref(got);
  }
  json_t *h = NULL;
  assert_int_equal(w_history(f, "t", id, 0, 5, &h, &err), 0);
  assert_int_equal(json_array_size(h), 5);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(h, 0), "version")), 20);
  /* a message append is stored as an add to the end, not a rewrite */
  json_t *patch = json_object_get(json_array_get(h, 0), "patch");
  int saw_append = 0;
  size_t i;
  json_t *op;
  json_array_foreach(patch, i, op) {
    if (strcmp(json_string_value(json_object_get(op, "path")),
               "/data/conversation/messages/-") == 0)
      saw_append = 1;
  }
  assert_true(saw_append);
  json_decref(h);

  json_t *d = NULL;
  assert_int_equal(w_diff(f, "t", id, 3, 7, &d, &err), 0);
  json_t *rebuilt = NULL;
  assert_int_equal(sb_ctx_patch_apply(versions[3], d, &rebuilt, &err), 0);
  assert_true(json_equal(rebuilt, versions[7]));
  json_decref(rebuilt);
  json_decref(d);
  assert_int_equal(w_get(f, "t", id, 21, &d, &err), SB_ENOENT);
  for (int v = 1; v <= 20; v++) json_decref(versions[v]);
  sb_free(id);
}

static void test_tenant_isolation(void **state) {
  fixture *f = *state;
  json_t *c = create(f, "dealer-a", "{}");
  const char *id = id_of(c);
  sb_error err_other = {0}, err_missing = {0};
  json_t *out = NULL;
  int rc_other = w_get(f, "dealer-b", id, 0, &out, &err_other);
  int rc_missing = w_get(f, "dealer-b", "0190a0a0-0000-7000-8000-000000000000",
                              0, &out, &err_missing);
  assert_int_equal(rc_other, SB_ENOENT);
  assert_int_equal(rc_missing, SB_ENOENT);
  json_t *p = parse("{\"data\":{}}");
  int64_t cur = -1;
  assert_int_equal(w_update(f, "dealer-b", id, 1, SB_CTX_MERGE_PATCH,
                                 p, &out, &cur, &err_other), SB_ENOENT);
  json_decref(p);
  assert_int_equal(w_history(f, "dealer-b", id, 0, 10, &out, &err_other),
                   SB_ENOENT);
  assert_int_equal(w_get(f, "dealer-b", id, 1, &out, &err_other), SB_ENOENT);
  json_decref(c);
}

static void test_projection(void **state) {
  fixture *f = *state;
  json_t *c = create(
      f, "t",
      "{\"data\":{\"conversation\":{\"messages\":[{\"role\":\"user\",\"content\":"
      "\"a\"},{\"role\":\"user\",\"content\":\"b\"},{\"role\":\"user\","
      "\"content\":\"c\"}]},\"workflow\":{\"variables\":{\"vin\":"
      "\"1FTFW1E50PFA00001\",\"budget\":40000}}}}");
  sb_error err = {0};
  json_t *paths = parse("[\"conversation.messages[-2:]\",\"workflow.variables.vin\","
                        "\"user.preferences.color\"]");
  json_t *out = NULL;
  assert_int_equal(w_get_projected(f, "t", id_of(c), paths, &out, &err), 0);
  json_t *data = json_object_get(out, "data");
  json_t *msgs = json_object_get(json_object_get(data, "conversation"), "messages");
  assert_int_equal(json_array_size(msgs), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "content")), "b");
  json_t *vars = json_object_get(json_object_get(data, "workflow"), "variables");
  assert_non_null(json_object_get(vars, "vin"));
  assert_null(json_object_get(vars, "budget"));
  assert_string_equal(json_string_value(json_array_get(json_object_get(out, "missing"), 0)),
                      "user.preferences.color");
  json_decref(out);
  json_decref(paths);
  paths = parse("[\"conversation.messages[x]\"]");
  assert_int_equal(w_get_projected(f, "t", id_of(c), paths, &out, &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "conversation.messages[x]"));
  json_decref(paths);
  json_decref(c);
}

static void test_expiry(void **state) {
  fixture *f = *state;
  json_t *c = create(f, "t", "{\"metadata\":{\"expiresAt\":\"2001-01-01T00:00:00Z\"}}");
  sb_error err = {0};
  json_t *out = NULL;
  assert_int_equal(w_get(f, "t", id_of(c), 0, &out, &err), SB_ENOENT);
  json_t *live = create(f, "t", "{}");
  assert_int_equal(w_sweep(f, &err), 1);
  assert_int_equal(w_get(f, "t", id_of(live), 0, &out, &err), 0);
  json_decref(out);
  json_decref(live);
  json_decref(c);
}

/* A full store queue refuses new operations up front with SB_EBUSY and
 * the shared message; once the queue drains they are accepted again. */
static void test_busy(void **state) {
  fixture *f = *state;
  sb_ctx_manager_free(f->m);
  sb_store_close(f->store);
  sb_error err = {0};
  sb_store_options so = {.path = f->path, .loop = &f->loop, .max_pending = 2};
  f->store = sb_store_open_sqlite(&so, &err);
  assert_non_null(f->store);
  sb_ctx_manager_options mo = {.store = f->store};
  f->m = sb_ctx_manager_new(&mo);
  sb_store_hold_writes(f->store, 1);
  json_t *in = parse("{}");
  waiter a = {0}, b = {0}, c = {0};
  assert_int_equal(sb_ctx_create_async(f->m, "t", in, on_done, &a, &err), 0);
  assert_int_equal(sb_ctx_create_async(f->m, "t", in, on_done, &b, &err), 0);
  assert_int_equal(sb_ctx_create_async(f->m, "t", in, on_done, &c, &err),
                   SB_EBUSY);
  assert_string_equal(err.msg, SB_CTX_BUSY_MESSAGE);
  assert_int_equal(sb_ctx_get_async(f->m, "t", "some-id", 0, on_done, &c, &err),
                   SB_EBUSY);
  sb_store_hold_writes(f->store, 0);
  json_t *out = NULL;
  assert_int_equal(await(f, 0, &a, &out, NULL, &err), 0);
  json_decref(out);
  assert_int_equal(await(f, 0, &b, &out, NULL, &err), 0);
  json_decref(out);
  assert_int_equal(c.done, 0);
  assert_int_equal(w_create(f, "t", in, &out, &err), 0);
  json_decref(out);
  json_decref(in);
}

/* Many updates from one version at once: exactly one wins, the others get
 * a conflict naming the version it made. */
static void test_racing_updates(void **state) {
  fixture *f = *state;
  json_t *c = create(f, "t", "{}");
  enum { N = 16 };
  waiter w[N];
  memset(w, 0, sizeof w);
  sb_error err = {0};
  for (int i = 0; i < N; i++) {
    char text[96];
    snprintf(text, sizeof text, "{\"data\":{\"workflow\":{\"currentStep\":"
             "\"s%d\"}}}", i);
    json_t *p = parse(text);
    assert_int_equal(sb_ctx_update_async(f->m, "t", id_of(c), 1,
                                         SB_CTX_MERGE_PATCH, p, on_done, &w[i],
                                         &err),
                     0);
    json_decref(p); /* the manager holds its own reference */
  }
  int won = 0;
  for (int i = 0; i < N; i++) {
    json_t *out = NULL;
    int64_t cur = 0;
    int rc = await(f, 0, &w[i], &out, &cur, &err);
    if (rc == 0) {
      won++;
      assert_int_equal(json_integer_value(json_object_get(out, "version")), 2);
    } else {
      assert_int_equal(rc, SB_ECONFLICT);
      assert_int_equal(cur, 2);
    }
    json_decref(out);
  }
  assert_int_equal(won, 1);
  json_decref(c);
}

/* Merge patches on a head only the manager's cache holds (the caller
 * keeps no reference) are applied to the head itself and their diff made
 * from the members changed: every version must still replay from the
 * stored patches to the document answered, and a refused patch must leave
 * the context as it was. */
static void test_updates_in_place(void **state) {
  fixture *f = *state;
  json_t *c =
      create(f, "t",
             "{\"workflowId\":\"wf\",\"data\":{\"workflow\":{\"variables\":"
             "{\"a\":{\"b\":1,\"c\":[1,2,3]},\"keep\":\"k\"}}}}");
  char *id = sb_strdup(id_of(c));
  json_t *seen[8] = {json_deep_copy(c)}; /* copies: no reference kept */
  json_decref(c);
  static const char *const patches[] = {
#define VARS(x) "{\"data\":{\"workflow\":{\"variables\":" x "}}}"
      VARS("{\"a\":{\"b\":2}}"),
      VARS("{\"a\":{\"c\":[1,3,4]},\"keep\":null,\"new\":{\"x\":{\"y\":null,"
           "\"z\":1}}}"),
      VARS("{\"a\":7}"),
      "{\"data\":{\"workflow\":{\"currentStep\":\"s\",\"variables\":{\"new\":"
      "{\"x\":{\"z\":2}}}}}}",
      VARS("{\"a\":{\"b\":[]}}"),
#undef VARS
  };
  sb_error err = {0};
  json_t *out = NULL;
  int64_t cur = 0, v = 1;
  for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++, v++) {
    json_t *p = parse(patches[i]);
    assert_int_equal(
        w_update(f, "t", id, v, SB_CTX_MERGE_PATCH, p, &out, &cur, &err), 0);
    json_t *want = NULL;
    assert_int_equal(sb_ctx_merge_apply(seen[v - 1], p, &want, &err), 0);
    json_object_set(want, "version", json_object_get(out, "version"));
    json_object_set(want, "timestamp", json_object_get(out, "timestamp"));
    assert_true(json_equal(out, want));
    assert_int_equal(json_integer_value(json_object_get(out, "version")),
                     v + 1);
    seen[v] = json_deep_copy(out);
    json_decref(want);
    json_decref(out);
    json_decref(p);
  }
  /* refused in place: an immutable field, one switchboard sets (not
   * silently overruled), an invalid value */
  static const struct {
    const char *patch, *msg;
  } refused_patches[] = {
      {"{\"workflowId\":\"other\"}",
       "workflowId: cannot be changed by an update"},
      {"{\"workflowId\":null}", "workflowId: cannot be changed by an update"},
      {"{\"version\":99}", "version: cannot be changed by an update"},
      {"{\"timestamp\":\"2020-01-01T00:00:00.000Z\"}",
       "timestamp: cannot be changed by an update"},
      {"{\"data\":{\"conversation\":{\"sentiment\":\"angry\"}}}", NULL},
  };
  for (size_t i = 0; i < sizeof refused_patches / sizeof *refused_patches;
       i++) {
    json_t *p = parse(refused_patches[i].patch);
    assert_int_equal(
        w_update(f, "t", id, v, SB_CTX_MERGE_PATCH, p, &out, &cur, &err),
        SB_EINVAL);
    if (refused_patches[i].msg)
      assert_string_equal(err.msg, refused_patches[i].msg);
    json_decref(p);
  }
  assert_int_equal(w_get(f, "t", id, 0, &out, &err), 0);
  assert_true(json_equal(out, seen[v - 1]));
  json_decref(out);
  /* every version, rebuilt from a snapshot and the stored patches */
  for (int64_t n = 1; n <= v; n++) {
    assert_int_equal(w_get(f, "t", id, n, &out, &err), 0);
    assert_true(json_equal(out, seen[n - 1]));
    json_decref(out);
  }
  /* and the next update still starts from the head as stored */
  json_t *p = parse("{\"data\":{\"workflow\":{\"variables\":{\"keep\":"
                    "\"again\"}}}}");
  assert_int_equal(
      w_update(f, "t", id, v, SB_CTX_MERGE_PATCH, p, &out, &cur, &err), 0);
  json_t *vars = json_object_get(
      json_object_get(json_object_get(out, "data"), "workflow"), "variables");
  assert_string_equal(json_string_value(json_object_get(vars, "keep")),
                      "again");
  json_decref(out);
  json_decref(p);
  for (int64_t n = 0; n < v; n++)
    json_decref(seen[n]);
  sb_free(id);
}

/* An update never changes a document, or part of one, that its caller
 * still holds: such a head is copied, not updated in place. */
static void test_in_place_spares_held_documents(void **state) {
  fixture *f = *state;
  json_t *c =
      create(f, "t", "{\"data\":{\"workflow\":{\"currentStep\":\"a\"}}}");
  char *id = sb_strdup(id_of(c));
  char *before = json_dumps(c, JSON_SORT_KEYS);
  sb_error err = {0};
  json_t *out = NULL;
  int64_t cur = 0;
  json_t *p = parse("{\"data\":{\"workflow\":{\"currentStep\":\"b\"}}}");
  /* the whole document held */
  assert_int_equal(
      w_update(f, "t", id, 1, SB_CTX_MERGE_PATCH, p, &out, &cur, &err), 0);
  char *after = json_dumps(c, JSON_SORT_KEYS);
  assert_string_equal(before, after);
  sb_free(after);
  /* a member held, the document let go */
  json_t *workflow =
      json_incref(json_object_get(json_object_get(out, "data"), "workflow"));
  json_decref(out);
  char *held = json_dumps(workflow, JSON_SORT_KEYS);
  json_t *p2 = parse("{\"data\":{\"workflow\":{\"currentStep\":\"c\"}}}");
  assert_int_equal(
      w_update(f, "t", id, 2, SB_CTX_MERGE_PATCH, p2, &out, &cur, &err), 0);
  after = json_dumps(workflow, JSON_SORT_KEYS);
  assert_string_equal(held, after);
  assert_string_equal(
      json_string_value(json_object_get(
          json_object_get(json_object_get(out, "data"), "workflow"),
          "currentStep")),
      "c");
  sb_free(after);
  sb_free(held);
  sb_free(before);
  sb_free(id);
  json_decref(out);
  json_decref(workflow);
  json_decref(p);
  json_decref(p2);
  json_decref(c);
}

/* Updates in place at once (run under ThreadSanitizer too): pool jobs
 * make next versions of different contexts in parallel, chains of updates
 * go round the contexts (so the head each update finds is held by the
 * cache alone, and taken from it) and race on each one (the loser reads
 * the store and conflicts), and no caller keeps a document. */
enum { BOARD_CONTEXTS = 16, BOARD_CHAINS = 24, BOARD_ROUNDS = 20 };

typedef struct board {
  fixture *f;
  char *ids[BOARD_CONTEXTS];
  int64_t versions[BOARD_CONTEXTS]; /* as last answered */
  int won[BOARD_CONTEXTS];
  int live, failed;
} board;

typedef struct chain {
  board *b;
  int next, left, ctx;
} chain;

static void chain_next(chain *c);

static void on_chain(void *ud, const sb_ctx_result *res) {
  chain *c = ud;
  board *b = c->b;
  if (res->rc == 0)
    b->won[c->ctx]++;
  else if (res->rc != SB_ECONFLICT)
    b->failed++;
  /* written, or the head's on a conflict */
  if (res->version > b->versions[c->ctx]) b->versions[c->ctx] = res->version;
  chain_next(c);
}

static void chain_next(chain *c) {
  board *b = c->b;
  if (c->left-- == 0) {
    b->live--;
    return;
  }
  c->ctx = c->next++ % BOARD_CONTEXTS;
  char text[96];
  snprintf(text, sizeof text,
           "{\"data\":{\"workflow\":{\"currentStep\":\"s%d\"}}}", c->left);
  json_t *p = parse(text);
  sb_error err = {0};
  if (sb_ctx_update_async(b->f->m, "t", b->ids[c->ctx], b->versions[c->ctx],
                          SB_CTX_MERGE_PATCH, p, on_chain, c, &err) != 0) {
    b->failed++;
    b->live--;
  }
  json_decref(p);
}

static int board_done(void *ud) { return ((board *)ud)->live == 0; }

static void test_concurrent_in_place(void **state) {
  fixture *f = *state;
  board *b = calloc(1, sizeof *b);
  b->f = f;
  for (int i = 0; i < BOARD_CONTEXTS; i++) {
    json_t *c = create(f, "t", "{}");
    b->ids[i] = sb_strdup(id_of(c));
    b->versions[i] = 1;
    json_decref(c);
  }
  chain chains[BOARD_CHAINS];
  b->live = BOARD_CHAINS;
  for (int i = 0; i < BOARD_CHAINS; i++) {
    chains[i] = (chain){.b = b, .next = i * 5, .left = BOARD_ROUNDS};
    chain_next(&chains[i]);
  }
  assert_true(run_until(&f->loop, board_done, b, DEADLINE_MS));
  assert_int_equal(b->failed, 0);
  int won = 0;
  for (int i = 0; i < BOARD_CONTEXTS; i++) {
    sb_error err = {0};
    json_t *out = NULL, *rebuilt = NULL;
    int64_t v = 1 + b->won[i];
    won += b->won[i];
    assert_int_equal(w_get(f, "t", b->ids[i], 0, &out, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(out, "version")), v);
    /* the head, rebuilt from its snapshot and patches */
    assert_int_equal(w_get(f, "t", b->ids[i], v, &rebuilt, &err), 0);
    assert_true(json_equal(rebuilt, out));
    json_decref(rebuilt);
    json_decref(out);
    sb_free(b->ids[i]);
  }
  assert_true(won >= BOARD_CONTEXTS); /* each chain moves some on */
  free(b);
}

/* A head changed behind this manager's back (another manager on the same
 * store, as another node would) is not trusted from its cache: the stale
 * update is a conflict with the real head, and the next one succeeds. */
static void test_cached_head_stale(void **state) {
  fixture *f = *state;
  json_t *c = create(f, "t", "{}");
  const char *id = id_of(c);
  sb_ctx_manager_options mo = {.store = f->store};
  sb_ctx_manager *other = sb_ctx_manager_new(&mo);
  sb_error err = {0};
  json_t *p = parse("{\"data\":{\"workflow\":{\"currentStep\":\"b\"}}}");
  waiter w = {0};
  assert_int_equal(sb_ctx_update_async(other, "t", id, 1, SB_CTX_MERGE_PATCH,
                                       p, on_done, &w, &err),
                   0);
  json_t *out = NULL;
  assert_int_equal(await(f, 0, &w, &out, NULL, &err), 0);
  json_decref(out);
  int64_t cur = 0;
  /* f->m saw version 1 (it created it); the store is at 2 */
  assert_int_equal(w_update(f, "t", id, 1, SB_CTX_MERGE_PATCH, p, &out, &cur,
                            &err),
                   SB_ECONFLICT);
  assert_int_equal(cur, 2);
  assert_int_equal(w_update(f, "t", id, 2, SB_CTX_MERGE_PATCH, p, &out, &cur,
                            &err),
                   0);
  assert_int_equal(json_integer_value(json_object_get(out, "version")), 3);
  json_decref(out);
  /* and from the cache again: version 3 was this manager's own write */
  assert_int_equal(w_update(f, "t", id, 3, SB_CTX_MERGE_PATCH, p, &out, &cur,
                            &err),
                   0);
  assert_int_equal(json_integer_value(json_object_get(out, "version")), 4);
  json_decref(out);
  json_t *head = NULL;
  assert_int_equal(w_get(f, "t", id, 0, &head, &err), 0);
  assert_int_equal(json_integer_value(json_object_get(head, "version")), 4);
  json_decref(head);
  json_decref(p);
  sb_ctx_manager_free(other);
  json_decref(c);
}

/* A create's input whose data holds n small integers: 2 bytes of text
 * each, ~40 bytes parsed. */
static json_t *ints_input(size_t n) {
  json_t *list = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(list, json_integer((json_int_t)(i % 10)));
  return json_pack("{s{s{s{so}}}}", "data", "workflow", "variables", "ints",
                   list);
}

static char *create_ints(fixture *f, sb_ctx_manager *m, size_t n,
                         size_t *weight) {
  json_t *in = ints_input(n);
  waiter w = {0};
  sb_error err = {0};
  json_t *out = NULL;
  assert_int_equal(
      await(f, sb_ctx_create_async(m, "t", in, on_done, &w, &err), &w, &out,
            NULL, &err),
      0);
  if (weight) *weight = ctx_doc_weight(out);
  char *id = sb_strdup(id_of(out));
  json_decref(out);
  json_decref(in);
  return id;
}

/* The head cache is capped by the parsed size of its heads, not only by
 * their count: a context of 1.9M small integers (3.8 MB of text, over
 * 64 MiB parsed) is not kept by default, and past a budget the least
 * recently used heads go first. */
static void test_head_cache_bytes(void **state) {
  fixture *f = *state;
  /* the default budget: too large to keep */
  size_t w = 0;
  char *big = create_ints(f, f->m, 1900000, &w);
  assert_true(w > ((size_t)64 << 20));
  /* the estimate is no less than what a copy of such a head allocates */
  json_t *in = ints_input(100000);
  size_t before = sb_alloc_live_bytes();
  json_t *copy = json_deep_copy(in);
  size_t used = sb_alloc_live_bytes() - before;
  assert_true(ctx_doc_weight(copy) >= used);
  assert_true(ctx_doc_weight(copy) < 2 * used);
  json_decref(copy);
  json_decref(in);
  assert_null(sb_ctx_head_cached(f->m, "t", big, 1));
  sb_free(big);
  /* heads of `w` each (same shape, same weight) under a budget of 2.5 w */
  char *a = create_ints(f, f->m, 1000, &w);
  sb_free(a);
  sb_ctx_manager_options mo = {.store = f->store,
                               .head_cache_bytes = w * 5 / 2};
  sb_ctx_manager *m = sb_ctx_manager_new(&mo);
  size_t wa = 0, wb = 0, wc = 0;
  a = create_ints(f, m, 1000, &wa);
  char *b = create_ints(f, m, 1000, &wb);
  assert_true(wa == w && wb == w);
  assert_non_null(sb_ctx_head_cached(m, "t", a, 1));
  assert_non_null(sb_ctx_head_cached(m, "t", b, 1));
  /* a was used last: c's room is made by b */
  assert_non_null(sb_ctx_head_cached(m, "t", a, 1));
  char *c = create_ints(f, m, 1000, &wc);
  assert_int_equal(wc, w);
  assert_non_null(sb_ctx_head_cached(m, "t", a, 1));
  assert_null(sb_ctx_head_cached(m, "t", b, 1));
  assert_non_null(sb_ctx_head_cached(m, "t", c, 1));
  /* an update's new head (weighed on the pool) replaces its old one */
  json_t *p = parse("{\"data\":{\"workflow\":{\"currentStep\":\"x\"}}}");
  waiter wt = {0};
  sb_error err = {0};
  json_t *out = NULL;
  assert_int_equal(await(f,
                         sb_ctx_update_async(m, "t", c, 1, SB_CTX_MERGE_PATCH,
                                             p, on_done, &wt, &err),
                         &wt, &out, NULL, &err),
                   0);
  json_decref(out);
  json_decref(p);
  assert_non_null(sb_ctx_head_cached(m, "t", c, 2));
  assert_non_null(sb_ctx_head_cached(m, "t", a, 1));
  /* a head read back from the store is weighed too: c's, used before
   * a's, makes room for b's */
  assert_int_equal(w_get_m(f, m, b), 0);
  assert_non_null(sb_ctx_head_cached(m, "t", b, 1));
  assert_non_null(sb_ctx_head_cached(m, "t", a, 1));
  assert_null(sb_ctx_head_cached(m, "t", c, 2));
  sb_ctx_manager_free(m);
  /* a budget smaller than one head keeps none */
  mo.head_cache_bytes = w / 2;
  m = sb_ctx_manager_new(&mo);
  char *d = create_ints(f, m, 1000, NULL);
  assert_null(sb_ctx_head_cached(m, "t", d, 1));
  sb_ctx_manager_free(m);
  sb_free(a);
  sb_free(b);
  sb_free(c);
  sb_free(d);
}

/* Freeing the manager with an operation under way: it still calls back. */
static void test_free_in_flight(void **state) {
  fixture *f = *state;
  json_t *c = create(f, "t", "{}");
  waiter w = {0};
  sb_error err = {0};
  assert_int_equal(sb_ctx_get_async(f->m, "t", id_of(c), 0, on_done, &w, &err),
                   0);
  sb_ctx_manager_free(f->m);
  f->m = NULL;
  json_t *out = NULL;
  assert_int_equal(await(f, 0, &w, &out, NULL, &err), 0);
  assert_true(json_equal(out, c));
  json_decref(out);
  json_decref(c);
}

/* An update whose next version is being made on the thread pool when its
 * manager is freed ends with SB_ESTATE and writes nothing. */
static void test_free_with_update_on_pool(void **state) {
  fixture *f = *state;
  json_t *c = create(f, "t", "{}");
  char *id = sb_strdup(id_of(c));
  json_t *p = parse("{\"data\":{\"workflow\":{\"currentStep\":\"x\"}}}");
  waiter w = {0};
  sb_error err = {0};
  /* the manager has version 1 cached: the work goes straight to the pool */
  assert_int_equal(sb_ctx_update_async(f->m, "t", id, 1, SB_CTX_MERGE_PATCH, p,
                                       on_done, &w, &err),
                   0);
  json_decref(p);
  sb_ctx_manager_free(f->m);
  sb_ctx_manager_options mo = {.store = f->store};
  f->m = sb_ctx_manager_new(&mo);
  assert_int_equal(await(f, 0, &w, NULL, NULL, &err), SB_ESTATE);
  json_t *head = NULL;
  assert_int_equal(w_get(f, "t", id, 0, &head, &err), 0);
  assert_int_equal(json_integer_value(json_object_get(head, "version")), 1);
  json_decref(head);
  sb_free(id);
  json_decref(c);
}

static void test_time_helpers(void **state) {
  (void)state;
  int64_t ms = 0;
  assert_int_equal(sb_time_parse("2026-11-25T09:17:41.123Z", &ms), 0);
  char buf[32];
  sb_time_format(ms, buf);
  assert_string_equal(buf, "2026-11-25T09:17:41.123Z");
  int64_t ms2 = 0;
  assert_int_equal(sb_time_parse("2026-11-25T10:17:41.123+01:00", &ms2), 0);
  assert_int_equal(ms, ms2);
  assert_int_equal(sb_time_parse("2026-02-30T00:00:00Z", &ms), SB_EINVAL);
  assert_int_equal(sb_time_parse("2026-11-25", &ms), SB_EINVAL);
  assert_int_equal(sb_time_parse("1970-01-01T00:00:01Z", &ms), 0);
  assert_int_equal(ms, 1000);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_create_defaults, setup, teardown),
      cmocka_unit_test_setup_teardown(test_create_rejects, setup, teardown),
      cmocka_unit_test_setup_teardown(test_update_and_conflict, setup, teardown),
      cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_versions_history_diff, setup, teardown),
      cmocka_unit_test_setup_teardown(test_get_head_text, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tenant_isolation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_projection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_racing_updates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_updates_in_place, setup, teardown),
      cmocka_unit_test_setup_teardown(test_in_place_spares_held_documents,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_in_place, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cached_head_stale, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_free_with_update_on_pool, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_head_cache_bytes, setup, teardown),
      cmocka_unit_test(test_time_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
