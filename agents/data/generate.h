/* agents/data/generate.h: dealer-data's generator of the demo databases.
 *
 * dl_data_generate writes one tenant's SQLite file (OUT/<tenant>.db, the
 * schema of dl_schema_sql) from a PRNG seeded by the tenant id alone, so two
 * runs write the same data and two tenants never share a VIN. The file is
 * built under a temporary name and renamed into place, so an agent reading
 * the directory sees the old file or the new one, never half of one.
 */
#ifndef DL_DATA_GENERATE_H
#define DL_DATA_GENERATE_H

#include <stdint.h>

#include "core/core.h"

/* The demo's tenants: "north-star" and "lakeside". */
extern const char *const dl_data_tenants[];
extern const size_t dl_data_tenants_len;

/* The first day of the demo calendar (policy calendar.start). */
#define DL_DATA_CALENDAR_START "2027-01-04"
#define DL_DATA_VEHICLES_PER_DEALERSHIP 500

typedef struct dl_data_summary {
  const char *tenant_name; /* static */
  int dealerships, vehicles, slots, parts, customer_vehicles, recalls;
} dl_data_summary;

/* Write OUT_DIR/<tenant>.db (OUT_DIR must exist). 0, or a negative SB_E*
 * code with err set (SB_ENOENT: not a demo tenant). sum may be NULL. */
int dl_data_generate(const char *out_dir, const char *tenant,
                     dl_data_summary *sum, sb_error *err);

/* splitmix64: the generator's PRNG, exposed for the tests. */
typedef struct dl_rng {
  uint64_t state;
} dl_rng;
void dl_rng_seed(dl_rng *r, const char *text);
uint64_t dl_rng_next(dl_rng *r);
/* Uniform in [0, n). */
uint32_t dl_rng_below(dl_rng *r, uint32_t n);

#endif
