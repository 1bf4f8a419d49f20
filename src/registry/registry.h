/* registry: the spec's AgentDefinition and AgentRegistry — which agents
 * exist, what they can do, how they are doing, and which one should take
 * the next call.
 *
 * Pure code over jansson: no I/O, no clock, no randomness of its own. Time
 * comes in as `now_ms` (any monotonic millisecond clock, e.g. sb_now_ms())
 * and jitter as a caller-supplied value, so every decision is reproducible
 * in a test. Not thread-safe: one registry belongs to one loop thread.
 *
 * ---- AgentDefinition (JSON, as the spec names the fields) ---------------
 *
 *   { "id": "sales",                    required; 1-64 of [a-z0-9_-], no
 *                                       "__" inside and no trailing "_"
 *                                       (it prefixes tool names:
 *                                       "sales__quote")
 *     "name": "Sales desk",             required, non-empty
 *     "type": "sales",                  required; sales|service|parts|
 *                                       finance|general
 *     "capabilities": ["quote"],        required; non-empty strings, no
 *                                       duplicates
 *     "models": {"primary": "gpt-x",    required, non-empty
 *                "fallback": ["m2"]},   optional, default []
 *     "contextRequirements":            optional, default []; projection
 *        ["conversation.messages[-5:]"] paths (see ctx.h)
 *     "outputFormat": "text",           required; text|json|structured
 *     "maxTokens": 1024,                required; integer > 0
 *     "temperature": 0.2,               required; number in [0, 2]
 *     -- switchboard's own fields --
 *     "transport": {"type": "stdio",    required
 *        "command": "/usr/bin/agent",   required, non-empty
 *        "args": ["--fast"],            optional, default []
 *        "env": {"NAME": "value"},      optional, default {}; names are
 *                                       [A-Za-z_][A-Za-z0-9_]*
 *        "cwd": "/srv/agent"}           optional, default: inherit
 *     or {"type": "http",
 *        "url": "https://host/mcp",     required; http:// or https://
 *        "headers": {"Name": "value"}, optional, default {}; token names,
 *                                       no CR/LF in values
 *        "oauth": {                     optional: the agent takes OAuth
 *                                       access tokens, which switchboard
 *                                       gets with client credentials
 *          "clientId": "sb",            required, non-empty
 *          "clientSecret": "...",       required, non-empty
 *          "scope": "mcp:tools",        optional; default: the agent's
 *                                       WWW-Authenticate scope, else its
 *                                       metadata's scopes_supported
 *          "tokenUrl": "https://..",    optional; default: discovered
 *                                       (RFC 9728 then RFC 8414 / OIDC)
 *          "issuer": "https://..",      optional; the authorization
 *                                       server, when the agent serves no
 *                                       Protected Resource Metadata
 *          "resource": "https://..",    optional; RFC 8707 resource,
 *                                       default the metadata's, else url
 *          "tokenAuthMethod":           optional; client_secret_basic|
 *            "client_secret_basic"}}    client_secret_post; default basic
 *                                       unless the server offers only post
 *                                       (no Authorization header with it)
 *     "limits": {"maxConcurrent": 4,    optional; 1..1024
 *                "timeoutMs": 30000,    optional; 1..86400000
 *                "retries": 2,          optional; 0..10
 *                "cacheTtlMs": 0,       optional; 0..86400000: the ttlMs
 *                                       modern clients get on resources
 *                                       read through us when the agent
 *                                       gives none (0: re-read each time)
 *                "startupTimeoutMs":    optional; 1000..600000, default
 *                   15000},             15000: how long the agent has to
 *                                       answer its handshake once started
 *                                       (an agent fetched by npx on first
 *                                       run, a JVM, may need more)
 *     "idempotentTools": ["lookup"] }   optional, default []; tools safe to
 *                                       retry after they reached the agent
 *
 * Unknown fields are errors (a typo must not silently become a default).
 * Errors name the field path, e.g.
 *   type: must be one of sales, service, parts, finance, general (got
 *     "marketing")
 *   models.fallback[1]: expected a string
 *   contextRequirements[0]: invalid path "conversation.messages[x]": ...
 *   transport.url: expected an http:// or https:// URL
 *   limits.retries: expected an integer between 0 and 10 (got 11)
 *   capabilites: unknown field (known: id, name, type, ...)
 *
 * ---- Runtime state per agent --------------------------------------------
 *
 * health     healthy until a health check says otherwise
 *            (sb_registry_set_health).
 * inflight   calls admitted by sb_registry_call_begin and not yet ended;
 *            at limits.maxConcurrent the agent takes no more calls.
 * latency    EWMA of successful calls' latency:
 *              ewma = alpha * sample + (1 - alpha) * ewma,  alpha = 0.2
 *            (the first sample sets it). Failed calls are not fed in: their
 *            duration is mostly our own deadline, not the agent's speed,
 *            and failures are the breaker's business.
 * breaker    closed --(failures_to_open failures whose times all fall
 *            within window_ms; successes do not reset the count)--> open
 *            --(cooldown_ms elapsed)--> half-open, which admits exactly one
 *            probe call --(probe ok)--> closed / --(probe failed)--> open
 *            for another cooldown. Defaults 5 failures / 30 s / 10 s.
 *            Calls admitted before the breaker opened that end while it is
 *            open or half-open do not move it: only the probe decides.
 *
 * ---- Scoring (getOptimalAgent) ------------------------------------------
 *
 * Candidates are the agents with the capability. Each gets four parts in
 * [0, 1] and a weighted sum:
 *
 *   coverage = covered / required, where `required` is the number of the
 *              agent's contextRequirements and a path is covered when
 *              sb_ctx_project finds it in the context data (i.e. it is not
 *              reported `missing`). 1 when the agent requires nothing or
 *              no context data is given.
 *   health   = 1 healthy and breaker closed; 0.5 healthy and half-open;
 *              0 unhealthy or breaker open.
 *   capacity = 1 - inflight / maxConcurrent (0 at capacity).
 *   latency  = 1 / (1 + ewma_ms / 1000); 1 while no call has completed.
 *
 *   score = 0.40 * coverage + 0.20 * health + 0.25 * capacity
 *         + 0.15 * latency                     (weights: sb_registry_options)
 *
 * Ranking is by score, highest first; scores within 1e-9 of each other tie
 * and are broken by higher coverage, then fewer calls in flight, then
 * registration order — so the same state always gives the same order.
 * Agents whose breaker is open (or half-open with its probe out) or that
 * are at capacity are still ranked, marked unavailable with the reason;
 * sb_registry_optimal returns the best available one.
 *
 * Example: capability "quote", context data with conversation.messages
 * but no business.inventory.
 *   A requires [conversation.messages, business.inventory]; healthy,
 *     closed, 1 of 4 in flight, ewma 250 ms:
 *     0.4*0.5 + 0.2*1 + 0.25*0.75 + 0.15*(1/1.25) = 0.2+0.2+0.1875+0.12
 *     = 0.7075
 *   B requires [conversation.messages]; healthy, closed, 3 of 4 in flight,
 *     no latency yet:
 *     0.4*1 + 0.2*1 + 0.25*0.25 + 0.15*1 = 0.4+0.2+0.0625+0.15 = 0.8125
 *   B wins. With B at 4 of 4 its score is 0.75 and it is unavailable, so
 *   sb_registry_optimal picks A.
 */
