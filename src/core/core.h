/* core: the pieces every other module stands on.
 *
 * One allocator wrapper (so tests can inject failures and benchmarks can
 * count bytes), logging to stderr, monotonic and wall clocks, a growable
 * byte buffer, error values with a message fit for a user, and random ids
 * from libsodium's CSPRNG.
 *
 * Conventions used across switchboard: functions return 0 or a negative
 * SB_E* code, or a pointer that is NULL on failure, and fill an optional
 * sb_error. Library code never prints and never exits.
 */
#ifndef SB_CORE_H
#define SB_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- error codes ------------------------------------------------------ */
enum {
  SB_OK = 0,
  SB_ENOMEM = -1,    /* allocation failed */
  SB_EINVAL = -2,    /* bad argument or malformed input */
  SB_ENOENT = -3,    /* no such thing (or not visible to this caller) */
  SB_EIO = -4,       /* I/O or system call failure */
  SB_ETOOBIG = -5,   /* input larger than a configured limit */
  SB_ECONFLICT = -6, /* stale version, duplicate id */
  SB_ETIMEDOUT = -7, /* a deadline passed */
  SB_ECANCELED = -8, /* cancelled by the caller */
  SB_EPROTO = -9,    /* the peer broke the protocol */
  SB_ESTATE = -10,   /* operation not valid in the current state */
  SB_EBUSY = -11,    /* a queue is full: retry later (back-pressure) */
  SB_EPERM = -12,    /* the caller lacks a permission (a scope) */
};

/* Short name of an SB_E* code, e.g. "ENOMEM". Static string. */
const char *sb_strerror(int code);

/* An error message fit for a user. Stack-allocated by the caller. */
typedef struct sb_error {
  int code;
  char msg[512];
  /* SB_EPERM: the permission (a scope) the caller lacks, which the
   * surfaces name in their refusal (403 challenge, -31003); empty
   * otherwise. A C value, never read back out of msg. */
  char scope[160];
} sb_error;

/* Fill err (if not NULL) and return code, so callers can write
 * `return sb_error_set(err, SB_EINVAL, "bad %s", what);`. Clears scope. */
