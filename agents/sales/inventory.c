/* inventory.c: search_inventory and vehicle_details of dealer-sales.
 *
 * Hard criteria (make, model, body, fuel, condition, year, mileage, seats,
 * dealership, and a price at most 10% over budget) filter in SQL; the
 * rest is a score (sales_score) so the best fits come first and each says
 * why. Names are matched the way people say them: "a Camry", "CRV", a
 * make given as the model, through the catalogue shared with dealer-data.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "data/catalog.h"
#include "sales.h"

#define OVER_BUDGET_PCT 10.0 /* the most a car may exceed the budget */

void sales_money(double dollars, char *out, size_t n) {
  long whole = lround(fabs(dollars));
  char digits[32], grouped[48];
  snprintf(digits, sizeof digits, "%ld", whole);
  size_t len = strlen(digits), o = 0;
  for (size_t i = 0; i < len; i++) {
    if (i && (len - i) % 3 == 0) grouped[o++] = ',';
    grouped[o++] = digits[i];
  }
  grouped[o] = '\0';
  snprintf(out, n, "%s$%s", dollars < 0 ? "-" : "", grouped);
}

static int has_feature(json_t *features, const char *want) {
  size_t i;
  json_t *f;
  json_array_foreach(features, i, f) {
    const char *s = json_string_value(f);
    if (s && strcasestr(s, want)) return 1;
  }
  return 0;
}

/* Points for each thing the buyer asked for, out of what a perfect car
 * would get, so 100 means "everything asked for, new". */
int sales_score(const sales_wish *w, const sales_car *c, json_t *reasons) {
  double points = 0, max = 0;
  char money[32];
  if (w->budget > 0) {
    double diff = w->budget - c->price;
    max += 25;
    if (diff >= 0) {
      /* under budget is good; a car far below it a little less (the buyer
       * meant to get more car for the money) */
      points += 25.0 - 5.0 * (diff / w->budget);
      sales_money(diff, money, sizeof money);
      dl_reason(reasons, "within budget (%s under)", money);
    } else {
      double pct = -diff / w->budget * 100.0;
      points += 12.0 - 3.0 * pct; /* just over: 12, 10% over: -18 */
      sales_money(-diff, money, sizeof money);
      dl_reason(reasons, "%s over budget (%.1f%%)", money, pct);
    }
  }
  if (w->model) {
    max += 20;
    if (strcasecmp(w->model, c->model) == 0) {
      points += 20;
      dl_reason(reasons, "matches model");
    }
  } else if (w->make) {
    max += 10;
    if (strcasecmp(w->make, c->make) == 0) {
      points += 10;
      dl_reason(reasons, "matches make");
    }
  }
  if (w->features_len) {
    int matched = 0;
    for (size_t i = 0; i < w->features_len; i++)
      if (has_feature(c->features, w->features[i])) {
        matched++;
        dl_reason(reasons, "has %s", w->features[i]);
      }
    max += 20;
    points += 20.0 * matched / (double)w->features_len;
  }
  int age = 2027 - c->year;
  max += 15;
  points += age <= 0 ? 15.0 : age >= 10 ? 0.0 : 15.0 * (10 - age) / 10.0;
  max += 15;
  if (strcmp(c->condition, "new") == 0) {
    points += 15;
    dl_reason(reasons, "new %d", c->year);
  } else {
    double m = c->mileage > 120000 ? 120000 : c->mileage;
    points += 10.0 * (1.0 - m / 120000.0);
    if (c->mileage < 30000)
      dl_reason(reasons, "low mileage (%d mi)", c->mileage);
    if (strcmp(c->condition, "certified") == 0) {
      points += 4;
      dl_reason(reasons, "certified pre-owned");
    }
  }
  long s = lround(100.0 * points / max);
  return s < 0 ? 0 : s > 100 ? 100 : (int)s;
}

/* ---- search_inventory --------------------------------------------------- */

typedef struct query {
  char sql[2048];
  const char *text[16];
  double num[16];
  int is_num[16];
  int n;
} query;

