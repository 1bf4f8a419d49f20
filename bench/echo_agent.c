/* echo_agent: the smallest MCP agent switchboard can front, for the gateway
 * benchmark (bench/gateway.sh).
 *
 * It serves one tool, `echo`, over stdio (newline-delimited JSON) and
 * answers with its `text` argument as one text content block. Everything
 * else is the project's own code: an sb_mcp_server without built-ins plus
 * one provider, on the net/ stdio transport, so it speaks both eras
 * (initialize-based sessions and modern per-request _meta) exactly as
 * switchboard does. Being C and tiny, it keeps the agent's own cost out of
 * what the benchmark compares: the relays in front of it.
 *
 *   echo_agent            serve on stdin/stdout until EOF or SIGTERM
 *
 * Logs (warnings only) go to stderr.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "mcp/mcp.h"
#include "net/net.h"

typedef struct echo_agent {
  uv_loop_t loop;
  uv_signal_t sigterm, sigint;
  json_t *tools; /* the one tool's definition, in an array */
} echo_agent;

static void list_tools(void *ud, sb_mcp_call *call, json_t *tools) {
  echo_agent *a = ud;
  json_array_extend(tools, a->tools);
}

static int call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *arguments) {
  if (strcmp(name, "echo") != 0) return 0;
  const char *text = json_string_value(json_object_get(arguments, "text"));
  if (!text) {
    sb_mcp_call_fail_invalid_args(call, "echo",
                                  "property 'text' must be a string");
    return 1;
  }
  sb_mcp_call_reply_text(call, text, 0);
  return 1;
}

/* Announce tools only (the default would be switchboard's built-in set). */
static json_t *capabilities(void *ud) { return json_pack("{s{}}", "tools"); }

static void on_eof(void *ud) {
  echo_agent *a = ud;
  uv_stop(&a->loop);
}

static void on_signal(uv_signal_t *h, int signum) {
  echo_agent *a = h->data;
  uv_stop(&a->loop);
}

static void close_handle(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

int main(void) {
  echo_agent a;
  sb_error err = {0};
  int exit_code = 1;
  sb_mcp_server *srv = NULL;
  sb_stdio_server *stdio = NULL;

  memset(&a, 0, sizeof a);
  sb_core_init();
  sb_log_set_level(SB_LOG_WARNING);
  signal(SIGPIPE, SIG_IGN);
  if (uv_loop_init(&a.loop) != 0) {
    fprintf(stderr, "echo_agent: cannot create the event loop\n");
    return 1;
  }
  a.tools = json_pack(
      "[{sssss{sss{s{ss}}s[s]}}]", "name", "echo", "description",
      "Returns its text argument.", "inputSchema", "type", "object",
      "properties", "text", "type", "string", "required", "text");
  if (!a.tools) goto done;

  sb_mcp_server_options so = {.loop = &a.loop, /* default limits */
                              .name = "echo-agent",
                              .instructions = "One tool: echo.",
                              .no_builtins = 1,
                              .capabilities = capabilities};
  srv = sb_mcp_server_new(&so);
  if (!srv) goto done;
  sb_mcp_provider p = {.name = "echo",
                       .ud = &a,
                       .list_tools = list_tools,
                       .call_tool = call_tool};
  if (sb_mcp_server_add_provider(srv, &p) != 0) goto done;
  stdio = sb_stdio_server_start(&a.loop, srv, on_eof, &a, &err);
  if (!stdio) {
    fprintf(stderr, "echo_agent: %s\n", err.msg);
    goto done;
  }
  uv_signal_init(&a.loop, &a.sigterm);
  uv_signal_init(&a.loop, &a.sigint);
  a.sigterm.data = a.sigint.data = &a;
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_run(&a.loop, UV_RUN_DEFAULT);
  exit_code = 0;

done:
  if (stdio) sb_stdio_server_stop(stdio);
  if (srv) sb_mcp_server_free(srv);
  if (uv_is_active((uv_handle_t *)&a.sigterm)) {
    uv_close((uv_handle_t *)&a.sigterm, NULL);
    uv_close((uv_handle_t *)&a.sigint, NULL);
  }
  /* Let the stdio server close its own handles (stdout drains its answers
   * first, then closes itself: closing it from here too would close it
   * twice, an abort in libuv), then close whatever is left. */
  uv_run(&a.loop, UV_RUN_DEFAULT);
  uv_walk(&a.loop, close_handle, NULL);
  uv_run(&a.loop, UV_RUN_DEFAULT);
  uv_loop_close(&a.loop);
  json_decref(a.tools);
  return exit_code;
}
