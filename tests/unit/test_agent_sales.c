/* test_agent_sales.c: dealer-sales's tools (agents/sales/) on a small
 * fixture database built here with dl_schema_sql, run through dl_run_tool
 * (the runtime's own path: transaction, idempotency ledger).
 *
 * Ranking: budget exclusion (>10% over), order by score, ties by VIN, a
 * model said as a make. Booking: the same key twice books once and
 * answers the same; the same key with other arguments is refused; two
 * keys for one slot: the second is refused; sold cars and closed hours.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "sales/sales.h"

static char dir[64];

static const dl_tool search = {.name = "search_inventory",
                               .run = sales_search_inventory};
static const dl_tool details = {.name = "vehicle_details",
                                .run = sales_vehicle_details};
static const dl_tool slots = {.name = "test_drive_slots",
                              .run = sales_test_drive_slots};
/* as in agents/sales/main.c: mutating, so the ledger applies */
static const dl_tool book = {
    .name = "book_test_drive", .mutating = 1, .run = sales_book_test_drive};

/* Readable VINs (serials 000001...): lookups do not insist on the check
 * digit, so the fixture can say which car is which. */
static const char fixture[] =
    "INSERT INTO tenant VALUES ('t1', 'Test Motors');"
    "INSERT INTO policies VALUES ('calendar.start', '\"2027-01-04\"'),"
    " ('test_drive', '{\"minutes\":30,\"per_hour\":2}'),"
    " ('finance.apr', '{\"good\":6.0}'), ('finance.terms', '[36,60,72]');"
    "INSERT INTO dealerships (id, name, city, state, address, phone, brands,"
    " sales_tax_rate, doc_fee, registration_fee, opens, closes) VALUES"
    " ('d1', 'Test Toyota', 'Springfield', 'MN', '1 Main St', '555-0100',"
    "  '[\"Toyota\"]', 0.06875, 350, 200, '09:00', '11:00');"
    "INSERT INTO vehicles (vin, dealership_id, year, make, model, trim, body,"
    " condition, mileage, price, color, fuel, drivetrain, mpg, seats,"
    " features, status) VALUES"
    /* A: new Camry, under budget */
    " ('4T1B11K10TA000001', 'd1', 2026, 'Toyota', 'Camry', 'LE', 'sedan',"
    "  'new', 10, 28000, 'White', 'gas', 'fwd', 32, 5, '[\"heated seats\"]',"
    "  'available'),"
    /* B, C: identical cars, same score: ordered by VIN */
    " ('4T1B11K10TA000003', 'd1', 2026, 'Toyota', 'Camry', 'SE', 'sedan',"
    "  'new', 10, 29000, 'Red', 'gas', 'fwd', 32, 5, '[]', 'available'),"
    " ('4T1B11K10TA000002', 'd1', 2026, 'Toyota', 'Camry', 'SE', 'sedan',"
    "  'new', 10, 29000, 'Red', 'gas', 'fwd', 32, 5, '[]', 'available'),"
    /* D: 5% over budget: shown, ranked lower */
    " ('4T1B11K10TA000004', 'd1', 2026, 'Toyota', 'Camry', 'XSE', 'sedan',"
    "  'new', 10, 31500, 'Blue', 'gas', 'fwd', 32, 5, '[]', 'available'),"
    /* E: 20% over budget: excluded */
    " ('4T1B11K10TA000005', 'd1', 2026, 'Toyota', 'Camry', 'XSE', 'sedan',"
    "  'new', 10, 36000, 'Blue', 'gas', 'fwd', 32, 5, '[]', 'available'),"
    /* F: sold: never listed, never booked */
    " ('4T1B11K10TA000006', 'd1', 2026, 'Toyota', 'Camry', 'LE', 'sedan',"
    "  'new', 10, 27000, 'Gray', 'gas', 'fwd', 32, 5, '[]', 'sold'),"
    /* G: an old used RAV4 within budget */
    " ('2T3W1RF31JC000007', 'd1', 2018, 'Toyota', 'RAV4', 'LE', 'suv',"
    "  'used', 90000, 15000, 'Gray', 'gas', 'awd', 30, 5, '[]',"
    "  'available');";

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/sb-sales-XXXXXX");
  if (!mkdtemp(dir)) return -1;
  char path[128];
  snprintf(path, sizeof path, "%s/t1.db", dir);
  sqlite3 *db = NULL;
  int rc =
      sqlite3_open(path, &db) == SQLITE_OK &&
              sqlite3_exec(db, dl_schema_sql, NULL, NULL, NULL) == SQLITE_OK &&
              sqlite3_exec(db, fixture, NULL, NULL, NULL) == SQLITE_OK
          ? 0
          : -1;
  if (rc) fprintf(stderr, "fixture: %s\n", sqlite3_errmsg(db));
  sqlite3_close(db);
  return rc;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Run a tool with JSON arguments; the outcome, *out the result or NULL. */
