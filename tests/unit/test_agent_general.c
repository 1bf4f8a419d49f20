/* test_agent_general.c: dealer-general's rules (agents/general/rules.c)
 * and its check of a model's answer (llm.c).
 *
 * A table of utterances, each with the intent, the entities, sentiment
 * and language the rules must find (entities not listed must be absent,
 * except where a case says it does not care). Relative dates count from
 * the demo calendar's first day, Monday 2027-01-04.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "data/catalog.h"
#include "general/general.h"
#include "test_json.h"

typedef struct utterance {
  const char *text;
  const char *intent, *sentiment, *language;
  const char *entities; /* JSON: exactly the entities expected */
} utterance;

static const utterance cases[] = {
    /* symptoms, not the word "service": still a service visit */
    {"My 2021 Ford Escape (VIN 1FMCU9G23MV123595) squeals every time I brake. "
     "Can I bring it in?", "service", "neutral", "en",
     "{\"make\":\"Ford\",\"model\":\"Escape\",\"year\":2021,"
     "\"vin\":\"1FMCU9G23MV123595\"}"},
    {"The 12V battery in my Ioniq 5 keeps dying and I am not happy about it.",
     "service", "negative", "en",
     "{\"make\":\"Hyundai\",\"model\":\"Ioniq 5\"}"},
    {"I'm looking for a Camry under $32k", "buy", "neutral", "en",
     "{\"make\":\"Toyota\",\"model\":\"Camry\",\"budget\":32000}"},
    {"Do you have a 2024 Honda CR-V in stock? Budget is 32,000 dollars.", "buy",
     "neutral", "en",
     "{\"make\":\"Honda\",\"model\":\"CR-V\",\"year\":2024,\"budget\":32000}"},
    {"need a truck under 30 grand, F-150 maybe", "buy", "neutral", "en",
     "{\"make\":\"Ford\",\"model\":\"F-150\",\"budget\":30000,\"body\":"
     "\"truck\"}"},
    {"I want to trade in my 2018 Civic for something newer", "trade_in",
     "neutral", "en", "{\"make\":\"Honda\",\"model\":\"Civic\",\"year\":2018}"},
    {"What's my Silverado worth as a trade-in?", "trade_in", "neutral", "en",
     "{\"make\":\"Chevrolet\",\"model\":\"Silverado 1500\"}"},
    {"My check engine light is on, can I book service next Tuesday?", "service",
     "neutral", "en", "{\"dates\":[\"2027-01-12\"]}"},
    {"Oil change for VIN 1M8GDM9AXKP042788 on Jan 12 please", "service",
     "neutral", "en",
     "{\"vin\":\"1M8GDM9AXKP042788\",\"dates\":[\"2027-01-12\"]}"},
    {"Is there a recall on VIN 1M8GDM9A1KP042788?", "service", "neutral", "en",
     "{}"}, /* bad check digit: no vin */
    {"Can I come in on 2027-01-12 or tomorrow for the brake noise?", "service",
     "neutral", "en", "{\"dates\":[\"2027-01-05\",\"2027-01-12\"]}"},
    {"Do you have wiper blades and a cabin filter for a 2020 RAV4?", "parts",
     "neutral", "en", "{\"make\":\"Toyota\",\"model\":\"RAV4\",\"year\":2020}"},
    {"I need the part number for a battery for my Subaru Outback", "parts",
     "neutral", "en", "{\"make\":\"Subaru\",\"model\":\"Outback\"}"},
    {"What APR can I get with a 680 credit score? I can do $450 a month.",
     "finance", "neutral", "en", "{\"monthly_budget\":450}"},
    {"Can I finance a Model Y with $500/month payments?", "finance", "neutral",
     "en", "{\"make\":\"Tesla\",\"model\":\"Model Y\",\"monthly_budget\":500}"},
    {"Call me at (612) 555-0142 or email jane.doe@example.com about the "
     "Highlander",
     "buy", "neutral", "en",
     "{\"make\":\"Toyota\",\"model\":\"Highlander\",\"phone\":\"(612) "
     "555-0142\","
     "\"email\":\"jane.doe@example.com\"}"},
    {"My name is Maria Garcia, text 651.555.0178, I want to buy a hybrid SUV",
     "buy", "neutral", "en",
     "{\"name\":\"Maria Garcia\",\"phone\":\"(651) 555-0178\",\"body\":\"suv\","
     "\"fuel\":\"hybrid\"}"},
    {"I am not happy with the repair on my Tacoma, it is still leaking",
     "service", "negative", "en", "{\"make\":\"Toyota\",\"model\":\"Tacoma\"}"},
    {"Thanks, the service was great!", "service", "positive", "en", "{}"},
    {"The salesman was rude and the wait was terrible", "other", "negative",
     "en", "{}"},
    {"It was not bad at all, I love my new Kia EV6", "other", "positive", "en",
     "{\"make\":\"Kia\",\"model\":\"EV6\"}"},
    {"Hola, quiero comprar un Toyota Corolla, mi presupuesto es de 25 mil "
     "dólares",
     "buy", "neutral", "es",
     "{\"make\":\"Toyota\",\"model\":\"Corolla\",\"budget\":25000}"},
    {"Necesito una cita para el servicio de mi carro el próximo martes",
     "service", "neutral", "es", "{\"dates\":[\"2027-01-12\"]}"},
    {"Bonjour, je cherche une voiture électrique, une Hyundai Ioniq 5", "buy",
     "neutral", "fr",
     "{\"make\":\"Hyundai\",\"model\":\"Ioniq 5\",\"fuel\":\"electric\"}"},
    {"Je voudrais un financement pour une Nissan Rogue", "finance", "neutral",
     "fr", "{\"make\":\"Nissan\",\"model\":\"Rogue\"}"},
    {"Hallo, ich suche einen gebrauchten BMW X3 bis 35.000 €", "buy", "neutral",
     "de", "{\"make\":\"BMW\",\"model\":\"X3\",\"budget\":35000}"},
    {"Ich bin nicht zufrieden mit der Reparatur, die Werkstatt war schlecht",
     "service", "negative", "de", "{}"},
    {"hello", "other", "neutral", "en", "{}"},
    {"Chevy Equinox with 40k miles?", "buy", "neutral", "en",
     "{\"make\":\"Chevrolet\",\"model\":\"Equinox\"}"},
    {"Is the Mach-E still available for a test drive on Saturday?", "buy",
     "neutral", "en",
     "{\"make\":\"Ford\",\"model\":\"Mustang "
     "Mach-E\",\"dates\":[\"2027-01-09\"]}"},
};

