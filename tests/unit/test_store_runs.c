/* Unit tests for the runs and the event log of src/store/: a run's row
 * and its events written with a context version in one transaction (all
 * or nothing), compare-and-set on a run's rev, per-tenant sequence numbers
 * with no gap and no reuse (a rolled-back write consumes none; trimming
 * never brings one back), reading events since a number and of one run,
 * the listing of runs, and the loop-side hook that sees every committed
 * event before the writer's own callback. */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "test_loop.h"
#include "test_store_fixture.h"
#include "test_store_outcome.h"

#define DEADLINE_MS 20000

typedef struct fixture {
  store_fixture s;
  /* what the events hook saw, in order: "tenant:seq:type" */
  char seen[64][64];
  int nseen;
} fixture;

static void on_events(void *ud, const char *tenant,
                      const sb_store_event_rows *rows) {
  fixture *f = ud;
  for (size_t i = 0; i < rows->len && f->nseen < 64; i++)
    snprintf(f->seen[f->nseen++], sizeof f->seen[0], "%s:%lld:%s", tenant,
             (long long)rows->items[i].seq, rows->items[i].type);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (store_fixture_open(&f->s, "runs", "sb.db") != 0) return -1;
  sb_store_on_events(f->s.st, on_events, f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  int rc = store_fixture_close(&f->s);
  free(f);
  return rc;
}

static int await(fixture *f, int submitted, outcome *o) {
  if (submitted != 0) return submitted;
  assert_true(run_until(&f->s.loop, flag_set, &o->done, DEADLINE_MS));
  return o->rc;
}

static int write_run_via(fixture *f, sb_store *st, const char *tenant,
                         const char *id, const char *status, int64_t rev,
                         const char *event, outcome *o) {
  memset(o, 0, sizeof *o);
  sb_store_run run = {.id = id,
                      .workflow = "wf",
                      .context_id = "c1",
                      .status = status,
                      .doc = "{\"step\":1}",
                      .expected_rev = rev};
  sb_store_event ev = {.type = event, .run_id = id, .data = "{}"};
  sb_store_extras x = {.run = &run, .events = &ev, .nevents = event ? 1 : 0};
  return await(f, sb_store_write(st, tenant, &x, 1000, on_outcome, o), o);
}

static int write_run(fixture *f, const char *tenant, const char *id,
                     const char *status, int64_t rev, const char *event,
                     outcome *o) {
  return write_run_via(f, f->s.st, tenant, id, status, rev, event, o);
}

static int read_events(fixture *f, const char *tenant, int64_t since,
                       const char *run, outcome *o) {
  memset(o, 0, sizeof *o);
  return await(
      f, sb_store_events_read(f->s.st, tenant, since, run, 100, 0, on_outcome, o),
      o);
}

static void test_run_rows_and_rev(void **state) {
  fixture *f = *state;
  outcome o;
  assert_int_equal(write_run(f, "t", "r1", "running", 0, "run.started", &o), 0);
  assert_int_equal(o.run_rev, 1);
  assert_int_equal(o.events.len, 1);
  assert_int_equal(o.events.items[0].seq, 1);
  outcome_clear(&o);
  /* a second insert of the same id conflicts, and its event is not kept */
  assert_int_equal(write_run(f, "t", "r1", "running", 0, "run.started", &o),
                   SB_ECONFLICT);
  outcome_clear(&o);
  assert_int_equal(write_run(f, "t", "r1", "waiting", 1, "run.waiting", &o), 0);
  assert_int_equal(o.run_rev, 2);
  assert_int_equal(o.events.items[0].seq, 2); /* no gap from the conflict */
  outcome_clear(&o);
  /* stale rev: conflict with the current rev, nothing written */
  assert_int_equal(write_run(f, "t", "r1", "failed", 1, "run.failed", &o),
                   SB_ECONFLICT);
  assert_int_equal(o.run_rev, 2);
  outcome_clear(&o);
  assert_int_equal(write_run(f, "t", "nope", "failed", 3, NULL, &o), SB_ENOENT);
  outcome_clear(&o);
  /* the row as written, and not visible to another tenant */
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(f, sb_store_run_get(f->s.st, "t", "r1", on_outcome, &o), &o), 0);
  assert_int_equal(o.runs.len, 1);
  assert_string_equal(o.runs.items[0].status, "waiting");
  assert_string_equal(o.runs.items[0].workflow, "wf");
  assert_string_equal(o.runs.items[0].context_id, "c1");
  assert_int_equal(o.runs.items[0].rev, 2);
  outcome_clear(&o);
  assert_int_equal(
      await(f, sb_store_run_get(f->s.st, "u", "r1", on_outcome, &o), &o),
      SB_ENOENT);
  outcome_clear(&o);
  /* the hook saw exactly the committed events, in order */
  assert_int_equal(f->nseen, 2);
  assert_string_equal(f->seen[0], "t:1:run.started");
  assert_string_equal(f->seen[1], "t:2:run.waiting");
}

