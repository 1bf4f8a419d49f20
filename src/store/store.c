/* store.c: the backend-neutral face of the store.
 *
 * Owns what every backend shares: the tenant check, the copy of a call's
 * arguments into one request allocation, the bound on pending requests
 * (back-pressure instead of unbounded memory), and the way results come
 * back to the loop — a locked list of completed requests and a uv_async
 * that wakes the loop to run their callbacks. Backends only run requests.
 */
#include "store/store_internal.h"

#include <string.h>

#define DEFAULT_MAX_PENDING 4096
/* Key loads are a server's own poll (one in flight per keyring, every
 * 250 ms): they have room of their own, so a poll never takes a client's
 * place under max_pending (which may be 1), and a client's burst never
 * starves the poll. */
#define MAX_BACKGROUND 8

/* ---- completion: any thread -> the loop ------------------------------ */

/* Key loads count apart from clients' work (see MAX_BACKGROUND). */
static int is_background(st_op op) { return op == ST_OP_KEYS_LOAD; }

static void run_callbacks(sb_store *st) {
  uv_mutex_lock(&st->done_lock);
  st_req *r = st->done_head;
  st->done_head = st->done_tail = NULL;
  uv_mutex_unlock(&st->done_lock);
  while (r) {
    st_req *next = r->next;
    st->pending--;
    if (is_background(r->op)) st->background--;
    if (r->res.rc == 0 && r->res.events.len && st_op_writes(r->op) &&
        st->on_events)
      st->on_events(st->on_events_ud, r->tenant, &r->res.events);
    r->cb(r->ud, &r->res);
    sb_store_record_clear(&r->res.record);
    sb_store_versions_clear(&r->res.versions);
    sb_store_event_rows_clear(&r->res.events);
    sb_store_runs_clear(&r->res.runs);
    sb_store_tenant_rows_clear(&r->res.tenants);
    sb_store_key_rows_clear(&r->res.keys);
    sb_free(r);
    r = next;
  }
  /* Pending requests keep the loop running; an idle store does not. */
  if (st->pending == 0 && st->wake) uv_unref((uv_handle_t *)st->wake);
}

static void on_wake(uv_async_t *h) { run_callbacks(h->data); }

void st_complete(sb_store *st, st_req *req) {
  req->next = NULL;
  st_complete_list(st, req);
}

void st_complete_list(sb_store *st, st_req *list) {
  if (!list) return;
  st_req *last = list;
  while (last->next)
    last = last->next;
  uv_mutex_lock(&st->done_lock);
  if (st->done_tail)
    st->done_tail->next = list;
  else
    st->done_head = list;
  st->done_tail = last;
  uv_mutex_unlock(&st->done_lock);
  uv_async_send(st->wake);
}

int st_base_init(sb_store *st, const sb_store_options *o, sb_error *err) {
  if (!o->loop)
    return sb_error_set(err, SB_EINVAL, "store: a loop is required");
  st->loop = o->loop;
  st->max_pending = o->max_pending > 0 ? o->max_pending : DEFAULT_MAX_PENDING;
  st->wake = sb_calloc(1, sizeof *st->wake);
  if (!st->wake) return sb_error_set(err, SB_ENOMEM, "out of memory");
  if (uv_mutex_init(&st->done_lock) != 0) {
    sb_free(st->wake);
    st->wake = NULL;
    return sb_error_set(err, SB_ENOMEM, "store: cannot create a lock");
  }
  if (uv_async_init(o->loop, st->wake, on_wake) != 0) {
    uv_mutex_destroy(&st->done_lock);
    sb_free(st->wake);
    st->wake = NULL;
    return sb_error_set(err, SB_ENOMEM, "store: cannot create a loop handle");
  }
  st->wake->data = st;
  /* Idle stores do not keep the loop alive; pending requests do (below). */
  uv_unref((uv_handle_t *)st->wake);
  return 0;
}

void st_base_fail(sb_store *st) {
  if (!st->wake) return;
  uv_close((uv_handle_t *)st->wake, sb_free_handle);
  uv_mutex_destroy(&st->done_lock);
  st->wake = NULL;
}

void sb_store_close(sb_store *st) {
  if (!st) return;
  st->closing = 1;
  st->ops->stop(st);
  /* Every request is back: their callbacks run now, and any request a
   * callback submits is refused (closing). */
  run_callbacks(st);
  st_base_fail(st);
  sb_store_agent_rows_clear(&st->agents_at_open);
  st->ops->destroy(st);
}

