/* Unit tests for src/auth/: the shape of a key and its hash (the secret
 * is never what the store keeps: the database files are searched for it),
 * and the keyring a server authenticates with: it accepts a key once
 * loaded, compares hashes with sodium_memcmp (counted through the
 * linker's --wrap), refuses a wrong secret behind a right id and an
 * expired key, and refuses a key revoked by another store handle on the
 * same file (as the CLI does) within a refresh. */
/* cmocka.h needs these first */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "core/core.h"
#include "store/store.h"
#include "test_loop.h"
#include "test_store_fixture.h"

#define DEADLINE_MS 20000

/* Every sodium_memcmp of the library comes through here (see
 * tests/CMakeLists.txt): the keyring must compare hashes with it. */
int __real_sodium_memcmp(const void *a, const void *b, size_t len);
int __wrap_sodium_memcmp(const void *a, const void *b, size_t len);
static int memcmp_calls;
int __wrap_sodium_memcmp(const void *a, const void *b, size_t len) {
  memcmp_calls++;
  return __real_sodium_memcmp(a, b, len);
}

typedef struct op {
  int done, rc;
  int64_t count;
} op;

static void on_op(void *ud, sb_store_result *res) {
  op *o = ud;
  o->done = 1;
  o->rc = res->rc;
  o->count = res->count;
}

static int await(uv_loop_t *loop, int submitted, op *o) {
  if (submitted != 0) return submitted;
  assert_true(run_until(loop, flag_set, &o->done, DEADLINE_MS));
  return o->rc;
}

typedef struct made_key {
  char key[SB_AUTH_KEY_LEN + 1];
  char id[SB_AUTH_KEY_ID_LEN + 1];
  char hash[SB_AUTH_HASH_HEX_LEN + 1];
} made_key;

static void make_key(store_fixture *f, const char *tenant, int64_t expires,
                     made_key *k) {
  assert_int_equal(sb_auth_key_generate(k->key, k->id, k->hash), 0);
  op o = {0};
  sb_store_key_args a = {.id = k->id, .tenant = tenant, .hash = k->hash,
                         .created_ms = (int64_t)sb_wall_ms(),
                         .expires_ms = expires};
  assert_int_equal(await(&f->loop, sb_store_key_create(f->st, &a, on_op, &o),
                         &o),
                   0);
}

static void make_tenant(store_fixture *f, const char *id) {
  op o = {0};
  assert_int_equal(
      await(&f->loop, sb_store_tenant_create(f->st, id, NULL, 1, on_op, &o),
            &o),
      0);
}

static int setup(void **state) {
  store_fixture *f = calloc(1, sizeof *f);
  if (store_fixture_open(f, "auth", "sb.db") != 0) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  store_fixture *f = *state;
  int rc = store_fixture_close(f);
  free(f);
  return rc;
}

static void test_key_shape(void **state) {
  (void)state;
  made_key a, b;
  assert_int_equal(sb_auth_key_generate(a.key, a.id, a.hash), 0);
  assert_int_equal(sb_auth_key_generate(b.key, b.id, b.hash), 0);
  assert_int_equal(strlen(a.key), SB_AUTH_KEY_LEN);
  assert_memory_equal(a.key, "sb_", 3);
  assert_string_not_equal(a.key, b.key);
  assert_string_not_equal(a.id, b.id);
  char id[SB_AUTH_KEY_ID_LEN + 1];
  assert_int_equal(sb_auth_key_parse(a.key, id), 1);
  assert_string_equal(id, a.id);
  /* the hash is of the key, not the key */
  char hex[SB_AUTH_HASH_HEX_LEN + 1];
  sb_auth_key_hash_hex(a.key, hex);
  assert_string_equal(hex, a.hash);
  assert_null(strstr(a.hash, a.key + 4 + SB_AUTH_KEY_ID_LEN));
  /* not keys */
  assert_int_equal(sb_auth_key_parse("a-config-token-of-32-characters!", id), 0);
  assert_int_equal(sb_auth_key_parse(NULL, id), 0);
  char bad[SB_AUTH_KEY_LEN + 1];
  memcpy(bad, a.key, sizeof bad);
  bad[5] = 'Z'; /* not hex */
  assert_int_equal(sb_auth_key_parse(bad, id), 0);
  assert_int_equal(sb_auth_key_id_valid("0123456789ab"), 1);
  assert_int_equal(sb_auth_key_id_valid("0123456789AB"), 0);
}

static int file_contains(const char *path, const char *needle) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return 0;
  size_t n = strlen(needle), cap = 1 << 20, len = 0;
  char *buf = malloc(cap);
  size_t got;
  int found = 0;
  while ((got = fread(buf + len, 1, cap - len, fp)) > 0) {
    len += got;
    if (len == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
  }
  fclose(fp);
  found = len >= n && memmem(buf, len, needle, n) != NULL;
  free(buf);
  return found;
}

