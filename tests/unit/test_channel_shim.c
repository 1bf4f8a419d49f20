/* test_channel_shim.c: stdio agents started through the exec shim
 * (sb_child_options.exec_shim; src/net/child.c, child_shim.c).
 *
 * This executable is the shim (its main() begins with sb_child_shim_main),
 * the agent (`--agent MODE`) and, for the death of the parent, the parent
 * too (`--parent shim|direct`: it spawns a stubborn agent, prints the
 * agent's pid and kills itself with SIGKILL, so that no shutdown of ours
 * runs). The tests drive a real uv loop until a condition holds or a
 * deadline passes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "test_loop.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "rpc/rpc.h"

static char self_exe[4096];

/* ---- the agent ----------------------------------------------------------- */

static void put(const char *s) {
  size_t n = strlen(s);
  while (n) {
    ssize_t w = write(STDOUT_FILENO, s, n);
    if (w <= 0) _exit(3);
    s += w;
    n -= (size_t)w;
  }
}

/* "report": one message saying what the agent finds itself to be, then
 * until stdin EOF. "stubborn": says it is ready, then ignores SIGTERM and
 * stdin EOF alike; only SIGKILL ends it. */
static int agent_main(const char *mode, const char *argv0) {
  char buf[4600];
  if (strcmp(mode, "report") == 0) {
    int sig = 0;
    prctl(PR_GET_PDEATHSIG, &sig);
    snprintf(buf, sizeof buf,
             "{\"jsonrpc\":\"2.0\",\"method\":\"report\",\"params\":{"
             "\"pdeathsig\":%d,\"pid\":%d,\"ppid\":%d,\"fd3\":%d,"
             "\"argv0\":\"%s\"}}\n",
             sig, (int)getpid(), (int)getppid(),
             fcntl(3, F_GETFD) != -1, argv0);
    put(buf);
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    return 0;
  }
  signal(SIGTERM, SIG_IGN);
  put("{\"jsonrpc\":\"2.0\",\"method\":\"ready\"}\n");
  for (;;)
    pause();
}

/* ---- harness ------------------------------------------------------------- */

typedef struct recorder {
  json_t *msgs;
  int closed;
  char detail[256];
} recorder;

static void rec_message(void *ud, json_t *msg) {
  recorder *r = ud;
  assert_int_equal(r->closed, 0);
  json_array_append(r->msgs, msg);
}

static void rec_closed(void *ud, const char *detail) {
  recorder *r = ud;
  assert_int_equal(r->closed, 0);
  r->closed = 1;
  snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
}

static int is_closed(void *ud) { return ((recorder *)ud)->closed; }
static int has_msg(void *ud) { return json_array_size(((recorder *)ud)->msgs) > 0; }

static void finish_loop(uv_loop_t *loop) {
  assert_true(run_until_ex(loop, loop_idle, loop, 5000, 1));
  assert_int_equal(uv_loop_close(loop), 0);
}

static sb_channel *spawn(uv_loop_t *loop, recorder *r, const char *command,
                         const char *mode, const char *shim) {
  const char *args[] = {"--agent", mode, NULL};
  sb_child_options o = {.command = command,
                        .args = mode ? args : NULL,
                        .name = "shimmed",
                        .exec_shim = shim};
  sb_channel_events ev = {rec_message, rec_closed, r, NULL, NULL};
  sb_error err = {0};
  sb_channel *ch = sb_channel_spawn(loop, &o, &ev, &err);
  if (!ch) fail_msg("spawn: %s", err.msg);
  return ch;
}

