/* rest_runs.c: workflow runs and the event log over REST.
 *
 *   POST /v1/runs                 {workflow, contextId?, input?} -> 201 run
 *                                 (Location: /v1/runs/{id}; fork likewise)
 *   GET  /v1/runs?status=&cursor=&limit=   -> {runs, nextCursor?}
 *   GET  /v1/runs/{id}            -> run
 *   POST /v1/runs/{id}/cancel     {reason?} -> run
 *   POST /v1/runs/{id}/answer     {step?, answer} -> run
 *   POST /v1/runs/{id}/resume     -> run
 *   POST /v1/runs/{id}/fork       {step} -> 201 the new run
 *   GET  /v1/events?since=&types=a,b.*&run=   Server-Sent Events, resumable
 *                                 with Last-Event-ID
 *   POST /v1/events               {type, data?, runId?} -> 201 {seq}
 *
 * Scopes: starting a run needs "workflows:<name>"; reading runs (list,
 * one run) "runs:read" or "runs:read:<its workflow>"; acting on one
 * (cancel, answer, resume, fork) "runs:write" or "runs:write:<its
 * workflow>" (run_access.c); the event stream "events:read", publishing
 * "events:write". "runs" grants both of its own, as the grammar says.
 *
 * Every answer comes once the change is durable. Errors:
 * {"error": {"code", "message"}} with 400 bad_request, 404 not_found, 409
 * conflict (the run is not in a state for it), 503 busy (Retry-After).
 */
#include <stdlib.h>
#include <string.h>

#include "app/app_internal.h"

#define RUNS "/v1/runs"
#define EVENTS "/v1/events"

typedef struct rest_run_op {
  sb_http_request *req; /* NULL once the client has gone */
  int created;          /* answer 201 */
} rest_run_op;

static void op_gone(void *ud) { ((rest_run_op *)ud)->req = NULL; }

static void respond_flow_error(sb_http_request *req, int rc,
                               const sb_error *err) {
  const char *msg = err->msg;
  if (rc == SB_EPERM && err->scope[0])
    return app_rest_refuse(req, err->scope, msg);
  switch (rc) {
  case SB_ENOENT: return app_rest_error(req, 404, "not_found", msg);
  case SB_EINVAL: return app_rest_error(req, 400, "bad_request", msg);
  case SB_ETOOBIG: return app_rest_error(req, 413, "too_large", msg);
  case SB_ESTATE:
  case SB_ECONFLICT: return app_rest_error(req, 409, "conflict", msg);
  case SB_EBUSY: return app_rest_busy(req, msg);
  default: return app_rest_error(req, 500, "internal", msg);
  }
}

static void on_flow_done(void *ud, const sb_flow_reply *r) {
  rest_run_op *op = ud;
  if (op->req) {
    if (r->rc != 0) {
      respond_flow_error(op->req, r->rc, &r->err);
    } else if (op->created) {
      /* A new run (start, fork): where it can be read. */
      char location[128];
      snprintf(location, sizeof location, RUNS "/%s",
               json_string_value(json_object_get(r->run, "id")));
      const char *headers[] = {"Location", location, NULL};
      app_rest_json(op->req, 201, json_incref(r->run), headers);
    } else {
      app_rest_json(op->req, 200, json_incref(r->run), NULL);
    }
  }
  sb_free(op);
}

/* Defer req and hand back the op the flow callback answers through. */
static rest_run_op *defer(sb_http_request *req, int created) {
  rest_run_op *op = sb_calloc(1, sizeof *op);
  if (!op) {
    app_rest_error(req, 500, "internal", "out of memory");
    return NULL;
  }
  op->req = req;
  op->created = created;
  sb_http_request_defer(req, op_gone, op);
  return op;
}

/* The operation did not start: answer now (the op is not called back). */
static void refused(rest_run_op *op, int rc, const sb_error *err) {
  sb_http_request *req = op->req;
  sb_free(op);
  respond_flow_error(req, rc, err);
}

/* The string at key, or NULL; a value of another type is answered 400
 * (the first one only: a request is answered once). */
