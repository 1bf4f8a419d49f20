/* sub_wait.c: acknowledgements of subscriptions.
 *
 * A resources/subscribe or subscriptions/listen is answered only once
 * every provider that was asked has subscribed (an agent's own subscribe
 * may take a round trip). A wait holds once per provider asked; the last
 * hold to go answers the call, or fails it with the first provider error.
 * A session's later subscribes of a URI still waiting follow the first,
 * so none is told yes before it.
 */
#include <string.h>

#include "mcp/mcp_internal.h"

struct sb_mcp_sub_wait {
  sb_mcp_call *call; /* NULL once the call has ended */
  int holds;
  void (*fire)(sb_mcp_call *c);
  void (*failed)(sb_mcp_call *c, json_t *error);
  json_t *error; /* {code, message, data}: a provider could not subscribe */
  /* resources/subscribe: the session subscribing to uri (NULL once it has
   * ended or unsubscribed), and that session's later subscribes of the
   * same URI, which must not be told yes before this one is. */
  sb_mcp_session *session;
  char *uri;
  sb_list_link session_link; /* in session->sub_waits */
  sb_list followers;         /* sb_mcp_call.follow_link */
};

sb_mcp_sub_wait *mcp_sub_wait_new(sb_mcp_call *c, void (*fire)(sb_mcp_call *c),
                                  void (*failed)(sb_mcp_call *c, json_t *error)) {
  sb_mcp_sub_wait *w = sb_calloc(1, sizeof *w);
  if (!w) return NULL;
  w->call = c;
  w->holds = 1;
  w->fire = fire;
  w->failed = failed;
  c->sub_wait = w;
  return w;
}

sb_mcp_sub_wait *mcp_sub_wait_new_uri(sb_mcp_call *c, const char *uri,
                                      void (*fire)(sb_mcp_call *c),
                                      void (*failed)(sb_mcp_call *c,
                                                     json_t *error)) {
  char *copy = sb_strdup(uri);
  sb_mcp_sub_wait *w = copy ? mcp_sub_wait_new(c, fire, failed) : NULL;
  if (!w) {
    sb_free(copy);
    return NULL;
  }
  w->uri = copy;
  w->session = c->session;
  sb_list_push_back(&c->session->sub_waits, &w->session_link);
  return w;
}

sb_mcp_sub_wait *mcp_sub_wait_of(sb_mcp_session *s, const char *uri) {
  for (sb_list_link *n = sb_list_first(&s->sub_waits); n; n = sb_list_next(n)) {
    sb_mcp_sub_wait *w = sb_list_entry(n, sb_mcp_sub_wait, session_link);
    if (strcmp(w->uri, uri) == 0) return w;
  }
  return NULL;
}

void mcp_sub_wait_follow(sb_mcp_sub_wait *w, sb_mcp_call *c) {
  c->following = w;
  sb_list_push_back(&w->followers, &c->follow_link);
}

void mcp_sub_wait_forget(sb_mcp_sub_wait *w) {
  if (!w->session) return;
  sb_list_unlink(&w->session->sub_waits, &w->session_link);
  w->session = NULL;
}

sb_mcp_sub_wait *sb_mcp_sub_wait_hold(sb_mcp_sub_wait *w) {
  if (w) w->holds++;
  return w;
}

static void sub_wait_answer(const sb_mcp_sub_wait *w, sb_mcp_call *c) {
  if (!c) return;
  if (w->error)
    w->failed(c, w->error); /* answers, and so frees, the call */
  else
    w->fire(c); /* may answer, and so free, the call */
}

void sb_mcp_sub_wait_done(sb_mcp_sub_wait *w) {
  if (!w || --w->holds > 0) return;
  sb_mcp_session *s = w->session;
  mcp_sub_wait_forget(w);
  /* A failed resources/subscribe leaves the session unsubscribed, even
   * when the call that asked has ended meanwhile. */
  if (s && w->error && json_object_get(s->subscriptions, w->uri)) {
    json_object_del(s->subscriptions, w->uri);
    mcp_subscribe(s->srv, w->uri, 0, NULL);
  }
  sb_mcp_call *c = w->call;
  if (c) c->sub_wait = NULL;
  sub_wait_answer(w, c);
  sb_list_link *n;
  while ((n = sb_list_first(&w->followers))) {
    sb_mcp_call *f = sb_list_entry(n, sb_mcp_call, follow_link);
    sb_list_unlink(&w->followers, n);
    f->following = NULL;
    sub_wait_answer(w, f);
  }
  json_decref(w->error);
  sb_free(w->uri);
  sb_free(w);
}

void sb_mcp_sub_wait_fail(sb_mcp_sub_wait *w, int code, const char *message,
                          json_t *data) {
  if (w && !w->error)
    w->error = json_pack("{siss}", "code", code, "message", message);
  if (w && w->error && data && !json_object_get(w->error, "data"))
    json_object_set_new(w->error, "data", data);
  else
    json_decref(data);
  sb_mcp_sub_wait_done(w);
}

void mcp_sub_wait_drop_call(sb_mcp_call *c) {
  if (c->sub_wait) { /* its acknowledgement is no longer owed */
    c->sub_wait->call = NULL;
    c->sub_wait = NULL;
  }
  if (c->following) {
    sb_list_unlink(&c->following->followers, &c->follow_link);
    c->following = NULL;
  }
}

void mcp_sub_waits_forget_session(sb_mcp_session *s) {
  sb_list_link *n;
  while ((n = sb_list_first(&s->sub_waits))) /* they answer no one now */
    mcp_sub_wait_forget(sb_list_entry(n, sb_mcp_sub_wait, session_link));
}
