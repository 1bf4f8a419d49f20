/* store: the source of truth for contexts and their versions.
 *
 * One interface, several backends: SQLite (embedded, the default) now,
 * PostgreSQL (several nodes) later. Every call takes the tenant, and every
 * row and query is keyed by it: there is no way to read a context without
 * naming its tenant, and another tenant's id behaves exactly like an id
 * that does not exist.
 *
 * The store knows documents only as JSON text; ctx/ owns their meaning
 * (validation, patches, projections). A version row holds the RFC 6902
 * patch from the previous version and, every `snapshot_every` versions, the
 * full document, so reading any past version replays at most that many
 * patches.
 *
 * Asynchronous: the event loop never waits on disk. Every operation is
 * submitted from the loop thread with a completion callback, and the
 * callback always runs later on that same loop thread (never inside the
 * submitting call, never on another thread). A submit function returns 0
 * when the operation is queued — its callback then runs exactly once — or
 * a negative code when it was not (the callback never runs):
 *   SB_EBUSY   the queue is full (back-pressure: tell the client to retry)
 *   SB_EINVAL  no tenant (or a required argument missing)
 *   SB_ESTATE  the store is closing
 *   SB_ENOMEM  allocation failed
 * A callback's result is SB_EBUSY too when another process held the
 * database's write lock for longer than busy_timeout_ms: try again
 * shortly, as for a full queue.
 * The arguments are copied at submission; nothing the caller passes needs
 * to outlive the submitting call. A libpq backend implements the same
 * contract with its own asynchronous API.
 *
 * SQLite backend: one writer thread takes every write pending at that
 * moment and commits them as one transaction, with one fsync (group
 * commit); each write runs inside its own savepoint, so a write that fails
 * for a reason of its own (stale version, duplicate id, I/O on that row)
 * fails alone and its batch neighbours commit. Reads run on a small pool
 * of reader threads, each with its own WAL connection.
 *
 * Durability: a write's callback runs only after the transaction holding it
 * is committed with synchronous=FULL, so an acknowledged version survives a
 * crash. A read submitted after a write's callback sees that write.
 */
#ifndef SB_STORE_H
#define SB_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/core.h"

typedef struct sb_store sb_store;

/* When the SQLite backend runs PRAGMA quick_check on the store file at
 * open, before anything is served (it reads every page: seconds on a
 * store of gigabytes). Whatever this says, a write-ahead log that does not
 * hold what its index says was committed is refused at open. */
typedef enum sb_store_check {
  SB_STORE_CHECK_AUTO = 0, /* after an unclean stop: the last process on
                              the store did not close it (killed, crashed,
                              the machine went down), and none has it open */
  SB_STORE_CHECK_ALWAYS,   /* at every open */
  SB_STORE_CHECK_NEVER,
} sb_store_check;

typedef struct sb_store_options {
  const char *path;    /* SQLite file; created (with parent dir) if missing */
  uv_loop_t *loop;     /* callbacks run here; submit only from its thread */
  int busy_timeout_ms; /* wait for other processes' writers; default 5000 */
  int max_pending;     /* operations submitted and not yet called back
                          before submissions get SB_EBUSY; default 4096.
                          Key loads (sb_store_keys_load, a server's own
                          poll) are not counted: they have room of their
                          own, 8 in flight */
  int readers;         /* reader threads; default 2 */
  int must_exist;      /* refuse a file that does not exist (SB_ENOENT)
                          instead of creating it: for commands that read a
                          server's store, where a misspelt path must not
                          make a new, empty store and read nothing there */
  int drives_runs;     /* this process drives workflow runs (a server,
                          `switchboard run`): it holds a driver slot of the
                          store while open, marks the runs it writes as its
                          own, and sb_store_runs_claim takes over only runs
                          no living process drives. SQLite: a lock on one
                          byte of PATH-drivers, dropped by the kernel when
                          the process ends (a libpq backend: a lease row
                          kept alive by a heartbeat) */
  sb_store_check check; /* quick_check at open (SQLite); AUTO by default */
} sb_store_options;

/* Open (and migrate) the store and start its threads. NULL with err on
 * failure. Must be called on the loop's thread. */
