/* fuzz_mcp_server.c: libFuzzer target for MCP server dispatch (src/mcp/).
 *
 * One server is built once, with the built-in tools and a provider of its
 * own (a tool with an inputSchema, one that fails, one answered only at the
 * end of the input, a task tool, a resource, a template, a prompt, a
 * subscription that is acknowledged late) and a task provider. Each input
 * is one conversation:
 *
 *   byte 0   mode: bit 0 modern (no session) / legacy session; bits 1-2 the
 *            version the legacy session initializes with (3: none, the
 *            input must initialize); bit 3 modern: add the _meta envelope
 *            to requests that lack one; bit 4 answer the held calls and
 *            subscriptions before the output goes (else they are cancelled
 *            with it); bit 5 broadcast list_changed, resources/updated and
 *            a log message at the end; bit 6 fail the held subscriptions;
 *            bit 7 free the session before the output is detached. Bit 3
 *            also sentinel-encodes the Mcp-Name header checked against
 *            each message (sb_mcp_check_http_headers).
 *   rest     messages, one per line, each parsed as a transport would
 *            (sb_rpc_parse with small limits): an object or a batch. In a
 *            session the server is given the bytes, as stdio does
 *            (sb_mcp_server_dispatch_bytes, the same limits); without one
 *            the parsed message, as HTTP does.
 *
 * The loop never runs while messages are dispatched (built-in timers would
 * make runs depend on the clock); at the end the output is detached, the
 * session freed and the loop run once without waiting so closed timers are
 * released. Crashes, leaks (ASan) and UB (UBSan) are the findings; the
 * checks below abort on protocol violations: a request answered twice or a
 * response no request asked for, an answer to a notification, a request
 * neither answered nor in flight after its dispatch, a malformed message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "mcp/mcp.h"
#include "rpc/rpc.h"

static void check(int cond) {
  if (!cond) abort();
}

/* ---- what the server writes ------------------------------------------- */

/* Requests still owed an answer: dumped id -> count. Errors that may carry
 * "id": null (unclassifiable message, refused batch) are counted apart. */
static json_t *owed;
static int owed_null;
/* dumped id -> 1 if the request asked in the 2026-07-28 envelope, 0 if not;
 * dropped when two requests in flight share an id */
static json_t *owed_era;

static char *id_key(json_t *id) {
  return json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
}

static void owe(json_t *id, int modern) {
  if (!id || json_is_null(id)) {
    owed_null++;
    return;
  }
  char *k = id_key(id);
  check(k != NULL);
  json_t *n = json_object_get(owed, k);
  json_object_set_new(owed, k, json_integer(json_integer_value(n) + 1));
  if (n) json_object_set_new(owed_era, k, json_null());
  else json_object_set_new(owed_era, k, json_boolean(modern));
  sb_free(k);
}

static json_int_t owed_count(json_t *id) {
  char *k = id_key(id);
  check(k != NULL);
  json_int_t n = json_integer_value(json_object_get(owed, k));
  sb_free(k);
  return n;
}

/* One response: well formed, and answering something that was asked. */
static void check_response(json_t *msg) {
  check(json_is_object(msg));
  check(strcmp(json_string_value(json_object_get(msg, "jsonrpc")) ?: "",
               "2.0") == 0);
  json_t *result = json_object_get(msg, "result");
  json_t *error = json_object_get(msg, "error");
  check(!result != !error);
  check(!json_object_get(msg, "method"));
  if (error) {
    check(json_is_integer(json_object_get(error, "code")));
    check(json_is_string(json_object_get(error, "message")));
  } else {
    check(json_is_object(result));
  }
  json_t *id = json_object_get(msg, "id");
  if (!id || json_is_null(id)) { /* an error that could not name a request */
    check(error && owed_null > 0);
    owed_null--;
    return;
  }
  check(sb_rpc_id_valid(id));
  char *k = id_key(id);
  check(k != NULL);
  json_int_t n = json_integer_value(json_object_get(owed, k));
  check(n > 0); /* never asked, or answered twice */
  json_t *era = json_object_get(owed_era, k);
  if (result && json_is_boolean(era)) {
    /* a modern result says how it ended and who answered; a legacy one
     * has no resultType (no 2025 schema knows it) */
    json_t *type = json_object_get(result, "resultType");
    if (json_is_true(era))
      check(json_is_string(type) &&
            json_is_object(json_object_get(
                json_object_get(result, "_meta"), SB_MCP_META_SERVER_INFO)));
    else
      check(!type);
  }
  if (n == 1) {
    json_object_del(owed, k);
    json_object_del(owed_era, k);
  }
  else json_object_set_new(owed, k, json_integer(n - 1));
  sb_free(k);
}

