/* ctx_access.c: who may touch a context, and what of it they may read.
 *
 * Three layers, each over auth/'s scope grammar:
 *
 *   - the operation's scope (contexts:read, contexts:write), checked
 *     before anything is looked up (auth.c, rest.c);
 *   - the context's own metadata.permissions: every one must be held by
 *     the caller to read or write it (empty or absent: none needed);
 *   - reads by a caller holding only "contexts:read:<pointer>" scopes get
 *     the context with `data` projected onto those pointers (relative to
 *     `data`: "/user/profile" is data.user.profile) by the same projection
 *     agents get (sb_ctx_project); history and diffs would show the rest,
 *     so they need the whole "contexts:read".
 *
 * app_ctx_guard reads the head first, checks it, and only then starts the
 * operation (at the version it checked, for an update), so a refusal costs
 * one read and says nothing a missing context would not: another tenant's
 * id is still a plain "not found". An update whose version is the head
 * the manager holds (the usual case: the caller read or wrote it through
 * this server) is checked against that document instead, without the
 * read: it is that version's, and the update's compare-and-set fails if
 * the head has moved on since.
 */
#include <string.h>

#include "app/app_internal.h"

int app_ctx_permits(const sb_principal *p, const json_t *doc, char *scope,
                    size_t cap, sb_error *err) {
  const json_t *needed =
      json_object_get(json_object_get(doc, "metadata"), "permissions");
  const char *missing = NULL;
  if (sb_auth_permits_all(p, needed, &missing)) return 0;
  snprintf(scope, cap, "%s", missing);
  return sb_error_refuse(err, missing, "context requires scope \"%s\"",
                         missing);
}

/* The projection path of a pointer into `data`, walking data so an array
 * index reads "[n]" and a key ".key"; SB_ENOENT when the pointer leads
 * nowhere in this data, or through a key a path cannot spell. */
static int pointer_path(const json_t *data, const char *ptr, sb_buf *out) {
  sb_ctx_ptr pp;
  if (sb_ctx_ptr_parse(ptr, strlen(ptr), &pp, NULL) != 0) return SB_ENOENT;
  int rc = pp.ntokens ? 0 : SB_ENOENT;
  const json_t *node = data;
  for (size_t i = 0; rc == 0 && i < pp.ntokens; i++) {
    const sb_ctx_ptr_token *t = &pp.tokens[i];
    size_t index = 0;
    if (json_is_array(node)) {
      if (sb_ctx_ptr_index(t, &index) != 0 || index >= json_array_size(node))
        rc = SB_ENOENT;
      else if (sb_buf_printf(out, "[%zu]", index) != 0)
        rc = SB_ENOMEM;
      node = json_array_get(node, index);
    } else if (!json_is_object(node) || t->len == 0 || t->len != strlen(t->s) ||
               strpbrk(t->s, ".[]")) {
      rc = SB_ENOENT;
    } else {
      if ((i && sb_buf_append(out, ".", 1) != 0) ||
          sb_buf_append(out, t->s, t->len) != 0)
        rc = SB_ENOMEM;
      node = json_object_get(node, t->s);
      if (!node) rc = SB_ENOENT;
    }
  }
  sb_ctx_ptr_free(&pp);
  return rc;
}

/* data projected onto the pointers (new reference), or NULL. */
static json_t *project_pointers(const json_t *data, const json_t *pointers) {
  json_t *paths = json_array(), *out = NULL;
  size_t i;
  json_t *v;
  json_array_foreach(pointers, i, v) {
    sb_buf b = SB_BUF_INIT;
    if (pointer_path(data, json_string_value(v), &b) == 0)
      json_array_append_new(paths, json_stringn(b.data, b.len));
    sb_buf_free(&b);
  }
  if (paths && sb_ctx_project(data, paths, &out, NULL, NULL) != 0) out = NULL;
  json_decref(paths);
  return out;
}

