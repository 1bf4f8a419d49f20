/* store_bench: context creates and updates per second, with p50/p99, at 1,
 * 8 and 64 concurrent writers through the asynchronous context manager on
 * its SQLite store (WAL, synchronous=FULL, group commit), beside raw SQLite
 * on the same disk measured in the same run: single-row commits per second
 * and rows per second inside one transaction (the ceiling of this disk).
 * Driven by bench/store_bench.sh; `store_bench --help` lists the options.
 *
 * Every writer is a chain of operations on the bench's loop: when one
 * completes, the writer starts its next, until the phase's time is up. A
 * latency is from the call to its callback; an update includes its read of
 * the head unless the manager has it cached ("update": the manager wrote
 * the previous version; "update+read": a manager without its head cache,
 * as when the previous version came from another node). Each writer keeps
 * updating 8 contexts of its own (its conversations, spread over the
 * store), so updates measure throughput, not conflicts. "loop us" is the CPU
 * time the loop thread spent per operation (JSON work, submitting, callbacks):
 * what an operation costs the thread that also serves every connection;
 * "writer us" the store's writer thread's CPU per write (SQL and commit,
 * fsync waits excluded): 1e6 / it bounds the writes one writer can do;
 * "cpu us" the whole process's CPU per operation (every thread: loop,
 * thread pool, writer, checkpointer): cores * 1e6 / it bounds what this
 * machine's CPUs allow, whatever the disk.
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/core.h"
#include "ctx/ctx.h"
#include "store/store.h"

#define TENANT "bench-tenant"
#define MAX_WRITERS 256

static uv_loop_t loop;

static void die(const char *what, const sb_error *err) {
  fprintf(stderr, "store_bench: FAIL: %s%s%s\n", what, err ? ": " : "",
          err ? err->msg : "");
  exit(1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds the calling thread (the loop's), or with `all` the whole
 * process (loop, store threads, thread pool), has used. */
static double cpu_s(int all) {
  struct rusage ru;
  getrusage(all ? RUSAGE_SELF : RUSAGE_THREAD, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ---- latency samples -------------------------------------------------- */

typedef struct samples {
  double *v;
  size_t n, cap;
} samples;

static void sample_add(samples *s, double x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 4096;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v) die("out of memory", NULL);
  }
  s->v[s->n++] = x;
}

static double pct(samples *s, double p) {
  if (!s->n) return 0;
  size_t i = (size_t)(p * (double)(s->n - 1));
  return s->v[i];
}

/* ---- raw SQLite on the same disk --------------------------------------- */

static void exec_sql(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "store_bench: FAIL: %s: %s\n", sql, msg);
    exit(1);
  }
}

typedef struct raw_result {
  double commits_s, rows_s;
} raw_result;

static raw_result raw_sqlite(const char *dir, double seconds, size_t doc_len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/raw.db", dir);
  remove(path);
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) die("opening raw.db", NULL);
  exec_sql(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
               "CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID");
  char *doc = malloc(doc_len + 1);
  memset(doc, 'x', doc_len);
  doc[doc_len] = '\0';
  sqlite3_stmt *ins;
  sqlite3_prepare_v2(db, "INSERT INTO t VALUES(?,?)", -1, &ins, NULL);
  raw_result r = {0};
  /* single-row transactions: one commit (and its fsyncs) per row */
  long n = 0;
  double t0 = now_s(), end = t0 + seconds;
  char key[32];
  while (now_s() < end) {
    snprintf(key, sizeof key, "single-%ld", n++);
    sqlite3_bind_text(ins, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, doc, -1, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) die("raw insert", NULL);
    sqlite3_reset(ins);
  }
  r.commits_s = (double)n / (now_s() - t0);
  /* many rows, one transaction, one commit */
  long rows = 50000;
  t0 = now_s();
  exec_sql(db, "BEGIN");
  for (long i = 0; i < rows; i++) {
    snprintf(key, sizeof key, "batch-%ld", i);
    sqlite3_bind_text(ins, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, doc, -1, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) die("raw insert", NULL);
    sqlite3_reset(ins);
  }
  exec_sql(db, "COMMIT");
  r.rows_s = (double)rows / (now_s() - t0);
  sqlite3_finalize(ins);
  sqlite3_close(db);
  free(doc);
  remove(path);
  return r;
}

