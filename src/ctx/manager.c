/* manager.c: versioned, tenant-isolated contexts on top of the store.
 *
 * A write is: read the head, apply the caller's patch, put the server-owned
 * fields back, validate the whole document, diff it against the head, and
 * append it as the next version only if the head has not moved (the store
 * checks that inside its write transaction). Reading an old version starts
 * from the newest snapshot at or below it and replays at most
 * snapshot_every-1 patches, so any version is cheap to read.
 *
 * Every operation is an mg_op moving through explicit steps: store
 * requests go out, their callbacks come back on the loop, and the JSON work
 * between them runs on the loop — except an update's, the heaviest (parse
 * the head, apply, validate, diff, serialise: next.c), which runs on the
 * libuv thread pool so the loop only hands it over and submits the result;
 * the updates arriving together go over in jobs of up to MAKE_BATCH_MAX
 * (mg_batch). An update whose cached head only the cache holds takes it
 * out of the cache, and next.c makes the next version in it. The op holds
 * a reference on the manager, so freeing the manager while operations are
 * under way is safe.
 */
#include <string.h>

#include "ctx/ctx_internal.h"
#include "store/store.h"

#define DEFAULT_SNAPSHOT_EVERY 32
#define DEFAULT_TTL_MS (7LL * 24 * 3600 * 1000)
#define SWEEP_BATCH 500
#define SWEEP_MAX 100000
#define DEFAULT_HEAD_CACHE 4096
/* Parsed documents are big: a 3.4 MB context of small integers is ~120 MB
 * of jansson nodes, so a cache capped by count alone grew to gigabytes. */
#define DEFAULT_HEAD_CACHE_BYTES ((size_t)64 << 20)

struct sb_ctx_manager {
  sb_store *store;
  int snapshot_every;
  size_t max_doc_bytes;
  int64_t default_ttl_ms;
  sb_ctx_change_cb on_change;
  void *on_change_ud;
  int refs;   /* the owner's, plus one per operation under way */
  int closed; /* freed by its owner: the store may be gone */
  /* The newest head this manager has seen of recently used contexts,
   * "tenant\x1fid" -> [document (shared, never modified), its weight]
   * (ctx_doc_weight), least recently used first. An update whose
   * expectedVersion matches starts from it instead of reading the store;
   * the store's compare-and-set still decides, so a head changed behind
   * our back (another process or node) still ends in a conflict. At most
   * heads_max heads and heads_bytes_max of their weights together. */
  json_t *heads;
  size_t heads_max;
  size_t heads_bytes, heads_bytes_max;
  /* Updates' next versions are made on the thread pool in batches: one
   * job takes every update that came in before a pool thread picked it
   * up (one wake of a thread and of the loop for them all, not one per
   * update). `open` (loop thread only) is the job still taking updates
   * until its `started` (under make_lock) says a thread has it. */
  uv_mutex_t make_lock;
  struct mg_batch *open;
};

sb_ctx_manager *sb_ctx_manager_new(const sb_ctx_manager_options *o) {
  sb_ctx_manager *m = sb_calloc(1, sizeof *m);
  if (!m) return NULL;
  m->store = o->store;
  m->snapshot_every =
      o->snapshot_every > 0 ? o->snapshot_every : DEFAULT_SNAPSHOT_EVERY;
  m->default_ttl_ms =
      o->default_ttl_ms > 0 ? o->default_ttl_ms : DEFAULT_TTL_MS;
  m->max_doc_bytes =
      o->max_doc_bytes > 0 ? o->max_doc_bytes : SB_CTX_MAX_DOC_BYTES;
  m->refs = 1;
  if (uv_mutex_init(&m->make_lock) != 0) {
    sb_free(m);
    return NULL;
  }
  m->heads_max = o->head_cache > 0    ? (size_t)o->head_cache
                 : o->head_cache == 0 ? DEFAULT_HEAD_CACHE
                                      : 0;
  m->heads_bytes_max = o->head_cache_bytes > 0 ? o->head_cache_bytes
                                               : DEFAULT_HEAD_CACHE_BYTES;
  if (m->heads_max && !(m->heads = json_object())) {
    uv_mutex_destroy(&m->make_lock);
    sb_free(m);
    return NULL;
  }
  return m;
}

static void manager_unref(sb_ctx_manager *m) {
  if (--m->refs > 0) return;
  json_decref(m->heads);
  uv_mutex_destroy(&m->make_lock);
  sb_free(m);
}

size_t sb_ctx_manager_pending(const sb_ctx_manager *m) {
  return m->refs > 1 ? (size_t)(m->refs - 1) : 0;
}

void sb_ctx_manager_free(sb_ctx_manager *m) {
  if (!m) return;
  m->on_change = NULL;
  m->closed = 1;
  manager_unref(m);
}

