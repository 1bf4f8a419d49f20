/* mcp_internal.h: what the files of src/mcp/ share and nobody else sees.
 *
 * server.c owns sessions, calls, dispatch and the lifecycle of both eras;
 * builtin.c owns the built-in tools, resources and prompts; version.c the
 * protocol versions and HTTP header rules; state.c the MAC-protected
 * requestState of multi round-trip requests.
 */
#ifndef SB_MCP_INTERNAL_H
#define SB_MCP_INTERNAL_H

#include <sodium.h>

#include "mcp/mcp.h"

/* MCP log levels (RFC 5424 order); -1 means "send nothing". */
enum {
  MCP_LOG_NONE = -1,
  MCP_LOG_DEBUG = 0,
  MCP_LOG_INFO,
  MCP_LOG_NOTICE,
  MCP_LOG_WARNING,
  MCP_LOG_ERROR,
  MCP_LOG_CRITICAL,
  MCP_LOG_ALERT,
  MCP_LOG_EMERGENCY,
};
int mcp_log_level_parse(const char *name);
const char *mcp_log_level_name(int level);

/* A server->client request waiting for the legacy client's response. */
typedef void (*mcp_response_cb)(sb_mcp_call *call, json_t *result,
                                json_t *error, void *ud);
typedef struct mcp_pending {
  struct mcp_pending *next;
  json_int_t id;
  sb_mcp_call *call;
  mcp_response_cb cb;
  void *ud;
} mcp_pending;

struct sb_mcp_session {
  sb_mcp_server *srv;
  sb_list_link link; /* in srv->sessions */
  char id[33];
  int initialized;       /* initialize answered */
  char version[16];      /* negotiated legacy version */
  json_t *client_caps;   /* from initialize */
  json_t *client_info;   /* {name, version} only, copied */
  int log_level;         /* logging/setLevel, MCP_LOG_NONE until set */
  json_t *subscriptions; /* object used as a set of resource URIs */
  sb_list sub_waits;     /* resources/subscribe still waiting for providers */
  sb_mcp_out *notify_out;
  sb_list calls; /* in-flight calls of this session, newest first */
  mcp_pending *pending;
  json_int_t next_request_id;
  char *tenant; /* the tenant of the transport that initialized it */
};

struct sb_mcp_call {
  sb_mcp_server *srv;
  sb_mcp_session *session; /* NULL for sessionless modern HTTP */
  sb_mcp_out *out;
  json_t *id;     /* own reference */
  json_t *params; /* own reference, never NULL */
  char *method;
  int modern;
  char version[16];
  json_t *caps; /* own reference, never NULL */
  int log_level;
  json_t *progress_token; /* own reference or NULL */
  sb_mcp_cancel_cb cancel_cb;
  void *cancel_ud;
  sb_list_link out_link;  /* in out->calls_ */
  sb_list_link sess_link; /* in session->calls */
  /* subscriptions/listen (modern): the filter agreed, and list links */
  json_t *listen_filter;
  sb_list_link listen_link;  /* in srv->listeners (after its acknowledgement) */
  char *listen_tenant;       /* counted against its tenant's listen streams */
  sb_mcp_sub_wait *sub_wait; /* its acknowledgement waits for providers */
  /* resources/subscribe of a URI whose first subscribe still waits: this
   * call is answered with that one (follow_link in its followers) */
  sb_mcp_sub_wait *following;
  sb_list_link follow_link;
  json_t *list_error;        /* a list request a provider could not serve: the
                                error (without id) to answer with; own reference */
  /* batch bookkeeping (2025-03-26): the batch this call belongs to */
  struct mcp_batch *batch;
  char *held_tenant; /* admitted with a place held: released at its end */
};

typedef struct mcp_builtin mcp_builtin;

/* Open subscriptions/listen streams of one tenant (methods.c). */
typedef struct mcp_tenant_listens {
  char *tenant;
  size_t streams;
} mcp_tenant_listens;

struct sb_mcp_server {
  sb_mcp_limits limits; /* the options' limits, defaults filled in */
  char *default_tenant;
  uv_loop_t *loop;
  char *name;
  json_t *server_info; /* {name, version}, shared by every answer */
  char *instructions;
  uint64_t started_ms;
  sb_list sessions;  /* newest first */
  sb_list listeners; /* newest first */
  sb_mcp_provider *providers;
  size_t providers_len;
  sb_mcp_task_provider tasks; /* tasks.c; tasks.get NULL: no tasks */
  unsigned char state_key[crypto_auth_KEYBYTES];
  mcp_builtin *builtin; /* NULL for a server of providers only */
  json_t *(*capabilities)(void *ud);
  void *capabilities_ud;
  int (*authorize)(void *ud, sb_mcp_call *call, sb_mcp_item_kind kind,
                   const char *name, json_t *args);
  int (*item_visible)(void *ud, sb_mcp_call *call, sb_mcp_item_kind kind,
                      const char *name);
  void *authorize_ud;
  mcp_tenant_listens *listens; /* per-tenant listen stream counts */
  size_t listens_len;
  sb_mcp_admission admission; /* quotas (app/); admit NULL: none */
};

