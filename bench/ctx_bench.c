/* ctx_bench: throughput, latency and disk cost of the context manager on
 * its SQLite store. Driven by bench/ctx_bench.sh, which builds it and
 * explains the figures; run `ctx_bench --help` for the options.
 *
 * Durability: the store opens with synchronous=FULL, as in production, and
 * every measured write pays its fsyncs. To load a population fast, a
 * pass-through SQLite VFS (below) can skip fsync while the population is
 * loaded; it is switched back on before anything is measured, and it counts
 * the syncs each measured operation really issued, which the table prints,
 * so the figures show that durability was paid for.
 *
 * Populations: small ones are written through the real manager
 * (sb_ctx_create, then sb_ctx_update with JSON Patches). Large ones are
 * bulk-loaded on a second connection in big transactions, with the same
 * SQL the store uses and the same documents and patches the manager makes
 * (fill_defaults, patch_apply, diff, the same json_dumps flags, a snapshot
 * every 32 versions, and the head row rewritten at every version); a
 * sample of bulk contexts is validated and replayed through the manager.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "core/core.h"
#include "ctx/ctx.h"
#include "ctx_fixture.h"
#include "store/store.h"

#define TENANT "bench-tenant"
#define VERSIONS 20
#define SNAPSHOT_EVERY 32 /* the manager's default */
#define TTL_MS (7LL * 24 * 3600 * 1000)

static const char *const REQUIREMENTS =
    "[\"conversation.messages[-5:]\",\"workflow.variables\","
    "\"user.preferences\"]";

/* ---- a pass-through VFS that can skip (and counts) fsync ----------------- */

/* ---- the manager, one operation at a time ------------------------------
 * The bench measures each operation end to end: start it, run the bench's
 * own loop until its callback answers. */

static uv_loop_t bench_loop;

typedef struct bench_wait {
  int done, rc;
  sb_error err;
  json_t *doc;
} bench_wait;

static void bench_done(void *ud, const sb_ctx_result *res) {
  bench_wait *w = ud;
  w->done = 1;
  w->rc = res->rc;
  w->err = res->err;
  w->doc = json_incref(res->doc);
}

static int bench_await(int submitted, bench_wait *w, json_t **out,
                       sb_error *err) {
  *out = NULL;
  if (submitted != 0) return submitted;
  while (!w->done) uv_run(&bench_loop, UV_RUN_ONCE);
  if (w->rc != 0) {
    if (err) *err = w->err;
    json_decref(w->doc);
    return w->rc;
  }
  *out = w->doc;
  return 0;
}

static int b_create(sb_ctx_manager *m, const char *tenant, json_t *input,
                    json_t **out, sb_error *err) {
  bench_wait w = {0};
  return bench_await(sb_ctx_create_async(m, tenant, input, bench_done, &w, err),
                     &w, out, err);
}

static int b_get(sb_ctx_manager *m, const char *tenant, const char *id,
                 int64_t version, json_t **out, sb_error *err) {
  bench_wait w = {0};
  return bench_await(sb_ctx_get_async(m, tenant, id, version, bench_done, &w,
                                      err),
                     &w, out, err);
}

static int b_get_projected(sb_ctx_manager *m, const char *tenant,
                           const char *id, const json_t *paths, json_t **out,
                           sb_error *err) {
  bench_wait w = {0};
  return bench_await(sb_ctx_get_projected_async(m, tenant, id, paths,
                                                bench_done, &w, err),
                     &w, out, err);
}

static int b_update(sb_ctx_manager *m, const char *tenant, const char *id,
                    int64_t expected, sb_ctx_patch_kind kind, json_t *patch,
                    json_t **out, int64_t *current, sb_error *err) {
  (void)current;
  bench_wait w = {0};
  return bench_await(sb_ctx_update_async(m, tenant, id, expected, kind, patch,
                                         bench_done, &w, err),
                     &w, out, err);
}

static sqlite3_vfs *base_vfs;
static sqlite3_vfs shim_vfs;
static atomic_int syncs_enabled = 1;
static atomic_long syncs_done;

typedef struct method_pair {
  const sqlite3_io_methods *orig;
  sqlite3_io_methods mine;
} method_pair;
static method_pair pairs[8];
static int npairs;

static const sqlite3_io_methods *orig_methods(sqlite3_file *f) {
  for (int i = 0; i < npairs; i++)
    if (f->pMethods == &pairs[i].mine) return pairs[i].orig;
  return f->pMethods;
}

static int shim_sync(sqlite3_file *f, int flags) {
  if (!atomic_load(&syncs_enabled)) return SQLITE_OK;
  atomic_fetch_add(&syncs_done, 1);
  return orig_methods(f)->xSync(f, flags);
}

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
                     int flags, int *out_flags) {
  int rc = base_vfs->xOpen(base_vfs, name, f, flags, out_flags);
  if (!f->pMethods) return rc;
  for (int i = 0; i < npairs; i++)
    if (pairs[i].orig == f->pMethods) {
      f->pMethods = &pairs[i].mine;
      return rc;
    }
  if (npairs == (int)(sizeof pairs / sizeof pairs[0])) return rc;
  pairs[npairs].orig = f->pMethods;
  pairs[npairs].mine = *f->pMethods;
  pairs[npairs].mine.xSync = shim_sync;
  f->pMethods = &pairs[npairs++].mine;
  return rc;
}

