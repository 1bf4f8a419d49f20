/* http_transfer.c: one HTTP request to an agent. http_client.c owns the
 * channel (its ops, the GET stream, the curl <-> libuv glue); this file owns
 * what happens to a single transfer.
 *
 * A transfer is one curl easy handle: a POST carrying one sent message, or
 * the GET stream. Here it is set up with the headers every request carries,
 * its response is read (a JSON body, or SSE events parsed by sse_parser.c,
 * and the Mcp-Session-Id header), and a finished POST is turned into what
 * the owner receives: the agent's answer, or a JSON-RPC error carrying the
 * id of every request still owed one, synthesised when the agent did not
 * send it.
 *
 * The response callbacks run inside curl, which must not be re-entered, so
 * they never deliver: parsed messages go onto the channel's delivery queue,
 * which after_curl() in http_client.c empties once curl has returned.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "net/http_client_internal.h"
#include "rpc/rpc.h"

#define MOD "agent-http"

enum {
  ERROR_BODY_MAX = 1024, /* non-JSON error bodies kept for messages */
  STREAM_RESUME_DELAY_MS = 250, /* without a retry: field */
  STREAM_RESUME_MAX_DELAY_MS = 30000,
  STREAM_RESUME_MAX = 8, /* resumptions in a row bringing no new event */
};

/* ---- small helpers ------------------------------------------------------ */

int hc_add_header(struct curl_slist **list, const char *name,
                  const char *value) {
  /* curl drops "Name:" with an empty value; "Name;" sends it empty. */
  char *line =
      *value ? sb_asprintf("%s: %s", name, value) : sb_asprintf("%s;", name);
  if (!line) return SB_ENOMEM;
  struct curl_slist *l = curl_slist_append(*list, line);
  sb_free(line);
  if (!l) return SB_ENOMEM;
  *list = l;
  return 0;
}

static int content_type_is(const char *ct, const char *want) {
  if (!ct) return 0;
  while (*ct == ' ')
    ct++;
  return strncasecmp(ct, want, strlen(want)) == 0;
}

/* ---- the delivery queue ----------------------------------------------- */

static int enqueue(http_channel *ch, transfer *from, json_t *msg) {
  queued_msg *q = sb_calloc(1, sizeof *q);
  if (!q) {
    json_decref(msg);
    return SB_ENOMEM;
  }
  q->msg = msg;
  q->from = from;
  q->next = NULL;
  if (from && from->pending_ids && json_array_size(from->pending_ids) == 1)
    q->related = json_incref(json_array_get(from->pending_ids, 0));
  int held = ch->reading_stream && from != ch->stream;
  queued_msg **head = held ? &ch->held_head : &ch->queue_head;
  queued_msg **tail = held ? &ch->held_tail : &ch->queue_tail;
  if (*tail)
    (*tail)->next = q;
  else
    *head = q;
  *tail = q;
  return 0;
}

/* Drop queued messages from `from` (all of them when from is NULL). */
void hc_purge_queue(http_channel *ch, transfer *from) {
  queued_msg **pp = &ch->queue_head;
  ch->queue_tail = NULL;
  while (*pp) {
    queued_msg *q = *pp;
    if (!from || q->from == from) {
      *pp = q->next;
      json_decref(q->msg);
      json_decref(q->related);
      sb_free(q->detail);
      sb_free(q);
    } else {
      ch->queue_tail = q;
      pp = &q->next;
    }
  }
}

/* ---- answers owed -------------------------------------------------------- */

/* Take the id of each response in msg off the transfer's owed list. */
static void mark_answered(transfer *t, json_t *msg) {
  if (!t->pending_ids) return;
  if (json_is_array(msg)) {
    for (size_t i = 0; i < json_array_size(msg); i++)
      mark_answered(t, json_array_get(msg, i));
    return;
  }
  if (!json_is_object(msg) || json_object_get(msg, "method")) return;
  json_t *id = json_object_get(msg, "id");
  if (!id) return;
  for (size_t i = 0; i < json_array_size(t->pending_ids); i++) {
    if (json_equal(json_array_get(t->pending_ids, i), id)) {
      json_array_remove(t->pending_ids, i);
      return;
    }
  }
}

/* Queue a failure for every id the transfer still owes: `kind` says
 * whether the agent may have seen the request (see sb_channel_failure). */
