/* project.c: selective context, the slice of `data` an agent receives.
 *
 * Agent definitions name what they need as dotted paths with Python-style
 * indexes and slices (`conversation.messages[-5:]`). Projection happens in
 * two passes: each path is resolved against the data into a "selection"
 * tree with concrete indexes, the selections of all paths are merged, and
 * only then is the output copied out of the data. Merging selections
 * rather than outputs is what lets `messages[0]` and `messages[-5:]`
 * produce one array in source order with no element twice.
 *
 * A selection is itself a jansson value shaped like the data it selects:
 * `true` selects a whole subtree; an object selects some members of an
 * object (by key) or some elements of an array (keys are decimal indexes).
 * Which of the two it is follows from the data at that point.
 */
#include "ctx/ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUOTE_MAX 200
/* An index or slice bound has at most this many digits, which keeps the
 * arithmetic far from overflow. */
#define MAX_DIGITS 15

enum seg_kind { SEG_KEY, SEG_INDEX, SEG_SLICE };

typedef struct seg {
  enum seg_kind kind;
  const char *key; /* SEG_KEY: points into the path text */
  size_t key_len;
  long long index; /* SEG_INDEX */
  long long start, end;
  int has_start, has_end; /* SEG_SLICE: [start:end], either optional */
  size_t text_end;        /* offset just past the segment in the path */
} seg;

typedef struct parsed_path {
  seg *segs;
  size_t nsegs;
} parsed_path;

static const char *const sections[] = {"conversation", "workflow", "user",
                                       "business"};

