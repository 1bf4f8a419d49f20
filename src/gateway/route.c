/* route.c: agents_call, a call routed with the context.
 *
 * getOptimalAgent made live: the caller names a capability (or an agent),
 * a tool, its arguments and optionally a context. The registry ranks the
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

#define MODULE "agents"
#define MAX_CANDIDATES 64
#define RECORD_TRIES 4

static const char *const routed_tool_json =
    "{\"name\":\"" GW_ROUTED_TOOL "\",\"title\":\"Call the best agent\","
    "\"description\":\"Call a tool on the agent best placed for a "
    "capability given a context (getOptimalAgent: coverage of the agent's "
    "contextRequirements, health, spare capacity, latency), falling back "
    "along the same ranking. The agent receives only the projection of the "
    "context it requires, and is recorded in the context's metadata.agents."
    " Name `agent` instead of `capability` to call one agent.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"capability\":{\"type\":\"string\"},\"agent\":{\"type\":\"string\"},"
    "\"tool\":{\"type\":\"string\"},\"arguments\":{\"type\":\"object\"},"
    "\"contextId\":{\"type\":\"string\"}},\"required\":[\"tool\"]}}";

void gw_route_list_tool(json_t *tools) {
  json_array_append_new(tools, json_loads(routed_tool_json, 0, NULL));
}

void gw_route_free(gw_route *r) {
  if (!r) return;
  sb_free(r->tenant);
  sb_free(r->capability);
  json_decref(r->arguments);
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
    if (!a || (a->lists[LIST_TOOLS].items && !gw_agent_serves_tool(a, tool)))
      continue;
    if (route_add(r, a->def->id, candidate_json(&cands[i], (size_t)i + 1)) != 0)
      return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  if (r->n == 0)
    return sb_error_set(err, SB_ENOENT,
                        total == 0 ? "no agent has capability %s"
                                   : "no agent with capability %s serves "
                                     "tool %s",
                        r->capability, tool);
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

int gw_call_routed(sb_gateway *o, sb_mcp_call *call, json_t *args) {
  const char *tool = json_string_value(json_object_get(args, "tool"));
  json_t *cap = json_object_get(args, "capability");
  json_t *who = json_object_get(args, "agent");
  json_t *arguments = json_object_get(args, "arguments");
  json_t *ctx_id = json_object_get(args, "contextId");
  const char *bad = !tool                          ? "'tool' is required"
                    : !cap == !who                 ? "give 'capability' or "
                                                     "'agent', not both"
                    : cap && !json_is_string(cap)  ? "'capability' must be a "
                                                     "string"
                    : who && !json_is_string(who)  ? "'agent' must be a string"
                    : arguments && !json_is_object(arguments)
                        ? "'arguments' must be an object"
                    : ctx_id && !json_is_string(ctx_id)
                        ? "'contextId' must be a string"
                    : ctx_id && !o->opts.ctx ? "contexts are not available here"
                                             : NULL;
  if (bad) {
    sb_mcp_call_fail_invalid_args(call, GW_ROUTED_TOOL, bad);
    return 1;
  }
  sb_error err = {0};
  gw_route *r = sb_calloc(1, sizeof *r);
  if (!r || !(r->tenant = sb_strdup(sb_mcp_call_tenant(call))) ||
      !(r->parts = json_object()) ||
      (cap && !(r->capability = sb_strdup(json_string_value(cap))))) {
    gw_route_free(r);
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return 1;
  }
  r->arguments = json_incref(arguments);
  if (ctx_id && sb_ctx_get(o->opts.ctx, r->tenant, json_string_value(ctx_id),
                           0, &r->doc, &err) != 0) {
    /* Another tenant's id reads exactly like a missing one. */
    char what[sizeof err.msg + 16];
    snprintf(what, sizeof what, "contextId: %s", err.msg);
    gw_route_free(r);
    sb_mcp_call_fail_invalid_args(call, GW_ROUTED_TOOL, what);
    return 1;
  }
  agent *first = NULL;
  if (who) {
    first = gw_agent_find(o, json_string_value(who));
    if (!first) {
      sb_error_set(&err, SB_ENOENT, "no agent %s", json_string_value(who));
    } else if (named(o, r, first) != 0) {
      sb_error_set(&err, SB_ENOMEM, "out of memory");
      first = NULL;
    }
  } else if (rank(o, r, tool, &err) == 0) {
    first = gw_agent_find(o, r->ids[0]);
  }
  if (!first) {
    sb_mcp_call_reply_text(call, err.msg, 1);
    gw_route_free(r);
    return 1;
  }
  gw_attempt_start(o, first, call, tool, GW_ROUTED_TOOL, who != NULL, r);
  return 1;
}

/* Append agent_id to the context's metadata.agents unless it is there;
 * the version that holds it in *version. Retries a write that lost a race
 * with another writer. */
static int record_agent(sb_gateway *o, gw_route *r, const char *agent_id,
                        int64_t *version, sb_error *err) {
  const char *id = json_string_value(json_object_get(r->doc, "id"));
  for (int i = 0; i < RECORD_TRIES; i++) {
    json_t *head = NULL;
    int rc = sb_ctx_get(o->opts.ctx, r->tenant, id, 0, &head, err);
    if (rc != 0) return rc;
    json_t *agents = json_object_get(json_object_get(head, "metadata"), "agents");
    int64_t at = json_integer_value(json_object_get(head, "version"));
    size_t k;
    json_t *v;
    int present = 0;
    json_array_foreach(agents, k, v) present |=
        json_is_string(v) && strcmp(json_string_value(v), agent_id) == 0;
    json_decref(head);
    if (present) {
      *version = at;
      return 0;
    }
    json_t *patch = json_pack("[{ssssss}]", "op", "add", "path",
                              "/metadata/agents/-", "value", agent_id);
    json_t *out = NULL;
    int64_t current = 0;
    rc = sb_ctx_update(o->opts.ctx, r->tenant, id, at, SB_CTX_JSON_PATCH, patch,
                       &out, &current, err);
    json_decref(patch);
    if (rc == 0) *version = json_integer_value(json_object_get(out, "version"));
    json_decref(out);
    if (rc != SB_ECONFLICT) return rc;
  }
  return sb_error_set(err, SB_ECONFLICT,
                      "the context kept changing while recording the agent");
}

json_t *gw_route_answered(sb_gateway *o, gw_route *r, const char *agent_id) {
  json_t *report = json_pack("{ss}", "agent", agent_id);
  if (!report) return NULL;
  if (r->capability)
    json_object_set_new(report, "capability", json_string(r->capability));
  json_t *parts = json_object_get(r->parts, agent_id);
  if (parts) json_object_update(report, parts);
  if (r->doc) {
    int64_t version = 0;
    sb_error err = {0};
    json_object_set(report, "contextId", json_object_get(r->doc, "id"));
    if (record_agent(o, r, agent_id, &version, &err) == 0) {
      json_object_set_new(report, "contextVersion", json_integer(version));
    } else {
      SB_WARN(MODULE, "agent %s answered, but recording it in context %s "
                      "failed: %s",
              agent_id, json_string_value(json_object_get(r->doc, "id")),
              err.msg);
      json_object_set_new(report, "recordError", json_string(err.msg));
    }
  }
  return report;
}
