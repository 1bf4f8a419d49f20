/* mcp: the Model Context Protocol, server side, dual-era.
 *
 * A transport (net/) parses bytes into JSON and hands each message to
 * sb_mcp_server_dispatch together with two things it owns:
 *
 *   - an sb_mcp_out: where messages that belong to this request go
 *     (progress, log messages, the final response). For stdio it is stdout;
 *     for a Streamable HTTP POST it is that POST's response (JSON or SSE).
 *   - an sb_mcp_session, or NULL: legacy (initialize-based) protocol state.
 *     stdio has one per process; HTTP has one per Mcp-Session-Id. Modern
 *     (2026-07-28) requests carry everything in _meta and need none.
 *
 * Each request becomes an sb_mcp_call. A handler answers it now or later
 * with sb_mcp_call_reply / sb_mcp_call_fail, and may emit progress and log
 * messages in between. When the transport's output goes away (client closed
 * the stream) it calls sb_mcp_out_detach, which cancels every call still
 * writing there; notifications/cancelled does the same for one call.
 *
 * The era is chosen per request (see versioning.mdx of 2026-07-28):
 * `initialize` selects legacy semantics for the session; a request whose
 * params._meta carries io.modelcontextprotocol/protocolVersion is served
 * statelessly under the modern revision.
 */
#ifndef SB_MCP_H
#define SB_MCP_H

#include <jansson.h>
#include <uv.h>

#include "core/core.h"
#include "rpc/rpc.h"

#define SB_MCP_MODERN_VERSION "2026-07-28"
#define SB_MCP_META_PROTOCOL_VERSION "io.modelcontextprotocol/protocolVersion"
#define SB_MCP_META_CLIENT_INFO "io.modelcontextprotocol/clientInfo"
#define SB_MCP_META_CLIENT_CAPS "io.modelcontextprotocol/clientCapabilities"
#define SB_MCP_META_LOG_LEVEL "io.modelcontextprotocol/logLevel"
#define SB_MCP_META_SUBSCRIPTION_ID "io.modelcontextprotocol/subscriptionId"
#define SB_MCP_META_SERVER_INFO "io.modelcontextprotocol/serverInfo"
/* The tasks extension (2026-07-28) and the tasks utility (2025-11-25). */
#define SB_MCP_EXT_TASKS "io.modelcontextprotocol/tasks"
#define SB_MCP_META_RELATED_TASK "io.modelcontextprotocol/related-task"

typedef struct sb_mcp_server sb_mcp_server;
typedef struct sb_mcp_session sb_mcp_session;
typedef struct sb_mcp_call sb_mcp_call;
typedef struct sb_mcp_out sb_mcp_out;
typedef struct sb_mcp_sub_wait sb_mcp_sub_wait;

/* ---- protocol versions ------------------------------------------------ */

/* All versions served, newest first, NULL-terminated. */
extern const char *const sb_mcp_supported_versions[];
/* 1 if version is one we serve. */
int sb_mcp_version_supported(const char *version);
/* 1 if version is a modern (per-request _meta) revision. */
int sb_mcp_version_is_modern(const char *version);
/* 1 if the revision allows JSON-RPC batches (only 2025-03-26). */
int sb_mcp_version_allows_batch(const char *version);
/* JSON array of supported versions (new reference). */
json_t *sb_mcp_supported_versions_json(void);

/* ---- transport output ------------------------------------------------- */

/* Filled in by the transport; the mcp module only calls `write` and keeps
 * its own bookkeeping in the private fields. */
struct sb_mcp_out {
  /* Deliver one JSON-RPC message (borrowed). `final` is 1 on the response
   * that ends the request this out was created for (HTTP POST); stdio
   * ignores it. A final msg may be NULL: the request ends with nothing to
   * send (a batch whose every request was cancelled; HTTP: 202, or the
   * SSE stream ends). Returns 0, or a negative SB_E* code if the peer is
   * gone.
   * A call is unlinked from its out before its final message is written,
   * so the transport may release the out inside write(final=1). */
  int (*write)(sb_mcp_out *out, json_t *msg, int final);
  void *data; /* transport's own pointer */
  /* The authenticated caller's tenant (borrowed, must outlive the out's
   * calls); NULL means the configured default tenant. Never taken from a
   * request body. */
  const char *tenant;
  /* Who the caller is (borrowed from the transport, which keeps it as
   * long as the out); NULL: no authentication, unrestricted. */
  const sb_principal *principal;
  /* Set by mcp/ when a call answered on this out was refused for a scope
   * the caller lacks (sb_mcp_call_fail_scope): the scope, else "". A C
   * value, never read from a message (an agent's -31003 is just an
   * answer): HTTP answers such a final message 403 with an
   * insufficient_scope challenge; stdio ignores it. */
  char refused_scope[160];
  /* The request's HTTP header of that name (any case), asked with `data`;
   * NULL when the transport has no headers (stdio, legacy sessions). */
  const char *(*header)(void *data, const char *name);
  /* private to mcp/ */
  sb_list calls_; /* in-flight calls writing here, newest first */
};

