/* http_client.c: channels to Streamable HTTP agents.
 *
 * Each channel owns one libcurl multi handle driven by the libuv loop
 * (curl_uv.c: a uv_poll per socket, a uv_timer for curl's timeouts). One
 * multi per agent means one connection cache per agent, so consecutive
 * requests reuse a kept-alive connection.
 *
 * Every sent message is its own POST. A request's answer comes back as a
 * JSON body or as an SSE stream (parsed incrementally by sse_parser.c);
 * every way a POST can fail ends in a JSON-RPC error response carrying the
 * request's id, synthesised when the agent did not send one, so the
 * MCP client above never waits for an answer that cannot come. An SSE
 * answer the agent ends after an event id but before the response (the
 * 2025-11-25 "polling" of SEP-1699, or a dropped connection) is not such a
 * failure: after the stream's retry: delay a GET with Last-Event-ID
 * resumes it and carries the answer (http_transfer.c, queue_resume).
 *
 * Re-entrancy: libcurl forbids calling it from its own callbacks, and the
 * owner may send, cancel or close from inside on_message. So the write
 * callbacks only queue parsed messages; after_curl() delivers them once
 * curl has returned, and a close requested meanwhile is carried out when
 * the outermost delivery loop unwinds.
 *
 * One transfer's machinery (easy-handle set-up, the body, header and SSE
 * callbacks, finishing a POST, the errors synthesised for answers owed,
 * the delivery queue) lives in http_transfer.c; the types both files use
 * are in http_client_internal.h.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "net/http_client_internal.h"
#include "rpc/rpc.h"

#define MOD "agent-http"

enum {
  DEFAULT_CONNECT_TIMEOUT_MS = 5000,
  STREAM_BASE_DELAY_MS = 250, /* first GET reconnect delay */
  STREAM_MAX_DELAY_MS = 30000,
  STREAM_MAX_FAILURES = 8, /* consecutive, before the channel is down */
};

static void after_curl(http_channel *ch);
static void start_stream(http_channel *ch);

/* ---- small helpers ------------------------------------------------------ */

static int header_safe(const char *s) {
  for (; *s; s++)
    if (*s == '\r' || *s == '\n') return 0;
  return 1;
}

/* ---- the GET stream ------------------------------------------------------ */

static void on_retry_timer(uv_timer_t *timer) {
  http_channel *ch = timer->data;
  if (ch->torn_down || !ch->stream_wanted || ch->stream) return;
  start_stream(ch);
  after_curl(ch);
}

void hc_on_resume_timer(uv_timer_t *timer) {
  http_channel *ch = timer->data;
  if (ch->torn_down) return;
  hc_start_due_resumes(ch);
  after_curl(ch);
}

static void stream_failed(http_channel *ch, const char *why) {
  ch->stream_failures++;
  if (ch->stream_failures > STREAM_MAX_FAILURES) {
    ch->stream_wanted = 0;
    if (!ch->down_detail) ch->down_detail = sb_asprintf("GET stream: %s", why);
    return;
  }
  uint64_t delay =
      ch->retry_ms >= 0 ? (uint64_t)ch->retry_ms : STREAM_BASE_DELAY_MS;
  for (unsigned i = 1; i < ch->stream_failures && delay < STREAM_MAX_DELAY_MS;
       i++)
    delay *= 2;
  if (delay > STREAM_MAX_DELAY_MS) delay = STREAM_MAX_DELAY_MS;
  SB_DEBUG(MOD, "agent %s: GET stream: %s; reconnecting in %llu ms",
           ch->base.name, why, (unsigned long long)delay);
  uv_timer_start(&ch->retry_timer, on_retry_timer, delay, 0);
}

