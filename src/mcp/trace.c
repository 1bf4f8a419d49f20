/* trace.c: OpenTelemetry trace context in _meta (2026-07-28, basic/index:
 * `traceparent`, `tracestate` and `baggage`, in the W3C Trace Context and
 * W3C Baggage formats).
 *
 * switchboard passes a caller's trace context on to the agent a call
 * reaches, so the agent's spans join the caller's trace; a value that is
 * not in its format is not passed on (an agent's tracer could reject the
 * whole request, or start a trace nobody asked for).
 */
#include <string.h>

#include "mcp/mcp_internal.h"

#define TRACESTATE_MAX 512 /* W3C Trace Context: at most 512 characters */
#define BAGGAGE_MAX 8192   /* W3C Baggage: at least 8192 bytes supported */

static int lower_hex(const char *s, size_t n, int *all_zero) {
  *all_zero = 1;
  for (size_t i = 0; i < n; i++) {
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
    if (s[i] != '0') *all_zero = 0;
  }
  return 1;
}

/* version "-" trace-id "-" parent-id "-" flags: 2, 32, 16 and 2 lowercase
 * hex digits; version ff, an all-zero trace-id or parent-id are invalid.
 * A later version may append "-..." fields. */
static int traceparent_ok(const char *s) {
  size_t n = strlen(s);
  int zero, trace_zero, parent_zero;
  if (n < 55 || (n > 55 && s[55] != '-') || (n > 55 && s[0] == '0' && s[1] == '0'))
    return 0;
  if (!lower_hex(s, 2, &zero) || strncmp(s, "ff", 2) == 0 || s[2] != '-' ||
      !lower_hex(s + 3, 32, &trace_zero) || s[35] != '-' ||
      !lower_hex(s + 36, 16, &parent_zero) || s[52] != '-' ||
      !lower_hex(s + 53, 2, &zero))
    return 0;
  return !trace_zero && !parent_zero;
}

/* Printable ASCII (what both headers' grammars are made of), non-empty,
 * at most max bytes. */
static int printable(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x20 || s[i] > 0x7e) return 0;
  return 1;
}

json_t *sb_mcp_trace_context(const json_t *meta) {
  const char *tp = json_string_value(json_object_get(meta, "traceparent"));
  if (!tp || !traceparent_ok(tp)) return NULL; /* the rest means nothing */
  json_t *out = json_pack("{ss}", "traceparent", tp);
  const char *ts = json_string_value(json_object_get(meta, "tracestate"));
  const char *bg = json_string_value(json_object_get(meta, "baggage"));
  if (out && ts && printable(ts, TRACESTATE_MAX))
    json_object_set_new(out, "tracestate", json_string(ts));
  if (out && bg && printable(bg, BAGGAGE_MAX))
    json_object_set_new(out, "baggage", json_string(bg));
  return out;
}
