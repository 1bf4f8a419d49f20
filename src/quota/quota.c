/* quota.c: token buckets and in-flight counts per tenant.
 *
 * A bucket holds milli-tokens in an integer, so refilling is exact
 * integer arithmetic: `rate_per_s` tokens a second is `rate_per_s`
 * milli-tokens a millisecond. Tenants are found in a chained hash table
 * that doubles when it holds more entries than buckets.
 */
#include "quota/quota.h"

#include <string.h>

#define MILLI 1000

typedef struct tenant_state {
  char *tenant;
  sb_quota_limits limits;
  int64_t tokens_milli; /* -1: not yet filled (full on first use) */
  uint64_t refilled_ms;
  int in_flight;
  struct tenant_state *next;
} tenant_state;

struct sb_quota {
  sb_quota_limits global;
  sb_quota_override *overrides; /* tenant strings owned */
  size_t overrides_len;
  tenant_state **buckets;
  size_t nbuckets, count;
};

static uint64_t hash_of(const char *s) {
  return sb_hash_str(SB_HASH_SEED, s);
}

static sb_quota_limits merged(const sb_quota *q, const char *tenant) {
  sb_quota_limits l = q->global;
  for (size_t i = 0; i < q->overrides_len; i++) {
    const sb_quota_override *o = &q->overrides[i];
    if (strcmp(o->tenant, tenant) != 0) continue;
    if (o->limits.rate_per_s >= 0) l.rate_per_s = o->limits.rate_per_s;
    if (o->limits.burst >= 0) l.burst = o->limits.burst;
    if (o->limits.max_concurrent >= 0)
      l.max_concurrent = o->limits.max_concurrent;
    break;
  }
  if (l.rate_per_s > 0 && l.burst <= 0) l.burst = l.rate_per_s;
  return l;
}

sb_quota *sb_quota_new(const sb_quota_options *o, sb_error *err) {
  sb_quota *q = sb_calloc(1, sizeof *q);
  if (!q) goto nomem;
  q->global = o->global;
  q->nbuckets = 16;
  if (!(q->buckets = sb_calloc(q->nbuckets, sizeof *q->buckets))) goto nomem;
  if (o->overrides_len) {
    q->overrides = sb_calloc(o->overrides_len, sizeof *q->overrides);
    if (!q->overrides) goto nomem;
    for (size_t i = 0; i < o->overrides_len; i++) {
      q->overrides[i] = o->overrides[i];
      q->overrides_len = i + 1;
      if (!(q->overrides[i].tenant = sb_strdup(o->overrides[i].tenant)))
        goto nomem;
    }
  }
  return q;
nomem:
  sb_quota_free(q);
  sb_error_set(err, SB_ENOMEM, "out of memory");
  return NULL;
}

/* A copy of overrides (tenant strings owned), or NULL (n 0, or ENOMEM:
 * *ok 0). */
static sb_quota_override *copy_overrides(const sb_quota_override *from,
                                         size_t n, int *ok) {
  *ok = 1;
  if (!n) return NULL;
  sb_quota_override *v = sb_calloc(n, sizeof *v);
  for (size_t i = 0; v && i < n; i++) {
    v[i] = from[i];
    if (!(v[i].tenant = sb_strdup(from[i].tenant))) {
      for (size_t j = 0; j < i; j++)
        sb_free((char *)v[j].tenant);
      sb_free(v);
      v = NULL;
    }
  }
  *ok = v != NULL;
  return v;
}

int sb_quota_reconfigure(sb_quota *q, const sb_quota_options *o,
                         sb_error *err) {
  int ok;
  sb_quota_override *ov = copy_overrides(o->overrides, o->overrides_len, &ok);
  if (!ok) return sb_error_set(err, SB_ENOMEM, "out of memory");
  for (size_t i = 0; i < q->overrides_len; i++)
    sb_free((char *)q->overrides[i].tenant);
  sb_free(q->overrides);
  q->overrides = ov;
  q->overrides_len = o->overrides_len;
  q->global = o->global;
  for (size_t i = 0; i < q->nbuckets; i++)
    for (tenant_state *t = q->buckets[i]; t; t = t->next) {
      t->limits = merged(q, t->tenant);
      int64_t cap = (int64_t)t->limits.burst * MILLI;
      if (t->tokens_milli > cap) t->tokens_milli = cap;
    }
  return 0;
}

void sb_quota_free(sb_quota *q) {
  if (!q) return;
  for (size_t i = 0; q->buckets && i < q->nbuckets; i++)
    for (tenant_state *t = q->buckets[i], *next; t; t = next) {
      next = t->next;
      sb_free(t->tenant);
      sb_free(t);
    }
  sb_free(q->buckets);
  for (size_t i = 0; i < q->overrides_len; i++)
    sb_free((char *)q->overrides[i].tenant);
  sb_free(q->overrides);
  sb_free(q);
}

