/* http.c: the Streamable HTTP transport's request handling.
 *
 * Every callback here runs on the loop thread (http_server.c drives MHD
 * from the libuv loop), so nothing needs a lock.
 *
 * One POST is one sb_mcp_out. The mcp module may write to it inside
 * sb_mcp_server_dispatch (most requests) or later from a loop callback (slow
 * tools, subscriptions/listen). If the first message is the final response
 * it goes out as application/json; if something else comes first and the
 * client accepts text/event-stream, the response becomes an SSE stream and
 * the final message ends it. While a request waits, its MHD connection is
 * parked, or suspended and watched for its client leaving (http_watch.c).
 * A disconnect detaches the out (which cancels the call), except for a
 * legacy session POST whose response is already an SSE stream: under
 * 2025-11-25 a dropped stream is not a cancellation, so its http_stream
 * (the out, allocated apart from the request) is handed to the session,
 * the call runs on and the client may resume with GET + Last-Event-ID
 * (http_session.c). Modern requests keep "closing the stream cancels".
 *
 * Who the caller is (the Origin policy, the bearer token, the 401 and 403
 * challenges, the audit of refusals) is decided with http_caller.c.
 *
 * Legacy sessions, the GET stream and Last-Event-ID replay live in
 * http_session.c; deadlines, the connection reserve, framing checks and
 * cutting connections off in http_conn.c.
 */
#include "net/http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MOD "http"
#define MCP_PATH "/mcp"
#define WELL_KNOWN_PRM "/.well-known/oauth-protected-resource"
#define POOL_MAX 512
#define POOL_BUF_MAX (64u * 1024u)
#define SESSION_NOT_FOUND (-32001)

/* ---- small helpers ---------------------------------------------------- */

/* A header's value without the whitespace around it (RFC 9110 5.5: it is
 * no part of the value). libmicrohttpd drops the leading whitespace, not
 * the trailing: a value that has some is copied without it, the copy
 * living as long as the request. */
const char *http_req_header(http_req *r, const char *name) {
  const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
  size_t n = v ? strlen(v) : 0;
  if (!n || (v[n - 1] != ' ' && v[n - 1] != '\t')) return v;
  json_t *have = json_object_get(r->trimmed, name);
  if (have) return json_string_value(have);
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
    n--;
  if (!r->trimmed && !(r->trimmed = json_object())) return NULL;
  json_t *cut = json_stringn_nocheck(v, n);
  if (!cut || json_object_set_new(r->trimmed, name, cut) != 0) return NULL;
  return json_string_value(cut);
}

static const char *header(http_req *r, const char *name) {
  return http_req_header(r, name);
}

static int accept_allows_sse(const char *accept) {
  if (!accept) return 1;
  return strcasestr(accept, "text/event-stream") || strstr(accept, "*/*") ||
         strcasestr(accept, "text/*");
}

/* An id worth echoing in an error: the message's own, if valid. */
static json_t *msg_id(json_t *msg) {
  json_t *id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
  return sb_rpc_id_valid(id) ? id : NULL;
}

static int is_request(json_t *m) {
  return json_is_object(m) && json_object_get(m, "method") &&
         json_object_get(m, "id");
}

static int has_request(json_t *msg) {
  if (!json_is_array(msg)) return is_request(msg);
  size_t i;
  json_t *m;
  json_array_foreach(msg, i, m) if (is_request(m)) return 1;
  return 0;
}

/* HTTP status for a final message. Transport-level rejections (unparsable
 * or malformed JSON-RPC) are 400 in both eras; the modern revision maps
 * its own error codes (sb_mcp_http_status); legacy errors ride a 200. */
static unsigned status_for(http_req *r, json_t *msg) {
  json_t *e = json_is_object(msg) ? json_object_get(msg, "error") : NULL;
  if (!json_is_object(e)) return MHD_HTTP_OK;
  if (json_integer_value(json_object_get(e, "code")) ==
      SB_RPC_QUOTA_EXCEEDED) {
    /* A quota, in both eras: 429, and Retry-After when a token is due. */
    json_int_t ms = json_integer_value(
        json_object_get(json_object_get(e, "data"), "retryAfterMs"));
    r->retry_after_s = ms > 0 ? (int)((ms + 999) / 1000) : 0;
    return MHD_HTTP_TOO_MANY_REQUESTS;
  }
  if (r->modern) return (unsigned)sb_mcp_http_status(msg);
  int code = (int)json_integer_value(json_object_get(e, "code"));
  if (code == SB_RPC_PARSE_ERROR || code == SB_RPC_INVALID_REQUEST)
    return MHD_HTTP_BAD_REQUEST;
  return MHD_HTTP_OK;
}

/* Cancel whatever still writes to r's output. */
static void req_detach_out(http_req *r) {
  http_route_gone(r);
  http_stream *st = r->stream;
  if (st) {
    r->stream = NULL;
    st->req = NULL;
    r->detached = 1;
    http_stream_cancel(st);
    return;
  }
  if (r->dispatched && !r->final_seen && !r->detached && !r->is_get) {
    r->detached = 1;
    sb_mcp_out_detach(&r->out);
  }
}

/* A legacy session POST streaming SSE whose final message is still to
 * come: losing its client leaves the call running (see the top). */
static int req_can_orphan(http_req *r) {
  return r->stream && r->session && r->state == REQ_SSE && !r->final_seen &&
         !r->detached && !r->srv->stopping;
}

/* r lost its client: orphan its call if it may run on, else cancel it. */
static void req_lose_out(http_req *r) {
  if (!req_can_orphan(r)) {
    req_detach_out(r);
    return;
  }
  http_stream *st = r->stream;
  r->stream = NULL;
  r->detached = 1;
  st->req = NULL;
  st->id = r->stream_id;
  http_session_orphan(r->session, st);
}

/* CORS (Fetch standard): a browser page of an allowed Origin may read the
 * answers, and the headers a client needs to go on (the session id, an
 * ETag for If-Match, where a created thing is, why a token was refused). */
