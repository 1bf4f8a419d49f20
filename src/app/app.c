/* app.c: start and stop a switchboard: store, context manager, MCP server
 * with its providers, transports, and the expiry sweep. An embedded app
 * (`switchboard run`) stops short of the sweep, the transports and the
 * resumption of stored runs: it only lends its modules to a command. */
#include <string.h>

#include "app/app_internal.h"

#define MODULE "app"

static void on_swept(void *ud, const sb_ctx_result *res) {
  if (res->rc != 0)
    SB_WARN(MODULE, "sweeping expired contexts: %s", res->err.msg);
  else if (res->count > 0)
    SB_INFO(MODULE, "swept %d expired context(s)", res->count);
}

static void on_sweep(uv_timer_t *t) {
  sb_app *app = t->data;
  sb_error err = {0};
  /* A busy store skips this round; the next tick tries again. */
  if (sb_ctx_sweep_async(app->ctx, on_swept, NULL, &err) != 0)
    SB_WARN(MODULE, "sweeping expired contexts: %s", err.msg);
}

static sb_mcp_limits app_mcp_limits(const sb_config *cfg) {
  sb_mcp_limits l = {.max_message_bytes = cfg->max_message_bytes,
                     .max_json_depth = cfg->max_json_depth,
                     .page_size = cfg->page_size,
                     .cache_ttl_ms = cfg->cache_ttl_ms,
                     .max_listen_uris = cfg->max_listen_uris,
                     .max_listen_streams_per_tenant =
                         cfg->max_listen_streams_per_tenant};
  return l;
}

/* The config's agents; an invalid one names its line. */
/* An agent's breaker opened or closed: into the log of the tenant whose
 * call it was. */
static void breaker_changed(void *ud, const char *tenant, const char *agent,
                            int opened) {
  sb_app *app = ud;
  if (opened)
    SB_WARN(MODULE,
            "agent %s: circuit breaker opened (its calls are refused until "
            "a probe succeeds)",
            agent);
  else
    SB_INFO(MODULE, "agent %s: circuit breaker closed", agent);
  json_t *data = json_pack("{ss}", "agent", agent);
  sb_error err = {0};
  if (sb_events_record(app->events, tenant,
                       opened ? SB_EVENT_BREAKER_OPENED
                              : SB_EVENT_BREAKER_CLOSED,
                       NULL, data, NULL, NULL, &err) != 0)
    SB_WARN(MODULE, "breaker of agent %s %s, not logged: %s", agent,
            opened ? "opened" : "closed", err.msg);
  json_decref(data);
}

static int add_config_agents(sb_app *app, sb_error *err) {
  const sb_config *cfg = app->cfg;
  size_t n = json_array_size(cfg->agents);
  for (size_t i = 0; i < n; i++) {
    sb_error derr = {0};
    if (sb_gateway_add(app->gateway, json_array_get(cfg->agents, i), 0, 1,
                       &derr) != 0)
      return sb_error_set(err, derr.code ? derr.code : SB_EINVAL,
                          "config line %zu: agents[%zu]: %s",
                          cfg->agent_lines ? cfg->agent_lines[i] : 0, i,
                          derr.msg);
  }
  if (n) SB_INFO(MODULE, "%zu agent(s) configured", n);
  return 0;
}

/* The config's literal secrets, for the logger's redaction (core/). */
void app_register_log_secrets(const sb_config *cfg) {
  for (size_t i = 0; i < cfg->tenants_len; i++)
    sb_log_add_secret(cfg->tenants[i].token);
  sb_config_llm lc;
  sb_config_llm_endpoint(cfg, &lc);
  if (lc.api_key) sb_log_add_secret(lc.api_key);
}

/* ---- serve --stdio --agent: the first request waits for the agent ------ */

static void stdio_wait_end(sb_app *app) {
  if (!app->stdio_wait) return;
  uv_timer_stop(app->stdio_wait);
  uv_close((uv_handle_t *)app->stdio_wait, sb_free_handle);
  app->stdio_wait = NULL;
}

