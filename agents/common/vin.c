/* vin.c: VIN validation and decoding (see vin.h).
 *
 * The check digit is dealer-data's (data/catalog.c); this file says what
 * is wrong with a VIN that fails, for the caller to correct. The make comes
 * from a small table of world manufacturer identifiers, enough for the makes of
 * the demo; a VIN that neither the service desk nor the inventory knows is
 * decoded from it so a recall or part can still be matched by make and year.
 */
#include "vin.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* 1 if c may be in a VIN: A-Z (not I, O, Q) and 0-9, either case. */
static int vin_char(char c) {
  c = (char)toupper((unsigned char)c);
  return ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) && c != 'I' &&
         c != 'O' && c != 'Q';
}

int dl_vin_check(const char *vin, char *why, size_t why_len) {
  size_t n = vin ? strlen(vin) : 0;
  if (n != DL_VIN_LEN) {
    snprintf(why, why_len, "a VIN has 17 characters, not %zu", n);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (!vin_char(vin[i])) {
      snprintf(why, why_len, "'%c' (position %zu) cannot be in a VIN", vin[i],
               i + 1);
      return 0;
    }
  }
  char want = dl_vin_check_digit(vin);
  if (toupper((unsigned char)vin[8]) != want) {
    snprintf(why, why_len,
             "the check digit (position 9) is '%c', the VIN "
             "spells '%c': a typo?",
             vin[8], want);
    return 0;
  }
  return 1;
}

static const struct {
  const char *wmi, *make;
} vin_wmis[] = {
    {"4T1", "Toyota"},    {"4T3", "Toyota"},    {"JTD", "Toyota"},
    {"JT2", "Toyota"},    {"JTE", "Toyota"},    {"5TD", "Toyota"},
    {"5TF", "Toyota"},    {"2T1", "Toyota"},    {"1HG", "Honda"},
    {"2HG", "Honda"},     {"JHM", "Honda"},     {"5FN", "Honda"},
    {"5J6", "Honda"},     {"1FA", "Ford"},      {"1FM", "Ford"},
    {"1FT", "Ford"},      {"3FA", "Ford"},      {"1G1", "Chevrolet"},
    {"1GC", "Chevrolet"}, {"1GN", "Chevrolet"}, {"2G1", "Chevrolet"},
    {"3GN", "Chevrolet"}, {"JF1", "Subaru"},    {"JF2", "Subaru"},
    {"4S3", "Subaru"},    {"4S4", "Subaru"},    {"KMH", "Hyundai"},
    {"5NP", "Hyundai"},   {"5NM", "Hyundai"},   {"KNA", "Kia"},
    {"KND", "Kia"},       {"5XY", "Kia"},       {"5YJ", "Tesla"},
    {"7SA", "Tesla"},     {"WBA", "BMW"},       {"5UX", "BMW"},
    {"1N4", "Nissan"},    {"3N1", "Nissan"},    {"5N1", "Nissan"},
    {"JN1", "Nissan"},    {"JN8", "Nissan"},
};

const char *dl_vin_make(const char *vin) {
  if (!vin || strlen(vin) < 3) return NULL;
  for (size_t i = 0; i < sizeof vin_wmis / sizeof vin_wmis[0]; i++)
    if (strncasecmp(vin, vin_wmis[i].wmi, 3) == 0) return vin_wmis[i].make;
  return NULL;
}

int dl_vin_year(const char *vin) {
  /* Years cycle every 30: A-Y without I O Q U Z, then 1-9. */
  static const char codes[] = "ABCDEFGHJKLMNPRSTVWXY123456789";
  if (!vin || strlen(vin) != DL_VIN_LEN) return 0;
  char c = (char)toupper((unsigned char)vin[9]);
  const char *p = c ? strchr(codes, c) : NULL;
  if (!p) return 0;
  int year = 1980 + (int)(p - codes);
  if (isalpha((unsigned char)vin[6])) year += 30;
  return year;
}

int dl_vin_arg(dl_request *req, json_t *args, const char *key, int required,
               char out[DL_VIN_LEN + 1]) {
  int ok = 1;
  const char *v = dl_arg_str(req, args, key, NULL, &ok);
  if (!ok) return -1;
  if (!v || !*v) {
    if (!required) return 0;
    dl_invalid(req, "argument '%s' (the 17-character VIN) is required", key);
    return -1;
  }
  char why[128];
  if (!dl_vin_check(v, why, sizeof why)) {
    dl_invalid(req, "argument '%s': \"%.40s\" is not a valid VIN: %s", key, v,
               why);
    return -1;
  }
  for (int i = 0; i < DL_VIN_LEN; i++)
    out[i] = (char)toupper((unsigned char)v[i]);
  out[DL_VIN_LEN] = '\0';
  return 1;
}

json_t *dl_vin_vehicle(dl_request *req, const char *vin) {
  static const char *const sources[] = {
      "SELECT year, make, model FROM customer_vehicles WHERE vin = ?",
      "SELECT year, make, model FROM vehicles WHERE vin = ?"};
  for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
    sqlite3_stmt *st = dl_prepare(req, sources[i]);
    if (!st) return NULL;
    sqlite3_bind_text(st, 1, vin, -1, SQLITE_STATIC);
    json_t *v = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
      v = dl_row_json(st);
      json_object_set_new(v, "vin", json_string(vin));
      json_object_set_new(v, "decoded", json_false());
    }
    sqlite3_finalize(st);
    if (v) return v;
  }
  const char *make = dl_vin_make(vin);
  int year = dl_vin_year(vin);
  return json_pack("{sssoso sosb}", "vin", vin, "year",
                   year ? json_integer(year) : json_null(), "make",
                   make ? json_string(make) : json_null(), "model", json_null(),
                   "decoded", 1);
}
