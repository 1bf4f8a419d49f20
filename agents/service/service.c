/* service.c: recalls, service slots and bookings (see service.h).
 *
 * A slot is free when it is not marked booked and no booking holds it; a
 * booking marks it and takes it (service_bookings.slot_id is UNIQUE), in
 * the call's IMMEDIATE transaction, so two bookings of one slot cannot
 * both succeed. Recalls match the vehicle's make, model (when known: a VIN
 * only decoded has none) and model year.
 */
#include "service.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/lookup.h"
#include "common/vin.h"
#include "data/catalog.h"

#define SVC_FREE                                                               \
  "booked = 0 AND NOT EXISTS (SELECT 1 FROM service_bookings b "               \
  "WHERE b.slot_id = s.id)"

/* Most specific first: the first entry found in the service's name wins. */
static const struct {
  const char *name;
  double hours;
} svc_labor[] = {
    {"oil", 0.5},          {"rotation", 0.5},   {"brake inspection", 0.5},
    {"brake pad", 1.5},    {"rotor", 2.0},      {"brake", 1.0},
    {"battery", 0.5},      {"alignment", 1.0},  {"recall", 1.0},
    {"transmission", 1.5}, {"coolant", 1.0},    {"air filter", 0.3},
    {"cabin filter", 0.3}, {"wiper", 0.2},      {"spark plug", 1.5},
    {"tire", 1.0},         {"inspection", 1.0}, {"diagnos", 1.0},
};

static int contains_nocase(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++)
    if (strncasecmp(hay, needle, n) == 0) return 1;
  return 0;
}

double svc_labor_hours(dl_request *req, const char *service) {
  json_t *p = req ? dl_policy(req, "service.labor_hours") : NULL;
  const char *name;
  json_t *v;
  double hours = -1;
  size_t best = 0;
  json_object_foreach(p, name, v) { /* the longest name found wins */
    if (json_is_number(v) && strlen(name) > best &&
        contains_nocase(service, name)) {
      best = strlen(name);
      hours = json_number_value(v);
    }
  }
  json_decref(p);
  if (hours >= 0) return hours;
  for (size_t i = 0; i < sizeof svc_labor / sizeof svc_labor[0]; i++)
    if (contains_nocase(service, svc_labor[i].name)) return svc_labor[i].hours;
  return 1.0;
}

/* ---- recall_lookup ----------------------------------------------------- */

json_t *svc_recall_lookup(dl_request *req, json_t *args) {
  char vin[DL_VIN_LEN + 1];
  if (dl_vin_arg(req, args, "vin", 1, vin) < 0) return NULL;
  json_t *vehicle = dl_vin_vehicle(req, vin);
  if (!vehicle) return NULL;
  const char *make = json_string_value(json_object_get(vehicle, "make"));
  const char *model = json_string_value(json_object_get(vehicle, "model"));
  json_int_t year = json_integer_value(json_object_get(vehicle, "year"));
  sqlite3_stmt *st = dl_prepare(
      req, "SELECT campaign, component, summary, remedy, "
           " (SELECT b.id FROM service_bookings b WHERE b.vin = ?4 AND "
           "  instr(upper(b.service), upper(r.campaign)) > 0 "
           "  ORDER BY b.created_at LIMIT 1) AS booking_id "
           "FROM recalls r WHERE make = ?1 COLLATE NOCASE "
           "AND (?2 IS NULL OR model = ?2 COLLATE NOCASE) "
           "AND ?3 BETWEEN year_from AND year_to ORDER BY campaign");
  if (!st) {
    json_decref(vehicle);
    return NULL;
  }
  json_t *recalls = json_array();
  if (make) { /* an unknown make matches nothing */
    sqlite3_bind_text(st, 1, make, -1, SQLITE_STATIC);
    if (model) sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, year);
    sqlite3_bind_text(st, 4, vin, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
      json_t *r = dl_row_json(st);
      if (json_is_null(json_object_get(r, "booking_id")))
        json_object_del(r, "booking_id");
      json_array_append_new(recalls, r);
    }
  }
  sqlite3_finalize(st);
  json_t *out =
      json_pack("{sss{sOsOsO}sIso}", "vin", vin, "vehicle", "year",
                json_object_get(vehicle, "year"), "make",
                json_object_get(vehicle, "make"), "model",
                json_object_get(vehicle, "model"), "open_recalls",
                (json_int_t)json_array_size(recalls), "recalls", recalls);
  if (out && json_is_true(json_object_get(vehicle, "decoded")))
    json_object_set_new(json_object_get(out, "vehicle"), "decoded",
                        json_true());
  json_decref(vehicle);
  return out ? out : dl_fail(req, "out of memory");
}

