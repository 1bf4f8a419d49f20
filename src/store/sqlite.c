/* sqlite.c: the embedded store backend (the default).
 *
 * One SQLite file in WAL mode with synchronous=FULL: a commit is on disk
 * before sb_store_* returns, so whatever the caller acknowledges survives a
 * crash or a kill. Statements are prepared once and reused. Schema changes
 * are numbered migrations applied in order at open, tracked in
 * PRAGMA user_version.
 *
 * One connection, used from one thread (the event loop). The statements
 * are short (primary-key lookups and single-row writes), which is what the
 * loop can afford; a second process (tests, the CLI) may open the same file,
 * and writers wait for each other up to busy_timeout_ms.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store_internal.h"

enum {
  STMT_CREATE,
  STMT_VERSION_INSERT,
  STMT_GET,
  STMT_HEAD_VERSION,
  STMT_APPEND_HEAD,
  STMT_SNAPSHOT_AT_OR_BELOW,
  STMT_CHAIN,
  STMT_HISTORY,
  STMT_COUNT,
  STMT__COUNT
};

static const char *const stmt_sql[STMT__COUNT] = {
    [STMT_CREATE] =
        "INSERT INTO contexts(tenant_id,id,workflow_id,session_id,version,"
        "created_ms,updated_ms,expires_ms,doc) VALUES(?,?,?,?,1,?,?,?,?)",
    [STMT_VERSION_INSERT] =
        "INSERT INTO context_versions(tenant_id,context_id,version,created_ms,"
        "patch,snapshot) VALUES(?,?,?,?,?,?)",
    [STMT_GET] =
        "SELECT id,workflow_id,session_id,version,created_ms,updated_ms,"
        "expires_ms,doc FROM contexts WHERE tenant_id=? AND id=? AND "
        "(expires_ms=0 OR expires_ms>?)",
    [STMT_HEAD_VERSION] =
        "SELECT version FROM contexts WHERE tenant_id=? AND id=? AND "
        "(expires_ms=0 OR expires_ms>?)",
    [STMT_APPEND_HEAD] =
        "UPDATE contexts SET version=version+1,doc=?,updated_ms=?,"
        "expires_ms=? WHERE tenant_id=? AND id=? AND version=? AND "
        "(expires_ms=0 OR expires_ms>?)",
    [STMT_SNAPSHOT_AT_OR_BELOW] =
        "SELECT max(version) FROM context_versions WHERE tenant_id=? AND "
        "context_id=? AND version<=? AND snapshot IS NOT NULL",
    [STMT_CHAIN] =
        "SELECT version,created_ms,patch,snapshot FROM context_versions "
        "WHERE tenant_id=? AND context_id=? AND version BETWEEN ? AND ? "
        "ORDER BY version",
    [STMT_HISTORY] =
        "SELECT version,created_ms,patch FROM context_versions WHERE "
        "tenant_id=? AND context_id=? AND version<? ORDER BY version DESC "
        "LIMIT ?",
    [STMT_COUNT] = "SELECT count(*) FROM contexts WHERE tenant_id=?",
};

/* Migrations, applied in order; user_version = how many have run. */
static const char *const migrations[] = {
    /* 1: contexts and their version history */
    "CREATE TABLE contexts("
    " tenant_id TEXT NOT NULL, id TEXT NOT NULL,"
    " workflow_id TEXT NOT NULL DEFAULT '', session_id TEXT NOT NULL DEFAULT '',"
    " version INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
    " doc TEXT NOT NULL, PRIMARY KEY(tenant_id, id)) WITHOUT ROWID;"
    "CREATE INDEX contexts_expiry ON contexts(expires_ms) WHERE expires_ms>0;"
    "CREATE TABLE context_versions("
    " tenant_id TEXT NOT NULL, context_id TEXT NOT NULL,"
    " version INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " patch TEXT, snapshot TEXT,"
    " PRIMARY KEY(tenant_id, context_id, version)) WITHOUT ROWID;",
};
#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

typedef struct sqlite_store {
  sb_store base;
  sqlite3 *db;
  sqlite3_stmt *stmt[STMT__COUNT];
} sqlite_store;

