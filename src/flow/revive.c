/* revive.c: runs coming back from the store — a failed or cancelled run
 * resumed, a fork from one of a run's completed steps, and the runs still
 * running or waiting brought back at start.
 *
 * Each reads the stored run (engine.c's fl_read_run), then the context
 * version it needs, and only then is the run in memory again (engine.c's
 * fl_run_new, fl_launch).
 */
#include <string.h>

#include "flow/run_internal.h"

/* ---- resume, fork, and runs brought back at start ------------------------ */

/* The definition a stored run follows (new reference): its own column,
 * or, for runs written before it existed, inside its state. */
static json_t *stored_def(const sb_store_run_record *rec, const json_t *doc) {
  if (rec->def && *rec->def) return json_loads(rec->def, 0, NULL);
  return json_incref(json_object_get(doc, "definition"));
}

/* A run from its stored record, in memory (not yet started). */
static fl_run *run_load(sb_flow_engine *e, const sb_store_run_record *rec,
                        sb_error *err) {
  json_t *doc = json_loads(rec->doc, 0, NULL);
  if (!doc) {
    sb_error_set(err, SB_EIO, "run %s: its stored state is unreadable",
                 rec->id);
    return NULL;
  }
  json_t *def = stored_def(rec, doc);
  fl_run *r = def ? fl_run_new(e, rec->tenant, rec->id, def, err) : NULL;
  json_decref(def);
  if (!r) {
    if (!def)
      sb_error_set(err, SB_EIO, "run %s: its definition is unreadable",
                   rec->id);
    json_decref(doc);
    return NULL;
  }
  r->doc = doc;
  r->rev = rec->rev;
  r->last_seq = rec->seq;
  r->context_id = sb_strdup(rec->context_id);
  return r;
}

typedef struct load_op {
  fl_run *r;
  fl_change *change; /* RESUME, or NULL: restart the active steps */
} load_op;

static void resume_more(sb_flow_engine *e);

static void loaded_context(void *ud, const sb_ctx_result *res) {
  load_op *op = ud;
  fl_run *r = op->r;
  /* A run brought back at start makes room for the next one. */
  sb_flow_engine *e = op->change ? NULL : r->e;
  if (e && !e->stopping) {
    e->reading--;
    resume_more(e);
  }
  r->loading = 0;
  if (res->rc != 0 || r->detached) {
    if (!r->detached)
      SB_WARN(FL_MODULE, "run %s: its context %s cannot be read: %s", r->id,
              r->context_id, res->err.msg);
    if (op->change) {
      fl_reply(op->change->cb, op->change->ud, res->rc ? res->rc : SB_ESTATE,
               &res->err, NULL);
      fl_change_free(op->change);
    }
    sb_free(op);
    /* Detached already (the engine stopping): the read's hold may be the
     * last, and fl_run_detach does nothing twice. */
    fl_run_detach(r);
    fl_run_release(r);
    return;
  }
  r->ctx = json_incref(res->doc);
  if (op->change) {
    /* The resume was asked first: it goes before what came while the
     * context was read (a cancellation: it then cancels the resumed run),
     * and writes now (held back while loading). */
    fl_change *c = op->change;
    c->next = r->queue;
    r->queue = c;
    if (!r->queue_tail) r->queue_tail = c;
    if (!r->writing) fl_plan_write(r);
  } else {
    fl_steps_sync(r);
    fl_plan_go_on(r); /* a loop cut short by the crash goes on */
    /* A change that came while it read (a cancellation) goes now. */
    if (r->queue && !r->writing) fl_plan_write(r);
  }
  sb_free(op);
  fl_run_release(r);
}

/* A run brought back at start (change NULL) reads the context version its
 * last transition wrote, not the head: the steps it starts again were
 * first sent from that version, and must be sent again with the same
 * arguments under the same idempotency key (an agent may refuse a key it
 * knows with other arguments). A head that moved meanwhile is a conflict
 * at the run's next write, planned again on the head as at any time. A
 * resume (a new visit, a new key) starts from the head. */
static int load_context(fl_run *r, fl_change *change, sb_error *err) {
  load_op *op = sb_calloc(1, sizeof *op);
  if (!op) return sb_error_set(err, SB_ENOMEM, "out of memory");
  op->r = r;
  op->change = change;
  r->holds++;
  /* Nothing is written before the context is read: a change that comes
   * meanwhile (a cancellation of a run being resumed) waits for it,
   * instead of being planned on no context at all. */
  r->loading = 1;
  int64_t version = change ? 0 : fl_int(r->doc, "contextVersion");
  int rc = sb_ctx_get_async(r->e->o.ctx, r->tenant, r->context_id,
                            version > 0 ? version : 0, loaded_context, op, err);
  if (rc != 0) {
    sb_free(op);
    r->holds--;
  }
  return rc;
}

