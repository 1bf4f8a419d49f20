/* test_registry_def.c: AgentDefinition parsing, validation and
 * serialisation (src/registry/agent_def.c).
 *
 * Each invalid case starts from one valid definition, changes exactly one
 * thing with a JSON merge patch (null removes a member), and checks the
 * whole error message: path + reason is what a config author or API
 * client sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "test_json.h"
#include "ctx/ctx.h"
#include "registry/registry.h"

/* ---- helpers ---------------------------------------------------------- */

/* JSON with ' for " so the cases stay readable. */


static const char *const stdio_def =
    "{'id': 'sales-1', 'name': 'Sales desk', 'type': 'sales',"
    " 'capabilities': ['quote', 'inventory.search'],"
    " 'models': {'primary': 'gpt-4o', 'fallback': ['gpt-4o-mini', 'local']},"
    " 'contextRequirements': ['conversation.messages[-5:]', "
    "   'user.preferences', 'business.inventory.vehicles[-10:]'],"
    " 'outputFormat': 'json', 'maxTokens': 2048, 'temperature': 0.3,"
    " 'transport': {'type': 'stdio', 'command': '/usr/bin/sales-agent',"
    "   'args': ['--fast', ''], 'env': {'API_KEY': 'k', '_X1': ''},"
    "   'cwd': '/srv/sales'},"
    " 'limits': {'maxConcurrent': 8, 'timeoutMs': 5000, 'retries': 0},"
    " 'idempotentTools': ['lookup']}";

static const char *const http_def =
    "{'id': 'svc', 'name': 'Service', 'type': 'service',"
    " 'capabilities': ['book'], 'models': {'primary': 'm'},"
    " 'outputFormat': 'text', 'maxTokens': 1, 'temperature': 2,"
    " 'transport': {'type': 'http', 'url': 'https://svc.example:8443/mcp',"
    "   'headers': {'Authorization': 'Bearer t', 'X-Tenant_1': 'a'}}}";

static sb_agent_def *parse_ok(const char *text) {
  json_t *j = J(text);
  sb_agent_def *d = NULL;
  sb_error err = {0};
  if (sb_agent_def_parse(j, &d, &err) != 0) fail_msg("%s", err.msg);
  json_decref(j);
  assert_non_null(d);
  return d;
}

/* `base` with merge patch `patch` applied must fail with exactly `msg`. */
static void invalid_from(const char *base, const char *patch, const char *msg) {
  json_t *doc = J(base), *p = J(patch), *bad = NULL;
  assert_int_equal(sb_ctx_merge_apply(doc, p, &bad, NULL), 0);
  sb_agent_def *d = (sb_agent_def *)1;
  sb_error err = {0};
  int rc = sb_agent_def_parse(bad, &d, &err);
  if (rc == 0) fail_msg("%s: accepted", patch);
  assert_int_equal(rc, SB_EINVAL);
  assert_int_equal(err.code, SB_EINVAL);
  assert_null(d);
  if (strcmp(err.msg, msg) != 0)
    fail_msg("%s:\n got  \"%s\"\n want \"%s\"", patch, err.msg, msg);
  json_decref(doc);
  json_decref(p);
  json_decref(bad);
}

static void invalid(const char *patch, const char *msg) {
  invalid_from(stdio_def, patch, msg);
}

static void valid_from(const char *base, const char *patch) {
  json_t *doc = J(base), *p = J(patch), *good = NULL;
  assert_int_equal(sb_ctx_merge_apply(doc, p, &good, NULL), 0);
  sb_agent_def *d = NULL;
  sb_error err = {0};
  if (sb_agent_def_parse(good, &d, &err) != 0)
    fail_msg("%s: %s", patch, err.msg);
  sb_agent_def_free(d);
  json_decref(doc);
  json_decref(p);
  json_decref(good);
}

/* ---- valid definitions ------------------------------------------------ */

