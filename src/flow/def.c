/* def.c: a workflow definition from its JSON — the workflow's own keys,
 * the step ids, references between steps — and the builder every check
 * in flow/ reports through.
 *
 * Building is two passes. The first reads every step's id (nested steps
 * of parallel steps included), so the second, which checks each step's
 * body (step.c), can resolve `next`, `goto`, `else` and `on_failure` as
 * it meets them and name the steps that do exist when one does not.
 * Steps are stored top-level first, in file order, then the nested steps
 * of each parallel step in turn.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "flow/flow_internal.h"

#define ID_MAX 64

/* ---- the builder ------------------------------------------------------ */

static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
  if (*len >= cap - 1) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  *len = *len + (size_t)n < cap - 1 ? *len + (size_t)n : cap - 1;
}

flow_mark flow_push_key(flow_builder *b, const char *key) {
  flow_mark m = {b->ptr_len, b->key_len};
  append(b->ptr, sizeof b->ptr, &b->ptr_len, "/");
  for (const char *c = key; *c; c++)
    append(b->ptr, sizeof b->ptr, &b->ptr_len, "%s",
           *c == '~'   ? "~0"
           : *c == '/' ? "~1"
                       : (char[]){*c, 0});
  append(b->key, sizeof b->key, &b->key_len, "%s%.64s", b->key_len ? "." : "",
         key);
  return m;
}

flow_mark flow_push_index(flow_builder *b, size_t i) {
  flow_mark m = {b->ptr_len, b->key_len};
  append(b->ptr, sizeof b->ptr, &b->ptr_len, "/%zu", i);
  append(b->key, sizeof b->key, &b->key_len, "[%zu]", i);
  return m;
}

void flow_pop(flow_builder *b, flow_mark m) {
  b->ptr_len = m.ptr;
  b->ptr[m.ptr] = '\0';
  b->key_len = m.key;
  b->key[m.key] = '\0';
}

size_t flow_line(const flow_builder *b) {
  if (!b->lines) return 0;
  char full[FLOW_PTR_MAX + 64];
  int n = snprintf(full, sizeof full, "%s%s", b->prefix, b->ptr);
  size_t len = n < 0                     ? 0
               : (size_t)n < sizeof full ? (size_t)n
                                         : sizeof full - 1;
  size_t root = strlen(b->prefix);
  for (;;) {
    full[len] = '\0';
    json_t *line = json_object_get(b->lines, full);
    if (json_is_integer(line)) return (size_t)json_integer_value(line);
    if (len <= root) return 0;
    while (len > root && full[len - 1] != '/')
      len--;
    if (len > root) len--; /* drop the '/' too */
  }
}

int flow_fail(flow_builder *b, int code, const char *fmt, ...) {
  char msg[360], where[400];
  size_t wlen = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t line = flow_line(b);
  append(where, sizeof where, &wlen, "%s", b->file);
  if (line) append(where, sizeof where, &wlen, ":%zu", line);
  if (b->step) append(where, sizeof where, &wlen, ": step \"%s\"", b->step);
  if (b->key_len) append(where, sizeof where, &wlen, ": %s", b->key);
  return sb_error_set(b->err, code, "%s: %s", where, msg);
}

int flow_string(flow_builder *b, const json_t *v, const char *what,
                const char **out) {
  if (!json_is_string(v))
    return flow_fail(b, SB_EINVAL, "expected %s, got %s", what,
                     sb_json_type_name(v));
  if (strlen(json_string_value(v)) != json_string_length(v))
    return flow_fail(b, SB_EINVAL, "contains a NUL character");
  *out = json_string_value(v);
  return 0;
}

int flow_strdup(flow_builder *b, const char *s, char **out) {
  *out = sb_strdup(s);
  if (!*out)
    return sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
  return 0;
}

int flow_known_keys(flow_builder *b, const json_t *obj,
                    const char *const *known) {
  const char *key = sb_json_unknown_key(obj, known);
  if (!key) return 0;
  char list[200];
  sb_join_names(known, list, sizeof list);
  flow_mark m = flow_push_key(b, key);
  int rc = flow_fail(b, SB_EINVAL, "unknown key (known: %s)", list);
  flow_pop(b, m);
  return rc;
}

/* ---- ids and references ----------------------------------------------- */

static int id_valid(const char *s, size_t max, int dots) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-' || (dots && c == '.')))
      return 0;
  }
  return 1;
}

int sb_flow_def_step(const sb_flow_def *d, const char *id) {
  if (!d || !id) return SB_FLOW_NONE;
  for (size_t i = 0; i < d->nsteps; i++)
    if (d->steps[i].id && strcmp(d->steps[i].id, id) == 0) return (int)i;
  return SB_FLOW_NONE;
}

