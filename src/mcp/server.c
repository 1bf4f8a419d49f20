/* server.c: MCP server sessions, calls and dispatch for both eras.
 *
 * Every inbound request becomes an sb_mcp_call linked into two lists: its
 * output's (so a transport that loses its client cancels exactly the calls
 * writing there) and its session's (so notifications/cancelled can find it
 * by id). A call is freed when it is answered or cancelled, never both.
 *
 * The era is decided per message: _meta.protocolVersion means modern and
 * stateless; otherwise the session must have been opened with initialize.
 * Modern subscriptions/listen calls stay open in srv->listeners and are
 * the only way modern clients get change notifications; legacy sessions
 * get them on their notify_out when subscribed (resources) or always
 * (list_changed).
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "mcp/mcp_internal.h"

#define MODULE "mcp"

/* ---- list helpers ------------------------------------------------------ */

static void out_link(sb_mcp_out *out, sb_mcp_call *c) {
  sb_list_push_front(&out->calls_, &c->out_link);
}

static void out_unlink(sb_mcp_call *c) {
  if (c->out) sb_list_unlink(&c->out->calls_, &c->out_link);
}

static void session_link(sb_mcp_session *s, sb_mcp_call *c) {
  sb_list_push_front(&s->calls, &c->sess_link);
}

static void session_unlink(sb_mcp_call *c) {
  if (c->session) sb_list_unlink(&c->session->calls, &c->sess_link);
}

void mcp_listener_link(sb_mcp_call *c) {
  sb_list_push_front(&c->srv->listeners, &c->listen_link);
}

#define CALL_OF(n, member) sb_list_entry((n), sb_mcp_call, member)
#define SESSION_OF(n) sb_list_entry((n), sb_mcp_session, link)

static void listener_unlink(sb_mcp_call *c) {
  mcp_listen_release(c);
  if (!c->listen_filter) return;
  size_t i;
  json_t *u;
  json_array_foreach(json_object_get(c->listen_filter, "resourceSubscriptions"),
                     i, u) mcp_subscribe(c->srv, json_string_value(u), 0, NULL);
  /* A no-op while it still waits for its acknowledgement. */
  sb_list_unlink(&c->srv->listeners, &c->listen_link);
}

/* ---- batches (2025-03-26 only) ----------------------------------------
 * The batch owns a private output that collects the final responses of its
 * member calls and writes them as one array when the last one is done.
 * Non-final messages (progress) pass straight through. The batch itself is
 * a pseudo-call on the real output, so a lost client cancels it too. */
typedef struct mcp_batch {
  sb_mcp_out out;
  sb_mcp_call *holder; /* pseudo-call linked into the parent output */
  json_t *responses;
  size_t bytes; /* the responses' size, serialised */
  int pending;
  int started; /* all members dispatched */
} mcp_batch;

static void call_free(sb_mcp_call *c);
static void batch_maybe_finish(mcp_batch *b);

/* A member's final message is its response and goes into the array, even
 * an error that could not name a request (a member that is not a valid
 * request: `[1]`, `[{}]`): JSON-RPC 2.0 answers a batch with one array, and
 * there such an error carries "id": null. Only non-final messages
 * (progress, logs) pass straight through. */
/* The batch's answer is bounded like a message: once its responses pass
 * limits.max_message_bytes, a member's result is replaced by an error
 * saying so (the first response is always kept whole, as it would be on
 * its own). A few small requests could otherwise ask for gigabytes. */
static json_t *batch_bounded(mcp_batch *b, json_t *msg) {
  size_t n = json_dumpb(msg, NULL, 0, JSON_COMPACT);
  size_t cap = b->holder->srv->limits.max_message_bytes;
  if (json_array_size(b->responses) == 0 || b->bytes + n <= cap) {
    b->bytes += n;
    return json_incref(msg);
  }
  char text[256];
  snprintf(text, sizeof text,
           "left out: the batch's answers pass %zu bytes "
           "(limits.max_message_bytes); send this request on its own",
           cap);
  json_t *e = sb_rpc_error_new(json_object_get(msg, "id"),
                               SB_RPC_INTERNAL_ERROR, text, NULL);
  b->bytes += e ? json_dumpb(e, NULL, 0, JSON_COMPACT) : 0;
  return e;
}

static int batch_write(sb_mcp_out *out, json_t *msg, int final) {
  mcp_batch *b = out->data;
  if (!final) {
    sb_mcp_out *parent = b->holder->out;
    return parent ? parent->write(parent, msg, 0) : SB_ECANCELED;
  }
  if (json_object_get(msg, "id")) {
    json_t *kept = batch_bounded(b, msg);
    return !kept || json_array_append_new(b->responses, kept) ? SB_ENOMEM : 0;
  }
  json_t *copy = json_copy(msg); /* shallow: msg itself stays as it is */
  if (!copy) return SB_ENOMEM;
  if (json_object_set_new(copy, "id", json_null()) != 0) {
    json_decref(copy);
    return SB_ENOMEM;
  }
  return json_array_append_new(b->responses, copy) ? SB_ENOMEM : 0;
}

static void batch_maybe_finish(mcp_batch *b) {
  if (!b->started || b->pending > 0) return;
  sb_mcp_call *holder = b->holder;
  sb_mcp_out *parent = holder->out;
  out_unlink(holder);
  session_unlink(holder);
  holder->cancel_cb = NULL;
  /* Every request cancelled leaves nothing to answer (JSON-RPC: no empty
   * array), but the transport's request still ends. */
  if (parent)
    parent->write(parent,
                  json_array_size(b->responses) > 0 ? b->responses : NULL, 1);
  json_decref(b->responses);
  call_free(holder);
  sb_free(b);
}

