/* agent_def.c: AgentDefinition — parse and validate from JSON, serialise
 * back, free.
 *
 * Definitions arrive from the config file (YAML converted to JSON) and the
 * admin APIs, so every error names the field path a person typed
 * (`models.fallback[1]: expected a string`). Unknown fields are checked
 * before required ones, so a misspelt key reports the typo rather than the
 * field it was meant to be. The parsed struct mirrors the JSON so the app
 * can read transport settings without touching jansson.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ctx/ctx.h"
#include "registry/registry.h"

/* ---- error path ------------------------------------------------------- */

/* Path of the field being parsed. Fixed size: definitions are shallow, and
 * an over-long user key is cut in the message rather than trusted. */
typedef struct fpath {
  sb_jpath path; /* core.h: cut, not trusted, when over-long */
  sb_error *err;
} fpath;

static size_t push_key(fpath *p, const char *key) {
  return sb_jpath_key(&p->path, key);
}
static size_t push_index(fpath *p, size_t i) {
  return sb_jpath_index(&p->path, i);
}
static void pop(fpath *p, size_t saved) { sb_jpath_pop(&p->path, saved); }

static int bad(fpath *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int bad(fpath *p, const char *fmt, ...) {
  if (!p->err) return SB_EINVAL;
  char why[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return sb_error_set(p->err, SB_EINVAL, "%s: %s", p->path.len ? p->path.buf : "agent",
                      why);
}

static int oom(fpath *p) {
  return sb_error_set(p->err, SB_ENOMEM, "agent definition: out of memory");
}


/* ---- enums ------------------------------------------------------------ */

static const char *const agent_types[] = {"sales",   "service", "parts",
                                          "finance", "general", NULL};
static const char *const output_formats[] = {"text", "json", "structured",
                                             NULL};

const char *sb_agent_type_name(sb_agent_type type) {
  if ((unsigned)type > SB_AGENT_GENERAL) return "?";
  return agent_types[type];
}

int sb_agent_type_parse(const char *name, sb_agent_type *out) {
  for (int i = 0; name && agent_types[i]; i++)
    if (strcmp(agent_types[i], name) == 0) {
      *out = (sb_agent_type)i;
      return 0;
    }
  return -1;
}

const char *sb_agent_output_name(sb_agent_output format) {
  if ((unsigned)format > SB_AGENT_OUTPUT_STRUCTURED) return "?";
  return output_formats[format];
}

/* ---- field readers (p's path names the field being read) -------------- */

/* Bounds on what a definition may hold: far above any real agent's, low
 * enough that a hostile one costs little to refuse (and that repeats can
 * be checked pairwise). */
#define MAX_STRING_BYTES 16384
#define MAX_ITEMS 1024

/* A string value with no NUL inside; 0 and *out borrowed, or an error. */
static int read_str(fpath *p, const json_t *v, int nonempty, const char **out) {
  if (!json_is_string(v)) return bad(p, "expected a string");
  if (json_string_length(v) > MAX_STRING_BYTES)
    return bad(p, "must be at most %d bytes long (got %zu)", MAX_STRING_BYTES,
               json_string_length(v));
  if (strlen(json_string_value(v)) != json_string_length(v))
    return bad(p, "must not contain a NUL character");
  if (nonempty && json_string_length(v) == 0)
    return bad(p, "must not be empty");
  *out = json_string_value(v);
  return 0;
}

static int dup_str(fpath *p, const json_t *v, int nonempty, char **out) {
  const char *s = NULL;
  int rc = read_str(p, v, nonempty, &s);
  if (rc != 0) return rc;
  if (!(*out = sb_strdup(s))) return oom(p);
  return 0;
}

static int read_enum(fpath *p, const json_t *v, const char *const *choices,
                     const char *choice_list, int *out) {
  if (json_is_string(v)) {
    for (int i = 0; choices[i]; i++)
      if (strlen(choices[i]) == json_string_length(v) &&
          !strcmp(choices[i], json_string_value(v))) {
        *out = i;
        return 0;
      }
    return bad(p, "must be one of %s (got \"%.64s\")", choice_list,
               json_string_value(v));
  }
  return bad(p, "must be one of %s (got %s)", choice_list, sb_json_type_name(v));
}

static int read_int(fpath *p, const json_t *v, int64_t lo, int64_t hi,
                    int64_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < lo ||
      json_integer_value(v) > hi) {
    char range[96];
    if (hi == INT64_MAX)
      snprintf(range, sizeof range, "an integer greater than %lld",
               (long long)lo - 1);
    else
      snprintf(range, sizeof range, "an integer between %lld and %lld",
               (long long)lo, (long long)hi);
    if (json_is_integer(v))
      return bad(p, "expected %s (got %lld)", range,
                 (long long)json_integer_value(v));
    return bad(p, "expected %s", range);
  }
  *out = json_integer_value(v);
  return 0;
}

static void strings_free(sb_agent_strings *s) {
  for (size_t i = 0; i < s->len; i++)
    sb_free(s->items[i]);
  sb_free(s->items);
  s->items = NULL;
  s->len = 0;
}

/* An array of strings; `unique` refuses repeats. */
static int read_strings(fpath *p, const json_t *v, int nonempty, int unique,
                        sb_agent_strings *out) {
  if (!json_is_array(v)) return bad(p, "expected an array");
  size_t n = json_array_size(v);
  if (n > MAX_ITEMS)
    return bad(p, "must have at most %d items (got %zu)", MAX_ITEMS, n);
  if (n == 0) return 0;
  out->items = sb_calloc(n, sizeof *out->items);
  if (!out->items) return oom(p);
  for (size_t i = 0; i < n; i++) {
    size_t saved = push_index(p, i);
    int rc = dup_str(p, json_array_get(v, i), nonempty, &out->items[i]);
    if (rc == 0) out->len = i + 1;
    if (rc == 0 && unique)
      for (size_t j = 0; j < i; j++)
        if (!strcmp(out->items[j], out->items[i])) {
          rc = bad(p, "duplicate \"%.64s\" (also at [%zu])", out->items[i], j);
          break;
        }
    pop(p, saved);
    if (rc != 0) return rc;
  }
  return 0;
}

static void pairs_free(sb_agent_pairs *s) {
  for (size_t i = 0; i < s->len; i++) {
    sb_free(s->items[i].name);
    sb_free(s->items[i].value);
  }
  sb_free(s->items);
  s->items = NULL;
  s->len = 0;
}

typedef int (*name_check_fn)(const char *name, size_t len);

/* Headers switchboard sets itself on every request to an agent: HTTP's
 * framing and connection handling (a Content-Length of the config's would
 * make the body read as a second request: smuggling) and the MCP
 * transport's own (Mcp-*, MCP-Protocol-Version, Last-Event-ID). */
static int header_reserved(const char *name) {
  static const char *const reserved[] = {
      "Host",       "Content-Length", "Transfer-Encoding", "Connection",
      "Upgrade",    "TE",             "Trailer",           "Keep-Alive",
      "Proxy-Connection", "Expect",   "Content-Type",      "Accept",
      "Last-Event-ID", NULL};
  for (size_t i = 0; reserved[i]; i++)
    if (strcasecmp(name, reserved[i]) == 0) return 1;
  return strncasecmp(name, "Mcp-", 4) == 0;
}

/* An object of string values whose names pass `name_ok`; `what` words the
 * error for a bad name. */
static int read_pairs(fpath *p, const json_t *v, name_check_fn name_ok,
                      const char *what, int header_values,
                      sb_agent_pairs *out) {
  if (!json_is_object(v)) return bad(p, "expected an object");
  size_t n = json_object_size(v);
  if (n > MAX_ITEMS)
    return bad(p, "must have at most %d members (got %zu)", MAX_ITEMS, n);
  if (n == 0) return 0;
  out->items = sb_calloc(n, sizeof *out->items);
  if (!out->items) return oom(p);
  const char *key;
  size_t key_len;
  json_t *member;
  json_object_keylen_foreach((json_t *)v, key, key_len, member) {
    size_t saved = push_key(p, key);
    int rc = 0;
    const char *value = NULL;
    if (strlen(key) != key_len || !name_ok(key, key_len))
      rc = bad(p, "%s", what);
    else if (header_values && header_reserved(key))
      rc = bad(p, "switchboard sets this header itself (HTTP framing, "
                  "or the MCP transport's own); it cannot be configured");
    else
      rc = read_str(p, member, 0, &value);
    if (rc == 0 && header_values && strpbrk(value, "\r\n"))
      rc = bad(p, "must not contain CR or LF");
    /* RFC 9110 5.5: a field value is visible characters, spaces and tabs
     * (and obs-text); another control character is refused by agents'
     * servers, or worse, read differently by a proxy on the way. */
    for (size_t i = 0; rc == 0 && header_values && value[i]; i++) {
      unsigned char ch = (unsigned char)value[i];
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
        rc = bad(p, "must not contain control characters (byte %zu is "
                    "0x%02x)",
                 i, ch);
    }
    if (rc == 0) {
      sb_agent_pair *pair = &out->items[out->len];
      pair->name = sb_strndup(key, key_len);
      pair->value = sb_strdup(value);
      out->len++; /* counted first so a half-made pair is still freed */
      if (!pair->name || !pair->value) rc = oom(p);
    }
    pop(p, saved);
    if (rc != 0) return rc;
  }
  return 0;
}

static int env_name_ok(const char *s, size_t len) {
  if (len == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

/* RFC 9110 token. */
static int header_name_ok(const char *s, size_t len) {
  if (len == 0) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c)))
      return 0;
  }
  return 1;
}

