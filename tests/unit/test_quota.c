/* Unit tests for src/quota/: the token bucket (full at first, refilled by
 * the clock the test passes, the wait until the next token), burst, the
 * calls-in-flight cap and its release, a refusal taking nothing, tenants
 * kept apart, and per-tenant overrides merged over the global limits. */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "quota/quota.h"

static sb_quota *quota(sb_quota_limits global, const sb_quota_override *ov,
                       size_t n) {
  sb_quota_options o = {.global = global, .overrides = ov, .overrides_len = n};
  sb_quota *q = sb_quota_new(&o, NULL);
  assert_non_null(q);
  return q;
}

static void test_bucket(void **state) {
  (void)state;
  sb_quota *q = quota((sb_quota_limits){.rate_per_s = 2, .burst = 3}, NULL, 0);
  sb_quota_verdict v;
  uint64_t t = 1000;
  /* Full at first: the burst goes through at once. */
  for (int i = 0; i < 3; i++)
    assert_int_equal(sb_quota_admit(q, "a", t, 0, &v), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "a", t, 0, &v), SB_QUOTA_RATE);
  assert_int_equal(v.outcome, SB_QUOTA_RATE);
  assert_int_equal(v.limit, 2);
  assert_int_equal(v.retry_after_ms, 500); /* 2 a second */
  /* 300 ms later: 0.6 of a token, 200 ms to go. */
  assert_int_equal(sb_quota_admit(q, "a", t + 300, 0, &v), SB_QUOTA_RATE);
  assert_int_equal(v.retry_after_ms, 200);
  assert_int_equal(sb_quota_admit(q, "a", t + 500, 0, &v), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "a", t + 500, 0, &v), SB_QUOTA_RATE);
  /* A long pause refills to the burst, not beyond. */
  t += 3600 * 1000;
  for (int i = 0; i < 3; i++)
    assert_int_equal(sb_quota_admit(q, "a", t, 0, &v), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "a", t, 0, &v), SB_QUOTA_RATE);
  /* Another tenant has its own bucket. */
  assert_int_equal(sb_quota_admit(q, "b", t, 0, &v), SB_QUOTA_ADMITTED);
  /* A clock that goes back takes nothing and gives nothing. */
  assert_int_equal(sb_quota_admit(q, "a", t - 5000, 0, &v), SB_QUOTA_RATE);
  sb_quota_free(q);
}

static void test_burst_defaults_to_rate(void **state) {
  (void)state;
  sb_quota *q = quota((sb_quota_limits){.rate_per_s = 4}, NULL, 0);
  assert_int_equal(sb_quota_limits_of(q, "x").burst, 4);
  for (int i = 0; i < 4; i++)
    assert_int_equal(sb_quota_admit(q, "x", 0, 0, NULL), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "x", 0, 0, NULL), SB_QUOTA_RATE);
  assert_int_equal(sb_quota_admit(q, "x", 250, 0, NULL), SB_QUOTA_ADMITTED);
  sb_quota_free(q);
}

static void test_concurrency(void **state) {
  (void)state;
  sb_quota *q =
      quota((sb_quota_limits){.rate_per_s = 1, .burst = 3, .max_concurrent = 2},
            NULL, 0);
  sb_quota_verdict v;
  assert_int_equal(sb_quota_admit(q, "a", 0, 1, &v), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "a", 0, 1, &v), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_in_flight(q, "a"), 2);
  assert_int_equal(sb_quota_admit(q, "a", 0, 1, &v), SB_QUOTA_CONCURRENCY);
  assert_int_equal(v.limit, 2);
  assert_int_equal(v.retry_after_ms, 0);
  /* The refusal took no token: the third one is still there. */
  sb_quota_release(q, "a");
  assert_int_equal(sb_quota_in_flight(q, "a"), 1);
  assert_int_equal(sb_quota_admit(q, "a", 0, 1, &v), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "a", 0, 0, &v), SB_QUOTA_RATE);
  /* A request that holds no place is not refused by the cap. */
  assert_int_equal(sb_quota_admit(q, "a", 1000, 0, &v), SB_QUOTA_ADMITTED);
  /* Releases never go below zero, and unknown tenants are ignored. */
  sb_quota_release(q, "a");
  sb_quota_release(q, "a");
  sb_quota_release(q, "a");
  sb_quota_release(q, "nobody");
  assert_int_equal(sb_quota_in_flight(q, "a"), 0);
  sb_quota_free(q);
}