/* ---- builtin.c: the built-in provider (ud = the mcp_builtin) ---------- */
mcp_builtin *mcp_builtin_new(sb_mcp_server *srv);
void mcp_builtin_free(mcp_builtin *b);
json_t *mcp_builtin_capabilities(void); /* new reference */
extern const sb_mcp_provider mcp_builtin_provider;

/* ---- methods.c: one handler per request method ------------------------- */
enum { MCP_ERA_MODERN = 1, MCP_ERA_LEGACY = 2, MCP_ERA_BOTH = 3 };
typedef struct mcp_method_def {
  const char *method;
  int eras; /* MCP_ERA_* bits: where the method exists */
  void (*fn)(sb_mcp_server *srv, sb_mcp_call *c);
} mcp_method_def;
/* The handler of a method name, or NULL. */
const mcp_method_def *mcp_method_find(const char *name);
/* A listen call ends: its tenant has one stream less (once; no-op for
 * other calls). */
void mcp_listen_release(sb_mcp_call *c);
void mcp_listen_counts_free(sb_mcp_server *srv);

/* ---- tasks.c: tasks of both eras over the task provider --------------- */
void mcp_handle_tasks_get(sb_mcp_server *srv, sb_mcp_call *c);
void mcp_handle_tasks_update(sb_mcp_server *srv, sb_mcp_call *c);
void mcp_handle_tasks_cancel(sb_mcp_server *srv, sb_mcp_call *c);
void mcp_handle_tasks_result(sb_mcp_server *srv, sb_mcp_call *c);
void mcp_handle_tasks_list(sb_mcp_server *srv, sb_mcp_call *c);
/* tools/call: 1 if the call was taken as a task (or refused as one), 0 to
 * route it as usual. */
int mcp_tasks_route_call(sb_mcp_call *c, const char *name, json_t *args);
/* tools/list items (borrowed): the task tools say so to 2025-11-25. */
void mcp_tasks_mark_tools(sb_mcp_call *c, json_t *tools);
/* Add what tasks announce to caps (borrowed): the extension for modern
 * (server/discover), the `tasks` capability for legacy `version`. */
void mcp_tasks_capabilities(sb_mcp_server *srv, json_t *caps, int modern,
                            const char *version);
/* The related-task _meta on what a tasks/result call sends (borrowed
 * object: a result, or a request's params). */
void mcp_tasks_relate(sb_mcp_call *c, json_t *obj);

/* ---- server.c helpers for handlers ------------------------------------ */
/* Write a message (stolen) on the call's output, not ending the call. */
void mcp_call_send(sb_mcp_call *c, json_t *msg);
/* Tell the providers a client (un)subscribed to uri (wait: see
 * sb_mcp_provider.subscribe; NULL for on = 0). */
void mcp_subscribe(sb_mcp_server *srv, const char *uri, int on,
                   sb_mcp_sub_wait *wait);
/* A wait for call c's acknowledgement, holding once (release that hold
 * with sb_mcp_sub_wait_done after asking the providers): fire(c) runs when
 * the last hold goes, unless c has ended; failed(c, error) instead when a
 * provider failed its hold (error {code, message, data?}, borrowed): it
 * must answer c. NULL when out of memory. */
sb_mcp_sub_wait *mcp_sub_wait_new(sb_mcp_call *c, void (*fire)(sb_mcp_call *c),
                                  void (*failed)(sb_mcp_call *c,
                                                 json_t *error));
/* The same for resources/subscribe of uri in c's session: while it waits,
 * the session's later subscribes of uri follow it (mcp_sub_wait_follow),
 * and if it fails the session is unsubscribed from uri again. */
sb_mcp_sub_wait *mcp_sub_wait_new_uri(sb_mcp_call *c, const char *uri,
                                      void (*fire)(sb_mcp_call *c),
                                      void (*failed)(sb_mcp_call *c,
                                                     json_t *error));
/* The session's resources/subscribe of uri still waiting, or NULL. */
sb_mcp_sub_wait *mcp_sub_wait_of(sb_mcp_session *s, const char *uri);
/* Answer c with w's outcome when w's last hold goes. */
void mcp_sub_wait_follow(sb_mcp_sub_wait *w, sb_mcp_call *c);
/* The session no longer wants w's URI (resources/unsubscribe): w still
 * answers its calls, but its failure no longer undoes anything. */
void mcp_sub_wait_forget(sb_mcp_sub_wait *w);
/* The call has ended: no wait answers it or counts it as a follower. */
void mcp_sub_wait_drop_call(sb_mcp_call *c);
/* The session is going: its waits answer their calls, but no failure
 * undoes a subscription of it any more. */
void mcp_sub_waits_forget_session(sb_mcp_session *s);
/* Link a listen call into srv->listeners: it gets notifications now. */
void mcp_listener_link(sb_mcp_call *c);
/* The capabilities this server announces (new reference). */
json_t *mcp_server_capabilities(sb_mcp_server *srv);
/* {name, version} of this server (new reference). */
json_t *mcp_server_info(sb_mcp_server *srv);
/* Send a server->client request (legacy era) on the call's output and get
 * the client's answer through cb. Returns 0 or a negative code. */
int mcp_call_request_client(sb_mcp_call *call, const char *method,
                            json_t *params, mcp_response_cb cb, void *ud);

#endif
