/* app_internal.h: what the files of src/app/ share. */
#ifndef SB_APP_INTERNAL_H
#define SB_APP_INTERNAL_H

#include "app/app.h"
#include "auth/auth.h"
#include "ctx/ctx.h"
#include "events/events.h"
#include "flow/flow.h"
#include "gateway/gateway.h"
#include "mcp/mcp.h"
#include "net/net.h"
#include "quota/quota.h"
#include "store/store.h"

typedef struct app_reloader app_reloader;

/* Authentication failures recorded in the current second, and those left
 * out since the last one recorded (audit.c). */
typedef struct app_audit_rate {
  uint64_t second;
  unsigned recorded;
  uint64_t suppressed;
} app_audit_rate;

struct sb_app {
  const sb_config *cfg;
  uv_loop_t *loop;
  app_audit_rate audit_rate;
  sb_store *store;
  sb_auth_keyring *keyring; /* API keys (HTTP only) */
  sb_ctx_manager *ctx;
  sb_mcp_server *mcp;
  sb_stdio_server *stdio;
  sb_http_server *http;
  sb_gateway *gateway; /* agents, calls, per-agent and virtual servers */
  sb_llm *llm;         /* answers agents' sampling; NULL: not configured */
  sb_events *events;   /* the bus over the event log */
  sb_flow_defs defs;   /* the workflows of the config */
  sb_flow_engine *flow;
  sb_list run_watches; /* workflow_run calls following their run
                          (flow_tools.c), answered at a graceful stop */
  sb_quota *quota;  /* per-tenant rates and calls in flight */
  uv_timer_t sweep; /* deletes expired contexts */
  int sweep_started;
  /* serve --stdio --agent: stdin is read once that agent has settled, or
   * at this timer (its timeoutMs; app.c); NULL when not waiting. */
  uv_timer_t *stdio_wait;
  const char *stdio_agent;
  /* auth.c: callers without credentials and those of the config's tokens
   * (one reference each, held here); OAuth's verifier and metadata. */
  sb_principal *anonymous;
  sb_principal **token_principals; /* parallel to cfg->tenants */
  sb_auth_jwt *jwt;                /* NULL: auth.oauth not configured */
  char *jwks_path;
  char *prm_doc; /* the protected-resource metadata, JSON */
  char *prm_url;
  uint64_t started_ms; /* sb_now_ms at the start, for /metrics */
  /* reload.c: SIGHUP's reloads (NULL until the first); it outlives the
   * app when a reload is in flight at stop. */
  app_reloader *reloader;
  /* agent_admin.c: the agents changed through the API, as the store keeps
   * them: id -> definition, or null for one removed. */
  json_t *api_agents;
  /* agent_admin.c: the ids with changes in flight, each with the agent as
   * the store keeps it (what a failed write goes back to). */
  struct app_agent_pending *agents_pending;
  int agents_stopping; /* sb_app_stop has begun: changes answer nobody */
  /* rest_runs.c: GET /v1/events streams open per tenant (tenant ->
   * integer; NULL until the first), capped as subscriptions/listen streams
   * are (limits.max_listen_streams_per_tenant). */
  json_t *event_streams;
};

/* auth.c: principals for the HTTP server's authenticate option, OAuth's
 * verifier (the JWKS read at start, installed by app_auth_reload), and
 * app_permit: 0, or SB_EPERM with err naming the missing scope
 * ("missing scope \"agents:finance\""). */
int app_auth_start(sb_app *app, sb_error *err);
void app_auth_stop(sb_app *app);
/* A reload's JWKS: the file to read (on a worker; NULL when OAuth is
 * off), then on the loop the keys read installed (taken), or, when the
 * read failed (keys NULL, read_err saying why), an error: the previous
 * keys stay. */
const char *app_auth_jwks_path(const sb_app *app);
int app_auth_reload(sb_app *app, sb_auth_jwks *keys, const sb_error *read_err,
                    sb_error *err);
