/* ctx_tools.c: contexts over MCP.
 *
 * Tools context_create, context_get (optionally projected by requirement
 * paths), context_update (merge patch or JSON Patch, with the version the
 * caller read), context_history and context_diff; resources
 * context://{id} and context://{id}/versions/{n}, with
 * notifications/resources/updated on every new version — sent only to
 * subscribers of the context's own tenant.
 *
 * The tenant is always the caller's (sb_mcp_call_tenant); a context of
 * another tenant is indistinguishable from one that does not exist. Every
 * operation on an existing context goes through app_ctx_guard (its
 * metadata.permissions, reads filtered by contexts:read:<pointer>); a
 * refusal is -31003 naming the scope (403 with a challenge on HTTP).
 * Failures a model can act on (not found, conflict, invalid document) are
 * tool results with isError and a structured {error, message,
 * currentVersion?}; malformed arguments are JSON-RPC invalid params.
 */
#include <stdlib.h>
#include <string.h>

#include "app/app_internal.h"

#define URI_PREFIX "context://"

static const char *const tool_json =
    "["
    "{\"name\":\"context_create\",\"title\":\"Create a context\","
    "\"description\":\"Create a shared conversation/workflow context for this "
    "tenant. Give any of workflowId, sessionId, data (conversation, workflow, "
    "user, business) and metadata; the server sets id, version 1, timestamp "
    "and tenantId.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"workflowId\":{\"type\":\"string\"},\"sessionId\":{\"type\":\"string\"},"
    "\"data\":{\"type\":\"object\"},\"metadata\":{\"type\":\"object\"}}}},"
    "{\"name\":\"context_get\",\"title\":\"Read a context\","
    "\"description\":\"Read a context (the head, or a past version). With "
    "requirements (paths like conversation.messages[-5:] or "
    "workflow.variables.vin) only those parts are returned.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"id\":{\"type\":\"string\"},\"version\":{\"type\":\"integer\","
    "\"minimum\":1},\"requirements\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"string\"}}},\"required\":[\"id\"]},"
    "\"annotations\":{\"readOnlyHint\":true,\"idempotentHint\":true}},"
    "{\"name\":\"context_update\",\"title\":\"Update a context\","
    "\"description\":\"Change a context with an RFC 7386 merge patch "
    "(mergePatch) or an RFC 6902 JSON Patch (patch), stating the version you "
    "read (expectedVersion). A stale version is refused with the current "
    "one.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"id\":{\"type\":\"string\"},\"expectedVersion\":{\"type\":\"integer\","
    "\"minimum\":1},\"mergePatch\":{\"type\":\"object\"},\"patch\":{\"type\":"
    "\"array\",\"items\":{\"type\":\"object\"}}},"
    "\"required\":[\"id\",\"expectedVersion\"]}},"
    "{\"name\":\"context_history\",\"title\":\"Context history\","
    "\"description\":\"Versions of a context, newest first, each with the "
    "JSON Patch that made it.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"id\":{\"type\":\"string\"},\"before\":{\"type\":\"integer\"},"
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000}},"
    "\"required\":[\"id\"]},"
    "\"annotations\":{\"readOnlyHint\":true,\"idempotentHint\":true}},"
    "{\"name\":\"context_diff\",\"title\":\"Diff two versions\","
    "\"description\":\"The RFC 6902 JSON Patch from one version of a context "
    "to another.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"id\":{\"type\":\"string\"},\"from\":{\"type\":\"integer\",\"minimum\":"
    "1},\"to\":{\"type\":\"integer\",\"minimum\":1}},"
    "\"required\":[\"id\",\"from\",\"to\"]},"
    "\"annotations\":{\"readOnlyHint\":true,\"idempotentHint\":true}}"
    "]";

typedef struct ctx_tools {
  sb_app *app;
  json_t *tools;
  json_t *templates;
} ctx_tools;

