/* engine.c: the workflow engine — runs in memory, and the operations on
 * them (start, cancel, answer, resume, fork, get, list).
 *
 * A run is in memory while it is running or waiting; a finished one is
 * only in the store. Its changes are written one at a time (plan.c); a
 * run that finished leaves memory once nothing holds it. At start,
 * sb_flow_engine_resume_all brings back every run the store says is still
 * running or waiting and starts its active steps again.
 */
#include <ctype.h>
#include <string.h>

#include "flow/run_internal.h"

#define DEFAULT_MAX_RUNS 10000

static const char *const status_names[] = {
    [SB_FLOW_RUNNING] = "running",     [SB_FLOW_WAITING] = "waiting",
    [SB_FLOW_COMPLETED] = "completed", [SB_FLOW_FAILED] = "failed",
    [SB_FLOW_CANCELLED] = "cancelled",
};

const char *sb_flow_status_name(sb_flow_status s) {
  return s >= SB_FLOW_RUNNING && s <= SB_FLOW_CANCELLED ? status_names[s]
                                                        : "unknown";
}

sb_flow_status sb_flow_status_of(const char *name) {
  for (int s = SB_FLOW_RUNNING; name && s <= SB_FLOW_CANCELLED; s++)
    if (strcmp(status_names[s], name) == 0) return (sb_flow_status)s;
  return 0;
}

void fl_reply_seq(sb_flow_cb cb, void *ud, int rc, const sb_error *err,
                  json_t *run, int64_t seq) {
  if (!cb) return;
  sb_flow_reply r = {.rc = rc, .run = rc == 0 ? run : NULL, .seq = seq};
  if (rc != 0) {
    if (err && err->code)
      r.err = *err;
    else
      sb_error_set(&r.err, rc, "%s", sb_strerror(rc));
    r.err.code = rc;
  }
  cb(ud, &r);
}

void fl_reply(sb_flow_cb cb, void *ud, int rc, const sb_error *err,
              json_t *run) {
  fl_reply_seq(cb, ud, rc, err, run, 0);
}

void fl_change_free(fl_change *c) {
  if (!c) return;
  json_decref(c->value);
  json_decref(c->events);
  json_decref(c->routing);
  sb_free(c->agent);
  sb_free(c->message);
  sb_free(c->code);
  sb_free(c);
}

/* ---- runs in memory ------------------------------------------------------ */

fl_run *fl_run_find(sb_flow_engine *e, const char *tenant, const char *id) {
  for (sb_list_link *n = sb_list_first(&e->runs); n; n = sb_list_next(n)) {
    fl_run *r = sb_list_entry(n, fl_run, link);
    if (!r->detached && strcmp(r->id, id) == 0 &&
        strcmp(r->tenant, tenant) == 0)
      return r;
  }
  return NULL;
}

static void run_free(fl_run *r) {
  fl_steps_stop_all(r);
  while (r->queue) {
    fl_change *c = r->queue;
    r->queue = c->next;
    sb_error err = {0};
    sb_error_set(&err, SB_ESTATE, "switchboard is stopping");
    fl_reply(c->cb, c->ud, SB_ESTATE, &err, NULL);
    fl_change_free(c);
  }
  if (r->def) sb_flow_def_free(r->def);
  sb_free(r->def_text);
  json_decref(r->doc);
  json_decref(r->ctx);
  sb_free(r->tenant);
  sb_free(r->id);
  sb_free(r->context_id);
  sb_free(r);
}

static void free_handle(uv_handle_t *h) { sb_free(h); }

int fl_timer_once(uv_timer_t **t, sb_flow_engine *e, void *data,
                  uv_timer_cb cb, uint64_t ms) {
  if (!*t) {
    if (!(*t = sb_calloc(1, sizeof **t))) return -1;
    uv_timer_init(sb_store_loop(e->o.store), *t);
    (*t)->data = data;
  }
  if (uv_is_active((uv_handle_t *)*t)) return 0;
  uv_timer_start(*t, cb, ms, 0);
  return 1;
}

