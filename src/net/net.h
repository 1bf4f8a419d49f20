/* net: transports that carry MCP messages.
 *
 * stdio: newline-delimited JSON on stdin/stdout of this process; logs go to
 * stderr only. One legacy session for the process; modern requests are
 * served statelessly.
 *
 * Streamable HTTP: one endpoint, /mcp, served by libmicrohttpd driven from
 * the libuv loop (no MHD thread). Modern POSTs get a JSON body or an SSE
 * stream; legacy clients additionally get Mcp-Session-Id sessions, the GET
 * stream, DELETE, and SSE resumption with Last-Event-ID. Origin is checked
 * against the configured allow-list.
 */
#ifndef SB_NET_H
#define SB_NET_H

#include <uv.h>

#include "core/core.h"
#include "mcp/mcp.h"

typedef struct sb_stdio_server sb_stdio_server;

/* Serve MCP on this process's stdin/stdout. When stdin reaches EOF the
 * transport stops reading and calls on_eof (may be NULL); the requests
 * already read are still answered until sb_stdio_server_stop (which
 * cancels those left), so the caller can wait for them
 * (sb_stdio_server_busy) before it stops the loop. */
sb_stdio_server *sb_stdio_server_start(uv_loop_t *loop, sb_mcp_server *srv,
                                       void (*on_eof)(void *ud), void *ud,
                                       sb_error *err);
/* The same, reading nothing until sb_stdio_server_resume: for a server
 * that has something to wait for before its first request. */
sb_stdio_server *sb_stdio_server_start_paused(uv_loop_t *loop,
                                              sb_mcp_server *srv,
                                              void (*on_eof)(void *ud),
                                              void *ud, sb_error *err);
void sb_stdio_server_resume(sb_stdio_server *s);
/* 1 while a request read from stdin is unanswered or an answer is still
 * being written to stdout. */
int sb_stdio_server_busy(const sb_stdio_server *s);
void sb_stdio_server_stop(sb_stdio_server *s);

typedef struct sb_http_server sb_http_server;

/* Why a REST request was refused by its admission (quotas). */
typedef struct sb_http_refusal {
  int retry_after_s; /* Retry-After; 0 = none */
  const char *limit; /* static: the config key of the limit */
  char message[256];
} sb_http_refusal;

/* A request refused before any handler ran, for the audit trail. */
typedef enum sb_http_auth_reason {
  SB_HTTP_AUTH_MISSING = 1, /* 401: no bearer token where one is needed */
  SB_HTTP_AUTH_REFUSED,     /* 401: a token the authenticate option refused */
  SB_HTTP_AUTH_ORIGIN,      /* 403: an Origin not allowed */
} sb_http_auth_reason;

typedef struct sb_http_auth_failure {
  int status; /* 401 or 403 */
  sb_http_auth_reason reason;
  const char *tenant;       /* the caller's when it authenticated (a 403) */
  const char *bearer_token; /* as presented, or NULL: never log or keep it */
  const char *remote_addr;  /* "127.0.0.1", "::1"; "" when unknown */
  const char *method, *path;
} sb_http_auth_failure;

