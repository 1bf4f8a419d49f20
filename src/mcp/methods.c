/* methods.c: the MCP request methods of both eras, one handler each.
 *
 * dispatch (server.c) has already validated the envelope, chosen the era
 * and made the sb_mcp_call; a handler answers it now or hands it to a
 * provider that answers later. Lists are gathered from every provider in
 * order and paginated here; routed requests (tools/call, resources/read,
 * prompts/get, completion/complete) go to the first provider that claims
 * the name or URI.
 */
#include <stddef.h>
#include <string.h>

#include "mcp/mcp_internal.h"

#define MODULE "mcp"

/* Cursors are opaque to clients; ours is base64 of "o:<offset>". */
static json_t *paginate(sb_mcp_call *c, json_t *items, const char *key) {
  size_t offset = 0, total = json_array_size(items);
  size_t page = (size_t)c->srv->limits.page_size;
  json_t *cursor = json_object_get(c->params, "cursor");
  if (cursor && !json_is_null(cursor)) {
    const char *s = json_string_value(cursor);
    size_t len = 0;
    unsigned char *raw = s ? sb_base64_decode(s, strlen(s), &len) : NULL;
    int64_t v = 0;
    /* "o:OFFSET"; the digits are read as len bytes, so a NUL inside is
     * no digit and such a cursor is not ours */
    int ok = raw && len > 2 && strncmp((char *)raw, "o:", 2) == 0 &&
             sb_parse_digits((char *)raw + 2, len - 2, &v) == 0 &&
             (uint64_t)v <= total;
    sb_free(raw);
    if (!ok) {
      sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, "Invalid cursor",
                       json_pack("{ss}", "param", "cursor"));
      return NULL;
    }
    offset = (size_t)v;
  }
  json_t *slice = json_array();
  for (size_t i = offset; i < total && i < offset + page; i++)
    json_array_append(slice, json_array_get(items, i));
  json_t *result = json_pack("{so}", key, slice);
  if (offset + page < total) {
    char buf[32];
    snprintf(buf, sizeof buf, "o:%zu", offset + page);
    char *enc = sb_base64_encode(buf, strlen(buf));
    json_object_set_new(result, "nextCursor", json_string(enc));
    sb_free(enc);
  }
  return result;
}

typedef void (*list_fn)(void *, sb_mcp_call *, json_t *);

/* Concatenate one list from every provider, paginate it, and reply. */
/* 2025-11-25 and earlier: a tool's outputSchema is of type "object" (its
 * structuredContent an object), and SDK clients of that era refuse the
 * whole list over one that is not. Since 2026-07-28 it is any JSON
 * Schema: for a legacy client such a tool is listed without it (its
 * results lose their structuredContent likewise, sb_mcp_call_reply). */
static void legacy_output_schemas(sb_mcp_call *c, json_t *tools) {
  if (c->modern) return;
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    json_t *out = json_object_get(t, "outputSchema");
    const char *type = json_string_value(json_object_get(out, "type"));
    if (!out || (type && strcmp(type, "object") == 0)) continue;
    json_t *copy = json_copy(t); /* the provider's object may be shared */
    if (!copy) continue;
    json_object_del(copy, "outputSchema");
    json_array_set_new(tools, i, copy);
  }
}

static void reply_list(sb_mcp_call *c, size_t fn_offset, const char *key,
                       long ttl_ms, const char *scope) {
  sb_mcp_server *srv = c->srv;
  json_t *items = json_array();
  for (size_t i = 0; i < srv->providers_len; i++) {
    list_fn fn = *(list_fn *)((char *)&srv->providers[i] + fn_offset);
    if (fn) fn(srv->providers[i].ud, c, items);
  }
  if (c->list_error) { /* a provider cannot serve its part */
    json_decref(items);
    json_t *e = c->list_error;
    json_t *data = json_object_get(e, "data");
    sb_mcp_call_fail(c, (int)json_integer_value(json_object_get(e, "code")),
                     json_string_value(json_object_get(e, "message")),
                     json_incref(data));
    return;
  }
  if (srv->item_visible) {
    /* Only what the caller may use; such a list is the caller's own. */
    sb_mcp_item_kind kind =
        strcmp(key, "tools") == 0       ? SB_MCP_ITEM_TOOL
        : strcmp(key, "resources") == 0 ? SB_MCP_ITEM_RESOURCE
        : strcmp(key, "prompts") == 0   ? SB_MCP_ITEM_PROMPT
                                        : SB_MCP_ITEM_TEMPLATE;
    const char *field = kind == SB_MCP_ITEM_RESOURCE   ? "uri"
                        : kind == SB_MCP_ITEM_TEMPLATE ? "uriTemplate"
                                                       : "name";
    const sb_principal *p = sb_mcp_call_principal(c);
    if (p && p->restricted) scope = "private";
    for (size_t i = json_array_size(items); i-- > 0;) {
      const char *name =
          json_string_value(json_object_get(json_array_get(items, i), field));
      if (name && !srv->item_visible(srv->authorize_ud, c, kind, name))
        json_array_remove(items, i);
    }
  }
  if (strcmp(key, "tools") == 0) {
    mcp_tasks_mark_tools(c, items);
    legacy_output_schemas(c, items);
  }
  json_t *r = paginate(c, items, key);
  json_decref(items);
  if (r) sb_mcp_call_reply_cacheable(c, r, ttl_ms, scope);
}

