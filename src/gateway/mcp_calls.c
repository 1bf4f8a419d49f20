/* mcp_calls.c: MCP requests served by gateway calls.
 *
 * The MCP paths are callers of the call API like any other: agent__tool
 * and agents_call on /mcp, and every request a per-agent endpoint or a
 * virtual server forwards (mounts.c). This file turns one sb_mcp_call into
 * sb_gateway_call options, and the call's end back into an answer in the
 * caller's era: resultType only for modern callers, cache hints on
 * resource reads, a missing resource as -32002 (legacy) or -32602
 * (modern), a tool's failure as a tool result the model can read.
 *
 * Input across eras, the caller's side:
 *   - a legacy caller is asked as a real request (sb_mcp_call_ask_client),
 *     whatever era the agent speaks: a legacy agent's own request, or each
 *     question of a modern agent's input_required (the gateway retries the
 *     agent with the answers);
 *   - a modern caller gets a modern agent's input_required as it is and
 *     retries itself (pass_input_required); a legacy agent's request
 *     becomes an input_required result whose requestState is ours, sealed
 *     and bound to the method and name, naming the parked request; the
 *     caller's retry carries the answer, which goes to the agent, and the
 *     agent's final answer goes to that retry.
 */
#include "gateway/gateway_internal.h"

#define MODULE "agents"
#define PARK_STATE_TTL_MS (10 * 60 * 1000)
#define PARK_KEY "agent_request"
/* Marks our own requestState, so a forged or altered one is refused rather
 * than passed to the agent as if it were the agent's. */
#define PARK_PREFIX "sb-park:"

static const char *const routed_tool_json =
    "{\"name\":\"" GW_ROUTED_TOOL "\",\"title\":\"Call the best agent\","
    "\"description\":\"Call a tool on the agent best placed for a "
    "capability given a context (getOptimalAgent: coverage of the agent's "
    "contextRequirements, health, spare capacity, latency), falling back "
    "along the same ranking. The agent receives only the projection of the "
    "context it requires, and is recorded in the context's metadata.agents."
    " Name `agent` instead of `capability` to call one agent.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,"
    "\"properties\":{"
    "\"capability\":{\"type\":\"string\"},\"agent\":{\"type\":\"string\"},"
    "\"tool\":{\"type\":\"string\"},\"arguments\":{\"type\":\"object\"},"
    "\"contextId\":{\"type\":\"string\"}},\"required\":[\"tool\"]}}";
/* The arguments it takes: any other is refused, naming it (a misspelt
 * contextId would have routed the call without its context). */
static const char *const routed_tool_args[] = {
    "capability", "agent", "tool", "arguments", "contextId", NULL};

typedef struct gw_mcp_call {
  sb_gateway *gw;
  sb_mcp_call *call;    /* the MCP request; NULL while parked or once gone */
  sb_gateway_call *gc;  /* NULL once it has ended */
  const char *method;   /* static string */
  char *public_name;    /* what the caller named: binds our requestState */
  /* parked: a legacy agent's question went to a modern caller */
  int parked;
  sb_gateway_input *parked_in; /* to answer with the retry; NULL if gone */
  char token[33];
  uint64_t parked_at;
  /* the call ended while parked: kept for the retry */
  int has_final;
  sb_gateway_outcome final_outcome;
  json_t *final_result, *final_error, *final_routing;
  char *final_message, *final_agent;
  int final_agent_modern;
  /* A modern caller was not asked for input it did not declare the
   * capability of (CAP_* bits): if the call then fails, the answer is
   * -32021 naming them, as 2026-07-28 requires. */
  unsigned missing;
  /* gw->mcp_calls: only parked requests (and those that ended parked),
   * which a retry finds by token; the others are reached through their
   * gateway call alone. */
  sb_list_link link;
} gw_mcp_call;

static void mc_list(gw_mcp_call *mc) {
  sb_gateway *gw = mc->gw;
  sb_list_push_front(&gw->mcp_calls, &mc->link);
}

