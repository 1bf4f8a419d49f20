/* agents.c: switchboard's agents, connected and served.
 *
 * Each AgentDefinition gets a channel (stdio child or Streamable HTTP) and
 * an MCP client on it. Once connected, the agent's tools are listed and
 * served to switchboard's own clients as `agentId__tool`; a list_changed
 * from the agent re-lists them and is passed on.
 *
 * A call to `agent__tool` goes through the registry: the breaker and the
 * concurrency limit may refuse it, in which case (or when the agent fails
 * it) the next-best agent that shares a capability and serves the same
 * tool is tried. Every attempt has the agent's deadline; a timeout sends
 * notifications/cancelled to the agent. A failed attempt is retried (with
 * exponential backoff and jitter) only when the call never reached the
 * agent or the tool is listed in idempotentTools. Whatever happens, the
 * caller gets one answer that names the agent and the reason.
 *
 * A channel that closes (crash, exit) is reopened with backoff; health is
 * checked with ping (legacy) or server/discover (modern) every
 * HEALTH_EVERY_MS.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_internal.h"
#include "registry/registry.h"

#define MODULE "agents"
#define SEP "__"
#define CONNECT_TIMEOUT_MS 15000
#define HEALTH_EVERY_MS 15000
#define HEALTH_TIMEOUT_MS 5000
#define RESTART_BASE_MS 200
#define RESTART_CAP_MS 30000
#define RETRY_BASE_MS 50
#define RETRY_CAP_MS 2000

typedef struct agent agent;

typedef struct attempt attempt;

struct sb_app_agents {
  sb_app *app;
  sb_registry *reg;
  agent **list;
  size_t len;
  attempt *attempts; /* calls in progress (for relays) */
  int stopping;
};

struct agent {
  sb_app_agents *owner;
  sb_agent_def *def; /* own reference */
  sb_channel *ch;
  sb_mcp_client *client;
  json_t *tools;   /* the agent's own tool list, or NULL before listing */
  json_t *listing; /* pages gathered by a tools/list in progress */
  uint64_t tools_fresh_until; /* ttlMs of a modern agent's list; 0 = until
                                 list_changed (legacy agents) */
  uv_timer_t restart_timer;
  uv_timer_t health_timer;
  unsigned restarts;
  int closing;
  int from_config; /* defined in the config file (reload may remove it) */
  int removed;     /* shut down: no more retries on it */
};

static double random01(void) { return (double)randombytes_uniform(1u << 30) / (1u << 30); }

/* ---- connection lifecycle ----------------------------------------------- */

static void agent_connect(agent *a);

static void list_tools_page(agent *a, const char *cursor);

/* tools/list, every page, then announce the change to our clients. */
static void on_listed(void *ud, json_t *result, json_t *error) {
  agent *a = ud;
  if (error) {
    SB_WARN(MODULE, "agent %s: tools/list failed: %s", a->def->id,
            json_string_value(json_object_get(error, "message")));
    json_decref(a->listing);
    a->listing = NULL;
    return;
  }
  json_t *page = json_object_get(result, "tools");
  if (json_is_array(page)) json_array_extend(a->listing, page);
  /* A modern agent says how long its list stays fresh (ttlMs); the
   * shortest page's TTL counts. */
  json_t *ttl = json_object_get(result, "ttlMs");
  if (json_is_integer(ttl)) {
    uint64_t until = sb_now_ms() + (uint64_t)(json_integer_value(ttl) > 0
                                                  ? json_integer_value(ttl)
                                                  : 0);
    if (!a->tools_fresh_until || until < a->tools_fresh_until)
      a->tools_fresh_until = until;
  }
  const char *cursor = json_string_value(json_object_get(result, "nextCursor"));
  if (cursor && json_array_size(a->listing) < 10000) {
    list_tools_page(a, cursor);
    return;
  }
  int changed = !a->tools || !json_equal(a->tools, a->listing);
  json_decref(a->tools);
  a->tools = a->listing;
  a->listing = NULL;
  if (!changed) return; /* a refresh that found nothing new */
  SB_INFO(MODULE, "agent %s: %zu tool(s)", a->def->id, json_array_size(a->tools));
  sb_mcp_server_list_changed(a->owner->app->mcp, "tools");
}

static void list_tools_page(agent *a, const char *cursor) {
  json_t *params = cursor ? json_pack("{ss}", "cursor", cursor) : NULL;
  sb_mcp_client_request(a->client, "tools/list", params, HEALTH_TIMEOUT_MS,
                        NULL, on_listed, a);
}

static void list_tools(agent *a) {
  if (a->listing || !a->client) return; /* one listing at a time */
  a->tools_fresh_until = 0;
  a->listing = json_array();
  list_tools_page(a, NULL);
}

static void schedule_restart(agent *a);

static void on_connected(void *ud, json_t *result, json_t *error) {
  agent *a = ud;
  if (error) {
    SB_WARN(MODULE, "agent %s: connect failed: %s", a->def->id,
            json_string_value(json_object_get(error, "message")));
    sb_registry_set_health(a->owner->reg, a->def->id, 0);
    if (a->owner->stopping) return;
    sb_channel *ch = a->ch;
    a->ch = NULL;
    if (ch) sb_channel_close(ch);
    schedule_restart(a);
    return;
  }
  a->restarts = 0;
  sb_registry_set_health(a->owner->reg, a->def->id, 1);
  list_tools(a);
}

static void on_channel_message(void *ud, json_t *msg) {
  agent *a = ud;
  if (a->client) sb_mcp_client_receive(a->client, msg);
}

static void restart_tick(uv_timer_t *t) { agent_connect(t->data); }