static void finish_stream(http_channel *ch, transfer *t, CURLcode res) {
  long status = 0;
  if (ch->settle == STREAM_SETTLE_OWED) ch->settle = STREAM_SETTLE_DUE;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  if (t->kind == BODY_SSE && t->sse.retry_ms >= 0)
    ch->retry_ms = t->sse.retry_ms;
  if (!ch->stream_wanted) return;
  if (status == 405) {
    SB_INFO(MOD, "agent %s has no GET stream (HTTP 405)", ch->base.name);
    ch->stream_wanted = 0;
    return;
  }
  if (status >= 400 && status < 500 && status != 408 && status != 429) {
    /* Not something waiting fixes; a 404 means the session is gone, which
     * the next POST reports to the MCP client as sessionExpired. */
    SB_WARN(MOD, "agent %s: GET stream refused (HTTP %ld); not retrying",
            ch->base.name, status);
    ch->stream_wanted = 0;
    return;
  }
  char why[300];
  if (t->failure)
    snprintf(why, sizeof why, "%s", t->failure);
  else if (res != CURLE_OK)
    hc_transport_error(ch, t, res, why, sizeof why);
  else if (status >= 200 && status < 300 && t->kind == BODY_SSE)
    snprintf(why, sizeof why, "the agent ended the stream");
  else
    snprintf(why, sizeof why, "HTTP %ld", status);
  /* A stream that was up and delivering counts as a fresh start. */
  if (t->kind == BODY_SSE && t->events > 0 && !t->failure)
    ch->stream_failures = 0;
  stream_failed(ch, why);
}

static void start_stream(http_channel *ch) {
  transfer *t = hc_new_transfer(ch, 1);
  if (t && hc_add_header(&t->headers, "Accept", "text/event-stream") == 0 &&
      (!ch->last_event_id ||
       hc_add_header(&t->headers, "Last-Event-ID", ch->last_event_id) == 0)) {
    curl_easy_setopt(t->easy, CURLOPT_HTTPGET, 1L);
    if (hc_start_transfer(ch, t) == 0) {
      ch->stream = t;
      return;
    }
  }
  if (t) hc_free_transfer(ch, t);
  if (ch->settle == STREAM_SETTLE_OWED) ch->settle = STREAM_SETTLE_DUE;
  stream_failed(ch, "cannot start the request");
}

/* ---- curl <-> libuv ------------------------------------------------------ */

static void maybe_free(http_channel *ch) {
  if (!ch->torn_down || ch->handles_open > 0 || ch->busy) return;
  sb_free(ch->url);
  sb_free(ch->url_shown);
  curl_slist_free_all(ch->opt_headers);
  for (size_t i = 0; i < ch->n_extra; i++) {
    sb_free(ch->extra[i].name);
    sb_free(ch->extra[i].value);
  }
  sb_free(ch->extra);
  sb_free(ch->session_id);
  sb_free(ch->last_event_id);
  sb_free(ch->down_detail);
  sb_channel_base_free(&ch->base);
  sb_free(ch);
}

static void on_handle_closed(uv_handle_t *h) {
  http_channel *ch = h->data;
  ch->handles_open--;
  maybe_free(ch);
}

static void on_driver_closed(hc_driver *d) {
  http_channel *ch = (http_channel *)((char *)d - offsetof(http_channel, drv));
  ch->handles_open--;
  maybe_free(ch);
}

static void on_driver_after(hc_driver *d) {
  after_curl((http_channel *)((char *)d - offsetof(http_channel, drv)));
}

/* Stop every transfer and close every handle; the struct goes with the
 * last close callback. */
static void teardown(http_channel *ch) {
  if (ch->torn_down) return;
  ch->torn_down = 1;
  sb_list_link *n;
  while ((n = sb_list_first(&ch->transfers))) {
    transfer *t = sb_list_entry(n, transfer, link);
    curl_multi_remove_handle(ch->drv.multi, t->easy);
    hc_free_transfer(ch, t);
  }
  while ((n = sb_list_first(&ch->resumes)))
    hc_free_transfer(ch, sb_list_entry(n, transfer, link));
  hc_purge_queue(ch, NULL);
  if (ch->drv_ready)
    hc_driver_stop(&ch->drv);
  else
    ch->handles_open--; /* the driver never started */
  uv_close((uv_handle_t *)&ch->retry_timer, on_handle_closed);
  uv_close((uv_handle_t *)&ch->resume_timer, on_handle_closed);
}

/* A legacy agent may write on its GET stream just before it answers a
 * POST (a log line of the call, a list_changed): two sockets, and the loop
 * may see the POST's first, when the call the message belongs to is
 * already over for the owner. So before anything a POST brought is handed
 * on, read what the GET socket already holds and queue that first, ahead
 * of what POSTs queued meanwhile (ch->held_*): the owner sees the agent's
 * messages in the order it wrote them. One recv when nothing is there. */
