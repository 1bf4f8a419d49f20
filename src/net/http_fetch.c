/* http_fetch.c: plain HTTP requests on the loop (net.h, sb_fetch_*), for
 * services that are not agents: the LLM endpoint (llm/).
 *
 * A fetcher is one hc_driver (curl_uv.c: the multi handle on the loop that
 * the agent channels use too) and the list of its requests. Finished
 * transfers are read in `after`, outside curl; each request's callback
 * runs there, once. A callback may start or cancel requests or free the
 * fetcher: `busy` counts the delivery loops on the stack, and a free asked
 * for meanwhile is carried out when the outermost one unwinds.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "net/curl_uv.h"
#include "net/net.h"

enum {
  DEFAULT_CONNECT_TIMEOUT_MS = 5000,
  DEFAULT_MAX_RESPONSE = 4 * 1024 * 1024,
};

struct sb_fetch {
  sb_fetcher *f;
  CURL *easy;
  struct curl_slist *headers;
  char *body; /* the request's, curl reads it in place */
  sb_buf response;
  size_t max_bytes;
  int too_large;
  char *url;
  char *url_shown; /* for messages: credentials in the URL masked */
  char *challenge; /* the WWW-Authenticate values, or NULL */
  sb_fetch_cb cb;
  void *ud;
  char errbuf[CURL_ERROR_SIZE];
  sb_list_link link; /* in f->requests while running */
};

struct sb_fetcher {
  hc_driver drv;
  sb_list requests; /* newest first */
  int busy;      /* callbacks and delivery loops on the stack */
  int freeing;   /* sb_fetcher_free was called */
  int torn_down; /* ...and carried out */
};

static void request_free(sb_fetch *r) {
  sb_list_unlink(&r->f->requests, &r->link);
  if (r->easy) curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  sb_free(r->body);
  sb_free(r->url);
  sb_free(r->url_shown);
  sb_free(r->challenge);
  sb_buf_free(&r->response);
  sb_free(r);
}

static void maybe_teardown(sb_fetcher *f);

/* Take r off the multi, run its callback with `res` and free it. */
static void deliver(sb_fetch *r, const sb_fetch_result *res) {
  sb_fetcher *f = r->f;
  if (f->drv.multi) curl_multi_remove_handle(f->drv.multi, r->easy);
  /* Unlinked before the callback, so that a teardown started from inside
   * it does not deliver this one twice. */
  sb_list_unlink(&f->requests, &r->link);
  f->busy++;
  r->cb(r->ud, res);
  f->busy--;
  request_free(r);
  maybe_teardown(f);
}

static void on_closed(hc_driver *d) {
  sb_free((sb_fetcher *)((char *)d - offsetof(sb_fetcher, drv)));
}

/* Once freeing was asked for and no callback is on the stack: cancel what
 * is left and close the driver (which frees f from its close callback). */
static void maybe_teardown(sb_fetcher *f) {
  if (!f->freeing || f->busy || f->torn_down) return;
  f->torn_down = 1;
  sb_list_link *n;
  while ((n = sb_list_first(&f->requests))) {
    sb_fetch_result res = {.outcome = SB_FETCH_CANCELLED,
                           .detail = "cancelled"};
    deliver(sb_list_entry(n, sb_fetch, link), &res);
  }
  hc_driver_stop(&f->drv);
}

static void finish(sb_fetch *r, CURLcode code) {
  sb_fetch_result res = {0};
  char detail[CURL_ERROR_SIZE + 300];
  long os_errno = 0;
  const char *what = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
  res.detail = detail;
  detail[0] = '\0';
  if (code == CURLE_OK) {
    res.outcome = SB_FETCH_RESPONSE;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
    res.body = r->response.data ? r->response.data : "";
    res.body_len = r->response.len;
    res.www_authenticate = r->challenge;
  } else if (r->too_large) {
    res.outcome = SB_FETCH_TOO_LARGE;
    snprintf(detail, sizeof detail, "%s: the response is larger than %zu bytes",
             r->url_shown, r->max_bytes);
  } else if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
             code == CURLE_COULDNT_RESOLVE_PROXY) {
    res.outcome = SB_FETCH_CONNECT_FAILED;
    curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
    if (code == CURLE_COULDNT_CONNECT && os_errno)
      snprintf(detail, sizeof detail, "connect to %s: %s", r->url_shown,
               strerror((int)os_errno));
    else
      snprintf(detail, sizeof detail, "%s: %s", r->url_shown, what);
  } else if (code == CURLE_OPERATION_TIMEDOUT) {
    /* Nothing sent yet: the connection never came (a reused connection
     * reports no connect time, so the bytes sent decide). */
    long sent = 0;
    curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &sent);
    res.outcome = sent > 0 ? SB_FETCH_TIMED_OUT : SB_FETCH_CONNECT_FAILED;
    snprintf(detail, sizeof detail, "%s: %s", r->url_shown, what);
  } else {
    res.outcome = SB_FETCH_FAILED;
    snprintf(detail, sizeof detail, "%s: %s", r->url_shown, what);
  }
  deliver(r, &res);
}