/* A failed run that stopped at no step: its workflow ended it (an
 * `end: failed` step) or it spent its step budget. Resumed, it would go
 * on at nothing and read as completed though none of its steps ran
 * again. SB_ESTATE with err naming why, or 0. */
static int nothing_to_resume(const sb_store_run_record *rec, sb_error *err) {
  json_t *doc = json_loads(rec->doc, 0, NULL);
  json_t *stopped = json_object_get(doc, "stopped");
  int rc = 0;
  if (doc && json_is_array(stopped) && json_array_size(stopped) == 0) {
    json_t *why = json_object_get(doc, "error");
    const char *step = fl_str(why, "step"), *msg = fl_str(why, "message");
    rc = sb_error_set(err, SB_ESTATE,
                      "run %s %s at step %s (%s) with no step under way: "
                      "there is nothing to resume (fork it from a completed "
                      "step to run it again)",
                      rec->id, rec->status, step ? step : "?",
                      msg ? msg : "no message");
  }
  json_decref(doc);
  return rc;
}

static void resume_loaded(fl_read *op, const sb_store_run_record *rec) {
  sb_flow_engine *e = op->e;
  sb_error err = {0};
  int rc = 0;
  sb_flow_status st = sb_flow_status_of(rec->status);
  if (fl_run_find(e, rec->tenant, rec->id) ||
      (st != SB_FLOW_FAILED && st != SB_FLOW_CANCELLED)) {
    rc = sb_error_set(&err, SB_ESTATE,
                      "run %s is %s: only a failed or cancelled run can be "
                      "resumed",
                      rec->id, rec->status);
  } else if ((rc = nothing_to_resume(rec, &err)) != 0) {
    /* err says why */
  } else {
    fl_run *r = run_load(e, rec, &err);
    fl_change *c = r ? sb_calloc(1, sizeof *c) : NULL;
    if (!r) {
      rc = err.code ? err.code : SB_EIO;
    } else if (!c) {
      fl_run_detach(r);
      rc = sb_error_set(&err, SB_ENOMEM, "out of memory");
    } else {
      c->kind = FL_RESUME;
      c->cb = op->cb;
      c->ud = op->ud;
      if ((rc = load_context(r, c, &err)) != 0) {
        fl_change_free(c);
        fl_run_detach(r);
      }
    }
  }
  if (rc != 0) fl_reply(op->cb, op->ud, rc, &err, NULL);
  fl_read_free(op);
}

int sb_flow_run_resume(sb_flow_engine *e, const char *tenant, const char *id,
                       sb_flow_cb cb, void *ud, sb_error *err) {
  if (fl_run_find(e, tenant, id))
    return sb_error_set(err, SB_ESTATE,
                        "run %s is still in progress: only a failed or "
                        "cancelled run can be resumed",
                        id);
  return fl_read_run(e, tenant, id, NULL, resume_loaded, cb, ud, err);
}

/* A fork: the source run is read, then the context version its step left. */
typedef struct fork_op {
  sb_flow_engine *e;
  sb_flow_cb cb;
  void *ud;
  char *tenant;
  json_t *source; /* the definition */
  json_t *extra;  /* forkedFrom, startAt */
  json_t *input;
} fork_op;

static void fork_op_free(fork_op *f) {
  sb_free(f->tenant);
  json_decref(f->source);
  json_decref(f->extra);
  json_decref(f->input);
  sb_free(f);
}

static void fork_context(void *ud, const sb_ctx_result *res) {
  fork_op *f = ud;
  sb_error err = {0};
  int rc = res->rc;
  if (rc != 0) {
    err = res->err;
  } else {
    sb_flow_def *def = NULL;
    rc = sb_flow_def_from_json(f->source, NULL, "(stored run)", &def, &err);
    if (rc == 0) {
      /* The new context: the old one's content at that version. */
      json_t *ctx = json_pack("{sOsOsO}", "sessionId",
                              json_object_get(res->doc, "sessionId"), "data",
                              json_object_get(res->doc, "data"), "metadata",
                              json_object_get(res->doc, "metadata"));
      json_t *meta = json_object_get(ctx, "metadata");
      if (json_is_object(meta)) {
        json_t *copy = json_deep_copy(meta);
        json_object_del(copy, "expiresAt");
        json_object_set_new(ctx, "metadata", copy);
      }
      json_t *filled = sb_ctx_fill_defaults(ctx);
      json_decref(ctx);
      rc = fl_launch(f->e, f->tenant, def, f->source, NULL, filled, f->input,
                  f->extra, f->cb, f->ud, &err);
      json_decref(filled);
      sb_flow_def_free(def);
    }
  }
  if (rc != 0) fl_reply(f->cb, f->ud, rc, &err, NULL);
  fork_op_free(f);
}