static dl_outcome run(const dl_tool *t, const char *key, const char *args,
                      json_t **out, char *error) {
  json_t *a = json_loads(args, 0, NULL);
  assert_non_null(a);
  dl_outcome o = dl_run_tool(t, dir, "t1", key, a, NULL, out, error, 512);
  json_decref(a);
  return o;
}

static json_t *ok(const dl_tool *t, const char *key, const char *args) {
  json_t *r = NULL;
  char error[512] = "";
  if (run(t, key, args, &r, error) != DL_OK) fail_msg("%s: %s", t->name, error);
  return r;
}

static const char *vin_at(json_t *r, size_t i) {
  return json_string_value(json_object_get(
      json_array_get(json_object_get(r, "vehicles"), i), "vin"));
}

static void test_ranking_budget_and_ties(void **state) {
  (void)state;
  json_t *r = ok(&search, NULL,
                 "{\"model\": \"camry\", \"budget\": 30000,"
                 " \"features\": [\"heated seats\"]}");
  /* A, B, C, D: E is 20% over, F sold, G not a Camry */
  assert_int_equal(json_integer_value(json_object_get(r, "total_matches")), 4);
  assert_string_equal(vin_at(r, 0), "4T1B11K10TA000001");
  assert_string_equal(vin_at(r, 1), "4T1B11K10TA000002"); /* tie: by VIN */
  assert_string_equal(vin_at(r, 2), "4T1B11K10TA000003");
  assert_string_equal(vin_at(r, 3), "4T1B11K10TA000004");
  json_t *v = json_array_get(json_object_get(r, "vehicles"), 0);
  json_int_t best = json_integer_value(json_object_get(v, "score"));
  assert_true(best > 0 && best <= 100);
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(v, "reasons"), 0)),
      "within budget ($2,000 under)");
  json_t *d = json_array_get(json_object_get(r, "vehicles"), 3);
  assert_true(json_integer_value(json_object_get(d, "score")) < best);
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(d, "reasons"), 0)),
      "$1,500 over budget (5.0%)");
  json_decref(r);

  /* the same query again: the same answer */
  json_t *again = ok(&search, NULL,
                     "{\"model\": \"camry\", \"budget\": "
                     "30000, \"features\": [\"heated seats\"]}");
  json_t *first = ok(&search, NULL,
                     "{\"model\": \"camry\", \"budget\": "
                     "30000, \"features\": [\"heated seats\"]}");
  assert_true(json_equal(again, first));
  json_decref(again);
  json_decref(first);

  /* "a Camry" given as the make still finds Camrys; limit applies */
  r = ok(&search, NULL, "{\"make\": \"a Camry\", \"limit\": 2}");
  assert_int_equal(json_integer_value(json_object_get(r, "total_matches")), 5);
  assert_int_equal(json_array_size(json_object_get(r, "vehicles")), 2);
  json_decref(r);

  /* no model: a new car outranks an old high-mileage one */
  r = ok(&search, NULL, "{\"make\": \"TOYOTA\", \"limit\": 20}");
  assert_int_equal(json_integer_value(json_object_get(r, "total_matches")), 6);
  assert_string_equal(vin_at(r, 5), "2T3W1RF31JC000007");
  json_decref(r);

  json_t *res = NULL;
  char error[512];
  assert_int_equal(run(&search, NULL, "{\"limit\": 50}", &res, error),
                   DL_INVALID_ARGS);
  assert_null(res);
  /* "NaN" is not a number (it used to drop the budget filter) */
  assert_int_equal(run(&search, NULL, "{\"budget\": \"NaN\"}", &res, error),
                   DL_INVALID_ARGS);
  assert_non_null(strstr(error, "'budget' must be a number"));
  r = ok(&search, NULL, "{\"model\": \"camry\", \"budget\": \"30000\"}");
  assert_int_equal(json_integer_value(json_object_get(r, "total_matches")), 4);
  json_decref(r);
}

