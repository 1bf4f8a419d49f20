/* manager.c: versioned, tenant-isolated contexts on top of the store.
 *
 * A write is: read the head, apply the caller's patch, put the server-owned
 * fields back, validate the whole document, diff it against the head, and
 * append it as the next version only if the head has not moved (the store
 * checks that in the same transaction). Reading an old version starts from
 * the newest snapshot at or below it and replays at most snapshot_every-1
 * patches, so any version is cheap to read.
 */
#include <string.h>

#include "ctx/ctx.h"
#include "store/store.h"

#define DEFAULT_SNAPSHOT_EVERY 32
#define DEFAULT_TTL_MS (7LL * 24 * 3600 * 1000)

struct sb_ctx_manager {
  sb_store *store;
  int snapshot_every;
  int64_t default_ttl_ms;
  sb_ctx_change_cb on_change;
  void *on_change_ud;
};

sb_ctx_manager *sb_ctx_manager_new(const sb_ctx_manager_options *o) {
  sb_ctx_manager *m = sb_calloc(1, sizeof *m);
  if (!m) return NULL;
  m->store = o->store;
  m->snapshot_every = o->snapshot_every > 0 ? o->snapshot_every
                                            : DEFAULT_SNAPSHOT_EVERY;
  m->default_ttl_ms = o->default_ttl_ms > 0 ? o->default_ttl_ms : DEFAULT_TTL_MS;
  return m;
}

void sb_ctx_manager_free(sb_ctx_manager *m) { sb_free(m); }

void sb_ctx_manager_on_change(sb_ctx_manager *m, sb_ctx_change_cb cb,
                              void *ud) {
  m->on_change = cb;
  m->on_change_ud = ud;
}

static void changed(sb_ctx_manager *m, const char *tenant, const char *id,
                    int64_t version) {
  if (m->on_change) m->on_change(m->on_change_ud, tenant, id, version);
}

static char *dump(const json_t *doc) {
  return json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
}

static json_t *load(const char *text, sb_error *err) {
  json_error_t jerr;
  json_t *doc = json_loads(text, 0, &jerr);
  if (!doc) sb_error_set(err, SB_EIO, "store: corrupt document: %s", jerr.text);
  return doc;
}

/* expires_ms for the store from metadata.expiresAt (validated already). */
static int64_t expiry_of(const json_t *doc) {
  int64_t ms = 0;
  const char *s = json_string_value(
      json_object_get(json_object_get(doc, "metadata"), "expiresAt"));
  if (s && sb_time_parse(s, &ms) == 0) return ms > 0 ? ms : 1;
  return 0;
}

static int valid_id(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > 128) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return 0;
  }
  return 1;
}

static int check_id(const char *id, sb_error *err) {
  /* A malformed id cannot exist: answer like any unknown id. */
  if (!valid_id(id)) return sb_error_set(err, SB_ENOENT, "context not found");
  return 0;
}

int sb_ctx_create(sb_ctx_manager *m, const char *tenant, const json_t *input,
                  json_t **out, sb_error *err) {
  *out = NULL;
  if (input && !json_is_object(input))
    return sb_error_set(err, SB_EINVAL, "context: expected an object");
  static const char *const server_owned[] = {"id", "version", "timestamp"};
  for (size_t i = 0; i < 3; i++)
    if (json_object_get(input, server_owned[i]))
      return sb_error_set(err, SB_EINVAL,
                          "%s: set by the server, must not be given",
                          server_owned[i]);
  const char *given_tenant =
      json_string_value(json_object_get(input, "tenantId"));
  if (json_object_get(input, "tenantId") &&
      (!given_tenant || strcmp(given_tenant, tenant) != 0))
    return sb_error_set(err, SB_EINVAL,
                        "tenantId: must be omitted (it is the caller's "
                        "tenant)");
  json_t *doc = sb_ctx_fill_defaults(input);
  if (!doc) return sb_error_set(err, SB_ENOMEM, "out of memory");
  int64_t now = (int64_t)sb_wall_ms();
  char id[37], ts[32];
  sb_uuid_v7(id);
  sb_time_format(now, ts);
  json_object_set_new(doc, "id", json_string(id));
  json_object_set_new(doc, "tenantId", json_string(tenant));
  json_object_set_new(doc, "version", json_integer(1));
  json_object_set_new(doc, "timestamp", json_string(ts));
  json_t *meta = json_object_get(doc, "metadata");
  if (json_is_object(meta) && !json_object_get(meta, "expiresAt")) {
    char exp[32];
    sb_time_format(now + m->default_ttl_ms, exp);
    json_object_set_new(meta, "expiresAt", json_string(exp));
  }
  int rc = sb_ctx_validate(doc, err);
  if (rc != 0) goto done;
  char *text = dump(doc);
  if (!text) {
    rc = sb_error_set(err, SB_ENOMEM, "out of memory");
    goto done;
  }
  sb_store_record r = {
      .id = id,
      .workflow_id = (char *)json_string_value(json_object_get(doc, "workflowId")),
      .session_id = (char *)json_string_value(json_object_get(doc, "sessionId")),
      .created_ms = now,
      .expires_ms = expiry_of(doc),
      .doc = text};
  rc = sb_store_create(m->store, tenant, &r, err);
  sb_free(text);
  if (rc == 0) {
    *out = json_incref(doc);
    changed(m, tenant, id, 1);
  }
done:
  json_decref(doc);
  return rc;
}

