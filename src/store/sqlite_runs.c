/* sqlite_runs.c: workflow runs and the per-tenant event log in SQLite.
 *
 * A write's extras run inside that write's savepoint, after its context
 * change: the run's row (insert, or compare-and-set on its rev) and its
 * events, each numbered from the tenant's counter in event_seqs. The
 * counter, not max(seq), hands out numbers, so trimming old events never
 * makes a number come back. Since one writer commits at a time, numbers
 * are assigned in commit order: a reader that saw seq N has seen every
 * event below it.
 */
#include <string.h>

#include "store/store_internal.h"

static int step_done(st_conn *c, sqlite3_stmt *st, sb_error *err,
                     const char *what) {
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : st_db_error(c, err, what);
  sqlite3_reset(st);
  return rc;
}

static int64_t run_rev(st_conn *c, const char *tenant, const char *id) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_RUN_REV);
  st_bind_text(st, 1, tenant);
  st_bind_text(st, 2, id);
  int64_t rev = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return rev;
}

/* The driver slot this connection marks the runs it writes with: -1 for
 * a store that drives none. */
static int own_slot(st_conn *c) {
  const st_drivers *d = st_conn_drivers(c);
  return d ? d->slot : -1;
}

static int write_run(st_conn *c, st_req *q) {
  const sb_store_run *r = &q->run;
  sb_error *err = &q->res.err;
  sqlite3_stmt *st;
  if (r->expected_rev == 0) {
    st = st_conn_stmt(c, STMT_RUN_INSERT);
    st_bind_text(st, 1, q->tenant);
    st_bind_text(st, 2, r->id);
    st_bind_text(st, 3, r->workflow);
    st_bind_text(st, 4, r->context_id ? r->context_id : "");
    st_bind_text(st, 5, r->status);
    sqlite3_bind_int64(st, 6, q->now_ms);
    sqlite3_bind_int64(st, 7, q->now_ms);
    st_bind_text(st, 8, r->doc);
    sqlite3_bind_int64(st, 9, q->last_seq);
    st_bind_text(st, 10, r->def ? r->def : "");
    sqlite3_bind_int(st, 11, own_slot(c));
    if (sqlite3_step(st) != SQLITE_DONE) {
      int x = sqlite3_extended_errcode(st_conn_db(c));
      int rc = x == SQLITE_CONSTRAINT_UNIQUE
                   ? sb_error_set(err, SB_ECONFLICT, "run %s already exists",
                                  r->id)
                   : st_db_error(c, err, "creating a run");
      sqlite3_reset(st);
      return rc;
    }
    sqlite3_reset(st);
    q->res.run_rev = 1;
    return 0;
  }
  st = st_conn_stmt(c, STMT_RUN_UPDATE);
  st_bind_text(st, 1, r->workflow);
  st_bind_text(st, 2, r->context_id ? r->context_id : "");
  st_bind_text(st, 3, r->status);
  st_bind_text(st, 4, r->doc);
  sqlite3_bind_int64(st, 5, q->now_ms);
  sqlite3_bind_int64(st, 6, q->last_seq);
  st_bind_text(st, 7, q->tenant);
  st_bind_text(st, 8, r->id);
  sqlite3_bind_int64(st, 9, r->expected_rev);
  sqlite3_bind_int(st, 10, own_slot(c));
  int rc = step_done(c, st, err, "updating a run");
  if (rc) return rc;
  if (sqlite3_changes(st_conn_db(c)) == 0) {
    int64_t rev = run_rev(c, q->tenant, r->id);
    q->res.run_rev = rev;
    return rev ? sb_error_set(err, SB_ECONFLICT, "run %s is at rev %lld, not %lld",
                              r->id, (long long)rev, (long long)r->expected_rev)
               : sb_error_set(err, SB_ENOENT, "run %s not found", r->id);
  }
  q->res.run_rev = r->expected_rev + 1;
  return 0;
}

/* Number the write's events: one step of the tenant's counter for all. */
static int reserve_seqs(st_conn *c, st_req *q, int64_t *first) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_EVENT_SEQ);
  st_bind_text(st, 1, q->tenant);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)q->nevents);
  if (sqlite3_step(st) != SQLITE_ROW) {
    int rc = st_db_error(c, &q->res.err, "numbering events");
    sqlite3_reset(st);
    return rc;
  }
  *first = sqlite3_column_int64(st, 0) - (int64_t)q->nevents + 1;
  sqlite3_reset(st);
  return 0;
}

