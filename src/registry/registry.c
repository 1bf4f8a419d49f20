/* registry.c: the AgentRegistry — definitions in registration order, the
 * runtime state that goes with each (health, calls in flight, latency
 * EWMA, circuit breaker), and the scoring that picks the optimal agent.
 *
 * Agents are kept in a plain array: a deployment has tens of agents, so a
 * linear scan by id costs less than keeping an index in step, and the
 * array order *is* the registration order that findAgentByCapability and
 * the tie-break promise. The breaker moves from open to half-open lazily,
 * whenever a caller looks at it with a `now` past the cooldown, so the
 * registry needs no timers. Formula, weights and breaker rules are
 * documented in registry.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx/ctx.h"
#include "registry/registry.h"

typedef struct agent_entry {
  sb_agent_def *def;
  uint64_t serial; /* distinguishes registrations of the same id */
  int healthy;
  size_t inflight;
  double ewma_ms; /* < 0 until the first successful call */
  uint64_t calls_ok, calls_failed;
  /* breaker */
  sb_breaker_state breaker;
  uint64_t opened_at;
  uint64_t epoch;       /* bumped on every breaker transition */
  int probe_out;        /* half-open: the one probe has been admitted */
  uint64_t *fail_times; /* ring of the last breaker_failures failures */
  size_t fail_head, fail_count;
} agent_entry;

struct sb_registry {
  sb_registry_options opts;
  agent_entry *agents;
  size_t len, cap;
  uint64_t next_serial;
};

/* ---- lifecycle -------------------------------------------------------- */

sb_registry *sb_registry_new(const sb_registry_options *in) {
  sb_registry_options o = in ? *in : (sb_registry_options){0};
  if (o.breaker_failures <= 0) o.breaker_failures = 5;
  if (o.breaker_window_ms == 0) o.breaker_window_ms = 30000;
  if (o.breaker_cooldown_ms == 0) o.breaker_cooldown_ms = 10000;
  if (!(o.ewma_alpha > 0)) o.ewma_alpha = 0.2;
  if (o.ewma_alpha > 1) return NULL;
  sb_registry_weights *w = &o.weights;
  if (w->coverage <= 0 && w->health <= 0 && w->capacity <= 0 && w->latency <= 0)
    *w = (sb_registry_weights){0.40, 0.20, 0.25, 0.15};
  if (w->coverage < 0 || w->health < 0 || w->capacity < 0 || w->latency < 0)
    return NULL;
  sb_registry *reg = sb_calloc(1, sizeof *reg);
  if (!reg) return NULL;
  reg->opts = o;
  reg->next_serial = 1;
  return reg;
}

static void entry_free(agent_entry *e) {
  sb_agent_def_free(e->def);
  sb_free(e->fail_times);
}

void sb_registry_free(sb_registry *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->len; i++)
    entry_free(&reg->agents[i]);
  sb_free(reg->agents);
  sb_free(reg);
}

static agent_entry *find(const sb_registry *reg, const char *id) {
  if (!id) return NULL;
  for (size_t i = 0; i < reg->len; i++)
    if (!strcmp(reg->agents[i].def->id, id)) return &reg->agents[i];
  return NULL;
}

/* Fresh health, breaker and latency; calls in flight are kept. */
static void reset_state(agent_entry *e) {
  e->healthy = 1;
  e->ewma_ms = -1;
  e->calls_ok = e->calls_failed = 0;
  e->breaker = SB_BREAKER_CLOSED;
  e->opened_at = 0;
  e->epoch++;
  e->probe_out = 0;
  e->fail_head = e->fail_count = 0;
}

int sb_registry_register_take(sb_registry *reg, sb_agent_def *def, int replace,
                              sb_error *err) {
  int rc = SB_EINVAL;
  uint64_t *fail_times = NULL;
  if (!reg || !def) {
    rc = sb_error_set(err, SB_EINVAL, "register: no agent definition");
    goto fail;
  }
  fail_times =
      sb_calloc((size_t)reg->opts.breaker_failures, sizeof *fail_times);
  if (!fail_times) {
    rc = sb_error_set(err, SB_ENOMEM, "register: out of memory");
    goto fail;
  }
  agent_entry *e = find(reg, def->id);
  if (e) {
    if (!replace) {
      rc = sb_error_set(err, SB_ECONFLICT, "agent \"%s\" is already registered",
                        def->id);
      goto fail;
    }
    sb_agent_def_free(e->def);
    sb_free(e->fail_times);
    e->def = def;
    e->fail_times = fail_times;
    reset_state(e);
    return 0;
  }
  if (reg->len == reg->cap) {
    size_t cap = reg->cap ? reg->cap * 2 : 8;
    agent_entry *grown = sb_realloc(reg->agents, cap * sizeof *grown);
    if (!grown) {
      rc = sb_error_set(err, SB_ENOMEM, "register: out of memory");
      goto fail;
    }
    reg->agents = grown;
    reg->cap = cap;
  }
  e = &reg->agents[reg->len++];
  memset(e, 0, sizeof *e);
  e->def = def;
  e->serial = reg->next_serial++;
  e->fail_times = fail_times;
  reset_state(e);
  return 0;
fail:
  sb_free(fail_times);
  sb_agent_def_free(def);
  return rc;
}

