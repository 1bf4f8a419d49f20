/* call_inputs.c: a call's requests for input (sb_gateway_input).
 *
 * An agent's requests for input reach the call's caller as
 * sb_gateway_input values, in either era: a legacy agent's own request
 * (sampling, elicitation, roots) sent while it serves the call, or a
 * modern agent's input_required result, whose questions are asked one by
 * one and whose answers go back with the agent's requestState (at most
 * MAX_ROUNDS rounds), unless the caller takes input_required as its
 * result (pass_input_required: calls.c decides). A question the caller
 * refuses may be answered by switchboard's models (sampling.c). The call
 * itself (its lifecycle, retries and end) is calls.c's.
 */
#include "gateway/call_internal.h"

#define MODULE "agents"
#define MAX_ROUNDS 8

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

static sb_gateway_call *call_guessed_instead(const sb_gateway_input *in);
static int offer(sb_gateway_call *c, sb_gateway_input *in);
static void refuse_agent_request(agent *a, json_t *id, int code,
                                 const char *msg);

void gw_call_drop_inputs(sb_gateway_call *c, int every) {
  for (sb_gateway_input **pp = &c->inputs; *pp;) {
    sb_gateway_input *in = *pp;
    if (!every && in->kind != INPUT_AGENT_REQUEST) {
      pp = &in->next;
      continue;
    }
    *pp = in->next;
    if (c->o.on_input_withdrawn && !in->sampling)
      c->o.on_input_withdrawn(c->o.ud, in);
    sb_gateway_call *t =
        in->kind == INPUT_AGENT_REQUEST ? call_guessed_instead(in) : NULL;
    if (t) {
      gw_sampling_abandon(in->sampling);
      in->sampling = NULL;
      offer(t, in); /* taken, or refused (the agent told) and freed */
      continue;
    }
    if (in->kind == INPUT_AGENT_REQUEST && in->a && in->a->client)
      refuse_agent_request(in->a, in->agent_req_id, SB_RPC_INTERNAL_ERROR,
                           "the call this request belongs to ended before the "
                           "client answered");
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

/* ---- input_required from a modern agent ----------------------------------- */

static void retry_with_answers(sb_gateway_call *c) {
  json_t *extra = json_pack("{sO}", "inputResponses", c->answers);
  json_t *state = c->extra ? json_object_get(c->extra, "requestState") : NULL;
  if (state) json_object_set(extra, "requestState", state);
  json_decref(c->extra);
  c->extra = extra;
  json_decref(c->answers);
  c->answers = NULL;
  gw_call_try_agent(c, c->current);
}

/* Ask the caller each question of an input_required result; once all are
 * answered the call goes back to the agent with them. */
void gw_call_ask_questions(sb_gateway_call *c, json_t *result) {
  agent *a = c->current;
  json_t *requests = json_object_get(result, "inputRequests");
  json_t *state = json_object_get(result, "requestState");
  if (++c->rounds > MAX_ROUNDS) {
    gw_call_fail(c, SB_GATEWAY_INPUT_REFUSED,
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
    if (c->state == CALL_DONE) { /* ended inside (gw_call_finish() dropped every
                                    question, this one too): free it now */
      gw_call_free(c);
      return;
    }
    if (refused) {
      if (in) {
        input_unlink(in);
        input_free(in);
      }
      c->asking_loop = 0;
      gw_call_fail(c, SB_GATEWAY_INPUT_REFUSED,
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
             gw_call_agent_id(c), in->key, m ? m : "error");
    json_decref(error);
    json_decref(result);
    input_free(in);
    sb_gateway_result r = {.outcome = SB_GATEWAY_INPUT_REFUSED, .message = msg};
    gw_call_finish(c, &r);
    return;
  }
  json_object_set_new(c->answers, in->key, result ? result : json_null());
  input_free(in);
  if (--c->asked > 0) return;
  if (c->asking_loop) c->retry_due = 1; /* gw_call_ask_questions retries */
  else retry_with_answers(c);
}

/* ---- a legacy agent's own requests ------------------------------------------ */

/* Whether another caller's call is also in flight on agent a, beside c. */
static int others_in_flight(agent *a, const sb_gateway_call *c) {
  for (sb_gateway_call *t = gw_calls_first(a->owner); t; t = gw_calls_next(t))
    if (t != c && t->current == a && t->req && !gw_call_same_caller(t, c))
      return 1;
  return 0;
}

/* An agent request tied by a guess to a call that ended before it was
 * answered: the call it more likely belongs to, or NULL. The guess took
 * the newest request that could ask; the request may as well be one of
 * those in flight before that one, the next newest first (a call started
 * later cannot be what it was asked for). When it was guessed, every call
 * in flight on the agent was one caller's (else it was refused), so it
 * stays with that caller. */
static sb_gateway_call *call_guessed_instead(const sb_gateway_input *in) {
  if (!in->guessed_for || !in->a) return NULL;
  sb_gateway_call *best = NULL;
  for (sb_gateway_call *t = gw_calls_first(in->a->owner); t;
       t = gw_calls_next(t)) {
    if (t == in->call || t->current != in->a || !t->req ||
        t->state == CALL_DONE || !sb_mcp_request_may_ask(t->req) ||
        !gw_call_same_caller(t, in->call))
      continue;
    json_int_t id = sb_mcp_request_id(t->req);
    if (id < in->guessed_for && (!best || id > sb_mcp_request_id(best->req)))
      best = t;
  }
  return best;
}

static void refuse_agent_request(agent *a, json_t *id, int code,
                                 const char *msg) {
  sb_mcp_client_respond(a->client, id, NULL,
                        json_pack("{siss}", "code", code, "message", msg));
}

/* Ask c's caller the agent's request in (c's own from now on), or have
 * switchboard's models answer it. 0 if taken; else the agent has been
 * refused and in freed. */
static int offer(sb_gateway_call *c, sb_gateway_input *in) {
  in->call = c;
  in->next = c->inputs;
  c->inputs = in;
  int rc = in->method && c->o.on_input ? c->o.on_input(c->o.ud, in) : -1;
  if (rc == 0) return 0;
  /* The caller cannot answer: switchboard may, with the agent's models. */
  if (in->method && gw_sampling_start(in->a->owner, in->a->def, in) == 0)
    return 0;
  input_unlink(in);
  char msg[256];
  if (rc == SB_EBUSY)
    snprintf(msg, sizeof msg,
             "switchboard passes the caller of this call one question at a "
             "time, and another is being asked of it; send %s again once "
             "that one is answered",
             in->method);
  else
    snprintf(msg, sizeof msg,
             "switchboard cannot pass %s to the caller of this call (it did "
             "not declare the capability, or has nobody to ask)",
             in->method ? in->method : "this request");
  refuse_agent_request(in->a, in->agent_req_id, SB_RPC_METHOD_NOT_FOUND, msg);
  input_free(in);
  return SB_EINVAL;
}

void gw_input_from_agent(agent *a, sb_mcp_request *related, int guessed,
                         json_t *id, const char *method, json_t *params) {
  sb_gateway_call *c = NULL;
  for (sb_gateway_call *t = gw_calls_first(a->owner); t && !c;
       t = gw_calls_next(t))
    if (t->current == a && t->req && t->req == related) c = t;
  /* A guess among several callers' calls asks none of them. Not even
   * switchboard's models: the question would live and die with a call it
   * may not belong to, and the one it does belong to would wait for an
   * answer that never comes once the other ended. */
  if (c && guessed && others_in_flight(a, c)) {
    SB_WARN(MODULE,
            "agent %s sent %s while it serves calls of more than one caller, "
            "without saying for which; refused",
            a->def->id, method);
    refuse_agent_request(
        a, id, SB_RPC_METHOD_NOT_FOUND,
        "switchboard cannot tell which of the calls in progress this request "
        "belongs to (it serves calls of more than one caller), so it asks "
        "none of them");
    return;
  }
  if (!c) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "switchboard cannot pass %s to the caller of this call (no call "
             "in progress)",
             method);
    refuse_agent_request(a, id, SB_RPC_METHOD_NOT_FOUND, msg);
    return;
  }
  sb_gateway_input *in = sb_calloc(1, sizeof *in);
  if (!in) {
    refuse_agent_request(a, id, SB_RPC_INTERNAL_ERROR,
                         "switchboard is out of memory");
    return;
  }
  in->kind = INPUT_AGENT_REQUEST;
  in->a = a;
  in->guessed_for = guessed ? sb_mcp_request_id(related) : 0;
  in->agent_req_id = json_incref(id);
  in->method = sb_strdup(method);
  in->params = json_incref(params);
  offer(c, in);
}

void gw_input_withdrawn(agent *a, json_t *agent_req_id) {
  for (sb_gateway_call *c = gw_calls_first(a->owner); c; c = gw_calls_next(c)) {
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
  for (sb_gateway_call *c = gw_calls_first(a->owner); c; c = gw_calls_next(c))
    for (sb_gateway_input *in = c->inputs; in; in = in->next)
      if (in->a == a) in->a = NULL;
}
