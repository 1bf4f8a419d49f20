/* test_store_outcome.h: capturing what a store operation's callback
 * reports, for the store tests. Shared by test_store.c and
 * test_store_crash.c. */
#ifndef SB_TEST_STORE_OUTCOME_H
#define SB_TEST_STORE_OUTCOME_H

#include <string.h>

#include "store/store.h"

typedef struct outcome {
  int done;
  int rc;
  sb_error err;
  int64_t version, count;
  sb_store_record record;     /* taken from the result */
  sb_store_versions versions; /* taken from the result */
  int64_t run_rev;
  sb_store_event_rows events; /* taken from the result */
  int64_t last_seq;
  int more;                   /* events_read: events follow */
  sb_store_runs runs;         /* taken from the result */
} outcome;

/* An sb_store_cb: fills the outcome (ud) and takes what the result owns. */
static inline void on_outcome(void *ud, sb_store_result *res) {
  outcome *o = ud;
  o->done = 1;
  o->rc = res->rc;
  o->err = res->err;
  o->version = res->version;
  o->count = res->count;
  o->record = res->record;
  memset(&res->record, 0, sizeof res->record);
  o->versions = res->versions;
  memset(&res->versions, 0, sizeof res->versions);
  o->run_rev = res->run_rev;
  o->events = res->events;
  memset(&res->events, 0, sizeof res->events);
  o->last_seq = res->last_seq;
  o->more = res->more;
  o->runs = res->runs;
  memset(&res->runs, 0, sizeof res->runs);
}

static inline void outcome_clear(outcome *o) {
  sb_store_record_clear(&o->record);
  sb_store_versions_clear(&o->versions);
  sb_store_event_rows_clear(&o->events);
  sb_store_runs_clear(&o->runs);
  memset(o, 0, sizeof *o);
}

#endif
