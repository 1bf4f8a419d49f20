/* Unit tests for src/store/ (SQLite backend) through its asynchronous
 * interface: create/get/append, version chains and history, tenant
 * isolation, expiry; group commit (compare-and-set exact inside a batch, a
 * failing write beside succeeding ones), back-pressure, reading one's own
 * writes, 64 concurrent writers on one loop, and crash safety (64 writers
 * killed with SIGKILL mid-batch, several times). The same meaning is meant
 * to hold for any backend. */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "test_loop.h"
#include "test_store_fixture.h"
#include "test_store_outcome.h"

#define DEADLINE_MS 20000

typedef store_fixture fixture;

static sb_store *open_store_opts(uv_loop_t *loop, const char *path,
                                 int max_pending) {
  return store_open_at(loop, path, max_pending);
}

static sb_store *open_store(uv_loop_t *loop, const char *path) {
  return store_open_at(loop, path, 0);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  /* a nested, not yet existing directory: the store creates it */
  if (store_fixture_open(f, "store", "data/sb.db") != 0) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  int rc = store_fixture_close(f);
  free(f);
  return rc;
}

/* ---- one operation at a time: submit, then wait for its callback ------ */

/* Wait for o (submitted with rc `submitted`); the operation's outcome. */
static int await(uv_loop_t *loop, int submitted, outcome *o) {
  if (submitted != 0) return submitted;
  assert_true(run_until(loop, flag_set, &o->done, DEADLINE_MS));
  return o->rc;
}

static int do_create(fixture *f, const char *tenant, const char *id,
                     const char *doc, int64_t expires) {
  sb_store_record r = {.id = (char *)id,
                       .workflow_id = "wf",
                       .session_id = "s",
                       .created_ms = 1000,
                       .expires_ms = expires,
                       .doc = (char *)doc};
  outcome o = {0};
  int rc = await(&f->loop,
                 sb_store_create(f->st, tenant, &r, NULL, on_outcome, &o), &o);
  outcome_clear(&o);
  return rc;
}

static void create(fixture *f, const char *tenant, const char *id,
                   const char *doc, int64_t expires) {
  assert_int_equal(do_create(f, tenant, id, doc, expires), 0);
}

static int get(fixture *f, const char *tenant, const char *id, int64_t now,
               outcome *o) {
  memset(o, 0, sizeof *o);
  return await(&f->loop, sb_store_get(f->st, tenant, id, now, on_outcome, o),
               o);
}

static int append(fixture *f, const char *tenant, const char *id,
                  int64_t expected, const char *doc, const char *patch,
                  int snapshot, int64_t now, outcome *o) {
  memset(o, 0, sizeof *o);
  sb_store_append_args a = {.tenant = tenant,
                            .id = id,
                            .expected_version = expected,
                            .new_doc = doc,
                            .patch = patch,
                            .snapshot = snapshot,
                            .now_ms = now};
  return await(&f->loop, sb_store_append(f->st, &a, on_outcome, o), o);
}

static int chain(fixture *f, const char *tenant, const char *id, int64_t n,
                 int64_t now, outcome *o) {
  memset(o, 0, sizeof *o);
  return await(&f->loop,
               sb_store_version_chain(f->st, tenant, id, n, now, on_outcome, o),
               o);
}

static int history(fixture *f, const char *tenant, const char *id,
                   int64_t before, size_t limit, int64_t now, outcome *o) {
  memset(o, 0, sizeof *o);
  return await(
      &f->loop,
      sb_store_history(f->st, tenant, id, before, limit, now, on_outcome, o),
      o);
}

static int64_t count(fixture *f, const char *tenant) {
  outcome o = {0};
  assert_int_equal(
      await(&f->loop, sb_store_count(f->st, tenant, on_outcome, &o), &o), 0);
  return o.count;
}

/* ---- the store's contract -------------------------------------------- */

static void test_create_get_append(void **state) {
  fixture *f = *state;
  outcome o;
  create(f, "t1", "c1", "{\"a\":1}", 0);
  assert_int_equal(get(f, "t1", "c1", 2000, &o), 0);
  assert_int_equal(o.record.version, 1);
  assert_string_equal(o.record.doc, "{\"a\":1}");
  assert_string_equal(o.record.workflow_id, "wf");
  outcome_clear(&o);

  assert_int_equal(append(f, "t1", "c1", 1, "{\"a\":2}",
                          "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]",
                          0, 3000, &o),
                   0);
  assert_int_equal(o.version, 2);
  /* stale writer: conflict carrying the current version */
  assert_int_equal(append(f, "t1", "c1", 1, "{\"a\":3}", "[]", 0, 3000, &o),
                   SB_ECONFLICT);
  assert_int_equal(o.version, 2);
  assert_non_null(strstr(o.err.msg, "version 2"));
  assert_int_equal(get(f, "t1", "c1", 4000, &o), 0);
  assert_int_equal(o.record.version, 2);
  assert_string_equal(o.record.doc, "{\"a\":2}");
  outcome_clear(&o);

  /* duplicate id */
  assert_int_equal(do_create(f, "t1", "c1", "{}", 0), SB_ECONFLICT);
}

