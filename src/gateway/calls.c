/* calls.c: calls to agents.
 *
 * A call to `agent__tool` goes through the registry: the breaker and the
 * concurrency limit may refuse it, in which case (or when the agent fails
 * it) the next-best agent that shares a capability and serves the same
 * tool is tried. Every attempt has the agent's deadline; a timeout sends
 * notifications/cancelled to the agent. A failed attempt is retried (with
 * exponential backoff and jitter) only when the call never reached the
 * agent or the tool is listed in idempotentTools. Whatever happens, the
 * caller gets one answer that names the agent and the reason.
 */
#include "gateway/gateway_internal.h"

#define MODULE "agents"

/* ---- calls ------------------------------------------------------------- */



sb_mcp_call *gw_call_of_request(agent *a, sb_mcp_request *req) {
  for (attempt *t = a->owner->attempts; t; t = t->next)
    if (t->current == a && t->req == req) return t->call;
  return NULL;
}

static int park_for_modern_caller(attempt *t, json_t *id, const char *method,
                                  json_t *params);

int gw_park_request(agent *a, sb_mcp_request *req, json_t *id,
                        const char *method, json_t *params) {
  for (attempt *t = a->owner->attempts; t; t = t->next)
    if (t->current == a && t->req == req && t->call)
      return park_for_modern_caller(t, id, method, params);
  return SB_ENOENT;
}

static int was_tried(attempt *t, const char *id) {
  for (size_t i = 0; i < t->ntried; i++)
    if (strcmp(t->tried[i], id) == 0) return 1;
  return 0;
}

static void attempt_free(attempt *t) {
  for (attempt **pp = &t->owner->attempts; *pp; pp = &(*pp)->next)
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  for (size_t i = 0; i < t->ntried; i++) sb_free(t->tried[i]);
  sb_free(t->tried);
  sb_free(t->tool);
  sb_free(t->public_name);
  json_decref(t->params);
  json_decref(t->extra);
  json_decref(t->answers);
  json_decref(t->parked_id);
  json_decref(t->final_result);
  json_decref(t->final_error);
  if (t->retry_timer) uv_close((uv_handle_t *)t->retry_timer, (uv_close_cb)sb_free);
  sb_free(t);
}

