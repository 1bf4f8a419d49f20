/* agent_admin.c: agents registered, replaced and removed while switchboard
 * runs (REST /v1/agents, the agents_* MCP tools), kept in the store.
 *
 * A change is applied to the gateway at once, which validates it (a bad
 * definition, an id already taken, no such agent: refused, nothing
 * changed), then written to the store; it is acknowledged once the write
 * is committed, and undone if the write fails. Writes commit in the order
 * they were made, so the last change of an id is the one kept.
 *
 * At start the store's rows are applied after the config's agents, and a
 * SIGHUP reload leaves their ids alone: a change made through the API, a
 * removal included, outlives restarts and reloads, and the config's
 * definition of such an id is not used again: that agent is changed
 * through the API from then on.
 */
#include <string.h>

#include "app/app_internal.h"
#include "registry/registry.h"

#define MODULE "app"

/* The changes of one id in flight, and the agent as the store keeps it:
 * as the last of those changes the store kept left it, or as it was
 * before them. A write that fails while a later change of the id is in
 * flight undoes nothing (the later one decides); the last one in flight
 * that fails puts back what the store keeps. Writes commit, and their
 * callbacks come, in the order they were made. */
typedef struct app_agent_pending {
  struct app_agent_pending *next;
  char *id;
  size_t in_flight;
  json_t *def; /* the agent kept; NULL: none */
  int from_config;
  json_t *api; /* app->api_agents[id] kept; NULL: none */
} agent_pending;

struct app_agent_change {
  sb_app *app;
  app_agent_done_cb done; /* NULL once forgotten */
  void *ud;
  app_agent_op op;
  char *id;
  char *tenant;
  const char *origin;
  agent_pending *pending;
  json_t *now; /* the definition written; json null for a removal */
};

static const char *op_action(app_agent_op op) {
  return op == APP_AGENT_REMOVE ? "agents_remove" : "agents_register";
}

static void change_free(app_agent_change *ch) {
  json_decref(ch->now);
  sb_free(ch->id);
  sb_free(ch->tenant);
  sb_free(ch);
}

static agent_pending *pending_find(sb_app *app, const char *id) {
  for (agent_pending *p = app->agents_pending; p; p = p->next)
    if (strcmp(p->id, id) == 0) return p;
  return NULL;
}

/* A record for id with `def`, `from_config` and `api` as kept (taken). */
static agent_pending *pending_new(sb_app *app, const char *id, json_t *def,
                                  int from_config, json_t *api) {
  agent_pending *p = sb_calloc(1, sizeof *p);
  if (p && !(p->id = sb_strdup(id))) {
    sb_free(p);
    p = NULL;
  }
  if (!p) {
    json_decref(def);
    json_decref(api);
    return NULL;
  }
  p->def = def;
  p->from_config = from_config;
  p->api = api;
  p->next = app->agents_pending;
  app->agents_pending = p;
  return p;
}

static void pending_free(agent_pending *p) {
  json_decref(p->def);
  json_decref(p->api);
  sb_free(p->id);
  sb_free(p);
}

/* Freed once no change of its id is in flight. */
static void pending_release(sb_app *app, agent_pending *p) {
  if (p->in_flight) p->in_flight--;
  if (p->in_flight) return;
  for (agent_pending **at = &app->agents_pending; *at; at = &(*at)->next)
    if (*at == p) {
      *at = p->next;
      break;
    }
  pending_free(p);
}

/* The gateway and the API's rows for id as given (def NULL: no agent). */
static void put_back(sb_app *app, const char *id, json_t *def,
                     int from_config, json_t *api) {
  sb_error err = {0};
  int rc = def ? sb_gateway_add(app->gateway, def, 1, from_config, &err)
               : sb_gateway_remove(app->gateway, id, &err);
  if (rc != 0 && rc != SB_ENOENT)
    SB_WARN(MODULE, "agent %s: not put back: %s", id, err.msg);
  if (api) json_object_set(app->api_agents, id, api);
  else json_object_del(app->api_agents, id);
}

static void on_written(void *ud, sb_store_result *res) {
  app_agent_change *ch = ud;
  sb_app *app = ch->app;
  agent_pending *p = ch->pending;
  if (app->agents_stopping) { /* the gateway is gone; callers too */
    pending_release(app, p);
    change_free(ch);
    return;
  }
  if (res->rc == 0) {
    json_decref(p->def);
    json_decref(p->api);
    p->def = ch->op == APP_AGENT_REMOVE ? NULL : json_incref(ch->now);
    p->from_config = 0;
    p->api = json_incref(ch->now);
  } else if (p->in_flight == 1) {
    put_back(app, ch->id, p->def, p->from_config, p->api);
    SB_WARN(MODULE, "agent %s: %s undone, the store did not keep it: %s",
            ch->id, op_action(ch->op), res->err.msg);
  } else {
    SB_WARN(MODULE,
            "agent %s: %s not kept by the store (%s); a later change of it "
            "is in flight",
            ch->id, op_action(ch->op), res->err.msg);
  }
  pending_release(app, p);
  /* Kept: its audit event was written with it. */
  if (res->rc == 0)
    app_audit_admin_log(ch->tenant, op_action(ch->op), ch->origin, "ok",
                        ch->id, NULL);
  else
    app_audit_admin(app, ch->tenant, op_action(ch->op), ch->origin, "failed",
                    ch->id, res->err.msg);
  if (ch->done) ch->done(ch->ud, ch->id, res->rc, &res->err);
  change_free(ch);
}