static void test_parse_stdio(void **state) {
  (void)state;
  sb_agent_def *d = parse_ok(stdio_def);
  assert_string_equal(d->id, "sales-1");
  assert_string_equal(d->name, "Sales desk");
  assert_int_equal(d->type, SB_AGENT_SALES);
  assert_int_equal(d->capabilities.len, 2);
  assert_string_equal(d->capabilities.items[1], "inventory.search");
  assert_string_equal(d->model_primary, "gpt-4o");
  assert_int_equal(d->model_fallback.len, 2);
  assert_string_equal(d->model_fallback.items[1], "local");
  assert_int_equal(d->context_requirements.len, 3);
  assert_string_equal(d->context_requirements.items[0],
                      "conversation.messages[-5:]");
  json_t *want_reqs = J("['conversation.messages[-5:]', 'user.preferences',"
                        " 'business.inventory.vehicles[-10:]']");
  assert_json_eq(d->requirements_json, want_reqs);
  json_decref(want_reqs);
  assert_int_equal(d->output_format, SB_AGENT_OUTPUT_JSON);
  assert_int_equal(d->max_tokens, 2048);
  assert_true(d->temperature == 0.3);
  assert_int_equal(d->transport.type, SB_AGENT_TRANSPORT_STDIO);
  assert_string_equal(d->transport.command, "/usr/bin/sales-agent");
  assert_int_equal(d->transport.args.len, 2);
  assert_string_equal(d->transport.args.items[1], "");
  assert_int_equal(d->transport.env.len, 2);
  assert_string_equal(d->transport.env.items[0].name, "API_KEY");
  assert_string_equal(d->transport.env.items[0].value, "k");
  assert_string_equal(d->transport.env.items[1].name, "_X1");
  assert_string_equal(d->transport.cwd, "/srv/sales");
  assert_null(d->transport.url);
  assert_int_equal(d->limits.max_concurrent, 8);
  assert_int_equal(d->limits.timeout_ms, 5000);
  assert_int_equal(d->limits.retries, 0);
  assert_true(sb_agent_def_has_capability(d, "quote"));
  assert_false(sb_agent_def_has_capability(d, "quot"));
  assert_false(sb_agent_def_has_capability(d, NULL));
  assert_true(sb_agent_def_tool_idempotent(d, "lookup"));
  assert_false(sb_agent_def_tool_idempotent(d, "quote"));
  sb_agent_def_free(d);
}

static void test_parse_http_defaults(void **state) {
  (void)state;
  sb_agent_def *d = parse_ok(http_def);
  assert_int_equal(d->type, SB_AGENT_SERVICE);
  assert_int_equal(d->output_format, SB_AGENT_OUTPUT_TEXT);
  assert_true(d->temperature == 2.0);
  assert_int_equal(d->model_fallback.len, 0);
  assert_int_equal(d->context_requirements.len, 0);
  assert_true(json_is_array(d->requirements_json));
  assert_int_equal(json_array_size(d->requirements_json), 0);
  assert_int_equal(d->transport.type, SB_AGENT_TRANSPORT_HTTP);
  assert_string_equal(d->transport.url, "https://svc.example:8443/mcp");
  assert_null(d->transport.command);
  assert_int_equal(d->transport.headers.len, 2);
  assert_string_equal(d->transport.headers.items[0].name, "Authorization");
  assert_string_equal(d->transport.headers.items[0].value, "Bearer t");
  assert_int_equal(d->limits.max_concurrent, 4);
  assert_int_equal(d->limits.timeout_ms, 30000);
  assert_int_equal(d->limits.retries, 2);
  assert_int_equal(d->idempotent_tools.len, 0);
  sb_agent_def_free(d);
}

static void test_valid_edges(void **state) {
  (void)state;
  const char *id64 =
      "{'id': 'a123456789012345678901234567890123456789012345678901234567890"
      "123'}";
  valid_from(stdio_def, id64);
  valid_from(stdio_def, "{'id': 'a_b-c_d'}");
  valid_from(stdio_def, "{'id': '-'}");
  valid_from(stdio_def, "{'temperature': 0}");
  valid_from(stdio_def, "{'temperature': 1.999}");
  valid_from(stdio_def, "{'capabilities': []}");
  valid_from(stdio_def, "{'contextRequirements': null, 'limits': null, "
                        "'idempotentTools': null}");
  valid_from(stdio_def, "{'limits': {'maxConcurrent': 1024, "
                        "'timeoutMs': 86400000, 'retries': 10}}");
  valid_from(stdio_def, "{'limits': {}}");
  valid_from(stdio_def, "{'transport': {'args': null, 'env': null, "
                        "'cwd': null}}");
  valid_from(http_def, "{'transport': {'url': 'HTTP://h'}}");
  valid_from(http_def, "{'transport': {'url': 'http://[::1]:80/x?y#z'}}");
  valid_from(http_def, "{'transport': {'url': 'https://u:p@h.example:65535'}}");
  valid_from(http_def, "{'transport': {'url': 'http://127.0.0.1:1?q'}}");
  valid_from(http_def, "{'transport': {'url': 'http://[::1]'}}");
}