void fl_timer_close(uv_timer_t **t) {
  if (*t) uv_close((uv_handle_t *)*t, free_handle);
  *t = NULL;
}

/* Out of the engine's list; freed now or when the last hold goes. */
void fl_run_detach(fl_run *r) {
  if (r->detached) return;
  r->detached = 1;
  fl_steps_stop_all(r);
  if (r->write_retry) { /* a write waiting for room: it never comes */
    if (uv_is_active((uv_handle_t *)r->write_retry)) r->holds--;
    fl_timer_close(&r->write_retry);
  }
  fl_plan_go_on_drop(r);
  sb_flow_engine *e = r->e;
  if (e) {
    sb_list_unlink(&e->runs, &r->link);
    e->nruns--;
  }
  if (!r->holds) run_free(r);
}

void fl_run_release(fl_run *r) {
  r->holds--;
  if (r->holds > 0) return;
  if (r->detached) {
    run_free(r);
    return;
  }
  /* A finished run with nothing left to write leaves memory. */
  sb_flow_status st = sb_flow_status_of(fl_str(r->doc, "status"));
  if ((st == SB_FLOW_COMPLETED || st == SB_FLOW_FAILED ||
       st == SB_FLOW_CANCELLED) &&
      !r->queue && !r->writing)
    fl_run_detach(r);
}

