/* Crash safety of src/store/ (SQLite backend with group commit): a child
 * process runs 64 concurrent writers, each appending versions to its own
 * context and reporting every acknowledged version on a pipe; it is killed
 * with SIGKILL while batches are in flight, several times over the same
 * file. After each kill the store must hold every acknowledged version, a
 * head that agrees with its newest version row (an unacknowledged write is
 * wholly present or wholly absent), versions 1..head exactly once each,
 * and pass PRAGMA integrity_check. */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "test_loop.h"
#include "test_store_outcome.h"

#define DEADLINE_MS 20000
enum { WRITERS = 64, ROUNDS = 3, ACKS_PER_ROUND = 400 };

typedef struct ack {
  int32_t writer, version;
} ack;

/* ---- the child: 64 writers until killed ------------------------------ */

typedef struct writer {
  sb_store *st;
  int fd;
  int i;
  int64_t head;
  char id[16];
} writer;

static void doc_of(int i, int64_t v, char *out, size_t n) {
  snprintf(out, n, "{\"v\":%lld,\"w\":%d}", (long long)v, i);
}

static void child_append(writer *w);

static void child_acked(void *ud, sb_store_result *res) {
  writer *w = ud;
  if (res->rc != 0) _exit(3);
  w->head = res->version;
  ack a = {w->i, (int32_t)w->head};
  if (write(w->fd, &a, sizeof a) != sizeof a) _exit(4);
  child_append(w);
}

static void child_append(writer *w) {
  char doc[64], patch[64];
  doc_of(w->i, w->head + 1, doc, sizeof doc);
  snprintf(patch, sizeof patch,
           "[{\"op\":\"replace\",\"path\":\"/v\","
           "\"value\":%lld}]",
           (long long)w->head + 1);
  sb_store_append_args a = {.tenant = "t",
                            .id = w->id,
                            .expected_version = w->head,
                            .new_doc = doc,
                            .patch = patch,
                            .snapshot = 1,
                            .now_ms = 1};
  if (sb_store_append(w->st, &a, child_acked, w) != 0) _exit(5);
}

static void child_head(void *ud, sb_store_result *res) {
  writer *w = ud;
  if (res->rc == 0) {
    w->head = res->record.version;
    return child_append(w);
  }
  if (res->rc != SB_ENOENT) _exit(6);
  char doc[64];
  doc_of(w->i, 1, doc, sizeof doc);
  sb_store_record r = {.id = w->id, .created_ms = 1, .doc = doc};
  w->head = 0; /* the create acknowledges version 1 */
  if (sb_store_create(w->st, "t", &r, NULL, child_acked, w) != 0) _exit(7);
}

static void child_main(const char *path, int fd) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store_options o = {.path = path, .loop = &loop};
  sb_store *st = sb_store_open_sqlite(&o, &err);
  if (!st) _exit(8);
  static writer ws[WRITERS];
  for (int i = 0; i < WRITERS; i++) {
    ws[i] = (writer){.st = st, .fd = fd, .i = i};
    snprintf(ws[i].id, sizeof ws[i].id, "c%02d", i);
    if (sb_store_get(st, "t", ws[i].id, 0, child_head, &ws[i]) != 0) _exit(9);
  }
  uv_run(&loop, UV_RUN_DEFAULT); /* until killed */
  _exit(10);
}

/* ---- the parent: kill, reopen, check ---------------------------------- */

/* Every writer's context against what was acknowledged. */
static void check_store(const char *path, const int32_t *acked) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_store_options o = {.path = path, .loop = &loop};
  sb_store *st = sb_store_open_sqlite(&o, &err); /* recovers from the WAL */
  if (!st) fail_msg("reopen: %s", err.msg);
  for (int i = 0; i < WRITERS; i++) {
    char id[16], want[64];
    snprintf(id, sizeof id, "c%02d", i);
    outcome head = {0}, hist = {0}, chain = {0};
    assert_int_equal(sb_store_get(st, "t", id, 0, on_outcome, &head), 0);
    assert_true(run_until(&loop, flag_set, &head.done, DEADLINE_MS));
    if (acked[i] == 0 && head.rc == SB_ENOENT) continue; /* never created */
    assert_int_equal(head.rc, 0);
    int64_t v = head.record.version;
    /* every acknowledged version survived */
    assert_true(v >= acked[i]);
    /* the head row agrees with its own version row: no half-applied write */
    assert_int_equal(
        sb_store_version_chain(st, "t", id, v, 0, on_outcome, &chain), 0);
    assert_true(run_until(&loop, flag_set, &chain.done, DEADLINE_MS));
    assert_int_equal(chain.rc, 0);
    assert_int_equal(chain.versions.len, 1); /* a snapshot at every version */
    doc_of(i, v, want, sizeof want);
    assert_string_equal(chain.versions.items[0].snapshot, want);
    assert_string_equal(head.record.doc, want);
    /* versions 1..head, each exactly once, each the write that made it */
    assert_int_equal(
        sb_store_history(st, "t", id, 0, 1000000, 0, on_outcome, &hist), 0);
    assert_true(run_until(&loop, flag_set, &hist.done, DEADLINE_MS));
    assert_int_equal(hist.rc, 0);
    assert_int_equal(hist.versions.len, (size_t)v);
    for (size_t k = 0; k < hist.versions.len; k++)
      assert_int_equal(hist.versions.items[k].version, v - (int64_t)k);
    outcome_clear(&head);
    outcome_clear(&hist);
    outcome_clear(&chain);
  }
  sb_store_close(st);
  assert_int_equal(loop_finish(&loop), 0);

  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *q = NULL;
  assert_int_equal(
      sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL),
      SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
  sqlite3_finalize(q);
  sqlite3_close(db);
}

static void test_sigkill_mid_batch(void **state) {
  (void)state;
  char dir[64], path[128];
  snprintf(dir, sizeof dir, "/tmp/sb-crash-XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/sb.db", dir);
  int32_t acked[WRITERS] = {0};
  for (int round = 0; round < ROUNDS; round++) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      child_main(path, fds[1]);
    }
    close(fds[1]);
    ack a;
    int n = 0;
    /* let the writers get going, then kill without warning */
    while (n < ACKS_PER_ROUND && read(fds[0], &a, sizeof a) == sizeof a) {
      if (a.writer < 0 || a.writer >= WRITERS) fail_msg("bad ack");
      if (a.version > acked[a.writer]) acked[a.writer] = a.version;
      n++;
    }
    kill(pid, SIGKILL);
    /* acknowledgements already written count too */
    while (read(fds[0], &a, sizeof a) == sizeof a)
      if (a.version > acked[a.writer]) acked[a.writer] = a.version;
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status))
      fail_msg("the writer exited on its own (status %d) in round %d",
               WEXITSTATUS(status), round);
    assert_int_equal(n, ACKS_PER_ROUND);
    check_store(path, acked);
  }
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sigkill_mid_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
