/* rules.c: dealer-general's deterministic classifier.
 *
 * The text is split into words (text.c). Intents score weighted phrases in
 * English, Spanish, French and German, the strongest wins and the margin over
 * the next one is the confidence. Entities come from the catalogue shared with
 * dealer-data (makes, models), POSIX regular expressions (VIN with its
 * check digit, phone, ISO dates) and small scanners (e-mail, money with
 * its notations, month names, weekdays). Language and sentiment are
 * text.c's. Every pass is linear in the text: it runs on the agent's loop.
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/catalog.h"
#include "general.h"
#include "text.h"

/* ---- intents ------------------------------------------------------------ */

enum { BUY, TRADE_IN, SERVICE, PARTS, FINANCE, N_INTENTS };
static const char *const intent_names[] = {"buy", "trade_in", "service",
                                           "parts", "finance"};

typedef struct cue {
  const char *phrase;
  int intent, weight;
} cue;

static const cue cues[] = {
    /* buy */
    {"buy", BUY, 3},
    {"buying", BUY, 3},
    {"purchase", BUY, 3},
    {"looking for", BUY, 2},
    {"shopping for", BUY, 3},
    {"interested in", BUY, 2},
    {"test drive", BUY, 3},
    {"in stock", BUY, 1},
    {"available", BUY, 1},
    {"new car", BUY, 2},
    {"used car", BUY, 2},
    {"how much is", BUY, 1},
    {"want a", BUY, 1},
    {"need a", BUY, 1},
    {"price", BUY, 1},
    {"budget", BUY, 1},
    {"inventory", BUY, 2},
    {"compr*", BUY, 3},
    {"busco", BUY, 2},
    {"acheter", BUY, 3},
    {"cherche", BUY, 2},
    {"kaufen", BUY, 3},
    {"suche", BUY, 2},
    {"probefahrt", BUY, 3},
    {"essai", BUY, 2},
    {"prueba de manejo", BUY, 3},
    /* trade-in: a stronger cue than buy, since it usually comes with one */
    {"trade in", TRADE_IN, 5},
    {"trade-in", TRADE_IN, 5},
    {"tradein", TRADE_IN, 5},
    {"trade my", TRADE_IN, 5},
    {"trading in", TRADE_IN, 5},
    {"sell my", TRADE_IN, 4},
    {"worth", TRADE_IN, 2},
    {"appraisal", TRADE_IN, 4},
    {"appraise", TRADE_IN, 4},
    {"value of my", TRADE_IN, 3},
    {"parte de pago", TRADE_IN, 5},
    {"vender mi", TRADE_IN, 4},
    {"reprise", TRADE_IN, 5},
    {"inzahlung", TRADE_IN, 5},
    {"in zahlung", TRADE_IN, 5},
    /* service */
    {"service", SERVICE, 3},
    {"oil change", SERVICE, 4},
    {"maintenance", SERVICE, 3},
    {"repair", SERVICE, 3},
    {"check engine", SERVICE, 4},
    {"recall", SERVICE, 4},
    {"appointment", SERVICE, 2},
    {"noise", SERVICE, 3},
    {"warning light", SERVICE, 4},
    {"tire rotation", SERVICE, 4},
    {"inspection", SERVICE, 3},
    {"fix", SERVICE, 3},
    {"broken", SERVICE, 2},
    {"leak*", SERVICE, 3},
    {"replace", SERVICE, 1},
    {"grinding", SERVICE, 3},
    {"squeak*", SERVICE, 3},
    {"squeal*", SERVICE, 3},
    {"rattl*", SERVICE, 3},
    {"vibrat*", SERVICE, 3},
    {"overheat*", SERVICE, 4},
    {"won't start", SERVICE, 4},
    {"keeps dying", SERVICE, 3},
    {"bring it in", SERVICE, 3},
    {"brake", SERVICE, 2},
    {"brakes", SERVICE, 2},
    {"servicio", SERVICE, 3},
    {"repar*", SERVICE, 3},
    {"mantenimiento", SERVICE, 3},
    {"revisión", SERVICE, 3},
    {"entretien", SERVICE, 3},
    {"révision", SERVICE, 3},
    {"vidange", SERVICE, 4},
    {"werkstatt", SERVICE, 3},
    {"reparatur", SERVICE, 3},
    {"inspektion", SERVICE, 3},
    {"wartung", SERVICE, 3},
    {"ölwechsel", SERVICE, 4},
    {"rückruf", SERVICE, 4},
    /* parts */
    {"part", PARTS, 3},
    {"parts", PARTS, 3},
    {"wiper*", PARTS, 3},
    {"filter", PARTS, 2},
    {"battery", PARTS, 2},
    {"brake pads", PARTS, 2},
    {"floor mats", PARTS, 3},
    {"accessor*", PARTS, 3},
    {"spark plug*", PARTS, 3},
    {"tires", PARTS, 2},
    {"part number", PARTS, 4},
    {"order a", PARTS, 1},
    {"pieza*", PARTS, 3},
    {"repuesto*", PARTS, 3},
    {"pièce*", PARTS, 3},
    {"ersatzteil*", PARTS, 3},
    {"teile", PARTS, 3},
    /* finance */
    {"financ*", FINANCE, 4},
    {"loan", FINANCE, 4},
    {"apr", FINANCE, 4},
    {"interest rate", FINANCE, 4},
    {"monthly payment*", FINANCE, 3},
    {"per month", FINANCE, 2},
    {"a month", FINANCE, 2},
    {"credit", FINANCE, 3},
    {"credit score", FINANCE, 2},
    {"down payment", FINANCE, 3},
    {"lease", FINANCE, 2},
    {"pre-approved", FINANCE, 4},
    {"preapproved", FINANCE, 4},
    {"crédito", FINANCE, 3},
    {"mensual*", FINANCE, 2},
    {"crédit", FINANCE, 3},
    {"mensualité*", FINANCE, 3},
    {"finanzierung", FINANCE, 4},
    {"kredit", FINANCE, 3},
    {"leasing", FINANCE, 3},
    {"monatlich*", FINANCE, 2},
};

