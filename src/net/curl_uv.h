/* curl_uv.h (private to net/): a libcurl multi handle driven by the libuv
 * loop, shared by the agent channel (http_client.c) and plain requests
 * (http_fetch.c).
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION -> one
 * uv_poll per socket) and when to wake it (CURLMOPT_TIMERFUNCTION -> one
 * uv_timer); when either fires we call curl_multi_socket_action and then
 * the owner's `after`, outside any curl callback, where it reads finished
 * transfers (curl_multi_info_read) and may call into curl again.
 */
#ifndef SB_NET_CURL_UV_H
#define SB_NET_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

#include "core/core.h"

typedef struct hc_watch hc_watch;
typedef struct hc_driver hc_driver;

struct hc_driver {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  sb_list watches;  /* newest first */
  int handles_open; /* the timer and the watches, until closed */
  int stopped;
  /* After curl ran (sockets or timer): the owner reads what finished. */
  void (*after)(hc_driver *d);
  /* After hc_driver_stop, once every handle has closed. */
  void (*on_closed)(hc_driver *d);
};

/* Make the multi handle (curl_global_init on first use) and the timer.
 * 0, SB_EIO or SB_ENOMEM; on failure nothing needs stopping. */
int hc_driver_init(hc_driver *d, uv_loop_t *loop, void (*after)(hc_driver *),
                   void (*on_closed)(hc_driver *));
/* The options every easy handle of ours carries: the URL, its owner as
 * CURLINFO_PRIVATE, the error buffer, no signals, http(s) only, the
 * connect timeout. */
void hc_easy_common(CURL *e, const char *url, void *priv, char *errbuf,
                    long connect_timeout_ms);
/* The socket curl watches for `easy`'s connection, or CURL_SOCKET_BAD
 * (CURLINFO_ACTIVESOCKET knows a connection only once its transfer is
 * done). */
curl_socket_t hc_driver_socket_of(const hc_driver *d, const CURL *easy);
/* A response header line "Name: value\r\n" whose name (lower case, with
 * the colon) is `name`: 1 with *v and *n, the value without the spaces
 * around it; 0 if the line is another header. */
int hc_header_value(const char *line, size_t len, const char *name,
                    const char **v, size_t *n);
/* Add a WWW-Authenticate value to the challenges gathered in *list (a
 * response may send several headers: one list, RFC 9110 11.6.1), joined
 * by ", " and cut at HC_CHALLENGE_KEEP bytes: what a client acts on
 * (resource_metadata, scope, error) fits many times over. *list is
 * replaced (ENOMEM: kept). */
#define HC_CHALLENGE_KEEP 2048
void hc_add_challenge(char **list, const char *v, size_t n);
/* Clean up the multi (the owner has removed its easy handles) and close
 * the handles; on_closed runs from a close callback when all are gone. */
void hc_driver_stop(hc_driver *d);

#endif
