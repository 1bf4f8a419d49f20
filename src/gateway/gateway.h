/* gateway: switchboard's agents, and every call made to them.
 *
 * The gateway owns the agent pool (one channel and one MCP client per
 * AgentDefinition, reconnected with backoff, health-checked, their tool,
 * resource and prompt lists cached), the calls made to agents (routing by
 * the registry with the context, the projection each agent receives,
 * deadlines, the breaker, retries, fallback along the same ranking, and
 * input an agent asks for), the per-agent MCP endpoints and virtual
 * servers, and the admin operations (register, remove, list, explain).
 *
 * Every call goes through one API, sb_gateway_call_start: the MCP paths
 * (agent__tool on /mcp, /agents/{id}/mcp, /servers/{name}/mcp) use it, and
 * so can anything else that runs on the loop (the workflow engine), with
 * no incoming MCP request behind it. How a call ended is a C value,
 * sb_gateway_outcome; nothing is decided from an error's JSON `data`.
 *
 * Everything runs on the loop thread given in the options.
 */
#ifndef SB_GATEWAY_H
#define SB_GATEWAY_H

#include <jansson.h>
#include <uv.h>

#include "core/core.h"
#include "mcp/mcp.h"
#include "net/net.h"
#include "registry/registry.h"

typedef struct sb_gateway sb_gateway;
typedef struct sb_ctx_manager sb_ctx_manager;

/* Public tool names (agentId__tool): the default and least length limit. */
#define SB_GATEWAY_TOOL_NAME_MAX 64
#define SB_GATEWAY_TOOL_NAME_MIN 16

typedef struct sb_gateway_options {
  uv_loop_t *loop;
  /* The main MCP server (/mcp): the gateway adds its provider of
   * namespaced agent tools (agent__tool) and announces list changes there.
   * Borrowed; may be NULL (no namespaced tools). */
  sb_mcp_server *mcp;
  /* Limits of the per-agent and virtual servers' MCP endpoints. */
  sb_mcp_limits mcp_limits;
  const char *default_tenant; /* of callers without credentials; copied */
  size_t max_message_bytes;   /* one message from an agent */
  /* Tenants are configured: an agent's log line not tied to one tenant's
   * calls is then dropped rather than shown to whoever listens. */
  int tenants_configured;
  /* Contexts, for routing with a context and handing projections. May be
   * NULL: calls naming a context then fail with SB_EINVAL. Borrowed. */
  sb_ctx_manager *ctx;
  /* The longest public tool name (agentId__tool) on the main endpoint;
   * longer ones are shortened (sb_gateway_tool_names). 0: the default,
   * SB_GATEWAY_TOOL_NAME_MAX. */
  size_t max_tool_name;
} sb_gateway_options;

/* A running gateway with no agents yet. NULL with err on failure. */
sb_gateway *sb_gateway_new(const sb_gateway_options *opts, sb_error *err);
/* Cancels every call (callers get SB_GATEWAY_STOPPING), closes agents. */
void sb_gateway_free(sb_gateway *gw);
sb_registry *sb_gateway_registry(sb_gateway *gw);

/* ---- the agents (admin operations) ------------------------------------ */

/* Register an AgentDefinition (JSON, borrowed, validated here) and connect
 * to it. An existing id is SB_ECONFLICT unless `replace`. from_config marks
 * agents that sb_gateway_reload may remove. */
int sb_gateway_add(sb_gateway *gw, const json_t *def, int replace,
                   int from_config, sb_error *err);
/* Disconnect and forget; SB_ENOENT if there is no such agent. */
int sb_gateway_remove(sb_gateway *gw, const char *id, sb_error *err);
/* [{definition, connected, fromConfig, era, protocolVersion, tools,
 *   serverInfo, state}...], new reference. */
json_t *sb_gateway_list_json(sb_gateway *gw);
/* A new list of AgentDefinitions (config `agents:`, borrowed; lines[i] is
 * item i's line in the file for messages, may be NULL): validate all
 * first (a bad one changes nothing), then add new ones, replace changed
 * ones, remove config agents no longer listed; unchanged agents keep
 * their connections. */
int sb_gateway_reload(sb_gateway *gw, const json_t *defs, const size_t *lines,
                      sb_error *err);

/* The public names of agents' tools: `tools` is [[agent id, tool name]...]
 * (borrowed), in listing order. Returns an object (new reference; NULL on
 * ENOMEM) mapping each public name, in the same order, to {"agent",
 * "tool"}. agentId__tool is kept when it has at most max_len characters
 * (0: SB_GATEWAY_TOOL_NAME_MAX), all of A-Za-z0-9_-. ; otherwise it is
 * shortened, deterministically and collision-free: its other characters
 * become '_', it is cut, and "_" and 10 hex digits of a hash of the agent
 * id and tool name are appended (see names.c). */
json_t *sb_gateway_tool_names(const json_t *tools, size_t max_len);
/* The current mapping on the main endpoint, as above (borrowed; valid
 * until an agent's tools change). */
json_t *sb_gateway_tool_names_current(sb_gateway *gw);

/* ---- per-agent endpoints and virtual servers --------------------------- */

/* Virtual servers from the config's `servers:` list (borrowed; lines as
 * above). Errors name the line and the path. Call before adding agents. */
int sb_gateway_add_servers(sb_gateway *gw, const json_t *servers,
                           const size_t *lines, sb_error *err);
/* The MCP server of one agent (made on first use; NULL: no such agent),
 * or of a virtual server (NULL: none by that name). */
sb_mcp_server *sb_gateway_agent_server(sb_gateway *gw, const char *id);
sb_mcp_server *sb_gateway_virtual_server(sb_gateway *gw, const char *name);
/* For sb_http_server_mount: /agents/{id}/mcp and /servers/{name}/mcp. */
sb_mcp_server *sb_gateway_mount_resolve(void *gw, const char *path);

/* ---- one agent's channel and MCP client -------------------------------- */

/* Open a channel to the agent `def` describes (a child process or a
 * Streamable HTTP endpoint, with its args, env and headers) into *ch and,
 * when *client is NULL, an MCP client speaking through *ch (it reads the
 * slot at each send, so the same client survives the channel being
 * replaced after a crash). The client declares sampling, elicitation and
 * roots: the gateway relays them to whoever made the call. Used by the
 * pool and by `switchboard agents show` alike. 0, or a negative code with
 * err; *ch and *client are then left as they were. */
typedef struct sb_gateway_link_options {
  uv_loop_t *loop;
  const sb_agent_def *def;
  size_t max_message_bytes;
  sb_channel_events channel;   /* messages go to sb_mcp_client_receive */
  sb_mcp_client_events client; /* the agent's notifications and requests */
} sb_gateway_link_options;
int sb_gateway_link_open(const sb_gateway_link_options *o, sb_channel **ch,
                         sb_mcp_client **client, sb_error *err);

#endif
