/* test_config.c: the YAML config loader and sb_config_set_listen.
 *
 * Error tests assert the whole message, because the file:line: key.path
 * prefix is the contract users (and the CLI tests) rely on.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/core.h"

/* Load a YAML string named "config.yaml" onto fresh defaults. */
static int load(sb_config *cfg, const char *yaml, sb_error *err) {
  sb_config_defaults(cfg);
  memset(err, 0, sizeof *err);
  return sb_config_load_string(cfg, yaml, strlen(yaml), "config.yaml", err);
}

/* Expect the load to fail with exactly `msg`, and leave defaults intact. */
static void expect_error(const char *yaml, const char *msg) {
  sb_config cfg;
  sb_error err;
  int rc = load(&cfg, yaml, &err);
  assert_int_equal(rc, SB_EINVAL);
  assert_int_equal(err.code, SB_EINVAL);
  assert_string_equal(err.msg, msg);
  /* all-or-nothing: earlier valid keys in the file were not applied */
  assert_int_equal(cfg.page_size, 50);
  assert_int_equal(cfg.listen_port, 0);
  assert_string_equal(cfg.listen_host, "127.0.0.1");
  assert_int_equal(cfg.allowed_origins_len, 0);
  sb_config_free(&cfg);
}

static void test_defaults(void **state) {
  (void)state;
  sb_config cfg;
  sb_config_defaults(&cfg);
  assert_string_equal(cfg.listen_host, "127.0.0.1");
  assert_int_equal(cfg.listen_port, 0);
  assert_null(cfg.allowed_origins);
  assert_int_equal(cfg.allowed_origins_len, 0);
  assert_int_equal(cfg.log_level, SB_LOG_INFO);
  assert_int_equal(cfg.log_format, SB_LOG_TEXT);
  assert_int_equal(cfg.max_message_bytes, 4 * 1024 * 1024);
  assert_int_equal(cfg.max_json_depth, 64);
  assert_int_equal(cfg.max_connections, 10000);
  assert_int_equal(cfg.connection_memory_bytes, 14336);
  assert_int_equal(cfg.connection_timeout_s, 300);
  assert_int_equal(cfg.page_size, 50);
  assert_int_equal(cfg.max_tool_name, 64);
  assert_int_equal(cfg.agent_health_interval_ms, 15000);
  assert_int_equal(cfg.agent_health_timeout_ms, 5000);
  assert_int_equal(cfg.agent_busy_poll_us, 0); /* off */
  assert_int_equal(cfg.session_idle_timeout_s, 1800);
  assert_int_equal(cfg.replay_events, 256);
  assert_int_equal(cfg.cache_ttl_ms, 60000);
  assert_int_equal(cfg.store_takeover_interval_ms, 2000);
  assert_int_equal(cfg.store_check_on_start, 0); /* auto */
  sb_config_free(&cfg);
  sb_config_free(&cfg); /* free is idempotent */
}

static const char full_yaml[] = "# every key\n"
                                "server:\n"
                                "  listen: 0.0.0.0:8080\n"
                                "  allowed_origins:\n"
                                "    - http://localhost:3000\n"
                                "    - https://App.Example.COM\n"
                                "  log_level: debug\n"
                                "  log_format: json\n"
                                "limits:\n"
                                "  max_message_bytes: 1048576\n"
                                "  max_json_depth: 32\n"
                                "  max_connections: 500\n"
                                "  connection_memory_bytes: 65536\n"
                                "  connection_timeout_s: 60\n"
                                "  page_size: 10\n"
                                "  max_tool_name: 48\n"
                                "  agent_busy_poll_us: 50\n"
                                "  agent_health_interval_ms: 2500\n"
                                "  agent_health_timeout_ms: 700\n"
                                "  max_runs: 50\n"
                                "  max_runs_per_tenant: 5\n"
                                "sessions:\n"
                                "  idle_timeout_s: 600\n"
                                "  replay_events: 0\n"
                                "cache:\n"
                                "  ttl_ms: 1500\n"
                                "store:\n"
                                "  path: /var/lib/sb/ctx.db\n"
                                "contexts:\n"
                                "  default_ttl_s: 3600\n"
                                "  snapshot_every: 8\n"
                                "  sweep_interval_s: 5\n"
                                "  head_cache_bytes: 1048576\n"
                                "events:\n"
                                "  retention_s: 86400\n"
                                "auth:\n"
                                "  default_tenant: dealer-x\n"
                                "  tenants:\n"
                                "    - id: dealer-a\n"
                                "      token: aaaaaaaaaaaaaaaa-1\n"
                                "    - {id: dealer-b, token: bbbbbbbbbbbbbbbb-2}\n";

static void test_full_file(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err;
  assert_int_equal(load(&cfg, full_yaml, &err), 0);
  assert_string_equal(cfg.listen_host, "0.0.0.0");
  assert_int_equal(cfg.listen_port, 8080);
  assert_int_equal(cfg.allowed_origins_len, 2);
  assert_string_equal(cfg.allowed_origins[0], "http://localhost:3000");
  /* stored lowercased: browsers send it that way */
  assert_string_equal(cfg.allowed_origins[1], "https://app.example.com");
  assert_int_equal(cfg.log_level, SB_LOG_DEBUG);
  assert_int_equal(cfg.log_format, SB_LOG_JSON);
  assert_int_equal(cfg.max_message_bytes, 1048576);
  assert_int_equal(cfg.max_json_depth, 32);
  assert_int_equal(cfg.max_connections, 500);
  assert_int_equal(cfg.connection_memory_bytes, 65536);
  assert_int_equal(cfg.connection_timeout_s, 60);
  assert_int_equal(cfg.page_size, 10);
  assert_int_equal(cfg.max_tool_name, 48);
  assert_int_equal(cfg.agent_busy_poll_us, 50);
  assert_int_equal(cfg.agent_health_interval_ms, 2500);
  assert_int_equal(cfg.agent_health_timeout_ms, 700);
  assert_int_equal(cfg.max_runs, 50);
  assert_int_equal(cfg.max_runs_per_tenant, 5);
  assert_int_equal(cfg.session_idle_timeout_s, 600);
  assert_int_equal(cfg.replay_events, 0);
  assert_int_equal(cfg.cache_ttl_ms, 1500);
  assert_string_equal(cfg.store_path, "/var/lib/sb/ctx.db");
  assert_int_equal(cfg.ctx_default_ttl_s, 3600);
  assert_int_equal(cfg.ctx_snapshot_every, 8);
  assert_int_equal(cfg.ctx_sweep_interval_s, 5);
  assert_int_equal(cfg.ctx_head_cache_bytes, 1048576);
  assert_int_equal(cfg.events_retention_s, 86400);
  assert_string_equal(cfg.default_tenant, "dealer-x");
  assert_int_equal(cfg.tenants_len, 2);
  assert_string_equal(sb_config_tenant_for_token(&cfg, "bbbbbbbbbbbbbbbb-2"),
                      "dealer-b");
  assert_null(sb_config_tenant_for_token(&cfg, "bbbbbbbbbbbbbbbb-3"));
  assert_null(sb_config_tenant_for_token(&cfg, NULL));

  /* A second file overlays only what it names; its list replaces ours. */
  const char *more = "server: {allowed_origins: [http://127.0.0.1:9]}\n"
                     "limits: {page_size: 7}\n";
  assert_int_equal(
      sb_config_load_string(&cfg, more, strlen(more), "b.yaml", &err), 0);
  assert_int_equal(cfg.page_size, 7);
  assert_int_equal(cfg.max_json_depth, 32);
  assert_int_equal(cfg.listen_port, 8080);
  assert_int_equal(cfg.allowed_origins_len, 1);
  assert_string_equal(cfg.allowed_origins[0], "http://127.0.0.1:9");
  sb_config_free(&cfg);
  assert_int_equal(cfg.listen_port, 0);
  assert_null(cfg.allowed_origins);
}

