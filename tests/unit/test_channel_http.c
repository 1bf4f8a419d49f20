/* test_channel_http.c: Streamable HTTP channels to agents
 * (src/net/http_client.c over libcurl multi on the uv loop).
 *
 * Two peers. switchboard itself (`switchboard serve --listen 127.0.0.1:0`,
 * its port read from its "listening on" log line) proves the channel
 * speaks real MCP, modern and legacy: header mirroring, sessions, SSE
 * responses with progress, the GET stream, cancellation. A tiny HTTP/1.1
 * server in this file, on the same loop, plays the misbehaving agent:
 * refused connections, 500 with no body, oversized or malformed bodies,
 * hand-made SSE, expired sessions, a GET stream that drops and 405s.
 * Every wait is the loop running until a condition, with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "test_files.h"
#include "test_loop.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "net/net.h"
#include "rpc/rpc.h"

/* Loop helpers (run_until, loop_idle) are in test_loop.h. */

static void finish_loop(uv_loop_t *loop) {
  assert_true(run_until_ex(loop, loop_idle, loop, 5000, 1));
  assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- recording what the channel delivers --------------------------------- */

typedef struct recorder {
  json_t *msgs;
  int closed;
  int stream_settled; /* on_stream_settled calls */
  char detail[256];
} recorder;

static void rec_stream_settled(void *ud) {
  recorder *r = ud;
  assert_int_equal(r->closed, 0);
  r->stream_settled++;
}

static int stream_settled(void *ud) {
  return ((recorder *)ud)->stream_settled > 0;
}

static void rec_message(void *ud, json_t *msg) {
  recorder *r = ud;
  assert_int_equal(r->closed, 0);
  json_array_append(r->msgs, msg);
}

/* A failure is recorded as {"id", "failure": kind, "detail"}. */
static void rec_failed(void *ud, json_t *id, sb_channel_failure kind,
                       const char *detail) {
  recorder *r = ud;
  assert_int_equal(r->closed, 0);
  json_array_append_new(r->msgs, json_pack("{sOsiss}", "id", id, "failure",
                                           (int)kind, "detail", detail));
}

static void rec_closed(void *ud, const char *detail) {
  recorder *r = ud;
  r->closed = 1;
  snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
}

static json_t *want_id;
/* The message answering want_id, or NULL. */
static json_t *answer_to(recorder *r, json_t *id) {
  for (size_t i = 0; i < json_array_size(r->msgs); i++) {
    json_t *m = json_array_get(r->msgs, i);
    if (!json_object_get(m, "method") &&
        json_equal(json_object_get(m, "id"), id))
      return m;
  }
  return NULL;
}
static int answered(void *ud) { return answer_to(ud, want_id) != NULL; }

static json_t *wait_answer(uv_loop_t *loop, recorder *r, json_t *id) {
  want_id = id;
  if (!run_until(loop, answered, r, 10000)) {
    char *all = json_dumps(r->msgs, 0);
    fail_msg("no answer to id %s; got %s", json_dumps(id, JSON_ENCODE_ANY),
             all);
  }
  return answer_to(r, id);
}

static void send_json(sb_channel *ch, const char *text) {
  json_error_t je;
  json_t *m = json_loads(text, 0, &je);
  if (!m) fail_msg("bad test JSON: %s", je.text);
  sb_error err = {0};
  if (sb_channel_send(ch, m, &err) != 0) fail_msg("send: %s", err.msg);
  json_decref(m);
}

static sb_channel *open_channel(uv_loop_t *loop, recorder *r, const char *url,
                                size_t max_bytes) {
  memset(r, 0, sizeof *r);
  r->msgs = json_array();
  sb_http_channel_options o = {.url = url,
                               .name = "tester",
                               .max_message_bytes = max_bytes,
                               .connect_timeout_ms = 2000};
  sb_channel_events ev = {rec_message, rec_closed, r, rec_failed,
                          rec_stream_settled};
  sb_error err = {0};
  sb_channel *ch = sb_channel_http(loop, &o, &ev, &err);
  if (!ch) fail_msg("sb_channel_http: %s", err.msg);
  assert_int_equal(sb_channel_pid(ch), 0);
  return ch;
}

/* The failure reported for a request (not an answer), checked: its kind
 * (0 = any), and its detail containing needle. Returns the kind. */
static int expect_failure(json_t *ans, int kind, const char *needle) {
  json_t *f = json_object_get(ans, "failure");
  if (!f) fail_msg("expected a failure, got %s", json_dumps(ans, 0));
  if (kind) assert_int_equal(json_integer_value(f), kind);
  const char *msg = json_string_value(json_object_get(ans, "detail"));
  assert_non_null(msg);
  if (needle && !strstr(msg, needle))
    fail_msg("failure detail \"%s\" lacks \"%s\"", msg, needle);
  return (int)json_integer_value(f);
}
#define expect_synth(ans, needle) expect_failure((ans), SB_CHANNEL_LOST, (needle))

/* ---- a tiny scripted HTTP/1.1 server ------------------------------------- */

typedef struct fake_server fake_server;
typedef struct fake_conn {
  uv_tcp_t tcp;
  fake_server *srv;
  sb_buf in;
  int closed; /* we closed it, or the peer did */
  struct fake_conn *next;
} fake_conn;

typedef void (*fake_handler)(fake_conn *c, const char *method, const char *head,
                             json_t *body);

struct fake_server {
  uv_tcp_t listener;
  int port;
  fake_handler handler;
  int accepted;
  int peer_closed; /* connections the client closed */
  int requests;
  char heads[32][2048];
  fake_conn *conns;
  int step; /* per-test state */
};

static void conn_closed_cb(uv_handle_t *h) {
  fake_conn *c = h->data;
  sb_buf_free(&c->in);
  free(c);
}

static void conn_close(fake_conn *c) {
  if (c->closed) return;
  c->closed = 1;
  fake_server *s = c->srv;
  for (fake_conn **pp = &s->conns; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

typedef struct fake_write {
  uv_write_t req;
  char *data;
} fake_write;

static void write_done(uv_write_t *req, int status) {
  fake_write *w = (fake_write *)req;
  free(w->data);
  free(w);
}

static void conn_write(fake_conn *c, const char *s) {
  if (c->closed) return;
  fake_write *w = malloc(sizeof *w);
  w->data = strdup(s);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)strlen(s));
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_done) != 0) {
    free(w->data);
    free(w);
  }
}

