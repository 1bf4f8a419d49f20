/* plan.c: one change of a run, as what the one transaction that records
 * it holds (write.c writes it).
 *
 * A plan starts from the run's stored state and the context as the run
 * last saw it, and applies the change to copies of both: the step that
 * ended leaves the active list and enters the history, its result is
 * saved, the run advances (through branch, emit and end steps at once, up
 * to the next steps that wait on someone), and every event is listed.
 * The context's side is kept twice: as the JSON Patch the context manager
 * applies to the stored head, and applied to the copy (so a branch sees
 * the result just saved). Nothing of the run in memory changes here.
 */
#include <string.h>

#include "flow/run_internal.h"

const char *fl_str(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}

int64_t fl_int(const json_t *obj, const char *key) {
  return (int64_t)json_integer_value(json_object_get(obj, key));
}

/* ---- the context side --------------------------------------------------- */

static void op_add(fl_plan *p, const char *op, const char *ptr, json_t *value) {
  json_t *o = json_pack("{ssss}", "op", op, "path", ptr);
  if (value) json_object_set_new(o, "value", json_deep_copy(value));
  json_array_append_new(p->ops, o);
}

/* Set data.<path> (keys joined by dots; the loader checked them) to value
 * (borrowed), making the objects on the way. */
static void ctx_set(fl_plan *p, const char *path, json_t *value) {
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

static json_t *workflow_part(fl_plan *p) {
  return json_object_get(json_object_get(p->ctx, "data"), "workflow");
}

/* Append to data.workflow.<array>. */
static void wf_push(fl_plan *p, const char *array, json_t *value) {
  char ptr[64];
  snprintf(ptr, sizeof ptr, "/data/workflow/%s/-", array);
  op_add(p, "add", ptr, value);
  json_array_append_new(json_object_get(workflow_part(p), array),
                        json_deep_copy(value));
  json_decref(value);
}

/* One entry of data.workflow.errors: {step, message, timestamp, code}
 * and the agent's id when an agent failed. */
static void wf_error(fl_plan *p, const char *step, const char *message,
                     const char *code, const char *agent) {
  char ts[32];
  sb_time_format(p->now, ts);
  json_t *e = json_pack("{ssssssss}", "step", step, "message", message,
                        "timestamp", ts, "code", code);
  if (e && agent) json_object_set_new(e, "agentId", json_string(agent));
  wf_push(p, "errors", e);
}

static void wf_current(fl_plan *p, const char *step) {
  json_t *v = json_string(step);
  op_add(p, "replace", "/data/workflow/currentStep", v);
  json_object_set_new(workflow_part(p), "currentStep", v);
}

static void record_agent(fl_plan *p, const char *agent) {
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

static void event(fl_plan *p, const char *type, json_t *data) {
  json_array_append_new(p->events, json_pack("{ssso}", "type", type, "data",
                                             data ? data : json_object()));
}

static void event_t(fl_plan *p, sb_event_type t, json_t *data) {
  event(p, sb_event_type_name(t), data);
}

static json_t *history(fl_plan *p) { return json_object_get(p->doc, "history"); }
static json_t *actives(fl_plan *p) { return json_object_get(p->doc, "active"); }
/* The steps cut chains go on at (none: absent or empty). */
static size_t pending(fl_plan *p) {
  return json_array_size(json_object_get(p->doc, "continueAt"));
}
static const sb_flow_step *step_at(fl_plan *p, int i) {
  return &p->r->def->steps[i];
}

static json_t *hist_entry(fl_plan *p, const sb_flow_step *s, int64_t visit,
                          const char *status, int64_t started) {
  json_t *h = json_pack(
      "{sssIsssIsIsI}", "step", s->id, "visit", (json_int_t)visit, "status",
      status, "startedAt", (json_int_t)(started ? started : p->now), "endedAt",
      (json_int_t)p->now, "contextVersion", (json_int_t)p->version);
  json_array_append_new(history(p), h);
  return h;
}

static void set_status(fl_plan *p, sb_flow_status st) {
  json_object_set_new(p->doc, "status", json_string(sb_flow_status_name(st)));
}

static sb_flow_status status_of(fl_plan *p) {
  return sb_flow_status_of(fl_str(p->doc, "status"));
}

static void fail_run(fl_plan *p, const char *step, const char *message,
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

/* A resume sends the calls it starts again under the keys they had when
 * the run stopped (SB_FLOW_META_KEY): a call cut off by a cancel or a
 * timeout may have acted, and a branch done before its parallel step
 * failed has. Noted in keys ({step: visit}) for the step at index k, or,
 * inside a parallel step, for each of its branches (all started with the
 * parallel, so their last visits are this one's). */
static void keep_keys(fl_plan *p, json_t *keys, int k) {
  const sb_flow_step *s = step_at(p, k);
  json_t *visits = json_object_get(p->doc, "visits");
  const int *steps = &k;
  size_t n = 1;
  if (s->parent != SB_FLOW_NONE) {
    steps = step_at(p, s->parent)->branches;
    n = step_at(p, s->parent)->nbranches;
  }
  for (size_t i = 0; i < n; i++) {
    const sb_flow_step *b = step_at(p, steps[i]);
    int64_t visit = fl_int(visits, b->id);
    if (b->kind == SB_FLOW_CALL && visit > 0)
      json_object_set_new(keys, b->id, json_integer((json_int_t)visit));
  }
}

static sb_flow_scope scope_of(fl_plan *p) {
  return (sb_flow_scope){
      .context = p->ctx, .run_id = p->r->id, .workflow = p->r->def->name};
}

/* The step at index i starts: into the active list. */
static void activate(fl_plan *p, int i) {
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

/* Count one more step against the budget; 0 when it is spent (the step
 * refused is not run, so stepsRun stops at max_steps). */
static int budget(fl_plan *p, const sb_flow_step *s) {
  int64_t n = fl_int(p->doc, "stepsRun") + 1;
  if (n <= p->r->def->max_steps) {
    json_object_set_new(p->doc, "stepsRun", json_integer((json_int_t)n));
    return 1;
  }
  char msg[200];
  snprintf(msg, sizeof msg,
           "the run has executed its budget of %d steps (max_steps): does "
           "the workflow loop?",
           p->r->def->max_steps);
  fail_run(p, s->id, msg, NULL);
  return 0;
}

/* Step s is done without having been active (a branch, an emit, an end,
 * a parallel step once its steps are): its visit counted, in the history
 * (the entry returned, borrowed) and in completedSteps. */
static json_t *done_here(fl_plan *p, const sb_flow_step *s) {
  json_t *visits = json_object_get(p->doc, "visits");
  int64_t visit = fl_int(visits, s->id) + 1;
  json_object_set_new(visits, s->id, json_integer((json_int_t)visit));
  json_t *h = hist_entry(p, s, visit, "completed", 0);
  wf_push(p, "completedSteps", json_string(s->id));
  return h;
}

/* An emit step: its event published, the step done; 0. Or the run has
 * failed: the event's data, made from the context, would pass what an
 * event may hold (a loop emitting a customer's whole conversation would
 * otherwise write megabytes a turn, for days). */
static int emit_now(fl_plan *p, const sb_flow_step *s) {
  sb_flow_scope sc = scope_of(p);
  json_t *data =
      s->event_data ? sb_flow_template(s->event_data, &sc) : json_object();
  if (!json_is_object(data)) {
    json_t *wrapped = json_pack("{so}", "value", data);
    data = wrapped;
  }
  sb_error err = {0};
  if (sb_events_check_data(p->r->e->o.events, data, &err) != 0) {
    json_decref(data);
    wf_error(p, s->id, err.msg, "too_large", NULL);
    fail_run(p, s->id, err.msg, NULL);
    return -1;
  }
  event(p, s->event_type, data);
  done_here(p, s);
  return 0;
}

/* Go on at step i (SB_FLOW_NONE: the end), through the steps that need
 * no one, up to those that do. */
static void advance(fl_plan *p, int i) {
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
      json_t *h = done_here(p, s);
      json_object_set_new(h, "to",
                          to == SB_FLOW_NONE ? json_null()
                                             : json_string(step_at(p, to)->id));
      i = to;
      continue;
    }
    case SB_FLOW_EMIT:
      if (emit_now(p, s) != 0) return;
      i = s->next;
      continue;
    case SB_FLOW_END:
      done_here(p, s);
      json_array_clear(actives(p));
      json_object_del(p->doc, "continueAt");
      if (s->end_failed) {
        const char *m = s->end_message ? s->end_message
                                       : "the workflow ended "
                                         "as failed";
        wf_error(p, s->id, m, "end", NULL);
        fail_run(p, s->id, m, NULL);
      } else {
        set_status(p, SB_FLOW_COMPLETED);
        event_t(p, SB_EVENT_RUN_COMPLETED, json_pack("{ss}", "step", s->id));
      }
      return;
    case SB_FLOW_PARALLEL: {
      /* An emit needs no one: it is done here, as it is outside a
       * parallel. Made active, it waited for a result that never came.
       * The branches start together: the emits go after the others have
       * started, so a sibling's wait takes them, whatever the order the
       * branches are listed in. */
      int waiting = 0;
      for (size_t k = 0; k < s->nbranches; k++) {
        if (step_at(p, s->branches[k])->kind == SB_FLOW_EMIT) continue;
        activate(p, s->branches[k]);
        waiting = 1;
      }
      for (size_t k = 0; k < s->nbranches; k++) {
        const sb_flow_step *b = step_at(p, s->branches[k]);
        if (b->kind == SB_FLOW_EMIT && emit_now(p, b) != 0) return;
      }
      if (waiting) return;
      done_here(p, s); /* emits alone: the parallel has ended */
      i = s->next;
      continue;
    }
    default: activate(p, i); return;
    }
  }
}

/* ---- the changes --------------------------------------------------------- */

static int find_active(fl_plan *p, const char *step, int64_t visit) {
  size_t i;
  json_t *a;
  json_array_foreach(actives(p), i, a) {
    if (strcmp(fl_str(a, "step"), step) == 0 && fl_int(a, "visit") == visit)
      return (int)i;
  }
  return -1;
}

/* Remove the other active steps of the parallel step `parent`. */
static void drop_siblings(fl_plan *p, int parent) {
  for (size_t i = json_array_size(actives(p)); i-- > 0;) {
    int k = sb_flow_def_step(p->r->def,
                             fl_str(json_array_get(actives(p), i), "step"));
    if (k != SB_FLOW_NONE && step_at(p, k)->parent == parent)
      json_array_remove(actives(p), i);
  }
}

static int siblings_left(fl_plan *p, int parent) {
  size_t i;
  json_t *a;
  json_array_foreach(actives(p), i, a) {
    int k = sb_flow_def_step(p->r->def, fl_str(a, "step"));
    if (k != SB_FLOW_NONE && step_at(p, k)->parent == parent) return 1;
  }
  return 0;
}

/* Agents' own events, as far as they are well formed. */
static void agent_events(fl_plan *p, const fl_change *c) {
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
    /* As any publish: at most events.max_data_bytes (before, an agent's
     * events were the one way past it). */
    sb_error err = {0};
    if (sb_events_check_data(p->r->e->o.events, d, &err) != 0) {
      SB_WARN(FL_MODULE, "run %s: agent %s published a %s event: dropped: %s",
              p->r->id, c->agent ? c->agent : "?", type, err.msg);
      json_decref(d);
      continue;
    }
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
static void save_result(fl_plan *p, const sb_flow_step *s, json_t *value) {
  if (s->save) ctx_set(p, s->save, value);
  const char *path;
  json_t *keys;
  json_object_foreach(s->save_map, path, keys) {
    json_t *part = result_part(value, json_string_value(keys));
    if (part) ctx_set(p, path, part);
  }
}

static void step_done(fl_plan *p, const fl_change *c, json_t *entry) {
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
    done_here(p, par);
    advance(p, par->next);
    return;
  }
  advance(p, s->next);
}

static void step_failed(fl_plan *p, const fl_change *c, json_t *entry) {
  const sb_flow_step *s = step_at(p, c->step);
  json_t *h = hist_entry(p, s, c->visit, "failed", fl_int(entry, "startedAt"));
  json_object_set_new(h, "error", json_string(c->message));
  if (c->agent) json_object_set_new(h, "agent", json_string(c->agent));
  if (c->attempts > 1)
    json_object_set_new(h, "attempts", json_integer(c->attempts));
  if (c->lean == FL_LEAN_NO)
    wf_error(p, s->id, c->message, c->code ? c->code : "failed", c->agent);
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
  int handoff = c->lean != FL_LEAN_NO_HANDOFF;
  int target = handoff ? s->on_failure : SB_FLOW_NONE;
  const char *failed_id = s->id;
  if (s->parent != SB_FLOW_NONE) {
    drop_siblings(p, s->parent);
    const sb_flow_step *par = step_at(p, s->parent);
    hist_entry(p, par, fl_int(json_object_get(p->doc, "visits"), par->id),
               "failed", 0);
    target = handoff ? par->on_failure : SB_FLOW_NONE;
    failed_id = par->id;
  }
  if (target != SB_FLOW_NONE) {
    advance(p, target);
    return;
  }
  fail_run(p, failed_id, c->message, json_pack("[s]", failed_id));
  json_t *keys = json_object();
  keep_keys(p, keys, c->step);
  json_object_set_new(p->doc, "resumeKeys", keys);
  /* How the step failed, as the step.failed event says it. */
  json_object_set_new(json_object_get(p->doc, "error"), "code",
                      json_string(c->code ? c->code : "failed"));
}

/* What the change does to the plan; 0, or SB_ESTATE when it no longer
 * applies (the step it is about is not active any more, or the run has
 * ended: a cancel queued behind the change that completed the run). */
static int apply(fl_plan *p, fl_change *c) {
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
          !fl_status_ended(status_of(p)))
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
    if (fl_status_ended(status_of(p))) return SB_ESTATE;
    json_t *stopped = json_array(), *keys = json_object();
    size_t i;
    json_t *a;
    json_array_foreach(actives(p), i, a) {
      int k = sb_flow_def_step(def, fl_str(a, "step"));
      if (k != SB_FLOW_NONE) keep_keys(p, keys, k);
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
    json_object_set_new(p->doc, "resumeKeys", keys);
    const char *cur = fl_str(workflow_part(p), "currentStep");
    if (c->lean == FL_LEAN_NO)
      wf_error(p, cur ? cur : "", c->message ? c->message : "cancelled",
               "cancelled", NULL);
    event_t(p, SB_EVENT_RUN_CANCELLED,
            json_pack("{ss}", "reason", c->message ? c->message : "cancelled"));
    return 0;
  }
  case FL_CONTINUE: {
    json_t *ids = json_incref(json_object_get(p->doc, "continueAt"));
    json_object_del(p->doc, "continueAt");
    if (fl_status_ended(status_of(p)) || !json_array_size(ids)) {
      json_decref(ids);
      return SB_ESTATE;
    }
    size_t n = json_array_size(ids);
    for (size_t i = 0; i < n && !fl_status_ended(status_of(p)); i++) {
      p->deferred = n - i - 1;
      int k = sb_flow_def_step(def, json_string_value(json_array_get(ids, i)));
      if (k != SB_FLOW_NONE) advance(p, k);
    }
    p->deferred = 0;
    if (!json_array_size(actives(p)) && !pending(p) && !fl_status_ended(status_of(p)))
      advance(p, SB_FLOW_NONE);
    json_decref(ids);
    return 0;
  }
  case FL_RESUME: {
    json_t *stopped = json_incref(json_object_get(p->doc, "stopped"));
    json_t *keys = json_incref(json_object_get(p->doc, "resumeKeys"));
    json_object_del(p->doc, "stopped");
    json_object_del(p->doc, "resumeKeys");
    json_object_del(p->doc, "error");
    set_status(p, SB_FLOW_RUNNING);
    event_t(p, SB_EVENT_RUN_RESUMED, json_pack("{sO}", "steps", stopped));
    size_t i;
    json_t *id;
    json_array_foreach(stopped, i, id) {
      int k = sb_flow_def_step(def, json_string_value(id));
      if (k != SB_FLOW_NONE && !fl_status_ended(status_of(p))) advance(p, k);
    }
    /* The calls started again, each the visit after the one it stopped
     * at, go under that visit's key. */
    json_t *a;
    json_array_foreach(actives(p), i, a) {
      json_t *kept = json_object_get(keys, fl_str(a, "step"));
      if (kept && fl_int(a, "visit") == json_integer_value(kept) + 1)
        json_object_set(a, "keyVisit", kept);
    }
    json_decref(keys);
    if (!json_array_size(actives(p)) && !pending(p) && !fl_status_ended(status_of(p)))
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
static void trim_history(fl_plan *p) {
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
static void trim_completed(fl_plan *p) {
  size_t drop = 0;
  json_t *kept = keep_ends(
      json_object_get(workflow_part(p), "completedSteps"), &drop);
  if (!kept) return;
  op_add(p, "replace", "/data/workflow/completedSteps", kept);
  json_object_set_new(workflow_part(p), "completedSteps", kept);
}

/* After the change: running or waiting, the current step, and for a
 * waiting step the seq its events start after (known in memory). */
static void settle(fl_plan *p) {
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
  if (!fl_status_ended(st)) {
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

void fl_plan_clear(fl_plan *p) {
  json_decref(p->doc);
  json_decref(p->ops);
  json_decref(p->ctx);
  json_decref(p->events);
  memset(p, 0, sizeof *p);
}

int fl_plan_build(fl_run *r, fl_change *c, fl_plan *p) {
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