app_agent_change *app_agent_change_start(sb_app *app,
                                         const app_agent_change_args *a,
                                         sb_error *err) {
  const char *id = a->op == APP_AGENT_REMOVE
                       ? a->id
                       : json_string_value(json_object_get(a->definition,
                                                           "id"));
  json_t *prev_def = NULL, *prev_api = NULL;
  int prev_from_config = 0;
  app_agent_change *ch = sb_calloc(1, sizeof *ch);
  if (ch) ch->tenant = sb_strdup(a->tenant);
  if (!ch || !ch->tenant) {
    sb_free(ch);
    sb_error_set(err, SB_ENOMEM, "out of memory");
    goto refused;
  }
  ch->app = app;
  ch->done = a->done;
  ch->ud = a->ud;
  ch->op = a->op;
  ch->origin = a->origin;
  /* The agent as it is before the change (the API's row too). */
  sb_gateway_agent_info was;
  if (id && sb_gateway_agent_info_of(app->gateway, id, &was) == 0) {
    prev_def = sb_agent_def_to_json(was.def);
    prev_from_config = was.from_config;
    if (!prev_def) {
      change_free(ch);
      sb_error_set(err, SB_ENOMEM, "out of memory");
      goto refused;
    }
  }
  if (id) prev_api = json_incref(json_object_get(app->api_agents, id));
  int rc = a->op == APP_AGENT_REMOVE
               ? sb_gateway_remove(app->gateway, id ? id : "", err)
               : sb_gateway_add(app->gateway, a->definition,
                                a->op == APP_AGENT_REPLACE, 0, err);
  if (rc != 0) {
    change_free(ch);
    goto refused;
  }
  /* Valid now: the definition's id is a string. */
  char *text =
      a->op == APP_AGENT_REMOVE
          ? NULL
          : sb_json_dumps(a->definition, JSON_COMPACT | JSON_SORT_KEYS);
  ch->id = sb_strdup(id);
  ch->now = a->op == APP_AGENT_REMOVE ? json_null()
                                      : json_deep_copy(a->definition);
  /* Nothing in flight for id: the agent as it was is what the store
   * keeps. */
  agent_pending *p = ch->id ? pending_find(app, id) : NULL;
  if (!p && ch->id)
    p = pending_new(app, id, json_incref(prev_def), prev_from_config,
                    json_incref(prev_api));
  /* The audit event commits with the change, or neither does. */
  json_t *audit = app_audit_admin_data(op_action(a->op), a->origin, "ok", id,
                                       NULL);
  char *audit_text = audit ? sb_json_dumps(audit, JSON_COMPACT) : NULL;
  json_decref(audit);
  sb_store_event ev = {.type = sb_event_type_name(SB_EVENT_AUDIT_ADMIN),
                       .data = audit_text};
  rc = !ch->id || !ch->now || !p || !audit_text ||
               (a->op != APP_AGENT_REMOVE && !text)
           ? SB_ENOMEM
           : sb_store_agent_put(app->store, a->tenant, id, text, sb_wall_ms(),
                                &ev, on_written, ch);
  sb_free(audit_text);
  sb_free(text);
  if (rc != 0) {
    sb_error_set(err, rc,
                 rc == SB_EBUSY ? "the store is busy, nothing changed: try "
                                  "again"
                 : rc == SB_ENOMEM ? "out of memory"
                                   : "the store cannot take the change");
    /* As it was just before: changes in flight for id keep theirs. */
    put_back(app, id, prev_def, prev_from_config, prev_api);
    SB_WARN(MODULE, "agent %s: %s undone: %s", id, op_action(a->op),
            err->msg);
    if (p && !p->in_flight) pending_release(app, p);
    change_free(ch);
    goto refused;
  }
  p->in_flight++;
  ch->pending = p;
  json_object_set(app->api_agents, id, ch->now);
  json_decref(prev_def);
  json_decref(prev_api);
  return ch;
refused:
  json_decref(prev_def);
  json_decref(prev_api);
  app_audit_admin(app, a->tenant, op_action(a->op), a->origin, "failed", id,
                  err->msg);
  return NULL;
}

void app_agent_change_forget(app_agent_change *ch) {
  if (ch) ch->done = NULL;
}

int app_agents_apply_stored(sb_app *app, sb_error *err) {
  if (!(app->api_agents = json_object()))
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  sb_store_agent_rows rows;
  sb_store_agents_at_open(app->store, &rows);
  size_t started = 0;
  for (size_t i = 0; i < rows.len; i++) {
    const sb_store_agent_row *r = &rows.items[i];
    sb_error aerr = {0};
    if (!r->definition) {
      json_object_set_new(app->api_agents, r->id, json_null());
      if (sb_gateway_remove(app->gateway, r->id, &aerr) == 0)
        SB_INFO(MODULE,
                "agent %s: removed through the API (by tenant %s), its "
                "definition in the config is not used",
                r->id, r->tenant);
      continue;
    }
    json_error_t jerr;
    json_t *def = json_loads(r->definition, 0, &jerr);
    if (!def)
      sb_error_set(&aerr, SB_EINVAL, "%s", jerr.text);
    else if (sb_gateway_add(app->gateway, def, 1, 0, &aerr) == 0)
      started++;
    if (aerr.code || !def) {
      /* The API replaced whatever the config says of it: that does not
       * come back in its place. */
      sb_error rerr = {0};
      int gone = sb_gateway_remove(app->gateway, r->id, &rerr) == 0;
      SB_WARN(MODULE,
              "agent %s, registered through the API (by tenant %s), not "
              "started: %s%s",
              r->id, r->tenant, aerr.msg,
              gone ? " (its definition in the config is not used either)"
                   : "");
    }
    json_object_set_new(app->api_agents, r->id, def ? def : json_null());
  }
  if (started)
    SB_INFO(MODULE, "%zu agent(s) registered through the API", started);
  sb_store_agent_rows_clear(&rows);
  return 0;
}
