/* flow_tasks.c: workflow runs as MCP tasks.
 *
 * A client that accepts tasks (mcp/tasks.c decides which) gets
 * workflow_run back as a task whose id is the run's id. A run is stored
 * before sb_flow_run_start calls back, so the task is durable before it
 * is acknowledged, and it survives a restart with the run. Nothing else
 * is stored: the task's fields all follow from the run view:
 *
 *   running                      -> working
 *   waiting at an `ask` step     -> input_required, one inputRequest per
 *                                   ask waiting, keyed "<step>/<visit>"
 *                                   (unique over the run's life)
 *   waiting for an event         -> working (the wait is the server's)
 *   completed                    -> completed, result: the run as
 *                                   workflow_run would have answered
 *   failed                       -> completed with that result and
 *                                   isError (a tool error is not a
 *                                   JSON-RPC error; 2025-11-25 clients see
 *                                   "failed")
 *   cancelled                    -> cancelled
 *
 * createdAt and lastUpdatedAt are the run's; ttlMs is null because runs
 * are kept without limit; pollIntervalMs is a constant. A run of the
 * caller's tenant is readable as a task with the scopes of the runs
 * surface (run_access.c): tasks/get, tasks/list and tasks/result need
 * "runs:read" or "runs:read:<its workflow>" (tasks/list lists only those),
 * tasks/cancel and tasks/update "runs:write" or "runs:write:<its
 * workflow>"; tasks/result asks a run's questions only of a caller that
 * may answer them. Runs of another tenant are unknown tasks.
 *
 * Answers: tasks/update (2026-07-28) with an accepted elicitation answers
 * the ask step (sb_flow_run_answer); a declined or cancelled one cancels
 * the run, since the person said no and the key may not be asked again.
 * tasks/result (2025-11-25) waits for the run to end, re-reading it every
 * RESULT_POLL_MS, and asks each question once as elicitation/create; an
 * answer the run refuses (or cannot store) ends that tasks/result with the
 * error, the question still open for the next tasks/result to ask again.
 */
#include <string.h>

#include "app/app_internal.h"

#define TASK_POLL_MS 500   /* pollIntervalMs suggested to clients */
#define RESULT_POLL_MS 200 /* a blocked tasks/result re-reads the run */

static const char *const task_tools[] = {"workflow_run", NULL};

/* ---- the task of a run --------------------------------------------------- */

static json_t *iso8601(json_t *ms) {
  char buf[32];
  sb_time_format((int64_t)json_integer_value(ms), buf);
  return json_string(buf);
}

static json_t *ask_request(json_t *w) {
  json_t *schema = json_object_get(w, "schema");
  json_t *message = json_object_get(w, "message");
  return json_pack(
      "{sss{ssssso}}", "method", "elicitation/create", "params", "mode", "form",
      "message", json_is_string(message) ? json_string_value(message) : "",
      "requestedSchema",
      schema ? json_incref(schema)
             : json_pack("{sss{}}", "type", "object", "properties"));
}

static void ask_key(json_t *w, char *buf, size_t n) {
  snprintf(buf, n, "%s/%lld",
           json_string_value(json_object_get(w, "step")) ?: "?",
           (long long)json_integer_value(json_object_get(w, "visit")));
}

