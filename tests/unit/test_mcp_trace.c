/* test_mcp_trace.c: the OpenTelemetry trace context a request's _meta
 * carries (src/mcp/trace.c): passed on when in its W3C format, left out
 * when not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "core/core.h"
#include "mcp/mcp.h"

#define TP "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"

static json_t *trace_of(const char *meta_json) {
  json_t *meta = json_loads(meta_json, 0, NULL);
  assert_non_null(meta);
  json_t *t = sb_mcp_trace_context(meta);
  json_decref(meta);
  return t;
}

static void valid_context_is_kept(void **state) {
  (void)state;
  json_t *t = trace_of("{\"traceparent\":\"" TP "\",\"tracestate\":"
                       "\"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\","
                       "\"baggage\":\"userId=alice,dealer=a\","
                       "\"io.modelcontextprotocol/protocolVersion\":\"x\"}");
  json_t *want = json_loads("{\"traceparent\":\"" TP "\",\"tracestate\":"
                            "\"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\","
                            "\"baggage\":\"userId=alice,dealer=a\"}",
                            0, NULL);
  assert_true(json_equal(t, want));
  json_decref(t);
  json_decref(want);
  /* a later version may add fields after the flags */
  t = trace_of("{\"traceparent\":\"01-0af7651916cd43dd8448eb211c80319c-"
               "00f067aa0ba902b7-01-extra\"}");
  assert_non_null(t);
  json_decref(t);
}

static void malformed_context_is_dropped(void **state) {
  (void)state;
  static const char *const bad[] = {
      "ff-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01", /* ff */
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero */
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", /* zero */
      "00-0AF7651916CD43DD8448EB211C80319C-00f067aa0ba902b7-01", /* upper */
      "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01-x", /* 00+ */
      "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7",
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char meta[200];
    snprintf(meta, sizeof meta, "{\"traceparent\":\"%s\"}", bad[i]);
    json_t *t = trace_of(meta);
    if (t) fail_msg("kept %s", bad[i]);
  }
  assert_null(trace_of("{\"traceparent\":7}"));
  assert_null(trace_of("{\"tracestate\":\"a=b\"}")); /* nothing without it */
  /* a bad tracestate or baggage is left out, the traceparent kept */
  json_t *t = trace_of("{\"traceparent\":\"" TP "\",\"tracestate\":"
                       "\"a=\\u0001\",\"baggage\":\"\"}");
  assert_int_equal(json_object_size(t), 1);
  json_decref(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(valid_context_is_kept),
      cmocka_unit_test(malformed_context_is_dropped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
