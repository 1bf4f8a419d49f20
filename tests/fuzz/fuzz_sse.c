/* fuzz_sse.c: libFuzzer target for the SSE parser (src/net/sse_parser.c),
 * which reads whatever an HTTP agent streams at us.
 *
 * The first input byte picks a split point; the rest is parsed three ways:
 * whole, in two chunks at that point, and one byte at a time. The events
 * (type, id, data) and the outcome must be identical each way, since chunk
 * boundaries are an accident of the network. Crashes, leaks and UB are
 * findings too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "net/sse.h"

static void check(int cond) {
  if (!cond) abort();
}

static int collect(void *ud, const sb_sse_event *ev) {
  sb_buf *out = ud;
  check(ev->type && ev->data && strlen(ev->data) <= ev->data_len);
  check(ev->data_len <= 512);
  sb_buf_printf(out, "%s", ev->type);
  sb_buf_append(out, "\0", 1);
  if (ev->id) sb_buf_printf(out, "%s", ev->id);
  sb_buf_append(out, "\0", 1);
  sb_buf_append(out, ev->data, ev->data_len);
  sb_buf_append(out, "\0\1", 2);
  return 0;
}

static int parse(const char *data, size_t len, size_t step, size_t split,
                 sb_buf *out) {
  sb_sse_parser p;
  sb_sse_init(&p, 512, collect, out);
  int rc = 0;
  if (step) {
    for (size_t i = 0; i < len && rc == 0; i += step)
      rc = sb_sse_feed(&p, data + i, len - i < step ? len - i : step);
  } else {
    rc = sb_sse_feed(&p, data, split);
    if (rc == 0) rc = sb_sse_feed(&p, data + split, len - split);
  }
  if (rc != 0) check(sb_sse_feed(&p, "x", 1) == SB_ESTATE);
  sb_sse_free(&p);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int initialised;
  if (!initialised) {
    sb_core_init();
    initialised = 1;
  }
  if (size < 1) return 0;
  size_t split = data[0] % size;
  const char *in = (const char *)data + 1;
  size_t len = size - 1;
  if (split > len) split = len;
  sb_buf whole = SB_BUF_INIT, two = SB_BUF_INIT, bytes = SB_BUF_INIT;
  int rc_whole = parse(in, len, 0, len, &whole);
  int rc_two = parse(in, len, 0, split, &two);
  int rc_bytes = parse(in, len, 1, 0, &bytes);
  check(rc_whole == 0 || rc_whole == SB_ETOOBIG);
  check(rc_whole == rc_two && rc_whole == rc_bytes);
  check(whole.len == two.len && whole.len == bytes.len);
  check(whole.len == 0 || (memcmp(whole.data, two.data, whole.len) == 0 &&
                           memcmp(whole.data, bytes.data, whole.len) == 0));
  sb_buf_free(&whole);
  sb_buf_free(&two);
  sb_buf_free(&bytes);
  return 0;
}
