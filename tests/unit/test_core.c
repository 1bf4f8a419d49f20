/* test_core.c: the core helpers (src/core/alloc.c, src/core/util.c): byte
 * buffers, base64, random ids, injected allocation failures, errors and log
 * level names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <string.h>

#include <uv.h>

#include "core/core.h"

/* ---- sb_buf ---------------------------------------------------------- */

static void buf_append_grows_and_terminates(void **state) {
  (void)state;
  sb_buf b = SB_BUF_INIT;
  assert_int_equal(sb_buf_append(&b, "abc", 3), 0);
  assert_int_equal(b.len, 3);
  assert_string_equal(b.data, "abc");
  assert_true(b.cap > b.len);
  /* binary data with an embedded NUL keeps its length */
  assert_int_equal(sb_buf_append(&b, "d\0e", 3), 0);
  assert_int_equal(b.len, 6);
  assert_memory_equal(b.data, "abcd\0e", 7);
  /* grow well past the first capacity */
  char chunk[1000];
  memset(chunk, 'x', sizeof chunk);
  for (int i = 0; i < 10; i++)
    assert_int_equal(sb_buf_append(&b, chunk, sizeof chunk), 0);
  assert_int_equal(b.len, 6 + 10 * sizeof chunk);
  assert_int_equal(b.data[b.len], '\0');
  assert_int_equal(b.data[b.len - 1], 'x');
  assert_memory_equal(b.data, "abcd\0e", 6);
  /* an empty append still leaves a terminated string */
  sb_buf e = SB_BUF_INIT;
  assert_int_equal(sb_buf_append(&e, "", 0), 0);
  assert_non_null(e.data);
  assert_string_equal(e.data, "");
  sb_buf_free(&e);
  sb_buf_free(&b);
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, 0);
}

static void buf_append_str_and_printf(void **state) {
  (void)state;
  sb_buf b = SB_BUF_INIT;
  assert_int_equal(sb_buf_append_str(&b, "id="), 0);
  assert_int_equal(sb_buf_printf(&b, "%d/%s/%05.1f", 42, "x", 3.25), 0);
  assert_string_equal(b.data, "id=42/x/003.2");
  assert_int_equal(b.len, strlen("id=42/x/003.2"));
  /* a long printf forces a reallocation in the middle */
  char big[3000];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(sb_buf_printf(&b, "<%s>", big), 0);
  assert_int_equal(b.len, 13 + 2 + 2999);
  assert_int_equal(b.data[13], '<');
  assert_int_equal(b.data[b.len - 1], '>');
  assert_int_equal(b.data[b.len], '\0');
  sb_buf_free(&b);
}

static void buf_consume(void **state) {
  (void)state;
  sb_buf b = SB_BUF_INIT;
  assert_int_equal(sb_buf_append_str(&b, "line1\nline2\n"), 0);
  sb_buf_consume(&b, 6);
  assert_int_equal(b.len, 6);
  assert_string_equal(b.data, "line2\n");
  sb_buf_consume(&b, 0);
  assert_string_equal(b.data, "line2\n");
  /* consuming more than there is empties the buffer */
  sb_buf_consume(&b, 100);
  assert_int_equal(b.len, 0);
  assert_string_equal(b.data, "");
  /* and it is usable afterwards */
  assert_int_equal(sb_buf_append_str(&b, "z"), 0);
  assert_string_equal(b.data, "z");
  sb_buf_free(&b);
}

static void buf_reset_keeps_memory(void **state) {
  (void)state;
  sb_buf b = SB_BUF_INIT;
  sb_buf_reset(&b); /* on an empty buffer: no crash, nothing allocated */
  assert_null(b.data);
  assert_int_equal(sb_buf_append_str(&b, "hello"), 0);
  char *mem = b.data;
  size_t cap = b.cap;
  sb_buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_ptr_equal(b.data, mem);
  assert_int_equal(b.cap, cap);
  assert_string_equal(b.data, "");
  assert_int_equal(sb_buf_append_str(&b, "hi"), 0);
  assert_ptr_equal(b.data, mem);
  assert_string_equal(b.data, "hi");
  sb_buf_free(&b);
}

