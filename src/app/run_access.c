/* run_access.c: who may read and act on which workflow runs.
 *
 * Runs are scoped per operation and per workflow: "runs:read" reads every
 * run of the tenant, "runs:read:<workflow>" only the runs of that
 * workflow; "runs:write" and "runs:write:<workflow>" likewise act on them
 * (cancel, answer, resume, fork; MCP tasks/cancel and tasks/update).
 * "runs" grants both, as the grammar says.
 *
 * Every surface (REST /v1/runs, the runs_* tools, the tasks/ methods)
 * asks in two steps:
 *
 *   - before any lookup, whether the caller may read (write) any run at
 *     all (sb_auth_permits_some): a refusal names "runs:read" and says
 *     nothing of the run;
 *   - a caller holding only per-workflow scopes then has the run read
 *     first (within its tenant: another tenant's run is a plain "not
 *     found", as a missing one), and the operation goes on only if it
 *     holds the permission of the run's workflow; a refusal names it
 *     ("runs:write:quote").
 *
 * A caller holding the plain scope pays no extra read. Lists are filtered:
 * a page holds only the runs the caller may read (so it may be shorter
 * than the limit; nextCursor still leads on).
 */
#include <string.h>

#include "app/app_internal.h"

static const char *op_scope(int write) {
  return write ? "runs:write" : "runs:read";
}

int app_runs_permit_some(const sb_principal *p, int write, sb_error *err) {
  const char *perm = op_scope(write);
  if (sb_auth_permits_some(p, perm)) return 0;
  return sb_error_refuse(err, perm, "missing scope \"%s\"", perm);
}

int app_run_permits(const sb_principal *p, int write, const json_t *run,
                    sb_error *err) {
  const char *wf = json_string_value(json_object_get(run, "workflow"));
  char perm[200];
  /* A name too long to spell: only the plain scope grants it. */
  if ((size_t)snprintf(perm, sizeof perm, "%s:%s", op_scope(write),
                       wf ? wf : "") >= sizeof perm)
    snprintf(perm, sizeof perm, "%s", op_scope(write));
  if (sb_auth_permits(p, perm)) return 0;
  return sb_error_refuse(err, perm, "missing scope \"%s\"", perm);
}

/* ---- one run: read it, check its workflow, then go ---------------------- */

typedef struct run_guard {
  sb_app *app;
  sb_principal *principal; /* a reference; NULL: unrestricted */
  app_run_op op;
  int write;
  char *tenant, *id, *step, *reason;
  json_t *answer;
  sb_flow_cb cb;
  void *ud;
} run_guard;

static void guard_free(run_guard *g) {
  sb_principal_unref(g->principal);
  sb_free(g->tenant);
  sb_free(g->id);
  sb_free(g->step);
  sb_free(g->reason);
  json_decref(g->answer);
  sb_free(g);
}

/* Start the operation itself; cb answers it. */
static int run_op(sb_app *app, app_run_op op, const char *tenant,
                  const char *id, const char *step, const char *reason,
                  json_t *answer, sb_flow_cb cb, void *ud, sb_error *err) {
  sb_flow_engine *e = app->flow;
  switch (op) {
  case APP_RUN_GET: return sb_flow_run_get(e, tenant, id, cb, ud, err);
  case APP_RUN_CANCEL:
    return sb_flow_run_cancel(e, tenant, id, reason, cb, ud, err);
  case APP_RUN_ANSWER:
    return sb_flow_run_answer(e, tenant, id, step, answer, cb, ud, err);
  case APP_RUN_RESUME: return sb_flow_run_resume(e, tenant, id, cb, ud, err);
  case APP_RUN_FORK: return sb_flow_run_fork(e, tenant, id, step, cb, ud, err);
  }
  return sb_error_set(err, SB_EINVAL, "unknown operation");
}

