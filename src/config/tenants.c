/* tenants.c: auth.tenants, the bearer tokens that map HTTP callers to
 * tenants, and the lookups on it. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "config/config_internal.h"

void cfg_free_tenants(sb_config_tenant *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    sb_free(t[i].id);
    if (t[i].token) sodium_memzero(t[i].token, strlen(t[i].token));
    sb_free(t[i].token);
  }
  sb_free(t);
}

int sb_config_tenant_id_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

const char *sb_config_tenant_for_token(const sb_config *cfg,
                                       const char *token) {
  if (cfg->tenants_len == 0) return cfg->default_tenant;
  if (!token) return NULL;
  size_t n = strlen(token);
  const char *found = NULL;
  /* Compare against every entry so timing does not reveal which matched. */
  for (size_t i = 0; i < cfg->tenants_len; i++) {
    const char *t = cfg->tenants[i].token;
    if (strlen(t) == n && sodium_memcmp(t, token, n) == 0 && !found)
      found = cfg->tenants[i].id;
  }
  return found;
}

/* A plain scalar string value; *out is a new copy. */
int cfg_scalar_string(parse_ctx *p, const char *path, const char *what,
                         char **out) {
  char got[96];
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (p->ev.type != YAML_SCALAR_EVENT || cfg_ev_is_null(p) ||
      p->ev.data.scalar.length == 0 ||
      strlen(cfg_ev_scalar(p)) != p->ev.data.scalar.length) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL, "expected %s, got %s", what,
                   got);
  }
  *out = sb_strdup(cfg_ev_scalar(p));
  if (!*out) return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
  return 0;
}

/* auth.tenants: a list of {id, token}; ids and tokens must be unique and
 * tokens at least 16 characters (they are the only credential). */
int cfg_parse_tenants(parse_ctx *p, const char *path) {
  char got[96], item[160], key_path[200];
  sb_config_tenant *items = NULL;
  size_t n = 0;
  int rc = 0;
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (cfg_ev_is_null(p)) {
    cfg_free_tenants(p->cfg->tenants, p->cfg->tenants_len);
    p->cfg->tenants = NULL;
    p->cfg->tenants_len = 0;
    return 0;
  }
  if (p->ev.type != YAML_SEQUENCE_START_EVENT) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                   "expected a list of {id, token}, got %s", got);
  }
  for (;;) {
    if ((rc = cfg_next_event(p)) != 0) goto fail;
    if (p->ev.type == YAML_SEQUENCE_END_EVENT) break;
    snprintf(item, sizeof item, "%s[%zu]", path, n);
    if (p->ev.type != YAML_MAPPING_START_EVENT) {
      cfg_describe_event(p, got, sizeof got);
      rc = cfg_fail_at(p, cfg_ev_line(p), item, SB_EINVAL,
                   "expected a mapping with id and token, got %s", got);
      goto fail;
    }
    size_t item_line = cfg_ev_line(p);
    sb_config_tenant *grown = sb_realloc(items, (n + 1) * sizeof *items);
    if (!grown) {
      rc = sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
      goto fail;
    }
    items = grown;
    sb_config_tenant *t = &items[n++];
    memset(t, 0, sizeof *t);
    for (;;) {
      if ((rc = cfg_next_event(p)) != 0) goto fail;
      if (p->ev.type == YAML_MAPPING_END_EVENT) break;
      const char *key = p->ev.type == YAML_SCALAR_EVENT ? cfg_ev_scalar(p) : "";
      char **slot = strcmp(key, "id") == 0      ? &t->id
                    : strcmp(key, "token") == 0 ? &t->token
                                                : NULL;
      snprintf(key_path, sizeof key_path, "%s.%.32s", item, key);
      if (!slot) {
        rc = cfg_fail_at(p, cfg_ev_line(p), key_path, SB_EINVAL,
                     "unknown key (known: id, token)");
        goto fail;
      }
      if (*slot) {
        rc = cfg_fail_at(p, cfg_ev_line(p), key_path, SB_EINVAL, "duplicate key");
        goto fail;
      }
      if ((rc = cfg_next_event(p)) != 0) goto fail;
      if ((rc = cfg_scalar_string(p, key_path,
                              slot == &t->id ? "a tenant id" : "a token",
                              slot)) != 0)
        goto fail;
      if (slot == &t->id && !sb_config_tenant_id_valid(t->id)) {
        rc = cfg_fail_at(p, cfg_ev_line(p), key_path, SB_EINVAL,
                     "expected a tenant id (1-64 of A-Z a-z 0-9 . _ -)");
        goto fail;
      }
      if (slot == &t->token && strlen(t->token) < 16) {
        rc = cfg_fail_at(p, cfg_ev_line(p), key_path, SB_EINVAL,
                     "a token must be at least 16 characters");
        goto fail;
      }
      /* A client sends it in "Authorization: Bearer TOKEN": a header line
       * holds no control character (a tab aside), and the server skips the
       * spaces after "Bearer". Such a token could never be presented, and
       * its tenant was locked out without a word. The token is a secret:
       * the message does not show it. */
      if (slot == &t->token) {
        int bad = t->token[0] == ' ';
        for (const unsigned char *c = (const unsigned char *)t->token;
             !bad && *c; c++)
          bad = (*c < ' ' && *c != '\t') || *c == 0x7f ||
                (c[0] == 0xC2 && c[1] >= 0x80 && c[1] < 0xA0); /* C1 */
        if (bad) {
          rc = cfg_fail_at(p, cfg_ev_line(p), key_path, SB_EINVAL,
                           "a token cannot start with a space nor hold a "
                           "control character: no client could send it "
                           "(Authorization: Bearer TOKEN)");
          goto fail;
        }
      }
    }
    if (!t->id || !t->token) {
      rc = cfg_fail_at(p, item_line, item, SB_EINVAL, "needs both id and token");
      goto fail;
    }
    for (size_t i = 0; i + 1 < n; i++) {
      if (strcmp(items[i].id, t->id) == 0 ||
          strcmp(items[i].token, t->token) == 0) {
        rc = cfg_fail_at(p, item_line, item, SB_EINVAL,
                     "%s repeats an earlier tenant's",
                     strcmp(items[i].id, t->id) == 0 ? "id" : "token");
        goto fail;
      }
    }
  }
  cfg_free_tenants(p->cfg->tenants, p->cfg->tenants_len);
  p->cfg->tenants = items;
  p->cfg->tenants_len = n;
  return 0;