static void test_context_and_run_in_one_transaction(void **state) {
  fixture *f = *state;
  outcome o = {0};
  sb_store_run run = {.id = "r1",
                      .workflow = "wf",
                      .status = "running",
                      .doc = "{}",
                      .expected_rev = 0};
  sb_store_event ev = {.type = "step.completed", .run_id = "r1", .data = "{}"};
  sb_store_extras x = {.run = &run, .events = &ev, .nevents = 1};
  sb_store_record rec = {.id = "c1", .created_ms = 1000, .doc = "{\"v\":1}"};
  assert_int_equal(
      await(f, sb_store_create(f->s.st, "t", &rec, &x, on_outcome, &o), &o), 0);
  assert_int_equal(o.version, 1);
  assert_int_equal(o.run_rev, 1);
  outcome_clear(&o);
  /* an append whose run rev is stale fails whole: no version 2 */
  run.expected_rev = 7;
  sb_store_append_args a = {.tenant = "t",
                            .id = "c1",
                            .expected_version = 1,
                            .new_doc = "{\"v\":2}",
                            .patch = "[]",
                            .now_ms = 2000,
                            .extras = &x};
  assert_int_equal(await(f, sb_store_append(f->s.st, &a, on_outcome, &o), &o),
                   SB_ECONFLICT);
  outcome_clear(&o);
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(f, sb_store_get(f->s.st, "t", "c1", 2000, on_outcome, &o), &o), 0);
  assert_int_equal(o.record.version, 1);
  outcome_clear(&o);
  /* with the right rev, both move together */
  run.expected_rev = 1;
  assert_int_equal(await(f, sb_store_append(f->s.st, &a, on_outcome, &o), &o),
                   0);
  assert_int_equal(o.version, 2);
  assert_int_equal(o.run_rev, 2);
  outcome_clear(&o);
  assert_int_equal(read_events(f, "t", 0, NULL, &o), 0);
  assert_int_equal(o.events.len, 2);
  assert_int_equal(o.events.items[1].seq, 2);
  assert_string_equal(o.events.items[1].type, "step.completed");
  assert_string_equal(o.events.items[1].run_id, "r1");
  outcome_clear(&o);
}

static int sweep(fixture *f, int64_t now_ms, outcome *o) {
  memset(o, 0, sizeof *o);
  return await(f, sb_store_sweep_expired(f->s.st, now_ms, 100, on_outcome, o),
               o);
}

static int get_at(fixture *f, const char *id, int64_t now_ms, outcome *o) {
  memset(o, 0, sizeof *o);
  int rc = await(f, sb_store_get(f->s.st, "t", id, now_ms, on_outcome, o), o);
  outcome_clear(o);
  return rc;
}

/* An expired context stays live while a run is running or waiting on it
 * (its every transition writes the context, and a wait may outlast any
 * expiry): readable, writable, not swept, until the run has ended.
 * Another tenant's run on a context of the same id holds nothing. */
