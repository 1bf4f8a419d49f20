/* keyring.c: API keys — generating, parsing and hashing them, and the
 * in-memory keyring a server checks bearer tokens against (see auth.h for
 * why it is a cache refreshed by polling the store's key epoch). */
#include <sodium.h>
#include <string.h>

#include "auth/auth.h"

#define MODULE "auth"
#define HASH_LEN 32
#define DEFAULT_REFRESH_MS 250

/* Domain separation for the hash (crypto_generichash keys are 16..64
 * bytes); public on purpose: the secret is the key's 256 random bits. */
static const unsigned char hash_domain[] = "switchboard api key hash v1";

static void key_hash(const char *key, unsigned char out[HASH_LEN]) {
  crypto_generichash(out, HASH_LEN, (const unsigned char *)key, strlen(key),
                     hash_domain, sizeof hash_domain - 1);
}

void sb_auth_key_hash_hex(const char *key,
                          char hex_out[SB_AUTH_HASH_HEX_LEN + 1]) {
  unsigned char h[HASH_LEN];
  key_hash(key, h);
  sodium_bin2hex(hex_out, SB_AUTH_HASH_HEX_LEN + 1, h, HASH_LEN);
  sodium_memzero(h, sizeof h);
}

int sb_auth_key_id_valid(const char *id) {
  if (!id || strlen(id) != SB_AUTH_KEY_ID_LEN) return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
  return 1;
}