static void test_roundtrip(void **state) {
  (void)state;
  const char *const defs[] = {stdio_def, http_def};
  for (size_t i = 0; i < 2; i++) {
    sb_agent_def *d = parse_ok(defs[i]);
    json_t *j = sb_agent_def_to_json(d);
    assert_non_null(j);
    sb_agent_def *again = NULL;
    assert_int_equal(sb_agent_def_parse(j, &again, NULL), 0);
    json_t *j2 = sb_agent_def_to_json(again);
    assert_json_eq(j2, j);
    json_decref(j);
    json_decref(j2);
    sb_agent_def_free(d);
    sb_agent_def_free(again);
  }
  /* defaults are spelt out, so agents_list shows what is in effect */
  sb_agent_def *d = parse_ok(http_def);
  json_t *j = sb_agent_def_to_json(d);
  json_t *want =
      J("{'id': 'svc', 'name': 'Service', 'type': 'service',"
        " 'capabilities': ['book'], 'models': {'primary': 'm', 'fallback': []},"
        " 'contextRequirements': [], 'outputFormat': 'text', 'maxTokens': 1,"
        " 'temperature': 2.0,"
        " 'transport': {'type': 'http', 'url': 'https://svc.example:8443/mcp',"
        "   'headers': {'Authorization': 'Bearer t', 'X-Tenant_1': 'a'}},"
        " 'limits': {'maxConcurrent': 4, 'timeoutMs': 30000, 'retries': 2,"
        "   'cacheTtlMs': 0, 'startupTimeoutMs': 15000},"
        " 'idempotentTools': []}");
  assert_json_eq(j, want);
  json_decref(j);
  json_decref(want);
  sb_agent_def_free(d);
}

static void test_oauth(void **state) {
  (void)state;
  static const char *const oauth_def =
      "{'id': 'svc', 'name': 'Service', 'type': 'service',"
      " 'capabilities': ['book'], 'models': {'primary': 'm'},"
      " 'outputFormat': 'text', 'maxTokens': 1, 'temperature': 2,"
      " 'transport': {'type': 'http', 'url': 'https://svc.example/mcp',"
      "   'oauth': {'clientId': 'sb', 'clientSecret': 's3cret'}}}";
  sb_agent_def *d = parse_ok(oauth_def);
  const sb_agent_oauth *o = &d->transport.oauth;
  assert_string_equal(o->client_id, "sb");
  assert_string_equal(o->client_secret, "s3cret");
  assert_null(o->scope);
  assert_null(o->token_url);
  assert_null(o->issuer);
  assert_null(o->resource);
  assert_int_equal(o->auth, SB_AGENT_OAUTH_AUTH_AUTO);
  sb_agent_def_free(d);
  /* every field, and back through JSON */
  json_t *doc = J(oauth_def), *full = NULL;
  json_t *patch = J("{'transport': {'oauth': {'scope': 'a b',"
                    " 'tokenUrl': 'https://as.example/token',"
                    " 'issuer': 'https://as.example',"
                    " 'resource': 'https://svc.example/mcp',"
                    " 'tokenAuthMethod': 'client_secret_post'}}}");
  assert_int_equal(sb_ctx_merge_apply(doc, patch, &full, NULL), 0);
  assert_int_equal(sb_agent_def_parse(full, &d, NULL), 0);
  assert_int_equal(d->transport.oauth.auth, SB_AGENT_OAUTH_AUTH_POST);
  assert_string_equal(d->transport.oauth.scope, "a b");
  json_t *j = sb_agent_def_to_json(d);
  assert_json_eq(json_object_get(json_object_get(j, "transport"), "oauth"),
                 json_object_get(json_object_get(full, "transport"), "oauth"));
  /* shown: the secret is not */
  assert_int_equal(sb_agent_def_json_redact(j), 0);
  json_t *shown = json_object_get(json_object_get(j, "transport"), "oauth");
  assert_string_equal(json_string_value(json_object_get(shown, "clientSecret")),
                      SB_AGENT_REDACTED);
  assert_string_equal(json_string_value(json_object_get(shown, "clientId")),
                      "sb");
  /* and no URL's credentials */
  json_t *u =
      J("{'transport': {'url': 'https://u:pw@svc.example/mcp',"
        " 'oauth': {'tokenUrl': 'https://u:pw2@as.example/token?key=k1',"
        " 'issuer': 'https://u:pw3@as.example',"
        " 'resource': 'https://svc.example/mcp?token=t1'}}}");
  assert_int_equal(sb_agent_def_json_redact(u), 0);
  char *text = json_dumps(u, 0);
  assert_null(strstr(text, "pw"));
  assert_null(strstr(text, "k1"));
  assert_null(strstr(text, "t1"));
  sb_free(text);
  json_decref(u);
  json_decref(j);
  json_decref(doc);
  json_decref(patch);
  json_decref(full);
  sb_agent_def_free(d);

  invalid_from(oauth_def, "{'transport': {'oauth': {'clientSecret': null}}}",
               "transport.oauth.clientSecret: missing required field");
  invalid_from(oauth_def, "{'transport': {'oauth': {'clientId': ''}}}",
               "transport.oauth.clientId: must not be empty");
  invalid_from(oauth_def, "{'transport': {'oauth': {'clientId': 'a\\u0001'}}}",
               "transport.oauth.clientId: must not contain control characters");
  invalid_from(oauth_def, "{'transport': {'oauth': {'tokenUrl': 'as/token'}}}",
               "transport.oauth.tokenUrl: expected an http:// or https:// URL");
  invalid_from(
      oauth_def,
      "{'transport': {'oauth': {'resource': 'https://svc.example/mcp#x'}}}",
      "transport.oauth.resource: must not have a #fragment");
  invalid_from(
      oauth_def,
      "{'transport': {'oauth': {'tokenAuthMethod': 'private_key_jwt'}}}",
      "transport.oauth.tokenAuthMethod: must be one of "
      "client_secret_basic, client_secret_post (got \"private_key_jwt\")");
  invalid_from(oauth_def, "{'transport': {'oauth': {'grant': 'x'}}}",
               "transport.oauth.grant: unknown field (known: clientId, "
               "clientSecret, scope, tokenUrl, issuer, resource, "
               "tokenAuthMethod)");
  invalid_from(oauth_def, "{'transport': {'oauth': 'token'}}",
               "transport.oauth: expected an object");
  /* the token goes in Authorization: one configured too is refused */
  invalid_from(oauth_def,
               "{'transport': {'headers': {'authorization': 'Bearer x'}}}",
               "transport.headers.authorization: not with transport.oauth, "
               "which sends the access token it gets in this header");
}

