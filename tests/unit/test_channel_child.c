/* test_channel_child.c: channels to stdio agents (src/net/child.c).
 *
 * The agent is this very executable run as `test_channel_child --agent
 * MODE` (see agent_main): it echoes each stdin line and obeys a few
 * commands ("crash", "exit", "garbage", "oversize", "stderr", "flood"), or
 * ignores stdin, or ignores SIGTERM. The tests drive a real uv loop until a
 * condition holds or a deadline passes; nothing waits by sleeping. Also a
 * real MCP server: switchboard itself in --stdio mode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "test_files.h"
#include "test_loop.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/net.h"
#include "rpc/rpc.h"

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

static int agent_main(const char *mode) {
  static char line[1 << 20];
  char buf[256];
  if (strcmp(mode, "ignore") == 0) {
    for (;;)
      pause();
  }
  if (strcmp(mode, "stubborn") == 0) signal(SIGTERM, SIG_IGN);
  if (strcmp(mode, "trailing") == 0) {
    put("{\"jsonrpc\":\"2.0\",\"method\":\"last\"}"); /* no newline */
    return 0;
  }
  if (strcmp(mode, "env") == 0) {
    const char *v = getenv("SB_TEST_AGENT_VAR");
    snprintf(
        buf, sizeof buf,
        "{\"jsonrpc\":\"2.0\",\"method\":\"env\",\"params\":{\"v\":\"%s\"}}\n",
        v ? v : "(unset)");
    put(buf);
  }
  while (fgets(line, sizeof line, stdin)) {
    if (strstr(line, "\"cmd\":\"crash\"")) kill(getpid(), SIGKILL);
    if (strstr(line, "\"cmd\":\"exit\"")) return 7;
    if (strstr(line, "\"cmd\":\"garbage\"")) {
      for (int i = 0; i < 40; i++) {
        snprintf(buf, sizeof buf, "this is not json %d\n", i);
        put(buf);
      }
      continue;
    }
    if (strstr(line, "\"cmd\":\"oversize\"")) {
      put("{\"jsonrpc\":\"2.0\",\"method\":\"big\",\"params\":{\"x\":\"");
      memset(line, 'x', 300000);
      line[300000] = '\0';
      put(line);
      put("\"}}\n");
      continue;
    }
    if (strstr(line, "\"cmd\":\"stderr\"")) {
      fprintf(stderr, "hello from the agent\n");
      fflush(stderr);
    }
    if (strstr(line, "\"cmd\":\"flood\"")) {
      for (int i = 0; i < 2000; i++)
        fprintf(stderr, "noise %d\n", i);
      fflush(stderr);
      return 0;
    }
    if (strstr(line, "\"cmd\":\"split\"")) {
      /* one message in many small writes: framing across partial reads */
      const char *m = "{\"jsonrpc\":\"2.0\",\"method\":\"split\"}\n";
      for (const char *p = m; *p; p++) {
        char c[2] = {*p, 0};
        put(c);
        usleep(200);
      }
      continue;
    }
    put(line);
  }
  if (strcmp(mode, "stubborn") == 0) /* not even EOF on stdin stops it */
    for (;;)
      pause();
  return 0;
}

/* ---- harness ------------------------------------------------------------- */

static char self_exe[4096];

typedef struct recorder {
  json_t *msgs;  /* every message, in order */
  json_t *order; /* "msg" / "closed" in order */
  int closed;
  char detail[256];
} recorder;

static void rec_message(void *ud, json_t *msg) {
  recorder *r = ud;
  assert_int_equal(r->closed, 0); /* nothing after on_closed */
  json_array_append(r->msgs, msg);
  json_array_append_new(r->order, json_string("msg"));
}

static void rec_closed(void *ud, const char *detail) {
  recorder *r = ud;
  assert_int_equal(r->closed, 0);
  r->closed = 1;
  snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
  json_array_append_new(r->order, json_string("closed"));
}

static void rec_init(recorder *r) {
  memset(r, 0, sizeof *r);
  r->msgs = json_array();
  r->order = json_array();
}

static void rec_free(recorder *r) {
  json_decref(r->msgs);
  json_decref(r->order);
}

static int is_closed(void *ud) { return ((recorder *)ud)->closed; }
static size_t want_msgs;
static int has_msgs(void *ud) {
  return json_array_size(((recorder *)ud)->msgs) >= want_msgs;
}