static fl_run *run_new(sb_flow_engine *e, const char *tenant, const char *id,
                       const json_t *source, sb_error *err) {
  fl_run *r = sb_calloc(1, sizeof *r);
  if (!r || !(r->tenant = sb_strdup(tenant)) || !(r->id = sb_strdup(id))) {
    if (r) {
      sb_free(r->tenant);
      sb_free(r);
    }
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  if (sb_flow_def_from_json(source, NULL, "(stored run)", &r->def, err) != 0) {
    sb_free(r->tenant);
    sb_free(r->id);
    sb_free(r);
    return NULL;
  }
  if (!(r->def_text = json_dumps(source, JSON_COMPACT))) {
    sb_flow_def_free(r->def);
    sb_free(r->tenant);
    sb_free(r->id);
    sb_free(r);
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  r->e = e;
  sb_list_push_front(&e->runs, &r->link);
  e->nruns++;
  return r;
}

void fl_run_change(fl_run *r, fl_change *c) {
  c->next = NULL;
  if (r->queue_tail)
    r->queue_tail->next = c;
  else
    r->queue = c;
  r->queue_tail = c;
  /* A run still reading its context back writes once it has it. */
  if (!r->writing && !r->detached && !r->loading && r->queue == c)
    fl_plan_write(r);
}

/* The run's view for REST and MCP: the stored state without the engine's
 * own bookkeeping, with what it waits for spelled out. New reference. */
json_t *fl_run_view(const json_t *doc, int64_t context_version) {
  json_t *v = json_deep_copy(doc);
  if (!v) return NULL;
  json_object_del(v, "definition"); /* runs stored before migration 5 */
  json_object_del(v, "principal");  /* the starter's scopes: the engine's */
  json_object_del(v, "visits");
  json_object_del(v, "lastAgent");
  json_object_set_new(v, "contextVersion",
                      json_integer((json_int_t)context_version));
  json_t *current = json_array(), *waiting = json_array();
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(doc, "active"), i, a) {
    json_array_append_new(current, json_string(fl_str(a, "step")));
    const char *kind = fl_str(a, "kind");
    if (!kind || (strcmp(kind, "ask") != 0 && strcmp(kind, "wait") != 0))
      continue;
    json_t *w = json_pack("{ssss}", "step", fl_str(a, "step"), "kind", kind);
    static const char *const keys[] = {"message", "schema", "deadline",
                                       "event",   "where",  "visit"};
    for (size_t k = 0; k < 6; k++)
      if (json_object_get(a, keys[k]))
        json_object_set(w, keys[k], json_object_get(a, keys[k]));
    json_array_append_new(waiting, w);
  }
  /* A loop cut into transitions: the step it goes on at is current. */
  json_array_foreach(json_object_get(doc, "continueAt"), i, a)
      json_array_append(current, a);
  json_object_del(v, "continueAt");
  json_object_del(v, "active");
  json_object_set_new(v, "current", current);
  json_object_set_new(v, "waiting", waiting);
  return v;
}

/* ---- the engine ---------------------------------------------------------- */

sb_flow_engine *sb_flow_engine_new(const sb_flow_engine_options *o,
                                   sb_error *err) {
  if (!o->store || !o->ctx || !o->gateway || !o->events) {
    sb_error_set(err, SB_EINVAL,
                 "flow: a store, contexts, a gateway and "
                 "events are required");
    return NULL;
  }
  sb_flow_engine *e = sb_calloc(1, sizeof *e);
  if (!e) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  e->o = *o;
  if (e->o.max_runs <= 0) e->o.max_runs = DEFAULT_MAX_RUNS;
  return e;
}

void sb_flow_engine_free(sb_flow_engine *e) {
  if (!e) return;
  e->stopping = 1;
  if (e->active_read) e->active_read->e = NULL; /* it frees itself */
  fl_timer_close(&e->load_timer);
  /* Runs still to read their context: their holds go, they follow. */
  for (size_t i = e->to_load_at; i < e->nto_load; i++)
    fl_run_release(e->to_load[i]);
  sb_free(e->to_load);
  sb_list_link *n;
  while ((n = sb_list_first(&e->runs))) {
    /* Held across the detach, which frees a run nothing else holds. */
    fl_run *r = sb_list_entry(n, fl_run, link);
    r->holds++;
    fl_run_detach(r);
    r->e = NULL;
    fl_run_release(r);
  }
  fl_plan_go_on_close(e);
  sb_free(e);
}

void sb_flow_engine_set_defs(sb_flow_engine *e, const sb_flow_defs *defs) {
  e->o.defs = defs;
}

void sb_flow_engine_stats(const sb_flow_engine *e, sb_flow_stats *out) {
  *out = e->stats;
  out->runs = e->nruns;
}

/* ---- starting ------------------------------------------------------------ */

static json_t *new_doc(const char *id, const sb_flow_def *def,
                       const char *context_id, const json_t *input) {
  int64_t now = (int64_t)sb_wall_ms();
  return json_pack("{sssssssssosIsIsIs{}s[]s[]}", "id", id, "workflow",
                   def->name, "status", "running", "contextId", context_id,
                   "input",
                   input ? json_incref((json_t *)input) : json_object(),
                   "createdAt", (json_int_t)now, "updatedAt", (json_int_t)now,
                   "stepsRun", (json_int_t)0, "visits", "active", "history");
}

typedef struct start_op {
  fl_run *r;
  sb_flow_cb cb;
  void *ud;
} start_op;

/* The run's context is read: its first transition. */
static void start_with_context(void *ud, const sb_ctx_result *res) {
  start_op *op = ud;
  fl_run *r = op->r;
  if (res->rc != 0 || r->detached) {
    sb_error err = res->err;
    if (res->rc == SB_ENOENT)
      sb_error_set(&err, SB_ENOENT, "contextId: %s", res->err.msg);
    fl_reply(op->cb, op->ud, res->rc ? res->rc : SB_ESTATE, &err, NULL);
    sb_free(op);
    fl_run_detach(r); /* nothing was written: the run never existed */
    fl_run_release(r);
    return;
  }
  r->ctx = json_incref(res->doc);
  fl_change *c = sb_calloc(1, sizeof *c);
  if (c) {
    c->kind = FL_START;
    c->cb = op->cb;
    c->ud = op->ud;
    fl_run_change(r, c);
  }
  sb_free(op);
  fl_run_release(r);
}

static int check_input(const json_t *input, sb_error *err) {
  if (!input) return 0;
  if (!json_is_object(input))
    return sb_error_set(err, SB_EINVAL, "input: expected an object");
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)input, k, v) {
    if (strcmp(k, "context") != 0 && strcmp(k, "variables") != 0)
      return sb_error_set(err, SB_EINVAL,
                          "input.%s: unknown (input takes context and "
                          "variables)",
                          k);
    if (!json_is_object(v))
      return sb_error_set(err, SB_EINVAL, "input.%s: expected an object", k);
  }
  json_object_foreach(json_object_get(input, "variables"), k, v) {
    if (!*k || strchr(k, '.') || strchr(k, '[') || strchr(k, ']'))
      return sb_error_set(err, SB_EINVAL,
                          "input.variables: \"%s\" is not a plain name", k);
  }
  return 0;
}

