/* dealer-sales: the sales desk of the dealership demo (inventory search,
 * vehicle details, test drives). The tools live in inventory.c and
 * test_drive.c; this file is their table and main(). */
#include <stdio.h>

#include "sales.h"

#define VEHICLE_HIT                                                            \
  "{\"type\":\"object\",\"properties\":{"                                      \
  "\"vin\":{\"type\":\"string\"},\"year\":{\"type\":\"integer\"},"             \
  "\"make\":{\"type\":\"string\"},\"model\":{\"type\":\"string\"},"            \
  "\"trim\":{\"type\":\"string\"},\"body\":{\"type\":\"string\"},"             \
  "\"condition\":{\"type\":\"string\"},\"mileage\":{\"type\":\"integer\"},"    \
  "\"price\":{\"type\":\"number\"},\"color\":{\"type\":\"string\"},"           \
  "\"fuel\":{\"type\":\"string\"},\"dealership_id\":{\"type\":\"string\"},"    \
  "\"dealership\":{\"type\":\"string\"},"                                      \
  "\"score\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100},"            \
  "\"reasons\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"         \
  "\"required\":[\"vin\",\"year\",\"make\",\"model\",\"price\",\"score\","     \
  "\"reasons\"]}"

static const char search_in[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"make\":{\"type\":\"string\",\"description\":\"e.g. Toyota\"},"
    "\"model\":{\"type\":\"string\",\"description\":\"e.g. Camry, CR-V, "
    "F-150\"},"
    "\"body\":{\"type\":\"string\",\"enum\":[\"sedan\",\"suv\",\"truck\","
    "\"hatchback\",\"coupe\",\"van\"]},"
    "\"fuel\":{\"type\":\"string\",\"enum\":[\"gas\",\"hybrid\",\"electric\","
    "\"diesel\"]},"
    "\"condition\":{\"type\":\"string\",\"enum\":[\"new\",\"used\","
    "\"certified\"],\"description\":\"used includes certified pre-owned\"},"
    "\"budget\":{\"type\":\"number\",\"description\":\"maximum price in "
    "dollars; cars up to 10% over are shown, ranked lower\"},"
    "\"monthly_budget\":{\"type\":\"number\",\"description\":\"dollars per "
    "month, turned into a price at the dealer group's APR\"},"
    "\"year_min\":{\"type\":\"integer\"},"
    "\"max_mileage\":{\"type\":\"integer\"},"
    "\"seats_min\":{\"type\":\"integer\"},"
    "\"features\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
    "\"description\":\"wished-for features (ranked, not required), e.g. "
    "heated seats, sunroof\"},"
    "\"dealership\":{\"type\":\"string\",\"description\":\"dealership id, "
    "city or name\"},"
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":20,"
    "\"default\":5}}}";

static const char search_out[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"total_matches\":{\"type\":\"integer\"},"
    "\"criteria\":{\"type\":\"object\"},"
    "\"vehicles\":{\"type\":\"array\",\"items\":" VEHICLE_HIT "}},"
    "\"required\":[\"total_matches\",\"vehicles\"]}";

static const char vin_in[] =
    "{\"type\":\"object\",\"properties\":{\"vin\":{\"type\":\"string\","
    "\"minLength\":17,\"maxLength\":17}},\"required\":[\"vin\"]}";

static const char details_out[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"vin\":{\"type\":\"string\"},\"year\":{\"type\":\"integer\"},"
    "\"make\":{\"type\":\"string\"},\"model\":{\"type\":\"string\"},"
    "\"trim\":{\"type\":\"string\"},\"price\":{\"type\":\"number\"},"
    "\"status\":{\"type\":\"string\"},"
    "\"features\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"dealership\":{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},"
    "\"address\":{\"type\":\"string\"},\"phone\":{\"type\":\"string\"}}}},"
    "\"required\":[\"vin\",\"year\",\"make\",\"model\",\"price\","
    "\"features\",\"dealership\"]}";

static const char slots_in[] =
    "{\"type\":\"object\",\"properties\":{\"vin\":{\"type\":\"string\"},"
    "\"date\":{\"type\":\"string\",\"format\":\"date\",\"description\":"
    "\"default: the first day of the demo calendar\"}},"
    "\"required\":[\"vin\"]}";

static const char slots_out[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"vin\":{\"type\":\"string\"},\"vehicle\":{\"type\":\"string\"},"
    "\"dealership_id\":{\"type\":\"string\"},"
    "\"dealership\":{\"type\":\"string\"},\"date\":{\"type\":\"string\"},"
    "\"minutes\":{\"type\":\"integer\"},\"closed\":{\"type\":\"boolean\"},"
    "\"opens\":{\"type\":\"string\"},\"closes\":{\"type\":\"string\"},"
    "\"slots\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "\"properties\":{\"starts_at\":{\"type\":\"string\"},"
    "\"ends_at\":{\"type\":\"string\"}}}}},"
    "\"required\":[\"vin\",\"date\",\"slots\"]}";

static const char book_in[] =
    "{\"type\":\"object\",\"properties\":{\"vin\":{\"type\":\"string\"},"
    "\"starts_at\":{\"type\":\"string\",\"description\":\"local time "
    "2027-01-04T10:30; default: the first free slot\"},"
    "\"customer_name\":{\"type\":\"string\"},"
    "\"phone\":{\"type\":\"string\"},\"email\":{\"type\":\"string\"}},"
    "\"required\":[\"vin\",\"customer_name\"]}";

static const char book_out[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"booking_id\":{\"type\":\"string\"},\"vin\":{\"type\":\"string\"},"
    "\"vehicle\":{\"type\":\"string\"},"
    "\"dealership_id\":{\"type\":\"string\"},"
    "\"dealership\":{\"type\":\"string\"},\"address\":{\"type\":\"string\"},"
    "\"starts_at\":{\"type\":\"string\"},\"ends_at\":{\"type\":\"string\"},"
    "\"customer_name\":{\"type\":\"string\"}},"
    "\"required\":[\"booking_id\",\"vin\",\"vehicle\",\"dealership\","
    "\"starts_at\",\"ends_at\"]}";

static const char *str(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

static char *search_summary(json_t *r) {
  json_t *best = json_array_get(json_object_get(r, "vehicles"), 0);
  json_int_t total = json_integer_value(json_object_get(r, "total_matches"));
  if (!best) return sb_strdup("no vehicle matches");
  char price[32];
  sales_money(json_number_value(json_object_get(best, "price")), price,
              sizeof price);
  return sb_asprintf(
      "%zu of %lld matching vehicles; best: %lld %s %s %s, "
      "%s, at %s",
      json_array_size(json_object_get(r, "vehicles")), (long long)total,
      (long long)json_integer_value(json_object_get(best, "year")),
      str(best, "make"), str(best, "model"), str(best, "trim"), price,
      str(best, "dealership"));
}

static char *details_summary(json_t *r) {
  char price[32];
  sales_money(json_number_value(json_object_get(r, "price")), price,
              sizeof price);
  return sb_asprintf("%lld %s %s %s (%s, %s), %s at %s",
                     (long long)json_integer_value(json_object_get(r, "year")),
                     str(r, "make"), str(r, "model"), str(r, "trim"),
                     str(r, "condition"), str(r, "status"), price,
                     str(json_object_get(r, "dealership"), "name"));
}

static char *slots_summary(json_t *r) {
  return sb_asprintf("%zu free test-drive slots on %s for the %s at %s",
                     json_array_size(json_object_get(r, "slots")),
                     str(r, "date"), str(r, "vehicle"), str(r, "dealership"));
}

static char *book_summary(json_t *r) {
  return sb_asprintf("Booked %s: test drive of the %s at %s, %s to %s",
                     str(r, "booking_id"), str(r, "vehicle"),
                     str(r, "dealership"), str(r, "starts_at"),
                     str(r, "ends_at") + 11);
}

static const dl_tool tools[] = {
    {.name = "search_inventory",
     .title = "Search inventory",
     .description = "Find available cars across the dealer group's "
                    "dealerships, ranked by fit: budget (cars up to 10% "
                    "over are ranked lower), make and model, wished-for "
                    "features, age, mileage, certification. Each result "
                    "says why it fits.",
     .input_schema = search_in,
     .output_schema = search_out,
     .run = sales_search_inventory,
     .summary = search_summary},
    {.name = "vehicle_details",
     .title = "Vehicle details",
     .description = "Everything about one car by VIN: specs, price, "
                    "features, status and the dealership that has it.",
     .input_schema = vin_in,
     .output_schema = details_out,
     .run = sales_vehicle_details,
     .summary = details_summary},
    {.name = "test_drive_slots",
     .title = "Test-drive slots",
     .description = "The free test-drive slots of a car on one day (within "
                    "its dealership's hours; closed on Sundays).",
     .input_schema = slots_in,
     .output_schema = slots_out,
     .run = sales_test_drive_slots,
     .summary = slots_summary},
    {.name = "book_test_drive",
     .title = "Book a test drive",
     .description = "Book a test drive of an available car for a customer, "
                    "at starts_at or the first free slot. Refuses sold cars, "
                    "taken slots and times outside the dealership's hours.",
     .input_schema = book_in,
     .output_schema = book_out,
     .mutating = 1,
     .run = sales_book_test_drive,
     .summary = book_summary},
};

int main(int argc, char **argv) {
  dl_agent agent = {
      .name = "dealer-sales",
      .instructions =
          "The sales desk of the dealer group: search the inventory "
          "(search_inventory), look a car up by VIN (vehicle_details), find "
          "test-drive slots (test_drive_slots) and book one "
          "(book_test_drive). Prices are in US dollars.",
      .tools = tools,
      .tools_len = sizeof tools / sizeof tools[0]};
  return dl_agent_main(&agent, argc, argv);
}
