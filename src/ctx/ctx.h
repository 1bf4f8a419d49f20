/* ctx: the MCPContext of the orchestration spec, and the pure JSON
 * algorithms the context manager is built on.
 *
 * A context is one JSON document per conversation/workflow:
 *
 *   { "id", "workflowId", "tenantId", "sessionId": string,
 *     "timestamp": RFC 3339 date-time, "version": integer >= 1,
 *     "data": { "conversation", "workflow", "user", "business" },
 *     "metadata": { "agents": [string], "permissions": [string],
 *                   "expiresAt": RFC 3339 date-time } }
 *
 * Changes between versions travel as RFC 6902 JSON Patches (or RFC 7386
 * merge patches from clients), and agents see only the projection of
 * `data` that their `contextRequirements` name.
 *
 * Everything in the "algorithms" section below is a pure function over
 * jansson values: no I/O, no clock, no globals. Inputs are never modified
 * (they are `const`); every json_t a function hands back is a NEW reference
 * the caller owns and releases with json_decref, and it shares no storage
 * with the inputs, so callers may mutate it freely. On failure the out
 * parameter is set to NULL and `err` (optional) carries a message that
 * names the JSON path or patch operation at fault.
 *
 * Error codes: SB_EINVAL malformed input (bad pointer, bad patch op, bad
 * path, invalid document), SB_ENOENT a patch names a location that does not
 * exist, SB_ECONFLICT a patch "test" op failed, SB_ENOMEM allocation.
 */
#ifndef SB_CTX_H
#define SB_CTX_H

#include <jansson.h>
#include <stddef.h>

#include "core/core.h"

/* ======================================================================
 * Context algorithms (pointer, patch, merge, diff, projection,
 * validation). The versioned manager API goes in its own section below.
 * ====================================================================== */

/* ---- RFC 6901 JSON Pointer (pointer.c) -------------------------------- */

/* One reference token, unescaped (~1 -> '/', ~0 -> '~'). `s` is
 * NUL-terminated, but `len` is authoritative: a key may contain U+0000. */
typedef struct sb_ctx_ptr_token {
  const char *s;
  size_t len;
} sb_ctx_ptr_token;

/* A parsed pointer; caller-allocated, filled by sb_ctx_ptr_parse, released
 * by sb_ctx_ptr_free. "" (the whole document) has ntokens == 0. */
typedef struct sb_ctx_ptr {
  size_t ntokens;
  sb_ctx_ptr_token *tokens;
  char *buf_; /* private: storage for the tokens */
} sb_ctx_ptr;

/* Parse `len` bytes of `text` as a JSON Pointer. Rejects text not starting
 * with '/' (unless empty) and '~' not followed by '0' or '1'. On failure
 * *out is zeroed (safe to free) and err names the pointer. */
int sb_ctx_ptr_parse(const char *text, size_t len, sb_ctx_ptr *out,
                     sb_error *err);
void sb_ctx_ptr_free(sb_ctx_ptr *p);

/* Array index of a token: 0 and a decimal index fill *index; "-" (one past
 * the end) returns 1 and leaves *index alone; anything else (leading
 * zeros, signs, non-digits, overflow) returns SB_EINVAL. No err: callers
 * word the message with the context they have. */
int sb_ctx_ptr_index(const sb_ctx_ptr_token *tok, size_t *index);

/* Resolve the NUL-terminated pointer `ptr` in doc. *out is BORROWED from
 * doc (valid while doc lives, do not decref). SB_ENOENT if the location
 * does not exist, SB_EINVAL if the pointer is malformed. */
int sb_ctx_ptr_get(const json_t *doc, const char *ptr, json_t **out,
                   sb_error *err);

/* Append "/" and the escaped token (~ -> ~0, / -> ~1) to b. */
int sb_ctx_ptr_append(sb_buf *b, const char *token, size_t len);

/* ---- RFC 6902 JSON Patch (patch.c) ------------------------------------ */

/* Apply the patch (a JSON array of operation objects: add, remove,
 * replace, move, copy, test) to doc. Atomic: either every op applies and
 * *out is the new document (new reference), or *out is NULL, doc is as it
 * was, and err reads like `patch[2] replace /conversation/intent: path does
 * not exist`. "test" compares numbers by value (1 equals 1.0). */
int sb_ctx_patch_apply(const json_t *doc, const json_t *patch, json_t **out,
                       sb_error *err);

/* JSON equality as RFC 6902 "test" defines it: like json_equal, except that
 * numbers are equal when numerically equal whatever their jansson type. */
int sb_ctx_json_equal(const json_t *a, const json_t *b);

/* ---- RFC 7386 JSON Merge Patch (merge.c) ------------------------------ */

/* Apply a merge patch: object members merge recursively, null removes a
 * member, anything else (arrays included) replaces. Cannot fail except for
 * SB_ENOMEM. *out is a new reference. */
int sb_ctx_merge_apply(const json_t *target, const json_t *patch, json_t **out,
                       sb_error *err);

/* ---- diff (diff.c) ---------------------------------------------------- */