void app_auth_http_options(sb_app *app, sb_http_server_options *o);
sb_principal *app_authenticate(void *ud, const char *token, const char **why);
int app_permit(const sb_principal *p, const char *permission, sb_error *err);
/* The hooks of the gateway (permit_agent) and the MCP server (authorize:
 * tools/call, resources/read, prompts/get) over app_permit: a refusal
 * answers the call. switchboard's own resources need "resources:<uri>"
 * (its info none), its prompts "prompts:<name>". */
int app_permit_agent(void *ud, sb_mcp_call *call, const char *agent);
int app_authorize(void *ud, sb_mcp_call *call, sb_mcp_item_kind kind,
                  const char *name, json_t *args);
/* 0 when the caller of an MCP call holds permission; else the call is
 * answered -31003 naming it (403 with a challenge on HTTP) and SB_EPERM
 * returned. */
int app_mcp_permit(sb_mcp_call *call, const char *permission);
/* The MCP server's item_visible: 1 if the caller may use the item (a
 * tool: agents_call and workflow_run, whose arguments decide, always). */
int app_item_visible(void *ud, sb_mcp_call *call, sb_mcp_item_kind kind,
                     const char *name);
/* The gateway's agent_visible: 1 if the caller holds "agents:<id>". */
int app_agent_visible(void *ud, sb_mcp_call *call, const char *agent);
/* 1 if p may read some of a context: contexts:read, or one of its paths. */
int app_may_read_some(const sb_principal *p);
/* REST: 0 when the caller holds permission; else the request is answered
 * 403 with WWW-Authenticate: Bearer error="insufficient_scope", scope=...
 * and SB_EPERM returned. */
int app_rest_permit(sb_http_request *req, const char *permission);
/* The same 403 for a refusal decided elsewhere (a context's permissions). */
void app_rest_refuse(sb_http_request *req, const char *scope,
                     const char *message);

/* ctx_access.c: a context's own permissions and what a caller may read.
 * app_ctx_permits: 0 if p holds every one of doc's metadata.permissions,
 * else SB_EPERM, err "context requires scope \"X\"" and X into scope.
 * app_ctx_readable: *out (new reference) is doc as p may read it: whole,
 * or with data projected onto its contexts:read:<pointer> scopes; SB_EPERM
 * (scope "contexts:read") when it may read none of it. */
int app_ctx_permits(const sb_principal *p, const json_t *doc, char *scope,
                    size_t cap, sb_error *err);
int app_ctx_readable(const sb_principal *p, json_t *doc, json_t **out,
                     char *scope, size_t cap, sb_error *err);

typedef enum app_ctx_op {
  APP_CTX_GET,     /* version (0: the head), requirements optional */
  APP_CTX_UPDATE,  /* version = the one the caller read; kind, patch */
  APP_CTX_HISTORY, /* before, limit */
  APP_CTX_DIFF,    /* from, to */
  APP_CTX_CHECK,   /* the permissions alone: the head, unfiltered */
} app_ctx_op;

/* One operation on an existing context, on behalf of principal. Strings
 * and JSON are copied or referenced; scope (cap bytes, the caller's) gets
 * the permission a refusal names. */
typedef struct app_ctx_access {
  const sb_principal *principal; /* NULL: unrestricted */
  const char *tenant, *id;
  app_ctx_op op;
  int64_t version, before, from, to;
  size_t limit;
  sb_ctx_patch_kind kind;
  json_t *patch, *requirements;
  char *scope;
  size_t scope_cap;
} app_ctx_access;

/* Read the head, refuse it unless the principal holds its
 * metadata.permissions (and, for history and diffs, the whole
 * contexts:read), then run the operation; a read's document comes back
 * filtered (app_ctx_readable) and projected by requirements. cb runs once,
 * later, as the manager's would; a refusal is rc SB_EPERM with a->scope
 * filled. Returns non-zero (err set, cb never runs) as the manager's
 * operations do. */
int app_ctx_guard(sb_app *app, const app_ctx_access *a, sb_ctx_cb cb, void *ud,
                  sb_error *err);

/* sb_flow_run_start for principal: a run on an existing context starts
 * once the caller is found to hold its metadata.permissions (a new
 * context's, input.context.metadata.permissions, likewise); a refusal is
 * SB_EPERM (err names the scope), now or in cb. */
