/* http_session.c: legacy (2025-03-26 .. 2025-11-25) Streamable HTTP
 * sessions: the Mcp-Session-Id table, the GET notification stream and SSE
 * resumption.
 *
 * Every SSE event written for a session gets an id "<stream>-<seq>": seq
 * counts up across the whole session (so ids are unique in it), stream
 * names where the event went — 0 for the GET stream, 1.. for each POST
 * that turned into an SSE response. The last limits.replay_events events
 * are kept in a ring; a GET with Last-Event-ID "<stream>-<seq>" gets that
 * stream's later events replayed. For stream 0 it then stays open as the
 * session's live GET stream. For a POST stream it continues that stream:
 * a call whose POST connection dropped keeps running as an orphan of the
 * session (2025-11-25: disconnect is not cancellation), its later events go
 * to the ring and to the resuming GET, and its final response ends the GET.
 * If the call has finished (or was cancelled) the replay alone is sent.
 * Orphans are cancelled when the session ends, and at most MAX_ORPHANS are
 * kept per session (the oldest is cancelled) so a client cannot pile up
 * work by hanging up on it; notifications/cancelled still reaches them
 * because their calls stay linked to the mcp session.
 *
 * Sessions are capped (sessions.max, and sessions.max_per_tenant per
 * tenant): each one costs its ring and what the mcp session keeps, so a
 * caller that initializes in a loop meets a 503 instead of filling the
 * memory. The count includes sessions whose initialize is still pending.
 *
 * The session's notify_out is owned here and always valid: messages not
 * tied to a request (list_changed, resources/updated, ...) go into the ring
 * and, when a GET stream is connected, onto it. A GET without Last-Event-ID
 * receives what was never handed to any GET stream.
 */
#include "net/http_internal.h"

#include <stdlib.h>
#include <string.h>

#define SESSION_NOT_FOUND (-32001)
#define MIN_BUCKETS 64
#define MAX_ORPHANS 16

static size_t hash_id(const char *id) {
  return (size_t)sb_hash_str(SB_HASH_SEED, id);
}

static const char *sid(const http_session *hs) {
  return sb_mcp_session_id(hs->mcp);
}

int http_sessions_init(sb_http_server *s) {
  s->nbuckets = MIN_BUCKETS;
  s->nsessions = 0;
  s->buckets = sb_calloc(s->nbuckets, sizeof *s->buckets);
  return s->buckets ? 0 : SB_ENOMEM;
}

static void grow(sb_http_server *s) {
  size_t n = s->nbuckets * 2;
  http_session **b = sb_calloc(n, sizeof *b);
  if (!b) return; /* longer chains, still correct */
  for (size_t i = 0; i < s->nbuckets; i++) {
    for (http_session *hs = s->buckets[i], *next; hs; hs = next) {
      next = hs->hnext;
      size_t j = hash_id(sid(hs)) & (n - 1);
      hs->hnext = b[j];
      b[j] = hs;
    }
  }
  sb_free(s->buckets);
  s->buckets = b;
  s->nbuckets = n;
}

/* ---- events and the ring ---------------------------------------------- */

/* "id: <stream>-<seq>\ndata: <json>\n\n"; caller frees with sb_free. */
static char *format_event(uint32_t stream, uint64_t seq, json_t *msg,
                          size_t *len) {
  size_t jl = 0;
  char *json = sb_rpc_dump(msg, &jl);
  if (!json) return NULL;
  sb_buf b = SB_BUF_INIT;
  if (sb_buf_reserve(&b, jl + 48) != 0 ||
      sb_buf_printf(&b, "id: %u-%llu\ndata: ", (unsigned)stream,
                    (unsigned long long)seq) != 0 ||
      sb_buf_append(&b, json, jl) != 0 || sb_buf_append(&b, "\n\n", 2) != 0) {
    sb_buf_free(&b);
    sb_free(json);
    return NULL;
  }
  sb_free(json);
  *len = b.len;
  return b.data;
}

static void ring_drop_oldest(http_session *hs, size_t cap) {
  http_event *ev = &hs->ring[hs->ring_head];
  hs->ring_bytes -= ev->len;
  sb_free(ev->text);
  hs->ring_head = (hs->ring_head + 1) % cap;
  hs->ring_len--;
}

