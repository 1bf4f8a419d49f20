/* test_loop.h: running a libuv loop until a condition holds, with a
 * deadline instead of sleeps. Shared by the C unit tests. */
#ifndef SB_TEST_LOOP_H
#define SB_TEST_LOOP_H

#include <stdint.h>
#include <uv.h>

static inline void test_on_deadline(uv_timer_t *t) { *(int *)t->data = 1; }

/* Run the loop until cond(ud) or ms pass; returns cond(ud). With unref the
 * deadline itself does not keep the loop alive (waiting for it to idle). */
static inline int run_until_ex(uv_loop_t *loop, int (*cond)(void *), void *ud,
                               uint64_t ms, int unref) {
  uv_timer_t deadline;
  int expired = 0;
  uv_timer_init(loop, &deadline);
  deadline.data = &expired;
  uv_timer_start(&deadline, test_on_deadline, ms, 0);
  if (unref) uv_unref((uv_handle_t *)&deadline);
  while (!cond(ud) && !expired)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&deadline, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return cond(ud);
}

static inline int run_until(uv_loop_t *loop, int (*cond)(void *), void *ud,
                            uint64_t ms) {
  return run_until_ex(loop, cond, ud, ms, 0);
}

static inline int loop_idle(void *ud) { return !uv_loop_alive(ud); }

/* Conditions for run_until: an int flag set by a callback. */
static inline int flag_set(void *ud) { return *(const int *)ud != 0; }

/* Let handles closed by the code under test (e.g. a closed store's) finish
 * closing, then close the loop; 0 when nothing was left open. */
static inline int loop_finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop);
}

#endif
