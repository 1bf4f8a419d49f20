/* patch.c: RFC 6902 JSON Patch, the form every context change takes.
 *
 * Atomicity is bought the simple way: the ops run in place on one deep
 * copy of the document, and the copy is dropped if any op fails. A
 * context is small next to the cost of getting partial application right,
 * and the caller's document is never touched. Values taken from the patch
 * are deep-copied too, so the result shares no storage with either input.
 */
#include "ctx/ctx.h"
#include "ctx/ctx_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define QUOTE_MAX 200
/* What one patch's copy ops may copy in all, in bytes of compact JSON:
 * each copy can double the document (copy / into /a, then / into /b...),
 * so a patch of a few dozen ops would otherwise grow it past any memory. */
typedef struct copy_budget {
  size_t max;  /* bytes the patch's copies may add in all */
  size_t used; /* what they copied so far */
} copy_budget;

/* Why an op failed; patch_apply prefixes it with the op's index and name. */
typedef struct op_error {
  int code;
  char why[400];
} op_error;

static int op_fail(op_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int op_fail(op_error *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->why, sizeof e->why, fmt, ap);
  va_end(ap);
  e->code = code;
  return code;
}

/* ---- equality --------------------------------------------------------- */

static int number_equal(const json_t *a, const json_t *b) {
  if (json_is_integer(a) && json_is_integer(b))
    return json_integer_value(a) == json_integer_value(b);
  if (json_is_real(a) && json_is_real(b))
    return json_real_value(a) == json_real_value(b);
  const json_t *i = json_is_integer(a) ? a : b;
  double r = json_real_value(json_is_real(a) ? a : b);
  /* Exact comparison: a double equals an integer only if it is integral
   * and in range; casting the integer to double would round 2^53+1. */
  if (!isfinite(r) || r != floor(r) || r < -9223372036854775808.0 ||
      r >= 9223372036854775808.0)
    return 0;
  return (json_int_t)r == json_integer_value(i);
}

int sb_ctx_json_equal(const json_t *a, const json_t *b) {
  if (a == b) return 1;
  if (!a || !b) return 0;
  if (json_is_number(a) && json_is_number(b)) return number_equal(a, b);
  if (json_typeof(a) != json_typeof(b)) return 0;
  switch (json_typeof(a)) {
  case JSON_OBJECT: {
    if (json_object_size(a) != json_object_size(b)) return 0;
    const char *key;
    size_t key_len;
    json_t *va;
    json_object_keylen_foreach((json_t *)a, key, key_len, va) {
      json_t *vb = json_object_getn(b, key, key_len);
      if (!vb || !sb_ctx_json_equal(va, vb)) return 0;
    }
    return 1;
  }
  case JSON_ARRAY: {
    size_t n = json_array_size(a);
    if (n != json_array_size(b)) return 0;
    for (size_t i = 0; i < n; i++)
      if (!sb_ctx_json_equal(json_array_get(a, i), json_array_get(b, i)))
        return 0;
    return 1;
  }
  case JSON_STRING:
    return json_string_length(a) == json_string_length(b) &&
           memcmp(json_string_value(a), json_string_value(b),
                  json_string_length(a)) == 0;
  default: return 1; /* true, false, null: same type is same value */
  }
}

/* ---- locating --------------------------------------------------------- */

/* Length of the text of `path` up to its last '/', i.e. the parent. */
static int parent_len(const char *path) {
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) : 0;
  return (int)(n < QUOTE_MAX ? n : QUOTE_MAX);
}

static json_t *parent_of(json_t *root, const sb_ctx_ptr *p, const char *path,
                         op_error *e) {
  json_t *parent = ctx_ptr_walk(root, p, p->ntokens - 1);
  if (!parent) {
    int n = parent_len(path);
    op_fail(e, SB_ENOENT, "parent %s%.*s does not exist", n ? "" : "\"\"", n,
            path);
    return NULL;
  }
  if (!json_is_object(parent) && !json_is_array(parent)) {
    op_fail(e, SB_EINVAL, "parent is a %s, not an object or array",
            json_is_string(parent)   ? "string"
            : json_is_number(parent) ? "number"
            : json_is_null(parent)   ? "null"
                                     : "boolean");
    return NULL;
  }
  return parent;
}

