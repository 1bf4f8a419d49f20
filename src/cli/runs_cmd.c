/* runs_cmd.c: `switchboard runs list|get|events`, reading workflow runs and
 * their events straight from the store a server writes (as `context get`
 * does), and the dispatch of `runs cancel|answer|resume|fork`, which a
 * running server performs (runs_rest.c): only the process that owns a run
 * may change it. Also the printing of a run that `run` shares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "events/events.h"
#include "flow/flow.h"
#include "store/store.h"

const char sb_cli_runs_help[] =
    "Usage:\n"
    "  switchboard runs list [--status S] [--limit N] [--json] STORE\n"
    "  switchboard runs get ID [--json] STORE\n"
    "  switchboard runs events ID [--json] STORE\n"
    "  switchboard runs cancel ID [--reason TEXT] [--json] SERVER\n"
    "  switchboard runs answer ID --answer JSON [--step S] [--json] SERVER\n"
    "  switchboard runs resume ID [--json] SERVER\n"
    "  switchboard runs fork ID --step S [--json] SERVER\n"
    "\n"
    "STORE is --config FILE or --store PATH (and --tenant T); SERVER is\n"
    "--url URL (and --token T), or $SWITCHBOARD_URL ($SWITCHBOARD_TOKEN),\n"
    "or the server.listen of --config FILE.\n"
    "\n"
    "list, get and events read the store (a server may be running on it):\n"
    "the runs newest first, one run with its history, the events of a run.\n"
    "cancel, answer, resume and fork ask the server that runs the workflow,\n"
    "over its REST API (/v1/runs/ID/ACTION), and print the run it answers.\n"
    "\n"
    "Options:\n"
    "  --config FILE     read store.path and auth.default_tenant from FILE\n"
    "  --store PATH      the SQLite file (overrides store.path)\n"
    "  --tenant T        whose runs (overrides auth.default_tenant)\n"
    "  --status S        running, waiting, completed, failed or cancelled\n"
    "  --limit N         list at most N runs (default 50)\n"
    "  --url URL         the server, http://HOST:PORT (default:\n"
    "                    $SWITCHBOARD_URL, else server.listen of --config)\n"
    "  --token T         its bearer token (default: $SWITCHBOARD_TOKEN)\n"
    "  --answer JSON     the answer to the ask step (an object when its\n"
    "                    schema is one)\n"
    "  --step S          answer: which ask step; fork: from which step\n"
    "  --reason TEXT     cancel: why (kept in the run)\n"
    "  --json            print JSON\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 done, 1 not found, refused or unreachable, 2 usage.\n";

/* ---- printing a run ------------------------------------------------------ */

const char *sb_cli_printable(const char *in, size_t len, char *out,
                             size_t cap) {
  sb_escape_controls(in, len, out, cap, 0);
  return out;
}

/* A member to print, as text for a terminal (what an agent or a workflow
 * wrote may hold an escape sequence that retitles it or clears it): "-"
 * when it is missing or no string (a run read from a store another
 * version wrote, say), never a NULL for %s. The last few answers stay
 * valid together, for one line's fprintf. */
static const char *str(const json_t *o, const char *key) {
  static char ring[8][4096];
  static unsigned next;
  json_t *v = json_object_get(o, key);
  if (!json_is_string(v)) return "-";
  char *buf = ring[next++ % 8];
  return sb_cli_printable(json_string_value(v), json_string_length(v), buf,
                          sizeof ring[0]);
}

#define RUN_PRINT_ENDS 10

