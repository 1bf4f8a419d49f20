/* auth: API keys — their format, their hash, and the keyring a server
 * authenticates them with.
 *
 * A key is "sb_" + a 12-hex-digit public id + "_" + 43 characters of
 * base64url (32 random bytes from libsodium): 59 characters. The id finds
 * the key's row; the secret is shown once, when the key is made, and never
 * stored: the store keeps a keyed BLAKE2b-256 hash of the whole key (the
 * key of the hash is a fixed domain-separation constant, not a secret; the
 * 256 random bits of the key are what a guess must find, so a slow
 * password hash would buy nothing and cost every request). Hashes are
 * compared with sodium_memcmp (constant time).
 *
 * The keyring: HTTP authentication is synchronous (it runs on the loop
 * when a request's headers are in), and the loop never waits on disk, so a
 * server keeps every unrevoked key's hash in memory. A timer reads the
 * store's key epoch every refresh_ms (an asynchronous read of one row) and
 * reloads the keys when it moved, whichever process changed them: a key
 * created or revoked with the CLI is accepted or refused within
 * refresh_ms plus one read. Expiry is checked on every request against the
 * wall clock, so an expired key is refused at once.
 */
#ifndef SB_AUTH_H
#define SB_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <jansson.h>

#include "core/core.h"
#include "store/store.h"

#define SB_AUTH_KEY_ID_LEN 12   /* hex digits of a key's public id */
#define SB_AUTH_KEY_LEN 59      /* "sb_" id "_" secret */
#define SB_AUTH_HASH_HEX_LEN 64 /* hex of the 32-byte hash */

/* A new key: key_out gets the whole key (shown once), id_out its public
 * id, hash_out the hex hash to store. 0, or SB_EIO if libsodium failed to
 * initialise. */
int sb_auth_key_generate(char key_out[SB_AUTH_KEY_LEN + 1],
                         char id_out[SB_AUTH_KEY_ID_LEN + 1],
                         char hash_out[SB_AUTH_HASH_HEX_LEN + 1]);

/* 1 if token has the shape of a key (its id into id_out), else 0. */
int sb_auth_key_parse(const char *token, char id_out[SB_AUTH_KEY_ID_LEN + 1]);

/* The hex hash of a key, as stored. */
void sb_auth_key_hash_hex(const char *key,
                          char hex_out[SB_AUTH_HASH_HEX_LEN + 1]);

/* 1 if hex is a valid key id (what `key revoke` accepts). */
int sb_auth_key_id_valid(const char *id);

typedef struct sb_auth_keyring sb_auth_keyring;

typedef struct sb_auth_keyring_options {
  sb_store *store; /* borrowed; must outlive the keyring's stop */
  uv_loop_t *loop;
  int refresh_ms; /* default 250 */
  /* Called once, when the first load has come back (loaded or failed;
   * never after sb_auth_keyring_stop): until then every key is refused,
   * so a server holds its callers until this. NULL: not told. */
  void (*on_first_load)(void *ud);
  void *ud;
} sb_auth_keyring_options;

/* Start the keyring: the first load is submitted at once (keys are
 * accepted once it has completed, within milliseconds of the start). */
sb_auth_keyring *sb_auth_keyring_start(const sb_auth_keyring_options *o,
                                       sb_error *err);

/* The tenant of a key (a string the keyring owns until it is freed, so it
 * may be kept as long as the server lives), or NULL: not a key, unknown,
 * revoked, expired at now_ms, or the keys are not loaded yet. *scopes_out
 * (optional) gets the key's scopes as a JSON array text, borrowed likewise
 * until the next reload. */
const char *sb_auth_keyring_tenant(sb_auth_keyring *kr, const char *token,
                                   int64_t now_ms, const char **scopes_out);

/* The principal of a key (a new reference: kind API key, the key's tenant,
 * its id as subject, its scopes), or NULL as sb_auth_keyring_tenant. */
sb_principal *sb_auth_keyring_principal(sb_auth_keyring *kr, const char *token,
                                        int64_t now_ms);

