/* write.c: a run's changes written, one at a time, each as one
 * transaction (the context's next version, the run's row and the events;
 * plan.c plans it).
 *
 * Nothing of the run in memory changes until the transaction is durable;
 * then the run takes the planned state and its steps are made to match
 * it. If the context moved meanwhile, the change is planned again on the
 * new head; if the run's own row did (another process wrote it), on the
 * row as stored, or, when the run ended there, what is queued is answered
 * that it no longer applies. Conflicts that keep coming are planned again
 * after a pause (conflict_pause); a store too busy to take the write
 * (write_later) or failing it (retry_failed: a change no caller waits for)
 * has it written again later; other failures answer the change's caller.
 * The runs of this engine on one context write it one at a time
 * (ctx_turn), so that they do not conflict with each other.
 */
#include <string.h>

#include "flow/run_internal.h"

typedef struct fl_write {
  fl_run *r;
  fl_plan p;
  char *doc_text;
  sb_store_event *evs;
  char **texts;
  size_t nevs;
  sb_store_run run;
  sb_store_extras x;
  int create;
  uv_timer_t *retry;
} fl_write;

static void write_free(fl_write *w) {
  fl_plan_clear(&w->p);
  sb_free(w->doc_text);
  for (size_t i = 0; i < w->nevs; i++)
    sb_free(w->texts[i]);
  sb_free(w->texts);
  sb_free(w->evs);
  sb_free(w);
}

/* An answer to a question (an ask step's end, which its caller waits
 * for), as opposed to a step's end that no one waits for. */
static int is_answer(const fl_change *c) {
  return c->kind == FL_STEP_DONE && c->cb;
}

static void pop_change(fl_run *r, int rc, const sb_error *err) {
  fl_change *c = r->queue;
  /* A run whose first write failed never existed; one visited for this
   * change (fl_run_visit) is left to the process that drives it. */
  if (rc != 0 && (c->kind == FL_START || r->visiting)) fl_run_detach(r);
  r->queue = c->next;
  if (!r->queue) r->queue_tail = NULL;
  /* A cancellation or an answer the store did not take (not "not
   * running": a write that failed) says so, and that the run goes on as
   * it was: its caller may try again, rather than read a bare store error
   * as the run's end. */
  sb_error why = {0};
  const char *detail = err && *err->msg ? err->msg : sb_strerror(rc);
  if (rc != 0 && rc != SB_ESTATE && c->kind == FL_CANCEL) {
    sb_error_set(&why, rc,
                 "run %s: the cancellation could not be written (%s); the "
                 "run goes on as it was: cancel it again",
                 r->id, detail);
    err = &why;
  } else if (rc != 0 && rc != SB_ESTATE && rc != SB_EINVAL &&
             rc != SB_ETOOBIG && is_answer(c)) {
    sb_error_set(&why, rc,
                 "run %s: the answer could not be written (%s); the "
                 "question is still open: answer it again",
                 r->id, detail);
    err = &why;
  }
  /* The view is for whoever waits on this change; most have no one. */
  json_t *view = rc == 0 && c->cb
                     ? fl_run_view(r->doc, fl_int(r->doc, "contextVersion"))
                     : NULL;
  fl_reply_seq(c->cb, c->ud, rc, err, view, rc == 0 ? r->last_seq : 0);
  json_decref(view);
  /* A cancellation not written: the steps it stopped take up again (they
   * are still under way in the store), and those it held back start.
   * Left stopped, they would ignore their ends: a run neither cancelled
   * nor going on until a restart. An answer not written: its question
   * is open again. */
  if (rc != 0 && (c->kind == FL_CANCEL || is_answer(c)) && !r->detached)
    fl_steps_revive(r);
  fl_change_free(c);
}

static void next_change(fl_run *r) {
  int later = r->write_retry && uv_is_active((uv_handle_t *)r->write_retry);
  if (r->queue && !r->writing && !r->detached && !r->loading && !later)
    fl_plan_write(r);
}