static void synthesise(http_channel *ch, transfer *t, sb_channel_failure kind,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void synthesise(http_channel *ch, transfer *t, sb_channel_failure kind,
                       const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  size_t owed = t->pending_ids ? json_array_size(t->pending_ids) : 0;
  if (owed == 0) {
    SB_WARN(MOD, "agent %s: %s", ch->base.name, why);
    return;
  }
  SB_DEBUG(MOD, "agent %s: failing %zu request(s): %s", ch->base.name, owed,
           why);
  for (size_t i = 0; i < owed; i++) {
    json_t *id = json_incref(json_array_get(t->pending_ids, i));
    char *detail = sb_strdup(why);
    if (!detail || enqueue(ch, NULL, id) != 0) {
      sb_free(detail);
      continue;
    }
    ch->queue_tail->failure = kind;
    ch->queue_tail->detail = detail;
  }
  json_array_clear(t->pending_ids);
}

/* ---- transfers ----------------------------------------------------------- */

void hc_free_transfer(http_channel *ch, transfer *t) {
  sb_list_unlink(t->waiting ? &ch->resumes : &ch->transfers, &t->link);
  if (ch->stream == t) ch->stream = NULL;
  for (queued_msg *q = ch->queue_head; q; q = q->next)
    if (q->from == t) q->from = NULL;
  if (t->easy) curl_easy_cleanup(t->easy);
  curl_slist_free_all(t->headers);
  sb_free(t->body);
  json_decref(t->pending_ids);
  sb_buf_free(&t->body_buf);
  sb_sse_free(&t->sse);
  sb_free(t->failure);
  sb_free(t->sent_session);
  sb_free(t->challenge);
  sb_free(t->resume_id);
  sb_free(t);
}

static void set_failure(transfer *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_failure(transfer *t, const char *fmt, ...) {
  if (t->failure) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  t->failure = sb_strdup(buf);
}

/* One SSE event: a message for the owner (queued; see the file comment). */
static int on_sse_event(void *ud, const sb_sse_event *ev) {
  transfer *t = ud;
  http_channel *ch = t->ch;
  if (ev->id && t->is_stream) {
    char *id = sb_strdup(ev->id);
    if (id) {
      sb_free(ch->last_event_id);
      ch->last_event_id = id;
    }
  }
  /* Priming events (an id and empty data) carry no message. */
  size_t n = ev->data_len;
  const char *d = ev->data;
  while (n && (*d == ' ' || *d == '\n' || *d == '\r' || *d == '\t'))
    d++, n--;
  if (n == 0 || strcmp(ev->type, "message") != 0) return 0;
  sb_rpc_limits limits = {.max_bytes = ch->max_bytes};
  json_t *msg = NULL;
  sb_error err = {0};
  if (sb_rpc_parse(ev->data, ev->data_len, &limits, &msg, &err) != 0) {
    if (t->is_stream) { /* one bad event must not end the stream */
      SB_WARN(MOD,
              "agent %s: ignoring a malformed event on the GET stream: "
              "%s",
              ch->base.name, err.msg);
      return 0;
    }
    set_failure(t, "malformed JSON in an SSE event: %s", err.msg);
    return SB_EPROTO;
  }
  mark_answered(t, msg);
  t->events++;
  return enqueue(ch, t, msg);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  transfer *t = ud;
  http_channel *ch = t->ch;
  size_t len = size * nmemb;
  if (t->kind == BODY_UNKNOWN) {
    long status = 0;
    char *ct = NULL;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct);
    if (status >= 200 && status < 300 &&
        content_type_is(ct, "text/event-stream")) {
      t->kind = BODY_SSE;
      sb_sse_init(&t->sse, ch->max_bytes, on_sse_event, t);
      if (t->is_stream && ch->last_event_id)
        sb_sse_set_last_id(&t->sse, ch->last_event_id);
      else if (t->is_resume)
        sb_sse_set_last_id(&t->sse, t->resume_id);
    } else if (content_type_is(ct, "application/json") && !t->is_stream) {
      t->kind = BODY_JSON;
    } else {
      t->kind = BODY_OTHER;
    }
  }
  switch (t->kind) {
  case BODY_SSE: {
    int rc = sb_sse_feed(&t->sse, data, len);
    if (rc == SB_ETOOBIG)
      set_failure(t, "an SSE event is larger than the limit of %zu bytes",
                  ch->max_bytes);
    else if (rc == SB_ENOMEM)
      set_failure(t, "out of memory reading an SSE stream");
    if (rc != 0) return 0; /* abort the transfer */
    break;
  }
  case BODY_JSON:
    if (t->body_buf.len + len > ch->max_bytes) {
      set_failure(t, "response larger than the limit of %zu bytes",
                  ch->max_bytes);
      return 0;
    }
    if (sb_buf_append(&t->body_buf, data, len) != 0) {
      set_failure(t, "out of memory reading the response");
      return 0;
    }
    break;
  default: /* keep the start, for the error message */
    if (t->body_buf.len < ERROR_BODY_MAX) {
      size_t keep = ERROR_BODY_MAX - t->body_buf.len;
      if (sb_buf_append(&t->body_buf, data, len < keep ? len : keep) != 0)
        return 0;
    }
    break;
  }
  return len;
}

/* Enough of a challenge (kept up to HC_CHALLENGE_KEEP) to say in a
 * message where the agent's authorization server is and what it wants. */
#define CHALLENGE_MAX 400

/* Response headers: capture Mcp-Session-Id from any response, and an
 * authentication challenge. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  transfer *t = ud;
  http_channel *ch = t->ch;
  size_t len = size * nmemb;
  const char *cv;
  size_t cn;
  if (hc_header_value(data, len, "www-authenticate:", &cv, &cn) && cn > 0)
    hc_add_challenge(&t->challenge, cv, cn);
  if (t->is_stream && ch->settle == STREAM_SETTLE_OWED &&
      (len == 2 || len == 1) && (data[0] == '\r' || data[0] == '\n')) {
    long status = 0; /* the blank line ending one response's headers */
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) ch->settle = STREAM_SETTLE_DUE;
  }
  const char *v;
  size_t n;
  if (hc_header_value(data, len, "mcp-session-id:", &v, &n)) {
    int visible = n > 0;
    for (size_t i = 0; i < n && visible; i++)
      visible = v[i] >= 0x21 && v[i] <= 0x7e;
    if (!visible) {
      SB_WARN(MOD,
              "agent %s: ignoring an Mcp-Session-Id that is not visible "
              "ASCII",
              ch->base.name);
    } else if (!ch->session_id || strlen(ch->session_id) != n ||
               memcmp(ch->session_id, v, n) != 0) {
      char *sid = sb_strndup(v, n);
      if (sid) {
        sb_free(ch->session_id);
        ch->session_id = sid;
      }
    }
  }
  return len;
}