/* ---- regular expressions ------------------------------------------------ */

static regex_t re_vin, re_phone, re_iso_date;
static int re_ok;
static pthread_once_t re_once = PTHREAD_ONCE_INIT;

static void compile_res(void) {
  re_ok = regcomp(&re_vin,
                  "(^|[^A-Za-z0-9])([A-HJ-NPR-Za-hj-npr-z0-9]{17})"
                  "($|[^A-Za-z0-9])",
                  REG_EXTENDED) == 0 &&
          regcomp(&re_phone,
                  "(^|[^0-9])((\\+?1[ .-]?)?(\\(?[2-9][0-9]{2}\\)?)"
                  "[ .-]?([0-9]{3})[ .-]?([0-9]{4}))($|[^0-9])",
                  REG_EXTENDED) == 0 &&
          regcomp(&re_iso_date,
                  "(^|[^0-9])((19|20)[0-9]{2})-([0-9]{2})-"
                  "([0-9]{2})($|[^0-9])",
                  REG_EXTENDED) == 0;
}

static char *sub(const char *s, regmatch_t m) {
  return sb_asprintf("%.*s", (int)(m.rm_eo - m.rm_so), s + m.rm_so);
}

/* ---- entities ----------------------------------------------------------- */

/* Whole dollars as an integer (32000), cents as a real (32.5). */
static json_t *amount(double v) {
  return v == floor(v) ? json_integer((json_int_t)v) : json_real(v);
}

/* Blank [from, to) of the masked copy, so numbers inside a phone, a VIN or
 * a date are not read again as money or years. */
static void mask(char *masked, size_t from, size_t to) {
  for (size_t i = from; i < to && masked[i]; i++)
    masked[i] = ' ';
}

static void set_str(json_t *o, const char *k, const char *v) {
  json_object_set_new(o, k, json_string(v));
}

/* Models whose names are everyday words count only when capitalised. */
static int common_word(const char *model) {
  static const char *const everyday[] = {
      "Escape",   "Leaf",     "Pilot", "Accord",  "Ascent",
      "Frontier", "Explorer", "Rogue", "Outback", "Forte"};
  for (size_t i = 0; i < sizeof everyday / sizeof everyday[0]; i++)
    if (strcmp(model, everyday[i]) == 0) return 1;
  return 0;
}

