/* http_internal.h: private types shared by http.c (daemon, loop glue,
 * request handling) and http_session.c (legacy session table, SSE replay
 * ring, GET streams). Nothing here is part of net's public face.
 */
#ifndef SB_NET_HTTP_INTERNAL_H
#define SB_NET_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdint.h>
#include <uv.h>

#include "net/net.h"

typedef struct http_req http_req;
typedef struct http_session http_session;
typedef struct http_stream http_stream;
typedef struct http_conn http_conn;
typedef struct http_tls_creds http_tls_creds;

/* Where a connection stands (http_conn.c). */
typedef enum http_conn_phase {
  CONN_HEADERS = 0, /* holds no request: its next headers are due */
  CONN_BODY,        /* headers in: the body is due */
  CONN_SENDING,     /* a plain answer queued: it is due to be taken */
  CONN_BUSY,        /* request read, being answered: no deadline */
} http_conn_phase;

/* How a request's body is framed (RFC 9112 6.1, 6.3). */
typedef enum http_framing {
  HTTP_FRAMING_OK = 0,
  HTTP_FRAMING_BOTH,           /* Content-Length and Transfer-Encoding */
  HTTP_FRAMING_BAD_LENGTH,     /* not digits, or several that differ */
  HTTP_FRAMING_NOT_CHUNKED,    /* chunked is not the (single) last coding */
  HTTP_FRAMING_UNKNOWN_CODING, /* a coding besides chunked: 501 */
} http_framing;

/* The output of a legacy session POST that carries requests. It is its own
 * allocation, not part of the http_req, because the call must outlive the
 * connection: when the client drops the POST's SSE stream the call keeps
 * running (2025-11-25: a disconnect is not a cancellation) and the record
 * moves to its session's orphan list; what the call writes then goes to
 * the session's ring under the stream's id and, when the client resumes
 * with GET + Last-Event-ID, onto that GET. */
struct http_stream {
  sb_mcp_out out;         /* out.data == this; the calls write here */
  http_session *session;  /* set once orphaned */
  http_req *req;          /* the POST while it is connected, else NULL */
  http_req *resume;       /* the GET continuing an orphaned stream, or NULL */
  http_stream *next;      /* in session->orphans, oldest first */
  uint32_t id;            /* SSE stream number of its events */
};

/* Where one request stands. */
typedef enum http_req_state {
  REQ_READING = 0, /* headers and body still arriving */
  REQ_WAITING,     /* dispatched; parked until the first message */
  REQ_RESPONDED,   /* a complete (non-streaming) response is queued */
  REQ_SSE,         /* an SSE response is queued and streaming */
} http_req_state;

/* One HTTP request (MHD's per-request closure). Pooled: idle keep-alive
 * connections hold none, so their cost is MHD's own pool only. */
