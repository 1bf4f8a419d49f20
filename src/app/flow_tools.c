/* flow_tools.c: workflows over MCP.
 *
 *   workflow_run {workflow, contextId?, input?, wait?}
 *       starts a run; with wait (the default) the call lasts until the run
 *       ends, with a progress notification per step, and a question of an
 *       `ask` step goes to the client as elicitation/create when it can
 *       elicit (a legacy client); otherwise the run waits for runs_answer.
 *       The result is the run (isError when it failed or was cancelled).
 *       The run is durable: a client that goes away does not stop it.
 *       A client that takes tasks gets a task instead (flow_tasks.c).
 *   runs_list {status?, cursor?, limit?}   runs_get {runId}
 *   runs_cancel {runId, reason?}   runs_answer {runId, step?, answer}
 *   runs_resume {runId}            runs_fork {runId, step}
 *   events_publish {type, data?, runId?}
 *
 * The event log is also a resource, events://log: reading it gives its
 * events from the oldest kept (events://log?since=SEQ: the ones after
 * SEQ), in order, at most 500 a read and no more than fit in half of
 * limits.max_message_bytes (the first always; "more" says events follow
 * its lastSeq), and a client subscribed to it
 * (resources/subscribe, or a modern subscriptions/listen) gets
 * notifications/resources/updated each time its tenant's log moves, then
 * reads from the last seq it saw.
 */
#include <stdlib.h>
#include <string.h>

#include "app/app_internal.h"

static const char *const flow_tools_json =
    "["
    "{\"name\":\"workflow_run\",\"title\":\"Run a workflow\","
    "\"description\":\"Start a run of a configured workflow on a new context "
    "(input.context, input.variables) or an existing one (contextId). With "
    "wait (default true) the call lasts until the run ends, reporting each "
    "step as progress; the result is the run.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"workflow\":{\"type\":\"string\"},\"contextId\":{\"type\":\"string\"},"
    "\"input\":{\"type\":\"object\",\"properties\":{\"context\":{\"type\":"
    "\"object\"},\"variables\":{\"type\":\"object\"}}},"
    "\"wait\":{\"type\":\"boolean\"}},\"required\":[\"workflow\"],"
    "\"additionalProperties\":false}},"
    "{\"name\":\"runs_list\",\"title\":\"List runs\","
    "\"description\":\"Workflow runs, newest first.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"status\":{\"type\":\"string\",\"enum\":[\"running\",\"waiting\","
    "\"completed\",\"failed\",\"cancelled\"]},\"cursor\":{\"type\":\"string\"},"
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000}}},"
    "\"annotations\":{\"readOnlyHint\":true}},"
    "{\"name\":\"runs_get\",\"title\":\"Inspect a run\","
    "\"description\":\"A run: status, current steps, what it waits for, and "
    "the history of its steps with the context version each left.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"runId\":{"
    "\"type\":\"string\"}},\"required\":[\"runId\"]},"
    "\"annotations\":{\"readOnlyHint\":true}},"
    "{\"name\":\"runs_cancel\",\"title\":\"Cancel a run\","
    "\"description\":\"Stop a running or waiting run.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"runId\":{"
    "\"type\":\"string\"},\"reason\":{\"type\":\"string\"}},"
    "\"required\":[\"runId\"]}},"
    "{\"name\":\"runs_answer\",\"title\":\"Answer a run\","
    "\"description\":\"Give the answer an ask step of a run waits for.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"runId\":{"
    "\"type\":\"string\"},\"step\":{\"type\":\"string\"},\"answer\":{}},"
    "\"required\":[\"runId\",\"answer\"]}},"
    "{\"name\":\"runs_resume\",\"title\":\"Resume a run\","
    "\"description\":\"A failed or cancelled run goes on from the step it "
    "stopped at.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"runId\":{"
    "\"type\":\"string\"}},\"required\":[\"runId\"]}},"
    "{\"name\":\"runs_fork\",\"title\":\"Fork a run\","
    "\"description\":\"A new run from the context version a completed step "
    "left, going on with the steps after it.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"runId\":{"
    "\"type\":\"string\"},\"step\":{\"type\":\"string\"}},"
    "\"required\":[\"runId\",\"step\"]}},"
    "{\"name\":\"events_publish\",\"title\":\"Publish an event\","
    "\"description\":\"Append an event (a type with a dot, data an object) to "
    "the tenant's event log; runs waiting for it go on.\","
    "\"inputSchema\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"type\":{"
    "\"type\":\"string\"},\"data\":{\"type\":\"object\"},\"runId\":{"
    "\"type\":\"string\"}},\"required\":[\"type\"]}}"
    "]";

