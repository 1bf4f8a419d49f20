/* parts.c: the parts catalogue, stock and orders (see parts.h).
 *
 * find_parts filters the catalogue in SQL by category and fit (make; model
 * or a make-wide part; year range), then ranks in C: the number of the
 * query's words found in a part's name or category (plurals folded), then
 * a model-specific part above a make-wide one. An order takes the parts
 * from the dealership's stock when it has enough (reserved, the stock
 * decremented in the call's transaction), else orders them (ordered, ready
 * after parts.lead_days.order days).
 */
#include "parts.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/lookup.h"
#include "common/vin.h"

enum { PARTS_MAX_WORDS = 12, PARTS_WORD = 24 };

typedef struct parts_words {
  char w[PARTS_MAX_WORDS][PARTS_WORD];
  int n;
} parts_words;

static int stopword(const char *w) {
  static const char *const stop[] = {"the", "for", "and", "of",   "my",   "a",
                                     "an",  "to",  "new", "part", "parts"};
  for (size_t i = 0; i < sizeof stop / sizeof stop[0]; i++)
    if (strcmp(w, stop[i]) == 0) return 1;
  return 0;
}

/* Lower-cased words of text (letters and digits), plurals folded ("pads"
 * -> "pad"), stop words dropped; `unique` drops repeats. */
static void split_words(const char *text, parts_words *out, int unique) {
  out->n = 0;
  const char *p = text ? text : "";
  while (*p && out->n < PARTS_MAX_WORDS) {
    while (*p && !isalnum((unsigned char)*p))
      p++;
    char w[PARTS_WORD];
    size_t n = 0;
    while (isalnum((unsigned char)*p)) {
      if (n < sizeof w - 1) w[n++] = (char)tolower((unsigned char)*p);
      p++;
    }
    w[n] = '\0';
    if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's') w[--n] = '\0';
    if (n == 0 || stopword(w)) continue;
    int seen = 0;
    for (int i = 0; unique && i < out->n; i++)
      seen |= strcmp(out->w[i], w) == 0;
    if (!seen) memcpy(out->w[out->n++], w, n + 1);
  }
}

/* How many of the query's words the part's name or category has. */
static int query_matches(const parts_words *q, const char *name,
                         const char *category) {
  parts_words have;
  char text[512];
  snprintf(text, sizeof text, "%s %s", name, category);
  split_words(text, &have, 1);
  int hits = 0;
  for (int i = 0; i < q->n; i++)
    for (int j = 0; j < have.n; j++)
      if (strcmp(q->w[i], have.w[j]) == 0) {
        hits++;
        break;
      }
  return hits;
}

/* "2019-2024 Toyota Camry", "2021 Honda (all models)". */
static json_t *fits_text(sqlite3_stmt *st) {
  int from = sqlite3_column_int(st, 5), to = sqlite3_column_int(st, 6);
  const char *make = (const char *)sqlite3_column_text(st, 3);
  const char *model = (const char *)sqlite3_column_text(st, 4);
  char years[16], text[160];
  if (from == to)
    snprintf(years, sizeof years, "%d", from);
  else
    snprintf(years, sizeof years, "%d-%d", from, to);
  snprintf(text, sizeof text, "%s %s %s", years, make,
           model ? model : "(all models)");
  return json_string(text);
}

/* Stock of a part per dealership (group order) into *stock (new array);
 * the total, or -1 after dl_fail. `at` (may be NULL) gets the quantity of
 * that dealership into *at_qty. */
static long part_stock(dl_request *req, const char *part_number, const char *at,
                       long *at_qty, json_t **stock) {
  sqlite3_stmt *st = dl_prepare(
      req, "SELECT s.dealership_id, s.quantity FROM part_stock s "
           "LEFT JOIN dealerships d ON d.id = s.dealership_id "
           "WHERE s.part_number = ? ORDER BY d.rowid, s.dealership_id");
  if (!st) return -1;
  sqlite3_bind_text(st, 1, part_number, -1, SQLITE_STATIC);
  *stock = json_array();
  long total = 0;
  if (at_qty) *at_qty = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    long q = (long)sqlite3_column_int64(st, 1);
    total += q;
    if (at && at_qty && strcmp(at, id) == 0) *at_qty = q;
    json_array_append_new(*stock, json_pack("{sssI}", "dealership_id", id,
                                            "quantity", (json_int_t)q));
  }
  sqlite3_finalize(st);
  return total;
}