json_t *app_task_of_run(json_t *run) {
  const char *status = json_string_value(json_object_get(run, "status")) ?: "";
  json_t *error = json_object_get(run, "error");
  const char *why = json_string_value(json_object_get(error, "message"));
  json_t *t =
      json_pack("{sOsososnsi}", "taskId", json_object_get(run, "id"),
                "createdAt", iso8601(json_object_get(run, "createdAt")),
                "lastUpdatedAt", iso8601(json_object_get(run, "updatedAt")),
                "ttlMs", "pollIntervalMs", TASK_POLL_MS);
  if (!t) return NULL;
  const char *ts = "working";
  char msg[300] = "";
  if (strcmp(status, "completed") == 0) {
    ts = "completed";
    json_object_set_new(t, "result", app_flow_tool_result(run, 0));
  } else if (strcmp(status, "failed") == 0) {
    ts = "completed";
    json_object_set_new(t, "result", app_flow_tool_result(run, 1));
    snprintf(msg, sizeof msg, "the run failed: %s", why ? why : "unknown");
  } else if (strcmp(status, "cancelled") == 0) {
    ts = "cancelled";
    if (why) snprintf(msg, sizeof msg, "%s", why);
  } else if (strcmp(status, "running") == 0) {
    size_t i, n = 0;
    json_t *step;
    json_array_foreach(json_object_get(run, "current"), i, step) {
      const char *id = json_string_value(step);
      if (!id) continue;
      n += (size_t)snprintf(msg + n, sizeof msg - n, "%s%s",
                            n ? ", " : "running step ", id);
      if (n >= sizeof msg) break;
    }
  } else if (strcmp(status, "waiting") == 0) {
    json_t *requests = json_object();
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(run, "waiting"), i, w) {
      const char *kind = json_string_value(json_object_get(w, "kind"));
      if (kind && strcmp(kind, "ask") == 0) {
        char key[160];
        ask_key(w, key, sizeof key);
        json_object_set_new(requests, key, ask_request(w));
        if (!*msg)
          snprintf(msg, sizeof msg, "step %s waits for an answer",
                   json_string_value(json_object_get(w, "step")) ?: "?");
      } else if (!*msg) {
        snprintf(msg, sizeof msg, "step %s waits for an event %s",
                 json_string_value(json_object_get(w, "step")) ?: "?",
                 json_string_value(json_object_get(w, "event")) ?: "");
      }
    }
    if (json_object_size(requests) > 0) {
      ts = "input_required";
      json_object_set_new(t, "inputRequests", requests);
    } else {
      json_decref(requests);
    }
  }
  /* A run in progress that this server cannot bring back (its view's
   * `blocked`): its questions cannot be answered; say why instead. */
  const char *blocked = json_string_value(
      json_object_get(json_object_get(run, "blocked"), "message"));
  if (blocked && strcmp(ts, "cancelled") != 0 && strcmp(ts, "completed") != 0) {
    ts = "working";
    json_object_del(t, "inputRequests");
    snprintf(msg, sizeof msg, "blocked: %s (cancelling ends it)", blocked);
  }
  json_object_set_new(t, "status", json_string(ts));
  if (*msg) json_object_set_new(t, "statusMessage", json_string(msg));
  return t;
}

/* ---- operations: one per tasks/ request ---------------------------------- */

typedef struct task_op {
  sb_app *app;
  sb_mcp_call *call;       /* NULL once answered or gone */
  sb_principal *principal; /* the caller's (a reference); NULL: anyone */
  char *tenant, *task_id;
  int pending; /* flow operations and questions in flight */
  /* tasks/update: the answers still to give, [{step, action, content}] */
  json_t *todo;
  /* tasks/result */
  uv_timer_t timer;
  int timer_inited, closing;
  json_t *asked;     /* keys asked already (a set) */
  char *asking_step; /* the step of the question out, if any */
} task_op;

static void op_free(task_op *op) {
  json_decref(op->todo);
  json_decref(op->asked);
  sb_free(op->asking_step);
  sb_free(op->tenant);
  sb_free(op->task_id);
  sb_principal_unref(op->principal);
  sb_free(op);
}

static void timer_closed(uv_handle_t *h) { op_free(h->data); }

/* Free the op once no one can reach it any more. */
static void op_maybe_free(task_op *op) {
  if (op->call || op->pending > 0 || op->closing) return;
  if (op->timer_inited) {
    op->closing = 1;
    uv_timer_stop(&op->timer);
    uv_close((uv_handle_t *)&op->timer, timer_closed);
    return;
  }
  op_free(op);
}

static void op_cancelled(sb_mcp_call *call, void *ud) {
  (void)call;
  task_op *op = ud;
  op->call = NULL;
  op_maybe_free(op);
}

/* Take the call to answer it: it is off the op from now on. The op is
 * held over the answer, since answering ends the questions in flight. */
static sb_mcp_call *op_take(task_op *op) {
  sb_mcp_call *call = op->call;
  op->call = NULL;
  if (call) sb_mcp_call_on_cancel(call, NULL, NULL);
  op->pending++;
  return call;
}

static void op_release(task_op *op) {
  op->pending--;
  op_maybe_free(op);
}

/* Fail op's call (if still there) with code and message, data naming the
 * parameter at fault (param NULL: none); releases op's hold. */
static void op_fail(task_op *op, int code, const char *msg, const char *param) {
  sb_mcp_call *call = op_take(op);
  if (call)
    sb_mcp_call_fail(call, code, msg,
                     param ? json_pack("{ss}", "param", param) : NULL);
  op_release(op);
}

