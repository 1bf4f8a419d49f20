/* sse.h (private to net/): an incremental parser for text/event-stream.
 *
 * The HTTP client channel feeds it whatever chunks libcurl hands over; it
 * frames lines (CRLF, LF or CR, split anywhere, even between the CR and
 * the LF of one CRLF), applies the WHATWG field rules (data lines joined by
 * "\n", event, id, retry, comments ignored, one leading space stripped from
 * a value) and reports one event per blank line that ends a block with
 * data. Nothing is copied more than once: an event's fields point into the
 * parser's buffers for the duration of the callback.
 */
#ifndef SB_NET_SSE_H
#define SB_NET_SSE_H

#include <stddef.h>

#include "core/core.h"

typedef struct sb_sse_event {
  const char *type; /* "message" when the block had no event: field */
  const char *data; /* data lines joined by "\n", NUL-terminated */
  size_t data_len;
  const char *id; /* the last event id seen on the stream, or NULL */
} sb_sse_event;

/* Return 0 to go on; anything else stops sb_sse_feed, which returns it. */
typedef int (*sb_sse_on_event)(void *ud, const sb_sse_event *ev);

typedef struct sb_sse_parser {
  sb_sse_on_event on_event;
  void *ud;
  size_t max_bytes; /* cap on one line and on one event's data */
  sb_buf line;      /* the line in progress */
  sb_buf data;      /* the event's data so far */
  sb_buf type;      /* the event's type so far ("" = message) */
  sb_buf last_id;   /* persists across events (and reconnects) */
  int have_id;
  long retry_ms; /* last retry: field, or -1 */
  int after_cr;  /* the previous chunk ended with CR: skip a leading LF */
  int started;   /* past the optional leading BOM */
  int failed;    /* a previous feed returned an error: refuse more */
} sb_sse_parser;

/* max_bytes 0 means no limit. The parser owns no memory until fed. */
void sb_sse_init(sb_sse_parser *p, size_t max_bytes, sb_sse_on_event cb,
                 void *ud);
/* Parse the next chunk. 0; SB_ETOOBIG when a line or an event's data passes
 * max_bytes; SB_ENOMEM; or the callback's non-zero return. After a non-zero
 * return the parser refuses further input (SB_ESTATE). */
int sb_sse_feed(sb_sse_parser *p, const char *data, size_t len);
/* Seed the last event id (e.g. carried over from a dropped connection);
 * NULL clears it. 0 or SB_ENOMEM. */
int sb_sse_set_last_id(sb_sse_parser *p, const char *id);
/* The last event id (borrowed), or NULL if none was seen. */
const char *sb_sse_last_id(const sb_sse_parser *p);
/* Forget the partial event and line but keep last id and retry, as a
 * reconnect does. */
void sb_sse_reset(sb_sse_parser *p);
void sb_sse_free(sb_sse_parser *p);

#endif
