/* events.c: the bus over the store's per-tenant event log.
 *
 * The store calls on_committed for every write that carried events, on
 * the loop, in commit order. Each subscription keeps the last seq it has
 * seen of its tenant: an event right after it is delivered at once; one
 * further on means something was missed (written by another process, or
 * before the subscription caught up), and the subscription reads the log
 * from its last seq instead, until it is level again. A subscription is
 * never called while it reads, so what it sees is always in order.
 */
#include <string.h>

#include "events/events.h"

#define MODULE "events"
#define READ_PAGE 500
/* A page of the log read at once is also bounded by its bytes: events may
 * hold up to events.max_data_bytes (16 MiB at most) each, and 500 of them
 * were copied out of the store and held on the loop together; a stream
 * takes far less at a time (what its client has not read pauses it). */
#define READ_PAGE_BYTES (1u << 20)
#define DEFAULT_RETENTION_MS (7LL * 24 * 3600 * 1000)
#define DEFAULT_MAX_DATA_BYTES 65536
#define DEFAULT_TRIM_EVERY_MS 60000
#define DEFAULT_POLL_EVERY_MS 250
#define TRIM_BATCH 10000
/* The first trim comes this soon after start (a server restarted more
 * often than every trim_every_ms would never trim otherwise), and a batch
 * that came back full is followed by the next this soon. */
#define TRIM_SOON_MS 1000
#define TRIM_NEXT_BATCH_MS 100

static const char *const type_names[SB_EVENT__COUNT] = {
    [SB_EVENT_CUSTOM] = NULL,
    [SB_EVENT_CONTEXT_CREATED] = "context.created",
    [SB_EVENT_CONTEXT_UPDATED] = "context.updated",
    [SB_EVENT_RUN_STARTED] = "run.started",
    [SB_EVENT_STEP_STARTED] = "step.started",
    [SB_EVENT_STEP_COMPLETED] = "step.completed",
    [SB_EVENT_STEP_FAILED] = "step.failed",
    [SB_EVENT_STEP_RETRYING] = "step.retrying",
    [SB_EVENT_AGENT_HANDOFF] = "agent.handoff",
    [SB_EVENT_AGENT_FAILED] = "agent.failed",
    [SB_EVENT_BREAKER_OPENED] = "breaker.opened",
    [SB_EVENT_BREAKER_CLOSED] = "breaker.closed",
    [SB_EVENT_RUN_WAITING] = "run.waiting",
    [SB_EVENT_RUN_RESUMED] = "run.resumed",
    [SB_EVENT_RUN_COMPLETED] = "run.completed",
    [SB_EVENT_RUN_FAILED] = "run.failed",
    [SB_EVENT_RUN_CANCELLED] = "run.cancelled",
    [SB_EVENT_AUDIT_AUTH_FAILED] = "audit.auth_failed",
    [SB_EVENT_AUDIT_ADMIN] = "audit.admin",
};

const char *sb_event_type_name(sb_event_type t) {
  return (unsigned)t < SB_EVENT__COUNT ? type_names[t] : NULL;
}

sb_event_type sb_event_type_of(const char *name) {
  for (int t = 1; name && t < SB_EVENT__COUNT; t++)
    if (strcmp(type_names[t], name) == 0) return (sb_event_type)t;
  return SB_EVENT_CUSTOM;
}

/* n bytes of names of [a-z0-9_-] joined by single dots; how many dots,
 * or -1. */
static int type_chars(const char *s, size_t n) {
  if (n == 0 || s[0] == '.' || s[n - 1] == '.') return -1;
  int dots = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '.') {
      if (s[i + 1] == '.') return -1; /* an empty name: a..b */
      dots++;
    } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-')) {
      return -1;
    }
  }
  return dots;
}

int sb_event_type_valid(const char *name) {
  size_t n = name ? strlen(name) : 0;
  return n <= 128 && type_chars(name, n) > 0;
}

/* The first names of switchboard's own types: a "run.completed.x" or a
 * "run..completed" would pass a run.* filter as one of them. */
static const char *const reserved_namespaces[] = {
    "run.", "step.", "agent.", "context.", "breaker.", "audit."};

