/* subs.c: resource subscriptions held at an agent for switchboard's
 * clients.
 *
 * Our clients subscribe at our endpoints; the agent sees one subscription
 * per URI however many of ours there are: resources/subscribe for legacy
 * agents, and for modern ones one subscriptions/listen naming every URI
 * (re-opened when the set changes) that also brings list_changed. A
 * client's own acknowledgement waits (sb_mcp_sub_wait) until the agent has
 * answered the subscribe, or acknowledged the listen that names the URI,
 * so no update is lost in between; an agent that never acknowledges is
 * given its timeoutMs, and the clients are then told so.
 */
#include <string.h>

#include "gateway/gateway_internal.h"

#define MODULE "agents"

#define RELISTEN_BASE_MS 250 /* the first pause before a listen reopens */

/* The listen timer runs to the earliest deadline among the waits. */
static void listen_timeout_tick(uv_timer_t *t);
static void arm_listen_timer(agent *a) {
  if (a->nlisten_waits == 0) {
    uv_timer_stop(&a->listen_timer);
    return;
  }
  uint64_t first = a->listen_waits[0].deadline_ms;
  for (size_t i = 1; i < a->nlisten_waits; i++)
    if (a->listen_waits[i].deadline_ms < first) first = a->listen_waits[i].deadline_ms;
  uint64_t now = sb_now_ms();
  uv_timer_start(&a->listen_timer, listen_timeout_tick, first > now ? first - now : 0,
                 0);
}

/* Release the acknowledgements waiting for the agent's listen: as given
 * when message is NULL, else as failed with it (code -32603, data naming
 * the agent). */
static void end_listen_waits(agent *a, const char *message) {
  listen_wait *w = a->listen_waits;
  size_t n = a->nlisten_waits;
  a->listen_waits = NULL;
  a->nlisten_waits = 0;
  uv_timer_stop(&a->listen_timer);
  /* Failing one may unsubscribe and so re-open the listen: the list is
   * ours alone by now. */
  for (size_t i = 0; i < n; i++) {
    if (message)
      sb_mcp_sub_wait_fail(w[i].wait, SB_RPC_INTERNAL_ERROR, message,
                           json_pack("{ss}", "agent", a->def->id));
    else
      sb_mcp_sub_wait_done(w[i].wait);
  }
  sb_free(w);
}

void gw_subs_release(agent *a) { end_listen_waits(a, NULL); }

/* The agent did not acknowledge in time: those clients are told so. Their
 * requests fail, which takes their URIs off our listen again (no
 * subscription is left that nobody was told about). */
static void listen_timeout_tick(uv_timer_t *t) {
  agent *a = t->data;
  uint64_t now = sb_now_ms();
  listen_wait *late = sb_calloc(a->nlisten_waits ? a->nlisten_waits : 1, sizeof *late);
  size_t nlate = 0, kept = 0;
  for (size_t i = 0; i < a->nlisten_waits; i++) {
    if (late && a->listen_waits[i].deadline_ms <= now) late[nlate++] = a->listen_waits[i];
    else a->listen_waits[kept++] = a->listen_waits[i];
  }
  a->nlisten_waits = kept;
  arm_listen_timer(a);
  char msg[256];
  snprintf(msg, sizeof msg,
           "agent %s did not acknowledge the subscription (its "
           "subscriptions/listen) within %u ms",
           a->def->id, (unsigned)a->def->limits.timeout_ms);
  if (nlate) SB_WARN(MODULE, "%s; %zu client(s) told so", msg, nlate);
  for (size_t i = 0; i < nlate; i++)
    sb_mcp_sub_wait_fail(late[i].wait, SB_RPC_INTERNAL_ERROR, msg,
                         json_pack("{sssi}", "agent", a->def->id, "timeoutMs",
                                   (int)a->def->limits.timeout_ms));
  sb_free(late);
}

static void open_listen(agent *a, sb_mcp_sub_wait *wait);

/* The listen the agent ended, opened again; the lists asked for again, so
 * a change announced while there was none is not missed. */
static void relisten_tick(uv_timer_t *t) {
  agent *a = t->data;
  if (a->listen || a->removed || !a->client ||
      !sb_mcp_client_connected(a->client) ||
      !sb_mcp_client_is_modern(a->client))
    return;
  SB_INFO(MODULE, "agent %s: opening its subscriptions/listen again",
          a->def->id);
  open_listen(a, NULL);
  gw_agent_relist_all(a);
}

