/* steps.c: the steps a run has under way — calls to agents, questions to
 * people, waits for events — and how each one ends.
 *
 * After every write, fl_steps_sync makes the steps in memory match the
 * run's stored active list: new entries start (a call is sent, a deadline
 * armed, a subscription opened from the entry's seq), entries that left
 * stop (a call is cancelled). A step that ends queues one change for the
 * run (done, with the value to save; or failed, once its retries are
 * spent) and ignores whatever reaches it after.
 */
#include <string.h>

#include "flow/run_internal.h"
#include "llm/llm.h"

#define RETRY_CAP_MS 30000

static const sb_flow_step *step_of(const fl_active *a) {
  return &a->run->def->steps[a->step];
}

int fl_active_index(const fl_run *r, int step, int visit) {
  for (size_t i = 0; i < r->nactive; i++)
    if (r->active[i]->step == step && r->active[i]->visit == visit)
      return (int)i;
  return -1;
}

static void active_stop(fl_active *a) {
  if (a->call) {
    sb_gateway_call *c = a->call;
    a->call = NULL;
    a->finished = 1;
    sb_gateway_call_cancel(c, "the workflow step was stopped");
  }
  if (a->timer) {
    uv_close((uv_handle_t *)a->timer, sb_free_handle);
    a->timer = NULL;
  }
  if (a->par_timer) {
    uv_close((uv_handle_t *)a->par_timer, sb_free_handle);
    a->par_timer = NULL;
  }
  if (a->sub) {
    sb_events_unsubscribe(a->sub);
    a->sub = NULL;
  }
}

static void active_free(fl_active *a) {
  active_stop(a);
  json_decref(a->where);
  sb_free(a);
}

/* The step ends: its change goes to the run (once). */
static void finish(fl_active *a, fl_change *c) {
  if (a->finished) {
    fl_change_free(c);
    return;
  }
  a->finished = 1;
  c->step = a->step;
  c->visit = a->visit;
  c->attempts = a->attempt;
  fl_run_change(a->run, c);
}

static fl_change *change_new(fl_change_kind kind) {
  fl_change *c = sb_calloc(1, sizeof *c);
  if (c) c->kind = kind;
  return c;
}