static void mc_unlist(gw_mcp_call *mc) {
  sb_list_unlink(&mc->gw->mcp_calls, &mc->link);
}

static void mc_free(gw_mcp_call *mc) {
  mc_unlist(mc);
  sb_free(mc->public_name);
  json_decref(mc->final_result);
  json_decref(mc->final_error);
  json_decref(mc->final_routing);
  sb_free(mc->final_message);
  sb_free(mc->final_agent);
  sb_free(mc);
}

/* ---- the answer, in the caller's era --------------------------------------- */

static void reply_result(gw_mcp_call *mc, const sb_gateway_result *res) {
  sb_mcp_call *call = mc->call;
  /* Only the top level and _meta change: the content is passed on as it
   * came, not copied. */
  json_t *r = json_copy(res->result);
  json_t *meta = json_object_get(r, "_meta");
  if (meta) {
    meta = json_copy(meta);
    json_object_set_new(r, "_meta", meta);
    json_object_del(meta, SB_MCP_META_SERVER_INFO); /* ours goes in */
  }
  if (res->routing && json_is_object(r)) {
    if (!meta) json_object_set_new(r, "_meta", meta = json_object());
    json_object_set(meta, SB_GATEWAY_META_ROUTING, res->routing);
  }
  if (!sb_mcp_call_is_modern(call)) {
    json_object_del(r, "resultType");
    json_object_del(r, "ttlMs");
    json_object_del(r, "cacheScope");
  } else if (strcmp(mc->method, "resources/read") == 0 &&
             !json_object_get(r, "ttlMs")) {
    /* A resource read from an agent that gave no cache hints: the agent's
     * cacheTtlMs (0 unless configured), private. */
    agent *a = res->agent ? gw_agent_find(mc->gw, res->agent) : NULL;
    sb_mcp_call_reply_cacheable(call, r, a ? a->def->limits.cache_ttl_ms : 0,
                                "private");
    return;
  }
  if (meta && json_object_size(meta) == 0) json_object_del(r, "_meta");
  sb_mcp_call_reply(call, r);
}

/* The agent's error: a missing resource is -32002 in the legacy revisions
 * and -32602 in 2026-07-28. */
static void reply_agent_error(gw_mcp_call *mc, const sb_gateway_result *res) {
  json_t *error = res->error;
  int code = (int)json_integer_value(json_object_get(error, "code"));
  if (strcmp(mc->method, "resources/read") == 0) {
    int modern = sb_mcp_call_is_modern(mc->call);
    if (modern && code == SB_RPC_RESOURCE_NOT_FOUND_LEGACY)
      code = SB_RPC_INVALID_PARAMS;
    else if (!modern && code == SB_RPC_INVALID_PARAMS && res->agent_modern)
      code = SB_RPC_RESOURCE_NOT_FOUND_LEGACY;
  }
  sb_mcp_call_fail(mc->call, code,
                   json_string_value(json_object_get(error, "message")),
                   json_incref(json_object_get(error, "data")));
}

/* The client capabilities an agent may ask for, as bits of `missing`. */
enum { CAP_SAMPLING = 1, CAP_ELICITATION = 2, CAP_ROOTS = 4 };
static const char *const cap_names[] = {"sampling", "elicitation", "roots"};

static unsigned cap_bit(const char *cap) {
  for (unsigned i = 0; i < 3; i++)
    if (strcmp(cap, cap_names[i]) == 0) return 1u << i;
  return 0;
}

/* The capabilities the call failed for want of (CAP_* bits), or 0. It
 * failed when it was not answered, was answered with an error, or with a
 * tool's error result after sampling or elicitation was refused: those
 * are what it lacked. Roots are often asked for on the way, and done
 * without: refused alone, a tool's error result is the tool's own, passed
 * on. */
static unsigned failed_for(const gw_mcp_call *mc,
                           const sb_gateway_result *res) {
  unsigned asked = mc->missing & (CAP_SAMPLING | CAP_ELICITATION);
  if (res->outcome != SB_GATEWAY_ANSWERED || !res->result)
    return asked ? asked : mc->missing;
  return asked && json_is_true(json_object_get(res->result, "isError")) ? asked
                                                                        : 0;
}