static void on_listen_end(void *ud, sb_mcp_outcome outcome, json_t *result,
                          json_t *error) {
  agent *a = ud;
  a->listen = NULL;
  json_decref(a->listen_asked);
  a->listen_asked = NULL;
  a->listen_acked = 0;
  int cancelled = outcome == SB_MCP_CANCELLED;
  if (error && !cancelled)
    SB_INFO(MODULE, "agent %s: subscriptions/listen ended: %s", a->def->id,
            json_string_value(json_object_get(error, "message")));
  /* Replaced by a new listen: its waits go on waiting for that one. */
  if (a->relistening) return;
  /* Ended by the agent, not refused (its stream closed, or it answered
   * the listen), while it is still connected: the list_changed and
   * resources/updated our clients count on would stop, health checks
   * passing all the while. It is opened again, with backoff while the
   * new one goes unacknowledged; an agent that refuses the listen, or a
   * connection that is lost (reconnecting opens one), is left alone. */
  if ((outcome == SB_MCP_LOST || (outcome == SB_MCP_ANSWERED && !error)) &&
      !a->removed && !a->owner->stopping)
    uv_timer_start(&a->relisten_timer, relisten_tick,
                   sb_backoff_delay_ms(a->relistens++, RELISTEN_BASE_MS,
                                       RESTART_CAP_MS, gw_random01()),
                   0);
  if (error && !cancelled) {
    char msg[384];
    snprintf(msg, sizeof msg, "agent %s refused or ended the subscription: %s",
             a->def->id, json_string_value(json_object_get(error, "message")) ?: "");
    end_listen_waits(a, msg);
  } else {
    gw_subs_release(a);
  }
}

/* Hold a client's acknowledgement until the current listen's own, or the
 * agent's timeout. */
static void wait_for_listen(agent *a, sb_mcp_sub_wait *wait) {
  listen_wait *grown =
      wait ? sb_realloc(a->listen_waits, (a->nlisten_waits + 1) * sizeof *grown)
           : NULL;
  if (!grown) return;
  a->listen_waits = grown;
  a->listen_waits[a->nlisten_waits++] = (listen_wait){
      sb_mcp_sub_wait_hold(wait), sb_now_ms() + a->def->limits.timeout_ms};
  arm_listen_timer(a);
}

/* What a listen asks the agent for: only what its capabilities announce
 * (a listen for notifications it never sends is refused by some agents,
 * and refused again at each reconnect); NULL if nothing. */
static json_t *listen_notifications(agent *a) {
  int subscribe = 0;
  json_t *want = sb_mcp_listen_offered(
      sb_mcp_client_server_capabilities(a->client), &subscribe);
  if (want && subscribe && json_object_size(a->subs)) {
    json_t *uris = json_array();
    const char *uri;
    json_t *n;
    json_object_foreach(a->subs, uri, n)
        json_array_append_new(uris, json_string(uri));
    json_object_set_new(want, "resourceSubscriptions", uris);
  }
  if (want && json_object_size(want) == 0) {
    json_decref(want);
    return NULL;
  }
  return want;
}

static void open_listen(agent *a, sb_mcp_sub_wait *wait) {
  if (!a->client || !sb_mcp_client_connected(a->client) ||
      !sb_mcp_client_is_modern(a->client))
    return;
  json_t *want = listen_notifications(a);
  if (want && a->listen && json_equal(want, a->listen_asked)) {
    /* What the current listen asks already (a URI the agent cannot be
     * subscribed to came or went): kept, its acknowledgement awaited. */
    json_decref(want);
    if (!a->listen_acked) wait_for_listen(a, wait);
    return;
  }
  sb_mcp_request *old = a->listen;
  a->listen = NULL;
  if (!want) { /* nothing the agent sends: the subscriptions are in effect */
    if (old) sb_mcp_request_cancel(old, "nothing left to listen for");
    return;
  }
  wait_for_listen(a, wait);
  a->relistening = 1;
  if (old) sb_mcp_request_cancel(old, "subscriptions changed");
  a->relistening = 0;
  a->listen_acked = 0;
  a->listen = sb_mcp_client_request(a->client, "subscriptions/listen",
                                    json_pack("{sO}", "notifications", want), 0,
                                    NULL, on_listen_end, a);
  json_decref(a->listen_asked);
  a->listen_asked = a->listen ? want : NULL;
  if (!a->listen) json_decref(want);
}

/* The agent acknowledged a listen: if it is our current one, the
 * subscriptions it names are in effect. */
void gw_subs_listen_acknowledged(agent *a, json_t *params) {
  json_t *sid = json_object_get(json_object_get(params, "_meta"),
                                SB_MCP_META_SUBSCRIPTION_ID);
  if (a->listen && json_is_integer(sid) &&
      json_integer_value(sid) == sb_mcp_request_id(a->listen)) {
    a->listen_acked = 1;
    a->relistens = 0;
    gw_subs_release(a);
  }
}

/* A legacy agent's resources/(un)subscribe in flight, with the clients'
 * acknowledgements waiting for its answer (a later subscriber to the same
 * URI waits for it too). */
struct sub_request {
  agent *a;
  char *uri;
  int on;
  sb_mcp_sub_wait **waits;
  size_t nwaits;
  sub_request *next; /* a->sub_requests */
};

