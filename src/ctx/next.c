/* next.c: an update's next version, made on the thread pool.
 *
 * From the head (a document, or its text as the store returned it):
 * apply the caller's patch, put the server-owned fields back, validate the
 * whole document, diff it against the head and serialise both, as the
 * store keeps them. Pure JSON work: no store, no manager state.
 *
 * A merge patch on a head the job holds alone (parsed here, or taken out
 * of the manager's cache with its only reference) is applied to the head
 * itself, and the diff made from the members it changed (ctx_edits),
 * instead of to a deep copy with a diff of both whole documents. Nodes the
 * job changes, or whose references it takes or drops, must have no other
 * reference: a node shared with a document another thread holds would see
 * two threads change its reference count at once (the race that had the
 * shared merge patch reverted). in_place checks that before it starts, and
 * everything that may share nodes (the document on failure, the old
 * values) is released on the loop thread.
 */
#include <string.h>

#include "ctx/ctx_internal.h"
#include "store/store.h"

char *ctx_doc_dump(const json_t *doc) {
  return sb_json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
}

int ctx_doc_check_size(const char *text, size_t max_bytes, size_t slack,
                       sb_error *err) {
  size_t len = strlen(text);
  if (len <= max_bytes + slack) return 0;
  if (slack)
    return sb_error_set(err, SB_ETOOBIG,
                        "the context would be %zu bytes, over the limit of "
                        "%zu (contexts.max_bytes) even with the %zu a run's "
                        "failure may pass it by",
                        len, max_bytes, slack);
  return sb_error_set(err, SB_ETOOBIG,
                      "the context would be %zu bytes, over the limit of %zu "
                      "(contexts.max_bytes)",
                      len, max_bytes);
}

json_t *ctx_doc_load(const char *text, sb_error *err) {
  json_error_t jerr;
  json_t *doc = sb_json_loadb(text, strlen(text), 0, &jerr);
  if (!doc) sb_error_set(err, SB_EIO, "store: corrupt document: %s", jerr.text);
  return doc;
}

/* What a block of n bytes takes: sb_malloc's 16-byte size header (core/
 * alloc.c: jansson allocates through it), then malloc's rounding, taken
 * as glibc's (8 bytes of header, 16-byte steps, 32 at least); jemalloc,
 * which the server links by default, has no header but size classes of
 * 16-byte steps at these sizes, so it comes out the same or a little
 * less. */
static size_t chunk(size_t n) {
  n = (n + 16 + 8 + 15) & ~(size_t)15;
  return n < 32 ? 32 : n;
}

/* The smallest power of two at least n and at least `least`: the tables
 * of jansson's arrays and objects grow by doubling. */
static size_t doubled(size_t n, size_t least) {
  size_t cap = least;
  while (cap < n) cap *= 2;
  return cap;
}

/* jansson 2.14's allocations, in bytes before malloc's own: a value's
 * struct (its type and reference count, then its payload), an array's
 * table of pointers, an object's hashtable (two list pointers a bucket)
 * and each member's pair (hash, two list links, value, key length, the
 * key). */
enum {
  W_SCALAR = 24, /* json_integer_t, json_real_t */
  W_STRING = 32, /* json_string_t; the text apart */
  W_ARRAY = 40,  /* json_array_t; the table apart */
  W_OBJECT = 72, /* json_object_t with its hashtable_t */
  W_PAIR = 57,   /* pair_t before its key */
};

/* The estimated heap a parsed value takes, its children's included. The
 * depth is bounded by the parser and validation (max_json_depth), so
 * recursion is safe. A node shared by two documents counts in each. */
