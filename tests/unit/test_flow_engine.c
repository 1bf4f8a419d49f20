/* Unit tests for the workflow engine (src/flow/engine.c, plan.c) on a real
 * store, context manager and event bus, without agents: a loop of steps
 * that call no one (emit, branch) must not hold the event loop.
 *
 * Never timed: the loop is turned one turn at a time (UV_RUN_ONCE) and
 * the engine's count of steps executed is read after each turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* after the headers it needs */
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctx/ctx.h"
#include "events/events.h"
#include "flow/flow.h"
#include "gateway/gateway.h"
#include "store/store.h"
#include "test_json.h"
#include "test_loop.h"

#define TENANT "t1"

typedef struct env {
  uv_loop_t loop;
  char dir[64], path[128];
  sb_store *st;
  sb_ctx_manager *ctx;
  sb_events *bus;
  sb_gateway *gw;
  sb_flow_def *def;
  sb_flow_defs defs;
  sb_flow_engine *eng;
  sb_events_sub *sub;
  /* what the bus delivered */
  int64_t ticks, last_seq, ended, steps_done;
  int seq_ok;
  char end_type[64];
  /* agent calls the engine asked room for (hold_call); refused while
   * refuse_calls */
  int calls, refuse_calls, calls_seen;
  /* on the bus's go.now: cancel this run */
  char cancel_on_go[64];
  int cancel_rc, cancel_done;
} env;

/* tick (emit) -> loop (branch back to tick) ... until max_steps fails
 * the run. */
static json_t *loop_def(int max_steps) {
  char text[1024];
  snprintf(text, sizeof text,
           "{\"name\":\"spin\",\"max_steps\":%d,\"steps\":["
           "{\"id\":\"tick\",\"emit\":{\"type\":\"spin.tick\"}},"
           "{\"id\":\"loop\",\"branch\":["
           "{\"if\":{\"path\":\"workflow.variables.stop\",\"exists\":true},"
           "\"goto\":\"done\"},{\"else\":\"tick\"}]},"
           "{\"id\":\"done\",\"end\":\"completed\"}]}",
           max_steps);
  json_t *src = json_loads(text, 0, NULL);
  assert_non_null(src);
  return src;
}

/* n emit steps one after the other, then the end of the steps. */
static json_t *line_def(int n) {
  json_t *steps = json_array();
  for (int i = 0; i < n; i++) {
    char id[16];
    snprintf(id, sizeof id, "s%d", i);
    json_array_append_new(
        steps, json_pack("{sss{ss}}", "id", id, "emit", "type", "spin.tick"));
  }
  return json_pack("{sssiso}", "name", "spin", "max_steps", 100000, "steps",
                   steps);
}

static void on_cancelled(void *ud, const sb_flow_reply *r) {
  env *v = ud;
  v->cancel_done = 1;
  v->cancel_rc = r->rc;
}

static void on_event(void *ud, const sb_event *e) {
  env *v = ud;
  if (strcmp(e->type, "go.now") == 0 && v->cancel_on_go[0]) {
    sb_error err = {0};
    assert_int_equal(sb_flow_run_cancel(v->eng, TENANT, v->cancel_on_go,
                                        "at once", on_cancelled, v, &err),
                     0);
  }
  if (e->seq <= v->last_seq) v->seq_ok = 0;
  v->last_seq = e->seq;
  if (strcmp(e->type, "spin.tick") == 0) v->ticks++;
  if (strcmp(e->type, "step.completed") == 0) v->steps_done++;
  if (strncmp(e->type, "run.", 4) == 0 &&
      (strcmp(e->type, "run.completed") == 0 ||
       strcmp(e->type, "run.failed") == 0 ||
       strcmp(e->type, "run.cancelled") == 0)) {
    v->ended++;
    snprintf(v->end_type, sizeof v->end_type, "%s", e->type);
  }
}

static int hold_call(void *ud, const char *tenant, char *why, size_t cap) {
  (void)tenant;
  env *v = ud;
  v->calls++;
  if (v->refuse_calls) snprintf(why, cap, "no room (the test's)");
  return v->refuse_calls;
}

static void engine_up(env *v) {
  sb_error err = {0};
  sb_flow_engine_options fo = {.store = v->st,
                               .ctx = v->ctx,
                               .gateway = v->gw,
                               .events = v->bus,
                               .defs = &v->defs,
                               .hold_call = hold_call,
                               .quota_ud = v};
  v->eng = sb_flow_engine_new(&fo, &err);
  assert_non_null(v->eng);
}

