/* agents/common: what the five dealership agents share.
 *
 * Each agent (general, sales, service, parts, finance) is a small MCP server
 * built on switchboard's own mcp/ and net/ code: an sb_mcp_server without
 * built-ins and one provider made from the agent's table of tools, served on
 * stdio (the default) or on Streamable HTTP (--http HOST:PORT). An agent
 * only declares its tools; this runtime does the rest:
 *
 *   - the tenant: every request is for one dealer group. switchboard puts
 *     the caller's (authenticated) tenant in the tools/call _meta under
 *     DL_META_TENANT; an agent run by hand takes --tenant. The tenant's data
 *     is the SQLite file DATA_DIR/<tenant>.db (--data DIR, else
 *     $SWITCHBOARD_DEMO_DATA, else data/demo), written by dealer-data. One
 *     tenant's request never opens another tenant's file.
 *   - the thread: a tool runs on libuv's thread pool with its own SQLite
 *     connection, inside one transaction (IMMEDIATE for tools that change
 *     something), so the agent's loop never waits on disk.
 *   - idempotency: a mutating tool called with the workflow's idempotency
 *     key (_meta DL_META_IDEMPOTENCY_KEY, "run/step/visit") acts once; the
 *     same key again answers the stored result, in the same transaction
 *     as the check, so two processes racing on one key also act once. The
 *     same key with different arguments is refused.
 *   - the context: the projection switchboard hands the agent (_meta
 *     DL_META_CONTEXT: {id, version, data, missing}) is given to the tool
 *     as req->context (its `data`), read-only.
 *   - the answer: a tool returns its structured result; the runtime
 *     answers {content: [text: a one-line summary + the JSON],
 *     structuredContent} or, on failure, isError with the tool's message.
 */
#ifndef DL_AGENT_H
#define DL_AGENT_H

#include <jansson.h>
#include <sqlite3.h>

#include "core/core.h"
#include "mcp/mcp.h"

#define DL_META_TENANT "switchboard/tenant"
#define DL_META_CONTEXT "switchboard/context"
#define DL_META_IDEMPOTENCY_KEY "switchboard/idempotencyKey"

/* One tool call, as a tool sees it (on a worker thread). */
typedef struct dl_request {
  const char *tenant;          /* validated tenant id */
  sqlite3 *db;                 /* the tenant's data, in a transaction */
  json_t *context;             /* the projection's data, or NULL; borrowed */
  const char *idempotency_key; /* or NULL */
  const char *tool;            /* the tool's name */
  char error[512];             /* a failure, for people (dl_fail) */
  int invalid_args;            /* the failure is the caller's arguments:
                                  answered as -32602, not isError */
} dl_request;

/* A tool: runs on a worker thread; returns its structured result (a JSON
 * object, new reference) or NULL after dl_fail / dl_invalid. It must not
 * touch the loop. Its writes commit with the call's transaction only when
 * it returns a result; a NULL rolls them back. */
typedef json_t *(*dl_tool_fn)(dl_request *req, json_t *args);

typedef struct dl_tool {
  const char *name;
  const char *title;
  const char *description;
  const char *input_schema;  /* JSON text (a JSON Schema object) */
  const char *output_schema; /* JSON text, or NULL */
  int mutating;              /* changes something: IMMEDIATE transaction,
                                idempotency key honoured */
  dl_tool_fn run;
  /* One line for the text content, from the result (borrowed); NULL: the
   * tool's name. The full JSON follows it in the text. */
  char *(*summary)(json_t *result); /* sb_malloc'd, or NULL */
  /* Optional, for a tool that must ask the client something first
   * (sampling/createMessage): runs on the loop thread instead of `run`,
   * owns the call and finishes it (dl_reply, sb_mcp_call_*) now or from a
   * later callback. It must not block; it gets no tenant or database. */
  void (*on_loop)(const struct dl_tool *tool, sb_mcp_call *call, json_t *args);
} dl_tool;

typedef struct dl_agent {
  const char *name;         /* serverInfo.name, e.g. "dealer-sales" */
  const char *instructions; /* for the model that uses the agent */
  const dl_tool *tools;
  size_t tools_len;
  unsigned reply_delay_ms; /* answer every call this late (a timer on the
                              loop, the work is done already); 0: at once */
} dl_agent;

/* Parse the command line, serve until EOF on stdin (stdio) or SIGTERM /
 * SIGINT, return the process exit code. Flags:
 *   --stdio              serve MCP on stdin/stdout (the default)
 *   --http HOST:PORT     serve Streamable HTTP on http://HOST:PORT/mcp
 *                        (PORT 0 picks one; the URL is printed on stderr)
 *   --data DIR           the demo data directory
 *   --tenant ID          the tenant of requests that name none
 *   --log-level LEVEL    debug|info|notice|warning|error (default warning)
 *   --help               usage */