#ifndef SB_REGISTRY_H
#define SB_REGISTRY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* ======================================================================
 * AgentDefinition (agent_def.c)
 * ====================================================================== */

typedef enum sb_agent_type {
  SB_AGENT_SALES = 0,
  SB_AGENT_SERVICE,
  SB_AGENT_PARTS,
  SB_AGENT_FINANCE,
  SB_AGENT_GENERAL,
} sb_agent_type;

typedef enum sb_agent_output {
  SB_AGENT_OUTPUT_TEXT = 0,
  SB_AGENT_OUTPUT_JSON,
  SB_AGENT_OUTPUT_STRUCTURED,
} sb_agent_output;

typedef enum sb_agent_transport_type {
  SB_AGENT_TRANSPORT_STDIO = 1,
  SB_AGENT_TRANSPORT_HTTP,
} sb_agent_transport_type;

typedef struct sb_agent_strings {
  char **items;
  size_t len;
} sb_agent_strings;

/* A name/value pair (env variable or HTTP header), in definition order. */
typedef struct sb_agent_pair {
  char *name;
  char *value;
} sb_agent_pair;

typedef struct sb_agent_pairs {
  sb_agent_pair *items;
  size_t len;
} sb_agent_pairs;

/* How switchboard authenticates to the token endpoint (RFC 6749 2.3.1). */
typedef enum sb_agent_oauth_auth {
  SB_AGENT_OAUTH_AUTH_AUTO = 0, /* basic, unless the server names only post */
  SB_AGENT_OAUTH_AUTH_BASIC,    /* client_secret_basic */
  SB_AGENT_OAUTH_AUTH_POST,     /* client_secret_post */
} sb_agent_oauth_auth;

