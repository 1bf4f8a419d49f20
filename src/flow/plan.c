/* plan.c: one change of a run, as the one transaction that records it.
 *
 * A plan starts from the run's stored state and the context as the run
 * last saw it, and applies the change to copies of both: the step that
 * ended leaves the active list and enters the history, its result is
 * saved, the run advances (through branch, emit and end steps at once, up
 * to the next steps that wait on someone), and every event is listed.
 * The context's side is kept twice: as the JSON Patch the context manager
 * applies to the stored head, and applied to the copy (so a branch sees
 * the result just saved). Nothing of the run in memory changes until the
 * transaction is durable; if the context moved meanwhile, the plan is
 * made again from the new head, and if the run's own row did (another
 * process wrote it), from the row as stored.
 */
#include <string.h>

#include "flow/run_internal.h"

typedef struct plan {
  fl_run *r;
  json_t *doc;    /* the run's next state */
  json_t *ops;    /* JSON Patch on the context */
  json_t *ctx;    /* the context with ops applied */
  json_t *events; /* [{type, data}] */
  int64_t now;
  int64_t version; /* the context version this transaction makes */
  int chained;     /* steps advance() executed: at SB_FLOW_CHAIN_STEPS (or
                      SB_FLOW_CHAIN_US) the chain is cut (continueAt) */
  uint64_t started_ns; /* when planning began (uv_hrtime) */
  size_t deferred; /* FL_CONTINUE: chains still to go on in this plan */
} plan;

const char *fl_str(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}

int64_t fl_int(const json_t *obj, const char *key) {
  return (int64_t)json_integer_value(json_object_get(obj, key));
}

/* ---- the context side --------------------------------------------------- */

static void op_add(plan *p, const char *op, const char *ptr, json_t *value) {
  json_t *o = json_pack("{ssss}", "op", op, "path", ptr);
  if (value) json_object_set_new(o, "value", json_deep_copy(value));
  json_array_append_new(p->ops, o);
}

/* Set data.<path> (keys joined by dots; the loader checked them) to value
 * (borrowed), making the objects on the way. */
static void ctx_set(plan *p, const char *path, json_t *value) {
  sb_buf ptr = SB_BUF_INIT;
  sb_buf_append_str(&ptr, "/data");
  json_t *at = json_object_get(p->ctx, "data");
  const char *s = path;
  for (;;) {
    const char *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : strlen(s);
    char *key = sb_strndup(s, n);
    sb_ctx_ptr_append(&ptr, s, n);
    sb_buf_append(&ptr, "", 1);
    ptr.len--;
    if (!dot) {
      op_add(p, "add", ptr.data, value ? value : json_null());
      json_object_set_new(at, key, value ? json_deep_copy(value) : json_null());
      sb_free(key);
      break;
    }
    json_t *next = json_object_get(at, key);
    if (!json_is_object(next)) {
      next = json_object();
      op_add(p, "add", ptr.data, next);
      json_object_set_new(at, key, next);
    }
    sb_free(key);
    at = next;
    s = dot + 1;
  }
  sb_buf_free(&ptr);
}

static json_t *workflow_part(plan *p) {
  return json_object_get(json_object_get(p->ctx, "data"), "workflow");
}

/* Append to data.workflow.<array>. */
static void wf_push(plan *p, const char *array, json_t *value) {
  char ptr[64];
  snprintf(ptr, sizeof ptr, "/data/workflow/%s/-", array);
  op_add(p, "add", ptr, value);
  json_array_append_new(json_object_get(workflow_part(p), array),
                        json_deep_copy(value));
  json_decref(value);
}

static void wf_current(plan *p, const char *step) {
  json_t *v = json_string(step);
  op_add(p, "replace", "/data/workflow/currentStep", v);
  json_object_set_new(workflow_part(p), "currentStep", v);
}

static void record_agent(plan *p, const char *agent) {
  json_t *agents =
      json_object_get(json_object_get(p->ctx, "metadata"), "agents");
  size_t i;
  json_t *v;
  json_array_foreach(agents, i,
                     v) if (strcmp(json_string_value(v), agent) == 0) return;
  json_t *a = json_string(agent);
  op_add(p, "add", "/metadata/agents/-", a);
  json_array_append_new(agents, a);
}

/* ---- events and the run's state ------------------------------------------ */

static void event(plan *p, const char *type, json_t *data) {
  json_array_append_new(p->events, json_pack("{ssso}", "type", type, "data",
                                             data ? data : json_object()));
}

static void event_t(plan *p, sb_event_type t, json_t *data) {
  event(p, sb_event_type_name(t), data);
}

static json_t *history(plan *p) { return json_object_get(p->doc, "history"); }
static json_t *actives(plan *p) { return json_object_get(p->doc, "active"); }
/* The steps cut chains go on at (none: absent or empty). */
static size_t pending(plan *p) {
  return json_array_size(json_object_get(p->doc, "continueAt"));
}
static const sb_flow_step *step_at(plan *p, int i) {
  return &p->r->def->steps[i];
}

static json_t *hist_entry(plan *p, const sb_flow_step *s, int64_t visit,
                          const char *status, int64_t started) {
  json_t *h = json_pack(
      "{sssIsssIsIsI}", "step", s->id, "visit", (json_int_t)visit, "status",
      status, "startedAt", (json_int_t)(started ? started : p->now), "endedAt",
      (json_int_t)p->now, "contextVersion", (json_int_t)p->version);
  json_array_append_new(history(p), h);
  return h;
}

static void set_status(plan *p, sb_flow_status st) {
  json_object_set_new(p->doc, "status", json_string(sb_flow_status_name(st)));
}

static sb_flow_status status_of(plan *p) {
  return sb_flow_status_of(fl_str(p->doc, "status"));
}

static int terminal(sb_flow_status st) {
  return st == SB_FLOW_COMPLETED || st == SB_FLOW_FAILED ||
         st == SB_FLOW_CANCELLED;
}

static void fail_run(plan *p, const char *step, const char *message,
                     json_t *stopped) {
  set_status(p, SB_FLOW_FAILED);
  json_object_set_new(p->doc, "error",
                      json_pack("{ssss}", "step", step, "message", message));
  json_object_set_new(p->doc, "stopped", stopped ? stopped : json_array());
  json_array_clear(actives(p));
  json_object_del(p->doc, "continueAt");
  event_t(p, SB_EVENT_RUN_FAILED,
          json_pack("{ssss}", "step", step, "message", message));
}