typedef struct parts_hit {
  json_t *part;
  int matches, specific;
} parts_hit;

static int hit_cmp(const void *a, const void *b) {
  const parts_hit *x = a, *y = b;
  if (x->matches != y->matches) return y->matches - x->matches;
  if (x->specific != y->specific) return y->specific - x->specific;
  return strcmp(json_string_value(json_object_get(x->part, "part_number")),
                json_string_value(json_object_get(y->part, "part_number")));
}

json_t *parts_find(dl_request *req, json_t *args) {
  int ok = 1;
  const char *query = dl_arg_text(req, args, "query", NULL, 500, &ok);
  const char *category = dl_arg_str(req, args, "category", NULL, &ok);
  const char *make = dl_arg_str(req, args, "make", NULL, &ok);
  const char *model = dl_arg_str(req, args, "model", NULL, &ok);
  long year = dl_arg_int(req, args, "year", 0, &ok);
  const char *dealer_arg = dl_arg_str(req, args, "dealership", NULL, &ok);
  long limit = dl_arg_int(req, args, "limit", 10, &ok);
  if (!ok) return NULL;
  if (limit < 1 || limit > 50)
    return dl_invalid(req, "argument 'limit' must be between 1 and 50");
  if (year && (year < 1980 || year > 2100))
    return dl_invalid(req, "argument 'year' must be a model year");
  char vin[DL_VIN_LEN + 1];
  int has_vin = dl_vin_arg(req, args, "vin", 0, vin);
  if (has_vin < 0) return NULL;

  json_t *vehicle = NULL, *dealer = NULL, *out = NULL, *parts = NULL;
  parts_hit *hits = NULL;
  size_t nhits = 0, cap = 0;
  sqlite3_stmt *st = NULL;
  if (has_vin) { /* the VIN's vehicle over make, model and year */
    vehicle = dl_vin_vehicle(req, vin);
    if (!vehicle) goto done;
    make = json_string_value(json_object_get(vehicle, "make"));
    model = json_string_value(json_object_get(vehicle, "model"));
    year = (long)json_integer_value(json_object_get(vehicle, "year"));
    if (!make) {
      dl_invalid(req,
                 "argument 'vin': the make of %s is unknown; give "
                 "'make' and 'model' instead",
                 vin);
      goto done;
    }
  }
  if (dealer_arg && !(dealer = dl_dealership(req, "dealership", dealer_arg)))
    goto done;
  const char *dealer_id = json_string_value(json_object_get(dealer, "id"));
  parts_words q;
  split_words(query, &q, 1);
  /* A query with nothing to search for ("the part", "ブレーキ") is not
   * "any part": that answered parts the customer never asked about. */
  if (!dl_blank(query) && q.n == 0) {
    out = json_pack("{sIs[]ss}", "count", (json_int_t)0, "parts", "message",
                    "no searchable word in the query: search by the part's "
                    "name or category in English (letters and digits, "
                    "not only words like \"the\", \"for\" or \"part\")");
    if (out && vehicle) json_object_set(out, "vehicle", vehicle);
    if (!out) dl_fail(req, "out of memory");
    goto done;
  }
  st = dl_prepare(
      req, "SELECT part_number, name, category, make, model, year_from, "
           "year_to, price, labor_hours FROM parts "
           "WHERE (?1 IS NULL OR category = ?1 COLLATE NOCASE) "
           "AND (?2 IS NULL OR make = ?2 COLLATE NOCASE) "
           "AND (?3 IS NULL OR model IS NULL OR model = ?3 COLLATE NOCASE) "
           "AND (?4 = 0 OR ?4 BETWEEN year_from AND year_to)");
  if (!st) goto done;
  if (category) sqlite3_bind_text(st, 1, category, -1, SQLITE_STATIC);
  if (make) sqlite3_bind_text(st, 2, make, -1, SQLITE_STATIC);
  if (model) sqlite3_bind_text(st, 3, model, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, year);
  while (sqlite3_step(st) == SQLITE_ROW) {
    int m = query_matches(&q, (const char *)sqlite3_column_text(st, 1),
                          (const char *)sqlite3_column_text(st, 2));
    if (q.n > 0 && m == 0) continue;
    if (nhits == cap) {
      size_t ncap = cap ? cap * 2 : 32;
      parts_hit *nh = sb_realloc(hits, ncap * sizeof *nh);
      if (!nh) {
        dl_fail(req, "out of memory");
        goto done;
      }
      hits = nh, cap = ncap;
    }
    json_t *p = json_pack("{sssssssfsf}", "part_number",
                          (const char *)sqlite3_column_text(st, 0), "name",
                          (const char *)sqlite3_column_text(st, 1), "category",
                          (const char *)sqlite3_column_text(st, 2), "price",
                          sqlite3_column_double(st, 7), "labor_hours",
                          sqlite3_column_double(st, 8));
    json_object_set_new(p, "fits", fits_text(st));
    hits[nhits++] =
        (parts_hit){p, m, sqlite3_column_type(st, 4) != SQLITE_NULL};
  }
  qsort(hits, nhits, sizeof *hits, hit_cmp);
  parts = json_array();
  for (size_t i = 0; i < nhits && (long)i < limit; i++) {
    json_t *stock = NULL;
    long at = 0;
    const char *pn =
        json_string_value(json_object_get(hits[i].part, "part_number"));
    long total = part_stock(req, pn, dealer_id, &at, &stock);
    if (total < 0) goto done;
    json_object_set_new(hits[i].part, "in_stock",
                        json_integer(dealer_id ? at : total));
    json_object_set_new(hits[i].part, "stock", stock);
    json_array_append(parts, hits[i].part);
  }
  out = json_pack("{sIsO}", "count", (json_int_t)json_array_size(parts),
                  "parts", parts);
  if (out && vehicle) json_object_set(out, "vehicle", vehicle);
  if (out && dealer_id)
    json_object_set_new(out, "dealership", json_string(dealer_id));
  if (!out) dl_fail(req, "out of memory");
done:
  if (st) sqlite3_finalize(st);
  for (size_t i = 0; i < nhits; i++)
    json_decref(hits[i].part);
  sb_free(hits);
  json_decref(parts);
  json_decref(vehicle);
  json_decref(dealer);
  return out;
}

