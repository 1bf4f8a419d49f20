/* dealer-parts: the dealership group's parts counter as an MCP agent
 * (capabilities parts.lookup, parts.order). */
#include "parts.h"

static char *find_summary(json_t *r) {
  json_t *parts = json_object_get(r, "parts");
  json_t *first = json_array_get(parts, 0);
  size_t n = json_array_size(parts);
  const char *message = json_string_value(json_object_get(r, "message"));
  if (!first) return sb_asprintf("no parts found%s%s", message ? ": " : "",
                                 message ? message : "");
  return sb_asprintf(
      "%zu part%s found; first: %s %s ($%.2f, %lld in stock)", n,
      n == 1 ? "" : "s",
      json_string_value(json_object_get(first, "part_number")),
      json_string_value(json_object_get(first, "name")),
      json_number_value(json_object_get(first, "price")),
      (long long)json_integer_value(json_object_get(first, "in_stock")));
}

static char *availability_summary(json_t *r) {
  return sb_asprintf("%s: %lld in stock in the group, ready by %s",
                     json_string_value(json_object_get(r, "part_number")),
                     (long long)json_integer_value(json_object_get(r, "total")),
                     json_string_value(json_object_get(r, "ready_by")));
}

static char *order_summary(json_t *r) {
  return sb_asprintf(
      "%s %s: %lld x %s at %s, ready by %s ($%.2f)",
      json_string_value(json_object_get(r, "order_id")),
      json_string_value(json_object_get(r, "status")),
      (long long)json_integer_value(json_object_get(r, "quantity")),
      json_string_value(json_object_get(r, "part_number")),
      json_string_value(json_object_get(r, "dealership")),
      json_string_value(json_object_get(r, "ready_by")),
      json_number_value(json_object_get(r, "total")));
}

#define STOCK_SCHEMA                                                           \
  "{\"type\": \"array\", \"items\": {\"type\": \"object\", \"properties\": "   \
  "{\"dealership_id\": {\"type\": \"string\"}, \"quantity\": {\"type\": "      \
  "\"integer\"}}}}"

static const dl_tool parts_tools[] = {
    {.name = "find_parts",
     .title = "Find parts",
     .description =
         "Parts that fit a vehicle (by VIN, or make/model/year), matching "
         "the words of a query (\"front brake pads\") and a category; "
         "best matches first, a part made for the model above one for the "
         "whole make; with stock per dealership.",
     .input_schema =
         "{\"type\": \"object\", \"properties\": {"
         "\"query\": {\"type\": \"string\"},"
         "\"category\": {\"type\": \"string\", \"description\": \"brakes, "
         "filters, electrical...\"},"
         "\"vin\": {\"type\": \"string\", \"minLength\": 17, \"maxLength\": "
         "17, \"description\": \"gives make, model and year\"},"
         "\"make\": {\"type\": \"string\"},"
         "\"model\": {\"type\": \"string\"},"
         "\"year\": {\"type\": \"integer\"},"
         "\"dealership\": {\"type\": \"string\", \"description\": \"in_stock "
         "counts this dealership's stock; default the group's\"},"
         "\"limit\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 50, "
         "\"default\": 10}}}",
     .output_schema =
         "{\"type\": \"object\", \"required\": [\"parts\"], \"properties\": {"
         "\"vehicle\": {\"type\": \"object\"},"
         "\"count\": {\"type\": \"integer\"},"
         "\"message\": {\"type\": \"string\"},"
         "\"parts\": {\"type\": \"array\", \"items\": {\"type\": \"object\", "
         "\"properties\": {\"part_number\": {\"type\": \"string\"}, \"name\": "
         "{\"type\": \"string\"}, \"category\": {\"type\": \"string\"}, "
         "\"price\": {\"type\": \"number\"}, \"labor_hours\": {\"type\": "
         "\"number\"}, \"fits\": {\"type\": \"string\"}, \"in_stock\": "
         "{\"type\": \"integer\"}, \"stock\": " STOCK_SCHEMA "}}}}}",
     .run = parts_find,
     .summary = find_summary},
    {.name = "part_availability",
     .title = "Part availability",
     .description =
         "Stock of a part at each dealership of the group, and when it "
         "would be ready (in stock: parts.lead_days.in_stock days, else "
         "ordered: parts.lead_days.order).",
     .input_schema =
         "{\"type\": \"object\", \"required\": [\"part_number\"], "
         "\"properties\": {\"part_number\": {\"type\": \"string\"}, "
         "\"dealership\": {\"type\": \"string\"}}}",
     .output_schema =
         "{\"type\": \"object\", \"required\": [\"part_number\", \"stock\", "
         "\"total\", \"ready_by\"], \"properties\": {"
         "\"part_number\": {\"type\": \"string\"},"
         "\"stock\": " STOCK_SCHEMA ","
         "\"total\": {\"type\": \"integer\"},"
         "\"in_stock\": {\"type\": \"boolean\"},"
         "\"lead_days\": {\"type\": \"integer\"},"
         "\"ready_by\": {\"type\": \"string\"}}}",
     .run = parts_availability,
     .summary = availability_summary},
    {.name = "order_part",
     .title = "Order a part",
     .description =
         "Order a part for a customer: reserved from the dealership's stock "
         "when it has enough (default: the dealership that does), else "
         "ordered from the supplier. Idempotent under the workflow's key.",
     .input_schema =
         "{\"type\": \"object\", \"required\": [\"part_number\", "
         "\"quantity\"], \"properties\": {"
         "\"part_number\": {\"type\": \"string\"},"
         "\"quantity\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": "
         "20},"
         "\"dealership\": {\"type\": \"string\"},"
         "\"vin\": {\"type\": \"string\", \"minLength\": 17, \"maxLength\": "
         "17},"
         "\"customer_name\": {\"type\": \"string\"}}}",
     .output_schema =
         "{\"type\": \"object\", \"required\": [\"order_id\", \"status\", "
         "\"ready_by\", \"total\"], \"properties\": {"
         "\"order_id\": {\"type\": \"string\"},"
         "\"status\": {\"type\": \"string\", \"enum\": [\"reserved\", "
         "\"ordered\"]},"
         "\"dealership\": {\"type\": \"string\"},"
         "\"ready_by\": {\"type\": \"string\"},"
         "\"unit_price\": {\"type\": \"number\"},"
         "\"total\": {\"type\": \"number\"}}}",
     .mutating = 1,
     .run = parts_order,
     .summary = order_summary},
};

static const dl_agent parts_agent = {
    .name = "dealer-parts",
    .instructions =
        "The parts counter of a dealer group: parts that fit a vehicle "
        "(find_parts), their stock and lead time (part_availability) and "
        "orders (order_part).",
    .tools = parts_tools,
    .tools_len = sizeof parts_tools / sizeof parts_tools[0],
};

int main(int argc, char **argv) {
  return dl_agent_main(&parts_agent, argc, argv);
}