typedef struct sb_http_server_options {
  const char *listen_host; /* IP literal; NULL = 127.0.0.1 */
  int listen_port;         /* 0 picks a free one */
  /* Origins allowed besides none at all (scheme://host[:port], lowercase);
   * empty = loopback origins only. Borrowed: must outlive the server. */
  char *const *allowed_origins;
  size_t allowed_origins_len;
  size_t max_message_bytes;       /* one body; larger ones get 413 */
  int max_json_depth;             /* refused before parsing deeper */
  int max_connections;            /* MHD's connection limit */
  size_t connection_memory_bytes; /* MHD's per-connection pool */
  int connection_timeout_s;       /* idle connections are closed */
  /* A connection holding no request (new, or idle between keep-alive
   * requests) must deliver its next request's headers within this long,
   * however they trickle in, and a request's body must be in within
   * body_timeout_s of its headers. 0 = no deadline. */
  int header_timeout_s;
  int body_timeout_s;
  /* A plain answer (not an SSE stream) must be taken by its client within
   * this long of being queued, else the connection is reset: a client
   * that never reads holds neither its place nor the answer's memory
   * longer. 0 = no deadline. */
  int send_timeout_s;
  int max_connections_per_address; /* MHD's per-IP cap; 0 = none */
  /* Places of max_connections that connections without a request that
   * passed authentication cannot take: past max_connections minus this,
   * the oldest such connection holding nothing is closed. */
  int connection_reserve;
  /* SSE output kept for a client that does not read; past it the stream
   * and its connection are closed. 0 = 8 MiB. */
  size_t max_stream_buffer_bytes;
  int session_idle_timeout_s;     /* legacy sessions expire */
  /* Legacy sessions open at once, in all and per tenant; an initialize
   * past either is refused with 503 naming the limit. 0 = no cap. */
  int max_sessions;
  int max_sessions_per_tenant;
  int replay_events;              /* SSE events kept for Last-Event-ID */
  /* HTTPS: a PEM certificate (chain) and its key; both NULL = plain
   * HTTP. Read at start (an unreadable or bad file fails the start,
   * naming it); sb_http_server_install_tls swaps them while running. */
  const char *tls_cert_file;
  const char *tls_key_file;
  /* The caller for its bearer token (NULL when it sent none): a new
   * reference to its principal (core.h), or NULL to refuse it with 401;
   * then *why (a static string, may stay NULL) says why, as the
   * challenge's error_description. NULL callback: every caller is
   * "default", unrestricted. */
  sb_principal *(*authenticate)(void *ud, const char *bearer_token,
                                const char **why);
  void *auth_ud;
  /* OAuth protected-resource metadata (RFC 9728): when set, the document
   * (JSON text, borrowed) is served to anyone at
   * /.well-known/oauth-protected-resource (and below it), and every 401
   * challenges with Bearer resource_metadata="<resource_metadata_url>". */
  const char *resource_metadata;
  const char *resource_metadata_url;
  /* Quotas on REST routes (MCP endpoints have their MCP server's
   * admission), asked once the caller is authenticated: 0 admits the
   * request, and release(ud, tenant) follows once when it is answered,
   * becomes an SSE stream or its client leaves; otherwise it is refused
   * with 429, Retry-After and a body naming the limit. NULL: no quota. */
  int (*admit)(void *ud, const char *tenant, sb_http_refusal *r);
  void (*release)(void *ud, const char *tenant);
  void *admit_ud;
  /* Told of every request refused with 401 or 403 by the checks above
   * (borrowed for the call). NULL: not told. */
  void (*on_auth_failure)(void *ud, const sb_http_auth_failure *f);
  void *audit_ud;
} sb_http_server_options;

/* Listen on opts->listen_host:listen_port (copied; strings borrowed). */
sb_http_server *sb_http_server_start(uv_loop_t *loop, sb_mcp_server *srv,
                                     const sb_http_server_options *opts,
                                     sb_error *err);
/* Hold (1) or release (0) serving: while held, the listening socket is
 * bound (its port known) and connections wait in its backlog, but none is
 * accepted or read. A server holds until what authentication needs has
 * loaded (the API keys), so that a good key is never refused just after
 * a start. */
void sb_http_server_hold(sb_http_server *s, int hold);
/* The port actually bound. */
int sb_http_server_port(const sb_http_server *s);
/* 1 if it serves HTTPS. */
int sb_http_server_is_tls(const sb_http_server *s);
/* A certificate (chain) and its key, read and checked, not yet served.
 * A reload is two steps: sb_http_tls_load reads the files (touching no
 * server: any thread, e.g. a worker, so the loop never waits on disk),
 * then sb_http_server_install_tls swaps them in on the loop. */
typedef struct http_tls_creds sb_http_tls_creds;
/* Read and check a PEM certificate (chain) and its key (that it is the
 * certificate's); on error (naming the file) *out stays NULL. */
int sb_http_tls_load(const char *cert_file, const char *key_file,
                     sb_http_tls_creds **out, sb_error *err);
void sb_http_tls_free(sb_http_tls_creds *c);
/* On the loop: handshakes from now on get c (taken, even on error),
 * established connections keep theirs. SB_ESTATE on a plain HTTP server
 * (c is freed, the server is unchanged). */
int sb_http_server_install_tls(sb_http_server *s, sb_http_tls_creds *c,
                               sb_error *err);
/* Close every connection and the listening socket. */
void sb_http_server_stop(sb_http_server *s);

