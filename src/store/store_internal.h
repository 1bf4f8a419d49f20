/* store_internal.h: the backend vtable behind sb_store. Each backend
 * (sqlite.c now, pg.c later) fills one of these; store.c dispatches. */
#ifndef SB_STORE_INTERNAL_H
#define SB_STORE_INTERNAL_H

#include "store/store.h"

typedef struct sb_store_ops {
  const char *name;
  void (*close)(sb_store *st);
  int (*schema_version)(sb_store *st);
  int (*create)(sb_store *st, const char *tenant, const sb_store_record *r,
                sb_error *err);
  int (*get)(sb_store *st, const char *tenant, const char *id, int64_t now_ms,
             sb_store_record *out, sb_error *err);
  int (*append)(sb_store *st, const char *tenant, const char *id,
                int64_t expected_version, const char *new_doc,
                const char *patch, const char *snapshot, int64_t expires_ms,
                int64_t now_ms, int64_t *current_version, sb_error *err);
  int (*version_chain)(sb_store *st, const char *tenant, const char *id,
                       int64_t n, int64_t now_ms, sb_store_versions *out,
                       sb_error *err);
  int (*history)(sb_store *st, const char *tenant, const char *id,
                 int64_t before, size_t limit, int64_t now_ms,
                 sb_store_versions *out, sb_error *err);
  int (*sweep_expired)(sb_store *st, int64_t now_ms, int max, sb_error *err);
  int64_t (*count)(sb_store *st, const char *tenant);
} sb_store_ops;

/* Every backend's struct starts with this. */
struct sb_store {
  const sb_store_ops *ops;
};

#endif
