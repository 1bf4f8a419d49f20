/* Unit tests for src/app/reload.c: sb_app_reload reads the config on a
 * worker thread and applies it on the loop. A bad config changes nothing;
 * a request while a reload is in flight (its file already read) is not
 * lost: a second round follows and the file as last written wins; and
 * the app may stop with a reload queued or done but not yet applied.
 *
 * The thread pool has one thread (UV_THREADPOOL_SIZE=1, set before its
 * first use), so work runs in the order it was queued: a marker queued
 * after a reload's read runs once that read is done, which is how the
 * tests know where a reload stands without sleeping. */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "gateway/gateway.h"
#include "registry/registry.h"
#include "test_app_fixture.h"
#include "test_loop.h"

#define DEADLINE_MS 20000

typedef app_fixture fixture;

/* A config whose agents are those ids (HTTP agents nobody answers: they
 * are listed whether or not they connect); NULL writes a bad file. */
static void write_config(fixture *f, const char *a, const char *b) {
  FILE *out = fopen(f->path, "w");
  assert_non_null(out);
  fprintf(out, "store:\n  path: %s\n", f->store);
  if (!a) {
    fprintf(out, "limits:\n  max_json_depth: lots\n");
  } else {
    fprintf(out, "agents:\n");
    const char *ids[] = {a, b};
    for (size_t i = 0; i < 2 && ids[i]; i++)
      fprintf(out,
              "  - {id: %s, name: %s, type: general, capabilities: [quotes],\n"
              "     models: {primary: m}, outputFormat: text, maxTokens: 16,\n"
              "     temperature: 0,\n"
              "     transport: {type: http, url: \"http://127.0.0.1:9/mcp\"}}\n",
              ids[i], ids[i]);
  }
  assert_int_equal(fclose(out), 0);
}

static int setup(void **state) {
  fixture *f = app_fixture_new("reload");
  if (!f) return -1;
  write_config(f, "first", NULL);
  app_fixture_start(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  app_fixture_free(*state); /* the app NULL when a test stopped it */
  return 0;
}

/* The agents' ids in the registry, comma-separated (static buffer). */
static const char *agent_ids(sb_app *app) {
  static char out[256];
  const sb_registry *reg = sb_gateway_registry(sb_app_gateway(app));
  size_t n = 0;
  out[0] = '\0';
  for (size_t i = 0; i < sb_registry_count(reg); i++)
    n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", i ? "," : "",
                          sb_registry_at(reg, i)->id);
  return out;
}

/* Everything queued before now has been read and applied: the marker's
 * after-callback runs after theirs (one queue, in order). */
static void settle(fixture *f) {
  assert_true(test_pool_settle(&f->loop, DEADLINE_MS));
}

/* The pool's one thread, held until released. */
typedef struct blocker {
  uv_work_t w;
  uv_sem_t go;
  int done;
} blocker;

static void blocker_work(uv_work_t *w) { uv_sem_wait(&((blocker *)w->data)->go); }
static void blocker_done(uv_work_t *w, int status) {
  (void)status;
  ((blocker *)w->data)->done = 1;
}

static void blocker_queue(uv_loop_t *loop, blocker *b) {
  memset(b, 0, sizeof *b);
  assert_int_equal(uv_sem_init(&b->go, 0), 0);
  b->w.data = b;
  assert_int_equal(uv_queue_work(loop, &b->w, blocker_work, blocker_done), 0);
}

/* Release it and let its after-callback run. */
static void blocker_release(uv_loop_t *loop, blocker *b) {
  uv_sem_post(&b->go);
  assert_true(run_until(loop, flag_set, &b->done, DEADLINE_MS));
  uv_sem_destroy(&b->go);
}

static void test_reload_applies_and_a_bad_file_changes_nothing(void **state) {
  fixture *f = *state;
  assert_string_equal(agent_ids(f->app), "first");
  write_config(f, "second", "third");
  sb_app_reload(f->app, f->path);
  /* Asynchronous: nothing is applied before the loop runs again. */
  assert_string_equal(agent_ids(f->app), "first");
  settle(f);
  assert_string_equal(agent_ids(f->app), "second,third");
  write_config(f, NULL, NULL);
  sb_app_reload(f->app, f->path);
  settle(f);
  assert_string_equal(agent_ids(f->app), "second,third");
  /* A file that is not there at all: the same. */
  unlink(f->path);
  sb_app_reload(f->app, f->path);
  settle(f);
  assert_string_equal(agent_ids(f->app), "second,third");
}

