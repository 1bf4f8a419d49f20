/* gateway: switchboard's agents, and every call made to them.
 *
 * The gateway owns the agent pool (one channel and one MCP client per
 * AgentDefinition, reconnected with backoff, health-checked, their tool,
 * resource and prompt lists cached), the calls made to agents (routing by
 * the registry with the context, the projection each agent receives,
 * deadlines, the breaker, retries, fallback along the same ranking, and
 * input an agent asks for), the per-agent MCP endpoints and virtual
 * servers, and the admin operations (register, remove, list, explain).
 *
 * Every call goes through one API, sb_gateway_call_start: the MCP paths
 * (agent__tool on /mcp, /agents/{id}/mcp, /servers/{name}/mcp) use it, and
 * so can anything else that runs on the loop (the workflow engine), with
 * no incoming MCP request behind it. How a call ended is a C value,
 * sb_gateway_outcome; nothing is decided from an error's JSON `data`.
 *
 * Everything runs on the loop thread given in the options.
 */
#ifndef SB_GATEWAY_H
#define SB_GATEWAY_H

#include <jansson.h>
#include <uv.h>

#include "core/core.h"
#include "llm/llm.h"
#include "mcp/mcp.h"
#include "net/net.h"
#include "registry/registry.h"

typedef struct sb_gateway sb_gateway;

/* The _meta keys of a routed call (agents_call): the agent receives the
 * projection of the context its contextRequirements name under
 * SB_GATEWAY_META_CONTEXT, {"id", "version", "data", "missing"}; the
 * caller's result carries SB_GATEWAY_META_ROUTING, {"agent", "capability",
 * "rank", "score", "parts", "coverage", "contextId", "contextVersion"}. */
#define SB_GATEWAY_META_CONTEXT "switchboard/context"
/* A caller's tools/call (or prompts/get, resources/read, completion) of one
 * agent's own name (agent__tool on /mcp, or through /agents/{id}/mcp and
 * the virtual servers) may name a context in its request _meta under this
 * key: the agent then receives that context's projection and is recorded
 * in its metadata.agents, as with agents_call. */
#define SB_GATEWAY_META_CONTEXT_ID "switchboard/contextId"
#define SB_GATEWAY_META_ROUTING "switchboard/routing"
/* Every request to an agent carries the caller's tenant in _meta under
 * this key (set by switchboard from the authenticated caller; a caller's
 * own value is replaced), so an agent serving several tenants can keep
 * their data apart. */
#define SB_GATEWAY_META_TENANT "switchboard/tenant"
typedef struct sb_ctx_manager sb_ctx_manager;

/* Public tool names (agentId__tool): the default and least length limit. */
#define SB_GATEWAY_TOOL_NAME_MAX 64
#define SB_GATEWAY_TOOL_NAME_MIN 16

