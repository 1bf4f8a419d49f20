/* run_cmd.c: `switchboard run WORKFLOW --config FILE`, a workflow run to
 * its end inside this process.
 *
 * The command assembles an embedded app (store, contexts, events, the
 * config's agents and the flow engine; no transport, and runs other
 * processes left in the store are not resumed: a server may own them),
 * starts one run and follows its events from the seq the start wrote;
 * after each event it reads the run and shows the steps its history adds
 * (run_progress.c: branch, emit and end steps have no event of their own)
 * with the events' lines among them, one read at a time. An `ask` step is
 * put to the person at the terminal (stdin read on the loop, so parallel
 * steps go on meanwhile); without a terminal the run is left waiting in
 * the store and the command says how to answer it. The run, as stored at
 * the end, goes to stdout. Ctrl-C cancels the run and exits once the
 * cancellation is durable.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app.h"
#include "cli/cli.h"
#include "cli/run_progress.h"
#include "config/config.h"
#include "events/events.h"
#include "flow/flow.h"
#include "net/net.h"


const char sb_cli_run_help[] =
    "Usage: switchboard run WORKFLOW --config FILE [--input FILE|-]\n"
    "                       [--context-id ID] [--tenant T] [--json]\n"
    "\n"
    "Run the workflow WORKFLOW of the config to its end in this process,\n"
    "with the config's store and agents (no server needed; runs a server\n"
    "left in the store are not touched). Each step the run executes is\n"
    "shown on stderr with the time since the run started (a long loop's\n"
    "steps its history no longer keeps are counted on one line); at the\n"
    "end the run is printed on stdout: a short summary, or the run as\n"
    "JSON.\n"
    "\n"
    "An `ask` step is asked at the terminal (its message, then each field\n"
    "of its schema). When stdin is not a terminal the run is left waiting\n"
    "in the store: answer it with `switchboard runs answer` against a\n"
    "server on that store. Ctrl-C cancels the run.\n"
    "\n"
    "Options:\n"
    "  --config FILE      the config with the workflows: and agents:\n"
    "  --input FILE|-     JSON {\"context\": {...}, \"variables\": {...}}: "
    "the\n"
    "                     new context's parts and the workflow variables\n"
    "  --context-id ID    run on this stored context instead of a new one\n"
    "  --store PATH       the SQLite file (overrides store.path)\n"
    "  --tenant T         whose run (overrides auth.default_tenant)\n"
    "  --json             print the run as JSON\n"
    "  -h, --help         show this help and exit\n"
    "\n"
    "Exit status: 0 completed, 1 failed, cancelled or left waiting,\n"
    "2 usage or config error (bad input, unknown workflow), 130 after\n"
    "Ctrl-C (143 after SIGTERM) once the run's cancellation is stored;\n"
    "a second Ctrl-C leaves without waiting.\n";

/* Where the command is; every callback checks it. */
typedef enum run_state {
  RS_STARTING = 1, /* sb_flow_run_start under way */
  RS_FOLLOWING,    /* the run goes on; its steps are shown */
  RS_CANCELLING,   /* Ctrl-C: the cancellation is being written */
  RS_FETCHING,     /* the run ended (or is left waiting): the last read */
  RS_DONE,         /* the loop is stopping */
} run_state;

/* The question being put to the terminal. */
typedef struct run_ask {
  char *step;
  json_t *schema; /* borrowed from `asks` */
  json_t *fields; /* [name...] of an object schema's properties, or NULL */
  size_t field;   /* the next one to ask */
  json_t *answer; /* the object being filled */
} run_ask;

typedef struct run_cli {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  uv_idle_t turn; /* a read asked for starts on the loop's next turn */
  uv_tty_t tty;
  int tty_inited, tty_reading;
  sb_app *app;
  sb_flow_engine *flow;
  sb_events *events;
  sb_events_sub *sub;
  const char *tenant;
  char run_id[64];
  run_state state;
  run_progress progress; /* what stderr shows */
  /* The run is read after events, one read at a time: the events heard
   * meanwhile ask for one more read after it, however many they are. */
  int soon;        /* a read starts on the next turn */
  int reading;     /* a read is under way */
  int showing;     /* a read's steps are being printed */
  int reread;      /* events came since that read started */
  size_t covered;  /* the held event lines the read under way covers */
  int interactive; /* stdin is a terminal: asks are asked */
  int answering;   /* an answer is being written */
  int signum;      /* the signal that cancelled the run */
  int exit_code;
  json_t *final; /* the run as printed at the end */
  json_t *asks;  /* [{step, message, schema}] not yet answered */
  run_ask ask;   /* asks[0] being asked, when ask.step */
  sb_buf line;   /* what the terminal typed so far */
} run_cli;

