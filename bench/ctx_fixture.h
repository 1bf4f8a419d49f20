/* ctx_fixture: deterministic, realistic context data for bench/ctx_bench.c.
 *
 * Two kinds of document: the everyday "population" context (a dealership
 * sales conversation of a few kilobytes, grown by one message per update),
 * of which the bench stores 10k or 1M, and one large dealership context
 * (hundreds of messages, a full vehicle inventory) to show what a
 * projection saves. Everything is drawn from a seeded PRNG, so two runs
 * store the same shapes; only ids and timestamps differ.
 *
 * Every function returns a NEW jansson reference the caller releases.
 */
#ifndef SB_BENCH_CTX_FIXTURE_H
#define SB_BENCH_CTX_FIXTURE_H

#include <jansson.h>
#include <stdint.h>

typedef struct fx_rng {
  uint64_t state;
} fx_rng;

void fx_seed(fx_rng *r, uint64_t seed);
uint64_t fx_next(fx_rng *r);
uint32_t fx_below(fx_rng *r, uint32_t n); /* uniform in [0, n) */

/* Input for sb_ctx_create of population context number n: workflowId,
 * sessionId, data (3 messages, workflow, user, dealership) and metadata. */
json_t *fx_population_input(fx_rng *r, uint64_t n);

/* The RFC 6902 patch an agent applies to make `version` (2..) of a
 * population context: append one message, move the workflow step, and
 * every few versions record a workflow variable. */
json_t *fx_population_patch(fx_rng *r, int version, int64_t now_ms);

/* The RFC 7386 merge patch of the measured update operation. */
json_t *fx_update_merge_patch(fx_rng *r, int64_t seq);

/* Input for sb_ctx_create of the large dealership context: `messages`
 * conversation messages and `vehicles` inventory entries, a user profile
 * and preferences, and service workflow variables (including a vin). */
json_t *fx_dealership_input(fx_rng *r, int messages, int vehicles,
                            int64_t now_ms);

#endif
