/* sqlite.c: one SQLite connection and the operations that run on it.
 *
 * The file is in WAL mode with synchronous=FULL: a commit is on disk
 * before it returns, so whatever is acknowledged after it survives a crash
 * or a kill. Statements are prepared once per connection and reused.
 * Schema changes are numbered migrations applied in order when the
 * writer's connection opens, tracked in PRAGMA user_version.
 *
 * A connection belongs to one thread at a time (sqlite_threads.c runs the
 * writer and the readers). Writes never begin or commit on their own: the
 * writer hands a batch of them to st_conn_write_batch, which runs them in
 * one transaction, so one that fails is rolled back alone while its
 * neighbours commit: most failures (a stale version, an id taken) change
 * nothing, so a batch first runs without a savepoint per write (each
 * copies the pages the write touches); a write failing after it changed
 * rows rolls that attempt back, and the batch runs again with a
 * savepoint around each write. Writes that come while the writer lingers
 * for them join the open transaction (st_more_fn) and run at once, so a
 * batch's SQL runs while its last writes are still being made; the
 * COMMIT is still one, and still the only acknowledgement. A second
 * process (tests, the
 * CLI) may open the same file; writers wait for each other up to
 * busy_timeout_ms.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_internal.h"

/* A context is live until metadata.expiresAt, and after it for as long
 * as a workflow run is running or waiting on it: every step of the run
 * writes it, and a wait may outlast any expiry (runs_active_context). */
#define RUN_HOLDS(ctx)                                                         \
  "EXISTS(SELECT 1 FROM runs WHERE runs.tenant_id=" ctx ".tenant_id AND "     \
  "runs.context_id=" ctx ".id AND runs.status IN ('running','waiting'))"
#define LIVE "(expires_ms=0 OR expires_ms>? OR " RUN_HOLDS("contexts") ")"