void sb_ctx_manager_on_change(sb_ctx_manager *m, sb_ctx_change_cb cb,
                              void *ud) {
  m->on_change = cb;
  m->on_change_ud = ud;
}

static int valid_id(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > 128) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return 0;
  }
  return 1;
}

static int check_id(const char *id, sb_error *err) {
  /* A malformed id cannot exist: answer like any unknown id. */
  if (!valid_id(id)) return sb_error_set(err, SB_ENOENT, "context not found");
  return 0;
}

/* ---- the head cache -------------------------------------------------- */

static int head_key(const char *tenant, const char *id, char *out, size_t n) {
  int len = snprintf(out, n, "%s\x1f%s", tenant, id);
  return len > 0 && (size_t)len < n;
}

/* A cache entry's document (borrowed) and weight. */
static json_t *entry_doc(const json_t *e) { return json_array_get(e, 0); }
static size_t entry_weight(const json_t *e) {
  return (size_t)json_integer_value(json_array_get(e, 1));
}

/* Drop the entry under `key` (its weight leaves the total). */
static void entry_drop(sb_ctx_manager *m, const char *key) {
  json_t *e = json_object_get(m->heads, key);
  if (!e) return;
  m->heads_bytes -= entry_weight(e);
  json_object_del(m->heads, key);
}

/* The cached head of (tenant, id) if it is at `version` (0: at any);
 * borrowed. A hit is a use: the entry moves to the end of the order
 * (jansson keeps insertion order), away from eviction. */
static json_t *head_cached(sb_ctx_manager *m, const char *tenant,
                           const char *id, int64_t version) {
  char key[512];
  if (!m->heads || !head_key(tenant, id, key, sizeof key)) return NULL;
  json_t *e = json_object_get(m->heads, key);
  json_t *doc = entry_doc(e);
  if (!doc || (version &&
               json_integer_value(json_object_get(doc, "version")) != version))
    return NULL;
  /* Re-inserted under our own reference, so doc lives through the move. */
  json_incref(e);
  json_object_del(m->heads, key);
  if (json_object_set_new(m->heads, key, e) != 0) {
    m->heads_bytes -= entry_weight(e);
    return NULL; /* out of memory: forgotten (e freed, doc with it) */
  }
  return doc;
}

/* Remember doc (a reference is kept), of `weight` (ctx_doc_weight),
 * unless a newer head is known. The least recently used heads make room;
 * a head heavier than the whole budget is not kept at all. */
static void head_remember(sb_ctx_manager *m, const char *tenant, const char *id,
                          json_t *doc, size_t weight) {
  char key[512];
  if (!m->heads || !head_key(tenant, id, key, sizeof key)) return;
  json_t *old = entry_doc(json_object_get(m->heads, key));
  json_int_t v = json_integer_value(json_object_get(doc, "version"));
  if (old && json_integer_value(json_object_get(old, "version")) > v) return;
  entry_drop(m, key); /* an older version of it, if any */
  if (weight > m->heads_bytes_max) return;
  while (json_object_size(m->heads) &&
         (json_object_size(m->heads) >= m->heads_max ||
          m->heads_bytes + weight > m->heads_bytes_max)) {
    void *it = json_object_iter(m->heads);
    entry_drop(m, json_object_iter_key(it));
  }
  json_t *e = json_pack("[OI]", doc, (json_int_t)weight);
  if (e && json_object_set_new(m->heads, key, e) == 0)
    m->heads_bytes += weight;
}

const json_t *sb_ctx_head_cached(sb_ctx_manager *m, const char *tenant,
                                 const char *id, int64_t version) {
  return valid_id(id) && tenant && version > 0
             ? head_cached(m, tenant, id, version)
             : NULL;
}

const json_t *sb_ctx_head_latest(sb_ctx_manager *m, const char *tenant,
                                 const char *id) {
  return valid_id(id) && tenant ? head_cached(m, tenant, id, 0) : NULL;
}

static void head_forget(sb_ctx_manager *m, const char *tenant, const char *id) {
  char key[512];
  if (m->heads && head_key(tenant, id, key, sizeof key)) entry_drop(m, key);
}

/* ---- operations ------------------------------------------------------ */

typedef enum mg_kind {
  MG_CREATE,
  MG_GET,
  MG_PROJECT,
  MG_UPDATE,
  MG_HISTORY,
  MG_DIFF,
  MG_SWEEP,
} mg_kind;