static int db_error(sqlite_store *s, sb_error *err, const char *what) {
  int code = sqlite3_errcode(s->db);
  int rc = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? SB_ETIMEDOUT : SB_EIO;
  return sb_error_set(err, rc, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

static sqlite3_stmt *stmt(sqlite_store *s, int which) {
  sqlite3_stmt *st = s->stmt[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

static int exec(sqlite_store *s, const char *sql, sb_error *err) {
  char *msg = NULL;
  if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    sb_error_set(err, SB_EIO, "store: %s", msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return SB_EIO;
  }
  return 0;
}

static char *column_dup(sqlite3_stmt *st, int col) {
  const unsigned char *t = sqlite3_column_text(st, col);
  return t ? sb_strndup((const char *)t, (size_t)sqlite3_column_bytes(st, col))
           : NULL;
}

static void bind_text(sqlite3_stmt *st, int col, const char *v) {
  if (v) sqlite3_bind_text(st, col, v, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, col);
}

/* mkdir -p of the directory part of path. */
static int make_parent_dirs(const char *path, sb_error *err) {
  char *dir = sb_strdup(path);
  if (!dir) return sb_error_set(err, SB_ENOMEM, "out of memory");
  char *slash = strrchr(dir, '/');
  int rc = 0;
  if (slash && slash != dir) {
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
      if (*p != '/') continue;
      *p = '\0';
      if (mkdir(dir, 0750) != 0 && errno != EEXIST) rc = -1;
      *p = '/';
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) rc = -1;
    if (rc) sb_error_set(err, SB_EIO, "store: cannot create directory %s: %s",
                         dir, strerror(errno));
  }
  sb_free(dir);
  return rc ? SB_EIO : 0;
}

static int schema_at(sqlite_store *s, int *at, sb_error *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return db_error(s, err, "reading schema version");
  *at = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_finalize(st);
  return 0;
}

/* Each migration runs in its own write transaction and re-reads the
 * schema version inside it, so processes opening a new file at the same
 * moment apply every migration exactly once. */
static int migrate(sqlite_store *s, sb_error *err) {
  for (;;) {
    int at = 0;
    if (exec(s, "BEGIN IMMEDIATE", err)) return SB_EIO;
    if (schema_at(s, &at, err)) goto fail;
    if (at > MIGRATION_COUNT) {
      sb_error_set(err, SB_EINVAL,
                   "store: the database schema is version %d, newer than "
                   "this switchboard knows (%d); upgrade switchboard",
                   at, MIGRATION_COUNT);
      goto fail;
    }
    if (at == MIGRATION_COUNT) return exec(s, "COMMIT", err) ? SB_EIO : 0;
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d;", at + 1);
    if (exec(s, migrations[at], err) || exec(s, pragma, err) ||
        exec(s, "COMMIT", err))
      goto fail;
  }
fail:
  sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return err && err->code ? err->code : SB_EIO;
}

static void sqlite_close(sb_store *base) {
  sqlite_store *s = (sqlite_store *)base;
  for (int i = 0; i < STMT__COUNT; i++) sqlite3_finalize(s->stmt[i]);
  sqlite3_close(s->db);
  sb_free(s);
}

static int sqlite_schema_version(sb_store *base) { return MIGRATION_COUNT; }

static int sqlite_create(sb_store *base, const char *tenant,
                         const sb_store_record *r, sb_error *err) {
  sqlite_store *s = (sqlite_store *)base;
  if (exec(s, "BEGIN IMMEDIATE", err)) return SB_EIO;
  sqlite3_stmt *st = stmt(s, STMT_CREATE);
  bind_text(st, 1, tenant);
  bind_text(st, 2, r->id);
  bind_text(st, 3, r->workflow_id ? r->workflow_id : "");
  bind_text(st, 4, r->session_id ? r->session_id : "");
  sqlite3_bind_int64(st, 5, r->created_ms);
  sqlite3_bind_int64(st, 6, r->created_ms);
  sqlite3_bind_int64(st, 7, r->expires_ms);
  bind_text(st, 8, r->doc);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) {
    int conflict = sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_PRIMARYKEY;
    int out = conflict ? sb_error_set(err, SB_ECONFLICT,
                                      "context %s already exists", r->id)
                       : db_error(s, err, "creating a context");
    sqlite3_reset(st);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return out;
  }
  st = stmt(s, STMT_VERSION_INSERT);
  bind_text(st, 1, tenant);
  bind_text(st, 2, r->id);
  sqlite3_bind_int64(st, 3, 1);
  sqlite3_bind_int64(st, 4, r->created_ms);
  sqlite3_bind_null(st, 5);
  bind_text(st, 6, r->doc);
  if (sqlite3_step(st) != SQLITE_DONE) {
    int out = db_error(s, err, "recording version 1");
    sqlite3_reset(st);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return out;
  }
  sqlite3_reset(st);
  if (exec(s, "COMMIT", err)) {
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return SB_EIO;
  }
  return 0;
}

static int sqlite_get(sb_store *base, const char *tenant, const char *id,
                      int64_t now_ms, sb_store_record *out, sb_error *err) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *st = stmt(s, STMT_GET);
  bind_text(st, 1, tenant);
  bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, now_ms);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    return sb_error_set(err, SB_ENOENT, "context %s not found", id);
  }
  if (rc != SQLITE_ROW) {
    int e = db_error(s, err, "reading a context");
    sqlite3_reset(st);
    return e;
  }
  out->id = column_dup(st, 0);
  out->workflow_id = column_dup(st, 1);
  out->session_id = column_dup(st, 2);
  out->version = sqlite3_column_int64(st, 3);
  out->created_ms = sqlite3_column_int64(st, 4);
  out->updated_ms = sqlite3_column_int64(st, 5);
  out->expires_ms = sqlite3_column_int64(st, 6);
  out->doc = column_dup(st, 7);
  sqlite3_reset(st);
  if (!out->id || !out->doc) {
    sb_store_record_clear(out);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  return 0;
}