static task_op *op_new(sb_app *app, sb_mcp_call *call, const char *task_id) {
  task_op *op = sb_calloc(1, sizeof *op);
  if (op) {
    op->app = app;
    op->call = call;
    op->tenant = sb_strdup(sb_mcp_call_tenant(call));
    op->principal =
        sb_principal_ref((sb_principal *)sb_mcp_call_principal(call));
    op->task_id = task_id ? sb_strdup(task_id) : NULL;
  }
  if (!op || !op->tenant || (task_id && !op->task_id)) {
    if (op) op_free(op);
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return NULL;
  }
  sb_mcp_call_on_cancel(call, op_cancelled, op);
  return op;
}

/* A flow error as the answer to a tasks/ request. */
static void fail_flow(sb_mcp_call *call, int rc, const sb_error *err) {
  const char *message = err->msg;
  if (rc == SB_EPERM && err->scope[0])
    sb_mcp_call_fail_scope(call, err->scope, message);
  else if (rc == SB_ENOENT || rc == SB_EINVAL)
    sb_mcp_call_fail_task_unknown(call);
  else if (rc == SB_EBUSY)
    sb_mcp_call_fail(call, SB_RPC_SERVER_BUSY, message, NULL);
  else
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, message, NULL);
}

/* An operation did not start: cb will not run. */
static void not_started(task_op *op, int rc, const sb_error *err) {
  sb_mcp_call *call = op_take(op);
  if (call) fail_flow(call, rc, err);
  op_release(op);
}

/* 0 if the caller may read (write) some run; else the call is refused
 * naming the scope, before any lookup. */
static int permit_some(sb_mcp_call *call, int write) {
  sb_error err = {0};
  if (app_runs_permit_some(sb_mcp_call_principal(call), write, &err) == 0)
    return 0;
  sb_mcp_call_fail_scope(call, err.scope, err.msg);
  return SB_EPERM;
}

/* 0 if op's caller may read (write) this run; else its call is answered
 * with the refusal naming the run's workflow's scope. */
static int permit_run(task_op *op, int write, const json_t *run) {
  sb_error err = {0};
  if (app_run_permits(op->principal, write, run, &err) == 0) return 0;
  sb_mcp_call *call = op_take(op);
  if (call) sb_mcp_call_fail_scope(call, err.scope, err.msg);
  op_release(op);
  return SB_EPERM;
}

/* Answer op's call with r's run as a task, or r's error; releases op. */
static void reply_task(task_op *op, const sb_flow_reply *r) {
  sb_mcp_call *call = op_take(op);
  if (call) {
    if (r->rc != 0)
      fail_flow(call, r->rc, &r->err);
    else
      sb_mcp_call_reply_task(call, app_task_of_run(r->run));
  }
  op_release(op);
}

/* ---- workflow_run as a task ---------------------------------------------- */

static void run_started(void *ud, const sb_flow_reply *r) {
  task_op *op = ud;
  op->pending--;
  sb_mcp_call *call = op_take(op);
  if (call) {
    if (r->rc != 0) /* no task: answered as the tool would answer */
      app_flow_reply_error(call, r->rc, &r->err);
    else
      sb_mcp_call_reply_task(call, app_task_of_run(r->run));
  }
  op_release(op);
}

static void task_call_tool(void *ud, sb_mcp_call *call, const char *name,
                           json_t *args) {
  (void)name; /* workflow_run: the only task tool */
  sb_app *app = ud;
  sb_flow_start s;
  if (app_flow_start_args(call, args, &s) != 0) return;
  task_op *op = op_new(app, call, NULL);
  if (!op) return;
  s.tenant = op->tenant;
  sb_error err = {0};
  op->pending++;
  int rc = app_flow_run_start_call(app, call, &s, run_started, op, &err);
  if (rc != 0) {
    op->pending--;
    sb_mcp_call *c = op_take(op);
    if (c) app_flow_reply_error(c, rc, &err);
    op_release(op);
  }
}

/* ---- tasks/get ----------------------------------------------------------- */

static void got(void *ud, const sb_flow_reply *r) {
  task_op *op = ud;
  op->pending--;
  if (r->rc == 0 && permit_run(op, 0, r->run) != 0) return;
  reply_task(op, r);
}

