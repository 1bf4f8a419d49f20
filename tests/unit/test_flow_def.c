/* test_flow_def.c: workflow definitions (src/flow/def.c, step.c, cond.c,
 * template.c, defs.c): the example file, every check with its exact
 * message, conditions and templates against a small dealership context,
 * durations, sets of definitions from the config.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/core.h"
#include "flow/flow.h"
#include "test_json.h"

/* ---- helpers ---------------------------------------------------------- */

/* Build a definition from YAML text named `name`; rc as returned. */
static int build(const char *yaml, const char *name, sb_flow_def **out,
                 sb_error *err) {
  json_t *doc = NULL, *lines = NULL;
  memset(err, 0, sizeof *err);
  *out = NULL;
  int rc = sb_config_read_yaml(yaml, strlen(yaml), name, &doc, &lines, err);
  if (rc == 0) rc = sb_flow_def_from_json(doc, lines, name, out, err);
  json_decref(doc);
  json_decref(lines);
  return rc;
}

static sb_flow_def *build_ok(const char *yaml) {
  sb_flow_def *d = NULL;
  sb_error err;
  if (build(yaml, "wf.yaml", &d, &err) != 0) fail_msg("%s", err.msg);
  return d;
}

static const sb_flow_step *step(const sb_flow_def *d, const char *id) {
  int i = sb_flow_def_step(d, id);
  if (i == SB_FLOW_NONE) fail_msg("no step %s", id);
  return &d->steps[i];
}

static int idx(const sb_flow_def *d, const char *id) {
  int i = sb_flow_def_step(d, id);
  if (i == SB_FLOW_NONE) fail_msg("no step %s", id);
  return i;
}

/* ---- the example ------------------------------------------------------ */

static void test_example_file(void **state) {
  (void)state;
  json_t *doc = NULL, *lines = NULL;
  sb_error err;
  const char *path = SB_SOURCE_DIR "/examples/workflows/example.yaml";
  if (sb_config_read_yaml_file(path, &doc, &lines, &err) != 0)
    fail_msg("%s", err.msg);
  sb_flow_def *d = NULL;
  if (sb_flow_def_from_json(doc, lines, "example.yaml", &d, &err) != 0)
    fail_msg("%s", err.msg);
  assert_string_equal(d->name, "lead-to-test-drive");
  assert_string_equal(d->description, "Web inquiry to a booked test drive");
  assert_string_equal(d->file, "example.yaml");
  assert_int_equal(d->max_steps, 50);
  assert_true(json_equal(d->source, doc));
  assert_int_equal(d->nsteps, 13); /* 11 top-level, 2 inside offer */
  static const char *const order[] = {
      "intake",  "route",   "offer",        "confirm",  "announce",
      "book",    "service", "human-review", "approval", "done",
      "give-up", "search",  "quote"};
  for (int i = 0; i < 13; i++)
    assert_int_equal(sb_flow_def_step(d, order[i]), i);
  assert_int_equal(sb_flow_def_step(d, "nope"), SB_FLOW_NONE);

  const sb_flow_step *s = step(d, "intake");
  assert_int_equal(s->kind, SB_FLOW_CALL);
  assert_int_equal(s->line, 17);
  assert_string_equal(s->capability, "intake.classify");
  assert_null(s->agent);
  assert_string_equal(s->tool, "classify_inquiry");
  json_t *args = J("{'text': '$conversation.messages[-1].content', "
                   "'channel': 'web'}");
  assert_json_eq(s->arguments, args);
  json_decref(args);
  assert_string_equal(s->save, "workflow.outputs.intake");
  assert_int_equal(s->timeout_ms, 20000);
  assert_int_equal(s->retry_attempts, 3);
  assert_int_equal(s->retry_backoff_ms, 500);
  assert_int_equal(s->on_failure, idx(d, "human-review"));
  assert_int_equal(s->next, idx(d, "route"));
  assert_int_equal(s->parent, SB_FLOW_NONE);

  s = step(d, "route");
  assert_int_equal(s->kind, SB_FLOW_BRANCH);
  assert_null(s->save);
  assert_int_equal(s->ncases, 2);
  assert_int_equal(s->cases[0].cond.op, SB_FLOW_COND_EQUALS);
  assert_string_equal(s->cases[0].cond.path, "workflow.outputs.intake.intent");
  assert_string_equal(json_string_value(s->cases[0].cond.value), "buy");
  assert_int_equal(s->cases[0].target, idx(d, "offer"));
  assert_int_equal(s->cases[1].cond.op, SB_FLOW_COND_ANY);
  assert_int_equal(s->cases[1].cond.nitems, 2);
  assert_int_equal(s->cases[1].cond.items[0].op, SB_FLOW_COND_IN);
  assert_int_equal(s->cases[1].cond.items[1].op, SB_FLOW_COND_EXISTS);
  assert_int_equal(s->cases[1].target, idx(d, "service"));
  assert_int_equal(s->otherwise, idx(d, "human-review"));
  assert_int_equal(s->next, idx(d, "offer"));

  s = step(d, "offer");
  assert_int_equal(s->kind, SB_FLOW_PARALLEL);
  assert_int_equal(s->nbranches, 2);
  assert_int_equal(s->branches[0], idx(d, "search"));
  assert_int_equal(s->branches[1], idx(d, "quote"));
  assert_int_equal(s->on_failure, idx(d, "human-review"));
  assert_null(s->save);
  s = step(d, "search");
  assert_int_equal(s->parent, idx(d, "offer"));
  assert_int_equal(s->next, SB_FLOW_NONE);
  assert_int_equal(s->on_failure, SB_FLOW_NONE);
  assert_string_equal(s->save, "workflow.outputs.search");
  assert_int_equal(s->line, 44);
  s = step(d, "quote");
  assert_string_equal(s->agent, "finance");
  assert_int_equal(s->timeout_ms, 30000);
  assert_int_equal(s->retry_attempts, 1);

  s = step(d, "confirm");
  assert_int_equal(s->kind, SB_FLOW_ASK);
  assert_string_equal(s->message, "Which test-drive slot suits you?");
  assert_string_equal(json_string_value(json_object_get(s->schema, "type")),
                      "object");
  assert_int_equal(s->timeout_ms, 3600000);
  assert_string_equal(s->save, "workflow.variables.slot");

  s = step(d, "announce");
  assert_int_equal(s->kind, SB_FLOW_EMIT);
  assert_string_equal(s->event_type, "lead.qualified");
  assert_string_equal(
      json_string_value(json_object_get(s->event_data, "source")),
      "$$web-form");
  assert_null(s->save);
  assert_int_equal(s->next, idx(d, "book"));

  s = step(d, "book");
  assert_int_equal(s->retry_attempts, 2);
  assert_int_equal(s->retry_backoff_ms, 1000);
  assert_int_equal(s->next, idx(d, "done"));

  s = step(d, "approval");
  assert_int_equal(s->kind, SB_FLOW_WAIT);
  assert_string_equal(s->event_type, "lead.reviewed");
  assert_non_null(json_object_get(s->where, "context"));
  assert_int_equal(s->timeout_ms, 2ULL * 24 * 3600 * 1000);
  assert_int_equal(s->on_failure, idx(d, "give-up"));
  assert_string_equal(s->save, "workflow.outputs.approval");
  assert_int_equal(s->next, idx(d, "done"));

  s = step(d, "done");
  assert_int_equal(s->kind, SB_FLOW_END);
  assert_false(s->end_failed);
  assert_int_equal(s->next, SB_FLOW_NONE);
  s = step(d, "give-up");
  assert_true(s->end_failed);
  assert_string_equal(s->end_message,
                      "Nobody reviewed the lead within two days");
  assert_int_equal(s->next, SB_FLOW_NONE);

  /* the kinds' names */
  assert_string_equal(sb_flow_step_kind_name(SB_FLOW_CALL), "call");
  assert_string_equal(sb_flow_step_kind_name(SB_FLOW_PARALLEL), "parallel");
  assert_string_equal(sb_flow_step_kind_name(SB_FLOW_END), "end");
  assert_string_equal(sb_flow_step_kind_name((sb_flow_step_kind)99), "unknown");
  sb_flow_def_free(d);
  sb_flow_def_free(NULL);

  /* every allocation may fail: ENOMEM, nothing leaked */
  size_t base = sb_alloc_live_bytes();
  int failures = 0;
  for (long n = 1; n < 2000; n++) {
    sb_alloc_fail_after(n);
    int rc = sb_flow_def_from_json(doc, lines, "example.yaml", &d, &err);
    sb_alloc_fail_after(0);
    if (rc == 0) {
      sb_flow_def_free(d);
      break;
    }
    failures++;
    if (rc != SB_ENOMEM) fail_msg("allocation %ld: %s", n, err.msg);
    assert_null(d);
    assert_int_equal(sb_alloc_live_bytes(), base);
  }
  assert_true(failures > 20);
  assert_int_equal(sb_alloc_live_bytes(), base);
  json_decref(doc);
  json_decref(lines);
}

