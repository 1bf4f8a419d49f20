/* catalog.c: the demo's makes and models (see catalog.h) and VIN rules.
 *
 * Prices are the base MSRPs of recent US model years, rounded; WMIs are the
 * manufacturers' real ones for the plant that builds the model in North
 * America or abroad. The VDS codes are invented but fixed per model, so a
 * model's VINs look alike as real ones do.
 */
#include "catalog.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define T(a, b, c, d)                                                          \
  { a, b, c, d }

const dl_model dl_models[] = {
    /* Toyota */
    {"Toyota", "Camry", "sedan", "gas", 35, 5, 32, 0, 28400, "fwd", "4T1",
     "B11K", T("LE", "SE", "XLE", "XSE")},
    {"Toyota", "Corolla", "sedan", "gas", 20, 5, 35, 0, 22050, "fwd", "JTD",
     "EP4M", T("L", "LE", "SE", "XSE")},
    {"Toyota", "RAV4", "suv", "gas", 40, 5, 30, 0, 29250, "awd", "2T3", "W1RF",
     T("LE", "XLE", "Adventure", "Limited")},
    {"Toyota", "Highlander", "suv", "gas", 25, 8, 24, 0, 39520, "awd", "5TD",
     "ZZRH", T("LE", "XLE", "Limited", "Platinum")},
    {"Toyota", "Tacoma", "truck", "gas", 0, 5, 21, 0, 31500, "4wd", "3TM",
     "CZ5A", T("SR", "SR5", "TRD Off-Road", "Limited")},
    {"Toyota", "Tundra", "truck", "gas", 15, 5, 19, 0, 40000, "4wd", "5TF",
     "LA5D", T("SR", "SR5", "Limited", "Platinum")},
    {"Toyota", "Prius", "hatchback", "hybrid", 0, 5, 57, 0, 28550, "fwd", "JTD",
     "ACAA", T("LE", "XLE", "Limited", NULL)},
    {"Toyota", "Sienna", "van", "hybrid", 0, 8, 36, 0, 39185, "fwd", "5TD",
     "XRKC", T("LE", "XLE", "XSE", "Limited")},
    /* Honda */
    {"Honda", "Civic", "sedan", "gas", 10, 5, 36, 0, 24650, "fwd", "2HG",
     "FE2F", T("LX", "Sport", "EX", "Touring")},
    {"Honda", "Accord", "sedan", "gas", 45, 5, 32, 0, 28990, "fwd", "1HG",
     "CY1F", T("LX", "EX", "Sport", "Touring")},
    {"Honda", "CR-V", "suv", "gas", 40, 5, 30, 0, 30850, "awd", "7FA", "RS4H",
     T("LX", "EX", "EX-L", "Touring")},
    {"Honda", "HR-V", "suv", "gas", 0, 5, 28, 0, 25050, "fwd", "3CZ", "RZ2H",
     T("LX", "Sport", "EX-L", NULL)},
    {"Honda", "Pilot", "suv", "gas", 0, 8, 22, 0, 40200, "awd", "5FN", "YG1H",
     T("Sport", "EX-L", "TrailSport", "Elite")},
    {"Honda", "Odyssey", "van", "gas", 0, 8, 22, 0, 38810, "fwd", "5FN", "RL6H",
     T("EX", "EX-L", "Sport", "Elite")},
    {"Honda", "Ridgeline", "truck", "gas", 0, 5, 21, 0, 40000, "awd", "5FP",
     "YK3F", T("Sport", "RTL", "TrailSport", "Black Edition")},
    /* Ford */
    {"Ford", "F-150", "truck", "gas", 15, 5, 20, 0, 38565, "4wd", "1FT", "FW1E",
     T("XL", "XLT", "Lariat", "Platinum")},
    {"Ford", "Ranger", "truck", "gas", 0, 5, 22, 0, 33000, "4wd", "1FT", "ER4F",
     T("XL", "XLT", "Lariat", NULL)},
    {"Ford", "Maverick", "truck", "hybrid", 0, 5, 37, 0, 24995, "fwd", "3FT",
     "TW8E", T("XL", "XLT", "Lariat", NULL)},
    {"Ford", "Escape", "suv", "gas", 25, 5, 30, 0, 29495, "fwd", "1FM", "CU9G",
     T("Active", "ST-Line", "Platinum", NULL)},
    {"Ford", "Explorer", "suv", "gas", 0, 7, 24, 0, 40000, "rwd", "1FM", "5K8D",
     T("Active", "ST-Line", "Platinum", "ST")},
    {"Ford", "Bronco", "suv", "gas", 0, 5, 20, 0, 39630, "4wd", "1FM", "EE5D",
     T("Big Bend", "Outer Banks", "Badlands", "Wildtrak")},
    {"Ford", "Mustang", "coupe", "gas", 0, 4, 25, 0, 32515, "rwd", "1FA",
     "6P8T", T("EcoBoost", "EcoBoost Premium", "GT", "Dark Horse")},
    {"Ford", "Mustang Mach-E", "suv", "electric", 0, 5, 0, 250, 42995, "awd",
     "3FM", "TK3S", T("Select", "Premium", "GT", NULL)},
    /* Chevrolet */
    {"Chevrolet", "Malibu", "sedan", "gas", 0, 5, 32, 0, 25100, "fwd", "1G1",
     "ZD5S", T("LS", "RS", "LT", "2LT")},
    {"Chevrolet", "Trax", "suv", "gas", 0, 5, 30, 0, 21400, "fwd", "KL7",
     "7LE2", T("LS", "1RS", "LT", "ACTIV")},
    {"Chevrolet", "Equinox", "suv", "gas", 0, 5, 28, 0, 28600, "awd", "3GN",
     "AXKE", T("LS", "LT", "RS", "ACTIV")},
    {"Chevrolet", "Traverse", "suv", "gas", 0, 8, 22, 0, 39000, "awd", "1GN",
     "EVKK", T("LS", "LT", "Z71", "RS")},
    {"Chevrolet", "Tahoe", "suv", "gas", 0, 8, 18, 0, 58195, "4wd", "1GN",
     "SKMK", T("LS", "LT", "Z71", "High Country")},
    {"Chevrolet", "Colorado", "truck", "gas", 0, 5, 20, 0, 31000, "4wd", "1GC",
     "PTEE", T("WT", "LT", "Z71", "ZR2")},
    {"Chevrolet", "Silverado 1500", "truck", "gas", 0, 5, 19, 0, 37645, "4wd",
     "1GC", "UDEE", T("WT", "Custom", "LT", "High Country")},
    {"Chevrolet", "Bolt EV", "hatchback", "electric", 0, 5, 0, 259, 26500,
     "fwd", "1G1", "FY6S", T("1LT", "2LT", NULL, NULL)},
    /* Subaru */
    {"Subaru", "Impreza", "hatchback", "gas", 0, 5, 30, 0, 22995, "awd", "JF1",
     "GUAB", T("Base", "Sport", "RS", NULL)},
    {"Subaru", "WRX", "sedan", "gas", 0, 5, 22, 0, 33000, "awd", "JF1", "VBAF",
     T("Base", "Premium", "Limited", "GT")},
    {"Subaru", "Crosstrek", "suv", "gas", 10, 5, 29, 0, 25195, "awd", "JF2",
     "GUHC", T("Base", "Premium", "Sport", "Limited")},
    {"Subaru", "Forester", "suv", "gas", 10, 5, 29, 0, 28395, "awd", "JF2",
     "SKAD", T("Base", "Premium", "Sport", "Touring")},
    {"Subaru", "Outback", "suv", "gas", 0, 5, 28, 0, 29070, "awd", "4S4",
     "BTAN", T("Base", "Premium", "Limited", "Touring")},
    {"Subaru", "Ascent", "suv", "gas", 0, 8, 22, 0, 35000, "awd", "4S4", "WMAF",
     T("Base", "Premium", "Limited", "Touring")},
    /* Hyundai */
    {"Hyundai", "Elantra", "sedan", "gas", 20, 5, 34, 0, 21625, "fwd", "KMH",
     "LM4A", T("SE", "SEL", "N Line", "Limited")},
    {"Hyundai", "Sonata", "sedan", "gas", 25, 5, 32, 0, 27500, "fwd", "KMH",
     "L14J", T("SE", "SEL", "N Line", "Limited")},
    {"Hyundai", "Tucson", "suv", "gas", 35, 5, 28, 0, 28700, "awd", "KM8",
     "JBCA", T("SE", "SEL", "XRT", "Limited")},
    {"Hyundai", "Santa Fe", "suv", "gas", 20, 7, 25, 0, 33950, "awd", "KM8",
     "R4DE", T("SE", "SEL", "XRT", "Calligraphy")},
    {"Hyundai", "Palisade", "suv", "gas", 0, 8, 22, 0, 37000, "awd", "KM8",
     "R5DF", T("SE", "SEL", "XRT", "Calligraphy")},
    {"Hyundai", "Ioniq 5", "suv", "electric", 0, 5, 0, 266, 42600, "awd", "KM8",
     "KRDA", T("SE", "SEL", "Limited", NULL)},
    /* Kia */
    {"Kia", "Forte", "sedan", "gas", 0, 5, 34, 0, 20815, "fwd", "3KP", "F24A",
     T("LX", "LXS", "GT-Line", "GT")},
    {"Kia", "K5", "sedan", "gas", 0, 5, 31, 0, 26990, "fwd", "5XX", "G64J",
     T("LXS", "GT-Line", "EX", "GT")},
    {"Kia", "Sportage", "suv", "gas", 30, 5, 28, 0, 28190, "awd", "KND", "PUCA",
     T("LX", "EX", "X-Line", "SX")},
    {"Kia", "Sorento", "suv", "gas", 20, 7, 26, 0, 31990, "awd", "5XY", "RHLD",
     T("LX", "S", "EX", "SX")},
    {"Kia", "Telluride", "suv", "gas", 0, 8, 23, 0, 36990, "awd", "5XY", "P5DG",
     T("LX", "S", "EX", "SX")},
    {"Kia", "Carnival", "van", "gas", 0, 8, 22, 0, 34000, "fwd", "KND", "NB4H",
     T("LX", "EX", "SX", "SX-Prestige")},
    {"Kia", "EV6", "suv", "electric", 0, 5, 0, 310, 42600, "awd", "KND", "C3DL",
     T("Light", "Wind", "GT-Line", "GT")},
    /* Tesla */
    {"Tesla", "Model 3", "sedan", "electric", 0, 5, 0, 272, 40630, "rwd", "5YJ",
     "3E1E", T("Standard", "Long Range", "Performance", NULL)},
    {"Tesla", "Model Y", "suv", "electric", 0, 5, 0, 310, 44990, "awd", "7SA",
     "YGDE", T("Standard", "Long Range", "Performance", NULL)},
    /* BMW */
    {"BMW", "3 Series", "sedan", "gas", 0, 5, 30, 0, 44900, "rwd", "WBA",
     "5R1C", T("330i", "330i xDrive", "M340i", NULL)},
    {"BMW", "X3", "suv", "gas", 0, 5, 26, 0, 49500, "awd", "5UX", "TR9C",
     T("sDrive30i", "xDrive30i", "M40i", NULL)},
    {"BMW", "X5", "suv", "gas", 0, 5, 23, 0, 65200, "awd", "5UX", "CR6C",
     T("sDrive40i", "xDrive40i", "M60i", NULL)},
    /* Nissan */
    {"Nissan", "Sentra", "sedan", "gas", 0, 5, 34, 0, 20890, "fwd", "3N1",
     "AB8C", T("S", "SV", "SR", NULL)},
    {"Nissan", "Altima", "sedan", "gas", 0, 5, 32, 0, 26730, "fwd", "1N4",
     "BL4B", T("S", "SV", "SR", "SL")},
    {"Nissan", "Rogue", "suv", "gas", 0, 5, 33, 0, 28850, "awd", "JN8", "BT3B",
     T("S", "SV", "SL", "Platinum")},
    {"Nissan", "Frontier", "truck", "gas", 0, 5, 20, 0, 30000, "4wd", "1N6",
     "ED1E", T("S", "SV", "PRO-4X", NULL)},
    {"Nissan", "Leaf", "hatchback", "electric", 0, 5, 0, 149, 28140, "fwd",
     "1N4", "AZ1C", T("S", "SV", "SV Plus", NULL)},
};
const size_t dl_models_len = sizeof dl_models / sizeof dl_models[0];

