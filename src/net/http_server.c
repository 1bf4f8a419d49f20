/* http_server.c: the libmicrohttpd daemon inside the libuv loop, and the
 * transport's public start/port/stop.
 *
 * MHD runs with its own epoll set and no thread (MHD_USE_EPOLL without an
 * internal polling thread). Its epoll fd is watched with a uv_poll; MHD_run
 * is called when it is readable and when the timeout MHD_get_timeout names
 * expires, so every MHD callback runs on the loop thread. A 5 s tick sends
 * SSE keep-alive comments and expires idle legacy sessions.
 */
#include "net/http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MOD "http"
#define MCP_PATH "/mcp"
#define KEEPALIVE_MS 15000
#define TICK_MS 5000

/* ---- loop glue -------------------------------------------------------- */

/* Run MHD, then arm the timer for its next deadline. A resume requested
 * while MHD_run was on the stack must not be lost to that re-arm: MHD only
 * takes resumed connections back at the start of a run. While requests
 * are parked MHD always asks to run at once; the timer waits for their
 * answers instead, while nothing else needs MHD (http_watch.c). */
static void kick_cb(uv_timer_t *t);

static void run_mhd(sb_http_server *s) {
  if (!s->daemon || s->held) return;
  s->in_run = 1;
  s->kick_pending = 0;
  MHD_run(s->daemon);
  s->in_run = 0;
  http_sse_run_drained(s);
  MHD_UNSIGNED_LONG_LONG to = 0;
  if (s->kick_pending) {
    s->kick_pending = 0;
    uv_timer_start(&s->mhd_timer, kick_cb, 0, 0);
    return;
  }
  int due = MHD_get_timeout(s->daemon, &to) == MHD_YES;
  if (due && to == 0 && !sb_list_empty(&s->park) && !http_park_hold(s, &to))
    due = MHD_get_timeout(s->daemon, &to) == MHD_YES;
  if (due) {
    if (to > 60000) to = 60000;
    uv_timer_start(&s->mhd_timer, kick_cb, to, 0);
  } else {
    uv_timer_stop(&s->mhd_timer);
  }
}

static void kick_cb(uv_timer_t *t) {
  http_park_expire(t->data);
  run_mhd(t->data);
}

void http_kick(sb_http_server *s) {
  if (s->stopping) return;
  if (s->in_run)
    s->kick_pending = 1;
  else
    uv_timer_start(&s->mhd_timer, kick_cb, 0, 0);
}

static void on_epoll(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  run_mhd(h->data);
}

void sb_http_server_hold(sb_http_server *s, int hold) {
  if (!s || s->stopping || !hold == !s->held) return;
  s->held = hold;
  /* Held, MHD's epoll fd is not watched at all: it stays readable while
   * connections wait in the backlog, and would wake the loop for nothing
   * until the release. */
  if (hold) {
    uv_poll_stop(&s->epoll_watch);
    return;
  }
  uv_poll_start(&s->epoll_watch, UV_READABLE, on_epoll);
  http_kick(s);
}

static void on_tick(uv_timer_t *t) {
  sb_http_server *s = t->data;
  uint64_t now = sb_now_ms();
  sb_list_link *n, *next;
  SB_LIST_FOREACH_SAFE(n, next, &s->reqs) {
    http_req *r = sb_list_entry(n, http_req, all_link);
    if (r->state == REQ_SSE && !r->gone && !r->sse_end &&
        now - r->last_write_ms >= KEEPALIVE_MS)
      http_req_sse_append(r, ":\n\n", 3);
  }
  http_sessions_expire(s, now);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  SB_DEBUG(MOD, "microhttpd: %s", line);
}

static void on_handle_closed(uv_handle_t *h) {
  sb_http_server *s = h->data;
  if (--s->handles_open == 0) sb_free(s);
}

/* ---- public API ------------------------------------------------------- */

static int resolve(const char *host, int port, struct sockaddr_storage *ss,
                   int *v6) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (!host || !*host || strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    *v6 = 0;
    return 0;
  }
  char h6[64];
  size_t hl = strlen(host);
  if (host[0] == '[' && hl < sizeof h6 && host[hl - 1] == ']') {
    memcpy(h6, host + 1, hl - 2);
    h6[hl - 2] = '\0';
    host = h6;
  }
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *v6 = 1;
    return 0;
  }
  /* A host name: resolved once at start-up (blocking is fine here). */
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai) return SB_ENOENT;
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  *v6 = ai->ai_family == AF_INET6;
  if (*v6)
    in6->sin6_port = htons((uint16_t)port);
  else
    in4->sin_port = htons((uint16_t)port);
  freeaddrinfo(ai);
  return 0;
}

static struct MHD_Response *static_response(const char *body, int close) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
  if (!r) return NULL;
  if (*body)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
  if (close) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  return r;
}

static void free_statics(sb_http_server *s) {
  struct MHD_Response **all[] = {&s->resp_accepted, &s->resp_gone,
                                 &s->resp_no_get};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    if (*all[i]) {
      MHD_destroy_response(*all[i]);
      *all[i] = NULL;
    }
}