void sb_cli_run_print(FILE *out, const json_t *run, int as_json) {
  if (as_json) {
    char *text = sb_json_dumps(run, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text) fprintf(out, "%s\n", text);
    sb_free(text);
    return;
  }
  fprintf(out, "run %s: %s\n", str(run, "id"), str(run, "status"));
  fprintf(out, "  workflow  %s\n", str(run, "workflow"));
  json_t *history = json_object_get(run, "history");
  fprintf(out, "  steps     %lld run",
          (long long)json_integer_value(json_object_get(run, "stepsRun")));
  size_t i, n = json_array_size(history);
  json_t *h;
  /* A long history (a loop) shows its first and last steps: the rest is
   * in --json, less the entries the run did not keep (historyElided). */
  size_t elided =
      (size_t)json_integer_value(json_object_get(run, "historyElided"));
  size_t ends = n > 2 * RUN_PRINT_ENDS + 1 ? RUN_PRINT_ENDS : n;
  json_array_foreach(history, i, h) {
    if (i == ends && n - i > ends) {
      fprintf(out, ", ... %zu more ...", n - 2 * ends + elided);
      i = n - ends;
      h = json_array_get(history, i);
    }
    fprintf(out, "%s%s (%s)", i ? ", " : ": ", str(h, "step"),
            str(h, "status"));
  }
  fputc('\n', out);
  json_t *current = json_object_get(run, "current");
  if (json_array_size(current)) {
    fprintf(out, "  current  ");
    json_array_foreach(current, i, h) {
      char step[256];
      fprintf(out, " %s",
              json_is_string(h) ? sb_cli_printable(json_string_value(h),
                                                   json_string_length(h), step,
                                                   sizeof step)
                                : "-");
    }
    fputc('\n', out);
  }
  json_array_foreach(json_object_get(run, "waiting"), i, h) {
    int has_message = json_is_string(json_object_get(h, "message"));
    fprintf(out, "  waiting   %s (%s)%s%s\n", str(h, "step"), str(h, "kind"),
            has_message ? ": " : "", has_message ? str(h, "message") : "");
  }
  fprintf(
      out, "  context   %s (version %lld)\n", str(run, "contextId"),
      (long long)json_integer_value(json_object_get(run, "contextVersion")));
  json_t *error = json_object_get(run, "error");
  if (error)
    fprintf(out, "  error     at step %s: %s\n", str(error, "step"),
            str(error, "message"));
}

/* ---- reading the store --------------------------------------------------- */

typedef struct runs_read {
  uv_loop_t loop;
  int done, rc;
  sb_error err;
  sb_store_runs runs;
  sb_store_event_rows events;
} runs_read;

static void on_read(void *ud, sb_store_result *res) {
  runs_read *r = ud;
  r->done = 1;
  r->rc = res->rc;
  r->err = res->err;
  sb_store_runs_clear(&r->runs);
  sb_store_event_rows_clear(&r->events);
  r->runs = res->runs; /* taken */
  memset(&res->runs, 0, sizeof res->runs);
  r->events = res->events;
  memset(&res->events, 0, sizeof res->events);
}

/* Run one submitted store operation to its end. */
static int wait_read(runs_read *r, int submitted, sb_error *err) {
  if (submitted != 0)
    return sb_error_set(err, submitted, "the store refused the read (%s)",
                        sb_strerror(submitted));
  while (!r->done && uv_run(&r->loop, UV_RUN_ONCE) != 0) {
  }
  if (!r->done) return sb_error_set(err, SB_EIO, "the store never answered");
  r->done = 0;
  if (r->rc != 0) {
    *err = r->err;
    return r->rc;
  }
  return 0;
}

static void print_list(const sb_store_runs *runs, int as_json) {
  json_t *list = json_array();
  for (size_t i = 0; i < runs->len; i++) {
    json_t *v = sb_flow_run_view(runs->items[i].doc, 1);
    if (v) json_array_append_new(list, v);
  }
  if (as_json) {
    sb_cli_run_print(stdout, list, 1);
  } else if (!json_array_size(list)) {
    printf("no runs\n");
  } else {
    printf("%-36s  %-9s  %-24s  %-6s  %s\n", "ID", "STATUS", "WORKFLOW",
           "STEPS", "UPDATED");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
      char when[32];
      sb_time_format(json_integer_value(json_object_get(v, "updatedAt")), when);
      printf("%-36s  %-9s  %-24s  %-6lld  %s\n", str(v, "id"), str(v, "status"),
             str(v, "workflow"),
             (long long)json_integer_value(json_object_get(v, "stepsRun")),
             when);
    }
  }
  json_decref(list);
}

static void print_events(const sb_store_event_rows *rows, int as_json) {
  json_t *list = json_array();
  for (size_t i = 0; i < rows->len; i++) {
    const sb_store_event_row *e = &rows->items[i];
    sb_event ev = {.seq = e->seq,
                   .created_ms = e->created_ms,
                   .type = e->type,
                   .run_id = e->run_id,
                   .data = e->data};
    json_t *j = sb_event_json(&ev);
    if (j) json_array_append_new(list, j);
  }
  if (as_json) {
    sb_cli_run_print(stdout, list, 1);
  } else {
    for (size_t i = 0; i < rows->len; i++) {
      const sb_store_event_row *e = &rows->items[i];
      char when[32];
      sb_time_format(e->created_ms, when);
      printf("%6lld  %s  %-16s %s\n", (long long)e->seq, when, e->type,
             e->data);
    }
  }
  json_decref(list);
}