static const char *error_name(int code) {
  switch (code) {
  case SB_ENOENT: return "not_found";
  case SB_ECONFLICT: return "conflict";
  case SB_EINVAL: return "invalid";
  case SB_ETOOBIG: return "too_large";
  case SB_ETIMEDOUT: return "busy";
  default: return "internal";
  }
}

/* A failure the caller can act on, as a tool error result. A full store
 * queue is not the model's to act on: it is a JSON-RPC error the client
 * retries. */
static void reply_failure(sb_mcp_call *call, const sb_error *err,
                          int64_t current_version) {
  if (err->code == SB_EBUSY)
    return sb_mcp_call_fail(call, SB_RPC_SERVER_BUSY, err->msg,
                            json_pack("{si}", "retryAfterMs", 1000));
  json_t *sc = json_pack("{ssss}", "error", error_name(err->code), "message",
                         err->msg);
  if (current_version > 0)
    json_object_set_new(sc, "currentVersion", json_integer(current_version));
  json_t *r = json_pack("{s[{ssss}]sosb}", "content", "type", "text", "text",
                        err->msg, "structuredContent", sc, "isError", 1);
  sb_mcp_call_reply(call, r);
}

/* Result text: a compact dump for the model; the object as structured. */
static void reply_object(sb_mcp_call *call, json_t *obj) {
  char *text = sb_json_dumps(obj, JSON_COMPACT);
  json_t *r = json_pack("{s[{ssss}]so}", "content", "type", "text", "text",
                        text ? text : "", "structuredContent", obj);
  sb_free(text);
  sb_mcp_call_reply(call, r);
}


/* Optional integer >= 1; 0 when absent, -1 when invalid. */
static int64_t version_arg(json_t *args, const char *key) {
  json_t *v = json_object_get(args, key);
  if (!v) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 1) return -1;
  return json_integer_value(v);
}

/* ---- one manager operation per call -----------------------------------
 * The call waits while the manager works; tool_done answers it. If the
 * call is cancelled first, the result is dropped. */

typedef enum tool_kind {
  TOOL_OBJECT,   /* create, get, update: the document as it is */
  TOOL_HISTORY,  /* {"id","versions"} */
  TOOL_DIFF,     /* {"id","from","to","patch"} */
  TOOL_RESOURCE, /* resources/read of context://... */
} tool_kind;

typedef struct tool_op {
  sb_mcp_call *call; /* NULL once cancelled */
  tool_kind kind;
  int64_t from, to; /* diff; resource: to = the version read (0 = head) */
  char *id;
  char *uri; /* resource */
  char scope[160]; /* what a refusal names */
} tool_op;

static void tool_cancelled(sb_mcp_call *call, void *ud) {
  ((tool_op *)ud)->call = NULL;
}

static void tool_op_free(tool_op *op) {
  sb_free(op->id);
  sb_free(op->uri);
  sb_free(op);
}

/* The op for a call, or NULL after failing the call. */
static tool_op *tool_op_new(sb_mcp_call *call, tool_kind kind, const char *id,
                            const char *uri) {
  tool_op *op = sb_calloc(1, sizeof *op);
  if (op) {
    op->id = id ? sb_strdup(id) : NULL;
    op->uri = uri ? sb_strdup(uri) : NULL;
  }
  if (!op || (id && !op->id) || (uri && !op->uri)) {
    if (op) tool_op_free(op);
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return NULL;
  }
  op->call = call;
  op->kind = kind;
  return op;
}

/* After submitting: wait for tool_done, or answer a refusal now. */
static void tool_started(tool_op *op, int rc, const sb_error *err) {
  if (rc == 0) {
    sb_mcp_call_on_cancel(op->call, tool_cancelled, op);
    return;
  }
  if (rc == SB_EPERM)
    sb_mcp_call_fail_scope(op->call, op->scope, err->msg);
  else if (op->kind == TOOL_RESOURCE && rc != SB_EBUSY)
    sb_mcp_call_fail_resource_not_found(op->call, op->uri);
  else
    reply_failure(op->call, err, 0);
  tool_op_free(op);
}