static void test_empty_and_null(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err;
  const char *ok[] = {"",
                      "# only a comment\n",
                      "---\n",
                      "---\n...\n",
                      "server:\nlimits:\n",
                      "server: {}\nlimits: ~\n",
                      "server:\n  allowed_origins:\n",
                      "\n\n   \n"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    assert_int_equal(load(&cfg, ok[i], &err), 0);
    assert_int_equal(cfg.page_size, 50);
    assert_int_equal(cfg.allowed_origins_len, 0);
    sb_config_free(&cfg);
  }
  /* an empty allowed_origins clears a list set earlier */
  assert_int_equal(load(&cfg, "server: {allowed_origins: [http://a]}", &err),
                   0);
  assert_int_equal(cfg.allowed_origins_len, 1);
  assert_int_equal(sb_config_load_string(&cfg, "server: {allowed_origins: []}",
                                         29, "x", &err),
                   0);
  assert_int_equal(cfg.allowed_origins_len, 0);
  sb_config_free(&cfg);
}

static void test_value_errors(void **state) {
  (void)state;
  expect_error("server:\n  log_level: info\n\nlimits:\n  max_json_depth: 10\n"
               "\n  page_size: many\n",
               "config.yaml:7: limits.page_size: expected an integer between "
               "1 and 1000, got \"many\"");
  expect_error("limits:\n  max_tool_name: 15\n",
               "config.yaml:2: limits.max_tool_name: expected an integer "
               "between 16 and 1024, got \"15\"");
  expect_error("limits:\n  agent_busy_poll_us: 1001\n",
               "config.yaml:2: limits.agent_busy_poll_us: expected an integer "
               "between 0 and 1000, got \"1001\"");
  expect_error("limits:\n  max_tool_name: 1025\n",
               "config.yaml:2: limits.max_tool_name: expected an integer "
               "between 16 and 1024, got \"1025\"");
  expect_error("limits:\n  page_size: 1001\n",
               "config.yaml:2: limits.page_size: expected an integer between "
               "1 and 1000, got \"1001\"");
  expect_error("limits:\n  page_size: 0\n",
               "config.yaml:2: limits.page_size: expected an integer between "
               "1 and 1000, got \"0\"");
  expect_error("limits:\n  max_connections: -5\n",
               "config.yaml:2: limits.max_connections: expected an integer "
               "between 1 and 1000000, got \"-5\"");
  expect_error("limits:\n  max_message_bytes: 99999999999999999999999\n",
               "config.yaml:2: limits.max_message_bytes: expected an integer "
               "between 1024 and 268435456, got \"99999999999999999999999\"");
  expect_error("limits:\n  max_json_depth: 1.5\n",
               "config.yaml:2: limits.max_json_depth: expected an integer "
               "between 8 and 2048, got \"1.5\"");
  expect_error("store:\n  check_on_start: sometimes\n",
               "config.yaml:2: store.check_on_start: expected auto, always "
               "or never, got \"sometimes\"");
  {
    sb_config cfg;
    sb_error err;
    assert_int_equal(load(&cfg, "store:\n  check_on_start: never\n", &err), 0);
    assert_int_equal(cfg.store_check_on_start, 2);
    sb_config_free(&cfg);
  }
  expect_error("store:\n  takeover_interval_ms: 99\n",
               "config.yaml:2: store.takeover_interval_ms: expected an "
               "integer between 100 and 86400000, got \"99\"");
  expect_error("sessions:\n  idle_timeout_s:\n",
               "config.yaml:2: sessions.idle_timeout_s: expected an integer "
               "between 1 and 604800, got an empty value");
  expect_error("cache:\n  ttl_ms: [1]\n",
               "config.yaml:2: cache.ttl_ms: expected an integer between 0 "
               "and 86400000, got a list");
  expect_error("server:\n  log_format: [json]\n",
               "config.yaml:2: server.log_format: expected text or json, "
               "got a list");
  expect_error("server:\n  log_level: loud\n",
               "config.yaml:2: server.log_level: expected one of debug, info, "
               "notice, warning, error, got \"loud\"");
  expect_error("server:\n  listen: 127.0.0.1\n",
               "config.yaml:2: server.listen: expected HOST:PORT (e.g. "
               "127.0.0.1:8080), got \"127.0.0.1\"");
  expect_error("server:\n  listen: 127.0.0.1:0\n",
               "config.yaml:2: server.listen: bad port \"0\" in "
               "\"127.0.0.1:0\" (expected 1..65535)");
  expect_error("server:\n  listen: example.com:80\n",
               "config.yaml:2: server.listen: bad host \"example.com\" in "
               "\"example.com:80\" (expected an IPv4 address, [IPv6 address] "
               "or localhost)");
  expect_error("server:\n  allowed_origins:\n    - http://ok\n"
               "    - http://localhost:3000/\n",
               "config.yaml:4: server.allowed_origins[1]: expected an origin "
               "like http://localhost:3000 (scheme://host[:port], no path), "
               "got \"http://localhost:3000/\"");
  expect_error("server:\n  allowed_origins: http://localhost\n",
               "config.yaml:2: server.allowed_origins: expected a list of "
               "origins (e.g. [http://localhost:3000]), got "
               "\"http://localhost\"");
  /* long and control-character values are escaped and cut */
  expect_error("limits:\n  page_size: \"a\\tb\\\"c\"\n",
               "config.yaml:2: limits.page_size: expected an integer between "
               "1 and 1000, got \"a\\x09b\\\"c\"");
  expect_error("limits:\n  page_size: "
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxyyy"
               "\n",
               "config.yaml:2: limits.page_size: expected an integer between "
               "1 and 1000, got "
               "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx."
               "..\"");
}