static const char *const stmt_sql[STMT__COUNT] = {
    [STMT_CREATE] =
        "INSERT INTO contexts(tenant_id,id,workflow_id,session_id,version,"
        "created_ms,updated_ms,expires_ms,doc) VALUES(?,?,?,?,1,?,?,?,?)",
    [STMT_VERSION_INSERT] =
        "INSERT INTO context_versions(tenant_id,context_id,version,created_ms,"
        "patch,snapshot) VALUES(?,?,?,?,?,?)",
    [STMT_GET] =
        "SELECT id,workflow_id,session_id,version,created_ms,updated_ms,"
        "expires_ms,doc FROM contexts WHERE tenant_id=? AND id=? AND " LIVE,
    [STMT_HEAD_VERSION] =
        "SELECT version FROM contexts WHERE tenant_id=? AND id=? AND " LIVE,
    [STMT_APPEND_HEAD] =
        "UPDATE contexts SET version=version+1,doc=?,updated_ms=?,"
        "expires_ms=? WHERE tenant_id=? AND id=? AND version=? AND " LIVE,
    /* The same when the expiry stays (nearly always): expires_ms out of
     * the SET list, so the expiry index is left alone. */
    [STMT_APPEND_HEAD_SAME_EXPIRY] =
        "UPDATE contexts SET version=version+1,doc=?,updated_ms=? WHERE "
        "tenant_id=? AND id=? AND version=? AND expires_ms=? AND " LIVE,
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
    [STMT_SAVEPOINT] = "SAVEPOINT w",
    [STMT_RELEASE] = "RELEASE w",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO w",
    [STMT_RUN_INSERT] =
        "INSERT INTO runs(tenant_id,id,workflow,context_id,status,rev,"
        "created_ms,updated_ms,doc,seq,def,driver) "
        "VALUES(?,?,?,?,?,1,?,?,?,?,?,?)",
    [STMT_RUN_UPDATE] =
        "UPDATE runs SET workflow=?1,context_id=?2,status=?3,doc=?4,"
        "rev=rev+1,updated_ms=?5,seq=max(seq,?6),driver=CASE WHEN ?10<0 "
        "THEN driver ELSE ?10 END WHERE tenant_id=?7 AND id=?8 AND rev=?9",
    [STMT_RUN_REV] = "SELECT rev FROM runs WHERE tenant_id=? AND id=?",
    [STMT_RUN_GET] =
        "SELECT tenant_id,id,workflow,context_id,status,doc,rev,created_ms,"
        "updated_ms,seq,def,driver FROM runs WHERE tenant_id=? AND id=?",
    /* A list shows each run's summary: its input and history (megabytes,
     * for a run started with a large input or looping long) and its
     * definition are left in SQLite rather than copied out and parsed
     * on the loop for every page (sb_store_run_list). A doc that is not
     * JSON is handed as it is, as a get would. */
    [STMT_RUN_LIST] =
        "SELECT tenant_id,id,workflow,context_id,status,CASE WHEN "
        "json_valid(doc) THEN json_remove(doc,'$.input','$.history') ELSE "
        "doc END,rev,created_ms,updated_ms,seq,'',driver FROM runs WHERE "
        "tenant_id=?1 AND (?2 IS NULL OR status=?2) AND (?3 IS NULL OR "
        "id<?3) ORDER BY id DESC LIMIT ?4",
    [STMT_RUNS_ACTIVE] =
        "SELECT tenant_id,id,workflow,context_id,status,doc,rev,created_ms,"
        "updated_ms,seq,def,driver FROM runs WHERE status IN ('running','waiting') "
        "ORDER BY id",
    [STMT_RUN_DRIVERS] = "SELECT DISTINCT driver FROM runs WHERE status IN "
                         "('running','waiting')",
    [STMT_RUNS_OF_DRIVER] =
        "SELECT tenant_id,id,workflow,context_id,status,doc,rev,created_ms,"
        "updated_ms,seq,def,driver FROM runs WHERE status IN ('running','waiting') "
        "AND driver=? ORDER BY id",
    [STMT_RUNS_TAKE] = "UPDATE runs SET driver=?1 WHERE status IN "
                       "('running','waiting') AND driver=?2",
    [STMT_RUNS_MOVED] =
        "SELECT r.tenant_id,r.id,r.workflow,r.context_id,r.status,r.doc,"
        "r.rev,r.created_ms,r.updated_ms,r.seq,r.def,r.driver FROM "
        "runs_moved m JOIN runs r ON r.tenant_id=m.tenant_id AND r.id=m.id "
        "WHERE m.driver=? ORDER BY r.id",
    [STMT_RUNS_MOVED_CLEAR] = "DELETE FROM runs_moved WHERE driver=?",
    [STMT_EVENT_SEQ] =
        "INSERT INTO event_seqs(tenant_id,last) VALUES(?1,?2) ON CONFLICT("
        "tenant_id) DO UPDATE SET last=last+?2 RETURNING last",
    [STMT_EVENT_INSERT] =
        "INSERT INTO events(tenant_id,seq,type,run_id,created_ms,data) "
        "VALUES(?,?,?,?,?,?)",
    [STMT_EVENTS_READ] =
        "SELECT seq,created_ms,type,run_id,data FROM events WHERE "
        "tenant_id=?1 AND seq>?2 AND (?3 IS NULL OR run_id=?3) ORDER BY seq "
        "LIMIT ?4",
    [STMT_EVENT_LAST] = "SELECT last FROM event_seqs WHERE tenant_id=?",
    [STMT_EVENTS_TRIM] =
        "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE "
        "created_ms<? LIMIT ?)",
    [STMT_TENANT_INSERT] =
        "INSERT INTO tenants(id,name,created_ms) VALUES(?,?,?)",
    [STMT_TENANT_LIST] = "SELECT id,name,created_ms FROM tenants ORDER BY id",
    [STMT_KEY_INSERT] =
        "INSERT INTO api_keys(id,tenant_id,hash,scopes,created_ms,expires_ms)"
        " VALUES(?,?,?,?,?,?)",
    [STMT_KEY_LIST] =
        "SELECT id,tenant_id,'',scopes,created_ms,expires_ms,revoked_ms FROM "
        "api_keys WHERE ?1 IS NULL OR tenant_id=?1 ORDER BY created_ms,id",
    [STMT_KEY_REVOKE] =
        "UPDATE api_keys SET revoked_ms=?2 WHERE id=?1 AND revoked_ms=0",
    [STMT_KEY_EXISTS] = "SELECT 1 FROM api_keys WHERE id=?",
    [STMT_KEY_EPOCH] = "SELECT epoch FROM key_epoch",
    [STMT_KEY_EPOCH_BUMP] = "UPDATE key_epoch SET epoch=epoch+1",
    [STMT_KEYS_LOAD] =
        "SELECT id,tenant_id,hash,scopes,created_ms,expires_ms,revoked_ms "
        "FROM api_keys WHERE revoked_ms=0",
    [STMT_AGENT_PUT] =
        "INSERT INTO agents(id,tenant_id,definition,updated_ms) "
        "VALUES(?1,?2,?3,?4) ON CONFLICT(id) DO UPDATE SET "
        "tenant_id=?2,definition=?3,updated_ms=?4",
    [STMT_AGENTS_LIST] =
        "SELECT id,tenant_id,definition,updated_ms FROM agents ORDER BY id",
};