static void after(hc_driver *d) {
  sb_fetcher *f = (sb_fetcher *)((char *)d - offsetof(sb_fetcher, drv));
  if (f->freeing) return;
  f->busy++;
  CURLMsg *m;
  int left = 0;
  while (!f->freeing && (m = curl_multi_info_read(f->drv.multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURLcode code = m->data.result;
    char *priv = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
    if (priv) finish((sb_fetch *)priv, code);
  }
  f->busy--;
  maybe_teardown(f);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  sb_fetch *r = ud;
  size_t len = size * n;
  if (r->response.len + len > r->max_bytes) {
    r->too_large = 1;
    return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
  }
  if (sb_buf_append(&r->response, data, len) != 0) return 0;
  return len;
}

/* Response headers: gather the WWW-Authenticate challenges of the last
 * response (a redirect's or a 100's headers come first and are
 * forgotten). */
static size_t on_header(char *data, size_t size, size_t n, void *ud) {
  sb_fetch *r = ud;
  size_t len = size * n;
  const char *v;
  size_t vn;
  if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
    sb_free(r->challenge);
    r->challenge = NULL;
  } else if (hc_header_value(data, len, "www-authenticate:", &v, &vn)) {
    hc_add_challenge(&r->challenge, v, vn);
  }
  return len;
}

sb_fetcher *sb_fetcher_new(uv_loop_t *loop, sb_error *err) {
  sb_fetcher *f = sb_calloc(1, sizeof *f);
  if (!f) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  int rc = hc_driver_init(&f->drv, loop, after, on_closed);
  if (rc != 0) {
    sb_free(f);
    sb_error_set(err, rc, "cannot start an HTTP client: %s", sb_strerror(rc));
    return NULL;
  }
  return f;
}

void sb_fetcher_free(sb_fetcher *f) {
  if (!f || f->freeing) return;
  f->freeing = 1;
  maybe_teardown(f);
}

int sb_fetch_start(sb_fetcher *f, const sb_fetch_options *o, sb_fetch_cb cb,
                   void *ud, sb_fetch **out, sb_error *err) {
  if (out) *out = NULL;
  if (!f || f->freeing || !o || !o->url || !cb)
    return sb_error_set(err, SB_EINVAL, "a request needs a URL and a callback");
  if (strncasecmp(o->url, "http://", 7) != 0 &&
      strncasecmp(o->url, "https://", 8) != 0)
    return sb_error_set(err, SB_EINVAL, "not an http:// or https:// URL: %s",
                        o->url);
  sb_fetch *r = sb_calloc(1, sizeof *r);
  if (!r) return sb_error_set(err, SB_ENOMEM, "out of memory");
  r->f = f;
  r->cb = cb;
  r->ud = ud;
  r->max_bytes =
      o->max_response_bytes ? o->max_response_bytes : DEFAULT_MAX_RESPONSE;
  r->url = sb_strdup(o->url);
  r->url_shown = sb_url_redacted(o->url, "[REDACTED]");
  r->easy = curl_easy_init();
  if (!r->url || !r->url_shown || !r->easy) goto nomem;
  for (size_t i = 0; o->headers && o->headers[i]; i++) {
    if (strpbrk(o->headers[i], "\r\n")) {
      request_free(r);
      return sb_error_set(err, SB_EINVAL, "a header holds a line break");
    }
    struct curl_slist *l = curl_slist_append(r->headers, o->headers[i]);
    if (!l) goto nomem;
    r->headers = l;
  }
  /* No 100-continue round trip before the body. */
  struct curl_slist *l = curl_slist_append(r->headers, "Expect:");
  if (!l) goto nomem;
  r->headers = l;
  CURL *e = r->easy;
  hc_easy_common(e, r->url, r, r->errbuf,
                 o->connect_timeout_ms > 0 ? o->connect_timeout_ms
                                           : (long)DEFAULT_CONNECT_TIMEOUT_MS);
  if (o->timeout_ms > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  const char *method = o->method ? o->method : o->body ? "POST" : "GET";
  if (strcmp(method, "POST") == 0) {
    r->body = sb_strndup(o->body ? o->body : "", o->body ? o->body_len : 0);
    if (!r->body) goto nomem;
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(o->body ? o->body_len : 0));
  } else if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    request_free(r);
    return sb_error_set(err, SB_EINVAL, "unsupported method %s", method);
  }
  if (curl_multi_add_handle(f->drv.multi, e) != CURLM_OK) {
    request_free(r);
    return sb_error_set(err, SB_EIO, "cannot start the request to %s", o->url);
  }
  sb_list_push_front(&f->requests, &r->link);
  if (out) *out = r;
  return 0;
nomem:
  request_free(r);
  return sb_error_set(err, SB_ENOMEM, "out of memory");
}

void sb_fetch_cancel(sb_fetch *r) {
  if (!r) return;
  sb_fetch_result res = {.outcome = SB_FETCH_CANCELLED, .detail = "cancelled"};
  deliver(r, &res);
}