sb_store *sb_store_open_sqlite(const sb_store_options *opts, sb_error *err);

/* Stop the store, on the loop thread (not from inside one of its own
 * callbacks): writes already queued still run (they are committed); reads
 * queued and not yet started do not, and complete with SB_ECANCELED (a
 * read under way finishes); every callback runs inside this call, and the
 * threads are joined. The store's loop handle closes through the loop: run the loop
 * once more before uv_loop_close. */
void sb_store_close(sb_store *st);

/* The loop the store calls back on (for work that belongs beside it). */
uv_loop_t *sb_store_loop(const sb_store *st);

/* Schema version the code migrates to. */
int sb_store_schema_version(sb_store *st);

/* Head (current) row of a context. Strings are owned by the record; free
 * with sb_store_record_clear. */
typedef struct sb_store_record {
  char *id;
  char *workflow_id;
  char *session_id;
  int64_t version;
  int64_t created_ms;
  int64_t updated_ms;
  int64_t expires_ms; /* 0 = never */
  char *doc;          /* full JSON document of the head version */
} sb_store_record;

void sb_store_record_clear(sb_store_record *r);

/* One stored version. */
typedef struct sb_store_version {
  int64_t version;
  int64_t created_ms;
  char *patch;    /* RFC 6902 patch from version-1 (NULL for version 1) */
  char *snapshot; /* full document, or NULL */
} sb_store_version;

typedef struct sb_store_versions {
  sb_store_version *items;
  size_t len;
} sb_store_versions;

void sb_store_versions_clear(sb_store_versions *v);

/* ---- runs and events (what a write may carry besides a context) ------ */

/* An event to append to its tenant's log: the store gives it the next
 * sequence number of that tenant (1, 2, 3... with no gap and no reuse,
 * even after old events are trimmed). Strings borrowed for the call. */
typedef struct sb_store_event {
  const char *type;
  const char *run_id; /* may be NULL */
  const char *data;   /* JSON text */
  /* run_id must name a run of the tenant already stored (a write with no
   * run of its own): SB_ENOENT otherwise, and nothing is written. */
  int run_must_exist;
} sb_store_event;

/* A workflow run's row: new (expected_rev 0: SB_ECONFLICT if the id
 * exists) or replacing the row at expected_rev (SB_ECONFLICT with the
 * current rev in res->run_rev if it moved on; SB_ENOENT if absent). */
typedef struct sb_store_run {
  const char *id;
  const char *workflow;
  const char *context_id; /* may be NULL */
  const char *status;     /* running, waiting, completed, failed, cancelled */
  const char *doc;        /* the run's state, JSON text */
  const char *def;        /* the definition it follows (JSON text): kept
                             from the run's first write, ignored after */
  int64_t expected_rev;
} sb_store_run;

/* What a write carries besides its context change, in the same
 * transaction (and savepoint): all of it commits, or none of it. */
typedef struct sb_store_extras {
  const sb_store_run *run; /* NULL: none */
  const sb_store_event *events;
  size_t nevents;
} sb_store_extras;

/* A stored event. */
typedef struct sb_store_event_row {
  int64_t seq;
  int64_t created_ms;
  char *type;
  char *run_id; /* "" when none */
  char *data;
} sb_store_event_row;

typedef struct sb_store_event_rows {
  sb_store_event_row *items;
  size_t len;
} sb_store_event_rows;

/* A stored run. */
typedef struct sb_store_run_record {
  char *tenant;
  char *id;
  char *workflow;
  char *context_id;
  char *status;
  char *doc;
  int64_t rev;
  int64_t created_ms;
  int64_t updated_ms;
  int64_t seq; /* the tenant's seq of the last event written with the
                  run's last write (0: none) */
  char *def;   /* its definition ("" for runs written before there was one) */
  int driven_elsewhere; /* run_get: in progress, and driven by another
                           process on the store that is still alive (known
                           to a store opened with drives_runs; 0 otherwise,
                           and in lists) */
  int moved_away;       /* runs_claim: not claimed, but a run this process
                           drove that another has written since, taking it
                           over (a copy here is behind the row) */
} sb_store_run_record;

typedef struct sb_store_runs {
  sb_store_run_record *items;
  size_t len;
} sb_store_runs;