/* The other branches of s's parallel step that had not completed in that
 * visit when s did (`found`, its history entry): appended to start_at;
 * how many. */
static size_t siblings_after(const sb_flow_def *def, const sb_flow_step *s,
                             const json_t *doc, const json_t *found,
                             json_t *start_at) {
  const sb_flow_step *par = &def->steps[s->parent];
  json_t *hist = json_object_get(doc, "history");
  int64_t visit = fl_int(found, "visit");
  size_t n = 0, i;
  json_t *h;
  for (size_t b = 0; b < par->nbranches; b++) {
    const sb_flow_step *sib = &def->steps[par->branches[b]];
    if (sib == s) continue;
    int done = 0;
    json_array_foreach(hist, i, h) {
      if (h == found) break; /* what came after s's end is not in the fork */
      const char *st = fl_str(h, "status");
      done |= strcmp(fl_str(h, "step"), sib->id) == 0 &&
              fl_int(h, "visit") == visit && st &&
              strcmp(st, "completed") == 0;
    }
    if (!done) {
      json_array_append_new(start_at, json_string(sib->id));
      n++;
    }
  }
  return n;
}

static void fork_loaded(fl_read *op, const sb_store_run_record *rec) {
  sb_error err = {0};
  int rc = 0;
  json_t *doc = json_loads(rec->doc, 0, NULL);
  json_t *found = NULL;
  size_t i;
  json_t *h;
  json_array_foreach(json_object_get(doc, "history"), i, h) {
    if (strcmp(fl_str(h, "step"), op->step) == 0 &&
        strcmp(fl_str(h, "status"), "completed") == 0)
      found = h; /* the latest visit */
  }
  fork_op *f = NULL;
  if (!doc) {
    rc = sb_error_set(&err, SB_EIO, "run %s: its stored state is unreadable",
                      rec->id);
  } else if (!found) {
    rc = sb_error_set(&err, SB_ENOENT,
                      "step: run %s has no completed step \"%s\"", rec->id,
                      op->step);
  } else if (!(f = sb_calloc(1, sizeof *f))) {
    rc = sb_error_set(&err, SB_ENOMEM, "out of memory");
  } else {
    sb_flow_def *def = NULL;
    f->e = op->e;
    f->cb = op->cb;
    f->ud = op->ud;
    f->tenant = sb_strdup(rec->tenant);
    f->source = stored_def(rec, doc);
    f->input = json_incref(json_object_get(doc, "input"));
    json_t *start_at = json_array();
    if (sb_flow_def_from_json(f->source, NULL, "(stored run)", &def, &err) ==
        0) {
      int k = sb_flow_def_step(def, op->step);
      const sb_flow_step *s = k != SB_FLOW_NONE ? &def->steps[k] : NULL;
      int next = !s ? SB_FLOW_NONE
                 : s->kind == SB_FLOW_BRANCH
                     ? sb_flow_def_step(def, fl_str(found, "to"))
                 : s->parent != SB_FLOW_NONE ? def->steps[s->parent].next
                                             : s->next;
      /* A branch of a parallel step: the branches still under way when it
       * completed go on in the fork (the join follows them). */
      if (s && s->parent != SB_FLOW_NONE &&
          siblings_after(def, s, doc, found, start_at) > 0)
        next = SB_FLOW_NONE;
      if (next != SB_FLOW_NONE)
        json_array_append_new(start_at, json_string(def->steps[next].id));
      sb_flow_def_free(def);
    }
    f->extra = json_pack("{s{sssssI}so}", "forkedFrom", "runId", rec->id,
                         "step", op->step, "contextVersion",
                         (json_int_t)fl_int(found, "contextVersion"), "startAt",
                         start_at);
    /* A fork goes on with the scopes its run was started with. */
    json_t *principal = json_object_get(doc, "principal");
    if (f->extra && principal)
      json_object_set(f->extra, "principal", principal);
    rc = sb_ctx_get_async(op->e->o.ctx, rec->tenant, rec->context_id,
                          fl_int(found, "contextVersion"), fork_context, f,
                          &err);
    if (rc != 0) {
      fork_op_free(f);
      f = NULL;
    }
  }
  if (rc != 0) fl_reply(op->cb, op->ud, rc, &err, NULL);
  json_decref(doc);
  fl_read_free(op);
}

