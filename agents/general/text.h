/* agents/general/text.h: the words of a message, for rules.c (private to
 * agents/general): splitting, phrase matching, language and sentiment. */
#ifndef DL_GENERAL_TEXT_H
#define DL_GENERAL_TEXT_H

#include <stddef.h>

#define MAX_WORDS 256

typedef struct words {
  char *buf;                /* lower-cased copy, words NUL-separated */
  const char *w[MAX_WORDS]; /* lower-case words */
  size_t at[MAX_WORDS];     /* offset of each word in the original text */
  size_t n;
} words;

/* Split text into lower-cased words (ws->buf: sb_free it; NULL on
 * allocation failure). */
void gen_split(const char *text, words *ws);
/* 1 if the words from i are `phrase` (words separated by one space; a
 * trailing '*' matches any ending: "repar*"). */
int gen_phrase_at(const words *ws, size_t i, const char *phrase);
/* How many times phrase occurs. */
int gen_count_phrase(const words *ws, const char *phrase);
/* "en", "es", "fr" or "de", by stopword counts (English on a tie). */
const char *gen_language_of(const words *ws);
/* "positive", "neutral" or "negative": a lexicon, with a negator up to
 * three words before a word flipping it ("not happy"). */
const char *gen_sentiment_of(const words *ws);

#endif