typedef struct sb_gateway_options {
  uv_loop_t *loop;
  /* The main MCP server (/mcp): the gateway adds its provider of
   * namespaced agent tools (agent__tool) and announces list changes there.
   * Borrowed; may be NULL (no namespaced tools). */
  sb_mcp_server *mcp;
  /* Limits of the per-agent and virtual servers' MCP endpoints. */
  sb_mcp_limits mcp_limits;
  const char *default_tenant; /* of callers without credentials; copied */
  size_t max_message_bytes;   /* one message from an agent */
  /* Busy polling of stdio agents, in microseconds (0 = off): while a
   * request to an agent is unanswered and the loop has nothing else to
   * do, read the agent's stdout without sleeping for up to this long,
   * provided its recent answers came that fast. Trades CPU (a core spins
   * while it waits) for the latency of one process wake-up per call.
   * sb_child_options.busy_poll_us. */
  unsigned agent_busy_poll_us;
  /* sb_child_options.exec_shim for every stdio agent: an executable
   * through which an agent is started so that the kernel kills it when
   * this process dies, even by SIGKILL. Borrowed. NULL: spawned directly,
   * and an agent that ignores stdin EOF outlives a crash. */
  const char *agent_exec_shim;
  /* Health checks of connected agents: a ping (server/discover for a
   * modern agent) every health_every_ms; unanswered within
   * health_timeout_ms, the agent is unhealthy (sb_registry_set_health)
   * until one is answered. 0: 15000 and 5000. */
  uint64_t health_every_ms, health_timeout_ms;
  /* Tenants are configured: an agent's log line not tied to one tenant's
   * calls is then dropped rather than shown to whoever listens. */
  int tenants_configured;
  /* Contexts, for routing with a context and handing projections. May be
   * NULL: calls naming a context then fail with SB_EINVAL. Borrowed. */
  sb_ctx_manager *ctx;
  /* The longest public tool name (agentId__tool) on the main endpoint;
   * longer ones are shortened (sb_gateway_tool_names). 0: the default,
   * SB_GATEWAY_TOOL_NAME_MAX. */
  size_t max_tool_name;
  /* An agent's breaker opened (1) or closed again (0), as a call of
   * `tenant` (the default tenant when the caller had none) ended. May be
   * NULL. */
  void (*on_breaker)(void *ud, const char *tenant, const char *agent,
                     int opened);
  /* An agent's state moved: a listing of what it serves ended, or it went
   * down (sb_gateway_agent_settled says where it stands). May be NULL. */
  void (*on_agent_state)(void *ud, const char *agent);
  void *notify_ud; /* on_breaker's and on_agent_state's */
  /* An agent's sampling/createMessage that its caller cannot answer (no
   * on_input, or it refused: a client without the sampling capability, a
   * workflow run) is answered with the agent's models through this LLM
   * endpoint (see gateway/sampling.c). Borrowed. NULL: refused, as
   * without it. */
  sb_llm *llm;
  /* Quotas on the per-agent and virtual servers' requests, as on the
   * main endpoint's (copied into each server's options). */
  sb_mcp_admission admission;
  /* Asked before an MCP call reaches an agent (a namespaced tool, a
   * per-agent or virtual server's request, agents_call): 0 to let it
   * through, or non-zero once it has refused the call (answered it, with
   * sb_mcp_call_fail_scope for a missing scope). agent is NULL for a call
   * by capability. NULL: every call may go. */
  int (*permit_agent)(void *ud, sb_mcp_call *call, const char *agent);
  /* Asked (permit_ud) for each agent whose items a per-agent or virtual
   * server would list: 1 to list them for this caller. An agent refused
   * is left out of the lists, as if the server did not include it (its
   * being down included). NULL: every agent's items are listed. */
  int (*agent_visible)(void *ud, sb_mcp_call *call, const char *agent);
  void *permit_ud;
} sb_gateway_options;

/* A running gateway with no agents yet. NULL with err on failure. */
sb_gateway *sb_gateway_new(const sb_gateway_options *opts, sb_error *err);
/* Cancels every call (callers get SB_GATEWAY_STOPPING), closes agents. */
void sb_gateway_free(sb_gateway *gw);
sb_registry *sb_gateway_registry(sb_gateway *gw);

/* ---- how a call ended ------------------------------------------------- */

typedef enum sb_gateway_outcome {
  SB_GATEWAY_ANSWERED = 0,    /* the agent answered: a result, or its own
                                 error (never a failure of ours, whatever
                                 its data says) */
  SB_GATEWAY_UNSENT,          /* never reached the agent */
  SB_GATEWAY_LOST,            /* sent, then lost with the transport */
  SB_GATEWAY_TIMED_OUT,       /* no answer by the deadline */
  SB_GATEWAY_CANCELLED,       /* the caller cancelled */
  SB_GATEWAY_SESSION_EXPIRED, /* the agent's session ended before it read
                                 the request */
  SB_GATEWAY_REFUSED,         /* the agent refused it unprocessed: HTTP 401
                                 or 403 (credentials, scope) */
  SB_GATEWAY_BREAKER_OPEN,    /* refused: the agent's breaker is open */
  SB_GATEWAY_AT_CAPACITY,     /* refused: maxConcurrent calls in flight */
  SB_GATEWAY_NOT_CONNECTED,   /* the agent did not connect in time */
  SB_GATEWAY_NO_AGENT,        /* no such agent, or none with the capability
                                 that serves the tool */
  SB_GATEWAY_INPUT_REFUSED,   /* the agent asked for input the caller
                                 could not give */
  SB_GATEWAY_STOPPING,        /* switchboard is shutting down */
  SB_GATEWAY_INVALID,         /* the call itself is wrong (bad context id,
                                 bad arguments): nothing was sent */
  SB_GATEWAY_BUSY,            /* the context store is busy: retry later */
  SB_GATEWAY_FORBIDDEN,       /* the caller lacks a permission the call's
                                 context requires (its metadata.permissions,
                                 named in scope): nothing was sent */
} sb_gateway_outcome;

