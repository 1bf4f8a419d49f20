/* flow: workflows — definitions written by hand in YAML, and durable runs
 * of them that hand the context from agent to agent.
 *
 * A workflow is a list of steps. A run executes them one at a time (or
 * several at once inside a `parallel` step) against one context: each
 * step that completes writes a new version of that context, the run's own
 * state and the events it caused in one store transaction, so a crash of
 * switchboard resumes the run from the last completed step.
 *
 * ---- the definition format (one workflow per YAML document) -----------
 *
 *   name: lead-to-test-drive        # [A-Za-z0-9._-]{1,64}, unique
 *   description: Inquiry to booked test drive
 *   max_steps: 100                  # steps a run may execute (a cycle
 *                                   # guard); default 100, 1..100000
 *   steps:
 *     - id: intake                  # [A-Za-z0-9_-]{1,64}, unique in the
 *                                   # workflow (nested steps included)
 *       call:                       # call a tool of an agent
 *         capability: intake.classify   # routed with the run's context,
 *         # agent: general              # ...or one agent by id (not both)
 *         tool: classify_inquiry
 *         arguments:                # literals, and "$path" values taken
 *           text: $conversation.messages[-1].content   # from the context
 *           channel: web
 *       save: conversation.entities # where the result goes; default
 *                                   # workflow.outputs.<step id>; or a
 *                                   # mapping {path: $result.<keys>} that
 *                                   # saves parts of it (save_map)
 *       timeout: 20s                # each try; units ms s m h d
 *       retry: { attempts: 3, backoff: 500ms }  # tries in all; backoff
 *                                   # doubles per try, capped at 30s
 *       on_failure: human-review    # step to go to once retries are spent
 *       next: route                 # default: the step that follows
 *     - id: route
 *       branch:                     # first case whose `if` holds
 *         - if: { path: workflow.outputs.intake.intent, equals: buy }
 *           goto: offer
 *         - if: { any: [ { path: conversation.intent, in: [service, parts] },
 *                        { path: workflow.variables.vin, exists: true } ] }
 *           goto: service
 *         - else: general           # no case holds and no else: `next`
 *     - id: offer
 *       parallel:                   # run these at once; join when all end
 *         - id: search
 *           call: { capability: sales.inventory, tool: search_inventory }
 *         - id: quote
 *           call: { capability: finance.quote, tool: payment_quote }
 *     - id: confirm
 *       ask:                        # a person answers (the run waits)
 *         message: Which slot suits you?
 *         schema: { type: object, properties: { slot: { type: string } } }
 *         timeout: 1h
 *       save: workflow.variables.slot
 *     - id: announce
 *       emit: { type: lead.qualified, data: { vin: $workflow.variables.vin } }
 *     - id: approval
 *       wait:                       # until an event of this type whose
 *         event: finance.approved   # data matches `where` (each key equal)
 *         where: { contextId: $context.id }
 *         timeout: 10m
 *     - id: done
 *       end: completed              # or: end: failed (with message:)
 *
 * (An excerpt: the steps service, general and human-review it names are
 * left out; examples/workflows/example.yaml is a complete workflow.)
 *
 * A step has exactly one of call, branch, parallel, ask, emit, wait, end.
 * Keys by kind: call: save, timeout, retry, on_failure, next; branch:
 * next; parallel: timeout, on_failure, next; ask and wait: save,
 * on_failure, next (their timeout goes inside ask:/wait:); emit: next;
 * end: message. Steps inside a parallel are call, ask, emit or wait, with
 * no next or on_failure (they end at the join). retry.attempts is 1..20
 * and required in retry:, backoff defaults to 1s. Durations are a whole
 * number and a unit (ms s m h d, at most 366d); a bare number is refused.
 * Event types (emit.type, wait.event) are lowercase [a-z0-9_-] names
 * joined by dots, at least two ("lead.qualified").
 *
 * Conditions: { path, equals | not_equals | in | exists | gt | gte | lt |
 * lte | contains: value }, { all: [...] }, { any: [...] }, { not: cond }.
 * equals compares JSON values (numbers by value: 1 equals 1.0); in takes
 * a list; exists: true holds when the path has a value other than null;
 * gt/gte/lt/lte hold only between numbers; contains is a substring of a
 * string or an element of an array. The operand may be a "$path".
 * A "$path" value reads the context's data with the projection syntax
 * (ctx.h), or $context.id, $context.version, $run.id, $run.workflow;
 * "$$..." is a literal string starting with "$". A path that matches
 * nothing gives null.
 * ====================================================================== */
#ifndef SB_FLOW_H
#define SB_FLOW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* ---- definitions (def.c, cond.c) ------------------------------------- */

