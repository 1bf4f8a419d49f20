/* test_agent_service.c: dealer-service's logic (agents/service/) and the
 * VIN decoding it shares with dealer-parts (agents/common/vin.c): check
 * digits, makes and years, recall matching, free slots, bookings (a taken
 * slot refused) and idempotent booking through dl_run_tool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "common/vin.h"
#include "service/service.h"
#include "test_agent_fixture.h"

static const dl_tool recall_tool = {.name = "recall_lookup",
                                    .run = svc_recall_lookup};
static const dl_tool slots_tool = {.name = "service_slots",
                                   .run = svc_service_slots};
static const dl_tool book_tool = {
    .name = "book_service", .mutating = 1, .run = svc_book_service};

static void test_vin(void **state) {
  (void)state;
  char why[128];
  /* the textbook example and the fixture's VINs */
  assert_int_equal(dl_vin_check_digit("1HGCM82633A004352"), '3');
  assert_true(dl_vin_check("1HGCM82633A004352", why, sizeof why));
  assert_true(dl_vin_check("1M8GDM9AXKP042788", why, sizeof why)); /* X */
  assert_true(dl_vin_check("11111111111111111", why, sizeof why));
  assert_true(dl_vin_check("4t1b11hk8ku123456", why, sizeof why));
  assert_false(dl_vin_check("4T1B11HK0KU123456", why, sizeof why));
  assert_non_null(strstr(why, "check digit"));
  assert_false(dl_vin_check("4T1B11HK8KU12345", why, sizeof why));
  assert_non_null(strstr(why, "17 characters, not 16"));
  assert_false(dl_vin_check("4T1B11HK8KU12345O", why, sizeof why));
  assert_non_null(strstr(why, "'O' (position 17)"));
  assert_false(dl_vin_check(NULL, why, sizeof why));
  assert_int_equal(dl_vin_check_digit("4T1B11HK8KU1234I6"), 0);

  assert_string_equal(dl_vin_make("4T1B11HK8KU123456"), "Toyota");
  assert_string_equal(dl_vin_make("JF2BSAFC6KH400001"), "Subaru");
  assert_string_equal(dl_vin_make("5YJ3E1EA2KF317000"), "Tesla");
  assert_string_equal(dl_vin_make("1hgcm82633a004352"), "Honda");
  assert_null(dl_vin_make("11111111111111111"));
  /* position 10, the era from position 7 (a letter: 2010 on) */
  assert_int_equal(dl_vin_year("1HGCM82633A004352"), 2003);
  assert_int_equal(dl_vin_year("4T1B11HK8KU123456"), 2019);
  assert_int_equal(dl_vin_year("4T1C11AK9RU654321"), 2024);
  assert_int_equal(dl_vin_year("2HGFE2F53PH500123"), 2023);
  assert_int_equal(dl_vin_year("1M8GDM9AXKP042788"), 1989);
  assert_int_equal(dl_vin_year("11111111111111111"), 2001);
  assert_int_equal(dl_vin_year("111111111U1111111"), 0); /* U: no year */
}

