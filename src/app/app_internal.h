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

struct sb_app {
  const sb_config *cfg;
  uv_loop_t *loop;
  sb_store *store;
  sb_ctx_manager *ctx;
  sb_mcp_server *mcp;
  sb_stdio_server *stdio;
  sb_http_server *http;
  sb_app_agents *agents;
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

/* rest.c: /v1/contexts. */
int app_rest_register(sb_app *app);

#endif