/* Start a graceful stop: the listening socket is closed (new connections
 * are refused), a new request on a connection already open is answered
 * 503 with Connection: close, and what is under way goes on. Returns how
 * many requests are under way; sb_http_server_busy tells again later. */
size_t sb_http_server_drain(sb_http_server *s);
/* Requests under way: not counting the streams that only end when their
 * client goes (legacy GET streams, subscriptions/listen, REST event
 * streams), which the stop closes. */
size_t sb_http_server_busy(const sb_http_server *s);

/* For monitoring. */
typedef struct sb_http_stats {
  size_t connections;    /* open now */
  size_t sessions;       /* legacy MCP sessions open now */
  uint64_t responses[6]; /* answered so far, by status class: [2] 2xx... */
} sb_http_stats;
void sb_http_server_stats(const sb_http_server *s, sb_http_stats *out);

/* Further MCP endpoints: for a path other than /mcp, `resolver` names the
 * MCP server that serves it (NULL: none). Sessions stay with the endpoint
  * that opened them. */
void sb_http_server_mount(sb_http_server *s,
                          sb_mcp_server *(*resolver)(void *ud, const char *path),
                          void *ud);

/* ---- REST routes beside /mcp -------------------------------------------
 * A handler gets the whole request (headers, body up to the message limit,
 * the authenticated tenant) and answers it before returning, or defers the
 * answer (sb_http_request_defer) and answers later from a loop callback.
 * Origin and bearer-token checks have already passed. */
typedef struct http_req sb_http_request;
typedef void (*sb_http_handler)(void *ud, sb_http_request *req);

/* Answer later: the handler returns without answering and calls
 * sb_http_respond later, on the loop thread. If the request ends first
 * (the client goes away, the server stops), on_gone(ud) runs once and the
 * request must not be touched again. Answering cancels on_gone. */
typedef void (*sb_http_gone_cb)(void *ud);
void sb_http_request_defer(sb_http_request *req, sb_http_gone_cb on_gone,
                           void *ud);

/* Serve every path starting with `prefix` (e.g. "/v1/contexts"). */
int sb_http_server_route(sb_http_server *s, const char *prefix,
                         sb_http_handler fn, void *ud);
/* The same for a route anyone may call, without a bearer token and
 * outside the quotas (health probes): its handler sees no tenant (NULL).
 * The Origin check still applies. */
int sb_http_server_route_open(sb_http_server *s, const char *prefix,
                              sb_http_handler fn, void *ud);

const char *sb_http_request_method(const sb_http_request *req);
const char *sb_http_request_path(const sb_http_request *req);
/* A query-string argument, or NULL. */
const char *sb_http_request_query(sb_http_request *req, const char *key);
/* The first query-string argument whose name is not in `known` (a NULL-
 * terminated list; NULL: none is known), or NULL when all are. */
const char *sb_http_request_unknown_query(sb_http_request *req,
                                          const char *const *known);
const char *sb_http_request_header(sb_http_request *req, const char *name);
const char *sb_http_request_body(const sb_http_request *req, size_t *len);
/* The body parsed as JSON (an object or array; new reference in *out) by
 * the parser /mcp uses, under the same limits (max_message_bytes,
 * max_json_depth): one body parser for every surface. Returns 0, or
 * SB_EINVAL with err naming what is wrong (invalid JSON with its line and
 * column, or the limit passed). */
int sb_http_request_json(const sb_http_request *req, json_t **out,
                         sb_error *err);
/* The caller's tenant, from its bearer token (the authenticate option). */
const char *sb_http_request_tenant(const sb_http_request *req);
/* The caller (borrowed, for the request's life; NULL: no authenticate
 * option, an unrestricted caller). */
const sb_principal *sb_http_request_principal(const sb_http_request *req);
/* A WWW-Authenticate value for a 403 for want of `scope` (RFC 6750 3.1):
 * Bearer error="insufficient_scope", scope, resource_metadata when the
 * server has it, and the description. Written into out (cap bytes). */
void sb_http_insufficient_scope(const sb_http_request *req, const char *scope,
                                const char *description, char *out,
                                size_t cap);

/* Answer: status, content type (NULL = application/json), body (copied),
 * extra headers as a NULL-terminated name, value, name, value... list. */
