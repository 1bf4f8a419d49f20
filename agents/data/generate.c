/* generate.c: writes one tenant's demo database (see generate.h).
 *
 * Everything random comes from one splitmix64 stream seeded by the tenant
 * id and drawn in a fixed order, so a tenant's file holds the same rows on
 * every run. VIN serials come from a range of the tenant's own (world.c),
 * so no VIN appears in two tenants. The whole file is written in one
 * transaction on a temporary name and renamed over the old one.
 */
#include "generate.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/agent.h"
#include "data/catalog.h"
#include "world.h"

#define CAL_YEAR 2027 /* the model year of the demo's newest cars */
#define SLOT_DAYS 20
#define SLOT_BAYS 4

/* ---- PRNG --------------------------------------------------------------- */

void dl_rng_seed(dl_rng *r, const char *text) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const char *p = text; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  r->state = h;
}

uint64_t dl_rng_next(dl_rng *r) {
  uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint32_t dl_rng_below(dl_rng *r, uint32_t n) {
  return n ? (uint32_t)(dl_rng_next(r) % n) : 0;
}

/* ---- the writer --------------------------------------------------------- */

typedef struct gen {
  sqlite3 *db;
  dl_rng rng;
  const data_tenant *t;
  dl_data_summary *sum;
  sb_error *err;
  sqlite3_stmt *vehicle, *slot, *customer, *part, *stock;
} gen;

static int db_fail(gen *g, const char *what) {
  return sb_error_set(g->err, SB_EIO, "%s: %s", what, sqlite3_errmsg(g->db));
}

static int step(gen *g, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? 0 : db_fail(g, what);
}

static int prepare(gen *g, sqlite3_stmt **st, const char *sql) {
  return sqlite3_prepare_v2(g->db, sql, -1, st, NULL) == SQLITE_OK
             ? 0
             : db_fail(g, "prepare");
}

static uint32_t pick(gen *g, uint32_t n) { return dl_rng_below(&g->rng, n); }
static int chance(gen *g, int pct) { return (int)pick(g, 100) < pct; }

/* Round to a sticker price: ...95 dollars. */
static double sticker(double x) {
  double p = floor(x / 100.0 + 0.5) * 100.0 - 5.0;
  return p < 995.0 ? 995.0 : p;
}

/* The first model year each model was sold (the catalogue has recent
 * generations only; older cars of newer names would be anachronisms). */
static int first_year(const dl_model *m) {
  static const struct {
    const char *model;
    int year;
  } firsts[] = {
      {"Mustang Mach-E", 2021}, {"Bronco", 2021},   {"Maverick", 2022},
      {"Ioniq 5", 2022},        {"EV6", 2022},      {"Model Y", 2020},
      {"Model 3", 2017},        {"Carnival", 2022}, {"K5", 2021},
      {"Bolt EV", 2017},        {"Ascent", 2019},   {"Ranger", 2019},
      {"Trax", 2015},           {"HR-V", 2016},     {"Telluride", 2020},
      {"Palisade", 2020},       {"Crosstrek", 2016}};
  for (size_t i = 0; i < sizeof firsts / sizeof firsts[0]; i++)
    if (strcmp(firsts[i].model, m->model) == 0) return firsts[i].year;
  return 2012;
}

static int trims_of(const dl_model *m) {
  int n = 0;
  while (n < 4 && m->trims[n])
    n++;
  return n;
}

static int sells_new(const data_dealership *d, const char *make) {
  for (int i = 0; i < 3 && d->brands[i]; i++)
    if (strcmp(d->brands[i], make) == 0) return 1;
  return 0;
}

static const dl_model *random_model(gen *g, const data_dealership *d) {
  if (!d) return &dl_models[pick(g, (uint32_t)dl_models_len)];
  const dl_model *own[32];
  size_t n = 0;
  for (size_t i = 0; i < dl_models_len && n < 32; i++)
    if (sells_new(d, dl_models[i].make)) own[n++] = &dl_models[i];
  return own[pick(g, (uint32_t)n)];
}

/* A VIN: WMI, VDS, trim, check digit, year, plant, serial. */
static void make_vin(gen *g, const dl_model *m, int trim, int year,
                     char vin[18]) {
  unsigned serial = g->t->serial_base + pick(g, 400000);
  static const char plants[] = "ABCDEFGHJKLMNPRSTUVWXYZ";
  char plant = plants[(m - dl_models) % (sizeof plants - 1)];
  snprintf(vin, 18, "%s%s%c0%c%c%06u", m->wmi, m->vds, '1' + trim,
           dl_vin_year_code(year), plant, serial);
  vin[8] = dl_vin_check_digit(vin);
}

static const char *const colors[] = {
    "Super White",    "Midnight Black", "Celestial Silver", "Magnetic Gray",
    "Blueprint Blue", "Supersonic Red", "Lunar Rock",       "Wind Chill Pearl",
    "Cavalry Blue",   "Ruby Flare",     "Army Green",       "Iconic Silver"};

/* Features by tier: every car of the age has the first; trims add more. */
static const char *const basic_features[] = {"backup camera",
                                             "Apple CarPlay",
                                             "Android Auto",
                                             "bluetooth",
                                             "keyless entry",
                                             "lane keep assist",
                                             "automatic emergency braking"};
static const char *const extra_features[] = {"heated seats",
                                             "blind spot monitoring",
                                             "adaptive cruise control",
                                             "remote start",
                                             "sunroof",
                                             "leather seats",
                                             "navigation",
                                             "wireless charging",
                                             "heated steering wheel",
                                             "premium audio",
                                             "power liftgate",
                                             "ventilated seats",
                                             "panoramic roof",
                                             "360 camera",
                                             "head-up display"};

static char *features_json(gen *g, const dl_model *m, int trim, int year,
                           const char *drivetrain) {
  json_t *a = json_array();
  size_t nbasic = year >= 2019 ? 7 : year >= 2016 ? 4 : 2;
  for (size_t i = 0; i < nbasic; i++)
    json_array_append_new(a, json_string(basic_features[i]));
  int extras = 1 + trim * 2 + (int)pick(g, 3);
  size_t n = sizeof extra_features / sizeof extra_features[0];
  for (size_t i = 0; i < n && extras > 0; i++) {
    /* the cheaper extras first: a Limited has what an LE has, and more */
    if (i < (size_t)(trim * 3 + 3) && chance(g, 70)) {
      json_array_append_new(a, json_string(extra_features[i]));
      extras--;
    }
  }
  if (m->seats >= 7) json_array_append_new(a, json_string("third row"));
  if (strcmp(m->body, "truck") == 0 && chance(g, 60))
    json_array_append_new(a, json_string("tow package"));
  if (strcmp(drivetrain, "awd") == 0 || strcmp(drivetrain, "4wd") == 0)
    json_array_append_new(a, json_string(drivetrain[0] == 'a'
                                             ? "all-wheel drive"
                                             : "four-wheel drive"));
  char *text = sb_json_dumps(a, JSON_COMPACT);
  json_decref(a);
  return text;
}

static int insert_vehicle(gen *g, const data_dealership *d) {
  int roll = (int)pick(g, 100);
  const char *condition = roll < 55 ? "new" : roll < 67 ? "certified" : "used";
  const dl_model *m = random_model(g, roll < 67 || chance(g, 40) ? d : NULL);
  int year;
  if (condition[0] == 'n')
    year = chance(g, 70) ? CAL_YEAR : CAL_YEAR - 1;
  else if (condition[0] == 'c')
    year = CAL_YEAR - 1 - (int)pick(g, 5);
  else
    year = CAL_YEAR - 2 - (int)pick(g, 10);
  if (year < first_year(m)) year = first_year(m);
  int ntrims = trims_of(m), trim = (int)pick(g, (uint32_t)ntrims);
  int hybrid = strcmp(m->fuel, "gas") == 0 && chance(g, m->hybrid_pct);
  const char *fuel = hybrid ? "hybrid" : m->fuel;
  char trim_name[64];
  snprintf(trim_name, sizeof trim_name, "%s%s", m->trims[trim],
           hybrid ? " Hybrid" : "");
  const char *drivetrain = m->drivetrain;
  if (strcmp(drivetrain, "fwd") == 0 && strcmp(m->body, "suv") == 0 &&
      chance(g, 50))
    drivetrain = "awd";
  else if (strcmp(drivetrain, "4wd") == 0 && chance(g, 20))
    drivetrain = "rwd";
  int age = CAL_YEAR - year;
  int mileage = condition[0] == 'n'
                    ? 5 + (int)pick(g, 40)
                    : age * (7000 + (int)pick(g, 9000)) + (int)pick(g, 6000);
  if (condition[0] == 'c' && mileage > 75000)
    mileage = 60000 + (int)pick(g, 15000);
  double msrp = m->msrp * (1.0 + 0.11 * trim) + (hybrid ? 2500.0 : 0.0);
  if (year == CAL_YEAR) msrp *= 1.02;
  double price;
  if (condition[0] == 'n') {
    price = msrp * (0.97 + pick(g, 60) / 1000.0); /* markup or discount */
  } else {
    price = msrp * pow(0.915, age) - (mileage - age * 12000) * 0.05;
    if (price < msrp * 0.25) price = msrp * 0.25;
    if (condition[0] == 'c') price *= 1.05;
  }
  int mpg = 0, range = 0;
  if (strcmp(fuel, "electric") == 0)
    range = m->range_miles + trim * 15 - age * 4;
  else
    mpg = m->mpg + (hybrid ? m->mpg / 3 + 4 : 0) - (int)pick(g, 3) + 1;
  int status_roll = (int)pick(g, 100);
  const char *status = status_roll < 4   ? "sold"
                       : status_roll < 7 ? "hold"
                                         : "available";
  const char *color = colors[pick(g, sizeof colors / sizeof colors[0])];
  char *features = features_json(g, m, trim, year, drivetrain);
  char vin[18];
  sqlite3_stmt *st = g->vehicle;
  int rc = 0;
  for (int tries = 0; tries < 8; tries++) {
    make_vin(g, m, trim, year, vin);
    sqlite3_bind_text(st, 1, vin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, year);
    sqlite3_bind_text(st, 4, m->make, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, m->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, trim_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, m->body, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, condition, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, mileage);
    sqlite3_bind_double(st, 10, sticker(price));
    sqlite3_bind_text(st, 11, color, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, fuel, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, drivetrain, -1, SQLITE_STATIC);
    if (mpg) sqlite3_bind_int(st, 14, mpg);
    if (range) sqlite3_bind_int(st, 15, range);
    sqlite3_bind_int(st, 16, m->seats);
    sqlite3_bind_text(st, 17, features ? features : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 18, status, -1, SQLITE_STATIC);
    if ((rc = step(g, st, "insert vehicle")) != 0) break;
    if (sqlite3_changes(g->db) == 1) break; /* else the VIN was taken */
  }
  sb_free(features);
  if (rc == 0) g->sum->vehicles++;
  return rc;
}

/* ---- the calendar ------------------------------------------------------- */

static int insert_slots(gen *g, const data_dealership *d) {
  int y, m, day;
  sscanf(DL_DATA_CALENDAR_START, "%d-%d-%d", &y, &m, &day);
  long z = dl_days_from_civil(y, m, day);
  for (int worked = 0; worked < SLOT_DAYS; z++) {
    if (dl_weekday(z) == 0) continue; /* closed on Sundays */
    worked++;
    dl_civil_from_days(z, &y, &m, &day);
    for (int hour = 8; hour < 16; hour++)
      for (int bay = 1; bay <= SLOT_BAYS; bay++) {
        char at[32];
        snprintf(at, sizeof at, "%04d-%02d-%02dT%02d:00", y, m, day, hour);
        sqlite3_bind_text(g->slot, 1, d->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(g->slot, 2, at, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(g->slot, 3, bay);
        sqlite3_bind_int(g->slot, 4, chance(g, 30));
        if (step(g, g->slot, "insert service slot") != 0) return -1;
        g->sum->slots++;
      }
  }
  return 0;
}

/* ---- customers, recalls, parts ------------------------------------------ */

static int insert_customers(gen *g, int count) {
  for (int i = 0; i < count; i++) {
    const dl_model *m;
    int year;
    if (chance(g, 20)) { /* a car under an open recall */
      const data_recall *r = &data_recalls[pick(g, (uint32_t)data_recalls_len)];
      m = dl_model_find(r->make, r->model);
      year = r->year_from +
             (int)pick(g, (uint32_t)(r->year_to - r->year_from + 1));
    } else {
      m = random_model(g, NULL);
      year = 2012 + (int)pick(g, 14);
      if (year < first_year(m)) year = first_year(m);
    }
    if (!m) continue;
    char vin[18], name[96], phone[24];
    make_vin(g, m, (int)pick(g, (uint32_t)trims_of(m)), year, vin);
    snprintf(name, sizeof name, "%s %s",
             data_first_names[pick(g, (uint32_t)data_first_names_len)],
             data_last_names[pick(g, (uint32_t)data_last_names_len)]);
    const data_dealership *d =
        &g->t->dealerships[pick(g, (uint32_t)g->t->dealerships_len)];
    snprintf(phone, sizeof phone, "%.5s 555-%04u", d->phone,
             100 + pick(g, 100));
    sqlite3_stmt *st = g->customer;
    sqlite3_bind_text(st, 1, vin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, year);
    sqlite3_bind_text(st, 3, m->make, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, m->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, phone, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 7,
                     (CAL_YEAR - year) * (8000 + (int)pick(g, 8000)) + 1000);
    if (step(g, st, "insert customer vehicle") != 0) return -1;
    g->sum->customer_vehicles += sqlite3_changes(g->db);
  }
  return 0;
}

static int insert_recalls(gen *g) {
  sqlite3_stmt *st;
  if (prepare(g, &st, "INSERT INTO recalls VALUES (?,?,?,?,?,?,?,?)") != 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < data_recalls_len; i++) {
    const data_recall *r = &data_recalls[i];
    sqlite3_bind_text(st, 1, r->campaign, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->make, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, r->year_from);
    sqlite3_bind_int(st, 5, r->year_to);
    sqlite3_bind_text(st, 6, r->component, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, r->summary, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, r->remedy, -1, SQLITE_STATIC);
    rc = step(g, st, "insert recall");
    if (rc == 0) g->sum->recalls++;
  }
  sqlite3_finalize(st);
  return rc;
}

typedef struct part_kind {
  const char *code, *name, *category;
  double price, labor_hours;
  int per_model; /* 0: fits every model of the make */
  int ev;        /* 1: EVs need it too */
} part_kind;

static const part_kind part_kinds[] = {
    {"BPF", "Front brake pad set", "brakes", 64.0, 1.2, 1, 1},
    {"BRF", "Front brake rotor", "brakes", 89.0, 1.6, 1, 1},
    {"EAF", "Engine air filter", "filters", 24.0, 0.2, 1, 0},
    {"CAF", "Cabin air filter", "filters", 29.0, 0.3, 1, 1},
    {"WPR", "Wiper blade set", "wipers", 38.0, 0.1, 1, 1},
    {"OFL", "Oil filter", "filters", 9.5, 0.5, 0, 0},
    {"BAT", "12V battery", "electrical", 189.0, 0.4, 0, 1},
    {"SPK", "Spark plug (each)", "ignition", 14.0, 1.5, 0, 0},
    {"TPM", "TPMS sensor", "sensors", 62.0, 0.5, 0, 1},
    {"TIR", "All-season tire", "tires", 165.0, 0.4, 0, 1},
};

static int make_index(const char *make) {
  for (size_t i = 0; i < dl_makes_len; i++)
    if (strcmp(dl_makes[i], make) == 0) return (int)i;
  return 0;
}

static int insert_part(gen *g, const part_kind *k, const dl_model *m,
                       const char *make, int serial) {
  static const char *const prefixes[] = {"TY", "HN", "FD", "CV", "SB",
                                         "HY", "KA", "TS", "BM", "NS"};
  double factor = strcmp(make, "BMW") == 0     ? 1.6
                  : strcmp(make, "Tesla") == 0 ? 1.3
                                               : 1.0;
  char number[32], name[128];
  snprintf(number, sizeof number, "%s-%s-%05d", prefixes[make_index(make)],
           k->code, serial);
  snprintf(name, sizeof name, "%s%s%s", k->name, m ? ", " : "",
           m ? m->model : "");
  sqlite3_stmt *st = g->part;
  sqlite3_bind_text(st, 1, number, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, k->category, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, make, -1, SQLITE_STATIC);
  if (m) sqlite3_bind_text(st, 5, m->model, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 6,
                   m ? (first_year(m) > 2016 ? first_year(m) : 2016) : 2012);
  sqlite3_bind_int(st, 7, CAL_YEAR);
  double price = k->price * factor * (0.85 + pick(g, 30) / 100.0);
  sqlite3_bind_double(st, 8, floor(price) + 0.99);
  sqlite3_bind_double(st, 9, k->labor_hours);
  if (step(g, st, "insert part") != 0) return -1;
  g->sum->parts++;
  for (size_t i = 0; i < g->t->dealerships_len; i++) {
    const data_dealership *d = &g->t->dealerships[i];
    int qty = sells_new(d, make) ? (chance(g, 15) ? 0 : 1 + (int)pick(g, 12))
                                 : (chance(g, 60) ? 0 : 1 + (int)pick(g, 3));
    sqlite3_bind_text(g->stock, 1, number, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(g->stock, 2, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(g->stock, 3, qty);
    if (step(g, g->stock, "insert part stock") != 0) return -1;
  }
  return 0;
}

static int insert_parts(gen *g) {
  int serial = 10000;
  size_t nkinds = sizeof part_kinds / sizeof part_kinds[0];
  for (size_t i = 0; i < dl_models_len; i++) {
    const dl_model *m = &dl_models[i];
    int ev = strcmp(m->fuel, "electric") == 0;
    for (size_t k = 0; k < nkinds; k++)
      if (part_kinds[k].per_model && (!ev || part_kinds[k].ev) &&
          insert_part(g, &part_kinds[k], m, m->make, serial++) != 0)
        return -1;
  }
  for (size_t i = 0; i < dl_makes_len; i++)
    for (size_t k = 0; k < nkinds; k++) {
      /* Tesla sells no oil filters or spark plugs */
      int ev_make = strcmp(dl_makes[i], "Tesla") == 0;
      if (!part_kinds[k].per_model && (!ev_make || part_kinds[k].ev) &&
          insert_part(g, &part_kinds[k], NULL, dl_makes[i], serial++) != 0)
        return -1;
    }
  return 0;
}

/* ---- one tenant --------------------------------------------------------- */

static int insert_world(gen *g) {
  sqlite3_stmt *st = NULL;
  const data_tenant *t = g->t;
  if (prepare(g, &st, "INSERT INTO tenant VALUES (?, ?)") != 0) return -1;
  sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
  int rc = step(g, st, "insert tenant");
  sqlite3_finalize(st);
  if (rc != 0 || prepare(g, &st, "INSERT INTO policies VALUES (?, ?)") != 0)
    return -1;
  for (size_t i = 0; rc == 0 && i < t->policies_len; i++) {
    sqlite3_bind_text(st, 1, t->policies[i].key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->policies[i].value, -1, SQLITE_STATIC);
    rc = step(g, st, "insert policy");
  }
  sqlite3_finalize(st);
  if (rc != 0 || prepare(g, &st,
                         "INSERT INTO dealerships (id, name, city, state, "
                         "address, phone, brands, sales_tax_rate, doc_fee, "
                         "registration_fee, opens, closes) VALUES "
                         "(?,?,?,?,?,?,?,?,?,?,?,?)") != 0)
    return -1;
  for (size_t i = 0; rc == 0 && i < t->dealerships_len; i++) {
    const data_dealership *d = &t->dealerships[i];
    json_t *brands = json_array();
    for (int b = 0; b < 3 && d->brands[b]; b++)
      json_array_append_new(brands, json_string(d->brands[b]));
    char *text = sb_json_dumps(brands, JSON_COMPACT);
    json_decref(brands);
    const char *cols[] = {d->id,    d->name,    d->city,
                          d->state, d->address, d->phone};
    for (int c = 0; c < 6; c++)
      sqlite3_bind_text(st, c + 1, cols[c], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, text ? text : "[]", -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 8, d->sales_tax_rate);
    sqlite3_bind_double(st, 9, d->doc_fee);
    sqlite3_bind_double(st, 10, d->registration_fee);
    sqlite3_bind_text(st, 11, d->opens, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, d->closes, -1, SQLITE_STATIC);
    rc = step(g, st, "insert dealership");
    sb_free(text);
    if (rc == 0) g->sum->dealerships++;
  }
  sqlite3_finalize(st);
  return rc;
}

static int fill(gen *g) {
  if (insert_world(g) != 0 ||
      prepare(g, &g->vehicle,
              "INSERT OR IGNORE INTO vehicles (vin, "
              "dealership_id, year, make, model, trim, body, condition, "
              "mileage, price, color, fuel, drivetrain, mpg, range_miles, "
              "seats, features, status) VALUES "
              "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)") != 0 ||
      prepare(g, &g->slot,
              "INSERT INTO service_slots (dealership_id, "
              "starts_at, bay, minutes, booked) VALUES (?,?,?,60,?)") != 0 ||
      prepare(g, &g->customer,
              "INSERT OR IGNORE INTO customer_vehicles "
              "VALUES (?,?,?,?,?,?,?)") != 0 ||
      prepare(g, &g->part, "INSERT INTO parts VALUES (?,?,?,?,?,?,?,?,?)") !=
          0 ||
      prepare(g, &g->stock, "INSERT INTO part_stock VALUES (?,?,?)") != 0)
    return -1;
  for (size_t i = 0; i < g->t->dealerships_len; i++) {
    const data_dealership *d = &g->t->dealerships[i];
    for (int v = 0; v < DL_DATA_VEHICLES_PER_DEALERSHIP; v++)
      if (insert_vehicle(g, d) != 0) return -1;
    if (insert_slots(g, d) != 0) return -1;
  }
  if (insert_customers(g, 200) != 0 || insert_recalls(g) != 0 ||
      insert_parts(g) != 0)
    return -1;
  return 0;
}

static void unlink_db(const char *path) {
  char side[4096];
  unlink(path);
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
}

int dl_data_generate(const char *out_dir, const char *tenant,
                     dl_data_summary *sum, sb_error *err) {
  dl_data_summary local;
  const data_tenant *t = NULL;
  for (size_t i = 0; i < data_tenants_len; i++)
    if (strcmp(data_tenants[i].id, tenant) == 0) t = &data_tenants[i];
  if (!t)
    return sb_error_set(err, SB_ENOENT, "no demo tenant named \"%s\"", tenant);
  gen g = {.t = t, .sum = sum ? sum : &local, .err = err};
  memset(g.sum, 0, sizeof *g.sum);
  g.sum->tenant_name = t->name;
  dl_rng_seed(&g.rng, t->id);
  char *tmp = sb_asprintf("%s/.%s.db.tmp%ld", out_dir, t->id, (long)getpid());
  char *path = sb_asprintf("%s/%s.db", out_dir, t->id);
  int rc = SB_ENOMEM;
  if (!tmp || !path) goto done;
  unlink_db(tmp);
  if (sqlite3_open(tmp, &g.db) != SQLITE_OK) {
    rc = sb_error_set(err, SB_EIO, "%s: %s", tmp,
                      g.db ? sqlite3_errmsg(g.db) : "cannot open");
    goto done;
  }
  rc = SB_EIO;
  if (sqlite3_exec(g.db, dl_schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec(g.db, "PRAGMA synchronous=OFF; BEGIN", NULL, NULL, NULL) !=
          SQLITE_OK) {
    db_fail(&g, "schema");
    goto done;
  }
  if (fill(&g) != 0) goto done;
  if (sqlite3_exec(g.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    db_fail(&g, "commit");
    goto done;
  }
  sqlite3_stmt *sts[] = {g.vehicle, g.slot, g.customer, g.part, g.stock};
  for (size_t i = 0; i < 5; i++)
    sqlite3_finalize(sts[i]);
  g.vehicle = g.slot = g.customer = g.part = g.stock = NULL;
  /* closing the last connection checkpoints the WAL into the file */
  if (sqlite3_close(g.db) != SQLITE_OK) {
    db_fail(&g, "close");
    goto done;
  }
  g.db = NULL;
  /* an old file's WAL must not be replayed into the new one */
  char side[4096];
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
  if (rename(tmp, path) != 0) {
    rc = sb_error_set(err, SB_EIO, "cannot rename %s to %s", tmp, path);
    goto done;
  }
  rc = 0;
done:
  if (g.db) {
    sqlite3_finalize(g.vehicle);
    sqlite3_finalize(g.slot);
    sqlite3_finalize(g.customer);
    sqlite3_finalize(g.part);
    sqlite3_finalize(g.stock);
    sqlite3_close(g.db);
  }
  if (rc != 0 && tmp) unlink_db(tmp);
  sb_free(tmp);
  sb_free(path);
  return rc;
}