/* Common easy-handle set-up and the headers every request carries. */
transfer *hc_new_transfer(http_channel *ch, int is_stream) {
  transfer *t = sb_calloc(1, sizeof *t);
  if (!t) return NULL;
  t->ch = ch;
  t->is_stream = is_stream;
  t->retry_ms = -1;
  t->auth_gen = ch->auth_gen;
  t->easy = curl_easy_init();
  if (!t->easy) goto fail;
  for (struct curl_slist *h = ch->opt_headers; h; h = h->next) {
    struct curl_slist *l = curl_slist_append(t->headers, h->data);
    if (!l) goto fail;
    t->headers = l;
  }
  for (size_t i = 0; i < ch->n_extra; i++)
    if (hc_add_header(&t->headers, ch->extra[i].name, ch->extra[i].value) != 0)
      goto fail;
  if (ch->session_id) {
    if (hc_add_header(&t->headers, "Mcp-Session-Id", ch->session_id) != 0 ||
        !(t->sent_session = sb_strdup(ch->session_id)))
      goto fail;
  }
  CURL *e = t->easy;
  hc_easy_common(e, ch->url, t, t->errbuf, ch->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  return t;
fail:
  if (t->easy) curl_easy_cleanup(t->easy);
  curl_slist_free_all(t->headers);
  sb_free(t);
  return NULL;
}

int hc_start_transfer(http_channel *ch, transfer *t) {
  curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
  if (curl_multi_add_handle(ch->drv.multi, t->easy) != CURLM_OK) return SB_EIO;
  sb_list_push_front(&ch->transfers, &t->link);
  return 0;
}

/* ---- finishing a POST ---------------------------------------------------- */

/* What went wrong below HTTP, in words: "connect to URL: Connection
 * refused" rather than only curl's generic text. */
void hc_transport_error(http_channel *ch, transfer *t, CURLcode res, char *out,
                        size_t n) {
  long os_errno = 0;
  curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno);
  if (res == CURLE_COULDNT_CONNECT && os_errno)
    snprintf(out, n, "connect to %s: %s", ch->url_shown,
             strerror((int)os_errno));
  else if (res == CURLE_OPERATION_TIMEDOUT)
    snprintf(out, n, "%s: %s", ch->url_shown,
             t->errbuf[0] ? t->errbuf : curl_easy_strerror(res));
  else if (res == CURLE_OUT_OF_MEMORY)
    /* What libcurl (before 8.x) says of a response whose header lines
     * pass its 100 KB limit: the agent's fault far more often than ours. */
    snprintf(out, n,
             "%s: the response's headers are larger than libcurl takes "
             "(100 KB), or out of memory",
             ch->url_shown);
  else
    snprintf(out, n, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(res));
}

