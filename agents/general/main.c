/* dealer-general: the intake agent of the dealership demo. One tool,
 * classify_inquiry (rules.c, llm.c): what a customer's message is about
 * and what it names, so a workflow can route it to sales, service, parts
 * or finance. `--llm` asks the client's model first (sampling). */
#include <string.h>

#include "general.h"

static const char classify_in[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"text\":{\"type\":\"string\",\"description\":\"the customer's "
    "message\"},"
    "\"channel\":{\"type\":\"string\",\"description\":\"where it came from: "
    "web, sms, email, phone...\"},"
    "\"today\":{\"type\":\"string\",\"format\":\"date\",\"description\":"
    "\"the day relative dates count from (default 2027-01-04, the demo "
    "calendar's first day)\"}},"
    "\"required\":[\"text\"]}";

static char *classify_summary(json_t *r) {
  const char *s = json_string_value(json_object_get(r, "summary"));
  return sb_asprintf(
      "%s (%s, %.2f, %s): %s", json_string_value(json_object_get(r, "intent")),
      json_string_value(json_object_get(r, "language")),
      json_number_value(json_object_get(r, "confidence")),
      json_string_value(json_object_get(r, "method")), s ? s : "");
}

static const dl_tool tools[] = {
    {.name = "classify_inquiry",
     .title = "Classify an inquiry",
     .description =
         "Classify a customer's message: intent (buy, trade_in, service, "
         "parts, finance, other) with a confidence, the entities it states "
         "(make, model, year, VIN, budget, monthly budget, dates, phone, "
         "e-mail, name, body, fuel), sentiment, language and a one-sentence "
         "summary.",
     .input_schema = classify_in,
     .output_schema = general_classification_schema,
     .summary = classify_summary,
     .on_loop = general_classify_on_loop},
};

int main(int argc, char **argv) {
  /* --llm is ours; the runtime parses the rest */
  int n = 0;
  for (int i = 0; i < argc; i++) {
    if (i > 0 && strcmp(argv[i], "--llm") == 0)
      general_use_llm = 1;
    else
      argv[n++] = argv[i];
  }
  argv[n] = NULL;
  dl_agent agent = {
      .name = "dealer-general",
      .instructions =
          "The intake desk of the dealer group: classify_inquiry tells what "
          "a customer's message is about and what it names. Started with "
          "--llm, it asks the client's model (sampling) and falls back to "
          "its rules.",
      .tools = tools,
      .tools_len = sizeof tools / sizeof tools[0]};
  return dl_agent_main(&agent, n, argv);
}