static int bad_path(sb_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad_path(sb_error *err, const char *path, const char *fmt, ...) {
  if (!err) return SB_EINVAL;
  char why[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return sb_error_set(err, SB_EINVAL, "invalid path \"%.*s\": %s", QUOTE_MAX,
                      path, why);
}

/* Parse an optional integer at path[*pos]; 1 if one was there, 0 if not,
 * SB_EINVAL (err filled) if malformed. */
static int parse_int(const char *path, size_t *pos, long long *out,
                     sb_error *err) {
  size_t i = *pos, start = *pos;
  int neg = 0;
  if (path[i] == '-') {
    neg = 1;
    i++;
  }
  size_t digits_at = i;
  long long v = 0;
  while (path[i] >= '0' && path[i] <= '9') {
    if (i - digits_at >= MAX_DIGITS)
      return bad_path(err, path, "index at offset %zu is too large", start);
    v = v * 10 + (path[i] - '0');
    i++;
  }
  size_t ndigits = i - digits_at;
  if (ndigits == 0) {
    if (neg)
      return bad_path(err, path, "'-' without digits at offset %zu", start);
    return 0;
  }
  if (path[digits_at] == '0' && (ndigits > 1 || neg))
    return bad_path(err, path, "leading zero in index at offset %zu", start);
  *out = neg ? -v : v;
  *pos = i;
  return 1;
}

/* Parse "[...]" starting at path[*pos] == '['. */
static int parse_bracket(const char *path, size_t *pos, seg *s, sb_error *err) {
  size_t open = *pos, i = *pos + 1;
  int rc = parse_int(path, &i, &s->start, err);
  if (rc < 0) return rc;
  s->has_start = rc;
  if (path[i] == ':') {
    i++;
    s->kind = SEG_SLICE;
    rc = parse_int(path, &i, &s->end, err);
    if (rc < 0) return rc;
    s->has_end = rc;
  } else {
    if (!s->has_start && path[i] != '\0')
      return bad_path(
          err, path, "expected an integer or slice in '[' at offset %zu", open);
    s->kind = SEG_INDEX;
    s->index = s->start;
  }
  if (path[i] == '\0')
    return bad_path(err, path, "unclosed '[' at offset %zu", open);
  if (path[i] != ']')
    return bad_path(err, path,
                    "unexpected '%c' at offset %zu (expected an integer, ':' "
                    "or ']')",
                    path[i], i);
  *pos = i + 1;
  return 0;
}

static void path_free(parsed_path *p) {
  sb_free(p->segs);
  p->segs = NULL;
  p->nsegs = 0;
}

static int parse_path(const char *path, parsed_path *out, sb_error *err) {
  out->segs = NULL;
  out->nsegs = 0;
  size_t len = strlen(path), cap = 1;
  for (size_t i = 0; i < len; i++)
    if (path[i] == '.' || path[i] == '[') cap++;
  out->segs = sb_calloc(cap, sizeof *out->segs);
  if (!out->segs) return sb_error_set(err, SB_ENOMEM, "out of memory");
  int rc = SB_EINVAL;
  size_t i = 0;
  for (;;) {
    /* a key: the section first, then after each '.' */
    size_t start = i;
    while (i < len && path[i] != '.' && path[i] != '[' && path[i] != ']')
      i++;
    if (i == start) {
      rc = i == 0 && len == 0
               ? bad_path(err, path, "empty path")
               : bad_path(err, path, "empty segment at offset %zu", start);
      goto fail;
    }
    seg *s = &out->segs[out->nsegs++];
    s->kind = SEG_KEY;
    s->key = path + start;
    s->key_len = i - start;
    s->text_end = i;
    if (out->nsegs == 1) {
      size_t k = 0;
      while (k < 4 && !(strlen(sections[k]) == s->key_len &&
                        !memcmp(sections[k], s->key, s->key_len)))
        k++;
      if (k == 4) {
        rc = bad_path(err, path,
                      "unknown section \"%.*s\" (expected conversation, "
                      "workflow, user or business)",
                      (int)(s->key_len < 60 ? s->key_len : 60), s->key);
        goto fail;
      }
    }
    while (i < len && path[i] == '[') {
      if ((rc = parse_bracket(path, &i, &out->segs[out->nsegs++], err)) != 0)
        goto fail;
      out->segs[out->nsegs - 1].text_end = i;
    }
    if (i == len) return 0;
    if (path[i] != '.') {
      rc = bad_path(err, path, "unexpected '%c' at offset %zu", path[i], i);
      goto fail;
    }
    i++;
    if (i == len) {
      rc = bad_path(err, path, "empty segment at offset %zu", i);
      goto fail;
    }
  }
fail:
  path_free(out);
  return rc;
}

int sb_ctx_path_validate(const char *path, sb_error *err) {
  if (!path) return sb_error_set(err, SB_EINVAL, "invalid path: NULL");
  parsed_path p;
  int rc = parse_path(path, &p, err);
  path_free(&p);
  return rc;
}

/* The path string of paths[i], or NULL with err filled. */
static const char *path_at(const json_t *paths, const char *field, size_t i,
                           sb_error *err) {
  json_t *v = json_array_get(paths, i);
  if (!json_is_string(v)) {
    sb_error_set(err, SB_EINVAL, "%s[%zu]: expected a string", field, i);
    return NULL;
  }
  if (strlen(json_string_value(v)) != json_string_length(v)) {
    sb_error_set(err, SB_EINVAL, "%s[%zu]: contains a NUL character", field,
                 i);
    return NULL;
  }
  return json_string_value(v);
}

int sb_ctx_paths_validate_as(const json_t *paths, const char *field,
                             sb_error *err) {
  if (!json_is_array(paths))
    return sb_error_set(err, SB_EINVAL,
                        "%s: expected an array of path strings", field);
  for (size_t i = 0; i < json_array_size(paths); i++) {
    const char *path = path_at(paths, field, i, err);
    if (!path) return SB_EINVAL;
    sb_error one = {0};
    if (sb_ctx_path_validate(path, &one) != 0)
      return sb_error_set(err, one.code, "%s[%zu]: %s", field, i, one.msg);
  }
  return 0;
}

int sb_ctx_paths_validate(const json_t *paths, sb_error *err) {
  return sb_ctx_paths_validate_as(paths, "paths", err);
}

/* ---- selections ------------------------------------------------------- */

/* Merge selection b into a; both are stolen, the result is returned (NULL
 * on ENOMEM). */
static json_t *sel_merge(json_t *a, json_t *b) {
  if (!a) return b;
  if (!b) return a;
  if (json_is_true(a) || json_is_true(b)) {
    json_decref(a);
    json_decref(b);
    return json_true();
  }
  const char *key;
  size_t key_len;
  json_t *bv;
  json_object_keylen_foreach(b, key, key_len, bv) {
    json_t *av = json_incref(json_object_getn(a, key, key_len));
    json_t *merged = sel_merge(av, json_incref(bv));
    if (!merged || json_object_setn_new(a, key, key_len, merged) != 0) {
      json_decref(a);
      a = NULL;
      break;
    }
  }
  json_decref(b);
  return a;
}

/* Resolve segs[k..] against value. 1 and *sel (new reference) if found, 0
 * if missing, SB_ENOMEM. */
static int resolve(const json_t *value, const parsed_path *p, size_t k,
                   json_t **sel) {
  *sel = NULL;
  if (k == p->nsegs) {
    *sel = json_true();
    return 1;
  }
  const seg *s = &p->segs[k];
  json_t *child_sel = NULL;
  char idx[32];
  int rc;
  switch (s->kind) {
  case SEG_KEY: {
    json_t *child = json_is_object(value)
                        ? json_object_getn(value, s->key, s->key_len)
                        : NULL;
    if (!child) return 0;
    if ((rc = resolve(child, p, k + 1, &child_sel)) != 1) return rc;
    *sel = json_object();
    if (!*sel) json_decref(child_sel);
    if (!*sel || json_object_setn_new(*sel, s->key, s->key_len, child_sel)) {
      json_decref(*sel);
      *sel = NULL;
      return SB_ENOMEM;
    }
    return 1;
  }
  case SEG_INDEX: {
    if (!json_is_array(value)) return 0;
    long long n = (long long)json_array_size(value), i = s->index;
    if (i < 0) i += n;
    if (i < 0 || i >= n) return 0;
    if ((rc = resolve(json_array_get(value, (size_t)i), p, k + 1,
                      &child_sel)) != 1)
      return rc;
    snprintf(idx, sizeof idx, "%lld", i);
    *sel = json_object();
    if (!*sel) json_decref(child_sel);
    if (!*sel || json_object_set_new(*sel, idx, child_sel) != 0) {
      json_decref(*sel);
      *sel = NULL;
      return SB_ENOMEM;
    }
    return 1;
  }
  case SEG_SLICE: {
    if (!json_is_array(value)) return 0;
    long long n = (long long)json_array_size(value);
    long long lo = s->has_start ? s->start : 0, hi = s->has_end ? s->end : n;
    if (lo < 0) lo += n;
    if (hi < 0) hi += n;
    if (lo < 0) lo = 0;
    if (hi > n) hi = n;
    *sel = json_object();
    if (!*sel) return SB_ENOMEM;
    for (long long i = lo; i < hi; i++) {
      rc = resolve(json_array_get(value, (size_t)i), p, k + 1, &child_sel);
      if (rc == 0) continue; /* this element lacks the rest of the path */
      snprintf(idx, sizeof idx, "%lld", i);
      if (rc < 0 || json_object_set_new(*sel, idx, child_sel) != 0) {
        json_decref(*sel);
        *sel = NULL;
        return SB_ENOMEM;
      }
    }
    /* The slice itself is there even when empty; a path that goes on
     * below it is there only where some element has the rest. */
    if (k + 1 < p->nsegs && json_object_size(*sel) == 0) {
      json_decref(*sel);
      *sel = NULL;
      return 0;
    }
    return 1;
  }
  }
  return 0;
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

/* Copy out of value what sel selects. New reference, NULL on ENOMEM. */
static json_t *materialize(const json_t *value, json_t *sel) {
  if (json_is_true(sel)) return json_deep_copy(value);
  if (json_is_object(value)) {
    json_t *out = json_object();
    const char *key;
    size_t key_len;
    json_t *v;
    /* in the data's member order, so output reads like the source */
    json_object_keylen_foreach((json_t *)value, key, key_len, v) {
      if (!out) break;
      json_t *s = json_object_getn(sel, key, key_len);
      if (!s) continue;
      json_t *part = materialize(v, s);
      if (!part || json_object_setn_new(out, key, key_len, part) != 0) {
        json_decref(out);
        out = NULL;
      }
    }
    return out;
  }
  /* an array: sel's keys are indexes, emitted in source order */
  size_t n = json_object_size(sel);
  size_t *order = sb_malloc((n ? n : 1) * sizeof *order);
  json_t *out = order ? json_array() : NULL;
  if (!out) goto done;
  size_t k = 0;
  const char *key;
  json_t *s;
  json_object_foreach(sel, key, s) order[k++] = strtoull(key, NULL, 10);
  qsort(order, n, sizeof *order, cmp_size);
  for (k = 0; k < n; k++) {
    char idx[32];
    snprintf(idx, sizeof idx, "%zu", order[k]);
    json_t *part =
        materialize(json_array_get(value, order[k]), json_object_get(sel, idx));
    if (!part || json_array_append_new(out, part) != 0) {
      json_decref(out);
      out = NULL;
      break;
    }
  }
done:
  sb_free(order);
  return out;
}

int sb_ctx_project(const json_t *data, const json_t *paths, json_t **out,
                   json_t **missing, sb_error *err) {
  *out = NULL;
  if (missing) *missing = NULL;
  if (!json_is_object(data))
    return sb_error_set(err, SB_EINVAL, "data: expected an object");
  int rc = sb_ctx_paths_validate(paths, err);
  if (rc != 0) return rc;
  json_t *sel = NULL, *absent = json_array();
  if (!absent) goto nomem;
  for (size_t i = 0; i < json_array_size(paths); i++) {
    const char *path = json_string_value(json_array_get(paths, i));
    parsed_path p;
    if (parse_path(path, &p, err) != 0) goto fail; /* only ENOMEM now */
    json_t *one = NULL;
    rc = resolve(data, &p, 0, &one);
    path_free(&p);
    if (rc < 0) goto nomem;
    if (rc == 0) {
      if (json_array_append_new(absent, json_string(path)) != 0) goto nomem;
      continue;
    }
    sel = sel_merge(sel, one);
    if (!sel) goto nomem;
  }
  *out = sel ? materialize(data, sel) : json_object();
  if (!*out) goto nomem;
  json_decref(sel);
  if (missing)
    *missing = absent;
  else
    json_decref(absent);
  return 0;
nomem:
  sb_error_set(err, SB_ENOMEM, "projection: out of memory");
fail:
  json_decref(sel);
  json_decref(absent);
  return SB_ENOMEM;
}

/* ---- one value by path (get, set) -------------------------------------- */

/* The value at segs[k..] under v (a new reference sharing nothing with v;
 * with share, the value itself, read-only), or NULL: missing (*nomem 0)
 * or out of memory (*nomem 1). */
static json_t *get_at(const json_t *v, const parsed_path *p, size_t k,
                      int share, int *nomem) {
  if (k == p->nsegs) {
    if (share) return json_incref((json_t *)v);
    json_t *copy = json_deep_copy(v);
    if (!copy) *nomem = 1;
    return copy;
  }
  const seg *s = &p->segs[k];
  switch (s->kind) {
  case SEG_KEY:
    if (!json_is_object(v)) return NULL;
    v = json_object_getn(v, s->key, s->key_len);
    return v ? get_at(v, p, k + 1, share, nomem) : NULL;
  case SEG_INDEX: {
    if (!json_is_array(v)) return NULL;
    long long n = (long long)json_array_size(v), i = s->index;
    if (i < 0) i += n;
    if (i < 0 || i >= n) return NULL;
    return get_at(json_array_get(v, (size_t)i), p, k + 1, share, nomem);
  }
  case SEG_SLICE: {
    if (!json_is_array(v)) return NULL;
    long long n = (long long)json_array_size(v);
    long long lo = s->has_start ? s->start : 0, hi = s->has_end ? s->end : n;
    if (lo < 0) lo += n;
    if (hi < 0) hi += n;
    if (lo < 0) lo = 0;
    if (hi > n) hi = n;
    json_t *out = json_array();
    if (!out) {
      *nomem = 1;
      return NULL;
    }
    for (long long i = lo; i < hi; i++) {
      json_t *one =
          get_at(json_array_get(v, (size_t)i), p, k + 1, share, nomem);
      if (*nomem || (one && json_array_append_new(out, one) != 0)) {
        *nomem = 1;
        json_decref(out);
        return NULL;
      }
    }
    return out;
  }
  }
  return NULL;
}

static int path_get(const json_t *data, const char *path, int share,
                    json_t **out, sb_error *err) {
  *out = NULL;
  if (!path) return sb_error_set(err, SB_EINVAL, "invalid path: NULL");
  parsed_path p;
  int rc = parse_path(path, &p, err);
  if (rc != 0) return rc;
  int nomem = 0;
  *out = get_at(data, &p, 0, share, &nomem);
  path_free(&p);
  if (nomem) return sb_error_set(err, SB_ENOMEM, "out of memory");
  return *out ? 0 : SB_ENOENT;
}

int sb_ctx_path_get(const json_t *data, const char *path, json_t **out,
                    sb_error *err) {
  return path_get(data, path, 0, out, err);
}

int sb_ctx_path_get_shared(const json_t *data, const char *path,
                           json_t **out, sb_error *err) {
  return path_get(data, path, 1, out, err);
}

/* Check that `path` can be set in data without changing anything: every
 * segment a key or an existing non-negative index, no scalar in the way,
 * and only keys below the first missing member (created as objects). */
static int set_check(const json_t *data, const char *path,
                     const parsed_path *p, sb_error *err) {
  const json_t *cur = data;
  for (size_t k = 0; k < p->nsegs; k++) {
    const seg *s = &p->segs[k];
    int prefix = k ? (int)p->segs[k - 1].text_end : 0;
    if (s->kind == SEG_SLICE)
      return sb_error_set(err, SB_EINVAL,
                          "cannot set \"%.200s\": a slice names several "
                          "values",
                          path);
    if (s->kind == SEG_INDEX) {
      if (s->index < 0)
        return sb_error_set(err, SB_EINVAL,
                            "cannot set \"%.200s\": negative index", path);
      if (!cur)
        return sb_error_set(err, SB_EINVAL,
                            "cannot set \"%.200s\": %.*s does not exist (an "
                            "index needs an existing array)",
                            path, prefix, path);
      if (!json_is_array(cur))
        return sb_error_set(err, SB_EINVAL,
                            "cannot set \"%.200s\": %.*s is %s, not an array",
                            path, prefix, path, sb_json_type_name(cur));
      if ((size_t)s->index >= json_array_size(cur))
        return sb_error_set(err, SB_ENOENT,
                            "cannot set \"%.200s\": %.*s has %zu elements",
                            path, prefix, path, json_array_size(cur));
      cur = json_array_get(cur, (size_t)s->index);
      continue;
    }
    if (!cur) continue; /* created as an object */
    if (!json_is_object(cur))
      return sb_error_set(err, SB_EINVAL,
                          "cannot set \"%.200s\": %.*s is %s, not an object",
                          path, prefix, path, sb_json_type_name(cur));
    cur = json_object_getn(cur, s->key, s->key_len);
  }
  return 0;
}

int sb_ctx_path_set(json_t *data, const char *path, json_t *value,
                    sb_error *err) {
  if (!path) return sb_error_set(err, SB_EINVAL, "invalid path: NULL");
  if (!json_is_object(data))
    return sb_error_set(err, SB_EINVAL, "data: expected an object");
  if (!value) return sb_error_set(err, SB_EINVAL, "no value to set");
  parsed_path p;
  int rc = parse_path(path, &p, err);
  if (rc == 0) rc = set_check(data, path, &p, err);
  json_t *cur = data;
  for (size_t k = 0; rc == 0 && k < p.nsegs; k++) {
    const seg *s = &p.segs[k];
    int last = k + 1 == p.nsegs;
    if (s->kind == SEG_INDEX) {
      if (last)
        rc = json_array_set(cur, (size_t)s->index, value);
      else
        cur = json_array_get(cur, (size_t)s->index);
    } else if (last) {
      rc = json_object_setn(cur, s->key, s->key_len, value);
    } else {
      json_t *child = json_object_getn(cur, s->key, s->key_len);
      if (!child) {
        child = json_object();
        if (!child || json_object_setn_new(cur, s->key, s->key_len, child))
          rc = -1;
      }
      cur = child;
    }
    if (rc == -1) rc = sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  path_free(&p);
  return rc;
}