static void test_refcount(void **state) {
  (void)state;
  sb_agent_def *d = parse_ok(stdio_def);
  assert_ptr_equal(sb_agent_def_ref(d), d);
  sb_agent_def_free(d);
  assert_string_equal(d->id, "sales-1"); /* still alive: one ref left */
  sb_agent_def_free(d);
  sb_agent_def_free(NULL);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(sb_agent_type_name(SB_AGENT_FINANCE), "finance");
  assert_string_equal(sb_agent_type_name(SB_AGENT_GENERAL), "general");
  assert_string_equal(sb_agent_output_name(SB_AGENT_OUTPUT_STRUCTURED),
                      "structured");
}

/* ---- invalid definitions: one field at a time ------------------------- */

static void test_invalid_top(void **state) {
  (void)state;
  sb_error err = {0};
  sb_agent_def *d = NULL;
  json_t *arr = J("[]");
  assert_int_equal(sb_agent_def_parse(arr, &d, &err), SB_EINVAL);
  assert_string_equal(err.msg, "agent: expected an object");
  json_decref(arr);
  invalid("{'capabilites': ['x']}",
          "capabilites: unknown field (known: id, name, type, capabilities, "
          "models, contextRequirements, outputFormat, maxTokens, temperature, "
          "transport, limits, idempotentTools)");
  invalid("{'id': null}", "id: missing required field");
  invalid("{'name': null}", "name: missing required field");
  invalid("{'type': null}", "type: missing required field");
  invalid("{'capabilities': null}", "capabilities: missing required field");
  invalid("{'models': null}", "models: missing required field");
  invalid("{'outputFormat': null}", "outputFormat: missing required field");
  invalid("{'maxTokens': null}", "maxTokens: missing required field");
  invalid("{'temperature': null}", "temperature: missing required field");
  invalid("{'transport': null}", "transport: missing required field");
  /* several at once: named together */
  json_t *few = J("{'id': 'x', 'name': 'X', 'type': 'general', "
                  "'capabilities': ['c'], 'transport': {'type': 'stdio', "
                  "'command': 'a'}}");
  sb_agent_def *none = NULL;
  assert_int_equal(sb_agent_def_parse(few, &none, &err), SB_EINVAL);
  assert_string_equal(err.msg, "models: missing required field (and "
                               "outputFormat, maxTokens, temperature)");
  assert_null(none);
  json_decref(few);
}