/* Serialise as a transport would; what we emit must parse back. */
static void check_dump(json_t *msg) {
  size_t len = 0;
  char *s = sb_rpc_dump(msg, &len);
  check(s && strlen(s) == len);
  json_t *back = NULL;
  check(sb_rpc_parse(s, len, NULL, &back, NULL) == 0);
  json_decref(back);
  sb_free(s);
}

static int out_write(sb_mcp_out *out, json_t *msg, int final) {
  (void)out;
  check_dump(msg);
  if (final) {
    int status = sb_mcp_http_status(msg);
    check(status == 200 || status == 400 || status == 404);
  }
  if (!final) {
    /* progress, logs, questions to the client: all carry a method */
    check(json_is_object(msg) && json_is_string(json_object_get(msg, "method")));
    return 0;
  }
  if (json_is_array(msg)) { /* a batch's answer: never empty */
    check(json_array_size(msg) > 0);
    size_t i;
    json_t *m;
    json_array_foreach(msg, i, m) check_response(m);
    return 0;
  }
  check_response(msg);
  return 0;
}

static int notify_write(sb_mcp_out *out, json_t *msg, int final) {
  (void)out;
  check(!final);
  check_dump(msg);
  check(json_is_object(msg) && json_is_string(json_object_get(msg, "method")));
  return 0;
}

/* ---- the fuzz provider ------------------------------------------------ */

#define MAX_HELD 64
static sb_mcp_call *held[MAX_HELD]; /* fz_later calls, answered at the end */
static size_t held_len;
static sb_mcp_sub_wait *waits[MAX_HELD]; /* fz://slow acknowledgements */
static size_t waits_len;

static void held_cancelled(sb_mcp_call *call, void *ud) {
  (void)ud;
  for (size_t i = 0; i < held_len; i++)
    if (held[i] == call) {
      held[i] = held[--held_len];
      return;
    }
  check(0);
}

static void fz_list_tools(void *ud, sb_mcp_call *call, json_t *tools) {
  (void)ud;
  (void)call;
  json_error_t e;
  json_t *t = json_loads(
      "[{\"name\":\"fz_schema\",\"description\":\"adds\",\"inputSchema\":"
      "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"},"
      "\"tag\":{\"type\":\"string\"}},\"required\":[\"n\"]}},"
      "{\"name\":\"fz_fail\",\"inputSchema\":{\"type\":\"object\"}},"
      "{\"name\":\"fz_later\",\"inputSchema\":{\"type\":\"object\"}},"
      "{\"name\":\"fz_task\",\"inputSchema\":{\"type\":\"object\"}}]",
      0, &e);
  check(t != NULL);
  json_array_extend(tools, t);
  json_decref(t);
}

static int fz_call_tool(void *ud, sb_mcp_call *call, const char *name,
                        json_t *args) {
  (void)ud;
  if (strcmp(name, "fz_schema") == 0) {
    json_t *n = json_object_get(args, "n");
    if (!json_is_integer(n)) {
      sb_mcp_call_fail_invalid_args(call, name, "property 'n' must be an integer");
      return 1;
    }
    sb_mcp_call_reply(call, json_pack("{s[{ssss}]s{sI}}", "content", "type",
                                      "text", "text", "ok",
                                      "structuredContent", "n",
                                      json_integer_value(n) + 1));
    return 1;
  }
  if (strcmp(name, "fz_fail") == 0) {
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "fz_fail failed",
                     json_pack("{sO}", "args", args));
    return 1;
  }
  if (strcmp(name, "fz_later") == 0) {
    if (held_len == MAX_HELD) {
      sb_mcp_call_reply_text(call, "too many", 1);
      return 1;
    }
    sb_mcp_call_progress(call, 0, 1, "held");
    sb_mcp_call_log(call, SB_LOG_WARNING, "fz", json_string("held"));
    held[held_len++] = call;
    sb_mcp_call_on_cancel(call, held_cancelled, NULL);
    return 1;
  }
  if (strcmp(name, "fz_task") == 0) { /* not taken as a task */
    sb_mcp_call_reply_text(call, "no task", 0);
    return 1;
  }
  return 0;
}