static const char *body_str(json_t *body, const char *key, int *bad,
                            sb_http_request *req) {
  if (*bad) return NULL;
  json_t *v = json_object_get(body, key);
  if (!v || json_is_string(v)) return json_string_value(v);
  char msg[96];
  snprintf(msg, sizeof msg, "%s: expected a string", key);
  app_rest_error(req, 400, "bad_request", msg);
  *bad = 1;
  return NULL;
}

static const char *const start_keys[] = {"workflow", "contextId", "input",
                                         NULL};

static void run_start(sb_app *app, sb_http_request *req, const char *tenant) {
  if (app_rest_query_known(req, NULL) != 0) return;
  json_t *body = app_rest_body_object(req, start_keys);
  if (!body) return;
  int bad = 0;
  sb_flow_start s = {.tenant = tenant,
                     .workflow = body_str(body, "workflow", &bad, req),
                     .context_id = body_str(body, "contextId", &bad, req),
                     .input = json_object_get(body, "input")};
  char perm[160];
  snprintf(perm, sizeof perm, "workflows:%s", s.workflow ? s.workflow : "");
  if (bad || app_rest_permit(req, perm)) {
    json_decref(body);
    return;
  }
  rest_run_op *op = defer(req, 1);
  sb_error err = {0};
  json_t *trace = app_rest_trace(req);
  s.trace = trace;
  int rc = op ? app_flow_run_start(app, sb_http_request_principal(req), &s,
                                   on_flow_done, op, &err)
              : 0;
  if (op && rc != 0) refused(op, rc, &err);
  json_decref(trace);
  json_decref(body);
}

static void run_list(sb_app *app, sb_http_request *req, const char *tenant) {
  static const char *const known[] = {"status", "cursor", "limit", NULL};
  if (app_rest_query_known(req, known) != 0) return;
  int64_t n = app_rest_query_int(req, "limit");
  if (n == 0) n = 50;
  if (n < 1 || n > 1000)
    return app_rest_error(req, 400, "bad_request",
                          "limit: an integer between 1 and 1000");
  rest_run_op *op = defer(req, 0);
  if (!op) return;
  sb_error err = {0};
  int rc = app_run_list(app, sb_http_request_principal(req), tenant,
                        sb_http_request_query(req, "status"),
                        sb_http_request_query(req, "cursor"), (size_t)n,
                        on_flow_done, op, &err);
  if (rc != 0) refused(op, rc, &err);
}

/* What each action's body may hold (none: resume). */
static const char *const cancel_keys[] = {"reason", NULL};
static const char *const answer_keys[] = {"step", "answer", NULL};
static const char *const fork_keys[] = {"step", NULL};
static const char *const no_keys[] = {NULL};

/* POST /v1/runs/{id}/{action} */
static void run_action(sb_app *app, sb_http_request *req, const char *tenant,
                       const char *id, const char *action) {
  if (app_rest_query_known(req, NULL) != 0) return;
  int fork = strcmp(action, "fork") == 0;
  const char *const *known = fork                              ? fork_keys
                             : strcmp(action, "cancel") == 0   ? cancel_keys
                             : strcmp(action, "answer") == 0   ? answer_keys
                                                               : no_keys;
  json_t *body = NULL;
  size_t len = 0;
  sb_http_request_body(req, &len);
  if (len && !(body = app_rest_body_object(req, known))) return;
  int bad = 0;
  const char *step = body_str(body, "step", &bad, req);
  const char *reason = body_str(body, "reason", &bad, req);
  if (bad) {
    json_decref(body);
    return;
  }
  rest_run_op *op = defer(req, fork);
  if (!op) {
    json_decref(body);
    return;
  }
  sb_error err = {0};
  app_run_access a = {.principal = sb_http_request_principal(req),
                      .tenant = tenant,
                      .id = id,
                      .op = strcmp(action, "cancel") == 0   ? APP_RUN_CANCEL
                            : strcmp(action, "resume") == 0 ? APP_RUN_RESUME
                            : fork                          ? APP_RUN_FORK
                                                            : APP_RUN_ANSWER,
                      .step = step,
                      .reason = reason,
                      .answer = json_object_get(body, "answer")};
  int rc = app_run_guard(app, &a, on_flow_done, op, &err);
  if (rc != 0) refused(op, rc, &err);
  json_decref(body);
}

