/* pointer.c: RFC 6901 JSON Pointers, the addressing every other ctx
 * algorithm (patch, diff) speaks.
 *
 * A pointer is parsed once into unescaped tokens held in a single buffer,
 * so walking a document is a loop over tokens with no further allocation.
 * Tokens carry their length because a JSON key may contain U+0000.
 */
#include "ctx/ctx.h"
#include "ctx/ctx_internal.h"

#include <string.h>

/* Longest pointer quoted in an error message, so a 1 MB pointer does not
 * make a useless message. */
#define QUOTE_MAX 200

int sb_ctx_ptr_parse(const char *text, size_t len, sb_ctx_ptr *out,
                     sb_error *err) {
  memset(out, 0, sizeof *out);
  if (len == 0) return 0;
  if (text[0] != '/')
    return sb_error_set(err, SB_EINVAL,
                        "invalid JSON pointer \"%.*s\": must be empty or "
                        "start with '/'",
                        (int)(len < QUOTE_MAX ? len : QUOTE_MAX), text);
  size_t ntokens = 0;
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '/')
      ntokens++;
    else if (text[i] == '~' &&
             (i + 1 >= len || (text[i + 1] != '0' && text[i + 1] != '1')))
      return sb_error_set(err, SB_EINVAL,
                          "invalid JSON pointer \"%.*s\": '~' at offset %zu "
                          "must be followed by '0' or '1'",
                          (int)(len < QUOTE_MAX ? len : QUOTE_MAX), text, i);
  }
  /* Unescaped tokens are never longer than their text, and each needs a
   * NUL: len + 1 bytes hold them all (the '/' separators become NULs). */
  out->buf_ = sb_malloc(len + 1);
  out->tokens = sb_calloc(ntokens, sizeof *out->tokens);
  if (!out->buf_ || !out->tokens) {
    sb_ctx_ptr_free(out);
    return sb_error_set(err, SB_ENOMEM, "out of memory parsing JSON pointer");
  }
  char *w = out->buf_;
  for (size_t i = 0; i < len;) {
    i++; /* skip '/' */
    sb_ctx_ptr_token *tok = &out->tokens[out->ntokens++];
    tok->s = w;
    while (i < len && text[i] != '/') {
      if (text[i] == '~') {
        *w++ = text[i + 1] == '0' ? '~' : '/';
        i += 2;
      } else {
        *w++ = text[i++];
      }
    }
    tok->len = (size_t)(w - tok->s);
    *w++ = '\0';
  }
  return 0;
}

void sb_ctx_ptr_free(sb_ctx_ptr *p) {
  if (!p) return;
  sb_free(p->tokens);
  sb_free(p->buf_);
  memset(p, 0, sizeof *p);
}

int sb_ctx_ptr_index(const sb_ctx_ptr_token *tok, size_t *index) {
  if (tok->len == 1 && tok->s[0] == '-') return 1;
  if (tok->len == 0 || (tok->len > 1 && tok->s[0] == '0')) return SB_EINVAL;
  size_t v = 0;
  for (size_t i = 0; i < tok->len; i++) {
    char c = tok->s[i];
    if (c < '0' || c > '9') return SB_EINVAL;
    if (v > (SIZE_MAX - 9) / 10) return SB_EINVAL; /* overflow */
    v = v * 10 + (size_t)(c - '0');
  }
  *index = v;
  return 0;
}

json_t *ctx_ptr_walk(json_t *root, const sb_ctx_ptr *p, size_t upto) {
  json_t *cur = root;
  for (size_t i = 0; i < upto && cur; i++) {
    const sb_ctx_ptr_token *tok = &p->tokens[i];
    if (json_is_object(cur)) {
      cur = json_object_getn(cur, tok->s, tok->len);
    } else if (json_is_array(cur)) {
      size_t idx = 0;
      cur = sb_ctx_ptr_index(tok, &idx) == 0 ? json_array_get(cur, idx) : NULL;
    } else {
      cur = NULL;
    }
  }
  return cur;
}

int sb_ctx_ptr_get(const json_t *doc, const char *ptr, json_t **out,
                   sb_error *err) {
  *out = NULL;
  sb_ctx_ptr p;
  int rc = sb_ctx_ptr_parse(ptr, strlen(ptr), &p, err);
  if (rc != 0) return rc;
  json_t *cur = ctx_ptr_walk((json_t *)doc, &p, p.ntokens);
  sb_ctx_ptr_free(&p);
  if (!cur)
    return sb_error_set(err, SB_ENOENT, "%.*s: path does not exist", QUOTE_MAX,
                        ptr);
  *out = cur;
  return 0;
}

int sb_ctx_ptr_append(sb_buf *b, const char *token, size_t len) {
  if (sb_buf_reserve(b, len + 2) != 0) return SB_ENOMEM;
  if (sb_buf_append(b, "/", 1) != 0) return SB_ENOMEM;
  size_t start = 0;
  for (size_t i = 0; i < len; i++) {
    if (token[i] != '~' && token[i] != '/') continue;
    if (sb_buf_append(b, token + start, i - start) != 0 ||
        sb_buf_append(b, token[i] == '~' ? "~0" : "~1", 2) != 0)
      return SB_ENOMEM;
    start = i + 1;
  }
  return sb_buf_append(b, token + start, len - start) == 0 ? 0 : SB_ENOMEM;
}
