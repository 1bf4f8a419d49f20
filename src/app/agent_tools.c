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
    "health, breaker, load and latency; only those of a type, or with a "
    "capability, when asked.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"type\":{\"type\":\"string\",\"enum\":[\"sales\",\"service\","
    "\"parts\",\"finance\",\"general\"]},"
    "\"capability\":{\"type\":\"string\"}},"
    "\"additionalProperties\":false},"
    "\"annotations\":{\"readOnlyHint\":true}},"
    "{\"name\":\"agents_register\",\"title\":\"Register an agent\","
    "\"description\":\"Register an AgentDefinition (id, name, type, "
    "capabilities, models, contextRequirements, outputFormat, maxTokens, "
    "temperature, transport, limits, idempotentTools) and connect to it.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"definition\":{\"type\":\"object\"},\"replace\":{\"type\":"
    "\"boolean\"}},\"required\":[\"definition\"]}},"
    "{\"name\":\"agents_remove\",\"title\":\"Remove an agent\","
    "\"description\":\"Disconnect and forget an agent.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"id\":{"
    "\"type\":\"string\"}},\"required\":[\"id\"]}},"
    "{\"name\":\"agents_explain\",\"title\":\"Explain agent choice\","
    "\"description\":\"Rank the agents with a capability (getOptimalAgent),"
    " optionally against a context, with each score and its parts.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"capability\":{\"type\":\"string\"},\"contextId\":{\"type\":"
    "\"string\"}},\"required\":[\"capability\"]},"
    "\"annotations\":{\"readOnlyHint\":true}}"
    "]";

int app_agents_filter(const char *type, const char *capability,
                      sb_gateway_list_filter *out, sb_error *err) {
  *out = (sb_gateway_list_filter){.capability = capability, .any_type = 1};
  if (!type) return 0;
  out->any_type = 0;
  if (sb_agent_type_parse(type, &out->type) == 0) return 0;
  return sb_error_set(err, SB_EINVAL,
                      "type: expected one of sales, service, parts, finance, "
                      "general (got \"%.64s\")",
                      type);
}

static void reply_structured(sb_mcp_call *call, json_t *obj, int is_error) {
  char *text = sb_json_dumps(obj, JSON_COMPACT);
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
                             : err->code == SB_EINVAL    ? "invalid"
                                                         : "unavailable",
                             "message", err->msg),
                   1);
}

/* agents_explain: the ranking, over the data of a context when one is
 * named (read asynchronously: the call waits for the store). */
typedef struct explain_op {
  sb_app *app;
  sb_mcp_call *call; /* NULL once cancelled */
  char *cap;
  char scope[256]; /* the context's permission a refusal names */
} explain_op;

static void explain_answer(sb_app *app, sb_mcp_call *call,
                           const char *cap, json_t *data) {
  sb_error err = {0};
  json_t *ranking = NULL;
  if (sb_registry_explain(sb_gateway_registry(app->gateway), cap, data,
                          sb_now_ms(), &ranking, &err) != 0)
    reply_admin_error(call, &err);
  else
    reply_structured(call, json_pack("{ssso}", "capability", cap, "ranking",
                                     ranking),
                     0);
}

static void explain_cancelled(sb_mcp_call *call, void *ud) {
  ((explain_op *)ud)->call = NULL;
}

static void explain_read(void *ud, const sb_ctx_result *res) {
  explain_op *op = ud;
  if (op->call) {
    sb_mcp_call_on_cancel(op->call, NULL, NULL);
    if (res->rc == SB_EPERM)
      sb_mcp_call_fail_scope(op->call, op->scope, res->err.msg);
    else if (res->rc == SB_EBUSY)
      sb_mcp_call_fail(op->call, SB_RPC_SERVER_BUSY, res->err.msg, NULL);
    else if (res->rc != 0) reply_admin_error(op->call, &res->err);
    else explain_answer(op->app, op->call, op->cap,
                        json_object_get(res->doc, "data"));
  }
  sb_free(op->cap);
  sb_free(op);
}

static void explain_start(sb_app *app, sb_mcp_call *call,
                          const char *cap, const char *ctx_id) {
  if (!ctx_id) return explain_answer(app, call, cap, NULL);
  sb_error err = {0};
  explain_op *op = sb_calloc(1, sizeof *op);
  if (op && !(op->cap = sb_strdup(cap))) {
    sb_free(op);
    op = NULL;
  }
  if (!op) return sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory",
                                   NULL);
  op->app = app;
  op->call = call;
  /* Ranked on the context as agents_call routes with it: the caller must
   * hold its metadata.permissions (another tenant's id is not found). */
  app_ctx_access a = {.principal = sb_mcp_call_principal(call),
                      .tenant = sb_mcp_call_tenant(call),
                      .id = ctx_id,
                      .op = APP_CTX_CHECK,
                      .scope = op->scope,
                      .scope_cap = sizeof op->scope};
  if (app_ctx_guard(app, &a, explain_read, op, &err) != 0) {
    sb_free(op->cap);
    sb_free(op);
    return reply_admin_error(call, &err);
  }
  sb_mcp_call_on_cancel(call, explain_cancelled, op);
}

/* agents_register, agents_remove: answered once the store keeps the
 * change (agent_admin.c). */
static void change_cancelled(sb_mcp_call *call, void *ud) {
  (void)call;
  app_agent_change_forget(ud);
}