/* The transport's output is going away: cancel every call still writing to
 * it (handlers get their cancel callback; nothing more is written). */
void sb_mcp_out_detach(sb_mcp_out *out);
/* 1 while some call still writes to out (not answered, not cancelled). */
int sb_mcp_out_busy(const sb_mcp_out *out);

/* ---- server ----------------------------------------------------------- */

/* What a server accepts and how it pages and caches; 0 (or NULL) in a
 * field means its default. */
typedef struct sb_mcp_limits {
  size_t max_message_bytes; /* one JSON-RPC message; default 4 MiB */
  int max_json_depth;       /* nesting refused before a tree is built;
                               default 64 */
  int page_size;            /* items per list page; default 50 */
  long cache_ttl_ms;        /* ttlMs on cacheable results (used as given:
                               0 is "do not cache") */
  int max_listen_uris;      /* resourceSubscriptions in one
                               subscriptions/listen; default 1000 */
  int max_listen_streams_per_tenant; /* subscriptions/listen streams open
                               at once per tenant; default 100 */
} sb_mcp_limits;

/* Admission of requests (quotas): asked for every request before it
 * becomes a call. A refusal is answered with SB_RPC_QUOTA_EXCEEDED, the
 * message and data (stolen; may be NULL). An admitted request that sets
 * *held is released once, with the same tenant, when its call ends
 * (answered or cancelled). */
typedef struct sb_mcp_refusal {
  char message[256];
  json_t *data;
} sb_mcp_refusal;

typedef struct sb_mcp_admission {
  /* 0: admitted; else refused, *r filled. */
  int (*admit)(void *ud, const char *tenant, const char *method, int *held,
               sb_mcp_refusal *r);
  void (*release)(void *ud, const char *tenant);
  void *ud;
} sb_mcp_admission;

/* What a list item or a request names. */
typedef enum sb_mcp_item_kind {
  SB_MCP_ITEM_TOOL,
  SB_MCP_ITEM_RESOURCE,
  SB_MCP_ITEM_TEMPLATE,
  SB_MCP_ITEM_PROMPT,
} sb_mcp_item_kind;

typedef struct sb_mcp_server_options {
  sb_mcp_limits limits;
  /* The tenant of callers that present no credentials (stdio); copied;
   * NULL = "default". */
  const char *default_tenant;
  uv_loop_t *loop;  /* timers for built-in tools */
  const char *name; /* serverInfo.name, default "switchboard" */
  const char *instructions;
  /* A server of providers only: no built-in tools, resources, prompts
   * (the per-agent and virtual servers). */
  int no_builtins;
  /* The capabilities announced by server/discover and initialize (new
   * reference), asked each time; NULL = the built-in set. */
  json_t *(*capabilities)(void *ud);
  void *capabilities_ud;
  sb_mcp_admission admission; /* admit NULL: every request is admitted */
  /* Asked before a tools/call, resources/read or prompts/get reaches a
   * provider (or a task): name is the tool's, the URI, the prompt's. 0 to
   * let it through, or non-zero once it has refused the request (answered
   * it, with sb_mcp_call_fail_scope for a missing scope). NULL: every
   * request may go. */
  int (*authorize)(void *ud, sb_mcp_call *call, sb_mcp_item_kind kind,
                   const char *name, json_t *args);
  /* Asked for each item of tools/list, resources/list (the URI),
   * resources/templates/list (the uriTemplate) and prompts/list
   * (authorize_ud): 1 to list it for this caller. A list asked by a
   * restricted caller (sb_principal.restricted) is private (cacheScope).
   * NULL: every item is listed. */
  int (*item_visible)(void *ud, sb_mcp_call *call, sb_mcp_item_kind kind,
                      const char *name);
  void *authorize_ud;
} sb_mcp_server_options;

sb_mcp_server *sb_mcp_server_new(const sb_mcp_server_options *opts);
/* Cancels every in-flight call, ends listen subscriptions gracefully. */
void sb_mcp_server_free(sb_mcp_server *srv);
/* End every modern subscriptions/listen gracefully, as the 2026-07-28
 * subscriptions pattern asks of a server that ends them itself (a
 * shutdown): a complete result carrying the subscription id, then the
 * stream closes. sb_mcp_server_free does it too. */
void sb_mcp_server_end_listens(sb_mcp_server *srv);
/* Modern subscriptions/listen streams open now. */
size_t sb_mcp_server_listens(const sb_mcp_server *srv);
/* The limits in force (defaults filled in). */
const sb_mcp_limits *sb_mcp_server_limits(const sb_mcp_server *srv);

/* Dispatch one parsed message (object or batch array, borrowed). Responses
 * and notifications go to `out`. `session` may be NULL (HTTP without a
 * session: only modern requests and legacy initialize are accepted). */
void sb_mcp_server_dispatch(sb_mcp_server *srv, sb_mcp_session *session,
                            sb_mcp_out *out, json_t *msg);

/* Parse raw bytes with the configured limits and dispatch; a parse error is
 * answered on `out` with id null. */
