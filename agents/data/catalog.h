/* agents/data/catalog.h: the makes and models of the dealership demo.
 *
 * One table shared by dealer-data (which draws its inventory, customer
 * cars, recalls and parts from it) and dealer-general (whose make/model
 * lexicon it is), so the intake agent recognises exactly the cars the
 * dealer groups stock. Also the VIN rules both need: the check digit
 * (49 CFR 565, position 9) and the model-year code (position 10).
 */
#ifndef DL_CATALOG_H
#define DL_CATALOG_H

#include <stddef.h>

typedef struct dl_model {
  const char *make;
  const char *model;
  const char *body; /* sedan|suv|truck|hatchback|coupe|van */
  const char *fuel; /* the usual fuel: gas|hybrid|electric */
  int hybrid_pct;   /* share of gas models sold as hybrids */
  int seats;
  int mpg;                /* combined, gas version; 0 for electric */
  int range_miles;        /* electric only */
  double msrp;            /* base trim, current model year, dollars */
  const char *drivetrain; /* the usual one: fwd|rwd|awd|4wd */
  const char *wmi;        /* VIN positions 1-3 */
  const char *vds;        /* VIN positions 4-7 (position 8 is the trim) */
  const char *trims[4];   /* cheapest first; NULL-terminated if fewer */
} dl_model;

extern const dl_model dl_models[];
extern const size_t dl_models_len;

/* The distinct makes, in catalogue order. */
extern const char *const dl_makes[];
extern const size_t dl_makes_len;

/* The VIN check digit ('0'-'9' or 'X') of a 17-character VIN (position 9
 * is ignored), or 0 if a character is not allowed (I, O, Q, non-alnum). */
char dl_vin_check_digit(const char *vin);
/* 1 if vin is 17 allowed characters with the right check digit
 * (case-insensitive). */
int dl_vin_valid(const char *vin);
/* The model-year code of position 10 ('A' = 1980/2010 ... 'Y', '1'-'9'). */
char dl_vin_year_code(int year);
/* The model of a make+model pair (case-insensitive), or NULL. */
const dl_model *dl_model_find(const char *make, const char *model);
/* The model a person means by `text` ("camry", "a Camry", "CRV", "f150",
 * "Silverado", "mach-e"): compared without case, spaces or punctuation,
 * exactly first, then as the start of a model's name, then as a part of
 * it. make (may be NULL) restricts the search. NULL if none. */
const dl_model *dl_model_lookup(const char *make, const char *text);
/* The make named by `text` (case-insensitive; "chevy" and "vw"-style
 * nicknames included), as spelled in the catalogue, or NULL. */
const char *dl_make_lookup(const char *text);

/* ---- the demo calendar --------------------------------------------------- */

/* Days since 1970-01-01 of a civil date, and back. */
long dl_days_from_civil(int y, int m, int d);
void dl_civil_from_days(long days, int *y, int *m, int *d);
/* Parse "YYYY-MM-DD" (a real date) into days; -1 if it is not one. */
int dl_date_parse(const char *s, long *days);
/* Format days as "YYYY-MM-DD" into out (11 bytes). */
void dl_date_format(long days, char out[11]);
/* 0 = Sunday ... 6 = Saturday. */
int dl_weekday(long days);

#endif
