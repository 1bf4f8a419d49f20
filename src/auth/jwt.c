/* jwt.c: switchboard as an OAuth 2.1 resource server — bearer JWTs
 * checked against a JWKS file with libcjose (auth.h states the rules).
 *
 * The order of the checks matters: the token's size and shape, then its
 * header's algorithm against an allow-list (RS256, ES256) before any key
 * is touched, then the key by kid and whether it was made for that
 * algorithm (an RSA public key must never verify an HS256 MAC, the
 * classic confusion), then the signature; the claims are parsed only
 * once the signature holds, so nothing an attacker wrote past the header
 * is parsed. Tenants are interned so a principal's tenant lives as long as
 * the verifier, as config and keyring tenants do. */
#include <cjose/cjose.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"

#define MAX_TOKEN_BYTES 16384 /* far past any real access token */
#define MAX_TENANTS                                                            \
  100000 /* interned tenants; past it tokens of new                            \
            tenants are refused rather than grow */

typedef enum key_alg { KEY_RS256, KEY_ES256 } key_alg;

typedef struct jwt_key {
  char *kid; /* NULL when the JWK has none */
  key_alg alg;
  cjose_jwk_t *jwk;
} jwt_key;

/* Keys parsed, not yet a verifier's (a reload's first step). */
struct sb_auth_jwks {
  jwt_key *keys;
  size_t n;
};

struct sb_auth_jwt {
  char *issuer, *audience, *tenant_claim, *scope_claim;
  int leeway_s;
  jwt_key *keys;
  size_t nkeys;
  char **tenants;
  size_t ntenants;
};

const char *sb_auth_jwt_outcome_text(sb_auth_jwt_outcome o) {
  switch (o) {
  case SB_AUTH_JWT_OK: return "valid";
  case SB_AUTH_JWT_MALFORMED: return "the token is not a well-formed JWT";
  case SB_AUTH_JWT_BAD_ALG:
    return "the token's algorithm is not accepted (RS256 or ES256)";
  case SB_AUTH_JWT_UNKNOWN_KEY: return "the token's signing key is unknown";
  case SB_AUTH_JWT_KEY_MISMATCH:
    return "the token's algorithm does not match its key";
  case SB_AUTH_JWT_BAD_SIGNATURE: return "the token's signature is invalid";
  case SB_AUTH_JWT_EXPIRED: return "the token has expired";
  case SB_AUTH_JWT_NOT_YET_VALID: return "the token is not valid yet";
  case SB_AUTH_JWT_WRONG_ISSUER: return "the token's issuer is not trusted";
  case SB_AUTH_JWT_WRONG_AUDIENCE:
    return "the token was not issued for this resource";
  case SB_AUTH_JWT_BAD_TENANT: return "the token names no valid tenant";
  case SB_AUTH_JWT_NO_MEMORY: return "out of memory";
  }
  return "invalid token";
}

static void keys_free(jwt_key *keys, size_t n) {
  for (size_t i = 0; i < n; i++) {
    sb_free(keys[i].kid);
    cjose_jwk_release(keys[i].jwk);
  }
  sb_free(keys);
}

static void set_cjose_allocator(void) {
  cjose_set_alloc_funcs(sb_malloc, sb_realloc, sb_free);
}

/* cjose allocates through jansson and frees what jansson made: one
 * allocator for both (ours, as sb_core_init gave jansson). Set once,
 * before the first key is made, whichever thread makes it. */
static void cjose_allocator(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, set_cjose_allocator);
}

void sb_auth_jwt_free(sb_auth_jwt *j) {
  if (!j) return;
  keys_free(j->keys, j->nkeys);
  for (size_t i = 0; i < j->ntenants; i++)
    sb_free(j->tenants[i]);
  sb_free(j->tenants);
  sb_free(j->issuer);
  sb_free(j->audience);
  sb_free(j->tenant_claim);
  sb_free(j->scope_claim);
  sb_free(j);
}

