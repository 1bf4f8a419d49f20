/* rest.c: the contexts REST API under /v1/contexts.
 *
 *   POST  /v1/contexts                 create (201, Location, ETag)
 *   GET   /v1/contexts/{id}            read; ?version=N, ?requirements=a,b
 *   PATCH /v1/contexts/{id}            update; If-Match: "N" required;
 *                                      application/merge-patch+json or
 *                                      application/json-patch+json
 *   GET   /v1/contexts/{id}/history    ?before=N&limit=M
 *   GET   /v1/contexts/{id}/diff       ?from=N&to=M
 *
 * The ETag of a context is its version, quoted. A stale If-Match is a 409
 * carrying the current version (and its ETag); a missing one is a 428; a
 * weak one (W/"N") is a 412, as a weak tag never matches in If-Match; one
 * that is not a version (or too large to be one) is a 400. The
 * tenant is the bearer token's; another tenant's id is a 404 exactly like
 * an id that does not exist. Errors are {"error":{"code","message"}}.
 * Every operation on an existing context goes through app_ctx_guard: its
 * metadata.permissions, and reads filtered by contexts:read:<pointer>; a
 * refusal is a 403 with an insufficient_scope challenge naming the scope.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/app_internal.h"

#define PREFIX "/v1/contexts"

void app_rest_json(sb_http_request *req, int status, json_t *body,
                   const char *const *headers) {
  char *text = sb_json_dumps(body, JSON_COMPACT);
  if (text)
    sb_http_respond(req, status, NULL, text, strlen(text), headers);
  else
    sb_http_respond(req, 500, NULL, "{}", 2, NULL);
  sb_free(text);
  json_decref(body);
}

static void respond_error(sb_http_request *req, int status, const char *code,
                          const char *message, int64_t current) {
  json_t *e = json_pack("{s{ssss}}", "error", "code", code, "message", message);
  char etag[32];
  const char *headers[3] = {NULL, NULL, NULL};
  if (current > 0) {
    json_object_set_new(json_object_get(e, "error"), "currentVersion",
                        json_integer(current));
    snprintf(etag, sizeof etag, "\"%lld\"", (long long)current);
    headers[0] = "ETag";
    headers[1] = etag;
  }
  app_rest_json(req, status, e, headers);
}

void app_rest_error(sb_http_request *req, int status, const char *code,
                    const char *message) {
  respond_error(req, status, code, message, 0);
}

void app_rest_not_allowed(sb_http_request *req, const char *allow,
                          const char *message) {
  const char *headers[] = {"Allow", allow, NULL};
  app_rest_json(req, 405,
                json_pack("{s{ssss}}", "error", "code", "method_not_allowed",
                          "message", message),
                headers);
}

void app_rest_busy(sb_http_request *req, const char *message) {
  const char *headers[] = {"Retry-After", "1", NULL};
  app_rest_json(
      req, 503,
      json_pack("{s{ssss}}", "error", "code", "busy", "message", message),
      headers);
}

static void respond_store_error(sb_http_request *req, const sb_error *err,
                                int64_t current) {
  switch (err->code) {
  case SB_ENOENT: respond_error(req, 404, "not_found", err->msg, 0); break;
  case SB_ECONFLICT:
    respond_error(req, 409, "conflict", err->msg, current);
    break;
  case SB_EINVAL: respond_error(req, 422, "invalid", err->msg, 0); break;
  case SB_ETOOBIG: respond_error(req, 413, "too_large", err->msg, 0); break;
  case SB_EBUSY: app_rest_busy(req, err->msg); break;
  case SB_ETIMEDOUT: respond_error(req, 503, "busy", err->msg, 0); break;
  default: respond_error(req, 500, "internal", err->msg, 0); break;
  }
}

/* Respond with a context document and its version as ETag. */
static void respond_context(sb_http_request *req, int status, json_t *doc,
                            const char *location) {
  char etag[32];
  snprintf(etag, sizeof etag, "\"%lld\"",
           (long long)json_integer_value(json_object_get(doc, "version")));
  const char *headers[] = {"ETag", etag, location ? "Location" : NULL, location,
                           NULL};
  app_rest_json(req, status, doc, headers);
}