static void fz_list_resources(void *ud, sb_mcp_call *call, json_t *items) {
  (void)ud;
  (void)call;
  json_array_append_new(items, json_pack("{ssss}", "uri", "fz://doc", "name",
                                         "doc"));
  json_array_append_new(items, json_pack("{ssss}", "uri", "fz://slow", "name",
                                         "slow"));
}

static void fz_list_templates(void *ud, sb_mcp_call *call, json_t *items) {
  (void)ud;
  (void)call;
  json_array_append_new(items, json_pack("{ssss}", "uriTemplate",
                                         "fz://item/{id}", "name", "item"));
}

static int fz_read_resource(void *ud, sb_mcp_call *call, const char *uri) {
  (void)ud;
  if (strcmp(uri, "fz://doc") != 0 && strncmp(uri, "fz://item/", 10) != 0)
    return 0;
  sb_mcp_call_reply(call, json_pack("{s[{ssss}]}", "contents", "uri", uri,
                                    "text", "content"));
  return 1;
}

static void fz_list_prompts(void *ud, sb_mcp_call *call, json_t *items) {
  (void)ud;
  (void)call;
  json_array_append_new(
      items, json_pack("{sss[{sssb}]}", "name", "fz_prompt", "arguments",
                       "name", "topic", "required", 1));
}

static int fz_get_prompt(void *ud, sb_mcp_call *call, const char *name,
                         json_t *args) {
  (void)ud;
  if (strcmp(name, "fz_prompt") != 0) return 0;
  const char *topic = json_string_value(json_object_get(args, "topic"));
  if (!topic) {
    sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS, "topic is required", NULL);
    return 1;
  }
  sb_mcp_call_reply(call, json_pack("{s[{sss{ssss}}]}", "messages", "role",
                                    "user", "content", "type", "text", "text",
                                    topic));
  return 1;
}

static int fz_complete(void *ud, sb_mcp_call *call, json_t *ref, json_t *arg) {
  (void)ud;
  (void)arg;
  if (strcmp(json_string_value(json_object_get(ref, "name")) ?: "",
             "fz_prompt") != 0)
    return 0;
  sb_mcp_call_reply(call, json_pack("{s{s[s]si}}", "completion", "values",
                                    "cars", "total", 1));
  return 1;
}

static void fz_subscribe(void *ud, const char *uri, int on,
                         sb_mcp_sub_wait *wait) {
  (void)ud;
  if (!on || !wait || strcmp(uri, "fz://slow") != 0 || waits_len == MAX_HELD)
    return;
  waits[waits_len++] = sb_mcp_sub_wait_hold(wait);
}

/* ---- the fuzz task provider: one task, "t1" --------------------------- */

static const char *const task_tools[] = {"fz_task", NULL};

static json_t *task_t1(void) {
  return json_pack("{sssssssssnsi}", "taskId", "t1", "status", "working",
                   "createdAt", "2026-12-02T08:00:00.000Z", "lastUpdatedAt",
                   "2026-12-02T08:00:01.000Z", "ttlMs", "pollIntervalMs", 500);
}

static int task_known(sb_mcp_call *call, const char *id) {
  if (strcmp(id, "t1") == 0) return 1;
  sb_mcp_call_fail_task_unknown(call);
  return 0;
}

static void tk_call_tool(void *ud, sb_mcp_call *call, const char *name,
                         json_t *args) {
  (void)ud;
  (void)name;
  (void)args;
  sb_mcp_call_reply_task(call, task_t1());
}