/* Where an operation is; each store callback moves it on. */
typedef enum mg_step {
  MG_STEP_READ,  /* reading a document (the head or a past version) */
  MG_STEP_READ2, /* diff: reading its second version */
  MG_STEP_MAKE,  /* update: the next version is made on the thread pool */
  MG_STEP_WRITE, /* create/update: the write is in the store's queue */
  MG_STEP_LIST,  /* history: reading version rows */
  MG_STEP_SWEEP, /* sweeping a batch */
} mg_step;

typedef struct mg_op {
  sb_ctx_manager *m;
  mg_kind kind;
  mg_step step;
  sb_ctx_cb cb;
  void *ud;
  char *tenant, *id;
  int64_t version;  /* the version read (0 = head); update: expected */
  int64_t version2; /* diff: the second version */
  sb_ctx_patch_kind patch_kind;
  json_t *arg;      /* update: the patch; project: the paths (refs held) */
  json_t *doc;      /* the document read, or the one written */
  json_t *doc2;     /* diff: the second document */
  int total;        /* sweep: deleted so far */
  int64_t run_rev;  /* a write with a run: its new rev */
  int64_t last_seq; /* a write: the seq of the last event it wrote */
  const sb_store_extras *extras; /* create, update: the caller's (borrowed
                                    until the callback) */
  unsigned flags;                /* update: SB_CTX_WRITE_* */
  struct mg_op *next_made;       /* update: in its batch (mg_batch) */
  char *text;  /* create, update: the document written; get of the head:
                  the document read; as stored */
  size_t weight; /* create, update: ctx_doc_weight(doc), for the cache */
  ctx_next nx; /* update: its next version, made on the pool */
} mg_op;

