/* redact.c: the logger's last pass, so that secrets never reach a log
 * line whatever a call site formatted into it.
 *
 * Known shapes are rewritten in place of their value:
 *   - "Bearer <token>" (any case; 8+ characters)   -> Bearer [REDACTED]
 *   - API keys sb_<12 hex>_<secret>                -> sb_<id>_[REDACTED]
 *     (the public id stays: it names the key without being it)
 *   - header lines Authorization:, Proxy-Authorization:, Cookie:,
 *     Set-Cookie:, X-Api-Key: (any case)           -> Name: [REDACTED]
 *   - JSON string members whose name contains password, passwd, token,
 *     secret, api_key, apikey, api-key, authorization or cookie (any case,
 *     plain or backslash-escaped quotes)           -> "token":"[REDACTED]"
 *   - name=value pairs with those names (query strings, env)
 *   - the userinfo of a URL (scheme://user:password@)  -> scheme://[REDACTED]@
 *   - the literal secrets registered with sb_log_add_secret (configured
 *     bearer tokens, the LLM API key), wherever they appear.
 * The pass is linear in the line; lines are short (2 KiB).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"

#define MASK "[REDACTED]"
#define MAX_SECRETS 64
#define MIN_SECRET 8

static char *secrets[MAX_SECRETS];
static size_t nsecrets;
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;

int sb_log_add_secret(const char *s) {
  if (!s || strlen(s) < MIN_SECRET) return SB_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&secrets_lock);
  for (size_t i = 0; i < nsecrets; i++)
    if (strcmp(secrets[i], s) == 0) goto out;
  if (nsecrets == MAX_SECRETS) {
    rc = SB_ETOOBIG;
    goto out;
  }
  /* malloc, not sb_malloc: kept for the process's life, outside the
   * allocator's accounting and its injected failures. */
  char *copy = strdup(s);
  if (!copy) {
    rc = SB_ENOMEM;
    goto out;
  }
  secrets[nsecrets++] = copy;
out:
  pthread_mutex_unlock(&secrets_lock);
  return rc;
}

void sb_log_clear_secrets(void) {
  pthread_mutex_lock(&secrets_lock);
  for (size_t i = 0; i < nsecrets; i++) {
    memset(secrets[i], 0, strlen(secrets[i]));
    free(secrets[i]);
  }
  nsecrets = 0;
  pthread_mutex_unlock(&secrets_lock);
}

typedef struct out_buf {
  char *p;
  size_t cap, len;
} out_buf;

static void put(out_buf *o, const char *s, size_t n) {
  if (o->len >= o->cap) return;
  size_t room = o->cap - 1 - o->len;
  if (n > room) n = room;
  memcpy(o->p + o->len, s, n);
  o->len += n;
  o->p[o->len] = '\0';
}

static int token_char(char c) {
  return isalnum((unsigned char)c) || strchr("-._~+/=", c);
}

static int b64url_char(char c) {
  return isalnum((unsigned char)c) || c == '-' || c == '_';
}

static int prefix_ci(const char *s, const char *p) {
  return strncasecmp(s, p, strlen(p)) == 0;
}

static const char *const secret_words[] = {
    "password", "passwd",  "token",         "secret", "api_key",
    "apikey",   "api-key", "authorization", "cookie"};

/* In a URL's query, names that carry credentials besides those: a signed
 * URL's signature, a plain "key", a session or an auth code. Only there:
 * in a log line's JSON, "key" names far too much that is no secret. */
static const char *const url_secret_words[] = {"key", "sig", "credential",
                                               "auth", "session", "code"};

static int contains_ci(const char *s, size_t n, const char *word) {
  size_t wl = strlen(word);
  for (size_t i = 0; i + wl <= n; i++)
    if (strncasecmp(s + i, word, wl) == 0) return 1;
  return 0;
}

/* 1 if the name [s, s+n) contains one of secret_words. */
static int secret_name(const char *s, size_t n) {
  for (size_t w = 0; w < sizeof secret_words / sizeof *secret_words; w++)
    if (contains_ci(s, n, secret_words[w])) return 1;
  return 0;
}

static int url_secret_name(const char *s, size_t n) {
  if (secret_name(s, n)) return 1;
  for (size_t w = 0; w < sizeof url_secret_words / sizeof *url_secret_words;
       w++)
    if (contains_ci(s, n, url_secret_words[w])) return 1;
  return 0;
}

/* At in[i]: a quote (" or \"). Its length, or 0. */
static size_t quote_at(const char *in, size_t i, size_t len) {
  if (in[i] == '"') return 1;
  if (in[i] == '\\' && i + 1 < len && in[i + 1] == '"') return 2;
  return 0;
}