static void reply_missing(gw_mcp_call *mc, const sb_gateway_result *res,
                          unsigned caps) {
  const char *why =
      res->message ? res->message
                   : json_string_value(json_object_get(res->error, "message"));
  char names[64] = "";
  json_t *required = json_object();
  for (unsigned i = 0, n = 0, all = (unsigned)__builtin_popcount(caps); i < 3;
       i++) {
    if (!(caps & (1u << i))) continue;
    size_t len = strlen(names);
    snprintf(names + len, sizeof names - len, "%s%s",
             n == 0         ? ""
             : n + 1 == all ? " and "
                            : ", ",
             cap_names[i]);
    n++;
    json_object_set_new(required, cap_names[i], json_object());
  }
  char msg[360];
  snprintf(msg, sizeof msg,
           "the agent needs the %s %s for this request, which the client did "
           "not declare%s%.200s%s",
           names, __builtin_popcount(caps) > 1 ? "capabilities" : "capability",
           why ? " (" : "", why ? why : "", why ? ")" : "");
  sb_mcp_call_fail(mc->call, SB_RPC_MISSING_CLIENT_CAPABILITY, msg,
                   json_pack("{so}", "requiredCapabilities", required));
}

static void reply(gw_mcp_call *mc, const sb_gateway_result *res) {
  unsigned lacked = failed_for(mc, res);
  if (lacked)
    reply_missing(mc, res, lacked);
  else if (res->outcome == SB_GATEWAY_ANSWERED && res->result)
    reply_result(mc, res);
  else if (res->outcome == SB_GATEWAY_ANSWERED)
    reply_agent_error(mc, res);
  else if (res->outcome == SB_GATEWAY_INVALID &&
           strcmp(mc->method, "tools/call") == 0)
    /* the call's own arguments (a context id that reads as missing) */
    sb_mcp_call_fail_invalid_args(mc->call, mc->public_name, res->message);
  else if (res->outcome == SB_GATEWAY_FORBIDDEN)
    sb_mcp_call_fail_scope(mc->call, res->scope, res->message);
  else if (res->outcome == SB_GATEWAY_BUSY)
    sb_mcp_call_fail(mc->call, SB_RPC_SERVER_BUSY, res->message, NULL);
  else if (strcmp(mc->method, "tools/call") == 0)
    /* A tool's failure is a tool result the model can read. */
    sb_mcp_call_reply_text(mc->call, res->message, 1);
  else
    sb_mcp_call_fail(mc->call, SB_RPC_INTERNAL_ERROR, res->message,
                     res->agent ? json_pack("{ss}", "agent", res->agent) : NULL);
  mc->call = NULL;
}

static void on_done(void *ud, const sb_gateway_result *res) {
  gw_mcp_call *mc = ud;
  mc->gc = NULL;
  if (mc->call) {
    reply(mc, res);
    mc_free(mc);
    return;
  }
  if (!mc->parked) { /* the caller is gone */
    mc_free(mc);
    return;
  }
  /* The caller is between rounds: keep the end for its retry. */
  mc->parked_in = NULL;
  mc->has_final = 1;
  mc->final_outcome = res->outcome;
  mc->final_result = json_incref(res->result);
  mc->final_error = json_incref(res->error);
  mc->final_routing = json_incref(res->routing);
  mc->final_message = res->message ? sb_strdup(res->message) : NULL;
  mc->final_agent = res->agent ? sb_strdup(res->agent) : NULL;
  mc->final_agent_modern = res->agent_modern;
}

static void reply_final(gw_mcp_call *mc) {
  sb_gateway_result res = {.outcome = mc->final_outcome,
                           .result = mc->final_result,
                           .error = mc->final_error,
                           .message = mc->final_message
                                          ? mc->final_message
                                          : "the agent call ended",
                           .agent = mc->final_agent,
                           .agent_modern = mc->final_agent_modern,
                           .routing = mc->final_routing};
  reply(mc, &res);
  mc_free(mc);
}

