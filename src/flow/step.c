/* step.c: each kind of step, checked and filled from its JSON.
 *
 * The builder stands at the step's node with its key path empty, so a
 * message reads `lead.yaml:14: step "quote": call.tool: required`. Which
 * keys a step may carry depends on its kind; steps inside a parallel step
 * are calls, asks, emits and waits that end at the join, so they take no
 * `next` or `on_failure`.
 */
#include <string.h>

#include "ctx/ctx.h"
#include "events/events.h"
#include "flow/flow_internal.h"
#include "llm/llm.h"

static const char *const kind_names[] = {"call", "branch", "parallel", "ask",
                                         "emit", "wait",   "end",      NULL};

/* The keys a step of each kind takes (top level; nested steps drop next
 * and on_failure), indexed by kind - 1. */
static const char *const step_keys[][8] = {
    {"id", "call", "save", "timeout", "retry", "on_failure", "next", NULL},
    {"id", "branch", "next", NULL},
    {"id", "parallel", "timeout", "on_failure", "next", NULL},
    {"id", "ask", "save", "on_failure", "next", NULL},
    {"id", "emit", "next", NULL},
    {"id", "wait", "save", "on_failure", "next", NULL},
    {"id", "end", "message", NULL},
};

static const char *const any_step_keys[] = {
    "id",   "call",    "branch", "parallel",   "ask",  "emit",    "wait", "end",
    "save", "timeout", "retry",  "on_failure", "next", "message", NULL};

static int in_list(const char *const *list, const char *key) {
  for (size_t i = 0; list[i]; i++)
    if (strcmp(list[i], key) == 0) return 1;
  return 0;
}

static int check_step_keys(flow_builder *b, const json_t *src,
                           sb_flow_step_kind kind, int nested) {
  const char *const *allowed = step_keys[kind - 1];
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)src, key, v) {
    int ok = in_list(allowed, key) &&
             !(nested && (!strcmp(key, "next") || !strcmp(key, "on_failure")));
    if (ok) continue;
    if (!in_list(any_step_keys, key)) return flow_known_keys(b, src, allowed);
    flow_mark m = flow_push_key(b, key);
    int rc;
    if (nested && (!strcmp(key, "next") || !strcmp(key, "on_failure")))
      rc = flow_fail(b, SB_EINVAL,
                     "not allowed in a step inside a parallel step (its "
                     "steps end where the parallel joins)");
    else
      rc = flow_fail(b, SB_EINVAL, "not used by %s %s step",
                     kind == SB_FLOW_ASK || kind == SB_FLOW_EMIT ||
                             kind == SB_FLOW_END
                         ? "an"
                         : "a",
                     sb_flow_step_kind_name(kind));
    flow_pop(b, m);
    return rc;
  }
  return 0;
}

/* An event type: lowercase letters, digits, _ . -, with at least one dot
 * between two names ("lead.qualified"). */
/* The mapping body of a kind key, with only `known` members. */
static int body(flow_builder *b, const json_t *v, const char *what,
                const char *const *known) {
  if (!json_is_object(v))
    return flow_fail(b, SB_EINVAL, "expected a mapping (%s), got %s", what,
                     sb_json_type_name(v));
  return flow_known_keys(b, v, known);
}

/* An optional member `key` of obj: *v NULL when absent; the builder is
 * pushed to it when present (pop with the returned mark). */
#define MEMBER(obj, key, v, m)                                                 \
  (((v) = json_object_get((obj), (key))) ? ((m) = flow_push_key(b, (key)), 1)  \
                                         : 0)

static int opt_string(flow_builder *b, const json_t *obj, const char *key,
                      const char *what, int required, char **out) {
  const json_t *v;
  flow_mark m;
  const char *s;
  int rc = 0;
  if (!MEMBER(obj, key, v, m)) {
    if (!required) return 0;
    m = flow_push_key(b, key);
    rc = flow_fail(b, SB_EINVAL, "required (%s)", what);
  } else if ((rc = flow_string(b, v, what, &s)) == 0) {
    if (required && !*s)
      rc = flow_fail(b, SB_EINVAL, "must not be empty");
    else
      rc = flow_strdup(b, s, out);
  }
  flow_pop(b, m);
  return rc;
}