/* Read stdin once the agent is connected with its lists read, or down
 * (its endpoint then says why): the gateway says when its state moves. */
static void stdio_wait_over(sb_app *app) {
  stdio_wait_end(app);
  sb_stdio_server_resume(app->stdio);
}

static void agent_state_moved(void *ud, const char *id) {
  sb_app *app = ud;
  if (app->stdio_wait && strcmp(id, app->stdio_agent) == 0 &&
      sb_gateway_agent_settled(app->gateway, id) != 0)
    stdio_wait_over(app);
}

/* ... or once its limits.timeoutMs has passed. */
static void on_stdio_wait_timeout(uv_timer_t *t) { stdio_wait_over(t->data); }

static int stdio_wait_start(sb_app *app, const char *id) {
  const sb_agent_def *def =
      sb_registry_get(sb_gateway_registry(app->gateway), id);
  int64_t timeout_ms = def ? def->limits.timeout_ms : 0;
  uv_timer_t *t = sb_calloc(1, sizeof *t);
  if (!t) return SB_ENOMEM;
  uv_timer_init(app->loop, t);
  t->data = app;
  app->stdio_wait = t;
  app->stdio_agent = id;
  uv_timer_start(t, on_stdio_wait_timeout,
                 (uint64_t)(timeout_ms > 0 ? timeout_ms : 0), 0);
  /* Settled already (down at once: no such command). */
  agent_state_moved(app, id);
  return 0;
}

/* The API keys' first load is in (or failed): the HTTP server serves. */
static void keys_loaded(void *ud) {
  sb_app *app = ud;
  sb_http_server_hold(app->http, 0);
}

static void warn_reference(void *ud, const char *line) {
  (void)ud;
  SB_WARN(MODULE, "%s", line);
}