/* ---- progress, logs, cancellation ------------------------------------------ */

static void on_progress(void *ud, json_t *params) {
  gw_mcp_call *mc = ud;
  if (!mc->call) return;
  json_t *p = json_object_get(params, "progress");
  json_t *total = json_object_get(params, "total");
  sb_mcp_call_progress(mc->call, json_number_value(p),
                       total ? json_number_value(total) : -1,
                       json_string_value(json_object_get(params, "message")));
}

static void on_log(void *ud, json_t *params) {
  gw_mcp_call *mc = ud;
  if (mc->call) sb_mcp_call_forward_log(mc->call, params);
}

static void on_caller_cancel(sb_mcp_call *call, void *ud) {
  gw_mcp_call *mc = ud;
  mc->call = NULL; /* being freed: nothing more is written to it */
  if (mc->gc) sb_gateway_call_cancel(mc->gc, "the client cancelled");
  else mc_free(mc);
}

/* ---- input --------------------------------------------------------------------- */

static void on_client_answer(sb_mcp_call *call, json_t *result, json_t *error,
                             void *ud) {
  /* The call ended first (answered, cancelled, session gone): the question
   * went with it. */
  if (!call) return;
  sb_gateway_input_answer(ud, json_incref(result), json_incref(error));
}

/* Nothing says a modern caller will come back with the answer (2026-07-28
 * mrtr.mdx: servers MUST NOT assume it), and while it does not the agent's
 * call stays open, holding one of its maxConcurrent places until its
 * timeoutMs: a few abandoned rounds would refuse every caller "at
 * capacity". So at most half its places (one at least) wait for callers
 * like this; a question past that gives up the oldest waiting, whose
 * call is cancelled at the agent (its retry is told so). */
static void park_make_room(sb_gateway *gw, const sb_agent_def *def) {
  if (!def) return;
  unsigned limit = def->limits.max_concurrent / 2;
  if (limit < 1) limit = 1;
  unsigned waiting = 0;
  gw_mcp_call *oldest = NULL;
  for (sb_list_link *n = sb_list_first(&gw->mcp_calls); n;
       n = sb_list_next(n)) {
    gw_mcp_call *t = sb_list_entry(n, gw_mcp_call, link);
    if (!t->parked || !t->gc || !t->parked_in ||
        strcmp(gw_input_agent_def(t->parked_in)->id, def->id) != 0)
      continue;
    waiting++;
    if (!oldest || t->parked_at <= oldest->parked_at) oldest = t;
  }
  if (waiting < limit || !oldest) return;
  SB_INFO(MODULE,
          "agent %s: %u call(s) wait for their callers to come back with "
          "an answer, half its maxConcurrent: the oldest is cancelled",
          def->id, waiting);
  sb_gateway_call_cancel(oldest->gc,
                         "its caller had not come back with the answer to "
                         "the agent's question, and its place at the agent "
                         "was needed by another");
}

/* A legacy agent's question for a modern caller: answer the caller with
 * input_required and park until its retry. 0 if parked. */
static int park(gw_mcp_call *mc, sb_gateway_input *in) {
  sb_mcp_call *call = mc->call;
  park_make_room(mc->gw, gw_input_agent_def(in));
  sb_random_hex(mc->token, 16);
  /* Bound to the caller's tenant (sb_mcp_state_seal): the state travels
   * through the client, and another tenant holding it must not answer
   * this one's question. */
  json_t *payload = json_pack("{ss}", "t", mc->token);
  char *sealed = sb_mcp_state_seal(call, mc->method, mc->public_name, payload,
                                   PARK_STATE_TTL_MS);
  json_decref(payload);
  char *marked = sealed ? sb_asprintf(PARK_PREFIX "%s", sealed) : NULL;
  sb_free(sealed);
  if (!marked) return SB_ENOMEM;
  json_t *params = sb_gateway_input_params(in);
  json_t *r = json_pack("{sss{s{sssO}}ss}", "resultType", "input_required",
                        "inputRequests", PARK_KEY, "method",
                        sb_gateway_input_method(in), "params",
                        params ? params : json_null(), "requestState", marked);
  sb_free(marked);
  mc->parked = 1;
  mc->parked_in = in;
  mc->parked_at = sb_now_ms();
  mc_list(mc);
  mc->call = NULL;
  sb_mcp_call_reply(call, r);
  return 0;
}