/* Everything the channel started must wind down by itself. */
static void finish_loop(uv_loop_t *loop) {
  assert_true(run_until_ex(loop, loop_idle, loop, 5000, 1));
  assert_int_equal(uv_loop_close(loop), 0);
}

static int process_gone(int pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

static sb_channel *spawn_agent(uv_loop_t *loop, recorder *r, const char *mode,
                               const char *name, size_t max_bytes) {
  const char *args[] = {"--agent", mode, NULL};
  const char *env[] = {"SB_TEST_AGENT_VAR=from-options", NULL};
  sb_child_options o = {.command = self_exe,
                        .args = args,
                        .env = env,
                        .name = name,
                        .max_message_bytes = max_bytes};
  sb_channel_events ev = {rec_message, rec_closed, r, NULL, NULL};
  sb_error err = {0};
  sb_channel *ch = sb_channel_spawn(loop, &o, &ev, &err);
  if (!ch) fail_msg("spawn: %s", err.msg);
  assert_true(sb_channel_pid(ch) > 0);
  return ch;
}

static void send_text(sb_channel *ch, const char *text) {
  json_error_t je;
  json_t *m = json_loads(text, 0, &je);
  assert_non_null(m);
  sb_error err = {0};
  if (sb_channel_send(ch, m, &err) != 0) fail_msg("send: %s", err.msg);
  json_decref(m);
}

/* Capture our own stderr (where sb_log writes) in a temp file. */
typedef struct log_capture {
  int saved_fd;
  char path[64];
} log_capture;

static void capture_start(log_capture *c) {
  fflush(stderr);
  snprintf(c->path, sizeof c->path, "/tmp/sb-chan-log-XXXXXX");
  int fd = mkstemp(c->path);
  assert_true(fd >= 0);
  c->saved_fd = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  close(fd);
}

/* The captured text so far (caller frees with free). */
static char *capture_read(log_capture *c) {
  fflush(stderr);
  FILE *f = fopen(c->path, "r");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  size_t got = fread(s, 1, (size_t)n, f);
  s[got] = '\0';
  fclose(f);
  return s;
}

static void capture_stop(log_capture *c) {
  fflush(stderr);
  dup2(c->saved_fd, STDERR_FILENO);
  close(c->saved_fd);
  unlink(c->path);
}

static size_t count_substr(const char *s, const char *sub) {
  size_t n = 0;
  for (const char *p = s; (p = strstr(p, sub)) != NULL; p += strlen(sub))
    n++;
  return n;
}

/* ---- tests --------------------------------------------------------------- */

static void echo_round_trip_in_order(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  sb_channel *ch = spawn_agent(&loop, &r, "env", "echo", 0);
  int pid = sb_channel_pid(ch);
  assert_int_equal(sb_channel_set_header(ch, "X-Ignored", "1"), 0);
  assert_null(sb_channel_session_id(ch));
  sb_error err = {0};
  assert_int_equal(sb_channel_open_stream(ch, &err), SB_ESTATE);

  send_text(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
  /* a message far larger than one pipe read: framed across reads */
  size_t big = 200000;
  char *text = malloc(big + 100);
  int n = snprintf(text, 100,
                   "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"x\","
                   "\"params\":{\"s\":\"");
  memset(text + n, 'y', big);
  strcpy(text + n + big, "\"}}");
  send_text(ch, text);
  send_text(
      ch,
      "{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"cmd\":\"split\"}}");
  want_msgs = 4; /* env banner, 2 echoes, the split message */
  if (!run_until(&loop, has_msgs, &r, 5000))
    fail_msg("got %zu messages: %.300s", json_array_size(r.msgs),
             json_dumps(r.msgs, 0));
  assert_string_equal(
      json_string_value(json_object_get(
          json_object_get(json_array_get(r.msgs, 0), "params"), "v")),
      "from-options");
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(r.msgs, 1), "id")), 1);
  json_t *m2 = json_array_get(r.msgs, 2);
  assert_int_equal(json_integer_value(json_object_get(m2, "id")), 2);
  assert_int_equal(strlen(json_string_value(
                       json_object_get(json_object_get(m2, "params"), "s"))),
                   big);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(r.msgs, 3), "method")),
      "split");
  assert_int_equal(r.closed, 0);
  free(text);

  /* close kills the agent, reports nothing, and frees everything */
  sb_channel_close(ch);
  finish_loop(&loop);
  assert_int_equal(r.closed, 0);
  assert_true(process_gone(pid));
  rec_free(&r);
}