static void env_up(env *v, json_t *src) {
  memset(v, 0, sizeof *v);
  v->seq_ok = 1;
  assert_int_equal(uv_loop_init(&v->loop), 0);
  /* The store lives in memory (/dev/shm) where there is one: this file
   * tests the engine, not durability (the store's own tests and the crash
   * tests do, on disk), and its thousands of commits would otherwise hold
   * the disk against the tests running beside it. */
  snprintf(v->dir, sizeof v->dir, "%s/sb-flow-engine-XXXXXX",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  assert_non_null(mkdtemp(v->dir));
  snprintf(v->path, sizeof v->path, "%s/sb.db", v->dir);
  sb_error err = {0};
  sb_store_options so = {.path = v->path, .loop = &v->loop};
  v->st = sb_store_open_sqlite(&so, &err);
  assert_non_null(v->st);
  sb_ctx_manager_options mo = {.store = v->st};
  v->ctx = sb_ctx_manager_new(&mo);
  assert_non_null(v->ctx);
  sb_events_options eo = {.store = v->st};
  v->bus = sb_events_new(&eo, &err);
  assert_non_null(v->bus);
  sb_gateway_options go = {.loop = &v->loop,
                           .default_tenant = TENANT,
                           .max_message_bytes = 1 << 20,
                           .ctx = v->ctx};
  v->gw = sb_gateway_new(&go, &err);
  assert_non_null(v->gw);
  int rc = sb_flow_def_from_json(src, NULL, "test", &v->def, &err);
  if (rc != 0) fail_msg("definition: %s", err.msg);
  json_decref(src);
  v->defs = (sb_flow_defs){.items = &v->def, .len = 1};
  engine_up(v);
  v->sub =
      sb_events_subscribe(v->bus, TENANT, 0, NULL, on_event, NULL, v, &err);
  assert_non_null(v->sub);
}

static void env_down(env *v) {
  sb_events_unsubscribe(v->sub);
  sb_flow_engine_free(v->eng);
  sb_gateway_free(v->gw);
  sb_events_free(v->bus);
  sb_ctx_manager_free(v->ctx);
  sb_store_close(v->st);
  sb_flow_def_free(v->def);
  assert_int_equal(loop_finish(&v->loop), 0);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", v->dir);
  assert_int_equal(system(cmd), 0);
}

typedef struct reply {
  int done, rc;
  json_t *run;
  char msg[sizeof(((sb_error *)0)->msg)];
} reply;

static void on_reply(void *ud, const sb_flow_reply *r) {
  reply *o = ud;
  o->done = 1;
  o->rc = r->rc;
  snprintf(o->msg, sizeof o->msg, "%s", r->rc ? r->err.msg : "");
  if (r->rc != 0) fprintf(stderr, "flow reply: %s\n", r->err.msg);
  o->run = json_incref(r->run);
}

/* Nothing of a transition is under way: not in the store's queue, and
 * not being made on the thread pool before it (the context manager). */
static int writes_idle(void *ud) {
  env *v = ud;
  sb_store_stats s;
  sb_store_get_stats(v->st, &s);
  return s.pending == 0 && sb_ctx_manager_pending(v->ctx) == 0;
}

static int ended(void *ud) { return ((env *)ud)->ended > 0; }

/* Turn the loop one turn at a time until the run ends: no turn executes
 * more than SB_FLOW_CHAIN_STEPS steps. Returns the turns taken. */
static uint64_t turns_until(env *v, int64_t runs) {
  sb_flow_stats s;
  sb_flow_engine_stats(v->eng, &s);
  uint64_t before = s.steps, turns = 0, most = 0;
  for (int guard = 0; v->ended < runs && guard < 1000000; guard++) {
    uv_run(&v->loop, UV_RUN_ONCE);
    turns++;
    sb_flow_engine_stats(v->eng, &s);
    if (s.steps - before > most) most = s.steps - before;
    before = s.steps;
  }
  assert_int_equal(v->ended, runs);
  if (most > SB_FLOW_CHAIN_STEPS)
    fail_msg("one turn of the loop executed %llu steps (bound %d)",
             (unsigned long long)most, SB_FLOW_CHAIN_STEPS);
  return turns;
}

static uint64_t turns_until_end(env *v) { return turns_until(v, 1); }

static json_t *get_run(env *v, const char *id) {
  reply o = {0};
  sb_error err = {0};
  assert_int_equal(sb_flow_run_get(v->eng, TENANT, id, on_reply, &o, &err), 0);
  assert_true(run_until(&v->loop, flag_set, &o.done, TEST_WAIT_MS));
  assert_int_equal(o.rc, 0);
  return o.run;
}

static json_t *start_run(env *v) {
  reply o = {0};
  sb_error err = {0};
  sb_flow_start s = {.tenant = TENANT, .workflow = "spin"};
  assert_int_equal(sb_flow_run_start(v->eng, &s, on_reply, &o, &err), 0);
  /* The start answers once its first transition is durable. */
  while (!o.done)
    uv_run(&v->loop, UV_RUN_ONCE);
  assert_int_equal(o.rc, 0);
  return o.run;
}

/* Start a run and keep only its id (id: at least 64 bytes). */
static void start_run_id(env *v, char *id) {
  json_t *run = start_run(v);
  snprintf(id, 64, "%s", json_string_value(json_object_get(run, "id")));
  json_decref(run);
}

/* start_run_id, then let its writes land (the run waits at a step). */
static void start_run_settled(env *v, char *id) {
  start_run_id(v, id);
  assert_true(run_until(&v->loop, writes_idle, v, TEST_WAIT_MS));
}

typedef struct ctx_read {
  int done;
  json_t *doc;
} ctx_read;

static void on_ctx(void *ud, const sb_ctx_result *res) {
  ctx_read *c = ud;
  c->done = 1;
  assert_int_equal(res->rc, 0);
  c->doc = json_incref(res->doc);
}

static size_t completed_steps(env *v, const char *context_id) {
  ctx_read c = {0};
  sb_error err = {0};
  assert_int_equal(
      sb_ctx_get_async(v->ctx, TENANT, context_id, 0, on_ctx, &c, &err), 0);
  assert_true(run_until(&v->loop, flag_set, &c.done, TEST_WAIT_MS));
  json_t *steps = json_object_get(
      json_object_get(json_object_get(c.doc, "data"), "workflow"),
      "completedSteps");
  size_t n = json_array_size(steps);
  json_decref(c.doc);
  return n;
}

static int64_t num(const json_t *o, const char *k) {
  return (int64_t)json_integer_value(json_object_get(o, k));
}

/* 100 000 steps of a loop: cut into transitions, never more than the
 * bound in one turn of the loop; the run's state and its context's
 * completedSteps stay bounded; every emit's event is written once. */
static void test_long_loop_yields(void **state) {
  (void)state;
  env v;
  env_up(&v, loop_def(100000));
  json_t *run = start_run(&v);
  assert_string_equal(json_string_value(json_object_get(run, "status")),
                      "running");
  assert_true(num(run, "stepsRun") <= SB_FLOW_CHAIN_STEPS);
  char id[64];
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(run, "id")));
  json_decref(run);
  uint64_t turns = turns_until_end(&v), parts = 100000 / SB_FLOW_CHAIN_STEPS;
  assert_true(turns >= parts);
  assert_string_equal(v.end_type, "run.failed"); /* its budget is spent */
  assert_int_equal(v.ticks, 50000);
  assert_true(v.seq_ok);
  sb_flow_stats s;
  sb_flow_engine_stats(v.eng, &s);
  assert_int_equal(s.steps, 100000);
  assert_true(s.transitions >= parts);
  run = get_run(&v, id);
  assert_string_equal(json_string_value(json_object_get(run, "status")),
                      "failed");
  assert_int_equal(num(run, "stepsRun"), 100000); /* the refused step is not counted */
  json_t *h = json_object_get(run, "history");
  assert_int_equal(json_array_size(h),
                   SB_FLOW_HISTORY_FIRST + SB_FLOW_HISTORY_LAST);
  assert_int_equal(num(run, "historyElided"),
                   100000 - SB_FLOW_HISTORY_FIRST - SB_FLOW_HISTORY_LAST);
  /* The first entries are the run's first steps, the last its last. */
  assert_int_equal(num(json_array_get(h, 0), "visit"), 1);
  assert_int_equal(num(json_array_get(h, json_array_size(h) - 1), "visit"),
                   50000);
  assert_null(json_object_get(run, "continueAt"));
  assert_int_equal(json_array_size(json_object_get(run, "current")), 0);
  assert_int_equal(
      completed_steps(&v, json_string_value(json_object_get(run, "contextId"))),
      SB_FLOW_HISTORY_FIRST + SB_FLOW_HISTORY_LAST);
  json_decref(run);
  env_down(&v);
}

/* A chain longer than the bound that ends: completed, in order, each
 * step once. */
static void test_long_line_completes(void **state) {
  (void)state;
  env v;
  env_up(&v, line_def(700));
  json_t *run = start_run(&v);
  char id[64];
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(run, "id")));
  /* Cut: it goes on at the step after the first part (256 steps, or
   * fewer on a machine slow enough to reach SB_FLOW_CHAIN_US first). */
  json_t *cur = json_object_get(run, "current");
  assert_int_equal(json_array_size(cur), 1);
  int64_t first = num(run, "stepsRun");
  assert_true(first >= SB_FLOW_CHAIN_CHECK && first <= SB_FLOW_CHAIN_STEPS);
  char want[16];
  snprintf(want, sizeof want, "s%lld", (long long)first);
  assert_string_equal(json_string_value(json_array_get(cur, 0)), want);
  json_decref(run);
  turns_until_end(&v);
  assert_string_equal(v.end_type, "run.completed");
  assert_int_equal(v.ticks, 700);
  run = get_run(&v, id);
  assert_string_equal(json_string_value(json_object_get(run, "status")),
                      "completed");
  assert_int_equal(num(run, "stepsRun"), 700);
  json_t *h = json_object_get(run, "history");
  assert_int_equal(json_array_size(h), 500);
  assert_int_equal(num(run, "historyElided"), 200);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(h, 99), "step")), "s99");
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(h, 100), "step")),
      "s300");
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(h, 499), "step")),
      "s699");
  json_decref(run);
  env_down(&v);
}

