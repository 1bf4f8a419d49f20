/* store.c: the backend-neutral face of the store. Calls go through the
 * backend's vtable; arguments every backend would check are checked here
 * once (a tenant is always required). */
#include "store/store_internal.h"

#include <string.h>

static int need_tenant(const char *tenant, sb_error *err) {
  if (!tenant || !*tenant)
    return sb_error_set(err, SB_EINVAL, "store: a tenant is required");
  return 0;
}

void sb_store_close(sb_store *st) {
  if (st) st->ops->close(st);
}

int sb_store_schema_version(sb_store *st) { return st->ops->schema_version(st); }

int sb_store_create(sb_store *st, const char *tenant, const sb_store_record *r,
                    sb_error *err) {
  if (need_tenant(tenant, err)) return SB_EINVAL;
  return st->ops->create(st, tenant, r, err);
}

int sb_store_get(sb_store *st, const char *tenant, const char *id,
                 int64_t now_ms, sb_store_record *out, sb_error *err) {
  memset(out, 0, sizeof *out);
  if (need_tenant(tenant, err)) return SB_EINVAL;
  return st->ops->get(st, tenant, id, now_ms, out, err);
}

int sb_store_append(sb_store *st, const char *tenant, const char *id,
                    int64_t expected_version, const char *new_doc,
                    const char *patch, const char *snapshot,
                    int64_t expires_ms, int64_t now_ms,
                    int64_t *current_version, sb_error *err) {
  if (need_tenant(tenant, err)) return SB_EINVAL;
  return st->ops->append(st, tenant, id, expected_version, new_doc, patch,
                         snapshot, expires_ms, now_ms, current_version, err);
}

int sb_store_version_chain(sb_store *st, const char *tenant, const char *id,
                           int64_t n, int64_t now_ms, sb_store_versions *out,
                           sb_error *err) {
  memset(out, 0, sizeof *out);
  if (need_tenant(tenant, err)) return SB_EINVAL;
  return st->ops->version_chain(st, tenant, id, n, now_ms, out, err);
}

int sb_store_history(sb_store *st, const char *tenant, const char *id,
                     int64_t before, size_t limit, int64_t now_ms,
                     sb_store_versions *out, sb_error *err) {
  memset(out, 0, sizeof *out);
  if (need_tenant(tenant, err)) return SB_EINVAL;
  return st->ops->history(st, tenant, id, before, limit, now_ms, out, err);
}

int sb_store_sweep_expired(sb_store *st, int64_t now_ms, int max,
                           sb_error *err) {
  return st->ops->sweep_expired(st, now_ms, max, err);
}

int64_t sb_store_count(sb_store *st, const char *tenant) {
  return tenant ? st->ops->count(st, tenant) : 0;
}

void sb_store_record_clear(sb_store_record *r) {
  sb_free(r->id);
  sb_free(r->workflow_id);
  sb_free(r->session_id);
  sb_free(r->doc);
  memset(r, 0, sizeof *r);
}

void sb_store_versions_clear(sb_store_versions *v) {
  for (size_t i = 0; i < v->len; i++) {
    sb_free(v->items[i].patch);
    sb_free(v->items[i].snapshot);
  }
  sb_free(v->items);
  v->items = NULL;
  v->len = 0;
}