typedef enum sb_flow_step_kind {
  SB_FLOW_CALL = 1,
  SB_FLOW_BRANCH,
  SB_FLOW_PARALLEL,
  SB_FLOW_ASK,
  SB_FLOW_EMIT,
  SB_FLOW_WAIT,
  SB_FLOW_END,
} sb_flow_step_kind;

const char *sb_flow_step_kind_name(sb_flow_step_kind k);

typedef enum sb_flow_cond_op {
  SB_FLOW_COND_ALL = 1,
  SB_FLOW_COND_ANY,
  SB_FLOW_COND_NOT,
  SB_FLOW_COND_EQUALS,
  SB_FLOW_COND_NOT_EQUALS,
  SB_FLOW_COND_IN,
  SB_FLOW_COND_EXISTS,
  SB_FLOW_COND_GT,
  SB_FLOW_COND_GTE,
  SB_FLOW_COND_LT,
  SB_FLOW_COND_LTE,
  SB_FLOW_COND_CONTAINS,
} sb_flow_cond_op;

typedef struct sb_flow_cond {
  sb_flow_cond_op op;
  char *path;                 /* comparisons: "$"-less path, as for $path */
  json_t *value;              /* comparisons: the operand (may hold $path) */
  struct sb_flow_cond *items; /* all, any: the list; not: one item */
  size_t nitems;
} sb_flow_cond;

typedef struct sb_flow_case {
  sb_flow_cond cond;
  int target; /* step index */
} sb_flow_case;

#define SB_FLOW_NONE (-1) /* no step: the workflow ends (completed) */

typedef struct sb_flow_step {
  char *id;
  size_t line; /* in the file, for messages */
  sb_flow_step_kind kind;
  int parent; /* index of the parallel step holding it, or SB_FLOW_NONE */
  /* call */
  char *agent, *capability, *tool;
  json_t *arguments; /* object template, never NULL for a call */
  /* ask */
  char *message;
  json_t *schema; /* elicitation requestedSchema, or NULL */
  /* emit (event_data a template, may be NULL) and wait (where) */
  char *event_type;
  json_t *event_data;
  json_t *where;
  /* branch */
  sb_flow_case *cases;
  size_t ncases;
  int otherwise; /* step index, or SB_FLOW_NONE: fall to next */
  /* parallel: indices of its nested steps */
  int *branches;
  size_t nbranches;
  /* end */
  int end_failed; /* end: failed */
  char *end_message;
  /* common */
  char *save;          /* path the result is saved at (default set by the
                          loader: workflow.outputs.<id>); NULL for steps
                          with no result (branch, parallel, emit, end) */
  json_t *save_map;    /* `save` as a mapping instead: {context path: the
                          part of the result, as keys joined by '.' (""
                          for the whole result)}; NULL when save is a path */
  uint64_t timeout_ms; /* 0: none (a call still has its agent's) */
  int retry_attempts;  /* tries in all, >= 1 */
  uint64_t retry_backoff_ms;
  int on_failure; /* step index or SB_FLOW_NONE */
  int next;       /* step index or SB_FLOW_NONE (ends the run) */
} sb_flow_step;

typedef struct sb_flow_def {
  char *name;
  char *description;
  char *file; /* where it was read, for messages */
  int max_steps;
  sb_flow_step *steps; /* top-level steps first, in file order, then the
                          nested steps of parallel steps */
  size_t nsteps;
  json_t *source; /* the definition as JSON (kept in each run) */
} sb_flow_def;

/* Build a definition from its JSON (a YAML document read with lines:
 * `lines` maps a JSON Pointer into `src` to its 1-based line, may be NULL)
 * and check everything: unknown keys, types, ids, references (next, goto,
 * else, on_failure name existing top-level steps), durations, paths,
 * conditions. Errors read "FILE:LINE: step "ID": what is wrong", naming
 * the key. *out is NULL on failure. */
int sb_flow_def_from_json(const json_t *src, const json_t *lines,
                          const char *file, sb_flow_def **out, sb_error *err);
void sb_flow_def_free(sb_flow_def *d);
/* Index of a step by id, or SB_FLOW_NONE. */
int sb_flow_def_step(const sb_flow_def *d, const char *id);

/* A set of definitions by name, loaded from the config (inline
 * definitions and files/directories of *.yaml). */
typedef struct sb_flow_defs {
  sb_flow_def **items;
  size_t len;
} sb_flow_defs;

