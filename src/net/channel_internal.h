/* channel_internal.h (private to net/): the sb_channel base that the
 * transports (child.c, http_client.c) embed as their first member.
 *
 * The public sb_channel_* calls dispatch through `ops`; the helpers below
 * are the only way a transport reaches its owner's callbacks, so the rule
 * "nothing after on_closed, nothing after sb_channel_close" lives in one
 * place.
 */
#ifndef SB_NET_CHANNEL_INTERNAL_H
#define SB_NET_CHANNEL_INTERNAL_H

#include "net/net.h"

typedef struct sb_channel_ops {
  /* headers: {name: value} for this HTTP request only, or NULL. */
  int (*send)(sb_channel *ch, json_t *msg, const json_t *headers,
              sb_error *err);
  void (*cancel)(sb_channel *ch, json_t *id);
  /* Stop all I/O; free now or once the transport's handles have closed. */
  void (*close)(sb_channel *ch);
  int (*set_header)(sb_channel *ch, const char *name, const char *value);
  const char *(*session_id)(const sb_channel *ch);
  int (*open_stream)(sb_channel *ch, sb_error *err);
  int (*pid)(const sb_channel *ch);
  /* 1 once the transport knows the agent is gone and will report why
   * (on_closed); NULL: never known ahead of the report. */
  int (*ended)(const sb_channel *ch);
} sb_channel_ops;

struct sb_channel {
  const sb_channel_ops *ops;
  sb_channel_events ev;
  char *name; /* for logs and error messages; owned */
  int closed; /* the owner called sb_channel_close: no more callbacks */
  int down;   /* on_closed has been reported: no more callbacks */
  sb_channel_refusal refusal; /* sb_channel_last_refusal's; owns challenge */
  /* While a message is being delivered: the id of the one request whose
   * HTTP response stream carried it (borrowed), else NULL. */
  const json_t *delivering_related;
};

/* Fill the base (copies the events and the name). 0 or SB_ENOMEM. */
int sb_channel_base_init(sb_channel *ch, const sb_channel_ops *ops,
                         const sb_channel_events *ev, const char *name);
void sb_channel_base_free(sb_channel *ch);
/* True while the owner still wants callbacks. */
int sb_channel_live(const sb_channel *ch);
/* Hand one message (borrowed) to the owner, unless closed or down. */
void sb_channel_deliver(sb_channel *ch, json_t *msg);
/* The same for a message that came on the response stream of the one
 * request `related` (borrowed; NULL: not known), which
 * sb_channel_message_related tells the owner during on_message. */
void sb_channel_deliver_related(sb_channel *ch, json_t *msg,
                                const json_t *related);
/* Report that request id (borrowed) failed, unless closed or down. */
void sb_channel_deliver_failure(sb_channel *ch, json_t *id,
                                sb_channel_failure kind, const char *detail);
/* Tell the owner the GET stream it opened has settled, unless closed or
 * down. */
void sb_channel_report_stream_settled(sb_channel *ch);
/* Report the channel down for good, once; later calls do nothing. */
void sb_channel_report_closed(sb_channel *ch, const char *detail);

#endif
