/* Unit tests for src/auth/jwt.c and src/auth/scope.c: keys made and
 * tokens signed here with cjose; a good RS256 and ES256 token gives its
 * tenant, subject and scopes (scope string or scp array); each refusal
 * has its own outcome (forged, expired, not yet valid with and without
 * the leeway, wrong issuer and audience, alg none, HS256 keyed with the
 * public key, unknown kid, ES256 under an RSA kid, no tenant, garbage);
 * a JWKS with a private or symmetric key is refused or skipped; a JWKS
 * parsed into a key set changes no verifier until installed. The scope
 * grammar: prefixes at ':' and '/', wildcards, tools:call, admin, and
 * readable context paths. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <cjose/cjose.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "core/core.h"

#define ISS "https://login.example.test"
#define AUD "https://switchboard.example.test/mcp"
#define NOW 1800000000

static cjose_jwk_t *rsa, *ec, *rogue;
static char *jwks;

static char *public_jwk(cjose_jwk_t *k, const char *kid) {
  char *text = cjose_jwk_to_json(k, false, NULL);
  json_t *j = json_loads(text, 0, NULL);
  sb_free(text);
  json_object_set_new(j, "kid", json_string(kid));
  json_object_set_new(j, "use", json_string("sig"));
  char *out = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return out;
}

static int setup(void **state) {
  (void)state;
  sb_error err = {0};
  sb_auth_jwt_options o = {.issuer = ISS, .audience = AUD};
  sb_auth_jwt *probe = sb_auth_jwt_new(&o, &err); /* sets cjose's allocator */
  sb_auth_jwt_free(probe);
  static const uint8_t e[] = {1, 0, 1};
  rsa = cjose_jwk_create_RSA_random(2048, e, sizeof e, NULL);
  rogue = cjose_jwk_create_RSA_random(2048, e, sizeof e, NULL);
  ec = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, NULL);
  char *a = public_jwk(rsa, "rsa-1"), *b = public_jwk(ec, "ec-1");
  size_t n = strlen(a) + strlen(b) + 32;
  jwks = sb_malloc(n);
  snprintf(jwks, n, "{\"keys\":[%s,%s]}", a, b);
  sb_free(a);
  sb_free(b);
  return rsa && ec && rogue ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  cjose_jwk_release(rsa);
  cjose_jwk_release(ec);
  cjose_jwk_release(rogue);
  sb_free(jwks);
  return 0;
}

/* A token signed with key under alg and kid (NULL: none), claims as JSON
 * text. Caller frees with sb_free. */
static char *sign(cjose_jwk_t *key, const char *alg, const char *kid,
                  const char *claims) {
  cjose_header_t *h = cjose_header_new(NULL);
  cjose_header_set(h, CJOSE_HDR_ALG, alg, NULL);
  if (kid) cjose_header_set(h, CJOSE_HDR_KID, kid, NULL);
  cjose_jws_t *jws =
      cjose_jws_sign(key, h, (const uint8_t *)claims, strlen(claims), NULL);
  const char *compact = NULL;
  char *out = NULL;
  if (jws && cjose_jws_export(jws, &compact, NULL)) out = sb_strdup(compact);
  cjose_jws_release(jws);
  cjose_header_release(h);
  return out;
}

static char *b64u(const char *s) {
  char *out = NULL;
  size_t n = 0;
  cjose_base64url_encode((const uint8_t *)s, strlen(s), &out, &n, NULL);
  return out;
}

/* header.claims.signature put together by hand. */
static char *assemble(const char *header, const char *claims, const char *sig) {
  char *h = b64u(header), *c = b64u(claims);
  size_t n = strlen(h) + strlen(c) + strlen(sig) + 3;
  char *out = sb_malloc(n);
  snprintf(out, n, "%s.%s.%s", h, c, sig);
  sb_free(h);
  sb_free(c);
  return out;
}

