/* agents_show.c: `switchboard agents show ID --config FILE` connects to one
 * agent (configured, or registered through a server's API) the way the
 * server does (its channel, the MCP client, era detection) and prints what it found: era, negotiated version,
 * capabilities, server info, how many tools, resources and prompts, the
 * names its tools get on /mcp (toolNames: public name -> the agent's own;
 * shortened past limits.max_tool_name), and what switchboard translates
 * for an agent of that era. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "gateway/gateway.h"
#include "mcp/mcp.h"
#include "net/net.h"
#include "registry/registry.h"

#define SHOW_TIMEOUT_MS 15000

typedef struct show {
  uv_loop_t loop;
  uv_timer_t deadline;
  sb_channel *ch;
  sb_mcp_client *client;
  json_t *report;
  const char *error;
  char deadline_why[80];
  char error_buf[512];
  int pending; /* list requests in flight */
  int done;
  const char *id;
  size_t max_tool_name;
  uint64_t startup_ms;
  sb_fetcher *fetcher; /* transport.oauth: the token's requests */
  sb_gateway_oauth *oauth;
} show;

static void finish(show *s) {
  s->done = 1;
  uv_stop(&s->loop);
}

static void on_message(void *ud, json_t *msg) {
  show *s = ud;
  if (s->client) sb_mcp_client_receive(s->client, msg);
}

static void on_request_failed(void *ud, json_t *id, sb_channel_failure kind,
                              const char *detail) {
  show *s = ud;
  sb_gateway_link_failed(s->client, id, kind, detail);
}

static void on_closed(void *ud, const char *detail) {
  show *s = ud;
  snprintf(s->error_buf, sizeof s->error_buf, "the agent's channel closed: %s",
           detail);
  s->error = s->error_buf;
  if (s->client) sb_mcp_client_transport_lost(s->client, detail);
  sb_channel *ch = s->ch;
  s->ch = NULL;
  sb_channel_close(ch);
  finish(s);
}

typedef struct list_ctx {
  show *s;
  const char *key; /* "tools", "resources", "prompts" */
} list_ctx;

static void on_list(void *ud, sb_mcp_outcome outcome, json_t *result,
                    json_t *error) {
  list_ctx *l = ud;
  show *s = l->s;
  json_t *items = json_object_get(result, l->key);
  json_object_set_new(s->report, l->key,
                      error ? json_pack("{sO}", "error",
                                        json_object_get(error, "message"))
                            : json_integer((json_int_t)json_array_size(items)));
  if (!error && strcmp(l->key, "tools") == 0) {
    /* As /mcp names them (among this agent's tools; with other agents a
     * name collision, which the hash makes all but impossible, could move
     * one). */
    json_t *pairs = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(items, i, t) {
      const char *n = json_string_value(json_object_get(t, "name"));
      if (n) json_array_append_new(pairs, json_pack("[ss]", s->id, n));
    }
    json_t *names = sb_gateway_tool_names(pairs, s->max_tool_name);
    json_decref(pairs);
    json_t *shown = json_object();
    const char *name;
    json_t *v;
    json_object_foreach(names, name, v)
        json_object_set(shown, name, json_object_get(v, "tool"));
    json_decref(names);
    json_object_set_new(s->report, "toolNames", shown);
  }
  if (--s->pending == 0) finish(s);
}

static json_t *bridge_notes(int modern) {
  if (modern)
    return json_pack(
        "[sssssss]",
        "served statelessly: every request carries the 2026-07-28 _meta, "
        "with the caller's clientCapabilities and logLevel",
        "legacy clients: initialize and sessions answered by switchboard; "
        "resultType and ttlMs/cacheScope removed",
        "input_required passed through to modern clients; asked of legacy "
        "clients as elicitation/sampling/roots requests and retried with "
        "inputResponses",
        "resources/subscribe and list_changed of our clients: one "
        "subscriptions/listen at the agent, re-opened when the set changes",
        "logging/setLevel of legacy clients sent as _meta logLevel per request",
        "resource not found: the agent's -32602 becomes -32002 for legacy "
        "clients",
        "lists cached and refreshed when their ttlMs passes or on list_changed");
  return json_pack(
      "[sssssss]", "one initialize session, pooled for every caller, reopened "
      "with backoff if it dies",
      "modern clients: server/discover answered by switchboard; resultType "
      "added, ttlMs/cacheScope supplied on resource reads (limits.cacheTtlMs, "
      "default 0)",
      "sampling/elicitation/roots requests relayed to legacy clients; "
      "turned into input_required (sealed requestState) for modern ones",
      "subscriptions/listen of modern clients: resources/subscribe at the "
      "agent; its GET stream read for updates (HTTP)",
      "logging/setLevel debug at the agent; each client gets the lines its "
      "_meta logLevel or logging/setLevel lets through",
      "resource not found: the agent's -32002 becomes -32602 for modern "
      "clients",
      "list_changed from the agent re-lists and is passed on");
}

