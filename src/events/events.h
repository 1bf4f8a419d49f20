/* events: what happened in switchboard, as typed events in a durable,
 * ordered log per tenant, and the subscriptions that deliver them.
 *
 * Every event is written by the store in the same transaction as the
 * change it reports (a context version, a run's step), numbered 1, 2, 3...
 * per tenant with no gap. This module is the bus over that log: it hears
 * every committed event (sb_store_on_events) and hands it to the
 * subscriptions of its tenant, in order. A subscription starts from a
 * sequence number: what it missed is read from the store first, and a gap
 * in what it hears live (another process wrote, or a slow start) is read
 * from the store too, so a consumer sees each event at least once and in
 * order. Another process's commits (a server beside this one on the
 * store, `switchboard run`) are not heard: while there are subscriptions,
 * the log is read every poll_every_ms past what this process has heard,
 * per tenant, and what is new is handed on as a commit of this process's. Retention: events older than retention_ms are trimmed
 * periodically; their numbers are never reused.
 *
 * Event data is a JSON object; the types switchboard writes are below,
 * and agents publish their own (a type with a dot, not one of these).
 * Everything runs on the loop thread.
 */
#ifndef SB_EVENTS_H
#define SB_EVENTS_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "core/core.h"
#include "store/store.h"

typedef enum sb_event_type {
  SB_EVENT_CUSTOM = 0, /* published by an agent or a client */
  SB_EVENT_CONTEXT_CREATED,
  SB_EVENT_CONTEXT_UPDATED,
  SB_EVENT_RUN_STARTED,
  SB_EVENT_STEP_STARTED,
  SB_EVENT_STEP_COMPLETED, /* {step, visit, contextVersion; a call also
                               agent, handedVersion, durationMs and, routed
                               by capability or with a context, routing:
                               {capability, rank, score, parts, coverage,
                               projectionBytes, contextBytes}} */
  SB_EVENT_STEP_FAILED,
  SB_EVENT_STEP_RETRYING, /* {step, visit, attempt (the next try's number),
                             attempts (the step's retry.attempts), message
                             (why the last try failed), agent?, retryInMs} */
  SB_EVENT_AGENT_HANDOFF, /* {from, to, step, contextVersion,
                             projectionBytes} */
  SB_EVENT_AGENT_FAILED,
  SB_EVENT_BREAKER_OPENED,
  SB_EVENT_BREAKER_CLOSED,
  SB_EVENT_RUN_WAITING,
  SB_EVENT_RUN_RESUMED,
  SB_EVENT_RUN_COMPLETED,
  SB_EVENT_RUN_FAILED,
  SB_EVENT_RUN_CANCELLED,
  /* Audit (the "audit." prefix is switchboard's alone): */
  SB_EVENT_AUDIT_AUTH_FAILED, /* {status, reason, remote, method, path,
                                 credential: "none" | "key:<id>" |
                                 "token:<hash prefix>"} */
  SB_EVENT_AUDIT_ADMIN,       /* {action, via, outcome, target?, detail?} */
  SB_EVENT__COUNT
} sb_event_type;

/* "context.created", ... ; NULL for SB_EVENT_CUSTOM. */
const char *sb_event_type_name(sb_event_type t);
/* The type of a name: one of switchboard's, or SB_EVENT_CUSTOM. */
sb_event_type sb_event_type_of(const char *name);
/* 1 if `name` is an event type: SB_EVENT_TYPE_RULE. */
int sb_event_type_valid(const char *name);
/* 1 if `name` may be published by an agent, a client or a workflow's
 * emit: an event type outside switchboard's own namespaces (run., step.,
 * agent., context., breaker., audit.), so that nobody can forge what a
 * follower of run.* or the audit trail reads as switchboard's. */
int sb_event_type_publishable(const char *name);
#define SB_EVENT_TYPE_RULE                                                   \
  "lowercase names of a-z 0-9 _ - joined by dots, at least two, at most "  \
  "128 characters: \"lead.qualified\""
#define SB_EVENT_TYPE_RESERVED                                               \
  "run., step., agent., context., breaker. and audit. are switchboard's "  \
  "own"

typedef struct sb_events sb_events;

typedef struct sb_events_options {
  sb_store *store;         /* borrowed; the loop is the store's */
  int64_t retention_ms;    /* keep events this long; 0 = 7 days */
  int64_t trim_every_ms;   /* trim this often; 0 = every minute */
  size_t max_data_bytes;   /* a published or emitted event's data, as
                              compact JSON; 0 = 65536 */
  int64_t poll_every_ms;   /* look for other processes' events this
                              often; 0 = 250 ms */
} sb_events_options;

