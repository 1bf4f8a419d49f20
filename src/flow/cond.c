/* cond.c: the conditions of branch cases — parsed and checked from JSON,
 * evaluated against a run's context.
 *
 * A condition is a comparison { path, OP: operand } with exactly one
 * operator, or a combination { all: [...] }, { any: [...] }, { not: c }.
 * The path is read like a "$path" template value (a missing path is
 * null); the operand may itself hold "$path" values. Evaluation never
 * fails: a comparison that does not apply (gt on strings) is false.
 */
#include <string.h>

#include "ctx/ctx.h"
#include "flow/flow_internal.h"

static const struct {
  const char *name;
  sb_flow_cond_op op;
} comparisons[] = {
    {"equals", SB_FLOW_COND_EQUALS},
    {"not_equals", SB_FLOW_COND_NOT_EQUALS},
    {"in", SB_FLOW_COND_IN},
    {"exists", SB_FLOW_COND_EXISTS},
    {"gt", SB_FLOW_COND_GT},
    {"gte", SB_FLOW_COND_GTE},
    {"lt", SB_FLOW_COND_LT},
    {"lte", SB_FLOW_COND_LTE},
    {"contains", SB_FLOW_COND_CONTAINS},
};
#define NCOMPARISONS (sizeof comparisons / sizeof comparisons[0])

static const char *const cond_keys[] = {
    "path", "equals", "not_equals", "in",  "exists", "gt",  "gte",
    "lt",   "lte",    "contains",   "all", "any",    "not", NULL};

void flow_cond_free(sb_flow_cond *c) {
  if (!c) return;
  sb_free(c->path);
  json_decref(c->value);
  for (size_t i = 0; i < c->nitems; i++)
    flow_cond_free(&c->items[i]);
  sb_free(c->items);
  memset(c, 0, sizeof *c);
}

static int oom(flow_builder *b) {
  return sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
}

/* all, any, not: the only key of their mapping. */
static int parse_combination(flow_builder *b, const json_t *v, const char *key,
                             sb_flow_cond *out, int depth) {
  const json_t *arg = json_object_get(v, key);
  flow_mark m = flow_push_key(b, key);
  int rc = 0;
  if (json_object_size(v) != 1) {
    rc = flow_fail(b, SB_EINVAL,
                   "%s combines conditions and takes no other "
                   "keys beside it",
                   key);
  } else if (!strcmp(key, "not")) {
    out->op = SB_FLOW_COND_NOT;
    out->items = sb_calloc(1, sizeof *out->items);
    if (!out->items)
      rc = oom(b);
    else {
      out->nitems = 1;
      rc = flow_cond_parse(b, arg, out->items, depth + 1);
    }
  } else if (!json_is_array(arg) || json_array_size(arg) == 0) {
    rc = flow_fail(b, SB_EINVAL,
                   "expected a non-empty list of conditions, "
                   "got %s",
                   json_is_array(arg) ? "an empty list"
                                      : sb_json_type_name(arg));
  } else {
    out->op = !strcmp(key, "all") ? SB_FLOW_COND_ALL : SB_FLOW_COND_ANY;
    size_t n = json_array_size(arg);
    out->items = sb_calloc(n, sizeof *out->items);
    if (!out->items) rc = oom(b);
    for (size_t i = 0; i < n && rc == 0; i++) {
      flow_mark mi = flow_push_index(b, i);
      out->nitems = i + 1;
      rc =
          flow_cond_parse(b, json_array_get(arg, i), &out->items[i], depth + 1);
      flow_pop(b, mi);
    }
  }
  flow_pop(b, m);
  return rc;
}

/* { path, OP: operand } with exactly one operator. */
static int parse_comparison(flow_builder *b, const json_t *v,
                            sb_flow_cond *out) {
  size_t found = NCOMPARISONS;
  int rc = 0;
  for (size_t i = 0; i < NCOMPARISONS; i++) {
    if (!json_object_get(v, comparisons[i].name)) continue;
    if (found != NCOMPARISONS) {
      flow_mark m = flow_push_key(b, comparisons[i].name);
      rc = flow_fail(b, SB_EINVAL,
                     "a condition takes exactly one operator, "
                     "and this one already has %s",
                     comparisons[found].name);
      flow_pop(b, m);
      return rc;
    }
    found = i;
  }
  const json_t *path = json_object_get(v, "path");
  if (!path) {
    flow_mark m = flow_push_key(b, "path");
    rc = flow_fail(b, SB_EINVAL,
                   "required (the context path to test, e.g. "
                   "conversation.intent), or use all, any or not");
    flow_pop(b, m);
    return rc;
  }
  if (found == NCOMPARISONS)
    return flow_fail(b, SB_EINVAL,
                     "needs an operator: one of equals, "
                     "not_equals, in, exists, gt, gte, lt, lte, contains");
  const char *p;
  sb_error one = {0};
  flow_mark m = flow_push_key(b, "path");
  if ((rc = flow_string(b, path, "a context path", &p)) == 0 &&
      flow_path_check(p, &one) != 0)
    rc = flow_fail(b, one.code, "%s", one.msg);
  flow_pop(b, m);
  if (rc != 0) return rc;
  const char *opname = comparisons[found].name;
  const json_t *arg = json_object_get(v, opname);
  out->op = comparisons[found].op;
  m = flow_push_key(b, opname);
  switch (out->op) {
  case SB_FLOW_COND_IN:
    if (!json_is_array(arg))
      rc = flow_fail(b, SB_EINVAL, "expected a list of values, got %s",
                     sb_json_type_name(arg));
    break;
  case SB_FLOW_COND_EXISTS:
    if (!json_is_boolean(arg))
      rc = flow_fail(b, SB_EINVAL, "expected true or false, got %s",
                     sb_json_type_name(arg));
    break;
  case SB_FLOW_COND_GT:
  case SB_FLOW_COND_GTE:
  case SB_FLOW_COND_LT:
  case SB_FLOW_COND_LTE:
    if (!json_is_number(arg) &&
        !(json_is_string(arg) && json_string_value(arg)[0] == '$' &&
          json_string_value(arg)[1] != '$'))
      rc = flow_fail(b, SB_EINVAL,
                     "expected a number (or a \"$path\" to "
                     "one), got %s",
                     sb_json_type_name(arg));
    break;
  default: break;
  }
  if (rc == 0) rc = flow_template_check(b, arg, 0);
  flow_pop(b, m);
  if (rc != 0) return rc;
  if (!(out->path = sb_strdup(p)) || !(out->value = json_deep_copy(arg)))
    return oom(b);
  return 0;
}