static int opt_duration(flow_builder *b, const json_t *obj, const char *key,
                        int allow_zero, uint64_t *ms) {
  const json_t *v;
  flow_mark m;
  if (!MEMBER(obj, key, v, m)) return 0;
  int rc = flow_duration(b, v, allow_zero, ms);
  flow_pop(b, m);
  return rc;
}

static int opt_template(flow_builder *b, const json_t *obj, const char *key,
                        int want_object, json_t **out) {
  const json_t *v;
  flow_mark m;
  int rc = 0;
  if (!MEMBER(obj, key, v, m)) return 0;
  if (want_object && !json_is_object(v))
    rc = flow_fail(b, SB_EINVAL, "expected a mapping, got %s",
                   sb_json_type_name(v));
  else if ((rc = flow_template_check(b, v, 0)) == 0 &&
           !(*out = json_deep_copy(v)))
    rc = sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
  flow_pop(b, m);
  return rc;
}

static const char *const call_keys[] = {"agent", "capability", "tool",
                                        "arguments", NULL};

static int fill_call(flow_builder *b, const json_t *v, sb_flow_step *s) {
  int rc = body(b, v, "agent or capability, tool, arguments", call_keys);
  if (rc != 0) return rc;
  if ((rc = opt_string(b, v, "agent", "an agent id", 0, &s->agent)) != 0 ||
      (rc = opt_string(b, v, "capability", "a capability", 0,
                       &s->capability)) != 0)
    return rc;
  if (s->agent && s->capability) {
    flow_mark m = flow_push_key(b, "agent");
    rc = flow_fail(b, SB_EINVAL,
                   "give agent or capability, not both (a call goes to one "
                   "agent, or is routed by capability)");
    flow_pop(b, m);
    return rc;
  }
  if ((s->agent && !*s->agent) || (s->capability && !*s->capability)) {
    flow_mark m = flow_push_key(b, s->agent ? "agent" : "capability");
    rc = flow_fail(b, SB_EINVAL, "must not be empty");
    flow_pop(b, m);
    return rc;
  }
  if (!s->agent && !s->capability)
    return flow_fail(b, SB_EINVAL,
                     "needs agent (an agent id) or capability (routed to the "
                     "best agent that has it)");
  if ((rc = opt_string(b, v, "tool", "the tool to call", 1, &s->tool)) != 0 ||
      (rc = opt_template(b, v, "arguments", 1, &s->arguments)) != 0)
    return rc;
  if (!s->arguments && !(s->arguments = json_object()))
    return sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
  return 0;
}

static const char *const ask_keys[] = {"message", "schema", "timeout", NULL};

static int schema_check(flow_builder *b, const json_t *schema, int depth);

static int schema_type_ok(const json_t *t) {
  static const char *const names[] = {"object",  "array",   "string", "number",
                                      "integer", "boolean", "null",   NULL};
  const char *s = json_string_value(t);
  for (size_t i = 0; s && names[i]; i++)
    if (strcmp(s, names[i]) == 0) return 1;
  return 0;
}

/* JSON Schema keywords that constrain a value but that answers are not
 * checked with: an answer breaking one would be saved as if it fitted. */
/* clang-format off */
static const char *const unchecked_keywords[] = {
    "$ref", "$dynamicRef", "allOf", "not", "if", "then", "else",
    "patternProperties", "propertyNames", "dependentRequired",
    "dependentSchemas", "dependencies", "uniqueItems", "contains",
    "minContains", "maxContains", "prefixItems", "additionalItems",
    "minProperties", "maxProperties", "unevaluatedItems",
    "unevaluatedProperties", NULL};
/* clang-format on */

/* One keyword of an ask schema: the ones answers are checked with
 * (sb_llm_schema_check's subset) must be well formed, or the check would
 * pass answers it was written to refuse ("type: strin", "required: slot"
 * instead of a list); a keyword that constrains values but is not checked
 * is refused, so that a schema never promises more than is enforced.
 * Annotations (title, description, default, enumNames...) are free. */