/* Rebuild version n from its chain: snapshot, then patches in order. */
static int rebuild(sb_ctx_manager *m, const char *tenant, const char *id,
                   int64_t n, json_t **out, sb_error *err) {
  sb_store_versions chain;
  int rc = sb_store_version_chain(m->store, tenant, id, n,
                                  (int64_t)sb_wall_ms(), &chain, err);
  if (rc != 0) return rc;
  json_t *doc = load(chain.items[0].snapshot ? chain.items[0].snapshot : "",
                     err);
  for (size_t i = 1; doc && i < chain.len; i++) {
    json_error_t jerr;
    json_t *patch = json_loads(chain.items[i].patch ? chain.items[i].patch : "",
                               0, &jerr);
    json_t *next = NULL;
    if (!patch || sb_ctx_patch_apply(doc, patch, &next, err) != 0) {
      sb_error_set(err, SB_EIO, "store: version %lld of %s does not replay",
                   (long long)chain.items[i].version, id);
      json_decref(doc);
      doc = NULL;
    } else {
      json_decref(doc);
      doc = next;
    }
    json_decref(patch);
  }
  sb_store_versions_clear(&chain);
  if (!doc) return err && err->code ? err->code : SB_EIO;
  *out = doc;
  return 0;
}

int sb_ctx_get(sb_ctx_manager *m, const char *tenant, const char *id,
               int64_t version, json_t **out, sb_error *err) {
  *out = NULL;
  if (check_id(id, err)) return SB_ENOENT;
  if (version < 0)
    return sb_error_set(err, SB_EINVAL, "version: must be 1 or more");
  if (version > 0) return rebuild(m, tenant, id, version, out, err);
  sb_store_record r;
  int rc = sb_store_get(m->store, tenant, id, (int64_t)sb_wall_ms(), &r, err);
  if (rc != 0) return rc;
  *out = load(r.doc, err);
  sb_store_record_clear(&r);
  return *out ? 0 : SB_EIO;
}

int sb_ctx_get_projected(sb_ctx_manager *m, const char *tenant,
                         const char *id, const json_t *paths, json_t **out,
                         sb_error *err) {
  *out = NULL;
  int rc = sb_ctx_paths_validate(paths, err);
  if (rc != 0) return rc;
  json_t *doc = NULL, *proj = NULL, *missing = NULL;
  rc = sb_ctx_get(m, tenant, id, 0, &doc, err);
  if (rc != 0) return rc;
  rc = sb_ctx_project(json_object_get(doc, "data"), paths, &proj, &missing, err);
  if (rc == 0)
    *out = json_pack("{sOsOsoso}", "id", json_object_get(doc, "id"), "version",
                     json_object_get(doc, "version"), "data", proj, "missing",
                     missing);
  json_decref(doc);
  return rc;
}

/* Fields an update may not change: compare old and new. */
static int check_immutable(const json_t *old, const json_t *next,
                           sb_error *err) {
  static const char *const fixed[] = {"id", "tenantId", "workflowId",
                                      "sessionId"};
  for (size_t i = 0; i < 4; i++) {
    json_t *a = json_object_get(old, fixed[i]);
    json_t *b = json_object_get(next, fixed[i]);
    if (!b || !json_equal(a, b))
      return sb_error_set(err, SB_EINVAL, "%s: cannot be changed by an update",
                          fixed[i]);
  }
  return 0;
}