/* A complete response with a body and Content-Length. */
static void conn_respond(fake_conn *c, int status, const char *ctype,
                         const char *extra, const char *body) {
  char head[512];
  snprintf(head, sizeof head,
           "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s%s%s%s\r\n", status,
           strlen(body), ctype ? "Content-Type: " : "", ctype ? ctype : "",
           ctype ? "\r\n" : "", extra ? extra : "");
  conn_write(c, head);
  conn_write(c, body);
}

/* Value of header `name` in a request head, copied into out ("" if none). */
static const char *head_value(const char *head, const char *name, char *out,
                              size_t n) {
  out[0] = '\0';
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
      const char *v = p + 3 + nl;
      while (*v == ' ')
        v++;
      const char *e = strstr(v, "\r\n");
      size_t len = e ? (size_t)(e - v) : strlen(v);
      if (len >= n) len = n - 1;
      memcpy(out, v, len);
      out[len] = '\0';
      return out;
    }
  }
  return out;
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  fake_conn *c = h->data;
  sb_buf_reserve(&c->in, 65536);
  *buf = uv_buf_init(c->in.data + c->in.len,
                     (unsigned)(c->in.cap - c->in.len - 1));
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  fake_conn *c = st->data;
  if (nread < 0) {
    c->srv->peer_closed++;
    conn_close(c);
    return;
  }
  c->in.len += (size_t)nread;
  c->in.data[c->in.len] = '\0';
  for (;;) {
    char *end = strstr(c->in.data, "\r\n\r\n");
    if (!end) return;
    size_t head_len = (size_t)(end - c->in.data) + 4;
    char cl[32];
    char *head = strndup(c->in.data, head_len);
    size_t clen =
        (size_t)atol(head_value(head, "Content-Length", cl, sizeof cl));
    if (c->in.len < head_len + clen) {
      free(head);
      return;
    }
    json_t *body =
        clen ? json_loadb(c->in.data + head_len, clen, 0, NULL) : NULL;
    sb_buf_consume(&c->in, head_len + clen);
    fake_server *s = c->srv;
    if (s->requests < 32)
      snprintf(s->heads[s->requests], sizeof s->heads[0], "%s", head);
    s->requests++;
    char method[8] = {0};
    sscanf(head, "%7s", method);
    s->handler(c, method, head, body);
    json_decref(body);
    free(head);
    if (c->closed) return;
  }
}

static void on_accept(uv_stream_t *l, int status) {
  fake_server *s = l->data;
  fake_conn *c = calloc(1, sizeof *c);
  c->srv = s;
  uv_tcp_init(l->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
    return;
  }
  c->next = s->conns;
  s->conns = c;
  s->accepted++;
  uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

static void fake_start(uv_loop_t *loop, fake_server *s, fake_handler h) {
  memset(s, 0, sizeof *s);
  s->handler = h;
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 16, on_accept), 0);
  struct sockaddr_in got;
  int len = sizeof got;
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
  s->port = ntohs(got.sin_port);
}

static void fake_stop(fake_server *s) {
  while (s->conns)
    conn_close(s->conns);
  uv_close((uv_handle_t *)&s->listener, NULL);
}

static char fake_url[64];
static const char *url_of(fake_server *s) {
  snprintf(fake_url, sizeof fake_url, "http://127.0.0.1:%d/mcp", s->port);
  return fake_url;
}

static char *id_text(json_t *body) {
  return json_dumps(json_object_get(body, "id"), JSON_ENCODE_ANY);
}

/* ---- switchboard as the agent -------------------------------------------- */

typedef struct sb_proc {
  uv_process_t proc;
  uv_pipe_t err;
  sb_buf log;
  int port;
  int exited;
  char store[64];
} sb_proc;

static char self_exe[4096];

static void sbp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  sb_proc *p = h->data;
  sb_buf_reserve(&p->log, 4096);
  *buf = uv_buf_init(p->log.data + p->log.len,
                     (unsigned)(p->log.cap - p->log.len - 1));
}

static void sbp_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  sb_proc *p = st->data;
  if (n < 0) {
    uv_read_stop(st);
    return;
  }
  p->log.len += (size_t)n;
  p->log.data[p->log.len] = '\0';
  const char *at = p->port ? NULL : strstr(p->log.data, "listening on http://");
  const char *colon =
      at ? strchr(at + strlen("listening on http://"), ':') : NULL;
  if (colon && strchr(colon, '/')) p->port = atoi(colon + 1);
  if (p->log.len > 1 << 20) sb_buf_reset(&p->log); /* keep it bounded */
}

static void sbp_exit(uv_process_t *proc, int64_t status, int sig) {
  ((sb_proc *)proc->data)->exited = 1;
}

static int sbp_ready(void *ud) {
  sb_proc *p = ud;
  return p->port > 0 || p->exited;
}
static int sbp_gone(void *ud) { return ((sb_proc *)ud)->exited; }