static void answer_resource(tool_op *op, json_t *doc) {
  char *text = sb_json_dumps(doc, JSON_COMPACT);
  json_t *r = json_pack("{s[{ssssss}]}", "contents", "uri", op->uri,
                        "mimeType", "application/json", "text",
                        text ? text : "{}");
  sb_free(text);
  /* A past version never changes; the head may change at any moment. The
   * content is the tenant's own: private. */
  sb_mcp_call_reply_cacheable(op->call, r, op->to ? 3600000 : 0, "private");
}

static void tool_done(void *ud, const sb_ctx_result *res) {
  tool_op *op = ud;
  sb_mcp_call *call = op->call;
  if (!call) goto done; /* cancelled */
  sb_mcp_call_on_cancel(call, NULL, NULL);
  if (res->rc == SB_EPERM) {
    sb_mcp_call_fail_scope(call, op->scope, res->err.msg);
    goto done;
  }
  if (res->rc != 0) {
    if (op->kind == TOOL_RESOURCE && res->rc != SB_EBUSY)
      sb_mcp_call_fail_resource_not_found(call, op->uri);
    else
      reply_failure(call, &res->err,
                    res->rc == SB_ECONFLICT ? res->version : 0);
    goto done;
  }
  switch (op->kind) {
  case TOOL_OBJECT: reply_object(call, json_incref(res->doc)); break;
  case TOOL_HISTORY:
    reply_object(call, json_pack("{sssO}", "id", op->id, "versions",
                                 res->doc));
    break;
  case TOOL_DIFF:
    reply_object(call, json_pack("{sssIsIsO}", "id", op->id, "from",
                                 (json_int_t)op->from, "to",
                                 (json_int_t)op->to, "patch", res->doc));
    break;
  case TOOL_RESOURCE: answer_resource(op, res->doc); break;
  }
done:
  tool_op_free(op);
}

/* The guarded operation a of the call's caller, on context id. */
static int guarded(ctx_tools *t, tool_op *op, app_ctx_access *a,
                   sb_error *err) {
  a->principal = sb_mcp_call_principal(op->call);
  a->tenant = sb_mcp_call_tenant(op->call);
  a->id = op->id;
  a->scope = op->scope;
  a->scope_cap = sizeof op->scope;
  return app_ctx_guard(t->app, a, tool_done, op, err);
}

static void tool_create(ctx_tools *t, sb_mcp_call *call, json_t *args) {
  tool_op *op = tool_op_new(call, TOOL_OBJECT, NULL, NULL);
  if (!op) return;
  sb_error err = {0};
  json_t *input = args ? args : json_object();
  /* Nobody makes a context they could not touch themselves. */
  int rc = app_ctx_permits(sb_mcp_call_principal(call), input, op->scope,
                           sizeof op->scope, &err);
  if (rc == 0)
    rc = sb_ctx_create_async(t->app->ctx, sb_mcp_call_tenant(call), input,
                             tool_done, op, &err);
  if (!args) json_decref(input);
  tool_started(op, rc, &err);
}

static void tool_get(ctx_tools *t, sb_mcp_call *call, json_t *args) {
  const char *id = json_string_value(json_object_get(args, "id"));
  int64_t version = version_arg(args, "version");
  json_t *req = json_object_get(args, "requirements");
  if (!id) return sb_mcp_call_fail_invalid_args(call, "context_get", "missing required property 'id'");
  if (version < 0)
    return sb_mcp_call_fail_invalid_args(call, "context_get",
                        "property 'version' must be an integer >= 1");
  if (req && !json_is_array(req))
    return sb_mcp_call_fail_invalid_args(call, "context_get",
                        "property 'requirements' must be an array of paths");
  if (req && version > 0)
    return sb_mcp_call_fail_invalid_args(call, "context_get",
                        "requirements project the head; omit version");
  tool_op *op = tool_op_new(call, TOOL_OBJECT, id, NULL);
  if (!op) return;
  sb_error err = {0};
  app_ctx_access a = {.op = APP_CTX_GET, .version = version,
                      .requirements = req};
  tool_started(op, guarded(t, op, &a, &err), &err);
}

