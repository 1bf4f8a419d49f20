/* llm.c: the chat-completions client and its model chain (llm.h).
 *
 * A call holds the request body without its model, and walks the chain:
 * for each model it sets "model", POSTs the body through net/'s sb_fetch
 * (with the per-attempt timeout) and judges the answer. A failed attempt
 * is recorded (its kind and a detail for people) and the next model is
 * tried from the fetch's callback; the first good answer, or the end of
 * the chain, ends the call with one callback. Checks of the content
 * (JSON, the schema) are attempts' failures like the transport's: a model
 * that answers in the wrong shape is as useless as one that is down.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "llm/llm.h"
#include "net/net.h"

#define MODULE "llm"

enum {
  DEFAULT_TIMEOUT_MS = 30000,
  DEFAULT_MAX_RESPONSE = 4 * 1024 * 1024,
  ERROR_SHOWN = 160, /* characters of an error body kept in a detail */
};

struct sb_llm {
  sb_fetcher *fetcher;
  char *url;         /* base_url + "/chat/completions" */
  char *auth_header; /* "Authorization: Bearer ...", or NULL */
  long timeout_ms;
  size_t max_bytes;
  sb_list calls; /* in progress, newest first */
};

typedef struct attempt_rec {
  sb_llm_failure failure;
  long http_status;
  char *detail;
} attempt_rec;

struct sb_llm_call {
  sb_llm *llm;
  char **models;
  size_t n_models;
  json_t *body;      /* the request, "model" set per attempt */
  sb_llm_format format;
  json_t *schema;
  sb_fetch *fetch;   /* the attempt under way */
  attempt_rec *failed; /* one per model tried and failed */
  size_t n_failed;
  int cancelled;
  sb_llm_done_cb cb;
  void *ud;
  sb_list_link link; /* in llm->calls */
};

const char *sb_llm_failure_name(sb_llm_failure f) {
  switch (f) {
  case SB_LLM_CONNECT_ERROR: return "connect error";
  case SB_LLM_HTTP_STATUS: return "HTTP status";
  case SB_LLM_TIMED_OUT: return "timed out";
  case SB_LLM_TRANSPORT: return "transport error";
  case SB_LLM_MALFORMED: return "malformed completion";
  case SB_LLM_NOT_JSON: return "not JSON";
  case SB_LLM_SCHEMA_MISMATCH: return "schema mismatch";
  }
  return "failure";
}

/* ---- the client ---------------------------------------------------------- */

sb_llm *sb_llm_new(const sb_llm_options *o, sb_error *err) {
  if (!o || !o->loop || !o->base_url) {
    sb_error_set(err, SB_EINVAL, "llm: a loop and a base URL are required");
    return NULL;
  }
  if ((strncasecmp(o->base_url, "http://", 7) != 0 &&
       strncasecmp(o->base_url, "https://", 8) != 0) ||
      strpbrk(o->base_url, " \t\r\n")) {
    sb_error_set(err, SB_EINVAL,
                 "llm: the base URL must be http:// or https://, got \"%s\"",
                 o->base_url);
    return NULL;
  }
  if (o->api_key && strpbrk(o->api_key, "\r\n")) {
    sb_error_set(err, SB_EINVAL, "llm: the API key holds a line break");
    return NULL;
  }
  sb_llm *llm = sb_calloc(1, sizeof *llm);
  if (!llm) goto nomem;
  size_t n = strlen(o->base_url);
  while (n > 0 && o->base_url[n - 1] == '/')
    n--;
  llm->url = sb_asprintf("%.*s/chat/completions", (int)n, o->base_url);
  if (!llm->url) goto nomem;
  if (o->api_key && *o->api_key &&
      !(llm->auth_header = sb_asprintf("Authorization: Bearer %s", o->api_key)))
    goto nomem;
  llm->timeout_ms = o->timeout_ms > 0 ? (long)o->timeout_ms : DEFAULT_TIMEOUT_MS;
  llm->max_bytes =
      o->max_response_bytes ? o->max_response_bytes : DEFAULT_MAX_RESPONSE;
  if (!(llm->fetcher = sb_fetcher_new(o->loop, err))) goto fail;
  return llm;
nomem:
  sb_error_set(err, SB_ENOMEM, "out of memory");
fail:
  if (llm) {
    sb_free(llm->url);
    sb_free(llm->auth_header);
    sb_free(llm);
  }
  return NULL;
}

