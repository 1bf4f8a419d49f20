/* text.c: the words of a customer's message (see text.h): split into
 * lower-cased words (ASCII folded; other bytes kept, so "más" stays one
 * word), phrases matched on word boundaries, the language by stopwords
 * and the sentiment by a small lexicon with negation. */
#include "text.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

static int word_byte(unsigned char c) {
  return isalnum(c) || c >= 0x80 || c == '\'';
}

void gen_split(const char *text, words *ws) {
  size_t len = strlen(text);
  ws->buf = sb_malloc(len + 1);
  ws->n = 0;
  if (!ws->buf) return;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    ws->buf[i] = word_byte(c) ? (char)tolower(c) : '\0';
  }
  ws->buf[len] = '\0';
  for (size_t i = 0; i < len && ws->n < MAX_WORDS; i++)
    if (ws->buf[i] && (i == 0 || !ws->buf[i - 1])) {
      ws->at[ws->n] = i;
      ws->w[ws->n++] = ws->buf + i;
    }
}

/* 1 if the words starting at i are `phrase` (space-separated words). */
int gen_phrase_at(const words *ws, size_t i, const char *phrase) {
  char want[64];
  snprintf(want, sizeof want, "%s", phrase);
  for (char *save = NULL, *p = strtok_r(want, " ", &save); p;
       p = strtok_r(NULL, " ", &save), i++) {
    size_t plen = strlen(p);
    int prefix = plen && p[plen - 1] == '*'; /* "repar*" */
    if (i >= ws->n) return 0;
    if (prefix ? strncmp(ws->w[i], p, plen - 1) != 0 : strcmp(ws->w[i], p) != 0)
      return 0;
  }
  return 1;
}

int gen_count_phrase(const words *ws, const char *phrase) {
  int n = 0;
  for (size_t i = 0; i < ws->n; i++)
    n += gen_phrase_at(ws, i, phrase);
  return n;
}

/* ---- language ----------------------------------------------------------- */

static const struct {
  const char *code;
  const char *stop[24];
} stopwords[] = {
    {"en", {"the",  "a",    "is",      "i",    "my",   "to",   "and", "for",
            "of",   "it",   "in",      "you",  "with", "what", "can", "do",
            "have", "this", "looking", "want", "need", "how",  "am",  "are"}},
    {"es", {"el",       "la",     "los",  "las",    "de",    "que",
            "y",        "en",     "un",   "una",    "mi",    "para",
            "por",      "con",    "es",   "quiero", "busco", "tengo",
            "necesito", "cuánto", "hola", "coche",  "carro", "del"}},
    {"fr", {"le",   "la",  "les",      "de",      "des",     "et",
            "un",   "une", "je",       "mon",     "ma",      "pour",
            "avec", "est", "voudrais", "cherche", "bonjour", "voiture",
            "du",   "au",  "pas",      "vous",    "j'ai",    "suis"}},
    {"de",
     {"der",   "die",   "das",   "und", "ich",   "ein",   "eine",   "mein",
      "meine", "für",   "mit",   "ist", "nicht", "suche", "möchte", "hallo",
      "auto",  "wagen", "einen", "den", "zu",    "habe",  "bitte",  "kein"}},
};

const char *gen_language_of(const words *ws) {
  int best = 0;
  const char *lang = "en";
  for (size_t l = 0; l < sizeof stopwords / sizeof stopwords[0]; l++) {
    int score = 0;
    for (size_t i = 0; i < ws->n; i++)
      for (size_t s = 0; s < 24 && stopwords[l].stop[s]; s++)
        if (strcmp(ws->w[i], stopwords[l].stop[s]) == 0) score++;
    if (score > best) best = score, lang = stopwords[l].code;
  }
  return lang;
}

/* ---- sentiment ---------------------------------------------------------- */

static const char *const positive[] = {
    "love",       "great",     "happy",     "excellent", "thanks",  "thank",
    "awesome",    "amazing",   "good",      "perfect",   "excited", "glad",
    "appreciate", "wonderful", "fantastic", "pleased",   "gracias", "encanta",
    "genial",     "excelente", "merci",     "parfait",   "content", "contente",
    "danke",      "toll",      "super",     "zufrieden", "prima"};
static const char *const negative[] = {
    "angry",        "terrible", "awful",         "bad",          "worst",
    "disappointed", "upset",    "frustrated",    "frustrating",  "hate",
    "unhappy",      "horrible", "annoyed",       "ridiculous",   "rude",
    "unacceptable", "furious",  "disappointing", "waste",        "scam",
    "enojado",      "malo",     "pésimo",        "decepcionado", "fâché",
    "déçu",         "nul",      "mécontent",     "schlecht",     "enttäuscht",
    "ärgerlich",    "sauer",    "unzufrieden"};
static const char *const negators[] = {
    "not",    "never",  "no",     "don't",   "didn't", "isn't", "wasn't",
    "aren't", "hardly", "nobody", "nothing", "nada",   "pas",   "jamais",
    "nicht",  "kein",   "keine",  "nunca",   "ni"};

static int in_list(const char *w, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(w, list[i]) == 0) return 1;
  return 0;
}
#define IN(w, list) in_list(w, list, sizeof list / sizeof list[0])

const char *gen_sentiment_of(const words *ws) {
  int score = 0;
  for (size_t i = 0; i < ws->n; i++) {
    int pol = IN(ws->w[i], positive) ? 1 : IN(ws->w[i], negative) ? -1 : 0;
    if (!pol) continue;
    for (size_t k = i >= 3 ? i - 3 : 0; k < i; k++)
      if (IN(ws->w[k], negators) ||
          (strlen(ws->w[k]) > 3 &&
           strcmp(ws->w[k] + strlen(ws->w[k]) - 3, "n't") == 0)) {
        pol = -pol;
        break;
      }
    score += pol;
  }
  /* "!!!" with a complaint reads angrier, but adds nothing on its own */
  return score > 0 ? "positive" : score < 0 ? "negative" : "neutral";
}
