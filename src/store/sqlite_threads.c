/* sqlite_threads.c: the SQLite backend's threads — one writer with group
 * commit, and a small pool of readers.
 *
 * The loop thread only queues requests. The writer sleeps until writes are
 * queued, takes every write queued at that moment, and commits them as one
 * transaction (st_conn_write_batch: one COMMIT, one fsync); while it commits,
 * new writes pile up for the next batch, so the batch grows with the load and a
 * lone write still commits at once. Only after the commit are the batch's
 * requests handed back (st_complete), so nothing is acknowledged before it is
 * durable. Readers each own a WAL connection and take one read at a time; a
 * read queued after a write's callback begins after that write's commit and so
 * sees it.
 *
 * A closed set of callers (connections each waiting for its answer before
 * sending the next write, or a workflow's runs) would otherwise settle
 * into two halves taking turns: one half commits while the other, just
 * acknowledged, makes its next writes, so each fsync carries half of them.
 * So after a commit the writer expects as many writes as it has queued
 * plus the ones it just acknowledged, and lingers for them, at most as
 * long as that commit took (LINGER_MAX_NS at most): when fsyncs are slower
 * than making the next writes, each commit carries them all; when they are
 * faster, the wait costs at most one commit's time. A lone caller never
 * waits (its next write is the one expected). The batch's transaction is
 * open while it lingers: the writes that come meanwhile run as they come
 * (writer_more), so the writer's SQL overlaps the making of the writes
 * still expected, and only the COMMIT is left when the last one is in.
 *
 * Checkpoints (copying the WAL's pages back into the database file, and
 * its fsync) are not the writer's: SQLite's automatic checkpoint would run
 * inside a COMMIT and hold back that batch's acknowledgements and the next
 * batch. The writer only counts the WAL's frames after each commit and
 * wakes a checkpointer thread, with its own connection, every
 * CHECKPOINT_FRAMES; it copies pages while the writer goes on. Such
 * checkpoints can never let the WAL start over while writes keep coming,
 * so past WAL_MAX_FRAMES the writer checkpoints itself between batches,
 * after the acknowledgements: only the frames the checkpointer has not
 * copied yet, and the WAL then restarts at the next write.
 *
 * One lock guards the queues, the checkpoint request and the stop flag;
 * each kind of thread waits on its own condition variable.
 */
#include "store/store_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_READERS 2
#define MAX_READERS 16
/* WAL frames (pages) between background checkpoints, and the size at
 * which the writer checkpoints itself so the WAL restarts (128 MB at 4 KB
 * pages). SQLite's automatic checkpoint runs every 1000 frames; a hot page
 * (a context updated again and again, its history's index leaf) then goes
 * to the database file once per 1000 frames. Every 4000, the same load
 * made 40% fewer writes to the file: at a million contexts those are
 * random writes, and their fsync competes with the commits'. */
#define CHECKPOINT_FRAMES 4000
#define LINGER_MAX_NS 5000000u
#define WAL_MAX_FRAMES 32000

typedef struct st_queue {
  st_req *head, *tail;
} st_queue;

typedef struct sqlite_store sqlite_store;

typedef struct st_reader {
  sqlite_store *s;
  st_conn *conn;
  uv_thread_t thread;
  int started;
} st_reader;

struct sqlite_store {
  sb_store base;
  uv_mutex_t lock;
  uv_cond_t writes_cond, reads_cond;
  st_queue writes, reads; /* guarded by lock */
  int nwrites;            /* guarded by lock: writes queued */
  int expect;             /* guarded by lock: writes the writer lingers for */
  int stopping;           /* guarded by lock */
  int hold;               /* guarded by lock (test hook) */
  uv_cond_t checkpoint_cond;
  int checkpoint_wanted; /* guarded by lock */
  st_conn *writer_conn, *checkpoint_conn;
  uv_thread_t writer, checkpointer;
  int writer_started, checkpointer_started;
  int wal_frames;      /* writer only: the WAL's size after its last commit */
  int next_checkpoint; /* writer only: frames at which to wake it next */
  st_reader readers[MAX_READERS];
  int nreaders;
  int sync_inited;
  st_drivers drivers; /* slot -1: this store drives no runs */
  char *opened_key;   /* this process has the file open (sqlite_check.c) */
};

static void queue_push(st_queue *q, st_req *r) {
  r->next = NULL;
  if (q->tail)
    q->tail->next = r;
  else
    q->head = r;
  q->tail = r;
}

/* ---- the writer ------------------------------------------------------ */

/* CPU time of the calling thread, microseconds (for the stats). */
static uint64_t thread_cpu_us(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* SQLite calls this after each commit of the writer's connection (in
 * place of its automatic checkpoint): only note the WAL's size. */