static void handle_runs(sb_app *app, sb_http_request *req) {
  const char *tenant = sb_http_request_tenant(req);
  const char *method = sb_http_request_method(req);
  const char *rest = sb_http_request_path(req) + strlen(RUNS);
  int get = strcmp(method, "GET") == 0;
  if (!*rest || strcmp(rest, "/") == 0) {
    if (strcmp(method, "POST") == 0) return run_start(app, req, tenant);
    sb_error perr = {0};
    if (get &&
        app_runs_permit_some(sb_http_request_principal(req), 0, &perr) != 0)
      return app_rest_refuse(req, perr.scope, perr.msg);
    if (get) return run_list(app, req, tenant);
    return app_rest_not_allowed(req, "GET, POST",
                                "use GET or POST on /v1/runs");
  }
  char id[80], action[16] = "";
  const char *slash = strchr(rest + 1, '/');
  size_t n = slash ? (size_t)(slash - rest - 1) : strlen(rest + 1);
  if (n == 0 || n >= sizeof id || (slash && strlen(slash + 1) >= sizeof action))
    return app_rest_error(req, 404, "not_found", "no such run");
  memcpy(id, rest + 1, n);
  id[n] = '\0';
  if (slash) snprintf(action, sizeof action, "%s", slash + 1);
  /* The scope before any lookup: a refusal says nothing of the run. */
  sb_error perr = {0};
  if (app_runs_permit_some(sb_http_request_principal(req), *action != '\0',
                           &perr) != 0)
    return app_rest_refuse(req, perr.scope, perr.msg);
  if (!*action) {
    if (strcmp(method, "GET") != 0)
      return app_rest_not_allowed(req, "GET", "use GET on /v1/runs/{id}");
    if (app_rest_query_known(req, NULL) != 0) return;
    rest_run_op *op = defer(req, 0);
    sb_error err = {0};
    app_run_access a = {.principal = sb_http_request_principal(req),
                        .tenant = tenant,
                        .id = id,
                        .op = APP_RUN_GET};
    int rc = op ? app_run_guard(app, &a, on_flow_done, op, &err) : 0;
    if (op && rc != 0) refused(op, rc, &err);
    return;
  }
  if (strcmp(action, "cancel") != 0 && strcmp(action, "answer") != 0 &&
      strcmp(action, "resume") != 0 && strcmp(action, "fork") != 0)
    return app_rest_error(req, 404, "not_found",
                          "no such action (cancel, answer, resume, fork)");
  if (strcmp(method, "POST") != 0)
    return app_rest_not_allowed(req, "POST",
                                "use POST on /v1/runs/{id}/{action}");
  run_action(app, req, tenant, id, action);
}

/* ---- /v1/events ---------------------------------------------------------- */

typedef struct event_stream {
  sb_app *app;
  char *tenant; /* counted in app->event_streams; NULL: not counted */
  sb_http_request *req;
  sb_events_sub *sub;
  char **types;
  size_t ntypes;
} event_stream;

/* The tenant's open event streams, as a number (0 when none). */
static json_int_t streams_of(sb_app *app, const char *tenant) {
  return json_integer_value(json_object_get(app->event_streams, tenant));
}

/* Count s against its tenant's streams: 0, or -1 when the tenant has its
 * fill (or memory is short). */
static int stream_admit(event_stream *s, const char *tenant) {
  sb_app *app = s->app;
  if (!app->event_streams && !(app->event_streams = json_object())) return -1;
  json_int_t n = streams_of(app, tenant);
  int max = app->cfg->max_listen_streams_per_tenant;
  if (max > 0 && n >= max) return -1;
  if (!(s->tenant = sb_strdup(tenant)) ||
      json_object_set_new(app->event_streams, tenant, json_integer(n + 1))) {
    sb_free(s->tenant);
    s->tenant = NULL;
    return -1;
  }
  return 0;
}

