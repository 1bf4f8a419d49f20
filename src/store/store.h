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
 * Durability: a write returns only after its transaction is committed with
 * synchronous=FULL, so an acknowledged version survives a crash.
 */
#ifndef SB_STORE_H
#define SB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef struct sb_store sb_store;

typedef struct sb_store_options {
  const char *path; /* SQLite file; created (with parent dir) if missing */
  int busy_timeout_ms; /* wait for other writers; default 5000 */
} sb_store_options;

/* Open (and migrate) the store. NULL with err on failure. */
sb_store *sb_store_open_sqlite(const sb_store_options *opts, sb_error *err);
void sb_store_close(sb_store *st);

/* Schema version the code migrates to, and the one the file is at. */
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

/* Insert version 1 of a new context. SB_ECONFLICT if the id exists for this
 * tenant (even expired but not yet swept). */
int sb_store_create(sb_store *st, const char *tenant, const sb_store_record *r,
                    sb_error *err);

/* Read the head. SB_ENOENT if absent, of another tenant, or expired at
 * now_ms. */
int sb_store_get(sb_store *st, const char *tenant, const char *id,
                 int64_t now_ms, sb_store_record *out, sb_error *err);

/* Append version expected_version+1 atomically: the head must still be at
 * expected_version, else SB_ECONFLICT and *current_version (if not NULL) is
 * set to the head's version. `patch` is the RFC 6902 patch from the
 * previous version; `snapshot` is the full document, or NULL between
 * snapshots. new_doc becomes the head. */
int sb_store_append(sb_store *st, const char *tenant, const char *id,
                    int64_t expected_version, const char *new_doc,
                    const char *patch, const char *snapshot,
                    int64_t expires_ms, int64_t now_ms,
                    int64_t *current_version, sb_error *err);

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

/* What is needed to rebuild version n: the newest snapshot at or below n,
 * then every later version up to n, in order. SB_ENOENT if the context or
 * the version does not exist (for this tenant, unexpired). */
int sb_store_version_chain(sb_store *st, const char *tenant, const char *id,
                           int64_t n, int64_t now_ms, sb_store_versions *out,
                           sb_error *err);

/* History, newest first: at most `limit` versions below `before` (0 = from
 * the head). Snapshots are not loaded (snapshot stays NULL). */
int sb_store_history(sb_store *st, const char *tenant, const char *id,
                     int64_t before, size_t limit, int64_t now_ms,
                     sb_store_versions *out, sb_error *err);

/* Delete contexts (and their versions) that expired before now_ms, at most
 * `max` of them per call. Returns the number deleted, or a negative code. */
int sb_store_sweep_expired(sb_store *st, int64_t now_ms, int max,
                           sb_error *err);

/* Number of contexts of a tenant (including expired, unswept ones). */
int64_t sb_store_count(sb_store *st, const char *tenant);

#endif