static void guard_read(void *ud, const sb_flow_reply *r) {
  run_guard *g = ud;
  sb_flow_reply refusal = {0};
  if (r->rc != 0) {
    g->cb(g->ud, r); /* missing, or another tenant's: "not found" */
  } else if (app_run_permits(g->principal, g->write, r->run, &refusal.err) !=
             0) {
    refusal.rc = SB_EPERM;
    g->cb(g->ud, &refusal);
  } else if (g->op == APP_RUN_GET) {
    g->cb(g->ud, r); /* the read is the answer */
  } else {
    sb_error err = {0};
    int rc = run_op(g->app, g->op, g->tenant, g->id, g->step, g->reason,
                    g->answer, g->cb, g->ud, &err);
    if (rc != 0) {
      sb_flow_reply failed = {.rc = rc, .err = err};
      g->cb(g->ud, &failed);
    }
  }
  guard_free(g);
}

int app_run_guard(sb_app *app, const app_run_access *a, sb_flow_cb cb, void *ud,
                  sb_error *err) {
  int write = a->op != APP_RUN_GET || a->write;
  int rc = app_runs_permit_some(a->principal, write, err);
  if (rc != 0) return rc;
  if (sb_auth_permits(a->principal, op_scope(write)))
    return run_op(app, a->op, a->tenant, a->id, a->step, a->reason, a->answer,
                  cb, ud, err);
  run_guard *g = sb_calloc(1, sizeof *g);
  if (!g) return sb_error_set(err, SB_ENOMEM, "out of memory");
  *g = (run_guard){
      .app = app,
      .principal =
          a->principal ? sb_principal_ref((sb_principal *)a->principal) : NULL,
      .op = a->op,
      .write = write,
      .tenant = sb_strdup(a->tenant),
      .id = sb_strdup(a->id),
      .step = a->step ? sb_strdup(a->step) : NULL,
      .reason = a->reason ? sb_strdup(a->reason) : NULL,
      .answer = json_incref(a->answer),
      .cb = cb,
      .ud = ud};
  if (!g->tenant || !g->id || (a->step && !g->step) ||
      (a->reason && !g->reason)) {
    guard_free(g);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  rc = sb_flow_run_get(app->flow, a->tenant, a->id, guard_read, g, err);
  if (rc != 0) guard_free(g);
  return rc;
}

/* ---- lists: only the runs the caller may read ---------------------------- */

typedef struct list_guard {
  sb_principal *principal;
  sb_flow_cb cb;
  void *ud;
} list_guard;

static void list_read(void *ud, const sb_flow_reply *r) {
  list_guard *g = ud;
  json_t *runs = json_object_get(r->run, "runs");
  for (size_t i = json_array_size(runs); r->rc == 0 && i-- > 0;)
    if (app_run_permits(g->principal, 0, json_array_get(runs, i), NULL) != 0)
      json_array_remove(runs, i);
  g->cb(g->ud, r);
  sb_principal_unref(g->principal);
  sb_free(g);
}

int app_run_list(sb_app *app, const sb_principal *p, const char *tenant,
                 const char *status, const char *cursor, size_t limit,
                 sb_flow_cb cb, void *ud, sb_error *err) {
  int rc = app_runs_permit_some(p, 0, err);
  if (rc != 0) return rc;
  if (sb_auth_permits(p, "runs:read"))
    return sb_flow_run_list(app->flow, tenant, status, cursor, limit, cb, ud,
                            err);
  list_guard *g = sb_calloc(1, sizeof *g);
  if (!g) return sb_error_set(err, SB_ENOMEM, "out of memory");
  *g = (list_guard){
      .principal = sb_principal_ref((sb_principal *)p), .cb = cb, .ud = ud};
  rc = sb_flow_run_list(app->flow, tenant, status, cursor, limit, list_read, g,
                        err);
  if (rc != 0) {
    sb_principal_unref(g->principal);
    sb_free(g);
  }
  return rc;
}