static sb_flow_scope scope_of(plan *p) {
  return (sb_flow_scope){
      .context = p->ctx, .run_id = p->r->id, .workflow = p->r->def->name};
}

/* The step at index i starts: into the active list. */
static void activate(plan *p, int i) {
  const sb_flow_step *s = step_at(p, i);
  json_t *visits = json_object_get(p->doc, "visits");
  int64_t visit = fl_int(visits, s->id) + 1;
  json_object_set_new(visits, s->id, json_integer((json_int_t)visit));
  json_t *a = json_pack("{sssIsIss}", "step", s->id, "visit", (json_int_t)visit,
                        "startedAt", (json_int_t)p->now, "kind",
                        sb_flow_step_kind_name(s->kind));
  if ((s->kind == SB_FLOW_ASK || s->kind == SB_FLOW_WAIT) && s->timeout_ms)
    json_object_set_new(
        a, "deadline",
        json_integer((json_int_t)(p->now + (int64_t)s->timeout_ms)));
  /* The parallel step's timeout bounds each of its branches, stored with
   * them so that a run brought back after a crash keeps it. */
  if (s->parent != SB_FLOW_NONE && step_at(p, s->parent)->timeout_ms)
    json_object_set_new(
        a, "parallelDeadline",
        json_integer((json_int_t)(p->now + (int64_t)step_at(p, s->parent)
                                               ->timeout_ms)));
  if (s->kind == SB_FLOW_ASK) {
    json_object_set_new(a, "message", json_string(s->message));
    if (s->schema) json_object_set(a, "schema", s->schema);
  }
  if (s->kind == SB_FLOW_WAIT) {
    sb_flow_scope sc = scope_of(p);
    json_object_set_new(a, "event", json_string(s->event_type));
    json_object_set_new(a, "since", json_integer(-1));
    if (s->where)
      json_object_set_new(a, "where", sb_flow_template(s->where, &sc));
  }
  json_array_append_new(actives(p), a);
  json_t *started =
      json_pack("{sssIss}", "step", s->id, "visit", (json_int_t)visit, "kind",
                sb_flow_step_kind_name(s->kind));
  /* A question travels with its step: whoever follows the run can ask. */
  if (s->kind == SB_FLOW_ASK) {
    json_object_set_new(started, "message", json_string(s->message));
    if (s->schema) json_object_set(started, "schema", s->schema);
  }
  event_t(p, SB_EVENT_STEP_STARTED, started);
}

/* Count one more step against the budget; 0 when it is spent. */
static int budget(plan *p, const sb_flow_step *s) {
  int64_t n = fl_int(p->doc, "stepsRun") + 1;
  json_object_set_new(p->doc, "stepsRun", json_integer((json_int_t)n));
  if (n <= p->r->def->max_steps) return 1;
  char msg[200];
  snprintf(msg, sizeof msg,
           "the run has executed its budget of %d steps (max_steps): does "
           "the workflow loop?",
           p->r->def->max_steps);
  fail_run(p, s->id, msg, NULL);
  return 0;
}

/* Go on at step i (SB_FLOW_NONE: the end), through the steps that need
 * no one, up to those that do. */
static void advance(plan *p, int i) {
  for (;;) {
    if (i == SB_FLOW_NONE) {
      if (json_array_size(actives(p)) == 0 && !pending(p) && !p->deferred) {
        set_status(p, SB_FLOW_COMPLETED);
        event_t(p, SB_EVENT_RUN_COMPLETED, json_object());
      }
      return;
    }
    const sb_flow_step *s = step_at(p, i);
    if (p->chained >= SB_FLOW_CHAIN_STEPS ||
        (p->chained && p->chained % SB_FLOW_CHAIN_CHECK == 0 &&
         uv_hrtime() - p->started_ns > (uint64_t)SB_FLOW_CHAIN_US * 1000)) {
      /* Enough for one transition: the rest goes on after it is written
       * (fl_plan_go_on), on a later turn of the loop. */
      json_t *at = json_object_get(p->doc, "continueAt");
      if (!json_is_array(at)) {
        at = json_array();
        json_object_set_new(p->doc, "continueAt", at);
      }
      json_array_append_new(at, json_string(s->id));
      return;
    }
    if (!budget(p, s)) return;
    p->chained++;
    json_t *visits = json_object_get(p->doc, "visits");
    int64_t visit;
    switch (s->kind) {
    case SB_FLOW_BRANCH: {
      sb_flow_scope sc = scope_of(p);
      int to = SB_FLOW_NONE, matched = 0;
      for (size_t k = 0; k < s->ncases && !matched; k++)
        if (sb_flow_cond_eval(&s->cases[k].cond, &sc)) {
          to = s->cases[k].target;
          matched = 1;
        }
      if (!matched) to = s->otherwise != SB_FLOW_NONE ? s->otherwise : s->next;
      visit = fl_int(visits, s->id) + 1;
      json_object_set_new(visits, s->id, json_integer((json_int_t)visit));
      json_t *h = hist_entry(p, s, visit, "completed", 0);
      json_object_set_new(h, "to",
                          to == SB_FLOW_NONE ? json_null()
                                             : json_string(step_at(p, to)->id));
      wf_push(p, "completedSteps", json_string(s->id));
      i = to;
      continue;
    }
    case SB_FLOW_EMIT: {
      sb_flow_scope sc = scope_of(p);
      json_t *data =
          s->event_data ? sb_flow_template(s->event_data, &sc) : json_object();
      if (!json_is_object(data)) {
        json_t *wrapped = json_pack("{so}", "value", data);
        data = wrapped;
      }
      event(p, s->event_type, data);
      visit = fl_int(visits, s->id) + 1;
      json_object_set_new(visits, s->id, json_integer((json_int_t)visit));
      hist_entry(p, s, visit, "completed", 0);
      wf_push(p, "completedSteps", json_string(s->id));
      i = s->next;
      continue;
    }
    case SB_FLOW_END:
      visit = fl_int(visits, s->id) + 1;
      json_object_set_new(visits, s->id, json_integer((json_int_t)visit));
      hist_entry(p, s, visit, "completed", 0);
      wf_push(p, "completedSteps", json_string(s->id));
      json_array_clear(actives(p));
      json_object_del(p->doc, "continueAt");
      if (s->end_failed) {
        const char *m = s->end_message ? s->end_message
                                       : "the workflow ended "
                                         "as failed";
        char ts[32];
        sb_time_format(p->now, ts);
        wf_push(p, "errors",
                json_pack("{ssssssss}", "step", s->id, "message", m,
                          "timestamp", ts, "code", "end"));
        fail_run(p, s->id, m, NULL);
      } else {
        set_status(p, SB_FLOW_COMPLETED);
        event_t(p, SB_EVENT_RUN_COMPLETED, json_pack("{ss}", "step", s->id));
      }
      return;
    case SB_FLOW_PARALLEL:
      for (size_t k = 0; k < s->nbranches; k++)
        activate(p, s->branches[k]);
      return;
    default: activate(p, i); return;
    }
  }
}