void sb_llm_free(sb_llm *llm) {
  if (!llm) return;
  sb_list_link *n;
  while ((n = sb_list_first(&llm->calls)))
    sb_llm_cancel(sb_list_entry(n, sb_llm_call, link));
  sb_fetcher_free(llm->fetcher);
  if (llm->auth_header) /* the key does not outlive us in the heap */
    memset(llm->auth_header, 0, strlen(llm->auth_header));
  sb_free(llm->auth_header);
  sb_free(llm->url);
  sb_free(llm);
}

/* ---- one call ------------------------------------------------------------ */

static void call_free(sb_llm_call *c) {
  for (size_t i = 0; i < c->n_models; i++)
    sb_free(c->models[i]);
  sb_free(c->models);
  for (size_t i = 0; i < c->n_failed; i++)
    sb_free(c->failed[i].detail);
  sb_free(c->failed);
  json_decref(c->body);
  json_decref(c->schema);
  sb_free(c);
}

static void unlink_call(sb_llm_call *c) {
  sb_list_unlink(&c->llm->calls, &c->link);
}

/* End the call: one callback, then free. `r` lacks the attempts, which
 * are filled in here. */
static void finish(sb_llm_call *c, sb_llm_result *r) {
  unlink_call(c);
  sb_llm_attempt *attempts =
      c->n_failed ? sb_calloc(c->n_failed, sizeof *attempts) : NULL;
  if (attempts) {
    for (size_t i = 0; i < c->n_failed; i++)
      attempts[i] = (sb_llm_attempt){.model = c->models[i],
                                     .failure = c->failed[i].failure,
                                     .http_status = c->failed[i].http_status,
                                     .detail = c->failed[i].detail
                                                   ? c->failed[i].detail
                                                   : "out of memory"};
    r->attempts = attempts;
    r->n_attempts = c->n_failed;
  }
  sb_buf msg = SB_BUF_INIT;
  if (r->outcome == SB_LLM_ALL_FAILED) {
    if (c->n_failed == 1)
      sb_buf_printf(&msg, "the only model failed: ");
    else
      sb_buf_printf(&msg, "all %zu models failed: ", c->n_failed);
    for (size_t i = 0; i < c->n_failed; i++)
      sb_buf_printf(&msg, "%s%s: %s", i ? "; " : "", c->models[i],
                    c->failed[i].detail ? c->failed[i].detail
                                        : "out of memory");
    r->message = msg.data ? msg.data : "every model failed";
  } else if (r->outcome == SB_LLM_CANCELLED) {
    r->message = "cancelled";
  }
  c->cb(c->ud, r);
  sb_buf_free(&msg);
  sb_free(attempts);
  call_free(c);
}

