/* principal.c: the authenticated caller a transport hands to the
 * protocol and to REST handlers (core.h explains the type). One
 * allocation per principal holds nothing but pointers; its subject and
 * scopes are copied so that an authenticator may free its own strings. */
#include <string.h>

#include "core/core.h"

sb_principal *sb_principal_new(sb_principal_kind kind, const char *tenant,
                               const char *subject, const char *const *scopes,
                               size_t scopes_len) {
  sb_principal *p = sb_calloc(1, sizeof *p);
  if (!p) return NULL;
  p->kind = kind;
  p->tenant = tenant;
  p->refs_ = 1;
  if (subject && !(p->subject = sb_strdup(subject))) goto fail;
  if (scopes_len) {
    if (!(p->scopes = sb_calloc(scopes_len, sizeof *p->scopes))) goto fail;
    for (size_t i = 0; i < scopes_len; i++) {
      if (!(p->scopes[i] = sb_strdup(scopes[i]))) goto fail;
      p->scopes_len = i + 1;
    }
    p->restricted = 1;
  }
  return p;
fail:
  sb_principal_unref(p);
  return NULL;
}

sb_principal *sb_principal_ref(sb_principal *p) {
  if (p) p->refs_++;
  return p;
}

void sb_principal_unref(sb_principal *p) {
  if (!p || --p->refs_ > 0) return;
  for (size_t i = 0; i < p->scopes_len; i++)
    sb_free(p->scopes[i]);
  sb_free(p->scopes);
  sb_free((char *)p->subject);
  sb_free(p);
}

int sb_principal_live(const sb_principal *p, int64_t now_ms) {
  return !p || (!p->revoked && (!p->expires_ms || now_ms < p->expires_ms));
}

const char *sb_principal_kind_name(sb_principal_kind kind) {
  switch (kind) {
  case SB_PRINCIPAL_CONFIG_TOKEN: return "config token";
  case SB_PRINCIPAL_API_KEY: return "API key";
  case SB_PRINCIPAL_JWT: return "JWT";
  case SB_PRINCIPAL_NONE: break;
  }
  return "none";
}