static void finish(run_cli *c, int exit_code) {
  c->state = RS_DONE;
  c->exit_code = exit_code;
  if (c->sub) sb_events_unsubscribe(c->sub);
  c->sub = NULL;
  if (c->tty_reading) uv_read_stop((uv_stream_t *)&c->tty);
  c->tty_reading = 0;
  uv_stop(&c->loop);
}

static int exit_for_status(const char *status) {
  return status && strcmp(status, "completed") == 0 ? EXIT_OK : EXIT_RUNTIME;
}

/* ---- asking at the terminal ---------------------------------------------- */

static void ask_next(run_cli *c);

static void ask_clear(run_cli *c) {
  sb_free(c->ask.step);
  json_decref(c->ask.fields);
  json_decref(c->ask.answer);
  memset(&c->ask, 0, sizeof c->ask);
}

static void prompt_field(run_cli *c) {
  if (!c->ask.fields) {
    fputs("  answer (JSON, or text)> ", stderr);
    return;
  }
  const char *name =
      json_string_value(json_array_get(c->ask.fields, c->ask.field));
  json_t *prop =
      json_object_get(json_object_get(c->ask.schema, "properties"), name);
  const char *type = json_string_value(json_object_get(prop, "type"));
  const char *title = json_string_value(json_object_get(prop, "title"));
  int required = 0;
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(c->ask.schema, "required"), i,
                     r) if (json_is_string(r) &&
                            strcmp(json_string_value(r), name) == 0) required =
      1;
  sb_cli_eprintf("  %s%s%s (%s%s)> ", name, title ? " - " : "",
                 title ? title : "", type ? type : "JSON",
                 required ? "" : ", Enter to skip");
}

static void on_answered(void *ud, const sb_flow_reply *r) {
  run_cli *c = ud;
  c->answering = 0;
  if (c->state != RS_FOLLOWING) return;
  if (r->rc != 0) {
    sb_cli_eprintf("switchboard run: the answer was refused: %s\n", r->err.msg);
    if (r->rc == SB_EINVAL && c->interactive) { /* ask again */
      json_decref(c->ask.answer);
      c->ask.answer = json_object();
      c->ask.field = 0;
      prompt_field(c);
      return;
    }
  }
  ask_clear(c);
  json_array_remove(c->asks, 0);
  ask_next(c);
}

/* Answer the run with `answer` (taken: the engine keeps a copy). */
static void submit(run_cli *c, json_t *answer) {
  sb_error err = {0};
  c->answering = 1;
  int rc = sb_flow_run_answer(c->flow, c->tenant, c->run_id, c->ask.step,
                              answer, on_answered, c, &err);
  json_decref(answer);
  if (rc != 0) {
    sb_flow_reply r = {.rc = err.code ? err.code : SB_EINVAL, .err = err};
    on_answered(c, &r);
  }
}

/* A value typed for a field of type `type`; NULL if it does not fit. */
static json_t *typed_value(const char *type, const char *text) {
  char *end = NULL;
  if (type && strcmp(type, "string") == 0) return json_string(text);
  if (type && strcmp(type, "integer") == 0) {
    long long v = strtoll(text, &end, 10);
    return *text && end && !*end ? json_integer(v) : NULL;
  }
  if (type && strcmp(type, "number") == 0) {
    double v = strtod(text, &end);
    return *text && end && !*end ? json_real(v) : NULL;
  }
  if (type && strcmp(type, "boolean") == 0) {
    if (!strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "y"))
      return json_true();
    if (!strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "n"))
      return json_false();
    return NULL;
  }
  json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
  return v ? v : json_string(text);
}

