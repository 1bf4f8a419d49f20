/* test_loop.h: running a libuv loop until a condition holds, with a
 * deadline instead of sleeps. Shared by the C unit tests. */
#ifndef SB_TEST_LOOP_H
#define SB_TEST_LOOP_H

#include <stdint.h>
#include <uv.h>

/* The deadline of a wait that only a hang should reach. Generous: behind
 * other tests' fsyncs on a shared disk, one commit has been seen to take
 * seconds. A passing run never waits for it. */
#define TEST_WAIT_MS 30000

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

/* ---- the thread pool, in tests that give it one thread
 * (UV_THREADPOOL_SIZE=1 before its first use: work runs in queue order) */

/* Work queued behind whatever the pool holds now. */
typedef struct test_pool_marker {
  uv_work_t w;
  uv_sem_t ran; /* posted on the worker: all before it has run */
  int done;     /* set on the loop: all before it has called back */
} test_pool_marker;

static inline void test_pool_marker_work(uv_work_t *w) {
  uv_sem_post(&((test_pool_marker *)w->data)->ran);
}

static inline void test_pool_marker_done(uv_work_t *w, int status) {
  (void)status;
  ((test_pool_marker *)w->data)->done = 1;
}

/* 0, or a libuv error (nothing queued). */
static inline int test_pool_marker_queue(uv_loop_t *loop, test_pool_marker *m) {
  m->done = 0;
  if (uv_sem_init(&m->ran, 0) != 0) return -1;
  m->w.data = m;
  int rc = uv_queue_work(loop, &m->w, test_pool_marker_work,
                         test_pool_marker_done);
  if (rc != 0) uv_sem_destroy(&m->ran);
  return rc;
}

/* Run the loop until everything queued on the pool before now has run and
 * called back; 1, or 0 when ms passed first. */
static inline int test_pool_settle(uv_loop_t *loop, uint64_t ms) {
  test_pool_marker m;
  if (test_pool_marker_queue(loop, &m) != 0) return 0;
  if (!run_until(loop, flag_set, &m.done, ms)) return 0;
  uv_sem_destroy(&m.ran);
  return 1;
}

#endif