/* An id listed twice: serve and check refuse the file; a reload took the
 * later definition in place of the earlier one and said it was done. */
static void test_an_id_twice_changes_nothing(void **state) {
  fixture *f = *state;
  write_config(f, "second", "second");
  sb_app_reload(f->app, f->path);
  settle(f);
  assert_string_equal(agent_ids(f->app), "first");
}

/* A workflow or a virtual server a start refuses (exit 2): the reload
 * said the config was reloaded, and the next start failed. The agents of
 * such a file are not taken either. */
static void test_a_bad_workflow_or_server_changes_nothing(void **state) {
  fixture *f = *state;
  static const char *const bad[] = {
      "workflows:\n  - name: w\n    steps: []\n",
      "servers:\n  - name: x\n    agents: [second]\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    write_config(f, "second", NULL);
    FILE *out = fopen(f->path, "a");
    assert_non_null(out);
    fputs(bad[i], out);
    assert_int_equal(fclose(out), 0);
    sb_app_reload(f->app, f->path);
    settle(f);
    assert_string_equal(agent_ids(f->app), "first");
  }
  write_config(f, "second", NULL); /* the same file made good: taken */
  sb_app_reload(f->app, f->path);
  settle(f);
  assert_string_equal(agent_ids(f->app), "second");
}

static void test_a_request_during_a_reload_is_not_lost(void **state) {
  fixture *f = *state;
  write_config(f, "second", NULL);
  sb_app_reload(f->app, f->path);
  /* Behind the first round: a marker, to know when its file has been
   * read, and a blocker, to keep any later round from running until the
   * first has been seen applied. */
  test_pool_marker m;
  blocker b;
  assert_int_equal(test_pool_marker_queue(&f->loop, &m), 0);
  blocker_queue(&f->loop, &b);
  uv_sem_wait(&m.ran); /* read; not applied: the loop has not run */
  /* The file changes and SIGHUP comes again while the first round is in
   * flight, its file already read: it must not be lost. */
  write_config(f, "third", NULL);
  sb_app_reload(f->app, f->path);
  sb_app_reload(f->app, f->path); /* more requests: still one more round */
  assert_true(run_until(&f->loop, flag_set, &m.done, DEADLINE_MS));
  uv_sem_destroy(&m.ran);
  assert_string_equal(agent_ids(f->app), "second"); /* the first round's */
  blocker_release(&f->loop, &b);
  settle(f);
  assert_string_equal(agent_ids(f->app), "third"); /* the last file wins */
  settle(f); /* and no third round changes anything */
  assert_string_equal(agent_ids(f->app), "third");
}

static void test_stop_with_a_reload_queued(void **state) {
  fixture *f = *state;
  blocker b;
  blocker_queue(&f->loop, &b);
  write_config(f, "second", NULL);
  sb_app_reload(f->app, f->path); /* queued behind the blocker */
  sb_app_reload(f->app, f->path);
  sb_app_stop(f->app); /* cancels it; its memory goes with its callback */
  f->app = NULL;
  blocker_release(&f->loop, &b);
}

static void test_stop_with_a_reload_read_not_applied(void **state) {
  fixture *f = *state;
  write_config(f, "second", NULL);
  sb_app_reload(f->app, f->path);
  test_pool_marker m;
  assert_int_equal(test_pool_marker_queue(&f->loop, &m), 0);
  uv_sem_wait(&m.ran); /* read, its after-callback still to come */
  sb_app_reload(f->app, f->path); /* would follow it */
  sb_app_stop(f->app);
  f->app = NULL;
  /* The round ends with no app to apply to: it frees what it read (ASan
   * sees a use after free or a leak otherwise) and starts no other. */
  assert_true(run_until(&f->loop, flag_set, &m.done, DEADLINE_MS));
  uv_sem_destroy(&m.ran);
}

int main(void) {
  /* Before the pool's first use: one thread, work in queue order. */
  setenv("UV_THREADPOOL_SIZE", "1", 1);
  sb_core_init(); /* jansson allocates with sb_malloc, as in switchboard */
  sb_log_set_level(SB_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_reload_applies_and_a_bad_file_changes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_an_id_twice_changes_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_a_bad_workflow_or_server_changes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_request_during_a_reload_is_not_lost,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_with_a_reload_queued, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_stop_with_a_reload_read_not_applied,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