static void on_line(run_cli *c, const char *text) {
  if (!c->ask.step || c->answering) return; /* typed ahead of a question */
  if (!c->ask.fields) {
    submit(c, typed_value(NULL, text));
    return;
  }
  const char *name =
      json_string_value(json_array_get(c->ask.fields, c->ask.field));
  json_t *prop =
      json_object_get(json_object_get(c->ask.schema, "properties"), name);
  const char *type = json_string_value(json_object_get(prop, "type"));
  if (*text) {
    json_t *v = typed_value(type, text);
    if (!v) {
      sb_cli_eprintf("  expected %s %s\n",
                     type && strchr("aeiou", type[0]) ? "an" : "a", type);
      prompt_field(c);
      return;
    }
    json_object_set_new(c->ask.answer, name, v);
  }
  if (++c->ask.field < json_array_size(c->ask.fields)) {
    prompt_field(c);
    return;
  }
  submit(c, json_incref(c->ask.answer));
  json_decref(c->ask.answer);
  c->ask.answer = json_object();
}

static void tty_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char mem[4096];
  buf->base = mem;
  buf->len = sizeof mem;
}

static void leave_waiting(run_cli *c, const char *step, const char *message,
                          const char *why);

static void tty_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  run_cli *c = s->data;
  if (n < 0) { /* end of input: nobody will answer here */
    uv_read_stop(s);
    c->tty_reading = 0;
    c->interactive = 0; /* the next question is left waiting */
    if (c->state == RS_FOLLOWING && c->ask.step && !c->answering)
      leave_waiting(c, c->ask.step, NULL, "stdin closed");
    return;
  }
  sb_buf_append(&c->line, buf->base, (size_t)n);
  char *nl;
  while (c->line.len && (nl = memchr(c->line.data, '\n', c->line.len))) {
    size_t len = (size_t)(nl - c->line.data);
    char *text = sb_strndup(c->line.data, len);
    sb_buf_consume(&c->line, len + 1);
    if (text) {
      size_t k = strlen(text);
      while (k && (text[k - 1] == '\r' || text[k - 1] == ' '))
        text[--k] = '\0';
      on_line(c, text);
    }
    sb_free(text);
  }
}

/* Put asks[0] to the terminal, or go on following the run. */
static void ask_next(run_cli *c) {
  json_t *q = json_array_get(c->asks, 0);
  if (!q || c->state != RS_FOLLOWING || c->ask.step) return;
  const char *step = json_string_value(json_object_get(q, "step"));
  const char *message = json_string_value(json_object_get(q, "message"));
  if (!c->interactive) {
    leave_waiting(c, step, message,
                  c->tty_inited ? "stdin closed" : "stdin is not a terminal");
    return;
  }
  c->ask.step = sb_strdup(step);
  c->ask.schema = json_object_get(q, "schema");
  c->ask.answer = json_object();
  json_t *props = json_object_get(c->ask.schema, "properties");
  if (json_is_object(props) && json_object_size(props)) {
    c->ask.fields = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v)
        json_array_append_new(c->ask.fields, json_string(k));
  }
  sb_cli_eprintf("\n  step %s asks: %s\n", step, message ? message : "");
  prompt_field(c);
  if (!c->tty_reading &&
      uv_read_start((uv_stream_t *)&c->tty, tty_alloc, tty_read) == 0)
    c->tty_reading = 1;
}

static void queue_ask(run_cli *c, const char *step, const json_t *message,
                      const json_t *schema) {
  json_array_append_new(c->asks,
                        json_pack("{sssOsO}", "step", step, "message",
                                  message ? message : json_null(), "schema",
                                  schema ? schema : json_null()));
  ask_next(c);
}

/* A held ask step's start was shown: put it to the terminal. */
static void on_ask(void *ud, const char *step, const json_t *message,
                   const json_t *schema) {
  run_cli *c = ud;
  if (c->state == RS_FOLLOWING) queue_ask(c, step, message, schema);
}

/* ---- reading the run ----------------------------------------------------- */

static void on_read(void *ud, const sb_flow_reply *r);

/* Print the steps `run` (NULL: none) adds and the held lines up to
 * `covered`; a read asked for meanwhile (an ask shown is left waiting:
 * the last read) starts once they are printed. */