static void batch_cancel(sb_mcp_call *holder, void *ud) {
  mcp_batch *b = ud;
  b->started = 0; /* members' cancellation must not finish the batch */
  sb_mcp_out_detach(&b->out);
  json_decref(b->responses);
  sb_free(b);
}

/* ---- calls ------------------------------------------------------------- */

static void call_free(sb_mcp_call *c) {
  if (c->held_tenant) {
    c->srv->admission.release(c->srv->admission.ud, c->held_tenant);
    sb_free(c->held_tenant);
  }
  json_decref(c->id);
  json_decref(c->params);
  json_decref(c->caps);
  json_decref(c->progress_token);
  json_decref(c->listen_filter);
  json_decref(c->list_error);
  mcp_listen_release(c);
  sb_free(c->method);
  sb_free(c);
}

/* Drop any server->client requests still waiting on this call. */
static void drop_pending_of(sb_mcp_call *c) {
  if (!c->session) return;
  mcp_pending **pp = &c->session->pending;
  while (*pp) {
    if ((*pp)->call == c) {
      mcp_pending *dead = *pp;
      *pp = dead->next;
      dead->cb(NULL, NULL, NULL, dead->ud); /* abandoned: release ud */
      sb_free(dead);
    } else {
      pp = &(*pp)->next;
    }
  }
}

/* Detach the call from every list; after this nothing can reach it. */
static void call_unlink_all(sb_mcp_call *c) {
  mcp_sub_wait_drop_call(c);
  out_unlink(c);
  session_unlink(c);
  listener_unlink(c);
  drop_pending_of(c);
}

/* A batch member is done (answered or cancelled). */
static void batch_member_done(mcp_batch *b) {
  if (!b) return;
  b->pending--;
  batch_maybe_finish(b);
}

static void call_cancel(sb_mcp_call *c) {
  mcp_batch *batch = c->batch;
  call_unlink_all(c);
  c->out = NULL;
  if (c->cancel_cb) c->cancel_cb(c, c->cancel_ud);
  call_free(c);
  batch_member_done(batch);
}

/* Write the final message and free the call. The call is unlinked first,
 * so the transport may release its output inside write(). */
static void call_finish(sb_mcp_call *c, json_t *msg) {
  sb_mcp_out *out = c->out;
  mcp_batch *batch = c->batch;
  call_unlink_all(c);
  if (out && msg) out->write(out, msg, 1);
  json_decref(msg);
  call_free(c);
  batch_member_done(batch);
}

json_t *sb_mcp_call_params(const sb_mcp_call *c) { return c->params; }
json_t *sb_mcp_call_id(const sb_mcp_call *c) { return c->id; }
const char *sb_mcp_call_method(const sb_mcp_call *c) { return c->method; }
int sb_mcp_call_is_modern(const sb_mcp_call *c) { return c->modern; }
const char *sb_mcp_call_version(const sb_mcp_call *c) { return c->version; }
json_t *sb_mcp_call_client_caps(const sb_mcp_call *c) { return c->caps; }
sb_mcp_server *sb_mcp_call_server(const sb_mcp_call *c) { return c->srv; }
uv_loop_t *sb_mcp_call_loop(const sb_mcp_call *c) { return c->srv->loop; }

void sb_mcp_call_on_cancel(sb_mcp_call *c, sb_mcp_cancel_cb cb, void *ud) {
  c->cancel_cb = cb;
  c->cancel_ud = ud;
}

int sb_mcp_call_has_capability(const sb_mcp_call *c, const char *name) {
  return json_object_get(c->caps, name) != NULL;
}

/* Callers without credentials (stdio) belong to the configured default. */
static const char *default_tenant(const sb_mcp_server *srv) {
  return srv->default_tenant;
}

const char *sb_mcp_call_tenant(const sb_mcp_call *c) {
  if (c->out && c->out->tenant) return c->out->tenant;
  if (c->session && c->session->tenant) return c->session->tenant;
  return default_tenant(c->srv);
}

const sb_principal *sb_mcp_call_principal(const sb_mcp_call *c) {
  return c->out ? c->out->principal : NULL;
}

void mcp_call_send(sb_mcp_call *c, json_t *msg) {
  if (c->out && msg) c->out->write(c->out, msg, 0);
  json_decref(msg);
}

void sb_mcp_call_progress(sb_mcp_call *c, double progress, double total,
                          const char *message) {
  if (!c->progress_token) return;
  json_t *p = json_pack("{sOsf}", "progressToken", c->progress_token,
                        "progress", progress);
  if (!p) return;
  if (total >= 0) json_object_set_new(p, "total", json_real(total));
  if (message) json_object_set_new(p, "message", json_string(message));
  mcp_call_send(c, sb_rpc_notification_new("notifications/progress", p));
}

void sb_mcp_call_log(sb_mcp_call *c, sb_log_level level, const char *logger,
                     json_t *data) {
  int lvl = (int)level; /* sb_log_level debug..error match MCP's first five */
  if (c->log_level == MCP_LOG_NONE || lvl < c->log_level) {
    json_decref(data);
    return;
  }
  json_t *p = json_pack("{ssso}", "level", mcp_log_level_name(lvl), "data",
                        data ? data : json_null());
  if (p && logger) json_object_set_new(p, "logger", json_string(logger));
  mcp_call_send(c, sb_rpc_notification_new("notifications/message", p));
}