sb_app *sb_app_start(const sb_app_options *o, sb_error *err) {
  const sb_config *cfg = o->config;
  app_register_log_secrets(cfg);
  sb_app *app = sb_calloc(1, sizeof *app);
  if (!app) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  app->cfg = cfg;
  app->loop = o->loop;
  sb_store_options so = {.path = cfg->store_path,
                         .loop = o->loop,
                         .max_pending = cfg->store_max_pending,
                         .readers = cfg->store_readers,
                         .drives_runs = 1,
                         .check = (sb_store_check)cfg->store_check_on_start};
  if (!(app->store = sb_store_open_sqlite(&so, err))) goto fail;
  sb_ctx_manager_options mo = {.store = app->store,
                               .snapshot_every = cfg->ctx_snapshot_every,
                               .max_doc_bytes = cfg->ctx_max_bytes,
                               /* 0 bytes: no head cache at all */
                               .head_cache = cfg->ctx_head_cache_bytes ? 0 : -1,
                               .head_cache_bytes = cfg->ctx_head_cache_bytes,
                               .default_ttl_ms =
                                   (int64_t)cfg->ctx_default_ttl_s * 1000};
  if (!(app->ctx = sb_ctx_manager_new(&mo))) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    goto fail;
  }
  sb_events_options eo = {.store = app->store,
                          .retention_ms =
                              (int64_t)cfg->events_retention_s * 1000,
                          .max_data_bytes = cfg->events_max_data_bytes};
  if (!(app->events = sb_events_new(&eo, err))) goto fail;
  if (sb_flow_defs_load(cfg->workflows, cfg->workflow_lines, cfg->config_file,
                        cfg->config_dir, &app->defs, err) != 0)
    goto fail;
  sb_app_unknown_references(cfg, &app->defs, warn_reference, NULL);
  sb_app_missing_commands(cfg, warn_reference, NULL);
  if (app_quota_start(app, err) != 0) goto fail;
  sb_mcp_server_options mopts = {.limits = app_mcp_limits(cfg),
                                 .default_tenant = cfg->default_tenant,
                                 .loop = o->loop,
                                 .admission = app_quota_mcp_admission(app),
                                 .authorize = app_authorize,
                                 .item_visible = app_item_visible,
                                 .authorize_ud = app};
  if (!(app->mcp = sb_mcp_server_new(&mopts))) {
    sb_error_set(err, SB_ENOMEM, "cannot create the MCP server");
    goto fail;
  }
  sb_ctx_manager_on_change(app->ctx, app_ctx_changed, app);
  if (app_ctx_tools_register(app) != 0) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    goto fail;
  }
  /* The LLM endpoint that answers agents' sampling when their caller
   * cannot (off unless configured). */
  sb_config_llm lc;
  sb_config_llm_endpoint(cfg, &lc);
  if (lc.base_url) {
    sb_llm_options lo = {.loop = o->loop,
                         .base_url = lc.base_url,
                         .api_key = lc.api_key,
                         .timeout_ms = lc.timeout_ms,
                         .max_response_bytes = cfg->max_message_bytes};
    if (!(app->llm = sb_llm_new(&lo, err))) goto fail;
    SB_INFO(MODULE,
            "LLM endpoint %s (%s API key): answers agents' sampling "
            "when their caller cannot",
            lc.base_url, lc.api_key ? "with an" : "no");
  }
  sb_gateway_options gopts = {.loop = o->loop,
                              .mcp = app->mcp,
                              .mcp_limits = app_mcp_limits(cfg),
                              .default_tenant = cfg->default_tenant,
                              .max_message_bytes = cfg->max_message_bytes,
                              .agent_busy_poll_us =
                                  (unsigned)cfg->agent_busy_poll_us,
                              .agent_exec_shim = o->agent_exec_shim,
                              .health_every_ms =
                                  (uint64_t)cfg->agent_health_interval_ms,
                              .health_timeout_ms =
                                  (uint64_t)cfg->agent_health_timeout_ms,
                              .tenants_configured = cfg->tenants_len > 0,
                              .ctx = app->ctx,
                              .max_tool_name = (size_t)cfg->max_tool_name,
                              .on_breaker = breaker_changed,
                              .on_agent_state = agent_state_moved,
                              .notify_ud = app,
                              .llm = app->llm,
                              .admission = app_quota_mcp_admission(app),
                              .permit_agent = app_permit_agent,
                              .agent_visible = app_agent_visible,
                              .permit_ud = app};
  /* The admin and workflow tools list before the agents' own
   * (agent__tool). */
  if (app_agent_tools_register(app) != 0 || app_flow_tools_register(app) != 0) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    goto fail;
  }
  app_flow_tasks_register(app);
  if (!(app->gateway = sb_gateway_new(&gopts, err))) goto fail;
  sb_flow_engine_options fo = {.store = app->store,
                               .ctx = app->ctx,
                               .gateway = app->gateway,
                               .events = app->events,
                               .defs = &app->defs,
                               .max_runs = cfg->max_runs,
                               .max_runs_per_tenant = cfg->max_runs_per_tenant,
                               .hold_call = app_quota_hold_call,
                               .release_call = app_quota_release_call,
                               .step_permitted = app_flow_step_permitted,
                               .quota_ud = app,
                               .takeover_every_ms =
                                   cfg->store_takeover_interval_ms};
  if (!(app->flow = sb_flow_engine_new(&fo, err))) goto fail;
  /* Virtual servers first: a bad `servers:` entry stops the start before
   * any agent process is spawned. */
  if (sb_gateway_add_servers(app->gateway, cfg->servers, cfg->server_lines,
                             err) != 0 ||
      add_config_agents(app, err) != 0 ||
      app_agents_apply_stored(app, err) != 0)
    goto fail;
  if (o->embedded) {
    SB_INFO(MODULE, "embedded: contexts in %s, no transport", cfg->store_path);
    return app;
  }
  uv_timer_init(o->loop, &app->sweep);
  app->sweep.data = app;
  /* The first sweep soon after start: a server restarted more often than
   * the interval would never sweep otherwise. */
  uint64_t every = (uint64_t)cfg->ctx_sweep_interval_s * 1000u;
  uv_timer_start(&app->sweep, on_sweep, every < 1000u ? every : 1000u, every);
  uv_unref((uv_handle_t *)&app->sweep); /* never the only reason to run */
  app->sweep_started = 1;

  if (o->stdio) {
    sb_mcp_server *srv = app->mcp;
    if (o->stdio_agent &&
        !(srv = sb_gateway_agent_server(app->gateway, o->stdio_agent))) {
      sb_error_set(err, SB_ENOENT,
                   "--agent %s: no agent with that id (in the config, "
                   "or registered through the API)",
                   o->stdio_agent);
      goto fail;
    }
    if (o->stdio_agent) {
      /* Its endpoint's first tools/list must not find it still starting
       * ("not connected yet"): read stdin once it has settled. */
      app->stdio = sb_stdio_server_start_paused(o->loop, srv,
                                                o->on_stdio_eof, o->ud, err);
      if (!app->stdio || stdio_wait_start(app, o->stdio_agent) != 0) {
        if (app->stdio) sb_error_set(err, SB_ENOMEM, "out of memory");
        goto fail;
      }
    } else {
      app->stdio =
          sb_stdio_server_start(o->loop, srv, o->on_stdio_eof, o->ud, err);
      if (!app->stdio) goto fail;
    }
  } else {
    sb_http_server_options hopts = {
        .listen_host = cfg->listen_host,
        .listen_port = cfg->listen_port,
        .allowed_origins = cfg->allowed_origins,
        .allowed_origins_len = cfg->allowed_origins_len,
        .max_message_bytes = cfg->max_message_bytes,
        .max_json_depth = cfg->max_json_depth,
        .max_connections = cfg->max_connections,
        .connection_memory_bytes = cfg->connection_memory_bytes,
        .connection_timeout_s = cfg->connection_timeout_s,
        .header_timeout_s = cfg->header_timeout_s,
        .body_timeout_s = cfg->body_timeout_s,
        .send_timeout_s = cfg->send_timeout_s,
        .max_connections_per_address = cfg->max_connections_per_address,
        .connection_reserve = cfg->connection_reserve,
        .max_stream_buffer_bytes = cfg->max_stream_buffer_bytes,
        .session_idle_timeout_s = cfg->session_idle_timeout_s,
        .max_sessions = cfg->max_sessions,
        .max_sessions_per_tenant = cfg->max_sessions_per_tenant,
        .replay_events = cfg->replay_events,
        .tls_cert_file = cfg->tls_cert_file,
        .tls_key_file = cfg->tls_key_file,
        .admit = app_quota_http_admit,
        .release = app_quota_http_release,
        .admit_ud = app,
        .on_auth_failure = app_audit_auth_failure,
        .audit_ud = app};
    if (app_auth_start(app, err) != 0) goto fail;
    app_auth_http_options(app, &hopts);
    app->http = sb_http_server_start(o->loop, app->mcp, &hopts, err);
    if (!app->http) goto fail;
    sb_http_server_mount(app->http, sb_gateway_mount_resolve, app->gateway);
    if (app_rest_register(app) != 0 || app_rest_agents_register(app) != 0 ||
        app_rest_runs_register(app) != 0 || app_rest_ops_register(app) != 0) {
      sb_error_set(err, SB_ENOMEM, "out of memory");
      goto fail;
    }
  }
  /* Runs a previous process left running or waiting go on. */
  if (sb_flow_engine_resume_all(app->flow, err) != 0) goto fail;
  /* API keys: after the resumption's read, which may not find the store's
   * queue taken (store.max_pending can be 1); a key load that does finds
   * it busy simply waits for the next tick. Until the first load is in,
   * keys would be refused: the HTTP server is held until then (its
   * callers wait in the listening socket's backlog, for milliseconds),
   * so that a client with a good key is not told 401 right after a
   * restart. */
  if (app->http) {
    sb_http_server_hold(app->http, 1);
    sb_auth_keyring_options ko = {.store = app->store,
                                  .loop = o->loop,
                                  .on_first_load = keys_loaded,
                                  .ud = app};
    if (!(app->keyring = sb_auth_keyring_start(&ko, err))) goto fail;
  }
  SB_INFO(MODULE, "contexts in %s (tenant without credentials: %s)",
          cfg->store_path,
          cfg->tenants_len ? "none, tokens required" : cfg->default_tenant);
  return app;