static void test_secret_never_stored(void **state) {
  store_fixture *f = *state;
  make_tenant(f, "acme");
  made_key k;
  make_key(f, "acme", 0, &k);
  const char *secret = k.key + 4 + SB_AUTH_KEY_ID_LEN;
  char wal[160];
  snprintf(wal, sizeof wal, "%s-wal", f->path);
  assert_true(file_contains(f->path, k.id) || file_contains(wal, k.id));
  assert_false(file_contains(f->path, secret));
  assert_false(file_contains(wal, secret));
}

typedef struct wait_tenant {
  sb_auth_keyring *kr;
  const char *key;
  int want_null;
} wait_tenant;

static int tenant_is(void *ud) {
  wait_tenant *w = ud;
  const char *t =
      sb_auth_keyring_tenant(w->kr, w->key, (int64_t)sb_wall_ms(), NULL);
  return w->want_null ? t == NULL : t != NULL;
}

static int loaded(void *ud) { return sb_auth_keyring_loads(ud) > 0; }

static void count_first_load(void *ud) { (*(int *)ud)++; }

static void test_keyring(void **state) {
  store_fixture *f = *state;
  make_tenant(f, "acme");
  made_key good, expired, later;
  make_key(f, "acme", 0, &good);
  make_key(f, "acme", (int64_t)sb_wall_ms() - 1, &expired);

  sb_error err = {0};
  int first_loads = 0;
  sb_auth_keyring_options ko = {.store = f->st, .loop = &f->loop,
                                .refresh_ms = 50,
                                .on_first_load = count_first_load,
                                .ud = &first_loads};
  sb_auth_keyring *kr = sb_auth_keyring_start(&ko, &err);
  assert_non_null(kr);
  /* The server is held until the first load is in: told once, with the
   * keys in place by then. */
  assert_int_equal(first_loads, 0);
  assert_true(run_until(&f->loop, loaded, kr, DEADLINE_MS));
  assert_int_equal(first_loads, 1);
  assert_int_equal(sb_auth_keyring_size(kr), 2);

  int64_t now = (int64_t)sb_wall_ms();
  const char *scopes = NULL;
  int calls = memcmp_calls;
  assert_string_equal(sb_auth_keyring_tenant(kr, good.key, now, &scopes),
                      "acme");
  assert_string_equal(scopes, "[]");
  assert_true(memcmp_calls > calls);

  /* the right id with a wrong secret: compared, refused */
  char wrong[SB_AUTH_KEY_LEN + 1];
  memcpy(wrong, good.key, sizeof wrong);
  wrong[SB_AUTH_KEY_LEN - 1] = wrong[SB_AUTH_KEY_LEN - 1] == 'A' ? 'B' : 'A';
  calls = memcmp_calls;
  assert_null(sb_auth_keyring_tenant(kr, wrong, now, NULL));
  assert_true(memcmp_calls > calls);
  assert_null(sb_auth_keyring_tenant(kr, expired.key, now, NULL));
  assert_null(sb_auth_keyring_tenant(kr, "not a key", now, NULL));
  assert_null(sb_auth_keyring_tenant(kr, NULL, now, NULL));

  /* a key made after the start is accepted after a refresh */
  make_key(f, "acme", 0, &later);
  wait_tenant w = {.kr = kr, .key = later.key, .want_null = 0};
  assert_true(run_until(&f->loop, tenant_is, &w, DEADLINE_MS));

  /* revoked through another handle on the file (as the CLI does) */
  uv_loop_t loop2;
  uv_loop_init(&loop2);
  sb_store *st2 = store_open_at(&loop2, f->path, 0);
  op o = {0};
  assert_int_equal(
      await(&loop2,
            sb_store_key_revoke(st2, good.id, (int64_t)sb_wall_ms(), on_op, &o),
            &o),
      0);
  sb_store_close(st2);
  assert_int_equal(loop_finish(&loop2), 0);
  uint64_t t0 = sb_now_ms();
  w = (wait_tenant){.kr = kr, .key = good.key, .want_null = 1};
  assert_true(run_until(&f->loop, tenant_is, &w, DEADLINE_MS));
  /* within a refresh and a read (generous, for a loaded machine) */
  assert_true(sb_now_ms() - t0 < 2000);
  assert_string_equal(sb_auth_keyring_tenant(kr, later.key,
                                             (int64_t)sb_wall_ms(), NULL),
                      "acme");

  assert_int_equal(first_loads, 1); /* once, however many loads after */
  sb_auth_keyring_stop(kr);
  sb_store_close(f->st);
  f->st = NULL;
  sb_auth_keyring_free(kr);
  /* reopen so the fixture's close has a store to close */
  f->st = store_open_at(&f->loop, f->path, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_key_shape),
      cmocka_unit_test_setup_teardown(test_secret_never_stored, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_keyring, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