/* ---- method handlers --------------------------------------------------- */

static void handle_discover(sb_mcp_server *srv, sb_mcp_call *c) {
  json_t *caps = mcp_server_capabilities(srv);
  /* `tasks` is 2025-11-25's capability (a mount passes on its legacy
   * agent's); 2026-07-28 has tasks as an extension only. */
  json_object_del(caps, "tasks");
  if (caps) mcp_tasks_capabilities(srv, caps, 1, NULL);
  json_t *r = json_pack("{sososs}", "supportedVersions",
                        sb_mcp_supported_versions_json(), "capabilities", caps,
                        "instructions", srv->instructions);
  sb_mcp_call_reply_cacheable(c, r, srv->limits.cache_ttl_ms, "public");
}

/* What a session keeps of initialize is bounded: a client that sends a
 * megabyte of clientInfo or capabilities is refused, and of clientInfo
 * only name and version are kept (copied, so the request can go). */
#define INIT_CLIENT_INFO_MAX_BYTES 4096
#define INIT_CLIENT_FIELD_MAX_BYTES 256
#define INIT_CAPABILITIES_MAX_BYTES 16384

/* 1 if v serialises to more than max bytes. */
static int json_larger_than(json_t *v, size_t max) {
  return v && json_dumpb(v, NULL, 0, JSON_COMPACT) > max;
}

/* A too large initialize param: -32602 naming it and the limit. */
static int init_param_too_large(sb_mcp_call *c, const char *param, size_t max) {
  char msg[160];
  snprintf(msg, sizeof msg, "params.%s: larger than the limit of %zu bytes",
           param, max);
  sb_mcp_call_fail(
      c, SB_RPC_INVALID_PARAMS, msg,
      json_pack("{sssI}", "param", param, "limit", (json_int_t)max));
  return 1;
}

/* Check clientInfo and capabilities against their limits; answers and
 * returns 1 if one is over. */
static int init_params_too_large(sb_mcp_call *c, json_t *info, json_t *caps) {
  if (json_larger_than(caps, INIT_CAPABILITIES_MAX_BYTES))
    return init_param_too_large(c, "capabilities", INIT_CAPABILITIES_MAX_BYTES);
  if (json_larger_than(info, INIT_CLIENT_INFO_MAX_BYTES))
    return init_param_too_large(c, "clientInfo", INIT_CLIENT_INFO_MAX_BYTES);
  static const char *const fields[] = {"name", "version"};
  for (size_t i = 0; i < 2; i++) {
    const char *v = json_string_value(json_object_get(info, fields[i]));
    if (v && strlen(v) > INIT_CLIENT_FIELD_MAX_BYTES)
      return init_param_too_large(c,
                                  i ? "clientInfo.version" : "clientInfo.name",
                                  INIT_CLIENT_FIELD_MAX_BYTES);
  }
  return 0;
}

/* {name, version} of clientInfo: what the session keeps (new reference). */
static json_t *client_info_kept(json_t *info) {
  json_t *kept = json_object();
  static const char *const fields[] = {"name", "version"};
  for (size_t i = 0; kept && i < 2; i++) {
    json_t *v = json_object_get(info, fields[i]);
    if (json_is_string(v))
      json_object_set_new(kept, fields[i], json_string(json_string_value(v)));
  }
  return kept;
}