static void test_unfinished_run_keeps_its_context_live(void **state) {
  fixture *f = *state;
  outcome o = {0};
  char ids[2][3] = {"c1", "c2"};
  for (int i = 0; i < 2; i++) {
    sb_store_record rec = {.id = ids[i], .created_ms = 1000, .doc = "{}",
                           .expires_ms = 5000};
    memset(&o, 0, sizeof o);
    assert_int_equal(
        await(f, sb_store_create(f->s.st, "t", &rec, NULL, on_outcome, &o), &o),
        0);
    outcome_clear(&o);
  }
  /* t's run waits on c1; u's run names c2, which is not u's */
  assert_int_equal(write_run(f, "t", "r1", "waiting", 0, NULL, &o), 0);
  outcome_clear(&o);
  sb_store_run other = {.id = "r2", .workflow = "wf", .context_id = "c2",
                        .status = "running", .doc = "{}"};
  sb_store_extras x = {.run = &other};
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(f, sb_store_write(f->s.st, "u", &x, 1000, on_outcome, &o), &o), 0);
  outcome_clear(&o);

  assert_int_equal(get_at(f, "c1", 6000, &o), 0);
  assert_int_equal(get_at(f, "c2", 6000, &o), SB_ENOENT);
  assert_int_equal(sweep(f, 6000, &o), 0);
  assert_int_equal(o.count, 1); /* c2 */
  assert_int_equal(sweep(f, 6000, &o), 0);
  assert_int_equal(o.count, 0); /* c1 is kept */

  /* the run's step: a new version of c1 and the run's end, together */
  sb_store_run end = {.id = "r1", .workflow = "wf", .context_id = "c1",
                      .status = "completed", .doc = "{}", .expected_rev = 1};
  sb_store_extras ex = {.run = &end};
  sb_store_append_args a = {.tenant = "t", .id = "c1", .expected_version = 1,
                            .new_doc = "{\"v\":2}", .patch = "[]",
                            .expires_ms = 5000, .now_ms = 6000, .extras = &ex};
  memset(&o, 0, sizeof o);
  assert_int_equal(await(f, sb_store_append(f->s.st, &a, on_outcome, &o), &o),
                   0);
  assert_int_equal(o.version, 2);
  outcome_clear(&o);
  assert_int_equal(get_at(f, "c1", 6000, &o), SB_ENOENT); /* expired now */
  assert_int_equal(sweep(f, 6000, &o), 0);
  assert_int_equal(o.count, 1); /* c1, now its run has ended */
}

/* A write failing after it changed rows (its context moved, then its run
 * rev was stale) is undone alone: its neighbours in the batch commit,
 * their events numbered without a gap. */
static void test_partial_failure_in_a_batch(void **state) {
  fixture *f = *state;
  outcome o[3];
  memset(o, 0, sizeof o);
  sb_store_record c1 = {.id = "c1", .created_ms = 1000, .doc = "{\"v\":1}"};
  sb_store_record c2 = {.id = "c2", .created_ms = 1000, .doc = "{\"v\":1}"};
  sb_store_run run = {.id = "r9",
                      .workflow = "wf",
                      .status = "running",
                      .doc = "{}",
                      .expected_rev = 0};
  sb_store_extras with_run = {.run = &run};
  assert_int_equal(
      await(f, sb_store_create(f->s.st, "t", &c1, &with_run, on_outcome, &o[0]),
            &o[0]),
      0);
  assert_int_equal(o[0].run_rev, 1);
  outcome_clear(&o[0]);
  memset(o, 0, sizeof o);
  sb_store_stats before, after;
  sb_store_get_stats(f->s.st, &before);
  sb_store_hold_writes(f->s.st, 1);
  sb_store_event ev = {.type = "step.completed", .run_id = "r9", .data = "{}"};
  run.expected_rev = 5; /* stale: the run is at 1 */
  sb_store_extras stale = {.run = &run, .events = &ev, .nevents = 1};
  sb_store_extras fine = {.events = &ev, .nevents = 1};
  sb_store_append_args good = {.tenant = "t",
                               .id = "c1",
                               .expected_version = 1,
                               .new_doc = "{\"v\":2}",
                               .patch = "[]",
                               .now_ms = 2000,
                               .extras = &fine};
  sb_store_append_args bad = good;
  bad.expected_version = 2; /* after good: the context moves, the run not */
  bad.new_doc = "{\"v\":3}";
  bad.extras = &stale;
  assert_int_equal(sb_store_append(f->s.st, &good, on_outcome, &o[0]), 0);
  assert_int_equal(sb_store_append(f->s.st, &bad, on_outcome, &o[1]), 0);
  assert_int_equal(sb_store_create(f->s.st, "t", &c2, &fine, on_outcome, &o[2]),
                   0);
  sb_store_hold_writes(f->s.st, 0);
  for (int i = 0; i < 3; i++)
    assert_true(run_until(&f->s.loop, flag_set, &o[i].done, DEADLINE_MS));
  sb_store_get_stats(f->s.st, &after);
  assert_int_equal(after.batches - before.batches, 1);
  assert_int_equal(o[0].rc, 0);
  assert_int_equal(o[0].version, 2);
  assert_int_equal(o[1].rc, SB_ECONFLICT);
  assert_int_equal(o[2].rc, 0);
  for (int i = 0; i < 3; i++)
    outcome_clear(&o[i]);
  outcome g = {0};
  assert_int_equal(
      await(f, sb_store_get(f->s.st, "t", "c1", 3000, on_outcome, &g), &g), 0);
  assert_int_equal(g.record.version, 2);
  assert_string_equal(g.record.doc, "{\"v\":2}");
  outcome_clear(&g);
  memset(&g, 0, sizeof g);
  assert_int_equal(read_events(f, "t", 0, NULL, &g), 0);
  assert_int_equal(g.events.len, 2); /* good's and c2's, 1 and 2 */
  assert_int_equal(g.events.items[0].seq, 1);
  assert_int_equal(g.events.items[1].seq, 2);
  outcome_clear(&g);
}