/* Migrations, applied in order; user_version = how many have run. */
static const char *const migrations[] = {
    /* 1: contexts and their version history */
    "CREATE TABLE contexts("
    " tenant_id TEXT NOT NULL, id TEXT NOT NULL,"
    " workflow_id TEXT NOT NULL DEFAULT '', session_id TEXT NOT NULL DEFAULT "
    "'',"
    " version INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
    " doc TEXT NOT NULL, PRIMARY KEY(tenant_id, id)) WITHOUT ROWID;"
    "CREATE INDEX contexts_expiry ON contexts(expires_ms) WHERE expires_ms>0;"
    "CREATE TABLE context_versions("
    " tenant_id TEXT NOT NULL, context_id TEXT NOT NULL,"
    " version INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " patch TEXT, snapshot TEXT,"
    " PRIMARY KEY(tenant_id, context_id, version)) WITHOUT ROWID;",
    /* 2: the same tables with rowids. A WITHOUT ROWID table keeps each
     * row inside the key's b-tree, which suits rows far smaller than a
     * page; documents of a kilobyte and more spill into overflow pages
     * there, and every update rewrote them in the index itself. */
    "CREATE TABLE contexts2("
    " tenant_id TEXT NOT NULL, id TEXT NOT NULL,"
    " workflow_id TEXT NOT NULL DEFAULT '', session_id TEXT NOT NULL DEFAULT "
    "'',"
    " version INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
    " doc TEXT NOT NULL, UNIQUE(tenant_id, id));"
    "INSERT INTO contexts2 SELECT tenant_id,id,workflow_id,session_id,"
    "version,created_ms,updated_ms,expires_ms,doc FROM contexts;"
    "DROP TABLE contexts;"
    "ALTER TABLE contexts2 RENAME TO contexts;"
    "CREATE INDEX contexts_expiry ON contexts(expires_ms) WHERE expires_ms>0;"
    "CREATE TABLE context_versions2("
    " tenant_id TEXT NOT NULL, context_id TEXT NOT NULL,"
    " version INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " patch TEXT, snapshot TEXT,"
    " UNIQUE(tenant_id, context_id, version));"
    "INSERT INTO context_versions2 SELECT tenant_id,context_id,version,"
    "created_ms,patch,snapshot FROM context_versions;"
    "DROP TABLE context_versions;"
    "ALTER TABLE context_versions2 RENAME TO context_versions;",
    /* 3: workflow runs, and each tenant's ordered event log */
    "CREATE TABLE runs("
    " tenant_id TEXT NOT NULL, id TEXT NOT NULL, workflow TEXT NOT NULL,"
    " context_id TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,"
    " rev INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, doc TEXT NOT NULL,"
    " UNIQUE(tenant_id, id));"
    "CREATE INDEX runs_active ON runs(status) WHERE status IN "
    "('running','waiting');"
    "CREATE TABLE events("
    " tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL,"
    " run_id TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL,"
    " data TEXT NOT NULL, UNIQUE(tenant_id, seq));"
    "CREATE INDEX events_age ON events(created_ms);"
    "CREATE INDEX events_run ON events(tenant_id, run_id, seq) WHERE "
    "run_id<>'';"
    "CREATE TABLE event_seqs(tenant_id TEXT PRIMARY KEY,"
    " last INTEGER NOT NULL) WITHOUT ROWID;",
    /* 4: a run remembers the seq of its last write's last event (where a
     * step waiting for events begins, after a restart) */
    "ALTER TABLE runs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;",
    /* 5: the workflow definition a run follows, written once with the run
     * (not with every transition) */
    "ALTER TABLE runs ADD COLUMN def TEXT NOT NULL DEFAULT '';",
    /* 6: tenants and their API keys (a hash of each key, never the key),
     * and an epoch every key change moves, so a server polls one row to
     * learn whether its cache of keys is stale */
    "CREATE TABLE tenants(id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',"
    " created_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE api_keys(id TEXT PRIMARY KEY,"
    " tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    " hash TEXT NOT NULL, scopes TEXT NOT NULL DEFAULT '[]',"
    " created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
    " revoked_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX api_keys_tenant ON api_keys(tenant_id);"
    "CREATE TABLE key_epoch(one INTEGER PRIMARY KEY CHECK(one=1),"
    " epoch INTEGER NOT NULL);"
    "INSERT INTO key_epoch VALUES(1,0);",
    /* 7: the contexts of unfinished runs, which stay live past their
     * expiry (LIVE) */
    ("CREATE INDEX runs_active_context ON runs(tenant_id, context_id) "
     "WHERE status IN ('running','waiting');"),
    /* 8: agents registered, replaced or removed through the API (a NULL
     * definition: removed), which outlive a restart */
    "CREATE TABLE agents(id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,"
    " definition TEXT, updated_ms INTEGER NOT NULL) WITHOUT ROWID;",
    /* 9: the driver slot (sqlite_drivers.c) of the process driving each
     * run; -1: none (runs written before, or by a store that drives none) */
    "ALTER TABLE runs ADD COLUMN driver INTEGER NOT NULL DEFAULT -1;",
    /* 10: runs taken from a driver (another process wrote them, taking
     * them over), kept for that driver to learn its copy is behind */
    "CREATE TABLE runs_moved(driver INTEGER NOT NULL, tenant_id TEXT NOT "
    "NULL, id TEXT NOT NULL, PRIMARY KEY(driver, tenant_id, id)) WITHOUT "
    "ROWID;"
    "CREATE TRIGGER runs_driver_moved AFTER UPDATE OF driver ON runs WHEN "
    "old.driver>=0 AND old.driver<>new.driver BEGIN INSERT OR IGNORE INTO "
    "runs_moved VALUES(old.driver, old.tenant_id, old.id); END;",
};
#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

struct st_conn {
  sqlite3 *db;
  sqlite3_stmt *stmt[STMT__COUNT];
  const st_drivers *drivers; /* the writer's, when the store drives runs */
  /* Set once a commit found the file deleted or replaced (file_moved):
   * why, for every later write and the store's readiness. */
  char lost[512];
};

void st_conn_set_drivers(st_conn *c, const st_drivers *d) { c->drivers = d; }

const st_drivers *st_conn_drivers(st_conn *c) { return c->drivers; }

/* What an SQLite failure is to callers: another process holding the
 * write lock past the busy timeout is SB_EBUSY (try again shortly, as for
 * a full queue: 503 with Retry-After, -31050); anything else SB_EIO. */
static int failure_code(st_conn *c) {
  int code = sqlite3_errcode(c->db);
  return code == SQLITE_BUSY || code == SQLITE_LOCKED ? SB_EBUSY : SB_EIO;
}

int st_db_error(st_conn *c, sb_error *err, const char *what) {
  return sb_error_set(err, failure_code(c), "store: %s: %s", what,
                      sqlite3_errmsg(c->db));
}