sb_auth_jwt *sb_auth_jwt_new(const sb_auth_jwt_options *o, sb_error *err) {
  if (!o->issuer || !o->audience) {
    sb_error_set(err, SB_EINVAL,
                 "auth.oauth: issuer and resource are required");
    return NULL;
  }
  cjose_allocator();
  sb_auth_jwt *j = sb_calloc(1, sizeof *j);
  if (!j) goto oom;
  j->leeway_s = o->leeway_s < 0 ? 0 : o->leeway_s;
  if (!(j->issuer = sb_strdup(o->issuer)) ||
      !(j->audience = sb_strdup(o->audience)) ||
      !(j->tenant_claim =
            sb_strdup(o->tenant_claim ? o->tenant_claim : "tenant")) ||
      (o->scope_claim && !(j->scope_claim = sb_strdup(o->scope_claim))))
    goto oom;
  return j;
oom:
  sb_auth_jwt_free(j);
  sb_error_set(err, SB_ENOMEM, "out of memory");
  return NULL;
}

size_t sb_auth_jwt_keys(const sb_auth_jwt *j) { return j->nkeys; }

/* Unpadded base64url of a length some bytes have. */
static int b64url_valid(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
          (s[n] >= '0' && s[n] <= '9') || s[n] == '-' || s[n] == '_'))
      return 0;
  return n > 0 && n % 4 != 1;
}

/* One JWK of the set into k: 1 taken, 0 skipped (not a signing key of an
 * algorithm we accept), negative on error. */