static void schedule_restart(agent *a) {
  if (a->closing || a->owner->stopping) return;
  uint64_t delay = sb_backoff_delay_ms(a->restarts++, RESTART_BASE_MS,
                                       RESTART_CAP_MS, random01());
  if (delay < RESTART_BASE_MS / 2) delay = RESTART_BASE_MS / 2;
  SB_INFO(MODULE, "agent %s: reconnecting in %llu ms", a->def->id,
          (unsigned long long)delay);
  uv_timer_start(&a->restart_timer, restart_tick, delay, 0);
}

static void on_channel_closed(void *ud, const char *detail) {
  agent *a = ud;
  SB_WARN(MODULE, "agent %s: %s", a->def->id, detail);
  sb_channel *dead = a->ch;
  a->ch = NULL;
  sb_channel_close(dead); /* frees it once its handles are closed */
  sb_registry_set_health(a->owner->reg, a->def->id, 0);
  if (a->client) {
    char why[256];
    snprintf(why, sizeof why, "channel closed: %s", detail);
    sb_mcp_client_transport_lost(a->client, why);
  }
  if (a->tools) {
    json_decref(a->tools);
    a->tools = NULL;
    sb_mcp_server_list_changed(a->owner->app->mcp, "tools");
  }
  schedule_restart(a);
}

static int tr_send(void *t, json_t *msg) {
  agent *a = t;
  if (!a->ch) return SB_EIO;
  return sb_channel_send(a->ch, msg, NULL);
}

static void tr_cancel(void *t, json_t *id) {
  agent *a = t;
  if (a->ch) sb_channel_cancel(a->ch, id);
}

static int tr_set_header(void *t, const char *name, const char *value) {
  agent *a = t;
  return a->ch ? sb_channel_set_header(a->ch, name, value) : 0;
}

static void on_agent_notification(void *ud, const char *method,
                                  json_t *params) {
  agent *a = ud;
  if (strcmp(method, "notifications/tools/list_changed") == 0) {
    list_tools(a);
  } else if (strcmp(method, "notifications/message") == 0) {
    json_t *data = json_object_get(params, "data");
    char *text = json_is_string(data) ? NULL : json_dumps(data, JSON_COMPACT);
    SB_INFO(MODULE, "agent %s log: %s", a->def->id,
            text ? text : json_string_value(data) ? json_string_value(data) : "");
    sb_free(text);
  }
}

/* A legacy agent asks something (sampling, elicitation, roots) while
 * serving a call: pass it to the client that made the call. */
typedef struct relay {
  agent *a;
  json_t *agent_req_id;
} relay;

static void on_client_answer(sb_mcp_call *call, json_t *result, json_t *error,
                             void *ud) {
  relay *r = ud;
  if (r->a->client)
    sb_mcp_client_respond(r->a->client, r->agent_req_id, json_incref(result),
                          json_incref(error));
  json_decref(r->agent_req_id);
  sb_free(r);
}

static sb_mcp_call *call_of_request(agent *a, sb_mcp_request *req);

static int park_request(agent *a, sb_mcp_request *req, json_t *id,
                        const char *method, json_t *params);

static void on_agent_request(void *ud, json_t *id, const char *method,
                             json_t *params, sb_mcp_request *related) {
  agent *a = ud;
  sb_mcp_call *call = related ? call_of_request(a, related) : NULL;
  if (call && sb_mcp_call_is_modern(call) &&
      park_request(a, related, id, method, params) == 0)
    return;
  relay *r = call ? sb_calloc(1, sizeof *r) : NULL;
  if (r) {
    r->a = a;
    r->agent_req_id = json_incref(id);
    if (sb_mcp_call_ask_client(call, method, json_incref(params),
                               on_client_answer, r) == 0)
      return;
    json_decref(r->agent_req_id);
    sb_free(r);
  }
  char msg[256];
  snprintf(msg, sizeof msg,
           "switchboard cannot pass %s to the client that made this call "
           "(%s)",
           method,
           call ? "it did not declare the capability, or one question is "
                  "already waiting"
                : "no call in progress");
  sb_mcp_client_respond(a->client, id, NULL,
                        json_pack("{siss}", "code", SB_RPC_METHOD_NOT_FOUND,
                                  "message", msg));
}

static void agent_connect(agent *a) {
  sb_app_agents *o = a->owner;
  sb_error err = {0};
  sb_channel_events ev = {on_channel_message, on_channel_closed, a};
  const sb_agent_transport *t = &a->def->transport;
  if (t->type == SB_AGENT_TRANSPORT_STDIO) {
    const char **args = sb_calloc(t->args.len + 1, sizeof *args);
    char **env = sb_calloc(t->env.len + 1, sizeof *env);
    for (size_t i = 0; args && i < t->args.len; i++) args[i] = t->args.items[i];
    for (size_t i = 0; env && i < t->env.len; i++)
      env[i] = sb_asprintf("%s=%s", t->env.items[i].name, t->env.items[i].value);
    sb_child_options co = {.command = t->command,
                           .args = args,
                           .env = (const char *const *)env,
                           .cwd = t->cwd,
                           .name = a->def->id,
                           .max_message_bytes = o->app->cfg->max_message_bytes};
    a->ch = args && env ? sb_channel_spawn(o->app->loop, &co, &ev, &err) : NULL;
    for (size_t i = 0; env && i < t->env.len; i++) sb_free(env[i]);
    sb_free(env);
    sb_free(args);
  } else {
    char **headers = sb_calloc(t->headers.len + 1, sizeof *headers);
    for (size_t i = 0; headers && i < t->headers.len; i++)
      headers[i] = sb_asprintf("%s: %s", t->headers.items[i].name,
                               t->headers.items[i].value);
    sb_http_channel_options ho = {
        .url = t->url,
        .headers = (const char *const *)headers,
        .name = a->def->id,
        .max_message_bytes = o->app->cfg->max_message_bytes};
    a->ch = headers ? sb_channel_http(o->app->loop, &ho, &ev, &err) : NULL;
    for (size_t i = 0; headers && i < t->headers.len; i++) sb_free(headers[i]);
    sb_free(headers);
  }
  if (!a->ch) {
    SB_WARN(MODULE, "agent %s: %s", a->def->id, err.msg[0] ? err.msg : "cannot open");
    schedule_restart(a);
    return;
  }
  if (!a->client) {
    json_t *caps = json_pack("{s{}s{}s{}}", "sampling", "elicitation", "roots");
    sb_mcp_client_options co = {
        .loop = o->app->loop,
        .name = a->def->id,
        .transport = {tr_send, tr_cancel, tr_set_header, a},
        .events = {on_agent_notification, on_agent_request, a},
        .capabilities = caps};
    a->client = sb_mcp_client_new(&co);
    json_decref(caps);
  }
  if (a->client) sb_mcp_client_connect(a->client, CONNECT_TIMEOUT_MS, on_connected, a);
}

