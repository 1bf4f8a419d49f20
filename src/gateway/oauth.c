/* oauth.c: access tokens for an HTTP agent behind OAuth (transport.oauth),
 * got with the client credentials grant (RFC 6749 4.4) as the MCP
 * authorization spec lays the way to them out:
 *
 *   probe      an unauthenticated POST to the agent, for its 401's
 *              WWW-Authenticate challenge (resource_metadata, scope); only
 *              when no challenge is known and nothing is configured
 *   resource   its Protected Resource Metadata (RFC 9728): the challenge's
 *              resource_metadata, else the well-known URIs (path, root);
 *              the first authorization server it names, its resource and
 *              scopes_supported
 *   server     that server's metadata (RFC 8414, then OpenID Connect
 *              discovery, in the spec's order), whose issuer must be the
 *              one asked for: its token endpoint and auth methods
 *   token      POST grant_type=client_credentials, scope, resource (RFC
 *              8707), the client authenticated by Basic or in the body
 *
 * tokenUrl skips the first three stages, issuer the first two. What was
 * discovered is kept for the next token; the token endpoint is looked up
 * again (at the same issuer) after a token request that could not reach
 * it or was refused as not found.
 * One fetch at a time; every request has a deadline (FETCH_TIMEOUT_MS).
 */
#include <ctype.h>
#include <stdio.h>
#include <strings.h>

#include "gateway/gateway_internal.h"

#define MODULE "agents"
#define FETCH_TIMEOUT_MS 10000
#define MAX_DOC_BYTES (256 * 1024)
#define MAX_TOKEN_BYTES 8192  /* far past any server's; headers stay small */
#define MAX_STEPUP_BYTES 1024 /* what 403s may add to the scope asked */
#define MAX_DENIED_BYTES 4096 /* scopes the server refused, remembered */

typedef enum stage {
  STAGE_IDLE = 0,
  STAGE_PROBE,
  STAGE_RESOURCE,
  STAGE_SERVER,
  STAGE_TOKEN,
} stage;

struct sb_gateway_oauth {
  sb_fetcher *fetcher; /* borrowed */
  sb_agent_def *def;   /* own reference */
  const sb_agent_oauth *cfg;

  /* What discovery found (or the config gave); NULL until then. */
  char *token_url;
  char *issuer;
  char *resource;
  char *prm_scope; /* the metadata's scopes_supported, space-separated */
  sb_agent_oauth_auth auth;

  char *challenge_scope;   /* the scope of the agent's last 401 challenge */
  char *stepup_scope;      /* what its 403 insufficient_scope asked for */
  char *denied_scope;      /* ...of which the server refused (invalid_scope) */
  char *asked_scope;       /* the scope of the last token request, or NULL */
  char *resource_metadata; /* its challenge's resource_metadata */

  char *authorization;              /* "Bearer <token>", or NULL */
  uint64_t obtained_ms, expires_ms; /* sb_now_ms(); expires 0: not said */

  /* The fetch under way. */
  stage stage;
  sb_fetch *req;
  char *url;    /* the request's */
  json_t *urls; /* the URLs of this stage still to try */
  sb_buf tried; /* "URL: why; " for the error if none works */
  sb_gateway_oauth_cb cb;
  void *ud;
};

/* ---- pure helpers ------------------------------------------------------ */

int sb_gateway_oauth_challenge_param(const char *challenge, const char *name,
                                     char **out) {
  *out = NULL;
  if (!challenge) return 0;
  size_t nl = strlen(name);
  const char *s = challenge;
  int bearer = 0; /* the params read belong to a Bearer challenge */
  while (*s) {
    /* An auth-param starts the challenge's parameters (after the scheme)
     * or follows a comma: "Bearer a=1, b=\"x, y\"", and a list may hold
     * several challenges: "DPoP algs=\"ES256\", Bearer scope=\"s\"". */
    while (*s == ' ' || *s == '\t' || *s == ',')
      s++;
    const char *key = s;
    while (*s && *s != '=' && *s != ' ' && *s != '\t' && *s != ',')
      s++;
    size_t klen = (size_t)(s - key);
    while (*s == ' ' || *s == '\t')
      s++;
    if (*s != '=') { /* a scheme name, or a token68 */
      if (klen) bearer = klen == 6 && strncasecmp(key, "Bearer", 6) == 0;
      continue;
    }
    s++;
    while (*s == ' ' || *s == '\t')
      s++;
    sb_buf v = {0};
    if (*s == '"') {
      for (s++; *s && *s != '"'; s++) {
        if (*s == '\\' && s[1]) s++;
        if (sb_buf_append(&v, s, 1) != 0) {
          sb_buf_free(&v);
          return SB_ENOMEM;
        }
      }
      if (*s == '"') s++;
    } else {
      const char *start = s;
      while (*s && *s != ',' && *s != ' ' && *s != '\t')
        s++;
      if (sb_buf_append(&v, start, (size_t)(s - start)) != 0) {
        sb_buf_free(&v);
        return SB_ENOMEM;
      }
    }
    if (bearer && klen == nl && strncasecmp(key, name, nl) == 0) {
      *out = v.data ? v.data : sb_strdup("");
      return *out ? 1 : SB_ENOMEM;
    }
    sb_buf_free(&v);
  }
  return 0;
}