static void test_recalls(void **state) {
  fixture *f = *state;
  /* the service desk's records: 2019 Camry; 24V-051 fits, 23V-100 (2021+)
   * and 22V-200 (RAV4) do not */
  json_t *r =
      fixture_call(f, &recall_tool, "{'vin': '4t1b11hk8ku123456'}", NULL);
  if (!r) fail_msg("%s", f->error);
  assert_string_equal(str(r, "vin"), "4T1B11HK8KU123456");
  assert_json_is(json_object_get(r, "vehicle"),
                 J("{'year': 2019, 'make': 'Toyota', 'model': 'Camry'}"));
  assert_int_equal(json_integer_value(json_object_get(r, "open_recalls")), 1);
  json_t *rc = json_array_get(json_object_get(r, "recalls"), 0);
  assert_string_equal(str(rc, "campaign"), "24V-051");
  assert_string_equal(str(rc, "component"), "fuel pump");
  assert_non_null(json_object_get(rc, "remedy"));
  assert_null(json_object_get(rc, "booking_id"));
  json_decref(r);

  /* the inventory: a 2023 Civic (24V-300) */
  r = fixture_call(f, &recall_tool, "{'vin': '2HGFE2F53PH500123'}", NULL);
  assert_non_null(r);
  assert_int_equal(json_integer_value(json_object_get(r, "open_recalls")), 1);
  assert_string_equal(
      str(json_array_get(json_object_get(r, "recalls"), 0), "campaign"),
      "24V-300");
  json_decref(r);

  /* unknown to both: decoded, a 2019 Subaru, model unknown, so the
   * make-and-year recall matches */
  r = fixture_call(f, &recall_tool, "{'vin': 'JF2BSAFC6KH400001'}", NULL);
  assert_non_null(r);
  assert_json_is(json_object_get(r, "vehicle"),
                 J("{'year': 2019, 'make': 'Subaru', 'model': null, "
                   "'decoded': true}"));
  assert_int_equal(json_integer_value(json_object_get(r, "open_recalls")), 1);
  json_decref(r);

  /* an unknown make matches nothing */
  r = fixture_call(f, &recall_tool, "{'vin': '11111111111111111'}", NULL);
  assert_non_null(r);
  assert_int_equal(json_integer_value(json_object_get(r, "open_recalls")), 0);
  json_decref(r);

  fixture_invalid(f, &recall_tool, "{'vin': '4T1B11HK0KU123456'}",
                  "argument 'vin': \"4T1B11HK0KU123456\" is not a valid VIN");
  fixture_invalid(f, &recall_tool, "{}", "argument 'vin'");
  fixture_invalid(f, &recall_tool, "{'vin': 17}", "argument 'vin'");

  /* a booking for the campaign shows on the recall */
  json_t *b = fixture_call(f, &book_tool,
                           "{'vin': '4T1B11HK8KU123456', 'service': 'recall "
                           "24V-051', 'customer_name': 'Dana Lee'}",
                           NULL);
  if (!b) fail_msg("%s", f->error);
  r = fixture_call(f, &recall_tool, "{'vin': '4T1B11HK8KU123456'}", NULL);
  assert_string_equal(
      str(json_array_get(json_object_get(r, "recalls"), 0), "booking_id"),
      str(b, "booking_id"));
  json_decref(r);
  json_decref(b);
}

static void test_slots(void **state) {
  fixture *f = *state;
  /* 2027-01-04 is full at Minneapolis: the first free day is the 5th */
  json_t *r = fixture_call(f, &slots_tool, "{}", NULL);
  if (!r) fail_msg("%s", f->error);
  assert_json_is(r, J("{'dealership': 'ns-minneapolis', 'date': '2027-01-05',"
                      " 'slots': ["
                      "{'slot_id': 3, 'starts_at': '2027-01-05T08:00', "
                      "'bay': 1, 'minutes': 60},"
                      "{'slot_id': 4, 'starts_at': '2027-01-05T08:00', "
                      "'bay': 2, 'minutes': 60},"
                      "{'slot_id': 5, 'starts_at': '2027-01-05T10:00', "
                      "'bay': 1, 'minutes': 90},"
                      "{'slot_id': 6, 'starts_at': '2027-01-05T13:00', "
                      "'bay': 1, 'minutes': 60}]}"));
  json_decref(r);
  r = fixture_call(f, &slots_tool, "{'limit': 2, 'minutes': 90}", NULL);
  assert_int_equal(json_array_size(json_object_get(r, "slots")), 1);
  json_decref(r);
  r = fixture_call(f, &slots_tool, "{'date': '2027-01-06', 'limit': 1}", NULL);
  assert_string_equal(str(r, "date"), "2027-01-06");
  json_decref(r);
  r = fixture_call(f, &slots_tool, "{'dealership': 'ns-stpaul'}", NULL);
  assert_string_equal(str(r, "date"), "2027-01-04");
  json_decref(r);
  /* nothing free after the calendar */
  r = fixture_call(f, &slots_tool, "{'date': '2027-02-01'}", NULL);
  assert_true(json_is_null(json_object_get(r, "date")));
  assert_int_equal(json_array_size(json_object_get(r, "slots")), 0);
  json_decref(r);
  fixture_invalid(f, &slots_tool, "{'date': '2027-02-30'}", "'date'");
  /* before the calendar or past its horizon: refused, naming the window */
  fixture_invalid(f, &slots_tool, "{'date': '1900-01-01'}",
                  "'date': bookings are taken from 2027-01-04 to 2027-04-04");
  fixture_invalid(f, &slots_tool, "{'date': '9999-12-31'}", "2027-04-04");
  fixture_invalid(f, &slots_tool, "{'limit': 0}", "'limit'");
  fixture_invalid(f, &slots_tool, "{'dealership': 'x'}", "'dealership'");
}