static sb_auth_jwt *verifier(int leeway) {
  sb_error err = {0};
  sb_auth_jwt_options o = {.issuer = ISS, .audience = AUD, .leeway_s = leeway};
  sb_auth_jwt *j = sb_auth_jwt_new(&o, &err);
  assert_non_null(j);
  assert_int_equal(sb_auth_jwt_set_jwks(j, jwks, strlen(jwks), &err), 0);
  assert_int_equal(sb_auth_jwt_keys(j), 2);
  return j;
}

#define CLAIMS(extra)                                                          \
  "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"" AUD "\"],\"sub\":\"ada\","          \
  "\"tenant\":\"dealer-a\",\"exp\":1800000600" extra "}"

static sb_auth_jwt_outcome judge(sb_auth_jwt *j, char *token,
                                 sb_principal **p) {
  sb_principal *got = NULL;
  sb_auth_jwt_outcome o = sb_auth_jwt_verify(j, token, NOW, &got);
  sb_free(token);
  if (p)
    *p = got;
  else
    sb_principal_unref(got);
  return o;
}

static void test_good_tokens(void **state) {
  (void)state;
  sb_auth_jwt *j = verifier(0);
  sb_principal *p = NULL;
  assert_int_equal(
      judge(j,
            sign(rsa, "RS256", "rsa-1",
                 CLAIMS(",\"scope\":\"contexts:read agents:sales\"")),
            &p),
      SB_AUTH_JWT_OK);
  assert_int_equal(p->kind, SB_PRINCIPAL_JWT);
  assert_string_equal(p->tenant, "dealer-a");
  assert_string_equal(p->subject, "ada");
  assert_int_equal(p->restricted, 1);
  assert_int_equal(p->scopes_len, 2);
  assert_string_equal(p->scopes[1], "agents:sales");
  /* A stream opened with it ends with the token's exp. */
  assert_int_equal(p->expires_ms, 1800000600LL * 1000);
  assert_true(sb_principal_live(p, 1800000600LL * 1000 - 1));
  assert_false(sb_principal_live(p, 1800000600LL * 1000));
  p->revoked = 1;
  assert_false(sb_principal_live(p, 0));
  assert_true(sb_principal_live(NULL, 0));
  const char *tenant = p->tenant;
  sb_principal_unref(p);
  assert_int_equal(
      judge(j, sign(ec, "ES256", "ec-1", CLAIMS(",\"scp\":[\"tools:call\"]")),
            &p),
      SB_AUTH_JWT_OK);
  assert_ptr_equal(p->tenant, tenant); /* interned */
  assert_int_equal(p->scopes_len, 1);
  sb_principal_unref(p);
  /* No scope claim: unrestricted within the tenant. */
  assert_int_equal(judge(j, sign(rsa, "RS256", "rsa-1", CLAIMS("")), &p),
                   SB_AUTH_JWT_OK);
  assert_int_equal(p->restricted, 0);
  sb_principal_unref(p);
  /* An empty scope claim: restricted to nothing. */
  assert_int_equal(
      judge(j, sign(rsa, "RS256", "rsa-1", CLAIMS(",\"scope\":\"\"")), &p),
      SB_AUTH_JWT_OK);
  assert_int_equal(p->restricted, 1);
  assert_false(sb_auth_permits(p, "contexts:read"));
  sb_principal_unref(p);
  sb_auth_jwt_free(j);
}