/* ---- service_slots ----------------------------------------------------- */

static json_t *slot_json(sqlite3_stmt *st) {
  return json_pack("{sIsssIsI}", "slot_id",
                   (json_int_t)sqlite3_column_int64(st, 0), "starts_at",
                   (const char *)sqlite3_column_text(st, 1), "bay",
                   (json_int_t)sqlite3_column_int64(st, 2), "minutes",
                   (json_int_t)sqlite3_column_int64(st, 3));
}

/* The first free slot of the dealership on or after `from` (a date or a
 * time) lasting at least `minutes`: new reference, json null when there is
 * none, NULL after dl_fail. */
static json_t *first_free_slot(dl_request *req, const char *dealership,
                               const char *from, long minutes) {
  sqlite3_stmt *st = dl_prepare(
      req, "SELECT id, starts_at, bay, minutes FROM service_slots s "
           "WHERE dealership_id = ? AND starts_at >= ? AND minutes >= ? "
           "AND " SVC_FREE " ORDER BY starts_at, bay LIMIT 1");
  if (!st) return NULL;
  sqlite3_bind_text(st, 1, dealership, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, minutes);
  json_t *slot = sqlite3_step(st) == SQLITE_ROW ? slot_json(st) : json_null();
  sqlite3_finalize(st);
  return slot;
}

json_t *svc_service_slots(dl_request *req, json_t *args) {
  int ok = 1;
  const char *dealer_arg = dl_arg_str(req, args, "dealership", NULL, &ok);
  const char *date = dl_arg_str(req, args, "date", NULL, &ok);
  long minutes = dl_arg_int(req, args, "minutes", 0, &ok);
  long limit = dl_arg_int(req, args, "limit", 5, &ok);
  if (!ok) return NULL;
  long asked;
  if (date && dl_date_parse(date, &asked) != 0)
    return dl_invalid(req, "argument 'date' must be a date YYYY-MM-DD");
  if (date && dl_booking_day_check(req, "date", asked) != 0) return NULL;
  if (minutes < 0 || minutes > 24 * 60)
    return dl_invalid(req, "argument 'minutes' must be between 0 and 1440");
  if (limit < 1 || limit > 50)
    return dl_invalid(req, "argument 'limit' must be between 1 and 50");
  char start[11];
  if (!date && dl_calendar_start(req, start) != 0) return NULL;
  json_t *dealer = dl_dealership(req, "dealership", dealer_arg);
  if (!dealer) return NULL;
  const char *dealer_id = json_string_value(json_object_get(dealer, "id"));
  json_t *out = NULL, *slots = json_array();
  json_t *first = first_free_slot(req, dealer_id, date ? date : start, minutes);
  if (!first) goto done;
  char day[11] = "";
  if (json_is_object(first)) {
    snprintf(day, sizeof day, "%s",
             json_string_value(json_object_get(first, "starts_at")));
    sqlite3_stmt *st = dl_prepare(
        req, "SELECT id, starts_at, bay, minutes FROM service_slots s "
             "WHERE dealership_id = ? AND starts_at >= ? AND "
             "substr(starts_at, 1, 10) = ? AND minutes >= ? "
             "AND " SVC_FREE " ORDER BY starts_at, bay LIMIT ?");
    if (!st) goto done;
    sqlite3_bind_text(st, 1, dealer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, date ? date : start, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, day, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, minutes);
    sqlite3_bind_int64(st, 5, limit);
    while (sqlite3_step(st) == SQLITE_ROW)
      json_array_append_new(slots, slot_json(st));
    sqlite3_finalize(st);
  }
  out = json_pack("{sssoso}", "dealership", dealer_id, "date",
                  day[0] ? json_string(day) : json_null(), "slots", slots);
  slots = NULL;
done:
  json_decref(slots);
  json_decref(first);
  json_decref(dealer);
  return out;
}

