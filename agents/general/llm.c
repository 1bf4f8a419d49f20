/* llm.c: classify_inquiry on the loop thread, by the client's model.
 *
 * With --llm the agent asks its client (switchboard, which answers from
 * its configured model chain) for the classification with
 * sampling/createMessage: a legacy client gets the request on its session
 * (sb_mcp_call_ask_client); a modern (2026-07-28) client gets an
 * input_required answer carrying the request and a sealed requestState,
 * and retries the call with inputResponses. The model's text must be JSON
 * that follows general_classification_schema; anything else (no sampling,
 * an error, bad JSON, a wrong shape) falls back to the rules, with
 * llmError saying why. Without --llm the rules answer at once: they are a
 * few microseconds of string scanning, fine on the loop.
 */
#include <stdio.h>
#include <string.h>

#include "data/catalog.h"
#include "general.h"

#define STATE_TTL_MS (10 * 60 * 1000)
#define INPUT_KEY "classification"

int general_use_llm;

const char general_classification_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"intent\":{\"type\":\"string\",\"enum\":[\"buy\",\"trade_in\","
    "\"service\",\"parts\",\"finance\",\"other\"]},"
    "\"confidence\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
    "\"entities\":{\"type\":\"object\",\"properties\":{"
    "\"make\":{\"type\":\"string\"},\"model\":{\"type\":\"string\"},"
    "\"year\":{\"type\":\"integer\"},\"vin\":{\"type\":\"string\"},"
    "\"budget\":{\"type\":\"number\"},\"monthly_budget\":{\"type\":\"number\"},"
    "\"dates\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
    "\"format\":\"date\"}},"
    "\"phone\":{\"type\":\"string\"},\"email\":{\"type\":\"string\"},"
    "\"name\":{\"type\":\"string\"},\"body\":{\"type\":\"string\"},"
    "\"fuel\":{\"type\":\"string\"}}},"
    "\"sentiment\":{\"type\":\"string\",\"enum\":[\"positive\",\"neutral\","
    "\"negative\"]},"
    "\"language\":{\"type\":\"string\",\"enum\":[\"en\",\"es\",\"fr\","
    "\"de\"]},"
    "\"method\":{\"type\":\"string\",\"enum\":[\"rules\",\"llm\"]},"
    "\"summary\":{\"type\":\"string\"},"
    "\"llmError\":{\"type\":\"string\"}},"
    "\"required\":[\"intent\",\"confidence\",\"entities\",\"sentiment\","
    "\"language\",\"summary\"]}";

static const char system_prompt[] =
    "You classify messages customers send to a car dealer group. Answer with "
    "one JSON object and nothing else, following the JSON Schema given in "
    "the request: intent (buy, trade_in, service, parts, finance or other), "
    "confidence between 0 and 1, entities (only those the message states: "
    "make, model, year, vin, budget and monthly_budget in dollars as "
    "numbers, dates as YYYY-MM-DD, phone, email, name, body, fuel), "
    "sentiment (positive, neutral or negative), language (en, es, fr or de) "
    "and a one-sentence summary.";

/* ---- checking the model's answer ---------------------------------------- */

static int one_of(const char *s, const char *const *set) {
  for (; s && *set; set++)
    if (strcmp(s, *set) == 0) return 1;
  return 0;
}

/* A model's answer is held to what the rules could have said: these
 * bounds are the rules' (plausible years, amounts a customer states), so
 * an answer past them is the model's invention, not the customer's. */
#define CHECK_MAX_STRING 200   /* an entity, as an argument (DL_ARG_STR_MAX) */
#define CHECK_MAX_SUMMARY 500  /* one sentence */
#define CHECK_MAX_DATES 16
#define CHECK_MAX_BUDGET 1e6
#define CHECK_MAX_MONTHLY 1e4

/* 1 if every key of o is one of the NULL-ended names; else 0 with the
 * first other key in *other. */
static int only_keys(json_t *o, const char *const *names, const char **other) {
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    (void)v;
    if (!one_of(k, names)) {
      *other = k;
      return 0;
    }
  }
  return 1;
}