static void where_text(query *q, const char *clause, const char *v) {
  if (!v || q->n >= 16) return;
  strncat(q->sql, clause, sizeof q->sql - strlen(q->sql) - 1);
  q->text[q->n] = v;
  q->is_num[q->n++] = 0;
}

static void where_num(query *q, const char *clause, double v) {
  if (q->n >= 16) return;
  strncat(q->sql, clause, sizeof q->sql - strlen(q->sql) - 1);
  q->num[q->n] = v;
  q->is_num[q->n++] = 1;
}

/* The most a buyer can pay for a car at `monthly` dollars a month: the
 * present value of the payments at the tenant's "good" APR over the
 * longest term up to 72 months (no down payment, before tax). */
static double monthly_to_price(dl_request *req, double monthly, double *apr,
                               int *term) {
  json_t *aprs = dl_policy(req, "finance.apr");
  json_t *terms = dl_policy(req, "finance.terms");
  *apr = json_number_value(json_object_get(aprs, "good"));
  if (*apr <= 0) *apr = 7.0;
  *term = 60;
  size_t i;
  json_t *t;
  json_array_foreach(terms, i, t) {
    int n = (int)json_integer_value(t);
    if (n <= 72 && n > *term) *term = n;
  }
  json_decref(aprs);
  json_decref(terms);
  double r = *apr / 100.0 / 12.0;
  return monthly * (1.0 - pow(1.0 + r, -*term)) / r;
}

static const char *norm(const char *s) { return s && *s ? s : NULL; }