/* ---- the changes --------------------------------------------------------- */

static int find_active(plan *p, const char *step, int64_t visit) {
  size_t i;
  json_t *a;
  json_array_foreach(actives(p), i, a) {
    if (strcmp(fl_str(a, "step"), step) == 0 && fl_int(a, "visit") == visit)
      return (int)i;
  }
  return -1;
}

/* Remove the other active steps of the parallel step `parent`. */
static void drop_siblings(plan *p, int parent) {
  for (size_t i = json_array_size(actives(p)); i-- > 0;) {
    int k = sb_flow_def_step(p->r->def,
                             fl_str(json_array_get(actives(p), i), "step"));
    if (k != SB_FLOW_NONE && step_at(p, k)->parent == parent)
      json_array_remove(actives(p), i);
  }
}

static int siblings_left(plan *p, int parent) {
  size_t i;
  json_t *a;
  json_array_foreach(actives(p), i, a) {
    int k = sb_flow_def_step(p->r->def, fl_str(a, "step"));
    if (k != SB_FLOW_NONE && step_at(p, k)->parent == parent) return 1;
  }
  return 0;
}

/* Agents' own events, as far as they are well formed. */
static void agent_events(plan *p, const fl_change *c) {
  size_t i;
  json_t *e;
  json_array_foreach(c->events, i, e) {
    const char *type = fl_str(e, "type");
    json_t *data = json_object_get(e, "data");
    if (!sb_event_type_publishable(type) || (data && !json_is_object(data))) {
      SB_WARN(FL_MODULE,
              "run %s: agent %s published a malformed event "
              "(type %s): dropped",
              p->r->id, c->agent ? c->agent : "?", type ? type : "(none)");
      continue;
    }
    json_t *d = data ? json_deep_copy(data) : json_object();
    if (c->agent) json_object_set_new(d, "publishedBy", json_string(c->agent));
    event(p, type, d);
  }
}

/* The part of a result a save mapping names (keys joined by '.'; "" the
 * whole result); NULL if the result has no such part. Borrowed. */
static json_t *result_part(json_t *result, const char *keys) {
  json_t *at = result;
  while (*keys && at) {
    const char *dot = strchr(keys, '.');
    size_t n = dot ? (size_t)(dot - keys) : strlen(keys);
    at = json_object_getn(at, keys, n);
    keys += n + (dot != NULL);
  }
  return at;
}

/* Save a step's result: at its path, or each part its mapping names at
 * that part's path (a part the result lacks is not saved). */
static void save_result(plan *p, const sb_flow_step *s, json_t *value) {
  if (s->save) ctx_set(p, s->save, value);
  const char *path;
  json_t *keys;
  json_object_foreach(s->save_map, path, keys) {
    json_t *part = result_part(value, json_string_value(keys));
    if (part) ctx_set(p, path, part);
  }
}

static void step_done(plan *p, const fl_change *c, json_t *entry) {
  const sb_flow_step *s = step_at(p, c->step);
  json_t *h =
      hist_entry(p, s, c->visit, "completed", fl_int(entry, "startedAt"));
  save_result(p, s, c->value);
  wf_push(p, "completedSteps", json_string(s->id));
  json_t *data =
      json_pack("{sssIsI}", "step", s->id, "visit", (json_int_t)c->visit,
                "contextVersion", (json_int_t)p->version);
  if (c->agent) {
    json_object_set_new(h, "agent", json_string(c->agent));
    json_object_set_new(data, "agent", json_string(c->agent));
    if (c->handed_version > 0)
      json_object_set_new(data, "handedVersion",
                          json_integer((json_int_t)c->handed_version));
    if (c->routing) json_object_set(data, "routing", c->routing);
    if (c->duration_ms >= 0)
      json_object_set_new(data, "durationMs", json_integer(c->duration_ms));
    record_agent(p, c->agent);
    const char *last = fl_str(p->doc, "lastAgent");
    if (last && strcmp(last, c->agent) != 0)
      event_t(p, SB_EVENT_AGENT_HANDOFF,
              json_pack("{sssssssIsI}", "from", last, "to", c->agent, "step",
                        s->id, "contextVersion", (json_int_t)c->handed_version,
                        "projectionBytes", (json_int_t)c->projection_bytes));
    json_object_set_new(p->doc, "lastAgent", json_string(c->agent));
  }
  if (c->attempts > 1)
    json_object_set_new(h, "attempts", json_integer(c->attempts));
  event_t(p, SB_EVENT_STEP_COMPLETED, data);
  agent_events(p, c);
  if (s->parent != SB_FLOW_NONE) {
    if (siblings_left(p, s->parent)) return;
    const sb_flow_step *par = step_at(p, s->parent);
    int64_t visit = fl_int(json_object_get(p->doc, "visits"), par->id) + 1;
    json_object_set_new(json_object_get(p->doc, "visits"), par->id,
                        json_integer((json_int_t)visit));
    hist_entry(p, par, visit, "completed", 0);
    wf_push(p, "completedSteps", json_string(par->id));
    advance(p, par->next);
    return;
  }
  advance(p, s->next);
}