/* ---- writers on the loop ----------------------------------------------- */

typedef enum phase_kind {
  PHASE_CREATE,
  PHASE_UPDATE,      /* the manager has the head from its last write */
  PHASE_UPDATE_READ, /* a manager without a head cache reads it first */
  PHASE__COUNT
} phase_kind;

static const char *const phase_names[PHASE__COUNT] = {
    [PHASE_CREATE] = "create",
    [PHASE_UPDATE] = "update",
    [PHASE_UPDATE_READ] = "update+read",
};

/* Contexts each writer keeps working on in an update phase (its
 * conversations); they are spread over the whole store. */
#define PER_WRITER 8

typedef struct bench bench;

typedef struct writer {
  bench *b;
  int index;
  size_t next; /* update: the next of this writer's contexts */
  size_t ctx;  /* update: the context being updated */
  double started;
} writer;

struct bench {
  sb_ctx_manager *m, *m_uncached;
  phase_kind kind;
  double deadline;
  int live;
  writer writers[MAX_WRITERS];
  int nwriters;
  samples lat;
  long failures;
  json_t *create_input;
  /* the contexts updates go to, with their versions */
  char (*ids)[40];
  int64_t *versions;
  size_t nids, cap;
};

static void writer_next(writer *w);

static void on_done(void *ud, const sb_ctx_result *res) {
  writer *w = ud;
  bench *b = w->b;
  sample_add(&b->lat, now_s() - w->started);
  if (res->rc != 0) {
    if (b->failures++ == 0)
      fprintf(stderr, "store_bench: first failure: %s\n", res->err.msg);
  } else if (b->kind == PHASE_CREATE) {
    if (b->nids == b->cap) {
      b->cap = b->cap ? b->cap * 2 : 4096;
      b->ids = realloc(b->ids, b->cap * sizeof *b->ids);
      b->versions = realloc(b->versions, b->cap * sizeof *b->versions);
      if (!b->ids || !b->versions) die("out of memory", NULL);
    }
    snprintf(b->ids[b->nids], sizeof b->ids[0], "%s",
             json_string_value(json_object_get(res->doc, "id")));
    b->versions[b->nids++] = 1;
  } else {
    b->versions[w->ctx] = res->version;
  }
  writer_next(w);
}

static void writer_next(writer *w) {
  bench *b = w->b;
  if (now_s() >= b->deadline) {
    b->live--;
    return;
  }
  sb_error err = {0};
  int rc;
  w->started = now_s();
  if (b->kind == PHASE_CREATE) {
    rc = sb_ctx_create_async(b->m, TENANT, b->create_input, on_done, w, &err);
  } else {
    /* this writer's contexts: PER_WRITER of them, spread over the store */
    size_t nw = (size_t)b->nwriters;
    size_t per = b->nids / nw < PER_WRITER ? b->nids / nw : PER_WRITER;
    size_t spread = b->nids / (nw * per);
    if (per == 0) die("fewer contexts than writers", NULL);
    size_t i = (((size_t)w->index + (w->next % per) * nw) * spread) % b->nids;
    w->next = w->next % per + 1;
    w->ctx = i;
    char text[96];
    snprintf(text, sizeof text,
             "{\"data\":{\"workflow\":{\"currentStep\":\"step-%lld\"}}}",
             (long long)b->versions[i]);
    json_t *patch = json_loads(text, 0, NULL);
    rc = sb_ctx_update_async(b->kind == PHASE_UPDATE ? b->m : b->m_uncached,
                             TENANT, b->ids[i], b->versions[i],
                             SB_CTX_MERGE_PATCH, patch, on_done, w, &err);
    json_decref(patch);
  }
  if (rc == SB_EBUSY) die("the store's queue is full", &err);
  if (rc != 0) die("starting an operation", &err);
}

typedef struct phase_result {
  double ops_s, p50_ms, p99_ms, batch, loop_us, writer_us, cpu_us;
  long failures;
} phase_result;

