/* Unit tests for tenants and API keys in src/store/ (sqlite_keys.c): a
 * tenant is registered once; a key needs a registered tenant; the listing
 * never carries a hash; revoking is idempotent and names a missing key;
 * the key epoch moves with every key change, and a load at the current
 * epoch reads nothing; a revoked key leaves the load. */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "test_loop.h"
#include "test_store_fixture.h"

#define DEADLINE_MS 20000

typedef struct key_outcome {
  int done, rc;
  sb_error err;
  int64_t count, version;
  sb_store_tenant_rows tenants; /* taken */
  sb_store_key_rows keys;       /* taken */
} key_outcome;

static void on_key_outcome(void *ud, sb_store_result *res) {
  key_outcome *o = ud;
  o->done = 1;
  o->rc = res->rc;
  o->err = res->err;
  o->count = res->count;
  o->version = res->version;
  o->tenants = res->tenants;
  o->keys = res->keys;
  memset(&res->tenants, 0, sizeof res->tenants);
  memset(&res->keys, 0, sizeof res->keys);
}

static void outcome_reset(key_outcome *o) {
  sb_store_tenant_rows_clear(&o->tenants);
  sb_store_key_rows_clear(&o->keys);
  memset(o, 0, sizeof *o);
}

static int setup(void **state) {
  store_fixture *f = calloc(1, sizeof *f);
  if (store_fixture_open(f, "keys", "sb.db") != 0) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  store_fixture *f = *state;
  int rc = store_fixture_close(f);
  free(f);
  return rc;
}

static int await(store_fixture *f, int submitted, key_outcome *o) {
  if (submitted != 0) return submitted;
  assert_true(run_until(&f->loop, flag_set, &o->done, DEADLINE_MS));
  return o->rc;
}

#define HASH_A "aa00000000000000000000000000000000000000000000000000000000000000"
#define HASH_B "bb00000000000000000000000000000000000000000000000000000000000000"

static int create_key(store_fixture *f, const char *id, const char *tenant,
                      const char *hash, int64_t expires, key_outcome *o) {
  outcome_reset(o);
  sb_store_key_args a = {.id = id, .tenant = tenant, .hash = hash,
                         .scopes = "[\"ctx:read\"]", .created_ms = 1000,
                         .expires_ms = expires};
  return await(f, sb_store_key_create(f->st, &a, on_key_outcome, o), o);
}

static int load(store_fixture *f, int64_t epoch, key_outcome *o) {
  outcome_reset(o);
  return await(f, sb_store_keys_load(f->st, epoch, on_key_outcome, o), o);
}

static void test_tenants(void **state) {
  store_fixture *f = *state;
  key_outcome o = {0};
  assert_int_equal(await(f, sb_store_tenant_create(f->st, "acme", "Acme",
                                                   1000, on_key_outcome, &o),
                         &o),
                   0);
  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_tenant_create(f->st, "acme", NULL, 2000,
                                                   on_key_outcome, &o),
                         &o),
                   SB_ECONFLICT);
  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_tenant_create(f->st, "beta", NULL, 3000,
                                                   on_key_outcome, &o),
                         &o),
                   0);
  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_tenant_list(f->st, on_key_outcome, &o),
                         &o),
                   0);
  assert_int_equal(o.tenants.len, 2);
  assert_string_equal(o.tenants.items[0].id, "acme");
  assert_string_equal(o.tenants.items[0].name, "Acme");
  assert_int_equal(o.tenants.items[0].created_ms, 1000);
  assert_string_equal(o.tenants.items[1].id, "beta");
  assert_string_equal(o.tenants.items[1].name, "");
  outcome_reset(&o);
}