static void tk_get(void *ud, sb_mcp_call *call, const char *id) {
  (void)ud;
  if (task_known(call, id)) sb_mcp_call_reply_task(call, task_t1());
}

static void tk_cancel(void *ud, sb_mcp_call *call, const char *id) {
  (void)ud;
  if (task_known(call, id)) sb_mcp_call_task_cancel_refused(call, task_t1());
}

static void tk_update(void *ud, sb_mcp_call *call, const char *id,
                      json_t *responses) {
  (void)ud;
  (void)responses;
  if (task_known(call, id)) sb_mcp_call_reply(call, json_object());
}

static void tk_answered(sb_mcp_call *call, json_t *result, json_t *error,
                        void *ud) {
  (void)ud;
  if (!call) return;
  if (error) {
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "client refused", NULL);
    return;
  }
  sb_mcp_call_reply(call, json_pack("{s[{ssss}]}", "content", "type", "text",
                                    "text",
                                    json_string_value(json_object_get(
                                        result, "action")) ?: "none"));
}

static void tk_result(void *ud, sb_mcp_call *call, const char *id) {
  (void)ud;
  if (!task_known(call, id)) return;
  if (sb_mcp_call_ask_client(call, "elicitation/create",
                             json_pack("{ss}", "message", "slot?"),
                             tk_answered, NULL) != 0)
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "cannot ask", NULL);
}

static void tk_list(void *ud, sb_mcp_call *call, const char *cursor) {
  (void)ud;
  json_t *tasks = json_array();
  if (!cursor) json_array_append_new(tasks, task_t1());
  sb_mcp_call_reply_tasks(call, tasks, cursor ? NULL : "page2");
}

/* ---- one conversation ------------------------------------------------- */

static uv_loop_t loop;
static sb_mcp_server *srv;

static const char *const init_versions[] = {"2025-11-25", "2025-06-18",
                                            "2025-03-26"};

static void setup(void) {
  sb_core_init();
  sb_log_set_level(SB_LOG_ERROR);
  check(uv_loop_init(&loop) == 0);
  sb_mcp_server_options opts = {.limits = {.max_message_bytes = 8 * 1024,
                                           .max_json_depth = 12,
                                           .page_size = 3,
                                           .cache_ttl_ms = 1000,
                                           .max_listen_uris = 4,
                                           .max_listen_streams_per_tenant = 2},
                                .loop = &loop};
  srv = sb_mcp_server_new(&opts);
  check(srv != NULL);
  sb_mcp_provider p = {.name = "fz",
                       .list_tools = fz_list_tools,
                       .call_tool = fz_call_tool,
                       .list_resources = fz_list_resources,
                       .list_templates = fz_list_templates,
                       .read_resource = fz_read_resource,
                       .list_prompts = fz_list_prompts,
                       .get_prompt = fz_get_prompt,
                       .complete = fz_complete,
                       .subscribe = fz_subscribe};
  check(sb_mcp_server_add_provider(srv, &p) == 0);
  sb_mcp_task_provider tp = {.tools = task_tools,
                             .call_tool = tk_call_tool,
                             .get = tk_get,
                             .cancel = tk_cancel,
                             .update = tk_update,
                             .result = tk_result,
                             .list = tk_list};
  sb_mcp_server_set_task_provider(srv, &tp);
  owed = json_object();
  owed_era = json_object();
  check(owed && owed_era);
}

/* Add the 2026-07-28 envelope to a request that has none. */
static void add_meta(json_t *msg) {
  if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "method")))
    return;
  json_t *params = json_object_get(msg, "params");
  if (!params) {
    params = json_object();
    json_object_set_new(msg, "params", params);
  }
  if (!json_is_object(params) || json_object_get(params, "_meta")) return;
  json_object_set_new(
      params, "_meta",
      json_pack("{sss{s{}s{}}}", SB_MCP_META_PROTOCOL_VERSION,
                SB_MCP_MODERN_VERSION, SB_MCP_META_CLIENT_CAPS, "elicitation",
                SB_MCP_EXT_TASKS));
}