static void test_overrides(void **state) {
  (void)state;
  sb_quota_override ov[] = {
      {"big", {.rate_per_s = 100, .burst = -1, .max_concurrent = -1}},
      {"free", {.rate_per_s = 0, .burst = -1, .max_concurrent = 0}},
  };
  sb_quota *q =
      quota((sb_quota_limits){.rate_per_s = 1, .burst = 1, .max_concurrent = 1},
            ov, 2);
  sb_quota_limits l = sb_quota_limits_of(q, "big");
  assert_int_equal(l.rate_per_s, 100);
  assert_int_equal(l.burst, 1); /* inherited */
  assert_int_equal(l.max_concurrent, 1);
  l = sb_quota_limits_of(q, "free");
  assert_int_equal(l.rate_per_s, 0);
  assert_int_equal(l.max_concurrent, 0);
  for (int i = 0; i < 50; i++)
    assert_int_equal(sb_quota_admit(q, "free", 0, 1, NULL), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "other", 0, 0, NULL), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "other", 0, 0, NULL), SB_QUOTA_RATE);
  assert_string_equal(sb_quota_limit_name(SB_QUOTA_RATE),
                      "quotas.requests_per_second");
  assert_string_equal(sb_quota_limit_name(SB_QUOTA_CONCURRENCY),
                      "quotas.max_concurrent_calls");
  sb_quota_free(q);
}

/* A reload: tenants seen already take the new limits at once, a bucket
 * keeps no more than the new burst, held calls stay held. */
static void test_reconfigure(void **state) {
  (void)state;
  sb_quota *q = quota(
      (sb_quota_limits){.rate_per_s = 10, .burst = 10, .max_concurrent = 3},
      NULL, 0);
  assert_int_equal(sb_quota_admit(q, "a", 0, 1, NULL), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "a", 0, 1, NULL), SB_QUOTA_ADMITTED);
  sb_quota_override ov[] = {
      {"b", {.rate_per_s = 0, .burst = -1, .max_concurrent = 0}}};
  sb_quota_options o = {
      .global = {.rate_per_s = 1, .burst = 2, .max_concurrent = 1},
      .overrides = ov,
      .overrides_len = 1};
  assert_int_equal(sb_quota_reconfigure(q, &o, NULL), 0);
  sb_quota_limits l = sb_quota_limits_of(q, "a");
  assert_int_equal(l.rate_per_s, 1);
  assert_int_equal(l.max_concurrent, 1);
  /* Two held, the new cap is one: refused until both end. */
  assert_int_equal(sb_quota_in_flight(q, "a"), 2);
  sb_quota_verdict v;
  assert_int_equal(sb_quota_admit(q, "a", 0, 1, &v), SB_QUOTA_CONCURRENCY);
  assert_int_equal(v.limit, 1);
  sb_quota_release(q, "a");
  sb_quota_release(q, "a");
  /* Eight tokens were left; the new burst keeps two. */
  assert_int_equal(sb_quota_admit(q, "a", 0, 0, NULL), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "a", 0, 0, NULL), SB_QUOTA_ADMITTED);
  assert_int_equal(sb_quota_admit(q, "a", 0, 0, &v), SB_QUOTA_RATE);
  /* The override's tenant: unlimited. */
  for (int i = 0; i < 20; i++)
    assert_int_equal(sb_quota_admit(q, "b", 0, 1, NULL), SB_QUOTA_ADMITTED);
  sb_quota_free(q);
}

static void test_many_tenants(void **state) {
  (void)state;
  sb_quota *q = quota((sb_quota_limits){.rate_per_s = 1}, NULL, 0);
  char name[32];
  for (int i = 0; i < 500; i++) {
    snprintf(name, sizeof name, "t%d", i);
    assert_int_equal(sb_quota_admit(q, name, 0, 1, NULL), SB_QUOTA_ADMITTED);
  }
  for (int i = 0; i < 500; i++) {
    snprintf(name, sizeof name, "t%d", i);
    assert_int_equal(sb_quota_admit(q, name, 0, 0, NULL), SB_QUOTA_RATE);
    assert_int_equal(sb_quota_in_flight(q, name), 1);
  }
  sb_quota_free(q);
}

static void test_unlimited(void **state) {
  (void)state;
  sb_quota *q = quota((sb_quota_limits){0}, NULL, 0);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(sb_quota_admit(q, "a", 0, 1, NULL), SB_QUOTA_ADMITTED);
  assert_null(sb_quota_limit_name(SB_QUOTA_ADMITTED));
  sb_quota_free(q);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bucket),
      cmocka_unit_test(test_burst_defaults_to_rate),
      cmocka_unit_test(test_concurrency),
      cmocka_unit_test(test_overrides),
      cmocka_unit_test(test_reconfigure),
      cmocka_unit_test(test_many_tenants),
      cmocka_unit_test(test_unlimited),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