static int key_from_jwk(json_t *item, size_t idx, jwt_key *k, sb_error *err) {
  const char *kty = json_string_value(json_object_get(item, "kty"));
  const char *use = json_string_value(json_object_get(item, "use"));
  const char *alg = json_string_value(json_object_get(item, "alg"));
  const char *kid = json_string_value(json_object_get(item, "kid"));
  if (!kty) return sb_error_set(err, SB_EINVAL, "keys[%zu]: no kty", idx);
  if (use && strcmp(use, "sig") != 0) return 0;
  if (strcmp(kty, "RSA") == 0)
    k->alg = KEY_RS256;
  else if (strcmp(kty, "EC") == 0)
    k->alg = KEY_ES256;
  else
    return 0; /* oct (a shared secret) and others: never */
  if (alg && strcmp(alg, k->alg == KEY_RS256 ? "RS256" : "ES256") != 0)
    return 0;
  /* Only the public half is kept: a private member is ignored by cjose's
   * verify, but an operator should not ship one; refuse it. */
  if (json_object_get(item, "d"))
    return sb_error_set(err, SB_EINVAL,
                        "keys[%zu]: a private key (member d); the JWKS must "
                        "hold public keys only",
                        idx);
  /* cjose's base64 decoder aborts on a length no encoding has: check
   * the key's members first (an operator's file, but a SIGHUP must not
   * take the server down). */
  static const char *const b64_members[] = {"n", "e", "x", "y"};
  for (size_t m = 0; m < 4; m++) {
    json_t *v = json_object_get(item, b64_members[m]);
    if (v && (!json_is_string(v) || !b64url_valid(json_string_value(v))))
      return sb_error_set(err, SB_EINVAL, "keys[%zu].%s: not base64url", idx,
                          b64_members[m]);
  }
  char *text = sb_json_dumps(item, JSON_COMPACT);
  if (!text) return sb_error_set(err, SB_ENOMEM, "out of memory");
  cjose_err cerr;
  k->jwk = cjose_jwk_import(text, strlen(text), &cerr);
  sb_free(text);
  if (!k->jwk)
    return sb_error_set(err, SB_EINVAL, "keys[%zu]: %s", idx, cerr.message);
  if (k->alg == KEY_ES256 &&
      cjose_jwk_EC_get_curve(k->jwk, &cerr) != CJOSE_JWK_EC_P_256) {
    cjose_jwk_release(k->jwk);
    k->jwk = NULL;
    return 0; /* ES384/ES512 curves are not accepted */
  }
  if (kid && !(k->kid = sb_strdup(kid))) {
    cjose_jwk_release(k->jwk);
    k->jwk = NULL;
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  return 1;
}

int sb_auth_jwks_parse(const char *json, size_t len, sb_auth_jwks **out,
                       sb_error *err) {
  json_error_t jerr;
  json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  jwt_key *keys = NULL;
  size_t n = 0;
  int rc = 0;
  json_t *list = json_object_get(doc, "keys");
  *out = NULL;
  if (!doc)
    return sb_error_set(err, SB_EINVAL, "line %d: %s", jerr.line, jerr.text);
  cjose_allocator();
  if (!json_is_array(list)) {
    rc = sb_error_set(err, SB_EINVAL, "expected {\"keys\": [...]}");
    goto done;
  }
  if (json_array_size(list) &&
      !(keys = sb_calloc(json_array_size(list), sizeof *keys))) {
    rc = sb_error_set(err, SB_ENOMEM, "out of memory");
    goto done;
  }
  size_t i;
  json_t *item;
  json_array_foreach(list, i, item) {
    int taken = key_from_jwk(item, i, &keys[n], err);
    if (taken < 0) {
      rc = taken;
      goto done;
    }
    n += (size_t)taken;
  }
  if (n == 0) {
    rc = sb_error_set(err, SB_EINVAL,
                      "no RS256 or ES256 (P-256) signing key in the set");
    goto done;
  }
  sb_auth_jwks *set = sb_malloc(sizeof *set);
  if (!set) {
    rc = sb_error_set(err, SB_ENOMEM, "out of memory");
    goto done;
  }
  set->keys = keys;
  set->n = n;
  *out = set;
  keys = NULL;
  n = 0;
done:
  keys_free(keys, n);
  json_decref(doc);
  return rc;
}

int sb_auth_jwks_load_file(const char *path, sb_auth_jwks **out,
                           sb_error *err) {
  FILE *f = sb_fopen_regular(path);
  char *data = NULL;
  size_t len = 0;
  int rc = SB_EIO;
  *out = NULL;
  if (!f)
    return sb_error_set(err, SB_EIO, "%s: cannot open: %s", path,
                        errno == EINVAL ? "not a regular file"
                                        : strerror(errno));
  if (!(data = sb_malloc(1u << 20))) {
    rc = sb_error_set(err, SB_ENOMEM, "out of memory");
    goto done;
  }
  len = fread(data, 1, 1u << 20, f);
  if (ferror(f) || len == 1u << 20) {
    rc = sb_error_set(err, ferror(f) ? SB_EIO : SB_ETOOBIG, "%s: %s", path,
                      ferror(f) ? "read error" : "larger than 1 MiB");
    goto done;
  }
  sb_error jerr = {0};
  rc = sb_auth_jwks_parse(data, len, out, &jerr);
  if (rc != 0) sb_error_set(err, rc, "%s: %s", path, jerr.msg);
done:
  sb_free(data);
  fclose(f);
  return rc;
}

size_t sb_auth_jwks_len(const sb_auth_jwks *set) { return set ? set->n : 0; }

void sb_auth_jwks_free(sb_auth_jwks *set) {
  if (!set) return;
  keys_free(set->keys, set->n);
  sb_free(set);
}

void sb_auth_jwt_install_jwks(sb_auth_jwt *j, sb_auth_jwks *set) {
  keys_free(j->keys, j->nkeys);
  j->keys = set->keys;
  j->nkeys = set->n;
  sb_free(set);
}

int sb_auth_jwt_set_jwks(sb_auth_jwt *j, const char *json, size_t len,
                         sb_error *err) {
  sb_auth_jwks *set = NULL;
  int rc = sb_auth_jwks_parse(json, len, &set, err);
  if (rc == 0) sb_auth_jwt_install_jwks(j, set);
  return rc;
}

int sb_auth_jwt_load_jwks_file(sb_auth_jwt *j, const char *path,
                               sb_error *err) {
  sb_auth_jwks *set = NULL;
  int rc = sb_auth_jwks_load_file(path, &set, err);
  if (rc == 0) sb_auth_jwt_install_jwks(j, set);
  return rc;
}

static const jwt_key *find_key(const sb_auth_jwt *j, const char *kid) {
  if (!kid) return j->nkeys == 1 ? &j->keys[0] : NULL;
  for (size_t i = 0; i < j->nkeys; i++)
    if (j->keys[i].kid && strcmp(j->keys[i].kid, kid) == 0) return &j->keys[i];
  return NULL;
}

static int tenant_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
      return 0;
  return 1;
}

