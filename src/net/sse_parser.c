/* sse_parser.c: the text/event-stream parser behind sse.h.
 *
 * Follows the WHATWG "event stream interpretation" rules. Complete lines
 * that sit wholly inside one chunk are parsed in place; only a line split
 * across chunks is copied into p->line. Limits are checked before anything
 * grows, so a hostile agent cannot make us buffer more than max_bytes per
 * line or per event.
 */
#include <string.h>

#include "net/sse.h"

void sb_sse_init(sb_sse_parser *p, size_t max_bytes, sb_sse_on_event cb,
                 void *ud) {
  memset(p, 0, sizeof *p);
  p->on_event = cb;
  p->ud = ud;
  p->max_bytes = max_bytes ? max_bytes : SIZE_MAX / 4;
  p->retry_ms = -1;
}

void sb_sse_free(sb_sse_parser *p) {
  sb_buf_free(&p->line);
  sb_buf_free(&p->data);
  sb_buf_free(&p->type);
  sb_buf_free(&p->last_id);
  p->have_id = 0;
}

void sb_sse_reset(sb_sse_parser *p) {
  sb_buf_reset(&p->line);
  sb_buf_reset(&p->data);
  sb_buf_reset(&p->type);
  p->after_cr = 0;
  p->started = 0;
  p->failed = 0;
}

int sb_sse_set_last_id(sb_sse_parser *p, const char *id) {
  sb_buf_reset(&p->last_id);
  p->have_id = 0;
  if (!id || !*id) return 0;
  if (sb_buf_append_str(&p->last_id, id) != 0) return SB_ENOMEM;
  p->have_id = 1;
  return 0;
}

const char *sb_sse_last_id(const sb_sse_parser *p) {
  return p->have_id ? p->last_id.data : NULL;
}

static int dispatch(sb_sse_parser *p) {
  if (p->data.len == 0) {
    /* A block with no data: lines is not an event (only id/retry stick). */
    sb_buf_reset(&p->type);
    return 0;
  }
  p->data.len--; /* the "\n" after the last data line */
  p->data.data[p->data.len] = '\0';
  sb_sse_event ev = {
      .type = p->type.len ? p->type.data : "message",
      .data = p->data.data,
      .data_len = p->data.len,
      .id = sb_sse_last_id(p),
  };
  int rc = p->on_event ? p->on_event(p->ud, &ev) : 0;
  sb_buf_reset(&p->data);
  sb_buf_reset(&p->type);
  return rc;
}

static int field_is(const char *name, size_t len, const char *want) {
  return strlen(want) == len && memcmp(name, want, len) == 0;
}

static int process_line(sb_sse_parser *p, const char *line, size_t len) {
  if (!p->started) {
    p->started = 1;
    if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
      line += 3;
      len -= 3;
    }
  }
  if (len == 0) return dispatch(p);
  if (line[0] == ':') return 0; /* comment (keep-alives are these) */
  const char *colon = memchr(line, ':', len);
  size_t name_len = colon ? (size_t)(colon - line) : len;
  const char *value = colon ? colon + 1 : line + len;
  size_t value_len = (size_t)(line + len - value);
  if (value_len && value[0] == ' ') {
    value++;
    value_len--;
  }
  if (field_is(line, name_len, "data")) {
    if (p->data.len + value_len + 1 > p->max_bytes) return SB_ETOOBIG;
    if (sb_buf_append(&p->data, value, value_len) != 0 ||
        sb_buf_append(&p->data, "\n", 1) != 0)
      return SB_ENOMEM;
  } else if (field_is(line, name_len, "event")) {
    sb_buf_reset(&p->type);
    if (sb_buf_append(&p->type, value, value_len) != 0) return SB_ENOMEM;
  } else if (field_is(line, name_len, "id")) {
    /* An id with a NUL is ignored by the spec; an empty one clears. */
    if (memchr(value, '\0', value_len)) return 0;
    sb_buf_reset(&p->last_id);
    p->have_id = 0;
    if (value_len) {
      if (sb_buf_append(&p->last_id, value, value_len) != 0) return SB_ENOMEM;
      p->have_id = 1;
    }
  } else if (field_is(line, name_len, "retry")) {
    long ms = 0;
    if (value_len == 0) return 0;
    for (size_t i = 0; i < value_len; i++) {
      if (value[i] < '0' || value[i] > '9') return 0;
      if (ms > 100000000L) return 0; /* absurd: ignore rather than wrap */
      ms = ms * 10 + (value[i] - '0');
    }
    p->retry_ms = ms;
  }
  /* Unknown fields are ignored, as the spec says. */
  return 0;
}

static int fail(sb_sse_parser *p, int rc) {
  p->failed = 1;
  sb_buf_reset(&p->line);
  return rc;
}

int sb_sse_feed(sb_sse_parser *p, const char *data, size_t len) {
  if (p->failed) return SB_ESTATE;
  size_t i = 0;
  while (i < len) {
    if (p->after_cr) {
      p->after_cr = 0;
      if (data[i] == '\n') { /* the LF of a CRLF split across chunks */
        i++;
        continue;
      }
    }
    size_t j = i;
    while (j < len && data[j] != '\n' && data[j] != '\r')
      j++;
    if (j == len) { /* partial line: keep it for the next chunk */
      if (p->line.len + (len - i) > p->max_bytes) return fail(p, SB_ETOOBIG);
      if (sb_buf_append(&p->line, data + i, len - i) != 0)
        return fail(p, SB_ENOMEM);
      break;
    }
    const char *line = data + i;
    size_t line_len = j - i;
    if (p->line.len) {
      if (p->line.len + line_len > p->max_bytes) return fail(p, SB_ETOOBIG);
      if (sb_buf_append(&p->line, data + i, line_len) != 0)
        return fail(p, SB_ENOMEM);
      line = p->line.data;
      line_len = p->line.len;
    } else if (line_len > p->max_bytes) {
      return fail(p, SB_ETOOBIG);
    }
    if (data[j] == '\r') {
      if (j + 1 < len) {
        if (data[j + 1] == '\n') j++;
      } else {
        p->after_cr = 1;
      }
    }
    i = j + 1;
    int rc = process_line(p, line, line_len);
    sb_buf_reset(&p->line);
    if (rc != 0) return fail(p, rc);
  }
  return 0;
}
