/* fuzz_llm_schema.c: libFuzzer target for the JSON Schema subset that
 * checks a model's structured answer (src/llm/schema.c). The input is a
 * schema and a value, two JSON documents separated by the first newline.
 *
 * Invariants: the check answers 0 or SB_EINVAL, and a refusal names the
 * path at fault ("$..."); a value always matches the empty schema.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "llm/llm.h"

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int inited;
  if (!inited) {
    sb_core_init();
    inited = 1;
  }
  const uint8_t *nl = memchr(data, '\n', size);
  if (!nl) return 0;
  size_t first = (size_t)(nl - data);
  json_t *schema = json_loadb((const char *)data, first, JSON_DECODE_ANY, NULL);
  json_t *value = json_loadb((const char *)nl + 1, size - first - 1,
                             JSON_DECODE_ANY, NULL);
  if (schema && value) {
    sb_error err = {0};
    int rc = sb_llm_schema_check(schema, value, &err);
    check(rc == 0 || rc == SB_EINVAL);
    if (rc != 0) check(err.msg[0] == '$');
    json_t *empty = json_object();
    sb_error err2 = {0};
    check(sb_llm_schema_check(empty, value, &err2) == 0);
    json_decref(empty);
  }
  json_decref(schema);
  json_decref(value);
  return 0;
}
