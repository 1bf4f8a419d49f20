/* revive.c: runs coming back from the store — a failed or cancelled run
 * resumed, a fork from one of a run's completed steps, and the runs still
 * running or waiting brought back at start.
 *
 * Which runs come back at start, and later from processes that ended, is
 * the store's to say (sb_store_runs_claim): never a run another living
 * process drives.
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

/* A run from its stored record, in memory (not yet started). A
 * definition that no longer loads (the checks grew stricter since the run
 * started) fails with SB_ESTATE, err saying so: the run cannot go on
 * under this switchboard, however often it is asked. */
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
    if (!def) {
      sb_error_set(err, SB_ESTATE, "its definition is unreadable");
    } else if (err->code != SB_ENOMEM) {
      char why[sizeof err->msg];
      snprintf(why, sizeof why, "%s", err->msg);
      sb_error_set(err, SB_ESTATE, "its definition no longer loads: %s", why);
    }
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
  fl_adopt_cb then;  /* a run taken over (fl_run_adopt): told when loaded */
  void *then_ud;
} load_op;

static void resume_more(sb_flow_engine *e);
static void block(sb_flow_engine *e, const char *tenant, const char *id,
                  fl_block_reason reason, const char *why);

static void loaded_context(void *ud, const sb_ctx_result *res) {
  load_op *op = ud;
  fl_run *r = op->r;
  /* A run brought back at start makes room for the next one. */
  sb_flow_engine *e = op->change || op->then ? NULL : r->e;
  if (e && !e->stopping) {
    e->reading--;
    resume_more(e);
  }
  r->loading = 0;
  if (res->rc != 0 || r->detached) {
    if (!r->detached)
      SB_WARN(FL_MODULE, "run %s: its context %s cannot be read: %s", r->id,
              r->context_id, res->err.msg);
    /* Brought back at start: in progress in the store, and nowhere here;
     * every operation on it would be "retry shortly" for ever. */
    if (!r->detached && !op->change && e && !e->stopping) {
      char why[600];
      snprintf(why, sizeof why, "its context %s cannot be read: %s",
               r->context_id, res->err.msg);
      block(e, r->tenant, r->id, FL_BLOCK_CONTEXT, why);
    }
    if (op->change) {
      fl_reply(op->change->cb, op->change->ud, res->rc ? res->rc : SB_ESTATE,
               &res->err, NULL);
      fl_change_free(op->change);
    }
    if (op->then) {
      sb_error why = res->err;
      if (!res->rc)
        sb_error_set(&why, SB_ESTATE, "run %s: the engine is stopping", r->id);
      op->then(op->then_ud, res->rc ? res->rc : SB_ESTATE, &why);
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
    if (op->then) op->then(op->then_ud, 0, NULL);
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
static int load_context_then(fl_run *r, fl_change *change, fl_adopt_cb then,
                             void *then_ud, sb_error *err) {
  load_op *op = sb_calloc(1, sizeof *op);
  if (!op) return sb_error_set(err, SB_ENOMEM, "out of memory");
  op->r = r;
  op->change = change;
  op->then = then;
  op->then_ud = then_ud;
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

static int load_context(fl_run *r, fl_change *change, sb_error *err) {
  return load_context_then(r, change, NULL, NULL, err);
}

int fl_run_adopt(sb_flow_engine *e, const sb_store_run_record *rec,
                 fl_adopt_cb then, void *ud, sb_error *err) {
  fl_run *r = run_load(e, rec, err);
  if (!r) return err->code ? err->code : SB_EIO;
  SB_INFO(FL_MODULE, "run %s (%s), left %s in the store by another process, "
          "is taken over", rec->id, rec->workflow, rec->status);
  int rc = load_context_then(r, NULL, then, ud, err);
  if (rc != 0) fl_run_detach(r);
  return rc;
}

int fl_run_visit(sb_flow_engine *e, const sb_store_run_record *rec,
                 fl_change *c, sb_error *err) {
  fl_run *r = run_load(e, rec, err);
  if (!r) return err->code ? err->code : SB_EIO;
  r->visiting = 1;
  SB_INFO(FL_MODULE, "run %s (%s), left %s in the store by another process, "
          "is cancelled here", rec->id, rec->workflow, rec->status);
  int rc = load_context(r, c, err);
  if (rc != 0) fl_run_detach(r);
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
  sb_flow_engine *e = op->ref.e;
  sb_error err = {0};
  int rc = 0;
  sb_flow_status st = sb_flow_status_of(rec->status);
  fl_blocked *b = fl_blocked_find(e, rec->tenant, rec->id);
  if (b) {
    rc = fl_blocked_refuse(b, "be resumed", &err);
  } else if (fl_run_find(e, rec->tenant, rec->id)) {
    /* Resumed meanwhile (another resume read it too): the row read still
     * says cancelled, which is no reason to give. */
    rc = sb_error_set(&err, SB_ESTATE,
                      "run %s is still in progress (resumed meanwhile): "
                      "only a failed or cancelled run can be resumed",
                      rec->id);
  } else if (st != SB_FLOW_FAILED && st != SB_FLOW_CANCELLED) {
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
      if (rc == SB_ESTATE) { /* it names why; the run, which */
        char why[sizeof err.msg];
        snprintf(why, sizeof why, "%s", err.msg);
        sb_error_set(&err, rc, "run %s cannot be resumed: %s", rec->id, why);
      }
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
  int rc = fl_refuse_draining(e, "resume the run", err);
  if (rc != 0) return rc;
  /* A run whose last write is landing is still here until its callback
   * (readers of the store may already see it ended); the read below comes
   * back after that, when it has left. */
  fl_run *r = fl_run_find(e, tenant, id);
  if (r && !r->ending &&
      !fl_status_ended(sb_flow_status_of(fl_str(r->doc, "status"))))
    return sb_error_set(err, SB_ESTATE,
                        "run %s is still in progress: only a failed or "
                        "cancelled run can be resumed",
                        id);
  return fl_read_run(e, tenant, id, NULL, resume_loaded, cb, ud, err);
}

/* A fork: the source run is read, then the context version its step left. */
typedef struct fork_op {
  fl_engine_ref ref; /* ref.e: the engine, NULL when it went first */
  sb_flow_cb cb;
  void *ud;
  char *tenant;
  json_t *source; /* the definition */
  json_t *extra;  /* forkedFrom, startAt */
  json_t *input;
} fork_op;

static void fork_op_free(fork_op *f) {
  fl_engine_ref_drop(&f->ref);
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
  sb_flow_engine *e = fl_engine_ref_drop(&f->ref);
  if (!e) {
    rc = sb_error_set(&err, SB_ESTATE, "the server is stopping");
  } else if (rc != 0) {
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
      rc = fl_launch(e, f->tenant, def, f->source, NULL, filled, f->input,
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
      /* Nothing followed the step (an end step, the last one, a branch
       * that went to the end): a fork with no step to start at would run
       * the workflow again from its first step, calls and all. */
      if (json_array_size(start_at) == 0)
        rc = sb_error_set(&err, SB_EINVAL,
                          "step: nothing follows step \"%s\" in run %s (the "
                          "run ended after it): a fork goes on with the "
                          "steps after the one named; name an earlier step",
                          op->step, rec->id);
      if (rc != 0) json_decref(start_at);
      sb_flow_def_free(def);
    } else {
      /* A fork follows the same definition: it could not run either. */
      char why[sizeof err.msg];
      snprintf(why, sizeof why, "%s", err.msg);
      rc = sb_error_set(&err, SB_ESTATE,
                        "run %s cannot be forked: its definition no longer "
                        "loads: %s",
                        rec->id, why);
      json_decref(start_at);
    }
    if (rc == 0) {
      f->extra = json_pack("{s{sssssI}so}", "forkedFrom", "runId", rec->id,
                           "step", op->step, "contextVersion",
                           (json_int_t)fl_int(found, "contextVersion"),
                           "startAt", start_at);
      /* A fork goes on with the scopes its run was started with, and in
       * its trace (the agents' spans join the same operation). */
      json_t *principal = json_object_get(doc, "principal");
      if (f->extra && principal)
        json_object_set(f->extra, "principal", principal);
      json_t *trace = json_object_get(doc, "trace");
      if (f->extra && json_is_object(trace))
        json_object_set(f->extra, "trace", trace);
      fl_engine_ref_take(&f->ref, op->ref.e);
      rc = sb_ctx_get_async(op->ref.e->o.ctx, rec->tenant, rec->context_id,
                            fl_int(found, "contextVersion"), fork_context, f,
                            &err);
    }
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
      if (rc != SB_ENOMEM) {
        char why[600];
        snprintf(why, sizeof why, "its context %s cannot be read: %s",
                 r->context_id, err.msg);
        block(e, r->tenant, r->id, FL_BLOCK_CONTEXT, why);
      }
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

/* A claim of the runs nobody drives (sb_store_runs_claim), at start or
 * later (takeover). Its runs come into memory a slice at a time: parsing
 * thousands of stored runs (state and definition) in one callback would
 * hold the loop as long (9000 runs: about 300 ms). */
#define CLAIM_SLICE 64

static void claimed_more(sb_flow_engine *e);

typedef struct claim_op {
  fl_engine_ref ref;
  int at_start;
} claim_op;

/* A claimed run into memory, queued to read its context (1), or not (0:
 * already here, or it cannot be brought back, which is said). */
static int bring_back(sb_flow_engine *e, const sb_store_run_record *rec) {
  sb_error err = {0};
  fl_run *mem = fl_run_find(e, rec->tenant, rec->id);
  if (mem || rec->moved_away) {
    /* Another process took the run over from this one (an answer or a
     * cancellation given there) and wrote it: a copy here is behind the
     * row and reads it again (write.c, on_row). If that process drives
     * the run still (moved_away), the copy lets it go; if it has ended
     * (claimed back), the copy goes on from the row. */
    if (mem && mem->rev != rec->rev) fl_run_reread(mem);
    return 0;
  }
  fl_run *r = run_load(e, rec, &err);
  if (!r) {
    if (err.code == SB_ENOMEM)
      SB_ERROR(FL_MODULE, "run %s cannot be resumed: %s", rec->id, err.msg);
    else
      block(e, rec->tenant, rec->id, FL_BLOCK_DEFINITION, err.msg);
    return 0;
  }
  if (queue_load(e, r) != 0) {
    SB_ERROR(FL_MODULE, "run %s cannot be resumed: out of memory", rec->id);
    fl_run_detach(r);
    return 0;
  }
  return 1;
}

static void on_claim_slice(uv_idle_t *h) { claimed_more(h->data); }

/* The next slice on the next turn of the loop (an idle handle: a timer
 * due now would run again within the same turn); 0, or -1 out of memory. */
static int claim_slice_later(sb_flow_engine *e) {
  if (!e->claim_idle) {
    if (!(e->claim_idle = sb_calloc(1, sizeof *e->claim_idle))) return -1;
    uv_idle_init(sb_store_loop(e->o.store), e->claim_idle);
    e->claim_idle->data = e;
  }
  uv_idle_start(e->claim_idle, on_claim_slice);
  return 0;
}

/* The claimed runs, CLAIM_SLICE per turn of the loop, then the claim is
 * over: the runs it brought are all in memory (e->listed: a run in
 * progress in the store and not here is another process's). */
static void claimed_more(sb_flow_engine *e) {
  fl_claimed *c = &e->claimed;
  for (;;) {
    size_t end = c->at + CLAIM_SLICE;
    if (end > c->runs.len) end = c->runs.len;
    for (; c->at < end; c->at++)
      c->brought += (size_t)bring_back(e, &c->runs.items[c->at]);
    resume_more(e);
    if (c->at == c->runs.len) break;
    if (claim_slice_later(e) == 0) return; /* out of memory: now */
  }
  if (e->claim_idle) uv_idle_stop(e->claim_idle);
  size_t n = c->brought;
  if (!c->at_start) {
    e->stats.taken_over += n;
    if (n)
      SB_INFO(FL_MODULE,
              "taking over %zu runs in progress whose process has ended", n);
  } else if (n) {
    SB_INFO(FL_MODULE, "resuming %zu runs in progress", n);
  } else {
    SB_INFO(FL_MODULE, "no runs in progress to resume");
  }
  sb_store_runs_clear(&c->runs);
  memset(c, 0, sizeof *c);
  e->listed = 1;
  e->claiming = 0;
}

static void on_claimed(void *ud, sb_store_result *res) {
  claim_op *op = ud;
  sb_flow_engine *e = fl_engine_ref_drop(&op->ref);
  int at_start = op->at_start;
  sb_free(op);
  if (!e) return; /* stopped before the store answered */
  if (res->rc != 0) {
    e->claiming = 0;
    if (at_start || res->rc != SB_EBUSY) /* busy: the next round takes them */
      SB_ERROR(FL_MODULE, "cannot read the runs to %s: %s",
               at_start ? "resume" : "take over", res->err.msg);
    return;
  }
  e->claimed.runs = res->runs; /* taken */
  memset(&res->runs, 0, sizeof res->runs);
  e->claimed.at_start = at_start;
  claimed_more(e);
}

static int claim(sb_flow_engine *e, int at_start) {
  claim_op *op = sb_calloc(1, sizeof *op);
  if (!op) return SB_ENOMEM;
  fl_engine_ref_take(&op->ref, e);
  op->at_start = at_start;
  int rc = sb_store_runs_claim(e->o.store, at_start, on_claimed, op);
  if (rc != 0) {
    fl_engine_ref_drop(&op->ref);
    sb_free(op);
  } else {
    e->claiming = 1; /* until its runs are all in memory */
  }
  return rc;
}

/* Every takeover_every_ms: the runs of processes that ended since (a
 * `switchboard run` killed, another server on the store gone), one claim
 * at a time; a store too busy for one now is asked at the next tick. */
static void on_takeover_tick(uv_timer_t *t) {
  sb_flow_engine *e = t->data;
  if (!e->stopping && !e->draining && !e->claiming) (void)claim(e, 0);
}

int sb_flow_engine_resume_all(sb_flow_engine *e, sb_error *err) {
  int rc = claim(e, 1);
  if (rc != 0)
    return sb_error_set(err, rc, "flow: cannot read the runs in progress (%s)",
                        sb_strerror(rc));
  if (e->o.takeover_every_ms > 0 && !e->takeover) {
    if (!(e->takeover = sb_calloc(1, sizeof *e->takeover)))
      return sb_error_set(err, SB_ENOMEM, "out of memory");
    uv_timer_init(sb_store_loop(e->o.store), e->takeover);
    e->takeover->data = e;
    uint64_t every = (uint64_t)e->o.takeover_every_ms;
    uv_timer_start(e->takeover, on_takeover_tick, every, every);
    uv_unref((uv_handle_t *)e->takeover); /* never the only reason to run */
  }
  return 0;
}

/* ---- runs that cannot be brought back ------------------------------------ */

static const char *block_reason_name(fl_block_reason r) {
  return r == FL_BLOCK_DEFINITION ? "definition" : "context";
}

fl_blocked *fl_blocked_find(sb_flow_engine *e, const char *tenant,
                            const char *id) {
  for (sb_list_link *n = sb_list_first(&e->blocked); n && id;
       n = sb_list_next(n)) {
    fl_blocked *b = sb_list_entry(n, fl_blocked, link);
    if (strcmp(b->id, id) == 0 && strcmp(b->tenant, tenant) == 0) return b;
  }
  return NULL;
}

static void blocked_free(fl_blocked *b) {
  sb_free(b->tenant);
  sb_free(b->id);
  sb_free(b);
}

static void block(sb_flow_engine *e, const char *tenant, const char *id,
                  fl_block_reason reason, const char *why) {
  SB_ERROR(FL_MODULE,
           "run %s cannot go on: %s (it reads as blocked; cancel it to end "
           "it)",
           id, why);
  if (fl_blocked_find(e, tenant, id)) return;
  fl_blocked *b = sb_calloc(1, sizeof *b);
  if (!b || !(b->tenant = sb_strdup(tenant)) || !(b->id = sb_strdup(id))) {
    if (b) blocked_free(b);
    return; /* as before: "retry shortly" until a restart */
  }
  b->reason = reason;
  snprintf(b->message, sizeof b->message, "%s", why);
  sb_list_push_front(&e->blocked, &b->link);
}

void fl_blocked_clear(sb_flow_engine *e) {
  sb_list_link *n;
  while ((n = sb_list_first(&e->blocked))) {
    sb_list_unlink(&e->blocked, n);
    blocked_free(sb_list_entry(n, fl_blocked, link));
  }
}

json_t *fl_blocked_snapshot(sb_flow_engine *e, const char *tenant,
                            const char *id) {
  json_t *out = NULL;
  for (sb_list_link *n = sb_list_first(&e->blocked); n; n = sb_list_next(n)) {
    fl_blocked *b = sb_list_entry(n, fl_blocked, link);
    if (strcmp(b->tenant, tenant) != 0 || (id && strcmp(b->id, id) != 0))
      continue;
    if (!out && !(out = json_object())) return NULL;
    json_object_set_new(out, b->id,
                        json_pack("{ssss}", "reason",
                                  block_reason_name(b->reason), "message",
                                  b->message));
  }
  return out;
}

void fl_blocked_mark(json_t *view, const json_t *snapshot) {
  json_t *b = json_object_get(snapshot, fl_str(view, "id") ? fl_str(view, "id")
                                                            : "");
  sb_flow_status st = sb_flow_status_of(fl_str(view, "status"));
  if (b && (st == SB_FLOW_RUNNING || st == SB_FLOW_WAITING))
    json_object_set(view, "blocked", b);
}

int fl_blocked_refuse(const fl_blocked *b, const char *what, sb_error *err) {
  return sb_error_set(err, SB_ESTATE,
                      "run %s cannot go on: %s; it cannot %s (cancel it to "
                      "end it)",
                      b->id, b->message, what);
}

/* A blocked run's cancellation: its row read, then written cancelled.
 * The engine is held (ref) across both store operations. */
typedef struct block_cancel {
  fl_engine_ref ref; /* ref.e: the engine, NULL when it went first */
  char *tenant, *id, *reason;
  sb_flow_cb cb;
  void *ud;
  json_t *doc; /* the state written */
} block_cancel;

static void block_cancel_free(block_cancel *op) {
  fl_engine_ref_drop(&op->ref);
  sb_free(op->tenant);
  sb_free(op->id);
  sb_free(op->reason);
  json_decref(op->doc);
  sb_free(op);
}

static void block_cancelled(void *ud, sb_store_result *res) {
  block_cancel *op = ud;
  if (res->rc == 0) {
    sb_flow_engine *e = op->ref.e;
    fl_blocked *b = e ? fl_blocked_find(e, op->tenant, op->id) : NULL;
    if (b) {
      sb_list_unlink(&e->blocked, &b->link);
      blocked_free(b);
    }
    json_t *view = fl_run_view(op->doc, fl_int(op->doc, "contextVersion"));
    int64_t seq =
        res->events.len ? res->events.items[res->events.len - 1].seq : 0;
    fl_reply_seq(op->cb, op->ud, 0, NULL, view, seq);
    json_decref(view);
  } else {
    sb_error err = res->err;
    if (res->rc == SB_ECONFLICT)
      sb_error_set(&err, SB_ECONFLICT,
                   "run %s changed while it was cancelled (written "
                   "elsewhere); read it and try again",
                   op->id);
    fl_reply(op->cb, op->ud, res->rc, &err, NULL);
  }
  block_cancel_free(op);
}

/* The state of the cancelled run: stopped where it was (a switchboard
 * that loads its definition can resume it there), with why. */
static json_t *cancelled_doc(const char *text, const char *reason,
                             const fl_blocked *b) {
  json_t *doc = json_loads(text, 0, NULL);
  if (!json_is_object(doc)) {
    json_decref(doc);
    return NULL;
  }
  json_t *stopped = json_array();
  size_t i, j;
  json_t *a, *x;
  json_array_foreach(json_object_get(doc, "active"), i, a) {
    const char *id = fl_str(a, "step");
    int dup = !id;
    json_array_foreach(stopped, j, x) dup |=
        id && strcmp(json_string_value(x), id) == 0;
    if (!dup) json_array_append_new(stopped, json_string(id));
  }
  json_array_foreach(json_object_get(doc, "continueAt"), i, a)
      json_array_append(stopped, a);
  json_object_del(doc, "continueAt");
  json_object_set_new(doc, "active", json_array());
  json_object_set_new(doc, "status", json_string("cancelled"));
  json_object_set_new(doc, "stopped", stopped);
  json_object_set_new(doc, "updatedAt", json_integer((json_int_t)sb_wall_ms()));
  char msg[sizeof b->message + 320];
  snprintf(msg, sizeof msg, "%s (it could not go on: %s)", reason, b->message);
  json_object_set_new(
      doc, "error",
      json_pack("{ssssssss}", "step",
                json_array_size(stopped)
                    ? json_string_value(json_array_get(stopped, 0))
                    : "",
                "message", msg, "code", "blocked", "reason",
                block_reason_name(b->reason)));
  return doc;
}

static void block_cancel_read(void *ud, sb_store_result *res) {
  block_cancel *op = ud;
  sb_error err = {0};
  int rc = res->rc;
  const sb_store_run_record *rec = rc == 0 ? &res->runs.items[0] : NULL;
  sb_flow_engine *e = op->ref.e;
  fl_blocked *b = e ? fl_blocked_find(e, op->tenant, op->id) : NULL;
  sb_flow_status st = rec ? sb_flow_status_of(rec->status) : 0;
  if (rc != 0) {
    err = res->err;
  } else if (!e) {
    rc = sb_error_set(&err, SB_ESTATE, "switchboard is stopping");
  } else if (!b || (st != SB_FLOW_RUNNING && st != SB_FLOW_WAITING)) {
    rc = sb_error_set(&err, SB_ESTATE,
                      "run %s is %s: only a running or waiting run can be "
                      "cancelled",
                      rec->id, rec->status);
  } else if (!(op->doc = cancelled_doc(rec->doc, op->reason, b))) {
    rc = sb_error_set(&err, SB_EIO, "run %s: its stored state is unreadable",
                      rec->id);
  } else {
    char *text = sb_json_dumps(op->doc, JSON_COMPACT);
    json_t *data = json_pack("{ss}", "reason", op->reason);
    char *data_text = data ? sb_json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    sb_store_run run = {.id = rec->id,
                        .workflow = rec->workflow,
                        .context_id = rec->context_id,
                        .status = "cancelled",
                        .doc = text,
                        .expected_rev = rec->rev};
    sb_store_event ev = {.type = sb_event_type_name(SB_EVENT_RUN_CANCELLED),
                         .run_id = rec->id,
                         .data = data_text};
    sb_store_extras x = {.run = &run, .events = &ev, .nevents = 1};
    rc = text && data_text ? sb_store_write(e->o.store, rec->tenant, &x,
                                       (int64_t)sb_wall_ms(),
                                       block_cancelled, op)
                           : SB_ENOMEM;
    sb_free(text); /* the store copied what it keeps */
    sb_free(data_text);
    if (rc == 0) return;
    sb_error_set(&err, rc,
                 rc == SB_EBUSY ? "the store is busy; retry shortly"
                                : "run %s: cannot write its cancellation (%s)",
                 rec->id, sb_strerror(rc));
  }
  fl_reply(op->cb, op->ud, rc, &err, NULL);
  block_cancel_free(op);
}

int fl_blocked_cancel(sb_flow_engine *e, fl_blocked *b, const char *reason,
                      sb_flow_cb cb, void *ud, sb_error *err) {
  block_cancel *op = sb_calloc(1, sizeof *op);
  char msg[300];
  snprintf(msg, sizeof msg, "cancelled: %s", reason ? reason : "by request");
  if (!op || !(op->tenant = sb_strdup(b->tenant)) ||
      !(op->id = sb_strdup(b->id)) || !(op->reason = sb_strdup(msg))) {
    if (op) block_cancel_free(op);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  op->cb = cb;
  op->ud = ud;
  fl_engine_ref_take(&op->ref, e);
  int rc = sb_store_run_get(e->o.store, op->tenant, op->id, block_cancel_read,
                            op);
  if (rc != 0) {
    block_cancel_free(op);
    return sb_error_set(err, rc, "the store is busy; retry shortly");
  }
  return 0;
}