#define CORS_EXPOSED                                                          \
  "Mcp-Session-Id, Mcp-Protocol-Version, ETag, Location, WWW-Authenticate, " \
  "Retry-After"
#define CORS_METHODS "GET, POST, PUT, PATCH, DELETE"
#define CORS_HEADERS                                                         \
  "Authorization, Content-Type, Accept, Mcp-Session-Id, "                    \
  "Mcp-Protocol-Version, Last-Event-ID, If-Match, traceparent, tracestate"

static void cors_headers(http_req *r, struct MHD_Response *resp) {
  MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
  MHD_add_response_header(resp, "Vary", "Origin");
  MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSED);
}

/* Queue a response: legal inside the access handler and at any time on a
 * parked or suspended connection, which MHD then runs to send it. */
void http_req_queue(http_req *r, unsigned status, struct MHD_Response *resp) {
  /* Not on the server's shared responses: they serve every request. */
  const sb_http_server *srv = r->srv;
  if (r->cors_origin && resp != srv->resp_accepted &&
      resp != srv->resp_gone && resp != srv->resp_no_get)
    cors_headers(r, resp);
  if (MHD_queue_response(r->conn, status, resp) != MHD_YES) {
    SB_DEBUG(MOD, "queueing a %u response failed", status);
  } else {
    if (status >= 100 && status < 600) r->srv->responses[status / 100]++;
    if (r->state != REQ_SSE) http_conn_answer_queued(http_conn_of(r->conn));
  }
  http_req_resume(r);
}


/* The client went away (or must be cut off). */
static void on_peer_gone(http_req *r) {
  if (r->gone) return;
  r->gone = 1;
  SB_DEBUG(MOD, "client went away%s",
           req_can_orphan(r) ? "; its call runs on, resumable"
           : r->dispatched && !r->final_seen && !r->is_get
               ? "; cancelling its call"
               : "");
  req_lose_out(r);
  if (r->is_get) http_session_detach_req(r);
  if (r->state == REQ_WAITING) {
    r->state = REQ_RESPONDED;
    http_req_queue(r, MHD_HTTP_INTERNAL_SERVER_ERROR, r->srv->resp_gone);
  } else {
    http_req_resume(r); /* the reader ends the stream with an error */
  }
}

void http_req_lost(http_req *r) { on_peer_gone(r); }

/* ---- responses -------------------------------------------------------- */

/* Send `body` (ours, freed with sb_free by MHD) as application/json. */
static int respond_body(http_req *r, unsigned status, char *body, size_t len,
                        const char *session_id) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer_with_free_callback(len, body, sb_free);
  if (!resp) {
    sb_free(body);
    return SB_ENOMEM;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/json");
  if (session_id) MHD_add_response_header(resp, "Mcp-Session-Id", session_id);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST, GET, DELETE");
  if (status == MHD_HTTP_UNAUTHORIZED) {
    char challenge[512];
    http_unauthorized_challenge(r, challenge, sizeof challenge);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge);
  }
  if (status == MHD_HTTP_FORBIDDEN && r->refused_scope) {
    char challenge[600];
    sb_http_insufficient_scope(r, r->refused_scope, r->refused_why, challenge,
                               sizeof challenge);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge);
  }
  if (status == MHD_HTTP_TOO_MANY_REQUESTS && r->retry_after_s > 0) {
    char secs[24];
    snprintf(secs, sizeof secs, "%d", r->retry_after_s);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
  }
  if (r->close_after)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  r->state = REQ_RESPONDED;
  http_req_queue(r, status, resp);
  MHD_destroy_response(resp);
  return 0;
}

static int respond_msg(http_req *r, unsigned status, json_t *msg,
                       const char *session_id) {
  size_t len = 0;
  char *body = sb_rpc_dump(msg, &len);
  if (!body) {
    r->state = REQ_RESPONDED;
    http_req_queue(r, MHD_HTTP_INTERNAL_SERVER_ERROR, r->srv->resp_gone);
    return SB_ENOMEM;
  }
  return respond_body(r, status, body, len, session_id);
}

/* Answer with a JSON-RPC error (id borrowed, data stolen). */
static void respond_error(http_req *r, unsigned status, json_t *id, int code,
                          const char *message, json_t *data) {
  json_t *e = sb_rpc_error_new(id, code, message, data);
  if (!e) {
    r->state = REQ_RESPONDED;
    http_req_queue(r, MHD_HTTP_INTERNAL_SERVER_ERROR, r->srv->resp_gone);
    return;
  }
  respond_msg(r, status, e, NULL);
  json_decref(e);
}

static void respond_static(http_req *r, unsigned status,
                           struct MHD_Response *resp) {
  r->state = REQ_RESPONDED;
  if (!r->cors_origin) {
    http_req_queue(r, status, resp);
    return;
  }
  /* resp is shared by every request: the CORS headers, this request's
   * own, go on a response of its own (empty, as the shared ones used
   * here are). */
  struct MHD_Response *own =
      MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!own) {
    http_req_queue(r, status, resp);
    return;
  }
  if (r->close_after || resp == r->srv->resp_gone)
    MHD_add_response_header(own, MHD_HTTP_HEADER_CONNECTION, "close");
  http_req_queue(r, status, own);
  MHD_destroy_response(own);
}

/* The answer to a CORS preflight of an allowed Origin: what the request
 * it announces may use. The headers it asks for are granted as asked
 * (an x-mcp-header tool's Mcp-Param-* names cannot be listed ahead). */
static void respond_preflight(http_req *r) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!resp) {
    respond_static(r, MHD_HTTP_INTERNAL_SERVER_ERROR, r->srv->resp_gone);
    return;
  }
  const char *asked = header(r, "Access-Control-Request-Headers");
  MHD_add_response_header(resp, "Access-Control-Allow-Methods", CORS_METHODS);
  MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                          asked && *asked ? asked : CORS_HEADERS);
  MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
  r->state = REQ_RESPONDED;
  http_req_queue(r, MHD_HTTP_NO_CONTENT, resp);
  MHD_destroy_response(resp);
}