/* The example of flow.h's format comment, verbatim, with the three steps
 * it names but leaves out (service, general, human-review). */
static const char header_example[] =
    "name: lead-to-test-drive        # [A-Za-z0-9._-]{1,64}, unique\n"
    "description: Inquiry to booked test drive\n"
    "max_steps: 100                  # steps a run may execute (a cycle\n"
    "                                # guard); default 100, 1..100000\n"
    "steps:\n"
    "  - id: intake                  # [A-Za-z0-9_-]{1,64}, unique in the\n"
    "                                # workflow (nested steps included)\n"
    "    call:                       # call a tool of an agent\n"
    "      capability: intake.classify   # routed with the run's context,\n"
    "      # agent: general              # ...or one agent by id (not both)\n"
    "      tool: classify_inquiry\n"
    "      arguments:                # literals, and \"$path\" values taken\n"
    "        text: $conversation.messages[-1].content   # from the context\n"
    "        channel: web\n"
    "    save: conversation.entities # where the result goes; default\n"
    "                                # workflow.outputs.<step id>\n"
    "    timeout: 20s                # each try; units ms s m h d\n"
    "    retry: { attempts: 3, backoff: 500ms }  # tries in all; backoff\n"
    "                                # doubles per try, capped at 30s\n"
    "    on_failure: human-review    # step to go to once retries are spent\n"
    "    next: route                 # default: the step that follows\n"
    "  - id: route\n"
    "    branch:                     # first case whose `if` holds\n"
    "      - if: { path: workflow.outputs.intake.intent, equals: buy }\n"
    "        goto: offer\n"
    "      - if: { any: [ { path: conversation.intent, in: [service, parts] "
    "},\n"
    "                     { path: workflow.variables.vin, exists: true } ] }\n"
    "        goto: service\n"
    "      - else: general           # no case holds and no else: `next`\n"
    "  - id: offer\n"
    "    parallel:                   # run these at once; join when all end\n"
    "      - id: search\n"
    "        call: { capability: sales.inventory, tool: search_inventory }\n"
    "      - id: quote\n"
    "        call: { capability: finance.quote, tool: payment_quote }\n"
    "  - id: confirm\n"
    "    ask:                        # a person answers (the run waits)\n"
    "      message: Which slot suits you?\n"
    "      schema: { type: object, properties: { slot: { type: string } } }\n"
    "      timeout: 1h\n"
    "    save: workflow.variables.slot\n"
    "  - id: announce\n"
    "    emit: { type: lead.qualified, data: { vin: $workflow.variables.vin } "
    "}\n"
    "  - id: approval\n"
    "    wait:                       # until an event of this type whose\n"
    "      event: finance.approved   # data matches `where` (each key equal)\n"
    "      where: { contextId: $context.id }\n"
    "      timeout: 10m\n"
    "  - id: done\n"
    "    end: completed              # or: end: failed (with message:)\n"
    "  - id: service\n"
    "    call: { capability: service.book, tool: book_service }\n"
    "  - id: general\n"
    "    call: { capability: general.answer, tool: answer }\n"
    "  - id: human-review\n"
    "    end: failed\n"
    "    message: needs a person\n";