static void step_failed(plan *p, const fl_change *c, json_t *entry) {
  const sb_flow_step *s = step_at(p, c->step);
  json_t *h = hist_entry(p, s, c->visit, "failed", fl_int(entry, "startedAt"));
  json_object_set_new(h, "error", json_string(c->message));
  if (c->agent) json_object_set_new(h, "agent", json_string(c->agent));
  if (c->attempts > 1)
    json_object_set_new(h, "attempts", json_integer(c->attempts));
  char ts[32];
  sb_time_format(p->now, ts);
  json_t *werr =
      json_pack("{ssssssss}", "step", s->id, "message", c->message, "timestamp",
                ts, "code", c->code ? c->code : "failed");
  if (c->agent) json_object_set_new(werr, "agentId", json_string(c->agent));
  wf_push(p, "errors", werr);
  event_t(p, SB_EVENT_STEP_FAILED,
          json_pack("{sssIssss}", "step", s->id, "visit", (json_int_t)c->visit,
                    "message", c->message, "code",
                    c->code ? c->code : "failed"));
  /* The agent answered (with an error, or a result the context refused):
   * its step failed, the agent did not. */
  if (c->agent && c->code && strcmp(c->code, "answered") != 0 &&
      strcmp(c->code, "unsaved") != 0)
    event_t(p, SB_EVENT_AGENT_FAILED,
            json_pack("{ssssssss}", "agent", c->agent, "step", s->id, "outcome",
                      c->code, "message", c->message));
  int target = s->on_failure;
  const char *failed_id = s->id;
  if (s->parent != SB_FLOW_NONE) {
    drop_siblings(p, s->parent);
    const sb_flow_step *par = step_at(p, s->parent);
    hist_entry(p, par, fl_int(json_object_get(p->doc, "visits"), par->id),
               "failed", 0);
    target = par->on_failure;
    failed_id = par->id;
  }
  if (target != SB_FLOW_NONE) {
    advance(p, target);
    return;
  }
  fail_run(p, failed_id, c->message, json_pack("[s]", failed_id));
  /* How the step failed, as the step.failed event says it. */
  json_object_set_new(json_object_get(p->doc, "error"), "code",
                      json_string(c->code ? c->code : "failed"));
}

/* What the change does to the plan; 0, or SB_ESTATE when it no longer
 * applies (the step it is about is not active any more, or the run has
 * ended: a cancel queued behind the change that completed the run). */
static int apply(plan *p, fl_change *c) {
  sb_flow_def *def = p->r->def;
  switch (c->kind) {
  case FL_START: {
    event_t(p, SB_EVENT_RUN_STARTED,
            json_pack("{ssss}", "workflow", def->name, "contextId",
                      p->r->context_id));
    json_t *vars =
        json_object_get(json_object_get(p->doc, "input"), "variables");
    const char *k;
    json_t *v;
    json_object_foreach(vars, k, v) {
      char *path = sb_asprintf("workflow.variables.%s", k);
      if (path && !strchr(k, '.')) ctx_set(p, path, v);
      sb_free(path);
    }
    json_t *from = json_object_get(p->doc, "startAt");
    if (json_array_size(from)) {
      size_t i;
      json_t *id;
      json_array_foreach(from, i, id) {
        int k2 = sb_flow_def_step(def, json_string_value(id));
        if (k2 == SB_FLOW_NONE) continue;
        if (def->steps[k2].parent != SB_FLOW_NONE)
          activate(p, k2);
        else
          advance(p, k2);
      }
      if (!json_array_size(actives(p)) && !pending(p) &&
          !terminal(status_of(p)))
        advance(p, SB_FLOW_NONE);
    } else {
      advance(p, def->nsteps ? 0 : SB_FLOW_NONE);
    }
    json_object_del(p->doc, "startAt");
    return 0;
  }
  case FL_STEP_DONE:
  case FL_STEP_FAILED: {
    const sb_flow_step *s = &def->steps[c->step];
    int at = find_active(p, s->id, c->visit);
    if (at < 0) return SB_ESTATE;
    json_t *entry = json_incref(json_array_get(actives(p), (size_t)at));
    json_array_remove(actives(p), (size_t)at);
    if (c->kind == FL_STEP_DONE)
      step_done(p, c, entry);
    else
      step_failed(p, c, entry);
    json_decref(entry);
    return 0;
  }
  case FL_STEP_RETRY: {
    const sb_flow_step *s = &def->steps[c->step];
    int at = find_active(p, s->id, c->visit);
    if (at < 0) return SB_ESTATE;
    json_object_set_new(json_array_get(actives(p), (size_t)at), "attempt",
                        json_integer(c->attempts));
    json_t *data = json_pack(
        "{sssIsisisssI}", "step", s->id, "visit", (json_int_t)c->visit,
        "attempt", c->attempts, "attempts", s->retry_attempts, "message",
        c->message ? c->message : "", "retryInMs",
        (json_int_t)c->retry_in_ms);
    if (c->agent) json_object_set_new(data, "agent", json_string(c->agent));
    event_t(p, SB_EVENT_STEP_RETRYING, data);
    return 0;
  }
  case FL_CANCEL: {
    /* The run stays in memory while changes queued behind its end are
     * answered; an end already written (and acknowledged) stands. */
    if (terminal(status_of(p))) return SB_ESTATE;
    json_t *stopped = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(actives(p), i, a) {
      int k = sb_flow_def_step(def, fl_str(a, "step"));
      int top = k != SB_FLOW_NONE && def->steps[k].parent != SB_FLOW_NONE
                    ? def->steps[k].parent
                    : k;
      const char *id =
          top != SB_FLOW_NONE ? def->steps[top].id : fl_str(a, "step");
      int dup = 0;
      size_t j;
      json_t *x;
      json_array_foreach(stopped, j, x) dup |=
          strcmp(json_string_value(x), id) == 0;
      if (!dup) json_array_append_new(stopped, json_string(id));
    }
    /* A cut chain stops where it would have gone on (a resume goes on
     * there). */
    json_array_foreach(json_object_get(p->doc, "continueAt"), i, a)
        json_array_append(stopped, a);
    json_object_del(p->doc, "continueAt");
    json_array_clear(actives(p));
    set_status(p, SB_FLOW_CANCELLED);
    json_object_set_new(p->doc, "stopped", stopped);
    char ts[32];
    sb_time_format(p->now, ts);
    const char *cur = fl_str(workflow_part(p), "currentStep");
    wf_push(p, "errors",
            json_pack("{ssssssss}", "step", cur ? cur : "", "message",
                      c->message ? c->message : "cancelled", "timestamp", ts,
                      "code", "cancelled"));
    event_t(p, SB_EVENT_RUN_CANCELLED,
            json_pack("{ss}", "reason", c->message ? c->message : "cancelled"));
    return 0;
  }
  case FL_CONTINUE: {
    json_t *ids = json_incref(json_object_get(p->doc, "continueAt"));
    json_object_del(p->doc, "continueAt");
    if (terminal(status_of(p)) || !json_array_size(ids)) {
      json_decref(ids);
      return SB_ESTATE;
    }
    size_t n = json_array_size(ids);
    for (size_t i = 0; i < n && !terminal(status_of(p)); i++) {
      p->deferred = n - i - 1;
      int k = sb_flow_def_step(def, json_string_value(json_array_get(ids, i)));
      if (k != SB_FLOW_NONE) advance(p, k);
    }
    p->deferred = 0;
    if (!json_array_size(actives(p)) && !pending(p) && !terminal(status_of(p)))
      advance(p, SB_FLOW_NONE);
    json_decref(ids);
    return 0;
  }
  case FL_RESUME: {
    json_t *stopped = json_incref(json_object_get(p->doc, "stopped"));
    json_object_del(p->doc, "stopped");
    json_object_del(p->doc, "error");
    set_status(p, SB_FLOW_RUNNING);
    event_t(p, SB_EVENT_RUN_RESUMED, json_pack("{sO}", "steps", stopped));
    size_t i;
    json_t *id;
    json_array_foreach(stopped, i, id) {
      int k = sb_flow_def_step(def, json_string_value(id));
      if (k != SB_FLOW_NONE && !terminal(status_of(p))) advance(p, k);
    }
    if (!json_array_size(actives(p)) && !pending(p) && !terminal(status_of(p)))
      advance(p, SB_FLOW_NONE);
    json_decref(stopped);
    return 0;
  }
  }
  return SB_EINVAL;
}

