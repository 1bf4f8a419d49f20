/* test_llm.c: src/llm/ against tests/agents/openai_server.mjs (a local
 * OpenAI-compatible server whose models behave by their name's prefix:
 * ok-, fence-, fail-, slow-, malformed-, empty-, text-, badshape-), and
 * the JSON Schema subset on its own. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/llm.h"
#include "net/net.h"
#include "test_loop.h"

/* ---- the test server ------------------------------------------------------ */

typedef struct server {
  uv_process_t proc;
  uv_pipe_t out;
  char buf[64];
  size_t len;
  int port;
  int exited;
} server;

static server srv;
static uv_loop_t loop;
static char base_url[64];

static void srv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  server *s = h->data;
  *buf = uv_buf_init(s->buf + s->len, (unsigned)(sizeof s->buf - s->len - 1));
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  server *s = st->data;
  if (n <= 0) {
    if (n < 0) uv_read_stop(st);
    return;
  }
  s->len += (size_t)n;
  s->buf[s->len] = '\0';
  if (strchr(s->buf, '\n')) s->port = atoi(s->buf);
  if (s->len >= sizeof s->buf - 1) s->len = 0;
}

static void srv_exit(uv_process_t *p, int64_t status, int sig) {
  ((server *)p->data)->exited = 1;
}

static int srv_ready(void *ud) {
  server *s = ud;
  return s->port > 0 || s->exited;
}

static int srv_gone(void *ud) { return ((server *)ud)->exited; }

static int start_server(void **state) {
  (void)state;
  sb_core_init();
  if (getenv("TEST_DEBUG")) sb_log_set_level(SB_LOG_DEBUG);
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  memset(&srv, 0, sizeof srv);
  char script[1024];
  snprintf(script, sizeof script, "%s/tests/agents/openai_server.mjs",
           SB_SOURCE_DIR);
  char *args[] = {"node", script, NULL};
  char *env[] = {"SLOW_MS=5000", NULL};
  /* node finds itself through PATH; pass it along with SLOW_MS. */
  char path_env[4096];
  snprintf(path_env, sizeof path_env, "PATH=%s",
           getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
  char *envp[] = {env[0], path_env, NULL};
  uv_pipe_init(&loop, &srv.out, 0);
  srv.out.data = &srv;
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
       .data.stream = (uv_stream_t *)&srv.out},
      {.flags = UV_INHERIT_FD, .data.fd = 2},
  };
  uv_process_options_t o = {.exit_cb = srv_exit,
                            .file = "node",
                            .args = args,
                            .env = envp,
                            .stdio_count = 3,
                            .stdio = stdio};
  if (uv_spawn(&loop, &srv.proc, &o) != 0) return -1;
  srv.proc.data = &srv;
  uv_read_start((uv_stream_t *)&srv.out, srv_alloc, srv_read);
  if (!run_until(&loop, srv_ready, &srv, 10000) || srv.port <= 0) return -1;
  snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d/v1", srv.port);
  return 0;
}

static int stop_server(void **state) {
  (void)state;
  uv_process_kill(&srv.proc, SIGTERM);
  run_until(&loop, srv_gone, &srv, 10000);
  uv_close((uv_handle_t *)&srv.proc, NULL);
  uv_close((uv_handle_t *)&srv.out, NULL);
  return loop_finish(&loop) == 0 ? 0 : -1;
}

/* ---- helpers -------------------------------------------------------------- */

typedef struct outcome {
  int done;
  sb_llm_outcome outcome;
  char text[1024];
  char model[64];
  char message[2048];
  char finish_reason[32];
  json_t *value;
  size_t n_attempts;
  sb_llm_failure failures[8];
  long statuses[8];
  char models_tried[8][64];
} outcome;

/* The callbacks stop the loop's iteration: an answer read in a timer
 * callback would otherwise leave uv_run(UV_RUN_ONCE) waiting in poll for
 * the next event, the test's deadline. */
static void on_done(void *ud, const sb_llm_result *r) {
  outcome *o = ud;
  uv_stop(&loop);
  o->done++;
  o->outcome = r->outcome;
  snprintf(o->text, sizeof o->text, "%s", r->text ? r->text : "");
  snprintf(o->model, sizeof o->model, "%s", r->model ? r->model : "");
  snprintf(o->message, sizeof o->message, "%s", r->message ? r->message : "");
  snprintf(o->finish_reason, sizeof o->finish_reason, "%s",
           r->finish_reason ? r->finish_reason : "");
  o->value = json_incref(r->value);
  o->n_attempts = r->n_attempts;
  for (size_t i = 0; i < r->n_attempts && i < 8; i++) {
    o->failures[i] = r->attempts[i].failure;
    o->statuses[i] = r->attempts[i].http_status;
    snprintf(o->models_tried[i], sizeof o->models_tried[i], "%s",
             r->attempts[i].model);
  }
}

