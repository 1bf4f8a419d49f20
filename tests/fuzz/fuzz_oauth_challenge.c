/* fuzz_oauth_challenge.c: libFuzzer target for what an HTTP agent's
 * OAuth side hands switchboard (src/gateway/oauth.c): a WWW-Authenticate
 * challenge read for its auth-params, and URLs (its resource_metadata, a
 * metadata document's resource and issuer) made into metadata URIs and
 * compared with the agent's URL.
 *
 * The input up to its first newline is the challenge and one URL, the rest
 * the other URL. A value found is never longer than the challenge; a URL
 * covers itself whenever it is an http(s) URL with a host; crashes, leaks
 * and UB are findings too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "gateway/gateway.h"

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = sb_strndup((const char *)data, size); /* stops at a NUL */
  if (!text) return 0;
  char *nl = strchr(text, '\n');
  const char *other = "";
  if (nl) {
    *nl = '\0';
    other = nl + 1;
  }
  static const char *const names[] = {"resource_metadata", "scope", "error",
                                      "realm", ""};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char *v = NULL;
    int rc = sb_gateway_oauth_challenge_param(text, names[i], &v);
    check(rc == 0 || rc == 1);
    check((rc == 1) == (v != NULL));
    if (v) check(strlen(v) <= strlen(text));
    sb_free(v);
  }
  json_decref(sb_gateway_oauth_resource_metadata_urls(text));
  json_decref(sb_gateway_oauth_server_metadata_urls(other));
  (void)sb_gateway_oauth_resource_covers(text, other);
  if (strncmp(text, "https://", 8) == 0 && text[8] && !strchr("/?#", text[8]))
    check(sb_gateway_oauth_resource_covers(text, text));
  sb_free(text);
  return 0;
}
