/* fuzz_ctx_path.c: libFuzzer target for the two path syntaxes of the
 * context module: RFC 6901 JSON Pointers (src/ctx/pointer.c) and
 * projection paths (src/ctx/project.c), the latter projected onto a fixed
 * context so resolution, merging and copying run too.
 *
 * Invariants: a parsed pointer re-escapes to exactly its text; a path that
 * validates always projects; projecting a path twice changes nothing; and
 * a path's whole section subsumes it. Input starting with '[' is also
 * tried as a JSON array of paths.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "ctx/ctx.h"

static void check(int cond) {
  if (!cond) abort();
}

static json_t *fixture;

/* Project the fixture onto paths (stolen); must succeed. */
static json_t *project(json_t *paths, json_t **missing) {
  json_t *out = NULL;
  sb_error err = {0};
  check(paths != NULL);
  check(sb_ctx_project(fixture, paths, &out, missing, &err) == 0);
  json_decref(paths);
  check(json_is_object(out));
  return out;
}

static void fuzz_pointer(const uint8_t *data, size_t size, const char *text) {
  sb_ctx_ptr p;
  sb_error err = {0};
  if (sb_ctx_ptr_parse((const char *)data, size, &p, &err) != 0) {
    check(p.ntokens == 0 && err.code == SB_EINVAL && err.msg[0]);
    return;
  }
  sb_buf b = SB_BUF_INIT;
  for (size_t i = 0; i < p.ntokens; i++)
    check(sb_ctx_ptr_append(&b, p.tokens[i].s, p.tokens[i].len) == 0);
  check(b.len == size && (size == 0 || memcmp(b.data, data, size) == 0));
  sb_buf_free(&b);
  sb_ctx_ptr_free(&p);
  json_t *found = NULL;
  int rc = sb_ctx_ptr_get(fixture, text, &found, NULL);
  check(rc == 0 ? found != NULL
                : (found == NULL && (rc == SB_ENOENT || rc == SB_EINVAL)));
}

static void fuzz_path(const char *text) {
  sb_error err = {0};
  if (sb_ctx_path_validate(text, &err) != 0) {
    check(err.code == SB_EINVAL && err.msg[0]);
    return;
  }
  /* json_pack refuses invalid UTF-8, which a JSON path list can't hold */
  json_t *single = json_pack("[s]", text);
  if (!single) return;
  json_t *missing = NULL;
  json_t *one = project(single, &missing);
  check(json_array_size(missing) <= 1);
  if (json_array_size(missing) == 0)
    check(json_object_size(one) == 1);
  else
    check(json_object_size(one) == 0);
  json_decref(missing);

  json_t *twice = project(json_pack("[s, s]", text, text), NULL);
  check(json_equal(one, twice));

  size_t section_len = strcspn(text, ".[");
  json_t *section = json_pack("[s%]", text, section_len);
  json_t *whole = project(json_incref(section), NULL);
  json_t *both = project(
      json_pack("[s, o]", text, json_incref(json_array_get(section, 0))), NULL);
  check(json_equal(whole, both));
  json_decref(section);
  json_decref(one);
  json_decref(twice);
  json_decref(whole);
  json_decref(both);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!fixture) {
    sb_core_init();
    fixture = json_loads(
        "{\"conversation\": {\"messages\": [{\"role\": \"user\", \"content\":"
        " \"a\"}, {\"role\": \"agent\", \"content\": \"b\", \"agentId\": "
        "\"x\"}, {\"role\": \"user\", \"content\": \"c\"}], \"intent\": "
        "\"buy\", \"entities\": {\"a/b\": 1, \"m~n\": [1, [2, 3]], \"\": 0}},"
        " \"workflow\": {\"variables\": {\"vin\": \"V\", \"list\": [[1, 2],"
        " [3]]}, \"completedSteps\": []}, \"user\": {\"id\": \"u\", "
        "\"preferences\": {\"x\": null}}, \"business\": {\"inventory\": "
        "{\"vehicles\": [{\"v\": 0}, {\"v\": 1}, {\"v\": 2}, {\"v\": 3}]}}}",
        0, NULL);
    check(fixture != NULL);
  }
  char *text = sb_strndup((const char *)data, size); /* stops at a NUL */
  check(text != NULL);
  fuzz_pointer(data, size, text);
  fuzz_path(text);
  if (size && data[0] == '[') {
    json_t *paths = json_loadb((const char *)data, size, 0, NULL);
    if (paths && sb_ctx_paths_validate(paths, NULL) == 0) {
      json_t *out = project(json_incref(paths), NULL);
      json_decref(out);
    }
    json_decref(paths);
  }
  sb_free(text);
  return 0;
}
