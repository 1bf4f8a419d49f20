/* test_agent_finance.c: dealer-finance's logic (agents/finance/): the
 * amortization against known values, quotes (taxes, fees, down payment
 * defaults by band, terms) and prequalification, on the fixture tenant.
 * Expected amounts were computed independently (50-digit decimals). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "finance/finance.h"
#include "test_agent_fixture.h"

static const dl_tool quote_tool = {.name = "payment_quote",
                                   .run = fin_payment_quote};
static const dl_tool prequalify_tool = {.name = "prequalify",
                                        .run = fin_prequalify};

#define assert_cents(got, want) assert_true(fabs((got) - (want)) < 0.005)

static void test_amortization(void **state) {
  (void)state;
  assert_cents(round(fin_monthly_payment(25000, 6, 60) * 100) / 100, 483.32);
  assert_cents(round(fin_monthly_payment(30000, 0, 36) * 100) / 100, 833.33);
  assert_cents(round(fin_monthly_payment(35000, 4.5, 72) * 100) / 100, 555.59);
  /* unrounded: 483.3200382... */
  assert_true(fabs(fin_monthly_payment(25000, 6, 60) - 483.3200382357) < 1e-9);
  /* the inverse gives the principal back */
  assert_true(
      fabs(fin_principal_for_payment(483.3200382357069, 6, 60) - 25000) < 1e-6);
  assert_true(fabs(fin_principal_for_payment(900, 0, 60) - 54000) < 1e-9);
}

/* A vehicle by VIN, every default: good credit (5% down, 6.99%), 60
 * months, the vehicle's dealership (6.875% tax, $125 doc, $150
 * registration), fees not taxed. */
static void test_quote_by_vin(void **state) {
  fixture *f = *state;
  json_t *r =
      fixture_call(f, &quote_tool, "{'vin': '4T1C11AK9RU654321'}", NULL);
  if (!r) fail_msg("%s", f->error);
  assert_cents(num(r, "price"), 28500);
  assert_cents(num(r, "down_payment"), 1425);
  assert_cents(num(r, "sales_tax"), 1959.38);        /* 1959.375 */
  assert_cents(num(r, "amount_financed"), 29309.38); /* 29309.375 */
  assert_cents(num(r, "monthly_payment"), 580.22);
  /* the totals are the payments the customer makes: 59 x 580.22 and a
   * last payment settling the cents each rounding left */
  assert_cents(num(r, "final_payment"), 580.39);
  assert_cents(num(r, "total_of_payments"), 59 * 580.22 + 580.39);
  assert_cents(num(r, "total_interest"), 34813.37 - 29309.38);
  assert_cents(num(r, "apr"), 6.99);
  assert_int_equal(json_integer_value(json_object_get(r, "term_months")), 60);
  assert_string_equal(str(r, "credit_band"), "good");
  assert_string_equal(str(r, "dealership"), "ns-minneapolis");
  json_t *fees = json_object_get(r, "fees");
  assert_cents(num(fees, "doc"), 125);
  assert_cents(num(fees, "registration"), 150);
  assert_string_equal(str(json_object_get(r, "vehicle"), "model"), "Camry");
  json_decref(r);
}

/* Trade-in, down payment, band, term and dealership given; then the doc
 * fee taxed (finance.taxable_fees). */