static int install_vfs(void) {
  base_vfs = sqlite3_vfs_find(NULL);
  if (!base_vfs) return -1;
  shim_vfs = *base_vfs;
  shim_vfs.zName = "sb-bench";
  shim_vfs.xOpen = shim_open;
  return sqlite3_vfs_register(&shim_vfs, 1) == SQLITE_OK ? 0 : -1;
}

/* ---- small helpers ---------------------------------------------------- */

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, const sb_error *err) {
  fprintf(stderr, "ctx_bench: FAIL: %s%s%s\n", what, err ? ": " : "",
          err ? err->msg : "");
  exit(1);
}

static void db_die(sqlite3 *db, const char *what) {
  fprintf(stderr, "ctx_bench: FAIL: %s: %s\n", what, sqlite3_errmsg(db));
  exit(1);
}

static void exec_sql(sqlite3 *db, const char *sql) {
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) db_die(db, sql);
}

static char *dump_doc(const json_t *doc) { /* as manager.c stores it */
  return json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
}

static int64_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* "12,345,678" for the readable tables. */
static const char *commas(int64_t v, char out[32]) {
  char raw[32];
  int n = snprintf(raw, sizeof raw, "%" PRId64, v < 0 ? -v : v);
  int o = 0;
  if (v < 0) out[o++] = '-';
  for (int i = 0; i < n; i++) {
    if (i && (n - i) % 3 == 0) out[o++] = ',';
    out[o++] = raw[i];
  }
  out[o] = '\0';
  return out;
}

static const char *human_bytes(double b, char out[32]) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, u++;
  snprintf(out, 32, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return out;
}

/* Progress on stderr, at most every 2 s. */
static void progress(const char *what, size_t done, size_t total, double t0,
                     double *last) {
  double t = now_s();
  if (done != total && t - *last < 2.0) return;
  *last = t;
  double rate = done / (t - t0 + 1e-9);
  fprintf(stderr, "ctx_bench: %s: %zu/%zu (%.0f%%), %.0f/s, ETA %.0f s\n",
          what, done, total, 100.0 * done / total, rate,
          rate > 0 ? (total - done) / rate : 0);
}

/* ---- latency samples -------------------------------------------------- */

typedef struct samples {
  double *lat; /* seconds */
  size_t n;
  long syncs;
} samples;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct figures {
  double ops_s, p50_us, p99_us, syncs_per_op;
  size_t n;
} figures;

static figures summarize(samples *s) {
  figures f = {0};
  double sum = 0;
  for (size_t i = 0; i < s->n; i++) sum += s->lat[i];
  qsort(s->lat, s->n, sizeof *s->lat, cmp_double);
  f.n = s->n;
  f.ops_s = sum > 0 ? s->n / sum : 0;
  f.p50_us = s->lat[s->n / 2] * 1e6;
  f.p99_us = s->lat[(size_t)(s->n * 0.99)] * 1e6;
  f.syncs_per_op = (double)s->syncs / s->n;
  return f;
}

/* ---- a population of contexts ----------------------------------------- */

typedef struct population {
  char path[4096];
  size_t n;
  char (*ids)[37];
  int32_t *version;
  sb_store *store;
  sb_ctx_manager *mgr;
  int durable_load; /* fsync stayed on while loading */
  size_t nscripts; /* bulk load: distinct scripts replayed */
  double load_s;
  int64_t db_bytes, wal_bytes;
  /* stored payload, summed over the population as loaded */
  double head_bytes, patch_bytes, snapshot_bytes;
  int64_t snapshots;
} population;

static void open_manager(population *p) {
  sb_error err = {0};
  sb_store_options so = {.path = p->path, .loop = &bench_loop};
  p->store = sb_store_open_sqlite(&so, &err);
  if (!p->store) die("opening the store", &err);
  sb_ctx_manager_options mo = {.store = p->store,
                               .snapshot_every = SNAPSHOT_EVERY};
  p->mgr = sb_ctx_manager_new(&mo);
  if (!p->mgr) die("creating the manager", NULL);
}

static void close_manager(population *p) {
  sb_ctx_manager_free(p->mgr);
  sb_store_close(p->store);
  p->mgr = NULL;
  p->store = NULL;
}

/* Load through the manager: create every context, then 19 rounds of one
 * update each, so versions of different contexts interleave as they do
 * when many conversations run at once. */