static void show(run_cli *c, const json_t *run, size_t covered) {
  c->showing = 1;
  run_progress_show(&c->progress, run, covered);
  c->showing = 0;
}

/* Read the run: the held lines up to here are covered. */
static void read_now(run_cli *c) {
  do {
    c->reread = 0;
    c->covered = run_progress_held(&c->progress);
    sb_error err = {0};
    if (sb_flow_run_get(c->flow, c->tenant, c->run_id, on_read, c, &err) == 0) {
      c->reading = 1;
      return;
    }
    sb_cli_eprintf("switchboard run: reading run %s: %s\n", c->run_id, err.msg);
    if (c->state != RS_FOLLOWING) {
      finish(c, EXIT_RUNTIME);
      return;
    }
    /* The events' lines without the steps between them, rather than a
     * question held back until an event that may not come. */
    show(c, NULL, c->covered);
  } while (c->reread && c->state != RS_DONE);
}

static void on_turn(uv_idle_t *h) {
  run_cli *c = h->data;
  uv_idle_stop(h);
  c->soon = 0;
  if (c->state == RS_FOLLOWING || c->state == RS_FETCHING) read_now(c);
}

/* Read the run to show what it did since the last read: on the loop's
 * next turn (the events a transition wrote come together: one read for
 * them all), or once the read under way is back. When the run has ended
 * (RS_FETCHING) the read covers every event: it is the run printed at
 * the end. */
static void catch_up(run_cli *c) {
  if (c->reading || c->showing) {
    c->reread = 1;
    return;
  }
  if (!c->soon && uv_idle_start(&c->turn, on_turn) == 0) c->soon = 1;
}

static void on_read(void *ud, const sb_flow_reply *r) {
  run_cli *c = ud;
  c->reading = 0;
  /* Cancelling: the cancellation's reply shows the end. */
  if (c->state != RS_FOLLOWING && c->state != RS_FETCHING) return;
  if (r->rc != 0)
    sb_cli_eprintf("switchboard run: reading run %s: %s\n", c->run_id,
                   r->err.msg);
  show(c, r->rc == 0 ? r->run : NULL, c->covered);
  if (c->reread) {
    catch_up(c);
    return;
  }
  if (c->state != RS_FETCHING) return;
  if (r->rc != 0) {
    finish(c, EXIT_RUNTIME);
    return;
  }
  json_decref(c->final);
  c->final = json_incref(r->run);
  int code =
      exit_for_status(json_string_value(json_object_get(r->run, "status")));
  finish(c, c->exit_code ? c->exit_code : code);
}

/* ---- the end ------------------------------------------------------------- */

/* The run ended or is left as it is: the last read, then the summary. */
static void fetch_final(run_cli *c) {
  c->state = RS_FETCHING;
  if (c->sub) sb_events_unsubscribe(c->sub);
  c->sub = NULL;
  catch_up(c);
}

static void leave_waiting(run_cli *c, const char *step, const char *message,
                          const char *why) {
  sb_cli_eprintf(
      "switchboard run: run %s waits for an answer at step %s%s%s%s\n"
      "  (%s, so it cannot be asked here). The run stays waiting in the\n"
      "  store: start `switchboard serve` on it and answer with\n"
      "  `switchboard runs answer %s --answer JSON --url URL`.\n",
      c->run_id, step, message ? ": \"" : "", message ? message : "",
      message ? "\"" : "", why, c->run_id);
  c->exit_code = EXIT_RUNTIME;
  fetch_final(c);
}

static void on_cancelled(void *ud, const sb_flow_reply *r) {
  run_cli *c = ud;
  if (c->state != RS_CANCELLING) return;
  if (r->rc != 0) { /* it ended first: show how */
    sb_cli_eprintf("switchboard run: not cancelled: %s\n", r->err.msg);
    fetch_final(c);
    return;
  }
  show(c, r->run, run_progress_held(&c->progress));
  json_decref(c->final);
  c->final = json_incref(r->run);
  finish(c, 128 + c->signum);
}

