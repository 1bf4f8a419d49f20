/* config: switchboard's YAML configuration file.
 *
 * sb_config_defaults fills every field; sb_config_load overlays a file.
 * Unknown keys, wrong types and out-of-range values are errors naming the
 * key path and its line, e.g. "config.yaml:7: limits.page_size: expected an
 * integer between 1 and 1000, got \"many\"".
 *
 * The file looks like (every key optional; ranges are inclusive):
 *
 *   server:
 *     listen: 127.0.0.1:8080        # host:port for Streamable HTTP; host is
 *                                   # an IPv4 literal, [IPv6] or localhost
 *                                   # (stored as 127.0.0.1), port 1..65535
 *                                   # (0 = free port: --listen only)
 *     allowed_origins: [http://localhost:3000]  # scheme://host[:port],
 *                                   # stored lowercased
 *     log_level: info               # debug|info|notice|warning|error
 *     log_format: text              # text|json (one JSON object a line)
 *     shutdown_grace_ms: 0          # SIGTERM/SIGINT: stop taking requests,
 *                                   # let those under way finish within it
 *                                   # (0 = stop at once), 0..600000
 *     tls:                          # HTTPS on the listener (both keys,
 *       cert_file: tls/cert.pem     # PEM; re-read on SIGHUP; relative
 *       key_file: tls/key.pem       # to the working directory)
 *   limits:
 *     max_message_bytes: 4194304    # one JSON-RPC message / HTTP body;
 *                                   # 1024..268435456
 *     max_json_depth: 64            # 8..2048
 *     max_connections: 10000        # 1..1000000
 *     connection_memory_bytes: 14336  # 4096..16777216
 *     connection_timeout_s: 300     # idle HTTP connections are closed;
 *                                   # 1..86400
 *     header_timeout_s: 10          # a connection holding no request
 *                                   # (new or idle) must send complete
 *                                   # request headers within; 1..3600
 *     body_timeout_s: 60            # a request body must be in within
 *                                   # this after its headers; 1..86400
 *     send_timeout_s: 60            # a plain (not SSE) answer must be
 *                                   # taken by its client within this
 *                                   # after it is queued; 1..86400
 *     max_connections_per_address: 1000  # 0 = no cap; 0..1000000
 *     connection_reserve: 1000      # places of max_connections kept for
 *                                   # authenticated callers; 0..1000000
 *     max_stream_buffer_bytes: 8388608  # SSE output kept for a client
 *                                   # that is not reading; past it the
 *                                   # connection is closed; 4096..2^30
 *     page_size: 50                 # items per list page; 1..1000
 *     max_tool_name: 64             # longest agentId__tool name served;
 *                                   # longer ones are shortened; 16..1024
 *     agent_busy_poll_us: 0         # wait for a stdio agent's answer
 *                                   # polling without sleeping, up to
 *                                   # this long when idle; 0 = off; 0..1000
 *     agent_health_interval_ms: 15000  # each connected agent is pinged
 *                                   # this often; 100..86400000
 *     agent_health_timeout_ms: 5000 # a ping unanswered this long marks
 *                                   # the agent unhealthy; 100..600000
 *     max_listen_uris: 1000         # resourceSubscriptions in one
 *                                   # subscriptions/listen; 1..100000
 *     max_listen_streams_per_tenant: 100  # listen streams open at once
 *                                   # per tenant; 1..100000
 *     max_runs: 10000               # workflow runs in progress at once;
 *                                   # past it a new run is refused (503,
 *                                   # -31050); 1..1000000
 *     max_runs_per_tenant: 1000     # the same per tenant; 1..1000000
 *   sessions:
 *     idle_timeout_s: 1800          # legacy HTTP sessions expire; 1..604800
 *     replay_events: 256            # SSE events kept for Last-Event-ID;
 *                                   # 0..100000 (0 = no resumption)
 *     max: 10000                    # legacy sessions open at once; past
 *                                   # it initialize is a 503; 1..1000000
 *     max_per_tenant: 1000          # the same per tenant; 1..1000000
 *   quotas:                         # per authenticated tenant; 0 = none
 *     requests_per_second: 0        # token bucket refill; 0..1000000
 *     burst: 0                      # bucket size; 0 = requests_per_second
 *     max_concurrent_calls: 0       # calls in flight; 0..1000000
 *     tenants:                      # overrides; a missing key inherits
 *       dealer-a: {requests_per_second: 50, max_concurrent_calls: 8}
 *   cache:
 *     ttl_ms: 60000                 # ttlMs on cacheable results; 0..86400000
 *   events:
 *     retention_s: 604800           # the event log keeps events this long;
 *                                   # 60..315360000
 *   llm:                            # an OpenAI-compatible endpoint that
 *                                   # answers an agent's sampling request
 *                                   # with the agent's models when the
 *                                   # caller cannot; absent = off
 *     base_url: http://127.0.0.1:11434/v1  # http(s); POSTs go to
 *                                   # {base_url}/chat/completions
 *     api_key_env: OPENAI_API_KEY   # the variable holding the key (sent
 *                                   # as a bearer token); a name of
 *                                   # [A-Za-z_][A-Za-z0-9_]*
 *     timeout_ms: 30000             # each model's attempt; 1..600000
 *                                   # SWITCHBOARD_LLM_BASE_URL and
 *                                   # SWITCHBOARD_LLM_API_KEY override
 *   auth:
 *     oauth:                        # OAuth 2.1 bearer JWTs (auth/auth.h);
 *                                   # issuer, resource, jwks_file required
 *       issuer: https://login.example.com   # `iss` must equal it
 *       resource: https://mcp.example.com/mcp  # this server's resource
 *                                   # URI: `aud` must name it
 *       jwks_file: jwks.json        # public keys; relative to the config
 *                                   # file's directory; re-read on SIGHUP
 *       authorization_servers: [https://login.example.com]  # in the
 *                                   # protected-resource metadata
 *       scopes_supported: [contexts:read]  # likewise
 *       leeway_s: 60                # clock skew on exp and nbf; 0..600
 *       tenant_claim: tenant        # the claim naming the tenant
 *       scope_claim: scope          # default: scope, else scp
 *   workflows:                      # workflow definitions (flow/flow.h):
 *     - workflows/                  # a directory: its *.yaml and *.yml
 *     - extra/lead.yaml             # one file (one workflow per file)
 *     - name: ping                  # or a definition written inline
 *       steps: [ { id: done, end: completed } ]
 *                                   # names are relative to the config
 *                                   # file's directory; flow/ reads and
 *                                   # validates them, config/ only checks
 *                                   # each item is a mapping or a name
 *
 * Files larger than 1 MiB, YAML aliases and multiple documents are refused.
 * A load either applies the whole file or leaves cfg unchanged.
 */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <jansson.h>