json_t *app_flow_tool_result(json_t *run, int is_error) {
  char *text = sb_json_dumps(run, JSON_COMPACT);
  json_t *r = json_pack("{s[{ssss}]sO}", "content", "type", "text", "text",
                        text ? text : "", "structuredContent", run);
  sb_free(text);
  if (r && is_error) json_object_set_new(r, "isError", json_true());
  return r;
}

static void reply_run(sb_mcp_call *call, json_t *run, int is_error) {
  sb_mcp_call_reply(call, app_flow_tool_result(run, is_error));
}

static void reply_error(sb_mcp_call *call, int rc, const sb_error *err) {
  app_flow_reply_error(call, rc, err);
}

void app_flow_reply_error(sb_mcp_call *call, int rc, const sb_error *err) {
  const char *message = err->msg;
  if (rc == SB_EPERM && err->scope[0])
    return sb_mcp_call_fail_scope(call, err->scope, message);
  if (rc == SB_EBUSY) {
    sb_mcp_call_fail(call, SB_RPC_SERVER_BUSY, message, NULL);
    return;
  }
  const char *code = rc == SB_ENOENT   ? "not_found"
                     : rc == SB_ESTATE ? "conflict"
                     : rc == SB_EINVAL ? "invalid"
                     : rc == SB_ETOOBIG ? "too_large"
                                       : "internal";
  json_t *e = json_pack("{ssss}", "error", code, "message", message);
  reply_run(call, e, 1);
  json_decref(e);
}

/* ---- simple operations: one reply ---------------------------------------- */

typedef struct tool_op {
  sb_mcp_call *call; /* NULL once cancelled */
} tool_op;

static void op_cancelled(sb_mcp_call *call, void *ud) {
  (void)call;
  ((tool_op *)ud)->call = NULL;
}

static void op_done(void *ud, const sb_flow_reply *r) {
  tool_op *op = ud;
  if (op->call) {
    sb_mcp_call_on_cancel(op->call, NULL, NULL);
    if (r->rc != 0)
      reply_error(op->call, r->rc, &r->err);
    else
      reply_run(op->call, r->run, 0);
  }
  sb_free(op);
}

static tool_op *op_new(sb_mcp_call *call) {
  tool_op *op = sb_calloc(1, sizeof *op);
  if (!op) {
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return NULL;
  }
  op->call = call;
  return op;
}

/* An operation started (rc 0: op_done answers) or refused (answer now). */
static void started(sb_mcp_call *call, tool_op *op, int rc,
                    const sb_error *err) {
  if (rc != 0) {
    sb_free(op);
    reply_error(call, rc, err);
    return;
  }
  if (op->call) sb_mcp_call_on_cancel(call, op_cancelled, op);
}

/* ---- workflow_run -------------------------------------------------------- */

typedef struct run_watch {
  sb_app *app;
  sb_list_link link; /* in app->run_watches */
  sb_mcp_call *call; /* NULL once cancelled or answered */
  char *tenant, *run_id;
  sb_events_sub *sub;
  int steps_done;
  int asking; /* an elicitation is out */
  int finishing;
  /* A flow operation (the run's start, an answer) is under way with w as
   * its ud: its callback frees w if the call has gone meanwhile. */
  int in_flow;
} run_watch;

static void watch_free(run_watch *w) {
  sb_list_unlink(&w->app->run_watches, &w->link);
  if (w->sub) sb_events_unsubscribe(w->sub);
  sb_free(w->tenant);
  sb_free(w->run_id);
  sb_free(w);
}

/* The run read at its end, or when a graceful stop began (not ended
 * then: it goes on at the next start), for its workflow_run call. */
static void watch_final(void *ud, const sb_flow_reply *r) {
  run_watch *w = ud;
  if (w->call) {
    sb_mcp_call_on_cancel(w->call, NULL, NULL);
    if (r->rc != 0) {
      reply_error(w->call, r->rc, &r->err);
    } else {
      const char *st = json_string_value(json_object_get(r->run, "status"));
      if (st && (strcmp(st, "running") == 0 || strcmp(st, "waiting") == 0))
        sb_mcp_call_log(w->call, SB_LOG_NOTICE, "switchboard",
                        json_pack("{ss}", "message",
                                  "switchboard is stopping: the run goes on "
                                  "at its next start (runs_get follows it)"));
      reply_run(w->call, r->run,
                !st || strcmp(st, "failed") == 0 ||
                    strcmp(st, "cancelled") == 0);
    }
    w->call = NULL;
  }
  watch_free(w);
}

static void watch_cancelled(sb_mcp_call *call, void *ud) {
  (void)call;
  run_watch *w = ud;
  w->call = NULL; /* the run goes on: it is durable */
  if (!w->asking && !w->finishing && !w->in_flow) watch_free(w);
}