static void test_booking(void **state) {
  fixture *f = *state;
  /* no slot given: the first free one from calendar.start */
  json_t *r = fixture_call(
      f, &book_tool,
      "{'vin': '2HGFE2F53PH500123', 'service': 'Brake inspection', "
      "'customer_name': 'Sam Ortiz', 'phone': '651-555-0142'}",
      NULL);
  if (!r) fail_msg("%s", f->error);
  assert_string_equal(str(r, "booking_id"), "SV-1002");
  assert_string_equal(str(r, "dealership"), "ns-minneapolis");
  assert_json_is(json_object_get(r, "slot"),
                 J("{'slot_id': 3, 'starts_at': '2027-01-05T08:00', "
                   "'bay': 1, 'minutes': 60}"));
  assert_json_is(json_object_get(r, "estimate"),
                 J("{'labor_hours': 0.5, 'labor_rate': 149.0, "
                   "'labor_cost': 74.5}"));
  assert_string_equal(str(json_object_get(r, "vehicle"), "model"), "Civic");
  json_decref(r);
  assert_int_equal(fixture_int(f, "SELECT booked FROM service_slots "
                                  "WHERE id = 3"),
                   1);
  /* a slot given (long enough for 1.5 hours); the rate from the policy */
  fixture_exec(f, "UPDATE policies SET value = '100' WHERE key = "
                  "'service.labor_rate'");
  fixture_exec(f, "UPDATE service_slots SET minutes = 90 WHERE id = 8");
  r = fixture_call(f, &book_tool,
                   "{'vin': '4T1B11HK8KU123456', 'service': 'front brake "
                   "pads', 'customer_name': 'Dana Lee', 'slot_id': 8}",
                   NULL);
  if (!r) fail_msg("%s", f->error);
  assert_string_equal(str(r, "booking_id"), "SV-1003");
  assert_string_equal(str(r, "dealership"), "ns-stpaul");
  assert_true(fabs(num(json_object_get(r, "estimate"), "labor_cost") - 150) <
              0.001);
  json_decref(r);

  /* taken slots are refused (a tool error, not the arguments), nothing
   * written */
  long long before = fixture_int(f, "SELECT count(*) FROM service_bookings");
  const char *taken[] = {
      "{'vin': '4T1B11HK8KU123456', 'service': 'oil change', "
      "'customer_name': 'Al', 'slot_id': 1}", /* a booking holds it */
      "{'vin': '4T1B11HK8KU123456', 'service': 'oil change', "
      "'customer_name': 'Al', 'slot_id': 2}", /* marked booked */
      "{'vin': '4T1B11HK8KU123456', 'service': 'oil change', "
      "'customer_name': 'Al', 'slot_id': 8}", /* just booked */
  };
  for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
    assert_null(fixture_call(f, &book_tool, taken[i], NULL));
    assert_int_equal(f->outcome, DL_FAILED);
    assert_non_null(strstr(f->error, "is already taken"));
  }
  assert_int_equal(fixture_int(f, "SELECT count(*) FROM service_bookings"),
                   before);

  fixture_invalid(f, &book_tool,
                  "{'vin': '4T1B11HK8KU123456', 'service': 'oil change', "
                  "'customer_name': 'Al', 'slot_id': 99}",
                  "'slot_id'");
  fixture_invalid(f, &book_tool,
                  "{'vin': '4T1B11HK8KU123456', 'service': 'oil change', "
                  "'customer_name': 'Al', 'slot_id': 4, 'dealership': "
                  "'ns-stpaul'}",
                  "slot 4 is at ns-minneapolis");
  fixture_invalid(f, &book_tool,
                  "{'vin': '4T1B11HK8KU123456', 'customer_name': 'Al'}",
                  "'service'");
  fixture_invalid(f, &book_tool, "{'vin': '4T1B11HK8KU123456', 'service': 'x'}",
                  "'customer_name'");
  fixture_invalid(f, &book_tool,
                  "{'vin': '4T1B11HK8KU123450', 'service': 'x', "
                  "'customer_name': 'Al'}",
                  "argument 'vin'");
  /* a slot id given is never "absent", whatever its value */
  fixture_invalid(f, &book_tool,
                  "{'vin': '4T1B11HK8KU123456', 'service': 'oil change', "
                  "'customer_name': 'Al', 'slot_id': -5}",
                  "'slot_id' must be a slot id (1 or more), not -5");
  fixture_invalid(f, &book_tool,
                  "{'vin': '4T1B11HK8KU123456', 'service': 'oil change', "
                  "'customer_name': 'Al', 'slot_id': 0}",
                  "'slot_id' must be a slot id");
  /* a job longer than its slot would hold the bay past the next booking */
  fixture_invalid(f, &book_tool,
                  "{'vin': '4T1B11HK8KU123456', 'service': 'rotor "
                  "replacement', 'customer_name': 'Al', 'slot_id': 4}",
                  "slot 4 is 60 minutes, shorter than the 2.0-hour "
                  "(120-minute) labor estimate");
  assert_int_equal(fixture_int(f, "SELECT count(*) FROM service_bookings"),
                   before);
  /* no slot given: the first free one long enough (slot 5, 90 minutes) */
  r = fixture_call(f, &book_tool,
                   "{'vin': '4T1B11HK8KU123456', 'service': 'brake pads', "
                   "'customer_name': 'Al', 'dealership': 'ns-minneapolis'}",
                   NULL);
  if (!r) fail_msg("%s", f->error);
  assert_int_equal(json_integer_value(
                       json_object_get(json_object_get(r, "slot"), "slot_id")),
                   5);
  json_decref(r);
  assert_null(fixture_call(f, &book_tool,
                           "{'vin': '4T1B11HK8KU123456', 'service': 'rotor', "
                           "'customer_name': 'Al', 'dealership': "
                           "'ns-minneapolis'}",
                           NULL));
  assert_int_equal(f->outcome, DL_FAILED);
  assert_non_null(strstr(f->error, "no free service slot of 120 minutes"));

  /* blank is absent; the caps name the argument and the limit */
  fixture_invalid(f, &book_tool,
                  "{'vin': '4T1B11HK8KU123456', 'service': '  ', "
                  "'customer_name': 'Al'}",
                  "'service' is required");
  fixture_invalid(f, &book_tool,
                  "{'vin': '4T1B11HK8KU123456', 'service': 'oil change', "
                  "'customer_name': '\\t '}",
                  "'customer_name' is required");
  fixture_invalid(f, &book_tool,
                  "{'vin': '4T1B11HK8KU123456', 'service': 'oil change', "
                  "'customer_name': 'Al', 'phone': "
                  "'0123456789012345678901234567890123456789012345678901234567"
                  "890123456789'}",
                  "'phone' is 70 bytes, longer than the 64 allowed");
}

