/* rest_ops.c: what an operator's probes and monitoring read.
 *
 *   GET /healthz   200 {"status":"ok"} while the event loop answers:
 *                  liveness, for anyone (no token, no quota)
 *   GET /readyz    200 {"status":"ready", ...} when requests can be
 *                  served, 503 {"status":"busy"} while the store's queue
 *                  is full (store.max_pending), 503 {"status":"store_lost"}
 *                  for good once the store's file was found deleted or
 *                  replaced under the server (no write can be durable
 *                  until a restart): readiness, for anyone
 *   GET /metrics   Prometheus text exposition (format 0.0.4) of the
 *                  store, the runs and every agent: administrator
 *                  tenants only (auth.admin_tenants), like the agents'
 *                  administration, since it names every tenant's agents
 *
 * Neither probe reads the store: an answer says the loop turns, and a
 * probe never adds to a busy store's queue.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "app/app_internal.h"
#include "registry/registry.h"

static int get_only(sb_http_request *req, const char *path) {
  if (strcmp(sb_http_request_path(req), path) != 0) {
    app_rest_error(req, 404, "not_found", "no such resource");
    return 0;
  }
  if (strcmp(sb_http_request_method(req), "GET") != 0) {
    char msg[64];
    snprintf(msg, sizeof msg, "use GET on %s", path);
    app_rest_not_allowed(req, "GET", msg);
    return 0;
  }
  return 1;
}

static void healthz(void *ud, sb_http_request *req) {
  (void)ud;
  if (get_only(req, "/healthz"))
    app_rest_json(req, 200, json_pack("{ss}", "status", "ok"), NULL);
}

static void readyz(void *ud, sb_http_request *req) {
  sb_app *app = ud;
  if (!get_only(req, "/readyz")) return;
  sb_store_stats st;
  sb_store_get_stats(app->store, &st);
  size_t n = sb_gateway_agent_count(app->gateway), up = 0;
  for (size_t i = 0; i < n; i++) {
    sb_gateway_agent_info a;
    sb_gateway_agent_info_at(app->gateway, i, &a);
    up += a.connected != 0;
  }
  int busy = st.pending >= app->cfg->store_max_pending;
  /* Agents down do not make switchboard unready: contexts, runs and the
   * other agents still serve, and a call to a down agent says so. */
  const char *status = st.lost ? "store_lost" : busy ? "busy" : "ready";
  app_rest_json(req, st.lost || busy ? 503 : 200,
                json_pack("{sss{sisisb}s{sIsI}}", "status", status, "store",
                          "pending", st.pending, "maxPending",
                          app->cfg->store_max_pending, "lost", st.lost,
                          "agents", "connected", (json_int_t)up, "registered",
                          (json_int_t)n),
                NULL);
}

/* ---- /metrics ------------------------------------------------------------ */

typedef struct out {
  sb_buf b;
  int failed; /* out of memory */
} out;

static void put(out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line ||
      sb_buf_append(&o->b, line, (size_t)n) != 0)
    o->failed = 1;
}