const char *const dl_makes[] = {"Toyota", "Honda",   "Ford", "Chevrolet",
                                "Subaru", "Hyundai", "Kia",  "Tesla",
                                "BMW",    "Nissan"};
const size_t dl_makes_len = sizeof dl_makes / sizeof dl_makes[0];

const dl_model *dl_model_find(const char *make, const char *model) {
  for (size_t i = 0; i < dl_models_len; i++)
    if (strcasecmp(dl_models[i].make, make) == 0 &&
        strcasecmp(dl_models[i].model, model) == 0)
      return &dl_models[i];
  return NULL;
}

/* Lower-case letters and digits of s, into out (size n). */
static void name_key(const char *s, char *out, size_t n) {
  size_t o = 0;
  for (; *s && o + 1 < n; s++)
    if (isalnum((unsigned char)*s)) out[o++] = (char)tolower((unsigned char)*s);
  out[o] = '\0';
}

static const char *skip_article(const char *s) {
  while (isspace((unsigned char)*s))
    s++;
  static const char *const articles[] = {"a ",  "an ", "the ", "un ",  "une ",
                                         "el ", "la ", "le ",  "ein ", "eine "};
  for (size_t i = 0; i < sizeof articles / sizeof articles[0]; i++)
    if (strncasecmp(s, articles[i], strlen(articles[i])) == 0)
      return s + strlen(articles[i]);
  return s;
}

