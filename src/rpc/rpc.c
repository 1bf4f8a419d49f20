/* rpc.c: JSON-RPC 2.0 parsing, validation and message builders.
 *
 * Hostile input is bounded before a tree is built: the byte limit first;
 * the nesting depth by the reader itself (sb_json_read_fast_within), or,
 * for text it leaves to jansson, by a single scan over the raw text
 * (strings skipped), so a 4 MiB "[[[[..." never reaches jansson's
 * recursive parser.
 * Duplicate object keys are rejected by jansson itself.
 */
#include "rpc/rpc.h"

#include <pthread.h>
#include <string.h>

/* Depth of the deepest array/object nesting, or -1 once it passes max.
 * Brackets inside strings don't count. */
static int scan_depth(const char *data, size_t len, int max) {
  int depth = 0, deepest = 0, in_string = 0;
  for (size_t i = 0; i < len; i++) {
    char c = data[i];
    if (in_string) {
      if (c == '\\') i++;
      else if (c == '"') in_string = 0;
      continue;
    }
    switch (c) {
    case '"': in_string = 1; break;
    case '[':
    case '{':
      if (++depth > max) return -1;
      if (depth > deepest) deepest = depth;
      break;
    case ']':
    case '}':
      depth--;
      break;
    default: break;
    }
  }
  return deepest;
}

/* Bounded parse: the byte limit and the depth scan before jansson sees
 * the text; `flags` adds to JSON_REJECT_DUPLICATES. */
static int parse_bounded(const char *data, size_t len,
                         const sb_rpc_limits *limits, size_t flags,
                         json_t **out, sb_error *err) {
  size_t max_bytes = limits && limits->max_bytes ? limits->max_bytes
                                                 : SB_RPC_DEFAULT_MAX_BYTES;
  int max_depth = limits && limits->max_depth ? limits->max_depth
                                              : SB_RPC_DEFAULT_MAX_DEPTH;
  *out = NULL;
  if (len > max_bytes)
    return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                        "message of %zu bytes exceeds the limit of %zu bytes",
                        len, max_bytes);
  /* Most messages are read by our reader, which keeps to the depth limit
   * itself; what it declines is scanned for depth before jansson (whose
   * parser recurses) reads it. */
  json_t *root = sb_json_read_fast_within(
      data, len, JSON_REJECT_DUPLICATES | flags, max_depth);
  if (root) {
    *out = root;
    return 0;
  }
  if (scan_depth(data, len, max_depth) < 0)
    return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                        "message nests deeper than the limit of %d levels",
                        max_depth);
  json_error_t jerr;
  root = sb_json_loadb(data, len, JSON_REJECT_DUPLICATES | flags, &jerr);
  if (!root) {
    sb_error_set(err, SB_RPC_PARSE_ERROR,
                 "invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
    /* jansson's text quotes the bytes near the fault, which need not be
     * UTF-8: unscrubbed, the error answering them could not be built and
     * the message would go unanswered. */
    if (err) sb_utf8_scrub(err->msg);
    return SB_RPC_PARSE_ERROR;
  }
  *out = root;
  return 0;
}

int sb_rpc_parse(const char *data, size_t len, const sb_rpc_limits *limits,
                 json_t **out, sb_error *err) {
  /* JSON_DECODE_ANY: a well-formed scalar is an Invalid Request (-32600, as
   * in the JSON-RPC spec's "--> 1" example), not a parse error. */
  json_t *root = NULL;
  *out = NULL;
  int rc = parse_bounded(data, len, limits, JSON_DECODE_ANY, &root, err);
  if (rc != 0) return rc;
  if (!json_is_object(root) && !json_is_array(root)) {
    json_decref(root);
    return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                        "a JSON-RPC message must be an object (or a batch "
                        "array)");
  }
  *out = root;
  return 0;
}

int sb_rpc_parse_document(const char *data, size_t len,
                          const sb_rpc_limits *limits, json_t **out,
                          sb_error *err) {
  return parse_bounded(data, len, limits, 0, out, err);
}

int sb_rpc_id_valid(const json_t *id) {
  return id && (json_is_string(id) || json_is_integer(id));
}

int sb_rpc_classify(json_t *msg, sb_rpc_msg *out, sb_error *err) {
  memset(out, 0, sizeof *out);
  out->root = msg;
  if (!json_is_object(msg))
    return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                        "a JSON-RPC message must be an object");
  json_t *id = json_object_get(msg, "id");
  if (sb_rpc_id_valid(id)) out->id = id;

  json_t *version = json_object_get(msg, "jsonrpc");
  if (!json_is_string(version) || strcmp(json_string_value(version), "2.0"))
    return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                        "jsonrpc: must be the string \"2.0\"");
  json_t *method = json_object_get(msg, "method");
  json_t *result = json_object_get(msg, "result");
  json_t *error = json_object_get(msg, "error");

  /* "id": null is how JSON-RPC peers answer a request whose id they could
   * not read (sb_rpc_error_new does it too); MCP makes that id optional.
   * Accept it on error responses only, as an absent id. */
  if (json_is_null(id) && error && !method && !result) id = NULL;
  if (id && !out->id)
    return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                        json_is_null(id)
                            ? "id: must not be null"
                            : "id: must be a string or an integer");

  if (method) {
    if (!json_is_string(method) || json_string_length(method) == 0)
      return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                          "method: must be a non-empty string");
    if (result || error)
      return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                          "a request must not carry result or error");
    json_t *params = json_object_get(msg, "params");
    if (params && !json_is_object(params))
      return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                          "params: must be an object");
    out->method = json_string_value(method);
    out->params = params;
    out->kind = id ? SB_RPC_REQUEST : SB_RPC_NOTIFICATION;
    return 0;
  }
  if (result || error) {
    if (result && error)
      return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                          "a response must carry result or error, not both");
    if (error) {
      json_t *code = json_object_get(error, "code");
      json_t *message = json_object_get(error, "message");
      if (!json_is_object(error) || !json_is_integer(code) ||
          !json_is_string(message))
        return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                            "error: must be an object with an integer code "
                            "and a string message");
    } else if (!id) {
      return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                          "id: a result response must carry its id");
    }
    out->result = result;
    out->error = error;
    out->kind = SB_RPC_RESPONSE;
    return 0;
  }
  return sb_error_set(err, SB_RPC_INVALID_REQUEST,
                      "method: missing (a message needs a method, or a "
                      "result or error)");
}