static int schema_keyword(flow_builder *b, const char *key, const json_t *v,
                          int depth) {
  size_t i;
  const json_t *x;
  for (i = 0; unchecked_keywords[i]; i++)
    if (strcmp(key, unchecked_keywords[i]) == 0)
      return flow_fail(
          b, SB_EINVAL,
          "answers are not checked against %s, so one breaking it would "
          "be saved; the keywords checked are type, properties, required, "
          "additionalProperties, items, enum, const, anyOf, oneOf, "
          "minLength, maxLength, pattern, format, minimum, maximum, "
          "exclusiveMinimum, exclusiveMaximum, multipleOf, minItems and "
          "maxItems",
          key);
  if (strcmp(key, "type") == 0) {
    if (schema_type_ok(v)) return 0;
    int ok = json_is_array(v) && json_array_size(v) > 0;
    json_array_foreach(v, i, x) ok &= schema_type_ok(x);
    return ok ? 0
              : flow_fail(b, SB_EINVAL,
                          "expected a JSON type (object, array, string, "
                          "number, integer, boolean, null) or a list of them");
  }
  if (strcmp(key, "properties") == 0) {
    if (!json_is_object(v))
      return flow_fail(b, SB_EINVAL, "expected a mapping of schemas, got %s",
                       sb_json_type_name(v));
    const char *k;
    json_object_foreach((json_t *)v, k, x) {
      flow_mark m = flow_push_key(b, k);
      int rc = schema_check(b, x, depth + 1);
      flow_pop(b, m);
      if (rc != 0) return rc;
    }
    return 0;
  }
  if (strcmp(key, "items") == 0 ||
      (strcmp(key, "additionalProperties") == 0 && !json_is_boolean(v)))
    return schema_check(b, v, depth + 1);
  if (strcmp(key, "anyOf") == 0 || strcmp(key, "oneOf") == 0) {
    if (!json_is_array(v) || json_array_size(v) == 0)
      return flow_fail(b, SB_EINVAL, "expected a non-empty list of schemas");
    json_array_foreach(v, i, x) {
      flow_mark m = flow_push_index(b, i);
      int rc = schema_check(b, x, depth + 1);
      flow_pop(b, m);
      if (rc != 0) return rc;
    }
    return 0;
  }
  if (strcmp(key, "required") == 0) {
    int ok = json_is_array(v);
    json_array_foreach(v, i, x) ok &= json_is_string(x);
    return ok ? 0
              : flow_fail(b, SB_EINVAL, "expected a list of property names");
  }
  if (strcmp(key, "enum") == 0)
    return !json_is_array(v) ? flow_fail(b, SB_EINVAL, "expected a list")
           : json_array_size(v) == 0
               ? flow_fail(b, SB_EINVAL, "an empty list: no answer can match")
               : 0;
  if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0 ||
      strcmp(key, "exclusiveMinimum") == 0 ||
      strcmp(key, "exclusiveMaximum") == 0)
    return json_is_number(v)
               ? 0
               : flow_fail(b, SB_EINVAL, "expected a number, got %s",
                           sb_json_type_name(v));
  if (strcmp(key, "multipleOf") == 0)
    return json_is_number(v) && json_number_value(v) > 0
               ? 0
               : flow_fail(b, SB_EINVAL, "expected a number above 0");
  if (strcmp(key, "pattern") == 0) {
    char why[240];
    return sb_llm_schema_pattern_valid(json_string_value(v), why, sizeof why)
               ? 0
               : flow_fail(b, SB_EINVAL, "%s", why);
  }
  if (strcmp(key, "format") == 0)
    return sb_llm_schema_format_checked(json_string_value(v))
               ? 0
               : flow_fail(b, SB_EINVAL,
                           "expected date, date-time, email or uri (the "
                           "formats MCP elicitation names, and that answers "
                           "are checked against)");
  if (strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0 ||
      strcmp(key, "minItems") == 0 || strcmp(key, "maxItems") == 0)
    return json_is_integer(v) && json_integer_value(v) >= 0
               ? 0
               : flow_fail(b, SB_EINVAL, "expected an integer of 0 or more");
  return 0;
}

/* Lower and upper bounds no value can meet both of (minimum 5, maximum
 * 3): every answer would be refused, and the run wait for ever. Each pair
 * is (lower, upper, 1 if a value equal to both is out too). */