sqlite3_stmt *st_conn_stmt(st_conn *c, int which) {
  sqlite3_stmt *st = c->stmt[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

sqlite3 *st_conn_db(st_conn *c) { return c->db; }

/* Step a statement without results; 0 or the SQLite code. */
static int run(st_conn *c, int which) {
  sqlite3_stmt *st = st_conn_stmt(c, which);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : rc;
}

/* Run sql; the error names the store's path when one is given (for
 * opening, where "file is not a database" alone does not say which). */
static int exec_at(st_conn *c, const char *path, const char *sql,
                   sb_error *err) {
  char *msg = NULL;
  if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    int rc =
        sb_error_set(err, failure_code(c), "store: %s%s%s", path ? path : "",
                     path ? ": " : "", msg ? msg : sqlite3_errmsg(c->db));
    sqlite3_free(msg);
    return rc;
  }
  return 0;
}

static int exec(st_conn *c, const char *sql, sb_error *err) {
  return exec_at(c, NULL, sql, err);
}

char *st_column_dup(sqlite3_stmt *st, int col) {
  const unsigned char *t = sqlite3_column_text(st, col);
  return t ? sb_strndup((const char *)t, (size_t)sqlite3_column_bytes(st, col))
           : NULL;
}

void st_bind_text(sqlite3_stmt *st, int col, const char *v) {
  if (v)
    sqlite3_bind_text(st, col, v, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, col);
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
    if (rc)
      sb_error_set(err, SB_EIO, "store: cannot create directory %s: %s", dir,
                   strerror(errno));
  }
  sb_free(dir);
  return rc ? SB_EIO : 0;
}

static int schema_at(st_conn *c, int *at, sb_error *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) !=
      SQLITE_OK)
    return st_db_error(c, err, "reading schema version");
  *at = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_finalize(st);
  return 0;
}

/* Each migration runs in its own write transaction and re-reads the
 * schema version inside it, so processes opening a new file at the same
 * moment apply every migration exactly once. */
static int migrate(st_conn *c, sb_error *err) {
  for (;;) {
    int at = 0;
    if (exec(c, "BEGIN IMMEDIATE", err)) return err->code;
    if (schema_at(c, &at, err)) goto fail;
    if (at > MIGRATION_COUNT) {
      sb_error_set(err, SB_EINVAL,
                   "store: the database schema is version %d, newer than "
                   "this switchboard knows (%d); upgrade switchboard",
                   at, MIGRATION_COUNT);
      goto fail;
    }
    if (at == MIGRATION_COUNT) return exec(c, "COMMIT", err) ? SB_EIO : 0;
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d;", at + 1);
    if (exec(c, migrations[at], err) || exec(c, pragma, err) ||
        exec(c, "COMMIT", err))
      goto fail;
  }
fail:
  sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  return err && err->code ? err->code : SB_EIO;
}

void st_conn_close(st_conn *c) {
  if (!c) return;
  for (int i = 0; i < STMT__COUNT; i++)
    sqlite3_finalize(c->stmt[i]);
  sqlite3_close(c->db);
  sb_free(c);
}

int st_conn_schema_version(void) { return MIGRATION_COUNT; }

/* PRAGMA quick_check: every page of the file read, its b-trees walked
 * (not the indexes against their tables: integrity_check's, far slower).
 * It runs after SQLite has read the log back, so the store is judged as
 * it would be served. 0, or SB_EIO naming the file and its first
 * findings. */
static int quick_check(st_conn *c, const char *path, sb_error *err) {
  sqlite3_stmt *st = NULL;
  char found[320] = "";
  size_t len = 0;
  int rows = 0, step = SQLITE_DONE;
  if (sqlite3_prepare_v2(c->db, "PRAGMA quick_check(4)", -1, &st, NULL) ==
      SQLITE_OK) {
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
      const char *line = (const char *)sqlite3_column_text(st, 0);
      if (rows++ == 0 && line && !strcmp(line, "ok")) continue;
      /* One row may hold several findings, a line each, after a line
       * naming the schema: on one line, "; " between them. */
      static const char banner[] = "*** in database main ***\n";
      if (line && !strncmp(line, banner, sizeof banner - 1))
        line += sizeof banner - 1;
      for (const char *p = line ? line : "?"; *p && len + 3 < sizeof found;
           p++) {
        if (*p == '\n' || p == line) {
          if (len) {
            found[len++] = ';';
            found[len++] = ' ';
          }
          if (*p == '\n') continue;
        }
        found[len++] = *p;
      }
      found[len] = '\0';
    }
  } else {
    step = sqlite3_errcode(c->db);
  }
  if (step != SQLITE_DONE && !len)
    snprintf(found, sizeof found, "%s", sqlite3_errmsg(c->db));
  sqlite3_finalize(st);
  if (!found[0]) return 0;
  return sb_error_set(err, SB_EIO,
                      "store: %s is damaged (PRAGMA quick_check: %s): "
                      "restore it from a backup (with its -wal, if one was "
                      "taken); nothing was served from it",
                      path, found);
}