static void cancel(run_cli *c) {
  c->state = RS_CANCELLING;
  if (c->sub) sb_events_unsubscribe(c->sub);
  c->sub = NULL;
  if (c->tty_reading) uv_read_stop((uv_stream_t *)&c->tty);
  c->tty_reading = 0;
  sb_cli_eprintf("\nswitchboard run: cancelling run %s...\n", c->run_id);
  sb_error err = {0};
  if (sb_flow_run_cancel(c->flow, c->tenant, c->run_id,
                         "interrupted (switchboard run)", on_cancelled, c,
                         &err) != 0) {
    sb_flow_reply r = {.rc = err.code ? err.code : SB_EIO, .err = err};
    on_cancelled(c, &r);
  }
}

static void on_signal(uv_signal_t *h, int signum) {
  run_cli *c = h->data;
  if (c->state == RS_FOLLOWING) {
    c->signum = signum;
    cancel(c);
  } else if (c->state == RS_STARTING) {
    c->signum = signum; /* cancelled once it has started */
  } else if (c->state != RS_DONE) {
    sb_cli_eprintf("switchboard run: interrupted again; run %s stays as "
                   "stored\n",
                   c->run_id);
    finish(c, 128 + signum);
  }
}

/* ---- following the run --------------------------------------------------- */

/* Every event of the run may come after steps the history has and no
 * event showed: each asks for a read (coalesced). */
static void on_event(void *ud, const sb_event *e) {
  run_cli *c = ud;
  if (c->state != RS_FOLLOWING) return;
  run_progress_hold(&c->progress, e);
  sb_event_type t = sb_event_type_of(e->type);
  if (t == SB_EVENT_RUN_COMPLETED || t == SB_EVENT_RUN_FAILED ||
      t == SB_EVENT_RUN_CANCELLED)
    fetch_final(c);
  else
    catch_up(c);
}

static void on_follow_error(void *ud, const sb_error *err) {
  run_cli *c = ud;
  sb_cli_eprintf("switchboard run: following run %s: %s\n", c->run_id,
                 err->msg);
  if (c->state == RS_FOLLOWING) fetch_final(c);
}

static void on_started(void *ud, const sb_flow_reply *r) {
  run_cli *c = ud;
  if (r->rc != 0) {
    sb_cli_eprintf("switchboard run: %s\n", r->err.msg);
    finish(c, r->rc == SB_ENOENT || r->rc == SB_EINVAL ? EXIT_USAGE
                                                       : EXIT_RUNTIME);
    return;
  }
  snprintf(c->run_id, sizeof c->run_id, "%s",
           json_string_value(json_object_get(r->run, "id")));
  c->progress.created_ms =
      json_integer_value(json_object_get(r->run, "createdAt"));
  sb_cli_eprintf("switchboard run: run %s of %s on context %s\n", c->run_id,
                 json_string_value(json_object_get(r->run, "workflow")),
                 json_string_value(json_object_get(r->run, "contextId")));
  c->state = RS_FOLLOWING;
  /* What the start's own transition did (its events are at or below the
   * seq the subscription starts after). */
  show(c, r->run, 0);
  run_progress_current(&c->progress, r->run);
  if (c->signum) {
    cancel(c);
    return;
  }
  const char *status = json_string_value(json_object_get(r->run, "status"));
  sb_flow_status st = sb_flow_status_of(status);
  if (st == SB_FLOW_COMPLETED || st == SB_FLOW_FAILED ||
      st == SB_FLOW_CANCELLED) {
    c->final = json_incref(r->run);
    finish(c, exit_for_status(status));
    return;
  }
  sb_events_filter f = {.run_id = c->run_id};
  sb_error err = {0};
  c->sub = sb_events_subscribe(c->events, c->tenant, r->seq, &f, on_event,
                               on_follow_error, c, &err);
  if (!c->sub) {
    sb_cli_eprintf("switchboard run: following run %s: %s\n", c->run_id,
                   err.msg);
    fetch_final(c);
    return;
  }
  size_t i;
  json_t *w;
  json_array_foreach(json_object_get(r->run, "waiting"), i, w) {
    const char *kind = json_string_value(json_object_get(w, "kind"));
    if (kind && strcmp(kind, "ask") == 0)
      queue_ask(c, json_string_value(json_object_get(w, "step")),
                json_object_get(w, "message"), json_object_get(w, "schema"));
  }
}