int sb_registry_remove(sb_registry *reg, const char *id) {
  agent_entry *e = find(reg, id);
  if (!e) return SB_ENOENT;
  entry_free(e);
  size_t i = (size_t)(e - reg->agents);
  memmove(e, e + 1, (reg->len - i - 1) * sizeof *e);
  reg->len--;
  return 0;
}

const sb_agent_def *sb_registry_get(const sb_registry *reg, const char *id) {
  agent_entry *e = find(reg, id);
  return e ? e->def : NULL;
}

size_t sb_registry_count(const sb_registry *reg) { return reg->len; }

const sb_agent_def *sb_registry_at(const sb_registry *reg, size_t i) {
  return i < reg->len ? reg->agents[i].def : NULL;
}

size_t sb_registry_find(const sb_registry *reg, const char *capability,
                        const sb_agent_def **out, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < reg->len; i++) {
    if (!sb_agent_def_has_capability(reg->agents[i].def, capability)) continue;
    if (n < max) out[n] = reg->agents[i].def;
    n++;
  }
  return n;
}

/* ---- breaker ---------------------------------------------------------- */

const char *sb_breaker_state_name(sb_breaker_state state) {
  switch (state) {
  case SB_BREAKER_CLOSED: return "closed";
  case SB_BREAKER_OPEN: return "open";
  case SB_BREAKER_HALF_OPEN: return "half-open";
  }
  return "?";
}

const char *sb_registry_refusal_name(sb_registry_refusal why) {
  switch (why) {
  case SB_REFUSE_NONE: return "";
  case SB_REFUSE_BREAKER_OPEN: return "breaker open";
  case SB_REFUSE_PROBE_IN_FLIGHT: return "breaker half-open, probe in flight";
  case SB_REFUSE_AT_CAPACITY: return "at capacity";
  }
  return "?";
}

static void breaker_set(agent_entry *e, sb_breaker_state state, uint64_t now) {
  e->breaker = state;
  e->epoch++;
  e->probe_out = 0;
  if (state == SB_BREAKER_OPEN) e->opened_at = now;
  if (state == SB_BREAKER_CLOSED) e->fail_head = e->fail_count = 0;
}

/* The breaker as of now: an open breaker whose cooldown is over is
 * half-open. */
static sb_breaker_state breaker_at(const sb_registry *reg, agent_entry *e,
                                   uint64_t now) {
  if (e->breaker == SB_BREAKER_OPEN &&
      now >= e->opened_at + reg->opts.breaker_cooldown_ms)
    breaker_set(e, SB_BREAKER_HALF_OPEN, now);
  return e->breaker;
}

static size_t recent_failures(const sb_registry *reg, const agent_entry *e,
                              uint64_t now) {
  size_t n = 0;
  for (size_t i = 0; i < e->fail_count; i++) {
    uint64_t t = e->fail_times[i];
    if (t <= now && now - t < reg->opts.breaker_window_ms) n++;
  }
  return n;
}

/* A failure while closed: open once the last N all fall in the window. */
static void record_failure(const sb_registry *reg, agent_entry *e,
                           uint64_t now) {
  size_t n = (size_t)reg->opts.breaker_failures;
  e->fail_times[e->fail_head] = now;
  e->fail_head = (e->fail_head + 1) % n;
  if (e->fail_count < n) e->fail_count++;
  if (e->fail_count < n) return;
  uint64_t oldest = e->fail_times[e->fail_head]; /* next to overwrite */
  if (oldest <= now && now - oldest < reg->opts.breaker_window_ms)
    breaker_set(e, SB_BREAKER_OPEN, now);
}

