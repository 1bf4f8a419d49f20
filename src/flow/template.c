/* template.c: "$path" values and durations.
 *
 * A template is any JSON value in a definition (call arguments, emitted
 * data, a wait's `where`, a condition's operand): strings of the form
 * "$path" are replaced, when a step runs, by the value at that path of
 * the run's context (or $context.id, $context.version, $run.id,
 * $run.workflow); "$$..." stands for a literal string starting with "$".
 * The loader checks every path's syntax up front (flow_template_check) so
 * a typo fails at startup, not halfway through a run.
 */
#include <stdio.h>
#include <string.h>

#include "ctx/ctx.h"
#include "flow/flow_internal.h"

/* ---- paths ------------------------------------------------------------ */

typedef enum special {
  SPECIAL_NONE,
  SPECIAL_CONTEXT_ID,
  SPECIAL_CONTEXT_VERSION,
  SPECIAL_RUN_ID,
  SPECIAL_RUN_WORKFLOW,
} special;

static special special_of(const char *path) {
  if (!strcmp(path, "context.id")) return SPECIAL_CONTEXT_ID;
  if (!strcmp(path, "context.version")) return SPECIAL_CONTEXT_VERSION;
  if (!strcmp(path, "run.id")) return SPECIAL_RUN_ID;
  if (!strcmp(path, "run.workflow")) return SPECIAL_RUN_WORKFLOW;
  return SPECIAL_NONE;
}

int flow_path_check(const char *path, sb_error *err) {
  if (special_of(path) != SPECIAL_NONE) return 0;
  if (!strncmp(path, "context", 7) && (path[7] == '.' || !path[7]))
    return sb_error_set(err, SB_EINVAL,
                        "invalid path \"%.64s\": the context offers "
                        "context.id and context.version (its data is read "
                        "as conversation..., workflow..., user..., "
                        "business...)",
                        path);
  if (!strncmp(path, "run", 3) && (path[3] == '.' || !path[3]))
    return sb_error_set(err, SB_EINVAL,
                        "invalid path \"%.64s\": a run offers run.id and "
                        "run.workflow",
                        path);
  return sb_ctx_path_validate(path, err);
}

static json_t *resolve(const char *path, const sb_flow_scope *scope,
                       int share, int *nomem) {
  if (!scope) return NULL;
  json_t *v = NULL;
  switch (special_of(path)) {
  case SPECIAL_CONTEXT_ID:
    v = json_deep_copy(json_object_get(scope->context, "id"));
    if (!v && json_object_get(scope->context, "id")) *nomem = 1;
    return v;
  case SPECIAL_CONTEXT_VERSION:
    v = json_deep_copy(json_object_get(scope->context, "version"));
    if (!v && json_object_get(scope->context, "version")) *nomem = 1;
    return v;
  case SPECIAL_RUN_ID:
  case SPECIAL_RUN_WORKFLOW: {
    const char *s =
        special_of(path) == SPECIAL_RUN_ID ? scope->run_id : scope->workflow;
    if (!s) return NULL;
    if (!(v = json_string(s))) *nomem = 1;
    return v;
  }
  case SPECIAL_NONE: break;
  }
  const json_t *data = json_object_get(scope->context, "data");
  int rc = share ? sb_ctx_path_get_shared(data, path, &v, NULL)
                 : sb_ctx_path_get(data, path, &v, NULL);
  if (rc == SB_ENOMEM) *nomem = 1;
  return rc == 0 ? v : NULL;
}

json_t *flow_resolve(const char *path, const sb_flow_scope *scope, int *nomem) {
  return resolve(path, scope, 0, nomem);
}

/* ---- templates -------------------------------------------------------- */

int flow_template_check(flow_builder *b, const json_t *tmpl, int depth) {
  if (depth > FLOW_MAX_DEPTH)
    return flow_fail(b, SB_EINVAL, "nested deeper than %d levels",
                     FLOW_MAX_DEPTH);
  int rc = 0;
  if (json_is_string(tmpl)) {
    const char *s = json_string_value(tmpl);
    if (s[0] != '$' || s[1] == '$') return 0;
    sb_error one = {0};
    if (strlen(s) != json_string_length(tmpl))
      return flow_fail(b, SB_EINVAL, "contains a NUL character");
    if (flow_path_check(s + 1, &one) != 0)
      return flow_fail(b, one.code, "%s (write $$ for a literal $)", one.msg);
  } else if (json_is_object(tmpl)) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)tmpl, key, v) {
      flow_mark m = flow_push_key(b, key);
      rc = flow_template_check(b, v, depth + 1);
      flow_pop(b, m);
      if (rc != 0) return rc;
    }
  } else if (json_is_array(tmpl)) {
    for (size_t i = 0; i < json_array_size(tmpl); i++) {
      flow_mark m = flow_push_index(b, i);
      rc = flow_template_check(b, json_array_get(tmpl, i), depth + 1);
      flow_pop(b, m);
      if (rc != 0) return rc;
    }
  }
  return 0;
}