static void test_utterances(void **state) {
  (void)state;
  int failures = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const utterance *u = &cases[i];
    json_t *r = general_classify_rules(u->text, NULL, -1);
    assert_non_null(r);
    json_t *want = json_loads(u->entities, 0, NULL);
    assert_non_null(want);
    json_t *got = json_object_get(r, "entities");
    const char *intent = json_string_value(json_object_get(r, "intent"));
    const char *sentiment = json_string_value(json_object_get(r, "sentiment"));
    const char *lang = json_string_value(json_object_get(r, "language"));
    if (strcmp(intent, u->intent) || strcmp(sentiment, u->sentiment) ||
        strcmp(lang, u->language) || !json_equal(want, got)) {
      char *g = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
      print_error("case %zu: \"%s\"\n  want %s %s %s %s\n  got  %s\n", i,
                  u->text, u->intent, u->sentiment, u->language, u->entities,
                  g);
      sb_free(g);
      failures++;
    }
    char why[256];
    assert_int_equal(general_check_classification(r, why, sizeof why), 0);
    assert_string_equal(json_string_value(json_object_get(r, "method")),
                        "rules");
    double c = json_number_value(json_object_get(r, "confidence"));
    assert_true(c >= 0 && c <= 1);
    json_decref(want);
    json_decref(r);
  }
  assert_int_equal(failures, 0);
}

static void test_confidence_and_today(void **state) {
  (void)state;
  /* one clear cue beats a mixed message */
  json_t *clear = general_classify_rules("I want to finance it: what APR, "
                                         "what monthly payment, what loan?",
                                         NULL, -1);
  json_t *mixed = general_classify_rules("buy or finance?", NULL, -1);
  assert_true(json_number_value(json_object_get(clear, "confidence")) >
              json_number_value(json_object_get(mixed, "confidence")));
  json_decref(clear);
  json_decref(mixed);
  /* relative dates follow `today`: Thursday 2027-02-04 */
  long today;
  assert_int_equal(dl_date_parse("2027-02-04", &today), 0);
  json_t *r =
      general_classify_rules("service next Tuesday or tomorrow", "sms", today);
  json_t *dates = json_object_get(json_object_get(r, "entities"), "dates");
  assert_int_equal(json_array_size(dates), 2);
  assert_string_equal(json_string_value(json_array_get(dates, 0)),
                      "2027-02-05");
  assert_string_equal(json_string_value(json_array_get(dates, 1)),
                      "2027-02-09");
  assert_string_equal(json_string_value(json_object_get(r, "channel")), "sms");
  assert_non_null(json_string_value(json_object_get(r, "summary")));
  json_decref(r);
}

