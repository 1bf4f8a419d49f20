/* test_flow_def.c: workflow definitions (src/flow/def.c, step.c): the
 * example file and flow.h's example, defaults, and every check with its
 * exact message (file:line, step, key). Conditions, templates and
 * durations are in test_flow_cond.c, sets of definitions in
 * test_flow_defs.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  assert_string_equal(d->name, "web-inquiry");
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

/* save as a mapping: each context path gets a part of the result, kept
 * as the keys after "$result" ("" for the whole); no single save path. */
static void test_save_mapping(void **state) {
  (void)state;
  sb_flow_def *d = build_ok("name: w\n"
                            "steps:\n"
                            "  - id: intake\n"
                            "    call: {agent: general, tool: classify}\n"
                            "    save:\n"
                            "      conversation.intent: $result.intent\n"
                            "      conversation.entities: $result.entities\n"
                            "      workflow.outputs.intake: $result\n"
                            "      workflow.variables.label: $result.sentiment.label\n");
  const sb_flow_step *s = step(d, "intake");
  assert_null(s->save);
  assert_int_equal(json_object_size(s->save_map), 4);
  assert_string_equal(
      json_string_value(json_object_get(s->save_map, "conversation.intent")),
      "intent");
  assert_string_equal(json_string_value(json_object_get(
                          s->save_map, "workflow.outputs.intake")),
                      "");
  assert_string_equal(json_string_value(json_object_get(
                          s->save_map, "workflow.variables.label")),
                      "sentiment.label");
  sb_flow_def_free(d);
  /* anywhere the context can hold a value: open objects at any depth, a
   * section's own fields, a whole section the run does not keep */
  d = build_ok("name: w\n"
               "steps:\n"
               "  - id: a\n"
               "    ask: {message: m}\n"
               "    save:\n"
               "      conversation.entities.booking.slot: $result\n"
               "      conversation.messages: $result.messages\n"
               "      user.profile.name: $result.name\n"
               "      business.inventory: $result.inventory\n"
               "      user: $result.user\n"
               "      workflow.outputs.x.y.z: $result\n");
  assert_int_equal(json_object_size(step(d, "a")->save_map), 6);
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
    /* a wait's where: keys of the event's data */
    {"  - id: a\n    wait: {event: x.y, where: {\"a..b\": 1}}\n",
     "wf.yaml:4: step \"a\": wait.where: \"a..b\" is not a key of the "
     "event's data (a key, or keys joined by dots, none empty)"},
    {"  - id: a\n    wait: {event: x.y, where: {\"\": 1}}\n",
     "wf.yaml:4: step \"a\": wait.where: \"\" is not a key of the event's "
     "data (a key, or keys joined by dots, none empty)"},
    /* paths the context can never hold, and the run's own bookkeeping */
    {"  - id: a\n    call: {agent: x, tool: t}\n    save: "
     "conversation.summary\n",
     "wf.yaml:5: step \"a\": save: cannot save at \"conversation.summary\": "
     "data.conversation has no field \"summary\" (its fields: messages, "
     "intent, entities, sentiment, language)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    save: "
     "conversation.intent.kind\n",
     "wf.yaml:5: step \"a\": save: cannot save at "
     "\"conversation.intent.kind\": data.conversation.intent holds a "
     "string: nothing can be saved inside it"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    save:\n"
     "      user.name: $result.name\n",
     "wf.yaml:6: step \"a\": save.user.name: cannot save at \"user.name\": "
     "data.user has no field \"name\" (its fields: id, profile, "
     "preferences, permissions, history)"},
    {"  - id: a\n    ask: {message: m}\n    save: workflow\n",
     "wf.yaml:5: step \"a\": save: cannot save at \"workflow\": the run "
     "keeps it (save at workflow.outputs.<key> or "
     "workflow.variables.<key>)"},
    {"  - id: a\n    ask: {message: m}\n    save: workflow.completedSteps\n",
     "wf.yaml:5: step \"a\": save: cannot save at "
     "\"workflow.completedSteps\": the run keeps it (save at "
     "workflow.outputs.<key> or workflow.variables.<key>)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    save: {}\n",
     "wf.yaml:5: step \"a\": save: expected a context path, or a mapping of "
     "context paths to parts of the result; got an empty mapping"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    save:\n"
     "      conversation.intent: intent\n",
     "wf.yaml:6: step \"a\": save.conversation.intent: expected $result or "
     "$result.<key>.<key>... (the part of the step's result to save at "
     "conversation.intent)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    save:\n"
     "      conversation.intent: $result.a..b\n",
     "wf.yaml:6: step \"a\": save.conversation.intent: expected $result or "
     "$result.<key>.<key>... (the part of the step's result to save at "
     "conversation.intent)"},
    {"  - id: a\n    call: {agent: x, tool: t}\n    save:\n"
     "      outputs.a: $result\n",
     "wf.yaml:6: step \"a\": save.outputs.a: invalid path \"outputs.a\": "
     "unknown section \"outputs\" (expected conversation, workflow, user or "
     "business)"},
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
    /* the keywords answers are checked with: a malformed one made the
     * check pass what the schema was written to refuse */
    {"  - id: a\n    ask:\n      message: hi\n      schema:\n"
     "        type: object\n        properties: {slot: {type: strin}}\n",
     "wf.yaml:8: step \"a\": ask.schema.properties.slot.type: expected a "
     "JSON type (object, array, string, number, integer, boolean, null) or "
     "a list of them"},
    {"  - id: a\n    ask: {message: hi, schema: {required: slot}}\n",
     "wf.yaml:4: step \"a\": ask.schema.required: expected a list of "
     "property names"},
    {"  - id: a\n    ask: {message: hi, schema: {items: [1]}}\n",
     "wf.yaml:4: step \"a\": ask.schema.items: expected a JSON Schema (a "
     "mapping), got an array"},
    {"  - id: a\n    ask: {message: hi, schema: {anyOf: [{maxLength: -1}]}}\n",
     "wf.yaml:4: step \"a\": ask.schema.anyOf[0].maxLength: expected an "
     "integer of 0 or more"},
    /* a keyword that constrains answers but is not checked: the schema
     * would promise what is not enforced */
    {"  - id: a\n    ask:\n      message: hi\n      schema:\n"
     "        properties: {tags: {type: array, uniqueItems: true}}\n",
     "wf.yaml:7: step \"a\": ask.schema.properties.tags.uniqueItems: answers "
     "are not checked against uniqueItems, so one breaking it would be saved; "
     "the keywords checked are type, properties, required, "
     "additionalProperties, items, enum, const, anyOf, oneOf, minLength, "
     "maxLength, pattern, format, minimum, maximum, exclusiveMinimum, "
     "exclusiveMaximum, multipleOf, minItems and maxItems"},
    {"  - id: a\n    ask: {message: hi, schema: {allOf: [{type: object}]}}\n",
     "wf.yaml:4: step \"a\": ask.schema.allOf: answers are not checked "
     "against allOf, so one breaking it would be saved; the keywords checked "
     "are type, properties, required, additionalProperties, items, enum, "
     "const, anyOf, oneOf, minLength, maxLength, pattern, format, minimum, "
     "maximum, exclusiveMinimum, exclusiveMaximum, multipleOf, minItems and "
     "maxItems"},
    {"  - id: a\n    ask: {message: hi, schema: {pattern: '[A-Z'}}\n",
     "wf.yaml:4: step \"a\": ask.schema.pattern: not a regular expression: "
     "missing terminating ] for character class at offset 4"},
    {"  - id: a\n    ask: {message: hi, schema: {pattern: 5}}\n",
     "wf.yaml:4: step \"a\": ask.schema.pattern: expected a string"},
    {"  - id: a\n    ask: {message: hi, schema: {format: phone}}\n",
     "wf.yaml:4: step \"a\": ask.schema.format: expected date, date-time, "
     "email or uri (the formats MCP elicitation names, and that answers are "
     "checked against)"},
    {"  - id: a\n    ask: {message: hi, schema: {oneOf: {const: a}}}\n",
     "wf.yaml:4: step \"a\": ask.schema.oneOf: expected a non-empty list of "
     "schemas"},
    /* schemas no answer can meet: every answer refused, the run waiting
     * for ever */
    {"  - id: a\n    ask: {message: hi, schema: {minimum: 5, maximum: 3}}\n",
     "wf.yaml:4: step \"a\": ask.schema.maximum: 3 with minimum 5: no answer "
     "can fit both"},
    {"  - id: a\n    ask: {message: hi, schema: {properties: {n: "
     "{exclusiveMinimum: 3, maximum: 3}}}}\n",
     "wf.yaml:4: step \"a\": ask.schema.properties.n.maximum: 3 with "
     "exclusiveMinimum 3: no answer can fit both"},
    {"  - id: a\n    ask: {message: hi, schema: {minLength: 5, maxLength: 2}}\n",
     "wf.yaml:4: step \"a\": ask.schema.maxLength: 2 with minLength 5: no "
     "answer can fit both"},
    {"  - id: a\n    ask: {message: hi, schema: {minItems: 3, maxItems: 1}}\n",
     "wf.yaml:4: step \"a\": ask.schema.maxItems: 1 with minItems 3: no "
     "answer can fit both"},
    {"  - id: a\n    ask: {message: hi, schema: {enum: []}}\n",
     "wf.yaml:4: step \"a\": ask.schema.enum: an empty list: no answer can "
     "match"},
    {"  - id: a\n    ask: {message: hi, schema: {multipleOf: 0}}\n",
     "wf.yaml:4: step \"a\": ask.schema.multipleOf: expected a number above "
     "0"},
    {"  - id: a\n    ask: {message: hi, schema: {exclusiveMinimum: true}}\n",
     "wf.yaml:4: step \"a\": ask.schema.exclusiveMinimum: expected a number, "
     "got a boolean"},
    {"  - id: a\n    emit: {type: Lead}\n",
     "wf.yaml:4: step \"a\": emit.type: \"Lead\" is not an event type "
     "(lowercase names of a-z 0-9 _ - joined by dots, at least two, at "
     "most 128 characters: \"lead.qualified\")"},
    /* switchboard's own events and the audit trail: a run could say it
     * completed while it goes on, or forge an admin action */
    {"  - id: a\n    emit: {type: run.completed}\n",
     "wf.yaml:4: step \"a\": emit.type: \"run.completed\" is reserved (run., "
     "step., agent., context., breaker. and audit. are switchboard's own: "
     "switchboard alone writes them); emit a type of the workflow's own, "
     "e.g. \"lead.qualified\""},
    {"  - id: a\n    emit: {type: audit.admin}\n",
     "wf.yaml:4: step \"a\": emit.type: \"audit.admin\" is reserved (run., "
     "step., agent., context., breaker. and audit. are switchboard's own: "
     "switchboard alone writes them); emit a type of the workflow's own, "
     "e.g. \"lead.qualified\""},
    /* a name under one of switchboard's namespaces would pass a run.*
     * filter as one of its own */
    {"  - id: a\n    emit: {type: run.completed.x}\n",
     "wf.yaml:4: step \"a\": emit.type: \"run.completed.x\" is reserved "
     "(run., step., agent., context., breaker. and audit. are switchboard's "
     "own: switchboard alone writes them); emit a type of the workflow's "
     "own, e.g. \"lead.qualified\""},
    {"  - id: a\n    emit: {data: {}}\n",
     "wf.yaml:4: step \"a\": emit.type: required (an event type)"},
    {"  - id: a\n    wait: {event: x.y, where: 3}\n",
     "wf.yaml:4: step \"a\": wait.where: expected a mapping, got an integer"},
    {"  - id: a\n    wait: {event: x..y}\n",
     "wf.yaml:4: step \"a\": wait.event: \"x..y\" is not an event type "
     "(lowercase names of a-z 0-9 _ - joined by dots, at least two, at "
     "most 128 characters: \"lead.qualified\")"},
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

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_example_file),
      cmocka_unit_test(test_header_example),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_save_mapping),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_malformed_workflow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
