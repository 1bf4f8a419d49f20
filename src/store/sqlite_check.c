/* sqlite_check.c: what a store's files say at start, before SQLite opens
 * them — whether the last process on the store stopped without closing it,
 * and if so, whether the write-ahead log it left is whole.
 *
 * SQLite keeps a store's recent commits in PATH-wal, and an index of that
 * log in PATH-shm, whose header (WalIndexHdr, twice at offsets 0 and 48,
 * with a checksum) says how many of the log's frames are committed
 * (mxFrame), the log's salts, and the checksum of its last committed
 * frame; beside it (WalCkptInfo, offset 96) how many of those frames a
 * checkpoint already copied into the database file (nBackfill). A clean
 * close checkpoints and deletes both files. After a kill the index is
 * left as it was, and the next connection to open the store throws it
 * away and rebuilds it from whatever log it finds: no log, a log cut
 * short, a log whose frames fail their checksums, and SQLite serves the
 * database as it was before them, without a word: acknowledged contexts
 * are gone, and event sequence numbers are handed out a second time. So
 * the index is read here first, and a log that does not hold what it
 * says was committed is refused.
 *
 * Only when no other connection has the store open: a live process's
 * index and log change under the reader, and are its own to keep whole
 * (it ran this check when it started). Every SQLite connection on the
 * store holds a shared lock on the index's dead-man-switch byte (unix
 * VFS: byte 128 of -shm, the first connection of all truncating the file
 * when it finds it unlocked); F_OFD_GETLK on a file description of our
 * own reports any process's lock there, this one's too. This process's
 * own stores are known without touching the file (the registry below):
 * SQLite's locks are POSIX locks, and closing any descriptor of -shm, the
 * probe's included, would drop the ones this process holds on it.
 *
 * The file format: https://www.sqlite.org/fileformat2.html ("The
 * Write-Ahead Log", "WAL-index Format").
 */
#include "store/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAL_HDR 32
#define FRAME_HDR 24
#define WAL_MAGIC 0x377f0682u /* | 1: checksums of big-endian words */
#define WAL_VERSION 3007000u
#define SHM_HDR 48       /* one copy of WalIndexHdr */
#define SHM_BACKFILL 96  /* WalCkptInfo.nBackfill */
#define SHM_LOCKS 120    /* the lock bytes: 8 locks, then the DMS at 128 */
#define SHM_LOCKS_LEN 9
/* Frames are checked up to this many bytes of log (SQLite's own recovery
 * reads the whole log right after, at the first statement; the server's
 * writer keeps it under 128 MB, WAL_MAX_FRAMES, sqlite_threads.c). Past
 * it, only the log's size and salts are. */
#define VERIFY_MAX_BYTES (512ll << 20)
#define READ_CHUNK (1u << 20)

/* ---- this process's open stores ------------------------------------- */

typedef struct opened {
  struct opened *next;
  char *key;
  int count;
} opened;

static pthread_mutex_t opened_lock = PTHREAD_MUTEX_INITIALIZER;
static opened *opened_list; /* guarded by opened_lock */

/* The store file's canonical name, so that a link or another relative
 * path to it is the same store: realpath of the file, or of its directory
 * when the file is still to be made. */
static char *store_key(const char *db_path) {
  char *real = realpath(db_path, NULL);
  if (real) {
    char *key = sb_strdup(real);
    free(real);
    return key;
  }
  const char *slash = strrchr(db_path, '/');
  char *dir = slash ? sb_strndup(db_path, (size_t)(slash - db_path + 1))
                    : sb_strdup(".");
  char *rdir = dir ? realpath(dir, NULL) : NULL;
  sb_free(dir);
  if (!rdir) return sb_strdup(db_path);
  size_t n = strlen(rdir) + strlen(db_path) + 2;
  char *key = sb_malloc(n);
  if (key) snprintf(key, n, "%s/%s", rdir, slash ? slash + 1 : db_path);
  free(rdir);
  return key;
}

/* Under opened_lock: the entry of key, or NULL. */
static opened *opened_find(const char *key) {
  for (opened *o = opened_list; o; o = o->next)
    if (!strcmp(o->key, key)) return o;
  return NULL;
}