/* The array without its middle: its first SB_FLOW_HISTORY_FIRST and last
 * SB_FLOW_HISTORY_LAST items (new reference, members shared), and in
 * *dropped how many went; NULL when it is no longer than that (or out of
 * memory: kept whole). */
static json_t *keep_ends(const json_t *a, size_t *dropped) {
  size_t n = json_array_size(a);
  if (n <= SB_FLOW_HISTORY_FIRST + SB_FLOW_HISTORY_LAST) return NULL;
  json_t *kept = json_array();
  if (!kept) return NULL;
  size_t drop = n - SB_FLOW_HISTORY_FIRST - SB_FLOW_HISTORY_LAST;
  for (size_t i = 0; i < n; i++)
    if (i < SB_FLOW_HISTORY_FIRST || i >= SB_FLOW_HISTORY_FIRST + drop)
      json_array_append(kept, json_array_get(a, i));
  *dropped = drop;
  return kept;
}

/* The history keeps its ends, counting the entries dropped between them:
 * the state a transition copies and writes stays bounded however long the
 * run loops. */
static void trim_history(plan *p) {
  size_t drop = 0;
  json_t *kept = keep_ends(history(p), &drop);
  if (!kept) return;
  json_object_set_new(p->doc, "history", kept);
  int64_t elided = fl_int(p->doc, "historyElided") + (int64_t)drop;
  json_object_set_new(p->doc, "historyElided",
                      json_integer((json_int_t)elided));
}

/* data.workflow.completedSteps is kept the same way (without a count:
 * the context's schema has no place for one; the run's stepsRun and
 * historyElided have it), so a looping run's context stays bounded too. */
static void trim_completed(plan *p) {
  size_t drop = 0;
  json_t *kept = keep_ends(
      json_object_get(workflow_part(p), "completedSteps"), &drop);
  if (!kept) return;
  op_add(p, "replace", "/data/workflow/completedSteps", kept);
  json_object_set_new(workflow_part(p), "completedSteps", kept);
}

/* After the change: running or waiting, the current step, and for a
 * waiting step the seq its events start after (known in memory). */
static void settle(plan *p) {
  sb_flow_status st = status_of(p);
  json_t *act = actives(p);
  const char *current = "";
  int waiting = json_array_size(act) > 0;
  size_t i;
  json_t *a;
  json_array_foreach(act, i, a) {
    int k = sb_flow_def_step(p->r->def, fl_str(a, "step"));
    const sb_flow_step *s = k != SB_FLOW_NONE ? step_at(p, k) : NULL;
    if (!*current && s)
      current = s->parent != SB_FLOW_NONE ? step_at(p, s->parent)->id : s->id;
    if (!s || (s->kind != SB_FLOW_ASK && s->kind != SB_FLOW_WAIT)) waiting = 0;
    if (s && s->kind == SB_FLOW_WAIT && fl_int(a, "since") < 0) {
      int m = fl_active_index(p->r, k, (int)fl_int(a, "visit"));
      if (m >= 0 && p->r->active[m]->since >= 0)
        json_object_set_new(a, "since",
                            json_integer((json_int_t)p->r->active[m]->since));
    }
  }
  json_t *go_on = json_object_get(p->doc, "continueAt");
  if (json_array_size(go_on)) {
    waiting = 0; /* it goes on by itself */
    if (!*current) current = json_string_value(json_array_get(go_on, 0));
  } else {
    json_object_del(p->doc, "continueAt");
  }
  if (!terminal(st)) {
    sb_flow_status next = waiting ? SB_FLOW_WAITING : SB_FLOW_RUNNING;
    if (next == SB_FLOW_WAITING && st != SB_FLOW_WAITING)
      event_t(p, SB_EVENT_RUN_WAITING, json_pack("{ss}", "step", current));
    set_status(p, next);
  }
  const char *was = fl_str(workflow_part(p), "currentStep");
  if (!was || strcmp(was, current) != 0) wf_current(p, current);
  json_object_set_new(p->doc, "contextVersion",
                      json_integer((json_int_t)p->version));
  json_object_set_new(p->doc, "updatedAt", json_integer((json_int_t)p->now));
  trim_history(p);
  trim_completed(p);
}

