/* pool.c: switchboard's agents, connected and served.
 *
 * Each AgentDefinition gets a channel (stdio child or Streamable HTTP) and
 * an MCP client on it. Once connected, the agent's tools are listed and
 * served to switchboard's own clients as `agentId__tool` (shortened when
 * too long or oddly spelled: names.c); a list_changed from the agent
 * re-lists them and is passed on.
 *
 * Agents come from the config, the admin API and SIGHUP reloads. A channel
 * that closes (crash, exit) is reopened with backoff; health is checked
 * with ping (legacy) or server/discover (modern) every health_every_ms.
 * Calls to the agents are calls.c's; per-agent endpoints and virtual
 * servers mounts.c's; how a channel and client are opened link.c's; the
 * resource subscriptions held at the agent subs.c's.
 */
#include "gateway/gateway_internal.h"

#define MODULE "agents"

/* The namespaced tools on the main server changed (if there is one). */
static void main_list_changed(sb_gateway *o) {
  if (o->opts.mcp) sb_mcp_server_list_changed(o->opts.mcp, "tools");
}

double gw_random01(void) {
  return (double)randombytes_uniform(1u << 30) / (1u << 30);
}

agent *gw_agent_find(const sb_gateway *o, const char *id) {
  for (size_t i = 0; i < o->len; i++)
    if (strcmp(o->list[i]->def->id, id) == 0) return o->list[i];
  return NULL;
}

const agent_list_kind gw_list_kinds[LIST_KINDS] = {
    {"tools/list", "tools", "tools", "tools"},
    {"resources/list", "resources", "resources", "resources"},
    {"resources/templates/list", "resourceTemplates", "resources", "resources"},
    {"prompts/list", "prompts", "prompts", "prompts"},
};


int gw_agent_ready(const agent *a) {
  return a->client && sb_mcp_client_connected(a->client) &&
         !a->stream_opening && !a->token_renewing;
}

int gw_agent_up(agent *a, const char **why) {
  if (gw_agent_ready(a)) return 1;
  *why = a->down_reason[0]   ? a->down_reason
         : a->stream_opening ? "opening its GET stream"
         : a->token_renewing ? "getting a new OAuth access token"
                             : "not connected yet";
  return 0;
}

int gw_agent_failing(const agent *a) {
  return !gw_agent_ready(a) && a->restarts >= 2;
}

/* Tell the owner a's state moved (sb_gateway_agent_settled). */
static void state_moved(agent *a) {
  sb_gateway *o = a->owner;
  if (o->opts.on_agent_state)
    o->opts.on_agent_state(o->opts.notify_ud, a->def->id);
}

void gw_reason_set(char *buf, size_t n, const char *what, const char *detail) {
  /* A long reason is cut short: it is for people to read. */
  if (snprintf(buf, n, "%s%s%s", what, detail && *detail ? ": " : "",
               detail ? detail : "") >= (int)n)
    strcpy(buf + n - 4, "...");
  sb_utf8_scrub(buf); /* cut inside a character, or not UTF-8 */
}

/* Remember why a is down, for those who ask of it (gw_agent_up). */
static void set_down_reason(agent *a, const char *what, const char *detail) {
  gw_reason_set(a->down_reason, sizeof a->down_reason, what, detail);
  state_moved(a);
}

int gw_agent_may_serve_tool(agent *a, const char *tool) {
  return !tool || !a->lists[LIST_TOOLS].items || gw_agent_serves_tool(a, tool);
}

int gw_agent_serves_tool(agent *a, const char *tool) {
  size_t i;
  json_t *t;
  json_array_foreach(a->lists[LIST_TOOLS].items, i, t) {
    const char *n = json_string_value(json_object_get(t, "name"));
    if (n && strcmp(n, tool) == 0) return 1;
  }
  return 0;
}

const json_t *gw_agent_header_schema(agent *a, const char *tool) {
  return a->client ? sb_mcp_client_header_schema(a->client, tool) : NULL;
}

/* ---- connection lifecycle ----------------------------------------------- */

static void agent_connect(agent *a);

static void list_page(agent_list *l, const char *cursor);

/* The public tool names are made again on next use. */
static void names_invalidate(sb_gateway *o) {
  json_decref(o->tool_names);
  json_decref(o->tool_names_by_agent);
  o->tool_names = o->tool_names_by_agent = NULL;
}

/* The change reaches our clients: the main endpoint serves agents' tools
 * (agent__tool), the per-agent and virtual servers everything. */
static void announce(agent *a, const char *kind) {
  if (strcmp(kind, "tools") == 0) {
    names_invalidate(a->owner);
    main_list_changed(a->owner);
  }
  gw_mounts_list_changed(a->owner, a->def->id, kind);
}

/* A listing takes at most this many pages and items: an agent that
 * answers every page with a nextCursor (a new one, or the same again)
 * would otherwise be asked for pages without end. */
#define MAX_LIST_PAGES 1000
#define MAX_LIST_ITEMS 10000