/* A JSON member "name": "value" with a secret name, starting at in[i]
 * (its opening quote). Emits it masked and returns the length consumed,
 * or 0. */
static size_t json_member(const char *in, size_t i, size_t len, out_buf *o) {
  size_t q = quote_at(in, i, len);
  if (!q) return 0;
  size_t name = i + q, j = name;
  while (j < len && in[j] != '"' && in[j] != '\\' && j - name < 64)
    j++;
  if (j >= len || quote_at(in, j, len) != q || j == name) return 0;
  if (!secret_name(in + name, j - name)) return 0;
  size_t k = j + q;
  while (k < len && in[k] == ' ')
    k++;
  if (k >= len || in[k] != ':') return 0;
  k++;
  while (k < len && in[k] == ' ')
    k++;
  if (k >= len || quote_at(in, k, len) != q) return 0;
  size_t v = k + q;
  /* The value ends at the matching quote; escapes inside are skipped
   * (for an escaped member, its own quotes are \" and inner ones \\\"). */
  size_t e = v;
  while (e < len) {
    if (q == 1 && in[e] == '\\') {
      e += 2;
      continue;
    }
    if (q == 2 && in[e] == '\\' && e + 1 < len && in[e + 1] == '\\') {
      e += 2;
      continue;
    }
    if (quote_at(in, e, len) == q) break;
    e++;
  }
  put(o, in + i, v - i);
  put(o, MASK, sizeof MASK - 1);
  if (e >= len) return len - i;
  put(o, in + e, q);
  return e + q - i;
}

static const char *const header_names[] = {
    "proxy-authorization:", "authorization:", "set-cookie:", "cookie:",
    "x-api-key:"};

/* A header line's value, up to a quote, backslash or end of line. */
static size_t header(const char *in, size_t i, size_t len, out_buf *o) {
  if (i > 0 && (isalnum((unsigned char)in[i - 1]) || in[i - 1] == '-'))
    return 0;
  for (size_t h = 0; h < sizeof header_names / sizeof *header_names; h++) {
    size_t hl = strlen(header_names[h]);
    if (i + hl > len || strncasecmp(in + i, header_names[h], hl) != 0) continue;
    size_t e = i + hl;
    while (e < len && in[e] == ' ')
      e++;
    if (e >= len || in[e] == '"' || in[e] == '\\' || in[e] == '\n') return 0;
    while (e < len && in[e] != '"' && in[e] != '\\' && in[e] != '\r' &&
           in[e] != '\n')
      e++;
    put(o, in + i, hl);
    put(o, " " MASK, sizeof MASK);
    return e - i;
  }
  return 0;
}

/* name=value with a secret name (token=..., api_key=...). */
static size_t assignment(const char *in, size_t i, size_t len, out_buf *o) {
  if (in[i] != '=' || i == 0) return 0;
  size_t s = i;
  while (s > 0 && (isalnum((unsigned char)in[s - 1]) || in[s - 1] == '_' ||
                   in[s - 1] == '-'))
    s--;
  if (s == i || !secret_name(in + s, i - s)) return 0;
  size_t e = i + 1;
  /* ...to a separator, or a ": " that goes on with the message (a URL in
   * "connect to URL: Connection refused"). */
  while (e < len && !isspace((unsigned char)in[e]) && in[e] != '&' &&
         in[e] != '"' && in[e] != ',' && in[e] != ';' && in[e] != '\\' &&
         !(in[e] == ':' && (e + 1 == len || in[e + 1] == ' ')))
    e++;
  if (e == i + 1) return 0;
  put(o, "=" MASK, sizeof MASK);
  return e - i;
}

static size_t bearer(const char *in, size_t i, size_t len, out_buf *o) {
  if (i + 7 > len || !prefix_ci(in + i, "bearer ")) return 0;
  if (i > 0 && isalnum((unsigned char)in[i - 1])) return 0;
  size_t e = i + 7;
  while (e < len && in[e] == ' ')
    e++;
  size_t t = e;
  while (e < len && token_char(in[e]))
    e++;
  /* Credentials are long; "bearer token" in prose is not one. */
  if (e - t < MIN_SECRET) return 0;
  /* A token's "=" only pads its end (RFC 6750 b64token): "name=value" or
   * "name=\"value\"" is a challenge's auth-param, named for people. */
  for (size_t k = t; k < e; k++)
    if (in[k] == '=' && ((k + 1 < e && in[k + 1] != '=') ||
                         (k + 1 == e && e < len && in[e] == '"')))
      return 0;
  put(o, in + i, 7);
  put(o, MASK, sizeof MASK - 1);
  return e - i;
}