void sb_mcp_call_forward_log(sb_mcp_call *c, json_t *params) {
  int lvl = mcp_log_level_parse(json_string_value(json_object_get(params, "level")));
  if (lvl < 0 || c->log_level == MCP_LOG_NONE || lvl < c->log_level) return;
  mcp_call_send(c, sb_rpc_notification_new("notifications/message",
                                           json_deep_copy(params)));
}

const char *sb_mcp_call_log_level(const sb_mcp_call *c) {
  return c->log_level == MCP_LOG_NONE ? NULL : mcp_log_level_name(c->log_level);
}

json_t *sb_mcp_call_progress_token(const sb_mcp_call *c) {
  return c->progress_token;
}

json_t *mcp_server_capabilities(sb_mcp_server *srv) {
  return srv->capabilities ? srv->capabilities(srv->capabilities_ud)
                           : mcp_builtin_capabilities();
}

/* The one object every answer's serverInfo shares (never changed once
 * made): a new reference. */
json_t *mcp_server_info(sb_mcp_server *srv) {
  return json_incref(srv->server_info);
}

/* A tool's result for a client of 2025-11-25 or earlier, whose
 * structuredContent is an object: any other value (allowed since
 * 2026-07-28) is left out, and given as text when the result has no
 * content of its own (which it SHOULD have had anyway). */
static void legacy_structured(sb_mcp_call *c, json_t *result) {
  json_t *sc = json_object_get(result, "structuredContent");
  if (!sc || json_is_object(sc) ||
      (strcmp(c->method, "tools/call") != 0 &&
       strcmp(c->method, "tasks/result") != 0))
    return;
  json_t *content = json_object_get(result, "content");
  if (!json_array_size(content)) {
    char *text = sb_json_dumps(sc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text)
      json_object_set_new(result, "content",
                          json_pack("[{ssss}]", "type", "text", "text", text));
    sb_free(text);
  }
  json_object_del(result, "structuredContent");
}