static int schema_bounds(flow_builder *b, const json_t *schema) {
  static const struct {
    const char *lo, *hi;
    int strict;
  } pairs[] = {
      {"minimum", "maximum", 0},
      {"exclusiveMinimum", "maximum", 1},
      {"minimum", "exclusiveMaximum", 1},
      {"exclusiveMinimum", "exclusiveMaximum", 1},
      {"minLength", "maxLength", 0},
      {"minItems", "maxItems", 0},
  };
  for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
    const json_t *lo = json_object_get(schema, pairs[i].lo);
    const json_t *hi = json_object_get(schema, pairs[i].hi);
    if (!json_is_number(lo) || !json_is_number(hi)) continue;
    double l = json_number_value(lo), h = json_number_value(hi);
    if (l < h || (l == h && !pairs[i].strict)) continue;
    flow_mark m = flow_push_key(b, pairs[i].hi);
    int rc = flow_fail(b, SB_EINVAL, "%g with %s %g: no answer can fit both",
                       h, pairs[i].lo, l);
    flow_pop(b, m);
    return rc;
  }
  return 0;
}

static int schema_check(flow_builder *b, const json_t *schema, int depth) {
  if (!json_is_object(schema))
    return flow_fail(b, SB_EINVAL, "expected a JSON Schema (a mapping), got %s",
                     sb_json_type_name(schema));
  if (depth > 32)
    return flow_fail(b, SB_EINVAL, "nested deeper than 32 schemas");
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)schema, key, v) {
    flow_mark m = flow_push_key(b, key);
    int rc = schema_keyword(b, key, v, depth);
    flow_pop(b, m);
    if (rc != 0) return rc;
  }
  return schema_bounds(b, schema);
}

static int fill_ask(flow_builder *b, const json_t *v, sb_flow_step *s) {
  int rc = body(b, v, "message, schema, timeout", ask_keys);
  if (rc == 0)
    rc = opt_string(b, v, "message", "the question to ask", 1, &s->message);
  const json_t *schema;
  flow_mark m;
  if (rc == 0 && MEMBER(v, "schema", schema, m)) {
    rc = schema_check(b, schema, 0);
    if (rc == 0 && !(s->schema = json_deep_copy(schema)))
      rc = sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
    flow_pop(b, m);
  }
  if (rc == 0) rc = opt_duration(b, v, "timeout", 0, &s->timeout_ms);
  return rc;
}

static int event_type(flow_builder *b, const json_t *obj, const char *key,
                      char **out) {
  int rc = opt_string(b, obj, key, "an event type", 1, out);
  if (rc != 0 || sb_event_type_valid(*out)) return rc;
  flow_mark m = flow_push_key(b, key);
  rc = flow_fail(b, SB_EINVAL,
                 "\"%.64s\" is not an event type (" SB_EVENT_TYPE_RULE ")",
                 *out);
  flow_pop(b, m);
  return rc;
}

static const char *const emit_keys[] = {"type", "data", NULL};
static const char *const wait_keys[] = {"event", "where", "timeout", NULL};

/* A run may wait for any event, but it publishes only events of its own,
 * as agents and clients do: a run.completed of its making would tell a
 * follower the run ended while it goes on, and an audit.* entry would
 * forge the audit trail. */
static int emit_type(flow_builder *b, const json_t *v, char **out) {
  int rc = event_type(b, v, "type", out);
  if (rc != 0 || sb_event_type_publishable(*out)) return rc;
  flow_mark m = flow_push_key(b, "type");
  rc = flow_fail(b, SB_EINVAL,
                 "\"%.64s\" is reserved (" SB_EVENT_TYPE_RESERVED
                 ": switchboard alone writes them); emit a type of the "
                 "workflow's own, e.g. \"lead.qualified\"",
                 *out);
  flow_pop(b, m);
  return rc;
}

static int fill_emit(flow_builder *b, const json_t *v, sb_flow_step *s) {
  int rc = body(b, v, "type, data", emit_keys);
  if (rc == 0) rc = emit_type(b, v, &s->event_type);
  if (rc == 0) rc = opt_template(b, v, "data", 0, &s->event_data);
  return rc;
}

/* A key of `where` reads the event's data by keys joined by dots: an
 * empty one ("", "a..b", "a.") would never match, and the step would wait
 * until its timeout for an event that came. */
static int where_keys(flow_builder *b, const json_t *where) {
  const char *k;
  json_t *x;
  json_object_foreach((json_t *)where, k, x) {
    size_t n = strlen(k);
    if (n && k[0] != '.' && k[n - 1] != '.' && !strstr(k, "..")) continue;
    flow_mark m = flow_push_key(b, "where");
    int rc = flow_fail(b, SB_EINVAL,
                       "\"%.64s\" is not a key of the event's data (a key, "
                       "or keys joined by dots, none empty)",
                       k);
    flow_pop(b, m);
    return rc;
  }
  return 0;
}

