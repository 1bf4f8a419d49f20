/* http_client.c: channels to Streamable HTTP agents.
 *
 * Each channel owns one libcurl multi handle driven by the libuv loop:
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION -> one
 * uv_poll per socket) and when to wake it (CURLMOPT_TIMERFUNCTION -> one
 * uv_timer), and we call curl_multi_socket_action when either fires. One
 * multi per agent means one connection cache per agent, so consecutive
 * requests reuse a kept-alive connection.
 *
 * Every sent message is its own POST. A request's answer comes back as a
 * JSON body or as an SSE stream (parsed incrementally by sse_parser.c);
 * every way a POST can fail ends in a JSON-RPC error response carrying the
 * request's id, synthesised here when the agent did not send one, so the
 * MCP client above never waits for an answer that cannot come.
 *
 * Re-entrancy: libcurl forbids calling it from its own callbacks, and the
 * owner may send, cancel or close from inside on_message. So the write
 * callbacks only queue parsed messages; after_curl() delivers them once
 * curl has returned, and a close requested meanwhile is carried out when
 * the outermost delivery loop unwinds.
 */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "net/channel_internal.h"
#include "net/sse.h"
#include "rpc/rpc.h"

#define MOD "agent-http"

enum {
  DEFAULT_CONNECT_TIMEOUT_MS = 5000,
  ERROR_BODY_MAX = 1024,      /* non-JSON error bodies kept for messages */
  STREAM_BASE_DELAY_MS = 250, /* first GET reconnect delay */
  STREAM_MAX_DELAY_MS = 30000,
  STREAM_MAX_FAILURES = 8, /* consecutive, before the channel is down */
};

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
  json_t *pending_ids; /* request ids still owed an answer (array) */
  int sent_session;    /* the request carried Mcp-Session-Id */
  body_kind kind;
  sb_buf body_buf;
  sb_sse_parser sse;
  unsigned events; /* SSE events delivered */
  char *failure;   /* why we aborted the transfer ourselves, or NULL */
  char errbuf[CURL_ERROR_SIZE];
  struct transfer *prev, *next;
} transfer;

typedef struct sock_watch {
  uv_poll_t poll;
  curl_socket_t fd;
  http_channel *ch;
  struct sock_watch *prev, *next;
} sock_watch;

typedef struct queued_msg {
  json_t *msg;
  transfer *from; /* NULL once the transfer is gone */
  struct queued_msg *next;
} queued_msg;

typedef struct header_kv {
  char *name;
  char *value;
} header_kv;

struct http_channel {
  sb_channel base;
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t curl_timer;
  uv_timer_t retry_timer;
  int handles_open;
  int torn_down;
  int busy; /* depth of after_curl on the stack */

  char *url;
  size_t max_bytes;
  long connect_timeout_ms;
  struct curl_slist *opt_headers; /* from the options, verbatim */
  header_kv *extra;               /* sb_channel_set_header */
  size_t n_extra;
  char *session_id;

  transfer *transfers;
  sock_watch *watches;
  queued_msg *queue_head, *queue_tail;

  /* The GET stream (legacy agent-initiated messages). */
  int stream_wanted;
  transfer *stream;
  unsigned stream_failures;
  char *last_event_id;
  long retry_ms;
  char *down_detail; /* on_closed to report from after_curl */
};

static void after_curl(http_channel *ch);
static void start_stream(http_channel *ch);

/* ---- small helpers ------------------------------------------------------ */

static int header_safe(const char *s) {
  for (; *s; s++)
    if (*s == '\r' || *s == '\n') return 0;
  return 1;
}

/* A header value as MCP wants it: plain when it is visible ASCII without
 * leading/trailing whitespace, the =?base64?...?= sentinel otherwise (and
 * when the plain value would itself look like the sentinel). Caller frees. */
