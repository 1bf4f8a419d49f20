/* test_app_fixture.h: an embedded switchboard (sb_app) started on a config
 * file in a temporary directory of its own, for the C unit tests of
 * src/app/. The test writes the config (naming app_fixture.store as the
 * store's path), starts, and frees; the directory goes with it. */
#ifndef SB_TEST_APP_FIXTURE_H
#define SB_TEST_APP_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "app/app.h"
#include "test_files.h"
#include "test_loop.h"

typedef struct app_fixture {
  char dir[64];
  char path[128];  /* the config file */
  char store[128]; /* the store's file, in dir */
  uv_loop_t loop;
  sb_config cfg;
  sb_app *app; /* NULL once stopped */
} app_fixture;

/* A fixture with its directory (/tmp/sb-<name>-XXXXXX) made and its loop
 * ready; NULL if the directory could not be made. */
static inline app_fixture *app_fixture_new(const char *name) {
  app_fixture *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  snprintf(f->dir, sizeof f->dir, "/tmp/sb-%s-XXXXXX", name);
  if (!mkdtemp(f->dir)) {
    free(f);
    return NULL;
  }
  snprintf(f->path, sizeof f->path, "%s/switchboard.yaml", f->dir);
  snprintf(f->store, sizeof f->store, "%s/store.db", f->dir);
  uv_loop_init(&f->loop);
  return f;
}

/* Load the config file and start the app, embedded; a failure fails the
 * test with its message. */
static inline void app_fixture_start(app_fixture *f) {
  sb_config_defaults(&f->cfg);
  sb_error err = {0};
  if (sb_config_load(&f->cfg, f->path, &err) != 0) fail_msg("%s", err.msg);
  sb_app_options o = {.config = &f->cfg, .loop = &f->loop, .embedded = 1};
  if (!(f->app = sb_app_start(&o, &err))) fail_msg("start: %s", err.msg);
}

/* Stop the app (if the test has not), let everything it closed finish
 * closing (nothing may stay open), remove the files and the directory. */
static inline void app_fixture_free(app_fixture *f) {
  sb_app_stop(f->app);
  assert_int_equal(loop_finish(&f->loop), 0);
  sb_config_free(&f->cfg);
  test_sqlite_files_remove(f->store);
  unlink(f->path);
  rmdir(f->dir);
  free(f);
}

#endif