/* s->req, if any, no longer tells s anything (it may outlive s). */
static void stream_free(event_stream *s) {
  if (s->req) sb_http_stream_on_drained(s->req, 0, NULL, NULL);
  if (s->tenant) {
    json_int_t n = streams_of(s->app, s->tenant);
    if (n > 1)
      json_object_set_new(s->app->event_streams, s->tenant,
                          json_integer(n - 1));
    else
      json_object_del(s->app->event_streams, s->tenant);
    sb_free(s->tenant);
  }
  if (s->sub) sb_events_unsubscribe(s->sub);
  for (size_t i = 0; i < s->ntypes; i++)
    sb_free(s->types[i]);
  sb_free(s->types);
  sb_free(s);
}

static void stream_gone(void *ud) {
  event_stream *s = ud;
  stream_free(s);
}

static void stream_drained(void *ud) {
  event_stream *s = ud;
  sb_events_sub_resume(s->sub);
}

/* Pause s's subscription (after the event being delivered) until its
 * client has taken most of what it was sent. A client's unsent output
 * past half of max_stream_buffer_bytes pauses it (a backlog read from the
 * log would otherwise be queued whole, past the limit, and the client cut
 * off before it got any: again at each reconnection); it resumes as soon
 * as the client has taken all but a quarter (sb_http_stream_on_drained).
 * A client that stopped reading holds its stream, paused, at no cost; the
 * log keeps what it has not had. */
static void stream_pause(event_stream *s) {
  sb_events_sub_pause(s->sub);
  sb_http_stream_on_drained(s->req, s->app->cfg->max_stream_buffer_bytes / 4,
                            stream_drained, s);
}

static void stream_end(event_stream *s, const char *why);

static void stream_event(void *ud, const sb_event *e) {
  event_stream *s = ud;
  /* A key revoked or expired since the stream opened hears no more. */
  if (!sb_principal_live(sb_http_request_principal(s->req),
                         (int64_t)sb_wall_ms()))
    return stream_end(s, "the credentials this stream was opened with have "
                         "been revoked or have expired");
  json_t *j = sb_event_json(e);
  char *data = j ? sb_json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!data) return;
  char *text = sb_asprintf("id: %lld\nevent: %s\ndata: %s\n\n",
                           (long long)e->seq, e->type, data);
  sb_free(data);
  if (!text) return;
  size_t len = strlen(text);
  /* Decided before the send, which may free s (below). */
  if (sb_http_stream_unsent(s->req) + len >
      s->app->cfg->max_stream_buffer_bytes / 2)
    stream_pause(s);
  /* A client that does not read is cut off (on_gone frees the stream); it
   * resumes from its Last-Event-ID. */
  sb_http_stream_send(s->req, text, len);
  sb_free(text);
}

static void stream_error(void *ud, const sb_error *err) {
  SB_WARN("rest", "event stream: %s", err->msg);
  stream_end(ud, "the event log could not be read");
}

/* End s with an error event saying why. s is let go of first: a client
 * that is not reading is cut off inside the send. */
static void stream_end(event_stream *s, const char *why) {
  sb_http_request *req = s->req;
  sb_http_request_defer(req, NULL, NULL);
  sb_http_stream_on_drained(req, 0, NULL, NULL);
  s->req = NULL;
  sb_events_unsubscribe(s->sub);
  s->sub = NULL;
  stream_free(s);
  char *text =
      sb_asprintf("event: error\ndata: {\"message\":\"%s\"}\n\n", why);
  if (text) sb_http_stream_send(req, text, strlen(text));
  sb_free(text);
  sb_http_stream_end(req);
}

/* Digits only: strtoll alone took " 5" and "+5", and saturated an
 * overflowing number to LLONG_MAX, a cursor past any event: the stream
 * then stayed silent for ever instead of saying the cursor was bad. */
static int parse_seq(const char *s, int64_t *out) {
  if (!s || !*s) return 0;
  return sb_parse_digits(s, strlen(s), out) == 0 ? 0 : -1;
}