int sb_event_type_publishable(const char *name) {
  if (!sb_event_type_valid(name)) return 0;
  for (size_t i = 0;
       i < sizeof reserved_namespaces / sizeof *reserved_namespaces; i++)
    if (strncmp(name, reserved_namespaces[i], strlen(reserved_namespaces[i])) ==
        0)
      return 0;
  return 1;
}

/* ---- the bus and its subscriptions ---------------------------------- */

struct sb_events_sub {
  sb_events *ev;
  sb_list_link link; /* in ev->subs while ev is set */
  char *tenant;
  int64_t last;
  int64_t heard; /* the newest seq this process has heard of for the
                    tenant while s was there (delivered to it or not) */
  char **types;
  size_t ntypes;
  char *run_id;
  sb_events_cb on_event;
  sb_events_error_cb on_error;
  void *ud;
  int reading;    /* a read of the log is under way */
  int read_again; /* ...and events were committed meanwhile */
  int paused;     /* deliver nothing: resume reads on from `last` */
  int dead;       /* unsubscribed: freed once nothing holds it */
};

struct sb_events {
  sb_store *store;
  sb_list subs;    /* newest first */
  int dispatching; /* subscriptions are being called: free none */
  int64_t retention_ms;
  size_t max_data_bytes;
  uv_timer_t *trim;
  uint64_t trim_every_ms;
  struct trim_op *trimming; /* a trim under way */
  uv_timer_t *poll;
  sb_list polls; /* poll_op: reads of other processes' events under way */
  sb_events_tap_cb tap;
  void *tap_ud;
};

/* A read of what other processes committed, for one tenant; it outlives
 * a bus freed meanwhile (ev NULL). */
typedef struct poll_op {
  sb_events *ev;
  sb_list_link link; /* in ev->polls */
  char *tenant;
} poll_op;

/* A trim under way outlives a bus freed meanwhile. */
typedef struct trim_op {
  sb_events *ev;
} trim_op;

static void sub_free(sb_events_sub *s) {
  for (size_t i = 0; i < s->ntypes; i++) sb_free(s->types[i]);
  sb_free(s->types);
  sb_free(s->run_id);
  sb_free(s->tenant);
  sb_free(s);
}

static void sub_unlink(sb_events_sub *s) {
  sb_events *ev = s->ev;
  if (!ev) return;
  sb_list_unlink(&ev->subs, &s->link);
  s->ev = NULL;
}

/* Free the dead subscriptions nothing holds any more. */
static void sweep_dead(sb_events *ev) {
  if (ev->dispatching) return;
  sb_list_link *n, *next;
  SB_LIST_FOREACH_SAFE(n, next, &ev->subs) {
    sb_events_sub *s = sb_list_entry(n, sb_events_sub, link);
    if (s->dead && !s->reading) {
      sub_unlink(s);
      sub_free(s);
    }
  }
}

int sb_events_filter_match(const sb_events_filter *f, const char *type,
                           const char *run_id) {
  if (f->run_id && strcmp(f->run_id, run_id ? run_id : "") != 0) return 0;
  if (!f->types || f->ntypes == 0) return 1;
  for (size_t i = 0; i < f->ntypes; i++) {
    const char *t = f->types[i];
    size_t n = strlen(t);
    if (n >= 2 && strcmp(t + n - 2, ".*") == 0) {
      if (strncmp(type, t, n - 1) == 0) return 1;
    } else if (strcmp(type, t) == 0) {
      return 1;
    }
  }
  return 0;
}

int sb_events_type_pattern_ok(const char *pattern) {
  if (!pattern) return 0;
  size_t n = strlen(pattern);
  if (n >= 2 && strcmp(pattern + n - 2, ".*") == 0)
    return n - 2 <= 126 && type_chars(pattern, n - 2) >= 0;
  return n >= 3 && n <= 128 && type_chars(pattern, n) > 0;
}

static int sub_wants(const sb_events_sub *s, const char *type,
                     const char *run_id) {
  sb_events_filter f = {.types = (const char *const *)s->types,
                        .ntypes = s->ntypes,
                        .run_id = s->run_id};
  return sb_events_filter_match(&f, type, run_id);
}

/* Hand one row to s if it takes it; s->last moves on either way. */
static void deliver(sb_events_sub *s, const sb_store_event_row *row) {
  s->last = row->seq;
  if (s->dead || !sub_wants(s, row->type, row->run_id)) return;
  sb_event e = {.tenant = s->tenant,
                .seq = row->seq,
                .created_ms = row->created_ms,
                .type = row->type,
                .run_id = row->run_id,
                .data = row->data};
  s->on_event(s->ud, &e);
}

