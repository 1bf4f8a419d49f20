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
 * requests for input reach the caller as sb_gateway_input values
 * (call_inputs.c); a call with a context reads it before routing and
 * records the agent in it after the answer (call_context.c). This file
 * owns the call's lifecycle: starting, sending, the answer, retries,
 * fallback and the end.
 *
 * A call's state is one enum (call_state, call_internal.h); the
 * transitions are in gw_call_try_agent, on_answer, the timers and
 * gw_call_finish, with the input_required rounds and the context's read
 * and write in the other two files.
 */
#include "gateway/call_internal.h"

#define MODULE "agents"

/* ---- bookkeeping ------------------------------------------------------------ */

static void timer_free(uv_timer_t *t) {
  if (t) uv_close((uv_handle_t *)t, (uv_close_cb)sb_free);
}

void gw_call_free(sb_gateway_call *c) {
  if (c->owner) sb_list_unlink(&c->owner->calls, &c->link);
  for (size_t i = 0; i < c->ntried; i++) sb_free(c->tried[i]);
  sb_free(c->tried);
  sb_free(c->retried_why);
  sb_free(c->tool);
  sb_free(c->tenant);
  sb_principal_unref(c->principal);
  sb_free(c->refused_scope);
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

const char *gw_call_agent_id(const sb_gateway_call *c) {
  return c->current ? c->current->def->id : NULL;
}

/* End the call: on_done once, then free. Open questions are withdrawn
 * first (an agent still waiting for an answer gets an error). */
void gw_call_finish(sb_gateway_call *c, sb_gateway_result *r) {
  if (c->state == CALL_DONE) return;
  c->state = CALL_DONE;
  gw_call_drop_inputs(c, 1);
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
  r->agent = gw_call_agent_id(c);
  r->agent_modern = c->current && c->current->client &&
                    sb_mcp_client_is_modern(c->current->client);
  c->o.on_done(c->o.ud, r);
  /* else sb_gateway_call_start, or the store's callback, frees it */
  if (!c->holds && !c->store_op) gw_call_free(c);
}

void gw_call_fail(sb_gateway_call *c, sb_gateway_outcome outcome,
                  const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  sb_utf8_scrub(msg); /* an agent's words, perhaps cut inside a character */
  sb_gateway_result r = {.outcome = outcome, .message = msg,
                         .scope = c->refused_scope};
  gw_call_finish(c, &r);
}

static int was_tried(sb_gateway_call *c, const char *id) {
  for (size_t i = 0; i < c->ntried; i++)
    if (strcmp(c->tried[i], id) == 0) return 1;
  return 0;
}

/* Whether a may be tried next: not tried yet, serving the tool (or with
 * its tools not listed yet), and connected, or with `connecting` also
 * one still connecting (a call waits for it, once, up to its timeout). */
static int may_try(sb_gateway_call *c, agent *a, int connecting) {
  if (!a || a->removed || was_tried(c, a->def->id) || !a->client) return 0;
  if (gw_agent_ready(a))
    return !c->tool || gw_agent_serves_tool(a, c->tool);
  return connecting && gw_agent_may_serve_tool(a, c->tool);
}

/* The next agent to try: by the route's ranking, or for a call that named
 * an agent, by the registry's ranking for a capability that agent has; a
 * connected one first, then (with `connecting`) one still connecting. A
 * fallback that found only agents still starting used to give up while
 * one of them was about to answer. */
static agent *next_agent(sb_gateway_call *c, const sb_agent_def *origin,
                         int connecting) {
  sb_gateway *o = c->owner;
  if (c->o.no_fallback) return NULL;
  for (int pass = 0; pass <= connecting; pass++) {
    if (c->route) {
      for (size_t i = 0; i < c->route->n; i++) {
        agent *a = gw_agent_find(o, c->route->ids[i]);
        if (may_try(c, a, pass)) return a;
      }
      continue;
    }
    sb_registry_candidate cands[32];
    for (size_t k = 0; k < origin->capabilities.len; k++) {
      int n = sb_registry_rank(o->reg, origin->capabilities.items[k], NULL,
                               sb_now_ms(), cands, 32, NULL);
      for (int i = 0; i < n && i < 32; i++) {
        agent *a = gw_agent_find(o, cands[i].def->id);
        if (cands[i].available && may_try(c, a, pass)) return a;
      }
    }
  }
  return NULL;
}

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
  gw_call_try_agent(c, c->current);
}