fail:
  sb_app_stop(app);
  return NULL;
}

sb_flow_engine *sb_app_flow(sb_app *app) { return app->flow; }
sb_events *sb_app_events(sb_app *app) { return app->events; }
sb_gateway *sb_app_gateway(sb_app *app) { return app->gateway; }
sb_ctx_manager *sb_app_ctx(sb_app *app) { return app->ctx; }
sb_mcp_server *sb_app_mcp(sb_app *app) { return app->mcp; }
int sb_app_http_port(const sb_app *app) {
  return app->http ? sb_http_server_port(app->http) : 0;
}

static void free_on_close(uv_handle_t *h) { sb_free(h->data); }


sb_app_pending sb_app_drain(sb_app *app) {
  /* Subscriptions would hold their streams open to the end of the grace:
   * they end now, gracefully, and their clients may reconnect elsewhere. */
  sb_mcp_server_end_listens(app->mcp);
  /* The engine first: a step whose call ends while the requests are
   * answered must not have its next step sent, to be cut off at the exit
   * and sent again after the restart. */
  sb_app_pending p = {.steps = sb_flow_engine_drain(app->flow)};
  /* workflow_run calls following a run would wait for an end that comes
   * only after the restart: they are answered with the run as it is. */
  app_flow_tools_drain(app);
  p.requests = app->http ? sb_http_server_drain(app->http) : 0;
  p.requests += (size_t)sb_stdio_server_busy(app->stdio);
  return p;
}

