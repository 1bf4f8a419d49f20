/* test_agent_parts.c: dealer-parts' logic (agents/parts/): ranking by
 * query words then fit, stock per dealership, availability and lead days,
 * orders (reserved from stock, decremented, or ordered) and idempotent
 * ordering through dl_run_tool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "parts/parts.h"
#include "test_agent_fixture.h"

static const dl_tool find_tool = {.name = "find_parts", .run = parts_find};
static const dl_tool avail_tool = {.name = "part_availability",
                                   .run = parts_availability};
static const dl_tool order_tool = {
    .name = "order_part", .mutating = 1, .run = parts_order};

/* The part numbers of a find_parts answer, comma-separated. */
static void part_numbers(json_t *r, char *out, size_t len) {
  size_t i, n = 0;
  json_t *p;
  out[0] = '\0';
  json_array_foreach(json_object_get(r, "parts"), i, p) n += (size_t)snprintf(
      out + n, len - n, "%s%s", i ? "," : "", str(p, "part_number"));
}

static void test_find_ranking(void **state) {
  fixture *f = *state;
  char got[256];
  /* a 2019 Camry by VIN: 3 words match the Camry pad set; the Camry rotor
   * (2) ranks above the make-wide rear pads (2); the oil filter (0), the
   * RAV4 and Honda parts are out */
  json_t *r = fixture_call(
      f, &find_tool,
      "{'query': 'front brake pads', 'vin': '4T1B11HK8KU123456'}", NULL);
  if (!r) fail_msg("%s", f->error);
  part_numbers(r, got, sizeof got);
  assert_string_equal(got, "TOY-BP-F-CAM,TOY-BR-F-CAM,TOY-BP-R-GEN");
  assert_json_is(json_object_get(r, "vehicle"),
                 J("{'vin': '4T1B11HK8KU123456', 'year': 2019, 'make': "
                   "'Toyota', 'model': 'Camry', 'decoded': false}"));
  json_t *p = json_array_get(json_object_get(r, "parts"), 0);
  assert_string_equal(str(p, "name"), "Front Brake Pad Set");
  assert_string_equal(str(p, "fits"), "2018-2024 Toyota Camry");
  assert_true(fabs(num(p, "price") - 89.99) < 1e-9);
  assert_true(fabs(num(p, "labor_hours") - 1.5) < 1e-9);
  assert_int_equal(json_integer_value(json_object_get(p, "in_stock")), 7);
  assert_json_is(json_object_get(p, "stock"),
                 J("[{'dealership_id': 'ns-minneapolis', 'quantity': 2},"
                   " {'dealership_id': 'ns-stpaul', 'quantity': 5}]"));
  p = json_array_get(json_object_get(r, "parts"), 2);
  assert_string_equal(str(p, "fits"), "2015-2024 Toyota (all models)");
  json_decref(r);

  /* in_stock at one dealership */
  r = fixture_call(f, &find_tool,
                   "{'query': 'brake pad', 'make': 'toyota', 'model': "
                   "'Camry', 'year': 2020, 'dealership': 'ns-stpaul'}",
                   NULL);
  part_numbers(r, got, sizeof got);
  assert_string_equal(got, "TOY-BP-F-CAM,TOY-BP-R-GEN,TOY-BR-F-CAM");
  assert_int_equal(
      json_integer_value(json_object_get(
          json_array_get(json_object_get(r, "parts"), 0), "in_stock")),
      5);
  assert_int_equal(
      json_integer_value(json_object_get(
          json_array_get(json_object_get(r, "parts"), 1), "in_stock")),
      0);
  json_decref(r);

  /* no query: the fit alone, model-specific first; category; limit */
  r = fixture_call(f, &find_tool,
                   "{'make': 'Toyota', 'model': 'RAV4', 'year': 2021, "
                   "'category': 'filters'}",
                   NULL);
  part_numbers(r, got, sizeof got);
  assert_string_equal(got, "TOY-CAB-RAV,TOY-OF-GEN");
  json_decref(r);
  r = fixture_call(f, &find_tool, "{'query': 'brakes', 'limit': 2}", NULL);
  assert_int_equal(json_array_size(json_object_get(r, "parts")), 2);
  json_decref(r);
  /* out of the year range */
  r = fixture_call(f, &find_tool, "{'make': 'Toyota', 'year': 2012}", NULL);
  part_numbers(r, got, sizeof got);
  assert_string_equal(got, "TOY-OF-GEN");
  json_decref(r);

  fixture_invalid(f, &find_tool, "{'vin': '11111111111111111'}",
                  "the make of 11111111111111111 is unknown");
  fixture_invalid(f, &find_tool, "{'limit': 0}", "'limit'");
  fixture_invalid(f, &find_tool, "{'year': 20}", "'year'");
}

/* A query with no word to search for finds nothing, and says why,
 * rather than every part of the vehicle. */