static void on_connected(void *ud, sb_mcp_outcome outcome, json_t *result,
                         json_t *error) {
  show *s = ud;
  if (error) {
    /* After the channel closed, its reason (on_closed) is the news. */
    if (!s->error)
      snprintf(s->error_buf, sizeof s->error_buf, "%s",
               json_string_value(json_object_get(error, "message")) ?: "failed");
    s->error = s->error_buf;
    finish(s);
    return;
  }
  int modern = sb_mcp_client_is_modern(s->client);
  json_object_set_new(s->report, "era", json_string(modern ? "modern" : "legacy"));
  json_object_set_new(s->report, "protocolVersion",
                      json_string(sb_mcp_client_version(s->client)));
  json_t *info = sb_mcp_client_server_info(s->client);
  json_t *caps = sb_mcp_client_server_capabilities(s->client);
  json_object_set_new(s->report, "serverInfo", info ? json_incref(info) : json_null());
  json_object_set_new(s->report, "capabilities", caps ? json_incref(caps) : json_object());
  json_object_set_new(s->report, "bridge", bridge_notes(modern));
  static const char *const lists[][2] = {{"tools/list", "tools"},
                                         {"resources/list", "resources"},
                                         {"prompts/list", "prompts"}};
  static list_ctx ctxs[3];
  for (int i = 0; i < 3; i++) {
    const char *cap = lists[i][1];
    if (!json_object_get(caps, cap)) continue;
    ctxs[i] = (list_ctx){s, cap};
    s->pending++;
    sb_mcp_client_request(s->client, lists[i][0], NULL, SHOW_TIMEOUT_MS, NULL,
                          on_list, &ctxs[i]);
  }
  if (s->pending == 0) finish(s);
}

/* An agent behind OAuth: the handshake goes with the token got. */
static void on_token(void *ud, int ok, const char *detail) {
  show *s = ud;
  if (!ok) {
    snprintf(s->error_buf, sizeof s->error_buf,
             "cannot get an OAuth access token: %s", detail);
    s->error = s->error_buf;
    finish(s);
    return;
  }
  sb_channel_set_header(s->ch, "Authorization",
                        sb_gateway_oauth_authorization(s->oauth));
  json_object_set_new(s->report, "authorization",
                      json_string("OAuth client credentials: token obtained"));
  sb_mcp_client_connect(s->client, s->startup_ms, on_connected, s);
}

static void on_deadline(uv_timer_t *t) {
  show *s = t->data;
  s->error = s->deadline_why;
  finish(s);
}

int sb_cli_agents_show(const sb_config *cfg, sb_agent_def *def) {
  sb_error err = {0};
  const char *id = def->id;
  show s;
  memset(&s, 0, sizeof s);
  uv_loop_init(&s.loop);
  s.report = json_pack("{ss}", "id", id);
  s.id = id;
  s.max_tool_name = (size_t)cfg->max_tool_name;
  sb_gateway_link_options lo = {.loop = &s.loop,
                                .def = def,
                                .max_message_bytes = cfg->max_message_bytes,
                                .exec_shim = sb_child_shim_self(),
                                .channel = {on_message, on_closed, &s,
                                            on_request_failed, NULL}};
  int rc = EXIT_RUNTIME;
  if (sb_gateway_link_open(&lo, &s.ch, &s.client, &err) != 0) {
    sb_cli_eprintf("switchboard agents: %s: %s\n", id, err.msg);
    goto done;
  }
  uv_timer_init(&s.loop, &s.deadline);
  s.deadline.data = &s;
  /* The agent's own startup time (limits.startupTimeoutMs), then as long
   * again for its lists. */
  uint64_t startup = (uint64_t)def->limits.startup_timeout_ms;
  uint64_t total = startup > SHOW_TIMEOUT_MS ? startup * 2 : SHOW_TIMEOUT_MS;
  snprintf(s.deadline_why, sizeof s.deadline_why,
           "no answer from the agent within %llu s",
           (unsigned long long)(total / 1000));
  uv_timer_start(&s.deadline, on_deadline, total, 0);
  s.startup_ms = startup;
  if (def->transport.oauth.client_id) {
    s.fetcher = sb_fetcher_new(&s.loop, &err);
    s.oauth = s.fetcher ? sb_gateway_oauth_new(s.fetcher, def) : NULL;
    if (!s.oauth) {
      sb_cli_eprintf("switchboard agents: %s: %s\n", id,
                     err.msg[0] ? err.msg : "out of memory");
      goto done;
    }
    sb_gateway_oauth_fetch(s.oauth, NULL, on_token, &s);
  } else {
    sb_mcp_client_connect(s.client, startup, on_connected, &s);
  }
  if (!s.done) uv_run(&s.loop, UV_RUN_DEFAULT);
  if (s.error) {
    sb_cli_eprintf("switchboard agents: %s: %s\n", id, s.error);
  } else {
    char *text = sb_json_dumps(s.report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text) puts(text);
    sb_free(text);
    rc = EXIT_OK;
  }
done:
  sb_gateway_oauth_free(s.oauth);
  sb_fetcher_free(s.fetcher);
  sb_mcp_client_free(s.client);
  if (s.ch) sb_channel_close(s.ch);
  uv_timer_stop(&s.deadline);
  /* Let the channel reap its process, then close what is left. */
  sb_cli_loop_drain(&s.loop);
  json_decref(s.report);
  sb_agent_def_free(def);
  return rc;
}
