/* go_on.c: long agentless chains, one part per turn of the loop.
 *
 * A plan stops after SB_FLOW_CHAIN_STEPS steps (or SB_FLOW_CHAIN_US of
 * planning) and records where it goes on in the run's continueAt. Once
 * that part is written, the run joins the engine's queue; an idle handle
 * plans the next part of one queued run per turn, so however many runs
 * loop, the loop never spends more than one part's planning in a turn
 * before it polls again.
 */
#include "flow/run_internal.h"

static int goes_on(fl_run *r) {
  if (r->detached || !json_array_size(json_object_get(r->doc, "continueAt")))
    return 0;
  if (sb_flow_status_of(fl_str(r->doc, "status")) != SB_FLOW_RUNNING)
    return 0;
  for (fl_change *c = r->queue; c; c = c->next)
    if (c->kind == FL_CONTINUE) return 0;
  return 1;
}

/* One run's next part per turn: the first waiting goes on now (its change
 * is planned and written here), the others on the turns after. */
static void on_go_idle(uv_idle_t *h) {
  sb_flow_engine *e = h->data;
  sb_list_link *n = sb_list_first(&e->go_on);
  if (n) {
    fl_run *r = sb_list_entry(n, fl_run, go_link);
    sb_list_unlink(&e->go_on, n);
    r->go_queued = 0;
    fl_change *c = goes_on(r) ? sb_calloc(1, sizeof *c) : NULL;
    if (c) {
      c->kind = FL_CONTINUE;
      fl_run_change(r, c); /* written now unless a write is under way */
    }
    fl_run_release(r); /* the queue's hold */
  }
  if (sb_list_empty(&e->go_on)) uv_idle_stop(h);
}

void fl_plan_go_on(fl_run *r) {
  sb_flow_engine *e = r->e;
  /* Draining: the chain goes on at the next start, from its continueAt
   * (revive.c), as after a crash. */
  if (!e || e->stopping || e->draining || r->go_queued || !goes_on(r)) return;
  if (!e->go_idle) {
    if (!(e->go_idle = sb_calloc(1, sizeof *e->go_idle))) {
      SB_ERROR(FL_MODULE, "run %s: out of memory: it goes on after a restart",
               r->id);
      return;
    }
    uv_idle_init(sb_store_loop(e->o.store), e->go_idle);
    e->go_idle->data = e;
  }
  r->holds++;
  r->go_queued = 1;
  sb_list_push_back(&e->go_on, &r->go_link);
  uv_idle_start(e->go_idle, on_go_idle);
}

void fl_plan_go_on_drop(fl_run *r) {
  if (!r->go_queued || !r->e) return;
  sb_list_unlink(&r->e->go_on, &r->go_link);
  r->go_queued = 0;
  r->holds--; /* the caller holds it or frees it */
}

void fl_plan_go_on_close(sb_flow_engine *e) {
  if (e->go_idle) uv_close((uv_handle_t *)e->go_idle, sb_free_handle);
  e->go_idle = NULL;
}
