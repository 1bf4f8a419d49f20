/* config.c: switchboard's YAML configuration file.
 *
 * The file is read with libyaml's event API and checked against a small
 * schema table (sections of typed keys), so every diagnostic can name the
 * file, the line and the key path the user wrote. Events rather than
 * libyaml's document API because we want to refuse aliases outright (a
 * config file has no use for them and they are the classic way to make a
 * tiny YAML file expensive) and because the first error ends the parse.
 *
 * Loading is all-or-nothing: the file is applied to a private copy of the
 * config, which replaces the caller's only when the whole file is valid, so
 * a bad file (or an allocation failure) leaves the caller's config as it
 * was.
 */
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include <yaml.h>

/* The default host is static so sb_config_defaults cannot fail; free()
 * recognises it by address. */
static char default_listen_host[] = "127.0.0.1";
static char default_store_path[] = "data/switchboard.db";
static char default_tenant_id[] = "default";

void sb_config_defaults(sb_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->listen_host = default_listen_host;
  cfg->listen_port = 0;
  cfg->allowed_origins = NULL;
  cfg->allowed_origins_len = 0;
  cfg->log_level = SB_LOG_INFO;
  cfg->max_message_bytes = 4 * 1024 * 1024;
  cfg->max_json_depth = 64;
  cfg->max_connections = 10000;
  /* 14 KiB, the largest of jemalloc's small size classes: the pool is
   * touched whole, and at 16 KiB (a large class, one page more) an idle
   * keep-alive connection held 20.9 KiB of RSS instead of 14.8. */
  cfg->connection_memory_bytes = 14336;
  cfg->connection_timeout_s = 300;
  cfg->header_timeout_s = 10;
  cfg->body_timeout_s = 60;
  cfg->send_timeout_s = 60;
  cfg->max_connections_per_address = 1000;
  cfg->connection_reserve = 1000;
  cfg->max_stream_buffer_bytes = 8u * 1024u * 1024u;
  cfg->page_size = 50;
  cfg->max_tool_name = 64; /* SB_GATEWAY_TOOL_NAME_MAX */
  cfg->agent_health_interval_ms = 15000;
  cfg->agent_health_timeout_ms = 5000;
  cfg->max_listen_uris = 1000;
  cfg->max_listen_streams_per_tenant = 100;
  cfg->max_runs = 10000;
  cfg->max_runs_per_tenant = 1000;
  cfg->session_idle_timeout_s = 1800;
  cfg->replay_events = 256;
  cfg->max_sessions = 10000;
  cfg->max_sessions_per_tenant = 1000;
  cfg->cache_ttl_ms = 60000;
  cfg->store_path = default_store_path;
  cfg->store_max_pending = 4096;
  cfg->store_readers = 2;
  cfg->store_takeover_interval_ms = 2000;
  cfg->ctx_default_ttl_s = 7L * 24 * 3600;
  cfg->ctx_snapshot_every = 32;
  cfg->ctx_max_bytes = 4 * 1024 * 1024;
  cfg->ctx_sweep_interval_s = 60;
  cfg->ctx_head_cache_bytes = (size_t)64 << 20;
  cfg->events_retention_s = 7L * 24 * 3600;
  cfg->events_max_data_bytes = 65536;
  cfg->default_tenant = default_tenant_id;
  cfg->llm_timeout_ms = 30000;
  cfg->oauth_leeway_s = 60;
}

int cfg_is_static_default(const char *s) {
  return s == default_listen_host || s == default_store_path ||
         s == default_tenant_id;
}


/* Free what cfg owns without touching the other fields. */
static void release_owned(sb_config *cfg) {
  if (!cfg_is_static_default(cfg->listen_host)) sb_free(cfg->listen_host);
  cfg->listen_host = NULL;
  if (!cfg_is_static_default(cfg->store_path)) sb_free(cfg->store_path);
  cfg->store_path = NULL;
  if (!cfg_is_static_default(cfg->default_tenant)) sb_free(cfg->default_tenant);
  cfg->default_tenant = NULL;
  sb_free(cfg->llm_base_url);
  cfg->llm_base_url = NULL;
  sb_free(cfg->llm_api_key_env);
  cfg->llm_api_key_env = NULL;
  sb_free(cfg->tls_cert_file);
  cfg->tls_cert_file = NULL;
  sb_free(cfg->tls_key_file);
  cfg->tls_key_file = NULL;
  cfg_free_quota_tenants(cfg->quota_tenants, cfg->quota_tenants_len);
  cfg->quota_tenants = NULL;
  cfg->quota_tenants_len = 0;
  cfg_release_oauth(cfg);
  cfg_free_tenants(cfg->tenants, cfg->tenants_len);
  cfg->tenants = NULL;
  cfg->tenants_len = 0;
  json_decref(cfg->agents);
  cfg->agents = NULL;
  sb_free(cfg->agent_lines);
  cfg->agent_lines = NULL;
  json_decref(cfg->servers);
  cfg->servers = NULL;
  sb_free(cfg->server_lines);
  cfg->server_lines = NULL;
  json_decref(cfg->workflows);
  cfg->workflows = NULL;
  json_decref(cfg->workflow_lines);
  cfg->workflow_lines = NULL;
  sb_free(cfg->config_file);
  cfg->config_file = NULL;
  sb_free(cfg->config_dir);
  cfg->config_dir = NULL;
  cfg_free_strings(cfg->admin_tenants, cfg->admin_tenants_len);
  cfg->admin_tenants = NULL;
  cfg->admin_tenants_len = 0;
  for (size_t i = 0; i < cfg->allowed_origins_len; i++)
    sb_free(cfg->allowed_origins[i]);
  sb_free(cfg->allowed_origins);
  cfg->allowed_origins = NULL;
  cfg->allowed_origins_len = 0;
}