/* Existing element index in array `a` for tok, or fills e. */
static int existing_index(const json_t *a, const sb_ctx_ptr_token *tok,
                          size_t *idx, op_error *e) {
  int rc = sb_ctx_ptr_index(tok, idx);
  if (rc == 1)
    return op_fail(e, SB_ENOENT, "\"-\" names no existing array element");
  if (rc != 0)
    return op_fail(e, SB_EINVAL, "\"%.*s\" is not an array index",
                   (int)(tok->len < QUOTE_MAX ? tok->len : QUOTE_MAX), tok->s);
  if (*idx >= json_array_size(a))
    return op_fail(e, SB_ENOENT, "index %zu out of range (array has %zu)", *idx,
                   json_array_size(a));
  return 0;
}

/* ---- the operations, on the working copy ------------------------------ */

/* Add `value` (stolen) at p. */
static int do_add(json_t **root, const sb_ctx_ptr *p, const char *path,
                  json_t *value, op_error *e) {
  if (p->ntokens == 0) {
    json_decref(*root);
    *root = value;
    return 0;
  }
  json_t *parent = parent_of(*root, p, path, e);
  if (!parent) goto fail;
  const sb_ctx_ptr_token *last = &p->tokens[p->ntokens - 1];
  if (json_is_object(parent)) {
    if (json_object_setn_new(parent, last->s, last->len, value) != 0) {
      value = NULL; /* jansson releases it on failure */
      op_fail(e, SB_ENOMEM, "could not set member");
      goto fail;
    }
    return 0;
  }
  size_t idx = 0;
  int rc = sb_ctx_ptr_index(last, &idx);
  if (rc == 1)
    idx = json_array_size(parent);
  else if (rc != 0) {
    op_fail(e, SB_EINVAL, "\"%.*s\" is not an array index",
            (int)(last->len < QUOTE_MAX ? last->len : QUOTE_MAX), last->s);
    goto fail;
  } else if (idx > json_array_size(parent)) {
    op_fail(e, SB_ENOENT, "index %zu out of range (array has %zu)", idx,
            json_array_size(parent));
    goto fail;
  }
  if (json_array_insert_new(parent, idx, value) != 0) {
    value = NULL;
    op_fail(e, SB_ENOMEM, "could not insert element");
    goto fail;
  }
  return 0;
fail:
  json_decref(value);
  return e->code;
}

/* Remove the value at p; if `removed` is not NULL it receives it (new
 * reference). */
static int do_remove(json_t *root, const sb_ctx_ptr *p, const char *path,
                     json_t **removed, op_error *e) {
  if (p->ntokens == 0)
    return op_fail(e, SB_EINVAL, "cannot remove the whole document");
  json_t *parent = parent_of(root, p, path, e);
  if (!parent) return e->code;
  const sb_ctx_ptr_token *last = &p->tokens[p->ntokens - 1];
  if (json_is_object(parent)) {
    json_t *v = json_object_getn(parent, last->s, last->len);
    if (!v) return op_fail(e, SB_ENOENT, "path does not exist");
    if (removed) *removed = json_incref(v);
    json_object_deln(parent, last->s, last->len);
    return 0;
  }
  size_t idx = 0;
  if (existing_index(parent, last, &idx, e) != 0) return e->code;
  if (removed) *removed = json_incref(json_array_get(parent, idx));
  json_array_remove(parent, idx);
  return 0;
}

/* Replace the existing value at p with `value` (stolen). */
static int do_replace(json_t **root, const sb_ctx_ptr *p, const char *path,
                      json_t *value, op_error *e) {
  if (p->ntokens == 0) return do_add(root, p, path, value, e);
  if (!ctx_ptr_walk(*root, p, p->ntokens)) {
    json_decref(value);
    return op_fail(e, SB_ENOENT, "path does not exist");
  }
  /* The target exists, so its parent is a container and the token valid. */
  json_t *parent = ctx_ptr_walk(*root, p, p->ntokens - 1);
  const sb_ctx_ptr_token *last = &p->tokens[p->ntokens - 1];
  int rc;
  if (json_is_object(parent)) {
    rc = json_object_setn_new(parent, last->s, last->len, value);
  } else {
    size_t idx = 0;
    sb_ctx_ptr_index(last, &idx);
    rc = json_array_set_new(parent, idx, value);
  }
  return rc == 0 ? 0 : op_fail(e, SB_ENOMEM, "could not replace value");
}

