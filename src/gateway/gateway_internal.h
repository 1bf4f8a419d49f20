/* gateway_internal.h: what the files of the gateway share.
 *
 * pool.c owns the pool (membership, connections, health, the tool list
 * it serves as agent__tool); calls.c the calls (routing, retries,
 * fallback), call_inputs.c their input across eras and call_context.c
 * the context they read and write (the three share call_internal.h);
 * mounts.c the per-agent endpoints and virtual servers; link.c how one
 * agent's channel and client are opened; sampling.c answers an agent's
 * sampling with its models (llm/) when the caller cannot. */
#ifndef SB_GATEWAY_INTERNAL_H
#define SB_GATEWAY_INTERNAL_H

#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctx/ctx.h"
#include "gateway/gateway.h"
#include "mcp/mcp.h"
#include "net/net.h"
#include "registry/registry.h"


#define SEP "__"
#define HEALTH_EVERY_MS 15000
#define HEALTH_TIMEOUT_MS 5000
#define RESTART_BASE_MS 200
#define RESTART_CAP_MS 30000
#define RETRY_BASE_MS 50
#define RETRY_CAP_MS 2000

typedef struct agent agent;
typedef struct sub_request sub_request; /* a legacy agent's (un)subscribe */

/* A client's subscription acknowledgement held until the agent has the
 * subscription, or until its deadline (the agent's timeoutMs). */
typedef struct listen_wait {
  sb_mcp_sub_wait *wait;
  uint64_t deadline_ms;
} listen_wait;

/* What an agent serves, cached per kind: listed once connected, again on
 * the agent's list_changed or when a modern agent's ttlMs runs out. */
enum { LIST_TOOLS = 0, LIST_RESOURCES, LIST_TEMPLATES, LIST_PROMPTS, LIST_KINDS };
typedef struct agent_list_kind {
  const char *method;     /* tools/list ... */
  const char *key;        /* the result's array: tools, resourceTemplates... */
  const char *capability; /* the server capability that offers it */
  const char *kind;       /* list_changed kind: tools, resources, prompts */
} agent_list_kind;
extern const agent_list_kind gw_list_kinds[LIST_KINDS];

/* The items of an agent's `kind` list that can be served (list_check.c):
 * a new array without those the MCP schema would refuse or that repeat a
 * name, each left out named in the log. items is borrowed. */
json_t *gw_list_servable(const char *agent_id, int kind, json_t *items);
/* NULL if an agent's tools/call result is a CallToolResult as far as it
 * goes; else a new tool error naming the agent and what is wrong, for the
 * caller in its place (its SDK would refuse the result itself). */
json_t *gw_tool_result_checked(const char *agent_id, const json_t *result);

typedef struct agent_list {
  agent *a;
  int kind;
  json_t *items;   /* the agent's own list, or NULL before listing */
  json_t *listing; /* pages gathered by a listing in progress */
  uint64_t fresh_until; /* ttlMs of a modern agent's list; 0 = until
                           list_changed */
  unsigned pages;       /* pages asked for by the listing in progress */
  char *cursor;         /* the cursor of the page asked for last, or NULL */
} agent_list;

/* The MCP tool for calls routed with the context (mcp_calls.c). */
#define GW_ROUTED_TOOL "agents_call"

/* How a call by capability, or with a context, is routed (route.c). */
typedef struct gw_route {
  char *tenant;
  char *capability; /* NULL when the caller named the agent */
  char *context_id; /* NULL without a context */
  json_t *doc;      /* the context as read (shared with the manager's
                       cache: never modified), or NULL */
  char **ids;       /* the ranking, best first */
  size_t n;
  json_t *parts;    /* agent id -> {rank, score, parts, coverage} */
  size_t projection_bytes; /* of the last projection handed out */
  size_t context_bytes;    /* of the whole context it was cut from */
} gw_route;

typedef struct mount mount;
typedef struct gw_mounts {
  mount **list;
  size_t len;
} gw_mounts;