static void test_invalid_id(void **state) {
  (void)state;
  invalid("{'id': 42}", "id: expected a string");
  invalid("{'id': 'Sales'}",
          "id: must be 1-64 characters of a-z, 0-9, _ and - (got \"Sales\")");
  invalid("{'id': ''}",
          "id: must be 1-64 characters of a-z, 0-9, _ and - (got \"\")");
  invalid("{'id': 'a.b'}",
          "id: must be 1-64 characters of a-z, 0-9, _ and - (got \"a.b\")");
  invalid("{'id': "
          "'a1234567890123456789012345678901234567890123456789012345678901234'"
          "}",
          "id: must be 1-64 characters of a-z, 0-9, _ and - (got "
          "\"a1234567890123456789012345678901234567890123456789012345678901234"
          "\")");
  invalid("{'id': 'sales__x'}",
          "id: must not contain \"__\" or end with \"_\" (got \"sales__x\")");
  invalid("{'id': 'sales_'}",
          "id: must not contain \"__\" or end with \"_\" (got \"sales_\")");
}

static void test_invalid_name_type_caps(void **state) {
  (void)state;
  invalid("{'name': ''}", "name: must not be empty");
  invalid("{'name': ['x']}", "name: expected a string");
  /* a name is shown in lists and logs: no line breaks, escapes nor C1 */
  invalid("{'name': 'Sales\\nDesk'}",
          "name: must be text without control characters");
  invalid("{'name': 'Sales\\u0001'}",
          "name: must be text without control characters");
  invalid("{'name': 'Sales \\u0085'}",
          "name: must be text without control characters");
  invalid("{'type': 'marketing'}",
          "type: must be one of sales, service, parts, finance, general "
          "(got \"marketing\")");
  invalid("{'type': 3}",
          "type: must be one of sales, service, parts, finance, general "
          "(got an integer)");
  invalid("{'type': 'Sales'}",
          "type: must be one of sales, service, parts, finance, general "
          "(got \"Sales\")");
  invalid("{'capabilities': 'quote'}", "capabilities: expected an array");
  invalid("{'capabilities': ['quote', 1]}",
          "capabilities[1]: expected a string");
  invalid("{'capabilities': ['quote', '']}",
          "capabilities[1]: must not be empty");
  invalid("{'capabilities': ['quote', 'x', 'quote']}",
          "capabilities[2]: duplicate \"quote\" (also at [0])");

  /* a NUL inside a string can only come from a built value */
  json_t *doc = J(stdio_def);
  json_object_set_new(doc, "name", json_stringn("a\0b", 3));
  sb_agent_def *d = NULL;
  sb_error err = {0};
  assert_int_equal(sb_agent_def_parse(doc, &d, &err), SB_EINVAL);
  assert_string_equal(err.msg, "name: must not contain a NUL character");
  json_decref(doc);

  /* oversized: a string past 16 KiB, an array or object past 1,024 items
   * (refused before any pairwise check of repeats) */
  doc = J(stdio_def);
  char *big = malloc(16386);
  memset(big, 'n', 16385);
  big[16385] = '\0';
  json_object_set_new(doc, "name", json_string(big));
  assert_int_equal(sb_agent_def_parse(doc, &d, &err), SB_EINVAL);
  assert_string_equal(err.msg,
                      "name: must be at most 16384 bytes long (got 16385)");
  big[16384] = '\0'; /* exactly the bound: taken */
  json_object_set_new(doc, "name", json_string(big));
  assert_int_equal(sb_agent_def_parse(doc, &d, &err), 0);
  sb_agent_def_free(d);
  d = NULL;
  free(big);
  json_t *caps = json_array();
  for (int i = 0; i < 1025; i++) {
    char c[16];
    snprintf(c, sizeof c, "cap%d", i);
    json_array_append_new(caps, json_string(c));
  }
  json_object_set_new(doc, "capabilities", caps);
  assert_int_equal(sb_agent_def_parse(doc, &d, &err), SB_EINVAL);
  assert_string_equal(err.msg,
                      "capabilities: must have at most 1024 items (got 1025)");
  json_decref(doc);
}