static void test_structure_errors(void **state) {
  (void)state;
  expect_error("server:\n  log_level: info\n  lisen: 1.2.3.4:5\n",
               "config.yaml:3: server.lisen: unknown key (known: listen, "
               "allowed_origins, log_level, log_format, shutdown_grace_ms, "
               "tls)");
  expect_error("serverz:\n  listen: 1.2.3.4:5\n",
               "config.yaml:1: serverz: unknown key (known: server, limits, "
               "sessions, cache, store, contexts, events, auth, llm, quotas, agents, servers, "
               "workflows)");
  /* the largest section's list is whole, its last key included */
  expect_error("limits:\n  page_sise: 3\n",
               "config.yaml:2: limits.page_sise: unknown key (known: "
               "max_message_bytes, max_json_depth, max_connections, "
               "connection_memory_bytes, connection_timeout_s, "
               "header_timeout_s, body_timeout_s, send_timeout_s, "
               "max_connections_per_address, connection_reserve, max_stream_buffer_bytes, page_size, "
               "max_tool_name, agent_busy_poll_us, agent_health_interval_ms, "
               "agent_health_timeout_ms, max_listen_uris, "
               "max_listen_streams_per_tenant, max_runs, max_runs_per_tenant)");
  expect_error("servers:\n  listen: 1.2.3.4:5\n",
               "config.yaml:2: servers: expected a list of virtual servers, "
               "got a mapping");
  expect_error("servers:\n  - desk\n",
               "config.yaml:2: servers[0]: expected a virtual server (a "
               "mapping), got \"desk\"");
  expect_error("limits:\n  page_size: 5\n  ? [a]\n  : b\n",
               "config.yaml:3: limits: keys must be plain names, got a list");
  expect_error("server:\n  - listen\n",
               "config.yaml:2: server: expected a mapping of keys, got a list");
  expect_error("limits: 5\n",
               "config.yaml:1: limits: expected a mapping of keys, got \"5\"");
  expect_error("limits:\n  page_size: 5\n  max_json_depth: 9\n"
               "  page_size: 6\n",
               "config.yaml:4: limits.page_size: duplicate key (first set on "
               "line 2)");
  expect_error("limits: {page_size: 5}\nserver: {}\nlimits: {}\n",
               "config.yaml:3: limits: duplicate key (first set on line 1)");
  expect_error("- server\n- limits\n",
               "config.yaml:1: the top level must be a mapping of sections "
               "(server, limits, sessions, cache, store, contexts, events, "
               "auth, llm, quotas, agents, servers, workflows); got a list");
  expect_error("hello\n",
               "config.yaml:1: the top level must be a mapping of sections "
               "(server, limits, sessions, cache, store, contexts, events, "
               "auth, llm, quotas, agents, servers, workflows); got \"hello\"");
  expect_error("limits: {page_size: 5}\n---\nlimits: {page_size: 6}\n",
               "config.yaml:2: a second YAML document; the config must be "
               "one document");
  expect_error("limits: &l {page_size: 5}\nsessions: *l\n",
               "config.yaml:2: sessions: YAML aliases (*l) are not supported "
               "in the config");
  /* a tag would be ignored: !!str 5 was read as the number 5 */
  expect_error("limits:\n  max_json_depth: !!str 5\n",
               "config.yaml:2: YAML tags (!!str) are not supported in the "
               "config");
  expect_error("limits: !custom {max_json_depth: 5}\n",
               "config.yaml:1: YAML tags (!custom) are not supported in the "
               "config");
}

/* quotas: the global keys, per-tenant overrides (a missing key inherits:
 * -1), and errors naming file:line:key; server.tls: both files or none. */
static void test_quotas_and_tls(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err;
  assert_int_equal(load(&cfg,
                        "quotas:\n"
                        "  requests_per_second: 5\n"
                        "  burst: 10\n"
                        "  max_concurrent_calls: 3\n"
                        "  tenants:\n"
                        "    dealer-a: {requests_per_second: 50}\n"
                        "    dealer-b:\n"
                        "      max_concurrent_calls: 0\n"
                        "      burst: 7\n"
                        "server:\n"
                        "  tls:\n"
                        "    cert_file: c.pem\n"
                        "    key_file: k.pem\n",
                        &err),
                   0);
  assert_int_equal(cfg.quota_rate_per_s, 5);
  assert_int_equal(cfg.quota_burst, 10);
  assert_int_equal(cfg.quota_max_concurrent, 3);
  assert_int_equal(cfg.quota_tenants_len, 2);
  assert_string_equal(cfg.quota_tenants[0].tenant, "dealer-a");
  assert_int_equal(cfg.quota_tenants[0].rate_per_s, 50);
  assert_int_equal(cfg.quota_tenants[0].burst, -1);
  assert_int_equal(cfg.quota_tenants[0].max_concurrent, -1);
  assert_string_equal(cfg.quota_tenants[1].tenant, "dealer-b");
  assert_int_equal(cfg.quota_tenants[1].rate_per_s, -1);
  assert_int_equal(cfg.quota_tenants[1].burst, 7);
  assert_int_equal(cfg.quota_tenants[1].max_concurrent, 0);
  assert_string_equal(cfg.tls_cert_file, "c.pem");
  assert_string_equal(cfg.tls_key_file, "k.pem");
  /* A second load keeps (copies) what the first set. */
  assert_int_equal(sb_config_load_string(&cfg, "limits: {page_size: 9}\n", 23,
                                         "more.yaml", &err),
                   0);
  assert_int_equal(cfg.quota_tenants_len, 2);
  assert_string_equal(cfg.quota_tenants[1].tenant, "dealer-b");
  assert_string_equal(cfg.tls_key_file, "k.pem");
  sb_config_free(&cfg);

  expect_error("quotas:\n  requests_per_second: -1\n",
               "config.yaml:2: quotas.requests_per_second: expected an "
               "integer between 0 and 1000000, got \"-1\"");
  expect_error("quotas:\n  tenants:\n    a: {burst: 1}\n    b:\n"
               "      bursts: 2\n",
               "config.yaml:5: quotas.tenants.b.bursts: unknown key (known: "
               "requests_per_second, burst, max_concurrent_calls)");
  expect_error("quotas:\n  tenants:\n    a: {burst: x}\n",
               "config.yaml:3: quotas.tenants.a.burst: expected an integer "
               "between 0 and 1000000, got \"x\"");
  expect_error("quotas:\n  tenants:\n    a: {burst: 1, burst: 2}\n",
               "config.yaml:3: quotas.tenants.a.burst: duplicate key");
  expect_error("quotas:\n  tenants:\n    a: {}\n    a: {}\n",
               "config.yaml:4: quotas.tenants.a: duplicate key");
  expect_error("quotas:\n  tenants:\n    \"a b\": {}\n",
               "config.yaml:3: quotas.tenants.a b: expected a tenant id (1-64 "
               "of A-Z a-z 0-9 . _ -)");
  expect_error("quotas:\n  tenants:\n    a: 5\n",
               "config.yaml:3: quotas.tenants.a: expected a mapping of "
               "limits, got \"5\"");
  expect_error("quotas:\n  tenants: [a]\n",
               "config.yaml:2: quotas.tenants: expected a mapping of tenant "
               "ids to limits, got a list");
  expect_error("server:\n  tls:\n    cert_file: c.pem\n",
               "config.yaml:3: server.tls: needs both cert_file and key_file "
               "(PEM)");
  expect_error("server:\n  tls:\n    cert: c.pem\n",
               "config.yaml:3: server.tls.cert: unknown key (known: "
               "cert_file, key_file)");
  expect_error("server:\n  tls: yes\n",
               "config.yaml:2: server.tls: expected a mapping with cert_file "
               "and key_file, got \"yes\"");
}