/* Running: there, and not a zombie waiting for whoever reaps orphans. */
static int running(int pid) {
  if (kill(pid, 0) != 0) return 0;
  char path[64], stat[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(stat, 1, sizeof stat - 1, f);
  fclose(f);
  stat[n] = '\0';
  const char *end = strrchr(stat, ')');
  return end && end[1] == ' ' && end[2] != 'Z';
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Poll (every 10 ms, a re-check, not a wait for anything) until pid is no
 * longer running or ms pass; 1 if it is gone. */
static int gone_within(int pid, uint64_t ms) {
  uint64_t end = now_ms() + ms;
  while (running(pid)) {
    if (now_ms() > end) return 0;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return 1;
}

/* ---- the parent that dies ------------------------------------------------ */

static void on_parent_msg(void *ud, json_t *msg) { *(int *)ud = 1; }
static void on_parent_closed(void *ud, const char *detail) { _exit(4); }

static int parent_main(const char *how) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  int ready = 0;
  const char *args[] = {"--agent", "stubborn", NULL};
  sb_child_options o = {
      .command = self_exe,
      .args = args,
      .name = "stubborn",
      .exec_shim = strcmp(how, "shim") == 0 ? sb_child_shim_self() : NULL};
  sb_channel_events ev = {on_parent_msg, on_parent_closed, &ready, NULL, NULL};
  sb_channel *ch = sb_channel_spawn(&loop, &o, &ev, NULL);
  if (!ch || !run_until(&loop, flag_set, &ready, 10000)) return 5;
  printf("%d\n", sb_channel_pid(ch));
  fflush(stdout);
  kill(getpid(), SIGKILL); /* no shutdown: as a crash, or kill -9 */
  return 6;
}

/* Run `--parent how`, read the agent's pid it prints, and reap it. */
static int agent_of_dead_parent(const char *how) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t p = fork();
  assert_true(p >= 0);
  if (p == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execl(self_exe, self_exe, "--parent", how, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  char buf[32] = {0};
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(p, &status, 0), p);
  assert_true(n > 0);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  return atoi(buf);
}

/* ---- tests --------------------------------------------------------------- */

/* Through the shim the agent is the process spawned (same pid, our child),
 * with PR_SET_PDEATHSIG(SIGKILL), its own argv[0], and without the check
 * pipe; spawned directly it has no parent-death signal. */
static void agent_runs_in_place_with_pdeathsig(void **state) {
  (void)state;
  const char *shims[] = {sb_child_shim_self(), NULL};
  assert_non_null(shims[0]);
  for (int k = 0; k < 2; k++) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    recorder r = {.msgs = json_array()};
    sb_channel *ch = spawn(&loop, &r, self_exe, "report", shims[k]);
    assert_true(run_until(&loop, has_msg, &r, 10000));
    json_t *p = json_object_get(json_array_get(r.msgs, 0), "params");
    assert_int_equal(json_integer_value(json_object_get(p, "pdeathsig")),
                     k == 0 ? SIGKILL : 0);
    assert_int_equal(json_integer_value(json_object_get(p, "pid")),
                     sb_channel_pid(ch));
    assert_int_equal(json_integer_value(json_object_get(p, "ppid")), getpid());
    if (k == 0) /* the check pipe went at the exec (directly, fd 3 is ours) */
      assert_int_equal(json_integer_value(json_object_get(p, "fd3")), 0);
    assert_string_equal(json_string_value(json_object_get(p, "argv0")),
                        self_exe);
    sb_channel_close(ch);
    finish_loop(&loop);
    assert_int_equal(r.closed, 0);
    json_decref(r.msgs);
  }
}

/* A command the shim cannot exec: the channel closes naming the command
 * and the cause (not the shim's exit status), and nothing leaks. */
static void exec_failure_names_command_and_cause(void **state) {
  (void)state;
  char plain[] = "/tmp/sb-shim-plain-XXXXXX"; /* not executable */
  int fd = mkstemp(plain);
  assert_true(fd >= 0);
  close(fd);
  struct {
    const char *command, *cause;
  } cases[] = {{"/nonexistent/agent-binary", "no such file or directory"},
               {plain, "permission denied"}};
  for (size_t i = 0; i < 2; i++) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    recorder r = {.msgs = json_array()};
    sb_channel *ch =
        spawn(&loop, &r, cases[i].command, NULL, sb_child_shim_self());
    int pid = sb_channel_pid(ch);
    assert_true(run_until(&loop, is_closed, &r, 10000));
    char want[256];
    snprintf(want, sizeof want, "cannot start %s: %s", cases[i].command,
             cases[i].cause);
    assert_string_equal(r.detail, want);
    assert_int_equal(json_array_size(r.msgs), 0);
    sb_channel_close(ch);
    finish_loop(&loop);
    assert_false(running(pid));
    json_decref(r.msgs);
  }
  unlink(plain);
}