void sb_mcp_server_dispatch_bytes(sb_mcp_server *srv, sb_mcp_session *session,
                                  sb_mcp_out *out, const char *data,
                                  size_t len);

/* Broadcast change notifications to legacy sessions and modern
 * subscriptions/listen streams that asked for them. kind is "tools",
 * "resources" or "prompts". */
void sb_mcp_server_list_changed(sb_mcp_server *srv, const char *kind);
void sb_mcp_server_resource_updated(sb_mcp_server *srv, const char *uri);
/* The same, but only to subscribers of `tenant` (tenant-owned resources
 * such as contexts: other tenants must not even learn the URI exists). */
void sb_mcp_server_resource_updated_for(sb_mcp_server *srv, const char *tenant,
                                        const char *uri);
/* A list_changed only to `tenant`'s sessions and streams (a list holding
 * what one tenant owns, such as its notes). */
void sb_mcp_server_list_changed_for(sb_mcp_server *srv, const char *tenant,
                                    const char *kind);
/* A log message from elsewhere (an agent's notifications/message params,
 * borrowed: level, logger, data) to every legacy session whose
 * logging/setLevel lets it through. Modern clients get log messages only
 * inside their requests: see sb_mcp_call_forward_log. */
void sb_mcp_server_forward_log(sb_mcp_server *srv, json_t *params);

/* ---- providers: where tools, resources and prompts come from ----------
 * The server lists and routes to providers in the order they were added;
 * the built-in set is always first. Every callback is optional. List
 * callbacks append items (new references) to the array they are given; the
 * server paginates the concatenation. Routing callbacks return 1 when the
 * name/URI is theirs — they then answer the call, now or later — and 0 to
 * let the next provider try. */
typedef struct sb_mcp_provider {
  const char *name; /* for logs */
  void *ud;
  void (*list_tools)(void *ud, sb_mcp_call *call, json_t *tools);
  int (*call_tool)(void *ud, sb_mcp_call *call, const char *name,
                   json_t *arguments);
  void (*list_resources)(void *ud, sb_mcp_call *call, json_t *resources);
  void (*list_templates)(void *ud, sb_mcp_call *call, json_t *templates);
  int (*read_resource)(void *ud, sb_mcp_call *call, const char *uri);
  void (*list_prompts)(void *ud, sb_mcp_call *call, json_t *prompts);
  int (*get_prompt)(void *ud, sb_mcp_call *call, const char *name,
                    json_t *arguments);
  /* completion/complete: ref and argument as in the request */
  int (*complete)(void *ud, sb_mcp_call *call, json_t *ref, json_t *argument);
  /* A client subscribed to `uri` (on = 1: legacy resources/subscribe, or a
   * modern subscriptions/listen naming it) or no longer is (on = 0:
   * unsubscribe, session or listen gone). Called once per subscriber.
   * With on = 1, `wait` holds the client's acknowledgement: a provider
   * whose subscription takes effect later (at an agent) takes a hold with
   * sb_mcp_sub_wait_hold and releases it with sb_mcp_sub_wait_done once
   * updates will flow, so none is missed after the client was told yes. */
  void (*subscribe)(void *ud, const char *uri, int on, sb_mcp_sub_wait *wait);
  /* Release ud when the server is freed (after every call has ended). */
  void (*destroy)(void *ud);
  /* Its lists change at run time (agents connecting, crashing): list
   * results then carry ttlMs 0, so modern clients re-fetch instead of
   * caching for cache.ttl_ms. */
  int volatile_lists;
} sb_mcp_provider;

/* Hold a client's subscription acknowledgement (w may be NULL: nothing to
 * hold; returned as given), and release one hold: the answer to
 * resources/subscribe, or a listen's notifications/subscriptions/
 * acknowledged, goes out when the last hold is released (never, if the
 * client has gone meanwhile). */
sb_mcp_sub_wait *sb_mcp_sub_wait_hold(sb_mcp_sub_wait *w);
void sb_mcp_sub_wait_done(sb_mcp_sub_wait *w);
/* Release one hold as failed: the subscription is not in effect at this
 * provider (an agent refused it, or did not acknowledge it in time). When
 * the last hold goes the client's request is answered with this error
 * (the first failure's; data stolen, may be NULL) and its subscriptions
 * are dropped again at every provider: resources/subscribe is undone, a
 * listen ends. */
void sb_mcp_sub_wait_fail(sb_mcp_sub_wait *w, int code, const char *message,
                          json_t *data);

/* Add a provider (copied). Returns 0 or SB_ENOMEM. */
int sb_mcp_server_add_provider(sb_mcp_server *srv, const sb_mcp_provider *p);