static mg_op *op_new(sb_ctx_manager *m, mg_kind kind, const char *tenant,
                     const char *id, sb_ctx_cb cb, void *ud, sb_error *err) {
  mg_op *op = sb_calloc(1, sizeof *op);
  if (op) {
    op->tenant = sb_strdup(tenant ? tenant : "");
    op->id = id ? sb_strdup(id) : NULL;
  }
  if (!op || !op->tenant || (id && !op->id)) {
    if (op) {
      sb_free(op->tenant);
      sb_free(op->id);
      sb_free(op);
    }
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  op->m = m;
  m->refs++;
  op->kind = kind;
  op->cb = cb;
  op->ud = ud;
  return op;
}

static void op_free(mg_op *op) {
  ctx_next_clear(&op->nx);
  json_decref(op->arg);
  json_decref(op->doc);
  json_decref(op->doc2);
  sb_free(op->tenant);
  sb_free(op->id);
  sb_free(op->text);
  manager_unref(op->m);
  sb_free(op);
}

/* The message of a submission the store refused. */
static int refused(int rc, sb_error *err) {
  switch (rc) {
  case SB_EBUSY: return sb_error_set(err, SB_EBUSY, SB_CTX_BUSY_MESSAGE);
  case SB_ENOMEM: return sb_error_set(err, SB_ENOMEM, "out of memory");
  case SB_ESTATE: return sb_error_set(err, rc, "the context store is closed");
  default: return sb_error_set(err, rc, "context: a tenant is required");
  }
}

/* Finish: call back with `doc` (borrowed, may be NULL) and free the op. */
static void finish(mg_op *op, int rc, const sb_error *err, json_t *doc,
                   int64_t version, int count) {
  sb_ctx_result res = {.rc = rc,
                       .version = version,
                       .count = count,
                       .run_rev = op->run_rev,
                       .last_seq = op->last_seq};
  if (rc != 0) {
    if (err && err->code)
      res.err = *err;
    else
      sb_error_set(&res.err, rc, "context operation failed (%s)",
                   sb_strerror(rc));
    res.err.code = rc;
  } else {
    res.doc = doc;
    res.text = op->text;
  }
  op->cb(op->ud, &res);
  op_free(op);
}

static void op_fail(mg_op *op, int rc, const sb_error *err) {
  finish(op, rc, err, NULL, 0, 0);
}

static void changed(mg_op *op, int64_t version) {
  sb_ctx_manager *m = op->m;
  if (m->on_change) m->on_change(m->on_change_ud, op->tenant, op->id, version);
}

static int64_t version_of(const json_t *doc) {
  return json_integer_value(json_object_get(doc, "version"));
}

/* ---- reading a document ---------------------------------------------- */

static void after_read(mg_op *op, json_t *doc);
static int start_next(mg_op *op, json_t *head, char *head_text, int from_cache,
                      int own);

/* Rebuild version n from its chain: snapshot, then patches in order. New
 * reference, or NULL with err. */
static json_t *rebuild(const char *id, const sb_store_versions *chain,
                       sb_error *err) {
  json_t *doc = ctx_doc_load(
      chain->len && chain->items[0].snapshot ? chain->items[0].snapshot : "",
      err);
  for (size_t i = 1; doc && i < chain->len; i++) {
    json_error_t jerr;
    json_t *patch = json_loads(
        chain->items[i].patch ? chain->items[i].patch : "", 0, &jerr);
    json_t *next = NULL;
    if (!patch || sb_ctx_patch_apply(doc, patch, &next, err) != 0) {
      sb_error_set(err, SB_EIO, "store: version %lld of %s does not replay",
                   (long long)chain->items[i].version, id);
      json_decref(doc);
      doc = NULL;
    } else {
      json_decref(doc);
      doc = next;
    }
    json_decref(patch);
  }
  return doc;
}

static void on_doc_read(void *ud, sb_store_result *res) {
  mg_op *op = ud;
  if (res->rc != 0) return op_fail(op, res->rc, &res->err);
  sb_error err = {0};
  if (op->kind == MG_UPDATE && !res->versions.len) {
    /* The head is parsed on the thread pool with the rest of the work. */
    char *text = res->record.doc;
    res->record.doc = NULL;
    if (start_next(op, NULL, text, 0, 0) != 0)
      op_fail(op, SB_ENOMEM,
              &(sb_error){.code = SB_ENOMEM,
                          .msg = "cannot queue work for an update"});
    return;
  }
  json_t *doc = res->versions.len ? rebuild(op->id, &res->versions, &err)
                                  : ctx_doc_load(res->record.doc, &err);
  if (!doc) return op_fail(op, err.code ? err.code : SB_EIO, &err);
  if (!res->versions.len)
    head_remember(op->m, op->tenant, op->id, doc, ctx_doc_weight(doc));
  if (op->kind == MG_GET && !res->versions.len) {
    /* The head's text as stored goes back with it (res.text). */
    op->text = res->record.doc;
    res->record.doc = NULL;
  }
  after_read(op, doc);
}

/* Read version n (0 = head) of op's context; after_read gets it. */
static int read_doc(mg_op *op, int64_t n, sb_error *err) {
  sb_ctx_manager *m = op->m;
  int64_t now = (int64_t)sb_wall_ms();
  int rc =
      n > 0 ? sb_store_version_chain(m->store, op->tenant, op->id, n, now,
                                     on_doc_read, op)
            : sb_store_get(m->store, op->tenant, op->id, now, on_doc_read, op);
  return rc ? refused(rc, err) : 0;
}

/* ---- writing --------------------------------------------------------- */

static void on_written(void *ud, sb_store_result *res) {
  mg_op *op = ud;
  if (res->rc != 0) {
    /* The head is not what we thought (or not there): forget it. */
    if (res->rc == SB_ECONFLICT || res->rc == SB_ENOENT)
      head_forget(op->m, op->tenant, op->id);
    op->run_rev = res->run_rev; /* a run's conflict: its current rev */
    finish(op, res->rc, &res->err, NULL, res->version, 0);
    return;
  }
  head_remember(op->m, op->tenant, op->id, op->doc, op->weight);
  changed(op, res->version);
  op->run_rev = res->run_rev;
  op->last_seq =
      res->events.len ? res->events.items[res->events.len - 1].seq : 0;
  finish(op, 0, NULL, op->doc, res->version, 0);
}

/* The caller's extras and the event that reports this new version
 * (context.created or context.updated), as one set for the store: it
 * copies them at submission, so the arrays live only through the call. */
typedef struct mg_extras {
  sb_store_extras x;
  sb_store_event *events;
  char data[160];
} mg_extras;

static int extras_make(mg_op *op, int64_t version, mg_extras *out) {
  const sb_store_extras *given = op->extras;
  size_t n = (given ? given->nevents : 0) + 1;
  memset(out, 0, sizeof *out);
  if (!(out->events = sb_calloc(n, sizeof *out->events))) return SB_ENOMEM;
  snprintf(out->data, sizeof out->data,
           "{\"contextId\":\"%s\",\"version\":%lld}", op->id,
           (long long)version);
  out->events[0] = (sb_store_event){.type = version == 1 ? SB_CTX_EVENT_CREATED
                                                         : SB_CTX_EVENT_UPDATED,
                                    .data = out->data};
  for (size_t i = 1; i < n; i++)
    out->events[i] = given->events[i - 1];
  out->x.run = given ? given->run : NULL;
  out->x.events = out->events;
  out->x.nevents = n;
  return 0;
}

/* A job of the thread pool making the next versions of updates; it takes
 * at most MAKE_BATCH_MAX, so a burst is spread over several pool threads
 * (both cores), and the first of it reaches the store while the rest is
 * being made. */
#define MAKE_BATCH_MAX 16
typedef struct mg_batch {
  uv_work_t work;
  sb_ctx_manager *m;
  mg_op *head, *tail; /* linked by next_made */
  int count;          /* loop thread only */
  int started;        /* under m->make_lock */
} mg_batch;

/* Back on the loop: submit the version made, or answer why not. */
static void made_next(mg_op *op, int status) {
  ctx_next *nx = &op->nx;
  sb_ctx_manager *m = op->m;
  sb_error err = {0};
  int rc = nx->rc;
  if (status != 0 || m->closed) {
    /* The owner let go of the manager: its store may be gone. */
    ctx_next_clear(nx);
    return op_fail(
        op, SB_ESTATE,
        &(sb_error){.code = SB_ESTATE, .msg = "the context store is closed"});
  }
  if (rc != 0 && nx->from_cache) {
    /* The cached head did not do: read the head from the store. */
    ctx_next_clear(nx);
    head_forget(m, op->tenant, op->id);
    op->step = MG_STEP_READ;
    if ((rc = read_doc(op, 0, &err)) != 0) op_fail(op, rc, &err);
    return;
  }
  if (rc != 0) {
    err = nx->err;
    int64_t current = nx->current;
    ctx_next_clear(nx);
    return finish(op, rc, &err, NULL, current, 0);
  }
  mg_extras x;
  if (extras_make(op, op->version + 1, &x) != 0) {
    ctx_next_clear(nx);
    return op_fail(op, SB_ENOMEM,
                   &(sb_error){.code = SB_ENOMEM, .msg = "out of memory"});
  }
  sb_store_append_args a = {.tenant = op->tenant,
                            .id = op->id,
                            .expected_version = op->version,
                            .new_doc = nx->text,
                            .patch = nx->diff_text,
                            .snapshot = nx->snapshot,
                            .expires_ms = nx->expires,
                            .now_ms = nx->now,
                            .extras = &x.x};
  rc = sb_store_append(m->store, &a, on_written, op);
  sb_free(x.events);
  if (rc == 0) {
    op->step = MG_STEP_WRITE;
    op->doc = nx->next;
    nx->next = NULL;
    op->weight = nx->weight;
    op->text = nx->text;
    nx->text = NULL;
  }
  ctx_next_clear(nx);
  if (rc != 0) op_fail(op, refused(rc, &err), &err);
}

/* Make the next version from `head`, or from `head_text` when head is
 * NULL (either taken), on the thread pool. 0, or a negative code (both
 * released, nothing queued). */
static void batch_make(uv_work_t *w) {
  sb_thread_background(); /* a libuv pool thread: once, at its first job */
  mg_batch *b = w->data;
  uv_mutex_lock(&b->m->make_lock);
  b->started = 1; /* the loop adds no more */
  mg_op *op = b->head;
  uv_mutex_unlock(&b->m->make_lock);
  for (; op; op = op->next_made)
    ctx_next_make(&op->nx);
}

static void batch_made(uv_work_t *w, int status) {
  mg_batch *b = w->data;
  if (b->m->open == b) b->m->open = NULL;
  mg_op *op = b->head;
  sb_free(b);
  while (op) {
    mg_op *next = op->next_made; /* made_next may free op */
    made_next(op, status);
    op = next;
  }
}

static int start_next(mg_op *op, json_t *head, char *head_text, int from_cache,
                      int own) {
  sb_ctx_manager *m = op->m;
  op->nx = (ctx_next){.id = op->id,
                      .expected = op->version,
                      .kind = op->patch_kind,
                      .patch = op->arg,
                      .head = head,
                      .head_text = head_text,
                      .from_cache = from_cache,
                      .own = own,
                      .snapshot_every = m->snapshot_every,
                      .max_doc_bytes = m->max_doc_bytes,
                      .slack_bytes = op->flags & SB_CTX_WRITE_FAILURE
                                         ? SB_CTX_FAILURE_SLACK
                                         : 0};
  op->next_made = NULL;
  op->step = MG_STEP_MAKE;
  /* Join the job not yet picked up, if there is one. */
  mg_batch *b = m->open;
  if (b && b->count < MAKE_BATCH_MAX) {
    uv_mutex_lock(&m->make_lock);
    int joined = !b->started;
    if (joined) {
      b->tail->next_made = op;
      b->tail = op;
    }
    uv_mutex_unlock(&m->make_lock);
    if (joined) {
      b->count++;
      return 0;
    }
  }
  if (!(b = sb_calloc(1, sizeof *b))) goto fail;
  *b = (mg_batch){.m = m, .head = op, .tail = op, .count = 1};
  b->work.data = b;
  if (uv_queue_work(sb_store_loop(m->store), &b->work, batch_make,
                    batch_made) != 0) {
    sb_free(b);
    goto fail;
  }
  m->open = b;
  return 0;
fail:
  ctx_next_clear(&op->nx);
  return SB_ENOMEM;
}

/* The head is in (`head` is taken): make the next version from it. */
static void update_from_head(mg_op *op, json_t *head) {
  if (start_next(op, head, NULL, 0, 0) != 0)
    op_fail(op, SB_ENOMEM,
            &(sb_error){.code = SB_ENOMEM,
                        .msg = "cannot queue work for an update"});
}

static void project_head(mg_op *op, json_t *doc) {
  sb_error err = {0};
  json_t *proj = NULL, *missing = NULL;
  int rc = sb_ctx_project(json_object_get(doc, "data"), op->arg, &proj,
                          &missing, &err);
  if (rc != 0) {
    json_decref(doc);
    return op_fail(op, rc, &err);
  }
  json_t *out = json_pack("{sOsOsoso}", "id", json_object_get(doc, "id"),
                          "version", json_object_get(doc, "version"), "data",
                          proj, "missing", missing);
  int64_t v = version_of(doc);
  json_decref(doc);
  if (!out)
    return op_fail(op, sb_error_set(&err, SB_ENOMEM, "out of memory"), &err);
  finish(op, 0, NULL, out, v, 0);
  json_decref(out);
}

static void after_read(mg_op *op, json_t *doc) {
  sb_error err = {0};
  switch (op->kind) {
  case MG_GET:
    op->doc = doc;
    return finish(op, 0, NULL, doc, version_of(doc), 0);
  case MG_PROJECT: return project_head(op, doc);
  case MG_UPDATE: return update_from_head(op, doc);
  case MG_DIFF:
    if (op->step == MG_STEP_READ) {
      op->doc = doc;
      op->step = MG_STEP_READ2;
      int rc = read_doc(op, op->version2, &err);
      if (rc != 0) op_fail(op, rc, &err);
      return;
    }
    op->doc2 = doc;
    json_t *patch = NULL;
    int rc = sb_ctx_diff(op->doc, op->doc2, &patch, &err);
    if (rc != 0) return op_fail(op, rc, &err);
    finish(op, 0, NULL, patch, version_of(op->doc2), 0);
    json_decref(patch);
    return;
  default:
    json_decref(doc);
    op_fail(op, sb_error_set(&err, SB_EINVAL, "context: bad operation"), &err);
  }
}

/* ---- the public operations ------------------------------------------- */

int sb_ctx_create_async(sb_ctx_manager *m, const char *tenant,
                        const json_t *input, sb_ctx_cb cb, void *ud,
                        sb_error *err) {
  return sb_ctx_create_ex_async(m, tenant, input, NULL, NULL, cb, ud, err);
}

/* The document a create would store for input (validated, its text in
 * *text, within contexts.max_bytes) in *out, its id in id: 0, or the
 * error with err (nothing out). */
static int new_doc(sb_ctx_manager *m, const char *tenant, const json_t *input,
                   const char *new_id, int64_t now, char id[37], json_t **out,
                   char **text, sb_error *err) {
  *out = NULL;
  *text = NULL;
  if (new_id && !valid_id(new_id))
    return sb_error_set(err, SB_EINVAL, "context: malformed id");
  if (input && !json_is_object(input))
    return sb_error_set(err, SB_EINVAL, "context: expected an object");
  static const char *const server_owned[] = {"id", "version", "timestamp"};
  for (size_t i = 0; i < 3; i++)
    if (json_object_get(input, server_owned[i]))
      return sb_error_set(err, SB_EINVAL,
                          "%s: set by the server, must not be given",
                          server_owned[i]);
  const char *given_tenant =
      json_string_value(json_object_get(input, "tenantId"));
  if (json_object_get(input, "tenantId") &&
      (!given_tenant || strcmp(given_tenant, tenant) != 0))
    return sb_error_set(err, SB_EINVAL,
                        "tenantId: must be omitted (it is the caller's "
                        "tenant)");
  json_t *doc = sb_ctx_fill_defaults(input);
  if (!doc) return sb_error_set(err, SB_ENOMEM, "out of memory");
  char ts[32];
  if (new_id)
    snprintf(id, 37, "%s", new_id);
  else
    sb_uuid_v7(id);
  sb_time_format(now, ts);
  json_object_set_new(doc, "id", json_string(id));
  json_object_set_new(doc, "tenantId", json_string(tenant));
  json_object_set_new(doc, "version", json_integer(1));
  json_object_set_new(doc, "timestamp", json_string(ts));
  json_t *meta = json_object_get(doc, "metadata");
  if (json_is_object(meta) && !json_object_get(meta, "expiresAt")) {
    char exp[32];
    sb_time_format(now + m->default_ttl_ms, exp);
    json_object_set_new(meta, "expiresAt", json_string(exp));
  }
  int rc = sb_ctx_validate(doc, err);
  if (rc == 0 && !(*text = ctx_doc_dump(doc)))
    rc = sb_error_set(err, SB_ENOMEM, "out of memory");
  if (rc == 0) rc = ctx_doc_check_size(*text, m->max_doc_bytes, 0, err);
  if (rc != 0) {
    sb_free(*text);
    *text = NULL;
    json_decref(doc);
    return rc;
  }
  *out = doc;
  return 0;
}

int sb_ctx_check_new(sb_ctx_manager *m, const char *tenant,
                     const json_t *input, sb_error *err) {
  char id[37], *text;
  json_t *doc;
  int rc = new_doc(m, tenant, input, NULL, (int64_t)sb_wall_ms(), id, &doc,
                   &text, err);
  sb_free(text);
  json_decref(doc);
  return rc;
}

int sb_ctx_create_ex_async(sb_ctx_manager *m, const char *tenant,
                           const json_t *input, const char *new_id,
                           const sb_store_extras *extras, sb_ctx_cb cb,
                           void *ud, sb_error *err) {
  int64_t now = (int64_t)sb_wall_ms();
  char id[37], *text;
  json_t *doc;
  int rc = new_doc(m, tenant, input, new_id, now, id, &doc, &text, err);
  if (rc != 0) return rc;
  mg_op *op = op_new(m, MG_CREATE, tenant, id, cb, ud, err);
  if (!op) {
    rc = SB_ENOMEM;
    goto fail;
  }
  sb_store_record r = {.id = id,
                       .workflow_id = (char *)json_string_value(
                           json_object_get(doc, "workflowId")),
                       .session_id = (char *)json_string_value(
                           json_object_get(doc, "sessionId")),
                       .created_ms = now,
                       .expires_ms = ctx_doc_expiry(doc),
                       .doc = text};
  op->extras = extras;
  mg_extras x;
  if (extras_make(op, 1, &x) != 0) {
    rc = sb_error_set(err, SB_ENOMEM, "out of memory");
    goto fail;
  }
  rc = sb_store_create(m->store, tenant, &r, &x.x, on_written, op);
  sb_free(x.events);
  if (rc != 0) {
    rc = refused(rc, err);
    goto fail;
  }
  op->step = MG_STEP_WRITE;
  op->doc = doc;
  op->text = text;
  op->weight = ctx_doc_weight(doc);
  return 0;
fail:
  if (op) {
    op->cb = NULL;
    op_free(op);
  }
  sb_free(text);
  json_decref(doc);
  return rc;
}

int sb_ctx_get_async(sb_ctx_manager *m, const char *tenant, const char *id,
                     int64_t version, sb_ctx_cb cb, void *ud, sb_error *err) {
  if (check_id(id, err)) return SB_ENOENT;
  if (version < 0)
    return sb_error_set(err, SB_EINVAL, "version: must be 1 or more");
  mg_op *op = op_new(m, MG_GET, tenant, id, cb, ud, err);
  if (!op) return SB_ENOMEM;
  op->version = version;
  int rc = read_doc(op, version, err);
  if (rc != 0) op_free(op);
  return rc;
}

int sb_ctx_get_projected_async(sb_ctx_manager *m, const char *tenant,
                               const char *id, const json_t *paths,
                               sb_ctx_cb cb, void *ud, sb_error *err) {
  int rc = sb_ctx_paths_validate(paths, err);
  if (rc != 0) return rc;
  if (check_id(id, err)) return SB_ENOENT;
  mg_op *op = op_new(m, MG_PROJECT, tenant, id, cb, ud, err);
  if (!op) return SB_ENOMEM;
  /* A copy: the caller's array may change before the head comes back. */
  if (!(op->arg = json_deep_copy(paths))) {
    op_free(op);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  rc = read_doc(op, 0, err);
  if (rc != 0) op_free(op);
  return rc;
}

int sb_ctx_update_async(sb_ctx_manager *m, const char *tenant, const char *id,
                        int64_t expected_version, sb_ctx_patch_kind kind,
                        json_t *patch, sb_ctx_cb cb, void *ud, sb_error *err) {
  return sb_ctx_update_ex_async(m, tenant, id, expected_version, kind, patch,
                                NULL, 0, cb, ud, err);
}

int sb_ctx_update_ex_async(sb_ctx_manager *m, const char *tenant,
                           const char *id, int64_t expected_version,
                           sb_ctx_patch_kind kind, json_t *patch,
                           const sb_store_extras *extras, unsigned flags,
                           sb_ctx_cb cb, void *ud, sb_error *err) {
  if (check_id(id, err)) return SB_ENOENT;
  if (expected_version < 1)
    return sb_error_set(err, SB_EINVAL,
                        "expectedVersion: required, the version you read "
                        "(1 or more)");
  if (!patch) return sb_error_set(err, SB_EINVAL, "patch: required");
  mg_op *op = op_new(m, MG_UPDATE, tenant, id, cb, ud, err);
  if (!op) return SB_ENOMEM;
  op->version = expected_version;
  op->extras = extras;
  op->flags = flags;
  op->patch_kind = kind;
  op->arg = json_incref(patch);
  /* The head we saw last is the one the caller read: skip reading it. If
   * the patch does not apply to it, made_next reads the head from the
   * store and tries again, so every failure is the store's head's. */
  json_t *head = head_cached(m, tenant, id, expected_version);
  if (head) {
    /* Held by the cache alone: take it out, so that the update holds it
     * alone and makes the next version in it (make_next). The cache has
     * the new version once it is written. */
    int own = kind == SB_CTX_MERGE_PATCH && ctx_sole(head);
    json_incref(head);
    if (own) head_forget(m, tenant, id);
    if (start_next(op, head, NULL, 1, own) == 0) return 0;
  }
  int rc = read_doc(op, 0, err);
  if (rc != 0) op_free(op);
  return rc;
}

static void on_history(void *ud, sb_store_result *res) {
  mg_op *op = ud;
  if (res->rc != 0) return op_fail(op, res->rc, &res->err);
  sb_error err = {0};
  json_t *list = json_array();
  for (size_t i = 0; list && i < res->versions.len; i++) {
    const sb_store_version *v = &res->versions.items[i];
    char ts[32];
    sb_time_format(v->created_ms, ts);
    json_t *patch = v->patch ? json_loads(v->patch, 0, NULL) : json_null();
    json_array_append_new(
        list, json_pack("{sIssso}", "version", (json_int_t)v->version,
                        "timestamp", ts, "patch", patch ? patch : json_null()));
  }
  if (!list)
    return op_fail(op, sb_error_set(&err, SB_ENOMEM, "out of memory"), &err);
  finish(op, 0, NULL, list, res->version, 0);
  json_decref(list);
}

int sb_ctx_history_async(sb_ctx_manager *m, const char *tenant, const char *id,
                         int64_t before, size_t limit, sb_ctx_cb cb, void *ud,
                         sb_error *err) {
  if (check_id(id, err)) return SB_ENOENT;
  mg_op *op = op_new(m, MG_HISTORY, tenant, id, cb, ud, err);
  if (!op) return SB_ENOMEM;
  op->step = MG_STEP_LIST;
  int rc = sb_store_history(m->store, tenant, id, before, limit ? limit : 50,
                            (int64_t)sb_wall_ms(), on_history, op);
  if (rc != 0) {
    op_free(op);
    return refused(rc, err);
  }
  return 0;
}

int sb_ctx_diff_versions_async(sb_ctx_manager *m, const char *tenant,
                               const char *id, int64_t from, int64_t to,
                               sb_ctx_cb cb, void *ud, sb_error *err) {
  if (from < 1 || to < 1)
    return sb_error_set(err, SB_EINVAL, "versions: must be 1 or more");
  if (check_id(id, err)) return SB_ENOENT;
  mg_op *op = op_new(m, MG_DIFF, tenant, id, cb, ud, err);
  if (!op) return SB_ENOMEM;
  op->version = from;
  op->version2 = to;
  int rc = read_doc(op, from, err);
  if (rc != 0) op_free(op);
  return rc;
}

static void on_swept(void *ud, sb_store_result *res) {
  mg_op *op = ud;
  if (res->rc != 0) return op_fail(op, res->rc, &res->err);
  op->total += (int)res->count;
  /* Bounded batches keep each write short; go on while they come full. */
  if (res->count == SWEEP_BATCH && op->total < SWEEP_MAX) {
    int rc = sb_store_sweep_expired(op->m->store, (int64_t)sb_wall_ms(),
                                    SWEEP_BATCH, on_swept, op);
    if (rc == 0) return;
    sb_error err = {0};
    return op_fail(op, refused(rc, &err), &err);
  }
  finish(op, 0, NULL, NULL, 0, op->total);
}

int sb_ctx_sweep_async(sb_ctx_manager *m, sb_ctx_cb cb, void *ud,
                       sb_error *err) {
  mg_op *op = op_new(m, MG_SWEEP, NULL, NULL, cb, ud, err);
  if (!op) return SB_ENOMEM;
  op->step = MG_STEP_SWEEP;
  int rc = sb_store_sweep_expired(m->store, (int64_t)sb_wall_ms(), SWEEP_BATCH,
                                  on_swept, op);
  if (rc != 0) {
    op_free(op);
    return refused(rc, err);
  }
  return 0;
}