static sb_llm *new_llm(const char *url, const char *key, int64_t timeout_ms) {
  sb_llm_options lo = {.loop = &loop,
                       .base_url = url,
                       .api_key = key,
                       .timeout_ms = timeout_ms};
  sb_error err = {0};
  sb_llm *llm = sb_llm_new(&lo, &err);
  if (!llm) fail_msg("sb_llm_new: %s", err.msg);
  return llm;
}

static json_t *user_says(const char *text) {
  return json_pack("[{ssss}]", "role", "user", "content", text);
}

/* Run one request through llm to its end. */
static void complete(sb_llm *llm, const char *const *models, size_t n,
                     sb_llm_format format, json_t *schema, outcome *o) {
  memset(o, 0, sizeof *o);
  json_t *messages = user_says("I want to buy a Corolla");
  sb_llm_request req = {.models = models,
                        .n_models = n,
                        .messages = messages,
                        .format = format,
                        .schema = schema};
  sb_error err = {0};
  assert_int_equal(sb_llm_complete(llm, &req, on_done, o, NULL, &err), 0);
  json_decref(messages);
  assert_int_equal(o->done, 0); /* never from inside sb_llm_complete */
  assert_true(run_until(&loop, flag_set, &o->done, 15000));
  assert_int_equal(o->done, 1);
}

static void free_llm(sb_llm *llm) {
  sb_llm_free(llm);
  uv_run(&loop, UV_RUN_NOWAIT); /* the fetcher's handles close */
}

typedef struct fetched {
  int done;
  sb_fetch_outcome outcome;
  long status;
  json_t *body;
} fetched;

static void on_fetched(void *ud, const sb_fetch_result *r) {
  fetched *f = ud;
  uv_stop(&loop);
  f->done = 1;
  f->outcome = r->outcome;
  f->status = r->status;
  if (r->outcome == SB_FETCH_RESPONSE)
    f->body = json_loadb(r->body, r->body_len, 0, NULL);
}

/* The test server's record of the requests it received (new reference),
 * read with sb_fetch itself; `forget` clears it afterwards. */
static json_t *server_requests(int forget) {
  sb_error err = {0};
  sb_fetcher *f = sb_fetcher_new(&loop, &err);
  assert_non_null(f);
  char url[96];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/requests", srv.port);
  fetched got = {0};
  sb_fetch_options fo = {.url = url, .timeout_ms = 5000};
  assert_int_equal(sb_fetch_start(f, &fo, on_fetched, &got, NULL, &err), 0);
  assert_true(run_until(&loop, flag_set, &got.done, 10000));
  assert_int_equal(got.outcome, SB_FETCH_RESPONSE);
  assert_int_equal(got.status, 200);
  assert_true(json_is_array(got.body));
  if (forget) {
    fetched cleared = {0};
    sb_fetch_options del = {.method = "DELETE", .url = url};
    /* Only GET and POST are supported: DELETE is refused up front. */
    assert_int_equal(sb_fetch_start(f, &del, on_fetched, &cleared, NULL, &err),
                     SB_EINVAL);
  }
  sb_fetcher_free(f);
  uv_run(&loop, UV_RUN_NOWAIT);
  return got.body;
}

/* ---- the chain -------------------------------------------------------------- */

static void failing_primary_falls_back(void **state) {
  (void)state;
  sb_llm *llm = new_llm(base_url, NULL, 5000);
  const char *models[] = {"fail-primary", "ok-fallback", "ok-unused"};
  outcome o;
  complete(llm, models, 3, SB_LLM_TEXT, NULL, &o);
  assert_int_equal(o.outcome, SB_LLM_ANSWERED);
  assert_string_equal(o.model, "ok-fallback");
  assert_string_equal(o.finish_reason, "stop");
  assert_non_null(strstr(o.text, "\"model\":\"ok-fallback\""));
  assert_non_null(strstr(o.text, "I want to buy a Corolla"));
  assert_null(o.value); /* text: not parsed */
  assert_int_equal(o.n_attempts, 1);
  assert_string_equal(o.models_tried[0], "fail-primary");
  assert_int_equal(o.failures[0], SB_LLM_HTTP_STATUS);
  assert_int_equal(o.statuses[0], 500);
  free_llm(llm);
}