int flow_ref(flow_builder *b, const json_t *v, int *out) {
  const char *id = NULL;
  int rc = flow_string(b, v, "a step id", &id);
  if (rc != 0) return rc;
  const sb_flow_def *d = b->def;
  int i = sb_flow_def_step(d, id);
  if (i != SB_FLOW_NONE && d->steps[i].parent == SB_FLOW_NONE) {
    *out = i;
    return 0;
  }
  if (i != SB_FLOW_NONE)
    return flow_fail(b, SB_EINVAL,
                     "step \"%s\" is inside parallel step \"%s\"; only "
                     "top-level steps can be gone to",
                     id, d->steps[d->steps[i].parent].id);
  char list[240];
  size_t len = 0, shown = 0;
  list[0] = '\0';
  for (size_t k = 0; k < d->nsteps; k++) {
    if (!d->steps[k].id || d->steps[k].parent != SB_FLOW_NONE) continue;
    if (len + strlen(d->steps[k].id) + 8 > 200) {
      append(list, sizeof list, &len, ", ...");
      break;
    }
    append(list, sizeof list, &len, "%s%s", shown++ ? ", " : "",
           d->steps[k].id);
  }
  return flow_fail(b, SB_EINVAL, "no step \"%.64s\" (steps: %s)", id, list);
}

/* ---- the workflow ------------------------------------------------------- */

const char *sb_flow_step_kind_name(sb_flow_step_kind k) {
  switch (k) {
  case SB_FLOW_CALL: return "call";
  case SB_FLOW_BRANCH: return "branch";
  case SB_FLOW_PARALLEL: return "parallel";
  case SB_FLOW_ASK: return "ask";
  case SB_FLOW_EMIT: return "emit";
  case SB_FLOW_WAIT: return "wait";
  case SB_FLOW_END: return "end";
  }
  return "unknown";
}

static void step_free(sb_flow_step *s) {
  sb_free(s->id);
  sb_free(s->agent);
  sb_free(s->capability);
  sb_free(s->tool);
  json_decref(s->arguments);
  sb_free(s->message);
  json_decref(s->schema);
  sb_free(s->event_type);
  json_decref(s->event_data);
  json_decref(s->where);
  for (size_t i = 0; i < s->ncases; i++)
    flow_cond_free(&s->cases[i].cond);
  sb_free(s->cases);
  sb_free(s->branches);
  sb_free(s->end_message);
  sb_free(s->save);
  json_decref(s->save_map);
}

void sb_flow_def_free(sb_flow_def *d) {
  if (!d) return;
  for (size_t i = 0; i < d->nsteps; i++)
    step_free(&d->steps[i]);
  sb_free(d->steps);
  sb_free(d->name);
  sb_free(d->description);
  sb_free(d->file);
  json_decref(d->source);
  sb_free(d);
}

/* Pass one for the step `src` at the builder's node: a mapping with a
 * valid id not used before; record it at steps[index]. */
static int take_id(flow_builder *b, const json_t *src, int index, int parent) {
  sb_flow_def *d = b->def;
  if (!json_is_object(src))
    return flow_fail(b, SB_EINVAL,
                     "expected a step (a mapping with an id), "
                     "got %s",
                     sb_json_type_name(src));
  sb_flow_step *s = &d->steps[index];
  s->parent = parent;
  s->line = flow_line(b);
  flow_mark m = flow_push_key(b, "id");
  const json_t *idv = json_object_get(src, "id");
  const char *id = NULL;
  int rc = 0;
  if (!idv)
    rc = flow_fail(b, SB_EINVAL, "required (every step has an id)");
  else if ((rc = flow_string(b, idv, "a step id", &id)) != 0)
    ;
  else if (!id_valid(id, ID_MAX, 0))
    rc = flow_fail(b, SB_EINVAL,
                   "\"%.64s\" is not a valid step id (1-64 of A-Z a-z 0-9 _ "
                   "-)",
                   id);
  else if (sb_flow_def_step(d, id) != SB_FLOW_NONE)
    rc = flow_fail(b, SB_EINVAL,
                   "duplicate step id \"%s\" (first on line "
                   "%zu)",
                   id, d->steps[sb_flow_def_step(d, id)].line);
  else
    rc = flow_strdup(b, id, &s->id);
  flow_pop(b, m);
  return rc;
}

static const char *const workflow_keys[] = {"name", "description", "max_steps",
                                            "steps", NULL};