/* Count what one message object owes: a request its answer, an
 * unclassifiable message an error (with its id if it had a valid one, else
 * with id null). Returns that id (borrowed; NULL: none or null), or NULL
 * for a notification or a client's response, which owe nothing. */
static json_t *expect(json_t *msg, int *owes) {
  sb_rpc_msg m;
  sb_error err = {0};
  *owes = 1;
  int modern = sb_mcp_message_era(msg, NULL) == SB_MCP_ERA_MODERN;
  if (sb_rpc_classify(msg, &m, &err) != 0) {
    owe(m.id, modern);
    return m.id && !json_is_null(m.id) ? m.id : NULL;
  }
  if (m.kind == SB_RPC_REQUEST) {
    owe(m.id, modern);
    return m.id;
  }
  *owes = 0;
  return NULL;
}

/* The Streamable HTTP rules a transport applies to a message before it
 * dispatches it: the era, and the headers checked against the body. The
 * headers are the body's own (Mcp-Name sentinel-encoded on a mode bit) or,
 * if params carry a string "fzName", that string as Mcp-Name. */
static void check_headers(json_t *msg, int encode_name) {
  const char *version = NULL;
  sb_mcp_era era = sb_mcp_message_era(msg, &version);
  check(era == SB_MCP_ERA_NONE || era == SB_MCP_ERA_LEGACY ||
        era == SB_MCP_ERA_MODERN);
  check(!version || era == SB_MCP_ERA_MODERN);
  json_t *params = json_object_get(msg, "params");
  const char *method = json_string_value(json_object_get(msg, "method"));
  const char *name = json_string_value(json_object_get(params, "fzName"));
  char *encoded = NULL;
  if (!name) {
    static const char *const keys[] = {"name", "uri", "taskId"};
    for (size_t i = 0; !name && i < 3; i++)
      name = json_string_value(json_object_get(params, keys[i]));
    if (name && encode_name) {
      char *b64 = sb_base64_encode(name, strlen(name));
      encoded = b64 ? sb_asprintf("=?base64?%s?=", b64) : NULL;
      sb_free(b64);
      name = encoded;
    }
  }
  sb_error err = {0};
  int rc = sb_mcp_check_http_headers(msg, version, method, name, &err);
  check(rc == 0 || (rc == SB_RPC_HEADER_MISMATCH && err.code == rc));
  sb_free(encoded);
}

/* What the server is given: the message as HTTP hands it over, or, in a
 * session (stdio), the bytes it was parsed from. */
static const char *feed_text;
static size_t feed_len;

static void dispatch(sb_mcp_session *s, sb_mcp_out *out, json_t *msg) {
  if (feed_text) sb_mcp_server_dispatch_bytes(srv, s, out, feed_text, feed_len);
  else sb_mcp_server_dispatch(srv, s, out, msg);
}

static void feed(sb_mcp_session *s, sb_mcp_out *out, json_t *msg) {
  if (!json_is_array(msg)) {
    int null_before = owed_null, owes;
    json_t *id = expect(msg, &owes);
    json_int_t before = id ? owed_count(id) : 0;
    dispatch(s, out, msg);
    /* an error without an id is written at once */
    check(owed_null <= null_before);
    /* a request is answered, or still in flight on this output */
    if (owes && id && owed_count(id) == before) check(sb_mcp_out_busy(out));
    return;
  }
  const char *v = s ? sb_mcp_session_version(s) : NULL;
  if (!sb_mcp_version_allows_batch(v) || json_array_size(msg) == 0) {
    int null_before = owed_null;
    owe(NULL, 0); /* the batch is refused as a whole */
    dispatch(s, out, msg);
    check(owed_null <= null_before);
    return;
  }
  size_t i;
  json_t *item;
  int owes;
  json_array_foreach(msg, i, item) expect(item, &owes);
  dispatch(s, out, msg);
}