struct sb_gateway {
  sb_gateway_options opts; /* strings not kept: see default_tenant */
  char *default_tenant;
  sb_registry *reg;
  gw_mounts *mounts; /* per-agent and virtual servers */
  agent **list;
  size_t len;
  sb_list calls;     /* calls in progress, newest first (call_internal.h) */
  sb_list mcp_calls; /* MCP requests they serve (mcp_calls.c) */
  int stopping;
  /* Public tool names (names.c): name -> {agent, tool}, and per agent
   * id -> {tool -> name}. NULL: rebuilt on next use (a tool list changed). */
  json_t *tool_names;
  json_t *tool_names_by_agent;
  sb_fetcher *fetcher; /* agents' OAuth token requests; NULL until one */
};

struct agent {
  sb_gateway *owner;
  sb_agent_def *def; /* own reference */
  /* Definitions it had before an update that kept its connection
   * (sb_gateway_add): what was made from them (its channel, sampling jobs
   * in flight) may still point into them. Freed with the agent. */
  sb_agent_def **retired_defs;
  size_t nretired_defs;
  sb_channel *ch;
  sb_mcp_client *client;
  agent_list lists[LIST_KINDS];
  json_t *subs;         /* resource URI -> number of our subscribers */
  sb_mcp_request *listen; /* modern agent: our subscriptions/listen */
  json_t *listen_asked;   /* ...its notifications (NULL once it ended) */
  int listen_acked;       /* ...and the agent has acknowledged it */
  listen_wait *listen_waits; /* clients' acknowledgements waiting */
  size_t nlisten_waits;      /* for that listen's own */
  uv_timer_t listen_timer;   /* the earliest of their deadlines */
  uv_timer_t relisten_timer; /* a listen the agent ended: opened again */
  unsigned relistens;        /* ...after this many in a row unacknowledged */
  int relistening;        /* replacing the listen: keep its waits */
  sub_request *sub_requests; /* legacy agent: (un)subscribes in flight */
  uv_timer_t restart_timer;
  uv_timer_t health_timer;
  /* Legacy HTTP agent, just connected: its GET stream is opening, and
   * calls wait for it (bounded by stream_timer): a message of a call the
   * agent sends there (elicitation, say) is lost while it is not up. */
  int stream_opening;
  uv_timer_t stream_timer;
  /* transport.oauth (agent_token.c): its tokens, renewed by token_timer
   * before they expire; token_renewing while a refused one is replaced
   * (calls wait), connect_on_token while the handshake waits for one;
   * refusals: renewals forced by refusals since a request was answered,
   * the last at refused_renewal_ms. */
  sb_gateway_oauth *oauth;
  uv_timer_t token_timer;
  int token_renewing, connect_on_token;
  unsigned refusals;
  uint64_t refused_renewal_ms;
  int refusal_retry; /* the last refusal is answered by a new token */
  /* Why the last token request failed, "" once one succeeds: shown while
   * the agent is connected too (its calls then go with no token or a
   * refused one), where down_reason says nothing. */
  char token_error[256];
  uint64_t token_retry_ms; /* the pause before the next try after a
                              failed renewal (0 after a success) */
  unsigned restarts;
  int closing;
  int from_config; /* defined in the config file (reload may remove it) */
  int removed;     /* shut down: no more retries on it */
  int session_lost; /* the agent ended our session: reopening soon */
  /* HTTP agent: why a health check that could not connect has it taken
   * as gone (by the restart timer, off the client's callback). */
  char health_lost_why[300];
  char down_reason[256]; /* why it is not connected (the last failure) */
};

/* pool.c */
double gw_random01(void);
/* List again every kind a serves (a change may have been missed). */
void gw_agent_relist_all(agent *a);
/* "what: detail" (or what alone) into buf, for people: cut short with
 * "..." past n, and valid UTF-8 (down_reason, token_error). */
void gw_reason_set(char *buf, size_t n, const char *what, const char *detail);
/* List again each kind a serves whose listing failed. */
void gw_agent_relist_missing(agent *a);
/* Start a's handshake on its channel (its token, if any, is set). */
void gw_agent_connect_client(agent *a);
/* a could not connect (what: detail): said, its channel closed, and a
 * reconnect scheduled with backoff. */
void gw_agent_connect_failed(agent *a, const char *what, const char *detail);
/* agent_token.c. Set up a's token (and its timer, for every agent): 0,
 * or SB_ENOMEM. */
