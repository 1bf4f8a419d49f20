/* main.c: the switchboard command.
 *
 * Subcommands: `serve` runs the MCP server on stdio or Streamable HTTP;
 * `check` validates a config file (and the workflow definitions it names)
 * and prints the settings it results in.
 * Precedence is flag > config file > built-in default.
 *
 * Exit status is part of the interface (scripts and supervisors read it):
 * 0 clean stop, 1 runtime failure (e.g. the address cannot be bound),
 * 2 usage or config error. Shutdown on SIGINT/SIGTERM is graceful: the
 * transports stop, the server is freed and the loop is run until every
 * handle has closed, so sanitizer builds see no leaks.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "auth/auth.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/core.h"
#include "flow/flow.h"
#include "gateway/gateway.h"
#include "mcp/mcp.h"
#include "net/net.h"


/* Give stuck handles this long after a stop before we stop waiting. */

static const char main_help[] =
    "switchboard " SB_VERSION " - an MCP orchestration server\n"
    "\n"
    "Usage:\n"
    "  switchboard serve [--config FILE] [--stdio | --listen HOST:PORT]\n"
    "  switchboard check --config FILE\n"
    "  switchboard context (get|history|diff) ID ... [options]\n"
    "  switchboard agents (list | explain CAPABILITY | show ID) --config FILE\n"
    "  switchboard demo [--once] [--config FILE] [--listen HOST:PORT]\n"
    "  switchboard run WORKFLOW --config FILE [--input FILE|-] [--json]\n"
    "  switchboard runs (list | get ID | events ID) --config FILE\n"
    "  switchboard runs (cancel | answer | resume | fork) ID --url URL\n"
    "  switchboard tenant (create ID [--name NAME] | list) --config FILE\n"
    "  switchboard key (create --tenant T | list | revoke KEYID) --config FILE\n"
    "  switchboard help [COMMAND]\n"
    "  switchboard --version\n"
    "  switchboard --help\n"
    "\n"
    "Commands:\n"
    "  serve     serve MCP over stdio or Streamable HTTP\n"
    "  check     validate a config file and print the resulting settings\n"
    "  context   read a context, its history or a diff from the store\n"
    "  agents    list the configured agents, rank them for a capability,\n"
    "            or connect to one and show what it offers\n"
    "  demo      the dealership demo: agents, workflows, a trace, a summary\n"
    "  run       run a workflow to its end in this process\n"
    "  runs      list and read stored runs; cancel, answer, resume or fork\n"
    "            a run of a running server\n"
    "  tenant    register tenants in the store, or list them\n"
    "  key       create (shown once), list or revoke API keys\n"
    "  help      show help for switchboard or for one command\n"
    "\n"
    "Options:\n"
    "  -h, --help       show this help and exit\n"
    "  -V, --version    print the version and exit\n"
    "\n"
    "Run 'switchboard serve --help' for the server's options.\n";

static const char serve_help[] =
    "Usage: switchboard serve [options] [--stdio | --listen HOST:PORT]\n"
    "\n"
    "Serve the Model Context Protocol (revision 2026-07-28, and 2025-11-25\n"
    "back to 2024-11-05 for legacy clients) on this process's stdin/stdout\n"
    "or over Streamable HTTP at http://HOST:PORT/mcp. Each agent is also\n"
    "served on its own at /agents/ID/mcp, and each virtual server of the\n"
    "config's servers: list at /servers/NAME/mcp.\n"
    "\n"
    "Options:\n"
    "  --config FILE          read settings from the YAML file FILE\n"
    "                         (every key: examples/switchboard.yaml)\n"
    "  --stdio                serve on stdin/stdout; logs go to stderr;\n"
    "                         stops when stdin closes\n"
    "  --listen HOST:PORT     serve Streamable HTTP; overrides server.listen.\n"
    "                         HOST is an IPv4 address, [IPv6 address]\n"
    "                         or localhost; port 0 picks a free port\n"
    "  --log-level LEVEL      debug, info, notice, warning or error;\n"
    "                         overrides server.log_level (default info)\n"
    "  --log-format FORMAT    text, or json (one JSON object a line);\n"
    "                         overrides server.log_format (default text)\n"
    "  --store PATH           the SQLite file for contexts; overrides\n"
    "                         store.path (default data/switchboard.db)\n"
    "  --tenant ID            the tenant of callers without credentials\n"
    "                         (stdio); overrides auth.default_tenant\n"
    "  --agent ID             with --stdio: serve agent ID's own tools,\n"
    "                         resources, prompts and completions under\n"
    "                         their own names (HTTP: /agents/ID/mcp)\n"
    "  -h, --help             show this help and exit\n"
    "\n"
    "Without --stdio or --listen, server.listen from the config is used.\n"
    "Options also accept the --option=VALUE form.\n"
    "SIGINT or SIGTERM stops the server gracefully. SIGHUP reloads the\n"
    "--config file's agents, quotas, OAuth keys and TLS certificate\n"
    "without dropping sessions.\n"
    "\n"
    "Exit status: 0 clean stop, 1 runtime failure (e.g. the address cannot\n"
    "be bound), 2 usage or config error.\n";