static void test_details_and_unknown_vin(void **state) {
  (void)state;
  json_t *r = ok(&details, NULL, "{\"vin\": \"4t1b11k10ta000001\"}");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(r, "dealership"), "address")),
                      "1 Main St");
  assert_true(json_is_array(json_object_get(r, "features")));
  json_decref(r);
  json_t *res = NULL;
  char error[512];
  assert_int_equal(
      run(&details, NULL, "{\"vin\": \"1HGCY1F30RA000000\"}", &res, error),
      DL_FAILED);
  assert_non_null(strstr(error, "no vehicle with VIN 1HGCY1F30RA000000 at "
                                "Test Motors"));
}

static long bookings(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/t1.db", dir);
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_prepare_v2(db, "SELECT count(*) FROM test_drives", -1, &st, NULL);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  long n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

static void test_booking_is_idempotent(void **state) {
  (void)state;
  const char *args = "{\"vin\": \"4T1B11K10TA000001\", \"starts_at\": "
                     "\"2027-01-04T09:30\", \"customer_name\": \"Ann Lee\"}";
  long before = bookings();
  json_t *a = ok(&book, "run1/book/1", args);
  json_t *b = ok(&book, "run1/book/1", args);
  assert_true(json_equal(a, b));
  assert_int_equal(bookings(), before + 1);
  assert_string_equal(json_string_value(json_object_get(a, "ends_at")),
                      "2027-01-04T10:00");
  assert_string_equal(json_string_value(json_object_get(a, "vehicle")),
                      "2026 Toyota Camry LE");
  assert_memory_equal(json_string_value(json_object_get(a, "booking_id")),
                      "TD-", 3);

  json_t *res = NULL;
  char error[512];
  /* same key, other arguments: refused, nothing booked */
  assert_int_equal(run(&book, "run1/book/1",
                       "{\"vin\": \"4T1B11K10TA000001\", \"starts_at\": "
                       "\"2027-01-04T10:00\", \"customer_name\": \"Ann Lee\"}",
                       &res, error),
                   DL_INVALID_ARGS);
  assert_non_null(strstr(error, "other arguments"));
  /* another key for the same slot: taken */
  assert_int_equal(run(&book, "run2/book/1", args, &res, error), DL_FAILED);
  assert_non_null(strstr(error, "already taken"));
  assert_int_equal(bookings(), before + 1);

  /* the slot is gone from the free list */
  json_t *s = ok(&slots, NULL,
                 "{\"vin\": \"4T1B11K10TA000001\", \"date\": "
                 "\"2027-01-04\"}");
  json_t *list = json_object_get(s, "slots");
  assert_int_equal(json_array_size(list), 3); /* 09:00 10:00 10:30 */
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(list, 1), "starts_at")),
      "2027-01-04T10:00");
  json_decref(s);

  /* without starts_at: the first free slot of the calendar */
  json_t *c = ok(&book, "run3/book/1",
                 "{\"vin\": \"4T1B11K10TA000001\", "
                 "\"customer_name\": \"Bo\"}");
  assert_string_equal(json_string_value(json_object_get(c, "starts_at")),
                      "2027-01-04T09:00");
  json_decref(a);
  json_decref(b);
  json_decref(c);
}