static void sub_request_hold(sub_request *r, sb_mcp_sub_wait *wait) {
  sb_mcp_sub_wait **grown =
      wait ? sb_realloc(r->waits, (r->nwaits + 1) * sizeof *grown) : NULL;
  if (!grown) return;
  r->waits = grown;
  r->waits[r->nwaits++] = sb_mcp_sub_wait_hold(wait);
}

static void on_subscribe_answer(void *ud, sb_mcp_outcome outcome, json_t *result,
                                json_t *error) {
  sub_request *r = ud;
  agent *a = r->a;
  for (sub_request **pp = &a->sub_requests; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  char msg[384] = "";
  if (error) {
    SB_WARN(MODULE, "agent %s: resources/(un)subscribe failed: %s", a->def->id,
            json_string_value(json_object_get(error, "message")));
    snprintf(msg, sizeof msg, "agent %s: resources/subscribe %s: %s",
             a->def->id, r->uri,
             json_string_value(json_object_get(error, "message")) ?: "failed");
  }
  /* Refused, timed out or lost: not in effect, and the clients say so. */
  for (size_t i = 0; i < r->nwaits; i++) {
    if (error && r->on)
      sb_mcp_sub_wait_fail(r->waits[i], SB_RPC_INTERNAL_ERROR, msg,
                           json_pack("{ss}", "agent", a->def->id));
    else
      sb_mcp_sub_wait_done(r->waits[i]);
  }
  sb_free(r->waits);
  sb_free(r->uri);
  sb_free(r);
}

static void legacy_subscribe(agent *a, const char *uri, int on,
                             sb_mcp_sub_wait *wait) {
  if (!a->client || !sb_mcp_client_connected(a->client)) return;
  json_t *caps = sb_mcp_client_server_capabilities(a->client);
  if (!json_is_true(json_object_get(json_object_get(caps, "resources"), "subscribe")))
    return;
  sub_request *r = sb_calloc(1, sizeof *r);
  if (!r || !(r->uri = sb_strdup(uri))) {
    sb_free(r);
    return;
  }
  r->a = a;
  r->on = on;
  sub_request_hold(r, wait);
  r->next = a->sub_requests;
  a->sub_requests = r;
  sb_mcp_client_request(a->client, on ? "resources/subscribe" : "resources/unsubscribe",
                        json_pack("{ss}", "uri", uri),
                        (uint64_t)a->def->limits.timeout_ms, NULL,
                        on_subscribe_answer, r);
}

void gw_agent_subscribe(agent *a, const char *uri, int on, sb_mcp_sub_wait *wait) {
  json_int_t n = json_integer_value(json_object_get(a->subs, uri));
  if (on) {
    json_object_set_new(a->subs, uri, json_integer(n + 1));
    if (n > 0) {
      /* Already asked of the agent; it may not have answered yet. */
      if (a->listen && !a->listen_acked) wait_for_listen(a, wait);
      for (sub_request *r = a->sub_requests; r; r = r->next)
        if (r->on && strcmp(r->uri, uri) == 0) {
          sub_request_hold(r, wait);
          break;
        }
      return;
    }
  } else {
    if (n <= 0) return;
    if (n > 1) {
      json_object_set_new(a->subs, uri, json_integer(n - 1));
      return;
    }
    json_object_del(a->subs, uri);
  }
  if (a->client && sb_mcp_client_is_modern(a->client)) open_listen(a, wait);
  else legacy_subscribe(a, uri, on, wait);
}

static void on_set_level_answer(void *ud, sb_mcp_outcome outcome, json_t *result,
                                json_t *error) {
  agent *a = ud;
  if (error)
    SB_WARN(MODULE, "agent %s: logging/setLevel failed: %s", a->def->id,
            json_string_value(json_object_get(error, "message")));
}

/* After (re)connecting: what our clients subscribed to, at the agent. */
void gw_subs_resubscribe(agent *a) {
  uv_timer_stop(&a->relisten_timer); /* opened here, if anything */
  if (sb_mcp_client_is_modern(a->client)) {
    open_listen(a, NULL);
    return;
  }
  /* (Its GET stream, for resources/updated, is opened on connecting.) */
  const char *uri;
  json_t *n;
  json_object_foreach(a->subs, uri, n) legacy_subscribe(a, uri, 1, NULL);
  /* Legacy agents send log messages only after logging/setLevel; we ask
   * for everything and filter per client (each client's _meta logLevel or
   * logging/setLevel), so one pooled session serves them all. */
  if (json_object_get(sb_mcp_client_server_capabilities(a->client), "logging"))
    sb_mcp_client_request(a->client, "logging/setLevel",
                          json_pack("{ss}", "level", "debug"), HEALTH_TIMEOUT_MS,
                          NULL, on_set_level_answer, a);
}

