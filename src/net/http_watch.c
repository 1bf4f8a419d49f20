/* http_watch.c: where a request waits for its answer, and noticing its
 * client leave meanwhile.
 *
 * A request whose answer is not ready when the access handler returns is
 * first *parked*: left in MHD, not suspended. MHD then calls the handler
 * again at each run (a request with no response is "waiting on the
 * application") and asks to be run again at once; while every other
 * connection is suspended or parked too, MHD has nothing else to do, so
 * the server's timer keeps its own deadline instead (http_park_hold). An
 * answer that comes meanwhile, as a fast agent's does, is queued on the
 * live connection and sent by the next MHD_run: no suspension, whose cost
 * is six system calls a request (MHD takes the socket out of its epoll
 * set and, after the resume, runs twice more, reads into EAGAIN and puts
 * the socket back, whose EPOLLOUT edge wakes the loop and MHD once more).
 * As soon as another connection is in MHD's hands, the parked requests
 * are suspended (they must never make the loop spin nor delay that
 * connection's bytes), and so is one still waiting after
 * HTTP_WATCH_DELAY_MS, with its watch at once: MHD does not notice a
 * client leaving a parked request either. (The deadline is that long on
 * purpose: arming a 1 ms timer at each request cost the loop's wake-up
 * 2.5 us here.)
 *
 * MHD does not notice a client that goes away from a suspended
 * connection, so a uv_poll watches the socket for EPOLLRDHUP meanwhile.
 * The watch costs four epoll_ctl calls (start, stop, and its handle's
 * close), more than a fast tool call itself, so a request waiting for its
 * answer gets it only once it has waited HTTP_WATCH_DELAY_MS: such
 * requests queue in suspension order and one server timer starts the
 * watches that fall due. A client that left earlier is noticed then
 * (EPOLLRDHUP is level-triggered), or sooner when its answer is written.
 * An SSE stream parked between events is watched at once, as MHD does not
 * notice a peer that left a stream it keeps writing to. A client seen
 * gone is handed to http_req_lost (http.c).
 */
#include "net/http_internal.h"

#include <errno.h>
#include <sys/socket.h>

/* ---- suspend / resume / disconnect watch ------------------------------ */

static void on_watch(uv_poll_t *h, int status, int events) {
  http_req *r = h->data;
  /* Only EPOLLRDHUP/HUP/ERR were asked for; confirm before giving up on a
   * connection, and keep watching if the peer is in fact still there. */
  if (status == 0 && !(events & UV_DISCONNECT) && !http_req_peer_closed(r))
    return;
  uv_poll_stop(h);
  r->watching = 0;
  http_req_lost(r);
}

static void watch_start(http_req *r) {
  if (!r->watch_inited) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || uv_poll_init_socket(r->srv->loop, &r->watch, ci->connect_fd))
      return; /* no watch: a disconnect is noticed at the next write */
    r->watch.data = r;
    r->watch_inited = 1;
  }
  if (uv_poll_start(&r->watch, UV_DISCONNECT, on_watch) == 0) r->watching = 1;
}

/* ---- the watch queue: suspended requests whose watch is not due yet ---- */

static http_req *due_first(sb_http_server *s) {
  return sb_list_entry(sb_list_first(&s->due), http_req, due_link);
}

static http_req *park_first(sb_http_server *s) {
  return sb_list_entry(sb_list_first(&s->park), http_req, park_link);
}

static void http_watch_forget_due(http_req *r) {
  if (!r->watch_due) return;
  sb_list_unlink(&r->srv->due, &r->due_link);
  r->watch_due = 0;
}

/* Queue r (just suspended) for its watch; the loop's clock only grows, so
 * appending keeps the queue in due order. */
static void due_push(http_req *r) {
  sb_http_server *s = r->srv;
  r->suspended_ms = uv_now(s->loop);
  r->watch_due = 1;
  sb_list_push_back(&s->due, &r->due_link);
  if (!uv_is_active((uv_handle_t *)&s->watch_timer))
    uv_timer_start(&s->watch_timer, http_watch_due, HTTP_WATCH_DELAY_MS, 0);
}