static void all_failing_names_each_model(void **state) {
  (void)state;
  sb_llm *llm = new_llm(base_url, NULL, 300);
  const char *models[] = {"fail-a", "malformed-b", "empty-c", "slow-d"};
  outcome o;
  complete(llm, models, 4, SB_LLM_TEXT, NULL, &o);
  assert_int_equal(o.outcome, SB_LLM_ALL_FAILED);
  assert_int_equal(o.n_attempts, 4);
  assert_int_equal(o.failures[0], SB_LLM_HTTP_STATUS);
  assert_int_equal(o.failures[1], SB_LLM_MALFORMED);
  assert_int_equal(o.failures[2], SB_LLM_MALFORMED);
  assert_int_equal(o.failures[3], SB_LLM_TIMED_OUT);
  const char *want_start =
      "all 4 models failed: fail-a: HTTP 500 (upstream error); malformed-b: "
      "malformed completion: not JSON";
  if (strncmp(o.message, want_start, strlen(want_start)) != 0)
    fail_msg("message: %s", o.message);
  assert_non_null(strstr(
      o.message, "; empty-c: malformed completion: no "
                 "choices[0].message.content; slow-d: timed out after 300 ms"));
  free_llm(llm);
}

static void malformed_and_timeout_fall_back(void **state) {
  (void)state;
  sb_llm *llm = new_llm(base_url, NULL, 300);
  const char *models[] = {"malformed-a", "slow-b", "ok-c"};
  outcome o;
  complete(llm, models, 3, SB_LLM_TEXT, NULL, &o);
  assert_int_equal(o.outcome, SB_LLM_ANSWERED);
  assert_string_equal(o.model, "ok-c");
  assert_int_equal(o.n_attempts, 2);
  assert_int_equal(o.failures[0], SB_LLM_MALFORMED);
  assert_int_equal(o.failures[1], SB_LLM_TIMED_OUT);
  free_llm(llm);
}

static void one_model_connect_error(void **state) {
  (void)state;
  sb_llm *llm = new_llm("http://127.0.0.1:1/v1/", NULL, 2000);
  const char *models[] = {"ok-a"};
  outcome o;
  complete(llm, models, 1, SB_LLM_TEXT, NULL, &o);
  assert_int_equal(o.outcome, SB_LLM_ALL_FAILED);
  assert_int_equal(o.failures[0], SB_LLM_CONNECT_ERROR);
  if (strncmp(o.message, "the only model failed: ok-a: cannot connect", 43))
    fail_msg("message: %s", o.message);
  free_llm(llm);
}

static void oversized_completion_falls_back(void **state) {
  (void)state;
  sb_llm_options lo = {.loop = &loop, .base_url = base_url,
                       .max_response_bytes = 64};
  sb_error err = {0};
  sb_llm *llm = sb_llm_new(&lo, &err);
  assert_non_null(llm);
  const char *models[] = {"ok-big"};
  outcome o;
  complete(llm, models, 1, SB_LLM_TEXT, NULL, &o);
  assert_int_equal(o.outcome, SB_LLM_ALL_FAILED);
  assert_int_equal(o.failures[0], SB_LLM_TRANSPORT);
  assert_non_null(strstr(o.message, "the response is larger than 64 bytes"));
  free_llm(llm);
}

/* ---- output formats ------------------------------------------------------- */

static void json_output_must_parse(void **state) {
  (void)state;
  sb_llm *llm = new_llm(base_url, NULL, 5000);
  const char *models[] = {"text-a", "fence-b"};
  outcome o;
  complete(llm, models, 2, SB_LLM_JSON, NULL, &o);
  assert_int_equal(o.outcome, SB_LLM_ANSWERED);
  assert_string_equal(o.model, "fence-b");
  assert_int_equal(o.failures[0], SB_LLM_NOT_JSON);
  assert_true(json_is_object(o.value)); /* the fence is taken off */
  assert_string_equal(json_string_value(json_object_get(o.value, "intent")),
                      "buy");
  json_decref(o.value);
  free_llm(llm);
}

