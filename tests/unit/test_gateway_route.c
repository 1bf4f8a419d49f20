/* test_gateway_route.c: calls routed with a context, through the call API
 * (no MCP, no network: stdio agents on pipes, a SQLite store in a temp
 * dir). Two agents share a capability; each requires a different context
 * path. The winner is worked out by hand from the registry's rule (the
 * coverage of contextRequirements dominates when the agents are otherwise
 * equal), and it changes when the context gains the other path. Each
 * agent receives exactly the paths it requires, and the one that answers
 * is recorded in metadata.agents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ctx/ctx.h"
#include "gateway/gateway.h"
#include "store/store.h"
#include "test_loop.h"

#define AGENT_SCRIPT SB_SOURCE_DIR "/tests/agents/raw_agent.mjs"

typedef struct fixture {
  uv_loop_t loop;
  char dir[64];
  char path[96];
  sb_store *store;
  sb_ctx_manager *ctx;
  sb_gateway *gw;
  int done;
  json_t *doc; /* the last context operation's document */
  sb_gateway_outcome outcome;
  json_t *got;     /* what the agent said it received */
  json_t *routing;
} fixture;

static json_t *agent_json(const char *id, const char *name,
                          const char *requires) {
  return json_pack("{sssssss[s]s{ss}s[s]sssisfs{sssss[ss]}}", "id", id, "name",
                   name, "type", "general", "capabilities", "quotes", "models",
                   "primary", "m", "contextRequirements", requires,
                   "outputFormat", "text", "maxTokens", 16, "temperature", 0.0,
                   "transport", "type", "stdio", "command", "node", "args",
                   AGENT_SCRIPT, name);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  snprintf(f->dir, sizeof f->dir, "/tmp/sb-route-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
  sb_error err = {0};
  sb_store_options so = {.path = f->path, .loop = &f->loop};
  if (!(f->store = sb_store_open_sqlite(&so, &err))) fail_msg("%s", err.msg);
  sb_ctx_manager_options mo = {.store = f->store};
  f->ctx = sb_ctx_manager_new(&mo);
  sb_gateway_options go = {.loop = &f->loop, .ctx = f->ctx};
  if (!(f->gw = sb_gateway_new(&go, &err))) fail_msg("%s", err.msg);
  json_t *a = agent_json("vinbot", "V", "workflow.variables.vin");
  json_t *b = agent_json("budgetbot", "B", "workflow.variables.budget");
  if (sb_gateway_add(f->gw, a, 0, 0, &err) != 0 ||
      sb_gateway_add(f->gw, b, 0, 0, &err) != 0)
    fail_msg("%s", err.msg);
  json_decref(a);
  json_decref(b);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  sb_gateway_free(f->gw);
  sb_ctx_manager_free(f->ctx);
  if (f->store) sb_store_close(f->store);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_loop_close(&f->loop);
  json_decref(f->doc);
  json_decref(f->got);
  json_decref(f->routing);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  if (system(cmd) != 0) return -1;
  free(f);
  return 0;
}

static void on_ctx(void *ud, const sb_ctx_result *res) {
  fixture *f = ud;
  if (res->rc != 0) fail_msg("context: %s", res->err.msg);
  json_decref(f->doc);
  f->doc = json_incref(res->doc);
  f->done = 1;
}

static void wait_done(fixture *f) {
  if (!run_until(&f->loop, flag_set, &f->done, 10000))
    fail_msg("nothing happened within 10 s");
  f->done = 0;
}

static void on_call_done(void *ud, const sb_gateway_result *r) {
  fixture *f = ud;
  f->outcome = r->outcome;
  json_decref(f->got);
  json_decref(f->routing);
  const char *text = json_string_value(json_object_get(
      json_array_get(json_object_get(r->result, "content"), 0), "text"));
  f->got = text ? json_loads(text, 0, NULL) : NULL;
  f->routing = json_incref(r->routing);
  f->done = 1;
}

static void call_at(fixture *f, const char *agent, const char *ctx_id) {
  json_t *params = json_pack("{s{}}", "arguments");
  sb_gateway_call_options o = {.agent = agent,
                               .capability = agent ? NULL : "quotes",
                               .context_id = ctx_id,
                               .tenant = "t1",
                               .method = "tools/call",
                               .name = "whoami",
                               .params = params,
                               .on_done = on_call_done,
                               .ud = f};
  sb_gateway_call *c = NULL;
  sb_error err = {0};
  assert_int_equal(sb_gateway_call_start(f->gw, &o, &c, &err), 0);
  json_decref(params);
  wait_done(f);
  assert_int_equal(f->outcome, SB_GATEWAY_ANSWERED);
}

static void call(fixture *f, const char *ctx_id) { call_at(f, NULL, ctx_id); }

static const char *winner(fixture *f) {
  const char *w = json_string_value(json_object_get(f->routing, "agent"));
  if (!w) fail_msg("no routing report: %s", json_dumps(f->routing, 0));
  return w;
}

static void test_the_context_decides(void **state) {
  fixture *f = *state;
  sb_error err = {0};
  /* Both connected first: an agent still starting would pass its turn to
   * a connected one rather than keep the call waiting. */
  call_at(f, "vinbot", NULL);
  call_at(f, "budgetbot", NULL);
  json_t *input = json_pack("{s{s{s{sisi}}}}", "data", "workflow", "variables",
                            "budget", 30000, "tradeIn", 1);
  assert_int_equal(sb_ctx_create_async(f->ctx, "t1", input, on_ctx, f, &err), 0);
  json_decref(input);
  wait_done(f);
  char id[64];
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(f->doc, "id")));

  /* budget present, vin absent: budgetbot covers 1 of 1, vinbot 0 of 1 */
  call(f, id);
  if (strcmp(winner(f), "budgetbot") != 0)
    fail_msg("routing: %s", json_dumps(f->routing, JSON_COMPACT));
  json_t *parts = json_object_get(f->routing, "parts");
  assert_true(json_real_value(json_object_get(parts, "coverage")) == 1.0);
  json_t *want = json_pack("{s{s{si}}}", "workflow", "variables", "budget", 30000);
  json_t *seen = json_object_get(json_object_get(json_object_get(f->got, "meta"),
                                                 SB_GATEWAY_META_CONTEXT),
                                 "data");
  assert_true(json_equal(seen, want)); /* not tradeIn, nothing else */
  json_decref(want);
  assert_int_equal(json_integer_value(json_object_get(f->routing, "contextVersion")), 2);

  /* the context gains the vin and loses the budget: vinbot wins now */
  json_t *patch = json_pack("{s{s{s{snss}}}}", "data", "workflow", "variables",
                            "budget", "vin", "1HGCM82633A004352");
  assert_int_equal(sb_ctx_update_async(f->ctx, "t1", id, 2, SB_CTX_MERGE_PATCH,
                                       patch, on_ctx, f, &err),
                   0);
  json_decref(patch);
  wait_done(f);
  call(f, id);
  assert_string_equal(winner(f), "vinbot");
  assert_int_equal(json_integer_value(json_object_get(f->routing, "contextVersion")), 4);

  /* both recorded, in order, each once */
  assert_int_equal(sb_ctx_get_async(f->ctx, "t1", id, 0, on_ctx, f, &err), 0);
  wait_done(f);
  json_t *agents = json_object_get(json_object_get(f->doc, "metadata"), "agents");
  want = json_pack("[ss]", "budgetbot", "vinbot");
  if (!json_equal(agents, want))
    fail_msg("metadata.agents: %s", json_dumps(f->doc, JSON_COMPACT));
  json_decref(want);

  /* another tenant's id reads like a missing one: nothing is called */
  json_t *params = json_pack("{s{}}", "arguments");
  sb_gateway_call_options o = {.capability = "quotes", .context_id = id,
                               .tenant = "t2", .method = "tools/call",
                               .name = "whoami", .params = params,
                               .on_done = on_call_done, .ud = f};
  sb_gateway_call *c = NULL;
  assert_int_equal(sb_gateway_call_start(f->gw, &o, &c, &err), 0);
  json_decref(params);
  wait_done(f);
  assert_int_equal(f->outcome, SB_GATEWAY_INVALID);
}

