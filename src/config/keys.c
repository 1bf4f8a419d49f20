/* keys.c: the config file's schema — every section and key, its kind,
 * the sb_config field it fills and its range. config.c walks it. */
#include <stddef.h>

#include "config/config_internal.h"


static const key_spec tls_keys[] = {
    NUM("cert_file", KEY_PATH, tls_cert_file, 0, 0),
    NUM("key_file", KEY_PATH, tls_key_file, 0, 0),
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec server_keys[] = {
    {"listen", KEY_LISTEN, 0, 0, 0, NULL},
    {"allowed_origins", KEY_ORIGINS, 0, 0, 0, NULL},
    {"log_level", KEY_LOG_LEVEL, 0, 0, 0, NULL},
    {"log_format", KEY_LOG_FORMAT, 0, 0, 0, NULL},
    NUM("shutdown_grace_ms", KEY_INT, shutdown_grace_ms, 0, 600000),
    {"tls", KEY_TLS, 0, 0, 0, tls_keys},
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec quotas_keys[] = {
    NUM("requests_per_second", KEY_INT, quota_rate_per_s, 0, 1000000),
    NUM("burst", KEY_INT, quota_burst, 0, 1000000),
    NUM("max_concurrent_calls", KEY_INT, quota_max_concurrent, 0, 1000000),
    {"tenants", KEY_QUOTA_TENANTS, 0, 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec limits_keys[] = {
    NUM("max_message_bytes", KEY_SIZE, max_message_bytes, 1024, 268435456),
    NUM("max_json_depth", KEY_INT, max_json_depth, 8, 2048),
    NUM("max_connections", KEY_INT, max_connections, 1, 1000000),
    NUM("connection_memory_bytes", KEY_SIZE, connection_memory_bytes, 4096,
        16777216),
    NUM("connection_timeout_s", KEY_INT, connection_timeout_s, 1, 86400),
    NUM("header_timeout_s", KEY_INT, header_timeout_s, 1, 3600),
    NUM("body_timeout_s", KEY_INT, body_timeout_s, 1, 86400),
    NUM("send_timeout_s", KEY_INT, send_timeout_s, 1, 86400),
    NUM("max_connections_per_address", KEY_INT, max_connections_per_address, 0,
        1000000),
    NUM("connection_reserve", KEY_INT, connection_reserve, 0, 1000000),
    NUM("max_stream_buffer_bytes", KEY_SIZE, max_stream_buffer_bytes, 4096,
        1073741824),
    NUM("page_size", KEY_INT, page_size, 1, 1000),
    /* The low end leaves room for a cut name and its hash (gateway/names.c). */
    NUM("max_tool_name", KEY_INT, max_tool_name, 16, 1024),
    NUM("agent_busy_poll_us", KEY_INT, agent_busy_poll_us, 0, 1000),
    NUM("agent_health_interval_ms", KEY_LONG, agent_health_interval_ms, 100,
        86400000),
    NUM("agent_health_timeout_ms", KEY_LONG, agent_health_timeout_ms, 100,
        600000),
    NUM("max_listen_uris", KEY_INT, max_listen_uris, 1, 100000),
    NUM("max_listen_streams_per_tenant", KEY_INT, max_listen_streams_per_tenant,
        1, 100000),
    NUM("max_runs", KEY_INT, max_runs, 1, 1000000),
    NUM("max_runs_per_tenant", KEY_INT, max_runs_per_tenant, 1, 1000000),
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec sessions_keys[] = {
    NUM("idle_timeout_s", KEY_INT, session_idle_timeout_s, 1, 604800),
    NUM("replay_events", KEY_INT, replay_events, 0, 100000),
    NUM("max", KEY_INT, max_sessions, 1, 1000000),
    NUM("max_per_tenant", KEY_INT, max_sessions_per_tenant, 1, 1000000),
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec cache_keys[] = {
    NUM("ttl_ms", KEY_LONG, cache_ttl_ms, 0, 86400000),
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec store_keys[] = {
    NUM("path", KEY_PATH, store_path, 0, 0),
    NUM("max_pending", KEY_INT, store_max_pending, 1, 1000000),
    NUM("readers", KEY_INT, store_readers, 1, 16),
    NUM("takeover_interval_ms", KEY_INT, store_takeover_interval_ms, 100,
        86400000),
    {"check_on_start", KEY_STORE_CHECK, 0, 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec contexts_keys[] = {
    NUM("default_ttl_s", KEY_LONG, ctx_default_ttl_s, 1, 31536000),
    NUM("snapshot_every", KEY_INT, ctx_snapshot_every, 1, 10000),
    NUM("max_bytes", KEY_SIZE, ctx_max_bytes, 1024, 268435456),
    NUM("sweep_interval_s", KEY_INT, ctx_sweep_interval_s, 1, 86400),
    NUM("head_cache_bytes", KEY_SIZE, ctx_head_cache_bytes, 0, 1099511627776LL),
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec events_keys[] = {
    NUM("retention_s", KEY_LONG, events_retention_s, 60, 315360000),
    NUM("max_data_bytes", KEY_SIZE, events_max_data_bytes, 1024, 16777216),
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec oauth_keys[] = {
    NUM("issuer", KEY_URL, oauth_issuer, 0, 0),
    NUM("resource", KEY_URL, oauth_resource, 0, 0),
    NUM("jwks_file", KEY_PATH, oauth_jwks_file, 0, 0),
    {"authorization_servers", KEY_URLS, 0, 0, 0, NULL},
    {"scopes_supported", KEY_SCOPES, 0, 0, 0, NULL},
    NUM("leeway_s", KEY_INT, oauth_leeway_s, 0, 600),
    NUM("tenant_claim", KEY_CLAIM, oauth_tenant_claim, 0, 0),
    NUM("scope_claim", KEY_CLAIM, oauth_scope_claim, 0, 0),
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec auth_keys[] = {
    NUM("default_tenant", KEY_TENANT, default_tenant, 0, 0),
    {"oauth", KEY_OAUTH, 0, 0, 0, oauth_keys},
    {"tenants", KEY_TENANTS, 0, 0, 0, NULL},
    {"admin_tenants", KEY_ADMINS, 0, 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

static const key_spec llm_keys[] = {
    NUM("base_url", KEY_URL, llm_base_url, 0, 0),
    NUM("api_key_env", KEY_ENV_NAME, llm_api_key_env, 0, 0),
    NUM("timeout_ms", KEY_LONG, llm_timeout_ms, 1, 600000),
    {NULL, 0, 0, 0, 0, NULL},
};

const key_spec cfg_top_keys[] = {
    {"server", KEY_SECTION, 0, 0, 0, server_keys},
    {"limits", KEY_SECTION, 0, 0, 0, limits_keys},
    {"sessions", KEY_SECTION, 0, 0, 0, sessions_keys},
    {"cache", KEY_SECTION, 0, 0, 0, cache_keys},
    {"store", KEY_SECTION, 0, 0, 0, store_keys},
    {"contexts", KEY_SECTION, 0, 0, 0, contexts_keys},
    {"events", KEY_SECTION, 0, 0, 0, events_keys},
    {"auth", KEY_SECTION, 0, 0, 0, auth_keys},
    {"llm", KEY_SECTION, 0, 0, 0, llm_keys},
    {"quotas", KEY_SECTION, 0, 0, 0, quotas_keys},
    {"agents", KEY_AGENTS, 0, 0, 0, NULL},
    {"servers", KEY_SERVERS, 0, 0, 0, NULL},
    {"workflows", KEY_WORKFLOWS, 0, 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

#define FITS(table)                                                            \
  _Static_assert(sizeof table / sizeof table[0] - 1 <= MAX_SECTION_KEYS,       \
                 "MAX_SECTION_KEYS is smaller than " #table)
FITS(cfg_top_keys);
FITS(server_keys);
FITS(limits_keys);
FITS(sessions_keys);
FITS(cache_keys);
FITS(store_keys);
FITS(contexts_keys);
FITS(auth_keys);
FITS(oauth_keys);
FITS(events_keys);
FITS(llm_keys);
FITS(tls_keys);
FITS(quotas_keys);