static void answered(void *ud, const sb_flow_reply *r) {
  run_watch *w = ud;
  w->asking = 0;
  if (r->rc != 0 && w->call)
    sb_mcp_call_log(w->call, SB_LOG_WARNING, "switchboard",
                    json_pack("{ss}", "message", r->err.msg));
  if (!w->call && !w->finishing) watch_free(w);
}

static void on_elicited(sb_mcp_call *call, json_t *result, json_t *error,
                        void *ud) {
  run_watch *w = ud;
  if (!call) { /* the call ended first */
    w->asking = 0;
    return;
  }
  const char *action = json_string_value(json_object_get(result, "action"));
  sb_error err = {0};
  if (!error && action && strcmp(action, "accept") == 0) {
    json_t *content = json_object_get(result, "content");
    if (sb_flow_run_answer(w->app->flow, w->tenant, w->run_id, NULL,
                           content ? content : json_object(), answered, w,
                           &err) == 0)
      return;
  } else {
    /* Declined or not answered: the run keeps waiting (runs_answer, REST). */
    sb_error_set(&err, SB_EINVAL,
                 "the question was %s; the run still waits "
                 "for an answer (runs_answer)",
                 action ? action : "not answered");
  }
  w->asking = 0;
  sb_mcp_call_log(call, SB_LOG_NOTICE, "switchboard",
                  json_pack("{ss}", "message", err.msg));
}

/* A modern client is asked with input_required: the call ends with the
 * question and a sealed requestState naming the run and the step; the run
 * keeps waiting (durably), and the client's retry of workflow_run with
 * inputResponses answers it and follows the run on. */
#define STATE_TTL_MS (24LL * 3600 * 1000)

static void ask_modern(run_watch *w, const char *step, json_t *message,
                       json_t *schema) {
  json_t *payload = json_pack("{ssss}", "run", w->run_id, "step", step);
  char *sealed = sb_mcp_state_seal(w->call, "tools/call", "workflow_run",
                                   payload, STATE_TTL_MS);
  json_decref(payload);
  json_t *params = json_pack(
      "{sssOso}", "mode", "form", "message", message, "requestedSchema",
      schema ? json_incref(schema)
             : json_pack("{sss{}}", "type", "object", "properties"));
  json_t *r = json_pack("{sss{s{ssso}}ss}", "resultType", "input_required",
                        "inputRequests", step, "method", "elicitation/create",
                        "params", params, "requestState", sealed ? sealed : "");
  sb_free(sealed);
  sb_mcp_call *call = w->call;
  sb_mcp_call_on_cancel(call, NULL, NULL);
  w->call = NULL;
  sb_mcp_call_reply(call, r);
}

/* An ask step started: a client that can elicit is asked. */
static void ask_client(run_watch *w, const char *step, json_t *message,
                       json_t *schema) {
  if (!w->call || w->asking || !json_is_string(message) ||
      !sb_mcp_call_has_capability(w->call, "elicitation"))
    return;
  if (sb_mcp_call_is_modern(w->call)) {
    ask_modern(w, step, message, schema);
    return;
  }
  json_t *params =
      json_pack("{sOso}", "message", message, "requestedSchema",
                schema ? json_incref(schema)
                       : json_pack("{sss{}}", "type", "object", "properties"));
  if (sb_mcp_call_ask_client(w->call, "elicitation/create", params, on_elicited,
                             w) == 0)
    w->asking = 1;
}

static void watch_event(void *ud, const sb_event *e) {
  run_watch *w = ud;
  if (w->finishing) return;
  sb_event_type t = sb_event_type_of(e->type);
  if (w->call && (t == SB_EVENT_STEP_COMPLETED || t == SB_EVENT_STEP_FAILED)) {
    json_t *d = json_loads(e->data, 0, NULL);
    const char *step = json_string_value(json_object_get(d, "step"));
    const char *agent = json_string_value(json_object_get(d, "agent"));
    char msg[256];
    snprintf(msg, sizeof msg, "step %s %s%s%s", step ? step : "?",
             t == SB_EVENT_STEP_COMPLETED ? "completed" : "failed",
             agent ? " by " : "", agent ? agent : "");
    sb_mcp_call_progress(w->call, ++w->steps_done, -1, msg);
    json_decref(d);
  } else if (t == SB_EVENT_STEP_STARTED) {
    json_t *d = json_loads(e->data, 0, NULL);
    const char *kind = json_string_value(json_object_get(d, "kind"));
    const char *step = json_string_value(json_object_get(d, "step"));
    if (kind && step && strcmp(kind, "ask") == 0)
      ask_client(w, step, json_object_get(d, "message"),
                 json_object_get(d, "schema"));
    json_decref(d);
    if (!w->call && !w->asking) { /* asked with input_required: done here */
      w->finishing = 1;
      sb_events_unsubscribe(w->sub);
      w->sub = NULL;
      watch_free(w);
      return;
    }
  } else if (t == SB_EVENT_RUN_COMPLETED || t == SB_EVENT_RUN_FAILED ||
             t == SB_EVENT_RUN_CANCELLED) {
    w->finishing = 1;
    sb_events_unsubscribe(w->sub);
    w->sub = NULL;
    sb_error err = {0};
    if (sb_flow_run_get(w->app->flow, w->tenant, w->run_id, watch_final, w,
                        &err) != 0) {
      if (w->call) reply_error(w->call, err.code, &err);
      w->call = NULL;
      watch_free(w);
    }
  }
}