static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int frames) {
  ((sqlite_store *)ud)->wal_frames = frames;
  return SQLITE_OK;
}

/* Between batches: wake the checkpointer, or checkpoint here when the WAL
 * must start over. */
static void writer_checkpoint(sqlite_store *s) {
  int frames = s->wal_frames;
  if (frames < s->next_checkpoint - CHECKPOINT_FRAMES)
    s->next_checkpoint = CHECKPOINT_FRAMES; /* the WAL started over */
  if (frames >= WAL_MAX_FRAMES) {
    sqlite3_wal_checkpoint_v2(st_conn_db(s->writer_conn), NULL,
                              SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    s->next_checkpoint = CHECKPOINT_FRAMES;
  } else if (frames >= s->next_checkpoint) {
    uv_mutex_lock(&s->lock);
    s->checkpoint_wanted = 1;
    uv_cond_signal(&s->checkpoint_cond);
    uv_mutex_unlock(&s->lock);
    s->next_checkpoint = frames + CHECKPOINT_FRAMES;
  }
}

static void checkpointer_main(void *arg) {
  sb_thread_background();
  sqlite_store *s = arg;
  for (;;) {
    uv_mutex_lock(&s->lock);
    while (!s->stopping && !s->checkpoint_wanted)
      uv_cond_wait(&s->checkpoint_cond, &s->lock);
    int run = s->checkpoint_wanted && !s->stopping;
    s->checkpoint_wanted = 0;
    uv_mutex_unlock(&s->lock);
    if (!run) break;
    /* PASSIVE: never waits for the writer or readers, copies what it may */
    sqlite3_wal_checkpoint_v2(st_conn_db(s->checkpoint_conn), NULL,
                              SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  }
}

/* Take every write queued (under s->lock): the list, its length in *n. */
static st_req *take_writes(sqlite_store *s, int *n) {
  st_req *list = s->writes.head;
  s->writes.head = s->writes.tail = NULL;
  *n = s->nwrites;
  s->nwrites = 0;
  s->expect = *n < s->expect ? s->expect - *n : 0;
  return list;
}

/* The batch being written, while the writer lingers for its callers'
 * next writes (see the top of the file). */
typedef struct st_linger {
  sqlite_store *s;
  uint64_t until; /* hrtime the writer lingers to, at most */
  int n;          /* writes in the batch so far */
} st_linger;

/* st_more_fn: the writes queued since the batch's last ones ran, waiting
 * for them while more are expected; NULL once none are (commit). */
static st_req *writer_more(void *ud) {
  st_linger *l = ud;
  sqlite_store *s = l->s;
  st_req *more = NULL;
  uv_mutex_lock(&s->lock);
  while (!s->stopping && !s->hold && s->expect > 0 && !s->writes.head) {
    uint64_t now = uv_hrtime();
    if (now >= l->until ||
        uv_cond_timedwait(&s->writes_cond, &s->lock, l->until - now) != 0)
      break;
  }
  if (!s->stopping && !s->hold && s->expect > 0 && s->writes.head) {
    int n;
    more = take_writes(s, &n);
    l->n += n;
  }
  uv_mutex_unlock(&s->lock);
  return more;
}

/* After a batch: the first time its commit found the file moved, say so
 * loudly (once: every write from now on fails with the same message) and
 * mark the store lost for readiness. */
static void writer_check_lost(sqlite_store *s) {
  const char *why = st_conn_lost(s->writer_conn);
  if (why && !atomic_exchange(&s->base.lost, 1))
    SB_ERROR("store", "%s; every write fails from now on, and /readyz "
                      "answers 503",
             why);
}

static void writer_main(void *arg) {
  sb_thread_background();
  sqlite_store *s = arg;
  uint64_t linger_ns = 0; /* how long the last commit took */
  for (;;) {
    uv_mutex_lock(&s->lock);
    while (!s->stopping && (!s->writes.head || s->hold))
      uv_cond_wait(&s->writes_cond, &s->lock);
    st_linger l = {.s = s, .until = uv_hrtime() + linger_ns};
    st_req *batch = take_writes(s, &l.n);
    uv_mutex_unlock(&s->lock);
    if (!batch) break; /* stopping, and nothing left to write */
    uint64_t t0 = uv_hrtime();
    /* The writes expected join the transaction as they come (writer_more),
     * until they are all in or the linger is over. */
    if (st_conn_write_batch(s->writer_conn, batch, writer_more, &l)) {
      atomic_fetch_add(&s->base.batches, 1);
      atomic_fetch_add(&s->base.writes, (uint64_t)l.n);
    }
    linger_ns = uv_hrtime() - t0;
    if (linger_ns > LINGER_MAX_NS) linger_ns = LINGER_MAX_NS;
    atomic_store(&s->base.writer_cpu_us, thread_cpu_us());
    writer_check_lost(s);
    /* Their callers' next writes, and the ones already waiting. */
    uv_mutex_lock(&s->lock);
    s->expect = s->nwrites + l.n;
    uv_mutex_unlock(&s->lock);
    st_complete_list(&s->base, batch); /* one wake for the batch */
    writer_checkpoint(s);
  }
}

/* ---- the readers ----------------------------------------------------- */

static void reader_main(void *arg) {
  sb_thread_background();
  st_reader *rd = arg;
  sqlite_store *s = rd->s;
  for (;;) {
    uv_mutex_lock(&s->lock);
    while (!s->stopping && !s->reads.head)
      uv_cond_wait(&s->reads_cond, &s->lock);
    st_req *r = s->reads.head;
    if (r) {
      s->reads.head = r->next;
      if (!s->reads.head) s->reads.tail = NULL;
    }
    uv_mutex_unlock(&s->lock);
    if (!r) break; /* stopping, and nothing left to read */
    st_conn_read(rd->conn, r);
    st_complete(&s->base, r);
  }
}

/* ---- the backend ----------------------------------------------------- */

static void sq_submit(sb_store *base, st_req *r) {
  sqlite_store *s = (sqlite_store *)base;
  int writes = st_op_writes(r->op);
  uv_mutex_lock(&s->lock);
  queue_push(writes ? &s->writes : &s->reads, r);
  /* The writer waits for the first write, or lingers for `expect`. */
  if (!writes)
    uv_cond_signal(&s->reads_cond);
  else if (++s->nwrites == 1 || s->nwrites >= s->expect)
    uv_cond_signal(&s->writes_cond);
  uv_mutex_unlock(&s->lock);
}

static int sq_hold_writes(sb_store *base, int hold) {
  sqlite_store *s = (sqlite_store *)base;
  uv_mutex_lock(&s->lock);
  int queued = s->nwrites;
  if (hold >= 0) {
    s->hold = hold;
    uv_cond_signal(&s->writes_cond);
  }
  uv_mutex_unlock(&s->lock);
  return queued;
}

static void sq_stop(sb_store *base) {
  sqlite_store *s = (sqlite_store *)base;
  if (!s->sync_inited) return;
  uv_mutex_lock(&s->lock);
  s->stopping = 1;
  s->hold = 0;
  /* Reads not started are not run: nobody waits for their answer any
   * more, and a backlog of them (a flood of lists, each copying a large
   * row) held the stop, and SIGTERM with it, for as long as it took. The
   * writes queued are acknowledged work and still commit. */
  st_req *reads = s->reads.head;
  s->reads.head = s->reads.tail = NULL;
  uv_cond_broadcast(&s->writes_cond);
  uv_cond_broadcast(&s->reads_cond);
  uv_cond_broadcast(&s->checkpoint_cond);
  uv_mutex_unlock(&s->lock);
  for (st_req *r = reads; r; r = r->next)
    r->res.rc = sb_error_set(&r->res.err, SB_ECANCELED,
                             "the store is stopping: the read was "
                             "cancelled before it ran");
  st_complete_list(base, reads);
  if (s->writer_started) uv_thread_join(&s->writer);
  s->writer_started = 0;
  if (s->checkpointer_started) uv_thread_join(&s->checkpointer);
  s->checkpointer_started = 0;
  for (int i = 0; i < s->nreaders; i++) {
    if (s->readers[i].started) uv_thread_join(&s->readers[i].thread);
    s->readers[i].started = 0;
  }
}

static void sq_destroy(sb_store *base) {
  sqlite_store *s = (sqlite_store *)base;
  sb_store_agent_rows_clear(&base->agents_at_open);
  for (int i = 0; i < s->nreaders; i++)
    st_conn_close(s->readers[i].conn);
  st_conn_close(s->checkpoint_conn);
  st_conn_close(s->writer_conn);
  st_drivers_close(&s->drivers); /* after the last write */
  st_opened_release(s->opened_key); /* after the last connection */
  if (s->sync_inited) {
    uv_cond_destroy(&s->checkpoint_cond);
    uv_cond_destroy(&s->writes_cond);
    uv_cond_destroy(&s->reads_cond);
    uv_mutex_destroy(&s->lock);
  }
  sb_free(s);
}

static int sq_schema_version(sb_store *base) {
  return st_conn_schema_version();
}

static const sb_store_ops sqlite_ops = {
    .name = "sqlite",
    .submit = sq_submit,
    .hold_writes = sq_hold_writes,
    .stop = sq_stop,
    .destroy = sq_destroy,
    .schema_version = sq_schema_version,
};

static int init_sync(sqlite_store *s, sb_error *err) {
  if (uv_mutex_init(&s->lock) != 0) goto fail;
  if (uv_cond_init(&s->writes_cond) != 0) {
    uv_mutex_destroy(&s->lock);
    goto fail;
  }
  if (uv_cond_init(&s->reads_cond) != 0) {
    uv_cond_destroy(&s->writes_cond);
    uv_mutex_destroy(&s->lock);
    goto fail;
  }
  if (uv_cond_init(&s->checkpoint_cond) != 0) {
    uv_cond_destroy(&s->reads_cond);
    uv_cond_destroy(&s->writes_cond);
    uv_mutex_destroy(&s->lock);
    goto fail;
  }
  s->sync_inited = 1;
  return 0;
fail:
  return sb_error_set(err, SB_ENOMEM, "store: cannot create a lock");
}

sb_store *sb_store_open_sqlite(const sb_store_options *o, sb_error *err) {
  if (!sqlite3_threadsafe()) {
    sb_error_set(err, SB_EINVAL,
                 "store: this SQLite is built without "
                 "thread support");
    return NULL;
  }
  struct stat sb;
  if (o->must_exist && stat(o->path, &sb) != 0) {
    sb_error_set(err, errno == ENOENT ? SB_ENOENT : SB_EIO,
                 "store: %s: %s (no store there to read)", o->path,
                 strerror(errno));
    return NULL;
  }
  /* A device, a pipe or a directory is no store; SQLite would make a
   * -journal beside it (/dev/zero-journal) before saying "disk I/O
   * error". */
  if (stat(o->path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
    sb_error_set(err, SB_EINVAL, "store: %s: not a regular file", o->path);
    return NULL;
  }
  sqlite_store *s = sb_calloc(1, sizeof *s);
  if (!s) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  s->base.ops = &sqlite_ops;
  s->drivers.lock_fd = s->drivers.probe_fd = s->drivers.slot = -1;
  if (init_sync(s, err) != 0) goto fail;
  /* The writer's connection first: it creates the file and migrates, so
   * the readers find the schema. */
  if (st_drivers_check_store(o->path, err) != 0) goto fail;
  /* Before SQLite opens it (its first connection rebuilds the log's index
   * from whatever log it finds): a log that lost commits is refused, and
   * an unclean stop has the file checked before it is served. */
  st_start_state start = st_check_start(o->path, &s->opened_key, err);
  if (start == ST_START_REFUSED) goto fail;
  int check = o->check == SB_STORE_CHECK_ALWAYS ||
              (o->check == SB_STORE_CHECK_AUTO && start == ST_START_UNCLEAN);
  s->writer_conn = st_conn_open(o->path, o->busy_timeout_ms, 1, check, err);
  if (!s->writer_conn) goto fail;

  if (o->drives_runs) {
    if (st_drivers_open(&s->drivers, o->path, err) != 0) goto fail;
    st_conn_set_drivers(s->writer_conn, &s->drivers);
  }
  /* The agents registered through the API, for the server to apply
   * before it serves: read here, before any thread of the store runs. */
  if (st_read_agents(s->writer_conn, &s->base.agents_at_open, err) != 0)
    goto fail;
  /* Checkpoints are the checkpointer's (replaces the automatic one). */
  sqlite3_wal_hook(st_conn_db(s->writer_conn), on_wal_commit, s);
  s->next_checkpoint = CHECKPOINT_FRAMES;
  s->checkpoint_conn = st_conn_open(o->path, o->busy_timeout_ms, 0, 0, err);
  if (!s->checkpoint_conn) goto fail;
  int want = o->readers > 0 ? o->readers : DEFAULT_READERS;
  if (want > MAX_READERS) want = MAX_READERS;
  for (; s->nreaders < want; s->nreaders++) {
    st_reader *rd = &s->readers[s->nreaders];
    rd->s = s;
    if (!(rd->conn = st_conn_open(o->path, o->busy_timeout_ms, 0, 0, err)))
      goto fail;
    /* Its reads say which runs another living process drives. */
    if (s->drivers.slot >= 0) st_conn_set_drivers(rd->conn, &s->drivers);
  }
  if (st_base_init(&s->base, o, err) != 0) goto fail;
  if (uv_thread_create(&s->writer, writer_main, s) != 0) goto fail_threads;
  s->writer_started = 1;
  if (uv_thread_create(&s->checkpointer, checkpointer_main, s) != 0)
    goto fail_threads;
  s->checkpointer_started = 1;
  for (int i = 0; i < s->nreaders; i++) {
    if (uv_thread_create(&s->readers[i].thread, reader_main, &s->readers[i]))
      goto fail_threads;
    s->readers[i].started = 1;
  }
  return &s->base;
fail_threads:
  sb_error_set(err, SB_ENOMEM, "store: cannot start its threads");
  sq_stop(&s->base);
  st_base_fail(&s->base);
fail:
  sq_destroy(&s->base);
  return NULL;
}