typedef struct runs_args {
  const char *config, *store, *tenant, *status, *limit, *url, *token, *answer,
      *step, *reason;
  const char *pos[3];
  int npos, as_json;
} runs_args;

static int parse(int argc, char **argv, runs_args *a) {
  static const char *const names[] = {
      "--config", "--store", "--tenant", "--status", "--limit",
      "--url",    "--token", "--answer", "--step",   "--reason"};
  const char **const slots[] = {&a->config, &a->store,  &a->tenant,
                                &a->status, &a->limit,  &a->url,
                                &a->token,  &a->answer, &a->step,
                                &a->reason};
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      a->as_json = 1;
      continue;
    }
    int rc = sb_cli_take_option("runs", argc, argv, &i, names, slots,
                                sizeof names / sizeof names[0]);
    if (rc < 0) return EXIT_USAGE;
    if (rc) continue;
    if (argv[i][0] == '-')
      return sb_cli_usage_error("runs", "unknown option '%s'", argv[i]);
    if (a->npos == 3)
      return sb_cli_usage_error("runs", "unexpected argument '%s'", argv[i]);
    a->pos[a->npos++] = argv[i];
  }
  return 0;
}

static int read_store(const runs_args *a, const char *verb) {
  if (a->url || a->token || a->answer || a->step || a->reason)
    return sb_cli_usage_error("runs", "%s",
                              "--url, --token, --answer, --step and --reason "
                              "are for cancel, answer, resume and fork");
  if (!a->config && !a->store)
    return sb_cli_usage_error("runs", "%s",
                              "give --config FILE or --store PATH");
  int is_list = strcmp(verb, "list") == 0;
  if (a->npos != (is_list ? 1 : 2))
    return sb_cli_usage_error("runs", "%s",
                              is_list ? "list takes no argument"
                                      : "expected one run ID");
  if (a->status && !sb_flow_status_of(a->status))
    return sb_cli_usage_error("runs",
                              "--status: one of running, waiting, "
                              "completed, failed, cancelled (got '%s')",
                              a->status);
  int64_t limit = 50;
  if (a->limit) {
    if (sb_parse_digits(a->limit, strlen(a->limit), &limit) != 0 ||
        limit < 1 || limit > 1000)
      return sb_cli_usage_error("runs", "--limit: an integer from 1 to 1000%s",
                                "");
  }
  sb_config cfg;
  sb_error err = {0};
  sb_config_defaults(&cfg);
  int rc = EXIT_USAGE;
  if ((a->config && sb_config_load(&cfg, a->config, &err) != 0) ||
      (a->store && sb_config_set_store_path(&cfg, a->store, &err) != 0) ||
      (a->tenant && sb_config_set_default_tenant(&cfg, a->tenant, &err) != 0)) {
    sb_cli_eprintf("switchboard runs: %s\n", err.msg);
    sb_config_free(&cfg);
    return EXIT_USAGE;
  }
  runs_read r;
  memset(&r, 0, sizeof r);
  sb_store *st = NULL;
  rc = EXIT_RUNTIME;
  if (uv_loop_init(&r.loop) != 0) {
    sb_cli_eprintf("switchboard runs: cannot create an event loop\n");
    sb_config_free(&cfg);
    return EXIT_RUNTIME;
  }
  /* Reading: a store that is not there is an error, not an empty list. */
  sb_store_options so = {
      .path = cfg.store_path,
      .loop = &r.loop,
      .readers = 1,
      .must_exist = 1,
      .check = (sb_store_check)cfg.store_check_on_start};
  if (!(st = sb_store_open_sqlite(&so, &err))) {
    sb_cli_eprintf("switchboard runs: %s\n", err.msg);
    goto done;
  }
  const char *tenant = cfg.default_tenant, *id = a->pos[1];
  int failed;
  if (is_list) {
    failed = wait_read(&r,
                       sb_store_run_list(st, tenant, a->status, NULL,
                                         (size_t)limit, on_read, &r),
                       &err);
    if (!failed) print_list(&r.runs, a->as_json);
  } else if (strcmp(verb, "get") == 0) {
    failed = wait_read(&r, sb_store_run_get(st, tenant, id, on_read, &r), &err);
    json_t *v = failed ? NULL : sb_flow_run_view(r.runs.items[0].doc, 0);
    if (!failed && !v)
      failed = sb_error_set(&err, SB_EIO,
                            "run %s: the stored state is "
                            "unreadable",
                            id);
    if (v) sb_cli_run_print(stdout, v, a->as_json);
    json_decref(v);
  } else {
    /* The run first: an unknown id is an error, not an empty list. */
    failed = wait_read(&r, sb_store_run_get(st, tenant, id, on_read, &r), &err);
    sb_store_event_rows all = {0};
    int64_t since = 0;
    while (!failed) {
      sb_store_event_rows_clear(&r.events);
      failed = wait_read(
          &r, sb_store_events_read(st, tenant, since, id, 500, 0, on_read,
                                   &r),
          &err);
      if (failed || r.events.len == 0) break;
      sb_store_event_row *grown =
          sb_realloc(all.items, (all.len + r.events.len) * sizeof *grown);
      if (!grown) {
        failed = sb_error_set(&err, SB_ENOMEM, "out of memory");
        break;
      }
      all.items = grown;
      memcpy(all.items + all.len, r.events.items, r.events.len * sizeof *grown);
      all.len += r.events.len;
      since = r.events.items[r.events.len - 1].seq;
      sb_free(r.events.items); /* the rows' strings moved to `all` */
      memset(&r.events, 0, sizeof r.events);
    }
    if (!failed) print_events(&all, a->as_json);
    sb_store_event_rows_clear(&all);
  }
  if (failed) {
    sb_cli_eprintf("switchboard runs: %s\n", err.msg);
    goto done;
  }
  rc = EXIT_OK;
done:
  sb_store_runs_clear(&r.runs);
  sb_store_event_rows_clear(&r.events);
  sb_store_close(st);
  uv_run(&r.loop, UV_RUN_DEFAULT); /* let the store's handle close */
  uv_loop_close(&r.loop);
  sb_config_free(&cfg);
  return rc;
}