static void find_vehicle(const char *text, const words *ws, json_t *e) {
  const char *make = NULL;
  const dl_model *model = NULL;
  for (size_t i = 0; i < ws->n && !make; i++)
    make = dl_make_lookup(ws->w[i]);
  /* a model: one to three words run together ("cr v", "f 150", "model 3") */
  for (int pass = 0; pass < 2 && !model; pass++)
    for (size_t i = 0; i < ws->n && !model; i++)
      for (size_t len = 3; len >= 1 && !model; len--) {
        if (i + len > ws->n) continue;
        char key[64] = "";
        for (size_t k = 0; k < len; k++)
          strncat(key, ws->w[i + k], sizeof key - strlen(key) - 1);
        for (size_t m = 0; m < dl_models_len; m++) {
          const dl_model *dm = &dl_models[m];
          if (make && strcasecmp(make, dm->make) != 0) continue;
          char mkey[64];
          size_t o = 0;
          for (const char *p = dm->model; *p && o + 1 < sizeof mkey; p++)
            if (isalnum((unsigned char)*p))
              mkey[o++] = (char)tolower((unsigned char)*p);
          mkey[o] = '\0';
          /* pass 0: exactly; pass 1: the start or end of a longer name
           * ("silverado", "mach e"), 4 characters at least */
          int hit = pass == 0 ? strcmp(key, mkey) == 0
                              : strlen(key) >= 4 && o > strlen(key) &&
                                    (strncmp(mkey, key, strlen(key)) == 0 ||
                                     strcmp(mkey + o - strlen(key), key) == 0);
          if (!hit) continue;
          if (common_word(dm->model) && !make &&
              !isupper((unsigned char)text[ws->at[i]]))
            continue;
          model = dm;
          break;
        }
      }
  if (model) {
    set_str(e, "make", model->make);
    set_str(e, "model", model->model);
  } else if (make) {
    set_str(e, "make", make);
  }
}

static void find_year(const words *ws, json_t *e, const char *text) {
  for (size_t i = 0; i < ws->n; i++) {
    const char *w = ws->w[i];
    if (strlen(w) != 4 || !isdigit((unsigned char)w[0])) continue;
    int y = atoi(w);
    size_t at = ws->at[i];
    /* not a money amount ($2024) or a date's year (2027-01-12) */
    if (y < 1990 || y > 2028 || text[at] == ' ' /* masked */ ||
        (at > 0 && text[at - 1] == '$') || text[at + 4] == '-' ||
        text[at + 4] == '/' ||
        (at > 0 && (text[at - 1] == '-' || text[at - 1] == '/')))
      continue;
    json_object_set_new(e, "year", json_integer(y));
    return;
  }
}

static void find_vin(const char *text, json_t *e, json_t *warnings,
                     char *masked) {
  regmatch_t m[4];
  const char *p = text;
  while (regexec(&re_vin, p, 4, m, 0) == 0) {
    char *vin = sub(p, m[2]);
    mask(masked, (size_t)(p - text + m[2].rm_so),
         (size_t)(p - text + m[2].rm_eo));
    if (!vin) return;
    for (char *c = vin; *c; c++)
      *c = (char)toupper((unsigned char)*c);
    int digits = 0;
    for (char *c = vin; *c; c++)
      digits += isdigit((unsigned char)*c) != 0;
    if (digits >= 3 && digits < 17) { /* not a word or a plain number */
      if (dl_vin_valid(vin) && !json_object_get(e, "vin")) {
        set_str(e, "vin", vin);
      } else if (!dl_vin_valid(vin)) {
        char *w = sb_asprintf("%s looks like a VIN but its check digit is "
                              "wrong",
                              vin);
        json_array_append_new(warnings, json_string(w ? w : ""));
        sb_free(w);
      }
    }
    sb_free(vin);
    p += m[2].rm_eo;
  }
}

static int email_local_byte(unsigned char c) {
  return isalnum(c) || c == '.' || c == '_' || c == '%' || c == '+' ||
         c == '-';
}

static int email_domain_byte(unsigned char c) {
  return isalnum(c) || c == '.' || c == '-';
}