static tenant_state *find(const sb_quota *q, const char *tenant) {
  for (tenant_state *t = q->buckets[hash_of(tenant) % q->nbuckets]; t;
       t = t->next)
    if (strcmp(t->tenant, tenant) == 0) return t;
  return NULL;
}

static void grow(sb_quota *q) {
  size_t n = q->nbuckets * 2;
  tenant_state **b = sb_calloc(n, sizeof *b);
  if (!b) return; /* longer chains, still correct */
  for (size_t i = 0; i < q->nbuckets; i++)
    for (tenant_state *t = q->buckets[i], *next; t; t = next) {
      next = t->next;
      size_t at = hash_of(t->tenant) % n;
      t->next = b[at];
      b[at] = t;
    }
  sb_free(q->buckets);
  q->buckets = b;
  q->nbuckets = n;
}

static tenant_state *find_or_add(sb_quota *q, const char *tenant) {
  tenant_state *t = find(q, tenant);
  if (t) return t;
  if (!(t = sb_calloc(1, sizeof *t))) return NULL;
  if (!(t->tenant = sb_strdup(tenant))) {
    sb_free(t);
    return NULL;
  }
  t->limits = merged(q, tenant);
  t->tokens_milli = -1;
  if (q->count >= q->nbuckets) grow(q);
  size_t at = hash_of(tenant) % q->nbuckets;
  t->next = q->buckets[at];
  q->buckets[at] = t;
  q->count++;
  return t;
}

static void refill(tenant_state *t, uint64_t now_ms) {
  int64_t cap = (int64_t)t->limits.burst * MILLI;
  if (t->tokens_milli < 0) {
    t->tokens_milli = cap;
  } else if (now_ms > t->refilled_ms) {
    uint64_t gained =
        (now_ms - t->refilled_ms) * (uint64_t)t->limits.rate_per_s;
    if (gained >= (uint64_t)cap || t->tokens_milli + (int64_t)gained > cap)
      t->tokens_milli = cap;
    else
      t->tokens_milli += (int64_t)gained;
  }
  if (now_ms > t->refilled_ms || t->refilled_ms == 0) t->refilled_ms = now_ms;
}

sb_quota_outcome sb_quota_admit(sb_quota *q, const char *tenant,
                                uint64_t now_ms, int hold,
                                sb_quota_verdict *v) {
  sb_quota_verdict local;
  if (!v) v = &local;
  memset(v, 0, sizeof *v);
  if (!q || !tenant) return SB_QUOTA_ADMITTED;
  tenant_state *t = find_or_add(q, tenant);
  if (!t) return SB_QUOTA_ADMITTED;
  if (hold && t->limits.max_concurrent > 0 &&
      t->in_flight >= t->limits.max_concurrent) {
    v->outcome = SB_QUOTA_CONCURRENCY;
    v->limit = t->limits.max_concurrent;
    return v->outcome;
  }
  if (t->limits.rate_per_s > 0) {
    refill(t, now_ms);
    if (t->tokens_milli < MILLI) {
      uint64_t missing = (uint64_t)(MILLI - t->tokens_milli);
      uint64_t rate = (uint64_t)t->limits.rate_per_s;
      v->outcome = SB_QUOTA_RATE;
      v->limit = t->limits.rate_per_s;
      v->retry_after_ms = (missing + rate - 1) / rate;
      return v->outcome;
    }
    t->tokens_milli -= MILLI;
  }
  if (hold) t->in_flight++;
  return SB_QUOTA_ADMITTED;
}

sb_quota_outcome sb_quota_hold(sb_quota *q, const char *tenant,
                               sb_quota_verdict *v) {
  sb_quota_verdict local;
  if (!v) v = &local;
  memset(v, 0, sizeof *v);
  tenant_state *t = q && tenant ? find_or_add(q, tenant) : NULL;
  if (!t) return SB_QUOTA_ADMITTED;
  if (t->limits.max_concurrent > 0 &&
      t->in_flight >= t->limits.max_concurrent) {
    v->outcome = SB_QUOTA_CONCURRENCY;
    v->limit = t->limits.max_concurrent;
    return v->outcome;
  }
  t->in_flight++;
  return SB_QUOTA_ADMITTED;
}

void sb_quota_release(sb_quota *q, const char *tenant) {
  tenant_state *t = q && tenant ? find(q, tenant) : NULL;
  if (t && t->in_flight > 0) t->in_flight--;
}

int sb_quota_in_flight(const sb_quota *q, const char *tenant) {
  const tenant_state *t = q && tenant ? find(q, tenant) : NULL;
  return t ? t->in_flight : 0;
}

sb_quota_limits sb_quota_limits_of(const sb_quota *q, const char *tenant) {
  return merged(q, tenant);
}

const char *sb_quota_limit_name(sb_quota_outcome o) {
  switch (o) {
  case SB_QUOTA_RATE: return "quotas.requests_per_second";
  case SB_QUOTA_CONCURRENCY: return "quotas.max_concurrent_calls";
  default: return NULL;
  }
}
