/* vin.h: vehicle identification numbers, shared by the service and parts
 * agents: validation (ISO 3779 / 49 CFR 565 check digit), decoding of the
 * make (from the world manufacturer identifier) and model year, and the
 * vehicle a VIN names in a tenant's data. */
#ifndef DL_VIN_H
#define DL_VIN_H

#include "agent.h"
#include "data/catalog.h"

#define DL_VIN_LEN 17

/* 1 if vin is a valid VIN; else 0 with the reason, for people, in why.
 * (The check digit itself is dealer-data's dl_vin_check_digit, one copy
 * for the generator and the agents: data/catalog.h.) */
int dl_vin_check(const char *vin, char *why, size_t why_len);
/* The make of a VIN's WMI (its first three characters), e.g. "Toyota"
 * (static), or NULL when the table does not know it. */
const char *dl_vin_make(const char *vin);
/* The model year from position 10 (position 7 a letter: 2010-2039, else
 * 1980-2009), or 0 if position 10 is no year code. */
int dl_vin_year(const char *vin);

/* The VIN argument `key`, upper-cased into out: 1 when given and valid, 0
 * when absent (an error if required), -1 after dl_invalid naming it. */
int dl_vin_arg(dl_request *req, json_t *args, const char *key, int required,
               char out[DL_VIN_LEN + 1]);
/* The vehicle a VIN names (new reference): {vin, year, make, model,
 * decoded}: from customer_vehicles (the service desk's records), else the
 * inventory, else decoded from the VIN (decoded: true, model null, make
 * null when unknown). NULL after dl_fail. */
json_t *dl_vin_vehicle(dl_request *req, const char *vin);

#endif