int sb_http_respond(sb_http_request *req, int status, const char *content_type,
                    const char *body, size_t len, const char *const *headers);

/* Answer a deferred request with an open Server-Sent Events stream (200,
 * text/event-stream, heartbeats while idle). The request's on_gone still
 * tells when the client leaves or the server stops; after it, or after
 * sb_http_stream_end, the request must not be touched again. */
int sb_http_stream_start(sb_http_request *req);
/* Send SSE text (whole events: "id: 1\nevent: x\ndata: {...}\n\n").
 * SB_EIO when the client is gone or stopped reading (the stream is then
 * ended; on_gone runs). */
int sb_http_stream_send(sb_http_request *req, const char *text, size_t len);
/* Bytes sent on the stream that its client has not taken yet (0 once it
 * is gone): a producer that can wait (a backlog read from a log) pauses
 * while it is high, well before max_stream_buffer_bytes cuts the client. */
size_t sb_http_stream_unsent(const sb_http_request *req);
/* Tell once, by cb(ud) on the loop, when the bytes unsent on the stream
 * fall to `below` or fewer (at once, on the next turn, if they already
 * have): a producer paused by sb_http_stream_unsent goes on. A later call
 * replaces it, cb NULL cancels it; never after the stream is gone. */
void sb_http_stream_on_drained(sb_http_request *req, size_t below,
                               void (*cb)(void *ud), void *ud);
/* End the stream once what was sent is out. */
void sb_http_stream_end(sb_http_request *req);

/* ---- channels to agents (switchboard as the client) ---------------------
 * A channel carries JSON-RPC messages to one agent and back, whatever the
 * transport: a child process speaking newline-delimited JSON on its stdio,
 * or a Streamable HTTP endpoint. The MCP client (mcp/) sits on top and does
 * the protocol; the channel only moves messages and reports when it is
 * down. Every callback runs on the loop thread. */
typedef struct sb_channel sb_channel;

/* How a request the channel carried ended without an answer from the
 * agent (HTTP; a stdio channel only ever reports itself closed). */
typedef enum sb_channel_failure {
  SB_CHANNEL_UNSENT = 1,    /* it never reached the agent (no connection) */
  SB_CHANNEL_LOST,          /* it went out; no usable answer came back */
  SB_CHANNEL_SESSION_GONE,  /* the session it named had ended, so the
                               agent never processed it */
  SB_CHANNEL_SESSION_ENDED, /* ...and that was the channel's current
                               session: the owner must initialize again */
  SB_CHANNEL_REFUSED,       /* HTTP 401 or 403: the agent refused it before
                               processing it (our credentials, or their
                               scope); sb_channel_last_refusal says why */
} sb_channel_failure;

typedef struct sb_channel_events {
  /* One message (object or batch array) from the agent; borrowed. */
  void (*on_message)(void *ud, json_t *msg);
  /* The channel is down for good (process exited, stream failed past
   * retry); no more callbacks follow, and the owner still calls
   * sb_channel_close to free it (allowed inside this callback). `detail`
   * names the reason, e.g. "exited with status 1". */
  void (*on_closed)(void *ud, const char *detail);
  void *ud;
  /* Request `id` (borrowed) will get no answer from the agent, and why;
   * `detail` is for people ("connect to http://...: refused", "HTTP 502").
   * Delivered in order with on_message. NULL: such failures are logged. */
  void (*on_request_failed)(void *ud, json_t *id, sb_channel_failure kind,
                            const char *detail);
  /* HTTP legacy: the GET stream sb_channel_open_stream asked for has
   * settled: the agent sent its response headers (2xx: the stream is up),
   * or the request ended (refused, 405, failed); once per open, after
   * the messages queued before it. NULL: not told. */
  void (*on_stream_settled)(void *ud);
} sb_channel_events;

/* During on_message: the id of the one request whose HTTP response stream
 * carried this message (borrowed), such as an agent's request for input
 * sent while it serves that request; NULL when no single request did
 * (stdio, the GET stream, a batch). The agent's own word for what its
 * request belongs to, where 2025-11-25 and earlier give nothing else. */
const json_t *sb_channel_message_related(const sb_channel *ch);

/* Send one message (borrowed). For HTTP, a request's response comes back
 * through on_message, or its failure through on_request_failed. 0 or a
 * negative SB_E* code. */