/* ---- SSE -------------------------------------------------------------- */

void http_req_abort(http_req *r, unsigned status, json_t *error) {
  req_detach_out(r);
  switch (r->state) {
  case REQ_WAITING:
    if (error)
      respond_msg(r, status, error, NULL);
    else
      respond_static(r, MHD_HTTP_INTERNAL_SERVER_ERROR, r->srv->resp_gone);
    break;
  case REQ_SSE:
    r->sse_end = 1;
    http_req_resume(r);
    break;
  default: break;
  }
  json_decref(error);
}

/* ---- the out every POST owns ------------------------------------------ */

/* `scope`: the out's refused_scope (mcp.h): a final error refusing a call
 * for it is a 403 with an insufficient_scope challenge (MCP
 * authorization, runtime scope errors), in both eras. */
static int req_write(http_req *r, json_t *msg, int final, const char *scope) {
  if (r->gone || r->detached) return SB_EIO;
  if (r->final_seen || r->state == REQ_RESPONDED) return SB_ESTATE;
  if (final) r->final_seen = 1;
  if (!msg) { /* final, with nothing to send */
    if (r->state == REQ_SSE) {
      r->sse_end = 1;
      http_req_resume(r);
    } else {
      respond_static(r, MHD_HTTP_ACCEPTED, r->srv->resp_accepted);
    }
    return 0;
  }
  if (r->state == REQ_SSE) {
    int rc = http_req_sse_event(r, msg);
    if (final) {
      r->sse_end = 1;
      http_req_resume(r);
    }
    return rc;
  }
  if (final) {
    const char *sid = NULL;
    if (r->new_session && json_is_object(msg) &&
        json_object_get(msg, "result")) {
      /* initialize succeeded: the session becomes addressable. */
      http_session_insert(r->new_session);
      sid = sb_mcp_session_id(r->new_session->mcp);
      r->new_session = NULL;
    }
    unsigned status = status_for(r, msg);
    json_t *e = json_object_get(msg, "error");
    if (*scope && json_integer_value(json_object_get(e, "code")) ==
                      SB_RPC_FORBIDDEN) {
      status = MHD_HTTP_FORBIDDEN;
      r->refused_scope = scope;
      r->refused_why = json_string_value(json_object_get(e, "message"));
    }
    int rc = respond_msg(r, status, msg, sid);
    r->refused_scope = r->refused_why = NULL;
    return rc;
  }
  /* A message before the final one: switch to SSE if the client can take
   * it; otherwise progress and log messages are dropped. */
  if (!r->accept_sse) return 0;
  int rc = http_req_start_sse(r, MHD_HTTP_OK);
  if (rc != 0) return rc;
  return http_req_sse_event(r, msg);
}

static int req_out_write(sb_mcp_out *out, json_t *msg, int final) {
  return req_write(out->data, msg, final, out->refused_scope);
}

/* A session POST's output: its connection, or the session once orphaned. */
static int stream_write(sb_mcp_out *out, json_t *msg, int final) {
  http_stream *st = out->data;
  if (st->req) return req_write(st->req, msg, final, out->refused_scope);
  return http_stream_orphan_write(st, msg, final);
}

/* ---- request pool ----------------------------------------------------- */

static http_req *req_new(sb_http_server *s, struct MHD_Connection *c) {
  http_req *r = sb_list_entry(sb_list_first(&s->free_reqs), http_req, all_link);
  sb_buf body = SB_BUF_INIT, sse = SB_BUF_INIT;
  if (r) {
    sb_list_unlink(&s->free_reqs, &r->all_link);
    s->free_count--;
    body = r->body;
    sse = r->sse;
    sb_buf_reset(&body);
    sb_buf_reset(&sse);
  } else if (!(r = sb_malloc(sizeof *r))) {
    return NULL;
  }
  memset(r, 0, sizeof *r);
  r->body = body;
  r->sse = sse;
  r->srv = s;
  r->conn = c;
  r->out.write = req_out_write;
  r->out.data = r;
  sb_list_push_front(&s->reqs, &r->all_link);
  return r;
}

static void req_free_closed(uv_handle_t *h) {
  http_req *r = h->data;
  sb_buf_free(&r->body);
  sb_buf_free(&r->sse);
  sb_free(r);
}

static void req_release(http_req *r) {
  sb_http_server *s = r->srv;
  sb_list_unlink(&s->reqs, &r->all_link);
  json_decref(r->msg);
  json_decref(r->early_error);
  json_decref(r->trimmed);
  r->msg = r->early_error = r->trimmed = NULL;
  sb_principal_unref(r->principal);
  r->principal = NULL;
  r->out.principal = NULL;
  sb_free(r->url);
  r->url = NULL;
  http_watch_forget(r);
  if (r->watch_inited) {
    /* The handle must be closed before its memory goes. */
    uv_close((uv_handle_t *)&r->watch, req_free_closed);
    return;
  }
  if (s->free_count < POOL_MAX && !s->stopping && r->body.cap <= POOL_BUF_MAX &&
      r->sse.cap <= POOL_BUF_MAX) {
    sb_list_push_front(&s->free_reqs, &r->all_link);
    s->free_count++;
    return;
  }
  sb_buf_free(&r->body);
  sb_buf_free(&r->sse);
  sb_free(r);
}

/* ---- request handling ------------------------------------------------- */