static void on_health(void *ud, json_t *result, json_t *error) {
  agent *a = ud;
  sb_registry_set_health(a->owner->reg, a->def->id, error == NULL);
}

static void health_tick(uv_timer_t *t) {
  agent *a = t->data;
  if (!a->client || !sb_mcp_client_connected(a->client)) return;
  sb_mcp_client_request(a->client,
                        sb_mcp_client_is_modern(a->client) ? "server/discover"
                                                           : "ping",
                        NULL, HEALTH_TIMEOUT_MS, NULL, on_health, a);
}

/* ---- calls ------------------------------------------------------------- */

struct attempt {
  sb_app_agents *owner;
  sb_mcp_call *call;   /* the caller's; NULL once answered or cancelled */
  char *tool;          /* the agent-side tool name */
  json_t *arguments;   /* own reference */
  char **tried;        /* agent ids tried, for fallback */
  size_t ntried;
  agent *current;
  sb_mcp_request *req;
  sb_registry_call ticket;
  uint64_t started_ms;
  unsigned retries;
  uv_timer_t *retry_timer;
  attempt *next; /* owner's list of calls in progress */
  /* multi round-trip (era translation, see "input across eras") */
  char *public_name;  /* agent__tool, what the caller called */
  json_t *extra;      /* inputResponses/requestState sent with the call */
  unsigned rounds;    /* input_required rounds relayed to a legacy caller */
  json_t *answers;    /* inputResponses being gathered from that caller */
  size_t asked;       /* questions still unanswered */
  int parked;         /* a legacy agent's question went to a modern caller
                         as input_required; waiting for the retry */
  char token[33];     /* identifies the parked attempt in requestState */
  json_t *parked_id;  /* the agent's request id to answer */
  json_t *final_result, *final_error; /* the agent answered while parked */
  int ticket_open;    /* a registry call is begun and not yet ended */
  int asking;         /* inside ask_legacy_caller's loop */
  int retry_due;      /* every answer came in during that loop */
};

static sb_mcp_call *call_of_request(agent *a, sb_mcp_request *req) {
  for (attempt *t = a->owner->attempts; t; t = t->next)
    if (t->current == a && t->req == req) return t->call;
  return NULL;
}

static int park_for_modern_caller(attempt *t, json_t *id, const char *method,
                                  json_t *params);

static int park_request(agent *a, sb_mcp_request *req, json_t *id,
                        const char *method, json_t *params) {
  for (attempt *t = a->owner->attempts; t; t = t->next)
    if (t->current == a && t->req == req && t->call)
      return park_for_modern_caller(t, id, method, params);
  return SB_ENOENT;
}

static agent *find_agent(sb_app_agents *o, const char *id) {
  for (size_t i = 0; i < o->len; i++)
    if (strcmp(o->list[i]->def->id, id) == 0) return o->list[i];
  return NULL;
}

static int serves_tool(agent *a, const char *tool) {
  size_t i;
  json_t *t;
  json_array_foreach(a->tools, i, t) {
    const char *n = json_string_value(json_object_get(t, "name"));
    if (n && strcmp(n, tool) == 0) return 1;
  }
  return 0;
}

static int was_tried(attempt *t, const char *id) {
  for (size_t i = 0; i < t->ntried; i++)
    if (strcmp(t->tried[i], id) == 0) return 1;
  return 0;
}

static void attempt_free(attempt *t) {
  for (attempt **pp = &t->owner->attempts; *pp; pp = &(*pp)->next)
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  for (size_t i = 0; i < t->ntried; i++) sb_free(t->tried[i]);
  sb_free(t->tried);
  sb_free(t->tool);
  sb_free(t->public_name);
  json_decref(t->arguments);
  json_decref(t->extra);
  json_decref(t->answers);
  json_decref(t->parked_id);
  json_decref(t->final_result);
  json_decref(t->final_error);
  if (t->retry_timer) uv_close((uv_handle_t *)t->retry_timer, (uv_close_cb)sb_free);
  sb_free(t);
}

