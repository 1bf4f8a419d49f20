/* demo_cmd.c: `switchboard demo`, the dealership end to end.
 *
 * The command starts a whole switchboard (HTTP, the config's agents and
 * workflows: examples/dealership/switchboard.yaml by default), waits until
 * every agent has connected, then runs the scripted customer conversations
 * of the scenarios file one after the other, each in its tenant: a run of
 * its workflow on a new context holding the conversation. It follows each
 * run's events until the run ends or waits for a person, then prints the
 * trace (demo_report.c): every handoff with the agent chosen and why, the
 * context versions, the projection handed over beside the whole context,
 * and timings. A scenario may take agents offline for its run (the
 * failure handling it shows); they are registered again afterwards.
 *
 * After the summary the server keeps serving (Ctrl-C stops it) and says
 * how to connect an MCP client; --once exits after the summary instead.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/demo_internal.h"
#include "events/events.h"
#include "flow/flow.h"
#include "gateway/gateway.h"
#include "net/net.h"

const char sb_cli_demo_help[] =
    "Usage: switchboard demo [--config FILE] [--scenarios FILE] [--once]\n"
    "                        [--listen HOST:PORT] [--store PATH]\n"
    "\n"
    "Run the dealership demo: switchboard with the config's agents (five\n"
    "specialists over two dealer groups' data, written by dealer-data into\n"
    "data/demo), the scripted customer conversations of the scenarios file\n"
    "through their workflows, a trace of every handoff (the agent chosen and\n"
    "why, the context version, the projection it was handed beside the\n"
    "whole context, timings) and a summary. Then it keeps serving MCP on\n"
    "HTTP and prints how to connect a client; Ctrl-C stops it.\n"
    "Run it from the repository root (scripts/run.sh does).\n"
    "\n"
    "Options:\n"
    "  --config FILE      default examples/dealership/switchboard.yaml\n"
    "  --scenarios FILE   default examples/dealership/conversations.json\n"
    "  --once             exit after the summary\n"
    "  --listen HOST:PORT overrides server.listen (port 0 picks one)\n"
    "  --store PATH       overrides store.path\n"
    "  -h, --help         show this help and exit\n"
    "\n"
    "Exit status: 0 every scenario ended as its `expect` says, 1 otherwise\n"
    "or on a runtime failure, 2 usage or config error.\n";

#define AGENTS_WAIT_MS 20000
#define POLL_MS 50

static void scenario_begin(demo *d);
static void stop(demo *d, int code);

/* ---- the scenarios file ------------------------------------------------- */

/* The list of scenarios, checked enough that a typo is named; NULL after
 * printing the problem. */
static json_t *read_scenarios(const char *path) {
  json_error_t jerr;
  json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!doc) {
    /* A file that cannot be opened has no line: jansson says -1. */
    if (jerr.line <= 0)
      sb_cli_eprintf("switchboard demo: --scenarios %s: %s\n", path, jerr.text);
    else
      sb_cli_eprintf("switchboard demo: %s:%d:%d: %s\n", path, jerr.line,
                     jerr.column, jerr.text);
    return NULL;
  }
  json_t *list = json_incref(json_object_get(doc, "scenarios"));
  json_decref(doc);
  if (!json_is_array(list) || json_array_size(list) == 0) {
    sb_cli_eprintf("switchboard demo: %s: expected {\"scenarios\": [...]} "
                   "with at least one scenario\n",
                   path);
    json_decref(list);
    return NULL;
  }
  size_t i;
  json_t *s;
  json_array_foreach(list, i, s) {
    static const char *const required[] = {"title", "tenant", "workflow"};
    for (size_t k = 0; k < 3; k++) {
      if (!json_is_string(json_object_get(s, required[k]))) {
        sb_cli_eprintf("switchboard demo: %s: scenario %zu: \"%s\" must be "
                       "a string\n",
                       path, i + 1, required[k]);
        json_decref(list);
        return NULL;
      }
    }
    json_t *input = json_object_get(s, "input");
    json_t *offline = json_object_get(s, "offline");
    if ((input && !json_is_object(input)) ||
        (offline && !json_is_array(offline))) {
      sb_cli_eprintf("switchboard demo: %s: scenario %zu: \"input\" must be "
                     "an object and \"offline\" a list of agent ids\n",
                     path, i + 1);
      json_decref(list);
      return NULL;
    }
  }
  return list;
}

/* ---- agents offline for a scenario ------------------------------------- */