/* The length of url's scheme://authority (0 if it has none). */
static size_t origin_len(const char *url) {
  const char *p = strstr(url, "://");
  if (!p) return 0;
  p += 3;
  return (size_t)(p - url) + strcspn(p, "/?#");
}

/* url's path, without its query and fragment, and without a trailing
 * "/": *path and *len (an empty path is "", 0). */
static void url_path(const char *url, const char **path, size_t *len) {
  const char *p = url + origin_len(url);
  size_t n = strcspn(p, "?#");
  while (n > 0 && p[n - 1] == '/')
    n--;
  *path = p;
  *len = n;
}

/* Append one URL, formatted, to urls; 0, or SB_ENOMEM. */
static int append_url(json_t *urls, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int append_url(json_t *urls, const char *fmt, ...) {
  sb_buf b = {0};
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  int rc = n < 0 || sb_buf_reserve(&b, (size_t)n + 1) != 0 ? SB_ENOMEM : 0;
  if (rc == 0) {
    va_start(ap, fmt);
    vsnprintf(b.data, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (json_array_append_new(urls, json_string(b.data)) != 0) rc = SB_ENOMEM;
  }
  sb_buf_free(&b);
  return rc;
}

/* url's origin's length (*o), its path (see url_path), and a new empty
 * array for the URIs made of them; NULL when out of memory, or when url
 * has no origin (then *o is 0). */
static json_t *urls_of(const char *url, size_t *o, const char **path,
                       size_t *plen) {
  *o = origin_len(url);
  url_path(url, path, plen);
  return *o ? json_array() : NULL;
}

json_t *sb_gateway_oauth_resource_metadata_urls(const char *url) {
  size_t o, plen;
  const char *path;
  json_t *urls = urls_of(url, &o, &path, &plen);
  if (!urls) return o ? NULL : json_array();
  static const char wk[] = "/.well-known/oauth-protected-resource";
  if ((plen &&
       append_url(urls, "%.*s%s%.*s", (int)o, url, wk, (int)plen, path)) ||
      append_url(urls, "%.*s%s", (int)o, url, wk)) {
    json_decref(urls);
    return NULL;
  }
  return urls;
}

json_t *sb_gateway_oauth_server_metadata_urls(const char *issuer) {
  size_t o, plen;
  const char *path;
  json_t *urls = urls_of(issuer, &o, &path, &plen);
  if (!urls) return o ? NULL : json_array();
  static const char oauth[] = "/.well-known/oauth-authorization-server",
                    oidc[] = "/.well-known/openid-configuration";
  /* RFC 8414 and OpenID Connect with the issuer's path after the
   * well-known part; then OpenID Connect's own, the path first. */
  int p = (int)plen;
  if (append_url(urls, "%.*s%s%.*s", (int)o, issuer, oauth, p, path) ||
      append_url(urls, "%.*s%s%.*s", (int)o, issuer, oidc, p, path) ||
      (plen && append_url(urls, "%.*s%.*s%s", (int)o, issuer, p, path, oidc))) {
    json_decref(urls);
    return NULL;
  }
  return urls;
}

int sb_gateway_oauth_resource_covers(const char *resource, const char *url) {
  size_t ro = origin_len(resource), uo = origin_len(url);
  if (!ro || ro != uo || strncasecmp(resource, url, ro) != 0) return 0;
  const char *rp, *up;
  size_t rl, ul;
  url_path(resource, &rp, &rl);
  url_path(url, &up, &ul);
  /* The resource's path is the URL's, or a whole-segment prefix of it. */
  return rl <= ul && memcmp(rp, up, rl) == 0 && (rl == ul || up[rl] == '/');
}

/* x-www-form-urlencoded: the unreserved characters as they are, every
 * other byte %HH. Appended to b; 0 or SB_ENOMEM. */
static int form_escape(sb_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    char enc[3] = {'%', hex[*c >> 4], hex[*c & 15]};
    int plain = isalnum(*c) || *c == '-' || *c == '.' || *c == '_' || *c == '~';
    if (sb_buf_append(b, plain ? (const char *)c : enc, plain ? 1 : 3) != 0)
      return SB_ENOMEM;
  }
  return 0;
}

static int form_field(sb_buf *b, const char *name, const char *value) {
  if (!value) return 0;
  if ((b->len && sb_buf_append(b, "&", 1) != 0) ||
      sb_buf_append(b, name, strlen(name)) != 0 ||
      sb_buf_append(b, "=", 1) != 0)
    return SB_ENOMEM;
  return form_escape(b, value);
}

/* Whether the space-separated list holds the n bytes at item. */
static int scope_has(const char *list, const char *item, size_t n) {
  for (const char *t = list; t && *t;) {
    while (*t == ' ')
      t++;
    size_t m = strcspn(t, " ");
    if (m && m == n && memcmp(item, t, n) == 0) return 1;
    t += m;
  }
  return 0;
}

/* Whether b names a scope that neither a nor c holds. */
static int scope_adds(const char *a, const char *b, const char *c) {
  for (const char *s = b; s && *s;) {
    while (*s == ' ')
      s++;
    size_t n = strcspn(s, " ");
    if (n && !scope_has(a, s, n) && !scope_has(c, s, n)) return 1;
    s += n;
  }
  return 0;
}

/* The union of two space-separated scope lists, a's order first; NULL
 * when both are NULL (or out of memory). */
static char *scope_union(const char *a, const char *b) {
  if (!a || !b) return sb_strdup(a ? a : b);
  sb_buf out = {0};
  if (sb_buf_append(&out, a, strlen(a)) != 0) return NULL;
  for (const char *s = b; *s;) {
    while (*s == ' ')
      s++;
    size_t n = strcspn(s, " ");
    if (!n) break;
    if (!scope_has(a, s, n) &&
        (sb_buf_append(&out, " ", 1) || sb_buf_append(&out, s, n))) {
      sb_buf_free(&out);
      return NULL;
    }
    s += n;
  }
  if (sb_buf_append(&out, "", 1) != 0) { /* the NUL, for an empty a */
    sb_buf_free(&out);
    return NULL;
  }
  return out.data;
}

/* ---- the fetch ---------------------------------------------------------- */

static void set_str(char **slot, const char *v) {
  char *copy = v ? sb_strdup(v) : NULL;
  sb_free(*slot);
  *slot = copy;
}

sb_gateway_oauth *sb_gateway_oauth_new(sb_fetcher *f, sb_agent_def *def) {
  if (!f || !def || !def->transport.oauth.client_id) return NULL;
  sb_gateway_oauth *o = sb_calloc(1, sizeof *o);
  if (!o) return NULL;
  o->fetcher = f;
  o->def = sb_agent_def_ref(def);
  o->cfg = &def->transport.oauth;
  return o;
}

const char *sb_gateway_oauth_authorization(const sb_gateway_oauth *o) {
  return o ? o->authorization : NULL;
}

uint64_t sb_gateway_oauth_obtained_ms(const sb_gateway_oauth *o) {
  return o ? o->obtained_ms : 0;
}

uint64_t sb_gateway_oauth_expires_ms(const sb_gateway_oauth *o) {
  return o ? o->expires_ms : 0;
}

int sb_gateway_oauth_busy(const sb_gateway_oauth *o) {
  return o && o->stage != STAGE_IDLE;
}

void sb_gateway_oauth_forget(sb_gateway_oauth *o) {
  if (!o) return;
  sb_free(o->authorization);
  o->authorization = NULL;
  o->obtained_ms = o->expires_ms = 0;
}

/* The fetch is over: tell the caller (once), with ok or what failed. */
static void done(sb_gateway_oauth *o, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void done(sb_gateway_oauth *o, int ok, const char *fmt, ...) {
  char raw[1024] = "", detail[4 * sizeof raw];
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
  }
  /* What the servers said (a token_type, an issuer, a URL) reaches
   * callers and the log: control characters as \xHH, and valid UTF-8
   * (a cut may split a character). */
  sb_escape_controls(raw, strlen(raw), detail, sizeof detail, 0);
  sb_utf8_scrub(detail);
  o->stage = STAGE_IDLE;
  o->req = NULL;
  set_str(&o->url, NULL);
  json_decref(o->urls);
  o->urls = NULL;
  sb_buf_free(&o->tried);
  sb_gateway_oauth_cb cb = o->cb;
  o->cb = NULL;
  if (cb) cb(o->ud, ok, detail);
}

static void on_fetched(void *ud, const sb_fetch_result *r);

/* Start a request; on failure to start, the fetch ends. */
static void request(sb_gateway_oauth *o, const char *method, const char *url,
                    const char *const *headers, const sb_buf *body) {
  sb_fetch_options fo = {.method = method,
                         .url = url,
                         .headers = headers,
                         .body = body ? body->data : NULL,
                         .body_len = body ? body->len : 0,
                         .timeout_ms = FETCH_TIMEOUT_MS,
                         .max_response_bytes = MAX_DOC_BYTES};
  sb_error err = {0};
  set_str(&o->url, url);
  if (!o->url)
    done(o, 0, "out of memory");
  else if (sb_fetch_start(o->fetcher, &fo, on_fetched, o, &o->req, &err) != 0)
    done(o, 0, "%s", err.msg);
}

static void next_stage(sb_gateway_oauth *o);

static const char *const json_accept[] = {"Accept: application/json", NULL};

/* Try the next URL of the stage's list, or end the stage. */
static void try_next_url(sb_gateway_oauth *o) {
  json_t *u = json_array_get(o->urls, 0);
  if (!u) {
    next_stage(o);
    return;
  }
  char *url = sb_strdup(json_string_value(u));
  json_array_remove(o->urls, 0);
  if (!url) {
    done(o, 0, "out of memory");
    return;
  }
  request(o, "GET", url, json_accept, NULL);
  sb_free(url);
}

/* Note why a URL of the stage's list did not do, for the error if none
 * does. */
static void tried(sb_gateway_oauth *o, const char *url, const char *why) {
  char *shown = sb_url_redacted(url, "[REDACTED]");
  char *line = sb_asprintf("%s%s: %s", o->tried.len ? "; " : "",
                           shown ? shown : "(a URL)", why);
  sb_free(shown);
  if (line) sb_buf_append(&o->tried, line, strlen(line));
  sb_free(line);
}

static void start_token(sb_gateway_oauth *o) {
  o->stage = STAGE_TOKEN;
  const sb_agent_oauth *c = o->cfg;
  sb_buf body = {0};
  const char *resource = c->resource ? c->resource : o->resource;
  char *bare = NULL; /* the agent's URL without its query and fragment */
  if (!resource) {
    bare =
        sb_strndup(o->def->transport.url, strcspn(o->def->transport.url, "?#"));
    resource = bare;
  }
  /* The scope: configured, else the agent's challenge's, else all its
   * metadata names; what a 403 insufficient_scope asked for is added. */
  const char *base = c->scope             ? c->scope
                     : o->challenge_scope ? o->challenge_scope
                                          : o->prm_scope;
  char *scope = scope_union(base, o->stepup_scope);
  set_str(&o->asked_scope, scope);
  int post = o->auth == SB_AGENT_OAUTH_AUTH_POST;
  int rc = form_field(&body, "grant_type", "client_credentials");
  if (!rc && scope && *scope) rc = form_field(&body, "scope", scope);
  if (!rc && resource) rc = form_field(&body, "resource", resource);
  if (!rc && post) rc = form_field(&body, "client_id", c->client_id);
  if (!rc && post) rc = form_field(&body, "client_secret", c->client_secret);
  char *basic = NULL, *auth_header = NULL;
  if (!rc && !post) {
    /* RFC 6749 2.3.1: each part form-encoded, then base64 of id:secret. */
    sb_buf cred = {0};
    if (form_escape(&cred, c->client_id) || sb_buf_append(&cred, ":", 1) ||
        form_escape(&cred, c->client_secret))
      rc = SB_ENOMEM;
    basic = rc ? NULL : sb_base64_encode(cred.data, cred.len);
    auth_header = basic ? sb_asprintf("Authorization: Basic %s", basic) : NULL;
    if (!auth_header) rc = SB_ENOMEM;
    sodium_memzero(cred.data, cred.len);
    sb_buf_free(&cred);
  }
  sb_free(bare);
  sb_free(scope);
  if (rc) {
    sb_buf_free(&body);
    sb_free(basic);
    sb_free(auth_header);
    done(o, 0, "out of memory");
    return;
  }
  const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                           "Accept: application/json", auth_header, NULL};
  char *url = sb_strdup(o->token_url);
  if (url)
    request(o, "POST", url, headers, &body);
  else
    done(o, 0, "out of memory");
  sb_free(url);
  if (body.data) sodium_memzero(body.data, body.len);
  sb_buf_free(&body);
  if (basic) sodium_memzero(basic, strlen(basic));
  sb_free(basic);
  if (auth_header) sodium_memzero(auth_header, strlen(auth_header));
  sb_free(auth_header);
}

