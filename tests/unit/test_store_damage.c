/* test_store_damage.c: a store damaged after an unclean stop is refused at
 * open, naming the file, what is wrong and what to do, instead of being
 * served as it is (src/store/sqlite_check.c, quick_check in sqlite.c).
 *
 * A store gets contexts that a checkpoint put in the database file, then a
 * child process writes more, every one acknowledged, and is killed with
 * SIGKILL before any checkpoint: those live only in the -wal, which its
 * index (-shm) says holds them. From a copy of those files each case
 * deletes, cuts, overwrites or replaces the log, or overwrites pages of
 * the database file, and opens the store. Before: SQLite rebuilt the index
 * from what it found and served the store as it was before the log (the
 * acknowledged contexts not found), or with damaged pages (errors later,
 * at reads), without a word. The store left whole opens with every
 * context; a store another process has open is never judged by its
 * files. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "test_loop.h"
#include "test_store_outcome.h"

#define DEADLINE_MS 20000
enum { CHECKPOINTED = 40, IN_LOG = 60, DOC_BYTES = 1500 };

typedef struct damage_fixture {
  char dir[64];
  char pristine[128]; /* the files as the kill left them */
  char store[128];    /* a copy, damaged by each case */
  char path[160];     /* store/sb.db */
} damage_fixture;

static damage_fixture fx;

static void sh(const char *fmt, const char *a, const char *b) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, fmt, a, b);
  if (system(cmd) != 0) fail_msg("%s failed", cmd);
}

static void doc_of(const char *id, char *out, size_t n) {
  /* large enough that the contexts fill pages of their own */
  int at = snprintf(out, n, "{\"id\":\"%s\",\"pad\":\"", id);
  for (; (size_t)at < n - 3 && at < DOC_BYTES; at++)
    out[at] = (char)('a' + at % 26);
  snprintf(out + at, n - (size_t)at, "\"}");
}

static void id_of(int i, char *out, size_t n) {
  snprintf(out, n, "%c%03d", i < CHECKPOINTED ? 'a' : 'b', i);
}

static sb_store *open_store(uv_loop_t *loop, const char *path,
                            sb_store_check check, sb_error *err) {
  sb_store_options o = {
      .path = path, .loop = loop, .drives_runs = 1, .check = check};
  return sb_store_open_sqlite(&o, err);
}

static int create(uv_loop_t *loop, sb_store *st, int i) {
  char id[16], doc[DOC_BYTES + 64];
  id_of(i, id, sizeof id);
  doc_of(id, doc, sizeof doc);
  sb_store_record r = {.id = id, .created_ms = 1, .doc = doc};
  outcome o = {0};
  if (sb_store_create(st, "t", &r, NULL, on_outcome, &o) != 0) return -1;
  if (!run_until(loop, flag_set, &o.done, DEADLINE_MS)) return -1;
  int rc = o.rc;
  outcome_clear(&o);
  return rc;
}

/* The child: the second half of the contexts, each acknowledged on fd,
 * then it waits to be killed (no close: no checkpoint). */
static void child_main(const char *path, int fd) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store *st = open_store(&loop, path, SB_STORE_CHECK_AUTO, &err);
  if (!st) _exit(8);
  for (int i = CHECKPOINTED; i < CHECKPOINTED + IN_LOG; i++) {
    if (create(&loop, st, i) != 0) _exit(9);
    if (write(fd, &i, sizeof i) != sizeof i) _exit(10);
  }
  for (;;) pause();
}

static int setup_group(void **state) {
  (void)state;
  snprintf(fx.dir, sizeof fx.dir, "/tmp/sb-damage-XXXXXX");
  if (!mkdtemp(fx.dir)) return -1;
  snprintf(fx.pristine, sizeof fx.pristine, "%s/pristine", fx.dir);
  snprintf(fx.store, sizeof fx.store, "%s/store", fx.dir);
  snprintf(fx.path, sizeof fx.path, "%s/sb.db", fx.pristine);
  /* The first contexts, closed cleanly: in the database file. */
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store *st = open_store(&loop, fx.path, SB_STORE_CHECK_AUTO, &err);
  if (!st) fail_msg("open: %s", err.msg);
  for (int i = 0; i < CHECKPOINTED; i++)
    assert_int_equal(create(&loop, st, i), 0);
  sb_store_close(st);
  assert_int_equal(loop_finish(&loop), 0);
  /* The rest by a child killed once they are acknowledged. */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    child_main(fx.path, fds[1]);
  }
  close(fds[1]);
  int acked = 0, i;
  while (acked < IN_LOG && read(fds[0], &i, sizeof i) == sizeof i) acked++;
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  close(fds[0]);
  assert_int_equal(acked, IN_LOG);
  assert_true(WIFSIGNALED(status));
  snprintf(fx.path, sizeof fx.path, "%s/sb.db", fx.store);
  return 0;
}

static int teardown_group(void **state) {
  (void)state;
  sh("rm -rf %s%s", fx.dir, "");
  return 0;
}