static void structured_output_must_match(void **state) {
  (void)state;
  sb_llm *llm = new_llm(base_url, NULL, 5000);
  json_t *schema = json_loads(
      "{\"type\":\"object\",\"required\":[\"intent\"],"
      "\"properties\":{\"intent\":{\"type\":\"string\","
      "\"enum\":[\"buy\",\"service\"]},\"model\":{\"type\":\"string\"},"
      "\"echo\":{\"type\":\"string\"}},\"additionalProperties\":false}",
      0, NULL);
  assert_non_null(schema);
  const char *models[] = {"badshape-a", "text-b", "ok-c"};
  outcome o;
  complete(llm, models, 3, SB_LLM_STRUCTURED, schema, &o);
  assert_int_equal(o.outcome, SB_LLM_ANSWERED);
  assert_string_equal(o.model, "ok-c");
  assert_int_equal(o.n_attempts, 2);
  assert_int_equal(o.failures[0], SB_LLM_SCHEMA_MISMATCH);
  assert_int_equal(o.failures[1], SB_LLM_NOT_JSON);
  json_decref(o.value);

  const char *bad[] = {"badshape-only"};
  complete(llm, bad, 1, SB_LLM_STRUCTURED, schema, &o);
  assert_int_equal(o.outcome, SB_LLM_ALL_FAILED);
  assert_non_null(strstr(o.message,
                         "badshape-only: the answer does not match the output "
                         "schema: $.intent: expected type string, got an integer"));

  /* structured without a schema is the caller's error */
  json_t *messages = user_says("x");
  sb_llm_request req = {.models = bad, .n_models = 1, .messages = messages,
                        .format = SB_LLM_STRUCTURED};
  sb_error err = {0};
  assert_int_equal(sb_llm_complete(llm, &req, on_done, &o, NULL, &err),
                   SB_EINVAL);
  json_decref(messages);
  json_decref(schema);
  free_llm(llm);
}

/* ---- what is sent ----------------------------------------------------------- */

static void sends_key_tokens_temperature(void **state) {
  (void)state;
  json_decref(server_requests(0));
  sb_llm *llm = new_llm(base_url, "sk-test-123", 5000);
  json_t *messages = user_says("hello");
  const char *models[] = {"fail-x", "ok-y"};
  sb_llm_request req = {.models = models,
                        .n_models = 2,
                        .messages = messages,
                        .system_prompt = "You are a sales desk.",
                        .max_tokens = 77,
                        .has_temperature = 1,
                        .temperature = 0.25};
  outcome o = {0};
  sb_error err = {0};
  assert_int_equal(sb_llm_complete(llm, &req, on_done, &o, NULL, &err), 0);
  assert_true(run_until(&loop, flag_set, &o.done, 15000));
  assert_int_equal(o.outcome, SB_LLM_ANSWERED);
  json_t *all = server_requests(1);
  size_t n = json_array_size(all);
  assert_true(n >= 2);
  for (size_t i = n - 2; i < n; i++) {
    json_t *r = json_array_get(all, i);
    assert_string_equal(json_string_value(json_object_get(r, "model")),
                        models[i - (n - 2)]);
    assert_string_equal(
        json_string_value(json_object_get(r, "authorization")),
        "Bearer sk-test-123");
    assert_int_equal(json_integer_value(json_object_get(r, "max_tokens")), 77);
    assert_true(json_number_value(json_object_get(r, "temperature")) == 0.25);
    json_t *m = json_object_get(r, "messages");
    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(m, 0), "role")),
        "system");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(m, 1), "content")),
        "hello");
  }
  json_decref(all);
  free_llm(llm);

  /* no key, no max_tokens, no temperature: none of them is sent */
  llm = new_llm(base_url, NULL, 5000);
  req.models = models + 1;
  req.n_models = 1;
  req.max_tokens = 0;
  req.has_temperature = 0;
  memset(&o, 0, sizeof o);
  assert_int_equal(sb_llm_complete(llm, &req, on_done, &o, NULL, &err), 0);
  assert_true(run_until(&loop, flag_set, &o.done, 15000));
  all = server_requests(0);
  json_t *last = json_array_get(all, json_array_size(all) - 1);
  assert_true(json_is_null(json_object_get(last, "authorization")));
  assert_true(json_is_null(json_object_get(last, "max_tokens")));
  assert_true(json_is_null(json_object_get(last, "temperature")));
  json_decref(all);
  json_decref(messages);
  free_llm(llm);
}