int general_check_classification(json_t *c, char *why, size_t n) {
  static const char *const intents[] = {
      "buy", "trade_in", "service", "parts", "finance", "other", NULL};
  static const char *const sentiments[] = {"positive", "neutral", "negative",
                                           NULL};
  static const char *const strings[] = {"make",  "model", "vin",  "phone",
                                        "email", "name",  "body", "fuel"};
  static const char *const languages[] = {"en", "es", "fr", "de", NULL};
  static const char *const top_keys[] = {
      "intent", "confidence", "entities", "sentiment", "language", "method",
      "summary", "llmError", "channel", "warnings", NULL};
  static const char *const entity_keys[] = {
      "make",  "model", "year", "vin",  "budget", "monthly_budget", "dates",
      "phone", "email", "name", "body", "fuel",   NULL};
  const char *other = NULL;
  if (!json_is_object(c)) return snprintf(why, n, "not a JSON object"), -1;
  if (!only_keys(c, top_keys, &other))
    return snprintf(why, n, "unknown member %.40s", other), -1;
  if (!one_of(json_string_value(json_object_get(c, "intent")), intents))
    return snprintf(why, n, "intent is not one of the six"), -1;
  json_t *conf = json_object_get(c, "confidence");
  if (!json_is_number(conf) || json_number_value(conf) < 0 ||
      json_number_value(conf) > 1)
    return snprintf(why, n, "confidence is not a number in 0..1"), -1;
  if (!one_of(json_string_value(json_object_get(c, "sentiment")), sentiments))
    return snprintf(why, n, "sentiment is not positive, neutral or negative"),
           -1;
  if (!one_of(json_string_value(json_object_get(c, "language")), languages))
    return snprintf(why, n, "language is not en, es, fr or de"), -1;
  json_t *summary = json_object_get(c, "summary");
  if (!json_is_string(summary))
    return snprintf(why, n, "summary is missing"), -1;
  if (json_string_length(summary) > CHECK_MAX_SUMMARY)
    return snprintf(why, n, "summary is longer than %d bytes",
                    CHECK_MAX_SUMMARY),
           -1;
  json_t *channel = json_object_get(c, "channel");
  if (channel && (!json_is_string(channel) ||
                  json_string_length(channel) > GENERAL_MAX_CHANNEL_BYTES))
    return snprintf(why, n, "channel is not a short string"), -1;
  json_t *warnings = json_object_get(c, "warnings");
  if (warnings) {
    size_t i;
    json_t *w;
    if (!json_is_array(warnings) || json_array_size(warnings) > 8)
      return snprintf(why, n, "warnings is not a short array"), -1;
    json_array_foreach(warnings, i, w) {
      if (!json_is_string(w) || json_string_length(w) > CHECK_MAX_SUMMARY)
        return snprintf(why, n, "warnings has other than short strings"), -1;
    }
  }
  json_t *e = json_object_get(c, "entities");
  if (!json_is_object(e))
    return snprintf(why, n, "entities is not an object"), -1;
  if (!only_keys(e, entity_keys, &other))
    return snprintf(why, n, "unknown entity %.40s", other), -1;
  for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
    json_t *v = json_object_get(e, strings[i]);
    if (v && !json_is_string(v))
      return snprintf(why, n, "entities.%s is not a string", strings[i]), -1;
    if (json_string_length(v) > CHECK_MAX_STRING)
      return snprintf(why, n, "entities.%s is longer than %d bytes",
                      strings[i], CHECK_MAX_STRING),
             -1;
  }
  const char *vin = json_string_value(json_object_get(e, "vin"));
  if (vin && !dl_vin_valid(vin))
    return snprintf(why, n, "entities.vin is not a VIN with its check digit"),
           -1;
  json_t *year = json_object_get(e, "year");
  if (year && !json_is_integer(year))
    return snprintf(why, n, "entities.year is not an integer"), -1;
  if (year && (json_integer_value(year) < 1980 ||
               json_integer_value(year) > 2100))
    return snprintf(why, n, "entities.year is not a model year (1980-2100)"),
           -1;
  const char *nums[] = {"budget", "monthly_budget"};
  const double caps[] = {CHECK_MAX_BUDGET, CHECK_MAX_MONTHLY};
  for (int i = 0; i < 2; i++) {
    json_t *v = json_object_get(e, nums[i]);
    if (v && !json_is_number(v))
      return snprintf(why, n, "entities.%s is not a number", nums[i]), -1;
    if (v && !(json_number_value(v) > 0 && json_number_value(v) <= caps[i]))
      return snprintf(why, n, "entities.%s is not an amount in (0, %.0f]",
                      nums[i], caps[i]),
             -1;
  }
  json_t *dates = json_object_get(e, "dates");
  if (dates) {
    size_t i;
    json_t *d;
    long day;
    if (!json_is_array(dates) || json_array_size(dates) > CHECK_MAX_DATES)
      return snprintf(why, n, "entities.dates is not an array of up to %d",
                      CHECK_MAX_DATES),
             -1;
    json_array_foreach(
        dates, i, d) if (dl_date_parse(json_string_value(d), &day) !=
                         0) return snprintf(why, n,
                                            "entities.dates has a non-date"),
        -1;
  }
  return 0;
}

