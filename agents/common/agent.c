/* agent.c: the runtime of a dealership agent (see agent.h).
 *
 * The loop thread parses requests and answers them; each tool call is one
 * job on libuv's thread pool that opens the tenant's SQLite file, runs the
 * tool inside one transaction (with the idempotency check for mutating
 * tools) and closes it again. The job owns deep copies of the arguments
 * and the context, so nothing JSON is shared between threads. A call
 * cancelled while its job runs is forgotten: the job finishes (its
 * transaction commits or not on its own terms) and its answer is dropped.
 * The job's body is dl_run_tool, public so the tests run tools the same
 * way. A tool with an on_loop hook (one that asks the client a question,
 * which only the loop can do) is handed the call instead.
 */
#include "agent.h"

#include <ctype.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config/config.h"
#include "mcp/mcp.h"
#include "net/net.h"

#define DL_MODULE "agent"

typedef struct dl_runtime {
  const dl_agent *agent;
  uv_loop_t loop;
  uv_signal_t sigterm, sigint;
  json_t *tools; /* the tools/list entries */
  const char *data_dir;
  const char *default_tenant;
} dl_runtime;

typedef struct dl_job {
  uv_work_t work;
  dl_runtime *rt;
  sb_mcp_call *call; /* NULL once cancelled */
  const dl_tool *tool;
  json_t *args;    /* owned */
  json_t *context; /* owned, may be NULL */
  char *tenant, *key;
  /* set by the worker */
  json_t *result;
  dl_outcome outcome;
  char error[512];
  uv_timer_t delay; /* the agent's reply_delay_ms, once the work is done */
  int delaying;
} dl_job;

/* ---- helpers for tools -------------------------------------------------- */

static json_t *vfail(dl_request *req, int invalid, const char *fmt,
                     va_list ap) {
  vsnprintf(req->error, sizeof req->error, fmt, ap);
  req->invalid_args = invalid;
  return NULL;
}

json_t *dl_fail(dl_request *req, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(req, 0, fmt, ap);
  va_end(ap);
  return NULL;
}

json_t *dl_invalid(dl_request *req, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(req, 1, fmt, ap);
  va_end(ap);
  return NULL;
}

const char *dl_arg_text(dl_request *req, json_t *args, const char *key,
                        const char *def, size_t max, int *ok) {
  json_t *v = json_object_get(args, key);
  if (!v || json_is_null(v)) return def;
  if (!json_is_string(v)) {
    dl_invalid(req, "argument '%s' must be a string", key);
    *ok = 0;
    return def;
  }
  if (json_string_length(v) > max) {
    dl_invalid(req, "argument '%s' is %zu bytes, longer than the %zu allowed",
               key, json_string_length(v), max);
    *ok = 0;
    return def;
  }
  return json_string_value(v);
}

const char *dl_arg_str(dl_request *req, json_t *args, const char *key,
                       const char *def, int *ok) {
  return dl_arg_text(req, args, key, def, DL_ARG_STR_MAX, ok);
}

int dl_blank(const char *s) {
  for (; s && *s; s++)
    if (!isspace((unsigned char)*s)) return 0;
  return 1;
}

const char *dl_arg_required(dl_request *req, json_t *args, const char *key,
                            size_t max) {
  int ok = 1;
  const char *v = dl_arg_text(req, args, key, NULL, max, &ok);
  if (!ok) return NULL;
  /* "   " names nobody and no service: as good as absent */
  if (dl_blank(v)) {
    dl_invalid(req, "argument '%s' is required (not blank)", key);
    return NULL;
  }
  return v;
}

/* 1 if s is a plain decimal number: an optional '-', digits, and at most
 * one '.' with digits after it. strtod alone also takes " 30000",
 * "0x7530", "inf" and "nan", and a NaN is what tools use for "absent". */
static int plain_decimal(const char *s) {
  if (*s == '-') s++;
  if (!isdigit((unsigned char)*s)) return 0;
  while (isdigit((unsigned char)*s))
    s++;
  if (*s == '.') {
    s++;
    if (!isdigit((unsigned char)*s)) return 0;
    while (isdigit((unsigned char)*s))
      s++;
  }
  return *s == '\0';
}