int app_flow_run_start(sb_app *app, const sb_principal *p,
                       const sb_flow_start *s, sb_flow_cb cb, void *ud,
                       sb_error *err);
/* The same for an MCP call: its principal, and the trace context of its
 * _meta (flow_tools.c). */
int app_flow_run_start_call(sb_app *app, sb_mcp_call *call, sb_flow_start *s,
                            sb_flow_cb cb, void *ud, sb_error *err);

/* run_access.c: runs scoped per operation and per workflow ("runs:read",
 * "runs:read:<workflow>", "runs:write", "runs:write:<workflow>").
 * app_runs_permit_some: 0 if p may read (write) any run at all, asked
 * before a lookup; else SB_EPERM, err naming "runs:read" ("runs:write").
 * app_run_permits: 0 if p may read (write) this run (a run view,
 * borrowed), else SB_EPERM naming "runs:<op>:<its workflow>". */
int app_runs_permit_some(const sb_principal *p, int write, sb_error *err);
int app_run_permits(const sb_principal *p, int write, const json_t *run,
                    sb_error *err);

typedef enum app_run_op {
  APP_RUN_GET,
  APP_RUN_CANCEL,
  APP_RUN_ANSWER, /* step (optional), answer */
  APP_RUN_RESUME,
  APP_RUN_FORK, /* step */
} app_run_op;

/* One operation on a run on behalf of principal (strings and JSON copied
 * or referenced). write: a GET that needs "runs:write" (a read before an
 * answer); other operations always do. */
typedef struct app_run_access {
  const sb_principal *principal; /* NULL: unrestricted */
  const char *tenant, *id;
  app_run_op op;
  int write;
  const char *step, *reason;
  json_t *answer;
} app_run_access;

/* The operation as sb_flow_run_* would do it, once the caller is found to
 * hold its permission: the plain scope at once, a per-workflow scope after
 * reading the run (a refusal is a reply with rc SB_EPERM, err.scope the
 * permission). Returns non-zero (err set, cb never runs) as the engine's
 * operations do, SB_EPERM when it may touch no run at all. */
int app_run_guard(sb_app *app, const app_run_access *a, sb_flow_cb cb, void *ud,
                  sb_error *err);
/* sb_flow_run_list showing only the runs p may read. */
int app_run_list(sb_app *app, const sb_principal *p, const char *tenant,
                 const char *status, const char *cursor, size_t limit,
                 sb_flow_cb cb, void *ud, sb_error *err);

/* The flow engine's step_permitted: the context's metadata.permissions
 * against the scopes a run was started with (stored in the run). */
int app_flow_step_permitted(void *ud, const json_t *scopes, const json_t *ctx,
                            sb_error *err);

/* ctx_tools.c: the context_* tools and context:// resources. */
int app_ctx_tools_register(sb_app *app);
/* Called by the manager after every new version. */
void app_ctx_changed(void *ud, const char *tenant, const char *id,
                     int64_t version);

/* agent_tools.c: the agents_* admin tools over MCP. */
int app_agent_tools_register(sb_app *app);
/* The agents a list shows, from the `type` and `capability` asked (each
 * may be NULL: any); 0, or SB_EINVAL with err naming the bad one. */
int app_agents_filter(const char *type, const char *capability,
                      sb_gateway_list_filter *out, sb_error *err);

/* rest.c: /v1/contexts, and the JSON responses every REST route uses:
 * body stolen; errors are {"error":{"code","message"}}. */
int app_rest_register(sb_app *app);
void app_rest_json(sb_http_request *req, int status, json_t *body,
                   const char *const *headers);
void app_rest_error(sb_http_request *req, int status, const char *code,
                    const char *message);
/* 405 with the Allow header RFC 9110 15.5.6 requires: `allow` lists the
 * methods ("GET, POST"), `message` says so in words. */
void app_rest_not_allowed(sb_http_request *req, const char *allow,
                          const char *message);
/* A positive integer query argument; 0 if absent, -1 if malformed (not
 * all digits, or below 1). */