/* Writes that come while the writer lingers for them join the batch's
 * open transaction: after a batch of WAVE creates, the writer expects WAVE
 * writes; they come one per turn of the loop, with one failing after it
 * changed rows among them. It fails alone, whether it joined a
 * transaction or not; the others commit, their events numbered without a
 * gap. */
enum { WAVE = 8, WAVE_BAD = 5 };

typedef struct wave {
  fixture *f;
  uv_idle_t idle;
  outcome first[WAVE], second[WAVE];
  int sent;
  sb_store_run run;
} wave;

/* One write of the second wave per turn of the loop, once the first is
 * acknowledged. */
static void wave_send(uv_idle_t *h) {
  wave *w = h->data;
  for (int i = 0; i < WAVE; i++)
    if (!w->first[i].done) return;
  int i = w->sent++;
  if (w->sent == WAVE) uv_idle_stop(h);
  char id[8];
  snprintf(id, sizeof id, "w%d", i);
  sb_store_event ev = {.type = "context.updated", .data = "{}"};
  sb_store_extras fine = {.events = &ev, .nevents = 1};
  sb_store_extras stale = {.run = &w->run, .events = &ev, .nevents = 1};
  sb_store_append_args a = {.tenant = "t",
                            .id = id,
                            .expected_version = 1,
                            .new_doc = "{\"v\":2}",
                            .patch = "[]",
                            .now_ms = 2000,
                            .extras = i == WAVE_BAD ? &stale : &fine};
  assert_int_equal(sb_store_append(w->f->s.st, &a, on_outcome, &w->second[i]),
                   0);
}

static void test_writes_join_a_lingering_batch(void **state) {
  fixture *f = *state;
  wave *w = calloc(1, sizeof *w);
  w->f = f;
  /* stale: the run does not exist, after the context moved */
  w->run = (sb_store_run){.id = "r-none",
                          .workflow = "wf",
                          .status = "running",
                          .doc = "{}",
                          .expected_rev = 3};
  sb_store_hold_writes(f->s.st, 1);
  for (int i = 0; i < WAVE; i++) {
    char id[8];
    snprintf(id, sizeof id, "w%d", i);
    sb_store_record c = {.id = id, .created_ms = 1000, .doc = "{\"v\":1}"};
    assert_int_equal(
        sb_store_create(f->s.st, "t", &c, NULL, on_outcome, &w->first[i]), 0);
  }
  uv_idle_init(&f->s.loop, &w->idle);
  w->idle.data = w;
  uv_idle_start(&w->idle, wave_send);
  sb_store_hold_writes(f->s.st, 0);
  for (int i = 0; i < WAVE; i++)
    assert_true(
        run_until(&f->s.loop, flag_set, &w->second[i].done, DEADLINE_MS));
  uv_close((uv_handle_t *)&w->idle, NULL);
  for (int i = 0; i < WAVE; i++) {
    assert_int_equal(w->first[i].rc, 0);
    assert_int_equal(w->second[i].rc, i == WAVE_BAD ? SB_ENOENT : 0);
    outcome_clear(&w->first[i]);
    outcome_clear(&w->second[i]);
    char id[8];
    snprintf(id, sizeof id, "w%d", i);
    outcome g = {0};
    assert_int_equal(
        await(f, sb_store_get(f->s.st, "t", id, 3000, on_outcome, &g), &g), 0);
    assert_int_equal(g.record.version, i == WAVE_BAD ? 1 : 2);
    outcome_clear(&g);
  }
  outcome g = {0};
  assert_int_equal(read_events(f, "t", 0, NULL, &g), 0);
  assert_int_equal(g.events.len, WAVE - 1);
  for (size_t i = 0; i < g.events.len; i++)
    assert_int_equal(g.events.items[i].seq, (int64_t)i + 1);
  outcome_clear(&g);
  run_until(&f->s.loop, loop_idle, &f->s.loop, 0); /* the idle's close */
  free(w);
}