/* ---- cancellation ----------------------------------------------------------- */

static void cancel_and_free_in_flight(void **state) {
  (void)state;
  sb_llm *llm = new_llm(base_url, NULL, 10000);
  json_t *messages = user_says("x");
  const char *models[] = {"slow-a", "ok-b"};
  sb_llm_request req = {.models = models, .n_models = 2, .messages = messages};
  outcome a = {0}, b = {0};
  sb_llm_call *call = NULL;
  sb_error err = {0};
  assert_int_equal(sb_llm_complete(llm, &req, on_done, &a, &call, &err), 0);
  assert_non_null(call);
  assert_int_equal(sb_llm_complete(llm, &req, on_done, &b, NULL, &err), 0);
  uv_run(&loop, UV_RUN_NOWAIT); /* the requests go out */
  sb_llm_cancel(call);
  assert_int_equal(a.done, 1);
  assert_int_equal(a.outcome, SB_LLM_CANCELLED);
  assert_int_equal(b.done, 0);
  sb_llm_free(llm); /* b is cancelled with it */
  assert_int_equal(b.done, 1);
  assert_int_equal(b.outcome, SB_LLM_CANCELLED);
  uv_run(&loop, UV_RUN_NOWAIT);
  json_decref(messages);
}

static void bad_options_rejected(void **state) {
  (void)state;
  sb_error err = {0};
  sb_llm_options lo = {.loop = &loop, .base_url = "ftp://x/v1"};
  assert_null(sb_llm_new(&lo, &err));
  assert_int_equal(err.code, SB_EINVAL);
  lo.base_url = base_url;
  lo.api_key = "sk\r\nX-Evil: 1";
  assert_null(sb_llm_new(&lo, &err));
  sb_llm *llm = new_llm(base_url, NULL, 0);
  json_t *messages = user_says("x");
  sb_llm_request req = {.messages = messages};
  outcome o = {0};
  assert_int_equal(sb_llm_complete(llm, &req, on_done, &o, NULL, &err),
                   SB_EINVAL); /* no model */
  const char *models[] = {"ok-a"};
  req.models = models;
  req.n_models = 1;
  req.messages = NULL;
  assert_int_equal(sb_llm_complete(llm, &req, on_done, &o, NULL, &err),
                   SB_EINVAL); /* no messages */
  json_decref(messages);
  free_llm(llm);
}

/* ---- the schema subset ------------------------------------------------------ */

static int check_text(const char *schema, const char *value, sb_error *err) {
  json_t *s = json_loads(schema, JSON_DECODE_ANY, NULL);
  json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
  assert_non_null(s);
  assert_non_null(v);
  int rc = sb_llm_schema_check(s, v, err);
  json_decref(s);
  json_decref(v);
  return rc;
}

static void schema_subset(void **state) {
  (void)state;
  sb_error err = {0};
  const char *car =
      "{\"type\":\"object\",\"required\":[\"make\",\"year\"],"
      "\"properties\":{\"make\":{\"type\":\"string\",\"minLength\":2},"
      "\"year\":{\"type\":\"integer\",\"minimum\":1990,\"maximum\":2030},"
      "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"new\",\"used\"]},"
      "\"maxItems\":2},\"price\":{\"type\":[\"number\",\"null\"]}},"
      "\"additionalProperties\":false}";
  assert_int_equal(check_text(car, "{\"make\":\"bmw\",\"year\":2020}", &err), 0);
  assert_int_equal(
      check_text(car, "{\"make\":\"bmw\",\"year\":2020.0,\"price\":null}", &err),
      0);
  assert_int_equal(check_text(car, "{\"make\":\"bmw\"}", &err), SB_EINVAL);
  assert_string_equal(err.msg, "$: missing required property \"year\"");
  check_text(car, "{\"make\":\"bmw\",\"year\":2020,\"color\":1}", &err);
  assert_string_equal(err.msg, "$: property \"color\" is not allowed");
  check_text(car, "{\"make\":\"bmw\",\"year\":2020.5}", &err);
  assert_string_equal(err.msg, "$.year: expected type integer, got a number");
  check_text(car, "{\"make\":\"bmw\",\"year\":1980}", &err);
  assert_string_equal(err.msg, "$.year: expected at least 1990, got 1980");
  check_text(car, "{\"make\":\"b\",\"year\":2000}", &err);
  assert_string_equal(err.msg, "$.make: expected at least 2 characters");
  check_text(car, "{\"make\":\"bmw\",\"year\":2000,\"tags\":[\"new\",\"x\"]}",
             &err);
  assert_string_equal(err.msg, "$.tags[1]: \"x\" is not one of the allowed values");
  check_text(car, "{\"make\":\"bmw\",\"year\":2000,\"tags\":[\"new\",\"new\","
                  "\"new\"]}", &err);
  assert_string_equal(err.msg, "$.tags: expected at most 2 items, got 3");
  check_text(car, "{\"make\":\"bmw\",\"year\":2000,\"price\":\"cheap\"}", &err);
  assert_non_null(strstr(err.msg, "$.price: expected one of the types"));
  assert_int_equal(check_text(car, "[1]", &err), SB_EINVAL);
  assert_string_equal(err.msg, "$: expected type object, got an array");
  /* anyOf, const, additionalProperties as a schema, unknown keywords */
  const char *any = "{\"anyOf\":[{\"const\":1},{\"type\":\"object\","
                    "\"additionalProperties\":{\"type\":\"boolean\"}}],"
                    "\"x-unknown\":true}";
  assert_int_equal(check_text(any, "1", &err), 0);
  assert_int_equal(check_text(any, "{\"a\":true}", &err), 0);
  assert_int_equal(check_text(any, "{\"a\":2}", &err), SB_EINVAL);
  assert_int_equal(check_text(any, "2", &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "matches none of anyOf"));
  assert_int_equal(check_text("true", "{\"anything\":[1]}", &err), 0);
}