static void test_tenant_isolation(void **state) {
  fixture *f = *state;
  outcome o, o2;
  create(f, "t1", "shared-id", "{\"owner\":\"t1\"}", 0);
  /* another tenant's id answers exactly like a missing id */
  assert_int_equal(get(f, "t2", "shared-id", 2000, &o), SB_ENOENT);
  assert_int_equal(get(f, "t2", "no-such-id", 2000, &o2), SB_ENOENT);
  assert_int_equal(append(f, "t2", "shared-id", 1, "{}", "[]", 0, 2000, &o),
                   SB_ENOENT);
  assert_int_equal(o.version, 0);
  assert_int_equal(history(f, "t2", "shared-id", 0, 10, 2000, &o), SB_ENOENT);
  assert_int_equal(chain(f, "t2", "shared-id", 1, 2000, &o), SB_ENOENT);
  /* the same id can exist independently in t2 */
  create(f, "t2", "shared-id", "{\"owner\":\"t2\"}", 0);
  assert_int_equal(get(f, "t1", "shared-id", 2000, &o), 0);
  assert_string_equal(o.record.doc, "{\"owner\":\"t1\"}");
  outcome_clear(&o);
  assert_int_equal(count(f, "t1"), 1);
  /* no tenant, no read: refused at submission, no callback */
  o.done = 0;
  assert_int_equal(sb_store_get(f->st, NULL, "shared-id", 2000, on_outcome, &o),
                   SB_EINVAL);
  assert_int_equal(sb_store_get(f->st, "", "shared-id", 2000, on_outcome, &o),
                   SB_EINVAL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(o.done, 0);
}

static void test_chain_and_history(void **state) {
  fixture *f = *state;
  outcome o;
  create(f, "t", "c", "{\"n\":1}", 0);
  for (int v = 1; v < 10; v++) {
    char doc[32], patch[96];
    snprintf(doc, sizeof doc, "{\"n\":%d}", v + 1);
    snprintf(patch, sizeof patch,
             "[{\"op\":\"replace\",\"path\":\"/n\",\"value\":%d}]", v + 1);
    /* snapshot at version 5 */
    assert_int_equal(
        append(f, "t", "c", v, doc, patch, v + 1 == 5, 2000 + v, &o), 0);
  }
  assert_int_equal(chain(f, "t", "c", 7, 5000, &o), 0);
  assert_int_equal(o.versions.len, 3); /* snapshot 5, then 6 and 7 */
  assert_int_equal(o.versions.items[0].version, 5);
  assert_string_equal(o.versions.items[0].snapshot, "{\"n\":5}");
  assert_null(o.versions.items[1].snapshot);
  assert_int_equal(o.versions.items[2].version, 7);
  outcome_clear(&o);
  assert_int_equal(chain(f, "t", "c", 3, 5000, &o), 0);
  assert_int_equal(o.versions.items[0].version, 1);
  assert_int_equal(o.versions.len, 3);
  outcome_clear(&o);
  assert_int_equal(chain(f, "t", "c", 11, 5000, &o), SB_ENOENT);
  assert_non_null(strstr(o.err.msg, "1 to 10"));

  assert_int_equal(history(f, "t", "c", 0, 4, 5000, &o), 0);
  assert_int_equal(o.versions.len, 4);
  assert_int_equal(o.versions.items[0].version, 10);
  assert_int_equal(o.versions.items[3].version, 7);
  outcome_clear(&o);
  assert_int_equal(history(f, "t", "c", 3, 10, 5000, &o), 0);
  assert_int_equal(o.versions.len, 2);
  assert_null(o.versions.items[1].patch); /* version 1 has no patch */
  outcome_clear(&o);
}

static void test_expiry(void **state) {
  fixture *f = *state;
  outcome o;
  create(f, "t", "short", "{}", 5000);
  create(f, "t", "forever", "{}", 0);
  assert_int_equal(get(f, "t", "short", 4999, &o), 0);
  outcome_clear(&o);
  assert_int_equal(get(f, "t", "short", 5000, &o), SB_ENOENT);
  assert_int_equal(append(f, "t", "short", 1, "{}", "[]", 0, 6000, &o),
                   SB_ENOENT);
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(&f->loop, sb_store_sweep_expired(f->st, 6000, 100, on_outcome, &o),
            &o),
      0);
  assert_int_equal(o.count, 1);
  assert_int_equal(count(f, "t"), 1);
  assert_int_equal(get(f, "t", "forever", 999999, &o), 0);
  outcome_clear(&o);
}

/* An append keeps the expiry it is given, the same or a new one (two
 * statements: the expiry index is touched only when it moves). */