static void set_early(http_req *r, unsigned status, int code, json_t *id,
                      const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set_early(http_req *r, unsigned status, int code, json_t *id,
                      const char *fmt, ...) {
  if (r->early_error) return;
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  /* The text may quote what the client sent (its URL): jansson takes
   * only UTF-8, and an error that fails to be built would let the request
   * through as if nothing were wrong. */
  sb_utf8_scrub(text);
  r->early_error = sb_rpc_error_new(id, code, text, NULL);
  r->early_status = status;
  sb_buf_free(&r->body); /* whatever arrives from now on is discarded */
}

/* RFC 9112 6.1, 6.3: a body whose length cannot be known for sure is
 * refused at once, and the connection closed after the answer (behind a
 * proxy, a disagreement on framing is request smuggling). Returns 1 when
 * r must be answered now. */
static int framing_refused(http_req *r) {
  http_framing f = http_conn_framing(r->conn);
  if (f == HTTP_FRAMING_OK) return 0;
  r->close_after = 1;
  unsigned status = f == HTTP_FRAMING_UNKNOWN_CODING ? MHD_HTTP_NOT_IMPLEMENTED
                                                     : MHD_HTTP_BAD_REQUEST;
  set_early(r, status, SB_RPC_INVALID_REQUEST, NULL, "%s",
            f == HTTP_FRAMING_BOTH
                ? "Content-Length and Transfer-Encoding together: send one "
                  "(RFC 9112 6.1)"
            : f == HTTP_FRAMING_BAD_LENGTH
                ? "Content-Length: not one non-negative integer"
            : f == HTTP_FRAMING_NOT_CHUNKED
                ? "Transfer-Encoding: chunked must be the only, final "
                  "coding (RFC 9112 6.1)"
                : "Transfer-Encoding: only chunked is implemented");
  return 1;
}

/* A path an MCP client would use (its endpoint, an agent's or a virtual
 * server's): a miss there is answered in JSON-RPC's shape. */
static int mcp_shaped(const char *url) {
  return strcmp(url, MCP_PATH) == 0 || strncmp(url, MCP_PATH "/", 5) == 0 ||
         strncmp(url, "/agents/", 8) == 0 || strncmp(url, "/servers/", 9) == 0;
}

/* First call: headers are in. Decide what can be decided already. */
static int req_begin(http_req *r, const char *url, const char *method,
                     const char *version) {
  const sb_http_server_options *cfg = &r->srv->cfg;
  const char *origin = header(r, "Origin");
  /* Under /v1/ every answer has the REST shape, a route or not. */
  r->rest_url = !mcp_shaped(url) && (http_route_match(r->srv, url) ||
                                     strncmp(url, "/v1/", 4) == 0);
  if (framing_refused(r)) {
    r->method = method;
    http_conn_headers_in(http_conn_of(r->conn), 0);
    return 1;
  }
  r->method = method;
  if (http_conn_take_bad_url(http_conn_of(r->conn))) {
    /* Before the token check: the audit of a refusal quotes the URL. */
    set_early(r, MHD_HTTP_BAD_REQUEST, SB_RPC_INVALID_REQUEST, NULL,
              "the URL's path or a query parameter holds a NUL, a control "
              "character or bytes that are not UTF-8 (as sent or "
              "%%XX-decoded): paths, ids and query values are UTF-8 text");
    http_conn_headers_in(http_conn_of(r->conn), 0);
    return 0;
  }
  const char *twice = http_conn_repeated_header(r->conn);
  if (twice) {
    /* Before the token check: which of two tokens would it check? */
    set_early(r, MHD_HTTP_BAD_REQUEST, SB_RPC_INVALID_REQUEST, NULL,
              "%s: sent more than once; send it once (RFC 9110 5.3)", twice);
    http_conn_headers_in(http_conn_of(r->conn), 0);
    return 0;
  }
  const char *arg_twice = http_conn_repeated_arg(r->conn);
  if (arg_twice) {
    set_early(r, MHD_HTTP_BAD_REQUEST, SB_RPC_INVALID_REQUEST, NULL,
              "query parameter \"%.100s\": given more than once; give it "
              "once (a list is written a,b)",
              arg_twice);
    http_conn_headers_in(http_conn_of(r->conn), 0);
    return 0;
  }
  if (version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0 &&
      !header(r, "Host")) {
    /* RFC 9112 3.2: a server MUST answer such a request 400. */
    set_early(r, MHD_HTTP_BAD_REQUEST, SB_RPC_INVALID_REQUEST, NULL, "%s",
              "Host: required in an HTTP/1.1 request (RFC 9112 3.2)");
    http_conn_headers_in(http_conn_of(r->conn), 0);
    return 0;
  }
  /* The protected-resource metadata is for anyone: it is how a client
   * without a token learns where to get one. */
  if (cfg->resource_metadata && strcmp(method, "GET") == 0 &&
      strncmp(url, WELL_KNOWN_PRM, sizeof WELL_KNOWN_PRM - 1) == 0 &&
      (url[sizeof WELL_KNOWN_PRM - 1] == '\0' ||
       url[sizeof WELL_KNOWN_PRM - 1] == '/')) {
    r->metadata = 1;
    http_conn_headers_in(http_conn_of(r->conn), 0);
    return 0;
  }
  if (strcmp(url, MCP_PATH) == 0) r->mcp = r->srv->mcp;
  else if (r->srv->mount) r->mcp = r->srv->mount(r->srv->mount_ud, url);
  if (!r->mcp) r->route = http_route_match(r->srv, url);
  if (r->route && !(r->url = sb_strdup(url))) r->route = 0;
  /* The tenant comes from the caller's credentials, never from a body. A
   * route open to anyone (health probes) has none. */
  int open = http_route_is_open(r->srv, r->route);
  r->auth_why = NULL;
  r->auth_not_bearer = 0;
  if (open) {
    r->out.tenant = NULL;
  } else if (cfg->authenticate && header(r, MHD_HTTP_HEADER_AUTHORIZATION) &&
             !http_bearer_token(r)) {
    /* Credentials in another shape (no scheme, Basic, Token...): refused
     * whatever the server's setup, rather than ignored. Where no token is
     * required, ignoring them served the caller (an API key sent as
     * "Authorization: sb_...") as the default tenant without a word. */
    r->principal = NULL;
    r->out.tenant = NULL;
    r->auth_not_bearer = 1;
  } else if (cfg->authenticate) {
    r->principal =
        cfg->authenticate(cfg->auth_ud, http_bearer_token(r), &r->auth_why);
    r->out.tenant = r->principal ? r->principal->tenant : NULL;
    r->out.principal = r->principal;
  } else {
    r->out.tenant = "default";
  }
  int origin_ok = origin && http_origin_allowed(cfg, origin);
  if (r->srv->draining) {
    /* Shutting down (sb_http_server_drain): what is under way finishes;
     * nothing new starts, and the connection ends with this answer. */
    r->close_after = 1;
    set_early(r, MHD_HTTP_SERVICE_UNAVAILABLE, SB_RPC_SERVER_BUSY, NULL,
              "the server is shutting down: send the request again (to "
              "another instance, or once this one is back)");
  } else if (origin && !origin_ok) {
    set_early(r, MHD_HTTP_FORBIDDEN, SB_RPC_INVALID_REQUEST, NULL,
              "Origin '%.200s' is not allowed", origin);
    http_audit_refusal(r, url, SB_HTTP_AUTH_ORIGIN, MHD_HTTP_FORBIDDEN);
  } else if (origin && strcmp(method, "OPTIONS") == 0 &&
             header(r, "Access-Control-Request-Method")) {
    /* A browser asks before the request itself, without credentials. */
    r->cors_origin = origin;
    r->preflight = 1;
    http_conn_headers_in(http_conn_of(r->conn), 0);
    return 0;
  } else if (!r->out.tenant && !open) {
    http_audit_refusal(r, url,
                  http_bearer_token(r) ? SB_HTTP_AUTH_REFUSED : SB_HTTP_AUTH_MISSING,
                  MHD_HTTP_UNAUTHORIZED);
    /* Why the token was refused, when the check said (an API key that is
     * revoked or expired, a JWT's failed check), as the challenge does. */
    if (r->auth_why)
      set_early(r, MHD_HTTP_UNAUTHORIZED, SB_RPC_INVALID_REQUEST, NULL,
                "bearer token refused: %s", r->auth_why);
    else if (r->auth_not_bearer)
      /* RFC 6750 3.1: an unsupported scheme is "no credentials" to the
       * challenge (no error code in it); the body says which. */
      set_early(r, MHD_HTTP_UNAUTHORIZED, SB_RPC_INVALID_REQUEST, NULL,
                "the Authorization header is not \"Bearer <token>\": send "
                "Authorization: Bearer <token> of a configured tenant, or "
                "an API key");
    else
      set_early(r, MHD_HTTP_UNAUTHORIZED, SB_RPC_INVALID_REQUEST, NULL,
                "%s bearer token: send Authorization: Bearer <token> of a "
                "configured tenant, or an API key",
                http_bearer_token(r) ? "unknown" : "missing");
  } else if (r->route) {
    /* a REST route: any method, body read below */
  } else if (!r->mcp && mcp_shaped(url)) {
    set_early(r, MHD_HTTP_NOT_FOUND, SB_RPC_INVALID_REQUEST, NULL,
              "no MCP endpoint at %.200s (use " MCP_PATH
              ", /agents/{id}/mcp for a registered agent or "
              "/servers/{name}/mcp for a configured virtual server)",
              url);
  } else if (!r->mcp) {
    /* /v1/nope, /nope: answered in the REST API's shape. */
    r->rest_url = 1;
    set_early(r, MHD_HTTP_NOT_FOUND, SB_RPC_INVALID_REQUEST, NULL,
              "nothing at %.200s (the REST API is under /v1/: contexts, "
              "runs, events, agents; MCP is at " MCP_PATH
              ", /agents/{id}/mcp and /servers/{name}/mcp)",
              url);
  } else if (strcmp(method, "POST") && strcmp(method, "GET") &&
             strcmp(method, "DELETE")) {
    set_early(r, MHD_HTTP_METHOD_NOT_ALLOWED, SB_RPC_INVALID_REQUEST, NULL,
              "method %.32s is not allowed on %.200s", method, url);
  }
  const char *ct = header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!http_media_type_json(ct) && (strcmp(method, "POST") == 0 ||
                                    strcmp(method, "PATCH") == 0 ||
                                    strcmp(method, "PUT") == 0))
    set_early(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, SB_RPC_INVALID_REQUEST, NULL,
              "Content-Type: %.100s is not JSON: send application/json",
              ct);
  r->accept_sse = accept_allows_sse(header(r, "Accept")) ? 1 : 0;
  if (origin_ok) r->cors_origin = origin;
  /* Admitted: this connection's caller passed the Origin and token checks
   * (it leaves the share of strangers, see http_conn.c). */
  http_conn_headers_in(http_conn_of(r->conn),
                       !open && (!r->early_error ||
                                 (r->early_status != MHD_HTTP_UNAUTHORIZED &&
                                  r->early_status != MHD_HTTP_FORBIDDEN)));
  const char *cl = header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl && !r->early_error) {
    unsigned long long n = strtoull(cl, NULL, 10);
    if (n > cfg->max_message_bytes) {
      set_early(r, MHD_HTTP_CONTENT_TOO_LARGE, SB_RPC_INVALID_REQUEST, NULL,
                "message of %llu bytes exceeds the limit of %zu bytes "
                "(limits.max_message_bytes)",
                n, cfg->max_message_bytes);
      /* Drain modest excess so the client reads our answer; cut off a
       * body too big to be worth reading (MHD then closes). */
      if (n / 4 > cfg->max_message_bytes + (1u << 20)) return 1;
    }
  }
  return 0;
}

