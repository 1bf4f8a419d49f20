/* quotas.c: the config's quotas as admissions of the MCP servers (every
 * request; MCP requests but subscriptions/listen hold a place among the
 * calls in flight until answered) and of the REST routes (held until
 * answered; an SSE stream lets its place go), over one sb_quota on the
 * loop's monotonic clock. A refusal names the limit. */
#include <stdio.h>
#include <string.h>

#include "app/app_internal.h"

#define MODULE "quota"

/* The quotas of cfg as the limiter's options; *ov (to sb_free) holds the
 * overrides, borrowing cfg's tenant strings. */
static int quota_options(const sb_config *cfg, sb_quota_options *o,
                         sb_quota_override **ov, sb_error *err) {
  *ov = NULL;
  if (cfg->quota_tenants_len &&
      !(*ov = sb_calloc(cfg->quota_tenants_len, sizeof **ov)))
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  for (size_t i = 0; i < cfg->quota_tenants_len; i++) {
    const sb_config_quota *q = &cfg->quota_tenants[i];
    (*ov)[i] = (sb_quota_override){
        q->tenant, {q->rate_per_s, q->burst, q->max_concurrent}};
  }
  *o = (sb_quota_options){.global = {cfg->quota_rate_per_s, cfg->quota_burst,
                                     cfg->quota_max_concurrent},
                          .overrides = *ov,
                          .overrides_len = cfg->quota_tenants_len};
  return 0;
}

int app_quota_start(sb_app *app, sb_error *err) {
  sb_quota_options o;
  sb_quota_override *ov;
  if (quota_options(app->cfg, &o, &ov, err) != 0) return err->code;
  app->quota = sb_quota_new(&o, err);
  sb_free(ov);
  return app->quota ? 0 : SB_ENOMEM;
}

int app_quota_reload(sb_app *app, const sb_config *fresh, sb_error *err) {
  sb_quota_options o;
  sb_quota_override *ov;
  if (quota_options(fresh, &o, &ov, err) != 0) return err->code;
  int rc = sb_quota_reconfigure(app->quota, &o, err);
  sb_free(ov);
  if (rc == 0)
    SB_INFO(MODULE,
            "quotas reloaded: %d requests a second (burst %d), %d calls in "
            "flight, %zu tenant override(s) (0: no limit)",
            o.global.rate_per_s, o.global.burst, o.global.max_concurrent,
            o.overrides_len);
  return rc;
}

/* The verdict as words: "tenant dealer-a: quotas.requests_per_second (5
 * a second) is used up; a request is possible again in 200 ms". */
static void describe(const char *tenant, const sb_quota_verdict *v, char *out,
                     size_t cap) {
  if (v->outcome == SB_QUOTA_RATE)
    snprintf(out, cap,
             "quota exceeded: tenant %.64s passed quotas.requests_per_second "
             "(%d a second); retry in %llu ms",
             tenant, v->limit, (unsigned long long)v->retry_after_ms);
  else
    snprintf(out, cap,
             "quota exceeded: tenant %.64s has %d calls in flight "
             "(quotas.max_concurrent_calls); retry when one ends",
             tenant, v->limit);
}

static int mcp_admit(void *ud, const char *tenant, const char *method,
                     int *held, sb_mcp_refusal *r) {
  sb_app *app = ud;
  sb_quota_verdict v;
  /* A listen stream is a subscription, not a call in flight. */
  int hold = strcmp(method, "subscriptions/listen") != 0;
  if (sb_quota_admit(app->quota, tenant, sb_now_ms(), hold, &v) ==
      SB_QUOTA_ADMITTED) {
    *held = hold;
    return 0;
  }
  describe(tenant, &v, r->message, sizeof r->message);
  r->data =
      json_pack("{sssisI}", "limit", sb_quota_limit_name(v.outcome), "value",
                v.limit, "retryAfterMs", (json_int_t)v.retry_after_ms);
  SB_DEBUG(MODULE, "%s refused: %s", method, r->message);
  return 1;
}

static void quota_release(void *ud, const char *tenant) {
  sb_app *app = ud;
  sb_quota_release(app->quota, tenant);
}

int app_quota_hold_call(void *ud, const char *tenant, char *why, size_t cap) {
  sb_app *app = ud;
  sb_quota_verdict v;
  if (sb_quota_hold(app->quota, tenant, &v) == SB_QUOTA_ADMITTED) return 0;
  describe(tenant, &v, why, cap);
  SB_DEBUG(MODULE, "a workflow step's call waits: %s", why);
  return 1;
}

void app_quota_release_call(void *ud, const char *tenant) {
  quota_release(ud, tenant);
}

sb_mcp_admission app_quota_mcp_admission(sb_app *app) {
  sb_mcp_admission a = {
      .admit = mcp_admit, .release = quota_release, .ud = app};
  return a;
}

int app_quota_http_admit(void *ud, const char *tenant, sb_http_refusal *r) {
  sb_app *app = ud;
  sb_quota_verdict v;
  if (sb_quota_admit(app->quota, tenant, sb_now_ms(), 1, &v) ==
      SB_QUOTA_ADMITTED)
    return 0;
  describe(tenant, &v, r->message, sizeof r->message);
  r->limit = sb_quota_limit_name(v.outcome);
  r->retry_after_s =
      v.outcome == SB_QUOTA_RATE ? (int)((v.retry_after_ms + 999) / 1000) : 1;
  SB_DEBUG(MODULE, "REST request refused: %s", r->message);
  return 1;
}

void app_quota_http_release(void *ud, const char *tenant) {
  quota_release(ud, tenant);
}
