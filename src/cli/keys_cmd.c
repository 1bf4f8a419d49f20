/* keys_cmd.c: `switchboard tenant create|list` and `switchboard key
 * create|list|revoke`, on the store a server reads (SQLite in WAL mode
 * lets the command write beside a running server, whose keyring picks the
 * change up at its next refresh). A key is printed once, by `key create`;
 * the store keeps only its hash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "auth/auth.h"
#include "cli/cli.h"
#include "config/config.h"
#include "events/events.h"
#include "store/store.h"

#define MAX_ARG_BYTES 256 /* a tenant's --name, one --scope */
#define MAX_ARG_TEXT "256"

const char sb_cli_tenant_help[] =
    "Usage:\n"
    "  switchboard tenant create ID [--name NAME]\n"
    "  switchboard tenant list\n"
    "\n"
    "Register a tenant in the store (API keys belong to registered\n"
    "tenants), or list them as JSON. ID is 1-64 of [A-Za-z0-9._-].\n"
    "\n"
    "Options:\n"
    "  --name NAME       create: the tenant's name (UTF-8 text without\n"
    "                    control characters)\n"
    "  --config FILE     read store.path from FILE\n"
    "  --store PATH      the SQLite file (overrides store.path)\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 done, 1 exists or store error, 2 usage error.\n";

const char sb_cli_key_help[] =
    "Usage:\n"
    "  switchboard key create --tenant T [--scope S ...] [--expires WHEN]\n"
    "  switchboard key list [--tenant T]\n"
    "  switchboard key revoke KEYID\n"
    "\n"
    "create prints a new API key on stdout, ONCE: the store keeps only a\n"
    "hash of it. Callers send it as Authorization: Bearer <key>. WHEN is a\n"
    "duration (90s, 30m, 12h, 7d) from now or an RFC 3339 time\n"
    "(2027-01-31T00:00:00Z). Scopes are stored, listed and enforced\n"
    "(a key with none may do all its tenant may; the grammar: README,\n"
    "\"Scopes and permissions\").\n"
    "list prints JSON: id, tenant, scopes, created, expires, revoked\n"
    "(never the key). revoke refuses the key from the next request a\n"
    "running server sees after its next key refresh (250 ms).\n"
    "\n"
    "Options:\n"
    "  --config FILE     read store.path from FILE\n"
    "  --store PATH      the SQLite file (overrides store.path)\n"
    "  --tenant T        create: the key's tenant (registered with\n"
    "                    `switchboard tenant create`); list: only its keys\n"
    "  --scope S         create: a scope the key grants (repeatable;\n"
    "                    contexts:read, agents:sales, runs, ...)\n"
    "  --expires WHEN    create: when the key stops working (default never)\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 done, 1 not found or store error, 2 usage error.\n";

#define MAX_SCOPES 64

typedef struct keys_args {
  const char *config, *store, *tenant, *name, *expires;
  const char *scopes[MAX_SCOPES];
  int nscopes;
  const char *positional[2];
  int npositional;
  int help;
} keys_args;

static int parse(const char *cmd, int argc, char **argv, keys_args *a) {
  static const char *const names[] = {"--config", "--store", "--tenant",
                                      "--name", "--expires"};
  const char **const slots[] = {&a->config, &a->store, &a->tenant, &a->name,
                                &a->expires};
  for (int i = 0; i < argc; i++) {
    if (sb_cli_is_help(argv[i])) {
      a->help = 1;
      return 0;
    }
    /* --scope may be given again, one scope each */
    const char *scope = NULL;
    int rc = sb_cli_take_value(argc, argv, &i, "--scope", &scope);
    if (rc == SB_CLI_NO_VALUE)
      return sb_cli_usage_error(cmd, "%s", "option --scope needs a value");
    if (rc > 0) {
      if (a->nscopes == MAX_SCOPES)
        return sb_cli_usage_error(cmd, "%s", "too many --scope options");
      a->scopes[a->nscopes++] = scope;
      continue;
    }
    rc = sb_cli_take_option(cmd, argc, argv, &i, names, slots,
                            sizeof names / sizeof names[0]);
    if (rc < 0) return EXIT_USAGE;
    if (rc) continue;
    if (argv[i][0] == '-')
      return sb_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    if (a->npositional == 2)
      return sb_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    a->positional[a->npositional++] = argv[i];
  }
  return 0;
}

/* --expires: a duration from now or an RFC 3339 time; ms since the epoch,
 * or -1. */
