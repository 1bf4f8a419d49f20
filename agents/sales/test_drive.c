/* test_drive.c: test_drive_slots and book_test_drive of dealer-sales.
 *
 * A vehicle's test drives are slots of the tenant's policy `test_drive`
 * ({minutes, per_hour}: a drive lasts `minutes`, one may start every
 * 60/per_hour minutes) inside its dealership's opening hours, Monday to
 * Saturday. A slot is free when no drive of the same vehicle overlaps it.
 * Booking runs in the call's IMMEDIATE transaction, so the check and the
 * insert cannot interleave with another booking; the idempotency key is
 * the runtime's business (the tool is marked mutating).
 */
#include <stdio.h>
#include <string.h>

#include "common/lookup.h"
#include "data/catalog.h"
#include "sales.h"

typedef struct car {
  char vin[18];
  char title[128]; /* "2026 Toyota Camry SE" */
  char status[16];
  char dealership_id[64], dealership[128], address[160];
  int opens, closes; /* minutes after midnight */
  int minutes, step; /* drive length, minutes between starts */
} car;

static int hhmm(const char *s) {
  int h, m;
  if (!s || sscanf(s, "%d:%d", &h, &m) != 2) return -1;
  return h * 60 + m;
}

static void copy(char *dst, size_t n, const unsigned char *src) {
  snprintf(dst, n, "%s", src ? (const char *)src : "");
}

/* Load the car and its rules; NULL-like -1 after dl_fail. */
static int load_car(dl_request *req, const char *vin, car *c) {
  sqlite3_stmt *st = dl_prepare(
      req, "SELECT v.vin, v.year || ' ' || v.make || ' ' || v.model || ' ' "
           "|| v.trim, v.status, d.id, d.name, coalesce(d.address, d.city), "
           "d.opens, d.closes FROM vehicles v JOIN dealerships d ON d.id = "
           "v.dealership_id WHERE v.vin = upper(?)");
  if (!st) return -1;
  sqlite3_bind_text(st, 1, vin, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    sales_not_found(req, vin);
    return -1;
  }
  copy(c->vin, sizeof c->vin, sqlite3_column_text(st, 0));
  copy(c->title, sizeof c->title, sqlite3_column_text(st, 1));
  copy(c->status, sizeof c->status, sqlite3_column_text(st, 2));
  copy(c->dealership_id, sizeof c->dealership_id, sqlite3_column_text(st, 3));
  copy(c->dealership, sizeof c->dealership, sqlite3_column_text(st, 4));
  copy(c->address, sizeof c->address, sqlite3_column_text(st, 5));
  c->opens = hhmm((const char *)sqlite3_column_text(st, 6));
  c->closes = hhmm((const char *)sqlite3_column_text(st, 7));
  sqlite3_finalize(st);
  json_t *policy = dl_policy(req, "test_drive");
  json_int_t minutes = json_integer_value(json_object_get(policy, "minutes"));
  json_int_t per_hour = json_integer_value(json_object_get(policy, "per_hour"));
  json_decref(policy);
  c->minutes = minutes > 0 && minutes <= 240 ? (int)minutes : 30;
  c->step = per_hour > 0 && per_hour <= 60 ? (int)(60 / per_hour) : c->minutes;
  if (c->opens < 0 || c->closes <= c->opens)
    c->opens = 9 * 60, c->closes = 18 * 60;
  return 0;
}

static int refuse_unavailable(dl_request *req, const car *c) {
  if (strcmp(c->status, "sold") == 0) {
    dl_fail(req, "the %s (VIN %s) has been sold", c->title, c->vin);
    return -1;
  }
  if (strcmp(c->status, "available") != 0) {
    dl_fail(req, "the %s (VIN %s) is on hold for another customer", c->title,
            c->vin);
    return -1;
  }
  return 0;
}