static void buf_reports_enomem_and_stays_valid(void **state) {
  (void)state;
  sb_buf b = SB_BUF_INIT;
  assert_int_equal(sb_buf_append_str(&b, "keep"), 0);
  char big[600];
  memset(big, 'q', sizeof big);
  sb_alloc_fail_after(1);
  assert_int_equal(sb_buf_append(&b, big, sizeof big), SB_ENOMEM);
  sb_alloc_fail_after(0);
  assert_int_equal(b.len, 4);
  assert_string_equal(b.data, "keep");
  sb_alloc_fail_after(1);
  assert_int_equal(sb_buf_printf(&b, "%600s", "p"), SB_ENOMEM);
  sb_alloc_fail_after(0);
  assert_string_equal(b.data, "keep");
  /* a reservation whose size would wrap around is refused, not granted */
  assert_int_equal(sb_buf_reserve(&b, SIZE_MAX), SB_ENOMEM);
  assert_int_equal(sb_buf_reserve(&b, SIZE_MAX - 2), SB_ENOMEM);
  assert_string_equal(b.data, "keep");
  sb_buf_free(&b);
}

/* ---- base64 ------------------------------------------------------------ */

/* A stream read whole up to a bound, and no further past it (a pipe that
 * never ends is not read on). */
static void buf_read_file_bounded(void **state) {
  (void)state;
  FILE *f = tmpfile();
  assert_non_null(f);
  for (int i = 0; i < 1000; i++) fputs("0123456789", f);
  rewind(f);
  sb_buf b = SB_BUF_INIT;
  assert_int_equal(sb_buf_read_file(&b, f, 10000), 0);
  assert_int_equal(b.len, 10000);
  assert_int_equal(b.data[b.len], '\0');
  rewind(f);
  sb_buf_reset(&b);
  assert_int_equal(sb_buf_read_file(&b, f, 9999), SB_ETOOBIG);
  assert_true(b.len <= 9999);
  sb_buf_free(&b);
  fclose(f);
  FILE *z = fopen("/dev/zero", "rb");
  assert_non_null(z);
  assert_int_equal(sb_buf_read_file(&b, z, 1 << 20), SB_ETOOBIG);
  assert_true(b.len <= 1 << 20);
  sb_buf_free(&b);
  fclose(z);
}