/* Keys held (unrevoked, expired included) and loads completed: tests. */
size_t sb_auth_keyring_size(const sb_auth_keyring *kr);
uint64_t sb_auth_keyring_loads(const sb_auth_keyring *kr);

/* Stop polling (before the store closes; a load in flight still completes
 * into the keyring). */
void sb_auth_keyring_stop(sb_auth_keyring *kr);
/* Free it, after the store has closed; its timer closes through the loop. */
void sb_auth_keyring_free(sb_auth_keyring *kr);

/* ---- OAuth 2.1 access tokens (jwt.c) -------------------------------------
 * switchboard as a resource server: a bearer JWT is accepted when its
 * signature verifies with a key of the configured JWKS (RS256 with an RSA
 * key, ES256 with a P-256 key; `alg: none`, HS*, any other algorithm, an
 * unknown `kid` or an algorithm the key was not made for are refused),
 * its `iss` is the issuer, its `aud` (a string or an array) names this
 * server's resource URI, and `exp` and `nbf` hold at now, give or take
 * the leeway. Tenant and scopes come from claims. CPU only: no network,
 * so it runs on the loop. */
typedef struct sb_auth_jwt sb_auth_jwt;

typedef struct sb_auth_jwt_options {
  const char *issuer;       /* `iss` must equal it */
  const char *audience;     /* `aud` must contain it (the resource URI) */
  int leeway_s;             /* clock skew allowed on exp and nbf */
  const char *tenant_claim; /* NULL: "tenant" */
  /* A space-separated string or an array of strings. NULL: "scope", and
   * "scp" when "scope" is absent. */
  const char *scope_claim;
} sb_auth_jwt_options;

/* How a token was judged; SB_AUTH_JWT_OK or the reason it was refused. */
typedef enum sb_auth_jwt_outcome {
  SB_AUTH_JWT_OK = 0,
  SB_AUTH_JWT_MALFORMED,     /* not a compact JWS with JSON claims */
  SB_AUTH_JWT_BAD_ALG,       /* none, HS*, or any other than RS256/ES256 */
  SB_AUTH_JWT_UNKNOWN_KEY,   /* no key with its kid (or no kid, many keys) */
  SB_AUTH_JWT_KEY_MISMATCH,  /* the key is not of the token's algorithm */
  SB_AUTH_JWT_BAD_SIGNATURE, /* the signature does not verify */
  SB_AUTH_JWT_EXPIRED,       /* exp (plus leeway) has passed; or no exp */
  SB_AUTH_JWT_NOT_YET_VALID, /* nbf (minus leeway) is still ahead */
  SB_AUTH_JWT_WRONG_ISSUER,
  SB_AUTH_JWT_WRONG_AUDIENCE,
  SB_AUTH_JWT_BAD_TENANT, /* no tenant claim, or not a tenant id */
  SB_AUTH_JWT_NO_MEMORY,
} sb_auth_jwt_outcome;

/* For error_description: a static string ("the token has expired"). */
const char *sb_auth_jwt_outcome_text(sb_auth_jwt_outcome o);

/* A verifier with no keys yet (strings copied). NULL with err set. */
sb_auth_jwt *sb_auth_jwt_new(const sb_auth_jwt_options *o, sb_error *err);
/* Replace its keys with a JWKS document ({"keys":[...]}); keys of other
 * types or uses are skipped. On an error the old keys stay. */
int sb_auth_jwt_set_jwks(sb_auth_jwt *j, const char *json, size_t len,
                         sb_error *err);
/* The same from a file (read at once: at a start). */
int sb_auth_jwt_load_jwks_file(sb_auth_jwt *j, const char *path, sb_error *err);
/* A reload's two steps: a JWKS parsed into a key set, touching no
 * verifier (any thread, e.g. a worker, so the loop never waits on disk),
 * then installed in the verifier on its own thread. Parsing follows
 * sb_auth_jwt_set_jwks's rules; on error *out stays NULL and the message
 * names the file (the key, the line). */