/* ---- tasks: tool calls answered with a durable task handle -------------
 * Two revisions, one provider (tasks.c does the protocol of both):
 *
 *   2026-07-28, the extension io.modelcontextprotocol/tasks (announced in
 *   server/discover): a client that puts the extension in a tools/call's
 *   _meta client capabilities may get a CreateTaskResult (resultType
 *   "task") instead of the CallToolResult; it polls tasks/get (the task
 *   with result, error or inputRequests inlined), answers inputRequests
 *   with tasks/update and stops the task with tasks/cancel (both answered
 *   with an empty acknowledgement).
 *
 *   2025-11-25, the tasks utility (capability `tasks` in initialize, and
 *   execution.taskSupport "optional" on the task tools in tools/list): a
 *   tools/call with params.task gets {task}; tasks/get (the task alone),
 *   tasks/result (blocks until the task ends; questions go to the client
 *   as requests carrying related-task _meta), tasks/list, tasks/cancel
 *   (the cancelled task; -32602 for a task that had already ended).
 *
 * The provider speaks one neutral task object, whatever the era:
 *   {taskId, status: working | input_required | completed | failed |
 *    cancelled, statusMessage?, createdAt, lastUpdatedAt (ISO 8601),
 *    ttlMs (integer, or null: kept without limit), pollIntervalMs?,
 *    inputRequests? {key: {method, params}} (input_required),
 *    result? (the CallToolResult, completed), error? ({code, message,
 *    data?}: a JSON-RPC error, failed)}
 * with the 2026-07-28 meaning of the statuses: a tool result with isError
 * is "completed". tasks.c renames and regroups the fields for 2025-11-25
 * (ttl, pollInterval, "failed" for a result with isError, the result only
 * through tasks/result).
 *
 * Every callback answers the call it is given, now or later, with the
 * helpers below (or sb_mcp_call_fail). Tasks belong to the caller's tenant
 * (sb_mcp_call_tenant): another tenant's task is an unknown task. */
typedef struct sb_mcp_task_provider {
  void *ud;
  /* NULL-terminated names of the tools that run as tasks. */
  const char *const *tools;
  /* tools/call of one of them from a client that accepts a task: create
   * the task durably, then answer with sb_mcp_call_reply_task (or answer
   * as a plain tools/call would, e.g. with an error result). */
  void (*call_tool)(void *ud, sb_mcp_call *call, const char *name,
                    json_t *arguments);
  /* tasks/get; and tasks/cancel: reply with the task as it is after the
   * cancellation, or sb_mcp_call_task_cancel_refused if it had ended. */
  void (*get)(void *ud, sb_mcp_call *call, const char *task_id);
  void (*cancel)(void *ud, sb_mcp_call *call, const char *task_id);
  /* tasks/update: responses (borrowed) keyed like the inputRequests;
   * acknowledge with sb_mcp_call_reply(call, json_object()). */
  void (*update)(void *ud, sb_mcp_call *call, const char *task_id,
                 json_t *input_responses);
  /* tasks/result (2025-11-25): once the task has ended, reply with what
   * the tools/call would have answered (sb_mcp_call_reply / _fail; the
   * related-task _meta is added here); meanwhile its questions go to the
   * client with sb_mcp_call_ask_client. */
  void (*result)(void *ud, sb_mcp_call *call, const char *task_id);
  /* tasks/list (2025-11-25): cursor NULL from the start; reply with
   * sb_mcp_call_reply_tasks. */
  void (*list)(void *ud, sb_mcp_call *call, const char *cursor);
} sb_mcp_task_provider;

/* Serve tasks through p (copied; one provider per server). */
void sb_mcp_server_set_task_provider(sb_mcp_server *srv,
                                     const sb_mcp_task_provider *p);
/* Answer with a task (neutral form, stolen), shaped for the call's method
 * and era: CreateTaskResult for tools/call, the task for tasks/get and
 * 2025-11-25 tasks/cancel, an empty acknowledgement for 2026-07-28
 * tasks/cancel. */
void sb_mcp_call_reply_task(sb_mcp_call *call, json_t *task);
/* tasks/list: the tasks (array of neutral tasks, stolen) and the cursor of
 * the next page (NULL: the last page). */
void sb_mcp_call_reply_tasks(sb_mcp_call *call, json_t *tasks,
                             const char *next_cursor);
/* -32602 "Failed to retrieve task: Task not found". */
void sb_mcp_call_fail_task_unknown(sb_mcp_call *call);
/* tasks/cancel of a task that had already ended (task stolen): -32602
 * under 2025-11-25, the empty acknowledgement under 2026-07-28 (there
 * cancellation is cooperative and may end in another status). */
void sb_mcp_call_task_cancel_refused(sb_mcp_call *call, json_t *task);

/* ---- era classification (used by transports for HTTP rules) ----------- */

typedef enum sb_mcp_era {
  SB_MCP_ERA_NONE = 0, /* no _meta version and not initialize */
  SB_MCP_ERA_LEGACY,   /* initialize, or a request in a legacy session */
  SB_MCP_ERA_MODERN,   /* _meta carries a protocol version */
} sb_mcp_era;

/* Era of one message object by its own content: MODERN if params._meta has
 * a protocolVersion, LEGACY for initialize, NONE otherwise. *version (may
 * be NULL) is set to the _meta version string (borrowed) if present. */
sb_mcp_era sb_mcp_message_era(json_t *msg, const char **version);