/* Whether a listing asks for the page at `cursor`; if not, says why. */
static int list_goes_on(agent_list *l, const char *cursor) {
  char why[96];
  if (json_array_size(l->listing) >= MAX_LIST_ITEMS)
    snprintf(why, sizeof why, "it holds %d items", MAX_LIST_ITEMS);
  else if (l->pages >= MAX_LIST_PAGES)
    snprintf(why, sizeof why, "it took %d pages", MAX_LIST_PAGES);
  else if (l->cursor && strcmp(l->cursor, cursor) == 0)
    snprintf(why, sizeof why, "the agent gave the same nextCursor again");
  else
    return 1;
  SB_WARN(MODULE, "agent %s: %s: list cut short, as %s (nextCursor \"%.64s\")",
          l->a->def->id, gw_list_kinds[l->kind].method, why, cursor);
  return 0;
}

/* One kind's list, every page, then announce the change. */
static void on_listed(void *ud, sb_mcp_outcome outcome, json_t *result,
                      json_t *error) {
  agent_list *l = ud;
  agent *a = l->a;
  const agent_list_kind *k = &gw_list_kinds[l->kind];
  if (error) {
    /* A listing cut by our own shutdown of the agent (a command ending
     * while the agent still lists) is no failure to report. */
    if (!a->removed)
      SB_WARN(MODULE, "agent %s: %s failed: %s", a->def->id, k->method,
              json_string_value(json_object_get(error, "message")));
    json_decref(l->listing);
    l->listing = NULL;
    sb_free(l->cursor);
    l->cursor = NULL;
    state_moved(a);
    return;
  }
  json_t *page = json_object_get(result, k->key);
  if (json_is_array(page)) json_array_extend(l->listing, page);
  /* A modern agent says how long its list stays fresh (ttlMs); the
   * shortest page's TTL counts. */
  json_t *ttl = json_object_get(result, "ttlMs");
  if (json_is_integer(ttl)) {
    uint64_t until = sb_now_ms() + (uint64_t)(json_integer_value(ttl) > 0
                                                  ? json_integer_value(ttl)
                                                  : 0);
    if (!l->fresh_until || until < l->fresh_until) l->fresh_until = until;
  }
  const char *cursor = json_string_value(json_object_get(result, "nextCursor"));
  if (cursor && list_goes_on(l, cursor)) {
    list_page(l, cursor);
    return;
  }
  sb_free(l->cursor);
  l->cursor = NULL;
  json_t *servable = gw_list_servable(a->def->id, l->kind, l->listing);
  json_decref(l->listing);
  l->listing = NULL;
  int changed = !l->items || !json_equal(l->items, servable);
  json_decref(l->items);
  l->items = servable;
  if (changed) { /* not a refresh that found nothing new */
    SB_INFO(MODULE, "agent %s: %zu %s", a->def->id, json_array_size(l->items),
            k->key);
    announce(a, k->kind);
  }
  state_moved(a);
}

static void list_page(agent_list *l, const char *cursor) {
  json_t *params = cursor ? json_pack("{ss}", "cursor", cursor) : NULL;
  char *copy = cursor ? sb_strdup(cursor) : NULL;
  sb_free(l->cursor);
  l->cursor = copy;
  l->pages = cursor ? l->pages + 1 : 0;
  sb_mcp_client_request(l->a->client, gw_list_kinds[l->kind].method,
                        params, HEALTH_TIMEOUT_MS, NULL, on_listed, l);
}

/* List one kind again, if the agent offers it. */
static void relist(agent *a, int kind) {
  agent_list *l = &a->lists[kind];
  if (l->listing || !a->client) return; /* one listing at a time */
  json_t *caps = sb_mcp_client_server_capabilities(a->client);
  if (!json_object_get(caps, gw_list_kinds[kind].capability)) return;
  l->fresh_until = 0;
  l->listing = json_array();
  list_page(l, NULL);
}

json_t *gw_agent_list_items(agent *a, int kind) {
  agent_list *l = &a->lists[kind];
  /* Past its ttlMs: serve what we have and fetch it again (a list_changed
   * follows if it changed). */
  if (l->items && l->fresh_until && sb_now_ms() >= l->fresh_until)
    relist(a, kind);
  return l->items;
}

/* Forget the lists (agent gone or disconnected) and tell our clients. */
static void drop_lists(agent *a, int announce_it) {
  int had[LIST_KINDS];
  names_invalidate(a->owner);
  for (int k = 0; k < LIST_KINDS; k++) {
    agent_list *l = &a->lists[k];
    had[k] = l->items != NULL;
    json_decref(l->items);
    json_decref(l->listing);
    l->items = l->listing = NULL;
    sb_free(l->cursor);
    l->cursor = NULL;
  }
  if (!announce_it) return;
  if (had[LIST_TOOLS]) announce(a, "tools");
  if (had[LIST_RESOURCES] || had[LIST_TEMPLATES]) announce(a, "resources");
  if (had[LIST_PROMPTS]) announce(a, "prompts");
}

static void schedule_restart(agent *a);

/* How long the agent has to answer its handshake (limits.startupTimeoutMs). */
static uint64_t startup_ms(const agent *a) {
  return (uint64_t)a->def->limits.startup_timeout_ms;
}

/* How long calls wait for a legacy HTTP agent's GET stream to open, at
 * most (and never past its startupTimeoutMs). */
#define STREAM_OPEN_MAX_MS 1000

/* The GET stream is up, refused, or slow past STREAM_OPEN_MAX_MS: the
 * calls waiting go. */
static void stream_settled(agent *a) {
  if (!a->stream_opening) return;
  a->stream_opening = 0;
  uv_timer_stop(&a->stream_timer);
  gw_resume_waiting(a);
}