/* ---- availability and orders ------------------------------------------- */

/* The part of the part_number argument (new reference: part_number, name,
 * price), or NULL after dl_invalid / dl_fail. */
static json_t *read_part(dl_request *req, json_t *args) {
  int ok = 1;
  const char *pn = dl_arg_str(req, args, "part_number", NULL, &ok);
  if (!ok) return NULL;
  if (!pn || !*pn) return dl_invalid(req, "argument 'part_number' is required");
  json_t *part;
  int found = dl_row_one(req,
                         "SELECT part_number, name, price, make, model, "
                         "year_from, year_to FROM parts "
                         "WHERE part_number = ? COLLATE NOCASE",
                         pn, &part);
  if (found == 0)
    dl_invalid(req,
               "argument 'part_number': there is no part \"%.64s\" "
               "(find_parts lists them)",
               pn);
  return part;
}

/* Whether part (read_part's row) fits the vehicle a VIN names
 * (dl_vin_vehicle): its make, its model unless the part is make-wide, its
 * model years. What the VIN does not tell (a decoded VIN has no model; an
 * unknown make) is not held against the part. 1 if it fits; else 0 and
 * why in out ("2018-2024 Toyota Camry", what the part fits). */
static int part_fits(const json_t *part, const json_t *vehicle, char *out,
                     size_t n) {
  const char *make = json_string_value(json_object_get(part, "make"));
  const char *model = json_string_value(json_object_get(part, "model"));
  long from = (long)json_integer_value(json_object_get(part, "year_from"));
  long to = (long)json_integer_value(json_object_get(part, "year_to"));
  const char *vmake = json_string_value(json_object_get(vehicle, "make"));
  const char *vmodel = json_string_value(json_object_get(vehicle, "model"));
  long year = (long)json_integer_value(json_object_get(vehicle, "year"));
  int fits = (!vmake || !make || strcasecmp(make, vmake) == 0) &&
             (!model || !vmodel || strcasecmp(model, vmodel) == 0) &&
             (!year || !from || (year >= from && year <= to));
  if (from == to)
    snprintf(out, n, "%ld %s %s", from, make ? make : "",
             model ? model : "(all models)");
  else
    snprintf(out, n, "%ld-%ld %s %s", from, to, make ? make : "",
             model ? model : "(all models)");
  return fits;
}

