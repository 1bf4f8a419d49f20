/* Unit tests for src/events/: a subscription gets what was logged after
 * its starting seq, then live events, in order with no gap and no
 * duplicate, even when events are written by another process (a second
 * store on the same file) that it only learns about from a gap; filters
 * by type (exact and "prefix.*") and by run; another tenant's events
 * never arrive; unsubscribing from inside a callback; publishing checks
 * the type, and that a runId names a run of the tenant; events older than
 * the retention are trimmed soon after start, a backlog in batches. */
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

#include "events/events.h"
#include "test_loop.h"
#include "test_store_fixture.h"

#define DEADLINE_MS 20000
/* Events written as now: the bus trims older than its retention (a week)
 * from a second after it starts. */
#define NOW ((int64_t)sb_wall_ms())

typedef struct fixture {
  store_fixture s;
  sb_events *ev;
} fixture;

typedef struct got {
  int64_t seqs[256];
  char types[256][32];
  int n;
  int want;
  sb_events_sub *sub;
  int unsubscribe_at; /* unsubscribe from the callback after this many */
  int pause_at;       /* pause from the callback after this many */
} got;

static void on_event(void *ud, const sb_event *e) {
  got *g = ud;
  assert_true(g->n < 256);
  g->seqs[g->n] = e->seq;
  snprintf(g->types[g->n], sizeof g->types[0], "%s", e->type);
  g->n++;
  if (g->pause_at && g->n == g->pause_at) sb_events_sub_pause(g->sub);
  if (g->unsubscribe_at && g->n == g->unsubscribe_at) {
    sb_events_unsubscribe(g->sub);
    g->sub = NULL;
  }
}

static int got_enough(void *ud) {
  got *g = ud;
  return g->n >= g->want;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (store_fixture_open(&f->s, "events", "sb.db") != 0) return -1;
  sb_error err = {0};
  sb_events_options o = {.store = f->s.st};
  f->ev = sb_events_new(&o, &err);
  assert_non_null(f->ev);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  sb_events_free(f->ev);
  int rc = store_fixture_close(&f->s);
  free(f);
  return rc;
}

typedef struct acked {
  int n;
  int64_t last;
} acked;

static void on_acked(void *ud, int rc, int64_t seq, const sb_error *err) {
  acked *a = ud;
  (void)err;
  assert_int_equal(rc, 0);
  a->n++;
  a->last = seq;
}

static void on_written(void *ud, sb_store_result *res) {
  assert_int_equal(res->rc, 0);
  (*(int *)ud)++;
}

static void publish(fixture *f, const char *tenant, const char *type,
                    const char *run, acked *a) {
  sb_error err = {0};
  json_t *data = json_pack("{ss}", "k", type);
  assert_int_equal(
      sb_events_publish(f->ev, tenant, type, run, data, on_acked, a, &err), 0);
  json_decref(data);
}

static void test_backlog_then_live_in_order(void **state) {
  fixture *f = *state;
  acked a = {0};
  for (int i = 0; i < 5; i++) publish(f, "t", "lead.new", NULL, &a);
  publish(f, "u", "lead.new", NULL, &a); /* another tenant's */
  assert_true(run_until(&f->s.loop, flag_set, &a.n, DEADLINE_MS));
  while (a.n < 6) uv_run(&f->s.loop, UV_RUN_ONCE);
  got g = {.want = 3 + 4};
  sb_error err = {0};
  g.sub = sb_events_subscribe(f->ev, "t", 2, NULL, on_event, NULL, &g, &err);
  assert_non_null(g.sub);
  /* live ones written while the backlog is read, and after */
  for (int i = 0; i < 4; i++) publish(f, "t", "lead.more", NULL, &a);
  assert_true(run_until(&f->s.loop, got_enough, &g, DEADLINE_MS));
  for (int i = 0; i < g.n; i++) assert_int_equal(g.seqs[i], 3 + i);
  assert_string_equal(g.types[3], "lead.more");
  assert_int_equal(sb_events_sub_seq(g.sub), 9);
  sb_events_unsubscribe(g.sub);
}