static void test_sequences_per_tenant(void **state) {
  fixture *f = *state;
  outcome o;
  /* held writes run as one batch: a failing one in the middle takes no
   * number, so its neighbours' numbers stay contiguous */
  sb_store_hold_writes(f->s.st, 1);
  outcome w[4] = {{0}};
  sb_store_event ev[2] = {
      {.type = "a.one", .data = "{}"},
      {.type = "a.two", .run_id = "r9", .data = "{\"k\":1}"}};
  sb_store_extras two = {.events = ev, .nevents = 2};
  sb_store_run bad = {.id = "zz",
                      .workflow = "wf",
                      .status = "running",
                      .doc = "{}",
                      .expected_rev = 5};
  sb_store_extras failing = {.run = &bad, .events = ev, .nevents = 1};
  assert_int_equal(sb_store_write(f->s.st, "t", &two, 1, on_outcome, &w[0]), 0);
  assert_int_equal(sb_store_write(f->s.st, "t", &failing, 1, on_outcome, &w[1]),
                   0);
  assert_int_equal(sb_store_write(f->s.st, "u", &two, 1, on_outcome, &w[2]), 0);
  assert_int_equal(sb_store_write(f->s.st, "t", &two, 1, on_outcome, &w[3]), 0);
  sb_store_hold_writes(f->s.st, 0);
  assert_true(run_until(&f->s.loop, flag_set, &w[3].done, DEADLINE_MS));
  assert_int_equal(w[0].rc, 0);
  assert_int_equal(w[1].rc, SB_ENOENT);
  assert_int_equal(w[1].events.len, 0);
  assert_int_equal(w[2].events.items[0].seq, 1); /* u's own numbering */
  assert_int_equal(w[3].events.items[0].seq, 3);
  assert_int_equal(w[3].events.items[1].seq, 4);
  for (int i = 0; i < 4; i++)
    outcome_clear(&w[i]);
  /* since, and one run's */
  assert_int_equal(read_events(f, "t", 2, NULL, &o), 0);
  assert_int_equal(o.events.len, 2);
  assert_int_equal(o.events.items[0].seq, 3);
  assert_int_equal(o.last_seq, 4); /* the tenant's newest, with a read */
  outcome_clear(&o);
  /* past the end: nothing read, and the newest says the cursor is no
   * cursor of this log */
  assert_int_equal(read_events(f, "t", 9, NULL, &o), 0);
  assert_int_equal(o.events.len, 0);
  assert_int_equal(o.last_seq, 4);
  outcome_clear(&o);
  assert_int_equal(read_events(f, "nobody", 0, NULL, &o), 0);
  assert_int_equal(o.last_seq, 0);
  outcome_clear(&o);
  assert_int_equal(read_events(f, "t", 0, "r9", &o), 0);
  assert_int_equal(o.events.len, 2);
  assert_string_equal(o.events.items[0].data, "{\"k\":1}");
  outcome_clear(&o);
  /* trimming everything never brings a number back */
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(f, sb_store_events_trim(f->s.st, 10, 0, on_outcome, &o), &o), 0);
  assert_int_equal(o.count, 6);
  outcome_clear(&o);
  /* the newest outlives the events trimmed */
  assert_int_equal(read_events(f, "t", 0, NULL, &o), 0);
  assert_int_equal(o.events.len, 0);
  assert_int_equal(o.last_seq, 4);
  outcome_clear(&o);
  assert_int_equal(sb_store_write(f->s.st, "t", &two, 20, on_outcome, &o), 0);
  assert_true(run_until(&f->s.loop, flag_set, &o.done, DEADLINE_MS));
  assert_int_equal(o.events.items[0].seq, 5);
  outcome_clear(&o);
}

