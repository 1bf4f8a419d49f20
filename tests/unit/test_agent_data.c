/* test_agent_data.c: dealer-data's generator (agents/data/).
 *
 * The demo depends on four promises: the same data on every run, valid
 * VINs, no VIN shared by two tenants (the isolation tests rely on it) and
 * the advertised size (500 cars per dealership, 20 days of service slots).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "data/catalog.h"
#include "data/generate.h"

static char dir_a[64], dir_b[64];

static int setup(void **state) {
  (void)state;
  snprintf(dir_a, sizeof dir_a, "/tmp/sb-data-a-XXXXXX");
  snprintf(dir_b, sizeof dir_b, "/tmp/sb-data-b-XXXXXX");
  if (!mkdtemp(dir_a) || !mkdtemp(dir_b)) return -1;
  for (size_t i = 0; i < dl_data_tenants_len; i++) {
    sb_error err = {0};
    if (dl_data_generate(dir_a, dl_data_tenants[i], NULL, &err) != 0 ||
        dl_data_generate(dir_b, dl_data_tenants[i], NULL, &err) != 0) {
      fprintf(stderr, "generate: %s\n", err.msg);
      return -1;
    }
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir_a, dir_b);
  return system(cmd) == 0 ? 0 : -1;
}

static sqlite3 *open_db(const char *dir, const char *tenant) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s.db", dir, tenant);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                   SQLITE_OK);
  return db;
}

static long count(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  long n = (long)sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

/* BLAKE2b of every row of every table, in primary-key order. */
static void hash_tables(sqlite3 *db, unsigned char out[32]) {
  static const char *const tables[] = {
      "tenant",        "dealerships",       "vehicles",
      "service_slots", "customer_vehicles", "recalls",
      "parts",         "part_stock",        "policies"};
  crypto_generichash_state h;
  crypto_generichash_init(&h, NULL, 0, 32);
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY 1, 2", tables[t]);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    long rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(st); c++) {
        const unsigned char *v = sqlite3_column_text(st, c);
        crypto_generichash_update(&h, v ? v : (const unsigned char *)"\1",
                                  v ? strlen((const char *)v) + 1 : 1);
      }
      rows++;
    }
    sqlite3_finalize(st);
    assert_true(rows > 0);
  }
  crypto_generichash_final(&h, out, 32);
}

static void test_generator_is_deterministic(void **state) {
  (void)state;
  for (size_t i = 0; i < dl_data_tenants_len; i++) {
    unsigned char a[32], b[32];
    sqlite3 *da = open_db(dir_a, dl_data_tenants[i]);
    sqlite3 *db = open_db(dir_b, dl_data_tenants[i]);
    hash_tables(da, a);
    hash_tables(db, b);
    assert_memory_equal(a, b, 32);
    sqlite3_close(da);
    sqlite3_close(db);
  }
  /* and the two tenants are different worlds */
  unsigned char ns[32], lk[32];
  sqlite3 *d1 = open_db(dir_a, "north-star"), *d2 = open_db(dir_a, "lakeside");
  hash_tables(d1, ns);
  hash_tables(d2, lk);
  assert_memory_not_equal(ns, lk, 32);
  sqlite3_close(d1);
  sqlite3_close(d2);
}

static void test_vin_rules(void **state) {
  (void)state;
  /* a published example of a valid VIN and the same with one digit off */
  assert_true(dl_vin_valid("1M8GDM9AXKP042788"));
  assert_true(dl_vin_valid("1m8gdm9axkp042788"));
  assert_false(dl_vin_valid("1M8GDM9A1KP042788"));
  assert_false(dl_vin_valid("1M8GDM9AXKP04278"));  /* 16 characters */
  assert_false(dl_vin_valid("1M8GDM9AXKP04278O")); /* O is never used */
  assert_int_equal(dl_vin_year_code(2024), 'R');
  assert_int_equal(dl_vin_year_code(2027), 'V');
  assert_int_equal(dl_vin_year_code(2031), '1');
}

static void test_every_vin_is_valid(void **state) {
  (void)state;
  for (size_t i = 0; i < dl_data_tenants_len; i++) {
    sqlite3 *db = open_db(dir_a, dl_data_tenants[i]);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT vin, year, make FROM vehicles UNION ALL "
                           "SELECT vin, year, make FROM customer_vehicles",
                           -1, &st, NULL),
        SQLITE_OK);
    long n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *vin = (const char *)sqlite3_column_text(st, 0);
      if (!dl_vin_valid(vin)) fail_msg("invalid VIN %s", vin);
      assert_int_equal(vin[9], dl_vin_year_code(sqlite3_column_int(st, 1)));
      /* the WMI is the make's */
      const char *make = (const char *)sqlite3_column_text(st, 2);
      int wmi_ok = 0;
      for (size_t m = 0; m < dl_models_len; m++)
        if (strcmp(dl_models[m].make, make) == 0 &&
            strncmp(dl_models[m].wmi, vin, 3) == 0)
          wmi_ok = 1;
      if (!wmi_ok) fail_msg("VIN %s has no WMI of %s", vin, make);
      n++;
    }
    sqlite3_finalize(st);
    assert_true(n >= 1600);
    sqlite3_close(db);
  }
}