static int64_t parse_expires(const char *s, int64_t now_ms) {
  char *end = NULL;
  long long n = strtoll(s, &end, 10);
  if (end && end != s && n > 0 && end[0] && !end[1]) {
    int64_t unit = end[0] == 's'   ? 1000
                   : end[0] == 'm' ? 60000
                   : end[0] == 'h' ? 3600000
                   : end[0] == 'd' ? 86400000
                                   : 0;
    if (unit && n <= 36500LL * 86400000 / unit) return now_ms + n * unit;
    return -1;
  }
  /* The same RFC 3339 reading as the API's: 2027-02-30 or an offset of
   * +99:00 is refused, not moved to another day. */
  int64_t at;
  return sb_time_parse(s, &at) == 0 && at > 0 ? at : -1; /* 0: never */
}

static void iso_time(int64_t ms, char out[32]) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- one store operation on a loop of our own ------------------------- */

typedef struct keys_run {
  uv_loop_t loop;
  sb_store *store;
  int done;
  int rc;
  sb_error err;
  int64_t count;
  json_t *out; /* lists */
} keys_run;

/* must_exist: the command only reads or changes what is there (list,
 * revoke); creating tenants and keys may start a store. */
static int run_open(keys_run *r, const sb_config *cfg, int must_exist,
                    sb_error *err) {
  memset(r, 0, sizeof *r);
  int rc = uv_loop_init(&r->loop);
  if (rc != 0)
    return sb_error_set(err, SB_EIO, "cannot create an event loop: %s",
                        uv_strerror(rc));
  sb_store_options so = {.path = cfg->store_path,
                         .loop = &r->loop,
                         .readers = 1,
                         .must_exist = must_exist,
                         .check = (sb_store_check)cfg->store_check_on_start};
  if (!(r->store = sb_store_open_sqlite(&so, err))) {
    uv_loop_close(&r->loop);
    return err->code ? err->code : SB_EIO;
  }
  return 0;
}

static void run_close(keys_run *r) {
  sb_store_close(r->store);
  uv_run(&r->loop, UV_RUN_DEFAULT); /* let the store's handle close */
  uv_loop_close(&r->loop);
  json_decref(r->out);
}

static void on_done(void *ud, sb_store_result *res) {
  keys_run *r = ud;
  r->done = 1;
  r->rc = res->rc;
  r->err = res->err;
  r->count = res->count;
  if (res->rc != 0) return;
  if (res->tenants.len || res->keys.len) r->out = json_array();
  for (size_t i = 0; i < res->tenants.len; i++) {
    const sb_store_tenant_row *t = &res->tenants.items[i];
    char created[32];
    iso_time(t->created_ms, created);
    /* A name stored before create refused bytes that are not UTF-8 is
     * shown with '?' for them: JSON cannot hold them, and the tenant was
     * left out of the list. */
    sb_utf8_scrub(t->name);
    json_array_append_new(r->out, json_pack("{ssssss}", "id", t->id, "name",
                                            t->name, "created", created));
  }
  for (size_t i = 0; i < res->keys.len; i++) {
    const sb_store_key_row *k = &res->keys.items[i];
    char created[32], expires[32], revoked[32];
    iso_time(k->created_ms, created);
    iso_time(k->expires_ms, expires);
    iso_time(k->revoked_ms, revoked);
    json_t *scopes = json_loads(k->scopes, 0, NULL);
    json_array_append_new(
        r->out,
        json_pack("{sssssosssoso}", "id", k->id, "tenant", k->tenant,
                  "scopes", scopes ? scopes : json_array(), "created", created,
                  "expires", k->expires_ms ? json_string(expires) : json_null(),
                  "revoked",
                  k->revoked_ms ? json_string(revoked) : json_null()));
  }
}

/* Wait for the operation submitted (submitted: its submit's result). */
static int run_wait(keys_run *r, int submitted) {
  if (submitted != 0)
    return sb_error_set(&r->err, submitted, "the store refused the request");
  while (!r->done && uv_run(&r->loop, UV_RUN_ONCE) != 0) {
  }
  if (!r->done) return sb_error_set(&r->err, SB_EIO, "the store never answered");
  return r->rc;
}

/* An audit.admin event for a change the command made, in the tenant it
 * concerns, written to the store the server reads (its bus picks it up).
 * A failure to record is reported, not fatal: the change is made. */
static void audit_recorded(void *ud, int rc, int64_t seq, const sb_error *err) {
  keys_run *r = ud;
  (void)seq;
  r->done = 1;
  r->rc = rc;
  if (rc != 0) r->err = *err;
}