/* The model's text: the first text block, without a ```json fence. */
static json_t *parse_answer(json_t *result, char *why, size_t n) {
  json_t *content = json_object_get(result, "content");
  if (json_is_array(content)) content = json_array_get(content, 0);
  const char *text = json_string_value(json_object_get(content, "text"));
  if (!text) {
    snprintf(why, n, "the model's answer has no text");
    return NULL;
  }
  const char *start = strchr(text, '{'), *end = strrchr(text, '}');
  json_error_t jerr;
  json_t *c = start && end > start
                  ? json_loadb(start, (size_t)(end - start + 1), 0, &jerr)
                  : NULL;
  if (!c) {
    snprintf(why, n, "the model's answer is not JSON");
    return NULL;
  }
  if (general_check_classification(c, why, n) != 0) {
    char detail[256];
    snprintf(detail, sizeof detail, "%s", why);
    snprintf(why, n, "the model's answer does not follow the schema: %.160s",
             detail);
    json_decref(c);
    return NULL;
  }
  json_object_set_new(c, "method", json_string("llm"));
  json_object_del(c, "llmError");
  return c;
}

/* ---- the tool ----------------------------------------------------------- */

typedef struct ask {
  const dl_tool *tool;
  char *text, *channel;
  long today;
} ask;

static void ask_free(ask *a) {
  if (!a) return;
  sb_free(a->text);
  sb_free(a->channel);
  sb_free(a);
}