/* A JSON-RPC error response, what an HTTP error may carry as the answer.
 * Another body with an "error" member ({"error": "invalid_token"}, as an
 * OAuth resource server answers a 401) answers nothing: the request fails
 * with the status, rather than waiting for an answer that never comes. */
static int rpc_error(const json_t *m) {
  const char *v = json_string_value(json_object_get(m, "jsonrpc"));
  return v && strcmp(v, "2.0") == 0 &&
         json_is_object(json_object_get(m, "error"));
}

/* The request failed with HTTP status: the body's first 200 bytes say
 * why in the agent's own words. A 401 or 403 is the agent refusing it
 * before it was processed: its challenge is kept for the owner
 * (sb_channel_last_refusal). */
static void http_failed(http_channel *ch, transfer *t, long status) {
  size_t n = t->body_buf.len > 200 ? 200 : t->body_buf.len;
  int refused = status == 401 || status == 403;
  sb_channel_failure kind = refused ? SB_CHANNEL_REFUSED : SB_CHANNEL_LOST;
  /* A 401 or 403 says how to authorize (OAuth: where the agent's
   * authorization server is, which scope): the operator configuring
   * the agent's credentials needs exactly that. */
  char challenge[4 * CHALLENGE_MAX + 64] = "";
  if (refused) {
    sb_channel_refusal *r = &ch->base.refusal;
    sb_free((char *)r->challenge);
    r->challenge = t->challenge ? sb_strdup(t->challenge) : NULL;
    r->status = status;
    r->stale_credentials = t->auth_gen != ch->auth_gen;
  }
  if (refused && t->challenge) {
    size_t cn = strlen(t->challenge);
    size_t take = cn < CHALLENGE_MAX ? cn : CHALLENGE_MAX;
    char shown[4 * CHALLENGE_MAX + 4]; /* "\\xHH" at most per byte */
    size_t w =
        sb_escape_controls(t->challenge, take, shown, sizeof shown - 3, 0);
    if (take < cn) memcpy(shown + w, "...", 4);
    snprintf(challenge, sizeof challenge, " (WWW-Authenticate: %s)", shown);
  }
  /* The agent's words, control characters escaped (they reach callers
   * and the operator's screen). */
  char body[4 * 200 + 1];
  sb_escape_controls(n ? t->body_buf.data : "", n, body, sizeof body, 0);
  if (n)
    synthesise(ch, t, kind, "HTTP %ld%s: %s", status, challenge, body);
  else
    synthesise(ch, t, kind, "HTTP %ld%s", status, challenge);
}

static void finish_json_body(http_channel *ch, transfer *t, long status) {
  sb_rpc_limits limits = {.max_bytes = ch->max_bytes};
  json_t *msg = NULL;
  sb_error err = {0};
  if (sb_rpc_parse(t->body_buf.data ? t->body_buf.data : "", t->body_buf.len,
                   &limits, &msg, &err) != 0) {
    if (status >= 400)
      http_failed(ch, t, status);
    else
      synthesise(ch, t, SB_CHANNEL_LOST, "malformed JSON response: %s", err.msg);
    return;
  }
  if (status >= 400 && !json_is_array(msg) && !rpc_error(msg)) {
    json_decref(msg);
    http_failed(ch, t, status);
    return;
  }
  /* An error without an id (the agent could not read ours) still answers
   * the one request this POST carried. */
  json_t *id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
  if ((!id || json_is_null(id)) && rpc_error(msg) &&
      json_array_size(t->pending_ids) == 1)
    json_object_set(msg, "id", json_array_get(t->pending_ids, 0));
  mark_answered(t, msg);
  if (status >= 400 && json_array_size(t->pending_ids) == 0 &&
      !json_object_get(msg, "id")) {
    /* A failed notification: nobody waits for it. */
    SB_WARN(MOD, "agent %s refused a notification (HTTP %ld)", ch->base.name,
            status);
    json_decref(msg);
    return;
  }
  enqueue(ch, t, msg);
}

