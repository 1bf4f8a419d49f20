/* lookup.c: readers of a tenant's data several agents share (see
 * lookup.h). Dates are computed by SQLite (date(d, '+N days')) on the
 * call's own connection, so every agent agrees on the calendar.
 */
#include "lookup.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data/catalog.h"

#define DL_DEFAULT_CALENDAR_START NULL /* today */

json_t *dl_dealership(dl_request *req, const char *key, const char *value) {
  json_t *row;
  int found =
      dl_row_one(req,
                 value ? "SELECT * FROM dealerships WHERE id = ?1 OR "
                         "name = ?1 COLLATE NOCASE OR city = ?1 COLLATE NOCASE "
                         "ORDER BY id <> ?1, rowid LIMIT 1"
                       : "SELECT * FROM dealerships ORDER BY rowid LIMIT 1",
                 value, &row);
  if (found != 0) return row;
  if (!value) return dl_fail(req, "this dealer group has no dealerships");
  /* Name the ones there are, so the caller can correct itself. */
  char known[256] = "";
  sqlite3_stmt *st =
      dl_prepare(req, "SELECT id FROM dealerships ORDER BY rowid");
  if (!st) return NULL;
  size_t len = 0;
  while (sqlite3_step(st) == SQLITE_ROW && len < sizeof known - 1) {
    int n = snprintf(known + len, sizeof known - len, "%s%s", len ? ", " : "",
                     (const char *)sqlite3_column_text(st, 0));
    if (n < 0) break;
    len += (size_t)n;
  }
  sqlite3_finalize(st);
  return dl_invalid(req,
                    "argument '%s': no dealership \"%.64s\" in this "
                    "group (%s)",
                    key, value, known);
}

int dl_date_valid(const char *s) {
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y, m, d, n = 0;
  if (!s || strlen(s) != 10 ||
      sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
      s[4] != '-' || s[7] != '-')
    return 0;
  if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) return 0;
  if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
    return 0;
  return 1;
}

int dl_date_add(dl_request *req, const char *date, long days, char out[11]) {
  sqlite3_stmt *st = dl_prepare(req, "SELECT date(?, ? || ' days')");
  if (!st) return -1;
  char mod[32];
  snprintf(mod, sizeof mod, "%+ld", days);
  if (date)
    sqlite3_bind_text(st, 1, date, -1, SQLITE_STATIC);
  else
    sqlite3_bind_text(st, 1, "now", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, mod, -1, SQLITE_STATIC);
  const char *d = sqlite3_step(st) == SQLITE_ROW
                      ? (const char *)sqlite3_column_text(st, 0)
                      : NULL;
  int rc = d && strlen(d) == 10 ? 0 : -1;
  if (rc == 0)
    memcpy(out, d, 11);
  else
    dl_fail(req, "cannot compute the date %s %s", date ? date : "now", mod);
  sqlite3_finalize(st);
  return rc;
}

int dl_calendar_start(dl_request *req, char out[11]) {
  json_t *v = dl_policy(req, "calendar.start");
  const char *s = json_string_value(v);
  int rc = dl_date_add(
      req, s && dl_date_valid(s) ? s : DL_DEFAULT_CALENDAR_START, 0, out);
  json_decref(v);
  return rc;
}

int dl_booking_window(dl_request *req, long *first, long *last) {
  char start[11];
  if (dl_calendar_start(req, start) != 0) return -1;
  if (dl_date_parse(start, first) != 0) {
    dl_fail(req, "the calendar's start %s is not a date", start);
    return -1;
  }
  *last = *first + DL_BOOKING_HORIZON_DAYS;
  return 0;
}

int dl_booking_day_check(dl_request *req, const char *key, long day) {
  long first, last;
  if (dl_booking_window(req, &first, &last) != 0) return -1;
  if (day >= first && day <= last) return 0;
  char from[11], to[11];
  dl_date_format(first, from);
  dl_date_format(last, to);
  dl_invalid(req,
             "argument '%s': bookings are taken from %s to %s (%d days "
             "ahead)",
             key, from, to, DL_BOOKING_HORIZON_DAYS);
  return -1;
}

double dl_cents(double amount) { return round(amount * 100.0) / 100.0; }

int dl_next_id(dl_request *req, const char *table, const char *prefix,
               long first, char id[32]) {
  size_t skip = strlen(prefix) + 1;
  char *sql = sb_asprintf("SELECT COALESCE(MAX(CAST(substr(id, %zu) AS "
                          "INTEGER)), %ld) + 1 FROM %s WHERE id LIKE '%s%%'",
                          skip, first - 1, table, prefix);
  if (!sql) {
    dl_fail(req, "out of memory");
    return -1;
  }
  sqlite3_stmt *st = dl_prepare(req, sql);
  sb_free(sql);
  if (!st) return -1;
  sqlite3_int64 n =
      sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : first;
  sqlite3_finalize(st);
  snprintf(id, 32, "%s%lld", prefix, (long long)n);
  return 0;
}
