/* loop_wait.h: for tests of asynchronous modules — run a loop until a flag
 * is set, or fail the test at a deadline. Never a sleep: the loop runs
 * exactly until the condition holds. Include after cmocka.h. */
#ifndef SB_TEST_LOOP_WAIT_H
#define SB_TEST_LOOP_WAIT_H

#include <uv.h>

static void loop_wait_expired(uv_timer_t *t) { *(int *)t->data = 1; }

/* Run `loop` until *flag != 0; fail the test after deadline_ms. */
static void loop_wait(uv_loop_t *loop, const int *flag, uint64_t deadline_ms) {
  int expired = 0;
  uv_timer_t timer;
  uv_timer_init(loop, &timer);
  timer.data = &expired;
  uv_timer_start(&timer, loop_wait_expired, deadline_ms, 0);
  while (!*flag && !expired)
    uv_run(loop, UV_RUN_ONCE);
  uv_timer_stop(&timer);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(loop, UV_RUN_NOWAIT); /* the timer's close completes */
  if (!*flag)
    fail_msg("no answer within %llu ms", (unsigned long long)deadline_ms);
}

/* Close every handle still open (e.g. a closed store's) and the loop. */
static void loop_finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  if (uv_loop_close(loop) != 0) fail_msg("a loop handle was left open");
}

#endif
