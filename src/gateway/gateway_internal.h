/* gateway_internal.h: what the files of the gateway share.
 *
 * pool.c owns the pool (membership, connections, health, the tool list
 * it serves as agent__tool); calls.c the calls (routing, retries,
 * fallback, input across eras); mounts.c the per-agent endpoints and
 * virtual servers; link.c how one agent's channel and client are opened. */
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
#define CONNECT_TIMEOUT_MS 15000
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

typedef struct agent_list {
  agent *a;
  int kind;
  json_t *items;   /* the agent's own list, or NULL before listing */
  json_t *listing; /* pages gathered by a listing in progress */
  uint64_t fresh_until; /* ttlMs of a modern agent's list; 0 = until
                           list_changed */
} agent_list;

typedef struct attempt attempt;
typedef struct relay relay; /* an agent's request passed to a legacy caller */

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
  attempt *attempts; /* calls in progress (for relays) */
  int stopping;
  /* Public tool names (names.c): name -> {agent, tool}, and per agent
   * id -> {tool -> name}. NULL: rebuilt on next use (a tool list changed). */
  json_t *tool_names;
  json_t *tool_names_by_agent;
};

struct agent {
  sb_gateway *owner;
  sb_agent_def *def; /* own reference */
  sb_channel *ch;
  sb_mcp_client *client;
  agent_list lists[LIST_KINDS];
  json_t *subs;         /* resource URI -> number of our subscribers */
  sb_mcp_request *listen; /* modern agent: our subscriptions/listen */
  int listen_acked;       /* ...and the agent has acknowledged it */
  listen_wait *listen_waits; /* clients' acknowledgements waiting */
  size_t nlisten_waits;      /* for that listen's own */
  uv_timer_t listen_timer;   /* the earliest of their deadlines */
  int relistening;        /* replacing the listen: keep its waits */
  sub_request *sub_requests; /* legacy agent: (un)subscribes in flight */
  relay *relays;          /* its requests waiting for a legacy caller */
  uv_timer_t restart_timer;
  uv_timer_t health_timer;
  unsigned restarts;
  int closing;
  int from_config; /* defined in the config file (reload may remove it) */
  int removed;     /* shut down: no more retries on it */
  int session_lost; /* the agent ended our session: reopening soon */
  char down_reason[256]; /* why it is not connected (the last failure) */
};

struct attempt {
  sb_gateway *owner;
  sb_mcp_call *call;   /* the caller's; NULL once answered or cancelled */
  char *tool;          /* the agent-side tool name */
  char **tried;        /* agent ids tried, for fallback */
  size_t ntried;
  agent *current;
  sb_mcp_request *req;
  sb_registry_call ticket;
  uint64_t started_ms;
  unsigned retries;
  uv_timer_t *retry_timer;
  attempt *next; /* owner's list of calls in progress */
  /* multi round-trip (era translation, see "input across eras") */
  const char *method; /* tools/call, resources/read, prompts/get,
                         completion/complete (static string) */
  json_t *params;     /* the caller's params for the agent, without _meta
                         (name replaced by the agent's own) */
  int no_fallback;    /* per-agent endpoint: this agent or nothing */
  char *public_name;  /* agent__tool, what the caller called */
  json_t *extra;      /* inputResponses/requestState sent with the call */
  unsigned rounds;    /* input_required rounds relayed to a legacy caller */
  json_t *answers;    /* inputResponses being gathered from that caller */
  size_t asked;       /* questions still unanswered */
  int parked;         /* a legacy agent's question went to a modern caller
                         as input_required; waiting for the retry */
  char token[33];     /* identifies the parked attempt in requestState */
  json_t *parked_id;  /* the agent's request id to answer */
  json_t *final_result, *final_error; /* the agent answered while parked */
  int ticket_open;    /* a registry call is begun and not yet ended */
  int asking;         /* inside ask_legacy_caller's loop */
  int retry_due;      /* every answer came in during that loop */
  int awaiting_connect; /* a retry waits for the agent to reconnect */
  int waited_connect;   /* ...and has waited once already */
};

/* agents.c */
double gw_random01(void);
agent *gw_agent_find(sb_gateway *o, const char *id);
int gw_agent_serves_tool(agent *a, const char *tool);
/* The agent's cached list of a kind (borrowed; NULL before listing). A
 * list past its ttlMs is served and fetched again. */
json_t *gw_agent_list_items(agent *a, int kind);
/* A client of ours (un)subscribed to one of a's resources. */
void gw_agent_subscribe(agent *a, const char *uri, int on, sb_mcp_sub_wait *wait);
/* Whether a is connected; if not, *why (borrowed, never NULL) says why,
 * as far as we know: the last connect failure or channel loss. */
int gw_agent_up(agent *a, const char **why);
/* The agent and agent-side tool a public tool name (agentId__tool, or its
 * shortened form) stands for: 1 with *a and *tool set (*tool borrowed,
 * valid until the agent's tools change), 0 if none. */
int gw_resolve_tool(sb_gateway *o, const char *name, agent **a,
                    const char **tool);
/* Every agent, for the mounts (borrowed). */
agent *gw_agent_at(sb_gateway *o, size_t i);
size_t gw_agent_count(sb_gateway *o);

/* agent_calls.c */
/* Forward the caller's request to agent a (per-agent and virtual servers):
 * same deadline, breaker and retry rules as agent__tool calls, no
 * fallback to other agents. `name` is the agent-side tool or prompt name
 * (NULL for resources/read and completion/complete). Answers the call. */
void gw_forward(sb_gateway *o, agent *a, sb_mcp_call *call,
                    const char *name);
/* An agent's notifications/message (borrowed) to the clients it concerns. */
void gw_forward_log(agent *a, json_t *params);
/* The provider's call_tool: agent__tool calls and the admin tools. */
int gw_call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *args);
/* The caller of request req (NULL if none or answered). */
sb_mcp_call *gw_call_of_request(agent *a, sb_mcp_request *req);
/* A legacy agent's request for a modern caller: park the call and answer
 * the caller with input_required. 0 if parked. */
int gw_park_request(agent *a, sb_mcp_request *req, json_t *id,
                        const char *method, json_t *params);
/* The client capability needed to answer an agent's request (sampling,
 * elicitation, roots), or NULL for any other method. */
const char *gw_capability_for(const char *method);
/* a has (re)connected: retries that waited for it go now. */
void gw_resume_waiting(agent *a);
/* Calls waiting to retry on a (going away) are answered now. */
void gw_abandon_attempts(agent *a);

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