/* The first e-mail address: what the regular expression
 * [A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,} finds (leftmost, then
 * longest), scanned by hand around each '@'. glibc's regexec retries the
 * pattern from every start, walking the whole run of address bytes each
 * time: a 60,000-byte word took 5 s on the loop. Here each byte is looked
 * at a bounded number of times (the runs around one '@' end at the next). */
static void find_email(const char *text, json_t *e, char *masked) {
  for (const char *at = strchr(text, '@'); at; at = strchr(at + 1, '@')) {
    const char *from = at;
    while (from > text && email_local_byte((unsigned char)from[-1]))
      from--;
    if (from == at) continue;
    /* the longest domain: some bytes, a dot, two letters or more */
    const char *d = at + 1, *end = NULL;
    size_t letters = 0;
    for (const char *p = d; email_domain_byte((unsigned char)*p); p++) {
      letters = isalpha((unsigned char)*p) ? letters + 1 : 0;
      const char *dot = p - letters; /* the byte before the letters */
      if (letters >= 2 && *dot == '.' && dot > d) end = p + 1;
    }
    if (!end) continue;
    mask(masked, (size_t)(from - text), (size_t)(end - text));
    char *s = sb_asprintf("%.*s", (int)(end - from), from);
    set_str(e, "email", s ? s : "");
    sb_free(s);
    return;
  }
}

static void find_phone_email(const char *text, json_t *e, char *masked) {
  regmatch_t m[8];
  find_email(text, e, masked);
  const char *p = text;
  while (regexec(&re_phone, p, 8, m, 0) == 0) {
    /* not digits inside a VIN or a longer number */
    size_t start = (size_t)m[2].rm_so;
    int in_word = start > 0 && isalpha((unsigned char)p[start - 1]);
    if (!in_word) {
      char area[8], mid[8], last[8];
      char *a = sub(p, m[4]);
      snprintf(area, sizeof area, "%s", a ? a + (a[0] == '(') : "");
      sb_free(a);
      area[3] = '\0';
      a = sub(p, m[5]);
      snprintf(mid, sizeof mid, "%s", a ? a : "");
      sb_free(a);
      a = sub(p, m[6]);
      snprintf(last, sizeof last, "%s", a ? a : "");
      sb_free(a);
      mask(masked, (size_t)(p - text + m[2].rm_so),
           (size_t)(p - text + m[2].rm_eo));
      char *phone = sb_asprintf("(%s) %s-%s", area, mid, last);
      set_str(e, "phone", phone ? phone : "");
      sb_free(phone);
      return;
    }
    p += m[2].rm_eo;
  }
}

/* Money: "$32k", "$32,000", "32.000 €", "32000 dollars", "30 grand",
 * "30 mil", "450 a month". Amounts become budget or monthly_budget. */
