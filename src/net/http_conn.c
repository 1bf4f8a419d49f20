/* http_conn.c: what stands in front of libmicrohttpd for each connection:
 * deadlines, the reserve for authenticated callers, cutting a connection
 * off, HTTP/1.1 framing checks and answers MHD cannot queue.
 *
 * libmicrohttpd 0.9.75 has only an idle timeout (MHD_OPTION_CONNECTION_
 * TIMEOUT), which every byte resets: a client trickling one header byte
 * every few seconds keeps its connection for ever, and enough of them lock
 * everyone out (slowloris). It has a per-address cap
 * (MHD_OPTION_PER_IP_CONNECTION_LIMIT, used as it is) but no deadlines, no
 * notion of a caller that has authenticated, and no call that closes a
 * connection. So each connection gets an http_conn (MHD's notify-connection
 * callback, kept as its socket context) that tracks its phase:
 *
 *   CONN_HEADERS  it holds no request: a new connection, or one idle
 *                 between keep-alive requests. Its next request's headers
 *                 are due within header_timeout_s of entering the phase,
 *                 however slowly they trickle in; so an idle connection
 *                 holding nothing is also gone after header_timeout_s.
 *   CONN_BODY     headers in: the body is due within body_timeout_s.
 *   CONN_BUSY     the request is read; it is being answered (a long call,
 *                 an SSE stream): no deadline of ours.
 *   CONN_SENDING  a plain answer is queued: the client must take all of it
 *                 within send_timeout_s, else the connection is reset (MHD
 *                 would hold it, and the answer, for connection_timeout_s
 *                 after the last byte the client took). An SSE stream has
 *                 its own bound instead (max_stream_buffer_bytes).
 *
 * Each timed phase has its own queue: all entries of a queue have the same
 * timeout and the loop's clock only grows, so appending keeps it in due
 * order and one timer for the earliest head serves both.
 *
 * A connection is "admitted" once a request on it passed the Origin and
 * bearer-token checks. Connections not admitted may hold at most
 * max_connections - connection_reserve places: when a new one would pass
 * that, the oldest one not admitted and holding no request is cut off. So
 * a crowd of trickling connections can never take the places of callers
 * that have authenticated, and a new caller always finds a place to send
 * its headers in.
 *
 * Cutting a connection off (MHD has no call for it) is a shutdown() of its
 * socket: MHD's epoll sees the socket hang up and closes the connection
 * the usual way, with its completion callbacks. An abortive cut (a reader
 * that stopped reading an SSE stream) sets SO_LINGER 0 first, so the close
 * resets the connection instead of leaving the kernel holding the unsent
 * half event.
 *
 * Framing (RFC 9112 6.1, 6.3): MHD 0.9.75 reads a request with both
 * Content-Length and Transfer-Encoding as chunked, and one with an unknown
 * transfer coding until the connection closes. http_conn_framing refuses
 * both when the headers are in (the answer is queued at once and the
 * connection closed after it). And MHD refuses a response queued while a
 * body is being read, so a chunked body that passes the size limit is
 * answered here, on the socket, and the connection closed
 * (http_conn_answer_now).
 */
#include "net/http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MOD "http"

struct http_conn {
  sb_http_server *srv;
  struct MHD_Connection *conn;
  int fd;
  http_conn_phase phase;
  uint64_t due_ms;
  sb_list_link due_link; /* in the queue of its phase */
  sb_list_link all_link; /* in srv->conns, oldest first */
  unsigned admitted : 1;
  unsigned cut : 1;
  unsigned bad_url : 1; /* the request line's URL decodes to bad text */
};

static sb_list *queue_of(http_conn *c) {
  return c->phase == CONN_HEADERS   ? &c->srv->conn_headers
         : c->phase == CONN_BODY    ? &c->srv->conn_bodies
         : c->phase == CONN_SENDING ? &c->srv->conn_sending
                                    : NULL;
}

static void queue_remove(http_conn *c) {
  sb_list *q = queue_of(c);
  if (q) sb_list_unlink(q, &c->due_link);
}

static http_conn *queue_first(const sb_list *q) {
  return sb_list_entry(sb_list_first(q), http_conn, due_link);
}