static void exit_status_noticed(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  sb_channel *ch = spawn_agent(&loop, &r, "echo", "quitter", 0);
  send_text(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}");
  send_text(
      ch,
      "{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"cmd\":\"exit\"}}");
  assert_true(run_until(&loop, is_closed, &r, 5000));
  assert_string_equal(r.detail, "exited with status 7");
  /* the echo written before the exit arrived first */
  assert_int_equal(json_array_size(r.msgs), 1);
  assert_string_equal(json_string_value(json_array_get(r.order, 1)), "closed");
  /* sending to a dead agent is an error, not a crash or a hang */
  json_t *m = json_pack("{sssi}", "jsonrpc", "2.0", "id", 2);
  sb_error err = {0};
  assert_true(sb_channel_send(ch, m, &err) < 0);
  assert_true(err.msg[0] != '\0');
  json_decref(m);
  sb_channel_close(ch);
  finish_loop(&loop);
  rec_free(&r);
}

static void crash_reported_as_signal(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  sb_channel *ch = spawn_agent(&loop, &r, "echo", "crasher", 0);
  send_text(
      ch,
      "{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"cmd\":\"crash\"}}");
  assert_true(run_until(&loop, is_closed, &r, 5000));
  assert_string_equal(r.detail, "killed by signal 9");
  assert_int_equal(json_array_size(r.msgs), 0);
  sb_channel_close(ch);
  finish_loop(&loop);
  rec_free(&r);
}

static void last_line_without_newline_delivered(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  sb_channel *ch = spawn_agent(&loop, &r, "trailing", "trailer", 0);
  assert_true(run_until(&loop, is_closed, &r, 5000));
  assert_string_equal(r.detail, "exited with status 0");
  assert_int_equal(json_array_size(r.msgs), 1);
  assert_string_equal(json_string_value(json_array_get(r.order, 0)), "msg");
  sb_channel_close(ch);
  finish_loop(&loop);
  rec_free(&r);
}

static void garbage_disconnects(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  log_capture cap;
  capture_start(&cap);
  sb_channel *ch = spawn_agent(&loop, &r, "echo", "babbler", 0);
  int pid = sb_channel_pid(ch);
  send_text(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}");
  send_text(ch, "{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"cmd\":"
                "\"garbage\"}}");
  assert_true(run_until(&loop, is_closed, &r, 5000));
  char *log = capture_read(&cap);
  capture_stop(&cap);
  assert_non_null(strstr(r.detail, "not JSON-RPC"));
  /* the good message before the garbage still arrived */
  assert_int_equal(json_array_size(r.msgs), 1);
  /* a few garbage lines are logged, not all forty */
  size_t logged = count_substr(log, "agent babbler: ignoring a stdout line");
  assert_true(logged >= 1 && logged <= 5);
  free(log);
  /* we killed it ourselves: it goes away before we close the channel */
  json_t *m = json_pack("{ss}", "jsonrpc", "2.0");
  assert_int_equal(sb_channel_send(ch, m, NULL), SB_ESTATE);
  json_decref(m);
  sb_channel_close(ch);
  finish_loop(&loop);
  assert_true(process_gone(pid));
  rec_free(&r);
}

static void oversized_line_disconnects(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  sb_channel *ch = spawn_agent(&loop, &r, "echo", "bigmouth", 65536);
  int pid = sb_channel_pid(ch);
  send_text(ch, "{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"cmd\":"
                "\"oversize\"}}");
  assert_true(run_until(&loop, is_closed, &r, 5000));
  assert_non_null(strstr(r.detail, "longer than the limit of 65536 bytes"));
  assert_int_equal(json_array_size(r.msgs), 0);
  sb_channel_close(ch);
  finish_loop(&loop);
  assert_true(process_gone(pid));
  rec_free(&r);
}

static char *flood_log;
static log_capture flood_cap;
static int flood_summarised(void *ud) {
  free(flood_log);
  flood_log = capture_read(&flood_cap);
  return strstr(flood_log, "stderr lines not logged") != NULL &&
         ((recorder *)ud)->closed;
}