static void test_run_listing(void **state) {
  fixture *f = *state;
  outcome o;
  const char *ids[] = {"r1", "r2", "r3", "r4"};
  const char *status[] = {"running", "completed", "waiting", "failed"};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(write_run(f, "t", ids[i], status[i], 0, NULL, &o), 0);
    outcome_clear(&o);
  }
  assert_int_equal(write_run(f, "u", "r5", "running", 0, NULL, &o), 0);
  outcome_clear(&o);
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(f, sb_store_run_list(f->s.st, "t", NULL, NULL, 2, on_outcome, &o),
            &o),
      0);
  assert_int_equal(o.runs.len, 2);
  assert_string_equal(o.runs.items[0].id, "r4"); /* newest id first */
  assert_string_equal(o.runs.items[1].id, "r3");
  outcome_clear(&o);
  assert_int_equal(
      await(f, sb_store_run_list(f->s.st, "t", NULL, "r3", 10, on_outcome, &o),
            &o),
      0);
  assert_int_equal(o.runs.len, 2);
  assert_string_equal(o.runs.items[0].id, "r2");
  outcome_clear(&o);
  assert_int_equal(await(f,
                         sb_store_run_list(f->s.st, "t", "running", NULL, 10,
                                           on_outcome, &o),
                         &o),
                   0);
  assert_int_equal(o.runs.len, 1);
  assert_string_equal(o.runs.items[0].id, "r1");
  outcome_clear(&o);
  /* active runs of every tenant */
  assert_int_equal(await(f, sb_store_runs_claim(f->s.st, 1, on_outcome, &o), &o),
                   0);
  assert_int_equal(o.runs.len, 3);
  int tenants_u = 0;
  for (size_t i = 0; i < o.runs.len; i++)
    tenants_u += strcmp(o.runs.items[i].tenant, "u") == 0;
  assert_int_equal(tenants_u, 1);
  outcome_clear(&o);
  /* a write with nothing in it, and an event without data, are refused */
  sb_store_extras none = {0};
  assert_int_equal(sb_store_write(f->s.st, "t", &none, 1, on_outcome, &o),
                   SB_EINVAL);
  sb_store_event nodata = {.type = "x.y"};
  sb_store_extras bad = {.events = &nodata, .nevents = 1};
  assert_int_equal(sb_store_write(f->s.st, "t", &bad, 1, on_outcome, &o),
                   SB_EINVAL);
}

/* A read of the log stops at its byte bound (the first event always read,
 * however large) and says that more follow, as it does at its limit; with
 * the bound and the limit both above what is left, nothing follows. */
static void test_events_read_bounded_by_bytes(void **state) {
  fixture *f = *state;
  outcome o;
  char data[1003];
  data[0] = '"';
  memset(data + 1, 'x', 1000);
  data[1001] = '"';
  data[1002] = '\0';
  sb_store_event ev[10];
  for (int i = 0; i < 10; i++)
    ev[i] = (sb_store_event){.type = "a.b", .run_id = "", .data = data};
  sb_store_extras x = {.events = ev, .nevents = 10};
  memset(&o, 0, sizeof o);
  assert_int_equal(
      await(f, sb_store_write(f->s.st, "t", &x, 1000, on_outcome, &o), &o), 0);
  outcome_clear(&o);
  /* each row counts 1002 + 3 + SB_STORE_EVENT_OVERHEAD: three fit */
  size_t row = 1002 + 3 + SB_STORE_EVENT_OVERHEAD;
  memset(&o, 0, sizeof o);
  assert_int_equal(await(f,
                         sb_store_events_read(f->s.st, "t", 0, NULL, 100,
                                              3 * row + row / 2, on_outcome,
                                              &o),
                         &o),
                   0);
  assert_int_equal(o.events.len, 3);
  assert_int_equal(o.events.items[2].seq, 3);
  assert_true(o.more);
  assert_int_equal(o.last_seq, 10);
  outcome_clear(&o);
  /* a bound below one event still reads one: the reader moves on */
  memset(&o, 0, sizeof o);
  assert_int_equal(await(f,
                         sb_store_events_read(f->s.st, "t", 3, NULL, 100, 10,
                                              on_outcome, &o),
                         &o),
                   0);
  assert_int_equal(o.events.len, 1);
  assert_int_equal(o.events.items[0].seq, 4);
  assert_true(o.more);
  outcome_clear(&o);
  /* the limit: more follow; the rest: nothing follows */
  memset(&o, 0, sizeof o);
  assert_int_equal(await(f,
                         sb_store_events_read(f->s.st, "t", 4, NULL, 3, 0,
                                              on_outcome, &o),
                         &o),
                   0);
  assert_int_equal(o.events.len, 3);
  assert_true(o.more);
  outcome_clear(&o);
  memset(&o, 0, sizeof o);
  assert_int_equal(await(f,
                         sb_store_events_read(f->s.st, "t", 7, NULL, 3, 0,
                                              on_outcome, &o),
                         &o),
                   0);
  assert_int_equal(o.events.len, 3);
  assert_false(o.more);
  outcome_clear(&o);
}

/* A list of runs gives their summaries: no input, no history, no
 * definition, which a get still gives whole. */