void app_flow_tools_drain(sb_app *app) {
  sb_list_link *n, *next;
  for (n = sb_list_first(&app->run_watches); n; n = next) {
    next = sb_list_next(n);
    run_watch *w = sb_list_entry(n, run_watch, link);
    /* Following its run (not starting it, asking, or at its end). */
    if (!w->call || !w->sub || w->finishing || w->asking || w->in_flow)
      continue;
    w->finishing = 1;
    sb_events_unsubscribe(w->sub);
    w->sub = NULL;
    sb_error err = {0};
    if (sb_flow_run_get(app->flow, w->tenant, w->run_id, watch_final, w,
                        &err) != 0) {
      sb_mcp_call_on_cancel(w->call, NULL, NULL);
      reply_error(w->call, err.code, &err);
      w->call = NULL;
      watch_free(w);
    }
  }
}

static void watch_error(void *ud, const sb_error *err) {
  run_watch *w = ud;
  if (w->call) {
    sb_mcp_call_on_cancel(w->call, NULL, NULL);
    reply_error(w->call, SB_EIO, err);
    w->call = NULL;
  }
  sb_events_unsubscribe(w->sub);
  w->sub = NULL;
  if (!w->asking) watch_free(w);
}

static void follow(run_watch *w, const sb_flow_reply *r);

static void run_started(void *ud, const sb_flow_reply *r) {
  run_watch *w = ud;
  w->in_flow = 0;
  if (r->rc != 0 || !w->call) {
    if (w->call) {
      sb_mcp_call_on_cancel(w->call, NULL, NULL);
      reply_error(w->call, r->rc, &r->err);
    }
    watch_free(w);
    return;
  }
  w->run_id = sb_strdup(json_string_value(json_object_get(r->run, "id")));
  /* The run's steps hold their own places among the tenant's calls in
   * flight: waiting for them must not hold one too (a tenant allowed one
   * call would wait on itself). */
  sb_mcp_call_release_admission(w->call);
  follow(w, r);
}

/* Follow a run from the change `r` reports: its end, its questions. */
static void follow(run_watch *w, const sb_flow_reply *r) {
  const char *status = json_string_value(json_object_get(r->run, "status"));
  if (status &&
      (strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 ||
       strcmp(status, "cancelled") == 0)) {
    sb_mcp_call_on_cancel(w->call, NULL, NULL);
    reply_run(w->call, r->run, strcmp(status, "completed") != 0);
    watch_free(w);
    return;
  }
  sb_error err = {0};
  sb_events_filter f = {.run_id = w->run_id};
  w->sub = sb_events_subscribe(w->app->events, w->tenant, r->seq, &f,
                               watch_event, watch_error, w, &err);
  if (!w->sub) {
    sb_mcp_call_on_cancel(w->call, NULL, NULL);
    reply_error(w->call, err.code, &err);
    watch_free(w);
    return;
  }
  /* The first step may already ask. */
  json_t *waiting = json_array_get(json_object_get(r->run, "waiting"), 0);
  const char *kind = json_string_value(json_object_get(waiting, "kind"));
  const char *step = json_string_value(json_object_get(waiting, "step"));
  if (kind && step && strcmp(kind, "ask") == 0)
    ask_client(w, step, json_object_get(waiting, "message"),
               json_object_get(waiting, "schema"));
  if (!w->call && !w->asking) watch_free(w); /* asked with input_required */
}

/* The answer went in (or the run was read): follow the run on. */
static void answered_follow(void *ud, const sb_flow_reply *r) {
  run_watch *w = ud;
  w->in_flow = 0;
  if (!w->call) {
    watch_free(w);
    return;
  }
  if (r->rc != 0) {
    sb_mcp_call_on_cancel(w->call, NULL, NULL);
    reply_error(w->call, r->rc, &r->err);
    watch_free(w);
    return;
  }
  follow(w, r);
}

/* A modern client's retry of workflow_run with the answers to the question
 * it was asked (input_required): the run named in the sealed requestState
 * gets the answer, and the call follows it on. A declined question leaves
 * the run waiting: the answer is the run as it stands. */
