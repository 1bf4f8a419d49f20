/* test_store_fixture.h: a store in a fresh temporary directory, on a loop
 * of its own, for the tests of the store and of what is built on it
 * (test_store.c, test_store_runs.c, test_events.c). */
#ifndef SB_TEST_STORE_FIXTURE_H
#define SB_TEST_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "store/store.h"
#include "test_loop.h"

typedef struct store_fixture {
  char dir[64];
  char path[128];
  uv_loop_t loop;
  sb_store *st;
} store_fixture;

/* Open a store at path on loop (max_pending 0: the default); fails the
 * test if it cannot. */
static inline sb_store *store_open_at(uv_loop_t *loop, const char *path,
                                      int max_pending) {
  sb_error err = {0};
  sb_store_options o = {.path = path, .loop = loop, .max_pending = max_pending};
  sb_store *st = sb_store_open_sqlite(&o, &err);
  if (!st) fail_msg("open: %s", err.msg);
  return st;
}

/* /tmp/sb-NAME-XXXXXX/FILE (FILE may name a directory not yet there: the
 * store creates it), a loop, the store open on it. 0 or -1. */
static inline int store_fixture_open(store_fixture *f, const char *name,
                                     const char *file) {
  snprintf(f->dir, sizeof f->dir, "/tmp/sb-%s-XXXXXX", name);
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->path, sizeof f->path, "%s/%s", f->dir, file);
  uv_loop_init(&f->loop);
  f->st = store_open_at(&f->loop, f->path, 0);
  return 0;
}

/* Close the store and the loop (nothing may be left open), remove the
 * directory. 0 or -1. */
static inline int store_fixture_close(store_fixture *f) {
  sb_store_close(f->st);
  assert_int_equal(loop_finish(&f->loop), 0);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  return system(cmd) == 0 ? 0 : -1;
}

#endif