/* Load `list` (the config's `workflows:` JSON: each item an inline
 * definition or a string naming a .yaml/.yml file or a directory of them,
 * relative to base_dir) into *out (overwritten; empty on failure).
 * `lines` is the config's line map of the list (pointers like
 * "/0/steps/2/id"), config_file names inline definitions in messages.
 * A directory's *.yaml and *.yml files (not hidden ones) load in name
 * order. Duplicate names are errors naming both places. */
int sb_flow_defs_load(const json_t *list, const json_t *lines,
                      const char *config_file, const char *base_dir,
                      sb_flow_defs *out, sb_error *err);
void sb_flow_defs_clear(sb_flow_defs *defs);
const sb_flow_def *sb_flow_defs_find(const sb_flow_defs *defs,
                                     const char *name);

/* What a "$path" may read besides the context's data. */
typedef struct sb_flow_scope {
  const json_t *context; /* the whole context document (data inside) */
  const char *run_id;
  const char *workflow;
} sb_flow_scope;

/* A template with every "$path" string replaced by its value (a new
 * reference; a path matching nothing gives null). NULL on ENOMEM. */
json_t *sb_flow_template(const json_t *tmpl, const sb_flow_scope *scope);
/* 1 if the condition holds, 0 if not. */
int sb_flow_cond_eval(const sb_flow_cond *c, const sb_flow_scope *scope);

/* "90s" -> 90000; units ms s m h d; SB_EINVAL otherwise. */
int sb_flow_duration_parse(const char *s, uint64_t *ms);

/* ---- runs (engine.c, steps.c, plan.c, write.c) --------------------------
 *
 * A run executes one workflow against one context. Every transition (a
 * step done or failed, the steps it starts, a cancellation, a resumption)
 * is ONE store transaction holding the context's next version (the
 * workflow part of data: currentStep, completedSteps, outputs, errors,
 * variables; the result saved; metadata.agents), the run's row and the
 * events it caused. Steps that call no one (branch, emit, end) are
 * recorded in the version of the transition that reaches them, at most
 * SB_FLOW_CHAIN_STEPS of them per transition (below). A crash
 * resumes every running or waiting run from its last transition: the
 * steps it had started are started again, and a call carries the same
 * idempotency key (SB_FLOW_META_KEY in _meta, "<run>/<step>/<visit>") as
 * before, so an agent that honours it acts once (delivery is at least
 * once). */

/* A chain of steps that call no one (branch, emit, end: a loop) is cut
 * into transitions of at most SB_FLOW_CHAIN_STEPS steps, or fewer once
 * planning them has taken SB_FLOW_CHAIN_US (checked every
 * SB_FLOW_CHAIN_CHECK steps: steps with costly templates or conditions):
 * the run writes what it did so far (its state says where it goes on:
 * `continueAt`) and goes on from there once that is durable, one part per
 * turn of the loop, so a long loop never holds the event loop for long,
 * and a crash resumes it from the last part written. */
#define SB_FLOW_CHAIN_STEPS 256
#define SB_FLOW_CHAIN_US 5000
#define SB_FLOW_CHAIN_CHECK 16
/* A run's history keeps its first SB_FLOW_HISTORY_FIRST and its last
 * SB_FLOW_HISTORY_LAST entries; the ones between are dropped and counted
 * (`historyElided`), so a looping run's state stays bounded. */
#define SB_FLOW_HISTORY_FIRST 100
#define SB_FLOW_HISTORY_LAST 400

#define SB_FLOW_META_KEY "switchboard/idempotencyKey"
#define SB_FLOW_META_RUN "switchboard/run" /* {id, workflow, step} */
/* An agent publishes events in its result's _meta: [{"type", "data"}]. */
#define SB_FLOW_META_EVENTS "switchboard/events"

typedef enum sb_flow_status {
  SB_FLOW_RUNNING = 1,
  SB_FLOW_WAITING, /* for a person's answer or an event */
  SB_FLOW_COMPLETED,
  SB_FLOW_FAILED,
  SB_FLOW_CANCELLED,
} sb_flow_status;

const char *sb_flow_status_name(sb_flow_status s);
/* The status of a name, or 0. */
sb_flow_status sb_flow_status_of(const char *name);

typedef struct sb_flow_engine sb_flow_engine;
typedef struct sb_store sb_store;
typedef struct sb_ctx_manager sb_ctx_manager;
typedef struct sb_gateway sb_gateway;
typedef struct sb_events sb_events;