static void test_header_example(void **state) {
  (void)state;
  sb_flow_def *d = build_ok(header_example);
  assert_string_equal(d->name, "lead-to-test-drive");
  assert_int_equal(d->max_steps, 100);
  assert_int_equal(d->nsteps, 12); /* 10 top-level, 2 inside offer */
  const sb_flow_step *s = step(d, "intake");
  assert_string_equal(s->save, "conversation.entities");
  assert_int_equal(s->timeout_ms, 20000);
  assert_int_equal(s->retry_attempts, 3);
  assert_int_equal(s->retry_backoff_ms, 500);
  assert_int_equal(s->on_failure, idx(d, "human-review"));
  assert_int_equal(s->next, idx(d, "route"));
  s = step(d, "route");
  assert_int_equal(s->ncases, 2);
  assert_int_equal(s->otherwise, idx(d, "general"));
  s = step(d, "offer");
  assert_int_equal(s->nbranches, 2);
  assert_int_equal(s->next, idx(d, "confirm"));
  assert_string_equal(step(d, "quote")->capability, "finance.quote");
  assert_string_equal(step(d, "confirm")->save, "workflow.variables.slot");
  assert_int_equal(step(d, "confirm")->timeout_ms, 3600000);
  assert_string_equal(step(d, "announce")->event_type, "lead.qualified");
  s = step(d, "approval");
  assert_string_equal(s->event_type, "finance.approved");
  assert_int_equal(s->timeout_ms, 600000);
  assert_int_equal(s->next, idx(d, "done"));
  sb_flow_def_free(d);
}

/* Defaults: next is the following step, the last one ends the run. */
static void test_defaults(void **state) {
  (void)state;
  sb_flow_def *d = build_ok("name: w\n"
                            "steps:\n"
                            "  - id: a\n"
                            "    call: {agent: sales, tool: t}\n"
                            "  - id: b\n"
                            "    ask: {message: ok?}\n"
                            "  - id: c\n"
                            "    wait: {event: x.y}\n");
  assert_int_equal(d->max_steps, 100);
  assert_null(d->description);
  assert_int_equal(d->steps[0].next, 1);
  assert_int_equal(d->steps[1].next, 2);
  assert_int_equal(d->steps[2].next, SB_FLOW_NONE);
  assert_true(json_is_object(d->steps[0].arguments));
  assert_int_equal(json_object_size(d->steps[0].arguments), 0);
  assert_int_equal(d->steps[0].retry_attempts, 1);
  assert_int_equal(d->steps[0].retry_backoff_ms, 0);
  assert_int_equal(d->steps[0].timeout_ms, 0);
  assert_string_equal(d->steps[1].save, "workflow.outputs.b");
  assert_null(d->steps[1].schema);
  assert_string_equal(d->steps[2].save, "workflow.outputs.c");
  assert_null(d->steps[2].where);
  sb_flow_def_free(d);
}

/* ---- malformed definitions -------------------------------------------- */

