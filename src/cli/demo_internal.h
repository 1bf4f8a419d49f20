/* demo_internal.h: what the files of `switchboard demo` share.
 *
 * demo_cmd.c runs the scenarios one after the other on a full app (HTTP,
 * the config's agents and workflows) and keeps serving afterwards;
 * demo_report.c turns a finished run's events and context versions into
 * the trace, and the collected figures into the summary.
 */
#ifndef SB_CLI_DEMO_INTERNAL_H
#define SB_CLI_DEMO_INTERNAL_H

#include <jansson.h>
#include <stdio.h>
#include <uv.h>

#include "app/app.h"
#include "config/config.h"

typedef struct demo demo;

/* One scenario being run. */
typedef struct demo_scenario {
  json_t *spec;       /* borrowed from demo->scenarios */
  const char *tenant; /* borrowed from spec */
  char run_id[64];
  char context_id[64];
  int64_t created_ms;
  json_t *events;   /* [{type, data, time}] of the run, in order */
  json_t *offline;  /* definitions of agents taken offline for it */
  json_t *final_ctx;/* the context at the run's end (head) */
  json_t *run;      /* the run as stored at the end */
  size_t trace_at;  /* the next event to print */
  int64_t calls;    /* agent calls that answered */
} demo_scenario;

struct demo {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  uv_timer_t timer; /* waits for the agents to connect */
  int64_t waited_ms;
  sb_config cfg;
  sb_app *app;
  json_t *scenarios; /* the scenarios file's list */
  size_t next;       /* the scenario to run next */
  demo_scenario cur;
  void *sub;         /* sb_events_sub of the current run */
  json_t *rows;      /* per scenario: the summary's row */
  json_t *agents;    /* per agent id: {calls, ms, handed, whole} */
  FILE *out;
  int color;
  int once;
  int exit_code;
  int stopping;
  const char *config_path;
};

/* demo_report.c */

/* Print the current scenario's trace from its collected events, reading
 * the context versions each agent was handed (asynchronously); then call
 * done(d). */
void demo_trace(demo *d, void (*done)(demo *d));
/* The scenario's row of the summary (after demo_trace). */
void demo_record(demo *d);
/* The summary table, per scenario and per agent, with the catalog sizes
 * of each agent's endpoint beside the aggregated one. */
void demo_summary(demo *d);
/* How to connect an MCP client to the running demo. */
void demo_connect_help(demo *d);

/* Text helpers: "1,234" into buf; a JSON value compact and cut to max
 * characters (sb_free). */
const char *demo_thousands(int64_t n, char buf[32]);
char *demo_json_cut(const json_t *v, size_t max);

#endif