/* parts.lead_days[which] (in_stock: default 0, order: default 3). */
static long lead_days(dl_request *req, const char *which) {
  json_t *p = dl_policy(req, "parts.lead_days");
  json_t *v = json_object_get(p, which);
  long days = json_is_integer(v) && json_integer_value(v) >= 0
                  ? (long)json_integer_value(v)
                  : (strcmp(which, "order") == 0 ? 3 : 0);
  json_decref(p);
  return days;
}

json_t *parts_availability(dl_request *req, json_t *args) {
  int ok = 1;
  const char *dealer_arg = dl_arg_str(req, args, "dealership", NULL, &ok);
  if (!ok) return NULL;
  json_t *part = read_part(req, args);
  if (!part) return NULL;
  json_t *dealer = NULL, *stock = NULL, *out = NULL;
  if (dealer_arg && !(dealer = dl_dealership(req, "dealership", dealer_arg)))
    goto done;
  const char *dealer_id = json_string_value(json_object_get(dealer, "id"));
  const char *pn = json_string_value(json_object_get(part, "part_number"));
  long at = 0;
  long total = part_stock(req, pn, dealer_id, &at, &stock);
  if (total < 0) goto done;
  int in_stock = dealer_id ? at > 0 : total > 0;
  long lead = lead_days(req, in_stock ? "in_stock" : "order");
  char start[11], ready[11];
  if (dl_calendar_start(req, start) || dl_date_add(req, start, lead, ready))
    goto done;
  out = json_pack("{sOsOsOsOsIsbsIss}", "part_number",
                  json_object_get(part, "part_number"), "name",
                  json_object_get(part, "name"), "price",
                  json_object_get(part, "price"), "stock", stock, "total",
                  (json_int_t)total, "in_stock", in_stock, "lead_days",
                  (json_int_t)lead, "ready_by", ready);
  if (out && dealer_id) {
    json_object_set_new(out, "dealership", json_string(dealer_id));
    json_object_set_new(out, "quantity", json_integer(at));
  }
  if (!out) dl_fail(req, "out of memory");
done:
  json_decref(stock);
  json_decref(dealer);
  json_decref(part);
  return out;
}

/* The dealership with the most stock of pn, at least `quantity`, into out;
 * 1 if there is one, 0 if none, -1 after dl_fail. */
static int dealer_with_stock(dl_request *req, const char *pn, long quantity,
                             char out[128]) {
  sqlite3_stmt *st = dl_prepare(
      req, "SELECT s.dealership_id FROM part_stock s JOIN dealerships d ON "
           "d.id = s.dealership_id WHERE s.part_number = ? AND s.quantity >= ? "
           "ORDER BY s.quantity DESC, d.rowid LIMIT 1");
  if (!st) return -1;
  sqlite3_bind_text(st, 1, pn, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, quantity);
  int found = sqlite3_step(st) == SQLITE_ROW;
  if (found) snprintf(out, 128, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return found;
}

/* Take quantity from the stock of pn at dealer: 1 if taken, 0 if there is
 * not enough, -1 after dl_fail. */
static int take_stock(dl_request *req, const char *pn, const char *dealer,
                      long quantity) {
  sqlite3_stmt *st = dl_prepare(
      req, "UPDATE part_stock SET quantity = quantity - ?3 "
           "WHERE part_number = ?1 AND dealership_id = ?2 AND quantity >= ?3");
  if (!st) return -1;
  sqlite3_bind_text(st, 1, pn, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, dealer, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, quantity);
  int rc = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(req->db) > 0 : -1;
  sqlite3_finalize(st);
  if (rc < 0)
    dl_fail(req, "cannot update the stock: %s", sqlite3_errmsg(req->db));
  return rc;
}

static int insert_order(dl_request *req, char id[32], const char *pn,
                        const char *dealer, long quantity, const char *vin,
                        const char *name, const char *status, const char *ready,
                        double total) {
  if (dl_next_id(req, "part_orders", "PO-", 5001, id) != 0) return -1;
  sqlite3_stmt *st =
      dl_prepare(req, "INSERT INTO part_orders (id, part_number, "
                      "dealership_id, quantity, vin, customer_name, status, "
                      "ready_by, total, created_at) VALUES (?, ?, ?, ?, ?, "
                      "?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%S', 'now'))");
  if (!st) return -1;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, pn, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, dealer, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, quantity);
  sqlite3_bind_text(st, 5, vin, -1, SQLITE_STATIC); /* NULL binds null */
  sqlite3_bind_text(st, 6, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, status, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 8, ready, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 9, total);
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
  sqlite3_finalize(st);
  if (rc) dl_fail(req, "cannot save the order: %s", sqlite3_errmsg(req->db));
  return rc;
}