fail:
  cfg_free_tenants(items, n);
  return rc;
}


void cfg_free_strings(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) sb_free(v[i]);
  sb_free(v);
}

int sb_config_is_admin(const sb_config *cfg, const char *tenant) {
  /* The single-tenant rule holds only while nobody named administrators:
   * a deployment on API keys or OAuth alone has no auth.tenants, and its
   * admin_tenants must still keep other tenants from spawning agents. */
  if (cfg->tenants_len == 0 && cfg->admin_tenants_len == 0) return 1;
  for (size_t i = 0; tenant && i < cfg->admin_tenants_len; i++)
    if (strcmp(cfg->admin_tenants[i], tenant) == 0) return 1;
  return 0;
}

static int same_str(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

int sb_config_auth_equal(const sb_config *a, const sb_config *b) {
  if (a->tenants_len != b->tenants_len ||
      a->admin_tenants_len != b->admin_tenants_len ||
      !same_str(a->default_tenant, b->default_tenant))
    return 0;
  for (size_t i = 0; i < a->tenants_len; i++)
    if (!same_str(a->tenants[i].id, b->tenants[i].id) ||
        !same_str(a->tenants[i].token, b->tenants[i].token))
      return 0;
  for (size_t i = 0; i < a->admin_tenants_len; i++)
    if (!same_str(a->admin_tenants[i], b->admin_tenants[i])) return 0;
  return 1;
}

/* auth.admin_tenants: a list of tenant ids. */
int cfg_parse_admins(parse_ctx *p, const char *path) {
  char got[96], item[160];
  char **items = NULL;
  size_t n = 0;
  int rc = 0;
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (!cfg_ev_is_null(p)) {
    if (p->ev.type != YAML_SEQUENCE_START_EVENT) {
      cfg_describe_event(p, got, sizeof got);
      return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                         "expected a list of tenant ids, got %s", got);
    }
    for (;;) {
      if ((rc = cfg_next_event(p)) != 0) goto fail;
      if (p->ev.type == YAML_SEQUENCE_END_EVENT) break;
      snprintf(item, sizeof item, "%s[%zu]", path, n);
      char *v = NULL;
      if ((rc = cfg_scalar_string(p, item, "a tenant id", &v)) != 0) goto fail;
      char **grown = sb_realloc(items, (n + 1) * sizeof *items);
      if (!grown || !sb_config_tenant_id_valid(v)) {
        sb_free(v);
        rc = grown ? cfg_fail_at(p, cfg_ev_line(p), item, SB_EINVAL,
                                 "expected a tenant id (1-64 of A-Z a-z 0-9 "
                                 ". _ -)")
                   : sb_error_set(p->err, SB_ENOMEM, "%s: out of memory",
                                  p->name);
        if (grown) items = grown;
        goto fail;
      }
      items = grown;
      items[n++] = v;
    }
  }
  cfg_free_strings(p->cfg->admin_tenants, p->cfg->admin_tenants_len);
  p->cfg->admin_tenants = items;
  p->cfg->admin_tenants_len = n;
  return 0;
fail:
  cfg_free_strings(items, n);
  return rc;
}