static void test_refusals(void **state) {
  (void)state;
  sb_auth_jwt *j = verifier(0);
  assert_int_equal(judge(j, sign(rogue, "RS256", "rsa-1", CLAIMS("")), NULL),
                   SB_AUTH_JWT_BAD_SIGNATURE);
  assert_int_equal(judge(j, sign(rsa, "RS256", "rsa-2", CLAIMS("")), NULL),
                   SB_AUTH_JWT_UNKNOWN_KEY);
  assert_int_equal(judge(j, sign(rsa, "RS256", NULL, CLAIMS("")), NULL),
                   SB_AUTH_JWT_UNKNOWN_KEY); /* two keys: kid required */
  assert_int_equal(judge(j, sign(ec, "ES256", "rsa-1", CLAIMS("")), NULL),
                   SB_AUTH_JWT_KEY_MISMATCH);
  assert_int_equal(
      judge(j,
            sign(rsa, "RS256", "rsa-1",
                 "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"tenant\":\"t\","
                 "\"exp\":1799999999}"),
            NULL),
      SB_AUTH_JWT_EXPIRED);
  assert_int_equal(
      judge(j,
            sign(rsa, "RS256", "rsa-1",
                 "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"tenant\":\"t\"}"),
            NULL),
      SB_AUTH_JWT_EXPIRED); /* no exp */
  assert_int_equal(
      judge(j, sign(rsa, "RS256", "rsa-1", CLAIMS(",\"nbf\":1800000030")),
            NULL),
      SB_AUTH_JWT_NOT_YET_VALID);
  assert_int_equal(
      judge(j,
            sign(rsa, "RS256", "rsa-1",
                 "{\"iss\":\"https://evil\",\"aud\":\"" AUD "\",\"tenant\":"
                 "\"t\",\"exp\":1800000600}"),
            NULL),
      SB_AUTH_JWT_WRONG_ISSUER);
  assert_int_equal(
      judge(j,
            sign(rsa, "RS256", "rsa-1",
                 "{\"iss\":\"" ISS "\",\"aud\":\"https://other/mcp\","
                 "\"tenant\":\"t\",\"exp\":1800000600}"),
            NULL),
      SB_AUTH_JWT_WRONG_AUDIENCE);
  assert_int_equal(
      judge(j,
            sign(rsa, "RS256", "rsa-1",
                 "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"tenant\":"
                 "\"a b\",\"exp\":1800000600}"),
            NULL),
      SB_AUTH_JWT_BAD_TENANT);
  /* alg none, and HS256 whose secret is the RSA public key's JSON. */
  assert_int_equal(
      judge(j, assemble("{\"alg\":\"none\",\"kid\":\"rsa-1\"}", CLAIMS(""), ""),
            NULL),
      SB_AUTH_JWT_BAD_ALG);
  char *pub = public_jwk(rsa, "rsa-1");
  cjose_jwk_t *oct =
      cjose_jwk_create_oct_spec((const uint8_t *)pub, strlen(pub), NULL);
  sb_free(pub);
  assert_non_null(oct);
  assert_int_equal(judge(j, sign(oct, "HS256", "rsa-1", CLAIMS("")), NULL),
                   SB_AUTH_JWT_BAD_ALG);
  cjose_jwk_release(oct);
  const char *garbage[] = {"",
                           "abc",
                           "a.b",
                           "a.b.c",
                           "..",
                           "e30.e30.",
                           "eyJhbGciOiJSUzI1NiJ9..",
                           "a.b.c.d"};
  for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++)
    assert_int_not_equal(judge(j, sb_strdup(garbage[i]), NULL), SB_AUTH_JWT_OK);
  assert_int_equal(judge(j, sb_strdup("a.b.c"), NULL), SB_AUTH_JWT_MALFORMED);
  /* Segments cjose's decoder would abort on (found by fuzz_jwt): a
   * length of 4n+1, padding inside. */
  assert_int_equal(judge(j, sb_strdup("eyJhbGciOiJFUzI1NiJ9.e30.abcde"), NULL),
                   SB_AUTH_JWT_MALFORMED);
  assert_int_equal(judge(j, sb_strdup("eyJhbGciOiJFUzI1NiJ9.e30.ab=Q"), NULL),
                   SB_AUTH_JWT_MALFORMED);
  const char *bad_key = "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"abcde\","
                        "\"e\":\"AQAB\"}]}";
  sb_error kerr = {0};
  assert_int_equal(sb_auth_jwt_set_jwks(j, bad_key, strlen(bad_key), &kerr),
                   SB_EINVAL);
  assert_non_null(strstr(kerr.msg, "keys[0].n: not base64url"));
  sb_auth_jwt_free(j);
  /* The leeway lets a slightly early nbf through. */
  j = verifier(60);
  assert_int_equal(
      judge(j, sign(rsa, "RS256", "rsa-1", CLAIMS(",\"nbf\":1800000030")),
            NULL),
      SB_AUTH_JWT_OK);
  sb_auth_jwt_free(j);
}