static phase_result run_phase(bench *b, sb_store *st, phase_kind kind,
                              int writers, double seconds) {
  b->kind = kind;
  b->nwriters = writers;
  b->live = writers;
  b->lat.n = 0;
  b->failures = 0;
  sb_store_stats s0, s1;
  sb_store_get_stats(st, &s0);
  double t0 = now_s(), cpu0 = cpu_s(0), all0 = cpu_s(1);
  b->deadline = t0 + seconds;
  for (int i = 0; i < writers; i++) {
    b->writers[i] = (writer){.b = b, .index = i};
    writer_next(&b->writers[i]);
  }
  while (b->live > 0)
    uv_run(&loop, UV_RUN_ONCE);
  double dt = now_s() - t0, cpu = cpu_s(0) - cpu0, all = cpu_s(1) - all0;
  sb_store_get_stats(st, &s1);
  qsort(b->lat.v, b->lat.n, sizeof(double), cmp_double);
  phase_result r = {
      .ops_s = (double)(b->lat.n - (size_t)b->failures) / dt,
      .p50_ms = pct(&b->lat, 0.50) * 1e3,
      .p99_ms = pct(&b->lat, 0.99) * 1e3,
      .batch = s1.batches > s0.batches ? (double)(s1.writes - s0.writes) /
                                             (double)(s1.batches - s0.batches)
                                       : 0,
      .loop_us = b->lat.n ? cpu * 1e6 / (double)b->lat.n : 0,
      .cpu_us = b->lat.n ? all * 1e6 / (double)b->lat.n : 0,
      .writer_us = s1.writes > s0.writes
                       ? (double)(s1.writer_cpu_us - s0.writer_cpu_us) /
                             (double)(s1.writes - s0.writes)
                       : 0,
      .failures = b->failures};
  return r;
}

static void print_phase(const char *name, int writers, const phase_result *r,
                        const raw_result *raw) {
  printf("%-11s %5d %11.0f %9.2f %9.2f %9.1f %10.1fx %8.1f%% %8.0f %9.0f "
         "%7.0f%s\n",
         name, writers, r->ops_s, r->p50_ms, r->p99_ms, r->batch,
         r->ops_s / raw->commits_s, 100.0 * r->ops_s / raw->rows_s, r->loop_us,
         r->writer_us, r->cpu_us, r->failures ? "  FAILURES" : "");
}

/* ---- a large population, bulk-loaded ------------------------------------ */

/* N contexts with the document the manager made for `doc` (ids bulk-N),
 * written straight into the store's tables in big transactions, fsync off
 * (loading is not measured). Their ids join the update set. */
static void bulk_load(bench *b, const char *path, const json_t *doc, size_t n) {
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) die("opening for bulk load", NULL);
  exec_sql(db, "PRAGMA synchronous=OFF");
  sqlite3_stmt *head, *ver;
  sqlite3_prepare_v2(db,
                     "INSERT INTO contexts(tenant_id,id,workflow_id,"
                     "session_id,version,created_ms,updated_ms,expires_ms,"
                     "doc) VALUES(?,?,'','',1,1,1,0,?)",
                     -1, &head, NULL);
  sqlite3_prepare_v2(db,
                     "INSERT INTO context_versions(tenant_id,context_id,"
                     "version,created_ms,patch,snapshot) VALUES(?,?,1,1,"
                     "NULL,?)",
                     -1, &ver, NULL);
  json_t *copy = json_deep_copy(doc);
  double t0 = now_s();
  exec_sql(db, "BEGIN");
  for (size_t i = 0; i < n; i++) {
    char id[40];
    snprintf(id, sizeof id, "bulk-%09zu", i);
    json_object_set_new(copy, "id", json_string(id));
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    sqlite3_stmt *sts[2] = {head, ver};
    for (int k = 0; k < 2; k++) {
      sqlite3_bind_text(sts[k], 1, TENANT, -1, SQLITE_STATIC);
      sqlite3_bind_text(sts[k], 2, id, -1, SQLITE_STATIC);
      sqlite3_bind_text(sts[k], 3, text, -1, SQLITE_STATIC);
      if (sqlite3_step(sts[k]) != SQLITE_DONE) die("bulk insert", NULL);
      sqlite3_reset(sts[k]);
    }
    sb_free(text);
    if (b->nids == b->cap) {
      b->cap = b->cap ? b->cap * 2 : 4096;
      b->ids = realloc(b->ids, b->cap * sizeof *b->ids);
      b->versions = realloc(b->versions, b->cap * sizeof *b->versions);
    }
    snprintf(b->ids[b->nids], sizeof b->ids[0], "%s", id);
    b->versions[b->nids++] = 1;
    if (i % 50000 == 49999) {
      exec_sql(db, "COMMIT; BEGIN");
      fprintf(stderr, "\rstore_bench: bulk load %zu/%zu", i + 1, n);
    }
  }
  exec_sql(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)");
  fprintf(stderr, "\rstore_bench: bulk-loaded %zu contexts in %.0f s\n", n,
          now_s() - t0);
  json_decref(copy);
  sqlite3_finalize(head);
  sqlite3_finalize(ver);
  sqlite3_close(db);
}