static void arm_timer(sb_http_server *s);

/* Leave the current phase for `phase`, due `timeout_s` from now. */
static void enter(http_conn *c, http_conn_phase phase, int timeout_s) {
  queue_remove(c);
  c->phase = phase;
  sb_list *q = queue_of(c);
  if (!q || c->cut || timeout_s <= 0) {
    if (q) c->phase = CONN_BUSY; /* no deadline: not queued */
    return;
  }
  c->due_ms = uv_now(c->srv->loop) + (uint64_t)timeout_s * 1000u;
  sb_list_push_back(q, &c->due_link);
  arm_timer(c->srv);
}

void http_conn_cut(http_conn *c, int abortive, const char *why) {
  if (!c || c->cut) return;
  c->cut = 1;
  queue_remove(c);
  c->phase = CONN_BUSY;
  SB_DEBUG(MOD, "closing a connection: %s", why);
  if (abortive) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  /* MHD's epoll sees the hang-up and closes the connection itself. */
  shutdown(c->fd, SHUT_RDWR);
  http_kick(c->srv);
}

static void cut_expired(sb_list *q, uint64_t now, int abortive,
                        const char *why) {
  http_conn *c;
  while ((c = queue_first(q)) && c->due_ms <= now)
    http_conn_cut(c, abortive, why);
}

static void on_conn_timer(uv_timer_t *t) {
  sb_http_server *s = t->data;
  uint64_t now = uv_now(s->loop);
  cut_expired(&s->conn_headers, now, 0,
              "no complete request headers within limits.header_timeout_s");
  cut_expired(&s->conn_bodies, now, 0,
              "no complete body within limits.body_timeout_s");
  /* Abortive: a graceful close would leave the kernel holding the rest. */
  cut_expired(&s->conn_sending, now, 1,
              "the client did not take its answer within "
              "limits.send_timeout_s");
  arm_timer(s);
}

static void arm_timer(sb_http_server *s) {
  if (s->stopping) return;
  uint64_t due = UINT64_MAX;
  http_conn *h = queue_first(&s->conn_headers);
  http_conn *b = queue_first(&s->conn_bodies);
  http_conn *w = queue_first(&s->conn_sending);
  if (h) due = h->due_ms;
  if (b && b->due_ms < due) due = b->due_ms;
  if (w && w->due_ms < due) due = w->due_ms;
  if (due == UINT64_MAX) {
    uv_timer_stop(&s->conn_timer);
    return;
  }
  uint64_t now = uv_now(s->loop);
  uint64_t in = due > now ? due - now : 0;
  /* Re-arm only to come sooner; a late wake-up re-arms for the rest. */
  if (uv_is_active((uv_handle_t *)&s->conn_timer) &&
      uv_timer_get_due_in(&s->conn_timer) <= in)
    return;
  uv_timer_start(&s->conn_timer, on_conn_timer, in, 0);
}

/* Not admitted and holding nothing: the oldest such connection. */
static http_conn *oldest_idle_stranger(sb_http_server *s, http_conn *except) {
  for (sb_list_link *n = sb_list_first(&s->conn_headers); n;
       n = sb_list_next(n)) {
    http_conn *c = sb_list_entry(n, http_conn, due_link);
    if (!c->admitted && c != except) return c;
  }
  return NULL;
}

static void conn_started(sb_http_server *s, struct MHD_Connection *conn,
                         void **socket_context) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  http_conn *c = sb_calloc(1, sizeof *c);
  if (!c) return; /* untracked: MHD's own idle timeout still applies */
  c->srv = s;
  c->conn = conn;
  c->fd = ci ? ci->connect_fd : -1;
  sb_list_push_back(&s->conns, &c->all_link);
  s->strangers++;
  *socket_context = c;
  enter(c, CONN_HEADERS, s->cfg.header_timeout_s);
  /* Keep the reserve for admitted callers: past the strangers' share, the
   * longest-waiting one holding nothing makes room. */
  int share = s->cfg.max_connections - s->cfg.connection_reserve;
  if (share < 1) share = 1;
  if (s->cfg.max_connections > 0 && s->strangers > (size_t)share) {
    http_conn *old = oldest_idle_stranger(s, c);
    if (old)
      http_conn_cut(old, 0,
                    "unauthenticated connections fill their share "
                    "(limits.max_connections - "
                    "limits.connection_reserve)");
  }
}