/* sb_<12 hex>_<secret>: keep the id. */
static size_t api_key(const char *in, size_t i, size_t len, out_buf *o) {
  if (i + 16 > len || strncmp(in + i, "sb_", 3) != 0) return 0;
  if (i > 0 && b64url_char(in[i - 1])) return 0;
  for (size_t k = 3; k < 15; k++)
    if (!isxdigit((unsigned char)in[i + k])) return 0;
  if (in[i + 15] != '_') return 0;
  size_t e = i + 16;
  while (e < len && b64url_char(in[e]))
    e++;
  if (e - (i + 16) < 8) return 0;
  put(o, in + i, 16);
  put(o, MASK, sizeof MASK - 1);
  return e - i;
}

/* "scheme://user:password@host": the userinfo, whatever it holds (a
 * password, or a token given as the user name), is a credential. */
static size_t userinfo(const char *in, size_t i, size_t len, out_buf *o) {
  if (i + 3 > len || memcmp(in + i, "://", 3) != 0) return 0;
  size_t s = i + 3, e = s;
  while (e < len && !strchr("/?#@ \t\r\n\"'<>\\", in[e]))
    e++;
  if (e == s || e >= len || in[e] != '@') return 0;
  put(o, "://" MASK "@", sizeof MASK + 3);
  return e + 1 - i;
}

char *sb_url_redacted(const char *url, const char *mask) {
  /* A mask for the userinfo, the fragment and each query value. */
  size_t len = strlen(url), ml = strlen(mask), parts = 3;
  for (const char *c = url; *c; c++)
    parts += *c == '&' || *c == ';';
  out_buf o = {sb_malloc(len + ml * parts + 1), len + ml * parts + 1, 0};
  if (!o.p) return NULL;
  o.p[0] = '\0';
  const char *scheme = strstr(url, "://");
  const char *auth = scheme ? scheme + 3 : url;
  const char *host = auth + strcspn(auth, "/?#");
  const char *at = NULL;
  for (const char *c = auth; c < host; c++)
    if (*c == '@') at = c;
  if (scheme && at) {
    put(&o, url, (size_t)(auth - url));
    put(&o, mask, ml);
    put(&o, at, (size_t)(host - at));
  } else {
    put(&o, url, (size_t)(host - url));
  }
  const char *q = strchr(host, '?');
  const char *frag = host + strcspn(host, "#");
  if (!q || q > frag) q = frag;
  put(&o, host, (size_t)(q - host));
  /* The query: each name=value whose name says token, secret... */
  for (const char *p = q; p < frag;) {
    size_t n = 1 + strcspn(p + 1, "&;#");
    if (p + n > frag) n = (size_t)(frag - p);
    const char *eq = memchr(p + 1, '=', n - 1);
    if (eq && url_secret_name(p + 1, (size_t)(eq - p - 1))) {
      put(&o, p, (size_t)(eq + 1 - p));
      put(&o, mask, ml);
    } else {
      put(&o, p, n);
    }
    p += n;
  }
  /* The fragment never reaches the agent; whatever is there (an OAuth
   * implicit grant's #access_token=..., say) is not shown either. */
  if (*frag && frag[1]) {
    put(&o, "#", 1);
    put(&o, mask, ml);
  } else {
    put(&o, frag, strlen(frag));
  }
  return o.p;
}

static size_t known_secret(const char *in, size_t i, size_t len, out_buf *o) {
  for (size_t k = 0; k < nsecrets; k++) {
    size_t n = strlen(secrets[k]);
    if (n <= len - i && memcmp(in + i, secrets[k], n) == 0) {
      put(o, MASK, sizeof MASK - 1);
      return n;
    }
  }
  return 0;
}

size_t sb_log_redact(const char *in, char *out, size_t cap) {
  if (!cap) return 0;
  out_buf o = {out, cap, 0};
  out[0] = '\0';
  size_t len = strlen(in);
  pthread_mutex_lock(&secrets_lock);
  for (size_t i = 0; i < len;) {
    size_t n = known_secret(in, i, len, &o);
    if (!n) n = json_member(in, i, len, &o);
    if (!n) n = bearer(in, i, len, &o);
    if (!n) n = api_key(in, i, len, &o);
    if (!n) n = header(in, i, len, &o);
    if (!n) n = assignment(in, i, len, &o);
    if (!n) n = userinfo(in, i, len, &o);
    if (n) {
      i += n;
      continue;
    }
    put(&o, in + i, 1);
    i++;
  }
  pthread_mutex_unlock(&secrets_lock);
  return o.len;
}