static void base64_known_vectors(void **state) {
  (void)state;
  /* RFC 4648 section 10 */
  const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *enc[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (size_t i = 0; i < 7; i++) {
    char *e = sb_base64_encode(plain[i], strlen(plain[i]));
    assert_non_null(e);
    assert_string_equal(e, enc[i]);
    size_t n = 99;
    unsigned char *d = sb_base64_decode(e, strlen(e), &n);
    assert_non_null(d);
    assert_int_equal(n, strlen(plain[i]));
    assert_memory_equal(d, plain[i], n);
    assert_int_equal(d[n], '\0');
    sb_free(d);
    sb_free(e);
  }
}

static void base64_round_trip_binary(void **state) {
  (void)state;
  unsigned char bytes[256];
  for (int i = 0; i < 256; i++)
    bytes[i] = (unsigned char)(255 - i);
  for (size_t len = 0; len <= sizeof bytes; len += 37) {
    char *e = sb_base64_encode(bytes, len);
    assert_non_null(e);
    assert_int_equal(strlen(e), (len + 2) / 3 * 4);
    size_t n = 0;
    unsigned char *d = sb_base64_decode(e, strlen(e), &n);
    assert_non_null(d);
    assert_int_equal(n, len);
    assert_memory_equal(d, bytes, len);
    sb_free(d);
    sb_free(e);
  }
}

static void base64_bad_input(void **state) {
  (void)state;
  const char *bad[] = {"Zm9v!",  "Zm9",    "Zg=",  "Z===",  "Zm 9v",
                       "Zm9v\n", "Zm9v-_", "====", "Zg==Zg"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n = 12345;
    unsigned char *d = sb_base64_decode(bad[i], strlen(bad[i]), &n);
    if (d) fail_msg("\"%s\" decoded but is not valid base64", bad[i]);
  }
  /* slen bounds the input: trailing garbage past slen is ignored */
  size_t n = 0;
  unsigned char *d = sb_base64_decode("Zm9v!!!", 4, &n);
  assert_non_null(d);
  assert_int_equal(n, 3);
  assert_memory_equal(d, "foo", 3);
  sb_free(d);
}

/* ---- random ids -------------------------------------------------------- */

static void random_hex_shape_and_uniqueness(void **state) {
  (void)state;
  enum { N = 200 };
  static char ids[N][33];
  for (int i = 0; i < N; i++) {
    memset(ids[i], '#', sizeof ids[i]);
    sb_random_hex(ids[i], 16);
    assert_int_equal(strlen(ids[i]), 32);
    for (int j = 0; j < 32; j++) {
      char c = ids[i][j];
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
        fail_msg("id %s has non-hex char '%c'", ids[i], c);
    }
    for (int k = 0; k < i; k++)
      assert_string_not_equal(ids[i], ids[k]);
  }
  /* other lengths: 2*n chars exactly, NUL right after */
  char small[3];
  memset(small, '#', sizeof small);
  sb_random_hex(small, 1);
  assert_int_equal(strlen(small), 2);
  char id8[17];
  sb_random_hex(id8, 8);
  assert_int_equal(strlen(id8), 16);
}

/* ---- allocation ------------------------------------------------------- */

static void alloc_fail_after_hits_nth(void **state) {
  (void)state;
  sb_alloc_fail_after(3);
  void *a = sb_malloc(8);
  void *b = sb_malloc(8);
  void *c = sb_malloc(8); /* the third one fails */
  void *d = sb_malloc(8); /* and the wrapper recovers by itself */
  assert_non_null(a);
  assert_non_null(b);
  assert_null(c);
  assert_non_null(d);
  sb_free(a);
  sb_free(b);
  sb_free(d);

  /* calloc, realloc and strdup go through the same counter */
  sb_alloc_fail_after(1);
  assert_null(sb_calloc(4, 4));
  char *s = sb_strdup("abc");
  assert_non_null(s);
  sb_alloc_fail_after(1);
  assert_null(sb_realloc(s, 1000));
  assert_string_equal(s, "abc"); /* the old block survives a failed realloc */
  sb_alloc_fail_after(1);
  assert_null(sb_strdup("x"));
  sb_alloc_fail_after(1);
  assert_null(sb_asprintf("%d", 1));
  sb_free(s);
  s = sb_asprintf("%s-%d", "n", 7);
  assert_string_equal(s, "n-7");
  sb_free(s);
}

static void alloc_fail_after_zero_disables(void **state) {
  (void)state;
  sb_alloc_fail_after(5);
  sb_alloc_fail_after(0);
  for (int i = 0; i < 10; i++) {
    void *p = sb_malloc(1);
    assert_non_null(p);
    sb_free(p);
  }
}

static void alloc_fail_reaches_jansson(void **state) {
  (void)state;
  /* sb_core_init routes jansson through the wrapper, so injected failures
   * reach JSON code too. */
  sb_alloc_fail_after(1);
  json_t *o = json_object();
  assert_null(o);
  o = json_object();
  assert_non_null(o);
  json_decref(o);
}

static void alloc_live_bytes_tracks(void **state) {
  (void)state;
  size_t before = sb_alloc_live_bytes();
  char *p = sb_malloc(1000);
  assert_non_null(p);
  assert_int_equal(sb_alloc_live_bytes(), before + 1000);
  p = sb_realloc(p, 3000);
  assert_non_null(p);
  assert_int_equal(sb_alloc_live_bytes(), before + 3000);
  sb_free(p);
  assert_int_equal(sb_alloc_live_bytes(), before);
  sb_free(NULL);
  assert_int_equal(sb_alloc_live_bytes(), before);
}

/* A block allocated on one thread and freed on another (the store's
 * threads and the loop do this all the time) leaves the count exact. */
static void alloc_elsewhere(void *arg) {
  void **blocks = arg;
  blocks[0] = sb_malloc(700);
  sb_free(blocks[1]);
}

static void alloc_live_bytes_across_threads(void **state) {
  (void)state;
  size_t before = sb_alloc_live_bytes();
  void *blocks[2] = {NULL, sb_malloc(300)};
  assert_int_equal(sb_alloc_live_bytes(), before + 300);
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, alloc_elsewhere, blocks), 0);
  uv_thread_join(&t);
  assert_non_null(blocks[0]);
  assert_int_equal(sb_alloc_live_bytes(), before + 700);
  sb_free(blocks[0]);
  assert_int_equal(sb_alloc_live_bytes(), before);
}