/* ---- book_service ------------------------------------------------------ */

/* The slot slot_id (new reference, with dealership_id and taken), json
 * null when there is none, NULL after dl_fail. */
static json_t *read_slot(dl_request *req, long slot_id) {
  sqlite3_stmt *st =
      dl_prepare(req, "SELECT id, starts_at, bay, minutes, dealership_id, "
                      "NOT (" SVC_FREE ") FROM service_slots s WHERE id = ?");
  if (!st) return NULL;
  sqlite3_bind_int64(st, 1, slot_id);
  json_t *slot = json_null();
  if (sqlite3_step(st) == SQLITE_ROW) {
    json_decref(slot);
    slot = slot_json(st);
    json_object_set_new(slot, "dealership_id",
                        json_string((const char *)sqlite3_column_text(st, 4)));
    json_object_set_new(slot, "taken", json_boolean(sqlite3_column_int(st, 5)));
  }
  sqlite3_finalize(st);
  return slot;
}

static int insert_booking(dl_request *req, char id[32], json_int_t slot_id,
                          const char *vin, const char *service,
                          const char *name, const char *phone,
                          const char *notes) {
  if (dl_next_id(req, "service_bookings", "SV-", 1001, id) != 0) return -1;
  sqlite3_stmt *st = dl_prepare(req, "INSERT INTO service_bookings (id, slot_id, vin, "
                       "service, customer_name, phone, notes, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, "
                       "strftime('%Y-%m-%dT%H:%M:%S', 'now'))");
  if (!st) return -1;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, slot_id);
  sqlite3_bind_text(st, 3, vin, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, service, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, phone, -1, SQLITE_STATIC); /* NULL binds null */
  sqlite3_bind_text(st, 7, notes, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
  sqlite3_finalize(st);
  if (rc == 0) {
    st = dl_prepare(req, "UPDATE service_slots SET booked = 1 WHERE id = ?");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, slot_id);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
  }
  if (rc != 0) dl_fail(req, "cannot book: %s", sqlite3_errmsg(req->db));
  return rc;
}

