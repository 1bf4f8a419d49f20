/* reload.c (app/): SIGHUP's reload, in two steps so the loop never waits
 * on disk.
 *
 * A round's files are read and parsed on a worker thread (uv_queue_work):
 * the config file (and what it includes: the workflow files, checked as
 * a start checks them), the OAuth JWKS and the TLS certificate and key.
 * The worker touches no app state: what it reads is the round's own, and
 * the paths it needs from the app were copied when the round started.
 * Back on the loop the round is applied: agents (all validated before
 * any is changed), quotas, workflows (for new runs), keys, certificate; a
 * file that did not read changes what it always did (a bad config
 * nothing, a bad JWKS keeps the old keys, a bad certificate the old
 * certificate), logged and audited as before.
 *
 * One round at a time: a request while one is in progress marks `again`,
 * and one more round follows it (however many requests came meanwhile),
 * so the file as last written is the one applied. At stop the reloader is
 * detached from the app: a round still in the thread pool is cancelled
 * when it can be; one already running finishes, and its after-callback,
 * finding no app, frees what it read and the reloader.
 */
#include <string.h>

#include "app/app_internal.h"

#define MODULE "app"

/* What one round reads on the worker, and how each read went. */
typedef struct reload_round {
  char *config_path;
  char *jwks_path; /* NULL: no OAuth */
  int tls;         /* the listener serves TLS: re-read its certificate */
  sb_config fresh;
  sb_flow_defs defs; /* the file's workflows, for new runs */
  int cfg_rc;
  sb_error cfg_err;
  sb_auth_jwks *jwks; /* NULL: not read (see jwks_err) */
  sb_error jwks_err;
  int tls_read;              /* the certificate was to be read */
  sb_http_tls_creds *creds;  /* NULL: not read (see tls_err) */
  sb_error tls_err;
  json_t *notes; /* what sb_app_missing_commands said, to be logged */
} reload_round;

struct app_reloader {
  uv_work_t work;
  uv_loop_t *loop;
  sb_app *app;         /* NULL once the app has stopped */
  char *config_path;   /* the latest request's */
  reload_round *round; /* in flight; NULL: none */
  int again;           /* requested while in flight: one more round */
};

static void round_free(reload_round *r) {
  if (!r) return;
  sb_config_free(&r->fresh);
  sb_flow_defs_clear(&r->defs);
  sb_auth_jwks_free(r->jwks);
  sb_http_tls_free(r->creds);
  json_decref(r->notes);
  sb_free(r->config_path);
  sb_free(r->jwks_path);
  sb_free(r);
}

static void reloader_free(app_reloader *rl) {
  sb_free(rl->config_path);
  sb_free(rl);
}

static void note_into(void *ud, const char *line) {
  json_array_append_new(ud, json_string(line));
}

/* On the worker: the round's files, into the round. */
static void round_read(uv_work_t *w) {
  app_reloader *rl = w->data;
  reload_round *r = rl->round;
  r->cfg_rc = sb_config_load(&r->fresh, r->config_path, &r->cfg_err);
  if (r->cfg_rc != 0) return;
  /* An empty file is all defaults, no agent among them: as a reload it is
   * far more often a file caught mid-write than a wish to stop them all. */
  if (r->fresh.empty_file) {
    r->cfg_rc = sb_error_set(&r->cfg_err, SB_EINVAL,
                             "%s: the file is empty (nothing but comments "
                             "or blanks); a config that means to remove "
                             "every agent says \"agents: []\"",
                             r->config_path);
    return;
  }
  /* The workflows are applied with the agents; the virtual servers at
   * the next start only, but a file that start would refuse (exit 2) is
   * refused here too: it was "reloaded", and the next start then failed. */
  r->cfg_rc = sb_flow_defs_load(r->fresh.workflows, r->fresh.workflow_lines,
                                r->fresh.config_file, r->fresh.config_dir,
                                &r->defs, &r->cfg_err);
  if (r->cfg_rc != 0) return;
  r->cfg_rc = sb_gateway_check_servers(r->fresh.servers, r->fresh.server_lines,
                                       &r->cfg_err);
  if (r->cfg_rc != 0) return;
  /* Commands looked for here, off the loop: said once it is applied. */
  if ((r->notes = json_array()))
    sb_app_missing_commands(&r->fresh, note_into, r->notes);
  if (r->jwks_path)
    sb_auth_jwks_load_file(r->jwks_path, &r->jwks, &r->jwks_err);
  if (r->tls && r->fresh.tls_cert_file) {
    r->tls_read = 1;
    sb_http_tls_load(r->fresh.tls_cert_file, r->fresh.tls_key_file, &r->creds,
                     &r->tls_err);
  }
}