static void test_quote_taxes_and_fees(void **state) {
  fixture *f = *state;
  const char *args = "{'price': 30000, 'trade_in': 5000, 'down_payment': "
                     "3000, 'credit_band': 'excellent', 'term_months': 48, "
                     "'dealership': 'St Paul'}";
  json_t *r = fixture_call(f, &quote_tool, args, NULL);
  if (!r) fail_msg("%s", f->error);
  assert_string_equal(str(r, "dealership"), "ns-stpaul");
  assert_cents(num(r, "sales_tax"), 1968.75); /* 7.875% of 25000 */
  assert_cents(num(r, "amount_financed"), 24268.75);
  assert_cents(num(r, "monthly_payment"), 564.29);
  json_decref(r);

  fixture_exec(f, "UPDATE policies SET value = 'true' "
                  "WHERE key = 'finance.taxable_fees'");
  r = fixture_call(f, &quote_tool, args, NULL);
  assert_non_null(r);
  assert_cents(num(r, "sales_tax"), 1984.50); /* of 25000 + the $200 fee */
  assert_cents(num(r, "amount_financed"), 24284.50);
  assert_cents(num(r, "monthly_payment"), 564.66);
  assert_cents(num(r, "final_payment"), 564.77);
  assert_cents(num(r, "total_of_payments"), 47 * 564.66 + 564.77);
  assert_cents(num(r, "total_interest"), 27103.79 - 24284.50);
  json_decref(r);

  /* 0% over 36 months: total of payments = amount financed */
  fixture_exec(f, "DELETE FROM policies WHERE key = 'finance.taxable_fees'");
  r = fixture_call(f, &quote_tool,
                   "{'price': '30000', 'apr': 0, 'term_months': 36, "
                   "'credit_band': 'excellent'}",
                   NULL);
  assert_non_null(r);
  assert_string_equal(str(r, "dealership"), "ns-minneapolis"); /* the first */
  assert_cents(num(r, "down_payment"), 0);
  assert_cents(num(r, "amount_financed"), 32337.50);
  assert_cents(num(r, "monthly_payment"), 898.26);
  assert_cents(num(r, "final_payment"), 898.40); /* 35 x 898.26 + 898.40 */
  assert_cents(num(r, "total_of_payments"), 32337.50);
  assert_cents(num(r, "total_interest"), 0); /* not -0.14 */
  json_decref(r);
}

/* The down payment defaults to the band's minimum; a score gives the band;
 * a missing policy falls back to the built-in rules. */
static void test_quote_bands(void **state) {
  fixture *f = *state;
  static const struct {
    const char *args, *band;
    double down, apr;
  } cases[] = {
      {"{'price': 20000, 'credit_band': 'excellent'}", "excellent", 0, 5.49},
      {"{'price': 20000}", "good", 1000, 6.99},
      {"{'price': 20000, 'credit_band': 'FAIR'}", "fair", 2000, 10.49},
      {"{'price': 20000, 'credit_band': 'poor'}", "poor", 4000, 15.99},
      {"{'price': 20000, 'credit_score': 740}", "excellent", 0, 5.49},
      {"{'price': 20000, 'credit_score': 739}", "good", 1000, 6.99},
      {"{'price': 20000, 'credit_score': 600}", "fair", 2000, 10.49},
      {"{'price': 20000, 'credit_score': 300}", "poor", 4000, 15.99},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *r = fixture_call(f, &quote_tool, cases[i].args, NULL);
    if (!r) fail_msg("%s: %s", cases[i].args, f->error);
    assert_string_equal(str(r, "credit_band"), cases[i].band);
    assert_cents(num(r, "down_payment"), cases[i].down);
    assert_cents(num(r, "min_down_payment"), cases[i].down);
    assert_cents(num(r, "apr"), cases[i].apr);
    json_decref(r);
  }
  /* the group's own rules: a different APR and down payment for good */
  fixture_exec(f, "UPDATE policies SET value = '{\"good\": 4.0}' WHERE key = "
                  "'finance.apr'; UPDATE policies SET value = '{\"good\": 50}' "
                  "WHERE key = 'finance.min_down_pct'");
  json_t *r = fixture_call(f, &quote_tool, "{'price': 20000}", NULL);
  assert_non_null(r);
  assert_cents(num(r, "apr"), 4.0);
  assert_cents(num(r, "down_payment"), 10000);
  json_decref(r);
  /* no finance policies at all: the defaults */
  fixture_exec(f, "DELETE FROM policies WHERE key LIKE 'finance.%'");
  r = fixture_call(f, &quote_tool, "{'price': 20000, 'term_months': 84}", NULL);
  if (!r) fail_msg("%s", f->error);
  assert_cents(num(r, "apr"), 6.99);
  assert_cents(num(r, "down_payment"), 1000);
  json_decref(r);
}