static void test_keys_create_list_revoke(void **state) {
  store_fixture *f = *state;
  key_outcome o = {0};
  /* an unregistered tenant has no keys */
  assert_int_equal(create_key(f, "0123456789ab", "acme", HASH_A, 0, &o),
                   SB_ENOENT);
  assert_non_null(strstr(o.err.msg, "not registered"));
  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_tenant_create(f->st, "acme", NULL, 1,
                                                   on_key_outcome, &o),
                         &o),
                   0);
  assert_int_equal(create_key(f, "0123456789ab", "acme", HASH_A, 0, &o), 0);
  assert_int_equal(create_key(f, "0123456789ab", "acme", HASH_B, 0, &o),
                   SB_ECONFLICT);
  assert_int_equal(create_key(f, "ba9876543210", "acme", HASH_B, 5000, &o), 0);

  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_key_list(f->st, "acme", on_key_outcome,
                                              &o),
                         &o),
                   0);
  assert_int_equal(o.keys.len, 2);
  assert_string_equal(o.keys.items[0].id, "0123456789ab");
  assert_string_equal(o.keys.items[0].tenant, "acme");
  assert_string_equal(o.keys.items[0].scopes, "[\"ctx:read\"]");
  assert_string_equal(o.keys.items[0].hash, ""); /* never listed */
  assert_int_equal(o.keys.items[1].expires_ms, 5000);
  assert_int_equal(o.keys.items[1].revoked_ms, 0);
  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_key_list(f->st, "other", on_key_outcome,
                                              &o),
                         &o),
                   0);
  assert_int_equal(o.keys.len, 0);

  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_key_revoke(f->st, "0123456789ab", 7000,
                                                on_key_outcome, &o),
                         &o),
                   0);
  assert_int_equal(o.count, 1);
  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_key_revoke(f->st, "0123456789ab", 8000,
                                                on_key_outcome, &o),
                         &o),
                   0);
  assert_int_equal(o.count, 0); /* already revoked: unchanged */
  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_key_revoke(f->st, "ffffffffffff", 8000,
                                                on_key_outcome, &o),
                         &o),
                   SB_ENOENT);
  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_key_list(f->st, NULL, on_key_outcome,
                                              &o),
                         &o),
                   0);
  assert_int_equal(o.keys.len, 2);
  assert_int_equal(o.keys.items[0].revoked_ms, 7000);
  outcome_reset(&o);
}

static void test_epoch_and_load(void **state) {
  store_fixture *f = *state;
  key_outcome o = {0};
  assert_int_equal(load(f, -1, &o), 0);
  int64_t epoch = o.count;
  assert_int_equal(o.version, 1);
  assert_int_equal(o.keys.len, 0);
  assert_int_equal(load(f, epoch, &o), 0);
  assert_int_equal(o.version, 0); /* unchanged: nothing read */

  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_tenant_create(f->st, "acme", NULL, 1,
                                                   on_key_outcome, &o),
                         &o),
                   0);
  assert_int_equal(load(f, epoch, &o), 0);
  assert_int_equal(o.version, 0); /* a tenant alone is not a key change */
  assert_int_equal(create_key(f, "0123456789ab", "acme", HASH_A, 0, &o), 0);
  assert_int_equal(create_key(f, "ba9876543210", "acme", HASH_B, 0, &o), 0);
  assert_int_equal(load(f, epoch, &o), 0);
  assert_int_equal(o.version, 1);
  assert_true(o.count > epoch);
  epoch = o.count;
  assert_int_equal(o.keys.len, 2);
  assert_string_equal(o.keys.items[0].hash, HASH_A); /* the load has them */

  outcome_reset(&o);
  assert_int_equal(await(f, sb_store_key_revoke(f->st, "0123456789ab", 7000,
                                                on_key_outcome, &o),
                         &o),
                   0);
  assert_int_equal(load(f, epoch, &o), 0);
  assert_int_equal(o.version, 1);
  assert_int_equal(o.keys.len, 1);
  assert_string_equal(o.keys.items[0].id, "ba9876543210");
  outcome_reset(&o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keys_create_list_revoke, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_epoch_and_load, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