/* What MCP elicitation's requestedSchema uses beyond that: a titled
 * single-select (oneOf of consts), formats, lengths in characters. */
static void schema_elicitation_keywords(void **state) {
  (void)state;
  sb_error err = {0};
  const char *titled = "{\"type\":\"string\",\"oneOf\":["
                       "{\"const\":\"sedan\",\"title\":\"Sedan\"},"
                       "{\"const\":\"suv\",\"title\":\"SUV\"}]}";
  assert_int_equal(check_text(titled, "\"suv\"", &err), 0);
  assert_int_equal(check_text(titled, "\"van\"", &err), SB_EINVAL);
  assert_string_equal(err.msg, "$: matches none of oneOf (the first: $: not "
                               "the constant the schema requires)");
  /* oneOf: exactly one (anyOf: one or more) */
  const char *both = "{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}";
  assert_int_equal(check_text(both, "-1", &err), 0);
  assert_int_equal(check_text(both, "1.5", &err), 0);
  assert_int_equal(check_text(both, "2", &err), SB_EINVAL);
  assert_string_equal(err.msg, "$: matches more than one of oneOf ([0] and [1])");
  assert_int_equal(
      check_text("{\"anyOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}", "2", &err),
      0);
  /* formats */
  static const struct {
    const char *format, *value;
    int ok;
  } formats[] = {
      {"date", "\"2026-02-28\"", 1},         {"date", "\"2024-02-29\"", 1},
      {"date", "\"2026-02-29\"", 0},         {"date", "\"2026-13-01\"", 0},
      {"date", "\"2026-1-01\"", 0},          {"date", "\"2026-01-01x\"", 0},
      {"date-time", "\"2026-12-04T14:21:09Z\"", 1},
      {"date-time", "\"2026-12-04t14:21:09.125+01:00\"", 1},
      {"date-time", "\"2026-12-04T24:00:00Z\"", 0},
      {"date-time", "\"2026-12-04T14:21:09\"", 0},
      {"date-time", "\"2026-12-04 14:21:09Z\"", 0},
      {"date-time", "\"2026-12-04T14:21:09.Z\"", 0},
      {"email", "\"ana@dealer.example\"", 1}, {"email", "\"ana@\"", 0},
      {"email", "\"@dealer.example\"", 0},    {"email", "\"a b@c.d\"", 0},
      {"email", "\"a@b@c\"", 0},
      {"uri", "\"https://dealer.example/cars?id=1\"", 1},
      {"uri", "\"urn:vin:1HGCM82633A004352\"", 1},
      {"uri", "\"/cars/1\"", 0},             {"uri", "\"https://a b\"", 0},
      {"uri", "\"1http://x\"", 0},
      /* another format annotates; a non-string is not a format's concern */
      {"hostname", "\"not a host\"", 1},      {"date", "42", 1},
  };
  for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
    char schema[80];
    snprintf(schema, sizeof schema, "{\"format\":\"%s\"}", formats[i].format);
    int rc = check_text(schema, formats[i].value, &err);
    if ((rc == 0) != formats[i].ok)
      fail_msg("format %s, %s: got %d (%s)", formats[i].format,
               formats[i].value, rc, err.msg);
  }
  check_text("{\"format\":\"email\"}", "\"ana\"", &err);
  assert_string_equal(err.msg, "$: \"ana\" is not a valid email");
  /* lengths count characters, not UTF-8 bytes */
  assert_int_equal(check_text("{\"maxLength\":3}", "\"Zo\\u00eb\"", &err), 0);
  assert_int_equal(check_text("{\"minLength\":4}", "\"Zo\\u00eb\"", &err),
                   SB_EINVAL);
  assert_int_equal(check_text("{\"maxLength\":1}", "\"\\ud83d\\ude97\"", &err), 0);
  /* pattern: a match anywhere in the string (anchors say otherwise); a
   * VIN has 17 of A-Z and 0-9 without I, O or Q */
  const char *vin = "{\"pattern\":\"^[A-HJ-NPR-Z0-9]{17}$\"}";
  assert_int_equal(check_text(vin, "\"1HGCM82633A004352\"", &err), 0);
  assert_int_equal(check_text(vin, "\"1HGCM82633A00435O\"", &err), SB_EINVAL);
  assert_string_equal(err.msg, "$: \"1HGCM82633A00435O\" does not match the "
                               "pattern ^[A-HJ-NPR-Z0-9]{17}$");
  assert_int_equal(check_text("{\"pattern\":\"\\\\d\"}", "\"a1b\"", &err), 0);
  assert_int_equal(check_text("{\"pattern\":\"^\\\\d+$\"}", "\"\u0661\"", &err),
                   SB_EINVAL); /* \d is ASCII digits, as in ECMA-262 */
  assert_int_equal(check_text("{\"pattern\":\"^.{2}$\"}", "\"Zo\\u00eb\"", &err),
                   SB_EINVAL); /* . is one character, not one byte */
  assert_int_equal(check_text("{\"pattern\":\"^.{3}$\"}", "\"Zo\\u00eb\"", &err),
                   0);
  assert_int_equal(check_text("{\"pattern\":\"([\"}", "\"x\"", &err), SB_EINVAL);
  assert_non_null(strstr(err.msg, "the schema's pattern is not a regular "
                                  "expression"));
  /* a pattern that backtracks without end gives up: the value is refused */
  assert_int_equal(check_text("{\"pattern\":\"^(a+)+$\"}",
                              "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"", &err),
                   SB_EINVAL);
  assert_non_null(strstr(err.msg, "could not be checked against the pattern"));
  assert_int_equal(check_text("{\"pattern\":\"x\"}", "5", &err), 0);
  /* exclusive bounds and multipleOf */
  const char *price = "{\"exclusiveMinimum\":0,\"exclusiveMaximum\":100,"
                      "\"multipleOf\":0.01}";
  assert_int_equal(check_text(price, "19.99", &err), 0);
  assert_int_equal(check_text(price, "0.3", &err), 0);
  assert_int_equal(check_text(price, "0", &err), SB_EINVAL);
  assert_string_equal(err.msg, "$: expected more than 0, got 0");
  assert_int_equal(check_text(price, "100", &err), SB_EINVAL);
  assert_string_equal(err.msg, "$: expected less than 100, got 100");
  assert_int_equal(check_text(price, "1.005", &err), SB_EINVAL);
  assert_string_equal(err.msg, "$: expected a multiple of 0.01, got 1.005");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(failing_primary_falls_back),
      cmocka_unit_test(all_failing_names_each_model),
      cmocka_unit_test(malformed_and_timeout_fall_back),
      cmocka_unit_test(one_model_connect_error),
      cmocka_unit_test(oversized_completion_falls_back),
      cmocka_unit_test(json_output_must_parse),
      cmocka_unit_test(structured_output_must_match),
      cmocka_unit_test(sends_key_tokens_temperature),
      cmocka_unit_test(cancel_and_free_in_flight),
      cmocka_unit_test(bad_options_rejected),
      cmocka_unit_test(schema_subset),
      cmocka_unit_test(schema_elicitation_keywords),
  };
  return cmocka_run_group_tests(tests, start_server, stop_server);
}
