/* run_internal.h: what the files of the workflow engine (the runs) share;
 * flow_internal.h is the definition loader's.
 *
 * engine.c owns the engine and the runs in memory, and the public
 * operations on runs; plan.c turns one change of a run (a step done or
 * failed, a start, a cancellation) into the transaction that records it —
 * the context patch, the run's next state and the events — and write.c
 * writes it;
 * steps.c executes the steps a run has started (calls, questions, waits
 * for events) and turns what happens to them into changes.
 *
 * The run's stored state (its JSON doc) is the truth: the steps started
 * and not yet finished are its "active" list, and after every write the
 * steps in memory are made to match it (started or stopped).
 */
#ifndef SB_FLOW_RUN_INTERNAL_H
#define SB_FLOW_RUN_INTERNAL_H

#include <uv.h>

#include "ctx/ctx.h"
#include "events/events.h"
#include "flow/flow.h"
#include "gateway/gateway.h"
#include "store/store.h"

#define FL_MODULE "flow"
/* Conflicts in a row planned again at once; past them, after a pause
 * (write.c: conflict_pause). A change is never dropped for a conflict. */
#define FL_CONFLICT_TRIES 8

typedef struct fl_run fl_run;

/* A change waiting to be written, in order, one at a time per run. */
typedef enum fl_change_kind {
  FL_START = 1,   /* the run's first transition */
  FL_STEP_DONE,   /* an active step finished: value saved */
  FL_STEP_FAILED, /* an active step failed for good */
  FL_CANCEL,
  FL_RESUME, /* a failed or cancelled run goes on */
  FL_STEP_RETRY, /* an active step's try failed; the next is due: its
                    number is kept with the step, so a restart goes on
                    counting from it */
  FL_CONTINUE,   /* a chain of steps that call no one, cut after
                    SB_FLOW_CHAIN_STEPS, goes on (at doc.continueAt) */
} fl_change_kind;

typedef enum fl_lean {
  FL_LEAN_NO = 0,
  FL_LEAN_NO_ENTRY,
  FL_LEAN_NO_HANDOFF,
} fl_lean;

typedef struct fl_change {
  struct fl_change *next;
  fl_change_kind kind;
  int step, visit; /* STEP_*: which active step */
  json_t *value;   /* STEP_DONE: what is saved (may be NULL) */
  char *agent;     /* who answered, or NULL */
  size_t projection_bytes;
  int64_t handed_version; /* the context version the agent was handed */
  json_t *routing;        /* STEP_DONE by capability or with a context: why
                             this agent ({capability, rank, score, parts,
                             coverage, projectionBytes, contextBytes}) */
  int64_t duration_ms;    /* STEP_DONE: from the step's start to its answer */
  json_t *events;         /* [{type, data}] an agent published */
  char *message;          /* STEP_FAILED, CANCEL: why */
  char *code;             /* STEP_FAILED: a short code (timeout, agent...) */
  /* STEP_FAILED, CANCEL: the context had no room (contexts.max_bytes)
   * for what the change writes in it (fl_steps_refused), so it is written
   * with less, the run and its events still saying why: FL_LEAN_NO_ENTRY
   * without its entry in data.workflow.errors, FL_LEAN_NO_HANDOFF (a step
   * failed) also without taking its on_failure: the run fails there. Each
   * may pass the limit by SB_CTX_FAILURE_SLACK. */
  fl_lean lean;
  int attempts;          /* STEP_RETRY: the number of the next try */
  uint64_t retry_in_ms;  /* STEP_RETRY: the backoff before it */
  sb_flow_cb cb; /* acknowledged once written (may be NULL) */
  void *ud;
} fl_change;

/* A step started and not finished, in memory. */
typedef struct fl_active {
  fl_run *run;
  int step, visit, attempt;
  int key_visit; /* the visit whose idempotency key it sends: its own, or
                    after a resume the one it stopped at */
  int room_waits; /* refusals for capacity since the last answer */
  int call_held;  /* a place among the tenant's calls in flight */
  int64_t started_ms;
  /* When the first of those refusals came (wall clock): the try's wait
   * for room is counted from it, in this process. */
  int64_t room_from_ms;
  int64_t deadline_ms; /* ask, wait: wall clock; 0 = none */
  /* A branch of a parallel step with a timeout: when the whole parallel
   * must be done (wall clock; 0 = none). */
  int64_t par_deadline_ms;
  int64_t since;       /* wait: events after this seq */
  json_t *where;       /* wait: the filter, resolved when it started */
  sb_gateway_call *call;
  uv_timer_t *timer; /* a retry's backoff, or the deadline */
  uv_timer_t *par_timer; /* the parallel step's deadline */
  sb_events_sub *sub;
  int finished; /* its change is queued: ignore what comes after */
} fl_active;