static void start_read(sb_events_sub *s);

static void on_read(void *ud, sb_store_result *res) {
  sb_events_sub *s = ud;
  sb_events *ev = s->ev;
  s->reading = 0;
  if (s->dead || !ev) {
    if (!ev) sub_free(s); /* the bus is gone: it left us to free */
    else sweep_dead(ev);
    return;
  }
  if (res->rc != 0) {
    s->dead = 1; /* the owner unsubscribes; nothing more is delivered */
    if (s->on_error) s->on_error(s->ud, &res->err);
    sweep_dead(ev);
    return;
  }
  ev->dispatching++;
  for (size_t i = 0; i < res->events.len && !s->dead && !s->paused; i++)
    if (res->events.items[i].seq > s->last) deliver(s, &res->events.items[i]);
  ev->dispatching--;
  if (!s->dead && !s->paused &&
      (res->more || s->read_again))
    start_read(s);
  sweep_dead(ev);
}

static void start_read(sb_events_sub *s) {
  s->read_again = 0;
  int rc = sb_store_events_read(s->ev->store, s->tenant, s->last, NULL,
                                READ_PAGE, READ_PAGE_BYTES, on_read, s);
  if (rc == 0) {
    s->reading = 1;
    return;
  }
  s->dead = 1;
  sb_error err = {0};
  sb_error_set(&err, rc, "events: cannot read the log (%s)", sb_strerror(rc));
  if (s->on_error) s->on_error(s->ud, &err);
}

/* The store committed rows of `tenant`: pass them on in order. */
static void on_committed(void *ud, const char *tenant,
                         const sb_store_event_rows *rows) {
  sb_events *ev = ud;
  if (ev->tap && rows->len) ev->tap(ev->tap_ud, tenant, rows->items[rows->len - 1].seq);
  ev->dispatching++;
  for (sb_list_link *n = sb_list_first(&ev->subs); n; n = sb_list_next(n)) {
    sb_events_sub *s = sb_list_entry(n, sb_events_sub, link);
    if (s->dead || strcmp(s->tenant, tenant) != 0) continue;
    if (rows->len && rows->items[rows->len - 1].seq > s->heard)
      s->heard = rows->items[rows->len - 1].seq;
    /* Reading, or paused: the log has them for the next read. */
    if (s->reading || s->paused) {
      s->read_again = 1;
      continue;
    }
    for (size_t i = 0; i < rows->len && !s->dead && !s->paused; i++) {
      const sb_store_event_row *row = &rows->items[i];
      if (row->seq <= s->last) continue;
      if (row->seq > s->last + 1) {
        start_read(s); /* missed some: the log has them */
        break;
      }
      deliver(s, row);
    }
  }
  ev->dispatching--;
  sweep_dead(ev);
}

/* ---- other processes' events ---------------------------------------------
 * The store tells this process of its own commits only. A server beside
 * it on the store, or `switchboard run`, writes events nobody here would
 * hear until a commit of ours showed the gap: a run waiting on them would
 * time out, a stream would stall. So every poll_every_ms, for each tenant
 * with subscriptions, the log is read past the newest number this process
 * has heard of for it; what it holds goes on as a commit of ours
 * (on_committed skips what was delivered meanwhile). One round at a time. */

static void on_polled(void *ud, sb_store_result *res) {
  poll_op *op = ud;
  sb_events *ev = op->ev;
  if (ev) {
    sb_list_unlink(&ev->polls, &op->link);
    if (res->rc == 0 && res->events.len)
      on_committed(ev, op->tenant, &res->events);
  }
  sb_free(op->tenant);
  sb_free(op);
}

typedef struct tenant_seen {
  const char *tenant;
  int64_t last;
} tenant_seen;