static void test_jwks(void **state) {
  (void)state;
  sb_error err = {0};
  sb_auth_jwt_options o = {.issuer = ISS, .audience = AUD};
  sb_auth_jwt *j = sb_auth_jwt_new(&o, &err);
  const char *sym = "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}";
  assert_int_equal(sb_auth_jwt_set_jwks(j, sym, strlen(sym), &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "no RS256 or ES256"));
  char *priv = cjose_jwk_to_json(rsa, true, NULL);
  size_t n = strlen(priv) + 16;
  char *doc = sb_malloc(n);
  snprintf(doc, n, "{\"keys\":[%s]}", priv);
  sb_free(priv);
  assert_int_equal(sb_auth_jwt_set_jwks(j, doc, strlen(doc), &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "private key"));
  sb_free(doc);
  assert_int_equal(sb_auth_jwt_set_jwks(j, "[", 1, &err), SB_EINVAL);
  assert_int_equal(sb_auth_jwt_keys(j), 0);
  sb_auth_jwt_free(j);
}

/* A reload's two steps: parsing touches no verifier; installing swaps
 * its keys; a bad file or document gives no set. */
static void test_jwks_parse_then_install(void **state) {
  (void)state;
  sb_error err = {0};
  sb_auth_jwt *j = verifier(0);
  char *k = public_jwk(rogue, "rsa-1"); /* another key, the same kid */
  size_t n = strlen(k) + 16;
  char *doc = sb_malloc(n);
  snprintf(doc, n, "{\"keys\":[%s]}", k);
  sb_free(k);
  sb_auth_jwks *set = NULL;
  assert_int_equal(sb_auth_jwks_parse(doc, strlen(doc), &set, &err), 0);
  sb_free(doc);
  assert_int_equal(sb_auth_jwks_len(set), 1);
  /* Parsed, not installed: the verifier is as it was. */
  assert_int_equal(judge(j, sign(rsa, "RS256", "rsa-1", CLAIMS("")), NULL),
                   SB_AUTH_JWT_OK);
  assert_int_equal(judge(j, sign(rogue, "RS256", "rsa-1", CLAIMS("")), NULL),
                   SB_AUTH_JWT_BAD_SIGNATURE);
  sb_auth_jwt_install_jwks(j, set);
  assert_int_equal(sb_auth_jwt_keys(j), 1);
  assert_int_equal(judge(j, sign(rogue, "RS256", "rsa-1", CLAIMS("")), NULL),
                   SB_AUTH_JWT_OK);
  assert_int_equal(judge(j, sign(rsa, "RS256", "rsa-1", CLAIMS("")), NULL),
                   SB_AUTH_JWT_BAD_SIGNATURE);
  set = (sb_auth_jwks *)&err; /* a failure leaves NULL, whatever was there */
  assert_int_equal(sb_auth_jwks_parse("[", 1, &set, &err), SB_EINVAL);
  assert_null(set);
  set = (sb_auth_jwks *)&err;
  assert_int_equal(
      sb_auth_jwks_load_file("/nonexistent/jwks.json", &set, &err), SB_EIO);
  assert_null(set);
  assert_non_null(strstr(err.msg, "/nonexistent/jwks.json: cannot open"));
  /* From a file; a set never installed is freed whole. */
  char path[] = "/tmp/sb-jwks-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs(jwks, f);
  fclose(f);
  assert_int_equal(sb_auth_jwks_load_file(path, &set, &err), 0);
  assert_int_equal(sb_auth_jwks_len(set), 2);
  sb_auth_jwks_free(set);
  unlink(path);
  assert_int_equal(sb_auth_jwt_keys(j), 1);
  sb_auth_jwt_free(j);
}

