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

typedef struct sb_store_options {
  const char *path;    /* SQLite file; created (with parent dir) if missing */
  uv_loop_t *loop;     /* callbacks run here; submit only from its thread */
  int busy_timeout_ms; /* wait for other processes' writers; default 5000 */
  int max_pending;     /* operations submitted and not yet called back
                          before submissions get SB_EBUSY; default 4096 */
  int readers;         /* reader threads; default 2 */
} sb_store_options;

/* Open (and migrate) the store and start its threads. NULL with err on
 * failure. Must be called on the loop's thread. */
sb_store *sb_store_open_sqlite(const sb_store_options *opts, sb_error *err);

/* Stop the store, on the loop thread (not from inside one of its own
 * callbacks): operations already queued still run (queued writes are
 * committed), their callbacks run inside this call, and the threads are
 * joined. The store's loop handle closes through the loop: run the loop
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
} sb_store_result;

/* Runs once per queued operation, on the loop thread. */
typedef void (*sb_store_cb)(void *ud, sb_store_result *res);

/* Insert version 1 of a new context (strings copied). Completes with
 * SB_ECONFLICT if the id exists for this tenant (even expired but not yet
 * swept). */
int sb_store_create(sb_store *st, const char *tenant, const sb_store_record *r,
                    sb_store_cb cb, void *ud);

/* Read the head into res->record. SB_ENOENT if absent, of another tenant,
 * or expired at now_ms. */
int sb_store_get(sb_store *st, const char *tenant, const char *id,
                 int64_t now_ms, sb_store_cb cb, void *ud);

/* Append version expected_version+1 atomically: the head must still be at
 * expected_version when the write runs, else SB_ECONFLICT with the head's
 * version in res->version (SB_ENOENT if there is no head). */
typedef struct sb_store_append_args {
  const char *tenant;
  const char *id;
  int64_t expected_version;
  const char *new_doc; /* becomes the head */
  const char *patch;   /* RFC 6902 patch from the previous version */
  int snapshot;        /* 1: also keep new_doc as this version's snapshot */
  int64_t expires_ms;  /* 0 = never */
  int64_t now_ms;
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

/* Counters for tests and benchmarks (read on the loop thread). */
typedef struct sb_store_stats {
  uint64_t batches;       /* write transactions committed */
  uint64_t writes;        /* writes run inside them */
  uint64_t writer_cpu_us; /* CPU time the writer thread has used */
  int pending;            /* submitted, not yet called back */
} sb_store_stats;
void sb_store_get_stats(sb_store *st, sb_store_stats *out);

/* Test hook: while held, writes queue up and none starts; releasing lets
 * the writer take them all as one batch. */
void sb_store_hold_writes(sb_store *st, int hold);

#endif