static void stream_open_tick(uv_timer_t *t) {
  agent *a = t->data;
  SB_INFO(MODULE, "agent %s: its GET stream is not up yet; the calls "
          "waiting for it go without it", a->def->id);
  stream_settled(a);
}

static void on_channel_stream_settled(void *ud) { stream_settled(ud); }

void gw_agent_connect_failed(agent *a, const char *what, const char *detail) {
  /* A channel's error names the agent already: said once, not twice. */
  size_t id_len = strlen(a->def->id);
  if (detail && strncmp(detail, "agent ", 6) == 0 &&
      strncmp(detail + 6, a->def->id, id_len) == 0 &&
      strncmp(detail + 6 + id_len, ": ", 2) == 0)
    detail += 6 + id_len + 2;
  SB_WARN(MODULE, "agent %s: %s: %s", a->def->id, what,
          detail ? detail : "(no detail)");
  set_down_reason(a, what, detail);
  sb_registry_set_health(a->owner->reg, a->def->id, 0);
  if (a->owner->stopping) return;
  sb_channel *ch = a->ch;
  a->ch = NULL;
  if (ch) sb_channel_close(ch);
  schedule_restart(a);
}

static void on_connected(void *ud, sb_mcp_outcome outcome, json_t *result,
                         json_t *error) {
  agent *a = ud;
  if (error) {
    /* The channel closed under the connect (an agent that cannot start or
     * dies at once): on_channel_closed has already said why, which is
     * the cause where this is its consequence, and restarts the agent;
     * or it is about to (the agent is known to be gone). */
    if (!a->ch || sb_channel_ended(a->ch)) return;
    gw_agent_connect_failed(
        a, "connect failed",
        json_string_value(json_object_get(error, "message")));
    return;
  }
  gw_token_worked(a);
  a->restarts = 0;
  a->down_reason[0] = '\0';
  sb_registry_set_health(a->owner->reg, a->def->id, 1);
  /* A legacy HTTP agent sends what is not an answer (resources/updated,
   * list_changed, log messages, and with some agents a call's own
   * elicitation) on its GET stream: opened before any call is sent, as
   * SDK clients do, and calls wait until the agent has answered it. */
  uint64_t bound = startup_ms(a) < STREAM_OPEN_MAX_MS ? startup_ms(a)
                                                      : STREAM_OPEN_MAX_MS;
  if (!sb_mcp_client_is_modern(a->client) && a->ch &&
      sb_channel_open_stream(a->ch, NULL) == 0) {
    a->stream_opening = 1;
    uv_timer_start(&a->stream_timer, stream_open_tick, bound, 0);
  } else {
    gw_resume_waiting(a);
  }
  for (int k = 0; k < LIST_KINDS; k++) relist(a, k);
  gw_subs_resubscribe(a);
  state_moved(a); /* settled already when it serves no lists */
}

static void on_channel_message(void *ud, json_t *msg) {
  agent *a = ud;
  if (a->client)
    sb_mcp_client_receive_related(a->client, msg,
                                  sb_channel_message_related(a->ch));
}

static void on_channel_request_failed(void *ud, json_t *id,
                                      sb_channel_failure kind,
                                      const char *detail) {
  agent *a = ud;
  /* Refused for our token: a new one may be got (and the call sent again
   * with it: calls.c reads refusal_retry as it decides). */
  if (kind == SB_CHANNEL_REFUSED)
    a->refusal_retry = gw_token_refused(a, sb_channel_last_refusal(a->ch));
  sb_gateway_link_failed(a->client, id, kind, detail);
}

static void restart_tick(uv_timer_t *t) { agent_connect(t->data); }

static void schedule_restart(agent *a) {
  if (a->closing || a->owner->stopping) return;
  uint64_t delay = sb_backoff_delay_ms(a->restarts++, RESTART_BASE_MS,
                                       RESTART_CAP_MS, gw_random01());
  if (delay < RESTART_BASE_MS / 2) delay = RESTART_BASE_MS / 2;
  SB_INFO(MODULE, "agent %s: reconnecting in %llu ms", a->def->id,
          (unsigned long long)delay);
  uv_timer_start(&a->restart_timer, restart_tick, delay, 0);
}

static void on_channel_closed(void *ud, const char *detail) {
  agent *a = ud;
  SB_WARN(MODULE, "agent %s: %s", a->def->id, detail);
  set_down_reason(a, "channel closed", detail);
  a->stream_opening = 0;
  uv_timer_stop(&a->stream_timer);
  sb_channel *dead = a->ch;
  a->ch = NULL;
  sb_channel_close(dead); /* frees it once its handles are closed */
  sb_registry_set_health(a->owner->reg, a->def->id, 0);
  if (a->client) {
    char why[256];
    snprintf(why, sizeof why, "channel closed: %s", detail);
    sb_mcp_client_transport_lost(a->client, why);
  }
  drop_lists(a, 1);
  schedule_restart(a);
}