static int fill_wait(flow_builder *b, const json_t *v, sb_flow_step *s) {
  int rc = body(b, v, "event, where, timeout", wait_keys);
  if (rc == 0) rc = event_type(b, v, "event", &s->event_type);
  if (rc == 0) rc = opt_template(b, v, "where", 1, &s->where);
  if (rc == 0 && s->where) rc = where_keys(b, s->where);
  if (rc == 0) rc = opt_duration(b, v, "timeout", 0, &s->timeout_ms);
  return rc;
}

static const char *const case_keys[] = {"if", "goto", "else", NULL};

static int fill_branch(flow_builder *b, const json_t *v, sb_flow_step *s) {
  if (!json_is_array(v) || json_array_size(v) == 0)
    return flow_fail(b, SB_EINVAL,
                     "expected a non-empty list of cases ({ if, goto } and "
                     "an optional last { else }), got %s",
                     json_is_array(v) ? "an empty list" : sb_json_type_name(v));
  size_t n = json_array_size(v);
  s->cases = sb_calloc(n, sizeof *s->cases);
  if (!s->cases)
    return sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const json_t *c = json_array_get(v, i), *x;
    flow_mark m = flow_push_index(b, i), mk;
    if (!json_is_object(c)) {
      rc = flow_fail(b, SB_EINVAL,
                     "expected a case ({ if, goto } or { else "
                     "}), got %s",
                     sb_json_type_name(c));
    } else if ((rc = flow_known_keys(b, c, case_keys)) != 0) {
    } else if (MEMBER(c, "else", x, mk)) {
      if (json_object_size(c) != 1)
        rc = flow_fail(b, SB_EINVAL, "an else case has no if or goto");
      else if (i + 1 != n)
        rc = flow_fail(b, SB_EINVAL, "must be the last case");
      else
        rc = flow_ref(b, x, &s->otherwise);
      flow_pop(b, mk);
    } else if (!json_object_get(c, "if") || !json_object_get(c, "goto")) {
      mk = flow_push_key(b, json_object_get(c, "if") ? "goto" : "if");
      rc = flow_fail(b, SB_EINVAL,
                     "required (a case is { if: condition, "
                     "goto: step } or { else: step })");
      flow_pop(b, mk);
    } else {
      sb_flow_case *k = &s->cases[s->ncases++];
      mk = flow_push_key(b, "if");
      rc = flow_cond_parse(b, json_object_get(c, "if"), &k->cond, 0);
      flow_pop(b, mk);
      if (rc == 0) {
        mk = flow_push_key(b, "goto");
        rc = flow_ref(b, json_object_get(c, "goto"), &k->target);
        flow_pop(b, mk);
      }
    }
    flow_pop(b, m);
  }
  return rc;
}

static int fill_parallel(flow_builder *b, const json_t *v, int index) {
  sb_flow_def *d = b->def;
  sb_flow_step *s = &d->steps[index];
  if (!json_is_array(v) || json_array_size(v) == 0)
    return flow_fail(b, SB_EINVAL,
                     "expected a non-empty list of steps to run "
                     "at once, got %s",
                     json_is_array(v) ? "an empty list" : sb_json_type_name(v));
  size_t n = json_array_size(v);
  s->branches = sb_calloc(n, sizeof *s->branches);
  if (!s->branches)
    return sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
  for (size_t k = 0; k < d->nsteps; k++)
    if (d->steps[k].parent == index) s->branches[s->nbranches++] = (int)k;
  /* The nested steps' messages name them, not the parallel step. */
  const char *outer = b->step;
  char key[FLOW_KEY_MAX];
  size_t key_len = b->key_len;
  memcpy(key, b->key, key_len + 1);
  int rc = 0;
  for (size_t j = 0; j < n && j < s->nbranches && rc == 0; j++) {
    flow_mark m = flow_push_index(b, j);
    b->key_len = 0;
    b->key[0] = '\0';
    rc = flow_step_fill(b, json_array_get(v, j), s->branches[j], SB_FLOW_NONE);
    b->step = outer;
    memcpy(b->key, key, key_len + 1);
    b->key_len = key_len;
    flow_pop(b, m);
  }
  return rc;
}

static const char *const retry_keys[] = {"attempts", "backoff", NULL};

