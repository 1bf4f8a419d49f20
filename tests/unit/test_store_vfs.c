/* test_store_vfs.c: the writer's VFS (src/store/sqlite_vfs.c), which
 * gathers a commit's WAL frames into one write. Checked with SQLite
 * itself: what one connection commits through it, another connection on
 * the default VFS reads at once, whatever the commit's size (one frame,
 * more than the default VFS writes per call, more than the gathering
 * buffer holds), after the WAL starts over, and after a reopen, with
 * PRAGMA integrity_check ok. And a WAL says when it was deleted or
 * replaced under its connection (SQLITE_FCNTL_HAS_MOVED), which the
 * default VFS never says of a WAL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_internal.h"

typedef struct vfs_fixture {
  char dir[64];
  char path[128];
  sqlite3 *writer, *reader;
} vfs_fixture;

static void exec_ok(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s: %s", sql, msg);
}

static sqlite3 *open_db(const char *path, const char *vfs) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      vfs) != SQLITE_OK)
    fail_msg("open %s: %s", path, db ? sqlite3_errmsg(db) : "no memory");
  exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
  return db;
}

static int64_t int_of(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void assert_intact(sqlite3 *db) {
  sqlite3_stmt *st;
  assert_int_equal(
      sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
      SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
  sqlite3_finalize(st);
}

static int setup(void **state) {
  vfs_fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/sb-vfs-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
  const char *vfs = st_gather_vfs();
  assert_non_null(vfs);
  f->writer = open_db(f->path, vfs);
  exec_ok(f->writer, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
  f->reader = open_db(f->path, NULL);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  vfs_fixture *f = *state;
  sqlite3_close(f->reader);
  sqlite3_close(f->writer);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  if (system(cmd) != 0) return -1;
  free(f);
  return 0;
}

/* One transaction of n rows of `size` random bytes, keys from `first`. */
static void insert_rows(sqlite3 *db, int first, int n, int size) {
  sqlite3_stmt *st;
  exec_ok(db, "BEGIN");
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "INSERT INTO t VALUES(?, randomblob(?))",
                                      -1, &st, NULL),
                   SQLITE_OK);
  for (int i = 0; i < n; i++) {
    sqlite3_bind_int(st, 1, first + i);
    sqlite3_bind_int(st, 2, size);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  exec_ok(db, "COMMIT");
}

static void test_commits_of_every_size(void **state) {
  vfs_fixture *f = *state;
  /* one frame; then some 300 KB (past one write of the default VFS);
   * then some 12 MB (past the gathering buffer) */
  insert_rows(f->writer, 0, 1, 10);
  assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 1);
  insert_rows(f->writer, 1, 300, 1000);
  assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 301);
  insert_rows(f->writer, 301, 3000, 4000);
  assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 3301);
  assert_int_equal(int_of(f->reader, "SELECT sum(length(v)) FROM t"),
                   10 + 300 * 1000 + 3000 * 4000);
  assert_intact(f->reader);
}

static void test_wal_starting_over(void **state) {
  vfs_fixture *f = *state;
  insert_rows(f->writer, 0, 500, 1000);
  /* Every frame copied back and the WAL emptied: the next commit writes
   * the WAL's header at its start again, then its frames. */
  exec_ok(f->writer, "PRAGMA wal_checkpoint(TRUNCATE)");
  insert_rows(f->writer, 500, 500, 1000);
  insert_rows(f->writer, 1000, 1, 1000);
  assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 1001);
  /* The writer reads its own rows back, some still in the WAL. */
  assert_int_equal(int_of(f->writer, "SELECT count(*) FROM t WHERE k>=500"),
                   501);
  assert_intact(f->writer);
}

static void test_reopened(void **state) {
  vfs_fixture *f = *state;
  insert_rows(f->writer, 0, 2000, 700);
  sqlite3_close(f->reader);
  sqlite3_close(f->writer);
  /* The default VFS recovers the WAL the gathering one wrote. */
  f->writer = open_db(f->path, NULL);
  f->reader = open_db(f->path, NULL);
  assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 2000);
  assert_intact(f->reader);
}

static void test_a_rolled_back_transaction(void **state) {
  vfs_fixture *f = *state;
  insert_rows(f->writer, 0, 10, 100);
  /* Enough to spill pages to the WAL before the end, then rolled back. */
  exec_ok(f->writer, "PRAGMA cache_size=10; BEGIN");
  exec_ok(f->writer,
          "WITH RECURSIVE n(i) AS (SELECT 100 UNION ALL SELECT i+1 FROM n "
          "WHERE i<2099) INSERT INTO t SELECT i, randomblob(2000) FROM n");
  exec_ok(f->writer, "ROLLBACK");
  assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 10);
  assert_int_equal(int_of(f->writer, "SELECT count(*) FROM t"), 10);
  insert_rows(f->writer, 10, 5, 100);
  assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 15);
  assert_intact(f->reader);
}

/* The WAL's SQLITE_FCNTL_HAS_MOVED through the writer's connection. */
static int wal_moved(sqlite3 *db) {
  sqlite3_file *wal = NULL;
  assert_int_equal(sqlite3_file_control(db, "main",
                                        SQLITE_FCNTL_JOURNAL_POINTER, &wal),
                   SQLITE_OK);
  assert_non_null(wal);
  assert_non_null(wal->pMethods);
  int moved = -1;
  assert_int_equal(
      wal->pMethods->xFileControl(wal, SQLITE_FCNTL_HAS_MOVED, &moved),
      SQLITE_OK);
  return moved;
}

static void test_wal_moved(void **state) {
  vfs_fixture *f = *state;
  insert_rows(f->writer, 0, 1, 10);
  assert_int_equal(wal_moved(f->writer), 0);
  char wal[160], aside[170];
  snprintf(wal, sizeof wal, "%s-wal", f->path);
  snprintf(aside, sizeof aside, "%s-aside", f->path);
  /* replaced: another file at its path */
  assert_int_equal(rename(wal, aside), 0);
  FILE *other = fopen(wal, "w");
  assert_non_null(other);
  fclose(other);
  assert_int_equal(wal_moved(f->writer), 1);
  /* deleted */
  assert_int_equal(unlink(wal), 0);
  assert_int_equal(wal_moved(f->writer), 1);
  /* back in place: the same file again */
  assert_int_equal(rename(aside, wal), 0);
  assert_int_equal(wal_moved(f->writer), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_commits_of_every_size, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_wal_starting_over, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reopened, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_rolled_back_transaction, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_wal_moved, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