static void on_agent_notification(void *ud, const char *method,
                                  json_t *params) {
  agent *a = ud;
  if (strcmp(method, "notifications/tools/list_changed") == 0) {
    relist(a, LIST_TOOLS);
  } else if (strcmp(method, "notifications/resources/list_changed") == 0) {
    relist(a, LIST_RESOURCES);
    relist(a, LIST_TEMPLATES);
  } else if (strcmp(method, "notifications/prompts/list_changed") == 0) {
    relist(a, LIST_PROMPTS);
  } else if (strcmp(method, "notifications/subscriptions/acknowledged") == 0) {
    gw_subs_listen_acknowledged(a, params);
  } else if (strcmp(method, "notifications/resources/updated") == 0) {
    const char *uri = json_string_value(json_object_get(params, "uri"));
    if (uri) gw_mounts_resource_updated(a->owner, a->def->id, uri);
  } else if (strcmp(method, "notifications/cancelled") == 0) {
    /* The agent withdraws a request it passed to a caller: the caller
     * is told the same. */
    gw_input_withdrawn(a, json_object_get(params, "requestId"));
  } else if (strcmp(method, "notifications/message") == 0) {
    json_t *data = json_object_get(params, "data");
    char *text =
        json_is_string(data) ? NULL : sb_json_dumps(data, JSON_COMPACT);
    SB_DEBUG(MODULE, "agent %s log: %s", a->def->id,
             text ? text : json_string_value(data) ? json_string_value(data) : "");
    sb_free(text);
    gw_forward_log(a, params, sb_channel_message_related(a->ch));
  }
}

/* The agent asks something (sampling, elicitation, roots) while serving
 * a call: the call's caller is asked. */
static void on_agent_request(void *ud, json_t *id, const char *method,
                             json_t *params, sb_mcp_request *related,
                             int guessed) {
  gw_input_from_agent(ud, related, guessed, id, method, params);
}

/* The agent ended our legacy session (it restarted, or expired it): the
 * spec's answer is a new initialize, on the same channel, so requests still
 * in flight get their own answers (each "session expired": never
 * processed, retried once we are connected again). Off the client's
 * receive path; nothing to do when the client is connected again, and a
 * handshake already under way makes connect refuse. */
static void session_lost_tick(uv_timer_t *t) {
  agent *a = t->data;
  a->session_lost = 0;
  if (!a->ch || !a->client || sb_mcp_client_connected(a->client)) return;
  if (sb_mcp_client_connect(a->client, startup_ms(a), on_connected, a) == 0) {
    SB_INFO(MODULE, "agent %s ended our session; opening a new one", a->def->id);
    set_down_reason(a, "the agent ended our session; opening a new one", NULL);
    sb_registry_set_health(a->owner->reg, a->def->id, 0);
  }
}

static void on_session_expired(void *ud) {
  agent *a = ud;
  if (a->session_lost || !a->ch) return;
  a->session_lost = 1;
  uv_timer_start(&a->restart_timer, session_lost_tick, 0, 0);
}

static void agent_connect(agent *a) {
  sb_gateway *o = a->owner;
  sb_error err = {0};
  sb_gateway_link_options lo = {
      .loop = o->opts.loop,
      .def = a->def,
      .max_message_bytes = o->opts.max_message_bytes,
      .busy_poll_us = o->opts.agent_busy_poll_us,
      .exec_shim = o->opts.agent_exec_shim,
      .channel = {on_channel_message, on_channel_closed, a,
                  on_channel_request_failed, on_channel_stream_settled},
      .client = {on_agent_notification, on_agent_request, on_session_expired,
                 a}};
  if (sb_gateway_link_open(&lo, &a->ch, &a->client, &err) != 0) {
    SB_WARN(MODULE, "agent %s: %s", a->def->id, err.msg[0] ? err.msg : "cannot open");
    set_down_reason(a, "cannot open", err.msg);
    schedule_restart(a);
    return;
  }
  if (gw_token_connect(a)) gw_agent_connect_client(a);
}

void gw_agent_connect_client(agent *a) {
  if (a->client && a->ch)
    sb_mcp_client_connect(a->client, startup_ms(a), on_connected, a);
}

/* An HTTP agent whose health check could not connect (see on_health):
 * taken as gone, off the client's callback, unless something else has
 * closed or reopened its channel meanwhile. */
static void health_lost_tick(uv_timer_t *t) {
  agent *a = t->data;
  if (a->ch && a->client && sb_mcp_client_connected(a->client))
    on_channel_closed(a, a->health_lost_why);
}

static void on_health(void *ud, sb_mcp_outcome outcome, json_t *result,
                      json_t *error) {
  agent *a = ud;
  sb_agent_state was = {.healthy = 1};
  sb_registry_state(a->owner->reg, a->def->id, sb_now_ms(), &was);
  sb_registry_set_health(a->owner->reg, a->def->id, error == NULL);
  const char *why = json_string_value(json_object_get(error, "message"))
                        ?: sb_mcp_outcome_name(outcome);
  /* An HTTP agent keeps no process here, and a modern one no connection:
   * a health check that could not even connect means nothing listens at
   * its URL any more. It is taken as gone, as a stdio agent whose
   * process exited: connected false with the reason, its tools unlisted,
   * reconnected with backoff (which lists them anew: an agent redeployed
   * may serve others). A health check that timed out or was answered
   * with an error leaves it connected, only unhealthy. */
  if (error && outcome == SB_MCP_UNSENT &&
      a->def->transport.type == SB_AGENT_TRANSPORT_HTTP && !a->session_lost &&
      !a->owner->stopping && !uv_is_active((uv_handle_t *)&a->restart_timer)) {
    /* (The restart timer's, so a restart or a new session under way is
     * not raced: either is the reconnect this would start.) */
    snprintf(a->health_lost_why, sizeof a->health_lost_why,
             "its health check could not connect: %s", why);
    uv_timer_start(&a->restart_timer, health_lost_tick, 0, 0);
    return;
  }
  /* Said when it changes: the log says an agent that went unhealthy. */
  if (error && was.healthy)
    SB_WARN(MODULE,
            "agent %s: health check failed (%s); it ranks last, and "
            "switchboard_agent_healthy is 0, until it answers one again",
            a->def->id, why);
  else if (!error && !was.healthy)
    SB_INFO(MODULE, "agent %s: answers its health check again", a->def->id);
  if (error || !a->client) return;
  gw_token_worked(a);
  gw_agent_relist_missing(a);
}