static void on_poll_timer(uv_timer_t *t) {
  sb_events *ev = t->data;
  if (!sb_list_empty(&ev->polls) || sb_list_empty(&ev->subs)) return;
  tenant_seen *seen = NULL;
  size_t n = 0, cap = 0;
  for (sb_list_link *l = sb_list_first(&ev->subs); l; l = sb_list_next(l)) {
    sb_events_sub *s = sb_list_entry(l, sb_events_sub, link);
    if (s->dead) continue;
    size_t i = 0;
    while (i < n && strcmp(seen[i].tenant, s->tenant) != 0) i++;
    if (i == n) {
      if (n == cap) {
        size_t grow = cap ? cap * 2 : 8;
        tenant_seen *more = sb_realloc(seen, grow * sizeof *seen);
        if (!more) break;
        seen = more;
        cap = grow;
      }
      seen[n++] = (tenant_seen){s->tenant, 0};
    }
    /* Past what was heard, not what was delivered: a stream its client
     * does not read (paused) would have the same page read again on
     * every round, for as long as it stays open. */
    int64_t at = s->heard > s->last ? s->heard : s->last;
    if (at > seen[i].last) seen[i].last = at;
  }
  for (size_t i = 0; i < n; i++) {
    poll_op *op = sb_calloc(1, sizeof *op);
    if (!op || !(op->tenant = sb_strdup(seen[i].tenant))) {
      sb_free(op);
      break;
    }
    op->ev = ev;
    if (sb_store_events_read(ev->store, op->tenant, seen[i].last, NULL,
                             READ_PAGE, READ_PAGE_BYTES, on_polled,
                             op) != 0) {
      sb_free(op->tenant);
      sb_free(op);
      break; /* the store is busy: the next round */
    }
    sb_list_push_front(&ev->polls, &op->link);
  }
  sb_free(seen);
}