static void test_find_without_words(void **state) {
  fixture *f = *state;
  static const char *const queries[] = {
      "{'query': '\u30d6\u30ec\u30fc\u30ad', 'make': 'Toyota'}",
      "{'query': 'the part for my', 'make': 'Toyota'}",
      "{'query': '\u00e9\u00e8 ! ?', 'make': 'Toyota'}",
  };
  for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
    json_t *r = fixture_call(f, &find_tool, queries[i], NULL);
    if (!r) fail_msg("%s", f->error);
    assert_int_equal(json_integer_value(json_object_get(r, "count")), 0);
    assert_int_equal(json_array_size(json_object_get(r, "parts")), 0);
    assert_non_null(strstr(str(r, "message"), "no searchable word"));
    json_decref(r);
  }
  /* no query, or a blank one: every part that fits, as before */
  json_t *r = fixture_call(f, &find_tool, "{'query': ' ', 'make': 'Toyota'}",
                           NULL);
  if (!r) fail_msg("%s", f->error);
  assert_true(json_integer_value(json_object_get(r, "count")) > 0);
  json_decref(r);
}

static void test_availability(void **state) {
  fixture *f = *state;
  json_t *r =
      fixture_call(f, &avail_tool, "{'part_number': 'TOY-BP-F-CAM'}", NULL);
  if (!r) fail_msg("%s", f->error);
  assert_int_equal(json_integer_value(json_object_get(r, "total")), 7);
  assert_true(json_is_true(json_object_get(r, "in_stock")));
  assert_int_equal(json_integer_value(json_object_get(r, "lead_days")), 0);
  assert_string_equal(str(r, "ready_by"), "2027-01-04");
  json_decref(r);
  r = fixture_call(f, &avail_tool,
                   "{'part_number': 'TOY-BP-R-GEN', 'dealership': 'St Paul'}",
                   NULL);
  assert_string_equal(str(r, "dealership"), "ns-stpaul");
  assert_int_equal(json_integer_value(json_object_get(r, "quantity")), 0);
  assert_false(json_is_true(json_object_get(r, "in_stock")));
  assert_int_equal(json_integer_value(json_object_get(r, "lead_days")), 3);
  assert_string_equal(str(r, "ready_by"), "2027-01-07");
  json_decref(r);
  r = fixture_call(f, &avail_tool, "{'part_number': 'TOY-BR-F-CAM'}", NULL);
  assert_int_equal(json_integer_value(json_object_get(r, "total")), 0);
  assert_int_equal(json_array_size(json_object_get(r, "stock")), 0);
  json_decref(r);
  /* the group's lead days */
  fixture_exec(f, "UPDATE policies SET value = '{\"in_stock\": 1, \"order\": "
                  "10}' WHERE key = 'parts.lead_days'");
  r = fixture_call(f, &avail_tool, "{'part_number': 'TOY-BR-F-CAM'}", NULL);
  assert_string_equal(str(r, "ready_by"), "2027-01-14");
  json_decref(r);
  fixture_invalid(f, &avail_tool, "{'part_number': 'NOPE'}",
                  "no part \"NOPE\"");
  fixture_invalid(f, &avail_tool, "{}", "'part_number'");
}