/* The builders check every insertion: under memory pressure jansson's setters
 * fail quietly, and a message missing "jsonrpc" or "code" must never go out
 * in place of a NULL the caller can handle. */
static json_t *jsonrpc_version; /* "2.0", one value every message shares */
static pthread_once_t jsonrpc_version_once = PTHREAD_ONCE_INIT;

static void make_jsonrpc_version(void) { jsonrpc_version = json_string("2.0"); }

static json_t *envelope(json_t *id) {
  pthread_once(&jsonrpc_version_once, make_jsonrpc_version);
  json_t *m = json_object();
  if (!m) return NULL;
  json_t *version =
      jsonrpc_version ? json_incref(jsonrpc_version) : json_string("2.0");
  if (json_object_set_new(m, "jsonrpc", version) != 0 ||
      (id && json_object_set(m, "id", id) != 0)) {
    json_decref(m);
    return NULL;
  }
  return m;
}

json_t *sb_rpc_result_new(json_t *id, json_t *result) {
  json_t *m = envelope(id);
  if (!m || !result) {
    json_decref(m);
    json_decref(result);
    return NULL;
  }
  if (json_object_set_new(m, "result", result) != 0) {
    json_decref(m);
    return NULL;
  }
  return m;
}

json_t *sb_rpc_error_new(json_t *id, int code, const char *message,
                         json_t *data) {
  json_t *m = envelope(id);
  json_t *e = json_object();
  if (!m || !e) goto fail;
  /* An id that could not be read is left out: MCP's schema makes it
   * optional, not nullable, and the SDKs reject "id": null. */
  if (!message) message = sb_rpc_code_name(code);
  /* A message quoting what a peer sent (an agent's body, a challenge)
   * may not be UTF-8, which JSON cannot carry: '?' in its place. */
  json_t *text = json_string(message);
  if (!text) {
    char *copy = sb_strdup(message);
    if (copy) sb_utf8_scrub(copy);
    text = copy ? json_string(copy) : NULL;
    sb_free(copy);
  }
  if (json_object_set_new(e, "code", json_integer(code)) != 0 ||
      json_object_set_new(e, "message", text) != 0)
    goto fail;
  if (data) {
    json_t *d = data;
    data = NULL; /* set_new consumes it even when it fails */
    if (json_object_set_new(e, "data", d) != 0) goto fail;
  }
  json_t *err_obj = e;
  e = NULL;
  if (json_object_set_new(m, "error", err_obj) != 0) goto fail;
  return m;
fail:
  json_decref(m);
  json_decref(e);
  json_decref(data);
  return NULL;
}

json_t *sb_rpc_notification_new(const char *method, json_t *params) {
  json_t *m = envelope(NULL);
  if (!m || json_object_set_new(m, "method", json_string(method)) != 0) {
    json_decref(m);
    json_decref(params);
    return NULL;
  }
  if (params && json_object_set_new(m, "params", params) != 0) {
    json_decref(m);
    return NULL;
  }
  return m;
}

json_t *sb_rpc_request_new(json_t *id, const char *method, json_t *params) {
  json_t *m = sb_rpc_notification_new(method, params);
  if (m && json_object_set(m, "id", id) != 0) {
    json_decref(m);
    return NULL;
  }
  return m;
}

char *sb_rpc_dump(const json_t *msg, size_t *len) {
  /* NULL: not an object or array, or out of memory */
  return sb_json_dumps_len(msg, JSON_COMPACT, len);
}

const char *sb_rpc_code_name(int code) {
  switch (code) {
  case SB_RPC_PARSE_ERROR: return "Parse error";
  case SB_RPC_INVALID_REQUEST: return "Invalid Request";
  case SB_RPC_METHOD_NOT_FOUND: return "Method not found";
  case SB_RPC_INVALID_PARAMS: return "Invalid params";
  case SB_RPC_INTERNAL_ERROR: return "Internal error";
  case SB_RPC_HEADER_MISMATCH: return "Header mismatch";
  case SB_RPC_MISSING_CLIENT_CAPABILITY: return "Missing required client capability";
  case SB_RPC_UNSUPPORTED_PROTOCOL_VERSION: return "Unsupported protocol version";
  default: return "Server error";
  }
}
