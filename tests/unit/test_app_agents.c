/* Unit tests for src/app/agent_admin.c: agents changed through the API,
 * applied to the gateway at once and acknowledged once the store has the
 * change. A change refused (the store busy) or undone (its write failed)
 * leaves the agents as the acknowledged changes made them, whatever other
 * changes of the same id are in flight, in memory, after a reload and
 * after a restart.
 *
 * A write fails on demand: a trigger, created by a connection of the
 * test's own, aborts writing any agent whose definition names "fail".
 * Callbacks come on the loop in the order the writes were made, so the
 * tests need no sleeps. */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app_internal.h"
#include "gateway/gateway.h"
#include "registry/registry.h"
#include "test_app_fixture.h"
#include "test_loop.h"

#define DEADLINE_MS 20000

typedef app_fixture fixture;

static json_t *def_of(const char *id, const char *name) {
  return json_pack("{ss ss ss s[s] s{ss} ss si si s{ss ss}}", "id", id,
                   "name", name, "type", "general", "capabilities", "quotes",
                   "models", "primary", "m", "outputFormat", "text",
                   "maxTokens", 16, "temperature", 0, "transport", "type",
                   "http", "url", "http://127.0.0.1:9/mcp");
}

/* The config: agent "conf" (named "from-config"); max_pending 0: the
 * default. */
static void write_config(fixture *f, int max_pending) {
  FILE *out = fopen(f->path, "w");
  assert_non_null(out);
  fprintf(out, "store:\n  path: %s\n", f->store);
  if (max_pending) fprintf(out, "  max_pending: %d\n", max_pending);
  fprintf(out,
          "agents:\n"
          "  - {id: conf, name: from-config, type: general,\n"
          "     capabilities: [quotes], models: {primary: m},\n"
          "     outputFormat: text, maxTokens: 16, temperature: 0,\n"
          "     transport: {type: http, url: \"http://127.0.0.1:9/mcp\"}}\n");
  assert_int_equal(fclose(out), 0);
}

static void app_restart(fixture *f) {
  sb_app_stop(f->app);
  sb_config_free(&f->cfg);
  app_fixture_start(f);
}

static int setup_with(void **state, int max_pending) {
  fixture *f = app_fixture_new("agents");
  if (!f) return -1;
  write_config(f, max_pending);
  app_fixture_start(f);
  *state = f;
  return 0;
}

static int setup(void **state) { return setup_with(state, 0); }
static int setup_one_pending(void **state) { return setup_with(state, 1); }

static int teardown(void **state) {
  app_fixture_free(*state);
  return 0;
}