/* share: the values of the context and of the template themselves (new
 * references), not copies: for a value only read (a condition's). */
static json_t *expand(const json_t *t, const sb_flow_scope *scope, int depth,
                      int share) {
  if (depth > FLOW_MAX_DEPTH) return json_null();
  if (json_is_string(t)) {
    const char *s = json_string_value(t);
    if (s[0] != '$')
      return share ? json_incref((json_t *)t) : json_deep_copy(t);
    if (s[1] == '$') return json_stringn(s + 1, json_string_length(t) - 1);
    int nomem = 0;
    json_t *v = resolve(s + 1, scope, share, &nomem);
    return v ? v : nomem ? NULL : json_null();
  }
  if (json_is_object(t)) {
    json_t *out = json_object();
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach((json_t *)t, key, key_len, v) {
      if (!out) break;
      json_t *x = expand(v, scope, depth + 1, share);
      if (!x || json_object_setn_new(out, key, key_len, x) != 0) {
        json_decref(out);
        out = NULL;
      }
    }
    return out;
  }
  if (json_is_array(t)) {
    json_t *out = json_array();
    for (size_t i = 0; out && i < json_array_size(t); i++) {
      json_t *x = expand(json_array_get(t, i), scope, depth + 1, share);
      if (!x || json_array_append_new(out, x) != 0) {
        json_decref(out);
        out = NULL;
      }
    }
    return out;
  }
  if (!t) return json_null();
  return share ? json_incref((json_t *)t) : json_deep_copy(t);
}

json_t *sb_flow_template(const json_t *tmpl, const sb_flow_scope *scope) {
  return expand(tmpl, scope, 0, 0);
}

json_t *flow_template_shared(const json_t *tmpl, const sb_flow_scope *scope) {
  return expand(tmpl, scope, 0, 1);
}

json_t *flow_resolve_shared(const char *path, const sb_flow_scope *scope,
                            int *nomem) {
  return resolve(path, scope, 1, nomem);
}

/* ---- durations -------------------------------------------------------- */

#define DURATION_MAX_MS (366ULL * 24 * 3600 * 1000) /* a year and a day */

int sb_flow_duration_parse(const char *s, uint64_t *ms) {
  if (!s) return SB_EINVAL;
  uint64_t v = 0;
  size_t i = 0;
  while (s[i] >= '0' && s[i] <= '9') {
    if (i >= 12) return SB_EINVAL; /* far beyond any sensible duration */
    v = v * 10 + (uint64_t)(s[i] - '0');
    i++;
  }
  if (i == 0) return SB_EINVAL;
  const char *unit = s + i;
  uint64_t scale;
  if (!strcmp(unit, "ms"))
    scale = 1;
  else if (!strcmp(unit, "s"))
    scale = 1000;
  else if (!strcmp(unit, "m"))
    scale = 60 * 1000;
  else if (!strcmp(unit, "h"))
    scale = 3600 * 1000;
  else if (!strcmp(unit, "d"))
    scale = 24 * 3600 * 1000;
  else
    return SB_EINVAL;
  if (v > DURATION_MAX_MS / scale) return SB_EINVAL;
  *ms = v * scale;
  return 0;
}

int flow_duration(flow_builder *b, const json_t *v, int allow_zero,
                  uint64_t *ms) {
  const char *s = json_is_string(v) ? json_string_value(v) : NULL;
  char bare[32] = "";
  if (json_is_number(v))
    snprintf(bare, sizeof bare, "%.20g", json_number_value(v));
  else if (s && *s && strlen(s) < 20 && strspn(s, "0123456789") == strlen(s))
    snprintf(bare, sizeof bare, "%s", s);
  if (*bare)
    return flow_fail(b, SB_EINVAL,
                     "%s is a bare number: add a unit, e.g. \"%ss\" (units "
                     "ms, s, m, h, d)",
                     bare, bare);
  uint64_t out = 0;
  if (!s || strlen(s) != json_string_length(v) ||
      sb_flow_duration_parse(s, &out) != 0)
    return flow_fail(b, SB_EINVAL,
                     "expected a duration like \"20s\" or \"500ms\" (a whole "
                     "number and a unit: ms, s, m, h, d; at most 366d), got "
                     "%s%.32s%s",
                     s ? "\"" : "", s ? s : sb_json_type_name(v),
                     s ? "\"" : "");
  if (out == 0 && !allow_zero)
    return flow_fail(b, SB_EINVAL, "must be longer than 0");
  *ms = out;
  return 0;
}
