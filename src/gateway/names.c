/* names.c: the public names of agents' tools on the main endpoint.
 *
 * An agent's tool is served as agentId__tool. Many LLM hosts refuse tool
 * names longer than 64 characters or with characters outside
 * A-Za-z0-9_-., so a name that would break either rule is shortened: its
 * characters outside that set become '_', it is cut to leave room, and
 * "_" plus 10 hex digits of a BLAKE2b hash of the agent id and tool name
 * (libsodium's crypto_generichash) is appended. The hash depends on
 * nothing else, so a name stays the same across restarts and whatever
 * other agents are configured.
 *
 * Collision-free: names that need no change are claimed first, then the
 * shortened ones in listing order; a shortened name already taken (a
 * 40-bit hash collision, or a natural name that looks like it) hashes
 * again with a counter ("#1", "#2"...) until it is free. Two agents whose
 * plain names coincide (agent a__b's tool c, agent a's tool b__c) are told
 * apart the same way: the later one is shortened.
 *
 * pool.c keeps the mapping (rebuilt when a tool list changes) for
 * tools/list and for resolving a call's name; `agents show` prints it.
 */
#include "gateway/gateway_internal.h"

#define HASH_BYTES 5 /* 10 hex digits */

static int name_char_ok(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/* id__tool as it is, if it passes both rules (new string; NULL if not). */
static char *natural_name(const char *id, const char *tool, size_t max_len) {
  char *full = sb_asprintf("%s" SEP "%s", id, tool);
  if (!full) return NULL;
  size_t n = strlen(full);
  int ok = n > 0 && n <= max_len;
  for (size_t i = 0; ok && i < n; i++) ok = name_char_ok((unsigned char)full[i]);
  if (ok) return full;
  sb_free(full);
  return NULL;
}

/* The shortened name, attempt k (0 first): new string, NULL on ENOMEM. */
static char *short_name(const char *id, const char *tool, size_t max_len,
                        unsigned k) {
  /* The hash of "id\0tool" (and "\0#k" past the first attempt): the pair,
   * not the joined text, so a__b + c and a + b__c differ. */
  crypto_generichash_state st;
  unsigned char digest[HASH_BYTES];
  crypto_generichash_init(&st, NULL, 0, sizeof digest);
  crypto_generichash_update(&st, (const unsigned char *)id, strlen(id) + 1);
  crypto_generichash_update(&st, (const unsigned char *)tool, strlen(tool));
  if (k) {
    char extra[16];
    int n = snprintf(extra, sizeof extra, "%c#%u", 0, k);
    crypto_generichash_update(&st, (const unsigned char *)extra, (size_t)n);
  }
  crypto_generichash_final(&st, digest, sizeof digest);
  char hex[2 * HASH_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);

  char *full = sb_asprintf("%s" SEP "%s", id, tool);
  if (!full) return NULL;
  size_t keep = strlen(full);
  size_t room = max_len - 1 - (sizeof hex - 1); /* max_len >= the minimum */
  if (keep > room) keep = room;
  char *out = sb_malloc(keep + 1 + sizeof hex);
  if (out) {
    for (size_t i = 0; i < keep; i++)
      out[i] = name_char_ok((unsigned char)full[i]) ? full[i] : '_';
    out[keep] = '_';
    memcpy(out + keep + 1, hex, sizeof hex);
  }
  sb_free(full);
  return out;
}

json_t *sb_gateway_tool_names(const json_t *tools, size_t max_len) {
  if (max_len == 0) max_len = SB_GATEWAY_TOOL_NAME_MAX;
  if (max_len < SB_GATEWAY_TOOL_NAME_MIN) max_len = SB_GATEWAY_TOOL_NAME_MIN;
  json_t *out = json_object();
  size_t n = json_array_size(tools);
  unsigned char *shorten = sb_calloc(n ? n : 1, 1);
  if (!out || !shorten) goto fail;
  /* Names that need no change first: they keep them. */
  for (size_t i = 0; i < n; i++) {
    json_t *pair = json_array_get(tools, i);
    const char *id = json_string_value(json_array_get(pair, 0));
    const char *tool = json_string_value(json_array_get(pair, 1));
    if (!id || !tool) continue;
    char *name = natural_name(id, tool, max_len);
    if (name && !json_object_get(out, name)) {
      if (json_object_set_new(out, name,
                              json_pack("{ssss}", "agent", id, "tool", tool))) {
        sb_free(name);
        goto fail;
      }
    } else {
      shorten[i] = 1;
    }
    sb_free(name);
  }
  for (size_t i = 0; i < n; i++) {
    if (!shorten[i]) continue;
    json_t *pair = json_array_get(tools, i);
    const char *id = json_string_value(json_array_get(pair, 0));
    const char *tool = json_string_value(json_array_get(pair, 1));
    for (unsigned k = 0;; k++) {
      char *name = short_name(id, tool, max_len, k);
      if (!name) goto fail;
      int taken = json_object_get(out, name) != NULL;
      int rc = taken ? 0
                     : json_object_set_new(out, name, json_pack("{ssss}", "agent",
                                                                id, "tool", tool));
      sb_free(name);
      if (rc) goto fail;
      if (!taken) break;
    }
  }
  sb_free(shorten);
  return out;
fail:
  sb_free(shorten);
  json_decref(out);
  return NULL;
}