static void reply_rules(sb_mcp_call *call, const dl_tool *tool,
                        const char *text, const char *channel, long today,
                        const char *llm_error) {
  json_t *r = general_classify_rules(text, channel, today);
  if (!r) {
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  if (llm_error) json_object_set_new(r, "llmError", json_string(llm_error));
  dl_reply(call, tool, r);
}

static void answer(sb_mcp_call *call, const dl_tool *tool, json_t *result,
                   const char *text, const char *channel, long today) {
  char why[256];
  json_t *c = parse_answer(result, why, sizeof why);
  if (!c) {
    reply_rules(call, tool, text, channel, today, why);
    return;
  }
  if (channel) json_object_set_new(c, "channel", json_string(channel));
  dl_reply(call, tool, c);
}

static void legacy_answer(sb_mcp_call *call, json_t *result, json_t *error,
                          void *ud) {
  ask *a = ud;
  if (!call) { /* the call ended first */
    ask_free(a);
    return;
  }
  if (error) {
    const char *m = json_string_value(json_object_get(error, "message"));
    char why[256];
    snprintf(why, sizeof why, "sampling failed: %s", m ? m : "error");
    reply_rules(call, a->tool, a->text, a->channel, a->today, why);
  } else {
    answer(call, a->tool, result, a->text, a->channel, a->today);
  }
  ask_free(a);
}

static json_t *sampling_params(const char *text) {
  json_t *schema = json_loads(general_classification_schema, 0, NULL);
  return json_pack("{s[{sss{ssss}}]sssis{so}}", "messages", "role", "user",
                   "content", "type", "text", "text", text, "systemPrompt",
                   system_prompt, "maxTokens", 512, "_meta",
                   "switchboard/outputSchema", schema ? schema : json_object());
}

int general_read_args(json_t *args, general_args *out, char *why,
                      size_t n) {
  json_t *jtext = json_object_get(args, "text");
  json_t *jchannel = json_object_get(args, "channel");
  json_t *jtoday = json_object_get(args, "today");
  if (!json_is_string(jtext) || !json_string_length(jtext))
    return snprintf(why, n, "text is required (a string)"), -1;
  /* The cap is checked before anything reads the text: the rules run on
   * the loop, which every tenant's calls share. */
  if (json_string_length(jtext) > GENERAL_MAX_TEXT_BYTES)
    return snprintf(why, n,
                    "text is %zu bytes, more than the %d a message may have",
                    json_string_length(jtext), GENERAL_MAX_TEXT_BYTES),
           -1;
  if (jchannel && !json_is_null(jchannel) && !json_is_string(jchannel))
    return snprintf(why, n, "channel must be a string"), -1;
  if (json_string_length(jchannel) > GENERAL_MAX_CHANNEL_BYTES)
    return snprintf(why, n, "channel is longer than %d bytes",
                    GENERAL_MAX_CHANNEL_BYTES),
           -1;
  out->today = -1;
  if (jtoday && !json_is_null(jtoday) &&
      dl_date_parse(json_string_value(jtoday), &out->today) != 0)
    return snprintf(why, n, "today must be a date like 2027-01-04"), -1;
  /* relative dates reach a year ahead ("Jan 12" after Jan 12) */
  if (out->today > dl_days_from_civil(9998, 12, 31))
    return snprintf(why, n, "today must be 9998-12-31 or earlier"), -1;
  out->text = json_string_value(jtext);
  out->channel = json_string_value(jchannel);
  return 0;
}

void general_classify_on_loop(const dl_tool *tool, sb_mcp_call *call,
                              json_t *args) {
  general_args ga;
  char bad[256];
  if (general_read_args(args, &ga, bad, sizeof bad) != 0) {
    sb_mcp_call_fail_invalid_args(call, tool->name, bad);
    return;
  }
  const char *text = ga.text, *channel = ga.channel;
  long today = ga.today;
  if (!general_use_llm) {
    reply_rules(call, tool, text, channel, today, NULL);
    return;
  }
  if (sb_mcp_call_is_modern(call)) {
    json_t *params = sb_mcp_call_params(call);
    const char *state =
        json_string_value(json_object_get(params, "requestState"));
    json_t *response =
        json_object_get(json_object_get(params, "inputResponses"), INPUT_KEY);
    if (state) { /* the retry: the client's model answered (or not) */
      sb_error err = {0};
      json_t *payload =
          sb_mcp_state_open(call, state, "tools/call", tool->name, &err);
      if (!payload) {
        sb_mcp_call_fail(call, SB_RPC_INVALID_PARAMS, err.msg,
                         json_pack("{ss}", "param", "requestState"));
        return;
      }
      json_decref(payload);
      json_t *error = json_object_get(response, "error");
      if (!json_is_object(response) || error) {
        const char *m = json_string_value(json_object_get(error, "message"));
        char why[256];
        snprintf(why, sizeof why, "sampling failed: %s",
                 m ? m : "no answer in inputResponses");
        reply_rules(call, tool, text, channel, today, why);
        return;
      }
      /* an inputResponse is the sampling result, or {result: ...} */
      json_t *result = json_object_get(response, "result");
      answer(call, tool, result ? result : response, text, channel, today);
      return;
    }
    if (!sb_mcp_call_has_capability(call, "sampling")) {
      reply_rules(call, tool, text, channel, today,
                  "the client cannot sample (no sampling capability)");
      return;
    }
    json_t *payload = json_pack("{ss}", "text", text);
    char *sealed = sb_mcp_state_seal(call, "tools/call", tool->name, payload,
                                     STATE_TTL_MS);
    json_decref(payload);
    if (!sealed) {
      reply_rules(call, tool, text, channel, today, "cannot seal requestState");
      return;
    }
    json_t *r = json_pack("{sss{s{ssso}}ss}", "resultType", "input_required",
                          "inputRequests", INPUT_KEY, "method",
                          "sampling/createMessage", "params",
                          sampling_params(text), "requestState", sealed);
    sb_free(sealed);
    sb_mcp_call_reply(call, r);
    return;
  }
  if (!sb_mcp_call_has_capability(call, "sampling")) {
    reply_rules(call, tool, text, channel, today,
                "the client cannot sample (no sampling capability)");
    return;
  }
  ask *a = sb_calloc(1, sizeof *a);
  if (a) {
    a->tool = tool;
    a->today = today;
    a->text = sb_strdup(text);
    a->channel = channel ? sb_strdup(channel) : NULL;
  }
  if (!a || !a->text || (channel && !a->channel)) {
    ask_free(a);
    sb_mcp_call_fail(call, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  if (sb_mcp_call_ask_client(call, "sampling/createMessage",
                             sampling_params(text), legacy_answer, a) != 0) {
    ask_free(a);
    reply_rules(call, tool, text, channel, today,
                "cannot send sampling/createMessage to this client");
  }
}