/* The same for a document the manager has serialised already (text). */
static void respond_context_text(sb_http_request *req, int status,
                                 int64_t version, const char *text,
                                 const char *location) {
  char etag[32];
  snprintf(etag, sizeof etag, "\"%lld\"", (long long)version);
  const char *headers[] = {"ETag", etag, location ? "Location" : NULL, location,
                           NULL};
  sb_http_respond(req, status, NULL, text, strlen(text), headers);
}

json_t *app_rest_body(sb_http_request *req, const char *what) {
  json_t *v = NULL;
  sb_error err = {0};
  if (sb_http_request_json(req, &v, &err) != 0) {
    char msg[sizeof err.msg + 64];
    snprintf(msg, sizeof msg, "%s: %s", what, err.msg);
    respond_error(req, 400, "bad_json", msg, 0);
    return NULL;
  }
  return v;
}

/* A key nobody reads is refused, not ignored: a misspelt "contextld"
 * would otherwise start the run on a new context. */
int app_unknown_key(const json_t *obj, const char *const *known,
                    const char *noun, char *msg, size_t cap) {
  const char *key = sb_json_unknown_key(obj, known);
  if (!key) return 0;
  char names[160];
  sb_join_names(known, names, sizeof names);
  if (known[0])
    snprintf(msg, cap, "%.128s: unknown %s (known: %s)", key, noun, names);
  else
    snprintf(msg, cap, "%.128s: unknown %s (this takes none)", key, noun);
  return 1;
}

int app_tool_unknown_arg(sb_mcp_call *call, const json_t *tools,
                         const char *name, const json_t *args) {
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    const char *n = json_string_value(json_object_get(t, "name"));
    if (!n || strcmp(n, name) != 0) continue;
    json_t *schema = json_object_get(t, "inputSchema");
    if (!json_is_false(json_object_get(schema, "additionalProperties")))
      return 0; /* the tool checks its arguments itself */
    json_t *props = json_object_get(schema, "properties");
    const char **known = sb_calloc(json_object_size(props) + 1, sizeof *known);
    if (!known) return 0; /* out of memory: the tool checks what it reads */
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(props, key, v) known[k++] = key;
    char msg[400];
    int unknown = app_unknown_key(args, known, "argument", msg, sizeof msg);
    sb_free(known);
    if (unknown) sb_mcp_call_fail_invalid_args(call, name, msg);
    return unknown;
  }
  return 0;
}

json_t *app_rest_body_object(sb_http_request *req,
                             const char *const *known) {
  json_t *v = app_rest_body(req, "body");
  if (!v) return NULL;
  char msg[400];
  if (!json_is_object(v)) {
    char names[160];
    sb_join_names(known, names, sizeof names);
    snprintf(msg, sizeof msg, "body: expected an object (keys: %s), got %s",
             names, sb_json_type_name(v));
    goto refuse;
  }
  if (!app_unknown_key(v, known, "field", msg, sizeof msg)) return v;
refuse:
  json_decref(v);
  respond_error(req, 400, "bad_request", msg, 0);
  return NULL;
}

int app_rest_query_known(sb_http_request *req, const char *const *known) {
  const char *bad = sb_http_request_unknown_query(req, known);
  if (!bad) return 0;
  char names[200] = "none";
  if (known && *known) sb_join_names(known, names, sizeof names);
  char msg[400];
  snprintf(msg, sizeof msg,
           "unknown query parameter \"%.64s%s\" (this endpoint takes: %s)", bad,
           strlen(bad) > 64 ? "..." : "", names);
  respond_error(req, 400, "bad_request", msg, 0);
  return -1;
}

int64_t app_rest_query_int(sb_http_request *req, const char *key) {
  const char *v = sb_http_request_query(req, key);
  if (!v) return 0;
  int64_t n = 0;
  return sb_parse_digits(v, strlen(v), &n) == 0 && n >= 1 ? n : -1;
}