static void find_money(const char *text, const words *ws, json_t *e) {
  size_t len = strlen(text);
  for (size_t i = 0; i < len; i++) {
    if (!isdigit((unsigned char)text[i]) ||
        (i > 0 && (isalnum((unsigned char)text[i - 1]) || text[i - 1] == '-' ||
                   text[i - 1] == '/' || text[i - 1] == ':')))
      continue;
    size_t j = i;
    double v = 0;
    int grouped = 0, decimals = 0;
    double frac = 0.1, dec = 0;
    while (j < len) {
      char c = text[j];
      if (isdigit((unsigned char)c)) {
        if (decimals)
          dec += (c - '0') * frac, frac /= 10;
        else
          v = v * 10 + (c - '0');
        j++;
      } else if ((c == ',' || c == '.') && j + 3 < len + 1 &&
                 isdigit((unsigned char)text[j + 1]) &&
                 isdigit((unsigned char)text[j + 2]) &&
                 isdigit((unsigned char)text[j + 3]) &&
                 !isdigit((unsigned char)text[j + 4]) && !decimals) {
        grouped = 1; /* thousands separator: 32,000 or 32.000 */
        j++;
      } else if (c == '.' && !decimals && j + 1 < len &&
                 isdigit((unsigned char)text[j + 1])) {
        decimals = 1;
        j++;
      } else {
        break;
      }
    }
    v += dec;
    int dollar = (i > 0 && text[i - 1] == '$') || (i > 1 && text[i - 2] == '$');
    /* what follows the number */
    size_t k = j;
    while (k < len && text[k] == ' ')
      k++;
    const char *rest = text + k;
    double mult = 1;
    int money = dollar;
    if ((rest[0] == 'k' || rest[0] == 'K') && !isalpha((unsigned char)rest[1]))
      mult = 1000, money = 1;
    else if (strncasecmp(rest, "grand", 5) == 0 ||
             strncasecmp(rest, "thousand", 8) == 0 ||
             strncasecmp(rest, "mil ", 4) == 0 ||
             strncasecmp(rest, "mille", 5) == 0 ||
             strncasecmp(rest, "tausend", 7) == 0)
      mult = 1000, money = 1;
    if (strncmp(rest, "\xe2\x82\xac", 3) == 0 ||
        strncasecmp(rest, "dollar", 6) == 0 ||
        strncasecmp(rest, "usd", 3) == 0 || strncasecmp(rest, "euro", 4) == 0 ||
        strncasecmp(rest, "bucks", 5) == 0)
      money = 1;
    v *= mult;
    /* mileage is not money */
    if (strncasecmp(rest, "mile", 4) == 0 || strncasecmp(rest, "mi ", 3) == 0 ||
        strncasecmp(rest, "km", 2) == 0 ||
        (mult > 1 && rest[0] == 'k' && rest[1] &&
         strncasecmp(rest + 2, "mile", 4) == 0)) {
      i = j;
      continue;
    }
    /* a monthly amount says so within a few words */
    char window[16]; /* "/month", "a month", "per month", "al mes" */
    snprintf(window, sizeof window, "%.15s", rest); /* not strlen(rest) */
    for (char *c = window; *c; c++)
      *c = (char)tolower((unsigned char)*c);
    int monthly = strstr(window, "month") || strstr(window, "/mo") ||
                  strstr(window, "mes") || strstr(window, "mois") ||
                  strstr(window, "monat");
    if (monthly && (money || grouped || v >= 50) && v >= 50 && v < 10000 &&
        !json_object_get(e, "monthly_budget")) {
      json_object_set_new(e, "monthly_budget", amount(v));
    } else if (!monthly && v >= 1000 && v <= 1000000 &&
               (money || grouped || (v >= 5000 && (v < 1990 || v > 2030))) &&
               !json_object_get(e, "budget")) {
      json_object_set_new(e, "budget", amount(v));
    }
    i = j;
  }
  (void)ws;
}

static const char *const months[][4] = {
    /* en, es, fr, de: the first three letters of each are enough in en */
    {"jan", "enero", "janvier", "januar"},
    {"feb", "febrero", "février", "februar"},
    {"mar", "marzo", "mars", "märz"},
    {"apr", "abril", "avril", "april"},
    {"may", "mayo", "mai", "mai"},
    {"jun", "junio", "juin", "juni"},
    {"jul", "julio", "juillet", "juli"},
    {"aug", "agosto", "août", "august"},
    {"sep", "septiembre", "septembre", "september"},
    {"oct", "octubre", "octobre", "oktober"},
    {"nov", "noviembre", "novembre", "november"},
    {"dec", "diciembre", "décembre", "dezember"}};

static int month_of(const char *w) {
  for (int m = 0; m < 12; m++) {
    if (strncmp(w, months[m][0], 3) == 0 && strlen(w) >= 3 &&
        (strlen(w) == 3 || strlen(w) >= 4)) {
      /* "march", "mar" but not "mark"; "may" only as a whole word */
      static const char *const full[] = {"january", "february", "march",
                                         "april",   "may",      "june",
                                         "july",    "august",   "september",
                                         "october", "november", "december"};
      if (strlen(w) == 3 || strncmp(full[m], w, strlen(w)) == 0 ||
          (m == 8 && strcmp(w, "sept") == 0))
        return m + 1;
    }
    for (int l = 1; l < 4; l++)
      if (strcmp(w, months[m][l]) == 0) return m + 1;
  }
  return 0;
}

static int day_number(const char *w) {
  char *end = NULL;
  long d = strtol(w, &end, 10);
  if (end == w || d < 1 || d > 31) return 0;
  if (*end && strcmp(end, "st") && strcmp(end, "nd") && strcmp(end, "rd") &&
      strcmp(end, "th") && strcmp(end, "er"))
    return 0;
  return (int)d;
}

