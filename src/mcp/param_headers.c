/* param_headers.c: tool parameters mirrored into HTTP headers (2026-07-28
 * Streamable HTTP, "Custom Headers from Tool Parameters").
 *
 * A property of a tool's inputSchema marked `"x-mcp-header": "Region"` is
 * sent as `Mcp-Param-Region: <its value>` with every tools/call over HTTP,
 * so that a load balancer can route on it without reading the body. The
 * client side builds those headers (sb_mcp_tool_headers_for), the server
 * side checks that they agree with the body (sb_mcp_tool_headers_verify),
 * and a tool whose declarations break the rules is not served
 * (sb_mcp_tool_headers_check). Values that are not plain header text go as
 * `=?base64?...?=`, as Mcp-Name does (sb_mcp_header_encode / _decode).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/mcp_internal.h"

#define MAX_DEPTH 64
#define PREFIX "Mcp-Param-"
#define SAFE_INTEGER 9007199254740991.0 /* 2^53 - 1 */

/* ---- header values ------------------------------------------------------ */

char *sb_mcp_header_encode(const char *v) {
  size_t n = strlen(v);
  int plain = 1;
  for (size_t i = 0; i < n && plain; i++) {
    unsigned char c = (unsigned char)v[i];
    if ((c < 0x20 && c != '\t') || c > 0x7e) plain = 0;
  }
  if (n && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t'))
    plain = 0;
  /* A plain value that looks encoded is encoded, or it would be decoded. */
  if (n >= 11 && strncmp(v, "=?base64?", 9) == 0 && strcmp(v + n - 2, "?=") == 0)
    plain = 0;
  if (plain) return sb_strdup(v);
  char *b64 = sb_base64_encode(v, n);
  if (!b64) return NULL;
  char *out = sb_asprintf("=?base64?%s?=", b64);
  sb_free(b64);
  return out;
}

static int utf8_valid(const unsigned char *s, size_t n) {
  for (size_t i = 0, k; i < n; i += k)
    if (!(k = sb_utf8_seq(s + i, n - i))) return 0;
  return 1;
}

char *sb_mcp_header_decode(const char *v) {
  size_t n = strlen(v);
  if (n >= 11 && strncmp(v, "=?base64?", 9) == 0 &&
      strcmp(v + n - 2, "?=") == 0) {
    size_t out_len = 0;
    unsigned char *raw = sb_base64_decode(v + 9, n - 11, &out_len);
    if (!raw || memchr(raw, '\0', out_len) || !utf8_valid(raw, out_len)) {
      sb_free(raw);
      return NULL;
    }
    return (char *)raw;
  }
  /* RFC 9110 field text: visible ASCII, space and tab; anything else
   * must come base64-encoded. */
  for (const char *p = v; *p; p++)
    if (((unsigned char)*p < 0x20 && *p != '\t') || (unsigned char)*p > 0x7e)
      return NULL;
  return sb_strdup(v);
}

/* ---- the declarations ----------------------------------------------------- */

/* One x-mcp-header: the header's name part, the declared type, and the
 * chain of `properties` keys from the root to the property. */
typedef struct decl {
  const char *name;
  const char *type;
  const char *path[MAX_DEPTH];
  int depth;
} decl;

typedef int (*decl_fn)(const decl *d, void *ud);

/* RFC 9110 tchar. */
static int token_char(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Subschemas the chain of `properties` must not pass through: an
 * x-mcp-header under one of them makes the tool definition invalid. The
 * object-valued ones hold a schema per key. */
static const char *const unreachable[] = {
    "items", "prefixItems", "contains", "additionalProperties",
    "unevaluatedProperties", "unevaluatedItems", "propertyNames", "oneOf",
    "anyOf", "allOf", "not", "if", "then", "else", NULL};
static const char *const unreachable_maps[] = {
    "patternProperties", "dependentSchemas", "$defs", "definitions", NULL};

typedef struct walk {
  decl d;
  decl_fn fn;
  void *ud;
  sb_error *err; /* NULL: the schema is known valid, only walk it */
  json_t *seen;  /* lowercased names */
  int nesting;   /* schemas entered, through any keyword */
} walk;

static int visit(walk *w, const json_t *s, int reachable);

static int visit_unreachable(walk *w, const json_t *s) {
  for (int i = 0; unreachable[i]; i++) {
    const json_t *sub = json_object_get(s, unreachable[i]);
    size_t k;
    const json_t *x;
    int rc = 0;
    json_array_foreach(sub, k, x) {
      if ((rc = visit(w, x, 0)) != 0) return rc;
    }
    if (json_is_object(sub) && (rc = visit(w, sub, 0)) != 0) return rc;
  }
  for (int i = 0; unreachable_maps[i]; i++) {
    const char *key;
    const json_t *x;
    json_object_foreach((json_t *)json_object_get(s, unreachable_maps[i]), key,
                        x) {
      int rc = visit(w, x, 0);
      if (rc != 0) return rc;
    }
  }
  return 0;
}

static int fail_at(walk *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail_at(walk *w, const char *fmt, ...) {
  if (!w->err) return SB_EINVAL;
  char path[256] = "";
  size_t used = 0;
  for (int i = 0; i < w->d.depth && used < sizeof path; i++)
    used += (size_t)snprintf(path + used, sizeof path - used, "%s%s",
                             i ? "." : "", w->d.path[i]);
  char what[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return sb_error_set(w->err, SB_EINVAL, "x-mcp-header at %s: %s",
                      *path ? path : "the schema's root", what);
}

static int declaration(walk *w, const json_t *s, int reachable) {
  const json_t *v = json_object_get(s, "x-mcp-header");
  if (!v) return 0;
  if (!reachable || w->d.depth == 0)
    return fail_at(w, "allowed only on a property reached from the root "
                      "through `properties` alone");
  const char *name = json_string_value(v);
  if (!name || !*name) return fail_at(w, "expected a non-empty string");
  for (const char *p = name; *p; p++)
    if (!token_char((unsigned char)*p))
      return fail_at(w,
                     "\"%.64s\" is not an HTTP header name token (letters, "
                     "digits and !#$%%&'*+-.^_`|~)",
                     name);
  const char *type = json_string_value(json_object_get(s, "type"));
  if (!type || (strcmp(type, "string") != 0 && strcmp(type, "integer") != 0 &&
                strcmp(type, "boolean") != 0))
    return fail_at(w,
                   "%s: allowed only on a property of type string, integer "
                   "or boolean",
                   type ? type : "no type");
  if (w->seen) {
    char lower[128];
    size_t n = strlen(name);
    if (n >= sizeof lower) return fail_at(w, "\"%.64s...\" is too long", name);
    for (size_t i = 0; i <= n; i++)
      lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32
                                                           : name[i]);
    if (json_object_get(w->seen, lower))
      return fail_at(w, "\"%.64s\" is declared twice (names are "
                        "case-insensitive)",
                     name);
    json_object_set_new(w->seen, lower, json_true());
  }
  w->d.name = name;
  w->d.type = type;
  return w->fn ? w->fn(&w->d, w->ud) : 0;
}

static int visit_schema(walk *w, const json_t *s, int reachable);

/* Nesting is bounded through every keyword, not `properties` alone. */
static int visit(walk *w, const json_t *s, int reachable) {
  if (!json_is_object(s)) return 0;
  if (w->d.depth >= MAX_DEPTH || w->nesting >= MAX_DEPTH)
    return fail_at(w, "nested too deeply");
  w->nesting++;
  int rc = visit_schema(w, s, reachable);
  w->nesting--;
  return rc;
}

static int visit_schema(walk *w, const json_t *s, int reachable) {
  int rc = declaration(w, s, reachable);
  if (rc != 0) return rc;
  const char *key;
  const json_t *x;
  json_object_foreach((json_t *)json_object_get(s, "properties"), key, x) {
    w->d.path[w->d.depth++] = key;
    rc = visit(w, x, reachable);
    w->d.depth--;
    if (rc != 0) return rc;
  }
  return visit_unreachable(w, s);
}

int sb_mcp_tool_headers_check(const json_t *input_schema, sb_error *err) {
  json_t *seen = json_object();
  if (!seen) return sb_error_set(err, SB_ENOMEM, "out of memory");
  walk w = {.err = err, .seen = seen};
  int rc = visit(&w, input_schema, 1);
  json_decref(seen);
  if (rc != 0 && err && !err->code) sb_error_set(err, rc, "invalid");
  return rc;
}

/* Whether a schema declares any x-mcp-header, valid or not. */
static int count_decl(const decl *d, void *ud) {
  (void)d;
  ++*(int *)ud;
  return 0;
}

int sb_mcp_tool_headers_declared(const json_t *input_schema) {
  int n = 0;
  walk w = {.fn = count_decl, .ud = &n};
  visit(&w, input_schema, 1);
  return n > 0;
}

/* ---- values ------------------------------------------------------------- */

static const json_t *value_at(const json_t *args, const decl *d) {
  const json_t *v = args;
  for (int i = 0; i < d->depth && v; i++)
    v = json_is_object(v) ? json_object_get(v, d->path[i]) : NULL;
  return v;
}

/* A primitive's header text before encoding (new string), or NULL when it
 * has none: absent, null, not a primitive, not finite, or an integer
 * beyond what JavaScript holds exactly. */
static char *value_text(const json_t *v) {
  if (json_is_string(v)) return sb_strdup(json_string_value(v));
  if (json_is_boolean(v)) return sb_strdup(json_is_true(v) ? "true" : "false");
  if (json_is_integer(v)) {
    json_int_t i = json_integer_value(v);
    if ((double)i > SAFE_INTEGER || (double)i < -SAFE_INTEGER) return NULL;
    return sb_asprintf("%lld", (long long)i);
  }
  if (json_is_real(v)) {
    double d = json_real_value(v);
    if (!isfinite(d)) return NULL;
    if (d == floor(d)) {
      if (fabs(d) > SAFE_INTEGER) return NULL;
      return sb_asprintf("%.0f", d);
    }
    /* The shortest text that reads back as d, as JavaScript prints it. */
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(buf, sizeof buf, "%.*g", prec, d);
      if (strtod(buf, NULL) == d) break;
    }
    return sb_strdup(buf);
  }
  return NULL;
}

typedef struct build {
  const json_t *args;
  json_t *out;
  int rc;
} build;

static int add_header(const decl *d, void *ud) {
  build *b = ud;
  char *text = value_text(value_at(b->args, d));
  if (!text) return 0; /* no value: no header */
  char *encoded = sb_mcp_header_encode(text);
  char *name = sb_asprintf(PREFIX "%s", d->name);
  if (!encoded || !name ||
      json_object_set_new(b->out, name, json_string(encoded)) != 0)
    b->rc = SB_ENOMEM;
  sb_free(text);
  sb_free(encoded);
  sb_free(name);
  return b->rc;
}

json_t *sb_mcp_tool_headers_for(const json_t *input_schema,
                                const json_t *arguments) {
  build b = {.args = arguments, .out = json_object()};
  walk w = {.fn = add_header, .ud = &b};
  if (!b.out || visit(&w, input_schema, 1) != 0 ||
      json_object_size(b.out) == 0) {
    json_decref(b.out);
    return NULL;
  }
  return b.out;
}

typedef struct verify {
  const json_t *args;
  sb_mcp_header_lookup lookup;
  void *lookup_ud;
  sb_error *err;
} verify;

/* A header's decimal text equal to the body's number, as numbers: the
 * spec's SHOULD, so that 42.0 in the header matches 42 in the body. */
static int same_number(const char *text, const json_t *body) {
  if (!json_is_number(body) || !*text) return 0;
  const char *p = text + (*text == '-');
  if (!*p) return 0;
  for (; *p; p++)
    if (!((*p >= '0' && *p <= '9') || *p == '.')) return 0;
  return strtod(text, NULL) == json_number_value(body);
}

static int check_header(const decl *d, void *ud) {
  verify *v = ud;
  char name[160];
  snprintf(name, sizeof name, PREFIX "%s", d->name);
  const json_t *body = value_at(v->args, d);
  char *want = value_text(body);
  const char *sent = v->lookup(v->lookup_ud, name);
  /* Null or absent: the header is not expected, and one that comes says
   * what the body does not (it may be what an intermediary routed on). */
  if (!want)
    return sent ? sb_error_set(v->err, SB_RPC_HEADER_MISMATCH,
                               "Header mismatch: the %s header is sent but "
                               "the arguments have no value for it",
                               name)
                : 0;
  int rc = 0;
  char *got = sent ? sb_mcp_header_decode(sent) : NULL;
  if (!sent)
    rc = sb_error_set(v->err, SB_RPC_HEADER_MISMATCH,
                      "Header mismatch: the %s header is required (the "
                      "arguments carry %.100s)",
                      name, want);
  else if (!got)
    rc = sb_error_set(v->err, SB_RPC_HEADER_MISMATCH,
                      "Header mismatch: the %s header value is not valid "
                      "(characters other than visible ASCII, space and "
                      "tab, or broken base64)",
                      name);
  else if (strcmp(got, want) != 0 &&
           !(strcmp(d->type, "integer") == 0 && same_number(got, body)))
    rc = sb_error_set(v->err, SB_RPC_HEADER_MISMATCH,
                      "Header mismatch: the %s header value '%.100s' does "
                      "not match the arguments' '%.100s'",
                      name, got, want);
  sb_free(got);
  sb_free(want);
  return rc;
}

int sb_mcp_tool_headers_verify(const json_t *input_schema,
                               const json_t *arguments,
                               sb_mcp_header_lookup lookup, void *ud,
                               sb_error *err) {
  verify v = {.args = arguments, .lookup = lookup, .lookup_ud = ud, .err = err};
  walk w = {.fn = check_header, .ud = &v};
  int rc = visit(&w, input_schema, 1);
  /* SB_EINVAL: declarations that break the rules, whose tool is never
   * served (sb_mcp_tool_headers_check); nothing to hold the call to. */
  return rc == SB_EINVAL ? 0 : rc;
}

int sb_mcp_call_check_tool_headers(sb_mcp_call *call,
                                   const json_t *input_schema) {
  sb_mcp_out *out = call->out;
  if (!out || !out->header || !sb_mcp_tool_headers_declared(input_schema))
    return 0;
  sb_error err = {0};
  if (sb_mcp_tool_headers_verify(input_schema,
                                 json_object_get(call->params, "arguments"),
                                 out->header, out->data, &err) == 0)
    return 0;
  sb_mcp_call_fail(call, SB_RPC_HEADER_MISMATCH, err.msg, NULL);
  return 1;
}
