/* fuzz_param_headers.c: libFuzzer target for tool parameters mirrored into
 * HTTP headers (src/mcp/param_headers.c). The input is a tool's
 * inputSchema, the call's arguments and a header value, separated by the
 * first two newlines.
 *
 * Invariants: a schema is valid (0) or not (SB_EINVAL); for a valid one,
 * the headers a client builds for any arguments are the ones a server
 * accepts for them (verify answers 0); and a header value that is UTF-8
 * text decodes back to itself once encoded.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "mcp/mcp.h"

static void check(int cond) {
  if (!cond) abort();
}

static const char *lookup(void *ud, const char *name) {
  return json_string_value(json_object_get(ud, name));
}

static void round_trip(const char *value, size_t n) {
  for (size_t i = 0, k; i < n; i += k)
    if (!(k = sb_utf8_seq((const unsigned char *)value + i, n - i))) return;
  char *encoded = sb_mcp_header_encode(value);
  char *decoded = encoded ? sb_mcp_header_decode(encoded) : NULL;
  check(encoded && decoded && strcmp(decoded, value) == 0);
  for (const char *p = encoded; *p; p++) check(*p != '\r' && *p != '\n');
  sb_free(encoded);
  sb_free(decoded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int inited;
  if (!inited) {
    sb_core_init();
    inited = 1;
  }
  const uint8_t *nl1 = memchr(data, '\n', size);
  if (!nl1) return 0;
  const uint8_t *nl2 = memchr(nl1 + 1, '\n', size - (size_t)(nl1 + 1 - data));
  if (!nl2) return 0;
  json_t *schema = json_loadb((const char *)data, (size_t)(nl1 - data), 0, NULL);
  json_t *args = json_loadb((const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1),
                            JSON_DECODE_ANY, NULL);
  size_t vlen = size - (size_t)(nl2 + 1 - data);
  char *value = sb_malloc(vlen + 1);
  memcpy(value, nl2 + 1, vlen);
  value[vlen] = '\0';
  if (!memchr(value, '\0', vlen)) round_trip(value, vlen);
  char *decoded = sb_mcp_header_decode(value);
  sb_free(decoded);
  if (schema && args) {
    sb_error err = {0};
    int rc = sb_mcp_tool_headers_check(schema, &err);
    check(rc == 0 || rc == SB_EINVAL);
    if (rc == 0) {
      json_t *headers = sb_mcp_tool_headers_for(schema, args);
      check(sb_mcp_tool_headers_verify(schema, args, lookup, headers, &err) == 0);
      json_decref(headers);
    }
  }
  sb_free(value);
  json_decref(schema);
  json_decref(args);
  return 0;
}