static void attempt_fail(attempt *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void attempt_fail(attempt *t, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (t->call) sb_mcp_call_reply_text(t->call, msg, 1);
  t->call = NULL;
  attempt_free(t);
}

/* The next agent to try: the first one (by the registry's ranking for a
 * capability the original agent has) that serves this tool, is connected
 * and has not been tried. */
static agent *next_agent(attempt *t, const sb_agent_def *origin) {
  sb_app_agents *o = t->owner;
  sb_registry_candidate cands[32];
  for (size_t c = 0; c < origin->capabilities.len; c++) {
    int n = sb_registry_rank(o->reg, origin->capabilities.items[c], NULL,
                             sb_now_ms(), cands, 32, NULL);
    for (int i = 0; i < n && i < 32; i++) {
      agent *a = find_agent(o, cands[i].def->id);
      if (a && !was_tried(t, a->def->id) && cands[i].available && a->client &&
          sb_mcp_client_connected(a->client) && serves_tool(a, t->tool))
        return a;
    }
  }
  return NULL;
}

static void try_agent(attempt *t, agent *a);

static void on_progress(void *ud, json_t *params) {
  attempt *t = ud;
  if (!t->call) return;
  json_t *p = json_object_get(params, "progress");
  json_t *total = json_object_get(params, "total");
  sb_mcp_call_progress(t->call, json_number_value(p),
                       total ? json_number_value(total) : -1,
                       json_string_value(json_object_get(params, "message")));
}

static void retry_now(uv_timer_t *timer) {
  attempt *t = timer->data;
  if (!t->call) return;
  try_agent(t, t->current);
}

/* ---- input across eras ---------------------------------------------------
 * A modern agent asks for input with an input_required result; a legacy
 * agent sends its own request (sampling, elicitation, roots) while the call
 * runs. The caller may speak the other era:
 *   modern agent, modern caller: input_required passes through unchanged
 *     and the caller's retry (inputResponses, requestState) goes back to
 *     the agent as it is;
 *   modern agent, legacy caller: each input request is asked of the caller
 *     as a real request; with every answer in, the call is retried at the
 *     agent with inputResponses and the agent's requestState (at most
 *     MAX_ROUNDS times);
 *   legacy agent, modern caller: the agent's request becomes an
 *     input_required result with a sealed requestState naming the parked
 *     call; the caller's retry carries the answer, which goes to the agent,
 *     and the agent's final answer goes to the retry;
 *   legacy agent, legacy caller: the request is relayed as a request.
 */
#define MAX_ROUNDS 8
#define PARK_STATE_TTL_MS (10 * 60 * 1000)
#define PARK_KEY "agent_request"

static void retry_with_answers(attempt *t) {
  json_t *extra = json_pack("{sO}", "inputResponses", t->answers);
  json_t *state = t->extra ? json_object_get(t->extra, "requestState") : NULL;
  if (state) json_object_set(extra, "requestState", state);
  json_decref(t->extra);
  t->extra = extra;
  json_decref(t->answers);
  t->answers = NULL;
  try_agent(t, t->current);
}

typedef struct question {
  attempt *t;
  char *key;
} question;

static void on_caller_answer(sb_mcp_call *call, json_t *result, json_t *error,
                             void *ud) {
  question *q = ud;
  attempt *t = q->t;
  if (error) {
    const char *m = json_string_value(json_object_get(error, "message"));
    char *key = q->key;
    sb_free(q);
    attempt_fail(t, "agent %s: the client did not answer %s: %s",
                 t->current->def->id, key, m ? m : "error");
    sb_free(key);
    return;
  }
  json_object_set(t->answers, q->key, result ? result : json_null());
  sb_free(q->key);
  sb_free(q);
  if (--t->asked > 0) return;
  if (t->asking) t->retry_due = 1; /* ask_legacy_caller retries after */
  else retry_with_answers(t);
}

static void ask_legacy_caller(attempt *t, json_t *result) {
  agent *a = t->current;
  json_t *requests = json_object_get(result, "inputRequests");
  json_t *state = json_object_get(result, "requestState");
  if (++t->rounds > MAX_ROUNDS) {
    attempt_fail(t, "agent %s: still asking for input after %d rounds",
                 a->def->id, MAX_ROUNDS);
    return;
  }
  json_decref(t->extra);
  t->extra = state ? json_pack("{sO}", "requestState", state) : NULL;
  json_decref(t->answers);
  t->answers = json_object();
  t->asked = json_object_size(requests);
  if (t->asked == 0) { /* nothing to ask: retry with the state alone */
    retry_with_answers(t);
    return;
  }
  /* An answer may arrive inside ask (in-process clients): the retry waits
   * until the loop is done with `requests`. */
  const char *key;
  json_t *req;
  t->asking = 1;
  t->retry_due = 0;
  json_object_foreach(requests, key, req) {
    question *q = sb_calloc(1, sizeof *q);
    if (q) q->t = t;
    const char *method = json_string_value(json_object_get(req, "method"));
    if (!q || !method || !(q->key = sb_strdup(key)) ||
        sb_mcp_call_ask_client(t->call, method,
                               json_incref(json_object_get(req, "params")),
                               on_caller_answer, q) != 0) {
      if (q) sb_free(q->key);
      sb_free(q);
      t->asking = 0;
      attempt_fail(t, "agent %s: needs %s from the client, which cannot "
                      "answer it",
                   a->def->id, method ? method : "input");
      return;
    }
  }
  t->asking = 0;
  if (t->retry_due) retry_with_answers(t);
}

/* The capability a client must declare to answer an agent's request. */
static const char *capability_for(const char *method) {
  if (strcmp(method, "sampling/createMessage") == 0) return "sampling";
  if (strcmp(method, "elicitation/create") == 0) return "elicitation";
  if (strcmp(method, "roots/list") == 0) return "roots";
  return NULL;
}

/* A legacy agent's request for a modern caller: answer the caller with
 * input_required and park the attempt until its retry. 0 if parked. */
static int park_for_modern_caller(attempt *t, json_t *id, const char *method,
                                  json_t *params) {
  sb_mcp_server *srv = t->owner->app->mcp;
  const char *cap = capability_for(method);
  if (!cap || !sb_mcp_call_has_capability(t->call, cap) || t->parked)
    return SB_ESTATE;
  sb_random_hex(t->token, 16);
  json_t *payload = json_pack("{ss}", "t", t->token);
  char *sealed = sb_mcp_state_seal(srv, "tools/call", t->public_name, payload,
                                   PARK_STATE_TTL_MS);
  json_decref(payload);
  if (!sealed) return SB_ENOMEM;
  json_t *r = json_pack("{sss{s{sssO}}ss}", "resultType", "input_required",
                        "inputRequests", PARK_KEY, "method", method, "params",
                        params ? params : json_null(), "requestState", sealed);
  sb_free(sealed);
  t->parked = 1;
  t->parked_id = json_incref(id);
  sb_mcp_call *call = t->call;
  t->call = NULL;
  sb_mcp_call_reply(call, r);
  return 0;
}

/* The agent answered (or the attempt failed locally). */
static void on_answer(void *ud, json_t *result, json_t *error) {
  attempt *t = ud;
  agent *a = t->current;
  sb_app_agents *o = t->owner;
  uint64_t now = sb_now_ms();
  t->req = NULL;
  json_t *data = json_object_get(error, "data");
  int local = error && json_object_get(data, "agent") != NULL;
  int cancelled = local && json_is_true(json_object_get(data, "cancelled"));
  int timed_out = local && json_is_true(json_object_get(data, "timeout"));
  int transport = local && json_is_true(json_object_get(data, "transport"));
  /* The agent's own errors (bad arguments...) are answers, not failures. */
  int failed = local && !cancelled;
  if (t->ticket_open) {
    t->ticket_open = 0;
    sb_registry_call_end(o->reg, a->def->id, &t->ticket, !failed,
                         now - t->started_ms, now);
  }
  if (!t->call && t->parked && !cancelled) {
    /* The caller is between rounds: keep the answer for its retry. */
    t->final_result = json_incref(result);
    t->final_error = json_incref(error);
    return;
  }
  if (cancelled || !t->call) {
    attempt_free(t);
    return;
  }
  if (o->stopping) {
    attempt_fail(t, "agent %s: switchboard is stopping", a->def->id);
    return;
  }
  if (!failed) {
    if (result) {
      const char *rt = json_string_value(json_object_get(result, "resultType"));
      if (rt && strcmp(rt, "input_required") == 0 &&
          !sb_mcp_call_is_modern(t->call)) {
        ask_legacy_caller(t, result);
        return;
      }
      if (rt && strcmp(rt, "complete") != 0 &&
          strcmp(rt, "input_required") != 0) {
        attempt_fail(t, "agent %s: answered with unknown resultType %s",
                     a->def->id, rt);
        return;
      }
      /* complete, or input_required for a modern caller (passed through:
       * its retry comes back here with inputResponses and requestState). */
      json_t *r = json_deep_copy(result);
      if (!sb_mcp_call_is_modern(t->call)) json_object_del(r, "resultType");
      sb_mcp_call_reply(t->call, r);
    } else {
      sb_mcp_call_fail(t->call,
                       (int)json_integer_value(json_object_get(error, "code")),
                       json_string_value(json_object_get(error, "message")),
                       json_incref(json_object_get(error, "data")));
    }
    t->call = NULL;
    attempt_free(t);
    return;
  }
  const char *why = json_string_value(json_object_get(error, "message"));
  /* Safe to run again: the tool is idempotent, or the agent never saw it. */
  int delivered = !transport || timed_out ||
                  !json_is_false(json_object_get(data, "delivered"));
  int safe = sb_agent_def_tool_idempotent(a->def, t->tool) || !delivered;
  if (safe && !a->removed && t->retries < (unsigned)a->def->limits.retries &&
      a->client && sb_mcp_client_connected(a->client)) {
    uint64_t delay = sb_backoff_delay_ms(t->retries++, RETRY_BASE_MS,
                                         RETRY_CAP_MS, random01());
    SB_INFO(MODULE, "agent %s: retrying %s in %llu ms after: %s", a->def->id,
            t->tool, (unsigned long long)delay, why);
    if (!t->retry_timer && (t->retry_timer = sb_malloc(sizeof *t->retry_timer))) {
      uv_timer_init(o->app->loop, t->retry_timer);
      t->retry_timer->data = t;
    }
    if (t->retry_timer) {
      uv_timer_start(t->retry_timer, retry_now, delay, 0);
      return;
    }
  }
  agent *next = safe ? next_agent(t, a->def) : NULL;
  if (next) {
    SB_INFO(MODULE, "agent %s failed (%s); falling back to %s", a->def->id, why,
            next->def->id);
    try_agent(t, next);
    return;
  }
  attempt_fail(t, "%s", why ? why : "the agent failed");
}

static void on_caller_cancel(sb_mcp_call *call, void *ud) {
  attempt *t = ud;
  t->call = NULL;
  if (t->req) sb_mcp_request_cancel(t->req, "the client cancelled");
  else attempt_free(t); /* waiting for a retry timer */
}

static void try_agent(attempt *t, agent *a) {
  sb_app_agents *o = t->owner;
  if (!was_tried(t, a->def->id)) {
    char **grown = sb_realloc(t->tried, (t->ntried + 1) * sizeof *grown);
    if (grown) {
      t->tried = grown;
      t->tried[t->ntried++] = sb_strdup(a->def->id);
    }
  }
  t->current = a;
  sb_registry_refusal why = SB_REFUSE_NONE;
  if (!a->client || !sb_mcp_client_connected(a->client) ||
      sb_registry_call_begin(o->reg, a->def->id, sb_now_ms(), &t->ticket,
                             &why) != 0) {
    const char *reason = why != SB_REFUSE_NONE ? sb_registry_refusal_name(why)
                                               : "not connected";
    agent *next = next_agent(t, a->def);
    if (next) {
      SB_INFO(MODULE, "agent %s unavailable (%s); falling back to %s",
              a->def->id, reason, next->def->id);
      try_agent(t, next);
      return;
    }
    attempt_fail(t, "agent %s: unavailable (%s)", a->def->id, reason);
    return;
  }
  t->started_ms = sb_now_ms();
  t->ticket_open = 1;
  json_t *params = json_pack("{ssso}", "name", t->tool, "arguments",
                             t->arguments ? json_incref(t->arguments)
                                          : json_object());
  if (params && t->extra) json_object_update(params, t->extra);
  t->req = sb_mcp_client_request(a->client, "tools/call", params,
                                 (uint64_t)a->def->limits.timeout_ms,
                                 on_progress, on_answer, t);
}

/* ---- the provider --------------------------------------------------------- */

static const char *const admin_tools_json =
    "["
    "{\"name\":\"agents_list\",\"title\":\"List agents\","
    "\"description\":\"The registered agents: definition, connection, era, "
    "health, breaker, load and latency.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{}},"
    "\"annotations\":{\"readOnlyHint\":true}},"
    "{\"name\":\"agents_register\",\"title\":\"Register an agent\","
    "\"description\":\"Register an AgentDefinition (id, name, type, "
    "capabilities, models, contextRequirements, outputFormat, maxTokens, "
    "temperature, transport, limits, idempotentTools) and connect to it.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"definition\":{\"type\":\"object\"},\"replace\":{\"type\":"
    "\"boolean\"}},\"required\":[\"definition\"]}},"
    "{\"name\":\"agents_remove\",\"title\":\"Remove an agent\","
    "\"description\":\"Disconnect and forget an agent.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"id\":{"
    "\"type\":\"string\"}},\"required\":[\"id\"]}},"
    "{\"name\":\"agents_explain\",\"title\":\"Explain agent choice\","
    "\"description\":\"Rank the agents with a capability (getOptimalAgent),"
    " optionally against a context, with each score and its parts.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"capability\":{\"type\":\"string\"},\"contextId\":{\"type\":"
    "\"string\"}},\"required\":[\"capability\"]},"
    "\"annotations\":{\"readOnlyHint\":true}}"
    "]";

static void reply_structured(sb_mcp_call *call, json_t *obj, int is_error) {
  char *text = json_dumps(obj, JSON_COMPACT);
  json_t *r = json_pack("{s[{ssss}]so}", "content", "type", "text", "text",
                        text ? text : "", "structuredContent", obj);
  if (r && is_error) json_object_set_new(r, "isError", json_true());
  sb_free(text);
  sb_mcp_call_reply(call, r);
}

static void reply_admin_error(sb_mcp_call *call, const sb_error *err) {
  reply_structured(call,
                   json_pack("{ssss}", "error",
                             err->code == SB_ENOENT      ? "not_found"
                             : err->code == SB_ECONFLICT ? "conflict"
                                                         : "invalid",
                             "message", err->msg),
                   1);
}

static int call_admin_tool(sb_app_agents *o, sb_mcp_call *call,
                           const char *name, json_t *args) {
  sb_error err = {0};
  int changes = strcmp(name, "agents_register") == 0 ||
                strcmp(name, "agents_remove") == 0;
  if (changes && !sb_config_is_admin(o->app->cfg, sb_mcp_call_tenant(call))) {
    /* Agents are processes and endpoints shared by every tenant. */
    sb_error_set(&err, SB_EINVAL,
                 "%s: tenant %s is not an administrator (auth.admin_tenants)",
                 name, sb_mcp_call_tenant(call));
    reply_structured(call, json_pack("{ssss}", "error", "forbidden",
                                     "message", err.msg),
                     1);
    return 1;
  }
  if (strcmp(name, "agents_list") == 0) {
    reply_structured(call, json_pack("{so}", "agents", app_agents_list_json(o)),
                     0);
  } else if (strcmp(name, "agents_register") == 0) {
    json_t *def = json_object_get(args, "definition");
    if (!json_is_object(def)) {
      sb_mcp_call_fail_invalid_args(call, name,
                                    "'definition' must be an AgentDefinition "
                                    "object");
    } else if (app_agents_add(o, def, json_is_true(json_object_get(args, "replace")),
                              0, &err) != 0) {
      reply_admin_error(call, &err);
    } else {
      reply_structured(call, json_pack("{sO}", "registered",
                                       json_object_get(def, "id")),
                       0);
    }
  } else if (strcmp(name, "agents_remove") == 0) {
    const char *id = json_string_value(json_object_get(args, "id"));
    if (!id)
      sb_mcp_call_fail_invalid_args(call, name, "'id' is required");
    else if (app_agents_remove(o, id, &err) != 0)
      reply_admin_error(call, &err);
    else
      reply_structured(call, json_pack("{ss}", "removed", id), 0);
  } else if (strcmp(name, "agents_explain") == 0) {
    const char *cap = json_string_value(json_object_get(args, "capability"));
    const char *ctx_id = json_string_value(json_object_get(args, "contextId"));
    json_t *doc = NULL, *ranking = NULL;
    if (!cap) {
      sb_mcp_call_fail_invalid_args(call, name, "'capability' is required");
      return 1;
    }
    if (ctx_id && sb_ctx_get(o->app->ctx, sb_mcp_call_tenant(call), ctx_id, 0,
                             &doc, &err) != 0) {
      reply_admin_error(call, &err);
      return 1;
    }
    if (sb_registry_explain(o->reg, cap, json_object_get(doc, "data"),
                            sb_now_ms(), &ranking, &err) != 0)
      reply_admin_error(call, &err);
    else
      reply_structured(call, json_pack("{ssso}", "capability", cap, "ranking",
                                       ranking),
                       0);
    json_decref(doc);
  } else {
    return 0;
  }
  return 1;
}

static void list_agent_tools(void *ud, sb_mcp_call *call, json_t *out) {
  sb_app_agents *o = ud;
  json_t *admin = json_loads(admin_tools_json, 0, NULL);
  json_array_extend(out, admin);
  json_decref(admin);
  uint64_t now = sb_now_ms();
  for (size_t i = 0; i < o->len; i++) {
    agent *a = o->list[i];
    /* Past its ttlMs: serve what we have and fetch it again (a
     * list_changed follows if it changed). */
    if (a->tools && a->tools_fresh_until && now >= a->tools_fresh_until)
      list_tools(a);
    size_t k;
    json_t *tool;
    json_array_foreach(a->tools, k, tool) {
      const char *n = json_string_value(json_object_get(tool, "name"));
      if (!n) continue;
      json_t *copy = json_deep_copy(tool);
      char *name = sb_asprintf("%s" SEP "%s", a->def->id, n);
      json_object_set_new(copy, "name", json_string(name));
      sb_free(name);
      json_array_append_new(out, copy);
    }
  }
}

/* A modern caller's retry carrying our sealed requestState: answer the
 * parked agent request and let the retry wait for the agent. Returns 1 if
 * the state was ours (the call is then handled), 0 to treat it as the
 * agent's own state. */
static int resume_parked(sb_app_agents *o, sb_mcp_call *call, const char *name,
                         const char *state, json_t *responses) {
  sb_error err = {0};
  json_t *payload = sb_mcp_state_open(o->app->mcp, state, "tools/call", name, &err);
  if (!payload) return 0;
  const char *token = json_string_value(json_object_get(payload, "t"));
  attempt *t = o->attempts;
  for (; t; t = t->next)
    if (t->parked && token && strcmp(t->token, token) == 0) break;
  json_decref(payload);
  if (!t) {
    sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS,
                     "requestState: the agent call it belongs to has ended "
                     "(answered, timed out or cancelled); call the tool again",
                     NULL);
    return 1;
  }
  json_t *answer = json_object_get(responses, PARK_KEY);
  if (!answer) {
    sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS,
                     "inputResponses: missing the answer to "
                     "\"" PARK_KEY "\"",
                     NULL);
    return 1;
  }
  t->parked = 0;
  t->call = call;
  sb_mcp_call_on_cancel(call, on_caller_cancel, t);
  if (t->current->client)
    sb_mcp_client_respond(t->current->client, t->parked_id,
                          json_incref(answer), NULL);
  json_decref(t->parked_id);
  t->parked_id = NULL;
  if (t->final_result || t->final_error) {
    json_t *r = t->final_result, *e = t->final_error;
    t->final_result = t->final_error = NULL;
    on_answer(t, r, e);
    json_decref(r);
    json_decref(e);
  }
  return 1;
}