int app_ctx_readable(const sb_principal *p, json_t *doc, json_t **out,
                     char *scope, size_t cap, sb_error *err) {
  json_t *pointers = NULL;
  *out = NULL;
  switch (sb_auth_read_paths(p, &pointers)) {
  case SB_AUTH_READ_ALL: *out = json_incref(doc); return 0;
  case SB_AUTH_READ_NONE:
    snprintf(scope, cap, "contexts:read");
    return sb_error_refuse(err, "contexts:read",
                           "missing scope \"contexts:read\"");
  case SB_AUTH_READ_SOME: break;
  }
  /* A shallow copy: the manager's document is shared, never modified. */
  json_t *copy = json_copy(doc);
  json_t *data = project_pointers(json_object_get(doc, "data"), pointers);
  json_decref(pointers);
  if (!copy || !data || json_object_set_new(copy, "data", data) != 0) {
    json_decref(copy);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  *out = copy;
  return 0;
}

/* ---- the guard: read the head, check it, then go ----------------------- */

typedef struct ctx_guard {
  sb_app *app;
  sb_principal *principal; /* a reference; NULL: unrestricted */
  app_ctx_op op;
  char *tenant, *id;
  int64_t version, before, from, to;
  size_t limit;
  sb_ctx_patch_kind kind;
  json_t *patch;        /* an update's (a reference) */
  json_t *requirements; /* a projected read's (a reference) */
  sb_ctx_cb cb;
  void *ud;
  char *scope;
  size_t scope_cap;
} ctx_guard;

static void guard_free(ctx_guard *g) {
  sb_principal_unref(g->principal);
  json_decref(g->patch);
  json_decref(g->requirements);
  sb_free(g->tenant);
  sb_free(g->id);
  sb_free(g);
}

static void guard_fail(ctx_guard *g, int rc, const sb_error *err,
                       int64_t version) {
  sb_ctx_result r = {.rc = rc, .err = *err, .version = version};
  g->cb(g->ud, &r);
  guard_free(g);
}

/* What a reader gets of doc: filtered, and projected by requirements as
 * sb_ctx_get_projected_async would ({"id","version","data","missing"}). */
static int reader_view(ctx_guard *g, json_t *doc, json_t **out, sb_error *err) {
  json_t *seen = NULL;
  int rc =
      app_ctx_readable(g->principal, doc, &seen, g->scope, g->scope_cap, err);
  if (rc != 0 || !g->requirements) {
    *out = seen;
    return rc;
  }
  json_t *proj = NULL, *missing = NULL;
  rc = sb_ctx_project(json_object_get(seen, "data"), g->requirements, &proj,
                      &missing, err);
  *out = rc ? NULL
            : json_pack("{sOsOsoso}", "id", json_object_get(seen, "id"),
                        "version", json_object_get(seen, "version"), "data",
                        proj, "missing", missing);
  json_decref(seen);
  if (rc == 0 && !*out) rc = sb_error_set(err, SB_ENOMEM, "out of memory");
  return rc;
}

/* What a writer gets back of the version it wrote: what it may read of it;
 * a writer who may read none of it gets the rest of the document (id,
 * version, metadata) without `data`. */
static json_t *writer_view(const ctx_guard *g, json_t *doc) {
  json_t *seen = NULL;
  char scope[32];
  sb_error err = {0};
  if (app_ctx_readable(g->principal, doc, &seen, scope, sizeof scope, &err) ==
      0)
    return seen;
  json_t *copy = json_copy(doc);
  if (copy) json_object_del(copy, "data");
  return copy;
}

/* The operation's own result: a read's document is filtered, and so is
 * the one an update answers with. */
static void guard_done(void *ud, const sb_ctx_result *res) {
  ctx_guard *g = ud;
  sb_ctx_result r = *res;
  json_t *view = NULL;
  if (res->rc == 0 && (g->op == APP_CTX_GET || g->op == APP_CTX_UPDATE)) {
    sb_error err = {0};
    int rc = 0;
    if (g->op == APP_CTX_GET)
      rc = reader_view(g, res->doc, &view, &err);
    else if (!(view = writer_view(g, res->doc)))
      rc = sb_error_set(&err, SB_ENOMEM, "out of memory");
    if (rc != 0) return guard_fail(g, rc, &err, 0);
    /* The stored text is the whole document: only for a whole view. */
    if (view != res->doc) r.text = NULL;
    r.doc = view;
  }
  g->cb(g->ud, &r);
  json_decref(view);
  guard_free(g);
}

/* The head passed: start the operation itself (an update at the version
 * checked, and only then: a later head was not checked). */
static int guard_start(ctx_guard *g, const sb_ctx_result *head, sb_error *err) {
  sb_ctx_manager *m = g->app->ctx;
  switch (g->op) {
  case APP_CTX_GET:
    return sb_ctx_get_async(m, g->tenant, g->id, g->version, guard_done, g,
                            err);
  case APP_CTX_UPDATE:
    if (g->version != head->version)
      return sb_error_set(err, SB_ECONFLICT, SB_STORE_VERSION_CONFLICT, g->id,
                          (long long)head->version, (long long)g->version);
    return sb_ctx_update_async(m, g->tenant, g->id, g->version, g->kind,
                               g->patch, guard_done, g, err);
  case APP_CTX_HISTORY:
    return sb_ctx_history_async(m, g->tenant, g->id, g->before, g->limit,
                                guard_done, g, err);
  case APP_CTX_DIFF:
    return sb_ctx_diff_versions_async(m, g->tenant, g->id, g->from, g->to,
                                      guard_done, g, err);
  case APP_CTX_CHECK: break;
  }
  return sb_error_set(err, SB_EINVAL, "unknown operation");
}

static void guard_head(void *ud, const sb_ctx_result *res) {
  ctx_guard *g = ud;
  sb_error err = {0};
  if (res->rc != 0) return guard_fail(g, res->rc, &res->err, res->version);
  int rc =
      app_ctx_permits(g->principal, res->doc, g->scope, g->scope_cap, &err);
  /* History and diffs show every path: the whole contexts:read. */
  if (rc == 0 && (g->op == APP_CTX_HISTORY || g->op == APP_CTX_DIFF) &&
      (rc = app_permit(g->principal, "contexts:read", &err)) != 0)
    snprintf(g->scope, g->scope_cap, "contexts:read");
  if (rc != 0) return guard_fail(g, rc, &err, 0);
  /* The head is a plain read's answer, and a check's. */
  if ((g->op == APP_CTX_GET && g->version == 0) || g->op == APP_CTX_CHECK)
    return guard_done(g, res);
  if ((rc = guard_start(g, res, &err)) != 0)
    guard_fail(g, rc, &err, rc == SB_ECONFLICT ? res->version : 0);
}

/* Whether JSON Patch pointer ptr (into the whole document) is one the
 * caller may read: outside `data`, or within one of its read pointers
 * (relative to `data`). */
static int patch_path_readable(const char *ptr, sb_auth_read r,
                               const json_t *pointers) {
  if (r == SB_AUTH_READ_ALL) return 1;
  if (!*ptr) return 0; /* the whole document, data with it */
  if (strncmp(ptr, "/data", 5) != 0 || (ptr[5] && ptr[5] != '/')) return 1;
  if (r == SB_AUTH_READ_NONE || !ptr[5]) return 0;
  const char *rel = ptr + 5;
  size_t i;
  const json_t *v;
  json_array_foreach(pointers, i, v) {
    const char *q = json_string_value(v);
    size_t n = q ? strlen(q) : 0;
    if (q && strncmp(rel, q, n) == 0 && (rel[n] == '\0' || rel[n] == '/'))
      return 1;
  }
  return 0;
}

/* A JSON Patch reads what it touches: copy and move read their `from`, a
 * test's outcome tells whether a guess was right, and every op fails on
 * what is or is not at its `path` (remove and replace of a path that does
 * not exist, add under a missing parent), which says whether it exists.
 * So each pointer must be one the caller may read, or a write would show
 * what its reads do not; a writer who may read less uses a merge patch,
 * which never fails on what is there. */
static int patch_reads_permitted(const app_ctx_access *a, sb_error *err) {
  if (a->op != APP_CTX_UPDATE || a->kind != SB_CTX_JSON_PATCH) return 0;
  json_t *pointers = NULL;
  sb_auth_read r = sb_auth_read_paths(a->principal, &pointers);
  int rc = 0;
  size_t i;
  json_t *op;
  json_array_foreach(r == SB_AUTH_READ_ALL ? NULL : a->patch, i, op) {
    const char *name = json_string_value(json_object_get(op, "op"));
    const char *ptr = json_string_value(json_object_get(op, "from"));
    if (!ptr || patch_path_readable(ptr, r, pointers))
      ptr = json_string_value(json_object_get(op, "path"));
    if (ptr && !patch_path_readable(ptr, r, pointers)) {
      snprintf(a->scope, a->scope_cap, "contexts:read");
      rc = sb_error_refuse(err, "contexts:read",
                           "patch[%zu]: %s reads %s, which this caller may "
                           "not read (scope \"contexts:read\" or one of its "
                           "paths; a merge patch reads nothing)",
                           i, name ? name : "(no op)", ptr);
      break;
    }
  }
  json_decref(pointers);
  return rc;
}

int app_ctx_guard(sb_app *app, const app_ctx_access *a, sb_ctx_cb cb, void *ud,
                  sb_error *err) {
  a->scope[0] = '\0';
  if (patch_reads_permitted(a, err) != 0) return SB_EPERM;
  /* Named as the caller names them: ?requirements=a,b over REST, the
   * argument over MCP. */
  if (a->requirements &&
      sb_ctx_paths_validate_as(a->requirements, "requirements", err) != 0)
    return SB_EINVAL;
  ctx_guard *g = sb_calloc(1, sizeof *g);
  if (!g) return sb_error_set(err, SB_ENOMEM, "out of memory");
  *g = (ctx_guard){
      .app = app,
      .principal =
          a->principal ? sb_principal_ref((sb_principal *)a->principal) : NULL,
      .op = a->op,
      .tenant = sb_strdup(a->tenant),
      .id = sb_strdup(a->id),
      .version = a->version,
      .before = a->before,
      .from = a->from,
      .to = a->to,
      .limit = a->limit,
      .kind = a->kind,
      .patch = json_incref(a->patch),
      .requirements = json_incref(a->requirements),
      .cb = cb,
      .ud = ud,
      .scope = a->scope,
      .scope_cap = a->scope_cap};
  if (!g->tenant || !g->id) {
    guard_free(g);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  int rc;
  const json_t *head =
      a->op == APP_CTX_UPDATE
          ? sb_ctx_head_cached(app->ctx, a->tenant, a->id, a->version)
          : NULL;
  sb_error refusal = {0};
  /* A refusal goes the way of the read, which words it. */
  if (head && app_ctx_permits(g->principal, head, g->scope, g->scope_cap,
                              &refusal) == 0)
    rc = sb_ctx_update_async(app->ctx, g->tenant, g->id, g->version, g->kind,
                             g->patch, guard_done, g, err);
  else {
    g->scope[0] = '\0';
    rc = sb_ctx_get_async(app->ctx, a->tenant, a->id, 0, guard_head, g, err);
  }
  if (rc != 0) guard_free(g);
  return rc;
}

/* ---- workflow runs on an existing context -------------------------------- */

typedef struct run_check {
  sb_app *app;
  sb_principal *principal; /* a reference; NULL: unrestricted */
  char *tenant, *workflow, *context_id;
  json_t *input;
  json_t *trace; /* a reference, or NULL */
  sb_flow_cb cb;
  void *ud;
} run_check;

static void run_check_free(run_check *rc) {
  sb_principal_unref(rc->principal);
  sb_free(rc->tenant);
  sb_free(rc->workflow);
  sb_free(rc->context_id);
  json_decref(rc->input);
  json_decref(rc->trace);
  sb_free(rc);
}

static void run_check_fail(run_check *rc, int code, const sb_error *err) {
  sb_flow_reply r = {.rc = code, .err = *err};
  rc->cb(rc->ud, &r);
  run_check_free(rc);
}

static void run_checked(void *ud, const sb_ctx_result *res) {
  run_check *rc = ud;
  sb_error err = {0};
  /* The read came back as the server stopped (inside sb_store_close,
   * after the engine is gone: read, or cancelled before it ran). */
  if (!rc->app->flow) {
    sb_error_set(&err, SB_ESTATE, "the server is stopping");
    return run_check_fail(rc, SB_ESTATE, &err);
  }
  if (res->rc == SB_EPERM) return run_check_fail(rc, res->rc, &res->err);
  if (res->rc != 0) {
    /* As the engine words a context it cannot read. */
    sb_error_set(&err, res->rc, "contextId: %s", res->err.msg);
    return run_check_fail(rc, res->rc, &err);
  }
  sb_flow_start s = {.tenant = rc->tenant,
                     .workflow = rc->workflow,
                     .context_id = rc->context_id,
                     .input = rc->input,
                     .principal = rc->principal,
                     .trace = rc->trace};
  int code = sb_flow_run_start(rc->app->flow, &s, rc->cb, rc->ud, &err);
  if (code != 0) return run_check_fail(rc, code, &err);
  run_check_free(rc);
}

int app_flow_run_start(sb_app *app, const sb_principal *p,
                       const sb_flow_start *s, sb_flow_cb cb, void *ud,
                       sb_error *err) {
  const json_t *fresh = json_object_get(s->input, "context");
  char scope[160];
  sb_flow_start mine = *s;
  mine.principal = p; /* its scopes go with the run: each step checks */
  /* A new context's permissions, like context_create's. */
  if (!s->context_id)
    return fresh && app_ctx_permits(p, fresh, scope, sizeof scope, err)
               ? SB_EPERM
               : sb_flow_run_start(app->flow, &mine, cb, ud, err);
  run_check *rc = sb_calloc(1, sizeof *rc);
  if (!rc) return sb_error_set(err, SB_ENOMEM, "out of memory");
  *rc = (run_check){.app = app,
                    .principal = sb_principal_ref((sb_principal *)p),
                    .tenant = sb_strdup(s->tenant),
                    .workflow = sb_strdup(s->workflow ? s->workflow : ""),
                    .context_id = sb_strdup(s->context_id),
                    .input = s->input ? json_deep_copy(s->input) : NULL,
                    .trace = json_incref((json_t *)s->trace),
                    .cb = cb,
                    .ud = ud};
  app_ctx_access a = {.principal = p,
                      .tenant = s->tenant,
                      .id = s->context_id,
                      .op = APP_CTX_CHECK,
                      .scope = scope,
                      .scope_cap = sizeof scope};
  int code = (!rc->tenant || !rc->workflow || !rc->context_id ||
              (s->input && !rc->input))
                 ? sb_error_set(err, SB_ENOMEM, "out of memory")
                 : app_ctx_guard(app, &a, run_checked, rc, err);
  if (code != 0) run_check_free(rc);
  return code;
}

int app_flow_step_permitted(void *ud, const json_t *scopes, const json_t *ctx,
                            sb_error *err) {
  (void)ud;
  size_t n = json_array_size(scopes);
  char **v = sb_calloc(n + 1, sizeof *v);
  if (!v) return sb_error_set(err, SB_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    v[i] = (char *)json_string_value(json_array_get(scopes, i));
  /* Only the grammar reads it: a principal of the stored scopes. */
  sb_principal p = {.kind = SB_PRINCIPAL_API_KEY,
                    .restricted = 1,
                    .scopes_len = n,
                    .scopes = v};
  char scope[160];
  int rc = app_ctx_permits(&p, ctx, scope, sizeof scope, err);
  sb_free(v);
  return rc;
}