/* The runtime's idempotency through dl_run_tool: the same key twice books
 * once and answers the same; the key with other arguments is refused. */
static void test_booking_idempotent(void **state) {
  fixture *f = *state;
  const char *args = "{'vin': '4T1B11HK8KU123456', 'service': 'oil change', "
                     "'customer_name': 'Dana Lee'}";
  json_t *a = fixture_call(f, &book_tool, args, "run-1/book/1");
  if (!a) fail_msg("%s", f->error);
  json_t *b = fixture_call(f, &book_tool, args, "run-1/book/1");
  if (!b) fail_msg("%s", f->error);
  assert_json_eq(a, b);
  assert_int_equal(fixture_int(f, "SELECT count(*) FROM service_bookings "
                                  "WHERE customer_name = 'Dana Lee' AND "
                                  "service = 'oil change' AND id <> "
                                  "'SV-1001'"),
                   1);
  assert_null(fixture_call(f, &book_tool,
                           "{'vin': '4T1B11HK8KU123456', 'service': 'oil "
                           "change', 'customer_name': 'Dana Leigh'}",
                           "run-1/book/1"));
  assert_int_equal(f->outcome, DL_INVALID_ARGS);
  assert_non_null(strstr(f->error, "other arguments"));
  /* another key books again */
  json_t *c = fixture_call(f, &book_tool, args, "run-1/book/2");
  assert_non_null(c);
  assert_string_not_equal(str(c, "booking_id"), str(a, "booking_id"));
  /* a failed call records nothing: the key stays usable */
  assert_null(fixture_call(f, &book_tool,
                           "{'vin': '4T1B11HK8KU123456', 'service': 'x', "
                           "'customer_name': 'Al', 'slot_id': 1}",
                           "run-2/book/1"));
  assert_int_equal(fixture_int(f, "SELECT count(*) FROM idempotency WHERE "
                                  "key = 'run-2/book/1'"),
                   0);
  json_decref(a);
  json_decref(b);
  json_decref(c);
}