static void jpath_builds_cuts_and_pops(void **state) {
  (void)state;
  sb_jpath p = {.len = 0};
  size_t m0 = sb_jpath_key(&p, "data");
  size_t m1 = sb_jpath_key(&p, "messages");
  size_t m2 = sb_jpath_index(&p, 0);
  assert_string_equal(p.buf, "data.messages[0]");
  sb_jpath_pop(&p, m2);
  sb_jpath_index(&p, 12345);
  sb_jpath_key(&p, "role");
  assert_string_equal(p.buf, "data.messages[12345].role");
  sb_jpath_pop(&p, m1);
  assert_string_equal(p.buf, "data");
  sb_jpath_pop(&p, m0);
  assert_string_equal(p.buf, "");
  /* a key is cut at 80 bytes; the path at the buffer's end */
  char key[200];
  memset(key, 'k', sizeof key - 1);
  key[sizeof key - 1] = '\0';
  sb_jpath_key(&p, key);
  assert_int_equal(strlen(p.buf), 80);
  for (int i = 0; i < 5; i++)
    sb_jpath_key(&p, key);
  assert_int_equal(p.len, sizeof p.buf - 1);
  assert_int_equal(strlen(p.buf), sizeof p.buf - 1);
  sb_jpath_index(&p, 7); /* no room: nothing, still terminated */
  assert_int_equal(strlen(p.buf), sizeof p.buf - 1);
}

static void alloc_overflow_refused(void **state) {
  (void)state;
  assert_null(sb_calloc(SIZE_MAX / 2, 4));
  assert_null(sb_malloc(SIZE_MAX));
  assert_null(sb_malloc(SIZE_MAX - 8));
  char *p = sb_malloc(4);
  assert_non_null(p);
  assert_null(sb_realloc(p, SIZE_MAX - 4));
  sb_free(p);
  char *z = sb_strndup("abcdef", 3);
  assert_string_equal(z, "abc");
  sb_free(z);
  assert_null(sb_strdup(NULL));
}

/* ---- errors and logging ---------------------------------------------- */

static void error_set_formats_and_returns_code(void **state) {
  (void)state;
  sb_error err = {0};
  int rc = sb_error_set(&err, SB_EINVAL, "params.%s: expected %s", "name",
                        "a string");
  assert_int_equal(rc, SB_EINVAL);
  assert_int_equal(err.code, SB_EINVAL);
  assert_string_equal(err.msg, "params.name: expected a string");
  /* NULL err is allowed and still returns the code */
  assert_int_equal(sb_error_set(NULL, SB_ENOENT, "x"), SB_ENOENT);
  /* a message longer than the buffer is truncated, still terminated */
  char longer[1000];
  memset(longer, 'm', sizeof longer - 1);
  longer[sizeof longer - 1] = '\0';
  sb_error_set(&err, SB_ETOOBIG, "%s", longer);
  assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
  assert_int_equal(err.code, SB_ETOOBIG);
}

/* A refusal carries the missing scope as a value; any later error clears
 * it, so a stale scope never names the wrong permission. */
static void error_refuse_carries_the_scope(void **state) {
  (void)state;
  sb_error err = {0};
  /* A message that names another scope: only the field counts. */
  assert_int_equal(sb_error_refuse(&err, "runs:read:quote",
                                   "nothing to do with scope \"%s\"", "x"),
                   SB_EPERM);
  assert_int_equal(err.code, SB_EPERM);
  assert_string_equal(err.scope, "runs:read:quote");
  assert_string_equal(err.msg, "nothing to do with scope \"x\"");
  sb_error_set(&err, SB_ENOENT, "no such run");
  assert_string_equal(err.scope, "");
  assert_int_equal(sb_error_refuse(NULL, "x", "y"), SB_EPERM);
}

static void strerror_names(void **state) {
  (void)state;
  assert_string_equal(sb_strerror(SB_OK), "OK");
  assert_string_equal(sb_strerror(SB_ENOMEM), "ENOMEM");
  assert_string_equal(sb_strerror(SB_ESTATE), "ESTATE");
  assert_string_equal(sb_strerror(SB_ETIMEDOUT), "ETIMEDOUT");
  assert_string_equal(sb_strerror(-999), "EUNKNOWN");
}

static void log_level_parse(void **state) {
  (void)state;
  assert_int_equal(sb_log_level_parse("debug"), SB_LOG_DEBUG);
  assert_int_equal(sb_log_level_parse("info"), SB_LOG_INFO);
  assert_int_equal(sb_log_level_parse("notice"), SB_LOG_NOTICE);
  assert_int_equal(sb_log_level_parse("warning"), SB_LOG_WARNING);
  assert_int_equal(sb_log_level_parse("error"), SB_LOG_ERROR);
  assert_int_equal(sb_log_level_parse("warn"), -1);
  assert_int_equal(sb_log_level_parse(""), -1);
  assert_int_equal(sb_log_level_parse("INFO"), -1);
  assert_int_equal(sb_log_level_parse("critical"), -1);
  assert_int_equal(sb_log_level_parse(NULL), -1);
}