int sb_channel_send(sb_channel *ch, json_t *msg, sb_error *err);
/* The same with headers for this one HTTP request ({name: value},
 * borrowed; NULL: none), such as a tools/call's Mcp-Param-*; stdio has no
 * headers and sends the message alone. */
int sb_channel_send_headers(sb_channel *ch, json_t *msg,
                            const json_t *headers, sb_error *err);
/* Stop waiting for the answer to request `id` (HTTP: abort its POST, which
 * the agent sees as cancellation; stdio: nothing to do). */
void sb_channel_cancel(sb_channel *ch, json_t *id);
/* Close and free; no callback runs after this returns. */
void sb_channel_close(sb_channel *ch);
/* Header sent with every later HTTP request (e.g. MCP-Protocol-Version);
 * value NULL removes it. No-op for stdio. */
int sb_channel_set_header(sb_channel *ch, const char *name, const char *value);
/* The last request the agent refused (SB_CHANNEL_REFUSED): its status
 * (401, 403), its WWW-Authenticate challenges as sent (joined by ", ", cut
 * at 2 KiB; NULL: none), and whether it went with an Authorization header
 * since replaced (sb_channel_set_header): refused for credentials we no
 * longer send. NULL before any refusal; valid until the next. */
typedef struct sb_channel_refusal {
  long status;
  const char *challenge;
  int stale_credentials;
} sb_channel_refusal;
const sb_channel_refusal *sb_channel_last_refusal(const sb_channel *ch);
/* Mcp-Session-Id the agent assigned (HTTP, legacy), or NULL. */
const char *sb_channel_session_id(const sb_channel *ch);
/* HTTP legacy: open the GET stream for agent-initiated messages (resumed
 * with Last-Event-ID when it drops); on_stream_settled follows. 0, or
 * SB_ESTATE for stdio (no callback). */
int sb_channel_open_stream(sb_channel *ch, sb_error *err);
/* Process id of a stdio agent (0 for HTTP), for logs and tests. */
/* 1 when the agent behind ch is known to be gone (a child that exited,
 * could not be started, or was given up on) and on_closed is on its way
 * saying why: a failure seen meanwhile (a request it could not take) is
 * a consequence, and the report the cause. */
int sb_channel_ended(const sb_channel *ch);
int sb_channel_pid(const sb_channel *ch);

typedef struct sb_child_options {
  const char *command;      /* looked up in PATH if it has no slash */
  const char *const *args;  /* NULL-terminated, without argv[0]; may be NULL */
  const char *const *env;   /* "NAME=value", NULL-terminated; added to ours */
  const char *cwd;          /* NULL = ours */
  const char *name;         /* for logs: the agent's stderr is logged as
                               "agent <name>: ..." */
  size_t max_message_bytes; /* a longer line closes the channel */
  /* Busy polling, in microseconds; 0 = off. While a request is
   * unanswered and the loop is otherwise idle, read the agent's stdout
   * without sleeping for up to this long after the request went out,
   * provided its recent answers came within it: CPU for the latency of a
   * wake-up. See child.c. */
  unsigned busy_poll_us;
  /* Linux: an executable that calls sb_child_shim_main first thing in its
   * main(), normally sb_child_shim_self(). The agent is then started
   * through it, so that the kernel kills the agent when this process dies,
   * even by SIGKILL (PR_SET_PDEATHSIG; see child.c). NULL: the agent is
   * spawned directly and may outlive a crash of this process. */
  const char *exec_shim;
} sb_child_options;

/* Spawn an agent process and talk to it over its stdin/stdout. */
sb_channel *sb_channel_spawn(uv_loop_t *loop, const sb_child_options *opts,
                             const sb_channel_events *ev, sb_error *err);

/* The exec shim (child_shim.c). An executable that may serve as
 * sb_child_options.exec_shim calls sb_child_shim_main(argc, argv) before
 * anything else in main(): when argv[1] is SB_CHILD_SHIM_ARG it becomes the
 * agent (or exits 127) and never returns; otherwise it returns at once. */
#define SB_CHILD_SHIM_ARG "--switchboard-exec-agent"
void sb_child_shim_main(int argc, char **argv);
/* For exec_shim in an executable whose main() calls sb_child_shim_main:
 * "/proc/self/exe" where the shim works (Linux, /proc mounted), else NULL
 * (agents are then spawned directly). */
