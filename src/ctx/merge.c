/* merge.c: RFC 7386 JSON Merge Patch, the "just send me the fields you
 * changed" form clients find easiest to write.
 *
 * The RFC's algorithm is recursive over the patch only, so the work is
 * bounded by the size of the patch plus one copy of the target.
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