static void test_append_expiry(void **state) {
  fixture *f = *state;
  outcome o;
  create(f, "t", "c", "{}", 5000);
  sb_store_append_args a = {.tenant = "t",
                            .id = "c",
                            .expected_version = 1,
                            .new_doc = "{\"v\":2}",
                            .patch = "[]",
                            .expires_ms = 5000,
                            .now_ms = 2000};
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(&f->loop, sb_store_append(f->st, &a, on_outcome, &o), &o), 0);
  assert_int_equal(o.version, 2);
  outcome_clear(&o);
  /* a stale version fails the same way with either statement */
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(&f->loop, sb_store_append(f->st, &a, on_outcome, &o), &o),
      SB_ECONFLICT);
  assert_int_equal(o.version, 2);
  outcome_clear(&o);
  a.expected_version = 2;
  a.expires_ms = 9000;
  a.new_doc = "{\"v\":3}";
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(&f->loop, sb_store_append(f->st, &a, on_outcome, &o), &o), 0);
  assert_int_equal(o.version, 3);
  outcome_clear(&o);
  assert_int_equal(get(f, "t", "c", 8999, &o), 0);
  assert_int_equal(o.version, 3);
  outcome_clear(&o);
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(&f->loop, sb_store_sweep_expired(f->st, 6000, 100, on_outcome, &o),
            &o),
      0);
  assert_int_equal(o.count, 0);
  assert_int_equal(get(f, "t", "c", 9000, &o), SB_ENOENT);
}

/* ---- group commit ---------------------------------------------------- */

/* Writes held back and released together commit as one batch, and the
 * compare-and-set inside it is exact: each write sees the ones before it. */
static void test_cas_inside_a_batch(void **state) {
  fixture *f = *state;
  create(f, "t", "c", "{\"v\":1}", 0);
  sb_store_stats before, after;
  sb_store_get_stats(f->st, &before);
  sb_store_hold_writes(f->st, 1);
  outcome o[4];
  memset(o, 0, sizeof o);
  static const int64_t expected[4] = {1, 1, 2, 3};
  static const char *const docs[4] = {"{\"v\":2}", "{\"v\":\"stale\"}",
                                      "{\"v\":3}", "{\"v\":4}"};
  for (int i = 0; i < 4; i++) {
    sb_store_append_args a = {.tenant = "t",
                              .id = "c",
                              .expected_version = expected[i],
                              .new_doc = docs[i],
                              .patch = "[]",
                              .now_ms = 10};
    assert_int_equal(sb_store_append(f->st, &a, on_outcome, &o[i]), 0);
  }
  /* nothing is acknowledged while the writes are held */
  uv_run(&f->loop, UV_RUN_NOWAIT);
  for (int i = 0; i < 4; i++)
    assert_int_equal(o[i].done, 0);
  sb_store_hold_writes(f->st, 0);
  for (int i = 0; i < 4; i++)
    assert_true(run_until(&f->loop, flag_set, &o[i].done, DEADLINE_MS));
  sb_store_get_stats(f->st, &after);
  assert_int_equal(after.batches - before.batches, 1);
  assert_int_equal(after.writes - before.writes, 4);
  assert_int_equal(o[0].rc, 0);
  assert_int_equal(o[0].version, 2);
  assert_int_equal(o[1].rc, SB_ECONFLICT); /* stale: fails alone */
  assert_int_equal(o[1].version, 2);       /* the head inside the batch */
  assert_int_equal(o[2].rc, 0);
  assert_int_equal(o[2].version, 3);
  assert_int_equal(o[3].rc, 0);
  assert_int_equal(o[3].version, 4);
  outcome h;
  assert_int_equal(history(f, "t", "c", 0, 100, 20, &h), 0);
  assert_int_equal(h.versions.len, 4); /* 1..4, nothing else */
  outcome_clear(&h);
  assert_int_equal(get(f, "t", "c", 20, &h), 0);
  assert_string_equal(h.record.doc, "{\"v\":4}");
  outcome_clear(&h);
}

/* Writes that fail for reasons of their own (duplicate id, no such
 * context, a constraint) never take their batch neighbours down. */
static void test_failing_write_beside_succeeding(void **state) {
  fixture *f = *state;
  create(f, "t", "old", "{}", 0);
  sb_store_stats before, after;
  sb_store_get_stats(f->st, &before);
  sb_store_hold_writes(f->st, 1);
  outcome o[5];
  memset(o, 0, sizeof o);
  sb_store_record dup = {.id = "old", .created_ms = 1, .doc = "{\"dup\":1}"};
  sb_store_record fresh = {.id = "new", .created_ms = 1, .doc = "{\"n\":1}"};
  sb_store_append_args missing = {.tenant = "t",
                                  .id = "ghost",
                                  .expected_version = 1,
                                  .new_doc = "{}",
                                  .patch = "[]",
                                  .now_ms = 2};
  sb_store_append_args good = {.tenant = "t",
                               .id = "old",
                               .expected_version = 1,
                               .new_doc = "{\"o\":2}",
                               .patch = "[]",
                               .now_ms = 2};
  assert_int_equal(sb_store_create(f->st, "t", &dup, NULL, on_outcome, &o[0]),
                   0);
  assert_int_equal(sb_store_create(f->st, "t", &fresh, NULL, on_outcome, &o[1]),
                   0);
  assert_int_equal(sb_store_append(f->st, &missing, on_outcome, &o[2]), 0);
  assert_int_equal(sb_store_append(f->st, &good, on_outcome, &o[3]), 0);
  /* the same new id again inside the batch: the first one wins */
  assert_int_equal(sb_store_create(f->st, "t", &fresh, NULL, on_outcome, &o[4]),
                   0);
  sb_store_hold_writes(f->st, 0);
  for (int i = 0; i < 5; i++)
    assert_true(run_until(&f->loop, flag_set, &o[i].done, DEADLINE_MS));
  sb_store_get_stats(f->st, &after);
  assert_int_equal(after.batches - before.batches, 1);
  assert_int_equal(o[0].rc, SB_ECONFLICT);
  assert_int_equal(o[1].rc, 0);
  assert_int_equal(o[2].rc, SB_ENOENT);
  assert_int_equal(o[3].rc, 0);
  assert_int_equal(o[4].rc, SB_ECONFLICT);
  outcome r;
  assert_int_equal(get(f, "t", "new", 3, &r), 0);
  assert_string_equal(r.record.doc, "{\"n\":1}");
  outcome_clear(&r);
  assert_int_equal(get(f, "t", "old", 3, &r), 0);
  assert_int_equal(r.record.version, 2);
  assert_string_equal(r.record.doc, "{\"o\":2}");
  outcome_clear(&r);
  assert_int_equal(get(f, "t", "ghost", 3, &r), SB_ENOENT);
  assert_int_equal(count(f, "t"), 2);
}