/* The engine stops in the middle of a long loop (as at a crash: what is
 * stored is the last transition written) and a new one brings the run
 * back: it goes on where the last part written ends, no event twice and
 * none lost. */
static void test_restart_mid_loop(void **state) {
  (void)state;
  env v;
  env_up(&v, loop_def(3000));
  char id[64];
  start_run_id(&v, id);
  for (int i = 0; i < 3; i++)
    uv_run(&v.loop, UV_RUN_ONCE);
  assert_int_equal(v.ended, 0);
  sb_flow_engine_free(v.eng);
  /* What was under way lands; nothing goes on. */
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  engine_up(&v);
  sb_error err = {0};
  assert_int_equal(sb_flow_engine_resume_all(v.eng, &err), 0);
  assert_true(run_until(&v.loop, ended, &v, 20000));
  assert_string_equal(v.end_type, "run.failed");
  assert_int_equal(v.ticks, 1500);
  assert_true(v.seq_ok);
  json_t *run = get_run(&v, id);
  assert_int_equal(num(run, "stepsRun"), 3000);
  assert_int_equal(
      num(run, "historyElided") +
          (int64_t)json_array_size(json_object_get(run, "history")),
      3000);
  json_decref(run);
  env_down(&v);
}

/* After a restart, before the runs in progress are read back: a cancel
 * of a running run is "retry shortly" (SB_EBUSY), not "only a running or
 * waiting run can be cancelled" said of a running run; once they are
 * back, the same cancel succeeds. */
static void test_cancel_before_runs_are_back(void **state) {
  (void)state;
  env v;
  env_up(&v, loop_def(3000));
  char id[64];
  start_run_id(&v, id);
  sb_flow_engine_free(v.eng);
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  engine_up(&v); /* resume_all not yet called: the restart's window */
  reply o = {0};
  sb_error err = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "early", on_reply, &o, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &o.done, TEST_WAIT_MS));
  assert_int_equal(o.rc, SB_EBUSY);
  assert_null(o.run);
  assert_int_equal(sb_flow_engine_resume_all(v.eng, &err), 0);
  /* "retry shortly" until the store's list of runs in progress is read;
   * then the cancel is queued behind the run's read of its context */
  reply again = {0};
  for (int tries = 0; tries < 1000; tries++) {
    again = (reply){0};
    assert_int_equal(
        sb_flow_run_cancel(v.eng, TENANT, id, "now", on_reply, &again, &err),
        0);
    assert_true(run_until(&v.loop, flag_set, &again.done, TEST_WAIT_MS));
    if (again.rc != SB_EBUSY) break;
  }
  assert_int_equal(again.rc, 0);
  assert_string_equal(json_string_value(json_object_get(again.run, "status")),
                      "cancelled");
  json_decref(again.run);
  assert_true(run_until(&v.loop, ended, &v, TEST_WAIT_MS));
  assert_string_equal(v.end_type, "run.cancelled");
  env_down(&v);
}

/* A cancel that comes while the change before it is written (a wait's
 * event arrived): the step that change starts never calls its agent; it
 * is where the run stopped, and a resume goes on there. */
static void test_cancel_behind_a_step_done(void **state) {
  (void)state;
  env v;
  env_up(&v, J("{'name': 'spin', 'steps': ["
               "{'id': 'w', 'wait': {'event': 'go.now'}},"
               "{'id': 'c', 'call': {'agent': 'desk', 'tool': 'book'}}]}"));
  json_t *run = start_run(&v);
  snprintf(v.cancel_on_go, sizeof v.cancel_on_go, "%s",
           json_string_value(json_object_get(run, "id")));
  json_decref(run);
  /* the wait's subscription has read the log: it hears go.now first (the
   * newest subscription), and its change is under way when ours cancels */
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  sb_error err = {0};
  assert_int_equal(sb_events_publish(v.bus, TENANT, "go.now", NULL, NULL, NULL,
                                     NULL, &err),
                   0);
  assert_true(run_until(&v.loop, flag_set, &v.cancel_done, TEST_WAIT_MS));
  assert_int_equal(v.cancel_rc, 0);
  assert_true(run_until(&v.loop, ended, &v, TEST_WAIT_MS));
  assert_string_equal(v.end_type, "run.cancelled");
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  assert_int_equal(v.calls, 0);
  run = get_run(&v, v.cancel_on_go);
  json_t *hist = json_object_get(run, "history");
  assert_int_equal(json_array_size(hist), 1); /* w completed */
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(hist, 0), "step")), "w");
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(run, "stopped"), 0)),
      "c");
  json_decref(run);
  env_down(&v);
}

/* The server stops while the store still has to answer a resume's and a
 * fork's read of a run, and an answer to a run not in memory: the engine
 * is freed first and the store answers inside sb_store_close. Each caller
 * is told the server is stopping; none of them looks at the engine gone
 * (ASan: a use after free, before). */
static void test_reads_answered_after_the_engine_went(void **state) {
  (void)state;
  env v;
  env_up(&v, J("{'name': 'spin', 'steps': ["
               "{'id': 'e', 'emit': {'type': 'spin.tick'}},"
               "{'id': 'w', 'wait': {'event': 'go.now'}}]}"));
  char id[64];
  start_run_id(&v, id);
  reply c = {0};
  sb_error err = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "done", on_reply, &c, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &c.done, TEST_WAIT_MS));
  assert_int_equal(c.rc, 0);
  json_decref(c.run);
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  reply r = {0}, f = {0}, a = {0};
  assert_int_equal(sb_flow_run_resume(v.eng, TENANT, id, on_reply, &r, &err),
                   0);
  assert_int_equal(
      sb_flow_run_fork(v.eng, TENANT, id, "e", on_reply, &f, &err), 0);
  json_t *answer = json_object();
  assert_int_equal(sb_flow_run_answer(v.eng, TENANT, id, "w", answer,
                                      on_reply, &a, &err),
                   0);
  json_decref(answer);
  env_down(&v); /* the engine goes first; sb_store_close answers */
  assert_true(r.done && f.done && a.done);
  assert_int_not_equal(r.rc, 0);
  assert_int_not_equal(f.rc, 0);
  assert_int_not_equal(a.rc, 0);
  assert_non_null(strstr(r.msg, "stopping"));
  assert_non_null(strstr(f.msg, "stopping"));
  json_decref(r.run);
  json_decref(f.run);
  json_decref(a.run);
}

/* A cancel that comes while a resume reads the run's context: the resume
 * (asked first) is written, then the cancel cancels the resumed run; not
 * a cancel planned on no context ("out of memory"). */
