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

#endif