/* ---- the command --------------------------------------------------------- */

/* --input: a file, or "-" for stdin, of at most `max` bytes (a run's
 * input goes into its context, which holds no more: reading on would
 * only fill memory), one JSON object without duplicate keys (as the REST
 * API takes it); NULL after printing an error naming the file (and the
 * line and column). */
static json_t *read_input(const char *path, size_t max) {
  int is_stdin = strcmp(path, "-") == 0;
  const char *name = is_stdin ? "<stdin>" : path;
  struct stat st;
  if (!is_stdin && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    sb_cli_eprintf("switchboard run: --input %s: a directory, not a file\n",
                   name);
    return NULL;
  }
  FILE *in = is_stdin ? stdin : fopen(path, "rb");
  if (!in) {
    sb_cli_eprintf("switchboard run: --input %s: %s\n", name, strerror(errno));
    return NULL;
  }
  sb_buf text = SB_BUF_INIT;
  int rc = sb_buf_read_file(&text, in, max);
  if (!is_stdin) fclose(in);
  if (rc != 0) {
    if (rc == SB_ETOOBIG)
      sb_cli_eprintf(
          "switchboard run: --input %s: more than %zu bytes "
          "(limits.max_message_bytes, what a run's context may hold)\n",
          name, max);
    else
      sb_cli_eprintf("switchboard run: --input %s: cannot read it (%s)\n", name,
                     rc == SB_ENOMEM ? "out of memory" : "read error");
    sb_buf_free(&text);
    return NULL;
  }
  json_error_t jerr;
  json_t *v = json_loadb(text.data ? text.data : "", text.len,
                         JSON_REJECT_DUPLICATES, &jerr);
  sb_buf_free(&text);
  if (!v) {
    if (jerr.line <= 0)
      sb_cli_eprintf("switchboard run: --input %s: %s\n", name, jerr.text);
    else
      sb_cli_eprintf("switchboard run: --input %s:%d:%d: %s\n", name, jerr.line,
                     jerr.column, jerr.text);
    return NULL;
  }
  if (!json_is_object(v)) {
    sb_cli_eprintf("switchboard run: --input %s: expected an object "
                   "{\"context\": {...}, \"variables\": {...}}, got %s\n",
                   name, sb_json_type_name(v));
    json_decref(v);
    return NULL;
  }
  return v;
}

