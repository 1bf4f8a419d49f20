/* call_context.c: the context of a call routed with one.
 *
 * Before routing, the context named by the call is read (off the loop, by
 * the store) and the call ranked with it; after the agent's answer, the
 * agent is recorded in the context's metadata.agents before the call
 * ends. The call itself (sending, retries, its end) is calls.c's; the
 * ranking and the projection each agent receives are route.c's.
 */
#include "gateway/call_internal.h"
#include "auth/auth.h"

#define MODULE "agents"

/* ---- the context: read before routing, written after the answer ------------ */

/* The agent's answer is final: the call ends once the agent is recorded in
 * the context's metadata.agents (or recording failed: the answer still
 * goes out, with recordError in the routing report). Recording reads the
 * head and, unless the agent is there already, appends it with a JSON
 * Patch at that version; a write that lost a race reads again, at most
 * RECORD_TRIES times. Each step is issued only while the call lives, so
 * nothing reaches the store (or the gateway) once it has ended. */
#define RECORD_TRIES 4

static void recorded(sb_gateway_call *c, int64_t version, const sb_error *err) {
  if (err)
    SB_WARN(MODULE, "agent %s answered, but recording it in context %s "
                    "failed: %s",
            gw_call_agent_id(c), c->route->context_id, err->msg);
  json_t *routing = gw_call_routing_report(c, gw_call_agent_id(c), version,
                                           err ? err->msg : NULL);
  sb_gateway_result r = {.outcome = SB_GATEWAY_ANSWERED,
                         .result = c->kept_result,
                         .error = c->kept_error,
                         .routing = routing};
  gw_call_finish(c, &r);
  json_decref(routing);
}

/* A store callback for a call that may have ended meanwhile: 1 (and the
 * call is freed) if it has. */
static int store_back(sb_gateway_call *c) {
  c->store_op = 0;
  if (c->state != CALL_DONE) return 0;
  gw_call_free(c);
  return 1;
}

static void record_read(void *ud, const sb_ctx_result *res);

static void record_start_read(sb_gateway_call *c) {
  sb_error err = {0};
  c->store_op = 1;
  if (sb_ctx_get_async(c->owner->opts.ctx, c->tenant, c->route->context_id, 0,
                       record_read, c, &err) != 0) {
    c->store_op = 0;
    recorded(c, 0, &err);
  }
}

static void record_written(void *ud, const sb_ctx_result *res) {
  sb_gateway_call *c = ud;
  if (store_back(c)) return;
  if (res->rc == SB_ECONFLICT && ++c->record_tries < RECORD_TRIES) {
    record_start_read(c);
    return;
  }
  recorded(c, res->rc == 0 ? res->version : 0, res->rc == 0 ? NULL : &res->err);
}

static void record_read(void *ud, const sb_ctx_result *res) {
  sb_gateway_call *c = ud;
  if (store_back(c)) return;
  if (res->rc != 0) {
    recorded(c, 0, &res->err);
    return;
  }
  if (gw_route_lists_agent(res->doc, gw_call_agent_id(c))) {
    recorded(c, res->version, NULL);
    return;
  }
  json_t *patch = json_pack("[{ssssss}]", "op", "add", "path",
                            "/metadata/agents/-", "value", gw_call_agent_id(c));
  sb_error err = {0};
  c->store_op = 1;
  int rc = patch ? sb_ctx_update_async(c->owner->opts.ctx, c->tenant,
                                       c->route->context_id, res->version,
                                       SB_CTX_JSON_PATCH, patch, record_written,
                                       c, &err)
                 : sb_error_set(&err, SB_ENOMEM, "out of memory");
  json_decref(patch);
  if (rc != 0) {
    c->store_op = 0;
    recorded(c, 0, &err);
  }
}

void gw_call_record(sb_gateway_call *c, json_t *result, json_t *error) {
  c->kept_result = json_incref(result);
  c->kept_error = json_incref(error);
  c->state = CALL_RECORDING;
  record_start_read(c);
}

/* The context the call is routed with has been read: rank, then go. */
void gw_call_context_read(void *ud, const sb_ctx_result *res) {
  sb_gateway_call *c = ud;
  if (store_back(c)) return; /* cancelled or timed out meanwhile */
  if (res->rc != 0) {
    /* Another tenant's id reads exactly like a missing one. */
    gw_call_fail(c, res->rc == SB_EBUSY ? SB_GATEWAY_BUSY : SB_GATEWAY_INVALID,
                 "contextId: %s", res->err.msg);
    return;
  }
  /* The context's own permissions, the caller must hold them all. */
  const char *missing = NULL;
  if (!sb_auth_permits_all(
          c->principal,
          json_object_get(json_object_get(res->doc, "metadata"), "permissions"),
          &missing)) {
    if (!(c->refused_scope = sb_strdup(missing))) {
      gw_call_fail(c, SB_GATEWAY_INVALID, "out of memory");
      return;
    }
    gw_call_fail(c, SB_GATEWAY_FORBIDDEN, "context requires scope \"%s\"",
                 missing);
    return;
  }
  /* The agent reads the context on the caller's behalf (what it is handed
   * may come back in its answer, and the call writes a version): the
   * caller must be able to read all of it. */
  if (!sb_auth_permits(c->principal, "contexts:read")) {
    if (!(c->refused_scope = sb_strdup("contexts:read"))) {
      gw_call_fail(c, SB_GATEWAY_INVALID, "out of memory");
      return;
    }
    gw_call_fail(c, SB_GATEWAY_FORBIDDEN,
                 "missing scope \"contexts:read\": an agent is handed the "
                 "context on the caller's behalf");
    return;
  }
  c->route->doc = json_incref(res->doc);
  /* The whole context's size for the handoff events, from its stored text
   * (else gw_route_projection serialises the document to count it). */
  if (res->text) c->route->context_bytes = strlen(res->text);
  agent *named = c->named ? gw_agent_find(c->owner, c->named) : NULL;
  if (c->named && !named) {
    gw_call_fail(c, SB_GATEWAY_NO_AGENT, "no agent %s", c->named);
    return;
  }
  sb_error err = {0};
  if (gw_route_rank(c->owner, c->route, named, c->tool, &err) != 0) {
    gw_call_fail(c, SB_GATEWAY_NO_AGENT, "%s", err.msg);
    return;
  }
  gw_call_try_agent(c,
                    named ? named : gw_agent_find(c->owner, c->route->ids[0]));
}