/* 1 if the error body of t talks about a session id ("No valid session
 * ID provided", "Invalid session"): how some servers say 404. */
static int names_session(const transfer *t) {
  const char *p = t->body_buf.data;
  size_t n = t->body_buf.len;
  for (size_t i = 0; p && i + 7 <= n; i++)
    if (strncasecmp(p + i, "session", 7) == 0) return 1;
  /* The SDK's transport, while the agent tears a session down, answers a
   * request naming it 400 "Server not initialized": gone as well. */
  for (size_t i = 0; p && i + 15 <= n; i++)
    if (strncasecmp(p + i, "not initialized", 15) == 0) return 1;
  return 0;
}

/* The agent ended t's SSE stream (closed it, or the connection broke)
 * after an event id and before answering everything: "the server MAY close
 * the connection without terminating the stream ... the client SHOULD then
 * poll", respecting the stream's retry: field (2025-11-25, Streamable HTTP,
 * and SEP-1699). Queue a GET with Last-Event-ID that takes over the ids
 * still owed, after the stream's retry (else STREAM_RESUME_DELAY_MS),
 * doubled for each resumption in a row that brought no new event id. 0 when
 * queued; -1 when t is not to be resumed (no event id, the agent is making
 * no progress, or no memory), and its ids fail as before. */
static int queue_resume(http_channel *ch, transfer *t, const char *last_id) {
  int progressed = !t->is_resume || strcmp(t->resume_id, last_id) != 0;
  unsigned resumes = progressed ? 0 : t->resumes + 1;
  if (resumes >= STREAM_RESUME_MAX) return -1;
  long retry = t->kind == BODY_SSE && t->sse.retry_ms >= 0 ? t->sse.retry_ms
                                                           : t->retry_ms;
  uint64_t delay = retry >= 0 ? (uint64_t)retry : STREAM_RESUME_DELAY_MS;
  for (unsigned i = 0; i < resumes && delay < STREAM_RESUME_MAX_DELAY_MS; i++)
    delay = delay ? delay * 2 : STREAM_RESUME_DELAY_MS;
  if (delay > STREAM_RESUME_MAX_DELAY_MS) delay = STREAM_RESUME_MAX_DELAY_MS;
  transfer *r = hc_new_transfer(ch, 0);
  if (!r) return -1;
  r->is_resume = 1;
  r->resumes = resumes;
  r->retry_ms = retry;
  r->resume_id = sb_strdup(last_id);
  if (!r->resume_id ||
      hc_add_header(&r->headers, "Accept", "text/event-stream") != 0 ||
      hc_add_header(&r->headers, "Last-Event-ID", last_id) != 0) {
    hc_free_transfer(ch, r);
    return -1;
  }
  curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
  r->pending_ids = t->pending_ids;
  t->pending_ids = NULL;
  r->waiting = 1;
  r->due_ms = uv_now(ch->loop) + delay;
  sb_list_push_back(&ch->resumes, &r->link);
  SB_DEBUG(MOD,
           "agent %s: the SSE stream ended before the response; resuming "
           "after event %s in %llu ms",
           ch->base.name, last_id, (unsigned long long)delay);
  hc_start_due_resumes(ch);
  return 0;
}

void hc_start_due_resumes(http_channel *ch) {
  uint64_t now = uv_now(ch->loop), next = 0;
  sb_list_link *n, *nx;
  for (n = sb_list_first(&ch->resumes); n; n = nx) {
    nx = sb_list_next(n);
    transfer *t = sb_list_entry(n, transfer, link);
    if (t->due_ms > now) {
      if (!next || t->due_ms < next) next = t->due_ms;
      continue;
    }
    sb_list_unlink(&ch->resumes, &t->link);
    t->waiting = 0;
    if (hc_start_transfer(ch, t) != 0) {
      synthesise(ch, t, SB_CHANNEL_LOST,
                 "the SSE stream ended before the response, and resuming it "
                 "could not start");
      hc_free_transfer(ch, t);
    }
  }
  if (next) uv_timer_start(&ch->resume_timer, hc_on_resume_timer, next - now, 0);
}