static void plan_clear(plan *p) {
  json_decref(p->doc);
  json_decref(p->ops);
  json_decref(p->ctx);
  json_decref(p->events);
  memset(p, 0, sizeof *p);
}

/* ---- writing ------------------------------------------------------------- */

typedef struct fl_write {
  fl_run *r;
  plan p;
  char *doc_text;
  sb_store_event *evs;
  char **texts;
  size_t nevs;
  sb_store_run run;
  sb_store_extras x;
  int create;
  uv_timer_t *retry;
} fl_write;

static void write_free(fl_write *w) {
  plan_clear(&w->p);
  sb_free(w->doc_text);
  for (size_t i = 0; i < w->nevs; i++)
    sb_free(w->texts[i]);
  sb_free(w->texts);
  sb_free(w->evs);
  sb_free(w);
}

/* An answer to a question (an ask step's end, which its caller waits
 * for), as opposed to a step's end that no one waits for. */
static int is_answer(const fl_change *c) {
  return c->kind == FL_STEP_DONE && c->cb;
}

static void pop_change(fl_run *r, int rc, const sb_error *err) {
  fl_change *c = r->queue;
  /* A run whose first write failed never existed; one visited for this
   * change (fl_run_visit) is left to the process that drives it. */
  if (rc != 0 && (c->kind == FL_START || r->visiting)) fl_run_detach(r);
  r->queue = c->next;
  if (!r->queue) r->queue_tail = NULL;
  /* A cancellation or an answer the store did not take (not "not
   * running": a write that failed) says so, and that the run goes on as
   * it was: its caller may try again, rather than read a bare store error
   * as the run's end. */
  sb_error why = {0};
  const char *detail = err && *err->msg ? err->msg : sb_strerror(rc);
  if (rc != 0 && rc != SB_ESTATE && c->kind == FL_CANCEL) {
    sb_error_set(&why, rc,
                 "run %s: the cancellation could not be written (%s); the "
                 "run goes on as it was: cancel it again",
                 r->id, detail);
    err = &why;
  } else if (rc != 0 && rc != SB_ESTATE && rc != SB_EINVAL &&
             rc != SB_ETOOBIG && is_answer(c)) {
    sb_error_set(&why, rc,
                 "run %s: the answer could not be written (%s); the "
                 "question is still open: answer it again",
                 r->id, detail);
    err = &why;
  }
  /* The view is for whoever waits on this change; most have no one. */
  json_t *view = rc == 0 && c->cb
                     ? fl_run_view(r->doc, fl_int(r->doc, "contextVersion"))
                     : NULL;
  fl_reply_seq(c->cb, c->ud, rc, err, view, rc == 0 ? r->last_seq : 0);
  json_decref(view);
  /* A cancellation not written: the steps it stopped take up again (they
   * are still under way in the store), and those it held back start.
   * Left stopped, they would ignore their ends: a run neither cancelled
   * nor going on until a restart. An answer not written: its question
   * is open again. */
  if (rc != 0 && (c->kind == FL_CANCEL || is_answer(c)) && !r->detached)
    fl_steps_revive(r);
  fl_change_free(c);
}

static void next_change(fl_run *r) {
  int later = r->write_retry && uv_is_active((uv_handle_t *)r->write_retry);
  if (r->queue && !r->writing && !r->detached && !r->loading && !later)
    fl_plan_write(r);
}

/* The store's queue is full (store.max_pending): the change keeps its
 * place and is written again after WRITE_RETRY_MS, as a client told
 * "busy" would. Dropped, it would be lost: its step is over in memory (an
 * agent's answer, an answer to a question), so the run would wait for
 * ever, and an answer could not even be sent again. A run's first write
 * is the exception: its caller is told "busy" and the run never existed. */
#define WRITE_RETRY_MS 10

static void on_write_retry(uv_timer_t *t) {
  fl_run *r = t->data;
  next_change(r);
  fl_run_release(r); /* the timer's */
}

/* Write the head change again in ms (unless that is already due): 0, or
 * -1 out of memory. The timer holds the run until it fires. */
static int write_again_in(fl_run *r, uint64_t ms) {
  int started = fl_timer_once(&r->write_retry, r->e, r, on_write_retry, ms);
  if (started < 0) return -1;
  if (started) r->holds++; /* the timer's, released by on_write_retry */
  return 0;
}

/* from, doubled n times, at most cap. */
static uint64_t doubled(uint64_t from, int n, uint64_t cap) {
  uint64_t ms = from;
  for (int i = 0; i < n && ms < cap; i++)
    ms *= 2;
  return ms > cap ? cap : ms;
}

static int write_later(fl_run *r, int rc) {
  if (rc != SB_EBUSY || r->detached || r->e->stopping ||
      r->queue->kind == FL_START)
    return 0;
  return write_again_in(r, WRITE_RETRY_MS) == 0;
}

/* A change no caller waits for (a step's end, a try's count, a cut chain
 * going on) whose write failed otherwise than busy, refused or in
 * conflict: the database locked by another process past
 * the store's busy timeout (SB_ETIMEDOUT), an I/O error or a full disk
 * (SB_EIO), memory short (SB_ENOMEM). Dropped, its step would be over in
 * memory and under way in the store: the run waiting until a restart. It
 * keeps its place and is written again after a pause doubling from
 * FAIL_PAUSE_MS up to FAIL_PAUSE_CAP_MS, for as long as the store fails
 * it; the run goes on once the store takes it. A change a caller waits
 * for (a start, an answer, a cancellation, a resumption) is answered with
 * the failure instead: the caller decides whether to try again. */
#define FAIL_PAUSE_MS 20
#define FAIL_PAUSE_CAP_MS 5000

