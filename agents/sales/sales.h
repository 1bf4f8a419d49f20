/* agents/sales/sales.h: dealer-sales's tools (the logic; main.c holds the
 * tool table). Each runs on a worker thread inside the call's transaction
 * (see common/agent.h) and returns its structured result. */
#ifndef DL_SALES_H
#define DL_SALES_H

#include "common/agent.h"

/* {make?, model?, body?, fuel?, condition?, budget?, monthly_budget?,
 *  year_min?, max_mileage?, seats_min?, features?, dealership?, limit?}
 * -> {total_matches, criteria, vehicles: [...]} */
json_t *sales_search_inventory(dl_request *req, json_t *args);
/* {vin} -> the vehicle, its features and its dealership */
json_t *sales_vehicle_details(dl_request *req, json_t *args);
/* {vin, date?} -> the free test-drive slots of that day */
json_t *sales_test_drive_slots(dl_request *req, json_t *args);
/* {vin, starts_at?, customer_name, phone?, email?} -> the booking */
json_t *sales_book_test_drive(dl_request *req, json_t *args);

/* Score of one vehicle against the buyer's wishes (0..100), with reasons
 * appended to `reasons` (a JSON array); exposed for the tests. */
typedef struct sales_wish {
  const char *make, *model; /* as resolved from the catalogue, or NULL */
  double budget;            /* max price, 0: none */
  const char *const *features;
  size_t features_len;
} sales_wish;
typedef struct sales_car {
  const char *make, *model, *condition;
  int year, mileage;
  double price;
  json_t *features; /* array of strings, borrowed */
} sales_car;
int sales_score(const sales_wish *w, const sales_car *c, json_t *reasons);

/* dl_fail "no vehicle with VIN ... at <the dealer group>"; NULL. */
json_t *sales_not_found(dl_request *req, const char *vin);

/* "$28,495" into out. */
void sales_money(double dollars, char *out, size_t n);

#endif
