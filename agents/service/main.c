/* dealer-service: the dealership group's service desk as an MCP agent
 * (capabilities service.schedule, service.recalls). */
#include "service.h"

static char *recall_summary(json_t *r) {
  json_t *v = json_object_get(r, "vehicle");
  json_int_t n = json_integer_value(json_object_get(r, "open_recalls"));
  return sb_asprintf("%lld open recall%s for %s (%lld %s %s)", (long long)n,
                     n == 1 ? "" : "s",
                     json_string_value(json_object_get(r, "vin")),
                     (long long)json_integer_value(json_object_get(v, "year")),
                     json_is_string(json_object_get(v, "make"))
                         ? json_string_value(json_object_get(v, "make"))
                         : "unknown make",
                     json_is_string(json_object_get(v, "model"))
                         ? json_string_value(json_object_get(v, "model"))
                         : "");
}

static char *slots_summary(json_t *r) {
  size_t n = json_array_size(json_object_get(r, "slots"));
  return sb_asprintf("%zu free service slot%s at %s on %s", n,
                     n == 1 ? "" : "s",
                     json_string_value(json_object_get(r, "dealership")),
                     json_is_string(json_object_get(r, "date"))
                         ? json_string_value(json_object_get(r, "date"))
                         : "no day");
}

static char *booking_summary(json_t *r) {
  json_t *slot = json_object_get(r, "slot");
  return sb_asprintf(
      "booked %s: %s at %s, %s bay %lld",
      json_string_value(json_object_get(r, "booking_id")),
      json_string_value(json_object_get(r, "service")),
      json_string_value(json_object_get(slot, "starts_at")),
      json_string_value(json_object_get(r, "dealership")),
      (long long)json_integer_value(json_object_get(slot, "bay")));
}

#define SLOT_SCHEMA                                                            \
  "{\"type\": \"object\", \"properties\": {"                                   \
  "\"slot_id\": {\"type\": \"integer\"},"                                      \
  "\"starts_at\": {\"type\": \"string\"},"                                     \
  "\"bay\": {\"type\": \"integer\"},"                                          \
  "\"minutes\": {\"type\": \"integer\"}}}"

static const dl_tool service_tools[] = {
    {.name = "recall_lookup",
     .title = "Recall lookup",
     .description =
         "Open safety recalls for a VIN (the check digit is verified): the "
         "vehicle from the service records or the inventory, else decoded "
         "from the VIN (make and year), and the recall campaigns that cover "
         "its make, model and year.",
     .input_schema =
         "{\"type\": \"object\", \"required\": [\"vin\"], \"properties\": {"
         "\"vin\": {\"type\": \"string\", \"minLength\": 17, \"maxLength\": "
         "17}}}",
     .output_schema =
         "{\"type\": \"object\", \"required\": [\"vin\", \"vehicle\", "
         "\"recalls\", \"open_recalls\"], \"properties\": {"
         "\"vin\": {\"type\": \"string\"},"
         "\"vehicle\": {\"type\": \"object\"},"
         "\"recalls\": {\"type\": \"array\", \"items\": {\"type\": "
         "\"object\", \"properties\": {\"campaign\": {\"type\": \"string\"}, "
         "\"component\": {\"type\": \"string\"}, \"summary\": {\"type\": "
         "\"string\"}, \"remedy\": {\"type\": \"string\"}, \"booking_id\": "
         "{\"type\": \"string\"}}}},"
         "\"open_recalls\": {\"type\": \"integer\"}}}",
     .run = svc_recall_lookup,
     .summary = recall_summary},
    {.name = "service_slots",
     .title = "Free service slots",
     .description =
         "Free service appointments at a dealership: the first day with "
         "free slots on or after `date` (default the start of the "
         "calendar), earliest first.",
     .input_schema =
         "{\"type\": \"object\", \"properties\": {"
         "\"dealership\": {\"type\": \"string\", \"description\": \"id, name "
         "or city; default the group's first\"},"
         "\"date\": {\"type\": \"string\", \"description\": \"YYYY-MM-DD\"},"
         "\"minutes\": {\"type\": \"integer\", \"minimum\": 0, "
         "\"description\": \"slots at least this long\"},"
         "\"limit\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 50, "
         "\"default\": 5}}}",
     .output_schema =
         "{\"type\": \"object\", \"required\": [\"dealership\", \"slots\"], "
         "\"properties\": {\"dealership\": {\"type\": \"string\"}, "
         "\"date\": {\"type\": [\"string\", \"null\"]}, "
         "\"slots\": {\"type\": \"array\", \"items\": " SLOT_SCHEMA "}}}",
     .run = svc_service_slots,
     .summary = slots_summary},
    {.name = "book_service",
     .title = "Book a service appointment",
     .description =
         "Book a service appointment for a vehicle: the slot given (refused "
         "if taken) or the first free one at the dealership; answers the "
         "booking and a labor estimate. Idempotent under the workflow's "
         "key.",
     .input_schema =
         "{\"type\": \"object\", \"required\": [\"vin\", \"service\", "
         "\"customer_name\"], \"properties\": {"
         "\"vin\": {\"type\": \"string\", \"minLength\": 17, \"maxLength\": "
         "17},"
         "\"service\": {\"type\": \"string\", \"description\": \"e.g. oil "
         "change, brake inspection, recall 24V-051\"},"
         "\"customer_name\": {\"type\": \"string\"},"
         "\"phone\": {\"type\": \"string\"},"
         "\"slot_id\": {\"type\": \"integer\", \"description\": \"from "
         "service_slots; default the first free slot\"},"
         "\"dealership\": {\"type\": \"string\"},"
         "\"notes\": {\"type\": \"string\"}}}",
     .output_schema =
         "{\"type\": \"object\", \"required\": [\"booking_id\", \"slot\", "
         "\"dealership\", \"estimate\"], \"properties\": {"
         "\"booking_id\": {\"type\": \"string\"},"
         "\"slot\": " SLOT_SCHEMA ","
         "\"dealership\": {\"type\": \"string\"},"
         "\"vin\": {\"type\": \"string\"},"
         "\"service\": {\"type\": \"string\"},"
         "\"estimate\": {\"type\": \"object\", \"properties\": {"
         "\"labor_hours\": {\"type\": \"number\"}, \"labor_rate\": {\"type\": "
         "\"number\"}, \"labor_cost\": {\"type\": \"number\"}}}}}",
     .mutating = 1,
     .run = svc_book_service,
     .summary = booking_summary},
};

static const dl_agent service_agent = {
    .name = "dealer-service",
    .instructions =
        "The service desk of a dealer group: open recalls by VIN "
        "(recall_lookup), free appointment slots (service_slots) and "
        "bookings with a labor estimate (book_service).",
    .tools = service_tools,
    .tools_len = sizeof service_tools / sizeof service_tools[0],
};

int main(int argc, char **argv) {
  return dl_agent_main(&service_agent, argc, argv);
}