static const char *const weekdays[][4] = {
    {"sunday", "domingo", "dimanche", "sonntag"},
    {"monday", "lunes", "lundi", "montag"},
    {"tuesday", "martes", "mardi", "dienstag"},
    {"wednesday", "miércoles", "mercredi", "mittwoch"},
    {"thursday", "jueves", "jeudi", "donnerstag"},
    {"friday", "viernes", "vendredi", "freitag"},
    {"saturday", "sábado", "samedi", "samstag"}};

static int weekday_of(const char *w) {
  for (int d = 0; d < 7; d++)
    for (int l = 0; l < 4; l++)
      if (strcmp(w, weekdays[d][l]) == 0) return d;
  return -1;
}

static void add_date(json_t *dates, long day) {
  /* past 9999-12-31 a date has no YYYY-MM-DD (it would print as year 0000) */
  if (day > dl_days_from_civil(9999, 12, 31)) return;
  char s[11];
  dl_date_format(day, s);
  size_t i;
  json_t *v;
  json_array_foreach(dates, i,
                     v) if (strcmp(json_string_value(v), s) == 0) return;
  /* keep them sorted */
  for (i = 0; i < json_array_size(dates); i++)
    if (strcmp(json_string_value(json_array_get(dates, i)), s) > 0) break;
  json_array_insert_new(dates, i, json_string(s));
}

/* A month and day without a year: this year, or next if already past. */
static long month_day(int month, int day, long today) {
  int y, m, d;
  dl_civil_from_days(today, &y, &m, &d);
  long z = dl_days_from_civil(y, month, day);
  return z < today ? dl_days_from_civil(y + 1, month, day) : z;
}

static void find_dates(const char *text, const words *ws, long today, json_t *e,
                       char *masked) {
  json_t *dates = json_array();
  regmatch_t m[7];
  const char *p = text;
  while (regexec(&re_iso_date, p, 7, m, 0) == 0) {
    mask(masked, (size_t)(p - text + m[2].rm_so),
         (size_t)(p - text + m[5].rm_eo));
    char *iso = sb_asprintf("%.*s-%.*s-%.*s", (int)(m[2].rm_eo - m[2].rm_so),
                            p + m[2].rm_so, (int)(m[4].rm_eo - m[4].rm_so),
                            p + m[4].rm_so, (int)(m[5].rm_eo - m[5].rm_so),
                            p + m[5].rm_so);
    long day;
    if (iso && dl_date_parse(iso, &day) == 0) add_date(dates, day);
    sb_free(iso);
    p += m[5].rm_eo;
  }
  for (size_t i = 0; i < ws->n; i++) {
    const char *w = ws->w[i];
    int month = month_of(w);
    if (month) { /* "Jan 12", "January 12th" / "12 Jan", "12 de enero" */
      int d = i + 1 < ws->n ? day_number(ws->w[i + 1]) : 0;
      if (!d && i > 0) d = day_number(ws->w[i - 1]);
      if (!d && i > 1 && strcmp(ws->w[i - 1], "de") == 0)
        d = day_number(ws->w[i - 2]);
      if (d) add_date(dates, month_day(month, d, today));
      continue;
    }
    int wd = weekday_of(w);
    if (wd >= 0) {
      int next = i > 0 && (strcmp(ws->w[i - 1], "next") == 0 ||
                           strcmp(ws->w[i - 1], "próximo") == 0 ||
                           strcmp(ws->w[i - 1], "prochain") == 0 ||
                           strcmp(ws->w[i - 1], "nächsten") == 0 ||
                           strcmp(ws->w[i - 1], "nächster") == 0);
      if (!next && i + 1 < ws->n &&
          (strcmp(ws->w[i + 1], "prochain") == 0 ||
           strcmp(ws->w[i + 1], "próximo") == 0))
        next = 1;
      long day;
      if (next) { /* that weekday of next week (weeks start on Monday) */
        long monday = today - ((dl_weekday(today) + 6) % 7) + 7;
        day = monday + (wd + 6) % 7;
      } else { /* the next one after today */
        day = today + 1;
        while (dl_weekday(day) != wd)
          day++;
      }
      add_date(dates, day);
      continue;
    }
    if (strcmp(w, "tomorrow") == 0 || strcmp(w, "demain") == 0 ||
        strcmp(w, "morgen") == 0)
      add_date(dates, today + 1);
    else if (strcmp(w, "today") == 0 || strcmp(w, "hoy") == 0 ||
             strcmp(w, "aujourd'hui") == 0 || strcmp(w, "heute") == 0)
      add_date(dates, today);
  }
  if (json_array_size(dates))
    json_object_set_new(e, "dates", dates);
  else
    json_decref(dates);
}