static void log_level_set_get(void **state) {
  (void)state;
  sb_log_level old = sb_log_get_level();
  sb_log_set_level(SB_LOG_ERROR);
  assert_int_equal(sb_log_get_level(), SB_LOG_ERROR);
  SB_DEBUG("test", "filtered out %d", 1); /* below the level: no output */
  sb_log_set_level(old);
  assert_int_equal(sb_log_get_level(), old);
}

/* One entry, one line: what a client sent, quoted in a message, cannot
 * start a line that reads as another entry (or an audit record). */
/* What emit() logs, read back from stderr into buf; checks it is one
 * line. */
static void capture_log(void (*emit)(void), char *buf, size_t cap) {
  char path[] = "/tmp/sb-test-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0);
  assert_int_equal(dup2(fd, 2), 2);
  emit();
  fflush(stderr);
  assert_int_equal(dup2(saved, 2), 2);
  close(saved);
  memset(buf, 0, cap);
  ssize_t n = pread(fd, buf, cap - 1, 0);
  close(fd);
  unlink(path);
  assert_true(n > 0);
  char *nl = strchr(buf, '\n');
  assert_non_null(nl);
  assert_int_equal(nl[1], '\0'); /* one line */
}

static void emit_forged_entry(void) {
  SB_INFO("test", "failed %s", "a\n2026-01-01T00:00:00.000Z info audit: forged\r\x1b[31m\tend");
}

static void log_line_escapes_control_characters(void **state) {
  (void)state;
  char buf[512];
  capture_log(emit_forged_entry, buf, sizeof buf);
  assert_non_null(strstr(buf, "test: failed a\\n2026-01-01T00:00:00.000Z "
                              "info audit: forged\\r\\x1b[31m\tend\n"));
}

/* --log-format json: one object a line, valid JSON whatever the message
 * holds (control characters, quotes, bytes that are not UTF-8), redacted
 * as the text lines are. */
static void emit_json_entry(void) {
  sb_log_set_format(SB_LOG_JSON);
  SB_WARN("mod\"x", "got \"%s\" Authorization: Bearer abcdefghijklmnop",
          "a\n{\"forged\":1}\\\x01\xff\xc3\xa9");
  sb_log_set_format(SB_LOG_TEXT);
}

static void log_line_as_json(void **state) {
  (void)state;
  char buf[1024];
  capture_log(emit_json_entry, buf, sizeof buf);
  json_error_t jerr;
  json_t *line = json_loads(buf, 0, &jerr);
  assert_non_null(line);
  assert_string_equal(json_string_value(json_object_get(line, "level")),
                      "warning");
  assert_string_equal(json_string_value(json_object_get(line, "module")),
                      "mod\"x");
  const char *msg = json_string_value(json_object_get(line, "msg"));
  assert_non_null(msg);
  assert_non_null(strstr(msg, "got \"a\n{\"forged\":1}\\\x01\xef\xbf\xbd\xc3\xa9\""));
  assert_null(strstr(msg, "abcdefghijklmnop")); /* redacted */
  const char *t = json_string_value(json_object_get(line, "time"));
  assert_non_null(t);
  assert_int_equal(strlen(t), 24); /* 2026-12-03T10:00:00.000Z */
  assert_int_equal(json_object_size(line), 4);
  json_decref(line);
}

/* Each flag keeps or names its characters; the rest are \xHH; an escape
 * that would not fit whole is left out. */