const dl_model *dl_model_lookup(const char *make, const char *text) {
  char key[64], mkey[64];
  if (!text) return NULL;
  name_key(skip_article(text), key, sizeof key);
  size_t klen = strlen(key);
  if (klen < 2) return NULL;
  /* pass 0: exact; 1: prefix of the model; 2: part of it (>= 3 chars) */
  for (int pass = 0; pass < 3; pass++)
    for (size_t i = 0; i < dl_models_len; i++) {
      const dl_model *m = &dl_models[i];
      if (make && strcasecmp(make, m->make) != 0) continue;
      name_key(m->model, mkey, sizeof mkey);
      if ((pass == 0 && strcmp(key, mkey) == 0) ||
          (pass == 1 && strncmp(mkey, key, klen) == 0) ||
          (pass == 2 && klen >= 3 && strstr(mkey, key)))
        return m;
    }
  return NULL;
}

const char *dl_make_lookup(const char *text) {
  static const struct {
    const char *nick, *make;
  } nicks[] = {{"chevy", "Chevrolet"}, {"beemer", "BMW"}, {"bimmer", "BMW"}};
  char key[64], mkey[64];
  if (!text) return NULL;
  name_key(skip_article(text), key, sizeof key);
  for (size_t i = 0; i < dl_makes_len; i++) {
    name_key(dl_makes[i], mkey, sizeof mkey);
    if (strcmp(key, mkey) == 0) return dl_makes[i];
  }
  for (size_t i = 0; i < sizeof nicks / sizeof nicks[0]; i++)
    if (strcmp(key, nicks[i].nick) == 0) return nicks[i].make;
  return NULL;
}