/* A run (not yet written) and its first change; shared by start and
 * fork. `ctx_doc`: the context to create (new_ctx) or NULL to read
 * context_id. */
static int launch(sb_flow_engine *e, const char *tenant, const sb_flow_def *def,
                  const json_t *source, const char *context_id, json_t *new_ctx,
                  const json_t *input, json_t *extra, sb_flow_cb cb, void *ud,
                  sb_error *err) {
  if (e->nruns >= (size_t)e->o.max_runs)
    return sb_error_set(err, SB_EBUSY,
                        "too many runs in progress (%d); retry later",
                        e->o.max_runs);
  char id[37], cid[37];
  sb_uuid_v7(id);
  if (!context_id) {
    sb_uuid_v7(cid);
    context_id = cid;
  }
  fl_run *r = run_new(e, tenant, id, source, err);
  if (!r) return err->code ? err->code : SB_EINVAL;
  r->context_id = sb_strdup(context_id);
  r->doc = new_doc(id, def, context_id, input);
  if (extra) json_object_update(r->doc, extra);
  if (!r->context_id || !r->doc) {
    fl_run_detach(r);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  if (new_ctx) {
    r->ctx = json_incref(new_ctx);
    r->new_context = 1;
    /* $context.id reads the id it will have. */
    json_object_set_new(r->ctx, "id", json_string(context_id));
    if (!json_object_get(r->ctx, "workflowId"))
      json_object_set_new(r->ctx, "workflowId", json_string(id));
    fl_change *c = sb_calloc(1, sizeof *c);
    if (!c) {
      fl_run_detach(r);
      return sb_error_set(err, SB_ENOMEM, "out of memory");
    }
    c->kind = FL_START;
    c->cb = cb;
    c->ud = ud;
    r->holds++;
    fl_run_change(r, c);
    fl_run_release(r);
    return 0;
  }
  start_op *op = sb_calloc(1, sizeof *op);
  if (!op) {
    fl_run_detach(r);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  *op = (start_op){r, cb, ud};
  r->holds++;
  int rc = sb_ctx_get_async(e->o.ctx, tenant, context_id, 0, start_with_context,
                            op, err);
  if (rc != 0) {
    sb_free(op);
    r->holds--;
    fl_run_detach(r);
    if (rc != SB_ENOENT) return rc;
    /* Not err->msg as the argument of its own rewrite (overlapping
     * snprintf: "contextId: contextId: contex"). */
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    return sb_error_set(err, SB_ENOENT, "contextId: %s", why);
  }
  return 0;
}

int sb_flow_run_start(sb_flow_engine *e, const sb_flow_start *s, sb_flow_cb cb,
                      void *ud, sb_error *err) {
  if (!s->tenant || !s->workflow)
    return sb_error_set(err, SB_EINVAL, "workflow: required");
  const sb_flow_def *def =
      e->o.defs ? sb_flow_defs_find(e->o.defs, s->workflow) : NULL;
  if (!def) {
    sb_buf names = SB_BUF_INIT;
    for (size_t i = 0; e->o.defs && i < e->o.defs->len; i++)
      sb_buf_printf(&names, "%s%s", i ? ", " : "", e->o.defs->items[i]->name);
    sb_error_set(err, SB_ENOENT, "workflow: no workflow \"%s\" (workflows: %s)",
                 s->workflow, names.len ? names.data : "none configured");
    sb_buf_free(&names);
    return SB_ENOENT;
  }
  int rc = check_input(s->input, err);
  if (rc != 0) return rc;
  json_t *new_ctx = NULL;
  if (!s->context_id) {
    json_t *given = json_object_get(s->input, "context");
    new_ctx = sb_ctx_fill_defaults(given ? given : NULL);
    if (!new_ctx) return sb_error_set(err, SB_ENOMEM, "out of memory");
  } else if (json_object_get(s->input, "context")) {
    return sb_error_set(err, SB_EINVAL,
                        "input.context: not with contextId (the run works "
                        "on that context)");
  }
  /* A restricted starter's scopes: every step is checked with them. */
  json_t *extra = NULL;
  const sb_principal *p = s->principal;
  if (p && p->restricted) {
    json_t *scopes = json_array();
    for (size_t i = 0; scopes && i < p->scopes_len; i++)
      json_array_append_new(scopes, json_string(p->scopes[i]));
    if (!scopes ||
        !(extra = json_pack("{s{so}}", "principal", "scopes", scopes))) {
      json_decref(new_ctx);
      return sb_error_set(err, SB_ENOMEM, "out of memory");
    }
  }
  rc = launch(e, s->tenant, def, def->source, s->context_id, new_ctx, s->input,
              extra, cb, ud, err);
  json_decref(extra);
  json_decref(new_ctx);
  return rc;
}

/* ---- cancel, answer ------------------------------------------------------ */

/* A run not in memory: say why the operation does not apply to it. */
typedef struct why_op {
  sb_flow_cb cb;
  void *ud;
  char what[32];
} why_op;

static void explain_absent(void *ud, sb_store_result *res) {
  why_op *op = ud;
  sb_error err = {0};
  int rc = res->rc;
  if (rc == 0) {
    rc = SB_ESTATE;
    sb_error_set(&err, rc, "run %s is %s: only a running or waiting run can %s",
                 res->runs.items[0].id, res->runs.items[0].status, op->what);
  } else {
    err = res->err;
  }
  fl_reply(op->cb, op->ud, rc, &err, NULL);
  sb_free(op);
}

static int absent(sb_flow_engine *e, const char *tenant, const char *id,
                  const char *what, sb_flow_cb cb, void *ud, sb_error *err) {
  why_op *op = sb_calloc(1, sizeof *op);
  if (!op) return sb_error_set(err, SB_ENOMEM, "out of memory");
  op->cb = cb;
  op->ud = ud;
  snprintf(op->what, sizeof op->what, "%s", what);
  int rc = sb_store_run_get(e->o.store, tenant, id, explain_absent, op);
  if (rc != 0) {
    sb_free(op);
    return sb_error_set(err, rc, "the store is busy; retry shortly");
  }
  return 0;
}

int sb_flow_run_cancel(sb_flow_engine *e, const char *tenant, const char *id,
                       const char *reason, sb_flow_cb cb, void *ud,
                       sb_error *err) {
  fl_run *r = fl_run_find(e, tenant, id);
  if (!r) return absent(e, tenant, id, "be cancelled", cb, ud, err);
  fl_change *c = sb_calloc(1, sizeof *c);
  if (!c) return sb_error_set(err, SB_ENOMEM, "out of memory");
  c->kind = FL_CANCEL;
  char msg[300];
  snprintf(msg, sizeof msg, "cancelled: %s", reason ? reason : "by request");
  c->message = sb_strdup(msg);
  c->cb = cb;
  c->ud = ud;
  /* Its steps stop now; the change records it. */
  for (size_t i = 0; i < r->nactive; i++)
    r->active[i]->finished = 1;
  fl_run_change(r, c);
  return 0;
}

int sb_flow_run_answer(sb_flow_engine *e, const char *tenant, const char *id,
                       const char *step, const json_t *answer, sb_flow_cb cb,
                       void *ud, sb_error *err) {
  if (!answer) return sb_error_set(err, SB_EINVAL, "answer: required");
  fl_run *r = fl_run_find(e, tenant, id);
  if (!r) return absent(e, tenant, id, "be answered", cb, ud, err);
  /* Its steps are not under way again yet: not "not waiting". */
  if (r->loading)
    return sb_error_set(err, SB_EBUSY,
                        "run %s is being brought back after a restart; "
                        "retry shortly",
                        id);
  return fl_steps_answer(r, step, answer, cb, ud, err);
}

/* ---- reading ------------------------------------------------------------- */

typedef struct read_op {
  sb_flow_engine *e;
  sb_flow_cb cb;
  void *ud;
  char *step; /* fork */
  int kind;   /* READ_GET, READ_LIST, READ_RESUME, READ_FORK */
  size_t limit;
} read_op;

enum { READ_GET = 1, READ_LIST, READ_RESUME, READ_FORK };

static void read_op_free(read_op *op) {
  sb_free(op->step);
  sb_free(op);
}

json_t *sb_flow_run_view(const char *stored_doc, int listing) {
  json_t *doc = stored_doc ? json_loads(stored_doc, 0, NULL) : NULL;
  if (!json_is_object(doc)) {
    json_decref(doc);
    return NULL;
  }
  json_t *v = fl_run_view(doc, fl_int(doc, "contextVersion"));
  json_decref(doc);
  if (v && listing) {
    json_object_del(v, "history");
    json_object_del(v, "input");
  }
  return v;
}

static json_t *record_view(const sb_store_run_record *rec) {
  return sb_flow_run_view(rec->doc, 0);
}

static void resume_loaded(read_op *op, const sb_store_run_record *rec);
static void fork_loaded(read_op *op, const sb_store_run_record *rec);

static void on_read(void *ud, sb_store_result *res) {
  read_op *op = ud;
  if (res->rc != 0) {
    fl_reply(op->cb, op->ud, res->rc, &res->err, NULL);
    read_op_free(op);
    return;
  }
  if (op->kind == READ_GET) {
    json_t *v = record_view(&res->runs.items[0]);
    fl_reply(op->cb, op->ud, v ? 0 : SB_EIO,
             &(sb_error){.code = SB_EIO,
                         .msg = "run: the stored state is unreadable"},
             v);
    json_decref(v);
  } else if (op->kind == READ_LIST) {
    json_t *list = json_array();
    for (size_t i = 0; i < res->runs.len; i++) {
      json_t *v = sb_flow_run_view(res->runs.items[i].doc, 1);
      if (v) json_array_append_new(list, v);
    }
    json_t *out = json_pack("{so}", "runs", list);
    if (res->runs.len == op->limit && op->limit)
      json_object_set_new(out, "nextCursor",
                          json_string(res->runs.items[res->runs.len - 1].id));
    fl_reply(op->cb, op->ud, 0, NULL, out);
    json_decref(out);
  } else if (op->kind == READ_RESUME) {
    resume_loaded(op, &res->runs.items[0]);
    return;
  } else {
    fork_loaded(op, &res->runs.items[0]);
    return;
  }
  read_op_free(op);
}

static int read_run(sb_flow_engine *e, int kind, const char *tenant,
                    const char *id, const char *status, const char *cursor,
                    size_t limit, const char *step, sb_flow_cb cb, void *ud,
                    sb_error *err) {
  read_op *op = sb_calloc(1, sizeof *op);
  if (!op || (step && !(op->step = sb_strdup(step)))) {
    sb_free(op);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  *op = (read_op){e, cb, ud, op->step, kind, limit ? limit : 50};
  int rc = kind == READ_LIST
               ? sb_store_run_list(e->o.store, tenant, status, cursor,
                                   op->limit, on_read, op)
               : sb_store_run_get(e->o.store, tenant, id, on_read, op);
  if (rc != 0) {
    read_op_free(op);
    return sb_error_set(err, rc,
                        rc == SB_EBUSY ? "the store is busy; retry shortly"
                                       : "runs: cannot read (%s)",
                        sb_strerror(rc));
  }
  return 0;
}

int sb_flow_run_get(sb_flow_engine *e, const char *tenant, const char *id,
                    sb_flow_cb cb, void *ud, sb_error *err) {
  return read_run(e, READ_GET, tenant, id, NULL, NULL, 0, NULL, cb, ud, err);
}

/* A list's cursor is the id of its page's last run: a UUID. Anything else
 * would be compared with the ids as text and quietly give some page. */
static int cursor_ok(const char *c) {
  if (strlen(c) != 36) return 0;
  for (int i = 0; i < 36; i++) {
    int dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c[i] != '-' : !isxdigit((unsigned char)c[i])) return 0;
  }
  return 1;
}

int sb_flow_run_list(sb_flow_engine *e, const char *tenant, const char *status,
                     const char *cursor, size_t limit, sb_flow_cb cb, void *ud,
                     sb_error *err) {
  if (cursor && *cursor && !cursor_ok(cursor))
    return sb_error_set(err, SB_EINVAL,
                        "cursor: not one a list of runs gave (the nextCursor "
                        "of the previous page)");
  if (status && !sb_flow_status_of(status))
    return sb_error_set(err, SB_EINVAL,
                        "status: one of running, waiting, completed, failed, "
                        "cancelled");
  if (limit > 1000) limit = 1000;
  return read_run(e, READ_LIST, tenant, NULL, status, cursor, limit, NULL, cb,
                  ud, err);
}

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
  fl_run *r = def ? run_new(e, rec->tenant, rec->id, def, err) : NULL;
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
    fl_run_change(r, op->change);
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
  int64_t version = change ? 0 : fl_int(r->doc, "contextVersion");
  int rc = sb_ctx_get_async(r->e->o.ctx, r->tenant, r->context_id,
                            version > 0 ? version : 0, loaded_context, op, err);
  if (rc != 0) {
    sb_free(op);
    r->holds--;
  }
  return rc;
}

static void resume_loaded(read_op *op, const sb_store_run_record *rec) {
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
  read_op_free(op);
}

int sb_flow_run_resume(sb_flow_engine *e, const char *tenant, const char *id,
                       sb_flow_cb cb, void *ud, sb_error *err) {
  if (fl_run_find(e, tenant, id))
    return sb_error_set(err, SB_ESTATE,
                        "run %s is still in progress: only a failed or "
                        "cancelled run can be resumed",
                        id);
  return read_run(e, READ_RESUME, tenant, id, NULL, NULL, 0, NULL, cb, ud, err);
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
      rc = launch(f->e, f->tenant, def, f->source, NULL, filled, f->input,
                  f->extra, f->cb, f->ud, &err);
      json_decref(filled);
      sb_flow_def_free(def);
    }
  }
  if (rc != 0) fl_reply(f->cb, f->ud, rc, &err, NULL);
  fork_op_free(f);
}

static void fork_loaded(read_op *op, const sb_store_run_record *rec) {
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
  read_op_free(op);
}

int sb_flow_run_fork(sb_flow_engine *e, const char *tenant, const char *id,
                     const char *step, sb_flow_cb cb, void *ud, sb_error *err) {
  if (!step || !*step) return sb_error_set(err, SB_EINVAL, "step: required");
  return read_run(e, READ_FORK, tenant, id, NULL, NULL, 0, step, cb, ud, err);
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