/* Keep an event for replay; takes ownership of text. The ring holds the
 * last limits.replay_events events, and no more of them than fit in an
 * eighth of limits.max_stream_buffer_bytes (1 MiB by default) but the
 * newest, however large: a few big events must not make each session
 * hold hundreds of megabytes. */
static void ring_push(http_session *hs, uint64_t seq, uint32_t stream,
                      char *text, size_t len) {
  int cap = hs->srv->cfg.replay_events;
  if (cap <= 0) {
    sb_free(text);
    return;
  }
  if (!hs->ring && !(hs->ring = sb_calloc((size_t)cap, sizeof *hs->ring))) {
    sb_free(text);
    return;
  }
  size_t budget = hs->srv->cfg.max_stream_buffer_bytes / 8;
  while (hs->ring_len == (size_t)cap ||
         (hs->ring_len && hs->ring_bytes + len > budget))
    ring_drop_oldest(hs, (size_t)cap);
  hs->ring_bytes += len;
  http_event *ev = &hs->ring[(hs->ring_head + hs->ring_len) % (size_t)cap];
  ev->seq = seq;
  ev->stream = stream;
  ev->len = (uint32_t)len;
  ev->text = text;
  hs->ring_len++;
}

static size_t replay(http_session *hs, http_req *r, uint32_t stream,
                     uint64_t after) {
  size_t n = 0, cap = (size_t)hs->srv->cfg.replay_events;
  for (size_t i = 0; i < hs->ring_len; i++) {
    http_event *ev = &hs->ring[(hs->ring_head + i) % cap];
    if (ev->stream != stream || ev->seq <= after) continue;
    if (http_req_sse_append(r, ev->text, ev->len) != 0) break;
    n++;
  }
  return n;
}

int http_session_stream_event(http_session *hs, http_req *r, json_t *msg) {
  size_t len = 0;
  uint64_t seq = ++hs->seq;
  char *text = format_event(r->stream_id, seq, msg, &len);
  if (!text) return SB_ENOMEM;
  int rc = http_req_sse_append(r, text, len);
  ring_push(hs, seq, r->stream_id, text, len);
  return rc;
}

/* The session's notify_out. Never fails for a missing stream: the event
 * waits in the ring. */
static int notify_write(sb_mcp_out *out, json_t *msg, int final) {
  http_session *hs = out->data;
  (void) final;
  size_t len = 0;
  uint64_t seq = ++hs->seq;
  char *text = format_event(0, seq, msg, &len);
  if (!text) return SB_ENOMEM;
  /* A GET opened with a key revoked or expired since hears no more: it
   * ends (the event waits in the ring for a GET with good credentials). */
  http_req *g = hs->get;
  if (g && !g->gone &&
      !sb_principal_live(g->principal, (int64_t)sb_wall_ms())) {
    g->sse_end = 1;
    http_req_resume(g);
    hs->get = NULL;
  }
  if (hs->get && !hs->get->gone && http_req_sse_append(hs->get, text, len) == 0)
    hs->delivered0 = seq;
  ring_push(hs, seq, 0, text, len);
  return 0;
}

/* ---- orphaned POST streams --------------------------------------------- */

/* End the GET continuing st (its response is complete). */
static void end_resume(http_stream *st) {
  http_req *g = st->resume;
  if (!g) return;
  st->resume = NULL;
  g->resumes = NULL;
  g->sse_end = 1;
  http_req_resume(g);
}

static void orphan_unlink(http_stream *st) {
  http_session *hs = st->session;
  if (!hs) return;
  for (http_stream **pp = &hs->orphans; *pp; pp = &(*pp)->next) {
    if (*pp == st) {
      *pp = st->next;
      hs->norphans--;
      break;
    }
  }
  st->next = NULL;
  st->session = NULL;
}

/* A stream holds a reference to its caller's principal (http.c). */
static void stream_free(http_stream *st) {
  sb_principal_unref((sb_principal *)st->out.principal);
  sb_free(st);
}

void http_stream_cancel(http_stream *st) {
  end_resume(st);
  orphan_unlink(st);
  sb_mcp_out_detach(&st->out);
  stream_free(st);
}