static const char *intern_tenant(sb_auth_jwt *j, const char *t) {
  for (size_t i = 0; i < j->ntenants; i++)
    if (strcmp(j->tenants[i], t) == 0) return j->tenants[i];
  if (j->ntenants >= MAX_TENANTS) return NULL;
  char **grown = sb_realloc(j->tenants, (j->ntenants + 1) * sizeof *grown);
  if (!grown) return NULL;
  j->tenants = grown;
  if (!(grown[j->ntenants] = sb_strdup(t))) return NULL;
  return grown[j->ntenants++];
}

/* A NumericDate claim: 1 with *out, 0 when absent, -1 when not a number. */
static int numeric_date(json_t *claims, const char *name, double *out) {
  json_t *v = json_object_get(claims, name);
  if (!v) return 0;
  if (!json_is_number(v)) return -1;
  *out = json_number_value(v);
  return 1;
}

static int audience_ok(json_t *aud, const char *want) {
  if (json_is_string(aud)) return strcmp(json_string_value(aud), want) == 0;
  size_t i;
  json_t *v;
  json_array_foreach(aud, i, v) {
    if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) return 1;
  }
  return 0;
}

/* The verified claims into a principal. */
static sb_auth_jwt_outcome judge_claims(sb_auth_jwt *j, json_t *claims,
                                        int64_t now_s, sb_principal **out) {
  double exp = 0, nbf = 0;
  int has_exp = numeric_date(claims, "exp", &exp);
  int has_nbf = numeric_date(claims, "nbf", &nbf);
  if (!json_is_object(claims) || has_exp < 0 || has_nbf < 0)
    return SB_AUTH_JWT_MALFORMED;
  const char *iss = json_string_value(json_object_get(claims, "iss"));
  if (!iss || strcmp(iss, j->issuer) != 0) return SB_AUTH_JWT_WRONG_ISSUER;
  if (!audience_ok(json_object_get(claims, "aud"), j->audience))
    return SB_AUTH_JWT_WRONG_AUDIENCE;
  /* An access token without exp would never end: refused as expired. */
  if (!has_exp || (double)now_s >= exp + j->leeway_s)
    return SB_AUTH_JWT_EXPIRED;
  if (has_nbf && (double)now_s + j->leeway_s < nbf)
    return SB_AUTH_JWT_NOT_YET_VALID;
  const char *tenant =
      json_string_value(json_object_get(claims, j->tenant_claim));
  if (!tenant || !tenant_valid(tenant)) return SB_AUTH_JWT_BAD_TENANT;
  if (!(tenant = intern_tenant(j, tenant))) return SB_AUTH_JWT_BAD_TENANT;
  json_t *sv = j->scope_claim ? json_object_get(claims, j->scope_claim)
                              : json_object_get(claims, "scope");
  if (!sv && !j->scope_claim) sv = json_object_get(claims, "scp");
  char **scopes = NULL;
  size_t nscopes = 0;
  if (sv) {
    int rc = sb_auth_scopes_parse(sv, &scopes, &nscopes);
    if (rc == SB_ENOMEM) return SB_AUTH_JWT_NO_MEMORY;
    if (rc != 0) return SB_AUTH_JWT_MALFORMED;
  }
  /* A scope claim that grants nothing is a restriction, not its absence:
   * "scope": "" leaves the caller no permission at all. */
  const char *none = "";
  sb_principal *p =
      sb_principal_new(SB_PRINCIPAL_JWT, tenant,
                       json_string_value(json_object_get(claims, "sub")),
                       nscopes ? (const char *const *)scopes : &none,
                       sv ? (nscopes ? nscopes : 1) : 0);
  sb_auth_scopes_free(scopes, nscopes);
  if (!p) return SB_AUTH_JWT_NO_MEMORY;
  /* A stream opened with the token ends with it (exp was checked above). */
  double until_s = exp + (double)j->leeway_s;
  if (until_s > 0 && until_s < 9.2e15) p->expires_ms = (int64_t)(until_s * 1000.0);
  *out = p;
  return SB_AUTH_JWT_OK;
}