static void parse_body(http_req *r, const char *data, size_t len) {
  const sb_http_server_options *cfg = &r->srv->cfg;
  sb_rpc_limits lim = {cfg->max_message_bytes, cfg->max_json_depth};
  sb_error err = {0};
  int rc = sb_rpc_parse(data, len, &lim, &r->msg, &err);
  if (rc != 0) set_early(r, MHD_HTTP_BAD_REQUEST, rc, NULL, "%s", err.msg);
}

/* Take n more body bytes. Returns 1 when a body of unknown length
 * (chunked) has just passed the size limit: it must be answered now, not
 * read to its end first. */
static int req_body(http_req *r, const char *data, size_t n) {
  if (r->early_error || r->msg) return 0;
  size_t max = r->srv->cfg.max_message_bytes;
  if (r->body.len + n > max) {
    set_early(r, MHD_HTTP_CONTENT_TOO_LARGE, SB_RPC_INVALID_REQUEST, NULL,
              "message exceeds the limit of %zu bytes "
              "(limits.max_message_bytes)",
              max);
    return 1;
  }
  /* The common case: the whole body in one piece, parsed in place. */
  const char *cl = r->body.len || r->route
                       ? NULL
                       : header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl && strtoull(cl, NULL, 10) == n) {
    parse_body(r, data, n);
    return 0;
  }
  if (sb_buf_append(&r->body, data, n) != 0)
    set_early(r, MHD_HTTP_INTERNAL_SERVER_ERROR, SB_RPC_INTERNAL_ERROR, NULL,
              "out of memory reading the request body");
  return 0;
}