/* A bounded queue: past max_pending, submissions are refused with
 * SB_EBUSY (no callback), and accepted again once callbacks have run. */
static void test_back_pressure(void **state) {
  fixture *f = *state;
  sb_store_close(f->st);
  f->st = open_store_opts(&f->loop, f->path, 4);
  sb_store_hold_writes(f->st, 1);
  outcome o[4], extra = {0};
  memset(o, 0, sizeof o);
  char id[16];
  for (int i = 0; i < 4; i++) {
    snprintf(id, sizeof id, "c%d", i);
    sb_store_record r = {.id = id, .created_ms = 1, .doc = "{}"};
    assert_int_equal(sb_store_create(f->st, "t", &r, NULL, on_outcome, &o[i]),
                     0);
  }
  sb_store_record r = {.id = "c4", .created_ms = 1, .doc = "{}"};
  assert_int_equal(sb_store_create(f->st, "t", &r, NULL, on_outcome, &extra),
                   SB_EBUSY);
  assert_int_equal(sb_store_get(f->st, "t", "c0", 1, on_outcome, &extra),
                   SB_EBUSY);
  sb_store_stats s;
  sb_store_get_stats(f->st, &s);
  assert_int_equal(s.pending, 4);
  sb_store_hold_writes(f->st, 0);
  for (int i = 0; i < 4; i++) {
    assert_true(run_until(&f->loop, flag_set, &o[i].done, DEADLINE_MS));
    assert_int_equal(o[i].rc, 0);
  }
  assert_int_equal(extra.done, 0); /* refused means no callback, ever */
  assert_int_equal(
      await(&f->loop, sb_store_create(f->st, "t", &r, NULL, on_outcome, &extra),
            &extra),
      0);
  assert_int_equal(count(f, "t"), 5);
}

/* A key load (the server's own poll of API keys) never takes a client's
 * place under max_pending: with max_pending 1 and a load in flight, one
 * create is still accepted, and only the next is refused. */
static void test_key_loads_outside_back_pressure(void **state) {
  fixture *f = *state;
  sb_store_close(f->st);
  f->st = open_store_opts(&f->loop, f->path, 1);
  sb_store_hold_writes(f->st, 1);
  outcome load = {0}, made = {0}, extra = {0};
  assert_int_equal(sb_store_keys_load(f->st, -1, on_outcome, &load), 0);
  sb_store_record r = {.id = "k1", .created_ms = 1, .doc = "{}"};
  assert_int_equal(sb_store_create(f->st, "t", &r, NULL, on_outcome, &made), 0);
  sb_store_record r2 = {.id = "k2", .created_ms = 1, .doc = "{}"};
  assert_int_equal(sb_store_create(f->st, "t", &r2, NULL, on_outcome, &extra),
                   SB_EBUSY);
  sb_store_hold_writes(f->st, 0);
  assert_true(run_until(&f->loop, flag_set, &load.done, DEADLINE_MS));
  assert_int_equal(load.rc, 0);
  assert_true(run_until(&f->loop, flag_set, &made.done, DEADLINE_MS));
  assert_int_equal(made.rc, 0);
  assert_int_equal(extra.done, 0);
  /* the load's room is given back: the next create goes in */
  assert_int_equal(
      await(&f->loop,
            sb_store_create(f->st, "t", &r2, NULL, on_outcome, &extra), &extra),
      0);
  assert_int_equal(count(f, "t"), 2);
}

/* A read submitted from a write's callback sees that write, every time,
 * while other writes keep the writer busy. */
typedef struct own_reader {
  fixture *f;
  int64_t next; /* version to append next */
  int rounds, done, failures;
  sb_error err;
} own_reader;

static void own_append(own_reader *r);