static void tool_update(ctx_tools *t, sb_mcp_call *call, json_t *args) {
  const char *id = json_string_value(json_object_get(args, "id"));
  int64_t expected = version_arg(args, "expectedVersion");
  json_t *merge = json_object_get(args, "mergePatch");
  json_t *patch = json_object_get(args, "patch");
  if (!id) return sb_mcp_call_fail_invalid_args(call, "context_update", "missing required property 'id'");
  if (expected <= 0)
    return sb_mcp_call_fail_invalid_args(call, "context_update",
                        "property 'expectedVersion' (the version you read) "
                        "is required, an integer >= 1");
  if (!merge == !patch)
    return sb_mcp_call_fail_invalid_args(call, "context_update",
                        "give exactly one of 'mergePatch' and 'patch'");
  if (patch && !json_is_array(patch))
    return sb_mcp_call_fail_invalid_args(call, "context_update",
                        "property 'patch' must be a JSON Patch array");
  tool_op *op = tool_op_new(call, TOOL_OBJECT, id, NULL);
  if (!op) return;
  sb_error err = {0};
  /* The guard holds its own reference to the patch (part of args). */
  app_ctx_access a = {.op = APP_CTX_UPDATE, .version = expected,
                      .kind = patch ? SB_CTX_JSON_PATCH : SB_CTX_MERGE_PATCH,
                      .patch = patch ? patch : merge};
  tool_started(op, guarded(t, op, &a, &err), &err);
}

static void tool_history(ctx_tools *t, sb_mcp_call *call, json_t *args) {
  const char *id = json_string_value(json_object_get(args, "id"));
  json_t *before = json_object_get(args, "before");
  json_t *limit = json_object_get(args, "limit");
  if (!id) return sb_mcp_call_fail_invalid_args(call, "context_history", "missing required property 'id'");
  if ((before && !json_is_integer(before)) ||
      (limit && (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
                 json_integer_value(limit) > 1000)))
    return sb_mcp_call_fail_invalid_args(call, "context_history",
                        "'before' must be an integer and 'limit' 1..1000");
  tool_op *op = tool_op_new(call, TOOL_HISTORY, id, NULL);
  if (!op) return;
  sb_error err = {0};
  app_ctx_access a = {.op = APP_CTX_HISTORY,
                      .before = before ? json_integer_value(before) : 0,
                      .limit = limit ? (size_t)json_integer_value(limit) : 50};
  tool_started(op, guarded(t, op, &a, &err), &err);
}

static void tool_diff(ctx_tools *t, sb_mcp_call *call, json_t *args) {
  const char *id = json_string_value(json_object_get(args, "id"));
  int64_t from = version_arg(args, "from"), to = version_arg(args, "to");
  if (!id || from <= 0 || to <= 0)
    return sb_mcp_call_fail_invalid_args(call, "context_diff",
                        "'id', 'from' and 'to' (versions >= 1) are required");
  tool_op *op = tool_op_new(call, TOOL_DIFF, id, NULL);
  if (!op) return;
  op->from = from;
  op->to = to;
  sb_error err = {0};
  app_ctx_access a = {.op = APP_CTX_DIFF, .from = from, .to = to};
  tool_started(op, guarded(t, op, &a, &err), &err);
}

static const struct {
  const char *name;
  void (*fn)(ctx_tools *, sb_mcp_call *, json_t *);
} tools[] = {
    {"context_create", tool_create},   {"context_get", tool_get},
    {"context_update", tool_update},   {"context_history", tool_history},
    {"context_diff", tool_diff},
};