/* What an If-Match header asks for. */
typedef enum if_match_kind {
  IF_MATCH_ABSENT = 0,
  IF_MATCH_VERSION,   /* "N" (or a bare N): *version is N */
  IF_MATCH_WEAK,      /* W/"N": never matches (RFC 9110 13.1.1) */
  IF_MATCH_MALFORMED, /* not an entity tag of ours */
  IF_MATCH_TOO_LARGE, /* digits past the largest version there can be */
  IF_MATCH_NONE,      /* "0": well formed, but no version is 0 */
  IF_MATCH_PADDED,    /* "0002": well formed, but no ETag of ours */
  IF_MATCH_ANY,       /* *: says nothing of the version read */
  IF_MATCH_LIST,      /* "2", "3": more than one */
} if_match_kind;

/* The answer to each If-Match a PATCH cannot go on with. */
static const struct {
  int status;
  const char *code, *message;
} if_match_refusals[] = {
    [IF_MATCH_ABSENT] = {428, "precondition_required",
                         "If-Match: \"<version you read>\" is required"},
    [IF_MATCH_WEAK] = {412, "precondition_failed",
                       "If-Match: a weak entity tag (W/\"...\") never "
                       "matches; send the strong ETag \"<version>\""},
    [IF_MATCH_MALFORMED] = {400, "bad_request",
                            "If-Match: expected a quoted version like \"3\""},
    [IF_MATCH_TOO_LARGE] = {400, "bad_request",
                            "If-Match: the version is out of range"},
    [IF_MATCH_NONE] = {412, "precondition_failed",
                       "If-Match: \"0\" matches no version (versions start "
                       "at 1)"},
    [IF_MATCH_PADDED] = {412, "precondition_failed",
                         "If-Match: a version with leading zeros matches no "
                         "ETag (they are written without, like \"3\")"},
    [IF_MATCH_ANY] = {400, "bad_request",
                      "If-Match: * does not say which version you read; "
                      "send its ETag, e.g. \"3\""},
    [IF_MATCH_LIST] = {400, "bad_request",
                       "If-Match: one version, the one you read, not a list"},
};

static if_match_kind if_match_version(sb_http_request *req, int64_t *version) {
  const char *v = sb_http_request_header(req, "If-Match");
  *version = 0;
  if (!v) return IF_MATCH_ABSENT;
  /* If-Match uses the strong comparison: a weak tag matches nothing. */
  if (strncmp(v, "W/", 2) == 0) return IF_MATCH_WEAK;
  if (strcmp(v, "*") == 0) return IF_MATCH_ANY;
  if (strchr(v, ',')) return IF_MATCH_LIST;
  if (strcmp(v, "\"0\"") == 0 || strcmp(v, "0") == 0) return IF_MATCH_NONE;
  int quoted = *v == '"';
  if (quoted) v++;
  size_t digits = strspn(v, "0123456789");
  if (*v == '0')
    return digits > 1 && strcmp(v + digits, quoted ? "\"" : "") == 0
               ? IF_MATCH_PADDED
               : IF_MATCH_MALFORMED;
  int64_t n = 0;
  int rc = sb_parse_digits(v, digits, &n);
  if (rc == SB_ETOOBIG) return IF_MATCH_TOO_LARGE;
  if (rc != 0) return IF_MATCH_MALFORMED;
  v += digits;
  if (quoted && *v++ != '"') return IF_MATCH_MALFORMED;
  if (*v != '\0') return IF_MATCH_MALFORMED;
  *version = n;
  return IF_MATCH_VERSION;
}

/* ---- operations on the context manager --------------------------------
 * Each handler validates what it can, defers the answer, and starts one
 * asynchronous manager operation; rest_done answers when it completes. If
 * the client leaves first, the request is forgotten and the result
 * dropped. */

typedef enum rest_kind {
  REST_CREATE,
  REST_GET,
  REST_GET_PROJECTED,
  REST_PATCH,
  REST_HISTORY,
  REST_DIFF,
} rest_kind;

typedef struct rest_op {
  sb_http_request *req; /* NULL once the request is gone */
  rest_kind kind;
  int64_t from, to;
  char id[129];
  char scope[160]; /* what a refusal names */
} rest_op;

static void rest_gone(void *ud) { ((rest_op *)ud)->req = NULL; }