static int call_agent_tool(void *ud, sb_mcp_call *call, const char *name,
                           json_t *args) {
  sb_app_agents *o = ud;
  const char *sep = strstr(name, SEP);
  if (!sep) return call_admin_tool(o, call, name, args);
  char id[65];
  size_t n = (size_t)(sep - name);
  if (n == 0 || n >= sizeof id) return 0;
  memcpy(id, name, n);
  id[n] = '\0';
  agent *a = find_agent(o, id);
  if (!a) return 0;
  const char *tool = sep + strlen(SEP);
  if (a->tools && !serves_tool(a, tool)) return 0;
  /* Parked calls whose caller never came back go once their state could
   * no longer be presented. */
  uint64_t now = sb_now_ms();
  for (attempt *p = o->attempts, *next; p; p = next) {
    next = p->next;
    if (p->parked && !p->req && now - p->started_ms > PARK_STATE_TTL_MS)
      attempt_free(p);
  }
  json_t *params = sb_mcp_call_params(call);
  const char *state = json_string_value(json_object_get(params, "requestState"));
  json_t *responses = json_object_get(params, "inputResponses");
  if (state && resume_parked(o, call, name, state, responses)) return 1;
  attempt *t = sb_calloc(1, sizeof *t);
  if (!t || !(t->tool = sb_strdup(tool)) || !(t->public_name = sb_strdup(name))) {
    if (t) sb_free(t->tool);
    sb_free(t);
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return 1;
  }
  t->owner = o;
  t->call = call;
  t->arguments = json_incref(args);
  /* A modern caller's retry of an agent's input_required: pass it on. */
  if (state || responses) {
    t->extra = json_object();
    if (state) json_object_set_new(t->extra, "requestState", json_string(state));
    if (responses) json_object_set(t->extra, "inputResponses", responses);
  }
  t->next = o->attempts;
  o->attempts = t;
  sb_mcp_call_on_cancel(call, on_caller_cancel, t);
  try_agent(t, a);
  return 1;
}