double dl_arg_num(dl_request *req, json_t *args, const char *key, double def,
                  int *ok) {
  json_t *v = json_object_get(args, key);
  if (!v || json_is_null(v)) return def;
  double d = NAN;
  if (json_is_number(v)) d = json_number_value(v);
  /* Numbers read from a conversation often arrive as text ("32000"). */
  if (json_is_string(v) && json_string_length(v) <= 32 &&
      plain_decimal(json_string_value(v)))
    d = strtod(json_string_value(v), NULL);
  if (isnan(d)) {
    dl_invalid(req, "argument '%s' must be a number (digits, an optional "
                    "'-' and '.')",
               key);
    *ok = 0;
    return def;
  }
  /* No amount, count or limit of a dealership comes near; 1e308 would
   * only overflow what is computed from it. */
  if (!(fabs(d) <= DL_ARG_NUM_MAX)) {
    dl_invalid(req, "argument '%s' must be between -%.0f and %.0f", key,
               DL_ARG_NUM_MAX, DL_ARG_NUM_MAX);
    *ok = 0;
    return def;
  }
  return d;
}

long dl_arg_int(dl_request *req, json_t *args, const char *key, long def,
                int *ok) {
  double d = dl_arg_num(req, args, key, (double)def, ok);
  if (!*ok) return def;
  if (d != (double)(long)d || d < -1e15 || d > 1e15) {
    dl_invalid(req, "argument '%s' must be an integer", key);
    *ok = 0;
    return def;
  }
  return (long)d;
}

sqlite3_stmt *dl_prepare(dl_request *req, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(req->db, sql, -1, &st, NULL) != SQLITE_OK) {
    dl_fail(req, "the dealership data cannot be read: %s",
            sqlite3_errmsg(req->db));
    return NULL;
  }
  return st;
}

json_t *dl_policy(dl_request *req, const char *key) {
  sqlite3_stmt *st = NULL;
  json_t *v = NULL;
  if (sqlite3_prepare_v2(req->db, "SELECT value FROM policies WHERE key = ?",
                         -1, &st, NULL) != SQLITE_OK)
    return NULL;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) {
    const char *text = (const char *)sqlite3_column_text(st, 0);
    if (text) v = json_loads(text, JSON_DECODE_ANY, NULL);
  }
  sqlite3_finalize(st);
  return v;
}

json_t *dl_column_json(sqlite3_stmt *st, int col) {
  switch (sqlite3_column_type(st, col)) {
  case SQLITE_INTEGER:
    return json_integer((json_int_t)sqlite3_column_int64(st, col));
  case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, col));
  case SQLITE_TEXT:
    return json_string((const char *)sqlite3_column_text(st, col));
  default: return json_null();
  }
}

json_t *dl_row_json(sqlite3_stmt *st) {
  json_t *row = json_object();
  int n = sqlite3_column_count(st);
  for (int i = 0; row && i < n; i++)
    json_object_set_new(row, sqlite3_column_name(st, i), dl_column_json(st, i));
  return row;
}

int dl_row_one(dl_request *req, const char *sql, const char *key,
               json_t **row) {
  *row = NULL;
  sqlite3_stmt *st = dl_prepare(req, sql);
  if (!st) return -1;
  if (key) sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *row = dl_row_json(st);
  sqlite3_finalize(st);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return *row ? 1 : 0;
  dl_fail(req, "the dealer data cannot be read (%s)", sqlite3_errstr(rc));
  return -1;
}

