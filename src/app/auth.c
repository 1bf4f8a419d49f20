/* auth.c (app/): who a caller is, and what it may do.
 *
 * The HTTP server's authenticate option: the config's tokens first
 * (simple setups keep working), then the API keys of the store (the
 * keyring's memory: no disk on the loop), then OAuth access tokens when
 * auth.oauth is configured (auth/jwt.c: CPU only). A token shaped like an
 * API key is always checked as one, and with OAuth on any other token
 * that is not a config token is checked as a JWT, so a wrong token is
 * refused even where the config has no tenants. Each caller becomes a
 * principal; those of the config's tokens and of callers without one are
 * made once, at the start, so the common request allocates nothing here.
 *
 * Permissions: app_permit asks auth/'s scope grammar and names the
 * missing scope in the error every surface returns. */
#include <string.h>
#include <strings.h>

#include "app/app_internal.h"

#define MODULE "app"
#define WELL_KNOWN_PRM "/.well-known/oauth-protected-resource"

/* The metadata's URL for a resource URI (RFC 9728 3.1: the well-known
 * segment between the host and the resource's path). */
static char *metadata_url(const char *resource) {
  const char *host = strstr(resource, "://");
  host = host ? host + 3 : resource;
  const char *path = strchr(host, '/');
  size_t head = path ? (size_t)(path - resource) : strlen(resource);
  const char *tail = path && strcmp(path, "/") != 0 ? path : "";
  size_t n = head + sizeof WELL_KNOWN_PRM + strlen(tail);
  char *url = sb_malloc(n);
  if (url)
    snprintf(url, n, "%.*s%s%s", (int)head, resource, WELL_KNOWN_PRM, tail);
  return url;
}