static void task_get(void *ud, sb_mcp_call *call, const char *id) {
  if (permit_some(call, 0) != 0) return;
  task_op *op = op_new(ud, call, id);
  if (!op) return;
  sb_error err = {0};
  op->pending++;
  int rc = sb_flow_run_get(op->app->flow, op->tenant, id, got, op, &err);
  if (rc != 0) {
    op->pending--;
    not_started(op, rc, &err);
  }
}

/* ---- tasks/cancel -------------------------------------------------------- */

static void refused_read(void *ud, const sb_flow_reply *r) {
  task_op *op = ud;
  op->pending--;
  sb_mcp_call *call = op_take(op);
  if (call) {
    if (r->rc != 0)
      fail_flow(call, r->rc, &r->err);
    else
      sb_mcp_call_task_cancel_refused(call, app_task_of_run(r->run));
  }
  op_release(op);
}

static void cancelled(void *ud, const sb_flow_reply *r) {
  task_op *op = ud;
  op->pending--;
  /* it had ended: say how (unless the engine is gone: the server stops) */
  if (r->rc == SB_ESTATE && op->call && op->app->flow) {
    sb_error err = {0};
    op->pending++;
    int rc = sb_flow_run_get(op->app->flow, op->tenant, op->task_id,
                             refused_read, op, &err);
    if (rc != 0) {
      op->pending--;
      not_started(op, rc, &err);
    }
    return;
  }
  reply_task(op, r);
}

static void task_cancel(void *ud, sb_mcp_call *call, const char *id) {
  if (permit_some(call, 1) != 0) return;
  task_op *op = op_new(ud, call, id);
  if (!op) return;
  sb_error err = {0};
  op->pending++;
  app_run_access a = {.principal = op->principal,
                      .tenant = op->tenant,
                      .id = id,
                      .op = APP_RUN_CANCEL,
                      .reason = "the client cancelled the task"};
  int rc = app_run_guard(op->app, &a, cancelled, op, &err);
  if (rc != 0) {
    op->pending--;
    sb_flow_reply r = {.rc = rc, .err = err};
    op->pending++;
    cancelled(op, &r);
  }
}

/* ---- answers: tasks/update and the questions of tasks/result ------------- */

/* What a response to an elicitation says (ElicitResult.action). Anything
 * else is malformed: it neither answers nor stops the run. */
typedef enum answer_action {
  ANSWER_ACCEPT,
  ANSWER_DECLINE,
  ANSWER_CANCEL,
  ANSWER_NOT_OBJECT,  /* the response is not an object */
  ANSWER_BAD_ACTION,  /* action missing or not accept, decline or cancel */
  ANSWER_BAD_CONTENT, /* accept with a content that is not an object */
} answer_action;

/* ElicitResult.content is an object, or absent: an accept without one
 * answers {} (as workflow_run's retry with inputResponses does), and one
 * of another type (null included) is refused there and here alike. */
static answer_action answer_action_of(const json_t *response) {
  if (!json_is_object(response)) return ANSWER_NOT_OBJECT;
  const char *a = json_string_value(json_object_get(response, "action"));
  if (!a) return ANSWER_BAD_ACTION;
  if (strcmp(a, "accept") == 0) {
    const json_t *content = json_object_get(response, "content");
    return content && !json_is_object(content) ? ANSWER_BAD_CONTENT
                                               : ANSWER_ACCEPT;
  }
  if (strcmp(a, "decline") == 0) return ANSWER_DECLINE;
  if (strcmp(a, "cancel") == 0) return ANSWER_CANCEL;
  return ANSWER_BAD_ACTION;
}

/* The message naming what is wrong with a malformed response. */
static void answer_malformed_msg(answer_action a, const json_t *response,
                                 const char *what, char *buf, size_t n) {
  if (a == ANSWER_NOT_OBJECT)
    snprintf(buf, n, "%s: expected an object {action, content?}", what);
  else if (a == ANSWER_BAD_CONTENT)
    snprintf(buf, n, "%s.content: expected an object, got %s", what,
             sb_json_type_name(json_object_get(response, "content")));
  else
    snprintf(buf, n, "%s.action: expected accept, decline or cancel", what);
}

/* Give one answer: accept answers the ask step (content NULL: {}); decline
 * and cancel cancel the run. 0 when under way (cb runs), else a negative
 * code with err. */