void sb_config_free(sb_config *cfg) {
  if (!cfg) return;
  release_owned(cfg);
  /* Back to defaults so a second free, or a use after free, is harmless. */
  sb_config_defaults(cfg);
}

/* A list kept as JSON and the line of each item (agents:, servers:). */
static int clone_json_list(const json_t *list, const size_t *lines,
                           json_t **out_list, size_t **out_lines) {
  if (!list) return 0;
  size_t n = json_array_size(list);
  *out_list = json_deep_copy(list);
  *out_lines = sb_calloc(n ? n : 1, sizeof **out_lines);
  if (!*out_list || !*out_lines) return SB_ENOMEM;
  if (n) memcpy(*out_lines, lines, n * sizeof **out_lines);
  return 0;
}

/* Deep copy of src into dst (dst's previous contents are ignored). */
static int config_clone(sb_config *dst, const sb_config *src) {
  *dst = *src;
  dst->allowed_origins = NULL;
  dst->allowed_origins_len = 0;
  dst->tenants = NULL;
  dst->tenants_len = 0;
  dst->agents = NULL;
  dst->agent_lines = NULL;
  dst->servers = NULL;
  dst->server_lines = NULL;
  dst->workflows = NULL;
  dst->workflow_lines = NULL;
  dst->config_file = NULL;
  dst->config_dir = NULL;
  dst->admin_tenants = NULL;
  dst->admin_tenants_len = 0;
  dst->llm_base_url = NULL;
  dst->llm_api_key_env = NULL;
  dst->tls_cert_file = NULL;
  dst->tls_key_file = NULL;
  dst->quota_tenants = NULL;
  dst->quota_tenants_len = 0;
  /* Owned strings are copied; until then dst points at the statics so a
   * failure part-way frees only what was copied. */
  dst->listen_host = default_listen_host;
  dst->store_path = default_store_path;
  dst->default_tenant = default_tenant_id;
  dst->oauth_issuer = dst->oauth_resource = dst->oauth_jwks_file = NULL;
  dst->oauth_tenant_claim = dst->oauth_scope_claim = NULL;
  dst->oauth_authorization_servers = dst->oauth_scopes_supported = NULL;
  dst->oauth_authorization_servers_len = dst->oauth_scopes_supported_len = 0;
  if ((src->llm_base_url && !(dst->llm_base_url = sb_strdup(src->llm_base_url))) ||
      (src->llm_api_key_env &&
       !(dst->llm_api_key_env = sb_strdup(src->llm_api_key_env))))
    goto fail;
  if (src->admin_tenants_len) {
    dst->admin_tenants = sb_calloc(src->admin_tenants_len, sizeof(char *));
    if (!dst->admin_tenants) goto fail;
    for (size_t i = 0; i < src->admin_tenants_len; i++) {
      dst->admin_tenants_len = i + 1;
      if (!(dst->admin_tenants[i] = sb_strdup(src->admin_tenants[i]))) goto fail;
    }
  }
  if ((src->tls_cert_file &&
       !(dst->tls_cert_file = sb_strdup(src->tls_cert_file))) ||
      (src->tls_key_file && !(dst->tls_key_file = sb_strdup(src->tls_key_file))) ||
      cfg_clone_quota_tenants(dst, src) != 0)
    goto fail;
  if (src->listen_host && !cfg_is_static_default(src->listen_host) &&
      !(dst->listen_host = sb_strdup(src->listen_host)))
    goto fail;
  if (src->store_path && !cfg_is_static_default(src->store_path) &&
      !(dst->store_path = sb_strdup(src->store_path)))
    goto fail;
  if (src->default_tenant && !cfg_is_static_default(src->default_tenant) &&
      !(dst->default_tenant = sb_strdup(src->default_tenant)))
    goto fail;
  if (cfg_clone_oauth(dst, src) != 0) goto fail;
  if (clone_json_list(src->agents, src->agent_lines, &dst->agents,
                      &dst->agent_lines) != 0 ||
      clone_json_list(src->servers, src->server_lines, &dst->servers,
                      &dst->server_lines) != 0)
    goto fail;
  if ((src->workflows && !(dst->workflows = json_deep_copy(src->workflows))) ||
      (src->workflow_lines &&
       !(dst->workflow_lines = json_deep_copy(src->workflow_lines))) ||
      (src->config_file && !(dst->config_file = sb_strdup(src->config_file))) ||
      (src->config_dir && !(dst->config_dir = sb_strdup(src->config_dir))))
    goto fail;
  if (src->tenants_len) {
    dst->tenants = sb_calloc(src->tenants_len, sizeof *dst->tenants);
    if (!dst->tenants) goto fail;
    for (size_t i = 0; i < src->tenants_len; i++) {
      dst->tenants_len = i + 1;
      dst->tenants[i].id = sb_strdup(src->tenants[i].id);
      dst->tenants[i].token = sb_strdup(src->tenants[i].token);
      if (!dst->tenants[i].id || !dst->tenants[i].token) goto fail;
    }
  }
  if (src->allowed_origins_len) {
    dst->allowed_origins =
        sb_calloc(src->allowed_origins_len, sizeof *dst->allowed_origins);
    if (!dst->allowed_origins) goto fail;
    for (size_t i = 0; i < src->allowed_origins_len; i++) {
      dst->allowed_origins[i] = sb_strdup(src->allowed_origins[i]);
      if (!dst->allowed_origins[i]) goto fail;
      dst->allowed_origins_len = i + 1;
    }
  }
  return 0;
fail:
  release_owned(dst);
  return SB_ENOMEM;
}