static void test_scope_grammar(void **state) {
  (void)state;
  assert_true(sb_auth_scope_grants("admin", "agents:finance"));
  assert_true(sb_auth_scope_grants("agents", "agents:finance"));
  assert_true(sb_auth_scope_grants("agents:finance", "agents:finance"));
  assert_false(sb_auth_scope_grants("agents:fin", "agents:finance"));
  assert_true(sb_auth_scope_grants("agents:fin*", "agents:finance"));
  assert_true(sb_auth_scope_grants("tools:call", "tools:echo"));
  assert_false(sb_auth_scope_grants("tools:call", "agents:sales"));
  assert_false(sb_auth_scope_grants("contexts:write", "contexts:read"));
  assert_true(
      sb_auth_scope_grants("contexts:read:/user", "contexts:read:/user/name"));
  assert_false(
      sb_auth_scope_grants("contexts:read:/user", "contexts:read:/username"));
  assert_false(sb_auth_scope_grants("", "tools:echo"));
  assert_false(sb_auth_scope_grants("contexts:read:/user", "contexts:read"));

  /* what a key may be made with: scopes that can grant something */
  static const char *const valid[] = {
      "admin",         "contexts",           "contexts:read:/user/name",
      "agents:fin*",   "agents*",            "tools:call",
      "tools:sales__*", "resources:switchboard://notes", "runs:write:triage",
      "events:read",   "prompts:greeting",   "workflows:payroll",
      "finance" /* a context's metadata.permissions may name any */};
  for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
    if (!sb_auth_scope_valid(valid[i])) fail_msg("refused %s", valid[i]);
  static const char *const invalid[] = {
      "",      "bogus::",    "*",       ":x",          "contexts:",
      "a::b",  "contexts::x", "agents:fin*x", "runs:read:", "*:x"};
  for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
    if (sb_auth_scope_valid(invalid[i])) fail_msg("took %s", invalid[i]);

  const char *scopes[] = {"contexts:read:/user", "contexts:read:/entities",
                          "tools:echo"};
  sb_principal *p =
      sb_principal_new(SB_PRINCIPAL_API_KEY, "t", "id", scopes, 3);
  assert_true(sb_auth_permits(p, "tools:echo"));
  assert_false(sb_auth_permits(p, "tools:agents_list"));
  assert_true(sb_auth_permits(NULL, "anything"));
  json_t *paths = NULL;
  assert_int_equal(sb_auth_read_paths(p, &paths), SB_AUTH_READ_SOME);
  assert_int_equal(json_array_size(paths), 2);
  assert_string_equal(json_string_value(json_array_get(paths, 0)), "/user");
  json_decref(paths);
  json_t *needed = json_pack("[ss]", "tools:echo", "agents:finance");
  const char *missing = NULL;
  assert_false(sb_auth_permits_all(p, needed, &missing));
  assert_string_equal(missing, "agents:finance");
  json_decref(needed);
  sb_principal_unref(p);
  sb_principal *all = sb_principal_new(SB_PRINCIPAL_NONE, "t", NULL, NULL, 0);
  assert_int_equal(sb_auth_read_paths(all, &paths), SB_AUTH_READ_ALL);
  sb_principal_unref(all);

  char **v = NULL;
  size_t n = 0;
  json_t *s = json_string("  a  b:c ");
  assert_int_equal(sb_auth_scopes_parse(s, &v, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(v[1], "b:c");
  sb_auth_scopes_free(v, n);
  json_decref(s);
  s = json_pack("[si]", "a", 1);
  assert_int_equal(sb_auth_scopes_parse(s, &v, &n), SB_EINVAL);
  json_decref(s);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_tokens),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_jwks),
      cmocka_unit_test(test_jwks_parse_then_install),
      cmocka_unit_test(test_scope_grammar),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