static int sb_start(uv_loop_t *loop, sb_proc *p) {
  char bin[4200];
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
  if (access(bin, X_OK) != 0) return -1;
  memset(p, 0, sizeof *p);
  snprintf(p->store, sizeof p->store, "/tmp/sb-chan-http-XXXXXX");
  assert_non_null(mkdtemp(p->store));
  char store_file[128];
  snprintf(store_file, sizeof store_file, "%s/s.db", p->store);
  char *args[] = {bin,       "serve",    "--listen", "127.0.0.1:0",
                  "--store", store_file, NULL};
  uv_pipe_init(loop, &p->err, 0);
  p->err.data = p;
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_IGNORE},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
       .data.stream = (uv_stream_t *)&p->err},
  };
  uv_process_options_t o = {.exit_cb = sbp_exit,
                            .file = bin,
                            .args = args,
                            .stdio_count = 3,
                            .stdio = stdio};
  int rc = uv_spawn(loop, &p->proc, &o);
  p->proc.data = p;
  assert_int_equal(rc, 0);
  uv_read_start((uv_stream_t *)&p->err, sbp_alloc, sbp_read);
  assert_true(run_until(loop, sbp_ready, p, 10000));
  assert_true(p->port > 0);
  return 0;
}

static void sb_stop(uv_loop_t *loop, sb_proc *p) {
  uv_process_kill(&p->proc, SIGTERM);
  assert_true(run_until(loop, sbp_gone, p, 10000));
  uv_close((uv_handle_t *)&p->proc, NULL);
  uv_close((uv_handle_t *)&p->err, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  sb_buf_free(&p->log);
  char db[160];
  snprintf(db, sizeof db, "%s/s.db", p->store);
  test_sqlite_files_remove(db);
  rmdir(p->store);
}

static char sb_url[64];
static const char *url_of_sb(sb_proc *p) {
  snprintf(sb_url, sizeof sb_url, "http://127.0.0.1:%d/mcp", p->port);
  return sb_url;
}

#define MODERN_META                                                            \
  "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","     \
  "\"io.modelcontextprotocol/clientInfo\":{\"name\":\"t\",\"version\":"        \
  "\"1\"},\"io.modelcontextprotocol/clientCapabilities\":{}}"

static size_t msgs_before;
static int got_more(void *ud) {
  return json_array_size(((recorder *)ud)->msgs) > msgs_before;
}

static void modern_calls_against_switchboard(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_proc sbp;
  if (sb_start(&loop, &sbp) != 0) skip();
  recorder r;
  sb_channel *ch = open_channel(&loop, &r, url_of_sb(&sbp), 0);
  assert_int_equal(
      sb_channel_set_header(ch, "MCP-Protocol-Version", "2026-07-28"), 0);
  assert_int_equal(sb_channel_set_header(ch, "Bad\r\nHeader", "x"), SB_EINVAL);

  /* a tool call: switchboard checks Mcp-Method/Mcp-Name against the body */
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                "\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"hi\"}"
                "," MODERN_META "}}");
  json_t *id1 = json_integer(1);
  json_t *a = wait_answer(&loop, &r, id1);
  json_t *sc =
      json_object_get(json_object_get(a, "result"), "structuredContent");
  if (!sc) fail_msg("unexpected answer %s", json_dumps(a, 0));
  assert_string_equal(json_string_value(json_object_get(sc, "text")), "hi");

  /* a non-ASCII name travels base64-encoded: no header mismatch, just an
   * unknown tool */
  send_json(
      ch,
      "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
      "\"params\":{\"name\":\"\xc3\xa9\x63ho \",\"arguments\":{}," MODERN_META
      "}}");
  json_t *id2 = json_integer(2);
  a = wait_answer(&loop, &r, id2);
  json_t *err = json_object_get(a, "error");
  json_t *res = json_object_get(a, "result");
  assert_true(err || res);
  if (err)
    assert_int_not_equal(json_integer_value(json_object_get(err, "code")),
                         -32020);

  /* progress over an SSE response, then the result */
  send_json(ch,
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
            "\"params\":{\"name\":\"slow_count\",\"arguments\":{\"steps\":3,"
            "\"interval_ms\":5},\"_meta\":{\"progressToken\":\"p3\","
            "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
            "\"io.modelcontextprotocol/clientInfo\":{\"name\":\"t\","
            "\"version\":\"1\"},\"io.modelcontextprotocol/"
            "clientCapabilities\":{}}}}");
  json_t *id3 = json_integer(3);
  a = wait_answer(&loop, &r, id3);
  assert_non_null(json_object_get(a, "result"));
  size_t progress = 0;
  for (size_t i = 0; i < json_array_size(r.msgs); i++) {
    const char *m =
        json_string_value(json_object_get(json_array_get(r.msgs, i), "method"));
    if (m && strcmp(m, "notifications/progress") == 0) progress++;
  }
  assert_int_equal(progress, 3);

  /* cancel: the long call's POST is aborted and never answered, and the
   * channel keeps working */
  send_json(ch,
            "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\","
            "\"params\":{\"name\":\"slow_count\",\"arguments\":{\"steps\":1000,"
            "\"interval_ms\":20},\"_meta\":{\"progressToken\":\"p4\","
            "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
            "\"io.modelcontextprotocol/clientInfo\":{\"name\":\"t\","
            "\"version\":\"1\"},\"io.modelcontextprotocol/"
            "clientCapabilities\":{}}}}");
  /* wait for the first progress of call 4: its SSE stream is live */
  msgs_before = json_array_size(r.msgs);
  assert_true(run_until(&loop, got_more, &r, 10000));
  json_t *id4 = json_integer(4);
  sb_channel_cancel(ch, id4);
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/"
                "list\",\"params\":{" MODERN_META "}}");
  json_t *id5 = json_integer(5);
  a = wait_answer(&loop, &r, id5);
  assert_non_null(json_object_get(json_object_get(a, "result"), "tools"));
  assert_null(answer_to(&r, id4));
  assert_int_equal(r.closed, 0);

  sb_channel_close(ch);
  sb_stop(&loop, &sbp);
  finish_loop(&loop);
  json_decref(id1);
  json_decref(id2);
  json_decref(id3);
  json_decref(id4);
  json_decref(id5);
  json_decref(r.msgs);
}