static void handle_initialize(sb_mcp_server *srv, sb_mcp_call *c) {
  sb_mcp_session *s = c->session;
  json_t *p = c->params;
  const char *requested =
      json_string_value(json_object_get(p, "protocolVersion"));
  json_t *caps = json_object_get(p, "capabilities");
  json_t *info = json_object_get(p, "clientInfo");
  if (!s) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_REQUEST,
                     "initialize needs a session-capable transport", NULL);
    return;
  }
  if (s->initialized) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_REQUEST,
                     "initialize: this session is already initialized", NULL);
    return;
  }
  if (!requested) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                     "params.protocolVersion: required string",
                     json_pack("{ss}", "param", "protocolVersion"));
    return;
  }
  if (caps && !json_is_object(caps)) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                     "params.capabilities: must be an object",
                     json_pack("{ss}", "param", "capabilities"));
    return;
  }
  if (info && !json_is_object(info)) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                     "params.clientInfo: must be an object",
                     json_pack("{ss}", "param", "clientInfo"));
    return;
  }
  if (init_params_too_large(c, info, caps)) return;
  /* Legacy negotiation: echo a supported legacy version, else offer our
   * latest legacy one and let the client decide. */
  const char *v = sb_mcp_version_supported(requested) &&
                          !sb_mcp_version_is_modern(requested)
                      ? requested
                      : "2025-11-25";
  snprintf(s->version, sizeof s->version, "%s", v);
  /* Copies: nothing of the request's own tree stays with the session. */
  s->client_caps = caps ? json_deep_copy(caps) : json_object();
  s->client_info = client_info_kept(info);
  sb_free(s->tenant);
  s->tenant = sb_strdup(sb_mcp_call_tenant(c));
  s->initialized = 1;
  json_t *server_caps = mcp_server_capabilities(srv);
  if (server_caps) mcp_tasks_capabilities(srv, server_caps, 0, s->version);
  json_t *r = json_pack(
      "{sssososs}", "protocolVersion", s->version, "capabilities", server_caps,
      "serverInfo", mcp_server_info(srv), "instructions", srv->instructions);
  SB_INFO(MODULE, "session %.8s initialized with %s (client %s)", s->id,
          s->version,
          json_string_value(json_object_get(info, "name")) ?: "unnamed");
  sb_mcp_call_reply(c, r);
}

static void handle_set_level(sb_mcp_server *srv, sb_mcp_call *c) {
  const char *name = json_string_value(json_object_get(c->params, "level"));
  int level = mcp_log_level_parse(name);
  if (level < 0) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                     "params.level: must be one of debug, info, notice, "
                     "warning, error, critical, alert, emergency",
                     json_pack("{ss}", "param", "level"));
    return;
  }
  c->session->log_level = level;
  sb_mcp_call_reply(c, json_object());
}

static void reply_empty(sb_mcp_call *c) { sb_mcp_call_reply(c, json_object()); }

/* A subscription a provider could not put in effect: answer with its error. */
static void fail_with(sb_mcp_call *c, json_t *error) {
  json_t *data = json_object_get(error, "data");
  sb_mcp_call_fail(c, (int)json_integer_value(json_object_get(error, "code")),
                   json_string_value(json_object_get(error, "message")),
                   json_incref(data));
}

/* A URI a subscription is kept under: no longer than this. */
#define MAX_SUBSCRIBED_URI_BYTES 8192

/* 0, or the call failed: uri (at param) is longer than a subscription
 * keeps. */
static int uri_fits(sb_mcp_call *c, const char *param, const char *uri) {
  size_t n = strlen(uri);
  if (n <= MAX_SUBSCRIBED_URI_BYTES) return 0;
  char msg[200];
  snprintf(msg, sizeof msg,
           "%s: a URI of %zu bytes; a subscription takes at most %d", param, n,
           MAX_SUBSCRIBED_URI_BYTES);
  sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, msg,
                   json_pack("{sssi}", "param", param, "limit",
                             MAX_SUBSCRIBED_URI_BYTES));
  return SB_EINVAL;
}

/* 0 if the caller may subscribe to uri (at param): it fits, and reading it
 * is permitted (knowing when a resource changes is reading it); else the
 * call has been failed (a refusal answered by the authorize hook). */
static int subscribable(sb_mcp_server *srv, sb_mcp_call *c, const char *param,
                        const char *uri) {
  if (uri_fits(c, param, uri) != 0) return SB_EINVAL;
  if (srv->authorize &&
      srv->authorize(srv->authorize_ud, c, SB_MCP_ITEM_RESOURCE, uri, NULL))
    return SB_EPERM;
  return 0;
}

