/* http_caller.c: who is calling, for the Streamable HTTP transport.
 *
 * The bearer token a request carries; the Origin policy (when
 * server.allowed_origins is configured, an Origin header must equal one of
 * its entries exactly; when it is empty, only loopback origins are
 * accepted: http(s)://localhost, 127.0.0.1 or [::1], any port; requests
 * without an Origin header, non-browser clients, are accepted); the
 * challenges of a 401 (RFC 6750, RFC 9728: where the protected-resource
 * metadata is, why a token was refused) and of a 403 for a missing scope;
 * and telling the audit hook of every refusal decided in http.c.
 */
#include "net/http_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* The token of an "Authorization: Bearer <token>" header, or NULL. */
const char *http_bearer_token(http_req *r) {
  const char *a = http_req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
  /* RFC 9110 11.4: the scheme, then spaces; a tab is taken as one too. */
  if (!a || strncasecmp(a, "Bearer", 6) != 0 || (a[6] != ' ' && a[6] != '\t'))
    return NULL;
  a += 7;
  while (*a == ' ' || *a == '\t') a++;
  return *a ? a : NULL;
}

static int is_loopback_origin(const char *o) {
  if (strncmp(o, "http://", 7) == 0)
    o += 7;
  else if (strncmp(o, "https://", 8) == 0)
    o += 8;
  else
    return 0;
  static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
  for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
    size_t n = strlen(hosts[i]);
    if (strncasecmp(o, hosts[i], n) != 0) continue;
    const char *p = o + n;
    if (*p == '\0') return 1;
    if (*p != ':' || !p[1]) return 0;
    for (p++; *p; p++)
      if (*p < '0' || *p > '9') return 0;
    return 1;
  }
  return 0;
}

int http_origin_allowed(const sb_http_server_options *cfg, const char *origin) {
  if (cfg->allowed_origins_len == 0) return is_loopback_origin(origin);
  for (size_t i = 0; i < cfg->allowed_origins_len; i++)
    if (strcmp(cfg->allowed_origins[i], origin) == 0) return 1;
  return 0;
}

/* The 401's challenge (RFC 6750 3, RFC 9728 5.1): where the metadata is,
 * and for a token that was sent, why it was refused. */
void http_unauthorized_challenge(const http_req *r, char *out, size_t cap) {
  const sb_http_server_options *cfg = &r->srv->cfg;
  int n = snprintf(out, cap, "Bearer");
  const char *sep = " ";
  if (cfg->resource_metadata_url && n > 0 && (size_t)n < cap) {
    n += snprintf(out + n, cap - (size_t)n, "%sresource_metadata=\"%s\"", sep,
                  cfg->resource_metadata_url);
    sep = ", ";
  }
  if (r->auth_why && n > 0 && (size_t)n < cap)
    snprintf(out + n, cap - (size_t)n,
             "%serror=\"invalid_token\", error_description=\"%s\"", sep,
             r->auth_why);
}

void sb_http_insufficient_scope(const sb_http_request *r, const char *scope,
                                const char *description, char *out,
                                size_t cap) {
  const char *url = r->srv->cfg.resource_metadata_url;
  /* Scopes and descriptions come from our grammar and our messages; a
   * quote in one (a context's metadata.permissions is data) is dropped
   * rather than break the header. */
  char sc[160], desc[256];
  size_t o = 0;
  for (const char *c = scope; *c && o + 1 < sizeof sc; c++)
    if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20) sc[o++] = *c;
  sc[o] = '\0';
  o = 0;
  for (const char *c = description ? description : ""; *c && o + 1 < sizeof desc;
       c++)
    if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20) desc[o++] = *c;
  desc[o] = '\0';
  snprintf(out, cap,
           "Bearer error=\"insufficient_scope\", scope=\"%s\"%s%s%s, "
           "error_description=\"%s\"",
           sc, url ? ", resource_metadata=\"" : "", url ? url : "",
           url ? "\"" : "", desc);
}

/* Tell the audit hook of a 401 or 403 decided here. */
void http_audit_refusal(http_req *r, const char *url, sb_http_auth_reason why,
                          int status) {
  const sb_http_server_options *cfg = &r->srv->cfg;
  if (!cfg->on_auth_failure) return;
  char addr[INET6_ADDRSTRLEN] = "";
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  if (sa && sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr,
              sizeof addr);
  else if (sa && sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr,
              sizeof addr);
  sb_http_auth_failure f = {.status = status,
                            .reason = why,
                            .tenant = r->out.tenant,
                            .bearer_token = http_bearer_token(r),
                            .remote_addr = addr,
                            .method = r->method,
                            .path = url};
  cfg->on_auth_failure(cfg->audit_ud, &f);
}