int sb_cli_run(int argc, char **argv) {
  const char *config = NULL, *input_path = NULL, *context_id = NULL,
             *tenant = NULL, *store = NULL, *workflow = NULL;
  int as_json = 0;
  for (int i = 0; i < argc; i++) {
    if (sb_cli_is_help(argv[i])) {
      fputs(sb_cli_run_help, stdout);
      return EXIT_OK;
    }
    if (strcmp(argv[i], "--json") == 0) {
      as_json = 1;
      continue;
    }
    const char *const names[] = {"--config", "--input", "--context-id",
                                 "--tenant", "--store"};
    const char **const slots[] = {&config, &input_path, &context_id, &tenant,
                                  &store};
    int rc = sb_cli_take_option("run", argc, argv, &i, names, slots, 5);
    if (rc < 0) return EXIT_USAGE;
    if (rc) continue;
    if (argv[i][0] == '-' && argv[i][1])
      return sb_cli_usage_error("run", "unknown option '%s'", argv[i]);
    if (workflow)
      return sb_cli_usage_error("run", "unexpected argument '%s'", argv[i]);
    workflow = argv[i];
  }
  if (!workflow) return sb_cli_usage_error("run", "%s", "missing WORKFLOW");
  if (!config) return sb_cli_usage_error("run", "%s", "missing --config FILE");
  /* An id with bytes that are not UTF-8 could not go into the run's JSON:
   * the run then failed to start with "out of memory" (exit 1). */
  if (context_id && !sb_text_plain(context_id, strlen(context_id)))
    return sb_cli_usage_error("run", "%s",
                              "--context-id: not a context id (it holds "
                              "bytes that are not UTF-8 text, or a control "
                              "character)");

  sb_config cfg;
  sb_error err = {0};
  sb_config_defaults(&cfg);
  json_t *input = NULL;
  int rc = EXIT_USAGE;
  if (sb_config_load(&cfg, config, &err) != 0 ||
      (store && sb_config_set_store_path(&cfg, store, &err) != 0) ||
      (tenant && sb_config_set_default_tenant(&cfg, tenant, &err) != 0)) {
    sb_cli_eprintf("switchboard run: %s\n", err.msg);
    sb_config_free(&cfg);
    return EXIT_USAGE;
  }
  if (input_path &&
      !(input = read_input(input_path, cfg.max_message_bytes))) {
    sb_config_free(&cfg);
    return EXIT_USAGE;
  }
  /* The command's own lines are the output; the modules' are for trouble. */
  sb_log_set_level(cfg.log_level > SB_LOG_WARNING ? (sb_log_level)cfg.log_level
                                                  : SB_LOG_WARNING);
  signal(SIGPIPE, SIG_IGN);

  run_cli *c = sb_calloc(1, sizeof *c);
  if (!c || uv_loop_init(&c->loop) != 0) {
    sb_cli_eprintf("switchboard run: cannot create the event loop\n");
    sb_free(c);
    json_decref(input);
    sb_config_free(&cfg);
    return EXIT_RUNTIME;
  }
  c->tenant = cfg.default_tenant;
  c->interactive =
      isatty(STDIN_FILENO) && !(input_path && strcmp(input_path, "-") == 0);
  c->asks = json_array();
  run_progress_init(&c->progress, isatty(STDERR_FILENO), on_ask, c);
  c->state = RS_STARTING;
  if (c->interactive && uv_tty_init(&c->loop, &c->tty, STDIN_FILENO, 1) == 0) {
    c->tty_inited = 1;
    c->tty.data = c;
  } else {
    c->interactive = 0;
  }
  uv_idle_init(&c->loop, &c->turn);
  c->turn.data = c;
  uv_signal_init(&c->loop, &c->sigint);
  uv_signal_init(&c->loop, &c->sigterm);
  c->sigint.data = c->sigterm.data = c;
  uv_signal_start(&c->sigint, on_signal, SIGINT);
  uv_signal_start(&c->sigterm, on_signal, SIGTERM);

  sb_app_options opts = {.config = &cfg,
                         .loop = &c->loop,
                         .embedded = 1,
                         .agent_exec_shim = sb_child_shim_self()};
  if (!(c->app = sb_app_start(&opts, &err))) {
    sb_cli_eprintf("switchboard run: %s\n", err.msg);
    rc = err.code == SB_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
    goto shutdown;
  }
  c->flow = sb_app_flow(c->app);
  c->events = sb_app_events(c->app);
  sb_flow_start s = {.tenant = c->tenant,
                     .workflow = workflow,
                     .context_id = context_id,
                     .input = input};
  if (sb_flow_run_start(c->flow, &s, on_started, c, &err) != 0) {
    sb_cli_eprintf("switchboard run: %s\n", err.msg);
    rc = err.code == SB_ENOENT || err.code == SB_EINVAL ? EXIT_USAGE
                                                        : EXIT_RUNTIME;
    goto shutdown;
  }
  uv_run(&c->loop, UV_RUN_DEFAULT);
  rc = c->state == RS_DONE ? c->exit_code : EXIT_RUNTIME;
  if (c->final) sb_cli_run_print(stdout, c->final, as_json);

shutdown:
  if (c->sub) sb_events_unsubscribe(c->sub);
  c->sub = NULL;
  sb_app_stop(c->app);
  if (c->tty_inited) {
    uv_read_stop((uv_stream_t *)&c->tty);
    uv_close((uv_handle_t *)&c->tty, NULL);
  }
  uv_close((uv_handle_t *)&c->turn, NULL);
  uv_close((uv_handle_t *)&c->sigint, NULL);
  uv_close((uv_handle_t *)&c->sigterm, NULL);
  sb_cli_loop_drain(&c->loop);
  if (c->tty_inited) uv_tty_reset_mode();
  ask_clear(c);
  json_decref(c->asks);
  run_progress_free(&c->progress);
  json_decref(c->final);
  sb_buf_free(&c->line);
  sb_free(c);
  json_decref(input);
  sb_config_free(&cfg);
  return rc;
}
