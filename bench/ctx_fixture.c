/* ctx_fixture.c: the data behind bench/ctx_bench.c (see ctx_fixture.h).
 *
 * Message texts are stitched from a few dozen dealership sentences, one to
 * three per message, so lengths vary the way chat turns do (40 to ~350
 * bytes) without shipping a corpus.
 */
#include "ctx_fixture.h"

#include <stdio.h>
#include <string.h>

#include "core/core.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

void fx_seed(fx_rng *r, uint64_t seed) { r->state = seed; }

/* splitmix64: fast, good enough for picking fixture values. */
uint64_t fx_next(fx_rng *r) {
  uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint32_t fx_below(fx_rng *r, uint32_t n) {
  return (uint32_t)(((fx_next(r) >> 32) * (uint64_t)n) >> 32);
}

static const char *pick(fx_rng *r, const char *const *list, size_t n) {
  return list[fx_below(r, (uint32_t)n)];
}
#define PICK(r, list) pick((r), (list), N_OF(list))

static const char *const user_lines[] = {
    "Hi, I'm looking for a used SUV under thirty thousand.",
    "Do you have any hybrids on the lot right now?",
    "What's the out-the-door price on that one, including fees?",
    "Can I trade in my 2016 Civic? It has about 92k miles on it.",
    "I'd prefer something with all-wheel drive since we get a lot of snow.",
    "Is the blue one still available, or has it been sold?",
    "Could I schedule a test drive for Saturday morning?",
    "My credit score is around 720, what kind of APR could I get?",
    "Does it come with a warranty, and what does it cover?",
    "We need three rows of seats, we have three kids and a dog.",
    "How many miles are on it, and has it been in any accidents?",
    "Can you send me the Carfax report by email?",
    "I'm also due for an oil change on my current car.",
    "The check engine light came on yesterday, can someone look at it?",
    "What time does the service department open tomorrow?",
    "Is there a loaner car available while mine is in the shop?",
    "That's a bit above my budget, is there any room on the price?",
    "OK, that works for me. What do I need to bring?",
    "Thanks, that's really helpful.",
    "Can I do the paperwork online before I come in?",
};

static const char *const agent_lines[] = {
    "Happy to help! I found several SUVs in that range on our lot.",
    "We have a 2021 Toyota RAV4 Hybrid XLE with 31,000 miles listed at $27,450.",
    "The out-the-door price includes tax, title, registration and a $499 documentation fee.",
    "Yes, we accept trade-ins. Based on the details you gave, an initial estimate is $9,000 to $10,500, pending inspection.",
    "All of the vehicles I mentioned have all-wheel drive.",
    "That vehicle is still available and parked in the front row.",
    "I've reserved a test drive slot for Saturday at 10:00 AM with Jordan from our sales team.",
    "With a score around 720, current offers start near 6.4% APR for 60 months, subject to approval.",
    "It includes the remainder of the factory powertrain warranty, and we offer extended coverage as well.",
    "For three rows, take a look at the Honda Pilot and the Kia Telluride we have in stock.",
    "The vehicle history shows one owner, no reported accidents, and regular service records.",
    "I've emailed the Carfax report to the address on file.",
    "I can book an oil change for the same visit so you only make one trip.",
    "Our service department opens at 7:30 AM Monday through Saturday.",
    "A loaner is available for repairs expected to take more than four hours.",
    "Let me check with my manager about the price and get right back to you.",
    "Please bring your driver's license, proof of insurance, and the title for your trade-in.",
    "You can start the credit application online and we'll have everything ready when you arrive.",
};

static const char *const makes[] = {"Toyota", "Honda", "Ford", "Chevrolet",
                                    "Subaru", "Hyundai", "Kia", "Mazda",
                                    "Nissan", "Jeep"};
static const char *const models[] = {"RAV4", "CR-V", "Explorer", "Equinox",
                                     "Outback", "Tucson", "Telluride", "CX-5",
                                     "Rogue", "Grand Cherokee", "Camry",
                                     "Accord", "F-150", "Highlander", "Pilot"};
static const char *const trims[] = {"LE", "XLE", "EX", "EX-L", "Touring",
                                    "Limited", "SE", "SEL", "Premium", "Sport"};
static const char *const colors[] = {"Midnight Black", "Lunar Silver",
                                     "Blueprint", "Super White", "Magnetic Gray",
                                     "Ruby Flare Pearl", "Army Green"};
static const char *const statuses[] = {"available", "available", "available",
                                       "on_hold", "in_transit", "sold_pending"};
static const char *const lots[] = {"front-row", "north-lot", "service-bay",
                                   "overflow", "showroom"};
static const char *const first_names[] = {"Maria", "James", "Priya", "Chen",
                                          "Olivia", "Ahmed", "Sofia", "Daniel"};
static const char *const last_names[] = {"Garcia", "Smith", "Patel", "Wang",
                                         "Johnson", "Hassan", "Rossi", "Kim"};
static const char *const steps[] = {"greeting", "needs_assessment",
                                    "vehicle_search", "vehicle_presentation",
                                    "trade_in_appraisal", "financing",
                                    "test_drive_booking", "follow_up"};

/* One to three sentences of the speaker's lines. */
static char *message_text(fx_rng *r, int from_user) {
  sb_buf b = SB_BUF_INIT;
  int n = 1 + (int)fx_below(r, 3);
  for (int i = 0; i < n; i++) {
    if (i) sb_buf_append_str(&b, " ");
    sb_buf_append_str(&b, from_user ? PICK(r, user_lines) : PICK(r, agent_lines));
  }
  return b.data; /* sb_malloc'd; caller frees */
}

static json_t *message(fx_rng *r, int from_user, int64_t ms) {
  char ts[32];
  sb_time_format(ms, ts);
  char *text = message_text(r, from_user);
  json_t *m = json_object();
  json_object_set_new(m, "role", json_string(from_user ? "user" : "assistant"));
  json_object_set_new(m, "content", json_string(text ? text : ""));
  json_object_set_new(m, "timestamp", json_string(ts));
  if (!from_user) json_object_set_new(m, "agentId", json_string("sales-agent"));
  sb_free(text);
  return m;
}

static json_t *hex_string(fx_rng *r, const char *prefix, int digits) {
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%s", prefix);
  for (int i = 0; i < digits && n < (int)sizeof buf - 1; i++)
    buf[n++] = "0123456789abcdef"[fx_below(r, 16)];
  buf[n] = '\0';
  return json_string(buf);
}

static json_t *dealership(fx_rng *r) {
  char id[32];
  snprintf(id, sizeof id, "dlr-%03u", fx_below(r, 400));
  return json_pack("{s:s, s:s, s:s, s:s}", "id", id, "name",
                   "Riverside Auto Group", "timezone", "America/Chicago",
                   "phone", "+1-555-0142");
}

static json_t *profile(fx_rng *r) {
  const char *first = PICK(r, first_names), *last = PICK(r, last_names);
  char email[96], phone[32];
  snprintf(email, sizeof email, "%s.%s%u@example.com", first, last,
           fx_below(r, 1000));
  snprintf(phone, sizeof phone, "+1-555-%04u", fx_below(r, 10000));
  return json_pack("{s:s, s:s, s:s, s:s, s:s}", "firstName", first, "lastName",
                   last, "email", email, "phone", phone, "zip", "60614");
}

json_t *fx_population_input(fx_rng *r, uint64_t n) {
  int64_t now = (int64_t)sb_wall_ms();
  char ts[32];
  sb_time_format(now - 86400000LL * (1 + fx_below(r, 90)), ts);
  json_t *messages = json_array();
  json_array_append_new(
      messages,
      json_pack("{s:s, s:s}", "role", "system", "content",
                "You are the sales assistant of Riverside Auto Group. Be "
                "concise, quote prices from inventory only, and never promise "
                "financing terms before a credit application."));
  json_array_append_new(messages, message(r, 1, now));
  json_array_append_new(messages, message(r, 0, now));
  const char *make = PICK(r, makes), *model = PICK(r, models);
  json_t *data = json_pack(
      "{s:{s:o, s:s, s:{s:s, s:s, s:i}, s:s, s:s},"
      " s:{s:s, s:[], s:{s:s, s:s}, s:{}, s:[]},"
      " s:{s:o, s:o, s:{s:s, s:s, s:[s,s], s:i, s:s}, s:[s], s:[{s:s, s:s, s:s}]},"
      " s:{s:o, s:{}, s:{}, s:{}}}",
      "conversation", "messages", messages, "intent", "vehicle_purchase",
      "entities", "make", make, "model", model, "budget",
      20000 + 1000 * (int)fx_below(r, 25), "sentiment", "neutral", "language",
      "en",
      "workflow", "currentStep", "greeting", "completedSteps", "variables",
      "leadSource", "website_chat", "campaign", "spring-sales-event",
      "outputs", "errors",
      "user", "id", hex_string(r, "user-", 12), "profile", profile(r),
      "preferences", "contactMethod", "sms", "language", "en", "makes", make,
      PICK(r, makes), "maxPrice", 22000 + 1000 * (int)fx_below(r, 20),
      "bodyStyle", "suv", "permissions", "profile:read", "history",
      "timestamp", ts, "summary", "Asked about certified pre-owned SUVs",
      "agentId", "sales-agent",
      "business", "dealership", dealership(r), "inventory", "policies",
      "integrations");
  char wf[40];
  snprintf(wf, sizeof wf, "wf-sales-%llu", (unsigned long long)n);
  return json_pack("{s:s, s:o, s:o, s:{s:[s,s], s:[s,s]}}", "workflowId", wf,
                   "sessionId", hex_string(r, "sess-", 16), "data", data,
                   "metadata", "agents", "sales-agent", "finance-agent",
                   "permissions", "context:read", "context:write");
}

json_t *fx_population_patch(fx_rng *r, int version, int64_t now_ms) {
  /* version 2 is the first reply after the opening turn pair: users and
   * agents alternate from there. */
  json_t *patch = json_pack(
      "[{s:s, s:s, s:o}, {s:s, s:s, s:s}]", "op", "add", "path",
      "/data/conversation/messages/-", "value", message(r, version % 2 == 0, now_ms),
      "op", "replace", "path", "/data/workflow/currentStep", "value",
      steps[(version / 3) % N_OF(steps)]);
  if (version % 5 == 0) {
    char path[64];
    snprintf(path, sizeof path, "/data/workflow/variables/checkpoint%d", version);
    json_array_append_new(patch, json_pack("{s:s, s:s, s:o}", "op", "add",
                                           "path", path, "value",
                                           hex_string(r, "vin-", 17)));
  }
  return patch;
}

json_t *fx_update_merge_patch(fx_rng *r, int64_t seq) {
  static const char *const sentiments[] = {"positive", "neutral", "negative"};
  return json_pack("{s:{s:{s:s, s:{s:s, s:I}}, s:{s:s}}}", "data", "workflow",
                   "currentStep", PICK(r, steps), "variables", "lastTouchedBy",
                   "finance-agent", "touches", (json_int_t)seq, "conversation",
                   "sentiment", PICK(r, sentiments));
}

static json_t *vehicle(fx_rng *r) {
  static const char vin_chars[] = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ";
  char vin[18];
  for (int i = 0; i < 17; i++) vin[i] = vin_chars[fx_below(r, sizeof vin_chars - 1)];
  vin[17] = '\0';
  int year = 2015 + (int)fx_below(r, 11);
  return json_pack(
      "{s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:s, s:s, s:s}", "vin", vin,
      "make", PICK(r, makes), "model", PICK(r, models), "year", year, "trim",
      PICK(r, trims), "price", 15000 + 50 * (int)fx_below(r, 800), "mileage",
      (2026 - year) * (6000 + (int)fx_below(r, 9000)), "color", PICK(r, colors),
      "status", PICK(r, statuses), "location", PICK(r, lots));
}

json_t *fx_dealership_input(fx_rng *r, int n_messages, int n_vehicles,
                            int64_t now_ms) {
  json_t *messages = json_array();
  for (int i = 0; i < n_messages; i++)
    json_array_append_new(
        messages, message(r, i % 2 == 0,
                          now_ms - (int64_t)(n_messages - i) * 45000));
  json_t *vehicles = json_array();
  for (int i = 0; i < n_vehicles; i++) json_array_append_new(vehicles, vehicle(r));
  json_t *first_vehicle = json_array_get(vehicles, 0);
  json_t *history = json_array();
  for (int i = 0; i < 6; i++) {
    char ts[32];
    sb_time_format(now_ms - (int64_t)(i + 1) * 30 * 86400000LL, ts);
    json_array_append_new(history,
                          json_pack("{s:s, s:s, s:s}", "timestamp", ts,
                                    "summary",
                                    "Routine maintenance visit: oil change, "
                                    "tire rotation, multi-point inspection",
                                    "agentId", "service-agent"));
  }
  char appt[32];
  sb_time_format(now_ms + 2 * 86400000LL, appt);
  json_t *data = json_pack(
      "{s:{s:o, s:s, s:{s:s, s:s}, s:s, s:s},"
      " s:{s:s, s:[s,s,s], s:{s:O, s:s, s:s, s:s, s:i, s:b}, s:{s:s}, s:[]},"
      " s:{s:s, s:{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s},"
      "            s:{s:s, s:s, s:i, s:i}},"
      "    s:{s:s, s:s, s:[s,s,s], s:i, s:s, s:b}, s:[s,s], s:o},"
      " s:{s:o, s:{s:o, s:s}, s:{s:s, s:s, s:s}, s:{s:{s:s, s:b}, s:{s:s, s:b}}}}",
      "conversation", "messages", messages, "intent", "service_and_upgrade",
      "entities", "vehicle", "2019 Honda CR-V", "service", "brake inspection",
      "sentiment", "positive", "language", "en",
      "workflow", "currentStep", "schedule_service", "completedSteps",
      "identify_customer", "identify_vehicle", "diagnose_issue", "variables",
      "vin", json_object_get(first_vehicle, "vin"), "serviceType",
      "brake_inspection", "appointmentTime", appt, "advisor", "Jordan Lee",
      "estimateUsd", 289, "loanerRequested", 1, "outputs", "quoteId",
      "Q-20931", "errors",
      "user", "id", "user-4f2a9c1e77d3", "profile", "firstName", "Maria",
      "lastName", "Garcia", "email", "maria.garcia@example.com", "phone",
      "+1-555-0199", "address", "street", "1420 N Clark St", "city", "Chicago",
      "state", "IL", "zip", "60610", "tradeIn", "make", "Honda", "model",
      "CR-V", "year", 2019, "mileage", 61250, "preferences", "contactMethod",
      "sms", "language", "en", "makes", "Toyota", "Honda", "Subaru",
      "maxPrice", 34000, "bodyStyle", "suv", "marketingOptIn", 0,
      "permissions", "profile:read", "service:book", "history", history,
      "business", "dealership", dealership(r), "inventory", "vehicles",
      vehicles, "updatedBy", "dms-sync", "policies", "returns",
      "3-day / 150-mile money-back guarantee on certified pre-owned vehicles",
      "deposits", "Refundable $500 deposit holds a vehicle for 48 hours",
      "financing", "Rates quoted only after a completed credit application",
      "integrations", "dms", "vendor", "CDK Global", "connected", 1, "crm",
      "vendor", "Salesforce", "connected", 1);
  return json_pack("{s:s, s:s, s:o, s:{s:[s,s,s], s:[s,s]}}", "workflowId",
                   "wf-service-20931", "sessionId", "sess-7d0b2c4e9a1f3856",
                   "data", data, "metadata", "agents", "sales-agent",
                   "service-agent", "finance-agent", "permissions",
                   "context:read", "context:write");
}