static int on_input(void *ud, sb_gateway_input *in) {
  gw_mcp_call *mc = ud;
  if (!mc->call) return SB_EBUSY; /* parked already: one question at a time */
  const char *cap = sb_gateway_input_capability(in);
  if (cap && !sb_mcp_call_has_capability(mc->call, cap)) {
    /* Refused, so that the gateway answers it with the agent's models. */
    if (gw_sampling_possible(mc->gw, gw_input_agent_def(in),
                             sb_gateway_input_method(in)))
      return SB_ENOENT;
    if (sb_mcp_call_is_modern(mc->call)) mc->missing |= cap_bit(cap);
    char msg[256];
    snprintf(msg, sizeof msg,
             "the client that made this call did not declare the %s "
             "capability, so switchboard cannot pass it %s",
             cap, sb_gateway_input_method(in));
    sb_gateway_input_answer(in, NULL,
                            json_pack("{siss}", "code", SB_RPC_METHOD_NOT_FOUND,
                                      "message", msg));
    return 0;
  }
  if (!cap) return SB_EINVAL;
  if (sb_mcp_call_is_modern(mc->call)) return park(mc, in);
  return sb_mcp_call_ask_client(mc->call, sb_gateway_input_method(in),
                                json_incref(sb_gateway_input_params(in)),
                                on_client_answer, in);
}

static void on_input_withdrawn(void *ud, sb_gateway_input *in) {
  gw_mcp_call *mc = ud;
  if (mc->parked_in == in) mc->parked_in = NULL;
  else if (mc->call) sb_mcp_call_cancel_ask(mc->call, in, "withdrawn by the agent");
}

/* A modern caller's retry carrying our requestState (PARK_PREFIX + a
 * sealed token): answer the parked agent request and let the retry wait
 * for the agent. Returns 1 if the state was ours (the call is then
 * handled: resumed, or refused when tampered, expired or bound to another
 * request), 0 when it is the agent's own state, passed on unread. */
static int resume_parked(sb_gateway *gw, sb_mcp_call *call, const char *method,
                         const char *name, const char *state,
                         json_t *responses) {
  if (strncmp(state, PARK_PREFIX, strlen(PARK_PREFIX)) != 0) return 0;
  sb_error err = {0};
  json_t *payload =
      sb_mcp_state_open(call, state + strlen(PARK_PREFIX), method, name, &err);
  if (!payload) {
    sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS, err.msg,
                     json_pack("{ss}", "param", "requestState"));
    return 1;
  }
  const char *token = json_string_value(json_object_get(payload, "t"));
  gw_mcp_call *mc = NULL;
  for (sb_list_link *n = sb_list_first(&gw->mcp_calls); n && !mc;
       n = sb_list_next(n)) {
    gw_mcp_call *t = sb_list_entry(n, gw_mcp_call, link);
    if (t->parked && token && strcmp(t->token, token) == 0) mc = t;
  }
  json_decref(payload);
  if (!mc || (!mc->parked_in && !mc->has_final)) {
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
  mc->parked = 0;
  mc->call = call;
  mc_unlist(mc);
  if (mc->has_final) {
    reply_final(mc);
    return 1;
  }
  sb_mcp_call_on_cancel(call, on_caller_cancel, mc);
  sb_gateway_input *in = mc->parked_in;
  mc->parked_in = NULL;
  sb_gateway_input_answer(in, json_incref(answer), NULL);
  return 1;
}

/* ---- starting ------------------------------------------------------------------ */