static void dispatch_text(sb_mcp_session *s, sb_mcp_out *out, int modern_meta,
                          int encode_name, const char *text, size_t len) {
  sb_rpc_limits limits = {.max_bytes = 8 * 1024, .max_depth = 12};
  json_t *msg = NULL;
  sb_error err = {0};
  int rc = sb_rpc_parse(text, len, &limits, &msg, &err);
  if (rc != 0) {
    check(!msg && err.code == rc);
    if (s) { /* stdio answers what it cannot parse */
      int null_before = owed_null;
      owe(NULL, 0);
      sb_mcp_server_dispatch_bytes(srv, s, out, text, len);
      check(owed_null == null_before);
    }
    return;
  }
  /* the bytes as they came, unless the envelope was added */
  feed_text = s && !modern_meta ? text : NULL;
  feed_len = len;
  if (modern_meta) {
    if (json_is_array(msg)) {
      size_t i;
      json_t *item;
      json_array_foreach(msg, i, item) add_meta(item);
    } else {
      add_meta(msg);
    }
  }
  if (json_is_array(msg)) {
    size_t i;
    json_t *item;
    json_array_foreach(msg, i, item) check_headers(item, encode_name);
  } else {
    check_headers(msg, encode_name);
  }
  feed(s, out, msg);
  feed_text = NULL;
  json_decref(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv) setup();
  if (size == 0) return 0;
  unsigned mode = data[0];
  data++;
  size--;
  int modern = mode & 1;
  unsigned vi = (mode >> 1) & 3;

  sb_mcp_out out = {.write = out_write};
  sb_mcp_out notify = {.write = notify_write};
  sb_mcp_session *s = modern ? NULL : sb_mcp_session_new(srv, &notify);
  check(modern || s);
  if (s && vi < 3) {
    char init[400];
    int n = snprintf(init, sizeof init,
                     "{\"jsonrpc\":\"2.0\",\"id\":\"init\",\"method\":"
                     "\"initialize\",\"params\":{\"protocolVersion\":\"%s\","
                     "\"capabilities\":{\"elicitation\":{},\"tasks\":{}},"
                     "\"clientInfo\":{\"name\":\"fz\",\"version\":\"1\"}}}",
                     init_versions[vi]);
    dispatch_text(s, &out, 0, 0, init, (size_t)n);
    check(sb_mcp_session_initialized(s));
    const char *ready = "{\"jsonrpc\":\"2.0\",\"method\":"
                        "\"notifications/initialized\"}";
    dispatch_text(s, &out, 0, 0, ready, strlen(ready));
  }

  const char *p = (const char *)data, *end = p + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    dispatch_text(s, &out, modern && (mode & 8), (mode & 8) != 0, p,
                  (size_t)(stop - p));
    p = stop + (nl ? 1 : 0);
  }

  if (mode & 16) {
    while (held_len > 0) sb_mcp_call_reply_text(held[--held_len], "later", 0);
    while (waits_len > 0) sb_mcp_sub_wait_done(waits[--waits_len]);
  }
  if (mode & 32) {
    sb_mcp_server_list_changed(srv, "tools");
    sb_mcp_server_list_changed(srv, "resources");
    sb_mcp_server_resource_updated(srv, "fz://doc");
    sb_mcp_server_resource_updated_for(srv, "default", "fz://slow");
    json_t *log = json_pack("{sssss{ss}}", "level", "error", "logger", "agent",
                            "data", "x", "y");
    sb_mcp_server_forward_log(srv, log);
    json_decref(log);
  }
  if (mode & 128) { /* the session ends before its output (HTTP DELETE) */
    sb_mcp_session_free(s);
    s = NULL;
  }
  sb_mcp_out_detach(&out);
  check(!sb_mcp_out_busy(&out));
  sb_mcp_session_free(s);
  check(held_len == 0);
  if (mode & 64) {
    while (waits_len > 0)
      sb_mcp_sub_wait_fail(waits[--waits_len], SB_RPC_INTERNAL_ERROR, "agent",
                           NULL);
  }
  while (waits_len > 0) sb_mcp_sub_wait_done(waits[--waits_len]);
  uv_run(&loop, UV_RUN_NOWAIT); /* closed timers are released */
  json_object_clear(owed);
  json_object_clear(owed_era);
  owed_null = 0;
  return 0;
}