static void change_done(sb_mcp_call *call, const char *key, const char *id,
                        int rc, const sb_error *err) {
  sb_mcp_call_on_cancel(call, NULL, NULL);
  if (rc != 0) return reply_admin_error(call, err);
  reply_structured(call, json_pack("{ss}", key, id), 0);
}

static void registered(void *ud, const char *id, int rc,
                       const sb_error *err) {
  change_done(ud, "registered", id, rc, err);
}

static void removed(void *ud, const char *id, int rc, const sb_error *err) {
  change_done(ud, "removed", id, rc, err);
}

static void change_start(sb_app *app, sb_mcp_call *call, const char *name,
                         json_t *args) {
  app_agent_change_args a = {.tenant = sb_mcp_call_tenant(call),
                             .origin = "mcp",
                             .done = registered,
                             .ud = call};
  json_t *replace = json_object_get(args, "replace");
  if (strcmp(name, "agents_remove") == 0) {
    a.op = APP_AGENT_REMOVE;
    a.done = removed;
    if (!(a.id = json_string_value(json_object_get(args, "id"))))
      return sb_mcp_call_fail_invalid_args(call, name,
                                           "'id' is required, a string");
  } else {
    a.op = json_is_true(replace) ? APP_AGENT_REPLACE : APP_AGENT_REGISTER;
    a.definition = json_object_get(args, "definition");
    if (!json_is_object(a.definition))
      return sb_mcp_call_fail_invalid_args(call, name,
                                           "'definition' must be an "
                                           "AgentDefinition object");
    if (replace && !json_is_boolean(replace))
      return sb_mcp_call_fail_invalid_args(call, name,
                                           "'replace' must be a boolean");
  }
  sb_error err = {0};
  app_agent_change *ch = app_agent_change_start(app, &a, &err);
  if (!ch) return reply_admin_error(call, &err);
  sb_mcp_call_on_cancel(call, change_cancelled, ch);
}

typedef struct agent_tools {
  sb_app *app;
  json_t *defs; /* admin_tools_json, read once */
} agent_tools;

static int call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *args) {
  agent_tools *t = ud;
  sb_app *app = t->app;
  sb_error err = {0};
  /* Every call of an agent's own tool passes here first: it leaves at
   * once, without a look through this provider's definitions. */
  if (strncmp(name, "agents_", 7) != 0) return 0;
  int changes = strcmp(name, "agents_register") == 0 ||
                strcmp(name, "agents_remove") == 0;
  if (changes && !sb_config_is_admin(app->cfg, sb_mcp_call_tenant(call))) {
    /* Agents are processes and endpoints shared by every tenant. */
    sb_error_set(&err, SB_EINVAL,
                 "%s: tenant %s is not an administrator (auth.admin_tenants)",
                 name, sb_mcp_call_tenant(call));
    app_audit_admin(app, sb_mcp_call_tenant(call), name, "mcp", "refused",
                    NULL, "not an administrator");
    reply_structured(call, json_pack("{ssss}", "error", "forbidden",
                                     "message", err.msg),
                     1);
    return 1;
  }
  if (app_tool_unknown_arg(call, t->defs, name, args)) return 1;
  if (strcmp(name, "agents_list") == 0) {
    json_t *type = json_object_get(args, "type");
    json_t *cap = json_object_get(args, "capability");
    sb_gateway_list_filter f;
    if ((type && !json_is_string(type)) || (cap && !json_is_string(cap)))
      sb_mcp_call_fail_invalid_args(call, name,
                                    "'type' and 'capability' are strings");
    else if (app_agents_filter(json_string_value(type),
                               json_string_value(cap), &f, &err) != 0)
      sb_mcp_call_fail_invalid_args(call, name, err.msg);
    else
      reply_structured(call,
                       json_pack("{so}", "agents",
                                 sb_gateway_list_json(app->gateway, &f)),
                       0);
  } else if (strcmp(name, "agents_register") == 0 ||
             strcmp(name, "agents_remove") == 0) {
    change_start(app, call, name, args);
  } else if (strcmp(name, "agents_explain") == 0) {
    const char *cap = json_string_value(json_object_get(args, "capability"));
    const char *ctx_id = json_string_value(json_object_get(args, "contextId"));
    if (!cap) {
      sb_mcp_call_fail_invalid_args(call, name, "'capability' is required");
      return 1;
    }
    if (json_object_get(args, "contextId") && !ctx_id) {
      /* Not taken as absent: the ranking would ignore the context. */
      sb_mcp_call_fail_invalid_args(call, name, "'contextId' must be a string");
      return 1;
    }
    explain_start(app, call, cap, ctx_id);
  } else {
    return 0;
  }
  return 1;
}

static void list_tools(void *ud, sb_mcp_call *call, json_t *out) {
  json_array_extend(out, ((agent_tools *)ud)->defs);
}

static void destroy(void *ud) {
  agent_tools *t = ud;
  json_decref(t->defs);
  sb_free(t);
}

int app_agent_tools_register(sb_app *app) {
  agent_tools *t = sb_calloc(1, sizeof *t);
  if (!t) return SB_ENOMEM;
  t->app = app;
  t->defs = json_loads(admin_tools_json, 0, NULL);
  sb_mcp_provider p = {.name = "agent admin",
                       .ud = t,
                       .list_tools = list_tools,
                       .call_tool = call_tool,
                       .destroy = destroy};
  if (!t->defs || sb_mcp_server_add_provider(app->mcp, &p) != 0) {
    destroy(t);
    return SB_ENOMEM;
  }
  return 0;
}
