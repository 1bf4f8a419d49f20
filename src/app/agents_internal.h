/* agents_internal.h: what the files of the agent pool share.
 *
 * agents.c owns the pool (membership, connections, health, the tool list
 * it serves); agent_calls.c the calls (routing, retries, fallback, input
 * across eras); agents_admin.c the admin tools. */
#ifndef SB_APP_AGENTS_INTERNAL_H
#define SB_APP_AGENTS_INTERNAL_H

#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_internal.h"
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

typedef struct attempt attempt;

struct sb_app_agents {
  sb_app *app;
  sb_registry *reg;
  agent **list;
  size_t len;
  attempt *attempts; /* calls in progress (for relays) */
  int stopping;
};

struct agent {
  sb_app_agents *owner;
  sb_agent_def *def; /* own reference */
  sb_channel *ch;
  sb_mcp_client *client;
  json_t *tools;   /* the agent's own tool list, or NULL before listing */
  json_t *listing; /* pages gathered by a tools/list in progress */
  uint64_t tools_fresh_until; /* ttlMs of a modern agent's list; 0 = until
                                 list_changed (legacy agents) */
  uv_timer_t restart_timer;
  uv_timer_t health_timer;
  unsigned restarts;
  int closing;
  int from_config; /* defined in the config file (reload may remove it) */
  int removed;     /* shut down: no more retries on it */
};

struct attempt {
  sb_app_agents *owner;
  sb_mcp_call *call;   /* the caller's; NULL once answered or cancelled */
  char *tool;          /* the agent-side tool name */
  json_t *arguments;   /* own reference */
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
};

/* agents.c */
double agents_random01(void);
agent *agents_find(sb_app_agents *o, const char *id);
int agents_serves_tool(agent *a, const char *tool);

/* agent_calls.c */
/* The provider's call_tool: agent__tool calls and the admin tools. */
int agents_call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *args);
/* The caller of request req (NULL if none or answered). */
sb_mcp_call *agents_call_of_request(agent *a, sb_mcp_request *req);
/* A legacy agent's request for a modern caller: park the call and answer
 * the caller with input_required. 0 if parked. */
int agents_park_request(agent *a, sb_mcp_request *req, json_t *id,
                        const char *method, json_t *params);
/* Calls waiting to retry on a (going away) are answered now. */
void agents_abandon_attempts(agent *a);

/* agents_admin.c */
void agents_admin_list(json_t *out);
/* 1 if name is an admin tool (the call is then answered). */
int agents_admin_call(sb_app_agents *o, sb_mcp_call *call, const char *name,
                      json_t *args);

#endif
