/* cli.h: what the files of the switchboard command share. */
#ifndef SB_CLI_H
#define SB_CLI_H

#include <stdio.h>
#include <uv.h>

#include "ctx/ctx.h"
#include "store/store.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Print "switchboard CMD: <fmt with what>" and a --help hint; EXIT_USAGE. */
int sb_cli_usage_error(const char *cmd, const char *fmt, const char *what);
/* Match "--name VALUE" or "--name=VALUE": 1 matched (*value set, *i
 * advanced), 0 not this option, SB_CLI_NO_VALUE (none, or the next
 * argument is an option: "--input --tenant t"), SB_CLI_TWICE (*value was
 * already set). */
enum { SB_CLI_NO_VALUE = -1, SB_CLI_TWICE = -2 };
int sb_cli_take_value(int argc, char **argv, int *i, const char *name,
                      const char **value);
/* sb_cli_take_value over options names[k] filling *slots[k] (NULL until
 * given): 1 one matched, 0 none did, -1 the usage error is reported
 * ("option --x needs a value", "option --x given more than once"). */
int sb_cli_take_option(const char *cmd, int argc, char **argv, int *i,
                       const char *const *names, const char **const *slots,
                       size_t n);
int sb_cli_is_help(const char *arg);

/* After a command's modules have stopped: run the loop until every handle
 * has closed (a warning and a forced end after a grace period if one
 * stays open), close the rest, close the loop; uv_loop_close's result. */
int sb_cli_loop_drain(uv_loop_t *loop);

/* One-shot context reads on a loop of the command's own (ctx_wait.c):
 *   sb_cli_ctx c; sb_cli_ctx_open(&c, cfg, &err);
 *   rc = sb_cli_ctx_wait(&c, sb_ctx_get_async(c.m, ..., sb_cli_ctx_done, &c,
 *                                             &err), &out, &err);
 *   sb_cli_ctx_close(&c);
 * *out is a new reference. */
struct sb_config;
typedef struct sb_cli_ctx {
  uv_loop_t loop;
  int loop_inited;
  sb_store *store;
  sb_ctx_manager *m;
  int done, rc, count;
  sb_error err;
  json_t *out;
} sb_cli_ctx;
int sb_cli_ctx_open(sb_cli_ctx *c, const struct sb_config *cfg, sb_error *err);
void sb_cli_ctx_done(void *ud, const sb_ctx_result *res);
int sb_cli_ctx_wait(sb_cli_ctx *c, int submitted, json_t **out, sb_error *err);
void sb_cli_ctx_close(sb_cli_ctx *c);

/* switchboard context ... (context_cmd.c) */
extern const char sb_cli_context_help[];
int sb_cli_context(int argc, char **argv);

/* switchboard agents ... (agents_cmd.c) */
extern const char sb_cli_agents_help[];
int sb_cli_agents(int argc, char **argv);
/* The config's agents as a registry (*out, or freed when out is NULL),
 * each definition checked as serve checks it: EXIT_OK, or EXIT_USAGE
 * after "switchboard CMD: PATH:LINE: agents[I].FIELD: why" on stderr
 * (CMD NULL: "switchboard: ..."). */
struct sb_registry;
int sb_cli_agents_registry(const struct sb_config *cfg, const char *path,
                           const char *cmd, struct sb_registry **out);
/* agents show ID: connect to the agent `def` the way the server would and
 * report (agents_show.c). Takes the caller's reference to def. */
struct sb_agent_def;
int sb_cli_agents_show(const struct sb_config *cfg, struct sb_agent_def *def);

/* switchboard run WORKFLOW ... (run_cmd.c) */
extern const char sb_cli_run_help[];
int sb_cli_run(int argc, char **argv);

/* switchboard demo (demo_cmd.c, demo_report.c) */
extern const char sb_cli_demo_help[];
int sb_cli_demo(int argc, char **argv);

/* switchboard tenant ... and switchboard key ... (keys_cmd.c) */
extern const char sb_cli_tenant_help[];
extern const char sb_cli_key_help[];
int sb_cli_tenant(int argc, char **argv);
int sb_cli_key(int argc, char **argv);

/* switchboard runs ... (runs_cmd.c; the actions a server performs:
 * runs_rest.c) */
extern const char sb_cli_runs_help[];
int sb_cli_runs(int argc, char **argv);
/* A run (the view REST shows) as JSON, or as a short summary: status,
 * steps, where it waits, its context, its error. */
void sb_cli_run_print(FILE *out, const json_t *run, int as_json);
/* fprintf(stderr, ...) for every message the CLI writes there: what it
 * formats may quote what a user, a file or a server gave (a workflow name,
 * a run id, an error's text), so control characters other than newline
 * and tab come out as \xHH, never as an escape sequence that would
 * retitle or clear the terminal. Returns what fprintf returns. */
int sb_cli_eprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* in[0..len) as text for a terminal: control characters (an escape
 * sequence, a CR that rewrites the line) as \xHH, cut to fit cap; out. */
const char *sb_cli_printable(const char *in, size_t len, char *out,
                             size_t cap);

typedef struct sb_cli_runs_action {
  const char *verb; /* cancel, answer, resume, fork */
  const char *id;
  const char *url, *token; /* NULL: none given */
  const char *answer;      /* JSON text */
  const char *step, *reason;
  int as_json;
} sb_cli_runs_action;
/* POST /v1/runs/ID/VERB to the server; an exit status. */
int sb_cli_runs_rest(const sb_cli_runs_action *a);

#endif