int sb_flow_run_fork(sb_flow_engine *e, const char *tenant, const char *id,
                     const char *step, sb_flow_cb cb, void *ud, sb_error *err) {
  if (!step || !*step) return sb_error_set(err, SB_EINVAL, "step: required");
  return fl_read_run(e, tenant, id, step, fork_loaded, cb, ud, err);
}

/* Runs brought back at start read their contexts RESUME_WINDOW at a time:
 * all at once, thousands of reads would find the store's queue
 * (store.max_pending) full, and those refused would never go on; and a
 * burst like that would leave clients "store busy" meanwhile. A read the
 * store still refuses is tried again after RESUME_RETRY_MS. */
#define RESUME_WINDOW 16
#define RESUME_RETRY_MS 20

static void on_load_timer(uv_timer_t *t) { resume_more(t->data); }

static void retry_loads(sb_flow_engine *e) {
  (void)fl_timer_once(&e->load_timer, e, e, on_load_timer, RESUME_RETRY_MS);
}

static void resume_more(sb_flow_engine *e) {
  while (e->reading < RESUME_WINDOW && e->to_load_at < e->nto_load) {
    fl_run *r = e->to_load[e->to_load_at];
    sb_error err = {0};
    int rc = r->detached ? 0 : load_context(r, NULL, &err);
    if (rc == SB_EBUSY) {
      retry_loads(e); /* it keeps its place */
      return;
    }
    e->to_load_at++; /* a read answers on a later turn of the loop */
    if (rc != 0) {
      SB_ERROR(FL_MODULE, "run %s cannot be resumed: %s", r->id, err.msg);
      fl_run_detach(r);
    } else if (!r->detached) {
      e->reading++;
    }
    fl_run_release(r); /* the queue's hold; a read holds it now */
  }
  if (e->to_load_at == e->nto_load) {
    sb_free(e->to_load);
    e->to_load = NULL;
    e->nto_load = e->to_load_at = e->to_load_cap = 0;
  }
}

/* Queue r (held) to read its context back. */
static int queue_load(sb_flow_engine *e, fl_run *r) {
  if (e->nto_load == e->to_load_cap) {
    size_t cap = e->to_load_cap ? 2 * e->to_load_cap : 64;
    fl_run **grown = sb_realloc(e->to_load, cap * sizeof *e->to_load);
    if (!grown) return SB_ENOMEM;
    e->to_load = grown;
    e->to_load_cap = cap;
  }
  e->to_load[e->nto_load++] = r;
  r->holds++;
  r->loading = 1;
  return 0;
}

static void on_active(void *ud, sb_store_result *res) {
  fl_active_read *read = ud;
  sb_flow_engine *e = read->e;
  sb_free(read);
  if (!e) return; /* stopped before the store answered */
  e->active_read = NULL;
  if (res->rc != 0) {
    SB_ERROR(FL_MODULE, "cannot read the runs to resume: %s", res->err.msg);
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < res->runs.len; i++) {
    const sb_store_run_record *rec = &res->runs.items[i];
    sb_error err = {0};
    if (fl_run_find(e, rec->tenant, rec->id)) continue;
    fl_run *r = run_load(e, rec, &err);
    if (!r) {
      SB_ERROR(FL_MODULE, "run %s cannot be resumed: %s", rec->id, err.msg);
      continue;
    }
    if (queue_load(e, r) != 0) {
      SB_ERROR(FL_MODULE, "run %s cannot be resumed: out of memory", rec->id);
      fl_run_detach(r);
      continue;
    }
    n++;
  }
  if (n)
    SB_INFO(FL_MODULE, "resuming %zu runs in progress", n);
  else
    SB_INFO(FL_MODULE, "no runs in progress to resume");
  resume_more(e);
}

int sb_flow_engine_resume_all(sb_flow_engine *e, sb_error *err) {
  fl_active_read *read = sb_calloc(1, sizeof *read);
  if (!read) return sb_error_set(err, SB_ENOMEM, "out of memory");
  read->e = e;
  int rc = sb_store_runs_active(e->o.store, on_active, read);
  if (rc != 0) {
    sb_free(read);
    return sb_error_set(err, rc, "flow: cannot read the runs in progress (%s)",
                        sb_strerror(rc));
  }
  e->active_read = read;
  return 0;
}