/* The store's queue is full (store.max_pending): the change keeps its
 * place and is written again after WRITE_RETRY_MS, as a client told
 * "busy" would. Dropped, it would be lost: its step is over in memory (an
 * agent's answer, an answer to a question), so the run would wait for
 * ever, and an answer could not even be sent again. A run's first write
 * is the exception: its caller is told "busy" and the run never existed. */
#define WRITE_RETRY_MS 10

static void on_fresh_head(void *ud, const sb_ctx_result *res);

static void on_write_retry(uv_timer_t *t) {
  fl_run *r = t->data;
  /* After a pause for conflicts the head read before it is stale (the
   * writer it lost to kept writing): read it again, then write. */
  if (r->reread_after_pause && !r->detached && !r->writing && r->queue) {
    r->reread_after_pause = 0;
    sb_error err = {0};
    r->writing = 1;
    if (sb_ctx_get_async(r->e->o.ctx, r->tenant, r->context_id, 0,
                         on_fresh_head, r, &err) == 0)
      return; /* the timer's hold passes to on_fresh_head */
    r->writing = 0;
  }
  r->reread_after_pause = 0;
  next_change(r);
  fl_run_release(r); /* the timer's */
}

/* Write the head change again in ms (unless that is already due): 0, or
 * -1 out of memory. The timer holds the run until it fires. */
static int write_again_in(fl_run *r, uint64_t ms) {
  int started = fl_timer_once(&r->write_retry, r->e, r, on_write_retry, ms);
  if (started < 0) return -1;
  if (started) r->holds++; /* the timer's, released by on_write_retry */
  return 0;
}

/* from, doubled n times, at most cap. */
static uint64_t doubled(uint64_t from, int n, uint64_t cap) {
  uint64_t ms = from;
  for (int i = 0; i < n && ms < cap; i++)
    ms *= 2;
  return ms > cap ? cap : ms;
}

static int write_later(fl_run *r, int rc) {
  if (rc != SB_EBUSY || r->detached || r->e->stopping ||
      r->queue->kind == FL_START)
    return 0;
  return write_again_in(r, WRITE_RETRY_MS) == 0;
}

/* A change no caller waits for (a step's end, a try's count, a cut chain
 * going on) whose write failed otherwise than refused or in conflict: the
 * database locked by another process past the store's busy timeout
 * (SB_EBUSY as the write's result; a full queue refuses it at submission
 * instead: write_later), an I/O error or a full disk (SB_EIO), memory
 * short (SB_ENOMEM). Dropped, its step would be over in
 * memory and under way in the store: the run waiting until a restart. It
 * keeps its place and is written again after a pause doubling from
 * FAIL_PAUSE_MS up to FAIL_PAUSE_CAP_MS, for as long as the store fails
 * it; the run goes on once the store takes it. A change a caller waits
 * for (a start, an answer, a cancellation, a resumption) is answered with
 * the failure instead: the caller decides whether to try again. */
#define FAIL_PAUSE_MS 20
#define FAIL_PAUSE_CAP_MS 5000

static int retry_failed(fl_run *r, int rc, const sb_error *err) {
  const fl_change *c = r->queue;
  if ((rc != SB_EBUSY && rc != SB_EIO && rc != SB_ENOMEM) || c->cb ||
      r->detached || r->e->stopping)
    return 0;
  if (c->kind != FL_STEP_DONE && c->kind != FL_STEP_FAILED &&
      c->kind != FL_STEP_RETRY && c->kind != FL_CONTINUE)
    return 0;
  uint64_t ms = doubled(FAIL_PAUSE_MS, r->write_failures, FAIL_PAUSE_CAP_MS);
  if (write_again_in(r, ms) != 0) return 0;
  r->write_failures++;
  /* Said on the first failure, then at each doubling of their count. */
  if ((r->write_failures & (r->write_failures - 1)) == 0)
    SB_WARN(FL_MODULE,
            "run %s: writing its transition failed (%s), %d time(s) in a "
            "row; writing it again in %llu ms",
            r->id, err && *err->msg ? err->msg : sb_strerror(rc),
            r->write_failures, (unsigned long long)ms);
  r->e->stats.write_failures++;
  return 1;
}