int sb_cli_runs(int argc, char **argv) {
  runs_args a;
  memset(&a, 0, sizeof a);
  for (int i = 0; i < argc; i++)
    if (sb_cli_is_help(argv[i])) {
      fputs(sb_cli_runs_help, stdout);
      return EXIT_OK;
    }
  if (parse(argc, argv, &a) != 0) return EXIT_USAGE;
  if (a.npos == 0)
    return sb_cli_usage_error("runs", "%s",
                              "expected list, get, events, "
                              "cancel, answer, resume or fork");
  const char *verb = a.pos[0];
  if (!strcmp(verb, "list") || !strcmp(verb, "get") || !strcmp(verb, "events"))
    return read_store(&a, verb);
  if (!strcmp(verb, "cancel") || !strcmp(verb, "answer") ||
      !strcmp(verb, "resume") || !strcmp(verb, "fork")) {
    if (a.npos != 2)
      return sb_cli_usage_error("runs", "%s", "expected one run ID");
    if (a.store || a.tenant || a.status || a.limit)
      return sb_cli_usage_error("runs", "%s",
                                "--store, --tenant, --status and --limit are "
                                "for list, get and events (the server takes "
                                "the tenant from --token)");
    const char *url = a.url ? a.url : getenv("SWITCHBOARD_URL");
    char from_config[300] = "";
    if ((!url || !*url) && a.config) { /* the server the config describes */
      sb_config cfg;
      sb_error err = {0};
      sb_config_defaults(&cfg);
      if (sb_config_load(&cfg, a.config, &err) != 0) {
        sb_cli_eprintf("switchboard runs: %s\n", err.msg);
        sb_config_free(&cfg);
        return EXIT_USAGE;
      }
      if (cfg.listen_port)
        snprintf(from_config, sizeof from_config,
                 strchr(cfg.listen_host, ':') ? "http://[%s]:%d"
                                              : "http://%s:%d",
                 cfg.listen_host, cfg.listen_port);
      sb_config_free(&cfg);
      url = from_config;
    }
    /* The token goes into a header line as it is: a line break in it (a
     * token file's CRLF) added headers of its own, or ended the headers. */
    const char *token = a.token ? a.token : getenv("SWITCHBOARD_TOKEN");
    for (const char *p = token; p && *p; p++)
      if ((unsigned char)*p < ' ' || *p == 0x7f)
        return sb_cli_usage_error("runs",
                                  "%s holds a control character (a line "
                                  "break?): a bearer token is one line",
                                  a.token ? "--token" : "SWITCHBOARD_TOKEN");
    sb_cli_runs_action act = {.verb = verb,
                              .id = a.pos[1],
                              .url = url,
                              .token = token,
                              .answer = a.answer,
                              .step = a.step,
                              .reason = a.reason,
                              .as_json = a.as_json};
    return sb_cli_runs_rest(&act);
  }
  return sb_cli_usage_error("runs", "unknown subcommand '%s'", verb);
}