json_t *sales_search_inventory(dl_request *req, json_t *args) {
  int ok = 1;
  const char *make = norm(dl_arg_str(req, args, "make", NULL, &ok));
  const char *model = norm(dl_arg_str(req, args, "model", NULL, &ok));
  const char *body = norm(dl_arg_str(req, args, "body", NULL, &ok));
  const char *fuel = norm(dl_arg_str(req, args, "fuel", NULL, &ok));
  const char *condition = norm(dl_arg_str(req, args, "condition", NULL, &ok));
  const char *dealership = norm(dl_arg_str(req, args, "dealership", NULL, &ok));
  double budget = dl_arg_num(req, args, "budget", 0, &ok);
  double monthly = dl_arg_num(req, args, "monthly_budget", 0, &ok);
  long year_min = dl_arg_int(req, args, "year_min", 0, &ok);
  long max_mileage = dl_arg_int(req, args, "max_mileage", 0, &ok);
  long seats_min = dl_arg_int(req, args, "seats_min", 0, &ok);
  long limit = dl_arg_int(req, args, "limit", 5, &ok);
  json_t *features = json_object_get(args, "features");
  if (!ok) return NULL;
  if (limit < 1 || limit > 20)
    return dl_invalid(req, "limit must be between 1 and 20");
  if (budget < 0 || monthly < 0)
    return dl_invalid(req, "budget and monthly_budget must be positive");
  const char *wanted[16];
  size_t nwanted = 0;
  if (features && !json_is_null(features)) {
    if (!json_is_array(features))
      return dl_invalid(req, "features must be an array of strings");
    size_t i;
    json_t *f;
    json_array_foreach(features, i, f) {
      if (!json_is_string(f))
        return dl_invalid(req, "features must be an array of strings");
      if (json_string_length(f) > DL_ARG_STR_MAX)
        return dl_invalid(req,
                          "argument 'features': item %zu is longer than "
                          "the %d bytes allowed",
                          i, DL_ARG_STR_MAX);
      if (nwanted < 16 && json_string_length(f))
        wanted[nwanted++] = json_string_value(f);
    }
  }

  /* Resolve names: a make said as the model, a model without its make. */
  const char *cmake = make ? dl_make_lookup(make) : NULL;
  if (make && !cmake) {
    const dl_model *m = dl_model_lookup(NULL, make); /* "make": "Camry" */
    if (m && !model) model = m->model, cmake = m->make;
  }
  const char *cmodel = NULL;
  if (model) {
    const char *as_make = dl_make_lookup(model);
    const dl_model *m = dl_model_lookup(cmake, model);
    if (m)
      cmodel = m->model, cmake = m->make;
    else if (as_make && !cmake)
      cmake = as_make;
    else if (!as_make)
      cmodel = model; /* unknown: matched as given */
  }
  if (make && !cmake) cmake = make; /* unknown make: matched as given */

  json_t *criteria = json_object();
  double price_cap = budget;
  if (monthly > 0) {
    double apr;
    int term;
    double p = monthly_to_price(req, monthly, &apr, &term);
    if (!price_cap || p < price_cap) price_cap = p;
    json_object_set_new(criteria, "monthly_budget_price", json_real(floor(p)));
    json_object_set_new(criteria, "monthly_budget_terms",
                        json_pack("{sfsi}", "apr", apr, "months", term));
  }
  query q = {.sql = "SELECT v.vin, v.year, v.make, v.model, v.trim, v.body, "
                    "v.condition, v.mileage, v.price, v.color, v.fuel, "
                    "v.dealership_id, d.name, v.features FROM vehicles v "
                    "JOIN dealerships d ON d.id = v.dealership_id "
                    "WHERE v.status = 'available'"};
  where_text(&q, " AND v.make = ? COLLATE NOCASE", cmake);
  where_text(&q, " AND v.model = ? COLLATE NOCASE", cmodel);
  where_text(&q, " AND v.body = ? COLLATE NOCASE", body);
  where_text(&q, " AND v.fuel = ? COLLATE NOCASE", fuel);
  if (condition && strcasecmp(condition, "used") == 0) /* certified too */
    strncat(q.sql, " AND v.condition IN ('used', 'certified')",
            sizeof q.sql - strlen(q.sql) - 1);
  else
    where_text(&q, " AND v.condition = ? COLLATE NOCASE", condition);
  if (dealership) {
    where_text(&q, " AND (d.id = ? COLLATE NOCASE", dealership);
    where_text(&q, " OR d.city = ? COLLATE NOCASE", dealership);
    where_text(&q, " OR instr(lower(d.name), lower(?)) > 0)", dealership);
  }
  if (price_cap > 0)
    where_num(&q, " AND v.price <= ?", price_cap * (1 + OVER_BUDGET_PCT / 100));
  if (year_min) where_num(&q, " AND v.year >= ?", (double)year_min);
  if (max_mileage) where_num(&q, " AND v.mileage <= ?", (double)max_mileage);
  if (seats_min) where_num(&q, " AND v.seats >= ?", (double)seats_min);
  sqlite3_stmt *st = dl_prepare(req, q.sql);
  if (!st) {
    json_decref(criteria);
    return NULL;
  }
  for (int i = 0; i < q.n; i++) {
    if (q.is_num[i])
      sqlite3_bind_double(st, i + 1, q.num[i]);
    else
      sqlite3_bind_text(st, i + 1, q.text[i], -1, SQLITE_STATIC);
  }
  sales_wish w = {.make = cmake,
                  .model = cmodel,
                  .budget = price_cap,
                  .features = wanted,
                  .features_len = nwanted};
  json_t *all = json_array();
  while (sqlite3_step(st) == SQLITE_ROW) {
    json_t *feats =
        json_loads((const char *)sqlite3_column_text(st, 13), 0, NULL);
    sales_car c = {.make = (const char *)sqlite3_column_text(st, 2),
                   .model = (const char *)sqlite3_column_text(st, 3),
                   .condition = (const char *)sqlite3_column_text(st, 6),
                   .year = sqlite3_column_int(st, 1),
                   .mileage = sqlite3_column_int(st, 7),
                   .price = sqlite3_column_double(st, 8),
                   .features = feats};
    json_t *reasons = json_array();
    int score = sales_score(&w, &c, reasons);
    json_t *v = json_object();
    static const char *const names[] = {
        "vin",  "year",          "make",      "model", "trim",
        "body", "condition",     "mileage",   "price", "color",
        "fuel", "dealership_id", "dealership"};
    for (int i = 0; i < 13; i++)
      json_object_set_new(v, names[i], dl_column_json(st, i));
    json_object_set_new(v, "score", json_integer(score));
    json_object_set_new(v, "reasons", reasons);
    json_array_append_new(all, v);
    json_decref(feats);
  }
  sqlite3_finalize(st);
  /* best score first; equal scores by VIN, so the order never varies */
  size_t n = json_array_size(all);
  json_t **items = sb_calloc(n ? n : 1, sizeof *items);
  for (size_t i = 0; items && i < n; i++)
    items[i] = json_array_get(all, i);
  for (size_t i = 1; items && i < n; i++) { /* insertion sort: n is small */
    json_t *x = items[i];
    json_int_t xs = json_integer_value(json_object_get(x, "score"));
    const char *xv = json_string_value(json_object_get(x, "vin"));
    size_t j = i;
    while (j > 0) {
      json_t *y = items[j - 1];
      json_int_t ys = json_integer_value(json_object_get(y, "score"));
      if (ys > xs ||
          (ys == xs &&
           strcmp(json_string_value(json_object_get(y, "vin")), xv) < 0))
        break;
      items[j] = y;
      j--;
    }
    items[j] = x;
  }
  json_t *top = json_array();
  for (size_t i = 0; items && i < n && i < (size_t)limit; i++)
    json_array_append(top, items[i]);
  sb_free(items);
  json_decref(all);
  if (cmake) json_object_set_new(criteria, "make", json_string(cmake));
  if (cmodel) json_object_set_new(criteria, "model", json_string(cmodel));
  if (price_cap > 0)
    json_object_set_new(
        criteria, "max_price",
        json_real(floor(price_cap * (1 + OVER_BUDGET_PCT / 100))));
  return json_pack("{sIsoso}", "total_matches", (json_int_t)n, "criteria",
                   criteria, "vehicles", top);
}

