/* test_gateway_decide.c: what each outcome of an attempt allows (the
 * breaker, a retry at the same agent, a fallback to the next one), for
 * requests that are and are not safe to repeat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "gateway/gateway.h"

typedef struct row {
  sb_gateway_outcome outcome;
  int repeatable;
  int breaker_failure, retry, fallback;
} row;

static void test_each_outcome(void **state) {
  (void)state;
  static const row rows[] = {
      /* the agent's answer, even an error, ends the call and is a success */
      {SB_GATEWAY_ANSWERED, 0, 0, 0, 0},
      {SB_GATEWAY_ANSWERED, 1, 0, 0, 0},
      /* never sent: again is always safe */
      {SB_GATEWAY_UNSENT, 0, 1, 1, 1},
      {SB_GATEWAY_UNSENT, 1, 1, 1, 1},
      /* the agent's session ended before it read it: safe, not its fault */
      {SB_GATEWAY_SESSION_EXPIRED, 0, 0, 1, 1},
      /* refused unprocessed (401/403): safe again, but it counts against
       * the agent (calls.c retries there only with a new token coming) */
      {SB_GATEWAY_REFUSED, 0, 1, 1, 1},
      /* it may have acted: again only when repeatable */
      {SB_GATEWAY_LOST, 0, 1, 0, 0},
      {SB_GATEWAY_LOST, 1, 1, 1, 1},
      {SB_GATEWAY_TIMED_OUT, 0, 1, 0, 0},
      {SB_GATEWAY_TIMED_OUT, 1, 1, 1, 1},
      /* refused before sending: another agent may take it */
      {SB_GATEWAY_BREAKER_OPEN, 0, 0, 0, 1},
      {SB_GATEWAY_AT_CAPACITY, 0, 0, 0, 1},
      {SB_GATEWAY_NOT_CONNECTED, 0, 0, 0, 1},
      /* nothing more to do */
      {SB_GATEWAY_CANCELLED, 1, 0, 0, 0},
      {SB_GATEWAY_NO_AGENT, 1, 0, 0, 0},
      {SB_GATEWAY_INPUT_REFUSED, 1, 0, 0, 0},
      {SB_GATEWAY_STOPPING, 1, 0, 0, 0},
      {SB_GATEWAY_INVALID, 1, 0, 0, 0},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    sb_gateway_decision d = sb_gateway_decide(rows[i].outcome, rows[i].repeatable);
    if (d.breaker_failure != rows[i].breaker_failure || d.retry != rows[i].retry ||
        d.fallback != rows[i].fallback)
      fail_msg("%s (repeatable %d): got breaker %d retry %d fallback %d",
               sb_gateway_outcome_name(rows[i].outcome), rows[i].repeatable,
               d.breaker_failure, d.retry, d.fallback);
  }
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(sb_gateway_outcome_name(SB_GATEWAY_LOST), "lost after delivery");
  assert_string_equal(sb_gateway_outcome_name(SB_GATEWAY_BREAKER_OPEN), "breaker open");
  assert_string_equal(sb_mcp_outcome_name(SB_MCP_SESSION_EXPIRED), "session expired");
  assert_string_equal(sb_mcp_outcome_name(SB_MCP_REFUSED), "refused");
  assert_string_equal(sb_gateway_outcome_name(SB_GATEWAY_REFUSED), "refused");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_each_outcome),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
