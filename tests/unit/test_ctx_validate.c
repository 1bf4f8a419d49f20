/* test_ctx_validate.c: MCPContext validation, defaults and RFC 3339
 * date-times (src/ctx/validate.c).
 *
 * Each invalid case starts from one valid document, breaks exactly one
 * thing with a JSON Patch, and checks the whole error message, since the
 * message (path + reason) is what an API client sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "test_json.h"
#include "ctx/ctx.h"

/* ---- helpers ---------------------------------------------------------- */



static const char *const valid_doc =
    "{'id': 'ctx_1', 'workflowId': 'wf_1', 'tenantId': 'acme', "
    " 'sessionId': 's1', 'timestamp': '2026-11-25T09:17:41.123Z', "
    " 'version': 3, "
    " 'data': {"
    "  'conversation': {'messages': ["
    "     {'role': 'user', 'content': 'I want a civic'},"
    "     {'role': 'agent', 'content': 'Which year?', 'agentId': 'sales',"
    "      'timestamp': '2026-11-25T10:17:41+01:00', 'extra': [1]}],"
    "   'intent': 'buy', 'entities': {'model': 'civic', 'x': {'y': 1}},"
    "   'sentiment': 'positive', 'language': 'en'},"
    "  'workflow': {'currentStep': 'quote', 'completedSteps': ['greet'],"
    "   'variables': {'vin': '1HGCM82633A004352'}, 'outputs': {},"
    "   'errors': [{'step': 'credit', 'message': 'timeout', 'code': 'E1'}]},"
    "  'user': {'id': 'u1', 'profile': {'name': 'Ada'},"
    "   'preferences': {'contact': 'email'}, 'permissions': ['read'],"
    "   'history': [{'timestamp': '2026-01-01T00:00:00Z',"
    "                'summary': 'test drive', 'rating': 5}]},"
    "  'business': {'dealership': {'name': 'North'}, 'inventory': {},"
    "   'policies': {}, 'integrations': {'crm': 'x'}}},"
    " 'metadata': {'agents': ['sales'], 'permissions': ['ctx:read'],"
    "  'expiresAt': '2026-11-26T09:17:41Z'}}";

/* valid_doc with `patch` applied must fail validation with exactly `msg`. */
static void invalid(const char *patch, const char *msg) {
  json_t *doc = J(valid_doc), *p = J(patch), *bad = NULL;
  sb_error err = {0};
  if (sb_ctx_patch_apply(doc, p, &bad, &err) != 0)
    fail_msg("test patch %s: %s", patch, err.msg);
  memset(&err, 0, sizeof err);
  int rc = sb_ctx_validate(bad, &err);
  if (rc != SB_EINVAL) fail_msg("%s: accepted", patch);
  assert_int_equal(err.code, SB_EINVAL);
  if (strcmp(err.msg, msg) != 0)
    fail_msg("%s:\n got  \"%s\"\n want \"%s\"", patch, err.msg, msg);
  json_decref(doc);
  json_decref(p);
  json_decref(bad);
}

/* ---- validation ------------------------------------------------------- */

static void test_valid_document(void **state) {
  (void)state;
  json_t *doc = J(valid_doc);
  sb_error err = {0};
  if (sb_ctx_validate(doc, &err) != 0) fail_msg("%s", err.msg);
  if (sb_ctx_validate_data(json_object_get(doc, "data"), &err) != 0)
    fail_msg("%s", err.msg);
  json_decref(doc);
}