static void resume_answered(run_watch *w, const char *state,
                            json_t *responses) {
  sb_mcp_call *call = w->call;
  sb_error err = {0};
  json_t *payload =
      sb_mcp_state_open(call, state, "tools/call", "workflow_run", &err);
  const char *run = json_string_value(json_object_get(payload, "run"));
  const char *step = json_string_value(json_object_get(payload, "step"));
  if (!payload || !run || !step) {
    json_decref(payload);
    watch_free(w);
    sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS,
                     err.code ? err.msg
                              : "requestState: not a workflow_run "
                                "question",
                     json_pack("{ss}", "param", "requestState"));
    return;
  }
  json_t *res = json_object_get(responses, step);
  const char *action = json_string_value(json_object_get(res, "action"));
  json_t *content = json_object_get(res, "content");
  char bad[320] = "";
  if (res && (!action || (strcmp(action, "accept") != 0 &&
                          strcmp(action, "decline") != 0 &&
                          strcmp(action, "cancel") != 0)))
    snprintf(bad, sizeof bad,
             "inputResponses[\"%.100s\"].action: expected \"accept\", "
             "\"decline\" or \"cancel\"",
             step);
  else if (content && !json_is_object(content))
    snprintf(bad, sizeof bad,
             "inputResponses[\"%.100s\"].content: expected an object, got %s",
             step, sb_json_type_name(content));
  if (bad[0]) {
    json_decref(payload);
    watch_free(w);
    sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS, bad,
                     json_pack("{ss}", "param", "inputResponses"));
    return;
  }
  w->run_id = sb_strdup(run);
  int rc;
  w->in_flow = 1;
  if (action && strcmp(action, "accept") == 0) {
    /* No content answers {} (as tasks/update does); the engine copies
     * the answer, so the empty object is ours to drop. */
    json_t *empty = json_object();
    rc = sb_flow_run_answer(w->app->flow, w->tenant, run, step,
                            content ? content : empty, answered_follow, w,
                            &err);
    json_decref(empty);
  } else
    rc = sb_flow_run_get(w->app->flow, w->tenant, run, watch_final, w, &err);
  json_decref(payload);
  if (rc != 0) {
    watch_free(w);
    reply_error(call, rc, &err);
    return;
  }
  sb_mcp_call_on_cancel(call, watch_cancelled, w);
}

int app_flow_start_args(sb_mcp_call *call, json_t *args, sb_flow_start *s) {
  static const char *const known[] = {"workflow", "contextId", "input", "wait",
                                      NULL};
  char msg[400];
  if (app_unknown_key(args, known, "argument", msg, sizeof msg)) {
    sb_mcp_call_fail_invalid_args(call, "workflow_run", msg);
    return SB_EINVAL;
  }
  const char *wf = json_string_value(json_object_get(args, "workflow"));
  json_t *cid = json_object_get(args, "contextId");
  json_t *input = json_object_get(args, "input");
  json_t *wait = json_object_get(args, "wait");
  if (!wf) {
    sb_mcp_call_fail_invalid_args(call, "workflow_run",
                                  "'workflow' must be a string");
    return SB_EINVAL;
  }
  const char *bad = cid && !json_is_string(cid)       ? "contextId"
                    : input && !json_is_object(input) ? "input"
                    : wait && !json_is_boolean(wait)  ? "wait"
                                                      : NULL;
  if (bad) {
    char what[160];
    snprintf(what, sizeof what, "'%s' must be %s, got %s", bad,
             bad[0] == 'c'   ? "a string"
             : bad[0] == 'i' ? "an object"
                             : "a boolean",
             sb_json_type_name(json_object_get(args, bad)));
    sb_mcp_call_fail_invalid_args(call, "workflow_run", what);
    return SB_EINVAL;
  }
  *s = (sb_flow_start){.tenant = sb_mcp_call_tenant(call),
                       .workflow = wf,
                       .context_id = json_string_value(cid),
                       .input = input};
  return 0;
}

int app_flow_run_start_call(sb_app *app, sb_mcp_call *call, sb_flow_start *s,
                            sb_flow_cb cb, void *ud, sb_error *err) {
  json_t *trace = sb_mcp_trace_context(
      json_object_get(sb_mcp_call_params(call), "_meta"));
  s->trace = trace;
  int rc = app_flow_run_start(app, sb_mcp_call_principal(call), s, cb, ud, err);
  s->trace = NULL;
  json_decref(trace);
  return rc;
}

