/* http_route.c: plain HTTP routes served beside /mcp (the REST API).
 *
 * A route owns every path under its prefix. By the time its handler runs,
 * http.c has checked the Origin and the bearer token, resolved the tenant,
 * and read the body under the same size limit as MCP messages; the handler
 * parses it with sb_http_request_json, the parser (and the depth limit)
 * of /mcp, and answers with sb_http_respond before returning.
 */
#include <stdio.h>
#include <string.h>

#include "net/http_internal.h"

static int add_route(sb_http_server *s, const char *prefix,
                     sb_http_handler fn, void *ud, int open) {
  http_route *routes =
      sb_realloc(s->routes, (s->routes_len + 1) * sizeof *routes);
  if (!routes) return SB_ENOMEM;
  s->routes = routes;
  char *copy = sb_strdup(prefix);
  if (!copy) return SB_ENOMEM;
  routes[s->routes_len++] = (http_route){copy, fn, ud, open};
  return 0;
}

int sb_http_server_route(sb_http_server *s, const char *prefix,
                         sb_http_handler fn, void *ud) {
  return add_route(s, prefix, fn, ud, 0);
}

int sb_http_server_route_open(sb_http_server *s, const char *prefix,
                              sb_http_handler fn, void *ud) {
  return add_route(s, prefix, fn, ud, 1);
}

int http_route_is_open(sb_http_server *s, int route) {
  return route > 0 && s->routes[route - 1].open;
}

void http_routes_free(sb_http_server *s) {
  for (size_t i = 0; i < s->routes_len; i++) sb_free(s->routes[i].prefix);
  sb_free(s->routes);
  s->routes = NULL;
  s->routes_len = 0;
}

int http_route_match(sb_http_server *s, const char *url) {
  for (size_t i = 0; i < s->routes_len; i++) {
    size_t n = strlen(s->routes[i].prefix);
    /* "/v1/contexts" serves itself and "/v1/contexts/...", not
     * "/v1/contextsX". */
    if (strncmp(url, s->routes[i].prefix, n) == 0 &&
        (url[n] == '\0' || url[n] == '/'))
      return (int)i + 1;
  }
  return 0;
}

void http_route_release(http_req *r) {
  if (!r->quota_held) return;
  r->quota_held = 0;
  r->srv->cfg.release(r->srv->cfg.admit_ud, r->out.tenant);
}

/* Quotas: a refused request gets 429 naming the limit. Returns 1 when
 * it was refused (and answered). */
static int refused(http_req *r) {
  const sb_http_server_options *cfg = &r->srv->cfg;
  if (!cfg->admit) return 0;
  sb_http_refusal ref = {0};
  if (cfg->admit(cfg->admit_ud, r->out.tenant, &ref) == 0) {
    r->quota_held = cfg->release != NULL;
    return 0;
  }
  json_t *body = json_pack("{s{sssssssi}}", "error", "code", "quota_exceeded",
                           "message", ref.message, "limit",
                           ref.limit ? ref.limit : "quotas",
                           "retryAfterSeconds", ref.retry_after_s);
  char *text = body ? sb_json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  char secs[24];
  snprintf(secs, sizeof secs, "%d", ref.retry_after_s);
  const char *headers[] = {"Retry-After", secs, NULL};
  sb_http_respond(r, 429, NULL, text ? text : "{}", text ? strlen(text) : 2,
                  ref.retry_after_s > 0 ? headers : NULL);
  sb_free(text);
  return 1;
}

void http_route_run(http_req *r, const char *method) {
  http_route *route = &r->srv->routes[r->route - 1];
  r->method = method;
  if (!route->open && refused(r)) return;
  route->fn(route->ud, r);
  if (r->state != REQ_READING) return;
  if (r->deferred) {
    r->state = REQ_WAITING;
    http_req_park(r);
    return;
  }
  /* the handler forgot to answer */
  sb_http_respond(r, 500, NULL, "{\"error\":\"internal error: no response\"}",
                  38, NULL);
}

void sb_http_request_defer(sb_http_request *r, sb_http_gone_cb on_gone,
                           void *ud) {
  r->deferred = 1;
  r->route_gone = on_gone;
  r->route_gone_ud = ud;
}

void http_route_gone(http_req *r) {
  sb_http_gone_cb cb = r->route_gone;
  if (!cb) return;
  r->route_gone = NULL;
  cb(r->route_gone_ud);
}

const char *sb_http_request_method(const sb_http_request *r) {
  return r->method;
}
const char *sb_http_request_path(const sb_http_request *r) { return r->url; }
const char *sb_http_request_tenant(const sb_http_request *r) {
  return r->out.tenant;
}

const sb_principal *sb_http_request_principal(const sb_http_request *r) {
  return r->principal;
}

const char *sb_http_request_query(sb_http_request *r, const char *key) {
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct query_scan {
  const char *const *known;
  const char *unknown;
} query_scan;

static enum MHD_Result scan_query(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value) {
  (void)kind;
  (void)value;
  query_scan *q = cls;
  for (const char *const *k = q->known; k && *k; k++)
    if (strcmp(*k, key) == 0) return MHD_YES;
  q->unknown = key;
  return MHD_NO;
}

const char *sb_http_request_unknown_query(sb_http_request *r,
                                          const char *const *known) {
  query_scan q = {known, NULL};
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, scan_query, &q);
  return q.unknown;
}

const char *sb_http_request_header(sb_http_request *r, const char *name) {
  return http_req_header(r, name);
}

const char *sb_http_request_body(const sb_http_request *r, size_t *len) {
  if (len) *len = r->body.len;
  return r->body.data ? r->body.data : "";
}

int sb_http_request_json(const sb_http_request *r, json_t **out,
                         sb_error *err) {
  const sb_http_server_options *cfg = &r->srv->cfg;
  sb_rpc_limits lim = {cfg->max_message_bytes, cfg->max_json_depth};
  size_t len = 0;
  const char *body = sb_http_request_body(r, &len);
  sb_error perr = {0};
  if (sb_rpc_parse_document(body, len, &lim, out, &perr) == 0) return 0;
  return sb_error_set(err, SB_EINVAL, "%s%s", perr.msg,
                      perr.code == SB_RPC_INVALID_REQUEST
                          ? " (limits.max_json_depth, "
                            "limits.max_message_bytes)"
                          : "");
}

int sb_http_respond(sb_http_request *r, int status, const char *content_type,
                    const char *body, size_t len, const char *const *headers) {
  r->route_gone = NULL; /* answering: the handler waits no more */
  http_route_release(r);
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!resp) return SB_ENOMEM;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          content_type ? content_type : "application/json");
  for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
    MHD_add_response_header(resp, headers[i], headers[i + 1]);
  r->state = REQ_RESPONDED;
  http_req_queue(r, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return 0;
}

int sb_http_stream_start(sb_http_request *r) {
  if (!r->deferred || r->gone || r->state == REQ_RESPONDED ||
      r->state == REQ_SSE)
    return SB_ESTATE;
  http_route_release(r); /* a stream is not a call in flight */
  return http_req_start_sse(r, 200);
}

int sb_http_stream_send(sb_http_request *r, const char *text, size_t len) {
  return http_req_sse_append(r, text, len);
}

size_t sb_http_stream_unsent(const sb_http_request *r) {
  if (r->gone || r->state != REQ_SSE) return 0;
  return r->sse.len - r->sse_off;
}

void sb_http_stream_end(sb_http_request *r) {
  r->route_gone = NULL; /* the handler lets go */
  if (r->gone || r->state != REQ_SSE) return;
  r->sse_end = 1;
  http_req_resume(r);
}
