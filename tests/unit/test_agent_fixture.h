/* test_agent_fixture.h: the dealership agents' unit tests run their tools
 * on a real tenant file: the schema (agents/common/schema.c) plus
 * tests/fixtures/dealer_ops.sql, in a fresh temporary directory per test,
 * through dl_run_tool (the path the runtime's worker takes: one
 * transaction, the idempotency ledger). Include after <cmocka.h>. */
#ifndef DL_TEST_AGENT_FIXTURE_H
#define DL_TEST_AGENT_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/agent.h"
#include "test_files.h"
#include "test_json.h"

#define FIXTURE_TENANT "north-star"

typedef struct fixture {
  char dir[64];
  char db[128];
  dl_outcome outcome; /* of the last call */
  char error[512];
} fixture;

static inline void fixture_exec(fixture *f, const char *sql) {
  sqlite3 *db = NULL;
  char *err = NULL;
  assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
    fail_msg("fixture SQL failed: %s", err);
  sqlite3_close(db);
}

/* The integer the query answers (first column of the first row). */
static inline long long fixture_int(fixture *f, const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  long long v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static inline int fixture_setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/dl-agent-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->db, sizeof f->db, "%s/%s.db", f->dir, FIXTURE_TENANT);
  FILE *in = fopen(SB_SOURCE_DIR "/tests/fixtures/dealer_ops.sql", "rb");
  if (!in) return -1;
  char *sql = calloc(1, 1 << 16);
  size_t n = fread(sql, 1, (1 << 16) - 1, in);
  fclose(in);
  sql[n] = '\0';
  fixture_exec(f, dl_schema_sql);
  fixture_exec(f, sql);
  free(sql);
  *state = f;
  return 0;
}

static inline int fixture_teardown(void **state) {
  fixture *f = *state;
  test_sqlite_files_remove(f->db);
  rmdir(f->dir);
  free(f);
  return 0;
}

/* Run the tool with the arguments (test JSON, ' for ") and idempotency
 * key (or NULL): its result (new reference), or NULL with f->outcome and
 * f->error. */
static inline json_t *fixture_call(fixture *f, const dl_tool *tool,
                                   const char *args, const char *key) {
  json_t *a = J(args);
  json_t *r = NULL;
  f->error[0] = '\0';
  f->outcome = dl_run_tool(tool, f->dir, FIXTURE_TENANT, key, a, NULL, &r,
                           f->error, sizeof f->error);
  json_decref(a);
  return r;
}

/* The call must fail as invalid arguments with `needle` in the message. */
static inline void fixture_invalid(fixture *f, const dl_tool *tool,
                                   const char *args, const char *needle) {
  json_t *r = fixture_call(f, tool, args, NULL);
  if (r) {
    char *s = json_dumps(r, JSON_COMPACT);
    fail_msg("%s(%s) answered %s, want an error with '%s'", tool->name, args, s,
             needle);
  }
  if (f->outcome != DL_INVALID_ARGS || !strstr(f->error, needle))
    fail_msg("%s(%s): got %s error \"%s\", want invalid arguments with "
             "'%s'",
             tool->name, args,
             f->outcome == DL_INVALID_ARGS ? "an invalid-arguments" : "a tool",
             f->error, needle);
}

/* assert_json_eq that takes (and frees) `want`, for J(...) in place. */
static inline void assert_json_is(const json_t *got, json_t *want) {
  assert_json_eq(got, want);
  json_decref(want);
}

static inline double num(json_t *v, const char *key) {
  json_t *x = json_object_get(v, key);
  if (!json_is_number(x)) fail_msg("no number '%s'", key);
  return json_number_value(x);
}

static inline const char *str(json_t *v, const char *key) {
  json_t *x = json_object_get(v, key);
  if (!json_is_string(x)) fail_msg("no string '%s'", key);
  return json_string_value(x);
}

#endif
