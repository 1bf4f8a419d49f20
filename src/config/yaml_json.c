/* yaml_json.c: free-form YAML kept as JSON for the modules that own its
 * meaning: config sections (agents, servers, workflows) and whole
 * documents read with sb_config_read_yaml (workflow files). When the
 * parser has a line map (p->lines), the 1-based line of every node is
 * recorded under its RFC 6901 JSON Pointer, so errors found long after
 * parsing can still point into the file. */
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

/* Append one escaped reference token (~ -> ~0, / -> ~1) to the pointer. */
static int ptr_push(parse_ctx *p, const char *tok) {
  if (!p->lines) return 0;
  if (sb_buf_append(&p->ptr, "/", 1) != 0) return SB_ENOMEM;
  for (const char *c = tok; *c; c++) {
    const char *esc = *c == '~' ? "~0" : *c == '/' ? "~1" : NULL;
    if (esc ? sb_buf_append(&p->ptr, esc, 2) : sb_buf_append(&p->ptr, c, 1))
      return SB_ENOMEM;
  }
  return 0;
}

static void ptr_pop(parse_ctx *p, size_t mark) {
  if (!p->lines || !p->ptr.data) return;
  p->ptr.len = mark;
  p->ptr.data[mark] = '\0';
}

/* Record the current node's line under the current pointer. */
static int record_line(parse_ctx *p) {
  if (!p->lines) return 0;
  json_t *line = json_integer((json_int_t)cfg_ev_line(p));
  if (!line || json_object_set_new(p->lines, p->ptr.data ? p->ptr.data : "",
                                   line) != 0)
    return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
  return 0;
}

static int node(parse_ctx *p, const char *path, int depth, json_t **out) {
  char child[256], got[96];
  *out = NULL;
  if (depth > MAX_DEPTH)
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                       "nested deeper than %d levels", MAX_DEPTH);
  if (p->ev.type != YAML_ALIAS_EVENT && record_line(p) != 0) return SB_ENOMEM;
  size_t mark = p->ptr.len;
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
      char idx[24];
      snprintf(idx, sizeof idx, "%zu", i);
      json_t *v = NULL;
      if (ptr_push(p, idx) != 0) {
        json_decref(a);
        return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
      }
      if ((rc = node(p, child, depth + 1, &v)) != 0) {
        json_decref(a);
        return rc;
      }
      ptr_pop(p, mark);
      if (json_array_append_new(a, v) != 0) {
        json_decref(a);
        return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
      }
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
      /* A key is kept as a C string: one holding a NUL would be cut there
       * ("id\0x" read as "id"), so it is refused, as a NUL in a value is
       * by the modules that read it. */
      if (strlen(cfg_ev_scalar(p)) != p->ev.data.scalar.length) {
        cfg_describe_event(p, got, sizeof got);
        json_decref(o);
        return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                           "key %s contains a NUL character", got);
      }
      char *key = sb_strdup(cfg_ev_scalar(p));
      size_t line = cfg_ev_line(p);
      snprintf(child, sizeof child, "%s%s%.64s", path, *path ? "." : "",
               key ? key : "");
      if (!key) {
        json_decref(o);
        return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
      }
      if (json_object_get(o, key)) {
        json_decref(o);
        sb_free(key);
        return cfg_fail_at(p, line, child, SB_EINVAL, "duplicate key");
      }
      json_t *v = NULL;
      if (ptr_push(p, key) != 0) {
        json_decref(o);
        sb_free(key);
        return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
      }
      if ((rc = cfg_next_event(p)) != 0 ||
          (rc = node(p, child, depth + 1, &v)) != 0) {
        json_decref(o);
        sb_free(key);
        return rc;
      }
      ptr_pop(p, mark);
      rc = json_object_set_new(o, key, v);
      sb_free(key);
      if (rc != 0) {
        json_decref(o);
        return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
      }
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

/* workflows: a list of inline definitions (mappings) and names of files or
 * directories (strings), kept as JSON with the line of every node; flow/
 * validates the definitions. Replaces any list set before. */
int cfg_parse_workflows(parse_ctx *p, const char *path) {
  char got[96], item[192];
  json_t *list = NULL;
  int rc;
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (!cfg_ev_is_null(p) && p->ev.type != YAML_SEQUENCE_START_EVENT) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                       "expected a list of workflow definitions and file or "
                       "directory names, got %s",
                       got);
  }
  json_t *lines = json_object();
  if (!lines) return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
  if (cfg_ev_is_null(p)) { /* "workflows:" = no workflows */
    list = json_array();
    rc = list ? 0 : sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
  } else {
    p->lines = lines;
    sb_buf_reset(&p->ptr);
    rc = cfg_parse_json(p, path, &list);
    p->lines = NULL;
  }
  for (size_t i = 0; rc == 0 && i < json_array_size(list); i++) {
    json_t *v = json_array_get(list, i);
    if (json_is_object(v) || (json_is_string(v) && json_string_length(v) &&
                              strlen(json_string_value(v)) ==
                                  json_string_length(v)))
      continue;
    char ptr[32];
    snprintf(ptr, sizeof ptr, "/%zu", i);
    snprintf(item, sizeof item, "%s[%zu]", path, i);
    rc = cfg_fail_at(p, (size_t)json_integer_value(json_object_get(lines, ptr)),
                     item, SB_EINVAL,
                     "expected a workflow definition (a mapping) or the name "
                     "of a .yaml file or a directory, got %s",
                     sb_json_type_name(v));
  }
  if (rc != 0) {
    json_decref(list);
    json_decref(lines);
    return rc;
  }
  json_decref(p->cfg->workflows);
  json_decref(p->cfg->workflow_lines);
  p->cfg->workflows = list;
  p->cfg->workflow_lines = lines;
  return 0;
}
