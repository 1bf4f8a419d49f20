/* test_registry.c: the AgentRegistry (src/registry/registry.c) — CRUD,
 * calls in flight, latency EWMA, the circuit breaker with injected time,
 * scoring and ranking with hand-computed winners, explain output — and
 * the backoff helper (src/registry/backoff.c).
 *
 * Expected scores are worked out by hand in the comments with the default
 * weights (coverage 0.40, health 0.20, capacity 0.25, latency 0.15).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "test_json.h"
#include "registry/registry.h"

/* ---- helpers ---------------------------------------------------------- */


/* A definition with capabilities `caps` and requirements `reqs` (JSON
 * arrays in ' quotes) and limits.maxConcurrent `max`. */
static sb_agent_def *def(const char *id, const char *caps, const char *reqs,
                         int max) {
  json_t *j = json_pack(
      "{s:s, s:s, s:s, s:o, s:{s:s}, s:o, s:s, s:i, s:f, "
      "s:{s:s, s:s}, s:{s:i}}",
      "id", id, "name", id, "type", "general", "capabilities", J(caps),
      "models", "primary", "m", "contextRequirements", J(reqs), "outputFormat",
      "text", "maxTokens", 100, "temperature", 0.0, "transport", "type",
      "stdio", "command", "agent", "limits", "maxConcurrent", max);
  assert_non_null(j);
  sb_agent_def *d = NULL;
  sb_error err = {0};
  if (sb_agent_def_parse(j, &d, &err) != 0) fail_msg("%s", err.msg);
  json_decref(j);
  return d;
}

static void add(sb_registry *reg, const char *id, const char *caps,
                const char *reqs, int max) {
  sb_error err = {0};
  if (sb_registry_register_take(reg, def(id, caps, reqs, max), 0, &err) != 0)
    fail_msg("%s", err.msg);
}

static void begin_ok(sb_registry *reg, const char *id, uint64_t now,
                     sb_registry_call *call) {
  sb_registry_refusal why = SB_REFUSE_AT_CAPACITY;
  assert_int_equal(sb_registry_call_begin(reg, id, now, call, &why), 0);
  assert_int_equal(why, SB_REFUSE_NONE);
}

static void begin_refused(sb_registry *reg, const char *id, uint64_t now,
                          sb_registry_refusal want) {
  sb_registry_call call;
  sb_registry_refusal why = SB_REFUSE_NONE;
  assert_int_equal(sb_registry_call_begin(reg, id, now, &call, &why),
                   SB_ESTATE);
  assert_int_equal(why, want);
}

/* One failed call ending at `now`. */
static void fail_call(sb_registry *reg, const char *id, uint64_t now) {
  sb_registry_call call;
  begin_ok(reg, id, now, &call);
  assert_int_equal(sb_registry_call_end(reg, id, &call, 0, 10, now), 0);
}

static sb_breaker_state breaker(sb_registry *reg, const char *id,
                                uint64_t now) {
  sb_agent_state s;
  assert_int_equal(sb_registry_state(reg, id, now, &s), 0);
  return s.breaker;
}