/* Whether a call still writes to st (not answered, not cancelled). */
static int stream_busy(const http_stream *st) { return sb_mcp_out_busy(&st->out); }

void http_session_sweep_orphans(http_session *hs) {
  for (http_stream **pp = &hs->orphans; *pp;) {
    http_stream *st = *pp;
    if (stream_busy(st)) {
      pp = &st->next;
      continue;
    }
    *pp = st->next;
    hs->norphans--;
    st->session = NULL;
    st->next = NULL;
    end_resume(st);
    stream_free(st);
  }
}

void http_session_orphan(http_session *hs, http_stream *st) {
  http_session_sweep_orphans(hs);
  if (!stream_busy(st)) { /* its call was cancelled already */
    stream_free(st);
    return;
  }
  st->session = hs;
  st->next = NULL;
  http_stream **pp = &hs->orphans;
  while (*pp)
    pp = &(*pp)->next;
  *pp = st;
  hs->norphans++;
  while (hs->norphans > MAX_ORPHANS) {
    SB_WARN("http",
            "session %s: more than %d calls left running by dropped "
            "streams; cancelling the oldest",
            sid(hs), MAX_ORPHANS);
    http_stream_cancel(hs->orphans);
  }
}

int http_stream_orphan_write(http_stream *st, json_t *msg, int final) {
  http_session *hs = st->session;
  if (!hs) return SB_EIO;
  size_t len = 0;
  int rc = 0;
  if (msg) { /* NULL: the end, with nothing to send */
    uint64_t seq = ++hs->seq;
    char *text = format_event(st->id, seq, msg, &len);
    rc = text ? 0 : SB_ENOMEM;
    if (text) {
      if (st->resume) http_req_sse_append(st->resume, text, len);
      ring_push(hs, seq, st->id, text, len);
    }
  }
  hs->last_used_ms = sb_now_ms();
  if (final) {
    end_resume(st);
    /* The call was unlinked before its final write; a batch's members
     * are all done by then. Anything else left is swept later. */
    if (!stream_busy(st)) {
      orphan_unlink(st);
      stream_free(st);
    }
  }
  return rc;
}

static http_stream *find_orphan(http_session *hs, uint32_t id) {
  for (http_stream *st = hs->orphans; st; st = st->next)
    if (st->id == id) return st;
  return NULL;
}

/* ---- caps ------------------------------------------------------------- */

/* The count of `tenant`'s sessions (added at 0 if `add`), or NULL. */
static size_t *tenant_count(sb_http_server *s, const char *tenant, int add) {
  if (!tenant) tenant = "";
  for (size_t i = 0; i < s->tenant_sessions_len; i++)
    if (strcmp(s->tenant_sessions[i].tenant, tenant) == 0)
      return &s->tenant_sessions[i].sessions;
  if (!add) return NULL;
  char *copy = sb_strdup(tenant);
  http_tenant_sessions *t =
      copy ? sb_realloc(s->tenant_sessions,
                        (s->tenant_sessions_len + 1) * sizeof *t)
           : NULL;
  if (!t) {
    sb_free(copy);
    return NULL;
  }
  s->tenant_sessions = t;
  t[s->tenant_sessions_len] = (http_tenant_sessions){copy, 0};
  return &t[s->tenant_sessions_len++].sessions;
}

http_session_admit http_session_may_open(sb_http_server *s,
                                         const char *tenant) {
  const sb_http_server_options *cfg = &s->cfg;
  if (cfg->max_sessions > 0 && s->sessions_live >= (size_t)cfg->max_sessions)
    return HTTP_SESSION_FULL;
  size_t *n = tenant_count(s, tenant, 0);
  if (cfg->max_sessions_per_tenant > 0 && n &&
      *n >= (size_t)cfg->max_sessions_per_tenant)
    return HTTP_SESSION_TENANT_FULL;
  return HTTP_SESSION_ADMITTED;
}

static void tenant_counts_free(sb_http_server *s) {
  for (size_t i = 0; i < s->tenant_sessions_len; i++)
    sb_free(s->tenant_sessions[i].tenant);
  sb_free(s->tenant_sessions);
  s->tenant_sessions = NULL;
  s->tenant_sessions_len = 0;
}