struct http_req {
  sb_http_server *srv;
  struct MHD_Connection *conn;
  sb_mcp_out out; /* out.data == this; used unless `stream` is set */
  sb_principal *principal; /* the caller (a reference; NULL: no auth) */
  const char *auth_why;    /* why its token was refused (static) */
  int auth_not_bearer;     /* Authorization in another scheme: refused */
  sb_mcp_server *mcp;   /* the MCP server the path addresses (NULL: REST) */
  http_stream *stream;  /* legacy session POST with requests: its output */
  http_stream *resumes; /* GET: the orphaned stream it continues */
  http_req_state state;
  http_session *session;           /* legacy session this request runs in */
  http_session *new_session;       /* owned while its initialize is pending */
  sb_list_link sess_link;          /* in session->reqs */
  sb_list_link all_link; /* in srv->reqs, or srv->free_reqs when pooled */
  /* request body */
  sb_buf body;
  json_t *msg;           /* parsed body (owned) */
  json_t *early_error;   /* error response decided before dispatch */
  json_t *trimmed;       /* header values without their trailing
                            whitespace, by name (http_req_header; owned) */
  unsigned early_status; /* its HTTP status */
  /* SSE output not yet taken by MHD */
  sb_buf sse;
  size_t sse_off;
  /* sb_http_stream_on_drained: told once unsent output falls to `below`
   * (drain_due: it has, the callback runs after MHD_run returns) */
  void (*drained)(void *ud);
  void *drained_ud;
  size_t drained_below;
  uint64_t last_write_ms;
  uint32_t stream_id;      /* legacy SSE stream number (0 = the GET stream) */
  int route;               /* index+1 of the REST route serving it, or 0 */
  int rest_url; /* the URL is under a REST route: an error decided before
                   the route is taken is in the REST shape all the same */
  char *url;               /* request path (routes only; owned) */
  const char *method;      /* MHD's string, valid for the request */
  sb_http_gone_cb route_gone; /* a deferred REST answer's owner */
  void *route_gone_ud;
  unsigned in_handler : 1; /* inside the access handler (may queue) */
  unsigned suspended : 1;  /* MHD connection suspended by us */
  unsigned parked : 1;     /* waiting, not suspended (http_watch.c) */
  unsigned gone : 1;       /* peer gone or stream torn down */
  unsigned final_seen : 1; /* the final message was written */
  unsigned sse_end : 1;    /* end the SSE stream once drained */
  unsigned accept_sse : 1; /* client's Accept allows text/event-stream */
  unsigned modern : 1;     /* request served under 2026-07-28 rules */
  unsigned is_get : 1;     /* a legacy GET (notification) stream */
  unsigned detached : 1;   /* sb_mcp_out_detach done */
  unsigned dispatched : 1; /* out was handed to sb_mcp_server_dispatch */
  unsigned deferred : 1;   /* a REST handler will answer later */
  unsigned watching : 1;   /* disconnect watch active */
  unsigned drain_due : 1;  /* `drained` is to run (below was reached) */
  unsigned watch_inited : 1;
  unsigned watch_due : 1;  /* suspended, in srv's watch queue */
  unsigned close_after : 1; /* answer with Connection: close */
  unsigned quota_held : 1;  /* a REST request admitted: release once */
  int retry_after_s;        /* a 429's Retry-After */
  /* A 403's challenge: the scope an MCP call was refused for and why
   * (borrowed for the final write only). */
  const char *refused_scope, *refused_why;
  unsigned metadata : 1;    /* GET of the protected-resource metadata */
  unsigned preflight : 1;   /* a CORS preflight (OPTIONS) to answer */
  /* The request's Origin when it is allowed: every answer carries the
   * CORS headers for it (MHD's copy, valid for the request's life). */
  const char *cors_origin;
  uv_poll_t watch; /* EPOLLRDHUP on the socket while suspended */
  /* srv's watch queue, oldest suspension first (see http.c) */
  sb_list_link due_link;
  uint64_t suspended_ms;
  /* srv's parked requests, oldest first, and since when (loop time) */
  sb_list_link park_link;
  uint64_t parked_ms;
};

typedef struct http_event {
  uint64_t seq;
  uint32_t stream;
  uint32_t len;
  char *text; /* the whole SSE event, "id: ..\ndata: ..\n\n" */
} http_event;

/* A legacy (initialize-based) session. */
struct http_session {
  sb_http_server *srv;
  sb_mcp_session *mcp;
  sb_mcp_server *server; /* the endpoint it was opened on */
  sb_mcp_out notify; /* the session's notify_out: ring + live GET */
  http_session *hnext;
  sb_list reqs;        /* requests attached to the session, newest first */
  http_req *get;       /* live GET stream, or NULL */
  uint64_t seq;        /* last event sequence number minted */
  uint64_t delivered0; /* stream-0 events up to here were handed out */
  uint32_t next_stream;
  http_event *ring;
  size_t ring_head, ring_len;
  size_t ring_bytes; /* the texts' sizes, bounded: ring_push */
  http_stream *orphans; /* calls whose POST stream dropped, oldest first */
  size_t norphans;
  uint64_t last_used_ms;
  int in_table;
  const char *tenant; /* the tenant that initialized it (config-owned) */
};

/* Legacy sessions held by one tenant (http_session.c). */
typedef struct http_tenant_sessions {
  char *tenant;
  size_t sessions;
} http_tenant_sessions;

/* Whether another legacy session may open. */
typedef enum http_session_admit {
  HTTP_SESSION_ADMITTED = 0,
  HTTP_SESSION_FULL,        /* limits: max_sessions reached */
  HTTP_SESSION_TENANT_FULL, /* the tenant's max_sessions_per_tenant */
} http_session_admit;

typedef struct http_route {
  char *prefix;
  sb_http_handler fn;
  void *ud;
  int open; /* served to anyone: no token, no quota (probes) */
} http_route;