static void test_booking_refusals(void **state) {
  (void)state;
  json_t *res = NULL;
  char error[512];
  assert_int_equal(run(&book, "k-sold",
                       "{\"vin\": \"4T1B11K10TA000006\", "
                       "\"customer_name\": \"Cy\"}",
                       &res, error),
                   DL_FAILED);
  assert_non_null(strstr(error, "sold"));
  assert_int_equal(run(&book, "k-late",
                       "{\"vin\": \"4T1B11K10TA000002\", "
                       "\"starts_at\": \"2027-01-04T10:45\","
                       " \"customer_name\": \"Cy\"}",
                       &res, error),
                   DL_FAILED);
  assert_non_null(strstr(error, "outside test-drive hours"));
  assert_int_equal(run(&book, "k-sun",
                       "{\"vin\": \"4T1B11K10TA000002\", "
                       "\"starts_at\": \"2027-01-10T09:00\","
                       " \"customer_name\": \"Cy\"}",
                       &res, error),
                   DL_FAILED);
  assert_non_null(strstr(error, "Sundays"));
  assert_int_equal(
      run(&book, NULL, "{\"vin\": \"4T1B11K10TA000002\"}", &res, error),
      DL_INVALID_ARGS);
  assert_null(res);
  /* only inside the calendar: from its start to the booking horizon */
  static const char *const out_of_window[] = {
      "{\"vin\": \"4T1B11K10TA000002\", \"starts_at\": "
      "\"1999-03-01T10:00\", \"customer_name\": \"Cy\"}",
      "{\"vin\": \"4T1B11K10TA000002\", \"starts_at\": "
      "\"9999-12-31T10:00\", \"customer_name\": \"Cy\"}",
      "{\"vin\": \"4T1B11K10TA000002\", \"starts_at\": "
      "\"2027-01-02T10:00\", \"customer_name\": \"Cy\"}",
  };
  long before = bookings();
  for (size_t i = 0; i < sizeof out_of_window / sizeof out_of_window[0]; i++) {
    assert_int_equal(run(&book, NULL, out_of_window[i], &res, error),
                     DL_INVALID_ARGS);
    assert_non_null(strstr(error, "'starts_at': bookings are taken from "
                                  "2027-01-04 to 2027-04-04"));
  }
  assert_int_equal(bookings(), before);
  assert_int_equal(run(&slots, NULL,
                       "{\"vin\": \"4T1B11K10TA000002\", \"date\": "
                       "\"1900-01-01\"}",
                       &res, error),
                   DL_INVALID_ARGS);
  assert_non_null(strstr(error, "'date'"));
  json_t *last = ok(&slots, NULL,
                    "{\"vin\": \"4T1B11K10TA000002\", \"date\": "
                    "\"2027-04-03\"}");
  assert_string_equal(json_string_value(json_object_get(last, "date")),
                      "2027-04-03");
  json_decref(last);
}

/* Strings are capped (they are echoed: an unbounded make made an answer
 * bigger than switchboard takes) and a blank customer name is no name. */
static void test_string_caps(void **state) {
  (void)state;
  json_t *res = NULL;
  char error[512];
  char *big = malloc(64 + 300);
  assert_non_null(big);
  char make[301];
  memset(make, 'x', 300);
  make[300] = '\0';
  snprintf(big, 64 + 300, "{\"make\": \"%s\"}", make);
  assert_int_equal(run(&search, NULL, big, &res, error), DL_INVALID_ARGS);
  assert_non_null(strstr(error, "'make'"));
  assert_non_null(strstr(error, "200"));
  snprintf(big, 64 + 300, "{\"features\": [\"%s\"]}", make);
  assert_int_equal(run(&search, NULL, big, &res, error), DL_INVALID_ARGS);
  assert_non_null(strstr(error, "features"));
  make[201] = '\0'; /* one byte over the cap */
  snprintf(big, 64 + 300,
           "{\"vin\": \"4T1B11K10TA000002\", \"customer_name\": \"%s\"}",
           make);
  assert_int_equal(run(&book, NULL, big, &res, error), DL_INVALID_ARGS);
  assert_non_null(strstr(error, "'customer_name'"));
  assert_non_null(strstr(error, "200"));
  free(big);
  long before = bookings();
  assert_int_equal(run(&book, NULL,
                       "{\"vin\": \"4T1B11K10TA000002\", "
                       "\"customer_name\": \" \\t \"}",
                       &res, error),
                   DL_INVALID_ARGS);
  assert_non_null(strstr(error, "customer_name"));
  assert_int_equal(bookings(), before);
  assert_null(res);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ranking_budget_and_ties),
      cmocka_unit_test(test_details_and_unknown_vin),
      cmocka_unit_test(test_booking_is_idempotent),
      cmocka_unit_test(test_booking_refusals),
      cmocka_unit_test(test_string_caps),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