/* ---- host:port ---------------------------------------------------------- */

/* Quote a user-supplied string for an error message: escaped, truncated. */
static void quote_value(char *out, size_t cap, const char *s, size_t len) {
  const size_t max_shown = 60;
  if (cap < 8) {
    if (cap) out[0] = '\0';
    return;
  }
  /* Room kept for the closing quote, an ellipsis and the NUL. */
  size_t o = 1 + sb_escape_controls(s, len < max_shown ? len : max_shown,
                                    out + 1, cap - 5, SB_ESC_QUOTE);
  out[0] = '"';
  if (len > max_shown) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o++] = '"';
  out[o] = '\0';
}

/* Parse an unsigned decimal with no sign, spaces or leading junk. */
static int parse_decimal(const char *s, size_t len, long long *out) {
  if (len == 0) return -1;
  long long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    if (v > (LLONG_MAX - 9) / 10) return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* Split and check "host:port". On success *host is a new string (caller
 * frees with sb_free). On failure msg describes the bad part. */
static int parse_listen(const char *hostport, int min_port, char **host,
                        int *port, char *msg, size_t msgcap) {
  char shown[96];
  size_t len = strlen(hostport);
  quote_value(shown, sizeof shown, hostport, len);
  const char *colon = strrchr(hostport, ':');
  if (!colon) {
    snprintf(msg, msgcap, "expected HOST:PORT (e.g. 127.0.0.1:8080), got %s",
             shown);
    return SB_EINVAL;
  }
  size_t host_len = (size_t)(colon - hostport);
  const char *port_s = colon + 1;
  size_t port_len = len - host_len - 1;
  char host_shown[96], port_shown[96];
  quote_value(host_shown, sizeof host_shown, hostport, host_len);
  quote_value(port_shown, sizeof port_shown, port_s, port_len);
  if (host_len == 0) {
    snprintf(msg, msgcap, "missing host in %s (expected HOST:PORT)", shown);
    return SB_EINVAL;
  }
  char host_buf[64];
  struct in6_addr addr;
  const char *canon = NULL;
  if (host_len < sizeof host_buf) {
    memcpy(host_buf, hostport, host_len);
    host_buf[host_len] = '\0';
    if (strcmp(host_buf, "localhost") == 0) {
      canon = "127.0.0.1"; /* the HTTP transport binds numeric addresses */
    } else if (inet_pton(AF_INET, host_buf, &addr) == 1) {
      canon = host_buf;
    } else if (host_len > 2 && host_buf[0] == '[' &&
               host_buf[host_len - 1] == ']') {
      /* [v6]:port; stored without the brackets, as inet_pton wants it */
      host_buf[host_len - 1] = '\0';
      if (inet_pton(AF_INET6, host_buf + 1, &addr) == 1) canon = host_buf + 1;
    }
  }
  if (!canon) {
    snprintf(msg, msgcap,
             "bad host %s in %s (expected an IPv4 address, [IPv6 address] "
             "or localhost)",
             host_shown, shown);
    return SB_EINVAL;
  }
  long long p;
  if (parse_decimal(port_s, port_len, &p) != 0 || p < min_port || p > 65535) {
    snprintf(msg, msgcap, "bad port %s in %s (expected %d..65535)", port_shown,
             shown, min_port);
    return SB_EINVAL;
  }
  *host = sb_strdup(canon);
  if (!*host) {
    snprintf(msg, msgcap, "out of memory");
    return SB_ENOMEM;
  }
  *port = (int)p;
  return 0;
}

int sb_config_set_listen(sb_config *cfg, const char *hostport, sb_error *err) {
  char msg[400];
  char *host = NULL;
  int port = 0;
  if (!hostport) return sb_error_set(err, SB_EINVAL, "listen: missing address");
  int rc = parse_listen(hostport, 0, &host, &port, msg, sizeof msg);
  if (rc != 0) return sb_error_set(err, rc, "listen: %s", msg);
  if (!cfg_is_static_default(cfg->listen_host)) sb_free(cfg->listen_host);
  cfg->listen_host = host;
  cfg->listen_port = port;
  return 0;
}

static int replace_string(char **field, const char *v, sb_error *err) {
  char *copy = sb_strdup(v);
  if (!copy) return sb_error_set(err, SB_ENOMEM, "out of memory");
  if (!cfg_is_static_default(*field)) sb_free(*field);
  *field = copy;
  return 0;
}

char *sb_config_path(const sb_config *cfg, const char *path) {
  if (path[0] == '/' || !cfg->config_dir) return sb_strdup(path);
  size_t n = strlen(cfg->config_dir) + strlen(path) + 2;
  char *out = sb_malloc(n);
  if (out) snprintf(out, n, "%s/%s", cfg->config_dir, path);
  return out;
}

int sb_config_set_store_path(sb_config *cfg, const char *path, sb_error *err) {
  if (!path || !*path)
    return sb_error_set(err, SB_EINVAL, "store: expected a file path");
  return replace_string(&cfg->store_path, path, err);
}

int sb_config_set_default_tenant(sb_config *cfg, const char *tenant,
                                 sb_error *err) {
  if (!sb_config_tenant_id_valid(tenant))
    return sb_error_set(err, SB_EINVAL,
                        "tenant: expected 1-64 of A-Z a-z 0-9 . _ -, got "
                        "'%.80s'",
                        tenant ? tenant : "");
  return replace_string(&cfg->default_tenant, tenant, err);
}

/* ---- parser ------------------------------------------------------------- */


size_t cfg_ev_line(const parse_ctx *p) { return p->ev.start_mark.line + 1; }

/* Error at the current event's line, with the key path when there is one. */
int cfg_fail_at(parse_ctx *p, size_t line, const char *path, int code,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int cfg_fail_at(parse_ctx *p, size_t line, const char *path, int code,
                   const char *fmt, ...) {
  char msg[sizeof p->err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (path && *path)
    return sb_error_set(p->err, code, "%s:%zu: %s: %s", p->name, line, path,
                        msg);
  return sb_error_set(p->err, code, "%s:%zu: %s", p->name, line, msg);
}

/* Line of a byte offset, for reader errors that carry no mark. */
static size_t line_of_offset(const parse_ctx *p, size_t offset) {
  size_t line = 1;
  if (offset > p->input_len) offset = p->input_len;
  for (size_t i = 0; i < offset; i++)
    if (p->input[i] == '\n') line++;
  return line;
}

static int syntax_error(parse_ctx *p) {
  yaml_parser_t *y = &p->parser;
  const char *problem = y->problem ? y->problem : "malformed YAML";
  if (y->error == YAML_MEMORY_ERROR)
    return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
  if (y->error == YAML_READER_ERROR)
    return sb_error_set(p->err, SB_EINVAL, "%s:%zu: invalid YAML: %s", p->name,
                        line_of_offset(p, y->problem_offset), problem);
  size_t line = y->problem_mark.line + 1;
  if (y->context)
    return sb_error_set(p->err, SB_EINVAL,
                        "%s:%zu: invalid YAML: %s (%s on line %zu)", p->name,
                        line, problem, y->context, y->context_mark.line + 1);
  return sb_error_set(p->err, SB_EINVAL, "%s:%zu: invalid YAML: %s", p->name,
                      line, problem);
}

/* Advance to the next event (p->ev). */
int cfg_next_event(parse_ctx *p) {
  if (p->have_ev) yaml_event_delete(&p->ev);
  p->have_ev = 0;
  if (!yaml_parser_parse(&p->parser, &p->ev)) return syntax_error(p);
  p->have_ev = 1;
  /* A tag would be ignored ("!!str 5" read as the number 5): refused, as
   * aliases are. */
  const yaml_char_t *tag = p->ev.type == YAML_SCALAR_EVENT
                               ? p->ev.data.scalar.tag
                           : p->ev.type == YAML_MAPPING_START_EVENT
                               ? p->ev.data.mapping_start.tag
                           : p->ev.type == YAML_SEQUENCE_START_EVENT
                               ? p->ev.data.sequence_start.tag
                               : NULL;
  static const char core[] = "tag:yaml.org,2002:"; /* written !!... */
  if (tag) {
    const char *t = (const char *)tag;
    int short_form = strncmp(t, core, sizeof core - 1) == 0;
    return cfg_fail_at(p, cfg_ev_line(p), NULL, SB_EINVAL,
                       "YAML tags (%s%.64s) are not supported%s",
                       short_form ? "!!" : "",
                       short_form ? t + sizeof core - 1 : t,
                       p->cfg ? " in the config" : "");
  }
  return 0;
}

const char *cfg_ev_scalar(const parse_ctx *p) {
  return (const char *)p->ev.data.scalar.value;
}

/* A plain empty/~/null scalar: YAML's null, e.g. "limits:" with no body. */
int cfg_ev_is_null(const parse_ctx *p) {
  if (p->ev.type != YAML_SCALAR_EVENT) return 0;
  if (p->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  const char *v = cfg_ev_scalar(p);
  return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
         strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* What the current event is, for "got ..." in messages. */
void cfg_describe_event(const parse_ctx *p, char *out, size_t cap) {
  switch (p->ev.type) {
  case YAML_SEQUENCE_START_EVENT: snprintf(out, cap, "a list"); break;
  case YAML_MAPPING_START_EVENT: snprintf(out, cap, "a mapping"); break;
  case YAML_ALIAS_EVENT: snprintf(out, cap, "an alias"); break;
  case YAML_SCALAR_EVENT:
    if (cfg_ev_is_null(p))
      snprintf(out, cap, "an empty value");
    else
      quote_value(out, cap, cfg_ev_scalar(p), p->ev.data.scalar.length);
    break;
  default: snprintf(out, cap, "something else"); break;
  }
}

int cfg_fail_alias(parse_ctx *p, const char *path) {
  return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                     "YAML aliases (*%s) are not supported%s",
                     (const char *)p->ev.data.alias.anchor,
                     p->cfg ? " in the config" : "");
}

static int parse_mapping(parse_ctx *p, const key_spec *keys, const char *path);

int cfg_parse_mapping(parse_ctx *p, const key_spec *keys, const char *path) {
  return parse_mapping(p, keys, path);
}

static int parse_number(parse_ctx *p, const key_spec *k, const char *path) {
  char got[96];
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  long long v = 0;
  int ok = 0;
  if (p->ev.type == YAML_SCALAR_EVENT) {
    const char *s = cfg_ev_scalar(p);
    size_t len = p->ev.data.scalar.length;
    int neg = 0;
    if (len && (s[0] == '-' || s[0] == '+')) {
      neg = s[0] == '-';
      s++;
      len--;
    }
    if (parse_decimal(s, len, &v) == 0) {
      if (neg) v = -v;
      ok = v >= k->min && v <= k->max;
    }
  }
  if (!ok) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                   "expected an integer between %lld and %lld, got %s", k->min,
                   k->max, got);
  }
  char *field = (char *)p->cfg + k->offset;
  switch (k->kind) {
  case KEY_INT: *(int *)(void *)field = (int)v; break;
  case KEY_SIZE: *(size_t *)(void *)field = (size_t)v; break;
  case KEY_LONG: *(long *)(void *)field = (long)v; break;
  default: break;
  }
  return 0;
}

static int parse_log_level(parse_ctx *p, const char *path) {
  char got[96];
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  int level = -1;
  /* "debug\0zzz" is no level: the whole scalar must be one. */
  if (p->ev.type == YAML_SCALAR_EVENT &&
      strlen(cfg_ev_scalar(p)) == p->ev.data.scalar.length)
    level = sb_log_level_parse(cfg_ev_scalar(p));
  if (level < 0) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                   "expected one of debug, info, notice, warning, error, "
                   "got %s",
                   got);
  }
  p->cfg->log_level = level;
  return 0;
}

