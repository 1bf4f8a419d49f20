/* rest_agents.c: the agents admin API under /v1/agents.
 *
 *   GET    /v1/agents                     the agents with their state
 *   POST   /v1/agents                     register (201); body: an
 *                                         AgentDefinition
 *   PUT    /v1/agents/{id}                register or replace
 *   DELETE /v1/agents/{id}                remove (204)
 *   GET    /v1/agents/explain?capability=C[&context=ID]
 *                                         getOptimalAgent's ranking
 *   POST   /v1/agents/call                a tool call routed with the
 *                                         context (rest_calls.c)
 *
 * Each needs the scope of its MCP tool twin (tools:agents_list,
 * tools:agents_explain, tools:agents_register, tools:agents_remove: a
 * caller with no scopes holds them all), and changes an administrator
 * tenant (auth.admin_tenants) as well; the call, the permissions its
 * tool and agent ask for (rest_calls.c).
 */
#include <string.h>

#include "app/app_internal.h"
#include "registry/registry.h"

#define PREFIX "/v1/agents"

static void respond_failure(sb_http_request *req, const sb_error *err) {
  if (err->code == SB_EBUSY || err->code == SB_ETIMEDOUT)
    return app_rest_busy(req, err->msg);
  int status = err->code == SB_ENOENT      ? 404
               : err->code == SB_ECONFLICT ? 409
               : err->code == SB_ENOMEM || err->code == SB_EIO
                   ? 500 /* the store failed: nothing was changed */
                   : 422;
  app_rest_error(req, status,
                 status == 404   ? "not_found"
                 : status == 409 ? "conflict"
                 : status == 500 ? "internal"
                                 : "invalid",
                 err->msg);
}

/* The body as an AgentDefinition object, or NULL after a 400. */
static json_t *body_json(sb_http_request *req) {
  json_t *v = app_rest_body(req, "body");
  if (v && !json_is_object(v)) {
    json_decref(v);
    app_rest_error(req, 400, "bad_json",
                   "body: expected an AgentDefinition object");
    return NULL;
  }
  return v;
}

/* explain with a context: its data is read asynchronously. */
typedef struct explain_op {
  sb_app *app;
  sb_http_request *req; /* NULL once the request is gone */
  char *cap;
  char scope[256]; /* the context's permission a refusal names */
} explain_op;

static void explain_answer(sb_app *app, sb_http_request *req, const char *cap,
                           json_t *data) {
  sb_error err = {0};
  json_t *ranking = NULL;
  int rc = sb_registry_explain(sb_gateway_registry(app->gateway), cap, data,
                               sb_now_ms(), &ranking, &err);
  if (rc != 0) return respond_failure(req, &err);
  app_rest_json(req, 200, json_pack("{ssso}", "capability", cap, "ranking",
                                    ranking),
                NULL);
}

static void explain_gone(void *ud) { ((explain_op *)ud)->req = NULL; }

static void explain_read(void *ud, const sb_ctx_result *res) {
  explain_op *op = ud;
  if (op->req) {
    if (res->rc == SB_EPERM) app_rest_refuse(op->req, op->scope, res->err.msg);
    else if (res->rc != 0) respond_failure(op->req, &res->err);
    else explain_answer(op->app, op->req, op->cap,
                        json_object_get(res->doc, "data"));
  }
  sb_free(op->cap);
  sb_free(op);
}

static void do_explain(sb_app *app, sb_http_request *req, const char *tenant) {
  const char *cap = sb_http_request_query(req, "capability");
  const char *ctx_id = sb_http_request_query(req, "context");
  if (!cap)
    return app_rest_error(req, 400, "bad_request",
                          "capability: required query argument");
  if (!ctx_id) return explain_answer(app, req, cap, NULL);
  sb_error err = {0};
  explain_op *op = sb_calloc(1, sizeof *op);
  if (op && !(op->cap = sb_strdup(cap))) {
    sb_free(op);
    op = NULL;
  }
  if (!op) return app_rest_error(req, 500, "internal", "out of memory");
  op->app = app;
  op->req = req;
  sb_http_request_defer(req, explain_gone, op);
  /* Ranked on the context as agents_call routes with it: the caller must
   * hold its metadata.permissions (another tenant's id is not found). */
  app_ctx_access a = {.principal = sb_http_request_principal(req),
                      .tenant = tenant,
                      .id = ctx_id,
                      .op = APP_CTX_CHECK,
                      .scope = op->scope,
                      .scope_cap = sizeof op->scope};
  if (app_ctx_guard(app, &a, explain_read, op, &err)) {
    sb_free(op->cap);
    sb_free(op);
    respond_failure(req, &err);
  }
}

/* POST, PUT and DELETE: answered once the store keeps the change
 * (agent_admin.c). */
typedef enum change_reply { REPLY_CREATED, REPLY_REGISTERED, REPLY_REMOVED } change_reply;

typedef struct change_op {
  sb_http_request *req;
  change_reply reply;
  app_agent_change *ch;
} change_op;

static void change_gone(void *ud) {
  change_op *op = ud;
  app_agent_change_forget(op->ch);
  sb_free(op);
}

static void change_done(void *ud, const char *id, int rc,
                        const sb_error *err) {
  change_op *op = ud;
  sb_http_request *req = op->req;
  change_reply reply = op->reply;
  sb_free(op);
  if (rc != 0) return respond_failure(req, err);
  if (reply == REPLY_REMOVED)
    return (void)sb_http_respond(req, 204, NULL, "", 0, NULL);
  /* POST and PUT answer alike; a POST made the agent: 201 and where it
   * is. */
  char location[160];
  snprintf(location, sizeof location, "/v1/agents/%s", id);
  const char *headers[] = {"Location", location, NULL};
  app_rest_json(req, reply == REPLY_CREATED ? 201 : 200,
                json_pack("{ss}", "registered", id),
                reply == REPLY_CREATED ? headers : NULL);
}