static void escape_controls_flags(void **state) {
  (void)state;
  char out[64];
  const char in[] = "a\tb\nc\rd\x1b\"\\\x7f" "e";
  size_t n = sizeof in - 1;
  sb_escape_controls(in, n, out, sizeof out, 0);
  assert_string_equal(out, "a\\x09b\\x0ac\\x0dd\\x1b\"\\\\x7fe");
  sb_escape_controls(in, n, out, sizeof out,
                     SB_ESC_KEEP_TAB | SB_ESC_KEEP_NEWLINE);
  assert_string_equal(out, "a\tb\nc\\x0dd\\x1b\"\\\\x7fe");
  sb_escape_controls(in, n, out, sizeof out,
                     SB_ESC_KEEP_TAB | SB_ESC_NAMED_CRLF);
  assert_string_equal(out, "a\tb\\nc\\rd\\x1b\"\\\\x7fe");
  sb_escape_controls(in, n, out, sizeof out, SB_ESC_QUOTE);
  assert_string_equal(out, "a\\x09b\\x0ac\\x0dd\\x1b\\\"\\\\\\x7fe");
  /* NUL bytes inside len are escaped, not an end. */
  assert_int_equal(sb_escape_controls("x\0y", 3, out, sizeof out, 0), 6);
  assert_string_equal(out, "x\\x00y");
  /* Cut: "ab" fits in 6 bytes, the 4-byte escape after it does not. */
  assert_int_equal(sb_escape_controls("ab\x01" "cd", 5, out, 6, 0), 2);
  assert_string_equal(out, "ab");
  assert_int_equal(sb_escape_controls("abc", 3, out, 1, 0), 0);
  assert_string_equal(out, "");
}

static void json_escape_cuts_whole(void **state) {
  (void)state;
  char out[8];
  /* "\u0001" does not fit after "ab": cut before it, not inside */
  assert_int_equal(sb_json_escape("ab\x01" "cd", out, sizeof out), 2);
  assert_string_equal(out, "ab");
  assert_int_equal(sb_json_escape("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", out, sizeof out), 6);
  assert_string_equal(out, "\xc3\xa9\xc3\xa9\xc3\xa9");
  assert_int_equal(sb_json_escape("", out, sizeof out), 0);
  assert_int_equal(sb_log_format_parse("json"), SB_LOG_JSON);
  assert_int_equal(sb_log_format_parse("text"), SB_LOG_TEXT);
  assert_int_equal(sb_log_format_parse("JSON"), -1);
  assert_int_equal(sb_log_format_parse(NULL), -1);
}

static void clocks_move_forward(void **state) {
  (void)state;
  uint64_t m1 = sb_now_ms(), w = sb_wall_ms();
  uint64_t m2 = sb_now_ms();
  assert_true(m2 >= m1);
  /* after 2020-01-01 and before 2100 */
  assert_true(w > 1577836800000ull);
  assert_true(w < 4102444800000ull);
}

/* ---- intrusive list ---------------------------------------------------- */

typedef struct item {
  int id;
  sb_list_link link;
} item;

/* The ids of l from head to tail, and checks the walk back agrees. */
static void list_expect(const sb_list *l, const int *ids, size_t n) {
  size_t i = 0;
  for (sb_list_link *it = sb_list_first(l); it; it = sb_list_next(it)) {
    assert_true(i < n);
    assert_int_equal(sb_list_entry(it, item, link)->id, ids[i]);
    i++;
  }
  assert_int_equal(i, n);
  for (sb_list_link *it = sb_list_last(l); it; it = it->prev) {
    assert_true(i > 0);
    i--;
    assert_int_equal(sb_list_entry(it, item, link)->id, ids[i]);
  }
  assert_int_equal(sb_list_empty(l), n == 0);
}

static void list_empty(void **state) {
  (void)state;
  sb_list l = {0};
  item a = {.id = 1};
  assert_true(sb_list_empty(&l));
  assert_null(sb_list_first(&l));
  assert_null(sb_list_last(&l));
  assert_null(sb_list_entry(sb_list_first(&l), item, link));
  assert_false(sb_list_linked(&l, &a.link));
  sb_list_unlink(&l, &a.link); /* not in it: nothing happens */
  assert_true(sb_list_empty(&l));
  list_expect(&l, NULL, 0);
}

static void list_one_element(void **state) {
  (void)state;
  sb_list l = {0};
  item a = {.id = 1};
  sb_list_push_back(&l, &a.link);
  assert_true(sb_list_linked(&l, &a.link));
  assert_ptr_equal(sb_list_entry(sb_list_first(&l), item, link), &a);
  list_expect(&l, (int[]){1}, 1);
  sb_list_unlink(&l, &a.link);
  assert_false(sb_list_linked(&l, &a.link));
  list_expect(&l, NULL, 0);
  sb_list_unlink(&l, &a.link); /* twice: still a no-op */
  list_expect(&l, NULL, 0);
  sb_list_push_front(&l, &a.link);
  assert_true(sb_list_linked(&l, &a.link));
  list_expect(&l, (int[]){1}, 1);
}