static void own_read(void *ud, sb_store_result *res) {
  own_reader *r = ud;
  if (res->rc != 0 || res->record.version != r->next) {
    r->failures++;
    r->err = res->err;
  }
  r->next++;
  if (--r->rounds == 0)
    r->done = 1;
  else
    own_append(r);
}

static void own_appended(void *ud, sb_store_result *res) {
  own_reader *r = ud;
  if (res->rc != 0 || sb_store_get(r->f->st, "t", "own", 5, own_read, r) != 0) {
    r->failures++;
    r->done = 1;
  }
}

static void own_append(own_reader *r) {
  char doc[32];
  snprintf(doc, sizeof doc, "{\"v\":%lld}", (long long)r->next);
  sb_store_append_args a = {.tenant = "t",
                            .id = "own",
                            .expected_version = r->next - 1,
                            .new_doc = doc,
                            .patch = "[]",
                            .now_ms = 5};
  if (sb_store_append(r->f->st, &a, own_appended, r) != 0) {
    r->failures++;
    r->done = 1;
  }
}

static void test_read_own_writes(void **state) {
  fixture *f = *state;
  create(f, "t", "own", "{\"v\":1}", 0);
  create(f, "t", "noise", "{\"v\":1}", 0);
  own_reader r = {.f = f, .next = 2, .rounds = 200};
  own_append(&r);
  /* keep the writer busy with other writes meanwhile */
  outcome noise[50];
  memset(noise, 0, sizeof noise);
  for (int i = 0; i < 50; i++) {
    sb_store_append_args a = {.tenant = "t",
                              .id = "noise",
                              .expected_version = 1 + i,
                              .new_doc = "{}",
                              .patch = "[]",
                              .now_ms = 5};
    assert_int_equal(sb_store_append(f->st, &a, on_outcome, &noise[i]), 0);
  }
  assert_true(run_until(&f->loop, flag_set, &r.done, DEADLINE_MS));
  assert_int_equal(r.failures, 0);
  assert_int_equal(r.next, 202);
  for (int i = 0; i < 50; i++) {
    assert_true(run_until(&f->loop, flag_set, &noise[i].done, DEADLINE_MS));
    assert_int_equal(noise[i].rc, 0);
  }
}

/* ---- many writers ---------------------------------------------------- */

/* 64 writers on one loop race to append to one context, each starting from
 * the version it last read. */
enum { RACERS = 64, RACE_TRIES = 20 };

typedef struct race {
  fixture *f;
  int live, done;
  char accepted[RACERS * RACE_TRIES + 2]; /* versions acknowledged */
  int total, conflicts, errors;
} race;

typedef struct racer {
  race *race;
  int tries;
  int64_t read;
} racer;

static void racer_next(racer *r);

static void racer_appended(void *ud, sb_store_result *res) {
  racer *r = ud;
  race *ra = r->race;
  if (res->rc == 0) {
    int64_t v = res->version;
    if (v < 2 || v > RACERS * RACE_TRIES + 1 || ra->accepted[v])
      ra->errors++;
    else
      ra->accepted[v] = 1;
    ra->total++;
  } else if (res->rc == SB_ECONFLICT) {
    ra->conflicts++;
  } else {
    ra->errors++;
  }
  racer_next(r);
}

static void racer_read(void *ud, sb_store_result *res) {
  racer *r = ud;
  if (res->rc != 0) {
    r->race->errors++;
    return racer_next(r);
  }
  char doc[32];
  snprintf(doc, sizeof doc, "{\"v\":%lld}", (long long)res->record.version + 1);
  sb_store_append_args a = {.tenant = "t",
                            .id = "hot",
                            .expected_version = res->record.version,
                            .new_doc = doc,
                            .patch = "[]",
                            .now_ms = 1};
  if (sb_store_append(r->race->f->st, &a, racer_appended, r) != 0) {
    r->race->errors++;
    racer_next(r);
  }
}

static void racer_next(racer *r) {
  if (r->tries++ == RACE_TRIES) {
    if (--r->race->live == 0) r->race->done = 1;
    return;
  }
  if (sb_store_get(r->race->f->st, "t", "hot", 0, racer_read, r) != 0) {
    r->race->errors++;
    racer_next(r);
  }
}

static void test_concurrent_writers(void **state) {
  fixture *f = *state;
  create(f, "t", "hot", "{\"v\":1}", 0);
  race ra = {.f = f, .live = RACERS};
  racer racers[RACERS];
  for (int i = 0; i < RACERS; i++) {
    racers[i] = (racer){.race = &ra};
    racer_next(&racers[i]);
  }
  assert_true(run_until(&f->loop, flag_set, &ra.done, DEADLINE_MS));
  assert_int_equal(ra.errors, 0);
  assert_int_equal(ra.total + ra.conflicts, RACERS * RACE_TRIES);
  assert_true(ra.total > 0);
  outcome h;
  assert_int_equal(history(f, "t", "hot", 0, 100000, 1, &h), 0);
  /* every accepted update is in the history exactly once, nothing else */
  assert_int_equal(h.versions.len, (size_t)ra.total + 1);
  for (size_t i = 0; i < h.versions.len; i++)
    assert_int_equal(h.versions.items[i].version, ra.total + 1 - (int64_t)i);
  outcome_clear(&h);
}

