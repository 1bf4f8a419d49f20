/* agents/general/general.h: dealer-general, the intake agent: what a
 * customer's message is about (intent), what it names (entities), how it
 * feels (sentiment) and its language. rules.c decides by deterministic
 * rules; llm.c asks the client's model (sampling) and checks its answer
 * against the same schema, falling back to the rules. */
#ifndef DL_GENERAL_H
#define DL_GENERAL_H

#include "common/agent.h"

/* The JSON Schema of a classification (the tool's outputSchema and the
 * schema the model is asked to follow). */
extern const char general_classification_schema[];

/* Classify `text` by the rules. today: the day relative dates count from
 * (days since 1970-01-01), or -1 for the demo calendar's first day
 * (2027-01-04). channel may be NULL. Returns the classification with
 * method "rules" (new reference), never NULL but on allocation failure. */
json_t *general_classify_rules(const char *text, const char *channel,
                               long today);

/* The longest message classify_inquiry reads, in bytes: far above any
 * customer's inquiry, low enough that the rules (on the agent's loop)
 * stay well under a millisecond per call. */
#define GENERAL_MAX_TEXT_BYTES 16384
/* The longest channel name, in bytes (it is echoed in the answer). */
#define GENERAL_MAX_CHANNEL_BYTES 64

/* classify_inquiry's arguments, borrowed from the call's. */
typedef struct general_args {
  const char *text, *channel; /* channel may be NULL */
  long today;                 /* -1: the demo calendar's first day */
} general_args;

/* Read and check the arguments: 0, or -1 with why (the call is then
 * refused as invalid arguments, -32602). */
int general_read_args(json_t *args, general_args *out, char *why,
                      size_t why_len);

/* Check a model's classification (borrowed) against the schema: 0, or -1
 * with why in `why`. */
int general_check_classification(json_t *c, char *why, size_t why_len);

/* The classify_inquiry tool's loop-side body (see dl_tool.on_loop): the
 * rules, or with llm set the client's model first. */
void general_classify_on_loop(const dl_tool *tool, sb_mcp_call *call,
                              json_t *args);
/* Set by main (--llm). */
extern int general_use_llm;

#endif