static void take_offline(demo *d) {
  sb_gateway *gw = sb_app_gateway(d->app);
  json_t *ids = json_object_get(d->cur.spec, "offline");
  size_t i;
  json_t *id;
  d->cur.offline = json_array();
  json_array_foreach(ids, i, id) {
    const sb_agent_def *def =
        sb_registry_get(sb_gateway_registry(gw), json_string_value(id));
    if (!def) continue;
    json_t *saved = sb_agent_def_to_json(def);
    sb_error err = {0};
    if (saved && sb_gateway_remove(gw, json_string_value(id), &err) == 0) {
      json_array_append_new(d->cur.offline, saved);
      fprintf(d->out, "  (the demo takes agent %s offline for this run)\n",
              json_string_value(id));
    } else {
      json_decref(saved);
    }
  }
}

static void bring_back(demo *d) {
  sb_gateway *gw = sb_app_gateway(d->app);
  size_t i;
  json_t *def;
  json_array_foreach(d->cur.offline, i, def) {
    sb_error err = {0};
    if (sb_gateway_add(gw, def, 0, 1, &err) != 0)
      sb_cli_eprintf("switchboard demo: agent %s could not come back: %s\n",
                     json_string_value(json_object_get(def, "id")), err.msg);
  }
}

/* ---- one scenario ------------------------------------------------------- */

static void scenario_clear(demo *d) {
  if (d->sub) sb_events_unsubscribe(d->sub);
  d->sub = NULL;
  json_decref(d->cur.events);
  json_decref(d->cur.offline);
  json_decref(d->cur.final_ctx);
  json_decref(d->cur.run);
  memset(&d->cur, 0, sizeof d->cur);
}

static void scenario_end(demo *d) {
  demo_record(d);
  bring_back(d);
  scenario_clear(d);
  d->next++;
  scenario_begin(d);
}

static void on_run(void *ud, const sb_flow_reply *r) {
  demo *d = ud;
  if (d->stopping) return;
  if (r->rc == 0) d->cur.run = json_incref(r->run);
  else
    sb_cli_eprintf("switchboard demo: reading run %s: %s\n", d->cur.run_id,
                   r->err.msg);
  scenario_end(d);
}

static void traced(demo *d) {
  sb_error err = {0};
  if (sb_flow_run_get(sb_app_flow(d->app), d->cur.tenant, d->cur.run_id,
                      on_run, d, &err) != 0) {
    sb_cli_eprintf("switchboard demo: reading run %s: %s\n", d->cur.run_id,
                   err.msg);
    scenario_end(d);
  }
}

static void on_final_ctx(void *ud, const sb_ctx_result *res) {
  demo *d = ud;
  if (d->stopping) return;
  if (res->rc == 0) d->cur.final_ctx = json_incref(res->doc);
  demo_trace(d, traced);
}

/* The run ended or waits for a person: read where its context got to. */
static void run_settled(demo *d) {
  if (d->sub) sb_events_unsubscribe(d->sub);
  d->sub = NULL;
  sb_error err = {0};
  if (sb_ctx_get_async(sb_app_ctx(d->app), d->cur.tenant, d->cur.context_id,
                       0, on_final_ctx, d, &err) != 0) {
    sb_cli_eprintf("switchboard demo: reading context %s: %s\n",
                   d->cur.context_id, err.msg);
    demo_trace(d, traced);
  }
}

static void on_event(void *ud, const sb_event *e) {
  demo *d = ud;
  if (d->stopping || !d->sub) return;
  json_t *data = json_loads(e->data, 0, NULL);
  json_array_append_new(d->cur.events,
                        json_pack("{sssosI}", "type", e->type, "data",
                                  data ? data : json_object(), "time",
                                  (json_int_t)e->created_ms));
  switch (sb_event_type_of(e->type)) {
  case SB_EVENT_RUN_COMPLETED:
  case SB_EVENT_RUN_FAILED:
  case SB_EVENT_RUN_CANCELLED:
  case SB_EVENT_RUN_WAITING:
    run_settled(d);
    break;
  default:
    break;
  }
}

static void on_follow_error(void *ud, const sb_error *err) {
  demo *d = ud;
  sb_cli_eprintf("switchboard demo: following run %s: %s\n", d->cur.run_id,
                 err->msg);
  if (!d->stopping) run_settled(d);
}