static void conn_closed(sb_http_server *s, http_conn *c) {
  queue_remove(c);
  c->phase = CONN_BUSY;
  sb_list_unlink(&s->conns, &c->all_link);
  if (!c->admitted) s->strangers--;
  sb_free(c);
  /* At its connection limit MHD took the listening socket out of its
   * epoll set; it puts it back at the start of its next run, once below
   * the limit. Nothing would wake that run (the listening socket is what
   * would), and the connections waiting to be accepted (a caller with a
   * token among them) would wait for the next timer: run again now. */
  if (s->nconns + 1 >= (size_t)s->cfg.max_connections) http_kick(s);
}

void http_conn_notify(void *cls, struct MHD_Connection *conn,
                      void **socket_context,
                      enum MHD_ConnectionNotificationCode code) {
  sb_http_server *s = cls;
  /* Counted even untracked: http_watch.c must not miss one. */
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    s->nconns++;
    conn_started(s, conn, socket_context);
    return;
  }
  s->nconns--;
  if (*socket_context) conn_closed(s, *socket_context);
  *socket_context = NULL;
}

sb_http_server *http_conn_server(http_conn *c) { return c->srv; }

http_conn *http_conn_of(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

void http_conn_headers_in(http_conn *c, int admitted) {
  if (!c) return;
  if (admitted && !c->admitted) {
    c->admitted = 1;
    c->srv->strangers--;
  }
  enter(c, CONN_BODY, c->srv->cfg.body_timeout_s);
}

void http_conn_request_read(http_conn *c) {
  if (c) enter(c, CONN_BUSY, 0);
}

void http_conn_request_done(http_conn *c) {
  if (c && !c->cut) enter(c, CONN_HEADERS, c->srv->cfg.header_timeout_s);
}

void http_conn_answer_queued(http_conn *c) {
  if (c && !c->cut) enter(c, CONN_SENDING, c->srv->cfg.send_timeout_s);
}

/* ---- the URL ----------------------------------------------------------- */
/* MHD decodes %XX escapes in place, and a %00 then ends the path early:
 * "/v1/runs/%00x/cancel" would read as "/v1/runs/" (and start a run). So
 * each decoded part (the path, every query key and value) is checked here,
 * and a request whose URL holds a NUL, a control character or bytes that
 * are not UTF-8 is refused with a 400 before anything reads it
 * (http_conn_take_bad_url). Nothing switchboard names, no id or query
 * value, may hold them, and quoting them back in an error or the audit
 * log would need them to be text. */
size_t http_conn_unescape(void *cls, struct MHD_Connection *conn, char *s) {
  (void)cls;
  size_t n = MHD_http_unescape(s);
  if (!sb_text_plain(s, n)) {
    http_conn *c = http_conn_of(conn);
    if (c) c->bad_url = 1;
  }
  return n;
}

int http_conn_is_cut(const http_conn *c) { return c && c->cut; }

int http_conn_take_bad_url(http_conn *c) {
  if (!c || !c->bad_url) return 0;
  c->bad_url = 0;
  return 1;
}

/* ---- framing ---------------------------------------------------------- */

typedef struct framing_scan {
  int content_lengths, transfer_encodings;
  const char *length, *coding;
  int lengths_differ;
} framing_scan;

static void scan_one(framing_scan *f, const char *key, const char *value) {
  if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
    if (f->length && strcmp(f->length, value ? value : "") != 0)
      f->lengths_differ = 1;
    if (!f->length) f->length = value ? value : "";
    f->content_lengths++;
  } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
    if (!f->coding) f->coding = value ? value : "";
    f->transfer_encodings++;
  }
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value) {
  (void)kind;
  scan_one(cls, key, value);
  return MHD_YES;
}

/* The last coding of a Transfer-Encoding list, e.g. "chunked" of
 * "gzip, chunked"; [*start, *end). */