/* Streamable HTTP header rules of 2026-07-28 for one modern request:
 * MCP-Protocol-Version must equal _meta's version, Mcp-Method the method,
 * Mcp-Name params.name/params.uri, or params.taskId for tasks/get, update
 * and cancel (base64 sentinel decoded). NULL means the
 * header was absent. Returns 0 or SB_RPC_HEADER_MISMATCH with err naming the
 * header. */
int sb_mcp_check_http_headers(json_t *msg, const char *protocol_version,
                              const char *mcp_method, const char *mcp_name,
                              sb_error *err);

/* The OpenTelemetry trace context of a request's _meta (traceparent, and
 * with it tracestate and baggage), each in its W3C format, as a new
 * object to hand on to the agent a call reaches; NULL when there is no
 * valid traceparent. Values not in their format are left out. */
json_t *sb_mcp_trace_context(const json_t *meta);

/* What a subscriptions/listen can get from a peer whose capabilities are
 * caps (borrowed): {"toolsListChanged": true, ...} for each kind whose
 * listChanged they announce (a new object; NULL out of memory), and in
 * *subscribe whether they announce resources.subscribe. The server's
 * acknowledgment and the gateway's listens to its agents both ask it. */
json_t *sb_mcp_listen_offered(const json_t *caps, int *subscribe);

/* A header value as 2026-07-28 sends Mcp-Name and Mcp-Param-*: as it is
 * when it is plain header text, else `=?base64?<UTF-8 as base64>?=`; and
 * back (NULL when the base64 or its UTF-8 is broken, or a plain value
 * holds anything but visible ASCII, space and tab). New strings, NULL out of
 * memory. */
char *sb_mcp_header_encode(const char *value);
char *sb_mcp_header_decode(const char *value);

/* Tool parameters mirrored into HTTP headers (2026-07-28: a property of
 * a tool's inputSchema marked "x-mcp-header": "Name" goes with each
 * tools/call over HTTP as Mcp-Param-Name).
 *   _check: 0 if the declarations keep the rules (a non-empty token, on a
 *     string, integer or boolean property reached from the root through
 *     `properties` alone, unique without regard to case), else SB_EINVAL
 *     with err naming the property: such a tool is not to be served.
 *   _declared: 1 if the schema declares any.
 *   _for: the headers a client sends for these arguments, {"Mcp-Param-
 *     Name": "encoded value"} (new), or NULL when there are none (a value
 *     absent or null has no header).
 *   _verify: what a server checks: each header present and equal to the
 *     arguments' value (integers compared as numbers), 0 or
 *     SB_RPC_HEADER_MISMATCH with err naming the header. */
typedef const char *(*sb_mcp_header_lookup)(void *ud, const char *name);
int sb_mcp_tool_headers_check(const json_t *input_schema, sb_error *err);
int sb_mcp_tool_headers_declared(const json_t *input_schema);
json_t *sb_mcp_tool_headers_for(const json_t *input_schema,
                                const json_t *arguments);
int sb_mcp_tool_headers_verify(const json_t *input_schema,
                               const json_t *arguments,
                               sb_mcp_header_lookup lookup, void *ud,
                               sb_error *err);
/* _verify for a tools/call that came over HTTP with headers (a no-op for
 * others): 0 to go on, or 1 once the call has been answered -32020 (HTTP
 * 400) naming the header. */
int sb_mcp_call_check_tool_headers(sb_mcp_call *call,
                                   const json_t *input_schema);

/* HTTP status for the final message of a modern POST: 200 for results;
 * for errors 400 (parse, invalid request, missing _meta fields, header
 * mismatch, missing capability, unsupported version), 404 (method not
 * found), else 200 (e.g. an unknown tool is a -32602 answered with 200). */
int sb_mcp_http_status(json_t *final_msg);

/* ---- sessions (legacy era) -------------------------------------------- */

/* A new, uninitialised session. notify_out receives server-initiated
 * messages not tied to a request (list_changed, resources/updated, log
 * messages); it may be NULL and set later. The session id is minted from
 * the CSPRNG. Caller frees with sb_mcp_session_free. */
sb_mcp_session *sb_mcp_session_new(sb_mcp_server *srv, sb_mcp_out *notify_out);
/* Cancels the session's calls and forgets its subscriptions. */
void sb_mcp_session_free(sb_mcp_session *s);
const char *sb_mcp_session_id(const sb_mcp_session *s);
/* 1 once initialize succeeded. */
int sb_mcp_session_initialized(const sb_mcp_session *s);
/* Negotiated legacy version, or NULL before initialize. */
const char *sb_mcp_session_version(const sb_mcp_session *s);
void sb_mcp_session_set_notify_out(sb_mcp_session *s, sb_mcp_out *out);

/* ---- calls (for tool/resource/prompt handlers) ------------------------ */