json_t *svc_book_service(dl_request *req, json_t *args) {
  char vin[DL_VIN_LEN + 1];
  if (dl_vin_arg(req, args, "vin", 1, vin) < 0) return NULL;
  const char *service = dl_arg_required(req, args, "service", DL_ARG_STR_MAX);
  const char *name =
      service ? dl_arg_required(req, args, "customer_name", DL_ARG_STR_MAX)
              : NULL;
  if (!name) return NULL;
  int ok = 1;
  const char *phone = dl_arg_text(req, args, "phone", NULL, 64, &ok);
  const char *notes = dl_arg_text(req, args, "notes", NULL, 2000, &ok);
  const char *dealer_arg = dl_arg_str(req, args, "dealership", NULL, &ok);
  long slot_id = dl_arg_int(req, args, "slot_id", 0, &ok);
  if (!ok) return NULL;
  /* Presence, not a sentinel value: a slot_id of -5 is a mistake to
   * refuse, not a request for the first free slot. */
  json_t *slot_arg = json_object_get(args, "slot_id");
  int slot_given = slot_arg && !json_is_null(slot_arg);
  if (slot_given && slot_id < 1)
    return dl_invalid(req,
                      "argument 'slot_id' must be a slot id (1 or more), "
                      "not %ld",
                      slot_id);
  /* The job must fit its slot, or the bay is booked twice over. */
  double hours = svc_labor_hours(req, service);
  long job_minutes = (long)ceil(hours * 60.0 - 1e-9); /* 0.3 h: 18 */

  json_t *dealer = NULL, *slot = NULL, *vehicle = NULL, *out = NULL;
  if (dealer_arg || !slot_given) {
    dealer = dl_dealership(req, "dealership", dealer_arg);
    if (!dealer) goto done;
  }
  const char *dealer_id = json_string_value(json_object_get(dealer, "id"));
  char slot_dealer_id[128];
  if (slot_given) {
    slot = read_slot(req, slot_id);
    if (!slot) goto done;
    if (json_is_null(slot)) {
      dl_invalid(req, "argument 'slot_id': there is no service slot %ld",
                 slot_id);
      goto done;
    }
    const char *slot_dealer =
        json_string_value(json_object_get(slot, "dealership_id"));
    if (dealer_id && strcmp(dealer_id, slot_dealer) != 0) {
      dl_invalid(req, "argument 'slot_id': slot %ld is at %s, not %s", slot_id,
                 slot_dealer, dealer_id);
      goto done;
    }
    if (json_is_true(json_object_get(slot, "taken"))) {
      dl_fail(req,
              "slot %ld (%s, bay %lld at %s) is already taken: ask "
              "service_slots for free ones",
              slot_id, json_string_value(json_object_get(slot, "starts_at")),
              (long long)json_integer_value(json_object_get(slot, "bay")),
              slot_dealer);
      goto done;
    }
    long slot_minutes = (long)json_integer_value(json_object_get(slot, "minutes"));
    if (slot_minutes < job_minutes) {
      dl_invalid(req,
                 "argument 'slot_id': slot %ld is %ld minutes, shorter than "
                 "the %.1f-hour (%ld-minute) labor estimate for \"%s\"; ask "
                 "service_slots with minutes %ld",
                 slot_id, slot_minutes, hours, job_minutes, service,
                 job_minutes);
      goto done;
    }
    snprintf(slot_dealer_id, sizeof slot_dealer_id, "%s", slot_dealer);
    dealer_id = slot_dealer_id;
    json_object_del(slot, "taken");
    json_object_del(slot, "dealership_id");
  } else {
    char start[11];
    if (dl_calendar_start(req, start) != 0) goto done;
    slot = first_free_slot(req, dealer_id, start, job_minutes);
    if (!slot) goto done;
    if (json_is_null(slot)) {
      dl_fail(req,
              "no free service slot of %ld minutes or more (the %.1f-hour "
              "labor estimate for \"%s\") at %s from %s",
              job_minutes, hours, service, dealer_id, start);
      goto done;
    }
  }
  vehicle = dl_vin_vehicle(req, vin);
  if (!vehicle) goto done;
  char booking_id[32];
  json_int_t sid = json_integer_value(json_object_get(slot, "slot_id"));
  if (insert_booking(req, booking_id, sid, vin, service, name, phone, notes))
    goto done;
  json_t *rate_policy = dl_policy(req, "service.labor_rate");
  double rate =
      json_is_number(rate_policy) ? json_number_value(rate_policy) : 149.0;
  json_decref(rate_policy);
  json_object_del(vehicle, "vin");
  out = json_pack("{sssOsssssOsssss{sfsfsf}}", "booking_id", booking_id, "slot",
                  slot, "dealership", dealer_id, "vin", vin, "vehicle", vehicle,
                  "service", service, "customer_name", name, "estimate",
                  "labor_hours", hours, "labor_rate", rate, "labor_cost",
                  dl_cents(hours * rate));
  if (!out) dl_fail(req, "out of memory");
done:
  json_decref(vehicle);
  json_decref(slot);
  json_decref(dealer);
  return out;
}