void dl_reason(json_t *reasons, const char *fmt, ...) {
  char text[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  json_array_append_new(reasons, json_string(text));
}

/* switchboard's own rule for tenant ids, and no leading dot: the id names
 * a file in the data directory. */
int dl_tenant_valid(const char *s) {
  return sb_config_tenant_id_valid(s) && s[0] != '.';
}

/* ---- the worker --------------------------------------------------------- */

static int exec(sqlite3 *db, const char *sql) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Hex BLAKE2b-128 of the arguments in canonical form (sorted keys): in
 * jansson's own dump, as the hashes already in the ledger were made. */
static void args_hash(json_t *args, char out[33]) {
  char *text =
      json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  unsigned char h[16];
  crypto_generichash(h, sizeof h, (const unsigned char *)(text ? text : ""),
                     text ? strlen(text) : 0, NULL, 0);
  sodium_bin2hex(out, 33, h, sizeof h);
  sb_free(text);
}

/* Look the key up: 1 with *result set (the stored answer), 0 if new, -1
 * with req->error on failure. */
static int ledger_find(dl_request *req, const char *hash, json_t **result) {
  sqlite3_stmt *st =
      dl_prepare(req, "SELECT args_hash, result FROM idempotency "
                      "WHERE key = ? AND tool = ?");
  if (!st) return -1;
  sqlite3_bind_text(st, 1, req->idempotency_key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, req->tool, -1, SQLITE_STATIC);
  int rc = 0;
  if (sqlite3_step(st) == SQLITE_ROW) {
    if (strcmp((const char *)sqlite3_column_text(st, 0), hash) != 0) {
      dl_invalid(req,
                 "idempotency key %s was already used for %s with "
                 "other arguments",
                 req->idempotency_key, req->tool);
      rc = -1;
    } else {
      *result = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
      rc = *result ? 1 : -1;
      if (!*result)
        dl_fail(req, "the stored answer for %s is unreadable",
                req->idempotency_key);
    }
  }
  sqlite3_finalize(st);
  return rc;
}

static int ledger_store(dl_request *req, const char *hash, json_t *result) {
  char *text = sb_json_dumps(result, JSON_COMPACT);
  sqlite3_stmt *st = dl_prepare(
      req, "INSERT INTO idempotency (key, tool, args_hash, result, created_at) "
           "VALUES (?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%S', 'now'))");
  int rc = -1;
  if (st && text) {
    sqlite3_bind_text(st, 1, req->idempotency_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, req->tool, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_DONE)
      rc = 0;
    else
      dl_fail(req, "cannot record the idempotency key: %s",
              sqlite3_errmsg(req->db));
  }
  if (st) sqlite3_finalize(st);
  sb_free(text);
  return rc;
}

/* 1 if db was written by dealer-data (its application_id). */
static int dealer_file(sqlite3 *db) {
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt *st = NULL;
  int ours = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, NULL) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    ours = sqlite3_column_int(st, 0) == DL_APPLICATION_ID;
  sqlite3_finalize(st);
  return ours;
}

dl_outcome dl_run_tool(const dl_tool *tool, const char *data_dir,
                       const char *tenant, const char *idempotency_key,
                       json_t *args, json_t *context, json_t **out, char *error,
                       size_t error_len) {
  dl_request req = {.tenant = tenant,
                    .context = context,
                    .idempotency_key = idempotency_key,
                    .tool = tool->name};
  char *path = sb_asprintf("%s/%s.db", data_dir, tenant);
  sqlite3 *db = NULL;
  json_t *result = NULL;
  int began = 0;
  if (!path) {
    dl_fail(&req, "out of memory");
    goto done;
  }
  /* The caller learns only that there is no such tenant: not the
   * server's paths, nor what else the directory holds. */
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK ||
      !dealer_file(db)) {
    sb_log(SB_LOG_WARNING, DL_MODULE, "tenant %s: %s is not dealer data (%s)",
           tenant, path, db ? sqlite3_errmsg(db) : "cannot open");
    dl_fail(&req, "unknown tenant %s", tenant);
    goto done;
  }
  req.db = db;
  if (exec(db, tool->mutating ? "BEGIN IMMEDIATE" : "BEGIN") != 0) {
    dl_fail(&req, "the dealership data is busy: %s", sqlite3_errmsg(db));
    goto done;
  }
  began = 1;
  char hash[33];
  if (tool->mutating && idempotency_key) {
    args_hash(args, hash);
    int found = ledger_find(&req, hash, &result);
    if (found != 0) goto done; /* answered before, or failed */
  }
  result = tool->run(&req, args);
  if (result && tool->mutating && idempotency_key &&
      ledger_store(&req, hash, result) != 0) {
    json_decref(result);
    result = NULL;
  }
  if (result && exec(db, "COMMIT") != 0) {
    dl_fail(&req, "cannot save: %s", sqlite3_errmsg(db));
    json_decref(result);
    result = NULL;
  }
  if (result) began = 0;
done:
  if (began) exec(db, "ROLLBACK");
  if (db) sqlite3_close(db);
  sb_free(path);
  *out = result;
  if (result) return DL_OK;
  snprintf(error, error_len, "%s",
           req.error[0] ? req.error : "the tool failed");
  return req.invalid_args ? DL_INVALID_ARGS : DL_FAILED;
}

static void job_work(uv_work_t *w) {
  dl_job *j = w->data;
  j->outcome = dl_run_tool(j->tool, j->rt->data_dir, j->tenant, j->key, j->args,
                           j->context, &j->result, j->error, sizeof j->error);
}