typedef struct sb_auth_jwks sb_auth_jwks;
int sb_auth_jwks_parse(const char *json, size_t len, sb_auth_jwks **out,
                       sb_error *err);
int sb_auth_jwks_load_file(const char *path, sb_auth_jwks **out,
                           sb_error *err);
/* Signing keys in the set. */
size_t sb_auth_jwks_len(const sb_auth_jwks *set);
void sb_auth_jwks_free(sb_auth_jwks *set);
/* Replace j's keys with set's (set is taken). */
void sb_auth_jwt_install_jwks(sb_auth_jwt *j, sb_auth_jwks *set);
/* Signing keys held. */
size_t sb_auth_jwt_keys(const sb_auth_jwt *j);
/* Judge `token` at now_s (Unix seconds). On SB_AUTH_JWT_OK *out is a new
 * principal (kind JWT, the claim's tenant, `sub`, the scopes); the tenant
 * string lives as long as the verifier. */
sb_auth_jwt_outcome sb_auth_jwt_verify(sb_auth_jwt *j, const char *token,
                                       int64_t now_s, sb_principal **out);
void sb_auth_jwt_free(sb_auth_jwt *j);

/* ---- scopes and permissions (scope.c) -------------------------------------
 * A permission names what an operation touches: "tools:<name>",
 * "agents:<id>", "workflows:<name>", "contexts:read", "contexts:write",
 * "contexts:read:<JSON pointer>", "runs:read:<workflow>",
 * "runs:write:<workflow>", "resources:<uri>", "prompts:<name>". A scope grants
 * a permission when it is "admin", equal to it, a prefix of it ending at ':' or
 * '/' ("agents" grants "agents:sales", "contexts:read:/user" grants
 * "contexts:read:/user/name"), ends in '*' and the permission starts with
 * what precedes it ("tools:sales__*"), or is "tools:call", which grants
 * every "tools:" permission. Pure functions. */
int sb_auth_scope_grants(const char *scope, const char *permission);
/* 1 when scope is well formed: names joined by ':', none empty, a '*'
 * only at its end (not alone). Scopes are open: a context's
 * metadata.permissions may name any. What a key is made with; a token's
 * scopes are its issuer's and are not checked. */
int sb_auth_scope_valid(const char *scope);
/* 1 if p holds permission: an unrestricted principal (or NULL: no
 * authentication) holds every one. */
int sb_auth_permits(const sb_principal *p, const char *permission);
/* 1 if p holds permission or some narrower form of it, a scope
 * "<permission>:<object>" ("runs:read:quote" for "runs:read"): whether it
 * may do that operation to anything at all, asked before a lookup. */
int sb_auth_permits_some(const sb_principal *p, const char *permission);
/* 1 if p holds every permission of `needed` (a JSON array of strings,
 * e.g. a context's metadata.permissions; NULL or empty: none needed);
 * else 0 and *missing (borrowed from needed) names the first it lacks.
 * A member that is not a string is a permission nobody holds but admin. */
int sb_auth_permits_all(const sb_principal *p, const json_t *needed,
                        const char **missing);
/* Which parts of a context p may read: SB_AUTH_READ_ALL, SB_AUTH_READ_NONE,
 * or SB_AUTH_READ_SOME with *paths (a new JSON array of the JSON pointers
 * of its "contexts:read:<pointer>" scopes). */
typedef enum sb_auth_read {
  SB_AUTH_READ_ALL = 0,
  SB_AUTH_READ_SOME,
  SB_AUTH_READ_NONE,
} sb_auth_read;
sb_auth_read sb_auth_read_paths(const sb_principal *p, json_t **paths);
/* Scopes from a claim or a key's list: a space-separated string or an
 * array of strings. *out (NULL-terminated, caller frees each and the
 * array with sb_free) and *n. SB_EINVAL for another type, SB_ENOMEM. */
int sb_auth_scopes_parse(const json_t *v, char ***out, size_t *n);
void sb_auth_scopes_free(char **v, size_t n);

#endif