static json_t *strings_json(char *const *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

static int oauth_start(sb_app *app, sb_error *err) {
  const sb_config *cfg = app->cfg;
  sb_auth_jwt_options jo = {.issuer = cfg->oauth_issuer,
                            .audience = cfg->oauth_resource,
                            .leeway_s = cfg->oauth_leeway_s,
                            .tenant_claim = cfg->oauth_tenant_claim,
                            .scope_claim = cfg->oauth_scope_claim};
  if (!(app->jwt = sb_auth_jwt_new(&jo, err))) return err->code;
  /* jwks_file is relative to the config file's directory. */
  app->jwks_path = sb_config_path(cfg, cfg->oauth_jwks_file);
  if (!app->jwks_path) return sb_error_set(err, SB_ENOMEM, "out of memory");
  sb_error jerr = {0};
  if (sb_auth_jwt_load_jwks_file(app->jwt, app->jwks_path, &jerr) != 0)
    return sb_error_set(err, jerr.code, "auth.oauth.jwks_file: %s", jerr.msg);
  json_t *doc =
      json_pack("{ss s[s] so so}", "resource", cfg->oauth_resource,
                "bearer_methods_supported", "header", "authorization_servers",
                strings_json(cfg->oauth_authorization_servers,
                             cfg->oauth_authorization_servers_len),
                "scopes_supported",
                strings_json(cfg->oauth_scopes_supported,
                             cfg->oauth_scopes_supported_len));
  app->prm_doc = doc ? sb_json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  app->prm_url = metadata_url(cfg->oauth_resource);
  if (!app->prm_doc || !app->prm_url)
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  SB_INFO(MODULE, "OAuth: tokens of %s for %s, %zu signing key(s) from %s",
          cfg->oauth_issuer, cfg->oauth_resource, sb_auth_jwt_keys(app->jwt),
          app->jwks_path);
  return 0;
}

int app_auth_start(sb_app *app, sb_error *err) {
  const sb_config *cfg = app->cfg;
  if (!(app->anonymous = sb_principal_new(SB_PRINCIPAL_NONE,
                                          cfg->default_tenant, NULL, NULL, 0)))
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  if (cfg->tenants_len) {
    app->token_principals = sb_calloc(cfg->tenants_len, sizeof(sb_principal *));
    if (!app->token_principals)
      return sb_error_set(err, SB_ENOMEM, "out of memory");
    for (size_t i = 0; i < cfg->tenants_len; i++)
      if (!(app->token_principals[i] = sb_principal_new(
                SB_PRINCIPAL_CONFIG_TOKEN, cfg->tenants[i].id, NULL, NULL, 0)))
        return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  return cfg->oauth_issuer ? oauth_start(app, err) : 0;
}

void app_auth_stop(sb_app *app) {
  sb_principal_unref(app->anonymous);
  for (size_t i = 0; app->token_principals && i < app->cfg->tenants_len; i++)
    sb_principal_unref(app->token_principals[i]);
  sb_free(app->token_principals);
  sb_auth_jwt_free(app->jwt);
  sb_free(app->jwks_path);
  sb_free(app->prm_doc);
  sb_free(app->prm_url);
}

const char *app_auth_jwks_path(const sb_app *app) {
  return app->jwt ? app->jwks_path : NULL;
}

int app_auth_reload(sb_app *app, sb_auth_jwks *keys, const sb_error *read_err,
                    sb_error *err) {
  if (!app->jwt) {
    sb_auth_jwks_free(keys);
    return 0;
  }
  if (!keys)
    return sb_error_set(err, read_err->code ? read_err->code : SB_EIO,
                        "auth.oauth.jwks_file: %s (the "
                        "previous keys stay)",
                        read_err->msg);
  sb_auth_jwt_install_jwks(app->jwt, keys);
  SB_INFO(MODULE, "OAuth: %zu signing key(s) reloaded from %s",
          sb_auth_jwt_keys(app->jwt), app->jwks_path);
  return 0;
}

void app_auth_http_options(sb_app *app, sb_http_server_options *o) {
  o->authenticate = app_authenticate;
  o->auth_ud = app;
  o->resource_metadata = app->prm_doc;
  o->resource_metadata_url = app->prm_url;
}

sb_principal *app_authenticate(void *ud, const char *token, const char **why) {
  sb_app *app = ud;
  const sb_config *cfg = app->cfg;
  char id[SB_AUTH_KEY_ID_LEN + 1];
  if (cfg->tenants_len && token) {
    const char *t = sb_config_tenant_for_token(cfg, token);
    for (size_t i = 0; t && i < cfg->tenants_len; i++)
      if (cfg->tenants[i].id == t)
        return sb_principal_ref(app->token_principals[i]);
  }
  if (token && sb_auth_key_parse(token, id)) {
    sb_principal *p =
        sb_auth_keyring_principal(app->keyring, token, (int64_t)sb_wall_ms());
    if (!p) *why = "unknown, revoked or expired API key";
    return p;
  }
  /* An API key cut short or mangled in a copy: where the config has no
   * tenants it would otherwise be served as the default tenant, silently
   * (an OAuth token or a proxy's own token never starts so). */
  if (token && strncasecmp(token, "sb_", 3) == 0) {
    *why = "malformed API key (expected sb_ + 12 hex digits + _ + 43 "
           "base64url characters)";
    return NULL;
  }
  if (app->jwt) {
    if (!token) return NULL; /* OAuth on: credentials required */
    sb_principal *p = NULL;
    sb_auth_jwt_outcome o =
        sb_auth_jwt_verify(app->jwt, token, (int64_t)(sb_wall_ms() / 1000), &p);
    if (o != SB_AUTH_JWT_OK) *why = sb_auth_jwt_outcome_text(o);
    return p;
  }
  if (cfg->tenants_len) return NULL;
  return sb_principal_ref(app->anonymous);
}

int app_permit(const sb_principal *p, const char *permission, sb_error *err) {
  if (sb_auth_permits(p, permission)) return 0;
  return sb_error_refuse(err, permission, "missing scope \"%s\"", permission);
}

/* The gateway's permit_agent: a call reaching an agent needs
 * "agents:<id>"; one by capability may reach any agent offering it, so it
 * needs "agents" (all of them). */
int app_permit_agent(void *ud, sb_mcp_call *call, const char *agent) {
  char perm[160] = "agents";
  if (agent) {
    perm[6] = ':';
    sb_strcopy(perm + 7, sizeof perm - 7, agent);
  }
  return app_mcp_permit(call, perm);
}

int app_mcp_permit(sb_mcp_call *call, const char *permission) {
  sb_error err = {0};
  if (app_permit(sb_mcp_call_principal(call), permission, &err) == 0) return 0;
  sb_mcp_call_fail_scope(call, permission, err.msg);
  return SB_EPERM;
}

/* The permission a switchboard tool needs (its resource when it has one),
 * into perm; 0 when the tool is checked elsewhere (an agent's tool and
 * agents_call: the gateway, by agent). */
static int tool_permission(const char *name, json_t *args, char *perm,
                           size_t cap) {
  if (strstr(name, "__") || strcmp(name, "agents_call") == 0) return 0;
  if (strcmp(name, "workflow_run") == 0) {
    const char *wf = json_string_value(json_object_get(args, "workflow"));
    snprintf(perm, cap, "workflows:%s", wf ? wf : "");
  } else if (strcmp(name, "context_create") == 0 ||
             strcmp(name, "context_update") == 0) {
    snprintf(perm, cap, "contexts:write");
  } else if (strncmp(name, "context_", 8) == 0) {
    snprintf(perm, cap, "contexts:read");
  } else if (strcmp(name, "runs_list") == 0 || strcmp(name, "runs_get") == 0) {
    snprintf(perm, cap, "runs:read"); /* as GET /v1/runs */
  } else if (strncmp(name, "runs_", 5) == 0) {
    snprintf(perm, cap, "runs:write"); /* as POST /v1/runs/{id}/{action} */
  } else if (strcmp(name, "events_publish") == 0) {
    snprintf(perm, cap, "events:write");
  } else {
    snprintf(perm, cap, "tools:%s", name);
  }
  return 1;
}

static int authorize_tool(sb_mcp_call *call, const char *name, json_t *args) {
  char perm[200];
  if (!tool_permission(name, args, perm, sizeof perm)) return 0;
  /* A reader of some paths (contexts:read:<pointer>) may read those. */
  if (strcmp(name, "context_get") == 0 &&
      app_may_read_some(sb_mcp_call_principal(call)))
    return 0;
  /* Runs are scoped per workflow too: the run's is checked once read. */
  if (strncmp(name, "runs_", 5) == 0) {
    sb_error err = {0};
    if (app_runs_permit_some(sb_mcp_call_principal(call),
                             strcmp(perm, "runs:write") == 0, &err) == 0)
      return 0;
    sb_mcp_call_fail_scope(call, err.scope, err.msg);
    return SB_EPERM;
  }
  return app_mcp_permit(call, perm);
}

static int tool_visible(const sb_principal *p, const char *name);

/* switchboard's own resources and prompts: "resources:<uri>",
 * "prompts:<name>" ("resources:switchboard://notes" grants every note).
 * Its info is public, as server/discover is; contexts and the event log
 * are no "resources:" family (their callers ask their scopes, their
 * providers check reads in full). into perm; 0 when none is needed
 * here. */
static int resource_permission(const char *uri, char *perm, size_t cap) {
  if (strcmp(uri, "switchboard://info") == 0 ||
      strncmp(uri, "context://", 10) == 0 || strncmp(uri, "events://", 9) == 0)
    return 0;
  /* A URI too long to name: only the whole family grants it. */
  if ((size_t)snprintf(perm, cap, "resources:%s", uri) >= cap)
    snprintf(perm, cap, "resources");
  return 1;
}

int app_authorize(void *ud, sb_mcp_call *call, sb_mcp_item_kind kind,
                  const char *name, json_t *args) {
  (void)ud;
  char perm[600];
  switch (kind) {
  case SB_MCP_ITEM_TOOL: return authorize_tool(call, name, args);
  case SB_MCP_ITEM_RESOURCE:
    /* The event log and contexts are checked in full by their providers'
     * reads; a subscription reads nothing, so the family's scope is asked
     * here too (a reader of some context paths may watch a context). */
    if (strncmp(name, "events://", 9) == 0)
      return app_mcp_permit(call, "events:read");
    if (strncmp(name, "context://", 10) == 0)
      return app_may_read_some(sb_mcp_call_principal(call))
                 ? 0
                 : app_mcp_permit(call, "contexts:read");
    return resource_permission(name, perm, sizeof perm)
               ? app_mcp_permit(call, perm)
               : 0;
  case SB_MCP_ITEM_PROMPT:
    snprintf(perm, sizeof perm, "prompts:%s", name);
    return app_mcp_permit(call, perm);
  case SB_MCP_ITEM_TEMPLATE: break;
  }
  return 0;
}

/* A resource template: listed when some URI it makes may be read. */
static int template_visible(const sb_principal *p, const char *tmpl) {
  if (strncmp(tmpl, "context://", 10) == 0) return app_may_read_some(p);
  if (strncmp(tmpl, "events://", 9) == 0)
    return sb_auth_permits(p, "events:read");
  const char *brace = strchr(tmpl, '{');
  char perm[600];
  snprintf(perm, sizeof perm, "resources:%.*s",
           (int)(brace ? (size_t)(brace - tmpl) : strlen(tmpl)), tmpl);
  if (sb_auth_permits(p, perm)) return 1;
  size_t n = strlen(perm);
  for (size_t i = 0; i < p->scopes_len; i++)
    if (strncmp(p->scopes[i], perm, n) == 0) return 1;
  return 0;
}

int app_item_visible(void *ud, sb_mcp_call *call, sb_mcp_item_kind kind,
                     const char *name) {
  const sb_principal *p = sb_mcp_call_principal(call);
  char perm[600];
  if (!p || !p->restricted) return 1;
  switch (kind) {
  case SB_MCP_ITEM_TOOL: return tool_visible(p, name);
  case SB_MCP_ITEM_RESOURCE:
    if (strncmp(name, "events://", 9) == 0)
      return sb_auth_permits(p, "events:read");
    return !resource_permission(name, perm, sizeof perm) ||
           sb_auth_permits(p, perm);
  case SB_MCP_ITEM_TEMPLATE: return template_visible(p, name);
  case SB_MCP_ITEM_PROMPT:
    snprintf(perm, sizeof perm, "prompts:%s", name);
    return sb_auth_permits(p, perm);
  }
  return 1;
}

int app_agent_visible(void *ud, sb_mcp_call *call, const char *agent) {
  (void)ud;
  char perm[160];
  snprintf(perm, sizeof perm, "agents:%s", agent);
  return sb_auth_permits(sb_mcp_call_principal(call), perm);
}

static int tool_visible(const sb_principal *p, const char *name) {
  char perm[200];
  const char *sep = strstr(name, "__");
  /* Their arguments name what they reach: checked when called. */
  if (strcmp(name, "agents_call") == 0 || strcmp(name, "workflow_run") == 0)
    return 1;
  if (sep) { /* an agent's tool: agent__tool */
    snprintf(perm, sizeof perm, "agents:%.*s", (int)(sep - name), name);
    return sb_auth_permits(p, perm);
  }
  if (strcmp(name, "context_get") == 0) return app_may_read_some(p);
  tool_permission(name, NULL, perm, sizeof perm);
  if (strncmp(name, "runs_", 5) == 0) return sb_auth_permits_some(p, perm);
  return sb_auth_permits(p, perm);
}

int app_may_read_some(const sb_principal *p) {
  json_t *paths = NULL;
  sb_auth_read r = sb_auth_read_paths(p, &paths);
  json_decref(paths);
  return r != SB_AUTH_READ_NONE;
}

int app_rest_permit(sb_http_request *req, const char *permission) {
  sb_error err = {0};
  if (app_permit(sb_http_request_principal(req), permission, &err) == 0)
    return 0;
  app_rest_refuse(req, permission, err.msg);
  return SB_EPERM;
}

void app_rest_refuse(sb_http_request *req, const char *scope,
                     const char *message) {
  char challenge[600];
  sb_http_insufficient_scope(req, scope, message, challenge, sizeof challenge);
  const char *headers[] = {"WWW-Authenticate", challenge, NULL};
  app_rest_json(req, 403,
                json_pack("{s{ssssss}}", "error", "code", "forbidden",
                          "message", message, "scope", scope),
                headers);
}