static void stderr_logged_and_rate_limited(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  capture_start(&flood_cap);
  sb_channel *ch = spawn_agent(&loop, &r, "echo", "noisy", 0);
  send_text(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"n\",\"params\":{"
                "\"cmd\":\"stderr\"}}");
  send_text(
      ch,
      "{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"cmd\":\"flood\"}}");
  int ok = run_until(&loop, flood_summarised, &r, 10000);
  capture_stop(&flood_cap);
  assert_true(ok);
  assert_non_null(strstr(flood_log, "agent noisy: hello from the agent"));
  /* 2000 lines: a burst is logged, the rest only counted */
  size_t logged = count_substr(flood_log, "agent noisy: noise ");
  assert_true(logged >= 1 && logged < 200);
  size_t dropped = 0;
  for (const char *p = flood_log; (p = strstr(p, "agent noisy: ")) != NULL;
       p++) {
    unsigned n = 0;
    if (sscanf(p, "agent noisy: %u stderr lines not logged", &n) == 1)
      dropped += n;
  }
  assert_int_equal(logged + dropped, 2000);
  free(flood_log);
  flood_log = NULL;
  sb_channel_close(ch);
  finish_loop(&loop);
  rec_free(&r);
}

static void close_kills_running_agent(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  sb_channel *ch = spawn_agent(&loop, &r, "ignore", "sleeper", 0);
  int pid = sb_channel_pid(ch);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(kill(pid, 0), 0);
  sb_channel_close(ch);
  finish_loop(&loop);
  assert_true(process_gone(pid));
  assert_int_equal(r.closed, 0);
  assert_int_equal(json_array_size(r.order), 0);
  rec_free(&r);
}

static void sigkill_after_grace(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  sb_channel *ch = spawn_agent(&loop, &r, "stubborn", "stubborn", 0);
  int pid = sb_channel_pid(ch);
  /* its answer proves SIGTERM is ignored by now */
  send_text(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}");
  want_msgs = 1;
  assert_true(run_until(&loop, has_msgs, &r, 5000));
  uint64_t t0 = sb_now_ms();
  sb_channel_close(ch);
  finish_loop(&loop);
  assert_true(process_gone(pid));
  /* it took the grace period, i.e. SIGTERM alone did not do it */
  assert_true(sb_now_ms() - t0 >= 1400);
  rec_free(&r);
}

static void stuck_reader_disconnects(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  sb_channel *ch = spawn_agent(&loop, &r, "ignore", "deaf", 65536);
  int pid = sb_channel_pid(ch);
  size_t big = 60000;
  json_t *m = json_pack("{sssiss}", "jsonrpc", "2.0", "id", 1, "method", "x");
  char *pad = malloc(big + 1);
  memset(pad, 'z', big);
  pad[big] = '\0';
  json_object_set_new(m, "params", json_pack("{ss}", "pad", pad));
  free(pad);
  int rc = 0, sent = 0;
  sb_error err = {0};
  while (sent < 200 && (rc = sb_channel_send(ch, m, &err)) == 0)
    sent++;
  json_decref(m);
  assert_int_equal(rc, SB_EIO);
  assert_non_null(strstr(err.msg, "stopped reading its stdin"));
  /* at least the 1 MiB floor was queued before we gave up, and not much more */
  assert_true(sent >= 1048576 / 60000 && sent < 40);
  assert_true(run_until(&loop, is_closed, &r, 5000));
  assert_non_null(strstr(r.detail, "stopped reading its stdin"));
  sb_channel_close(ch);
  finish_loop(&loop);
  assert_true(process_gone(pid));
  rec_free(&r);
}

static void spawn_failure_is_an_error(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  sb_child_options o = {.command = "/nonexistent/agent-binary",
                        .name = "ghost"};
  sb_channel_events ev = {rec_message, rec_closed, &r, NULL, NULL};
  sb_error err = {0};
  assert_null(sb_channel_spawn(&loop, &o, &ev, &err));
  assert_int_equal(err.code, SB_EIO);
  assert_non_null(strstr(err.msg, "ghost"));
  assert_non_null(strstr(err.msg, "no such file"));
  sb_child_options none = {0};
  assert_null(sb_channel_spawn(&loop, &none, &ev, &err));
  assert_int_equal(err.code, SB_EINVAL);
  finish_loop(&loop);
  assert_int_equal(r.closed, 0);
  rec_free(&r);
}

