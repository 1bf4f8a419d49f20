/* calls.c: the gateway's calls to agents (sb_gateway_call_*).
 *
 * A call names an agent, or a capability whose agents the registry ranks
 * (with the context, if there is one: route.c). Each attempt goes through
 * the registry's breaker and concurrency limit and has the agent's
 * deadline (a timeout cancels at the agent). How an attempt ended is a C
 * value, and sb_gateway_decide turns it into what may follow: the breaker
 * hears of transport failures only; a request that never reached the agent
 * is sent again (with backoff and jitter) or to the next agent of the
 * ranking; one the agent may have acted on only when the tool is
 * idempotent. An agent that is not connected yet is waited for, once, up
 * to its timeout. Whatever happens, on_done runs once.
 *
 * The caller is a set of callbacks, not an MCP request: the MCP paths
 * (mcp_calls.c) are one caller, the workflow engine another. An agent's
 * requests for input reach the caller as sb_gateway_input values, in
 * either era: a legacy agent's own request (sampling, elicitation, roots)
 * sent while it serves the call, or a modern agent's input_required
 * result, whose questions are asked one by one and whose answers go back
 * with the agent's requestState (at most MAX_ROUNDS rounds), unless the
 * caller takes input_required as its result (pass_input_required).
 *
 * A call's state is one enum (call_state); the transitions are in
 * try_agent, on_answer, the timers and finish.
 */
#include "gateway/gateway_internal.h"

#define MODULE "agents"
#define MAX_ROUNDS 8

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
  int waited_connect;
  uv_timer_t *timer;    /* backoff and connect waits */
  uv_timer_t *deadline; /* the whole call's */
  /* input_required rounds */
  unsigned rounds;
  json_t *answers;      /* inputResponses being gathered */
  size_t asked;         /* questions still unanswered */
  int asking_loop;      /* inside ask_questions's loop */
  int retry_due;        /* every answer came in during that loop */
  sb_gateway_input *inputs;
  int holds;             /* code that touches the call after a callback
                            that may end it: finish() leaves freeing to
                            whoever drops the last hold */
  int store_op;          /* a context read or write is under way: it
                            frees the call if the call ended meanwhile */
  char *named;           /* the agent named, while the context is read */
  int record_tries;      /* metadata.agents writes that lost a race */
  json_t *kept_result, *kept_error; /* the answer, while recording */
  json_t *meta;          /* the caller's _meta members */
  json_t *fell_back;     /* [{agent, outcome}] passed over, in order */
  int caller_context;    /* the caller gave the context: no recording */
  sb_gateway_call *next, *prev; /* owner->calls */
};

/* ---- inputs ---------------------------------------------------------------- */

static void input_unlink(sb_gateway_input *in) {
  for (sb_gateway_input **pp = &in->call->inputs; *pp; pp = &(*pp)->next)
    if (*pp == in) {
      *pp = in->next;
      return;
    }
}

static void input_free(sb_gateway_input *in) {
  gw_sampling_abandon(in->sampling);
  json_decref(in->agent_req_id);
  json_decref(in->params);
  sb_free(in->key);
  sb_free(in->method);
  sb_free(in);
}

/* Drop the call's questions of the agent-request kind (all when every is
 * set): the request they belonged to ended. The agent is told nothing
 * more; the caller forgets them. */
static void drop_inputs(sb_gateway_call *c, int every) {
  for (sb_gateway_input **pp = &c->inputs; *pp;) {
    sb_gateway_input *in = *pp;
    if (!every && in->kind != INPUT_AGENT_REQUEST) {
      pp = &in->next;
      continue;
    }
    *pp = in->next;
    if (c->o.on_input_withdrawn && !in->sampling)
      c->o.on_input_withdrawn(c->o.ud, in);
    input_free(in);
  }
}

const char *sb_gateway_input_method(const sb_gateway_input *in) {
  return in->method;
}
json_t *sb_gateway_input_params(const sb_gateway_input *in) {
  return in->params;
}
const char *sb_gateway_input_capability(const sb_gateway_input *in) {
  return gw_capability_for(in->method);
}
void gw_input_set_sampling(sb_gateway_input *in, gw_sampling *job) {
  in->sampling = job;
}
const sb_agent_def *gw_input_agent_def(const sb_gateway_input *in) {
  const agent *a = in->a ? in->a : in->call->current;
  return a ? a->def : NULL;
}

const char *gw_capability_for(const char *method) {
  if (strcmp(method, "sampling/createMessage") == 0) return "sampling";
  if (strcmp(method, "elicitation/create") == 0) return "elicitation";
  if (strcmp(method, "roots/list") == 0) return "roots";
  return NULL;
}

/* ---- bookkeeping ------------------------------------------------------------ */

static void timer_free(uv_timer_t *t) {
  if (t) uv_close((uv_handle_t *)t, (uv_close_cb)sb_free);
}