static const char check_help[] =
    "Usage: switchboard check --config FILE\n"
    "\n"
    "Validate the YAML config FILE, the agents, workflow definitions and\n"
    "virtual servers in it, and the files serve reads at its start (the\n"
    "TLS certificate and key, the OAuth JWKS), and print the settings it\n"
    "results in (defaults included) as YAML, then the workflows as\n"
    "comments. Exit status 0 if valid, 2 if not.\n"
    "\n"
    "Options:\n"
    "  --config FILE          the config file to check\n"
    "  -h, --help             show this help and exit\n";

static const char *const level_names[] = {"debug", "info", "notice", "warning",
                                          "error"};

int sb_cli_eprintf(const char *fmt, ...) {
  char small[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return n;
  char *text = small;
  if ((size_t)n >= sizeof small) {
    if (!(text = sb_malloc((size_t)n + 1))) return -1;
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  /* Each byte is at most 4 escaped ("\\xHH"). */
  char shown_small[4 * sizeof small + 1];
  size_t cap = 4 * (size_t)n + 1;
  char *shown = cap <= sizeof shown_small ? shown_small : sb_malloc(cap);
  if (shown) {
    size_t len = sb_escape_controls(text, (size_t)n, shown, cap,
                                    SB_ESC_KEEP_TAB | SB_ESC_KEEP_NEWLINE);
    fwrite(shown, 1, len, stderr);
    if (shown != shown_small) sb_free(shown);
  }
  if (text != small) sb_free(text);
  return shown ? n : -1;
}

int sb_cli_usage_error(const char *cmd, const char *fmt, const char *what) {
  sb_cli_eprintf("switchboard%s%s: ", cmd ? " " : "", cmd ? cmd : "");
  sb_cli_eprintf(fmt, what);
  sb_cli_eprintf("\nTry 'switchboard%s%s --help'.\n", cmd ? " " : "",
                 cmd ? cmd : "");
  return EXIT_USAGE;
}

/* Match option `name` taking a value, as "--name VALUE" or "--name=VALUE".
 * Returns 1 (matched, *value set, *i advanced), 0 (not this option),
 * SB_CLI_NO_VALUE (nothing after it, or another option where its value
 * should be: "--input --tenant t" is a forgotten value, not an input file
 * named "--tenant"; "--input=--x" still gives one starting with "--") or
 * SB_CLI_TWICE (*value was set by an earlier one). */
int sb_cli_take_value(int argc, char **argv, int *i, const char *name,
                      const char **value) {
  const char *arg = argv[*i];
  size_t n = strlen(name);
  if (strncmp(arg, name, n) != 0) return 0;
  const char *v;
  if (arg[n] == '=') {
    v = arg + n + 1;
  } else if (arg[n] != '\0') {
    return 0;
  } else {
    if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)
      return SB_CLI_NO_VALUE;
    v = argv[++*i];
  }
  if (*value) return SB_CLI_TWICE;
  *value = v;
  return 1;
}

int sb_cli_take_option(const char *cmd, int argc, char **argv, int *i,
                       const char *const *names, const char **const *slots,
                       size_t n) {
  for (size_t k = 0; k < n; k++) {
    int rc = sb_cli_take_value(argc, argv, i, names[k], slots[k]);
    if (rc == 0) continue;
    if (rc == SB_CLI_NO_VALUE)
      sb_cli_usage_error(cmd, "option %s needs a value", names[k]);
    else if (rc == SB_CLI_TWICE)
      sb_cli_usage_error(cmd, "option %s given more than once", names[k]);
    return rc < 0 ? -1 : 1;
  }
  return 0;
}

int sb_cli_is_help(const char *arg) {
  return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

typedef struct serve_args {
  const char *config_path;
  const char *log_level;
  const char *log_format;
  const char *listen;
  const char *store;
  const char *tenant;
  const char *agent;
  int stdio;
  int help;
} serve_args;

/* Parse the options of serve/check. Returns 0 or EXIT_USAGE (reported). */
static int parse_args(const char *cmd, int argc, char **argv, int allow_serve,
                      serve_args *a) {
  static const char *const valued[] = {"--config", "--log-level", "--listen",
                                       "--store",  "--tenant",    "--agent",
                                       "--log-format"};
  const char **const slots[] = {&a->config_path, &a->log_level, &a->listen,
                                &a->store,       &a->tenant,    &a->agent,
                                &a->log_format};
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (sb_cli_is_help(arg)) {
      a->help = 1;
      return 0;
    }
    if (allow_serve && strcmp(arg, "--stdio") == 0) {
      a->stdio = 1;
      continue;
    }
    int rc = sb_cli_take_option(cmd, argc, argv, &i, valued, slots,
                                allow_serve ? 7u : 1u);
    if (rc < 0) return EXIT_USAGE;
    if (rc) continue;
    if (arg[0] == '-') return sb_cli_usage_error(cmd, "unknown option '%s'", arg);
    return sb_cli_usage_error(cmd, "unexpected argument '%s'", arg);
  }
  return 0;
}

/* ---- serve -------------------------------------------------------------- */

typedef struct serve_state {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm, sighup;
  sb_app *app;
  const char *config_path;
  int stop_signal; /* signal that stopped us, 0 if none */
  /* the graceful stop (server.shutdown_grace_ms): checks until every
   * request is answered or the grace is over */
  int grace_ms;
  uv_timer_t drain;
  int draining;
  int drain_steps; /* workflow steps were under way when it began */
  uint64_t drain_until;
} serve_state;

/* "N request(s)", "N workflow step(s)" or both: what a drain waits for. */
static const char *pending_text(char *buf, size_t cap, sb_app_pending p) {
  char steps[64];
  snprintf(steps, sizeof steps, "%zu workflow step(s)", p.steps);
  if (p.requests && p.steps)
    snprintf(buf, cap, "%zu request(s) and %s", p.requests, steps);
  else if (p.steps)
    snprintf(buf, cap, "%s", steps);
  else
    snprintf(buf, cap, "%zu request(s)", p.requests);
  return buf;
}

static void on_drain_tick(uv_timer_t *t) {
  serve_state *st = t->data;
  sb_app_pending busy = sb_app_busy(st->app);
  int left = busy.requests || busy.steps;
  if (left && uv_now(&st->loop) < st->drain_until) return;
  char what[128];
  if (left)
    SB_WARN("cli",
            "server.shutdown_grace_ms is over with %s under way: they are "
            "cut off%s",
            pending_text(what, sizeof what, busy),
            busy.steps ? " (the steps are sent again at the next start)" : "");
  else if (st->drain_steps)
    SB_INFO("cli", "every request answered and every workflow step under "
                   "way stored; stopping");
  else
    SB_INFO("cli", "every request answered; stopping");
  uv_stop(&st->loop);
}

/* What subscription streams get, without a grace, to carry their end. */
#define LISTEN_END_MS 1000
/* How long requests read before stdin's end may take to be answered when
 * server.shutdown_grace_ms is 0. */
#define STDIN_END_GRACE_MS 10000

/* Stop once what sb_app_drain reported is done, or grace_ms is over. */
static void start_drain(serve_state *st, sb_app_pending busy, int grace_ms) {
  st->draining = 1;
  st->drain_steps = busy.steps > 0;
  st->drain_until = uv_now(&st->loop) + (uint64_t)grace_ms;
  uv_timer_init(&st->loop, &st->drain);
  st->drain.data = st;
  uv_timer_start(&st->drain, on_drain_tick, 20, 20);
}

/* stdin's end: the client is done. The requests it sent are still
 * answered (within server.shutdown_grace_ms, or STDIN_END_GRACE_MS), as
 * `cat requests.jsonl | switchboard serve --stdio` expects; then the
 * server stops. A signal stops it at once. */
static void on_stdio_eof(void *ud) {
  serve_state *st = ud;
  if (st->draining || st->stop_signal) return;
  sb_app_pending busy = st->app ? sb_app_drain(st->app) : (sb_app_pending){0};
  if (!busy.requests && !busy.steps) {
    SB_INFO("cli", "stdin closed; stopping");
    uv_stop(&st->loop);
    return;
  }
  int grace = st->grace_ms > 0 ? st->grace_ms : STDIN_END_GRACE_MS;
  char what[128];
  SB_INFO("cli",
          "stdin closed; stopping once %s under way are %s (within %d ms; "
          "a signal stops at once)",
          pending_text(what, sizeof what, busy),
          busy.requests ? "answered" : "stored", grace);
  start_drain(st, busy, grace);
}

/* SIGINT, SIGTERM: stop; with server.shutdown_grace_ms, the requests under
 * way first finish (within it). A second signal, or one during the drain
 * after stdin's end, stops at once. */
static void on_signal(uv_signal_t *h, int signum) {
  serve_state *st = h->data;
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  int first = !st->stop_signal && !st->draining;
  st->stop_signal = signum;
  /* Subscriptions end with a result saying so (sb_app_drain): without a
   * grace their streams still get a moment to carry it. */
  int grace = st->grace_ms;
  if (first && grace <= 0 && st->app &&
      sb_mcp_server_listens(sb_app_mcp(st->app)) > 0)
    grace = LISTEN_END_MS;
  if (first && grace > 0 && st->app) {
    /* The workflow engine sends no new step from here on; the steps'
     * calls in flight, like the requests, may end within the grace, and
     * their ends are stored (the runs go on at the next start). */
    sb_app_pending busy = sb_app_drain(st->app);
    if (busy.requests || busy.steps) {
      char what[128];
      SB_INFO("cli",
              "received %s; stopping once %s under way are %s (within %d "
              "ms; a second signal stops at once)",
              name, pending_text(what, sizeof what, busy),
              busy.requests ? "answered" : "stored", grace);
      start_drain(st, busy, grace);
      return;
    }
  }
  SB_INFO("cli", "received %s; stopping", name);
  uv_stop(&st->loop);
}

/* SIGHUP: reload the config file (the app reads it on a worker thread);
 * a bad file changes nothing. */
static void on_sighup(uv_signal_t *h, int signum) {
  serve_state *st = h->data;
  if (!st->config_path || !st->app) {
    SB_WARN("cli", "SIGHUP: no --config file to reload");
    return;
  }
  sb_app_reload(st->app, st->config_path);
}

/* An option that overrides one of the config's choices (a level, a
 * format): 0, or EXIT_USAGE (reported) when it names none. */
static int override_choice(const char *option, const char *value,
                           int (*parse)(const char *), const char *expected,
                           int *field) {
  if (!value) return 0;
  int v = parse(value);
  if (v < 0) {
    char what[256];
    snprintf(what, sizeof what, "%s: expected %s, got '%.128s'", option,
             expected, value);
    return sb_cli_usage_error("serve", "%s", what);
  }
  *field = v;
  return 0;
}

/* The workflow definitions and virtual servers of cfg, as the app reads
 * them at its start: EXIT_OK, or EXIT_USAGE with the error printed (a
 * config error, as check reports it). defs (may be NULL) takes the
 * workflows. */
static int check_definitions(const sb_config *cfg, sb_flow_defs *defs) {
  sb_flow_defs mine;
  sb_error err = {0};
  sb_flow_defs *d = defs ? defs : &mine;
  if (sb_flow_defs_load(cfg->workflows, cfg->workflow_lines, cfg->config_file,
                        cfg->config_dir, d, &err) != 0) {
    sb_cli_eprintf("switchboard: %s\n", err.msg);
    return EXIT_USAGE;
  }
  if (sb_gateway_check_servers(cfg->servers, cfg->server_lines, &err) != 0) {
    sb_cli_eprintf("switchboard: %s\n", err.msg);
    sb_flow_defs_clear(d);
    return EXIT_USAGE;
  }
  if (!defs) sb_flow_defs_clear(d);
  return EXIT_OK;
}

/* The files serve reads at its start besides the config and its
 * workflows: the TLS certificate and key, the OAuth JWKS. EXIT_OK, or
 * EXIT_USAGE with the error printed as serve prints it. */
static int check_files(const sb_config *cfg) {
  sb_error err = {0};
  if (cfg->tls_cert_file && cfg->tls_key_file) {
    sb_http_tls_creds *c = NULL;
    int rc = sb_http_tls_load(cfg->tls_cert_file, cfg->tls_key_file, &c, &err);
    sb_http_tls_free(c);
    if (rc != 0) {
      sb_cli_eprintf("switchboard: %s\n", err.msg);
      return EXIT_USAGE;
    }
  }
  if (cfg->oauth_jwks_file) {
    char *path = sb_config_path(cfg, cfg->oauth_jwks_file);
    sb_auth_jwks *keys = NULL;
    int rc = path ? sb_auth_jwks_load_file(path, &keys, &err)
                  : sb_error_set(&err, SB_ENOMEM, "out of memory");
    sb_auth_jwks_free(keys);
    sb_free(path);
    if (rc != 0) {
      sb_cli_eprintf("switchboard: auth.oauth.jwks_file: %s\n", err.msg);
      return EXIT_USAGE;
    }
  }
  return EXIT_OK;
}

static int cmd_serve(int argc, char **argv) {
  serve_args a = {0};
  sb_config cfg;
  sb_error err = {0};
  int rc = parse_args("serve", argc, argv, 1, &a);
  if (rc != 0) return rc;
  if (a.help) {
    fputs(serve_help, stdout);
    return EXIT_OK;
  }
  if (a.stdio && a.listen)
    return sb_cli_usage_error("serve", "%s",
                       "--stdio and --listen cannot be combined");
  if (a.agent && !a.stdio)
    return sb_cli_usage_error("serve", "%s",
                              "--agent needs --stdio (over HTTP every agent "
                              "is at /agents/ID/mcp)");
  if (a.agent && !a.config_path)
    return sb_cli_usage_error("serve", "--agent %s needs --config FILE that "
                              "defines the agent", a.agent);

  sb_config_defaults(&cfg);
  if (a.config_path && sb_config_load(&cfg, a.config_path, &err) != 0) {
    sb_cli_eprintf("switchboard: %s\n", err.msg);
    sb_config_free(&cfg);
    return EXIT_USAGE;
  }
  /* A bad agent definition, workflow or virtual server is the file's
   * error (its line, exit 2), as check reports it, not a failure of the
   * start; so is a TLS or JWKS file that does not load (HTTP only). */
  if (a.config_path &&
      ((rc = sb_cli_agents_registry(&cfg, a.config_path, NULL, NULL)) != 0 ||
       (rc = check_definitions(&cfg, NULL)) != 0 ||
       (!a.stdio && (rc = check_files(&cfg)) != 0))) {
    sb_config_free(&cfg);
    return rc;
  }
  if ((rc = override_choice("--log-level", a.log_level, sb_log_level_parse,
                            "one of debug, info, notice, warning, error",
                            &cfg.log_level)) != 0 ||
      (rc = override_choice("--log-format", a.log_format, sb_log_format_parse,
                            "text or json", &cfg.log_format)) != 0) {
    sb_config_free(&cfg);
    return rc;
  }
  sb_log_set_level((sb_log_level)cfg.log_level);
  sb_log_set_format((sb_log_format)cfg.log_format);
  if (a.listen && sb_config_set_listen(&cfg, a.listen, &err) != 0) {
    sb_config_free(&cfg);
    return sb_cli_usage_error("serve", "--%s", err.msg);
  }
  if ((a.store && sb_config_set_store_path(&cfg, a.store, &err) != 0) ||
      (a.tenant && sb_config_set_default_tenant(&cfg, a.tenant, &err) != 0)) {
    sb_config_free(&cfg);
    return sb_cli_usage_error("serve", "--%s", err.msg);
  }
  if (!a.stdio && !a.listen && cfg.listen_port == 0) {
    sb_config_free(&cfg);
    return sb_cli_usage_error("serve", "%s",
                       "nothing to serve on: give --stdio, --listen "
                       "HOST:PORT, or server.listen in the --config file");
  }

  /* Writes to a vanished peer must fail with EPIPE, not kill us. */
  signal(SIGPIPE, SIG_IGN);
  /* From here a reader of stderr that stops reading cannot stop the
   * server: log lines wait, or are dropped and counted, instead. */
  sb_log_start();

  serve_state st;
  memset(&st, 0, sizeof st);
  int exit_code = EXIT_RUNTIME;
  sb_app *app = NULL;
  int uvrc = uv_loop_init(&st.loop);
  if (uvrc != 0) {
    sb_cli_eprintf("switchboard: cannot create the event loop: %s\n",
                   uv_strerror(uvrc));
    sb_log_stop();
    sb_config_free(&cfg);
    return EXIT_RUNTIME;
  }
  uv_signal_init(&st.loop, &st.sigint);
  uv_signal_init(&st.loop, &st.sigterm);
  st.sigint.data = st.sigterm.data = &st;
  uv_signal_start(&st.sigint, on_signal, SIGINT);
  uv_signal_start(&st.sigterm, on_signal, SIGTERM);
  uv_signal_init(&st.loop, &st.sighup);
  st.sighup.data = &st;
  st.config_path = a.config_path;
  st.grace_ms = cfg.shutdown_grace_ms;
  uv_signal_start(&st.sighup, on_sighup, SIGHUP);

  sb_app_options opts = {.config = &cfg,
                         .loop = &st.loop,
                         .stdio = a.stdio,
                         .stdio_agent = a.agent,
                         .on_stdio_eof = on_stdio_eof,
                         .ud = &st,
                         .agent_exec_shim = sb_child_shim_self()};
  app = st.app = sb_app_start(&opts, &err);
  if (!app) {
    /* the message names what failed (address, store path, ...) */
    sb_cli_eprintf("switchboard: %s\n", err.msg);
    goto shutdown;
  }
  uv_run(&st.loop, UV_RUN_DEFAULT);
  exit_code = EXIT_OK;

shutdown:
  sb_app_stop(app);
  st.app = NULL;
  uv_close((uv_handle_t *)&st.sigint, NULL);
  uv_close((uv_handle_t *)&st.sigterm, NULL);
  uv_close((uv_handle_t *)&st.sighup, NULL);
  if (st.draining) uv_close((uv_handle_t *)&st.drain, NULL);
  uvrc = sb_cli_loop_drain(&st.loop);

  if (uvrc != 0)
    SB_WARN("cli", "event loop not closed cleanly: %s", uv_strerror(uvrc));
  sb_log_stop();
  sb_config_free(&cfg);
  return exit_code;
}

/* ---- check -------------------------------------------------------------- */

/* A string as YAML: a JSON string is a YAML double-quoted scalar. */
static void print_str(FILE *out, const char *indent, const char *key,
                      const char *value) {
  json_t *v = json_string(value ? value : "");
  char *text = v ? sb_json_dumps(v, JSON_ENCODE_ANY) : NULL;
  fprintf(out, "%s%s: %s\n", indent, key, text ? text : "\"\"");
  sb_free(text);
  json_decref(v);
}

static void print_strs(FILE *out, const char *indent, const char *key,
                       char *const *items, size_t n) {
  json_t *v = json_array();
  for (size_t i = 0; v && i < n; i++)
    json_array_append_new(v, json_string(items[i]));
  char *text = v ? sb_json_dumps(v, JSON_COMPACT) : NULL;
  fprintf(out, "%s%s: %s\n", indent, key, text ? text : "[]");
  sb_free(text);
  json_decref(v);
}

/* Print cfg as a YAML config that loads back to the same settings. */
static void print_config(FILE *out, const sb_config *cfg) {
  fprintf(out, "server:\n");
  if (cfg->listen_port && strchr(cfg->listen_host, ':'))
    fprintf(out, "  listen: \"[%s]:%d\"\n", cfg->listen_host, cfg->listen_port);
  else if (cfg->listen_port)
    fprintf(out, "  listen: %s:%d\n", cfg->listen_host, cfg->listen_port);
  else
    fprintf(out, "  # listen: not set (use --stdio or --listen)\n");
  fprintf(out, "  allowed_origins: [");
  for (size_t i = 0; i < cfg->allowed_origins_len; i++)
    fprintf(out, "%s\"%s\"", i ? ", " : "", cfg->allowed_origins[i]);
  fprintf(out, "]\n");
  int level = cfg->log_level >= 0 && cfg->log_level < 5 ? cfg->log_level : 1;
  fprintf(out, "  log_level: %s\n", level_names[level]);
  fprintf(out, "  log_format: %s\n",
          cfg->log_format == SB_LOG_JSON ? "json" : "text");
  fprintf(out, "  shutdown_grace_ms: %d\n", cfg->shutdown_grace_ms);
  if (cfg->tls_cert_file || cfg->tls_key_file) {
    fprintf(out, "  tls:\n");
    print_str(out, "    ", "cert_file", cfg->tls_cert_file);
    print_str(out, "    ", "key_file", cfg->tls_key_file);
  }
  fprintf(out, "limits:\n");
  fprintf(out, "  max_message_bytes: %zu\n", cfg->max_message_bytes);
  fprintf(out, "  max_json_depth: %d\n", cfg->max_json_depth);
  fprintf(out, "  max_connections: %d\n", cfg->max_connections);
  fprintf(out, "  connection_memory_bytes: %zu\n",
          cfg->connection_memory_bytes);
  fprintf(out, "  connection_timeout_s: %d\n", cfg->connection_timeout_s);
  fprintf(out, "  header_timeout_s: %d\n", cfg->header_timeout_s);
  fprintf(out, "  body_timeout_s: %d\n", cfg->body_timeout_s);
  fprintf(out, "  send_timeout_s: %d\n", cfg->send_timeout_s);
  fprintf(out, "  max_connections_per_address: %d\n",
          cfg->max_connections_per_address);
  fprintf(out, "  connection_reserve: %d\n", cfg->connection_reserve);
  fprintf(out, "  max_stream_buffer_bytes: %zu\n",
          cfg->max_stream_buffer_bytes);
  fprintf(out, "  page_size: %d\n", cfg->page_size);
  fprintf(out, "  max_tool_name: %d\n", cfg->max_tool_name);
  fprintf(out, "  agent_busy_poll_us: %d\n", cfg->agent_busy_poll_us);
  fprintf(out, "  agent_health_interval_ms: %ld\n",
          cfg->agent_health_interval_ms);
  fprintf(out, "  agent_health_timeout_ms: %ld\n",
          cfg->agent_health_timeout_ms);
  fprintf(out, "  max_listen_uris: %d\n", cfg->max_listen_uris);
  fprintf(out, "  max_listen_streams_per_tenant: %d\n",
          cfg->max_listen_streams_per_tenant);
  fprintf(out, "  max_runs: %d\n", cfg->max_runs);
  fprintf(out, "  max_runs_per_tenant: %d\n", cfg->max_runs_per_tenant);
  fprintf(out, "sessions:\n");
  fprintf(out, "  idle_timeout_s: %d\n", cfg->session_idle_timeout_s);
  fprintf(out, "  replay_events: %d\n", cfg->replay_events);
  fprintf(out, "  max: %d\n", cfg->max_sessions);
  fprintf(out, "  max_per_tenant: %d\n", cfg->max_sessions_per_tenant);
  fprintf(out, "cache:\n");
  fprintf(out, "  ttl_ms: %ld\n", cfg->cache_ttl_ms);
  fprintf(out, "store:\n");
  print_str(out, "  ", "path", cfg->store_path);
  fprintf(out, "  max_pending: %d\n", cfg->store_max_pending);
  fprintf(out, "  readers: %d\n", cfg->store_readers);
  fprintf(out, "  takeover_interval_ms: %d\n", cfg->store_takeover_interval_ms);
  fprintf(out, "  check_on_start: %s\n",
          cfg->store_check_on_start == 1   ? "always"
          : cfg->store_check_on_start == 2 ? "never"
                                           : "auto");
  fprintf(out, "contexts:\n");
  fprintf(out, "  default_ttl_s: %ld\n", cfg->ctx_default_ttl_s);
  fprintf(out, "  snapshot_every: %d\n", cfg->ctx_snapshot_every);
  fprintf(out, "  max_bytes: %zu\n", cfg->ctx_max_bytes);
  fprintf(out, "  sweep_interval_s: %d\n", cfg->ctx_sweep_interval_s);
  fprintf(out, "  head_cache_bytes: %zu\n", cfg->ctx_head_cache_bytes);
  fprintf(out, "events:\n");
  fprintf(out, "  retention_s: %ld\n", cfg->events_retention_s);
  fprintf(out, "  max_data_bytes: %zu\n", cfg->events_max_data_bytes);
  fprintf(out, "auth:\n");
  fprintf(out, "  default_tenant: %s\n", cfg->default_tenant);
  /* tokens are secrets: shown as a count, never printed */
  fprintf(out, "  # tenants: %zu configured (tokens not shown)\n",
          cfg->tenants_len);
  if (cfg->admin_tenants_len)
    print_strs(out, "  ", "admin_tenants", cfg->admin_tenants,
               cfg->admin_tenants_len);
  if (cfg->oauth_issuer) {
    fprintf(out, "  oauth:\n");
    print_str(out, "    ", "issuer", cfg->oauth_issuer);
    print_str(out, "    ", "resource", cfg->oauth_resource);
    print_str(out, "    ", "jwks_file", cfg->oauth_jwks_file);
    print_strs(out, "    ", "authorization_servers",
               cfg->oauth_authorization_servers,
               cfg->oauth_authorization_servers_len);
    print_strs(out, "    ", "scopes_supported", cfg->oauth_scopes_supported,
               cfg->oauth_scopes_supported_len);
    fprintf(out, "    leeway_s: %d\n", cfg->oauth_leeway_s);
    print_str(out, "    ", "tenant_claim",
              cfg->oauth_tenant_claim ? cfg->oauth_tenant_claim : "tenant");
    if (cfg->oauth_scope_claim)
      print_str(out, "    ", "scope_claim", cfg->oauth_scope_claim);
  }
  if (cfg->llm_base_url) {
    fprintf(out, "llm:\n");
    print_str(out, "  ", "base_url", cfg->llm_base_url);
    print_str(out, "  ", "api_key_env",
              cfg->llm_api_key_env ? cfg->llm_api_key_env : "OPENAI_API_KEY");
    fprintf(out, "  timeout_ms: %ld\n", cfg->llm_timeout_ms);
  }
  fprintf(out, "quotas:\n");
  fprintf(out, "  requests_per_second: %d\n", cfg->quota_rate_per_s);
  fprintf(out, "  burst: %d\n", cfg->quota_burst);
  fprintf(out, "  max_concurrent_calls: %d\n", cfg->quota_max_concurrent);
  if (cfg->quota_tenants_len) {
    fprintf(out, "  tenants:\n");
    for (size_t i = 0; i < cfg->quota_tenants_len; i++) {
      /* A key the file left out (-1) takes the value above: left out. */
      const sb_config_quota *q = &cfg->quota_tenants[i];
      const char *names[] = {"requests_per_second", "burst",
                             "max_concurrent_calls"};
      int values[] = {q->rate_per_s, q->burst, q->max_concurrent};
      int n = 0;
      fprintf(out, "    %s: {", q->tenant);
      for (int k = 0; k < 3; k++)
        if (values[k] >= 0)
          fprintf(out, "%s%s: %d", n++ ? ", " : "", names[k], values[k]);
      fprintf(out, "}\n");
    }
  }
  if (cfg->agents) {
    /* JSON is YAML's flow style: this loads back unchanged, but for the
     * agents' credentials (header and env values, the URL's password and
     * secret query values), not shown, as the tenants' tokens are not. */
    json_t *shown = json_deep_copy(cfg->agents);
    size_t i;
    json_t *def;
    json_array_foreach(shown, i, def) sb_agent_def_json_redact(def);
    char *agents =
        shown ? sb_json_dumps(shown, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                         JSON_REAL_PRECISION(15))
              : NULL;
    json_decref(shown);
    fprintf(out, "agents: %s\n", agents ? agents : "[]");
    sb_free(agents);
  }
  if (cfg->servers) {
    char *servers =
        sb_json_dumps(cfg->servers, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fprintf(out, "servers: %s\n", servers ? servers : "[]");
    sb_free(servers);
  }
}

static void warn_reference(void *ud, const char *line) {
  (void)ud;
  sb_cli_eprintf("switchboard: warning: %s\n", line);
}

static int cmd_check(int argc, char **argv) {
  serve_args a = {0};
  sb_config cfg;
  sb_error err = {0};
  int rc = parse_args("check", argc, argv, 0, &a);
  if (rc != 0) return rc;
  if (a.help) {
    fputs(check_help, stdout);
    return EXIT_OK;
  }
  if (!a.config_path)
    return sb_cli_usage_error("check", "%s", "missing --config FILE");
  sb_config_defaults(&cfg);
  if (sb_config_load(&cfg, a.config_path, &err) != 0) {
    sb_cli_eprintf("switchboard: %s\n", err.msg);
    sb_config_free(&cfg);
    return EXIT_USAGE;
  }
  /* The agents' definitions, as serve reads them. */
  if ((rc = sb_cli_agents_registry(&cfg, a.config_path, NULL, NULL)) != 0) {
    sb_config_free(&cfg);
    return rc;
  }
  /* The workflows and the virtual servers too, as serve reads them, and
   * the TLS and JWKS files serve would stop on. */
  sb_flow_defs defs;
  if ((rc = check_definitions(&cfg, &defs)) != 0) {
    sb_config_free(&cfg);
    return rc;
  }
  if ((rc = check_files(&cfg)) != 0) {
    sb_flow_defs_clear(&defs);
    sb_config_free(&cfg);
    return rc;
  }
  sb_app_unknown_references(&cfg, &defs, warn_reference, NULL);
  sb_app_missing_commands(&cfg, warn_reference, NULL);
  fprintf(stdout, "# %s: ok\n", a.config_path);
  print_config(stdout, &cfg);
  /* Workflows as comments: their files are named relative to the config,
   * so the settings above load back the same from anywhere. */
  for (size_t i = 0; i < defs.len; i++)
    fprintf(stdout, "# workflow %s: %zu steps, from %s\n",
            defs.items[i]->name, defs.items[i]->nsteps, defs.items[i]->file);
  sb_flow_defs_clear(&defs);
  sb_config_free(&cfg);
  return EXIT_OK;
}

/* A closed stdin, stdout or stderr (`2>&-`, a supervisor that closes
 * them) is the number the next open() gets: an agent's pipe, a client's
 * socket or the store file would then take every log line. Each is held
 * by /dev/null instead. */
static void hold_std_fds(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (n >= 0 && n != fd) {
      dup2(n, fd);
      close(n);
    }
  }
}

/* jemalloc (linked in the Release build) purges freed pages only as
 * allocations go on, unless it has its background thread: without it an
 * idle server keeps the peak of a burst (sessions expired, streams
 * closed) resident for good. Read by jemalloc at its initialisation;
 * MALLOC_CONF still overrides it. Unused under glibc's malloc. */
#ifdef SB_WITH_JEMALLOC
const char *malloc_conf = "background_thread:true,max_background_threads:1";
#endif

int main(int argc, char **argv) {
  /* Before anything else: switchboard may be starting an agent (the exec
   * shim, see net/child.c); then this does not return. */
  sb_child_shim_main(argc, argv);
  hold_std_fds();
  sb_core_init();
  if (argc < 2) {
    fputs(main_help, stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  int version = strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0;
  if ((version || sb_cli_is_help(cmd)) && argc > 2)
    return sb_cli_usage_error(NULL, "unexpected argument '%s'", argv[2]);
  if (sb_cli_is_help(cmd)) {
    fputs(main_help, stdout);
    return EXIT_OK;
  }
  if (version) {
    printf("switchboard %s\n", SB_VERSION);
    return EXIT_OK;
  }
  if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 2, argv + 2);
  if (strcmp(cmd, "check") == 0) return cmd_check(argc - 2, argv + 2);
  if (strcmp(cmd, "context") == 0) return sb_cli_context(argc - 2, argv + 2);
  if (strcmp(cmd, "agents") == 0) return sb_cli_agents(argc - 2, argv + 2);
  if (strcmp(cmd, "run") == 0) return sb_cli_run(argc - 2, argv + 2);
  if (strcmp(cmd, "demo") == 0) return sb_cli_demo(argc - 2, argv + 2);
  if (strcmp(cmd, "runs") == 0) return sb_cli_runs(argc - 2, argv + 2);
  if (strcmp(cmd, "tenant") == 0) return sb_cli_tenant(argc - 2, argv + 2);
  if (strcmp(cmd, "key") == 0) return sb_cli_key(argc - 2, argv + 2);
  if (strcmp(cmd, "help") == 0) {
    if (argc > 3)
      return sb_cli_usage_error("help", "unexpected argument '%s'", argv[3]);
    if (argc == 2 || sb_cli_is_help(argv[2])) {
      fputs(main_help, stdout);
    } else if (strcmp(argv[2], "serve") == 0) {
      fputs(serve_help, stdout);
    } else if (strcmp(argv[2], "check") == 0) {
      fputs(check_help, stdout);
    } else if (strcmp(argv[2], "context") == 0) {
      fputs(sb_cli_context_help, stdout);
    } else if (strcmp(argv[2], "agents") == 0) {
      fputs(sb_cli_agents_help, stdout);
    } else if (strcmp(argv[2], "run") == 0) {
      fputs(sb_cli_run_help, stdout);
    } else if (strcmp(argv[2], "demo") == 0) {
      fputs(sb_cli_demo_help, stdout);
    } else if (strcmp(argv[2], "runs") == 0) {
      fputs(sb_cli_runs_help, stdout);
    } else if (strcmp(argv[2], "tenant") == 0) {
      fputs(sb_cli_tenant_help, stdout);
    } else if (strcmp(argv[2], "key") == 0) {
      fputs(sb_cli_key_help, stdout);
    } else if (strcmp(argv[2], "help") == 0) {
      fputs(main_help, stdout);
    } else {
      /* Not "Try 'switchboard help --help'": the list of commands is in
       * the main help. */
      sb_cli_eprintf("switchboard help: unknown command '%s'\n"
                     "Try 'switchboard --help' for the list of commands.\n",
                     argv[2]);
      return EXIT_USAGE;
    }
    return EXIT_OK;
  }
  if (cmd[0] == '-') return sb_cli_usage_error(NULL, "unknown option '%s'", cmd);
  return sb_cli_usage_error(NULL, "unknown command '%s'", cmd);
}