/* Each case starts from the files as the kill left them. */
static void restore(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf %s && cp -a %s %s", fx.store, fx.pristine,
           fx.store);
  if (system(cmd) != 0) fail_msg("%s failed", cmd);
}

static void file_of(const char *suffix, char *out, size_t n) {
  snprintf(out, n, "%s%s", fx.path, suffix);
}

static off_t size_of(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_size;
}

static void overwrite(const char *path, off_t at, size_t n, unsigned char c) {
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  unsigned char buf[8192];
  assert_true(n <= sizeof buf);
  memset(buf, c, n);
  assert_int_equal(pwrite(fd, buf, n, at), (ssize_t)n);
  close(fd);
}

/* Opening the store is refused; its message has each of want (NULL-ended). */
static void assert_refused(sb_store_check check, const char *const *want) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store *st = open_store(&loop, fx.path, check, &err);
  if (st) {
    sb_store_close(st);
    loop_finish(&loop);
    fail_msg("opened: the damaged store was served");
  }
  assert_int_equal(loop_finish(&loop), 0);
  for (; *want; want++)
    if (!strstr(err.msg, *want))
      fail_msg("\"%s\" not in the refusal: %s", *want, err.msg);
}

/* Opening serves contexts 0..n-1, each whole, and no more. */
static void assert_serves(int n) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store *st = open_store(&loop, fx.path, SB_STORE_CHECK_AUTO, &err);
  if (!st) fail_msg("refused: %s", err.msg);
  for (int i = 0; i < CHECKPOINTED + IN_LOG; i++) {
    char id[16], doc[DOC_BYTES + 64];
    id_of(i, id, sizeof id);
    doc_of(id, doc, sizeof doc);
    outcome o = {0};
    assert_int_equal(sb_store_get(st, "t", id, 0, on_outcome, &o), 0);
    assert_true(run_until(&loop, flag_set, &o.done, DEADLINE_MS));
    if (i < n) {
      if (o.rc != 0) fail_msg("context %s: %s", id, o.err.msg);
      assert_string_equal(o.record.doc, doc);
    } else {
      assert_int_equal(o.rc, SB_ENOENT);
    }
    outcome_clear(&o);
  }
  sb_store_close(st);
  assert_int_equal(loop_finish(&loop), 0);
}

static const char *const lost_tail[] = {
    "would be lost; restore the -wal file, or move sb.db-shm away to start "
    "from the database file as it is",
    NULL};

static void test_whole_log_serves_everything(void **state) {
  (void)state;
  restore();
  char wal[200];
  file_of("-wal", wal, sizeof wal);
  assert_true(size_of(wal) > 0);
  assert_serves(CHECKPOINTED + IN_LOG);
  /* and again, after that clean close */
  assert_serves(CHECKPOINTED + IN_LOG);
}

static void test_log_deleted(void **state) {
  (void)state;
  restore();
  char wal[200];
  file_of("-wal", wal, sizeof wal);
  assert_int_equal(unlink(wal), 0);
  const char *const want[] = {wal, "is missing, but its index sb.db-shm says",
                              lost_tail[0], NULL};
  assert_refused(SB_STORE_CHECK_AUTO, want);
  /* Refused again: nothing was changed by the refusal. */
  assert_refused(SB_STORE_CHECK_NEVER, want);
  /* The way out the message names: the index moved away, the database
   * file is served as it is (the checkpointed contexts only). */
  char shm[200], moved[220];
  file_of("-shm", shm, sizeof shm);
  snprintf(moved, sizeof moved, "%s.moved", shm);
  assert_int_equal(rename(shm, moved), 0);
  assert_serves(CHECKPOINTED);
}

static void test_log_cut_short(void **state) {
  (void)state;
  restore();
  char wal[200];
  file_of("-wal", wal, sizeof wal);
  /* its last commit cut in the middle */
  assert_int_equal(truncate(wal, size_of(wal) - 2000), 0);
  const char *const want[] = {wal, "is shorter (",
                              "frames its index sb.db-shm says were committed",
                              lost_tail[0], NULL};
  assert_refused(SB_STORE_CHECK_AUTO, want);
  /* cut to its first frames */
  assert_int_equal(truncate(wal, 32 + 3 * (24 + 4096)), 0);
  assert_refused(SB_STORE_CHECK_AUTO, want);
}

static void test_log_frame_overwritten(void **state) {
  (void)state;
  restore();
  char wal[200];
  file_of("-wal", wal, sizeof wal);
  /* bytes of a page in the middle of the log; its size unchanged */
  overwrite(wal, size_of(wal) / 2, 14, 'G');
  const char *const want[] = {wal, "is damaged: frame ",
                              "its index says were committed fails its "
                              "checksum",
                              lost_tail[0], NULL};
  assert_refused(SB_STORE_CHECK_AUTO, want);
}

