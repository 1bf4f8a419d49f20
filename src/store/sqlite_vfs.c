/* sqlite_vfs.c: the writer's VFS — SQLite's own, with the WAL's appends
 * gathered into one write.
 *
 * At each commit SQLite appends every dirty page to the WAL as a frame,
 * with two writes per frame (its 24-byte header, then the page), and then
 * syncs: a group commit of 64 context updates is some 140 frames, so 280
 * system calls before the one that matters. Here the writes that extend
 * the WAL contiguously are copied into a buffer instead, and go to the
 * file as one write before any other operation on it — the sync, a read,
 * a truncation, a lock, its size, its close. SQLite sees every byte in
 * the file whenever it looks, in the order it wrote them.
 *
 * Readers of other connections learn of new frames from the WAL index,
 * which SQLite updates after the commit's sync: that is why this VFS is
 * only for connections in synchronous=FULL (the store's), where every
 * commit syncs the WAL. Files other than WALs are the default VFS's own,
 * untouched.
 *
 * A WAL also answers SQLITE_FCNTL_HAS_MOVED, which the default VFS
 * answers "no" for every file but the database (it tracks only the
 * database's inode): whether the path now names another file than the
 * one open, or none (deleted). The writer asks before each commit.
 */
#include "store/store_internal.h"

#include <string.h>
#include <sys/stat.h>

/* Beyond this, the buffer is written out at once (a commit bigger than
 * that pays one more write per this many bytes). */
#define GATHER_MAX (8u << 20)

typedef struct wal_file {
  sqlite3_file base;
  sqlite3_file *real; /* the default VFS's file, right after this struct */
  unsigned char *buf;
  size_t len, cap;
  sqlite3_int64 at; /* file offset of buf[0] */
  const char *name; /* SQLite's; valid until xClose */
  dev_t dev;        /* the file opened (stat of name at open) */
  ino_t ino;
  int known;        /* dev and ino were read */
} wal_file;

static sqlite3_vfs gather_vfs;
static sqlite3_vfs *default_vfs;

#define REAL(f) (((wal_file *)(f))->real)

/* The default VFS writes at most 128 KiB - 1 per call (it masks the
 * length): the gathered bytes go in pieces of this size. */
#define WRITE_MAX 0x1f000

/* Write out what is gathered. */
static int flush(wal_file *w) {
  int rc = SQLITE_OK;
  for (size_t done = 0; rc == SQLITE_OK && done < w->len;) {
    size_t n = w->len - done < WRITE_MAX ? w->len - done : WRITE_MAX;
    rc = w->real->pMethods->xWrite(w->real, w->buf + done, (int)n,
                                   w->at + (sqlite3_int64)done);
    done += n;
  }
  w->len = 0;
  return rc;
}

static int w_write(sqlite3_file *f, const void *data, int n, sqlite3_int64 off) {
  wal_file *w = (wal_file *)f;
  size_t size = (size_t)n;
  if (w->len && off != w->at + (sqlite3_int64)w->len) {
    int rc = flush(w); /* not an append: what came before goes first */
    if (rc != SQLITE_OK) return rc;
  }
  if (w->len + size > GATHER_MAX) {
    int rc = flush(w);
    if (rc != SQLITE_OK) return rc;
  }
  if (w->len + size > w->cap) {
    size_t cap = w->cap ? w->cap : 64u << 10;
    while (cap < w->len + size)
      cap *= 2;
    unsigned char *grown = sqlite3_realloc64(w->buf, cap);
    if (!grown) {
      int rc = flush(w);
      return rc != SQLITE_OK ? rc
                             : w->real->pMethods->xWrite(w->real, data, n, off);
    }
    w->buf = grown;
    w->cap = cap;
  }
  if (!w->len) w->at = off;
  memcpy(w->buf + w->len, data, size);
  w->len += size;
  return SQLITE_OK;
}

static int w_close(sqlite3_file *f) {
  wal_file *w = (wal_file *)f;
  int rc = flush(w);
  int closed = w->real->pMethods->xClose(w->real);
  sqlite3_free(w->buf);
  w->buf = NULL;
  return rc != SQLITE_OK ? rc : closed;
}

/* Every other method: the gathered writes first, then the real one. */
#define FLUSH_OR_RETURN(f)                                                     \
  do {                                                                         \
    int flushed_ = flush((wal_file *)(f));                                     \
    if (flushed_ != SQLITE_OK) return flushed_;                                \
  } while (0)