static int parse_log_format(parse_ctx *p, const char *path) {
  char got[96];
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  int format = -1;
  if (p->ev.type == YAML_SCALAR_EVENT &&
      strlen(cfg_ev_scalar(p)) == p->ev.data.scalar.length)
    format = sb_log_format_parse(cfg_ev_scalar(p));
  if (format < 0) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                       "expected text or json, got %s", got);
  }
  p->cfg->log_format = format;
  return 0;
}

static int parse_store_check(parse_ctx *p, const char *path) {
  static const char *const names[] = {"auto", "always", "never"};
  char got[96];
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (p->ev.type == YAML_SCALAR_EVENT &&
      strlen(cfg_ev_scalar(p)) == p->ev.data.scalar.length) {
    for (int i = 0; i < 3; i++) {
      if (strcmp(cfg_ev_scalar(p), names[i]) != 0) continue;
      p->cfg->store_check_on_start = i;
      return 0;
    }
  }
  cfg_describe_event(p, got, sizeof got);
  return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                     "expected auto, always or never, got %s", got);
}

static int parse_listen_value(parse_ctx *p, const char *path) {
  char got[96], msg[400];
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (p->ev.type != YAML_SCALAR_EVENT || cfg_ev_is_null(p)) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                   "expected HOST:PORT (e.g. 127.0.0.1:8080), got %s", got);
  }
  if (strlen(cfg_ev_scalar(p)) != p->ev.data.scalar.length)
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL, "contains a NUL byte");
  char *host = NULL;
  int port = 0;
  /* Port 0 in the file would be indistinguishable from "not configured";
   * a free port is what --listen HOST:0 is for. */
  int rc = parse_listen(cfg_ev_scalar(p), 1, &host, &port, msg, sizeof msg);
  if (rc == SB_ENOMEM)
    return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
  if (rc != 0) return cfg_fail_at(p, cfg_ev_line(p), path, rc, "%s", msg);
  if (!cfg_is_static_default(p->cfg->listen_host)) sb_free(p->cfg->listen_host);
  p->cfg->listen_host = host;
  p->cfg->listen_port = port;
  return 0;
}