static void change_start(sb_app *app, sb_http_request *req, app_agent_op kind,
                         const json_t *def, const char *id,
                         change_reply reply) {
  change_op *op = sb_calloc(1, sizeof *op);
  if (!op) return app_rest_error(req, 500, "internal", "out of memory");
  *op = (change_op){.req = req, .reply = reply};
  app_agent_change_args a = {.op = kind,
                             .tenant = sb_http_request_tenant(req),
                             .origin = "rest",
                             .definition = def,
                             .id = id,
                             .done = change_done,
                             .ud = op};
  sb_error err = {0};
  if (!(op->ch = app_agent_change_start(app, &a, &err))) {
    sb_free(op);
    return respond_failure(req, &err);
  }
  sb_http_request_defer(req, change_gone, op);
}

static void handle(void *ud, sb_http_request *req) {
  sb_app *app = ud;
  const char *method = sb_http_request_method(req);
  const char *path = sb_http_request_path(req) + strlen(PREFIX);
  const char *tenant = sb_http_request_tenant(req);
  int reading = strcmp(method, "GET") == 0;
  /* Calling agents is every tenant's; changing them is the admins'. */
  if (strcmp(path, "/call") == 0) return app_rest_agent_call(app, req);
  /* The scopes of the MCP tools these are twins of, before anything else
   * (a key of an administrator tenant issued for contexts alone must not
   * start programs on the host). */
  int explain = strcmp(path, "/explain") == 0;
  const char *perm = reading && explain           ? "tools:agents_explain"
                     : reading                    ? "tools:agents_list"
                     : strcmp(method, "DELETE") == 0 ? "tools:agents_remove"
                                                     : "tools:agents_register";
  if ((reading || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
       strcmp(method, "DELETE") == 0) &&
      app_rest_permit(req, perm) != 0)
    return;
  if (!reading && !sb_config_is_admin(app->cfg, tenant)) {
    app_audit_admin(app, tenant,
                    strcmp(method, "DELETE") == 0 ? "agents_remove"
                                                  : "agents_register",
                    "rest", "refused", *path == '/' ? path + 1 : NULL,
                    "not an administrator");
    return app_rest_error(req, 403, "forbidden",
                          "changing agents needs an administrator tenant "
                          "(auth.admin_tenants)");
  }
  static const char *const list_query[] = {"type", "capability", NULL};
  static const char *const explain_query[] = {"capability", "context", NULL};
  int top = *path == '\0' || strcmp(path, "/") == 0;
  if (app_rest_query_known(req, !reading  ? NULL
                                : explain ? explain_query
                                : top     ? list_query
                                          : NULL) != 0)
    return;
  sb_error err = {0};
  if (top) {
    if (reading) {
      sb_gateway_list_filter f;
      if (app_agents_filter(sb_http_request_query(req, "type"),
                            sb_http_request_query(req, "capability"), &f,
                            &err) != 0)
        return app_rest_error(req, 400, "bad_request", err.msg);
      return app_rest_json(
          req, 200,
          json_pack("{so}", "agents", sb_gateway_list_json(app->gateway, &f)),
          NULL);
    }
    if (strcmp(method, "POST") != 0)
      return app_rest_not_allowed(req, "GET, POST",
                                  "use GET or POST on /v1/agents");
    json_t *def = body_json(req);
    if (!def) return;
    change_start(app, req, APP_AGENT_REGISTER, def, NULL, REPLY_CREATED);
    json_decref(def);
    return;
  }
  if (explain) {
    if (!reading)
      return app_rest_not_allowed(req, "GET", "use GET");
    return do_explain(app, req, tenant);
  }
  const char *id = path + 1;
  if (strchr(id, '/'))
    return app_rest_error(req, 404, "not_found", "no such resource");
  if (strcmp(method, "DELETE") == 0)
    return change_start(app, req, APP_AGENT_REMOVE, NULL, id, REPLY_REMOVED);
  if (strcmp(method, "PUT") == 0) {
    json_t *def = body_json(req);
    if (!def) return;
    const char *body_id = json_string_value(json_object_get(def, "id"));
    if (!body_id || strcmp(body_id, id) != 0) {
      json_decref(def);
      return app_rest_error(req, 422, "invalid",
                            "id: must equal the id in the path");
    }
    change_start(app, req, APP_AGENT_REPLACE, def, NULL, REPLY_REGISTERED);
    json_decref(def);
    return;
  }
  if (reading) {
    json_t *all = sb_gateway_list_json(app->gateway, NULL);
    size_t i;
    json_t *item;
    json_array_foreach(all, i, item) {
      json_t *def = json_object_get(item, "definition");
      if (strcmp(json_string_value(json_object_get(def, "id")) ?: "", id) == 0) {
        json_t *one = json_incref(item);
        json_decref(all);
        return app_rest_json(req, 200, one, NULL);
      }
    }
    json_decref(all);
    return app_rest_error(req, 404, "not_found", "no such agent");
  }
  app_rest_not_allowed(req, "GET, PUT, DELETE",
                       "use GET, PUT or DELETE on /v1/agents/{id}");
}

int app_rest_agents_register(sb_app *app) {
  return sb_http_server_route(app->http, PREFIX, handle, app);
}