const char *sb_gateway_outcome_name(sb_gateway_outcome o);

/* What an attempt's outcome allows: count it against the agent's breaker,
 * send it again to the same agent (after backoff, within its retry
 * budget), or try the next agent of the ranking. `repeatable`: the
 * request changes nothing (a read) or the tool is idempotent. Pure. */
typedef struct sb_gateway_decision {
  int breaker_failure;
  int retry;
  int fallback;
} sb_gateway_decision;
sb_gateway_decision sb_gateway_decide(sb_gateway_outcome o, int repeatable);

/* ---- the call API ----------------------------------------------------- */

typedef struct sb_gateway_call sb_gateway_call;
typedef struct sb_gateway_input sb_gateway_input;

/* How a call ended, for on_done. Everything is borrowed for the callback's
 * duration only. */
typedef struct sb_gateway_result {
  sb_gateway_outcome outcome;
  json_t *result;      /* ANSWERED with a result: the agent's */
  json_t *error;       /* ANSWERED with an error: the agent's JSON-RPC error
                          object (its data is the agent's, never read) */
  const char *message; /* any other outcome: what went wrong, for people,
                          naming the agent */
  const char *scope;   /* FORBIDDEN: the permission the caller lacks */
  const char *agent;   /* the agent that answered, or was tried last (NULL
                          if none was) */
  int agent_modern;    /* that agent speaks 2026-07-28 */
  json_t *routing;     /* a call by capability or with a context, answered:
                          {agent, capability, rank, score, parts, coverage,
                          contextId, contextVersion, projectionBytes,
                          contextBytes (the whole context's size), and
                          after a fallback fellBackFrom: [{agent,
                          outcome}] the agents passed over, in order} */
} sb_gateway_result;

typedef struct sb_gateway_call_options {
  /* The target: an agent id, or a capability whose agents the registry
   * ranks (with the context, when context_id is given). */
  const char *agent;
  const char *capability;
  const char *context_id; /* optional: ranks, and each agent gets its
                             projection in _meta SB_GATEWAY_META_CONTEXT */
  const char *tenant;     /* the caller's; required with context_id */
  /* The caller (referenced while the call lives; NULL: unrestricted): a
   * context read for the call must not require a permission it lacks
   * (metadata.permissions), else the call ends FORBIDDEN. A context_doc
   * the caller holds is its own to vouch for. */
  const sb_principal *principal;
  /* The context as the caller holds it (with context_id; referenced, not
   * modified): the call routes and projects from it without reading the
   * store, and leaves metadata.agents to the caller, who writes the
   * context itself (the workflow engine). NULL: read, and the agent that
   * answers is recorded. */
  json_t *context_doc;
  /* Members added to the agent's request _meta (referenced), e.g. the
   * workflow step's idempotency key. NULL: none. */
  json_t *meta;
  /* The request: tools/call, prompts/get, resources/read or
   * completion/complete; `name` is the agent-side tool or prompt name
   * (NULL for the others); params the rest of the params: arguments, uri,
   * ref... (the object is copied, its members are referenced: do not
   * modify them while the call runs). */
  const char *method;
  const char *name;
  json_t *params;
  uint64_t deadline_ms;  /* the whole call, from now; 0 = each attempt has
                            only its agent's timeoutMs */
  int no_fallback;       /* this agent or nothing (a named agent) */
  const char *log_level; /* the caller's, for modern agents; may be NULL */
  json_t *client_caps;   /* the caller's capabilities, for modern agents
                            (referenced: do not modify); NULL = none */
  /* A modern agent's input_required ends the call as its result: the
   * caller (a modern client) answers and retries with input_extra. Else
   * each input request goes to on_input and the gateway retries. */
  int pass_input_required;
  json_t *input_extra; /* {inputResponses, requestState} for the first try
                          (as params); NULL = none */
  /* Callbacks, on the loop; on_done is required and runs exactly once,
   * after which the call is gone. The others may be NULL. */
  void (*on_progress)(void *ud, json_t *params); /* notifications/progress */
  void (*on_log)(void *ud, json_t *params);      /* notifications/message */
  /* The agent asks for input (sampling/createMessage, elicitation/create,
   * roots/list): answer with sb_gateway_input_answer, now or later.
   * Return non-zero when nobody can answer: the agent is told, or the call
   * ends with SB_GATEWAY_INPUT_REFUSED. NULL callback: always refused.
   * SB_EBUSY: the caller can answer, but is being asked another question
   * of this call already (the agent is told so). */
  int (*on_input)(void *ud, sb_gateway_input *in);
  /* The agent withdrew a question it asked (or the request it belonged to
   * ended): forget `in`, do not answer it. */
  void (*on_input_withdrawn)(void *ud, sb_gateway_input *in);
  void (*on_done)(void *ud, const sb_gateway_result *r);
  void *ud;
} sb_gateway_call_options;