/* An origin as browsers send it: scheme://host[:port], nothing after. */
static int origin_valid(const char *s, size_t len) {
  const char *rest;
  if (strlen(s) != len) return 0;
  if (strncasecmp(s, "http://", 7) == 0)
    rest = s + 7;
  else if (strncasecmp(s, "https://", 8) == 0)
    rest = s + 8;
  else
    return 0;
  if (!*rest) return 0;
  for (const char *c = rest; *c; c++) {
    unsigned char ch = (unsigned char)*c;
    if (ch <= 0x20 || ch == 0x7f || ch == '/' || ch == '?' || ch == '#' ||
        ch == '@' || ch == '\\' || ch == '"' || ch == ',' || ch == '{' ||
        ch == '}')
      return 0;
  }
  return 1;
}

/* Replace the origin list with items (taken). */
static void set_origins(sb_config *cfg, char **items, size_t n) {
  for (size_t i = 0; i < cfg->allowed_origins_len; i++)
    sb_free(cfg->allowed_origins[i]);
  sb_free(cfg->allowed_origins);
  cfg->allowed_origins = items;
  cfg->allowed_origins_len = n;
}

static int parse_origins(parse_ctx *p, const char *path) {
  char got[96], item_path[192];
  char **items = NULL;
  size_t n = 0, cap = 0;
  int rc;
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (cfg_ev_is_null(p)) { /* "allowed_origins:" = empty list */
    set_origins(p->cfg, NULL, 0);
    return 0;
  }
  if (p->ev.type != YAML_SEQUENCE_START_EVENT) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                   "expected a list of origins (e.g. [http://localhost:3000]), "
                   "got %s",
                   got);
  }
  /* Collect into a new array, then replace the old list in one step: a list
   * in the file replaces the default, it does not extend it. */
  for (;;) {
    if ((rc = cfg_next_event(p)) != 0) goto fail_items;
    if (p->ev.type == YAML_SEQUENCE_END_EVENT) break;
    snprintf(item_path, sizeof item_path, "%s[%zu]", path, n);
    if (p->ev.type == YAML_ALIAS_EVENT) {
      rc = cfg_fail_alias(p, item_path);
      goto fail_items;
    }
    if (p->ev.type != YAML_SCALAR_EVENT ||
        !origin_valid(cfg_ev_scalar(p), p->ev.data.scalar.length)) {
      cfg_describe_event(p, got, sizeof got);
      rc = cfg_fail_at(p, cfg_ev_line(p), item_path, SB_EINVAL,
                   "expected an origin like http://localhost:3000 "
                   "(scheme://host[:port], no path), got %s",
                   got);
      goto fail_items;
    }
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 4;
      char **grown = sb_realloc(items, ncap * sizeof *items);
      if (!grown) goto oom_items;
      items = grown;
      cap = ncap;
    }
    items[n] = sb_strdup(cfg_ev_scalar(p));
    if (!items[n]) goto oom_items;
    /* Browsers send scheme and host in lowercase and the HTTP transport
     * compares exactly, so "http://LocalHost:3000" must still match. */
    for (char *c = items[n]; *c; c++)
      if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    n++;
  }
  set_origins(p->cfg, items, n);
  return 0;