st_conn *st_conn_open(const char *path, int busy_timeout_ms, int migrate_first,
                      int check, sb_error *err) {
  st_conn *c = sb_calloc(1, sizeof *c);
  if (!c) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  if (migrate_first && make_parent_dirs(path, err) != 0) goto fail;
  /* NOMUTEX: each connection is used by one thread at a time. The
   * writer's commits go through the gathering VFS (sqlite_vfs.c). */
  if (sqlite3_open_v2(path, &c->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX,
                      migrate_first ? st_gather_vfs() : NULL) != SQLITE_OK) {
    sb_error_set(err, SB_EIO, "store: cannot open %s: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
    goto fail;
  }
  /* SQLite opens a file it may not write read-only, without a word: the
   * server would say it is ready and fail every write. Said before any
   * statement, so no -wal or -shm is made of the store's mode. */
  if (migrate_first && sqlite3_db_readonly(c->db, "main") == 1) {
    int e = access(path, W_OK) != 0 ? errno : 0;
    sb_error_set(err, SB_EIO, "store: %s cannot be written: %s", path,
                 e ? strerror(e) : "SQLite opened it read-only");
    goto fail;
  }
  if (busy_timeout_ms <= 0) busy_timeout_ms = 5000; /* sb_store_options */
  sqlite3_busy_timeout(c->db, busy_timeout_ms);
  /* The first statements are where a file that is not a store shows
   * ("file is not a database"): say which file. */
  if (exec_at(c, path,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
           /* statement journals and RETURNING's buffers: in memory, not
            * temporary files (a savepoint per write makes many) */
           "PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=ON;",
           err) != 0)
    goto fail;
  /* Before the writer's large cache below: the check reads every page
   * once, and would leave that cache full of them. */
  if (check && quick_check(c, path, err) != 0) goto fail;
  /* The writer's page cache holds the pages its updates touch (the rows
   * of the contexts being worked on and their indexes' paths): a miss is
   * a read from the WAL or the file inside the batch (SQLite's default
   * is 2 MB). */
  if (migrate_first && exec(c, "PRAGMA cache_size=-65536", err) != 0) goto fail;
  if (migrate_first && migrate(c, err) != 0) {
    /* The one failure here that is no fault of the file: say which file,
     * and that waiting may do. */
    int code = sqlite3_errcode(c->db);
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
      sb_error_set(err, SB_ETIMEDOUT,
                   "store: %s: another process held its write lock for "
                   "longer than %d ms (%s); start again once it is done",
                   path, busy_timeout_ms, sqlite3_errmsg(c->db));
    goto fail;
  }
  for (int i = 0; i < STMT__COUNT; i++) {
    if (sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                           &c->stmt[i], NULL) != SQLITE_OK) {
      st_db_error(c, err, "preparing statements");
      goto fail;
    }
  }
  return c;
fail:
  /* A store refused is left as it was found: no checkpoint at this
   * close, which would copy the log into a damaged file and delete it
   * and the index (the next start would then find a clean stop, and
   * serve it). */
  if (c->db) sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
  st_conn_close(c);
  return NULL;
}

/* ---- reads ----------------------------------------------------------- */

static int read_get(st_conn *c, st_req *q) {
  sb_store_record *out = &q->res.record;
  sb_error *err = &q->res.err;
  sqlite3_stmt *st = st_conn_stmt(c, STMT_GET);
  st_bind_text(st, 1, q->tenant);
  st_bind_text(st, 2, q->id);
  sqlite3_bind_int64(st, 3, q->now_ms);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    return sb_error_set(err, SB_ENOENT, "context %s not found", q->id);
  }
  if (rc != SQLITE_ROW) {
    int e = st_db_error(c, err, "reading a context");
    sqlite3_reset(st);
    return e;
  }
  out->id = st_column_dup(st, 0);
  out->workflow_id = st_column_dup(st, 1);
  out->session_id = st_column_dup(st, 2);
  out->version = sqlite3_column_int64(st, 3);
  out->created_ms = sqlite3_column_int64(st, 4);
  out->updated_ms = sqlite3_column_int64(st, 5);
  out->expires_ms = sqlite3_column_int64(st, 6);
  out->doc = st_column_dup(st, 7);
  sqlite3_reset(st);
  if (!out->id || !out->doc) {
    sb_store_record_clear(out);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  q->res.version = out->version;
  return 0;
}

/* Head version of an unexpired context, 0 if there is none. */
static int64_t head_version(st_conn *c, const char *tenant, const char *id,
                            int64_t now_ms) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_HEAD_VERSION);
  st_bind_text(st, 1, tenant);
  st_bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, now_ms);
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return v;
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
  v->patch = st_column_dup(st, 2);
  v->snapshot = with_snapshot ? st_column_dup(st, 3) : NULL;
  return 0;
}

/* Every row of st (bound) into out, then st reset; in a chain the first
 * row carries its snapshot. 0, or SB_ENOMEM / SB_EIO with err. */
static int push_versions(st_conn *c, sqlite3_stmt *st, sb_store_versions *out,
                         int chain, const char *what, sb_error *err) {
  int rc = 0, step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (push_version(out, st, chain && out->len == 0) != 0) {
      rc = sb_error_set(err, SB_ENOMEM, "out of memory");
      break;
    }
  }
  if (!rc && step != SQLITE_DONE) rc = st_db_error(c, err, what);
  sqlite3_reset(st);
  return rc;
}

/* End the read transaction of q's versions: kept with the head on
 * success, cleared on failure. Returns rc. */
static int versions_done(st_conn *c, st_req *q, int64_t head, int rc) {
  sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
  if (rc)
    sb_store_versions_clear(&q->res.versions);
  else
    q->res.version = head;
  return rc;
}