int64_t app_rest_query_int(sb_http_request *req, const char *key);
/* Answer 400 naming the first query parameter not in `known` (NULL-
 * terminated; NULL: the endpoint takes none) and return -1; else 0. A
 * misspelt parameter would otherwise be ignored, and the answer look
 * right while it is not what was asked for. */
int app_rest_query_known(sb_http_request *req, const char *const *known);
/* 503 busy with Retry-After: 1 (back-pressure; retry shortly). */
void app_rest_busy(sb_http_request *req, const char *message);
/* The message refusing an events cursor `since` past the tenant's newest
 * seq (GET /v1/events, events://log; flow_tools.c). */
void app_events_since_msg(int64_t since, int64_t newest, const char *what,
                          char *buf, size_t n);
/* Events after a cursor `since` (> 0) that are no longer in the log (the
 * retention trimmed them before the reader came back): 1 with [*from,
 * *to], read off a read of the log from `since` (its first event, or the
 * newest seq when it found none), else 0. Numbers have no gap otherwise. */
int app_events_trimmed(int64_t since, const sb_store_result *res,
                       int64_t *from, int64_t *to);
/* The request body as JSON (new reference), parsed by the parser /mcp
 * uses with the same limits (sb_http_request_json), or NULL after
 * answering 400 bad_json naming `what` and what was wrong. */
json_t *app_rest_body(sb_http_request *req, const char *what);
/* The request's W3C trace context headers (traceparent, tracestate,
 * baggage) as an object for an agent's _meta or a run (new), or NULL
 * when there is no valid traceparent. */
json_t *app_rest_trace(sb_http_request *req);
/* The same, for a route whose body is an object of the `known` keys
 * (NULL-terminated): anything else (another type, a key it does not
 * take, a misspelling) is answered 400 naming it, and NULL returned. */
json_t *app_rest_body_object(sb_http_request *req,
                             const char *const *known);
/* 1 if the object has a key not in `known` (NULL-terminated): `msg` then
 * reads "KEY: unknown NOUN (known: a, b)"; 0 if every key is known. */
int app_unknown_key(const json_t *obj, const char *const *known,
                    const char *noun, char *msg, size_t cap);
/* A tools/call of one of our own tools (`tools`: their definitions) whose
 * inputSchema says additionalProperties: false, with a key in its
 * arguments that the schema does not list, is answered -32602 naming it,
 * and 1 returned: a misspelt optional argument (a "requirments"
 * that would have narrowed a read) is refused, never ignored. 0: none. */
int app_tool_unknown_arg(sb_mcp_call *call, const json_t *tools,
                         const char *name, const json_t *args);

/* rest_calls.c: POST /v1/agents/call (any tenant). */
void app_rest_agent_call(sb_app *app, sb_http_request *req);

/* rest_runs.c: /v1/runs and /v1/events. */
int app_rest_runs_register(sb_app *app);

/* rest_ops.c: /healthz and /readyz (anyone), /metrics (administrators). */
int app_rest_ops_register(sb_app *app);

/* flow_tools.c: workflow_run, runs_* and events_publish over MCP. */
int app_flow_tools_register(sb_app *app);
/* A graceful stop began: each workflow_run call following its run (wait)
 * is answered with the run as it stands, rather than held to the end of
 * the grace and cut off unanswered; the run goes on at the next start. */
void app_flow_tools_drain(sb_app *app);
/* workflow_run's arguments into *s (pointers borrowed from args and the
 * call); on a bad argument the call is answered and a negative code
 * returned. */
int app_flow_start_args(sb_mcp_call *call, json_t *args, sb_flow_start *s);
/* The CallToolResult showing a run (borrowed), new reference. */
json_t *app_flow_tool_result(json_t *run, int is_error);
/* Answer a tool call with a flow error (rc, err) as the runs_* tools do:
 * an error result, -31050 when busy, the scope refusal (-31003, 403) for
 * SB_EPERM naming err->scope. */
void app_flow_reply_error(sb_mcp_call *call, int rc, const sb_error *err);
/* flow_tasks.c: workflow runs as MCP tasks (both eras). */
void app_flow_tasks_register(sb_app *app);
/* The task (mcp.h's neutral form) of a run view (borrowed); new
 * reference. */