/* user.permissions keeps the user section from an agent: ranked on what
 * it is handed, it no longer wins on user paths it would get as missing.
 * Both agents require user.profile.name; namea, registered first, would
 * win a tie. */
static void test_coverage_counts_what_is_handed(void **state) {
  fixture *f = *state;
  sb_error err = {0};
  const char *ids[] = {"namea", "nameb"};
  for (int i = 0; i < 2; i++) {
    json_t *a = agent_json(ids[i], ids[i], "user.profile.name");
    json_array_set_new(json_object_get(a, "capabilities"), 0,
                       json_string("names"));
    if (sb_gateway_add(f->gw, a, 0, 0, &err) != 0) fail_msg("%s", err.msg);
    json_decref(a);
    call_at(f, ids[i], NULL); /* connected before the race */
  }
  json_t *input = json_pack("{s{s{s{ss}s[s]}}}", "data", "user", "profile",
                            "name", "Dana", "permissions", "agents:nameb");
  assert_int_equal(sb_ctx_create_async(f->ctx, "t1", input, on_ctx, f, &err), 0);
  json_decref(input);
  wait_done(f);
  json_t *params = json_pack("{s{}}", "arguments");
  sb_gateway_call_options o = {
      .capability = "names",
      .context_id = json_string_value(json_object_get(f->doc, "id")),
      .tenant = "t1", .method = "tools/call", .name = "whoami",
      .params = params, .on_done = on_call_done, .ud = f};
  sb_gateway_call *c = NULL;
  assert_int_equal(sb_gateway_call_start(f->gw, &o, &c, &err), 0);
  json_decref(params);
  wait_done(f);
  assert_int_equal(f->outcome, SB_GATEWAY_ANSWERED);
  if (strcmp(winner(f), "nameb") != 0)
    fail_msg("routing: %s", json_dumps(f->routing, JSON_COMPACT));
  const char *name = json_string_value(json_object_get(
      json_object_get(
          json_object_get(
              json_object_get(json_object_get(json_object_get(f->got, "meta"),
                                              SB_GATEWAY_META_CONTEXT),
                              "data"),
              "user"),
          "profile"),
      "name"));
  assert_non_null(name);
  assert_string_equal(name, "Dana");
}