static void test_model_answers_are_checked(void **state) {
  (void)state;
  char why[256];
  static const char *const bad[] = {
      "[]",
      "{\"intent\":\"purchase\",\"confidence\":0.9,\"entities\":{},"
      "\"sentiment\":\"neutral\",\"language\":\"en\",\"summary\":\"x\"}",
      "{\"intent\":\"buy\",\"confidence\":1.5,\"entities\":{},"
      "\"sentiment\":\"neutral\",\"language\":\"en\",\"summary\":\"x\"}",
      "{\"intent\":\"buy\",\"confidence\":0.5,\"entities\":{\"year\":\"2020\"},"
      "\"sentiment\":\"neutral\",\"language\":\"en\",\"summary\":\"x\"}",
      "{\"intent\":\"buy\",\"confidence\":0.5,\"entities\":{\"dates\":"
      "[\"Jan 12\"]},\"sentiment\":\"neutral\",\"language\":\"en\","
      "\"summary\":\"x\"}",
      "{\"intent\":\"buy\",\"confidence\":0.5,\"entities\":{},"
      "\"sentiment\":\"meh\",\"language\":\"en\",\"summary\":\"x\"}",
      "{\"intent\":\"buy\",\"confidence\":0.5,\"entities\":{},"
      "\"sentiment\":\"neutral\",\"language\":\"english\",\"summary\":\"x\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *c = json_loads(bad[i], 0, NULL);
    assert_int_equal(general_check_classification(c, why, sizeof why), -1);
    json_decref(c);
  }
  /* what the rules would never say: each is refused (the call then falls
   * back to the rules with llmError) */
  static const struct {
    const char *member, *value, *why;
  } invented[] = {
      {"entities", "{'vin': 'NOT-A-VIN'}", "entities.vin"},
      {"entities", "{'vin': '1M8GDM9A1KP042788'}", "check digit"},
      {"entities", "{'budget': -50000}", "entities.budget"},
      {"entities", "{'monthly_budget': 1e300}", "entities.monthly_budget"},
      {"entities", "{'year': 99999}", "entities.year"},
      {"entities", "{'salary': 5}", "unknown entity salary"},
      {"language", "'zz'", "language"},
      {"admin", "true", "unknown member admin"},
  };
  for (size_t i = 0; i < sizeof invented / sizeof invented[0]; i++) {
    json_t *c = J("{'intent': 'buy', 'confidence': 0.5, 'entities': {}, "
                  "'sentiment': 'neutral', 'language': 'en', "
                  "'summary': 'x'}");
    json_object_set_new(c, invented[i].member, J(invented[i].value));
    if (general_check_classification(c, why, sizeof why) != -1 ||
        !strstr(why, invented[i].why))
      fail_msg("%s %s: want a refusal naming %s, got \"%s\"",
               invented[i].member, invented[i].value, invented[i].why, why);
    json_decref(c);
  }
  json_t *c = J("{'intent': 'buy', 'confidence': 0.5, 'entities': {}, "
                "'sentiment': 'neutral', 'language': 'en'}");
  char *long_summary = calloc(1, 100 * 1024 + 1);
  memset(long_summary, 's', 100 * 1024);
  json_object_set_new(c, "summary", json_string(long_summary));
  free(long_summary);
  assert_int_equal(general_check_classification(c, why, sizeof why), -1);
  assert_non_null(strstr(why, "summary is longer than 500 bytes"));
  json_decref(c);
  json_t *good = json_loads(
      "{\"intent\":\"buy\",\"confidence\":0.8,\"entities\":{\"make\":"
      "\"Toyota\",\"budget\":32000,\"dates\":[\"2027-01-12\"]},\"sentiment\":"
      "\"positive\",\"language\":\"en\",\"summary\":\"Wants a Toyota.\"}",
      0, NULL);
  assert_int_equal(general_check_classification(good, why, sizeof why), 0);
  json_decref(good);
}