static size_t weigh(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    size_t n = json_object_size(v);
    size_t w = chunk(W_OBJECT) + chunk(doubled(n, 8) * 2 * sizeof(void *));
    const char *key;
    json_t *member;
    json_object_foreach((json_t *)v, key, member)
      w += chunk(W_PAIR + strlen(key)) + weigh(member);
    return w;
  }
  case JSON_ARRAY: {
    size_t n = json_array_size(v);
    size_t w = chunk(W_ARRAY) + chunk(doubled(n, 8) * sizeof(void *));
    for (size_t i = 0; i < n; i++)
      w += weigh(json_array_get(v, i));
    return w;
  }
  case JSON_STRING:
    return chunk(W_STRING) + chunk(json_string_length(v) + 1);
  case JSON_INTEGER:
  case JSON_REAL: return chunk(W_SCALAR);
  default: return 0; /* true, false, null: jansson's singletons */
  }
}

size_t ctx_doc_weight(const json_t *doc) { return doc ? weigh(doc) : 0; }

/* expires_ms for the store from metadata.expiresAt (validated already). */
int64_t ctx_doc_expiry(const json_t *doc) {
  int64_t ms = 0;
  const char *s = json_string_value(
      json_object_get(json_object_get(doc, "metadata"), "expiresAt"));
  if (s && sb_time_parse(s, &ms) == 0) return ms > 0 ? ms : 1;
  return 0;
}

void ctx_next_clear(ctx_next *nx) {
  ctx_edits_clear(&nx->edits);
  json_decref(nx->head);
  sb_free(nx->head_text);
  json_decref(nx->next);
  sb_free(nx->text);
  sb_free(nx->diff_text);
  memset(nx, 0, sizeof *nx);
}

/* Fields an update may not change: their values in the head (borrowed),
 * compared with the next version's. version and timestamp are set by
 * switchboard after the patch: a patch that names them is refused rather
 * than silently overruled (the version an update is made on is said with
 * If-Match, or the tools' expectedVersion). */
static const char *const fixed_fields[] = {
    "id", "tenantId", "workflowId", "sessionId", "version", "timestamp"};
#define N_FIXED (sizeof fixed_fields / sizeof fixed_fields[0])

static int check_immutable(json_t *const before[N_FIXED], const json_t *next,
                           sb_error *err) {
  for (size_t i = 0; i < N_FIXED; i++) {
    json_t *b = json_object_get(next, fixed_fields[i]);
    if (!b || !json_equal(before[i], b))
      return sb_error_set(err, SB_EINVAL, "%s: cannot be changed by an update",
                          fixed_fields[i]);
  }
  return 0;
}

/* Whether the next version can be made in the head itself: a merge patch
 * (an object) on a head this job holds alone, whose nodes the patch
 * changes have no other reference either (see the top of the file). */
static int in_place(const ctx_next *nx, json_t *const before[N_FIXED]) {
  const json_t *head = nx->head;
  if (!nx->own || nx->kind != SB_CTX_MERGE_PATCH ||
      !json_is_object(nx->patch) || !json_is_object(head))
    return 0;
  for (size_t i = 0; i < N_FIXED; i++)
    if (json_is_object(before[i])) return 0; /* merging could change it */
  static const char *const set[] = {"version", "timestamp"};
  for (size_t i = 0; i < 2; i++) {
    json_t *v = json_object_get(head, set[i]);
    if (v && !ctx_sole(v)) return 0;
  }
  return ctx_merge_in_place_ok(head, nx->patch);
}