static void on_started(void *ud, const sb_flow_reply *r) {
  demo *d = ud;
  if (d->stopping) return;
  if (r->rc != 0) {
    sb_cli_eprintf("switchboard demo: scenario %zu: %s\n", d->next + 1,
                   r->err.msg);
    d->exit_code = EXIT_RUNTIME;
    scenario_end(d);
    return;
  }
  snprintf(d->cur.run_id, sizeof d->cur.run_id, "%s",
           json_string_value(json_object_get(r->run, "id")));
  snprintf(d->cur.context_id, sizeof d->cur.context_id, "%s",
           json_string_value(json_object_get(r->run, "contextId")));
  d->cur.created_ms = json_integer_value(json_object_get(r->run, "createdAt"));
  fprintf(d->out, "  run %s on context %s\n\n", d->cur.run_id,
          d->cur.context_id);
  sb_events_filter f = {.run_id = d->cur.run_id};
  sb_error err = {0};
  /* From before the start: its own transition's events are traced too. */
  d->sub = sb_events_subscribe(sb_app_events(d->app), d->cur.tenant, 0, &f,
                               on_event, on_follow_error, d, &err);
  if (!d->sub) {
    sb_cli_eprintf("switchboard demo: following run %s: %s\n", d->cur.run_id,
                   err.msg);
    run_settled(d);
  }
}

static int all_connected(demo *d) {
  json_t *list = sb_gateway_list_json(sb_app_gateway(d->app), NULL);
  size_t i;
  json_t *a;
  int all = 1;
  json_array_foreach(list, i, a) all &= json_is_true(json_object_get(a, "connected"));
  json_decref(list);
  return all;
}

static void summary_when_connected(uv_timer_t *t) { scenario_begin(t->data); }

static void scenario_begin(demo *d) {
  if (d->stopping) return;
  if (d->next >= json_array_size(d->scenarios)) {
    /* Agents brought back after a scenario reconnect first: the summary
     * lists what each one's endpoint serves. */
    if (!all_connected(d) && d->waited_ms < AGENTS_WAIT_MS) {
      d->waited_ms += POLL_MS;
      uv_timer_start(&d->timer, summary_when_connected, POLL_MS, 0);
      return;
    }
    demo_summary(d);
    if (d->once) {
      stop(d, d->exit_code);
      return;
    }
    demo_connect_help(d);
    return; /* serving until Ctrl-C */
  }
  d->cur.spec = json_array_get(d->scenarios, d->next);
  d->cur.tenant = json_string_value(json_object_get(d->cur.spec, "tenant"));
  d->cur.events = json_array();
  const char *on = d->color ? "\033[1m" : "", *off = d->color ? "\033[0m" : "";
  fprintf(d->out, "%s== %zu/%zu  %s  [%s, %s]%s\n", on, d->next + 1,
          json_array_size(d->scenarios),
          json_string_value(json_object_get(d->cur.spec, "title")),
          d->cur.tenant,
          json_string_value(json_object_get(d->cur.spec, "workflow")), off);
  json_t *input = json_object_get(d->cur.spec, "input");
  json_t *msgs = json_object_get(
      json_object_get(json_object_get(json_object_get(input, "context"), "data"),
                      "conversation"),
      "messages");
  json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
  const char *said = json_string_value(json_object_get(last, "content"));
  if (said) fprintf(d->out, "  customer: \"%s\"\n", said);
  take_offline(d);
  sb_flow_start s = {
      .tenant = d->cur.tenant,
      .workflow = json_string_value(json_object_get(d->cur.spec, "workflow")),
      .input = input};
  sb_error err = {0};
  if (sb_flow_run_start(sb_app_flow(d->app), &s, on_started, d, &err) != 0) {
    sb_flow_reply r = {.rc = err.code ? err.code : SB_EINVAL, .err = err};
    on_started(d, &r);
  }
}

/* ---- waiting for the agents -------------------------------------------- */

static void check_agents(uv_timer_t *t) {
  demo *d = t->data;
  json_t *list = sb_gateway_list_json(sb_app_gateway(d->app), NULL);
  size_t i, total = json_array_size(list), up = 0;
  json_t *a;
  json_array_foreach(list, i, a) up += json_is_true(json_object_get(a, "connected"));
  if (up < total && d->waited_ms < AGENTS_WAIT_MS) {
    d->waited_ms += POLL_MS;
    json_decref(list);
    uv_timer_start(&d->timer, check_agents, POLL_MS, 0);
    return;
  }
  fprintf(d->out, "switchboard demo: %zu of %zu agents connected:", up, total);
  json_array_foreach(list, i, a) {
    json_t *def = json_object_get(a, "definition");
    fprintf(d->out, " %s%s", json_string_value(json_object_get(def, "id")),
            json_is_true(json_object_get(a, "connected")) ? "" : " (down)");
  }
  fprintf(d->out, "\n\n");
  json_decref(list);
  if (up < total) d->exit_code = EXIT_RUNTIME;
  d->waited_ms = 0;
  scenario_begin(d);
}