static void test_invalid_fields_named(void **state) {
  (void)state;
  invalid("[{'op': 'replace', 'path': '/data/conversation/sentiment', "
          "'value': 'angry'}]",
          "data.conversation.sentiment: must be one of positive, neutral, "
          "negative (got \"angry\")");
  invalid("[{'op': 'replace', 'path': '/data/conversation/sentiment', "
          "'value': 1}]",
          "data.conversation.sentiment: must be one of positive, neutral, "
          "negative (got an integer)");
  invalid("[{'op': 'add', 'path': '/data/workflow/completedSteps/-', "
          "'value': 'a'}, {'op': 'add', 'path': '/data/workflow/"
          "completedSteps/-', 'value': {}}]",
          "data.workflow.completedSteps[2]: expected a string (got an "
          "object)");
  invalid("[{'op': 'remove', 'path': '/metadata/expiresAt'}]",
          "metadata.expiresAt: missing required field");
  invalid("[{'op': 'replace', 'path': '/metadata/expiresAt', "
          "'value': 'tomorrow'}]",
          "metadata.expiresAt: expected an RFC 3339 date-time (got "
          "\"tomorrow\")");
  invalid("[{'op': 'replace', 'path': '/timestamp', 'value': 17}]",
          "timestamp: expected an RFC 3339 date-time string (got an "
          "integer)");
  invalid("[{'op': 'replace', 'path': '/version', 'value': 0}]",
          "version: must be >= 1 (got 0)");
  invalid("[{'op': 'replace', 'path': '/version', 'value': 1.5}]",
          "version: expected an integer (got a number)");
  invalid("[{'op': 'replace', 'path': '/tenantId', 'value': ''}]",
          "tenantId: must not be empty");
  invalid("[{'op': 'remove', 'path': '/id'}]", "id: missing required field");
  invalid("[{'op': 'replace', 'path': '/workflowId', 'value': null}]",
          "workflowId: expected a string (got null)");
  invalid("[{'op': 'add', 'path': '/data/conversation/sentimnet', "
          "'value': 'x'}]",
          "data.conversation.sentimnet: unknown field (known: messages, intent, "
          "entities, sentiment, language)");
  invalid("[{'op': 'add', 'path': '/owner', 'value': 'x'}]",
          "owner: unknown field (known: id, workflowId, tenantId, sessionId, "
          "timestamp, version, data, metadata)");
  invalid("[{'op': 'replace', 'path': '/data/conversation/messages/1/role', "
          "'value': 'robot'}]",
          "data.conversation.messages[1].role: must be one of user, "
          "assistant, system, agent, tool (got \"robot\")");
  invalid("[{'op': 'remove', 'path': '/data/conversation/messages/0/content'}]",
          "data.conversation.messages[0].content: missing required field");
  invalid("[{'op': 'add', 'path': '/data/conversation/messages/-', "
          "'value': 'hi'}]",
          "data.conversation.messages[2]: expected an object (got a string)");
  invalid("[{'op': 'replace', 'path': '/data/conversation/messages/1/"
          "timestamp', 'value': '2026-02-30T00:00:00Z'}]",
          "data.conversation.messages[1].timestamp: expected an RFC 3339 "
          "date-time (got \"2026-02-30T00:00:00Z\")");
  invalid("[{'op': 'replace', 'path': '/data/conversation/entities', "
          "'value': []}]",
          "data.conversation.entities: expected an object (got an array)");
  invalid("[{'op': 'replace', 'path': '/data/workflow/errors/0/step', "
          "'value': 5}]",
          "data.workflow.errors[0].step: expected a string (got an integer)");
  invalid("[{'op': 'remove', 'path': '/data/user/history/0/timestamp'}]",
          "data.user.history[0].timestamp: missing required field");
  invalid("[{'op': 'replace', 'path': '/data/user/permissions', "
          "'value': 'all'}]",
          "data.user.permissions: expected an array (got a string)");
  invalid("[{'op': 'remove', 'path': '/data/business/policies'}]",
          "data.business.policies: missing required field");
  invalid("[{'op': 'replace', 'path': '/data/business', 'value': true}]",
          "data.business: expected an object (got a boolean)");
  invalid("[{'op': 'replace', 'path': '/metadata/agents/0', 'value': 7}]",
          "metadata.agents[0]: expected a string (got an integer)");
  invalid("[{'op': 'remove', 'path': '/data'}]",
          "data: missing required field");
  invalid("[{'op': 'replace', 'path': '', 'value': [1]}]",
          "context: expected an object (got an array)");
}

static void test_validate_data_only(void **state) {
  (void)state;
  json_t *doc = J(valid_doc);
  json_t *data = json_object_get(doc, "data");
  sb_error err = {0};
  json_object_del(json_object_get(data, "workflow"), "currentStep");
  assert_int_equal(sb_ctx_validate_data(data, &err), SB_EINVAL);
  assert_string_equal(err.msg, "data.workflow.currentStep: missing required "
                               "field");
  json_t *arr = J("[]");
  assert_int_equal(sb_ctx_validate_data(arr, &err), SB_EINVAL);
  assert_string_equal(err.msg, "data: expected an object (got an array)");
  json_decref(arr);
  json_decref(doc);
}

/* ---- defaults --------------------------------------------------------- */