static void job_free(dl_job *j) {
  json_decref(j->args);
  json_decref(j->context);
  json_decref(j->result);
  sb_free(j->tenant);
  sb_free(j->key);
  sb_free(j);
}

static void job_closed(uv_handle_t *h) { job_free(h->data); }

static void job_cancelled(sb_mcp_call *call, void *ud) {
  dl_job *j = ud;
  j->call = NULL;
  if (j->delaying) { /* answered late: nobody waits for it now */
    uv_timer_stop(&j->delay);
    uv_close((uv_handle_t *)&j->delay, job_closed);
  }
}

static json_t *text_content(const char *text) {
  return json_pack("[{ssss}]", "type", "text", "text", text);
}

void dl_reply(sb_mcp_call *call, const dl_tool *tool, json_t *result) {
  char *line = tool->summary ? tool->summary(result) : NULL;
  char *json = sb_json_dumps(result, JSON_COMPACT);
  char *text =
      sb_asprintf("%s\n%s", line ? line : tool->name, json ? json : "{}");
  sb_mcp_call_reply(call, json_pack("{sosO}", "content",
                                    text_content(text ? text : ""),
                                    "structuredContent", result));
  json_decref(result);
  sb_free(text);
  sb_free(json);
  sb_free(line);
}

static void job_reply(dl_job *j) {
  sb_mcp_call *call = j->call;
  j->call = NULL; /* answered: the server frees it */
  if (j->outcome == DL_OK) {
    dl_reply(call, j->tool, j->result);
    j->result = NULL;
  } else if (j->outcome == DL_INVALID_ARGS) {
    sb_mcp_call_fail_invalid_args(call, j->tool->name, j->error);
  } else {
    sb_mcp_call_reply_text(call, j->error, 1);
  }
}

static void job_delayed(uv_timer_t *t) {
  dl_job *j = t->data;
  j->delaying = 0;
  job_reply(j);
  uv_close((uv_handle_t *)&j->delay, job_closed);
}

static void job_done(uv_work_t *w, int status) {
  dl_job *j = w->data;
  if (!j->call) goto out;
  /* A deliberately slow agent (the demo's finance desk) waits on the loop,
   * not in the worker, so the pool and the other calls are not held up. */
  unsigned delay_ms = j->rt->agent->reply_delay_ms;
  if (delay_ms && uv_timer_init(&j->rt->loop, &j->delay) == 0) {
    j->delay.data = j;
    j->delaying = 1;
    uv_timer_start(&j->delay, job_delayed, delay_ms, 0);
    return;
  }
  job_reply(j);
out:
  job_free(j);
}

/* ---- the provider ------------------------------------------------------- */

static void list_tools(void *ud, sb_mcp_call *call, json_t *tools) {
  dl_runtime *rt = ud;
  json_array_extend(tools, rt->tools);
}

static int call_tool(void *ud, sb_mcp_call *call, const char *name,
                     json_t *arguments) {
  dl_runtime *rt = ud;
  const dl_tool *tool = NULL;
  for (size_t i = 0; i < rt->agent->tools_len; i++)
    if (strcmp(rt->agent->tools[i].name, name) == 0)
      tool = &rt->agent->tools[i];
  if (!tool) return 0;
  if (arguments && !json_is_object(arguments)) {
    sb_mcp_call_fail_invalid_args(call, name, "arguments must be an object");
    return 1;
  }
  if (tool->on_loop) {
    json_t *empty = arguments ? NULL : json_object();
    tool->on_loop(tool, call, arguments ? arguments : empty);
    json_decref(empty);
    return 1;
  }
  json_t *meta = json_object_get(sb_mcp_call_params(call), "_meta");
  const char *tenant = json_string_value(json_object_get(meta, DL_META_TENANT));
  if (!tenant) tenant = rt->default_tenant;
  if (!tenant) {
    sb_mcp_call_reply_text(call,
                           "no tenant: switchboard names it in _meta "
                           "\"" DL_META_TENANT "\"; run by hand, start "
                           "the agent with --tenant ID",
                           1);
    return 1;
  }
  if (!dl_tenant_valid(tenant)) {
    sb_mcp_call_reply_text(call, "the tenant id is not valid", 1);
    return 1;
  }
  const char *key =
      json_string_value(json_object_get(meta, DL_META_IDEMPOTENCY_KEY));
  json_t *ctx = json_object_get(json_object_get(meta, DL_META_CONTEXT), "data");
  dl_job *j = sb_calloc(1, sizeof *j);
  if (!j) goto oom;
  j->rt = rt;
  j->call = call;
  j->tool = tool;
  j->work.data = j;
  j->args = arguments ? json_deep_copy(arguments) : json_object();
  j->context = ctx ? json_deep_copy(ctx) : NULL;
  j->tenant = sb_strdup(tenant);
  j->key = key ? sb_strdup(key) : NULL;
  if (!j->args || !j->tenant || (key && !j->key) || (ctx && !j->context))
    goto oom;
  if (uv_queue_work(&rt->loop, &j->work, job_work, job_done) != 0) goto oom;
  sb_mcp_call_on_cancel(call, job_cancelled, j);
  return 1;
oom:
  if (j) job_free(j);
  sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
  return 1;
}