static void test_syntax_errors(void **state) {
  (void)state;
  expect_error("limits:\n  page_size: 5: 6\n",
               "config.yaml:2: invalid YAML: mapping values are not allowed "
               "in this context");
  expect_error("limits:\n  page_size: 5\n bad_indent: 1\n",
               "config.yaml:3: invalid YAML: did not find expected key "
               "(while parsing a block mapping on line 1)");
  expect_error("server:\n  allowed_origins: [http://a, http://b\n",
               "config.yaml:3: invalid YAML: did not find expected ',' or ']' "
               "(while parsing a flow sequence on line 2)");
  /* invalid UTF-8 on line 3 */
  expect_error("limits:\n  page_size: 5\n  x: \xff\xfe\n",
               "config.yaml:3: invalid YAML: invalid leading UTF-8 octet");
  /* a NUL byte is a syntax error, not a string terminator */
  sb_config cfg;
  sb_error err;
  sb_config_defaults(&cfg);
  const char nul[] = "limits:\n  page_size: 5\0\n";
  assert_int_equal(
      sb_config_load_string(&cfg, nul, sizeof nul - 1, "config.yaml", &err),
      SB_EINVAL);
  assert_non_null(strstr(err.msg, "config.yaml:2: invalid YAML: "));
  assert_int_equal(cfg.page_size, 50);
  sb_config_free(&cfg);
  /* ...and one written as an escape is no terminator either: it was read
   * as "debug" */
  expect_error("server:\n  log_level: \"debug\\0zzz\"\n",
               "config.yaml:2: server.log_level: expected one of debug, info, "
               "notice, warning, error, got \"debug\\x00zzz\"");
  expect_error("server:\n  log_format: \"json\\0\"\n",
               "config.yaml:2: server.log_format: expected text or json, got "
               "\"json\\x00\"");
}

static void test_size_limit(void **state) {
  (void)state;
  size_t n = 1024 * 1024 + 1;
  char *big = malloc(n);
  assert_non_null(big);
  memset(big, '#', n);
  sb_config cfg;
  sb_error err = {0};
  sb_config_defaults(&cfg);
  assert_int_equal(sb_config_load_string(&cfg, big, n, "big.yaml", &err),
                   SB_ETOOBIG);
  assert_non_null(strstr(err.msg, "big.yaml: "));
  assert_non_null(strstr(err.msg, "1 MiB"));
  /* exactly at the limit is fine (all comment) */
  big[n - 2] = '\n';
  assert_int_equal(sb_config_load_string(&cfg, big, n - 1, "big.yaml", &err),
                   0);

  /* the same limit through a real file */
  char path[] = "/tmp/sb-test-config-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, big, n), (ssize_t)n);
  close(fd);
  assert_int_equal(sb_config_load(&cfg, path, &err), SB_ETOOBIG);
  assert_non_null(strstr(err.msg, path));
  assert_non_null(strstr(err.msg, "larger than the 1 MiB limit"));
  unlink(path);
  free(big);
  sb_config_free(&cfg);
}

static void test_load_file(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err = {0};
  sb_config_defaults(&cfg);
  assert_int_equal(sb_config_load(&cfg, "/nonexistent/sb.yaml", &err),
                   SB_ENOENT);
  assert_string_equal(err.msg,
                      "/nonexistent/sb.yaml: cannot open: No such file or "
                      "directory");
  assert_int_equal(sb_config_load(&cfg, "/tmp", &err), SB_EIO);
  assert_string_equal(err.msg, "/tmp: not a regular file");
  /* A FIFO: opening it to read waited for a writer, for ever (a workflow
   * directory holding one hung check, serve and SIGHUP reloads). */
  char fifo_dir[] = "/tmp/sbcfgfifoXXXXXX";
  assert_non_null(mkdtemp(fifo_dir));
  char fifo[64];
  snprintf(fifo, sizeof fifo, "%s/flow.yaml", fifo_dir);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_int_equal(sb_config_load(&cfg, fifo, &err), SB_EIO);
  assert_non_null(strstr(err.msg, "flow.yaml: not a regular file"));
  json_t *fdoc = NULL, *flines = NULL;
  assert_int_equal(sb_config_read_yaml_file(fifo, &fdoc, &flines, &err),
                   SB_EIO);
  assert_non_null(strstr(err.msg, "flow.yaml: not a regular file"));
  unlink(fifo);
  rmdir(fifo_dir);

  char path[] = "/tmp/sb-test-config-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *yaml = "limits:\n  page_size: 3\n  max_json_depth: x\n";
  assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
  close(fd);
  assert_int_equal(sb_config_load(&cfg, path, &err), SB_EINVAL);
  char want[256];
  snprintf(want, sizeof want,
           "%s:3: limits.max_json_depth: expected an integer between 8 and "
           "2048, got \"x\"",
           path);
  assert_string_equal(err.msg, want);
  assert_int_equal(cfg.page_size, 50);

  fd = open(path, O_WRONLY | O_TRUNC);
  assert_true(fd >= 0);
  yaml = "limits:\n  page_size: 3\n";
  assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
  close(fd);
  assert_int_equal(sb_config_load(&cfg, path, &err), 0);
  assert_int_equal(cfg.page_size, 3);
  unlink(path);
  sb_config_free(&cfg);
}

