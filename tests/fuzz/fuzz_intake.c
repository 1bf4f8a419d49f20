/* fuzz_intake.c: libFuzzer target for the intake agent's text parsing
 * (agents/general/: intent and entity rules, budgets, dates, phones,
 * emails, VINs, language and sentiment), and for its check of a model's
 * classification (the input read as JSON).
 *
 * Invariants: the rules always answer; the answer follows the schema the
 * agent asks its models for (general_check_classification accepts it);
 * intent, sentiment and language are from their sets; confidence is in
 * [0, 1]; a VIN entity has a valid check digit; a budget is not negative.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "data/catalog.h"
#include "general/general.h"

static void check(int cond) {
  if (!cond) abort();
}

static int one_of(const char *s, const char *const *set) {
  for (; s && *set; set++)
    if (strcmp(s, *set) == 0) return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int inited;
  if (!inited) {
    sb_core_init();
    sb_log_set_level(SB_LOG_ERROR);
    inited = 1;
  }
  if (size > 65536) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';

  json_t *c = general_classify_rules(text, "web", -1);
  check(c != NULL);
  char why[256];
  check(general_check_classification(c, why, sizeof why) == 0);
  static const char *const intents[] = {"buy", "trade_in", "service", "parts",
                                        "finance", "other", NULL};
  static const char *const sentiments[] = {"positive", "neutral", "negative",
                                           NULL};
  check(one_of(json_string_value(json_object_get(c, "intent")), intents));
  check(one_of(json_string_value(json_object_get(c, "sentiment")), sentiments));
  const char *lang = json_string_value(json_object_get(c, "language"));
  check(lang && strlen(lang) == 2);
  double conf = json_number_value(json_object_get(c, "confidence"));
  check(conf >= 0.0 && conf <= 1.0);
  json_t *e = json_object_get(c, "entities");
  check(json_is_object(e));
  const char *vin = json_string_value(json_object_get(e, "vin"));
  if (vin) check(dl_vin_valid(vin));
  json_t *budget = json_object_get(e, "budget");
  if (budget) check(json_is_number(budget) && json_number_value(budget) >= 0);
  json_decref(c);

  /* The same bytes as a model's answer: checked, never trusted. */
  json_t *answer = json_loadb((const char *)data, size, 0, NULL);
  if (answer) {
    (void)general_check_classification(answer, why, sizeof why);
    json_decref(answer);
  }
  free(text);
  return 0;
}