static void populate_manager(population *p, fx_rng *rng) {
  sb_error err = {0};
  double t0 = now_s(), last = t0;
  size_t total = p->n * VERSIONS, done = 0;
  for (size_t i = 0; i < p->n; i++) {
    json_t *input = fx_population_input(rng, i), *out = NULL;
    if (b_create(p->mgr, TENANT, input, &out, &err) != 0)
      die("sb_ctx_create", &err);
    snprintf(p->ids[i], sizeof p->ids[i], "%s",
             json_string_value(json_object_get(out, "id")));
    p->version[i] = 1;
    json_decref(input);
    json_decref(out);
    progress("manager load", ++done, total, t0, &last);
  }
  for (int v = 2; v <= VERSIONS; v++) {
    for (size_t i = 0; i < p->n; i++) {
      json_t *patch = fx_population_patch(rng, v, (int64_t)sb_wall_ms());
      json_t *out = NULL;
      if (b_update(p->mgr, TENANT, p->ids[i], v - 1, SB_CTX_JSON_PATCH,
                        patch, &out, NULL, &err) != 0)
        die("sb_ctx_update", &err);
      p->version[i] = v;
      json_decref(patch);
      json_decref(out);
      progress("manager load", ++done, total, t0, &last);
    }
  }
}

/* The statements of store/sqlite.c, for the bulk loader. */
enum { BULK_CREATE, BULK_VERSION, BULK_HEAD, BULK__COUNT };
static const char *const bulk_sql[BULK__COUNT] = {
    [BULK_CREATE] =
        "INSERT INTO contexts(tenant_id,id,workflow_id,session_id,version,"
        "created_ms,updated_ms,expires_ms,doc) VALUES(?,?,?,?,1,?,?,?,?)",
    [BULK_VERSION] =
        "INSERT INTO context_versions(tenant_id,context_id,version,created_ms,"
        "patch,snapshot) VALUES(?,?,?,?,?,?)",
    [BULK_HEAD] =
        "UPDATE contexts SET version=version+1,doc=?,updated_ms=?,"
        "expires_ms=? WHERE tenant_id=? AND id=? AND version=?",
};

static void step_done(sqlite3 *db, sqlite3_stmt *st, const char *what) {
  if (sqlite3_step(st) != SQLITE_DONE) db_die(db, what);
  sqlite3_reset(st);
}

