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

#include "config/config.h"
#include "core/core.h"
#include "mcp/mcp.h"

typedef struct sb_stdio_server sb_stdio_server;

/* Serve MCP on this process's stdin/stdout. When stdin reaches EOF the
 * transport stops reading, cancels in-flight calls and calls on_eof (may be
 * NULL) so the caller can stop the loop. */
sb_stdio_server *sb_stdio_server_start(uv_loop_t *loop, sb_mcp_server *srv,
                                       void (*on_eof)(void *ud), void *ud,
                                       sb_error *err);
void sb_stdio_server_stop(sb_stdio_server *s);

typedef struct sb_http_server sb_http_server;

/* Listen on cfg->listen_host:cfg->listen_port (port 0 picks a free one). */
sb_http_server *sb_http_server_start(uv_loop_t *loop, sb_mcp_server *srv,
                                     const sb_config *cfg, sb_error *err);
/* The port actually bound. */
int sb_http_server_port(const sb_http_server *s);
/* Close every connection and the listening socket. */
void sb_http_server_stop(sb_http_server *s);

/* ---- REST routes beside /mcp -------------------------------------------
 * A handler gets the whole request (headers, body up to the message limit,
 * the authenticated tenant) and answers it before returning. Origin and
 * bearer-token checks have already passed. */
typedef struct http_req sb_http_request;
typedef void (*sb_http_handler)(void *ud, sb_http_request *req);

/* Serve every path starting with `prefix` (e.g. "/v1/contexts"). */
int sb_http_server_route(sb_http_server *s, const char *prefix,
                         sb_http_handler fn, void *ud);

const char *sb_http_request_method(const sb_http_request *req);
const char *sb_http_request_path(const sb_http_request *req);
/* A query-string argument, or NULL. */
const char *sb_http_request_query(sb_http_request *req, const char *key);
const char *sb_http_request_header(sb_http_request *req, const char *name);
const char *sb_http_request_body(const sb_http_request *req, size_t *len);
/* The caller's tenant, from its bearer token (config auth.tenants). */
const char *sb_http_request_tenant(const sb_http_request *req);

/* Answer: status, content type (NULL = application/json), body (copied),
 * extra headers as a NULL-terminated name, value, name, value... list. */
int sb_http_respond(sb_http_request *req, int status, const char *content_type,
                    const char *body, size_t len, const char *const *headers);

#endif