static void audit(keys_run *r, const char *tenant, const char *action,
                  const char *target) {
  sb_events_options eo = {.store = r->store};
  sb_error err = {0};
  sb_events *ev = sb_events_new(&eo, &err);
  json_t *data = json_pack("{ssssssss?}", "action", action, "via", "cli",
                           "outcome", "ok", "target", target);
  r->done = 0;
  int rc = ev && data ? sb_events_record(ev, tenant, SB_EVENT_AUDIT_ADMIN,
                                         NULL, data, audit_recorded, r, &err)
                      : SB_ENOMEM;
  json_decref(data);
  if (rc == 0) rc = run_wait(r, 0);
  if (rc != 0)
    sb_cli_eprintf("switchboard: %s done, but not in the audit log: %s\n",
                   action, rc == SB_ENOMEM ? "out of memory" : r->err.msg);
  sb_events_free(ev);
}

/* The tenant of key `id` (copied into out), from the store; 0 or -1. */
static int key_tenant(keys_run *r, const char *id, char *out, size_t cap) {
  if (run_wait(r, sb_store_key_list(r->store, NULL, on_done, r)) != 0) return -1;
  int found = -1;
  size_t i;
  json_t *k;
  json_array_foreach(r->out, i, k) {
    if (strcmp(json_string_value(json_object_get(k, "id")) ?: "", id) == 0) {
      snprintf(out, cap, "%s", json_string_value(json_object_get(k, "tenant")));
      found = 0;
    }
  }
  json_decref(r->out);
  r->out = NULL;
  r->done = 0;
  return found;
}

