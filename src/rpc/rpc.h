/* rpc: JSON-RPC 2.0 as MCP uses it.
 *
 * Parsing is two steps: sb_rpc_parse turns bytes into a JSON tree under the
 * configured size and nesting limits (duplicate keys rejected), then
 * sb_rpc_classify checks one message object and says what it is. Batches
 * (a top-level array) are only legal in protocol revision 2025-03-26; the
 * caller decides, sb_rpc_parse just reports that it got an array.
 *
 * Errors carry the standard codes and a message naming what was wrong,
 * e.g. "params.name: expected a string".
 */
#ifndef SB_RPC_H
#define SB_RPC_H

#include <jansson.h>
#include <stddef.h>

#include "core/core.h"

/* Standard JSON-RPC codes and the ones MCP defines. */
enum {
  SB_RPC_PARSE_ERROR = -32700,
  SB_RPC_INVALID_REQUEST = -32600,
  SB_RPC_METHOD_NOT_FOUND = -32601,
  SB_RPC_INVALID_PARAMS = -32602,
  SB_RPC_INTERNAL_ERROR = -32603,
  /* MCP 2025-11-25 and earlier: resource not found. */
  SB_RPC_RESOURCE_NOT_FOUND_LEGACY = -32002,
  /* MCP 2026-07-28. */
  SB_RPC_HEADER_MISMATCH = -32020,
  SB_RPC_MISSING_CLIENT_CAPABILITY = -32021,
  SB_RPC_UNSUPPORTED_PROTOCOL_VERSION = -32022,
  /* switchboard's own, outside JSON-RPC's reserved -32768..-32000 (MCP
   * 2026-07-28 reserves -32020..-32099 for its own codes and retires
   * -32000..-32019): */
  /* a queue is full (the context store); retry later. */
  SB_RPC_SERVER_BUSY = -31050,
  /* the caller's tenant passed a quota (data.limit names it,
   * data.retryAfterMs says when a token is back); over HTTP a 429. */
  SB_RPC_QUOTA_EXCEEDED = -31051,
  /* the caller's key or token lacks the scope an operation
   * needs; data.scope names it. */
  SB_RPC_FORBIDDEN = -31003,
};

#define SB_RPC_DEFAULT_MAX_BYTES (4u * 1024u * 1024u)
#define SB_RPC_DEFAULT_MAX_DEPTH 64

typedef struct sb_rpc_limits {
  size_t max_bytes; /* 0 means SB_RPC_DEFAULT_MAX_BYTES */
  int max_depth;    /* 0 means SB_RPC_DEFAULT_MAX_DEPTH */
} sb_rpc_limits;

typedef enum sb_rpc_kind {
  SB_RPC_REQUEST = 1,
  SB_RPC_NOTIFICATION,
  SB_RPC_RESPONSE, /* a result or an error answering one of our requests */
} sb_rpc_kind;

/* One classified message. Every pointer is borrowed from `root`. */
typedef struct sb_rpc_msg {
  sb_rpc_kind kind;
  json_t *root;       /* the message object */
  json_t *id;         /* request/response id (string or integer), or NULL */
  const char *method; /* request/notification method, or NULL */
  json_t *params;     /* object, or NULL when absent */
  json_t *result;     /* response result, or NULL */
  json_t *error;      /* response error object, or NULL */
} sb_rpc_msg;

/* Parse `len` bytes into a JSON value (object for a message, array for a
 * batch). On failure returns a JSON-RPC code (SB_RPC_PARSE_ERROR, or
 * SB_RPC_INVALID_REQUEST for oversize/too deep) and fills err; *out is a new
 * reference on success. */
int sb_rpc_parse(const char *data, size_t len, const sb_rpc_limits *limits,
                 json_t **out, sb_error *err);

/* The same bounded parser for a JSON document that is not a JSON-RPC
 * message (a REST body): the same size and depth limits and duplicate
 * keys refused; the text must be an object or an array. Returns 0,
 * SB_RPC_PARSE_ERROR, or SB_RPC_INVALID_REQUEST over a limit, with err
 * filled; *out is a new reference on success. */
int sb_rpc_parse_document(const char *data, size_t len,
                          const sb_rpc_limits *limits, json_t **out,
                          sb_error *err);

/* Check one message object. Returns 0, or SB_RPC_INVALID_REQUEST with err
 * filled. Even on failure, out->id is set when the id could be read, so the
 * error response can carry it. */
int sb_rpc_classify(json_t *msg, sb_rpc_msg *out, sb_error *err);

/* True for a valid MCP id: a string or an integer (never null or float). */
int sb_rpc_id_valid(const json_t *id);

/* Builders. Each returns a new reference (NULL on ENOMEM). `id` is borrowed
 * (NULL leaves "id" out of an error: MCP makes it optional, never null); `result`, `params` and `data` are
 * stolen (may be NULL). */
json_t *sb_rpc_result_new(json_t *id, json_t *result);
json_t *sb_rpc_error_new(json_t *id, int code, const char *message,
                         json_t *data);
json_t *sb_rpc_notification_new(const char *method, json_t *params);
json_t *sb_rpc_request_new(json_t *id, const char *method, json_t *params);

/* Serialise compactly into a new string (caller frees with sb_free). */
char *sb_rpc_dump(const json_t *msg, size_t *len);

/* Name of a standard code, e.g. "Invalid params"; "Server error" otherwise. */
const char *sb_rpc_code_name(int code);

#endif
