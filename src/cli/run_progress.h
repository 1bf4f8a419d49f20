/* run_progress.h: the lines `switchboard run` shows on stderr, in order.
 *
 * A run's history has an entry for every step it executed, those that
 * call no agent (branch, emit, end) included, which emit no step event;
 * so the steps' ends are printed from the history. The run's events carry
 * what the history does not: a step started, a try failed and the step
 * goes on, the run waits, the run ended. run_cmd.c reads the run after
 * events arrive; each event's line is held until a read that covers it
 * came back, and is then printed among the new history entries by time,
 * so a step started after a branch shows after that branch.
 *
 * The history keeps only its ends (SB_FLOW_HISTORY_FIRST and _LAST, the
 * middle counted in historyElided): steps dropped before a read saw them
 * are shown as one line counting them.
 */
#ifndef SB_CLI_RUN_PROGRESS_H
#define SB_CLI_RUN_PROGRESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "events/events.h"

/* A held ask step, once its start is printed: to be asked. */
typedef void (*run_progress_ask_cb)(void *ud, const char *step,
                                    const json_t *message,
                                    const json_t *schema);

typedef struct run_progress {
  int64_t created_ms; /* the run's createdAt: times count from it */
  int color;          /* stderr is a terminal */
  int64_t shown;      /* history entries printed or counted as not kept,
                         counting from the run's first step */
  json_t *held;       /* [{at, type, data}] event lines not yet printed */
  sb_buf out;         /* lines not yet written */
  run_progress_ask_cb on_ask;
  void *ud;
} run_progress;

void run_progress_init(run_progress *p, int color, run_progress_ask_cb on_ask,
                       void *ud);
void run_progress_free(run_progress *p);

/* Hold the line event `e` of the run shows, if any (the steps' ends are
 * the history's to show, other events have none). */
void run_progress_hold(run_progress *p, const sb_event *e);
size_t run_progress_held(const run_progress *p);

/* Print the entries of `run`'s history not printed yet (run NULL: none)
 * merged with the first `covered` held lines, which leave the hold. A
 * read of the run started after an event came covers it. */
void run_progress_show(run_progress *p, const json_t *run, size_t covered);

/* The steps under way in the start's reply (their step.started events
 * are older than what the command follows). */
void run_progress_current(run_progress *p, const json_t *run);

#endif
