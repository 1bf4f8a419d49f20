/* app: a running switchboard, assembled from the modules.
 *
 * main() parses the command line and the config; sb_app_start opens the
 * store, the context manager and the MCP server with every provider, and
 * starts the transports the config asks for; sb_app_stop takes it all down
 * in the reverse order. The app also owns the glue that exposes modules
 * over the protocols: the context tools and resources (MCP) and the REST
 * API under /v1.
 */
#ifndef SB_APP_H
#define SB_APP_H

#include <uv.h>

#include "config/config.h"
#include "core/core.h"

typedef struct sb_app sb_app;

typedef struct sb_app_options {
  const sb_config *config; /* borrowed; must outlive the app */
  uv_loop_t *loop;
  int stdio;                    /* serve MCP on stdin/stdout */
  const char *stdio_agent;      /* ...as that one agent's server (its own
                                   names), not switchboard's */
  void (*on_stdio_eof)(void *); /* stdin closed */
  void *ud;
  int embedded; /* a command's own engine (`switchboard run`): no
                   transport (no HTTP, no stdio), no expiry sweep, and runs
                   left running or waiting in the store are NOT resumed (a
                   server may own them) */
  /* sb_gateway_options.agent_exec_shim: main() passes
   * sb_child_shim_self(), so stdio agents die with switchboard. */
  const char *agent_exec_shim;
} sb_app_options;

/* Names in the workflows (call.agent, call.capability) and virtual
 * servers (include[].agent) that no agent of cfg answers to: each is
 * passed to fn as one line ("FILE:LINE: step ...: what, and what the
 * config has"), and the count returned. Not errors (an agent may be
 * registered through the API later): `check` prints them and serve logs
 * them as warnings, so a misspelt name shows before a run fails on it. */
typedef void (*sb_app_note_fn)(void *ud, const char *line);
struct sb_flow_defs;
size_t sb_app_unknown_references(const sb_config *cfg,
                                 const struct sb_flow_defs *defs,
                                 sb_app_note_fn fn, void *ud);
/* Stdio agents of cfg whose transport.command cannot start on this host
 * (not found along the PATH the agent gets, not executable, a cwd that is
 * no directory): each passed to fn as one line ("config line N:
 * agents[i] \"id\": transport.command: why"), and the count returned.
 * Not errors either (the program may be installed before the agent's next
 * try); check, serve and a reload say them. Reads the file system: not
 * on the loop once it serves. */
size_t sb_app_missing_commands(const sb_config *cfg, sb_app_note_fn fn,
                               void *ud);

/* Start everything; NULL with err (naming what failed) otherwise. */
sb_app *sb_app_start(const sb_app_options *opts, sb_error *err);
/* SIGHUP: reload what can change without a restart from the config file
 * at config_path (copied): the agents (added, replaced, removed; unchanged
 * ones keep their connections; sessions are untouched), the quotas, the
 * OAuth JWKS and the TLS certificate. Other settings need a restart; they
 * are reported, not applied. Asynchronous, in two steps, so the loop never
 * waits on disk: a worker thread reads and parses the files, then the loop
 * applies what was read; a bad file changes nothing and is logged and
 * audited. A request while a reload is in progress is not lost: one more
 * reload follows it (however many came meanwhile). sb_app_stop may come
 * at any time: a reload in flight then applies nothing and frees what it
 * read when its worker is done (the loop must run on until then, as it
 * does for the handles closed at stop). */
void sb_app_reload(sb_app *app, const char *config_path);

/* Record a SIGHUP reload's end (ok, or failed with detail) as an
 * audit.admin event and a log line (sb_app_reload records its own). */
void sb_app_audit_reload(sb_app *app, int ok, const char *detail);

/* The modules a command drives in an embedded app (borrowed; they live
 * until sb_app_stop). */
typedef struct sb_flow_engine sb_flow_engine;
typedef struct sb_events sb_events;
typedef struct sb_gateway sb_gateway;
typedef struct sb_ctx_manager sb_ctx_manager;
typedef struct sb_mcp_server sb_mcp_server;
sb_flow_engine *sb_app_flow(sb_app *app);
sb_events *sb_app_events(sb_app *app);
sb_gateway *sb_app_gateway(sb_app *app);
sb_ctx_manager *sb_app_ctx(sb_app *app);
sb_mcp_server *sb_app_mcp(sb_app *app); /* the main endpoint's (/mcp) */
/* The HTTP port bound (server.listen's, or the one picked for port 0);
 * 0 when the app serves no HTTP. */
int sb_app_http_port(const sb_app *app);

/* Stop transports, cancel calls, close the store. Handles close on the
 * next loop run. */
void sb_app_stop(sb_app *app);
/* What a graceful stop still waits for. */
typedef struct sb_app_pending {
  size_t requests; /* HTTP requests under way (stdio: none counted) */
  size_t steps;    /* workflow steps whose agent call is in flight, and
                      runs whose transition is being written
                      (sb_flow_engine_busy) */
} sb_app_pending;

/* A graceful stop's first half: no new connections or requests (HTTP;
 * stdio: nothing), and the workflow engine starts nothing new
 * (sb_flow_engine_drain: no step's call, no run); the requests and the
 * steps' calls under way go on, and those calls' ends are written. Runs
 * are not waited for beyond that: the steps they would start next go on
 * at the next start. Returns what is under way; sb_app_busy tells
 * again. */
sb_app_pending sb_app_drain(sb_app *app);
sb_app_pending sb_app_busy(const sb_app *app);

#endif