/* resources/subscribe: answered once every provider has it in effect
 * (mcp_sub_wait_new_uri undoes it if one could not). A second subscribe of
 * the same URI while the first still waits gets the first one's answer. */
static void handle_subscribe(sb_mcp_server *srv, sb_mcp_call *c, int on) {
  const char *uri = json_string_value(json_object_get(c->params, "uri"));
  if (!uri) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, "params.uri: required string",
                     json_pack("{ss}", "param", "uri"));
    return;
  }
  if (on && subscribable(srv, c, "params.uri", uri) != 0) return;
  int had = json_object_get(c->session->subscriptions, uri) != NULL;
  /* A session holds as many as one listen stream may. */
  int max = srv->limits.max_listen_uris;
  if (on && !had &&
      json_object_size(c->session->subscriptions) >= (size_t)max) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "this session holds %d subscriptions, the limit "
             "(limits.max_listen_uris): unsubscribe from one first",
             max);
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, msg,
                     json_pack("{sssi}", "param", "uri", "limit", max));
    return;
  }
  sb_mcp_sub_wait *pending = had ? mcp_sub_wait_of(c->session, uri) : NULL;
  if (on && pending) {
    mcp_sub_wait_follow(pending, c);
    return;
  }
  if (on && !had) {
    json_object_set_new(c->session->subscriptions, uri, json_true());
    sb_mcp_sub_wait *w = mcp_sub_wait_new_uri(c, uri, reply_empty, fail_with);
    mcp_subscribe(srv, uri, 1, w);
    if (w) {
      sb_mcp_sub_wait_done(w);
      return;
    }
  } else if (!on && had) {
    if (pending) mcp_sub_wait_forget(pending);
    mcp_subscribe(srv, uri, 0, NULL);
    json_object_del(c->session->subscriptions, uri);
  }
  reply_empty(c);
}

/* ---- listen caps ---------------------------------------------------------
 * Each open listen stream holds its filter and the providers'
 * subscriptions: the filter's URIs are capped (max_listen_uris) and so are
 * a tenant's open streams (max_listen_streams_per_tenant). */

static size_t *listen_count(sb_mcp_server *srv, const char *tenant, int add) {
  for (size_t i = 0; i < srv->listens_len; i++)
    if (strcmp(srv->listens[i].tenant, tenant) == 0)
      return &srv->listens[i].streams;
  if (!add) return NULL;
  char *copy = sb_strdup(tenant);
  mcp_tenant_listens *t =
      copy ? sb_realloc(srv->listens, (srv->listens_len + 1) * sizeof *t)
           : NULL;
  if (!t) {
    sb_free(copy);
    return NULL;
  }
  srv->listens = t;
  t[srv->listens_len] = (mcp_tenant_listens){copy, 0};
  return &t[srv->listens_len++].streams;
}

/* Count c against its tenant's streams; answers and returns -1 if the
 * tenant has its fill. */
static int listen_admit(sb_mcp_server *srv, sb_mcp_call *c) {
  const char *tenant = sb_mcp_call_tenant(c);
  size_t *n = listen_count(srv, tenant ? tenant : "", 1);
  int max = srv->limits.max_listen_streams_per_tenant;
  if (n && *n >= (size_t)max) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "too many open subscriptions/listen streams: this tenant's "
             "limit of %d (limits.max_listen_streams_per_tenant) is reached; "
             "close one first",
             max);
    sb_mcp_call_fail(c, SB_RPC_SERVER_BUSY, msg,
                     json_pack("{sI}", "limit", (json_int_t)max));
    return -1;
  }
  if (!n || !(c->listen_tenant = sb_strdup(tenant ? tenant : ""))) {
    sb_mcp_call_fail(c, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return -1;
  }
  (*n)++;
  return 0;
}

void mcp_listen_release(sb_mcp_call *c) {
  if (!c->listen_tenant) return;
  size_t *n = listen_count(c->srv, c->listen_tenant, 0);
  if (n && *n) (*n)--;
  sb_free(c->listen_tenant);
  c->listen_tenant = NULL;
}

