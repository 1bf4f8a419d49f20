/* fuzz_jwt.c: libFuzzer target for the bearer-token path of an OAuth
 * resource server (src/auth/jwt.c, scope.c): the input is a token,
 * checked against a fixed JWKS (one P-256 key, whose private half is
 * gone: the seeds in corpus/fuzz_jwt/ were signed with it) at a fixed
 * time; whatever principal comes out has its scopes matched. The first
 * input byte, when it is 0x01, instead makes the rest a JWKS document,
 * so the key import is fuzzed too. Invariants: a token is OK only with a
 * principal of kind JWT and the configured tenant claim's value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "core/core.h"

static const char jwks[] =
    "{\"keys\":[{\"kty\":\"EC\",\"x\":\"ISSviyFEjHtdnSpqEO0CZHOE5-Vymj6kYMrPai-"
    "MqDw\",\"y\":\"UIW1qChIdM0a4gKTb1dA_4YiGvx6X2bWyBzyiv6I1WI\",\"crv\":"
    "\"P-256\",\"kid\":\"ec-1\",\"use\":\"sig\"}]}";

static sb_auth_jwt *verifier;

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  sb_core_init();
  sb_log_set_level(SB_LOG_ERROR + 1);
  sb_error err = {0};
  sb_auth_jwt_options o = {.issuer = "https://login.example.test",
                           .audience = "https://switchboard.example.test/mcp",
                           .leeway_s = 30};
  verifier = sb_auth_jwt_new(&o, &err);
  check(verifier &&
        sb_auth_jwt_set_jwks(verifier, jwks, sizeof jwks - 1, &err) == 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 20000) return 0;
  if (size && data[0] == 0x01) {
    sb_error err = {0};
    sb_auth_jwt_options o = {.issuer = "i", .audience = "a"};
    sb_auth_jwt *j = sb_auth_jwt_new(&o, &err);
    check(j != NULL);
    if (sb_auth_jwt_set_jwks(j, (const char *)data + 1, size - 1, &err) != 0)
      check(err.msg[0] != '\0' && sb_auth_jwt_keys(j) == 0);
    sb_auth_jwt_free(j);
    return 0;
  }
  char *token = sb_strndup((const char *)data, size);
  if (!token) return 0;
  sb_principal *p = NULL;
  sb_auth_jwt_outcome o = sb_auth_jwt_verify(verifier, token, 1800000000, &p);
  check(sb_auth_jwt_outcome_text(o) != NULL);
  if (o == SB_AUTH_JWT_OK) {
    check(p && p->kind == SB_PRINCIPAL_JWT && p->tenant && p->tenant[0]);
    json_t *paths = NULL;
    (void)sb_auth_permits(p, "agents:sales");
    (void)sb_auth_permits(p, "contexts:read:/user/name");
    if (sb_auth_read_paths(p, &paths) == SB_AUTH_READ_SOME)
      check(json_array_size(paths) > 0);
    json_decref(paths);
  } else {
    check(p == NULL);
  }
  sb_principal_unref(p);
  sb_free(token);
  return 0;
}