#include <stddef.h>

#include "core/core.h"

typedef struct sb_config {
  /* server */
  char *listen_host; /* "127.0.0.1" by default */
  int listen_port;   /* 0 = not configured */
  char **allowed_origins;
  size_t allowed_origins_len;
  int log_level;  /* sb_log_level */
  int log_format; /* sb_log_format */
  int shutdown_grace_ms; /* SIGTERM: requests under way may finish */
  /* limits */
  size_t max_message_bytes;
  int max_json_depth;
  int max_connections;
  size_t connection_memory_bytes;
  int connection_timeout_s;
  int header_timeout_s;            /* a request's headers are due within this */
  int body_timeout_s;              /* ...and its body within this after them */
  int send_timeout_s;              /* a plain answer is taken within this */
  int max_connections_per_address; /* 0 = no cap */
  int connection_reserve;          /* places kept for authenticated callers */
  size_t max_stream_buffer_bytes;  /* unread SSE output before closing */
  int page_size;
  int max_tool_name; /* agentId__tool names longer are shortened */
  int agent_busy_poll_us;            /* sb_gateway_options.agent_busy_poll_us */
  long agent_health_interval_ms;     /* sb_gateway_options.health_every_ms */
  long agent_health_timeout_ms;      /* sb_gateway_options.health_timeout_ms */
  int max_listen_uris;               /* URIs in one subscriptions/listen */
  int max_listen_streams_per_tenant; /* listen streams open per tenant */
  int max_runs;            /* sb_flow_engine_options.max_runs */
  int max_runs_per_tenant; /* sb_flow_engine_options.max_runs_per_tenant */
  /* sessions */
  int session_idle_timeout_s;
  int replay_events;
  int max_sessions;            /* legacy HTTP sessions open at once */
  int max_sessions_per_tenant; /* ...and per tenant */
  /* cache */
  long cache_ttl_ms;
  /* store */
  char *store_path;
  int store_max_pending; /* operations in flight before "store busy" */
  int store_readers;     /* reader threads */
  /* How often a server takes over the runs of processes on the store
   * that ended (sb_flow_engine_options.takeover_every_ms). */
  int store_takeover_interval_ms;
  /* store.check_on_start: when PRAGMA quick_check runs at open, as
   * sb_store_check's values (0 auto, 1 always, 2 never) */
  int store_check_on_start;
  /* contexts */
  long ctx_default_ttl_s;
  int ctx_snapshot_every;
  size_t ctx_max_bytes; /* sb_ctx_manager_options.max_doc_bytes */
  int ctx_sweep_interval_s;
  /* sb_ctx_manager_options.head_cache_bytes; 0 = no head cache */
  size_t ctx_head_cache_bytes;
  /* events */
  long events_retention_s; /* events older are trimmed */
  size_t events_max_data_bytes; /* a published or emitted event's data */
  /* auth */
  char *default_tenant;
  struct sb_config_tenant *tenants;
  size_t tenants_len;
  char **admin_tenants; /* may register/remove agents */
  size_t admin_tenants_len;
  /* server.tls: PEM files; both NULL = plain HTTP */
  char *tls_cert_file;
  char *tls_key_file;
  /* quotas (0 = no limit); per-tenant overrides in quota_tenants */
  int quota_rate_per_s;     /* quotas.requests_per_second */
  int quota_burst;          /* quotas.burst; 0 = the rate */
  int quota_max_concurrent; /* quotas.max_concurrent_calls */
  struct sb_config_quota *quota_tenants;
  size_t quota_tenants_len;
  /* auth.oauth: off while oauth_issuer is NULL */
  char *oauth_issuer;
  char *oauth_resource;
  char *oauth_jwks_file;
  char **oauth_authorization_servers;
  size_t oauth_authorization_servers_len;
  char **oauth_scopes_supported;
  size_t oauth_scopes_supported_len;
  int oauth_leeway_s;
  char *oauth_tenant_claim; /* NULL: "tenant" */
  char *oauth_scope_claim;  /* NULL: "scope", else "scp" */
  /* llm (see sb_config_llm_endpoint) */
  char *llm_base_url;    /* NULL: not configured */
  char *llm_api_key_env; /* NULL: OPENAI_API_KEY */
  long llm_timeout_ms;   /* each model's attempt */
  /* agents: the list as JSON (AgentDefinitions; registry/ validates them),
   * with the file line of each item for error messages. */
  json_t *agents;
  size_t *agent_lines;
  /* servers: virtual servers (app/ validates them), lines likewise. */
  json_t *servers;
  size_t *server_lines;
  /* workflows: the list as JSON (flow/ validates it), and the line of
   * every node of it: an object from JSON Pointers relative to the list
   * ("/0/steps/2/id") to 1-based lines. NULL when the file has none. */
  json_t *workflows;
  json_t *workflow_lines;
  /* The file last loaded (its name as given, or load_string's name) and
   * its directory (load_string: "."), which workflow files are relative
   * to. NULL before any load. */
  char *config_file;
  char *config_dir;
  /* The file last loaded held no document, or a null one: all defaults.
   * A reload refuses it (a file cut off mid-write would remove every
   * agent). */
  int empty_file;
  /* The file has an `agents:` key (agents: [] included). A reload of a
   * file without one, while config agents run, is refused likewise. */
  int agents_given;
} sb_config;