/* On the loop: what the round read, applied. 0, or an error saying why
 * the config was not (or not wholly) applied. */
static int round_apply(sb_app *app, reload_round *r, sb_error *err) {
  if (r->cfg_rc != 0) {
    sb_error_set(err, r->cfg_rc, "%s", r->cfg_err.msg);
    sb_app_audit_reload(app, 0, err->msg);
    return r->cfg_rc;
  }
  const sb_config *fresh = &r->fresh;
  /* No agents key at all while the config's agents run: as with an empty
   * file, far more often a file cut off than a wish to stop them. */
  size_t configured = 0;
  for (size_t i = 0; i < sb_gateway_agent_count(app->gateway); i++) {
    sb_gateway_agent_info info;
    sb_gateway_agent_info_at(app->gateway, i, &info);
    configured += info.from_config != 0;
  }
  if (!fresh->agents_given && configured) {
    sb_error_set(err, SB_EINVAL,
                 "%s: no agents key, which would stop the %zu agent(s) "
                 "the config runs; a config that means to remove every "
                 "agent says \"agents: []\"",
                 fresh->config_file ? fresh->config_file : "config",
                 configured);
    sb_app_audit_reload(app, 0, err->msg);
    return SB_EINVAL;
  }
  app_register_log_secrets(fresh);
  /* The agents first: their definitions are checked before anything is
   * applied, so a file with a bad one changes nothing (quotas included),
   * as a broken file should. Quotas before the OAuth keys: a bad JWKS
   * (another file) does not keep the old limits. */
  int rc = sb_gateway_reload(app->gateway, fresh->agents, fresh->agent_lines,
                             fresh->config_file, app->api_agents, err);
  if (rc == 0) rc = app_quota_reload(app, fresh, err);
  /* New runs start from the file's workflows; a run under way keeps the
   * definition it started with (it has its own copy), so swapping the
   * set the engine reads is all it takes. */
  if (rc == 0) {
    sb_flow_defs old = app->defs;
    app->defs = r->defs;
    r->defs = old; /* freed with the round */
  }
  if (rc == 0) {
    rc = app_auth_reload(app, r->jwks, &r->jwks_err, err);
    r->jwks = NULL; /* taken */
  }
  /* New connections get a new certificate; a bad one keeps the old. */
  sb_error terr = r->tls_err;
  int tls_failed = 0;
  if (rc == 0 && r->tls_read) {
    tls_failed = !r->creds ||
                 sb_http_server_install_tls(app->http, r->creds, &terr) != 0;
    r->creds = NULL; /* taken */
  }
  if (tls_failed) {
    SB_ERROR(MODULE,
             "SIGHUP: TLS certificate not reloaded, the current one "
             "is kept: %s",
             terr.msg);
    sb_app_audit_reload(app, 0, terr.msg);
  } else {
    sb_app_audit_reload(app, rc == 0, rc == 0 ? NULL : err->msg);
  }
  if (rc == 0 && !sb_config_auth_equal(app->cfg, fresh))
    SB_WARN(MODULE,
            "SIGHUP: auth.tenants, auth.admin_tenants or auth.default_tenant "
            "changed in %s and are not applied: they take effect at the "
            "next start (until then the server keeps the tokens and "
            "administrators it started with; API keys are revoked at once "
            "with switchboard key revoke)",
            fresh->config_file ? fresh->config_file : "the config");
  size_t k;
  json_t *note;
  json_array_foreach(rc == 0 ? r->notes : NULL, k, note)
      SB_WARN(MODULE, "SIGHUP: %s", json_string_value(note));
  if (rc == 0)
    SB_INFO(MODULE,
            "config reloaded: %zu agent(s) and %zu workflow(s) configured; "
            "quotas, the OAuth keys and the TLS certificate re-read; other "
            "settings take effect at the next start",
            json_array_size(fresh->agents), app->defs.len);
  return rc;
}

