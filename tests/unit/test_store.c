/* Unit tests for src/store/ (SQLite backend): create/get/append, version
 * chains and history, tenant isolation, expiry, conflicts under concurrent
 * writers, and crash safety (a writer killed with SIGKILL mid-stream). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"

typedef struct fixture {
  char dir[64];
  char path[128];
  sb_store *st;
} fixture;

static sb_store *open_store(const char *path) {
  sb_error err = {0};
  sb_store_options o = {.path = path};
  sb_store *st = sb_store_open_sqlite(&o, &err);
  if (!st) fail_msg("open: %s", err.msg);
  return st;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/sb-store-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  /* a nested, not yet existing directory: the store creates it */
  snprintf(f->path, sizeof f->path, "%s/data/sb.db", f->dir);
  f->st = open_store(f->path);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  sb_store_close(f->st);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  if (system(cmd) != 0) return -1;
  free(f);
  return 0;
}

static void create(sb_store *st, const char *tenant, const char *id,
                   const char *doc, int64_t expires) {
  sb_store_record r = {.id = (char *)id, .workflow_id = "wf", .session_id = "s",
                       .created_ms = 1000, .expires_ms = expires,
                       .doc = (char *)doc};
  sb_error err = {0};
  assert_int_equal(sb_store_create(st, tenant, &r, &err), 0);
}

static void test_create_get_append(void **state) {
  fixture *f = *state;
  sb_error err = {0};
  create(f->st, "t1", "c1", "{\"a\":1}", 0);
  sb_store_record r;
  assert_int_equal(sb_store_get(f->st, "t1", "c1", 2000, &r, &err), 0);
  assert_int_equal(r.version, 1);
  assert_string_equal(r.doc, "{\"a\":1}");
  assert_string_equal(r.workflow_id, "wf");
  sb_store_record_clear(&r);

  int64_t cur = 0;
  assert_int_equal(sb_store_append(f->st, "t1", "c1", 1, "{\"a\":2}",
                                   "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]",
                                   NULL, 0, 3000, &cur, &err),
                   0);
  assert_int_equal(cur, 2);
  /* stale writer: conflict carrying the current version */
  assert_int_equal(sb_store_append(f->st, "t1", "c1", 1, "{\"a\":3}", "[]",
                                   NULL, 0, 3000, &cur, &err),
                   SB_ECONFLICT);
  assert_int_equal(cur, 2);
  assert_non_null(strstr(err.msg, "version 2"));
  assert_int_equal(sb_store_get(f->st, "t1", "c1", 4000, &r, &err), 0);
  assert_int_equal(r.version, 2);
  assert_string_equal(r.doc, "{\"a\":2}");
  sb_store_record_clear(&r);

  /* duplicate id */
  sb_store_record dup = {.id = "c1", .created_ms = 1, .doc = "{}"};
  assert_int_equal(sb_store_create(f->st, "t1", &dup, &err), SB_ECONFLICT);
}

static void test_tenant_isolation(void **state) {
  fixture *f = *state;
  sb_error err = {0}, err2 = {0};
  create(f->st, "t1", "shared-id", "{\"owner\":\"t1\"}", 0);
  sb_store_record r;
  /* another tenant's id answers exactly like a missing id */
  int rc_other = sb_store_get(f->st, "t2", "shared-id", 2000, &r, &err);
  int rc_missing = sb_store_get(f->st, "t2", "no-such-id", 2000, &r, &err2);
  assert_int_equal(rc_other, SB_ENOENT);
  assert_int_equal(rc_missing, SB_ENOENT);
  int64_t cur = -1;
  assert_int_equal(sb_store_append(f->st, "t2", "shared-id", 1, "{}", "[]",
                                   NULL, 0, 2000, &cur, &err),
                   SB_ENOENT);
  assert_int_equal(cur, 0);
  sb_store_versions v;
  assert_int_equal(sb_store_history(f->st, "t2", "shared-id", 0, 10, 2000, &v, &err),
                   SB_ENOENT);
  assert_int_equal(sb_store_version_chain(f->st, "t2", "shared-id", 1, 2000, &v, &err),
                   SB_ENOENT);
  /* the same id can exist independently in t2 */
  create(f->st, "t2", "shared-id", "{\"owner\":\"t2\"}", 0);
  assert_int_equal(sb_store_get(f->st, "t1", "shared-id", 2000, &r, &err), 0);
  assert_string_equal(r.doc, "{\"owner\":\"t1\"}");
  sb_store_record_clear(&r);
  assert_int_equal(sb_store_count(f->st, "t1"), 1);
  /* no tenant, no read */
  assert_int_equal(sb_store_get(f->st, NULL, "shared-id", 2000, &r, &err), SB_EINVAL);
}

