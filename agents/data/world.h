/* agents/data/world.h: the fixed facts of the demo world (private to
 * agents/data): dealer groups, dealerships, their rules, recall campaigns
 * and the names customers have. generate.c draws everything else. */
#ifndef DL_DATA_WORLD_H
#define DL_DATA_WORLD_H

#include <stddef.h>

typedef struct data_dealership {
  const char *id, *name, *city, *state, *address, *phone;
  const char *brands[3]; /* makes sold new, NULL-terminated */
  double sales_tax_rate, doc_fee, registration_fee;
  const char *opens, *closes;
} data_dealership;

typedef struct data_policy {
  const char *key, *value; /* value: JSON text */
} data_policy;

typedef struct data_tenant {
  const char *id, *name;
  unsigned serial_base; /* VIN serials of this tenant start here */
  const data_dealership *dealerships;
  size_t dealerships_len;
  const data_policy *policies;
  size_t policies_len;
} data_tenant;

typedef struct data_recall {
  const char *campaign, *make, *model;
  int year_from, year_to;
  const char *component, *summary, *remedy;
} data_recall;

extern const data_tenant data_tenants[];
extern const size_t data_tenants_len;
extern const data_recall data_recalls[];
extern const size_t data_recalls_len;
extern const char *const data_first_names[];
extern const size_t data_first_names_len;
extern const char *const data_last_names[];
extern const size_t data_last_names_len;

#endif