static void test_invalid_models(void **state) {
  (void)state;
  invalid("{'models': []}", "models: expected an object");
  invalid("{'models': {'primary': null}}",
          "models.primary: missing required field");
  invalid("{'models': {'primary': ''}}", "models.primary: must not be empty");
  invalid("{'models': {'primary': 7}}", "models.primary: expected a string");
  invalid("{'models': {'fallback': 'x'}}",
          "models.fallback: expected an array");
  invalid("{'models': {'fallback': ['a', 2]}}",
          "models.fallback[1]: expected a string");
  invalid("{'models': {'fallback': ['a', '']}}",
          "models.fallback[1]: must not be empty");
  invalid("{'models': {'backup': ['a']}}",
          "models.backup: unknown field (known: primary, fallback)");
}

static void test_invalid_requirements(void **state) {
  (void)state;
  /* the path message itself comes from ctx; we prefix our field */
  sb_error one = {0};
  assert_int_equal(sb_ctx_path_validate("conversation.messages[x]", &one),
                   SB_EINVAL);
  char want[700];
  snprintf(want, sizeof want, "contextRequirements[1]: %s", one.msg);
  invalid("{'contextRequirements': ['user.id', 'conversation.messages[x]']}",
          want);
  assert_non_null(strstr(want, "invalid path \"conversation.messages[x]\""));
  invalid("{'contextRequirements': ['marketing.x']}",
          "contextRequirements[0]: invalid path \"marketing.x\": unknown "
          "section \"marketing\" (expected conversation, workflow, user or "
          "business)");
  invalid("{'contextRequirements': [1]}",
          "contextRequirements[0]: expected a string");
  invalid("{'contextRequirements': 'user.id'}",
          "contextRequirements: expected an array");
  invalid("{'contextRequirements': ['user.id', 'user.id']}",
          "contextRequirements[1]: duplicate \"user.id\" (also at [0])");
}

static void test_invalid_scalars(void **state) {
  (void)state;
  invalid("{'outputFormat': 'xml'}",
          "outputFormat: must be one of text, json, structured (got \"xml\")");
  invalid("{'maxTokens': 0}",
          "maxTokens: expected an integer greater than 0 (got 0)");
  invalid("{'maxTokens': -5}",
          "maxTokens: expected an integer greater than 0 (got -5)");
  invalid("{'maxTokens': 1.5}",
          "maxTokens: expected an integer greater than 0");
  invalid("{'maxTokens': '100'}",
          "maxTokens: expected an integer greater than 0");
  invalid("{'temperature': 2.5}",
          "temperature: expected a number between 0 and 2 (got 2.5)");
  invalid("{'temperature': -0.1}",
          "temperature: expected a number between 0 and 2 (got -0.1)");
  invalid("{'temperature': 3}",
          "temperature: expected a number between 0 and 2 (got 3)");
  invalid("{'temperature': 'hot'}",
          "temperature: expected a number between 0 and 2");
}

static void test_invalid_stdio(void **state) {
  (void)state;
  invalid("{'transport': 'stdio'}", "transport: expected an object");
  invalid("{'transport': {'type': null}}",
          "transport.type: missing required field");
  invalid("{'transport': {'type': 'ftp'}}",
          "transport.type: must be one of stdio, http (got \"ftp\")");
  invalid("{'transport': {'command': null}}",
          "transport.command: missing required field");
  invalid("{'transport': {'command': ''}}",
          "transport.command: must not be empty");
  invalid("{'transport': {'args': '--fast'}}",
          "transport.args: expected an array");
  invalid("{'transport': {'args': ['a', 1]}}",
          "transport.args[1]: expected a string");
  invalid("{'transport': {'env': ['A=1']}}",
          "transport.env: expected an object");
  invalid("{'transport': {'env': {'1X': 'a'}}}",
          "transport.env.1X: invalid variable name (letters, digits and _, "
          "not starting with a digit)");
  invalid("{'transport': {'env': {'A=B': 'a'}}}",
          "transport.env.A=B: invalid variable name (letters, digits and _, "
          "not starting with a digit)");
  invalid("{'transport': {'env': {'A': 1}}}",
          "transport.env.A: expected a string");
  invalid("{'transport': {'cwd': ''}}", "transport.cwd: must not be empty");
  invalid("{'transport': {'url': 'http://x'}}",
          "transport.url: unknown field (known: type, command, args, env, cwd "
          "for a stdio transport)");
}