/* ---- the command -------------------------------------------------------- */

static void stop(demo *d, int code) {
  d->stopping = 1;
  d->exit_code = code;
  uv_stop(&d->loop);
}

static void on_signal(uv_signal_t *h, int signum) {
  demo *d = h->data;
  fprintf(d->out, "\nswitchboard demo: stopping\n");
  stop(d, d->exit_code ? d->exit_code : (d->next >= json_array_size(d->scenarios)
                                             ? EXIT_OK : 128 + signum));
}

int sb_cli_demo(int argc, char **argv) {
  const char *config = NULL, *scenarios = NULL, *listen = NULL,
             *store = NULL;
  int once = 0;
  for (int i = 0; i < argc; i++) {
    if (sb_cli_is_help(argv[i])) {
      fputs(sb_cli_demo_help, stdout);
      return EXIT_OK;
    }
    if (strcmp(argv[i], "--once") == 0) {
      once = 1;
      continue;
    }
    const char *const names[] = {"--config", "--scenarios", "--listen",
                                 "--store"};
    const char **const slots[] = {&config, &scenarios, &listen, &store};
    int rc = sb_cli_take_option("demo", argc, argv, &i, names, slots, 4);
    if (rc < 0) return EXIT_USAGE;
    if (!rc) return sb_cli_usage_error("demo", "unknown argument '%s'", argv[i]);
  }
  if (!config) config = "examples/dealership/switchboard.yaml";
  if (!scenarios) scenarios = "examples/dealership/conversations.json";
  demo *d = sb_calloc(1, sizeof *d);
  if (!d) return EXIT_RUNTIME;
  sb_error err = {0};
  int rc = EXIT_USAGE;
  sb_config_defaults(&d->cfg);
  d->out = stdout;
  d->once = once;
  d->color = isatty(STDOUT_FILENO);
  d->config_path = config;
  if (sb_config_load(&d->cfg, config, &err) != 0 ||
      (store && sb_config_set_store_path(&d->cfg, store, &err) != 0) ||
      (listen && sb_config_set_listen(&d->cfg, listen, &err) != 0)) {
    sb_cli_eprintf("switchboard demo: %s\n", err.msg);
    goto out_cfg;
  }
  if (!listen && d->cfg.listen_port == 0) {
    sb_cli_eprintf("switchboard demo: %s: server.listen is not set (or "
                   "give --listen HOST:PORT)\n",
                   config);
    goto out_cfg;
  }
  if (!(d->scenarios = read_scenarios(scenarios))) goto out_cfg;
  sb_log_set_level(d->cfg.log_level > SB_LOG_WARNING
                       ? (sb_log_level)d->cfg.log_level
                       : SB_LOG_WARNING);
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  rc = EXIT_RUNTIME;
  if (uv_loop_init(&d->loop) != 0) goto out_cfg;
  d->rows = json_array();
  d->agents = json_object();
  uv_signal_init(&d->loop, &d->sigint);
  uv_signal_init(&d->loop, &d->sigterm);
  uv_timer_init(&d->loop, &d->timer);
  d->sigint.data = d->sigterm.data = d->timer.data = d;
  uv_signal_start(&d->sigint, on_signal, SIGINT);
  uv_signal_start(&d->sigterm, on_signal, SIGTERM);
  sb_app_options opts = {.config = &d->cfg,
                         .loop = &d->loop,
                         .agent_exec_shim = sb_child_shim_self()};
  if (!(d->app = sb_app_start(&opts, &err))) {
    sb_cli_eprintf("switchboard demo: %s\n", err.msg);
    rc = err.code == SB_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
  } else {
    fprintf(d->out, "switchboard demo: serving on http://%s:%d/mcp, store %s\n",
            d->cfg.listen_host, sb_app_http_port(d->app), d->cfg.store_path);
    uv_timer_start(&d->timer, check_agents, POLL_MS, 0);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    rc = d->exit_code;
  }
  d->stopping = 1;
  scenario_clear(d);
  sb_app_stop(d->app);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->timer, NULL);
  sb_cli_loop_drain(&d->loop);
out_cfg:
  json_decref(d->scenarios);
  json_decref(d->rows);
  json_decref(d->agents);
  sb_config_free(&d->cfg);
  sb_free(d);
  return rc;
}