static void test_gap_from_another_process(void **state) {
  fixture *f = *state;
  got g = {.want = 6};
  sb_error err = {0};
  g.sub = sb_events_subscribe(f->ev, "t", 0, NULL, on_event, NULL, &g, &err);
  acked a = {0};
  publish(f, "t", "x.one", NULL, &a);
  assert_true(run_until(&f->s.loop, flag_set, &a.n, DEADLINE_MS));
  /* A second store on the same file (as another process would) writes
   * seq 2..4; the bus never hears of them. */
  uv_loop_t other;
  uv_loop_init(&other);
  sb_store *st2 = store_open_at(&other, f->s.path, 0);
  sb_store_event e = {.type = "x.other", .data = "{}"};
  sb_store_extras x = {.events = &e, .nevents = 1};
  int written = 0;
  for (int i = 0; i < 3; i++)
    assert_int_equal(sb_store_write(st2, "t", &x, NOW, on_written, &written), 0);
  sb_store_close(st2); /* runs what is queued */
  assert_int_equal(written, 3);
  assert_int_equal(loop_finish(&other), 0);
  /* ...then ours writes seq 5, 6: the subscription sees the gap and
   * reads 2..4 from the log, all in order. */
  publish(f, "t", "x.two", NULL, &a);
  publish(f, "t", "x.three", NULL, &a);
  assert_true(run_until(&f->s.loop, got_enough, &g, DEADLINE_MS));
  for (int i = 0; i < 6; i++) assert_int_equal(g.seqs[i], i + 1);
  assert_string_equal(g.types[1], "x.other");
  assert_string_equal(g.types[5], "x.three");
  sb_events_unsubscribe(g.sub);
}

static void test_filters_and_unsubscribe_inside(void **state) {
  fixture *f = *state;
  const char *types[] = {"run.*", "lead.won"};
  sb_events_filter flt = {.types = types, .ntypes = 2};
  got g = {.want = 2};
  sb_error err = {0};
  g.sub = sb_events_subscribe(f->ev, "t", 0, &flt, on_event, NULL, &g, &err);
  sb_events_filter by_run = {.run_id = "r1"};
  got h = {.want = 2, .unsubscribe_at = 2};
  h.sub = sb_events_subscribe(f->ev, "t", 0, &by_run, on_event, NULL, &h, &err);
  /* run.* types are switchboard's own: write them as the engine does */
  sb_store_event evs[] = {{.type = "run.started", .run_id = "r1", .data = "{}"},
                          {.type = "runner.x", .run_id = "r2", .data = "{}"},
                          {.type = "lead.won", .run_id = "r1", .data = "{}"},
                          {.type = "lead.lost", .run_id = "r1", .data = "{}"}};
  sb_store_extras x = {.events = evs, .nevents = 4};
  int written = 0;
  assert_int_equal(sb_store_write(f->s.st, "t", &x, NOW, on_written, &written), 0);
  assert_true(run_until(&f->s.loop, flag_set, &written, DEADLINE_MS));
  assert_true(run_until(&f->s.loop, got_enough, &g, DEADLINE_MS));
  assert_true(run_until(&f->s.loop, got_enough, &h, DEADLINE_MS));
  assert_int_equal(g.n, 2);
  assert_string_equal(g.types[0], "run.started");
  assert_string_equal(g.types[1], "lead.won");
  assert_int_equal(h.n, 2); /* unsubscribed itself at 2: lead.lost not seen */
  assert_null(h.sub);
  sb_events_unsubscribe(g.sub);
  /* publishing: only types that are not switchboard's own, well formed */
  json_t *d = json_object();
  assert_int_equal(sb_events_publish(f->ev, "t", "run.completed", NULL, d,
                                     NULL, NULL, &err),
                   SB_EINVAL);
  assert_int_equal(sb_events_publish(f->ev, "t", "NoDot", NULL, d, NULL, NULL,
                                     &err),
                   SB_EINVAL);
  json_t *arr = json_array();
  assert_int_equal(sb_events_publish(f->ev, "t", "a.b", NULL, arr, NULL, NULL,
                                     &err),
                   SB_EINVAL);
  json_decref(arr);
  json_decref(d);
  assert_int_equal(sb_event_type_of("agent.handoff"), SB_EVENT_AGENT_HANDOFF);
  assert_string_equal(sb_event_type_name(SB_EVENT_RUN_WAITING), "run.waiting");
}