uv_loop_t *sb_store_loop(const sb_store *st) { return st->loop; }

int sb_store_schema_version(sb_store *st) {
  return st->ops->schema_version(st);
}

void sb_store_get_stats(sb_store *st, sb_store_stats *out) {
  out->batches = atomic_load(&st->batches);
  out->writes = atomic_load(&st->writes);
  out->writer_cpu_us = atomic_load(&st->writer_cpu_us);
  out->pending = st->pending;
  out->lost = atomic_load(&st->lost);
}

void sb_store_on_events(sb_store *st, sb_store_events_cb cb, void *ud) {
  st->on_events = cb;
  st->on_events_ud = ud;
}

int sb_store_hold_writes(sb_store *st, int hold) {
  return st->ops->hold_writes(st, hold);
}

/* ---- submission ------------------------------------------------------ */

/* Strings of one request, copied after the struct. */
typedef struct req_strings {
  const char *tenant, *id, *workflow_id, *session_id, *doc, *patch, *filter;
} req_strings;

static size_t len0(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *put(char **at, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  memcpy(*at, s, n);
  const char *copy = *at;
  *at += n;
  return copy;
}

static size_t extras_size(const sb_store_extras *x) {
  if (!x) return 0;
  size_t n = x->nevents * sizeof(sb_store_event);
  if (x->run)
    n += len0(x->run->id) + len0(x->run->workflow) + len0(x->run->context_id) +
         len0(x->run->status) + len0(x->run->doc) + len0(x->run->def);
  for (size_t i = 0; i < x->nevents; i++)
    n += len0(x->events[i].type) + len0(x->events[i].run_id) +
         len0(x->events[i].data);
  return n;
}

static int extras_valid(const sb_store_extras *x) {
  if (!x) return 1;
  if (x->run && (!x->run->id || !x->run->workflow || !x->run->status ||
                 !x->run->doc || x->run->expected_rev < 0))
    return 0;
  if (x->nevents && !x->events) return 0;
  for (size_t i = 0; i < x->nevents; i++)
    if (!x->events[i].type || !x->events[i].data) return 0;
  return 1;
}

/* Copy the extras into the request, at `at` (the events array first: it
 * is aligned, right after the struct). */
static void extras_put(st_req *r, char *at, const sb_store_extras *x) {
  if (!x) return;
  if (x->nevents) {
    r->events = (sb_store_event *)(void *)at;
    r->nevents = x->nevents;
    at += x->nevents * sizeof(sb_store_event);
    for (size_t i = 0; i < x->nevents; i++) {
      r->events[i].type = put(&at, x->events[i].type);
      r->events[i].run_id = put(&at, x->events[i].run_id);
      r->events[i].data = put(&at, x->events[i].data);
      r->events[i].run_must_exist = x->events[i].run_must_exist;
    }
  }
  if (x->run) {
    r->has_run = 1;
    r->run.id = put(&at, x->run->id);
    r->run.workflow = put(&at, x->run->workflow);
    r->run.context_id = put(&at, x->run->context_id);
    r->run.status = put(&at, x->run->status);
    r->run.doc = put(&at, x->run->doc);
    r->run.def = put(&at, x->run->def);
    r->run.expected_rev = x->run->expected_rev;
  }
}

/* A request for op with copies of s and x, or NULL (rc says why). */
static st_req *req_new_ex(sb_store *st, st_op op, const req_strings *s,
                          const sb_store_extras *x, sb_store_cb cb, void *ud,
                          int *rc) {
  if (!s->tenant || !*s->tenant || st->closing || !extras_valid(x)) {
    *rc = st->closing ? SB_ESTATE : SB_EINVAL;
    return NULL;
  }
  if (is_background(op) ? st->background >= MAX_BACKGROUND
                            : st->pending - st->background >= st->max_pending) {
    *rc = SB_EBUSY;
    return NULL;
  }
  size_t xs = extras_size(x);
  size_t extra = xs + len0(s->tenant) + len0(s->id) + len0(s->workflow_id) +
                 len0(s->session_id) + len0(s->doc) + len0(s->patch) +
                 len0(s->filter);
  st_req *r = sb_calloc(1, sizeof *r + extra);
  if (!r) {
    *rc = SB_ENOMEM;
    return NULL;
  }
  char *at = (char *)(r + 1);
  extras_put(r, at, x);
  at += xs;
  r->tenant = put(&at, s->tenant);
  r->id = put(&at, s->id);
  r->workflow_id = put(&at, s->workflow_id);
  r->session_id = put(&at, s->session_id);
  r->doc = put(&at, s->doc);
  r->patch = put(&at, s->patch);
  r->filter = put(&at, s->filter);
  r->op = op;
  r->cb = cb;
  r->ud = ud;
  *rc = 0;
  return r;
}

static st_req *req_new(sb_store *st, st_op op, const req_strings *s,
                       sb_store_cb cb, void *ud, int *rc) {
  return req_new_ex(st, op, s, NULL, cb, ud, rc);
}

static int submit(sb_store *st, st_req *r) {
  if (st->pending++ == 0) uv_ref((uv_handle_t *)st->wake);
  if (is_background(r->op)) st->background++;
  st->ops->submit(st, r);
  return 0;
}

int sb_store_create(sb_store *st, const char *tenant,
                    const sb_store_record *rec, const sb_store_extras *extras,
                    sb_store_cb cb, void *ud) {
  int rc;
  req_strings s = {tenant,
                   rec->id,
                   rec->workflow_id ? rec->workflow_id : "",
                   rec->session_id ? rec->session_id : "",
                   rec->doc,
                   NULL,
                   NULL};
  if (!rec->id || !rec->doc) return SB_EINVAL;
  st_req *r = req_new_ex(st, ST_OP_CREATE, &s, extras, cb, ud, &rc);
  if (!r) return rc;
  r->created_ms = rec->created_ms;
  r->now_ms = rec->created_ms;
  r->expires_ms = rec->expires_ms;
  return submit(st, r);
}

int sb_store_get(sb_store *st, const char *tenant, const char *id,
                 int64_t now_ms, sb_store_cb cb, void *ud) {
  int rc;
  req_strings s = {.tenant = tenant, .id = id ? id : ""};
  st_req *r = req_new(st, ST_OP_GET, &s, cb, ud, &rc);
  if (!r) return rc;
  r->now_ms = now_ms;
  return submit(st, r);
}

int sb_store_append(sb_store *st, const sb_store_append_args *a, sb_store_cb cb,
                    void *ud) {
  int rc;
  if (!a->new_doc) return SB_EINVAL;
  req_strings s = {.tenant = a->tenant,
                   .id = a->id ? a->id : "",
                   .doc = a->new_doc,
                   .patch = a->patch};
  st_req *r = req_new_ex(st, ST_OP_APPEND, &s, a->extras, cb, ud, &rc);
  if (!r) return rc;
  r->version = a->expected_version;
  r->snapshot = a->snapshot;
  r->expires_ms = a->expires_ms;
  r->now_ms = a->now_ms;
  return submit(st, r);
}

int sb_store_version_chain(sb_store *st, const char *tenant, const char *id,
                           int64_t n, int64_t now_ms, sb_store_cb cb,
                           void *ud) {
  int rc;
  req_strings s = {.tenant = tenant, .id = id ? id : ""};
  st_req *r = req_new(st, ST_OP_CHAIN, &s, cb, ud, &rc);
  if (!r) return rc;
  r->version = n;
  r->now_ms = now_ms;
  return submit(st, r);
}

int sb_store_history(sb_store *st, const char *tenant, const char *id,
                     int64_t before, size_t limit, int64_t now_ms,
                     sb_store_cb cb, void *ud) {
  int rc;
  req_strings s = {.tenant = tenant, .id = id ? id : ""};
  st_req *r = req_new(st, ST_OP_HISTORY, &s, cb, ud, &rc);
  if (!r) return rc;
  r->version = before;
  r->limit = (int64_t)limit;
  r->now_ms = now_ms;
  return submit(st, r);
}

int sb_store_sweep_expired(sb_store *st, int64_t now_ms, int max,
                           sb_store_cb cb, void *ud) {
  int rc;
  /* A sweep crosses tenants; the request still needs a non-empty one. */
  req_strings s = {.tenant = "*"};
  st_req *r = req_new(st, ST_OP_SWEEP, &s, cb, ud, &rc);
  if (!r) return rc;
  r->now_ms = now_ms;
  r->limit = max > 0 ? max : 1000;
  return submit(st, r);
}

int sb_store_count(sb_store *st, const char *tenant, sb_store_cb cb, void *ud) {
  int rc;
  req_strings s = {.tenant = tenant};
  st_req *r = req_new(st, ST_OP_COUNT, &s, cb, ud, &rc);
  if (!r) return rc;
  return submit(st, r);
}

int sb_store_write(sb_store *st, const char *tenant,
                   const sb_store_extras *extras, int64_t now_ms,
                   sb_store_cb cb, void *ud) {
  int rc;
  if (!extras || (!extras->run && !extras->nevents)) return SB_EINVAL;
  req_strings s = {.tenant = tenant};
  st_req *r = req_new_ex(st, ST_OP_WRITE, &s, extras, cb, ud, &rc);
  if (!r) return rc;
  r->now_ms = now_ms;
  return submit(st, r);
}

int sb_store_run_get(sb_store *st, const char *tenant, const char *id,
                     sb_store_cb cb, void *ud) {
  int rc;
  req_strings s = {.tenant = tenant, .id = id ? id : ""};
  st_req *r = req_new(st, ST_OP_RUN_GET, &s, cb, ud, &rc);
  if (!r) return rc;
  return submit(st, r);
}

int sb_store_run_list(sb_store *st, const char *tenant, const char *status,
                      const char *before, size_t limit, sb_store_cb cb,
                      void *ud) {
  int rc;
  req_strings s = {.tenant = tenant, .id = before, .filter = status};
  st_req *r = req_new(st, ST_OP_RUN_LIST, &s, cb, ud, &rc);
  if (!r) return rc;
  r->limit = limit > 0 && limit <= 1000 ? (int64_t)limit : 50;
  return submit(st, r);
}

int sb_store_runs_claim(sb_store *st, int at_start, sb_store_cb cb, void *ud) {
  int rc;
  req_strings s = {.tenant = "*"}; /* crosses tenants */
  st_req *r = req_new(st, ST_OP_RUNS_CLAIM, &s, cb, ud, &rc);
  if (!r) return rc;
  r->version = at_start != 0;
  return submit(st, r);
}

int sb_store_events_read(sb_store *st, const char *tenant, int64_t since,
                         const char *run_id, size_t limit, size_t max_bytes,
                         sb_store_cb cb, void *ud) {
  int rc;
  req_strings s = {.tenant = tenant, .filter = run_id};
  st_req *r = req_new(st, ST_OP_EVENTS_READ, &s, cb, ud, &rc);
  if (!r) return rc;
  r->version = since;
  r->limit = limit > 0 && limit <= 10000 ? (int64_t)limit : 500;
  r->max_bytes = max_bytes;
  return submit(st, r);
}

int sb_store_events_trim(sb_store *st, int64_t before_ms, int max,
                         sb_store_cb cb, void *ud) {
  int rc;
  req_strings s = {.tenant = "*"};
  st_req *r = req_new(st, ST_OP_EVENTS_TRIM, &s, cb, ud, &rc);
  if (!r) return rc;
  r->now_ms = before_ms;
  r->limit = max > 0 ? max : 10000;
  return submit(st, r);
}

int sb_store_tenant_create(sb_store *st, const char *id, const char *name,
                           int64_t now_ms, sb_store_cb cb, void *ud) {
  int rc;
  req_strings s = {.tenant = id, .doc = name ? name : ""};
  st_req *r = req_new(st, ST_OP_TENANT_CREATE, &s, cb, ud, &rc);
  if (!r) return rc;
  r->now_ms = now_ms;
  return submit(st, r);
}

int sb_store_tenant_list(sb_store *st, sb_store_cb cb, void *ud) {
  int rc;
  req_strings s = {.tenant = "*"}; /* crosses tenants */
  st_req *r = req_new(st, ST_OP_TENANT_LIST, &s, cb, ud, &rc);
  if (!r) return rc;
  return submit(st, r);
}

int sb_store_key_create(sb_store *st, const sb_store_key_args *a,
                        sb_store_cb cb, void *ud) {
  int rc;
  if (!a->id || !*a->id || !a->hash || !*a->hash) return SB_EINVAL;
  req_strings s = {.tenant = a->tenant,
                   .id = a->id,
                   .patch = a->hash,
                   .doc = a->scopes ? a->scopes : "[]"};
  st_req *r = req_new(st, ST_OP_KEY_CREATE, &s, cb, ud, &rc);
  if (!r) return rc;
  r->now_ms = a->created_ms;
  r->expires_ms = a->expires_ms;
  return submit(st, r);
}

int sb_store_key_list(sb_store *st, const char *tenant, sb_store_cb cb,
                      void *ud) {
  int rc;
  req_strings s = {.tenant = "*", .filter = tenant};
  st_req *r = req_new(st, ST_OP_KEY_LIST, &s, cb, ud, &rc);
  if (!r) return rc;
  return submit(st, r);
}

int sb_store_key_revoke(sb_store *st, const char *id, int64_t now_ms,
                        sb_store_cb cb, void *ud) {
  int rc;
  if (!id || !*id) return SB_EINVAL;
  req_strings s = {.tenant = "*", .id = id};
  st_req *r = req_new(st, ST_OP_KEY_REVOKE, &s, cb, ud, &rc);
  if (!r) return rc;
  r->now_ms = now_ms;
  return submit(st, r);
}

int sb_store_keys_load(sb_store *st, int64_t known_epoch, sb_store_cb cb,
                       void *ud) {
  int rc;
  req_strings s = {.tenant = "*"};
  st_req *r = req_new(st, ST_OP_KEYS_LOAD, &s, cb, ud, &rc);
  if (!r) return rc;
  r->version = known_epoch;
  return submit(st, r);
}

int sb_store_agent_put(sb_store *st, const char *tenant, const char *id,
                       const char *definition, int64_t now_ms,
                       const sb_store_event *audit, sb_store_cb cb, void *ud) {
  int rc;
  if (!id || !*id) return SB_EINVAL;
  req_strings s = {.tenant = tenant, .id = id, .doc = definition};
  sb_store_extras x = {.events = audit, .nevents = audit ? 1 : 0};
  st_req *r = req_new_ex(st, ST_OP_AGENT_PUT, &s, audit ? &x : NULL, cb, ud,
                         &rc);
  if (!r) return rc;
  r->now_ms = now_ms;
  return submit(st, r);
}

void sb_store_agents_at_open(sb_store *st, sb_store_agent_rows *out) {
  *out = st->agents_at_open;
  st->agents_at_open = (sb_store_agent_rows){0};
}

void sb_store_agent_rows_clear(sb_store_agent_rows *a) {
  for (size_t i = 0; i < a->len; i++) {
    sb_free(a->items[i].id);
    sb_free(a->items[i].tenant);
    sb_free(a->items[i].definition);
  }
  sb_free(a->items);
  a->items = NULL;
  a->len = 0;
}

void sb_store_tenant_rows_clear(sb_store_tenant_rows *t) {
  for (size_t i = 0; i < t->len; i++) {
    sb_free(t->items[i].id);
    sb_free(t->items[i].name);
  }
  sb_free(t->items);
  t->items = NULL;
  t->len = 0;
}

void sb_store_key_rows_clear(sb_store_key_rows *k) {
  for (size_t i = 0; i < k->len; i++) {
    sb_free(k->items[i].id);
    sb_free(k->items[i].tenant);
    sb_free(k->items[i].hash);
    sb_free(k->items[i].scopes);
  }
  sb_free(k->items);
  k->items = NULL;
  k->len = 0;
}

void sb_store_event_rows_clear(sb_store_event_rows *e) {
  for (size_t i = 0; i < e->len; i++) {
    sb_free(e->items[i].type);
    sb_free(e->items[i].run_id);
    sb_free(e->items[i].data);
  }
  sb_free(e->items);
  e->items = NULL;
  e->len = 0;
}

void sb_store_runs_clear(sb_store_runs *r) {
  for (size_t i = 0; i < r->len; i++) {
    sb_store_run_record *x = &r->items[i];
    sb_free(x->tenant);
    sb_free(x->id);
    sb_free(x->workflow);
    sb_free(x->context_id);
    sb_free(x->status);
    sb_free(x->doc);
    sb_free(x->def);
  }
  sb_free(r->items);
  r->items = NULL;
  r->len = 0;
}

void sb_store_record_clear(sb_store_record *r) {
  sb_free(r->id);
  sb_free(r->workflow_id);
  sb_free(r->session_id);
  sb_free(r->doc);
  memset(r, 0, sizeof *r);
}

void sb_store_versions_clear(sb_store_versions *v) {
  for (size_t i = 0; i < v->len; i++) {
    sb_free(v->items[i].patch);
    sb_free(v->items[i].snapshot);
  }
  sb_free(v->items);
  v->items = NULL;
  v->len = 0;
}