static void list_tools(void *ud, sb_mcp_call *call, json_t *out) {
  json_array_extend(out, ((ctx_tools *)ud)->tools);
}

static int call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *args) {
  for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++) {
    if (strcmp(tools[i].name, name) == 0) {
      if (!app_tool_unknown_arg(call, ((ctx_tools *)ud)->tools, name, args))
        tools[i].fn(ud, call, args);
      return 1;
    }
  }
  return 0;
}

static void list_templates(void *ud, sb_mcp_call *call, json_t *out) {
  json_array_extend(out, ((ctx_tools *)ud)->templates);
}

/* context://{id} or context://{id}/versions/{n}; *version = 0 for the head.
 * Returns a new id string, or NULL if the URI is not of that shape. */
static char *parse_uri(const char *uri, int64_t *version) {
  size_t pl = strlen(URI_PREFIX);
  if (strncmp(uri, URI_PREFIX, pl) != 0) return NULL;
  const char *id = uri + pl;
  const char *slash = strchr(id, '/');
  *version = 0;
  if (!slash) return *id ? sb_strdup(id) : NULL;
  if (strncmp(slash, "/versions/", 10) != 0) return NULL;
  const char *digits = slash + 10;
  int64_t n = 0;
  if (sb_parse_digits(digits, strlen(digits), &n) != 0 || n < 1) return NULL;
  *version = n;
  return slash > id ? sb_strndup(id, (size_t)(slash - id)) : NULL;
}

static int read_resource(void *ud, sb_mcp_call *call, const char *uri) {
  ctx_tools *t = ud;
  if (strncmp(uri, URI_PREFIX, strlen(URI_PREFIX)) != 0) return 0;
  int64_t version = 0;
  char *id = parse_uri(uri, &version);
  if (!id) {
    sb_mcp_call_fail_resource_not_found(call, uri);
    return 1;
  }
  tool_op *op = tool_op_new(call, TOOL_RESOURCE, id, uri);
  sb_free(id);
  if (!op) return 1;
  op->to = version;
  sb_error err = {0};
  app_ctx_access a = {.op = APP_CTX_GET, .version = version};
  tool_started(op, guarded(t, op, &a, &err), &err);
  return 1;
}

void app_ctx_changed(void *ud, const char *tenant, const char *id,
                     int64_t version) {
  sb_app *app = ud;
  char uri[256];
  snprintf(uri, sizeof uri, URI_PREFIX "%s", id);
  sb_mcp_server_resource_updated_for(app->mcp, tenant, uri);
}

static void destroy(void *ud) {
  ctx_tools *t = ud;
  json_decref(t->tools);
  json_decref(t->templates);
  sb_free(t);
}

int app_ctx_tools_register(sb_app *app) {
  ctx_tools *t = sb_calloc(1, sizeof *t);
  if (!t) return SB_ENOMEM;
  t->app = app;
  t->tools = json_loads(tool_json, 0, NULL);
  t->templates = json_pack(
      "[{ssssssss},{ssssssss}]", "uriTemplate", URI_PREFIX "{id}", "name",
      "context", "mimeType", "application/json", "description",
      "The current version of a shared context", "uriTemplate",
      URI_PREFIX "{id}/versions/{n}", "name", "context-version", "mimeType",
      "application/json", "description", "A past version of a context");
  sb_mcp_provider p = {.name = "contexts",
                       .ud = t,
                       .list_tools = list_tools,
                       .call_tool = call_tool,
                       .list_templates = list_templates,
                       .read_resource = read_resource,
                       .destroy = destroy};
  if (!t->tools || !t->templates || sb_mcp_server_add_provider(app->mcp, &p)) {
    destroy(t);
    return SB_ENOMEM;
  }
  return 0;
}