static void test_log_replaced(void **state) {
  (void)state;
  restore();
  char wal[200];
  file_of("-wal", wal, sizeof wal);
  FILE *f = fopen(wal, "w");
  assert_non_null(f);
  fputs("not a db\n", f);
  fclose(f);
  const char *const want[] = {
      wal, "is not the log its index sb.db-shm belongs to", lost_tail[0],
      NULL};
  assert_refused(SB_STORE_CHECK_AUTO, want);
  /* Another store's log, whole but not this one's (other salts). */
  char other[200];
  snprintf(other, sizeof other, "%s/other.db", fx.dir);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "PRAGMA journal_mode=WAL;"
                                "PRAGMA wal_autocheckpoint=0;"
                                "CREATE TABLE x(y);INSERT INTO x VALUES(1);",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "cp %s-wal %s", other, wal);
  assert_int_equal(system(cmd), 0);
  sqlite3_close(db);
  const char *const salts[] = {wal, "its salts differ", lost_tail[0], NULL};
  assert_refused(SB_STORE_CHECK_AUTO, salts);
}

static void test_database_pages_overwritten(void **state) {
  (void)state;
  restore();
  /* Pages in the middle of the file, of the contexts the checkpoint put
   * there (the log's commits touch the b-trees' right edges). */
  off_t size = size_of(fx.path);
  assert_true(size >= 16 * 4096);
  off_t page = (size / 4096) / 2;
  for (int k = 0; k < 3; k++)
    overwrite(fx.path, (page + k) * 4096, 4096, 0xa5);
  const char *const want[] = {fx.path, "is damaged (PRAGMA quick_check: ",
                              "restore it from a backup", NULL};
  assert_refused(SB_STORE_CHECK_AUTO, want);
  /* The refusal left the log and its index as they were: refused again
   * (before a checkpoint at its close would have copied the log in and
   * deleted both, and the next start found a clean stop). */
  char wal[200], shm[200];
  file_of("-wal", wal, sizeof wal);
  file_of("-shm", shm, sizeof shm);
  assert_int_equal(access(wal, F_OK), 0);
  assert_int_equal(access(shm, F_OK), 0);
  assert_refused(SB_STORE_CHECK_AUTO, want);
  /* never: the operator's choice, opened as it is */
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store *st = open_store(&loop, fx.path, SB_STORE_CHECK_NEVER, &err);
  if (!st) fail_msg("never: refused: %s", err.msg);
  sb_store_close(st);
  assert_int_equal(loop_finish(&loop), 0);
}

static void test_database_cut_in_half(void **state) {
  (void)state;
  restore();
  assert_int_equal(truncate(fx.path, size_of(fx.path) / 2), 0);
  const char *const want[] = {fx.path, "is damaged (PRAGMA quick_check: ",
                              NULL};
  assert_refused(SB_STORE_CHECK_AUTO, want);
}

/* A store open in a live process (a first server) is not judged by its
 * files: its log and index are that process's, changing. A second opener
 * beside it opens, in another process or in this one. */
static void test_live_store_not_judged(void **state) {
  (void)state;
  restore();
  assert_serves(CHECKPOINTED + IN_LOG); /* a clean stop: no -wal left */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sb_error err = {0};
    sb_store *st = open_store(&loop, fx.path, SB_STORE_CHECK_AUTO, &err);
    if (!st) _exit(8);
    int i = CHECKPOINTED + IN_LOG;
    if (create(&loop, st, i) != 0) _exit(9);
    if (write(fds[1], &i, sizeof i) != sizeof i) _exit(10);
    for (;;) pause();
  }
  close(fds[1]);
  int i = 0;
  assert_int_equal(read(fds[0], &i, sizeof i), (ssize_t)sizeof i);
  /* Its log and index are there, and its commits in them: opened beside
   * it, quick_check and all. */
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store *a = open_store(&loop, fx.path, SB_STORE_CHECK_ALWAYS, &err);
  if (!a) fail_msg("beside a live process: refused: %s", err.msg);
  /* A second store of this process on the same file: not judged either,
   * and its check leaves the first store's locks alone. */
  sb_store *b = open_store(&loop, fx.path, SB_STORE_CHECK_AUTO, &err);
  if (!b) fail_msg("second in this process: refused: %s", err.msg);
  sb_store_close(b);
  outcome o = {0};
  assert_int_equal(sb_store_get(a, "t", "b100", 0, on_outcome, &o), 0);
  assert_true(run_until(&loop, flag_set, &o.done, DEADLINE_MS));
  assert_int_equal(o.rc, 0);
  outcome_clear(&o);
  sb_store_close(a);
  assert_int_equal(loop_finish(&loop), 0);
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  close(fds[0]);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole_log_serves_everything),
      cmocka_unit_test(test_log_deleted),
      cmocka_unit_test(test_log_cut_short),
      cmocka_unit_test(test_log_frame_overwritten),
      cmocka_unit_test(test_log_replaced),
      cmocka_unit_test(test_database_pages_overwritten),
      cmocka_unit_test(test_database_cut_in_half),
      cmocka_unit_test(test_live_store_not_judged),
  };
  return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