json_t *sb_mcp_call_params(const sb_mcp_call *call); /* borrowed object */
json_t *sb_mcp_call_id(const sb_mcp_call *call);     /* borrowed */
const char *sb_mcp_call_method(const sb_mcp_call *call);
int sb_mcp_call_is_modern(const sb_mcp_call *call);
const char *sb_mcp_call_version(const sb_mcp_call *call);
/* Client capabilities in force for this call (borrowed, never NULL). */
json_t *sb_mcp_call_client_caps(const sb_mcp_call *call);
sb_mcp_server *sb_mcp_call_server(const sb_mcp_call *call);
uv_loop_t *sb_mcp_call_loop(const sb_mcp_call *call);
/* The caller's tenant: the transport's, else the configured default. */
const char *sb_mcp_call_tenant(const sb_mcp_call *call);
/* The caller as the transport authenticated it (borrowed: valid while the
 * call is; take a reference with sb_principal_ref to keep it longer), or
 * NULL: no authentication (stdio), unrestricted. */
const sb_principal *sb_mcp_call_principal(const sb_mcp_call *call);
/* 1 if the client declared capability `name` (e.g. "elicitation"). */
int sb_mcp_call_has_capability(const sb_mcp_call *call, const char *name);

/* notifications/progress if the request carried a progressToken; total < 0
 * and message NULL omit those fields. */
void sb_mcp_call_progress(sb_mcp_call *call, double progress, double total,
                          const char *message);
/* notifications/message if level passes the call's log level (modern
 * _meta logLevel, or the session's logging/setLevel). data is stolen. */
void sb_mcp_call_log(sb_mcp_call *call, sb_log_level level, const char *logger,
                     json_t *data);

/* The same for a notifications/message params object from an agent
 * (borrowed): sent if its level passes the call's. */
void sb_mcp_call_forward_log(sb_mcp_call *call, json_t *params);
/* The call's log level name ("debug".."emergency"), NULL when the client
 * asked for none. */
const char *sb_mcp_call_log_level(const sb_mcp_call *call);
/* The client's progressToken, or NULL (borrowed). */
json_t *sb_mcp_call_progress_token(const sb_mcp_call *call);

/* Finish the call. `result` is stolen; resultType (modern) is added here.
 * The call is freed: the handler must not touch it afterwards. */
void sb_mcp_call_reply(sb_mcp_call *call, json_t *result);
void sb_mcp_call_fail(sb_mcp_call *call, int code, const char *message,
                      json_t *data);

/* Ask the client that made this call a question of its own (legacy
 * clients only: sampling/createMessage, elicitation/create, roots/list);
 * cb gets its answer (result or error, borrowed). If the call ends first
 * (answered, cancelled, session gone), cb runs once with call, result and
 * error all NULL: release ud, touch nothing else. params stolen. 0, or
 * SB_ESTATE when the client is modern or the call has no session. */
typedef void (*sb_mcp_client_answer_cb)(sb_mcp_call *call, json_t *result,
                                        json_t *error, void *ud);
int sb_mcp_call_ask_client(sb_mcp_call *call, const char *method,
                           json_t *params, sb_mcp_client_answer_cb cb,
                           void *ud);

/* Withdraw a question asked with sb_mcp_call_ask_client(call, ..., ud):
 * notifications/cancelled (with reason, may be NULL) goes to the client,
 * and cb runs as for an ended call (all NULL) to release ud. */
void sb_mcp_call_cancel_ask(sb_mcp_call *call, void *ud, const char *reason);

/* Reply with a cacheable result: modern clients get ttlMs and cacheScope
 * ("public" or "private"), legacy ones nothing extra. result is stolen. */
void sb_mcp_call_reply_cacheable(sb_mcp_call *call, json_t *result, long ttl_ms,
                                 const char *scope);
/* Give back the place the call holds among its tenant's calls in flight
 * (the admission's), before it ends: a call that only waits for work
 * counted on its own (workflow_run following a run whose steps hold
 * theirs). Idempotent. */
void sb_mcp_call_release_admission(sb_mcp_call *call);
/* From a provider's list function (list_tools, list_resources...): the
 * list cannot be served as it is (an agent behind it is down), so the
 * request fails with this error instead of answering a partial or empty
 * list. Takes effect once every provider has run; the first error wins.
 * `data` is stolen (may be NULL). The call stays valid. */
void sb_mcp_call_fail_list(sb_mcp_call *call, int code, const char *message,
                           json_t *data);
/* Answer a tool call with one text content block (isError if is_error). */
void sb_mcp_call_reply_text(sb_mcp_call *call, const char *text, int is_error);
/* -32602 "Invalid arguments for tool TOOL: WHAT" (the 2026-07-28 shape). */
void sb_mcp_call_fail_invalid_args(sb_mcp_call *call, const char *tool,
                                   const char *what);
/* Resource not found, in the call's era: -32602 (modern) or -32002. */
void sb_mcp_call_fail_resource_not_found(sb_mcp_call *call, const char *uri);
/* Refused for a scope the caller lacks: -31003 with `message` and data
 * {"scope"}, and the out learns the scope (its refused_scope), so HTTP
 * can answer 403 with a challenge naming it. */
