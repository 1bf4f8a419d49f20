/* quota: per-tenant request rates and calls in flight.
 *
 * Two limits per tenant, each off when 0:
 *   - a request rate, as a token bucket: `rate_per_s` tokens a second
 *     refill a bucket holding at most `burst`; each request takes one;
 *   - calls in flight: at most `max_concurrent` held at once (an MCP
 *     request being served, a REST request being answered later).
 * Every tenant has the global limits unless an override names it.
 *
 * Pure: no I/O and no clock of its own (the caller passes the time, so
 * tests drive it), one thread (the loop's). A tenant's state is made on
 * its first request and kept: tenants are authenticated ones, so their
 * number is the number of configured and registered tenants.
 */
#ifndef SB_QUOTA_H
#define SB_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef struct sb_quota sb_quota;

/* A tenant's limits; 0 = no limit. burst 0 with a rate = the rate (at
 * least 1). */
typedef struct sb_quota_limits {
  int rate_per_s;
  int burst;
  int max_concurrent;
} sb_quota_limits;

/* One tenant's override: a field of -1 takes the global value. */
typedef struct sb_quota_override {
  const char *tenant;
  sb_quota_limits limits;
} sb_quota_override;

typedef struct sb_quota_options {
  sb_quota_limits global;
  const sb_quota_override *overrides; /* copied */
  size_t overrides_len;
} sb_quota_options;

/* How an admission ended. */
typedef enum sb_quota_outcome {
  SB_QUOTA_ADMITTED = 0,
  SB_QUOTA_RATE,        /* no token in the bucket */
  SB_QUOTA_CONCURRENCY, /* max_concurrent calls already in flight */
} sb_quota_outcome;

/* What a refusal says. */
typedef struct sb_quota_verdict {
  sb_quota_outcome outcome;
  int limit;               /* the value of the limit that refused */
  uint64_t retry_after_ms; /* RATE: until the next token; CONCURRENCY: 0 */
} sb_quota_verdict;

/* NULL with err on ENOMEM. */
sb_quota *sb_quota_new(const sb_quota_options *o, sb_error *err);
void sb_quota_free(sb_quota *q);
/* New limits (a config reload): every tenant's limits are recomputed at
 * once; a bucket keeps its tokens up to the new burst, calls in flight
 * stay held (a lower max_concurrent refuses new ones until they end).
 * All or nothing: on ENOMEM (err set) the old limits stay. */
int sb_quota_reconfigure(sb_quota *q, const sb_quota_options *o, sb_error *err);

/* Admit one request of `tenant` at `now_ms` (any monotonic clock): take a
 * token and, when `hold` is set, a place among the calls in flight (give
 * it back with sb_quota_release). Nothing is taken when it is refused.
 * ENOMEM for a new tenant's state admits (the limit is then not kept for
 * that request) rather than refusing a caller for our own failure. */
sb_quota_outcome sb_quota_admit(sb_quota *q, const char *tenant,
                                uint64_t now_ms, int hold, sb_quota_verdict *v);
/* A held call ended. */
void sb_quota_release(sb_quota *q, const char *tenant);
/* A place among the tenant's calls in flight alone, no token: a call
 * made on the tenant's behalf by the server (a workflow step's), not a
 * request. SB_QUOTA_ADMITTED (give it back with sb_quota_release) or
 * SB_QUOTA_CONCURRENCY. */
sb_quota_outcome sb_quota_hold(sb_quota *q, const char *tenant,
                               sb_quota_verdict *v);
/* Calls of `tenant` in flight. */
int sb_quota_in_flight(const sb_quota *q, const char *tenant);
/* The limits `tenant` has (global, or its override merged). */
sb_quota_limits sb_quota_limits_of(const sb_quota *q, const char *tenant);
/* "quotas.requests_per_second" / "quotas.max_concurrent_calls": the
 * config key of a refusal's limit, for messages. NULL for ADMITTED. */
const char *sb_quota_limit_name(sb_quota_outcome o);

#endif