static rest_op *rest_op_new(sb_http_request *req, rest_kind kind,
                            const char *id) {
  rest_op *op = sb_calloc(1, sizeof *op);
  if (!op) {
    respond_error(req, 500, "internal", "out of memory", 0);
    return NULL;
  }
  op->req = req;
  op->kind = kind;
  if (id) snprintf(op->id, sizeof op->id, "%s", id);
  sb_http_request_defer(req, rest_gone, op);
  return op;
}

/* The operation did not start: answer now. */
static void rest_op_refused(rest_op *op, int rc, const sb_error *err) {
  sb_http_request *req = op->req;
  rest_kind kind = op->kind;
  if (rc == SB_EPERM) {
    app_rest_refuse(req, op->scope, err->msg);
    sb_free(op);
    return;
  }
  sb_free(op);
  if (rc == SB_EINVAL && kind == REST_GET_PROJECTED)
    return respond_error(req, 400, "bad_request", err->msg, 0);
  respond_store_error(req, err, 0);
}

static void answer_get(sb_http_request *req, const sb_ctx_result *res) {
  const char *inm = sb_http_request_header(req, "If-None-Match");
  char etag[32];
  snprintf(etag, sizeof etag, "\"%lld\"",
           (long long)json_integer_value(json_object_get(res->doc, "version")));
  if (inm && strcmp(inm, etag) == 0) {
    const char *headers[] = {"ETag", etag, NULL};
    sb_http_respond(req, 304, NULL, "", 0, headers);
    return;
  }
  if (res->text) /* the head, whole: as stored, not serialised again */
    respond_context_text(req, 200, res->version, res->text, NULL);
  else
    respond_context(req, 200, json_incref(res->doc), NULL);
}

static void rest_done(void *ud, const sb_ctx_result *res) {
  rest_op *op = ud;
  sb_http_request *req = op->req;
  if (!req) goto done; /* the client left */
  if (res->rc == SB_EPERM) {
    app_rest_refuse(req, op->scope, res->err.msg);
    goto done;
  }
  if (res->rc != 0) {
    respond_store_error(req, &res->err,
                        res->rc == SB_ECONFLICT ? res->version : 0);
    goto done;
  }
  switch (op->kind) {
  case REST_CREATE: {
    char location[128];
    snprintf(location, sizeof location, PREFIX "/%s",
             json_string_value(json_object_get(res->doc, "id")));
    if (res->text)
      respond_context_text(req, 201, res->version, res->text, location);
    else
      respond_context(req, 201, json_incref(res->doc), location);
    break;
  }
  case REST_GET: answer_get(req, res); break;
  case REST_PATCH:
    if (res->text) {
      respond_context_text(req, 200, res->version, res->text, NULL);
      break;
    }
    /* fall through */
  case REST_GET_PROJECTED:
    respond_context(req, 200, json_incref(res->doc), NULL);
    break;
  case REST_HISTORY:
    app_rest_json(req, 200,
                  json_pack("{sssO}", "id", op->id, "versions", res->doc),
                  NULL);
    break;
  case REST_DIFF:
    app_rest_json(req, 200,
                  json_pack("{sssIsIsO}", "id", op->id, "from",
                            (json_int_t)op->from, "to", (json_int_t)op->to,
                            "patch", res->doc),
                  NULL);
    break;
  }
done:
  sb_free(op);
}

/* Operation a on context op->id for the request's caller. */
static int guarded(sb_app *app, sb_http_request *req, rest_op *op,
                   app_ctx_access *a, sb_error *err) {
  a->principal = sb_http_request_principal(req);
  a->tenant = sb_http_request_tenant(req);
  a->id = op->id;
  a->scope = op->scope;
  a->scope_cap = sizeof op->scope;
  return app_ctx_guard(app, a, rest_done, op, err);
}

static void do_create(sb_app *app, sb_http_request *req, const char *tenant) {
  if (app_rest_query_known(req, NULL) != 0) return;
  json_t *input = app_rest_body(req, "body");
  if (!input) return;
  rest_op *op = rest_op_new(req, REST_CREATE, NULL);
  sb_error err = {0};
  /* Nobody makes a context they could not touch themselves. */
  int rc = op ? app_ctx_permits(sb_http_request_principal(req), input,
                                op->scope, sizeof op->scope, &err)
              : 0;
  if (op && rc == 0)
    rc = sb_ctx_create_async(app->ctx, tenant, input, rest_done, op, &err);
  json_decref(input);
  if (rc != 0) rest_op_refused(op, rc, &err);
}