static void test_quote_errors(void **state) {
  fixture *f = *state;
  fixture_invalid(f, &quote_tool, "{}", "'price' or 'vin'");
  fixture_invalid(f, &quote_tool, "{'price': -5}", "'price'");
  fixture_invalid(f, &quote_tool, "{'price': 'lots'}", "'price'");
  fixture_invalid(f, &quote_tool, "{'price': 20000, 'down_payment': 25000}",
                  "'down_payment'");
  fixture_invalid(f, &quote_tool, "{'price': 20000, 'down_payment': -1}",
                  "'down_payment'");
  fixture_invalid(f, &quote_tool, "{'price': 20000, 'trade_in': 25000}",
                  "'trade_in'");
  fixture_invalid(f, &quote_tool, "{'price': 20000, 'term_months': 66}",
                  "66 months is not offered (terms: 36, 48, 60, 72, 84)");
  fixture_invalid(f, &quote_tool, "{'price': 20000, 'term_months': 60.5}",
                  "'term_months'");
  fixture_invalid(f, &quote_tool, "{'price': 20000, 'credit_band': 'great'}",
                  "'credit_band'");
  fixture_invalid(f, &quote_tool, "{'price': 20000, 'credit_score': 900}",
                  "'credit_score'");
  fixture_invalid(f, &quote_tool, "{'price': 20000, 'apr': -1}", "'apr'");
  fixture_invalid(f, &quote_tool, "{'price': 20000, 'dealership': 'Duluth'}",
                  "no dealership \"Duluth\" in this group (ns-minneapolis, "
                  "ns-stpaul)");
  fixture_invalid(f, &quote_tool, "{'vin': '4T1C11AK0RU654321'}",
                  "argument 'vin'"); /* bad check digit */
  fixture_invalid(f, &quote_tool, "{'vin': '4T1B11HK8KU123456'}",
                  "not in this dealer group's inventory"); /* a customer's */
  /* down payment and trade-in above the price with taxes and fees */
  fixture_invalid(f, &quote_tool,
                  "{'price': 20000, 'trade_in': 10000, 'down_payment': 20000}",
                  "'down_payment'");
  /* numbers as text: plain decimals only; every number bounded */
  static const char *const not_numbers[] = {"NaN", "nan", "0x7530", " 30000",
                                            "30000 ", "1e5", "inf", "-",
                                            "1.", ".5", "1.2.3", "+5"};
  for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++) {
    char args[64];
    snprintf(args, sizeof args, "{'price': '%s'}", not_numbers[i]);
    fixture_invalid(f, &quote_tool, args, "argument 'price' must be a number");
  }
  fixture_invalid(f, &quote_tool, "{'price': 1e308}",
                  "argument 'price' must be between");
  fixture_invalid(f, &prequalify_tool, "{'monthly_income': 1e308}",
                  "argument 'monthly_income' must be between");
  fixture_invalid(f, &prequalify_tool, "{'monthly_debts': 'NaN'}",
                  "'monthly_debts' must be a number");
  json_t *q = fixture_call(f, &quote_tool, "{'price': '-0.5'}", NULL);
  assert_null(q); /* a plain decimal, refused as an amount instead */
  assert_non_null(strstr(f->error, "'price' must be a positive amount"));
  q = fixture_call(f, &quote_tool, "{'price': '30000.50'}", NULL);
  if (!q) fail_msg("%s", f->error);
  assert_cents(num(q, "price"), 30000.50);
  json_decref(q);
}