struct fl_run {
  sb_flow_engine *e;
  sb_list_link link; /* in e->runs until detached */
  fl_run *hnext;     /* in e->index's bucket until detached */
  uint64_t hash;     /* of tenant and id (engine.c: run_hash) */
  char *tenant, *id;
  sb_flow_def *def; /* own: built from the stored definition */
  char *def_text;   /* that definition as JSON text (the first write's) */
  json_t *doc;      /* the run's state as stored */
  int64_t rev;      /* its rev (0 before the first write) */
  char *context_id;
  json_t *ctx;      /* the context as last written or read */
  int64_t last_seq; /* seq of the last event of its last write */
  fl_active **active;
  size_t nactive;
  fl_change *queue, *queue_tail;
  int writing;     /* a transaction is under way */
  int ending;      /* ... and it ends the run (completed, failed, cancelled) */
  int conflicts;   /* conflicts (context or row) in a row */
  int reread_after_pause; /* paused for conflicts: read the context's head
                             again before the write after it (write.c) */
  int write_failures; /* failed writes of the head change in a row
                         (write.c: retry_failed) */
  int holds;       /* callbacks under way that may end it */
  int detached;    /* finished or engine gone: freed when not held */
  int new_context; /* its first write creates the context */
  int loading;     /* brought back (at start, or resumed), its context
                      not read yet: nothing is written */
  int visiting;    /* loaded only to write one change on a run another
                      process drives (fl_run_visit): its steps never start
                      here, and it leaves memory once that is answered */

  uv_timer_t *write_retry; /* the store was busy: write again (held) */
  /* One write at a time per context in this engine (write.c: ctx_turn):
   * in e->ctx_writers while it has the turn, in e->ctx_waiting (held,
   * `writing` set) while it waits for it. */
  sb_list_link cw_link;
  int ctx_turn, ctx_waiting;
  sb_list_link go_link;    /* in e->go_on while its cut chain waits (held) */
  int go_queued;
};

/* A run the store says is running or waiting that this engine cannot
 * bring back (revive.c): its stored definition no longer loads (checks
 * made stricter since it started), or its context cannot be read. Kept
 * so that every operation on it says why instead of "retry shortly" for
 * ever: a read shows `blocked`, a cancel ends it (its row alone), an
 * answer or a resume is refused naming the reason. */
typedef enum fl_block_reason {
  FL_BLOCK_DEFINITION = 1, /* its definition does not load */
  FL_BLOCK_CONTEXT,        /* its context cannot be read */
} fl_block_reason;

typedef struct fl_blocked {
  sb_list_link link; /* in e->blocked */
  char *tenant, *id;
  fl_block_reason reason;
  char message[512];
} fl_blocked;

/* A claim's runs (sb_store_runs_claim), brought into memory in slices. */
typedef struct fl_claimed {
  sb_store_runs runs;
  size_t at;      /* the next to bring */
  size_t brought; /* queued to come back so far */
  int at_start;
} fl_claimed;

struct sb_flow_engine {
  sb_flow_engine_options o;
  sb_list runs; /* in memory, newest first */
  size_t nruns;
  /* The same count by tenant, for o.max_runs_per_tenant: tenant -> its
   * runs in memory (an integer; a tenant with none has no member). */
  json_t *tenant_runs;
  /* The same runs by tenant and id (fl_run_find): chained in
   * index[hash & (nindex - 1)], nindex a power of two doubled as nruns
   * passes it. */
  fl_run **index;
  size_t nindex;
  int stopping;
  /* A graceful stop has begun (sb_flow_engine_drain): nothing new starts
   * (no step, no run, no takeover), the calls in flight end and are
   * written. Never cleared: the process stops next. */
  int draining;
  sb_flow_stats stats;
  /* Runs brought back at start whose context is still to be read, each
   * held: to_load[to_load_at..nto_load), read `reading` at a time. */
  fl_run **to_load;
  size_t nto_load, to_load_cap, to_load_at, reading;
  uv_timer_t *load_timer; /* the store was busy: try again shortly */
  /* Every o.takeover_every_ms, the runs no living process drives are
   * claimed (revive.c); `claiming` from a claim's submission until the
   * runs it brought are all in memory, brought a slice per turn of the
   * loop from `claimed` (claim_idle: the next slice). */
  uv_timer_t *takeover;
  int claiming;
  fl_claimed claimed;
  uv_idle_t *claim_idle;
  /* The runs in progress at start have been listed (and queued to come
   * back): a run the store says is waiting that is not in memory since
   * was left there by another process (switchboard run) and is taken
   * over when it is acted on (fl_run_adopt). */
  int listed;
  /* Store operations under way whose answers need the engine
   * (fl_engine_ref: answers and cancels of runs not in memory, resume and
   * fork reads, blocked runs' cancellations, the read of the runs in
   * progress at start): told when the engine goes. */
  sb_list waiting_ops;
  /* Runs whose cut chain goes on (fl_plan_go_on), in order: one part per
   * turn of the loop for them all, from an idle handle. */
  sb_list go_on;
  uv_idle_t *go_idle;
  sb_list blocked; /* fl_blocked: runs that cannot be brought back */
  /* Runs writing their context now, one per context, and runs waiting
   * for their turn at a context, in order (write.c: ctx_turn). */
  sb_list ctx_writers, ctx_waiting;
};

