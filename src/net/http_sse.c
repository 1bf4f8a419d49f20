/* http_sse.c: a request's response as a Server-Sent Events stream.
 *
 * The stream is a buffer MHD reads through sse_reader: writes append to it
 * and wake the suspended connection; a reader that finds it empty
 * suspends the connection again. A client that stops reading is cut off
 * once its buffer passes limits.max_stream_buffer_bytes.
 */
#include <string.h>

#include "net/http_internal.h"

#define MOD "http"
#define SSE_BLOCK 4096

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  http_req *r = cls;
  (void)pos;
  if (r->gone) return MHD_CONTENT_READER_END_WITH_ERROR;
  size_t avail = r->sse.len - r->sse_off;
  if (avail) {
    size_t n = avail < max ? avail : max;
    memcpy(buf, r->sse.data + r->sse_off, n);
    r->sse_off += n;
    if (r->sse_off == r->sse.len) {
      sb_buf_reset(&r->sse);
      r->sse_off = 0;
    }
    if (r->drained && r->sse.len - r->sse_off <= r->drained_below) {
      /* Not from inside MHD's reader: once MHD_run has returned. */
      r->drain_due = 1;
      r->srv->drains_due = 1;
    }
    return (ssize_t)n;
  }
  if (r->sse_end) return MHD_CONTENT_READER_END_OF_STREAM;
  /* Nothing to send: park the connection until a write wakes it. */
  http_req_suspend_watch(r, 1);
  return 0;
}

int http_req_start_sse(http_req *r, unsigned status) {
  struct MHD_Response *resp = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, SSE_BLOCK, sse_reader, r, NULL);
  if (!resp) return SB_ENOMEM;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/event-stream");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  if (r->session && !r->is_get) r->stream_id = ++r->session->next_stream;
  r->state = REQ_SSE;
  r->last_write_ms = sb_now_ms();
  http_req_queue(r, status, resp);
  MHD_destroy_response(resp);
  return 0;
}

void sb_http_stream_on_drained(sb_http_request *r, size_t below,
                               void (*cb)(void *ud), void *ud) {
  r->drained = cb;
  r->drained_ud = ud;
  r->drained_below = below;
  r->drain_due = 0;
  if (cb && !r->gone && r->state == REQ_SSE &&
      r->sse.len - r->sse_off <= below) {
    r->drain_due = 1;
    r->srv->drains_due = 1;
    http_kick(r->srv);
  }
}

void http_sse_run_drained(sb_http_server *s) {
  if (!s->drains_due) return;
  s->drains_due = 0;
  sb_list_link *n, *next;
  SB_LIST_FOREACH_SAFE(n, next, &s->reqs) {
    http_req *r = sb_list_entry(n, http_req, all_link);
    if (!r->drain_due) continue;
    r->drain_due = 0;
    void (*cb)(void *) = r->drained;
    r->drained = NULL; /* once */
    if (cb && !r->gone) cb(r->drained_ud);
  }
}

int http_req_sse_append(http_req *r, const char *data, size_t len) {
  if (r->gone || r->state != REQ_SSE) return SB_EIO;
  if (r->sse.len - r->sse_off + len > r->srv->cfg.max_stream_buffer_bytes) {
    SB_WARN(MOD, "SSE client is not reading; closing its stream "
                 "(limits.max_stream_buffer_bytes)");
    http_req_lost(r);
    /* MHD would wait for ever to write the rest of the event it holds:
     * close the connection under it, dropping what is unsent. */
    http_conn_cut(http_conn_of(r->conn), 1, "SSE client is not reading");
    return SB_EIO;
  }
  /* What the client has taken goes once it is half the buffer, or before
   * the buffer would grow: a stream that stops reading then holds its
   * unsent bytes, not also what it took before (up to as much again). */
  if (r->sse_off > 0 &&
      (r->sse_off >= r->sse.len / 2 || r->sse.len + len + 1 > r->sse.cap)) {
    sb_buf_consume(&r->sse, r->sse_off);
    r->sse_off = 0;
  }
  if (sb_buf_append(&r->sse, data, len) != 0) return SB_ENOMEM;
  r->last_write_ms = sb_now_ms();
  http_req_resume(r);
  return 0;
}

/* "data: <json>\n\n" for streams that are not resumable (modern, or no
 * session). */
static int sse_plain_event(http_req *r, json_t *msg) {
  size_t len = 0;
  char *json = sb_rpc_dump(msg, &len);
  if (!json) return SB_ENOMEM;
  int rc = SB_ENOMEM;
  sb_buf ev = SB_BUF_INIT;
  if (sb_buf_reserve(&ev, len + 9) == 0) {
    sb_buf_append(&ev, "data: ", 6);
    sb_buf_append(&ev, json, len);
    sb_buf_append(&ev, "\n\n", 2);
    rc = http_req_sse_append(r, ev.data, ev.len);
  }
  sb_buf_free(&ev);
  sb_free(json);
  return rc;
}

int http_req_sse_event(http_req *r, json_t *msg) {
  if (r->session) return http_session_stream_event(r->session, r, msg);
  return sse_plain_event(r, msg);
}