int gw_token_init(agent *a);
/* Drop it and stop its renewals (a goes away). */
void gw_token_stop(agent *a);
/* 1 when a may start its handshake now (no OAuth, or a fresh token, now
 * set on its channel); else 0 and the handshake starts once a token came
 * (gw_agent_connect_client), or fails (gw_agent_connect_failed). */
int gw_token_connect(agent *a);
/* The agent refused a request (401/403; r may be NULL): 1 when a new
 * token answers it (one is here or coming), so sending it again helps. */
int gw_token_refused(agent *a, const sb_channel_refusal *r);
/* The agent answered: its token works. */
void gw_token_worked(agent *a);
/* Whether calls may be sent to a now: connected, and not opening its GET
 * stream. */
int gw_agent_ready(const agent *a);
agent *gw_agent_find(const sb_gateway *o, const char *id);
int gw_agent_serves_tool(agent *a, const char *tool);
/* The inputSchema a lists for tool when it mirrors parameters into
 * headers (x-mcp-header; borrowed), else NULL: what a's MCP client
 * learnt from the agent's tools/list. */
const json_t *gw_agent_header_schema(agent *a, const char *tool);
/* Whether a may serve tool: it lists it, or has not listed its tools yet
 * (still connecting, or listing); any agent when tool is NULL. */
int gw_agent_may_serve_tool(agent *a, const char *tool);
/* The agent's cached list of a kind (borrowed; NULL before listing). A
 * list past its ttlMs is served and fetched again. */
json_t *gw_agent_list_items(agent *a, int kind);
/* subs.c: a client of ours (un)subscribed to one of a's resources. */
void gw_agent_subscribe(agent *a, const char *uri, int on, sb_mcp_sub_wait *wait);
/* a (re)connected: what our clients subscribed to, asked of it again. */
void gw_subs_resubscribe(agent *a);
/* A notification acknowledging a subscriptions/listen (its params). */
void gw_subs_listen_acknowledged(agent *a, json_t *params);
/* a is going away: the acknowledgements waiting for it are given. */
void gw_subs_release(agent *a);
/* Whether a is connected; if not, *why (borrowed, never NULL) says why,
 * as far as we know: the last connect failure or channel loss. */
int gw_agent_up(agent *a, const char **why);
/* Whether a's connects keep failing (twice or more in a row since it was
 * last connected): it is down, and a call fails at once rather than wait
 * for a connection its timeout would not see. */
int gw_agent_failing(const agent *a);
/* The agent and agent-side tool a public tool name (agentId__tool, or its
 * shortened form) stands for: 1 with *a and *tool set (*tool borrowed,
 * valid until the agent's tools change), 0 if none. */
int gw_resolve_tool(sb_gateway *o, const char *name, agent **a,
                    const char **tool);

/* outcome.c */
sb_gateway_outcome gw_outcome_of(sb_mcp_outcome o);
/* The outcome of a call the registry refused to admit. */
sb_gateway_outcome gw_refusal_outcome(sb_registry_refusal why);

/* call_inputs.c */
/* The client capability needed to answer an agent's request (sampling,
 * elicitation, roots), or NULL for any other method. */
const char *gw_capability_for(const char *method);

/* sampling.c: switchboard answers a sampling/createMessage the caller
 * refused, with the agent's models. */
typedef struct gw_sampling gw_sampling;
/* 1 when it can: an LLM endpoint is configured, def names models and
 * method is sampling/createMessage. */
int gw_sampling_possible(sb_gateway *gw, const sb_agent_def *def,
                         const char *method);
/* Take question `in` of the agent `def` describes: 0 when taken (it is
 * answered now, if the request cannot be mapped, or later; do not touch
 * `in` after), or a negative code when switchboard cannot answer it
 * (`in` untouched). */
int gw_sampling_start(sb_gateway *gw, const sb_agent_def *def,
                      sb_gateway_input *in);
/* The client capabilities to tell a modern agent: the caller's `caps`
 * (borrowed; may be NULL), with sampling added when switchboard can answer
 * it for this agent. New reference, or NULL for none. */
json_t *gw_sampling_caps(sb_gateway *gw, const sb_agent_def *def,
                         json_t *caps);