/* Three segments of unpadded base64url (RFC 7515 2), none of a length
 * no encoding has (4n+1). Checked before cjose decodes anything: its
 * decoder asserts (aborts the process) on such a segment. */
static int segments_valid(const char *t) {
  size_t segs = 1, seg_len = 0;
  for (;; t++) {
    char c = *t;
    if (c == '.' || c == '\0') {
      if (seg_len % 4 == 1) return 0;
      if (c == '\0') break;
      segs++;
      seg_len = 0;
      continue;
    }
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return 0;
    seg_len++;
  }
  return segs == 3;
}

sb_auth_jwt_outcome sb_auth_jwt_verify(sb_auth_jwt *j, const char *token,
                                       int64_t now_s, sb_principal **out) {
  *out = NULL;
  if (!token) return SB_AUTH_JWT_MALFORMED;
  size_t len = strlen(token);
  if (len == 0 || len > MAX_TOKEN_BYTES || !segments_valid(token))
    return SB_AUTH_JWT_MALFORMED;
  /* The header's algorithm first, from our own reading of it: `none`
   * and HS* are refused before cjose sees the token at all. */
  cjose_err cerr;
  uint8_t *hdr_raw = NULL;
  size_t hdr_len = 0;
  const char *dot = strchr(token, '.');
  if (!cjose_base64url_decode(token, (size_t)(dot - token), &hdr_raw, &hdr_len,
                              &cerr))
    return SB_AUTH_JWT_MALFORMED;
  json_error_t jerr;
  json_t *hdr_json =
      json_loadb((const char *)hdr_raw, hdr_len, JSON_REJECT_DUPLICATES, &jerr);
  sb_free(hdr_raw);
  const char *hdr_alg = json_string_value(json_object_get(hdr_json, "alg"));
  int alg_ok = hdr_alg &&
               (strcmp(hdr_alg, "RS256") == 0 || strcmp(hdr_alg, "ES256") == 0);
  int alg_present = hdr_alg != NULL;
  json_decref(hdr_json);
  if (!alg_ok) return alg_present ? SB_AUTH_JWT_BAD_ALG : SB_AUTH_JWT_MALFORMED;
  cjose_jws_t *jws = cjose_jws_import(token, len, &cerr);
  if (!jws) return SB_AUTH_JWT_MALFORMED;
  sb_auth_jwt_outcome o = SB_AUTH_JWT_MALFORMED;
  json_t *claims = NULL;
  cjose_header_t *hdr = cjose_jws_get_protected(jws);
  const char *alg = hdr ? cjose_header_get(hdr, CJOSE_HDR_ALG, &cerr) : NULL;
  const char *kid = hdr ? cjose_header_get(hdr, CJOSE_HDR_KID, &cerr) : NULL;
  key_alg want;
  if (!alg) goto done;
  if (strcmp(alg, "RS256") == 0)
    want = KEY_RS256;
  else if (strcmp(alg, "ES256") == 0)
    want = KEY_ES256;
  else {
    o = SB_AUTH_JWT_BAD_ALG;
    goto done;
  }
  const jwt_key *k = find_key(j, kid);
  if (!k) {
    o = SB_AUTH_JWT_UNKNOWN_KEY;
    goto done;
  }
  if (k->alg != want) {
    o = SB_AUTH_JWT_KEY_MISMATCH;
    goto done;
  }
  if (!cjose_jws_verify(jws, k->jwk, &cerr)) {
    o = SB_AUTH_JWT_BAD_SIGNATURE;
    goto done;
  }
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &cerr)) goto done;
  claims =
      json_loadb((const char *)plain, plain_len, JSON_REJECT_DUPLICATES, &jerr);
  if (!claims) goto done;
  o = judge_claims(j, claims, now_s, out);
done:
  json_decref(claims);
  cjose_jws_release(jws);
  return o;
}