static void attempt_fail(attempt *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void attempt_fail(attempt *t, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* A tool's failure is a tool result the model can read; other methods
   * have no such result and get a JSON-RPC error. */
  if (t->call && strcmp(t->method, "tools/call") == 0)
    sb_mcp_call_reply_text(t->call, msg, 1);
  else if (t->call)
    sb_mcp_call_fail(t->call, SB_RPC_INTERNAL_ERROR, msg,
                     t->current ? json_pack("{ss}", "agent", t->current->def->id)
                                : NULL);
  t->call = NULL;
  attempt_free(t);
}

/* The next agent to try: the first one (by the registry's ranking for a
 * capability the original agent has) that serves this tool, is connected
 * and has not been tried. */
static agent *next_agent(attempt *t, const sb_agent_def *origin) {
  sb_gateway *o = t->owner;
  if (t->no_fallback) return NULL;
  sb_registry_candidate cands[32];
  for (size_t c = 0; c < origin->capabilities.len; c++) {
    int n = sb_registry_rank(o->reg, origin->capabilities.items[c], NULL,
                             sb_now_ms(), cands, 32, NULL);
    for (int i = 0; i < n && i < 32; i++) {
      agent *a = gw_agent_find(o, cands[i].def->id);
      if (a && !was_tried(t, a->def->id) && cands[i].available && a->client &&
          sb_mcp_client_connected(a->client) && gw_agent_serves_tool(a, t->tool))
        return a;
    }
  }
  return NULL;
}

static void try_agent(attempt *t, agent *a);

static void on_progress(void *ud, json_t *params) {
  attempt *t = ud;
  if (!t->call) return;
  json_t *p = json_object_get(params, "progress");
  json_t *total = json_object_get(params, "total");
  sb_mcp_call_progress(t->call, json_number_value(p),
                       total ? json_number_value(total) : -1,
                       json_string_value(json_object_get(params, "message")));
}

static void retry_now(uv_timer_t *timer) {
  attempt *t = timer->data;
  if (!t->call) return;
  t->awaiting_connect = 0; /* the wait for a reconnect, if any, is over */
  try_agent(t, t->current);
}

void gw_resume_waiting(agent *a) {
  for (attempt *t = a->owner->attempts, *next; t; t = next) {
    next = t->next;
    if (t->current != a || !t->awaiting_connect) continue;
    t->awaiting_connect = 0;
    if (t->retry_timer) uv_timer_stop(t->retry_timer);
    if (t->call) try_agent(t, a);
  }
}

/* ---- input across eras ---------------------------------------------------
 * A modern agent asks for input with an input_required result; a legacy
 * agent sends its own request (sampling, elicitation, roots) while the call
 * runs. The caller may speak the other era:
 *   modern agent, modern caller: input_required passes through unchanged
 *     and the caller's retry (inputResponses, requestState) goes back to
 *     the agent as it is;
 *   modern agent, legacy caller: each input request is asked of the caller
 *     as a real request; with every answer in, the call is retried at the
 *     agent with inputResponses and the agent's requestState (at most
 *     MAX_ROUNDS times);
 *   legacy agent, modern caller: the agent's request becomes an
 *     input_required result with a sealed requestState naming the parked
 *     call; the caller's retry carries the answer, which goes to the agent,
 *     and the agent's final answer goes to the retry;
 *   legacy agent, legacy caller: the request is relayed as a request.
 */
#define MAX_ROUNDS 8
#define PARK_STATE_TTL_MS (10 * 60 * 1000)
#define PARK_KEY "agent_request"
/* Marks our own requestState, so a forged or altered one is refused rather
 * than passed to the agent as if it were the agent's. */
#define PARK_PREFIX "sb-park:"

static void retry_with_answers(attempt *t) {
  json_t *extra = json_pack("{sO}", "inputResponses", t->answers);
  json_t *state = t->extra ? json_object_get(t->extra, "requestState") : NULL;
  if (state) json_object_set(extra, "requestState", state);
  json_decref(t->extra);
  t->extra = extra;
  json_decref(t->answers);
  t->answers = NULL;
  try_agent(t, t->current);
}

typedef struct question {
  attempt *t;
  char *key;
} question;

static void on_caller_answer(sb_mcp_call *call, json_t *result, json_t *error,
                             void *ud) {
  question *q = ud;
  attempt *t = q->t;
  if (!call) { /* the call ended first: t may be gone */
    sb_free(q->key);
    sb_free(q);
    return;
  }
  if (error) {
    const char *m = json_string_value(json_object_get(error, "message"));
    char *key = q->key;
    sb_free(q);
    attempt_fail(t, "agent %s: the client did not answer %s: %s",
                 t->current->def->id, key, m ? m : "error");
    sb_free(key);
    return;
  }
  json_object_set(t->answers, q->key, result ? result : json_null());
  sb_free(q->key);
  sb_free(q);
  if (--t->asked > 0) return;
  if (t->asking) t->retry_due = 1; /* ask_legacy_caller retries after */
  else retry_with_answers(t);
}

static void ask_legacy_caller(attempt *t, json_t *result) {
  agent *a = t->current;
  json_t *requests = json_object_get(result, "inputRequests");
  json_t *state = json_object_get(result, "requestState");
  if (++t->rounds > MAX_ROUNDS) {
    attempt_fail(t, "agent %s: still asking for input after %d rounds",
                 a->def->id, MAX_ROUNDS);
    return;
  }
  json_decref(t->extra);
  t->extra = state ? json_pack("{sO}", "requestState", state) : NULL;
  json_decref(t->answers);
  t->answers = json_object();
  t->asked = json_object_size(requests);
  if (t->asked == 0) { /* nothing to ask: retry with the state alone */
    retry_with_answers(t);
    return;
  }
  /* An answer may arrive inside ask (in-process clients): the retry waits
   * until the loop is done with `requests`. */
  const char *key;
  json_t *req;
  t->asking = 1;
  t->retry_due = 0;
  json_object_foreach(requests, key, req) {
    question *q = sb_calloc(1, sizeof *q);
    if (q) q->t = t;
    const char *method = json_string_value(json_object_get(req, "method"));
    if (!q || !method || !(q->key = sb_strdup(key)) ||
        sb_mcp_call_ask_client(t->call, method,
                               json_incref(json_object_get(req, "params")),
                               on_caller_answer, q) != 0) {
      if (q) sb_free(q->key);
      sb_free(q);
      t->asking = 0;
      attempt_fail(t, "agent %s: needs %s from the client, which cannot "
                      "answer it",
                   a->def->id, method ? method : "input");
      return;
    }
  }
  t->asking = 0;
  if (t->retry_due) retry_with_answers(t);
}

/* The capability a client must declare to answer an agent's request. */
const char *gw_capability_for(const char *method) {
  if (strcmp(method, "sampling/createMessage") == 0) return "sampling";
  if (strcmp(method, "elicitation/create") == 0) return "elicitation";
  if (strcmp(method, "roots/list") == 0) return "roots";
  return NULL;
}

/* A legacy agent's request for a modern caller: answer the caller with
 * input_required and park the attempt until its retry. 0 if parked. */
static int park_for_modern_caller(attempt *t, json_t *id, const char *method,
                                  json_t *params) {
  sb_mcp_server *srv = sb_mcp_call_server(t->call);
  const char *cap = gw_capability_for(method);
  if (!cap || !sb_mcp_call_has_capability(t->call, cap) || t->parked)
    return SB_ESTATE;
  sb_random_hex(t->token, 16);
  json_t *payload = json_pack("{ss}", "t", t->token);
  char *sealed = sb_mcp_state_seal(srv, t->method, t->public_name, payload,
                                   PARK_STATE_TTL_MS);
  json_decref(payload);
  if (!sealed) return SB_ENOMEM;
  char *marked = sb_asprintf(PARK_PREFIX "%s", sealed);
  sb_free(sealed);
  if (!marked) return SB_ENOMEM;
  json_t *r = json_pack("{sss{s{sssO}}ss}", "resultType", "input_required",
                        "inputRequests", PARK_KEY, "method", method, "params",
                        params ? params : json_null(), "requestState", marked);
  sb_free(marked);
  t->parked = 1;
  t->parked_id = json_incref(id);
  sb_mcp_call *call = t->call;
  t->call = NULL;
  sb_mcp_call_reply(call, r);
  return 0;
}

/* The agent's result, in the caller's era: resultType only for modern
 * callers; a resource read from an agent that gave no cache hints gets
 * the agent's cacheTtlMs (0 unless configured) as a private result. */
static void reply_result(attempt *t, json_t *result) {
  json_t *r = json_deep_copy(result);
  json_t *meta = json_object_get(r, "_meta");
  if (meta) json_object_del(meta, SB_MCP_META_SERVER_INFO); /* ours goes in */
  if (!sb_mcp_call_is_modern(t->call)) {
    json_object_del(r, "resultType");
    json_object_del(r, "ttlMs");
    json_object_del(r, "cacheScope");
  } else if (strcmp(t->method, "resources/read") == 0 &&
             !json_object_get(r, "ttlMs")) {
    sb_mcp_call_reply_cacheable(t->call, r, t->current->def->limits.cache_ttl_ms,
                                "private");
    return;
  }
  if (meta && json_object_size(meta) == 0) json_object_del(r, "_meta");
  sb_mcp_call_reply(t->call, r);
}

/* The agent's error, in the caller's era: a missing resource is -32002 in
 * the legacy revisions and -32602 in 2026-07-28. */
static void fail_mapped(attempt *t, json_t *error) {
  int code = (int)json_integer_value(json_object_get(error, "code"));
  if (strcmp(t->method, "resources/read") == 0) {
    int modern = sb_mcp_call_is_modern(t->call);
    if (modern && code == SB_RPC_RESOURCE_NOT_FOUND_LEGACY)
      code = SB_RPC_INVALID_PARAMS;
    else if (!modern && code == SB_RPC_INVALID_PARAMS &&
             t->current->client && sb_mcp_client_is_modern(t->current->client))
      code = SB_RPC_RESOURCE_NOT_FOUND_LEGACY;
  }
  sb_mcp_call_fail(t->call, code,
                   json_string_value(json_object_get(error, "message")),
                   json_incref(json_object_get(error, "data")));
}

/* The agent answered (or the attempt failed locally). */
static void on_answer(void *ud, json_t *result, json_t *error) {
  attempt *t = ud;
  agent *a = t->current;
  sb_gateway *o = t->owner;
  uint64_t now = sb_now_ms();
  t->req = NULL;
  json_t *data = json_object_get(error, "data");
  int local = error && json_object_get(data, "agent") != NULL;
  int cancelled = local && json_is_true(json_object_get(data, "cancelled"));
  int timed_out = local && json_is_true(json_object_get(data, "timeout"));
  int transport = local && json_is_true(json_object_get(data, "transport"));
  /* The agent ended our session before reading this request. */
  int session_lost = local && json_is_true(json_object_get(data, "sessionExpired"));
  /* The agent's own errors (bad arguments...) are answers, not failures. */
  int failed = local && !cancelled;
  if (t->ticket_open) {
    t->ticket_open = 0;
    sb_registry_call_end(o->reg, a->def->id, &t->ticket, !failed,
                         now - t->started_ms, now);
  }
  if (!t->call && t->parked && !cancelled) {
    /* The caller is between rounds: keep the answer for its retry. */
    t->final_result = json_incref(result);
    t->final_error = json_incref(error);
    return;
  }
  if (cancelled || !t->call) {
    attempt_free(t);
    return;
  }
  if (o->stopping) {
    attempt_fail(t, "agent %s: switchboard is stopping", a->def->id);
    return;
  }
  if (!failed) {
    if (result) {
      const char *rt = json_string_value(json_object_get(result, "resultType"));
      if (rt && strcmp(rt, "input_required") == 0 &&
          !sb_mcp_call_is_modern(t->call)) {
        ask_legacy_caller(t, result);
        return;
      }
      if (rt && strcmp(rt, "complete") != 0 &&
          strcmp(rt, "input_required") != 0) {
        attempt_fail(t, "agent %s: answered with unknown resultType %s",
                     a->def->id, rt);
        return;
      }
      /* complete, or input_required for a modern caller (passed through:
       * its retry comes back here with inputResponses and requestState). */
      reply_result(t, result);
    } else {
      fail_mapped(t, error);
    }
    t->call = NULL;
    attempt_free(t);
    return;
  }
  const char *why = json_string_value(json_object_get(error, "message"));
  /* Safe to run again: the tool is idempotent, or the agent never saw it. */
  int delivered = !session_lost &&
                  (!transport || timed_out ||
                   !json_is_false(json_object_get(data, "delivered")));
  /* Reads (resources, prompts, completions) change nothing: always safe. */
  int safe = strcmp(t->method, "tools/call") != 0 ||
             sb_agent_def_tool_idempotent(a->def, t->tool) || !delivered;
  if (safe && !a->removed && t->retries < (unsigned)a->def->limits.retries &&
      a->client && (session_lost || sb_mcp_client_connected(a->client))) {
    uint64_t delay = sb_backoff_delay_ms(t->retries++, RETRY_BASE_MS,
                                         RETRY_CAP_MS, gw_random01());
    SB_INFO(MODULE, "agent %s: retrying %s in %llu ms after: %s", a->def->id,
            t->tool, (unsigned long long)delay, why);
    if (!t->retry_timer && (t->retry_timer = sb_malloc(sizeof *t->retry_timer))) {
      uv_timer_init(o->opts.loop, t->retry_timer);
      t->retry_timer->data = t;
    }
    if (t->retry_timer) {
      uv_timer_start(t->retry_timer, retry_now, delay, 0);
      return;
    }
  }
  agent *next = safe ? next_agent(t, a->def) : NULL;
  if (next) {
    SB_INFO(MODULE, "agent %s failed (%s); falling back to %s", a->def->id, why,
            next->def->id);
    try_agent(t, next);
    return;
  }
  attempt_fail(t, "%s", why ? why : "the agent failed");
}

static void on_caller_cancel(sb_mcp_call *call, void *ud) {
  attempt *t = ud;
  t->call = NULL;
  if (t->req) sb_mcp_request_cancel(t->req, "the client cancelled");
  else attempt_free(t); /* waiting for a retry timer */
}

/* The request's params for agent a: the caller's (without its _meta),
 * the agent's own name for the tool or prompt, the retry's inputs, and
 * for a modern agent the caller's log level and capabilities (so it asks
 * only for input this caller can give). */
static json_t *agent_params(attempt *t, agent *a) {
  json_t *params = t->params ? json_deep_copy(t->params) : json_object();
  if (!params) return NULL;
  if (t->tool) json_object_set_new(params, "name", json_string(t->tool));
  if (strcmp(t->method, "tools/call") == 0 && !json_object_get(params, "arguments"))
    json_object_set_new(params, "arguments", json_object());
  if (t->extra) json_object_update(params, t->extra);
  if (t->call && a->client && sb_mcp_client_is_modern(a->client)) {
    json_t *meta = json_object();
    const char *lvl = sb_mcp_call_log_level(t->call);
    if (lvl) json_object_set_new(meta, SB_MCP_META_LOG_LEVEL, json_string(lvl));
    json_object_set(meta, SB_MCP_META_CLIENT_CAPS,
                    sb_mcp_call_client_caps(t->call));
    json_object_set_new(params, "_meta", meta);
  }
  return params;
}

static void try_agent(attempt *t, agent *a) {
  sb_gateway *o = t->owner;
  if (!was_tried(t, a->def->id)) {
    char **grown = sb_realloc(t->tried, (t->ntried + 1) * sizeof *grown);
    if (grown) {
      t->tried = grown;
      t->tried[t->ntried++] = sb_strdup(a->def->id);
    }
  }
  t->current = a;
  /* A retry that finds its agent reconnecting (its session ended, it
   * crashed) waits for it, once, at most the agent's timeout. */
  if ((!a->client || !sb_mcp_client_connected(a->client)) && t->retries > 0 &&
      !a->removed && !t->waited_connect && !o->stopping) {
    if (!t->retry_timer && (t->retry_timer = sb_malloc(sizeof *t->retry_timer))) {
      uv_timer_init(o->opts.loop, t->retry_timer);
      t->retry_timer->data = t;
    }
    if (t->retry_timer) {
      t->waited_connect = 1;
      t->awaiting_connect = 1;
      uv_timer_start(t->retry_timer, retry_now,
                     (uint64_t)a->def->limits.timeout_ms, 0);
      return;
    }
  }
  sb_registry_refusal why = SB_REFUSE_NONE;
  if (!a->client || !sb_mcp_client_connected(a->client) ||
      sb_registry_call_begin(o->reg, a->def->id, sb_now_ms(), &t->ticket,
                             &why) != 0) {
    const char *reason = why != SB_REFUSE_NONE ? sb_registry_refusal_name(why)
                                               : "not connected";
    agent *next = next_agent(t, a->def);
    if (next) {
      SB_INFO(MODULE, "agent %s unavailable (%s); falling back to %s",
              a->def->id, reason, next->def->id);
      try_agent(t, next);
      return;
    }
    attempt_fail(t, "agent %s: unavailable (%s)", a->def->id, reason);
    return;
  }
  t->started_ms = sb_now_ms();
  t->ticket_open = 1;
  json_t *params = agent_params(t, a);
  t->req = sb_mcp_client_request(
      a->client, t->method, params, (uint64_t)a->def->limits.timeout_ms,
      t->call && sb_mcp_call_progress_token(t->call) ? on_progress : NULL,
      on_answer, t);
}

/* Calls waiting to retry on a that is going away: answer them now. */
void gw_abandon_attempts(agent *a) {
  for (attempt *t = a->owner->attempts, *next; t; t = next) {
    next = t->next;
    if (t->current == a && !t->req)
      attempt_fail(t, "agent %s: removed while the call waited to retry",
                   a->def->id);
  }
}


/* A modern caller's retry carrying our requestState (PARK_PREFIX + a
 * sealed token): answer the parked agent request and let the retry wait
 * for the agent. Returns 1 if the state was ours (the call is then
 * handled: resumed, or refused when tampered, expired or bound to another
 * request), 0 when it is the agent's own state, passed on unread. */
static int resume_parked(sb_gateway *o, sb_mcp_call *call, const char *method,
                         const char *name, const char *state,
                         json_t *responses) {
  if (strncmp(state, PARK_PREFIX, strlen(PARK_PREFIX)) != 0) return 0;
  sb_error err = {0};
  json_t *payload = sb_mcp_state_open(sb_mcp_call_server(call),
                                      state + strlen(PARK_PREFIX), method, name,
                                      &err);
  if (!payload) {
    sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS, err.msg,
                     json_pack("{ss}", "param", "requestState"));
    return 1;
  }
  const char *token = json_string_value(json_object_get(payload, "t"));
  attempt *t = o->attempts;
  for (; t; t = t->next)
    if (t->parked && token && strcmp(t->token, token) == 0) break;
  json_decref(payload);
  if (!t) {
    sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS,
                     "requestState: the agent call it belongs to has ended "
                     "(answered, timed out or cancelled); call again",
                     NULL);
    return 1;
  }
  json_t *answer = json_object_get(responses, PARK_KEY);
  if (!answer) {
    sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS,
                     "inputResponses: missing the answer to "
                     "\"" PARK_KEY "\"",
                     NULL);
    return 1;
  }
  t->parked = 0;
  t->call = call;
  sb_mcp_call_on_cancel(call, on_caller_cancel, t);
  if (t->current->client)
    sb_mcp_client_respond(t->current->client, t->parked_id,
                          json_incref(answer), NULL);
  json_decref(t->parked_id);
  t->parked_id = NULL;
  if (t->final_result || t->final_error) {
    json_t *r = t->final_result, *e = t->final_error;
    t->final_result = t->final_error = NULL;
    on_answer(t, r, e);
    json_decref(r);
    json_decref(e);
  }
  return 1;
}