/* The stream itself, from `since` (a cursor this log gave): 0 once it
 * has started, -1 when req was answered with an error instead. */
static int stream_open(sb_app *app, sb_http_request *req, const char *tenant,
                       int64_t since) {
  event_stream *s = sb_calloc(1, sizeof *s);
  if (!s) {
    app_rest_error(req, 500, "internal", "out of memory");
    return -1;
  }
  s->app = app;
  if (stream_admit(s, tenant ? tenant : "") != 0) {
    int max = app->cfg->max_listen_streams_per_tenant;
    stream_free(s);
    char msg[256];
    snprintf(msg, sizeof msg,
             "too many open event streams: this tenant's limit of %d "
             "(limits.max_listen_streams_per_tenant) is reached; close one "
             "first",
             max);
    app_rest_busy(req, msg);
    return -1;
  }
  const char *types = sb_http_request_query(req, "types");
  for (const char *t = types; t && *t;) {
    const char *comma = strchr(t, ',');
    size_t n = comma ? (size_t)(comma - t) : strlen(t);
    char *type = n ? sb_strndup(t, n) : NULL;
    char **v = sb_realloc(s->types, (s->ntypes + 1) * sizeof *v);
    if (v) s->types = v;
    /* A type left out would widen the filter: none is opened then. */
    if (!v || (n && !type)) {
      sb_free(type);
      stream_free(s);
      app_rest_error(req, 500, "internal", "out of memory");
      return -1;
    }
    if (type) s->types[s->ntypes++] = type;
    t = comma ? comma + 1 : t + n;
  }
  sb_events_filter f = {.types = (const char *const *)s->types,
                        .ntypes = s->ntypes,
                        .run_id = sb_http_request_query(req, "run")};
  sb_error err = {0};
  s->req = req;
  s->sub = sb_events_subscribe(app->events, tenant, since, &f, stream_event,
                               stream_error, s, &err);
  if (!s->sub) {
    stream_free(s);
    if (err.code == SB_EBUSY)
      app_rest_busy(req, err.msg);
    else
      app_rest_error(req, 500, "internal", err.msg);
    return -1;
  }
  sb_http_request_defer(req, stream_gone, s);
  sb_http_stream_start(req);
  return 0;
}

/* A cursor past the newest event the tenant's log has handed out was
 * never given by it (a store replaced or restored from a backup, a
 * client's own arithmetic). Served, the stream would skip every event up
 * to it without a word: it is refused, naming the newest, before the
 * stream starts (events://log?since= refuses it the same way). */
typedef struct since_check {
  sb_app *app;
  sb_http_request *req; /* NULL once the client is gone */
  int64_t since;
} since_check;

static void since_gone(void *ud) { ((since_check *)ud)->req = NULL; }

static void since_checked(void *ud, sb_store_result *res) {
  since_check *op = ud;
  sb_http_request *req = op->req;
  if (!req) {
    /* the client left meanwhile */
  } else if (res->rc == SB_EBUSY) {
    app_rest_busy(req, "the event log is busy; retry shortly");
  } else if (res->rc != 0) {
    app_rest_error(req, 500, "internal", res->err.msg);
  } else if (op->since > res->last_seq) {
    char msg[400];
    app_events_since_msg(op->since, res->last_seq, "since / Last-Event-ID",
                         msg, sizeof msg);
    app_rest_error(req, 400, "bad_request", msg);
  } else {
    int64_t from = 0, to = 0;
    int trimmed = app_events_trimmed(op->since, res, &from, &to);
    int open =
        stream_open(op->app, req, sb_http_request_tenant(req), op->since) == 0;
    /* The stream says what it cannot give before anything else: the
     * events after the cursor the retention trimmed meanwhile (no id:
     * the cursor does not move). Before, it went on past them in
     * silence. */
    if (trimmed && open) {
      char *text = sb_asprintf(
          "event: gap\ndata: {\"from\":%lld,\"to\":%lld,\"message\":"
          "\"these events were trimmed (older than events.retention_s) "
          "before this stream could read them\"}\n\n",
          (long long)from, (long long)to);
      if (text) sb_http_stream_send(req, text, strlen(text));
      sb_free(text);
    }
  }
  sb_free(op);
}

