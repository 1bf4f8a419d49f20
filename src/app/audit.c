/* audit.c: the audit trail. Every authentication failure the HTTP server
 * decides (401, 403 for an Origin) and every administrative action (agents
 * registered or removed over MCP or REST, refused ones too, SIGHUP
 * reloads) becomes an audit.* event in the tenant concerned and a log
 * line. A failure with no tenant of its own goes to the operators'
 * tenant: the first of auth.admin_tenants, else auth.default_tenant.
 * Secrets never enter it: a presented API key is named by its public id,
 * another token by a prefix of its BLAKE2b hash. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "app/app_internal.h"

#define MODULE "audit"

const char *app_audit_tenant(const sb_app *app) {
  const sb_config *cfg = app->cfg;
  return cfg->admin_tenants_len ? cfg->admin_tenants[0] : cfg->default_tenant;
}

static void recorded(void *ud, int rc, int64_t seq, const sb_error *err) {
  (void)ud;
  (void)seq;
  if (rc != 0) SB_WARN(MODULE, "audit event not logged: %s", err->msg);
}

/* data stolen. */
static void record(sb_app *app, const char *tenant, sb_event_type type,
                   json_t *data) {
  sb_error err = {0};
  if (!data || !app->events ||
      sb_events_record(app->events, tenant, type, NULL, data, recorded, NULL,
                       &err) != 0)
    SB_WARN(MODULE, "audit event not logged: %s",
            data ? err.msg : "out of memory");
  json_decref(data);
}

/* "key:<id>" for an API key, "token:<12 hex of its hash>" otherwise. */
static void credential_of(const char *token, char *out, size_t cap) {
  char id[SB_AUTH_KEY_ID_LEN + 1];
  if (!token) {
    snprintf(out, cap, "none");
  } else if (sb_auth_key_parse(token, id)) {
    snprintf(out, cap, "key:%s", id);
  } else {
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof h, (const unsigned char *)token, strlen(token),
                       NULL, 0);
    char hex[13];
    sodium_bin2hex(hex, sizeof hex, h, 6);
    snprintf(out, cap, "token:%s", hex);
  }
}

/* Authentication failures cost whoever sends them nothing: at most this
 * many a second become events and log lines, and the next one recorded
 * says how many were left out meanwhile ("suppressed"). */
#define AUTH_FAILURES_PER_SECOND 50
/* What of a request's path an event keeps (the log line keeps as much). */
#define AUDIT_PATH_MAX 200

/* 1 if this failure is recorded; *suppressed: how many were not since. */
static int rate_admit(app_audit_rate *r, uint64_t *suppressed) {
  uint64_t second = sb_now_ms() / 1000;
  if (second != r->second) {
    r->second = second;
    r->recorded = 0;
  }
  if (r->recorded >= AUTH_FAILURES_PER_SECOND) {
    r->suppressed++;
    return 0;
  }
  r->recorded++;
  *suppressed = r->suppressed;
  r->suppressed = 0;
  return 1;
}

/* path cut to AUDIT_PATH_MAX bytes, at a character's start, into out. */
static void path_cut(const char *path, char *out, size_t cap) {
  size_t n = strlen(path);
  if (n > AUDIT_PATH_MAX) {
    n = AUDIT_PATH_MAX;
    while (n && ((unsigned char)path[n] & 0xC0) == 0x80)
      n--;
  }
  snprintf(out, cap, "%.*s", (int)n, path);
}

void app_audit_auth_failure(void *ud, const sb_http_auth_failure *f) {
  sb_app *app = ud;
  static const char *const reasons[] = {"", "missing_token", "refused_token",
                                        "origin_not_allowed"};
  uint64_t suppressed = 0;
  if (!rate_admit(&app->audit_rate, &suppressed)) return;
  const char *reason = (unsigned)f->reason < 4 ? reasons[f->reason] : "";
  char cred[40], path[AUDIT_PATH_MAX + 1];
  credential_of(f->bearer_token, cred, sizeof cred);
  path_cut(f->path ? f->path : "", path, sizeof path);
  const char *tenant = f->tenant ? f->tenant : app_audit_tenant(app);
  SB_WARN(MODULE,
          "auth failed: %d %s from %s (%s %s, credential %s)%s%.0llu%s",
          f->status, reason, *f->remote_addr ? f->remote_addr : "?",
          f->method ? f->method : "?", path, cred,
          suppressed ? "; " : "", (unsigned long long)suppressed,
          suppressed ? " more not recorded before it (50 a second at most)"
                     : "");
  json_t *data = json_pack("{sissssssssss}", "status", f->status, "reason",
                           reason, "remote", f->remote_addr, "method",
                           f->method ? f->method : "", "path", path,
                           "credential", cred);
  if (data && suppressed)
    json_object_set_new(data, "suppressed", json_integer((json_int_t)suppressed));
  record(app, tenant, SB_EVENT_AUDIT_AUTH_FAILED, data);
}

void app_audit_admin_log(const char *tenant, const char *action,
                         const char *via, const char *outcome,
                         const char *target, const char *detail) {
  SB_INFO(MODULE, "admin: %s via %s by tenant %s: %s%s%s%s%s", action, via,
          tenant, outcome, target ? " " : "", target ? target : "",
          detail ? ": " : "", detail ? detail : "");
}

json_t *app_audit_admin_data(const char *action, const char *via,
                             const char *outcome, const char *target,
                             const char *detail) {
  json_t *data =
      json_pack("{ssssss}", "action", action, "via", via, "outcome", outcome);
  if (data && target) json_object_set_new(data, "target", json_string(target));
  if (data && detail) json_object_set_new(data, "detail", json_string(detail));
  return data;
}

void app_audit_admin(sb_app *app, const char *tenant, const char *action,
                     const char *via, const char *outcome, const char *target,
                     const char *detail) {
  app_audit_admin_log(tenant, action, via, outcome, target, detail);
  record(app, tenant, SB_EVENT_AUDIT_ADMIN,
         app_audit_admin_data(action, via, outcome, target, detail));
}

void sb_app_audit_reload(sb_app *app, int ok, const char *detail) {
  if (app->events)
    app_audit_admin(app, app_audit_tenant(app), "config.reload", "sighup",
                    ok ? "ok" : "failed", app->cfg->config_file, detail);
}