static int write_event(st_conn *c, st_req *q, const sb_store_event *e,
                       int64_t seq) {
  sb_error *err = &q->res.err;
  if (e->run_must_exist && e->run_id && *e->run_id &&
      run_rev(c, q->tenant, e->run_id) == 0)
    return sb_error_set(err, SB_ENOENT, "runId: no run %s", e->run_id);
  sqlite3_stmt *st = st_conn_stmt(c, STMT_EVENT_INSERT);
  st_bind_text(st, 1, q->tenant);
  sqlite3_bind_int64(st, 2, seq);
  st_bind_text(st, 3, e->type);
  st_bind_text(st, 4, e->run_id ? e->run_id : "");
  sqlite3_bind_int64(st, 5, q->now_ms);
  st_bind_text(st, 6, e->data);
  int rc = step_done(c, st, err, "recording an event");
  if (rc) return rc;
  sb_store_event_rows *out = &q->res.events;
  sb_store_event_row *row = &out->items[out->len];
  row->seq = seq;
  row->created_ms = q->now_ms;
  row->type = sb_strdup(e->type);
  row->run_id = sb_strdup(e->run_id ? e->run_id : "");
  row->data = sb_strdup(e->data);
  out->len++;
  if (!row->type || !row->run_id || !row->data)
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  return 0;
}

/* Events first: the run's row keeps the seq of the last one (where a
 * waiting step's events begin, after a restart). */
int st_write_extras(st_conn *c, st_req *q) {
  int rc;
  if (q->nevents) {
    q->res.events.items = sb_calloc(q->nevents, sizeof *q->res.events.items);
    if (!q->res.events.items)
      return sb_error_set(&q->res.err, SB_ENOMEM, "out of memory");
    int64_t first = 0;
    if ((rc = reserve_seqs(c, q, &first)) != 0) return rc;
    for (size_t i = 0; i < q->nevents; i++)
      if ((rc = write_event(c, q, &q->events[i], first + (int64_t)i)) != 0)
        return rc;
    q->last_seq = q->res.events.items[q->nevents - 1].seq;
  }
  if (q->has_run && (rc = write_run(c, q)) != 0) return rc;
  return 0;
}

int st_write_events_trim(st_conn *c, st_req *q) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_EVENTS_TRIM);
  sqlite3_bind_int64(st, 1, q->now_ms);
  sqlite3_bind_int64(st, 2, q->limit);
  int rc = step_done(c, st, &q->res.err, "trimming events");
  if (!rc) q->res.count = sqlite3_changes(st_conn_db(c));
  return rc;
}

/* ---- reads ------------------------------------------------------------ */

/* Whether the run in st's row (status, driver) is driven by another
 * process that is still alive; c NULL: not asked (0). */
static int driven_elsewhere(st_conn *c, sqlite3_stmt *st) {
  const st_drivers *d = c ? st_conn_drivers(c) : NULL;
  const char *status = (const char *)sqlite3_column_text(st, 4);
  int driver = sqlite3_column_int(st, 11);
  return d && driver >= 0 && driver != d->slot && status &&
         (strcmp(status, "running") == 0 || strcmp(status, "waiting") == 0) &&
         st_drivers_alive(d, driver);
}

static int push_run(st_conn *c, sb_store_runs *out, sqlite3_stmt *st) {
  sb_store_run_record *items =
      sb_realloc(out->items, (out->len + 1) * sizeof *out->items);
  if (!items) return SB_ENOMEM;
  out->items = items;
  sb_store_run_record *r = &items[out->len++];
  memset(r, 0, sizeof *r);
  r->tenant = st_column_dup(st, 0);
  r->id = st_column_dup(st, 1);
  r->workflow = st_column_dup(st, 2);
  r->context_id = st_column_dup(st, 3);
  r->status = st_column_dup(st, 4);
  r->doc = st_column_dup(st, 5);
  r->rev = sqlite3_column_int64(st, 6);
  r->created_ms = sqlite3_column_int64(st, 7);
  r->updated_ms = sqlite3_column_int64(st, 8);
  r->seq = sqlite3_column_int64(st, 9);
  r->def = st_column_dup(st, 10);
  r->driven_elsewhere = driven_elsewhere(c, st);
  if (!r->tenant || !r->id || !r->workflow || !r->context_id || !r->status ||
      !r->doc || !r->def)
    return SB_ENOMEM;
  return 0;
}

