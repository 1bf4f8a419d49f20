/* diff.c: the RFC 6902 patch between two versions of a context, stored
 * with each version so history can be replayed and shown.
 *
 * The shape of real context changes drives the algorithm: agents append
 * messages, set a variable, bump a step, trim old messages. Objects are
 * compared member by member. Arrays first lose their common prefix and
 * suffix (which settles appends and single edits in O(n)); if both middles
 * are non-empty, Myers' O(ND) shortest edit script finds the elements they
 * still share, within a fixed edit and comparison budget. Each run of
 * changes between shared elements diffs its elements pairwise (an edited
 * message costs its edit) and removes or adds the surplus. Past the budget
 * the whole middle is one such run: longer, never wrong.
 */
#include "ctx/ctx_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct differ {
  json_t *ops; /* the patch being built */
  sb_buf path; /* escaped pointer of the value being compared */
} differ;

/* Append {"op", "path": current path [+ "/" suffix], "value"?}. value is
 * copied. */
static int emit(differ *d, const char *op, const char *suffix,
                const json_t *value) {
  size_t saved = d->path.len;
  if (suffix && sb_buf_printf(&d->path, "/%s", suffix) != 0) return SB_ENOMEM;
  json_t *entry = json_pack("{s:s, s:s%}", "op", op, "path",
                            d->path.data ? d->path.data : "", d->path.len);
  d->path.len = saved;
  if (d->path.data) d->path.data[saved] = '\0';
  if (!entry) return SB_ENOMEM;
  if (value) {
    json_t *copy = json_deep_copy(value);
    if (!copy || json_object_set_new(entry, "value", copy) != 0) {
      json_decref(entry);
      return SB_ENOMEM;
    }
  }
  return json_array_append_new(d->ops, entry) == 0 ? 0 : SB_ENOMEM;
}

static int diff_value(differ *d, const json_t *from, const json_t *to);

/* ---- objects ---------------------------------------------------------- */

static int diff_object(differ *d, const json_t *from, const json_t *to) {
  size_t saved = d->path.len;
  const char *key;
  size_t key_len;
  json_t *fv, *tv;
  int rc = 0;
  /* Removals and changes in `from`'s member order, then additions in
   * `to`'s: object members are independent, so any order is valid. */
  json_object_keylen_foreach((json_t *)from, key, key_len, fv) {
    if (sb_ctx_ptr_append(&d->path, key, key_len) != 0) return SB_ENOMEM;
    tv = json_object_getn(to, key, key_len);
    rc = tv ? diff_value(d, fv, tv) : emit(d, "remove", NULL, NULL);
    d->path.len = saved;
    d->path.data[saved] = '\0';
    if (rc != 0) return rc;
  }
  json_object_keylen_foreach((json_t *)to, key, key_len, tv) {
    if (json_object_getn(from, key, key_len)) continue;
    if (sb_ctx_ptr_append(&d->path, key, key_len) != 0) return SB_ENOMEM;
    rc = emit(d, "add", NULL, tv);
    d->path.len = saved;
    d->path.data[saved] = '\0';
    if (rc != 0) return rc;
  }
  return 0;
}

/* ---- arrays ----------------------------------------------------------- */

/* Edit-distance budget: Myers' algorithm costs O((M+N) * D) element
 * comparisons, so D is capped by both a constant and a comparison budget;
 * past it the middle of the arrays is diffed as one run. */
#define MAX_EDITS 64
#define MAX_COMPARISONS 4000000

enum { ED_EQ, ED_DEL, ED_INS };

/* Shortest edit script (Myers 1986) turning from[lo..lo+M) into
 * to[lo..lo+N): script[0..*nscript) of ED_*, at most M+N entries. Returns
 * SB_ETOOBIG when more than max_d inserts+deletes would be needed. */