#define assert_close(a, b)                                                     \
  do {                                                                         \
    double a_ = (a), b_ = (b);                                                 \
    if (fabs(a_ - b_) > 1e-9) fail_msg("%s = %.12f, want %.12f", #a, a_, b_);  \
  } while (0)

/* ---- CRUD ------------------------------------------------------------- */

static void test_crud(void **state) {
  (void)state;
  sb_registry *reg = sb_registry_new(NULL);
  assert_non_null(reg);
  add(reg, "c", "['quote', 'x']", "[]", 4);
  add(reg, "a", "['x']", "[]", 4);
  add(reg, "b", "['quote']", "[]", 4);
  assert_int_equal(sb_registry_count(reg), 3);
  assert_string_equal(sb_registry_at(reg, 0)->id, "c");
  assert_string_equal(sb_registry_at(reg, 2)->id, "b");
  assert_null(sb_registry_at(reg, 3));
  assert_string_equal(sb_registry_get(reg, "a")->id, "a");
  assert_null(sb_registry_get(reg, "zz"));
  assert_null(sb_registry_get(reg, NULL));

  /* findAgentByCapability: registration order, snprintf-style count */
  const sb_agent_def *found[3];
  assert_int_equal(sb_registry_find(reg, "quote", found, 3), 2);
  assert_string_equal(found[0]->id, "c");
  assert_string_equal(found[1]->id, "b");
  assert_int_equal(sb_registry_find(reg, "x", found, 1), 2);
  assert_string_equal(found[0]->id, "c");
  assert_int_equal(sb_registry_find(reg, "nope", found, 3), 0);

  /* duplicate id: refused, and the rejected definition is freed (ASan) */
  sb_error err = {0};
  assert_int_equal(
      sb_registry_register_take(reg, def("a", "['y']", "[]", 1), 0, &err),
      SB_ECONFLICT);
  assert_string_equal(err.msg, "agent \"a\" is already registered");
  assert_int_equal(sb_registry_find(reg, "y", found, 3), 0);
  assert_int_equal(sb_registry_register_take(reg, NULL, 0, &err), SB_EINVAL);

  /* remove keeps the others' order */
  assert_int_equal(sb_registry_remove(reg, "c"), 0);
  assert_int_equal(sb_registry_remove(reg, "c"), SB_ENOENT);
  assert_int_equal(sb_registry_count(reg), 2);
  assert_string_equal(sb_registry_at(reg, 0)->id, "a");
  assert_int_equal(sb_registry_find(reg, "quote", found, 3), 1);
  assert_string_equal(found[0]->id, "b");
  sb_registry_free(reg);
  sb_registry_free(NULL);
}

/* A replaced agent keeps its place and its calls in flight; its breaker
 * and latency start afresh; a reference taken before survives. */
static void test_replace(void **state) {
  (void)state;
  sb_registry_options o = {.breaker_failures = 2};
  sb_registry *reg = sb_registry_new(&o);
  add(reg, "a", "['q']", "[]", 4);
  add(reg, "b", "['q']", "[]", 4);
  sb_registry_call inflight, done;
  begin_ok(reg, "a", 0, &inflight);
  begin_ok(reg, "a", 0, &done);
  assert_int_equal(sb_registry_call_end(reg, "a", &done, 1, 300, 0), 0);
  fail_call(reg, "a", 1);
  fail_call(reg, "a", 2);
  assert_int_equal(breaker(reg, "a", 3), SB_BREAKER_OPEN);

  sb_agent_def *old =
      sb_agent_def_ref((sb_agent_def *)sb_registry_get(reg, "a"));
  sb_error err = {0};
  assert_int_equal(sb_registry_register_take(
                       reg, def("a", "['q', 'new']", "[]", 4), 1, &err),
                   0);
  assert_string_equal(old->capabilities.items[0], "q"); /* still valid */
  sb_agent_def_free(old);
  assert_string_equal(sb_registry_at(reg, 0)->id, "a");
  assert_true(sb_agent_def_has_capability(sb_registry_get(reg, "a"), "new"));
  sb_agent_state s;
  assert_int_equal(sb_registry_state(reg, "a", 4, &s), 0);
  assert_int_equal(s.breaker, SB_BREAKER_CLOSED);
  assert_int_equal(s.inflight, 1);
  assert_true(s.latency_ewma_ms < 0);
  assert_int_equal(s.calls_failed, 0);
  /* the call from before the replace still ends cleanly */
  assert_int_equal(sb_registry_call_end(reg, "a", &inflight, 0, 10, 5), 0);
  assert_int_equal(sb_registry_state(reg, "a", 5, &s), 0);
  assert_int_equal(s.inflight, 0);
  assert_int_equal(s.recent_failures, 0); /* older breaker period */
  sb_registry_free(reg);
}

static void test_options(void **state) {
  (void)state;
  sb_registry_options bad_alpha = {.ewma_alpha = 1.5};
  assert_null(sb_registry_new(&bad_alpha));
  sb_registry_options bad_weight = {.weights = {1, -1, 0, 0}};
  assert_null(sb_registry_new(&bad_weight));

  /* coverage-only weights: the score is the coverage */
  sb_registry_options cov_only = {.weights = {1, 0, 0, 0}};
  sb_registry *reg = sb_registry_new(&cov_only);
  add(reg, "a", "['q']", "['user.id', 'workflow.currentStep']", 4);
  json_t *data = J("{'user': {'id': 'u'}}");
  sb_registry_candidate c;
  assert_int_equal(sb_registry_rank(reg, "q", data, 0, &c, 1, NULL), 1);
  assert_close(c.score, 0.5);
  json_decref(data);
  sb_registry_free(reg);
}

/* ---- calls, capacity, EWMA -------------------------------------------- */

static void test_capacity(void **state) {
  (void)state;
  sb_registry *reg = sb_registry_new(NULL);
  add(reg, "a", "['q']", "[]", 2);
  sb_registry_call c1, c2;
  begin_ok(reg, "a", 0, &c1);
  assert_int_equal(c1.probe, 0);
  begin_ok(reg, "a", 0, &c2);
  begin_refused(reg, "a", 0, SB_REFUSE_AT_CAPACITY);
  sb_agent_state s;
  assert_int_equal(sb_registry_state(reg, "a", 0, &s), 0);
  assert_int_equal(s.inflight, 2);
  assert_int_equal(s.max_concurrent, 2);
  assert_int_equal(sb_registry_call_end(reg, "a", &c1, 1, 5, 1), 0);
  begin_ok(reg, "a", 1, &c1);

  sb_registry_call dummy;
  assert_int_equal(sb_registry_call_begin(reg, "zz", 0, &dummy, NULL),
                   SB_ENOENT);
  assert_int_equal(sb_registry_set_health(reg, "zz", 0), SB_ENOENT);
  assert_int_equal(sb_registry_state(reg, "zz", 0, &s), SB_ENOENT);
  assert_null(sb_registry_state_json(reg, "zz", 0));

  /* a removed and re-registered agent ignores the old tickets */
  assert_int_equal(sb_registry_remove(reg, "a"), 0);
  assert_int_equal(sb_registry_call_end(reg, "a", &c1, 1, 5, 2), SB_ENOENT);
  add(reg, "a", "['q']", "[]", 2);
  sb_registry_call c3;
  begin_ok(reg, "a", 3, &c3);
  assert_int_equal(sb_registry_call_end(reg, "a", &c2, 1, 5, 3), SB_ENOENT);
  assert_int_equal(sb_registry_state(reg, "a", 3, &s), 0);
  assert_int_equal(s.inflight, 1);
  sb_registry_free(reg);
}

static void test_ewma(void **state) {
  (void)state;
  sb_registry *reg = sb_registry_new(NULL);
  add(reg, "a", "['q']", "[]", 4);
  json_t *st = sb_registry_state_json(reg, "a", 0);
  assert_true(json_is_null(json_object_get(st, "latencyMs")));
  json_decref(st);

  /* alpha 0.2: 100 -> 100; 200 -> 0.2*200 + 0.8*100 = 120;
   * 50 -> 0.2*50 + 0.8*120 = 106; a failure (10 s) changes nothing */
  const struct {
    int ok;
    uint64_t ms;
    double want;
  } steps[] = {{1, 100, 100}, {1, 200, 120}, {1, 50, 106}, {0, 10000, 106}};
  for (size_t i = 0; i < 4; i++) {
    sb_registry_call c;
    begin_ok(reg, "a", i, &c);
    assert_int_equal(
        sb_registry_call_end(reg, "a", &c, steps[i].ok, steps[i].ms, i), 0);
    sb_agent_state s;
    assert_int_equal(sb_registry_state(reg, "a", i, &s), 0);
    assert_close(s.latency_ewma_ms, steps[i].want);
  }
  st = sb_registry_state_json(reg, "a", 10);
  json_t *want = J("{'healthy': true, 'breaker': 'closed', 'inflight': 0,"
                   " 'maxConcurrent': 4, 'latencyMs': 106.0,"
                   " 'recentFailures': 1, 'callsOk': 3, 'callsFailed': 1}");
  assert_true(json_equal(st, want));
  json_decref(st);
  json_decref(want);

  /* latency part: 1 / (1 + 106/1000) */
  sb_registry_candidate c;
  assert_int_equal(sb_registry_rank(reg, "q", NULL, 10, &c, 1, NULL), 1);
  assert_close(c.latency, 1.0 / 1.106);

  /* a custom alpha */
  sb_registry_options o = {.ewma_alpha = 0.5};
  sb_registry *r2 = sb_registry_new(&o);
  add(r2, "a", "['q']", "[]", 4);
  for (uint64_t ms = 100; ms <= 300; ms += 200) {
    sb_registry_call call;
    begin_ok(r2, "a", 0, &call);
    sb_registry_call_end(r2, "a", &call, 1, ms, 0);
  }
  sb_agent_state s;
  sb_registry_state(r2, "a", 0, &s);
  assert_close(s.latency_ewma_ms, 200); /* 0.5*300 + 0.5*100 */
  sb_registry_free(r2);
  sb_registry_free(reg);
}

/* ---- circuit breaker -------------------------------------------------- */

static sb_registry *breaker_registry(void) {
  sb_registry_options o = {.breaker_failures = 3,
                           .breaker_window_ms = 1000,
                           .breaker_cooldown_ms = 500};
  sb_registry *reg = sb_registry_new(&o);
  add(reg, "a", "['q']", "[]", 4);
  return reg;
}

static void test_breaker_cycle(void **state) {
  (void)state;
  sb_registry *reg = breaker_registry();
  fail_call(reg, "a", 0);
  fail_call(reg, "a", 100);
  assert_int_equal(breaker(reg, "a", 150), SB_BREAKER_CLOSED);
  sb_agent_state s;
  sb_registry_state(reg, "a", 150, &s);
  assert_int_equal(s.recent_failures, 2);
  fail_call(reg, "a", 200); /* third within 1 s: open */
  assert_int_equal(breaker(reg, "a", 200), SB_BREAKER_OPEN);
  sb_registry_state(reg, "a", 300, &s);
  assert_int_equal(s.breaker_open_until_ms, 700);
  json_t *st = sb_registry_state_json(reg, "a", 300);
  assert_int_equal(json_integer_value(json_object_get(st, "retryInMs")), 400);
  json_decref(st);
  begin_refused(reg, "a", 300, SB_REFUSE_BREAKER_OPEN);
  begin_refused(reg, "a", 699, SB_REFUSE_BREAKER_OPEN);

  /* cooldown over: half-open admits exactly one probe */
  assert_int_equal(breaker(reg, "a", 700), SB_BREAKER_HALF_OPEN);
  sb_registry_call probe;
  begin_ok(reg, "a", 700, &probe);
  assert_int_equal(probe.probe, 1);
  begin_refused(reg, "a", 701, SB_REFUSE_PROBE_IN_FLIGHT);
  begin_refused(reg, "a", 5000, SB_REFUSE_PROBE_IN_FLIGHT);

  /* probe succeeds: closed, failures forgotten */
  assert_int_equal(sb_registry_call_end(reg, "a", &probe, 1, 20, 750), 0);
  assert_int_equal(breaker(reg, "a", 750), SB_BREAKER_CLOSED);
  sb_registry_state(reg, "a", 750, &s);
  assert_int_equal(s.recent_failures, 0);
  sb_registry_call c;
  begin_ok(reg, "a", 751, &c);
  assert_int_equal(c.probe, 0);
  sb_registry_call_end(reg, "a", &c, 1, 20, 751);

  /* open again; this time the probe fails: open for another cooldown */
  fail_call(reg, "a", 800);
  fail_call(reg, "a", 801);
  fail_call(reg, "a", 802);
  assert_int_equal(breaker(reg, "a", 802), SB_BREAKER_OPEN);
  begin_ok(reg, "a", 1302, &probe);
  assert_int_equal(probe.probe, 1);
  assert_int_equal(sb_registry_call_end(reg, "a", &probe, 0, 20, 1400), 0);
  assert_int_equal(breaker(reg, "a", 1400), SB_BREAKER_OPEN);
  begin_refused(reg, "a", 1899, SB_REFUSE_BREAKER_OPEN);
  assert_int_equal(breaker(reg, "a", 1900), SB_BREAKER_HALF_OPEN);
  sb_registry_free(reg);
}

/* An agent back after being down (healthy after unhealthy) is probed at
 * once, not at the end of the cooldown; a health check that only says
 * again that it is up changes nothing. */
static void test_breaker_probes_an_agent_back(void **state) {
  (void)state;
  sb_registry *reg = breaker_registry();
  fail_call(reg, "a", 0);
  fail_call(reg, "a", 1);
  fail_call(reg, "a", 2);
  assert_int_equal(breaker(reg, "a", 10), SB_BREAKER_OPEN);
  assert_int_equal(sb_registry_set_health(reg, "a", 1), 0); /* up all along */
  assert_int_equal(breaker(reg, "a", 20), SB_BREAKER_OPEN);
  begin_refused(reg, "a", 20, SB_REFUSE_BREAKER_OPEN);
  sb_registry_set_health(reg, "a", 0); /* its connection lost */
  assert_int_equal(breaker(reg, "a", 30), SB_BREAKER_OPEN);
  sb_registry_set_health(reg, "a", 1); /* connected again */
  assert_int_equal(breaker(reg, "a", 40), SB_BREAKER_HALF_OPEN);
  sb_registry_call probe;
  begin_ok(reg, "a", 40, &probe);
  assert_int_equal(probe.probe, 1);
  begin_refused(reg, "a", 41, SB_REFUSE_PROBE_IN_FLIGHT);
  assert_int_equal(sb_registry_call_end(reg, "a", &probe, 1, 5, 45), 0);
  assert_int_equal(breaker(reg, "a", 45), SB_BREAKER_CLOSED);
  sb_registry_free(reg);
}

static void test_breaker_window(void **state) {
  (void)state;
  sb_registry *reg = breaker_registry();
  /* the breaker opens when the last 3 failures span less than 1000 ms */
  fail_call(reg, "a", 0);
  fail_call(reg, "a", 600);
  fail_call(reg, "a", 1000); /* 0..1000: exactly the window, outside */
  assert_int_equal(breaker(reg, "a", 1000), SB_BREAKER_CLOSED);
  fail_call(reg, "a", 1700); /* 600..1700 */
  assert_int_equal(breaker(reg, "a", 1700), SB_BREAKER_CLOSED);
  sb_agent_state s;
  sb_registry_state(reg, "a", 1700, &s);
  assert_int_equal(s.recent_failures, 2); /* 1000, 1700 */
  fail_call(reg, "a", 1800);              /* 1000..1800 */
  assert_int_equal(breaker(reg, "a", 1800), SB_BREAKER_OPEN);
  sb_registry_free(reg);

  /* successes in between do not reset the count */
  reg = breaker_registry();
  for (uint64_t t = 0; t < 5; t++) {
    sb_registry_call c;
    begin_ok(reg, "a", t * 10, &c);
    sb_registry_call_end(reg, "a", &c, t % 2 == 1, 10, t * 10);
  }
  assert_int_equal(breaker(reg, "a", 50), SB_BREAKER_OPEN);
  sb_registry_free(reg);
}

/* Calls admitted before the breaker opened do not decide anything: only
 * the probe does. */
static void test_breaker_stale_calls(void **state) {
  (void)state;
  sb_registry *reg = breaker_registry();
  sb_registry_call slow, slow2;
  begin_ok(reg, "a", 0, &slow);
  begin_ok(reg, "a", 0, &slow2);
  fail_call(reg, "a", 10);
  fail_call(reg, "a", 20);
  fail_call(reg, "a", 30);
  assert_int_equal(breaker(reg, "a", 30), SB_BREAKER_OPEN);
  sb_registry_call probe;
  begin_ok(reg, "a", 530, &probe);
  /* the old call succeeding while half-open does not close it... */
  sb_registry_call_end(reg, "a", &slow, 1, 600, 600);
  assert_int_equal(breaker(reg, "a", 600), SB_BREAKER_HALF_OPEN);
  begin_refused(reg, "a", 600, SB_REFUSE_PROBE_IN_FLIGHT);
  /* ...the probe does */
  sb_registry_call_end(reg, "a", &probe, 1, 100, 630);
  assert_int_equal(breaker(reg, "a", 630), SB_BREAKER_CLOSED);
  /* and an old failure arriving now is not counted against the new period */
  sb_registry_call_end(reg, "a", &slow2, 0, 700, 700);
  sb_agent_state s;
  sb_registry_state(reg, "a", 700, &s);
  assert_int_equal(s.recent_failures, 0);
  assert_int_equal(s.inflight, 0);
  assert_int_equal(s.calls_failed, 4);
  sb_registry_free(reg);
}

/* ---- scoring ---------------------------------------------------------- */

static const char *const ctx_data =
    "{'conversation': {'intent': 'buy', 'messages': [{'role': 'user',"
    "   'content': 'hi'}]},"
    " 'user': {'id': 'u1'}, 'workflow': {}, 'business': {}}";

/* Coverage decides: same state, A misses half its requirements. */
static void test_rank_coverage(void **state) {
  (void)state;
  sb_registry *reg = sb_registry_new(NULL);
  add(reg, "a", "['quote']", "['conversation.intent', 'business.inventory']",
      4);
  add(reg, "b", "['quote']", "['conversation.intent']", 4);
  add(reg, "other", "['book']", "[]", 4);
  json_t *data = J(ctx_data);
  sb_registry_candidate c[4];
  /* A: 0.4*0.5 + 0.2 + 0.25 + 0.15 = 0.8;  B: 1.0 */
  assert_int_equal(sb_registry_rank(reg, "quote", data, 0, c, 4, NULL), 2);
  assert_string_equal(c[0].def->id, "b");
  assert_close(c[0].score, 1.0);
  assert_string_equal(c[1].def->id, "a");
  assert_close(c[1].score, 0.8);
  assert_close(c[1].coverage, 0.5);
  assert_int_equal(c[1].covered, 1);
  assert_int_equal(c[1].required, 2);
  assert_close(c[1].health, 1);
  assert_close(c[1].capacity, 1);
  assert_close(c[1].latency, 1);
  assert_true(c[0].available && c[1].available);

  /* no context: coverage 1 for all, so registration order decides */
  assert_int_equal(sb_registry_rank(reg, "quote", NULL, 0, c, 4, NULL), 2);
  assert_string_equal(c[0].def->id, "a");
  assert_close(c[0].coverage, 1);
  assert_int_equal(c[0].covered, 2);

  /* max smaller than the field: the best only, the total returned */
  assert_int_equal(sb_registry_rank(reg, "quote", data, 0, c, 1, NULL), 2);
  assert_string_equal(c[0].def->id, "b");

  sb_error err = {0};
  json_t *arr = J("[]");
  assert_int_equal(sb_registry_rank(reg, "quote", arr, 0, c, 4, &err),
                   SB_EINVAL);
  assert_string_equal(err.msg, "context data: expected an object");
  json_decref(arr);
  json_decref(data);
  sb_registry_free(reg);
}

/* A test rule: only agent "a" is handed the user section. */
static int only_a_sees_user(const json_t *data, const char *agent_id) {
  (void)data;
  return strcmp(agent_id, "a") == 0;
}

/* Coverage counts only what an agent is handed: with the user section
 * kept from B, B's user path is missing, and A, registered second, wins
 * (both require the same paths); explain says the same. */
static void test_rank_coverage_sees_user(void **state) {
  (void)state;
  sb_registry_options o = {.sees_user = only_a_sees_user};
  sb_registry *reg = sb_registry_new(&o);
  add(reg, "b", "['quote']", "['conversation.intent', 'user.id']", 4);
  add(reg, "a", "['quote']", "['conversation.intent', 'user.id']", 4);
  json_t *data = J(ctx_data);
  sb_registry_candidate c[2];
  assert_int_equal(sb_registry_rank(reg, "quote", data, 0, c, 2, NULL), 2);
  assert_string_equal(c[0].def->id, "a");
  assert_close(c[0].coverage, 1);
  assert_string_equal(c[1].def->id, "b");
  assert_close(c[1].coverage, 0.5);
  json_t *why = NULL;
  assert_int_equal(sb_registry_explain(reg, "quote", data, 0, &why, NULL), 0);
  json_t *missing = json_object_get(
      json_object_get(json_array_get(why, 1), "coverage"), "missing");
  assert_int_equal(json_array_size(missing), 1);
  assert_string_equal(json_string_value(json_array_get(missing, 0)), "user.id");
  json_decref(why);
  /* without a user section there is nothing to keep back */
  json_object_del(data, "user");
  assert_int_equal(sb_registry_rank(reg, "quote", data, 0, c, 2, NULL), 2);
  assert_string_equal(c[0].def->id, "b"); /* both 0.5: registration order */
  json_decref(data);
  sb_registry_free(reg);
}

/* Load shifts the choice: A covers everything, B three of four paths. */
static void test_rank_load(void **state) {
  (void)state;
  sb_registry *reg = sb_registry_new(NULL);
  add(reg, "a", "['quote']",
      "['conversation.intent', 'conversation.messages', 'user.id', "
      "'workflow']",
      2);
  add(reg, "b", "['quote']",
      "['conversation.intent', 'conversation.messages', 'user.id', "
      "'workflow.vin']",
      4);
  json_t *data = J(ctx_data);
  sb_registry_candidate c;
  /* idle: A 1.0, B 0.4*0.75 + 0.2 + 0.25 + 0.15 = 0.9 */
  assert_int_equal(sb_registry_optimal(reg, "quote", data, 0, &c, NULL), 0);
  assert_string_equal(c.def->id, "a");
  assert_close(c.score, 1.0);

  /* one of A's two slots busy: A 0.4 + 0.2 + 0.25*0.5 + 0.15 = 0.875 */
  sb_registry_call call;
  begin_ok(reg, "a", 0, &call);
  assert_int_equal(sb_registry_optimal(reg, "quote", data, 1, &c, NULL), 0);
  assert_string_equal(c.def->id, "b");
  assert_close(c.score, 0.9);
  sb_registry_candidate all[2];
  assert_int_equal(sb_registry_rank(reg, "quote", data, 1, all, 2, NULL), 2);
  assert_string_equal(all[1].def->id, "a");
  assert_close(all[1].score, 0.875);
  assert_true(all[1].available);
  assert_int_equal(all[1].inflight, 1);

  /* the call ends: A wins again */
  sb_registry_call_end(reg, "a", &call, 1, 0, 2);
  assert_int_equal(sb_registry_optimal(reg, "quote", data, 2, &c, NULL), 0);
  assert_string_equal(c.def->id, "a");
  json_decref(data);
  sb_registry_free(reg);
}

/* An open breaker takes the best agent out; half-open lets it back in
 * for one probe. */
static void test_rank_breaker_excludes(void **state) {
  (void)state;
  sb_registry_options o = {.breaker_failures = 2, .breaker_cooldown_ms = 1000};
  sb_registry *reg = sb_registry_new(&o);
  add(reg, "a", "['quote']", "['conversation.intent']", 4);
  add(reg, "b", "['quote']", "['conversation.intent', 'business.x']", 4);
  json_t *data = J(ctx_data);
  sb_registry_candidate c, all[2];
  assert_int_equal(sb_registry_optimal(reg, "quote", data, 0, &c, NULL), 0);
  assert_string_equal(c.def->id, "a");
  fail_call(reg, "a", 10);
  fail_call(reg, "a", 20);
  /* A open: 0.4 + 0 + 0.25 + 0.15 = 0.8 ties B's 0.2+0.2+0.25+0.15 = 0.8;
   * A still ranks first (higher coverage) but is unavailable */
  assert_int_equal(sb_registry_rank(reg, "quote", data, 30, all, 2, NULL), 2);
  assert_string_equal(all[0].def->id, "a");
  assert_close(all[0].score, 0.8);
  assert_close(all[0].health, 0);
  assert_false(all[0].available);
  assert_int_equal(all[0].why, SB_REFUSE_BREAKER_OPEN);
  assert_string_equal(all[1].def->id, "b");
  assert_close(all[1].score, 0.8);
  assert_int_equal(sb_registry_optimal(reg, "quote", data, 30, &c, NULL), 0);
  assert_string_equal(c.def->id, "b");

  /* half-open: health 0.5, A = 0.4 + 0.1 + 0.25 + 0.15 = 0.9 */
  assert_int_equal(sb_registry_optimal(reg, "quote", data, 1020, &c, NULL), 0);
  assert_string_equal(c.def->id, "a");
  assert_close(c.health, 0.5);
  assert_close(c.score, 0.9);
  sb_registry_call probe;
  begin_ok(reg, "a", 1020, &probe);
  assert_int_equal(sb_registry_optimal(reg, "quote", data, 1021, &c, NULL), 0);
  assert_string_equal(c.def->id, "b");

  /* unhealthy is a score, not a refusal: health 0 */
  sb_registry_call_end(reg, "a", &probe, 1, 0, 1030);
  assert_int_equal(sb_registry_set_health(reg, "a", 0), 0);
  assert_int_equal(sb_registry_rank(reg, "quote", data, 1040, all, 2, NULL), 2);
  assert_string_equal(all[0].def->id, "a"); /* 0.8, tie won on coverage */
  assert_close(all[0].health, 0);
  assert_true(all[0].available);
  json_decref(data);
  sb_registry_free(reg);
}

static void test_rank_ties(void **state) {
  (void)state;
  sb_registry *reg = sb_registry_new(NULL);
  add(reg, "x", "['q']", "[]", 4);
  add(reg, "y", "['q']", "[]", 4);
  add(reg, "z", "['q']", "[]", 4);
  sb_registry_candidate c[3];
  /* identical: registration order */
  assert_int_equal(sb_registry_rank(reg, "q", NULL, 0, c, 3, NULL), 3);
  assert_string_equal(c[0].def->id, "x");
  assert_string_equal(c[1].def->id, "y");
  assert_string_equal(c[2].def->id, "z");
  sb_registry_free(reg);

  /* equal score, different coverage: higher coverage first.
   * P (registered first): coverage 0.5, idle:  0.2 + 0.2 + 0.25 + 0.15
   * Q: coverage 1, 4 of 5 busy: 0.4 + 0.2 + 0.25*0.2 + 0.15 = 0.8 */
  reg = sb_registry_new(NULL);
  add(reg, "p", "['q']", "['user.id', 'user.nope']", 4);
  add(reg, "q", "['q']", "['user.id']", 5);
  sb_registry_call call;
  for (int i = 0; i < 4; i++)
    begin_ok(reg, "q", 0, &call);
  json_t *data = J(ctx_data);
  assert_int_equal(sb_registry_rank(reg, "q", data, 0, c, 3, NULL), 2);
  assert_close(c[0].score, c[1].score);
  assert_string_equal(c[0].def->id, "q");
  assert_string_equal(c[1].def->id, "p");
  sb_registry_free(reg);

  /* equal score and coverage: fewer in flight first.
   * R (registered first): 2 of 4 busy; S: 1 of 2 busy; both capacity 0.5 */
  reg = sb_registry_new(NULL);
  add(reg, "r", "['q']", "[]", 4);
  add(reg, "s", "['q']", "[]", 2);
  begin_ok(reg, "r", 0, &call);
  begin_ok(reg, "r", 0, &call);
  begin_ok(reg, "s", 0, &call);
  assert_int_equal(sb_registry_rank(reg, "q", data, 0, c, 3, NULL), 2);
  assert_close(c[0].score, c[1].score);
  assert_string_equal(c[0].def->id, "s");
  assert_string_equal(c[1].def->id, "r");
  json_decref(data);
  sb_registry_free(reg);
}

/* The worked example in registry.h, number for number. */
static void test_header_example(void **state) {
  (void)state;
  sb_registry *reg = sb_registry_new(NULL);
  add(reg, "a", "['quote']", "['conversation.messages', 'business.inventory']",
      4);
  add(reg, "b", "['quote']", "['conversation.messages']", 4);
  sb_registry_call call;
  begin_ok(reg, "a", 0, &call); /* A: 1 of 4, ewma 250 ms */
  begin_ok(reg, "a", 0, &call);
  sb_registry_call_end(reg, "a", &call, 1, 250, 0);
  for (int i = 0; i < 3; i++)
    begin_ok(reg, "b", 0, &call); /* B: 3 of 4 */
  json_t *data = J(ctx_data);
  sb_registry_candidate c[2];
  assert_int_equal(sb_registry_rank(reg, "quote", data, 0, c, 2, NULL), 2);
  assert_string_equal(c[0].def->id, "b");
  assert_close(c[0].score, 0.8125);
  assert_string_equal(c[1].def->id, "a");
  assert_close(c[1].score, 0.7075);
  assert_close(c[1].latency, 0.8);

  begin_ok(reg, "b", 0, &call); /* B full: 0.75 and unavailable */
  assert_int_equal(sb_registry_rank(reg, "quote", data, 0, c, 2, NULL), 2);
  assert_string_equal(c[0].def->id, "b");
  assert_close(c[0].score, 0.75);
  assert_false(c[0].available);
  assert_int_equal(c[0].why, SB_REFUSE_AT_CAPACITY);
  sb_registry_candidate best;
  assert_int_equal(sb_registry_optimal(reg, "quote", data, 0, &best, NULL), 0);
  assert_string_equal(best.def->id, "a");

  /* explain: the same ranking as JSON */
  json_t *out = NULL;
  assert_int_equal(sb_registry_explain(reg, "quote", data, 0, &out, NULL), 0);
  assert_int_equal(json_array_size(out), 2);
  json_t *first = json_array_get(out, 0), *second = json_array_get(out, 1);
  assert_int_equal(json_integer_value(json_object_get(first, "rank")), 1);
  assert_string_equal(json_string_value(json_object_get(first, "id")), "b");
  assert_true(json_is_false(json_object_get(first, "available")));
  assert_string_equal(json_string_value(json_object_get(first, "unavailable")),
                      "at capacity");
  assert_close(json_real_value(json_object_get(first, "score")), 0.75);
  json_t *want_parts = J("{'coverage': 1.0, 'health': 1.0, 'capacity': 0.0,"
                         " 'latency': 1.0}");
  assert_true(json_equal(json_object_get(first, "parts"), want_parts));
  json_decref(want_parts);
  json_t *want_w = J("{'coverage': 0.4, 'health': 0.2, 'capacity': 0.25,"
                     " 'latency': 0.15}");
  assert_true(json_equal(json_object_get(first, "weights"), want_w));
  json_decref(want_w);
  assert_string_equal(json_string_value(json_object_get(second, "id")), "a");
  assert_null(json_object_get(second, "unavailable"));
  json_t *want_cov = J("{'covered': 1, 'required': 2,"
                       " 'missing': ['business.inventory']}");
  assert_true(json_equal(json_object_get(second, "coverage"), want_cov));
  json_decref(want_cov);
  json_t *st = json_object_get(second, "state");
  assert_int_equal(json_integer_value(json_object_get(st, "inflight")), 1);
  assert_close(json_real_value(json_object_get(st, "latencyMs")), 250);
  json_decref(out);

  assert_int_equal(sb_registry_explain(reg, "none", data, 0, &out, NULL), 0);
  assert_int_equal(json_array_size(out), 0);
  json_decref(out);
  json_decref(data);
  sb_registry_free(reg);
}

static void test_optimal_errors(void **state) {
  (void)state;
  sb_registry *reg = sb_registry_new(NULL);
  add(reg, "a", "['q']", "[]", 1);
  add(reg, "b", "['q']", "[]", 1);
  sb_registry_candidate c;
  sb_error err = {0};
  assert_int_equal(sb_registry_optimal(reg, "nope", NULL, 0, &c, &err),
                   SB_ENOENT);
  assert_string_equal(err.msg, "no agent has capability \"nope\"");
  sb_registry_call call;
  begin_ok(reg, "a", 0, &call);
  begin_ok(reg, "b", 0, &call);
  assert_int_equal(sb_registry_optimal(reg, "q", NULL, 0, &c, &err), SB_ESTATE);
  assert_string_equal(err.msg,
                      "no agent with capability \"q\" can take a call: "
                      "a (at capacity), b (at capacity)");
  sb_registry_free(reg);
}

/* Ranking, explain and registration survive allocation failures. */
static void test_alloc_failures(void **state) {
  (void)state;
  sb_registry *reg = sb_registry_new(NULL);
  add(reg, "a", "['q']", "['user.id', 'user.x']", 4);
  add(reg, "b", "['q']", "['user.id']", 4);
  json_t *data = J(ctx_data);
  size_t before = sb_alloc_live_bytes();
  int done = 0;
  for (long n = 1; n < 2000 && !done; n++) {
    json_t *out = NULL;
    sb_registry_candidate c[2];
    sb_alloc_fail_after(n);
    int rank_rc = sb_registry_rank(reg, "q", data, 0, c, 2, NULL);
    int rc = sb_registry_explain(reg, "q", data, 0, &out, NULL);
    sb_alloc_fail_after(0);
    assert_true(rank_rc == 2 || rank_rc == SB_ENOMEM);
    assert_true(rc == 0 || rc == SB_ENOMEM);
    if (rc == 0) {
      assert_int_equal(json_array_size(out), 2);
      done = rank_rc == 2;
    } else {
      assert_null(out);
    }
    json_decref(out);
    assert_int_equal(sb_alloc_live_bytes(), before);
  }
  assert_true(done);
  for (long n = 1; n < 3; n++) {
    sb_agent_def *d = def("c", "['q']", "[]", 4);
    sb_alloc_fail_after(n);
    int rc = sb_registry_register_take(reg, d, 0, NULL);
    sb_alloc_fail_after(0);
    assert_true(rc == 0 || rc == SB_ENOMEM);
    if (rc == 0) sb_registry_remove(reg, "c");
  }
  json_decref(data);
  sb_registry_free(reg);
}

/* ---- backoff ---------------------------------------------------------- */

static void test_backoff(void **state) {
  (void)state;
  /* base 100, cap 1000: ceilings 100, 200, 400, 800, 1000, 1000... */
  assert_int_equal(sb_backoff_delay_ms(0, 100, 1000, 0.5), 50);
  assert_int_equal(sb_backoff_delay_ms(1, 100, 1000, 0.5), 100);
  assert_int_equal(sb_backoff_delay_ms(3, 100, 1000, 0.5), 400);
  assert_int_equal(sb_backoff_delay_ms(3, 100, 1000, 0.999), 799);
  assert_int_equal(sb_backoff_delay_ms(4, 100, 1000, 0.5), 500);
  assert_int_equal(sb_backoff_delay_ms(60, 100, 1000, 0.5), 500);
  assert_int_equal(sb_backoff_delay_ms(4000000000u, 100, 1000, 0.25), 250);
  /* full jitter spans [0, ceiling) */
  assert_int_equal(sb_backoff_delay_ms(2, 100, 1000, 0.0), 0);
  assert_int_equal(sb_backoff_delay_ms(2, 100, 1000, 1.0), 399);
  assert_int_equal(sb_backoff_delay_ms(2, 100, 1000, 7.0), 399);
  assert_int_equal(sb_backoff_delay_ms(2, 100, 1000, -1.0), 0);
  assert_int_equal(sb_backoff_delay_ms(2, 100, 1000, NAN), 0);
  /* base above the cap, zero base, no overflow near UINT64_MAX */
  assert_int_equal(sb_backoff_delay_ms(0, 5000, 1000, 0.5), 500);
  assert_int_equal(sb_backoff_delay_ms(4000000000u, 0, 1000, 0.5), 0);
  uint64_t big = sb_backoff_delay_ms(200, 1, UINT64_MAX, 0.5);
  assert_true(big >= UINT64_MAX / 2 - (1ull << 12) &&
              big <= UINT64_MAX / 2 + (1ull << 12));
  assert_true(sb_backoff_delay_ms(200, 1, UINT64_MAX, 1.0) < UINT64_MAX);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crud),
      cmocka_unit_test(test_replace),
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_capacity),
      cmocka_unit_test(test_ewma),
      cmocka_unit_test(test_breaker_cycle),
      cmocka_unit_test(test_breaker_probes_an_agent_back),
      cmocka_unit_test(test_breaker_window),
      cmocka_unit_test(test_breaker_stale_calls),
      cmocka_unit_test(test_rank_coverage),
      cmocka_unit_test(test_rank_coverage_sees_user),
      cmocka_unit_test(test_rank_load),
      cmocka_unit_test(test_rank_breaker_excludes),
      cmocka_unit_test(test_rank_ties),
      cmocka_unit_test(test_header_example),
      cmocka_unit_test(test_optimal_errors),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_backoff),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