/* One metric family's header. */
static void family(out *o, const char *name, const char *type,
                   const char *help) {
  put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the text format wants (\\, \", \n). */
static void label(out *o, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"')
      put(o, "\\%c", *v);
    else if (*v == '\n')
      put(o, "\\n");
    else
      put(o, "%c", *v);
  }
}

typedef enum agent_metric {
  M_UP,
  M_HEALTHY,
  M_BREAKER_OPEN,
  M_INFLIGHT,
  M_MAX_CONCURRENT,
  M_TOOLS,
  M_CALLS_OK,
  M_CALLS_FAILED,
  M_LATENCY,
  M_COUNT
} agent_metric;

static const struct {
  const char *name, *type, *help;
} agent_metrics[M_COUNT] = {
    [M_UP] = {"switchboard_agent_up", "gauge",
              "1 while switchboard holds a live MCP session with the agent"},
    [M_HEALTHY] = {"switchboard_agent_healthy", "gauge",
                   "1 unless the agent's last health check failed"},
    [M_BREAKER_OPEN] = {"switchboard_agent_breaker_open", "gauge",
                        "1 while the agent's circuit breaker is open or "
                        "half-open (one probe call allowed), 0 closed"},
    [M_INFLIGHT] = {"switchboard_agent_inflight", "gauge",
                    "calls to the agent in flight"},
    [M_MAX_CONCURRENT] = {"switchboard_agent_max_concurrent", "gauge",
                          "the agent's limits.maxConcurrent"},
    [M_TOOLS] = {"switchboard_agent_tools", "gauge", "tools the agent lists"},
    [M_CALLS_OK] = {"switchboard_agent_calls_total", "counter",
                    "calls to the agent that ended, by result"},
    [M_CALLS_FAILED] = {NULL, NULL, NULL}, /* the same family */
    [M_LATENCY] = {"switchboard_agent_latency_seconds", "gauge",
                   "smoothed latency of the agent's successful calls "
                   "(absent until one)"},
};

static int agent_value(agent_metric m, const sb_gateway_agent_info *a,
                       const sb_agent_state *s, int have_state, double *v) {
  switch (m) {
  case M_UP: *v = a->connected != 0; return 1;
  case M_TOOLS: *v = (double)a->tools; return 1;
  case M_MAX_CONCURRENT: *v = a->def->limits.max_concurrent; return 1;
  default: break;
  }
  if (!have_state) return 0;
  switch (m) {
  case M_HEALTHY: *v = s->healthy != 0; return 1;
  case M_BREAKER_OPEN: *v = s->breaker != SB_BREAKER_CLOSED; return 1;
  case M_INFLIGHT: *v = (double)s->inflight; return 1;
  case M_CALLS_OK: *v = (double)s->calls_ok; return 1;
  case M_CALLS_FAILED: *v = (double)s->calls_failed; return 1;
  case M_LATENCY:
    *v = s->latency_ewma_ms / 1000.0;
    return s->latency_ewma_ms >= 0;
  default: return 0;
  }
}

static void agents_metrics(sb_app *app, out *b) {
  size_t n = sb_gateway_agent_count(app->gateway);
  uint64_t now = sb_now_ms();
  sb_registry *reg = sb_gateway_registry(app->gateway);
  for (int m = 0; m < M_COUNT; m++) {
    if (agent_metrics[m].name)
      family(b, agent_metrics[m].name, agent_metrics[m].type,
             agent_metrics[m].help);
    for (size_t i = 0; i < n; i++) {
      sb_gateway_agent_info a;
      sb_agent_state s;
      sb_gateway_agent_info_at(app->gateway, i, &a);
      int have = sb_registry_state(reg, a.def->id, now, &s) == 0;
      double v;
      if (!agent_value((agent_metric)m, &a, &s, have, &v)) continue;
      const char *name = agent_metrics[m == M_CALLS_FAILED ? M_CALLS_OK : m].name;
      put(b, "%s{agent=\"", name);
      label(b, a.def->id);
      put(b, "\",type=\"%s\"", sb_agent_type_name(a.def->type));
      if (m == M_CALLS_OK || m == M_CALLS_FAILED)
        put(b, ",result=\"%s\"", m == M_CALLS_OK ? "ok" : "failed");
      put(b, "} %.17g\n", v);
    }
  }
}

static void metrics(void *ud, sb_http_request *req) {
  sb_app *app = ud;
  if (!get_only(req, "/metrics")) return;
  if (!sb_config_is_admin(app->cfg, sb_http_request_tenant(req)))
    return app_rest_error(req, 403, "forbidden",
                          "metrics name every tenant's agents: they need an "
                          "administrator tenant (auth.admin_tenants)");
  sb_store_stats st;
  sb_store_get_stats(app->store, &st);
  sb_flow_stats fs;
  sb_flow_engine_stats(app->flow, &fs);
  sb_http_stats hs;
  sb_http_server_stats(app->http, &hs);
  out o = {0};
  family(&o, "switchboard_build_info", "gauge",
         "always 1; the version in its label");
  put(&o, "switchboard_build_info{version=\"%s\"} 1\n", SB_VERSION);
  const struct {
    const char *name, *type, *help;
    double value;
  } scalars[] = {
      {"switchboard_uptime_seconds", "gauge",
       "seconds since the server started",
       (double)(sb_now_ms() - app->started_ms) / 1000.0},
      {"switchboard_store_pending", "gauge",
       "store operations submitted and not yet answered", st.pending},
      {"switchboard_store_max_pending", "gauge",
       "store.max_pending: past it callers are told the store is busy",
       app->cfg->store_max_pending},
      {"switchboard_store_write_batches_total", "counter",
       "write transactions the store committed", (double)st.batches},
      {"switchboard_store_writes_total", "counter",
       "writes committed inside those transactions", (double)st.writes},
      {"switchboard_store_writer_cpu_seconds_total", "counter",
       "CPU time of the store's writer thread", (double)st.writer_cpu_us / 1e6},
      {"switchboard_runs_in_progress", "gauge",
       "workflow runs running or waiting in this process", (double)fs.runs},
      {"switchboard_runs_waiting_turn", "gauge",
       "runs waiting for their turn to write a context that another run "
       "of this process is writing",
       (double)fs.waiting_turn},
      {"switchboard_run_transitions_total", "counter",
       "workflow run transitions written", (double)fs.transitions},
      {"switchboard_run_conflicts_total", "counter",
       "run transitions redone because their context moved meanwhile",
       (double)fs.conflicts},
      {"switchboard_run_write_failures_total", "counter",
       "run transitions the store failed (locked, I/O error, disk full), "
       "written again after a pause",
       (double)fs.write_failures},
      {"switchboard_runs_taken_over_total", "counter",
       "runs in progress of another process on the store that ended (a "
       "server, switchboard run), taken over by this server",
       (double)fs.taken_over},
      {"switchboard_agents", "gauge", "agents registered",
       (double)sb_gateway_agent_count(app->gateway)},
      {"switchboard_http_connections", "gauge", "HTTP connections open",
       (double)hs.connections},
      {"switchboard_mcp_sessions", "gauge",
       "legacy MCP sessions (Mcp-Session-Id) open", (double)hs.sessions},
  };
  for (size_t i = 0; i < sizeof scalars / sizeof *scalars; i++) {
    family(&o, scalars[i].name, scalars[i].type, scalars[i].help);
    put(&o, "%s %.17g\n", scalars[i].name, scalars[i].value);
  }
  family(&o, "switchboard_http_responses_total", "counter",
         "HTTP responses sent, by status class (those libmicrohttpd makes "
         "itself, such as 431, aside)");
  for (int c = 1; c <= 5; c++)
    put(&o, "switchboard_http_responses_total{code=\"%dxx\"} %llu\n", c,
        (unsigned long long)hs.responses[c]);
  agents_metrics(app, &o);
  if (o.failed) {
    sb_buf_free(&o.b);
    return app_rest_error(req, 500, "internal", "out of memory");
  }
  sb_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8",
                  o.b.data ? o.b.data : "", o.b.len, NULL);
  sb_buf_free(&o.b);
}

int app_rest_ops_register(sb_app *app) {
  app->started_ms = sb_now_ms();
  if (sb_http_server_route_open(app->http, "/healthz", healthz, app) != 0 ||
      sb_http_server_route_open(app->http, "/readyz", readyz, app) != 0 ||
      sb_http_server_route(app->http, "/metrics", metrics, app) != 0)
    return -1;
  return 0;
}