/* Refuse members of obj not in `known` (a NULL-terminated list). */
static int check_keys(fpath *p, const json_t *obj, const char *const *known,
                      const char *known_list) {
  const char *key;
  size_t key_len;
  json_t *member;
  json_object_keylen_foreach((json_t *)obj, key, key_len, member) {
    int found = 0;
    for (size_t i = 0; known[i] && !found; i++)
      found = strlen(known[i]) == key_len && !memcmp(known[i], key, key_len);
    if (found) continue;
    size_t saved = push_key(p, key);
    int rc = bad(p, "unknown field (known: %s)", known_list);
    pop(p, saved);
    return rc;
  }
  return 0;
}

/* The member `key` of obj with p pointing at it; NULL (and an error in
 * *rc when required) if absent. */
static json_t *member(fpath *p, const json_t *obj, const char *key,
                      int required, int *rc) {
  json_t *v = json_object_get(obj, key);
  *rc = 0;
  if (!v && required) {
    size_t saved = push_key(p, key);
    *rc = bad(p, "missing required field");
    pop(p, saved);
  }
  return v;
}

/* A non-empty string member of obj (required, or absent) into *out. */
static int read_str_member(fpath *p, const json_t *obj, const char *key,
                           int required, char **out) {
  int rc;
  json_t *v = member(p, obj, key, required, &rc);
  if (!v) return rc;
  size_t saved = push_key(p, key);
  rc = dup_str(p, v, 1, out);
  pop(p, saved);
  return rc;
}

