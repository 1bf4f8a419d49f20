/* test_sse_parser.c: the incremental text/event-stream parser
 * (src/net/sse_parser.c). Every stream is checked whole, split in two at
 * every byte boundary, and fed one byte at a time, and must give the same
 * events each way: a chunk boundary must never change what is parsed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "core/core.h"
#include "net/sse.h"

/* Events rendered as "type|id|data" lines, NUL-free, for easy compare. */
typedef struct collected {
  sb_buf out;
  int events;
  int stop_after; /* return 7 from the n-th event (0 = never) */
} collected;

static int collect(void *ud, const sb_sse_event *ev) {
  collected *c = ud;
  assert_non_null(ev->type);
  assert_non_null(ev->data);
  assert_int_equal(strlen(ev->data), ev->data_len);
  sb_buf_printf(&c->out, "%s|%s|%s\n", ev->type, ev->id ? ev->id : "-",
                ev->data);
  c->events++;
  if (c->stop_after && c->events == c->stop_after) return 7;
  return 0;
}

/* Feed `in` in the given chunks (split points, ascending, ending at len);
 * return what was collected (caller frees) and the parser's final retry. */
static char *run_split(const char *in, size_t len, const size_t *splits,
                       size_t nsplits, long *retry) {
  collected c = {SB_BUF_INIT, 0, 0};
  sb_sse_parser p;
  sb_sse_init(&p, 0, collect, &c);
  size_t at = 0;
  for (size_t i = 0; i < nsplits; i++) {
    assert_int_equal(sb_sse_feed(&p, in + at, splits[i] - at), 0);
    at = splits[i];
  }
  assert_int_equal(at, len);
  if (retry) *retry = p.retry_ms;
  sb_sse_free(&p);
  sb_buf_append(&c.out, "", 0);
  return c.out.data;
}

/* The stream must parse to `want` however it is chunked. */
static void check_stream(const char *in, const char *want, long want_retry) {
  size_t len = strlen(in);
  long retry = 0;
  size_t whole[1] = {len};
  char *got = run_split(in, len, whole, 1, &retry);
  assert_string_equal(got, want);
  assert_int_equal(retry, want_retry);
  sb_free(got);
  for (size_t k = 0; k <= len; k++) {
    size_t two[2] = {k, len};
    got = run_split(in, len, two, 2, &retry);
    if (strcmp(got, want) != 0)
      fail_msg("split at %zu of %s: got\n%s\nwant\n%s", k, in, got, want);
    assert_int_equal(retry, want_retry);
    sb_free(got);
  }
  size_t *bytes = sb_malloc((len + 1) * sizeof *bytes);
  for (size_t k = 0; k < len; k++)
    bytes[k] = k + 1;
  got = run_split(in, len, bytes, len, &retry);
  assert_string_equal(got, want);
  sb_free(got);
  sb_free(bytes);
}

static void basic_event(void **state) {
  (void)state;
  check_stream("data: hello\n\n", "message|-|hello\n", -1);
  check_stream("data: {\"jsonrpc\":\"2.0\"}\n\ndata: two\n\n",
               "message|-|{\"jsonrpc\":\"2.0\"}\nmessage|-|two\n", -1);
}

static void multiline_data_joined_with_lf(void **state) {
  (void)state;
  check_stream("data: a\ndata: b\ndata:\ndata: c\n\n", "message|-|a\nb\n\nc\n",
               -1);
}

static void line_endings_crlf_lf_cr(void **state) {
  (void)state;
  check_stream("data: x\r\n\r\ndata: y\r\rdata: z\n\ndata: w\r\ndata: v\r\r\n",
               "message|-|x\nmessage|-|y\nmessage|-|z\nmessage|-|w\nv\n", -1);
  /* CRLF split between CR and LF must not make a blank line */
  check_stream("data: a\r\ndata: b\r\n\r\n", "message|-|a\nb\n", -1);
}

static void comments_and_unknown_fields_ignored(void **state) {
  (void)state;
  check_stream(":\r\n: keep-alive\n\nfoo: bar\ndata: q\n:comment\n\n",
               "message|-|q\n", -1);
}

static void ids_persist_and_clear(void **state) {
  (void)state;
  check_stream(
      "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 7\n\ndata: d\n\n",
      "message|1|a\nmessage|1|b\nmessage|-|c\nmessage|7|d\n", -1);
}

static void event_type_applies_once(void **state) {
  (void)state;
  check_stream("event: ping\ndata: x\n\ndata: y\n\nevent: lone\n\ndata: z\n\n",
               "ping|-|x\nmessage|-|y\nmessage|-|z\n", -1);
}

static void value_space_rules(void **state) {
  (void)state;
  /* one leading space is stripped, only one; no colon = empty value */
  check_stream("data:x\n\ndata:  y\n\ndata\n\ndata: a:b\n\n",
               "message|-|x\nmessage|-| y\nmessage|-|\nmessage|-|a:b\n", -1);
}