int sb_auth_key_generate(char key_out[SB_AUTH_KEY_LEN + 1],
                         char id_out[SB_AUTH_KEY_ID_LEN + 1],
                         char hash_out[SB_AUTH_HASH_HEX_LEN + 1]) {
  if (sodium_init() < 0) return SB_EIO;
  unsigned char idb[SB_AUTH_KEY_ID_LEN / 2], secret[32];
  char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  randombytes_buf(idb, sizeof idb);
  randombytes_buf(secret, sizeof secret);
  sodium_bin2hex(id_out, SB_AUTH_KEY_ID_LEN + 1, idb, sizeof idb);
  sodium_bin2base64(b64, sizeof b64, secret, sizeof secret,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  memcpy(key_out, "sb_", 3);
  memcpy(key_out + 3, id_out, SB_AUTH_KEY_ID_LEN);
  key_out[3 + SB_AUTH_KEY_ID_LEN] = '_';
  memcpy(key_out + 4 + SB_AUTH_KEY_ID_LEN, b64, 43);
  key_out[SB_AUTH_KEY_LEN] = '\0';
  sodium_memzero(secret, sizeof secret);
  sodium_memzero(b64, sizeof b64);
  sb_auth_key_hash_hex(key_out, hash_out);
  return 0;
}

int sb_auth_key_parse(const char *token, char id_out[SB_AUTH_KEY_ID_LEN + 1]) {
  if (!token || strlen(token) != SB_AUTH_KEY_LEN ||
      strncmp(token, "sb_", 3) != 0 || token[3 + SB_AUTH_KEY_ID_LEN] != '_')
    return 0;
  memcpy(id_out, token + 3, SB_AUTH_KEY_ID_LEN);
  id_out[SB_AUTH_KEY_ID_LEN] = '\0';
  return sb_auth_key_id_valid(id_out);
}

/* ---- the keyring --------------------------------------------------------- */

typedef struct kr_key {
  char id[SB_AUTH_KEY_ID_LEN + 1];
  unsigned char hash[HASH_LEN];
  const char *tenant; /* interned */
  char *scopes;
  int64_t expires_ms;
  sb_principal *principal; /* handed out to requests, by reference */
} kr_key;

struct sb_auth_keyring {
  sb_store *store;
  uv_timer_t timer;
  int timer_started;
  int refresh_ms;
  int inflight; /* a load submitted, not called back */
  int stopped;
  int64_t epoch; /* -1: never loaded */
  kr_key *keys;
  size_t nkeys;
  /* Tenant names handed out: kept until the keyring is freed, since the
   * HTTP server keeps the pointers for the requests and sessions it has. */
  char **tenants;
  size_t ntenants;
  uint64_t loads;
  int warned; /* a failing load is reported once, not every tick */
  int first_back; /* the first load came back: on_first_load was called */
  void (*on_first_load)(void *ud);
  void *ud;
};

static const char *intern(sb_auth_keyring *kr, const char *tenant) {
  for (size_t i = 0; i < kr->ntenants; i++)
    if (strcmp(kr->tenants[i], tenant) == 0) return kr->tenants[i];
  char **grown = sb_realloc(kr->tenants, (kr->ntenants + 1) * sizeof *grown);
  if (!grown) return NULL;
  kr->tenants = grown;
  if (!(grown[kr->ntenants] = sb_strdup(tenant))) return NULL;
  return grown[kr->ntenants++];
}

static void keys_clear(kr_key *keys, size_t n) {
  for (size_t i = 0; i < n; i++) {
    sodium_memzero(keys[i].hash, HASH_LEN);
    sb_free(keys[i].scopes);
    sb_principal_unref(keys[i].principal);
  }
  sb_free(keys);
}

/* A key's principal: its scopes (a JSON array text in the store) are what
 * it may do; none at all is everything its tenant may. */
static sb_principal *key_principal(const kr_key *k) {
  if (!k->tenant || !k->scopes) return NULL;
  json_t *list = json_loads(k->scopes, 0, NULL);
  char **scopes = NULL;
  size_t n = 0;
  sb_principal *p = NULL;
  /* Unreadable scopes grant nothing rather than everything. */
  const char *none = "";
  if (!list || sb_auth_scopes_parse(list, &scopes, &n) != 0)
    p = sb_principal_new(SB_PRINCIPAL_API_KEY, k->tenant, k->id, &none, 1);
  else
    p = sb_principal_new(SB_PRINCIPAL_API_KEY, k->tenant, k->id,
                         (const char *const *)scopes, n);
  sb_auth_scopes_free(scopes, n);
  json_decref(list);
  if (p) p->expires_ms = k->expires_ms;
  return p;
}

/* A key the reload keeps as it was keeps its principal: streams opened
 * with it hold that one, and must see it marked if the key goes later. */
static sb_principal *kept_principal(const sb_auth_keyring *kr,
                                    const kr_key *k) {
  for (size_t i = 0; i < kr->nkeys; i++) {
    const kr_key *o = &kr->keys[i];
    if (strcmp(o->id, k->id) == 0 && o->tenant == k->tenant &&
        o->expires_ms == k->expires_ms && strcmp(o->scopes, k->scopes) == 0 &&
        sodium_memcmp(o->hash, k->hash, HASH_LEN) == 0)
      return sb_principal_ref(o->principal);
  }
  return NULL;
}

/* The keys of old that are not in new_keys were revoked: what was opened
 * with them ends (sb_principal_live). */
static void mark_revoked(const kr_key *old, size_t nold, const kr_key *new_keys,
                         size_t nnew) {
  for (size_t i = 0; i < nold; i++) {
    int kept = 0;
    for (size_t j = 0; j < nnew && !kept; j++)
      kept = strcmp(old[i].id, new_keys[j].id) == 0;
    if (!kept && old[i].principal) old[i].principal->revoked = 1;
  }
}

static void install(sb_auth_keyring *kr, sb_store_result *res);

static void on_loaded(void *ud, sb_store_result *res) {
  sb_auth_keyring *kr = ud;
  kr->inflight = 0;
  install(kr, res);
  if (!kr->first_back && !kr->stopped) {
    kr->first_back = 1;
    if (kr->on_first_load) kr->on_first_load(kr->ud);
  }
}

static void install(sb_auth_keyring *kr, sb_store_result *res) {
  if (res->rc != 0) {
    if (!kr->warned)
      SB_WARN(MODULE, "reading API keys: %s (keys not refreshed)",
              res->err.msg);
    kr->warned = 1;
    return;
  }
  kr->warned = 0;
  kr->loads++;
  if (res->version == 0) return; /* the epoch did not move */
  kr_key *keys = res->keys.len ? sb_calloc(res->keys.len, sizeof *keys) : NULL;
  if (res->keys.len && !keys) {
    SB_WARN(MODULE, "out of memory reloading API keys");
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < res->keys.len; i++) {
    const sb_store_key_row *row = &res->keys.items[i];
    kr_key *k = &keys[n];
    size_t hlen = 0;
    if (!sb_auth_key_id_valid(row->id) ||
        sodium_hex2bin(k->hash, HASH_LEN, row->hash, strlen(row->hash), NULL,
                       &hlen, NULL) != 0 ||
        hlen != HASH_LEN)
      continue; /* not a row this code wrote: never matches */
    memcpy(k->id, row->id, sizeof k->id);
    k->tenant = intern(kr, row->tenant);
    k->scopes = sb_strdup(row->scopes);
    k->expires_ms = row->expires_ms;
    k->principal = kept_principal(kr, k);
    if (!k->principal) k->principal = key_principal(k);
    if (!k->tenant || !k->scopes || !k->principal) {
      SB_WARN(MODULE, "out of memory reloading API keys");
      keys_clear(keys, n + 1);
      return;
    }
    n++;
  }
  mark_revoked(kr->keys, kr->nkeys, keys, n);
  keys_clear(kr->keys, kr->nkeys);
  kr->keys = keys;
  kr->nkeys = n;
  kr->epoch = res->count;
  SB_DEBUG(MODULE, "%zu API key(s) loaded (key epoch %lld)", n,
           (long long)kr->epoch);
}

static void load(sb_auth_keyring *kr) {
  if (kr->inflight || kr->stopped) return;
  /* A busy store skips this round; the next tick tries again. */
  if (sb_store_keys_load(kr->store, kr->epoch, on_loaded, kr) == 0)
    kr->inflight = 1;
}

static void on_tick(uv_timer_t *t) { load(t->data); }

sb_auth_keyring *sb_auth_keyring_start(const sb_auth_keyring_options *o,
                                       sb_error *err) {
  sb_auth_keyring *kr = sb_calloc(1, sizeof *kr);
  if (!kr) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  if (sodium_init() < 0) {
    sb_free(kr);
    sb_error_set(err, SB_EIO, "auth: libsodium failed to initialise");
    return NULL;
  }
  kr->store = o->store;
  kr->on_first_load = o->on_first_load;
  kr->ud = o->ud;
  kr->epoch = -1;
  kr->refresh_ms = o->refresh_ms > 0 ? o->refresh_ms : DEFAULT_REFRESH_MS;
  uv_timer_init(o->loop, &kr->timer);
  kr->timer.data = kr;
  uv_timer_start(&kr->timer, on_tick, (uint64_t)kr->refresh_ms,
                 (uint64_t)kr->refresh_ms);
  uv_unref((uv_handle_t *)&kr->timer); /* never the only reason to run */
  kr->timer_started = 1;
  load(kr);
  return kr;
}

/* The unrevoked, unexpired key `token` is, or NULL. */
static const kr_key *lookup(sb_auth_keyring *kr, const char *token,
                            int64_t now_ms) {
  char id[SB_AUTH_KEY_ID_LEN + 1];
  if (!kr || !sb_auth_key_parse(token, id)) return NULL;
  for (size_t i = 0; i < kr->nkeys; i++) {
    kr_key *k = &kr->keys[i];
    if (strcmp(k->id, id) != 0) continue;
    unsigned char h[HASH_LEN];
    key_hash(token, h);
    int same = sodium_memcmp(h, k->hash, HASH_LEN) == 0;
    sodium_memzero(h, sizeof h);
    if (!same) return NULL;
    if (k->expires_ms && now_ms >= k->expires_ms) return NULL;
    return k;
  }
  return NULL;
}

const char *sb_auth_keyring_tenant(sb_auth_keyring *kr, const char *token,
                                   int64_t now_ms, const char **scopes_out) {
  const kr_key *k = lookup(kr, token, now_ms);
  if (k && scopes_out) *scopes_out = k->scopes;
  return k ? k->tenant : NULL;
}

sb_principal *sb_auth_keyring_principal(sb_auth_keyring *kr, const char *token,
                                        int64_t now_ms) {
  const kr_key *k = lookup(kr, token, now_ms);
  return k ? sb_principal_ref(k->principal) : NULL;
}

size_t sb_auth_keyring_size(const sb_auth_keyring *kr) { return kr->nkeys; }
uint64_t sb_auth_keyring_loads(const sb_auth_keyring *kr) { return kr->loads; }

void sb_auth_keyring_stop(sb_auth_keyring *kr) {
  if (!kr) return;
  kr->stopped = 1;
  if (kr->timer_started) uv_timer_stop(&kr->timer);
}

static void free_on_close(uv_handle_t *h) {
  sb_auth_keyring *kr = h->data;
  keys_clear(kr->keys, kr->nkeys);
  for (size_t i = 0; i < kr->ntenants; i++)
    sb_free(kr->tenants[i]);
  sb_free(kr->tenants);
  sb_free(kr);
}

void sb_auth_keyring_free(sb_auth_keyring *kr) {
  if (!kr) return;
  sb_auth_keyring_stop(kr);
  uv_close((uv_handle_t *)&kr->timer, free_on_close);
}
