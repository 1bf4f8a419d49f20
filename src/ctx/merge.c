/* merge.c: RFC 7386 JSON Merge Patch, the "just send me the fields you
 * changed" form clients find easiest to write.
 *
 * The RFC's algorithm is recursive over the patch only, so the work is
 * bounded by the size of the patch plus one copy of the target — or, in
 * the shared form the context manager uses, by the size of the patch and
 * of the objects on its paths: the result copies only those and shares
 * every other member with the target (both then stay unmodified: the
 * manager's documents are never changed once made).
 */
#include "ctx/ctx.h"

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

/* A shallow copy of object o (its members shared), or NULL on ENOMEM.
 * Not json_copy: it drops the members it fails to add and still returns. */
static json_t *copy_members(const json_t *o) {
  json_t *out = json_object();
  const char *key;
  size_t key_len;
  json_t *value;
  json_object_keylen_foreach((json_t *)o, key, key_len, value) {
    if (!out) break;
    if (json_object_setn_new_nocheck(out, key, key_len, json_incref(value))) {
      json_decref(out);
      out = NULL;
    }
  }
  return out;
}

/* MergePatch(target, patch) without touching target (borrowed, may be
 * NULL): objects on the patch's paths are shallow copies, every member the
 * patch leaves alone is shared. New reference, or NULL on ENOMEM. */
static json_t *merge_shared(const json_t *target, const json_t *patch) {
  if (!json_is_object(patch)) return json_deep_copy(patch);
  json_t *out = json_is_object(target) ? copy_members(target) : json_object();
  if (!out) return NULL;
  const char *key;
  size_t key_len;
  json_t *value;
  json_object_keylen_foreach((json_t *)patch, key, key_len, value) {
    if (json_is_null(value)) {
      json_object_deln(out, key, key_len);
      continue;
    }
    json_t *merged = merge_shared(json_object_getn(out, key, key_len), value);
    if (!merged || json_object_setn_new(out, key, key_len, merged) != 0) {
      json_decref(out);
      return NULL;
    }
  }
  return out;
}

int sb_ctx_merge_apply_shared(const json_t *target, const json_t *patch,
                              json_t **out, sb_error *err) {
  *out = NULL;
  if (!patch) return sb_error_set(err, SB_EINVAL, "merge patch: no patch");
  if (!(*out = merge_shared(target, patch)))
    return sb_error_set(err, SB_ENOMEM, "merge patch: out of memory");
  return 0;
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