static void test_tenants_are_disjoint(void **state) {
  (void)state;
  char path[256];
  snprintf(path, sizeof path, "%s/lakeside.db", dir_a);
  sqlite3 *db = open_db(dir_a, "north-star");
  char *sql = sqlite3_mprintf("ATTACH %Q AS other", path);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_free(sql);
  assert_int_equal(count(db, "SELECT count(*) FROM vehicles v JOIN "
                             "other.vehicles o USING (vin)"),
                   0);
  assert_int_equal(count(db, "SELECT count(*) FROM dealerships d JOIN "
                             "other.dealerships o USING (id)"),
                   0);
  assert_int_equal(count(db, "SELECT count(*) FROM customer_vehicles v JOIN "
                             "other.customer_vehicles o USING (vin)"),
                   0);
  sqlite3_close(db);
}

static void test_sizes_and_shapes(void **state) {
  (void)state;
  for (size_t i = 0; i < dl_data_tenants_len; i++) {
    sqlite3 *db = open_db(dir_a, dl_data_tenants[i]);
    assert_int_equal(count(db, "SELECT count(*) FROM dealerships"), 3);
    assert_int_equal(count(db, "SELECT count(*) FROM (SELECT dealership_id, "
                               "count(*) n FROM vehicles GROUP BY 1) "
                               "WHERE n = 500"),
                     3);
    /* new cars only of the dealership's own brands */
    assert_int_equal(count(db, "SELECT count(*) FROM vehicles v JOIN "
                               "dealerships d ON d.id = v.dealership_id "
                               "WHERE v.condition = 'new' AND NOT EXISTS "
                               "(SELECT 1 FROM json_each(d.brands) "
                               "WHERE value = v.make)"),
                     0);
    assert_true(count(db, "SELECT count(*) FROM vehicles WHERE fuel = "
                          "'electric'") > 20);
    assert_true(count(db, "SELECT count(*) FROM vehicles WHERE fuel = "
                          "'hybrid'") > 50);
    /* 20 working days (no Sunday) x 8 hours x 4 bays, ~30% booked */
    assert_int_equal(count(db, "SELECT count(*) FROM service_slots"), 3 * 640);
    assert_int_equal(count(db, "SELECT count(*) FROM service_slots WHERE "
                               "strftime('%w', substr(starts_at, 1, 10)) "
                               "= '0'"),
                     0);
    long booked = count(db, "SELECT count(*) FROM service_slots WHERE booked");
    assert_true(booked > 1920 / 5 && booked < 1920 * 2 / 5);
    assert_int_equal(count(db, "SELECT count(*) FROM service_slots WHERE "
                               "starts_at < '2027-01-04T08:00'"),
                     0);
    assert_int_equal(count(db, "SELECT count(*) FROM service_slots WHERE "
                               "starts_at = '2027-01-04T08:00'"),
                     3 * 4);
    assert_true(count(db, "SELECT count(*) FROM customer_vehicles") >= 190);
    assert_true(count(db, "SELECT count(*) FROM customer_vehicles c JOIN "
                          "recalls r ON c.make = r.make AND c.model = "
                          "r.model AND c.year BETWEEN r.year_from AND "
                          "r.year_to") >= 20);
    assert_true(count(db, "SELECT count(*) FROM recalls") >= 25);
    assert_true(count(db, "SELECT count(*) FROM parts") >= 300);
    assert_true(count(db, "SELECT count(*) FROM part_stock WHERE quantity "
                          "= 0") > 0);
    assert_int_equal(count(db, "SELECT count(*) FROM policies WHERE key IN "
                               "('calendar.start', 'finance.apr', "
                               "'finance.bands', 'finance.terms', "
                               "'finance.min_down_pct', 'finance.max_amount', "
                               "'finance.taxable_fees', 'test_drive', "
                               "'service.labor_rate', 'parts.lead_days')"),
                     10);
    sqlite3_close(db);
  }
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vin_rules),
      cmocka_unit_test(test_generator_is_deterministic),
      cmocka_unit_test(test_every_vin_is_valid),
      cmocka_unit_test(test_tenants_are_disjoint),
      cmocka_unit_test(test_sizes_and_shapes),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