static json_t *capabilities(void *ud) { return json_pack("{s{}}", "tools"); }

/* ---- main --------------------------------------------------------------- */

static json_t *tool_list(const dl_agent *agent, sb_error *err) {
  json_t *tools = json_array();
  for (size_t i = 0; tools && i < agent->tools_len; i++) {
    const dl_tool *t = &agent->tools[i];
    json_error_t jerr;
    json_t *in = json_loads(t->input_schema, 0, &jerr);
    json_t *out =
        t->output_schema ? json_loads(t->output_schema, 0, &jerr) : NULL;
    if (!in || (t->output_schema && !out)) {
      sb_error_set(err, SB_EINVAL, "tool %s: bad schema: %s", t->name,
                   jerr.text);
      json_decref(in);
      json_decref(tools);
      return NULL;
    }
    json_t *entry = json_pack("{ssssssso}", "name", t->name, "title",
                              t->title ? t->title : t->name, "description",
                              t->description, "inputSchema", in);
    if (out) json_object_set_new(entry, "outputSchema", out);
    if (!t->mutating)
      json_object_set_new(entry, "annotations",
                          json_pack("{sb}", "readOnlyHint", 1));
    json_array_append_new(tools, entry);
  }
  return tools;
}

static void usage(FILE *f, const dl_agent *agent) {
  fprintf(f,
          "usage: %s [--stdio | --http HOST:PORT] [--data DIR] [--tenant ID]\n"
          "          [--log-level LEVEL]\n"
          "%s\n"
          "  --stdio            serve MCP on stdin/stdout (the default)\n"
          "  --http HOST:PORT   serve Streamable HTTP on /mcp (PORT 0: any)\n"
          "  --data DIR         demo data directory (default\n"
          "                     $SWITCHBOARD_DEMO_DATA, else data/demo)\n"
          "  --tenant ID        tenant of requests that name none\n",
          agent->name, agent->instructions);
}