static int read_chain(st_conn *c, st_req *q) {
  sb_store_versions *out = &q->res.versions;
  sb_error *err = &q->res.err;
  int64_t n = q->version;
  int rc = 0;
  /* One read transaction: the head check and the rows agree. */
  if (exec(c, "BEGIN", err)) return err->code;
  int64_t head = head_version(c, q->tenant, q->id, q->now_ms);
  if (!head) {
    rc = sb_error_set(err, SB_ENOENT, "context %s not found", q->id);
    goto done;
  }
  if (n < 1 || n > head) {
    rc = sb_error_set(err, SB_ENOENT,
                      "context %s has versions 1 to %lld, not %lld", q->id,
                      (long long)head, (long long)n);
    goto done;
  }
  sqlite3_stmt *st = st_conn_stmt(c, STMT_SNAPSHOT_AT_OR_BELOW);
  st_bind_text(st, 1, q->tenant);
  st_bind_text(st, 2, q->id);
  sqlite3_bind_int64(st, 3, n);
  int64_t from =
      sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  if (from < 1) {
    rc = sb_error_set(err, SB_EIO, "store: context %s has no snapshot", q->id);
    goto done;
  }
  st = st_conn_stmt(c, STMT_CHAIN);
  st_bind_text(st, 1, q->tenant);
  st_bind_text(st, 2, q->id);
  sqlite3_bind_int64(st, 3, from);
  sqlite3_bind_int64(st, 4, n);
  rc = push_versions(c, st, out, 1, "reading versions", err);
done:
  return versions_done(c, q, head, rc);
}

static int read_history(st_conn *c, st_req *q) {
  sb_store_versions *out = &q->res.versions;
  sb_error *err = &q->res.err;
  int rc = 0;
  if (exec(c, "BEGIN", err)) return err->code;
  int64_t head = head_version(c, q->tenant, q->id, q->now_ms);
  if (!head) {
    rc = sb_error_set(err, SB_ENOENT, "context %s not found", q->id);
    goto done;
  }
  sqlite3_stmt *st = st_conn_stmt(c, STMT_HISTORY);
  st_bind_text(st, 1, q->tenant);
  st_bind_text(st, 2, q->id);
  sqlite3_bind_int64(st, 3, q->version > 0 ? q->version : head + 1);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)q->limit);
  rc = push_versions(c, st, out, 0, "reading history", err);
done:
  return versions_done(c, q, head, rc);
}

static int read_count(st_conn *c, st_req *q) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_COUNT);
  st_bind_text(st, 1, q->tenant);
  int step = sqlite3_step(st);
  int rc = 0;
  if (step == SQLITE_ROW)
    q->res.count = sqlite3_column_int64(st, 0);
  else
    rc = st_db_error(c, &q->res.err, "counting contexts");
  sqlite3_reset(st);
  return rc;
}

void st_conn_read(st_conn *c, st_req *q) {
  int rc;
  switch (q->op) {
  case ST_OP_GET: rc = read_get(c, q); break;
  case ST_OP_CHAIN: rc = read_chain(c, q); break;
  case ST_OP_HISTORY: rc = read_history(c, q); break;
  case ST_OP_COUNT: rc = read_count(c, q); break;
  case ST_OP_RUN_GET:
  case ST_OP_RUN_LIST: rc = st_read_runs(c, q); break;
  case ST_OP_EVENTS_READ: rc = st_read_events(c, q); break;
  case ST_OP_TENANT_LIST:
  case ST_OP_KEY_LIST:
  case ST_OP_KEYS_LOAD: rc = st_read_keys(c, q); break;
  default:
    rc = sb_error_set(&q->res.err, SB_EINVAL, "store: not a read");
    break;
  }
  q->res.rc = rc;
}

/* ---- writes (inside the writer's transaction) ------------------------ */

/* The version row of q's context: its patch from the version before (NULL
 * for version 1) and, every snapshot_every versions, the whole document. */
static int insert_version(st_conn *c, st_req *q, int64_t version,
                          int64_t created_ms, const char *patch,
                          const char *snapshot) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_VERSION_INSERT);
  st_bind_text(st, 1, q->tenant);
  st_bind_text(st, 2, q->id);
  sqlite3_bind_int64(st, 3, version);
  sqlite3_bind_int64(st, 4, created_ms);
  st_bind_text(st, 5, patch);
  st_bind_text(st, 6, snapshot);
  int rc = sqlite3_step(st) == SQLITE_DONE
               ? 0
               : st_db_error(c, &q->res.err, "recording a version");
  sqlite3_reset(st);
  return rc;
}

static int write_create(st_conn *c, st_req *q) {
  sb_error *err = &q->res.err;
  int rc;
  sqlite3_stmt *st = st_conn_stmt(c, STMT_CREATE);
  st_bind_text(st, 1, q->tenant);
  st_bind_text(st, 2, q->id);
  st_bind_text(st, 3, q->workflow_id);
  st_bind_text(st, 4, q->session_id);
  sqlite3_bind_int64(st, 5, q->created_ms);
  sqlite3_bind_int64(st, 6, q->created_ms);
  sqlite3_bind_int64(st, 7, q->expires_ms);
  st_bind_text(st, 8, q->doc);
  if (sqlite3_step(st) != SQLITE_DONE) {
    int xerr = sqlite3_extended_errcode(c->db);
    int conflict = xerr == SQLITE_CONSTRAINT_PRIMARYKEY ||
                   xerr == SQLITE_CONSTRAINT_UNIQUE;
    int out = conflict ? sb_error_set(err, SB_ECONFLICT,
                                      "context %s already exists", q->id)
                       : st_db_error(c, err, "creating a context");
    sqlite3_reset(st);
    return out;
  }
  sqlite3_reset(st);
  if ((rc = insert_version(c, q, 1, q->created_ms, NULL, q->doc)) != 0)
    return rc;
  q->res.version = 1;
  return st_write_extras(c, q);
}

/* The compare-and-set of an append: the head moves to version+1 with the
 * new document if it is at the version expected; 0 (then changes() says
 * whether it moved) or an error. */