/* Every row st yields into res->runs; st is reset. */
static int push_runs(st_conn *c, st_req *q, sqlite3_stmt *st) {
  int step, rc = 0;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    /* Asked of one run read (a writer's conflict), not of lists. */
    st_conn *ask = q->op == ST_OP_RUN_GET ? c : NULL;
    if (push_run(ask, &q->res.runs, st) != 0) {
      rc = sb_error_set(&q->res.err, SB_ENOMEM, "out of memory");
      break;
    }
  }
  if (!rc && step != SQLITE_DONE)
    rc = st_db_error(c, &q->res.err, "reading runs");
  sqlite3_reset(st);
  return rc;
}

int st_read_runs(st_conn *c, st_req *q) {
  sqlite3_stmt *st;
  if (q->op == ST_OP_RUN_GET) {
    st = st_conn_stmt(c, STMT_RUN_GET);
    st_bind_text(st, 1, q->tenant);
    st_bind_text(st, 2, q->id);
  } else { /* ST_OP_RUN_LIST */
    st = st_conn_stmt(c, STMT_RUN_LIST);
    st_bind_text(st, 1, q->tenant);
    st_bind_text(st, 2, q->filter);
    st_bind_text(st, 3, q->id && *q->id ? q->id : NULL);
    sqlite3_bind_int64(st, 4, q->limit);
  }
  int rc = push_runs(c, q, st);
  if (!rc && q->op == ST_OP_RUN_GET && q->res.runs.len == 0)
    rc = sb_error_set(&q->res.err, SB_ENOENT, "run %s not found", q->id);
  if (rc) sb_store_runs_clear(&q->res.runs);
  return rc;
}

/* The drivers of the runs in progress, into *out (*n of them). */
static int run_drivers(st_conn *c, st_req *q, int **out, size_t *n) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_RUN_DRIVERS);
  int step, rc = 0;
  *out = NULL;
  *n = 0;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int *grown = sb_realloc(*out, (*n + 1) * sizeof **out);
    if (!grown) {
      rc = sb_error_set(&q->res.err, SB_ENOMEM, "out of memory");
      break;
    }
    *out = grown;
    (*out)[(*n)++] = sqlite3_column_int(st, 0);
  }
  if (!rc && step != SQLITE_DONE)
    rc = st_db_error(c, &q->res.err, "reading the runs' drivers");
  sqlite3_reset(st);
  return rc;
}

/* A driver's runs in progress into res->runs, then marked as this
 * store's (unless they are already). */
static int take_runs_of(st_conn *c, st_req *q, int driver, int slot) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_RUNS_OF_DRIVER);
  sqlite3_bind_int(st, 1, driver);
  int rc = push_runs(c, q, st);
  if (rc || driver == slot) return rc;
  st = st_conn_stmt(c, STMT_RUNS_TAKE);
  sqlite3_bind_int(st, 1, slot);
  sqlite3_bind_int(st, 2, driver);
  return step_done(c, st, &q->res.err, "taking runs over");
}

/* Forget what runs_moved holds for driver. */
static int clear_moved(st_conn *c, st_req *q, int driver) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_RUNS_MOVED_CLEAR);
  sqlite3_bind_int(st, 1, driver);
  return step_done(c, st, &q->res.err, "clearing moved runs");
}

/* The runs taken from this slot since its last claim (runs_moved: filled
 * by a trigger on runs.driver), into res->runs marked moved_away. */
static int moved_runs(st_conn *c, st_req *q, int slot) {
  size_t from = q->res.runs.len;
  sqlite3_stmt *st = st_conn_stmt(c, STMT_RUNS_MOVED);
  sqlite3_bind_int(st, 1, slot);
  int rc = push_runs(c, q, st);
  for (size_t i = from; !rc && i < q->res.runs.len; i++)
    q->res.runs.items[i].moved_away = 1;
  return rc ? rc : clear_moved(c, q, slot);
}