void mcp_listen_counts_free(sb_mcp_server *srv) {
  for (size_t i = 0; i < srv->listens_len; i++)
    sb_free(srv->listens[i].tenant);
  sb_free(srv->listens);
  srv->listens = NULL;
  srv->listens_len = 0;
}

/* notifications/subscriptions/acknowledged, the first message of a listen
 * stream; from then on the stream gets what its filter asks for. */
static void listen_acknowledge(sb_mcp_call *c) {
  json_t *ack = json_pack("{s{sO}sO}", "_meta", SB_MCP_META_SUBSCRIPTION_ID,
                          c->id, "notifications", c->listen_filter);
  mcp_call_send(c, sb_rpc_notification_new(
                       "notifications/subscriptions/acknowledged", ack));
  mcp_listener_link(c);
}

json_t *sb_mcp_listen_offered(const json_t *caps, int *subscribe) {
  static const char *const kinds[] = {"tools", "resources", "prompts"};
  static const char *const flags[] = {
      "toolsListChanged", "resourcesListChanged", "promptsListChanged"};
  json_t *offered = json_object();
  for (int i = 0; offered && i < 3; i++)
    if (json_is_true(
            json_object_get(json_object_get(caps, kinds[i]), "listChanged")))
      json_object_set_new(offered, flags[i], json_true());
  *subscribe = json_is_true(
      json_object_get(json_object_get(caps, "resources"), "subscribe"));
  return offered;
}

static void handle_listen(sb_mcp_server *srv, sb_mcp_call *c) {
  json_t *want = json_object_get(c->params, "notifications");
  if (want && !json_is_object(want)) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                     "params.notifications: must be an object",
                     json_pack("{ss}", "param", "notifications"));
    return;
  }
  json_t *agreed = json_object();
  static const char *const flags[] = {"toolsListChanged", "promptsListChanged",
                                      "resourcesListChanged"};
  /* The acknowledgment names only what this server can send: what its
   * capabilities announce (a mount's are its agent's). */
  json_t *caps = mcp_server_capabilities(srv);
  int subscribe = 0;
  json_t *offered = sb_mcp_listen_offered(caps, &subscribe);
  json_decref(caps);
  for (int i = 0; i < 3; i++) {
    json_t *v = json_object_get(want, flags[i]);
    if (v && !json_is_boolean(v)) {
      json_decref(agreed);
      json_decref(offered);
      char msg[128];
      snprintf(msg, sizeof msg, "params.notifications.%s: must be a boolean",
               flags[i]);
      sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, msg, NULL);
      return;
    }
    if (json_is_true(v) && json_object_get(offered, flags[i]))
      json_object_set_new(agreed, flags[i], json_true());
  }
  json_decref(offered);
  json_t *uris = json_object_get(want, "resourceSubscriptions");
  if (uris) {
    size_t i;
    json_t *u;
    int ok = json_is_array(uris);
    json_array_foreach(uris, i, u) if (!json_is_string(u)) ok = 0;
    if (!ok) {
      json_decref(agreed);
      sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                       "params.notifications.resourceSubscriptions: must be "
                       "an array of URI strings",
                       NULL);
      return;
    }
    if (!subscribe) uris = NULL; /* not acknowledged, nothing subscribed */
  }
  if (uris) {
    size_t i;
    json_t *u;
    int max = srv->limits.max_listen_uris;
    if (json_array_size(uris) > (size_t)max) {
      json_decref(agreed);
      char msg[200];
      snprintf(msg, sizeof msg,
               "params.notifications.resourceSubscriptions: %zu URIs exceed "
               "the limit of %d per stream (limits.max_listen_uris)",
               json_array_size(uris), max);
      sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, msg,
                       json_pack("{sssI}", "param",
                                 "notifications.resourceSubscriptions", "limit",
                                 (json_int_t)max));
      return;
    }
    json_array_foreach(uris, i, u) {
      if (subscribable(srv, c, "params.notifications.resourceSubscriptions",
                       json_string_value(u)) != 0) {
        json_decref(agreed);
        return;
      }
    }
    json_object_set(agreed, "resourceSubscriptions", uris);
  }
  if (listen_admit(srv, c) != 0) {
    json_decref(agreed);
    return;
  }
  c->listen_filter = agreed;
  /* Acknowledged once the providers have the subscriptions in effect. The
   * call stays open until the client cancels or the server ends it. */
  /* A failed one ends: its subscriptions go with it (listener_unlink). */
  sb_mcp_sub_wait *w = mcp_sub_wait_new(c, listen_acknowledge, fail_with);
  size_t k;
  json_t *u;
  json_array_foreach(uris, k, u) mcp_subscribe(srv, json_string_value(u), 1, w);
  if (w)
    sb_mcp_sub_wait_done(w);
  else
    listen_acknowledge(c);
}