static void round_done(uv_work_t *w, int status);

/* On the loop: a round for the latest request, to the worker. */
static void round_start(app_reloader *rl) {
  sb_app *app = rl->app;
  reload_round *r = sb_calloc(1, sizeof *r);
  const char *jwks = app_auth_jwks_path(app);
  if (r) sb_config_defaults(&r->fresh);
  if (!r || !(r->config_path = sb_strdup(rl->config_path)) ||
      (jwks && !(r->jwks_path = sb_strdup(jwks)))) {
    round_free(r);
    SB_ERROR(MODULE, "SIGHUP: config not reloaded: out of memory");
    sb_app_audit_reload(app, 0, "out of memory");
    return;
  }
  r->tls = sb_http_server_is_tls(app->http);
  rl->round = r;
  rl->work.data = rl;
  int uvrc = uv_queue_work(rl->loop, &rl->work, round_read, round_done);
  if (uvrc != 0) {
    rl->round = NULL;
    round_free(r);
    SB_ERROR(MODULE, "SIGHUP: config not reloaded: %s", uv_strerror(uvrc));
    sb_app_audit_reload(app, 0, uv_strerror(uvrc));
  }
}

/* On the loop, once the worker is done (or the round was cancelled). */
static void round_done(uv_work_t *w, int status) {
  app_reloader *rl = w->data;
  reload_round *r = rl->round;
  rl->round = NULL;
  if (!rl->app) { /* the app stopped meanwhile */
    round_free(r);
    reloader_free(rl);
    return;
  }
  sb_error err = {0};
  if (status == 0 && round_apply(rl->app, r, &err) != 0)
    SB_ERROR(MODULE, "SIGHUP: config not reloaded: %s", err.msg);
  round_free(r);
  if (rl->again) {
    rl->again = 0;
    round_start(rl);
  }
}

void sb_app_reload(sb_app *app, const char *config_path) {
  app_reloader *rl = app->reloader;
  if (!rl && (rl = app->reloader = sb_calloc(1, sizeof *rl))) {
    rl->app = app;
    rl->loop = app->loop;
  }
  if (rl && (!rl->config_path || strcmp(rl->config_path, config_path) != 0)) {
    char *path = sb_strdup(config_path);
    if (path) {
      sb_free(rl->config_path);
      rl->config_path = path;
    }
  }
  if (!rl || !rl->config_path) {
    SB_ERROR(MODULE, "SIGHUP: config not reloaded: out of memory");
    sb_app_audit_reload(app, 0, "out of memory");
    return;
  }
  if (rl->round) {
    rl->again = 1;
    SB_INFO(MODULE, "SIGHUP: a reload is in progress; another follows it");
    return;
  }
  round_start(rl);
}

void app_reload_stop(sb_app *app) {
  app_reloader *rl = app->reloader;
  if (!rl) return;
  app->reloader = NULL;
  if (!rl->round) {
    reloader_free(rl);
    return;
  }
  /* round_done frees it: at once if the round had not started, when the
   * worker is done otherwise. */
  rl->app = NULL;
  rl->again = 0;
  uv_cancel((uv_req_t *)&rl->work);
}