/* Start a call. 0: started; on_done will run, or has already run (an
 * agent that refused at once) and *out is then NULL, else the call, valid
 * until on_done. A negative code with err (nothing was sent, on_done
 * never runs) when the options are invalid (SB_EINVAL: also a malformed
 * context id), the agent or every agent with the capability is unknown
 * (SB_ENOENT), or the context store is busy (SB_EBUSY). A context is read
 * asynchronously: a missing one ends the call with SB_GATEWAY_INVALID,
 * and the routing waits for it. */
int sb_gateway_call_start(sb_gateway *gw, const sb_gateway_call_options *o,
                          sb_gateway_call **out, sb_error *err);
/* Cancel: the agent is told (notifications/cancelled), on_done runs now
 * with SB_GATEWAY_CANCELLED. */
void sb_gateway_call_cancel(sb_gateway_call *c, const char *reason);

/* The arguments of a routed tool call, {"capability" | "agent", "tool",
 * "arguments", "contextId"} (the agents_call tool, POST /v1/agents/call),
 * checked and set in *o: agent or capability, context_id, method
 * tools/call, name, no_fallback for a named agent (strings borrowed from
 * args). *params is a new {"arguments": ...} for o->params. SB_EINVAL with
 * err naming the argument at fault; SB_ENOMEM. */
int sb_gateway_routed_args(const json_t *args, sb_gateway_call_options *o,
                           json_t **params, sb_error *err);

/* An agent's question: method and params (borrowed, valid until answered
 * or withdrawn). */
const char *sb_gateway_input_method(const sb_gateway_input *in);
json_t *sb_gateway_input_params(const sb_gateway_input *in);
/* The caller's answer: a result or a JSON-RPC error object (stolen).
 * Exactly once per question; `in` is gone afterwards. */
void sb_gateway_input_answer(sb_gateway_input *in, json_t *result,
                             json_t *error);
/* The client capability needed to answer it: "sampling", "elicitation",
 * "roots", or NULL. */
const char *sb_gateway_input_capability(const sb_gateway_input *in);

/* ---- the agents (admin operations) ------------------------------------ */

/* Register an AgentDefinition (JSON, borrowed, validated here) and connect
 * to it. An existing id is SB_ECONFLICT unless `replace`. from_config marks
 * agents that sb_gateway_reload may remove. */
int sb_gateway_add(sb_gateway *gw, const json_t *def, int replace,
                   int from_config, sb_error *err);
/* Disconnect and forget; SB_ENOENT if there is no such agent. */
int sb_gateway_remove(sb_gateway *gw, const char *id, sb_error *err);
/* [{definition, connected, fromConfig, era, protocolVersion, tools,
 *   serverInfo, state}...], new reference: what clients are shown, so
 * each value of a definition's transport.headers and transport.env (the
 * agent's own credentials), the userinfo of its transport.url and the
 * url's query values named like secrets read SB_GATEWAY_REDACTED. */
#define SB_GATEWAY_REDACTED SB_AGENT_REDACTED
/* Which agents a list shows. */
typedef struct sb_gateway_list_filter {
  const char *capability; /* one it lists; NULL: any */
  int any_type;           /* 1: every type; 0: only `type` */
  sb_agent_type type;
} sb_gateway_list_filter;
/* filter NULL: every agent. */
json_t *sb_gateway_list_json(sb_gateway *gw,
                             const sb_gateway_list_filter *filter);

/* The i-th registered agent (0 <= i < sb_gateway_agent_count), for
 * monitoring; borrowed until the agent list next changes. */
typedef struct sb_gateway_agent_info {
  const sb_agent_def *def;
  int connected;
  size_t tools; /* tools listed (0 until listed) */
  int from_config; /* defined in the config file (reload may change it) */
} sb_gateway_agent_info;
size_t sb_gateway_agent_count(const sb_gateway *gw);

