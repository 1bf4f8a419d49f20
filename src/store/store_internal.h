/* store_internal.h: what store.c shares with the backends.
 *
 * store.c turns each public call into an st_req (one allocation holding
 * the request, copies of its strings and its result), counts it against
 * max_pending, and hands it to the backend's submit. The backend runs it
 * wherever it likes (SQLite: its threads) and hands it back with
 * st_complete, from any thread; store.c then calls the callback on the
 * loop thread and frees the request.
 */
#ifndef SB_STORE_INTERNAL_H
#define SB_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdatomic.h>

#include "store/store.h"

typedef enum st_op {
  ST_OP_CREATE = 1,
  ST_OP_GET,
  ST_OP_APPEND,
  ST_OP_CHAIN,
  ST_OP_HISTORY,
  ST_OP_SWEEP,
  ST_OP_COUNT,
  ST_OP_WRITE, /* a run and/or events alone */
  ST_OP_RUN_GET,
  ST_OP_RUN_LIST,
  ST_OP_RUNS_CLAIM,
  ST_OP_EVENTS_READ,
  ST_OP_EVENTS_TRIM,
  ST_OP_TENANT_CREATE,
  ST_OP_TENANT_LIST,
  ST_OP_KEY_CREATE,
  ST_OP_KEY_LIST,
  ST_OP_KEY_REVOKE,
  ST_OP_KEYS_LOAD,
  ST_OP_AGENT_PUT,
} st_op;

/* These change the database; the rest only read. */
static inline int st_op_writes(st_op op) {
  return op == ST_OP_CREATE || op == ST_OP_APPEND || op == ST_OP_SWEEP ||
         op == ST_OP_WRITE || op == ST_OP_EVENTS_TRIM ||
         op == ST_OP_TENANT_CREATE || op == ST_OP_KEY_CREATE ||
         op == ST_OP_KEY_REVOKE || op == ST_OP_AGENT_PUT ||
         op == ST_OP_RUNS_CLAIM;
}

typedef struct st_req {
  struct st_req *next; /* in whichever queue holds it */
  st_op op;
  sb_store_cb cb;
  void *ud;
  /* Inputs: the strings point into this allocation (NULL when absent). */
  const char *tenant, *id, *workflow_id, *session_id, *doc, *patch;
  int64_t version;    /* append: expected; chain: n; history: before;
                         runs_claim: 1 at start */
  int64_t limit;      /* history: limit; sweep: max */
  size_t max_bytes;   /* events_read: the byte bound (0: none) */
  int64_t created_ms; /* create */
  int64_t expires_ms; /* create, append */
  int64_t now_ms;
  int snapshot; /* append: keep doc as a snapshot too */
  /* Extras (create, append, write), copied like the strings above. */
  int has_run;
  sb_store_run run;
  sb_store_event *events;
  size_t nevents;
  const char *filter; /* run_list: status; events_read: run id */
  int64_t last_seq;   /* the writer: seq of the last event written */
  sb_store_result res;
} st_req;

typedef struct sb_store_ops {
  const char *name;
  /* Take the request (on the loop thread); hand it back with st_complete,
   * never from inside this call's caller stack on the loop thread. */
  void (*submit)(sb_store *st, st_req *req);
  int (*hold_writes)(sb_store *st, int hold);
  /* Run the writes queued, complete the reads not started with
   * SB_ECANCELED, then stop and join the backend's threads. */
  void (*stop)(sb_store *st);
  /* Free the backend (after stop, once every request is back). */
  void (*destroy)(sb_store *st);
  int (*schema_version)(sb_store *st);
} sb_store_ops;

/* Every backend's struct starts with this. */
struct sb_store {
  const sb_store_ops *ops;
  uv_loop_t *loop;
  uv_async_t *wake; /* allocated apart: freed by its close callback */
  uv_mutex_t done_lock;
  st_req *done_head, *done_tail; /* completed, waiting for the loop */
  int pending; /* loop thread only: submitted, not called back */
  int background; /* of pending: key loads, outside max_pending */
  int max_pending;
  int closing;
  atomic_uint_least64_t batches, writes; /* counted by the writer */
  atomic_uint_least64_t writer_cpu_us;
  atomic_int lost; /* the writer found the store's file moved: no write
                      can be durable any more (sb_store_stats.lost) */
  sb_store_events_cb on_events; /* loop thread */
  void *on_events_ud;
  sb_store_agent_rows agents_at_open; /* read by the opening thread */
};