void st_opened_release(char *key) {
  if (!key) return;
  pthread_mutex_lock(&opened_lock);
  for (opened **p = &opened_list; *p; p = &(*p)->next) {
    if (strcmp((*p)->key, key) != 0) continue;
    opened *o = *p;
    if (--o->count == 0) {
      *p = o->next;
      sb_free(o->key);
      sb_free(o);
    }
    break;
  }
  pthread_mutex_unlock(&opened_lock);
  sb_free(key);
}

/* ---- reading the files ---------------------------------------------- */

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 |
         p[0];
}

/* SQLite's WAL checksum over n bytes (a multiple of 8), words read in the
 * log's byte order (big: its magic's low bit), carried on from s. */
static void wal_cksum(int big, const unsigned char *p, size_t n,
                      uint32_t s[2]) {
  uint32_t s1 = s[0], s2 = s[1];
  for (size_t i = 0; i + 8 <= n; i += 8) {
    s1 += (big ? be32(p + i) : le32(p + i)) + s2;
    s2 += (big ? be32(p + i + 4) : le32(p + i + 4)) + s1;
  }
  s[0] = s1;
  s[1] = s2;
}

/* The index header's fields (native byte order, as SQLite maps them). */
typedef struct shm_hdr {
  uint32_t version, change;
  uint8_t is_init, big_end;
  uint32_t page_size;
  uint32_t mx_frame, n_page;
  uint32_t frame_cksum[2];
  unsigned char salt[8]; /* as the log's header has them */
  uint32_t cksum[2];
} shm_hdr;