/* An RFC 6902 patch turning `from` into `to`: sb_ctx_patch_apply(from,
 * *out) is json_equal to `to`. *out is a new array ([] when equal).
 *
 * Compact where contexts change: objects are diffed member by member, so a
 * leaf deep in a big tree costs one "replace"; arrays are diffed with their
 * common prefix and suffix trimmed and Myers' shortest edit script on the
 * rest, so appending k messages costs k "add /.../-" ops and a window that
 * drops its oldest message and gains a new one costs two. Arrays needing
 * more than 64 inserts/deletes fall back to element-by-element diffs
 * (still correct, just longer). */
int sb_ctx_diff(const json_t *from, const json_t *to, json_t **out,
                sb_error *err);

/* ---- selective projection (project.c) --------------------------------- */

/* A projection path names part of a context's `data`:
 *
 *   section ( "." key | "[" index "]" | "[" [start] ":" [end] "]" )*
 *
 * section is conversation | workflow | user | business; a key is one or
 * more bytes other than '.', '[', ']'; index/start/end are decimal
 * integers (no leading zeros; negative counts from the end, Python-style,
 * and slices clamp to the array). Examples: `conversation.messages[-5:]`
 * (last five), `conversation.messages[0]`, `workflow.variables.vin`,
 * `business.inventory.vehicles[-10:]`, `conversation.messages[-1].content`.
 *
 * Projection semantics: the output keeps the nesting of the source; a path
 * ending at a node copies its whole subtree; overlapping paths merge (a
 * parent includes its children); selected array elements keep their source
 * order and appear once. A key/index that does not exist (or a type that
 * does not fit, e.g. an index into an object) makes the path "missing"; a
 * slice over an existing array is never missing (it may be empty), and
 * elements of a slice that lack the rest of the path are skipped. */

/* Check one path's syntax. SB_EINVAL with err naming the path. */
int sb_ctx_path_validate(const char *path, sb_error *err);

/* Check a list of paths (a JSON array of strings), e.g. an agent
 * definition's contextRequirements, without any data. Errors name the
 * element: `paths[3]: invalid path "user..id": empty segment at offset 5`. */
int sb_ctx_paths_validate(const json_t *paths, sb_error *err);

/* Project `data` (an object with the four sections) onto `paths` (a JSON
 * array of path strings). *out: new object holding the selection. *missing
 * (optional, may be NULL): new array of the well-formed paths that matched
 * nothing in this data, in input order. A malformed path fails the whole
 * call (SB_EINVAL) before anything is produced. */
int sb_ctx_project(const json_t *data, const json_t *paths, json_t **out,
                   json_t **missing, sb_error *err);

/* ---- MCPContext validation (validate.c) ------------------------------- */

/* The shapes the spec leaves open, as validated here. Objects marked
 * "open" accept any extra members; the others reject unknown members so a
 * typo in a patch is caught, not stored.
 *
 *   ConversationContext { messages: Message[], intent: string,
 *     entities: object (open), sentiment: "positive"|"neutral"|"negative",
 *     language: string }
 *   Message (open) { role: "user"|"assistant"|"system"|"agent"|"tool",
 *     content: string, timestamp?: date-time, agentId?: string }
 *   WorkflowContext { currentStep: string, completedSteps: string[],
 *     variables: object (open), outputs: object (open),
 *     errors: WorkflowError[] }
 *   WorkflowError (open) { step: string, message: string, code?: string,
 *     timestamp?: date-time }
 *   UserContext { id: string, profile: object (open), preferences: object
 *     (open), permissions: string[], history: InteractionHistory[] }
 *   InteractionHistory (open) { timestamp: date-time, summary: string,
 *     agentId?: string, workflowId?: string }
 *   BusinessContext { dealership, inventory, policies, integrations:
 *     object (open) }
 *
 * All members listed without "?" are required in a full document; use
 * sb_ctx_fill_defaults first when a caller supplies only part of it.
 * Errors name the path with dots and brackets, e.g.
 *   data.conversation.sentiment: must be one of positive, neutral,
 *     negative (got "angry")
 *   data.workflow.completedSteps[2]: expected a string
 *   metadata.expiresAt: missing required field */

/* Validate a full MCPContext. id and tenantId must also be non-empty. */
int sb_ctx_validate(const json_t *doc, sb_error *err);

/* Validate a context's `data` object alone; paths still read "data....". */
int sb_ctx_validate_data(const json_t *data, sb_error *err);

/* A copy of doc (an object, or NULL for an empty one) with every missing
 * section and field filled with its empty value: "" for strings, [] for
 * arrays, {} for objects, "neutral" for sentiment, 1 for version. id,
 * tenantId, timestamp and metadata.expiresAt are left alone: they must
 * come from the caller (the manager mints/computes them). Present members
 * are copied as they are, even if invalid. Returns a new reference, NULL if
 * doc is not an object or on ENOMEM. */
json_t *sb_ctx_fill_defaults(const json_t *doc);

/* 1 if s is an RFC 3339 date-time (e.g. 2026-11-25T09:17:41.5Z or
 * 2026-11-25T10:17:41+01:00), with field ranges and leap years checked. */
int sb_ctx_datetime_valid(const char *s);

/* ======================================================================
 * Versioned context manager (to be added by the lead).
 * ====================================================================== */

#endif
