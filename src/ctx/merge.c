/* merge.c: RFC 7386 JSON Merge Patch, the "just send me the fields you
 * changed" form clients find easiest to write.
 *
 * The RFC's algorithm is recursive over the patch only, so the work is
 * bounded by the size of the patch plus one copy of the target; applied in
 * place (ctx_merge_in_place, on a document its caller holds alone), by the
 * size of the patch alone.
 */
#include <string.h>

#include "ctx/ctx_internal.h"

/* MergePatch(target, patch) of RFC 7386 section 2, in place on `target`
 * (owned by the call, may be NULL when the member is absent). Returns the
 * result (new reference) or NULL on ENOMEM. */
static json_t *merge(json_t *target, const json_t *patch) {
  if (!json_is_object(patch)) {
    json_decref(target);
    return json_deep_copy(patch);
  }
  if (!json_is_object(target)) {
    json_decref(target);
    target = json_object();
    if (!target) return NULL;
  }
  const char *key;
  size_t key_len;
  json_t *value;
  json_object_keylen_foreach((json_t *)patch, key, key_len, value) {
    if (json_is_null(value)) {
      json_object_deln(target, key, key_len);
      continue;
    }
    json_t *child = json_incref(json_object_getn(target, key, key_len));
    json_t *merged = merge(child, value);
    if (!merged || json_object_setn_new(target, key, key_len, merged) != 0) {
      json_decref(target);
      return NULL;
    }
  }
  return target;
}

int sb_ctx_merge_apply(const json_t *target, const json_t *patch, json_t **out,
                       sb_error *err) {
  *out = NULL;
  if (!patch) return sb_error_set(err, SB_EINVAL, "merge patch: no patch");
  json_t *work = NULL;
  if (target && json_is_object(patch)) {
    work = json_deep_copy(target);
    if (!work) goto nomem;
  }
  *out = merge(work, patch);
  if (!*out) goto nomem;
  return 0;
nomem:
  return sb_error_set(err, SB_ENOMEM, "merge patch: out of memory");
}

/* ---- in place --------------------------------------------------------- */

int ctx_sole(const json_t *v) {
  size_t refs = __atomic_load_n(&v->refcount, __ATOMIC_ACQUIRE);
  return refs == 1 || refs == (size_t)-1;
}

int ctx_merge_in_place_ok(const json_t *doc, const json_t *patch) {
  const char *key;
  size_t key_len;
  json_t *value;
  json_object_keylen_foreach((json_t *)patch, key, key_len, value) {
    json_t *old = json_object_getn(doc, key, key_len);
    if (!old) continue;
    if (!ctx_sole(old)) return 0;
    if (json_is_object(value) && json_is_object(old) &&
        !ctx_merge_in_place_ok(old, value))
      return 0;
  }
  return 1;
}

/* Log parent's member key (its old value, a reference, or NULL) and set it
 * to value (taken; NULL removes it). */
static int edit(ctx_edits *log, json_t *parent, const char *key, size_t key_len,
                const sb_buf *path, json_t *value) {
  if (log->len == log->cap) {
    size_t cap = log->cap ? 2 * log->cap : 8;
    ctx_edit *items = sb_realloc(log->items, cap * sizeof *items);
    if (!items) goto nomem;
    log->items = items;
    log->cap = cap;
  }
  ctx_edit *e = &log->items[log->len];
  *e = (ctx_edit){.parent = parent, .key_len = key_len};
  e->key = sb_strndup(key, key_len);
  e->path = sb_strndup(path->data ? path->data : "", path->len);
  if (!e->key || !e->path) {
    sb_free(e->key);
    sb_free(e->path);
    goto nomem;
  }
  e->old = json_incref(json_object_getn(parent, key, key_len));
  log->len++;
  if (!value) {
    json_object_deln(parent, key, key_len);
    return 0;
  }
  return json_object_setn_new(parent, key, key_len, value) == 0 ? 0 : SB_ENOMEM;
nomem:
  json_decref(value);
  return SB_ENOMEM;
}

static int merge_in_place(json_t *target, const json_t *patch, sb_buf *path,
                          ctx_edits *log) {
  const char *key;
  size_t key_len;
  json_t *value;
  json_object_keylen_foreach((json_t *)patch, key, key_len, value) {
    size_t saved = path->len;
    if (sb_ctx_ptr_append(path, key, key_len) != 0) return SB_ENOMEM;
    json_t *old = json_object_getn(target, key, key_len);
    int rc = 0;
    if (json_is_object(value) && json_is_object(old))
      rc = merge_in_place(old, value, path, log);
    else if (json_is_null(value))
      rc = old ? edit(log, target, key, key_len, path, NULL) : 0;
    else {
      /* merge({}, value): a copy of value without its null members */
      json_t *fresh = merge(NULL, value);
      rc = fresh ? edit(log, target, key, key_len, path, fresh) : SB_ENOMEM;
    }
    path->len = saved;
    if (path->data) path->data[saved] = '\0';
    if (rc != 0) return rc;
  }
  return 0;
}

int ctx_merge_in_place(json_t *doc, const json_t *patch, ctx_edits *log) {
  sb_buf path = SB_BUF_INIT;
  int rc = merge_in_place(doc, patch, &path, log);
  sb_buf_free(&path);
  return rc;
}

int ctx_set_in_place(json_t *doc, const char *key, json_t *value,
                     ctx_edits *log) {
  size_t key_len = strlen(key);
  for (size_t i = 0; i < log->len; i++) {
    ctx_edit *e = &log->items[i];
    if (e->parent == doc && e->key_len == key_len &&
        memcmp(e->key, key, key_len) == 0)
      /* logged already: the value replaced is this update's own */
      return json_object_setn_new(doc, key, key_len, value) == 0 ? 0
                                                                 : SB_ENOMEM;
  }
  sb_buf path = SB_BUF_INIT;
  int rc = sb_ctx_ptr_append(&path, key, key_len);
  if (rc == 0)
    rc = edit(log, doc, key, key_len, &path, value);
  else
    json_decref(value);
  sb_buf_free(&path);
  return rc;
}

void ctx_edits_clear(ctx_edits *log) {
  for (size_t i = 0; i < log->len; i++) {
    json_decref(log->items[i].old);
    sb_free(log->items[i].key);
    sb_free(log->items[i].path);
  }
  sb_free(log->items);
  *log = (ctx_edits){0};
}