/* 1 if pointer a is a proper prefix of pointer b (b is inside a). */
static int is_proper_prefix(const sb_ctx_ptr *a, const sb_ctx_ptr *b) {
  if (a->ntokens >= b->ntokens) return 0;
  for (size_t i = 0; i < a->ntokens; i++)
    if (a->tokens[i].len != b->tokens[i].len ||
        memcmp(a->tokens[i].s, b->tokens[i].s, a->tokens[i].len) != 0)
      return 0;
  return 1;
}

static int same_pointer(const sb_ctx_ptr *a, const sb_ctx_ptr *b) {
  if (a->ntokens != b->ntokens) return 0;
  for (size_t i = 0; i < a->ntokens; i++)
    if (a->tokens[i].len != b->tokens[i].len ||
        memcmp(a->tokens[i].s, b->tokens[i].s, a->tokens[i].len) != 0)
      return 0;
  return 1;
}

/* ---- one op ----------------------------------------------------------- */

/* A string member of op as (text, len), or NULL if absent/not a string. */
static const char *member_string(const json_t *op, const char *name,
                                 size_t *len) {
  json_t *v = json_object_get(op, name);
  if (!json_is_string(v)) return NULL;
  *len = json_string_length(v);
  return json_string_value(v);
}

/* A deep copy of src for a copy op, unless the patch's copies would then
 * pass their budget. */
static json_t *copy_within_budget(const json_t *src, copy_budget *budget,
                                  op_error *e) {
  size_t bytes = json_dumpb(src, NULL, 0, JSON_COMPACT);
  if (bytes > budget->max - budget->used) {
    op_fail(e, SB_ETOOBIG,
            "the patch's copies would add over %zu bytes to the context "
            "(this one %zu, the ones before it %zu)",
            budget->max, bytes, budget->used);
    return NULL;
  }
  budget->used += bytes;
  json_t *copy = json_deep_copy(src);
  if (!copy) op_fail(e, SB_ENOMEM, "out of memory copying value");
  return copy;
}

static int apply_op(json_t **root, const json_t *op, const char *name,
                    const char *path, size_t path_len, copy_budget *budget,
                    op_error *e) {
  int rc;
  sb_ctx_ptr p = {0}, from = {0};
  sb_error perr = {0};
  if (sb_ctx_ptr_parse(path, path_len, &p, &perr) != 0) {
    rc = op_fail(e, perr.code, "%s", perr.msg);
    goto done;
  }
  int needs_value =
      !strcmp(name, "add") || !strcmp(name, "replace") || !strcmp(name, "test");
  int needs_from = !strcmp(name, "move") || !strcmp(name, "copy");
  json_t *value = json_object_get(op, "value");
  if (needs_value && !value) {
    rc = op_fail(e, SB_EINVAL, "missing \"value\"");
    goto done;
  }
  const char *from_text = NULL;
  size_t from_len = 0;
  if (needs_from) {
    if (!json_object_get(op, "from")) {
      rc = op_fail(e, SB_EINVAL, "missing \"from\"");
      goto done;
    }
    from_text = member_string(op, "from", &from_len);
    if (!from_text) {
      rc = op_fail(e, SB_EINVAL, "\"from\" must be a string");
      goto done;
    }
    if (sb_ctx_ptr_parse(from_text, from_len, &from, &perr) != 0) {
      rc = op_fail(e, perr.code, "from: %s", perr.msg);
      goto done;
    }
  }

  if (!strcmp(name, "add") || !strcmp(name, "replace")) {
    json_t *copy = json_deep_copy(value);
    if (!copy) {
      rc = op_fail(e, SB_ENOMEM, "out of memory copying value");
      goto done;
    }
    rc = name[0] == 'a' ? do_add(root, &p, path, copy, e)
                        : do_replace(root, &p, path, copy, e);
  } else if (!strcmp(name, "remove")) {
    rc = do_remove(*root, &p, path, NULL, e);
  } else if (!strcmp(name, "test")) {
    json_t *cur = ctx_ptr_walk(*root, &p, p.ntokens);
    if (!cur)
      rc = op_fail(e, SB_ENOENT, "path does not exist");
    else if (!sb_ctx_json_equal(cur, value))
      rc = op_fail(e, SB_ECONFLICT, "test failed: value differs");
    else
      rc = 0;
  } else if (!strcmp(name, "move")) {
    if (!ctx_ptr_walk(*root, &from, from.ntokens)) {
      rc = op_fail(e, SB_ENOENT, "from %.*s does not exist",
                   (int)(from_len < QUOTE_MAX ? from_len : QUOTE_MAX),
                   from_text);
    } else if (is_proper_prefix(&from, &p)) {
      rc = op_fail(
          e, SB_EINVAL, "cannot move %.*s into one of its own children",
          (int)(from_len < QUOTE_MAX ? from_len : QUOTE_MAX), from_text);
    } else if (same_pointer(&from, &p)) {
      rc = 0; /* moving a value onto itself changes nothing */
    } else {
      json_t *moved = NULL;
      rc = do_remove(*root, &from, from_text, &moved, e);
      if (rc == 0) rc = do_add(root, &p, path, moved, e);
    }
  } else if (!strcmp(name, "copy")) {
    json_t *src = ctx_ptr_walk(*root, &from, from.ntokens);
    json_t *copy = src ? copy_within_budget(src, budget, e) : NULL;
    if (!src)
      rc = op_fail(e, SB_ENOENT, "from %.*s does not exist",
                   (int)(from_len < QUOTE_MAX ? from_len : QUOTE_MAX),
                   from_text);
    else if (!copy)
      rc = e->code;
    else
      rc = do_add(root, &p, path, copy, e);
  } else {
    rc = op_fail(e, SB_EINVAL,
                 "unknown op (expected add, remove, replace, move, copy or "
                 "test)");
  }
done:
  sb_ctx_ptr_free(&p);
  sb_ctx_ptr_free(&from);
  return rc;
}