static uint32_t u32_at(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* 1 if b (the shm's first bytes) holds a header SQLite would trust: both
 * copies alike, initialised, its checksum right (over the first 40 bytes,
 * native words). */
static int shm_hdr_read(const unsigned char *b, size_t n, shm_hdr *h,
                        uint32_t *backfill) {
  if (n < SHM_BACKFILL + 4 || memcmp(b, b + SHM_HDR, SHM_HDR) != 0) return 0;
  h->version = u32_at(b);
  h->change = u32_at(b + 8);
  h->is_init = b[12];
  h->big_end = b[13];
  uint16_t sz;
  memcpy(&sz, b + 14, 2);
  h->page_size = sz == 1 ? 65536u : sz;
  h->mx_frame = u32_at(b + 16);
  h->n_page = u32_at(b + 20);
  h->frame_cksum[0] = u32_at(b + 24);
  h->frame_cksum[1] = u32_at(b + 28);
  memcpy(h->salt, b + 32, 8);
  h->cksum[0] = u32_at(b + 40);
  h->cksum[1] = u32_at(b + 44);
  *backfill = u32_at(b + SHM_BACKFILL);
  if (h->version != WAL_VERSION || h->is_init != 1 || h->page_size < 512 ||
      (h->page_size & (h->page_size - 1)))
    return 0;
  /* native words: this machine's order */
  const uint16_t one = 1;
  int big = *(const unsigned char *)&one == 0;
  uint32_t s[2] = {0, 0};
  wal_cksum(big, b, 40, s);
  return s[0] == h->cksum[0] && s[1] == h->cksum[1];
}

/* Whether any process (this one included) holds a lock on the index's
 * lock bytes: 1 yes, 0 no, -1 cannot tell. */
static int shm_locked(int fd) {
  struct flock fl = {.l_type = F_WRLCK,
                     .l_whence = SEEK_SET,
                     .l_start = SHM_LOCKS,
                     .l_len = SHM_LOCKS_LEN};
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return -1;
  return fl.l_type != F_UNLCK;
}

static int read_full(int fd, unsigned char *buf, size_t n, off_t at) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, buf + done, n - done, at + (off_t)done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* The refusal, naming the log, what is wrong with it and what to do. */
static st_start_state refuse(sb_error *err, const char *db_path,
                             const char *what) {
  sb_error_set(err, SB_EIO,
               "store: %s-wal %s: commits acknowledged before the last stop "
               "would be lost; restore the -wal file, or move %s-shm away "
               "to start from the database file as it is",
               db_path, what, base_name(db_path));
  return ST_START_REFUSED;
}

/* The frames 1..h->mx_frame of the log open at fd (its header in whdr)
 * against their checksums, their salts and the index's checksum of the
 * last one; "" when they hold, else why not (in why). */
static void check_frames(int fd, const unsigned char *whdr, const shm_hdr *h,
                         char *why, size_t cap) {
  int big = be32(whdr) & 1;
  uint32_t s[2] = {0, 0};
  why[0] = '\0';
  wal_cksum(big, whdr, 24, s);
  if (s[0] != be32(whdr + 24) || s[1] != be32(whdr + 28)) {
    snprintf(why, cap, "its header fails its checksum");
    return;
  }
  size_t frame = FRAME_HDR + (size_t)h->page_size;
  if ((long long)h->mx_frame * (long long)frame > VERIFY_MAX_BYTES) return;
  size_t per = READ_CHUNK / frame ? READ_CHUNK / frame : 1;
  unsigned char *buf = sb_malloc(per * frame);
  if (!buf) return; /* cannot tell: SQLite's recovery will read it */
  for (uint32_t k = 1; k <= h->mx_frame;) {
    uint32_t n = h->mx_frame - k + 1 < per ? h->mx_frame - k + 1 : (uint32_t)per;
    if (read_full(fd, buf, n * frame,
                  WAL_HDR + (off_t)(k - 1) * (off_t)frame) != 0) {
      snprintf(why, cap, "frame %u of the %u cannot be read: %s", k,
               h->mx_frame, strerror(errno ? errno : EIO));
      break;
    }
    for (uint32_t i = 0; i < n; i++, k++) {
      const unsigned char *f = buf + (size_t)i * frame;
      wal_cksum(big, f, 8, s);
      wal_cksum(big, f + FRAME_HDR, h->page_size, s);
      if (memcmp(f + 8, whdr + 16, 8) != 0 || be32(f) == 0 ||
          s[0] != be32(f + 16) || s[1] != be32(f + 20)) {
        snprintf(why, cap,
                 "is damaged: frame %u of the %u its index says were "
                 "committed fails its checksum",
                 k, h->mx_frame);
        goto done;
      }
    }
  }
  /* The last committed frame ends a transaction, and is the one the
   * index says it is. */
  if (s[0] != h->frame_cksum[0] || s[1] != h->frame_cksum[1])
    snprintf(why, cap,
             "is not the log its index says was committed (frame %u's "
             "checksum differs from the index's)",
             h->mx_frame);
done:
  sb_free(buf);
}

/* Serial comparison of salt-1 (a big-endian counter SQLite moves by one
 * each time the log starts over): whether the log's is ahead of the
 * index's by a few restarts. */
static int salt_ahead(const unsigned char *wal_salt, const unsigned char *idx) {
  uint32_t d = be32(wal_salt) - be32(idx);
  return d >= 1 && d <= 65536;
}

/* The check proper, the store's -shm open at shm (no lock on it). */
static st_start_state check_log(const char *db_path, int shm, sb_error *err) {
  unsigned char b[SHM_BACKFILL + 4];
  ssize_t n = pread(shm, b, sizeof b, 0);
  shm_hdr h;
  uint32_t backfill = 0;
  /* No header SQLite would trust (a -shm just truncated by a process
   * opening the store, or never written back before the machine went
   * down): it rebuilds the index from the log; nothing to compare. */
  if (n < (ssize_t)sizeof b || !shm_hdr_read(b, (size_t)n, &h, &backfill))
    return ST_START_UNCLEAN;
  /* Nothing committed since the log last started over. */
  if (h.mx_frame == 0) return ST_START_UNCLEAN;

  char wal_path[PATH_MAX + 8], what[320];
  snprintf(wal_path, sizeof wal_path, "%s-wal", db_path);
  const char *shm_name = base_name(db_path);
  int wal = open(wal_path, O_RDONLY | O_CLOEXEC);
  if (wal < 0) {
    /* Every committed frame is in the database file already (a
     * checkpoint copied and synced them): nothing is lost without it. */
    if (errno == ENOENT && backfill >= h.mx_frame) return ST_START_UNCLEAN;
    if (errno != ENOENT) {
      snprintf(what, sizeof what, "cannot be read: %s", strerror(errno));
      return refuse(err, db_path, what);
    }
    snprintf(what, sizeof what,
             "is missing, but its index %s-shm says %u frames were "
             "committed to it",
             shm_name, h.mx_frame);
    return refuse(err, db_path, what);
  }
  st_start_state out = ST_START_UNCLEAN;
  struct stat st;
  unsigned char whdr[WAL_HDR];
  long long need =
      WAL_HDR + (long long)h.mx_frame * (FRAME_HDR + (long long)h.page_size);
  if (fstat(wal, &st) != 0 || st.st_size < WAL_HDR ||
      read_full(wal, whdr, WAL_HDR, 0) != 0 ||
      (be32(whdr) & ~1u) != WAL_MAGIC || be32(whdr + 4) != WAL_VERSION) {
    snprintf(what, sizeof what,
             "is not the log its index %s-shm belongs to (no WAL header; "
             "the index says %u frames were committed to it)",
             shm_name, h.mx_frame);
    out = refuse(err, db_path, what);
  } else if (memcmp(whdr + 16, h.salt, 8) != 0) {
    /* The log started over after the index was last written back: a
     * machine that went down keeps the log (synced at every commit) but
     * maybe not the index (SQLite never syncs it). SQLite rebuilds the
     * index from this log, which holds everything committed to it. */
    if (salt_ahead(whdr + 16, h.salt)) {
      out = ST_START_UNCLEAN;
    } else {
      snprintf(what, sizeof what,
               "is not the log its index %s-shm belongs to (its salts "
               "differ; the index says %u frames were committed to it)",
               shm_name, h.mx_frame);
      out = refuse(err, db_path, what);
    }
  } else if (be32(whdr + 8) != h.page_size) {
    snprintf(what, sizeof what,
             "is not the log its index %s-shm belongs to (pages of %u "
             "bytes, the index's of %u)",
             shm_name, be32(whdr + 8), h.page_size);
    out = refuse(err, db_path, what);
  } else if (st.st_size < need) {
    snprintf(what, sizeof what,
             "is shorter (%lld bytes) than the %u frames its index %s-shm "
             "says were committed (%lld bytes)",
             (long long)st.st_size, h.mx_frame, shm_name, need);
    out = refuse(err, db_path, what);
  } else {
    char why[200];
    check_frames(wal, whdr, &h, why, sizeof why);
    if (why[0]) {
      snprintf(what, sizeof what, "%s (index %s-shm)", why, shm_name);
      out = refuse(err, db_path, what);
    }
  }
  close(wal);
  return out;
}

st_start_state st_check_start(const char *db_path, char **opened_key,
                              sb_error *err) {
  *opened_key = NULL;
  char *key = store_key(db_path);
  if (!key) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return ST_START_REFUSED;
  }
  /* Held until the probe's descriptor is closed: a store of this process
   * opening the same file meanwhile waits, then finds it here. */
  pthread_mutex_lock(&opened_lock);
  opened *o = opened_find(key);
  if (o) {
    o->count++;
    pthread_mutex_unlock(&opened_lock);
    *opened_key = key;
    return ST_START_IN_USE;
  }
  o = sb_calloc(1, sizeof *o);
  if (!o) {
    pthread_mutex_unlock(&opened_lock);
    sb_free(key);
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return ST_START_REFUSED;
  }
  o->key = sb_strdup(key);
  if (!o->key) {
    sb_free(o);
    pthread_mutex_unlock(&opened_lock);
    sb_free(key);
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return ST_START_REFUSED;
  }
  o->count = 1;
  o->next = opened_list;
  opened_list = o;
  *opened_key = key;

  st_start_state out = ST_START_CLEAN;
  char path[PATH_MAX + 8];
  struct stat st;
  snprintf(path, sizeof path, "%s-shm", db_path);
  int shm = open(path, O_RDONLY | O_CLOEXEC);
  if (shm < 0) {
    /* No index: a clean stop (or a new store). A log without one (the
     * index moved away, the operator's choice) is SQLite's to recover,
     * but still what an unclean stop leaves. */
    snprintf(path, sizeof path, "%s-wal", db_path);
    if (stat(db_path, &st) == 0 && stat(path, &st) == 0 && st.st_size > 0)
      out = ST_START_UNCLEAN;
  } else {
    int locked = shm_locked(shm);
    /* Another connection lives (or we cannot tell): not ours to judge. */
    if (locked != 0) {
      out = ST_START_IN_USE;
    } else if (stat(db_path, &st) != 0) {
      out = ST_START_CLEAN; /* no store file: SQLite makes a new one */
    } else {
      out = check_log(db_path, shm, err);
      /* A process that opened the store since the probe rebuilt the
       * index (and may have moved the log on): its start judged it. */
      if (out == ST_START_REFUSED && shm_locked(shm) != 0) {
        out = ST_START_IN_USE;
        memset(err, 0, sizeof *err);
      }
    }
    close(shm);
  }
  pthread_mutex_unlock(&opened_lock);
  return out;
}