static const struct {
  const char *steps; /* YAML after "name: w\nsteps:\n" (line 3 on) */
  const char *msg;   /* the whole message */
} bad[] = {
    /* step ids and kinds */
    {"  - call: {agent: a, tool: t}\n",
     "wf.yaml:3: steps[0].id: required (every step has an id)"},
    {"  - id: a b\n    end: completed\n",
     "wf.yaml:3: steps[0].id: \"a b\" is not a valid step id (1-64 of A-Z "
     "a-z 0-9 _ -)"},
    {"  - id: a\n    end: completed\n  - id: a\n    end: failed\n",
     "wf.yaml:5: steps[1].id: duplicate step id \"a\" (first on line 3)"},
    {"  - id: a\n    parallel:\n      - id: a\n        emit: {type: x.y}\n",
     "wf.yaml:5: steps[0].parallel[0].id: duplicate step id \"a\" (first on "
     "line 3)"},
    {"  - just text\n",
     "wf.yaml:3: steps[0]: expected a step (a mapping with an id), got a "
     "string"},
    {"  - id: a\n    save: workflow.x\n",
     "wf.yaml:3: step \"a\": needs one of call, branch, parallel, ask, emit, "
     "wait, end (what the step does)"},
    {"  - id: a\n    call: {agent: a, tool: t}\n    ask: {message: m}\n",
     "wf.yaml:5: step \"a\": ask: a step does one thing, and this one "
     "already has call"},
    {"  - id: a\n    end: completed\n    nxet: b\n",
     "wf.yaml:5: step \"a\": nxet: unknown key (known: id, end, message)"},
    {"  - id: a\n    emit: {type: x.y}\n    save: workflow.x\n",
     "wf.yaml:5: step \"a\": save: not used by an emit step"},
    {"  - id: a\n    end: completed\n    next: a\n",
     "wf.yaml:5: step \"a\": next: not used by an end step"},
    /* call */
    {"  - id: quote\n    call:\n      capability: finance.quote\n",
     "wf.yaml:5: step \"quote\": call.tool: required (the tool to call)"},
    {"  - id: a\n    call: {tool: t}\n",
     "wf.yaml:4: step \"a\": call: needs agent (an agent id) or capability "
     "(routed to the best agent that has it)"},
    {"  - id: a\n    call:\n      agent: x\n      capability: y\n      tool: "
     "t\n",
     "wf.yaml:5: step \"a\": call.agent: give agent or capability, not both "
     "(a call goes to one agent, or is routed by capability)"},
    {"  - id: a\n    call: {agent: x, tool: t, arguments: [1]}\n",
     "wf.yaml:4: step \"a\": call.arguments: expected a mapping, got an "
     "array"},
    {"  - id: a\n    call: {agent: x, tool: t, tools: [1]}\n",
     "wf.yaml:4: step \"a\": call.tools: unknown key (known: agent, "
     "capability, tool, arguments)"},
    {"  - id: a\n    call: {agent: x, tool: 7}\n",
     "wf.yaml:4: step \"a\": call.tool: expected the tool to call, got an "
     "integer"},
    {"  - id: a\n    call:\n      agent: x\n      tool: t\n      arguments:\n"
     "        text: $conversation..content\n",
     "wf.yaml:8: step \"a\": call.arguments.text: invalid path "
     "\"conversation..content\": empty segment at offset 13 (write $$ for a "
     "literal $)"},
    {"  - id: a\n    call:\n      agent: x\n      tool: t\n      arguments:\n"
     "        ids: [$run.id, $run.name]\n",
     "wf.yaml:8: step \"a\": call.arguments.ids[1]: invalid path "
     "\"run.name\": a run offers run.id and run.workflow (write $$ for a "
     "literal $)"},
    {"  - id: a\n    call: {agent: x, tool: t, arguments: {v: $context.vin}}\n",
     "wf.yaml:4: step \"a\": call.arguments.v: invalid path \"context.vin\": "
     "the context offers context.id and context.version (its data is read "
     "as conversation..., workflow..., user..., business...) (write $$ for "
     "a literal $)"},
    /* save, durations, retry */
    {"  - id: a\n    call: {agent: x, tool: t}\n    save: outputs.a\n",
     "wf.yaml:5: step \"a\": save: invalid path \"outputs.a\": unknown "
     "section \"outputs\" (expected conversation, workflow, user or "
     "business)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    save: "
     "conversation.messages[0]\n",
     "wf.yaml:5: step \"a\": save: invalid path \"conversation.messages[0]\": "
     "results are saved at a path of keys (no indexes or slices)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    timeout: 20\n",
     "wf.yaml:5: step \"a\": timeout: 20 is a bare number: add a unit, e.g. "
     "\"20s\" (units ms, s, m, h, d)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    timeout: \"90\"\n",
     "wf.yaml:5: step \"a\": timeout: 90 is a bare number: add a unit, e.g. "
     "\"90s\" (units ms, s, m, h, d)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    timeout: 2 weeks\n",
     "wf.yaml:5: step \"a\": timeout: expected a duration like \"20s\" or "
     "\"500ms\" (a whole number and a unit: ms, s, m, h, d; at most 366d), "
     "got \"2 weeks\""},
    {"  - id: a\n    call: {agent: x, tool: t}\n    timeout: 0s\n",
     "wf.yaml:5: step \"a\": timeout: must be longer than 0"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    retry: {attempts: 21}\n",
     "wf.yaml:5: step \"a\": retry.attempts: expected an integer between 1 "
     "and 20 (tries in all), got a number out of range"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    retry: {backoff: 1s}\n",
     "wf.yaml:5: step \"a\": retry.attempts: required (tries in all, 1..20)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    retry:\n      attempts: "
     "2\n      backoff: 5\n",
     "wf.yaml:7: step \"a\": retry.backoff: 5 is a bare number: add a unit, "
     "e.g. \"5s\" (units ms, s, m, h, d)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    retry: 3\n",
     "wf.yaml:5: step \"a\": retry: expected a mapping (attempts, backoff), "
     "got an integer"},
    /* references */
    {"  - id: intake\n    call: {agent: x, tool: t}\n    next: finanse\n"
     "  - id: route\n    end: completed\n",
     "wf.yaml:5: step \"intake\": next: no step \"finanse\" (steps: intake, "
     "route)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    on_failure: [b]\n",
     "wf.yaml:5: step \"a\": on_failure: expected a step id, got an array"},
    {"  - id: a\n    end: completed\n  - id: p\n    parallel:\n      - id: "
     "n\n        emit: {type: x.y}\n  - id: c\n    call: {agent: x, tool: "
     "t}\n    next: n\n",
     "wf.yaml:11: step \"c\": next: step \"n\" is inside parallel step \"p\"; "
     "only top-level steps can be gone to"},
    /* branch and conditions */
    {"  - id: r\n    branch: []\n",
     "wf.yaml:4: step \"r\": branch: expected a non-empty list of cases ({ "
     "if, goto } and an optional last { else }), got an empty list"},
    {"  - id: r\n    branch:\n      - else: r\n      - if: {path: "
     "user.id, exists: true}\n        goto: r\n",
     "wf.yaml:5: step \"r\": branch[0].else: must be the last case"},
    {"  - id: r\n    branch:\n      - if: {path: user.id, exists: true}\n",
     "wf.yaml:5: step \"r\": branch[0].goto: required (a case is { if: "
     "condition, goto: step } or { else: step })"},
    {"  - id: r\n    branch:\n      - {else: r, goto: r}\n",
     "wf.yaml:5: step \"r\": branch[0].else: an else case has no if or goto"},
    {"  - id: r\n    branch:\n      - if: {path: user.id, equals: 1, in: "
     "[1]}\n        goto: r\n",
     "wf.yaml:5: step \"r\": branch[0].if.in: a condition takes exactly one "
     "operator, and this one already has equals"},
    {"  - id: r\n    branch:\n      - if: {path: user.id}\n        goto: r\n",
     "wf.yaml:5: step \"r\": branch[0].if: needs an operator: one of equals, "
     "not_equals, in, exists, gt, gte, lt, lte, contains"},
    {"  - id: r\n    branch:\n      - if: {path: user.id, in: buy}\n"
     "        goto: r\n",
     "wf.yaml:5: step \"r\": branch[0].if.in: expected a list of values, got "
     "a string"},
    {"  - id: r\n    branch:\n      - if: {path: user.id, exists: yes}\n"
     "        goto: r\n",
     "wf.yaml:5: step \"r\": branch[0].if.exists: expected true or false, "
     "got a string"},
    {"  - id: r\n    branch:\n      - if: {path: user.age, gt: old}\n"
     "        goto: r\n",
     "wf.yaml:5: step \"r\": branch[0].if.gt: expected a number (or a "
     "\"$path\" to one), got a string"},
    {"  - id: r\n    branch:\n      - if: {all: []}\n        goto: r\n",
     "wf.yaml:5: step \"r\": branch[0].if.all: expected a non-empty list of "
     "conditions, got an empty list"},
    {"  - id: r\n    branch:\n      - if:\n          any:\n            - "
     "{path: user.id, exists: true}\n            - {equals: 3}\n"
     "        goto: r\n",
     "wf.yaml:8: step \"r\": branch[0].if.any[1].path: required (the context "
     "path to test, e.g. conversation.intent), or use all, any or not"},
    {"  - id: r\n    branch:\n      - if: {not: {path: user.id, exists: "
     "true}, path: x}\n        goto: r\n",
     "wf.yaml:5: step \"r\": branch[0].if.not: not combines conditions and "
     "takes no other keys beside it"},
    {"  - id: r\n    branch:\n      - if: {path: user.id, equal: 1}\n"
     "        goto: r\n",
     "wf.yaml:5: step \"r\": branch[0].if.equal: unknown key (known: path, "
     "equals, not_equals, in, exists, gt, gte, lt, lte, contains, all, any, "
     "not)"},
    {"  - id: r\n    branch:\n      - if: {path: \"user.id[\", exists: "
     "true}\n        goto: r\n",
     "wf.yaml:5: step \"r\": branch[0].if.path: invalid path \"user.id[\": "
     "unclosed '[' at offset 7"},
    {"  - id: r\n    branch:\n      - if: {path: user.id, exists: true}\n"
     "        goto: nowhere\n",
     "wf.yaml:6: step \"r\": branch[0].goto: no step \"nowhere\" (steps: r)"},
    /* parallel */
    {"  - id: p\n    parallel:\n      - id: n\n        end: completed\n",
     "wf.yaml:6: step \"n\": end: a step inside a parallel step may only "
     "call, ask, emit or wait"},
    {"  - id: p\n    parallel:\n      - id: n\n        emit: {type: x.y}\n"
     "        next: p\n",
     "wf.yaml:7: step \"n\": next: not allowed in a step inside a parallel "
     "step (its steps end where the parallel joins)"},
    {"  - id: p\n    parallel:\n      - id: n\n        call: {agent: x}\n",
     "wf.yaml:6: step \"n\": call.tool: required (the tool to call)"},
    {"  - id: p\n    parallel: {id: n}\n",
     "wf.yaml:4: step \"p\": parallel: expected a non-empty list of steps to "
     "run at once, got an object"},
    /* ask, emit, wait, end */
    {"  - id: a\n    ask: {schema: {type: object}}\n",
     "wf.yaml:4: step \"a\": ask.message: required (the question to ask)"},
    {"  - id: a\n    ask: {message: hi, schema: yes}\n",
     "wf.yaml:4: step \"a\": ask.schema: expected a JSON Schema (a mapping), "
     "got a string"},
    {"  - id: a\n    emit: {type: Lead}\n",
     "wf.yaml:4: step \"a\": emit.type: \"Lead\" is not an event type "
     "(lowercase a-z 0-9 _ - names joined by dots, at least two: "
     "\"lead.qualified\")"},
    {"  - id: a\n    emit: {data: {}}\n",
     "wf.yaml:4: step \"a\": emit.type: required (an event type)"},
    {"  - id: a\n    wait: {event: x.y, where: 3}\n",
     "wf.yaml:4: step \"a\": wait.where: expected a mapping, got an integer"},
    {"  - id: a\n    wait: {event: x..y}\n",
     "wf.yaml:4: step \"a\": wait.event: \"x..y\" is not an event type "
     "(lowercase a-z 0-9 _ - names joined by dots, at least two: "
     "\"lead.qualified\")"},
    {"  - id: a\n    end: done\n",
     "wf.yaml:4: step \"a\": end: expected completed or failed, got "
     "\"done\""},
};