/* A file made by schema version 1 (contexts in WITHOUT ROWID tables) is
 * migrated on open, its contexts and versions intact. */
static void test_migrates_schema_1(void **state) {
  fixture *f = *state;
  sb_store_close(f->st);
  f->st = NULL;
  assert_int_equal(loop_finish(&f->loop), 0);
  uv_loop_init(&f->loop);
  char old[160];
  snprintf(old, sizeof old, "%s/v1.db", f->dir);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(old, &db), SQLITE_OK);
  const char *v1 =
      "CREATE TABLE contexts(tenant_id TEXT NOT NULL, id TEXT NOT NULL,"
      " workflow_id TEXT NOT NULL DEFAULT '', session_id TEXT NOT NULL "
      "DEFAULT '', version INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
      " updated_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
      " doc TEXT NOT NULL, PRIMARY KEY(tenant_id, id)) WITHOUT ROWID;"
      "CREATE INDEX contexts_expiry ON contexts(expires_ms) WHERE "
      "expires_ms>0;"
      "CREATE TABLE context_versions(tenant_id TEXT NOT NULL, context_id "
      "TEXT NOT NULL, version INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
      " patch TEXT, snapshot TEXT, PRIMARY KEY(tenant_id, context_id, "
      "version)) WITHOUT ROWID;"
      "INSERT INTO contexts VALUES('t1','old','wf','s',2,1000,2000,0,"
      "'{\"a\":2}');"
      "INSERT INTO context_versions VALUES('t1','old',1,1000,NULL,"
      "'{\"a\":1}');"
      "INSERT INTO context_versions VALUES('t1','old',2,2000,"
      "'[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]',NULL);"
      "PRAGMA user_version=1;";
  assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  f->st = open_store(&f->loop, old);
  outcome o;
  assert_int_equal(get(f, "t1", "old", 3000, &o), 0);
  assert_int_equal(o.record.version, 2);
  assert_string_equal(o.record.doc, "{\"a\":2}");
  outcome_clear(&o);
  /* it goes on: a new version, and a duplicate id still conflicts */
  assert_int_equal(append(f, "t1", "old", 2, "{\"a\":3}", "[]", 0, 4000, &o),
                   0);
  assert_int_equal(o.version, 3);
  assert_int_equal(do_create(f, "t1", "old", "{}", 0), SB_ECONFLICT);
  assert_int_equal(sb_store_schema_version(f->st), 10);
}

/* Agents changed through the API: the last change of each id is what the
 * store holds at its next open, a removal as a row without definition. */
static void test_agents_outlive_a_reopen(void **state) {
  fixture *f = *state;
  sb_store_agent_rows rows;
  sb_store_agents_at_open(f->st, &rows);
  assert_int_equal(rows.len, 0);
  outcome o = {0};
  /* with its audit event, in the same transaction */
  sb_store_event audit = {.type = "audit.admin", .data = "{\"target\":\"b\"}"};
  assert_int_equal(await(&f->loop,
                         sb_store_agent_put(f->st, "ops", "b", "{\"id\":\"b\"}",
                                            1000, &audit, on_outcome, &o),
                         &o),
                   0);
  assert_int_equal(o.events.len, 1);
  assert_string_equal(o.events.items[0].type, "audit.admin");
  assert_int_equal(o.events.items[0].seq, 1);
  outcome_clear(&o);
  const char *puts[][2] = {{"a", "{\"id\":\"a\",\"v\":1}"},
                           {"c", "{\"id\":\"c\"}"},
                           {"a", "{\"id\":\"a\",\"v\":2}"},
                           {"c", NULL}};
  outcome many[4] = {{0}};
  for (int i = 0; i < 4; i++) /* one batch, in order */
    assert_int_equal(sb_store_agent_put(f->st, "ops", puts[i][0], puts[i][1],
                                        2000 + i, NULL, on_outcome, &many[i]),
                     0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(await(&f->loop, 0, &many[i]), 0);
    outcome_clear(&many[i]);
  }
  assert_int_equal(
      sb_store_agent_put(f->st, "ops", "", "{}", 1, NULL, on_outcome, &o),
      SB_EINVAL);
  assert_int_equal(
      sb_store_agent_put(f->st, NULL, "x", "{}", 1, NULL, on_outcome, &o),
      SB_EINVAL);
  sb_store_close(f->st);
  assert_int_equal(loop_finish(&f->loop), 0);
  uv_loop_init(&f->loop);
  f->st = open_store(&f->loop, f->path);
  sb_store_agents_at_open(f->st, &rows);
  assert_int_equal(rows.len, 3);
  assert_string_equal(rows.items[0].id, "a");
  assert_string_equal(rows.items[0].definition, "{\"id\":\"a\",\"v\":2}");
  assert_int_equal(rows.items[0].updated_ms, 2002);
  assert_string_equal(rows.items[1].id, "b");
  assert_string_equal(rows.items[1].tenant, "ops");
  assert_string_equal(rows.items[2].id, "c");
  assert_null(rows.items[2].definition);
  sb_store_agent_rows_clear(&rows);
  /* taken: a second call gives none */
  sb_store_agents_at_open(f->st, &rows);
  assert_int_equal(rows.len, 0);
}

