/* llm: an OpenAI-compatible chat-completions client with the model
 * fallback chain of an AgentDefinition (models.primary, then each of
 * models.fallback in order).
 *
 * One request names the chain; each model is tried in turn with POST
 * {base_url}/chat/completions (base_url like https://api.openai.com/v1)
 * until one answers well: a 2xx whose body is JSON with a string
 * choices[0].message.content, and, for json and structured output, whose
 * content parses as JSON (and matches the schema for structured). Any
 * other end of an attempt (no connection, an HTTP error status, the
 * per-attempt timeout, a malformed completion, output that is not JSON or
 * not of the schema's shape) is recorded as that model's failure and the
 * next model is tried. When none answers, the result names each model
 * tried and why.
 *
 * Asynchronous on the libuv loop (net/'s sb_fetch: libcurl multi on the
 * loop); the completion callback runs on the loop. The API key goes only
 * into the Authorization header; it is never logged.
 */
#ifndef SB_LLM_H
#define SB_LLM_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "core/core.h"

/* The key of an agent's sampling/createMessage `_meta` under which it may
 * give the JSON Schema that a structured answer must match. */
#define SB_LLM_META_OUTPUT_SCHEMA "switchboard/outputSchema"

typedef struct sb_llm sb_llm;
typedef struct sb_llm_call sb_llm_call;

typedef struct sb_llm_options {
  uv_loop_t *loop;
  const char *base_url; /* http(s)://host[:port]/v1; copied */
  const char *api_key;  /* NULL or "": no Authorization header; copied */
  int64_t timeout_ms;   /* each attempt; 0 = 30000 */
  size_t max_response_bytes; /* one completion's body; 0 = 4 MiB */
} sb_llm_options;

/* NULL with err on bad options (no loop, not an http(s) URL) or ENOMEM. */
sb_llm *sb_llm_new(const sb_llm_options *o, sb_error *err);
/* Cancel every call (their callbacks run with SB_LLM_CANCELLED), free. */
void sb_llm_free(sb_llm *llm);

typedef enum sb_llm_format {
  SB_LLM_TEXT = 0,   /* the content as is */
  SB_LLM_JSON,       /* the content must parse as JSON */
  SB_LLM_STRUCTURED, /* ...and match the request's schema */
} sb_llm_format;

typedef struct sb_llm_request {
  const char *const *models; /* the chain: primary first; n_models >= 1 */
  size_t n_models;
  /* OpenAI chat messages, [{role, content}...] (borrowed, sent as is). */
  json_t *messages;
  const char *system_prompt; /* sent first as a system message; may be NULL */
  int64_t max_tokens;        /* 0 = not sent */
  int has_temperature;
  double temperature;
  sb_llm_format format;
  /* SB_LLM_STRUCTURED: the JSON Schema (borrowed; see
   * sb_llm_schema_check for the subset honoured). */
  json_t *schema;
} sb_llm_request;

typedef enum sb_llm_outcome {
  SB_LLM_ANSWERED = 0, /* a model answered: text, value, model */
  SB_LLM_ALL_FAILED,   /* every model of the chain failed: attempts */
  SB_LLM_CANCELLED,    /* sb_llm_cancel or sb_llm_free */
} sb_llm_outcome;

/* Why one model's attempt failed. */
typedef enum sb_llm_failure {
  SB_LLM_CONNECT_ERROR = 1, /* no connection to the endpoint */
  SB_LLM_HTTP_STATUS,       /* a non-2xx status (http_status) */
  SB_LLM_TIMED_OUT,         /* no whole answer within timeout_ms */
  SB_LLM_TRANSPORT,         /* the transfer broke, or was too large */
  SB_LLM_MALFORMED,         /* not JSON, or no choices[0].message.content */
  SB_LLM_NOT_JSON,          /* json/structured: the content is not JSON */
  SB_LLM_SCHEMA_MISMATCH,   /* structured: it does not match the schema */
} sb_llm_failure;

typedef struct sb_llm_attempt {
  const char *model;
  sb_llm_failure failure;
  long http_status;   /* SB_LLM_HTTP_STATUS */
  const char *detail; /* for people: "HTTP 500 (upstream error)" */
} sb_llm_attempt;

/* Borrowed for the callback's duration only. */
typedef struct sb_llm_result {
  sb_llm_outcome outcome;
  const char *text;          /* ANSWERED: the content */
  json_t *value;             /* ANSWERED, json/structured: parsed */
  const char *model;         /* ANSWERED: the model that answered */
  const char *finish_reason; /* ANSWERED: choices[0].finish_reason or NULL */
  const sb_llm_attempt *attempts; /* the models that failed, in order */
  size_t n_attempts;
  /* Not ANSWERED: for people, naming each model tried and why, e.g.
   * "all 2 models failed: gpt-a: HTTP 500 (upstream error); gpt-b: timed
   * out after 2000 ms". */
  const char *message;
} sb_llm_result;

typedef void (*sb_llm_done_cb)(void *ud, const sb_llm_result *r);

/* Start a completion. 0: started, cb runs exactly once, later, on the
 * loop; *out (may be NULL) is the call, valid until then. A negative code
 * with err (no model, no messages, a structured request without a
 * schema, ENOMEM): cb never runs. */
int sb_llm_complete(sb_llm *llm, const sb_llm_request *req, sb_llm_done_cb cb,
                    void *ud, sb_llm_call **out, sb_error *err);
/* Stop: the callback runs now with SB_LLM_CANCELLED. */
void sb_llm_cancel(sb_llm_call *c);

/* "connect error", "HTTP status", ... Static strings. */
const char *sb_llm_failure_name(sb_llm_failure f);

/* Check `value` against a JSON Schema (both borrowed), for the subset
 * that matters to structured output and to MCP elicitation: type (a name
 * or a list of them; "integer" is a number without a fraction),
 * properties, required, additionalProperties (false, or a schema), items,
 * enum, const, anyOf, oneOf (exactly one), minItems/maxItems,
 * minLength/maxLength (in characters), minimum/maximum,
 * exclusiveMinimum/exclusiveMaximum (numbers), multipleOf, pattern (a
 * regular expression the string must contain a match of, run by PCRE2:
 * ECMA-262's syntax for classes, quantifiers, anchors and groups; a match
 * that backtracks past a limit refuses the value), and format date,
 * date-time (RFC 3339), email and uri. Other keywords and formats are
 * ignored. 0, or SB_EINVAL with err naming the JSON path at fault:
 * "$.entities.make: expected a string, got 42". */
int sb_llm_schema_check(const json_t *schema, const json_t *value,
                        sb_error *err);

/* 1 if sb_llm_schema_check checks values against this format. */
int sb_llm_schema_format_checked(const char *format);
/* 1 if pattern is a regular expression `pattern` can use; else 0 with
 * why (n bytes) saying what is wrong. */
int sb_llm_schema_pattern_valid(const char *pattern, char *why, size_t n);

#endif