static void list_push_orders(void **state) {
  (void)state;
  sb_list l = {0};
  item it[4] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}};
  sb_list_push_back(&l, &it[1].link);
  sb_list_push_back(&l, &it[2].link);
  sb_list_push_front(&l, &it[0].link);
  sb_list_push_back(&l, &it[3].link);
  list_expect(&l, (int[]){0, 1, 2, 3}, 4);
}

static void list_unlink_head_middle_tail(void **state) {
  (void)state;
  sb_list l = {0};
  item it[5];
  for (int i = 0; i < 5; i++) {
    it[i] = (item){.id = i};
    sb_list_push_back(&l, &it[i].link);
  }
  sb_list_unlink(&l, &it[2].link); /* middle */
  list_expect(&l, (int[]){0, 1, 3, 4}, 4);
  sb_list_unlink(&l, &it[0].link); /* head */
  list_expect(&l, (int[]){1, 3, 4}, 3);
  sb_list_unlink(&l, &it[4].link); /* tail */
  list_expect(&l, (int[]){1, 3}, 2);
  for (int i = 0; i < 5; i++)
    assert_int_equal(sb_list_linked(&l, &it[i].link), i == 1 || i == 3);
  /* Another list's element is not in this one. */
  sb_list other = {0};
  item x = {.id = 9};
  sb_list_push_back(&other, &x.link);
  assert_false(sb_list_linked(&l, &x.link));
  sb_list_unlink(&l, &x.link);
  list_expect(&l, (int[]){1, 3}, 2);
  assert_true(sb_list_linked(&other, &x.link));
}

static void list_iterate_while_removing(void **state) {
  (void)state;
  sb_list l = {0};
  item it[6];
  for (int i = 0; i < 6; i++) {
    it[i] = (item){.id = i};
    sb_list_push_back(&l, &it[i].link);
  }
  /* Remove the odd ones during the walk; every element is still seen. */
  sb_list_link *n, *nx;
  int seen = 0;
  SB_LIST_FOREACH_SAFE(n, nx, &l) {
    item *e = sb_list_entry(n, item, link);
    seen++;
    if (e->id % 2) sb_list_unlink(&l, n);
  }
  assert_int_equal(seen, 6);
  list_expect(&l, (int[]){0, 2, 4}, 3);
  /* Then empty it the same way, touching each element once. */
  seen = 0;
  SB_LIST_FOREACH_SAFE(n, nx, &l) {
    sb_list_unlink(&l, n);
    seen++;
  }
  assert_int_equal(seen, 3);
  list_expect(&l, NULL, 0);
  for (int i = 0; i < 6; i++) assert_false(sb_list_linked(&l, &it[i].link));
}

/* Text from the wire: what an id or a query value may hold, and messages
 * quoting anything else made packable. */
static void text_plain_and_scrub(void **state) {
  (void)state;
  assert_true(sb_text_plain("run-1", 5));
  assert_true(sb_text_plain("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x97", 14));
  assert_true(sb_text_plain("", 0));
  assert_false(sb_text_plain("a\0b", 3));      /* a NUL inside */
  assert_false(sb_text_plain("a\nb", 3));      /* a control character */
  assert_false(sb_text_plain("a\x7f", 2));     /* DEL */
  assert_false(sb_text_plain("\xff", 1));      /* never UTF-8 */
  assert_false(sb_text_plain("\xc3\x28", 2)); /* a broken sequence */
  assert_false(sb_text_plain("\xc0\xaf", 2)); /* overlong "/" */
  assert_false(sb_text_plain("\xed\xa0\x80", 3)); /* a surrogate */
  assert_false(sb_text_plain("\xe2\x82", 2)); /* cut short */
  char msg[] = "no agent \xff\xc3\x28 \xc3\xa9";
  sb_utf8_scrub(msg);
  assert_string_equal(msg, "no agent ?" "?( \xc3\xa9");
  json_t *j = json_string(msg);
  assert_non_null(j); /* jansson takes it now */
  json_decref(j);
}

/* Files read on SIGHUP: a FIFO in their place is an error at once, not a
 * read that waits for a writer (on the server's loop) for ever. */