/* ---- start and stop ------------------------------------------------------ */

/* ---- membership: config, admin API, reload ----------------------------- */

static void agent_close_timers(agent *a);

/* A new agent for def (taken), appended to the pool, started. */
static agent *agent_add(sb_app_agents *o, sb_agent_def *def, int from_config) {
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
  uv_timer_init(o->app->loop, &a->restart_timer);
  uv_timer_init(o->app->loop, &a->health_timer);
  a->restart_timer.data = a->health_timer.data = a;
  o->list[o->len++] = a;
  agent_connect(a);
  uv_timer_start(&a->health_timer, health_tick, HEALTH_EVERY_MS,
                 HEALTH_EVERY_MS);
  return a;
}

/* Calls waiting to retry on a that is going away: answer them now. */
static void abandon_attempts_of(agent *a) {
  for (attempt *t = a->owner->attempts, *next; t; t = next) {
    next = t->next;
    if (t->current == a && !t->req)
      attempt_fail(t, "agent %s: removed while the call waited to retry",
                   a->def->id);
  }
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
  abandon_attempts_of(a);
  json_decref(a->tools);
  json_decref(a->listing);
  a->tools = a->listing = NULL;
  agent_close_timers(a);
}

static void agent_remove_at(sb_app_agents *o, size_t i) {
  agent *a = o->list[i];
  memmove(&o->list[i], &o->list[i + 1], (o->len - i - 1) * sizeof *o->list);
  o->len--;
  char *id = sb_strdup(a->def->id);
  agent_shutdown(a);
  if (id) sb_registry_remove(o->reg, id);
  sb_free(id);
}

