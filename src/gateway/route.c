/* route.c: agents_call, a call routed with the context.
 *
 * getOptimalAgent made live: a call names a capability (or an agent), a
 * tool, its arguments and optionally a context. The registry ranks the
 * agents with that capability against the context's data (how much of
 * each agent's contextRequirements it covers, then health, spare capacity
 * and latency); the call goes to the best agent that serves the tool and
 * falls back along that same ranking (calls.c, next_agent). Each agent
 * tried receives, in the request's _meta, the projection of the context
 * its contextRequirements name and nothing else. When an agent answers,
 * it is recorded in the context's metadata.agents as a new version, and
 * the caller's result says who was chosen and why.
 */
#include "gateway/gateway_internal.h"
#include "auth/auth.h"

#define MODULE "agents"
#define MAX_CANDIDATES 64

void gw_route_free(gw_route *r) {
  if (!r) return;
  sb_free(r->tenant);
  sb_free(r->capability);
  sb_free(r->context_id);
  json_decref(r->doc);
  for (size_t i = 0; i < r->n; i++) sb_free(r->ids[i]);
  sb_free(r->ids);
  json_decref(r->parts);
  sb_free(r);
}

static json_t *candidate_json(const sb_registry_candidate *c, size_t rank) {
  return json_pack("{sisfs{sfsfsfsf}s{sIsI}}", "rank", (int)rank, "score",
                   c->score, "parts", "coverage", c->coverage, "health",
                   c->health, "capacity", c->capacity, "latency", c->latency,
                   "coverage", "covered", (json_int_t)c->covered, "required",
                   (json_int_t)c->required);
}

static int route_add(gw_route *r, const char *id, json_t *parts) {
  char **grown = sb_realloc(r->ids, (r->n + 1) * sizeof *grown);
  if (!grown) {
    json_decref(parts);
    return SB_ENOMEM;
  }
  r->ids = grown;
  if (!(r->ids[r->n] = sb_strdup(id))) {
    json_decref(parts);
    return SB_ENOMEM;
  }
  r->n++;
  json_object_set_new(r->parts, id, parts ? parts : json_object());
  return 0;
}

/* Rank the agents with the capability against the context's data; keep
 * those that serve the tool (or have not listed their tools yet). */
