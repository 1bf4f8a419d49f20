/* sqlite_drivers.c: which processes on a SQLite store drive workflow runs,
 * and whether each is still alive.
 *
 * A process that drives runs (a server, `switchboard run`) holds a write
 * lock on one byte of a file beside the store (PATH-drivers): byte k is
 * driver slot k, taken as the lowest one free when the store opens and
 * held until it closes. Each run row names the slot of the process that
 * drives it. The lock is an open file description lock (F_OFD_SETLK): the
 * kernel drops it the moment the process ends, however it ends, so a run
 * whose slot is not locked has nobody driving it and may be taken over at
 * once, with no heartbeat to wait out. The file is opened close-on-exec:
 * the agents switchboard starts never inherit the lock. It is created with
 * the store's mode, so any user who may write the store may take a slot.
 *
 * Probing a slot goes through a second open of the file: an OFD lock
 * conflicts with every other open file description, this process's own
 * included, so the probe sees this process's slot as taken too.
 */
#include "store/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int lock_byte(int fd, int cmd, short type, int slot, struct flock *fl) {
  memset(fl, 0, sizeof *fl);
  fl->l_type = type;
  fl->l_whence = SEEK_SET;
  fl->l_start = slot;
  fl->l_len = 1;
  return fcntl(fd, cmd, fl);
}

/* Beside the file itself: processes naming the store through a symbolic
 * link, or by other relative paths, share one drivers file. */
static int drivers_path(const char *db_path, char *path, size_t cap) {
  char *real = realpath(db_path, NULL);
  int n = snprintf(path, cap, "%s-drivers", real ? real : db_path);
  free(real);
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int st_drivers_check_store(const char *db_path, sb_error *err) {
  char path[4096];
  struct stat st;
  if (stat(db_path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 0)
    return 0;
  /* The drivers file is made only once the schema is committed, and by
   * then the file holds a page (the switch to WAL writes its header):
   * beside an empty file it says a store was here, truncated since. A
   * -wal beside it does not make it whole: SQLite would drop a WAL whose
   * database is gone, and with it what it held. */
  if (drivers_path(db_path, path, sizeof path) != 0 || stat(path, &st) != 0)
    return 0;
  return sb_error_set(err, SB_EINVAL,
                      "store: %s is empty, but %s beside it says it held a "
                      "store: restore the file from a backup (keep its -wal "
                      "with it), or remove %s to open it as it is",
                      db_path, path, path);
}

int st_drivers_open(st_drivers *d, const char *db_path, sb_error *err) {
  d->lock_fd = d->probe_fd = d->slot = -1;
  char path[4096];
  if (drivers_path(db_path, path, sizeof path) != 0)
    return sb_error_set(err, SB_EINVAL, "store: %s: path too long", db_path);
  /* Whoever may write the store may take a slot: the store's own mode,
   * as SQLite gives its -wal and -shm files, and always its owner's (a
   * store made read-only must not leave a drivers file nobody may open
   * once the store is writable again). */
  struct stat st;
  mode_t mode = stat(db_path, &st) == 0 ? (st.st_mode & 0666) | 0600 : 0644;
  d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode);
  if (d->lock_fd >= 0) d->probe_fd = open(path, O_RDWR | O_CLOEXEC);
  if (d->lock_fd < 0 || d->probe_fd < 0) {
    int e = errno;
    st_drivers_close(d);
    return sb_error_set(err, SB_EIO, "store: cannot open %s: %s", path,
                        strerror(e));
  }
  struct flock fl;
  for (int k = 0; k < ST_DRIVER_SLOTS; k++) {
    if (lock_byte(d->lock_fd, F_OFD_SETLK, F_WRLCK, k, &fl) == 0) {
      d->slot = k;
      return 0;
    }
    if (errno != EAGAIN && errno != EACCES) {
      int e = errno;
      st_drivers_close(d);
      return sb_error_set(err, SB_EIO, "store: cannot lock %s: %s", path,
                          strerror(e));
    }
  }
  st_drivers_close(d);
  return sb_error_set(err, SB_EBUSY,
                      "store: %s: %d processes drive runs on this store "
                      "already",
                      db_path, ST_DRIVER_SLOTS);
}

int st_drivers_alive(const st_drivers *d, int slot) {
  if (slot < 0 || slot >= ST_DRIVER_SLOTS) return 0;
  if (slot == d->slot) return 1;
  struct flock fl;
  /* Unknown (the probe failed): alive, so nothing is taken over twice. */
  if (lock_byte(d->probe_fd, F_OFD_GETLK, F_WRLCK, slot, &fl) != 0) return 1;
  return fl.l_type != F_UNLCK;
}

void st_drivers_close(st_drivers *d) {
  if (d->probe_fd >= 0) close(d->probe_fd);
  if (d->lock_fd >= 0) close(d->lock_fd); /* the slot is free again */
  d->lock_fd = d->probe_fd = d->slot = -1;
}