/* ---- the table -------------------------------------------------------- */

http_session *http_session_new(sb_http_server *s, sb_mcp_server *server,
                               const char *tenant) {
  size_t *count = tenant_count(s, tenant, 1);
  if (!count) return NULL;
  http_session *hs = sb_calloc(1, sizeof *hs);
  if (!hs) return NULL;
  hs->srv = s;
  hs->tenant = tenant;
  hs->notify.write = notify_write;
  hs->notify.data = hs;
  hs->last_used_ms = sb_now_ms();
  hs->server = server;
  hs->mcp = sb_mcp_session_new(server, &hs->notify);
  if (!hs->mcp) {
    sb_free(hs);
    return NULL;
  }
  (*count)++;
  s->sessions_live++;
  return hs;
}

void http_session_insert(http_session *hs) {
  sb_http_server *s = hs->srv;
  if (hs->in_table || !s->buckets) return; /* stopped: no new sessions */
  if (s->nsessions >= s->nbuckets) grow(s);
  size_t i = hash_id(sid(hs)) & (s->nbuckets - 1);
  hs->hnext = s->buckets[i];
  s->buckets[i] = hs;
  hs->in_table = 1;
  s->nsessions++;
  hs->last_used_ms = sb_now_ms();
}

http_session *http_session_find(sb_http_server *s, const char *id) {
  if (!s->buckets) return NULL;
  size_t i = hash_id(id) & (s->nbuckets - 1);
  for (http_session *hs = s->buckets[i]; hs; hs = hs->hnext)
    if (strcmp(sid(hs), id) == 0) return hs;
  return NULL;
}

void http_session_attach(http_session *hs, http_req *r) {
  if (r->session == hs) return;
  http_session_detach_req(r);
  r->session = hs;
  sb_list_push_front(&hs->reqs, &r->sess_link);
  hs->last_used_ms = sb_now_ms();
}

void http_session_detach_req(http_req *r) {
  http_session *hs = r->session;
  if (!hs) return;
  sb_list_unlink(&hs->reqs, &r->sess_link);
  if (hs->get == r) hs->get = NULL;
  if (r->resumes) {
    r->resumes->resume = NULL;
    r->resumes = NULL;
  }
  r->session = NULL;
  hs->last_used_ms = sb_now_ms();
}

void http_session_destroy(http_session *hs) {
  sb_http_server *s = hs->srv;
  if (hs->in_table) {
    http_session **pp = &s->buckets[hash_id(sid(hs)) & (s->nbuckets - 1)];
    while (*pp && *pp != hs)
      pp = &(*pp)->hnext;
    if (*pp) *pp = hs->hnext;
    hs->in_table = 0;
    s->nsessions--;
  }
  /* End what still runs in the session before the session goes. */
  http_req *r;
  while ((r = sb_list_entry(sb_list_first(&hs->reqs), http_req, sess_link))) {
    http_session_detach_req(r);
    json_t *id = json_is_object(r->msg) ? json_object_get(r->msg, "id") : NULL;
    http_req_abort(
        r, MHD_HTTP_NOT_FOUND,
        sb_rpc_error_new(sb_rpc_id_valid(id) ? id : NULL, SESSION_NOT_FOUND,
                         "Session ended (deleted or expired)", NULL));
  }
  while (hs->orphans)
    http_stream_cancel(hs->orphans);
  sb_mcp_session_free(hs->mcp);
  size_t *count = tenant_count(s, hs->tenant, 0);
  if (count && *count) (*count)--;
  s->sessions_live--;
  size_t cap = (size_t)s->cfg.replay_events;
  for (size_t i = 0; i < hs->ring_len; i++)
    sb_free(hs->ring[(hs->ring_head + i) % cap].text);
  sb_free(hs->ring);
  sb_free(hs);
}

void http_sessions_free_all(sb_http_server *s) {
  if (!s->buckets) return;
  for (size_t i = 0; i < s->nbuckets; i++)
    while (s->buckets[i])
      http_session_destroy(s->buckets[i]);
  sb_free(s->buckets);
  s->buckets = NULL;
  s->nbuckets = 0;
  tenant_counts_free(s);
}