/* An HTTP agent behind OAuth: switchboard gets its access tokens with the
 * client credentials grant (transport.oauth). client_id NULL: none. */
typedef struct sb_agent_oauth {
  char *client_id;
  char *client_secret;
  char *scope;     /* NULL: the agent's challenge, else its metadata's */
  char *token_url; /* NULL: discovered from the authorization server */
  char *issuer;    /* NULL: the agent's Protected Resource Metadata names it */
  char *resource;  /* NULL: the metadata's resource, else the agent's URL */
  sb_agent_oauth_auth auth;
} sb_agent_oauth;

typedef struct sb_agent_transport {
  sb_agent_transport_type type;
  /* stdio */
  char *command;         /* NULL for http */
  sb_agent_strings args; /* argv[1..] */
  sb_agent_pairs env;    /* added to the inherited environment */
  char *cwd;             /* NULL: inherit */
  /* http */
  char *url; /* NULL for stdio */
  sb_agent_pairs headers;
  sb_agent_oauth oauth;
} sb_agent_transport;

typedef struct sb_agent_limits {
  int max_concurrent; /* default 4 */
  int64_t timeout_ms; /* default 30000 */
  int retries;        /* default 2 */
  int64_t cache_ttl_ms; /* default 0 */
  int64_t startup_timeout_ms; /* default 15000 */
} sb_agent_limits;

/* A parsed, validated definition. Fields are public and read-only: build
 * one only with sb_agent_def_parse*. Reference-counted so a caller can keep
 * a definition alive across a call even if the registry replaces it. */
typedef struct sb_agent_def {
  char *id;
  char *name;
  sb_agent_type type;
  sb_agent_strings capabilities;
  char *model_primary;
  sb_agent_strings model_fallback;
  sb_agent_strings context_requirements;
  sb_agent_output output_format;
  int64_t max_tokens;
  double temperature;
  sb_agent_transport transport;
  sb_agent_limits limits;
  sb_agent_strings idempotent_tools;
  /* contextRequirements as a JSON array of strings, ready for
   * sb_ctx_project / sb_ctx_get_projected. Owned by the def: borrow it,
   * never modify it. */
  json_t *requirements_json;
  int refs_; /* private */
} sb_agent_def;

/* Validate `json` (borrowed) and build a definition. *out: new definition
 * (refcount 1) the caller releases with sb_agent_def_free; NULL on failure,
 * with err naming the field. SB_EINVAL invalid, SB_ENOMEM. */
int sb_agent_def_parse(const json_t *json, sb_agent_def **out, sb_error *err);

/* Same from `len` bytes of JSON text; duplicate keys are refused. A syntax
 * error reads `line 3 column 7: ...`. */
int sb_agent_def_parse_text(const char *text, size_t len, sb_agent_def **out,
                            sb_error *err);

/* The definition as JSON with the spec's field names and every default
 * filled in; sb_agent_def_parse of it gives an equal definition. New
 * reference; NULL on ENOMEM. */
json_t *sb_agent_def_to_json(const sb_agent_def *def);

/* A definition as JSON (sb_agent_def_to_json's, or as a config file or a
 * client gave it) made fit to show: each value of transport.headers and
 * transport.env and transport.oauth.clientSecret (the agent's own
 * credentials), the userinfo of
 * transport.url and its query values named like secrets become
 * SB_AGENT_REDACTED; the names stay. In place; 0, or SB_ENOMEM. */
#define SB_AGENT_REDACTED "<redacted>"
int sb_agent_def_json_redact(json_t *def);

/* Take another reference; returns def. */
sb_agent_def *sb_agent_def_ref(sb_agent_def *def);
/* Drop a reference; the last one frees. NULL is fine. */
void sb_agent_def_free(sb_agent_def *def);

/* 1 if def lists the capability / lists tool in idempotentTools. */
int sb_agent_def_has_capability(const sb_agent_def *def, const char *cap);
int sb_agent_def_tool_idempotent(const sb_agent_def *def, const char *tool);

/* "sales", "json", ... Static strings. */
const char *sb_agent_type_name(sb_agent_type type);
/* The type named `name` ("sales", ...): 0, or -1 when it names none. */
int sb_agent_type_parse(const char *name, sb_agent_type *out);
const char *sb_agent_output_name(sb_agent_output format);