struct sb_http_server {
  uv_loop_t *loop;
  sb_mcp_server *mcp; /* /mcp */
  /* further MCP endpoints by path (sb_http_server_mount), or NULL */
  sb_mcp_server *(*mount)(void *ud, const char *path);
  void *mount_ud;
  sb_http_server_options cfg; /* copied at start */
  struct MHD_Daemon *daemon;
  int port;
  uv_poll_t epoll_watch; /* MHD's epoll fd */
  int held;              /* sb_http_server_hold: MHD is not run */
  uv_timer_t mhd_timer;  /* MHD_get_timeout, and kicks after resume */
  uv_timer_t tick;       /* keep-alives and session expiry */
  uv_timer_t watch_timer; /* starts the disconnect watch of long waits */
  sb_list due;            /* suspended, watch not started yet, oldest first */
  sb_list park;           /* parked, oldest first (http_watch.c) */
  size_t nparked;
  size_t nconns;     /* MHD's connections (http_conn.c) */
  uint64_t responses[6]; /* queued by us, by status class (1xx..5xx) */
  size_t nsuspended; /* requests suspended */
  int handles_open;
  int stopping;
  int draining; /* sb_http_server_drain: no new connection, no new request */
  int in_run;          /* inside MHD_run */
  int kick_pending;    /* run MHD again right after this run */
  int drains_due;      /* some request's drain_due is set */
  sb_list reqs;        /* every live request, newest first */
  sb_list free_reqs;   /* pool */
  size_t free_count;
  /* session table */
  http_session **buckets;
  size_t nbuckets, nsessions;
  size_t sessions_live; /* every session, in the table or still opening */
  http_tenant_sessions *tenant_sessions; /* per-tenant counts */
  size_t tenant_sessions_len;
  /* REST routes (http_route.c) */
  http_route *routes;
  size_t routes_len;
  /* connections (http_conn.c) */
  sb_list conns;                      /* every connection, oldest first */
  sb_list conn_headers;               /* CONN_HEADERS, due soonest first */
  sb_list conn_bodies;                /* CONN_BODY, due soonest first */
  sb_list conn_sending;               /* CONN_SENDING, due soonest first */
  size_t strangers;                   /* connections not admitted */
  uv_timer_t conn_timer;              /* the earliest deadline */
  /* TLS (http_tls.c): the certificate handshakes get now, and the ones
   * replaced by reloads (kept until stop); NULL: plain HTTP */
  http_tls_creds *tls;
  http_tls_creds *tls_retired;
  /* prebuilt responses */
  struct MHD_Response *resp_accepted; /* 202, no body */
  struct MHD_Response *resp_gone;     /* peer gone: close */
  struct MHD_Response *resp_no_get;   /* 405 for GET without a session */
};

/* A suspended request gets its disconnect watch after this long (http.c). */
#define HTTP_WATCH_DELAY_MS 100
/* At most this many requests waiting for their answers are parked (not
 * suspended) at once, each at most HTTP_WATCH_DELAY_MS (http_watch.c). */
#define HTTP_PARK_MAX 16

/* ---- http_conn.c ------------------------------------------------------ */
/* MHD's notify-connection callback (cls = the server). */
void http_conn_notify(void *cls, struct MHD_Connection *conn,
                      void **socket_context,
                      enum MHD_ConnectionNotificationCode code);
/* The connection's record, or NULL (untracked). */
http_conn *http_conn_of(struct MHD_Connection *conn);
/* A request's headers are in; `admitted` if it passed Origin and bearer
 * token checks (the connection leaves the strangers for good). */
void http_conn_headers_in(http_conn *c, int admitted);
/* The request is read (its body too): no deadline while it is answered. */
void http_conn_request_read(http_conn *c);
/* The request is done: the connection holds nothing again. */
void http_conn_request_done(http_conn *c);
/* A plain answer (not a stream) is queued on c: it must be taken by the
 * client within send_timeout_s, else the connection is reset. */
void http_conn_answer_queued(http_conn *c);
/* Close the connection under MHD (shutdown of its socket); abortive:
 * reset, dropping unsent data. */
void http_conn_cut(http_conn *c, int abortive, const char *why);
/* MHD's unescape callback: decodes like MHD's own and marks the
 * connection when a decoded part of the URL is not plain text (a NUL, a
 * control character, invalid UTF-8). */