static void test_run_listing_leaves_input_out(void **state) {
  fixture *f = *state;
  outcome o = {0};
  sb_store_run run = {.id = "r1",
                      .workflow = "wf",
                      .context_id = "c1",
                      .status = "completed",
                      .doc = "{\"status\":\"completed\",\"input\":{\"big\":"
                             "\"xxxx\"},\"history\":[1,2],\"stepsRun\":2}",
                      .def = "{\"name\":\"wf\"}"};
  sb_store_extras x = {.run = &run};
  assert_int_equal(
      await(f, sb_store_write(f->s.st, "t", &x, 1000, on_outcome, &o), &o), 0);
  outcome_clear(&o);
  assert_int_equal(
      await(f, sb_store_run_list(f->s.st, "t", NULL, NULL, 10, on_outcome, &o),
            &o),
      0);
  assert_int_equal(o.runs.len, 1);
  assert_string_equal(o.runs.items[0].doc,
                      "{\"status\":\"completed\",\"stepsRun\":2}");
  assert_string_equal(o.runs.items[0].def, "");
  assert_int_equal(o.runs.items[0].rev, 1);
  outcome_clear(&o);
  assert_int_equal(
      await(f, sb_store_run_get(f->s.st, "t", "r1", on_outcome, &o), &o), 0);
  assert_string_equal(o.runs.items[0].doc, run.doc);
  assert_string_equal(o.runs.items[0].def, run.def);
  outcome_clear(&o);
}

/* Closing the store with a backlog of reads: those not started complete
 * at once as cancelled instead of each being run (a flood of them held
 * the close, and SIGTERM, for seconds), while a write queued behind them
 * is still committed. */
#define BACKLOG 400
static void count_read(void *ud, sb_store_result *res) {
  int *n = ud; /* n[0]: answered, n[1]: cancelled, n[2]: other */
  n[res->rc == 0 ? 0 : res->rc == SB_ECANCELED ? 1 : 2]++;
}

static void test_close_cancels_queued_reads(void **state) {
  fixture *f = *state;
  outcome o = {0};
  /* a run whose row is large: each read of it takes a while */
  size_t big = 1u << 20;
  char *doc = malloc(big + 32);
  assert_non_null(doc);
  strcpy(doc, "{\"input\":\"");
  memset(doc + 10, 'x', big);
  strcpy(doc + 10 + big, "\"}");
  sb_store_run run = {.id = "r1",
                      .workflow = "wf",
                      .context_id = "c1",
                      .status = "running",
                      .doc = doc};
  sb_store_extras x = {.run = &run};
  assert_int_equal(
      await(f, sb_store_write(f->s.st, "t", &x, 1000, on_outcome, &o), &o), 0);
  outcome_clear(&o);
  int n[3] = {0};
  for (int i = 0; i < BACKLOG; i++)
    assert_int_equal(sb_store_run_get(f->s.st, "t", "r1", count_read, n), 0);
  /* a write behind them, already taken by the store: it must land */
  run.status = "completed";
  run.doc = "{\"done\":true}";
  run.expected_rev = 1;
  assert_int_equal(sb_store_write(f->s.st, "t", &x, 2000, on_outcome, &o), 0);
  uint64_t t0 = uv_hrtime();
  sb_store_close(f->s.st);
  uint64_t took_ms = (uv_hrtime() - t0) / 1000000;
  free(doc);
  /* open again first: the teardown closes it, whatever fails below */
  f->s.st = store_open_at(&f->s.loop, f->s.path, 0);
  assert_int_equal(n[0] + n[1] + n[2], BACKLOG); /* each called back once */
  assert_int_equal(n[2], 0);
  assert_true(n[1] > 0);
  assert_true(o.done);
  assert_int_equal(o.rc, 0);
  outcome_clear(&o);
  /* a few reads under way may finish; hundreds of megabytes are not read */
  assert_true(took_ms < 2000);
  /* the write is there */
  assert_int_equal(
      await(f, sb_store_run_get(f->s.st, "t", "r1", on_outcome, &o), &o), 0);
  assert_string_equal(o.runs.items[0].status, "completed");
  assert_int_equal(o.runs.items[0].rev, 2);
  outcome_clear(&o);
}

/* ---- driver slots: who takes over which runs -------------------------- */

static sb_store *open_driving_at(fixture *f, const char *path) {
  sb_error err = {0};
  sb_store_options o = {.path = path, .loop = &f->s.loop, .drives_runs = 1};
  sb_store *st = sb_store_open_sqlite(&o, &err);
  if (!st) fail_msg("open: %s", err.msg);
  return st;
}

