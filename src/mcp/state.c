/* state.c: requestState for multi round-trip requests (MRTR).
 *
 * The state travels through the client, so it is attacker-controlled input.
 * It is sealed as base64(payload) "." base64(HMAC-SHA512/256 over the
 * payload) with a per-process key, and the payload binds the method, the
 * tool/prompt/resource name, the caller's tenant and an expiry, so a state
 * cannot be replayed on another request, by another tenant, or after it
 * lapses.
 */
#include <string.h>

#include "mcp/mcp_internal.h"

/* The tenant a state is bound to: the caller's ("" without tenants). */
static const char *owner_of(const sb_mcp_call *call) {
  const char *t = sb_mcp_call_tenant(call);
  return t ? t : "";
}

char *sb_mcp_state_seal(sb_mcp_call *call, const char *method, const char *name,
                        json_t *payload, uint64_t ttl_ms) {
  sb_mcp_server *srv = call->srv;
  json_t *env =
      json_pack("{sssssssIsO}", "m", method, "n", name, "o", owner_of(call),
                "exp", (json_int_t)(sb_wall_ms() + ttl_ms), "d", payload);
  if (!env) return NULL;
  char *body = sb_json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(env);
  if (!body) return NULL;
  unsigned char mac[crypto_auth_BYTES];
  crypto_auth(mac, (const unsigned char *)body, strlen(body), srv->state_key);
  char *b1 = sb_base64_encode(body, strlen(body));
  char *b2 = sb_base64_encode(mac, sizeof mac);
  char *out = b1 && b2 ? sb_asprintf("%s.%s", b1, b2) : NULL;
  sb_free(body);
  sb_free(b1);
  sb_free(b2);
  return out;
}

json_t *sb_mcp_state_open(sb_mcp_call *call, const char *state,
                          const char *method, const char *name, sb_error *err) {
  sb_mcp_server *srv = call->srv;
  const char *dot = state ? strchr(state, '.') : NULL;
  if (!dot) {
    sb_error_set(err, SB_EINVAL, "requestState: malformed");
    return NULL;
  }
  size_t body_len = 0, mac_len = 0;
  unsigned char *body = sb_base64_decode(state, (size_t)(dot - state), &body_len);
  unsigned char *mac = sb_base64_decode(dot + 1, strlen(dot + 1), &mac_len);
  json_t *env = NULL, *payload = NULL;
  if (!body || !mac || mac_len != crypto_auth_BYTES ||
      crypto_auth_verify(mac, body, body_len, srv->state_key) != 0) {
    sb_error_set(err, SB_EINVAL,
                 "requestState: failed verification (tampered, or issued by "
                 "another server instance)");
    goto done;
  }
  env = json_loadb((const char *)body, body_len, 0, NULL);
  const char *m = json_string_value(json_object_get(env, "m"));
  const char *n = json_string_value(json_object_get(env, "n"));
  const char *o = json_string_value(json_object_get(env, "o"));
  json_int_t exp = json_integer_value(json_object_get(env, "exp"));
  /* Another tenant's state reads as any other request's. */
  if (!m || !n || !o || strcmp(m, method) != 0 || strcmp(n, name) != 0 ||
      strcmp(o, owner_of(call)) != 0) {
    sb_error_set(err, SB_EINVAL,
                 "requestState: issued for a different request");
    goto done;
  }
  if ((uint64_t)exp < sb_wall_ms()) {
    sb_error_set(err, SB_ETIMEDOUT, "requestState: expired");
    goto done;
  }
  payload = json_incref(json_object_get(env, "d"));
done:
  json_decref(env);
  sb_free(body);
  sb_free(mac);
  return payload;
}