void sb_mcp_call_reply(sb_mcp_call *c, json_t *result) {
  if (!result) {
    sb_mcp_call_fail(c, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  if (!c->modern) legacy_structured(c, result);
  if (c->modern) {
    if (!json_object_get(result, "resultType"))
      json_object_set_new(result, "resultType", json_string("complete"));
    json_t *meta = json_object_get(result, "_meta");
    if (!meta) {
      meta = json_object();
      json_object_set_new(result, "_meta", meta);
    }
    json_object_set_new(meta, SB_MCP_META_SERVER_INFO, mcp_server_info(c->srv));
  }
  mcp_tasks_relate(c, result);
  call_finish(c, sb_rpc_result_new(c->id, result));
}

void sb_mcp_call_fail(sb_mcp_call *c, int code, const char *message,
                      json_t *data) {
  call_finish(c, sb_rpc_error_new(c->id, code, message, data));
}

void sb_mcp_call_reply_text(sb_mcp_call *c, const char *text, int is_error) {
  /* {content: [{type: "text", text}]}, built without json_pack's format
   * parsing: most agents' answers are this one shape. */
  json_t *block = json_object(), *content = json_array(), *r = json_object();
  int ok = block && content && r &&
           json_object_set_new(block, "type", json_string("text")) == 0 &&
           json_object_set_new(block, "text", json_string(text)) == 0 &&
           json_array_append(content, block) == 0 &&
           json_object_set(r, "content", content) == 0;
  json_decref(block);
  json_decref(content);
  if (!ok) {
    json_decref(r);
    r = NULL;
  }
  if (r && is_error) json_object_set_new(r, "isError", json_true());
  sb_mcp_call_reply(c, r);
}

void sb_mcp_call_fail_list(sb_mcp_call *c, int code, const char *message,
                           json_t *data) {
  if (c->list_error) {
    json_decref(data);
    return;
  }
  c->list_error = json_pack("{siss}", "code", code, "message", message);
  if (c->list_error && data) json_object_set_new(c->list_error, "data", data);
  else json_decref(data);
}

void sb_mcp_call_fail_invalid_args(sb_mcp_call *c, const char *tool,
                                   const char *what) {
  char msg[512];
  snprintf(msg, sizeof msg, "Invalid arguments for tool %.100s: %s", tool, what);
  sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, msg,
                   json_pack("{ss}", "tool", tool));
}

void sb_mcp_call_fail_scope(sb_mcp_call *c, const char *scope,
                            const char *message) {
  if (c->out)
    snprintf(c->out->refused_scope, sizeof c->out->refused_scope, "%s", scope);
  sb_mcp_call_fail(c, SB_RPC_FORBIDDEN, message,
                   json_pack("{ss}", "scope", scope));
}

void sb_mcp_call_fail_resource_not_found(sb_mcp_call *c, const char *uri) {
  char msg[512];
  snprintf(msg, sizeof msg, "Resource not found: %s", uri);
  sb_mcp_call_fail(c,
                   c->modern ? SB_RPC_INVALID_PARAMS
                             : SB_RPC_RESOURCE_NOT_FOUND_LEGACY,
                   msg, json_pack("{ss}", "uri", uri));
}

static void cache_hints(sb_mcp_call *c, json_t *result, long ttl_ms,
                        const char *scope) {
  if (!c->modern) return;
  /* MRTR retries depend on inputs outside the cache key: never cacheable. */
  if (json_object_get(c->params, "inputResponses") ||
      json_object_get(c->params, "requestState"))
    return;
  json_object_set_new(result, "ttlMs", json_integer(ttl_ms < 0 ? 0 : ttl_ms));
  json_object_set_new(result, "cacheScope", json_string(scope));
}

void sb_mcp_call_reply_cacheable(sb_mcp_call *c, json_t *result, long ttl_ms,
                                 const char *scope) {
  if (result) cache_hints(c, result, ttl_ms, scope);
  sb_mcp_call_reply(c, result);
}


int mcp_call_request_client(sb_mcp_call *c, const char *method,
                            json_t *params, mcp_response_cb cb, void *ud) {
  if (!c->session || !c->out) {
    json_decref(params);
    return SB_ESTATE;
  }
  mcp_pending *p = sb_calloc(1, sizeof *p);
  if (!p) {
    json_decref(params);
    return SB_ENOMEM;
  }
  p->id = ++c->session->next_request_id;
  p->call = c;
  p->cb = cb;
  p->ud = ud;
  p->next = c->session->pending;
  c->session->pending = p;
  json_t *id = json_integer(p->id);
  mcp_call_send(c, sb_rpc_request_new(id, method, params));
  json_decref(id);
  return 0;
}

int sb_mcp_call_ask_client(sb_mcp_call *c, const char *method,
                           json_t *params, sb_mcp_client_answer_cb cb,
                           void *ud) {
  if (c->modern) {
    json_decref(params);
    return SB_ESTATE;
  }
  if (params) mcp_tasks_relate(c, params);
  return mcp_call_request_client(c, method, params, cb, ud);
}

void sb_mcp_call_cancel_ask(sb_mcp_call *c, void *ud, const char *reason) {
  if (!c->session) return;
  for (mcp_pending **pp = &c->session->pending; *pp; pp = &(*pp)->next) {
    mcp_pending *p = *pp;
    if (p->call != c || p->ud != ud) continue;
    *pp = p->next;
    json_t *params = json_pack("{sI}", "requestId", p->id);
    if (params && reason) json_object_set_new(params, "reason", json_string(reason));
    mcp_call_send(c, sb_rpc_notification_new("notifications/cancelled", params));
    p->cb(NULL, NULL, NULL, p->ud);
    sb_free(p);
    return;
  }
}

/* A response from a legacy client to one of our requests. */
static void handle_client_response(sb_mcp_session *s, sb_rpc_msg *m) {
  if (!s || !json_is_integer(m->id)) return;
  json_int_t id = json_integer_value(m->id);
  for (mcp_pending **pp = &s->pending; *pp; pp = &(*pp)->next) {
    if ((*pp)->id != id) continue;
    mcp_pending *p = *pp;
    *pp = p->next;
    mcp_response_cb cb = p->cb;
    sb_mcp_call *call = p->call;
    void *ud = p->ud;
    sb_free(p);
    cb(call, m->result, m->error, ud);
    return;
  }
  SB_DEBUG(MODULE, "response to unknown request id %lld ignored",
           (long long)id);
}

/* ---- out -------------------------------------------------------------- */

int sb_mcp_out_busy(const sb_mcp_out *out) {
  return !sb_list_empty(&out->calls_);
}

void sb_mcp_out_detach(sb_mcp_out *out) {
  sb_list_link *n;
  while ((n = sb_list_first(&out->calls_)))
    call_cancel(CALL_OF(n, out_link));
}

/* ---- sessions ---------------------------------------------------------- */

sb_mcp_session *sb_mcp_session_new(sb_mcp_server *srv, sb_mcp_out *notify_out) {
  sb_mcp_session *s = sb_calloc(1, sizeof *s);
  if (!s) return NULL;
  s->srv = srv;
  s->notify_out = notify_out;
  s->log_level = MCP_LOG_NONE;
  s->subscriptions = json_object();
  if (!s->subscriptions) {
    sb_free(s);
    return NULL;
  }
  sb_random_hex(s->id, 16);
  sb_list_push_front(&srv->sessions, &s->link);
  return s;
}

void sb_mcp_session_free(sb_mcp_session *s) {
  if (!s) return;
  sb_list_link *n;
  while ((n = sb_list_first(&s->calls)))
    call_cancel(CALL_OF(n, sess_link));
  while (s->pending) {
    mcp_pending *p = s->pending;
    s->pending = p->next;
    p->cb(NULL, NULL, NULL, p->ud); /* abandoned: release ud */
    sb_free(p);
  }
  mcp_sub_waits_forget_session(s);
  const char *uri;
  json_t *v;
  json_object_foreach(s->subscriptions, uri, v) mcp_subscribe(s->srv, uri, 0, NULL);
  sb_list_unlink(&s->srv->sessions, &s->link);
  json_decref(s->subscriptions);
  json_decref(s->client_caps);
  json_decref(s->client_info);
  sb_free(s->tenant);
  sb_free(s);
}

const char *sb_mcp_session_id(const sb_mcp_session *s) { return s->id; }
int sb_mcp_session_initialized(const sb_mcp_session *s) {
  return s->initialized;
}
const char *sb_mcp_session_version(const sb_mcp_session *s) {
  return s->initialized ? s->version : NULL;
}
void sb_mcp_session_set_notify_out(sb_mcp_session *s, sb_mcp_out *out) {
  s->notify_out = out;
}

static void session_notify(sb_mcp_session *s, json_t *msg) {
  if (s->initialized && s->notify_out) s->notify_out->write(s->notify_out, msg, 0);
}

/* ---- server ------------------------------------------------------------ */

sb_mcp_server *sb_mcp_server_new(const sb_mcp_server_options *opts) {
  sb_mcp_server *srv = sb_calloc(1, sizeof *srv);
  if (!srv) return NULL;
  srv->limits = opts->limits;
  if (!srv->limits.max_message_bytes) srv->limits.max_message_bytes = 4u << 20;
  if (!srv->limits.max_json_depth) srv->limits.max_json_depth = 64;
  if (!srv->limits.page_size) srv->limits.page_size = 50;
  if (!srv->limits.max_listen_uris) srv->limits.max_listen_uris = 1000;
  if (!srv->limits.max_listen_streams_per_tenant)
    srv->limits.max_listen_streams_per_tenant = 100;
  srv->default_tenant =
      sb_strdup(opts->default_tenant ? opts->default_tenant : "default");
  srv->loop = opts->loop;
  srv->name = sb_strdup(opts->name ? opts->name : "switchboard");
  srv->server_info =
      srv->name ? json_pack("{ssss}", "name", srv->name, "version", SB_VERSION)
                : NULL;
  srv->instructions = sb_strdup(
      opts->instructions
          ? opts->instructions
          : "switchboard orchestrates dealership agents (sales, service, "
            "parts, finance, general) over MCP.");
  srv->started_ms = sb_now_ms();
  crypto_auth_keygen(srv->state_key);
  srv->capabilities = opts->capabilities;
  srv->capabilities_ud = opts->capabilities_ud;
  srv->admission = opts->admission;
  srv->authorize = opts->authorize;
  srv->authorize_ud = opts->authorize_ud;
  srv->item_visible = opts->item_visible;
  srv->builtin = opts->no_builtins ? NULL : mcp_builtin_new(srv);
  if (srv->builtin) {
    sb_mcp_provider p = mcp_builtin_provider;
    p.ud = srv->builtin;
    if (sb_mcp_server_add_provider(srv, &p) != 0) {
      mcp_builtin_free(srv->builtin);
      srv->builtin = NULL;
    }
  }
  if (!srv->name || !srv->server_info || !srv->instructions ||
      !srv->default_tenant || (!srv->builtin && !opts->no_builtins)) {
    sb_mcp_server_free(srv);
    return NULL;
  }
  return srv;
}

size_t sb_mcp_server_listens(const sb_mcp_server *srv) {
  size_t n = 0;
  for (sb_list_link *l = srv ? sb_list_first(&srv->listeners) : NULL; l;
       l = sb_list_next(l))
    n++;
  return n;
}

void sb_mcp_server_end_listens(sb_mcp_server *srv) {
  if (!srv) return;
  sb_list_link *n;
  while ((n = sb_list_first(&srv->listeners))) {
    sb_mcp_call *c = CALL_OF(n, listen_link);
    json_t *r = json_object();
    json_object_set_new(r, "_meta", json_pack("{sO}", SB_MCP_META_SUBSCRIPTION_ID, c->id));
    sb_mcp_call_reply(c, r);
  }
}

void sb_mcp_server_free(sb_mcp_server *srv) {
  if (!srv) return;
  sb_mcp_server_end_listens(srv);
  sb_list_link *n;
  while ((n = sb_list_first(&srv->sessions)))
    sb_mcp_session_free(SESSION_OF(n));
  for (size_t i = 0; i < srv->providers_len; i++)
    if (srv->providers[i].destroy) srv->providers[i].destroy(srv->providers[i].ud);
  mcp_builtin_free(srv->builtin);
  sb_free(srv->providers);
  sb_free(srv->name);
  json_decref(srv->server_info);
  sb_free(srv->instructions);
  sb_free(srv->default_tenant);
  mcp_listen_counts_free(srv);
  sodium_memzero(srv->state_key, sizeof srv->state_key);
  sb_free(srv);
}

const sb_mcp_limits *sb_mcp_server_limits(const sb_mcp_server *srv) {
  return &srv->limits;
}

/* Send a notification to modern listeners whose filter says yes (and, if
 * tenant is set, only to that tenant's). */
static void broadcast_listeners(sb_mcp_server *srv, const char *tenant,
                                const char *filter_key, const char *uri,
                                const char *method, json_t *params) {
  sb_list_link *n, *next;
  int64_t now = (int64_t)sb_wall_ms();
  SB_LIST_FOREACH_SAFE(n, next, &srv->listeners) {
    sb_mcp_call *c = CALL_OF(n, listen_link);
    if (tenant && strcmp(sb_mcp_call_tenant(c), tenant) != 0) continue;
    /* A stream opened with a key revoked or expired since hears no more. */
    if (!sb_principal_live(sb_mcp_call_principal(c), now)) {
      sb_mcp_call_fail(c, SB_RPC_FORBIDDEN,
                       "the credentials this subscription was opened with "
                       "have been revoked or have expired",
                       NULL);
      continue;
    }
    json_t *f = c->listen_filter;
    int wants;
    if (uri) {
      wants = 0;
      size_t i;
      json_t *v;
      json_array_foreach(json_object_get(f, "resourceSubscriptions"), i, v)
        if (strcmp(json_string_value(v), uri) == 0) wants = 1;
    } else {
      wants = json_is_true(json_object_get(f, filter_key));
    }
    if (!wants) continue;
    json_t *p = json_deep_copy(params);
    json_object_set_new(p, "_meta",
                        json_pack("{sO}", SB_MCP_META_SUBSCRIPTION_ID, c->id));
    mcp_call_send(c, sb_rpc_notification_new(method, p));
  }
}

void sb_mcp_server_list_changed_for(sb_mcp_server *srv, const char *tenant,
                                    const char *kind) {
  char method[64], key[32];
  snprintf(method, sizeof method, "notifications/%s/list_changed", kind);
  snprintf(key, sizeof key, "%sListChanged", kind);
  json_t *params = json_object();
  broadcast_listeners(srv, tenant, key, NULL, method, params);
  json_t *msg = sb_rpc_notification_new(method, NULL);
  for (sb_list_link *n = sb_list_first(&srv->sessions); n;
       n = sb_list_next(n)) {
    sb_mcp_session *s = SESSION_OF(n);
    if (tenant && strcmp(s->tenant ? s->tenant : default_tenant(srv), tenant) != 0)
      continue;
    session_notify(s, msg);
  }
  json_decref(msg);
  json_decref(params);
}

void sb_mcp_server_list_changed(sb_mcp_server *srv, const char *kind) {
  sb_mcp_server_list_changed_for(srv, NULL, kind);
}

void sb_mcp_server_resource_updated_for(sb_mcp_server *srv, const char *tenant,
                                        const char *uri) {
  json_t *params = json_pack("{ss}", "uri", uri);
  broadcast_listeners(srv, tenant, NULL, uri, "notifications/resources/updated",
                      params);
  json_t *msg = sb_rpc_notification_new("notifications/resources/updated",
                                        json_deep_copy(params));
  for (sb_list_link *n = sb_list_first(&srv->sessions); n;
       n = sb_list_next(n)) {
    sb_mcp_session *s = SESSION_OF(n);
    if (tenant && strcmp(s->tenant ? s->tenant : default_tenant(srv), tenant) != 0)
      continue;
    if (json_object_get(s->subscriptions, uri)) session_notify(s, msg);
  }
  json_decref(msg);
  json_decref(params);
}

void sb_mcp_server_forward_log(sb_mcp_server *srv, json_t *params) {
  int lvl = mcp_log_level_parse(json_string_value(json_object_get(params, "level")));
  if (lvl < 0) return;
  json_t *msg = NULL;
  for (sb_list_link *n = sb_list_first(&srv->sessions); n;
       n = sb_list_next(n)) {
    sb_mcp_session *s = SESSION_OF(n);
    if (s->log_level == MCP_LOG_NONE || lvl < s->log_level) continue;
    if (!msg) msg = sb_rpc_notification_new("notifications/message",
                                            json_deep_copy(params));
    session_notify(s, msg);
  }
  json_decref(msg);
}

void mcp_subscribe(sb_mcp_server *srv, const char *uri, int on,
                   sb_mcp_sub_wait *wait) {
  for (size_t i = 0; uri && i < srv->providers_len; i++)
    if (srv->providers[i].subscribe)
      srv->providers[i].subscribe(srv->providers[i].ud, uri, on, wait);
}

void sb_mcp_server_resource_updated(sb_mcp_server *srv, const char *uri) {
  sb_mcp_server_resource_updated_for(srv, NULL, uri);
}

/* ---- providers --------------------------------------------------------- */

int sb_mcp_server_add_provider(sb_mcp_server *srv, const sb_mcp_provider *p) {
  sb_mcp_provider *a = sb_realloc(srv->providers,
                                  (srv->providers_len + 1) * sizeof *a);
  if (!a) return SB_ENOMEM;
  srv->providers = a;
  a[srv->providers_len++] = *p;
  return 0;
}

static void reply_error(sb_mcp_out *out, json_t *id, int code,
                        const char *message, json_t *data) {
  json_t *msg = sb_rpc_error_new(id, code, message, data);
  if (msg && out) out->write(out, msg, 1);
  json_decref(msg);
}

/* Validate the modern _meta envelope; on failure answer and return -1. */
static int check_modern_meta(sb_mcp_out *out, sb_rpc_msg *m, json_t *meta,
                             const char **version) {
  json_t *v = json_object_get(meta, SB_MCP_META_PROTOCOL_VERSION);
  if (!json_is_string(v)) {
    reply_error(out, m->id, SB_RPC_INVALID_PARAMS,
                "params._meta[\"" SB_MCP_META_PROTOCOL_VERSION
                "\"]: must be a string",
                json_pack("{ss}", "metaField", SB_MCP_META_PROTOCOL_VERSION));
    return -1;
  }
  *version = json_string_value(v);
  if (!sb_mcp_version_supported(*version) ||
      !sb_mcp_version_is_modern(*version)) {
    /* A legacy version in a modern envelope is as unsupported as an
     * unknown one: legacy versions are only spoken after initialize. The
     * list names them all, as server/discover does (and as the example of
     * basic/versioning.mdx does): a client that speaks only a legacy one
     * learns that it may open a session with initialize. */
    char msg[200];
    if (sb_mcp_version_supported(*version))
      snprintf(msg, sizeof msg,
               "Unsupported protocol version: %s is spoken in a session "
               "opened with initialize; a request carrying its version in "
               "_meta uses " SB_MCP_MODERN_VERSION,
               *version);
    else
      snprintf(msg, sizeof msg, "Unsupported protocol version");
    reply_error(out, m->id, SB_RPC_UNSUPPORTED_PROTOCOL_VERSION, msg,
                json_pack("{soss}", "supported",
                          sb_mcp_supported_versions_json(), "requested",
                          *version));
    return -1;
  }
  json_t *caps = json_object_get(meta, SB_MCP_META_CLIENT_CAPS);
  if (!json_is_object(caps)) {
    reply_error(out, m->id, SB_RPC_INVALID_PARAMS,
                "params._meta[\"" SB_MCP_META_CLIENT_CAPS
                "\"]: required object is missing or not an object",
                json_pack("{ss}", "metaField", SB_MCP_META_CLIENT_CAPS));
    return -1;
  }
  json_t *info = json_object_get(meta, SB_MCP_META_CLIENT_INFO);
  if (info && !json_is_object(info)) {
    reply_error(out, m->id, SB_RPC_INVALID_PARAMS,
                "params._meta[\"" SB_MCP_META_CLIENT_INFO
                "\"]: must be an object",
                json_pack("{ss}", "metaField", SB_MCP_META_CLIENT_INFO));
    return -1;
  }
  json_t *lvl = json_object_get(meta, SB_MCP_META_LOG_LEVEL);
  if (lvl && mcp_log_level_parse(json_string_value(lvl)) < 0) {
    reply_error(out, m->id, SB_RPC_INVALID_PARAMS,
                "params._meta[\"" SB_MCP_META_LOG_LEVEL
                "\"]: must be a log level (debug ... emergency)",
                json_pack("{ss}", "metaField", SB_MCP_META_LOG_LEVEL));
    return -1;
  }
  return 0;
}

/* Multi round-trip fields, which any modern request may carry: the
 * answers keyed as the server's inputRequests were, each a result object,
 * and the opaque state handed back. On failure answer and return -1. */
static int check_input_responses(sb_mcp_out *out, sb_rpc_msg *m) {
  json_t *state = json_object_get(m->params, "requestState");
  if (state && !json_is_string(state)) {
    char text[160];
    snprintf(text, sizeof text,
             "params.requestState: expected the string the server handed "
             "out, got %s",
             sb_json_type_name(state));
    reply_error(out, m->id, SB_RPC_INVALID_PARAMS, text,
                json_pack("{ss}", "param", "requestState"));
    return -1;
  }
  json_t *responses = json_object_get(m->params, "inputResponses");
  if (!responses) return 0;
  char text[400];
  if (!json_is_object(responses)) {
    snprintf(text, sizeof text,
             "params.inputResponses: expected an object keyed by the "
             "inputRequests' keys, got %s",
             sb_json_type_name(responses));
  } else {
    const char *key;
    json_t *v;
    json_object_foreach(responses, key, v) {
      if (json_is_object(v)) continue;
      snprintf(text, sizeof text,
               "params.inputResponses[\"%.200s\"]: expected an object (the "
               "result of that input request), got %s",
               key, sb_json_type_name(v));
      goto refuse;
    }
    return 0;
  }
refuse:
  reply_error(out, m->id, SB_RPC_INVALID_PARAMS, text,
              json_pack("{ss}", "param", "inputResponses"));
  return -1;
}

static void cancel_by_id(sb_mcp_session *s, sb_mcp_out *out, json_t *params) {
  json_t *rid = json_object_get(params, "requestId");
  if (!sb_rpc_id_valid(rid)) return;
  /* Calls of a session (stdio, legacy HTTP) or of this very output. */
  sb_list *calls = s ? &s->calls : &out->calls_;
  for (sb_list_link *n = sb_list_first(calls); n; n = sb_list_next(n)) {
    sb_mcp_call *c = s ? CALL_OF(n, sess_link) : CALL_OF(n, out_link);
    if (json_equal(c->id, rid)) {
      SB_DEBUG(MODULE, "request cancelled by the client");
      /* The request's own transport (an HTTP POST, another connection
       * than this notification's) still waits for its end: end it with
       * nothing to send (HTTP: 202, or the SSE stream ends), as a batch
       * whose every member was cancelled does. */
      sb_mcp_out *o = c->out;
      int lone = c->batch == NULL;
      call_cancel(c);
      if (o && lone && o != out) o->write(o, NULL, 1);
      return;
    }
  }
}

static void dispatch_notification(sb_mcp_server *srv, sb_mcp_session *s,
                                  sb_mcp_out *out, sb_rpc_msg *m) {
  if (strcmp(m->method, "notifications/cancelled") == 0)
    cancel_by_id(s, out, m->params);
  /* notifications/initialized, roots/list_changed and unknown ones need no
   * answer: JSON-RPC forbids answering notifications. */
}

static void dispatch_one(sb_mcp_server *srv, sb_mcp_session *s,
                         sb_mcp_out *out, json_t *msg, mcp_batch *batch) {
  sb_rpc_msg m;
  sb_error err = {0};
  if (sb_rpc_classify(msg, &m, &err) != 0) {
    reply_error(out, m.id, err.code, err.msg, NULL);
    return;
  }
  if (m.kind == SB_RPC_RESPONSE) {
    handle_client_response(s, &m);
    return;
  }
  if (m.kind == SB_RPC_NOTIFICATION) {
    dispatch_notification(srv, s, out, &m);
    return;
  }

  json_t *meta = json_object_get(m.params, "_meta");
  const char *modern_version = NULL;
  int modern = json_object_get(meta, SB_MCP_META_PROTOCOL_VERSION) != NULL;
  if (modern && (check_modern_meta(out, &m, meta, &modern_version) != 0 ||
                 check_input_responses(out, &m) != 0))
    return;

  const mcp_method_def *method = mcp_method_find(m.method);

  if (!modern) {
    int is_init = strcmp(m.method, "initialize") == 0;
    /* A legacy session (stdio) takes pings before initialize too
     * (lifecycle: the one request a client may send before). */
    int early_ping = s && strcmp(m.method, "ping") == 0;
    if (!is_init && !early_ping && (!s || !s->initialized)) {
      /* Without an initialized session, only 2026-07-28 accepts a request,
       * and there one missing its required _meta is malformed: -32602
       * (basic/index.mdx), on stdio as on HTTP, where it is a 400. A legacy
       * client learns from the message that it must initialize. */
      reply_error(out, m.id, SB_RPC_INVALID_PARAMS,
                  "Bad Request: the server is not initialized; send "
                  "initialize first (legacy), or carry _meta[\"" SB_MCP_META_PROTOCOL_VERSION
                  "\"] (2026-07-28)",
                  json_pack("{ss}", "metaField", SB_MCP_META_PROTOCOL_VERSION));
      return;
    }
  }
  if (!method || !(method->eras & (modern ? MCP_ERA_MODERN : MCP_ERA_LEGACY))) {
    char text[320];
    snprintf(text, sizeof text, "Method not found: %.200s%s", m.method,
             method ? (modern ? " (legacy only; not in 2026-07-28)"
                             : " (modern only; needs _meta protocolVersion)")
                   : "");
    reply_error(out, m.id, SB_RPC_METHOD_NOT_FOUND, text,
                json_pack("{ss}", "method", m.method));
    return;
  }

  /* Quotas: refused before anything is allocated for the request. */
  int held = 0;
  const char *tenant = out->tenant ? out->tenant : default_tenant(srv);
  if (srv->admission.admit) {
    sb_mcp_refusal ref = {.message = "quota exceeded"};
    if (srv->admission.admit(srv->admission.ud, tenant, m.method, &held,
                             &ref) != 0) {
      reply_error(out, m.id, SB_RPC_QUOTA_EXCEEDED, ref.message, ref.data);
      return;
    }
  }
  sb_mcp_call *c = sb_calloc(1, sizeof *c);
  if (c && held && !(c->held_tenant = sb_strdup(tenant))) {
    sb_free(c);
    c = NULL;
  }
  if (!c) {
    if (held) srv->admission.release(srv->admission.ud, tenant);
    reply_error(out, m.id, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  c->srv = srv;
  c->session = s;
  c->out = out;
  c->id = json_incref(m.id);
  c->params = m.params ? json_incref(m.params) : json_object();
  c->method = sb_strdup(m.method);
  c->modern = modern;
  if (modern) {
    sb_strcopy(c->version, sizeof c->version, modern_version);
    c->caps = json_incref(json_object_get(meta, SB_MCP_META_CLIENT_CAPS));
    json_t *lvl = json_object_get(meta, SB_MCP_META_LOG_LEVEL);
    c->log_level = lvl ? mcp_log_level_parse(json_string_value(lvl))
                       : MCP_LOG_NONE;
  } else {
    sb_strcopy(c->version, sizeof c->version,
               s && s->initialized ? s->version : "");
    c->caps = s && s->client_caps ? json_incref(s->client_caps) : json_object();
    c->log_level = s ? s->log_level : MCP_LOG_NONE;
  }
  json_t *token = json_object_get(meta, "progressToken");
  if (sb_rpc_id_valid(token)) c->progress_token = json_incref(token);
  if (!c->params || !c->method || !c->caps) {
    call_free(c);
    reply_error(out, m.id, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  if (batch) {
    c->batch = batch;
    batch->pending++;
  }
  out_link(out, c);
  if (s) session_link(s, c);
  method->fn(srv, c); /* c may be freed from here on */
}

void sb_mcp_server_dispatch(sb_mcp_server *srv, sb_mcp_session *session,
                            sb_mcp_out *out, json_t *msg) {
  if (!json_is_array(msg)) {
    dispatch_one(srv, session, out, msg, NULL);
    return;
  }
  const char *v = session && session->initialized ? session->version : NULL;
  if (!sb_mcp_version_allows_batch(v)) {
    reply_error(out, NULL, SB_RPC_INVALID_REQUEST,
                v ? "JSON-RPC batches are not allowed in this protocol "
                    "revision (only 2025-03-26 has them)"
                  : "JSON-RPC batches are only allowed in a session that "
                    "negotiated protocol revision 2025-03-26",
                NULL);
    return;
  }
  if (json_array_size(msg) == 0) {
    reply_error(out, NULL, SB_RPC_INVALID_REQUEST, "empty batch", NULL);
    return;
  }
  mcp_batch *b = sb_calloc(1, sizeof *b);
  sb_mcp_call *holder = sb_calloc(1, sizeof *holder);
  if (!b || !holder || !(b->responses = json_array())) {
    sb_free(b);
    sb_free(holder);
    reply_error(out, NULL, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  b->out.write = batch_write;
  b->out.data = b;
  b->holder = holder;
  holder->srv = srv;
  holder->out = out;
  holder->params = json_object();
  holder->caps = json_object();
  holder->method = sb_strdup("(batch)");
  sb_mcp_call_on_cancel(holder, batch_cancel, b);
  out_link(out, holder);
  size_t i;
  json_t *item;
  /* Members answered synchronously (and errors for malformed ones) land in
   * b->responses at once; the rest complete later through call_finish. */
  json_array_foreach(msg, i, item) dispatch_one(srv, session, &b->out, item, b);
  b->started = 1;
  batch_maybe_finish(b);
}

void sb_mcp_server_dispatch_bytes(sb_mcp_server *srv, sb_mcp_session *session,
                                  sb_mcp_out *out, const char *data,
                                  size_t len) {
  sb_rpc_limits limits = {srv->limits.max_message_bytes, srv->limits.max_json_depth};
  json_t *msg = NULL;
  sb_error err = {0};
  if (sb_rpc_parse(data, len, &limits, &msg, &err) != 0) {
    reply_error(out, NULL, err.code, err.msg, NULL);
    return;
  }
  sb_mcp_server_dispatch(srv, session, out, msg);
  json_decref(msg);
}