static int give_answer(task_op *op, const char *step, answer_action action,
                       json_t *content, sb_flow_cb cb, sb_error *err) {
  if (action == ANSWER_ACCEPT) {
    json_t *empty = json_object();
    int rc = sb_flow_run_answer(op->app->flow, op->tenant, op->task_id, step,
                                content ? content : empty, cb, op, err);
    json_decref(empty);
    return rc;
  }
  char reason[200];
  snprintf(reason, sizeof reason, "the question of step %s was %s", step,
           action == ANSWER_DECLINE ? "declined" : "cancelled");
  return sb_flow_run_cancel(op->app->flow, op->tenant, op->task_id, reason, cb,
                            op, err);
}

static void update_next(task_op *op);

static void update_answered(void *ud, const sb_flow_reply *r) {
  task_op *op = ud;
  op->pending--;
  /* SB_ESTATE: the run no longer waits there, the answer is moot. */
  if (r->rc != 0 && r->rc != SB_ESTATE && r->rc != SB_ENOENT) {
    op_fail(op,
            r->rc == SB_EINVAL ? SB_RPC_INVALID_PARAMS : SB_RPC_INTERNAL_ERROR,
            r->err.msg, NULL);
    return;
  }
  update_next(op);
}

/* Give the next answer of op->todo, or acknowledge when none is left. */
static void update_next(task_op *op) {
  while (op->call && json_array_size(op->todo) > 0) {
    json_t *a = json_incref(json_array_get(op->todo, 0));
    json_array_remove(op->todo, 0);
    sb_error err = {0};
    op->pending++;
    int rc = give_answer(
        op, json_string_value(json_object_get(a, "step")),
        (answer_action)json_integer_value(json_object_get(a, "action")),
        json_object_get(a, "content"), update_answered, &err);
    json_decref(a);
    if (rc == 0) return;
    op->pending--;
    if (rc != SB_ESTATE && rc != SB_ENOENT) {
      op_fail(op,
              rc == SB_EINVAL ? SB_RPC_INVALID_PARAMS : SB_RPC_INTERNAL_ERROR,
              err.msg, NULL);
      return;
    }
  }
  sb_mcp_call *call = op_take(op);
  if (call) sb_mcp_call_reply(call, json_object()); /* acknowledged */
  op_release(op);
}

/* Every answer is checked against its question's schema before any is
 * given: one refused after others were given would leave the run half
 * answered, and the caller told only that the update failed. 0 if the
 * accepted content (NULL: {}) fits, else 1 with op's call failed. */
static int update_refuses(task_op *op, const char *key, json_t *waiting,
                          json_t *content) {
  json_t *empty = content ? NULL : json_object();
  sb_error err = {0};
  int rc = sb_flow_answer_check(
      json_string_value(json_object_get(waiting, "step")) ?: "?",
      json_object_get(waiting, "schema"), content ? content : empty, &err);
  json_decref(empty);
  if (rc == 0) return 0;
  char msg[sizeof err.msg + 200];
  snprintf(msg, sizeof msg, "params.inputResponses[\"%s\"]: %s", key, err.msg);
  op_fail(op, SB_RPC_INVALID_PARAMS, msg, "inputResponses");
  return 1;
}

/* The run as it is: match the responses to the questions it asks now;
 * responses to anything else are ignored (the extension: "Ignore
 * responses for unknown or already-satisfied keys"). */
static void update_read(void *ud, const sb_flow_reply *r) {
  task_op *op = ud;
  op->pending--;
  if (r->rc != 0) {
    sb_mcp_call *call = op_take(op);
    if (call) fail_flow(call, r->rc, &r->err);
    op_release(op);
    return;
  }
  if (permit_run(op, 1, r->run) != 0) return;
  json_t *responses =
      op->call ? json_object_get(sb_mcp_call_params(op->call), "inputResponses")
               : NULL;
  op->todo = json_array();
  size_t i;
  json_t *w;
  json_array_foreach(json_object_get(r->run, "waiting"), i, w) {
    const char *kind = json_string_value(json_object_get(w, "kind"));
    if (!kind || strcmp(kind, "ask") != 0) continue;
    char key[160];
    ask_key(w, key, sizeof key);
    json_t *resp = json_object_get(responses, key);
    if (!resp) continue;
    answer_action action = answer_action_of(resp);
    if (action >= ANSWER_NOT_OBJECT) {
      /* Nothing is given: a malformed response is not a "no". */
      char what[200], msg[300];
      snprintf(what, sizeof what, "params.inputResponses[\"%s\"]", key);
      answer_malformed_msg(action, resp, what, msg, sizeof msg);
      op_fail(op, SB_RPC_INVALID_PARAMS, msg, "inputResponses");
      return;
    }
    json_t *content = json_object_get(resp, "content");
    if (action == ANSWER_ACCEPT && update_refuses(op, key, w, content) != 0)
      return;
    /* No content: none in the entry (not null, which would be answered
     * as null where workflow_run answers {}). */
    json_t *todo = json_pack("{sOsi}", "step", json_object_get(w, "step"),
                             "action", (int)action);
    if (todo && content) json_object_set(todo, "content", content);
    json_array_append_new(op->todo, todo);
  }
  update_next(op);
}