static int has_method(recorder *r, const char *method) {
  for (size_t i = 0; i < json_array_size(r->msgs); i++) {
    const char *m = json_string_value(
        json_object_get(json_array_get(r->msgs, i), "method"));
    if (m && strcmp(m, method) == 0) return 1;
  }
  return 0;
}
static int got_list_changed(void *ud) {
  return has_method(ud, "notifications/resources/list_changed");
}

static void legacy_session_against_switchboard(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_proc sbp;
  if (sb_start(&loop, &sbp) != 0) skip();
  recorder r;
  sb_channel *ch = open_channel(&loop, &r, url_of_sb(&sbp), 0);
  assert_null(sb_channel_session_id(ch));
  send_json(
      ch, "{\"jsonrpc\":\"2.0\",\"id\":\"init\",\"method\":\"initialize\","
          "\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
          "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}");
  json_t *init = json_string("init");
  json_t *a = wait_answer(&loop, &r, init);
  assert_non_null(json_object_get(a, "result"));
  /* the session id came from the response headers */
  assert_non_null(sb_channel_session_id(ch));
  char *sid = strdup(sb_channel_session_id(ch));
  assert_int_equal(
      sb_channel_set_header(ch, "MCP-Protocol-Version", "2025-11-25"), 0);
  /* a notification: 202, nothing delivered */
  send_json(ch,
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
  /* the GET stream, then something that notifies every session on it */
  sb_error err = {0};
  assert_int_equal(sb_channel_open_stream(ch, &err), 0);
  /* settled by the stream's response headers (switchboard sends them at
   * once, no event on it yet) */
  assert_true(run_until(&loop, stream_settled, &r, 10000));
  assert_int_equal(r.stream_settled, 1);
  send_json(
      ch, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":"
          "{\"name\":\"note_write\",\"arguments\":{\"name\":\"n1\",\"text\":"
          "\"x\"}}}");
  json_t *id7 = json_integer(7);
  a = wait_answer(&loop, &r, id7);
  assert_non_null(json_object_get(a, "result"));
  assert_true(run_until(&loop, got_list_changed, &r, 10000));
  assert_string_equal(sb_channel_session_id(ch), sid);
  free(sid);
  assert_int_equal(r.closed, 0);
  sb_channel_close(ch);
  sb_stop(&loop, &sbp);
  finish_loop(&loop);
  json_decref(init);
  json_decref(id7);
  json_decref(r.msgs);
}

/* ---- failure modes against the fake agent -------------------------------- */

static void connection_refused_synthesises_error(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  /* a port that was free a moment ago and has no listener now */
  fake_server s;
  fake_start(&loop, &s, NULL);
  int port = s.port;
  fake_stop(&s);
  uv_run(&loop, UV_RUN_NOWAIT);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/mcp", port);
  recorder r;
  sb_channel *ch = open_channel(&loop, &r, url, 0);
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"tools/list\"}");
  json_t *id = json_string("a");
  json_t *a = wait_answer(&loop, &r, id);
  /* nothing was sent: a request that may go elsewhere */
  expect_failure(a, SB_CHANNEL_UNSENT, "Connection refused");
  assert_int_equal(r.closed, 0); /* one failed request is not a dead channel */
  sb_channel_close(ch);
  finish_loop(&loop);
  json_decref(id);
  json_decref(r.msgs);
}

/* Answers by the JSON-RPC method named in the body. */
static void scripted(fake_conn *c, const char *method, const char *head,
                     json_t *body) {
  const char *m = json_string_value(json_object_get(body, "method"));
  char *id = id_text(body);
  char buf[8192];
  if (!m) m = "";
  if (strcmp(m, "empty500") == 0) {
    conn_respond(c, 500, NULL, NULL, "");
  } else if (strcmp(m, "text500") == 0) {
    conn_respond(c, 500, "text/plain", NULL, "upstream exploded");
  } else if (strcmp(m, "unauthorized") == 0) {
    conn_respond(c, 401, "application/json",
                 "WWW-Authenticate: Bearer error=\"invalid_token\", "
                 "resource_metadata=\"http://127.0.0.1:1/.well-known/"
                 "oauth-protected-resource/mcp\", scope=\"mcp\"\r\n",
                 "{\"error\":\"invalid_token\"}");
  } else if (strcmp(m, "unauthorized_empty") == 0) {
    conn_respond(c, 401, NULL, "WWW-Authenticate: Bearer\r\n", "");
  } else if (strcmp(m, "unauthorized_two") == 0) {
    conn_respond(c, 403, NULL,
                 "WWW-Authenticate: DPoP algs=\"ES256\"\r\n"
                 "WWW-Authenticate: Bearer error=\"insufficient_scope\"\r\n",
                 "");
  } else if (strcmp(m, "big_header") == 0) {
    static char big[128 * 1024];
    memset(big, 'a', sizeof big);
    memcpy(big, "X-Big: ", 7);
    memcpy(big + sizeof big - 3, "\r\n", 3);
    conn_write(c, "HTTP/1.1 401 X\r\nContent-Length: 0\r\n");
    conn_write(c, big);
    conn_write(c, "\r\n");
  } else if (strcmp(m, "challenged500") == 0) {
    conn_respond(c, 500, "text/plain", "WWW-Authenticate: Bearer\r\n",
                 "oops");
  } else if (strcmp(m, "rpcerror400") == 0) {
    snprintf(buf, sizeof buf,
             "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{"
             "\"code\":-32602,\"message\":\"bad params\"}}",
             id);
    conn_respond(c, 400, "application/json", NULL, buf);
  } else if (strcmp(m, "noid400") == 0) {
    conn_respond(c, 400, "application/json", NULL,
                 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":"
                 "\"nope\"}}");
  } else if (strcmp(m, "badjson") == 0) {
    conn_respond(c, 200, "application/json", NULL, "{\"jsonrpc\":");
  } else if (strcmp(m, "big") == 0) {
    memset(buf, 'b', 4000);
    buf[4000] = '\0';
    char *body_text = malloc(sizeof buf + 100);
    snprintf(body_text, sizeof buf + 100,
             "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"s\":\"%s\"}}", id,
             buf);
    conn_respond(c, 200, "application/json", NULL, body_text);
    free(body_text);
  } else if (strcmp(m, "wrongtype") == 0) {
    conn_respond(c, 200, "text/html", NULL, "<html></html>");
  } else if (strcmp(m, "notify") == 0 || strcmp(m, "accepted") == 0) {
    conn_respond(c, 202, NULL, NULL, "");
  } else if (strcmp(m, "sse") == 0) {
    conn_write(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Connection: close\r\n\r\n");
    conn_write(c, ": hello\r\n\r\nid: 9\r\ndata:\r\n\r\n");
    conn_write(
        c, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
           "\"params\":{\"progressToken\":1,\"progress\":1}}\n\n");
    snprintf(buf, sizeof buf,
             "event: message\rdata: {\"jsonrpc\":\"2.0\",\r"
             "data: \"id\":%s,\"result\":{\"ok\":true}}\r\r",
             id);
    conn_write(c, buf);
    conn_close(c);
  } else if (strcmp(m, "sse_cut") == 0) {
    conn_write(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Connection: close\r\n\r\ndata: "
                  "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n");
    conn_close(c);
  } else if (strcmp(m, "slow") == 0) {
    /* never answer; the test cancels */
  } else {
    snprintf(buf, sizeof buf, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}",
             id);
    conn_respond(c, 200, "application/json", NULL, buf);
  }
  sb_free(id);
}