typedef struct outcome {
  int done;
  int rc;
  int64_t seq;
  char msg[sizeof(((sb_error *)0)->msg)];
} outcome;

static void on_outcome(void *ud, int rc, int64_t seq, const sb_error *err) {
  outcome *o = ud;
  o->done = 1;
  o->rc = rc;
  o->seq = seq;
  snprintf(o->msg, sizeof o->msg, "%s", err ? err->msg : "");
}

static outcome publish_for_run(fixture *f, const char *tenant,
                               const char *run) {
  outcome o = {0};
  sb_error err = {0};
  json_t *d = json_object();
  assert_int_equal(sb_events_publish(f->ev, tenant, "lead.note", run, d,
                                     on_outcome, &o, &err),
                   0);
  json_decref(d);
  assert_true(run_until(&f->s.loop, flag_set, &o.done, DEADLINE_MS));
  return o;
}

/* A published event's runId must name a run of that tenant: a mistyped
 * one is refused and takes no seq. */
static void test_publish_names_a_run(void **state) {
  fixture *f = *state;
  outcome o = publish_for_run(f, "t", "no-such-run");
  assert_int_equal(o.rc, SB_ENOENT);
  assert_string_equal(o.msg, "runId: no run no-such-run");
  sb_store_run run = {.id = "r9",
                      .workflow = "lead",
                      .status = "waiting",
                      .doc = "{}",
                      .def = "{}"};
  sb_store_extras x = {.run = &run};
  int written = 0;
  assert_int_equal(sb_store_write(f->s.st, "t", &x, NOW, on_written, &written), 0);
  assert_true(run_until(&f->s.loop, flag_set, &written, DEADLINE_MS));
  o = publish_for_run(f, "t", "r9");
  assert_int_equal(o.rc, 0);
  assert_int_equal(o.seq, 1); /* the refused one took none */
  o = publish_for_run(f, "u", "r9"); /* another tenant's run */
  assert_int_equal(o.rc, SB_ENOENT);
  o = publish_for_run(f, "t", NULL); /* no run at all is fine */
  assert_int_equal(o.rc, 0);
  assert_int_equal(o.seq, 2);
}

/* A consumer that pauses in the middle of a page of the log gets nothing
 * more (the rest of that page, events committed meanwhile) until it
 * resumes; then everything after the last it had, once each, in order. */
static void test_pause_and_resume(void **state) {
  fixture *f = *state;
  acked a = {0};
  for (int i = 0; i < 5; i++) publish(f, "t", "lead.new", NULL, &a);
  while (a.n < 5) uv_run(&f->s.loop, UV_RUN_ONCE);
  got g = {.want = 2, .pause_at = 2};
  sb_error err = {0};
  g.sub = sb_events_subscribe(f->ev, "t", 0, NULL, on_event, NULL, &g, &err);
  assert_true(run_until(&f->s.loop, got_enough, &g, DEADLINE_MS));
  for (int i = 0; i < 3; i++) publish(f, "t", "lead.more", NULL, &a);
  while (a.n < 8) uv_run(&f->s.loop, UV_RUN_ONCE);
  uv_run(&f->s.loop, UV_RUN_NOWAIT);
  assert_int_equal(g.n, 2); /* paused: neither the page's rest nor new */
  assert_int_equal(sb_events_sub_seq(g.sub), 2);
  g.want = 8;
  g.pause_at = 0;
  sb_events_sub_resume(g.sub);
  assert_true(run_until(&f->s.loop, got_enough, &g, DEADLINE_MS));
  publish(f, "t", "lead.last", NULL, &a); /* live again */
  g.want = 9;
  assert_true(run_until(&f->s.loop, got_enough, &g, DEADLINE_MS));
  assert_int_equal(g.n, 9);
  for (int i = 0; i < g.n; i++) assert_int_equal(g.seqs[i], i + 1);
  assert_string_equal(g.types[8], "lead.last");
  sb_events_unsubscribe(g.sub);
}

static void count_tap(void *ud, const char *tenant, int64_t last_seq) {
  (void)tenant;
  (void)last_seq;
  (*(int *)ud)++;
}