/* ---- definition parts ------------------------------------------------- */

static int id_valid(fpath *p, const char *id) {
  size_t len = strlen(id);
  int ok = len >= 1 && len <= 64;
  for (size_t i = 0; ok && i < len; i++)
    ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') ||
         id[i] == '_' || id[i] == '-';
  if (!ok)
    return bad(p,
               "must be 1-64 characters of a-z, 0-9, _ and - (got "
               "\"%.80s\")",
               id);
  /* Tool names are "<id>__<tool>" split at the first "__": an id holding
   * "__" or ending in "_" would split in the wrong place. */
  if (strstr(id, "__") || id[len - 1] == '_')
    return bad(p, "must not contain \"__\" or end with \"_\" (got \"%s\")", id);
  return 0;
}

static int parse_models(fpath *p, const json_t *v, sb_agent_def *d) {
  static const char *const known[] = {"primary", "fallback", NULL};
  if (!json_is_object(v)) return bad(p, "expected an object");
  int rc = check_keys(p, v, known, "primary, fallback");
  if (rc != 0) return rc;
  rc = read_str_member(p, v, "primary", 1, &d->model_primary);
  if (rc != 0) return rc;
  json_t *fallback = member(p, v, "fallback", 0, &rc);
  if (fallback) {
    size_t saved = push_key(p, "fallback");
    rc = read_strings(p, fallback, 1, 0, &d->model_fallback);
    pop(p, saved);
  }
  return rc;
}