sb_events_sub *sb_events_subscribe(sb_events *ev, const char *tenant,
                                   int64_t since, const sb_events_filter *f,
                                   sb_events_cb on_event,
                                   sb_events_error_cb on_error, void *ud,
                                   sb_error *err) {
  if (!tenant || !*tenant || !on_event || since < 0) {
    sb_error_set(err, SB_EINVAL, "events: a tenant, a callback and a "
                                 "sequence number of 0 or more are needed");
    return NULL;
  }
  sb_events_sub *s = sb_calloc(1, sizeof *s);
  int oom = !s || !(s->tenant = sb_strdup(tenant));
  if (!oom && f && f->run_id) oom = !(s->run_id = sb_strdup(f->run_id));
  if (!oom && f && f->ntypes) {
    oom = !(s->types = sb_calloc(f->ntypes, sizeof *s->types));
    for (size_t i = 0; !oom && i < f->ntypes; i++, s->ntypes++)
      oom = !(s->types[i] = sb_strdup(f->types[i]));
  }
  if (oom) {
    if (s) sub_free(s);
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  s->ev = ev;
  s->last = since;
  s->on_event = on_event;
  s->on_error = on_error;
  s->ud = ud;
  sb_list_push_front(&ev->subs, &s->link);
  /* What was committed after `since` comes from the log first. */
  int rc = sb_store_events_read(ev->store, tenant, since, NULL, READ_PAGE,
                                READ_PAGE_BYTES, on_read, s);
  if (rc != 0) {
    sub_unlink(s);
    sub_free(s);
    sb_error_set(err, rc, rc == SB_EBUSY ? "events: the store is busy; retry "
                                           "shortly"
                                         : "events: cannot read the log (%s)",
                 sb_strerror(rc));
    return NULL;
  }
  s->reading = 1;
  return s;
}

void sb_events_unsubscribe(sb_events_sub *s) {
  if (!s) return;
  s->dead = 1;
  if (s->ev) sweep_dead(s->ev);
}

int64_t sb_events_sub_seq(const sb_events_sub *s) { return s->last; }

int sb_events_sub_catching_up(const sb_events_sub *s) { return s->reading; }

void sb_events_sub_pause(sb_events_sub *s) { s->paused = 1; }

void sb_events_sub_resume(sb_events_sub *s) {
  if (!s->paused) return;
  s->paused = 0;
  /* A read under way delivers when it lands (and reads on if it must);
   * otherwise what came meanwhile is in the log after `last`. */
  if (!s->dead && s->ev && !s->reading) start_read(s);
}

void sb_events_tap(sb_events *ev, sb_events_tap_cb cb, void *ud) {
  ev->tap = cb;
  ev->tap_ud = ud;
}

/* ---- publishing -------------------------------------------------------- */

typedef struct publish_op {
  sb_events_done_cb cb;
  void *ud;
} publish_op;

static void on_published(void *ud, sb_store_result *res) {
  publish_op *op = ud;
  if (op->cb)
    op->cb(op->ud, res->rc,
           res->rc == 0 && res->events.len ? res->events.items[0].seq : 0,
           res->rc ? &res->err : NULL);
  sb_free(op);
}

static int write_one(sb_events *ev, const char *tenant, const char *type,
                     const char *run_id, int run_must_exist,
                     const json_t *data, sb_events_done_cb cb, void *ud,
                     sb_error *err);

static int data_too_big(size_t n, size_t max, sb_error *err) {
  return sb_error_set(err, SB_ETOOBIG,
                      "data: %zu bytes as JSON, more than an event may hold "
                      "(events.max_data_bytes: %zu)",
                      n, max);
}

int sb_events_check_data(const sb_events *ev, const json_t *data,
                         sb_error *err) {
  size_t max = ev ? ev->max_data_bytes : DEFAULT_MAX_DATA_BYTES;
  size_t n = data ? json_dumpb(data, NULL, 0, JSON_COMPACT) : 2;
  return n > max ? data_too_big(n, max, err) : 0;
}

int sb_events_publish(sb_events *ev, const char *tenant, const char *type,
                      const char *run_id, const json_t *data,
                      sb_events_done_cb cb, void *ud, sb_error *err) {
  if (!sb_event_type_publishable(type))
    return sb_error_set(
        err, SB_EINVAL,
        "type: \"%.64s%s\" is not an event type one may "
        "publish (" SB_EVENT_TYPE_RULE "; " SB_EVENT_TYPE_RESERVED ")",
        type ? type : "", type && strlen(type) > 64 ? "..." : "");
  /* A published event names a run that exists, or is refused: one with a
   * mistyped runId would be logged and never reach the run. An empty one
   * names none (the store reads it as absent). */
  if (run_id && !*run_id)
    return sb_error_set(err, SB_EINVAL,
                        "runId: empty; leave it out, or name a run");
  return write_one(ev, tenant, type, run_id, 1, data, cb, ud, err);
}

int sb_events_record(sb_events *ev, const char *tenant, sb_event_type type,
                     const char *run_id, const json_t *data,
                     sb_events_done_cb cb, void *ud, sb_error *err) {
  const char *name = sb_event_type_name(type);
  if (!name)
    return sb_error_set(err, SB_EINVAL, "events: not one of switchboard's "
                                        "own types");
  return write_one(ev, tenant, name, run_id, 0, data, cb, ud, err);
}

static int write_one(sb_events *ev, const char *tenant, const char *type,
                     const char *run_id, int run_must_exist,
                     const json_t *data, sb_events_done_cb cb, void *ud,
                     sb_error *err) {
  if (data && !json_is_object(data))
    return sb_error_set(err, SB_EINVAL, "data: expected an object");
  char *text = data ? sb_json_dumps(data, JSON_COMPACT) : sb_strdup("{}");
  size_t n = text ? strlen(text) : 0;
  if (n > ev->max_data_bytes) {
    sb_free(text);
    return data_too_big(n, ev->max_data_bytes, err);
  }
  publish_op *op = sb_calloc(1, sizeof *op);
  if (!text || !op) {
    sb_free(text);
    sb_free(op);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  op->cb = cb;
  op->ud = ud;
  sb_store_event e = {.type = type,
                      .run_id = run_id,
                      .data = text,
                      .run_must_exist = run_must_exist};
  sb_store_extras x = {.events = &e, .nevents = 1};
  int rc = sb_store_write(ev->store, tenant, &x, (int64_t)sb_wall_ms(),
                          on_published, op);
  sb_free(text);
  if (rc != 0) {
    sb_free(op);
    return sb_error_set(err, rc,
                        rc == SB_EBUSY ? "the event store is busy; retry "
                                         "shortly"
                                       : "events: cannot write (%s)",
                        sb_strerror(rc));
  }
  return 0;
}

json_t *sb_event_json(const sb_event *e) {
  char ts[32];
  sb_time_format(e->created_ms, ts);
  json_error_t jerr;
  json_t *data = json_loads(e->data, JSON_DECODE_ANY, &jerr);
  json_t *j = json_pack("{sIsssssO?}", "seq", (json_int_t)e->seq, "type",
                        e->type, "time", ts, "data", data);
  json_decref(data);
  if (j && e->run_id && *e->run_id)
    json_object_set_new(j, "runId", json_string(e->run_id));
  return j;
}

/* ---- retention ------------------------------------------------------------ */

static void on_trim_timer(uv_timer_t *t);

static void on_trimmed(void *ud, sb_store_result *res) {
  trim_op *op = ud;
  sb_events *ev = op->ev;
  sb_free(op);
  if (ev) ev->trimming = NULL;
  if (res->rc != 0)
    SB_WARN(MODULE, "trimming old events failed: %s", res->err.msg);
  else if (res->count)
    SB_DEBUG(MODULE, "trimmed %lld old events", (long long)res->count);
  /* A backlog (a log older than retention) goes in batches back to back,
   * each its own short write, not one batch a trim interval. */
  if (ev && res->rc == 0 && res->count >= TRIM_BATCH)
    uv_timer_start(ev->trim, on_trim_timer, TRIM_NEXT_BATCH_MS,
                   ev->trim_every_ms);
}

static void on_trim_timer(uv_timer_t *t) {
  sb_events *ev = t->data;
  if (ev->trimming) return;
  int64_t before = (int64_t)sb_wall_ms() - ev->retention_ms;
  trim_op *op = sb_calloc(1, sizeof *op);
  if (!op) return;
  op->ev = ev;
  if (sb_store_events_trim(ev->store, before, TRIM_BATCH, on_trimmed, op) == 0)
    ev->trimming = op;
  else
    sb_free(op);
}

sb_events *sb_events_new(const sb_events_options *o, sb_error *err) {
  sb_events *ev = sb_calloc(1, sizeof *ev);
  uv_timer_t *t = sb_calloc(1, sizeof *t);
  uv_timer_t *p = sb_calloc(1, sizeof *p);
  if (!ev || !t || !p || !o->store) {
    sb_free(ev);
    sb_free(t);
    sb_free(p);
    sb_error_set(err, o->store ? SB_ENOMEM : SB_EINVAL,
                 o->store ? "out of memory" : "events: a store is required");
    return NULL;
  }
  ev->store = o->store;
  ev->retention_ms = o->retention_ms > 0 ? o->retention_ms : DEFAULT_RETENTION_MS;
  ev->max_data_bytes =
      o->max_data_bytes > 0 ? o->max_data_bytes : DEFAULT_MAX_DATA_BYTES;
  int64_t every = o->trim_every_ms > 0 ? o->trim_every_ms : DEFAULT_TRIM_EVERY_MS;
  ev->trim_every_ms = (uint64_t)every;
  uv_timer_init(sb_store_loop(o->store), t);
  t->data = ev;
  uv_timer_start(t, on_trim_timer,
                 (uint64_t)(every < TRIM_SOON_MS ? every : TRIM_SOON_MS),
                 ev->trim_every_ms);
  uv_unref((uv_handle_t *)t);
  ev->trim = t;
  uint64_t poll = o->poll_every_ms > 0 ? (uint64_t)o->poll_every_ms
                                       : DEFAULT_POLL_EVERY_MS;
  ev->poll = p;
  uv_timer_init(sb_store_loop(o->store), p);
  p->data = ev;
  uv_timer_start(p, on_poll_timer, poll, poll);
  uv_unref((uv_handle_t *)p);
  sb_store_on_events(o->store, on_committed, ev);
  return ev;
}

void sb_events_free(sb_events *ev) {
  if (!ev) return;
  sb_store_on_events(ev->store, NULL, NULL);
  if (ev->trimming) ev->trimming->ev = NULL;
  uv_close((uv_handle_t *)ev->trim, sb_free_handle);
  uv_close((uv_handle_t *)ev->poll, sb_free_handle);
  sb_list_link *pl;
  while ((pl = sb_list_first(&ev->polls))) {
    sb_list_unlink(&ev->polls, pl);
    sb_list_entry(pl, poll_op, link)->ev = NULL; /* frees itself */
  }
  sb_list_link *n, *next;
  SB_LIST_FOREACH_SAFE(n, next, &ev->subs) {
    sb_events_sub *s = sb_list_entry(n, sb_events_sub, link);
    sb_list_unlink(&ev->subs, n);
    s->ev = NULL;
    /* A read under way frees it when it returns (s->ev is NULL). */
    if (!s->reading) sub_free(s);
  }
  sb_free(ev);
}