static void test_cancel_while_resuming(void **state) {
  (void)state;
  env v;
  env_up(&v, J("{'name': 'spin', 'steps': ["
               "{'id': 'w', 'wait': {'event': 'go.now'}}]}"));
  char id[64];
  start_run_id(&v, id);
  reply c1 = {0};
  sb_error err = {0};
  assert_int_equal(sb_flow_run_cancel(v.eng, TENANT, id, "first", on_reply,
                                      &c1, &err),
                   0);
  assert_true(run_until(&v.loop, flag_set, &c1.done, TEST_WAIT_MS));
  assert_int_equal(c1.rc, 0);
  json_decref(c1.run);
  sb_flow_stats st;
  do {
    uv_run(&v.loop, UV_RUN_ONCE);
    sb_flow_engine_stats(v.eng, &st);
  } while (st.runs != 0);
  reply res = {0}, c2 = {0};
  assert_int_equal(sb_flow_run_resume(v.eng, TENANT, id, on_reply, &res, &err),
                   0);
  /* the stored run is read: it is in memory, its context being read */
  for (int i = 0; i < 100000 && !res.done; i++) {
    uv_run(&v.loop, UV_RUN_ONCE);
    sb_flow_engine_stats(v.eng, &st);
    if (st.runs == 1) break;
  }
  assert_false(res.done);
  assert_int_equal(st.runs, 1);
  assert_int_equal(sb_flow_run_cancel(v.eng, TENANT, id, "second", on_reply,
                                      &c2, &err),
                   0);
  assert_true(run_until(&v.loop, flag_set, &c2.done, TEST_WAIT_MS));
  assert_true(res.done);
  assert_int_equal(res.rc, 0);
  assert_string_equal(json_string_value(json_object_get(res.run, "status")),
                      "waiting");
  assert_int_equal(c2.rc, 0);
  assert_string_equal(json_string_value(json_object_get(c2.run, "status")),
                      "cancelled");
  json_decref(res.run);
  json_decref(c2.run);
  env_down(&v);
}

/* Two resumes of a cancelled run asked at once both read the stored row
 * (cancelled); the second one's answer came after the first had the run
 * back in memory, and said "run X is cancelled: only a failed or
 * cancelled run can be resumed". It says the run is in progress now. */
static void test_two_resumes_at_once(void **state) {
  (void)state;
  env v;
  env_up(&v, J("{'name': 'spin', 'steps': ["
               "{'id': 'w', 'wait': {'event': 'go.now'}}]}"));
  char id[64];
  start_run_id(&v, id);
  reply c = {0};
  sb_error err = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "first", on_reply, &c, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &c.done, TEST_WAIT_MS));
  assert_int_equal(c.rc, 0);
  json_decref(c.run);
  sb_flow_stats st;
  do {
    uv_run(&v.loop, UV_RUN_ONCE);
    sb_flow_engine_stats(v.eng, &st);
  } while (st.runs != 0);
  reply r1 = {0}, r2 = {0};
  assert_int_equal(sb_flow_run_resume(v.eng, TENANT, id, on_reply, &r1, &err),
                   0);
  assert_int_equal(sb_flow_run_resume(v.eng, TENANT, id, on_reply, &r2, &err),
                   0);
  assert_true(run_until(&v.loop, flag_set, &r1.done, TEST_WAIT_MS));
  assert_true(run_until(&v.loop, flag_set, &r2.done, TEST_WAIT_MS));
  /* One of them resumed it (the reads may be answered in either order). */
  reply *won = r1.rc == 0 ? &r1 : &r2, *lost = r1.rc == 0 ? &r2 : &r1;
  assert_int_equal(won->rc, 0);
  assert_string_equal(json_string_value(json_object_get(won->run, "status")),
                      "waiting");
  assert_int_equal(lost->rc, SB_ESTATE);
  assert_non_null(strstr(lost->msg, "is still in progress"));
  assert_null(strstr(lost->msg, "is cancelled"));
  json_decref(r1.run);
  json_decref(r2.run);
  env_down(&v);
}

/* Cancelled between two parts of a loop: stopped where it would have
 * gone on; a resume goes on from there to the end of its budget. */
static void test_cancel_mid_loop_then_resume(void **state) {
  (void)state;
  env v;
  env_up(&v, loop_def(2000));
  char id[64];
  start_run_id(&v, id);
  reply o = {0};
  sb_error err = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "enough", on_reply, &o, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &o.done, TEST_WAIT_MS));
  assert_int_equal(o.rc, 0);
  assert_string_equal(json_string_value(json_object_get(o.run, "status")),
                      "cancelled");
  int64_t at = num(o.run, "stepsRun");
  assert_true(at < 2000);
  json_decref(o.run);
  json_t *run = get_run(&v, id);
  json_t *stopped = json_object_get(run, "stopped");
  assert_int_equal(json_array_size(stopped), 1);
  /* The next step of the loop: tick after an even count, loop after odd. */
  assert_string_equal(json_string_value(json_array_get(stopped, 0)),
                      at % 2 ? "loop" : "tick");
  assert_null(json_object_get(run, "continueAt"));
  json_decref(run);
  assert_true(run_until(&v.loop, ended, &v, TEST_WAIT_MS));
  assert_string_equal(v.end_type, "run.cancelled");
  v.ended = 0;
  reply r = {0};
  assert_int_equal(sb_flow_run_resume(v.eng, TENANT, id, on_reply, &r, &err),
                   0);
  assert_true(run_until(&v.loop, flag_set, &r.done, TEST_WAIT_MS));
  assert_int_equal(r.rc, 0);
  json_decref(r.run);
  turns_until_end(&v);
  assert_string_equal(v.end_type, "run.failed");
  assert_int_equal(v.ticks, 1000);
  run = get_run(&v, id);
  assert_int_equal(num(run, "stepsRun"), 2000);
  json_decref(run);
  env_down(&v);
}

/* SQL on the store's file through a connection of its own: what another
 * process writes there, or a fault (a trigger that refuses a write). */