static void test_set_listen(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err = {0};
  sb_config_defaults(&cfg);
  assert_int_equal(sb_config_set_listen(&cfg, "127.0.0.1:0", &err), 0);
  assert_string_equal(cfg.listen_host, "127.0.0.1");
  assert_int_equal(cfg.listen_port, 0);
  assert_int_equal(sb_config_set_listen(&cfg, "0.0.0.0:65535", &err), 0);
  assert_string_equal(cfg.listen_host, "0.0.0.0");
  assert_int_equal(cfg.listen_port, 65535);
  assert_int_equal(sb_config_set_listen(&cfg, "[::1]:443", &err), 0);
  assert_string_equal(cfg.listen_host, "::1");
  assert_int_equal(cfg.listen_port, 443);
  assert_int_equal(sb_config_set_listen(&cfg, "localhost:8080", &err), 0);
  assert_string_equal(cfg.listen_host, "127.0.0.1");
  assert_int_equal(cfg.listen_port, 8080);

  static const struct {
    const char *in, *msg;
  } bad[] = {
      {"8080", "listen: expected HOST:PORT (e.g. 127.0.0.1:8080), got "
               "\"8080\""},
      {":8080", "listen: missing host in \":8080\" (expected HOST:PORT)"},
      {"127.0.0.1:", "listen: bad port \"\" in \"127.0.0.1:\" (expected "
                     "0..65535)"},
      {"127.0.0.1:65536", "listen: bad port \"65536\" in \"127.0.0.1:65536\" "
                          "(expected 0..65535)"},
      {"127.0.0.1:-1", "listen: bad port \"-1\" in \"127.0.0.1:-1\" "
                       "(expected 0..65535)"},
      {"127.0.0.1:80x", "listen: bad port \"80x\" in \"127.0.0.1:80x\" "
                        "(expected 0..65535)"},
      {"256.0.0.1:80",
       "listen: bad host \"256.0.0.1\" in \"256.0.0.1:80\" "
       "(expected an IPv4 address, [IPv6 address] or localhost)"},
      {"::1:80", "listen: bad host \"::1\" in \"::1:80\" (expected an IPv4 "
                 "address, [IPv6 address] or localhost)"},
      {"[zz]:80", "listen: bad host \"[zz]\" in \"[zz]:80\" (expected an "
                  "IPv4 address, [IPv6 address] or localhost)"},
      {"", "listen: expected HOST:PORT (e.g. 127.0.0.1:8080), got \"\""},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    memset(&err, 0, sizeof err);
    assert_int_equal(sb_config_set_listen(&cfg, bad[i].in, &err), SB_EINVAL);
    assert_string_equal(err.msg, bad[i].msg);
    /* a failed set leaves the previous address */
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
  }
  sb_config_free(&cfg);
}

static void test_auth_errors(void **state) {
  (void)state;
  expect_error("auth:\n  tenants:\n    - id: a\n      token: short\n",
               "config.yaml:4: auth.tenants[0].token: a token must be at "
               "least 16 characters");
  expect_error("auth:\n  tenants:\n    - id: a\n",
               "config.yaml:3: auth.tenants[0]: needs both id and token");
  /* a token no client can send in its header line: the tenant was
   * locked out without a word */
  static const char *const unsendable[] = {"\" 0123456789abcdef\"",
                                           "\"0123456789\\nabcdef\"",
                                           "\"0123456789abcdef\\r\\n\"",
                                           "\"0123456789abcdef\\x7f\"",
                                           "\"0123456789abcdef\\u0085\""};
  for (size_t i = 0; i < sizeof unsendable / sizeof *unsendable; i++) {
    char yaml[160];
    snprintf(yaml, sizeof yaml, "auth:\n  tenants:\n    - id: a\n      token: %s\n",
             unsendable[i]);
    expect_error(yaml, "config.yaml:4: auth.tenants[0].token: a token cannot "
                       "start with a space nor hold a control character: no "
                       "client could send it (Authorization: Bearer TOKEN)");
  }
  /* blanks inside or at the end are sent as they are: still tokens */
  static const char *const sendable[] = {"\"0123456789 abcdef\"",
                                         "\"0123456789abcdef \"",
                                         "\"0123456789\\tabcdef\""};
  for (size_t i = 0; i < sizeof sendable / sizeof *sendable; i++) {
    char yaml[160];
    sb_config ok;
    sb_error ok_err;
    snprintf(yaml, sizeof yaml, "auth:\n  tenants:\n    - id: a\n      token: %s\n",
             sendable[i]);
    assert_int_equal(load(&ok, yaml, &ok_err), 0);
    sb_config_free(&ok);
  }
  expect_error("auth:\n  tenants:\n    - {id: a, token: 0123456789abcdef}\n"
               "    - {id: a, token: 0123456789abcdeX}\n",
               "config.yaml:4: auth.tenants[1]: id repeats an earlier "
               "tenant's");
  expect_error("auth:\n  tenants:\n    - {id: a, secret: x}\n",
               "config.yaml:3: auth.tenants[0].secret: unknown key (known: "
               "id, token)");
  expect_error("auth:\n  default_tenant: \"a b\"\n",
               "config.yaml:2: auth.default_tenant: expected a tenant id (1-64 "
               "of A-Z a-z 0-9 . _ -), got \"a b\"");
  expect_error("events:\n  retention_s: 59\n",
               "config.yaml:2: events.retention_s: expected an integer "
               "between 60 and 315360000, got \"59\"");
  expect_error("contexts:\n  snapshot_every: 0\n",
               "config.yaml:2: contexts.snapshot_every: expected an integer "
               "between 1 and 10000, got \"0\"");
  expect_error("store:\n  path: [a]\n",
               "config.yaml:2: store.path: expected a file path, got a "
               "list");
  /* with no tenants configured, every caller is the default tenant */
  sb_config cfg;
  sb_config_defaults(&cfg);
  assert_string_equal(sb_config_tenant_for_token(&cfg, NULL), "default");
  sb_config_free(&cfg);
}