static void read_stream_first(http_channel *ch) {
  curl_socket_t fd = CURL_SOCKET_BAD;
  if (ch->stream && !ch->reading_stream)
    fd = hc_driver_socket_of(&ch->drv, ch->stream->easy);
  if (fd == CURL_SOCKET_BAD) return;
  ch->held_head = ch->queue_head;
  ch->held_tail = ch->queue_tail;
  ch->queue_head = ch->queue_tail = NULL;
  ch->reading_stream = 1;
  int running = 0;
  curl_multi_socket_action(ch->drv.multi, fd, CURL_CSELECT_IN, &running);
  ch->reading_stream = 0;
  if (ch->held_head) {
    if (ch->queue_tail)
      ch->queue_tail->next = ch->held_head;
    else
      ch->queue_head = ch->held_head;
    ch->queue_tail = ch->held_tail;
  }
  ch->held_head = ch->held_tail = NULL;
}

/* Whether a POST queued anything (its messages are owed the GET's first). */
static int post_queued(const http_channel *ch) {
  for (const queued_msg *q = ch->queue_head; q; q = q->next)
    if (!ch->stream || q->from != ch->stream) return 1;
  return 0;
}

/* After any call into curl: finish completed transfers, then hand queued
 * messages to the owner, then carry out a close it asked for meanwhile. */
