/* test_gateway_names.c: public names of agents' tools
 * (src/gateway/names.c): kept when short and plain, else shortened
 * deterministically, within the limit, collision-free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sodium.h>
#include <string.h>

#include "core/core.h"
#include "gateway/gateway.h"

static int plain(const char *s) {
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
      return 0;
  return 1;
}

/* The public name of pair i of `pairs` (JSON text) under max_len. */
static const char *name_of(json_t *names, const char *agent, const char *tool) {
  const char *name;
  json_t *v;
  json_object_foreach(names, name, v) {
    if (strcmp(json_string_value(json_object_get(v, "agent")), agent) == 0 &&
        strcmp(json_string_value(json_object_get(v, "tool")), tool) == 0)
      return name;
  }
  return NULL;
}

static json_t *names_for(const char *pairs_json, size_t max_len) {
  json_t *pairs = json_loads(pairs_json, 0, NULL);
  assert_non_null(pairs);
  json_t *names = sb_gateway_tool_names(pairs, max_len);
  assert_non_null(names);
  assert_int_equal(json_object_size(names), json_array_size(pairs));
  json_decref(pairs);
  return names;
}

static void test_plain_names_kept(void **state) {
  (void)state;
  json_t *names = names_for("[[\"crm\",\"lookup\"],[\"crm\",\"a.b-c_d\"]]", 0);
  assert_string_equal(name_of(names, "crm", "lookup"), "crm__lookup");
  assert_string_equal(name_of(names, "crm", "a.b-c_d"), "crm__a.b-c_d");
  json_decref(names);
}

static void test_long_and_odd_names_shortened(void **state) {
  (void)state;
  const char *pairs =
      "[[\"inventory-west\",\"search_vehicles_by_make_model_year_and_trim_"
      "level_with_dealer_stock\"],"
      "[\"inventory-west\",\"search_vehicles_by_make_model_year_and_trim_"
      "level_with_dealer_stock_2\"],"
      "[\"crm\",\"look up\"],[\"crm\",\"look\\u00e9up\"],[\"crm\",\"look_up\"]]";
  json_t *names = names_for(pairs, 0);
  const char *name;
  json_t *v;
  json_object_foreach(names, name, v) {
    assert_true(strlen(name) <= 64);
    assert_true(plain(name));
  }
  const char *a = name_of(names, "inventory-west",
                          "search_vehicles_by_make_model_year_and_trim_level_"
                          "with_dealer_stock");
  const char *b = name_of(names, "inventory-west",
                          "search_vehicles_by_make_model_year_and_trim_level_"
                          "with_dealer_stock_2");
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(strlen(a), 64);
  assert_string_not_equal(a, b); /* the same 53-character prefix */
  assert_int_equal(strncmp(a, "inventory-west__search_vehicles", 31), 0);
  /* "look up" is plain once spaces go, but must not take look_up's name */
  assert_string_equal(name_of(names, "crm", "look_up"), "crm__look_up");
  const char *spaced = name_of(names, "crm", "look up");
  assert_int_equal(strncmp(spaced, "crm__look_up_", 13), 0);
  assert_int_equal(strlen(spaced), 13 + 10);
  assert_non_null(name_of(names, "crm", "look\xc3\xa9up"));

  /* The same on every run, and whatever else is listed. */
  char *a_copy = sb_strdup(a);
  json_t *again = names_for(
      "[[\"other\",\"x\"],[\"inventory-west\",\"search_vehicles_by_make_model_"
      "year_and_trim_level_with_dealer_stock\"]]",
      0);
  assert_string_equal(name_of(again, "inventory-west",
                              "search_vehicles_by_make_model_year_and_trim_"
                              "level_with_dealer_stock"),
                      a_copy);
  sb_free(a_copy);
  json_decref(again);
  json_decref(names);
}

static void test_limit_configurable(void **state) {
  (void)state;
  json_t *names = names_for("[[\"crm\",\"lookup_customer\"]]", 16);
  const char *n = name_of(names, "crm", "lookup_customer");
  assert_int_equal(strlen(n), 16);
  assert_int_equal(strncmp(n, "crm___", 6), 0);
  json_decref(names);
  names = names_for("[[\"crm\",\"lookup_customer\"]]", 20);
  assert_string_equal(name_of(names, "crm", "lookup_customer"),
                      "crm__lookup_customer");
  json_decref(names);
}

static void test_collisions_resolved(void **state) {
  (void)state;
  /* a__b's tool c and a's tool b__c are both "a__b__c": the first keeps it */
  json_t *names = names_for("[[\"a__b\",\"c\"],[\"a\",\"b__c\"]]", 0);
  assert_string_equal(name_of(names, "a__b", "c"), "a__b__c");
  const char *other = name_of(names, "a", "b__c");
  assert_string_not_equal(other, "a__b__c");
  assert_int_equal(strncmp(other, "a__b__c_", 8), 0);
  json_decref(names);
  /* A plain name that looks like a shortened one keeps it; the shortened
   * one hashes again. */
  json_t *first = names_for("[[\"crm\",\"look up\"]]", 0);
  const char *taken = name_of(first, "crm", "look up");
  char pairs[256];
  snprintf(pairs, sizeof pairs, "[[\"crm\",\"look up\"],[\"crm\",\"%s\"]]",
           taken + 5);
  names = names_for(pairs, 0);
  assert_string_equal(name_of(names, "crm", taken + 5), taken);
  const char *moved = name_of(names, "crm", "look up");
  assert_string_not_equal(moved, taken);
  assert_int_equal(strncmp(moved, "crm__look_up_", 13), 0);
  json_decref(names);
  json_decref(first);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_names_kept),
      cmocka_unit_test(test_long_and_odd_names_shortened),
      cmocka_unit_test(test_limit_configurable),
      cmocka_unit_test(test_collisions_resolved),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
