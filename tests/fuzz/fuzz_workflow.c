/* fuzz_workflow.c: libFuzzer target for workflow definitions: YAML text
 * read with its line map (src/config/yaml_doc.c, yaml_json.c) and built
 * with sb_flow_def_from_json (src/flow/), then every condition evaluated
 * and every template expanded against a fixed context.
 *
 * Invariants: a failure names the file and leaves no definition; a
 * definition that loads has a name, at least one step, ids that find
 * themselves, and every step reference inside the step table and on a
 * top-level step; steps with results have a save path. The input is also
 * tried as a duration.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/core.h"
#include "flow/flow.h"

static void check(int cond) {
  if (!cond) abort();
}

static json_t *context;

static int target_ok(const sb_flow_def *d, int i, int none_ok) {
  if (i == SB_FLOW_NONE) return none_ok;
  return i >= 0 && (size_t)i < d->nsteps &&
         d->steps[i].parent == SB_FLOW_NONE;
}

static void eval_all(const sb_flow_cond *c, const sb_flow_scope *sc) {
  (void)sb_flow_cond_eval(c, sc);
  for (size_t i = 0; i < c->nitems; i++) eval_all(&c->items[i], sc);
}

static void expand(const json_t *t, const sb_flow_scope *sc) {
  if (!t) return;
  json_t *v = sb_flow_template(t, sc);
  check(v != NULL);
  json_decref(v);
}

static void check_def(const sb_flow_def *d) {
  sb_flow_scope sc = {context, "run-1", d->name};
  check(d->name && d->name[0] && d->nsteps >= 1 && d->file);
  check(d->max_steps >= 1 && d->max_steps <= 100000);
  check(d->steps[0].parent == SB_FLOW_NONE);
  for (size_t i = 0; i < d->nsteps; i++) {
    const sb_flow_step *s = &d->steps[i];
    check(s->id && sb_flow_def_step(d, s->id) == (int)i);
    check(s->kind >= SB_FLOW_CALL && s->kind <= SB_FLOW_END);
    check(target_ok(d, s->next, 1) && target_ok(d, s->on_failure, 1));
    check(s->retry_attempts >= 1 && s->retry_attempts <= 20);
    int has_result = s->kind == SB_FLOW_CALL || s->kind == SB_FLOW_ASK ||
                     s->kind == SB_FLOW_WAIT;
    check(has_result == (s->save != NULL || s->save_map != NULL));
    check(!(s->save && s->save_map)); /* a path, or a mapping */
    if (s->parent != SB_FLOW_NONE)
      check(s->next == SB_FLOW_NONE && s->on_failure == SB_FLOW_NONE &&
            d->steps[s->parent].kind == SB_FLOW_PARALLEL);
    switch (s->kind) {
    case SB_FLOW_CALL:
      check(json_is_object(s->arguments) && s->tool);
      check((s->agent != NULL) != (s->capability != NULL));
      expand(s->arguments, &sc);
      break;
    case SB_FLOW_BRANCH:
      check(target_ok(d, s->otherwise, 1));
      for (size_t k = 0; k < s->ncases; k++) {
        check(target_ok(d, s->cases[k].target, 0));
        eval_all(&s->cases[k].cond, &sc);
      }
      break;
    case SB_FLOW_PARALLEL:
      check(s->nbranches >= 1);
      for (size_t k = 0; k < s->nbranches; k++)
        check(d->steps[s->branches[k]].parent == (int)i);
      break;
    case SB_FLOW_ASK: check(s->message != NULL); break;
    case SB_FLOW_EMIT:
      check(s->event_type != NULL);
      expand(s->event_data, &sc);
      break;
    case SB_FLOW_WAIT:
      check(s->event_type != NULL);
      expand(s->where, &sc);
      break;
    case SB_FLOW_END: check(s->next == SB_FLOW_NONE); break;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!context) {
    sb_core_init();
    context = json_loads(
        "{\"id\": \"c1\", \"version\": 3, \"data\": {\"conversation\": "
        "{\"intent\": \"buy\", \"messages\": [{\"role\": \"user\", "
        "\"content\": \"hi\"}]}, \"workflow\": {\"variables\": {\"n\": 2}, "
        "\"outputs\": {}}, \"user\": {\"id\": \"u\"}, \"business\": {}}}",
        0, NULL);
    check(context != NULL);
  }
  json_t *doc = NULL, *lines = NULL;
  sb_flow_def *d = NULL;
  sb_error err = {0};
  int rc = sb_config_read_yaml((const char *)data, size, "fuzz.yaml", &doc,
                               &lines, &err);
  if (rc == 0) {
    check(doc != NULL && json_is_object(lines));
    rc = sb_flow_def_from_json(doc, lines, "fuzz.yaml", &d, &err);
  }
  if (rc == 0) {
    check(d != NULL);
    check_def(d);
  } else {
    check(d == NULL && rc < 0 && strncmp(err.msg, "fuzz.yaml", 9) == 0);
  }
  sb_flow_def_free(d);
  json_decref(doc);
  json_decref(lines);
  if (size < 64) {
    char text[64];
    memcpy(text, data, size);
    text[size] = '\0';
    uint64_t ms = 0;
    (void)sb_flow_duration_parse(text, &ms);
  }
  return 0;
}
