/* Unit tests for sb_app_stop: what the store still holds when the app
 * stops is answered inside sb_store_close, after the modules that asked
 * for it may be gone. A run started on an existing context first reads
 * that context (its permissions: ctx_access.c); a read answered then must
 * not start the run on the freed workflow engine (a heap-use-after-free
 * that crashed a server stopped by SIGTERM while such starts were under
 * way), but end the start as "the server is stopping". */
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

#include "app/app_internal.h"
#include "ctx/ctx.h"
#include "test_app_fixture.h"
#include "test_loop.h"

#define DEADLINE_MS 20000

typedef app_fixture fixture;

static int setup(void **state) {
  fixture *f = app_fixture_new("app-stop");
  if (!f) return -1;
  FILE *out = fopen(f->path, "w");
  assert_non_null(out);
  fprintf(out,
          "store:\n  path: %s\n"
          "workflows:\n"
          "  - name: ping\n"
          "    steps: [ { id: done, end: completed } ]\n",
          f->store);
  assert_int_equal(fclose(out), 0);
  app_fixture_start(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  app_fixture_free(*state); /* the app NULL when the test stopped it */
  return 0;
}

typedef struct created {
  int done, rc;
  char id[64];
} created;

static void on_created(void *ud, const sb_ctx_result *res) {
  created *c = ud;
  c->rc = res->rc;
  if (res->rc == 0)
    snprintf(c->id, sizeof c->id, "%s",
             json_string_value(json_object_get(res->doc, "id")));
  c->done = 1;
}

typedef struct started {
  int calls, rc;
  char msg[sizeof ((sb_error *)0)->msg];
} started;

static void on_started(void *ud, const sb_flow_reply *r) {
  started *s = ud;
  s->calls++;
  s->rc = r->rc;
  snprintf(s->msg, sizeof s->msg, "%s", r->err.msg);
}

/* A run's start on an existing context, its context read still in the
 * store when the app stops: answered once, "the server is stopping". */
static void test_run_start_on_context_as_the_app_stops(void **state) {
  fixture *f = *state;
  const char *tenant = f->cfg.default_tenant;
  created c = {0};
  sb_error err = {0};
  json_t *input = json_pack("{s{}}", "data");
  assert_int_equal(sb_ctx_create_async(sb_app_ctx(f->app), tenant, input,
                                       on_created, &c, &err),
                   0);
  json_decref(input);
  assert_true(run_until(&f->loop, flag_set, &c.done, DEADLINE_MS));
  assert_int_equal(c.rc, 0);

  started s = {0};
  sb_flow_start start = {.tenant = tenant,
                         .workflow = "ping",
                         .context_id = c.id};
  assert_int_equal(
      app_flow_run_start(f->app, NULL, &start, on_started, &s, &err), 0);
  assert_int_equal(s.calls, 0); /* its context is being read */
  sb_app_stop(f->app);
  f->app = NULL;
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.rc, SB_ESTATE);
  assert_string_equal(s.msg, "the server is stopping");
}

int main(void) {
  sb_core_init(); /* jansson allocates with sb_malloc, as in switchboard */
  sb_log_set_level(SB_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_run_start_on_context_as_the_app_stops, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
