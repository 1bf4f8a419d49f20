/* flow_internal.h: what the files of src/flow/ share while building a
 * definition (def.c: the workflow and its step ids; step.c: each kind of
 * step; cond.c: conditions; template.c: "$path" values and durations;
 * defs.c: sets of definitions from the config).
 *
 * A builder walks the definition's JSON keeping two names of the node it
 * is at: its JSON Pointer (to find the line in the line map) and the key
 * path a user reads ("call.arguments.text"), relative to the step being
 * checked, so every message reads FILE:LINE: step "ID": KEY: what.
 */
#ifndef SB_FLOW_INTERNAL_H
#define SB_FLOW_INTERNAL_H

#include <jansson.h>

#include "flow/flow.h"

#define FLOW_PTR_MAX 512
#define FLOW_KEY_MAX 256
/* Deepest condition or template nesting accepted (YAML input stops at 32
 * anyway; this bounds recursion for JSON from elsewhere). */
#define FLOW_MAX_DEPTH 32

typedef struct flow_builder {
  const json_t *lines; /* JSON Pointer -> line, or NULL */
  const char *prefix;  /* pointer of the definition inside `lines` */
  const char *file;    /* for messages */
  sb_error *err;
  sb_flow_def *def;
  const char *step; /* id of the step being checked, or NULL */
  char ptr[FLOW_PTR_MAX];
  size_t ptr_len;
  char key[FLOW_KEY_MAX];
  size_t key_len;
} flow_builder;

typedef struct flow_mark {
  size_t ptr, key;
} flow_mark;

/* def.c: descend into a member / an element; back to a mark. */
flow_mark flow_push_key(flow_builder *b, const char *key);
flow_mark flow_push_index(flow_builder *b, size_t i);
void flow_pop(flow_builder *b, flow_mark m);
/* The line of the current node (or of its nearest ancestor with one). */
size_t flow_line(const flow_builder *b);
/* Fill b->err: "FILE:LINE: step "ID": KEY: message"; returns code. */
int flow_fail(flow_builder *b, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Step index of a reference `v` (a string naming a top-level step), with
 * the error naming the current key. */
int flow_ref(flow_builder *b, const json_t *v, int *out);
/* A string value without NUL bytes; *out borrowed from v. */
int flow_string(flow_builder *b, const json_t *v, const char *what,
                const char **out);
int flow_strdup(flow_builder *b, const char *s, char **out);
/* Refuse members of obj not in the NULL-terminated `known`. */
int flow_known_keys(flow_builder *b, const json_t *obj,
                    const char *const *known);

/* step.c: fill steps[index] from its JSON (the builder at its node). */
int flow_step_fill(flow_builder *b, const json_t *src, int index,
                   int next_default);

/* cond.c */
int flow_cond_parse(flow_builder *b, const json_t *v, sb_flow_cond *out,
                    int depth);
void flow_cond_free(sb_flow_cond *c);

/* template.c */
/* Check every "$path" in a template (the builder at its node). */
int flow_template_check(flow_builder *b, const json_t *tmpl, int depth);
/* Check a "$"-less path: a projection path of the context's data, or
 * context.id, context.version, run.id, run.workflow. */
int flow_path_check(const char *path, sb_error *err);
/* The value a "$"-less path names (new reference), or NULL when it
 * matches nothing (or on ENOMEM: *nomem set). */
json_t *flow_resolve(const char *path, const sb_flow_scope *scope, int *nomem);
/* The same two, sharing what they return with the context and the
 * template (new references to the values themselves): to read, never to
 * modify or keep in a document that is. */
json_t *flow_resolve_shared(const char *path, const sb_flow_scope *scope,
                            int *nomem);
json_t *flow_template_shared(const json_t *tmpl, const sb_flow_scope *scope);
/* A duration value (a string with a unit), with errors naming the key. */
int flow_duration(flow_builder *b, const json_t *v, int allow_zero,
                  uint64_t *ms);

/* def.c: build a definition whose nodes sit under `prefix` in `lines`. */
int flow_def_build(const json_t *src, const json_t *lines, const char *prefix,
                   const char *file, sb_flow_def **out, sb_error *err);

#endif