static void test_prequalify(void **state) {
  fixture *f = *state;
  /* no income: the band's maximum */
  json_t *r = fixture_call(f, &prequalify_tool, "{'credit_score': 720}", NULL);
  if (!r) fail_msg("%s", f->error);
  assert_true(json_is_true(json_object_get(r, "approved")));
  assert_string_equal(str(r, "credit_band"), "good");
  assert_cents(num(r, "max_amount"), 80000);
  assert_cents(num(r, "min_down_pct"), 5);
  assert_true(json_is_null(json_object_get(r, "max_monthly_payment")));
  assert_true(json_array_size(json_object_get(r, "reasons")) >= 2);
  json_decref(r);

  /* income: 15% of 6000 = 900 (45% less 1500 of debts = 1200) repays
   * 45462.63 over 60 months at 6.99% */
  r = fixture_call(f, &prequalify_tool,
                   "{'credit_band': 'good', 'monthly_income': 6000, "
                   "'monthly_debts': 1500, 'requested_amount': 40000}",
                   NULL);
  if (!r) fail_msg("%s", f->error);
  assert_true(json_is_true(json_object_get(r, "approved")));
  assert_cents(num(r, "max_monthly_payment"), 900);
  assert_cents(num(r, "max_amount"), 45462);
  json_decref(r);

  /* debts leave 250 a month: 11633 at 10.49%, less than requested */
  r = fixture_call(f, &prequalify_tool,
                   "{'credit_score': 600, 'monthly_income': 5000, "
                   "'monthly_debts': 2000, 'requested_amount': 20000}",
                   NULL);
  assert_non_null(r);
  assert_false(json_is_true(json_object_get(r, "approved")));
  assert_string_equal(str(r, "credit_band"), "fair");
  assert_cents(num(r, "max_monthly_payment"), 250);
  assert_cents(num(r, "max_amount"), 11633);
  json_t *reasons = json_object_get(r, "reasons");
  const char *last =
      json_string_value(json_array_get(reasons, json_array_size(reasons) - 1));
  assert_non_null(strstr(last, "more than the $11633"));
  json_decref(r);

  /* debts above what the income allows */
  r = fixture_call(f, &prequalify_tool,
                   "{'monthly_income': 3000, 'monthly_debts': 1500}", NULL);
  assert_non_null(r);
  assert_false(json_is_true(json_object_get(r, "approved")));
  assert_cents(num(r, "max_amount"), 0);
  json_decref(r);

  /* a payment of a cent a month repays nothing: no approval at $0 */
  r = fixture_call(f, &prequalify_tool,
                   "{'monthly_income': 5000, 'monthly_debts': 2249.99}", NULL);
  assert_non_null(r);
  assert_cents(num(r, "max_amount"), 0);
  assert_false(json_is_true(json_object_get(r, "approved")));
  reasons = json_object_get(r, "reasons");
  last =
      json_string_value(json_array_get(reasons, json_array_size(reasons) - 1));
  assert_non_null(strstr(last, "nothing can be financed"));
  json_decref(r);

  /* the group's affordability rule */
  fixture_exec(f, "INSERT INTO policies VALUES ('finance.affordability', "
                  "'{\"max_payment_pct\": 10, \"max_dti_pct\": 50}')");
  r = fixture_call(f, &prequalify_tool,
                   "{'credit_band': 'excellent', 'monthly_income': 6000, "
                   "'term_months': 36}",
                   NULL);
  assert_non_null(r);
  assert_cents(num(r, "max_monthly_payment"), 600);
  json_decref(r);

  fixture_invalid(f, &prequalify_tool, "{'monthly_income': -1}",
                  "'monthly_income'");
  fixture_invalid(f, &prequalify_tool, "{'requested_amount': 0}",
                  "'requested_amount'");
  fixture_invalid(f, &prequalify_tool, "{'credit_score': 100}",
                  "'credit_score'");
  fixture_invalid(f, &prequalify_tool, "{'term_months': 12}", "not offered");
  /* a score and a band that disagree: refused, naming both */
  fixture_invalid(f, &prequalify_tool,
                  "{'credit_score': 700, 'credit_band': 'poor'}",
                  "'credit_score' (700: good credit) and 'credit_band' (poor) "
                  "disagree");
  fixture_invalid(f, &quote_tool,
                  "{'price': 20000, 'credit_score': 800, 'credit_band': "
                  "'fair'}",
                  "disagree");
  r = fixture_call(f, &prequalify_tool,
                   "{'credit_score': 700, 'credit_band': 'Good'}", NULL);
  if (!r) fail_msg("%s", f->error);
  assert_string_equal(str(r, "credit_band"), "good");
  json_decref(r);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_amortization),
      cmocka_unit_test_setup_teardown(test_quote_by_vin, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_quote_taxes_and_fees, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_quote_bands, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_quote_errors, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_prequalify, fixture_setup,
                                      fixture_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