static int myers(const json_t *from, const json_t *to, size_t lo, long M,
                 long N, long max_d, unsigned char *script, size_t *nscript) {
  long vsize = 2 * max_d + 3, off = max_d + 1;
  long *trace = sb_calloc((size_t)(max_d + 1) * (size_t)vsize, sizeof *trace);
  if (!trace) return SB_ENOMEM;
  long *v = trace, d_end = -1;
  v[off + 1] = 0;
  for (long d = 0; d <= max_d && d_end < 0; d++) {
    if (d > 0) { /* each round starts from a copy of the last */
      memcpy(trace + d * vsize, trace + (d - 1) * vsize,
             (size_t)vsize * sizeof *trace);
      v = trace + d * vsize;
    }
    for (long k = -d; k <= d; k += 2) {
      long x = (k == -d || (k != d && v[off + k - 1] < v[off + k + 1]))
                   ? v[off + k + 1]
                   : v[off + k - 1] + 1;
      long y = x - k;
      while (x < M && y < N &&
             json_equal(json_array_get(from, lo + (size_t)x),
                        json_array_get(to, lo + (size_t)y))) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= M && y >= N) {
        d_end = d;
        break;
      }
    }
  }
  if (d_end < 0) {
    sb_free(trace);
    return SB_ETOOBIG;
  }
  /* Walk back from (M, N); round d's choices are in the copy made before
   * it, i.e. trace[d - 1]. The script is built backwards. */
  size_t n = 0;
  long x = M, y = N;
  for (long d = d_end; d > 0; d--) {
    const long *pv = trace + (d - 1) * vsize;
    long k = x - y;
    long prev_k = (k == -d || (k != d && pv[off + k - 1] < pv[off + k + 1]))
                      ? k + 1
                      : k - 1;
    long prev_x = pv[off + prev_k], prev_y = prev_x - prev_k;
    while (x > prev_x && y > prev_y) {
      script[n++] = ED_EQ;
      x--;
      y--;
    }
    script[n++] = x == prev_x ? ED_INS : ED_DEL;
    x = prev_x;
    y = prev_y;
  }
  while (x > 0 && y > 0) {
    script[n++] = ED_EQ;
    x--;
    y--;
  }
  for (size_t i = 0; i < n / 2; i++) {
    unsigned char t = script[i];
    script[i] = script[n - 1 - i];
    script[n - 1 - i] = t;
  }
  *nscript = n;
  sb_free(trace);
  return 0;
}

/* The array as the patch has left it so far: where the next run starts
 * and how long the array is (to know when "-" names the insertion). */
typedef struct array_cursor {
  size_t at, len;
} array_cursor;

/* One run of changes between equal elements: the `a` elements of `from`
 * at from_at become the `b` elements of `to` at to_at. Pairs are diffed in
 * place (an edited message costs its edit), the surplus removed or added. */
static int emit_run(differ *d, const json_t *from, size_t from_at, size_t a,
                    const json_t *to, size_t to_at, size_t b, array_cursor *c) {
  size_t paired = a < b ? a : b, saved = d->path.len;
  char idx[32];
  int rc = 0;
  for (size_t i = 0; i < paired && rc == 0; i++) {
    rc = sb_buf_printf(&d->path, "/%zu", c->at + i);
    if (rc == 0)
      rc = diff_value(d, json_array_get(from, from_at + i),
                      json_array_get(to, to_at + i));
    d->path.len = saved;
    if (d->path.data) d->path.data[saved] = '\0';
  }
  /* from the highest index down, so each index is valid when it runs */
  for (size_t i = a; i > paired && rc == 0; i--, c->len--) {
    snprintf(idx, sizeof idx, "%zu", c->at + i - 1);
    rc = emit(d, "remove", idx, NULL);
  }
  for (size_t i = paired; i < b && rc == 0; i++, c->len++) {
    if (c->at + i == c->len)
      snprintf(idx, sizeof idx, "-");
    else
      snprintf(idx, sizeof idx, "%zu", c->at + i);
    rc = emit(d, "add", idx, json_array_get(to, to_at + i));
  }
  c->at += b;
  return rc;
}

