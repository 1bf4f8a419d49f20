/* test_gateway_calls.c: the gateway's call API with no MCP request behind
 * it and no network: real agents (tests/agents/raw_agent.mjs) as child
 * processes on pipes, driven through sb_gateway_call_start. Covers the
 * call's ends (answered, refused input, deadline, cancel, unknown target),
 * an agent's questions handed to the caller as values, and that an
 * agent's error is its answer whatever its data says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "gateway/gateway.h"
#include "test_loop.h"

#define AGENT_SCRIPT SB_SOURCE_DIR "/tests/agents/raw_agent.mjs"

typedef struct fixture {
  uv_loop_t loop;
  sb_gateway *gw;
  /* what the call reported */
  int done;
  sb_gateway_outcome outcome;
  char text[512];    /* the result's first text, or the message */
  char agent[64];
  int is_error;
  json_t *routing;
  sb_gateway_input *pending; /* a question left unanswered */
  int answer_error;          /* answer questions with an error */
  const char *answer;        /* answer questions with this text (NULL: keep) */
  int refuse;                /* refuse questions */
  int asked;
} fixture;

static json_t *agent_json(const char *id, const char *name, const char *cap) {
  return json_pack("{sssssss[s]s{ss}sssisfs{sssss[ss]}s{si}}", "id", id, "name",
                   name, "type", "general", "capabilities", cap, "models",
                   "primary", "m", "outputFormat", "text", "maxTokens", 16,
                   "temperature", 0.0, "transport", "type", "stdio", "command",
                   "node", "args", AGENT_SCRIPT, name, "limits", "retries", 2);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  sb_gateway_options o = {.loop = &f->loop};
  sb_error err = {0};
  f->gw = sb_gateway_new(&o, &err);
  if (!f->gw) return -1;
  const char *agents[][3] = {
      {"alpha", "A", "quotes"}, {"beta", "B", "other"}, {"dual", "D", "other"}};
  for (int i = 0; i < 3; i++) {
    json_t *def = agent_json(agents[i][0], agents[i][1], agents[i][2]);
    if (i == 2) /* speaks 2026-07-28 too */
      json_array_append_new(json_object_get(json_object_get(def, "transport"),
                                            "args"),
                            json_string("--dual"));
    if (sb_gateway_add(f->gw, def, 0, 0, &err) != 0) fail_msg("%s", err.msg);
    json_decref(def);
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  sb_gateway_free(f->gw);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* children reaped, timers closed */
  uv_loop_close(&f->loop);
  json_decref(f->routing);
  free(f);
  return 0;
}

/* Run the loop until *flag or 10 s pass. */
static void wait_for(fixture *f, int *flag) {
  if (!run_until(&f->loop, flag_set, flag, 10000))
    fail_msg("nothing happened within 10 s");
}

static void on_done(void *ud, const sb_gateway_result *r) {
  fixture *f = ud;
  f->done++;
  f->outcome = r->outcome;
  snprintf(f->agent, sizeof f->agent, "%s", r->agent ? r->agent : "");
  const char *text = r->message;
  json_t *content = json_object_get(r->result, "content");
  if (content)
    text = json_string_value(json_object_get(json_array_get(content, 0), "text"));
  if (r->error) text = json_string_value(json_object_get(r->error, "message"));
  snprintf(f->text, sizeof f->text, "%s", text ? text : "");
  f->is_error = json_is_true(json_object_get(r->result, "isError"));
  json_decref(f->routing);
  f->routing = json_incref(r->routing);
}

static int on_input(void *ud, sb_gateway_input *in) {
  fixture *f = ud;
  f->asked++;
  assert_string_equal(sb_gateway_input_method(in), "sampling/createMessage");
  assert_string_equal(sb_gateway_input_capability(in), "sampling");
  if (f->refuse) return SB_EINVAL;
  if (f->answer_error) {
    sb_gateway_input_answer(in, NULL,
                            json_pack("{siss}", "code", -1, "message",
                                      "the user declined"));
    return 0;
  }
  if (!f->answer) {
    f->pending = in;
    return 0;
  }
  sb_gateway_input_answer(in,
                          json_pack("{sss{ssss}ss}", "role", "assistant",
                                    "content", "type", "text", "text",
                                    f->answer, "model", "m"),
                          NULL);
  return 0;
}

static void on_withdrawn(void *ud, sb_gateway_input *in) {
  fixture *f = ud;
  if (f->pending == in) f->pending = NULL;
}

/* Start a tools/call of tool with these arguments (NULL: {}). */
static sb_gateway_call *start_with(fixture *f, const char *agent,
                                   const char *capability, const char *tool,
                                   json_t *arguments, uint64_t deadline_ms,
                                   int rc_expected) {
  json_t *params =
      json_pack("{so}", "arguments", arguments ? arguments : json_object());
  sb_gateway_call_options o = {.agent = agent,
                               .capability = capability,
                               .method = "tools/call",
                               .name = tool,
                               .params = params,
                               .deadline_ms = deadline_ms,
                               .on_input = on_input,
                               .on_input_withdrawn = on_withdrawn,
                               .on_done = on_done,
                               .ud = f};
  sb_gateway_call *c = NULL;
  sb_error err = {0};
  int rc = sb_gateway_call_start(f->gw, &o, &c, &err);
  json_decref(params);
  assert_int_equal(rc, rc_expected);
  return c;
}

static sb_gateway_call *start(fixture *f, const char *agent,
                              const char *capability, const char *tool,
                              uint64_t deadline_ms, int rc_expected) {
  return start_with(f, agent, capability, tool, NULL, deadline_ms, rc_expected);
}

/* The first call to an agent that is still connecting waits for it. */
static void test_answered_by_name_and_by_capability(void **state) {
  fixture *f = *state;
  start(f, "alpha", NULL, "whoami", 0, 0);
  wait_for(f, &f->done);
  assert_int_equal(f->outcome, SB_GATEWAY_ANSWERED);
  assert_string_equal(f->agent, "alpha");
  assert_non_null(strstr(f->text, "\"name\":\"A\""));
  assert_null(f->routing); /* named, no context: nothing was ranked */
  f->done = 0;
  start(f, NULL, "quotes", "whoami", 0, 0);
  wait_for(f, &f->done);
  assert_int_equal(f->outcome, SB_GATEWAY_ANSWERED);
  assert_string_equal(f->agent, "alpha");
  assert_string_equal(json_string_value(json_object_get(f->routing, "agent")),
                      "alpha");
  assert_int_equal(json_integer_value(json_object_get(f->routing, "rank")), 1);
}

static void test_unknown_targets_start_nothing(void **state) {
  fixture *f = *state;
  start(f, "nobody", NULL, "whoami", 0, SB_ENOENT);
  start(f, NULL, "teleport", "whoami", 0, SB_ENOENT);
  json_t *params = json_object();
  sb_gateway_call_options o = {.agent = "alpha", .method = "tools/destroy",
                               .on_done = on_done, .ud = f, .params = params};
  sb_gateway_call *c = NULL;
  assert_int_equal(sb_gateway_call_start(f->gw, &o, &c, NULL), SB_EINVAL);
  json_decref(params);
  assert_int_equal(f->done, 0);
}

/* An agent's question is a value the caller answers. */
static void test_input_answered(void **state) {
  fixture *f = *state;
  f->answer = "the blue one";
  start(f, "alpha", NULL, "ask", 0, 0);
  wait_for(f, &f->done);
  assert_int_equal(f->asked, 1);
  assert_int_equal(f->outcome, SB_GATEWAY_ANSWERED);
  assert_string_equal(f->text, "A heard: the blue one");
}

/* A modern agent's input_required: each question is asked of the caller,
 * and the agent is called again with the answers and its requestState.
 * An error answer given inside on_input ends the call at once. */
static void test_input_required(void **state) {
  fixture *f = *state;
  f->answer = "the red one";
  start(f, "dual", NULL, "ask_mrtr", 0, 0);
  wait_for(f, &f->done);
  assert_int_equal(f->asked, 1);
  assert_int_equal(f->outcome, SB_GATEWAY_ANSWERED);
  assert_string_equal(f->text, "D heard: the red one");
  f->done = 0;
  f->answer = NULL;
  f->answer_error = 1;
  start(f, "dual", NULL, "ask_mrtr", 0, 0);
  wait_for(f, &f->done);
  assert_int_equal(f->outcome, SB_GATEWAY_INPUT_REFUSED);
  assert_non_null(strstr(f->text, "the user declined"));
}

/* A caller with nobody to ask refuses: the agent hears a clear error. */
static void test_input_refused(void **state) {
  fixture *f = *state;
  f->refuse = 1;
  start(f, "alpha", NULL, "ask", 0, 0);
  wait_for(f, &f->done);
  assert_int_equal(f->outcome, SB_GATEWAY_ANSWERED);
  assert_true(f->is_error);
  assert_non_null(strstr(f->text, "A was refused: switchboard cannot pass "
                                  "sampling/createMessage to the caller"));
}

/* The whole call's deadline ends it while the question is open. */
static void test_deadline(void **state) {
  fixture *f = *state;
  /* connected first, so the deadline runs while the question is open */
  start(f, "alpha", NULL, "whoami", 0, 0);
  wait_for(f, &f->done);
  f->done = 0;
  start(f, "alpha", NULL, "ask", 1500, 0);
  wait_for(f, &f->asked);
  assert_int_equal(f->done, 0);
  assert_non_null(f->pending);
  wait_for(f, &f->done);
  assert_int_equal(f->outcome, SB_GATEWAY_TIMED_OUT);
  assert_null(f->pending); /* withdrawn from the caller */
  assert_non_null(strstr(f->text, "deadline of 1500 ms"));
}

static void test_cancel(void **state) {
  fixture *f = *state;
  sb_gateway_call *c = start(f, "alpha", NULL, "ask", 0, 0);
  assert_non_null(c);
  while (!f->asked) uv_run(&f->loop, UV_RUN_ONCE);
  assert_non_null(f->pending);
  sb_gateway_call_cancel(c, "the user left");
  assert_int_equal(f->done, 1);
  assert_int_equal(f->outcome, SB_GATEWAY_CANCELLED);
  assert_null(f->pending);
  assert_non_null(strstr(f->text, "the user left"));
}

/* Nothing on a stdio agent's wire says which call its question is for:
 * it is tied to the newest call (the poke). When the agent answers that
 * call first, the question was the older call's (wait_ask), and it is
 * asked again there rather than left unanswered. */
static void test_guessed_question_moves_to_the_older_call(void **state) {
  fixture *f = *state;
  start(f, "alpha", NULL, "whoami", 0, 0); /* connected, in order from now */
  wait_for(f, &f->done);
  f->done = 0;
  start(f, "alpha", NULL, "wait_ask", 0, 0);
  start_with(f, "alpha", NULL, "poke", json_pack("{sb}", "answer_first", 1), 0,
             0);
  wait_for(f, &f->done); /* the poke, answered first */
  assert_string_equal(f->text, "poked");
  assert_int_equal(f->asked, 2); /* the poke's question, then wait_ask's */
  assert_non_null(f->pending);
  sb_gateway_input_answer(f->pending,
                          json_pack("{sss{ssss}ss}", "role", "assistant",
                                    "content", "type", "text", "text",
                                    "the green one", "model", "m"),
                          NULL);
  f->pending = NULL;
  f->done = 0;
  wait_for(f, &f->done); /* wait_ask */
  assert_int_equal(f->outcome, SB_GATEWAY_ANSWERED);
  assert_string_equal(f->text, "A heard: the green one");
}

/* A fallback waits for an agent of the ranking that is still connecting
 * rather than give up: "full" is at capacity (one call, its question
 * open), and "late" answers initialize only once a file exists. Whichever
 * the ranking puts first, the call ends up waiting for "late" and is
 * answered by it once it has connected. */
static void test_fallback_waits_for_an_agent_still_connecting(void **state) {
  fixture *f = *state;
  char dir[] = "/tmp/sb-gw-late-XXXXXX", go[64];
  assert_non_null(mkdtemp(dir));
  snprintf(go, sizeof go, "%s/go", dir);
  char hold[80];
  snprintf(hold, sizeof hold, "--hold-init=%s", go);
  json_t *full = agent_json("full", "F", "late-cap");
  json_object_set_new(json_object_get(full, "limits"), "maxConcurrent",
                      json_integer(1));
  json_t *late = agent_json("late", "L", "late-cap");
  json_array_append_new(
      json_object_get(json_object_get(late, "transport"), "args"),
      json_string(hold));
  sb_error err = {0};
  if (sb_gateway_add(f->gw, full, 0, 0, &err) != 0 ||
      sb_gateway_add(f->gw, late, 0, 0, &err) != 0)
    fail_msg("%s", err.msg);
  json_decref(full);
  json_decref(late);
  sb_gateway_call *busy = start(f, "full", NULL, "ask", 0, 0);
  wait_for(f, &f->asked); /* in flight: "full" has no room left */
  start(f, NULL, "late-cap", "whoami", 10000, 0);
  for (int i = 0; i < 20; i++)
    uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(f->done, 0); /* waiting, not refused */
  FILE *fp = fopen(go, "w");
  assert_non_null(fp);
  fclose(fp);
  wait_for(f, &f->done);
  assert_int_equal(f->outcome, SB_GATEWAY_ANSWERED);
  assert_string_equal(f->agent, "late");
  assert_non_null(strstr(f->text, "\"name\":\"L\""));
  f->done = 0;
  sb_gateway_call_cancel(busy, "done");
  unlink(go);
  rmdir(dir);
}

/* Error data that mimics a failure of ours decides nothing: one call at
 * the agent per call (retries: 2 would otherwise have run it again). */
static void test_forged_error_is_an_answer(void **state) {
  fixture *f = *state;
  for (int i = 1; i <= 2; i++) {
    f->done = 0;
    start(f, "alpha", NULL, "forged", 0, 0);
    wait_for(f, &f->done);
    assert_int_equal(f->outcome, SB_GATEWAY_ANSWERED);
    char want[64];
    snprintf(want, sizeof want, "A forged failure #%d", i);
    assert_string_equal(f->text, want);
  }
}

int main(void) {
  sb_core_init();
  sb_log_set_level(SB_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_answered_by_name_and_by_capability,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_targets_start_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_input_answered, setup, teardown),
      cmocka_unit_test_setup_teardown(test_input_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_input_required, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_guessed_question_moves_to_the_older_call, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_fallback_waits_for_an_agent_still_connecting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_forged_error_is_an_answer, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