static void failure_modes_synthesise_errors(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_server s;
  fake_start(&loop, &s, scripted);
  recorder r;
  sb_channel *ch = open_channel(&loop, &r, url_of(&s), 2048);
  struct {
    const char *method;
    const char *needle; /* NULL: the agent's own error comes through */
  } cases[] = {
      {"empty500", "HTTP 500"},
      {"text500", "upstream exploded"},
      /* a 401 or 403 says how to authorize: the challenge comes along */
      {"unauthorized",
       "HTTP 401 (WWW-Authenticate: Bearer error=\"invalid_token\", "
       "resource_metadata=\"http://127.0.0.1:1/.well-known/"
       "oauth-protected-resource/mcp\", scope=\"mcp\"): "
       "{\"error\":\"invalid_token\"}"},
      /* with no body too */
      {"unauthorized_empty", "HTTP 401 (WWW-Authenticate: Bearer)"},
      /* several challenges: one list */
      {"unauthorized_two", "HTTP 403 (WWW-Authenticate: DPoP algs=\"ES256\", "
                           "Bearer error=\"insufficient_scope\")"},
      /* headers past libcurl's limit: said so, not "Out of memory" */
      {"big_header", "headers are larger than libcurl takes (100 KB)"},
      /* ...another status does not */
      {"challenged500", "HTTP 500: oops"},
      {"badjson", "malformed JSON"},
      {"big", "larger than the limit of 2048 bytes"},
      {"wrongtype", "unexpected Content-Type"},
      {"accepted", "no response body"},
      {"sse_cut", "ended before the response"},
      {"rpcerror400", NULL},
      {"noid400", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[200];
    snprintf(text, sizeof text,
             "{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"%s\"}", i + 100,
             cases[i].method);
    send_json(ch, text);
    json_t *id = json_integer((json_int_t)i + 100);
    json_t *a = wait_answer(&loop, &r, id);
    if (cases[i].needle) {
      /* A 401 or 403 is a refusal: nothing was processed. */
      int refused = strncmp(cases[i].method, "unauthorized", 12) == 0;
      expect_failure(a, refused ? SB_CHANNEL_REFUSED : SB_CHANNEL_LOST,
                     cases[i].needle);
      if (refused) {
        const sb_channel_refusal *rf = sb_channel_last_refusal(ch);
        assert_non_null(rf);
        assert_non_null(strstr(rf->challenge, "Bearer"));
        assert_int_equal(rf->status,
                         strstr(cases[i].needle, "HTTP 403") ? 403 : 401);
        assert_false(rf->stale_credentials);
      }
    } else {
      json_t *e = json_object_get(a, "error");
      assert_non_null(e);
      assert_int_not_equal(json_integer_value(json_object_get(e, "code")),
                           -32603);
    }
    json_decref(id);
  }
  /* the last refusal's challenge, as the agent sent it */
  assert_string_equal(
      sb_channel_last_refusal(ch)->challenge,
      "DPoP algs=\"ES256\", Bearer error=\"insufficient_scope\"");
  /* refused for an Authorization replaced since it went out: said so */
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":\"stale\",\"method\":"
                "\"unauthorized_empty\"}");
  assert_int_equal(sb_channel_set_header(ch, "Authorization", "Bearer new"), 0);
  json_t *stale = json_string("stale");
  expect_failure(wait_answer(&loop, &r, stale), SB_CHANNEL_REFUSED, "HTTP 401");
  json_decref(stale);
  assert_true(sb_channel_last_refusal(ch)->stale_credentials);
  /* a notification gets 202 and produces nothing */
  size_t before = json_array_size(r.msgs);
  int reqs = s.requests;
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"method\":\"notify\"}");
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":\"z\",\"method\":\"ok\"}");
  json_t *z = json_string("z");
  wait_answer(&loop, &r, z);
  json_decref(z);
  assert_int_equal(s.requests, reqs + 2);
  assert_int_equal(json_array_size(r.msgs), before + 1);
  /* the mirrored headers went out */
  char v[256];
  int found = 0;
  for (int i = 0; i < s.requests && i < 32; i++) {
    if (strcmp(head_value(s.heads[i], "Mcp-Method", v, sizeof v), "notify") ==
        0) {
      found = 1;
      assert_string_equal(head_value(s.heads[i], "Content-Type", v, sizeof v),
                          "application/json");
      assert_non_null(strstr(head_value(s.heads[i], "Accept", v, sizeof v),
                             "text/event-stream"));
      assert_string_equal(head_value(s.heads[i], "Expect", v, sizeof v), "");
    }
  }
  assert_true(found);
  assert_int_equal(r.closed, 0);
  sb_channel_close(ch);
  fake_stop(&s);
  finish_loop(&loop);
  json_decref(r.msgs);
}