static void test_open_errors(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store_options o = {.path = "/proc/no/such/dir/x.db", .loop = &loop};
  assert_null(sb_store_open_sqlite(&o, &err));
  assert_non_null(strstr(err.msg, "/proc/no"));
  sb_store_options no_loop = {.path = "/tmp/never.db"};
  assert_null(sb_store_open_sqlite(&no_loop, &err));
  /* A file that is not a store: the error names it. */
  char notdb[] = "/tmp/sb-test-notdb-XXXXXX";
  int fd = mkstemp(notdb);
  assert_true(fd >= 0);
  const char junk[] = "this is a text file, not SQLite, and long enough to "
                      "hold a header page's worth of complaints..........";
  assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
  close(fd);
  sb_store_options text = {.path = notdb, .loop = &loop};
  memset(&err, 0, sizeof err);
  assert_null(sb_store_open_sqlite(&text, &err));
  char want[128];
  snprintf(want, sizeof want, "store: %s: file is not a database", notdb);
  assert_string_equal(err.msg, want);
  unlink(notdb);
  /* A device or a directory is no store (before: /dev/zero-journal was
   * made beside it, then "disk I/O error"). */
  static const char *const not_files[] = {"/dev/null", "/tmp"};
  for (size_t i = 0; i < 2; i++) {
    sb_store_options dev = {.path = not_files[i], .loop = &loop};
    memset(&err, 0, sizeof err);
    assert_null(sb_store_open_sqlite(&dev, &err));
    snprintf(want, sizeof want, "store: %s: not a regular file", not_files[i]);
    assert_string_equal(err.msg, want);
  }
  assert_int_equal(access("/dev/null-journal", F_OK), -1);
  /* must_exist: a missing file is refused, and not created. */
  sb_store_options missing = {
      .path = "/tmp/sb-test-no-such-store.db", .loop = &loop, .must_exist = 1};
  unlink(missing.path);
  assert_null(sb_store_open_sqlite(&missing, &err));
  assert_int_equal(err.code, SB_ENOENT);
  assert_non_null(strstr(err.msg, "sb-test-no-such-store.db"));
  assert_int_equal(access(missing.path, F_OK), -1);
  assert_int_equal(loop_finish(&loop), 0);
}

/* A store is made and closed at path (driving runs, so its drivers file
 * is there too). */
static void make_store(const char *path) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store_options o = {.path = path, .loop = &loop, .drives_runs = 1};
  sb_store *st = sb_store_open_sqlite(&o, &err);
  assert_non_null(st);
  sb_store_close(st);
  assert_int_equal(loop_finish(&loop), 0);
}

static int try_open(const char *path, char *msg, size_t cap) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store_options o = {.path = path, .loop = &loop, .drives_runs = 1};
  sb_store *st = sb_store_open_sqlite(&o, &err);
  if (st) sb_store_close(st);
  loop_finish(&loop);
  snprintf(msg, cap, "%s", st ? "" : err.msg);
  return st ? 0 : 1;
}

/* Open path as this process, or (when root, whom no mode stops) as the
 * user nobody in a child: 0 if it opened, else 1 with msg set. */
static int open_as_unprivileged(const char *path, char *msg, size_t cap) {
  if (geteuid() != 0) return try_open(path, msg, cap);
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    char m[512];
    int rc = try_open(path, m, sizeof m);
    (void)!write(p[1], m, strlen(m));
    _exit(rc);
  }
  close(p[1]);
  ssize_t n = read(p[0], msg, cap - 1);
  msg[n > 0 ? n : 0] = '\0';
  close(p[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 3);
  return WEXITSTATUS(status);
}

static void test_store_not_writable(void **state) {
  (void)state;
  char dir[] = "/tmp/sb-test-ro-XXXXXX";
  assert_non_null(mkdtemp(dir));
  assert_int_equal(chmod(dir, 0777), 0);
  char path[128], drivers[160];
  snprintf(path, sizeof path, "%s/sb.db", dir);
  snprintf(drivers, sizeof drivers, "%s-drivers", path);
  make_store(path);
  unlink(drivers);
  assert_int_equal(chmod(path, 0444), 0);
  /* Refused naming the store and why; before, SQLite opened it read-only
   * without a word and the server said it was ready. */
  char msg[512];
  assert_int_equal(open_as_unprivileged(path, msg, sizeof msg), 1);
  char want[256];
  snprintf(want, sizeof want, "store: %s cannot be written: Permission denied",
           path);
  assert_string_equal(msg, want);
  /* Nothing was left behind that outlives the fix (before: a drivers
   * file, -wal and -shm of mode 0444 that the next start, once the store
   * was writable, could not open). */
  char wal[160], shm[160];
  snprintf(wal, sizeof wal, "%s-wal", path);
  snprintf(shm, sizeof shm, "%s-shm", path);
  assert_int_equal(access(drivers, F_OK), -1);
  assert_int_equal(access(wal, F_OK), -1);
  assert_int_equal(access(shm, F_OK), -1);
  assert_int_equal(chmod(path, 0666), 0);
  assert_int_equal(open_as_unprivileged(path, msg, sizeof msg), 0);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* Another connection on path holding the database's write lock, as
 * another process would; let_go ends it. */
static sqlite3 *hold_write_lock(const char *path) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE; CREATE TABLE held(a);",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  return db;
}

