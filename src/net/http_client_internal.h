/* http_client_internal.h: private types shared by http_client.c (the HTTP
 * agent channel: its ops, the GET stream, the curl <-> libuv glue) and
 * http_transfer.c (one transfer: easy-handle set-up, the response
 * callbacks, finishing a POST, the answers owed and the delivery queue).
 * Both sides work on the same http_channel and transfer structs, so they
 * are defined once here. Nothing here is part of net's public face.
 */
#ifndef SB_NET_HTTP_CLIENT_INTERNAL_H
#define SB_NET_HTTP_CLIENT_INTERNAL_H

#include <curl/curl.h>

#include "net/channel_internal.h"
#include "net/curl_uv.h"
#include "net/sse.h"

typedef enum body_kind {
  BODY_UNKNOWN,
  BODY_JSON,
  BODY_SSE,
  BODY_OTHER
} body_kind;

typedef struct http_channel http_channel;

typedef struct transfer {
  http_channel *ch;
  CURL *easy;
  struct curl_slist *headers;
  char *body;          /* the POST body; curl reads it in place */
  int is_stream;       /* the GET stream rather than a POST */
  /* A GET resuming a POST's SSE stream that the agent closed before it
   * answered (2025-11-25 "polling"): Last-Event-ID resume_id, the ids the
   * POST still owed moved over. Until its delay is up it waits in
   * ch->resumes (waiting = 1), not in the multi. */
  int is_resume;
  int waiting;
  char *resume_id;
  long retry_ms;     /* the last retry: field seen on this stream, or -1 */
  unsigned resumes;  /* resumptions in a row that brought no new event id */
  uint64_t due_ms;   /* loop time at which a waiting resume starts */
  json_t *pending_ids; /* request ids still owed an answer (array) */
  char *sent_session;  /* the Mcp-Session-Id it carried, or NULL */
  unsigned auth_gen;   /* ch->auth_gen when it was made */
  /* The response's WWW-Authenticate headers as sent, joined by ", " and
   * cut at 2 KiB (an OAuth resource server's challenges on a 401 or 403:
   * its resource_metadata, scope, error); NULL when it had none. */
  char *challenge;
  body_kind kind;
  sb_buf body_buf;
  sb_sse_parser sse;
  unsigned events; /* SSE events delivered */
  char *failure;   /* why we aborted the transfer ourselves, or NULL */
  char errbuf[CURL_ERROR_SIZE];
  sb_list_link link; /* in ch->transfers while added to the multi */
} transfer;

typedef struct queued_msg {
  json_t *msg;          /* a message, or with `failure` the failed id */
  sb_channel_failure failure; /* 0 for a message */
  char *detail;         /* the failure's, owned */
  transfer *from; /* NULL once the transfer is gone */
  /* The one request `from` owed an answer to when the message came (its
   * id, owned), or NULL: sb_channel_message_related's. */
  json_t *related;
  struct queued_msg *next;
} queued_msg;

typedef struct header_kv {
  char *name;
  char *value;
} header_kv;

struct http_channel {
  sb_channel base;
  uv_loop_t *loop;
  hc_driver drv; /* the multi handle on the loop */
  int drv_ready;
  uv_timer_t retry_timer;
  int handles_open;
  int torn_down;
  int busy; /* depth of after_curl on the stack */

  char *url;
  char *url_shown; /* for messages: userinfo and secret-named values masked */
  size_t max_bytes;
  long connect_timeout_ms;
  struct curl_slist *opt_headers; /* from the options, verbatim */
  header_kv *extra;               /* sb_channel_set_header */
  size_t n_extra;
  char *session_id;
  unsigned auth_gen; /* Authorization set (sb_channel_set_header) so often */

  sb_list transfers; /* newest first */
  sb_list resumes;   /* resume transfers waiting for their delay */
  uv_timer_t resume_timer;
  queued_msg *queue_head, *queue_tail;
  /* While after_curl reads the GET stream ahead of a POST's answer
   * (read_stream_first), what POSTs queue waits here, behind it. */
  int reading_stream;
  queued_msg *held_head, *held_tail;

  /* The GET stream (legacy agent-initiated messages). */
  int stream_wanted;
  /* The owner is owed on_stream_settled: STREAM_SETTLE_OWED from the open
   * until the GET's headers or its end (the header callback, a curl
   * callback, may not call out), then STREAM_SETTLE_DUE until after_curl
   * reports it. */
  enum { STREAM_SETTLE_NONE, STREAM_SETTLE_OWED, STREAM_SETTLE_DUE } settle;
  transfer *stream;
  unsigned stream_failures;
  char *last_event_id;
  long retry_ms;
  char *down_detail; /* on_closed to report from after_curl */
};

/* ---- http_transfer.c --------------------------------------------------- */
/* Append "name: value" to list ("name;" when value is empty, which curl
 * sends as an empty header). 0 or SB_ENOMEM. */
int hc_add_header(struct curl_slist **list, const char *name,
                  const char *value);
/* Drop queued messages from `from` (all of them when from is NULL). */
void hc_purge_queue(http_channel *ch, transfer *from);
/* Unlink t from ch and free it (the caller has removed its easy handle
 * from the multi, or never added it). */
void hc_free_transfer(http_channel *ch, transfer *t);
/* A transfer with the easy-handle set-up and the headers every request
 * carries (options, sb_channel_set_header, Mcp-Session-Id); not started. */
transfer *hc_new_transfer(http_channel *ch, int is_stream);
/* Add t to the multi and to ch->transfers. 0 or SB_EIO. */
int hc_start_transfer(http_channel *ch, transfer *t);
/* What went wrong below HTTP, in words, into out[n]. */
void hc_transport_error(http_channel *ch, transfer *t, CURLcode res, char *out,
                        size_t n);
/* A POST (or a resume GET) is done: queue its answer, or an error for each
 * id still owed; or, when the agent closed its SSE stream after an event
 * id without answering, queue a resume GET (ch->resumes) and arm
 * ch->resume_timer. */
void hc_finish_post(http_channel *ch, transfer *t, CURLcode res);
/* Start the resumes whose delay is up (a resume that cannot start fails
 * its ids) and re-arm the timer for the rest. */
void hc_start_due_resumes(http_channel *ch);
/* ch->resume_timer's callback (http_client.c): the due resumes, then
 * after_curl. */
void hc_on_resume_timer(uv_timer_t *timer);

#endif
