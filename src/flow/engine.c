/* engine.c: the workflow engine — runs in memory, and the operations on
 * them (start, cancel, answer, get, list; resume, fork and the runs
 * brought back at start are in revive.c).
 *
 * A run is in memory while it is running or waiting; a finished one is
 * only in the store. Its changes are written one at a time (write.c); a
 * run that finished leaves memory once nothing holds it. At start,
 * sb_flow_engine_resume_all brings back every run the store says is still
 * running or waiting that no living process drives, and starts its active
 * steps again; then, every takeover_every_ms, those whose process ended.
 */
#include <ctype.h>
#include <string.h>

#include "flow/run_internal.h"

#define DEFAULT_MAX_RUNS 10000
/* A tenth of the default whole: ten tenants at their share fill it. */
#define DEFAULT_MAX_RUNS_PER_TENANT 1000

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

static uint64_t run_hash(const char *tenant, const char *id) {
  return sb_hash_str(sb_hash_str(SB_HASH_SEED, tenant), id);
}

fl_run *fl_run_find(sb_flow_engine *e, const char *tenant, const char *id) {
  uint64_t h = run_hash(tenant, id);
  for (fl_run *r = e->index[h & (e->nindex - 1)]; r; r = r->hnext)
    if (r->hash == h && strcmp(r->id, id) == 0 &&
        strcmp(r->tenant, tenant) == 0)
      return r;
  return NULL;
}

/* Twice the buckets, once there are more runs than buckets (memory short:
 * the chains grow longer instead). */
static void index_grow(sb_flow_engine *e) {
  size_t n = e->nindex * 2;
  fl_run **grown = sb_calloc(n, sizeof *grown);
  if (!grown) return;
  for (size_t i = 0; i < e->nindex; i++) {
    fl_run *r = e->index[i], *next;
    for (; r; r = next) {
      next = r->hnext;
      r->hnext = grown[r->hash & (n - 1)];
      grown[r->hash & (n - 1)] = r;
    }
  }
  sb_free(e->index);
  e->index = grown;
  e->nindex = n;
}

static void index_put(sb_flow_engine *e, fl_run *r) {
  if (e->nruns > e->nindex) index_grow(e);
  r->hash = run_hash(r->tenant, r->id);
  fl_run **b = &e->index[r->hash & (e->nindex - 1)];
  r->hnext = *b;
  *b = r;
}

/* The tenant's runs in memory. */
static int tenant_runs(const sb_flow_engine *e, const char *tenant) {
  return (int)json_integer_value(json_object_get(e->tenant_runs, tenant));
}

/* One run more (+1) or fewer (-1) for r's tenant; a tenant at 0 goes. Out
 * of memory, the count stays short (a start may pass its share): never a
 * run refused or lost for it. */
static void tenant_count(sb_flow_engine *e, const fl_run *r, int delta) {
  int n = tenant_runs(e, r->tenant) + delta;
  if (n <= 0)
    json_object_del(e->tenant_runs, r->tenant);
  else
    json_object_set_new_nocheck(e->tenant_runs, r->tenant, json_integer(n));
}

static void index_drop(sb_flow_engine *e, fl_run *r) {
  fl_run **p = &e->index[r->hash & (e->nindex - 1)];
  while (*p && *p != r)
    p = &(*p)->hnext;
  if (*p) *p = r->hnext;
  r->hnext = NULL;
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
  if (*t) uv_close((uv_handle_t *)*t, sb_free_handle);
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
  fl_write_wait_drop(r);
  sb_flow_engine *e = r->e;
  if (e) {
    sb_list_unlink(&e->runs, &r->link);
    index_drop(e, r);
    e->nruns--;
    tenant_count(e, r, -1);
  }
  if (!r->holds) run_free(r);
}

int fl_status_ended(sb_flow_status st) {
  return st == SB_FLOW_COMPLETED || st == SB_FLOW_FAILED ||
         st == SB_FLOW_CANCELLED;
}