static void test_chain_and_history(void **state) {
  fixture *f = *state;
  sb_error err = {0};
  create(f->st, "t", "c", "{\"n\":1}", 0);
  for (int v = 1; v < 10; v++) {
    char doc[32], patch[96];
    snprintf(doc, sizeof doc, "{\"n\":%d}", v + 1);
    snprintf(patch, sizeof patch, "[{\"op\":\"replace\",\"path\":\"/n\",\"value\":%d}]", v + 1);
    /* snapshot at version 5 */
    assert_int_equal(sb_store_append(f->st, "t", "c", v, doc, patch,
                                     v + 1 == 5 ? doc : NULL, 0, 2000 + v,
                                     NULL, &err),
                     0);
  }
  sb_store_versions chain;
  assert_int_equal(sb_store_version_chain(f->st, "t", "c", 7, 5000, &chain, &err), 0);
  assert_int_equal(chain.len, 3); /* snapshot 5, then 6 and 7 */
  assert_int_equal(chain.items[0].version, 5);
  assert_string_equal(chain.items[0].snapshot, "{\"n\":5}");
  assert_null(chain.items[1].snapshot);
  assert_int_equal(chain.items[2].version, 7);
  sb_store_versions_clear(&chain);
  assert_int_equal(sb_store_version_chain(f->st, "t", "c", 3, 5000, &chain, &err), 0);
  assert_int_equal(chain.items[0].version, 1);
  assert_int_equal(chain.len, 3);
  sb_store_versions_clear(&chain);
  assert_int_equal(sb_store_version_chain(f->st, "t", "c", 11, 5000, &chain, &err),
                   SB_ENOENT);
  assert_non_null(strstr(err.msg, "1 to 10"));

  sb_store_versions h;
  assert_int_equal(sb_store_history(f->st, "t", "c", 0, 4, 5000, &h, &err), 0);
  assert_int_equal(h.len, 4);
  assert_int_equal(h.items[0].version, 10);
  assert_int_equal(h.items[3].version, 7);
  sb_store_versions_clear(&h);
  assert_int_equal(sb_store_history(f->st, "t", "c", 3, 10, 5000, &h, &err), 0);
  assert_int_equal(h.len, 2);
  assert_null(h.items[1].patch); /* version 1 has no patch */
  sb_store_versions_clear(&h);
}

static void test_expiry(void **state) {
  fixture *f = *state;
  sb_error err = {0};
  create(f->st, "t", "short", "{}", 5000);
  create(f->st, "t", "forever", "{}", 0);
  sb_store_record r;
  assert_int_equal(sb_store_get(f->st, "t", "short", 4999, &r, &err), 0);
  sb_store_record_clear(&r);
  assert_int_equal(sb_store_get(f->st, "t", "short", 5000, &r, &err), SB_ENOENT);
  assert_int_equal(sb_store_append(f->st, "t", "short", 1, "{}", "[]", NULL, 0,
                                   6000, NULL, &err),
                   SB_ENOENT);
  assert_int_equal(sb_store_sweep_expired(f->st, 6000, 100, &err), 1);
  assert_int_equal(sb_store_count(f->st, "t"), 1);
  assert_int_equal(sb_store_get(f->st, "t", "forever", 999999, &r, &err), 0);
  sb_store_record_clear(&r);
}

/* N threads, each with its own connection, race to append to one context
 * starting from whatever version they last read. */
typedef struct racer {
  const char *path;
  int accepted[64]; /* versions this racer created */
  int n_accepted, n_conflicts;
} racer;