/* Head version of an unexpired context, 0 if there is none. */
static int64_t head_version(sqlite_store *s, const char *tenant,
                            const char *id, int64_t now_ms) {
  sqlite3_stmt *st = stmt(s, STMT_HEAD_VERSION);
  bind_text(st, 1, tenant);
  bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, now_ms);
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return v;
}

static int sqlite_append(sb_store *base, const char *tenant, const char *id,
                         int64_t expected, const char *new_doc,
                         const char *patch, const char *snapshot,
                         int64_t expires_ms, int64_t now_ms,
                         int64_t *current_version, sb_error *err) {
  sqlite_store *s = (sqlite_store *)base;
  int rc = 0;
  if (exec(s, "BEGIN IMMEDIATE", err)) return SB_EIO;
  sqlite3_stmt *st = stmt(s, STMT_APPEND_HEAD);
  bind_text(st, 1, new_doc);
  sqlite3_bind_int64(st, 2, now_ms);
  sqlite3_bind_int64(st, 3, expires_ms);
  bind_text(st, 4, tenant);
  bind_text(st, 5, id);
  sqlite3_bind_int64(st, 6, expected);
  sqlite3_bind_int64(st, 7, now_ms);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = db_error(s, err, "updating a context");
    sqlite3_reset(st);
    goto rollback;
  }
  sqlite3_reset(st);
  if (sqlite3_changes(s->db) == 0) {
    int64_t head = head_version(s, tenant, id, now_ms);
    if (current_version) *current_version = head;
    rc = head ? sb_error_set(err, SB_ECONFLICT,
                             "context %s is at version %lld, not %lld",
                             id, (long long)head, (long long)expected)
              : sb_error_set(err, SB_ENOENT, "context %s not found", id);
    goto rollback;
  }
  st = stmt(s, STMT_VERSION_INSERT);
  bind_text(st, 1, tenant);
  bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, expected + 1);
  sqlite3_bind_int64(st, 4, now_ms);
  bind_text(st, 5, patch);
  bind_text(st, 6, snapshot);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = db_error(s, err, "recording a version");
    sqlite3_reset(st);
    goto rollback;
  }
  sqlite3_reset(st);
  if (exec(s, "COMMIT", err)) {
    rc = SB_EIO;
    goto rollback;
  }
  if (current_version) *current_version = expected + 1;
  return 0;
rollback:
  sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

static int push_version(sb_store_versions *out, sqlite3_stmt *st,
                        int with_snapshot) {
  sb_store_version *items =
      sb_realloc(out->items, (out->len + 1) * sizeof *out->items);
  if (!items) return SB_ENOMEM;
  out->items = items;
  sb_store_version *v = &items[out->len++];
  v->version = sqlite3_column_int64(st, 0);
  v->created_ms = sqlite3_column_int64(st, 1);
  v->patch = column_dup(st, 2);
  v->snapshot = with_snapshot ? column_dup(st, 3) : NULL;
  return 0;
}