static void sse_response_and_connection_reuse(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_server s;
  fake_start(&loop, &s, scripted);
  recorder r;
  sb_channel *ch = open_channel(&loop, &r, url_of(&s), 0);
  /* three plain calls in a row share one kept-alive connection */
  for (int i = 1; i <= 3; i++) {
    char text[100];
    snprintf(text, sizeof text,
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ok\"}", i);
    send_json(ch, text);
    json_t *id = json_integer(i);
    assert_non_null(json_object_get(wait_answer(&loop, &r, id), "result"));
    json_decref(id);
  }
  assert_int_equal(s.accepted, 1);
  /* CR line endings, comments, a priming event, multi-line data */
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"sse\"}");
  json_t *sid = json_string("s");
  json_t *a = wait_answer(&loop, &r, sid);
  assert_true(
      json_is_true(json_object_get(json_object_get(a, "result"), "ok")));
  assert_true(has_method(&r, "notifications/progress"));
  /* 3 results + progress + the answer; the priming event is not a message */
  assert_int_equal(json_array_size(r.msgs), 5);
  json_decref(sid);
  /* tools/call with a name that needs the base64 sentinel */
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\","
                "\"params\":{\"name\":\"=?base64?x?=\"}}");
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"resources/read\","
                "\"params\":{\"uri\":\"file:///a b\"}}");
  json_t *id9 = json_integer(9), *id8 = json_integer(8);
  wait_answer(&loop, &r, id8);
  wait_answer(&loop, &r, id9);
  json_decref(id8);
  json_decref(id9);
  char v[256], names[2][256] = {{0}};
  for (int i = 0; i < s.requests && i < 32; i++) {
    head_value(s.heads[i], "Mcp-Method", v, sizeof v);
    if (strcmp(v, "tools/call") == 0)
      head_value(s.heads[i], "Mcp-Name", names[0], sizeof names[0]);
    if (strcmp(v, "resources/read") == 0)
      head_value(s.heads[i], "Mcp-Name", names[1], sizeof names[1]);
  }
  assert_string_equal(names[0], "=?base64?PT9iYXNlNjQ/eD89?=");
  assert_string_equal(names[1], "file:///a b");
  sb_channel_close(ch);
  fake_stop(&s);
  finish_loop(&loop);
  json_decref(r.msgs);
}

static int peer_closed_one(void *ud) {
  return ((fake_server *)ud)->peer_closed >= 1;
}
static int got_slow_request(void *ud) {
  return ((fake_server *)ud)->requests >= 1;
}

static void cancel_aborts_slow_request(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_server s;
  fake_start(&loop, &s, scripted);
  recorder r;
  sb_channel *ch = open_channel(&loop, &r, url_of(&s), 0);
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"slow\"}");
  assert_true(run_until(&loop, got_slow_request, &s, 5000));
  json_t *id = json_integer(42);
  sb_channel_cancel(ch, id);
  /* the agent sees the connection close: that is the cancellation */
  assert_true(run_until(&loop, peer_closed_one, &s, 5000));
  json_t *other = json_integer(43);
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":43,\"method\":\"ok\"}");
  wait_answer(&loop, &r, other);
  assert_null(answer_to(&r, id));
  assert_int_equal(json_array_size(r.msgs), 1);
  /* close with a request still in flight: no callback, nothing leaks */
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":44,\"method\":\"slow\"}");
  uv_run(&loop, UV_RUN_NOWAIT);
  sb_channel_close(ch);
  fake_stop(&s);
  finish_loop(&loop);
  assert_int_equal(json_array_size(r.msgs), 1);
  assert_int_equal(r.closed, 0);
  json_decref(id);
  json_decref(other);
  json_decref(r.msgs);
}

/* Sessions: assigned on the first answer, sent back, and a 404 for a
 * request that carried one means it expired. */
/* How the server says a session is gone: the spec's 404, or the 400 of
 * servers built on the SDK's example code; or a 400 about something else. */
static int gone_status = 404;
static const char *gone_message = "Session not found";

static void session_handler(fake_conn *c, const char *method, const char *head,
                            json_t *body) {
  char v[128], buf[512];
  char *id = id_text(body);
  if (*head_value(head, "Mcp-Session-Id", v, sizeof v)) {
    snprintf(buf, sizeof buf,
             "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{"
             "\"code\":-32000,\"message\":\"%s\"}}",
             id, gone_message);
    conn_respond(c, gone_status, "application/json", NULL, buf);
  } else {
    snprintf(buf, sizeof buf, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}",
             id);
    conn_respond(c, 200, "application/json", "Mcp-Session-Id: sess-1\r\n", buf);
  }
  sb_free(id);
}

