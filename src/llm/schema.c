/* schema.c: the JSON Schema subset a structured answer is checked against
 * (sb_llm_schema_check in llm.h). Nothing else in switchboard validates
 * JSON Schema (tool output schemas are the agents' business), and a model's
 * structured output needs only the shape keywords: type, properties,
 * required, additionalProperties, items, enum, const, anyOf and the simple
 * bounds. Unknown keywords are ignored, as a validator must. The first
 * mismatch is reported, with the JSON path of the value at fault.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "llm/llm.h"

#define MAX_DEPTH 64

static int fail(sb_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(sb_error *err, const char *path, const char *fmt, ...) {
  char why[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return sb_error_set(err, SB_EINVAL, "%s: %s", path, why);
}

static int is_type(const json_t *v, const char *type) {
  if (strcmp(type, "object") == 0) return json_is_object(v);
  if (strcmp(type, "array") == 0) return json_is_array(v);
  if (strcmp(type, "string") == 0) return json_is_string(v);
  if (strcmp(type, "boolean") == 0) return json_is_boolean(v);
  if (strcmp(type, "null") == 0) return json_is_null(v);
  if (strcmp(type, "number") == 0) return json_is_number(v);
  if (strcmp(type, "integer") == 0) {
    if (json_is_integer(v)) return 1;
    double d = json_real_value(v);
    return json_is_real(v) && isfinite(d) && floor(d) == d;
  }
  return 1; /* an unknown type name constrains nothing */
}

static int check_type(const json_t *type, const json_t *v, const char *path,
                      sb_error *err) {
  if (json_is_string(type)) {
    if (is_type(v, json_string_value(type))) return 0;
    return fail(err, path, "expected type %s, got %s", json_string_value(type),
                sb_json_type_name(v));
  }
  if (!json_is_array(type)) return 0;
  size_t i;
  json_t *t;
  json_array_foreach(type, i, t) {
    if (json_is_string(t) && is_type(v, json_string_value(t))) return 0;
  }
  char *names = json_dumps(type, JSON_COMPACT);
  int rc = fail(err, path, "expected one of the types %s, got %s",
                names ? names : "?", sb_json_type_name(v));
  sb_free(names);
  return rc;
}

static int check(const json_t *s, const json_t *v, const char *path, int depth,
                 sb_error *err);

static int check_object(const json_t *s, const json_t *v, const char *path,
                        int depth, sb_error *err) {
  char sub[512];
  json_t *props = json_object_get(s, "properties");
  json_t *required = json_object_get(s, "required");
  json_t *additional = json_object_get(s, "additionalProperties");
  size_t i;
  json_t *name;
  json_array_foreach(required, i, name) {
    if (json_is_string(name) && !json_object_get(v, json_string_value(name)))
      return fail(err, path, "missing required property \"%s\"",
                  json_string_value(name));
  }
  const char *key;
  json_t *member;
  json_object_foreach((json_t *)v, key, member) {
    snprintf(sub, sizeof sub, "%s.%s", path, key);
    json_t *ps = json_is_object(props) ? json_object_get(props, key) : NULL;
    int rc = 0;
    if (ps)
      rc = check(ps, member, sub, depth + 1, err);
    else if (json_is_false(additional))
      rc = fail(err, path, "property \"%s\" is not allowed", key);
    else if (json_is_object(additional))
      rc = check(additional, member, sub, depth + 1, err);
    if (rc != 0) return rc;
  }
  return 0;
}

static int check_array(const json_t *s, const json_t *v, const char *path,
                       int depth, sb_error *err) {
  char sub[512];
  json_t *min = json_object_get(s, "minItems");
  json_t *max = json_object_get(s, "maxItems");
  size_t n = json_array_size(v);
  if (json_is_integer(min) && (json_int_t)n < json_integer_value(min))
    return fail(err, path, "expected at least %lld items, got %zu",
                (long long)json_integer_value(min), n);
  if (json_is_integer(max) && (json_int_t)n > json_integer_value(max))
    return fail(err, path, "expected at most %lld items, got %zu",
                (long long)json_integer_value(max), n);
  json_t *items = json_object_get(s, "items");
  if (!json_is_object(items)) return 0;
  for (size_t i = 0; i < n; i++) {
    snprintf(sub, sizeof sub, "%s[%zu]", path, i);
    int rc = check(items, json_array_get(v, i), sub, depth + 1, err);
    if (rc != 0) return rc;
  }
  return 0;
}

static int check_scalar_bounds(const json_t *s, const json_t *v,
                               const char *path, sb_error *err) {
  if (json_is_string(v)) {
    json_t *min = json_object_get(s, "minLength");
    json_t *max = json_object_get(s, "maxLength");
    size_t n = json_string_length(v);
    if (json_is_integer(min) && (json_int_t)n < json_integer_value(min))
      return fail(err, path, "expected at least %lld characters",
                  (long long)json_integer_value(min));
    if (json_is_integer(max) && (json_int_t)n > json_integer_value(max))
      return fail(err, path, "expected at most %lld characters",
                  (long long)json_integer_value(max));
  }
  if (json_is_number(v)) {
    json_t *min = json_object_get(s, "minimum");
    json_t *max = json_object_get(s, "maximum");
    double d = json_number_value(v);
    if (json_is_number(min) && d < json_number_value(min))
      return fail(err, path, "expected at least %g, got %g",
                  json_number_value(min), d);
    if (json_is_number(max) && d > json_number_value(max))
      return fail(err, path, "expected at most %g, got %g",
                  json_number_value(max), d);
  }
  return 0;
}

static int check(const json_t *s, const json_t *v, const char *path, int depth,
                 sb_error *err) {
  if (json_is_true(s) || !json_is_object(s)) return 0; /* true: anything */
  if (depth > MAX_DEPTH) return fail(err, path, "nested too deeply");
  json_t *type = json_object_get(s, "type");
  int rc;
  if (type && (rc = check_type(type, v, path, err)) != 0) return rc;
  json_t *cnst = json_object_get(s, "const");
  if (cnst && !json_equal(cnst, (json_t *)v))
    return fail(err, path, "not the constant the schema requires");
  json_t *options = json_object_get(s, "enum");
  if (json_is_array(options)) {
    size_t i;
    json_t *o;
    int found = 0;
    json_array_foreach(options, i, o) found |= json_equal(o, (json_t *)v);
    if (!found) {
      char *shown = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      rc = fail(err, path, "%.80s is not one of the allowed values",
                shown ? shown : "the value");
      sb_free(shown);
      return rc;
    }
  }
  json_t *any = json_object_get(s, "anyOf");
  if (json_is_array(any) && json_array_size(any) > 0) {
    size_t i;
    json_t *alt;
    sb_error first = {0};
    int matched = 0;
    json_array_foreach(any, i, alt) {
      sb_error e = {0};
      if (check(alt, v, path, depth + 1, &e) == 0) {
        matched = 1;
        break;
      }
      if (i == 0) first = e;
    }
    if (!matched)
      return fail(err, path, "matches none of anyOf (the first: %s)",
                  first.msg);
  }
  if ((rc = check_scalar_bounds(s, v, path, err)) != 0) return rc;
  if (json_is_object(v)) return check_object(s, v, path, depth, err);
  if (json_is_array(v)) return check_array(s, v, path, depth, err);
  return 0;
}

int sb_llm_schema_check(const json_t *schema, const json_t *value,
                        sb_error *err) {
  if (!value) return sb_error_set(err, SB_EINVAL, "$: no value");
  return check(schema, value, "$", 0, err);
}
