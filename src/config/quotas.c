/* quotas.c: the quotas.tenants overrides, and server.tls, a section whose
 * two files go together. The global quota keys are plain numbers of the
 * schema (keys.c). */
#include <stdio.h>
#include <string.h>

#include "config/config_internal.h"

#define QUOTA_MAX 1000000

void cfg_free_quota_tenants(sb_config_quota *q, size_t n) {
  for (size_t i = 0; i < n; i++)
    sb_free(q[i].tenant);
  sb_free(q);
}

int cfg_clone_quota_tenants(sb_config *dst, const sb_config *src) {
  if (!src->quota_tenants_len) return 0;
  dst->quota_tenants =
      sb_calloc(src->quota_tenants_len, sizeof *dst->quota_tenants);
  if (!dst->quota_tenants) return SB_ENOMEM;
  for (size_t i = 0; i < src->quota_tenants_len; i++) {
    dst->quota_tenants[i] = src->quota_tenants[i];
    dst->quota_tenants_len = i + 1;
    if (!(dst->quota_tenants[i].tenant =
              sb_strdup(src->quota_tenants[i].tenant)))
      return SB_ENOMEM;
  }
  return 0;
}

int cfg_parse_tls(parse_ctx *p, const key_spec *k, const char *path) {
  char got[96];
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (cfg_ev_is_null(p)) return 0;
  size_t line = cfg_ev_line(p);
  if (p->ev.type != YAML_MAPPING_START_EVENT) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, line, path, SB_EINVAL,
                       "expected a mapping with cert_file and key_file, got %s",
                       got);
  }
  int rc = cfg_parse_mapping(p, k->children, path);
  if (rc != 0) return rc;
  if (!p->cfg->tls_cert_file != !p->cfg->tls_key_file)
    return cfg_fail_at(p, line, path, SB_EINVAL,
                       "needs both cert_file and key_file (PEM)");
  return 0;
}

/* A non-negative integer of at most QUOTA_MAX. */
static int quota_number(parse_ctx *p, const char *path, int *out) {
  char got[96];
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  const char *s = p->ev.type == YAML_SCALAR_EVENT ? cfg_ev_scalar(p) : NULL;
  size_t len = s ? p->ev.data.scalar.length : 0;
  long long v = 0;
  int ok = s && len > 0 && len <= 7 && strlen(s) == len;
  for (size_t i = 0; ok && i < len; i++) {
    if (s[i] < '0' || s[i] > '9') ok = 0;
    v = v * 10 + (s[i] - '0');
  }
  if (!ok || v > QUOTA_MAX) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                       "expected an integer between 0 and %d, got %s",
                       QUOTA_MAX, got);
  }
  *out = (int)v;
  return 0;
}

/* One tenant's mapping of limits (MAPPING_START current). */
static int parse_one(parse_ctx *p, const char *path, sb_config_quota *q) {
  char key_path[256];
  int rc;
  for (;;) {
    if ((rc = cfg_next_event(p)) != 0) return rc;
    if (p->ev.type == YAML_MAPPING_END_EVENT) return 0;
    const char *key = p->ev.type == YAML_SCALAR_EVENT ? cfg_ev_scalar(p) : "";
    int *slot = strcmp(key, "requests_per_second") == 0    ? &q->rate_per_s
                : strcmp(key, "burst") == 0                ? &q->burst
                : strcmp(key, "max_concurrent_calls") == 0 ? &q->max_concurrent
                                                           : NULL;
    snprintf(key_path, sizeof key_path, "%s.%.40s", path, key);
    if (!slot)
      return cfg_fail_at(p, cfg_ev_line(p), key_path, SB_EINVAL,
                         "unknown key (known: requests_per_second, burst, "
                         "max_concurrent_calls)");
    if (*slot >= 0)
      return cfg_fail_at(p, cfg_ev_line(p), key_path, SB_EINVAL,
                         "duplicate key");
    if ((rc = cfg_next_event(p)) != 0) return rc;
    if ((rc = quota_number(p, key_path, slot)) != 0) return rc;
  }
}

/* quotas.tenants: a mapping from tenant id to its limits. */
int cfg_parse_quota_tenants(parse_ctx *p, const char *path) {
  char got[96], item[200];
  sb_config_quota *items = NULL;
  size_t n = 0;
  int rc = 0;
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (!cfg_ev_is_null(p)) {
    if (p->ev.type != YAML_MAPPING_START_EVENT) {
      cfg_describe_event(p, got, sizeof got);
      return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                         "expected a mapping of tenant ids to limits, got %s",
                         got);
    }
    for (;;) {
      if ((rc = cfg_next_event(p)) != 0) goto fail;
      if (p->ev.type == YAML_MAPPING_END_EVENT) break;
      const char *id = p->ev.type == YAML_SCALAR_EVENT ? cfg_ev_scalar(p) : "";
      snprintf(item, sizeof item, "%s.%.64s", path, id);
      if (!sb_config_tenant_id_valid(id) ||
          strlen(id) != p->ev.data.scalar.length) {
        rc = cfg_fail_at(p, cfg_ev_line(p), item, SB_EINVAL,
                         "expected a tenant id (1-64 of A-Z a-z 0-9 . _ -)");
        goto fail;
      }
      for (size_t i = 0; i < n; i++)
        if (strcmp(items[i].tenant, id) == 0) {
          rc = cfg_fail_at(p, cfg_ev_line(p), item, SB_EINVAL, "duplicate key");
          goto fail;
        }
      sb_config_quota *grown = sb_realloc(items, (n + 1) * sizeof *items);
      if (!grown) {
        rc = sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
        goto fail;
      }
      items = grown;
      sb_config_quota *q = &items[n];
      *q = (sb_config_quota){NULL, -1, -1, -1};
      if (!(q->tenant = sb_strdup(id))) {
        rc = sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
        goto fail;
      }
      n++;
      if ((rc = cfg_next_event(p)) != 0) goto fail;
      if (p->ev.type == YAML_ALIAS_EVENT) {
        rc = cfg_fail_alias(p, item);
        goto fail;
      }
      if (p->ev.type != YAML_MAPPING_START_EVENT) {
        cfg_describe_event(p, got, sizeof got);
        rc = cfg_fail_at(p, cfg_ev_line(p), item, SB_EINVAL,
                         "expected a mapping of limits, got %s", got);
        goto fail;
      }
      if ((rc = parse_one(p, item, q)) != 0) goto fail;
    }
  }
  cfg_free_quota_tenants(p->cfg->quota_tenants, p->cfg->quota_tenants_len);
  p->cfg->quota_tenants = items;
  p->cfg->quota_tenants_len = n;
  return 0;
fail:
  cfg_free_quota_tenants(items, n);
  return rc;
}