/* Start a call at agent a: `tool` is the agent-side tool or prompt name
 * (NULL for resources/read, completion/complete), public_name what the
 * caller named (binds our requestState). Answers the call, now or later. */
static void attempt_start(sb_gateway *o, agent *a, sb_mcp_call *call,
                          const char *tool, const char *public_name,
                          int no_fallback) {
  const char *method = sb_mcp_call_method(call);
  /* Parked calls whose caller never came back go once their state could
   * no longer be presented. */
  uint64_t now = sb_now_ms();
  for (attempt *p = o->attempts, *next; p; p = next) {
    next = p->next;
    if (p->parked && !p->req && now - p->started_ms > PARK_STATE_TTL_MS)
      attempt_free(p);
  }
  json_t *params = sb_mcp_call_params(call);
  const char *state = json_string_value(json_object_get(params, "requestState"));
  json_t *responses = json_object_get(params, "inputResponses");
  if (state && resume_parked(o, call, method, public_name, state, responses))
    return;
  attempt *t = sb_calloc(1, sizeof *t);
  if (!t || (tool && !(t->tool = sb_strdup(tool))) ||
      !(t->public_name = sb_strdup(public_name)) ||
      !(t->params = json_deep_copy(params))) {
    if (t) {
      sb_free(t->tool);
      sb_free(t->public_name);
    }
    sb_free(t);
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  /* What the caller's envelope says is re-said for the agent. */
  json_object_del(t->params, "_meta");
  json_object_del(t->params, "requestState");
  json_object_del(t->params, "inputResponses");
  t->owner = o;
  t->call = call;
  t->method = strcmp(method, "tools/call") == 0        ? "tools/call"
              : strcmp(method, "prompts/get") == 0     ? "prompts/get"
              : strcmp(method, "resources/read") == 0  ? "resources/read"
                                                       : "completion/complete";
  t->no_fallback = no_fallback;
  /* A modern caller's retry of an agent's input_required: pass it on. */
  if (state || responses) {
    t->extra = json_object();
    if (state) json_object_set_new(t->extra, "requestState", json_string(state));
    if (responses) json_object_set(t->extra, "inputResponses", responses);
  }
  t->next = o->attempts;
  o->attempts = t;
  sb_mcp_call_on_cancel(call, on_caller_cancel, t);
  try_agent(t, a);
}

void gw_forward(sb_gateway *o, agent *a, sb_mcp_call *call,
                    const char *name) {
  const char *public_name = name;
  json_t *params = sb_mcp_call_params(call);
  if (!public_name)
    public_name = json_string_value(json_object_get(params, "uri"));
  if (!public_name)
    public_name = json_string_value(json_object_get(
        json_object_get(params, "ref"), "uri"));
  if (!public_name)
    public_name = json_string_value(json_object_get(
        json_object_get(params, "ref"), "name"));
  attempt_start(o, a, call, name, public_name ? public_name : "", 1);
}

/* A log message from the agent goes to the calls it is serving (each
 * filtered by that caller's level); with none in flight, to the legacy
 * sessions of its per-agent endpoint that asked for logs. A line not tied
 * to a request cannot be attributed to a tenant, so when tenants are
 * configured it goes only where every recipient is the same tenant. */
void gw_forward_log(agent *a, json_t *params) {
  const char *tenant = NULL;
  int mixed = 0, any = 0;
  for (attempt *t = a->owner->attempts; t; t = t->next) {
    if (t->current != a || !t->call || !t->req) continue;
    const char *who = sb_mcp_call_tenant(t->call);
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
  for (attempt *t = a->owner->attempts; t; t = t->next)
    if (t->current == a && t->call && t->req)
      sb_mcp_call_forward_log(t->call, params);
}

int gw_call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *args) {
  sb_gateway *o = ud;
  agent *a = NULL;
  const char *tool = NULL;
  if (!gw_resolve_tool(o, name, &a, &tool)) return 0;
  attempt_start(o, a, call, tool, name, 0);
  return 1;
}