/* revive.c: a run left waiting in the store by another process (rec),
 * brought into memory as a run coming back at start is; `then` is called
 * once its context is read and its steps are under way again (rc 0), or
 * with why it could not be. */
typedef void (*fl_adopt_cb)(void *ud, int rc, const sb_error *err);
int fl_run_adopt(sb_flow_engine *e, const sb_store_run_record *rec,
                 fl_adopt_cb then, void *ud, sb_error *err);

/* revive.c: a run in progress in the store that no run in memory stands
 * for (another process drives it, or drove it and died), loaded to write
 * the change c (a cancellation) on it without starting its steps; c is
 * answered, and the run leaves memory. On failure c is not taken. */
int fl_run_visit(sb_flow_engine *e, const sb_store_run_record *rec,
                 fl_change *c, sb_error *err);

/* engine.c */
fl_run *fl_run_find(sb_flow_engine *e, const char *tenant, const char *id);
void fl_run_release(fl_run *r); /* drop a hold; frees a detached run */
void fl_run_detach(fl_run *r);  /* out of the engine (a failed start) */
json_t *fl_run_view(const json_t *doc, int64_t context_version);
/* A run in memory from its definition (not yet started or written). */
fl_run *fl_run_new(sb_flow_engine *e, const char *tenant, const char *id,
                   const json_t *source, sb_error *err);
/* A run (not yet written) and its first change; shared by start and
 * fork. `new_ctx`: the context to create, or NULL to read context_id. */
int fl_launch(sb_flow_engine *e, const char *tenant, const sb_flow_def *def,
              const json_t *source, const char *context_id, json_t *new_ctx,
              const json_t *input, json_t *extra, sb_flow_cb cb, void *ud,
              sb_error *err);

/* A stored run read for an operation on it (resume, fork): `loaded` gets
 * the record and owns the read, which it frees with fl_read_free; a
 * failed read is answered to cb without it. */
/* A store operation whose answer needs the engine: while the store has
 * not answered it is in e->waiting_ops, and an engine freed meanwhile (the
 * store, closed after it, answers inside sb_store_close) clears `e`. */
typedef struct fl_engine_ref {
  sb_flow_engine *e; /* NULL once the engine is gone */
  sb_list_link link;
  int linked;
} fl_engine_ref;
void fl_engine_ref_take(fl_engine_ref *ref, sb_flow_engine *e);
/* The store answered (or the operation never started): out of the list.
 * Returns the engine, or NULL when it is gone. */
sb_flow_engine *fl_engine_ref_drop(fl_engine_ref *ref);

typedef struct fl_read fl_read;
typedef void (*fl_read_loaded)(fl_read *op, const sb_store_run_record *rec);
struct fl_read {
  fl_engine_ref ref; /* ref.e: the engine, NULL when it went first */
  sb_flow_cb cb;
  void *ud;
  char *step; /* fork: the step it forks from */
  int kind;
  size_t limit;
  fl_read_loaded loaded;
  json_t *blocked; /* get, list: the blocked runs it may show, as they
                      were when it was asked (fl_blocked_snapshot): the
                      engine may be gone when the store answers */
};
int fl_read_run(sb_flow_engine *e, const char *tenant, const char *id,
                const char *step, fl_read_loaded loaded, sb_flow_cb cb,
                void *ud, sb_error *err);
void fl_read_free(fl_read *op);

/* revive.c: runs that cannot be brought back. */
fl_blocked *fl_blocked_find(sb_flow_engine *e, const char *tenant,
                            const char *id);
void fl_blocked_clear(sb_flow_engine *e); /* the engine goes */
/* The tenant's blocked runs ({id: {reason, message}}; only `id`'s when
 * not NULL), or NULL when none: new reference. */
json_t *fl_blocked_snapshot(sb_flow_engine *e, const char *tenant,
                            const char *id);
/* `blocked` into a run's view when the snapshot has it and the view is
 * still in progress (a cancel may have ended it meanwhile). */