/* ---- vehicle_details ---------------------------------------------------- */

static json_t *tenant_name(dl_request *req) {
  sqlite3_stmt *st = dl_prepare(req, "SELECT name FROM tenant LIMIT 1");
  json_t *name = NULL;
  if (st && sqlite3_step(st) == SQLITE_ROW) name = dl_column_json(st, 0);
  if (st) sqlite3_finalize(st);
  return name ? name : json_string(req->tenant);
}

json_t *sales_not_found(dl_request *req, const char *vin) {
  json_t *name = tenant_name(req);
  dl_fail(req, "no vehicle with VIN %s at %s%s", vin, json_string_value(name),
          dl_vin_valid(vin) ? "" : " (that is not a valid VIN)");
  json_decref(name);
  return NULL;
}

json_t *sales_vehicle_details(dl_request *req, json_t *args) {
  int ok = 1;
  const char *vin = dl_arg_str(req, args, "vin", NULL, &ok);
  if (!ok) return NULL;
  if (!vin || !*vin) return dl_invalid(req, "vin is required");
  sqlite3_stmt *st = dl_prepare(
      req, "SELECT v.*, d.name AS dl_name, d.address, d.phone, d.city, "
           "d.state, d.opens, d.closes FROM vehicles v JOIN dealerships d "
           "ON d.id = v.dealership_id WHERE v.vin = upper(?)");
  if (!st) return NULL;
  sqlite3_bind_text(st, 1, vin, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    return sales_not_found(req, vin);
  }
  json_t *row = dl_row_json(st);
  sqlite3_finalize(st);
  json_t *dealer = json_object();
  static const char *const moved[][2] = {
      {"dealership_id", "id"}, {"dl_name", "name"}, {"address", "address"},
      {"phone", "phone"},      {"city", "city"},    {"state", "state"},
      {"opens", "opens"},      {"closes", "closes"}};
  for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++) {
    json_object_set(dealer, moved[i][1], json_object_get(row, moved[i][0]));
    if (i > 0) json_object_del(row, moved[i][0]);
  }
  json_object_set_new(row, "dealership", dealer);
  json_t *feats =
      json_loads(json_string_value(json_object_get(row, "features")), 0, NULL);
  json_object_set_new(row, "features", feats ? feats : json_array());
  /* electric cars have a range, others a combined mpg: drop the null */
  if (json_is_null(json_object_get(row, "mpg"))) json_object_del(row, "mpg");
  if (json_is_null(json_object_get(row, "range_miles")))
    json_object_del(row, "range_miles");
  return row;
}