/* ======================================================================
 * AgentRegistry (registry.c)
 * ====================================================================== */

typedef struct sb_registry sb_registry;

/* Score weights; need not sum to 1 (a sum of 1 keeps scores in [0, 1]). */
typedef struct sb_registry_weights {
  double coverage, health, capacity, latency;
} sb_registry_weights;

/* Zero (or negative) fields take the default. */
typedef struct sb_registry_options {
  int breaker_failures;         /* failures that open the breaker; 5 */
  uint64_t breaker_window_ms;   /* ...when all fall within this; 30000 */
  uint64_t breaker_cooldown_ms; /* open this long, then half-open; 10000 */
  double ewma_alpha;            /* weight of a new latency sample; 0.2 */
  sb_registry_weights weights;  /* all zero: 0.40/0.20/0.25/0.15 */
  /* Whether agent_id is handed the context's `user` section (data: the
   * context's data, borrowed); NULL: every agent is. Coverage counts only
   * what an agent will be handed, so one kept from `user` is not ranked
   * on paths it would receive as missing. */
  int (*sees_user)(const json_t *data, const char *agent_id);
} sb_registry_options;

/* opts may be NULL for all defaults. NULL on ENOMEM or options out of
 * range (ewma_alpha > 1). Free with sb_registry_free. */
sb_registry *sb_registry_new(const sb_registry_options *opts);
void sb_registry_free(sb_registry *reg);

/* registerAgent. Always takes ownership of def (of the caller's reference;
 * freed on failure). A duplicate id is SB_ECONFLICT unless `replace`; a
 * replaced agent keeps its place in registration order and its calls in
 * flight, while health, breaker and latency start afresh (it may now be a
 * different process or URL). */
int sb_registry_register_take(sb_registry *reg, sb_agent_def *def, int replace,
                              sb_error *err);

/* Remove an agent. SB_ENOENT if unknown. Calls still in flight for it end
 * harmlessly (sb_registry_call_end returns SB_ENOENT). */
int sb_registry_remove(sb_registry *reg, const char *id);

/* Borrowed; valid until the agent is removed or replaced (take a reference
 * with sb_agent_def_ref to keep it longer). NULL if unknown. */
const sb_agent_def *sb_registry_get(const sb_registry *reg, const char *id);

/* Number of agents, and the i-th in registration order (borrowed, NULL
 * past the end). */
size_t sb_registry_count(const sb_registry *reg);
const sb_agent_def *sb_registry_at(const sb_registry *reg, size_t i);

/* findAgentByCapability: up to max agents with the capability into out
 * (borrowed), in registration order. Returns how many have it (which may
 * exceed max, like snprintf). */
size_t sb_registry_find(const sb_registry *reg, const char *capability,
                        const sb_agent_def **out, size_t max);

/* ---- runtime state ---------------------------------------------------- */

typedef enum sb_breaker_state {
  SB_BREAKER_CLOSED = 0,
  SB_BREAKER_OPEN,
  SB_BREAKER_HALF_OPEN,
} sb_breaker_state;

/* Why an agent may not take a call now. */
typedef enum sb_registry_refusal {
  SB_REFUSE_NONE = 0,
  SB_REFUSE_BREAKER_OPEN,    /* open, cooldown not over */
  SB_REFUSE_PROBE_IN_FLIGHT, /* half-open and its one probe is out */
  SB_REFUSE_AT_CAPACITY,     /* inflight == limits.maxConcurrent */
} sb_registry_refusal;

/* "breaker open", ... Static strings ("" for SB_REFUSE_NONE). */
const char *sb_registry_refusal_name(sb_registry_refusal why);
/* "closed", "open", "half-open". */
const char *sb_breaker_state_name(sb_breaker_state state);

typedef struct sb_agent_state {
  int healthy;
  sb_breaker_state breaker;       /* as of now_ms (open turns half-open) */
  uint64_t breaker_open_until_ms; /* when open; 0 otherwise */
  size_t recent_failures;         /* failures within the window (capped at N) */
  size_t inflight;
  int max_concurrent;
  double latency_ewma_ms; /* < 0: no successful call yet */
  uint64_t calls_ok, calls_failed;
} sb_agent_state;

/* Snapshot of an agent's state at now_ms. SB_ENOENT if unknown. */
int sb_registry_state(sb_registry *reg, const char *id, uint64_t now_ms,
                      sb_agent_state *out);