static void bind_str(sqlite3_stmt *st, int col, const char *v) {
  if (v) sqlite3_bind_text(st, col, v, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(st, col);
}

/* What sb_ctx_create makes of an input, minus the store call. */
static json_t *bulk_new_doc(fx_rng *rng, size_t n, char id[37], int64_t now) {
  json_t *input = fx_population_input(rng, n);
  json_t *doc = sb_ctx_fill_defaults(input);
  json_decref(input);
  char ts[32], exp[32];
  sb_uuid_v7(id);
  sb_time_format(now, ts);
  sb_time_format(now + TTL_MS, exp);
  json_object_set_new(doc, "id", json_string(id));
  json_object_set_new(doc, "tenantId", json_string(TENANT));
  json_object_set_new(doc, "version", json_integer(1));
  json_object_set_new(doc, "timestamp", json_string(ts));
  json_object_set_new(json_object_get(doc, "metadata"), "expiresAt",
                      json_string(exp));
  return doc;
}

/* A script: the complete 20-version life of one context as the manager
 * would store it (head text, patch text and snapshot text per version),
 * computed with the manager's algorithms and validated at every version.
 * The bulk loader replays scripts under fresh ids: computing each of a
 * million contexts from scratch costs ~3 ms of jansson work, which would
 * make the load take an hour. */
typedef struct script {
  char id[37]; /* the id inside the texts, replaced per context */
  char *workflow_id, *session_id;
  int64_t created_ms;
  char *head[VERSIONS + 1];     /* [v]: the head document after version v */
  char *patch[VERSIONS + 1];    /* [v]: RFC 6902 patch from v-1, v >= 2 */
  char *snapshot[VERSIONS + 1]; /* [v]: full document or NULL */
} script;

static void script_make(script *sc, fx_rng *rng, size_t n) {
  sb_error err = {0};
  memset(sc, 0, sizeof *sc);
  int64_t now = (int64_t)sb_wall_ms();
  sc->created_ms = now;
  json_t *doc = bulk_new_doc(rng, n, sc->id, now);
  if (sb_ctx_validate(doc, &err) != 0) die("bulk: version 1 does not validate", &err);
  sc->workflow_id = sb_strdup(json_string_value(json_object_get(doc, "workflowId")));
  sc->session_id = sb_strdup(json_string_value(json_object_get(doc, "sessionId")));
  sc->head[1] = dump_doc(doc);
  sc->snapshot[1] = sb_strdup(sc->head[1]);
  for (int v = 2; v <= VERSIONS; v++) {
    /* Turns 1.5 s apart: every version gets its own timestamp, as when
     * the manager stamps each write. */
    int64_t at = now + (v - 1) * 1500;
    json_t *patch = fx_population_patch(rng, v, at), *next = NULL, *diff = NULL;
    if (sb_ctx_patch_apply(doc, patch, &next, &err) != 0)
      die("bulk: applying a population patch", &err);
    char ts[32];
    sb_time_format(at, ts);
    json_object_set_new(next, "version", json_integer(v));
    json_object_set_new(next, "timestamp", json_string(ts));
    if (sb_ctx_validate(next, &err) != 0)
      die("bulk: an updated version does not validate", &err);
    if (sb_ctx_diff(doc, next, &diff, &err) != 0) die("bulk: diff", &err);
    sc->head[v] = dump_doc(next);
    sc->patch[v] = json_dumps(diff, JSON_COMPACT);
    if (v % SNAPSHOT_EVERY == 0) sc->snapshot[v] = sb_strdup(sc->head[v]);
    json_decref(diff);
    json_decref(patch);
    json_decref(doc);
    doc = next;
  }
  json_decref(doc);
  for (int v = 1; v <= VERSIONS; v++)
    if (!sc->head[v] || (v > 1 && !sc->patch[v])) die("out of memory", NULL);
}

static void script_free(script *sc) {
  sb_free(sc->workflow_id);
  sb_free(sc->session_id);
  for (int v = 0; v <= VERSIONS; v++) {
    sb_free(sc->head[v]);
    sb_free(sc->patch[v]);
    sb_free(sc->snapshot[v]);
  }
}

/* text with every occurrence of the 36-char id `from` replaced by `to`;
 * caller frees with sb_free. */
static char *with_id(const char *text, const char *from, const char *to) {
  if (!text) return NULL;
  char *copy = sb_strdup(text);
  if (!copy) die("out of memory", NULL);
  for (char *q = copy; (q = strstr(q, from)) != NULL; q += 36) memcpy(q, to, 36);
  return copy;
}

/* Bulk load in groups of `group` contexts, one transaction per group: the
 * group's contexts are created, then updated round by round (interleaved
 * like the manager load, so B-tree pages split as they do in service),
 * each version appended and the head row rewritten exactly as
 * sb_store_create and sb_store_append do. Context i replays script
 * i % nscripts under its own fresh UUIDv7 id. */
static void populate_bulk(population *p, fx_rng *rng, size_t group,
                          size_t nscripts) {
  if (nscripts > p->n) nscripts = p->n;
  script *scripts = sb_calloc(nscripts, sizeof *scripts);
  if (!scripts) die("out of memory", NULL);
  for (size_t k = 0; k < nscripts; k++) script_make(&scripts[k], rng, k);
  p->nscripts = nscripts;

  sqlite3 *db = NULL;
  if (sqlite3_open_v2(p->path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
    db_die(db, "opening the store for the bulk load");
  exec_sql(db, "PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;");
  sqlite3_stmt *st[BULK__COUNT];
  for (int i = 0; i < BULK__COUNT; i++)
    if (sqlite3_prepare_v2(db, bulk_sql[i], -1, &st[i], NULL) != SQLITE_OK)
      db_die(db, "preparing the bulk statements");
  double t0 = now_s(), last = t0;
  for (size_t g0 = 0; g0 < p->n; g0 += group) {
    size_t gn = p->n - g0 < group ? p->n - g0 : group;
    exec_sql(db, "BEGIN");
    for (size_t i = g0; i < g0 + gn; i++) {
      script *sc = &scripts[i % nscripts];
      int64_t now = (int64_t)sb_wall_ms();
      sb_uuid_v7(p->ids[i]);
      char *text = with_id(sc->head[1], sc->id, p->ids[i]);
      sqlite3_stmt *s = st[BULK_CREATE];
      bind_str(s, 1, TENANT);
      bind_str(s, 2, p->ids[i]);
      bind_str(s, 3, sc->workflow_id);
      bind_str(s, 4, sc->session_id);
      sqlite3_bind_int64(s, 5, now);
      sqlite3_bind_int64(s, 6, now);
      sqlite3_bind_int64(s, 7, sc->created_ms + TTL_MS);
      bind_str(s, 8, text);
      step_done(db, s, "bulk: inserting a context");
      s = st[BULK_VERSION];
      bind_str(s, 1, TENANT);
      bind_str(s, 2, p->ids[i]);
      sqlite3_bind_int64(s, 3, 1);
      sqlite3_bind_int64(s, 4, now);
      sqlite3_bind_null(s, 5);
      bind_str(s, 6, text);
      step_done(db, s, "bulk: inserting version 1");
      p->snapshot_bytes += strlen(text);
      p->snapshots++;
      sb_free(text);
      p->version[i] = 1;
    }
    for (int v = 2; v <= VERSIONS; v++) {
      for (size_t i = g0; i < g0 + gn; i++) {
        script *sc = &scripts[i % nscripts];
        int64_t now = (int64_t)sb_wall_ms();
        char *text = with_id(sc->head[v], sc->id, p->ids[i]);
        char *snap = with_id(sc->snapshot[v], sc->id, p->ids[i]);
        sqlite3_stmt *s = st[BULK_HEAD];
        bind_str(s, 1, text);
        sqlite3_bind_int64(s, 2, now);
        sqlite3_bind_int64(s, 3, sc->created_ms + TTL_MS);
        bind_str(s, 4, TENANT);
        bind_str(s, 5, p->ids[i]);
        sqlite3_bind_int64(s, 6, v - 1);
        step_done(db, s, "bulk: updating a head");
        if (sqlite3_changes(db) != 1)
          die("bulk: head row not at the expected version", NULL);
        s = st[BULK_VERSION];
        bind_str(s, 1, TENANT);
        bind_str(s, 2, p->ids[i]);
        sqlite3_bind_int64(s, 3, v);
        sqlite3_bind_int64(s, 4, now);
        bind_str(s, 5, sc->patch[v]);
        bind_str(s, 6, snap);
        step_done(db, s, "bulk: inserting a version");
        p->patch_bytes += strlen(sc->patch[v]);
        if (snap) p->snapshot_bytes += strlen(snap), p->snapshots++;
        if (v == VERSIONS) p->head_bytes += strlen(text);
        p->version[i] = v;
        sb_free(text);
        sb_free(snap);
      }
    }
    exec_sql(db, "COMMIT");
    progress("bulk load (contexts)", g0 + gn, p->n, t0, &last);
  }
  for (int i = 0; i < BULK__COUNT; i++) sqlite3_finalize(st[i]);
  sqlite3_close(db);
  for (size_t k = 0; k < nscripts; k++) script_free(&scripts[k]);
  sb_free(scripts);
}

/* Payload sums of a population written by the manager (the bulk loader
 * counts its own as it goes). */
static void payload_from_sql(population *p, sqlite3 *db) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT (SELECT total(length(doc)) FROM contexts),"
                         " total(length(patch)), total(length(snapshot)),"
                         " count(snapshot) FROM context_versions",
                         -1, &st, NULL) != SQLITE_OK)
    db_die(db, "payload query");
  if (sqlite3_step(st) != SQLITE_ROW) db_die(db, "payload query");
  p->head_bytes = sqlite3_column_double(st, 0);
  p->patch_bytes = sqlite3_column_double(st, 1);
  p->snapshot_bytes = sqlite3_column_double(st, 2);
  p->snapshots = sqlite3_column_int64(st, 3);
  sqlite3_finalize(st);
}