/* ---- dispatch ---------------------------------------------------------- */

static void handle_ping(sb_mcp_server *srv, sb_mcp_call *c) {
  sb_mcp_call_reply(c, json_object());
}
static void handle_sub_on(sb_mcp_server *srv, sb_mcp_call *c) {
  handle_subscribe(srv, c, 1);
}
static void handle_sub_off(sb_mcp_server *srv, sb_mcp_call *c) {
  handle_subscribe(srv, c, 0);
}

/* The name (or URI) a routed request is about; fails the call if absent. */
static const char *required_string(sb_mcp_call *c, const char *key) {
  const char *v = json_string_value(json_object_get(c->params, key));
  if (!v) {
    char msg[64];
    snprintf(msg, sizeof msg, "params.%s: required string", key);
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, msg,
                     json_pack("{ss}", "param", key));
  }
  return v;
}

/* The TTL of list results: none while some provider's lists may change
 * at any moment. */
static long list_ttl(sb_mcp_server *srv) {
  for (size_t i = 0; i < srv->providers_len; i++)
    if (srv->providers[i].volatile_lists) return 0;
  return srv->limits.cache_ttl_ms;
}

static void handle_tools_list(sb_mcp_server *srv, sb_mcp_call *c) {
  reply_list(c, offsetof(sb_mcp_provider, list_tools), "tools", list_ttl(srv),
             "public");
}

typedef int (*named_fn)(void *, sb_mcp_call *, const char *, json_t *);

/* Hand a request for a named tool or prompt to the first provider that
 * claims the name; "Unknown tool: NAME" (or prompt) if none does. */
static void route_named(sb_mcp_call *c, size_t fn_offset, const char *what,
                        const char *name, json_t *args) {
  sb_mcp_server *srv = c->srv;
  for (size_t i = 0; i < srv->providers_len; i++) {
    named_fn fn = *(named_fn *)((char *)&srv->providers[i] + fn_offset);
    if (fn && fn(srv->providers[i].ud, c, name, args)) return;
  }
  char msg[256];
  snprintf(msg, sizeof msg, "Unknown %s: %.200s", what, name);
  sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, msg,
                   json_pack("{ss}", what, name));
}

static void handle_tools_call(sb_mcp_server *srv, sb_mcp_call *c) {
  const char *name = required_string(c, "name");
  if (!name) return;
  json_t *args = json_object_get(c->params, "arguments");
  if (args && !json_is_object(args)) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                     "params.arguments: must be an object",
                     json_pack("{ss}", "param", "arguments"));
    return;
  }
  /* A refused call has been answered by the hook. */
  if (srv->authorize &&
      srv->authorize(srv->authorize_ud, c, SB_MCP_ITEM_TOOL, name, args))
    return;
  if (mcp_tasks_route_call(c, name, args)) return;
  route_named(c, offsetof(sb_mcp_provider, call_tool), "tool", name, args);
}

static void handle_resources_list(sb_mcp_server *srv, sb_mcp_call *c) {
  /* Resource lists can hold a tenant's own resources: private, no TTL. */
  reply_list(c, offsetof(sb_mcp_provider, list_resources), "resources", 0,
             "private");
}

static void handle_templates_list(sb_mcp_server *srv, sb_mcp_call *c) {
  reply_list(c, offsetof(sb_mcp_provider, list_templates), "resourceTemplates",
             list_ttl(srv), "public");
}

static void handle_resources_read(sb_mcp_server *srv, sb_mcp_call *c) {
  const char *uri = required_string(c, "uri");
  if (!uri) return;
  /* A refused read has been answered by the hook. */
  if (srv->authorize &&
      srv->authorize(srv->authorize_ud, c, SB_MCP_ITEM_RESOURCE, uri, NULL))
    return;
  for (size_t i = 0; i < srv->providers_len; i++) {
    sb_mcp_provider *p = &srv->providers[i];
    if (p->read_resource && p->read_resource(p->ud, c, uri)) return;
  }
  sb_mcp_call_fail_resource_not_found(c, uri);
}