static void task_update(void *ud, sb_mcp_call *call, const char *id,
                        json_t *responses) {
  (void)responses; /* read again from the call once the run is read */
  if (permit_some(call, 1) != 0) return;
  task_op *op = op_new(ud, call, id);
  if (!op) return;
  sb_error err = {0};
  op->pending++;
  int rc =
      sb_flow_run_get(op->app->flow, op->tenant, id, update_read, op, &err);
  if (rc != 0) {
    op->pending--;
    not_started(op, rc, &err);
  }
}

/* ---- tasks/result (2025-11-25): wait for the end, asking on the way ------ */

static void result_check(task_op *op);

static void result_tick(uv_timer_t *t) { result_check(t->data); }

static void result_later(task_op *op) {
  if (op->call && !op->closing)
    uv_timer_start(&op->timer, result_tick, RESULT_POLL_MS, 0);
}

/* An answer the run refused (SB_EINVAL: it does not fit the ask's schema)
 * or the store failed to write leaves the question open, and it was asked
 * already: the tasks/result that asked says why, as update_answered does,
 * rather than waiting for an end that no one is asked to bring. SB_ESTATE
 * and SB_ENOENT: the run moved on; the next read shows how. 0 if nothing
 * was answered. */
static int result_answer_failed(task_op *op, int rc, const sb_error *err) {
  if (rc == 0 || rc == SB_ESTATE || rc == SB_ENOENT) return 0;
  op_fail(op, rc == SB_EINVAL ? SB_RPC_INVALID_PARAMS : SB_RPC_INTERNAL_ERROR,
          err->msg, NULL);
  return 1;
}

static void result_answered(void *ud, const sb_flow_reply *r) {
  task_op *op = ud;
  result_answer_failed(op, r->rc, &r->err);
  op_release(op);
}

static void on_elicited(sb_mcp_call *call, json_t *result, json_t *error,
                        void *ud) {
  task_op *op = ud;
  char *step = op->asking_step;
  op->asking_step = NULL;
  answer_action action = answer_action_of(result);
  if (call && step && error) {
    /* The client could not answer (its handler failed, or it has none):
     * the tasks/result that asked says so rather than waiting for an
     * answer no one will give; the next tasks/result asks again. */
    char *shown =
        sb_json_dumps(json_object_get(error, "message"), JSON_ENCODE_ANY);
    char msg[400];
    snprintf(msg, sizeof msg,
             "the client answered the question of step %s "
             "(elicitation/create) with error %lld %.200s; the run still "
             "waits for that answer",
             step,
             (long long)json_integer_value(json_object_get(error, "code")),
             shown ? shown : "");
    sb_free(shown);
    op_fail(op, SB_RPC_INTERNAL_ERROR, msg, NULL);
  } else if (call && step && action >= ANSWER_NOT_OBJECT) {
    /* A malformed answer neither answers nor stops the run: the
     * tasks/result that asked says what was wrong with it. */
    char what[200], msg[300];
    snprintf(what, sizeof what, "elicitation/create result for step %s", step);
    answer_malformed_msg(action, result, what, msg, sizeof msg);
    op_fail(op, SB_RPC_INVALID_PARAMS, msg, NULL);
  } else if (call && step) {
    sb_error err = {0};
    op->pending++;
    int rc = give_answer(op, step, action, json_object_get(result, "content"),
                         result_answered, &err);
    if (rc != 0) {
      op->pending--;
      result_answer_failed(op, rc, &err);
    }
  }
  sb_free(step);
  op_release(op); /* the question's hold */
}