/* Whether agent id has settled since it was registered: 1 connected with
 * its lists read (a tools/list on its endpoint shows its tools), 0 not
 * yet (connecting, or listing), -1 no such agent or it is down (its
 * connection failed or was lost: its endpoint's lists say why). */
int sb_gateway_agent_settled(sb_gateway *gw, const char *id);
void sb_gateway_agent_info_at(const sb_gateway *gw, size_t i,
                              sb_gateway_agent_info *out);
/* The same for agent id: 0, or SB_ENOENT when there is none. */
int sb_gateway_agent_info_of(const sb_gateway *gw, const char *id,
                             sb_gateway_agent_info *out);
/* A new list of AgentDefinitions (config `agents:`, borrowed; lines[i] is
 * item i's line in `file` for messages, may be NULL): validate all first,
 * as serve and check do (a bad one, or an id listed twice, changes
 * nothing; the error reads "FILE:LINE: agents[i]..."), then add new ones,
 * replace changed ones, remove config agents no longer listed; unchanged
 * agents keep their connections. The ids that are keys of `skip` (an
 * object, may be NULL) are not the config's to decide: their definitions
 * are validated, then left alone. */
int sb_gateway_reload(sb_gateway *gw, const json_t *defs, const size_t *lines,
                      const char *file, const json_t *skip, sb_error *err);

/* Whether agent_id is handed data.user of a context whose data is `data`
 * (borrowed): the user's permissions (user.permissions, the scope
 * grammar) name the agents that may see who the customer is once they
 * name any ("agents", "agents:sales", "agents:fin*", "admin"). The
 * projections follow it, and so does the registry's coverage
 * (sb_registry_options.sees_user). */
int sb_gateway_sees_user(const json_t *data, const char *agent_id);

/* The public names of agents' tools: `tools` is [[agent id, tool name]...]
 * (borrowed), in listing order. Returns an object (new reference; NULL on
 * ENOMEM) mapping each public name, in the same order, to {"agent",
 * "tool"}. agentId__tool is kept when it has at most max_len characters
 * (0: SB_GATEWAY_TOOL_NAME_MAX), all of A-Za-z0-9_-. ; otherwise it is
 * shortened, deterministically and collision-free: its other characters
 * become '_', it is cut, and "_" and 10 hex digits of a hash of the agent
 * id and tool name are appended (see names.c). */
json_t *sb_gateway_tool_names(const json_t *tools, size_t max_len);
/* The current mapping on the main endpoint, as above (borrowed; valid
 * until an agent's tools change). */
json_t *sb_gateway_tool_names_current(sb_gateway *gw);

/* ---- per-agent endpoints and virtual servers --------------------------- */

/* The same list checked without a gateway (switchboard check): what
 * sb_gateway_add_servers would refuse, with the same errors, save an
 * agent that is not known (agents may be registered later). */
int sb_gateway_check_servers(const json_t *servers, const size_t *lines,
                             sb_error *err);
/* Virtual servers from the config's `servers:` list (borrowed; lines as
 * above). Errors name the line and the path. Call before adding agents. */
int sb_gateway_add_servers(sb_gateway *gw, const json_t *servers,
                           const size_t *lines, sb_error *err);
/* The MCP server of one agent (made on first use; NULL: no such agent),
 * or of a virtual server (NULL: none by that name). */
sb_mcp_server *sb_gateway_agent_server(sb_gateway *gw, const char *id);
sb_mcp_server *sb_gateway_virtual_server(sb_gateway *gw, const char *name);
/* For sb_http_server_mount: /agents/{id}/mcp and /servers/{name}/mcp. */
sb_mcp_server *sb_gateway_mount_resolve(void *gw, const char *path);

/* ---- one agent's channel and MCP client -------------------------------- */

/* Open a channel to the agent `def` describes (a child process or a
 * Streamable HTTP endpoint, with its args, env and headers) into *ch and,
 * when *client is NULL, an MCP client speaking through *ch (it reads the
 * slot at each send, so the same client survives the channel being
 * replaced after a crash). The client declares sampling, elicitation and
 * roots: the gateway relays them to whoever made the call. Used by the
 * pool and by `switchboard agents show` alike. 0, or a negative code with
 * err; *ch and *client are then left as they were. */