json_t *parts_order(dl_request *req, json_t *args) {
  int ok = 1;
  long quantity = dl_arg_int(req, args, "quantity", -1, &ok);
  const char *dealer_arg = dl_arg_str(req, args, "dealership", NULL, &ok);
  const char *name = dl_arg_str(req, args, "customer_name", NULL, &ok);
  if (!ok) return NULL;
  if (quantity == -1) return dl_invalid(req, "argument 'quantity' is required");
  if (quantity < 1 || quantity > 20)
    return dl_invalid(req, "argument 'quantity' must be between 1 and 20");
  if (name && dl_blank(name))
    return dl_invalid(req, "argument 'customer_name' must not be blank");
  char vin[DL_VIN_LEN + 1];
  int has_vin = dl_vin_arg(req, args, "vin", 0, vin);
  if (has_vin < 0) return NULL;
  json_t *part = read_part(req, args);
  if (!part) return NULL;
  const char *pn = json_string_value(json_object_get(part, "part_number"));
  json_t *dealer = NULL, *out = NULL, *vehicle = NULL;
  /* An order for a customer's car is for a part that fits it: reserving a
   * Camry's pads against a Civic takes stock another customer needs. */
  char fits[160];
  if (has_vin) {
    if (!(vehicle = dl_vin_vehicle(req, vin))) goto done;
    if (!part_fits(part, vehicle, fits, sizeof fits)) {
      long year = (long)json_integer_value(json_object_get(vehicle, "year"));
      const char *vmodel = json_string_value(json_object_get(vehicle, "model"));
      dl_invalid(req,
                 "argument 'part_number': %s fits %s, not the %ld %s%s%s of "
                 "VIN %s (find_parts with the VIN lists the parts that fit)",
                 pn, fits, year,
                 json_string_value(json_object_get(vehicle, "make")),
                 vmodel ? " " : "", vmodel ? vmodel : "", vin);
      goto done;
    }
  }
  char stocked[128];
  if (!dealer_arg) { /* where it is in stock, else the group's first */
    int found = dealer_with_stock(req, pn, quantity, stocked);
    if (found < 0) goto done;
    if (found) dealer_arg = stocked;
  }
  if (!(dealer = dl_dealership(req, "dealership", dealer_arg))) goto done;
  const char *dealer_id = json_string_value(json_object_get(dealer, "id"));
  int taken = take_stock(req, pn, dealer_id, quantity);
  if (taken < 0) goto done;
  const char *status = taken ? "reserved" : "ordered";
  char start[11], ready[11], order_id[32];
  long lead = lead_days(req, taken ? "in_stock" : "order");
  if (dl_calendar_start(req, start) || dl_date_add(req, start, lead, ready))
    goto done;
  double unit = json_number_value(json_object_get(part, "price"));
  double total = dl_cents(unit * (double)quantity);
  if (insert_order(req, order_id, pn, dealer_id, quantity, has_vin ? vin : NULL,
                   name, status, ready, total))
    goto done;
  out = json_pack("{sssssOsIsssssssIsfsf}", "order_id", order_id, "part_number",
                  pn, "name", json_object_get(part, "name"), "quantity",
                  (json_int_t)quantity, "dealership", dealer_id, "status",
                  status, "ready_by", ready, "lead_days", (json_int_t)lead,
                  "unit_price", dl_cents(unit), "total", total);
  if (out && has_vin) json_object_set_new(out, "vin", json_string(vin));
  if (out && name) json_object_set_new(out, "customer_name", json_string(name));
  if (!out) dl_fail(req, "out of memory");
done:
  json_decref(vehicle);
  json_decref(dealer);
  json_decref(part);
  return out;
}