size_t http_conn_unescape(void *cls, struct MHD_Connection *conn, char *s);
/* 1 (once) when the current request's URL was marked so. */
int http_conn_take_bad_url(http_conn *c);
/* c was cut off (an answer already went out on its socket, or a deadline
 * passed): a request MHD still hands over on it must not run. */
int http_conn_is_cut(const http_conn *c);
/* Check the headers' body framing. */
http_framing http_conn_framing(struct MHD_Connection *conn);
/* The name of a header that may appear once (Authorization, Origin,
 * Content-Type, the MCP headers, Last-Event-ID) but appears more often,
 * or NULL. */
const char *http_conn_repeated_header(struct MHD_Connection *conn);
/* The first query parameter name given twice, or NULL. */
const char *http_conn_repeated_arg(struct MHD_Connection *conn);
/* 1 if a body of Content-Type `ct` is JSON: application/json or
 * application/<anything>+json, any parameters; or no Content-Type. */
int http_media_type_json(const char *ct);
/* The same on a list of header names and values (values may be NULL):
 * the decision alone, for tests and the fuzzer. */
http_framing http_framing_of(const char *const *names,
                             const char *const *values, size_t n);
/* Answer r on the socket itself (MHD refuses a response while a body is
 * being read) with Connection: close, and end the connection: the access
 * handler then returns MHD_NO. */
void http_conn_answer_now(http_req *r, unsigned status, const char *body,
                          size_t len);

/* MHD's URI callback: a request whose line and query parameters (64
 * bytes each) need more than http_conn_query_budget(pool) is answered 431
 * on the socket and its connection ended (MHD would give up on it
 * unanswered). Returns NULL. */
void *http_conn_on_uri(void *cls, const char *uri,
                       struct MHD_Connection *conn);
size_t http_conn_query_budget(size_t pool_bytes);

/* The server a connection belongs to. */
sb_http_server *http_conn_server(http_conn *c);

/* ---- http_tls.c ------------------------------------------------------- */
/* 1 if libmicrohttpd can serve TLS with a certificate callback. */
int http_tls_supported(void);
/* The MHD_OPTION_HTTPS_CERT_CALLBACK value. */
void *http_tls_callback(void);
const char *http_tls_cert_pem(const http_tls_creds *c);
const char *http_tls_key_pem(const http_tls_creds *c);
/* Free the current and retired credentials (server stop). */
void http_tls_free_all(sb_http_server *s);

/* ---- http_server.c ---------------------------------------------------- */
/* Run MHD soon (after a resume). */
void http_kick(sb_http_server *s);

/* ---- http.c ----------------------------------------------------------- */
enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload_data,
                                size_t *upload_data_size, void **req_cls);
void http_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                       enum MHD_RequestTerminationCode toe);
/* Server stop: cancel r's call and let MHD close its connection. */
void http_req_shutdown(http_req *r);
void http_req_pool_free(sb_http_server *s);
void http_req_resume(http_req *r);
/* The watch timer fired: start the disconnect watch of every request
 * suspended for HTTP_WATCH_DELAY_MS or longer. */
void http_watch_due(uv_timer_t *t);
/* Run the sb_http_stream_on_drained callbacks that came due during
 * MHD_run (http_server.c calls it once MHD_run has returned). */
void http_sse_run_drained(sb_http_server *s);
/* Append raw bytes to a streaming request, waking its reader. */
int http_req_sse_append(http_req *r, const char *data, size_t len);
/* Make r's response an SSE stream (queue it). Returns 0 or SB_E*. */
int http_req_start_sse(http_req *r, unsigned status);
/* One JSON-RPC message as an event of r's stream: numbered and kept for
 * resumption in a legacy session's stream, plain "data:" otherwise. */
int http_req_sse_event(http_req *r, json_t *msg);
/* Tear a request down: detach its out, end its stream or answer it with
 * `error` (stolen, may be NULL) and `status`. */
void http_req_abort(http_req *r, unsigned status, json_t *error);
/* 1 if the peer of a suspended connection has certainly gone. */
int http_req_peer_closed(http_req *r);
/* The client is gone (or has abandoned the connection): for a legacy
 * session POST stream this orphans the call, otherwise it cancels it. */
void http_req_lost(http_req *r);

/* Queue a response on r: legal in the access handler and on a parked or
 * suspended connection (which is resumed). */