static int parse_requirements(fpath *p, const json_t *v, sb_agent_def *d) {
  if (!json_is_array(v)) return bad(p, "expected an array");
  int rc = sb_ctx_paths_validate_as(v, p->path.buf, p->err);
  if (rc == SB_ENOMEM) return oom(p);
  if (rc != 0) return rc;
  rc = read_strings(p, v, 1, 1, &d->context_requirements);
  if (rc != 0) return rc;
  if (!(d->requirements_json = json_deep_copy(v))) return oom(p);
  return 0;
}

/* What is wrong with an agent's URL: NULL if nothing, "" when it is not
 * an http(s) URL at all, else what is wrong with its authority. The
 * authority is checked here because an agent registered with a broken
 * one ("http://[::1", "http://host:99999") was accepted, and then failed
 * to connect for ever with libcurl's word for it. */
static const char *url_problem(const char *url) {
  const char *rest;
  if (!strncasecmp(url, "http://", 7))
    rest = url + 7;
  else if (!strncasecmp(url, "https://", 8))
    rest = url + 8;
  else
    return "";
  size_t host_len = strcspn(rest, "/?#");
  if (host_len == 0 || rest[0] == ':' || rest[0] == '@') return "";
  for (const unsigned char *c = (const unsigned char *)url; *c; c++)
    if (*c <= 0x20 || *c == 0x7f) return "";
  const char *end = rest + host_len, *h = rest;
  for (const char *c = rest; c < end; c++) /* user:password@ */
    if (*c == '@') h = c + 1;
  const char *after;
  if (*h == '[') {
    const char *close = memchr(h, ']', (size_t)(end - h));
    if (!close) return "the IPv6 address has no closing ]";
    after = close + 1;
  } else {
    after = h;
    while (after < end && *after != ':')
      after++;
    if (after == h) return "no host";
  }
  if (after == end) return NULL;
  if (*after != ':') return "text after the host that is not :PORT";
  const char *port = after + 1;
  long n = 0;
  if (port == end || end - port > 5) return "the port is not 1 to 65535";
  for (const char *c = port; c < end; c++) {
    if (*c < '0' || *c > '9') return "the port is not 1 to 65535";
    n = n * 10 + (*c - '0');
  }
  return n >= 1 && n <= 65535 ? NULL : "the port is not 1 to 65535";
}

/* An http(s) URL member of obj into *out; `fragment` allows a #fragment
 * (a resource identifier has none: RFC 8707 2). */
static int read_url_member(fpath *p, const json_t *obj, const char *key,
                           int required, int fragment, char **out) {
  int rc;
  json_t *v = member(p, obj, key, required, &rc);
  if (!v) return rc;
  size_t saved = push_key(p, key);
  const char *s = NULL;
  rc = read_str(p, v, 0, &s);
  const char *why = rc == 0 ? url_problem(s) : NULL;
  if (why)
    rc = bad(p, "expected an http:// or https:// URL%s%s", *why ? ": " : "",
             why);
  else if (rc == 0 && !fragment && strchr(s, '#'))
    rc = bad(p, "must not have a #fragment");
  if (rc == 0 && !(*out = sb_strdup(s))) rc = oom(p);
  pop(p, saved);
  return rc;
}

static const char *const oauth_auth_names[] = {"auto", "client_secret_basic",
                                               "client_secret_post", NULL};

static int parse_oauth(fpath *p, const json_t *v, sb_agent_oauth *o) {
  static const char *const known[] = {
      "clientId", "clientSecret", "scope",           "tokenUrl",
      "issuer",   "resource",     "tokenAuthMethod", NULL};
  if (!json_is_object(v)) return bad(p, "expected an object");
  int rc = check_keys(p, v, known,
                      "clientId, clientSecret, scope, tokenUrl, issuer, "
                      "resource, tokenAuthMethod");
  if (rc == 0) rc = read_str_member(p, v, "clientId", 1, &o->client_id);
  if (rc == 0) rc = read_str_member(p, v, "clientSecret", 1, &o->client_secret);
  if (rc == 0) rc = read_str_member(p, v, "scope", 0, &o->scope);
  if (rc == 0) rc = read_url_member(p, v, "tokenUrl", 0, 0, &o->token_url);
  if (rc == 0) rc = read_url_member(p, v, "issuer", 0, 0, &o->issuer);
  if (rc == 0) rc = read_url_member(p, v, "resource", 0, 0, &o->resource);
  /* A character the form encoding or the Basic scheme cannot carry as
   * typed is more likely a pasting accident than a secret. */
  for (const char *c = o->client_id; rc == 0 && c && *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) {
      size_t saved = push_key(p, "clientId");
      rc = bad(p, "must not contain control characters");
      pop(p, saved);
    }
  json_t *m = rc == 0 ? member(p, v, "tokenAuthMethod", 0, &rc) : NULL;
  if (m) {
    size_t saved = push_key(p, "tokenAuthMethod");
    int which = 0;
    rc = read_enum(p, m, oauth_auth_names + 1,
                   "client_secret_basic, client_secret_post", &which);
    o->auth = (sb_agent_oauth_auth)(which + 1);
    pop(p, saved);
  }
  return rc;
}