/* Disk used after a full checkpoint: db + wal (truncated) files. */
static void measure_disk(population *p, sqlite3 *db) {
  exec_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  char wal[4200];
  snprintf(wal, sizeof wal, "%s-wal", p->path);
  p->db_bytes = file_size(p->path);
  p->wal_bytes = file_size(wal);
}

/* A bulk-loaded sample must read back through the manager at every
 * version, and the head must equal the replayed last version. */
static void verify_sample(population *p, fx_rng *rng) {
  sb_error err = {0};
  for (int k = 0; k < 5; k++) {
    const char *id = p->ids[fx_below(rng, (uint32_t)p->n)];
    json_t *head = NULL, *old = NULL;
    if (b_get(p->mgr, TENANT, id, 0, &head, &err) != 0)
      die("verify: reading a bulk-loaded head", &err);
    if (sb_ctx_validate(head, &err) != 0)
      die("verify: a bulk-loaded head does not validate", &err);
    for (int v = 1; v <= VERSIONS; v++) {
      if (b_get(p->mgr, TENANT, id, v, &old, &err) != 0)
        die("verify: replaying a bulk-loaded version", &err);
      if (v == VERSIONS && !json_equal(old, head))
        die("verify: replayed head differs from the stored head", NULL);
      json_decref(old);
    }
    json_decref(head);
  }
}

/* ---- the measured operations ------------------------------------------ */

typedef enum op_kind {
  OP_RAW,
  OP_RAW_PARSE,
  OP_GET,
  OP_GET_PAST,
  OP_PROJECTED,
  OP_UPDATE,
  OP_CREATE,
  OP__COUNT
} op_kind;

static const char *const op_names[OP__COUNT] = {
    [OP_RAW] = "raw SQLite PK lookup (baseline)",
    [OP_RAW_PARSE] = "raw lookup + json_loads",
    [OP_GET] = "get (head)",
    [OP_GET_PAST] = "get (random past version)",
    [OP_PROJECTED] = "get projected (3 paths)",
    [OP_UPDATE] = "update (merge patch)",
    [OP_CREATE] = "create",
};

/* One operation of `kind` on a random context; its latency and fsyncs are
 * added to s. */
