/* test_gateway_oauth.c: the pure parts of an agent's OAuth client
 * (gateway/oauth.c): reading an HTTP challenge's auth-params, the metadata
 * URIs tried in the MCP authorization spec's order, and whether a
 * Protected Resource Metadata document is for the agent's URL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"
#include "gateway/gateway.h"

static void expect_param(const char *challenge, const char *name,
                         const char *want) {
  char *got = NULL;
  int rc = sb_gateway_oauth_challenge_param(challenge, name, &got);
  if (!challenge) challenge = "(none)"; /* for the messages below */
  if (!want) {
    if (rc != 0) fail_msg("%s in [%s]: got \"%s\"", name, challenge, got);
    assert_null(got);
    return;
  }
  if (rc != 1) fail_msg("%s in [%s]: not found", name, challenge);
  if (strcmp(got, want) != 0)
    fail_msg("%s in [%s]: got \"%s\", want \"%s\"", name, challenge, got, want);
  sb_free(got);
}

static void test_challenge_params(void **state) {
  (void)state;
  const char *c = "Bearer error=\"insufficient_scope\", scope=\"files:read "
                  "files:write\", resource_metadata=\"https://mcp.example/"
                  ".well-known/oauth-protected-resource\"";
  expect_param(c, "error", "insufficient_scope");
  expect_param(c, "scope", "files:read files:write");
  expect_param(c, "resource_metadata",
               "https://mcp.example/.well-known/oauth-protected-resource");
  expect_param(c, "realm", NULL);
  /* names in any case, tokens unquoted, escapes in quoted strings */
  expect_param("Bearer Scope=mcp,realm=\"a \\\"b\\\"\"", "scope", "mcp");
  expect_param("Bearer Scope=mcp,realm=\"a \\\"b\\\"\"", "realm", "a \"b\"");
  /* a comma inside a quoted value is not the end of it */
  expect_param("Bearer scope=\"a,b\", error=x", "error", "x");
  /* a name that ends another's is not it; the scheme is no param */
  expect_param("Bearer xscope=\"a\", scope=\"b\"", "scope", "b");
  expect_param("Bearer", "Bearer", NULL);
  /* a second challenge's params are read too, only a Bearer's */
  expect_param("Basic realm=\"x\", Bearer scope=\"s\"", "scope", "s");
  expect_param("Basic realm=\"x\", Bearer scope=\"s\"", "realm", NULL);
  expect_param("DPoP algs=\"ES256\", scope=\"x\", Bearer scope=\"y\"", "scope",
               "y");
  expect_param("DPoP scope=\"x\"", "scope", NULL);
  expect_param("bearer scope=\"a\", DPoP scope=\"b\"", "scope", "a");
  expect_param("scope=\"no scheme\"", "scope", NULL);
  /* cut short: what is there */
  expect_param("Bearer scope=\"unterminated", "scope", "unterminated");
  expect_param("Bearer scope=", "scope", "");
  expect_param(NULL, "scope", NULL);
}

static void expect_urls(json_t *urls, const char *const *want, size_t n) {
  assert_non_null(urls);
  if (json_array_size(urls) != n)
    fail_msg("%zu URLs, want %zu", json_array_size(urls), n);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(json_string_value(json_array_get(urls, i)), want[i]);
  json_decref(urls);
}

static void test_metadata_urls(void **state) {
  (void)state;
  static const char *const prm_path[] = {
      "https://mcp.example:8443/.well-known/oauth-protected-resource/public/"
      "mcp",
      "https://mcp.example:8443/.well-known/oauth-protected-resource"};
  expect_urls(sb_gateway_oauth_resource_metadata_urls(
                  "https://mcp.example:8443/public/mcp?x=1#f"),
              prm_path, 2);
  static const char *const prm_root[] = {
      "http://mcp.example/.well-known/oauth-protected-resource"};
  expect_urls(sb_gateway_oauth_resource_metadata_urls("http://mcp.example/"),
              prm_root, 1);
  static const char *const as_path[] = {
      "https://auth.example/.well-known/oauth-authorization-server/tenant1",
      "https://auth.example/.well-known/openid-configuration/tenant1",
      "https://auth.example/tenant1/.well-known/openid-configuration"};
  expect_urls(
      sb_gateway_oauth_server_metadata_urls("https://auth.example/tenant1"),
      as_path, 3);
  static const char *const as_root[] = {
      "https://auth.example/.well-known/oauth-authorization-server",
      "https://auth.example/.well-known/openid-configuration"};
  expect_urls(sb_gateway_oauth_server_metadata_urls("https://auth.example"),
              as_root, 2);
  expect_urls(sb_gateway_oauth_server_metadata_urls("not a url"), NULL, 0);
}

static void test_resource_covers(void **state) {
  (void)state;
  const char *url = "https://mcp.example/server/mcp";
  assert_true(
      sb_gateway_oauth_resource_covers("https://mcp.example/server/mcp", url));
  assert_true(sb_gateway_oauth_resource_covers("https://mcp.example", url));
  assert_true(sb_gateway_oauth_resource_covers("https://mcp.example/", url));
  assert_true(
      sb_gateway_oauth_resource_covers("https://MCP.example/server", url));
  /* not a whole segment, another path, origin, scheme or port */
  assert_false(
      sb_gateway_oauth_resource_covers("https://mcp.example/serv", url));
  assert_false(
      sb_gateway_oauth_resource_covers("https://mcp.example/other/mcp", url));
  assert_false(sb_gateway_oauth_resource_covers(
      "https://mcp.example/server/mcp/x", url));
  assert_false(sb_gateway_oauth_resource_covers(
      "https://attacker.example/server/mcp", url));
  assert_false(
      sb_gateway_oauth_resource_covers("http://mcp.example/server/mcp", url));
  assert_false(sb_gateway_oauth_resource_covers(
      "https://mcp.example:444/server/mcp", url));
  assert_false(sb_gateway_oauth_resource_covers("mcp.example", url));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_challenge_params),
      cmocka_unit_test(test_metadata_urls),
      cmocka_unit_test(test_resource_covers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