static void record(sb_llm_call *c, sb_llm_failure kind, long status,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void record(sb_llm_call *c, sb_llm_failure kind, long status,
                   const char *fmt, ...) {
  char detail[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  /* c->failed has room for every model: allocated with the call. */
  attempt_rec *a = &c->failed[c->n_failed++];
  a->failure = kind;
  a->http_status = status;
  a->detail = sb_strdup(detail);
  SB_INFO(MODULE, "model %s failed: %s", c->models[c->n_failed - 1], detail);
}

/* A short, printable excerpt of an error body: the OpenAI error's message
 * when it is one, else the body's first characters. */
static void error_excerpt(const char *body, size_t len, char *out, size_t n) {
  out[0] = '\0';
  json_t *doc = json_loadb(body, len, 0, NULL);
  json_t *e = json_object_get(doc, "error");
  const char *m = json_string_value(json_object_get(e, "message"));
  if (!m) m = json_string_value(e);
  if (!m) m = json_string_value(json_object_get(doc, "message"));
  size_t o = 0;
  const char *src = m ? m : body;
  size_t srclen = m ? strlen(m) : len;
  for (size_t i = 0; i < srclen && i < ERROR_SHOWN && o + 4 < n; i++) {
    unsigned char ch = (unsigned char)src[i];
    out[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
  }
  if (srclen > ERROR_SHOWN && o + 4 < n) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
  while (o > 0 && out[o - 1] == ' ')
    out[--o] = '\0';
  json_decref(doc);
}

/* The content without a Markdown code fence around it (```json ... ```),
 * which models often add: a view into s, *len updated. */
static const char *unfenced(const char *s, size_t *len) {
  size_t n = *len;
  while (n && strchr(" \t\r\n", *s))
    s++, n--;
  while (n && strchr(" \t\r\n", s[n - 1]))
    n--;
  if (n < 6 || strncmp(s, "```", 3) != 0 || strncmp(s + n - 3, "```", 3) != 0)
    return s;
  const char *nl = memchr(s, '\n', n - 3);
  if (!nl) return s;
  *len = (size_t)(s + n - 3 - (nl + 1));
  return nl + 1;
}

static void try_next(sb_llm_call *c);

/* Judge a 2xx body. 1: answered (the call is over), 0: recorded as the
 * model's failure. */
static int judge(sb_llm_call *c, const sb_fetch_result *r) {
  json_error_t jerr;
  json_t *doc = json_loadb(r->body, r->body_len, 0, &jerr);
  if (!doc) {
    record(c, SB_LLM_MALFORMED, r->status,
           "malformed completion: not JSON (%s)", jerr.text);
    return 0;
  }
  json_t *choice = json_array_get(json_object_get(doc, "choices"), 0);
  json_t *content = json_object_get(json_object_get(choice, "message"),
                                    "content");
  if (!json_is_string(content)) {
    record(c, SB_LLM_MALFORMED, r->status,
           "malformed completion: no choices[0].message.content");
    json_decref(doc);
    return 0;
  }
  const char *text = json_string_value(content);
  json_t *value = NULL;
  if (c->format != SB_LLM_TEXT) {
    size_t len = json_string_length(content);
    const char *json = unfenced(text, &len);
    value = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    if (!value) {
      record(c, SB_LLM_NOT_JSON, r->status, "the answer is not JSON (%s)",
             jerr.text);
      json_decref(doc);
      return 0;
    }
    sb_error serr = {0};
    if (c->format == SB_LLM_STRUCTURED &&
        sb_llm_schema_check(c->schema, value, &serr) != 0) {
      record(c, SB_LLM_SCHEMA_MISMATCH, r->status,
             "the answer does not match the output schema: %s", serr.msg);
      json_decref(value);
      json_decref(doc);
      return 0;
    }
  }
  sb_llm_result res = {
      .outcome = SB_LLM_ANSWERED,
      .text = text,
      .value = value,
      .model = c->models[c->n_failed],
      .finish_reason =
          json_string_value(json_object_get(choice, "finish_reason")),
  };
  finish(c, &res);
  json_decref(value);
  json_decref(doc);
  return 1;
}

static void on_fetched(void *ud, const sb_fetch_result *r) {
  sb_llm_call *c = ud;
  c->fetch = NULL;
  if (c->cancelled) return; /* sb_llm_cancel finishes it */
  char excerpt[ERROR_SHOWN + 8];
  switch (r->outcome) {
  case SB_FETCH_RESPONSE:
    if (r->status >= 200 && r->status < 300) {
      if (judge(c, r)) return;
    } else {
      error_excerpt(r->body, r->body_len, excerpt, sizeof excerpt);
      if (excerpt[0])
        record(c, SB_LLM_HTTP_STATUS, r->status, "HTTP %ld (%s)", r->status,
               excerpt);
      else
        record(c, SB_LLM_HTTP_STATUS, r->status, "HTTP %ld", r->status);
    }
    break;
  case SB_FETCH_CONNECT_FAILED:
    record(c, SB_LLM_CONNECT_ERROR, 0, "cannot connect (%s)", r->detail);
    break;
  case SB_FETCH_TIMED_OUT:
    record(c, SB_LLM_TIMED_OUT, 0, "timed out after %ld ms",
           c->llm->timeout_ms);
    break;
  case SB_FETCH_TOO_LARGE:
  case SB_FETCH_FAILED:
  case SB_FETCH_CANCELLED: /* the fetcher went away under us */
    record(c, SB_LLM_TRANSPORT, 0, "%s", r->detail);
    break;
  }
  try_next(c);
}

/* Start the attempt of model c->models[c->n_failed]. 0, or a negative
 * code with err (out of memory, or the fetcher refused). */
static int start_attempt(sb_llm_call *c, sb_error *err) {
  sb_llm *llm = c->llm;
  const char *model = c->models[c->n_failed];
  char *body = NULL;
  if (json_object_set_new(c->body, "model", json_string(model)) == 0)
    body = sb_json_dumps(c->body, JSON_COMPACT);
  if (!body) return sb_error_set(err, SB_ENOMEM, "out of memory");
  const char *headers[] = {"Content-Type: application/json",
                           "Accept: application/json", llm->auth_header, NULL};
  sb_fetch_options fo = {.method = "POST",
                         .url = llm->url,
                         .headers = headers,
                         .body = body,
                         .body_len = strlen(body),
                         .timeout_ms = llm->timeout_ms,
                         .max_response_bytes = llm->max_bytes};
  int rc = sb_fetch_start(llm->fetcher, &fo, on_fetched, c, &c->fetch, err);
  sb_free(body);
  if (rc == 0)
    SB_DEBUG(MODULE, "asking model %s (%zu of %zu)", model, c->n_failed + 1,
             c->n_models);
  return rc;
}

/* After a failed attempt: the next model, or the end of the chain. An
 * attempt that cannot even start counts as that model's failure. */
static void try_next(sb_llm_call *c) {
  while (c->n_failed < c->n_models) {
    sb_error err = {0};
    if (start_attempt(c, &err) == 0) return;
    record(c, SB_LLM_TRANSPORT, 0, "cannot send the request: %s", err.msg);
  }
  sb_llm_result res = {.outcome = SB_LLM_ALL_FAILED};
  finish(c, &res);
}

/* The request body without its model: messages (the system prompt
 * first), max_tokens, temperature. */
static json_t *request_body(const sb_llm_request *req) {
  json_t *body = json_object();
  json_t *messages = json_array();
  if (!body || !messages) goto fail;
  if (req->system_prompt &&
      json_array_append_new(messages,
                            json_pack("{ssss}", "role", "system", "content",
                                      req->system_prompt)) != 0)
    goto fail;
  if (json_array_extend(messages, req->messages) != 0 ||
      json_object_set_new(body, "messages", messages) != 0) {
    messages = NULL;
    goto fail;
  }
  messages = NULL;
  if (req->max_tokens > 0 &&
      json_object_set_new(body, "max_tokens",
                          json_integer(req->max_tokens)) != 0)
    goto fail;
  if (req->has_temperature &&
      json_object_set_new(body, "temperature", json_real(req->temperature)) != 0)
    goto fail;
  return body;
fail:
  json_decref(messages);
  json_decref(body);
  return NULL;
}

int sb_llm_complete(sb_llm *llm, const sb_llm_request *req, sb_llm_done_cb cb,
                    void *ud, sb_llm_call **out, sb_error *err) {
  if (out) *out = NULL;
  if (!llm || !req || !cb || req->n_models == 0 || !req->models)
    return sb_error_set(err, SB_EINVAL, "llm: a request needs a model");
  for (size_t i = 0; i < req->n_models; i++)
    if (!req->models[i] || !*req->models[i])
      return sb_error_set(err, SB_EINVAL, "llm: model %zu has no name", i);
  if (!json_is_array(req->messages) || json_array_size(req->messages) == 0)
    return sb_error_set(err, SB_EINVAL, "llm: a request needs messages");
  if (req->format == SB_LLM_STRUCTURED && !json_is_object(req->schema))
    return sb_error_set(err, SB_EINVAL,
                        "llm: structured output needs a JSON Schema object");
  sb_llm_call *c = sb_calloc(1, sizeof *c);
  if (!c) return sb_error_set(err, SB_ENOMEM, "out of memory");
  c->llm = llm;
  c->cb = cb;
  c->ud = ud;
  c->format = req->format;
  c->schema = json_incref(req->schema);
  c->models = sb_calloc(req->n_models, sizeof *c->models);
  c->failed = sb_calloc(req->n_models, sizeof *c->failed);
  c->body = request_body(req);
  if (!c->models || !c->failed || !c->body) goto nomem;
  for (size_t i = 0; i < req->n_models; i++) {
    if (!(c->models[i] = sb_strdup(req->models[i]))) goto nomem;
    c->n_models = i + 1;
  }
  sb_list_push_front(&llm->calls, &c->link);
  /* The callback never runs from here: a first attempt that cannot start
   * is this function's error. */
  int rc = start_attempt(c, err);
  if (rc != 0) {
    unlink_call(c);
    call_free(c);
    return rc;
  }
  if (out) *out = c;
  return 0;
nomem:
  call_free(c);
  return sb_error_set(err, SB_ENOMEM, "out of memory");
}

void sb_llm_cancel(sb_llm_call *c) {
  if (!c || c->cancelled) return;
  c->cancelled = 1;
  if (c->fetch) sb_fetch_cancel(c->fetch);
  c->fetch = NULL;
  sb_llm_result res = {.outcome = SB_LLM_CANCELLED};
  finish(c, &res);
}