/* Whether --phases (NULL: all) names kind. */
static int phase_on(const char *phases, phase_kind kind) {
  if (!phases) return 1;
  const char *name = phase_names[kind];
  size_t n = strlen(name);
  for (const char *p = phases; (p = strstr(p, name)) != NULL; p += n)
    if ((p == phases || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
      return 1;
  return 0;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f, "usage: store_bench --dir DIR [--seconds S] [--writers 1,8,64] "
             "[--population N]\n"
             "  --dir         where the SQLite files go (required)\n"
             "  --seconds     length of each measured phase (default 3)\n"
             "  --writers     concurrent writers per phase (default 1,8,64)\n"
             "  --population  also measure updates among N bulk-loaded "
             "contexts (default 0: none)\n"
             "  --phases      only these, e.g. update (the others still run "
             "1 s, unmeasured, to make the contexts; for profiling)\n");
}

static const char *const INPUT =
    "{\"workflowId\":\"wf-bench\",\"sessionId\":\"s-bench\",\"data\":{"
    "\"conversation\":{\"intent\":\"test_drive\",\"messages\":[{\"role\":"
    "\"user\",\"content\":\"Is the blue F-150 XLT still available for a test "
    "drive on Saturday morning?\"},{\"role\":\"assistant\",\"content\":"
    "\"Yes, it is on the lot; shall I book 10:00 for you?\"}]},\"workflow\":{"
    "\"currentStep\":\"schedule\",\"variables\":{\"vin\":\"1FTFW1E50PFA00001\","
    "\"budget\":40000}},\"user\":{\"id\":\"u-42\",\"preferences\":{"
    "\"color\":\"blue\"}}}}";

int main(int argc, char **argv) {
  sb_core_init();
  const char *dir = NULL, *writers_list = "1,8,64", *phases = NULL;
  double seconds = 3;
  size_t population = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (!v) {
      usage(stderr);
      return 2;
    }
    if (!strcmp(a, "--dir"))
      dir = v;
    else if (!strcmp(a, "--seconds"))
      seconds = atof(v);
    else if (!strcmp(a, "--writers"))
      writers_list = v;
    else if (!strcmp(a, "--population"))
      population = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--phases"))
      phases = v;
    else {
      usage(stderr);
      return 2;
    }
    i++;
  }
  if (!dir || seconds <= 0) {
    usage(stderr);
    return 2;
  }
  int writers[16], nw = 0;
  char *copy = strdup(writers_list), *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t && nw < 16;
       t = strtok_r(NULL, ",", &save)) {
    writers[nw] = atoi(t);
    if (writers[nw] < 1 || writers[nw] > MAX_WRITERS)
      die("bad --writers", NULL);
    nw++;
  }
  free(copy);

  uv_loop_init(&loop);
  char path[4096];
  snprintf(path, sizeof path, "%s/store.db", dir);
  sb_error err = {0};
  sb_store_options so = {.path = path, .loop = &loop};
  sb_store *st = sb_store_open_sqlite(&so, &err);
  if (!st) die("opening the store", &err);
  sb_ctx_manager_options mo = {.store = st};
  bench b = {.m = sb_ctx_manager_new(&mo)};
  sb_ctx_manager_options cold = {.store = st, .head_cache = -1};
  b.m_uncached = sb_ctx_manager_new(&cold);
  b.create_input = json_loads(INPUT, 0, NULL);

  /* warm up: the first contexts, and the files at their working size */
  run_phase(&b, st, PHASE_CREATE, 1, 0.2);
  if (!b.nids) die("no context created", NULL);
  json_t *tmpl = NULL;
  char *sample = json_dumps(b.create_input, JSON_COMPACT);
  size_t doc_len = strlen(sample) + 200; /* plus the server-owned fields */
  sb_free(sample);

  raw_result raw =
      phases ? (raw_result){1, 1} : raw_sqlite(dir, seconds, doc_len);
  printf("== raw SQLite on this disk (WAL, synchronous=FULL, %zu-byte rows) "
         "==\n",
         doc_len);
  printf("single-row commits/s            %10.0f\n", raw.commits_s);
  printf("rows/s inside one transaction   %10.0f   (the ceiling)\n\n",
         raw.rows_s);

  printf("== context manager on the store (group commit) ==\n");
  printf("%-11s %5s %11s %9s %9s %9s %11s %9s %8s %9s %7s\n", "op", "wrtrs",
         "ops/s", "p50 ms", "p99 ms", "batch", "x 1-row", "/ceiling", "loop us",
         "writer us", "cpu us");
  phase_result upd64 = {0};
  for (int k = 0; k < nw; k++) {
    for (int kind = 0; kind < PHASE__COUNT; kind++) {
      int on = phase_on(phases, (phase_kind)kind);
      if (!on && kind != PHASE_CREATE) continue;
      phase_result r =
          run_phase(&b, st, (phase_kind)kind, writers[k], on ? seconds : 1);
      if (on) print_phase(phase_names[kind], writers[k], &r, &raw);
      if (kind == PHASE_UPDATE && writers[k] == 64) upd64 = r;
    }
  }
  printf("(%zu contexts in the store after these phases)\n", b.nids);

  if (population > 0) {
    /* the document the manager would make of INPUT */
    tmpl = json_loads(INPUT, 0, NULL);
    json_object_set_new(tmpl, "id", json_string("bulk-000000000"));
    json_object_set_new(tmpl, "tenantId", json_string(TENANT));
    json_object_set_new(tmpl, "version", json_integer(1));
    json_object_set_new(tmpl, "timestamp",
                        json_string("2026-12-01T00:00:00.000Z"));
    json_t *filled = sb_ctx_fill_defaults(tmpl);
    json_object_set_new(json_object_get(filled, "metadata"), "expiresAt",
                        json_string("2099-01-01T00:00:00.000Z"));
    json_decref(tmpl);
    tmpl = filled;
    if (sb_ctx_validate(tmpl, &err) != 0) die("bulk template", &err);
    /* the bulk contexts replace the update set */
    b.nids = 0;
    bulk_load(&b, path, tmpl, population);
    json_decref(tmpl);
    printf("-- %zu bulk-loaded contexts in the store --\n", population);
    for (int k = 0; k < nw; k++) {
      for (int kind = PHASE_UPDATE; kind < PHASE__COUNT; kind++) {
        if (!phase_on(phases, (phase_kind)kind)) continue;
        phase_result r =
            run_phase(&b, st, (phase_kind)kind, writers[k], seconds);
        print_phase(phase_names[kind], writers[k], &r, &raw);
        if (kind == PHASE_UPDATE && writers[k] == 64) upd64 = r;
      }
    }
  }
  if (upd64.ops_s > 0)
    printf("\nbar: >= 10000 updates/s at 64 writers: %s (%.0f/s)\n",
           upd64.ops_s >= 10000 ? "met" : "MISSED", upd64.ops_s);

  json_decref(b.create_input);
  sb_ctx_manager_free(b.m);
  sb_ctx_manager_free(b.m_uncached);
  sb_store_close(st);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  free(b.lat.v);
  free(b.ids);
  free(b.versions);
  return 0;
}