void http_req_queue(http_req *r, unsigned status, struct MHD_Response *resp);
/* The value of request header `name`, or NULL. */
const char *http_req_header(http_req *r, const char *name);

/* http_caller.c: the bearer token of the request's Authorization header
 * (or NULL); whether an Origin is allowed; the 401's WWW-Authenticate
 * value into out; the audit hook told of a 401 or 403 decided here. */
const char *http_bearer_token(http_req *r);
int http_origin_allowed(const sb_http_server_options *cfg, const char *origin);
void http_unauthorized_challenge(const http_req *r, char *out, size_t cap);
void http_audit_refusal(http_req *r, const char *url, sb_http_auth_reason why,
                        int status);

/* ---- http_route.c ----------------------------------------------------- */
/* index+1 of the route whose prefix matches url, or 0. */
int http_route_match(sb_http_server *s, const char *url);
/* Hand a complete request to its route's handler. */
void http_route_run(http_req *r, const char *method);
/* The request ends unanswered: tell a deferred handler (once). */
void http_route_gone(http_req *r);
/* The request no longer holds its quota place (answered, streaming, or
 * gone); once. */
void http_route_release(http_req *r);
/* ---- http_watch.c ----------------------------------------------------- */
/* Suspend a waiting request (and watch for its client leaving): a request
 * waiting for its answer is watched after HTTP_WATCH_DELAY_MS, an SSE
 * stream between events (watch_now) at once. */
void http_req_suspend_watch(http_req *r, int watch_now);
/* A request waiting for its answer, from the access handler: parked in
 * MHD without suspending it while nothing else is in MHD's hands (see
 * http_watch.c), else suspended. */
void http_req_park(http_req *r);
/* After MHD_run, when MHD asks to run again at once (it does while a
 * request is parked): 1 and *ms, the wait before the earliest park
 * expires, if the parked requests may stay; otherwise they are suspended
 * and 0. */
int http_park_hold(sb_http_server *s, unsigned long long *ms);
/* Suspend the requests parked for HTTP_WATCH_DELAY_MS or longer, and
 * watch them at once. */
void http_park_expire(sb_http_server *s);
/* r ends: out of the watch queue and the park, no longer counted. */
void http_watch_forget(http_req *r);
void http_routes_free(sb_http_server *s);
/* 1 if route (http_route_match's answer) is served to anyone. */
int http_route_is_open(sb_http_server *s, int route);

/* ---- http_session.c --------------------------------------------------- */
int http_sessions_init(sb_http_server *s);
/* Destroy every session (server stop). */
void http_sessions_free_all(sb_http_server *s);
/* May `tenant` open another session (the caps of the options)? */
http_session_admit http_session_may_open(sb_http_server *s, const char *tenant);
/* A new session of `tenant` (borrowed: must outlive the session), not yet
 * in the table; counted against the caps from now on. */
http_session *http_session_new(sb_http_server *s, sb_mcp_server *server,
                               const char *tenant);
void http_session_insert(http_session *hs);
http_session *http_session_find(sb_http_server *s, const char *id);
/* Remove from the table (if in it), end its requests, free it. */
void http_session_destroy(http_session *hs);
void http_session_attach(http_session *hs, http_req *r);
void http_session_detach_req(http_req *r);
/* Format msg as an SSE event on stream r->stream_id, record it in the
 * ring and append it to r. */
int http_session_stream_event(http_session *hs, http_req *r, json_t *msg);
/* Take over st (whose POST r just lost its client) as an orphan of hs. */
void http_session_orphan(http_session *hs, http_stream *st);
/* write() of an orphaned stream: ring, and the resuming GET if any. */
int http_stream_orphan_write(http_stream *st, json_t *msg, int final);
/* Cancel the calls still writing to st and free it. */
void http_stream_cancel(http_stream *st);
/* Free the orphans of hs whose calls are gone (cancelled by the client),
 * ending their resumed streams. */
void http_session_sweep_orphans(http_session *hs);
/* Serve GET: last_event_id may be NULL. Returns an HTTP status (200 when
 * the stream was started) and fills *error (new reference) otherwise. */
unsigned http_session_open_get(http_session *hs, http_req *r,
                               const char *last_event_id, json_t **error);
/* Free sessions idle longer than the configured timeout. */
void http_sessions_expire(sb_http_server *s, uint64_t now_ms);

#endif