static int append_head(st_conn *c, st_req *q, int same_expiry) {
  sqlite3_stmt *st = st_conn_stmt(c, same_expiry ? STMT_APPEND_HEAD_SAME_EXPIRY
                                                 : STMT_APPEND_HEAD);
  int col = 1;
  st_bind_text(st, col++, q->doc);
  sqlite3_bind_int64(st, col++, q->now_ms);
  if (!same_expiry) sqlite3_bind_int64(st, col++, q->expires_ms);
  st_bind_text(st, col++, q->tenant);
  st_bind_text(st, col++, q->id);
  sqlite3_bind_int64(st, col++, q->version);
  if (same_expiry) sqlite3_bind_int64(st, col++, q->expires_ms);
  sqlite3_bind_int64(st, col, q->now_ms);
  int rc = sqlite3_step(st) == SQLITE_DONE
               ? 0
               : st_db_error(c, &q->res.err, "updating a context");
  sqlite3_reset(st);
  return rc;
}

static int write_append(st_conn *c, st_req *q) {
  sb_error *err = &q->res.err;
  int64_t expected = q->version;
  int rc = append_head(c, q, 1);
  /* Nothing matched: the expiry changed, or the compare-and-set failed. */
  if (rc == 0 && sqlite3_changes(c->db) == 0) rc = append_head(c, q, 0);
  if (rc != 0) return rc;
  if (sqlite3_changes(c->db) == 0) {
    /* The compare-and-set failed: this write alone, with the head as it
     * stands inside the batch (earlier writes of the batch included). */
    int64_t head = head_version(c, q->tenant, q->id, q->now_ms);
    q->res.version = head;
    return head ? sb_error_set(err, SB_ECONFLICT, SB_STORE_VERSION_CONFLICT,
                               q->id, (long long)head, (long long)expected)
                : sb_error_set(err, SB_ENOENT, "context %s not found", q->id);
  }
  rc = insert_version(c, q, expected + 1, q->now_ms, q->patch,
                      q->snapshot ? q->doc : NULL);
  if (rc != 0) return rc;
  q->res.version = expected + 1;
  return st_write_extras(c, q);
}

/* Expired contexts go, with their versions; not one a run still holds
 * (LIVE). */
static int write_sweep(st_conn *c, st_req *q) {
  char sql[768];
  snprintf(sql, sizeof sql,
           "CREATE TEMP TABLE IF NOT EXISTS sweep(tenant_id, id);"
           "DELETE FROM temp.sweep;"
           "INSERT INTO temp.sweep SELECT tenant_id,id FROM contexts WHERE "
           "expires_ms>0 AND expires_ms<=%lld AND NOT " RUN_HOLDS("contexts")
           " LIMIT %lld;"
           "DELETE FROM context_versions WHERE (tenant_id,context_id) IN "
           "(SELECT tenant_id,id FROM temp.sweep);"
           "DELETE FROM contexts WHERE (tenant_id,id) IN "
           "(SELECT tenant_id,id FROM temp.sweep);",
           (long long)q->now_ms, (long long)q->limit);
  if (exec(c, sql, &q->res.err)) return q->res.err.code;
  q->res.count = sqlite3_changes(c->db);
  return 0;
}

static int write_one(st_conn *c, st_req *q) {
  switch (q->op) {
  case ST_OP_CREATE: return write_create(c, q);
  case ST_OP_APPEND: return write_append(c, q);
  case ST_OP_SWEEP: return write_sweep(c, q);
  case ST_OP_WRITE: return st_write_extras(c, q);
  case ST_OP_EVENTS_TRIM: return st_write_events_trim(c, q);
  case ST_OP_TENANT_CREATE:
  case ST_OP_KEY_CREATE:
  case ST_OP_KEY_REVOKE: return st_write_keys(c, q);
  case ST_OP_AGENT_PUT: return st_write_agent(c, q);
  case ST_OP_RUNS_CLAIM: return st_write_runs_claim(c, q);
  default: return sb_error_set(&q->res.err, SB_EINVAL, "store: not a write");
  }
}

/* Whether the database file or its WAL is no longer the file at its
 * path (deleted, or replaced by another: an operator's rm, a restore
 * copied over it). A commit would then go to a file no one opens again,
 * acknowledged and lost at the next start. SQLite's unix VFS answers
 * SQLITE_FCNTL_HAS_MOVED with one stat() of the path against the inode it
 * has open; the WAL is asked through the gathering VFS (sqlite_vfs.c),
 * which passes file controls on. Two stat()s a commit are nothing beside
 * its fsync, so they are not rate-limited. Once moved, always moved: the
 * file open is not the one a restart reads, whatever the path holds
 * later. 0, or SB_EIO with err (c->lost keeps the message). */
static int file_moved(st_conn *c, sb_error *err) {
  if (!c->lost[0]) {
    const char *path = sqlite3_db_filename(c->db, "main");
    int moved = 0, wal_moved = 0;
    sqlite3_file *wal = NULL;
    if (sqlite3_file_control(c->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) !=
        SQLITE_OK)
      moved = 0;
    if (!moved &&
        sqlite3_file_control(c->db, "main", SQLITE_FCNTL_JOURNAL_POINTER,
                             &wal) == SQLITE_OK &&
        wal && wal->pMethods &&
        wal->pMethods->xFileControl(wal, SQLITE_FCNTL_HAS_MOVED, &wal_moved) !=
            SQLITE_OK)
      wal_moved = 0;
    if (!moved && !wal_moved) return 0;
    snprintf(c->lost, sizeof c->lost,
             "the store file %s%s was deleted or replaced under the "
             "server: nothing was written (restart switchboard on a store "
             "file that is in place)",
             path ? path : "", moved ? "" : "-wal");
  }
  return sb_error_set(err, SB_EIO, "store: %s", c->lost);
}

