/* app_internal.h: what the files of src/app/ share. */
#ifndef SB_APP_INTERNAL_H
#define SB_APP_INTERNAL_H

#include "app/app.h"
#include "ctx/ctx.h"
#include "mcp/mcp.h"
#include "net/net.h"
#include "store/store.h"

typedef struct sb_app_agents sb_app_agents;
typedef struct sb_registry sb_registry;
typedef struct app_mounts app_mounts;

struct sb_app {
  const sb_config *cfg;
  uv_loop_t *loop;
  sb_store *store;
  sb_ctx_manager *ctx;
  sb_mcp_server *mcp;
  sb_stdio_server *stdio;
  sb_http_server *http;
  sb_app_agents *agents;
  app_mounts *mounts; /* per-agent and virtual servers */
  uv_timer_t sweep; /* deletes expired contexts */
  int sweep_started;
};

/* ctx_tools.c: the context_* tools and context:// resources. */
int app_ctx_tools_register(sb_app *app);
/* Called by the manager after every new version. */
void app_ctx_changed(void *ud, const char *tenant, const char *id,
                     int64_t version);

/* agents.c: the configured agents, connected and served as agent__tool. */
sb_app_agents *app_agents_start(sb_app *app, sb_error *err);
void app_agents_stop(sb_app_agents *agents);
sb_registry *app_agents_registry(sb_app_agents *agents);
/* Register a definition (JSON, validated here); replace an existing id
 * only when asked. from_config marks agents a reload may remove. */
int app_agents_add(sb_app_agents *o, const json_t *def, int replace,
                   int from_config, sb_error *err);
int app_agents_remove(sb_app_agents *o, const char *id, sb_error *err);
/* [{definition, connected, era, protocolVersion, tools, state}...] */
json_t *app_agents_list_json(sb_app_agents *o);
/* Apply a new config's agents: add new, replace changed, remove those
 * the file no longer lists; unchanged agents keep their connection. */
int app_agents_reload(sb_app_agents *o, const sb_config *cfg, sb_error *err);

/* mounts.c: per-agent endpoints and virtual servers (config `servers:`). */
int app_mounts_start(sb_app *app, sb_error *err);
void app_mounts_stop(sb_app *app);
/* The MCP server of one agent (made on first use; NULL: no such agent),
 * or of a virtual server (NULL: none by that name). */
sb_mcp_server *app_mount_agent(sb_app *app, const char *id);
sb_mcp_server *app_mount_server(sb_app *app, const char *name);
/* /agents/{id}/mcp and /servers/{name}/mcp for the HTTP server. */
sb_mcp_server *app_mount_resolve(void *ud, const char *path);
/* What an agent did, to the mounts that show it. */
void app_mounts_list_changed(sb_app *app, const char *agent_id,
                             const char *kind);
void app_mounts_resource_updated(sb_app *app, const char *agent_id,
                                 const char *uri);
void app_mounts_log(sb_app *app, const char *agent_id, json_t *params);

/* rest.c: /v1/contexts, and the JSON responses every REST route uses:
 * body stolen; errors are {"error":{"code","message"}}. */
int app_rest_register(sb_app *app);
void app_rest_json(sb_http_request *req, int status, json_t *body,
                   const char *const *headers);
void app_rest_error(sb_http_request *req, int status, const char *code,
                    const char *message);
/* The request body as JSON (new reference), or NULL after answering 400
 * bad_json naming `what`, the line and the column. */
json_t *app_rest_body(sb_http_request *req, const char *what);

/* rest_agents.c: /v1/agents (admin). */
int app_rest_agents_register(sb_app *app);

#endif
