/* client.c: the MCP client switchboard uses to talk to its agents.
 *
 * Transport-agnostic: the caller gives a send function and feeds back what
 * arrives. Every request gets a fresh integer id, a uv timer for its
 * deadline and, with a progress callback, a progress token; its callback
 * runs exactly once — with the agent's answer, or with an outcome decided
 * here (timed out, cancelled, unsent, lost, session expired) and an error
 * that names the agent. Nothing in an error's data is read back: a remote
 * agent (itself perhaps a switchboard) cannot make its answer look like
 * one of our own failures.
 *
 * Era detection follows 2026-07-28 "Backward Compatibility": probe with
 * server/discover; a DiscoverResult offering our modern version, or an
 * UnsupportedProtocolVersionError, means a modern agent; any other answer
 * (method not found, a transport error, silence until the probe deadline)
 * means legacy, and we initialize.
 */
#include <string.h>

#include "mcp/mcp_internal.h"

#define MODULE "mcp-client"
#define LEGACY_VERSION "2025-11-25"
/* A legacy server answers server/discover at once (method not found);
 * only a silent one waits this long. Generous, because a stdio agent's
 * silence is also its start-up (a Node.js server can take seconds on a
 * loaded machine), and a modern agent taken for legacy loses the modern
 * protocol for the whole connection. */
#define DEFAULT_PROBE_MS 10000

typedef enum client_state {
  CLIENT_IDLE = 0,
  CLIENT_PROBING,
  CLIENT_INITIALIZING,
  CLIENT_READY,
} client_state;

struct sb_mcp_request {
  sb_mcp_client *client;
  sb_list_link link;       /* in client->pending */
  sb_mcp_request *id_next; /* in client->by_id[id & (nbuckets - 1)] */
  json_int_t id;
  char *method;
  json_t *progress_token; /* own reference or NULL */
  sb_mcp_progress_cb progress;
  sb_mcp_response_cb cb;
  void *ud;
  uv_timer_t *timer; /* heap: closed asynchronously */
  uint64_t timeout_ms;
  int sent;
};

struct sb_mcp_client {
  uv_loop_t *loop;
  char *name;
  sb_mcp_client_transport tr;
  sb_mcp_client_events ev;
  sb_mcp_client_era_pref era_pref;
  json_t *capabilities;
  json_t *client_info; /* {name, version}: initialize's, and shared by every
                          modern request's _meta */
  uint64_t probe_timeout_ms;
  client_state state;
  int modern;
  char version[16];
  json_t *server_caps;
  json_t *server_info;
  /* The agent's tools that mirror parameters into headers (x-mcp-header):
   * name -> inputSchema, as its tools/list answers said last. */
  json_t *tool_headers;
  json_int_t next_id;
  sb_list pending; /* newest first */
  /* pending by id, so an answer finds its request in O(1) however many
   * are in flight; ids are sequential, so `id & (nbuckets - 1)` spreads
   * them evenly. NULL (out of memory) means: search the list. */
  sb_mcp_request **by_id;
  size_t nbuckets, npending;
  /* connect in progress */
  sb_mcp_response_cb connect_cb;
  void *connect_ud;
  uint64_t connect_timeout_ms;
  /* When the whole handshake is due (loop ms; 0: no deadline): the probe
   * and the initialize after it share one budget (limits.startupTimeoutMs),
   * rather than each getting all of it. */
  uint64_t connect_deadline;
};

/* Pending requests, newest first. */
static sb_mcp_request *pending_first(const sb_mcp_client *c) {
  return sb_list_entry(sb_list_first(&c->pending), sb_mcp_request, link);
}
static sb_mcp_request *pending_next(const sb_mcp_request *r) {
  return sb_list_entry(sb_list_next(&r->link), sb_mcp_request, link);
}

/* ---- errors made here ---------------------------------------------------- */