void sb_mcp_call_fail_scope(sb_mcp_call *call, const char *scope,
                            const char *message);

/* requestState for multi round-trip requests: `payload` (borrowed) sealed
 * with a per-process key and bound to method + name and the call's tenant
 * with a TTL (new string, free with sb_free); opening refuses a tampered,
 * expired or misbound state, another tenant's included (NULL with err),
 * and returns a new reference. */
char *sb_mcp_state_seal(sb_mcp_call *call, const char *method, const char *name,
                        json_t *payload, uint64_t ttl_ms);
json_t *sb_mcp_state_open(sb_mcp_call *call, const char *state,
                          const char *method, const char *name, sb_error *err);

/* Called once if the call is cancelled (notifications/cancelled, client
 * gone, server shutdown). After the callback returns the call is freed. */
typedef void (*sb_mcp_cancel_cb)(sb_mcp_call *call, void *ud);
void sb_mcp_call_on_cancel(sb_mcp_call *call, sb_mcp_cancel_cb cb, void *ud);

/* ======================================================================
 * Client side: switchboard talking to an agent (client.c)
 *
 * The client does the protocol over any transport that can send a message
 * and hand back what arrives (net/'s channels, wired up by the caller):
 * era detection (server/discover for modern agents, initialize and version
 * negotiation for legacy ones), request ids and correlation, a deadline on
 * every request (on expiry notifications/cancelled goes to the agent and
 * the caller gets an error), progress routed by token, and the agent's
 * own requests (sampling, elicitation, roots from legacy agents) handed to
 * the caller to answer.
 * ====================================================================== */

typedef struct sb_mcp_client sb_mcp_client;
typedef struct sb_mcp_request sb_mcp_request;

/* How a request ended. Only SB_MCP_ANSWERED comes from the agent; every
 * other outcome is decided here, so a remote party cannot forge it. */
typedef enum sb_mcp_outcome {
  SB_MCP_ANSWERED = 0,    /* the agent answered: a result, or its own error */
  SB_MCP_UNSENT,          /* it never reached the agent (not connected, the
                             send failed, no connection could be made) */
  SB_MCP_LOST,            /* it went out; the answer was lost with the
                             transport (the agent may have acted on it) */
  SB_MCP_TIMED_OUT,       /* no answer by the deadline; cancelled at the
                             agent */
  SB_MCP_CANCELLED,       /* cancelled by our caller */
  SB_MCP_SESSION_EXPIRED, /* the agent's session had ended before it read
                             the request: never processed */
  SB_MCP_REFUSED,         /* the agent refused it unprocessed (HTTP 401 or
                             403: our credentials or their scope) */
} sb_mcp_outcome;

/* "answered", "unsent", "lost", "timed out", "cancelled",
 * "session expired", "refused". */
const char *sb_mcp_outcome_name(sb_mcp_outcome o);

typedef struct sb_mcp_client_transport {
  /* Send one message (borrowed); 0 or a negative code. Required. */
  int (*send)(void *t, json_t *msg);
  /* Stop waiting for request `id` at the transport level (HTTP: abort the
   * POST). May be NULL. */
  void (*cancel)(void *t, json_t *id);
  /* A header for later requests (HTTP: MCP-Protocol-Version). May be NULL. */
  int (*set_header)(void *t, const char *name, const char *value);
  void *t;
  /* Send one message with headers of its own ({name: value}, borrowed):
   * a tools/call's Mcp-Param-*. May be NULL: send is used, without them. */
  int (*send_headers)(void *t, json_t *msg, const json_t *headers);
  /* Streamable HTTP: cancel closes the request's stream, which is the
   * whole cancellation for a modern agent (2026-07-28 defines no
   * notifications/cancelled over HTTP); a legacy one still gets it. */
  int cancel_closes_stream;
} sb_mcp_client_transport;

typedef enum sb_mcp_client_era_pref {
  SB_MCP_CLIENT_AUTO = 0, /* probe with server/discover, fall back */
  SB_MCP_CLIENT_MODERN,
  SB_MCP_CLIENT_LEGACY,
} sb_mcp_client_era_pref;

typedef struct sb_mcp_client_events {
  /* A notification from the agent that no request claimed (list_changed,
   * resources/updated, log messages). Borrowed params. */
  void (*on_notification)(void *ud, const char *method, json_t *params);
  /* A request from the agent (legacy: sampling/createMessage,
   * elicitation/create, roots/list). `related` is the in-flight request it
   * belongs to (NULL if none): the one whose response stream carried it
   * (sb_mcp_client_receive_related), else the newest tools/call,
   * prompts/get or resources/read, and then `guessed` is 1 (the transport
   * said nothing). Answer with sb_mcp_client_respond. If NULL, such
   * requests get a -32601 error. */
  void (*on_agent_request)(void *ud, json_t *id, const char *method,
                           json_t *params, sb_mcp_request *related,
                           int guessed);
  /* The agent ended our legacy session (sb_mcp_client_request_failed with
   * session_ended, e.g. HTTP 404 on Mcp-Session-Id): the client is no
   * longer connected and the owner opens a new session
   * (sb_mcp_client_connect). Called after that request's callback; may be
   * NULL. */
  void (*on_session_expired)(void *ud);
  void *ud;
} sb_mcp_client_events;