json_t *app_task_of_run(json_t *run);

/* app.c: the config's literal secrets, for the logger's redaction. */
void app_register_log_secrets(const sb_config *cfg);

/* reload.c: sb_app_reload's worker and apply; at stop, the reload in
 * flight is detached (it frees itself when its worker is done). */
void app_reload_stop(sb_app *app);

/* quotas.c: the config's quotas (app->quota) and the admissions of the
 * MCP servers and REST routes over them. */
int app_quota_start(sb_app *app, sb_error *err);
/* SIGHUP: the quotas of a freshly loaded config (a config that did not
 * load never gets here: the old quotas stay, the reload logs why). */
int app_quota_reload(sb_app *app, const sb_config *fresh, sb_error *err);
/* The flow engine's hold_call / release_call: a workflow step's agent call
 * holds a place among its tenant's calls in flight (no token). */
int app_quota_hold_call(void *ud, const char *tenant, char *why, size_t cap);
void app_quota_release_call(void *ud, const char *tenant);
sb_mcp_admission app_quota_mcp_admission(sb_app *app);
int app_quota_http_admit(void *ud, const char *tenant, sb_http_refusal *r);
void app_quota_http_release(void *ud, const char *tenant);

/* audit.c: audit.* events and log lines. The operators' tenant (first
 * admin tenant, else the default one) takes what has no tenant. */
const char *app_audit_tenant(const sb_app *app);
/* net's on_auth_failure option (ud = the app). */
void app_audit_auth_failure(void *ud, const sb_http_auth_failure *f);
/* An administrative action by `tenant`: action "agents.register", via
 * "mcp"|"rest"|"sighup", outcome "ok"|"refused"|"failed"; target and
 * detail may be NULL. */
void app_audit_admin(sb_app *app, const char *tenant, const char *action,
                     const char *via, const char *outcome, const char *target,
                     const char *detail);
/* Its two halves, for a change that writes its audit event itself (in
 * the change's own transaction): the event's data (new reference, NULL
 * when out of memory), and the log line. */
json_t *app_audit_admin_data(const char *action, const char *via,
                             const char *outcome, const char *target,
                             const char *detail);
void app_audit_admin_log(const char *tenant, const char *action,
                         const char *via, const char *outcome,
                         const char *target, const char *detail);

/* agent_admin.c: an agent registered, replaced or removed through the
 * API: applied to the gateway at once, then written to the store, and
 * acknowledged (done) once written, or undone when the write failed. */
typedef enum app_agent_op {
  APP_AGENT_REGISTER, /* a new id (SB_ECONFLICT if taken) */
  APP_AGENT_REPLACE,  /* register, or replace the agent of that id */
  APP_AGENT_REMOVE,   /* SB_ENOENT if there is none */
} app_agent_op;
/* rc 0: kept; else undone, err saying why. id: the agent's. */
typedef void (*app_agent_done_cb)(void *ud, const char *id, int rc,
                                  const sb_error *err);
typedef struct app_agent_change_args {
  app_agent_op op;
  const char *tenant;       /* the administrator's */
  const char *origin;       /* "mcp" or "rest", for the audit trail */
  const json_t *definition; /* register, replace (borrowed) */
  const char *id;           /* remove */
  app_agent_done_cb done;
  void *ud;
} app_agent_change_args;
typedef struct app_agent_change app_agent_change;
/* The change, in flight; NULL when refused at once (err says why; nothing
 * changed and done never runs). Every outcome goes to the audit trail. */
app_agent_change *app_agent_change_start(sb_app *app,
                                         const app_agent_change_args *a,
                                         sb_error *err);
/* The caller is gone: done will not run (the change still completes). */
void app_agent_change_forget(app_agent_change *ch);
/* At start, after the config's agents: the store's rows applied. */
int app_agents_apply_stored(sb_app *app, sb_error *err);

/* rest_agents.c: /v1/agents (admin). */
int app_rest_agents_register(sb_app *app);

#endif