static void oauth_free(sb_agent_oauth *o) {
  sb_free(o->client_id);
  sb_free(o->client_secret);
  sb_free(o->scope);
  sb_free(o->token_url);
  sb_free(o->issuer);
  sb_free(o->resource);
}

static int parse_transport(fpath *p, const json_t *v, sb_agent_transport *t) {
  static const char *const stdio_keys[] = {"type", "command", "args",
                                           "env",  "cwd",     NULL};
  static const char *const http_keys[] = {"type", "url", "headers", "oauth",
                                          NULL};
  static const char *const kinds[] = {"stdio", "http", NULL};
  if (!json_is_object(v)) return bad(p, "expected an object");
  int rc;
  json_t *type = member(p, v, "type", 1, &rc);
  if (rc != 0) return rc;
  int kind = 0;
  size_t saved = push_key(p, "type");
  rc = read_enum(p, type, kinds, "stdio, http", &kind);
  pop(p, saved);
  if (rc != 0) return rc;

  if (kind == 0) {
    t->type = SB_AGENT_TRANSPORT_STDIO;
    rc = check_keys(p, v, stdio_keys,
                    "type, command, args, env, cwd for a stdio transport");
    if (rc != 0) return rc;
    rc = read_str_member(p, v, "command", 1, &t->command);
    json_t *args = rc == 0 ? member(p, v, "args", 0, &rc) : NULL;
    if (args) {
      saved = push_key(p, "args");
      rc = read_strings(p, args, 0, 0, &t->args);
      pop(p, saved);
    }
    json_t *env = rc == 0 ? member(p, v, "env", 0, &rc) : NULL;
    if (env) {
      saved = push_key(p, "env");
      rc = read_pairs(p, env, env_name_ok,
                      "invalid variable name (letters, digits and _, not "
                      "starting with a digit)",
                      0, &t->env);
      pop(p, saved);
    }
    if (rc == 0) rc = read_str_member(p, v, "cwd", 0, &t->cwd);
    return rc;
  }

  t->type = SB_AGENT_TRANSPORT_HTTP;
  rc = check_keys(p, v, http_keys,
                  "type, url, headers, oauth for an http transport");
  if (rc != 0) return rc;
  rc = read_url_member(p, v, "url", 1, 1, &t->url);
  json_t *headers = rc == 0 ? member(p, v, "headers", 0, &rc) : NULL;
  if (headers) {
    saved = push_key(p, "headers");
    rc = read_pairs(p, headers, header_name_ok, "invalid header name", 1,
                    &t->headers);
    pop(p, saved);
  }
  json_t *oauth = rc == 0 ? member(p, v, "oauth", 0, &rc) : NULL;
  if (oauth) {
    saved = push_key(p, "oauth");
    rc = parse_oauth(p, oauth, &t->oauth);
    pop(p, saved);
  }
  /* The token switchboard gets goes in Authorization: a configured one
   * would be sent beside it, or in its place. */
  for (size_t i = 0; rc == 0 && oauth && i < t->headers.len; i++)
    if (strcasecmp(t->headers.items[i].name, "Authorization") == 0) {
      saved = push_key(p, "headers");
      size_t inner = push_key(p, t->headers.items[i].name);
      rc = bad(p, "not with transport.oauth, which sends the access token "
                  "it gets in this header");
      pop(p, inner);
      pop(p, saved);
    }
  return rc;
}