/* "09:30" (minute of the day, 0..1439). */
static void clock_text(int minute, char out[16]) {
  unsigned m = (unsigned)minute % 1440u;
  snprintf(out, 16, "%02u:%02u", m / 60u, m % 60u);
}

/* "2027-01-04T09:30" */
static void at_text(long day, int minute, char out[32]) {
  char date[11], clock[16];
  dl_date_format(day, date);
  clock_text(minute, clock);
  snprintf(out, 32, "%sT%s", date, clock);
}

/* The free starts (minutes after midnight) of `day`, into free[]; their
 * count. Sundays have none. */
static int free_starts(dl_request *req, const car *c, long day, int *free,
                       int max, int *err) {
  *err = 0;
  if (dl_weekday(day) == 0) return 0;
  int booked[64], nbooked = 0;
  char date[11];
  dl_date_format(day, date);
  sqlite3_stmt *st = dl_prepare(req, "SELECT substr(starts_at, 12, 5) FROM "
                                     "test_drives WHERE vin = ? AND "
                                     "substr(starts_at, 1, 10) = ?");
  if (!st) {
    *err = 1;
    return 0;
  }
  sqlite3_bind_text(st, 1, c->vin, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, date, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW && nbooked < 64)
    booked[nbooked++] = hhmm((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  int n = 0;
  for (int t = c->opens; t + c->minutes <= c->closes && n < max; t += c->step) {
    int taken = 0;
    for (int b = 0; b < nbooked; b++)
      if (t < booked[b] + c->minutes && booked[b] < t + c->minutes) taken = 1;
    if (!taken) free[n++] = t;
  }
  return n;
}

json_t *sales_test_drive_slots(dl_request *req, json_t *args) {
  int ok = 1;
  const char *vin = dl_arg_str(req, args, "vin", NULL, &ok);
  const char *date = dl_arg_str(req, args, "date", NULL, &ok);
  if (!ok) return NULL;
  if (!vin || !*vin) return dl_invalid(req, "vin is required");
  long day, last;
  if (date && dl_date_parse(date, &day) != 0)
    return dl_invalid(req, "date must be a date like 2027-01-04");
  if (date ? dl_booking_day_check(req, "date", day) != 0
           : dl_booking_window(req, &day, &last) != 0)
    return NULL;
  car c;
  if (load_car(req, vin, &c) != 0 || refuse_unavailable(req, &c) != 0)
    return NULL;
  int starts[96], err;
  int n = free_starts(req, &c, day, starts, 96, &err);
  if (err) return NULL;
  json_t *slots = json_array();
  for (int i = 0; i < n; i++) {
    char from[32], to[32];
    at_text(day, starts[i], from);
    at_text(day, starts[i] + c.minutes, to);
    json_array_append_new(
        slots, json_pack("{ssss}", "starts_at", from, "ends_at", to));
  }
  char d[11], opens[16], closes[16];
  dl_date_format(day, d);
  clock_text(c.opens, opens);
  clock_text(c.closes, closes);
  json_t *r =
      json_pack("{sssssssssssisbssssso}", "vin", c.vin, "vehicle", c.title,
                "dealership_id", c.dealership_id, "dealership", c.dealership,
                "date", d, "minutes", c.minutes, "closed", dl_weekday(day) == 0,
                "opens", opens, "closes", closes, "slots", slots);
  return r;
}

/* "YYYY-MM-DDTHH:MM" (seconds ":00" allowed) into day and minute. */
static int parse_at(const char *s, long *day, int *minute) {
  char date[11];
  int h, m, n = 0;
  if (strlen(s) < 16 || (s[10] != 'T' && s[10] != ' ')) return -1;
  memcpy(date, s, 10);
  date[10] = '\0';
  if (dl_date_parse(date, day) != 0) return -1;
  if (sscanf(s + 11, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 || h > 23 ||
      m > 59)
    return -1;
  if (s[16] && strcmp(s + 16, ":00") != 0) return -1;
  *minute = h * 60 + m;
  return 0;
}

json_t *sales_book_test_drive(dl_request *req, json_t *args) {
  int ok = 1;
  const char *vin = dl_arg_str(req, args, "vin", NULL, &ok);
  const char *at = dl_arg_str(req, args, "starts_at", NULL, &ok);
  const char *phone = dl_arg_text(req, args, "phone", NULL, 64, &ok);
  const char *email = dl_arg_str(req, args, "email", NULL, &ok);
  if (!ok) return NULL;
  if (!vin || !*vin) return dl_invalid(req, "vin is required");
  const char *name =
      dl_arg_required(req, args, "customer_name", DL_ARG_STR_MAX);
  if (!name) return NULL;
  long day = 0;
  int minute = 0, err = 0;
  if (at && parse_at(at, &day, &minute) != 0)
    return dl_invalid(req, "starts_at must be a local time like "
                           "2027-01-04T10:30");
  if (at && dl_booking_day_check(req, "starts_at", day) != 0) return NULL;
  car c;
  if (load_car(req, vin, &c) != 0 || refuse_unavailable(req, &c) != 0)
    return NULL;
  int starts[96];
  if (!at) { /* the first free slot from the start of the calendar */
    long last;
    if (dl_booking_window(req, &day, &last) != 0) return NULL;
    int n = 0;
    for (; day <= last && n == 0 && !err; day++)
      n = free_starts(req, &c, day, starts, 1, &err);
    if (err) return NULL;
    if (n == 0)
      return dl_fail(req, "no free test-drive slot for the %s", c.title);
    day--;
    minute = starts[0];
  } else {
    char opens[16], closes[16];
    clock_text(c.opens, opens);
    clock_text(c.closes, closes);
    if (dl_weekday(day) == 0)
      return dl_fail(req, "%s is closed on Sundays", c.dealership);
    if (minute < c.opens || minute + c.minutes > c.closes)
      return dl_fail(req,
                     "%.16s is outside test-drive hours at %s (%s-%s, "
                     "%d-minute drives)",
                     at, c.dealership, opens, closes, c.minutes);
    if ((minute - c.opens) % c.step != 0)
      return dl_fail(req, "test drives at %s start every %d minutes from %s",
                     c.dealership, c.step, opens);
    int n = free_starts(req, &c, day, starts, 96, &err);
    if (err) return NULL;
    int found = 0;
    for (int i = 0; i < n; i++)
      found |= starts[i] == minute;
    if (!found) {
      char list[256] = "";
      for (int i = 0; i < n && i < 6; i++) {
        char t[16];
        clock_text(starts[i], t);
        if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, t, sizeof list - strlen(list) - 1);
      }
      return dl_fail(req,
                     "the %.16s test drive of the %s is already taken; "
                     "free that day: %s",
                     at, c.title, n ? list : "none");
    }
  }
  char from[32], to[32];
  at_text(day, minute, from);
  at_text(day, minute + c.minutes, to);
  char id[32];
  if (dl_next_id(req, "test_drives", "TD-", 1001, id) != 0) return NULL;
  sqlite3_stmt *st = dl_prepare(req, "INSERT INTO test_drives (id, vin, dealership_id, "
                       "starts_at, customer_name, phone, email, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT"
                       "%H:%M:%S', 'now'))");
  if (!st) return NULL;
  const char *vals[] = {id, c.vin, c.dealership_id, from, name, phone, email};
  for (int i = 0; i < 7; i++)
    if (vals[i]) sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return dl_fail(req, "cannot book the test drive: %s",
                   sqlite3_errmsg(req->db));
  json_t *r = json_pack("{ssssssssssssssss}", "booking_id", id, "vin", c.vin,
                        "vehicle", c.title, "dealership_id", c.dealership_id,
                        "dealership", c.dealership, "address", c.address,
                        "starts_at", from, "ends_at", to);
  json_object_set_new(r, "customer_name", json_string(name));
  return r;
}