/* A tenant and the bearer token its callers present. */
typedef struct sb_config_tenant {
  char *id;
  char *token;
} sb_config_tenant;

/* quotas.tenants.<id>: a tenant's own limits; -1 = the global value. */
typedef struct sb_config_quota {
  char *tenant;
  int rate_per_s;
  int burst;
  int max_concurrent;
} sb_config_quota;

/* The tenant whose token this is (constant-time compare), or NULL. With no
 * tenants configured every caller is the default tenant. */
const char *sb_config_tenant_for_token(const sb_config *cfg, const char *token);

/* 1 if tenant may administer switchboard (register and remove agents):
 * it is listed in auth.admin_tenants, or neither auth.tenants nor
 * auth.admin_tenants is configured (a single-tenant, local setup). */
int sb_config_is_admin(const sb_config *cfg, const char *tenant);
/* 1 if a and b name the same tenants and tokens (auth.tenants, in order),
 * administrators and default tenant: what a reload does not apply. */
int sb_config_auth_equal(const sb_config *a, const sb_config *b);

/* 1 if s is a valid tenant id: 1-64 of [A-Za-z0-9._-]. */
int sb_config_tenant_id_valid(const char *s);

/* Fill every field with its default. */
void sb_config_defaults(sb_config *cfg);
/* Overlay the YAML file at path onto cfg (call sb_config_defaults first).
 * Returns 0 or a negative SB_E* code with err naming file, line and key. */