static int w_read(sqlite3_file *f, void *out, int n, sqlite3_int64 off) {
  FLUSH_OR_RETURN(f);
  return REAL(f)->pMethods->xRead(REAL(f), out, n, off);
}
static int w_truncate(sqlite3_file *f, sqlite3_int64 size) {
  FLUSH_OR_RETURN(f);
  return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int w_sync(sqlite3_file *f, int flags) {
  FLUSH_OR_RETURN(f);
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int w_file_size(sqlite3_file *f, sqlite3_int64 *size) {
  FLUSH_OR_RETURN(f);
  return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int w_lock(sqlite3_file *f, int level) {
  FLUSH_OR_RETURN(f);
  return REAL(f)->pMethods->xLock(REAL(f), level);
}
static int w_unlock(sqlite3_file *f, int level) {
  FLUSH_OR_RETURN(f);
  return REAL(f)->pMethods->xUnlock(REAL(f), level);
}
static int w_check_lock(sqlite3_file *f, int *out) {
  FLUSH_OR_RETURN(f);
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
/* SQLITE_FCNTL_HAS_MOVED: one stat() of the path against the file open. */
static int w_has_moved(wal_file *w, int *out) {
  struct stat st;
  *out = w->known && (stat(w->name, &st) != 0 || st.st_dev != w->dev ||
                      st.st_ino != w->ino);
  return SQLITE_OK;
}

static int w_file_control(sqlite3_file *f, int op, void *arg) {
  if (op == SQLITE_FCNTL_HAS_MOVED) return w_has_moved((wal_file *)f, arg);
  FLUSH_OR_RETURN(f);
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int w_sector_size(sqlite3_file *f) {
  return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int w_device(sqlite3_file *f) {
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

/* Version 1: no shared memory or memory mapping on a WAL (the WAL index
 * lives on the database file's methods, which are the default VFS's). */
static const sqlite3_io_methods wal_methods = {
    .iVersion = 1,
    .xClose = w_close,
    .xRead = w_read,
    .xWrite = w_write,
    .xTruncate = w_truncate,
    .xSync = w_sync,
    .xFileSize = w_file_size,
    .xLock = w_lock,
    .xUnlock = w_unlock,
    .xCheckReservedLock = w_check_lock,
    .xFileControl = w_file_control,
    .xSectorSize = w_sector_size,
    .xDeviceCharacteristics = w_device,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
                  int flags, int *out_flags) {
  if (!(flags & SQLITE_OPEN_WAL))
    return default_vfs->xOpen(default_vfs, name, f, flags, out_flags);
  wal_file *w = (wal_file *)f;
  memset(w, 0, sizeof *w);
  w->real = (sqlite3_file *)(w + 1);
  int rc = default_vfs->xOpen(default_vfs, name, w->real, flags, out_flags);
  /* Ours keeps pMethods NULL on failure (SQLite then never calls our
   * xClose), so a real file half-opened is closed here; a file opened is
   * closed through ours. */
  if (rc != SQLITE_OK) {
    if (w->real->pMethods) w->real->pMethods->xClose(w->real);
    return rc;
  }
  if (w->real->pMethods) w->base.pMethods = &wal_methods;
  struct stat st;
  if (name && stat(name, &st) == 0) {
    w->name = name;
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    w->known = 1;
  }
  return rc;
}

/* The rest is the default VFS's, called with itself. */
static int v_delete(sqlite3_vfs *v, const char *name, int sync_dir) {
  return default_vfs->xDelete(default_vfs, name, sync_dir);
}
static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
  return default_vfs->xAccess(default_vfs, name, flags, out);
}
static int v_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out) {
  return default_vfs->xFullPathname(default_vfs, name, n, out);
}
static void *v_dl_open(sqlite3_vfs *v, const char *name) {
  return default_vfs->xDlOpen(default_vfs, name);
}
static void v_dl_error(sqlite3_vfs *v, int n, char *out) {
  default_vfs->xDlError(default_vfs, n, out);
}
static void (*v_dl_sym(sqlite3_vfs *v, void *lib, const char *sym))(void) {
  return default_vfs->xDlSym(default_vfs, lib, sym);
}
static void v_dl_close(sqlite3_vfs *v, void *lib) {
  default_vfs->xDlClose(default_vfs, lib);
}
static int v_randomness(sqlite3_vfs *v, int n, char *out) {
  return default_vfs->xRandomness(default_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us) {
  return default_vfs->xSleep(default_vfs, us);
}
static int v_current_time(sqlite3_vfs *v, double *out) {
  return default_vfs->xCurrentTime(default_vfs, out);
}
static int v_last_error(sqlite3_vfs *v, int n, char *out) {
  return default_vfs->xGetLastError(default_vfs, n, out);
}
static int v_current_time64(sqlite3_vfs *v, sqlite3_int64 *out) {
  return default_vfs->xCurrentTimeInt64(default_vfs, out);
}

static uv_once_t register_once = UV_ONCE_INIT;
static int registered = SQLITE_ERROR;

static void register_vfs(void) {
  default_vfs = sqlite3_vfs_find(NULL);
  if (!default_vfs || default_vfs->iVersion < 2) return;
  gather_vfs = (sqlite3_vfs){
      .iVersion = 2,
      .szOsFile = (int)sizeof(wal_file) + default_vfs->szOsFile,
      .mxPathname = default_vfs->mxPathname,
      .zName = ST_GATHER_VFS,
      .xOpen = v_open,
      .xDelete = v_delete,
      .xAccess = v_access,
      .xFullPathname = v_full_pathname,
      .xDlOpen = v_dl_open,
      .xDlError = v_dl_error,
      .xDlSym = v_dl_sym,
      .xDlClose = v_dl_close,
      .xRandomness = v_randomness,
      .xSleep = v_sleep,
      .xCurrentTime = v_current_time,
      .xGetLastError = v_last_error,
      .xCurrentTimeInt64 = v_current_time64,
  };
  registered = sqlite3_vfs_register(&gather_vfs, 0);
}

const char *st_gather_vfs(void) {
  uv_once(&register_once, register_vfs);
  return registered == SQLITE_OK ? ST_GATHER_VFS : NULL;
}