static void store_sql(env *v, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(v->path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s: %s", sql, msg ? msg : "?");
  sqlite3_close(db);
}

static json_t *two_waits(void) {
  return J("{'name': 'spin', 'steps': ["
           "{'id': 'w', 'wait': {'event': 'go.now'}},"
           "{'id': 'w2', 'wait': {'event': 'go.later'}}]}");
}

static int steps_done(void *ud) { return ((env *)ud)->steps_done > 0; }

static void publish(env *v, const char *type) {
  sb_error err = {0};
  assert_int_equal(
      sb_events_publish(v->bus, TENANT, type, NULL, NULL, NULL, NULL, &err), 0);
}

static const char *current0(const json_t *run) {
  return json_string_value(json_array_get(json_object_get(run, "current"), 0));
}

/* A cancellation the store refuses (an error other than "busy") is
 * answered as not written, and the run goes on as it was: its step hears
 * the event it waits for (once ignored: the run neither cancelled nor
 * going on until a restart); a later cancel ends it. */
static void test_cancel_not_written_goes_on(void **state) {
  (void)state;
  env v;
  env_up(&v, two_waits());
  char id[64];
  start_run_settled(&v, id);
  store_sql(&v, "CREATE TRIGGER no_cancel BEFORE UPDATE ON runs WHEN "
                "NEW.status = 'cancelled' BEGIN SELECT RAISE(ABORT, 'the "
                "disk is on fire'); END");
  reply o = {0};
  sb_error err = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "stop", on_reply, &o, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &o.done, TEST_WAIT_MS));
  assert_int_equal(o.rc, SB_EIO);
  assert_null(o.run);
  assert_non_null(strstr(o.msg, "the cancellation could not be written"));
  assert_non_null(strstr(o.msg, "the disk is on fire"));
  assert_non_null(strstr(o.msg, "cancel it again"));
  publish(&v, "go.now");
  assert_true(run_until(&v.loop, steps_done, &v, TEST_WAIT_MS));
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  json_t *run = get_run(&v, id);
  assert_string_equal(json_string_value(json_object_get(run, "status")),
                      "waiting");
  assert_string_equal(current0(run), "w2");
  json_decref(run);
  store_sql(&v, "DROP TRIGGER no_cancel");
  reply again = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "now", on_reply, &again, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &again.done, TEST_WAIT_MS));
  assert_int_equal(again.rc, 0);
  assert_string_equal(json_string_value(json_object_get(again.run, "status")),
                      "cancelled");
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(again.run, "stopped"), 0)),
      "w2");
  json_decref(again.run);
  env_down(&v);
}

static int calls_moved(void *ud) {
  env *v = ud;
  return v->calls > v->calls_seen;
}

/* A step waiting for room (its call refused, asking again on a timer) is
 * stopped by a cancellation at once, while the cancellation is written:
 * its timer, kept so that a cancellation not written lets it go on, must
 * not start the call when it fires. It used to, for the run being
 * cancelled, and nothing held that call: the step's memory went with the
 * cancellation and the call's end came to it freed. The store's write
 * lock, held by a connection of the test's own, keeps the cancellation
 * unwritten for longer than the longest wait for room. */
static void test_cancel_while_waiting_for_room(void **state) {
  (void)state;
  env v;
  env_up(&v, J("{'name': 'spin', 'steps': ["
               "{'id': 'c', 'call': {'agent': 'nobody', 'tool': 't'}}]}"));
  v.refuse_calls = 1;
  char id[64];
  start_run_id(&v, id);
  v.calls_seen = 1; /* refused, and asking again */
  assert_true(run_until(&v.loop, calls_moved, &v, TEST_WAIT_MS));
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(v.path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                   SQLITE_OK);
  reply o = {0};
  sb_error err = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "stop", on_reply, &o, &err), 0);
  v.refuse_calls = 0; /* room now: a try would go ahead */
  v.calls_seen = v.calls;
  /* Past the longest wait between asks (500 ms, spread by up to half). */
  assert_false(run_until(&v.loop, calls_moved, &v, 1200));
  assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  assert_true(run_until(&v.loop, flag_set, &o.done, TEST_WAIT_MS));
  assert_int_equal(o.rc, 0);
  assert_string_equal(json_string_value(json_object_get(o.run, "status")),
                      "cancelled");
  json_decref(o.run);
  assert_int_equal(v.calls, v.calls_seen);
  env_down(&v);
}

/* The run's row moves under it (another process wrote it): the step's
 * end, once dropped with a conflict (the run then waited for ever in
 * memory), is planned again on the stored run and written. */
static void test_row_moved_goes_on(void **state) {
  (void)state;
  env v;
  env_up(&v, two_waits());
  char id[64], sql[256];
  start_run_settled(&v, id);
  snprintf(sql, sizeof sql, "UPDATE runs SET rev = rev + 1 WHERE id = '%s'",
           id);
  store_sql(&v, sql);
  publish(&v, "go.now");
  assert_true(run_until(&v.loop, steps_done, &v, TEST_WAIT_MS));
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  sb_flow_stats st;
  sb_flow_engine_stats(v.eng, &st);
  assert_true(st.conflicts >= 1);
  json_t *run = get_run(&v, id);
  assert_string_equal(json_string_value(json_object_get(run, "status")),
                      "waiting");
  assert_string_equal(current0(run), "w2");
  json_t *hist = json_object_get(run, "history");
  assert_int_equal(json_array_size(hist), 1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(hist, 0), "step")), "w");
  json_decref(run);
  /* and it goes on from there */
  publish(&v, "go.later");
  assert_true(run_until(&v.loop, ended, &v, TEST_WAIT_MS));
  assert_string_equal(v.end_type, "run.completed");
  env_down(&v);
}

static int many_conflicts(void *ud) {
  sb_flow_stats st;
  sb_flow_engine_stats(((env *)ud)->eng, &st);
  return st.conflicts >= 10; /* past the 8 tried at once */
}

/* Conflicts that keep coming (every update of the row refused as moved):
 * the change is planned again, pausing between tries once past the first
 * few, and never dropped (it once was after 8): once the row can be
 * written again, the step's end is. */
static void test_conflicts_in_a_row_never_drop(void **state) {
  (void)state;
  env v;
  env_up(&v, two_waits());
  char id[64];
  start_run_settled(&v, id);
  store_sql(&v, "CREATE TRIGGER hold BEFORE UPDATE ON runs BEGIN "
                "SELECT RAISE(IGNORE); END");
  publish(&v, "go.now");
  assert_true(run_until(&v.loop, many_conflicts, &v, 20000));
  assert_int_equal(v.steps_done, 0);
  store_sql(&v, "DROP TRIGGER hold");
  assert_true(run_until(&v.loop, steps_done, &v, 20000));
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  json_t *run = get_run(&v, id);
  assert_string_equal(current0(run), "w2");
  json_decref(run);
  env_down(&v);
}

static int two_write_failures(void *ud) {
  sb_flow_stats st;
  sb_flow_engine_stats(((env *)ud)->eng, &st);
  return st.write_failures >= 2;
}

/* A fault that fails every write of the run's row (the transaction with
 * it: context version, events) while the table `fire` has a row: a full
 * disk, a database locked by another process past the busy timeout. */
static void set_fire(env *v) {
  store_sql(v, "CREATE TABLE fire(x); INSERT INTO fire VALUES (1);"
               "CREATE TRIGGER burn BEFORE UPDATE ON runs WHEN EXISTS "
               "(SELECT 1 FROM fire) BEGIN SELECT RAISE(ABORT, 'the disk "
               "is on fire'); END");
}

/* A step's end whose write the store fails (not busy: an I/O error) is
 * kept and written again after a pause, for as long as the store fails
 * it; once dropped, the run waited until a restart. When the store takes
 * it, the run goes on from there. */
static void test_step_end_not_written_is_written_later(void **state) {
  (void)state;
  env v;
  env_up(&v, two_waits());
  char id[64];
  start_run_settled(&v, id);
  set_fire(&v);
  publish(&v, "go.now");
  assert_true(run_until(&v.loop, two_write_failures, &v, 20000));
  assert_int_equal(v.steps_done, 0);
  json_t *run = get_run(&v, id);
  assert_string_equal(current0(run), "w"); /* as stored */
  json_decref(run);
  store_sql(&v, "DELETE FROM fire");
  assert_true(run_until(&v.loop, steps_done, &v, 20000));
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  run = get_run(&v, id);
  assert_string_equal(current0(run), "w2");
  json_decref(run);
  publish(&v, "go.later");
  assert_true(run_until(&v.loop, ended, &v, TEST_WAIT_MS));
  assert_string_equal(v.end_type, "run.completed");
  env_down(&v);
}