void fl_blocked_mark(json_t *view, const json_t *snapshot);
/* Why an operation (`what`: "be answered"...) does not apply: SB_ESTATE. */
int fl_blocked_refuse(const fl_blocked *b, const char *what, sb_error *err);
/* Cancel a blocked run: its row and a run.cancelled event, no context
 * version (it cannot be planned). */
int fl_blocked_cancel(sb_flow_engine *e, fl_blocked *b, const char *reason,
                      sb_flow_cb cb, void *ud, sb_error *err);
/* During a drain: SB_EBUSY, err saying the server is stopping and to try
 * `what` again once it is back; else 0. */
int fl_refuse_draining(const sb_flow_engine *e, const char *what,
                       sb_error *err);
void fl_change_free(fl_change *c);
/* Queue a change; the run writes changes one after the other. */
void fl_run_change(fl_run *r, fl_change *c);
void fl_reply(sb_flow_cb cb, void *ud, int rc, const sb_error *err,
              json_t *run);
void fl_reply_seq(sb_flow_cb cb, void *ud, int rc, const sb_error *err,
                  json_t *run, int64_t seq);

/* plan.c: one change of a run planned on copies of its state and of its
 * context; nothing of the run in memory changes. */
typedef struct fl_plan {
  fl_run *r;
  json_t *doc;    /* the run's next state */
  json_t *ops;    /* JSON Patch on the context */
  json_t *ctx;    /* the context with ops applied */
  json_t *events; /* [{type, data}] */
  int64_t now;
  int64_t version; /* the context version this transaction makes */
  int chained;     /* steps advance() executed: at SB_FLOW_CHAIN_STEPS (or
                      SB_FLOW_CHAIN_US) the chain is cut (continueAt) */
  uint64_t started_ns; /* when planning began (uv_hrtime) */
  size_t deferred; /* FL_CONTINUE: chains still to go on in this plan */
} fl_plan;
/* Plan change c of r into *p (cleared first): 0, SB_ESTATE (the change
 * no longer applies: its step is not under way, the run has ended) or
 * SB_ENOMEM. *p is fl_plan_clear'ed by the caller either way. */
int fl_plan_build(fl_run *r, fl_change *c, fl_plan *p);
void fl_plan_clear(fl_plan *p);
/* Completed, failed or cancelled: nothing more happens to the run. */
int fl_status_ended(sb_flow_status st);

/* write.c: r's row was written by another process since r was loaded
 * (that process took the run over from this one, then ended: it was
 * claimed back, revive.c): read it again and go on from what is stored,
 * as after a conflict. Nothing to do while a change is on its way (its
 * write meets the conflict). */
void fl_run_reread(fl_run *r);

/* write.c: write the change at the head of r's queue. */
void fl_plan_write(fl_run *r);
/* A run whose state says it goes on (continueAt: a chain was cut) queues
 * the change that does on a later turn of the loop (one such part per
 * turn, runs in turn), unless one is queued already. After its write is
 * durable, and after a restart brings it back. */
void fl_plan_go_on(fl_run *r);
/* Out of the runs waiting to go on (a run detached). */
void fl_plan_go_on_drop(fl_run *r);
void fl_plan_go_on_close(sb_flow_engine *e); /* the engine stops */
/* Start *t (made on the store's loop the first time, data as given) to
 * call cb once after ms, unless it is already started: 1 when started
 * now, 0 when it already was, -1 out of memory. Closed with
 * fl_timer_close. */
int fl_timer_once(uv_timer_t **t, sb_flow_engine *e, void *data,
                  uv_timer_cb cb, uint64_t ms);
void fl_timer_close(uv_timer_t **t);

/* steps.c */
void fl_steps_sync(fl_run *r);     /* start/stop actives to match doc */
void fl_steps_stop_all(fl_run *r); /* stop every active (no change) */
/* A cancellation was not written: the steps it told to stop (still under
 * way in the store) take up again, or start again from the stored run
 * when their end went by meanwhile; memory matches the store again. */
void fl_steps_revive(fl_run *r);
int fl_steps_answer(fl_run *r, const char *step, const json_t *answer,
                    sb_flow_cb cb, void *ud, sb_error *err);
int fl_active_index(const fl_run *r, int step, int visit);
/* The write of the change at the head of r's queue failed with rc: if
 * the context refused a step's end (its result or answer does not fit),
 * 1 when that change became the step's failure (written next), else 0
 * (an answer's question is open again; the change is answered rc). */
int fl_steps_refused(fl_run *r, int rc, const sb_error *err);
/* A run leaving memory gives up its place among those waiting to write
 * their context (the caller holds it or frees it). */
void fl_write_wait_drop(fl_run *r);

/* Small helpers (plan.c). */
const char *fl_str(const json_t *obj, const char *key);
int64_t fl_int(const json_t *obj, const char *key);

#endif