/* The stage that follows what is known. */
static void next_stage(sb_gateway_oauth *o) {
  json_decref(o->urls);
  o->urls = NULL;
  if (o->token_url) {
    start_token(o);
    return;
  }
  if (o->issuer) {
    if (o->stage == STAGE_SERVER) {
      char *shown = sb_url_redacted(o->issuer, "[REDACTED]");
      done(o, 0,
           "no usable metadata for authorization server %s (%s); "
           "name its token endpoint in transport.oauth.tokenUrl",
           shown ? shown : "", o->tried.data ? o->tried.data : "");
      sb_free(shown);
      return;
    }
    o->stage = STAGE_SERVER;
    sb_buf_free(&o->tried);
    o->urls = sb_gateway_oauth_server_metadata_urls(o->issuer);
    try_next_url(o);
    return;
  }
  if (o->stage == STAGE_RESOURCE) {
    char *shown = sb_url_redacted(o->def->transport.url, "[REDACTED]");
    done(o, 0,
         "no Protected Resource Metadata for %s (%s); name the "
         "authorization server in transport.oauth.issuer, or its "
         "token endpoint in tokenUrl",
         shown ? shown : "", o->tried.data ? o->tried.data : "");
    sb_free(shown);
    return;
  }
  if (o->stage == STAGE_IDLE && !o->resource_metadata) {
    /* No challenge seen: ask the agent for one, as a client without a
     * token would (its 401 names where its metadata is). */
    o->stage = STAGE_PROBE;
    static const char probe[] =
        "{\"jsonrpc\":\"2.0\",\"id\":\"switchboard-oauth-probe\","
        "\"method\":\"ping\"}";
    sb_buf body = {.data = (char *)probe, .len = sizeof probe - 1};
    const char *headers[] = {"Content-Type: application/json",
                             "Accept: application/json, text/event-stream",
                             NULL};
    request(o, "POST", o->def->transport.url, headers, &body);
    return;
  }
  o->stage = STAGE_RESOURCE;
  sb_buf_free(&o->tried);
  o->urls = sb_gateway_oauth_resource_metadata_urls(o->def->transport.url);
  if (o->urls && o->resource_metadata)
    json_array_insert_new(o->urls, 0, json_string(o->resource_metadata));
  try_next_url(o);
}