static void last_coding(const char *v, const char **start, const char **end) {
  const char *comma = strrchr(v, ',');
  const char *p = comma ? comma + 1 : v;
  while (*p == ' ' || *p == '\t')
    p++;
  const char *e = p + strlen(p);
  while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  *start = p;
  *end = e;
}

static http_framing framing_verdict(framing_scan f);

http_framing http_conn_framing(struct MHD_Connection *conn) {
  framing_scan f = {0};
  MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &f);
  return framing_verdict(f);
}

http_framing http_framing_of(const char *const *names,
                             const char *const *values, size_t n) {
  framing_scan f = {0};
  for (size_t i = 0; i < n; i++)
    scan_one(&f, names[i], values[i]);
  return framing_verdict(f);
}

static http_framing framing_verdict(framing_scan f) {
  if (f.transfer_encodings && f.content_lengths) return HTTP_FRAMING_BOTH;
  if (f.content_lengths > 1 && f.lengths_differ) return HTTP_FRAMING_BAD_LENGTH;
  if (f.length) {
    if (!*f.length) return HTTP_FRAMING_BAD_LENGTH;
    for (const char *p = f.length; *p; p++)
      if (*p < '0' || *p > '9') return HTTP_FRAMING_BAD_LENGTH;
  }
  if (!f.transfer_encodings) return HTTP_FRAMING_OK;
  /* Several Transfer-Encoding lines make one list; MHD reads only the
   * first, so only a single plain "chunked" is framed the way MHD reads
   * it. */
  const char *s, *e;
  last_coding(f.coding, &s, &e);
  int chunked_last = (size_t)(e - s) == 7 && strncasecmp(s, "chunked", 7) == 0;
  if (!chunked_last || f.transfer_encodings > 1)
    return HTTP_FRAMING_NOT_CHUNKED; /* length unknowable: 400 */
  if (s != f.coding) return HTTP_FRAMING_UNKNOWN_CODING; /* "gzip, chunked" */
  return HTTP_FRAMING_OK;
}

/* ---- headers that may appear once ---------------------------------------
 * RFC 9110 5.3: a field that is not a list is sent once (RFC 9112 3.2:
 * Host above all, which a proxy may route by). Two Authorization
 * lines name two callers, two MCP-Protocol-Version or Mcp-Method lines two
 * requests; MHD hands out the first, a proxy in front may have checked
 * another. Such a request is refused rather than guessed at. */

static const char *const singletons[] = {
    "Host",          "Authorization", "Origin",       "Content-Type",
    "Mcp-Session-Id", "MCP-Protocol-Version", "Mcp-Method",
    "Mcp-Name",      "Last-Event-ID", NULL};

/* And every Mcp-Param-{Name} (a tool parameter mirrored into a header,
 * checked against the body): the first this many names are tracked. */
#define PARAM_PREFIX "Mcp-Param-"
#define MAX_PARAMS 64

typedef struct singleton_scan {
  unsigned seen[sizeof singletons / sizeof singletons[0]];
  const char *params[MAX_PARAMS];
  size_t nparams;
  const char *repeated;
} singleton_scan;

static enum MHD_Result scan_singleton(void *cls, enum MHD_ValueKind kind,
                                      const char *key, const char *value) {
  (void)kind;
  (void)value;
  singleton_scan *f = cls;
  if (key && strncasecmp(key, PARAM_PREFIX, strlen(PARAM_PREFIX)) == 0) {
    for (size_t i = 0; i < f->nparams; i++)
      if (strcasecmp(f->params[i], key) == 0 && !f->repeated)
        f->repeated = key; /* MHD keeps it for the request */
    if (f->nparams < MAX_PARAMS) f->params[f->nparams++] = key;
    return MHD_YES;
  }
  for (size_t i = 0; key && singletons[i]; i++) {
    if (strcasecmp(key, singletons[i]) != 0) continue;
    if (++f->seen[i] > 1 && !f->repeated) f->repeated = singletons[i];
    break;
  }
  return MHD_YES;
}

const char *http_conn_repeated_header(struct MHD_Connection *conn) {
  singleton_scan f = {0};
  MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_singleton, &f);
  return f.repeated;
}

/* ---- query parameters that may appear once -----------------------------
 * Every parameter we read is one value (a list is written a,b in one).
 * MHD hands out the first of two; a client or a proxy that meant the
 * second would be answered for something it did not ask. */

