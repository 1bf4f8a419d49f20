/* fuzz_json.c: differential libFuzzer target for the single-pass JSON
 * reader (src/core/json_read.c) against jansson's json_loadb.
 *
 * The first byte picks the flags (those of a JSON-RPC message, of a stored
 * document, or scalars allowed); the rest is the text. Whatever the reader
 * accepts, jansson must accept as an equal tree that dumps to the same
 * bytes; sb_json_loadb must then agree with jansson on every input.
 * The writer (json_write.c) is checked on every tree jansson reads: its
 * text reads back as an equal tree, in no more bytes than jansson's own
 * dump, and its own walk (compact text) writes what its way through
 * jansson's callback does (JSON_REAL_PRECISION(17), jansson's default,
 * takes that way). Crashes, leaks (ASan) and UB (UBSan) are findings too.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static void check(int cond) {
  if (!cond) abort();
}

static int same_dump(json_t *a, json_t *b) {
  size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
  char *x = json_dumps(a, flags), *y = json_dumps(b, flags);
  int same = x && y && strcmp(x, y) == 0;
  sb_free(x);
  sb_free(y);
  return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    sb_core_init();
    ready = 1;
  }
  if (size < 1) return 0;
  static const size_t choices[] = {
      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, 0, JSON_DECODE_ANY,
      JSON_REJECT_DUPLICATES};
  size_t flags = choices[data[0] % 4];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;

  json_error_t jerr;
  json_t *slow = json_loadb(text, len, flags, &jerr);
  json_t *fast = sb_json_read_fast(text, len, flags);
  if (fast) {
    check(slow != NULL);
    check(json_equal(fast, slow));
    check(same_dump(fast, slow));
  }
  if (slow) {
    size_t dump = JSON_COMPACT | JSON_ENCODE_ANY;
    char *mine = sb_json_dumps(slow, dump), *theirs = json_dumps(slow, dump);
    check(mine && theirs && strlen(mine) <= strlen(theirs));
    char *long_way = sb_json_dumps(slow, dump | JSON_REAL_PRECISION(17));
    check(long_way && strcmp(long_way, mine) == 0);
    sb_free(long_way);
    json_t *back = json_loads(mine, JSON_DECODE_ANY, NULL);
    check(back && json_equal(back, slow));
    json_decref(back);
    sb_free(mine);
    sb_free(theirs);
  }
  json_t *loaded = sb_json_loadb(text, len, flags, &jerr);
  check((loaded != NULL) == (slow != NULL));
  if (loaded) check(json_equal(loaded, slow));
  json_decref(loaded);
  json_decref(fast);
  json_decref(slow);
  return 0;
}