/* Take the agent's challenge: where its metadata is, the scope it wants. */
static void take_challenge(sb_gateway_oauth *o, const char *challenge) {
  char *v = NULL;
  if (sb_gateway_oauth_challenge_param(challenge, "resource_metadata", &v) ==
          1 &&
      (!strncasecmp(v, "https://", 8) || !strncasecmp(v, "http://", 7))) {
    set_str(&o->resource_metadata, v);
  }
  sb_free(v);
  char *err = NULL, *scope = NULL;
  sb_gateway_oauth_challenge_param(challenge, "error", &err);
  if (sb_gateway_oauth_challenge_param(challenge, "scope", &scope) == 1 &&
      *scope) {
    /* insufficient_scope asks for more, on top of what we asked for,
     * unless the server refused it before; never past MAX_STEPUP_BYTES
     * (an agent naming new scopes without end). */
    if (err && strcmp(err, "insufficient_scope") == 0) {
      char *merged = NULL;
      for (const char *t = scope; *t;) {
        while (*t == ' ')
          t++;
        size_t n = strcspn(t, " ");
        char *one =
            n && !scope_has(o->denied_scope, t, n) ? sb_strndup(t, n) : NULL;
        char *grown =
            one ? scope_union(merged ? merged : o->stepup_scope, one) : NULL;
        if (grown && strlen(grown) <= MAX_STEPUP_BYTES) {
          sb_free(merged);
          merged = grown;
        } else {
          sb_free(grown);
        }
        sb_free(one);
        t += n;
      }
      if (merged) {
        sb_free(o->stepup_scope);
        o->stepup_scope = merged;
      }
    } else {
      set_str(&o->challenge_scope, scope);
    }
  }
  sb_free(err);
  sb_free(scope);
}