/* The write of the change at the head of the queue failed with rc: it is
 * written again later (busy, or a failure that may pass) or answered. */
static void write_failed(fl_run *r, int rc, const sb_error *err) {
  if (write_later(r, rc) || retry_failed(r, rc, err)) return;
  pop_change(r, rc, err);
}

/* Past FL_CONFLICT_TRIES conflicts in a row, the change is planned again
 * after a pause that doubles from CONFLICT_PAUSE_MS up to
 * CONFLICT_PAUSE_CAP_MS, rather than at once (another writer keeps
 * winning) or never (dropped, the change would leave its step over in
 * memory and under way in the store: the run waiting for ever). */
#define CONFLICT_PAUSE_MS 20
#define CONFLICT_PAUSE_CAP_MS 2000

static void conflict_pause(fl_run *r) {
  int past = r->conflicts - FL_CONFLICT_TRIES;
  if (past <= 0 || r->e->stopping) return;
  uint64_t ms = doubled(CONFLICT_PAUSE_MS, past - 1, CONFLICT_PAUSE_CAP_MS);
  if (past == 1)
    SB_WARN(FL_MODULE,
            "run %s: %d conflicts in a row (its context or its row keeps "
            "moving under it); planning again every %d-%d ms",
            r->id, r->conflicts, CONFLICT_PAUSE_MS, CONFLICT_PAUSE_CAP_MS);
  if (write_again_in(r, ms) == 0) r->reread_after_pause = 1;
  /* (no timer: left to the run's next change) */
}

/* Reading the run's row or context again failed: the change waiting on
 * it fails so; a read with no change waiting (fl_run_reread) is only
 * said. */
static void read_again_failed(fl_run *r, int rc, const sb_error *err,
                              const char *what) {
  if (r->queue)
    write_failed(r, rc, err);
  else
    SB_WARN(FL_MODULE, "run %s: its %s cannot be read again: %s", r->id,
            what, err->msg);
}

static void ctx_turn_end(fl_run *r, json_t *head);

/* The head read again after a pause for conflicts (on_write_retry): the
 * change is planned on it at once. */
static void on_fresh_head(void *ud, const sb_ctx_result *res) {
  fl_run *r = ud;
  r->writing = 0;
  if (!r->detached && res->rc == 0) {
    json_decref(r->ctx);
    r->ctx = json_incref(res->doc);
  }
  next_change(r); /* a failed read: the write meets the conflict again */
  fl_run_release(r);
}

static void on_head(void *ud, const sb_ctx_result *res) {
  fl_run *r = ud;
  r->writing = 0;
  /* A context conflict kept this run's turn while it read the head: the
   * next run waiting is handed the head just read, not its old copy. */
  ctx_turn_end(r, res->rc == 0 ? res->doc : NULL);
  if (!r->detached && res->rc == 0) {
    json_decref(r->ctx);
    r->ctx = json_incref(res->doc);
    /* A row read again (on_row) may have other steps active: they start
     * now, on this head (after a context conflict, nothing changes) —
     * unless another process drives them (a visited run). */
    if (!r->visiting) fl_steps_sync(r);
    conflict_pause(r);
  } else if (!r->detached) {
    read_again_failed(r, res->rc, &res->err, "context");
  }
  next_change(r);
  fl_run_release(r);
}

static int terminal_doc(const json_t *doc) {
  return fl_status_ended(sb_flow_status_of(fl_str(doc, "status")));
}

/* Every change queued on r answered SB_ESTATE with why. */
static void refuse_queued(fl_run *r, const char *why) {
  while (r->queue) {
    sb_error err = {0};
    sb_error_set(&err, SB_ESTATE, "%s", why);
    pop_change(r, SB_ESTATE, &err);
  }
}

/* Another process that is still alive drives the run now (an answer
 * given there took it over from this copy): the copy leaves memory, and
 * what is queued on it is answered so, rather than start again here the
 * steps that process has under way. The write's hold is released. */
