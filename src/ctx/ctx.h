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

/* What a patch's copy ops may copy in all (bytes of compact JSON) in
 * sb_ctx_patch_apply: each copy can double the document, so a patch of a
 * few dozen ops would otherwise grow it past any memory. */
#define SB_CTX_PATCH_COPY_MAX ((size_t)16 << 20)

/* The same with the copies' budget given: a copy that would pass it fails
 * the patch with SB_ETOOBIG, naming the sizes. */
int sb_ctx_patch_apply_within(const json_t *doc, const json_t *patch,
                              size_t max_copy_bytes, json_t **out,
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
/* The same, errors naming the list as the caller's input calls it
 * (`requirements[3]: ...`). */
int sb_ctx_paths_validate_as(const json_t *paths, const char *field,
                             sb_error *err);

/* The value at `path` in `data`: *out is a NEW reference (a copy). A
 * slice gives a new array of the elements it selects (elements lacking
 * the rest of the path are skipped, as in a projection), so
 * `conversation.messages[-3:].content` is an array of up to three
 * strings. SB_ENOENT (err untouched) when the path matches nothing,
 * SB_EINVAL for a malformed path, SB_ENOMEM. */
int sb_ctx_path_get(const json_t *data, const char *path, json_t **out,
                    sb_error *err);
/* The same without the copy: *out is a new reference that may be (or
 * hold) the values of `data` themselves, to read and never modify (a
 * condition compares a megabyte array without copying it). */
int sb_ctx_path_get_shared(const json_t *data, const char *path,
                           json_t **out, sb_error *err);

/* Set the value at `path` in `data` (an object, modified in place; value
 * is BORROWED: data takes a reference of its own). The path may hold keys
 * and non-negative indexes of existing array elements; missing object
 * members along the way are created as objects. SB_EINVAL for a
 * malformed path, a slice, a negative index, or a path through a value
 * that is not an object (or not an array, for an index); SB_ENOENT for an
 * index past the end of its array. Nothing is changed on failure
 * (except on SB_ENOMEM, which may leave created empty objects). */
int sb_ctx_path_set(json_t *data, const char *path, json_t *value,
                    sb_error *err);

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

/* Whether data.<path> (keys joined by dots, the first a section) can hold
 * a value at all: each key a field of the closed objects it passes
 * through, none below a field that holds something other than an object
 * ("conversation.summary" cannot: the conversation has no such field;
 * "conversation.entities.vin" can: entities is open). 0, or SB_EINVAL
 * with err naming the key and the fields there are. Types of the value
 * are checked when it is written. */
int sb_ctx_data_path_settable(const char *path, sb_error *err);

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
 * Versioned context manager (manager.c)
 *
 * Contexts live in the store (store/); the manager gives them meaning:
 * every write is validated, makes version N+1 recorded as the RFC 6902
 * diff from N (with a full snapshot every `snapshot_every` versions), and
 * must name the version it read (a stale one gets SB_ECONFLICT and the
 * current version, never a lost update). The tenant always comes from the
 * caller's authentication, never from the document: a tenantId in a
 * request body that differs from the caller's is refused, and another
 * tenant's id answers exactly like one that does not exist (SB_ENOENT).
 * Server-owned fields (id, tenantId, version, timestamp) and the ids the
 * store indexes (workflowId, sessionId) cannot be changed by an update.
 *
 * Asynchronous, like the store under it: the loop never waits on disk,
 * and an update's JSON work (apply, validate, diff, serialise) runs on the
 * libuv thread pool of the store's loop.
 * Every operation below is called on the store's loop thread and takes a
 * completion callback and its `ud`:
 *
 *   - it returns 0 when the operation is under way: `cb` then runs exactly
 *     once, later, on the loop thread (never inside the call);
 *   - it returns a negative SB_E* code, with `err` filled, when it could
 *     not start: bad arguments found up front (SB_EINVAL, SB_ENOENT for a
 *     malformed id), the store's queue full (SB_EBUSY), SB_ENOMEM. `cb`
 *     then never runs.
 *
 * JSON arguments are borrowed for the call only, except where noted. The
 * callback gets an sb_ctx_result it borrows: `res->doc` lives until the
 * callback returns (json_incref it to keep it). It may be shared with the
 * manager's cache of heads: never modify it (json_deep_copy to change it). A write's callback runs
 * after the write is durable, and a read started after it sees the write.
 * SB_EBUSY can also arrive in the callback (the queue filled between two
 * steps of one operation): callers answer it as "busy, retry later".
 * ====================================================================== */

typedef struct sb_store sb_store;
typedef struct sb_ctx_manager sb_ctx_manager;

typedef struct sb_ctx_manager_options {
  sb_store *store;        /* borrowed; must outlive the manager */
  int snapshot_every;     /* full snapshot every N versions; default 32 */
  int64_t default_ttl_ms; /* expiresAt = now + this when a create has none;
                             default 7 days */
  int head_cache;         /* heads kept so an update of the version last
                             seen skips reading it; default 4096, -1 none */
  size_t head_cache_bytes; /* ...and their parsed size together at most
                              this (an estimate: jansson's nodes), least
                              recently used first out; a head larger is
                              not kept; default 64 MiB */
  size_t max_doc_bytes;   /* a version's document as stored (compact JSON)
                             is at most this many bytes: a create or update
                             past it fails SB_ETOOBIG naming both sizes, and
                             a JSON Patch's copy ops may copy no more than
                             this in all; default SB_CTX_MAX_DOC_BYTES */
} sb_ctx_manager_options;

#define SB_CTX_MAX_DOC_BYTES ((size_t)4 << 20)

sb_ctx_manager *sb_ctx_manager_new(const sb_ctx_manager_options *opts);
/* Free the manager. Operations still under way keep what they need and
 * call back as usual (an update between its steps ends with SB_ESTATE,
 * since the store may be gone); close the store first if none may run. */
void sb_ctx_manager_free(sb_ctx_manager *m);
/* Operations under way (reads, creates, updates not yet answered),
 * including the time an update's next version is made on the thread
 * pool, when the store has nothing of it in its queue yet. */
size_t sb_ctx_manager_pending(const sb_ctx_manager *m);

/* Called after every new version is durable (create is version 1), on the
 * loop thread, just before the writer's own callback. */
typedef void (*sb_ctx_change_cb)(void *ud, const char *tenant, const char *id,
                                 int64_t version);
void sb_ctx_manager_on_change(sb_ctx_manager *m, sb_ctx_change_cb cb, void *ud);

/* How an operation ended. Borrowed by the callback. */
typedef struct sb_ctx_result {
  int rc;        /* 0, or SB_ENOENT, SB_ECONFLICT, SB_EINVAL, SB_EBUSY,
                    SB_EIO, SB_ETIMEDOUT, SB_ENOMEM */
  sb_error err;  /* the message when rc != 0 */
  json_t *doc;   /* on success: what the operation returns (see each);
                    NULL on failure. Borrowed: incref to keep. */
  int64_t version; /* the context's version the result is about: the
                      document's; on SB_ECONFLICT the current head's */
  int count;     /* sweep: contexts deleted */
  int64_t run_rev; /* a write whose extras held a run: the run's new rev;
                      on SB_ECONFLICT over the run (not the context), its
                      current rev (else 0) */
  int64_t last_seq; /* a write: the tenant's seq of the last event it wrote
                       (its own context event or the caller's) */
  const char *text; /* create, update, and get of the head: doc as stored
                       (compact JSON, keys sorted; for an update made off
                       the loop), so an answer need not serialise it
                       again; borrowed. NULL for an older version. */
} sb_ctx_result;

typedef void (*sb_ctx_cb)(void *ud, const sb_ctx_result *res);

/* Create a context from `input` (any subset of an MCPContext: workflowId,
 * sessionId, data, metadata). The manager mints id (UUIDv7), sets
 * tenantId, version 1, timestamp, and expiresAt if absent; the input is
 * validated before this returns. res->doc: the stored document. */
int sb_ctx_create_async(sb_ctx_manager *m, const char *tenant,
                        const json_t *input, sb_ctx_cb cb, void *ud,
                        sb_error *err);

/* Every new version is reported by an event written in the same store
 * transaction: its type, with data {"contextId", "version"}. */
#define SB_CTX_EVENT_CREATED "context.created"
#define SB_CTX_EVENT_UPDATED "context.updated"

/* Read version `version` (0 = the head). res->doc: the document. */
int sb_ctx_get_async(sb_ctx_manager *m, const char *tenant, const char *id,
                     int64_t version, sb_ctx_cb cb, void *ud, sb_error *err);

/* The selective context an agent with these requirement `paths` (checked
 * before this returns) receives: res->doc is {"id","version","data":
 * projection,"missing":[paths absent]}. */
int sb_ctx_get_projected_async(sb_ctx_manager *m, const char *tenant,
                               const char *id, const json_t *paths,
                               sb_ctx_cb cb, void *ud, sb_error *err);

/* Version `version` of (tenant, id) if it is the head this manager last
 * wrote or read, else NULL: no store read, so it may be behind a head
 * another process moved since. Borrowed (shared: never modify it), valid
 * until the loop next returns to the manager. A version's document never
 * changes, so whatever holds of it holds of that version: an update at
 * that version, whose compare-and-set then settles whether it is still
 * the head, may be checked against it. */
const json_t *sb_ctx_head_cached(sb_ctx_manager *m, const char *tenant,
                                 const char *id, int64_t version);
/* The newest head of (tenant, id) this manager knows, whatever its
 * version, or NULL; as sb_ctx_head_cached (borrowed, shared, maybe behind
 * another process). For a writer whose own copy may be older: planned on
 * this instead, its update does not meet a conflict that this process's
 * own writes made. */
const json_t *sb_ctx_head_latest(sb_ctx_manager *m, const char *tenant,
                                 const char *id);

typedef enum sb_ctx_patch_kind {
  SB_CTX_MERGE_PATCH = 1, /* RFC 7386 */
  SB_CTX_JSON_PATCH,      /* RFC 6902 */
} sb_ctx_patch_kind;

/* Apply `patch` to version expected_version and store version+1.
 * `patch` is KEPT (a reference is held until the callback): do not modify
 * it meanwhile. res->doc: the new document. On SB_ECONFLICT res->version
 * is the head's version. */
int sb_ctx_update_async(sb_ctx_manager *m, const char *tenant, const char *id,
                        int64_t expected_version, sb_ctx_patch_kind kind,
                        json_t *patch, sb_ctx_cb cb, void *ud, sb_error *err);

/* The same create and update, carrying `extras` (store.h: a workflow
 * run's row, more events) into the store transaction of the new version:
 * all of it is written, or none. Borrowed until the callback runs. A
 * stale run rev fails the whole write with SB_ECONFLICT. new_id: the id
 * of the new context, minted by the caller (a UUID, so it can name it in
 * the extras); NULL mints one. */
typedef struct sb_store_extras sb_store_extras;
/* 0 if a create with this input would be accepted as far as the input
 * goes (the same checks, validation and size limit, nothing written),
 * else the error it would give: for a caller that creates the context
 * later, such as a workflow run at its first write. */
int sb_ctx_check_new(sb_ctx_manager *m, const char *tenant,
                     const json_t *input, sb_error *err);
int sb_ctx_create_ex_async(sb_ctx_manager *m, const char *tenant,
                           const json_t *input, const char *new_id,
                           const sb_store_extras *extras, sb_ctx_cb cb,
                           void *ud, sb_error *err);
/* flags of sb_ctx_update_ex_async */
enum {
  /* The update records a failure or a cancellation, trimmed to what its
   * run cannot do without: it may pass contexts.max_bytes by up to
   * SB_CTX_FAILURE_SLACK bytes, so that a run whose own writes filled its
   * context can still fail or be cancelled rather than stay running; on a
   * context already past both (the limit lowered since it was written),
   * it may be written if it does not make the context larger. */
  SB_CTX_WRITE_FAILURE = 1u,
};
#define SB_CTX_FAILURE_SLACK ((size_t)1024)
int sb_ctx_update_ex_async(sb_ctx_manager *m, const char *tenant,
                           const char *id, int64_t expected_version,
                           sb_ctx_patch_kind kind, json_t *patch,
                           const sb_store_extras *extras, unsigned flags,
                           sb_ctx_cb cb, void *ud, sb_error *err);

/* History newest first, res->doc = [{"version","timestamp","patch"}...]: at
 * most limit (0 = 50) entries below `before` (0 = from the head). */
int sb_ctx_history_async(sb_ctx_manager *m, const char *tenant,
                         const char *id, int64_t before, size_t limit,
                         sb_ctx_cb cb, void *ud, sb_error *err);

/* res->doc: the RFC 6902 patch from version `from` to version `to` (either
 * order). */
int sb_ctx_diff_versions_async(sb_ctx_manager *m, const char *tenant,
                               const char *id, int64_t from, int64_t to,
                               sb_ctx_cb cb, void *ud, sb_error *err);

/* Delete contexts that have expired, in bounded batches; res->count says
 * how many. */
int sb_ctx_sweep_async(sb_ctx_manager *m, sb_ctx_cb cb, void *ud,
                       sb_error *err);

/* A short message for SB_EBUSY, shared by REST and MCP answers. */
#define SB_CTX_BUSY_MESSAGE "the context store is busy; retry shortly"

#endif