static void after_curl(http_channel *ch) {
  if (ch->torn_down) return;
  ch->busy++;
  int stream_read = post_queued(ch);
  if (stream_read) read_stream_first(ch);
  CURLMsg *m;
  int left = 0;
  while ((m = curl_multi_info_read(ch->drv.multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *easy = m->easy_handle;
    CURLcode res = m->data.result;
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    transfer *t = (transfer *)priv;
    if (t && !t->is_stream && !stream_read) {
      stream_read = 1;
      read_stream_first(ch); /* before this POST's answer is queued */
    }
    curl_multi_remove_handle(ch->drv.multi, easy);
    if (!t) continue;
    if (t->is_stream) {
      ch->stream = NULL;
      finish_stream(ch, t, res);
    } else {
      hc_finish_post(ch, t, res);
    }
    hc_free_transfer(ch, t);
  }
  while (ch->queue_head && !ch->base.closed) {
    queued_msg *q = ch->queue_head;
    ch->queue_head = q->next;
    if (!ch->queue_head) ch->queue_tail = NULL;
    if (q->failure)
      sb_channel_deliver_failure(&ch->base, q->msg, q->failure, q->detail);
    else
      sb_channel_deliver_related(&ch->base, q->msg, q->related);
    json_decref(q->msg);
    json_decref(q->related);
    sb_free(q->detail);
    sb_free(q);
  }
  if (ch->settle == STREAM_SETTLE_DUE && !ch->base.closed) {
    ch->settle = STREAM_SETTLE_NONE;
    sb_channel_report_stream_settled(&ch->base);
  }
  if (ch->down_detail && !ch->base.closed) {
    sb_channel_report_closed(&ch->base, ch->down_detail);
  }
  ch->busy--;
  if (ch->base.closed && ch->busy == 0) {
    teardown(ch);
    maybe_free(ch);
  }
}

/* ---- the channel ops ----------------------------------------------------- */

/* Every request id in msg (one object or a batch), as a new array. */
static json_t *request_ids(json_t *msg) {
  json_t *ids = json_array();
  if (!ids) return NULL;
  size_t n = json_is_array(msg) ? json_array_size(msg) : 1;
  for (size_t i = 0; i < n; i++) {
    json_t *m = json_is_array(msg) ? json_array_get(msg, i) : msg;
    json_t *id = json_object_get(m, "id");
    if (json_is_object(m) && json_object_get(m, "method") && id &&
        !json_is_null(id))
      json_array_append(ids, id);
  }
  return ids;
}

/* The message's own headers (a request's extra ones, values borrowed). */
static int add_headers(transfer *t, const json_t *headers) {
  const char *name;
  const json_t *v;
  json_object_foreach((json_t *)headers, name, v) {
    const char *value = json_string_value(v);
    if (!value || !header_safe(name) || !header_safe(value))
      return SB_EINVAL;
    if (hc_add_header(&t->headers, name, value) != 0) return SB_ENOMEM;
  }
  return 0;
}

static int http_send(sb_channel *base, json_t *msg, const json_t *headers,
                     sb_error *err) {
  http_channel *ch = (http_channel *)base;
  if (!json_is_object(msg) && !json_is_array(msg))
    return sb_error_set(err, SB_EINVAL, "a message is an object or a batch");
  transfer *t = hc_new_transfer(ch, 0);
  if (!t) return sb_error_set(err, SB_ENOMEM, "out of memory");
  int rc = SB_ENOMEM;
  size_t len = 0;
  t->body = sb_rpc_dump(msg, &len);
  t->pending_ids = request_ids(msg);
  if (!t->body || !t->pending_ids) goto fail;
  if (hc_add_header(&t->headers, "Content-Type", "application/json") != 0 ||
      hc_add_header(&t->headers, "Accept",
                    "application/json, text/event-stream") != 0 ||
      !(t->headers = curl_slist_append(t->headers, "Expect:")))
    goto fail; /* "Expect:" with no value: no 100-continue round trip */
  /* Mirror method and name into headers (2026-07-28, "Request Metadata"),
   * so gateways can route without parsing the body. */
  const char *method = json_string_value(json_object_get(msg, "method"));
  if (method) {
    json_t *params = json_object_get(msg, "params");
    const char *name = NULL;
    if (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0)
      name = json_string_value(json_object_get(params, "name"));
    else if (strcmp(method, "resources/read") == 0)
      name = json_string_value(json_object_get(params, "uri"));
    char *mv = sb_mcp_header_encode(method);
    char *nv = name ? sb_mcp_header_encode(name) : NULL;
    int hrc = mv && (!name || nv) ? hc_add_header(&t->headers, "Mcp-Method", mv)
                                  : SB_ENOMEM;
    if (hrc == 0 && nv) hrc = hc_add_header(&t->headers, "Mcp-Name", nv);
    sb_free(mv);
    sb_free(nv);
    if (hrc != 0) goto fail;
  }
  if ((rc = add_headers(t, headers)) != 0) goto fail;
  rc = SB_ENOMEM;
  curl_easy_setopt(t->easy, CURLOPT_POST, 1L);
  curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
  curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  if (hc_start_transfer(ch, t) != 0) {
    rc = SB_EIO;
    goto fail;
  }
  return 0;
fail:
  hc_free_transfer(ch, t);
  return sb_error_set(err, rc, "agent %s: cannot start the request: %s",
                      ch->base.name, sb_strerror(rc));
}

static void http_cancel(sb_channel *base, json_t *id) {
  http_channel *ch = (http_channel *)base;
  if (ch->torn_down) return;
  for (sb_list_link *n = sb_list_first(&ch->transfers); n;
       n = sb_list_next(n)) {
    transfer *t = sb_list_entry(n, transfer, link);
    if (t->is_stream) continue;
    for (size_t i = 0; i < json_array_size(t->pending_ids); i++) {
      if (!json_equal(json_array_get(t->pending_ids, i), id)) continue;
      /* Closing the connection is the cancellation signal on Streamable
       * HTTP; anything of this request not yet delivered is dropped. */
      SB_DEBUG(MOD, "agent %s: cancelling a request", ch->base.name);
      curl_multi_remove_handle(ch->drv.multi, t->easy);
      hc_purge_queue(ch, t);
      hc_free_transfer(ch, t);
      return;
    }
  }
  /* A resume still waiting for its delay never reached curl. */
  for (sb_list_link *n = sb_list_first(&ch->resumes); n; n = sb_list_next(n)) {
    transfer *t = sb_list_entry(n, transfer, link);
    for (size_t i = 0; i < json_array_size(t->pending_ids); i++) {
      if (!json_equal(json_array_get(t->pending_ids, i), id)) continue;
      hc_free_transfer(ch, t);
      return;
    }
  }
}

static void http_close(sb_channel *base) {
  http_channel *ch = (http_channel *)base;
  ch->stream_wanted = 0;
  if (ch->busy) return; /* after_curl finishes the job */
  teardown(ch);
  maybe_free(ch);
}

static int http_set_header(sb_channel *base, const char *name,
                           const char *value) {
  http_channel *ch = (http_channel *)base;
  if (!header_safe(name) || strchr(name, ':') || (value && !header_safe(value)))
    return SB_EINVAL;
  /* Requests that went with the Authorization replaced are told apart
   * when refused (sb_channel_refusal.stale_credentials). */
  if (strcasecmp(name, "Authorization") == 0) ch->auth_gen++;
  for (size_t i = 0; i < ch->n_extra; i++) {
    if (strcasecmp(ch->extra[i].name, name) != 0) continue;
    if (!value) {
      sb_free(ch->extra[i].name);
      sb_free(ch->extra[i].value);
      ch->extra[i] = ch->extra[--ch->n_extra];
      return 0;
    }
    char *v = sb_strdup(value);
    if (!v) return SB_ENOMEM;
    sb_free(ch->extra[i].value);
    ch->extra[i].value = v;
    return 0;
  }
  if (!value) return 0;
  header_kv *grown = sb_realloc(ch->extra, (ch->n_extra + 1) * sizeof *grown);
  if (!grown) return SB_ENOMEM;
  ch->extra = grown;
  char *n = sb_strdup(name), *v = sb_strdup(value);
  if (!n || !v) {
    sb_free(n);
    sb_free(v);
    return SB_ENOMEM;
  }
  ch->extra[ch->n_extra++] = (header_kv){n, v};
  return 0;
}

static const char *http_session_id(const sb_channel *base) {
  return ((const http_channel *)base)->session_id;
}

static int http_open_stream(sb_channel *base, sb_error *err) {
  http_channel *ch = (http_channel *)base;
  ch->stream_wanted = 1;
  ch->stream_failures = 0;
  /* Settled by the stream's headers or its end; one already up (or
   * waiting to reconnect) is reported at the next after_curl. */
  ch->settle = ch->stream || uv_is_active((uv_handle_t *)&ch->retry_timer)
                   ? STREAM_SETTLE_DUE
                   : STREAM_SETTLE_OWED;
  if (ch->settle == STREAM_SETTLE_DUE) {
    /* after_curl reports it; the resume timer runs one soon. */
    uv_timer_start(&ch->resume_timer, hc_on_resume_timer, 0, 0);
    return 0;
  }
  start_stream(ch);
  return 0;
}

static const sb_channel_ops http_ops = {
    .send = http_send,
    .cancel = http_cancel,
    .close = http_close,
    .set_header = http_set_header,
    .session_id = http_session_id,
    .open_stream = http_open_stream,
};

sb_channel *sb_channel_http(uv_loop_t *loop, const sb_http_channel_options *o,
                            const sb_channel_events *ev, sb_error *err) {
  if (!loop || !o || !o->url || !*o->url) {
    sb_error_set(err, SB_EINVAL, "an HTTP agent needs a URL");
    return NULL;
  }
  if (strncasecmp(o->url, "http://", 7) != 0 &&
      strncasecmp(o->url, "https://", 8) != 0) {
    sb_error_set(err, SB_EINVAL, "agent URL must be http:// or https://: %s",
                 o->url);
    return NULL;
  }
  http_channel *ch = sb_calloc(1, sizeof *ch);
  if (!ch) goto nomem;
  if (sb_channel_base_init(&ch->base, &http_ops, ev,
                           o->name ? o->name : o->url) != 0) {
    sb_channel_base_free(&ch->base);
    sb_free(ch);
    goto nomem;
  }
  ch->loop = loop;
  ch->max_bytes =
      o->max_message_bytes ? o->max_message_bytes : SB_RPC_DEFAULT_MAX_BYTES;
  ch->connect_timeout_ms = o->connect_timeout_ms > 0
                               ? o->connect_timeout_ms
                               : DEFAULT_CONNECT_TIMEOUT_MS;
  ch->retry_ms = -1;
  uv_timer_init(loop, &ch->retry_timer);
  ch->retry_timer.data = ch;
  uv_timer_init(loop, &ch->resume_timer);
  ch->resume_timer.data = ch;
  ch->handles_open = 3; /* the two timers and the driver */
  ch->url = sb_strdup(o->url);
  /* Errors name the agent's URL; they reach callers and stored runs, so
   * not with the credentials it may carry (user:password@, ?token=). */
  ch->url_shown = sb_url_redacted(o->url, "[REDACTED]");
  if (!ch->url || !ch->url_shown) goto fail;
  if (hc_driver_init(&ch->drv, loop, on_driver_after, on_driver_closed) != 0)
    goto fail;
  ch->drv_ready = 1;
  for (size_t i = 0; o->headers && o->headers[i]; i++) {
    if (!header_safe(o->headers[i]) || !strchr(o->headers[i], ':')) {
      sb_error_set(err, SB_EINVAL, "agent %s: bad header \"%s\"", ch->base.name,
                   o->headers[i]);
      ch->base.closed = 1;
      teardown(ch);
      return NULL;
    }
    struct curl_slist *l = curl_slist_append(ch->opt_headers, o->headers[i]);
    if (!l) goto fail;
    ch->opt_headers = l;
  }
  return &ch->base;
fail:
  ch->base.closed = 1;
  teardown(ch);
nomem:
  sb_error_set(err, SB_ENOMEM, "out of memory");
  return NULL;
}