static void let_go(fl_run *r, const sb_store_run_record *rec) {
  SB_WARN(FL_MODULE,
          "run %s: another process on the store drives it now (its row is "
          "at rev %lld, not %lld): it leaves this server",
          r->id, (long long)rec->rev, (long long)r->rev);
  char why[sizeof((sb_error *)0)->msg];
  snprintf(why, sizeof why,
           "run %s is driven by another process on this store now (another "
           "server took it over): send this there, or here once that "
           "process has ended",
           r->id);
  refuse_queued(r, why);
  fl_run_detach(r);
  fl_run_release(r);
}

/* The run's row as stored now, after a write that found it at another rev
 * than the run's: another process wrote the run (two servers on one
 * store, a command on the server's store). The stored state is the truth
 * (run_internal.h): the run takes it and reads the context's head, then
 * its steps in memory are made to match it (on_head) and the change is
 * planned again on both — or, if the run has ended there, what is queued
 * is answered that it no longer applies and the run leaves memory. */
static void on_row(void *ud, sb_store_result *res) {
  fl_run *r = ud;
  r->writing = 0;
  const sb_store_run_record *rec = res->rc == 0 ? &res->runs.items[0] : NULL;
  json_t *doc = rec ? json_loads(rec->doc, 0, NULL) : NULL;
  if (r->detached || !doc) {
    if (!r->detached && res->rc) {
      read_again_failed(r, res->rc, &res->err, "row");
    } else if (!r->detached) { /* read again, it would be as unreadable */
      sb_error bad = {0};
      sb_error_set(&bad, SB_EIO, "run %s: its stored state is unreadable",
                   r->id);
      if (r->queue)
        pop_change(r, SB_EIO, &bad);
      else
        SB_WARN(FL_MODULE, "run %s: its row cannot be read again: %s", r->id,
                bad.msg);
    }
    json_decref(doc);
    next_change(r);
    fl_run_release(r);
    return;
  }
  /* A visit (a cancellation written across drivers) plans again. */
  if (rec->driven_elsewhere && !r->visiting) {
    let_go(r, rec);
    json_decref(doc);
    return;
  }
  SB_WARN(FL_MODULE,
          "run %s: its stored row is at rev %lld, not %lld (written "
          "elsewhere): it goes on from the stored state (%s)",
          r->id, (long long)rec->rev, (long long)r->rev, rec->status);
  json_decref(r->doc);
  r->doc = doc;
  r->rev = rec->rev;
  r->last_seq = rec->seq;
  if (terminal_doc(doc)) {
    fl_steps_sync(r); /* no step is active: all stop */
    fl_plan_go_on_drop(r);
    char why[sizeof((sb_error *)0)->msg];
    snprintf(why, sizeof why,
             "run %s is %s (written elsewhere): the change no longer applies",
             r->id, rec->status);
    refuse_queued(r, why);
    fl_run_release(r); /* ended, nothing queued: it leaves memory */
    return;
  }
  sb_error err = {0};
  r->writing = 1;
  if (sb_ctx_get_async(r->e->o.ctx, r->tenant, r->context_id, 0, on_head, r,
                       &err) == 0)
    return; /* the hold passes to on_head */
  r->writing = 0;
  read_again_failed(r, err.code ? err.code : SB_EIO, &err, "context");
  next_change(r);
  fl_run_release(r);
}

void fl_run_reread(fl_run *r) {
  /* A change on its way to the store meets the row's new rev itself. */
  if (r->writing || r->loading || r->detached || r->queue) return;
  r->holds++;
  r->writing = 1;
  if (sb_store_run_get(r->e->o.store, r->tenant, r->id, on_row, r) == 0)
    return; /* on_row (then on_head) releases the hold */
  r->writing = 0;
  SB_WARN(FL_MODULE, "run %s: its row cannot be read again now", r->id);
  fl_run_release(r);
}

/* A wait this write started takes the events after its own step.started,
 * which the store numbered in this write: the run's events are its last
 * ones, in order, numbered without a gap up to last_seq. Before, it took
 * those after the write's last event, so an event a sibling branch of a
 * parallel step emitted in the same write never reached it. */
