/* fuzz_ctx_patch.c: libFuzzer target for the context algorithms over
 * arbitrary (document, patch) pairs: JSON Patch apply (src/ctx/patch.c),
 * diff (diff.c), merge patch (merge.c) and validation (validate.c).
 *
 * Input: a JSON document, a newline, a JSON patch. Beyond crashes, leaks
 * and UB, the invariants below turn wrong answers into crashes: inputs are
 * never modified, failures leave no result and say why, diff round-trips,
 * a merge patch is idempotent, and filling defaults into a valid context
 * changes nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "ctx/ctx.h"

static void check(int cond) {
  if (!cond) abort();
}

static json_t *load(const uint8_t *data, size_t size) {
  return json_loadb((const char *)data, size,
                    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                    NULL);
}

/* apply(from, diff(from, to)) must equal to. */
static void check_diff(const json_t *from, const json_t *to) {
  json_t *patch = NULL, *back = NULL;
  check(sb_ctx_diff(from, to, &patch, NULL) == 0);
  sb_error err = {0};
  check(sb_ctx_patch_apply(from, patch, &back, &err) == 0);
  check(json_equal(back, to));
  if (json_equal(from, to)) check(json_array_size(patch) == 0);
  json_decref(back);
  json_decref(patch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int initialised;
  if (!initialised) {
    sb_core_init();
    initialised = 1;
  }
  const uint8_t *nl = memchr(data, '\n', size);
  if (!nl) return 0;
  json_t *doc = load(data, (size_t)(nl - data));
  json_t *patch = load(nl + 1, size - (size_t)(nl - data) - 1);
  if (!doc || !patch) goto done;
  json_t *doc_before = json_deep_copy(doc),
         *patch_before = json_deep_copy(patch);

  /* JSON Patch */
  json_t *out = (json_t *)1;
  sb_error err = {0};
  int rc = sb_ctx_patch_apply(doc, patch, &out, &err);
  check(json_equal(doc, doc_before) && json_equal(patch, patch_before));
  if (rc != 0) {
    check(!out && err.code == rc && err.msg[0]);
    check(rc == SB_EINVAL || rc == SB_ENOENT || rc == SB_ECONFLICT);
  } else {
    check(out != NULL);
    check_diff(doc, out);
    check_diff(out, doc);
    json_decref(out);
  }

  /* Merge patch: idempotent, inputs untouched */
  json_t *merged = NULL, *again = NULL;
  check(sb_ctx_merge_apply(doc, patch, &merged, NULL) == 0);
  check(sb_ctx_merge_apply(merged, patch, &again, NULL) == 0);
  check(json_equal(merged, again));
  check(json_equal(doc, doc_before) && json_equal(patch, patch_before));
  json_decref(merged);
  json_decref(again);

  /* Validation never crashes; a valid context is already complete. */
  memset(&err, 0, sizeof err);
  rc = sb_ctx_validate(doc, &err);
  check(rc == 0 || (rc == SB_EINVAL && err.msg[0]));
  if (json_is_object(doc)) {
    json_t *filled = sb_ctx_fill_defaults(doc);
    check(filled != NULL);
    if (rc == 0) check(json_equal(filled, doc));
    sb_ctx_validate(filled, NULL);
    sb_ctx_validate_data(json_object_get(filled, "data"), NULL);
    json_decref(filled);
  }
  json_decref(doc_before);
  json_decref(patch_before);
done:
  json_decref(doc);
  json_decref(patch);
  return 0;
}