static void test_malformed(void **state) {
  (void)state;
  char yaml[1024];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(yaml, sizeof yaml, "name: w\nsteps:\n%s", bad[i].steps);
    sb_flow_def *d = (sb_flow_def *)1;
    sb_error err;
    int rc = build(yaml, "wf.yaml", &d, &err);
    if (rc != SB_EINVAL || strcmp(err.msg, bad[i].msg) != 0)
      fail_msg("case %zu: rc %d\n got  %s\n want %s", i, rc, err.msg,
               bad[i].msg);
    assert_null(d);
  }
}

static void test_malformed_workflow(void **state) {
  (void)state;
  static const struct {
    const char *yaml, *msg;
  } cases[] = {
      {"- a\n", "wf.yaml:1: expected a workflow definition (a mapping with "
                "name and steps), got an array"},
      {"", "wf.yaml:1: expected a workflow definition (a mapping with name "
           "and steps), got null"},
      {"steps: []\n", "wf.yaml:1: name: required (the workflow's name)"},
      {"name: a/b\nsteps: []\n",
       "wf.yaml:1: name: \"a/b\" is not a valid workflow name (1-64 of A-Z "
       "a-z 0-9 . _ -)"},
      {"name: w\n", "wf.yaml:1: steps: required (a list of steps)"},
      {"name: w\nsteps: []\n",
       "wf.yaml:2: steps: expected a non-empty list of steps, got an empty "
       "list"},
      {"name: w\nversion: 2\nsteps: [{id: a, end: completed}]\n",
       "wf.yaml:2: version: unknown key (known: name, description, "
       "max_steps, steps)"},
      {"name: w\nmax_steps: 0\nsteps: [{id: a, end: completed}]\n",
       "wf.yaml:2: max_steps: expected an integer between 1 and 100000, got "
       "a number out of range"},
      {"name: w\ndescription: [x]\nsteps: [{id: a, end: completed}]\n",
       "wf.yaml:2: description: expected a string, got an array"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sb_flow_def *d = NULL;
    sb_error err;
    int rc = build(cases[i].yaml, "wf.yaml", &d, &err);
    if (rc != SB_EINVAL || strcmp(err.msg, cases[i].msg) != 0)
      fail_msg("case %zu: rc %d\n got  %s\n want %s", i, rc, err.msg,
               cases[i].msg);
  }
  /* without a line map or a file name */
  json_t *src = J("{'name': 'w', 'steps': [{'id': 'a', 'call': {}}]}");
  sb_flow_def *d = NULL;
  sb_error err;
  assert_int_equal(sb_flow_def_from_json(src, NULL, NULL, &d, &err), SB_EINVAL);
  assert_string_equal(err.msg, "<workflow>: step \"a\": call: needs agent (an "
                               "agent id) or capability (routed to the best "
                               "agent that has it)");
  json_decref(src);
  /* conditions nested too deep for a JSON caller */
  json_t *c = J("{'path': 'user.id', 'exists': true}");
  for (int i = 0; i < 40; i++)
    c = json_pack("{s:o}", "not", c);
  src = json_pack("{s:s, s:[{s:s, s:[{s:o, s:s}]}]}", "name", "w", "steps",
                  "id", "r", "branch", "if", c, "goto", "r");
  assert_int_equal(sb_flow_def_from_json(src, NULL, "deep", &d, &err),
                   SB_EINVAL);
  assert_non_null(strstr(err.msg, "conditions nested deeper than 32 levels"));
  json_decref(src);
}

/* ---- conditions and templates ----------------------------------------- */

static json_t *context_doc(void) {
  return J("{'id': 'ctx-1', 'version': 7, 'data': {"
           " 'conversation': {'intent': 'buy', 'messages': ["
           "   {'role': 'user', 'content': 'a red civic please'}],"
           "   'entities': {'tags': ['web', 'new']}},"
           " 'workflow': {'variables': {'budget': 30000, 'vin': null,"
           "   'score': 0.75}, 'outputs': {'intake': {'intent': 'buy'}}},"
           " 'user': {'id': 'u1'}, 'business': {}}}");
}

/* Parse the condition (JSON text) through a one-case branch and evaluate
 * it. */
static int holds(const char *cond, const sb_flow_scope *scope) {
  char text[1024];
  snprintf(text, sizeof text,
           "{'name': 'w', 'steps': [{'id': 'r', 'branch': [{'if': %s, "
           "'goto': 'r'}]}]}",
           cond);
  json_t *src = J(text);
  sb_flow_def *d = NULL;
  sb_error err;
  if (sb_flow_def_from_json(src, NULL, "c", &d, &err) != 0)
    fail_msg("%s: %s", cond, err.msg);
  int r = sb_flow_cond_eval(&d->steps[0].cases[0].cond, scope);
  sb_flow_def_free(d);
  json_decref(src);
  return r;
}

static void test_conditions(void **state) {
  (void)state;
  json_t *ctx = context_doc();
  sb_flow_scope sc = {ctx, "run-9", "lead"};
  /* equals, not_equals: JSON values, numbers by value */
  assert_true(holds("{'path': 'conversation.intent', 'equals': 'buy'}", &sc));
  assert_false(holds("{'path': 'conversation.intent', 'equals': 'sell'}", &sc));
  assert_true(
      holds("{'path': 'workflow.variables.budget', 'equals': 30000.0}", &sc));
  assert_true(holds("{'path': 'workflow.outputs.intake', 'equals': {'intent': "
                    "'buy'}}",
                    &sc));
  assert_true(holds("{'path': 'conversation.intent', 'equals': "
                    "'$workflow.outputs.intake.intent'}",
                    &sc));
  assert_true(holds("{'path': 'context.id', 'equals': 'ctx-1'}", &sc));
  assert_true(holds("{'path': 'context.version', 'equals': 7}", &sc));
  assert_true(holds("{'path': 'run.workflow', 'equals': 'lead'}", &sc));
  assert_true(holds("{'path': 'user.nope', 'equals': null}", &sc));
  assert_true(holds("{'path': 'conversation.intent', 'not_equals': 'x'}", &sc));
  assert_false(
      holds("{'path': 'conversation.intent', 'not_equals': 'buy'}", &sc));
  /* in */
  assert_true(
      holds("{'path': 'conversation.intent', 'in': ['sell', 'buy']}", &sc));
  assert_false(holds("{'path': 'conversation.intent', 'in': []}", &sc));
  assert_true(
      holds("{'path': 'workflow.variables.budget', 'in': [1, 3e4]}", &sc));
  /* exists: null counts as missing */
  assert_true(holds("{'path': 'user.id', 'exists': true}", &sc));
  assert_false(holds("{'path': 'user.name', 'exists': true}", &sc));
  assert_true(holds("{'path': 'user.name', 'exists': false}", &sc));
  assert_true(
      holds("{'path': 'workflow.variables.vin', 'exists': false}", &sc));
  /* gt, gte, lt, lte: numbers only */
  assert_true(holds("{'path': 'workflow.variables.budget', 'gt': 20000}", &sc));
  assert_false(
      holds("{'path': 'workflow.variables.budget', 'gt': 30000}", &sc));
  assert_true(
      holds("{'path': 'workflow.variables.budget', 'gte': 30000}", &sc));
  assert_true(holds("{'path': 'workflow.variables.score', 'lt': 1}", &sc));
  assert_true(holds("{'path': 'workflow.variables.score', 'lte': 0.75}", &sc));
  assert_false(holds("{'path': 'conversation.intent', 'lt': 5}", &sc));
  assert_false(holds("{'path': 'user.none', 'gte': 0}", &sc));
  assert_true(holds("{'path': 'workflow.variables.score', 'lt': "
                    "'$workflow.variables.budget'}",
                    &sc));
  /* contains: substring or array membership */
  assert_true(holds("{'path': 'conversation.messages[-1].content', "
                    "'contains': 'civic'}",
                    &sc));
  assert_false(holds("{'path': 'conversation.messages[-1].content', "
                     "'contains': 'accord'}",
                     &sc));
  assert_true(holds("{'path': 'conversation.entities.tags', 'contains': "
                    "'web'}",
                    &sc));
  assert_false(holds("{'path': 'conversation.entities.tags', 'contains': "
                     "'old'}",
                     &sc));
  assert_false(
      holds("{'path': 'workflow.variables.budget', 'contains': 3}", &sc));
  /* all, any, not */
  assert_true(holds("{'all': [{'path': 'user.id', 'exists': true}, "
                    "{'path': 'conversation.intent', 'equals': 'buy'}]}",
                    &sc));
  assert_false(holds("{'all': [{'path': 'user.id', 'exists': true}, "
                     "{'path': 'conversation.intent', 'equals': 'x'}]}",
                     &sc));
  assert_true(holds("{'any': [{'path': 'user.id', 'exists': false}, "
                    "{'path': 'conversation.intent', 'equals': 'buy'}]}",
                    &sc));
  assert_false(holds("{'any': [{'path': 'user.id', 'exists': false}]}", &sc));
  assert_true(holds("{'not': {'path': 'user.id', 'exists': false}}", &sc));
  /* no scope: every path is missing */
  assert_true(holds("{'path': 'user.id', 'exists': false}", NULL));
  assert_int_equal(sb_flow_cond_eval(NULL, &sc), 0);
  json_decref(ctx);
}

static void template_is(const char *tmpl, const char *want,
                        const sb_flow_scope *sc) {
  json_t *t = J(tmpl), *w = J(want);
  json_t *got = sb_flow_template(t, sc);
  assert_non_null(got);
  assert_json_eq(got, w);
  json_decref(got);
  json_decref(t);
  json_decref(w);
}

static void test_templates(void **state) {
  (void)state;
  json_t *ctx = context_doc();
  sb_flow_scope sc = {ctx, "run-9", "lead"};
  template_is("'$conversation.intent'", "'buy'", &sc);
  template_is("'$conversation.messages[-1]'",
              "{'role': 'user', 'content': 'a red civic please'}", &sc);
  template_is("'$conversation.messages[0:].role'", "['user']", &sc);
  template_is("'$user.missing'", "null", &sc);
  template_is("'$$literal'", "'$literal'", &sc);
  template_is("'$$'", "'$'", &sc);
  template_is("'plain $ text'", "'plain $ text'", &sc);
  template_is("{'ctx': '$context.id', 'v': '$context.version', "
              "'run': '$run.id', 'wf': '$run.workflow', 'n': 3, 'b': true,"
              " 'list': ['$user.id', {'deep': '$workflow.variables.budget'}],"
              " 'none': null}",
              "{'ctx': 'ctx-1', 'v': 7, 'run': 'run-9', 'wf': 'lead', 'n': 3,"
              " 'b': true, 'list': ['u1', {'deep': 30000}], 'none': null}",
              &sc);
  sb_flow_scope no_run = {ctx, NULL, NULL};
  template_is("['$run.id', '$run.workflow']", "[null, null]", &no_run);
  template_is("'$user.id'", "null", NULL);
  /* the result shares nothing with the context */
  json_t *t = J("'$workflow.outputs'");
  json_t *got = sb_flow_template(t, &sc);
  json_object_set_new(got, "x", json_true());
  json_t *again = sb_flow_template(t, &sc);
  assert_null(json_object_get(again, "x"));
  json_decref(again);
  json_decref(got);
  /* allocation failures give NULL and leak nothing */
  json_t *big = J("{'a': ['$conversation.messages', '$context.id', '$$x'], "
                  "'b': {'c': '$workflow'}}");
  size_t base = sb_alloc_live_bytes();
  int failures = 0;
  for (long n = 1; n < 200; n++) {
    sb_alloc_fail_after(n);
    json_t *r = sb_flow_template(big, &sc);
    sb_alloc_fail_after(0);
    if (r) {
      json_decref(r);
      break;
    }
    failures++;
    assert_int_equal(sb_alloc_live_bytes(), base);
  }
  assert_true(failures > 5);
  json_decref(big);
  json_decref(t);
  json_decref(ctx);
}

static void test_durations(void **state) {
  (void)state;
  static const struct {
    const char *s;
    uint64_t ms;
  } ok[] = {{"0ms", 0},
            {"500ms", 500},
            {"90s", 90000},
            {"5m", 300000},
            {"1h", 3600000},
            {"2d", 172800000},
            {"366d", 366ULL * 86400000},
            {"007s", 7000}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint64_t ms = 1;
    assert_int_equal(sb_flow_duration_parse(ok[i].s, &ms), 0);
    assert_int_equal(ms, ok[i].ms);
  }
  static const char *const bad_durations[] = {"",
                                              "s",
                                              "10",
                                              "10 s",
                                              "1.5s",
                                              "-1s",
                                              "10S",
                                              "10sec",
                                              "1w",
                                              "367d",
                                              "9999999999999ms",
                                              " 1s",
                                              "1s ",
                                              "1h30m"};
  for (size_t i = 0; i < sizeof bad_durations / sizeof bad_durations[0]; i++) {
    uint64_t ms = 42;
    if (sb_flow_duration_parse(bad_durations[i], &ms) != SB_EINVAL)
      fail_msg("\"%s\" parsed", bad_durations[i]);
    assert_int_equal(ms, 42);
  }
  uint64_t ms;
  assert_int_equal(sb_flow_duration_parse(NULL, &ms), SB_EINVAL);
}

/* ---- sets of definitions (defs.c) ------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_defs_load(void **state) {
  (void)state;
  char dir[] = "/tmp/sbflowXXXXXX";
  assert_non_null(mkdtemp(dir));
  char sub[64];
  snprintf(sub, sizeof sub, "%s/flows", dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  write_file(sub, "b.yaml", "name: beta\nsteps: [{id: a, end: completed}]\n");
  write_file(sub, "a.yml", "name: alpha\nsteps: [{id: a, end: completed}]\n");
  write_file(sub, "notes.txt", "not a workflow\n");
  write_file(sub, ".hidden.yaml", "garbage: [\n");
  write_file(dir, "one.yaml", "name: one\nsteps: [{id: a, end: failed}]\n");
  const char *cfg_yaml = "workflows:\n"
                         "  - flows\n"
                         "  - name: inline\n"
                         "    steps:\n"
                         "      - id: x\n"
                         "        end: completed\n"
                         "  - one.yaml\n";
  char cfg_path[64];
  snprintf(cfg_path, sizeof cfg_path, "%s/sb.yaml", dir);
  write_file(dir, "sb.yaml", cfg_yaml);
  sb_config cfg;
  sb_error err;
  sb_config_defaults(&cfg);
  assert_int_equal(sb_config_load(&cfg, cfg_path, &err), 0);
  sb_flow_defs defs;
  if (sb_flow_defs_load(cfg.workflows, cfg.workflow_lines, cfg.config_file,
                        cfg.config_dir, &defs, &err) != 0)
    fail_msg("%s", err.msg);
  assert_int_equal(defs.len, 4);
  /* directory files by name: a.yml before b.yaml */
  assert_string_equal(defs.items[0]->name, "alpha");
  assert_string_equal(defs.items[1]->name, "beta");
  assert_string_equal(defs.items[2]->name, "inline");
  assert_string_equal(defs.items[3]->name, "one");
  char want[128];
  snprintf(want, sizeof want, "%s/flows/a.yml", dir);
  assert_string_equal(defs.items[0]->file, want);
  assert_string_equal(defs.items[2]->file, cfg_path);
  assert_int_equal(defs.items[2]->steps[0].line, 5);
  assert_ptr_equal(sb_flow_defs_find(&defs, "one"), defs.items[3]);
  assert_null(sb_flow_defs_find(&defs, "two"));
  assert_null(sb_flow_defs_find(NULL, "one"));
  sb_flow_defs_clear(&defs);
  assert_int_equal(defs.len, 0);
  sb_flow_defs_clear(&defs);
  /* every allocation of a load may fail: ENOMEM, an empty set, no leak */
  size_t base = sb_alloc_live_bytes();
  int failures = 0;
  for (long n = 1; n < 3000; n++) {
    sb_alloc_fail_after(n);
    int rc = sb_flow_defs_load(cfg.workflows, cfg.workflow_lines,
                               cfg.config_file, cfg.config_dir, &defs, &err);
    sb_alloc_fail_after(0);
    if (rc == 0) {
      assert_int_equal(defs.len, 4);
      sb_flow_defs_clear(&defs);
      break;
    }
    failures++;
    if (rc != SB_ENOMEM) fail_msg("allocation %ld: %s", n, err.msg);
    assert_int_equal(defs.len, 0);
    assert_int_equal(sb_alloc_live_bytes(), base);
  }
  assert_true(failures > 20);
  assert_int_equal(sb_alloc_live_bytes(), base);
  sb_config_free(&cfg);

  /* an inline definition's errors name the config file and line */
  sb_config_defaults(&cfg);
  const char *inline_bad = "workflows:\n"
                           "  - name: w\n"
                           "    steps:\n"
                           "      - id: quote\n"
                           "        call:\n"
                           "          capability: finance.quote\n";
  assert_int_equal(sb_config_load_string(&cfg, inline_bad, strlen(inline_bad),
                                         "config.yaml", &err),
                   0);
  assert_int_equal(sb_flow_defs_load(cfg.workflows, cfg.workflow_lines,
                                     cfg.config_file, cfg.config_dir, &defs,
                                     &err),
                   SB_EINVAL);
  assert_string_equal(err.msg, "config.yaml:6: step \"quote\": call.tool: "
                               "required (the tool to call)");
  assert_int_equal(defs.len, 0);
  sb_config_free(&cfg);

  /* duplicates name both places; missing and odd files name the item */
  write_file(sub, "c.yaml",
             "# again\nname: alpha\nsteps: [{id: a, end: "
             "completed}]\n");
  json_t *list = J("['flows']");
  json_t *lines = J("{'': 3, '/0': 3}");
  assert_int_equal(sb_flow_defs_load(list, lines, "sb.yaml", dir, &defs, &err),
                   SB_EINVAL);
  snprintf(want, sizeof want,
           "%s/flows/c.yaml:2: name: duplicate workflow name \"alpha\" (also "
           "defined at %s/flows/a.yml:1)",
           dir, dir);
  assert_string_equal(err.msg, want);
  assert_int_equal(defs.len, 0);
  json_decref(list);
  list = J("['nope.yaml']");
  assert_int_equal(sb_flow_defs_load(list, lines, "sb.yaml", dir, &defs, &err),
                   SB_ENOENT);
  snprintf(want, sizeof want,
           "sb.yaml:3: workflows[0]: cannot open \"%s/nope.yaml\": No such "
           "file or directory",
           dir);
  assert_string_equal(err.msg, want);
  json_decref(list);
  list = J("['flows/notes.txt']");
  assert_int_equal(sb_flow_defs_load(list, lines, "sb.yaml", dir, &defs, &err),
                   SB_EINVAL);
  snprintf(want, sizeof want,
           "sb.yaml:3: workflows[0]: \"%s/flows/notes.txt\" is neither a "
           "directory nor a .yaml or .yml file",
           dir);
  assert_string_equal(err.msg, want);
  json_decref(list);
  list = J("[{'name': 'x', 'steps': [{'id': 'a', 'end': 'completed'}]}, "
           "{'name': 'x', 'steps': [{'id': 'b', 'end': 'failed'}]}]");
  json_decref(lines);
  lines = J("{'/0': 2, '/0/name': 2, '/1': 4, '/1/name': 4}");
  assert_int_equal(sb_flow_defs_load(list, lines, "sb.yaml", ".", &defs, &err),
                   SB_EINVAL);
  assert_string_equal(err.msg, "sb.yaml:4: name: duplicate workflow name "
                               "\"x\" (also defined at sb.yaml:2)");
  json_decref(list);
  list = J("[3]");
  assert_int_equal(sb_flow_defs_load(list, NULL, NULL, NULL, &defs, &err),
                   SB_EINVAL);
  assert_string_equal(err.msg, "<config>: workflows[0]: expected a workflow "
                               "definition (a mapping) or a file or directory "
                               "name, got an integer");
  json_decref(list);
  json_decref(lines);
  /* no list: no workflows */
  assert_int_equal(sb_flow_defs_load(NULL, NULL, NULL, NULL, &defs, &err), 0);
  assert_int_equal(defs.len, 0);

  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_example_file),
      cmocka_unit_test(test_header_example),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_malformed_workflow),
      cmocka_unit_test(test_conditions),
      cmocka_unit_test(test_templates),
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_defs_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