/* Parked requests whose caller never came back go once their state could
 * no longer be presented. */
static void sweep_parked(sb_gateway *gw) {
  uint64_t now = sb_now_ms();
  sb_list_link *n, *next;
  SB_LIST_FOREACH_SAFE(n, next, &gw->mcp_calls) {
    gw_mcp_call *mc = sb_list_entry(n, gw_mcp_call, link);
    if (mc->parked && !mc->gc && now - mc->parked_at > PARK_STATE_TTL_MS)
      mc_free(mc);
  }
}

static const char *static_method(const char *m) {
  return strcmp(m, "tools/call") == 0       ? "tools/call"
         : strcmp(m, "prompts/get") == 0    ? "prompts/get"
         : strcmp(m, "resources/read") == 0 ? "resources/read"
                                            : "completion/complete";
}

/* A call of one agent's own name may name a context in its _meta: o's
 * context_id (borrowed from the params). 0 when it is not a string: the
 * call has been answered. */
static int context_from_meta(sb_mcp_call *call, json_t *own,
                             sb_gateway_call_options *o) {
  json_t *id = json_object_get(json_object_get(own, "_meta"),
                               SB_GATEWAY_META_CONTEXT_ID);
  if (!id) return 1;
  if (!json_is_string(id)) {
    sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS,
                     "_meta." SB_GATEWAY_META_CONTEXT_ID
                     ": expected a context id (a string)",
                     NULL);
    return 0;
  }
  o->context_id = json_string_value(id);
  return 1;
}

/* Serve `call` with a gateway call: o is filled with the target; the rest
 * comes from the MCP request. `params` (borrowed) replaces the request's
 * own params when not NULL (agents_call). Answers the call, now or later. */
static void start(sb_gateway *gw, sb_mcp_call *call,
                  sb_gateway_call_options *o, const char *public_name,
                  json_t *params) {
  const char *method = sb_mcp_call_method(call);
  /* A refused call has been answered by the hook. */
  if (gw->opts.permit_agent &&
      gw->opts.permit_agent(gw->opts.permit_ud, call, o->agent) != 0)
    return;
  sweep_parked(gw);
  json_t *own = sb_mcp_call_params(call);
  if (!params && !context_from_meta(call, own, o)) return;
  /* An agent's tool called by name: its Mcp-Param-* headers must agree
   * with the arguments (agents_call's own schema declares none). */
  if (!params && o->name && strcmp(method, "tools/call") == 0) {
    agent *a = gw_agent_find(gw, o->agent);
    const json_t *schema = a ? gw_agent_header_schema(a, o->name) : NULL;
    if (schema && sb_mcp_call_check_tool_headers(call, schema) != 0) return;
  }
  const char *state = json_string_value(json_object_get(own, "requestState"));
  json_t *responses = json_object_get(own, "inputResponses");
  if (state && resume_parked(gw, call, method, public_name, state, responses))
    return;
  gw_mcp_call *mc = sb_calloc(1, sizeof *mc);
  json_t *p = params ? json_incref(params) : json_copy(own);
  json_t *extra = (state || responses) ? json_object() : NULL;
  if (!mc || !p || ((state || responses) && !extra) ||
      !(mc->public_name = sb_strdup(public_name))) {
    if (mc) sb_free(mc->public_name);
    sb_free(mc);
    json_decref(p);
    json_decref(extra);
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  if (!params) {
    /* What the caller's envelope says is re-said for the agent. */
    json_object_del(p, "_meta");
    json_object_del(p, "name");
    json_object_del(p, "requestState");
    json_object_del(p, "inputResponses");
  }
  /* A modern caller's retry of an agent's input_required: pass it on. */
  if (state) json_object_set_new(extra, "requestState", json_string(state));
  if (responses) json_object_set(extra, "inputResponses", responses);
  mc->gw = gw;
  mc->call = call;
  mc->method = static_method(method);
  o->tenant = sb_mcp_call_tenant(call);
  o->principal = sb_mcp_call_principal(call);
  o->method = mc->method;
  o->params = p;
  o->log_level = sb_mcp_call_log_level(call);
  o->client_caps = sb_mcp_call_client_caps(call);
  o->pass_input_required = sb_mcp_call_is_modern(call);
  o->input_extra = extra;
  o->on_progress = sb_mcp_call_progress_token(call) ? on_progress : NULL;
  o->on_log = on_log;
  o->on_input = on_input;
  o->on_input_withdrawn = on_input_withdrawn;
  o->on_done = on_done;
  o->ud = mc;
  /* The caller's trace context goes on to the agent (the rest of its
   * _meta is its envelope to us, re-said above for the agent). */
  json_t *trace =
      o->meta ? NULL : sb_mcp_trace_context(json_object_get(own, "_meta"));
  if (trace) o->meta = trace;
  sb_gateway_call *gc = NULL;
  sb_error err = {0};
  int rc = sb_gateway_call_start(gw, o, &gc, &err);
  json_decref(p);
  json_decref(extra);
  json_decref(trace);
  if (rc != 0) {
    mc->call = NULL;
    mc_free(mc);
    if (rc == SB_EBUSY)
      sb_mcp_call_fail(call, SB_RPC_SERVER_BUSY, err.msg, NULL);
    else if (strcmp(method, "tools/call") != 0)
      sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS, err.msg, NULL);
    else if (rc == SB_EINVAL)
      sb_mcp_call_fail_invalid_args(call, public_name, err.msg);
    else
      sb_mcp_call_reply_text(call, err.msg, 1);
    return;
  }
  if (!gc) return; /* ended already: answered, and mc is gone */
  mc->gc = gc;
  if (mc->call) sb_mcp_call_on_cancel(call, on_caller_cancel, mc);
}