static void do_get(sb_app *app, sb_http_request *req, const char *tenant,
                   const char *id) {
  static const char *const known[] = {"version", "requirements", NULL};
  if (app_rest_query_known(req, known) != 0) return;
  int64_t version = app_rest_query_int(req, "version");
  const char *requirements = sb_http_request_query(req, "requirements");
  if (version < 0)
    return respond_error(req, 400, "bad_request",
                         "version: expected an integer from 1 to "
                         "9223372036854775807",
                         0);
  sb_error err = {0};
  int rc;
  rest_op *op =
      rest_op_new(req, requirements ? REST_GET_PROJECTED : REST_GET, id);
  if (!op) return;
  if (requirements) {
    json_t *paths = json_array();
    char *copy = sb_strdup(requirements), *save = NULL;
    for (char *p = copy ? strtok_r(copy, ",", &save) : NULL; p;
         p = strtok_r(NULL, ",", &save))
      json_array_append_new(paths, json_string(p));
    sb_free(copy);
    /* ?version=N&requirements=...: that version's projection, not the
     * head's (the version was dropped once). */
    app_ctx_access a = {
        .op = APP_CTX_GET, .version = version, .requirements = paths};
    rc = guarded(app, req, op, &a, &err);
    json_decref(paths);
  } else {
    app_ctx_access a = {.op = APP_CTX_GET, .version = version};
    rc = guarded(app, req, op, &a, &err);
  }
  if (rc != 0) rest_op_refused(op, rc, &err);
}

/* 1 if the Content-Type is the media type `type`, parameters aside
 * ("; charset=utf-8"): not merely a string starting with it. */