const char *st_conn_lost(const st_conn *c) {
  return c->lost[0] ? c->lost : NULL;
}

/* Before a COMMIT: if the file moved (file_moved), roll back and fail
 * every write of the batch with why. 1 if so. */
static int commit_lost(st_conn *c, st_req *batch) {
  sb_error err = {0};
  if (!file_moved(c, &err)) return 0;
  sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  for (st_req *q = batch; q; q = q->next) {
    if (q->res.rc != 0) continue; /* failed alone already: wrote nothing */
    q->res.count = 0;
    sb_store_event_rows_clear(&q->res.events);
    q->res.rc = sb_error_set(&q->res.err, SB_EIO, "%s", err.msg);
  }
  return 1;
}

/* Fail every request from `from` up to (not including) `to` that had
 * succeeded: the transaction holding them is gone. */
static void fail_done(st_req *from, st_req *to, int code, const char *why) {
  for (st_req *q = from; q != to; q = q->next) {
    if (q->res.rc != 0) continue;
    q->res.count = 0;
    sb_store_event_rows_clear(&q->res.events);
    q->res.rc = sb_error_set(&q->res.err, code,
                             "store: the write was not committed: %s", why);
  }
}

/* A write's result back to nothing, to run it again. */
static void result_reset(st_req *q) {
  sb_store_record_clear(&q->res.record);
  sb_store_versions_clear(&q->res.versions);
  sb_store_event_rows_clear(&q->res.events);
  sb_store_runs_clear(&q->res.runs);
  sb_store_tenant_rows_clear(&q->res.tenants);
  sb_store_key_rows_clear(&q->res.keys);
  memset(&q->res, 0, sizeof q->res);
  q->last_seq = 0;
}

/* The batch without savepoints: a write that fails before it changes a
 * row (a compare-and-set that matched nothing, a create whose id exists:
 * SQLite checks constraints before it writes, and undoes a failing
 * statement) leaves nothing to undo. 1: committed; 0: the transaction
 * failed (every member carries the error); -1: a write failed after changing
 * rows, and the transaction was rolled back untouched by anything: run
 * the batch again with savepoints. */
static int write_batch_fast(st_conn *c, st_req *batch, st_more_fn more,
                            void *ud) {
  sb_error err = {0};
  if (exec(c, "BEGIN IMMEDIATE", &err)) {
    for (st_req *q = batch; q; q = q->next)
      q->res.rc = sb_error_set(&q->res.err, err.code, "%s", err.msg);
    return 0;
  }
  st_req *q = batch, *last = NULL;
  for (;;) {
    for (; q; last = q, q = q->next) {
      int changes = sqlite3_total_changes(c->db);
      q->res.rc = write_one(c, q);
      if (q->res.rc == 0) continue;
      sb_store_event_rows_clear(&q->res.events); /* none were written */
      if (sqlite3_get_autocommit(c->db) ||
          sqlite3_total_changes(c->db) != changes) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        for (st_req *r = batch; r; r = r->next)
          result_reset(r);
        return -1;
      }
    }
    /* The batch's writes so far have run: any joining it run now too. */
    if (!more || !(q = more(ud))) break;
    last->next = q;
  }
  if (commit_lost(c, batch)) return 0;
  if (exec(c, "COMMIT", &err)) {
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    fail_done(batch, NULL, err.code, err.msg);
    return 0;
  }
  return 1;
}

int st_conn_write_batch(st_conn *c, st_req *batch, st_more_fn more, void *ud) {
  int fast = write_batch_fast(c, batch, more, ud);
  if (fast >= 0) return fast;
  /* Again with a savepoint each, the writes that joined included (the
   * list has them all now); none joins any more. */
  sb_error err = {0};
  st_req *first = batch; /* first member of the open transaction */
  if (exec(c, "BEGIN IMMEDIATE", &err)) {
    for (st_req *q = batch; q; q = q->next)
      q->res.rc = sb_error_set(&q->res.err, err.code, "%s", err.msg);
    return 0;
  }
  for (st_req *q = batch; q; q = q->next) {
    if (run(c, STMT_SAVEPOINT) != 0) {
      q->res.rc = st_db_error(c, &q->res.err, "starting a write");
    } else {
      q->res.rc = write_one(c, q);
      if (q->res.rc != 0) {
        run(c, STMT_ROLLBACK_TO);
        sb_store_event_rows_clear(&q->res.events); /* none were written */
      }
      run(c, STMT_RELEASE);
    }
    if (sqlite3_get_autocommit(c->db)) {
      /* An I/O error or a full disk rolled back the whole transaction:
       * nothing before this write survives. Start again for the rest. */
      /* Said with what failed (not the RELEASE after it). */
      fail_done(first, q->next, q->res.rc ? q->res.err.code : SB_EIO,
                q->res.rc ? q->res.err.msg : "the transaction was rolled back");
      first = q->next;
      if (first && exec(c, "BEGIN IMMEDIATE", &err)) {
        for (st_req *r = first; r; r = r->next)
          r->res.rc = sb_error_set(&r->res.err, err.code, "%s", err.msg);
        return 0;
      }
    }
  }
  if (!first) return 0;
  if (commit_lost(c, first)) return 0;
  if (exec(c, "COMMIT", &err)) {
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    fail_done(first, NULL, err.code, err.msg);
    return 0;
  }
  return 1;
}