static void test_llm_section(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err;
  /* not configured: off, with the defaults */
  sb_config_defaults(&cfg);
  assert_null(cfg.llm_base_url);
  assert_null(cfg.llm_api_key_env);
  assert_int_equal(cfg.llm_timeout_ms, 30000);
  unsetenv("SWITCHBOARD_LLM_BASE_URL");
  unsetenv("SWITCHBOARD_LLM_API_KEY");
  setenv("OPENAI_API_KEY", "sk-default", 1);
  sb_config_llm ep;
  sb_config_llm_endpoint(&cfg, &ep);
  assert_null(ep.base_url);
  assert_string_equal(ep.api_key, "sk-default");
  sb_config_free(&cfg);

  assert_int_equal(load(&cfg,
                        "llm:\n  base_url: http://127.0.0.1:9/v1\n"
                        "  api_key_env: MY_KEY\n  timeout_ms: 2500\n",
                        &err),
                   0);
  assert_string_equal(cfg.llm_base_url, "http://127.0.0.1:9/v1");
  assert_string_equal(cfg.llm_api_key_env, "MY_KEY");
  assert_int_equal(cfg.llm_timeout_ms, 2500);
  unsetenv("MY_KEY");
  sb_config_llm_endpoint(&cfg, &ep);
  assert_string_equal(ep.base_url, "http://127.0.0.1:9/v1");
  assert_null(ep.api_key); /* MY_KEY unset: no key, not OPENAI_API_KEY */
  assert_int_equal(ep.timeout_ms, 2500);
  setenv("MY_KEY", "sk-mine", 1);
  sb_config_llm_endpoint(&cfg, &ep);
  assert_string_equal(ep.api_key, "sk-mine");
  /* the environment overrides */
  setenv("SWITCHBOARD_LLM_BASE_URL", "https://llm.example/v1", 1);
  setenv("SWITCHBOARD_LLM_API_KEY", "sk-env", 1);
  sb_config_llm_endpoint(&cfg, &ep);
  assert_string_equal(ep.base_url, "https://llm.example/v1");
  assert_string_equal(ep.api_key, "sk-env");
  unsetenv("SWITCHBOARD_LLM_BASE_URL");
  unsetenv("SWITCHBOARD_LLM_API_KEY");
  unsetenv("MY_KEY");
  unsetenv("OPENAI_API_KEY");
  /* a second load keeps what the first set (a copy, freed once) */
  const char *more = "cache:\n  ttl_ms: 5\n";
  assert_int_equal(
      sb_config_load_string(&cfg, more, strlen(more), "more.yaml", &err), 0);
  assert_string_equal(cfg.llm_base_url, "http://127.0.0.1:9/v1");
  sb_config_free(&cfg);

  expect_error("llm:\n  base_url: ftp://x/v1\n",
               "config.yaml:2: llm.base_url: expected an http:// or https:// "
               "URL, got \"ftp://x/v1\"");
  expect_error("llm:\n  base_url: \"http://a b/v1\"\n",
               "config.yaml:2: llm.base_url: expected an http:// or https:// "
               "URL, got \"http://a b/v1\"");
  expect_error("llm:\n  base_url: [x]\n",
               "config.yaml:2: llm.base_url: expected an http:// or https:// "
               "URL, got a list");
  expect_error("llm:\n  api_key_env: 1KEY\n",
               "config.yaml:2: llm.api_key_env: expected an environment "
               "variable name ([A-Za-z_][A-Za-z0-9_]*), got \"1KEY\"");
  expect_error("llm:\n  timeout_ms: 0\n",
               "config.yaml:2: llm.timeout_ms: expected an integer between 1 "
               "and 600000, got \"0\"");
  expect_error("\nllm:\n  api_key: sk-123\n",
               "config.yaml:3: llm.api_key: unknown key (known: base_url, "
               "api_key_env, timeout_ms)");
}

static void test_agents_section(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err;
  const char *yaml = "agents:\n"
                     "  - id: sales\n"
                     "    capabilities: [quote, \"test drive\"]\n"
                     "    temperature: 0.3\n"
                     "    maxTokens: 512\n"
                     "    enabled: true\n"
                     "    note: \"42\"\n"
                     "  - id: service\n"
                     "    transport: {type: stdio, args: [a, b]}\n";
  assert_int_equal(load(&cfg, yaml, &err), 0);
  assert_int_equal(json_array_size(cfg.agents), 2);
  assert_int_equal(cfg.agent_lines[0], 2);
  assert_int_equal(cfg.agent_lines[1], 8);
  json_t *a = json_array_get(cfg.agents, 0);
  assert_true(json_is_real(json_object_get(a, "temperature")));
  assert_int_equal(json_integer_value(json_object_get(a, "maxTokens")), 512);
  assert_true(json_is_true(json_object_get(a, "enabled")));
  assert_true(json_is_string(json_object_get(a, "note"))); /* quoted stays a string */
  assert_string_equal(json_string_value(json_array_get(json_object_get(a, "capabilities"), 1)),
                      "test drive");
  sb_config copy; /* a second load deep-copies agents (all-or-nothing) */
  sb_config_defaults(&copy);
  assert_int_equal(sb_config_load_string(&copy, yaml, strlen(yaml), "x.yaml", &err), 0);
  sb_config_free(&copy);
  sb_config_free(&cfg);
  expect_error("agents: {id: x}\n",
               "config.yaml:1: agents: expected a list of agent definitions, "
               "got a mapping");
  expect_error("agents:\n  - sales\n",
               "config.yaml:2: agents[0]: expected an agent definition (a "
               "mapping), got \"sales\"");
  expect_error("agents:\n  - id: a\n    id: b\n",
               "config.yaml:3: agents[0].id: duplicate key");
  /* a key holding a NUL was cut there: this was an agent "b" */
  expect_error("agents:\n  - id: a\n    \"id\\0\": b\n",
               "config.yaml:3: agents[0]: key \"id\\x00\" contains a NUL "
               "character");
}

static int line_at(const json_t *lines, const char *ptr) {
  json_t *v = json_object_get(lines, ptr);
  if (!v) fail_msg("no line for \"%s\"", ptr);
  return (int)json_integer_value(v);
}