static int rank(sb_gateway *o, gw_route *r, const char *tool, sb_error *err) {
  sb_registry_candidate cands[MAX_CANDIDATES];
  json_t *data = r->doc ? json_object_get(r->doc, "data") : NULL;
  int total = sb_registry_rank(o->reg, r->capability, data, sb_now_ms(), cands,
                               MAX_CANDIDATES, err);
  if (total < 0) return total;
  for (int i = 0; i < total && i < MAX_CANDIDATES; i++) {
    agent *a = gw_agent_find(o, cands[i].def->id);
    if (!a || !gw_agent_may_serve_tool(a, tool)) continue;
    if (route_add(r, a->def->id, candidate_json(&cands[i], (size_t)i + 1)) != 0)
      return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  if (r->n == 0)
    return sb_error_set(err, SB_ENOENT,
                        total == 0 ? "no agent has capability %s"
                                   : "no agent with capability %s serves "
                                     "tool %s",
                        r->capability, tool ? tool : "(none)");
  return 0;
}

/* A named agent: its own score for its first capability, if it has one. */
static int named(sb_gateway *o, gw_route *r, agent *a) {
  json_t *parts = NULL;
  if (a->def->capabilities.len) {
    sb_registry_candidate cands[MAX_CANDIDATES];
    json_t *data = r->doc ? json_object_get(r->doc, "data") : NULL;
    int total = sb_registry_rank(o->reg, a->def->capabilities.items[0], data,
                                 sb_now_ms(), cands, MAX_CANDIDATES, NULL);
    for (int i = 0; i < total && i < MAX_CANDIDATES && !parts; i++)
      if (cands[i].def == a->def) parts = candidate_json(&cands[i], 1);
  }
  return route_add(r, a->def->id, parts);
}

int sb_gateway_routed_args(const json_t *args, sb_gateway_call_options *o,
                           json_t **params, sb_error *err) {
  *params = NULL;
  const char *tool = json_string_value(json_object_get(args, "tool"));
  json_t *cap = json_object_get(args, "capability");
  json_t *who = json_object_get(args, "agent");
  json_t *arguments = json_object_get(args, "arguments");
  json_t *ctx_id = json_object_get(args, "contextId");
  json_t *tool_v = json_object_get(args, "tool");
  const char *bad = !json_is_object(args) ? "expected an object"
                    : !tool_v             ? "'tool' is required"
                    : !tool || !*tool     ? "'tool' must be a non-empty string"
                    : !cap && !who        ? "give 'capability' or 'agent' "
                                            "(neither was given)"
                    : cap && who          ? "give 'capability' or 'agent', "
                                            "not both"
                    : cap && !json_is_string(cap) ? "'capability' must be a "
                                                    "string"
                    : who && !json_is_string(who) ? "'agent' must be a string"
                    : arguments && !json_is_object(arguments)
                        ? "'arguments' must be an object"
                    : ctx_id && !json_is_string(ctx_id)
                        ? "'contextId' must be a string"
                        : NULL;
  if (bad) return sb_error_set(err, SB_EINVAL, "%s", bad);
  *params = json_pack("{so}", "arguments",
                      arguments ? json_incref((json_t *)arguments)
                                : json_object());
  if (!*params) return sb_error_set(err, SB_ENOMEM, "out of memory");
  o->agent = json_string_value(who);
  o->capability = json_string_value(cap);
  o->context_id = json_string_value(ctx_id);
  o->method = "tools/call";
  o->name = tool;
  o->no_fallback = who != NULL;
  return 0;
}

gw_route *gw_route_new(sb_gateway *o, const sb_gateway_call_options *opts,
                       sb_error *err) {
  if (opts->context_id && (!o->opts.ctx || !opts->tenant)) {
    sb_error_set(err, SB_EINVAL, "contextId: contexts are not available here");
    return NULL;
  }
  gw_route *r = sb_calloc(1, sizeof *r);
  if (!r || !(r->parts = json_object()) ||
      (opts->tenant && !(r->tenant = sb_strdup(opts->tenant))) ||
      (opts->capability && !(r->capability = sb_strdup(opts->capability))) ||
      (opts->context_id && !(r->context_id = sb_strdup(opts->context_id)))) {
    gw_route_free(r);
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  return r;
}

int gw_route_rank(sb_gateway *o, gw_route *r, agent *named_agent,
                  const char *tool, sb_error *err) {
  if (!named_agent) return rank(o, r, tool, err);
  if (named(o, r, named_agent) != 0)
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  return 0;
}

/* A list naming no agent, or none at all, leaves every agent the user
 * section its requirements name. */
int sb_gateway_sees_user(const json_t *data, const char *agent_id) {
  json_t *perms = json_object_get(json_object_get(data, "user"), "permissions");
  char perm[200];
  snprintf(perm, sizeof perm, "agents:%s", agent_id);
  int names_agents = 0;
  size_t i;
  json_t *v;
  json_array_foreach(perms, i, v) {
    const char *s = json_string_value(v);
    if (!s) continue;
    if (sb_auth_scope_grants(s, perm)) return 1;
    if (strncmp(s, "agents", 6) == 0 || strcmp(s, "admin") == 0)
      names_agents = 1;
  }
  return !names_agents;
}

json_t *gw_route_projection(gw_route *r, agent *a) {
  if (!r->doc) return NULL;
  json_t *data = NULL, *missing = NULL;
  json_t *source = json_object_get(r->doc, "data");
  json_t *withheld = NULL; /* source without its user section */
  if (!sb_gateway_sees_user(source, a->def->id)) {
    if (!(withheld = json_copy(source))) return NULL;
    json_object_del(withheld, "user");
    source = withheld;
  }
  int rc = sb_ctx_project(source, a->def->requirements_json, &data, &missing,
                          NULL);
  json_decref(withheld);
  if (rc != 0) return NULL;
  json_t *p = json_pack("{sOsOsoso}", "id", json_object_get(r->doc, "id"),
                        "version", json_object_get(r->doc, "version"), "data",
                        data, "missing", missing);
  /* What the agent is handed, in bytes (for the handoff events). */
  size_t bytes = p ? json_dumpb(p, NULL, 0, JSON_COMPACT) : 0;
  r->projection_bytes = bytes;
  /* ...beside the whole context, which is what it would get otherwise. */
  if (!r->context_bytes)
    r->context_bytes = json_dumpb(r->doc, NULL, 0, JSON_COMPACT);
  return p;
}

int gw_route_lists_agent(const json_t *doc, const char *agent_id) {
  json_t *agents = json_object_get(json_object_get(doc, "metadata"), "agents");
  size_t k;
  json_t *v;
  json_array_foreach(agents, k, v) {
    if (json_is_string(v) && strcmp(json_string_value(v), agent_id) == 0)
      return 1;
  }
  return 0;
}

json_t *gw_route_report(gw_route *r, const char *agent_id, int64_t version,
                        const char *record_error) {
  json_t *report = json_pack("{ss}", "agent", agent_id);
  if (!report) return NULL;
  if (r->capability)
    json_object_set_new(report, "capability", json_string(r->capability));
  json_t *parts = json_object_get(r->parts, agent_id);
  if (parts) json_object_update(report, parts);
  if (r->context_id) {
    json_object_set_new(report, "contextId", json_string(r->context_id));
    if (version > 0)
      json_object_set_new(report, "contextVersion", json_integer(version));
    if (record_error)
      json_object_set_new(report, "recordError", json_string(record_error));
    if (r->doc)
      json_object_set_new(report, "projectionBytes",
                          json_integer((json_int_t)r->projection_bytes));
    if (r->doc)
      json_object_set_new(report, "contextBytes",
                          json_integer((json_int_t)r->context_bytes));
  }
  return report;
}