static int media_is(const char *ctype, const char *type) {
  size_t n = strlen(type);
  if (!ctype || strncasecmp(ctype, type, n) != 0) return 0;
  char next = ctype[n];
  return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

static void do_patch(sb_app *app, sb_http_request *req, const char *tenant,
                     const char *id) {
  if (app_rest_query_known(req, NULL) != 0) return;
  const char *ctype = sb_http_request_header(req, "Content-Type");
  sb_ctx_patch_kind kind;
  if (media_is(ctype, "application/json-patch+json"))
    kind = SB_CTX_JSON_PATCH;
  else if (media_is(ctype, "application/merge-patch+json"))
    kind = SB_CTX_MERGE_PATCH;
  else
    return respond_error(req, 415, "unsupported_media_type",
                         "Content-Type must be application/merge-patch+json "
                         "or application/json-patch+json",
                         0);
  int64_t expected = 0;
  if_match_kind im = if_match_version(req, &expected);
  if (im != IF_MATCH_VERSION)
    return respond_error(req, if_match_refusals[im].status,
                         if_match_refusals[im].code,
                         if_match_refusals[im].message, 0);
  json_t *patch = app_rest_body(req, "patch");
  if (!patch) return;
  rest_op *op = rest_op_new(req, REST_PATCH, id);
  sb_error err = {0};
  /* The guard keeps its own reference to the patch. */
  app_ctx_access a = {
      .op = APP_CTX_UPDATE, .version = expected, .kind = kind, .patch = patch};
  int rc = op ? guarded(app, req, op, &a, &err) : 0;
  json_decref(patch);
  if (rc != 0) rest_op_refused(op, rc, &err);
}

static void do_history(sb_app *app, sb_http_request *req, const char *tenant,
                       const char *id) {
  static const char *const known[] = {"before", "limit", NULL};
  if (app_rest_query_known(req, known) != 0) return;
  int64_t before = app_rest_query_int(req, "before");
  int64_t limit = app_rest_query_int(req, "limit");
  if (before < 0 || limit < 0 || limit > 1000)
    return respond_error(req, 400, "bad_request",
                         "before and limit must be integers from 1 to "
                         "9223372036854775807 (limit at most 1000)",
                         0);
  rest_op *op = rest_op_new(req, REST_HISTORY, id);
  if (!op) return;
  sb_error err = {0};
  app_ctx_access a = {.op = APP_CTX_HISTORY,
                      .before = before,
                      .limit = limit ? (size_t)limit : 50};
  int rc = guarded(app, req, op, &a, &err);
  if (rc != 0) rest_op_refused(op, rc, &err);
}

static void do_diff(sb_app *app, sb_http_request *req, const char *tenant,
                    const char *id) {
  static const char *const known[] = {"from", "to", NULL};
  if (app_rest_query_known(req, known) != 0) return;
  int64_t from = app_rest_query_int(req, "from");
  int64_t to = app_rest_query_int(req, "to");
  if (from <= 0 || to <= 0)
    return respond_error(req, 400, "bad_request",
                         "from and to are required versions, integers "
                         "from 1 to 9223372036854775807",
                         0);
  rest_op *op = rest_op_new(req, REST_DIFF, id);
  if (!op) return;
  op->from = from;
  op->to = to;
  sb_error err = {0};
  app_ctx_access a = {.op = APP_CTX_DIFF, .from = from, .to = to};
  int rc = guarded(app, req, op, &a, &err);
  if (rc != 0) rest_op_refused(op, rc, &err);
}

static void not_allowed(sb_http_request *req, const char *allow) {
  char msg[128];
  snprintf(msg, sizeof msg, "method %s is not allowed here (allowed: %s)",
           sb_http_request_method(req), allow);
  app_rest_not_allowed(req, allow, msg);
}

static void handle(void *ud, sb_http_request *req) {
  sb_app *app = ud;
  const char *method = sb_http_request_method(req);
  const char *path = sb_http_request_path(req) + strlen(PREFIX);
  const char *tenant = sb_http_request_tenant(req);
  /* Reading needs contexts:read, anything else contexts:write; a reader
   * of some paths (contexts:read:<pointer>) may read a context whole
   * (filtered), not its history or diffs. */
  int get = strcmp(method, "GET") == 0;
  int whole = !get || strstr(path + (*path == '/'), "/") != NULL;
  if ((whole || !app_may_read_some(sb_http_request_principal(req))) &&
      app_rest_permit(req, get ? "contexts:read" : "contexts:write"))
    return;
  if (*path == '\0' || strcmp(path, "/") == 0) {
    if (strcmp(method, "POST") == 0) return do_create(app, req, tenant);
    return not_allowed(req, "POST");
  }
  /* /{id}[/history|/diff] */
  const char *id_start = path + 1;
  const char *slash = strchr(id_start, '/');
  size_t id_len = slash ? (size_t)(slash - id_start) : strlen(id_start);
  if (id_len == 0 || id_len > 128)
    return respond_error(req, 404, "not_found", "context not found", 0);
  char id[129];
  memcpy(id, id_start, id_len);
  id[id_len] = '\0';
  const char *sub = slash ? slash : "";
  if (*sub == '\0') {
    if (strcmp(method, "GET") == 0) return do_get(app, req, tenant, id);
    if (strcmp(method, "PATCH") == 0) return do_patch(app, req, tenant, id);
    return not_allowed(req, "GET, PATCH");
  }
  if (strcmp(sub, "/history") == 0 || strcmp(sub, "/diff") == 0) {
    if (strcmp(method, "GET") != 0) return not_allowed(req, "GET");
    return sub[1] == 'h' ? do_history(app, req, tenant, id)
                         : do_diff(app, req, tenant, id);
  }
  respond_error(req, 404, "not_found", "no such resource", 0);
}

int app_rest_register(sb_app *app) {
  return sb_http_server_route(app->http, PREFIX, handle, app);
}

/* The W3C trace context headers of the request (traceparent, tracestate,
 * baggage), as sb_mcp_trace_context makes it of an MCP caller's _meta. */
json_t *app_rest_trace(sb_http_request *req) {
  static const char *const names[] = {"traceparent", "tracestate", "baggage",
                                      NULL};
  json_t *headers = json_object();
  for (int i = 0; headers && names[i]; i++) {
    const char *v = sb_http_request_header(req, names[i]);
    if (v) json_object_set_new(headers, names[i], json_string(v));
  }
  json_t *trace = sb_mcp_trace_context(headers);
  json_decref(headers);
  return trace;
}