static void test_workflows_key(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err;
  const char *yaml = "workflows:\n"
                     "  - flows/\n"
                     "  - name: ping\n"
                     "    steps:\n"
                     "      - id: done\n"
                     "        end: completed\n"
                     "  - one.yml\n";
  assert_int_equal(load(&cfg, yaml, &err), 0);
  assert_int_equal(json_array_size(cfg.workflows), 3);
  assert_string_equal(json_string_value(json_array_get(cfg.workflows, 0)),
                      "flows/");
  assert_int_equal(line_at(cfg.workflow_lines, ""), 2);
  assert_int_equal(line_at(cfg.workflow_lines, "/0"), 2);
  assert_int_equal(line_at(cfg.workflow_lines, "/1"), 3);
  assert_int_equal(line_at(cfg.workflow_lines, "/1/name"), 3);
  assert_int_equal(line_at(cfg.workflow_lines, "/1/steps/0/id"), 5);
  assert_int_equal(line_at(cfg.workflow_lines, "/1/steps/0/end"), 6);
  assert_int_equal(line_at(cfg.workflow_lines, "/2"), 7);
  assert_string_equal(cfg.config_file, "config.yaml");
  assert_string_equal(cfg.config_dir, ".");
  sb_config copy; /* the clone taken by a second load keeps them */
  sb_config_defaults(&copy);
  assert_int_equal(sb_config_load_string(&copy, yaml, strlen(yaml), "x.yaml",
                                         &err), 0);
  assert_int_equal(sb_config_load_string(&copy, "cache: {ttl_ms: 5}\n", 19,
                                         "y.yaml", &err), 0);
  assert_int_equal(json_array_size(copy.workflows), 3);
  assert_string_equal(copy.config_file, "y.yaml");
  sb_config_free(&copy);
  sb_config_free(&cfg);
  assert_int_equal(load(&cfg, "workflows:\n", &err), 0);
  assert_int_equal(json_array_size(cfg.workflows), 0);
  sb_config_free(&cfg);
  expect_error("workflows: lead.yaml\n",
               "config.yaml:1: workflows: expected a list of workflow "
               "definitions and file or directory names, got \"lead.yaml\"");
  expect_error("workflows:\n  - a.yaml\n  - [x]\n",
               "config.yaml:3: workflows[1]: expected a workflow definition "
               "(a mapping) or the name of a .yaml file or a directory, got "
               "an array");
  expect_error("workflows:\n  - name: a\n    name: b\n",
               "config.yaml:3: workflows[0].name: duplicate key");
  expect_error("workflows:\n  - &a {name: a}\n  - *a\n",
               "config.yaml:3: workflows[1]: YAML aliases (*a) are not "
               "supported in the config");
}

/* Administrators: anyone in a single-tenant setup; once admin_tenants
 * names some, only they, with or without auth.tenants (keys or OAuth
 * alone configure no tenants). */
static void test_is_admin(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err;
  assert_int_equal(load(&cfg, "limits: {page_size: 9}\n", &err), 0);
  assert_true(sb_config_is_admin(&cfg, "lakeside"));
  sb_config_free(&cfg);

  assert_int_equal(load(&cfg, "auth: {admin_tenants: [ops]}\n", &err), 0);
  assert_true(sb_config_is_admin(&cfg, "ops"));
  assert_false(sb_config_is_admin(&cfg, "lakeside"));
  assert_false(sb_config_is_admin(&cfg, NULL));
  sb_config_free(&cfg);

  assert_int_equal(load(&cfg,
                        "auth:\n  admin_tenants: [ops]\n  tenants:\n"
                        "    - {id: lakeside, token: lakeside-token-0123456789}\n",
                        &err),
                   0);
  assert_false(sb_config_is_admin(&cfg, "lakeside"));
  assert_true(sb_config_is_admin(&cfg, "ops"));
  sb_config_free(&cfg);
}

static void test_load_file_dir(void **state) {
  (void)state;
  char dir[] = "/tmp/sbcfgXXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/sb.yaml", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("workflows: [flows]\n", f);
  fclose(f);
  sb_config cfg;
  sb_error err;
  sb_config_defaults(&cfg);
  assert_int_equal(sb_config_load(&cfg, path, &err), 0);
  assert_string_equal(cfg.config_file, path);
  assert_string_equal(cfg.config_dir, dir);
  sb_config_free(&cfg);
  unlink(path);
  rmdir(dir);
}

static void test_read_yaml(void **state) {
  (void)state;
  json_t *doc = NULL, *lines = NULL;
  sb_error err;
  const char *y = "# a workflow\n"
                  "name: lead\n"
                  "steps:\n"
                  "  - id: intake\n"
                  "    call: {tool: t, arguments: {\"a/b\": 1, \"c~d\": [x, y]}}\n"
                  "  - id: done\n"
                  "    end: completed\n";
  assert_int_equal(sb_config_read_yaml(y, strlen(y), "lead.yaml", &doc, &lines,
                                       &err), 0);
  assert_string_equal(json_string_value(json_object_get(doc, "name")), "lead");
  assert_int_equal(line_at(lines, ""), 2);
  assert_int_equal(line_at(lines, "/name"), 2);
  assert_int_equal(line_at(lines, "/steps"), 4);
  assert_int_equal(line_at(lines, "/steps/0"), 4);
  assert_int_equal(line_at(lines, "/steps/0/call/tool"), 5);
  assert_int_equal(line_at(lines, "/steps/0/call/arguments/a~1b"), 5);
  assert_int_equal(line_at(lines, "/steps/0/call/arguments/c~0d/1"), 5);
  assert_int_equal(line_at(lines, "/steps/1/end"), 7);
  assert_int_equal(json_object_size(lines), 15);
  json_decref(doc);
  json_decref(lines);
  /* without a line map; an empty document is null */
  assert_int_equal(sb_config_read_yaml("# nothing\n", 10, "e.yaml", &doc, NULL,
                                       &err), 0);
  assert_true(json_is_null(doc));
  json_decref(doc);
  /* the config's rules */
  static const struct {
    const char *yaml, *msg;
  } bad[] = {
      {"a: &x 1\nb: *x\n",
       "w.yaml:2: b: YAML aliases (*x) are not supported"},
      {"a: [!seq 1]\n", "w.yaml:1: YAML tags (!seq) are not supported"},
      {"a: 1\n---\nb: 2\n",
       "w.yaml:2: a second YAML document; the file must be one document"},
      {"a: 1\na: 2\n", "w.yaml:2: a: duplicate key"},
      {"steps:\n  - id: [\n", "w.yaml:3: invalid YAML: "},
      /* a key is a C string: "id\0x" was read as "id" */
      {"steps:\n  - {\"id\\0x\": s, end: completed}\n",
       "w.yaml:2: steps[0]: key \"id\\x00x\" contains a NUL character"},
      {"\"name\\0\": a\n",
       "w.yaml:1: key \"name\\x00\" contains a NUL character"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(sb_config_read_yaml(bad[i].yaml, strlen(bad[i].yaml),
                                         "w.yaml", &doc, &lines, &err),
                     SB_EINVAL);
    assert_null(doc);
    assert_null(lines);
    if (strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)) != 0)
      fail_msg("got \"%s\", want \"%s\"", err.msg, bad[i].msg);
  }
  char *big = malloc(1024 * 1024 + 2);
  assert_non_null(big);
  memset(big, '#', 1024 * 1024 + 1);
  assert_int_equal(sb_config_read_yaml(big, 1024 * 1024 + 1, "big.yaml", &doc,
                                       NULL, &err), SB_ETOOBIG);
  free(big);
  assert_int_equal(sb_config_read_yaml_file("/nonexistent/w.yaml", &doc,
                                            &lines, &err), SB_ENOENT);
  assert_string_equal(err.msg, "/nonexistent/w.yaml: cannot open: No such "
                               "file or directory");
  /* allocation failures: ENOMEM, nothing leaked */
  size_t base = sb_alloc_live_bytes();
  for (long n = 1; n < 400; n++) {
    sb_alloc_fail_after(n);
    int rc = sb_config_read_yaml(y, strlen(y), "lead.yaml", &doc, &lines, &err);
    sb_alloc_fail_after(0);
    if (rc == 0) {
      json_decref(doc);
      json_decref(lines);
      break;
    }
    assert_int_equal(rc, SB_ENOMEM);
    assert_int_equal(sb_alloc_live_bytes(), base);
  }
  assert_int_equal(sb_alloc_live_bytes(), base);
}