typedef struct sb_flow_engine_options {
  sb_store *store; /* all borrowed, and must outlive the engine */
  sb_ctx_manager *ctx;
  sb_gateway *gateway;
  sb_events *events;
  const sb_flow_defs *defs; /* the workflows runs may start */
  int max_runs;             /* runs in progress at once; default 10000 */
  /* ...and of one tenant, so that one tenant's waiting runs cannot take
   * every place; default 1000. Only new runs (a start, a fork) are
   * refused, SB_EBUSY naming the limit; runs brought back (at start,
   * taken over, resumed) count but always come back. */
  int max_runs_per_tenant;
  /* The tenant's calls in flight (quotas.max_concurrent_calls): asked
   * before each agent call of a step (quota_ud). hold_call returns 0 with
   * a place taken, or non-zero with why (cap bytes) filled: the step then
   * waits for room, as for an agent at its maxConcurrent (within its
   * timeout), instead of failing. release_call gives the place back when
   * the call ends. NULL: steps' calls are not counted. */
  int (*hold_call)(void *ud, const char *tenant, char *why, size_t cap);
  /* Asked (quota_ud) as each step of a run started by a restricted
   * principal starts (call, ask, wait), with the scopes it was started
   * with (a JSON array of strings, borrowed) and the run's context as it
   * stands: 0 to go on, or non-zero with err (SB_EPERM, err.scope the
   * permission) to fail the step with code "forbidden" (so the run, unless
   * an on_failure step goes on; each is asked again). NULL: not asked. */
  int (*step_permitted)(void *ud, const json_t *scopes, const json_t *ctx,
                        sb_error *err);
  void (*release_call)(void *ud, const char *tenant);
  void *quota_ud;
  /* After sb_flow_engine_resume_all, every this many ms: take over the
   * runs in progress whose process has ended since (sb_store_runs_claim:
   * a `switchboard run` killed, another server on the store gone) and
   * continue them here. 0: only at start. */
  int takeover_every_ms;
} sb_flow_engine_options;

sb_flow_engine *sb_flow_engine_new(const sb_flow_engine_options *o,
                                   sb_error *err);
/* Stop: calls in flight are cancelled, runs stay as stored (running or
 * waiting) and continue at the next start. */
void sb_flow_engine_free(sb_flow_engine *e);
/* A graceful stop's first half (server.shutdown_grace_ms): from now on
 * the engine sends no new call to an agent — not a run's next step, not a
 * retry after its backoff or a call that waited for room, not a branch of
 * a parallel step — and starts no ask or wait, no new run (start, fork),
 * no resume, no answer, no takeover of other processes' runs, no next
 * part of a cut chain: those are SB_EBUSY ("stopping") or simply wait.
 * The calls already in flight go on, and their ends (done, failed, a
 * retry due) are written as usual, as are a deadline that passes and a
 * cancellation. A step that would have started is not failed: it stays
 * active in its run's stored state, exactly as after a crash, and starts
 * (with the same idempotency key) at the next start. Without a drain,
 * a step finishing while the server waited for its requests had its next
 * step sent, then cut off at the exit and sent again after the restart: a
 * second execution by an agent that does not honour the key. Returns
 * sb_flow_engine_busy. Cannot be undone: the engine is freed next. */
size_t sb_flow_engine_drain(sb_flow_engine *e);
/* What a drain waits for: steps whose agent call is in flight, and runs
 * with a transition being written or queued (a step's end to record).
 * 0 once the runs in memory are all as stored and nothing is in flight. */
size_t sb_flow_engine_busy(const sb_flow_engine *e);
/* Replace the definitions new runs start from (runs in progress keep the
 * one they started with). */
void sb_flow_engine_set_defs(sb_flow_engine *e, const sb_flow_defs *defs);
/* Load every running or waiting run no living process drives from the
 * store (sb_store_runs_claim) and continue it; then, with
 * takeover_every_ms, those whose process ends later. */
int sb_flow_engine_resume_all(sb_flow_engine *e, sb_error *err);

/* How an operation on a run ended: rc 0 with the run as JSON (the view
 * REST and MCP show: id, workflow, status, contextId, contextVersion,
 * createdAt, updatedAt, current, waiting, history, error, forkedFrom,
 * stepsRun, historyElided when entries were dropped; each `waiting` entry
 * names its step, kind, visit and what it waits for; `current` includes
 * the step a loop cut into parts goes on at; `blocked`: {reason, message}
 * for a run in progress this engine could not bring back at start: its
 * stored definition no longer loads, or its context cannot be read; an
 * answer, resume or fork of it is SB_ESTATE naming why, a cancel writes
 * its row alone), or a negative code with err. `run` is borrowed. */
typedef struct sb_flow_reply {
  int rc;
  sb_error err;
  json_t *run;
  int64_t seq; /* a change: the tenant's seq of the last event it wrote
                  (follow the run's events after it); else 0 */
} sb_flow_reply;
typedef void (*sb_flow_cb)(void *ud, const sb_flow_reply *r);