static void handle_prompts_list(sb_mcp_server *srv, sb_mcp_call *c) {
  reply_list(c, offsetof(sb_mcp_provider, list_prompts), "prompts",
             list_ttl(srv), "public");
}

/* prompts/get's arguments: absent, or an object of strings (the spec's
 * { [key: string]: string }). 0, or the call failed naming what is not. */
static int prompt_args_ok(sb_mcp_call *c, json_t *args) {
  if (!args || json_is_null(args)) return 0;
  char msg[200];
  if (!json_is_object(args)) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                     "params.arguments: must be an object of strings",
                     json_pack("{ss}", "param", "arguments"));
    return -1;
  }
  const char *key;
  json_t *v;
  json_object_foreach(args, key, v) {
    if (json_is_string(v)) continue;
    snprintf(msg, sizeof msg, "params.arguments.%.128s: must be a string",
             key);
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, msg,
                     json_pack("{ss}", "param", "arguments"));
    return -1;
  }
  return 0;
}

static void handle_prompts_get(sb_mcp_server *srv, sb_mcp_call *c) {
  const char *name = required_string(c, "name");
  if (!name) return;
  json_t *args = json_object_get(c->params, "arguments");
  if (prompt_args_ok(c, args) != 0) return;
  if (srv->authorize &&
      srv->authorize(srv->authorize_ud, c, SB_MCP_ITEM_PROMPT, name, args))
    return;
  route_named(c, offsetof(sb_mcp_provider, get_prompt), "prompt", name, args);
}

static void handle_complete(sb_mcp_server *srv, sb_mcp_call *c) {
  json_t *ref = json_object_get(c->params, "ref");
  json_t *arg = json_object_get(c->params, "argument");
  if (!json_is_string(json_object_get(ref, "type")) ||
      !json_is_string(json_object_get(arg, "name")) ||
      !json_is_string(json_object_get(arg, "value"))) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                     "params: completion needs ref.type, argument.name and "
                     "argument.value",
                     NULL);
    return;
  }
  for (size_t i = 0; i < srv->providers_len; i++) {
    sb_mcp_provider *p = &srv->providers[i];
    if (p->complete && p->complete(p->ud, c, ref, arg)) return;
  }
  sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                   "params.ref: no completion for this prompt or resource "
                   "argument",
                   NULL);
}

/* Looked up in this order: the most frequent first. */
static const mcp_method_def methods[] = {
    {"tools/call", MCP_ERA_BOTH, handle_tools_call},
    {"server/discover", MCP_ERA_MODERN, handle_discover},
    {"subscriptions/listen", MCP_ERA_MODERN, handle_listen},
    {"initialize", MCP_ERA_LEGACY, handle_initialize},
    {"ping", MCP_ERA_LEGACY, handle_ping},
    {"logging/setLevel", MCP_ERA_LEGACY, handle_set_level},
    {"resources/subscribe", MCP_ERA_LEGACY, handle_sub_on},
    {"resources/unsubscribe", MCP_ERA_LEGACY, handle_sub_off},
    {"tools/list", MCP_ERA_BOTH, handle_tools_list},
    {"resources/list", MCP_ERA_BOTH, handle_resources_list},
    {"resources/templates/list", MCP_ERA_BOTH, handle_templates_list},
    {"resources/read", MCP_ERA_BOTH, handle_resources_read},
    {"prompts/list", MCP_ERA_BOTH, handle_prompts_list},
    {"prompts/get", MCP_ERA_BOTH, handle_prompts_get},
    {"completion/complete", MCP_ERA_BOTH, handle_complete},
    {"tasks/get", MCP_ERA_BOTH, mcp_handle_tasks_get},
    {"tasks/cancel", MCP_ERA_BOTH, mcp_handle_tasks_cancel},
    {"tasks/update", MCP_ERA_MODERN, mcp_handle_tasks_update},
    {"tasks/result", MCP_ERA_LEGACY, mcp_handle_tasks_result},
    {"tasks/list", MCP_ERA_LEGACY, mcp_handle_tasks_list},
};

const mcp_method_def *mcp_method_find(const char *name) {
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(methods[i].method, name) == 0) return &methods[i];
  return NULL;
}

void sb_mcp_call_release_admission(sb_mcp_call *c) {
  if (!c->held_tenant) return;
  c->srv->admission.release(c->srv->admission.ud, c->held_tenant);
  sb_free(c->held_tenant);
  c->held_tenant = NULL;
}