int app_agents_add(sb_app_agents *o, const json_t *json, int replace,
                   int from_config, sb_error *err) {
  sb_agent_def *def = NULL;
  int rc = sb_agent_def_parse(json, &def, err);
  if (rc != 0) return rc;
  agent *old = find_agent(o, def->id);
  if (old && !replace) {
    rc = sb_error_set(err, SB_ECONFLICT, "agent %s is already registered",
                      def->id);
    sb_agent_def_free(def);
    return rc;
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
  sb_mcp_server_list_changed(o->app->mcp, "tools");
  return 0;
}

int app_agents_remove(sb_app_agents *o, const char *id, sb_error *err) {
  for (size_t i = 0; i < o->len; i++) {
    if (strcmp(o->list[i]->def->id, id) == 0) {
      agent_remove_at(o, i);
      SB_INFO(MODULE, "agent %s removed", id);
      sb_mcp_server_list_changed(o->app->mcp, "tools");
      return 0;
    }
  }
  return sb_error_set(err, SB_ENOENT, "no agent %s", id);
}

json_t *app_agents_list_json(sb_app_agents *o) {
  json_t *list = json_array();
  for (size_t i = 0; list && i < o->len; i++) {
    agent *a = o->list[i];
    int up = a->client && sb_mcp_client_connected(a->client);
    json_t *item = json_pack(
        "{sosbsbss?ss?sisO?}", "definition", sb_agent_def_to_json(a->def),
        "connected", up, "fromConfig", a->from_config, "era",
        up ? (sb_mcp_client_is_modern(a->client) ? "modern" : "legacy") : NULL,
        "protocolVersion", up ? sb_mcp_client_version(a->client) : NULL,
        "tools", (int)json_array_size(a->tools), "serverInfo",
        up ? sb_mcp_client_server_info(a->client) : NULL);
    json_t *state = sb_registry_state_json(o->reg, a->def->id, sb_now_ms());
    if (item && state) json_object_set_new(item, "state", state);
    else json_decref(state);
    json_array_append_new(list, item);
  }
  return list;
}

int app_agents_reload(sb_app_agents *o, const sb_config *cfg, sb_error *err) {
  /* Validate every definition first: a bad file changes nothing. */
  size_t n = json_array_size(cfg->agents);
  for (size_t i = 0; i < n; i++) {
    sb_agent_def *def = NULL;
    sb_error derr = {0};
    if (sb_agent_def_parse(json_array_get(cfg->agents, i), &def, &derr) != 0)
      return sb_error_set(err, SB_EINVAL, "line %zu: agents[%zu].%s",
                          cfg->agent_lines ? cfg->agent_lines[i] : 0, i,
                          derr.msg);
    sb_agent_def_free(def);
  }
  /* Config agents gone from the file are removed; API-registered ones stay. */
  for (size_t i = o->len; i-- > 0;) {
    agent *a = o->list[i];
    int kept = 0;
    for (size_t k = 0; k < n && !kept; k++)
      kept = strcmp(json_string_value(json_object_get(
                        json_array_get(cfg->agents, k), "id")) ?: "",
                    a->def->id) == 0;
    if (a->from_config && !kept) {
      SB_INFO(MODULE, "agent %s removed (no longer in the config)", a->def->id);
      agent_remove_at(o, i);
    }
  }
  /* New or changed definitions; unchanged agents keep their connection. */
  for (size_t i = 0; i < n; i++) {
    json_t *j = json_array_get(cfg->agents, i);
    agent *a = find_agent(o, json_string_value(json_object_get(j, "id")));
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
    if (app_agents_add(o, j, 1, 1, &aerr) != 0)
      SB_WARN(MODULE, "reload: %s", aerr.msg);
  }
  sb_mcp_server_list_changed(o->app->mcp, "tools");
  return 0;
}

sb_app_agents *app_agents_start(sb_app *app, sb_error *err) {
  sb_app_agents *o = sb_calloc(1, sizeof *o);
  if (!o) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  o->app = app;
  sb_registry_options ro = {0};
  o->reg = sb_registry_new(&ro);
  sb_mcp_provider p = {.name = "agents",
                       .ud = o,
                       .list_tools = list_agent_tools,
                       .call_tool = call_agent_tool,
                       .volatile_lists = 1};
  if (!o->reg || sb_mcp_server_add_provider(app->mcp, &p) != 0) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    goto fail;
  }
  size_t n = json_array_size(app->cfg->agents);
  for (size_t i = 0; i < n; i++) {
    sb_error derr = {0};
    if (app_agents_add(o, json_array_get(app->cfg->agents, i), 0, 1, &derr) !=
        0) {
      sb_error_set(err, derr.code ? derr.code : SB_EINVAL,
                   "config line %zu: agents[%zu]: %s",
                   app->cfg->agent_lines ? app->cfg->agent_lines[i] : 0, i,
                   derr.msg);
      goto fail;
    }
  }
  if (o->len) SB_INFO(MODULE, "%zu agent(s) configured", o->len);
  return o;
fail:
  app_agents_stop(o);
  return NULL;
}

static void agent_closed(uv_handle_t *h) {
  agent *a = h->data;
  if (--a->closing == 0) {
    sb_agent_def_free(a->def);
    sb_free(a);
  }
}

static void agent_close_timers(agent *a) {
  a->closing = 2;
  uv_close((uv_handle_t *)&a->restart_timer, agent_closed);
  uv_close((uv_handle_t *)&a->health_timer, agent_closed);
}

void app_agents_stop(sb_app_agents *o) {
  if (!o) return;
  o->stopping = 1;
  for (size_t i = 0; i < o->len; i++) agent_shutdown(o->list[i]);
  sb_free(o->list);
  sb_registry_free(o->reg);
  sb_free(o);
}

sb_registry *app_agents_registry(sb_app_agents *o) { return o ? o->reg : NULL; }