void http_watch_due(uv_timer_t *t) {
  sb_http_server *s = t->data;
  uint64_t now = uv_now(s->loop);
  http_req *r;
  while ((r = due_first(s)) && now - r->suspended_ms >= HTTP_WATCH_DELAY_MS) {
    http_watch_forget_due(r);
    watch_start(r);
  }
  if (r && !s->stopping)
    uv_timer_start(&s->watch_timer, http_watch_due,
                   r->suspended_ms + HTTP_WATCH_DELAY_MS - now, 0);
}

/* ---- the park: waiting requests left in MHD, not suspended ----------- */

static void park_remove(http_req *r) {
  sb_http_server *s = r->srv;
  sb_list_unlink(&s->park, &r->park_link);
  r->parked = 0;
  s->nparked--;
}

void http_req_park(http_req *r) {
  sb_http_server *s = r->srv;
  if (r->suspended || r->parked) return;
  /* Outside MHD_run nobody would hold the timer for it. */
  if (!s->in_run || s->stopping || s->nparked >= HTTP_PARK_MAX) {
    http_req_suspend_watch(r, 0);
    return;
  }
  r->parked = 1;
  r->parked_ms = uv_now(s->loop);
  sb_list_push_back(&s->park, &r->park_link);
  s->nparked++;
}

int http_park_hold(sb_http_server *s, unsigned long long *ms) {
  http_req *r = park_first(s);
  if (!r) return 0;
  /* Every other connection is suspended: MHD's hurry is only the parked
   * ones'. A connection between two requests may hold bytes MHD has yet
   * to read, sending a response may take more runs: no holding then. */
  if (s->nconns == s->nsuspended + s->nparked && !s->stopping) {
    uint64_t now = uv_now(s->loop);
    uint64_t due = r->parked_ms + HTTP_WATCH_DELAY_MS;
    *ms = due > now ? due - now : 1;
    return 1;
  }
  while ((r = park_first(s)))
    http_req_suspend_watch(r, 0);
  return 0;
}

void http_park_expire(sb_http_server *s) {
  uint64_t now = uv_now(s->loop);
  http_req *r;
  while ((r = park_first(s)) && now - r->parked_ms >= HTTP_WATCH_DELAY_MS)
    http_req_suspend_watch(r, 1);
}

void http_watch_forget(http_req *r) {
  http_watch_forget_due(r);
  if (r->parked) park_remove(r);
  if (r->suspended) {
    r->suspended = 0;
    r->srv->nsuspended--;
  }
}

/* ---- suspend / resume ------------------------------------------------- */

/* Suspend r's connection. A request waiting for its answer gets its watch
 * late (due_push); an SSE stream between two events gets it at once: MHD
 * itself does not notice a peer that left a stream it keeps writing to. */
void http_req_suspend_watch(http_req *r, int watch_now) {
  if (r->suspended) return;
  if (r->parked) park_remove(r);
  MHD_suspend_connection(r->conn);
  r->suspended = 1;
  r->srv->nsuspended++;
  if (watch_now || r->srv->stopping)
    watch_start(r);
  else
    due_push(r);
}

/* r has something to send: a parked request is in MHD's hands already,
 * a suspended one goes back; either way MHD runs soon. */
void http_req_resume(http_req *r) {
  if (r->parked) {
    park_remove(r);
    http_kick(r->srv);
    return;
  }
  if (!r->suspended) return;
  http_watch_forget_due(r);
  if (r->watching) {
    uv_poll_stop(&r->watch);
    r->watching = 0;
  }
  r->suspended = 0;
  r->srv->nsuspended--;
  MHD_resume_connection(r->conn);
  http_kick(r->srv);
}

int http_req_peer_closed(http_req *r) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!ci) return 1;
  char c;
  ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return 1;
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}