static json_t *local_error(sb_mcp_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *local_error(sb_mcp_client *c, int code, const char *fmt, ...) {
  char detail[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  char *msg = sb_asprintf("agent %s: %s", c->name, detail);
  /* The agent's words may not be UTF-8, or be cut inside a character:
   * else no error object, and the request waiting for it never ends. */
  if (msg) sb_utf8_scrub(msg);
  json_t *e = json_pack("{siss?}", "code", code, "message", msg);
  sb_free(msg);
  return e;
}

const char *sb_mcp_outcome_name(sb_mcp_outcome o) {
  switch (o) {
  case SB_MCP_ANSWERED: return "answered";
  case SB_MCP_UNSENT: return "unsent";
  case SB_MCP_LOST: return "lost";
  case SB_MCP_TIMED_OUT: return "timed out";
  case SB_MCP_CANCELLED: return "cancelled";
  case SB_MCP_SESSION_EXPIRED: return "session expired";
  case SB_MCP_REFUSED: return "refused";
  }
  return "unknown";
}

/* ---- request bookkeeping -------------------------------------------------- */

static size_t id_bucket(const sb_mcp_client *c, json_int_t id) {
  return (size_t)id & (c->nbuckets - 1);
}

/* Double the id index once it holds more requests than buckets (from 64);
 * if that fails the old one stays, with longer chains. */
static void index_grow(sb_mcp_client *c) {
  size_t n = c->nbuckets ? c->nbuckets * 2 : 64;
  sb_mcp_request **b = sb_calloc(n, sizeof *b);
  if (!b) return;
  sb_free(c->by_id);
  c->by_id = b;
  c->nbuckets = n;
  for (sb_mcp_request *r = pending_first(c); r; r = pending_next(r)) {
    size_t i = id_bucket(c, r->id);
    r->id_next = b[i];
    b[i] = r;
  }
}

/* Put r (already on the pending list) in the id index. */
static void index_add(sb_mcp_client *c, sb_mcp_request *r) {
  c->npending++;
  if (c->npending > c->nbuckets) {
    index_grow(c); /* indexes r too: it is on the list */
    if (c->by_id && c->nbuckets >= c->npending) return;
  }
  if (!c->by_id) return;
  size_t i = id_bucket(c, r->id);
  r->id_next = c->by_id[i];
  c->by_id[i] = r;
}

static void index_remove(sb_mcp_client *c, sb_mcp_request *r) {
  c->npending--;
  if (!c->by_id) return;
  for (sb_mcp_request **pp = &c->by_id[id_bucket(c, r->id)]; *pp;
       pp = &(*pp)->id_next)
    if (*pp == r) {
      *pp = r->id_next;
      break;
    }
  r->id_next = NULL;
}

static void request_unlink(sb_mcp_request *r) {
  sb_mcp_client *c = r->client;
  if (!sb_list_linked(&c->pending, &r->link)) return; /* not pending */
  index_remove(c, r);
  sb_list_unlink(&c->pending, &r->link);
}

static void request_free(sb_mcp_request *r) {
  if (r->timer) {
    uv_timer_stop(r->timer);
    uv_close((uv_handle_t *)r->timer, sb_free_handle);
  }
  json_decref(r->progress_token);
  sb_free(r->method);
  sb_free(r);
}

/* Run the callback once and free the request. */
static void request_finish(sb_mcp_request *r, sb_mcp_outcome outcome,
                           json_t *result, json_t *error) {
  request_unlink(r);
  sb_mcp_response_cb cb = r->cb;
  void *ud = r->ud;
  request_free(r);
  if (cb) cb(ud, outcome, result, error);
}

/* Finish r with an error made here. */
static void request_fail(sb_mcp_request *r, sb_mcp_outcome outcome,
                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void request_fail(sb_mcp_request *r, sb_mcp_outcome outcome,
                         const char *fmt, ...) {
  char detail[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  json_t *e = local_error(r->client, SB_RPC_INTERNAL_ERROR, "%s", detail);
  request_finish(r, outcome, NULL, e);
  json_decref(e);
}

static sb_mcp_request *find_request(sb_mcp_client *c, json_int_t id) {
  if (c->by_id) {
    for (sb_mcp_request *r = c->by_id[id_bucket(c, id)]; r; r = r->id_next)
      if (r->id == id) return r;
    return NULL;
  }
  for (sb_mcp_request *r = pending_first(c); r; r = pending_next(r))
    if (r->id == id) return r;
  return NULL;
}

/* ---- sending ---------------------------------------------------------------- */

/* The modern per-request envelope. */
static void add_meta(sb_mcp_client *c, json_t *params) {
  json_t *meta = json_object_get(params, "_meta");
  if (!meta) {
    meta = json_object();
    json_object_set_new(params, "_meta", meta);
  }
  json_object_set_new(meta, SB_MCP_META_PROTOCOL_VERSION,
                      json_string(c->version));
  /* The caller may pass its own client's capabilities through. */
  if (!json_object_get(meta, SB_MCP_META_CLIENT_CAPS))
    json_object_set(meta, SB_MCP_META_CLIENT_CAPS, c->capabilities);
  json_object_set(meta, SB_MCP_META_CLIENT_INFO, c->client_info);
}

/* Stop the agent working on request id, sent already. */
static void cancel_sent(sb_mcp_client *c, json_t *id, const char *reason) {
  if (!(c->modern && c->tr.cancel_closes_stream))
    sb_mcp_client_notify(
        c, "notifications/cancelled",
        json_pack("{sOss}", "requestId", id, "reason", reason));
  if (c->tr.cancel) c->tr.cancel(c->tr.t, id);
}

static void on_request_timeout(uv_timer_t *t) {
  sb_mcp_request *r = t->data;
  sb_mcp_client *c = r->client;
  SB_WARN(MODULE, "agent %s: %s timed out after %llu ms", c->name, r->method,
          (unsigned long long)r->timeout_ms);
  json_t *id = json_integer(r->id);
  if (r->sent) {
    /* Tell the agent to stop; it must not answer any more. */
    cancel_sent(c, id, "deadline exceeded");
  }
  json_decref(id);
  request_fail(r, SB_MCP_TIMED_OUT, "%s timed out after %llu ms", r->method,
               (unsigned long long)r->timeout_ms);
}

/* What an agent's tools/list says of the tools that mirror parameters
 * into headers: a tool whose declarations break the rules gets none (the
 * gateway does not serve it). */
static void learn_tools(sb_mcp_client *c, const json_t *result) {
  size_t i;
  const json_t *tool;
  json_array_foreach(json_object_get(result, "tools"), i, tool) {
    const char *name = json_string_value(json_object_get(tool, "name"));
    json_t *schema = json_object_get(tool, "inputSchema");
    if (!name) continue;
    if (sb_mcp_tool_headers_declared(schema) &&
        sb_mcp_tool_headers_check(schema, NULL) == 0) {
      if (!c->tool_headers) c->tool_headers = json_object();
      json_object_set(c->tool_headers, name, schema);
    } else {
      json_object_del(c->tool_headers, name);
    }
  }
}

const json_t *sb_mcp_client_header_schema(const sb_mcp_client *c,
                                          const char *name) {
  return name ? json_object_get(c->tool_headers, name) : NULL;
}

/* The Mcp-Param-* headers of a tools/call (new), or NULL: none, or a
 * transport without headers. */
static json_t *tool_call_headers(sb_mcp_client *c, const char *method,
                                 const json_t *params) {
  if (!c->tool_headers || !c->tr.send_headers ||
      strcmp(method, "tools/call") != 0)
    return NULL;
  const json_t *schema = sb_mcp_client_header_schema(
      c, json_string_value(json_object_get(params, "name")));
  return schema ? sb_mcp_tool_headers_for(
                      schema, json_object_get(params, "arguments"))
                : NULL;
}

static sb_mcp_request *send_request(sb_mcp_client *c, const char *method,
                                    json_t *params, uint64_t timeout_ms,
                                    sb_mcp_progress_cb progress,
                                    sb_mcp_response_cb cb, void *ud,
                                    int envelope) {
  sb_mcp_request *r = sb_calloc(1, sizeof *r);
  if (!params) params = json_object();
  if (!r || !params || !(r->method = sb_strdup(method))) {
    sb_free(r);
    json_decref(params);
    return NULL;
  }
  r->client = c;
  r->id = ++c->next_id;
  r->cb = cb;
  r->ud = ud;
  r->progress = progress;
  r->timeout_ms = timeout_ms;
  if (envelope && c->modern) add_meta(c, params);
  if (progress) {
    char token[48];
    snprintf(token, sizeof token, "sb-%s-%lld", c->name, (long long)r->id);
    r->progress_token = json_string(token);
    json_t *meta = json_object_get(params, "_meta");
    if (!meta) {
      meta = json_object();
      json_object_set_new(params, "_meta", meta);
    }
    json_object_set(meta, "progressToken", r->progress_token);
  }
  sb_list_push_front(&c->pending, &r->link);
  index_add(c, r);
  if (timeout_ms) {
    r->timer = sb_malloc(sizeof *r->timer);
    if (r->timer) {
      uv_timer_init(c->loop, r->timer);
      r->timer->data = r;
      uv_timer_start(r->timer, on_request_timeout, timeout_ms, 0);
    }
  }
  json_int_t rid = r->id;
  json_t *id = json_integer(rid);
  json_t *msg = sb_rpc_request_new(id, method, params);
  json_decref(id);
  json_t *headers = tool_call_headers(c, method, params);
  /* The answer may arrive inside send() (an in-process agent) and free r:
   * mark it sent first, and look it up again afterwards. */
  r->sent = 1;
  int rc = !msg       ? SB_ENOMEM
           : headers ? c->tr.send_headers(c->tr.t, msg, headers)
                      : c->tr.send(c->tr.t, msg);
  json_decref(headers);
  json_decref(msg);
  r = find_request(c, rid);
  if (rc != 0 && r) {
    r->sent = 0;
    /* The caller learns through the callback, once, like any failure. */
    request_fail(r, SB_MCP_UNSENT, "cannot send %s: %s", method,
                 sb_strerror(rc));
    return NULL;
  }
  return r;
}

sb_mcp_request *sb_mcp_client_request(sb_mcp_client *c, const char *method,
                                      json_t *params, uint64_t timeout_ms,
                                      sb_mcp_progress_cb progress,
                                      sb_mcp_response_cb cb, void *ud) {
  if (c->state != CLIENT_READY) {
    json_decref(params);
    json_t *e = local_error(c, SB_RPC_INTERNAL_ERROR,
                            "not connected (cannot send %s)", method);
    if (cb) cb(ud, SB_MCP_UNSENT, NULL, e);
    json_decref(e);
    return NULL;
  }
  return send_request(c, method, params, timeout_ms, progress, cb, ud, 1);
}

json_int_t sb_mcp_request_id(const sb_mcp_request *r) { return r->id; }

int sb_mcp_request_sent(const sb_mcp_request *r) { return r->sent; }

void sb_mcp_request_cancel(sb_mcp_request *r, const char *reason) {
  sb_mcp_client *c = r->client;
  json_t *id = json_integer(r->id);
  if (r->sent) cancel_sent(c, id, reason ? reason : "cancelled");
  json_decref(id);
  request_fail(r, SB_MCP_CANCELLED, "%s cancelled (%s)", r->method,
               reason ? reason : "by the caller");
}

int sb_mcp_client_notify(sb_mcp_client *c, const char *method,
                         json_t *params) {
  if (params && c->modern) add_meta(c, params);
  json_t *msg = sb_rpc_notification_new(method, params);
  int rc = msg ? c->tr.send(c->tr.t, msg) : SB_ENOMEM;
  json_decref(msg);
  return rc;
}

int sb_mcp_client_respond(sb_mcp_client *c, json_t *id, json_t *result,
                          json_t *error) {
  json_t *msg;
  if (error) {
    msg = sb_rpc_error_new(
        id, (int)json_integer_value(json_object_get(error, "code")),
        json_string_value(json_object_get(error, "message")),
        json_incref(json_object_get(error, "data")));
    json_decref(error);
    json_decref(result);
  } else {
    msg = sb_rpc_result_new(id, result ? result : json_object());
  }
  int rc = msg ? c->tr.send(c->tr.t, msg) : SB_ENOMEM;
  json_decref(msg);
  return rc;
}

/* ---- lifecycle ---------------------------------------------------------------- */

sb_mcp_client *sb_mcp_client_new(const sb_mcp_client_options *o) {
  sb_mcp_client *c = sb_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->loop = o->loop;
  c->name = sb_strdup(o->name ? o->name : "agent");
  c->tr = o->transport;
  c->ev = o->events;
  c->era_pref = o->era;
  c->capabilities = o->capabilities ? json_deep_copy(o->capabilities)
                                    : json_object();
  c->client_info =
      json_pack("{ssss}", "name", "switchboard", "version", SB_VERSION);
  c->probe_timeout_ms = o->probe_timeout_ms ? o->probe_timeout_ms
                                            : DEFAULT_PROBE_MS;
  if (!c->name || !c->capabilities || !c->client_info) {
    sb_mcp_client_free(c);
    return NULL;
  }
  return c;
}

static void fail_all(sb_mcp_client *c, const char *detail) {
  sb_mcp_request *r;
  while ((r = pending_first(c))) {
    /* Whether the agent may have started on it: retrying is only safe
     * when it did not (or the tool is idempotent). */
    request_fail(r, r->sent ? SB_MCP_LOST : SB_MCP_UNSENT, "%s", detail);
  }
}

void sb_mcp_client_free(sb_mcp_client *c) {
  if (!c) return;
  c->connect_cb = NULL;
  fail_all(c, "client closed");
  json_decref(c->capabilities);
  json_decref(c->client_info);
  json_decref(c->server_caps);
  json_decref(c->server_info);
  json_decref(c->tool_headers);
  sb_free(c->by_id);
  sb_free(c->name);
  sb_free(c);
}

void sb_mcp_client_request_failed(sb_mcp_client *c, json_t *id,
                                  sb_mcp_outcome outcome, int session_ended,
                                  const char *detail) {
  sb_mcp_request *r =
      json_is_integer(id) ? find_request(c, json_integer_value(id)) : NULL;
  /* Not connected from now on, so nothing (a retry in this very callback)
   * goes out before a new initialize. */
  if (session_ended && c->state == CLIENT_READY) c->state = CLIENT_IDLE;
  if (r) request_fail(r, outcome, "%s", detail ? detail : "request failed");
  if (session_ended && c->ev.on_session_expired)
    c->ev.on_session_expired(c->ev.ud);
}

void sb_mcp_client_transport_lost(sb_mcp_client *c, const char *detail) {
  c->state = CLIENT_IDLE;
  fail_all(c, detail ? detail : "transport lost");
}

int sb_mcp_client_connected(const sb_mcp_client *c) {
  return c->state == CLIENT_READY;
}
int sb_mcp_client_is_modern(const sb_mcp_client *c) { return c->modern; }
const char *sb_mcp_client_version(const sb_mcp_client *c) {
  return c->state == CLIENT_READY ? c->version : NULL;
}
json_t *sb_mcp_client_server_capabilities(const sb_mcp_client *c) {
  return c->server_caps;
}
json_t *sb_mcp_client_server_info(const sb_mcp_client *c) {
  return c->server_info;
}

static void connect_done(sb_mcp_client *c, sb_mcp_outcome outcome,
                         json_t *result, json_t *error) {
  sb_mcp_response_cb cb = c->connect_cb;
  void *ud = c->connect_ud;
  c->connect_cb = NULL;
  if (cb) cb(ud, outcome, result, error);
}

static void on_initialized(void *ud, sb_mcp_outcome outcome, json_t *result,
                           json_t *error) {
  sb_mcp_client *c = ud;
  if (error) {
    c->state = CLIENT_IDLE;
    connect_done(c, outcome, NULL, error);
    return;
  }
  const char *v = json_string_value(json_object_get(result, "protocolVersion"));
  if (!v || !sb_mcp_version_supported(v) || sb_mcp_version_is_modern(v)) {
    c->state = CLIENT_IDLE;
    json_t *e = local_error(c, SB_RPC_INTERNAL_ERROR,
                            "initialize answered with unsupported protocol "
                            "version %s",
                            v ? v : "(none)");
    connect_done(c, SB_MCP_ANSWERED, NULL, e);
    json_decref(e);
    return;
  }
  snprintf(c->version, sizeof c->version, "%s", v);
  json_decref(c->server_caps);
  json_decref(c->server_info);
  c->server_caps = json_incref(json_object_get(result, "capabilities"));
  c->server_info = json_incref(json_object_get(result, "serverInfo"));
  c->modern = 0;
  c->state = CLIENT_READY;
  if (c->tr.set_header) c->tr.set_header(c->tr.t, "MCP-Protocol-Version", v);
  sb_mcp_client_notify(c, "notifications/initialized", NULL);
  SB_INFO(MODULE, "agent %s: legacy MCP %s", c->name, v);
  connect_done(c, SB_MCP_ANSWERED, result, NULL);
}

static void start_initialize(sb_mcp_client *c) {
  uint64_t timeout = c->connect_timeout_ms;
  if (c->connect_deadline) {
    uint64_t now = uv_now(c->loop);
    timeout = c->connect_deadline > now ? c->connect_deadline - now : 0;
    if (!timeout) {
      /* The probe went unanswered for the whole budget: the agent is not
       * answering at all (or not in time), in either era. */
      c->state = CLIENT_IDLE;
      json_t *e = local_error(c, SB_RPC_INTERNAL_ERROR,
                              "did not answer its handshake within %llu ms",
                              (unsigned long long)c->connect_timeout_ms);
      connect_done(c, SB_MCP_TIMED_OUT, NULL, e);
      json_decref(e);
      return;
    }
  }
  c->state = CLIENT_INITIALIZING;
  c->modern = 0;
  /* The probe's modern header must not reach a legacy initialize. */
  if (c->tr.set_header) c->tr.set_header(c->tr.t, "MCP-Protocol-Version", NULL);
  json_t *p =
      json_pack("{sssOsO}", "protocolVersion", LEGACY_VERSION, "capabilities",
                c->capabilities, "clientInfo", c->client_info);
  send_request(c, "initialize", p, timeout, NULL, on_initialized, c, 0);
}

static int offers_modern(json_t *versions) {
  size_t i;
  json_t *v;
  json_array_foreach(versions, i, v) if (json_is_string(v) &&
                                         strcmp(json_string_value(v),
                                                SB_MCP_MODERN_VERSION) == 0)
      return 1;
  return 0;
}

static int offers_legacy(json_t *versions) {
  size_t i;
  json_t *v;
  json_array_foreach(versions, i, v) {
    const char *s = json_string_value(v);
    if (s && sb_mcp_version_supported(s) && !sb_mcp_version_is_modern(s))
      return 1;
  }
  return 0;
}

static void on_discovered(void *ud, sb_mcp_outcome outcome, json_t *result,
                          json_t *error) {
  sb_mcp_client *c = ud;
  json_t *supported =
      result ? json_object_get(result, "supportedVersions")
             : json_object_get(json_object_get(error, "data"), "supported");
  int modern_error = error && json_integer_value(json_object_get(
                                  error, "code")) ==
                                  SB_RPC_UNSUPPORTED_PROTOCOL_VERSION;
  if (result && offers_modern(supported)) {
    snprintf(c->version, sizeof c->version, "%s", SB_MCP_MODERN_VERSION);
    json_decref(c->server_caps);
    json_decref(c->server_info);
    c->server_caps = json_incref(json_object_get(result, "capabilities"));
    c->server_info = json_incref(json_object_get(
        json_object_get(result, "_meta"), SB_MCP_META_SERVER_INFO));
    c->modern = 1;
    c->state = CLIENT_READY;
    SB_INFO(MODULE, "agent %s: modern MCP %s", c->name, c->version);
    connect_done(c, SB_MCP_ANSWERED, result, NULL);
    return;
  }
  /* Refused at the door (HTTP 401/403: our credentials, their scope): the
   * agent's era is still unknown, and an initialize would only be
   * refused too. The connect fails; the owner authorizes and connects
   * again. */
  if (outcome == SB_MCP_REFUSED) {
    c->state = CLIENT_IDLE;
    connect_done(c, outcome, NULL, error);
    return;
  }
  /* A modern answer without our modern version: only a legacy version we
   * share can still work; an unrecognised answer (an error, or a result
   * with no supportedVersions list, as some legacy servers give to any
   * method) means a legacy agent. */
  int recognised = outcome == SB_MCP_ANSWERED &&
                   ((result && json_is_array(supported)) || modern_error);
  if (c->era_pref == SB_MCP_CLIENT_MODERN ||
      (recognised && !offers_legacy(supported))) {
    c->state = CLIENT_IDLE;
    json_t *e = local_error(c, SB_RPC_UNSUPPORTED_PROTOCOL_VERSION,
                            "speaks no protocol version switchboard supports");
    connect_done(c, outcome, NULL, e);
    json_decref(e);
    return;
  }
  SB_DEBUG(MODULE, "agent %s: not modern; falling back to initialize", c->name);
  start_initialize(c);
}

int sb_mcp_client_connect(sb_mcp_client *c, uint64_t timeout_ms,
                          sb_mcp_response_cb cb, void *ud) {
  if (c->state == CLIENT_PROBING || c->state == CLIENT_INITIALIZING)
    return SB_ESTATE;
  c->connect_cb = cb;
  c->connect_ud = ud;
  c->connect_timeout_ms = timeout_ms;
  /* The loop's clock may be stale (a callback that ran long): the budget
   * counts from now. */
  uv_update_time(c->loop);
  c->connect_deadline = timeout_ms ? uv_now(c->loop) + timeout_ms : 0;
  if (c->era_pref == SB_MCP_CLIENT_LEGACY) {
    start_initialize(c);
    return 0;
  }
  c->state = CLIENT_PROBING;
  c->modern = 1; /* the probe carries the modern envelope */
  snprintf(c->version, sizeof c->version, "%s", SB_MCP_MODERN_VERSION);
  if (c->tr.set_header)
    c->tr.set_header(c->tr.t, "MCP-Protocol-Version", SB_MCP_MODERN_VERSION);
  uint64_t probe = c->probe_timeout_ms < timeout_ms || !timeout_ms
                       ? c->probe_timeout_ms
                       : timeout_ms;
  send_request(c, "server/discover", json_object(), probe, NULL, on_discovered,
               c, 1);
  return 0;
}

/* ---- receiving ------------------------------------------------------------------ */

static void handle_progress(sb_mcp_client *c, json_t *params) {
  json_t *token = json_object_get(params, "progressToken");
  for (sb_mcp_request *r = pending_first(c); r; r = pending_next(r)) {
    if (r->progress_token && json_equal(r->progress_token, token)) {
      if (r->progress) r->progress(r->ud, params);
      return;
    }
  }
}

int sb_mcp_request_may_ask(const sb_mcp_request *r) {
  return strcmp(r->method, "tools/call") == 0 ||
         strcmp(r->method, "prompts/get") == 0 ||
         strcmp(r->method, "resources/read") == 0;
}

/* The in-flight request an agent's own request belongs to: the one whose
 * response stream carried it when the transport says (related_id; NULL
 * when that request is no longer pending), else, *guessed set, the newest
 * tools/call, prompts/get or resources/read. */
static sb_mcp_request *related_request(sb_mcp_client *c,
                                       const json_t *related_id, int *guessed) {
  *guessed = 0;
  if (json_is_integer(related_id))
    return find_request(c, json_integer_value(related_id));
  for (sb_mcp_request *r = pending_first(c); r; r = pending_next(r))
    if (sb_mcp_request_may_ask(r)) {
      *guessed = 1;
      return r;
    }
  return NULL;
}

static void receive_one(sb_mcp_client *c, json_t *msg,
                        const json_t *related_id) {
  sb_rpc_msg m;
  sb_error err = {0};
  if (sb_rpc_classify(msg, &m, &err) != 0) {
    SB_WARN(MODULE, "agent %s sent an invalid message: %s", c->name, err.msg);
    /* A malformed answer to a request that waits (an error whose code is
     * not an integer): it ends the request now, as the agent's answer, not
     * at its deadline as if lost. */
    json_t *id = json_object_get(msg, "id");
    sb_mcp_request *r = json_is_integer(id) && !json_object_get(msg, "method") &&
                                (json_object_get(msg, "result") ||
                                 json_object_get(msg, "error"))
                            ? find_request(c, json_integer_value(id))
                            : NULL;
    if (r) {
      json_t *e = local_error(c, SB_RPC_INTERNAL_ERROR,
                              "its answer is not a valid JSON-RPC response "
                              "(%s)",
                              err.msg);
      request_finish(r, SB_MCP_ANSWERED, NULL, e);
      json_decref(e);
    }
    return;
  }
  if (m.kind == SB_RPC_RESPONSE) {
    sb_mcp_request *r =
        json_is_integer(m.id) ? find_request(c, json_integer_value(m.id)) : NULL;
    if (!r) {
      SB_DEBUG(MODULE, "agent %s: response to no pending request", c->name);
      return;
    }
    if (m.result && strcmp(r->method, "tools/list") == 0)
      learn_tools(c, m.result);
    request_finish(r, SB_MCP_ANSWERED, m.result, m.error);
    return;
  }
  if (m.kind == SB_RPC_NOTIFICATION) {
    if (strcmp(m.method, "notifications/progress") == 0) {
      handle_progress(c, m.params);
      return;
    }
    if (c->ev.on_notification)
      c->ev.on_notification(c->ev.ud, m.method, m.params);
    return;
  }
  /* A request from the agent. */
  if (strcmp(m.method, "ping") == 0) {
    sb_mcp_client_respond(c, m.id, json_object(), NULL);
    return;
  }
  if (!c->ev.on_agent_request) {
    sb_mcp_client_respond(
        c, m.id, NULL,
        json_pack("{siss}", "code", SB_RPC_METHOD_NOT_FOUND, "message",
                  "switchboard does not take this request from agents"));
    return;
  }
  int guessed = 0;
  sb_mcp_request *related = related_request(c, related_id, &guessed);
  c->ev.on_agent_request(c->ev.ud, m.id, m.method, m.params, related, guessed);
}

void sb_mcp_client_receive(sb_mcp_client *c, json_t *msg) {
  sb_mcp_client_receive_related(c, msg, NULL);
}

void sb_mcp_client_receive_related(sb_mcp_client *c, json_t *msg,
                                   const json_t *related_id) {
  if (json_is_array(msg)) {
    size_t i;
    json_t *item;
    json_array_foreach(msg, i, item) receive_one(c, item, related_id);
    return;
  }
  receive_one(c, msg, related_id);
}
