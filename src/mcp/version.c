/* version.c: which protocol revisions switchboard speaks, how a message's
 * era is recognised, and the Streamable HTTP header rules of 2026-07-28
 * (MCP-Protocol-Version / Mcp-Method / Mcp-Name must agree with the body).
 */
#include <string.h>

#include "mcp/mcp_internal.h"

const char *const sb_mcp_supported_versions[] = {
    SB_MCP_MODERN_VERSION, "2025-11-25", "2025-06-18",
    "2025-03-26",          "2024-11-05", NULL};

int sb_mcp_version_supported(const char *version) {
  if (!version) return 0;
  for (int i = 0; sb_mcp_supported_versions[i]; i++)
    if (strcmp(version, sb_mcp_supported_versions[i]) == 0) return 1;
  return 0;
}

int sb_mcp_version_is_modern(const char *version) {
  /* Revisions are dates; everything from the first stateless one on. */
  return version && strcmp(version, SB_MCP_MODERN_VERSION) >= 0;
}

int sb_mcp_version_allows_batch(const char *version) {
  return version && strcmp(version, "2025-03-26") == 0;
}

json_t *sb_mcp_supported_versions_json(void) {
  json_t *a = json_array();
  for (int i = 0; a && sb_mcp_supported_versions[i]; i++)
    json_array_append_new(a, json_string(sb_mcp_supported_versions[i]));
  return a;
}

sb_mcp_era sb_mcp_message_era(json_t *msg, const char **version) {
  if (version) *version = NULL;
  if (!json_is_object(msg)) return SB_MCP_ERA_NONE;
  json_t *params = json_object_get(msg, "params");
  json_t *meta = json_object_get(params, "_meta");
  json_t *v = json_object_get(meta, SB_MCP_META_PROTOCOL_VERSION);
  if (v) {
    if (version && json_is_string(v)) *version = json_string_value(v);
    return SB_MCP_ERA_MODERN;
  }
  const char *method = json_string_value(json_object_get(msg, "method"));
  if (method && strcmp(method, "initialize") == 0) return SB_MCP_ERA_LEGACY;
  return SB_MCP_ERA_NONE;
}

int sb_mcp_check_http_headers(json_t *msg, const char *protocol_version,
                              const char *mcp_method, const char *mcp_name,
                              sb_error *err) {
  const char *body_version = NULL;
  sb_mcp_era era = sb_mcp_message_era(msg, &body_version);
  const char *method = json_string_value(json_object_get(msg, "method"));
  int is_request = json_object_get(msg, "id") != NULL;

  /* A version that is not a string, or one not spoken here, is answered
   * by the envelope check (-32602, -32022 with the versions we speak):
   * which headers a request needs depends on its version. But a header
   * that names another version is a mismatch whatever the body says (the
   * header MUST match the body's field): that is said first. */
  if (era == SB_MCP_ERA_MODERN &&
      (!body_version || !sb_mcp_version_supported(body_version) ||
       !sb_mcp_version_is_modern(body_version))) {
    if (body_version && protocol_version &&
        strcmp(protocol_version, body_version) != 0)
      return sb_error_set(err, SB_RPC_HEADER_MISMATCH,
                          "Header mismatch: MCP-Protocol-Version header "
                          "value '%s' does not match body value '%s'",
                          protocol_version, body_version);
    return 0;
  }
  if (era == SB_MCP_ERA_MODERN) {
    if (!protocol_version)
      return sb_error_set(err, SB_RPC_HEADER_MISMATCH,
                          "Header mismatch: MCP-Protocol-Version header is "
                          "required (body says '%s')",
                          body_version);
    if (strcmp(protocol_version, body_version) != 0)
      return sb_error_set(err, SB_RPC_HEADER_MISMATCH,
                          "Header mismatch: MCP-Protocol-Version header "
                          "value '%s' does not match body value '%s'",
                          protocol_version, body_version);
  }
  if (!is_request || !method) return 0; /* notifications are exempt */
  if (!mcp_method)
    return sb_error_set(err, SB_RPC_HEADER_MISMATCH,
                        "Header mismatch: Mcp-Method header is required "
                        "(body method is '%s')",
                        method);
  if (strcmp(mcp_method, method) != 0)
    return sb_error_set(err, SB_RPC_HEADER_MISMATCH,
                        "Header mismatch: Mcp-Method header value '%s' does "
                        "not match body value '%s'",
                        mcp_method, method);

  const char *key = NULL;
  if (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0)
    key = "name";
  else if (strcmp(method, "resources/read") == 0)
    key = "uri";
  else if (strcmp(method, "tasks/get") == 0 ||
           strcmp(method, "tasks/update") == 0 ||
           strcmp(method, "tasks/cancel") == 0)
    key = "taskId"; /* the tasks extension: routing by task */
  if (!key) return 0;
  const char *body_name =
      json_string_value(json_object_get(json_object_get(msg, "params"), key));
  if (!body_name) return 0; /* the handler reports the missing param */
  if (!mcp_name)
    return sb_error_set(err, SB_RPC_HEADER_MISMATCH,
                        "Header mismatch: Mcp-Name header is required for "
                        "%s (body %s is '%s')",
                        method, key, body_name);
  char *decoded = sb_mcp_header_decode(mcp_name);
  if (!decoded)
    return sb_error_set(err, SB_RPC_HEADER_MISMATCH,
                        "Header mismatch: Mcp-Name header value is not "
                        "valid (characters other than visible ASCII, space "
                        "and tab, or broken base64)");
  int same = strcmp(decoded, body_name) == 0;
  int rc = 0;
  if (!same)
    rc = sb_error_set(err, SB_RPC_HEADER_MISMATCH,
                      "Header mismatch: Mcp-Name header value '%s' does not "
                      "match body value '%s'",
                      decoded, body_name);
  sb_free(decoded);
  return rc;
}

int sb_mcp_http_status(json_t *final_msg) {
  json_t *error = json_object_get(final_msg, "error");
  if (!error) return 200;
  int code = (int)json_integer_value(json_object_get(error, "code"));
  switch (code) {
  case SB_RPC_INVALID_PARAMS:
    /* Only the envelope check (missing _meta fields) is a 400; a handler's
     * invalid params (unknown tool, bad arguments) is an ordinary answer. */
    return json_object_get(json_object_get(error, "data"), "metaField") ? 400
                                                                         : 200;
  case SB_RPC_PARSE_ERROR:
  case SB_RPC_INVALID_REQUEST:
  case SB_RPC_HEADER_MISMATCH:
  case SB_RPC_MISSING_CLIENT_CAPABILITY:
  case SB_RPC_UNSUPPORTED_PROTOCOL_VERSION:
    return 400;
  case SB_RPC_METHOD_NOT_FOUND: return 404;
  default: return 200;
  }
}

static const char *const log_level_names[] = {
    "debug", "info", "notice", "warning", "error", "critical", "alert",
    "emergency"};

int mcp_log_level_parse(const char *name) {
  if (!name) return -2;
  for (int i = 0; i < 8; i++)
    if (strcmp(name, log_level_names[i]) == 0) return i;
  return -2;
}

const char *mcp_log_level_name(int level) {
  return level >= 0 && level < 8 ? log_level_names[level] : "info";
}