static void expired_session_reported(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_server s;
  fake_start(&loop, &s, session_handler);
  recorder r;
  sb_channel *ch = open_channel(&loop, &r, url_of(&s), 0);
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}");
  json_t *id1 = json_integer(1), *id2 = json_integer(2), *id3 = json_integer(3);
  assert_non_null(json_object_get(wait_answer(&loop, &r, id1), "result"));
  assert_string_equal(sb_channel_session_id(ch), "sess-1");
  /* two requests in flight on the session when it ends */
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\"}");
  json_t *id4 = json_integer(4);
  json_t *a = wait_answer(&loop, &r, id2);
  json_t *b = wait_answer(&loop, &r, id4);
  /* both were never processed; only the first to tell asks for a new one */
  int ka = expect_failure(a, 0, "session expired (HTTP 404)");
  int kb = expect_failure(b, 0, "session expired (HTTP 404)");
  assert_int_equal((ka == SB_CHANNEL_SESSION_ENDED) +
                       (kb == SB_CHANNEL_SESSION_ENDED),
                   1);
  assert_int_equal((ka == SB_CHANNEL_SESSION_GONE) +
                       (kb == SB_CHANNEL_SESSION_GONE),
                   1);
  json_decref(id4);
  /* forgotten, so a new initialize goes out without it */
  assert_null(sb_channel_session_id(ch));
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\"}");
  assert_non_null(json_object_get(wait_answer(&loop, &r, id3), "result"));
  char v[64];
  assert_string_equal(head_value(s.heads[1], "Mcp-Session-Id", v, sizeof v),
                      "sess-1");
  assert_string_equal(head_value(s.heads[2], "Mcp-Session-Id", v, sizeof v),
                      "sess-1");
  assert_string_equal(head_value(s.heads[3], "Mcp-Session-Id", v, sizeof v),
                      "");
  sb_channel_close(ch);
  fake_stop(&s);
  finish_loop(&loop);
  json_decref(id1);
  json_decref(id2);
  json_decref(id3);
  json_decref(r.msgs);
}

/* Servers built on the SDK's example answer 400 "No valid session ID
 * provided", or "Server not initialized" while the session they had is
 * being torn down: also an expired session. A 400 about anything else is
 * the server's answer, not a lost session. */
static void expired_session_400(void **state) {
  (void)state;
  static const struct {
    const char *message;
    int about_session;
  } cases[] = {{"Bad Request: No valid session ID provided", 1},
               {"Bad Request: Server not initialized", 1},
               {"Invalid params: name", 0}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    int about_session = cases[k].about_session;
    gone_status = 400;
    gone_message = cases[k].message;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_server s;
    fake_start(&loop, &s, session_handler);
    recorder r;
    sb_channel *ch = open_channel(&loop, &r, url_of(&s), 0);
    send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}");
    json_t *id1 = json_integer(1), *id2 = json_integer(2);
    assert_non_null(json_object_get(wait_answer(&loop, &r, id1), "result"));
    send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
    json_t *a = wait_answer(&loop, &r, id2);
    if (about_session) {
      expect_failure(a, SB_CHANNEL_SESSION_ENDED, "session expired (HTTP 400)");
      assert_null(sb_channel_session_id(ch));
    } else {
      /* the server's own error, passed on as it is */
      assert_string_equal(json_string_value(json_object_get(
                              json_object_get(a, "error"), "message")),
                          "Invalid params: name");
      assert_null(json_object_get(a, "failure"));
      assert_string_equal(sb_channel_session_id(ch), "sess-1");
    }
    sb_channel_close(ch);
    fake_stop(&s);
    finish_loop(&loop);
    json_decref(id1);
    json_decref(id2);
    json_decref(r.msgs);
  }
  gone_status = 404;
  gone_message = "Session not found";
}

/* GET stream: the first one delivers an event then drops; the second must
 * resume with Last-Event-ID and gets 405, after which we stop. */
static void stream_handler(fake_conn *c, const char *method, const char *head,
                           json_t *body) {
  fake_server *s = c->srv;
  if (strcmp(method, "GET") != 0) {
    conn_respond(c, 202, NULL, NULL, "");
    return;
  }
  char v[128];
  assert_string_equal(head_value(head, "Accept", v, sizeof v),
                      "text/event-stream");
  s->step++;
  if (s->step == 1) {
    conn_write(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Connection: close\r\n\r\nretry: 10\nid: ev-1\ndata: "
                  "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/"
                  "list_changed\"}\n\n");
    conn_close(c);
  } else {
    conn_respond(c, 405, NULL, "Allow: POST\r\n", "");
  }
}

static int two_gets(void *ud) { return ((fake_server *)ud)->step >= 2; }

static void get_stream_resumes_then_stops_on_405(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_server s;
  fake_start(&loop, &s, stream_handler);
  recorder r;
  sb_channel *ch = open_channel(&loop, &r, url_of(&s), 0);
  sb_error err = {0};
  assert_int_equal(sb_channel_open_stream(ch, &err), 0);
  assert_true(run_until(&loop, two_gets, &s, 5000));
  assert_true(has_method(&r, "notifications/tools/list_changed"));
  /* once for the open, not again for the reconnect or the 405 */
  assert_int_equal(r.stream_settled, 1);
  char v[64];
  assert_string_equal(head_value(s.heads[0], "Last-Event-ID", v, sizeof v), "");
  assert_string_equal(head_value(s.heads[1], "Last-Event-ID", v, sizeof v),
                      "ev-1");
  /* after the 405 the channel is still up and POSTs still work */
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"method\":\"n\"}");
  assert_int_equal(r.closed, 0);
  sb_channel_close(ch);
  fake_stop(&s);
  finish_loop(&loop);
  assert_int_equal(s.step, 2); /* no third GET after the 405 */
  json_decref(r.msgs);
}


/* SSE polling (2025-11-25, SEP-1699): the agent answers a POST with a
 * priming event (an id and a retry: field) and closes the stream before
 * answering. The channel must wait the retry, GET with Last-Event-ID, and
 * take the answer from there (here after a second close with a progress
 * event in between); a resume the agent refuses fails the request. */