/* A run that asks a question (q), then waits for go.later (w2). */
static json_t *ask_then_wait(void) {
  return J("{'name': 'spin', 'steps': ["
           "{'id': 'q', 'ask': {'message': 'ok?'}},"
           "{'id': 'w2', 'wait': {'event': 'go.later'}}]}");
}

/* Answer the run's open question; o holds the reply within ms. */
static void answer_run(env *v, const char *id, json_t *answer, reply *o) {
  sb_error err = {0};
  assert_int_equal(
      sb_flow_run_answer(v->eng, TENANT, id, NULL, answer, on_reply, o, &err),
      0);
  assert_true(run_until(&v->loop, flag_set, &o->done, TEST_WAIT_MS));
}

/* The answer is taken: the run goes on to w2. */
static void answer_taken(env *v, const char *id, json_t *answer) {
  reply again = {0};
  answer_run(v, id, answer, &again);
  assert_int_equal(again.rc, 0);
  assert_string_equal(current0(again.run), "w2");
  json_decref(again.run);
}

/* An answer whose write the store fails is answered so ("answer it
 * again"), and the question stays open: once it was closed in memory and
 * open in the store, and no answer was taken until a restart. */
static void test_answer_not_written_stays_open(void **state) {
  (void)state;
  env v;
  env_up(&v, ask_then_wait());
  char id[64];
  start_run_settled(&v, id);
  set_fire(&v);
  json_t *answer = J("{'ok': true}");
  reply o = {0};
  answer_run(&v, id, answer, &o);
  assert_int_equal(o.rc, SB_EIO);
  assert_null(o.run);
  assert_non_null(strstr(o.msg, "the answer could not be written"));
  assert_non_null(strstr(o.msg, "the disk is on fire"));
  assert_non_null(strstr(o.msg, "answer it again"));
  store_sql(&v, "DELETE FROM fire");
  answer_taken(&v, id, answer);
  json_decref(answer);
  env_down(&v);
}

/* An answer written while another process holds the store's write lock
 * past the busy timeout is answered busy, the question still open (it was
 * written again every 10 ms for as long as the lock was held, and its
 * caller waited without an answer); once the lock is let go, it is
 * taken. */
static void test_answer_under_a_held_lock_is_busy(void **state) {
  (void)state;
  env v;
  env_up(&v, ask_then_wait());
  char id[64];
  start_run_settled(&v, id);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(v.path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE; CREATE TABLE held(a);",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  json_t *answer = J("{'ok': true}");
  reply o = {0};
  answer_run(&v, id, answer, &o);
  assert_int_equal(o.rc, SB_EBUSY);
  assert_non_null(strstr(o.msg, "database is locked"));
  assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  answer_taken(&v, id, answer);
  json_decref(answer);
  env_down(&v);
}

static int no_runs(void *ud) {
  sb_flow_stats st;
  sb_flow_engine_stats(((env *)ud)->eng, &st);
  return st.runs == 0;
}

/* Another process ended the run: the run takes the stored end (its steps
 * stop, it leaves memory) instead of writing over it or waiting for ever. */
static void test_row_ended_elsewhere(void **state) {
  (void)state;
  env v;
  env_up(&v, two_waits());
  char id[64], sql[512];
  start_run_settled(&v, id);
  snprintf(sql, sizeof sql,
           "UPDATE runs SET rev = rev + 1, status = 'cancelled', doc = "
           "json_set(doc, '$.status', 'cancelled', '$.active', json('[]')) "
           "WHERE id = '%s'",
           id);
  store_sql(&v, sql);
  publish(&v, "go.now");
  assert_true(run_until(&v.loop, no_runs, &v, TEST_WAIT_MS));
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  assert_int_equal(v.steps_done, 0); /* nothing written over the end */
  json_t *run = get_run(&v, id);
  assert_string_equal(json_string_value(json_object_get(run, "status")),
                      "cancelled");
  json_decref(run);
  reply o = {0};
  sb_error err = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "again", on_reply, &o, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &o.done, TEST_WAIT_MS));
  assert_int_equal(o.rc, SB_ESTATE);
  env_down(&v);
}

/* The engine stops with a run waiting; a new one starts (as after a
 * restart) and brings it back. */
static void restart_engine(env *v) {
  sb_flow_engine_free(v->eng);
  assert_true(run_until(&v->loop, writes_idle, v, TEST_WAIT_MS));
  engine_up(v);
  sb_error err = {0};
  assert_int_equal(sb_flow_engine_resume_all(v->eng, &err), 0);
}

/* A run follows the definition it started with, stored with it: a
 * workflow since removed from the config still goes on after a restart. */
static void test_restart_without_the_workflow(void **state) {
  (void)state;
  env v;
  env_up(&v, two_waits());
  char id[64];
  start_run_settled(&v, id);
  v.defs.len = 0; /* the config lists no workflow any more */
  restart_engine(&v);
  sb_flow_stats st;
  do {
    uv_run(&v.loop, UV_RUN_ONCE);
    sb_flow_engine_stats(v.eng, &st);
  } while (st.runs == 0);
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  publish(&v, "go.now");
  assert_true(run_until(&v.loop, steps_done, &v, TEST_WAIT_MS));
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  json_t *run = get_run(&v, id);
  assert_string_equal(current0(run), "w2");
  assert_null(json_object_get(run, "blocked"));
  json_decref(run);
  env_down(&v);
}

/* A stored run whose definition no longer loads (a check made stricter
 * since it started): once "retry shortly" (503) for ever. Now it reads as
 * blocked, saying why; an answer or a resume is refused naming it (409);
 * a cancel ends it; a resume after that is refused naming it too. */