static void workflow_run(sb_app *app, sb_mcp_call *call, json_t *args) {
  sb_flow_start s;
  if (app_flow_start_args(call, args, &s) != 0) return;
  json_t *wait = json_object_get(args, "wait");
  sb_error err = {0};
  if (wait && json_is_false(wait)) {
    tool_op *op = op_new(call);
    if (!op) return;
    started(call, op,
            app_flow_run_start_call(app, call, &s, op_done, op, &err),
            &err);
    return;
  }
  run_watch *w = sb_calloc(1, sizeof *w);
  if (!w || !(w->tenant = sb_strdup(s.tenant))) {
    sb_free(w);
    return sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
  }
  w->app = app;
  w->call = call;
  sb_list_push_back(&app->run_watches, &w->link);
  json_t *params = sb_mcp_call_params(call);
  const char *state =
      json_string_value(json_object_get(params, "requestState"));
  if (state) {
    resume_answered(w, state, json_object_get(params, "inputResponses"));
    return;
  }
  w->in_flow = 1;
  int rc = app_flow_run_start_call(app, call, &s, run_started, w, &err);
  if (rc != 0) {
    watch_free(w);
    return reply_error(call, rc, &err);
  }
  sb_mcp_call_on_cancel(call, watch_cancelled, w);
}

/* ---- the rest ------------------------------------------------------------ */

static void published(void *ud, int rc, int64_t seq, const sb_error *err) {
  tool_op *op = ud;
  if (op->call) {
    sb_mcp_call_on_cancel(op->call, NULL, NULL);
    if (rc != 0) {
      sb_error none = {0};
      if (!err) sb_error_set(&none, rc, "not written");
      reply_error(op->call, rc, err ? err : &none);
    } else {
      json_t *j = json_pack("{sI}", "seq", (json_int_t)seq);
      reply_run(op->call, j, 0);
      json_decref(j);
    }
  }
  sb_free(op);
}

/* The first of the runs tools' text arguments that is there but not a
 * string, or NULL: one of another type is refused, not taken as absent
 * (a runId of 5 published an event tied to no run). */
static const char *non_string_arg(const json_t *args) {
  static const char *const keys[] = {"runId",  "step",   "reason",
                                     "status", "cursor", "type", NULL};
  for (size_t i = 0; keys[i]; i++) {
    const json_t *v = json_object_get(args, keys[i]);
    if (v && !json_is_string(v)) return keys[i];
  }
  return NULL;
}

/* The provider's state: the app, and flow_tools_json read once. */
typedef struct flow_tools {
  sb_app *app;
  json_t *defs;
} flow_tools;

static int call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *args) {
  flow_tools *t = ud;
  sb_app *app = t->app;
  if (strcmp(name, "workflow_run") == 0) {
    workflow_run(app, call, args);
    return 1;
  }
  if (strncmp(name, "runs_", 5) != 0 && strcmp(name, "events_publish") != 0)
    return 0;
  if (app_tool_unknown_arg(call, t->defs, name, args)) return 1;
  const char *bad = non_string_arg(args);
  if (bad) {
    char msg[64];
    snprintf(msg, sizeof msg, "'%s' must be a string", bad);
    sb_mcp_call_fail_invalid_args(call, name, msg);
    return 1;
  }
  const char *tenant = sb_mcp_call_tenant(call);
  const char *run = json_string_value(json_object_get(args, "runId"));
  const char *step = json_string_value(json_object_get(args, "step"));
  sb_error err = {0};
  int rc;
  if (strcmp(name, "runs_list") == 0) {
    json_t *limit = json_object_get(args, "limit");
    if (limit && (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
                  json_integer_value(limit) > 1000)) {
      sb_mcp_call_fail_invalid_args(call, name,
                                    "'limit' is an integer from 1 to 1000");
      return 1;
    }
    tool_op *op = op_new(call);
    if (!op) return 1;
    rc = app_run_list(app, sb_mcp_call_principal(call), tenant,
                      json_string_value(json_object_get(args, "status")),
                      json_string_value(json_object_get(args, "cursor")),
                      limit ? (size_t)json_integer_value(limit) : 50, op_done,
                      op, &err);
    started(call, op, rc, &err);
    return 1;
  }
  if (strcmp(name, "events_publish") == 0) {
    const char *type = json_string_value(json_object_get(args, "type"));
    if (!type) {
      sb_mcp_call_fail_invalid_args(call, name, "'type' is required");
      return 1;
    }
    tool_op *op = op_new(call);
    if (!op) return 1;
    rc = sb_events_publish(app->events, tenant, type, run,
                           json_object_get(args, "data"), published, op, &err);
    started(call, op, rc, &err);
    return 1;
  }
  if (!run) {
    sb_mcp_call_fail_invalid_args(call, name, "'runId' must be a string");
    return 1;
  }
  /* Each checked against the run's workflow (run_access.c). */
  app_run_access a = {.principal = sb_mcp_call_principal(call),
                      .tenant = tenant,
                      .id = run,
                      .step = step,
                      .reason =
                          json_string_value(json_object_get(args, "reason")),
                      .answer = json_object_get(args, "answer")};
  if (strcmp(name, "runs_get") == 0)
    a.op = APP_RUN_GET;
  else if (strcmp(name, "runs_cancel") == 0)
    a.op = APP_RUN_CANCEL;
  else if (strcmp(name, "runs_answer") == 0)
    a.op = APP_RUN_ANSWER;
  else if (strcmp(name, "runs_resume") == 0)
    a.op = APP_RUN_RESUME;
  else if (strcmp(name, "runs_fork") == 0)
    a.op = APP_RUN_FORK;
  else
    return 0;
  tool_op *op = op_new(call);
  if (!op) return 1;
  rc = app_run_guard(app, &a, op_done, op, &err);
  started(call, op, rc, &err);
  return 1;
}