static void run_op(population *p, op_kind kind, sqlite3_stmt *raw,
                   const json_t *paths, fx_rng *rng, samples *s) {
  sb_error err = {0};
  static int64_t seq;
  long syncs0 = atomic_load(&syncs_done);
  {
    size_t i = fx_below(rng, (uint32_t)p->n);
    const char *id = p->ids[i];
    json_t *input = NULL, *out = NULL;
    int64_t past = 0;
    if (kind == OP_UPDATE) input = fx_update_merge_patch(rng, ++seq);
    if (kind == OP_CREATE) input = fx_population_input(rng, p->n + (size_t)seq++);
    if (kind == OP_GET_PAST) past = 1 + fx_below(rng, (uint32_t)p->version[i] - 1);
    int rc = 0;
    double t0 = now_s();
    switch (kind) {
    case OP_RAW:
    case OP_RAW_PARSE:
      sqlite3_bind_text(raw, 1, TENANT, -1, SQLITE_STATIC);
      sqlite3_bind_text(raw, 2, id, -1, SQLITE_STATIC);
      if (sqlite3_step(raw) != SQLITE_ROW) {
        rc = SB_ENOENT;
      } else {
        const char *doc = (const char *)sqlite3_column_text(raw, 0);
        size_t len = (size_t)sqlite3_column_bytes(raw, 0);
        if (!doc || len == 0) rc = SB_EIO;
        if (kind == OP_RAW_PARSE &&
            !(out = json_loadb(doc, len, 0, NULL)))
          rc = SB_EIO;
      }
      sqlite3_reset(raw);
      break;
    case OP_GET: rc = b_get(p->mgr, TENANT, id, 0, &out, &err); break;
    case OP_GET_PAST: rc = b_get(p->mgr, TENANT, id, past, &out, &err); break;
    case OP_PROJECTED:
      rc = b_get_projected(p->mgr, TENANT, id, paths, &out, &err);
      break;
    case OP_UPDATE:
      rc = b_update(p->mgr, TENANT, id, p->version[i], SB_CTX_MERGE_PATCH,
                         input, &out, NULL, &err);
      break;
    case OP_CREATE: rc = b_create(p->mgr, TENANT, input, &out, &err); break;
    default: break;
    }
    double dt = now_s() - t0;
    if (rc != 0) {
      fprintf(stderr, "ctx_bench: FAIL: %s on %s: %s %s\n", op_names[kind], id,
              sb_strerror(rc), err.msg);
      exit(1);
    }
    if (kind == OP_UPDATE) p->version[i]++;
    if (kind == OP_GET_PAST &&
        json_integer_value(json_object_get(out, "version")) != past)
      die("get of a past version returned another version", NULL);
    s->lat[s->n++] = dt;
    json_decref(input);
    json_decref(out);
  }
  s->syncs += atomic_load(&syncs_done) - syncs0;
}