/* Runs in the writer's transaction: the drivers read, tested and taken
 * over with nothing in between (another process's claim is another
 * transaction). A store that drives no runs takes nothing and answers
 * every run in progress (what a process that only reads them sees). */
int st_write_runs_claim(st_conn *c, st_req *q) {
  const st_drivers *d = st_conn_drivers(c);
  if (!d) return push_runs(c, q, st_conn_stmt(c, STMT_RUNS_ACTIVE));
  /* At start, what was kept for the slot's last holder is nobody's. */
  int rc = q->version ? clear_moved(c, q, d->slot) : moved_runs(c, q, d->slot);
  int *drivers = NULL;
  size_t n = 0;
  if (!rc) rc = run_drivers(c, q, &drivers, &n);
  for (size_t i = 0; !rc && i < n; i++) {
    /* This slot's own runs at start: its last holder has ended. */
    int take = drivers[i] == d->slot ? q->version != 0
                                     : !st_drivers_alive(d, drivers[i]);
    if (take) rc = take_runs_of(c, q, drivers[i], d->slot);
    /* Taking them filled runs_moved for an ended driver: nobody reads it. */
    if (take && !rc && drivers[i] != d->slot)
      rc = clear_moved(c, q, drivers[i]);
  }
  sb_free(drivers);
  if (rc) sb_store_runs_clear(&q->res.runs);
  return rc;
}

/* An event row's size as counted against a read's max_bytes, taken from
 * SQLite's lengths before anything is copied. */
static size_t event_row_bytes(sqlite3_stmt *st) {
  return (size_t)sqlite3_column_bytes(st, 2) +
         (size_t)sqlite3_column_bytes(st, 3) +
         (size_t)sqlite3_column_bytes(st, 4) + SB_STORE_EVENT_OVERHEAD;
}

int st_read_events(st_conn *c, st_req *q) {
  sb_store_event_rows *out = &q->res.events;
  sqlite3_stmt *st = st_conn_stmt(c, STMT_EVENTS_READ);
  st_bind_text(st, 1, q->tenant);
  sqlite3_bind_int64(st, 2, q->version);
  st_bind_text(st, 3, q->filter);
  /* One row past the limit: whether more follow (res.more), not read. */
  sqlite3_bind_int64(st, 4, q->limit + 1);
  size_t bytes = 0;
  int step, rc = 0;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    /* The first row always, so that a reader moves on however large it
     * is; after it, none that would pass the bound. */
    size_t row = event_row_bytes(st);
    if ((int64_t)out->len == q->limit ||
        (q->max_bytes && out->len && bytes + row > q->max_bytes)) {
      q->res.more = 1;
      step = SQLITE_DONE;
      break;
    }
    bytes += row;
    sb_store_event_row *items =
        sb_realloc(out->items, (out->len + 1) * sizeof *out->items);
    if (!items) {
      rc = sb_error_set(&q->res.err, SB_ENOMEM, "out of memory");
      break;
    }
    out->items = items;
    sb_store_event_row *e = &items[out->len++];
    e->seq = sqlite3_column_int64(st, 0);
    e->created_ms = sqlite3_column_int64(st, 1);
    e->type = st_column_dup(st, 2);
    e->run_id = st_column_dup(st, 3);
    e->data = st_column_dup(st, 4);
    if (!e->type || !e->run_id || !e->data) {
      rc = sb_error_set(&q->res.err, SB_ENOMEM, "out of memory");
      break;
    }
  }
  if (!rc && step != SQLITE_DONE)
    rc = st_db_error(c, &q->res.err, "reading events");
  sqlite3_reset(st);
  /* The counter, after the events: never below the last one read (it only
   * grows), so a reader that compares a cursor with it refuses no cursor
   * this log gave. */
  if (!rc) {
    st = st_conn_stmt(c, STMT_EVENT_LAST);
    st_bind_text(st, 1, q->tenant);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
      q->res.last_seq = sqlite3_column_int64(st, 0);
    else if (step != SQLITE_DONE)
      rc = st_db_error(c, &q->res.err, "reading the event counter");
    sqlite3_reset(st);
  }
  if (rc) sb_store_event_rows_clear(out);
  return rc;
}