int sb_gateway_oauth_wants_scope(const sb_gateway_oauth *o,
                                 const char *challenge) {
  char *err = NULL, *scope = NULL;
  sb_gateway_oauth_challenge_param(challenge, "error", &err);
  sb_gateway_oauth_challenge_param(challenge, "scope", &scope);
  int wants = o && err && strcmp(err, "insufficient_scope") == 0 && scope &&
              scope_adds(o->asked_scope, scope, o->denied_scope);
  /* Past the caps nothing more is added or remembered: no use asking (an
   * agent naming new scopes without end gets no token request each). */
  if (wants &&
      ((o->stepup_scope &&
        strlen(o->stepup_scope) + 1 + strlen(scope) > MAX_STEPUP_BYTES) ||
       (o->denied_scope && strlen(o->denied_scope) >= MAX_DENIED_BYTES)))
    wants = 0;
  sb_free(err);
  sb_free(scope);
  return wants;
}

/* A metadata document: the JSON object of a 200, or NULL with why. */
static json_t *document(const sb_fetch_result *r, char *why, size_t n) {
  if (r->outcome != SB_FETCH_RESPONSE) {
    snprintf(why, n, "%s", r->detail);
    return NULL;
  }
  if (r->status != 200) {
    snprintf(why, n, "HTTP %ld", r->status);
    return NULL;
  }
  json_t *doc = sb_json_loadb(r->body, r->body_len, 0, NULL);
  if (!json_is_object(doc)) {
    json_decref(doc);
    snprintf(why, n, "not a JSON object");
    return NULL;
  }
  return doc;
}

