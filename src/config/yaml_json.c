/* yaml_json.c: free-form config sections (agents, servers) kept as JSON
 * for the modules that own their meaning; the line of every list item is
 * recorded so their errors can still point into the file. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

#define MAX_DEPTH 32

/* A plain scalar's JSON value under the YAML 1.2 core schema. */
static json_t *plain_scalar(const char *s, size_t len) {
  if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0) return json_true();
  if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0) return json_false();
  if (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0) return json_null();
  char *end = NULL;
  errno = 0;
  long long i = strtoll(s, &end, 10);
  if (end && end == s + len && len && errno == 0) return json_integer(i);
  errno = 0;
  double d = strtod(s, &end);
  if (end && end == s + len && len && errno == 0 && isfinite(d) &&
      strpbrk(s, "0123456789"))
    return json_real(d);
  return json_stringn(s, len);
}

static int node(parse_ctx *p, const char *path, int depth, json_t **out) {
  char child[256], got[96];
  *out = NULL;
  if (depth > MAX_DEPTH)
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                       "nested deeper than %d levels", MAX_DEPTH);
  switch (p->ev.type) {
  case YAML_ALIAS_EVENT: return cfg_fail_alias(p, path);
  case YAML_SCALAR_EVENT: {
    const char *s = cfg_ev_scalar(p);
    size_t len = p->ev.data.scalar.length;
    *out = p->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE
               ? plain_scalar(s, len)
               : json_stringn(s, len);
    break;
  }
  case YAML_SEQUENCE_START_EVENT: {
    json_t *a = json_array();
    for (size_t i = 0;; i++) {
      int rc = cfg_next_event(p);
      if (rc) {
        json_decref(a);
        return rc;
      }
      if (p->ev.type == YAML_SEQUENCE_END_EVENT) break;
      snprintf(child, sizeof child, "%s[%zu]", path, i);
      json_t *v = NULL;
      if ((rc = node(p, child, depth + 1, &v)) != 0) {
        json_decref(a);
        return rc;
      }
      json_array_append_new(a, v);
    }
    *out = a;
    break;
  }
  case YAML_MAPPING_START_EVENT: {
    json_t *o = json_object();
    for (;;) {
      int rc = cfg_next_event(p);
      if (rc) {
        json_decref(o);
        return rc;
      }
      if (p->ev.type == YAML_MAPPING_END_EVENT) break;
      if (p->ev.type != YAML_SCALAR_EVENT) {
        cfg_describe_event(p, got, sizeof got);
        json_decref(o);
        return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                           "keys must be plain names, got %s", got);
      }
      char *key = sb_strdup(cfg_ev_scalar(p));
      size_t line = cfg_ev_line(p);
      snprintf(child, sizeof child, "%s.%.64s", path, key ? key : "");
      if (!key || json_object_get(o, key)) {
        json_decref(o);
        sb_free(key);
        return cfg_fail_at(p, line, child, SB_EINVAL, "duplicate key");
      }
      json_t *v = NULL;
      if ((rc = cfg_next_event(p)) != 0 ||
          (rc = node(p, child, depth + 1, &v)) != 0) {
        json_decref(o);
        sb_free(key);
        return rc;
      }
      json_object_set_new(o, key, v);
      sb_free(key);
    }
    *out = o;
    break;
  }
  default:
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL, "unexpected YAML");
  }
  if (!*out) return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
  return 0;
}

int cfg_parse_json(parse_ctx *p, const char *path, json_t **out) {
  return node(p, path, 0, out);
}