static void print_list(json_t *list) {
  json_t *empty = list ? NULL : json_array();
  char *text =
      sb_json_dumps(list ? list : empty, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (text) puts(text);
  sb_free(text);
  json_decref(empty);
}

/* Load the config and apply --store; EXIT_OK or an exit status. */
static int load_config(const char *cmd, const keys_args *a, sb_config *cfg) {
  sb_error err = {0};
  sb_config_defaults(cfg);
  if ((a->config && sb_config_load(cfg, a->config, &err) != 0) ||
      (a->store && sb_config_set_store_path(cfg, a->store, &err) != 0)) {
    sb_cli_eprintf("switchboard %s: %s\n", cmd, err.msg);
    return EXIT_USAGE;
  }
  return EXIT_OK;
}

int sb_cli_tenant(int argc, char **argv) {
  keys_args a = {0};
  int rc = parse("tenant", argc, argv, &a);
  if (rc != 0) return rc;
  if (a.help || a.npositional == 0) {
    fputs(sb_cli_tenant_help, a.help ? stdout : stderr);
    return a.help ? EXIT_OK : EXIT_USAGE;
  }
  const char *verb = a.positional[0];
  int create = strcmp(verb, "create") == 0;
  if (!create && strcmp(verb, "list") != 0)
    return sb_cli_usage_error("tenant", "unknown subcommand '%s'", verb);
  if (create && (a.npositional != 2 || !sb_config_tenant_id_valid(a.positional[1])))
    return sb_cli_usage_error("tenant", "%s",
                              "create needs an ID of 1-64 of [A-Za-z0-9._-]");
  if (!create && a.npositional != 1)
    return sb_cli_usage_error("tenant", "unexpected argument '%s'",
                              a.positional[1]);
  if (a.tenant || a.expires || a.nscopes || (!create && a.name))
    return sb_cli_usage_error("tenant", "%s", "an option that applies to keys");
  /* tenant list prints JSON, which holds UTF-8 only: a name that was not
   * stored, and the tenant was then missing from the list. */
  if (a.name && strlen(a.name) > MAX_ARG_BYTES)
    return sb_cli_usage_error("tenant", "%s",
                              "--name: longer than " MAX_ARG_TEXT " bytes");
  if (a.name && !sb_text_plain(a.name, strlen(a.name))) {
    char shown[201];
    snprintf(shown, sizeof shown, "%s", a.name);
    sb_utf8_scrub(shown);
    for (char *c = shown; *c; c++)
      if ((unsigned char)*c < ' ' || *c == 0x7f) *c = '?';
    return sb_cli_usage_error("tenant",
                              "--name: '%s' is not UTF-8 text without control "
                              "characters (shown as '?')",
                              shown);
  }
  sb_config cfg;
  if ((rc = load_config("tenant", &a, &cfg)) != EXIT_OK) goto out;
  keys_run r;
  sb_error err = {0};
  if (run_open(&r, &cfg, !create, &err) != 0) {
    sb_cli_eprintf("switchboard tenant: %s\n", err.msg);
    rc = EXIT_RUNTIME;
    goto out;
  }
  int src = create ? sb_store_tenant_create(r.store, a.positional[1], a.name,
                                            (int64_t)sb_wall_ms(), on_done, &r)
                   : sb_store_tenant_list(r.store, on_done, &r);
  if (run_wait(&r, src) != 0) {
    sb_cli_eprintf("switchboard tenant: %s\n", r.err.msg);
    rc = EXIT_RUNTIME;
  } else if (create) {
    sb_cli_eprintf("tenant %s created\n", a.positional[1]);
    audit(&r, a.positional[1], "tenant.create", a.positional[1]);
    rc = EXIT_OK;
  } else {
    print_list(r.out);
    rc = EXIT_OK;
  }
  run_close(&r);
out:
  sb_config_free(&cfg);
  return rc;
}

/* key create's --scope, before the store is opened. A key with no scopes
 * may do everything its tenant may, and the store drops empty scopes, so
 * --scope "" (an unset variable) would have made an unrestricted key of
 * one meant to be restricted. A key expired already is made (a test of
 * expiry needs one) with a warning: every use of it will be refused. */
static int check_key_create(const keys_args *a) {
  for (int i = 0; i < a->nscopes; i++) {
    const char *s = a->scopes[i];
    if (!*s)
      return sb_cli_usage_error(
          "key", "%s",
          "--scope: empty; a key without scopes may do everything its "
          "tenant may, so name the scope (e.g. --scope contexts:read) or "
          "leave --scope out");
    if (strlen(s) > MAX_ARG_BYTES)
      return sb_cli_usage_error("key", "%s",
                                "--scope: longer than " MAX_ARG_TEXT " bytes");
    for (const char *p = s; *p; p++)
      if ((unsigned char)*p <= ' ' || *p == 0x7f)
        return sb_cli_usage_error("key",
                                  "--scope: '%.200s' holds a space or a "
                                  "control character: one scope per --scope",
                                  s);
    /* The scopes are stored as JSON, which holds UTF-8 only: a scope that
     * is not was dropped, and the key made without it (unrestricted, had
     * it been the only one). */
    if (!sb_text_plain(s, strlen(s))) {
      char shown[201];
      snprintf(shown, sizeof shown, "%s", s);
      sb_utf8_scrub(shown);
      return sb_cli_usage_error("key",
                                "--scope: '%s' is not UTF-8 text (each byte "
                                "that is not shows as '?')",
                                shown);
    }
    /* A scope that can grant nothing ("bogus::", "contexts:") made a key
     * refused everything, with no word of why. */
    if (!sb_auth_scope_valid(s))
      return sb_cli_usage_error(
          "key",
          "--scope: '%s' is not a scope: names joined by ':', none empty, "
          "a '*' only at the end (contexts:read, agents:sales, agents:fin*)",
          s);
  }
  int64_t now = (int64_t)sb_wall_ms();
  int64_t expires = a->expires ? parse_expires(a->expires, now) : 0;
  if (a->expires && expires >= 0 && expires <= now)
    sb_cli_eprintf("switchboard key: warning: --expires %s is in the past: the "
                   "server will refuse this key\n",
                   a->expires);
  return EXIT_OK;
}

static int key_create(keys_run *r, const keys_args *a) {
  char key[SB_AUTH_KEY_LEN + 1], id[SB_AUTH_KEY_ID_LEN + 1],
      hash[SB_AUTH_HASH_HEX_LEN + 1];
  int64_t now = (int64_t)sb_wall_ms();
  int64_t expires = 0;
  if (a->expires && (expires = parse_expires(a->expires, now)) < 0)
    return sb_cli_usage_error("key", "--expires: expected a duration (90s, "
                              "30m, 12h, 7d) or an RFC 3339 time, got '%s'",
                              a->expires);
  json_t *scopes = json_array();
  int whole = scopes != NULL;
  for (int i = 0; whole && i < a->nscopes; i++) {
    int again = 0; /* a scope given twice is stored once */
    for (int k = 0; k < i && !again; k++)
      again = strcmp(a->scopes[k], a->scopes[i]) == 0;
    if (!again)
      whole = json_array_append_new(scopes, json_string(a->scopes[i])) == 0;
  }
  /* A scope left out would widen the key: none is made then. */
  char *scopes_text = whole ? sb_json_dumps(scopes, JSON_COMPACT) : NULL;
  json_decref(scopes);
  if (!scopes_text || sb_auth_key_generate(key, id, hash) != 0) {
    sb_free(scopes_text);
    sb_cli_eprintf("switchboard key: cannot make a key\n");
    return EXIT_RUNTIME;
  }
  sb_store_key_args ka = {.id = id,
                          .tenant = a->tenant,
                          .hash = hash,
                          .scopes = scopes_text,
                          .created_ms = now,
                          .expires_ms = expires};
  int rc = run_wait(r, sb_store_key_create(r->store, &ka, on_done, r));
  sb_free(scopes_text);
  if (rc != 0) {
    sodium_memzero(key, sizeof key);
    sb_cli_eprintf("switchboard key: %s\n", r->err.msg);
    return EXIT_RUNTIME;
  }
  /* The key alone on stdout (for scripts); what it is on stderr. */
  printf("%s\n", key);
  fflush(stdout);
  sodium_memzero(key, sizeof key);
  sb_cli_eprintf(
      "key %s of tenant %s created; it is shown only this once: keep "
      "it now\n",
      id, a->tenant);
  audit(r, a->tenant, "key.create", id);
  return EXIT_OK;
}

int sb_cli_key(int argc, char **argv) {
  keys_args a = {0};
  int rc = parse("key", argc, argv, &a);
  if (rc != 0) return rc;
  if (a.help || a.npositional == 0) {
    fputs(sb_cli_key_help, a.help ? stdout : stderr);
    return a.help ? EXIT_OK : EXIT_USAGE;
  }
  const char *verb = a.positional[0];
  int create = strcmp(verb, "create") == 0, list = strcmp(verb, "list") == 0,
      revoke = strcmp(verb, "revoke") == 0;
  if (!create && !list && !revoke)
    return sb_cli_usage_error("key", "unknown subcommand '%s'", verb);
  if (revoke && (a.npositional != 2 || !sb_auth_key_id_valid(a.positional[1])))
    return sb_cli_usage_error("key", "%s",
                              "revoke needs a KEYID (12 hex digits, as key "
                              "list shows)");
  if (!revoke && a.npositional != 1)
    return sb_cli_usage_error("key", "unexpected argument '%s'",
                              a.positional[1]);
  if (create && !a.tenant)
    return sb_cli_usage_error("key", "%s", "create needs --tenant T");
  if (a.tenant && !sb_config_tenant_id_valid(a.tenant))
    return sb_cli_usage_error("key", "--tenant: not a tenant id: '%s'",
                              a.tenant);
  if (a.name || (!create && (a.expires || a.nscopes)) || (revoke && a.tenant))
    return sb_cli_usage_error("key", "%s",
                              "an option that does not apply to this "
                              "subcommand");
  if (create && (rc = check_key_create(&a)) != EXIT_OK) return rc;
  sb_config cfg;
  if ((rc = load_config("key", &a, &cfg)) != EXIT_OK) goto out;
  keys_run r;
  sb_error err = {0};
  if (run_open(&r, &cfg, !create, &err) != 0) {
    sb_cli_eprintf("switchboard key: %s\n", err.msg);
    rc = EXIT_RUNTIME;
    goto out;
  }
  if (create) {
    rc = key_create(&r, &a);
  } else if (list) {
    rc = run_wait(&r, sb_store_key_list(r.store, a.tenant, on_done, &r));
    if (rc == 0) print_list(r.out);
  } else {
    char owner[80];
    if (key_tenant(&r, a.positional[1], owner, sizeof owner) != 0)
      snprintf(owner, sizeof owner, "%s", cfg.default_tenant);
    rc = run_wait(&r, sb_store_key_revoke(r.store, a.positional[1],
                                          (int64_t)sb_wall_ms(), on_done, &r));
    if (rc == 0)
      sb_cli_eprintf("key %s %s\n", a.positional[1],
                     r.count ? "revoked" : "was already revoked");
    if (rc == 0 && r.count) audit(&r, owner, "key.revoke", a.positional[1]);
  }
  if (!create) {
    if (rc != 0) sb_cli_eprintf("switchboard key: %s\n", r.err.msg);
    rc = rc == 0 ? EXIT_OK : EXIT_RUNTIME;
  }
  run_close(&r);
out:
  sb_config_free(&cfg);
  return rc;
}