static void test_blocked_definition(void **state) {
  (void)state;
  env v;
  env_up(&v, J("{'name': 'spin', 'steps': ["
               "{'id': 'e', 'emit': {'type': 'spin.tick'}},"
               "{'id': 'w', 'ask': {'message': 'ok?'}},"
               "{'id': 'w2', 'wait': {'event': 'go.later'}}]}"));
  char id[64], sql[512];
  start_run_settled(&v, id);
  snprintf(sql, sizeof sql,
           "UPDATE runs SET def = '{\"name\":\"spin\",\"steps\":[{\"id\":"
           "\"e\",\"emit\":{\"type\":\"spin.tick\"}},{\"id\":"
           "\"w\",\"ask\":{\"message\":\"ok?\"},\"bogus\":1}]}' WHERE "
           "id = '%s'",
           id);
  store_sql(&v, sql);
  restart_engine(&v);
  json_t *run = NULL;
  for (int i = 0; i < 1000; i++) {
    run = get_run(&v, id);
    if (json_object_get(run, "blocked")) break;
    json_decref(run);
    run = NULL;
  }
  assert_non_null(run);
  assert_string_equal(json_string_value(json_object_get(run, "status")),
                      "waiting");
  json_t *blocked = json_object_get(run, "blocked");
  assert_string_equal(json_string_value(json_object_get(blocked, "reason")),
                      "definition");
  const char *why = json_string_value(json_object_get(blocked, "message"));
  assert_non_null(strstr(why, "its definition no longer loads"));
  assert_non_null(strstr(why, "bogus"));
  json_decref(run);
  /* listed so too */
  reply l = {0};
  sb_error err = {0};
  assert_int_equal(
      sb_flow_run_list(v.eng, TENANT, NULL, NULL, 10, on_reply, &l, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &l.done, TEST_WAIT_MS));
  assert_non_null(json_object_get(
      json_array_get(json_object_get(l.run, "runs"), 0), "blocked"));
  json_decref(l.run);
  /* answered: refused at once, naming why (not "retry shortly") */
  json_t *answer = json_object();
  assert_int_equal(sb_flow_run_answer(v.eng, TENANT, id, NULL, answer,
                                      on_reply, NULL, &err),
                   SB_ESTATE);
  json_decref(answer);
  assert_non_null(strstr(err.msg, "cannot go on"));
  assert_non_null(strstr(err.msg, "bogus"));
  reply r = {0};
  assert_int_equal(sb_flow_run_resume(v.eng, TENANT, id, on_reply, &r, &err),
                   0);
  assert_true(run_until(&v.loop, flag_set, &r.done, TEST_WAIT_MS));
  assert_int_equal(r.rc, SB_ESTATE);
  assert_non_null(strstr(r.msg, "cannot go on"));
  /* a fork follows the same definition: refused, naming why (was 400) */
  reply f = {0};
  assert_int_equal(
      sb_flow_run_fork(v.eng, TENANT, id, "e", on_reply, &f, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &f.done, TEST_WAIT_MS));
  assert_int_equal(f.rc, SB_ESTATE);
  assert_non_null(strstr(f.msg, "cannot be forked: its definition no longer "
                                "loads"));
  /* cancelled: ended, stopped where it was, saying why */
  reply c = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "obsolete", on_reply, &c, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &c.done, TEST_WAIT_MS));
  assert_int_equal(c.rc, 0);
  assert_string_equal(json_string_value(json_object_get(c.run, "status")),
                      "cancelled");
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(c.run, "stopped"), 0)),
      "w");
  json_t *e = json_object_get(c.run, "error");
  assert_string_equal(json_string_value(json_object_get(e, "code")), "blocked");
  assert_non_null(strstr(json_string_value(json_object_get(e, "message")),
                         "cancelled: obsolete"));
  json_decref(c.run);
  assert_true(run_until(&v.loop, ended, &v, TEST_WAIT_MS));
  assert_string_equal(v.end_type, "run.cancelled");
  run = get_run(&v, id);
  assert_string_equal(json_string_value(json_object_get(run, "status")),
                      "cancelled");
  assert_null(json_object_get(run, "blocked"));
  json_decref(run);
  /* a resume of it: refused, naming why */
  reply r2 = {0};
  assert_int_equal(sb_flow_run_resume(v.eng, TENANT, id, on_reply, &r2, &err),
                   0);
  assert_true(run_until(&v.loop, flag_set, &r2.done, TEST_WAIT_MS));
  assert_int_equal(r2.rc, SB_ESTATE);
  assert_non_null(strstr(r2.msg, "cannot be resumed: its definition no longer "
                                 "loads"));
  /* a second cancel: it has ended */
  reply c2 = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "again", on_reply, &c2, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &c2.done, TEST_WAIT_MS));
  assert_int_equal(c2.rc, SB_ESTATE);
  env_down(&v);
}

/* A run whose context cannot be read back at start (gone from the store):
 * blocked, saying so; a cancel ends it. */
static void test_blocked_context(void **state) {
  (void)state;
  env v;
  env_up(&v, two_waits());
  json_t *started = start_run(&v);
  char id[64], sql[512];
  snprintf(id, sizeof id, "%s",
           json_string_value(json_object_get(started, "id")));
  assert_true(run_until(&v.loop, writes_idle, &v, TEST_WAIT_MS));
  snprintf(sql, sizeof sql,
           "DELETE FROM context_versions WHERE context_id = '%s'; DELETE FROM "
           "contexts WHERE id = '%s'",
           json_string_value(json_object_get(started, "contextId")),
           json_string_value(json_object_get(started, "contextId")));
  json_decref(started);
  store_sql(&v, sql);
  restart_engine(&v);
  json_t *run = NULL;
  for (int i = 0; i < 1000; i++) {
    run = get_run(&v, id);
    if (json_object_get(run, "blocked")) break;
    json_decref(run);
    run = NULL;
  }
  assert_non_null(run);
  json_t *blocked = json_object_get(run, "blocked");
  assert_string_equal(json_string_value(json_object_get(blocked, "reason")),
                      "context");
  assert_non_null(strstr(json_string_value(json_object_get(blocked, "message")),
                         "cannot be read"));
  json_decref(run);
  reply c = {0};
  sb_error err = {0};
  assert_int_equal(
      sb_flow_run_cancel(v.eng, TENANT, id, "gone", on_reply, &c, &err), 0);
  assert_true(run_until(&v.loop, flag_set, &c.done, TEST_WAIT_MS));
  assert_int_equal(c.rc, 0);
  assert_string_equal(json_string_value(json_object_get(c.run, "status")),
                      "cancelled");
  json_decref(c.run);
  env_down(&v);
}

/* Several runs looping at once: still one part per turn of the loop for
 * them all (their writes land together, they go on in turn). */
static void test_many_loops_share_turns(void **state) {
  (void)state;
  env v;
  env_up(&v, loop_def(2000));
  for (int i = 0; i < 8; i++) {
    reply o = {0};
    sb_error err = {0};
    sb_flow_start s = {.tenant = TENANT, .workflow = "spin"};
    assert_int_equal(sb_flow_run_start(v.eng, &s, on_reply, &o, &err), 0);
    while (!o.done)
      uv_run(&v.loop, UV_RUN_ONCE);
    assert_int_equal(o.rc, 0);
    json_decref(o.run);
  }
  turns_until(&v, 8);
  assert_int_equal(v.ticks, 8 * 1000);
  assert_true(v.seq_ok);
  env_down(&v);
}

static int store_pending(void *ud) {
  sb_store_stats s;
  sb_store_get_stats(((env *)ud)->st, &s);
  return s.pending > 0;
}

static int two_writes_held(void *ud) {
  env *v = ud;
  sb_flow_stats f;
  sb_flow_engine_stats(v->eng, &f);
  return sb_store_hold_writes(v->st, -1) == 2 && f.waiting_turn == 2;
}

static int all_done(void *ud) {
  reply *o = ud;
  return o[0].done && o[1].done && o[2].done;
}

/* Three runs of "spin" started one after another on a new context, each
 * of which has written it once (so the first's copy of it is two versions
 * old), the engine's writes settled: made holds the context as created,
 * ids the runs. */