void gw_mcp_forward(sb_gateway *gw, agent *a, sb_mcp_call *call,
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
  sb_gateway_call_options o = {.agent = a->def->id, .name = name,
                               .no_fallback = 1};
  start(gw, call, &o, public_name ? public_name : "", NULL);
}

/* agents_call: {capability | agent, tool, arguments, contextId}. */
static int call_routed(sb_gateway *gw, sb_mcp_call *call, json_t *args) {
  sb_gateway_call_options o = {0};
  json_t *params = NULL;
  sb_error err = {0};
  const char *unknown = sb_json_unknown_key(args, routed_tool_args);
  if (unknown) {
    char names[160], msg[400];
    sb_join_names(routed_tool_args, names, sizeof names);
    snprintf(msg, sizeof msg, "%.128s: unknown argument (known: %s)", unknown,
             names);
    sb_mcp_call_fail_invalid_args(call, GW_ROUTED_TOOL, msg);
    return 1;
  }
  int rc = sb_gateway_routed_args(args, &o, &params, &err);
  if (rc == SB_EINVAL)
    sb_mcp_call_fail_invalid_args(call, GW_ROUTED_TOOL, err.msg);
  else if (rc != 0)
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, err.msg, NULL);
  else
    start(gw, call, &o, GW_ROUTED_TOOL, params);
  json_decref(params);
  return 1;
}

void gw_mcp_list_routed_tool(json_t *tools) {
  json_array_append_new(tools, json_loads(routed_tool_json, 0, NULL));
}

int gw_mcp_call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *args) {
  sb_gateway *gw = ud;
  if (strcmp(name, GW_ROUTED_TOOL) == 0) return call_routed(gw, call, args);
  agent *a = NULL;
  const char *tool = NULL;
  if (!gw_resolve_tool(gw, name, &a, &tool)) return 0;
  sb_gateway_call_options o = {.agent = a->def->id, .name = tool};
  start(gw, call, &o, name, NULL);
  return 1;
}

void gw_mcp_calls_stop(sb_gateway *gw) {
  sb_list_link *n;
  while ((n = sb_list_first(&gw->mcp_calls)))
    mc_free(sb_list_entry(n, gw_mcp_call, link));
}