sb_app_pending sb_app_busy(const sb_app *app) {
  sb_app_pending p = {.steps = sb_flow_engine_busy(app->flow)};
  p.requests = app->http ? sb_http_server_busy(app->http) : 0;
  p.requests += (size_t)sb_stdio_server_busy(app->stdio);
  return p;
}

void sb_app_stop(sb_app *app) {
  if (!app) return;
  app_reload_stop(app); /* a reload in flight applies nothing */
  stdio_wait_end(app);
  /* Subscriptions end with their completion while the transports can
   * still carry it; then the transports: their calls are cancelled while
   * the server lives. */
  sb_mcp_server_end_listens(app->mcp);
  if (app->stdio) sb_stdio_server_stop(app->stdio);
  if (app->http) sb_http_server_stop(app->http);
  /* Runs stop before the agents they call; they go on at the next start.
   * What the store answers from here on (inside sb_store_close: a run's
   * start waiting for its context's read) finds no engine, and is told
   * the server is stopping. */
  sb_flow_engine_free(app->flow);
  app->flow = NULL;
  app->agents_stopping = 1; /* writes of agents still queued answer nobody */
  sb_gateway_free(app->gateway);
  sb_llm_free(app->llm); /* after the gateway: its sampling calls end first */
  if (app->mcp) sb_mcp_server_free(app->mcp);
  sb_ctx_manager_free(app->ctx);
  sb_events_free(app->events);
  sb_auth_keyring_stop(app->keyring);
  sb_store_close(app->store);
  sb_auth_keyring_free(app->keyring);
  app_auth_stop(app); /* JWT tenants outlive every session and task */
  sb_flow_defs_clear(&app->defs);
  json_decref(app->api_agents);
  json_decref(app->event_streams);
  sb_quota_free(app->quota); /* after the servers: their calls release */
  if (app->sweep_started) {
    uv_timer_stop(&app->sweep);
    uv_close((uv_handle_t *)&app->sweep, free_on_close);
  } else {
    sb_free(app);
  }
}