static void waits_since(fl_run *r, const json_t *events) {
  size_t n = json_array_size(events);
  if (!n || r->last_seq < (int64_t)n) return;
  int64_t first = r->last_seq - (int64_t)n + 1;
  json_t *act = json_object_get(r->doc, "active");
  size_t i, k;
  json_t *ev, *a;
  json_array_foreach(events, i, ev) {
    json_t *d = json_object_get(ev, "data");
    if (strcmp(fl_str(ev, "type"), "step.started") != 0 ||
        strcmp(fl_str(d, "kind"), "wait") != 0)
      continue;
    json_array_foreach(act, k, a) {
      if (fl_int(a, "since") < 0 &&
          strcmp(fl_str(a, "step"), fl_str(d, "step")) == 0 &&
          fl_int(a, "visit") == fl_int(d, "visit"))
        json_object_set_new(a, "since", json_integer(first + (int64_t)i));
    }
  }
}

static void on_written(void *ud, const sb_ctx_result *res) {
  fl_write *w = ud;
  fl_run *r = w->r;
  r->writing = 0;
  r->ending = 0;
  /* A conflict on the context (another process wrote it) keeps the turn
   * until the head is read again (on_head): handed on with nothing, each
   * run waiting wrote against its old copy and conflicted in turn, and
   * one outside write cost every run on the context a conflict. */
  int ctx_conflict =
      res->rc == SB_ECONFLICT && !w->create && !res->run_rev && !r->detached;
  if (!ctx_conflict) ctx_turn_end(r, res->rc == 0 ? res->doc : NULL);
  if (r->detached) {
    write_free(w);
    fl_run_release(r);
    return;
  }
  if (res->rc == 0) {
    json_decref(r->doc);
    r->doc = w->p.doc;
    w->p.doc = NULL;
    r->rev = res->run_rev;
    json_decref(r->ctx);
    r->ctx = json_incref(res->doc);
    r->last_seq = res->last_seq;
    waits_since(r, w->p.events);
    r->conflicts = 0;
    if (r->write_failures)
      SB_INFO(FL_MODULE, "run %s: its transition was written after %d "
                         "failed tries",
              r->id, r->write_failures);
    r->write_failures = 0;
    r->new_context = 0;
    r->e->stats.transitions++;
    write_free(w);
    pop_change(r, 0, NULL);
    fl_steps_sync(r);
    /* An end (a cancellation) written while the run waited its turn to
     * go on gives up that turn: its hold would keep the run in memory, in
     * progress to a resume, until the turn came. */
    if (fl_status_ended(sb_flow_status_of(fl_str(r->doc, "status"))))
      fl_plan_go_on_drop(r);
    else
      fl_plan_go_on(r);
  } else if (res->rc == SB_ECONFLICT && !w->create) {
    /* Something moved under the run: the context's head (run_rev 0), or
     * the run's own row (run_rev, its rev now). Read it again, plan again
     * (after a pause once conflicts keep coming: conflict_pause). */
    write_free(w);
    r->e->stats.conflicts++;
    r->conflicts++;
    sb_error err = {0};
    r->writing = 1;
    int rc = res->run_rev
                 ? sb_store_run_get(r->e->o.store, r->tenant, r->id, on_row, r)
                 : sb_ctx_get_async(r->e->o.ctx, r->tenant, r->context_id, 0,
                                    on_head, r, &err);
    if (rc == 0)
      return; /* the write's hold passes to on_head or on_row */
    ctx_turn_end(r, NULL);
    if (!err.code)
      sb_error_set(&err, rc, "run %s: cannot read it again (%s)", r->id,
                   sb_strerror(rc));
    r->writing = 0;
    write_failed(r, rc, &err);
  } else if (fl_steps_refused(r, res->rc, &res->err)) {
    write_free(w); /* the step's failure is written next */
  } else {
    write_free(w);
    if (!retry_failed(r, res->rc, &res->err)) {
      SB_WARN(FL_MODULE, "run %s: writing its transition failed: %s", r->id,
              res->err.msg);
      pop_change(r, res->rc, &res->err);
    }
  }
  next_change(r);
  fl_run_release(r);
}