oom_items:
  rc = sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
fail_items:
  for (size_t i = 0; i < n; i++)
    sb_free(items[i]);
  sb_free(items);
  return rc;
}

static int parse_string_field(parse_ctx *p, const key_spec *k,
                              const char *path) {
  char *v = NULL;
  int rc = cfg_scalar_string(p, path,
                         k->kind == KEY_TENANT
                             ? "a tenant id (1-64 of A-Z a-z 0-9 . _ -)"
                             : "a file path",
                         &v);
  if (rc != 0) return rc;
  if (k->kind == KEY_TENANT && !sb_config_tenant_id_valid(v)) {
    char got[96];
    cfg_describe_event(p, got, sizeof got);
    sb_free(v);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                   "expected a tenant id (1-64 of A-Z a-z 0-9 . _ -), got %s",
                   got);
  }
  char **field = (char **)(void *)((char *)p->cfg + k->offset);
  if (!cfg_is_static_default(*field)) sb_free(*field);
  *field = v;
  return 0;
}

/* agents and servers: lists of mappings kept as JSON (registry/ and app/
 * give them meaning), each item with its line for error messages. */
static int parse_json_list(parse_ctx *p, const char *path, const char *what,
                           json_t **out_list, size_t **out_lines) {
  char got[96], item[192];
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  json_t *list = json_array();
  size_t *lines = NULL, n = 0;
  int rc = 0;
  if (!list) return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
  if (!cfg_ev_is_null(p)) {
    if (p->ev.type != YAML_SEQUENCE_START_EVENT) {
      cfg_describe_event(p, got, sizeof got);
      json_decref(list);
      return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                         "expected a list of %ss, got %s", what, got);
    }
    for (;;) {
      if ((rc = cfg_next_event(p)) != 0) goto fail;
      if (p->ev.type == YAML_SEQUENCE_END_EVENT) break;
      snprintf(item, sizeof item, "%s[%zu]", path, n);
      size_t line = cfg_ev_line(p);
      if (p->ev.type != YAML_MAPPING_START_EVENT) {
        cfg_describe_event(p, got, sizeof got);
        rc = cfg_fail_at(p, line, item, SB_EINVAL,
                         "expected %s %s (a mapping), got %s",
                         what[0] == 'a' ? "an" : "a", what, got);
        goto fail;
      }
      json_t *v = NULL;
      if ((rc = cfg_parse_json(p, item, &v)) != 0) goto fail;
      size_t *grown = sb_realloc(lines, (n + 1) * sizeof *lines);
      if (!grown) {
        json_decref(v);
        rc = sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
        goto fail;
      }
      lines = grown;
      lines[n++] = line;
      json_array_append_new(list, v);
    }
  }
  json_decref(*out_list);
  sb_free(*out_lines);
  *out_list = list;
  *out_lines = lines;
  return 0;