/* Set up the loop side (wake handle, lock); 0 or SB_E*. */
int st_base_init(sb_store *st, const sb_store_options *o, sb_error *err);
/* Undo st_base_init when the backend failed to open. */
void st_base_fail(sb_store *st);
/* A request is done (any thread): queue its callback for the loop. */
void st_complete(sb_store *st, st_req *req);
/* A list of them (linked by next), with one lock and one wake: a batch. */
void st_complete_list(sb_store *st, st_req *list);

/* ---- sqlite_drivers.c: the processes that drive runs ------------------ */

/* Slots in PATH-drivers: processes driving runs on one store at once. */
#define ST_DRIVER_SLOTS 1024

typedef struct st_drivers {
  int lock_fd;  /* holds the lock on byte `slot` */
  int probe_fd; /* a second open of the file, to test other slots */
  int slot;     /* this process's slot, or -1 */
} st_drivers;

/* Take the lowest free slot of db_path's drivers file (creating it); 0,
 * or SB_EIO / SB_EBUSY (every slot taken) with err, d then closed. */
int st_drivers_open(st_drivers *d, const char *db_path, sb_error *err);
/* SB_EINVAL when db_path is an empty file while its drivers file exists:
 * a store truncated since, which SQLite would open as a new, empty one
 * (dropping a -wal left beside it). */
int st_drivers_check_store(const char *db_path, sb_error *err);
/* Whether a process holds slot (this one's own included); any thread. */
int st_drivers_alive(const st_drivers *d, int slot);
/* Give the slot back (idempotent). */
void st_drivers_close(st_drivers *d);

/* ---- sqlite_check.c: the store's files at start --------------------- */

/* What the files beside a store say before SQLite opens it. */
typedef enum st_start_state {
  ST_START_CLEAN,   /* no -wal, no -shm: a clean stop, or a new store */
  ST_START_IN_USE,  /* another connection has it open (another process,
                       or another store of this one): its state is theirs */
  ST_START_UNCLEAN, /* left by a process that stopped without closing it,
                       with a log that holds what its index says */
  ST_START_REFUSED, /* the log does not hold what its index says was
                       committed (missing, cut short, another log, a frame
                       failing its checksum): err says which and what to do */
} st_start_state;

/* Judge db_path's -wal and -shm, before any connection of this process
 * opens it. *opened_key (set unless out of memory) marks the store open
 * in this process until st_opened_release(*opened_key), whatever the
 * answer: a later check of the same file in this process answers
 * ST_START_IN_USE without touching its -shm. */
st_start_state st_check_start(const char *db_path, char **opened_key,
                              sb_error *err);
/* The store is closed (its connections are): forget it, free key. */
void st_opened_release(char *key);

/* ---- sqlite.c: one connection and what runs on it ------------------- */

typedef struct st_conn st_conn;

/* The connections of a store that drives runs: the runs the writer
 * writes are marked with d->slot; claims, and reads of runs, test the
 * other slots through d (borrowed; outlives the connection). */
void st_conn_set_drivers(st_conn *c, const st_drivers *d);
const st_drivers *st_conn_drivers(st_conn *c);

/* ---- sqlite_vfs.c: the writer's VFS ------------------------------- */

/* The name of the VFS that gathers a commit's WAL frames into one write
 * (registered at the first call), or NULL if it could not be. Only for
 * connections in synchronous=FULL. */
#define ST_GATHER_VFS "sb-gather"
const char *st_gather_vfs(void);

/* Open a connection in WAL mode with synchronous=FULL; `migrate` runs the
 * schema migrations first (the writer's connection, opened before the
 * readers', and on the gathering VFS), and `quick_check` (the writer's,
 * when the store is checked at start) PRAGMA quick_check before them: a
 * damaged file is refused with its first findings, and its -wal and
 * -shm are left as they are, so the next start refuses it again. NULL
 * with err. */