/* Only dealer-data's files are tenants: another SQLite file in the data
 * directory (switchboard's own store) or no file is "unknown tenant",
 * without the server's paths. */
static void test_unknown_tenants(void **state) {
  fixture *f = *state;
  char other[160];
  snprintf(other, sizeof other, "%s/switchboard.db", f->dir);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "CREATE TABLE secrets (v TEXT);", NULL,
                                NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  static const char *const tenants[] = {"switchboard", "nobody"};
  for (size_t i = 0; i < 2; i++) {
    json_t *args = J("{}"), *r = NULL;
    char error[512];
    dl_outcome o = dl_run_tool(&slots_tool, f->dir, tenants[i], NULL, args,
                               NULL, &r, error, sizeof error);
    json_decref(args);
    assert_int_equal(o, DL_FAILED);
    assert_null(r);
    char want[64];
    snprintf(want, sizeof want, "unknown tenant %s", tenants[i]);
    assert_string_equal(error, want);
  }
  test_sqlite_files_remove(other);
  /* the tenant's own file is marked */
  assert_int_equal(fixture_int(f, "PRAGMA application_id"), DL_APPLICATION_ID);
}

static void test_labor_hours(void **state) {
  (void)state;
  assert_true(svc_labor_hours(NULL, "Oil Change") == 0.5);
  assert_true(svc_labor_hours(NULL, "brake inspection") == 0.5);
  assert_true(svc_labor_hours(NULL, "replace brake pads") == 1.5);
  assert_true(svc_labor_hours(NULL, "recall 24V-051") == 1.0);
  assert_true(svc_labor_hours(NULL, "mystery noise") == 1.0);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vin),
      cmocka_unit_test(test_labor_hours),
      cmocka_unit_test_setup_teardown(test_recalls, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_unknown_tenants, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_slots, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_booking, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_booking_idempotent, fixture_setup,
                                      fixture_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