static int parse_limits(fpath *p, const json_t *v, sb_agent_limits *l) {
  static const char *const known[] = {"maxConcurrent", "timeoutMs", "retries",
                                      "cacheTtlMs", "startupTimeoutMs", NULL};
  if (!json_is_object(v)) return bad(p, "expected an object");
  int rc = check_keys(
      p, v, known,
      "maxConcurrent, timeoutMs, retries, cacheTtlMs, startupTimeoutMs");
  if (rc != 0) return rc;
  struct {
    const char *key;
    int64_t lo, hi;
  } spec[] = {{"maxConcurrent", 1, 1024},
              {"timeoutMs", 1, 86400000},
              {"retries", 0, 10},
              {"cacheTtlMs", 0, 86400000},
              {"startupTimeoutMs", 1000, 600000}};
  for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
    json_t *f = json_object_get(v, spec[i].key);
    if (!f) continue;
    int64_t n = 0;
    size_t saved = push_key(p, spec[i].key);
    rc = read_int(p, f, spec[i].lo, spec[i].hi, &n);
    pop(p, saved);
    if (rc != 0) return rc;
    if (i == 0) l->max_concurrent = (int)n;
    if (i == 1) l->timeout_ms = n;
    if (i == 2) l->retries = (int)n;
    if (i == 3) l->cache_ttl_ms = n;
    if (i == 4) l->startup_timeout_ms = n;
  }
  return 0;
}

/* ---- public API ------------------------------------------------------- */

static const char *const top_keys[] = {"id",
                                       "name",
                                       "type",
                                       "capabilities",
                                       "models",
                                       "contextRequirements",
                                       "outputFormat",
                                       "maxTokens",
                                       "temperature",
                                       "transport",
                                       "limits",
                                       "idempotentTools",
                                       NULL};
static const char top_key_list[] =
    "id, name, type, capabilities, models, contextRequirements, outputFormat,"
    " maxTokens, temperature, transport, limits, idempotentTools";

/* Parse member `key` of `json` with `stmt`, which sees it as `v` and sets
 * rc while p names the field; an absent optional member is skipped. */
#define FIELD(key, required, stmt)                                             \
  do {                                                                         \
    json_t *v = member(&p, json, key, required, &rc);                          \
    if (rc != 0) goto fail;                                                    \
    if (v) {                                                                   \
      size_t saved_ = push_key(&p, key);                                       \
      stmt;                                                                    \
      pop(&p, saved_);                                                         \
      if (rc != 0) goto fail;                                                  \
    }                                                                          \
  } while (0)

int sb_agent_def_parse(const json_t *json, sb_agent_def **out, sb_error *err) {
  fpath p = {.path = {.len = 0}, .err = err};
  p.path.buf[0] = '\0';
  int rc = SB_ENOMEM;
  *out = NULL;
  if (!json_is_object(json))
    return sb_error_set(err, SB_EINVAL, "agent: expected an object");
  sb_agent_def *d = sb_calloc(1, sizeof *d);
  if (!d) return oom(&p);
  d->refs_ = 1;
  d->limits.max_concurrent = 4;
  d->limits.timeout_ms = 30000;
  d->limits.retries = 2;
  d->limits.startup_timeout_ms = 15000;
  int e = 0;

  rc = check_keys(&p, json, top_keys, top_key_list);
  if (rc != 0) goto fail;
  /* Several required fields missing: the first names the rest, so a
   * definition is not fixed one field per try. */
  static const char *const required[] = {
      "id",           "name",      "type",        "capabilities", "models",
      "outputFormat", "maxTokens", "temperature", "transport",    NULL};
  const char *first = NULL;
  char others[160] = "";
  for (int i = 0; required[i]; i++) {
    if (json_object_get(json, required[i])) continue;
    if (!first) {
      first = required[i];
      continue;
    }
    size_t len = strlen(others);
    snprintf(others + len, sizeof others - len, "%s%s", len ? ", " : "",
             required[i]);
  }
  if (first && others[0]) {
    size_t saved = push_key(&p, first);
    rc = bad(&p, "missing required field (and %s)", others);
    pop(&p, saved);
    goto fail;
  }
  FIELD("id", 1, rc = dup_str(&p, v, 0, &d->id);
        if (rc == 0) rc = id_valid(&p, d->id));
  FIELD("name", 1, rc = dup_str(&p, v, 1, &d->name);
        if (rc == 0 && !sb_text_plain(d->name, strlen(d->name))) rc =
            bad(&p, "must be text without control characters"));
  FIELD("type", 1,
        rc = read_enum(&p, v, agent_types,
                       "sales, service, parts, finance, general", &e);
        d->type = (sb_agent_type)e);
  FIELD("capabilities", 1, rc = read_strings(&p, v, 1, 1, &d->capabilities));
  FIELD("models", 1, rc = parse_models(&p, v, d));
  FIELD("contextRequirements", 0, rc = parse_requirements(&p, v, d));
  if (!d->requirements_json && !(d->requirements_json = json_array())) {
    rc = oom(&p);
    goto fail;
  }
  FIELD("outputFormat", 1,
        rc = read_enum(&p, v, output_formats, "text, json, structured", &e);
        d->output_format = (sb_agent_output)e);
  FIELD("maxTokens", 1, rc = read_int(&p, v, 1, INT64_MAX, &d->max_tokens));
  FIELD("temperature", 1, {
    if (!json_is_number(v) || json_number_value(v) < 0 ||
        json_number_value(v) > 2)
      rc = json_is_number(v)
               ? bad(&p, "expected a number between 0 and 2 (got %g)",
                     json_number_value(v))
               : bad(&p, "expected a number between 0 and 2");
    else
      d->temperature = json_number_value(v);
  });
  FIELD("transport", 1, rc = parse_transport(&p, v, &d->transport));
  FIELD("limits", 0, rc = parse_limits(&p, v, &d->limits));
  FIELD("idempotentTools", 0,
        rc = read_strings(&p, v, 1, 1, &d->idempotent_tools));
  *out = d;
  return 0;
fail:
  d->refs_ = 1;
  sb_agent_def_free(d);
  return rc;
}

