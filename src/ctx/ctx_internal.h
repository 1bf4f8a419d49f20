/* ctx_internal.h: what the files of src/ctx/ share beyond ctx.h.
 *
 * An update's next version is made on the thread pool (next.c) from the
 * head, for the manager (manager.c) to write. It can be made in place: when a
 * pool job owns the head alone (one reference, its own, on every node it
 * changes), the merge patch is applied to the head itself instead of to a deep
 * copy, and each member it replaces or removes is logged with its old value.
 * The diff stored with the version is then made from the log (the changed
 * members only), not by walking both whole documents.
 */
#ifndef SB_CTX_INTERNAL_H
#define SB_CTX_INTERNAL_H

#include "ctx/ctx.h"

/* ---- JSON Pointer (pointer.c) ---------------------------------------- */

/* The value at p's first `upto` tokens in root (borrowed), or NULL when
 * that location does not exist. */
json_t *ctx_ptr_walk(json_t *root, const sb_ctx_ptr *p, size_t upto);

/* One member changed in place. */
typedef struct ctx_edit {
  json_t *parent; /* borrowed: the object (inside the document) changed */
  char *key;      /* the member */
  size_t key_len;
  char *path;  /* the member's escaped JSON Pointer in the document */
  json_t *old; /* its value before (a reference), or NULL: it was absent */
} ctx_edit;

typedef struct ctx_edits {
  ctx_edit *items;
  size_t len, cap;
} ctx_edits;

/* Whether v has one reference (the caller's document's) or is one of
 * jansson's immortal singletons: read atomically, so asking about a node
 * another thread also holds is no data race. */
int ctx_sole(const json_t *v);

/* Whether merging `patch` (an object) into `doc` (an object the caller
 * holds alone) in place touches only sole nodes: every object it descends
 * into and every member it replaces or removes. */
int ctx_merge_in_place_ok(const json_t *doc, const json_t *patch);

/* RFC 7386 on `doc` itself, logging each member replaced or removed (its
 * old value kept in the log). 0 or SB_ENOMEM (doc then partly patched). */
int ctx_merge_in_place(json_t *doc, const json_t *patch, ctx_edits *log);

/* Set doc's top-level member `key` to `value` (taken), logged like a merge
 * member (once per member: a second set of the same one is not logged
 * again). 0 or SB_ENOMEM. */
int ctx_set_in_place(json_t *doc, const char *key, json_t *value,
                     ctx_edits *log);

/* The RFC 6902 patch from the document before the logged edits to the one
 * after (diff.c): sb_ctx_diff's operations for the changed members. *out is
 * a new reference; 0 or SB_ENOMEM. */
int ctx_diff_edits(const ctx_edits *log, json_t **out);

/* Release the log: the old values' references and the strings. On the
 * thread that may drop references on the old values (they may share
 * nodes with documents held elsewhere). */
void ctx_edits_clear(ctx_edits *log);

/* ---- an update's next version (next.c) ------------------------------- */

/* The work of one update on the thread pool. The worker touches only this
 * and what its inputs point to (none of which the loop changes meanwhile);
 * the loop takes the results back. */
typedef struct ctx_next {
  const char *id;         /* in: the context's (borrowed) */
  int64_t expected;       /* in: the version the update applies to */
  sb_ctx_patch_kind kind; /* in */
  const json_t *patch;    /* in (borrowed) */
  json_t *head;           /* in: a reference held, or NULL and... */
  char *head_text;        /* in: ...the head as the store returned it */
  int from_cache;         /* in: head came from the cache, not the store */
  int own;                /* in: head is held by this job alone */
  int snapshot_every;     /* in */
  size_t max_doc_bytes;   /* in */
  size_t slack_bytes;     /* in: what it may pass max_doc_bytes by */
  int rc;                 /* out: 0 or the failure, with err */
  sb_error err;
  int64_t current; /* out: the head's version on SB_ECONFLICT */
  json_t *next;    /* out: the new document */
  char *text, *diff_text;
  int64_t now, expires;
  int snapshot;
  size_t weight;   /* out: ctx_doc_weight(next), for the head cache */
  ctx_edits edits; /* made in place: the members changed, old values */
} ctx_next;

/* On the thread pool: version expected+1 from the head, as the texts the
 * store keeps (text, diff_text), or rc and err. */
void ctx_next_make(ctx_next *nx);

/* Release what nx holds (on the loop thread: see ctx_edits_clear). */
void ctx_next_clear(ctx_next *nx);

/* A document as stored (compact, sorted keys; caller frees), parsed back
 * (new reference, or NULL with err), and its expires_ms for the store
 * from metadata.expiresAt (0: none). */
char *ctx_doc_dump(const json_t *doc);
json_t *ctx_doc_load(const char *text, sb_error *err);
int64_t ctx_doc_expiry(const json_t *doc);
/* An estimate of the heap a parsed document takes (jansson's nodes and
 * tables, malloc's rounding): what the head cache counts against its
 * budget. A small integer is 2 bytes of text and ~40 parsed, so the text's
 * length says little. O(nodes): make it where the document is made. */
size_t ctx_doc_weight(const json_t *doc);
/* 0, or SB_ETOOBIG with err naming the document's size and the limit. */
/* 0 when text is at most max_bytes + slack long, else SB_ETOOBIG naming
 * both sizes (and the slack, if any). */
int ctx_doc_check_size(const char *text, size_t max_bytes, size_t slack,
                       sb_error *err);

#endif