static void *race(void *arg) {
  racer *r = arg;
  sb_store *st = open_store(r->path);
  sb_error err = {0};
  for (int i = 0; i < 40; i++) {
    sb_store_record rec;
    if (sb_store_get(st, "t", "hot", 0, &rec, &err) != 0) continue;
    int64_t v = rec.version;
    sb_store_record_clear(&rec);
    char doc[32];
    snprintf(doc, sizeof doc, "{\"v\":%lld}", (long long)v + 1);
    int rc = sb_store_append(st, "t", "hot", v, doc, "[]", NULL, 0, 1, NULL, &err);
    if (rc == 0 && r->n_accepted < 64) r->accepted[r->n_accepted++] = (int)v + 1;
    else if (rc == SB_ECONFLICT) r->n_conflicts++;
    else if (rc != 0) fail_msg("append: %s", err.msg);
  }
  sb_store_close(st);
  return NULL;
}

static void test_concurrent_writers(void **state) {
  fixture *f = *state;
  create(f->st, "t", "hot", "{\"v\":1}", 0);
  enum { N = 4 };
  racer racers[N];
  pthread_t th[N];
  memset(racers, 0, sizeof racers);
  for (int i = 0; i < N; i++) {
    racers[i].path = f->path;
    pthread_create(&th[i], NULL, race, &racers[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  int total = 0, conflicts = 0;
  char seen[N * 64 + 2] = {0};
  for (int i = 0; i < N; i++) {
    conflicts += racers[i].n_conflicts;
    for (int j = 0; j < racers[i].n_accepted; j++) {
      int v = racers[i].accepted[j];
      assert_in_range(v, 2, N * 40 + 1);
      assert_int_equal(seen[v], 0); /* no version accepted twice */
      seen[v] = 1;
      total++;
    }
  }
  assert_int_equal(total + conflicts, N * 40);
  sb_error err = {0};
  sb_store_versions h;
  assert_int_equal(sb_store_history(f->st, "t", "hot", 0, 10000, 1, &h, &err), 0);
  /* every accepted update is in the history exactly once, nothing else */
  assert_int_equal(h.len, (size_t)total + 1);
  for (size_t i = 0; i < h.len; i++)
    assert_int_equal(h.items[i].version, total + 1 - (int64_t)i);
  sb_store_versions_clear(&h);
}

/* A child appends versions and reports each acknowledged one on a pipe; it
 * is killed mid-stream. Every acknowledged version must be readable. */
static void test_crash_safety(void **state) {
  fixture *f = *state;
  create(f->st, "t", "crash", "{\"v\":1}", 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    sb_store *st = open_store(f->path);
    sb_error err = {0};
    for (int64_t v = 1;; v++) {
      char doc[64];
      snprintf(doc, sizeof doc, "{\"v\":%lld}", (long long)v + 1);
      if (sb_store_append(st, "t", "crash", v, doc, "[]",
                          v % 8 == 0 ? doc : NULL, 0, 1, NULL, &err) != 0)
        _exit(2);
      int64_t acked = v + 1;
      if (write(fds[1], &acked, sizeof acked) != sizeof acked) _exit(3);
    }
  }
  close(fds[1]);
  int64_t last = 0, v;
  /* let it get well into its stream, then kill it without warning */
  while (last < 150 && read(fds[0], &v, sizeof v) == sizeof v) last = v;
  kill(pid, SIGKILL);
  while (read(fds[0], &v, sizeof v) == sizeof v) last = v;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFSIGNALED(status));

  sb_store_close(f->st);
  f->st = open_store(f->path); /* recovery from the WAL */
  sb_error err = {0};
  sb_store_record r;
  assert_int_equal(sb_store_get(f->st, "t", "crash", 1, &r, &err), 0);
  assert_true(r.version >= last);
  sb_store_record_clear(&r);
  for (int64_t n = 1; n <= last; n++) {
    sb_store_versions chain;
    assert_int_equal(sb_store_version_chain(f->st, "t", "crash", n, 1, &chain, &err), 0);
    assert_int_equal(chain.items[chain.len - 1].version, n);
    sb_store_versions_clear(&chain);
  }
}

static void test_open_errors(void **state) {
  (void)state;
  sb_error err = {0};
  sb_store_options o = {.path = "/proc/no/such/dir/x.db"};
  assert_null(sb_store_open_sqlite(&o, &err));
  assert_non_null(strstr(err.msg, "/proc/no"));
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_create_get_append, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tenant_isolation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chain_and_history, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
      cmocka_unit_test(test_open_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