typedef struct sb_flow_start {
  const char *tenant;
  const char *workflow;
  const char *context_id; /* an existing context, or NULL: a new one */
  /* {"context": {partial MCPContext for a new context}, "variables": {...
   * merged into data.workflow.variables}}; NULL: none. Borrowed. */
  const json_t *input;
  /* Who starts it. A restricted principal's scopes go with the run,
   * stored in it (so a restart keeps them; a fork inherits them), and
   * each step is asked step_permitted with them. NULL: unrestricted. */
  const sb_principal *principal;
  /* The starter's OpenTelemetry trace context ({traceparent, tracestate?,
   * baggage?}, already checked: sb_mcp_trace_context), borrowed: kept
   * with the run (a restart keeps it) and put in the _meta of every call
   * the run makes, so the agents' spans join the starter's trace. NULL:
   * none. */
  const json_t *trace;
} sb_flow_start;

/* Every function below: 0 when under way (cb runs once, later, after the
 * change is durable), or a negative code with err (cb never runs):
 * SB_ENOENT no such workflow / run / step, SB_EINVAL bad input, SB_ESTATE
 * the run is not in a state for it, SB_EBUSY too many runs or the store
 * is busy. */
int sb_flow_run_start(sb_flow_engine *e, const sb_flow_start *s, sb_flow_cb cb,
                      void *ud, sb_error *err);
/* The longest cancellation reason, in bytes: a longer one is SB_EINVAL
 * (kept whole in the run's error and its run.cancelled event, never cut). */
#define SB_FLOW_REASON_MAX 256
int sb_flow_run_cancel(sb_flow_engine *e, const char *tenant, const char *id,
                       const char *reason, sb_flow_cb cb, void *ud,
                       sb_error *err);
/* The answer to an `ask` step (step NULL: the one the run waits on). */
int sb_flow_run_answer(sb_flow_engine *e, const char *tenant, const char *id,
                       const char *step, const json_t *answer, sb_flow_cb cb,
                       void *ud, sb_error *err);
/* 0 if `answer` is one the ask step `step` with this schema (NULL: none)
 * accepts, else SB_EINVAL naming the mismatch: what sb_flow_run_answer
 * checks, for a caller with several answers to check before giving any
 * (the schema as in the run's `waiting` entry). */
int sb_flow_answer_check(const char *step, const json_t *schema,
                         const json_t *answer, sb_error *err);
/* A failed or cancelled run goes on from the step it stopped at. */
int sb_flow_run_resume(sb_flow_engine *e, const char *tenant, const char *id,
                       sb_flow_cb cb, void *ud, sb_error *err);
/* A new run from the context version that completed step `step` of run
 * `id` left, going on with the steps that came next. */
int sb_flow_run_fork(sb_flow_engine *e, const char *tenant, const char *id,
                     const char *step, sb_flow_cb cb, void *ud, sb_error *err);
int sb_flow_run_get(sb_flow_engine *e, const char *tenant, const char *id,
                    sb_flow_cb cb, void *ud, sb_error *err);
/* reply.run is {"runs": [...], "nextCursor"?}: newest first, with this
 * status (NULL: any), ids below `cursor` (NULL: from the newest). */
int sb_flow_run_list(sb_flow_engine *e, const char *tenant, const char *status,
                     const char *cursor, size_t limit, sb_flow_cb cb, void *ud,
                     sb_error *err);

/* The view of a run as stored (its row's doc, JSON text), the one
 * sb_flow_run_get answers with; `listing`: without history and input, as
 * in sb_flow_run_list. For readers of the store without an engine (the
 * CLI). New reference; NULL if the text is not a run's state. */
json_t *sb_flow_run_view(const char *stored_doc, int listing);

/* Counters for tests and benchmarks. */
typedef struct sb_flow_stats {
  uint64_t transitions; /* written */
  uint64_t conflicts;   /* context or run row moved under a run: re-read,
                           redone */
  uint64_t steps;       /* steps executed by the transitions planned (one
                           planned again after a conflict counts again) */
  uint64_t write_failures; /* transitions the store failed (locked past
                              its busy timeout, I/O error, disk full),
                              kept and written again after a pause */
  uint64_t taken_over; /* runs of processes on the store that ended,
                          taken over after the start (takeover_every_ms) */
  size_t runs;          /* in progress in this process */
  size_t waiting_turn;  /* ...waiting for their turn to write a context
                           another of them is writing */
} sb_flow_stats;
void sb_flow_engine_stats(const sb_flow_engine *e, sb_flow_stats *out);

#endif