/* Close from inside on_message: no further callbacks, nothing leaks. */
static void close_inside_callback_cb(void *ud, json_t *msg) {
  void **slots = ud;
  (*(int *)slots[1])++;
  sb_channel_close(slots[0]);
}
static void fail_on_closed(void *ud, const char *d) {
  fail_msg("on_closed: %s", d);
}

static void close_from_callback(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  int calls = 0;
  void *slots[2] = {NULL, &calls};
  const char *args[] = {"--agent", "echo", NULL};
  sb_child_options o = {.command = self_exe, .args = args, .name = "reentrant"};
  sb_channel_events ev = {close_inside_callback_cb, fail_on_closed, slots, NULL, NULL};
  sb_channel *ch = sb_channel_spawn(&loop, &o, &ev, NULL);
  assert_non_null(ch);
  slots[0] = ch;
  /* two lines, likely in one read: the second must not be delivered */
  send_text(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}");
  send_text(ch, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"a\"}");
  finish_loop(&loop);
  assert_int_equal(calls, 1);
}

/* A real MCP agent: switchboard itself, serving stdio. */
static void talks_to_switchboard_stdio(void **state) {
  (void)state;
  char bin[4200], store[64];
  const char *env_bin = getenv("SWITCHBOARD_BIN");
  if (env_bin)
    snprintf(bin, sizeof bin, "%s", env_bin);
  else {
    snprintf(bin, sizeof bin, "%s", self_exe);
    char *slash = strrchr(bin, '/');
    *slash = '\0';
    slash = strrchr(bin, '/');
    snprintf(slash, sizeof bin - (size_t)(slash - bin), "/switchboard");
  }
  if (access(bin, X_OK) != 0) skip();
  snprintf(store, sizeof store, "/tmp/sb-chan-store-XXXXXX");
  assert_non_null(mkdtemp(store));
  char store_file[128];
  snprintf(store_file, sizeof store_file, "%s/s.db", store);
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  const char *args[] = {"serve",       "--stdio", "--store", store_file,
                        "--log-level", "warning", NULL};
  sb_child_options o = {.command = bin, .args = args, .name = "switchboard"};
  sb_channel_events ev = {rec_message, rec_closed, &r, NULL, NULL};
  sb_error err = {0};
  sb_channel *ch = sb_channel_spawn(&loop, &o, &ev, &err);
  assert_non_null(ch);
  send_text(ch, "{\"jsonrpc\":\"2.0\",\"id\":\"t1\",\"method\":\"tools/call\","
                "\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"hi\"},"
                "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":"
                "\"2026-07-28\",\"io.modelcontextprotocol/clientInfo\":"
                "{\"name\":\"t\",\"version\":\"1\"},"
                "\"io.modelcontextprotocol/clientCapabilities\":{}}}}");
  want_msgs = 1;
  assert_true(run_until(&loop, has_msgs, &r, 10000));
  json_t *res = json_array_get(r.msgs, 0);
  assert_string_equal(json_string_value(json_object_get(res, "id")), "t1");
  json_t *sc =
      json_object_get(json_object_get(res, "result"), "structuredContent");
  if (!sc) fail_msg("no structuredContent in %s", json_dumps(res, 0));
  assert_string_equal(json_string_value(json_object_get(sc, "text")), "hi");
  sb_channel_close(ch);
  finish_loop(&loop);
  assert_int_equal(r.closed, 0);
  rec_free(&r);
  test_sqlite_files_remove(store_file);
  rmdir(store);
}

/* Busy polling off and on: the same sequence of round trips (requests,
 * notifications, a message far larger than one read) arrives complete and
 * in order, and the channel still winds down by itself (the spinning
 * prepare never keeps the loop alive). With a 1 ms budget nearly every
 * answer is read by the spinning prepare rather than by libuv. */