static void result_read(void *ud, const sb_flow_reply *r) {
  task_op *op = ud;
  op->pending--;
  if (!op->call) {
    op_maybe_free(op);
    return;
  }
  if (r->rc != 0) {
    if (r->rc == SB_EBUSY) { /* try again shortly */
      result_later(op);
      return;
    }
    sb_mcp_call *call = op_take(op);
    fail_flow(call, r->rc, &r->err);
    op_release(op);
    return;
  }
  if (permit_run(op, 0, r->run) != 0) return;
  const char *status =
      json_string_value(json_object_get(r->run, "status")) ?: "";
  int ended = strcmp(status, "completed") == 0 ||
              strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0;
  if (ended) { /* exactly what workflow_run would have answered */
    sb_mcp_call *call = op_take(op);
    sb_mcp_call_reply(
        call, app_flow_tool_result(r->run, strcmp(status, "completed") != 0));
    op_release(op);
    return;
  }
  /* Only a caller who may answer is asked. */
  if (!op->asking_step &&
      app_run_permits(op->principal, 1, r->run, NULL) == 0) {
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(r->run, "waiting"), i, w) {
      const char *kind = json_string_value(json_object_get(w, "kind"));
      char key[160];
      if (!kind || strcmp(kind, "ask") != 0) continue;
      ask_key(w, key, sizeof key);
      if (json_object_get(op->asked, key)) continue;
      json_object_set_new(op->asked, key, json_true());
      json_t *req = ask_request(w);
      json_t *params = json_incref(json_object_get(req, "params"));
      json_decref(req);
      op->asking_step =
          sb_strdup(json_string_value(json_object_get(w, "step")) ?: "?");
      op->pending++;
      if (sb_mcp_call_ask_client(op->call, "elicitation/create", params,
                                 on_elicited, op) != 0) {
        sb_free(op->asking_step);
        op->asking_step = NULL;
        op->pending--;
      }
      break; /* one question at a time */
    }
  }
  result_later(op);
}

static void result_check(task_op *op) {
  if (!op->call) return;
  sb_error err = {0};
  op->pending++;
  int rc = sb_flow_run_get(op->app->flow, op->tenant, op->task_id, result_read,
                           op, &err);
  if (rc != 0) {
    op->pending--;
    if (rc == SB_EBUSY) {
      result_later(op);
      return;
    }
    not_started(op, rc, &err);
  }
}

static void task_result(void *ud, sb_mcp_call *call, const char *id) {
  if (permit_some(call, 0) != 0) return;
  task_op *op = op_new(ud, call, id);
  if (!op) return;
  if (!(op->asked = json_object())) {
    sb_error err = {0};
    sb_error_set(&err, SB_ENOMEM, "out of memory");
    not_started(op, SB_ENOMEM, &err);
    return;
  }
  uv_timer_init(op->app->loop, &op->timer);
  op->timer.data = op;
  op->timer_inited = 1;
  result_check(op);
}

/* ---- tasks/list (2025-11-25) --------------------------------------------- */

static void listed(void *ud, const sb_flow_reply *r) {
  task_op *op = ud;
  op->pending--;
  sb_mcp_call *call = op_take(op);
  if (call) {
    if (r->rc == SB_EINVAL) {
      sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS, "Invalid cursor",
                       json_pack("{ss}", "param", "cursor"));
    } else if (r->rc != 0) {
      fail_flow(call, r->rc, &r->err);
    } else {
      json_t *tasks = json_array();
      size_t i;
      json_t *run;
      json_array_foreach(json_object_get(r->run, "runs"), i, run)
          json_array_append_new(tasks, app_task_of_run(run));
      sb_mcp_call_reply_tasks(
          call, tasks,
          json_string_value(json_object_get(r->run, "nextCursor")));
    }
  }
  op_release(op);
}

static void task_list(void *ud, sb_mcp_call *call, const char *cursor) {
  if (permit_some(call, 0) != 0) return;
  task_op *op = op_new(ud, call, NULL);
  if (!op) return;
  sb_error err = {0};
  op->pending++;
  int rc = app_run_list(op->app, op->principal, op->tenant, NULL, cursor, 50,
                        listed, op, &err);
  if (rc != 0) {
    op->pending--;
    sb_flow_reply r = {.rc = rc, .err = err};
    op->pending++;
    listed(op, &r);
  }
}

void app_flow_tasks_register(sb_app *app) {
  sb_mcp_task_provider p = {.ud = app,
                            .tools = task_tools,
                            .call_tool = task_call_tool,
                            .get = task_get,
                            .cancel = task_cancel,
                            .update = task_update,
                            .result = task_result,
                            .list = task_list};
  sb_mcp_server_set_task_provider(app->mcp, &p);
}
