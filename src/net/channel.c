/* channel.c: the transport-independent face of channels to agents.
 *
 * sb_channel_* dispatch to the transport's ops; the base keeps the owner's
 * callbacks and enforces that none runs after on_closed or after
 * sb_channel_close, whatever the transport is doing underneath.
 */
#include <string.h>

#include "net/channel_internal.h"

int sb_channel_base_init(sb_channel *ch, const sb_channel_ops *ops,
                         const sb_channel_events *ev, const char *name) {
  ch->ops = ops;
  if (ev) ch->ev = *ev;
  ch->name = sb_strdup(name && *name ? name : "agent");
  return ch->name ? 0 : SB_ENOMEM;
}

void sb_channel_base_free(sb_channel *ch) {
  sb_free(ch->name);
  ch->name = NULL;
  sb_free((char *)ch->refusal.challenge);
  ch->refusal.challenge = NULL;
}

int sb_channel_live(const sb_channel *ch) { return !ch->closed && !ch->down; }

void sb_channel_deliver(sb_channel *ch, json_t *msg) {
  sb_channel_deliver_related(ch, msg, NULL);
}

void sb_channel_deliver_related(sb_channel *ch, json_t *msg,
                                const json_t *related) {
  if (!sb_channel_live(ch) || !ch->ev.on_message) return;
  const json_t *outer = ch->delivering_related;
  ch->delivering_related = related;
  ch->ev.on_message(ch->ev.ud, msg);
  ch->delivering_related = outer;
}

const json_t *sb_channel_message_related(const sb_channel *ch) {
  return ch ? ch->delivering_related : NULL;
}

void sb_channel_deliver_failure(sb_channel *ch, json_t *id,
                                sb_channel_failure kind, const char *detail) {
  if (!sb_channel_live(ch)) return;
  if (ch->ev.on_request_failed)
    ch->ev.on_request_failed(ch->ev.ud, id, kind, detail);
  else
    SB_WARN("agent", "agent %s: a request failed: %s", ch->name, detail);
}

void sb_channel_report_stream_settled(sb_channel *ch) {
  if (sb_channel_live(ch) && ch->ev.on_stream_settled)
    ch->ev.on_stream_settled(ch->ev.ud);
}

void sb_channel_report_closed(sb_channel *ch, const char *detail) {
  if (!sb_channel_live(ch)) return;
  ch->down = 1;
  if (ch->ev.on_closed) ch->ev.on_closed(ch->ev.ud, detail);
}

int sb_channel_send(sb_channel *ch, json_t *msg, sb_error *err) {
  return sb_channel_send_headers(ch, msg, NULL, err);
}

int sb_channel_send_headers(sb_channel *ch, json_t *msg,
                            const json_t *headers, sb_error *err) {
  if (!ch || !msg)
    return sb_error_set(err, SB_EINVAL, "no channel or no message");
  if (!sb_channel_live(ch))
    return sb_error_set(err, SB_ESTATE, "channel to agent %s is closed",
                        ch->name);
  return ch->ops->send(ch, msg, headers, err);
}

void sb_channel_cancel(sb_channel *ch, json_t *id) {
  if (ch && id && !ch->closed && ch->ops->cancel) ch->ops->cancel(ch, id);
}

void sb_channel_close(sb_channel *ch) {
  if (!ch || ch->closed) return;
  ch->closed = 1;
  ch->ops->close(ch);
}

int sb_channel_set_header(sb_channel *ch, const char *name, const char *value) {
  if (!ch || !name || !*name) return SB_EINVAL;
  if (!ch->ops->set_header) return 0;
  return ch->ops->set_header(ch, name, value);
}

const sb_channel_refusal *sb_channel_last_refusal(const sb_channel *ch) {
  return ch && ch->refusal.status ? &ch->refusal : NULL;
}

const char *sb_channel_session_id(const sb_channel *ch) {
  return ch && ch->ops->session_id ? ch->ops->session_id(ch) : NULL;
}

int sb_channel_open_stream(sb_channel *ch, sb_error *err) {
  if (!ch) return sb_error_set(err, SB_EINVAL, "no channel");
  if (!ch->ops->open_stream)
    return sb_error_set(err, SB_ESTATE,
                        "agent %s: only HTTP channels have a GET stream",
                        ch->name);
  if (!sb_channel_live(ch))
    return sb_error_set(err, SB_ESTATE, "channel to agent %s is closed",
                        ch->name);
  return ch->ops->open_stream(ch, err);
}

int sb_channel_pid(const sb_channel *ch) {
  return ch && ch->ops->pid ? ch->ops->pid(ch) : 0;
}

int sb_channel_ended(const sb_channel *ch) {
  return ch && sb_channel_live(ch) && ch->ops->ended && ch->ops->ended(ch);
}