/* ---- events://log -------------------------------------------------------- */

#define EVENTS_URI "events://log"

/* A read's events take at most half of limits.max_message_bytes as JSON:
 * the answer carries them as a string (escaping a quote or a backslash
 * doubles it), so the whole answer stays within the limit. Before, 500
 * events of up to events.max_data_bytes each were all answered: 33 MB
 * under the default config, 246 MB with larger events, built on the loop
 * while it served no one else. */
#define LOG_READ_MAX 500
static size_t log_budget(const sb_app *app) {
  return app->cfg->max_message_bytes / 2;
}

/* The bytes ev takes as compact JSON written inside a JSON string. */
static size_t escaped_size(const json_t *ev) {
  char *text = ev ? sb_json_dumps(ev, JSON_COMPACT) : NULL;
  if (!text) return 0;
  size_t n = 0;
  for (const char *c = text; *c; c++)
    n += 1 + (*c == '"' || *c == '\\');
  sb_free(text);
  return n;
}

typedef struct log_read {
  sb_mcp_call *call; /* NULL once cancelled */
  char *uri;
  int64_t since;
  size_t budget; /* bytes the events may take (log_budget) */
} log_read;

void app_events_since_msg(int64_t since, int64_t newest, const char *what,
                          char *buf, size_t n) {
  snprintf(buf, n,
           "%s: %lld is past the newest event of this tenant's log (%lld): "
           "this log never gave it (was the store replaced?); read from %lld "
           "or below (0: from the start)",
           what, (long long)since, (long long)newest, (long long)newest);
}

int app_events_trimmed(int64_t since, const sb_store_result *res,
                       int64_t *from, int64_t *to) {
  if (since <= 0) return 0; /* from the oldest kept: nothing is missed */
  int64_t next = res->events.len ? res->events.items[0].seq
                                 : res->last_seq + 1;
  if (next <= since + 1) return 0;
  *from = since + 1;
  *to = next - 1;
  return 1;
}

static void log_cancelled(sb_mcp_call *call, void *ud) {
  (void)call;
  ((log_read *)ud)->call = NULL;
}

static void log_done(void *ud, sb_store_result *res) {
  log_read *op = ud;
  if (op->call) {
    sb_mcp_call_on_cancel(op->call, NULL, NULL);
    if (res->rc == SB_EBUSY) {
      sb_mcp_call_fail(op->call, SB_RPC_SERVER_BUSY,
                       "the event log is busy; "
                       "retry shortly",
                       NULL);
    } else if (res->rc != 0) {
      sb_mcp_call_fail(op->call, SB_RPC_INTERNAL_ERROR, res->err.msg, NULL);
    } else if (op->since > res->last_seq) {
      /* As GET /v1/events: an empty answer would have the reader go on
       * from a cursor that skips every event up to it. */
      char msg[400];
      app_events_since_msg(op->since, res->last_seq, "since", msg, sizeof msg);
      sb_mcp_call_fail(op->call, SB_RPC_INVALID_PARAMS, msg,
                       json_pack("{sssI}", "uri", op->uri, "newestSeq",
                                 (json_int_t)res->last_seq));
    } else {
      json_t *list = json_array();
      int64_t last = 0;
      int more = res->more;
      size_t used = 2; /* the array's brackets */
      for (size_t i = 0; i < res->events.len; i++) {
        const sb_store_event_row *row = &res->events.items[i];
        sb_event e = {.seq = row->seq,
                      .created_ms = row->created_ms,
                      .type = row->type,
                      .run_id = row->run_id,
                      .data = row->data};
        json_t *ev = sb_event_json(&e);
        /* The store counted the rows roughly; their JSON decides, as it
         * will be sent: inside the answer's text, where each quote and
         * backslash takes one more byte. The first event is always given,
         * however large, so a reader moves on; past it, the next read
         * gives what did not fit. */
        size_t n = escaped_size(ev) + 1;
        if (i && used + n > op->budget) {
          json_decref(ev);
          more = 1;
          break;
        }
        used += n;
        json_array_append_new(list, ev);
        last = row->seq;
      }
      /* lastSeq: where the next read goes on from. With nothing read, the
       * newest the log handed out (what was after `since` is gone), so a
       * reader does not start over from 0. */
      if (!last && res->last_seq > op->since) last = res->last_seq;
      if (!last && op->since > 0) last = op->since;
      /* more: events follow lastSeq already (the count or the byte bound
       * stopped this read): read again from lastSeq without waiting for
       * the log to move. */
      json_t *body = json_pack(
          "{sososb}", "events", list, "lastSeq",
          last ? json_integer((json_int_t)last) : json_null(), "more", more);
      int64_t from, to;
      if (body && app_events_trimmed(op->since, res, &from, &to))
        json_object_set_new(body, "trimmed",
                            json_pack("{sIsIss}", "from", (json_int_t)from,
                                      "to", (json_int_t)to, "message",
                                      "these events were trimmed (older "
                                      "than events.retention_s) before "
                                      "this read"));
      char *text = sb_json_dumps(body, JSON_COMPACT);
      json_decref(body);
      sb_mcp_call_reply(op->call,
                        json_pack("{s[{ssssss}]}", "contents", "uri", op->uri,
                                  "mimeType", "application/json", "text",
                                  text ? text : "{}"));
      sb_free(text);
    }
  }
  sb_free(op->uri);
  sb_free(op);
}