static void print_population(population *p, size_t reads, size_t writes,
                             fx_rng *rng) {
  char a[32], b[32], c[32], d[32];
  int64_t disk = p->db_bytes + p->wal_bytes;
  printf("\n== %s contexts x %d versions, loaded in %.1f s ==\n",
         commas((int64_t)p->n, a), VERSIONS, p->load_s);
  if (p->nscripts)
    printf("loaded in bulk: %s distinct 20-version contexts made with the "
           "manager's algorithms,\nreplayed under fresh ids through the "
           "store's SQL, 2000 per transaction, fsync off while loading\n",
           commas((int64_t)p->nscripts, b));
  else
    printf("loaded through sb_ctx_create + sb_ctx_update (JSON Patch), "
           "fsync %s while loading\n", p->durable_load ? "on" : "off");
  printf("disk after checkpoint: db %s + wal %s = %s -> %s bytes/context\n",
         human_bytes((double)p->db_bytes, a), human_bytes((double)p->wal_bytes, b),
         human_bytes((double)disk, c), commas(disk / (int64_t)p->n, d));
  printf("payload per context: head doc %.0f B, %d version rows %.0f B "
         "(%.2f snapshots of %.0f B, patches %.0f B avg)\n",
         p->head_bytes / p->n, VERSIONS,
         (p->patch_bytes + p->snapshot_bytes) / p->n,
         (double)p->snapshots / p->n,
         p->snapshots ? p->snapshot_bytes / p->snapshots : 0,
         p->patch_bytes / (p->n * (VERSIONS - 1)));

  sqlite3 *db = NULL;
  if (sqlite3_open_v2(p->path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    db_die(db, "opening the baseline connection");
  sqlite3_stmt *raw = NULL;
  if (sqlite3_prepare_v2(db,
                         "SELECT doc FROM contexts WHERE tenant_id=? AND id=?",
                         -1, &raw, NULL) != SQLITE_OK)
    db_die(db, "preparing the baseline lookup");
  /* The kinds take turns, op by op, so each sees the same cache state: a
   * population bigger than RAM warms up while it is measured, and running
   * one kind after another would flatter whichever ran last. */
  samples s[OP__COUNT] = {{0}}, warm = {0};
  size_t most = reads > writes ? reads : writes;
  for (int k = 0; k < OP__COUNT; k++)
    if (!(s[k].lat = sb_calloc(most, sizeof(double)))) die("out of memory", NULL);
  if (!(warm.lat = sb_calloc(1, sizeof(double)))) die("out of memory", NULL);
  json_t *paths = json_loads(REQUIREMENTS, 0, NULL);
  for (size_t i = 0; i < reads / 10 + 1; i++) /* warm-up, not measured */
    for (int k = 0; k < OP_UPDATE; k++, warm.n = 0)
      run_op(p, (op_kind)k, raw, paths, rng, &warm);
  for (size_t i = 0; i < reads; i++)
    for (int k = 0; k < OP_UPDATE; k++)
      run_op(p, (op_kind)k, raw, paths, rng, &s[k]);
  for (size_t i = 0; i < writes; i++)
    for (int k = OP_UPDATE; k < OP__COUNT; k++)
      run_op(p, (op_kind)k, raw, paths, rng, &s[k]);
  figures f[OP__COUNT];
  for (int k = 0; k < OP__COUNT; k++) {
    f[k] = summarize(&s[k]);
    sb_free(s[k].lat);
  }
  sb_free(warm.lat);
  json_decref(paths);
  sqlite3_finalize(raw);
  sqlite3_close(db);

  printf("%-32s %6s %9s %9s %9s %8s %8s\n", "operation", "ops", "ops/s",
         "p50 us", "p99 us", "x raw", "fsync/op");
  for (int k = 0; k < OP__COUNT; k++)
    printf("%-32s %6zu %9.0f %9.1f %9.1f %7.1fx %8.2f\n", op_names[k], f[k].n,
           f[k].ops_s, f[k].p50_us, f[k].p99_us,
           f[k].ops_s > 0 ? f[OP_RAW].ops_s / f[k].ops_s : 0,
           f[k].syncs_per_op);
}

/* ---- projection size reduction ---------------------------------------- */

static void projection_report(population *p, fx_rng *rng) {
  sb_error err = {0};
  json_t *input = fx_dealership_input(rng, 200, 500, (int64_t)sb_wall_ms());
  json_t *doc = NULL;
  if (b_create(p->mgr, TENANT, input, &doc, &err) != 0)
    die("creating the dealership context", &err);
  json_decref(input);
  const char *id = json_string_value(json_object_get(doc, "id"));
  char *full = dump_doc(doc);
  size_t full_len = strlen(full);
  struct {
    const char *name, *paths;
  } sets[] = {
      {"sales agent",
       "[\"conversation.messages[-10:]\",\"business.inventory\","
       "\"user.preferences\"]"},
      {"service agent",
       "[\"conversation.messages[-5:]\",\"workflow.variables.vin\","
       "\"user.profile\"]"},
      {"sales agent, inventory slice",
       "[\"conversation.messages[-10:]\",\"business.inventory.vehicles[-20:]\","
       "\"user.preferences\"]"},
  };
  char a[32], b[32];
  printf("\n== projection size: dealership context (200 messages, 500 "
         "vehicles) ==\n");
  printf("full context as stored: %s bytes\n", commas((int64_t)full_len, a));
  printf("%-30s %11s %9s %10s %11s %11s\n", "requirement set",
         "projected B", "full/proj", "reduction", "get p50 us", "proj p50 us");
  for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
    json_t *paths = json_loads(sets[k].paths, 0, NULL), *out = NULL;
    enum { REPS = 101 };
    double get_lat[REPS], proj_lat[REPS];
    for (int r = 0; r < REPS; r++) {
      double t0 = now_s();
      json_t *whole = NULL;
      if (b_get(p->mgr, TENANT, id, 0, &whole, &err) != 0)
        die("get of the dealership context", &err);
      get_lat[r] = now_s() - t0;
      json_decref(whole);
      json_decref(out);
      t0 = now_s();
      if (b_get_projected(p->mgr, TENANT, id, paths, &out, &err) != 0)
        die("projected get of the dealership context", &err);
      proj_lat[r] = now_s() - t0;
    }
    if (json_array_size(json_object_get(out, "missing")) != 0)
      die("a requirement path matched nothing in the dealership context", NULL);
    char *proj = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    size_t proj_len = strlen(proj);
    qsort(get_lat, REPS, sizeof(double), cmp_double);
    qsort(proj_lat, REPS, sizeof(double), cmp_double);
    printf("%-30s %11s %8.1fx %9.1f%% %11.1f %11.1f\n", sets[k].name,
           commas((int64_t)proj_len, b), (double)full_len / proj_len,
           100.0 * (1.0 - (double)proj_len / full_len), get_lat[REPS / 2] * 1e6,
           proj_lat[REPS / 2] * 1e6);
    printf("  %s\n", sets[k].paths);
    sb_free(proj);
    json_decref(out);
    json_decref(paths);
  }
  sb_free(full);
  json_decref(doc);
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: ctx_bench --dir DIR [--sizes N,N...] [--reads N] "
          "[--writes N]\n"
          "                 [--manager-max N] [--durable-load] [--seed N]\n"
          "  --dir          where the temporary SQLite stores go (required)\n"
          "  --sizes        populations to measure (default 10000,1000000)\n"
          "  --reads/--writes  measured ops per read/write operation "
          "(default 5000/2000)\n"
          "  --manager-max  largest population loaded through the manager; "
          "larger ones are bulk-loaded (default 10000)\n"
          "  --scripts      distinct contexts a bulk load replays (default 1000)\n"
          "  --durable-load keep fsync on while loading (slow)\n");
}