int sb_ctx_update(sb_ctx_manager *m, const char *tenant, const char *id,
                  int64_t expected_version, sb_ctx_patch_kind kind,
                  const json_t *patch, json_t **out, int64_t *current_version,
                  sb_error *err) {
  *out = NULL;
  if (check_id(id, err)) return SB_ENOENT;
  if (expected_version < 1)
    return sb_error_set(err, SB_EINVAL,
                        "expectedVersion: required, the version you read "
                        "(1 or more)");
  json_t *head = NULL, *next = NULL, *diff = NULL;
  char *text = NULL, *diff_text = NULL;
  int rc = sb_ctx_get(m, tenant, id, 0, &head, err);
  if (rc != 0) return rc;
  int64_t head_version = json_integer_value(json_object_get(head, "version"));
  if (head_version != expected_version) {
    if (current_version) *current_version = head_version;
    rc = sb_error_set(err, SB_ECONFLICT,
                      "context %s is at version %lld, not %lld: read it again "
                      "and reapply your change",
                      id, (long long)head_version, (long long)expected_version);
    goto done;
  }
  rc = kind == SB_CTX_JSON_PATCH ? sb_ctx_patch_apply(head, patch, &next, err)
                                 : sb_ctx_merge_apply(head, patch, &next, err);
  if (rc != 0) goto done;
  if (!json_is_object(next)) {
    rc = sb_error_set(err, SB_EINVAL, "the patch must leave an object");
    goto done;
  }
  if ((rc = check_immutable(head, next, err)) != 0) goto done;
  char ts[32];
  int64_t now = (int64_t)sb_wall_ms();
  sb_time_format(now, ts);
  json_object_set_new(next, "version", json_integer(expected_version + 1));
  json_object_set_new(next, "timestamp", json_string(ts));
  if ((rc = sb_ctx_validate(next, err)) != 0) goto done;
  if ((rc = sb_ctx_diff(head, next, &diff, err)) != 0) goto done;
  text = dump(next);
  diff_text = json_dumps(diff, JSON_COMPACT);
  if (!text || !diff_text) {
    rc = sb_error_set(err, SB_ENOMEM, "out of memory");
    goto done;
  }
  int snapshot = (expected_version + 1) % m->snapshot_every == 0;
  rc = sb_store_append(m->store, tenant, id, expected_version, text, diff_text,
                       snapshot ? text : NULL, expiry_of(next), now,
                       current_version, err);
  if (rc == 0) {
    *out = json_incref(next);
    changed(m, tenant, id, expected_version + 1);
  }
done:
  sb_free(text);
  sb_free(diff_text);
  json_decref(diff);
  json_decref(next);
  json_decref(head);
  return rc;
}

int sb_ctx_history(sb_ctx_manager *m, const char *tenant, const char *id,
                   int64_t before, size_t limit, json_t **out, sb_error *err) {
  *out = NULL;
  if (check_id(id, err)) return SB_ENOENT;
  sb_store_versions v;
  int rc = sb_store_history(m->store, tenant, id, before, limit ? limit : 50,
                            (int64_t)sb_wall_ms(), &v, err);
  if (rc != 0) return rc;
  json_t *list = json_array();
  for (size_t i = 0; list && i < v.len; i++) {
    char ts[32];
    sb_time_format(v.items[i].created_ms, ts);
    json_t *patch = v.items[i].patch ? json_loads(v.items[i].patch, 0, NULL)
                                     : json_null();
    json_array_append_new(list, json_pack("{sIssso}", "version",
                                          (json_int_t)v.items[i].version,
                                          "timestamp", ts, "patch",
                                          patch ? patch : json_null()));
  }
  sb_store_versions_clear(&v);
  if (!list) return sb_error_set(err, SB_ENOMEM, "out of memory");
  *out = list;
  return 0;
}

int sb_ctx_diff_versions(sb_ctx_manager *m, const char *tenant,
                         const char *id, int64_t from, int64_t to,
                         json_t **out, sb_error *err) {
  *out = NULL;
  if (from < 1 || to < 1)
    return sb_error_set(err, SB_EINVAL, "versions: must be 1 or more");
  json_t *a = NULL, *b = NULL;
  int rc = sb_ctx_get(m, tenant, id, from, &a, err);
  if (rc == 0) rc = sb_ctx_get(m, tenant, id, to, &b, err);
  if (rc == 0) rc = sb_ctx_diff(a, b, out, err);
  json_decref(a);
  json_decref(b);
  return rc;
}

int sb_ctx_sweep(sb_ctx_manager *m, sb_error *err) {
  int total = 0, n;
  /* Bounded batches keep each transaction (and the loop) short. */
  do {
    n = sb_store_sweep_expired(m->store, (int64_t)sb_wall_ms(), 500, err);
    if (n < 0) return n;
    total += n;
  } while (n == 500 && total < 100000);
  return total;
}