void sb_store_event_rows_clear(sb_store_event_rows *e);
void sb_store_runs_clear(sb_store_runs *r);

/* ---- tenants and API keys (sqlite_keys.c) ---------------------------- */

/* A tenant registered in the store (`switchboard tenant create`). */
typedef struct sb_store_tenant_row {
  char *id;
  char *name;
  int64_t created_ms;
} sb_store_tenant_row;

typedef struct sb_store_tenant_rows {
  sb_store_tenant_row *items;
  size_t len;
} sb_store_tenant_rows;

/* An API key's row. The store never sees a key's secret: only its public
 * id and a hash of the whole key (auth/ computes it). */
typedef struct sb_store_key_row {
  char *id;
  char *tenant;
  char *hash;   /* hex; only sb_store_keys_load fills it ("" otherwise) */
  char *scopes; /* JSON array of strings */
  int64_t created_ms;
  int64_t expires_ms; /* 0 = never */
  int64_t revoked_ms; /* 0 = not revoked */
} sb_store_key_row;

typedef struct sb_store_key_rows {
  sb_store_key_row *items;
  size_t len;
} sb_store_key_rows;

void sb_store_tenant_rows_clear(sb_store_tenant_rows *t);
void sb_store_key_rows_clear(sb_store_key_rows *k);

/* ---- agents registered through the API (sqlite_agents.c) ------------- */

/* An agent an administrator registered, replaced or removed while
 * switchboard ran: the change outlives a restart. Agents are shared by
 * every tenant; the row keeps the administrator tenant that made it. */
typedef struct sb_store_agent_row {
  char *id;
  char *tenant;     /* the administrator tenant that changed it last */
  char *definition; /* AgentDefinition JSON; NULL: removed (an agent of
                       that id in the config file is not used) */
  int64_t updated_ms;
} sb_store_agent_row;

typedef struct sb_store_agent_rows {
  sb_store_agent_row *items;
  size_t len;
} sb_store_agent_rows;

void sb_store_agent_rows_clear(sb_store_agent_rows *a);

/* What a completed operation produced. Owned by the store and freed after
 * the callback returns; the callback may take `record` or `versions` by
 * copying the struct and zeroing the original. */
typedef struct sb_store_result {
  int rc;                     /* 0 or a negative SB_E* code */
  sb_error err;               /* the message when rc != 0 */
  int64_t version;            /* create: 1; append: the new version, or on
                                 SB_ECONFLICT the head's version */
  int64_t count;              /* sweep: contexts deleted; count: contexts */
  sb_store_record record;     /* get */
  sb_store_versions versions; /* version_chain, history */
  int64_t run_rev;            /* a write with a run: its new rev; on
                                 SB_ECONFLICT the current one */
  sb_store_event_rows events; /* a write's events as committed (with their
                                 seq), or the events read */
  int64_t last_seq;           /* events_read: the newest seq the tenant's
                                 log has handed out (0: none yet), read
                                 after the events; a cursor above it was
                                 never given by this log */
  int more;                   /* events_read: more events follow the ones
                                 read (its limit or max_bytes stopped it) */
  sb_store_runs runs;         /* run_get (one), run_list, runs_claim */
  sb_store_tenant_rows tenants; /* tenant_list */
  sb_store_key_rows keys;       /* key_list, keys_load */
} sb_store_result;

/* Runs once per queued operation, on the loop thread. */
typedef void (*sb_store_cb)(void *ud, sb_store_result *res);

/* Insert version 1 of a new context (strings copied). Completes with
 * SB_ECONFLICT if the id exists for this tenant (even expired but not yet
 * swept). */
int sb_store_create(sb_store *st, const char *tenant, const sb_store_record *r,
                    const sb_store_extras *extras, sb_store_cb cb, void *ud);

/* Read the head into res->record. SB_ENOENT if absent, of another tenant,
 * or expired at now_ms. */
int sb_store_get(sb_store *st, const char *tenant, const char *id,
                 int64_t now_ms, sb_store_cb cb, void *ud);

/* Append version expected_version+1 atomically: the head must still be at
 * expected_version when the write runs, else SB_ECONFLICT with the head's
 * version in res->version (SB_ENOENT if there is no head), its message
 * SB_STORE_VERSION_CONFLICT (id, head, expected: a caller that finds the
 * conflict before writing says it the same way). */
