/* test_http_route.c: REST routes that answer later (src/net/http_route.c,
 * sb_http_request_defer), as the context REST API does while the store
 * works. A real HTTP server on the loop; the client is a plain TCP socket
 * on the same loop, so every wait is the loop running until a condition,
 * with a deadline.
 *
 *   - a deferred request answered from a timer reaches its client;
 *   - a client that leaves while its request waits: on_gone runs once and
 *     the handler must not answer;
 *   - the server stopping with a request waiting: on_gone runs too.
 */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/mcp.h"
#include "net/net.h"
#include "test_loop.h"

#define DEADLINE_MS 5000

typedef struct fixture {
  uv_loop_t loop;
  sb_mcp_server *mcp;
  sb_http_server *http;
  /* the route's side */
  sb_http_request *waiting; /* a deferred request not answered yet */
  int handled, gone;
  uv_timer_t later;
  int later_inited;
  /* the client's side */
  uv_tcp_t client;
  uv_connect_t connect;
  uv_write_t write;
  char request[256];
  char response[4096];
  size_t response_len;
  int connected, closed;
} fixture;

static void on_gone(void *ud) {
  fixture *f = ud;
  f->gone++;
  f->waiting = NULL; /* must not be touched again */
}

static void answer_later(uv_timer_t *t) {
  fixture *f = t->data;
  if (!f->waiting) return;
  sb_http_request *req = f->waiting;
  f->waiting = NULL;
  const char *headers[] = {"X-Later", "yes", NULL};
  sb_http_respond(req, 200, "text/plain", "answered later", 14, headers);
}

static void handle(void *ud, sb_http_request *req) {
  fixture *f = ud;
  f->handled++;
  const char *path = sb_http_request_path(req);
  f->waiting = req;
  sb_http_request_defer(req, on_gone, f);
  if (strcmp(path, "/v1/test/later") == 0)
    uv_timer_start(&f->later, answer_later, 20, 0);
  /* /v1/test/never: answered by nobody */
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  sb_mcp_server_options mo = {.loop = &f->loop};
  f->mcp = sb_mcp_server_new(&mo);
  sb_error err = {0};
  sb_http_server_options ho = {.max_message_bytes = 4u << 20,
                               .max_json_depth = 64,
                               .max_connections = 100,
                               .connection_memory_bytes = 16384,
                               .connection_timeout_s = 30,
                               .session_idle_timeout_s = 60,
                               .replay_events = 16};
  f->http = sb_http_server_start(&f->loop, f->mcp, &ho, &err);
  if (!f->http) fail_msg("server: %s", err.msg);
  assert_int_equal(sb_http_server_route(f->http, "/v1/test", handle, f), 0);
  uv_timer_init(&f->loop, &f->later);
  f->later.data = f;
  f->later_inited = 1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  sb_http_server_stop(f->http);
  sb_mcp_server_free(f->mcp);
  uv_close((uv_handle_t *)&f->later, NULL);
  if (!f->closed && f->connected) uv_close((uv_handle_t *)&f->client, NULL);
  assert_int_equal(loop_finish(&f->loop), 0);
  free(f);
  return 0;
}

/* ---- a raw HTTP/1.1 client on the loop -------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  fixture *f = h->data;
  buf->base = f->response + f->response_len;
  buf->len = sizeof f->response - 1 - f->response_len;
}

static void on_closed(uv_handle_t *h) { ((fixture *)h->data)->closed = 1; }

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  fixture *f = s->data;
  if (n > 0) {
    f->response_len += (size_t)n;
    f->response[f->response_len] = '\0';
  } else if (n < 0 && !uv_is_closing((uv_handle_t *)s)) {
    uv_close((uv_handle_t *)s, on_closed);
  }
}

static void on_written(uv_write_t *w, int status) {
  fixture *f = w->data;
  assert_int_equal(status, 0);
  uv_read_start((uv_stream_t *)&f->client, on_alloc, on_read);
}

static void on_connect(uv_connect_t *c, int status) {
  fixture *f = c->data;
  assert_int_equal(status, 0);
  f->connected = 1;
  uv_buf_t b = uv_buf_init(f->request, (unsigned)strlen(f->request));
  f->write.data = f;
  uv_write(&f->write, (uv_stream_t *)&f->client, &b, 1, on_written);
}

static void send_get(fixture *f, const char *path) {
  snprintf(f->request, sizeof f->request,
           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
           path);
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", sb_http_server_port(f->http), &addr);
  uv_tcp_init(&f->loop, &f->client);
  f->client.data = f;
  f->connect.data = f;
  assert_int_equal(uv_tcp_connect(&f->connect, &f->client,
                                  (const struct sockaddr *)&addr, on_connect),
                   0);
}

static int handled(void *ud) { return ((fixture *)ud)->handled > 0; }
static int gone(void *ud) { return ((fixture *)ud)->gone > 0; }
static int client_closed(void *ud) { return ((fixture *)ud)->closed; }

/* ---- tests ------------------------------------------------------------- */

static void test_answer_later(void **state) {
  fixture *f = *state;
  send_get(f, "/v1/test/later");
  assert_true(run_until(&f->loop, client_closed, f, DEADLINE_MS));
  assert_non_null(strstr(f->response, "HTTP/1.1 200"));
  assert_non_null(strstr(f->response, "X-Later: yes"));
  assert_non_null(strstr(f->response, "answered later"));
  assert_int_equal(f->handled, 1);
  assert_int_equal(f->gone, 0); /* answered: on_gone never runs */
}

static void test_client_leaves(void **state) {
  fixture *f = *state;
  send_get(f, "/v1/test/never");
  assert_true(run_until(&f->loop, handled, f, DEADLINE_MS));
  assert_non_null(f->waiting);
  uv_close((uv_handle_t *)&f->client, on_closed); /* the client gives up */
  assert_true(run_until(&f->loop, gone, f, DEADLINE_MS));
  assert_int_equal(f->gone, 1);
  assert_null(f->waiting);
}

static void test_server_stops(void **state) {
  fixture *f = *state;
  send_get(f, "/v1/test/never");
  assert_true(run_until(&f->loop, handled, f, DEADLINE_MS));
  sb_http_server_stop(f->http);
  f->http = NULL;
  assert_int_equal(f->gone, 1); /* told at once, while stopping */
  assert_null(f->waiting);
  assert_true(run_until(&f->loop, client_closed, f, DEADLINE_MS));
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_answer_later, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_leaves, setup, teardown),
      cmocka_unit_test_setup_teardown(test_server_stops, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
