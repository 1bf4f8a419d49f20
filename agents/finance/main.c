/* dealer-finance: the dealership group's finance desk as an MCP agent
 * (capabilities finance.quote, finance.prequalify, finance.approval).
 *
 * --delay-ms N makes it answer every call N ms late: the demo's finance
 * desk that is too slow, so switchboard's timeouts and fallbacks show. The
 * delay is a timer on the agent's loop after the work is done
 * (dl_agent.reply_delay_ms), so slow answers still overlap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "finance.h"

static char *quote_summary(json_t *r) {
  return sb_asprintf("$%.2f/month for %d months at %.2f%% APR ($%.2f financed)",
                     json_number_value(json_object_get(r, "monthly_payment")),
                     (int)json_integer_value(json_object_get(r, "term_months")),
                     json_number_value(json_object_get(r, "apr")),
                     json_number_value(json_object_get(r, "amount_financed")));
}

static char *prequalify_summary(json_t *r) {
  return sb_asprintf("%s: %s credit, up to $%.0f at %.2f%% APR",
                     json_is_true(json_object_get(r, "approved"))
                         ? "prequalified"
                         : "not prequalified",
                     json_string_value(json_object_get(r, "credit_band")),
                     json_number_value(json_object_get(r, "max_amount")),
                     json_number_value(json_object_get(r, "apr")));
}

#define BAND_PROPS                                                             \
  "\"credit_band\": {\"type\": \"string\", \"enum\": [\"excellent\", "         \
  "\"good\", \"fair\", \"poor\"], \"description\": \"default good\"},"         \
  "\"credit_score\": {\"type\": \"integer\", \"minimum\": 300, "               \
  "\"maximum\": 850, \"description\": \"gives the band when credit_band "      \
  "is absent\"},"                                                              \
  "\"term_months\": {\"type\": \"integer\", \"description\": \"one of the "    \
  "group's terms (policy finance.terms); default 60\"}"

static const dl_tool finance_tools[] = {
    {.name = "payment_quote",
     .title = "Payment quote",
     .description =
         "Monthly payment for a vehicle (by VIN) or a price: sales tax on "
         "the price less the trade-in, the dealership's doc and registration "
         "fees, the APR of the credit band (or apr), standard amortization. "
         "The down payment defaults to the band's minimum.",
     .input_schema =
         "{\"type\": \"object\", \"properties\": {"
         "\"price\": {\"type\": \"number\", \"exclusiveMinimum\": 0},"
         "\"vin\": {\"type\": \"string\", \"description\": \"a vehicle of "
         "the inventory: its price and dealership\"},"
         "\"down_payment\": {\"type\": \"number\", \"minimum\": 0},"
         "\"trade_in\": {\"type\": \"number\", \"minimum\": 0},"
         "\"apr\": {\"type\": \"number\", \"minimum\": 0, \"description\": "
         "\"percent; overrides the band's\"},"
         "\"dealership\": {\"type\": \"string\", \"description\": \"its id, "
         "name or city: taxes and fees; default the vehicle's, else the "
         "group's first\"}," BAND_PROPS "}}",
     .output_schema =
         "{\"type\": \"object\", \"required\": [\"monthly_payment\", "
         "\"amount_financed\", \"apr\", \"term_months\"], \"properties\": {"
         "\"price\": {\"type\": \"number\"},"
         "\"monthly_payment\": {\"type\": \"number\"},"
         "\"final_payment\": {\"type\": \"number\"},"
         "\"total_of_payments\": {\"type\": \"number\"},"
         "\"total_interest\": {\"type\": \"number\"},"
         "\"amount_financed\": {\"type\": \"number\"},"
         "\"apr\": {\"type\": \"number\"},"
         "\"term_months\": {\"type\": \"integer\"},"
         "\"credit_band\": {\"type\": \"string\"},"
         "\"dealership\": {\"type\": \"string\"}}}",
     .run = fin_payment_quote,
     .summary = quote_summary},
    {.name = "prequalify",
     .title = "Prequalify for financing",
     .description =
         "Whether a customer prequalifies, at what APR and up to what "
         "amount: the credit band's limit, lowered to what the income "
         "affords after debts; with the reasons.",
     .input_schema =
         "{\"type\": \"object\", \"properties\": {"
         "\"monthly_income\": {\"type\": \"number\", \"minimum\": 0},"
         "\"monthly_debts\": {\"type\": \"number\", \"minimum\": 0},"
         "\"requested_amount\": {\"type\": \"number\", \"exclusiveMinimum\": "
         "0}," BAND_PROPS "}}",
     .output_schema =
         "{\"type\": \"object\", \"required\": [\"approved\", \"credit_band\", "
         "\"apr\", \"max_amount\", \"reasons\"], \"properties\": {"
         "\"approved\": {\"type\": \"boolean\"},"
         "\"credit_band\": {\"type\": \"string\"},"
         "\"apr\": {\"type\": \"number\"},"
         "\"max_amount\": {\"type\": \"number\"},"
         "\"min_down_pct\": {\"type\": \"number\"},"
         "\"max_monthly_payment\": {\"type\": [\"number\", \"null\"]},"
         "\"reasons\": {\"type\": \"array\", \"items\": {\"type\": "
         "\"string\"}}}}",
     .run = fin_prequalify,
     .summary = prequalify_summary},
};

int main(int argc, char **argv) {
  dl_agent agent = {
      .name = "dealer-finance",
      .instructions =
          "The finance desk of a dealer group: payment quotes (payment_quote: "
          "by VIN or price, with down payment, trade-in, term and credit "
          "band) and prequalification (prequalify: by credit band or score, "
          "income and debts).",
      .tools = finance_tools,
      .tools_len = sizeof finance_tools / sizeof finance_tools[0],
  };
  /* --delay-ms is this agent's own flag: take it out before the runtime
   * parses the rest. */
  int n = 1, help = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--delay-ms") == 0) {
      char *end = NULL;
      long ms = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;
      if (!end || *end || end == argv[i + 1] || ms < 0 || ms > 600000) {
        fprintf(stderr, "dealer-finance: --delay-ms expects milliseconds "
                        "(0-600000)\n");
        return 2;
      }
      agent.reply_delay_ms = (unsigned)ms;
      i++;
      continue;
    }
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) help = 1;
    argv[n++] = argv[i];
  }
  argv[n] = NULL;
  int code = dl_agent_main(&agent, n, argv);
  if (help)
    printf("  --delay-ms N       answer every tool call N ms late (the demo's "
           "slow finance desk)\n");
  return code;
}