/* The filter: every entry of `types` can match an event type, and `run`,
 * when given, names one. A filter that matched nothing ("*", "Run.started",
 * "run" without ".*"; an empty run, read as "events of no run") kept the
 * stream open and silent for ever instead of saying what was wrong. 0, or
 * -1 when req was answered. */
static int filter_check(sb_http_request *req) {
  const char *types = sb_http_request_query(req, "types");
  /* types= (or types=,,) lists nothing: not "every event", which is no
   * types at all. An empty entry in a list is skipped. */
  if (types && !types[strspn(types, ",")]) {
    app_rest_error(req, 400, "bad_request",
                   "types: empty; leave it out for every event, or list "
                   "them: types=a.b,c.*");
    return -1;
  }
  for (const char *t = types; t && *t;) {
    const char *comma = strchr(t, ',');
    size_t n = comma ? (size_t)(comma - t) : strlen(t);
    char one[130] = "";
    if (n && n < sizeof one) memcpy(one, t, n);
    if (n && (n >= sizeof one || !sb_events_type_pattern_ok(one))) {
      char msg[400];
      snprintf(msg, sizeof msg,
               "types: \"%.*s%s\" is not an event type nor a pattern of "
               "them (lowercase a-z 0-9 _ - in parts joined by dots, e.g. "
               "run.completed, or a prefix and \".*\", e.g. run.*; a list "
               "is written types=a.b,c.*)",
               (int)(n > 64 ? 64 : n), t, n > 64 ? "..." : "");
      app_rest_error(req, 400, "bad_request", msg);
      return -1;
    }
    t = comma ? comma + 1 : t + n;
  }
  const char *run = sb_http_request_query(req, "run");
  if (run && !*run) {
    app_rest_error(req, 400, "bad_request",
                   "run: empty; leave it out, or name a run");
    return -1;
  }
  return 0;
}

/* From `since` on: a cursor past 0 is checked first (since_checked). */
static void events_from(sb_app *app, sb_http_request *req, const char *tenant,
                        int64_t since) {
  if (since == 0) {
    stream_open(app, req, tenant, 0);
    return;
  }
  since_check *op = sb_calloc(1, sizeof *op);
  if (!op) return app_rest_error(req, 500, "internal", "out of memory");
  *op = (since_check){app, req, since};
  /* One event at most is read: the answer that matters is the newest. */
  int rc = sb_store_events_read(app->store, tenant ? tenant : "", since, NULL,
                                1, 0, since_checked, op);
  if (rc != 0) {
    sb_free(op);
    if (rc == SB_EBUSY)
      return app_rest_busy(req, "the event log is busy; retry shortly");
    return app_rest_error(req, 500, "internal", "the event log cannot be read");
  }
  sb_http_request_defer(req, since_gone, op);
}

/* ?run=ID names a run of the tenant, as a published event's runId must:
 * one mistyped (or another tenant's) kept the stream open and silent for
 * ever. A 404 naming it, before the stream starts. */
typedef struct run_check {
  sb_app *app;
  sb_http_request *req; /* NULL once the client is gone */
  int64_t since;
} run_check;

static void run_check_gone(void *ud) { ((run_check *)ud)->req = NULL; }

static void run_checked(void *ud, const sb_flow_reply *r) {
  run_check *op = ud;
  sb_http_request *req = op->req;
  sb_app *app = op->app;
  int64_t since = op->since;
  sb_free(op);
  if (!req) return; /* the client left meanwhile */
  if (r->rc == SB_ENOENT) {
    char msg[200];
    snprintf(msg, sizeof msg, "run: no run %.100s",
             sb_http_request_query(req, "run"));
    return app_rest_error(req, 404, "not_found", msg);
  }
  if (r->rc != 0) return respond_flow_error(req, r->rc, &r->err);
  events_from(app, req, sb_http_request_tenant(req), since);
}