int flow_cond_parse(flow_builder *b, const json_t *v, sb_flow_cond *out,
                    int depth) {
  memset(out, 0, sizeof *out);
  if (depth > FLOW_MAX_DEPTH)
    return flow_fail(b, SB_EINVAL, "conditions nested deeper than %d levels",
                     FLOW_MAX_DEPTH);
  if (!json_is_object(v))
    return flow_fail(b, SB_EINVAL,
                     "expected a condition (a mapping like { "
                     "path: conversation.intent, equals: buy }), got %s",
                     sb_json_type_name(v));
  int rc = flow_known_keys(b, v, cond_keys);
  if (rc != 0) return rc;
  static const char *const combos[] = {"all", "any", "not"};
  for (size_t i = 0; i < 3; i++)
    if (json_object_get(v, combos[i]))
      return parse_combination(b, v, combos[i], out, depth);
  return parse_comparison(b, v, out);
}

/* ---- evaluation --------------------------------------------------------- */

static int num(const json_t *v, double *out) {
  if (!json_is_number(v)) return 0;
  *out = json_number_value(v);
  return 1;
}

static int compare(const sb_flow_cond *c, const json_t *have,
                   const json_t *want) {
  double x, y;
  switch (c->op) {
  case SB_FLOW_COND_EQUALS: return sb_ctx_json_equal(have, want);
  case SB_FLOW_COND_NOT_EQUALS: return !sb_ctx_json_equal(have, want);
  case SB_FLOW_COND_IN:
    for (size_t i = 0; i < json_array_size(want); i++)
      if (sb_ctx_json_equal(have, json_array_get(want, i))) return 1;
    return 0;
  case SB_FLOW_COND_EXISTS: return json_is_null(have) != json_is_true(want);
  case SB_FLOW_COND_GT: return num(have, &x) && num(want, &y) && x > y;
  case SB_FLOW_COND_GTE: return num(have, &x) && num(want, &y) && x >= y;
  case SB_FLOW_COND_LT: return num(have, &x) && num(want, &y) && x < y;
  case SB_FLOW_COND_LTE: return num(have, &x) && num(want, &y) && x <= y;
  case SB_FLOW_COND_CONTAINS:
    if (json_is_string(have) && json_is_string(want))
      return strstr(json_string_value(have), json_string_value(want)) != NULL;
    if (json_is_array(have))
      for (size_t i = 0; i < json_array_size(have); i++)
        if (sb_ctx_json_equal(json_array_get(have, i), want)) return 1;
    return 0;
  default: return 0;
  }
}

int sb_flow_cond_eval(const sb_flow_cond *c, const sb_flow_scope *scope) {
  if (!c) return 0;
  switch (c->op) {
  case SB_FLOW_COND_ALL:
    for (size_t i = 0; i < c->nitems; i++)
      if (!sb_flow_cond_eval(&c->items[i], scope)) return 0;
    return 1;
  case SB_FLOW_COND_ANY:
    for (size_t i = 0; i < c->nitems; i++)
      if (sb_flow_cond_eval(&c->items[i], scope)) return 1;
    return 0;
  case SB_FLOW_COND_NOT:
    return c->nitems == 1 && !sb_flow_cond_eval(&c->items[0], scope);
  default: break;
  }
  /* Read only: no copy of what may be a megabyte of the context, for
   * each condition of a branch, on the loop. */
  int nomem = 0;
  json_t *have = c->path ? flow_resolve_shared(c->path, scope, &nomem) : NULL;
  if (!have) have = json_null();
  json_t *want = flow_template_shared(c->value, scope);
  int holds = want ? compare(c, have, want) : 0;
  json_decref(have);
  json_decref(want);
  return holds;
}