static void fail(fl_active *a, const char *code, const char *agent,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(fl_active *a, const char *code, const char *agent,
                 const char *fmt, ...) {
  fl_change *c = change_new(FL_STEP_FAILED);
  if (!c) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->message = sb_strdup(msg);
  c->code = code ? sb_strdup(code) : NULL;
  c->agent = agent ? sb_strdup(agent) : NULL;
  finish(a, c);
}

/* Start a's timer in *slot (made on first use): cb in ms. */
static int arm_timer(fl_active *a, uv_timer_t **slot, uint64_t ms,
                     uv_timer_cb cb) {
  if (!*slot) {
    if (!(*slot = sb_calloc(1, sizeof **slot))) return SB_ENOMEM;
    uv_timer_init(sb_store_loop(a->run->e->o.store), *slot);
    (*slot)->data = a;
  }
  uv_timer_start(*slot, cb, ms, 0);
  return 0;
}

static int arm(fl_active *a, uint64_t ms, uv_timer_cb cb) {
  return arm_timer(a, &a->timer, ms, cb);
}

/* Milliseconds from now to a wall-clock deadline; 0 once it has passed. */
static uint64_t ms_until(int64_t deadline_ms) {
  int64_t left = deadline_ms - (int64_t)sb_wall_ms();
  return left > 0 ? (uint64_t)left : 0;
}

/* The parallel step a branch is in has run out of time: the branch fails
 * (and with it the parallel step, whose other branches stop). */
static void on_par_deadline(uv_timer_t *t) {
  fl_active *a = t->data;
  const sb_flow_step *s = step_of(a);
  const sb_flow_step *par = &a->run->def->steps[s->parent];
  fail(a, "timeout", NULL,
       "parallel step %s: not done within %llu ms (step %s "
       "still under way)",
       par->id, (unsigned long long)par->timeout_ms, s->id);
}

static int arm_par(fl_active *a) {
  return arm_timer(a, &a->par_timer, ms_until(a->par_deadline_ms),
                   on_par_deadline);
}

/* ---- calls --------------------------------------------------------------- */

static void call_start(fl_active *a);

/* A retry's backoff, or a wait for room, is over: the next try, unless
 * the step was told to stop meanwhile (a cancellation waiting to be
 * written keeps the timer, so that a cancellation not written lets the
 * step go on). Started then, the call would reach the agent for a run
 * being cancelled, and nothing would hold it: the step's memory goes
 * with the cancellation, and the call's end would come to it freed. If
 * the cancellation is not written, fl_steps_revive starts the step again
 * from its stored entry. */
static void on_retry(uv_timer_t *t) {
  fl_active *a = t->data;
  if (a->finished) return;
  call_start(a);
}

/* What a tool's result saves: its structuredContent, else its one text
 * (as JSON when it parses), else its content. New reference. */
static json_t *result_value(json_t *result) {
  json_t *sc = json_object_get(result, "structuredContent");
  if (sc) return json_incref(sc);
  json_t *content = json_object_get(result, "content");
  if (json_array_size(content) == 1) {
    json_t *item = json_array_get(content, 0);
    const char *text = fl_str(item, "text");
    if (text &&
        strcmp(fl_str(item, "type") ? fl_str(item, "type") : "", "text") == 0) {
      json_t *parsed = json_loads(text, JSON_DECODE_ANY, NULL);
      return parsed ? parsed : json_string(text);
    }
  }
  return content ? json_incref(content) : json_null();
}

static const char *result_text(json_t *result) {
  json_t *item = json_array_get(json_object_get(result, "content"), 0);
  const char *t = fl_str(item, "text");
  return t ? t : "(no text)";
}

/* The next try's number goes with the step into the stored run (and a
 * step.retrying event out), so a restart goes on counting from it instead
 * of granting the step its tries afresh. The try itself does not wait for
 * the write. */
static void record_retry(fl_active *a, const char *agent, const char *message,
                         uint64_t wait_ms) {
  fl_change *c = change_new(FL_STEP_RETRY);
  if (!c) return; /* the count stays in memory only */
  c->step = a->step;
  c->visit = a->visit;
  c->attempts = a->attempt;
  c->retry_in_ms = wait_ms;
  c->message = sb_strdup(message);
  c->agent = agent ? sb_strdup(agent) : NULL;
  fl_run_change(a->run, c);
}

/* Try again after the backoff, or fail for good. */
static void retry_or_fail(fl_active *a, const char *code, const char *agent,
                          const char *message) {
  const sb_flow_step *s = step_of(a);
  if (a->attempt < s->retry_attempts && !a->run->e->stopping) {
    uint64_t wait = s->retry_backoff_ms;
    for (int i = 1; i < a->attempt && wait < RETRY_CAP_MS; i++)
      wait *= 2;
    if (wait > RETRY_CAP_MS) wait = RETRY_CAP_MS;
    a->attempt++;
    SB_INFO(FL_MODULE, "run %s step %s: %s; try %d of %d in %llu ms",
            a->run->id, s->id, message, a->attempt, s->retry_attempts,
            (unsigned long long)wait);
    if (arm(a, wait, on_retry) == 0) {
      record_retry(a, agent, message, wait);
      return;
    }
  }
  fail(a, code, agent, "%s", message);
}

/* Refused before it reached anyone (the agent at its maxConcurrent, the
 * store busy): not a try. The call waits its turn, backing off up to
 * ROOM_CAP_MS between asks, within the step's timeout (or ROOM_WAIT_MS),
 * counted from the first refusal since the call was last answered: not
 * from the step's start, which for a run brought back after a restart
 * lies before the downtime (and for a retry, before the earlier tries). */
#define ROOM_CAP_MS 500
#define ROOM_WAIT_MS (10 * 60 * 1000)

static void wait_for_room(fl_active *a, const char *code, const char *agent,
                          const char *message) {
  const sb_flow_step *s = step_of(a);
  if (a->room_waits == 0) a->room_from_ms = (int64_t)sb_wall_ms();
  uint64_t waited = (uint64_t)((int64_t)sb_wall_ms() - a->room_from_ms);
  uint64_t limit = s->timeout_ms ? s->timeout_ms : ROOM_WAIT_MS;
  if (waited >= limit || a->run->e->stopping) {
    fail(a, code, agent, "%s (waited %llu ms for room)", message,
         (unsigned long long)waited);
    return;
  }
  uint64_t wait = 5;
  for (int i = 0; i < a->room_waits && wait < ROOM_CAP_MS; i++)
    wait *= 2;
  if (wait > ROOM_CAP_MS) wait = ROOM_CAP_MS;
  wait += (uint64_t)(sb_now_ms() % (wait / 2 + 1)); /* spread the askers */
  a->room_waits++;
  if (arm(a, wait, on_retry) != 0) fail(a, code, agent, "%s", message);
}

/* Give back the step's place among its tenant's calls in flight. */
static void call_release(fl_active *a) {
  const sb_flow_engine_options *o = &a->run->e->o;
  if (a->call_held && o->release_call)
    o->release_call(o->quota_ud, a->run->tenant);
  a->call_held = 0;
}

static void call_done(void *ud, const sb_gateway_result *res) {
  fl_active *a = ud;
  a->call = NULL;
  call_release(a);
  if (a->finished) return;
  const char *agent = res->agent;
  char msg[512];
  if (res->outcome == SB_GATEWAY_ANSWERED && res->result &&
      !json_is_true(json_object_get(res->result, "isError"))) {
    fl_change *c = change_new(FL_STEP_DONE);
    if (!c) return;
    c->value = result_value(res->result);
    c->agent = agent ? sb_strdup(agent) : NULL;
    c->projection_bytes = (size_t)fl_int(res->routing, "projectionBytes");
    c->handed_version = fl_int(res->routing, "contextVersion");
    if (res->routing) {
      c->routing = json_deep_copy(res->routing);
      /* said elsewhere in the event: who, and which context */
      json_object_del(c->routing, "agent");
      json_object_del(c->routing, "contextId");
      json_object_del(c->routing, "contextVersion");
    }
    c->duration_ms = (int64_t)sb_wall_ms() - a->started_ms;
    json_t *evs = json_object_get(json_object_get(res->result, "_meta"),
                                  SB_FLOW_META_EVENTS);
    if (json_is_array(evs)) c->events = json_deep_copy(evs);
    finish(a, c);
    return;
  }
  /* A code people and programs match on: the outcome, in snake_case. */
  char code[48];
  snprintf(code, sizeof code, "%s", sb_gateway_outcome_name(res->outcome));
  for (char *c = code; *c; c++)
    if (*c == ' ' || *c == '-') *c = '_';
  if (res->outcome == SB_GATEWAY_ANSWERED && res->error)
    snprintf(msg, sizeof msg, "agent %s answered with an error: %s", agent,
             fl_str(res->error, "message") ? fl_str(res->error, "message")
                                           : "(no message)");
  else if (res->outcome == SB_GATEWAY_ANSWERED)
    snprintf(msg, sizeof msg, "agent %s: the tool failed: %s", agent,
             result_text(res->result));
  else
    snprintf(msg, sizeof msg, "%s", res->message ? res->message : code);
  if (res->outcome == SB_GATEWAY_STOPPING ||
      res->outcome == SB_GATEWAY_CANCELLED)
    return; /* stopped by us: the run goes on after a restart */
  if (res->outcome == SB_GATEWAY_AT_CAPACITY ||
      res->outcome == SB_GATEWAY_BUSY) {
    wait_for_room(a, code, agent, msg);
    return;
  }
  a->room_waits = 0; /* answered: a retry waits for room afresh */
  retry_or_fail(a, code, agent, msg);
}

static void call_start(fl_active *a) {
  fl_run *r = a->run;
  /* A graceful stop is draining (sb_flow_engine_drain): a call sent now
   * would be cut off at the exit and sent again after the restart, so an
   * agent that does not honour the key would act twice. The try stays
   * due, not failed: its entry (and try number, record_retry) is in the
   * stored run, and the next start sends it. This is where a retry's
   * backoff and a wait for room end too (on_retry). */
  if (r->e->draining) return;
  const sb_flow_step *s = step_of(a);
  /* A place among the tenant's calls in flight first; none: wait. */
  const sb_flow_engine_options *eo = &r->e->o;
  char why[300];
  if (eo->hold_call &&
      eo->hold_call(eo->quota_ud, r->tenant, why, sizeof why)) {
    wait_for_room(a, "quota_exceeded", NULL, why);
    return;
  }
  a->call_held = eo->hold_call != NULL;
  sb_flow_scope scope = {
      .context = r->ctx, .run_id = r->id, .workflow = r->def->name};
  json_t *args = sb_flow_template(s->arguments, &scope);
  json_t *params = json_pack("{so}", "arguments", args ? args : json_object());
  char key[200];
  snprintf(key, sizeof key, "%s/%s/%d", r->id, s->id, a->key_visit);
  json_t *meta =
      json_pack("{sss{ssssss}}", SB_FLOW_META_KEY, key, SB_FLOW_META_RUN, "id",
                r->id, "workflow", r->def->name, "step", s->id);
  /* The starter's trace context (traceparent...), kept with the run. */
  json_t *trace = json_object_get(r->doc, "trace");
  if (meta && json_is_object(trace)) json_object_update(meta, trace);
  sb_gateway_call_options o = {.agent = s->agent,
                               .capability = s->capability,
                               .context_id = r->context_id,
                               .tenant = r->tenant,
                               .context_doc = r->ctx,
                               .meta = meta,
                               .method = "tools/call",
                               .name = s->tool,
                               .params = params,
                               .deadline_ms = s->timeout_ms,
                               .no_fallback = s->agent != NULL,
                               .on_done = call_done,
                               .ud = a};
  sb_error err = {0};
  sb_gateway_call *call = NULL;
  int rc = sb_gateway_call_start(r->e->o.gateway, &o, &call, &err);
  json_decref(params);
  json_decref(meta);
  if (rc != 0) call_release(a); /* on_done never runs */
  if (rc == SB_EBUSY) {
    wait_for_room(a, "busy", NULL, err.msg);
    return;
  }
  if (rc != 0) {
    retry_or_fail(a, rc == SB_ENOENT ? "no_agent" : "invalid", NULL, err.msg);
    return;
  }
  if (!a->finished) a->call = call;
}

/* ---- questions and events ------------------------------------------------ */

/* How often a wait whose deadline passed looks again while its events
 * are still being read from the log. */
#define WAIT_CATCH_UP_MS 10

static void on_deadline(uv_timer_t *t) {
  fl_active *a = t->data;
  const sb_flow_step *s = step_of(a);
  /* A run brought back after its wait's deadline: the event that came in
   * time may be in the part of the log still being read. The deadline
   * decides once it is read (on_event takes only what came in time). */
  if (s->kind == SB_FLOW_WAIT && a->sub && sb_events_sub_catching_up(a->sub)) {
    arm(a, WAIT_CATCH_UP_MS, on_deadline);
    return;
  }
  if (s->kind == SB_FLOW_ASK)
    fail(a, "timeout", NULL, "no answer to step %s within %llu ms", s->id,
         (unsigned long long)s->timeout_ms);
  else
    fail(a, "timeout", NULL, "no %s event for step %s within %llu ms",
         s->event_type, s->id, (unsigned long long)s->timeout_ms);
}

/* Every key of `where` equals the event data's value at that key (a
 * dotted path into the data). */
static int where_matches(const json_t *where, const json_t *data) {
  const char *k;
  json_t *want;
  json_object_foreach((json_t *)where, k, want) {
    const json_t *at = data;
    const char *s = k;
    while (at && *s) {
      const char *dot = strchr(s, '.');
      size_t n = dot ? (size_t)(dot - s) : strlen(s);
      at = json_object_getn(at, s, n);
      s = dot ? dot + 1 : s + n;
    }
    if (!at || !sb_ctx_json_equal(at, want)) return 0;
  }
  return 1;
}

static void on_event(void *ud, const sb_event *e) {
  fl_active *a = ud;
  if (a->finished) return;
  /* Read from the log after a restart: one that came after the deadline
   * is not the step's (its timeout is). */
  if (a->deadline_ms && e->created_ms > a->deadline_ms) return;
  json_t *data = json_loads(e->data, 0, NULL);
  if (!data) return;
  if (a->where && !where_matches(a->where, data)) {
    json_decref(data);
    return;
  }
  fl_change *c = change_new(FL_STEP_DONE);
  if (!c) {
    json_decref(data);
    return;
  }
  c->value = data;
  finish(a, c);
}

static void on_sub_error(void *ud, const sb_error *err) {
  fl_active *a = ud;
  fail(a, "events", NULL, "waiting for events failed: %s", err->msg);
}

static void wait_start(fl_active *a) {
  const sb_flow_step *s = step_of(a);
  const char *types[] = {s->event_type};
  sb_events_filter f = {.types = types, .ntypes = 1};
  sb_error err = {0};
  a->sub = sb_events_subscribe(a->run->e->o.events, a->run->tenant, a->since,
                               &f, on_event, on_sub_error, a, &err);
  if (!a->sub) fail(a, "events", NULL, "cannot wait for events: %s", err.msg);
}

/* ---- keeping memory in step with the stored run -------------------------- */

static void start(fl_run *r, const json_t *entry) {
  int k = sb_flow_def_step(r->def, fl_str(entry, "step"));
  if (k == SB_FLOW_NONE) return;
  fl_active *a = sb_calloc(1, sizeof *a);
  fl_active **list = sb_realloc(r->active, (r->nactive + 1) * sizeof *list);
  if (!a || !list) {
    sb_free(a);
    if (list) r->active = list;
    return;
  }
  r->active = list;
  r->active[r->nactive++] = a;
  a->run = r;
  a->step = k;
  a->visit = (int)fl_int(entry, "visit");
  a->attempt = 1;
  /* tries a run brought back had made already (record_retry) */
  if (fl_int(entry, "attempt") > 1) a->attempt = (int)fl_int(entry, "attempt");
  a->started_ms = fl_int(entry, "startedAt");
  a->key_visit = fl_int(entry, "keyVisit") > 0 ? (int)fl_int(entry, "keyVisit")
                                               : a->visit;
  a->deadline_ms = fl_int(entry, "deadline");
  a->par_deadline_ms = fl_int(entry, "parallelDeadline");
  json_t *since = json_object_get(entry, "since");
  a->since = since && json_integer_value(since) >= 0 ? json_integer_value(since)
                                                     : r->last_seq;
  a->where = json_incref(json_object_get(entry, "where"));
  const sb_flow_step *s = &r->def->steps[k];
  /* The context's permissions, against the scopes the run started with,
   * as they stand now: a change since stops the run here. */
  const sb_flow_engine_options *eo = &r->e->o;
  json_t *scopes =
      json_object_get(json_object_get(r->doc, "principal"), "scopes");
  sb_error perr = {0};
  if (scopes && eo->step_permitted &&
      eo->step_permitted(eo->quota_ud, scopes, r->ctx, &perr) != 0) {
    fail(a, "forbidden", NULL, "%s (the run's starter lacks it)", perr.msg);
    return;
  }
  if (a->deadline_ms) arm(a, ms_until(a->deadline_ms), on_deadline);
  if (a->par_deadline_ms) arm_par(a);
  if (s->kind == SB_FLOW_CALL)
    call_start(a);
  else if (s->kind == SB_FLOW_WAIT)
    wait_start(a);
  /* ask: waits for sb_flow_run_answer (or its deadline) */
}

void fl_steps_sync(fl_run *r) {
  json_t *want = json_object_get(r->doc, "active");
  /* Stop what is no longer active. */
  for (size_t i = r->nactive; i-- > 0;) {
    fl_active *a = r->active[i];
    const char *id = r->def->steps[a->step].id;
    int keep = 0;
    size_t j;
    json_t *e;
    json_array_foreach(want, j, e) {
      keep |=
          strcmp(fl_str(e, "step"), id) == 0 && fl_int(e, "visit") == a->visit;
    }
    if (keep) continue;
    memmove(&r->active[i], &r->active[i + 1],
            (r->nactive - i - 1) * sizeof *r->active);
    r->nactive--;
    active_free(a);
  }
  /* Start what is new, unless a cancellation waits its turn to be
   * written: "its steps stop now" (sb_flow_run_cancel), and a step started
   * by the change written before it would call its agent after the run
   * was cancelled. Should the cancellation not be written, the steps
   * start then (fl_steps_sync again). */
  for (fl_change *c = r->queue; c; c = c->next)
    if (c->kind == FL_CANCEL) return;
  /* Nor while a graceful stop drains (sb_flow_engine_drain): the steps a
   * transition written now made active (the step after one that ended in
   * the drain, a parallel's branches, an on_failure step, a run started
   * or resumed just before) stay active in the stored run, and start at
   * the next start as after a crash, with the same keys and deadlines;
   * started here, a call would be cut off at the exit and sent again. */
  if (r->e->draining) return;
  size_t j;
  json_t *e;
  json_array_foreach(want, j, e) {
    int k = sb_flow_def_step(r->def, fl_str(e, "step"));
    if (k != SB_FLOW_NONE && fl_active_index(r, k, (int)fl_int(e, "visit")) < 0)
      start(r, e);
  }
}

void fl_steps_stop_all(fl_run *r) {
  for (size_t i = 0; i < r->nactive; i++)
    active_free(r->active[i]);
  sb_free(r->active);
  r->active = NULL;
  r->nactive = 0;
}

/* An answer to ask step `step` (visit) was not written: the question is
 * open again (its deadline, if it passed meanwhile, fires now). */
static void reopen(fl_run *r, int step, int visit) {
  int i = fl_active_index(r, step, visit);
  if (i < 0) return;
  fl_active *a = r->active[i];
  a->finished = 0;
  /* A deadline that fired while the answer was written was ignored. */
  if (a->deadline_ms && (int64_t)sb_wall_ms() >= a->deadline_ms &&
      !(a->timer && uv_is_active((uv_handle_t *)a->timer)))
    arm(a, 0, on_deadline);
  if (a->par_deadline_ms && (int64_t)sb_wall_ms() >= a->par_deadline_ms &&
      !(a->par_timer && uv_is_active((uv_handle_t *)a->par_timer)))
    arm_par(a);
}

/* 1 if a change of step `a` (its end) waits in the run's queue. */
static int end_queued(const fl_run *r, const fl_active *a) {
  for (const fl_change *c = r->queue; c; c = c->next)
    if ((c->kind == FL_STEP_DONE || c->kind == FL_STEP_FAILED) &&
        c->step == a->step && c->visit == a->visit)
      return 1;
  return 0;
}

void fl_steps_revive(fl_run *r) {
  /* Another cancellation waits its turn: its steps stay stopped for it. */
  for (const fl_change *c = r->queue; c; c = c->next)
    if (c->kind == FL_CANCEL) return;
  for (size_t i = r->nactive; i-- > 0;) {
    fl_active *a = r->active[i];
    if (!a->finished || end_queued(r, a)) continue;
    const sb_flow_step *s = step_of(a);
    if (s->kind == SB_FLOW_ASK) { /* it can be answered again */
      reopen(r, a->step, a->visit);
      continue;
    }
    if (s->kind == SB_FLOW_CALL &&
        (a->call || (a->timer && uv_is_active((uv_handle_t *)a->timer)))) {
      a->finished = 0; /* its answer, or its next try, is still to come */
      continue;
    }
    /* Its end went by while it was stopped (a call answered, an event
     * came, and were ignored): it starts again below from its stored
     * entry, as after a restart (the same visit, so the same idempotency
     * key; a wait reads the log again from its seq). */
    memmove(&r->active[i], &r->active[i + 1],
            (r->nactive - i - 1) * sizeof *r->active);
    r->nactive--;
    active_free(a);
  }
  fl_steps_sync(r);
}

int sb_flow_answer_check(const char *step, const json_t *schema,
                         const json_t *answer, sb_error *err) {
  const char *type = fl_str(schema, "type");
  if (type && strcmp(type, "object") == 0 && !json_is_object(answer))
    return sb_error_set(err, SB_EINVAL,
                        "answer: step %s expects an object (its schema)", step);
  /* The whole schema, not its type alone: an answer without a required
   * field, or with a number where the schema says string, would be saved
   * into the context and handed to the steps after it as if it fitted. */
  sb_error serr = {0};
  if (schema && sb_llm_schema_check(schema, answer, &serr) != 0)
    return sb_error_set(err, SB_EINVAL,
                        "answer: does not match step %s's schema: %s", step,
                        serr.msg);
  return 0;
}

/* The answer to an ask step: a change for the run. */
int fl_steps_answer(fl_run *r, const char *step, const json_t *answer,
                    sb_flow_cb cb, void *ud, sb_error *err) {
  fl_active *found = NULL;
  for (size_t i = 0; i < r->nactive; i++) {
    fl_active *a = r->active[i];
    const sb_flow_step *s = step_of(a);
    if (s->kind != SB_FLOW_ASK || a->finished) continue;
    if (step && strcmp(step, s->id) != 0) continue;
    if (found)
      return sb_error_set(err, SB_EINVAL,
                          "step: run %s waits for answers at several steps; "
                          "name one",
                          r->id);
    found = a;
  }
  if (!found && step) {
    int k = sb_flow_def_step(r->def, step);
    if (k == SB_FLOW_NONE || r->def->steps[k].kind != SB_FLOW_ASK)
      return sb_error_set(err, SB_EINVAL,
                          "step: workflow %s has no ask step %.64s",
                          r->def->name, step);
  }
  if (!found)
    return sb_error_set(err, SB_ESTATE,
                        "run %s is not waiting for an answer%s%s", r->id,
                        step ? " at step " : "", step ? step : "");
  const sb_flow_step *s = step_of(found);
  int rc = sb_flow_answer_check(s->id, s->schema, answer, err);
  if (rc != 0) return rc;
  fl_change *c = change_new(FL_STEP_DONE);
  if (!c || !(c->value = json_deep_copy(answer))) {
    fl_change_free(c);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  c->cb = cb;
  c->ud = ud;
  finish(found, c);
  return 0;
}

/* The context refused a step's end (a result or answer that does not fit
 * its schema: an object saved where it holds a string, a key its section
 * does not have; or one that would make it larger than contexts.max_bytes).
 * Dropped like any failed write, the step would be over in memory and still
 * under way in the store: the run would wait for ever, and a question could not
 * be answered again. Instead an answer is refused (its caller is told why) and
 * the question stays open; a call's result or an event waited for fails the
 * step (code "unsaved"), so the run goes to on_failure or fails, saying what
 * the context refused. 1 when the change at the head of the queue became that
 * failure (written next), 0 when it is to be answered with the error and
 * dropped. */
int fl_steps_refused(fl_run *r, int rc, const sb_error *err) {
  fl_change *c = r->queue;
  /* A failure or cancellation the context has no room to record: written
   * again without its data.workflow.errors entry, so the run still moves
   * on or ends (dropped, it stayed running for good, and came back to the
   * same end at each restart). The run's error and the events say why. A
   * failure whose on_failure handoff does not fit either (the steps it
   * leads to write the context) fails the run at the step. */
  if (rc == SB_ETOOBIG && c->lean == FL_LEAN_NO &&
      (c->kind == FL_STEP_FAILED || c->kind == FL_CANCEL)) {
    SB_WARN(FL_MODULE,
            "run %s: the context has no room to record the %s in "
            "data.workflow.errors (%s); it is recorded on the run alone",
            r->id, c->kind == FL_CANCEL ? "cancellation" : "step's failure",
            err && *err->msg ? err->msg : sb_strerror(rc));
    c->lean = FL_LEAN_NO_ENTRY;
    return 1;
  }
  if (rc == SB_ETOOBIG && c->lean == FL_LEAN_NO_ENTRY &&
      c->kind == FL_STEP_FAILED) {
    const sb_flow_step *s = &r->def->steps[c->step];
    char *m = sb_asprintf("%s; its on_failure was not taken: the context "
                          "has no room left (contexts.max_bytes)",
                          c->message ? c->message : "failed");
    if (!m) return 0;
    SB_WARN(FL_MODULE,
            "run %s: step %s failed and the context has no room for what "
            "its on_failure writes (%s); the run fails there",
            r->id, s->id, err && *err->msg ? err->msg : sb_strerror(rc));
    sb_free(c->message);
    c->message = m;
    c->lean = FL_LEAN_NO_HANDOFF;
    return 1;
  }
  if ((rc != SB_EINVAL && rc != SB_ETOOBIG) || c->kind != FL_STEP_DONE)
    return 0;
  const sb_flow_step *s = &r->def->steps[c->step];
  if (s->kind == SB_FLOW_ASK) {
    reopen(r, c->step, c->visit);
    return 0;
  }
  char msg[sizeof err->msg + 100];
  snprintf(msg, sizeof msg, "step %s: the context refused its %s: %s", s->id,
           s->kind == SB_FLOW_WAIT ? "event" : "result",
           err && *err->msg ? err->msg : sb_strerror(rc));
  char *m = sb_strdup(msg), *code = sb_strdup("unsaved");
  if (!m || !code) {
    sb_free(m);
    sb_free(code);
    return 0;
  }
  SB_WARN(FL_MODULE, "run %s: %s", r->id, msg);
  json_decref(c->value);
  c->value = NULL;
  json_decref(c->events); /* an agent's events go with a result saved */
  c->events = NULL;
  sb_free(c->message);
  sb_free(c->code);
  c->message = m;
  c->code = code;
  c->kind = FL_STEP_FAILED;
  return 1;
}