static int diff_array(differ *d, const json_t *from, const json_t *to) {
  size_t m = json_array_size(from), n = json_array_size(to);
  size_t shorter = m < n ? m : n;
  size_t prefix = 0, suffix = 0;
  while (prefix < shorter &&
         json_equal(json_array_get(from, prefix), json_array_get(to, prefix)))
    prefix++;
  while (suffix < shorter - prefix &&
         json_equal(json_array_get(from, m - 1 - suffix),
                    json_array_get(to, n - 1 - suffix)))
    suffix++;
  size_t from_mid = m - prefix - suffix, to_mid = n - prefix - suffix;
  array_cursor c = {prefix, m};
  if (from_mid == 0 || to_mid == 0)
    return emit_run(d, from, prefix, from_mid, to, prefix, to_mid, &c);

  /* Both middles non-empty: look for equal elements inside them (a window
   * that dropped its oldest message and gained a new one) within budget. */
  long max_d = MAX_EDITS;
  if ((size_t)max_d > from_mid + to_mid) max_d = (long)(from_mid + to_mid);
  if ((from_mid + to_mid) * (size_t)max_d > MAX_COMPARISONS)
    max_d = (long)(MAX_COMPARISONS / (from_mid + to_mid));
  unsigned char *script = max_d >= 2 ? sb_malloc(from_mid + to_mid) : NULL;
  size_t nscript = 0;
  int rc = SB_ETOOBIG;
  if (script)
    rc = myers(from, to, prefix, (long)from_mid, (long)to_mid, max_d, script,
               &nscript);
  else if (max_d >= 2)
    rc = SB_ENOMEM;
  if (rc == SB_ETOOBIG) {
    rc = emit_run(d, from, prefix, from_mid, to, prefix, to_mid, &c);
  } else if (rc == 0) {
    size_t ia = prefix, ib = prefix, run_a = 0, run_b = 0;
    for (size_t i = 0; i <= nscript && rc == 0; i++) {
      if (i < nscript && script[i] == ED_DEL)
        run_a++;
      else if (i < nscript && script[i] == ED_INS)
        run_b++;
      else { /* an equal element or the end closes the run */
        if (run_a || run_b)
          rc = emit_run(d, from, ia, run_a, to, ib, run_b, &c);
        ia += run_a + 1;
        ib += run_b + 1;
        c.at++;
        run_a = run_b = 0;
      }
    }
  }
  sb_free(script);
  return rc;
}

static int diff_value(differ *d, const json_t *from, const json_t *to) {
  if (json_is_object(from) && json_is_object(to))
    return diff_object(d, from, to);
  if (json_is_array(from) && json_is_array(to)) return diff_array(d, from, to);
  if (json_equal(from, to)) return 0;
  return emit(d, "replace", NULL, to);
}

int sb_ctx_diff(const json_t *from, const json_t *to, json_t **out,
                sb_error *err) {
  *out = NULL;
  if (!from || !to) return sb_error_set(err, SB_EINVAL, "diff: no document");
  differ d = {.ops = json_array(), .path = SB_BUF_INIT};
  if (!d.ops) return sb_error_set(err, SB_ENOMEM, "diff: out of memory");
  int rc = diff_value(&d, from, to);
  sb_buf_free(&d.path);
  if (rc != 0) {
    json_decref(d.ops);
    return sb_error_set(err, rc, "diff: out of memory");
  }
  *out = d.ops;
  return 0;
}

int ctx_diff_edits(const ctx_edits *log, json_t **out) {
  *out = NULL;
  differ d = {.ops = json_array(), .path = SB_BUF_INIT};
  int rc = d.ops ? 0 : SB_ENOMEM;
  for (size_t i = 0; rc == 0 && i < log->len; i++) {
    const ctx_edit *e = &log->items[i];
    const json_t *now = json_object_getn(e->parent, e->key, e->key_len);
    sb_buf_reset(&d.path);
    if ((rc = sb_buf_append_str(&d.path, e->path)) != 0) break;
    if (!e->old)
      rc = now ? emit(&d, "add", NULL, now) : 0;
    else
      rc = now ? diff_value(&d, e->old, now) : emit(&d, "remove", NULL, NULL);
  }
  sb_buf_free(&d.path);
  if (rc != 0) {
    json_decref(d.ops);
    return SB_ENOMEM;
  }
  *out = d.ops;
  return 0;
}