int sb_config_load(sb_config *cfg, const char *path, sb_error *err);
/* Same, from a string; `name` is used in error messages. */
int sb_config_load_string(sb_config *cfg, const char *yaml, size_t len,
                          const char *name, sb_error *err);
/* Read one YAML document as JSON, with the config file's rules: at most
 * 1 MiB, no aliases, one document, core-schema scalars (plain true,
 * false, null, integers and floats; quoted values are strings). *out is a
 * new reference (JSON null for an empty document). *lines (optional, a
 * new object) maps the RFC 6901 JSON Pointer of every node ("" for the
 * root, "/steps/3/call/tool") to its 1-based line. Errors name `name`
 * (or the path), the line and the node: "lead.yaml:7: steps[0].id:
 * duplicate key". */
int sb_config_read_yaml(const char *yaml, size_t len, const char *name,
                        json_t **out, json_t **lines, sb_error *err);
int sb_config_read_yaml_file(const char *path, json_t **out, json_t **lines,
                             sb_error *err);
/* Parse "host:port" into cfg's listen fields. */
int sb_config_set_listen(sb_config *cfg, const char *hostport, sb_error *err);
/* A file the config names relative to its directory (auth.oauth's
 * jwks_file): `path` joined to cfg->config_dir unless absolute or no file
 * was loaded. A new string; NULL when out of memory. */
char *sb_config_path(const sb_config *cfg, const char *path);
/* Command-line overrides: store.path and auth.default_tenant. */
int sb_config_set_store_path(sb_config *cfg, const char *path, sb_error *err);
int sb_config_set_default_tenant(sb_config *cfg, const char *tenant,
                                 sb_error *err);
/* The LLM endpoint to use: SWITCHBOARD_LLM_BASE_URL, else llm.base_url
 * (NULL: none, the feature is off); the key from SWITCHBOARD_LLM_API_KEY,
 * else from the variable llm.api_key_env names (NULL: none); the
 * per-attempt timeout. Strings are borrowed from cfg or the environment. */
typedef struct sb_config_llm {
  const char *base_url;
  const char *api_key;
  long timeout_ms;
} sb_config_llm;
void sb_config_llm_endpoint(const sb_config *cfg, sb_config_llm *out);

/* Release what the config owns (not cfg itself). */
void sb_config_free(sb_config *cfg);

#endif