static int never(void *ud) {
  (void)ud;
  return 0;
}
static uint64_t poll_closed_ms, poll_get_ms;
static char poll_id[64]; /* the POSTed request's id, as JSON */
static void poll_handler(fake_conn *c, const char *method, const char *head,
                         json_t *body) {
  fake_server *s = c->srv;
  char v[128], buf[512];
  if (strcmp(method, "POST") == 0) {
    const char *m = json_string_value(json_object_get(body, "method"));
    s->step = m && strcmp(m, "refused") == 0 ? 100 : 0;
    char *id = id_text(body);
    snprintf(poll_id, sizeof poll_id, "%s", id);
    sb_free(id);
    conn_write(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Connection: close\r\n\r\nid: p-1\nretry: 300\ndata:\n\n");
    conn_close(c);
    poll_closed_ms = uv_now(c->tcp.loop);
    return;
  }
  if (!poll_get_ms) poll_get_ms = uv_now(c->tcp.loop);
  if (s->step >= 100) {
    conn_respond(c, 405, NULL, "Allow: POST\r\n", "");
    return;
  }
  assert_string_equal(head_value(head, "Accept", v, sizeof v),
                      "text/event-stream");
  s->step++;
  head_value(head, "Last-Event-ID", v, sizeof v);
  if (s->step == 1) {
    assert_string_equal(v, "p-1");
    conn_write(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Connection: close\r\n\r\nid: p-2\ndata: "
                  "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
                  "\"params\":{\"progressToken\":1,\"progress\":1}}\n\n");
  } else {
    assert_string_equal(v, "p-2");
    snprintf(buf, sizeof buf,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             "Connection: close\r\n\r\nid: p-3\ndata: {\"jsonrpc\":\"2.0\","
             "\"id\":%s,\"result\":{\"resumed\":true}}\n\n",
             poll_id);
    conn_write(c, buf);
  }
  conn_close(c);
}

static void sse_stream_closed_before_answer_is_resumed(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_server s;
  fake_start(&loop, &s, poll_handler);
  recorder r;
  sb_channel *ch = open_channel(&loop, &r, url_of(&s), 0);
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
                "\"params\":{\"name\":\"test_reconnection\"}}");
  json_t *id = json_integer(7);
  json_t *a = wait_answer(&loop, &r, id);
  if (!json_is_true(json_object_get(json_object_get(a, "result"), "resumed")))
    fail_msg("expected the resumed answer, got %s", json_dumps(a, 0));
  assert_true(has_method(&r, "notifications/progress"));
  assert_int_equal(s.step, 2); /* two GETs: p-1, then p-2 */
  /* the retry: field was respected before the first GET */
  assert_true(poll_get_ms - poll_closed_ms >= 290);
  json_decref(id);
  /* an agent that refuses the resume: the request fails, saying so */
  poll_get_ms = 0;
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"refused\"}");
  id = json_integer(8);
  expect_synth(wait_answer(&loop, &r, id), "Last-Event-ID p-1 failed: HTTP 405");
  json_decref(id);
  /* cancelled while the resume waits for its delay: no GET goes out */
  poll_get_ms = 0;
  int reqs = s.requests;
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\"}");
  /* the POST is over (its stream closed at once); its resume waits */
  assert_false(run_until(&loop, never, NULL, 100));
  assert_int_equal(s.requests, reqs + 1);
  id = json_integer(9);
  sb_channel_cancel(ch, id);
  assert_false(run_until(&loop, never, NULL, 500)); /* past its 300 ms */
  assert_int_equal(s.requests, reqs + 1); /* the POST alone */
  assert_null(answer_to(&r, id));
  json_decref(id);
  assert_int_equal(r.closed, 0);
  sb_channel_close(ch);
  fake_stop(&s);
  finish_loop(&loop);
  json_decref(r.msgs);
}

/* Close from inside on_message, with more queued behind it. */
static void close_in_callback(void *ud, json_t *msg) {
  void **slots = ud;
  (*(int *)slots[1])++;
  sb_channel_close(slots[0]);
}
static void no_closed(void *ud, const char *d) { fail_msg("on_closed: %s", d); }
static int calls_made(void *ud) { return *(int *)ud > 0; }

static void close_from_callback(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_server s;
  fake_start(&loop, &s, scripted);
  int calls = 0;
  void *slots[2] = {NULL, &calls};
  sb_http_channel_options o = {.url = url_of(&s), .name = "tester"};
  sb_channel_events ev = {close_in_callback, no_closed, slots, NULL, NULL};
  sb_channel *ch = sb_channel_http(&loop, &o, &ev, NULL);
  assert_non_null(ch);
  slots[0] = ch;
  /* the SSE answer carries two messages in one read */
  send_json(ch, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sse\"}");
  assert_true(run_until(&loop, calls_made, &calls, 5000));
  fake_stop(&s);
  finish_loop(&loop);
  assert_int_equal(calls, 1);
}

static void bad_options_rejected(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  sb_error err = {0};
  sb_http_channel_options o = {.url = "ftp://x/mcp"};
  assert_null(sb_channel_http(&loop, &o, NULL, &err));
  assert_int_equal(err.code, SB_EINVAL);
  const char *hdrs[] = {"X-Evil: a\r\nInjected: b", NULL};
  sb_http_channel_options o2 = {.url = "http://127.0.0.1:9/mcp",
                                .headers = hdrs};
  assert_null(sb_channel_http(&loop, &o2, NULL, &err));
  assert_int_equal(err.code, SB_EINVAL);
  finish_loop(&loop);
}

int main(int argc, char **argv) {
  sb_core_init();
  signal(SIGPIPE, SIG_IGN);
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n <= 0) return 1;
  self_exe[n] = '\0';
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(connection_refused_synthesises_error),
      cmocka_unit_test(failure_modes_synthesise_errors),
      cmocka_unit_test(sse_response_and_connection_reuse),
      cmocka_unit_test(cancel_aborts_slow_request),
      cmocka_unit_test(expired_session_reported),
      cmocka_unit_test(expired_session_400),
      cmocka_unit_test(get_stream_resumes_then_stops_on_405),
      cmocka_unit_test(sse_stream_closed_before_answer_is_resumed),
      cmocka_unit_test(close_from_callback),
      cmocka_unit_test(bad_options_rejected),
      cmocka_unit_test(modern_calls_against_switchboard),
      cmocka_unit_test(legacy_session_against_switchboard),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
