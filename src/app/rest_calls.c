/* rest_calls.c: POST /v1/agents/call, a tool call routed with the context
 * over REST (the agents_call tool's twin).
 *
 * Body: {"capability" | "agent", "tool", "arguments", "contextId",
 * "timeoutMs"}. The answer waits for the agent (the request is deferred):
 *
 *   200 {"agent", "result", "routing"}        the agent's result
 *   502 {"error": {"code": "agent_error", "message", "agentError"}}
 *                                              the agent's own error
 *   404 no_agent / 422 invalid (a context id that reads as missing too)
 *   503 busy (Retry-After) / unavailable, 504 timeout
 *
 * A REST caller has nobody to ask: an agent's request for input
 * (sampling, elicitation, roots) is refused with a clear error, which the
 * agent answers as it sees fit. */
#include <string.h>

#include "app/app_internal.h"

typedef struct rest_call {
  sb_http_request *req; /* NULL once the client has gone */
  sb_gateway_call *gc;  /* NULL once it has ended */
} rest_call;

static void respond_outcome(sb_http_request *req, const sb_gateway_result *r) {
  if (r->outcome == SB_GATEWAY_ANSWERED && r->result) {
    json_t *body = json_pack("{sssOsO?}", "agent", r->agent ? r->agent : "",
                             "result", r->result, "routing", r->routing);
    return app_rest_json(req, 200, body, NULL);
  }
  if (r->outcome == SB_GATEWAY_ANSWERED) {
    const char *m = json_string_value(json_object_get(r->error, "message"));
    return app_rest_json(
        req, 502,
        json_pack("{s{sssssO}}", "error", "code", "agent_error", "message",
                  m ? m : "the agent answered with an error", "agentError",
                  r->error),
        NULL);
  }
  int status;
  const char *code;
  switch (r->outcome) {
  case SB_GATEWAY_FORBIDDEN: return app_rest_refuse(req, r->scope, r->message);
  case SB_GATEWAY_NO_AGENT: status = 404, code = "no_agent"; break;
  case SB_GATEWAY_INVALID: status = 422, code = "invalid"; break;
  case SB_GATEWAY_INPUT_REFUSED: status = 422, code = "input_refused"; break;
  case SB_GATEWAY_TIMED_OUT: status = 504, code = "timeout"; break;
  case SB_GATEWAY_BUSY:
  case SB_GATEWAY_STOPPING: return app_rest_busy(req, r->message);
  default: status = 503, code = "unavailable"; break;
  }
  app_rest_json(req, status,
                json_pack("{s{ssssssss?}}", "error", "code", code, "message",
                          r->message, "outcome",
                          sb_gateway_outcome_name(r->outcome), "agent",
                          r->agent),
                NULL);
}

static void on_done(void *ud, const sb_gateway_result *r) {
  rest_call *rc = ud;
  rc->gc = NULL;
  if (rc->req) respond_outcome(rc->req, r);
  sb_free(rc);
}

static void on_gone(void *ud) {
  rest_call *rc = ud;
  rc->req = NULL;
  if (rc->gc) sb_gateway_call_cancel(rc->gc, "the HTTP client went away");
}

static const char *const call_keys[] = {
    "capability", "agent", "tool", "arguments", "contextId", "timeoutMs", NULL};

void app_rest_agent_call(sb_app *app, sb_http_request *req) {
  if (strcmp(sb_http_request_method(req), "POST") != 0)
    return app_rest_not_allowed(req, "POST", "use POST on /v1/agents/call");
  if (app_rest_query_known(req, NULL) != 0) return;
  json_t *body = app_rest_body_object(req, call_keys);
  if (!body) return;
  json_t *timeout = json_object_get(body, "timeoutMs");
  sb_gateway_call_options o = {0};
  json_t *params = NULL;
  sb_error err = {0};
  int bad = sb_gateway_routed_args(body, &o, &params, &err);
  if (bad == 0 && timeout &&
      (!json_is_integer(timeout) || json_integer_value(timeout) < 1 ||
       json_integer_value(timeout) > 3600000))
    bad = sb_error_set(&err, SB_EINVAL,
                       "'timeoutMs' must be an integer between 1 and 3600000");
  if (bad) {
    json_decref(params);
    json_decref(body);
    return app_rest_error(req, bad == SB_EINVAL ? 400 : 500,
                          bad == SB_EINVAL ? "bad_request" : "internal",
                          err.msg);
  }
  char perm[160];
  snprintf(perm, sizeof perm, "agents%s%s", o.agent ? ":" : "",
           o.agent ? o.agent : "");
  if (app_rest_permit(req, perm)) {
    json_decref(params);
    json_decref(body);
    return;
  }
  rest_call *rc = sb_calloc(1, sizeof *rc);
  if (!rc) {
    json_decref(params);
    json_decref(body);
    return app_rest_error(req, 500, "internal", "out of memory");
  }
  rc->req = req;
  o.tenant = sb_http_request_tenant(req);
  o.principal = sb_http_request_principal(req);
  o.params = params;
  o.deadline_ms = timeout ? (uint64_t)json_integer_value(timeout) : 0;
  o.on_done = on_done;
  o.ud = rc;
  o.meta = app_rest_trace(req);
  sb_http_request_defer(req, on_gone, rc);
  sb_gateway_call *gc = NULL;
  int rv = sb_gateway_call_start(app->gateway, &o, &gc, &err);
  json_decref(o.meta);
  json_decref(params);
  json_decref(body);
  if (rv != 0) {
    sb_free(rc);
    if (rv == SB_EBUSY) return app_rest_busy(req, err.msg);
    return app_rest_error(req, rv == SB_ENOENT ? 404 : 422,
                          rv == SB_ENOENT ? "no_agent" : "invalid", err.msg);
  }
  if (gc) rc->gc = gc; /* else answered already, and rc is gone */
}