/* MCP-Protocol-Version on a legacy request: absent means 2025-03-26. */
static int legacy_version_ok(http_req *r, const char *pv) {
  if (!pv || sb_mcp_version_supported(pv)) return 1;
  json_t *data = json_object();
  json_object_set_new(data, "supported", sb_mcp_supported_versions_json());
  json_object_set_new(data, "requested", json_string(pv));
  respond_error(r, MHD_HTTP_BAD_REQUEST, msg_id(r->msg),
                SB_RPC_UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version (MCP-Protocol-Version header)",
                data);
  return 0;
}

static void dispatch(http_req *r, http_session *hs, sb_mcp_session *ms) {
  sb_http_server *s = r->srv;
  if (hs) {
    http_session_attach(hs, r);
    if (has_request(r->msg)) {
      /* The output may have to outlive this connection. */
      http_stream *st = sb_calloc(1, sizeof *st);
      if (!st) {
        respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, msg_id(r->msg),
                      SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
        return;
      }
      st->out.write = stream_write;
      st->out.data = st;
      st->out.tenant = r->out.tenant;
      st->out.principal = sb_principal_ref(r->principal);
      st->req = r;
      r->stream = st;
    }
  }
  r->state = REQ_WAITING;
  r->dispatched = 1;
  sb_mcp_server_dispatch(r->mcp, ms, r->stream ? &r->stream->out : &r->out,
                         r->msg);
  /* notifications/cancelled may have ended an orphaned call. */
  if (hs) http_session_sweep_orphans(hs);
  if (r->new_session && r->final_seen) {
    /* initialize was answered with an error: no session after all. */
    http_session_destroy(r->new_session);
    r->new_session = NULL;
  }
  if (r->state != REQ_WAITING) return;
  if (!has_request(r->msg)) {
    /* Notifications and responses are accepted with no body. */
    respond_static(r, MHD_HTTP_ACCEPTED, s->resp_accepted);
    return;
  }
  http_req_park(r);
}

/* The session with this id, if it belongs to the caller's tenant: another
 * tenant's session is as unknown as a session that never existed. */
static http_session *session_of_caller(http_req *r, const char *sid) {
  http_session *hs = http_session_find(r->srv, sid);
  if (hs && hs->tenant && strcmp(hs->tenant, r->out.tenant) != 0) return NULL;
  /* A session belongs to the endpoint that opened it. */
  if (hs && hs->server != r->mcp) return NULL;
  return hs;
}

/* An initialize past the session caps: 503 naming the limit. */
static int session_admitted(http_req *r) {
  const sb_http_server_options *cfg = &r->srv->cfg;
  http_session_admit a = http_session_may_open(r->srv, r->out.tenant);
  if (a == HTTP_SESSION_ADMITTED) return 1;
  char text[256];
  snprintf(
      text, sizeof text,
      "too many sessions: %s limit of %d (%s) is reached; end one with "
      "DELETE or let one expire, or use protocol version " SB_MCP_MODERN_VERSION
      " (stateless)",
      a == HTTP_SESSION_FULL ? "the server's" : "this tenant's",
      a == HTTP_SESSION_FULL ? cfg->max_sessions : cfg->max_sessions_per_tenant,
      a == HTTP_SESSION_FULL ? "sessions.max" : "sessions.max_per_tenant");
  SB_WARN(MOD, "initialize refused: %s", text);
  respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, msg_id(r->msg),
                SB_RPC_SERVER_BUSY, text, NULL);
  return 0;
}

/* 1 if msg is a batch holding an initialize request, which 2025-03-26
 * (the one revision with batches) forbids: it opens the session. */
static int batch_has_initialize(const json_t *msg) {
  size_t i;
  const json_t *m;
  json_array_foreach(msg, i, m) {
    const char *method = json_string_value(json_object_get(m, "method"));
    if (method && strcmp(method, "initialize") == 0) return 1;
  }
  return 0;
}

/* A message shaped as a notification (a method, no id) whose method is
 * no notification's (they are all notifications/...): a request sent
 * without its id. Nothing may answer a notification, so it was served as
 * one, that is not at all, and acknowledged 202: the client took a
 * tools/call (an initialize, which opened a session nobody could name)
 * for accepted. The transport cannot accept it: 400 naming the method. */