static int fill_retry(flow_builder *b, const json_t *v, sb_flow_step *s) {
  int rc = body(b, v, "attempts, backoff", retry_keys);
  if (rc != 0) return rc;
  const json_t *a;
  flow_mark m;
  if (!MEMBER(v, "attempts", a, m)) {
    m = flow_push_key(b, "attempts");
    rc = flow_fail(b, SB_EINVAL, "required (tries in all, 1..20)");
  } else if (!json_is_integer(a) || json_integer_value(a) < 1 ||
             json_integer_value(a) > 20) {
    rc = flow_fail(b, SB_EINVAL,
                   "expected an integer between 1 and 20 (tries "
                   "in all), got %s",
                   json_is_integer(a) ? "a number out of range"
                                      : sb_json_type_name(a));
  } else {
    s->retry_attempts = (int)json_integer_value(a);
  }
  flow_pop(b, m);
  s->retry_backoff_ms = 1000;
  if (rc == 0) rc = opt_duration(b, v, "backoff", 1, &s->retry_backoff_ms);
  return rc;
}

/* A path the result is saved at: keys in one of the four sections. */
static int save_path_ok(flow_builder *b, const char *path) {
  sb_error one = {0};
  if (sb_ctx_path_validate(path, &one) != 0)
    return flow_fail(b, one.code, "%s", one.msg);
  if (strchr(path, '['))
    return flow_fail(b, SB_EINVAL,
                     "invalid path \"%.64s\": results are saved at a path of "
                     "keys (no indexes or slices)",
                     path);
  /* A path the context can never hold would fail every run at this step;
   * the workflow's bookkeeping is the engine's. */
  if (sb_ctx_data_path_settable(path, &one) != 0)
    return flow_fail(b, one.code, "cannot save at \"%.64s\": %s", path,
                     one.msg);
  static const char *const own[] = {"workflow", "workflow.currentStep",
                                    "workflow.completedSteps",
                                    "workflow.errors"};
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    if (strcmp(path, own[i]) == 0)
      return flow_fail(b, SB_EINVAL,
                       "cannot save at \"%s\": the run keeps it (save at "
                       "workflow.outputs.<key> or workflow.variables.<key>)",
                       path);
  return 0;
}

/* A part of the result: "$result", or "$result." and keys joined by dots;
 * stored without the "$result" (and its dot). */
static int result_part(flow_builder *b, const json_t *v, json_t *map,
                       const char *path) {
  const char *part = json_string_value(v);
  const char *rest = part && strncmp(part, "$result", 7) == 0 ? part + 7 : NULL;
  int ok = rest && (!*rest || (rest[0] == '.' && rest[1]));
  for (const char *c = rest ? rest + (*rest == '.') : NULL; ok && *c; c++)
    ok = *c != '[' && !(c[0] == '.' && (c[1] == '.' || !c[1]));
  if (!ok)
    return flow_fail(b, SB_EINVAL,
                     "expected $result or $result.<key>.<key>... (the part "
                     "of the step's result to save at %.64s)",
                     path);
  if (json_object_set_new(map, path, json_string(*rest ? rest + 1 : "")))
    return sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
  return 0;
}

/* save: a path of keys in one of the four sections, or a mapping of such
 * paths to parts of the result ({conversation.intent: $result.intent}). */
static int fill_save(flow_builder *b, const json_t *v, sb_flow_step *s) {
  if (json_is_object(v)) {
    if (json_object_size(v) == 0)
      return flow_fail(b, SB_EINVAL,
                       "expected a context path, or a mapping of context "
                       "paths to parts of the result; got an empty mapping");
    json_t *map = json_object();
    if (!map)
      return sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
    const char *path;
    json_t *part;
    int rc = 0;
    json_object_foreach((json_t *)v, path, part) {
      flow_mark m = flow_push_key(b, path);
      rc = save_path_ok(b, path);
      if (rc == 0) rc = result_part(b, part, map, path);
      flow_pop(b, m);
      if (rc != 0) break;
    }
    if (rc != 0) {
      json_decref(map);
      return rc;
    }
    sb_free(s->save);
    s->save = NULL;
    json_decref(s->save_map);
    s->save_map = map;
    return 0;
  }
  const char *path;
  int rc =
      flow_string(b, v, "a context path (e.g. workflow.variables.slot)", &path);
  if (rc != 0) return rc;
  if ((rc = save_path_ok(b, path)) != 0) return rc;
  sb_free(s->save);
  s->save = NULL;
  return flow_strdup(b, path, &s->save);
}