static sb_registry_refusal refusal_at(const sb_registry *reg, agent_entry *e,
                                      uint64_t now) {
  sb_breaker_state b = breaker_at(reg, e, now);
  if (b == SB_BREAKER_OPEN) return SB_REFUSE_BREAKER_OPEN;
  if (b == SB_BREAKER_HALF_OPEN && e->probe_out)
    return SB_REFUSE_PROBE_IN_FLIGHT;
  if (e->inflight >= (size_t)e->def->limits.max_concurrent)
    return SB_REFUSE_AT_CAPACITY;
  return SB_REFUSE_NONE;
}

/* ---- runtime state ---------------------------------------------------- */

int sb_registry_set_health(sb_registry *reg, const char *id, int healthy) {
  agent_entry *e = find(reg, id);
  if (!e) return SB_ENOENT;
  int was = e->healthy;
  e->healthy = healthy != 0;
  /* Back after being down (connected again, its health check answered):
   * an open breaker lets a probe through now rather than at the end of
   * its cooldown, so an agent's restart does not keep its calls refused
   * for the whole cooldown after it is back. A probe that fails opens it
   * for another cooldown, as always. */
  if (!was && e->healthy && e->breaker == SB_BREAKER_OPEN)
    breaker_set(e, SB_BREAKER_HALF_OPEN, 0);
  return 0;
}

int sb_registry_state(sb_registry *reg, const char *id, uint64_t now_ms,
                      sb_agent_state *out) {
  agent_entry *e = find(reg, id);
  if (!e) return SB_ENOENT;
  memset(out, 0, sizeof *out);
  out->healthy = e->healthy;
  out->breaker = breaker_at(reg, e, now_ms);
  if (out->breaker == SB_BREAKER_OPEN)
    out->breaker_open_until_ms = e->opened_at + reg->opts.breaker_cooldown_ms;
  out->recent_failures =
      out->breaker == SB_BREAKER_CLOSED ? recent_failures(reg, e, now_ms) : 0;
  out->inflight = e->inflight;
  out->max_concurrent = e->def->limits.max_concurrent;
  out->latency_ewma_ms = e->ewma_ms;
  out->calls_ok = e->calls_ok;
  out->calls_failed = e->calls_failed;
  return 0;
}