static void on_deadline(uv_timer_t *timer) {
  sb_gateway_call *c = timer->data;
  const char *why = NULL;
  if (c->state == CALL_WAIT_CONNECT && c->current &&
      !gw_agent_up(c->current, &why)) {
    /* Waiting for the agent to connect: say what keeps it down. */
    gw_call_fail(c, SB_GATEWAY_TIMED_OUT,
                 "agent %s: the call's deadline of %llu ms passed while "
                 "waiting for it to connect (%s)",
                 c->current->def->id, (unsigned long long)c->o.deadline_ms,
                 why);
    return;
  }
  gw_call_fail(c, SB_GATEWAY_TIMED_OUT,
               "agent %s: the call's deadline of %llu ms passed",
               gw_call_agent_id(c) ? gw_call_agent_id(c) : "(none)",
               (unsigned long long)c->o.deadline_ms);
}

void gw_resume_waiting(agent *a) {
  for (sb_gateway_call *c = gw_calls_first(a->owner), *next; c; c = next) {
    next = gw_calls_next(c);
    if (c->current != a || c->state != CALL_WAIT_CONNECT) continue;
    uv_timer_stop(c->timer);
    gw_call_try_agent(c, a);
  }
}

void gw_abandon_attempts(agent *a) {
  for (sb_gateway_call *c = gw_calls_first(a->owner), *next; c; c = next) {
    next = gw_calls_next(c);
    if (c->current == a && !c->req && c->state != CALL_DONE)
      gw_call_fail(c, SB_GATEWAY_NOT_CONNECTED,
                   "agent %s: removed while the call waited to retry",
                   a->def->id);
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
json_t *gw_call_routing_report(sb_gateway_call *c, const char *agent_id,
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

void gw_call_try_agent(sb_gateway_call *c, agent *a) {
  sb_gateway *o = c->owner;
  if (o->stopping) {
    gw_call_fail(c, SB_GATEWAY_STOPPING, "agent %s: switchboard is stopping",
                 a->def->id);
    return;
  }
  int first_try = 0;
  if (!was_tried(c, a->def->id)) {
    char **grown = sb_realloc(c->tried, (c->ntried + 1) * sizeof *grown);
    if (grown) {
      c->tried = grown;
      c->tried[c->ntried++] = sb_strdup(a->def->id);
      first_try = 1;
    }
  }
  if (c->current != a) { /* what a retry on the agent before was after */
    sb_free(c->retried_why);
    c->retried_why = NULL;
  }
  c->current = a;
  c->state = CALL_STARTING;
  /* An agent not connected yet (just registered, just started) or
   * reconnecting (its session ended, it crashed) is waited for, once, at
   * most its timeout; a call routed by capability rather goes to a
   * connected agent of its ranking first. An agent the caller named is
   * waited for, unless its connects keep failing (gw_agent_failing): then
   * the call fails at once, saying why. */
  int up = gw_agent_ready(a);
  int by_capability = c->route && c->route->capability;
  if (!up && by_capability && c->retries == 0 && !c->waited_connect) {
    agent *next = next_agent(c, a->def, 0);
    if (next) {
      SB_INFO(MODULE, "agent %s not connected; trying %s", a->def->id,
              next->def->id);
      note_fallback(c, a, SB_GATEWAY_NOT_CONNECTED);
      /* Passed over, not tried: if the others fail it is waited for. */
      if (first_try) sb_free(c->tried[--c->ntried]);
      gw_call_try_agent(c, next);
      return;
    }
  }
  if (!up && !a->removed && !c->waited_connect && !gw_agent_failing(a) &&
      timer_ready(c, &c->timer)) {
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
    agent *next =
        sb_gateway_decide(refused, 0).fallback ? next_agent(c, a->def, 1) : NULL;
    if (next) {
      SB_INFO(MODULE, "agent %s unavailable (%s); falling back to %s",
              a->def->id, sb_gateway_outcome_name(refused), next->def->id);
      note_fallback(c, a, refused);
      gw_call_try_agent(c, next);
      return;
    }
    const char *down = NULL;
    if (up && c->retried_why)
      gw_call_fail(c, c->retried_after, "%s (not tried again: %s)",
                   c->retried_why, sb_gateway_outcome_name(refused));
    else if (!up && gw_agent_up(a, &down) == 0)
      gw_call_fail(c, refused, "agent %s: unavailable (%s: %s)", a->def->id,
                   sb_gateway_outcome_name(refused), down);
    else
      gw_call_fail(c, refused, "agent %s: unavailable (%s)", a->def->id,
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

/* ---- answers ------------------------------------------------------------------- */

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
  /* Questions the agent asked during this request end with it (or go to
   * the call they more likely belong to: gw_call_drop_inputs). */
  gw_call_drop_inputs(c, 0);
  sb_gateway_outcome outcome = gw_outcome_of(mcp_outcome);
  int repeatable = strcmp(c->o.method, "tools/call") != 0 ||
                   sb_agent_def_tool_idempotent(a->def, c->tool);
  sb_gateway_decision d = sb_gateway_decide(outcome, repeatable);
  /* Refused for a token that a new one replaces (or is about to): not the
   * agent's failure, and worth sending again; any other refusal is. */
  int token_coming = outcome == SB_GATEWAY_REFUSED && a->refusal_retry;
  if (token_coming)
    d.breaker_failure = 0;
  else if (outcome == SB_GATEWAY_REFUSED)
    d.retry = 0;
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
        o->opts.on_breaker(o->opts.notify_ud, tenant, a->def->id, 1);
      else if (after.breaker == SB_BREAKER_CLOSED &&
               before.breaker != SB_BREAKER_CLOSED)
        o->opts.on_breaker(o->opts.notify_ud, tenant, a->def->id, 0);
    }
  }
  if (c->state == CALL_DONE) return; /* gw_call_finish cancelled it */
  if (outcome == SB_GATEWAY_CANCELLED) {
    gw_call_fail(c, outcome, "agent %s: cancelled", a->def->id);
    return;
  }
  if (o->stopping) {
    gw_call_fail(c, SB_GATEWAY_STOPPING, "agent %s: switchboard is stopping",
                 a->def->id);
    return;
  }
  if (outcome == SB_GATEWAY_ANSWERED) {
    gw_token_worked(a);
    const char *rt = json_string_value(json_object_get(result, "resultType"));
    if (rt && strcmp(rt, "input_required") == 0 &&
        (!c->o.pass_input_required || !caller_can_answer(c, result))) {
      gw_call_ask_questions(c, result);
      return;
    }
    if (rt && strcmp(rt, "complete") != 0 && strcmp(rt, "input_required") != 0) {
      gw_call_fail(c, SB_GATEWAY_INVALID,
                   "agent %s: answered with unknown resultType %s", a->def->id,
                   rt);
      return;
    }
    json_t *checked = result && strcmp(c->o.method, "tools/call") == 0
                          ? gw_tool_result_checked(a->def->id, result)
                          : NULL;
    if (checked) result = checked;
    if (result && c->route && c->route->context_id && !c->caller_context) {
      gw_call_record(c, result, error);
      json_decref(checked);
      return;
    }
    sb_gateway_result r = {.outcome = SB_GATEWAY_ANSWERED,
                           .result = result,
                           .error = error};
    json_t *routing = NULL;
    if (result && c->route)
      r.routing = routing = gw_call_routing_report(
          c, a->def->id,
          c->caller_context ? version_of_doc(c->route->doc) : 0, NULL);
    gw_call_finish(c, &r);
    json_decref(routing);
    json_decref(checked);
    return;
  }
  if (c->deadline_at && sb_now_ms() + 10 >= c->deadline_at) {
    /* The call's time is up (the attempt's timeout was cut to it): no
     * retry, no fallback, and the caller hears it was the deadline. */
    on_deadline(c->deadline);
    return;
  }
  const char *why = json_string_value(json_object_get(error, "message"));
  /* The first send again for a new token is not taken from
   * limits.retries (the request was not processed, and the token it went
   * with is gone). */
  int token_retry = token_coming && !c->token_retried;
  if (d.retry && !a->removed &&
      (token_retry || c->retries < (unsigned)a->def->limits.retries) &&
      a->client &&
      (outcome == SB_GATEWAY_SESSION_EXPIRED ||
       sb_mcp_client_connected(a->client)) &&
      timer_ready(c, &c->timer)) {
    uint64_t delay = token_retry
                         ? 0
                         : sb_backoff_delay_ms(c->retries++, RETRY_BASE_MS,
                                               RETRY_CAP_MS, gw_random01());
    if (token_retry) c->token_retried = 1;
    c->retried_after = outcome;
    sb_free(c->retried_why);
    c->retried_why = sb_strdup(why ? why : "the agent failed");
    SB_INFO(MODULE, "agent %s: retrying %s in %llu ms after: %s", a->def->id,
            c->tool ? c->tool : c->o.method, (unsigned long long)delay, why);
    /* The agent ended our session, or refused our token: the retry waits
     * for the new one (within the call's deadline), though the call may
     * have waited for the first already. */
    if (outcome == SB_GATEWAY_SESSION_EXPIRED || outcome == SB_GATEWAY_REFUSED)
      c->waited_connect = 0;
    c->state = CALL_BACKOFF;
    uv_timer_start(c->timer, on_timer, delay, 0);
    return;
  }
  agent *next = d.fallback ? next_agent(c, a->def, 1) : NULL;
  if (next) {
    SB_INFO(MODULE, "agent %s failed (%s); falling back to %s", a->def->id, why,
            next->def->id);
    note_fallback(c, a, outcome);
    gw_call_try_agent(c, next);
    return;
  }
  gw_call_fail(c, outcome, "%s", why ? why : "the agent failed");
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
  c->o.principal = NULL;
  if (opts->principal)
    c->principal = sb_principal_ref((sb_principal *)opts->principal);
  sb_list_push_front(&o->calls, &c->link);
  if (oom) {
    gw_call_free(c);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  if ((opts->capability || opts->context_id) &&
      !(c->route = gw_route_new(o, opts, err))) {
    gw_call_free(c);
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
      gw_call_free(c);
      return sb_error_set(err, SB_ENOMEM, "out of memory");
    }
    sb_error cerr = {0};
    int rc = sb_ctx_get_async(o->opts.ctx, c->tenant, opts->context_id, 0,
                              gw_call_context_read, c, &cerr);
    if (rc != 0) {
      gw_call_free(c);
      return sb_error_set(err, rc == SB_EBUSY ? SB_EBUSY : SB_EINVAL,
                          "contextId: %s", cerr.msg);
    }
    c->state = CALL_READING;
    c->store_op = 1;
    *out = c;
    return 0;
  }
  if (c->route && gw_route_rank(o, c->route, first, c->tool, err) != 0) {
    gw_call_free(c);
    return err && err->code ? err->code : SB_ENOENT;
  }
  if (!first) first = gw_agent_find(o, c->route->ids[0]);
  /* The first try may end the call at once (every agent refusing): then
   * on_done has run and the caller gets no handle. */
  c->holds++;
  gw_call_try_agent(c, first);
  c->holds--;
  if (c->state == CALL_DONE) {
    gw_call_free(c);
    return 0;
  }
  *out = c;
  return 0;
}

void sb_gateway_call_cancel(sb_gateway_call *c, const char *reason) {
  char msg[300];
  snprintf(msg, sizeof msg, "agent %s: cancelled (%s)",
           gw_call_agent_id(c) ? gw_call_agent_id(c) : "(none)",
           reason ? reason : "by the caller");
  sb_gateway_result r = {.outcome = SB_GATEWAY_CANCELLED, .message = msg};
  gw_call_finish(c, &r);
}

static int same_string(const char *x, const char *y) {
  return x == y || (x && y && strcmp(x, y) == 0);
}

int gw_call_same_caller(const sb_gateway_call *x, const sb_gateway_call *y) {
  return same_string(x->tenant, y->tenant) &&
         same_string(x->principal ? x->principal->subject : NULL,
                     y->principal ? y->principal->subject : NULL);
}

/* A log message from the agent goes to the call whose response stream
 * carried it (to none when that is no call); else to the calls it is serving
 * (each filtered by that caller); with none in flight, to the legacy sessions
 * of its per-agent endpoint that asked for logs. A line not tied to a request
 * cannot be attributed to a caller, so it goes only where every recipient is
 * the same caller, and nowhere when there are no calls and tenants are
 * configured. */
void gw_forward_log(agent *a, json_t *params, const json_t *related) {
  sb_gateway_call *first = NULL;
  int mixed = 0;
  for (sb_gateway_call *c = gw_calls_first(a->owner); c; c = gw_calls_next(c)) {
    if (c->current != a || !c->req) continue;
    if (json_is_integer(related)) {
      if (sb_mcp_request_id(c->req) != json_integer_value(related)) continue;
      if (c->o.on_log) c->o.on_log(c->o.ud, params);
      return;
    }
    if (!first)
      first = c;
    else if (!gw_call_same_caller(first, c))
      mixed = 1;
  }
  /* On the stream of a request that is no call's (a list switchboard
   * asked for itself), or of a call that has ended: no caller's. */
  if (mixed || json_is_integer(related)) return;
  if (!first) {
    if (!a->owner->opts.tenants_configured)
      gw_mounts_log(a->owner, a->def->id, params);
    return;
  }
  for (sb_gateway_call *c = gw_calls_first(a->owner); c; c = gw_calls_next(c))
    if (c->current == a && c->req && c->o.on_log) c->o.on_log(c->o.ud, params);
}

void gw_calls_stop(sb_gateway *o) {
  sb_gateway_call *c;
  while ((c = gw_calls_first(o))) {
    gw_call_fail(c, SB_GATEWAY_STOPPING, "switchboard is stopping");
    if (gw_calls_first(o) == c) {
      /* A store operation is under way: its callback frees the call,
       * maybe after the gateway is gone, so the call leaves it now. */
      sb_list_unlink(&o->calls, &c->link);
      c->owner = NULL;
    }
  }
}