static sb_store *open_driving(fixture *f) {
  return open_driving_at(f, f->s.path);
}

static int by_id(const void *a, const void *b) {
  return strcmp(((const sb_store_run_record *)a)->id,
                ((const sb_store_run_record *)b)->id);
}

/* The ids st claims, sorted and joined by commas ("" for none); a run
 * moved away from st (taken over by another) is "~id". */
static void claims(fixture *f, sb_store *st, int at_start, const char *want) {
  outcome o = {0};
  assert_int_equal(
      await(f, sb_store_runs_claim(st, at_start, on_outcome, &o), &o), 0);
  if (o.runs.len) qsort(o.runs.items, o.runs.len, sizeof *o.runs.items, by_id);
  char got[256] = "";
  for (size_t i = 0; i < o.runs.len; i++) {
    if (i) strcat(got, ",");
    if (o.runs.items[i].moved_away) strcat(got, "~");
    strcat(got, o.runs.items[i].id);
  }
  assert_string_equal(got, want);
  outcome_clear(&o);
}

/* A run a living process drives is never claimed by another; a process
 * that ends leaves its runs to the next claim, its own slot's new holder's
 * included; runs ended are never claimed; runs with no driver are; a
 * process learns once of each run another took from it. */
static void test_runs_claimed_only_from_ended_drivers(void **state) {
  fixture *f = *state;
  outcome o;
  /* Written by a store that drives none: nobody drives them. */
  assert_int_equal(write_run(f, "t", "old", "running", 0, NULL, &o), 0);
  assert_int_equal(write_run(f, "t", "done", "completed", 0, NULL, &o), 0);

  sb_store *a = open_driving(f); /* slot 0 */
  claims(f, a, 1, "old");
  claims(f, a, 0, ""); /* its own now */
  assert_int_equal(write_run_via(f, a, "t", "a1", "running", 0, NULL, &o), 0);

  sb_store *b = open_driving(f); /* slot 1: a is alive */
  claims(f, b, 1, "");
  assert_int_equal(write_run_via(f, b, "u", "b1", "waiting", 0, NULL, &o), 0);
  claims(f, a, 0, "");
  /* b's update of a's run (an answer adopted there) makes it b's: a
   * learns it at its next claim, once. */
  assert_int_equal(write_run_via(f, b, "t", "a1", "running", 1, NULL, &o), 0);
  claims(f, a, 0, "~a1");
  claims(f, a, 0, "");

  sb_store_close(a); /* the process ends: its slot is free */
  claims(f, b, 0, "old");
  claims(f, b, 0, "");

  /* Slot 0 again, held by a new process: what b took stays b's. */
  sb_store *c = open_driving(f);
  claims(f, c, 1, "");
  assert_int_equal(write_run_via(f, c, "t", "c1", "running", 0, NULL, &o), 0);
  sb_store_close(b);
  claims(f, c, 0, "a1,b1,old");
  /* Its own runs at start: left by its slot's previous holder. */
  sb_store_close(c);
  sb_store *d = open_driving(f); /* slot 0 */
  claims(f, d, 1, "a1,b1,c1,old");
  sb_store_close(d);
}

/* A process naming the store through a symbolic link shares the drivers
 * of every other: it never takes a living one's runs. */
static void test_drivers_shared_through_a_link(void **state) {
  fixture *f = *state;
  outcome o;
  char link[160];
  snprintf(link, sizeof link, "%s/link.db", f->s.dir);
  assert_int_equal(symlink(f->s.path, link), 0);
  sb_store *a = open_driving(f);
  claims(f, a, 1, "");
  assert_int_equal(write_run_via(f, a, "t", "a1", "running", 0, NULL, &o), 0);
  sb_store *b = open_driving_at(f, link);
  claims(f, b, 1, "");
  sb_store_close(a);
  claims(f, b, 0, "a1");
  sb_store_close(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_run_rows_and_rev, setup, teardown),
      cmocka_unit_test_setup_teardown(test_partial_failure_in_a_batch, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_context_and_run_in_one_transaction,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_writes_join_a_lingering_batch,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_sequences_per_tenant, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_run_listing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_events_read_bounded_by_bytes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_run_listing_leaves_input_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_close_cancels_queued_reads, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_runs_claimed_only_from_ended_drivers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_drivers_shared_through_a_link,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_unfinished_run_keeps_its_context_live, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