fail:
  json_decref(list);
  sb_free(lines);
  return rc;
}

static int parse_section(parse_ctx *p, const key_spec *k, const char *path) {
  char got[96];
  if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
  if (cfg_ev_is_null(p)) return 0; /* "limits:" with nothing under it */
  if (p->ev.type != YAML_MAPPING_START_EVENT) {
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                   "expected a mapping of keys, got %s", got);
  }
  return parse_mapping(p, k->children, path);
}

static void known_keys(const key_spec *keys, char *out, size_t cap) {
  size_t o = 0;
  out[0] = '\0';
  for (const key_spec *k = keys; k->name && o < cap; k++)
    o += (size_t)snprintf(out + o, cap - o, "%s%s", k == keys ? "" : ", ",
                          k->name);
}

/* Called with the MAPPING_START event current; consumes up to MAPPING_END. */
static int parse_mapping(parse_ctx *p, const key_spec *keys, const char *path) {
  size_t first_line[MAX_SECTION_KEYS] = {0};
  /* known: every key of the largest section (limits) fits, whole. */
  char key_path[128], shown[96], known[448];
  int rc;
  for (;;) {
    if ((rc = cfg_next_event(p)) != 0) return rc;
    if (p->ev.type == YAML_MAPPING_END_EVENT) return 0;
    if (p->ev.type == YAML_ALIAS_EVENT) return cfg_fail_alias(p, path);
    if (p->ev.type != YAML_SCALAR_EVENT) {
      cfg_describe_event(p, shown, sizeof shown);
      return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL,
                     "keys must be plain names, got %s", shown);
    }
    const char *name = cfg_ev_scalar(p);
    size_t line = cfg_ev_line(p);
    const key_spec *k = keys;
    size_t idx = 0;
    if (strlen(name) == p->ev.data.scalar.length)
      for (; k->name && strcmp(k->name, name) != 0; k++)
        idx++;
    else
      for (; k->name; k++)
        idx++; /* a NUL inside a key never matches */
    if (!k->name) {
      quote_value(shown, sizeof shown, name, p->ev.data.scalar.length);
      /* Show the key bare when it is printable, quoted otherwise. */
      size_t shown_len = strlen(shown);
      int plain = shown_len == p->ev.data.scalar.length + 2 &&
                  p->ev.data.scalar.length > 0 && !strchr(name, '"');
      if (plain) {
        memmove(shown, shown + 1, shown_len - 2);
        shown[shown_len - 2] = '\0';
      }
      snprintf(key_path, sizeof key_path, "%s%s%s", path, *path ? "." : "",
               shown);
      known_keys(keys, known, sizeof known);
      return cfg_fail_at(p, line, key_path, SB_EINVAL, "unknown key (known: %s)",
                     known);
    }
    snprintf(key_path, sizeof key_path, "%s%s%s", path, *path ? "." : "",
             k->name);
    if (first_line[idx])
      return cfg_fail_at(p, line, key_path, SB_EINVAL,
                     "duplicate key (first set on line %zu)", first_line[idx]);
    first_line[idx] = line;
    if ((rc = cfg_next_event(p)) != 0) return rc;
    switch (k->kind) {
    case KEY_SECTION: rc = parse_section(p, k, key_path); break;
    case KEY_OAUTH:
      rc = parse_section(p, k, key_path);
      if (rc == 0) rc = cfg_check_oauth(p, line, key_path);
      break;
    case KEY_CLAIM:
    case KEY_URLS:
    case KEY_SCOPES: rc = cfg_parse_oauth_value(p, k, key_path); break;
    case KEY_INT:
    case KEY_SIZE:
    case KEY_LONG: rc = parse_number(p, k, key_path); break;
    case KEY_LISTEN: rc = parse_listen_value(p, key_path); break;
    case KEY_ORIGINS: rc = parse_origins(p, key_path); break;
    case KEY_LOG_LEVEL: rc = parse_log_level(p, key_path); break;
    case KEY_LOG_FORMAT: rc = parse_log_format(p, key_path); break;
    case KEY_STORE_CHECK: rc = parse_store_check(p, key_path); break;
    case KEY_PATH:
    case KEY_TENANT: rc = parse_string_field(p, k, key_path); break;
    case KEY_TENANTS: rc = cfg_parse_tenants(p, key_path); break;
    case KEY_AGENTS:
      p->cfg->agents_given = 1;
      rc = parse_json_list(p, key_path, "agent definition", &p->cfg->agents,
                           &p->cfg->agent_lines);
      break;
    case KEY_SERVERS:
      rc = parse_json_list(p, key_path, "virtual server", &p->cfg->servers,
                           &p->cfg->server_lines);
      break;
    case KEY_ADMINS: rc = cfg_parse_admins(p, key_path); break;
    case KEY_WORKFLOWS: rc = cfg_parse_workflows(p, key_path); break;
    case KEY_URL:
    case KEY_ENV_NAME: rc = cfg_parse_llm_string(p, k, key_path); break;
    case KEY_TLS: rc = cfg_parse_tls(p, k, key_path); break;
    case KEY_QUOTA_TENANTS: rc = cfg_parse_quota_tenants(p, key_path); break;
    }
    if (rc != 0) return rc;
  }
}