static int is_http_url(const char *s) {
  return s && (!strncasecmp(s, "https://", 8) || !strncasecmp(s, "http://", 7));
}

/* Protected Resource Metadata: its first authorization server, its
 * resource and scopes taken, or why not (0 taken). */
static int take_resource_metadata(sb_gateway_oauth *o, json_t *doc, char *why,
                                  size_t n) {
  const char *as = json_string_value(
      json_array_get(json_object_get(doc, "authorization_servers"), 0));
  const char *resource = json_string_value(json_object_get(doc, "resource"));
  if (!is_http_url(as)) {
    snprintf(why, n, "no authorization_servers");
    return 1;
  }
  if (!resource) {
    /* RFC 9728 2: required; without it nothing says the metadata is this
     * agent's. */
    snprintf(why, n, "no resource");
    return 1;
  }
  if (!sb_gateway_oauth_resource_covers(resource, o->def->transport.url)) {
    /* RFC 9728 3.3: metadata for another resource must not be used (a
     * token for it would be handed to the wrong server). */
    snprintf(why, n, "its resource %.200s is not this agent's", resource);
    return 1;
  }
  /* The secret will go where this names: said, so an operator can pin it
   * (transport.oauth.issuer). */
  SB_INFO(MODULE, "agent %s: its metadata names authorization server %s",
          o->def->id, as);
  set_str(&o->issuer, as);
  set_str(&o->resource, resource);
  sb_buf all = {0};
  size_t i;
  json_t *sc;
  json_array_foreach(json_object_get(doc, "scopes_supported"), i, sc) {
    if (!json_is_string(sc)) continue;
    if (all.len) sb_buf_append(&all, " ", 1);
    sb_buf_append(&all, json_string_value(sc), json_string_length(sc));
  }
  sb_buf_append(&all, "", 1);
  sb_free(o->prm_scope);
  o->prm_scope = all.data && all.data[0] ? all.data : NULL;
  if (!o->prm_scope) sb_buf_free(&all);
  return 0;
}