/* Every allocation in a load may fail: each failure must report ENOMEM,
 * leak nothing and leave the config as it was. */
static void test_alloc_failures(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err;
  sb_config_defaults(&cfg);
  assert_int_equal(sb_config_set_listen(&cfg, "127.0.0.1:1", &err), 0);
  size_t base = sb_alloc_live_bytes();
  int failures = 0;
  for (long n = 1; n < 1000; n++) {
    sb_alloc_fail_after(n);
    int rc = sb_config_load_string(&cfg, full_yaml, strlen(full_yaml),
                                   "config.yaml", &err);
    sb_alloc_fail_after(0);
    if (rc == 0) break;
    failures++;
    assert_int_equal(rc, SB_ENOMEM);
    assert_string_equal(err.msg, "config.yaml: out of memory");
    assert_int_equal(sb_alloc_live_bytes(), base);
    assert_int_equal(cfg.listen_port, 1);
    assert_int_equal(cfg.allowed_origins_len, 0);
  }
  assert_true(failures >= 3); /* host clone, origins array, two strings */
  assert_int_equal(cfg.listen_port, 8080);
  sb_config_free(&cfg);
  assert_int_equal(sb_alloc_live_bytes(), 0);
}

/* auth.oauth: every key read, errors naming file:line:key, the required
 * trio, and a clone (a second load) keeping it. */
static void test_oauth(void **state) {
  (void)state;
  sb_config cfg;
  sb_error err;
  const char *ok = "auth:\n  oauth:\n    issuer: https://login.example\n"
                   "    resource: https://mcp.example/mcp\n"
                   "    jwks_file: keys/jwks.json\n"
                   "    authorization_servers: [https://login.example]\n"
                   "    scopes_supported: [contexts:read, agents:sales]\n"
                   "    leeway_s: 30\n    tenant_claim: org\n"
                   "    scope_claim: scp\n";
  assert_int_equal(load(&cfg, ok, &err), 0);
  assert_string_equal(cfg.oauth_issuer, "https://login.example");
  assert_string_equal(cfg.oauth_resource, "https://mcp.example/mcp");
  assert_string_equal(cfg.oauth_jwks_file, "keys/jwks.json");
  assert_int_equal(cfg.oauth_authorization_servers_len, 1);
  assert_int_equal(cfg.oauth_scopes_supported_len, 2);
  assert_string_equal(cfg.oauth_scopes_supported[1], "agents:sales");
  assert_int_equal(cfg.oauth_leeway_s, 30);
  assert_string_equal(cfg.oauth_tenant_claim, "org");
  assert_string_equal(cfg.oauth_scope_claim, "scp");
  const char *more = "limits:\n  page_size: 10\n";
  assert_int_equal(sb_config_load_string(&cfg, more, strlen(more), "b.yaml",
                                         &err), 0);
  assert_string_equal(cfg.oauth_issuer, "https://login.example");
  assert_int_equal(cfg.oauth_scopes_supported_len, 2);
  sb_config_free(&cfg);
  expect_error("auth:\n  oauth:\n    issuer: https://login.example\n",
               "config.yaml:2: auth.oauth: resource is required (issuer, "
               "resource and jwks_file go together)");
  expect_error("auth:\n  oauth:\n    issuer: login.example\n",
               "config.yaml:3: auth.oauth.issuer: expected an http:// or "
               "https:// URL, got \"login.example\"");
  expect_error("auth:\n  oauth:\n    scopes_supported: [a b]\n",
               "config.yaml:3: auth.oauth.scopes_supported[0]: expected a "
               "scope (1-128 printable characters, no space)");
  expect_error("auth:\n  oauth:\n    leeway_s: 601\n",
               "config.yaml:3: auth.oauth.leeway_s: expected an integer "
               "between 0 and 600, got \"601\"");
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_full_file),
      cmocka_unit_test(test_empty_and_null),
      cmocka_unit_test(test_value_errors),
      cmocka_unit_test(test_structure_errors),
      cmocka_unit_test(test_quotas_and_tls),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_size_limit),
      cmocka_unit_test(test_load_file),
      cmocka_unit_test(test_oauth),
      cmocka_unit_test(test_set_listen),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_auth_errors),
      cmocka_unit_test(test_agents_section),
      cmocka_unit_test(test_llm_section),
      cmocka_unit_test(test_workflows_key),
      cmocka_unit_test(test_is_admin),
      cmocka_unit_test(test_load_file_dir),
      cmocka_unit_test(test_read_yaml),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
