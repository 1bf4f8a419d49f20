/* rest_agents.c: the agents admin API under /v1/agents.
 *
 *   GET    /v1/agents                     the agents with their state
 *   POST   /v1/agents                     register (201); body: an
 *                                         AgentDefinition
 *   PUT    /v1/agents/{id}                register or replace
 *   DELETE /v1/agents/{id}                remove (204)
 *   GET    /v1/agents/explain?capability=C[&context=ID]
 *                                         getOptimalAgent's ranking
 *
 * Changes need an administrator tenant (auth.admin_tenants); reading is
 * open to every authenticated caller.
 */
#include <string.h>

#include "app/app_internal.h"
#include "registry/registry.h"

#define PREFIX "/v1/agents"

static void respond_failure(sb_http_request *req, const sb_error *err) {
  int status = err->code == SB_ENOENT      ? 404
               : err->code == SB_ECONFLICT ? 409
               : err->code == SB_ENOMEM    ? 500
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

static void do_explain(sb_app *app, sb_http_request *req, const char *tenant) {
  const char *cap = sb_http_request_query(req, "capability");
  const char *ctx_id = sb_http_request_query(req, "context");
  if (!cap)
    return app_rest_error(req, 400, "bad_request",
                          "capability: required query argument");
  sb_error err = {0};
  json_t *doc = NULL, *ranking = NULL;
  if (ctx_id && sb_ctx_get(app->ctx, tenant, ctx_id, 0, &doc, &err) != 0)
    return respond_failure(req, &err);
  int rc = sb_registry_explain(sb_gateway_registry(app->gateway), cap,
                               json_object_get(doc, "data"), sb_now_ms(),
                               &ranking, &err);
  json_decref(doc);
  if (rc != 0) return respond_failure(req, &err);
  app_rest_json(req, 200, json_pack("{ssso}", "capability", cap, "ranking",
                                    ranking),
                NULL);
}

static void handle(void *ud, sb_http_request *req) {
  sb_app *app = ud;
  const char *method = sb_http_request_method(req);
  const char *path = sb_http_request_path(req) + strlen(PREFIX);
  const char *tenant = sb_http_request_tenant(req);
  int reading = strcmp(method, "GET") == 0;
  if (!reading && !sb_config_is_admin(app->cfg, tenant))
    return app_rest_error(req, 403, "forbidden",
                          "changing agents needs an administrator tenant "
                          "(auth.admin_tenants)");
  sb_error err = {0};
  if (*path == '\0' || strcmp(path, "/") == 0) {
    if (reading)
      return app_rest_json(req, 200, json_pack("{so}", "agents",
                                               sb_gateway_list_json(app->gateway)),
                           NULL);
    if (strcmp(method, "POST") != 0)
      return app_rest_error(req, 405, "method_not_allowed",
                            "use GET or POST on /v1/agents");
    json_t *def = body_json(req);
    if (!def) return;
    int rc = sb_gateway_add(app->gateway, def, 0, 0, &err);
    json_decref(def);
    if (rc != 0) return respond_failure(req, &err);
    return app_rest_json(req, 201, json_pack("{so}", "agents",
                                             sb_gateway_list_json(app->gateway)),
                         NULL);
  }
  if (strcmp(path, "/explain") == 0) {
    if (!reading)
      return app_rest_error(req, 405, "method_not_allowed", "use GET");
    return do_explain(app, req, tenant);
  }
  const char *id = path + 1;
  if (strchr(id, '/'))
    return app_rest_error(req, 404, "not_found", "no such resource");
  if (strcmp(method, "DELETE") == 0) {
    if (sb_gateway_remove(app->gateway, id, &err) != 0)
      return respond_failure(req, &err);
    return (void)sb_http_respond(req, 204, NULL, "", 0, NULL);
  }
  if (strcmp(method, "PUT") == 0) {
    json_t *def = body_json(req);
    if (!def) return;
    const char *body_id = json_string_value(json_object_get(def, "id"));
    if (!body_id || strcmp(body_id, id) != 0) {
      json_decref(def);
      return app_rest_error(req, 422, "invalid",
                            "id: must equal the id in the path");
    }
    int rc = sb_gateway_add(app->gateway, def, 1, 0, &err);
    json_decref(def);
    if (rc != 0) return respond_failure(req, &err);
    return app_rest_json(req, 200, json_pack("{ss}", "registered", id), NULL);
  }
  if (reading) {
    json_t *all = sb_gateway_list_json(app->gateway);
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
  app_rest_error(req, 405, "method_not_allowed",
                 "use GET, PUT or DELETE on /v1/agents/{id}");
}

int app_rest_agents_register(sb_app *app) {
  return sb_http_server_route(app->http, PREFIX, handle, app);
}