typedef struct arg_scan {
  const char *keys[32];
  size_t n;
  const char *repeated;
} arg_scan;

static enum MHD_Result scan_arg(void *cls, enum MHD_ValueKind kind,
                                const char *key, const char *value) {
  (void)kind;
  (void)value;
  arg_scan *f = cls;
  if (!key) return MHD_YES;
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->keys[i], key) == 0) {
      f->repeated = f->keys[i];
      return MHD_NO;
    }
  /* Past 32 distinct names the rest go unchecked; no route reads so many,
   * and a name we never read cannot be misread. */
  if (f->n < sizeof f->keys / sizeof f->keys[0]) f->keys[f->n++] = key;
  return MHD_YES;
}

const char *http_conn_repeated_arg(struct MHD_Connection *conn) {
  arg_scan f = {0};
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, scan_arg, &f);
  return f.repeated;
}

int http_media_type_json(const char *ct) {
  if (!ct) return 1; /* none said: the body is read as JSON */
  while (*ct == ' ' || *ct == '\t') ct++;
  size_t n = strcspn(ct, "; \t");
  if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) return 1;
  /* application/merge-patch+json, application/json-patch+json... */
  return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
         strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* ---- answers MHD cannot queue ------------------------------------------ */

static void answer_on_socket(http_conn *c, unsigned status, const char *body,
                             size_t len) {
  if (!c || c->cut) return;
  const char *reason = MHD_get_reason_phrase_for(status);
  char head[256];
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    status, reason && *reason ? reason : "Error", len);
  /* A few hundred bytes on a connection that has sent but not read: the
   * socket buffer takes them, and what it does not is dropped with the
   * connection anyway. */
  /* Under TLS the socket carries records, not text: just close. */
  if (hl > 0 && !c->srv->tls &&
      send(c->fd, head, (size_t)hl, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)hl)
    (void)!send(c->fd, body, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  /* The answer goes out before the FIN; the caller then returns MHD_NO,
   * and MHD closes the connection. */
  c->cut = 1;
  queue_remove(c);
  c->phase = CONN_BUSY;
  shutdown(c->fd, SHUT_WR);
}

void http_conn_answer_now(http_req *r, unsigned status, const char *body,
                          size_t len) {
  answer_on_socket(http_conn_of(r->conn), status, body, len);
}

/* ---- a query past what the connection holds -----------------------------
 * MHD keeps the request line in the connection's memory pool
 * (limits.connection_memory_bytes) and each query parameter as a record
 * there too; when they do not fit beside the headers it gives up on the
 * request with no answer it can still send, and the client waited for
 * one until the header deadline. So the query is weighed first, from the
 * URI as it came (MHD hands it here before it splits the query): the
 * line's bytes and 64 a parameter, within half of the pool (the rest is
 * for the headers and the answer). */

#define QUERY_PARAM_BYTES 64

size_t http_conn_query_budget(size_t pool_bytes) { return pool_bytes / 2; }

void *http_conn_on_uri(void *cls, const char *uri,
                       struct MHD_Connection *conn) {
  sb_http_server *s = cls;
  const char *q = uri ? strchr(uri, '?') : NULL;
  if (!q) return NULL;
  size_t budget = http_conn_query_budget(s->cfg.connection_memory_bytes);
  size_t n = 1;
  for (const char *p = q + 1; *p; p++) n += *p == '&';
  size_t line = strlen(uri);
  size_t need = line + n * QUERY_PARAM_BYTES;
  if (need <= budget) return NULL;
  char body[400];
  int len = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"query_too_large\",\"message\":"
                     "\"the request line (%zu bytes) and its %zu query "
                     "parameters need %zu bytes of the connection's memory; "
                     "at most %zu (half of limits.connection_memory_bytes, "
                     "%d bytes a parameter)\"}}",
                     line, n, need, budget, QUERY_PARAM_BYTES);
  SB_DEBUG(MOD, "a query needing %zu bytes, at most %zu: answered 431, closing",
           need, budget);
  answer_on_socket(http_conn_of(conn), MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                   body, (size_t)len);
  return NULL;
}