#define SB_STORE_VERSION_CONFLICT                                          \
  "context %s is at version %lld, not %lld: read it again and reapply your " \
  "change"
typedef struct sb_store_append_args {
  const char *tenant;
  const char *id;
  int64_t expected_version;
  const char *new_doc; /* becomes the head */
  const char *patch;   /* RFC 6902 patch from the previous version */
  int snapshot;        /* 1: also keep new_doc as this version's snapshot */
  int64_t expires_ms;  /* 0 = never */
  int64_t now_ms;
  const sb_store_extras *extras; /* NULL: none */
} sb_store_append_args;

int sb_store_append(sb_store *st, const sb_store_append_args *a, sb_store_cb cb,
                    void *ud);

/* What is needed to rebuild version n, into res->versions: the newest
 * snapshot at or below n, then every later version up to n, in order.
 * SB_ENOENT if the context or the version does not exist (for this tenant,
 * unexpired). */
int sb_store_version_chain(sb_store *st, const char *tenant, const char *id,
                           int64_t n, int64_t now_ms, sb_store_cb cb, void *ud);

/* History newest first, into res->versions: at most `limit` versions below
 * `before` (0 = from the head). Snapshots are not loaded. */
int sb_store_history(sb_store *st, const char *tenant, const char *id,
                     int64_t before, size_t limit, int64_t now_ms,
                     sb_store_cb cb, void *ud);

/* Delete contexts (and their versions) that expired before now_ms, at most
 * `max` of them; res->count says how many. Runs as a write. */
int sb_store_sweep_expired(sb_store *st, int64_t now_ms, int max,
                           sb_store_cb cb, void *ud);

/* Number of contexts of a tenant (including expired, unswept ones), in
 * res->count. */
int sb_store_count(sb_store *st, const char *tenant, sb_store_cb cb, void *ud);

/* A run's row and events, or events alone, with no context change. */
int sb_store_write(sb_store *st, const char *tenant,
                   const sb_store_extras *extras, int64_t now_ms,
                   sb_store_cb cb, void *ud);

/* One run into res->runs (SB_ENOENT if absent or another tenant's). */
int sb_store_run_get(sb_store *st, const char *tenant, const char *id,
                     sb_store_cb cb, void *ud);

/* A tenant's runs, newest first: at most `limit` with ids below `before`
 * (NULL: from the newest), with this status (NULL: any). Summaries: each
 * doc without its "input" and "history", and def "" (what a list shows;
 * sb_store_run_get reads a whole run). */
int sb_store_run_list(sb_store *st, const char *tenant, const char *status,
                      const char *before, size_t limit, sb_store_cb cb,
                      void *ud);

/* Every tenant's runs still running or waiting that nobody drives any
 * more, taken over by this store's process (a write) and answered in
 * res->runs: those with no driver (written before drivers were recorded,
 * or by a process that drives none), those whose process has ended, and,
 * when at_start, those of this process's own slot (left by its previous
 * holder). A run a living process drives is never among them, so two
 * servers on one store never both drive a run. Unless at_start, the
 * answer also holds, marked moved_away, the runs this process drove that
 * another has taken over since (each said once). A store opened without
 * drives_runs takes nothing and answers every run in progress. */
int sb_store_runs_claim(sb_store *st, int at_start, sb_store_cb cb, void *ud);

/* A tenant's events after seq `since`, in order, at most `limit` and, when
 * max_bytes is not 0, no more than fit in max_bytes (each event counted as
 * its type, run id and data plus SB_STORE_EVENT_OVERHEAD; the first is
 * always read, however large, so a reader always moves on); of one run
 * only when run_id is not NULL. res->more says that events follow the ones
 * read (either bound stopped the read), and res->last_seq is the newest
 * seq the tenant's counter has handed out (trimmed events included).
 * Without a byte bound, 500 events of up to 16 MiB each were copied out
 * of SQLite and held at once. */
#define SB_STORE_EVENT_OVERHEAD 64
int sb_store_events_read(sb_store *st, const char *tenant, int64_t since,
                         const char *run_id, size_t limit, size_t max_bytes,
                         sb_store_cb cb, void *ud);