static void populate(population *p, fx_rng *rng, size_t manager_max,
                     size_t nscripts) {
  sb_error err = {0};
  /* Create the schema through the store itself. */
  sb_store_options so = {.path = p->path, .loop = &bench_loop};
  sb_store *st = sb_store_open_sqlite(&so, &err);
  if (!st) die("creating the store", &err);
  sb_store_close(st);
  uv_run(&bench_loop, UV_RUN_NOWAIT); /* its loop handle closes */
  double t0 = now_s();
  if (p->n <= manager_max) {
    open_manager(p);
    populate_manager(p, rng);
    close_manager(p);
  } else {
    populate_bulk(p, rng, 2000, nscripts);
  }
  p->load_s = now_s() - t0;
}

int main(int argc, char **argv) {
  sb_core_init();
  uv_loop_init(&bench_loop);
  const char *dir = NULL, *sizes = "10000,1000000";
  size_t reads = 5000, writes = 2000, manager_max = 10000, nscripts = 1000;
  int durable_load = 0;
  uint64_t seed = 20261125;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--durable-load")) { durable_load = 1; continue; }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    if (!v) { usage(stderr); return 2; }
    if (!strcmp(a, "--dir")) dir = v;
    else if (!strcmp(a, "--sizes")) sizes = v;
    else if (!strcmp(a, "--reads")) reads = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--writes")) writes = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--manager-max")) manager_max = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--scripts")) nscripts = strtoul(v, NULL, 10);
    else { usage(stderr); return 2; }
    i++;
  }
  if (!dir || reads < 10 || writes < 10 || nscripts < 1) { usage(stderr); return 2; }
  if (install_vfs() != 0) die("installing the counting SQLite VFS", NULL);
  fx_rng rng;
  fx_seed(&rng, seed);

  printf("switchboard context store bench: SQLite %s, WAL, synchronous=FULL; "
         "store in %s\n", sqlite3_libversion(), dir);
  printf("requirements of the projected get: %s\n", REQUIREMENTS);
  printf("one thread; ops/s = ops / time inside the calls; x raw = raw "
         "lookups per op\n");

  int64_t bytes_per_ctx = 0; /* measured on the first population */
  int reported_projection = 0;
  for (const char *s = sizes; *s;) {
    char *end;
    size_t n = strtoul(s, &end, 10);
    if (end == s || n < 100) { usage(stderr); return 2; }
    s = *end == ',' ? end + 1 : end;
    if (bytes_per_ctx > 0) {
      struct statvfs vfs;
      if (statvfs(dir, &vfs) == 0) {
        double room = (double)vfs.f_bavail * vfs.f_frsize * 0.8;
        size_t fit = (size_t)(room / (bytes_per_ctx * 1.3));
        if (fit < n) {
          char a[32], b[32];
          printf("\nNOTE: %s contexts need about %s on disk; only room for "
                 "%s contexts: scaled down.\n",
                 commas((int64_t)n, a),
                 human_bytes((double)n * bytes_per_ctx * 1.3, b),
                 commas((int64_t)fit, a));
          n = fit;
        }
      }
    }
    population p = {.n = n, .durable_load = durable_load};
    snprintf(p.path, sizeof p.path, "%s/ctx-%zu.db", dir, n);
    p.ids = sb_calloc(n, sizeof *p.ids);
    p.version = sb_calloc(n, sizeof *p.version);
    if (!p.ids || !p.version) die("out of memory", NULL);

    atomic_store(&syncs_enabled, durable_load);
    populate(&p, &rng, manager_max, nscripts);
    atomic_store(&syncs_enabled, 1);

    sqlite3 *db = NULL;
    if (sqlite3_open_v2(p.path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
      db_die(db, "opening the store to measure it");
    if (p.n <= manager_max) payload_from_sql(&p, db);
    measure_disk(&p, db);
    sqlite3_close(db);
    if (!bytes_per_ctx) bytes_per_ctx = (p.db_bytes + p.wal_bytes) / (int64_t)p.n;

    open_manager(&p);
    if (p.n > manager_max) verify_sample(&p, &rng);
    print_population(&p, reads, writes, &rng);
    if (!reported_projection) {
      projection_report(&p, &rng);
      reported_projection = 1;
    }
    fflush(stdout);
    close_manager(&p);
    char extra[4200];
    remove(p.path);
    snprintf(extra, sizeof extra, "%s-wal", p.path);
    remove(extra);
    snprintf(extra, sizeof extra, "%s-shm", p.path);
    remove(extra);
    sb_free(p.ids);
    sb_free(p.version);
  }
  return 0;
}