static void test_order(void **state) {
  fixture *f = *state;
  /* no dealership: the one with enough stock (St Paul has 5) */
  json_t *r = fixture_call(f, &order_tool,
                           "{'part_number': 'TOY-BP-F-CAM', 'quantity': 3, "
                           "'vin': '4T1B11HK8KU123456', 'customer_name': "
                           "'Dana Lee'}",
                           NULL);
  if (!r) fail_msg("%s", f->error);
  assert_string_equal(str(r, "order_id"), "PO-5001");
  assert_string_equal(str(r, "status"), "reserved");
  assert_string_equal(str(r, "dealership"), "ns-stpaul");
  assert_string_equal(str(r, "ready_by"), "2027-01-04");
  assert_true(fabs(num(r, "unit_price") - 89.99) < 1e-9);
  assert_true(fabs(num(r, "total") - 269.97) < 1e-9);
  json_decref(r);
  assert_int_equal(fixture_int(f, "SELECT quantity FROM part_stock WHERE "
                                  "part_number = 'TOY-BP-F-CAM' AND "
                                  "dealership_id = 'ns-stpaul'"),
                   2);
  /* more than any dealership has: ordered at the first, stock untouched */
  r = fixture_call(f, &order_tool,
                   "{'part_number': 'TOY-BP-F-CAM', 'quantity': 4}", NULL);
  assert_non_null(r);
  assert_string_equal(str(r, "order_id"), "PO-5002");
  assert_string_equal(str(r, "status"), "ordered");
  assert_string_equal(str(r, "dealership"), "ns-minneapolis");
  assert_string_equal(str(r, "ready_by"), "2027-01-07");
  json_decref(r);
  assert_int_equal(fixture_int(f, "SELECT sum(quantity) FROM part_stock "
                                  "WHERE part_number = 'TOY-BP-F-CAM'"),
                   4);
  /* a dealership given: its stock only */
  r = fixture_call(f, &order_tool,
                   "{'part_number': 'TOY-BP-F-CAM', 'quantity': 2, "
                   "'dealership': 'ns-minneapolis'}",
                   NULL);
  assert_string_equal(str(r, "status"), "reserved");
  json_decref(r);
  assert_int_equal(fixture_int(f, "SELECT quantity FROM part_stock WHERE "
                                  "part_number = 'TOY-BP-F-CAM' AND "
                                  "dealership_id = 'ns-minneapolis'"),
                   0);
  assert_int_equal(fixture_int(f, "SELECT count(*) FROM part_orders"), 3);

  /* A part for a customer's car must fit it: make, model, years. */
  fixture_invalid(f, &order_tool,
                  "{'part_number': 'TOY-BP-F-CAM', 'quantity': 1, "
                  "'vin': '2HGFE2F53PH500123'}",
                  "argument 'part_number': TOY-BP-F-CAM fits 2018-2024 Toyota "
                  "Camry, not the 2023 Honda Civic of VIN 2HGFE2F53PH500123 "
                  "(find_parts with the VIN lists the parts that fit)");
  fixture_invalid(f, &order_tool,
                  "{'part_number': 'TOY-CAB-RAV', 'quantity': 1, "
                  "'vin': '4T1B11HK8KU123456'}",
                  "TOY-CAB-RAV fits 2019-2024 Toyota RAV4, not the 2019 "
                  "Toyota Camry");
  assert_int_equal(fixture_int(f, "SELECT count(*) FROM part_orders"), 3);
  /* make-wide and model parts that fit are ordered */
  r = fixture_call(f, &order_tool,
                   "{'part_number': 'TOY-OF-GEN', 'quantity': 1, "
                   "'vin': '4T1B11HK8KU123456'}",
                   NULL);
  if (!r) fail_msg("%s", f->error);
  json_decref(r);
  r = fixture_call(f, &order_tool,
                   "{'part_number': 'HON-BP-F-CIV', 'quantity': 1, "
                   "'vin': '2HGFE2F53PH500123'}",
                   NULL);
  if (!r) fail_msg("%s", f->error);
  json_decref(r);
  assert_int_equal(fixture_int(f, "SELECT count(*) FROM part_orders"), 5);

  fixture_invalid(f, &order_tool, "{'part_number': 'TOY-OF-GEN'}",
                  "'quantity' is required");
  fixture_invalid(f, &order_tool,
                  "{'part_number': 'TOY-OF-GEN', 'quantity': 21}",
                  "'quantity' must be between 1 and 20");
  fixture_invalid(f, &order_tool, "{'part_number': 'X', 'quantity': 1}",
                  "'part_number'");
  fixture_invalid(f, &order_tool,
                  "{'part_number': 'TOY-OF-GEN', 'quantity': 1, 'vin': 'abc'}",
                  "argument 'vin'");
  fixture_invalid(f, &order_tool,
                  "{'part_number': 'TOY-OF-GEN', 'quantity': 1, "
                  "'customer_name': ' '}",
                  "'customer_name' must not be blank");
  fixture_invalid(f, &order_tool,
                  "{'part_number': 'TOY-OF-GEN', 'quantity': 1, 'query': "
                  "'x', 'dealership': '"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxx'}",
                  "'dealership' is 204 bytes, longer than the 200 allowed");
  assert_int_equal(fixture_int(f, "SELECT count(*) FROM part_orders"), 5);
}

static void test_order_idempotent(void **state) {
  fixture *f = *state;
  const char *args = "{'part_number': 'TOY-OF-GEN', 'quantity': 5}";
  json_t *a = fixture_call(f, &order_tool, args, "run-7/parts/1");
  if (!a) fail_msg("%s", f->error);
  json_t *b = fixture_call(f, &order_tool, args, "run-7/parts/1");
  if (!b) fail_msg("%s", f->error);
  assert_json_eq(a, b);
  assert_int_equal(fixture_int(f, "SELECT count(*) FROM part_orders"), 1);
  assert_int_equal(fixture_int(f, "SELECT quantity FROM part_stock WHERE "
                                  "part_number = 'TOY-OF-GEN' AND "
                                  "dealership_id = 'ns-minneapolis'"),
                   25);
  assert_null(fixture_call(f, &order_tool,
                           "{'part_number': 'TOY-OF-GEN', 'quantity': 6}",
                           "run-7/parts/1"));
  assert_int_equal(f->outcome, DL_INVALID_ARGS);
  assert_non_null(strstr(f->error, "other arguments"));
  assert_int_equal(fixture_int(f, "SELECT count(*) FROM part_orders"), 1);
  json_decref(a);
  json_decref(b);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_find_ranking, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_find_without_words, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_availability, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_order, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_order_idempotent, fixture_setup,
                                      fixture_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