static void on_eof(void *ud) { uv_stop(&((dl_runtime *)ud)->loop); }
static void on_signal(uv_signal_t *h, int signum) {
  uv_stop(&((dl_runtime *)h->data)->loop);
}
static void close_handle(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Split HOST:PORT; 0 or -1 with a message on stderr. */
static int parse_listen(const char *agent, const char *s, char *host,
                        size_t host_len, int *port) {
  const char *colon = strrchr(s, ':');
  char *end = NULL;
  long p = colon ? strtol(colon + 1, &end, 10) : -1;
  if (!colon || colon == s || (size_t)(colon - s) >= host_len || !end || *end ||
      end == colon + 1 || p < 0 || p > 65535) {
    fprintf(stderr, "%s: --http expects HOST:PORT, got \"%s\"\n", agent, s);
    return -1;
  }
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  if (strcmp(host, "localhost") == 0) snprintf(host, host_len, "127.0.0.1");
  *port = (int)p;
  return 0;
}

int dl_agent_main(const dl_agent *agent, int argc, char **argv) {
  dl_runtime rt = {.agent = agent};
  const char *http = NULL;
  sb_error err = {0};
  int code = 2;
  sb_mcp_server *srv = NULL;
  sb_stdio_server *stdio = NULL;
  sb_http_server *hs = NULL;
  int signals = 0;

  sb_core_init();
  sb_log_set_level(SB_LOG_WARNING);
  signal(SIGPIPE, SIG_IGN);
  rt.data_dir = getenv("SWITCHBOARD_DEMO_DATA");
  if (!rt.data_dir || !*rt.data_dir) rt.data_dir = "data/demo";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout, agent);
      return 0;
    } else if (strcmp(a, "--stdio") == 0) {
      http = NULL;
    } else if (strcmp(a, "--http") == 0 && v) {
      http = v, i++;
    } else if (strcmp(a, "--data") == 0 && v) {
      rt.data_dir = v, i++;
    } else if (strcmp(a, "--tenant") == 0 && v) {
      if (!dl_tenant_valid(v)) {
        fprintf(stderr,
                "%s: --tenant: \"%s\" is not a tenant id "
                "(1-64 of A-Za-z0-9._-)\n",
                agent->name, v);
        return 2;
      }
      rt.default_tenant = v, i++;
    } else if (strcmp(a, "--log-level") == 0 && v) {
      int level = sb_log_level_parse(v);
      if (level < 0) {
        fprintf(stderr, "%s: --log-level: unknown level \"%s\"\n", agent->name,
                v);
        return 2;
      }
      sb_log_set_level((sb_log_level)level), i++;
    } else {
      fprintf(stderr, "%s: %s \"%s\"\n", agent->name,
              a[0] == '-' && !v ? "missing value or unknown option"
                                : "unknown option",
              a);
      usage(stderr, agent);
      return 2;
    }
  }
  char host[256];
  int port = 0;
  if (http && parse_listen(agent->name, http, host, sizeof host, &port) != 0)
    return 2;
  rt.tools = tool_list(agent, &err);
  if (!rt.tools) {
    fprintf(stderr, "%s: %s\n", agent->name, err.msg);
    return 1;
  }
  code = 1;
  if (uv_loop_init(&rt.loop) != 0) goto done;
  sb_mcp_server_options so = {.loop = &rt.loop,
                              .name = agent->name,
                              .instructions = agent->instructions,
                              .no_builtins = 1,
                              .capabilities = capabilities};
  srv = sb_mcp_server_new(&so);
  sb_mcp_provider p = {.name = agent->name,
                       .ud = &rt,
                       .list_tools = list_tools,
                       .call_tool = call_tool};
  if (!srv || sb_mcp_server_add_provider(srv, &p) != 0) goto done;
  if (http) {
    sb_http_server_options ho = {.listen_host = host,
                                 .listen_port = port,
                                 .max_message_bytes = 4u << 20,
                                 .max_json_depth = 64,
                                 .max_connections = 1024,
                                 .connection_memory_bytes = 65536,
                                 .connection_timeout_s = 300,
                                 .header_timeout_s = 10,
                                 .body_timeout_s = 60,
                                 .session_idle_timeout_s = 1800,
                                 .max_sessions = 1024,
                                 .replay_events = 64};
    hs = sb_http_server_start(&rt.loop, srv, &ho, &err);
    if (!hs) {
      fprintf(stderr, "%s: %s\n", agent->name, err.msg);
      goto done;
    }
    fprintf(stderr, "%s: serving MCP on http://%s:%d/mcp\n", agent->name, host,
            sb_http_server_port(hs));
  } else {
    stdio = sb_stdio_server_start(&rt.loop, srv, on_eof, &rt, &err);
    if (!stdio) {
      fprintf(stderr, "%s: %s\n", agent->name, err.msg);
      goto done;
    }
  }
  uv_signal_init(&rt.loop, &rt.sigterm);
  uv_signal_init(&rt.loop, &rt.sigint);
  rt.sigterm.data = rt.sigint.data = &rt;
  uv_signal_start(&rt.sigterm, on_signal, SIGTERM);
  uv_signal_start(&rt.sigint, on_signal, SIGINT);
  signals = 1;
  uv_run(&rt.loop, UV_RUN_DEFAULT);
  code = 0;
done:
  if (stdio) sb_stdio_server_stop(stdio);
  if (hs) sb_http_server_stop(hs);
  if (srv) sb_mcp_server_free(srv);
  if (signals) {
    uv_close((uv_handle_t *)&rt.sigterm, NULL);
    uv_close((uv_handle_t *)&rt.sigint, NULL);
  }
  /* Let the servers close their own handles (stdout drains its answers
   * first, then closes itself: closing it from here too would close it
   * twice) and queued jobs finish; then close whatever is left. */
  uv_run(&rt.loop, UV_RUN_DEFAULT);
  uv_walk(&rt.loop, close_handle, NULL);
  uv_run(&rt.loop, UV_RUN_DEFAULT);
  uv_loop_close(&rt.loop);
  json_decref(rt.tools);
  return code;
}