#undef FIELD

int sb_agent_def_parse_text(const char *text, size_t len, sb_agent_def **out,
                            sb_error *err) {
  *out = NULL;
  json_error_t jerr;
  json_t *json = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!json)
    return sb_error_set(err, SB_EINVAL, "line %d column %d: %s", jerr.line,
                        jerr.column, jerr.text);
  int rc = sb_agent_def_parse(json, out, err);
  json_decref(json);
  return rc;
}

sb_agent_def *sb_agent_def_ref(sb_agent_def *def) {
  if (def) def->refs_++;
  return def;
}

void sb_agent_def_free(sb_agent_def *d) {
  if (!d || --d->refs_ > 0) return;
  sb_free(d->id);
  sb_free(d->name);
  strings_free(&d->capabilities);
  sb_free(d->model_primary);
  strings_free(&d->model_fallback);
  strings_free(&d->context_requirements);
  json_decref(d->requirements_json);
  sb_free(d->transport.command);
  strings_free(&d->transport.args);
  pairs_free(&d->transport.env);
  sb_free(d->transport.cwd);
  sb_free(d->transport.url);
  pairs_free(&d->transport.headers);
  oauth_free(&d->transport.oauth);
  strings_free(&d->idempotent_tools);
  sb_free(d);
}

static int strings_has(const sb_agent_strings *s, const char *x) {
  if (!x) return 0;
  for (size_t i = 0; i < s->len; i++)
    if (!strcmp(s->items[i], x)) return 1;
  return 0;
}

int sb_agent_def_has_capability(const sb_agent_def *def, const char *cap) {
  return strings_has(&def->capabilities, cap);
}

int sb_agent_def_tool_idempotent(const sb_agent_def *def, const char *tool) {
  return strings_has(&def->idempotent_tools, tool);
}

/* ---- serialisation ---------------------------------------------------- */

static json_t *strings_json(const sb_agent_strings *s) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < s->len; i++)
    if (json_array_append_new(a, json_string(s->items[i])) != 0) {
      json_decref(a);
      return NULL;
    }
  return a;
}

static json_t *pairs_json(const sb_agent_pairs *s) {
  json_t *o = json_object();
  for (size_t i = 0; o && i < s->len; i++)
    if (json_object_set_new(o, s->items[i].name,
                            json_string(s->items[i].value)) != 0) {
      json_decref(o);
      return NULL;
    }
  return o;
}