static char *mcp_header_value(const char *v) {
  size_t n = strlen(v);
  int plain = 1;
  for (size_t i = 0; i < n && plain; i++) {
    unsigned char c = (unsigned char)v[i];
    if ((c < 0x20 && c != '\t') || c > 0x7e) plain = 0;
  }
  if (n && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t'))
    plain = 0;
  if (n >= 11 && strncmp(v, "=?base64?", 9) == 0 &&
      strcmp(v + n - 2, "?=") == 0)
    plain = 0;
  if (plain) return sb_strdup(v);
  char *b64 = sb_base64_encode(v, n);
  if (!b64) return NULL;
  char *out = sb_asprintf("=?base64?%s?=", b64);
  sb_free(b64);
  return out;
}

static int add_header(struct curl_slist **list, const char *name,
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
  queued_msg *q = sb_malloc(sizeof *q);
  if (!q) {
    json_decref(msg);
    return SB_ENOMEM;
  }
  q->msg = msg;
  q->from = from;
  q->next = NULL;
  if (ch->queue_tail)
    ch->queue_tail->next = q;
  else
    ch->queue_head = q;
  ch->queue_tail = q;
  return 0;
}

/* Drop queued messages from `from` (all of them when from is NULL). */
static void purge_queue(http_channel *ch, transfer *from) {
  queued_msg **pp = &ch->queue_head;
  ch->queue_tail = NULL;
  while (*pp) {
    queued_msg *q = *pp;
    if (!from || q->from == from) {
      *pp = q->next;
      json_decref(q->msg);
      sb_free(q);
    } else {
      ch->queue_tail = q;
      pp = &q->next;
    }
  }
}

/* ---- answers owed ---------------------------------------------------------
 */

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

/* Queue an error response for every id the transfer still owes. */
static void synthesise(http_channel *ch, transfer *t, long status,
                       int session_expired, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void synthesise(http_channel *ch, transfer *t, long status,
                       int session_expired, const char *fmt, ...) {
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
  char *message = sb_asprintf("agent %s: %s", ch->base.name, why);
  for (size_t i = 0; i < owed; i++) {
    json_t *data = json_pack("{ss}", "agent", ch->base.name);
    if (data && status > 0)
      json_object_set_new(data, "httpStatus", json_integer(status));
    if (data && session_expired)
      json_object_set_new(data, "sessionExpired", json_true());
    json_t *err =
        sb_rpc_error_new(json_array_get(t->pending_ids, i),
                         SB_RPC_INTERNAL_ERROR, message ? message : why, data);
    if (err) enqueue(ch, NULL, err);
  }
  json_array_clear(t->pending_ids);
  sb_free(message);
}

/* ---- transfers ------------------------------------------------------------
 */

static void free_transfer(http_channel *ch, transfer *t) {
  if (t->prev)
    t->prev->next = t->next;
  else if (ch->transfers == t)
    ch->transfers = t->next;
  if (t->next) t->next->prev = t->prev;
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

/* Response headers: capture Mcp-Session-Id from any response. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  transfer *t = ud;
  http_channel *ch = t->ch;
  size_t len = size * nmemb;
  static const char name[] = "mcp-session-id:";
  if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
    const char *v = data + sizeof name - 1;
    const char *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
      v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
                       end[-1] == '\t'))
      end--;
    int visible = end > v;
    for (const char *p = v; p < end && visible; p++)
      visible = *p >= 0x21 && *p <= 0x7e;
    if (!visible) {
      SB_WARN(MOD,
              "agent %s: ignoring an Mcp-Session-Id that is not visible "
              "ASCII",
              ch->base.name);
    } else if (!ch->session_id || strlen(ch->session_id) != (size_t)(end - v) ||
               memcmp(ch->session_id, v, (size_t)(end - v)) != 0) {
      char *sid = sb_strndup(v, (size_t)(end - v));
      if (sid) {
        sb_free(ch->session_id);
        ch->session_id = sid;
      }
    }
  }
  return len;
}

/* Common easy-handle set-up and the headers every request carries. */
static transfer *new_transfer(http_channel *ch, int is_stream) {
  transfer *t = sb_calloc(1, sizeof *t);
  if (!t) return NULL;
  t->ch = ch;
  t->is_stream = is_stream;
  t->easy = curl_easy_init();
  if (!t->easy) goto fail;
  for (struct curl_slist *h = ch->opt_headers; h; h = h->next) {
    struct curl_slist *l = curl_slist_append(t->headers, h->data);
    if (!l) goto fail;
    t->headers = l;
  }
  for (size_t i = 0; i < ch->n_extra; i++)
    if (add_header(&t->headers, ch->extra[i].name, ch->extra[i].value) != 0)
      goto fail;
  if (ch->session_id) {
    if (add_header(&t->headers, "Mcp-Session-Id", ch->session_id) != 0)
      goto fail;
    t->sent_session = 1;
  }
  CURL *e = t->easy;
  curl_easy_setopt(e, CURLOPT_URL, ch->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ch->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
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

static int start_transfer(http_channel *ch, transfer *t) {
  curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
  if (curl_multi_add_handle(ch->multi, t->easy) != CURLM_OK) return SB_EIO;
  t->next = ch->transfers;
  if (t->next) t->next->prev = t;
  ch->transfers = t;
  return 0;
}

/* ---- finishing a POST ------------------------------------------------------
 */

/* What went wrong below HTTP, in words: "connect to URL: Connection
 * refused" rather than only curl's generic text. */
static void transport_error(http_channel *ch, transfer *t, CURLcode res,
                            char *out, size_t n) {
  long os_errno = 0;
  curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno);
  if (res == CURLE_COULDNT_CONNECT && os_errno)
    snprintf(out, n, "connect to %s: %s", ch->url, strerror((int)os_errno));
  else if (res == CURLE_OPERATION_TIMEDOUT)
    snprintf(out, n, "%s: %s", ch->url,
             t->errbuf[0] ? t->errbuf : curl_easy_strerror(res));
  else
    snprintf(out, n, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(res));
}

static void finish_json_body(http_channel *ch, transfer *t, long status) {
  sb_rpc_limits limits = {.max_bytes = ch->max_bytes};
  json_t *msg = NULL;
  sb_error err = {0};
  if (sb_rpc_parse(t->body_buf.data ? t->body_buf.data : "", t->body_buf.len,
                   &limits, &msg, &err) != 0) {
    if (status >= 400)
      synthesise(ch, t, status, 0, "HTTP %ld with a body that is not JSON-RPC",
                 status);
    else
      synthesise(ch, t, status, 0, "malformed JSON response: %s", err.msg);
    return;
  }
  int is_error = json_is_array(msg) ||
                 (json_is_object(msg) && json_object_get(msg, "error"));
  if (status >= 400 && !is_error) {
    json_decref(msg);
    synthesise(ch, t, status, 0, "HTTP %ld", status);
    return;
  }
  /* An error without an id (the agent could not read ours) still answers
   * the one request this POST carried. */
  json_t *id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
  if (json_is_object(msg) && (!id || json_is_null(id)) &&
      json_object_get(msg, "error") && json_array_size(t->pending_ids) == 1)
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

static void finish_post(http_channel *ch, transfer *t, CURLcode res) {
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  if (t->failure) {
    synthesise(ch, t, status, 0, "%s", t->failure);
  } else if (status == 404 && t->sent_session) {
    /* The session this request named is gone: forget it, and say so in a
     * way the MCP client can act on (initialize again). */
    sb_free(ch->session_id);
    ch->session_id = NULL;
    synthesise(ch, t, status, 1, "session expired (HTTP 404)");
  } else if (res != CURLE_OK && t->kind == BODY_SSE && t->pending_ids &&
             json_array_size(t->pending_ids) == 0) {
    /* The stream broke after it had answered everything: nothing lost. */
  } else if (res != CURLE_OK) {
    char why[400];
    transport_error(ch, t, res, why, sizeof why);
    synthesise(ch, t, status, 0, "%s", why);
  } else if (t->kind == BODY_SSE) {
    if (json_array_size(t->pending_ids))
      synthesise(ch, t, status, 0, "the SSE stream ended before the response");
  } else if (t->kind == BODY_JSON) {
    finish_json_body(ch, t, status);
  } else if (status >= 200 && status < 300 && t->kind == BODY_UNKNOWN) {
    /* 202/204 (or an empty 200): nothing to deliver. */
    if (json_array_size(t->pending_ids))
      synthesise(ch, t, status, 0, "HTTP %ld with no response body", status);
  } else if (status >= 200 && status < 300) {
    synthesise(ch, t, status, 0,
               "unexpected Content-Type in an HTTP %ld "
               "response",
               status);
  } else if (t->kind == BODY_OTHER && t->body_buf.len) {
    /* Some servers send JSON-RPC errors without the right Content-Type;
     * a real error object still beats a synthesised one. */
    json_t *msg = json_loadb(t->body_buf.data, t->body_buf.len, 0, NULL);
    int usable = json_is_object(msg) && json_object_get(msg, "error");
    json_decref(msg);
    if (usable) {
      t->kind = BODY_JSON;
      finish_json_body(ch, t, status);
    } else {
      synthesise(ch, t, status, 0, "HTTP %ld: %.*s", status,
                 (int)(t->body_buf.len > 200 ? 200 : t->body_buf.len),
                 t->body_buf.data);
    }
  } else {
    synthesise(ch, t, status, 0, "HTTP %ld", status);
  }
  /* Anything still owed (an answer that named other ids) fails too. */
  if (json_array_size(t->pending_ids))
    synthesise(ch, t, status, 0, "the response did not answer this request");
}

/* ---- the GET stream
 * ----------------------------------------------------------- */

static void on_retry_timer(uv_timer_t *timer) {
  http_channel *ch = timer->data;
  if (ch->torn_down || !ch->stream_wanted || ch->stream) return;
  start_stream(ch);
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
    transport_error(ch, t, res, why, sizeof why);
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
  transfer *t = new_transfer(ch, 1);
  if (t && add_header(&t->headers, "Accept", "text/event-stream") == 0 &&
      (!ch->last_event_id ||
       add_header(&t->headers, "Last-Event-ID", ch->last_event_id) == 0)) {
    curl_easy_setopt(t->easy, CURLOPT_HTTPGET, 1L);
    if (start_transfer(ch, t) == 0) {
      ch->stream = t;
      return;
    }
  }
  if (t) free_transfer(ch, t);
  stream_failed(ch, "cannot start the request");
}

/* ---- curl <-> libuv ---------------------------------------------------------
 */

static void maybe_free(http_channel *ch) {
  if (!ch->torn_down || ch->handles_open > 0 || ch->busy) return;
  sb_free(ch->url);
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

static void on_watch_closed(uv_handle_t *h) {
  sock_watch *w = h->data;
  http_channel *ch = w->ch;
  sb_free(w);
  ch->handles_open--;
  maybe_free(ch);
}

static void unwatch(http_channel *ch, sock_watch *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    ch->watches = w->next;
  if (w->next) w->next->prev = w->prev;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  sock_watch *w = p->data;
  http_channel *ch = w->ch;
  if (ch->torn_down) return;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  int running = 0;
  curl_multi_socket_action(ch->multi, w->fd, flags, &running);
  after_curl(ch);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *ud,
                          void *sockp) {
  http_channel *ch = ud;
  sock_watch *w = sockp;
  if (what == CURL_POLL_REMOVE) {
    if (w) {
      if (!ch->torn_down) curl_multi_assign(ch->multi, fd, NULL);
      unwatch(ch, w);
    }
    return 0;
  }
  if (!w) {
    w = sb_calloc(1, sizeof *w);
    if (!w) return -1;
    if (uv_poll_init_socket(ch->loop, &w->poll, fd) != 0) {
      sb_free(w);
      return -1;
    }
    w->fd = fd;
    w->ch = ch;
    w->poll.data = w;
    w->next = ch->watches;
    if (w->next) w->next->prev = w;
    ch->watches = w;
    ch->handles_open++;
    curl_multi_assign(ch->multi, fd, w);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&w->poll, events, on_poll);
  return 0;
}

static void on_curl_timeout(uv_timer_t *timer) {
  http_channel *ch = timer->data;
  if (ch->torn_down) return;
  int running = 0;
  curl_multi_socket_action(ch->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  after_curl(ch);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *ud) {
  http_channel *ch = ud;
  if (ch->torn_down) return 0;
  if (timeout_ms < 0) uv_timer_stop(&ch->curl_timer);
  /* Even a 0 timeout goes through the loop: curl must not be re-entered
   * from its own callback. */
  else
    uv_timer_start(&ch->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

/* Stop every transfer and close every handle; the struct goes with the
 * last close callback. */
static void teardown(http_channel *ch) {
  if (ch->torn_down) return;
  ch->torn_down = 1;
  while (ch->transfers) {
    transfer *t = ch->transfers;
    curl_multi_remove_handle(ch->multi, t->easy);
    free_transfer(ch, t);
  }
  purge_queue(ch, NULL);
  if (ch->multi) curl_multi_cleanup(ch->multi);
  ch->multi = NULL;
  while (ch->watches)
    unwatch(ch, ch->watches);
  uv_close((uv_handle_t *)&ch->curl_timer, on_handle_closed);
  uv_close((uv_handle_t *)&ch->retry_timer, on_handle_closed);
}

/* After any call into curl: finish completed transfers, then hand queued
 * messages to the owner, then carry out a close it asked for meanwhile. */
static void after_curl(http_channel *ch) {
  if (ch->torn_down) return;
  ch->busy++;
  CURLMsg *m;
  int left = 0;
  while ((m = curl_multi_info_read(ch->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *easy = m->easy_handle;
    CURLcode res = m->data.result;
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    transfer *t = (transfer *)priv;
    curl_multi_remove_handle(ch->multi, easy);
    if (!t) continue;
    if (t->is_stream) {
      ch->stream = NULL;
      finish_stream(ch, t, res);
    } else {
      finish_post(ch, t, res);
    }
    free_transfer(ch, t);
  }
  while (ch->queue_head && !ch->base.closed) {
    queued_msg *q = ch->queue_head;
    ch->queue_head = q->next;
    if (!ch->queue_head) ch->queue_tail = NULL;
    sb_channel_deliver(&ch->base, q->msg);
    json_decref(q->msg);
    sb_free(q);
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

/* ---- the channel ops --------------------------------------------------------
 */

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

static int http_send(sb_channel *base, json_t *msg, sb_error *err) {
  http_channel *ch = (http_channel *)base;
  if (!json_is_object(msg) && !json_is_array(msg))
    return sb_error_set(err, SB_EINVAL, "a message is an object or a batch");
  transfer *t = new_transfer(ch, 0);
  if (!t) return sb_error_set(err, SB_ENOMEM, "out of memory");
  int rc = SB_ENOMEM;
  size_t len = 0;
  t->body = sb_rpc_dump(msg, &len);
  t->pending_ids = request_ids(msg);
  if (!t->body || !t->pending_ids) goto fail;
  if (add_header(&t->headers, "Content-Type", "application/json") != 0 ||
      add_header(&t->headers, "Accept",
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
    char *mv = mcp_header_value(method);
    char *nv = name ? mcp_header_value(name) : NULL;
    int hrc = mv && (!name || nv) ? add_header(&t->headers, "Mcp-Method", mv)
                                  : SB_ENOMEM;
    if (hrc == 0 && nv) hrc = add_header(&t->headers, "Mcp-Name", nv);
    sb_free(mv);
    sb_free(nv);
    if (hrc != 0) goto fail;
  }
  curl_easy_setopt(t->easy, CURLOPT_POST, 1L);
  curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
  curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  if (start_transfer(ch, t) != 0) {
    rc = SB_EIO;
    goto fail;
  }
  return 0;
fail:
  free_transfer(ch, t);
  return sb_error_set(err, rc, "agent %s: cannot start the request: %s",
                      ch->base.name, sb_strerror(rc));
}

static void http_cancel(sb_channel *base, json_t *id) {
  http_channel *ch = (http_channel *)base;
  if (ch->torn_down) return;
  for (transfer *t = ch->transfers; t; t = t->next) {
    if (t->is_stream) continue;
    for (size_t i = 0; i < json_array_size(t->pending_ids); i++) {
      if (!json_equal(json_array_get(t->pending_ids, i), id)) continue;
      /* Closing the connection is the cancellation signal on Streamable
       * HTTP; anything of this request not yet delivered is dropped. */
      SB_DEBUG(MOD, "agent %s: cancelling a request", ch->base.name);
      curl_multi_remove_handle(ch->multi, t->easy);
      purge_queue(ch, t);
      free_transfer(ch, t);
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
  if (ch->stream || uv_is_active((uv_handle_t *)&ch->retry_timer)) return 0;
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
  static int curl_ready;
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
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      sb_error_set(err, SB_EIO, "cannot initialise libcurl");
      return NULL;
    }
    curl_ready = 1;
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
  uv_timer_init(loop, &ch->curl_timer);
  uv_timer_init(loop, &ch->retry_timer);
  ch->curl_timer.data = ch->retry_timer.data = ch;
  ch->handles_open = 2;
  ch->url = sb_strdup(o->url);
  ch->multi = curl_multi_init();
  if (!ch->url || !ch->multi) goto fail;
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
  curl_multi_setopt(ch->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(ch->multi, CURLMOPT_SOCKETDATA, ch);
  curl_multi_setopt(ch->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(ch->multi, CURLMOPT_TIMERDATA, ch);
  return &ch->base;
fail:
  ch->base.closed = 1;
  teardown(ch);
nomem:
  sb_error_set(err, SB_ENOMEM, "out of memory");
  return NULL;
}