static void call_free(sb_gateway_call *c) {
  if (c->prev) c->prev->next = c->next;
  else if (c->owner && c->owner->calls == c) c->owner->calls = c->next;
  if (c->next) c->next->prev = c->prev;
  for (size_t i = 0; i < c->ntried; i++) sb_free(c->tried[i]);
  sb_free(c->tried);
  sb_free(c->tool);
  sb_free(c->tenant);
  sb_free(c->log_level);
  json_decref(c->client_caps);
  json_decref(c->params);
  json_decref(c->extra);
  json_decref(c->answers);
  sb_free(c->named);
  json_decref(c->kept_result);
  json_decref(c->meta);
  json_decref(c->kept_error);
  json_decref(c->fell_back);
  gw_route_free(c->route);
  timer_free(c->timer);
  timer_free(c->deadline);
  sb_free(c);
}

static const char *agent_id_of(const sb_gateway_call *c) {
  return c->current ? c->current->def->id : NULL;
}

/* End the call: on_done once, then free. Open questions are withdrawn
 * first (an agent still waiting for an answer gets an error). */
static void finish(sb_gateway_call *c, sb_gateway_result *r) {
  if (c->state == CALL_DONE) return;
  c->state = CALL_DONE;
  for (sb_gateway_input *in = c->inputs; in; in = in->next)
    if (in->kind == INPUT_AGENT_REQUEST && in->a && in->a->client)
      sb_mcp_client_respond(
          in->a->client, in->agent_req_id, NULL,
          json_pack("{siss}", "code", SB_RPC_INTERNAL_ERROR, "message",
                    "the call this request belongs to ended before the "
                    "client answered"));
  drop_inputs(c, 1);
  if (c->req) { /* cancelled or stopped mid-flight */
    sb_mcp_request *req = c->req;
    c->req = NULL;
    sb_mcp_request_cancel(req, r->message ? r->message : "call ended");
  }
  if (c->ticket_open) {
    c->ticket_open = 0;
    uint64_t now = sb_now_ms();
    sb_registry_call_end(c->owner->reg, c->current->def->id, &c->ticket, 1,
                         now - c->started_ms, now);
  }
  r->agent = agent_id_of(c);
  r->agent_modern = c->current && c->current->client &&
                    sb_mcp_client_is_modern(c->current->client);
  c->o.on_done(c->o.ud, r);
  /* else sb_gateway_call_start, or the store's callback, frees it */
  if (!c->holds && !c->store_op) call_free(c);
}