json_t *sb_registry_state_json(sb_registry *reg, const char *id,
                               uint64_t now_ms) {
  sb_agent_state s;
  if (sb_registry_state(reg, id, now_ms, &s) != 0) return NULL;
  json_t *o = json_pack(
      "{s:b, s:s, s:I, s:i, s:o, s:I, s:I, s:I}", "healthy", s.healthy,
      "breaker", sb_breaker_state_name(s.breaker), "inflight",
      (json_int_t)s.inflight, "maxConcurrent", s.max_concurrent, "latencyMs",
      s.latency_ewma_ms < 0 ? json_null() : json_real(s.latency_ewma_ms),
      "recentFailures", (json_int_t)s.recent_failures, "callsOk",
      (json_int_t)s.calls_ok, "callsFailed", (json_int_t)s.calls_failed);
  if (o && s.breaker == SB_BREAKER_OPEN &&
      json_object_set_new(
          o, "retryInMs",
          json_integer((json_int_t)(s.breaker_open_until_ms - now_ms))) != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

int sb_registry_call_begin(sb_registry *reg, const char *id, uint64_t now_ms,
                           sb_registry_call *call, sb_registry_refusal *why) {
  if (why) *why = SB_REFUSE_NONE;
  agent_entry *e = find(reg, id);
  if (!e) return SB_ENOENT;
  sb_registry_refusal r = refusal_at(reg, e, now_ms);
  if (r != SB_REFUSE_NONE) {
    if (why) *why = r;
    return SB_ESTATE;
  }
  call->agent_serial_ = e->serial;
  call->breaker_epoch_ = e->epoch;
  call->probe = e->breaker == SB_BREAKER_HALF_OPEN;
  if (call->probe) e->probe_out = 1;
  e->inflight++;
  return 0;
}

int sb_registry_call_end(sb_registry *reg, const char *id,
                         const sb_registry_call *call, int ok,
                         uint64_t latency_ms, uint64_t now_ms) {
  agent_entry *e = find(reg, id);
  if (!e || e->serial != call->agent_serial_) return SB_ENOENT;
  if (e->inflight > 0) e->inflight--;
  if (ok) {
    e->calls_ok++;
    double sample = (double)latency_ms;
    e->ewma_ms = e->ewma_ms < 0 ? sample
                                : reg->opts.ewma_alpha * sample +
                                      (1 - reg->opts.ewma_alpha) * e->ewma_ms;
  } else {
    e->calls_failed++;
  }
  /* Only a call admitted in the current breaker period may move it: a slow
   * call from before the breaker opened says nothing about recovery. */
  sb_breaker_state b = breaker_at(reg, e, now_ms);
  if (call->breaker_epoch_ != e->epoch) return 0;
  if (b == SB_BREAKER_HALF_OPEN && call->probe)
    breaker_set(e, ok ? SB_BREAKER_CLOSED : SB_BREAKER_OPEN, now_ms);
  else if (b == SB_BREAKER_CLOSED && !ok)
    record_failure(reg, e, now_ms);
  return 0;
}

/* ---- scoring ---------------------------------------------------------- */

/* Scores equal to 1e-9 tie: quantising keeps the comparison transitive,
 * which qsort needs. */
static long long score_key(double score) { return llround(score * 1e9); }

static int candidate_cmp(const void *pa, const void *pb) {
  const sb_registry_candidate *a = pa, *b = pb;
  long long ka = score_key(a->score), kb = score_key(b->score);
  if (ka != kb) return ka > kb ? -1 : 1;
  long long ca = score_key(a->coverage), cb = score_key(b->coverage);
  if (ca != cb) return ca > cb ? -1 : 1;
  if (a->inflight != b->inflight) return a->inflight < b->inflight ? -1 : 1;
  return a->order < b->order ? -1 : a->order > b->order;
}

/* Coverage of e's requirements by data; *missing (optional) gets the new
 * array of paths not found. */
static int coverage_of(const sb_registry *reg, const agent_entry *e,
                       const json_t *data, size_t *covered, json_t **missing,
                       sb_error *err) {
  const sb_agent_def *d = e->def;
  size_t required = d->context_requirements.len;
  if (missing) *missing = NULL;
  *covered = required;
  if (!data || required == 0) {
    if (missing && !(*missing = json_array()))
      return sb_error_set(err, SB_ENOMEM, "rank: out of memory");
    return 0;
  }
  json_t *proj = NULL, *miss = NULL;
  json_t *withheld = NULL; /* data without the user section */
  if (reg->opts.sees_user && json_object_get(data, "user") &&
      !reg->opts.sees_user(data, d->id)) {
    if (!(withheld = json_copy((json_t *)data)))
      return sb_error_set(err, SB_ENOMEM, "rank: out of memory");
    json_object_del(withheld, "user");
    data = withheld;
  }
  int rc = sb_ctx_project(data, d->requirements_json, &proj, &miss, err);
  json_decref(withheld);
  json_decref(proj);
  if (rc != 0) return rc;
  size_t n = json_array_size(miss);
  *covered = n < required ? required - n : 0;
  if (missing)
    *missing = miss;
  else
    json_decref(miss);
  return 0;
}

static int score_entry(const sb_registry *reg, agent_entry *e, size_t order,
                       const json_t *data, uint64_t now,
                       sb_registry_candidate *c, sb_error *err) {
  const sb_registry_weights *w = &reg->opts.weights;
  memset(c, 0, sizeof *c);
  c->def = e->def;
  c->order = order;
  c->required = e->def->context_requirements.len;
  int rc = coverage_of(reg, e, data, &c->covered, NULL, err);
  if (rc != 0) return rc;
  c->coverage = c->required ? (double)c->covered / (double)c->required : 1.0;
  c->why = refusal_at(reg, e, now);
  c->available = c->why == SB_REFUSE_NONE;
  if (!e->healthy || e->breaker == SB_BREAKER_OPEN)
    c->health = 0;
  else
    c->health = e->breaker == SB_BREAKER_HALF_OPEN ? 0.5 : 1;
  c->inflight = e->inflight;
  double max = (double)e->def->limits.max_concurrent;
  c->capacity = 1.0 - (double)e->inflight / max;
  if (c->capacity < 0) c->capacity = 0;
  c->latency = e->ewma_ms < 0 ? 1.0 : 1.0 / (1.0 + e->ewma_ms / 1000.0);
  c->score = w->coverage * c->coverage + w->health * c->health +
             w->capacity * c->capacity + w->latency * c->latency;
  return 0;
}

/* All candidates, sorted; *out is sb_malloc'd (caller frees), *n its
 * length (0 with *out NULL when none). */
static int rank_all(sb_registry *reg, const char *capability,
                    const json_t *data, uint64_t now,
                    sb_registry_candidate **out, size_t *n, sb_error *err) {
  *out = NULL;
  *n = 0;
  if (data && !json_is_object(data))
    return sb_error_set(err, SB_EINVAL, "context data: expected an object");
  size_t total = sb_registry_find(reg, capability, NULL, 0);
  if (total == 0) return 0;
  sb_registry_candidate *c = sb_calloc(total, sizeof *c);
  if (!c) return sb_error_set(err, SB_ENOMEM, "rank: out of memory");
  size_t k = 0;
  for (size_t i = 0; i < reg->len; i++) {
    agent_entry *e = &reg->agents[i];
    if (!sb_agent_def_has_capability(e->def, capability)) continue;
    int rc = score_entry(reg, e, i, data, now, &c[k++], err);
    if (rc != 0) {
      sb_free(c);
      return rc;
    }
  }
  qsort(c, total, sizeof *c, candidate_cmp);
  *out = c;
  *n = total;
  return 0;
}

int sb_registry_rank(sb_registry *reg, const char *capability,
                     const json_t *data, uint64_t now_ms,
                     sb_registry_candidate *out, size_t max, sb_error *err) {
  sb_registry_candidate *all;
  size_t n;
  int rc = rank_all(reg, capability, data, now_ms, &all, &n, err);
  if (rc != 0) return rc;
  if (out && n && max) memcpy(out, all, (n < max ? n : max) * sizeof *out);
  sb_free(all);
  return (int)n;
}

int sb_registry_optimal(sb_registry *reg, const char *capability,
                        const json_t *data, uint64_t now_ms,
                        sb_registry_candidate *out, sb_error *err) {
  sb_registry_candidate *all;
  size_t n;
  int rc = rank_all(reg, capability, data, now_ms, &all, &n, err);
  if (rc != 0) return rc;
  if (n == 0)
    return sb_error_set(err, SB_ENOENT, "no agent has capability \"%.100s\"",
                        capability ? capability : "");
  for (size_t i = 0; i < n; i++)
    if (all[i].available) {
      *out = all[i];
      sb_free(all);
      return 0;
    }
  /* Name every candidate and its reason: that is what an operator needs to
   * see in the error. */
  sb_buf why = SB_BUF_INIT;
  for (size_t i = 0; i < n && why.len < 300; i++)
    sb_buf_printf(&why, "%s%s (%s)", i ? ", " : "", all[i].def->id,
                  sb_registry_refusal_name(all[i].why));
  rc = sb_error_set(err, SB_ESTATE,
                    "no agent with capability \"%.100s\" can take a call: %s",
                    capability, why.data ? why.data : "");
  sb_buf_free(&why);
  sb_free(all);
  return rc;
}

static json_t *parts_json(double coverage, double health, double capacity,
                          double latency) {
  return json_pack("{s:f, s:f, s:f, s:f}", "coverage", coverage, "health",
                   health, "capacity", capacity, "latency", latency);
}

int sb_registry_explain(sb_registry *reg, const char *capability,
                        const json_t *data, uint64_t now_ms, json_t **out,
                        sb_error *err) {
  sb_registry_candidate *all;
  size_t n;
  *out = NULL;
  int rc = rank_all(reg, capability, data, now_ms, &all, &n, err);
  if (rc != 0) return rc;
  const sb_registry_weights *w = &reg->opts.weights;
  json_t *arr = json_array();
  if (!arr) goto oom;
  for (size_t i = 0; i < n; i++) {
    const sb_registry_candidate *c = &all[i];
    agent_entry *e = &reg->agents[c->order];
    json_t *missing = NULL;
    size_t covered;
    rc = coverage_of(reg, e, data, &covered, &missing, err);
    if (rc != 0) goto fail;
    json_t *item = json_pack(
        "{s:I, s:s, s:f, s:b, s:o, s:o, s:{s:I, s:I, s:o}, s:o}", "rank",
        (json_int_t)(i + 1), "id", c->def->id, "score", c->score, "available",
        c->available, "parts",
        parts_json(c->coverage, c->health, c->capacity, c->latency), "weights",
        parts_json(w->coverage, w->health, w->capacity, w->latency), "coverage",
        "covered", (json_int_t)c->covered, "required", (json_int_t)c->required,
        "missing", missing, "state",
        sb_registry_state_json(reg, c->def->id, now_ms));
    if (!item || json_array_append_new(arr, item) != 0) goto oom;
    if (!c->available &&
        json_object_set_new(item, "unavailable",
                            json_string(sb_registry_refusal_name(c->why))) != 0)
      goto oom;
  }
  sb_free(all);
  *out = arr;
  return 0;
oom:
  rc = sb_error_set(err, SB_ENOMEM, "explain: out of memory");
fail:
  json_decref(arr);
  sb_free(all);
  return rc;
}
