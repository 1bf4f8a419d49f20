/* Unit tests for src/core/log.c: once sb_log_start has run, a log line
 * never blocks the thread that logs, whoever reads stderr. Here stderr is
 * a pipe the test reads, or does not: a reader that lags gets every line
 * the buffer held, whole, and a line counting the ones dropped; lines of
 * several threads arrive whole and in each thread's order; sb_log_stop
 * hands over what waits; a reader that is gone costs nothing. */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

static int saved_stderr = -1;

/* stderr becomes the write end of a pipe of `size` bytes; returns its
 * read end. */
static int stderr_to_pipe(int size) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  if (size) (void)fcntl(p[1], F_SETPIPE_SZ, size);
  saved_stderr = dup(STDERR_FILENO);
  assert_true(saved_stderr >= 0);
  assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
  close(p[1]);
  return p[0];
}

static void stderr_back(void) {
  dup2(saved_stderr, STDERR_FILENO);
  close(saved_stderr);
  saved_stderr = -1;
}

/* Everything on fd until `until` is in it (or EOF); a new string. */
static char *read_until(int fd, const char *until) {
  size_t cap = 1 << 16, len = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  text[0] = '\0';
  while (!strstr(text, until)) {
    if (cap - len < 65536 + 1) {
      cap *= 2;
      text = realloc(text, cap);
      assert_non_null(text);
    }
    ssize_t n = read(fd, text + len, 65536);
    if (n <= 0) break;
    len += (size_t)n;
    text[len] = '\0';
  }
  return text;
}

/* Count lines "... test: line N ..." and check each is whole. */
static int count_lines(const char *text, const char *what) {
  int n = 0;
  for (const char *l = text; *l;) {
    const char *end = strchr(l, '\n');
    assert_non_null(end);                  /* every line ends */
    assert_true(strncmp(l, "20", 2) == 0); /* and starts with its time */
    if (memmem(l, (size_t)(end - l), what, strlen(what))) n++;
    l = end + 1;
  }
  return n;
}

static void test_lagging_reader(void **state) {
  (void)state;
  int rd = stderr_to_pipe(4096);
  assert_int_equal(sb_log_start(), 0);
  char filler[1001];
  memset(filler, 'x', 1000);
  filler[1000] = '\0';
  /* 3 MB into a pipe nobody reads: each call returns. */
  for (int i = 0; i < 3000; i++)
    SB_INFO("test", "line %d %s", i, filler);
  char *text = read_until(rd, "not being read");
  int kept = count_lines(text, "test: line ");
  unsigned long dropped = 0;
  const char *note = strstr(text, "warning log: ");
  assert_non_null(note);
  assert_int_equal(sscanf(note, "warning log: %lu log lines dropped", &dropped),
                   1);
  /* The first lines went out (the pipe, then the buffer); the rest are
   * counted, none twice or lost. */
  assert_non_null(strstr(text, "test: line 0 x"));
  assert_true(kept >= 1000 && dropped >= 1000);
  assert_int_equal(kept + (int)dropped, 3000);
  free(text);
  /* Lines written after that go out as before. */
  SB_INFO("test", "after");
  char *end = read_until(rd, "test: after\n");
  assert_non_null(strstr(end, "test: after\n"));
  free(end);
  sb_log_stop();
  stderr_back();
  close(rd);
}

enum { THREADS = 4, PER_THREAD = 2000 };

static void *chatter(void *arg) {
  int t = (int)(intptr_t)arg;
  for (int i = 0; i < PER_THREAD; i++)
    SB_INFO("test", "t%d n%d.", t, i);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  int rd = stderr_to_pipe(0);
  assert_int_equal(sb_log_start(), 0);
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++)
    assert_int_equal(pthread_create(&th[t], NULL, chatter, (void *)(intptr_t)t),
                     0);
  for (int t = 0; t < THREADS; t++)
    pthread_join(th[t], NULL);
  SB_INFO("test", "done");
  char *text = read_until(rd, "test: done\n");
  /* Each thread's lines whole, all there, in its order: under the buffer's
   * size nothing is dropped, however the reader lags. */
  assert_int_equal(count_lines(text, "test: t"), THREADS * PER_THREAD);
  int next[THREADS] = {0};
  for (const char *l = strstr(text, "test: t"); l;
       l = strstr(l + 1, "test: t")) {
    int t, i;
    assert_int_equal(sscanf(l, "test: t%d n%d.", &t, &i), 2);
    assert_int_equal(i, next[t]);
    next[t]++;
  }
  assert_null(strstr(text, "dropped"));
  free(text);
  sb_log_stop();
  stderr_back();
  close(rd);
}

typedef struct {
  int fd;
  char *text;
} reader_arg;

static void *reader(void *arg) {
  reader_arg *r = arg;
  r->text = read_until(r->fd, "test: last 199\n");
  return NULL;
}

static void test_stop_hands_over(void **state) {
  (void)state;
  int rd = stderr_to_pipe(4096);
  assert_int_equal(sb_log_start(), 0);
  for (int i = 0; i < 200; i++)
    SB_INFO("test", "last %d", i);
  /* The reader comes only now: sb_log_stop waits for it. */
  reader_arg r = {.fd = rd};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, reader, &r), 0);
  sb_log_stop();
  pthread_join(th, NULL);
  assert_int_equal(count_lines(r.text, "test: last "), 200);
  free(r.text);
  stderr_back();
  close(rd);
}

static void test_reader_gone(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN); /* as the server does */
  int rd = stderr_to_pipe(4096);
  close(rd);
  assert_int_equal(sb_log_start(), 0);
  for (int i = 0; i < 2000; i++)
    SB_INFO("test", "into the void %d", i);
  sb_log_stop();
  stderr_back();
}

int main(void) {
  sb_core_init();
  sb_log_set_level(SB_LOG_INFO);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lagging_reader),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_stop_hands_over),
      cmocka_unit_test(test_reader_gone),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