static void fail(sb_gateway_call *c, sb_gateway_outcome outcome,
                 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(sb_gateway_call *c, sb_gateway_outcome outcome,
                 const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  sb_gateway_result r = {.outcome = outcome, .message = msg};
  finish(c, &r);
}

static int was_tried(sb_gateway_call *c, const char *id) {
  for (size_t i = 0; i < c->ntried; i++)
    if (strcmp(c->tried[i], id) == 0) return 1;
  return 0;
}

/* The next agent to try: by the route's ranking, or for a call that named
 * an agent, by the registry's ranking for a capability that agent has;
 * one that serves the tool, is connected and has not been tried. */
static agent *next_agent(sb_gateway_call *c, const sb_agent_def *origin) {
  sb_gateway *o = c->owner;
  if (c->o.no_fallback) return NULL;
  if (c->route) {
    for (size_t i = 0; i < c->route->n; i++) {
      agent *a = gw_agent_find(o, c->route->ids[i]);
      if (a && !was_tried(c, a->def->id) && a->client &&
          sb_mcp_client_connected(a->client) &&
          (!c->tool || gw_agent_serves_tool(a, c->tool)))
        return a;
    }
    return NULL;
  }
  sb_registry_candidate cands[32];
  for (size_t k = 0; k < origin->capabilities.len; k++) {
    int n = sb_registry_rank(o->reg, origin->capabilities.items[k], NULL,
                             sb_now_ms(), cands, 32, NULL);
    for (int i = 0; i < n && i < 32; i++) {
      agent *a = gw_agent_find(o, cands[i].def->id);
      if (a && !was_tried(c, a->def->id) && cands[i].available && a->client &&
          sb_mcp_client_connected(a->client) &&
          (!c->tool || gw_agent_serves_tool(a, c->tool)))
        return a;
    }
  }
  return NULL;
}

static void try_agent(sb_gateway_call *c, agent *a);

static int timer_ready(sb_gateway_call *c, uv_timer_t **slot) {
  if (*slot) return 1;
  if (!(*slot = sb_malloc(sizeof **slot))) return 0;
  uv_timer_init(c->owner->opts.loop, *slot);
  (*slot)->data = c;
  return 1;
}

static void on_timer(uv_timer_t *timer) {
  sb_gateway_call *c = timer->data;
  if (c->state != CALL_BACKOFF && c->state != CALL_WAIT_CONNECT) return;
  try_agent(c, c->current);
}

static void on_deadline(uv_timer_t *timer) {
  sb_gateway_call *c = timer->data;
  fail(c, SB_GATEWAY_TIMED_OUT, "agent %s: the call's deadline of %llu ms "
       "passed", agent_id_of(c) ? agent_id_of(c) : "(none)",
       (unsigned long long)c->o.deadline_ms);
}

void gw_resume_waiting(agent *a) {
  for (sb_gateway_call *c = a->owner->calls, *next; c; c = next) {
    next = c->next;
    if (c->current != a || c->state != CALL_WAIT_CONNECT) continue;
    uv_timer_stop(c->timer);
    try_agent(c, a);
  }
}

void gw_abandon_attempts(agent *a) {
  for (sb_gateway_call *c = a->owner->calls, *next; c; c = next) {
    next = c->next;
    if (c->current == a && !c->req && c->state != CALL_DONE)
      fail(c, SB_GATEWAY_NOT_CONNECTED,
           "agent %s: removed while the call waited to retry", a->def->id);
  }
}

/* An agent of the ranking was passed over for the next one: the routing
 * report names it and why (how a fallback came about). */
static void note_fallback(sb_gateway_call *c, agent *a,
                          sb_gateway_outcome why) {
  if (!c->fell_back && !(c->fell_back = json_array())) return;
  json_array_append_new(c->fell_back,
                        json_pack("{ssss}", "agent", a->def->id, "outcome",
                                  sb_gateway_outcome_name(why)));
}

/* The routing report of the answer, with the agents passed over. */
static json_t *routing_report(sb_gateway_call *c, const char *agent_id,
                              int64_t version, const char *record_error) {
  json_t *r = gw_route_report(c->route, agent_id, version, record_error);
  if (r && c->fell_back)
    json_object_set(r, "fellBackFrom", c->fell_back);
  return r;
}

/* ---- sending ----------------------------------------------------------------- */

static void on_answer(void *ud, sb_mcp_outcome mcp_outcome, json_t *result,
                      json_t *error);

static void on_agent_progress(void *ud, json_t *params) {
  sb_gateway_call *c = ud;
  if (c->o.on_progress) c->o.on_progress(c->o.ud, params);
}

/* The request's params for agent a: the caller's, the agent's own name
 * for the tool or prompt, the retry's inputs, and in _meta for a modern
 * agent the caller's log level and capabilities (so it asks only for
 * input this caller can give), and for a routed call the projection of
 * the context the agent requires. */
static json_t *agent_params(sb_gateway_call *c, agent *a) {
  /* A shallow copy: the caller's members (the arguments) go as they are,
   * without a copy per try; only our own members change. */
  json_t *params = c->params ? json_copy(c->params) : json_object();
  if (!params) return NULL;
  if (c->tool) json_object_set_new(params, "name", json_string(c->tool));
  if (strcmp(c->o.method, "tools/call") == 0 &&
      !json_object_get(params, "arguments"))
    json_object_set_new(params, "arguments", json_object());
  if (c->extra) json_object_update(params, c->extra);
  json_t *meta = c->meta ? json_copy(c->meta) : json_object();
  if (a->client && sb_mcp_client_is_modern(a->client)) {
    if (c->log_level)
      json_object_set_new(meta, SB_MCP_META_LOG_LEVEL, json_string(c->log_level));
    /* ...with sampling when switchboard answers it with the agent's models */
    json_t *caps = gw_sampling_caps(c->owner, a->def, c->client_caps);
    if (caps) json_object_set_new(meta, SB_MCP_META_CLIENT_CAPS, caps);
  }
  /* The caller's tenant, authenticated by switchboard (never taken from
   * the caller's own _meta): agents shared by several dealer groups keep
   * each group's data apart by it. */
  const char *tenant = c->tenant ? c->tenant : c->owner->default_tenant;
  if (tenant) json_object_set_new(meta, SB_GATEWAY_META_TENANT, json_string(tenant));
  json_t *projection = c->route ? gw_route_projection(c->route, a) : NULL;
  if (projection) json_object_set_new(meta, SB_GATEWAY_META_CONTEXT, projection);
  if (json_object_size(meta)) json_object_set_new(params, "_meta", meta);
  else json_decref(meta);
  return params;
}

static uint64_t attempt_timeout(sb_gateway_call *c, agent *a) {
  uint64_t t = (uint64_t)a->def->limits.timeout_ms;
  if (c->deadline_at) {
    uint64_t now = sb_now_ms();
    uint64_t left = c->deadline_at > now ? c->deadline_at - now : 1;
    if (left < t) t = left;
  }
  return t;
}

static void try_agent(sb_gateway_call *c, agent *a) {
  sb_gateway *o = c->owner;
  if (o->stopping) {
    fail(c, SB_GATEWAY_STOPPING, "agent %s: switchboard is stopping",
         a->def->id);
    return;
  }
  if (!was_tried(c, a->def->id)) {
    char **grown = sb_realloc(c->tried, (c->ntried + 1) * sizeof *grown);
    if (grown) {
      c->tried = grown;
      c->tried[c->ntried++] = sb_strdup(a->def->id);
    }
  }
  c->current = a;
  c->state = CALL_STARTING;
  /* An agent not connected yet (just registered, just started) or
   * reconnecting (its session ended, it crashed) is waited for, once, at
   * most its timeout; a call routed by capability rather goes to a
   * connected agent of its ranking first. An agent the caller named is
   * waited for. */
  int up = a->client && sb_mcp_client_connected(a->client);
  int by_capability = c->route && c->route->capability;
  if (!up && by_capability && c->retries == 0 && !c->waited_connect) {
    agent *next = next_agent(c, a->def);
    if (next) {
      SB_INFO(MODULE, "agent %s not connected; trying %s", a->def->id,
              next->def->id);
      note_fallback(c, a, SB_GATEWAY_NOT_CONNECTED);
      try_agent(c, next);
      return;
    }
  }
  if (!up && !a->removed && !c->waited_connect && timer_ready(c, &c->timer)) {
    c->waited_connect = 1;
    c->state = CALL_WAIT_CONNECT;
    uv_timer_start(c->timer, on_timer, attempt_timeout(c, a), 0);
    return;
  }
  sb_registry_refusal why = SB_REFUSE_NONE;
  if (!up || sb_registry_call_begin(o->reg, a->def->id, sb_now_ms(),
                                    &c->ticket, &why) != 0) {
    sb_gateway_outcome refused = up ? gw_refusal_outcome(why)
                                    : SB_GATEWAY_NOT_CONNECTED;
    agent *next = sb_gateway_decide(refused, 0).fallback ? next_agent(c, a->def)
                                                         : NULL;
    if (next) {
      SB_INFO(MODULE, "agent %s unavailable (%s); falling back to %s",
              a->def->id, sb_gateway_outcome_name(refused), next->def->id);
      note_fallback(c, a, refused);
      try_agent(c, next);
      return;
    }
    fail(c, refused, "agent %s: unavailable (%s)", a->def->id,
         sb_gateway_outcome_name(refused));
    return;
  }
  c->started_ms = sb_now_ms();
  c->ticket_open = 1;
  c->state = CALL_IN_FLIGHT;
  c->req = sb_mcp_client_request(a->client, c->o.method, agent_params(c, a),
                                 attempt_timeout(c, a),
                                 c->o.on_progress ? on_agent_progress : NULL,
                                 on_answer, c);
}

/* A modern caller takes an agent's input_required as its own result only
 * when it has the capability of every question; otherwise (a client that
 * cannot sample) the gateway asks them itself, so switchboard's models can
 * answer a sampling the client could not. */
static int caller_can_answer(sb_gateway_call *c, json_t *result) {
  const char *key;
  json_t *q;
  json_object_foreach(json_object_get(result, "inputRequests"), key, q) {
    const char *method = json_string_value(json_object_get(q, "method"));
    const char *cap = method ? gw_capability_for(method) : NULL;
    if (cap && !json_object_get(c->client_caps, cap)) return 0;
  }
  return 1;
}

/* ---- input_required from a modern agent ----------------------------------- */

static void retry_with_answers(sb_gateway_call *c) {
  json_t *extra = json_pack("{sO}", "inputResponses", c->answers);
  json_t *state = c->extra ? json_object_get(c->extra, "requestState") : NULL;
  if (state) json_object_set(extra, "requestState", state);
  json_decref(c->extra);
  c->extra = extra;
  json_decref(c->answers);
  c->answers = NULL;
  try_agent(c, c->current);
}

/* Ask the caller each question of an input_required result; once all are
 * answered the call goes back to the agent with them. */
static void ask_questions(sb_gateway_call *c, json_t *result) {
  agent *a = c->current;
  json_t *requests = json_object_get(result, "inputRequests");
  json_t *state = json_object_get(result, "requestState");
  if (++c->rounds > MAX_ROUNDS) {
    fail(c, SB_GATEWAY_INPUT_REFUSED,
         "agent %s: still asking for input after %d rounds", a->def->id,
         MAX_ROUNDS);
    return;
  }
  json_decref(c->extra);
  c->extra = state ? json_pack("{sO}", "requestState", state) : NULL;
  json_decref(c->answers);
  c->answers = json_object();
  c->asked = json_object_size(requests);
  c->state = CALL_ASKING;
  if (c->asked == 0) { /* nothing to ask: retry with the state alone */
    retry_with_answers(c);
    return;
  }
  /* An answer may arrive inside on_input (in-process callers): the retry
   * waits until the loop is done with `requests`. */
  const char *key;
  json_t *q;
  c->asking_loop = 1;
  c->retry_due = 0;
  json_object_foreach(requests, key, q) {
    const char *method = json_string_value(json_object_get(q, "method"));
    sb_gateway_input *in = sb_calloc(1, sizeof *in);
    if (in) {
      in->call = c;
      in->kind = INPUT_REQUIRED;
      in->key = sb_strdup(key);
      in->method = sb_strdup(method ? method : "");
      in->params = json_incref(json_object_get(q, "params"));
      in->next = c->inputs;
      c->inputs = in;
    }
    /* The caller may answer inside on_input, even with an error that
     * ends the call: hold it until the loop is done with it. */
    c->holds++;
    int refused = !in || !in->key || !in->method || !method ||
                  !c->o.on_input || c->o.on_input(c->o.ud, in) != 0;
    /* ...or switchboard answers it with the agent's models */
    if (refused && in && in->key && in->method && c->state != CALL_DONE &&
        gw_sampling_start(c->owner, a->def, in) == 0)
      refused = 0;
    c->holds--;
    if (c->state == CALL_DONE) { /* ended inside (finish() dropped every
                                    question, this one too): free it now */
      call_free(c);
      return;
    }
    if (refused) {
      if (in) {
        input_unlink(in);
        input_free(in);
      }
      c->asking_loop = 0;
      fail(c, SB_GATEWAY_INPUT_REFUSED,
           "agent %s: needs %s from the client, which cannot answer it",
           a->def->id, method ? method : "input");
      return;
    }
  }
  c->asking_loop = 0;
  if (c->retry_due) retry_with_answers(c);
}

void sb_gateway_input_answer(sb_gateway_input *in, json_t *result,
                             json_t *error) {
  sb_gateway_call *c = in->call;
  input_unlink(in);
  if (in->kind == INPUT_AGENT_REQUEST) {
    if (in->a && in->a->client)
      sb_mcp_client_respond(in->a->client, in->agent_req_id, result, error);
    else {
      json_decref(result);
      json_decref(error);
    }
    input_free(in);
    return;
  }
  if (error) {
    const char *m = json_string_value(json_object_get(error, "message"));
    char msg[400];
    snprintf(msg, sizeof msg, "agent %s: the client did not answer %s: %s",
             agent_id_of(c), in->key, m ? m : "error");
    json_decref(error);
    json_decref(result);
    input_free(in);
    sb_gateway_result r = {.outcome = SB_GATEWAY_INPUT_REFUSED, .message = msg};
    finish(c, &r);
    return;
  }
  json_object_set_new(c->answers, in->key, result ? result : json_null());
  input_free(in);
  if (--c->asked > 0) return;
  if (c->asking_loop) c->retry_due = 1; /* ask_questions retries after */
  else retry_with_answers(c);
}

/* ---- a legacy agent's own requests ------------------------------------------ */

void gw_input_from_agent(agent *a, sb_mcp_request *related, json_t *id,
                         const char *method, json_t *params) {
  sb_gateway_call *c = NULL;
  for (sb_gateway_call *t = a->owner->calls; t && !c; t = t->next)
    if (t->current == a && t->req && t->req == related) c = t;
  sb_gateway_input *in = c ? sb_calloc(1, sizeof *in) : NULL;
  if (in) {
    in->call = c;
    in->kind = INPUT_AGENT_REQUEST;
    in->a = a;
    in->agent_req_id = json_incref(id);
    in->method = sb_strdup(method);
    in->params = json_incref(params);
    in->next = c->inputs;
    c->inputs = in;
    if (in->method && c->o.on_input && c->o.on_input(c->o.ud, in) == 0) return;
    /* The caller cannot answer: switchboard may, with the agent's models. */
    if (in->method && gw_sampling_start(a->owner, a->def, in) == 0) return;
    input_unlink(in);
    input_free(in);
  }
  char msg[256];
  snprintf(msg, sizeof msg,
           "switchboard cannot pass %s to the caller of this call (%s)", method,
           !c ? "no call in progress"
              : "it did not declare the capability, or has nobody to ask");
  sb_mcp_client_respond(a->client, id, NULL,
                        json_pack("{siss}", "code", SB_RPC_METHOD_NOT_FOUND,
                                  "message", msg));
}

void gw_input_withdrawn(agent *a, json_t *agent_req_id) {
  for (sb_gateway_call *c = a->owner->calls; c; c = c->next) {
    for (sb_gateway_input *in = c->inputs; in; in = in->next) {
      if (in->kind != INPUT_AGENT_REQUEST || in->a != a ||
          !json_equal(in->agent_req_id, agent_req_id))
        continue;
      input_unlink(in);
      if (c->o.on_input_withdrawn && !in->sampling)
        c->o.on_input_withdrawn(c->o.ud, in);
      input_free(in);
      return;
    }
  }
}

void gw_inputs_agent_gone(agent *a) {
  for (sb_gateway_call *c = a->owner->calls; c; c = c->next)
    for (sb_gateway_input *in = c->inputs; in; in = in->next)
      if (in->a == a) in->a = NULL;
}

/* ---- answers ------------------------------------------------------------------- */

/* ---- the context: read before routing, written after the answer ------------ */

/* The agent's answer is final: the call ends once the agent is recorded in
 * the context's metadata.agents (or recording failed: the answer still
 * goes out, with recordError in the routing report). Recording reads the
 * head and, unless the agent is there already, appends it with a JSON
 * Patch at that version; a write that lost a race reads again, at most
 * RECORD_TRIES times. Each step is issued only while the call lives, so
 * nothing reaches the store (or the gateway) once it has ended. */
#define RECORD_TRIES 4

static void recorded(sb_gateway_call *c, int64_t version, const sb_error *err) {
  if (err)
    SB_WARN(MODULE, "agent %s answered, but recording it in context %s "
                    "failed: %s",
            agent_id_of(c), c->route->context_id, err->msg);
  json_t *routing = routing_report(c, agent_id_of(c), version,
                                  err ? err->msg : NULL);
  sb_gateway_result r = {.outcome = SB_GATEWAY_ANSWERED,
                         .result = c->kept_result,
                         .error = c->kept_error,
                         .routing = routing};
  finish(c, &r);
  json_decref(routing);
}

/* A store callback for a call that may have ended meanwhile: 1 (and the
 * call is freed) if it has. */
static int store_back(sb_gateway_call *c) {
  c->store_op = 0;
  if (c->state != CALL_DONE) return 0;
  call_free(c);
  return 1;
}

static void record_read(void *ud, const sb_ctx_result *res);

static void record_start_read(sb_gateway_call *c) {
  sb_error err = {0};
  c->store_op = 1;
  if (sb_ctx_get_async(c->owner->opts.ctx, c->tenant, c->route->context_id, 0,
                       record_read, c, &err) != 0) {
    c->store_op = 0;
    recorded(c, 0, &err);
  }
}

static void record_written(void *ud, const sb_ctx_result *res) {
  sb_gateway_call *c = ud;
  if (store_back(c)) return;
  if (res->rc == SB_ECONFLICT && ++c->record_tries < RECORD_TRIES) {
    record_start_read(c);
    return;
  }
  recorded(c, res->rc == 0 ? res->version : 0, res->rc == 0 ? NULL : &res->err);
}

static void record_read(void *ud, const sb_ctx_result *res) {
  sb_gateway_call *c = ud;
  if (store_back(c)) return;
  if (res->rc != 0) {
    recorded(c, 0, &res->err);
    return;
  }
  if (gw_route_lists_agent(res->doc, agent_id_of(c))) {
    recorded(c, res->version, NULL);
    return;
  }
  json_t *patch = json_pack("[{ssssss}]", "op", "add", "path",
                            "/metadata/agents/-", "value", agent_id_of(c));
  sb_error err = {0};
  c->store_op = 1;
  int rc = patch ? sb_ctx_update_async(c->owner->opts.ctx, c->tenant,
                                       c->route->context_id, res->version,
                                       SB_CTX_JSON_PATCH, patch, record_written,
                                       c, &err)
                 : sb_error_set(&err, SB_ENOMEM, "out of memory");
  json_decref(patch);
  if (rc != 0) {
    c->store_op = 0;
    recorded(c, 0, &err);
  }
}

static void record(sb_gateway_call *c, json_t *result, json_t *error) {
  c->kept_result = json_incref(result);
  c->kept_error = json_incref(error);
  c->state = CALL_RECORDING;
  record_start_read(c);
}

/* The context the call is routed with has been read: rank, then go. */
static void context_read(void *ud, const sb_ctx_result *res) {
  sb_gateway_call *c = ud;
  if (store_back(c)) return; /* cancelled or timed out meanwhile */
  if (res->rc != 0) {
    /* Another tenant's id reads exactly like a missing one. */
    fail(c, res->rc == SB_EBUSY ? SB_GATEWAY_BUSY : SB_GATEWAY_INVALID,
         "contextId: %s", res->err.msg);
    return;
  }
  c->route->doc = json_incref(res->doc);
  agent *named = c->named ? gw_agent_find(c->owner, c->named) : NULL;
  if (c->named && !named) {
    fail(c, SB_GATEWAY_NO_AGENT, "no agent %s", c->named);
    return;
  }
  sb_error err = {0};
  if (gw_route_rank(c->owner, c->route, named, c->tool, &err) != 0) {
    fail(c, SB_GATEWAY_NO_AGENT, "%s", err.msg);
    return;
  }
  try_agent(c, named ? named : gw_agent_find(c->owner, c->route->ids[0]));
}

static int64_t version_of_doc(const json_t *doc) {
  return (int64_t)json_integer_value(json_object_get(doc, "version"));
}

/* The agent answered, or the attempt ended here: the outcome says which. */
static void on_answer(void *ud, sb_mcp_outcome mcp_outcome, json_t *result,
                      json_t *error) {
  sb_gateway_call *c = ud;
  agent *a = c->current;
  sb_gateway *o = c->owner;
  uint64_t now = sb_now_ms();
  c->req = NULL;
  /* Questions the agent asked during this request die with it. */
  drop_inputs(c, 0);
  sb_gateway_outcome outcome = gw_outcome_of(mcp_outcome);
  int repeatable = strcmp(c->o.method, "tools/call") != 0 ||
                   sb_agent_def_tool_idempotent(a->def, c->tool);
  sb_gateway_decision d = sb_gateway_decide(outcome, repeatable);
  if (c->ticket_open) {
    c->ticket_open = 0;
    sb_agent_state before = {0}, after = {0};
    int known = sb_registry_state(o->reg, a->def->id, now, &before) == 0;
    sb_registry_call_end(o->reg, a->def->id, &c->ticket, !d.breaker_failure,
                         now - c->started_ms, now);
    if (known && o->opts.on_breaker &&
        sb_registry_state(o->reg, a->def->id, now, &after) == 0) {
      const char *tenant = c->tenant ? c->tenant : o->default_tenant;
      if (after.breaker == SB_BREAKER_OPEN && before.breaker != SB_BREAKER_OPEN)
        o->opts.on_breaker(o->opts.breaker_ud, tenant, a->def->id, 1);
      else if (after.breaker == SB_BREAKER_CLOSED &&
               before.breaker != SB_BREAKER_CLOSED)
        o->opts.on_breaker(o->opts.breaker_ud, tenant, a->def->id, 0);
    }
  }
  if (c->state == CALL_DONE) return; /* finish() cancelled this request */
  if (outcome == SB_GATEWAY_CANCELLED) {
    fail(c, outcome, "agent %s: cancelled", a->def->id);
    return;
  }
  if (o->stopping) {
    fail(c, SB_GATEWAY_STOPPING, "agent %s: switchboard is stopping",
         a->def->id);
    return;
  }
  if (outcome == SB_GATEWAY_ANSWERED) {
    const char *rt = json_string_value(json_object_get(result, "resultType"));
    if (rt && strcmp(rt, "input_required") == 0 &&
        (!c->o.pass_input_required || !caller_can_answer(c, result))) {
      ask_questions(c, result);
      return;
    }
    if (rt && strcmp(rt, "complete") != 0 && strcmp(rt, "input_required") != 0) {
      fail(c, SB_GATEWAY_INVALID, "agent %s: answered with unknown resultType %s",
           a->def->id, rt);
      return;
    }
    if (result && c->route && c->route->context_id && !c->caller_context) {
      record(c, result, error);
      return;
    }
    sb_gateway_result r = {.outcome = SB_GATEWAY_ANSWERED,
                           .result = result,
                           .error = error};
    json_t *routing = NULL;
    if (result && c->route)
      r.routing = routing = routing_report(
          c, a->def->id,
          c->caller_context ? version_of_doc(c->route->doc) : 0, NULL);
    finish(c, &r);
    json_decref(routing);
    return;
  }
  if (c->deadline_at && sb_now_ms() + 10 >= c->deadline_at) {
    /* The call's time is up (the attempt's timeout was cut to it): no
     * retry, no fallback, and the caller hears it was the deadline. */
    on_deadline(c->deadline);
    return;
  }
  const char *why = json_string_value(json_object_get(error, "message"));
  if (d.retry && !a->removed && c->retries < (unsigned)a->def->limits.retries &&
      a->client &&
      (outcome == SB_GATEWAY_SESSION_EXPIRED ||
       sb_mcp_client_connected(a->client)) &&
      timer_ready(c, &c->timer)) {
    uint64_t delay = sb_backoff_delay_ms(c->retries++, RETRY_BASE_MS,
                                         RETRY_CAP_MS, gw_random01());
    SB_INFO(MODULE, "agent %s: retrying %s in %llu ms after: %s", a->def->id,
            c->tool ? c->tool : c->o.method, (unsigned long long)delay, why);
    c->state = CALL_BACKOFF;
    uv_timer_start(c->timer, on_timer, delay, 0);
    return;
  }
  agent *next = d.fallback ? next_agent(c, a->def) : NULL;
  if (next) {
    SB_INFO(MODULE, "agent %s failed (%s); falling back to %s", a->def->id, why,
            next->def->id);
    note_fallback(c, a, outcome);
    try_agent(c, next);
    return;
  }
  fail(c, outcome, "%s", why ? why : "the agent failed");
}

/* ---- the API ---------------------------------------------------------------- */

int sb_gateway_call_start(sb_gateway *o, const sb_gateway_call_options *opts,
                          sb_gateway_call **out, sb_error *err) {
  *out = NULL;
  static const char *const methods[] = {"tools/call", "prompts/get",
                                       "resources/read", "completion/complete"};
  const char *method = NULL;
  for (size_t i = 0; opts->method && i < 4; i++)
    if (strcmp(opts->method, methods[i]) == 0) method = methods[i];
  if (!opts->on_done || !method || !opts->agent == !opts->capability)
    return sb_error_set(err, SB_EINVAL,
                        "a call needs on_done, a method (tools/call, "
                        "prompts/get, resources/read or completion/complete),"
                        " and an agent or a capability (not both)");
  agent *first = NULL;
  if (opts->agent && !(first = gw_agent_find(o, opts->agent)))
    return sb_error_set(err, SB_ENOENT, "no agent %s", opts->agent);
  if (o->stopping)
    return sb_error_set(err, SB_ESTATE, "switchboard is stopping");
  sb_gateway_call *c = sb_calloc(1, sizeof *c);
  if (!c) return sb_error_set(err, SB_ENOMEM, "out of memory");
  c->owner = o;
  c->o = *opts;
  c->o.method = method; /* ours: static */
  int oom = (opts->name && !(c->tool = sb_strdup(opts->name))) ||
            (opts->tenant && !(c->tenant = sb_strdup(opts->tenant))) ||
            (opts->log_level && !(c->log_level = sb_strdup(opts->log_level))) ||
            (opts->client_caps && !(c->client_caps = json_incref(opts->client_caps))) ||
            (opts->params && !(c->params = json_copy(opts->params))) ||
            (opts->input_extra && !(c->extra = json_copy(opts->input_extra))) ||
            (opts->meta && !(c->meta = json_incref(opts->meta)));
  /* The options' strings are the caller's: only our copies are kept. */
  c->o.agent = c->o.capability = c->o.context_id = c->o.tenant = NULL;
  c->o.name = c->o.log_level = NULL;
  c->o.params = c->o.client_caps = c->o.input_extra = NULL;
  c->o.context_doc = c->o.meta = NULL;
  c->next = o->calls;
  if (o->calls) o->calls->prev = c;
  o->calls = c;
  if (oom) {
    call_free(c);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  if ((opts->capability || opts->context_id) &&
      !(c->route = gw_route_new(o, opts, err))) {
    call_free(c);
    return err && err->code ? err->code : SB_EINVAL;
  }
  if (opts->deadline_ms && timer_ready(c, &c->deadline)) {
    c->deadline_at = sb_now_ms() + opts->deadline_ms;
    uv_timer_start(c->deadline, on_deadline, opts->deadline_ms, 0);
  }
  if (opts->context_id && opts->context_doc) {
    /* The caller holds the context: rank from it now. */
    c->caller_context = 1;
    c->route->doc = json_incref(opts->context_doc);
  } else if (opts->context_id) {
    /* Ranked once the context is read (off the loop, by the store). */
    if (first && !(c->named = sb_strdup(first->def->id))) {
      call_free(c);
      return sb_error_set(err, SB_ENOMEM, "out of memory");
    }
    sb_error cerr = {0};
    int rc = sb_ctx_get_async(o->opts.ctx, c->tenant, opts->context_id, 0,
                              context_read, c, &cerr);
    if (rc != 0) {
      call_free(c);
      return sb_error_set(err, rc == SB_EBUSY ? SB_EBUSY : SB_EINVAL,
                          "contextId: %s", cerr.msg);
    }
    c->state = CALL_READING;
    c->store_op = 1;
    *out = c;
    return 0;
  }
  if (c->route && gw_route_rank(o, c->route, first, c->tool, err) != 0) {
    call_free(c);
    return err && err->code ? err->code : SB_ENOENT;
  }
  if (!first) first = gw_agent_find(o, c->route->ids[0]);
  /* The first try may end the call at once (every agent refusing): then
   * on_done has run and the caller gets no handle. */
  c->holds++;
  try_agent(c, first);
  c->holds--;
  if (c->state == CALL_DONE) {
    call_free(c);
    return 0;
  }
  *out = c;
  return 0;
}

void sb_gateway_call_cancel(sb_gateway_call *c, const char *reason) {
  char msg[300];
  snprintf(msg, sizeof msg, "agent %s: cancelled (%s)",
           agent_id_of(c) ? agent_id_of(c) : "(none)",
           reason ? reason : "by the caller");
  sb_gateway_result r = {.outcome = SB_GATEWAY_CANCELLED, .message = msg};
  finish(c, &r);
}

/* A log message from the agent goes to the calls it is serving (each
 * filtered by that caller); with none in flight, to the legacy sessions of
 * its per-agent endpoint that asked for logs. A line not tied to a request
 * cannot be attributed to a tenant, so when tenants are configured it goes
 * only where every recipient is the same tenant. */
void gw_forward_log(agent *a, json_t *params) {
  const char *tenant = NULL;
  int mixed = 0, any = 0;
  for (sb_gateway_call *c = a->owner->calls; c; c = c->next) {
    if (c->current != a || !c->req) continue;
    const char *who = c->tenant ? c->tenant : "";
    if (tenant && strcmp(tenant, who) != 0) mixed = 1;
    tenant = who;
    any = 1;
  }
  if (mixed) return;
  if (!any) {
    if (!a->owner->opts.tenants_configured)
      gw_mounts_log(a->owner, a->def->id, params);
    return;
  }
  for (sb_gateway_call *c = a->owner->calls; c; c = c->next)
    if (c->current == a && c->req && c->o.on_log) c->o.on_log(c->o.ud, params);
}

void gw_calls_stop(sb_gateway *o) {
  while (o->calls) {
    sb_gateway_call *c = o->calls;
    fail(c, SB_GATEWAY_STOPPING, "switchboard is stopping");
    if (o->calls == c) {
      /* A store operation is under way: its callback frees the call,
       * maybe after the gateway is gone, so the call leaves it now. */
      o->calls = c->next;
      if (c->next) c->next->prev = NULL;
      c->next = c->prev = NULL;
      c->owner = NULL;
    }
  }
}