/* Writing an agent whose definition names "fail" aborts. */
static void fail_writes(fixture *f) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(f->store, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char *msg = NULL;
  if (sqlite3_exec(db,
                   "CREATE TRIGGER fail_ins BEFORE INSERT ON agents WHEN "
                   "NEW.definition LIKE '%fail%' BEGIN SELECT "
                   "RAISE(ABORT,'injected'); END;"
                   "CREATE TRIGGER fail_upd BEFORE UPDATE ON agents WHEN "
                   "NEW.definition LIKE '%fail%' BEGIN SELECT "
                   "RAISE(ABORT,'injected'); END;",
                   NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s", msg);
  sqlite3_close(db);
}

/* Agent id's name, "-" for none, and whether it is the config's. */
static const char *name_of(fixture *f, const char *id, int *from_config) {
  sb_gateway_agent_info info;
  if (sb_gateway_agent_info_of(sb_app_gateway(f->app), id, &info) != 0)
    return "-";
  if (from_config) *from_config = info.from_config;
  return info.def->name;
}

typedef struct answer {
  int done;
  int rc;
} answer;

static void answered(void *ud, const char *id, int rc, const sb_error *err) {
  (void)id;
  (void)err;
  answer *a = ud;
  a->done = 1;
  a->rc = rc;
}

/* Start a change; the refusal's code, or 0 when it is in flight. */
static int change(fixture *f, app_agent_op op, const char *id,
                  const char *name, answer *a) {
  json_t *def = name ? def_of(id, name) : NULL;
  app_agent_change_args args = {.op = op,
                                .tenant = "ops",
                                .origin = "rest",
                                .definition = def,
                                .id = id,
                                .done = answered,
                                .ud = a};
  memset(a, 0, sizeof *a);
  sb_error err = {0};
  app_agent_change *ch = app_agent_change_start(f->app, &args, &err);
  json_decref(def);
  return ch ? 0 : (err.code ? err.code : -1);
}

static void wait_answer(fixture *f, answer *a) {
  assert_true(run_until(&f->loop, flag_set, &a->done, DEADLINE_MS));
}

/* A reload, read and applied (the pool has one thread: its work is done
 * once work queued after it has called back). */
static void reload(fixture *f) {
  sb_app_reload(f->app, f->path);
  assert_true(test_pool_settle(&f->loop, DEADLINE_MS));
}

/* The audit events of tenant ops, as "action outcome target" lines. */
typedef struct audit_read {
  int done;
  char lines[512];
} audit_read;

static void audit_rows(void *ud, sb_store_result *res) {
  audit_read *r = ud;
  assert_int_equal(res->rc, 0);
  for (size_t i = 0; i < res->events.len; i++) {
    json_t *d = json_loads(res->events.items[i].data, 0, NULL);
    size_t at = strlen(r->lines);
    snprintf(r->lines + at, sizeof r->lines - at, "%s %s %s;",
             json_string_value(json_object_get(d, "action")),
             json_string_value(json_object_get(d, "outcome")),
             json_string_value(json_object_get(d, "target")));
    json_decref(d);
  }
  r->done = 1;
}

static const char *audits(fixture *f, audit_read *r) {
  memset(r, 0, sizeof *r);
  assert_int_equal(sb_store_events_read(f->app->store, "ops", 0, NULL, 100, 0,
                                        audit_rows, r),
                   0);
  assert_true(run_until(&f->loop, flag_set, &r->done, DEADLINE_MS));
  return r->lines;
}

/* Register agent id (taken, not refused) and wait: the write's outcome. */
static int register_now(fixture *f, const char *id, const char *name) {
  answer a;
  assert_int_equal(change(f, APP_AGENT_REGISTER, id, name, &a), 0);
  wait_answer(f, &a);
  return a.rc;
}

/* A change's "ok" audit event commits with it: a write that fails leaves
 * only its "failed" event, a kept one only its "ok" event. */
static void test_the_audit_event_commits_with_the_change(void **state) {
  fixture *f = *state;
  fail_writes(f);
  assert_int_not_equal(register_now(f, "x", "fail-x"), 0);
  assert_int_equal(register_now(f, "y", "kept-y"), 0);
  audit_read r;
  assert_string_equal(audits(f, &r),
                      "agents_register failed x;agents_register ok y;");
}

/* store.max_pending 1: a change answered leaves no write of its own behind
 * (its audit event went with it), so the next change is taken at once. */
static void test_a_change_right_after_another_is_taken(void **state) {
  fixture *f = *state;
  assert_int_equal(register_now(f, "one", "first"), 0);
  assert_int_equal(register_now(f, "two", "second"), 0); /* not refused */
  audit_read r;
  assert_string_equal(audits(f, &r),
                      "agents_register ok one;agents_register ok two;");
}

/* A write that fails while a later change of the same id is in flight
 * undoes nothing the later change made; the later change holds. */
static void test_a_failed_write_keeps_a_later_change(void **state) {
  fixture *f = *state;
  fail_writes(f);
  answer a, b;
  assert_int_equal(change(f, APP_AGENT_REPLACE, "conf", "fail-1", &a), 0);
  assert_int_equal(change(f, APP_AGENT_REPLACE, "conf", "kept-2", &b), 0);
  assert_string_equal(name_of(f, "conf", NULL), "kept-2");
  wait_answer(f, &a);
  assert_int_not_equal(a.rc, 0);
  /* b is still in flight: the gateway has it */
  assert_string_equal(name_of(f, "conf", NULL), "kept-2");
  wait_answer(f, &b);
  assert_int_equal(b.rc, 0);
  int from_config = 1;
  assert_string_equal(name_of(f, "conf", &from_config), "kept-2");
  assert_int_equal(from_config, 0);
  reload(f); /* the config does not take it back */
  assert_string_equal(name_of(f, "conf", NULL), "kept-2");
  app_restart(f);
  assert_string_equal(name_of(f, "conf", NULL), "kept-2");
}

/* Two failed writes of one id, one after the other: the agent is as the
 * last acknowledged change left it, not as the first failed one made it. */
static void test_failed_writes_in_a_row_leave_nothing(void **state) {
  fixture *f = *state;
  fail_writes(f);
  answer a, b, c, d, e;
  assert_int_equal(change(f, APP_AGENT_REGISTER, "new", "fail-a", &a), 0);
  assert_int_equal(change(f, APP_AGENT_REPLACE, "new", "fail-b", &b), 0);
  assert_int_equal(change(f, APP_AGENT_REPLACE, "conf", "fail-c", &c), 0);
  assert_int_equal(change(f, APP_AGENT_REMOVE, "conf", NULL, &d), 0);
  assert_int_equal(change(f, APP_AGENT_REPLACE, "conf", "fail-e", &e), 0);
  wait_answer(f, &a);
  wait_answer(f, &b);
  wait_answer(f, &c);
  wait_answer(f, &d);
  wait_answer(f, &e);
  assert_int_not_equal(a.rc, 0);
  assert_int_not_equal(b.rc, 0);
  assert_int_not_equal(c.rc, 0);
  assert_int_equal(d.rc, 0); /* the removal was written */
  assert_int_not_equal(e.rc, 0);
  assert_string_equal(name_of(f, "new", NULL), "-");
  assert_string_equal(name_of(f, "conf", NULL), "-");
  reload(f); /* the removal is the API's: the config does not undo it */
  assert_string_equal(name_of(f, "conf", NULL), "-");
  app_restart(f);
  assert_string_equal(name_of(f, "new", NULL), "-");
  assert_string_equal(name_of(f, "conf", NULL), "-");
}

/* A failed write with nothing else in flight: the config's agent back, as
 * the config's (a reload may change it again). */
static void test_a_failed_write_restores_the_config_agent(void **state) {
  fixture *f = *state;
  fail_writes(f);
  answer a;
  assert_int_equal(change(f, APP_AGENT_REPLACE, "conf", "fail-1", &a), 0);
  wait_answer(f, &a);
  assert_int_not_equal(a.rc, 0);
  int from_config = 0;
  assert_string_equal(name_of(f, "conf", &from_config), "from-config");
  assert_int_equal(from_config, 1);
  assert_null(json_object_get(f->app->api_agents, "conf"));
}

/* The store busy: the change is refused at once and undone, and what an
 * earlier change in flight made stays, the API's claim on the id too (a
 * reload must not bring the config's definition back). */
static void test_a_busy_refusal_keeps_the_change_in_flight(void **state) {
  fixture *f = *state;
  answer a, b;
  assert_int_equal(change(f, APP_AGENT_REPLACE, "conf", "api-1", &a), 0);
  assert_int_equal(change(f, APP_AGENT_REPLACE, "conf", "api-2", &b),
                   SB_EBUSY);
  assert_string_equal(name_of(f, "conf", NULL), "api-1");
  assert_non_null(json_object_get(f->app->api_agents, "conf"));
  wait_answer(f, &a);
  assert_int_equal(a.rc, 0);
  reload(f);
  assert_string_equal(name_of(f, "conf", NULL), "api-1");
  app_restart(f);
  assert_string_equal(name_of(f, "conf", NULL), "api-1");
}

/* A stored definition that no longer applies (edited, or refused by a
 * later version's checks) starts nothing: the config's definition of the
 * id, which the API replaced, does not come back in its place, a reload
 * does not bring it back, and the API may register the id again. */
static void test_a_stored_definition_that_fails_starts_nothing(void **state) {
  fixture *f = *state;
  answer a;
  assert_int_equal(change(f, APP_AGENT_REPLACE, "conf", "api-1", &a), 0);
  wait_answer(f, &a);
  assert_int_equal(a.rc, 0);
  assert_int_equal(change(f, APP_AGENT_REGISTER, "other", "api-2", &a), 0);
  wait_answer(f, &a);
  assert_int_equal(a.rc, 0);
  sb_app_stop(f->app);
  f->app = NULL;
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(f->store, &db), SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db,
                   "UPDATE agents SET definition='{\"id\":\"conf\"}' "
                   "WHERE id='conf';"
                   "UPDATE agents SET definition='not json' WHERE "
                   "id='other';",
                   NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s", msg);
  sqlite3_close(db);
  sb_config_free(&f->cfg);
  app_fixture_start(f);
  assert_string_equal(name_of(f, "conf", NULL), "-");
  assert_string_equal(name_of(f, "other", NULL), "-");
  reload(f);
  assert_string_equal(name_of(f, "conf", NULL), "-");
  assert_int_equal(change(f, APP_AGENT_REGISTER, "conf", "api-3", &a), 0);
  wait_answer(f, &a);
  assert_int_equal(a.rc, 0);
  app_restart(f);
  assert_string_equal(name_of(f, "conf", NULL), "api-3");
}

int main(void) {
  /* Before the pool's first use: one thread, work in queue order. */
  setenv("UV_THREADPOOL_SIZE", "1", 1);
  sb_core_init(); /* jansson allocates with sb_malloc, as in switchboard */
  sb_log_set_level(SB_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_the_audit_event_commits_with_the_change, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_a_change_right_after_another_is_taken, setup_one_pending,
          teardown),
      cmocka_unit_test_setup_teardown(test_a_failed_write_keeps_a_later_change,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_writes_in_a_row_leave_nothing,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_a_failed_write_restores_the_config_agent, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_a_busy_refusal_keeps_the_change_in_flight, setup_one_pending,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_a_stored_definition_that_fails_starts_nothing, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
