/* alloc.c: the single allocation wrapper.
 *
 * Everything in switchboard (and jansson, through sb_core_init) allocates
 * here, so a test can make the n-th allocation fail on purpose and a
 * benchmark can read the live byte count. The size header keeps the count
 * exact without relying on malloc_usable_size. The count is kept per
 * thread (each thread adds to a counter on a cache line of its own, and a
 * read sums them): one shared counter had every allocation of the loop,
 * the thread pool and the store's threads bounce its cache line between
 * cores.
 */
#include "core/core.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Header in front of every block: the requested size, padded so the payload
 * keeps max_align_t alignment. */
typedef union alloc_header {
  size_t size;
  max_align_t align;
} alloc_header;

static atomic_long fail_countdown;

/* Live bytes, by thread: a thread takes a slot of its own at its first
 * allocation and keeps its count there with a plain (relaxed) load and
 * store, no locked instruction; threads past the first ALLOC_SLOTS - 1
 * share the last slot, with atomic adds. A block freed by another thread
 * than the one that allocated it comes off the freeing thread's slot, so
 * a slot may go negative; the sum is exact. */
#define ALLOC_SLOTS 64
typedef struct alloc_slot {
  _Alignas(64) atomic_long bytes;
} alloc_slot;
static alloc_slot slots[ALLOC_SLOTS];
static atomic_uint next_slot;
static _Thread_local alloc_slot *my_slot;
#define SHARED_SLOT (&slots[ALLOC_SLOTS - 1])

static void count_bytes(long delta) {
  alloc_slot *s = my_slot;
  if (!s) {
    unsigned i = atomic_fetch_add(&next_slot, 1);
    s = my_slot = i < ALLOC_SLOTS - 1 ? &slots[i] : SHARED_SLOT;
  }
  if (s == SHARED_SLOT) {
    atomic_fetch_add_explicit(&s->bytes, delta, memory_order_relaxed);
    return;
  }
  long now = atomic_load_explicit(&s->bytes, memory_order_relaxed);
  atomic_store_explicit(&s->bytes, now + delta, memory_order_relaxed);
}

void sb_alloc_fail_after(long n) { atomic_store(&fail_countdown, n); }

size_t sb_alloc_live_bytes(void) {
  long sum = 0;
  for (size_t i = 0; i < ALLOC_SLOTS; i++)
    sum += atomic_load(&slots[i].bytes);
  return sum > 0 ? (size_t)sum : 0;
}

static int should_fail(void) {
  long n = atomic_load(&fail_countdown);
  if (n <= 0) return 0;
  if (atomic_fetch_sub(&fail_countdown, 1) == 1) return 1;
  return 0;
}

void *sb_malloc(size_t n) {
  if (should_fail() || n > SIZE_MAX - sizeof(alloc_header)) return NULL;
  alloc_header *h = malloc(sizeof *h + n);
  if (!h) return NULL;
  h->size = n;
  count_bytes((long)n);
  return h + 1;
}

void *sb_calloc(size_t count, size_t n) {
  if (n && count > SIZE_MAX / n) return NULL;
  void *p = sb_malloc(count * n);
  if (p) memset(p, 0, count * n);
  return p;
}

void *sb_realloc(void *p, size_t n) {
  if (!p) return sb_malloc(n);
  if (should_fail() || n > SIZE_MAX - sizeof(alloc_header)) return NULL;
  alloc_header *old = (alloc_header *)p - 1;
  size_t old_size = old->size;
  alloc_header *h = realloc(old, sizeof *h + n);
  if (!h) return NULL;
  h->size = n;
  count_bytes((long)n - (long)old_size);
  return h + 1;
}

void sb_free(void *p) {
  if (!p) return;
  alloc_header *h = (alloc_header *)p - 1;
  count_bytes(-(long)h->size);
  free(h);
}

void sb_free_handle(struct uv_handle_s *h) { sb_free(h); }

char *sb_strndup(const char *s, size_t n) {
  char *d = sb_malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

void sb_strcopy(char *dst, size_t cap, const char *s) {
  size_t n = strnlen(s, cap - 1);
  memcpy(dst, s, n);
  dst[n] = '\0';
}

char *sb_strdup(const char *s) { return s ? sb_strndup(s, strlen(s)) : NULL; }

void sb_strv_free(char **v) {
  for (size_t i = 0; v && v[i]; i++) sb_free(v[i]);
  sb_free(v);
}

uint64_t sb_hash_str(uint64_t h, const char *s) {
  for (;; s++) {
    h = (h ^ (unsigned char)*s) * 1099511628211u;
    if (!*s) return h;
  }
}

char *sb_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = sb_malloc((size_t)n + 1);
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

void sb_core_init(void) {
  json_set_alloc_funcs(sb_malloc, sb_free);
  if (sodium_init() < 0) abort(); /* no entropy source: nothing is safe */
}