static int request_without_id(http_req *r, json_t *msg) {
  const char *method = json_string_value(json_object_get(msg, "method"));
  if (!method || json_object_get(msg, "id") ||
      strncmp(method, "notifications/", 14) == 0)
    return 0;
  char text[400];
  snprintf(text, sizeof text,
           "%.200s: a request needs an id (a string or an integer); sent "
           "without one it is a notification, which is never answered, and "
           "it was not served",
           method);
  respond_error(r, MHD_HTTP_BAD_REQUEST, NULL, SB_RPC_INVALID_REQUEST, text,
                json_pack("{ss}", "method", method));
  return 1;
}

static const char *request_header(void *data, const char *name) {
  return http_req_header(data, name);
}

static void do_post(http_req *r) {
  sb_http_server *s = r->srv;
  json_t *msg = r->msg;
  const char *sid = header(r, "Mcp-Session-Id");
  const char *pv = header(r, "MCP-Protocol-Version");
  const char *ver = NULL;
  if (json_is_object(msg) && request_without_id(r, msg)) return;
  sb_mcp_era era =
      json_is_object(msg) ? sb_mcp_message_era(msg, &ver) : SB_MCP_ERA_NONE;

  if (era == SB_MCP_ERA_MODERN) {
    /* Stateless: Mcp-Session-Id is ignored, the headers must mirror the
     * body. */
    r->modern = 1;
    sb_error err = {0};
    if (sb_mcp_check_http_headers(msg, pv, header(r, "Mcp-Method"),
                                  header(r, "Mcp-Name"), &err) != 0) {
      respond_error(r, MHD_HTTP_BAD_REQUEST, msg_id(msg),
                    SB_RPC_HEADER_MISMATCH, err.msg, NULL);
      return;
    }
    r->out.header = request_header; /* Mcp-Param-*, checked by tool */
    dispatch(r, NULL, NULL);
    return;
  }
  if (sid) {
    http_session *hs = session_of_caller(r, sid);
    if (!hs) {
      respond_error(r, MHD_HTTP_NOT_FOUND, msg_id(msg), SESSION_NOT_FOUND,
                    "Session not found (expired or deleted): send initialize "
                    "again without Mcp-Session-Id",
                    NULL);
      return;
    }
    if (!legacy_version_ok(r, pv)) return;
    dispatch(r, hs, hs->mcp);
    return;
  }
  if (era == SB_MCP_ERA_LEGACY) { /* initialize: a new session */
    if (!legacy_version_ok(r, pv)) return;
    if (!session_admitted(r)) return;
    http_session *hs = http_session_new(s, r->mcp, r->out.tenant);
    if (!hs) {
      respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, msg_id(msg),
                    SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
      return;
    }
    r->new_session = hs;
    dispatch(r, NULL, hs->mcp);
    return;
  }
  /* No era of its own and no session: malformed messages (and requests
   * that claim a modern version in the header only) get the mcp module's
   * own error; a well-formed legacy message needs its session. */
  sb_rpc_msg cm;
  int malformed = json_is_object(msg) ? sb_rpc_classify(msg, &cm, NULL) != 0
                                      : json_array_size(msg) == 0;
  if (malformed || (pv && sb_mcp_version_is_modern(pv))) {
    r->modern = pv && sb_mcp_version_is_modern(pv);
    dispatch(r, NULL, NULL);
    return;
  }
  if (batch_has_initialize(msg)) {
    respond_error(r, MHD_HTTP_BAD_REQUEST, NULL, SB_RPC_INVALID_REQUEST,
                  "initialize must not be part of a JSON-RPC batch: send it "
                  "alone, then the batch with the Mcp-Session-Id it gives",
                  NULL);
    return;
  }
  /* Session-less, it can only be a 2026-07-28 request, and one without
   * _meta's protocolVersion is malformed: -32602 with 400, as
   * basic/index.mdx requires; the message names the legacy way too. */
  respond_error(r, MHD_HTTP_BAD_REQUEST, msg_id(msg), SB_RPC_INVALID_PARAMS,
                "Mcp-Session-Id header is required: send initialize first "
                "(or use protocol version " SB_MCP_MODERN_VERSION
                " with _meta)",
                json_pack("{ss}", "metaField", SB_MCP_META_PROTOCOL_VERSION));
}

static void do_get(http_req *r) {
  sb_http_server *s = r->srv;
  const char *sid = header(r, "Mcp-Session-Id");
  if (!sid) {
    /* 2026-07-28 has no GET stream; legacy clients always name their
     * session. */
    r->state = REQ_RESPONDED;
    http_req_queue(r, MHD_HTTP_METHOD_NOT_ALLOWED, s->resp_no_get);
    return;
  }
  http_session *hs = session_of_caller(r, sid);
  if (!hs) {
    respond_error(r, MHD_HTTP_NOT_FOUND, NULL, SESSION_NOT_FOUND,
                  "Session not found (expired or deleted)", NULL);
    return;
  }
  if (!legacy_version_ok(r, header(r, "MCP-Protocol-Version"))) return;
  json_t *error = NULL;
  r->is_get = 1;
  unsigned status =
      http_session_open_get(hs, r, header(r, "Last-Event-ID"), &error);
  if (status != MHD_HTTP_OK) {
    r->is_get = 0;
    if (error) {
      respond_msg(r, status, error, NULL);
      json_decref(error);
    } else {
      respond_static(r, MHD_HTTP_INTERNAL_SERVER_ERROR, s->resp_gone);
    }
  }
}

static void do_delete(http_req *r) {
  sb_http_server *s = r->srv;
  const char *sid = header(r, "Mcp-Session-Id");
  if (!sid) {
    respond_error(r, MHD_HTTP_BAD_REQUEST, NULL, SB_RPC_INVALID_REQUEST,
                  "Mcp-Session-Id header is required to end a session", NULL);
    return;
  }
  http_session *hs = session_of_caller(r, sid);
  if (!hs) {
    respond_error(r, MHD_HTTP_NOT_FOUND, NULL, SESSION_NOT_FOUND,
                  "Session not found (expired or deleted)", NULL);
    return;
  }
  http_session_destroy(hs);
  respond_static(r, MHD_HTTP_NO_CONTENT, s->resp_accepted);
}

