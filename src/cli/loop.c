/* loop.c: ending a command's event loop once its modules have stopped. */
#include "cli/cli.h"

#define SHUTDOWN_GRACE_MS 5000

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void count_handle(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h) && uv_has_ref(h)) ++*(int *)arg;
}

/* A module kept a handle open after being stopped: don't hang the process
 * on it; say so (it is a bug) and let the command return. */
static void on_shutdown_timeout(uv_timer_t *t) {
  int open = 0;
  uv_walk(t->loop, count_handle, &open);
  SB_WARN("cli", "%d handle(s) still open %d ms after stop; exiting anyway",
          open, SHUTDOWN_GRACE_MS);
  uv_stop(t->loop);
}

int sb_cli_loop_drain(uv_loop_t *loop) {
  /* The guard is unreferenced, so it does not keep the loop alive: the run
   * below ends as soon as everything else has closed. */
  uv_timer_t guard;
  uv_timer_init(loop, &guard);
  /* The loop's clock may be as old as a start that blocked (a store
   * waiting for another process's lock): the grace counts from now. */
  uv_update_time(loop);
  uv_timer_start(&guard, on_shutdown_timeout, SHUTDOWN_GRACE_MS, 0);
  uv_unref((uv_handle_t *)&guard);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_walk(loop, close_walk, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop);
}
