/* agent_tools.c: the agents admin tools over MCP: agents_list,
 * agents_register, agents_remove (administrator tenants only) and
 * agents_explain (getOptimalAgent's ranking), on the gateway's admin
 * operations. */
#include <string.h>

#include "app/app_internal.h"
#include "registry/registry.h"

static const char *const admin_tools_json =
    "["
    "{\"name\":\"agents_list\",\"title\":\"List agents\","
    "\"description\":\"The registered agents: definition, connection, era, "
    "health, breaker, load and latency.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{}},"
    "\"annotations\":{\"readOnlyHint\":true}},"
    "{\"name\":\"agents_register\",\"title\":\"Register an agent\","
    "\"description\":\"Register an AgentDefinition (id, name, type, "
    "capabilities, models, contextRequirements, outputFormat, maxTokens, "
    "temperature, transport, limits, idempotentTools) and connect to it.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"definition\":{\"type\":\"object\"},\"replace\":{\"type\":"
    "\"boolean\"}},\"required\":[\"definition\"]}},"
    "{\"name\":\"agents_remove\",\"title\":\"Remove an agent\","
    "\"description\":\"Disconnect and forget an agent.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"id\":{"
    "\"type\":\"string\"}},\"required\":[\"id\"]}},"
    "{\"name\":\"agents_explain\",\"title\":\"Explain agent choice\","
    "\"description\":\"Rank the agents with a capability (getOptimalAgent),"
    " optionally against a context, with each score and its parts.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"capability\":{\"type\":\"string\"},\"contextId\":{\"type\":"
    "\"string\"}},\"required\":[\"capability\"]},"
    "\"annotations\":{\"readOnlyHint\":true}}"
    "]";

static void reply_structured(sb_mcp_call *call, json_t *obj, int is_error) {
  char *text = json_dumps(obj, JSON_COMPACT);
  json_t *r = json_pack("{s[{ssss}]so}", "content", "type", "text", "text",
                        text ? text : "", "structuredContent", obj);
  if (r && is_error) json_object_set_new(r, "isError", json_true());
  sb_free(text);
  sb_mcp_call_reply(call, r);
}

static void reply_admin_error(sb_mcp_call *call, const sb_error *err) {
  reply_structured(call,
                   json_pack("{ssss}", "error",
                             err->code == SB_ENOENT      ? "not_found"
                             : err->code == SB_ECONFLICT ? "conflict"
                                                         : "invalid",
                             "message", err->msg),
                   1);
}

static int call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *args) {
  sb_app *app = ud;
  sb_error err = {0};
  int changes = strcmp(name, "agents_register") == 0 ||
                strcmp(name, "agents_remove") == 0;
  if (changes && !sb_config_is_admin(app->cfg, sb_mcp_call_tenant(call))) {
    /* Agents are processes and endpoints shared by every tenant. */
    sb_error_set(&err, SB_EINVAL,
                 "%s: tenant %s is not an administrator (auth.admin_tenants)",
                 name, sb_mcp_call_tenant(call));
    reply_structured(call, json_pack("{ssss}", "error", "forbidden",
                                     "message", err.msg),
                     1);
    return 1;
  }
  if (strcmp(name, "agents_list") == 0) {
    reply_structured(call, json_pack("{so}", "agents", sb_gateway_list_json(app->gateway)),
                     0);
  } else if (strcmp(name, "agents_register") == 0) {
    json_t *def = json_object_get(args, "definition");
    if (!json_is_object(def)) {
      sb_mcp_call_fail_invalid_args(call, name,
                                    "'definition' must be an AgentDefinition "
                                    "object");
    } else if (sb_gateway_add(app->gateway, def, json_is_true(json_object_get(args, "replace")),
                              0, &err) != 0) {
      reply_admin_error(call, &err);
    } else {
      reply_structured(call, json_pack("{sO}", "registered",
                                       json_object_get(def, "id")),
                       0);
    }
  } else if (strcmp(name, "agents_remove") == 0) {
    const char *id = json_string_value(json_object_get(args, "id"));
    if (!id)
      sb_mcp_call_fail_invalid_args(call, name, "'id' is required");
    else if (sb_gateway_remove(app->gateway, id, &err) != 0)
      reply_admin_error(call, &err);
    else
      reply_structured(call, json_pack("{ss}", "removed", id), 0);
  } else if (strcmp(name, "agents_explain") == 0) {
    const char *cap = json_string_value(json_object_get(args, "capability"));
    const char *ctx_id = json_string_value(json_object_get(args, "contextId"));
    json_t *doc = NULL, *ranking = NULL;
    if (!cap) {
      sb_mcp_call_fail_invalid_args(call, name, "'capability' is required");
      return 1;
    }
    if (ctx_id && sb_ctx_get(app->ctx, sb_mcp_call_tenant(call), ctx_id, 0,
                             &doc, &err) != 0) {
      reply_admin_error(call, &err);
      return 1;
    }
    if (sb_registry_explain(sb_gateway_registry(app->gateway), cap, json_object_get(doc, "data"),
                            sb_now_ms(), &ranking, &err) != 0)
      reply_admin_error(call, &err);
    else
      reply_structured(call, json_pack("{ssso}", "capability", cap, "ranking",
                                       ranking),
                       0);
    json_decref(doc);
  } else {
    return 0;
  }
  return 1;
}

static void list_tools(void *ud, sb_mcp_call *call, json_t *out) {
  json_t *admin = json_loads(admin_tools_json, 0, NULL);
  json_array_extend(out, admin);
  json_decref(admin);
}

int app_agent_tools_register(sb_app *app) {
  sb_mcp_provider p = {.name = "agent admin",
                       .ud = app,
                       .list_tools = list_tools,
                       .call_tool = call_tool};
  return sb_mcp_server_add_provider(app->mcp, &p);
}
