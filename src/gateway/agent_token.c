/* agent_token.c: the OAuth access token of a pooled HTTP agent
 * (transport.oauth; oauth.c gets it).
 *
 * An agent is connected with a token: its first is got before the
 * handshake. It is renewed before it expires (at 80% of its lifetime) and
 * when the agent refuses a request (401, or 403 insufficient_scope, whose
 * challenge says what scope to ask for); while that renewal is under way
 * calls wait, as for a connection (gw_agent_ready), and a call the agent
 * refused is sent again once the new token is in (calls.c); one refused
 * for a token already replaced is sent again at once. A refused token is
 * not used again, a reconnect included. After REFUSALS_MAX renewals
 * forced by refusals with no request answered between them, the next
 * comes at most REFUSED_EVERY_MS after the last: an authorization server
 * whose tokens the agent never takes is not asked again for each call,
 * and a token that works again is still got.
 */
#include "gateway/gateway_internal.h"

#define MODULE "agents"
#define REFUSALS_MAX 3
#define REFUSED_EVERY_MS 10000
#define RENEW_MIN_MS 1000   /* the earliest a renewal is scheduled */
#define RENEW_RETRY_MS 5000 /* after a renewal failed; doubled to: */
#define RENEW_RETRY_MAX_MS 300000

static void on_token(void *ud, int ok, const char *detail);

static void fetch(agent *a, const char *challenge) {
  if (!sb_gateway_oauth_busy(a->oauth))
    sb_gateway_oauth_fetch(a->oauth, challenge, on_token, a);
}

static void renew_tick(uv_timer_t *t) { fetch(t->data, NULL); }

int gw_token_init(agent *a) {
  uv_timer_init(a->owner->opts.loop, &a->token_timer);
  a->token_timer.data = a;
  if (!a->def->transport.oauth.client_id) return 0;
  sb_gateway *o = a->owner;
  if (!o->fetcher && !(o->fetcher = sb_fetcher_new(o->opts.loop, NULL)))
    return SB_ENOMEM;
  a->oauth = sb_gateway_oauth_new(o->fetcher, a->def);
  return a->oauth ? 0 : SB_ENOMEM;
}

void gw_token_stop(agent *a) {
  sb_gateway_oauth_free(a->oauth);
  a->oauth = NULL;
  a->token_renewing = a->connect_on_token = 0;
  uv_timer_stop(&a->token_timer);
}

/* Send the token with every request on a's channel from now on. */
static void use_token(agent *a) {
  const char *auth = sb_gateway_oauth_authorization(a->oauth);
  if (a->ch && auth) sb_channel_set_header(a->ch, "Authorization", auth);
}

/* Whether the token will do for a while yet (a handshake, a call). */
static int token_fresh(const agent *a) {
  uint64_t exp = sb_gateway_oauth_expires_ms(a->oauth);
  return sb_gateway_oauth_authorization(a->oauth) &&
         (!exp || sb_now_ms() + RENEW_MIN_MS < exp);
}

int gw_token_connect(agent *a) {
  if (!a->oauth) return 1;
  if (token_fresh(a) && !sb_gateway_oauth_busy(a->oauth)) {
    use_token(a);
    return 1;
  }
  a->connect_on_token = 1;
  fetch(a, NULL);
  return 0;
}

int gw_token_refused(agent *a, const sb_channel_refusal *r) {
  if (!a->oauth || !r) return 0;
  /* A 403 is about the token only for insufficient_scope; any other (a
   * policy's access_denied, a firewall) is the agent's answer, whatever
   * token it went with. */
  char *err = NULL;
  if (r->status == 403)
    sb_gateway_oauth_challenge_param(r->challenge, "error", &err);
  int scope = err && strcmp(err, "insufficient_scope") == 0;
  sb_free(err);
  if (r->status == 403 && !scope) return 0;
  /* Refused for a token since replaced: the current one is sent. */
  if (r->stale_credentials) return 1;
  /* ...and a 403 renews only for scope the token could get: not yet asked
   * for, nor refused by the authorization server. */
  if (scope && !sb_gateway_oauth_wants_scope(a->oauth, r->challenge)) return 0;
  if (sb_gateway_oauth_busy(a->oauth)) {
    if (!a->connect_on_token) a->token_renewing = 1;
    return 1;
  }
  /* Never sent again, nor on a reconnect (gw_token_connect). */
  sb_gateway_oauth_forget(a->oauth);
  uint64_t now = sb_now_ms();
  if (a->refusals >= REFUSALS_MAX &&
      now < a->refused_renewal_ms + REFUSED_EVERY_MS) {
    uv_timer_start(&a->token_timer, renew_tick,
                   a->refused_renewal_ms + REFUSED_EVERY_MS - now, 0);
    return 0;
  }
  a->refusals++;
  a->refused_renewal_ms = now;
  SB_INFO(MODULE, "agent %s refused our access token; getting a new one",
          a->def->id);
  if (!a->connect_on_token) a->token_renewing = 1;
  fetch(a, r->challenge);
  return sb_gateway_oauth_busy(a->oauth) || a->token_renewing;
}

void gw_token_worked(agent *a) { a->refusals = 0; }

static void on_token(void *ud, int ok, const char *detail) {
  agent *a = ud;
  if (ok) {
    a->token_error[0] = '\0';
    a->token_retry_ms = 0;
    use_token(a);
    uint64_t got = sb_gateway_oauth_obtained_ms(a->oauth),
             exp = sb_gateway_oauth_expires_ms(a->oauth);
    if (exp > got) {
      uint64_t in = (exp - got) * 4 / 5;
      uv_timer_start(&a->token_timer, renew_tick,
                     in > RENEW_MIN_MS ? in : RENEW_MIN_MS, 0);
    }
    /* A list the old token was refused for is asked for with this one. */
    gw_agent_relist_missing(a);
  } else {
    char before[sizeof a->token_error];
    memcpy(before, a->token_error, sizeof before);
    gw_reason_set(a->token_error, sizeof a->token_error,
                  detail ? detail : "failed", NULL);
    /* Said when it changes (else the failed connect says it). */
    if (!a->connect_on_token && strcmp(before, a->token_error) != 0)
      SB_WARN(MODULE, "agent %s: cannot get an OAuth access token: %s",
              a->def->id, detail);
    /* Tried again in a while, the token still valid or not (an agent
     * whose token ran out meanwhile gets one without a refusal first),
     * less often while it keeps failing. */
    if (!a->connect_on_token && !a->token_renewing) {
      a->token_retry_ms = !a->token_retry_ms ? RENEW_RETRY_MS
                          : a->token_retry_ms >= RENEW_RETRY_MAX_MS / 2
                              ? RENEW_RETRY_MAX_MS
                              : a->token_retry_ms * 2;
      uv_timer_start(&a->token_timer, renew_tick, a->token_retry_ms, 0);
    }
  }
  if (a->connect_on_token) {
    a->connect_on_token = 0;
    if (ok)
      gw_agent_connect_client(a);
    else
      gw_agent_connect_failed(a, "cannot get an OAuth access token", detail);
  }
  if (a->token_renewing) {
    /* Without a new token the calls go as they are, and are refused; a
     * handshake under way resumes them once it is done. */
    a->token_renewing = 0;
    if (gw_agent_ready(a)) gw_resume_waiting(a);
  }
}