/* ---- the calendar (Howard Hinnant's civil-date algorithms) --------------- */

long dl_days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  long yoe = y - era * 400;
  long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void dl_civil_from_days(long z, int *y, int *m, int *d) {
  z += 719468;
  long era = (z >= 0 ? z : z - 146096) / 146097;
  long doe = z - era * 146097;
  long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  long mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yoe + era * 400 + (*m <= 2));
}

int dl_date_parse(const char *s, long *days) {
  int y, m, d, n = 0;
  if (!s || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
      s[10] != '\0' || m < 1 || m > 12 || d < 1 || d > 31 || y < 1900)
    return -1;
  long z = dl_days_from_civil(y, m, d);
  int y2, m2, d2;
  dl_civil_from_days(z, &y2, &m2, &d2);
  if (y2 != y || m2 != m || d2 != d) return -1; /* Feb 30 */
  *days = z;
  return 0;
}

void dl_date_format(long days, char out[11]) {
  int y, m, d;
  dl_civil_from_days(days, &y, &m, &d);
  char text[48];
  snprintf(text, sizeof text, "%04d-%02d-%02d", y % 10000, m, d);
  memcpy(out, text, 10);
  out[10] = '\0';
}

int dl_weekday(long days) { /* 1970-01-01 was a Thursday */
  int w = (int)((days + 4) % 7);
  return w < 0 ? w + 7 : w;
}

/* ---- VINs --------------------------------------------------------------- */

static int transliterate(char c) {
  c = (char)toupper((unsigned char)c);
  if (c >= '0' && c <= '9') return c - '0';
  /* A-H 1-8, J-R 1-9 without O and Q, S-Z 2-9 */
  static const char *const letters = "ABCDEFGHJKLMNPRSTUVWXYZ";
  static const int values[] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4,
                               5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9};
  const char *p = c ? strchr(letters, c) : NULL;
  return p ? values[p - letters] : -1;
}

char dl_vin_check_digit(const char *vin) {
  static const int weights[17] = {8, 7, 6, 5, 4, 3, 2, 10, 0,
                                  9, 8, 7, 6, 5, 4, 3, 2};
  int sum = 0;
  for (int i = 0; i < 17; i++) {
    int v = transliterate(vin[i]);
    if (v < 0) return 0;
    sum += v * weights[i];
  }
  int r = sum % 11;
  return r == 10 ? 'X' : (char)('0' + r);
}

int dl_vin_valid(const char *vin) {
  if (!vin || strlen(vin) != 17) return 0;
  char c = dl_vin_check_digit(vin);
  return c && toupper((unsigned char)vin[8]) == c;
}

char dl_vin_year_code(int year) {
  static const char codes[] = "ABCDEFGHJKLMNPRSTVWXY123456789";
  int i = (year - 1980) % 30;
  if (i < 0) i += 30;
  return codes[i];
}