typedef struct sb_gateway_link_options {
  uv_loop_t *loop;
  const sb_agent_def *def;
  size_t max_message_bytes;
  unsigned busy_poll_us;       /* stdio agents: sb_child_options.busy_poll_us */
  const char *exec_shim;       /* stdio agents: sb_child_options.exec_shim */
  sb_channel_events channel;   /* messages go to sb_mcp_client_receive */
  sb_mcp_client_events client; /* the agent's notifications and requests */
} sb_gateway_link_options;
int sb_gateway_link_open(const sb_gateway_link_options *o, sb_channel **ch,
                         sb_mcp_client **client, sb_error *err);
/* ---- OAuth for HTTP agents (oauth.c) -----------------------------------
 * An agent whose definition has transport.oauth is sent access tokens
 * switchboard gets itself with the client credentials grant (RFC 6749
 * 4.4), found the way the MCP authorization spec says: the token endpoint
 * is transport.oauth.tokenUrl, or the one in the metadata of the
 * authorization server (RFC 8414, then OpenID Connect discovery) that is
 * `issuer` or the first the agent's Protected Resource Metadata names (RFC
 * 9728: its challenge's resource_metadata, else its well-known URIs); the
 * request names the resource (RFC 8707) and the scope. */
typedef struct sb_gateway_oauth sb_gateway_oauth;
/* A fetch ended: ok 1 (sb_gateway_oauth_authorization has the new token),
 * or 0 and detail says what failed, for people. */
typedef void (*sb_gateway_oauth_cb)(void *ud, int ok, const char *detail);
/* For def (its transport.oauth; a reference is kept), fetching through f
 * (borrowed, outlives it). NULL without transport.oauth, or ENOMEM. */
sb_gateway_oauth *sb_gateway_oauth_new(sb_fetcher *f, sb_agent_def *def);
/* Get a token (again). challenge: the agent's last WWW-Authenticate
 * (its scope and resource_metadata are used), or NULL. cb runs once, on
 * the loop (before this returns if the fetch cannot start). 0, or
 * SB_ESTATE while a fetch is under way (cb will not run). */
int sb_gateway_oauth_fetch(sb_gateway_oauth *o, const char *challenge,
                           sb_gateway_oauth_cb cb, void *ud);
int sb_gateway_oauth_busy(const sb_gateway_oauth *o);
/* "Bearer <token>" to send in Authorization, or NULL (borrowed). */
const char *sb_gateway_oauth_authorization(const sb_gateway_oauth *o);
/* When the token was got, and when it expires (sb_now_ms; 0: no token,
 * or the server did not say). */
uint64_t sb_gateway_oauth_obtained_ms(const sb_gateway_oauth *o);
uint64_t sb_gateway_oauth_expires_ms(const sb_gateway_oauth *o);
/* Whether the agent's challenge (a 403's) asks for scope that a new
 * token may carry: error="insufficient_scope" naming a scope not asked
 * for yet and not refused by the authorization server. */
int sb_gateway_oauth_wants_scope(const sb_gateway_oauth *o,
                                 const char *challenge);
/* Drop the token (the agent refused it). */
void sb_gateway_oauth_forget(sb_gateway_oauth *o);
/* Cancels a fetch under way (its cb does not run). */
void sb_gateway_oauth_free(sb_gateway_oauth *o);
/* The pure parts, for tests. The value of auth-param `name` of an HTTP
 * challenge ("Bearer scope=\"a b\", error=x"), unquoted: 1 and *out (a new
 * string), 0 if absent, SB_ENOMEM. */
int sb_gateway_oauth_challenge_param(const char *challenge, const char *name,
                                     char **out);
/* The well-known URIs of the Protected Resource Metadata of the MCP
 * endpoint url, in the order they are tried (a new array of strings). */
json_t *sb_gateway_oauth_resource_metadata_urls(const char *url);
/* The metadata URIs of authorization server `issuer`, in order. */
json_t *sb_gateway_oauth_server_metadata_urls(const char *issuer);
/* 1 if a metadata document's `resource` is url's (the same origin, and its
 * path url's or a whole-segment prefix of it). */
int sb_gateway_oauth_resource_covers(const char *resource, const char *url);

/* A channel's on_request_failed, passed on to the client as an outcome. */
void sb_gateway_link_failed(sb_mcp_client *client, json_t *id,
                            sb_channel_failure kind, const char *detail);

#endif