/* An error decided before dispatch: JSON-RPC shaped on /mcp, the REST
 * shape {"error":{"code","message"}} on REST routes. */
static json_t *early_body(http_req *r) {
  if (!r->route && !r->rest_url) return json_incref(r->early_error);
  const char *msg = json_string_value(
      json_object_get(json_object_get(r->early_error, "error"), "message"));
  const char *code =
      r->early_status == MHD_HTTP_UNAUTHORIZED        ? "unauthorized"
      : r->early_status == MHD_HTTP_FORBIDDEN         ? "forbidden"
      : r->early_status == MHD_HTTP_SERVICE_UNAVAILABLE ? "shutting_down"
      : r->early_status == MHD_HTTP_CONTENT_TOO_LARGE ? "too_large"
      : r->early_status == MHD_HTTP_NOT_IMPLEMENTED   ? "not_implemented"
      : r->early_status == MHD_HTTP_UNSUPPORTED_MEDIA_TYPE ? "unsupported_media_type"
      : r->early_status == MHD_HTTP_NOT_FOUND         ? "not_found"
                                                      : "bad_request";
  return json_pack("{s{ssss}}", "error", "code", code, "message",
                   msg ? msg : code);
}

static void respond_early(http_req *r) {
  http_conn_request_read(http_conn_of(r->conn));
  json_t *body = early_body(r);
  respond_msg(r, r->early_status, body, NULL);
  json_decref(body);
}

/* The same, while the body is still arriving: MHD queues no response
 * then, so the answer goes out on the socket and the connection ends
 * (the caller returns MHD_NO). */
static void respond_early_now(http_req *r) {
  json_t *body = early_body(r);
  size_t len = 0;
  char *text = body ? sb_rpc_dump(body, &len) : NULL;
  json_decref(body);
  r->state = REQ_RESPONDED;
  SB_DEBUG(MOD, "answering %u before the body's end, closing", r->early_status);
  http_conn_answer_now(r, r->early_status, text ? text : "", len);
  sb_free(text);
}

static void req_finish(http_req *r, const char *method) {
  http_conn_request_read(http_conn_of(r->conn));
  if (r->preflight) {
    respond_preflight(r);
    return;
  }
  if (r->metadata) {
    const char *doc = r->srv->cfg.resource_metadata;
    char *body = sb_strdup(doc);
    if (body) respond_body(r, MHD_HTTP_OK, body, strlen(doc), NULL);
    else respond_static(r, MHD_HTTP_INTERNAL_SERVER_ERROR, r->srv->resp_gone);
    return;
  }
  if (r->route && !r->early_error) {
    http_route_run(r, method);
    return;
  }
  if (!r->early_error && !r->msg && strcmp(method, "POST") == 0)
    parse_body(r, r->body.data ? r->body.data : "", r->body.len);
  if (r->body.cap > POOL_BUF_MAX)
    sb_buf_free(&r->body);
  else
    sb_buf_reset(&r->body);
  if (r->early_error) {
    respond_early(r);
    return;
  }
  if (!r->mcp) { /* refused early, but the refusal could not be built */
    respond_static(r, MHD_HTTP_INTERNAL_SERVER_ERROR, r->srv->resp_gone);
    return;
  }
  if (strcmp(method, "POST") == 0)
    do_post(r);
  else if (strcmp(method, "GET") == 0)
    do_get(r);
  else
    do_delete(r);
}

enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload_data,
                                size_t *upload_data_size, void **req_cls) {
  sb_http_server *s = cls;
  http_req *r = *req_cls;
  if (!r) {
    /* A cut connection's request is not run: a query answered 431 by
     * http_conn_on_uri may still fit MHD's pool and come here whole, and
     * the client, told it was refused, would retry what was done. */
    if (s->stopping || http_conn_is_cut(http_conn_of(conn)) ||
        !(r = req_new(s, conn)))
      return MHD_NO;
    *req_cls = r;
    if (req_begin(r, url, method, version)) {
      r->in_handler = 1;
      respond_early(r);
      r->in_handler = 0;
    }
    return MHD_YES;
  }
  if (*upload_data_size) {
    int now = req_body(r, upload_data, *upload_data_size);
    *upload_data_size = 0;
    if (!now) return MHD_YES;
    respond_early_now(r);
    return MHD_NO;
  }
  if (r->state != REQ_READING) return MHD_YES;
  r->in_handler = 1;
  req_finish(r, method);
  r->in_handler = 0;
  return MHD_YES;
}

void http_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                       enum MHD_RequestTerminationCode toe) {
  http_req *r = *req_cls;
  (void)cls;
  if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
    http_conn_request_done(http_conn_of(conn));
  if (!r) return;
  *req_cls = NULL;
  http_route_release(r);
  http_watch_forget(r);
  if (r->watching) {
    uv_poll_stop(&r->watch);
    r->watching = 0;
  }
  if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
    r->gone = 1;
    req_lose_out(r);
  }
  req_detach_out(r);
  if (r->new_session) {
    http_session_destroy(r->new_session);
    r->new_session = NULL;
  }
  http_session_detach_req(r);
  req_release(r);
}

void http_req_shutdown(http_req *r) {
  req_detach_out(r);
  if (r->state == REQ_WAITING) {
    r->state = REQ_RESPONDED;
    http_req_queue(r, MHD_HTTP_SERVICE_UNAVAILABLE, r->srv->resp_gone);
  }
  r->gone = 1;
  http_req_resume(r);
}

void http_req_pool_free(sb_http_server *s) {
  sb_list_link *n;
  while ((n = sb_list_first(&s->free_reqs))) {
    http_req *r = sb_list_entry(n, http_req, all_link);
    sb_list_unlink(&s->free_reqs, n);
    sb_buf_free(&r->body);
    sb_buf_free(&r->sse);
    sb_free(r);
  }
}