/* The context a new run creates: what the plan made, less what the
 * server sets itself. */
static json_t *create_input(const json_t *ctx) {
  json_t *in = json_deep_copy(ctx);
  json_object_del(in, "id");
  json_object_del(in, "tenantId");
  json_object_del(in, "version");
  json_object_del(in, "timestamp");
  return in;
}

static void plan_write(fl_run *r);

/* ---- one write at a time per context ---------------------------------------
 * Each change is the context's next version, written against the version
 * the run last saw. Two runs of this engine writing one context at once
 * conflict, and one plans again; with many on a context (two dozen runs
 * started on it at once, a looping run beside others) the losers kept
 * losing, paused for conflicts (conflict_pause) and were answered after
 * minutes. So a run writes its context only while no other run of this
 * engine does: the others wait their turn in order (e->ctx_waiting, each
 * held), and the next is handed the head the last write made, so it does
 * not conflict. Writers in other processes still may: conflict_pause is
 * for them. */

static int same_context(const fl_run *a, const fl_run *b) {
  return strcmp(a->context_id, b->context_id) == 0 &&
         strcmp(a->tenant, b->tenant) == 0;
}

/* The first run of `list` (linked by cw_link) on r's context, or NULL. */
static fl_run *first_on(sb_list *list, const fl_run *r) {
  for (sb_list_link *n = sb_list_first(list); n; n = sb_list_next(n)) {
    fl_run *t = sb_list_entry(n, fl_run, cw_link);
    if (same_context(t, r)) return t;
  }
  return NULL;
}

/* 1 when r may write its context now (it has the turn); 0 when it waits
 * for it, held, its change kept (`writing` set: nothing else starts it). */
static int ctx_turn(fl_run *r) {
  sb_flow_engine *e = r->e;
  if (r->ctx_turn || !e) return 1;
  if (!first_on(&e->ctx_writers, r) && !first_on(&e->ctx_waiting, r)) {
    r->ctx_turn = 1;
    sb_list_push_back(&e->ctx_writers, &r->cw_link);
    return 1;
  }
  r->ctx_waiting = 1;
  r->writing = 1;
  r->holds++;
  sb_list_push_back(&e->ctx_waiting, &r->cw_link);
  return 0;
}

/* r's turn is over (its write done, or none made): the runs waiting for
 * that context take it in order, with the head r's write made (NULL: no
 * new one), until one of them writes. */
static void ctx_turn_end(fl_run *r, json_t *head) {
  if (!r->ctx_turn || !r->e) return;
  sb_flow_engine *e = r->e;
  r->ctx_turn = 0;
  sb_list_unlink(&e->ctx_writers, &r->cw_link);
  fl_run *w;
  while (!first_on(&e->ctx_writers, r) && (w = first_on(&e->ctx_waiting, r))) {
    sb_list_unlink(&e->ctx_waiting, &w->cw_link);
    w->ctx_waiting = 0;
    w->writing = 0;
    w->ctx_turn = 1;
    sb_list_push_back(&e->ctx_writers, &w->cw_link);
    if (head) {
      json_decref(w->ctx);
      w->ctx = json_incref(head);
    }
    next_change(w);
    if (!w->writing && w->ctx_turn) { /* it had nothing to write now */
      w->ctx_turn = 0;
      sb_list_unlink(&e->ctx_writers, &w->cw_link);
    }
    fl_run_release(w); /* the wait's */
  }
}

void fl_write_wait_drop(fl_run *r) {
  if (!r->ctx_waiting || !r->e) return;
  sb_list_unlink(&r->e->ctx_waiting, &r->cw_link);
  r->ctx_waiting = 0;
  r->writing = 0;
  r->holds--; /* the caller holds it or frees it */
}

/* Held throughout: a failed first write detaches the run, which must
 * outlive this call. */
void fl_plan_write(fl_run *r) {
  r->holds++;
  plan_write(r);
  fl_run_release(r);
}

