/* schema.c: the JSON Schema subset a structured answer is checked against
 * (sb_llm_schema_check in llm.h). Nothing else in switchboard validates
 * JSON Schema (tool output schemas are the agents' business), and a model's
 * structured output and an elicitation's requestedSchema need only the
 * shape keywords: type, properties, required, additionalProperties, items,
 * enum, const, anyOf, oneOf, the simple bounds, pattern (PCRE2) and the
 * four formats MCP names. Unknown keywords are ignored, as a validator
 * must. The first
 * mismatch is reported, with the JSON path of the value at fault.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "llm/llm.h"

#define MAX_DEPTH 64
/* A pattern's match gives up past these (a pathological pattern or
 * subject backtracks without end): the value is then refused. */
#define PATTERN_MATCH_LIMIT 100000
#define PATTERN_DEPTH_LIMIT 10000

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
  char *names = sb_json_dumps(type, JSON_COMPACT);
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

/* JSON Schema counts a string's length in characters (code points), not
 * in the bytes of its UTF-8. */
static size_t utf8_chars(const char *s, size_t bytes) {
  size_t n = 0;
  for (size_t i = 0; i < bytes; i++)
    n += ((unsigned char)s[i] & 0xC0) != 0x80;
  return n;
}

static int digits(const char *s, int n) {
  for (int i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

static int number_of(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++)
    v = v * 10 + (s[i] - '0');
  return v;
}

/* RFC 3339 full-date at the start of s: YYYY-MM-DD, a day its month
 * has. */
static int starts_with_date(const char *s) {
  static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
      !digits(s + 8, 2))
    return 0;
  int y = number_of(s, 4), m = number_of(s + 5, 2), d = number_of(s + 8, 2);
  if (m < 1 || m > 12 || d < 1 || d > days[m - 1]) return 0;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m != 2 || d < 29 || leap;
}

static int is_date(const char *s) { return starts_with_date(s) && !s[10]; }

/* RFC 3339 date-time: full-date "T" HH:MM:SS[.frac] then Z or +HH:MM. */
static int is_date_time(const char *s) {
  if (!starts_with_date(s) || (s[10] != 'T' && s[10] != 't')) return 0;
  const char *t = s + 11;
  if (!digits(t, 2) || t[2] != ':' || !digits(t + 3, 2) || t[5] != ':' ||
      !digits(t + 6, 2) || number_of(t, 2) > 23 || number_of(t + 3, 2) > 59 ||
      number_of(t + 6, 2) > 60) /* 60: a leap second */
    return 0;
  t += 8;
  if (*t == '.') {
    if (!digits(++t, 1)) return 0;
    while (*t >= '0' && *t <= '9')
      t++;
  }
  if ((*t == 'Z' || *t == 'z') && t[1] == '\0') return 1;
  return (*t == '+' || *t == '-') && digits(t + 1, 2) && t[3] == ':' &&
         digits(t + 4, 2) && number_of(t + 1, 2) <= 23 &&
         number_of(t + 4, 2) <= 59 && t[6] == '\0';
}

/* An address: local@domain, both non-empty, no spaces or controls, one @
 * (the quoted local parts that may hold another are left out). */
static int is_email(const char *s) {
  const char *at = strchr(s, '@');
  if (!at || at == s || !at[1] || strchr(at + 1, '@')) return 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= ' ' || *p == 0x7f) return 0;
  return at[1] != '.' && s[strlen(s) - 1] != '.';
}

/* An absolute URI (RFC 3986): a scheme, ":", then no character a URI
 * never holds unescaped (space, controls, <>"{}|\^`). */
static int is_uri(const char *s) {
  if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) return 0;
  const char *p = s + 1;
  while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
         (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')
    p++;
  if (*p != ':' || !p[1]) return 0;
  for (const unsigned char *c = (const unsigned char *)p + 1; *c; c++)
    if (*c <= ' ' || *c == 0x7f || strchr("<>\"{}|\\^`", *c)) return 0;
  return 1;
}

/* ---- pattern ------------------------------------------------------------- */

static pcre2_code *pattern_compile(const char *pattern, char *why, size_t n) {
  int code;
  PCRE2_SIZE at;
  /* UTF: a pattern and its subjects are Unicode text; \d, \w and \s stay
   * ASCII, as in ECMA-262. */
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF, &code, &at, NULL);
  if (!re && why) {
    PCRE2_UCHAR msg[160];
    if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
      snprintf((char *)msg, sizeof msg, "error %d", code);
    snprintf(why, n, "not a regular expression: %s at offset %zu",
             (const char *)msg, (size_t)at);
  }
  return re;
}

int sb_llm_schema_pattern_valid(const char *pattern, char *why, size_t n) {
  pcre2_code *re = pattern ? pattern_compile(pattern, why, n) : NULL;
  if (!pattern && why) snprintf(why, n, "expected a string");
  pcre2_code_free(re);
  return re != NULL;
}