static void let_go(sqlite3 *db) {
  assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Another connection holds the write lock past the busy timeout while
 * the store opens: refused naming the file and the wait, with the code
 * for "try again" (before: "store: database is locked", no file named). */
static void test_store_locked_at_open(void **state) {
  (void)state;
  char dir[] = "/tmp/sb-test-lock-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/sb.db", dir);
  make_store(path);
  sqlite3 *db = hold_write_lock(path);
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store_options o = {.path = path, .loop = &loop, .busy_timeout_ms = 100};
  sb_store *st = sb_store_open_sqlite(&o, &err);
  assert_null(st);
  assert_int_equal(loop_finish(&loop), 0);
  assert_int_equal(err.code, SB_ETIMEDOUT);
  char want[300];
  snprintf(want, sizeof want,
           "store: %s: another process held its write lock for longer than "
           "100 ms (database is locked); start again once it is done",
           path);
  assert_string_equal(err.msg, want);
  /* Once it lets go, the store opens. */
  let_go(db);
  make_store(path);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* Another process holds the write lock past the busy timeout while the
 * store runs: the write fails as busy (try again shortly: 503 with
 * Retry-After, -31050), naming the lock; it was an I/O error (500). Once
 * the lock is let go, writes go through. */
static void test_store_locked_while_running(void **state) {
  (void)state;
  char dir[] = "/tmp/sb-test-lock-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/sb.db", dir);
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store_options o = {.path = path, .loop = &loop, .busy_timeout_ms = 100};
  sb_store *st = sb_store_open_sqlite(&o, &err);
  assert_non_null(st);
  sqlite3 *db = hold_write_lock(path);
  sb_store_record r = {.id = "c1",
                       .workflow_id = "wf",
                       .session_id = "s",
                       .created_ms = 1000,
                       .doc = "{}"};
  outcome out = {0};
  assert_int_equal(sb_store_create(st, "t", &r, NULL, on_outcome, &out), 0);
  assert_true(run_until(&loop, flag_set, &out.done, DEADLINE_MS));
  assert_int_equal(out.rc, SB_EBUSY);
  assert_non_null(strstr(out.err.msg, "database is locked"));
  outcome_clear(&out);
  let_go(db);
  memset(&out, 0, sizeof out);
  assert_int_equal(sb_store_create(st, "t", &r, NULL, on_outcome, &out), 0);
  assert_true(run_until(&loop, flag_set, &out.done, DEADLINE_MS));
  assert_int_equal(out.rc, 0);
  outcome_clear(&out);
  sb_store_close(st);
  assert_int_equal(loop_finish(&loop), 0);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_store_truncated(void **state) {
  (void)state;
  char dir[] = "/tmp/sb-test-trunc-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128], drivers[160];
  snprintf(path, sizeof path, "%s/sb.db", dir);
  make_store(path);
  assert_int_equal(truncate(path, 0), 0);
  /* A -wal left beside it does not get it past the check (before: any
   * non-empty one did, and SQLite then dropped it with its pages). */
  char wal[160];
  snprintf(wal, sizeof wal, "%s-wal", path);
  FILE *junk = fopen(wal, "w");
  assert_non_null(junk);
  fputs("not the pages of this store, 32 bytes", junk);
  fclose(junk);
  /* An emptied store is refused, naming what to do; before, it opened as
   * a new, empty store and everything in it was silently gone. */
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store_options o = {.path = path, .loop = &loop, .drives_runs = 1};
  assert_null(sb_store_open_sqlite(&o, &err));
  assert_int_equal(err.code, SB_EINVAL);
  snprintf(drivers, sizeof drivers, "%s-drivers", path);
  assert_non_null(strstr(err.msg, "is empty, but"));
  assert_non_null(strstr(err.msg, drivers));
  /* Its drivers file removed, the operator's choice: opened as it is. */
  assert_int_equal(unlink(drivers), 0);
  unlink(wal);
  sb_store *st = sb_store_open_sqlite(&o, &err);
  assert_non_null(st);
  sb_store_close(st);
  assert_int_equal(loop_finish(&loop), 0);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_create_get_append, setup, teardown),
      cmocka_unit_test(test_store_not_writable),
      cmocka_unit_test(test_store_locked_at_open),
      cmocka_unit_test(test_store_locked_while_running),
      cmocka_unit_test(test_store_truncated),
      cmocka_unit_test_setup_teardown(test_tenant_isolation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chain_and_history, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_append_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cas_inside_a_batch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failing_write_beside_succeeding,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_back_pressure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_key_loads_outside_back_pressure,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_own_writes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migrates_schema_1, setup, teardown),
      cmocka_unit_test_setup_teardown(test_agents_outlive_a_reopen, setup,
                                      teardown),
      cmocka_unit_test(test_open_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