static void find_name(const char *text, const words *ws, json_t *e) {
  static const char *const intros[] = {
      "my name is", "this is",       "i am",         "i'm",
      "me llamo",   "mi nombre es",  "je m'appelle", "je suis",
      "ich heiße",  "mein name ist", "ich bin",      "name's"};
  for (size_t i = 0; i < ws->n; i++)
    for (size_t k = 0; k < sizeof intros / sizeof intros[0]; k++) {
      if (!gen_phrase_at(ws, i, intros[k])) continue;
      size_t first = i + 1;
      for (const char *c = intros[k]; *c; c++)
        first += *c == ' ';
      char name[96] = "";
      for (size_t j = first; j < ws->n && j < first + 3; j++) {
        const char *orig = text + ws->at[j];
        size_t wl = strlen(ws->w[j]);
        if (!isupper((unsigned char)orig[0]) || dl_make_lookup(ws->w[j])) break;
        if (name[0]) strncat(name, " ", sizeof name - strlen(name) - 1);
        strncat(name, orig,
                wl < sizeof name - strlen(name) - 1
                    ? wl
                    : sizeof name - strlen(name) - 1);
      }
      if (name[0]) {
        set_str(e, "name", name);
        return;
      }
    }
}

static void find_kind(const words *ws, json_t *e) {
  static const char *const bodies[][2] = {
      {"sedan", "sedan"},     {"suv", "suv"},
      {"crossover", "suv"},   {"truck", "truck"},
      {"pickup", "truck"},    {"hatchback", "hatchback"},
      {"coupe", "coupe"},     {"minivan", "van"},
      {"van", "van"},         {"berline", "sedan"},
      {"limousine", "sedan"}, {"camioneta", "suv"},
      {"todoterreno", "suv"}, {"kombi", "van"}};
  static const char *const fuels[][2] = {{"hybrid", "hybrid"},
                                         {"híbrido", "hybrid"},
                                         {"hybride", "hybrid"},
                                         {"electric", "electric"},
                                         {"ev", "electric"},
                                         {"eléctrico", "electric"},
                                         {"électrique", "electric"},
                                         {"elektro", "electric"},
                                         {"elektroauto", "electric"},
                                         {"diesel", "diesel"},
                                         {"gas", "gas"},
                                         {"gasoline", "gas"}};
  for (size_t i = 0; i < ws->n; i++) {
    for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++)
      if (!json_object_get(e, "body") && strcmp(ws->w[i], bodies[b][0]) == 0)
        set_str(e, "body", bodies[b][1]);
    for (size_t f = 0; f < sizeof fuels / sizeof fuels[0]; f++)
      if (!json_object_get(e, "fuel") && strcmp(ws->w[i], fuels[f][0]) == 0)
        set_str(e, "fuel", fuels[f][1]);
  }
}

/* ---- the classification ------------------------------------------------- */