static int retry_failed(fl_run *r, int rc, const sb_error *err) {
  const fl_change *c = r->queue;
  if ((rc != SB_ETIMEDOUT && rc != SB_EIO && rc != SB_ENOMEM) || c->cb ||
      r->detached || r->e->stopping)
    return 0;
  if (c->kind != FL_STEP_DONE && c->kind != FL_STEP_FAILED &&
      c->kind != FL_STEP_RETRY && c->kind != FL_CONTINUE)
    return 0;
  uint64_t ms = doubled(FAIL_PAUSE_MS, r->write_failures, FAIL_PAUSE_CAP_MS);
  if (write_again_in(r, ms) != 0) return 0;
  r->write_failures++;
  /* Said on the first failure, then at each doubling of their count. */
  if ((r->write_failures & (r->write_failures - 1)) == 0)
    SB_WARN(FL_MODULE,
            "run %s: writing its transition failed (%s), %d time(s) in a "
            "row; writing it again in %llu ms",
            r->id, err && *err->msg ? err->msg : sb_strerror(rc),
            r->write_failures, (unsigned long long)ms);
  r->e->stats.write_failures++;
  return 1;
}

/* The write of the change at the head of the queue failed with rc: it is
 * written again later (busy, or a failure that may pass) or answered. */
static void write_failed(fl_run *r, int rc, const sb_error *err) {
  if (write_later(r, rc) || retry_failed(r, rc, err)) return;
  pop_change(r, rc, err);
}

/* Past FL_CONFLICT_TRIES conflicts in a row, the change is planned again
 * after a pause that doubles from CONFLICT_PAUSE_MS up to
 * CONFLICT_PAUSE_CAP_MS, rather than at once (another writer keeps
 * winning) or never (dropped, the change would leave its step over in
 * memory and under way in the store: the run waiting for ever). */
#define CONFLICT_PAUSE_MS 20
#define CONFLICT_PAUSE_CAP_MS 2000

static void conflict_pause(fl_run *r) {
  int past = r->conflicts - FL_CONFLICT_TRIES;
  if (past <= 0 || r->e->stopping) return;
  uint64_t ms = doubled(CONFLICT_PAUSE_MS, past - 1, CONFLICT_PAUSE_CAP_MS);
  if (past == 1)
    SB_WARN(FL_MODULE,
            "run %s: %d conflicts in a row (its context or its row keeps "
            "moving under it); planning again every %d-%d ms",
            r->id, r->conflicts, CONFLICT_PAUSE_MS, CONFLICT_PAUSE_CAP_MS);
  (void)write_again_in(r, ms); /* no timer: left to the run's next change */
}

static void on_head(void *ud, const sb_ctx_result *res) {
  fl_run *r = ud;
  r->writing = 0;
  if (!r->detached && res->rc == 0) {
    json_decref(r->ctx);
    r->ctx = json_incref(res->doc);
    /* A row read again (on_row) may have other steps active: they start
     * now, on this head (after a context conflict, nothing changes) —
     * unless another process drives them (a visited run). */
    if (!r->visiting) fl_steps_sync(r);
    conflict_pause(r);
  } else if (!r->detached) {
    write_failed(r, res->rc, &res->err);
  }
  next_change(r);
  fl_run_release(r);
}

static int terminal_doc(const json_t *doc) {
  return terminal(sb_flow_status_of(fl_str(doc, "status")));
}

/* The run's row as stored now, after a write that found it at another rev
 * than the run's: another process wrote the run (two servers on one
 * store, a command on the server's store). The stored state is the truth
 * (run_internal.h): the run takes it and reads the context's head, then
 * its steps in memory are made to match it (on_head) and the change is
 * planned again on both — or, if the run has ended there, what is queued
 * is answered that it no longer applies and the run leaves memory. */
static void on_row(void *ud, sb_store_result *res) {
  fl_run *r = ud;
  r->writing = 0;
  const sb_store_run_record *rec = res->rc == 0 ? &res->runs.items[0] : NULL;
  json_t *doc = rec ? json_loads(rec->doc, 0, NULL) : NULL;
  if (r->detached || !doc) {
    if (!r->detached && res->rc) {
      write_failed(r, res->rc, &res->err);
    } else if (!r->detached) { /* read again, it would be as unreadable */
      sb_error bad = {0};
      sb_error_set(&bad, SB_EIO, "run %s: its stored state is unreadable",
                   r->id);
      pop_change(r, SB_EIO, &bad);
    }
    json_decref(doc);
    next_change(r);
    fl_run_release(r);
    return;
  }
  SB_WARN(FL_MODULE,
          "run %s: its stored row is at rev %lld, not %lld (written "
          "elsewhere): it goes on from the stored state (%s)",
          r->id, (long long)rec->rev, (long long)r->rev, rec->status);
  json_decref(r->doc);
  r->doc = doc;
  r->rev = rec->rev;
  r->last_seq = rec->seq;
  if (terminal_doc(doc)) {
    fl_steps_sync(r); /* no step is active: all stop */
    fl_plan_go_on_drop(r);
    while (r->queue) {
      sb_error err = {0};
      sb_error_set(&err, SB_ESTATE,
                   "run %s is %s (written elsewhere): the change no longer "
                   "applies",
                   r->id, rec->status);
      pop_change(r, SB_ESTATE, &err);
    }
    fl_run_release(r); /* ended, nothing queued: it leaves memory */
    return;
  }
  sb_error err = {0};
  r->writing = 1;
  if (sb_ctx_get_async(r->e->o.ctx, r->tenant, r->context_id, 0, on_head, r,
                       &err) == 0)
    return; /* the hold passes to on_head */
  r->writing = 0;
  write_failed(r, err.code ? err.code : SB_EIO, &err);
  next_change(r);
  fl_run_release(r);
}