void gw_agent_relist_all(agent *a) {
  if (!a->client || !sb_mcp_client_connected(a->client)) return;
  for (int k = 0; k < LIST_KINDS; k++)
    relist(a, k);
}

void gw_agent_relist_missing(agent *a) {
  /* A list whose first listing failed (the agent went away just after
   * the handshake, say, or refused the token it had) is asked again once
   * the agent answers, or has a new token: else its tools stayed
   * unlisted (served as none) until a list_changed. */
  if (!a->client || !sb_mcp_client_connected(a->client)) return;
  for (int k = 0; k < LIST_KINDS; k++)
    if (!a->lists[k].items) relist(a, k);
}

static void health_tick(uv_timer_t *t) {
  agent *a = t->data;
  if (!a->client || !sb_mcp_client_connected(a->client)) return;
  sb_mcp_client_request(a->client,
                        sb_mcp_client_is_modern(a->client) ? "server/discover"
                                                           : "ping",
                        NULL, a->owner->opts.health_timeout_ms, NULL, on_health,
                        a);
}

/* ---- the provider -------------------------------------------------------- */

/* Make the public names of every agent's listed tools, if a list changed
 * since they were last made. 0, or SB_ENOMEM. */
static int names_build(sb_gateway *o) {
  if (o->tool_names) return 0;
  json_t *pairs = json_array();
  for (size_t i = 0; pairs && i < o->len; i++) {
    agent *a = o->list[i];
    size_t k;
    json_t *tool;
    json_array_foreach(a->lists[LIST_TOOLS].items, k, tool) {
      const char *n = json_string_value(json_object_get(tool, "name"));
      if (n) json_array_append_new(pairs, json_pack("[ss]", a->def->id, n));
    }
  }
  json_t *names = pairs ? sb_gateway_tool_names(pairs, o->opts.max_tool_name)
                        : NULL;
  json_decref(pairs);
  json_t *by_agent = names ? json_object() : NULL;
  const char *name;
  json_t *v;
  json_object_foreach(names, name, v) {
    const char *id = json_string_value(json_object_get(v, "agent"));
    json_t *tools = json_object_get(by_agent, id);
    if (!tools) json_object_set_new(by_agent, id, tools = json_object());
    json_object_set_new(tools, json_string_value(json_object_get(v, "tool")),
                        json_string(name));
  }
  if (!by_agent) {
    json_decref(names);
    return SB_ENOMEM;
  }
  o->tool_names = names;
  o->tool_names_by_agent = by_agent;
  return 0;
}

json_t *sb_gateway_tool_names_current(sb_gateway *o) {
  return names_build(o) == 0 ? o->tool_names : NULL;
}

int gw_resolve_tool(sb_gateway *o, const char *name, agent **a,
                    const char **tool) {
  json_t *v = names_build(o) == 0 ? json_object_get(o->tool_names, name) : NULL;
  if (v) {
    *a = gw_agent_find(o, json_string_value(json_object_get(v, "agent")));
    *tool = json_string_value(json_object_get(v, "tool"));
    return *a && *tool;
  }
  /* Not listed (yet): agentId__tool of an agent that has not listed its
   * tools goes to it as it is; the agent says if there is no such tool. */
  const char *sep = strstr(name, SEP);
  if (!sep) return 0;
  char id[65];
  size_t n = (size_t)(sep - name);
  if (n == 0 || n >= sizeof id) return 0;
  memcpy(id, name, n);
  id[n] = '\0';
  *a = gw_agent_find(o, id);
  if (!*a || (*a)->lists[LIST_TOOLS].items) return 0;
  *tool = sep + strlen(SEP);
  return 1;
}

static void list_agent_tools(void *ud, sb_mcp_call *call, json_t *out) {
  sb_gateway *o = ud;
  gw_mcp_list_routed_tool(out);
  /* A list past its ttlMs is fetched again (and the names made anew). */
  for (size_t i = 0; i < o->len; i++) gw_agent_list_items(o->list[i], LIST_TOOLS);
  if (names_build(o) != 0) return;
  for (size_t i = 0; i < o->len; i++) {
    agent *a = o->list[i];
    json_t *names = json_object_get(o->tool_names_by_agent, a->def->id);
    size_t k;
    json_t *tool;
    json_array_foreach(a->lists[LIST_TOOLS].items, k, tool) {
      const char *n = json_string_value(json_object_get(tool, "name"));
      json_t *public_name = n ? json_object_get(names, n) : NULL;
      if (!public_name) continue;
      json_t *copy = json_deep_copy(tool);
      json_object_set(copy, "name", public_name);
      json_array_append_new(out, copy);
    }
  }
}