/* Descriptors kept for what is not a client connection: the store, the
 * agents' pipes and sockets, the log, libuv's and curl's own. */
#define FD_HEADROOM 256

/* Each connection is a descriptor. The soft RLIMIT_NOFILE is raised to
 * the hard one, and max_connections (its reserve in proportion) is fitted
 * under what remains after FD_HEADROOM: past the process's descriptors,
 * accept fails unseen, and a crowd of slow strangers would take the last
 * of them before the reserve for authenticated callers came into play. */
static void fit_to_fd_limit(sb_http_server_options *cfg) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
    struct rlimit raised = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
    if (rl.rlim_max == RLIM_INFINITY) raised.rlim_cur = 1u << 20;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl.rlim_cur = raised.rlim_cur;
  }
  if (rl.rlim_cur == RLIM_INFINITY || cfg->max_connections <= 0) return;
  long long room = (long long)rl.rlim_cur - FD_HEADROOM;
  if (room < 8) room = 8;
  if (cfg->max_connections <= room) return;
  int was = cfg->max_connections, reserve = cfg->connection_reserve;
  cfg->max_connections = (int)room;
  if (reserve > 0)
    cfg->connection_reserve = (int)((long long)reserve * room / was) + 1;
  SB_WARN(MOD,
          "limits.max_connections %d is more than this process may open "
          "(RLIMIT_NOFILE %llu, %d kept for the store and agents): serving "
          "at most %d connections, %d of them kept for authenticated "
          "callers (limits.connection_reserve); raise the limit (ulimit -n, "
          "LimitNOFILE=) to serve more",
          was, (unsigned long long)rl.rlim_cur, FD_HEADROOM,
          cfg->max_connections, cfg->connection_reserve);
}

sb_http_server *sb_http_server_start(uv_loop_t *loop, sb_mcp_server *srv,
                                     const sb_http_server_options *cfg,
                                     sb_error *err) {
  sb_http_server *s = sb_calloc(1, sizeof *s);
  if (!s) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  s->loop = loop;
  s->mcp = srv;
  s->cfg = *cfg;
  fit_to_fd_limit(&s->cfg);
  if (!s->cfg.max_stream_buffer_bytes)
    s->cfg.max_stream_buffer_bytes = 8u * 1024u * 1024u;
  struct sockaddr_storage ss;
  int v6 = 0;
  const char *host = cfg->listen_host ? cfg->listen_host : "127.0.0.1";
  if (resolve(host, cfg->listen_port, &ss, &v6) != 0) {
    sb_error_set(err, SB_EINVAL, "cannot resolve listen host '%s'", host);
    goto fail;
  }
  s->resp_accepted = static_response("", 0);
  s->resp_gone = static_response("", 1);
  s->resp_no_get = static_response(
      "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,"
      "\"message\":\"GET needs an Mcp-Session-Id (legacy sessions only; "
      "2026-07-28 has no GET stream)\"}}",
      0);
  if (!s->resp_accepted || !s->resp_gone || !s->resp_no_get ||
      http_sessions_init(s) != 0) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    goto fail;
  }
  MHD_add_response_header(s->resp_no_get, MHD_HTTP_HEADER_ALLOW,
                          "POST, GET, DELETE");
  if (cfg->tls_cert_file || cfg->tls_key_file) {
    if (!cfg->tls_cert_file || !cfg->tls_key_file) {
      sb_error_set(err, SB_EINVAL,
                   "server.tls needs both cert_file and key_file");
      goto fail;
    }
    if (!http_tls_supported()) {
      sb_error_set(err, SB_EINVAL,
                   "server.tls: this libmicrohttpd was built without TLS "
                   "(or its certificate callback); serve plain HTTP behind "
                   "a TLS-terminating proxy instead");
      goto fail;
    }
    if (sb_http_tls_load(cfg->tls_cert_file, cfg->tls_key_file, &s->tls, err) !=
        0)
      goto fail;
  }
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                   MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0) |
                   (s->tls ? MHD_USE_TLS : 0);
  /* With TLS, the certificate comes from http_tls.c's callback at each
   * handshake; the in-memory pair is what MHD checks at start. */
  struct MHD_OptionItem tls_opts[] = {
      {MHD_OPTION_HTTPS_MEM_CERT, 0,
       s->tls ? (void *)http_tls_cert_pem(s->tls) : NULL},
      {MHD_OPTION_HTTPS_MEM_KEY, 0,
       s->tls ? (void *)http_tls_key_pem(s->tls) : NULL},
      {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, http_tls_callback()},
      {MHD_OPTION_END, 0, NULL}};
  errno = 0;
  s->daemon = MHD_start_daemon(
      flags, (uint16_t)cfg->listen_port, NULL, NULL, http_on_request, s,
      MHD_OPTION_ARRAY, s->tls ? tls_opts : &tls_opts[3],
      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)cfg->connection_memory_bytes, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned int)s->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned int)cfg->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
      http_on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, http_conn_notify, s,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      (unsigned int)(cfg->max_connections_per_address > 0
                         ? cfg->max_connections_per_address
                         : 0),
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_UNESCAPE_CALLBACK,
      http_conn_unescape, NULL, MHD_OPTION_URI_LOG_CALLBACK, http_conn_on_uri,
      s, MHD_OPTION_END);
  if (!s->daemon) {
    sb_error_set(err, SB_EIO, "cannot listen on %s:%d: %s", host,
                 cfg->listen_port,
                 errno ? strerror(errno) : "microhttpd failed");
    goto fail;
  }
  const union MHD_DaemonInfo *pi =
      MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  const union MHD_DaemonInfo *ei =
      MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  if (!pi || !ei) {
    sb_error_set(err, SB_EIO, "microhttpd gave no port or epoll fd");
    goto fail;
  }
  s->port = pi->port;
  if (uv_poll_init(loop, &s->epoll_watch, ei->epoll_fd) != 0) {
    sb_error_set(err, SB_EIO, "cannot watch microhttpd's epoll fd");
    goto fail;
  }
  s->epoll_watch.data = s;
  uv_timer_init(loop, &s->mhd_timer);
  uv_timer_init(loop, &s->tick);
  uv_timer_init(loop, &s->watch_timer);
  uv_timer_init(loop, &s->conn_timer);
  s->mhd_timer.data = s->tick.data = s->watch_timer.data = s;
  s->conn_timer.data = s;
  s->handles_open = 5;
  uv_poll_start(&s->epoll_watch, UV_READABLE, on_epoll);
  /* Tick often enough to expire sessions near their idle timeout. */
  uint64_t tick = TICK_MS;
  if (cfg->session_idle_timeout_s > 0 &&
      (uint64_t)cfg->session_idle_timeout_s * 500u < tick)
    tick = (uint64_t)cfg->session_idle_timeout_s * 500u;
  uv_timer_start(&s->tick, on_tick, tick, tick);
  http_kick(s);
  const char *scheme = s->tls ? "https" : "http";
  if (v6)
    SB_INFO(MOD, "listening on %s://[%s]:%d" MCP_PATH, scheme, host, s->port);
  else
    SB_INFO(MOD, "listening on %s://%s:%d" MCP_PATH, scheme, host, s->port);
  return s;