sb_events *sb_events_new(const sb_events_options *o, sb_error *err);
/* Ends every subscription (none is called again). */
void sb_events_free(sb_events *ev);

/* One event as delivered. Borrowed for the callback. */
typedef struct sb_event {
  const char *tenant;
  int64_t seq;
  int64_t created_ms;
  const char *type;
  const char *run_id; /* "" when none */
  const char *data;   /* JSON text of an object */
} sb_event;

/* {"seq","type","runId"?,"time","data"} for an event (new reference). */
json_t *sb_event_json(const sb_event *e);

/* 0, or SB_ETOOBIG with err naming the size and the limit when `data`
 * (as compact JSON) passes max_data_bytes: what a workflow's emit step
 * asks before its event goes into the run's transaction. */
int sb_events_check_data(const sb_events *ev, const json_t *data,
                         sb_error *err);

/* Publish one event alone (an agent's, a client's): `data` an object
 * (borrowed), at most max_data_bytes. cb (may be NULL) runs once it is durable, with its seq, or
 * with the error (SB_ENOENT: run_id names no run of the tenant; nothing
 * is written). 0 or a negative code with err (SB_EBUSY: store busy). */
typedef void (*sb_events_done_cb)(void *ud, int rc, int64_t seq,
                                  const sb_error *err);
int sb_events_publish(sb_events *ev, const char *tenant, const char *type,
                      const char *run_id, const json_t *data,
                      sb_events_done_cb cb, void *ud, sb_error *err);

/* Record one of switchboard's own events alone (a breaker that opened,
 * an audit entry): like sb_events_publish, for a type that is not
 * SB_EVENT_CUSTOM. */
int sb_events_record(sb_events *ev, const char *tenant, sb_event_type type,
                     const char *run_id, const json_t *data,
                     sb_events_done_cb cb, void *ud, sb_error *err);

/* What a subscription wants: types (NULL: all; an entry ending in ".*"
 * matches a prefix, e.g. "run.*") and one run's events (NULL: any). */
typedef struct sb_events_filter {
  const char *const *types;
  size_t ntypes;
  const char *run_id;
} sb_events_filter;

int sb_events_filter_match(const sb_events_filter *f, const char *type,
                           const char *run_id);
/* 1 if `pattern` can match an event type: a type (3-128 of [a-z0-9_.-]
 * with a dot inside, not at either end) or a prefix of one followed by
 * ".*" ("run.*", "lead.test.*"). Anything else ("*", "Run.started",
 * "run", "*.completed") would match nothing, ever. */
int sb_events_type_pattern_ok(const char *pattern);

typedef struct sb_events_sub sb_events_sub;

/* Deliver every event of `tenant` after seq `since` that the filter
 * takes, in order, first from the log and then as they are committed.
 * on_event may unsubscribe (itself or others). on_error (may be NULL)
 * reports that the log could not be read (the subscription is then
 * over: unsubscribe it). The filter is copied. NULL with err on ENOMEM. */
typedef void (*sb_events_cb)(void *ud, const sb_event *e);
typedef void (*sb_events_error_cb)(void *ud, const sb_error *err);
sb_events_sub *sb_events_subscribe(sb_events *ev, const char *tenant,
                                   int64_t since, const sb_events_filter *f,
                                   sb_events_cb on_event,
                                   sb_events_error_cb on_error, void *ud,
                                   sb_error *err);
void sb_events_unsubscribe(sb_events_sub *sub);
/* The last seq the subscription has seen (delivered or filtered out). */
int64_t sb_events_sub_seq(const sb_events_sub *sub);
/* 1 while the subscription reads the log (what was committed after its
 * `since`, or a gap), so events it has not delivered yet may be there. */
int sb_events_sub_catching_up(const sb_events_sub *sub);
/* Flow control for a consumer that cannot take more now (a client's
 * stream with too much unsent): after pause nothing more is delivered,
 * not even the rest of a batch under way (on_event may pause); resume
 * goes on from the last seq delivered, reading from the log what was
 * committed meanwhile. Nothing is dropped or delivered twice. */
void sb_events_sub_pause(sb_events_sub *sub);
void sb_events_sub_resume(sb_events_sub *sub);

/* Told of every committed batch of events of any tenant, on the loop,
 * before the subscriptions (one tap; NULL removes it). For announcing that
 * a tenant's log moved (MCP resources/updated), not for reading it. */
typedef void (*sb_events_tap_cb)(void *ud, const char *tenant, int64_t last_seq);
void sb_events_tap(sb_events *ev, sb_events_tap_cb cb, void *ud);

#endif