/* ---- start and stop ------------------------------------------------------ */

/* ---- membership: config, admin API, reload ----------------------------- */

static void agent_close_timers(agent *a);

/* A new agent for def (taken), appended to the pool, started. */
static agent *agent_add(sb_gateway *o, sb_agent_def *def, int from_config) {
  agent **grown = sb_realloc(o->list, (o->len + 1) * sizeof *grown);
  agent *a = grown ? sb_calloc(1, sizeof *a) : NULL;
  if (grown) o->list = grown;
  if (!a) {
    sb_agent_def_free(def);
    return NULL;
  }
  a->owner = o;
  a->def = def;
  a->from_config = from_config;
  a->subs = json_object();
  for (int k = 0; k < LIST_KINDS; k++) {
    a->lists[k].a = a;
    a->lists[k].kind = k;
  }
  uv_timer_init(o->opts.loop, &a->restart_timer);
  uv_timer_init(o->opts.loop, &a->health_timer);
  uv_timer_init(o->opts.loop, &a->listen_timer);
  uv_timer_init(o->opts.loop, &a->stream_timer);
  uv_timer_init(o->opts.loop, &a->relisten_timer);
  a->restart_timer.data = a->health_timer.data = a->listen_timer.data = a;
  a->stream_timer.data = a->relisten_timer.data = a;
  if (gw_token_init(a) != 0)
    set_down_reason(a, "cannot get an OAuth access token", "out of memory");
  o->list[o->len++] = a;
  agent_connect(a);
  uv_timer_start(&a->health_timer, health_tick, a->owner->opts.health_every_ms,
                 a->owner->opts.health_every_ms);
  return a;
}

/* Disconnect and forget a; its memory goes when its timers have closed. */
static void agent_shutdown(agent *a) {
  a->removed = 1;
  sb_channel *ch = a->ch;
  a->ch = NULL;
  if (ch) sb_channel_close(ch);
  sb_mcp_client *client = a->client;
  a->client = NULL;
  sb_mcp_client_free(client); /* fails its pending requests */
  gw_abandon_attempts(a);
  gw_subs_release(a); /* nothing more will come from it */
  /* Its requests still with callers: their answers go nowhere now. */
  gw_inputs_agent_gone(a);
  drop_lists(a, 0);
  json_decref(a->subs);
  a->subs = NULL;
  gw_token_stop(a);
  agent_close_timers(a);
}

static void agent_remove_at(sb_gateway *o, size_t i) {
  agent *a = o->list[i];
  memmove(&o->list[i], &o->list[i + 1], (o->len - i - 1) * sizeof *o->list);
  o->len--;
  char *id = sb_strdup(a->def->id);
  agent_shutdown(a);
  if (id) sb_registry_remove(o->reg, id);
  sb_free(id);
}

/* An agent came or went: every list that may show it changed. */
static void announce_membership(sb_gateway *o, const char *id) {
  names_invalidate(o);
  main_list_changed(o);
  static const char *const kinds[] = {"tools", "resources", "prompts"};
  for (int k = 0; id && k < 3; k++) gw_mounts_list_changed(o, id, kinds[k]);
}

/* Whether a and b reach the agent the same way (transport), so a new
 * definition can take the place of the old one on its connection. */
static int same_transport(const sb_agent_def *a, const sb_agent_def *b) {
  json_t *ja = sb_agent_def_to_json(a), *jb = sb_agent_def_to_json(b);
  int same = ja && jb &&
             json_equal(json_object_get(ja, "transport"),
                        json_object_get(jb, "transport"));
  json_decref(ja);
  json_decref(jb);
  return same;
}

/* a takes def (taken) in place of its definition, keeping its connection,
 * its lists and the calls in flight on it: a change of limits, timeouts,
 * capabilities or models must not cut calls the agent is answering. */