static void three_runs_on_one_context(env *v, ctx_read *made, char ids[3][64]) {
  sb_error err = {0};
  json_t *empty = json_object();
  assert_int_equal(
      sb_ctx_create_async(v->ctx, TENANT, empty, on_ctx, made, &err), 0);
  json_decref(empty);
  assert_true(run_until(&v->loop, flag_set, &made->done, TEST_WAIT_MS));
  const char *cid = json_string_value(json_object_get(made->doc, "id"));
  for (int i = 0; i < 3; i++) {
    reply o = {0};
    sb_flow_start s = {.tenant = TENANT, .workflow = "spin", .context_id = cid};
    assert_int_equal(sb_flow_run_start(v->eng, &s, on_reply, &o, &err), 0);
    assert_true(run_until(&v->loop, flag_set, &o.done, TEST_WAIT_MS));
    assert_int_equal(o.rc, 0);
    snprintf(ids[i], 64, "%s", json_string_value(json_object_get(o.run, "id")));
    json_decref(o.run);
  }
  assert_true(run_until(&v->loop, writes_idle, v, TEST_WAIT_MS));
}

/* Three runs on one context, each having written it once: the first's
 * copy is two versions old. Going on, it plans on the newest head this
 * process knows, so none of them meets a conflict. */
static void test_runs_on_one_context_plan_on_its_newest_head(void **state) {
  (void)state;
  env v;
  env_up(&v, ask_then_wait());
  ctx_read made = {0};
  sb_error err = {0};
  char ids[3][64];
  three_runs_on_one_context(&v, &made, ids);
  sb_flow_stats before;
  sb_flow_engine_stats(v.eng, &before);
  reply answered[3] = {{0}};
  json_t *yes = J("{'ok': true}");
  for (int i = 0; i < 3; i++) {
    assert_int_equal(sb_flow_run_answer(v.eng, TENANT, ids[i], NULL, yes,
                                        on_reply, &answered[i], &err),
                     0);
    assert_true(run_until(&v.loop, flag_set, &answered[i].done, TEST_WAIT_MS));
    assert_int_equal(answered[i].rc, 0);
    assert_string_equal(current0(answered[i].run), "w2");
    json_decref(answered[i].run);
  }
  json_decref(yes);
  sb_flow_stats after;
  sb_flow_engine_stats(v.eng, &after);
  assert_int_equal(after.conflicts - before.conflicts, 0);
  assert_true(after.transitions - before.transitions >= 3);
  json_decref(made.doc);
  env_down(&v);
}

/* Three runs of this engine wait their turn to write one context when a
 * writer outside the engine moves it: the run whose write meets the
 * conflict reads the head again and hands it on, so the runs after it
 * write on the new head. One outside write costs one conflict; once each
 * run waiting wrote against its old copy and conflicted in turn, and
 * with a writer that kept writing every run on the context stalled. */
static void test_an_outside_write_costs_one_conflict(void **state) {
  (void)state;
  env v;
  env_up(&v, ask_then_wait());
  ctx_read made = {0};
  sb_error err = {0};
  char ids[3][64];
  three_runs_on_one_context(&v, &made, ids);
  const char *cid = json_string_value(json_object_get(made.doc, "id"));
  ctx_read head = {0};
  assert_int_equal(sb_ctx_get_async(v.ctx, TENANT, cid, 0, on_ctx, &head, &err),
                   0);
  assert_true(run_until(&v.loop, flag_set, &head.done, TEST_WAIT_MS));
  sb_flow_stats before;
  sb_flow_engine_stats(v.eng, &before);
  /* The outside write goes first in the held batch, the runs' after it. */
  sb_store_hold_writes(v.st, 1);
  ctx_read outside = {0};
  json_t *patch = J("{'data': {'workflow': {'variables': {'by': 'hand'}}}}");
  assert_int_equal(
      sb_ctx_update_async(v.ctx, TENANT, cid, num(head.doc, "version"),
                          SB_CTX_MERGE_PATCH, patch, on_ctx, &outside, &err),
      0);
  json_decref(patch);
  assert_true(run_until(&v.loop, store_pending, &v, TEST_WAIT_MS));
  reply answered[3] = {{0}};
  json_t *yes = J("{'ok': true}");
  for (int i = 0; i < 3; i++)
    assert_int_equal(sb_flow_run_answer(v.eng, TENANT, ids[i], NULL, yes,
                                        on_reply, &answered[i], &err),
                     0);
  json_decref(yes);
  /* Released once the turn holder's write is in the batch behind the
   * outside one, and the two other runs wait their turn (the answers read
   * their runs off the loop first; a run that comes to the context after
   * the conflict, with no turn to be handed, writes on its own copy). */
  assert_true(run_until(&v.loop, two_writes_held, &v, TEST_WAIT_MS));
  sb_store_hold_writes(v.st, 0);
  assert_true(run_until(&v.loop, all_done, answered, TEST_WAIT_MS));
  assert_true(run_until(&v.loop, flag_set, &outside.done, TEST_WAIT_MS));
  sb_flow_stats after;
  sb_flow_engine_stats(v.eng, &after);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(answered[i].rc, 0);
    assert_string_equal(current0(answered[i].run), "w2");
    json_decref(answered[i].run);
  }
  /* One: the run whose write was in the batch behind the outside one.
   * Before the turn was kept, each run waiting wrote against its old copy
   * (3); before a run planned on the newest head it knew, the first run
   * to go on also met the conflict its own copy made (it had last seen
   * the context before the two other runs wrote it: 2). */
  assert_int_equal(after.conflicts - before.conflicts, 1);
  json_decref(head.doc);
  json_decref(outside.doc);
  json_decref(made.doc);
  env_down(&v);
}

int main(void) {
  sb_core_init(); /* before any JSON: its allocator */
  sb_log_set_level(SB_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_long_loop_yields),
      cmocka_unit_test(test_long_line_completes),
      cmocka_unit_test(test_restart_mid_loop),
      cmocka_unit_test(test_cancel_before_runs_are_back),
      cmocka_unit_test(test_cancel_behind_a_step_done),
      cmocka_unit_test(test_cancel_while_resuming),
      cmocka_unit_test(test_two_resumes_at_once),
      cmocka_unit_test(test_cancel_mid_loop_then_resume),
      cmocka_unit_test(test_many_loops_share_turns),
      cmocka_unit_test(test_cancel_not_written_goes_on),
      cmocka_unit_test(test_cancel_while_waiting_for_room),
      cmocka_unit_test(test_step_end_not_written_is_written_later),
      cmocka_unit_test(test_answer_not_written_stays_open),
      cmocka_unit_test(test_answer_under_a_held_lock_is_busy),
      cmocka_unit_test(test_row_moved_goes_on),
      cmocka_unit_test(test_row_ended_elsewhere),
      cmocka_unit_test(test_conflicts_in_a_row_never_drop),
      cmocka_unit_test(test_runs_on_one_context_plan_on_its_newest_head),
      cmocka_unit_test(test_an_outside_write_costs_one_conflict),
      cmocka_unit_test(test_restart_without_the_workflow),
      cmocka_unit_test(test_blocked_definition),
      cmocka_unit_test(test_reads_answered_after_the_engine_went),
      cmocka_unit_test(test_blocked_context),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