/* The question is gone: cancel its LLM call (NULL: nothing to do). */
void gw_sampling_abandon(gw_sampling *job);
/* call_inputs.c: the sampling job answering `in` (NULL: none any more). */
void gw_input_set_sampling(sb_gateway_input *in, gw_sampling *job);
/* The definition of the agent that asked `in` (NULL if it is gone). */
const sb_agent_def *gw_input_agent_def(const sb_gateway_input *in);
/* A legacy-style request from agent a (answer it with
 * sb_mcp_client_respond) during request `related`: to that call's caller,
 * or refused. `guessed`: the agent said nothing of which request (stdio,
 * the GET stream) and related is the newest: then it is refused unless
 * every call in flight on a comes from the same caller, so that one
 * caller's question never reaches another. */
void gw_input_from_agent(agent *a, sb_mcp_request *related, int guessed,
                         json_t *id, const char *method, json_t *params);
/* The agent withdrew its request agent_req_id (notifications/cancelled). */
void gw_input_withdrawn(agent *a, json_t *agent_req_id);
/* a is going away: answers to its requests go nowhere. */
void gw_inputs_agent_gone(agent *a);
/* calls.c */
/* a has (re)connected: calls that waited for it go now. */
void gw_resume_waiting(agent *a);
/* Calls waiting to retry on a (going away) end now. */
void gw_abandon_attempts(agent *a);
/* An agent's notifications/message (borrowed) to the calls it concerns:
 * the call whose response stream carried it (related: its request id,
 * NULL when not known; none when that request is no call's), else every call in
 * flight on a when they are all one caller's (none when they are several
 * callers'; the server's own listeners when there are no calls and no tenants
 * are configured). */
void gw_forward_log(agent *a, json_t *params, const json_t *related);
/* Every call ends with SB_GATEWAY_STOPPING. */
void gw_calls_stop(sb_gateway *o);

/* route.c */
/* The route of a call by capability or with a context, not ranked yet.
 * NULL with err: SB_EINVAL (contexts unavailable), SB_ENOMEM. */
gw_route *gw_route_new(sb_gateway *o, const sb_gateway_call_options *opts,
                       sb_error *err);
void gw_route_free(gw_route *r);
/* Rank with r->doc (read by the caller, or NULL): the capability's agents
 * that serve `tool`, or the one named. SB_ENOENT when there are none. */
int gw_route_rank(sb_gateway *o, gw_route *r, agent *named_agent,
                  const char *tool, sb_error *err);
/* The _meta SB_GATEWAY_META_CONTEXT value for agent a (new reference), or
 * NULL without a context. */
json_t *gw_route_projection(gw_route *r, agent *a);
/* 1 if the context document lists agent_id in metadata.agents. */
int gw_route_lists_agent(const json_t *doc, const char *agent_id);
/* The routing report for the caller (new reference): {agent, capability,
 * rank, score, parts, coverage, contextId, contextVersion, recordError}. */
json_t *gw_route_report(gw_route *r, const char *agent_id, int64_t version,
                        const char *record_error);

/* mcp_calls.c: MCP requests served by gateway calls. */
/* The provider's call_tool on /mcp: agent__tool and agents_call. */
int gw_mcp_call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *args);
/* The provider's list_tools on /mcp (agents_call and every agent__tool
 * come from pool.c; this adds agents_call). */
void gw_mcp_list_routed_tool(json_t *tools);
/* A mount's request for agent a: `name` is the agent-side tool or prompt
 * name (NULL for resources/read and completion/complete). */
void gw_mcp_forward(sb_gateway *o, agent *a, sb_mcp_call *call,
                    const char *name);
/* Free what parked MCP requests still hold. */
void gw_mcp_calls_stop(sb_gateway *o);

/* mounts.c */
/* What an agent did, to the mounts that show it. */
void gw_mounts_list_changed(sb_gateway *gw, const char *agent_id,
                            const char *kind);
void gw_mounts_resource_updated(sb_gateway *gw, const char *agent_id,
                                const char *uri);
void gw_mounts_log(sb_gateway *gw, const char *agent_id, json_t *params);
/* Free every mount (their calls are cancelled). */
void gw_mounts_stop(sb_gateway *gw);

#endif
