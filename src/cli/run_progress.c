/* run_progress.c: the lines `switchboard run` shows on stderr, in order
 * (see run_progress.h). */
#include "cli/run_progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "flow/flow.h"

static const char *str(const json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static int64_t num(const json_t *o, const char *key) {
  return (int64_t)json_integer_value(json_object_get(o, key));
}

static void flush(run_progress *p) {
  if (p->out.len) fwrite(p->out.data, 1, p->out.len, stderr);
  sb_buf_reset(&p->out);
}

/* The lines of a read go out together: one write, not one per step, for
 * a loop's hundreds of steps per read. */
static void say(run_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(run_progress *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[1024];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof small) { /* a long message: as it is */
    flush(p);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    return;
  }
  if (sb_buf_append(&p->out, small, (size_t)n) != 0) {
    flush(p);
    fputs(small, stderr);
  }
  if (p->out.len >= 65536) flush(p);
}

static void line(run_progress *p, int64_t at_ms, const char *step,
                 const char *what, const char *detail) {
  double s =
      at_ms > p->created_ms ? (double)(at_ms - p->created_ms) / 1000.0 : 0.0;
  const char *on = "", *off = "";
  if (p->color) {
    off = "\033[0m";
    on = strncmp(what, "completed", 9) == 0 ? "\033[32m"
         : strncmp(what, "failed", 6) == 0  ? "\033[31m"
         : strncmp(what, "waiting", 7) == 0 || strncmp(what, "retrying", 8) == 0
             ? "\033[33m"
             : "\033[2m";
  }
  /* What agents and workflows wrote, as text for the terminal: an escape
   * sequence of theirs must not retitle or clear it. */
  char step_text[256], what_text[1024], detail_text[2048];
  step = step ? sb_cli_printable(step, strlen(step), step_text,
                                 sizeof step_text)
              : "-";
  what = sb_cli_printable(what, strlen(what), what_text, sizeof what_text);
  if (detail)
    detail = sb_cli_printable(detail, strlen(detail), detail_text,
                              sizeof detail_text);
  say(p, "%9.3fs  %-14s %s%s%s%s%s\n", s, step, on, what, off,
      detail && *detail ? " " : "", detail ? detail : "");
}

void run_progress_init(run_progress *p, int color, run_progress_ask_cb on_ask,
                       void *ud) {
  memset(p, 0, sizeof *p);
  p->color = color;
  p->on_ask = on_ask;
  p->ud = ud;
  p->held = json_array(); /* NULL (out of memory): nothing is held */
}

void run_progress_free(run_progress *p) {
  flush(p);
  sb_buf_free(&p->out);
  json_decref(p->held);
  p->held = NULL;
}

void run_progress_hold(run_progress *p, const sb_event *e) {
  switch (sb_event_type_of(e->type)) {
  case SB_EVENT_STEP_STARTED:
  case SB_EVENT_STEP_RETRYING:
  case SB_EVENT_RUN_WAITING:
  case SB_EVENT_RUN_COMPLETED:
  case SB_EVENT_RUN_FAILED:
  case SB_EVENT_RUN_CANCELLED: break;
  default: return; /* a step's end is its history entry's to show */
  }
  json_t *data = json_loads(e->data, 0, NULL);
  if (!json_is_object(data)) {
    json_decref(data);
    data = json_object();
  }
  json_array_append_new(p->held,
                        json_pack("{sIssso}", "at", (json_int_t)e->created_ms,
                                  "type", e->type, "data", data));
}

size_t run_progress_held(const run_progress *p) {
  return json_array_size(p->held);
}

/* ---- the history --------------------------------------------------------- */

/* Entry i's number among every step the run executed: the history keeps
 * the first SB_FLOW_HISTORY_FIRST, then the dropped ones come (plan.c's
 * keep_ends always drops right after them). */
static int64_t step_number(size_t i, int64_t elided) {
  return i < SB_FLOW_HISTORY_FIRST ? (int64_t)i : (int64_t)i + elided;
}

/* The first entry not shown yet. */
static size_t first_unshown(int64_t shown, int64_t elided) {
  if (shown < SB_FLOW_HISTORY_FIRST) return (size_t)shown;
  return shown - elided >= SB_FLOW_HISTORY_FIRST ? (size_t)(shown - elided)
                                                 : SB_FLOW_HISTORY_FIRST;
}

static void show_entry(run_progress *p, const json_t *h) {
  const char *status = str(h, "status"), *agent = str(h, "agent");
  const char *step = str(h, "step");
  int64_t at = num(h, "endedAt");
  if (status && strcmp(status, "failed") == 0) {
    const char *error = str(h, "error");
    line(p, at, step, error ? "failed:" : "failed", error);
    return;
  }
  char by[300] = "";
  int64_t tries = num(h, "attempts");
  if (agent && tries > 1)
    snprintf(by, sizeof by, "by %s after %lld tries", agent, (long long)tries);
  else if (agent)
    snprintf(by, sizeof by, "by %s", agent);
  line(p, at, step, status ? status : "?", by);
}

static void show_dropped(run_progress *p, int64_t n) {
  say(p, "%11s%s%-14s %lld step%s not kept in the run's history%s\n", "",
      p->color ? "\033[2m" : "", "...", (long long)n, n == 1 ? "" : "s",
      p->color ? "\033[0m" : "");
}

/* ---- the events' lines --------------------------------------------------- */

static int same_step(const json_t *a, const json_t *b) {
  const char *x = str(a, "step"), *y = str(b, "step");
  return x && y && strcmp(x, y) == 0 && num(a, "visit") == num(b, "visit");
}

/* A line about a step under way: it comes before that step's entry,
 * whatever the clocks say. */
static int of_step_under_way(const json_t *ev) {
  sb_event_type t = sb_event_type_of(str(ev, "type"));
  return t == SB_EVENT_STEP_STARTED || t == SB_EVENT_STEP_RETRYING;
}

/* Whether entry h goes before the held line ev: the history's steps and
 * the events interleave by time, a step's end after its start. */
static int entry_first(const json_t *h, const json_t *ev) {
  if (of_step_under_way(ev) && same_step(json_object_get(ev, "data"), h))
    return 0;
  return num(h, "endedAt") <= num(ev, "at");
}

/* Whether one of the first n entries ended the step ev is about. */
static int ended_in(const json_t *hist, size_t n, const json_t *ev) {
  const json_t *data = json_object_get(ev, "data");
  for (size_t j = 0; j < n; j++)
    if (same_step(data, json_array_get(hist, j))) return 1;
  return 0;
}

static void show_event(run_progress *p, const json_t *ev, const json_t *hist) {
  const char *type = str(ev, "type");
  const json_t *d = json_object_get(ev, "data");
  const char *step = str(d, "step");
  int64_t at = num(ev, "at");
  sb_event_type t = sb_event_type_of(type);
  switch (t) {
  case SB_EVENT_STEP_STARTED: {
    const char *kind = str(d, "kind");
    char what[48];
    snprintf(what, sizeof what, "started (%s)", kind ? kind : "?");
    line(p, at, step, what, NULL);
    /* An ask the history shows ended (answered elsewhere, timed out)
     * is not asked. */
    if (kind && strcmp(kind, "ask") == 0 && p->on_ask &&
        !ended_in(hist, json_array_size(hist), ev)) {
      flush(p); /* the question comes after the lines before it */
      p->on_ask(p->ud, step, json_object_get(d, "message"),
                json_object_get(d, "schema"));
    }
    break;
  }
  case SB_EVENT_STEP_RETRYING: {
    char detail[600];
    const char *message = str(d, "message");
    snprintf(detail, sizeof detail, "try %lld of %lld in %.3fs%s%.500s",
             (long long)num(d, "attempt"), (long long)num(d, "attempts"),
             (double)num(d, "retryInMs") / 1000.0, message ? ": " : "",
             message ? message : "");
    line(p, at, step, "retrying", detail);
    break;
  }
  case SB_EVENT_RUN_WAITING: line(p, at, step, "waiting", NULL); break;
  case SB_EVENT_RUN_COMPLETED:
  case SB_EVENT_RUN_FAILED:
  case SB_EVENT_RUN_CANCELLED:
    line(p, at, "(run)", type + 4, /* "completed", ... */
         t == SB_EVENT_RUN_FAILED ? str(d, "message") : NULL);
    break;
  default: break;
  }
}

/* ---- both, in order ------------------------------------------------------ */

void run_progress_show(run_progress *p, const json_t *run, size_t covered) {
  const json_t *hist = json_object_get(run, "history");
  size_t n = json_array_size(hist);
  int64_t elided = num(run, "historyElided");
  size_t i = first_unshown(p->shown, elided), seen = i < n ? i : n;
  if (covered > json_array_size(p->held)) covered = json_array_size(p->held);
  size_t k = 0;
  while (i < n || k < covered) {
    const json_t *h = i < n ? json_array_get(hist, i) : NULL;
    const json_t *ev = k < covered ? json_array_get(p->held, k) : NULL;
    if (h && (!ev || entry_first(h, ev))) {
      int64_t number = step_number(i++, elided);
      if (number > p->shown) show_dropped(p, number - p->shown);
      show_entry(p, h);
      p->shown = number + 1;
      continue;
    }
    /* A step an earlier read showed ended (that read came after its end
     * was written but before its start was heard): too late to say. */
    if (!of_step_under_way(ev) || !ended_in(hist, seen, ev))
      show_event(p, ev, hist);
    k++;
  }
  if (covered == json_array_size(p->held))
    json_array_clear(p->held);
  else
    while (covered--)
      json_array_remove(p->held, 0);
  flush(p);
}

void run_progress_current(run_progress *p, const json_t *run) {
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(run, "current"), i, s)
      line(p, num(run, "updatedAt"), json_string_value(s), "started", NULL);
  flush(p);
}