/* The same when the first request finds the agent gone already: the
 * write fails (its stdin is closed), the channel is known to have ended,
 * and its report still names the cause, not the write's failure nor the
 * shim's exit status. (Seen at startup: the exec failed before
 * switchboard wrote its first request, and the agent was reported as
 * "connect failed" instead.) */
static void exec_failure_found_by_the_first_write(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r = {.msgs = json_array()};
  const char *command = "/nonexistent/agent-binary";
  sb_channel *ch = spawn(&loop, &r, command, NULL, sb_child_shim_self());
  int pid = sb_channel_pid(ch);
  assert_false(sb_channel_ended(ch));
  /* Until the shim has failed its exec and exited (left to libuv to
   * reap): the loop does not run meanwhile, so nothing has noticed. */
  siginfo_t si;
  assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
  json_t *msg = json_pack("{sssisss{}}", "jsonrpc", "2.0", "id", 1, "method",
                          "initialize", "params");
  sb_error err = {0};
  assert_int_not_equal(sb_channel_send(ch, msg, &err), 0);
  json_decref(msg);
  assert_true(sb_channel_ended(ch));
  assert_true(run_until(&loop, is_closed, &r, 10000));
  char want[256];
  snprintf(want, sizeof want, "cannot start %s: no such file or directory",
           command);
  assert_string_equal(r.detail, want);
  sb_channel_close(ch);
  finish_loop(&loop);
  json_decref(r.msgs);
}

/* Run the shim by hand with `parent` as the pid it is to expect; its
 * stdout (up to cap bytes) into out; the exit status. */
static int run_shim(const char *parent, char *out, size_t cap) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t p = fork();
  assert_true(p >= 0);
  if (p == 0) {
    int null = open("/dev/null", O_RDONLY); /* the agent reads to EOF */
    if (null < 0 || dup2(null, STDIN_FILENO) < 0) _exit(125);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execl(self_exe, self_exe, SB_CHILD_SHIM_ARG, parent, self_exe, "--agent",
          "report", (char *)NULL);
    _exit(126);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t n;
  while (len + 1 < cap && (n = read(fds[0], out + len, cap - 1 - len)) > 0)
    len += (size_t)n;
  out[len] = '\0';
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(p, &status, 0), p);
  return status;
}

/* The classic race: the parent died before the shim could ask for the
 * signal, so the shim's parent is no longer the pid it was given. It then
 * exits rather than start an agent nobody will ever stop. */
static void shim_refuses_a_parent_not_its_own(void **state) {
  (void)state;
  char out[4096], me[24];
  snprintf(me, sizeof me, "%d", (int)getpid());
  int status = run_shim(me, out, sizeof out);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_non_null(strstr(out, "\"pdeathsig\":9"));
  status = run_shim("1", out, sizeof out);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 127);
  assert_string_equal(out, ""); /* the agent never ran */
}

/* The parent killed with SIGKILL: through the shim the stubborn agent dies
 * with it; spawned directly it lives on (and is killed here). */
static void agent_dies_with_its_parent(void **state) {
  (void)state;
  int pid = agent_of_dead_parent("shim");
  assert_true(pid > 0);
  if (!gone_within(pid, 10000)) {
    kill(pid, SIGKILL);
    fail_msg("agent %d outlived its parent", pid);
  }
  pid = agent_of_dead_parent("direct");
  assert_true(pid > 0);
  /* The kernel sends the parent-death signal before the parent can be
   * reaped, so by now an agent with one would be dying. */
  int orphaned = running(pid);
  kill(pid, SIGKILL);
  assert_true(orphaned);
}

int main(int argc, char **argv) {
  sb_child_shim_main(argc, argv);
  if (argc >= 3 && strcmp(argv[1], "--agent") == 0)
    return agent_main(argv[2], argv[0]);
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n <= 0) return 1;
  self_exe[n] = '\0';
  sb_core_init();
  signal(SIGPIPE, SIG_IGN); /* as switchboard's main does */
  if (argc >= 3 && strcmp(argv[1], "--parent") == 0)
    return parent_main(argv[2]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(agent_runs_in_place_with_pdeathsig),
      cmocka_unit_test(exec_failure_names_command_and_cause),
      cmocka_unit_test(exec_failure_found_by_the_first_write),
      cmocka_unit_test(shim_refuses_a_parent_not_its_own),
      cmocka_unit_test(agent_dies_with_its_parent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