void ctx_next_make(ctx_next *nx) {
  sb_error *err = &nx->err;
  json_t *next = NULL, *diff = NULL;
  int64_t expected = nx->expected;
  int rc;
  if (!nx->head) {
    if (!(nx->head = ctx_doc_load(nx->head_text, err))) {
      nx->rc = err->code;
      return;
    }
    nx->own = 1; /* parsed here: no one else has it */
  }
  json_t *head = nx->head;
  int64_t head_version = json_integer_value(json_object_get(head, "version"));
  if (head_version != expected) {
    nx->current = head_version;
    nx->rc = sb_error_set(err, SB_ECONFLICT, SB_STORE_VERSION_CONFLICT, nx->id,
                          (long long)head_version, (long long)expected);
    return;
  }
  /* A failure's write: how large the head is, before it may change. */
  size_t head_bytes = 0;
  if (nx->slack_bytes)
    head_bytes = nx->head_text ? strlen(nx->head_text)
                               : sb_json_dumpb(head, NULL, 0,
                                               JSON_COMPACT | JSON_SORT_KEYS);
  json_t *before[N_FIXED];
  for (size_t i = 0; i < N_FIXED; i++)
    before[i] = json_object_get(head, fixed_fields[i]);
  int inplace = in_place(nx, before);
  if (inplace) {
    /* The head becomes the next version; the members replaced stay alive
     * in the log (so `before` stays valid), released on the loop. */
    next = head;
    nx->head = NULL;
    if (ctx_merge_in_place(next, nx->patch, &nx->edits) != 0) {
      rc = sb_error_set(err, SB_ENOMEM, "merge patch: out of memory");
      goto done;
    }
    rc = 0;
  } else {
    rc = nx->kind == SB_CTX_JSON_PATCH
             ? sb_ctx_patch_apply_within(head, nx->patch, nx->max_doc_bytes,
                                         &next, err)
             : sb_ctx_merge_apply(head, nx->patch, &next, err);
    /* A path the patch names that is not there: the update is invalid,
     * the context is still found. */
    if (rc == SB_ENOENT) rc = err->code = SB_EINVAL;
  }
  if (rc != 0) goto done;
  if (!json_is_object(next)) {
    rc = sb_error_set(err, SB_EINVAL, "the patch must leave an object");
    goto done;
  }
  if ((rc = check_immutable(before, next, err)) != 0) goto done;
  char ts[32];
  nx->now = (int64_t)sb_wall_ms();
  sb_time_format(nx->now, ts);
  json_t *version = json_integer(expected + 1), *stamp = json_string(ts);
  if (inplace) {
    int set = ctx_set_in_place(next, "version", version, &nx->edits);
    if (ctx_set_in_place(next, "timestamp", stamp, &nx->edits) != 0 || set)
      rc = sb_error_set(err, SB_ENOMEM, "out of memory");
  } else {
    json_object_set_new(next, "version", version);
    json_object_set_new(next, "timestamp", stamp);
  }
  if (rc != 0) goto done;
  if ((rc = sb_ctx_validate(next, err)) != 0) goto done;
  if (inplace) {
    if (ctx_diff_edits(&nx->edits, &diff) != 0)
      rc = sb_error_set(err, SB_ENOMEM, "diff: out of memory");
  } else {
    rc = sb_ctx_diff(head, next, &diff, err);
  }
  if (rc != 0) goto done;
  nx->text = ctx_doc_dump(next);
  nx->diff_text = sb_json_dumps(diff, JSON_COMPACT);
  if (!nx->text || !nx->diff_text) {
    rc = sb_error_set(err, SB_ENOMEM, "out of memory");
    goto done;
  }
  rc = ctx_doc_check_size(nx->text, nx->max_doc_bytes, nx->slack_bytes, err);
  if (rc == SB_ETOOBIG && strlen(nx->text) <= head_bytes + 1) {
    /* A context already past the limit and slack (contexts.max_bytes
     * lowered since it was written) may still record a failure that does
     * not make it larger, but for a version number one digit longer. */
    rc = 0;
    *err = (sb_error){0};
  }
  if (rc != 0) goto done;
  nx->snapshot = (expected + 1) % nx->snapshot_every == 0;
  nx->expires = ctx_doc_expiry(next);
  nx->weight = ctx_doc_weight(next); /* here, off the loop */
  nx->next = next;
  next = NULL;
done:
  json_decref(diff);
  if (inplace && next)
    nx->next = next; /* freed on the loop (next_clear): nodes the patch
                        left alone may be shared with the loop's documents */
  else
    json_decref(next);
  nx->rc = rc;
}