int dl_agent_main(const dl_agent *agent, int argc, char **argv);

/* How a tool call ended. */
typedef enum dl_outcome {
  DL_OK,          /* a result */
  DL_FAILED,      /* the tool failed: answered isError */
  DL_INVALID_ARGS /* the caller's arguments are wrong: -32602 */
} dl_outcome;

/* Run `tool` on the calling thread exactly as a worker runs a call: open
 * DATA_DIR/<tenant>.db, one transaction, the idempotency ledger for a
 * mutating tool called with a key (NULL: none). args and context are
 * borrowed (context may be NULL). DL_OK with *result (new reference), else
 * a message in error. The runtime's workers and the unit tests call it. */
dl_outcome dl_run_tool(const dl_tool *tool, const char *data_dir,
                       const char *tenant, const char *idempotency_key,
                       json_t *args, json_t *context, json_t **result,
                       char *error, size_t error_len);

/* Answer `call` with a tool's result (stolen) the way the runtime does:
 * text content (the tool's summary line + the JSON) and structuredContent.
 * For on_loop tools. */
void dl_reply(sb_mcp_call *call, const dl_tool *tool, json_t *result);

/* ---- for tools --------------------------------------------------------- */

/* Record a failure (printf-style) and return NULL, for `return dl_fail(...)`.
 */
json_t *dl_fail(dl_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same, for arguments that are wrong (-32602 naming the problem). */
json_t *dl_invalid(dl_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The longest string argument dl_arg_str takes, in bytes: a name, a
 * make, a model, a dealership. Arguments are echoed in answers, so an
 * unbounded one could make an answer too big for switchboard to take. */
#define DL_ARG_STR_MAX 200

/* Argument readers: the member, or `def` when absent or null; a member of
 * the wrong type (or a string longer than its cap) is an error recorded
 * in req, naming the argument and the cap (then *ok is set to 0). */
const char *dl_arg_str(dl_request *req, json_t *args, const char *key,
                       const char *def, int *ok);
/* The largest number argument dl_arg_num takes (in size): a billion
 * dollars, miles or anything else is no dealership's. */
#define DL_ARG_NUM_MAX 1e9

/* dl_arg_str for a free-text argument allowed up to max bytes (notes). */
const char *dl_arg_text(dl_request *req, json_t *args, const char *key,
                        const char *def, size_t max, int *ok);
/* A required string argument: present, not blank (only whitespace), at
 * most max bytes. NULL after dl_invalid naming it. */
const char *dl_arg_required(dl_request *req, json_t *args, const char *key,
                            size_t max);
/* 1 if s is empty or only whitespace. */
int dl_blank(const char *s);
/* A number: a JSON number, or a string of a plain decimal ("32000",
 * "-1.5"; no spaces, hex, exponent, inf or nan), at most DL_ARG_NUM_MAX
 * in size. */
double dl_arg_num(dl_request *req, json_t *args, const char *key, double def,
                  int *ok);
long dl_arg_int(dl_request *req, json_t *args, const char *key, long def,
                int *ok);

/* Prepare sql on req->db; NULL after dl_fail naming the SQLite error. */
sqlite3_stmt *dl_prepare(dl_request *req, const char *sql);
/* The policy `key` of the tenant (policies table; its value parsed as
 * JSON, new reference), or NULL when there is none. */
json_t *dl_policy(dl_request *req, const char *key);
/* A column as a JSON value: integer, real, text or null (new reference). */
json_t *dl_column_json(sqlite3_stmt *st, int col);
/* A row of st as an object named by its column names (new reference). */
json_t *dl_row_json(sqlite3_stmt *st);
/* The one row of sql with ?1 bound to key (unless key is NULL) in *row
 * (new reference): 1 found, 0 none (nothing said: the caller names what
 * is missing), -1 after dl_fail. */
int dl_row_one(dl_request *req, const char *sql, const char *key, json_t **row);
/* Append a reason (printf-style, at most 255 bytes) to the array. */
void dl_reason(json_t *reasons, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* 1 if s is a valid tenant id: 1-64 of [A-Za-z0-9._-], not starting with
 * a dot. */
int dl_tenant_valid(const char *s);

/* The PRAGMA application_id of a tenant's file ("DLRD"): the schema sets
 * it, and dl_run_tool refuses a file without it, so a tenant id that
 * names some other database in the data directory (switchboard's own
 * store, "switchboard") opens nothing. */
#define DL_APPLICATION_ID 1145852484

/* The demo database schema (every table of a tenant's file). */
extern const char dl_schema_sql[];

#endif