int sb_error_set(sb_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A refusal: code SB_EPERM, scope the missing permission, msg as
 * sb_error_set's. Returns SB_EPERM. */
int sb_error_refuse(sb_error *err, const char *scope, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- allocation ------------------------------------------------------- */
void *sb_malloc(size_t n);
void *sb_calloc(size_t count, size_t n);
void *sb_realloc(void *p, size_t n);
void sb_free(void *p);
/* A libuv close callback for a handle allocated on its own with
 * sb_malloc: uv_close(h, sb_free_handle) frees it once closed. */
struct uv_handle_s;
void sb_free_handle(struct uv_handle_s *h);
char *sb_strdup(const char *s); /* caller frees with sb_free */
/* Free a NULL-terminated array of strings and the array (v may be NULL). */
void sb_strv_free(char **v);
char *sb_strndup(const char *s, size_t n); /* caller frees with sb_free */
/* Copy s into dst (cap > 0 bytes), cut short to fit and always ended with
 * a zero: snprintf(dst, cap, "%s", s) without the format's cost, for hot
 * paths. */
void sb_strcopy(char *dst, size_t cap, const char *s);
char *sb_asprintf(const char *fmt, ...)    /* caller frees with sb_free */
    __attribute__((format(printf, 1, 2)));

/* FNV-1a of s and its terminating zero, continuing from h (SB_HASH_SEED
 * to start): for in-memory hash tables. Hashing two strings one after
 * the other keeps them apart ("ab","c" and "a","bc" differ). */
#define SB_HASH_SEED 14695981039346656037u
uint64_t sb_hash_str(uint64_t h, const char *s);

/* Test hook: make the n-th allocation from now fail (0 disables). */
void sb_alloc_fail_after(long n);
/* Bytes currently allocated through the wrapper (approximate, for benches). */
size_t sb_alloc_live_bytes(void);

/* Route jansson's allocations through sb_malloc/sb_free. Call once. */
void sb_core_init(void);

/* ---- logging ---------------------------------------------------------- */
typedef enum sb_log_level {
  SB_LOG_DEBUG = 0,
  SB_LOG_INFO,
  SB_LOG_NOTICE,
  SB_LOG_WARNING,
  SB_LOG_ERROR,
} sb_log_level;

void sb_log_set_level(sb_log_level level);
sb_log_level sb_log_get_level(void);
/* Parse "debug"|"info"|"notice"|"warning"|"error"; -1 if unknown. */
int sb_log_level_parse(const char *name);
void sb_log(sb_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* From sb_log_start until sb_log_stop, a log line never blocks the thread
 * that logs it: when whoever reads stderr (a pipe, a terminal, a socket)
 * lags, lines wait in a bounded buffer a thread of the log's own drains;
 * past it they are dropped and counted in a later line. sb_log_stop
 * writes what waits (for 2 s at most). Without sb_log_start (the
 * command-line tools), lines are blocking writes. Returns 0 or SB_ENOMEM
 * (no thread: lines stay blocking writes). */
int sb_log_start(void);
void sb_log_stop(void);

/* How a log line is written on stderr: text, "2026-12-03T10:00:00.000Z
 * info    http: message" (the default), or one JSON object a line,
 * {"time","level","module","msg"}, for log shippers. */
typedef enum sb_log_format { SB_LOG_TEXT = 0, SB_LOG_JSON } sb_log_format;
void sb_log_set_format(sb_log_format format);
/* Parse "text"|"json"; -1 if unknown. */
int sb_log_format_parse(const char *name);
/* `in` as the inside of a JSON string (quotes, backslashes and control
 * characters escaped, each byte that is not UTF-8 as U+FFFD) into out
 * (cap bytes, always NUL-terminated, cut at a character if longer);
 * returns the length written. */
size_t sb_json_escape(const char *in, char *out, size_t cap);

/* `in` (len bytes) as text safe for a terminal or a one-line log entry:
 * each control character (below 0x20, and DEL) as \xHH, except as flags
 * keep them; into out (cap bytes, always NUL-terminated, cut before an
 * escape that would not fit whole); returns the length written. */
enum {
  SB_ESC_KEEP_TAB = 1 << 0,     /* a tab stays a tab */
  SB_ESC_KEEP_NEWLINE = 1 << 1, /* a newline stays a newline */
  SB_ESC_NAMED_CRLF = 1 << 2,   /* newline and CR as \n and \r */
  SB_ESC_QUOTE = 1 << 3,        /* " and \ as \" and \\ */
};
size_t sb_escape_controls(const char *in, size_t len, char *out, size_t cap,
                          unsigned flags);

/* Every line is redacted before it is written (core/redact.c): bearer
 * tokens, API keys (their id kept), Authorization/Cookie header values,
 * JSON string members and name=value pairs whose name says password,
 * token, secret, api_key..., and the literal secrets added here (a
 * configured token, the LLM API key: 8 characters or more; copied, kept
 * until sb_log_clear_secrets). */
int sb_log_add_secret(const char *secret);
void sb_log_clear_secrets(void);
/* The redaction pass alone: `in` rewritten into out (cap bytes, always
 * NUL-terminated, cut if longer); returns the length written. */
size_t sb_log_redact(const char *in, char *out, size_t cap);
/* url as it may be shown: its userinfo (user:password@) and the values of
 * query parameters named like secrets (token=, api_key=, key=, sig=,
 * ...Signature=, Credential=...) and its fragment replaced by
 * mask. A new string (sb_free), or NULL when out of memory. */
char *sb_url_redacted(const char *url, const char *mask);

#define SB_DEBUG(mod, ...) sb_log(SB_LOG_DEBUG, mod, __VA_ARGS__)
#define SB_INFO(mod, ...) sb_log(SB_LOG_INFO, mod, __VA_ARGS__)
#define SB_WARN(mod, ...) sb_log(SB_LOG_WARNING, mod, __VA_ARGS__)
#define SB_ERROR(mod, ...) sb_log(SB_LOG_ERROR, mod, __VA_ARGS__)

/* ---- time ------------------------------------------------------------- */
uint64_t sb_now_ms(void);  /* monotonic milliseconds */
uint64_t sb_wall_ms(void); /* milliseconds since the Unix epoch */

/* Lower the calling thread's CPU priority (once per thread; Linux: nice
 * 10 for this thread alone): the store's threads and thread-pool work
 * yield to the event loop, so a burst of writes slows writes before it
 * slows every connection. No-op where threads cannot be reniced. */
void sb_thread_background(void);

/* RFC 3339 UTC timestamp with milliseconds, e.g. 2026-11-25T09:17:41.123Z;
 * out must hold 32 bytes. */
void sb_time_format(int64_t ms, char out[32]);
/* Parse an RFC 3339 date-time (any offset, optional fraction) into ms since
 * the epoch. 0 or SB_EINVAL. */
int sb_time_parse(const char *s, int64_t *ms);

/* ---- byte buffer ------------------------------------------------------ */
typedef struct sb_buf {
  char *data; /* always NUL-terminated when len > 0 or after any append */
  size_t len;
  size_t cap;
} sb_buf;

#define SB_BUF_INIT                                                            \
  { NULL, 0, 0 }
int sb_buf_reserve(sb_buf *b, size_t extra);
int sb_buf_append(sb_buf *b, const void *data, size_t n);
int sb_buf_append_str(sb_buf *b, const char *s);
/* Append what is left to read of f: 0 at its end; SB_ETOOBIG once b would
 * pass `max` bytes (reading stops there: an endless stream is not read
 * on), SB_EIO on a read error, SB_ENOMEM. */
int sb_buf_read_file(sb_buf *b, FILE *f, size_t max);
int sb_buf_printf(sb_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sb_buf_consume(sb_buf *b, size_t n); /* drop n bytes from the front */
void sb_buf_reset(sb_buf *b);             /* len = 0, keep memory */
void sb_buf_free(sb_buf *b);

/* ---- JSON in error messages ------------------------------------------ */
struct json_t;
/* "an object", "an array", "a string", "an integer", "a number",
 * "a boolean" or "null": what a user sent, for "expected X, got Y". */
const char *sb_json_type_name(const struct json_t *v);
/* The first key of obj not in `known` (NULL-terminated), or NULL: for
 * "KEY: unknown field (known: ...)" on every surface that takes objects. */
const char *sb_json_unknown_key(const struct json_t *obj,
                                const char *const *known);
/* names (NULL-terminated) joined by ", " into out, cut to fit cap. */
void sb_join_names(const char *const *names, char *out, size_t cap);

/* ---- files named by the operator ---------------------------------------- */
/* open(path, O_RDONLY | O_CLOEXEC) of a regular file, or -1 with errno set
 * (EINVAL: not a regular file). Opening a FIFO for reading waits for a
 * writer, for ever; files read on SIGHUP (the config, certificates,
 * signing keys) are read on the server's loop, so a FIFO in their place
 * must be an error, not a hang. */
int sb_open_regular(const char *path);
/* The same as a stream for fread ("rb"), or NULL with errno set. */
FILE *sb_fopen_regular(const char *path);

/* ---- text from the wire ----------------------------------------------- */
/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms,
 * no surrogates, nothing past U+10FFFF), 1 for an ASCII byte, or 0 when
 * the bytes at s are not UTF-8. n is how many bytes there are. */
size_t sb_utf8_seq(const unsigned char *s, size_t n);
/* 1 when s[0..n) is UTF-8 text without NUL or other control characters
 * (C0, DEL, C1): what an id, a name, a path or a query value may hold. */
int sb_text_plain(const char *s, size_t n);
/* A count or cursor as the wire writes it: s[0..n) is one or more ASCII
 * digits and nothing else (no sign, no blanks, no "0x"), of at most
 * INT64_MAX. 0 with *out set, SB_EINVAL when the bytes are not digits
 * alone, SB_ETOOBIG when the number is past INT64_MAX (strtoll would
 * clamp it and the caller answer as if that had been sent). *out is left
 * alone on failure. */
int sb_parse_digits(const char *s, size_t n, int64_t *out);
/* Make s (NUL-terminated) valid UTF-8 in place: each byte that does not
 * belong to a valid sequence becomes '?'. jansson refuses invalid UTF-8,
 * so a message quoting what a client sent is scrubbed before it is
 * packed: an error must never fail to be built. */
void sb_utf8_scrub(char *s);

/* The path of the value being checked, e.g. "data.workflow.errors[2]",
 * kept in a fixed buffer: documents we validate are shallow, and an
 * over-long user key is cut in the message, not trusted. */
typedef struct sb_jpath {
  char buf[300];
  size_t len;
} sb_jpath;

/* Append ".key" (or "key" at the start) / "[i]"; return a mark for pop. */
size_t sb_jpath_key(sb_jpath *p, const char *key);
size_t sb_jpath_index(sb_jpath *p, size_t i);
/* Back to the mark returned by the matching push. */
void sb_jpath_pop(sb_jpath *p, size_t mark);

/* ---- reading JSON ------------------------------------------------------ */
struct json_error_t;
/* json_loadb, faster: the same result and the same error for every input.
 * A single-pass reader (json_read.c) builds the tree; an input it does not
 * take on itself (invalid text, a \u0000 or half a surrogate pair, an
 * integer outside int64, a real strtod cannot hold exactly in range, a
 * duplicate key, nesting past 256 levels, a flag other than
 * JSON_REJECT_DUPLICATES and JSON_DECODE_ANY) is parsed again by jansson,
 * whose verdict stands. */
struct json_t *sb_json_loadb(const char *text, size_t len, size_t flags,
                             struct json_error_t *err);
/* json_dumpb and json_dumps (same flags, same results, freed with
 * sb_free) but each real number in the fewest digits that read back as
 * the same double: 0.2, where jansson writes 0.20000000000000001
 * (json_write.c). */
size_t sb_json_dumpb(const struct json_t *json, char *buf, size_t size,
                     size_t flags);
char *sb_json_dumps(const struct json_t *json, size_t flags);
/* The text of json in buf (cap bytes) when it fits there with `reserve`
 * bytes to spare (a newline, a terminating zero), else in a new
 * allocation of its length plus `reserve`, which *heap holds for the
 * caller to free (NULL when buf served): the text, its length in *len.
 * NULL when json cannot be dumped or memory runs out. For the messages
 * written at once, which mostly fit a stack buffer. */
char *sb_json_dump_to(const struct json_t *json, size_t flags, char *buf,
                      size_t cap, size_t reserve, size_t *len, char **heap);
/* sb_json_dumps, with the text's length in *len (when len is not NULL). */
char *sb_json_dumps_len(const struct json_t *json, size_t flags, size_t *len);
/* The reader alone: the tree, or NULL where sb_json_loadb would ask
 * jansson (for tests and the differential fuzz target). */
struct json_t *sb_json_read_fast(const char *text, size_t len, size_t flags);
/* The same, declining as well text that nests deeper than max_depth
 * levels (the top-level object or array is level 1): a tree it returns is
 * known to be that shallow, with no scan of the text beforehand. */
struct json_t *sb_json_read_fast_within(const char *text, size_t len,
                                        size_t flags, int max_depth);

/* ---- intrusive doubly-linked list ------------------------------------ */
/* A link embedded in each element and a list of {head, tail}: push and
 * unlink are O(1), nothing is allocated, an element finds its container
 * with sb_list_entry. NULL-terminated rather than circular with a
 * sentinel (libuv's queue, the Linux list): every owner and element in
 * switchboard is calloc'd, and an all-zero list and link must already be
 * a valid empty list and an unlinked link, with no init call to forget.
 * The price: a lone element has prev == next == NULL like an unlinked
 * one, so "is it linked" asks the list too (sb_list_linked), and unlink
 * of an element that is not in the list is a no-op. An element may sit
 * in several lists through several links; each link in one list at most.
 * Not thread-safe: the owner's lock or thread guards it. */
typedef struct sb_list_link {
  struct sb_list_link *prev, *next;
} sb_list_link;

typedef struct sb_list {
  sb_list_link *head, *tail;
} sb_list;

/* Whether n is in l (n in no other list through this link). */
static inline int sb_list_linked(const sb_list *l, const sb_list_link *n) {
  return n->prev != NULL || l->head == n;
}

static inline int sb_list_empty(const sb_list *l) { return l->head == NULL; }

/* Append n (not linked) at the tail: FIFO order from sb_list_first. */
static inline void sb_list_push_back(sb_list *l, sb_list_link *n) {
  n->next = NULL;
  n->prev = l->tail;
  if (l->tail)
    l->tail->next = n;
  else
    l->head = n;
  l->tail = n;
}

/* Prepend n (not linked) at the head: newest first from sb_list_first. */
static inline void sb_list_push_front(sb_list *l, sb_list_link *n) {
  n->prev = NULL;
  n->next = l->head;
  if (l->head)
    l->head->prev = n;
  else
    l->tail = n;
  l->head = n;
}

/* Take n out of l and clear its link; a no-op when n is not in l. */
static inline void sb_list_unlink(sb_list *l, sb_list_link *n) {
  if (!sb_list_linked(l, n)) return;
  if (n->prev)
    n->prev->next = n->next;
  else
    l->head = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    l->tail = n->prev;
  n->prev = n->next = NULL;
}

/* Iteration: `for (n = sb_list_first(l); n; n = next) { next =
 * sb_list_next(n); ... }` survives unlinking (and freeing) n; the
 * SB_LIST_FOREACH_SAFE macro spells that loop. */
static inline sb_list_link *sb_list_first(const sb_list *l) { return l->head; }
static inline sb_list_link *sb_list_last(const sb_list *l) { return l->tail; }
static inline sb_list_link *sb_list_next(const sb_list_link *n) {
  return n->next;
}

#define SB_LIST_FOREACH_SAFE(n, nx, l)                                         \
  for ((n) = (l)->head; (n) && ((nx) = (n)->next, 1); (n) = (nx))

static inline void *sb_list__container(const sb_list_link *n, size_t off) {
  return n ? (void *)((char *)(uintptr_t)n - off) : NULL;
}
/* The element of type `type` whose link `member` is n; NULL for NULL, so
 * `sb_list_entry(sb_list_first(l), T, link)` is NULL on an empty list. */
#define sb_list_entry(n, type, member)                                         \
  ((type *)sb_list__container((n), offsetof(type, member)))

/* ---- random ids ------------------------------------------------------- */
/* Fill out with 2*nbytes lowercase hex chars + NUL from the CSPRNG.
 * out must hold 2*nbytes+1 bytes. */
void sb_random_hex(char *out, size_t nbytes);

/* A time-ordered UUID (version 7: 48-bit ms timestamp + 74 random bits) as
 * 36 chars + NUL. Ids minted this way keep index locality in the stores. */
void sb_uuid_v7(char out[37]);

/* ---- base64 ----------------------------------------------------------- */
/* Standard base64 (with padding). Return malloc'd NUL-terminated strings or
 * buffers, caller frees with sb_free; NULL on bad input or ENOMEM. */
char *sb_base64_encode(const void *data, size_t n);
unsigned char *sb_base64_decode(const char *s, size_t slen, size_t *out_len);

/* ---- the authenticated caller ---------------------------------------- */
/* Who made a request, as the transport's authentication found it: which
 * kind of credential, its tenant, its subject (an API key's id, a JWT's
 * `sub`) and the scopes it grants. Reference-counted (loop thread only):
 * the transport holds one reference per request, and whatever must
 * outlive the request (an answer that arrives later) takes its own. */
typedef enum sb_principal_kind {
  SB_PRINCIPAL_NONE = 0,     /* no credentials: the default tenant */
  SB_PRINCIPAL_CONFIG_TOKEN, /* a token of auth.tenants */
  SB_PRINCIPAL_API_KEY,      /* a key of `switchboard key create` */
  SB_PRINCIPAL_JWT,          /* an OAuth 2.1 access token (auth.oauth) */
} sb_principal_kind;

typedef struct sb_principal {
  sb_principal_kind kind;
  /* Borrowed from whoever authenticated (the config, the keyring, the JWT
   * verifier: each keeps its tenant strings as long as the server lives). */
  const char *tenant;
  const char *subject; /* owned by the principal; may be NULL */
  /* 1: only `scopes` are granted; 0: everything the tenant allows (no
   * scopes at all: config tokens, unscoped keys and tokens, no auth). */
  int restricted;
  size_t scopes_len;
  char **scopes; /* owned by the principal */
  /* When the credential stops being good (wall-clock ms; 0: never), and
   * whether its issuer has since taken it back (a revoked API key). A
   * stream opened with it ends at its next message once either holds
   * (sb_principal_live). */
  int64_t expires_ms;
  int revoked;
  unsigned refs_;
} sb_principal;

/* A new principal with one reference (subject and scopes copied; tenant
 * borrowed); NULL when out of memory. `restricted` is set when scopes_len
 * is not 0. */
sb_principal *sb_principal_new(sb_principal_kind kind, const char *tenant,
                               const char *subject, const char *const *scopes,
                               size_t scopes_len);
/* Another reference to p (NULL-safe); returns p. */
sb_principal *sb_principal_ref(sb_principal *p);
/* Drop a reference (NULL-safe); the last one frees. */
void sb_principal_unref(sb_principal *p);
/* Whether p's credential is still good at wall-clock time now_ms: not
 * revoked, not expired. NULL (no credentials needed) is. */
int sb_principal_live(const sb_principal *p, int64_t now_ms);
/* "config token", "API key", "JWT", "none". */
const char *sb_principal_kind_name(sb_principal_kind kind);

#endif
