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
void sb_auth_key_hash_hex(const char *key, char hex_out[SB_AUTH_HASH_HEX_LEN + 1]);

/* 1 if hex is a valid key id (what `key revoke` accepts). */
int sb_auth_key_id_valid(const char *id);

typedef struct sb_auth_keyring sb_auth_keyring;

typedef struct sb_auth_keyring_options {
  sb_store *store; /* borrowed; must outlive the keyring's stop */
  uv_loop_t *loop;
  int refresh_ms; /* default 250 */
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

/* Keys held (unrevoked, expired included) and loads completed: tests. */
size_t sb_auth_keyring_size(const sb_auth_keyring *kr);
uint64_t sb_auth_keyring_loads(const sb_auth_keyring *kr);

/* Stop polling (before the store closes; a load in flight still completes
 * into the keyring). */
void sb_auth_keyring_stop(sb_auth_keyring *kr);
/* Free it, after the store has closed; its timer closes through the loop. */
void sb_auth_keyring_free(sb_auth_keyring *kr);

#endif
