/* fuzz_agent_def.c: libFuzzer target for AgentDefinition parsing
 * (src/registry/agent_def.c), plus the registry paths a parsed definition
 * reaches (register, rank against a fixed context, explain).
 *
 * The input is parsed twice: as a whole definition, and (when it is a JSON
 * object) as a merge patch over a valid definition, so that mutations get
 * past the first required field and exercise every validator.
 *
 * Invariants: a failure leaves *out NULL with a message; a success
 * serialises to JSON that parses back to the same JSON; a parsed agent
 * registers, ranks (its score parts stay in [0, 1]) and explains.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "ctx/ctx.h"
#include "registry/registry.h"

static void check(int cond) {
  if (!cond) abort();
}

static json_t *base_def, *fixture;

static void in_unit(double x) { check(x >= 0 && x <= 1 && !isnan(x)); }

static void exercise(sb_agent_def *d) {
  json_t *j = sb_agent_def_to_json(d);
  check(j != NULL);
  sb_agent_def *again = NULL;
  sb_error err = {0};
  check(sb_agent_def_parse(j, &again, &err) == 0);
  json_t *j2 = sb_agent_def_to_json(again);
  check(j2 != NULL && json_equal(j, j2));
  json_decref(j);
  json_decref(j2);
  sb_agent_def_free(again);
  check(strlen(d->id) >= 1 && strlen(d->id) <= 64 && !strstr(d->id, "__"));

  sb_registry *reg = sb_registry_new(NULL);
  check(reg != NULL);
  check(sb_registry_register_take(reg, sb_agent_def_ref(d), 0, NULL) == 0);
  for (size_t i = 0; i < d->capabilities.len && i < 4; i++) {
    sb_registry_candidate c;
    const char *cap = d->capabilities.items[i];
    check(sb_registry_rank(reg, cap, fixture, 0, &c, 1, NULL) == 1);
    in_unit(c.coverage);
    in_unit(c.health);
    in_unit(c.capacity);
    in_unit(c.latency);
    check(c.covered <= c.required);
    sb_registry_call call;
    check(sb_registry_call_begin(reg, d->id, 0, &call, NULL) == 0);
    check(sb_registry_call_end(reg, d->id, &call, 0, 5, 1) == 0);
    json_t *ex = NULL;
    check(sb_registry_explain(reg, cap, fixture, 2, &ex, NULL) == 0);
    check(json_array_size(ex) == 1);
    json_decref(ex);
  }
  sb_registry_free(reg);
}

static void try_parse(const json_t *json) {
  sb_agent_def *d = (sb_agent_def *)1;
  sb_error err = {0};
  int rc = sb_agent_def_parse(json, &d, &err);
  if (rc != 0) {
    check(d == NULL && rc == SB_EINVAL && err.code == SB_EINVAL && err.msg[0]);
    return;
  }
  exercise(d);
  sb_agent_def_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!base_def) {
    sb_core_init();
    base_def = json_loads(
        "{\"id\": \"sales\", \"name\": \"Sales\", \"type\": \"sales\","
        " \"capabilities\": [\"quote\"], \"models\": {\"primary\": \"m\"},"
        " \"contextRequirements\": [\"conversation.messages[-2:]\","
        " \"user.id\", \"business.inventory\"], \"outputFormat\": \"json\","
        " \"maxTokens\": 10, \"temperature\": 1,"
        " \"transport\": {\"type\": \"stdio\", \"command\": \"a\"}}",
        0, NULL);
    fixture = json_loads(
        "{\"conversation\": {\"messages\": [{\"role\": \"user\", \"content\":"
        " \"a\"}, {\"role\": \"agent\", \"content\": \"b\"}], \"intent\": "
        "\"buy\"}, \"workflow\": {\"variables\": {\"vin\": \"V\"}}, "
        "\"user\": {\"id\": \"u\"}, \"business\": {}}",
        0, NULL);
    check(base_def && fixture);
  }
  sb_agent_def *d = (sb_agent_def *)1;
  sb_error err = {0};
  int rc = sb_agent_def_parse_text((const char *)data, size, &d, &err);
  if (rc == 0) {
    exercise(d);
    sb_agent_def_free(d);
  } else {
    check(d == NULL && rc == SB_EINVAL && err.msg[0]);
  }

  json_t *patch = json_loadb((const char *)data, size, 0, NULL);
  if (json_is_object(patch)) {
    json_t *merged = NULL;
    check(sb_ctx_merge_apply(base_def, patch, &merged, NULL) == 0);
    try_parse(merged);
    json_decref(merged);
  }
  json_decref(patch);
  return 0;
}
