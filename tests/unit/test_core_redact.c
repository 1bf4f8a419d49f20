/* Unit tests for src/core/redact.c: the logger's redaction of secrets in
 * every known shape (bearer tokens, API keys with their id kept, header
 * lines, JSON members plain and escaped, name=value pairs, registered
 * literal secrets), what it leaves alone, and cutting at the buffer. */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <string.h>

#include "core/core.h"

static void expect(const char *in, const char *want) {
  char out[1024];
  size_t n = sb_log_redact(in, out, sizeof out);
  assert_string_equal(out, want);
  assert_int_equal(n, strlen(want));
}

static void test_shapes(void **state) {
  (void)state;
  expect("auth with Bearer abc.DEF-123_x/y+z= done",
         "auth with Bearer [REDACTED] done");
  expect("bearer   tok3n-long", "bearer [REDACTED]");
  expect("Bearer dG9rZW4gd2l0aA== end", "Bearer [REDACTED] end");
  /* a challenge's auth-params are no token: their names stay */
  expect("(WWW-Authenticate: Bearer resource_metadata=\"http://a/prm\")",
         "(WWW-Authenticate: Bearer resource_metadata=\"http://a/prm\")");
  expect("Bearer error=invalid_token_x", "Bearer error=invalid_token_x");
  expect(
      "key sb_0123456789ab_Yq3kLmN0pQrStUvWxYz0123456789abcdefghijk_-A refused",
      "key sb_0123456789ab_[REDACTED] refused");
  expect("Authorization: Basic dXNlcjpwYXNz\nnext",
         "Authorization: [REDACTED]\nnext");
  expect("headers: {\"cookie: a=b; c=d\"}",
         "headers: {\"cookie: [REDACTED]\"}");
  expect("set-cookie: sid=1; Path=/", "set-cookie: [REDACTED]");
  expect("{\"password\":\"hunter2\",\"user\":\"ada\"}",
         "{\"password\":\"[REDACTED]\",\"user\":\"ada\"}");
  expect("{\"api_key\" : \"k\\\"ey\", \"n\":1}",
         "{\"api_key\" : \"[REDACTED]\", \"n\":1}");
  expect("{\"accessToken\":\"t\",\"clientSecret\":\"s\",\"X-Api-Key\":\"x\"}",
         "{\"accessToken\":\"[REDACTED]\",\"clientSecret\":\"[REDACTED]\","
         "\"X-Api-Key\":\"[REDACTED]\"}");
  /* JSON inside a JSON string, as an error message may quote it. */
  expect("data: \"{\\\"token\\\":\\\"s3cr3t\\\",\\\"a\\\":1}\"",
         "data: \"{\\\"token\\\":\\\"[REDACTED]\\\",\\\"a\\\":1}\"");
  expect("agent at http://ops:hunter22@10.0.0.5:8080/mcp is down",
         "agent at http://[REDACTED]@10.0.0.5:8080/mcp is down");
  expect("\"https://ghp_tok3n@example.test\"",
         "\"https://[REDACTED]@example.test\"");
  expect(
      "GET /x?token=abc&page=2 api_key=zz password=p;",
      "GET /x?token=[REDACTED]&page=2 api_key=[REDACTED] password=[REDACTED];");
  /* the message goes on after the URL; a ':' inside the value is masked */
  expect("connect to http://h/mcp?access_token=s3cr3t: Connection refused",
         "connect to http://h/mcp?access_token=[REDACTED]: Connection refused");
  expect("token=ab:cd: x", "token=[REDACTED]: x");
}

static void test_left_alone(void **state) {
  (void)state;
  const char *plain[] = {
      "listening on http://127.0.0.1:8080/mcp",
      "{\"maxTokens\":1024,\"tokenCount\":5}",
      "sb_nothex_here and sb_0123456789ab_ short",
      "the bearer token was missing",
      "a tokenizer=none setting",
      "",
  };
  expect(plain[0], plain[0]);
  expect(plain[1], plain[1]);
  expect(plain[2], plain[2]);
  expect(plain[3], plain[3]);
  expect(plain[5], plain[5]);
  /* "tokenizer" contains "token": a name=value with such a name is
   * masked (erring on the side of the secret). */
  expect(plain[4], "a tokenizer=[REDACTED] setting");
}

static void test_url_redacted(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"http://127.0.0.1:9000/mcp", "http://127.0.0.1:9000/mcp"},
      {"https://ops:pw@agents.test:8443/mcp?region=n&access_token=t#f",
       "https://<x>@agents.test:8443/mcp?region=n&access_token=<x>#<x>"},
      /* Signed URLs and plain keys; the fragment whatever it holds. */
      {"http://h/p?key=k1&X-Amz-Signature=s1&sig=s2&Credential=c&q=ok",
       "http://h/p?key=<x>&X-Amz-Signature=<x>&sig=<x>&Credential=<x>&q=ok"},
      {"http://h/mcp#token=f", "http://h/mcp#<x>"},
      {"http://h/mcp#", "http://h/mcp#"},
      {"http://tok@h/p?a=1;secret=2&b", "http://<x>@h/p?a=1;secret=<x>&b"},
      /* An @ after the host is the path's, not a userinfo. */
      {"http://h/users/@me?q=a@b", "http://h/users/@me?q=a@b"},
      {"http://h?apikey=", "http://h?apikey=<x>"},
      {"no scheme@here", "no scheme@here"},
      {"", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *got = sb_url_redacted(cases[i][0], "<x>");
    assert_non_null(got);
    assert_string_equal(got, cases[i][1]);
    sb_free(got);
  }
}

static void test_registered_secrets(void **state) {
  (void)state;
  assert_int_equal(sb_log_add_secret("short"), SB_EINVAL);
  assert_int_equal(sb_log_add_secret("llm-key-0123456789"), 0);
  assert_int_equal(sb_log_add_secret("llm-key-0123456789"), 0); /* once */
  expect("upstream said llm-key-0123456789 is invalid; llm-key-0123456789",
         "upstream said [REDACTED] is invalid; [REDACTED]");
  sb_log_clear_secrets();
  expect("llm-key-0123456789", "llm-key-0123456789");
}

static void test_cut(void **state) {
  (void)state;
  char out[12];
  size_t n = sb_log_redact("Bearer abcdefghijklmnop tail", out, sizeof out);
  assert_int_equal(n, sizeof out - 1);
  assert_string_equal(out, "Bearer [RED");
  assert_int_equal(sb_log_redact("x", out, 0), 0);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shapes),
      cmocka_unit_test(test_left_alone),
      cmocka_unit_test(test_url_redacted),
      cmocka_unit_test(test_registered_secrets),
      cmocka_unit_test(test_cut),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