void fl_run_release(fl_run *r) {
  r->holds--;
  if (r->holds > 0) return;
  if (r->detached) {
    run_free(r);
    return;
  }
  /* A finished run with nothing left to write leaves memory. */
  if (fl_status_ended(sb_flow_status_of(fl_str(r->doc, "status"))) &&
      !r->queue && !r->writing)
    fl_run_detach(r);
}

fl_run *fl_run_new(sb_flow_engine *e, const char *tenant, const char *id,
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
  if (!(r->def_text = sb_json_dumps(source, JSON_COMPACT))) {
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
  tenant_count(e, r, +1);
  index_put(e, r);
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
  json_object_del(v, "trace");      /* its trace context: the agents' */
  json_object_del(v, "visits");
  json_object_del(v, "resumeKeys");
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
  if (e->o.max_runs_per_tenant <= 0)
    e->o.max_runs_per_tenant = DEFAULT_MAX_RUNS_PER_TENANT;
  e->nindex = 64;
  if (!(e->index = sb_calloc(e->nindex, sizeof *e->index)) ||
      !(e->tenant_runs = json_object())) {
    sb_free(e->index);
    sb_free(e);
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  return e;
}

void fl_engine_ref_take(fl_engine_ref *ref, sb_flow_engine *e) {
  ref->e = e;
  sb_list_push_back(&e->waiting_ops, &ref->link);
  ref->linked = 1;
}

sb_flow_engine *fl_engine_ref_drop(fl_engine_ref *ref) {
  if (ref->linked) sb_list_unlink(&ref->e->waiting_ops, &ref->link);
  ref->linked = 0;
  return ref->e;
}

/* The engine goes: the store operations still to be answered must not
 * look at it. */
static void waiting_ops_forget(sb_flow_engine *e) {
  sb_list_link *n;
  while ((n = sb_list_first(&e->waiting_ops))) {
    fl_engine_ref *ref = sb_list_entry(n, fl_engine_ref, link);
    fl_engine_ref_drop(ref);
    ref->e = NULL;
  }
}

void sb_flow_engine_free(sb_flow_engine *e) {
  if (!e) return;
  e->stopping = 1;
  fl_timer_close(&e->load_timer);
  fl_timer_close(&e->takeover);
  if (e->claim_idle) uv_close((uv_handle_t *)e->claim_idle, sb_free_handle);
  sb_store_runs_clear(&e->claimed.runs);
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
    r->ctx_turn = 0; /* its write, if one is in flight, ends engine-less */
    r->e = NULL;
    fl_run_release(r);
  }
  waiting_ops_forget(e);
  fl_plan_go_on_close(e);
  fl_blocked_clear(e);
  sb_free(e->index);
  json_decref(e->tenant_runs);
  sb_free(e);
}

int fl_refuse_draining(const sb_flow_engine *e, const char *what,
                       sb_error *err) {
  if (!e->draining) return 0;
  return sb_error_set(err, SB_EBUSY,
                      "switchboard is stopping: %s once it is back (or on "
                      "another server on its store); runs in progress go "
                      "on then",
                      what);
}

size_t sb_flow_engine_drain(sb_flow_engine *e) {
  if (!e) return 0;
  if (!e->draining) {
    e->draining = 1;
    /* Taking over another process's runs would start their steps here. */
    if (e->takeover) uv_timer_stop(e->takeover);
    /* Cut chains go on at the next start, from their continueAt. */
    sb_list_link *n;
    while ((n = sb_list_first(&e->go_on))) {
      fl_run *r = sb_list_entry(n, fl_run, go_link);
      r->holds++; /* across the drop, which gives the queue's hold back */
      fl_plan_go_on_drop(r);
      fl_run_release(r);
    }
  }
  return sb_flow_engine_busy(e);
}

size_t sb_flow_engine_busy(const sb_flow_engine *e) {
  if (!e) return 0;
  size_t n = 0;
  for (sb_list_link *l = sb_list_first((sb_list *)&e->runs); l;
       l = sb_list_next(l)) {
    const fl_run *r = sb_list_entry(l, fl_run, link);
    for (size_t i = 0; i < r->nactive; i++)
      n += r->active[i]->call != NULL;
    /* A run still reading its context back (brought back at start) has
     * written nothing yet, and writes nothing until it has read it: what
     * it would write is an operation's, which the next start takes. */
    if (r->writing || (r->queue && !r->loading)) n++;
  }
  return n;
}

void sb_flow_engine_set_defs(sb_flow_engine *e, const sb_flow_defs *defs) {
  e->o.defs = defs;
}

void sb_flow_engine_stats(const sb_flow_engine *e, sb_flow_stats *out) {
  *out = e->stats;
  out->runs = e->nruns;
  out->waiting_turn = 0;
  for (sb_list_link *n = sb_list_first(&e->ctx_waiting); n; n = sb_list_next(n))
    out->waiting_turn++;
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

int fl_launch(sb_flow_engine *e, const char *tenant, const sb_flow_def *def,
              const json_t *source, const char *context_id, json_t *new_ctx,
              const json_t *input, json_t *extra, sb_flow_cb cb, void *ud,
              sb_error *err) {
  /* A run started now would have its first step held to the next start:
   * its caller may as well go to another server now (start and fork; a
   * start whose context read was under way when the drain began is
   * written, and its first step waits for the next start). */
  int rc = fl_refuse_draining(e, "start the run", err);
  if (rc != 0) return rc;
  /* The tenant's share first: a tenant at it is told of its own limit,
   * whoever else has room. */
  if (tenant_runs(e, tenant) >= e->o.max_runs_per_tenant)
    return sb_error_set(err, SB_EBUSY,
                        "tenant %s has %d runs in progress, its limit "
                        "(limits.max_runs_per_tenant); retry when one ends",
                        tenant, e->o.max_runs_per_tenant);
  if (e->nruns >= (size_t)e->o.max_runs)
    return sb_error_set(err, SB_EBUSY,
                        "too many runs in progress (%d, limits.max_runs); "
                        "retry later",
                        e->o.max_runs);
  char id[37], cid[37];
  sb_uuid_v7(id);
  if (!context_id) {
    sb_uuid_v7(cid);
    context_id = cid;
  }
  fl_run *r = fl_run_new(e, tenant, id, source, err);
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
  rc = sb_ctx_get_async(e->o.ctx, tenant, context_id, 0, start_with_context, op,
                        err);
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
    /* Checked now as a context created directly (sb_ctx_create_async)
     * is, though it is written with the run's first step: what the
     * server sets is not taken from the caller, another tenant least of
     * all, and a field that does not validate is named where the caller
     * put it. */
    sb_error cerr = {0};
    if ((rc = sb_ctx_check_new(e->o.ctx, s->tenant, given, &cerr)) != 0)
      return rc == SB_EINVAL
                 ? sb_error_set(err, rc, "input.context.%.400s", cerr.msg)
                 : sb_error_set(err, rc, "input.context: %.400s", cerr.msg);
    new_ctx = sb_ctx_fill_defaults(given ? given : NULL);
    if (!new_ctx) return sb_error_set(err, SB_ENOMEM, "out of memory");
  } else if (json_object_get(s->input, "context")) {
    return sb_error_set(err, SB_EINVAL,
                        "input.context: not with contextId (the run works "
                        "on that context)");
  }
  /* A restricted starter's scopes: every step is checked with them; and
   * its trace context, which every call carries. */
  json_t *extra = json_object();
  const sb_principal *p = s->principal;
  if (extra && p && p->restricted) {
    json_t *scopes = json_array();
    for (size_t i = 0; scopes && i < p->scopes_len; i++)
      json_array_append_new(scopes, json_string(p->scopes[i]));
    if (!scopes ||
        json_object_set_new(extra, "principal",
                            json_pack("{so}", "scopes", scopes)) != 0) {
      json_decref(extra);
      extra = NULL;
    }
  }
  if (extra && json_is_object(s->trace) &&
      json_object_set_new(extra, "trace", json_deep_copy(s->trace)) != 0) {
    json_decref(extra);
    extra = NULL;
  }
  if (!extra) {
    json_decref(new_ctx);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  rc = fl_launch(e, s->tenant, def, def->source, s->context_id, new_ctx, s->input,
              extra, cb, ud, err);
  json_decref(extra);
  json_decref(new_ctx);
  return rc;
}

/* ---- cancel, answer ------------------------------------------------------ */

/* A run not in memory: say why the operation does not apply to it, or,
 * for a run in progress that another process drives or left (switchboard
 * run), cancel it, or take it over (waiting) and answer it. */
typedef struct why_op {
  fl_engine_ref ref; /* ref.e: the engine, NULL when it went first */
  sb_flow_cb cb;
  void *ud;
  char what[32];
  int answer;          /* an answer (else a cancellation) */
  char *tenant, *id;
  char *step, *reason; /* the answer's step, the cancellation's reason */
  json_t *value;       /* the answer */
} why_op;

static void why_free(why_op *op) {
  fl_engine_ref_drop(&op->ref);
  sb_free(op->tenant);
  sb_free(op->id);
  sb_free(op->step);
  sb_free(op->reason);
  json_decref(op->value);
  sb_free(op);
}

/* A cancellation (reason NULL: by request), or NULL out of memory. */
static fl_change *cancel_change(const char *reason, sb_flow_cb cb, void *ud) {
  fl_change *c = sb_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->kind = FL_CANCEL;
  char msg[300];
  snprintf(msg, sizeof msg, "cancelled: %s", reason ? reason : "by request");
  if (!(c->message = sb_strdup(msg))) {
    sb_free(c);
    return NULL;
  }
  c->cb = cb;
  c->ud = ud;
  return c;
}

/* The run taken over is in memory, its steps under way: the operation
 * goes on as for any run. */
static void adopted(void *ud, int rc, const sb_error *why) {
  why_op *op = ud;
  sb_error err = {0};
  if (rc == 0) {
    sb_flow_engine *e = op->ref.e;
    rc = op->answer ? sb_flow_run_answer(e, op->tenant, op->id, op->step,
                                         op->value, op->cb, op->ud, &err)
                    : sb_flow_run_cancel(e, op->tenant, op->id, op->reason,
                                         op->cb, op->ud, &err);
  } else if (why) {
    err = *why;
  }
  if (rc != 0) fl_reply(op->cb, op->ud, rc, &err, NULL);
  why_free(op);
}

static void explain_absent(void *ud, sb_store_result *res) {
  why_op *op = ud;
  sb_error err = {0};
  int rc = res->rc;
  sb_flow_status st =
      rc == 0 ? sb_flow_status_of(res->runs.items[0].status) : 0;
  sb_flow_engine *e = fl_engine_ref_drop(&op->ref);
  if (!e) {
    rc = SB_ESTATE; /* the engine is gone */
    sb_error_set(&err, rc, "the server is stopping");
  }
  /* In progress in the store, and not among the runs this engine brought
   * back at start or took over since (sb_store_runs_claim): another
   * process drives it (`switchboard run`, or another server on the
   * store), or drove it and ended since the last takeover. */
  int elsewhere = rc == 0 && e->listed && !e->stopping &&
                  (st == SB_FLOW_RUNNING || st == SB_FLOW_WAITING) &&
                  !fl_run_find(e, op->tenant, op->id);
  if (elsewhere && !op->answer) {
    /* Cancelled from here, its steps never started here: a process still
     * driving it meets the cancellation at its next write and stops. */
    fl_change *c = cancel_change(op->reason, op->cb, op->ud);
    rc = c ? fl_run_visit(e, &res->runs.items[0], c, &err)
           : sb_error_set(&err, SB_ENOMEM, "out of memory");
    if (rc != 0) {
      fl_change_free(c);
      fl_reply(op->cb, op->ud, rc, &err, NULL);
    }
    why_free(op); /* the change answers */
    return;
  }
  if (elsewhere && st == SB_FLOW_WAITING) {
    /* Left waiting for a server to answer: taken over, then answered. */
    rc = fl_run_adopt(e, &res->runs.items[0], adopted, op, &err);
    if (rc == 0) return; /* adopted() answers */
    fl_reply(op->cb, op->ud, rc, &err, NULL);
    why_free(op);
    return;
  }
  if (!e) {
    /* err says why */
  } else if (elsewhere) {
    /* Running: its steps are under way in the process that drives it;
     * taken over here, they would run twice. */
    rc = sb_error_set(&err, SB_ESTATE,
                      "run %s is running in another process on this store "
                      "(switchboard run, or another server): it can be "
                      "answered here once it waits for an answer, and "
                      "cancelled here now; if that process ends, this "
                      "server takes the run over and goes on with it",
                      op->id);
  } else if (rc == 0 && (st == SB_FLOW_RUNNING || st == SB_FLOW_WAITING)) {
    /* In progress in the store, not yet in memory: the runs to bring back
     * after a restart are still being read. Not "only a running run can",
     * said of a running run: the same request succeeds shortly. */
    rc = SB_EBUSY;
    sb_error_set(&err, rc,
                 "run %s is %s but not yet brought back after a restart; "
                 "retry shortly",
                 res->runs.items[0].id, res->runs.items[0].status);
  } else if (rc == 0) {
    rc = SB_ESTATE;
    sb_error_set(&err, rc, "run %s is %s: only a running or waiting run can %s",
                 res->runs.items[0].id, res->runs.items[0].status, op->what);
  } else {
    err = res->err;
  }
  fl_reply(op->cb, op->ud, rc, &err, NULL);
  why_free(op);
}

/* `answer` (with `step`) for an answer; else a cancellation (`reason`). */
static int absent(sb_flow_engine *e, const char *tenant, const char *id,
                  const char *what, const char *step, const json_t *answer,
                  const char *reason, sb_flow_cb cb, void *ud, sb_error *err) {
  why_op *op = sb_calloc(1, sizeof *op);
  if (!op) return sb_error_set(err, SB_ENOMEM, "out of memory");
  op->cb = cb;
  op->ud = ud;
  snprintf(op->what, sizeof op->what, "%s", what);
  op->answer = answer != NULL;
  op->tenant = sb_strdup(tenant);
  op->id = sb_strdup(id);
  op->step = step ? sb_strdup(step) : NULL;
  op->reason = reason ? sb_strdup(reason) : NULL;
  op->value = answer ? json_deep_copy(answer) : NULL;
  if (!op->tenant || !op->id || (step && !op->step) ||
      (reason && !op->reason) || (answer && !op->value)) {
    why_free(op);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  fl_engine_ref_take(&op->ref, e);
  int rc = sb_store_run_get(e->o.store, tenant, id, explain_absent, op);
  if (rc != 0) {
    why_free(op);
    return sb_error_set(err, rc, "the store is busy; retry shortly");
  }
  return 0;
}

int sb_flow_run_cancel(sb_flow_engine *e, const char *tenant, const char *id,
                       const char *reason, sb_flow_cb cb, void *ud,
                       sb_error *err) {
  if (reason && strlen(reason) > SB_FLOW_REASON_MAX)
    return sb_error_set(err, SB_EINVAL,
                        "reason: %zu bytes; at most %d", strlen(reason),
                        SB_FLOW_REASON_MAX);
  fl_run *r = fl_run_find(e, tenant, id);
  fl_blocked *b = r ? NULL : fl_blocked_find(e, tenant, id);
  if (b) return fl_blocked_cancel(e, b, reason, cb, ud, err);
  if (!r)
    return absent(e, tenant, id, "be cancelled", NULL, NULL, reason, cb, ud,
                  err);
  fl_change *c = cancel_change(reason, cb, ud);
  if (!c) return sb_error_set(err, SB_ENOMEM, "out of memory");
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
  /* The step after the question would wait for the next start anyway,
   * and a question that became active during the drain is not under way
   * in memory ("not waiting" would be wrong): asked again then. */
  int rc = fl_refuse_draining(e, "answer", err);
  if (rc != 0) return rc;
  fl_run *r = fl_run_find(e, tenant, id);
  fl_blocked *b = r ? NULL : fl_blocked_find(e, tenant, id);
  if (b) return fl_blocked_refuse(b, "be answered", err);
  if (!r)
    return absent(e, tenant, id, "be answered", step, answer, NULL, cb, ud,
                  err);
  /* Its steps are not under way again yet: not "not waiting". */
  if (r->loading)
    return sb_error_set(err, SB_EBUSY,
                        "run %s is being brought back (after a restart, "
                        "or resumed); retry shortly",
                        id);
  return fl_steps_answer(r, step, answer, cb, ud, err);
}

/* ---- reading ------------------------------------------------------------- */

enum { READ_GET = 1, READ_LIST, READ_LOADED };

void fl_read_free(fl_read *op) {
  fl_engine_ref_drop(&op->ref);
  json_decref(op->blocked);
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

static void on_read(void *ud, sb_store_result *res) {
  fl_read *op = ud;
  if (res->rc != 0) {
    fl_reply(op->cb, op->ud, res->rc, &res->err, NULL);
    fl_read_free(op);
    return;
  }
  if (op->kind == READ_GET) {
    json_t *v = record_view(&res->runs.items[0]);
    fl_blocked_mark(v, op->blocked);
    fl_reply(op->cb, op->ud, v ? 0 : SB_EIO,
             &(sb_error){.code = SB_EIO,
                         .msg = "run: the stored state is unreadable"},
             v);
    json_decref(v);
  } else if (op->kind == READ_LIST) {
    json_t *list = json_array();
    for (size_t i = 0; i < res->runs.len; i++) {
      json_t *v = sb_flow_run_view(res->runs.items[i].doc, 1);
      fl_blocked_mark(v, op->blocked);
      if (v) json_array_append_new(list, v);
    }
    json_t *out = json_pack("{so}", "runs", list);
    if (res->runs.len == op->limit && op->limit)
      json_object_set_new(out, "nextCursor",
                          json_string(res->runs.items[res->runs.len - 1].id));
    fl_reply(op->cb, op->ud, 0, NULL, out);
    json_decref(out);
  } else if (!fl_engine_ref_drop(&op->ref)) {
    fl_reply(op->cb, op->ud, SB_ESTATE,
             &(sb_error){.code = SB_ESTATE, .msg = "the server is stopping"},
             NULL);
  } else {
    op->loaded(op, &res->runs.items[0]); /* frees op */
    return;
  }
  fl_read_free(op);
}

static int read_run(sb_flow_engine *e, int kind, const char *tenant,
                    const char *id, const char *status, const char *cursor,
                    size_t limit, const char *step, fl_read_loaded loaded,
                    sb_flow_cb cb, void *ud, sb_error *err) {
  fl_read *op = sb_calloc(1, sizeof *op);
  if (!op || (step && !(op->step = sb_strdup(step)))) {
    sb_free(op);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  op->cb = cb;
  op->ud = ud;
  op->kind = kind;
  op->limit = limit ? limit : 50;
  op->loaded = loaded;
  /* The engine may be gone when the store answers: a get or a list takes
   * what it needs of it now; resume and fork need it then (ref). */
  if (kind != READ_LOADED)
    op->blocked = fl_blocked_snapshot(e, tenant, id);
  else
    fl_engine_ref_take(&op->ref, e);
  int rc = kind == READ_LIST
               ? sb_store_run_list(e->o.store, tenant, status, cursor,
                                   op->limit, on_read, op)
               : sb_store_run_get(e->o.store, tenant, id, on_read, op);
  if (rc != 0) {
    fl_read_free(op);
    return sb_error_set(err, rc,
                        rc == SB_EBUSY ? "the store is busy; retry shortly"
                                       : "runs: cannot read (%s)",
                        sb_strerror(rc));
  }
  return 0;
}

int sb_flow_run_get(sb_flow_engine *e, const char *tenant, const char *id,
                    sb_flow_cb cb, void *ud, sb_error *err) {
  return read_run(e, READ_GET, tenant, id, NULL, NULL, 0, NULL, NULL, cb, ud,
                  err);
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
  return read_run(e, READ_LIST, tenant, NULL, status, cursor, limit, NULL, NULL,
                  cb, ud, err);
}

int fl_read_run(sb_flow_engine *e, const char *tenant, const char *id,
                const char *step, fl_read_loaded loaded, sb_flow_cb cb,
                void *ud, sb_error *err) {
  return read_run(e, READ_LOADED, tenant, id, NULL, NULL, 0, step, loaded, cb,
                  ud, err);
}
