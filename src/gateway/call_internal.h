/* call_internal.h: what the files of a gateway call share.
 *
 * calls.c owns a call's lifecycle (starting, sending, the answer,
 * retries, fallback, the end); call_inputs.c its requests for input
 * (input_required rounds, a legacy agent's own requests); call_context.c
 * the context it is routed with (read before routing, written after the
 * answer). Private to those three files.
 */
#ifndef SB_GATEWAY_CALL_INTERNAL_H
#define SB_GATEWAY_CALL_INTERNAL_H

#include "gateway/gateway_internal.h"

typedef enum call_state {
  CALL_STARTING = 0,  /* choosing the agent */
  CALL_READING,       /* reading the context it is routed with */
  CALL_WAIT_CONNECT,  /* the agent is not connected: waiting, once */
  CALL_BACKOFF,       /* a retry waits for its delay */
  CALL_IN_FLIGHT,     /* a request is at the agent */
  CALL_ASKING,        /* input_required: the caller's answers are awaited */
  CALL_RECORDING,     /* answered; the agent goes into metadata.agents */
  CALL_DONE,          /* on_done has run */
} call_state;

typedef enum input_kind {
  INPUT_AGENT_REQUEST = 1, /* a legacy-style request from the agent */
  INPUT_REQUIRED,          /* one question of an input_required result */
} input_kind;

struct sb_gateway_input {
  sb_gateway_call *call;
  input_kind kind;
  json_t *agent_req_id; /* INPUT_AGENT_REQUEST: the agent's request id */
  agent *a;             /* ...and the agent that asked */
  /* ...tied to the call by a guess (nothing on the wire said which): the
   * id of the request it was tied to, the newest that could ask; else 0 */
  json_int_t guessed_for;
  char *key;            /* INPUT_REQUIRED: its key in inputRequests */
  char *method;
  json_t *params;
  gw_sampling *sampling; /* switchboard's models are answering it */
  sb_gateway_input *next; /* call->inputs */
};

struct sb_gateway_call {
  sb_gateway *owner;
  call_state state;
  sb_gateway_call_options o; /* strings and JSON below are our own */
  char *tool;      /* agent-side name, or NULL */
  char *tenant;
  sb_principal *principal; /* a reference, or NULL */
  char *refused_scope;     /* FORBIDDEN's scope */
  char *log_level;
  json_t *client_caps;
  json_t *params;  /* the request's params, without name and _meta */
  json_t *extra;   /* inputResponses / requestState for the next try */
  gw_route *route; /* the ranking (by capability), or NULL */
  char **tried;    /* agent ids tried */
  size_t ntried;
  agent *current;
  sb_mcp_request *req;
  sb_registry_call ticket;
  int ticket_open;
  uint64_t started_ms;
  uint64_t deadline_at; /* 0 = none */
  unsigned retries;
  /* How the try before a retry ended: the call's own outcome if the
   * retry is refused (breaker open, at capacity) with nowhere else to go,
   * rather than the refusal alone. */
  sb_gateway_outcome retried_after;
  char *retried_why;
  int waited_connect;
  int token_retried;    /* sent again once after a refusal, for a new token */
  uv_timer_t *timer;    /* backoff and connect waits */
  uv_timer_t *deadline; /* the whole call's */
  /* input_required rounds */
  unsigned rounds;
  json_t *answers;      /* inputResponses being gathered */
  size_t asked;         /* questions still unanswered */
  int asking_loop;      /* inside gw_call_ask_questions's loop */
  int retry_due;        /* every answer came in during that loop */
  sb_gateway_input *inputs;
  int holds;             /* code that touches the call after a callback
                            that may end it: gw_call_finish() leaves
                            freeing to whoever drops the last hold */
  int store_op;          /* a context read or write is under way: it
                            frees the call if the call ended meanwhile */
  char *named;           /* the agent named, while the context is read */
  int record_tries;      /* metadata.agents writes that lost a race */
  json_t *kept_result, *kept_error; /* the answer, while recording */
  json_t *meta;          /* the caller's _meta members */
  json_t *fell_back;     /* [{agent, outcome}] passed over, in order */
  int caller_context;    /* the caller gave the context: no recording */
  sb_list_link link;     /* in owner->calls */
};

/* Walk owner->calls, newest first: `for (c = gw_calls_first(o); c; c =
 * next) { next = gw_calls_next(c); ... }` survives c's end. */
static inline sb_gateway_call *gw_calls_first(sb_gateway *o) {
  return sb_list_entry(sb_list_first(&o->calls), sb_gateway_call, link);
}
static inline sb_gateway_call *gw_calls_next(sb_gateway_call *c) {
  return sb_list_entry(sb_list_next(&c->link), sb_gateway_call, link);
}

/* calls.c */
/* Unlink the call from owner->calls and free it; on_done is not run. */
void gw_call_free(sb_gateway_call *c);
/* The id of the agent the call is at (borrowed), or NULL. */
const char *gw_call_agent_id(const sb_gateway_call *c);
/* End the call: on_done once, then free. Open questions are withdrawn
 * first (an agent still waiting for an answer gets an error). */
void gw_call_finish(sb_gateway_call *c, sb_gateway_result *r);
/* gw_call_finish with `outcome` and a formatted message. */
void gw_call_fail(sb_gateway_call *c, sb_gateway_outcome outcome,
                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Send the call to agent a (or wait for it, or fall back, or fail). */
void gw_call_try_agent(sb_gateway_call *c, agent *a);
/* Whether two calls come from the same caller: tenant, and the subject
 * within it. What one caller's call brings (an agent's question, its log
 * lines) never goes to another's on a guess. */
int gw_call_same_caller(const sb_gateway_call *x, const sb_gateway_call *y);
/* The routing report of the answer, with the agents passed over (new
 * reference). */
json_t *gw_call_routing_report(sb_gateway_call *c, const char *agent_id,
                               int64_t version, const char *record_error);

/* call_inputs.c */
/* The request the agent's own requests were tied to has ended, or the
 * whole call (then every is set, and the input_required questions go
 * too): each agent request goes to another call when it was tied to this
 * one by a guess and may belong to that other, else the agent is told
 * that its call ended. The caller forgets them all. */
void gw_call_drop_inputs(sb_gateway_call *c, int every);
/* Ask the caller each question of an input_required result (borrowed);
 * once all are answered the call goes back to the agent with them. */
void gw_call_ask_questions(sb_gateway_call *c, json_t *result);

/* call_context.c */
/* The store's callback for the context read before routing (ud: the
 * call): rank, then go. */
void gw_call_context_read(void *ud, const sb_ctx_result *res);
/* The agent's answer is final: record the agent in the context, then end
 * the call with result and error (borrowed; references kept). */
void gw_call_record(sb_gateway_call *c, json_t *result, json_t *error);

#endif