/* The gateway stops while a routed call waits for its context: the call
 * ends (STOPPING) and the store's late answer frees it without touching
 * the gateway, the manager or the store's closed queue. */
static void test_stop_while_reading(void **state) {
  fixture *f = *state;
  sb_error err = {0};
  json_t *input = json_pack("{s{}}", "data");
  assert_int_equal(sb_ctx_create_async(f->ctx, "t1", input, on_ctx, f, &err), 0);
  json_decref(input);
  wait_done(f);
  char id[64];
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(f->doc, "id")));
  json_t *params = json_pack("{s{}}", "arguments");
  sb_gateway_call_options o = {.capability = "quotes", .context_id = id,
                               .tenant = "t1", .method = "tools/call",
                               .name = "whoami", .params = params,
                               .on_done = on_call_done, .ud = f};
  sb_gateway_call *c = NULL;
  assert_int_equal(sb_gateway_call_start(f->gw, &o, &c, &err), 0);
  json_decref(params);
  assert_non_null(c);
  sb_gateway_free(f->gw); /* before the read comes back */
  f->gw = NULL;
  assert_int_equal(f->done, 1);
  assert_int_equal(f->outcome, SB_GATEWAY_STOPPING);
  sb_ctx_manager_free(f->ctx);
  f->ctx = NULL;
  sb_store_close(f->store); /* runs the read's callback */
  f->store = NULL;
}

int main(void) {
  sb_core_init();
  sb_log_set_level(getenv("SB_TEST_LOG") ? SB_LOG_DEBUG : SB_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_the_context_decides, setup, teardown),
      cmocka_unit_test_setup_teardown(test_coverage_counts_what_is_handed,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_while_reading, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