static void events_stream(sb_app *app, sb_http_request *req,
                          const char *tenant) {
  static const char *const known[] = {"since", "types", "run", NULL};
  if (app_rest_query_known(req, known) != 0) return;
  int64_t since = 0;
  const char *last = sb_http_request_header(req, "Last-Event-ID");
  if (parse_seq(sb_http_request_query(req, "since"), &since) != 0 ||
      parse_seq(last, &since) != 0)
    return app_rest_error(req, 400, "bad_request",
                          "since / Last-Event-ID: a sequence number (an "
                          "integer from 0 to 9223372036854775807)");
  if (filter_check(req) != 0) return;
  const char *run = sb_http_request_query(req, "run");
  if (!run) return events_from(app, req, tenant, since);
  run_check *op = sb_calloc(1, sizeof *op);
  if (!op) return app_rest_error(req, 500, "internal", "out of memory");
  *op = (run_check){app, req, since};
  sb_http_request_defer(req, run_check_gone, op);
  sb_error err = {0};
  int rc = sb_flow_run_get(app->flow, tenant ? tenant : "", run, run_checked,
                           op, &err);
  if (rc != 0) {
    sb_free(op);
    respond_flow_error(req, rc, &err);
  }
}

typedef struct publish_op {
  sb_http_request *req;
} publish_op;

static void publish_gone(void *ud) { ((publish_op *)ud)->req = NULL; }

static void published(void *ud, int rc, int64_t seq, const sb_error *err) {
  publish_op *op = ud;
  if (op->req) {
    sb_error none = {0};
    if (!err) sb_error_set(&none, rc, "not written");
    if (rc != 0)
      respond_flow_error(op->req, rc, err ? err : &none);
    else
      app_rest_json(op->req, 201, json_pack("{sI}", "seq", (json_int_t)seq),
                    NULL);
  }
  sb_free(op);
}

static const char *const publish_keys[] = {"type", "data", "runId", NULL};

static void events_publish(sb_app *app, sb_http_request *req,
                           const char *tenant) {
  if (app_rest_query_known(req, NULL) != 0) return;
  json_t *body = app_rest_body_object(req, publish_keys);
  if (!body) return;
  int bad = 0;
  const char *type = body_str(body, "type", &bad, req);
  const char *run = body_str(body, "runId", &bad, req);
  if (bad) {
    json_decref(body);
    return;
  }
  publish_op *op = sb_calloc(1, sizeof *op);
  if (!op) {
    json_decref(body);
    return app_rest_error(req, 500, "internal", "out of memory");
  }
  op->req = req;
  sb_http_request_defer(req, publish_gone, op);
  sb_error err = {0};
  int rc =
      sb_events_publish(app->events, tenant, type, run,
                        json_object_get(body, "data"), published, op, &err);
  json_decref(body);
  if (rc != 0) {
    op->req = NULL;
    sb_free(op);
    respond_flow_error(req, rc, &err);
  }
}

static void handle_events(sb_app *app, sb_http_request *req) {
  const char *tenant = sb_http_request_tenant(req);
  const char *method = sb_http_request_method(req);
  if (strcmp(sb_http_request_path(req), EVENTS) != 0)
    return app_rest_error(req, 404, "not_found", "no such resource");
  int get = strcmp(method, "GET") == 0;
  if ((get || strcmp(method, "POST") == 0) &&
      app_rest_permit(req, get ? "events:read" : "events:write"))
    return;
  if (get) return events_stream(app, req, tenant);
  if (strcmp(method, "POST") == 0) return events_publish(app, req, tenant);
  app_rest_not_allowed(req, "GET, POST", "use GET or POST on /v1/events");
}

static void route_runs(void *ud, sb_http_request *req) { handle_runs(ud, req); }
static void route_events(void *ud, sb_http_request *req) {
  handle_events(ud, req);
}

int app_rest_runs_register(sb_app *app) {
  if (sb_http_server_route(app->http, RUNS, route_runs, app) != 0) return -1;
  return sb_http_server_route(app->http, EVENTS, route_events, app);
}