/* Authorization server metadata: its token endpoint and auth methods
 * taken, or why not (0 taken). */
static int take_server_metadata(sb_gateway_oauth *o, json_t *doc, char *why,
                                size_t n) {
  const char *issuer = json_string_value(json_object_get(doc, "issuer"));
  const char *token = json_string_value(json_object_get(doc, "token_endpoint"));
  if (!issuer || strcmp(issuer, o->issuer) != 0) {
    /* RFC 8414 3.3: another issuer's metadata is not to be used. */
    snprintf(why, n, "its issuer is %.200s", issuer ? issuer : "missing");
    return 1;
  }
  if (!is_http_url(token)) {
    snprintf(why, n, "no token_endpoint");
    return 1;
  }
  set_str(&o->token_url, token);
  json_t *methods =
      json_object_get(doc, "token_endpoint_auth_methods_supported");
  int basic = 0, post = 0;
  size_t i;
  json_t *m;
  json_array_foreach(methods, i, m) {
    const char *name = json_string_value(m);
    basic |= name && strcmp(name, "client_secret_basic") == 0;
    post |= name && strcmp(name, "client_secret_post") == 0;
  }
  /* RFC 8414: absent means client_secret_basic. */
  if (o->cfg->auth == SB_AGENT_OAUTH_AUTH_AUTO)
    o->auth = json_is_array(methods) && post && !basic
                  ? SB_AGENT_OAUTH_AUTH_POST
                  : SB_AGENT_OAUTH_AUTH_BASIC;
  return 0;
}

/* A document of the stage's list came (or did not): taken, the next
 * stage; else the next URL. */
static void
on_metadata(sb_gateway_oauth *o, const char *url, const sb_fetch_result *r,
            int (*take)(sb_gateway_oauth *, json_t *, char *, size_t)) {
  char why[512];
  json_t *doc = document(r, why, sizeof why);
  int taken = doc && take(o, doc, why, sizeof why) == 0;
  json_decref(doc);
  if (taken) {
    next_stage(o);
    return;
  }
  tried(o, url, why);
  try_next_url(o);
}

/* A token endpoint that cannot be reached, or says it is not one, was
 * perhaps moved: it is looked up again next time, at the same issuer. The
 * issuer found first is kept while the process lives: the client secret
 * goes to no other server the agent's metadata might name later. */
static void forget_discovered(sb_gateway_oauth *o) {
  if (!o->cfg->token_url) set_str(&o->token_url, NULL);
}