fail:
  if (s->daemon) MHD_stop_daemon(s->daemon);
  http_tls_free_all(s);
  http_sessions_free_all(s);
  free_statics(s);
  http_routes_free(s);
  sb_free(s);
  return NULL;
}

int sb_http_server_port(const sb_http_server *s) { return s ? s->port : -1; }

void sb_http_server_stop(sb_http_server *s) {
  if (!s) return;
  /* Sessions first: their requests are detached and ended. */
  http_sessions_free_all(s);
  sb_list_link *n, *next;
  SB_LIST_FOREACH_SAFE(n, next, &s->reqs) {
    http_req *r = sb_list_entry(n, http_req, all_link);
    http_req_shutdown(r);
  }
  s->stopping = 1;
  /* Let MHD take the resumed connections back before it is stopped. */
  MHD_run(s->daemon);
  uv_close((uv_handle_t *)&s->epoll_watch, on_handle_closed);
  MHD_stop_daemon(s->daemon); /* completion callbacks free the requests */
  s->daemon = NULL;
  uv_close((uv_handle_t *)&s->mhd_timer, on_handle_closed);
  uv_close((uv_handle_t *)&s->tick, on_handle_closed);
  uv_close((uv_handle_t *)&s->watch_timer, on_handle_closed);
  uv_close((uv_handle_t *)&s->conn_timer, on_handle_closed);
  free_statics(s);
  http_req_pool_free(s);
  http_routes_free(s);
  http_tls_free_all(s); /* after the daemon: no handshake is left */
}

void sb_http_server_mount(sb_http_server *s,
                          sb_mcp_server *(*resolver)(void *ud, const char *path),
                          void *ud) {
  s->mount = resolver;
  s->mount_ud = ud;
}

void sb_http_server_stats(const sb_http_server *s, sb_http_stats *out) {
  memset(out, 0, sizeof *out);
  out->connections = s->nconns;
  out->sessions = s->nsessions;
  memcpy(out->responses, s->responses, sizeof out->responses);
}

/* A stream that only ends when its client goes; once ended by us (a
 * subscription's graceful end), busy until its last bytes are out. */
static int lingers(const http_req *r) {
  if (r->sse_end) return 0;
  if (r->is_get || (r->route && r->state == REQ_SSE)) return 1;
  const char *method = json_string_value(json_object_get(r->msg, "method"));
  return method && strcmp(method, "subscriptions/listen") == 0;
}

size_t sb_http_server_busy(const sb_http_server *s) {
  size_t n = 0;
  for (sb_list_link *l = sb_list_first(&s->reqs); l; l = sb_list_next(l))
    n += !lingers(sb_list_entry(l, http_req, all_link));
  return n;
}

size_t sb_http_server_drain(sb_http_server *s) {
  if (!s->draining) {
    s->draining = 1;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    SB_INFO(MOD, "draining: no new connections; %zu request(s) under way",
            sb_http_server_busy(s));
  }
  return sb_http_server_busy(s);
}