static void test_invalid_http(void **state) {
  (void)state;
  const char *const msg = "transport.url: expected an http:// or https:// URL";
  invalid_from(http_def, "{'transport': {'url': 'ftp://x/'}}", msg);
  invalid_from(http_def, "{'transport': {'url': 'http://'}}", msg);
  invalid_from(http_def, "{'transport': {'url': 'https:///mcp'}}", msg);
  invalid_from(http_def, "{'transport': {'url': 'http://a b/'}}", msg);
  invalid_from(http_def, "{'transport': {'url': 'http://a/\\n'}}", msg);
  invalid_from(http_def, "{'transport': {'url': 'svc:8080'}}", msg);
  /* The authority: these were accepted, then never connected. */
  invalid_from(http_def, "{'transport': {'url': 'http://[::1/mcp'}}",
               "transport.url: expected an http:// or https:// URL: the "
               "IPv6 address has no closing ]");
  invalid_from(http_def, "{'transport': {'url': 'http://[::1]x/mcp'}}",
               "transport.url: expected an http:// or https:// URL: text "
               "after the host that is not :PORT");
  invalid_from(http_def, "{'transport': {'url': 'http://a:99999/mcp'}}",
               "transport.url: expected an http:// or https:// URL: the "
               "port is not 1 to 65535");
  invalid_from(http_def, "{'transport': {'url': 'http://a:0/'}}",
               "transport.url: expected an http:// or https:// URL: the "
               "port is not 1 to 65535");
  invalid_from(http_def, "{'transport': {'url': 'http://a:/'}}",
               "transport.url: expected an http:// or https:// URL: the "
               "port is not 1 to 65535");
  invalid_from(http_def, "{'transport': {'url': 'http://a:8o80/'}}",
               "transport.url: expected an http:// or https:// URL: the "
               "port is not 1 to 65535");
  invalid_from(http_def, "{'transport': {'url': 'http://u:p@/mcp'}}",
               "transport.url: expected an http:// or https:// URL: no host");
  invalid_from(http_def, "{'transport': {'url': 1}}",
               "transport.url: expected a string");
  invalid_from(http_def, "{'transport': {'url': null}}",
               "transport.url: missing required field");
  invalid_from(http_def, "{'transport': {'headers': {'Bad Name': 'x'}}}",
               "transport.headers.Bad Name: invalid header name");
  invalid_from(http_def, "{'transport': {'headers': {'X': 'a\\r\\nB: c'}}}",
               "transport.headers.X: must not contain CR or LF");
  invalid_from(http_def, "{'transport': {'headers': {'X': 'a\\u0001b'}}}",
               "transport.headers.X: must not contain control characters "
               "(byte 1 is 0x01)");
  invalid_from(http_def, "{'transport': {'headers': {'X': 'ab\\u007f'}}}",
               "transport.headers.X: must not contain control characters "
               "(byte 2 is 0x7f)");
  valid_from(http_def, "{'transport': {'headers': {'X': 'a\\tb c'}}}");
  invalid_from(http_def, "{'transport': {'headers': {'X': true}}}",
               "transport.headers.X: expected a string");
  /* Before: a Content-Length of the config's went out beside the real
   * one, and the agent read the body as a second request. */
  static const char *const reserved[] = {"Content-Length", "host",
                                         "Transfer-Encoding", "Connection",
                                         "Mcp-Session-Id", "MCP-Protocol-Version",
                                         "mcp-param-x", "Last-Event-ID"};
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
    char patch[128], want[256];
    snprintf(patch, sizeof patch, "{'transport': {'headers': {'%s': '0'}}}",
             reserved[i]);
    snprintf(want, sizeof want,
             "transport.headers.%s: switchboard sets this header itself "
             "(HTTP framing, or the MCP transport's own); it cannot be "
             "configured",
             reserved[i]);
    invalid_from(http_def, patch, want);
  }
  invalid_from(http_def, "{'transport': {'command': 'x'}}",
               "transport.command: unknown field (known: type, url, headers, "
               "oauth for an http transport)");
}