static char *summary_of(const char *intent, json_t *e) {
  static const struct {
    const char *intent, *what;
  } what[] = {{"buy", "wants to buy"},
              {"trade_in", "wants to trade in"},
              {"service", "needs service for"},
              {"parts", "asks about parts for"},
              {"finance", "asks about financing for"},
              {"other", "writes about"}};
  const char *verb = "writes about";
  for (size_t i = 0; i < sizeof what / sizeof what[0]; i++)
    if (strcmp(what[i].intent, intent) == 0) verb = what[i].what;
  const char *make = json_string_value(json_object_get(e, "make"));
  const char *model = json_string_value(json_object_get(e, "model"));
  const char *body = json_string_value(json_object_get(e, "body"));
  json_t *year = json_object_get(e, "year");
  char car[128] = "a";
  if (year)
    snprintf(car + 1, sizeof car - 1, " %lld",
             (long long)json_integer_value(year));
  if (make)
    strncat(car, " ", sizeof car - strlen(car) - 1),
        strncat(car, make, sizeof car - strlen(car) - 1);
  if (model || body)
    strncat(car, " ", sizeof car - strlen(car) - 1),
        strncat(car, model ? model : body, sizeof car - strlen(car) - 1);
  if (!year && !make && !model && !body)
    snprintf(car, sizeof car, "%s",
             strcmp(intent, "other") == 0 ? "something else" : "a vehicle");
  else if (!model && !body)
    strncat(car, " vehicle", sizeof car - strlen(car) - 1);
  const char *name = json_string_value(json_object_get(e, "name"));
  char extra[128] = "";
  double budget = json_number_value(json_object_get(e, "budget"));
  double monthly = json_number_value(json_object_get(e, "monthly_budget"));
  if (budget > 0)
    snprintf(extra, sizeof extra, " with a budget of $%.0f", budget);
  else if (monthly > 0)
    snprintf(extra, sizeof extra, " at about $%.0f a month", monthly);
  json_t *dates = json_object_get(e, "dates");
  char when[32] = "";
  if (json_array_size(dates))
    snprintf(when, sizeof when, " on %s",
             json_string_value(json_array_get(dates, 0)));
  return sb_asprintf("%s %s %s%s%s.", name ? name : "The customer", verb, car,
                     extra, when);
}

json_t *general_classify_rules(const char *text, const char *channel,
                               long today) {
  pthread_once(&re_once, compile_res);
  if (today < 0) dl_date_parse("2027-01-04", &today);
  words ws;
  gen_split(text, &ws);
  if (!ws.buf) return NULL;
  int score[N_INTENTS] = {0};
  for (size_t c = 0; c < sizeof cues / sizeof cues[0]; c++)
    score[cues[c].intent] +=
        cues[c].weight * gen_count_phrase(&ws, cues[c].phrase);
  int best = -1, top = 0, second = 0;
  for (int i = 0; i < N_INTENTS; i++) {
    if (score[i] > top)
      second = top, top = score[i], best = i;
    else if (score[i] > second)
      second = score[i];
  }
  json_t *e = json_object();
  json_t *warnings = json_array();
  char *masked = sb_strdup(text);
  if (!masked) {
    sb_free(ws.buf);
    json_decref(e);
    json_decref(warnings);
    return NULL;
  }
  find_vehicle(text, &ws, e);
  if (re_ok) {
    find_vin(text, e, warnings, masked);
    find_phone_email(text, e, masked);
  }
  find_dates(text, &ws, today, e, masked);
  find_year(&ws, e, masked);
  find_money(masked, &ws, e);
  find_name(text, &ws, e);
  find_kind(&ws, e);
  /* a car named with nothing else to go on is most likely a purchase,
   * unless the customer says it is theirs already */
  int owned = gen_count_phrase(&ws, "my") + gen_count_phrase(&ws, "mi") +
              gen_count_phrase(&ws, "mon") + gen_count_phrase(&ws, "ma") +
              gen_count_phrase(&ws, "mein") + gen_count_phrase(&ws, "meine");
  if (best < 0 && !owned &&
      (json_object_get(e, "model") || json_object_get(e, "budget")))
    best = BUY, top = 1;
  const char *intent = best < 0 ? "other" : intent_names[best];
  double confidence = best < 0 ? 0.3 : (double)top / (top + second + 1.0);
  confidence = floor(confidence * 100 + 0.5) / 100;
  char *summary = summary_of(intent, e);
  json_t *r =
      json_pack("{sssfsossssssssss*}", "intent", intent, "confidence",
                confidence, "entities", e, "sentiment", gen_sentiment_of(&ws),
                "language", gen_language_of(&ws), "method", "rules", "summary",
                summary ? summary : "", "channel", channel);
  if (json_array_size(warnings))
    json_object_set_new(r, "warnings", warnings);
  else
    json_decref(warnings);
  sb_free(summary);
  sb_free(masked);
  sb_free(ws.buf);
  return r;
}