/* A message longer than the cap is refused before the rules read it,
 * naming the cap; up to the cap, words of one long run (which made the
 * e-mail regex quadratic) and many money amounts classify as usual. */
static void test_long_text(void **state) {
  (void)state;
  size_t big = 200 * 1024;
  char *text = malloc(big + 1);
  assert_non_null(text);
  memset(text, 'a', big);
  text[big] = '\0';
  json_t *args = json_pack("{ss}", "text", text);
  general_args ga;
  char why[256];
  assert_int_equal(general_read_args(args, &ga, why, sizeof why), -1);
  assert_non_null(strstr(why, "16384"));
  json_decref(args);

  text[GENERAL_MAX_TEXT_BYTES] = '\0';
  args = json_pack("{ss}", "text", text);
  assert_int_equal(general_read_args(args, &ga, why, sizeof why), 0);
  json_t *r = general_classify_rules(ga.text, NULL, -1);
  assert_non_null(r);
  assert_string_equal(json_string_value(json_object_get(r, "intent")), "other");
  assert_int_equal(json_object_size(json_object_get(r, "entities")), 0);
  json_decref(r);
  json_decref(args);

  /* an address after a long run of address bytes is still found whole */
  memcpy(text + GENERAL_MAX_TEXT_BYTES - 16, "@example.com x@y", 16);
  r = general_classify_rules(text, NULL, -1);
  const char *email = json_string_value(
      json_object_get(json_object_get(r, "entities"), "email"));
  assert_non_null(email);
  assert_int_equal(strlen(email), GENERAL_MAX_TEXT_BYTES - 4);
  assert_int_equal(strcmp(email + strlen(email) - 12, "@example.com"), 0);
  json_decref(r);

  for (size_t i = 0; i + 3 <= GENERAL_MAX_TEXT_BYTES; i += 3)
    memcpy(text + i, "1k ", 3);
  r = general_classify_rules(text, NULL, -1);
  assert_non_null(r);
  json_decref(r);
  free(text);
}

/* Dates stop at 9999-12-31 instead of wrapping to year 0000. */
static void test_dates_end_in_9999(void **state) {
  (void)state;
  general_args ga;
  char why[256];
  json_t *args = json_pack("{ssss}", "text", "next monday", "today",
                           "9999-12-30");
  assert_int_equal(general_read_args(args, &ga, why, sizeof why), -1);
  assert_non_null(strstr(why, "today must be 9998-12-31 or earlier"));
  json_decref(args);
  long today;
  assert_int_equal(dl_date_parse("9999-12-30", &today), 0);
  json_t *r = general_classify_rules("next monday, tomorrow or Jan 3", NULL,
                                     today);
  json_t *dates = json_object_get(json_object_get(r, "entities"), "dates");
  assert_int_equal(json_array_size(dates), 1);
  assert_string_equal(json_string_value(json_array_get(dates, 0)),
                      "9999-12-31");
  json_decref(r);
}

static void test_email_rules(void **state) {
  (void)state;
  static const struct {
    const char *text, *email; /* NULL: none */
  } emails[] = {
      {"write to a.b+c@mail.example.org.", "a.b+c@mail.example.org"},
      {"me@host, you@x.y, them@ex.com", "them@ex.com"},
      {"@@ a@b@c.com", "b@c.com"},
      {"user@.com or user@a.c1", NULL},
      {"x@a-b.co-uk", "x@a-b.co"},
  };
  for (size_t i = 0; i < sizeof emails / sizeof emails[0]; i++) {
    json_t *r = general_classify_rules(emails[i].text, NULL, -1);
    const char *got = json_string_value(
        json_object_get(json_object_get(r, "entities"), "email"));
    if (emails[i].email ? !got || strcmp(got, emails[i].email) != 0 : got != NULL)
      fail_msg("\"%s\": email %s, want %s", emails[i].text, got ? got : "none",
               emails[i].email ? emails[i].email : "none");
    json_decref(r);
  }
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_utterances),
      cmocka_unit_test(test_confidence_and_today),
      cmocka_unit_test(test_model_answers_are_checked),
      cmocka_unit_test(test_long_text),
      cmocka_unit_test(test_email_rules),
      cmocka_unit_test(test_dates_end_in_9999),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
