/* scope.c: the scope grammar (auth.h states it) — whether a key's or a
 * token's scopes grant the permission an operation needs. Pure functions:
 * app/ decides which permission each tool, route and context needs, and
 * asks here. */
#include <string.h>

#include "auth/auth.h"

int sb_auth_scope_grants(const char *scope, const char *permission) {
  if (!scope || !permission || !*scope) return 0;
  if (strcmp(scope, "admin") == 0 || strcmp(scope, permission) == 0) return 1;
  if (strcmp(scope, "tools:call") == 0)
    return strncmp(permission, "tools:", 6) == 0;
  size_t n = strlen(scope);
  if (scope[n - 1] == '*') return strncmp(scope, permission, n - 1) == 0;
  /* A prefix ending at a segment's boundary: "agents" grants
   * "agents:sales", "contexts:read:/user" grants "contexts:read:/user/x"
   * (but not "contexts:read:/username"). */
  return strncmp(scope, permission, n) == 0 &&
         (permission[n] == ':' || permission[n] == '/');
}

int sb_auth_scope_valid(const char *scope) {
  if (!scope || !*scope || *scope == ':' || *scope == '*') return 0;
  const char *star = strchr(scope, '*');
  if (star && star[1]) return 0; /* a '*' ends the scope */
  /* Each ':' opens a part that is not empty ("contexts::x", "runs:"). */
  for (const char *c = strchr(scope, ':'); c; c = strchr(c + 1, ':'))
    if (c[1] == ':' || c[1] == '\0') return 0;
  return 1;
}

int sb_auth_permits(const sb_principal *p, const char *permission) {
  if (!p || !p->restricted) return 1;
  for (size_t i = 0; i < p->scopes_len; i++)
    if (sb_auth_scope_grants(p->scopes[i], permission)) return 1;
  return 0;
}

int sb_auth_permits_some(const sb_principal *p, const char *permission) {
  if (sb_auth_permits(p, permission)) return 1;
  size_t n = strlen(permission);
  for (size_t i = 0; i < p->scopes_len; i++)
    if (strncmp(p->scopes[i], permission, n) == 0 && p->scopes[i][n] == ':')
      return 1;
  return 0;
}

int sb_auth_permits_all(const sb_principal *p, const json_t *needed,
                        const char **missing) {
  size_t i;
  json_t *v;
  json_array_foreach(needed, i, v) {
    const char *perm = json_string_value(v);
    int ok = perm ? sb_auth_permits(p, perm)
                  : (!p || !p->restricted || sb_auth_permits(p, "admin"));
    if (!ok) {
      if (missing) *missing = perm ? perm : "admin";
      return 0;
    }
  }
  return 1;
}

#define READ_PREFIX "contexts:read:"

sb_auth_read sb_auth_read_paths(const sb_principal *p, json_t **paths) {
  *paths = NULL;
  if (sb_auth_permits(p, "contexts:read")) return SB_AUTH_READ_ALL;
  json_t *list = json_array();
  if (!list) return SB_AUTH_READ_NONE;
  for (size_t i = 0; i < p->scopes_len; i++) {
    const char *s = p->scopes[i];
    /* Only pointers: "contexts:read:/user"; a wildcard over paths is not
     * a path, and reads as nothing. */
    if (strncmp(s, READ_PREFIX, sizeof READ_PREFIX - 1) == 0 &&
        s[sizeof READ_PREFIX - 1] == '/' && !strchr(s, '*'))
      json_array_append_new(list, json_string(s + sizeof READ_PREFIX - 1));
  }
  if (json_array_size(list) == 0) {
    json_decref(list);
    return SB_AUTH_READ_NONE;
  }
  *paths = list;
  return SB_AUTH_READ_SOME;
}

void sb_auth_scopes_free(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++)
    sb_free(v[i]);
  sb_free(v);
}

/* Append a copy of s[0..len) to *v. */
static int scopes_push(char ***v, size_t *n, const char *s, size_t len) {
  char **grown = sb_realloc(*v, (*n + 2) * sizeof *grown);
  if (!grown) return SB_ENOMEM;
  *v = grown;
  if (!(grown[*n] = sb_strndup(s, len))) return SB_ENOMEM;
  grown[++*n] = NULL;
  return 0;
}

int sb_auth_scopes_parse(const json_t *v, char ***out, size_t *n) {
  char **list = NULL;
  size_t len = 0;
  int rc = 0;
  *out = NULL;
  *n = 0;
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    while (*s && rc == 0) {
      while (*s == ' ')
        s++;
      const char *end = s;
      while (*end && *end != ' ')
        end++;
      if (end > s) rc = scopes_push(&list, &len, s, (size_t)(end - s));
      s = end;
    }
  } else if (json_is_array(v)) {
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
      const char *s = json_string_value(item);
      if (!s) {
        rc = SB_EINVAL;
        break;
      }
      if (*s && (rc = scopes_push(&list, &len, s, strlen(s))) != 0) break;
    }
  } else {
    rc = SB_EINVAL;
  }
  if (rc != 0) {
    sb_auth_scopes_free(list, len);
    return rc;
  }
  *out = list;
  *n = len;
  return 0;
}