void hc_finish_post(http_channel *ch, transfer *t, CURLcode res) {
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  const char *last_id = t->kind == BODY_SSE ? sb_sse_last_id(&t->sse) : NULL;
  if (!t->failure && last_id && json_array_size(t->pending_ids) &&
      queue_resume(ch, t, last_id) == 0)
    return;
  if (t->is_resume && !t->failure && t->kind != BODY_SSE &&
      !(t->sent_session && status == 404) && json_array_size(t->pending_ids)) {
    char why[400];
    if (res != CURLE_OK)
      hc_transport_error(ch, t, res, why, sizeof why);
    else
      snprintf(why, sizeof why, "HTTP %ld", status);
    synthesise(ch, t, SB_CHANNEL_LOST,
               "the SSE stream ended before the response, and resuming it "
               "with Last-Event-ID %s failed: %s",
               t->resume_id, why);
    return;
  }
  if (t->failure) {
    synthesise(ch, t, SB_CHANNEL_LOST, "%s", t->failure);
  } else if (t->sent_session &&
             (status == 404 || (status == 400 && names_session(t)))) {
    /* The session this request named is gone: forget it, and say so in a
     * way the MCP client can act on (initialize again). 404 is what the
     * spec says; servers built on the SDK's example code answer 400 "No
     * valid session ID provided" (or, mid-teardown, "Server not
     * initialized") instead, and are treated alike. */
    /* Forget it only if it is still ours: an answer that comes late for a
     * session already given up (or replaced) must not drop the new one. */
    int current = ch->session_id && strcmp(ch->session_id, t->sent_session) == 0;
    if (current) {
      sb_free(ch->session_id);
      ch->session_id = NULL;
    }
    synthesise(ch, t,
               current ? SB_CHANNEL_SESSION_ENDED : SB_CHANNEL_SESSION_GONE,
               "session expired (HTTP %ld)", status);
  } else if (res == CURLE_OK && (status == 401 || status == 403)) {
    /* Refused at the door, whatever the body holds (a JSON-RPC error
     * among them): not processed, and the owner may authorize again. */
    http_failed(ch, t, status);
  } else if (res != CURLE_OK && t->kind == BODY_SSE && t->pending_ids &&
             json_array_size(t->pending_ids) == 0) {
    /* The stream broke after it had answered everything: nothing lost. */
  } else if (res != CURLE_OK) {
    char why[400];
    hc_transport_error(ch, t, res, why, sizeof why);
    /* No connection was made: the request never left. */
    int unsent = res == CURLE_COULDNT_CONNECT ||
                 res == CURLE_COULDNT_RESOLVE_HOST ||
                 res == CURLE_COULDNT_RESOLVE_PROXY;
    synthesise(ch, t, unsent ? SB_CHANNEL_UNSENT : SB_CHANNEL_LOST, "%s", why);
  } else if (t->kind == BODY_SSE) {
    if (json_array_size(t->pending_ids))
      synthesise(ch, t, SB_CHANNEL_LOST, "the SSE stream ended before the response");
  } else if (t->kind == BODY_JSON) {
    finish_json_body(ch, t, status);
  } else if (status >= 200 && status < 300 && t->kind == BODY_UNKNOWN) {
    /* 202/204 (or an empty 200): nothing to deliver. */
    if (json_array_size(t->pending_ids))
      synthesise(ch, t, SB_CHANNEL_LOST, "HTTP %ld with no response body", status);
  } else if (status >= 200 && status < 300) {
    synthesise(ch, t, SB_CHANNEL_LOST,
               "unexpected Content-Type in an HTTP %ld "
               "response",
               status);
  } else if (t->kind == BODY_OTHER && t->body_buf.len) {
    /* Some servers send JSON-RPC errors without the right Content-Type;
     * a real error object still beats a synthesised one. */
    json_t *msg = sb_json_loadb(t->body_buf.data, t->body_buf.len, 0, NULL);
    int usable = rpc_error(msg);
    json_decref(msg);
    if (usable) {
      t->kind = BODY_JSON;
      finish_json_body(ch, t, status);
    } else {
      http_failed(ch, t, status);
    }
  } else {
    http_failed(ch, t, status);
  }
  /* Anything still owed (an answer that named other ids) fails too. */
  if (json_array_size(t->pending_ids))
    synthesise(ch, t, SB_CHANNEL_LOST, "the response did not answer this request");
}