/* JSON Schema `pattern`: the string contains a match (not anchored). */
static int check_pattern(const char *pattern, const json_t *v,
                         const char *path, sb_error *err) {
  char why[240];
  pcre2_code *re = pattern_compile(pattern, why, sizeof why);
  if (!re) return fail(err, path, "the schema's pattern is %s", why);
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  pcre2_match_context *mc = pcre2_match_context_create(NULL);
  int rc = SB_ENOMEM;
  if (md && mc) {
    pcre2_set_match_limit(mc, PATTERN_MATCH_LIMIT);
    pcre2_set_depth_limit(mc, PATTERN_DEPTH_LIMIT);
    int m = pcre2_match(re, (PCRE2_SPTR)json_string_value(v),
                        json_string_length(v), 0, 0, md, mc);
    char *shown = sb_json_dumps(v, JSON_ENCODE_ANY);
    rc = m >= 0 ? 0
         : m == PCRE2_ERROR_NOMATCH
             ? fail(err, path, "%.80s does not match the pattern %.80s",
                    shown ? shown : "the value", pattern)
             : fail(err, path,
                    "%.80s could not be checked against the pattern %.80s "
                    "(it gave up: error %d)",
                    shown ? shown : "the value", pattern, m);
    sb_free(shown);
  } else {
    rc = sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  pcre2_match_context_free(mc);
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  return rc;
}

int sb_llm_schema_format_checked(const char *format) {
  return format &&
         (strcmp(format, "date") == 0 || strcmp(format, "date-time") == 0 ||
          strcmp(format, "email") == 0 || strcmp(format, "uri") == 0);
}

/* The formats MCP elicitation names; any other is an annotation. */
static int check_format(const char *format, const json_t *v, const char *path,
                        sb_error *err) {
  if (!sb_llm_schema_format_checked(format)) return 0;
  const char *s = json_string_value(v);
  int ok = strcmp(format, "date") == 0        ? is_date(s)
           : strcmp(format, "date-time") == 0 ? is_date_time(s)
           : strcmp(format, "email") == 0     ? is_email(s)
                                              : is_uri(s);
  if (ok) return 0;
  char *shown = sb_json_dumps(v, JSON_ENCODE_ANY);
  int rc = fail(err, path, "%.80s is not a valid %s",
                shown ? shown : "the value", format);
  sb_free(shown);
  return rc;
}

static int check_number(const json_t *s, double d, const char *path,
                        sb_error *err) {
  json_t *min = json_object_get(s, "minimum");
  json_t *max = json_object_get(s, "maximum");
  json_t *xmin = json_object_get(s, "exclusiveMinimum");
  json_t *xmax = json_object_get(s, "exclusiveMaximum");
  json_t *step = json_object_get(s, "multipleOf");
  if (json_is_number(min) && d < json_number_value(min))
    return fail(err, path, "expected at least %g, got %g",
                json_number_value(min), d);
  if (json_is_number(max) && d > json_number_value(max))
    return fail(err, path, "expected at most %g, got %g",
                json_number_value(max), d);
  if (json_is_number(xmin) && d <= json_number_value(xmin))
    return fail(err, path, "expected more than %g, got %g",
                json_number_value(xmin), d);
  if (json_is_number(xmax) && d >= json_number_value(xmax))
    return fail(err, path, "expected less than %g, got %g",
                json_number_value(xmax), d);
  if (json_is_number(step) && json_number_value(step) > 0) {
    /* A quotient within rounding of a whole number: 0.3 is a multiple
     * of 0.1, though 0.3 / 0.1 is 2.9999999999999996. */
    double q = d / json_number_value(step);
    if (isfinite(q) && fabs(q - round(q)) > 1e-9 * fmax(1.0, fabs(q)))
      return fail(err, path, "expected a multiple of %g, got %g",
                  json_number_value(step), d);
  }
  return 0;
}

static int check_scalar_bounds(const json_t *s, const json_t *v,
                               const char *path, sb_error *err) {
  if (json_is_string(v)) {
    json_t *min = json_object_get(s, "minLength");
    json_t *max = json_object_get(s, "maxLength");
    size_t n = utf8_chars(json_string_value(v), json_string_length(v));
    if (json_is_integer(min) && (json_int_t)n < json_integer_value(min))
      return fail(err, path, "expected at least %lld characters",
                  (long long)json_integer_value(min));
    if (json_is_integer(max) && (json_int_t)n > json_integer_value(max))
      return fail(err, path, "expected at most %lld characters",
                  (long long)json_integer_value(max));
    const char *pattern = json_string_value(json_object_get(s, "pattern"));
    int rc = pattern ? check_pattern(pattern, v, path, err) : 0;
    if (rc != 0) return rc;
    return check_format(json_string_value(json_object_get(s, "format")), v,
                        path, err);
  }
  if (json_is_number(v))
    return check_number(s, json_number_value(v), path, err);
  return 0;
}

/* anyOf: at least one alternative matches; oneOf: exactly one. */
static int check_alternatives(const json_t *s, const char *keyword,
                              const json_t *v, const char *path, int depth,
                              sb_error *err) {
  json_t *alts = json_object_get(s, keyword);
  if (!json_is_array(alts) || json_array_size(alts) == 0) return 0;
  int exactly_one = strcmp(keyword, "oneOf") == 0;
  size_t i, matched = 0, first_match = 0;
  json_t *alt;
  sb_error first = {0};
  json_array_foreach(alts, i, alt) {
    sb_error e = {0};
    if (check(alt, v, path, depth + 1, &e) != 0) {
      if (i == 0) first = e;
      continue;
    }
    if (matched++ > 0)
      return fail(err, path, "matches more than one of oneOf ([%zu] and [%zu])",
                  first_match, i);
    first_match = i;
    if (!exactly_one) return 0;
  }
  if (matched) return 0;
  return fail(err, path, "matches none of %s (the first: %s)", keyword,
              first.msg);
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
      char *shown = sb_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      rc = fail(err, path, "%.80s is not one of the allowed values",
                shown ? shown : "the value");
      sb_free(shown);
      return rc;
    }
  }
  if ((rc = check_alternatives(s, "anyOf", v, path, depth, err)) != 0 ||
      (rc = check_alternatives(s, "oneOf", v, path, depth, err)) != 0)
    return rc;
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