static void test_fill_defaults(void **state) {
  (void)state;
  json_t *partial =
      J("{'id': 'c1', 'tenantId': 't1', 'timestamp': '2026-11-25T00:00:00Z',"
        " 'data': {'conversation': {'messages': [{'role': 'user', "
        "  'content': 'hi'}], 'language': 'de'}, 'user': {'id': 'u9'}},"
        " 'metadata': {'expiresAt': '2026-12-25T00:00:00Z'}}");
  json_t *before = json_deep_copy(partial);
  json_t *full = sb_ctx_fill_defaults(partial);
  assert_non_null(full);
  assert_json_eq(partial, before);
  sb_error err = {0};
  if (sb_ctx_validate(full, &err) != 0) fail_msg("%s", err.msg);
  json_t *want =
      J("{'id': 'c1', 'tenantId': 't1', 'timestamp': '2026-11-25T00:00:00Z',"
        " 'workflowId': '', 'sessionId': '', 'version': 1,"
        " 'data': {"
        "  'conversation': {'messages': [{'role': 'user', 'content': 'hi'}],"
        "   'language': 'de', 'intent': '', 'entities': {},"
        "   'sentiment': 'neutral'},"
        "  'workflow': {'currentStep': '', 'completedSteps': [],"
        "   'variables': {}, 'outputs': {}, 'errors': []},"
        "  'user': {'id': 'u9', 'profile': {}, 'preferences': {},"
        "   'permissions': [], 'history': []},"
        "  'business': {'dealership': {}, 'inventory': {}, 'policies': {},"
        "   'integrations': {}}},"
        " 'metadata': {'expiresAt': '2026-12-25T00:00:00Z', 'agents': [],"
        "  'permissions': []}}");
  assert_json_eq(full, want);
  json_decref(want);
  json_decref(full);

  /* what only the caller can supply stays missing */
  full = sb_ctx_fill_defaults(NULL);
  assert_non_null(full);
  assert_int_equal(sb_ctx_validate(full, &err), SB_EINVAL);
  assert_string_equal(err.msg, "id: missing required field");
  assert_null(json_object_get(full, "tenantId"));
  assert_null(json_object_get(full, "timestamp"));
  assert_null(json_object_get(json_object_get(full, "metadata"), "expiresAt"));
  json_decref(full);

  /* invalid present values are kept for the validator to name */
  json_t *odd = J("{'data': {'workflow': 5}, 'version': 'x'}");
  full = sb_ctx_fill_defaults(odd);
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(full, "data"), "workflow")),
                   5);
  assert_string_equal(json_string_value(json_object_get(full, "version")), "x");
  json_decref(full);
  json_decref(odd);

  json_t *arr = J("[]");
  assert_null(sb_ctx_fill_defaults(arr));
  json_decref(arr);
  json_decref(partial);
  json_decref(before);
}

/* ---- date-times ------------------------------------------------------- */

static void test_datetime(void **state) {
  (void)state;
  static const char *const good[] = {
      "2026-11-25T09:17:41Z",      "2026-11-25t09:17:41z",
      "2026-11-25T09:17:41.5Z",    "2026-11-25T09:17:41.123456789Z",
      "2026-11-25T09:17:41+01:00", "2026-11-25T09:17:41-23:59",
      "2024-02-29T00:00:00Z",      "2000-02-29T00:00:00Z",
      "1990-12-31T23:59:60Z", /* leap second */
  };
  static const char *const bad[] = {
      "",
      "2026-11-25",
      "2026-11-25 09:17:41Z",
      "2026-11-25T09:17:41",
      "2026-11-25T09:17Z",
      "2026-13-01T00:00:00Z",
      "2026-00-01T00:00:00Z",
      "2026-04-31T00:00:00Z",
      "2025-02-29T00:00:00Z",
      "1900-02-29T00:00:00Z",
      "2026-11-25T24:00:00Z",
      "2026-11-25T09:60:00Z",
      "2026-11-25T09:17:61Z",
      "2026-11-25T09:17:41.Z",
      "2026-11-25T09:17:41+0100",
      "2026-11-25T09:17:41+24:00",
      "2026-11-25T09:17:41Zjunk",
      "2026-1-25T09:17:41Z",
      "+2026-11-25T09:17:41Z",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    if (!sb_ctx_datetime_valid(good[i])) fail_msg("%s refused", good[i]);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (sb_ctx_datetime_valid(bad[i])) fail_msg("%s accepted", bad[i]);
  assert_false(sb_ctx_datetime_valid(NULL));
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_document),
      cmocka_unit_test(test_invalid_fields_named),
      cmocka_unit_test(test_validate_data_only),
      cmocka_unit_test(test_fill_defaults),
      cmocka_unit_test(test_datetime),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