static void fopen_regular_refuses_fifos(void **state) {
  (void)state;
  char dir[] = "/tmp/sb-test-fopen-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char fifo[64], file[64];
  snprintf(fifo, sizeof fifo, "%s/cert.pem", dir);
  snprintf(file, sizeof file, "%s/key.pem", dir);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  errno = 0;
  assert_null(sb_fopen_regular(fifo));
  assert_int_equal(errno, EINVAL);
  assert_null(sb_fopen_regular(dir));
  assert_int_equal(errno, EINVAL);
  assert_null(sb_fopen_regular("/nonexistent/x.pem"));
  assert_int_equal(errno, ENOENT);
  FILE *w = fopen(file, "w");
  assert_non_null(w);
  fputs("pem", w);
  fclose(w);
  FILE *r = sb_fopen_regular(file);
  assert_non_null(r);
  char buf[8] = {0};
  assert_int_equal(fread(buf, 1, sizeof buf - 1, r), 3);
  assert_string_equal(buf, "pem");
  fclose(r);
  unlink(fifo);
  unlink(file);
  rmdir(dir);
}

/* sb_parse_digits: digits alone, 0..INT64_MAX; what strtoll would have
 * taken (a sign, blanks, a clamped overflow) is refused, and *out is only
 * written on success. */
static void parse_digits_bounds(void **state) {
  (void)state;
  int64_t v = -7;
  assert_int_equal(sb_parse_digits("0", 1, &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(sb_parse_digits("0042", 4, &v), 0);
  assert_int_equal(v, 42);
  assert_int_equal(sb_parse_digits("9223372036854775807", 19, &v), 0);
  assert_true(v == INT64_MAX);
  /* only the n bytes given are read */
  assert_int_equal(sb_parse_digits("12-34", 2, &v), 0);
  assert_int_equal(v, 12);
  v = -7;
  assert_int_equal(sb_parse_digits("9223372036854775808", 19, &v), SB_ETOOBIG);
  assert_int_equal(sb_parse_digits("99999999999999999999999", 23, &v),
                   SB_ETOOBIG);
  assert_int_equal(sb_parse_digits("99999999999999999999x", 21, &v), SB_EINVAL);
  const char *bad[] = {"", "+5", "-5", " 5", "5 ", "0x10", "1e3", "5.0", "\xd9\xa5"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(sb_parse_digits(bad[i], strlen(bad[i]), &v), SB_EINVAL);
  assert_int_equal(sb_parse_digits(NULL, 0, &v), SB_EINVAL);
  assert_int_equal(v, -7);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(buf_append_grows_and_terminates),
      cmocka_unit_test(buf_append_str_and_printf),
      cmocka_unit_test(buf_consume),
      cmocka_unit_test(buf_reset_keeps_memory),
      cmocka_unit_test(buf_reports_enomem_and_stays_valid),
      cmocka_unit_test(buf_read_file_bounded),
      cmocka_unit_test(base64_known_vectors),
      cmocka_unit_test(base64_round_trip_binary),
      cmocka_unit_test(base64_bad_input),
      cmocka_unit_test(random_hex_shape_and_uniqueness),
      cmocka_unit_test(alloc_fail_after_hits_nth),
      cmocka_unit_test(alloc_fail_after_zero_disables),
      cmocka_unit_test(alloc_fail_reaches_jansson),
      cmocka_unit_test(alloc_live_bytes_tracks),
      cmocka_unit_test(alloc_live_bytes_across_threads),
      cmocka_unit_test(jpath_builds_cuts_and_pops),
      cmocka_unit_test(alloc_overflow_refused),
      cmocka_unit_test(error_set_formats_and_returns_code),
      cmocka_unit_test(error_refuse_carries_the_scope),
      cmocka_unit_test(strerror_names),
      cmocka_unit_test(log_level_parse),
      cmocka_unit_test(log_level_set_get),
      cmocka_unit_test(clocks_move_forward),
      cmocka_unit_test(list_empty),
      cmocka_unit_test(list_one_element),
      cmocka_unit_test(list_push_orders),
      cmocka_unit_test(list_unlink_head_middle_tail),
      cmocka_unit_test(list_iterate_while_removing),
      cmocka_unit_test(text_plain_and_scrub),
      cmocka_unit_test(fopen_regular_refuses_fifos),
      cmocka_unit_test(log_line_escapes_control_characters),
      cmocka_unit_test(log_line_as_json),
      cmocka_unit_test(escape_controls_flags),
      cmocka_unit_test(json_escape_cuts_whole),
      cmocka_unit_test(parse_digits_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
