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
 * definition of such an id is not used until the config is the only
 * place that names it again (never, today: re-register it through the
 * API to change it).
 */
#include <string.h>

#include "app/app_internal.h"
#include "registry/registry.h"

#define MODULE "app"

struct app_agent_change {
  sb_app *app;
  app_agent_done_cb done; /* NULL once forgotten */
  void *ud;
  app_agent_op op;
  char *id;
  char *tenant;
  const char *origin;
  json_t *prev_def; /* the agent before the change; NULL: there was none */
  int prev_from_config;
  json_t *prev_api; /* app->api_agents[id] before; NULL: none */
  app_agent_change *next; /* app->agent_changes: in flight, oldest first */
};

static const char *op_action(app_agent_op op) {
  return op == APP_AGENT_REMOVE ? "agents_remove" : "agents_register";
}

static void change_free(app_agent_change *ch) {
  json_decref(ch->prev_def);
  json_decref(ch->prev_api);
  sb_free(ch->id);
  sb_free(ch->tenant);
  sb_free(ch);
}

/* The write failed: the gateway and the API's rows as they were. */
static void undo(app_agent_change *ch, const sb_error *why) {
  sb_app *app = ch->app;
  sb_error err = {0};
  if (ch->prev_def)
    sb_gateway_add(app->gateway, ch->prev_def, 1, ch->prev_from_config, &err);
  else
    sb_gateway_remove(app->gateway, ch->id, &err);
  if (ch->prev_api) json_object_set(app->api_agents, ch->id, ch->prev_api);
  else json_object_del(app->api_agents, ch->id);
  SB_WARN(MODULE, "agent %s: %s undone, the store did not keep it: %s",
          ch->id, op_action(ch->op), why->msg);
}

/* ch's write failed. A later change of the same id, still in flight, was
 * made over ch's state: it inherits what came before ch (for its own undo),
 * and its write decides. Else the state before ch comes back now. */
static void write_failed(app_agent_change *ch, const sb_error *why) {
  for (app_agent_change *later = ch->next; later; later = later->next) {
    if (strcmp(later->id, ch->id) != 0) continue;
    json_t *def = later->prev_def, *api = later->prev_api;
    later->prev_def = ch->prev_def;
    later->prev_from_config = ch->prev_from_config;
    later->prev_api = ch->prev_api;
    ch->prev_def = def; /* freed with ch */
    ch->prev_api = api;
    SB_WARN(MODULE, "agent %s: %s not kept by the store: %s", ch->id,
            op_action(ch->op), why->msg);
    return;
  }
  undo(ch, why);
}

static void on_written(void *ud, sb_store_result *res) {
  app_agent_change *ch = ud;
  sb_app *app = ch->app;
  for (app_agent_change **pp = &app->agent_changes; *pp; pp = &(*pp)->next)
    if (*pp == ch) {
      *pp = ch->next;
      break;
    }
  if (app->agents_stopping) { /* the gateway is gone; callers too */
    change_free(ch);
    return;
  }
  if (res->rc != 0) write_failed(ch, &res->err);
  app_audit_admin(app, ch->tenant, op_action(ch->op), ch->origin,
                  res->rc == 0 ? "ok" : "failed", ch->id,
                  res->rc == 0 ? NULL : res->err.msg);
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
  sb_gateway_agent_info was;
  if (id && sb_gateway_agent_info_of(app->gateway, id, &was) == 0) {
    ch->prev_def = sb_agent_def_to_json(was.def);
    ch->prev_from_config = was.from_config;
  }
  int rc = a->op == APP_AGENT_REMOVE
               ? sb_gateway_remove(app->gateway, id ? id : "", err)
               : sb_gateway_add(app->gateway, a->definition,
                                a->op == APP_AGENT_REPLACE, 0, err);
  if (rc != 0) {
    change_free(ch);
    goto refused;
  }
  /* Valid now: the definition's id is a string. */
  id = a->op == APP_AGENT_REMOVE
           ? a->id
           : json_string_value(json_object_get(a->definition, "id"));
  char *text = a->op == APP_AGENT_REMOVE
                   ? NULL
                   : json_dumps(a->definition, JSON_COMPACT | JSON_SORT_KEYS);
  ch->id = sb_strdup(id);
  ch->prev_api = json_incref(json_object_get(app->api_agents, id));
  json_t *now = a->op == APP_AGENT_REMOVE ? json_null()
                                          : json_deep_copy(a->definition);
  rc = !ch->id || !now || (a->op != APP_AGENT_REMOVE && !text)
           ? SB_ENOMEM
           : sb_store_agent_put(app->store, a->tenant, id, text, sb_now_ms(),
                                on_written, ch);
  sb_free(text);
  if (rc != 0) {
    sb_error_set(err, rc,
                 rc == SB_EBUSY ? "the store is busy, nothing changed: try "
                                  "again"
                 : rc == SB_ENOMEM ? "out of memory"
                                   : "the store cannot take the change");
    if (ch->id) undo(ch, err);
    json_decref(now);
    change_free(ch);
    goto refused;
  }
  json_object_set_new(app->api_agents, id, now);
  app_agent_change **tail = &app->agent_changes;
  while (*tail) tail = &(*tail)->next;
  *tail = ch;
  return ch;
refused:
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
    if (aerr.code || !def)
      SB_WARN(MODULE,
              "agent %s, registered through the API (by tenant %s), not "
              "started: %s",
              r->id, r->tenant, aerr.msg);
    json_object_set_new(app->api_agents, r->id, def ? def : json_null());
  }
  if (started)
    SB_INFO(MODULE, "%zu agent(s) registered through the API", started);
  sb_store_agent_rows_clear(&rows);
  return 0;
}