static void on_written(void *ud, const sb_ctx_result *res) {
  fl_write *w = ud;
  fl_run *r = w->r;
  r->writing = 0;
  if (r->detached) {
    write_free(w);
    fl_run_release(r);
    return;
  }
  if (res->rc == 0) {
    json_decref(r->doc);
    r->doc = w->p.doc;
    w->p.doc = NULL;
    r->rev = res->run_rev;
    json_decref(r->ctx);
    r->ctx = json_incref(res->doc);
    r->last_seq = res->last_seq;
    r->conflicts = 0;
    if (r->write_failures)
      SB_INFO(FL_MODULE, "run %s: its transition was written after %d "
                         "failed tries",
              r->id, r->write_failures);
    r->write_failures = 0;
    r->new_context = 0;
    r->e->stats.transitions++;
    write_free(w);
    pop_change(r, 0, NULL);
    fl_steps_sync(r);
    /* An end (a cancellation) written while the run waited its turn to
     * go on gives up that turn: its hold would keep the run in memory, in
     * progress to a resume, until the turn came. */
    if (terminal(sb_flow_status_of(fl_str(r->doc, "status"))))
      fl_plan_go_on_drop(r);
    else
      fl_plan_go_on(r);
  } else if (res->rc == SB_ECONFLICT && !w->create) {
    /* Something moved under the run: the context's head (run_rev 0), or
     * the run's own row (run_rev, its rev now). Read it again, plan again
     * (after a pause once conflicts keep coming: conflict_pause). */
    write_free(w);
    r->e->stats.conflicts++;
    r->conflicts++;
    sb_error err = {0};
    r->writing = 1;
    int rc = res->run_rev
                 ? sb_store_run_get(r->e->o.store, r->tenant, r->id, on_row, r)
                 : sb_ctx_get_async(r->e->o.ctx, r->tenant, r->context_id, 0,
                                    on_head, r, &err);
    if (rc == 0)
      return; /* the write's hold passes to on_head or on_row */
    if (!err.code)
      sb_error_set(&err, rc, "run %s: cannot read it again (%s)", r->id,
                   sb_strerror(rc));
    r->writing = 0;
    write_failed(r, rc, &err);
  } else if (write_later(r, res->rc)) {
    write_free(w);
  } else if (fl_steps_refused(r, res->rc, &res->err)) {
    write_free(w); /* the step's failure is written next */
  } else {
    write_free(w);
    if (!retry_failed(r, res->rc, &res->err)) {
      SB_WARN(FL_MODULE, "run %s: writing its transition failed: %s", r->id,
              res->err.msg);
      pop_change(r, res->rc, &res->err);
    }
  }
  next_change(r);
  fl_run_release(r);
}

static int build(fl_run *r, fl_change *c, plan *p) {
  memset(p, 0, sizeof *p);
  p->r = r;
  p->now = (int64_t)sb_wall_ms();
  p->started_ns = uv_hrtime();
  p->doc = json_deep_copy(r->doc);
  p->ops = json_array();
  p->ctx = json_deep_copy(r->ctx);
  p->events = json_array();
  p->version = r->new_context ? 1 : fl_int(r->ctx, "version") + 1;
  if (!p->doc || !p->ops || !p->ctx || !p->events) return SB_ENOMEM;
  int rc = apply(p, c);
  if (rc == 0) settle(p);
  r->e->stats.steps += (uint64_t)p->chained;
  return rc;
}

/* The context a new run creates: what the plan made, less what the
 * server sets itself. */
static json_t *create_input(const json_t *ctx) {
  json_t *in = json_deep_copy(ctx);
  json_object_del(in, "id");
  json_object_del(in, "tenantId");
  json_object_del(in, "version");
  json_object_del(in, "timestamp");
  return in;
}

static void plan_write(fl_run *r);

/* Held throughout: a failed first write detaches the run, which must
 * outlive this call. */
void fl_plan_write(fl_run *r) {
  r->holds++;
  plan_write(r);
  fl_run_release(r);
}

static void plan_write(fl_run *r) {
  fl_change *c = r->queue;
  sb_error err = {0};
  fl_write *w = sb_calloc(1, sizeof *w);
  if (!w) {
    pop_change(r, SB_ENOMEM,
               &(sb_error){.code = SB_ENOMEM, .msg = "out of memory"});
    return;
  }
  w->r = r;
  int rc = build(r, c, &w->p);
  if (rc == SB_ESTATE && c->kind == FL_CANCEL) {
    sb_error_set(&err, rc,
                 "run %s is %s: only a running or waiting run can be "
                 "cancelled",
                 r->id, fl_str(r->doc, "status"));
  } else if (rc != 0) {
    sb_error_set(&err, rc,
                 rc == SB_ESTATE ? "run %s: that step is no longer under way"
                                 : "run %s: out of memory",
                 r->id);
  }
  if (rc != 0) {
    write_free(w);
    pop_change(r, rc, &err);
    next_change(r);
    return;
  }
  /* The transaction's texts, kept until it is written. */
  w->doc_text = json_dumps(w->p.doc, JSON_COMPACT);
  w->nevs = json_array_size(w->p.events);
  w->evs = sb_calloc(w->nevs ? w->nevs : 1, sizeof *w->evs);
  w->texts = sb_calloc(w->nevs ? w->nevs : 1, sizeof *w->texts);
  for (size_t i = 0; w->evs && w->texts && i < w->nevs; i++) {
    json_t *e = json_array_get(w->p.events, i);
    w->texts[i] = json_dumps(json_object_get(e, "data"), JSON_COMPACT);
    w->evs[i] = (sb_store_event){
        .type = fl_str(e, "type"), .run_id = r->id, .data = w->texts[i]};
  }
  w->run = (sb_store_run){.id = r->id,
                          .workflow = r->def->name,
                          .context_id = r->context_id,
                          .status = fl_str(w->p.doc, "status"),
                          .doc = w->doc_text,
                          .def = r->rev ? NULL : r->def_text,
                          .expected_rev = r->rev};
  w->x =
      (sb_store_extras){.run = &w->run, .events = w->evs, .nevents = w->nevs};
  w->create = r->new_context;
  r->writing = 1;
  r->holds++;
  if (w->create) {
    json_t *in = create_input(w->p.ctx);
    rc = sb_ctx_create_ex_async(r->e->o.ctx, r->tenant, in, r->context_id,
                                &w->x, on_written, w, &err);
    json_decref(in);
  } else {
    rc = sb_ctx_update_ex_async(r->e->o.ctx, r->tenant, r->context_id,
                                fl_int(r->ctx, "version"), SB_CTX_JSON_PATCH,
                                w->p.ops, &w->x, on_written, w, &err);
  }
  if (rc == 0) return;
  r->writing = 0;
  r->holds--;
  write_free(w);
  if (write_later(r, rc)) return;
  if (!fl_steps_refused(r, rc, &err) && !retry_failed(r, rc, &err))
    pop_change(r, rc, &err);
  next_change(r);
}