const char *sb_child_shim_self(void);
/* Whether a stdio agent's command can start here, as the shim's execvp
 * would look for it: a command with a '/' is that file (relative to cwd,
 * if given), any other the first executable of that name along path_env
 * (the PATH the agent gets; NULL: execvp's default). 0, or -1 with why
 * ("nosuch is not found on PATH (/usr/bin:/bin)"). Reads the file
 * system: not for the loop thread. */
int sb_child_command_check(const char *command, const char *path_env,
                           const char *cwd, char *why, size_t n);

typedef struct sb_http_channel_options {
  const char *url;            /* the agent's MCP endpoint */
  const char *const *headers; /* "Name: value", NULL-terminated */
  const char *name;           /* for logs */
  size_t max_message_bytes;   /* larger responses fail the request */
  long connect_timeout_ms;    /* default 5000 */
} sb_http_channel_options;

/* A Streamable HTTP channel (libcurl multi driven by the loop). */
sb_channel *sb_channel_http(uv_loop_t *loop, const sb_http_channel_options *o,
                            const sb_channel_events *ev, sb_error *err);

/* ---- plain HTTP requests (switchboard as a client of other services) ----
 * A fetcher owns one libcurl multi handle on the loop (curl_uv.c, the
 * machinery the HTTP channels use), so its requests share a connection
 * cache. A request's callback runs once on the loop, never from inside
 * curl; it may start, cancel or free from there. */
typedef struct sb_fetcher sb_fetcher;
typedef struct sb_fetch sb_fetch;

/* How a request ended. */
typedef enum sb_fetch_outcome {
  SB_FETCH_RESPONSE = 0,   /* a whole response came back: see status */
  SB_FETCH_CONNECT_FAILED, /* no connection (refused, unresolvable, the
                              connect timeout): nothing was sent */
  SB_FETCH_TIMED_OUT,      /* timeout_ms passed before the response ended */
  SB_FETCH_TOO_LARGE,      /* the body passed max_response_bytes */
  SB_FETCH_FAILED,         /* the transfer failed after connecting */
  SB_FETCH_CANCELLED,      /* sb_fetch_cancel or sb_fetcher_free */
} sb_fetch_outcome;

/* Borrowed for the callback's duration only. */
typedef struct sb_fetch_result {
  sb_fetch_outcome outcome;
  long status;      /* RESPONSE: the HTTP status */
  const char *body; /* RESPONSE: NUL-terminated, body_len bytes */
  size_t body_len;
  const char *detail; /* the other outcomes: what went wrong, for people */
  /* RESPONSE: the WWW-Authenticate headers' values as sent, joined by
   * ", " (at most 2 KiB kept), or NULL: an OAuth resource server's
   * challenges. */
  const char *www_authenticate;
} sb_fetch_result;

typedef struct sb_fetch_options {
  const char *method; /* "GET" or "POST"; NULL = POST with a body, else GET */
  const char *url;    /* http:// or https:// */
  /* "Name: value", NULL-terminated; may be NULL. Never logged. */
  const char *const *headers;
  const char *body; /* copied; may be NULL */
  size_t body_len;
  long timeout_ms;         /* the whole request; 0 = none */
  long connect_timeout_ms; /* 0 = 5000 */
  size_t max_response_bytes; /* 0 = 4 MiB */
} sb_fetch_options;

typedef void (*sb_fetch_cb)(void *ud, const sb_fetch_result *r);

sb_fetcher *sb_fetcher_new(uv_loop_t *loop, sb_error *err);
/* Cancel every request (each callback runs with SB_FETCH_CANCELLED) and
 * free once the loop has closed the handles. */
void sb_fetcher_free(sb_fetcher *f);
/* Start a request. 0 and *out (may be NULL: the request is then only
 * ended by its callback), or a negative code with err (bad options, out of
 * memory); cb then never runs. */
int sb_fetch_start(sb_fetcher *f, const sb_fetch_options *o, sb_fetch_cb cb,
                   void *ud, sb_fetch **out, sb_error *err);
/* Abort: the callback runs now with SB_FETCH_CANCELLED. */
void sb_fetch_cancel(sb_fetch *req);

#endif