typedef struct sb_mcp_client_options {
  uv_loop_t *loop;
  const char *name; /* the agent's id, for logs and error messages */
  sb_mcp_client_transport transport;
  sb_mcp_client_events events;
  sb_mcp_client_era_pref era;
  json_t *capabilities;      /* client capabilities we declare (borrowed) */
  uint64_t probe_timeout_ms; /* server/discover on an unknown agent */
} sb_mcp_client_options;

sb_mcp_client *sb_mcp_client_new(const sb_mcp_client_options *o);
/* Fails every pending request with "client closed"; frees. */
void sb_mcp_client_free(sb_mcp_client *c);

/* Feed what the transport received (borrowed). */
void sb_mcp_client_receive(sb_mcp_client *c, json_t *msg);
/* The same for a message that came on the response stream of our request
 * `related_id` (borrowed; NULL: not known; sb_channel_message_related). */
void sb_mcp_client_receive_related(sb_mcp_client *c, json_t *msg,
                                   const json_t *related_id);
/* The transport says request `id` (borrowed) will get no answer:
 * `outcome` is UNSENT, LOST or SESSION_EXPIRED. With session_ended the
 * agent ended our (legacy) session: the client is not connected from now
 * on, and on_session_expired runs after the request's callback. */
void sb_mcp_client_request_failed(sb_mcp_client *c, json_t *id,
                                  sb_mcp_outcome outcome, int session_ended,
                                  const char *detail);
/* The transport is down: pending requests fail with `detail` (LOST if
 * they were sent, else UNSENT); the client must connect again. */
void sb_mcp_client_transport_lost(sb_mcp_client *c, const char *detail);

/* Answer of a request: exactly one of result/error is non-NULL (both
 * borrowed). With SB_MCP_ANSWERED they are the agent's; otherwise error
 * is made here, a JSON-RPC error object whose message names the agent and
 * the reason, with no data. */
typedef void (*sb_mcp_response_cb)(void *ud, sb_mcp_outcome outcome,
                                   json_t *result, json_t *error);
typedef void (*sb_mcp_progress_cb)(void *ud, json_t *params);

/* Detect the era and open the conversation (discover / initialize +
 * notifications/initialized). cb gets the discover or initialize result. */
int sb_mcp_client_connect(sb_mcp_client *c, uint64_t timeout_ms,
                          sb_mcp_response_cb cb, void *ud);
int sb_mcp_client_connected(const sb_mcp_client *c);
int sb_mcp_client_is_modern(const sb_mcp_client *c);
/* The negotiated (legacy) or chosen (modern) protocol version. */
const char *sb_mcp_client_version(const sb_mcp_client *c);
/* The agent's capabilities and serverInfo (borrowed, may be NULL). */
json_t *sb_mcp_client_server_capabilities(const sb_mcp_client *c);
json_t *sb_mcp_client_server_info(const sb_mcp_client *c);

/* The inputSchema of the agent's tool `name` when it mirrors parameters
 * into headers (x-mcp-header), as its last tools/list said (borrowed,
 * until the next tools/list answer); NULL when it does not, or its
 * declarations break the rules. */
const json_t *sb_mcp_client_header_schema(const sb_mcp_client *c,
                                          const char *name);

/* Send a request; params is stolen (may be NULL). Modern agents get the
 * _meta envelope added; with a progress callback a progressToken is set.
 * timeout_ms 0 = no deadline (don't). Returns the request, valid until
 * its callback has run; NULL when the callback already ran (an answer or
 * a failure arrived before this returned). */
sb_mcp_request *sb_mcp_client_request(sb_mcp_client *c, const char *method,
                                      json_t *params, uint64_t timeout_ms,
                                      sb_mcp_progress_cb progress,
                                      sb_mcp_response_cb cb, void *ud);
/* Cancel: notifications/cancelled to the agent, transport abort, and the
 * callback gets SB_MCP_CANCELLED (now, before this returns). */
void sb_mcp_request_cancel(sb_mcp_request *r, const char *reason);
/* The JSON-RPC id the request went out with. */
json_int_t sb_mcp_request_id(const sb_mcp_request *r);
/* Whether the agent may ask its client something while serving r (a
 * tools/call, prompts/get or resources/read): the requests an agent's own
 * request is tied to when nothing on the wire says which. */
int sb_mcp_request_may_ask(const sb_mcp_request *r);
/* 1 once the agent has seen the request (it was sent successfully). */
int sb_mcp_request_sent(const sb_mcp_request *r);

/* Send a notification; params stolen. */
int sb_mcp_client_notify(sb_mcp_client *c, const char *method, json_t *params);
/* Answer an agent's request (on_agent_request); result/error stolen. */
int sb_mcp_client_respond(sb_mcp_client *c, json_t *id, json_t *result,
                          json_t *error);

#endif