int sb_ctx_patch_apply(const json_t *doc, const json_t *patch, json_t **out,
                       sb_error *err) {
  return sb_ctx_patch_apply_within(doc, patch, SB_CTX_PATCH_COPY_MAX, out,
                                   err);
}

int sb_ctx_patch_apply_within(const json_t *doc, const json_t *patch,
                              size_t max_copy_bytes, json_t **out,
                              sb_error *err) {
  *out = NULL;
  if (!doc) return sb_error_set(err, SB_EINVAL, "patch: no document");
  if (!json_is_array(patch))
    return sb_error_set(err, SB_EINVAL,
                        "patch: expected an array of operations");
  json_t *work = json_deep_copy(doc);
  if (!work) return sb_error_set(err, SB_ENOMEM, "patch: out of memory");
  op_error e = {0};
  copy_budget budget = {.max = max_copy_bytes};
  int rc = SB_EINVAL;
  for (size_t i = 0; i < json_array_size(patch); i++) {
    const json_t *op = json_array_get(patch, i);
    if (!json_is_object(op)) {
      sb_error_set(err, SB_EINVAL, "patch[%zu]: expected an object", i);
      goto fail;
    }
    size_t name_len = 0, path_len = 0;
    const char *name = member_string(op, "op", &name_len);
    if (!name) {
      sb_error_set(err, SB_EINVAL, "patch[%zu]: %s", i,
                   json_object_get(op, "op") ? "\"op\" must be a string"
                                             : "missing \"op\"");
      goto fail;
    }
    int qn = (int)(name_len < 40 ? name_len : 40);
    const char *path = member_string(op, "path", &path_len);
    if (!path) {
      sb_error_set(err, SB_EINVAL, "patch[%zu] %.*s: %s", i, qn, name,
                   json_object_get(op, "path") ? "\"path\" must be a string"
                                               : "missing \"path\"");
      goto fail;
    }
    if (strlen(name) != name_len) name = "?"; /* embedded NUL: no known op */
    if (apply_op(&work, op, name, path, path_len, &budget, &e) != 0) {
      int qp = (int)(path_len < QUOTE_MAX ? path_len : QUOTE_MAX);
      rc = e.code;
      sb_error_set(err, e.code, "patch[%zu] %.*s %s%.*s: %s", i, qn, name,
                   path_len ? "" : "\"\"", qp, path, e.why);
      goto fail;
    }
  }
  *out = work;
  return 0;
fail:
  json_decref(work);
  return rc;
}