static void on_token(sb_gateway_oauth *o, const sb_fetch_result *r) {
  char *shown = sb_url_redacted(o->token_url, "[REDACTED]");
  const char *where = shown ? shown : "the token endpoint";
  if (r->outcome != SB_FETCH_RESPONSE) {
    forget_discovered(o);
    done(o, 0, "token request: %s", r->detail);
    sb_free(shown);
    return;
  }
  /* Numbers as reals: an expires_in past 64 bits is a number still. */
  json_t *doc = sb_json_loadb(r->body, r->body_len,
                              JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, NULL);
  const char *err = json_string_value(json_object_get(doc, "error"));
  if (r->status == 400 && err && strcmp(err, "invalid_scope") == 0 &&
      o->stepup_scope) {
    /* The scope a 403 asked for is not this client's: asked without it,
     * and not again. */
    char *denied = scope_union(o->denied_scope, o->stepup_scope);
    if (denied && strlen(denied) <= MAX_DENIED_BYTES + MAX_STEPUP_BYTES) {
      sb_free(o->denied_scope);
      o->denied_scope = denied;
    } else {
      sb_free(denied);
    }
    set_str(&o->stepup_scope, NULL);
    SB_WARN(MODULE,
            "agent %s: %s refused the scope the agent asked for "
            "(invalid_scope); asking without it",
            o->def->id, where);
    json_decref(doc);
    sb_free(shown);
    start_token(o);
    return;
  }
  if (r->status != 200) {
    const char *e = err;
    const char *d =
        json_string_value(json_object_get(doc, "error_description"));
    char es[200] = "", ds[400] = "";
    if (e) sb_escape_controls(e, strlen(e), es, sizeof es, 0);
    if (d) sb_escape_controls(d, strlen(d), ds, sizeof ds, 0);
    if (r->status == 404 || r->status == 405) forget_discovered(o);
    done(o, 0, "%s refused the token request: HTTP %ld%s%s%s%s", where,
         r->status, e ? ": " : "", es, d ? ": " : "", ds);
  } else {
    const char *token = json_string_value(json_object_get(doc, "access_token"));
    const char *type = json_string_value(json_object_get(doc, "token_type"));
    json_t *expires = json_object_get(doc, "expires_in");
    int printable = token && *token;
    for (const char *c = token; printable && *c; c++)
      printable = *c > 0x20 && *c < 0x7f;
    if (!printable) {
      done(o, 0, "%s answered no usable access_token", where);
    } else if (strlen(token) > MAX_TOKEN_BYTES) {
      done(o, 0,
           "%s gave an access_token of %zu bytes; switchboard sends "
           "at most %d",
           where, strlen(token), MAX_TOKEN_BYTES);
    } else if (type && strcasecmp(type, "Bearer") != 0) {
      done(o, 0,
           "%s gave a token of type %.40s; switchboard sends Bearer "
           "tokens only",
           where, type);
    } else {
      char *auth = sb_asprintf("Bearer %s", token);
      if (!auth) {
        done(o, 0, "out of memory");
      } else {
        sb_gateway_oauth_forget(o);
        o->authorization = auth;
        o->obtained_ms = sb_now_ms();
        /* Past ten years (or not a number, or not positive): as if not
         * said; renewed when the agent refuses it. */
        double given = json_is_number(expires) ? json_number_value(expires) : 0;
        long long secs =
            given >= 1 && given < 10.0 * 365 * 24 * 3600 ? (long long)given : 0;
        if (secs > 0) o->expires_ms = o->obtained_ms + (uint64_t)secs * 1000;
        char valid[48] = "";
        if (secs > 0) snprintf(valid, sizeof valid, ", valid %lld s", secs);
        SB_INFO(MODULE, "agent %s: got an OAuth access token from %s%s",
                o->def->id, where, valid);
        done(o, 1, NULL);
      }
    }
  }
  json_decref(doc);
  sb_free(shown);
}

static void on_fetched(void *ud, const sb_fetch_result *r) {
  sb_gateway_oauth *o = ud;
  o->req = NULL;
  if (r->outcome == SB_FETCH_CANCELLED) return; /* freed, or forgotten */
  const char *url = o->url ? o->url : "";
  switch (o->stage) {
  case STAGE_PROBE:
    if (r->outcome != SB_FETCH_RESPONSE) {
      done(o, 0, "%s", r->detail);
      return;
    }
    if (r->www_authenticate) take_challenge(o, r->www_authenticate);
    next_stage(o);
    return;
  case STAGE_RESOURCE: on_metadata(o, url, r, take_resource_metadata); return;
  case STAGE_SERVER: on_metadata(o, url, r, take_server_metadata); return;
  case STAGE_TOKEN: on_token(o, r); return;
  case STAGE_IDLE: return;
  }
}

int sb_gateway_oauth_fetch(sb_gateway_oauth *o, const char *challenge,
                           sb_gateway_oauth_cb cb, void *ud) {
  if (!o || o->stage != STAGE_IDLE) return SB_ESTATE;
  if (challenge) take_challenge(o, challenge);
  o->cb = cb;
  o->ud = ud;
  if (!o->token_url) set_str(&o->token_url, o->cfg->token_url);
  if (!o->issuer) set_str(&o->issuer, o->cfg->issuer);
  if (o->auth == SB_AGENT_OAUTH_AUTH_AUTO) o->auth = o->cfg->auth;
  next_stage(o);
  return 0;
}

void sb_gateway_oauth_free(sb_gateway_oauth *o) {
  if (!o) return;
  o->cb = NULL;
  if (o->req) sb_fetch_cancel(o->req);
  json_decref(o->urls);
  sb_buf_free(&o->tried);
  sb_gateway_oauth_forget(o);
  sb_free(o->token_url);
  sb_free(o->issuer);
  sb_free(o->resource);
  sb_free(o->prm_scope);
  sb_free(o->challenge_scope);
  sb_free(o->stepup_scope);
  sb_free(o->denied_scope);
  sb_free(o->asked_scope);
  sb_free(o->resource_metadata);
  sb_free(o->url);
  sb_agent_def_free(o->def);
  sb_free(o);
}