static int sqlite_version_chain(sb_store *base, const char *tenant,
                                const char *id, int64_t n, int64_t now_ms,
                                sb_store_versions *out, sb_error *err) {
  sqlite_store *s = (sqlite_store *)base;
  int rc = 0;
  /* One read transaction: the head check and the rows agree. */
  if (exec(s, "BEGIN", err)) return SB_EIO;
  int64_t head = head_version(s, tenant, id, now_ms);
  if (!head) {
    rc = sb_error_set(err, SB_ENOENT, "context %s not found", id);
    goto done;
  }
  if (n < 1 || n > head) {
    rc = sb_error_set(err, SB_ENOENT,
                      "context %s has versions 1 to %lld, not %lld", id,
                      (long long)head, (long long)n);
    goto done;
  }
  sqlite3_stmt *st = stmt(s, STMT_SNAPSHOT_AT_OR_BELOW);
  bind_text(st, 1, tenant);
  bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, n);
  int64_t from = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  if (from < 1) {
    rc = sb_error_set(err, SB_EIO, "store: context %s has no snapshot", id);
    goto done;
  }
  st = stmt(s, STMT_CHAIN);
  bind_text(st, 1, tenant);
  bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, from);
  sqlite3_bind_int64(st, 4, n);
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (push_version(out, st, out->len == 0) != 0) {
      rc = sb_error_set(err, SB_ENOMEM, "out of memory");
      break;
    }
  }
  if (!rc && step != SQLITE_DONE) rc = db_error(s, err, "reading versions");
  sqlite3_reset(st);
done:
  sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  if (rc) sb_store_versions_clear(out);
  return rc;
}

static int sqlite_history(sb_store *base, const char *tenant, const char *id,
                          int64_t before, size_t limit, int64_t now_ms,
                          sb_store_versions *out, sb_error *err) {
  sqlite_store *s = (sqlite_store *)base;
  int rc = 0;
  if (exec(s, "BEGIN", err)) return SB_EIO;
  int64_t head = head_version(s, tenant, id, now_ms);
  if (!head) {
    rc = sb_error_set(err, SB_ENOENT, "context %s not found", id);
    goto done;
  }
  sqlite3_stmt *st = stmt(s, STMT_HISTORY);
  bind_text(st, 1, tenant);
  bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, before > 0 ? before : head + 1);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (push_version(out, st, 0) != 0) {
      rc = sb_error_set(err, SB_ENOMEM, "out of memory");
      break;
    }
  }
  if (!rc && step != SQLITE_DONE) rc = db_error(s, err, "reading history");
  sqlite3_reset(st);
done:
  sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  if (rc) sb_store_versions_clear(out);
  return rc;
}

static int sqlite_sweep(sb_store *base, int64_t now_ms, int max,
                        sb_error *err) {
  sqlite_store *s = (sqlite_store *)base;
  char sql[512];
  snprintf(sql, sizeof sql,
           "BEGIN IMMEDIATE;"
           "CREATE TEMP TABLE IF NOT EXISTS sweep(tenant_id, id);"
           "DELETE FROM temp.sweep;"
           "INSERT INTO temp.sweep SELECT tenant_id,id FROM contexts WHERE "
           "expires_ms>0 AND expires_ms<=%lld LIMIT %d;"
           "DELETE FROM context_versions WHERE (tenant_id,context_id) IN "
           "(SELECT tenant_id,id FROM temp.sweep);"
           "DELETE FROM contexts WHERE (tenant_id,id) IN "
           "(SELECT tenant_id,id FROM temp.sweep);",
           (long long)now_ms, max > 0 ? max : 1000);
  if (exec(s, sql, err)) {
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return SB_EIO;
  }
  int deleted = sqlite3_changes(s->db);
  if (exec(s, "COMMIT", err)) {
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return SB_EIO;
  }
  return deleted;
}

static int64_t sqlite_count(sb_store *base, const char *tenant) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *st = stmt(s, STMT_COUNT);
  bind_text(st, 1, tenant);
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return n;
}

static const sb_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sqlite_close,
    .schema_version = sqlite_schema_version,
    .create = sqlite_create,
    .get = sqlite_get,
    .append = sqlite_append,
    .version_chain = sqlite_version_chain,
    .history = sqlite_history,
    .sweep_expired = sqlite_sweep,
    .count = sqlite_count,
};

sb_store *sb_store_open_sqlite(const sb_store_options *opts, sb_error *err) {
  sqlite_store *s = sb_calloc(1, sizeof *s);
  if (!s) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  s->base.ops = &sqlite_ops;
  if (make_parent_dirs(opts->path, err) != 0) goto fail;
  if (sqlite3_open_v2(opts->path, &s->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    sb_error_set(err, SB_EIO, "store: cannot open %s: %s", opts->path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
    goto fail;
  }
  sqlite3_busy_timeout(s->db, opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms
                                                        : 5000);
  if (exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
              "PRAGMA foreign_keys=ON;",
           err) != 0)
    goto fail;
  if (migrate(s, err) != 0) goto fail;
  for (int i = 0; i < STMT__COUNT; i++) {
    if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                           &s->stmt[i], NULL) != SQLITE_OK) {
      db_error(s, err, "preparing statements");
      goto fail;
    }
  }
  return &s->base;
fail:
  sqlite_close(&s->base);
  return NULL;
}