/* Which kind key the step has; exactly one. */
static int find_kind(flow_builder *b, const json_t *src,
                     sb_flow_step_kind *kind) {
  int found = -1;
  for (int k = 0; kind_names[k]; k++) {
    if (!json_object_get(src, kind_names[k])) continue;
    if (found >= 0) {
      flow_mark m = flow_push_key(b, kind_names[k]);
      int rc = flow_fail(b, SB_EINVAL,
                         "a step does one thing, and this one already has %s",
                         kind_names[found]);
      flow_pop(b, m);
      return rc;
    }
    found = k;
  }
  if (found < 0)
    return flow_fail(b, SB_EINVAL,
                     "needs one of call, branch, parallel, ask, "
                     "emit, wait, end (what the step does)");
  *kind = (sb_flow_step_kind)(found + 1);
  return 0;
}

int flow_step_fill(flow_builder *b, const json_t *src, int index,
                   int next_default) {
  sb_flow_step *s = &b->def->steps[index];
  int nested = s->parent != SB_FLOW_NONE;
  b->step = s->id;
  int rc = find_kind(b, src, &s->kind);
  if (rc != 0) return rc;
  const char *kname = sb_flow_step_kind_name(s->kind);
  const json_t *v = json_object_get(src, kname), *x;
  flow_mark m = flow_push_key(b, kname), mx;
  if (nested && (s->kind == SB_FLOW_BRANCH || s->kind == SB_FLOW_PARALLEL ||
                 s->kind == SB_FLOW_END)) {
    rc = flow_fail(b, SB_EINVAL,
                   "a step inside a parallel step may only "
                   "call, ask, emit or wait");
    flow_pop(b, m);
    return rc;
  }
  flow_pop(b, m);
  if ((rc = check_step_keys(b, src, s->kind, nested)) != 0) return rc;
  m = flow_push_key(b, kname);
  switch (s->kind) {
  case SB_FLOW_CALL: rc = fill_call(b, v, s); break;
  case SB_FLOW_BRANCH: rc = fill_branch(b, v, s); break;
  case SB_FLOW_PARALLEL: rc = fill_parallel(b, v, index); break;
  case SB_FLOW_ASK: rc = fill_ask(b, v, s); break;
  case SB_FLOW_EMIT: rc = fill_emit(b, v, s); break;
  case SB_FLOW_WAIT: rc = fill_wait(b, v, s); break;
  case SB_FLOW_END: {
    const char *e;
    if ((rc = flow_string(b, v, "completed or failed", &e)) != 0) break;
    if (strcmp(e, "completed") != 0 && strcmp(e, "failed") != 0)
      rc = flow_fail(b, SB_EINVAL,
                     "expected completed or failed, got "
                     "\"%.64s\"",
                     e);
    s->end_failed = strcmp(e, "failed") == 0;
    break;
  }
  }
  flow_pop(b, m);
  if (rc != 0) return rc;
  if (s->kind == SB_FLOW_END &&
      (rc = opt_string(b, src, "message", "a message", 0, &s->end_message)))
    return rc;
  /* results are saved by default for the kinds that have one */
  if (s->kind == SB_FLOW_CALL || s->kind == SB_FLOW_ASK ||
      s->kind == SB_FLOW_WAIT) {
    if (!(s->save = sb_asprintf("workflow.outputs.%s", s->id)))
      return sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
  }
  if (MEMBER(src, "save", x, mx)) {
    rc = fill_save(b, x, s);
    flow_pop(b, mx);
    if (rc != 0) return rc;
  }
  if ((rc = opt_duration(b, src, "timeout", 0, &s->timeout_ms)) != 0) return rc;
  if (MEMBER(src, "retry", x, mx)) {
    rc = fill_retry(b, x, s);
    flow_pop(b, mx);
    if (rc != 0) return rc;
  }
  if (MEMBER(src, "on_failure", x, mx)) {
    rc = flow_ref(b, x, &s->on_failure);
    flow_pop(b, mx);
    if (rc != 0) return rc;
  }
  s->next = nested || s->kind == SB_FLOW_END ? SB_FLOW_NONE : next_default;
  if (MEMBER(src, "next", x, mx)) {
    rc = flow_ref(b, x, &s->next);
    flow_pop(b, mx);
  }
  return rc;
}