/* The state as JSON: {"healthy","breaker","inflight","maxConcurrent",
 * "latencyMs" (null until known),"recentFailures","callsOk",
 * "callsFailed"}. New reference; NULL if unknown or ENOMEM. */
json_t *sb_registry_state_json(sb_registry *reg, const char *id,
                               uint64_t now_ms);

/* Record a health check's verdict (or a connection made or lost).
 * Healthy after unhealthy, an open breaker turns half-open at once: the
 * next call probes the agent that came back. SB_ENOENT if unknown. */
int sb_registry_set_health(sb_registry *reg, const char *id, int healthy);

/* A ticket for one admitted call: hand it back to sb_registry_call_end. */
typedef struct sb_registry_call {
  uint64_t agent_serial_;  /* private: which registration */
  uint64_t breaker_epoch_; /* private: which breaker period */
  int probe;               /* 1: this is the half-open probe */
} sb_registry_call;

/* May a call go to agent `id` now? 0: yes, counted in flight, *call filled
 * (the caller MUST end it with sb_registry_call_end, whatever happens —
 * every outbound call has a deadline, so it always ends). SB_ESTATE: no,
 * *why (may be NULL) says why. SB_ENOENT: unknown agent. */
int sb_registry_call_begin(sb_registry *reg, const char *id, uint64_t now_ms,
                           sb_registry_call *call, sb_registry_refusal *why);

/* The call ended: ok (1) or failed (0) after latency_ms. Feeds the EWMA
 * (ok only) and the breaker. SB_ENOENT if the agent was removed (or
 * removed and registered again) since the call began. */
int sb_registry_call_end(sb_registry *reg, const char *id,
                         const sb_registry_call *call, int ok,
                         uint64_t latency_ms, uint64_t now_ms);

/* ---- scoring ---------------------------------------------------------- */

typedef struct sb_registry_candidate {
  const sb_agent_def *def;                    /* borrowed, as sb_registry_get */
  size_t order;                               /* registration index */
  double score;                               /* weighted sum */
  double coverage, health, capacity, latency; /* the parts, each in [0,1] */
  size_t covered, required; /* contextRequirements found / listed */
  size_t inflight;
  int available;           /* may take a call now */
  sb_registry_refusal why; /* when !available */
} sb_registry_candidate;

/* Rank the agents with `capability` against `data` (the `data` object of
 * an MCPContext, borrowed; NULL: coverage 1 for all) at now_ms, best first
 * as described at the top of this file. Writes the best min(total, max)
 * into out and returns total (>= 0, may exceed max), or a negative code
 * (SB_ENOMEM; SB_EINVAL if data is not an object). */
int sb_registry_rank(sb_registry *reg, const char *capability,
                     const json_t *data, uint64_t now_ms,
                     sb_registry_candidate *out, size_t max, sb_error *err);

/* getOptimalAgent: the best candidate that may take a call now, into
 * *out. SB_ENOENT: no agent has the capability; SB_ESTATE: all are
 * unavailable (err says why for the best one). Does not begin the call. */
int sb_registry_optimal(sb_registry *reg, const char *capability,
                        const json_t *data, uint64_t now_ms,
                        sb_registry_candidate *out, sb_error *err);

/* The ranking for `switchboard agents explain`, best first:
 *   [{"rank": 1, "id", "score", "available": true|false,
 *     "unavailable": "breaker open" (only when not available),
 *     "parts": {"coverage","health","capacity","latency"},
 *     "weights": {...same keys...},
 *     "coverage": {"covered", "required", "missing": [paths]},
 *     "state": sb_registry_state_json(...)}, ...]
 * New reference in *out; [] when no agent has the capability. */
int sb_registry_explain(sb_registry *reg, const char *capability,
                        const json_t *data, uint64_t now_ms, json_t **out,
                        sb_error *err);

/* ======================================================================
 * Retry backoff (backoff.c)
 * ====================================================================== */

/* Delay before retry `attempt` (0 = the first retry) with exponential
 * growth and full jitter:
 *   ceiling = min(cap_ms, base_ms * 2^attempt)
 *   delay   = floor(random01 * ceiling)
 * random01 is the caller's uniform random value in [0, 1) (clamped), so a
 * test can pin it; full jitter spreads retries of many callers evenly over
 * [0, ceiling) instead of letting them stampede in lockstep. */
uint64_t sb_backoff_delay_ms(unsigned attempt, uint64_t base_ms,
                             uint64_t cap_ms, double random01);

#endif
