/* curl_uv.c: libcurl's multi interface on the libuv loop (see curl_uv.h).
 * One uv_poll per socket curl asks us to watch, one uv_timer for curl's
 * timeouts; both call curl_multi_socket_action and then the owner's
 * `after`. A timeout of 0 still goes through the loop: curl must not be
 * re-entered from its own callback. And the reading of response headers
 * both users share. */
#include "net/curl_uv.h"

#include <string.h>
#include <strings.h>

#include "core/core.h"

struct hc_watch {
  uv_poll_t poll;
  curl_socket_t fd;
  CURL *easy; /* the transfer curl last named for this socket */
  hc_driver *d;
  sb_list_link link; /* in d->watches */
};

static void handle_gone(hc_driver *d) {
  if (--d->handles_open == 0 && d->stopped && d->on_closed) d->on_closed(d);
}

static void on_timer_closed(uv_handle_t *h) { handle_gone(h->data); }

static void on_watch_closed(uv_handle_t *h) {
  hc_watch *w = h->data;
  hc_driver *d = w->d;
  sb_free(w);
  handle_gone(d);
}

static void unwatch(hc_driver *d, hc_watch *w) {
  sb_list_unlink(&d->watches, &w->link);
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  hc_watch *w = p->data;
  hc_driver *d = w->d;
  if (d->stopped) return;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  int running = 0;
  curl_multi_socket_action(d->multi, w->fd, flags, &running);
  d->after(d);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *ud,
                          void *sockp) {
  hc_driver *d = ud;
  hc_watch *w = sockp;
  if (what == CURL_POLL_REMOVE) {
    if (w) {
      if (!d->stopped) curl_multi_assign(d->multi, fd, NULL);
      unwatch(d, w);
    }
    return 0;
  }
  if (!w) {
    w = sb_calloc(1, sizeof *w);
    if (!w) return -1;
    if (uv_poll_init_socket(d->loop, &w->poll, fd) != 0) {
      sb_free(w);
      return -1;
    }
    w->fd = fd;
    w->d = d;
    w->poll.data = w;
    sb_list_push_front(&d->watches, &w->link);
    d->handles_open++;
    curl_multi_assign(d->multi, fd, w);
  }
  w->easy = easy;
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&w->poll, events, on_poll);
  return 0;
}

curl_socket_t hc_driver_socket_of(const hc_driver *d, const CURL *easy) {
  for (sb_list_link *n = sb_list_first(&d->watches); n; n = n->next) {
    const hc_watch *w = sb_list_entry(n, hc_watch, link);
    if (w->easy == easy) return w->fd;
  }
  return CURL_SOCKET_BAD;
}

static void on_curl_timeout(uv_timer_t *timer) {
  hc_driver *d = timer->data;
  if (d->stopped) return;
  int running = 0;
  curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  d->after(d);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *ud) {
  hc_driver *d = ud;
  if (d->stopped) return 0;
  if (timeout_ms < 0)
    uv_timer_stop(&d->timer);
  else
    uv_timer_start(&d->timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

int hc_driver_init(hc_driver *d, uv_loop_t *loop, void (*after)(hc_driver *),
                   void (*on_closed)(hc_driver *)) {
  static int curl_ready;
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return SB_EIO;
    curl_ready = 1;
  }
  d->loop = loop;
  d->after = after;
  d->on_closed = on_closed;
  d->watches = (sb_list){0};
  d->stopped = 0;
  d->multi = curl_multi_init();
  if (!d->multi) return SB_ENOMEM;
  uv_timer_init(loop, &d->timer);
  d->timer.data = d;
  d->handles_open = 1;
  curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
  curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
  return 0;
}

void hc_driver_stop(hc_driver *d) {
  if (d->stopped) return;
  d->stopped = 1;
  if (d->multi) curl_multi_cleanup(d->multi);
  d->multi = NULL;
  sb_list_link *n;
  while ((n = sb_list_first(&d->watches)))
    unwatch(d, sb_list_entry(n, hc_watch, link));
  uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

void hc_easy_common(CURL *e, const char *url, void *priv, char *errbuf,
                    long connect_timeout_ms) {
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, priv);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
}

int hc_header_value(const char *line, size_t len, const char *name,
                    const char **v, size_t *n) {
  size_t nl = strlen(name);
  if (len <= nl || strncasecmp(line, name, nl) != 0) return 0;
  const char *s = line + nl, *end = line + len;
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  while (end > s && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
                     end[-1] == '\t'))
    end--;
  *v = s;
  *n = (size_t)(end - s);
  return 1;
}

void hc_add_challenge(char **list, const char *v, size_t n) {
  const size_t cap = HC_CHALLENGE_KEEP;
  size_t had = *list ? strlen(*list) : 0, sep = had ? 2 : 0;
  if (n == 0 || had + sep >= cap) return;
  size_t take = had + sep + n < cap ? n : cap - had - sep;
  char *all =
      sb_asprintf("%s%s%.*s", had ? *list : "", sep ? ", " : "", (int)take, v);
  if (!all) return;
  sb_free(*list);
  *list = all;
}
