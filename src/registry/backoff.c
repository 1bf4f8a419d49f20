/* backoff.c: retry delays with exponential growth, a cap and full jitter.
 *
 * Kept apart from the registry because it is pure arithmetic that the
 * flow and mcp client code use too; the random value comes from the caller
 * so retries are reproducible in tests.
 */
#include <math.h>

#include "registry/registry.h"

uint64_t sb_backoff_delay_ms(unsigned attempt, uint64_t base_ms,
                             uint64_t cap_ms, double random01) {
  /* base * 2^attempt, stopping at the cap before it can overflow */
  uint64_t ceiling = base_ms < cap_ms ? base_ms : cap_ms;
  for (unsigned i = 0; i < attempt && ceiling > 0 && ceiling < cap_ms; i++)
    ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
  if (!(random01 > 0)) return 0; /* also catches NaN */
  if (random01 >= 1) random01 = nextafter(1.0, 0.0);
  uint64_t delay = (uint64_t)floor(random01 * (double)ceiling);
  return delay < ceiling ? delay : (ceiling ? ceiling - 1 : 0);
}