st_conn *st_conn_open(const char *path, int busy_timeout_ms, int migrate,
                      int quick_check, sb_error *err);
void st_conn_close(st_conn *c);
int st_conn_schema_version(void);

/* The statements every connection prepares (their SQL is in sqlite.c). */
enum {
  STMT_CREATE,
  STMT_VERSION_INSERT,
  STMT_GET,
  STMT_HEAD_VERSION,
  STMT_APPEND_HEAD,
  STMT_APPEND_HEAD_SAME_EXPIRY,
  STMT_SNAPSHOT_AT_OR_BELOW,
  STMT_CHAIN,
  STMT_HISTORY,
  STMT_COUNT,
  STMT_SAVEPOINT,
  STMT_RELEASE,
  STMT_ROLLBACK_TO,
  STMT_RUN_INSERT,
  STMT_RUN_UPDATE,
  STMT_RUN_REV,
  STMT_RUN_GET,
  STMT_RUN_LIST,
  STMT_RUNS_ACTIVE,
  STMT_RUN_DRIVERS,
  STMT_RUNS_OF_DRIVER,
  STMT_RUNS_TAKE,
  STMT_RUNS_MOVED,
  STMT_RUNS_MOVED_CLEAR,
  STMT_EVENT_SEQ,
  STMT_EVENT_INSERT,
  STMT_EVENTS_READ,
  STMT_EVENT_LAST,
  STMT_EVENTS_TRIM,
  STMT_TENANT_INSERT,
  STMT_TENANT_LIST,
  STMT_KEY_INSERT,
  STMT_KEY_LIST,
  STMT_KEY_REVOKE,
  STMT_KEY_EXISTS,
  STMT_KEY_EPOCH,
  STMT_KEY_EPOCH_BUMP,
  STMT_KEYS_LOAD,
  STMT_AGENT_PUT,
  STMT_AGENTS_LIST,
  STMT__COUNT
};

/* The connection's prepared statement `which`, reset;
 * and small helpers its users share. */
sqlite3_stmt *st_conn_stmt(st_conn *c, int which);
sqlite3 *st_conn_db(st_conn *c);
int st_db_error(st_conn *c, sb_error *err, const char *what);
void st_bind_text(sqlite3_stmt *st, int col, const char *v);
char *st_column_dup(sqlite3_stmt *st, int col);

/* sqlite_runs.c: the extras of a write (run row, events), and the reads
 * and writes of runs and events. */
int st_write_extras(st_conn *c, st_req *q);
int st_write_events_trim(st_conn *c, st_req *q);
int st_read_runs(st_conn *c, st_req *q);
/* The runs in progress nobody drives, taken over (sb_store_runs_claim). */
int st_write_runs_claim(st_conn *c, st_req *q);
int st_read_events(st_conn *c, st_req *q);

/* sqlite_keys.c: tenants and API keys. */
int st_write_keys(st_conn *c, st_req *q);
int st_read_keys(st_conn *c, st_req *q);

/* sqlite_agents.c: agents registered through the API. */
int st_write_agent(st_conn *c, st_req *q);
/* Every agent row, into *out (on the thread that owns c). */
int st_read_agents(st_conn *c, sb_store_agent_rows *out, sb_error *err);

/* Run a read (get, chain, history, count) on c, filling req->res. */
void st_conn_read(st_conn *c, st_req *req);

/* Writes joining a batch already running (linked by next; the writer's
 * queue while it lingers), or NULL: commit now. */
typedef st_req *(*st_more_fn)(void *ud);

/* Run a batch of writes (linked by next) as one transaction, then one
 * COMMIT; `more` (may be NULL) is asked for further writes each time the
 * batch's writes so far have run, and those it gives are appended to the
 * batch's list and run in the same transaction. A write that fails fails
 * alone. Fills each req->res; returns 1 if the commit happened, 0 if it
 * failed (every member then carries the error). */
int st_conn_write_batch(st_conn *c, st_req *batch, st_more_fn more, void *ud);
/* Why c's writes fail since a commit found its database file or WAL
 * deleted or replaced under it (checked before every COMMIT), or NULL. */
const char *st_conn_lost(const st_conn *c);

#endif