void http_sessions_expire(sb_http_server *s, uint64_t now_ms) {
  int idle_s = s->cfg.session_idle_timeout_s;
  if (idle_s <= 0 || !s->buckets) return;
  uint64_t idle = (uint64_t)idle_s * 1000u;
  for (size_t i = 0; i < s->nbuckets; i++) {
    for (http_session *hs = s->buckets[i], *next; hs; hs = next) {
      next = hs->hnext;
      if (sb_list_empty(&hs->reqs) && now_ms - hs->last_used_ms > idle) {
        SB_INFO("http", "session %s expired after %d s idle", sid(hs), idle_s);
        http_session_destroy(hs);
      }
    }
  }
}

/* ---- GET -------------------------------------------------------------- */

static json_t *get_error(int code, const char *message) {
  return sb_rpc_error_new(NULL, code, message, NULL);
}

unsigned http_session_open_get(http_session *hs, http_req *r,
                               const char *last_event_id, json_t **error) {
  uint32_t stream = 0;
  uint64_t after = 0;
  int have_last = 0;
  *error = NULL;
  if (last_event_id && *last_event_id) {
    /* "STREAM-SEQ", as the events are sent with: digits alone on both
     * sides (strtoul took signs and blanks, and wrapped "-1"). */
    const char *dash = strchr(last_event_id, '-');
    int64_t st = 0, sq = 0;
    if (!dash ||
        sb_parse_digits(last_event_id, (size_t)(dash - last_event_id), &st) ||
        sb_parse_digits(dash + 1, strlen(dash + 1), &sq) || st > UINT32_MAX) {
      *error = get_error(SB_RPC_INVALID_REQUEST,
                         "Last-Event-ID: not an event id of this session");
      return MHD_HTTP_BAD_REQUEST;
    }
    stream = (uint32_t)st;
    after = (uint64_t)sq;
    have_last = 1;
  }
  if (stream != 0) {
    http_session_sweep_orphans(hs);
    /* A POST still holding the stream: the client resuming it has given
     * up on that connection, perhaps before we noticed it drop. */
    for (sb_list_link *n = sb_list_first(&hs->reqs); n; n = sb_list_next(n)) {
      http_req *p = sb_list_entry(n, http_req, sess_link);
      if (p != r && !p->is_get && p->stream && p->state == REQ_SSE &&
          p->stream_id == stream) {
        http_req_lost(p);
        break;
      }
    }
  }
  if (stream == 0 && hs->get && hs->get != r) {
    http_req *old = hs->get;
    if (!http_req_peer_closed(old)) {
      *error = get_error(SB_RPC_INVALID_REQUEST,
                         "this session already has a GET stream open");
      return MHD_HTTP_CONFLICT;
    }
    /* The old stream's client is gone; we just had not noticed yet. */
    http_session_detach_req(old);
    http_req_abort(old, 0, NULL);
  }
  if (http_req_start_sse(r, MHD_HTTP_OK) != 0) {
    *error = get_error(SB_RPC_INTERNAL_ERROR, "out of memory");
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
  http_session_attach(hs, r);
  if (stream != 0) {
    /* Resuming a POST's stream: what it missed, then the rest of it live
     * if its call still runs, else the end. */
    replay(hs, r, stream, after);
    http_stream *st = find_orphan(hs, stream);
    if (!st) {
      r->sse_end = 1;
      return MHD_HTTP_OK;
    }
    end_resume(st); /* a newer resumption replaces an older one */
    st->resume = r;
    r->resumes = st;
    return MHD_HTTP_OK;
  }
  hs->get = r;
  size_t n = replay(hs, r, 0, have_last ? after : hs->delivered0);
  if (n == 0) {
    /* Prime the client with a cursor so it can resume even if nothing
     * arrives before the connection drops. */
    char prime[48];
    int pl = snprintf(prime, sizeof prime, "id: 0-%llu\ndata: \n\n",
                      (unsigned long long)hs->seq);
    http_req_sse_append(r, prime, (size_t)pl);
  }
  hs->delivered0 = hs->seq;
  return MHD_HTTP_OK;
}
