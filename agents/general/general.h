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