static void retry_field(void **state) {
  (void)state;
  check_stream("retry: 1500\n\n", "", 1500);
  check_stream("retry: 1500\nretry: 15x\nretry:\n\n", "", 1500);
  check_stream("retry: 20\ndata: a\n\n", "message|-|a\n", 20);
}

static void bom_only_at_start(void **state) {
  (void)state;
  check_stream("\xEF\xBB\xBF"
               "data: a\n\n",
               "message|-|a\n", -1);
  /* a BOM later is data, not stripped */
  check_stream("data: a\n\n\xEF\xBB\xBF"
               "data: b\n\n",
               "message|-|a\n", -1);
}

static void incomplete_event_not_dispatched(void **state) {
  (void)state;
  check_stream("data: a\n\ndata: b\n", "message|-|a\n", -1);
  check_stream("data: a\n\ndata: b", "message|-|a\n", -1);
}

static void limits_enforced(void **state) {
  (void)state;
  collected c = {SB_BUF_INIT, 0, 0};
  sb_sse_parser p;
  /* one line over the limit, in one chunk and across chunks */
  sb_sse_init(&p, 16, collect, &c);
  assert_int_equal(sb_sse_feed(&p, "data: 0123456789abcdef\n", 23), SB_ETOOBIG);
  assert_int_equal(sb_sse_feed(&p, "data: a\n\n", 9), SB_ESTATE);
  sb_sse_free(&p);
  sb_sse_init(&p, 16, collect, &c);
  assert_int_equal(sb_sse_feed(&p, "data: 01234", 11), 0);
  assert_int_equal(sb_sse_feed(&p, "56789", 5), 0);
  assert_int_equal(sb_sse_feed(&p, "x", 1), SB_ETOOBIG);
  sb_sse_free(&p);
  /* short lines whose data adds up past the limit */
  sb_sse_init(&p, 16, collect, &c);
  assert_int_equal(sb_sse_feed(&p, "data: 01234567\n", 15), 0);
  assert_int_equal(sb_sse_feed(&p, "data: 01234567\n", 15), SB_ETOOBIG);
  sb_sse_free(&p);
  /* exactly at the limit is fine */
  sb_sse_init(&p, 16, collect, &c);
  assert_int_equal(sb_sse_feed(&p, "data: 012345678\n\n", 17), 0);
  assert_int_equal(c.events, 1);
  sb_sse_free(&p);
  sb_buf_free(&c.out);
}

static void callback_can_stop(void **state) {
  (void)state;
  collected c = {SB_BUF_INIT, 0, 1};
  sb_sse_parser p;
  sb_sse_init(&p, 0, collect, &c);
  const char *in = "data: a\n\ndata: b\n\n";
  assert_int_equal(sb_sse_feed(&p, in, strlen(in)), 7);
  assert_int_equal(c.events, 1);
  assert_int_equal(sb_sse_feed(&p, in, strlen(in)), SB_ESTATE);
  sb_sse_free(&p);
  sb_buf_free(&c.out);
}

static void last_id_seed_and_reset(void **state) {
  (void)state;
  collected c = {SB_BUF_INIT, 0, 0};
  sb_sse_parser p;
  sb_sse_init(&p, 0, collect, &c);
  assert_null(sb_sse_last_id(&p));
  assert_int_equal(sb_sse_set_last_id(&p, "41"), 0);
  assert_int_equal(sb_sse_feed(&p, "data: half", 10), 0);
  /* a reconnect forgets the partial event but keeps the id */
  sb_sse_reset(&p);
  assert_int_equal(sb_sse_feed(&p, "\n\ndata: x\n\n", 11), 0);
  assert_string_equal(c.out.data, "message|41|x\n");
  assert_int_equal(sb_sse_feed(&p, "id: 42\n\n", 8), 0);
  assert_string_equal(sb_sse_last_id(&p), "42");
  assert_int_equal(sb_sse_set_last_id(&p, NULL), 0);
  assert_null(sb_sse_last_id(&p));
  sb_sse_free(&p);
  sb_buf_free(&c.out);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(basic_event),
      cmocka_unit_test(multiline_data_joined_with_lf),
      cmocka_unit_test(line_endings_crlf_lf_cr),
      cmocka_unit_test(comments_and_unknown_fields_ignored),
      cmocka_unit_test(ids_persist_and_clear),
      cmocka_unit_test(event_type_applies_once),
      cmocka_unit_test(value_space_rules),
      cmocka_unit_test(retry_field),
      cmocka_unit_test(bom_only_at_start),
      cmocka_unit_test(incomplete_event_not_dispatched),
      cmocka_unit_test(limits_enforced),
      cmocka_unit_test(callback_can_stop),
      cmocka_unit_test(last_id_seed_and_reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
