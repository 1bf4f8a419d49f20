/* lookup.h: small readers of a tenant's data that several agents share:
 * the dealership an argument names, the demo calendar, money in cents. */
#ifndef DL_LOOKUP_H
#define DL_LOOKUP_H

#include "agent.h"

/* The dealership `value` names (its id, or its name or city, any case), or
 * the group's first when value is NULL: its row as an object (new
 * reference: id, name, city, state, sales_tax_rate, doc_fee, ...). NULL
 * after dl_invalid naming argument `key` (unknown dealership) or dl_fail. */
json_t *dl_dealership(dl_request *req, const char *key, const char *value);
/* The first day of the demo calendar (policy calendar.start, else today)
 * into out as YYYY-MM-DD; 0, or -1 after dl_fail. */
int dl_calendar_start(dl_request *req, char out[11]);
/* How far ahead a booking may be, in days from the calendar's start. */
#define DL_BOOKING_HORIZON_DAYS 90
/* The days (since 1970-01-01) a booking may be on: from the calendar's
 * start to DL_BOOKING_HORIZON_DAYS after it. 0, or -1 after dl_fail. */
int dl_booking_window(dl_request *req, long *first, long *last);
/* 0 if `day` is inside the booking window, else -1 after dl_invalid
 * naming argument `key` and the window. */
int dl_booking_day_check(dl_request *req, const char *key, long day);
/* date + days into out (YYYY-MM-DD); 0, or -1 after dl_fail. */
int dl_date_add(dl_request *req, const char *date, long days, char out[11]);
/* 1 if s is a calendar date YYYY-MM-DD. */
int dl_date_valid(const char *s);
/* The next id of a booking or order table: prefix ("TD-", "SV-", "PO-")
 * and one more than the highest number among the table's ids with that
 * prefix (`first` when there is none), into id. Inside the tool's
 * transaction, so two writers never take the same one. 0, or -1 after
 * dl_fail. `table` is one of the schema's (never caller input). */
int dl_next_id(dl_request *req, const char *table, const char *prefix,
               long first, char id[32]);
/* Money rounded to cents (half away from zero). */
double dl_cents(double amount);

#endif