static void round_trips(unsigned busy_poll_us) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  const char *args[] = {"--agent", "echo", NULL};
  sb_child_options o = {.command = self_exe,
                        .args = args,
                        .name = "spin",
                        .busy_poll_us = busy_poll_us};
  sb_channel_events ev = {rec_message, rec_closed, &r, NULL, NULL};
  sb_error err = {0};
  sb_channel *ch = sb_channel_spawn(&loop, &o, &ev, &err);
  if (!ch) fail_msg("spawn: %s", err.msg);
  size_t big = 150000;
  char *text = malloc(big + 100);
  assert_non_null(text);
  for (int i = 1; i <= 300; i++) {
    if (i % 100 == 0) {
      int n = snprintf(text, 100,
                       "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"x\","
                       "\"params\":{\"s\":\"",
                       i);
      memset(text + n, 'y', big);
      strcpy(text + n + big, "\"}}");
    } else {
      snprintf(text, 100, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\"}",
               i);
    }
    send_text(ch, text);
    if (i % 10 == 0) /* a notification: nothing answers it */
      send_text(ch, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/n\"}");
    want_msgs = (size_t)i + (size_t)i / 10;
    if (!run_until(&loop, has_msgs, &r, 5000))
      fail_msg("round %d: got %zu messages", i, json_array_size(r.msgs));
  }
  free(text);
  assert_int_equal(json_array_size(r.msgs), 330);
  int expect = 1;
  for (size_t k = 0; k < json_array_size(r.msgs); k++) {
    json_t *m = json_array_get(r.msgs, k);
    json_t *id = json_object_get(m, "id");
    if (!id) {
      assert_string_equal(json_string_value(json_object_get(m, "method")),
                          "notifications/n");
      continue;
    }
    assert_int_equal(json_integer_value(id), expect);
    if (expect % 100 == 0)
      assert_int_equal(strlen(json_string_value(
                           json_object_get(json_object_get(m, "params"), "s"))),
                       big);
    expect++;
  }
  assert_int_equal(expect, 301);
  sb_channel_close(ch);
  finish_loop(&loop);
  assert_int_equal(r.closed, 0);
  rec_free(&r);
}

static void busy_poll_off_round_trips(void **state) {
  (void)state;
  round_trips(0);
}

static void busy_poll_on_round_trips(void **state) {
  (void)state;
  round_trips(1000);
}

/* An agent that never answers: the spinning gives up after its budget
 * each time (the loop is not held), and the channel still closes. */
static void busy_poll_silent_agent(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  recorder r;
  rec_init(&r);
  const char *args[] = {"--agent", "ignore", NULL};
  sb_child_options o = {.command = self_exe,
                        .args = args,
                        .name = "silent",
                        .busy_poll_us = 1000};
  sb_channel_events ev = {rec_message, rec_closed, &r, NULL, NULL};
  sb_error err = {0};
  sb_channel *ch = sb_channel_spawn(&loop, &o, &ev, &err);
  if (!ch) fail_msg("spawn: %s", err.msg);
  int pid = sb_channel_pid(ch);
  send_text(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
  /* A timer 20 ms away: the loop must reach it (the spin is bounded). */
  int fired = 0;
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = &fired;
  uv_timer_start(&t, test_on_deadline, 20, 0);
  assert_true(run_until(&loop, flag_set, &fired, 5000));
  uv_close((uv_handle_t *)&t, NULL);
  assert_int_equal(json_array_size(r.msgs), 0);
  sb_channel_close(ch);
  finish_loop(&loop);
  assert_true(process_gone(pid));
  rec_free(&r);
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "--agent") == 0) return agent_main(argv[2]);
  sb_core_init();
  signal(SIGPIPE, SIG_IGN); /* as switchboard's main does */
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n <= 0) return 1;
  self_exe[n] = '\0';
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(echo_round_trip_in_order),
      cmocka_unit_test(exit_status_noticed),
      cmocka_unit_test(crash_reported_as_signal),
      cmocka_unit_test(last_line_without_newline_delivered),
      cmocka_unit_test(garbage_disconnects),
      cmocka_unit_test(oversized_line_disconnects),
      cmocka_unit_test(stderr_logged_and_rate_limited),
      cmocka_unit_test(close_kills_running_agent),
      cmocka_unit_test(sigkill_after_grace),
      cmocka_unit_test(stuck_reader_disconnects),
      cmocka_unit_test(spawn_failure_is_an_error),
      cmocka_unit_test(close_from_callback),
      cmocka_unit_test(talks_to_switchboard_stdio),
      cmocka_unit_test(busy_poll_off_round_trips),
      cmocka_unit_test(busy_poll_on_round_trips),
      cmocka_unit_test(busy_poll_silent_agent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