static void test_invalid_limits_tools(void **state) {
  (void)state;
  invalid("{'limits': 4}", "limits: expected an object");
  invalid("{'limits': {'maxConcurrent': 0}}",
          "limits.maxConcurrent: expected an integer between 1 and 1024 "
          "(got 0)");
  invalid("{'limits': {'maxConcurrent': 1025}}",
          "limits.maxConcurrent: expected an integer between 1 and 1024 "
          "(got 1025)");
  invalid("{'limits': {'timeoutMs': 'x'}}",
          "limits.timeoutMs: expected an integer between 1 and 86400000");
  invalid("{'limits': {'timeoutMs': 0}}",
          "limits.timeoutMs: expected an integer between 1 and 86400000 "
          "(got 0)");
  invalid("{'limits': {'retries': 11}}",
          "limits.retries: expected an integer between 0 and 10 (got 11)");
  invalid("{'limits': {'retries': -1}}",
          "limits.retries: expected an integer between 0 and 10 (got -1)");
  invalid("{'limits': {'max': 1}}",
          "limits.max: unknown field (known: maxConcurrent, timeoutMs, "
          "retries, cacheTtlMs, startupTimeoutMs)");
  invalid("{'limits': {'cacheTtlMs': -5}}",
          "limits.cacheTtlMs: expected an integer between 0 and 86400000 "
          "(got -5)");
  invalid("{'limits': {'startupTimeoutMs': 999}}",
          "limits.startupTimeoutMs: expected an integer between 1000 and "
          "600000 (got 999)");
  invalid("{'idempotentTools': 'lookup'}",
          "idempotentTools: expected an array");
  invalid("{'idempotentTools': ['a', '']}",
          "idempotentTools[1]: must not be empty");
}

static void test_parse_text(void **state) {
  (void)state;
  sb_agent_def *d = NULL;
  sb_error err = {0};
  const char *broken = "{\"id\": \"x\",\n \"name\": }";
  assert_int_equal(sb_agent_def_parse_text(broken, strlen(broken), &d, &err),
                   SB_EINVAL);
  assert_null(d);
  assert_true(strncmp(err.msg, "line 2 column ", 14) == 0);
  const char *dup = "{\"id\": \"x\", \"id\": \"y\"}";
  assert_int_equal(sb_agent_def_parse_text(dup, strlen(dup), &d, &err),
                   SB_EINVAL);
  assert_non_null(strstr(err.msg, "duplicate"));

  json_t *j = J(http_def);
  char *text = json_dumps(j, 0);
  assert_int_equal(sb_agent_def_parse_text(text, strlen(text), &d, &err), 0);
  assert_string_equal(d->id, "svc");
  sb_agent_def_free(d);
  sb_free(text);
  json_decref(j);
}

/* Every allocation in parse and serialise may fail: the result is ENOMEM
 * or success, never a crash or a leak (live bytes return to where they
 * were). */
static void test_alloc_failures(void **state) {
  (void)state;
  json_t *j = J(stdio_def);
  size_t before = sb_alloc_live_bytes();
  int saw_enomem = 0;
  for (long n = 1; n < 1000; n++) {
    sb_agent_def *d = NULL;
    sb_error err = {0};
    sb_alloc_fail_after(n);
    int rc = sb_agent_def_parse(j, &d, &err);
    json_t *out = rc == 0 ? sb_agent_def_to_json(d) : NULL;
    sb_alloc_fail_after(0);
    if (rc != 0) {
      assert_int_equal(rc, SB_ENOMEM);
      assert_null(d);
      saw_enomem = 1;
    } else if (out) {
      json_decref(out);
      sb_agent_def_free(d);
      break; /* the n-th allocation came after everything */
    }
    json_decref(out);
    sb_agent_def_free(d);
    assert_int_equal(sb_alloc_live_bytes(), before);
  }
  assert_true(saw_enomem);
  assert_int_equal(sb_alloc_live_bytes(), before);
  json_decref(j);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_stdio),
      cmocka_unit_test(test_parse_http_defaults),
      cmocka_unit_test(test_valid_edges),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_oauth),
      cmocka_unit_test(test_refcount),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_invalid_top),
      cmocka_unit_test(test_invalid_id),
      cmocka_unit_test(test_invalid_name_type_caps),
      cmocka_unit_test(test_invalid_models),
      cmocka_unit_test(test_invalid_requirements),
      cmocka_unit_test(test_invalid_scalars),
      cmocka_unit_test(test_invalid_stdio),
      cmocka_unit_test(test_invalid_http),
      cmocka_unit_test(test_invalid_limits_tools),
      cmocka_unit_test(test_parse_text),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