/* Pass one: the workflow's own keys and every step's id. */
static int read_workflow(flow_builder *b, const json_t *src, size_t *ntop) {
  sb_flow_def *d = b->def;
  const char *s = NULL;
  flow_mark m;
  int rc;
  if (!json_is_object(src))
    return flow_fail(b, SB_EINVAL,
                     "expected a workflow definition (a mapping with name "
                     "and steps), got %s",
                     sb_json_type_name(src));
  if ((rc = flow_known_keys(b, src, workflow_keys)) != 0) return rc;
  m = flow_push_key(b, "name");
  const json_t *name = json_object_get(src, "name");
  if (!name)
    rc = flow_fail(b, SB_EINVAL, "required (the workflow's name)");
  else if ((rc = flow_string(b, name, "a workflow name", &s)) != 0)
    ;
  else if (!id_valid(s, ID_MAX, 1))
    rc = flow_fail(b, SB_EINVAL,
                   "\"%.64s\" is not a valid workflow name (1-64 of A-Z a-z "
                   "0-9 . _ -)",
                   s);
  else
    rc = flow_strdup(b, s, &d->name);
  flow_pop(b, m);
  if (rc != 0) return rc;
  const json_t *desc = json_object_get(src, "description");
  if (desc) {
    m = flow_push_key(b, "description");
    if ((rc = flow_string(b, desc, "a string", &s)) == 0)
      rc = flow_strdup(b, s, &d->description);
    flow_pop(b, m);
    if (rc != 0) return rc;
  }
  d->max_steps = 100;
  const json_t *max = json_object_get(src, "max_steps");
  if (max) {
    m = flow_push_key(b, "max_steps");
    if (!json_is_integer(max) || json_integer_value(max) < 1 ||
        json_integer_value(max) > 100000)
      rc = flow_fail(b, SB_EINVAL,
                     "expected an integer between 1 and 100000, "
                     "got %s",
                     json_is_integer(max) ? "a number out of range"
                                          : sb_json_type_name(max));
    flow_pop(b, m);
    if (rc != 0) return rc;
    d->max_steps = (int)json_integer_value(max);
  }
  m = flow_push_key(b, "steps");
  const json_t *steps = json_object_get(src, "steps");
  if (!steps)
    rc = flow_fail(b, SB_EINVAL, "required (a list of steps)");
  else if (!json_is_array(steps) || json_array_size(steps) == 0)
    rc = flow_fail(b, SB_EINVAL, "expected a non-empty list of steps, got %s",
                   json_is_array(steps) ? "an empty list"
                                        : sb_json_type_name(steps));
  flow_pop(b, m);
  if (rc != 0) return rc;
  /* Count nested steps first: they are stored after the top-level ones. */
  size_t n = json_array_size(steps), total = n;
  for (size_t i = 0; i < n; i++) {
    const json_t *par = json_object_get(json_array_get(steps, i), "parallel");
    if (json_is_array(par)) total += json_array_size(par);
  }
  d->steps = sb_calloc(total, sizeof *d->steps);
  if (!d->steps)
    return sb_error_set(b->err, SB_ENOMEM, "%s: out of memory", b->file);
  d->nsteps = total;
  for (size_t i = 0; i < total; i++) {
    d->steps[i].parent = SB_FLOW_NONE;
    d->steps[i].next = SB_FLOW_NONE;
    d->steps[i].on_failure = SB_FLOW_NONE;
    d->steps[i].otherwise = SB_FLOW_NONE;
    d->steps[i].retry_attempts = 1;
  }
  size_t nested = n;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const json_t *st = json_array_get(steps, i);
    m = flow_push_key(b, "steps");
    flow_push_index(b, i);
    rc = take_id(b, st, (int)i, SB_FLOW_NONE);
    const json_t *par = json_object_get(st, "parallel");
    if (rc == 0 && json_is_array(par)) {
      flow_push_key(b, "parallel");
      for (size_t j = 0; j < json_array_size(par) && rc == 0; j++) {
        flow_mark mj = flow_push_index(b, j);
        rc = take_id(b, json_array_get(par, j), (int)nested++, (int)i);
        flow_pop(b, mj);
      }
    }
    flow_pop(b, m);
  }
  *ntop = n;
  return rc;
}

int flow_def_build(const json_t *src, const json_t *lines, const char *prefix,
                   const char *file, sb_flow_def **out, sb_error *err) {
  flow_builder b;
  memset(&b, 0, sizeof b);
  b.lines = lines;
  b.prefix = prefix ? prefix : "";
  b.file = file ? file : "<workflow>";
  b.err = err;
  *out = NULL;
  sb_flow_def *d = sb_calloc(1, sizeof *d);
  if (!d) return sb_error_set(err, SB_ENOMEM, "%s: out of memory", b.file);
  b.def = d;
  size_t ntop = 0;
  int rc = read_workflow(&b, src, &ntop);
  if (rc == 0 &&
      (!(d->file = sb_strdup(b.file)) || !(d->source = json_deep_copy(src))))
    rc = sb_error_set(err, SB_ENOMEM, "%s: out of memory", b.file);
  const json_t *steps = json_object_get(src, "steps");
  for (size_t i = 0; i < ntop && rc == 0; i++) {
    flow_mark m = flow_push_key(&b, "steps");
    flow_push_index(&b, i);
    b.key_len = 0; /* step messages name the step, not steps[i] */
    b.key[0] = '\0';
    rc = flow_step_fill(&b, json_array_get(steps, i), (int)i,
                        i + 1 < ntop ? (int)i + 1 : SB_FLOW_NONE);
    flow_pop(&b, m);
    b.step = NULL;
  }
  if (rc != 0) {
    sb_flow_def_free(d);
    return rc;
  }
  *out = d;
  return 0;
}

int sb_flow_def_from_json(const json_t *src, const json_t *lines,
                          const char *file, sb_flow_def **out, sb_error *err) {
  return flow_def_build(src, lines, "", file, out, err);
}