static json_t *oauth_json(const sb_agent_oauth *o) {
  json_t *j = json_pack("{s:s, s:s}", "clientId", o->client_id, "clientSecret",
                        o->client_secret);
  const char *opt[][2] = {
      {"scope", o->scope},
      {"tokenUrl", o->token_url},
      {"issuer", o->issuer},
      {"resource", o->resource},
      {"tokenAuthMethod",
       o->auth != SB_AGENT_OAUTH_AUTH_AUTO ? oauth_auth_names[o->auth] : NULL}};
  for (size_t i = 0; j && i < sizeof opt / sizeof *opt; i++)
    if (opt[i][1] &&
        json_object_set_new(j, opt[i][0], json_string(opt[i][1]))) {
      json_decref(j);
      return NULL;
    }
  return j;
}

static json_t *transport_json(const sb_agent_transport *t) {
  if (t->type == SB_AGENT_TRANSPORT_HTTP) {
    json_t *o = json_pack("{s:s, s:s, s:o}", "type", "http", "url", t->url,
                          "headers", pairs_json(&t->headers));
    if (o && t->oauth.client_id &&
        json_object_set_new(o, "oauth", oauth_json(&t->oauth)) != 0) {
      json_decref(o);
      return NULL;
    }
    return o;
  }
  json_t *o =
      json_pack("{s:s, s:s, s:o, s:o}", "type", "stdio", "command", t->command,
                "args", strings_json(&t->args), "env", pairs_json(&t->env));
  if (o && t->cwd && json_object_set_new(o, "cwd", json_string(t->cwd)) != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

json_t *sb_agent_def_to_json(const sb_agent_def *d) {
  /* json_pack's "o" steals even on failure and refuses NULL, so a NULL
   * from any helper (ENOMEM) fails the whole pack without leaking. */
  json_t *o = json_pack(
      "{s:s, s:s, s:s, s:o, s:{s:s, s:o}, s:o, s:s, s:I, s:f, s:o, "
      "s:{s:i, s:I, s:i, s:I, s:I}, s:o}",
      "id", d->id, "name", d->name, "type", sb_agent_type_name(d->type),
      "capabilities", strings_json(&d->capabilities), "models", "primary",
      d->model_primary, "fallback", strings_json(&d->model_fallback),
      "contextRequirements", strings_json(&d->context_requirements),
      "outputFormat", sb_agent_output_name(d->output_format), "maxTokens",
      (json_int_t)d->max_tokens, "temperature", d->temperature, "transport",
      transport_json(&d->transport), "limits", "maxConcurrent",
      d->limits.max_concurrent, "timeoutMs", (json_int_t)d->limits.timeout_ms,
      "retries", d->limits.retries, "cacheTtlMs",
      (json_int_t)d->limits.cache_ttl_ms, "startupTimeoutMs",
      (json_int_t)d->limits.startup_timeout_ms, "idempotentTools",
      strings_json(&d->idempotent_tools));
  return o;
}

/* obj's URL member key, if any, with its credentials masked. */
static int redact_url(json_t *obj, const char *key) {
  const char *url = json_string_value(json_object_get(obj, key));
  if (!url) return 0;
  char *shown = sb_url_redacted(url, SB_AGENT_REDACTED);
  int bad = !shown || json_object_set_new(obj, key, json_string(shown));
  sb_free(shown);
  return bad ? SB_ENOMEM : 0;
}

int sb_agent_def_json_redact(json_t *def) {
  json_t *t = json_object_get(def, "transport");
  json_t *oauth = json_object_get(t, "oauth");
  if (redact_url(t, "url") || redact_url(oauth, "tokenUrl") ||
      redact_url(oauth, "issuer") || redact_url(oauth, "resource"))
    return SB_ENOMEM;
  if (json_object_get(oauth, "clientSecret") &&
      json_object_set_new(oauth, "clientSecret",
                          json_string(SB_AGENT_REDACTED)))
    return SB_ENOMEM;
  static const char *const secret_maps[] = {"headers", "env"};
  for (size_t k = 0; k < sizeof secret_maps / sizeof *secret_maps; k++) {
    json_t *m = json_object_get(t, secret_maps[k]);
    const char *name;
    json_t *v;
    json_object_foreach(m, name, v) {
      if (json_object_set_new(m, name, json_string(SB_AGENT_REDACTED)))
        return SB_ENOMEM;
    }
  }
  return 0;
}