static int agent_update(sb_gateway *o, agent *a, sb_agent_def *def,
                        int from_config, sb_error *err) {
  sb_agent_def **grown =
      sb_realloc(a->retired_defs, (a->nretired_defs + 1) * sizeof *grown);
  if (!grown) {
    sb_agent_def_free(def);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  a->retired_defs = grown;
  /* The connection is the same: so is the health check's last word (the
   * breaker and latency, counted against the old limits, start afresh). */
  sb_agent_state st = {.healthy = 1};
  sb_registry_state(o->reg, def->id, sb_now_ms(), &st);
  int rc = sb_registry_register_take(o->reg, sb_agent_def_ref(def), 1, err);
  if (rc == 0) sb_registry_set_health(o->reg, def->id, st.healthy);
  if (rc != 0) {
    sb_agent_def_free(def);
    return rc;
  }
  a->retired_defs[a->nretired_defs++] = a->def;
  a->def = def;
  a->from_config = from_config;
  return 0;
}

int sb_gateway_add(sb_gateway *o, const json_t *json, int replace,
                   int from_config, sb_error *err) {
  sb_agent_def *def = NULL;
  int rc = sb_agent_def_parse(json, &def, err);
  if (rc != 0) return rc;
  agent *old = gw_agent_find(o, def->id);
  if (old && !replace) {
    rc = sb_error_set(err, SB_ECONFLICT, "agent %s is already registered",
                      def->id);
    sb_agent_def_free(def);
    return rc;
  }
  if (old && same_transport(old->def, def)) {
    if ((rc = agent_update(o, old, def, from_config, err)) != 0) return rc;
    SB_INFO(MODULE,
            "agent %s updated (its connection and calls in flight "
            "kept)",
            old->def->id);
    announce_membership(o, old->def->id);
    return 0;
  }
  if (old) {
    for (size_t i = 0; i < o->len; i++)
      if (o->list[i] == old) agent_remove_at(o, i);
  }
  if ((rc = sb_registry_register_take(o->reg, sb_agent_def_ref(def), 0, err)) !=
      0) {
    sb_agent_def_free(def);
    return rc;
  }
  if (!agent_add(o, def, from_config)) {
    sb_registry_remove(o->reg, json_string_value(json_object_get(json, "id")));
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  SB_INFO(MODULE, "agent %s %s", json_string_value(json_object_get(json, "id")),
          old ? "replaced" : "registered");
  announce_membership(o, json_string_value(json_object_get(json, "id")));
  return 0;
}

int sb_gateway_remove(sb_gateway *o, const char *id, sb_error *err) {
  for (size_t i = 0; i < o->len; i++) {
    if (strcmp(o->list[i]->def->id, id) == 0) {
      agent_remove_at(o, i);
      SB_INFO(MODULE, "agent %s removed", id);
      announce_membership(o, id);
      return 0;
    }
  }
  return sb_error_set(err, SB_ENOENT, "no agent %s", id);
}

size_t sb_gateway_agent_count(const sb_gateway *o) { return o->len; }

int sb_gateway_agent_settled(sb_gateway *o, const char *id) {
  agent *a = gw_agent_find(o, id);
  if (!a) return -1;
  if (!a->client || !sb_mcp_client_connected(a->client))
    return a->down_reason[0] ? -1 : 0;
  for (int k = 0; k < LIST_KINDS; k++)
    if (a->lists[k].listing) return 0; /* on_listed: NULL when done */
  return 1;
}

static void agent_info(const agent *a, sb_gateway_agent_info *out) {
  *out = (sb_gateway_agent_info){
      .def = a->def,
      .connected = a->client && sb_mcp_client_connected(a->client),
      .tools = json_array_size(a->lists[LIST_TOOLS].items),
      .from_config = a->from_config};
}

void sb_gateway_agent_info_at(const sb_gateway *o, size_t i,
                              sb_gateway_agent_info *out) {
  agent_info(o->list[i], out);
}

int sb_gateway_agent_info_of(const sb_gateway *o, const char *id,
                             sb_gateway_agent_info *out) {
  const agent *a = gw_agent_find(o, id);
  if (!a) return SB_ENOENT;
  agent_info(a, out);
  return 0;
}

/* A definition as clients see it: without the agent's credentials
 * (sb_agent_def_json_redact). NULL stays NULL. */
static json_t *def_shown(const sb_agent_def *def) {
  json_t *d = sb_agent_def_to_json(def);
  if (d && sb_agent_def_json_redact(d) != 0) {
    json_decref(d);
    return NULL;
  }
  return d;
}

json_t *sb_gateway_list_json(sb_gateway *o,
                             const sb_gateway_list_filter *f) {
  json_t *list = json_array();
  for (size_t i = 0; list && i < o->len; i++) {
    agent *a = o->list[i];
    if (f && !f->any_type && a->def->type != f->type) continue;
    if (f && f->capability &&
        !sb_agent_def_has_capability(a->def, f->capability))
      continue;
    sb_gateway_agent_info info;
    sb_gateway_agent_info_at(o, i, &info);
    int up = info.connected;
    /* Why it takes no calls now (its connect failed, it cannot get a
     * token, its GET stream opens): for the operator. */
    const char *why = NULL;
    int ready = gw_agent_up(a, &why);
    json_t *item = json_pack(
        "{sosbss?sbss?ss?sisO?}", "definition", def_shown(a->def), "connected",
        up, "down", ready ? NULL : why, "fromConfig", a->from_config, "era",
        up ? (sb_mcp_client_is_modern(a->client) ? "modern" : "legacy") : NULL,
        "protocolVersion", up ? sb_mcp_client_version(a->client) : NULL,
        "tools", (int)info.tools, "serverInfo",
        up ? sb_mcp_client_server_info(a->client) : NULL);
    /* Only for agents behind OAuth: null while tokens come. */
    if (item && a->oauth)
      json_object_set_new(item, "tokenError",
                          a->token_error[0] ? json_string(a->token_error)
                                            : json_null());
    json_t *state = sb_registry_state_json(o->reg, a->def->id, sb_now_ms());
    if (item && state) json_object_set_new(item, "state", state);
    else json_decref(state);
    json_array_append_new(list, item);
  }
  return list;
}

int sb_gateway_reload(sb_gateway *o, const json_t *defs, const size_t *lines,
                      const char *file, const json_t *skip, sb_error *err) {
  /* Validate every definition first, as a start does (serve, check): a
   * bad file changes nothing. An id listed twice was the later one's. */
  size_t n = json_array_size(defs);
  for (size_t i = 0; i < n; i++) {
    sb_agent_def *def = NULL;
    sb_error derr = {0};
    int bad = sb_agent_def_parse(json_array_get(defs, i), &def, &derr) != 0;
    for (size_t k = 0; !bad && k < i; k++)
      if (strcmp(json_string_value(json_object_get(json_array_get(defs, k),
                                                    "id")) ?: "",
                 def->id) == 0)
        bad = sb_error_set(&derr, SB_EINVAL,
                           "agent \"%s\" is already registered", def->id);
    sb_agent_def_free(def);
    if (bad)
      return sb_error_set(err, SB_EINVAL, "%s:%zu: agents[%zu].%s",
                          file ? file : "config", lines ? lines[i] : 0, i,
                          derr.msg);
  }
  /* Config agents gone from the file are removed; API-registered ones stay. */
  for (size_t i = o->len; i-- > 0;) {
    agent *a = o->list[i];
    int kept = 0;
    for (size_t k = 0; k < n && !kept; k++)
      kept = strcmp(json_string_value(json_object_get(
                        json_array_get(defs, k), "id")) ?: "",
                    a->def->id) == 0;
    if (a->from_config && !kept) {
      SB_INFO(MODULE, "agent %s removed (no longer in the config)", a->def->id);
      agent_remove_at(o, i);
    }
  }
  /* New or changed definitions; unchanged agents keep their connection. */
  for (size_t i = 0; i < n; i++) {
    json_t *j = json_array_get(defs, i);
    const char *id = json_string_value(json_object_get(j, "id"));
    if (json_object_get(skip, id)) {
      SB_INFO(MODULE,
              "agent %s: changed through the API, its definition in the "
              "config is not used",
              id);
      continue;
    }
    agent *a = gw_agent_find(o, id);
    sb_agent_def *def = NULL;
    sb_agent_def_parse(j, &def, NULL);
    json_t *now = def ? sb_agent_def_to_json(def) : NULL;
    json_t *was = a ? sb_agent_def_to_json(a->def) : NULL;
    int same = a && now && was && json_equal(now, was);
    json_decref(now);
    json_decref(was);
    sb_agent_def_free(def);
    if (same) continue;
    sb_error aerr = {0};
    if (sb_gateway_add(o, j, 1, 1, &aerr) != 0)
      SB_WARN(MODULE, "reload: %s", aerr.msg);
  }
  main_list_changed(o);
  return 0;
}

sb_gateway *sb_gateway_new(const sb_gateway_options *opts, sb_error *err) {
  sb_gateway *o = sb_calloc(1, sizeof *o);
  if (!o) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  o->opts = *opts;
  o->opts.default_tenant = NULL;
  if (!o->opts.max_message_bytes) o->opts.max_message_bytes = 4u << 20;
  if (!o->opts.health_every_ms) o->opts.health_every_ms = HEALTH_EVERY_MS;
  if (!o->opts.health_timeout_ms) o->opts.health_timeout_ms = HEALTH_TIMEOUT_MS;
  sb_registry_options ro = {.sees_user = sb_gateway_sees_user};
  o->reg = sb_registry_new(&ro);
  o->default_tenant =
      sb_strdup(opts->default_tenant ? opts->default_tenant : "default");
  o->mounts = sb_calloc(1, sizeof *o->mounts);
  sb_mcp_provider p = {.name = "agents",
                       .ud = o,
                       .list_tools = list_agent_tools,
                       .call_tool = gw_mcp_call_tool,
                       .volatile_lists = 1};
  if (!o->reg || !o->default_tenant || !o->mounts ||
      (o->opts.mcp && sb_mcp_server_add_provider(o->opts.mcp, &p) != 0)) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    sb_gateway_free(o);
    return NULL;
  }
  return o;
}

static void agent_closed(uv_handle_t *h) {
  agent *a = h->data;
  if (--a->closing == 0) {
    sb_agent_def_free(a->def);
    for (size_t i = 0; i < a->nretired_defs; i++)
      sb_agent_def_free(a->retired_defs[i]);
    sb_free(a->retired_defs);
    sb_free(a);
  }
}

static void agent_close_timers(agent *a) {
  a->closing = 6;
  uv_close((uv_handle_t *)&a->restart_timer, agent_closed);
  uv_close((uv_handle_t *)&a->relisten_timer, agent_closed);
  uv_close((uv_handle_t *)&a->health_timer, agent_closed);
  uv_close((uv_handle_t *)&a->listen_timer, agent_closed);
  uv_close((uv_handle_t *)&a->stream_timer, agent_closed);
  uv_close((uv_handle_t *)&a->token_timer, agent_closed);
}

void sb_gateway_free(sb_gateway *o) {
  if (!o) return;
  gw_mounts_stop(o); /* cancels their calls while the agents live */
  o->stopping = 1;
  gw_calls_stop(o);
  gw_mcp_calls_stop(o);
  for (size_t i = 0; i < o->len; i++) agent_shutdown(o->list[i]);
  sb_fetcher_free(o->fetcher); /* the agents' token requests are gone */
  sb_free(o->list);
  sb_registry_free(o->reg);
  names_invalidate(o);
  sb_free(o->default_tenant);
  sb_free(o);
}

sb_registry *sb_gateway_registry(sb_gateway *o) { return o ? o->reg : NULL; }