/* Another run of this process may have written the context since r last
 * saw it: r's copy follows only its own writes and the heads handed on
 * with a turn, so a run that did not wait (it was waiting on a question,
 * say) would plan on an old version, meet a conflict and read the head
 * again. It plans on the newest head the context manager knows instead.
 * A new context has no head yet; another process's write is still met
 * as a conflict. */
static void take_newer_head(fl_run *r) {
  if (r->new_context || !r->e || !r->ctx) return;
  const json_t *head =
      sb_ctx_head_latest(r->e->o.ctx, r->tenant, r->context_id);
  if (head && fl_int(head, "version") > fl_int(r->ctx, "version")) {
    json_decref(r->ctx);
    r->ctx = json_incref((json_t *)head);
  }
}

static void plan_write(fl_run *r) {
  if (!ctx_turn(r)) return; /* written when its turn comes */
  take_newer_head(r);
  fl_change *c = r->queue;
  sb_error err = {0};
  fl_write *w = sb_calloc(1, sizeof *w);
  if (!w) {
    ctx_turn_end(r, NULL);
    pop_change(r, SB_ENOMEM,
               &(sb_error){.code = SB_ENOMEM, .msg = "out of memory"});
    return;
  }
  w->r = r;
  int rc = fl_plan_build(r, c, &w->p);
  if (rc == SB_ESTATE && c->kind == FL_CANCEL) {
    sb_error_set(&err, rc,
                 "run %s is %s: only a running or waiting run can be "
                 "cancelled",
                 r->id, fl_str(r->doc, "status"));
  } else if (rc != 0) {
    sb_error_set(&err, rc,
                 rc == SB_ESTATE ? "run %s: that step is no longer under way"
                                 : "run %s: out of memory",
                 r->id);
  }
  if (rc != 0) {
    write_free(w);
    ctx_turn_end(r, NULL);
    pop_change(r, rc, &err);
    next_change(r);
    return;
  }
  /* The transaction's texts, kept until it is written. */
  w->doc_text = sb_json_dumps(w->p.doc, JSON_COMPACT);
  w->nevs = json_array_size(w->p.events);
  w->evs = sb_calloc(w->nevs ? w->nevs : 1, sizeof *w->evs);
  w->texts = sb_calloc(w->nevs ? w->nevs : 1, sizeof *w->texts);
  for (size_t i = 0; w->evs && w->texts && i < w->nevs; i++) {
    json_t *e = json_array_get(w->p.events, i);
    w->texts[i] = sb_json_dumps(json_object_get(e, "data"), JSON_COMPACT);
    w->evs[i] = (sb_store_event){
        .type = fl_str(e, "type"), .run_id = r->id, .data = w->texts[i]};
  }
  w->run = (sb_store_run){.id = r->id,
                          .workflow = r->def->name,
                          .context_id = r->context_id,
                          .status = fl_str(w->p.doc, "status"),
                          .doc = w->doc_text,
                          .def = r->rev ? NULL : r->def_text,
                          .expected_rev = r->rev};
  w->x =
      (sb_store_extras){.run = &w->run, .events = w->evs, .nevents = w->nevs};
  w->create = r->new_context;
  r->writing = 1;
  r->ending = fl_status_ended(sb_flow_status_of(w->run.status));
  r->holds++;
  if (w->create) {
    json_t *in = create_input(w->p.ctx);
    rc = sb_ctx_create_ex_async(r->e->o.ctx, r->tenant, in, r->context_id,
                                &w->x, on_written, w, &err);
    json_decref(in);
  } else {
    rc = sb_ctx_update_ex_async(
        r->e->o.ctx, r->tenant, r->context_id, fl_int(r->ctx, "version"),
        SB_CTX_JSON_PATCH, w->p.ops, &w->x, c->lean ? SB_CTX_WRITE_FAILURE : 0,
        on_written, w, &err);
  }
  if (rc == 0) return;
  r->writing = 0;
  r->ending = 0;
  r->holds--;
  write_free(w);
  ctx_turn_end(r, NULL);
  if (write_later(r, rc)) return;
  if (!fl_steps_refused(r, rc, &err) && !retry_failed(r, rc, &err))
    pop_change(r, rc, &err);
  next_change(r);
}