static int read_resource(void *ud, sb_mcp_call *call, const char *uri) {
  sb_app *app = ((flow_tools *)ud)->app;
  size_t n = strlen(EVENTS_URI);
  if (strncmp(uri, EVENTS_URI, n) != 0 || (uri[n] && uri[n] != '?')) return 0;
  if (app_mcp_permit(call, "events:read")) return 1; /* as GET /v1/events */
  int64_t since = 0;
  if (uri[n] == '?') {
    /* The log is there: a query it does not take is named, not answered
     * as a resource that does not exist. */
    const char *digits = uri + n + 7;
    const char *why = NULL;
    if (strncmp(uri + n, "?since=", 7) != 0)
      why = "events://log takes one query parameter, since=SEQ (the events "
            "after SEQ)";
    else if (sb_parse_digits(digits, strlen(digits), &since) != 0)
      why = "since: a sequence number (an integer from 0 to "
            "9223372036854775807)";
    if (why) {
      sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS, why,
                       json_pack("{ss}", "uri", uri));
      return 1;
    }
  }
  log_read *op = sb_calloc(1, sizeof *op);
  if (!op || !(op->uri = sb_strdup(uri))) {
    sb_free(op);
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return 1;
  }
  op->call = call;
  op->since = since;
  op->budget = log_budget(app);
  int rc = sb_store_events_read(app->store, sb_mcp_call_tenant(call), since,
                                NULL, LOG_READ_MAX, op->budget, log_done, op);
  if (rc != 0) {
    sb_free(op->uri);
    sb_free(op);
    sb_mcp_call_fail(
        call, rc == SB_EBUSY ? SB_RPC_SERVER_BUSY : SB_RPC_INTERNAL_ERROR,
        "the event log cannot be read now", NULL);
    return 1;
  }
  sb_mcp_call_on_cancel(call, log_cancelled, op);
  return 1;
}

static void list_resources(void *ud, sb_mcp_call *call, json_t *out) {
  (void)ud;
  (void)call;
  json_array_append_new(
      out, json_pack("{ssssssss}", "uri", EVENTS_URI, "name", "events",
                     "mimeType", "application/json", "description",
                     "This tenant's event log: read it (events://log?since="
                     "SEQ for what follows SEQ), subscribe to hear it move"));
}

/* A tenant's log moved: its subscribers hear of it (no one else). */
static void log_moved(void *ud, const char *tenant, int64_t last_seq) {
  (void)last_seq;
  sb_app *app = ud;
  sb_mcp_server_resource_updated_for(app->mcp, tenant, EVENTS_URI);
}

static void list_tools(void *ud, sb_mcp_call *call, json_t *out) {
  (void)call;
  json_array_extend(out, ((flow_tools *)ud)->defs);
}

static void destroy(void *ud) {
  flow_tools *t = ud;
  json_decref(t->defs);
  sb_free(t);
}

int app_flow_tools_register(sb_app *app) {
  flow_tools *t = sb_calloc(1, sizeof *t);
  if (!t) return SB_ENOMEM;
  t->app = app;
  t->defs = json_loads(flow_tools_json, 0, NULL);
  sb_mcp_provider p = {.name = "workflows",
                       .ud = t,
                       .list_tools = list_tools,
                       .call_tool = call_tool,
                       .list_resources = list_resources,
                       .read_resource = read_resource,
                       .destroy = destroy};
  if (!t->defs || sb_mcp_server_add_provider(app->mcp, &p) != 0) {
    destroy(t);
    return SB_ENOMEM;
  }
  sb_events_tap(app->events, log_moved, app);
  return 0;
}