static int never(void *ud) {
  (void)ud;
  return 0;
}

/* The poll for other processes' events reads past what this process has
 * heard, not past what a paused subscription took: a stream its client
 * does not read cost the same page of the log read again every round
 * (7-9% of a core for one such stream of big events). */
static void test_a_paused_subscription_costs_no_reads(void **state) {
  fixture *f = *state;
  sb_events_free(f->ev);
  sb_error err = {0};
  sb_events_options o = {.store = f->s.st, .poll_every_ms = 5};
  f->ev = sb_events_new(&o, &err);
  assert_non_null(f->ev);
  acked a = {0};
  for (int i = 0; i < 600; i++) publish(f, "t", "lead.new", NULL, &a);
  while (a.n < 600) uv_run(&f->s.loop, UV_RUN_ONCE);
  got g = {.want = 1, .pause_at = 1};
  g.sub = sb_events_subscribe(f->ev, "t", 0, NULL, on_event, NULL, &g, &err);
  assert_true(run_until(&f->s.loop, got_enough, &g, DEADLINE_MS));
  /* Every read that finds events passes them on (the tap hears it): the
   * rounds may read the 599 it has not heard of yet once (two pages),
   * and nothing after that, however many rounds come (40 here). */
  int reads = 0;
  sb_events_tap(f->ev, count_tap, &reads);
  run_until_ex(&f->s.loop, never, NULL, 200, 0);
  assert_true(reads <= 2);
  assert_int_equal(g.n, 1); /* still paused */
  sb_events_unsubscribe(g.sub);
}

typedef struct log_probe {
  sb_store *st;
  int reading;
  int64_t left; /* events the last read found; -1 before one answered */
} log_probe;

static void on_probe(void *ud, sb_store_result *res) {
  log_probe *p = ud;
  assert_int_equal(res->rc, 0);
  p->reading = 0;
  p->left = (int64_t)res->events.len;
}

/* Reads the log again each time the last read has answered. */
static int log_empty(void *ud) {
  log_probe *p = ud;
  if (p->left == 0) return 1;
  if (!p->reading) {
    p->reading = 1;
    assert_int_equal(
        sb_store_events_read(p->st, "t", 0, NULL, 1, 0, on_probe, p), 0);
  }
  return 0;
}

/* A log older than the retention when the server starts is trimmed soon
 * after, not a trim interval (a minute) later, and more than one batch
 * (10,000) of it goes in batches back to back, not one a minute. */
static void test_trims_a_backlog_soon_after_start(void **state) {
  fixture *f = *state;
  enum { PER_WRITE = 5000, WRITES = 5 };
  sb_store_event *evs = calloc(PER_WRITE, sizeof *evs);
  for (int i = 0; i < PER_WRITE; i++)
    evs[i] = (sb_store_event){.type = "lead.old", .data = "{}"};
  sb_store_extras x = {.events = evs, .nevents = PER_WRITE};
  int written = 0;
  int64_t long_ago = NOW - 8LL * 24 * 3600 * 1000; /* past a week */
  for (int i = 0; i < WRITES; i++)
    assert_int_equal(
        sb_store_write(f->s.st, "t", &x, long_ago, on_written, &written), 0);
  acked a = {0};
  publish(f, "u", "lead.new", NULL, &a); /* a recent one, kept */
  while (written < WRITES || !a.n) uv_run(&f->s.loop, UV_RUN_ONCE);
  free(evs);
  log_probe p = {.st = f->s.st, .left = -1};
  assert_true(run_until(&f->s.loop, log_empty, &p, DEADLINE_MS));
  p = (log_probe){.st = f->s.st, .left = -1};
  sb_store_events_read(f->s.st, "u", 0, NULL, 10, 0, on_probe, &p);
  while (p.left < 0) uv_run(&f->s.loop, UV_RUN_ONCE);
  assert_int_equal(p.left, 1);
}

int main(void) {
  sb_core_init(); /* jansson allocates with sb_malloc, as in switchboard */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_backlog_then_live_in_order, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_gap_from_another_process, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_filters_and_unsubscribe_inside,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_pause_and_resume, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_paused_subscription_costs_no_reads,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_trims_a_backlog_soon_after_start,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_publish_names_a_run, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
