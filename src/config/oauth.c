/* oauth.c (config/): the auth.oauth section — what switchboard needs to
 * act as an OAuth 2.1 resource server (auth/jwt.c checks the tokens, app/
 * serves the protected-resource metadata): claim names, the lists of the
 * metadata, and the rule that issuer, resource and jwks_file come
 * together. */
#include <string.h>

#include "config/config_internal.h"

/* A claim name or a scope: 1-128 printable ASCII characters, no space and
 * no quote (scopes go into a WWW-Authenticate header). */
static int token_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128) return 0;
  for (; *s; s++)
    if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '"' ||
        *s == '\\')
      return 0;
  return 1;
}

static int parse_list(parse_ctx *p, const char *path, int urls) {
  char got[96], item[160];
  char **items = NULL;
  size_t n = 0;
  int rc = 0;
  const char *what = urls ? "an http:// or https:// URL"
                          : "a scope (1-128 printable characters, no space)";
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (!cfg_ev_is_null(p)) {
    if (p->ev.type != YAML_SEQUENCE_START_EVENT) {
      cfg_describe_event(p, got, sizeof got);
      return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                         "expected a list, got %s", got);
    }
    for (;;) {
      if ((rc = cfg_next_event(p)) != 0) goto fail;
      if (p->ev.type == YAML_SEQUENCE_END_EVENT) break;
      snprintf(item, sizeof item, "%s[%zu]", path, n);
      char *v = NULL;
      if ((rc = cfg_scalar_string(p, item, what, &v)) != 0) goto fail;
      char **grown = sb_realloc(items, (n + 1) * sizeof *items);
      if (!grown || !(urls ? cfg_url_valid(v) : token_valid(v))) {
        sb_free(v);
        if (grown) items = grown;
        rc = grown ? cfg_fail_at(p, cfg_ev_line(p), item, SB_EINVAL,
                                 "expected %s", what)
                   : sb_error_set(p->err, SB_ENOMEM, "%s: out of memory",
                                  p->name);
        goto fail;
      }
      items = grown;
      items[n++] = v;
    }
  }
  char ***field = urls ? &p->cfg->oauth_authorization_servers
                       : &p->cfg->oauth_scopes_supported;
  size_t *len = urls ? &p->cfg->oauth_authorization_servers_len
                     : &p->cfg->oauth_scopes_supported_len;
  cfg_free_strings(*field, *len);
  *field = items;
  *len = n;
  return 0;
fail:
  cfg_free_strings(items, n);
  return rc;
}

int cfg_parse_oauth_value(parse_ctx *p, const key_spec *k, const char *path) {
  if (k->kind == KEY_URLS) return parse_list(p, path, 1);
  if (k->kind == KEY_SCOPES) return parse_list(p, path, 0);
  char *v = NULL;
  int rc = cfg_scalar_string(p, path, "a claim name", &v);
  if (rc != 0) return rc;
  if (!token_valid(v)) {
    char got[96];
    cfg_describe_event(p, got, sizeof got);
    sb_free(v);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                       "expected a claim name (1-128 printable characters, "
                       "no space), got %s",
                       got);
  }
  char **field = (char **)(void *)((char *)p->cfg + k->offset);
  sb_free(*field);
  *field = v;
  return 0;
}

int cfg_check_oauth(parse_ctx *p, size_t line, const char *path) {
  const sb_config *c = p->cfg;
  const char *missing = !c->oauth_issuer      ? "issuer"
                        : !c->oauth_resource  ? "resource"
                        : !c->oauth_jwks_file ? "jwks_file"
                                              : NULL;
  if (!missing) return 0;
  /* An empty section leaves OAuth off. */
  if (!c->oauth_issuer && !c->oauth_resource && !c->oauth_jwks_file &&
      !c->oauth_authorization_servers_len && !c->oauth_scopes_supported_len &&
      !c->oauth_tenant_claim && !c->oauth_scope_claim)
    return 0;
  return cfg_fail_at(p, line, path, SB_EINVAL,
                     "%s is required (issuer, resource and jwks_file go "
                     "together)",
                     missing);
}

void cfg_release_oauth(sb_config *cfg) {
  sb_free(cfg->oauth_issuer);
  sb_free(cfg->oauth_resource);
  sb_free(cfg->oauth_jwks_file);
  sb_free(cfg->oauth_tenant_claim);
  sb_free(cfg->oauth_scope_claim);
  cfg->oauth_issuer = cfg->oauth_resource = cfg->oauth_jwks_file = NULL;
  cfg->oauth_tenant_claim = cfg->oauth_scope_claim = NULL;
  cfg_free_strings(cfg->oauth_authorization_servers,
                   cfg->oauth_authorization_servers_len);
  cfg_free_strings(cfg->oauth_scopes_supported,
                   cfg->oauth_scopes_supported_len);
  cfg->oauth_authorization_servers = cfg->oauth_scopes_supported = NULL;
  cfg->oauth_authorization_servers_len = cfg->oauth_scopes_supported_len = 0;
}

static int dup_opt(char **dst, const char *src) {
  return src && !(*dst = sb_strdup(src)) ? SB_ENOMEM : 0;
}

static int dup_list(char ***dst, size_t *dst_len, char *const *src, size_t n) {
  if (!n) return 0;
  if (!(*dst = sb_calloc(n, sizeof **dst))) return SB_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (!((*dst)[i] = sb_strdup(src[i]))) return SB_ENOMEM;
    *dst_len = i + 1;
  }
  return 0;
}

/* dst's oauth fields are NULL on entry; on failure what was copied stays
 * for the caller's release. */
int cfg_clone_oauth(sb_config *dst, const sb_config *src) {
  if (dup_opt(&dst->oauth_issuer, src->oauth_issuer) ||
      dup_opt(&dst->oauth_resource, src->oauth_resource) ||
      dup_opt(&dst->oauth_jwks_file, src->oauth_jwks_file) ||
      dup_opt(&dst->oauth_tenant_claim, src->oauth_tenant_claim) ||
      dup_opt(&dst->oauth_scope_claim, src->oauth_scope_claim) ||
      dup_list(&dst->oauth_authorization_servers,
               &dst->oauth_authorization_servers_len,
               src->oauth_authorization_servers,
               src->oauth_authorization_servers_len) ||
      dup_list(&dst->oauth_scopes_supported, &dst->oauth_scopes_supported_len,
               src->oauth_scopes_supported, src->oauth_scopes_supported_len))
    return SB_ENOMEM;
  return 0;
}