/* Delete events created before before_ms, at most `max` (res->count).
 * Sequence numbers are never reused. */
int sb_store_events_trim(sb_store *st, int64_t before_ms, int max,
                         sb_store_cb cb, void *ud);

/* Register a tenant (id valid as sb_config_tenant_id_valid says; name may
 * be NULL). SB_ECONFLICT if it exists. */
int sb_store_tenant_create(sb_store *st, const char *id, const char *name,
                           int64_t now_ms, sb_store_cb cb, void *ud);

/* Every registered tenant, by id, into res->tenants. */
int sb_store_tenant_list(sb_store *st, sb_store_cb cb, void *ud);

/* A new API key of a registered tenant (SB_ENOENT if the tenant is not
 * registered, SB_ECONFLICT if the id exists). `hash` is the hex hash of
 * the whole key, `scopes` a JSON array (NULL: "[]"). Bumps the key epoch. */
typedef struct sb_store_key_args {
  const char *id;
  const char *tenant;
  const char *hash;
  const char *scopes;
  int64_t created_ms;
  int64_t expires_ms; /* 0 = never */
} sb_store_key_args;
int sb_store_key_create(sb_store *st, const sb_store_key_args *a,
                        sb_store_cb cb, void *ud);

/* Keys (of one tenant, or of all when tenant is NULL), by creation, into
 * res->keys without their hashes. */
int sb_store_key_list(sb_store *st, const char *tenant, sb_store_cb cb,
                      void *ud);

/* Revoke a key at now_ms (SB_ENOENT if there is no such key; revoking a
 * revoked key changes nothing: res->count 0, else 1). Bumps the epoch. */
int sb_store_key_revoke(sb_store *st, const char *id, int64_t now_ms,
                        sb_store_cb cb, void *ud);

/* What a server needs to authenticate keys: res->count is the key epoch
 * (it moves with every key created or revoked, by any process); when it
 * differs from `known_epoch`, res->keys holds every unrevoked key with its
 * hash (expired ones included: the caller checks expiry per request), and
 * res->version is 1; when it is the same, nothing is read (version 0). */
int sb_store_keys_load(sb_store *st, int64_t known_epoch, sb_store_cb cb,
                       void *ud);

/* Write agent `id`'s row (replacing any): its definition (JSON text), or
 * NULL for an agent removed through the API. `tenant` is the
 * administrator's; `audit` (may be NULL) is an event of that tenant's log
 * written in the same transaction, so the change and its record commit
 * together or not at all. */
int sb_store_agent_put(sb_store *st, const char *tenant, const char *id,
                       const char *definition, int64_t now_ms,
                       const sb_store_event *audit, sb_store_cb cb, void *ud);

/* The agents' rows as the store held them when it opened, by id (read on
 * the opening thread, before the store's threads started: a server applies
 * them before it serves). Moved into *out: a second call gives none. */
void sb_store_agents_at_open(sb_store *st, sb_store_agent_rows *out);

/* Called on the loop thread for every committed write that carried
 * events, just before that write's own callback: the whole bus of
 * switchboard hangs here, whoever wrote. */
typedef void (*sb_store_events_cb)(void *ud, const char *tenant,
                                   const sb_store_event_rows *rows);
void sb_store_on_events(sb_store *st, sb_store_events_cb cb, void *ud);

/* Counters for tests and benchmarks (read on the loop thread). */
typedef struct sb_store_stats {
  uint64_t batches;       /* write transactions committed */
  uint64_t writes;        /* writes run inside them */
  uint64_t writer_cpu_us; /* CPU time the writer thread has used */
  int pending;            /* submitted, not yet called back */
  int lost; /* a commit found the store's file (or its WAL) deleted or
               replaced under the server: every write fails with
               SB_EIO saying so, nothing is written */
} sb_store_stats;
void sb_store_get_stats(sb_store *st, sb_store_stats *out);

/* Test hook: while held, writes queue up and none starts; releasing lets
 * the writer take them all as one batch. hold -1 changes nothing. The
 * number of writes queued (not yet taken by the writer). */
int sb_store_hold_writes(sb_store *st, int hold);

#endif