static int parse_stream(parse_ctx *p) {
  char got[96];
  int rc;
  if ((rc = cfg_next_event(p)) != 0) return rc; /* STREAM_START */
  if ((rc = cfg_next_event(p)) != 0) return rc;
  p->cfg->empty_file = 1;
  if (p->ev.type == YAML_STREAM_END_EVENT) return 0; /* empty or comments */
  /* DOCUMENT_START, then the root node */
  if ((rc = cfg_next_event(p)) != 0) return rc;
  if (p->ev.type == YAML_MAPPING_START_EVENT) {
    p->cfg->empty_file = 0;
    if ((rc = parse_mapping(p, cfg_top_keys, "")) != 0) return rc;
  } else if (!cfg_ev_is_null(p)) {
    char known[448];
    known_keys(cfg_top_keys, known, sizeof known);
    cfg_describe_event(p, got, sizeof got);
    return cfg_fail_at(p, cfg_ev_line(p), NULL, SB_EINVAL,
                       "the top level must be a mapping of sections (%s); "
                       "got %s",
                       known, got);
  }
  if ((rc = cfg_next_event(p)) != 0) return rc; /* DOCUMENT_END */
  if ((rc = cfg_next_event(p)) != 0) return rc;
  if (p->ev.type != YAML_STREAM_END_EVENT)
    return cfg_fail_at(p, cfg_ev_line(p), NULL, SB_EINVAL,
                   "a second YAML document; the config must be one document");
  return 0;
}

/* Load from a string; `dir` is the directory workflow files are relative
 * to. */
static int load_string_in(sb_config *cfg, const char *yaml, size_t len,
                          const char *name, const char *dir, sb_error *err) {
  parse_ctx p;
  sb_config tmp;
  int rc;
  memset(&p, 0, sizeof p);
  if (!name) name = "<config>";
  if (len > SB_CONFIG_MAX_FILE_BYTES)
    return sb_error_set(err, SB_ETOOBIG,
                        "%s: the config is %zu bytes, more than the %d byte "
                        "(1 MiB) limit",
                        name, len, SB_CONFIG_MAX_FILE_BYTES);
  if (config_clone(&tmp, cfg) != 0)
    return sb_error_set(err, SB_ENOMEM, "%s: out of memory", name);
  if (!yaml_parser_initialize(&p.parser)) {
    release_owned(&tmp);
    return sb_error_set(err, SB_ENOMEM, "%s: out of memory", name);
  }
  yaml_parser_set_input_string(
      &p.parser, (const unsigned char *)(yaml ? yaml : ""), yaml ? len : 0);
  p.name = name;
  p.input = yaml ? yaml : "";
  p.input_len = yaml ? len : 0;
  p.cfg = &tmp;
  p.err = err;
  rc = parse_stream(&p);
  if (p.have_ev) yaml_event_delete(&p.ev);
  yaml_parser_delete(&p.parser);
  sb_buf_free(&p.ptr);
  if (rc == 0) {
    sb_free(tmp.config_file);
    sb_free(tmp.config_dir);
    tmp.config_file = sb_strdup(name);
    tmp.config_dir = sb_strdup(dir);
    if (!tmp.config_file || !tmp.config_dir)
      rc = sb_error_set(err, SB_ENOMEM, "%s: out of memory", name);
  }
  if (rc != 0) {
    release_owned(&tmp);
    return rc;
  }
  release_owned(cfg);
  *cfg = tmp;
  return 0;
}

int sb_config_load_string(sb_config *cfg, const char *yaml, size_t len,
                          const char *name, sb_error *err) {
  return load_string_in(cfg, yaml, len, name, ".", err);
}

int sb_config_load(sb_config *cfg, const char *path, sb_error *err) {
  char *data = NULL, *dir = NULL;
  size_t len = 0;
  if (!path) return sb_error_set(err, SB_EINVAL, "config: missing file name");
  int rc = cfg_read_file(path, "a config file", &data, &len, err);
  if (rc != 0) return rc;
  /* Workflow files are named relative to the config file's directory. */
  const char *slash = strrchr(path, '/');
  dir = slash ? sb_strndup(path, slash == path ? 1 : (size_t)(slash - path))
              : sb_strdup(".");
  if (!dir)
    rc = sb_error_set(err, SB_ENOMEM, "%s: out of memory", path);
  else
    rc = load_string_in(cfg, data, len, path, dir, err);
  sb_free(dir);
  sb_free(data);
  return rc;
}
