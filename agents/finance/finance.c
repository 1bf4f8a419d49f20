/* finance.c: payment quotes and prequalification (see finance.h).
 *
 * Every rule is a policy of the tenant (APR, score floor, minimum down
 * payment and maximum amount by credit band; the terms offered; whether
 * the doc fee is taxed; how much of an income a payment may take), with
 * the defaults below when a policy is missing. Money is computed in
 * doubles and rounded to cents only in the answer, so a quote's parts are
 * each exact to the cent rather than the sum of rounded parts; but the
 * totals are what the customer pays: the monthly payment rounded to the
 * cent, the last payment settling the rest.
 */
#include "finance.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/lookup.h"
#include "common/vin.h"

enum { FIN_BANDS = 4, FIN_MAX_TERMS = 16 };

typedef struct fin_rules {
  const char *band[FIN_BANDS]; /* best first */
  double min_score[FIN_BANDS], apr[FIN_BANDS], min_down_pct[FIN_BANDS],
      max_amount[FIN_BANDS];
  long terms[FIN_MAX_TERMS];
  size_t terms_len;
  int taxable_fees;
  double max_payment_pct; /* of the monthly income */
  double max_dti_pct;     /* all debts, the new payment included */
} fin_rules;

static const fin_rules fin_defaults = {
    .band = {"excellent", "good", "fair", "poor"},
    .min_score = {740, 670, 580, 300},
    .apr = {5.49, 6.99, 10.49, 15.99},
    .min_down_pct = {0, 5, 10, 20},
    .max_amount = {120000, 80000, 45000, 25000},
    .terms = {36, 48, 60, 72, 84},
    .terms_len = 5,
    .taxable_fees = 0,
    .max_payment_pct = 15,
    .max_dti_pct = 45,
};

double fin_monthly_payment(double principal, double apr_pct, int months) {
  if (months <= 0) return 0;
  double r = apr_pct / 1200.0;
  if (r == 0) return principal / months;
  return principal * r / (1.0 - pow(1.0 + r, -months));
}

double fin_principal_for_payment(double payment, double apr_pct, int months) {
  if (months <= 0) return 0;
  double r = apr_pct / 1200.0;
  if (r == 0) return payment * months;
  return payment * (1.0 - pow(1.0 + r, -months)) / r;
}

double fin_final_payment(double principal, double payment, double apr_pct,
                         int months) {
  double r = apr_pct / 1200.0, balance = dl_cents(principal);
  for (int k = 1; k < months; k++)
    balance = dl_cents(balance + dl_cents(balance * r) - payment);
  return dl_cents(balance + dl_cents(balance * r));
}

/* policy[key][band] for each band into out, when it is a number. */
static void rules_by_band(dl_request *req, const char *key,
                          double out[FIN_BANDS]) {
  json_t *p = dl_policy(req, key);
  for (int i = 0; i < FIN_BANDS; i++) {
    json_t *v = json_object_get(p, fin_defaults.band[i]);
    if (json_is_number(v)) out[i] = json_number_value(v);
  }
  json_decref(p);
}

static void rules_load(dl_request *req, fin_rules *r) {
  *r = fin_defaults;
  rules_by_band(req, "finance.bands", r->min_score);
  rules_by_band(req, "finance.apr", r->apr);
  rules_by_band(req, "finance.min_down_pct", r->min_down_pct);
  rules_by_band(req, "finance.max_amount", r->max_amount);
  json_t *p = dl_policy(req, "finance.terms");
  if (json_is_array(p) && json_array_size(p) > 0) {
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(p, i, v) {
      if (json_is_integer(v) && json_integer_value(v) > 0 && n < FIN_MAX_TERMS)
        r->terms[n++] = (long)json_integer_value(v);
    }
    if (n) r->terms_len = n;
  }
  json_decref(p);
  p = dl_policy(req, "finance.taxable_fees");
  if (json_is_boolean(p)) r->taxable_fees = json_is_true(p);
  json_decref(p);
  p = dl_policy(req, "finance.affordability");
  json_t *v = json_object_get(p, "max_payment_pct");
  if (json_is_number(v)) r->max_payment_pct = json_number_value(v);
  v = json_object_get(p, "max_dti_pct");
  if (json_is_number(v)) r->max_dti_pct = json_number_value(v);
  json_decref(p);
}

/* The band a score falls in: the highest floor it reaches, else the
 * lowest band. */
static int band_of_score(const fin_rules *r, long score) {
  int best = FIN_BANDS - 1; /* below every floor: the lowest band */
  for (int i = 0; i < FIN_BANDS; i++)
    if (score >= r->min_score[i] &&
        (best == FIN_BANDS - 1 || r->min_score[i] > r->min_score[best]))
      best = i;
  return best;
}

/* The credit band from credit_band or credit_score (default good): its
 * index, or -1 after dl_invalid. *score is the score given, or -1. Both
 * given must agree: which one to believe is not ours to guess. */
static int read_band(dl_request *req, json_t *args, const fin_rules *r,
                     long *score) {
  int ok = 1;
  const char *name = dl_arg_str(req, args, "credit_band", NULL, &ok);
  *score = dl_arg_int(req, args, "credit_score", -1, &ok);
  if (!ok) return -1;
  int by_score = -1;
  if (*score != -1) {
    if (*score < 300 || *score > 850) {
      dl_invalid(req, "argument 'credit_score' must be between 300 and 850");
      return -1;
    }
    by_score = band_of_score(r, *score);
  }
  if (!name) return by_score >= 0 ? by_score : 1; /* good */
  int by_name = -1;
  for (int i = 0; i < FIN_BANDS; i++)
    if (strcasecmp(name, r->band[i]) == 0) by_name = i;
  if (by_name < 0) {
    dl_invalid(req,
               "argument 'credit_band' must be excellent, good, fair "
               "or poor, not \"%.32s\"",
               name);
    return -1;
  }
  if (by_score >= 0 && by_score != by_name) {
    dl_invalid(req,
               "arguments 'credit_score' (%ld: %s credit) and 'credit_band' "
               "(%s) disagree: give one, or both alike",
               *score, r->band[by_score], r->band[by_name]);
    return -1;
  }
  return by_name;
}

/* The term_months argument (default 60), which must be offered: the term,
 * or -1 after dl_invalid listing the terms. */
static long read_term(dl_request *req, json_t *args, const fin_rules *r) {
  int ok = 1;
  long term = dl_arg_int(req, args, "term_months", 60, &ok);
  if (!ok) return -1;
  for (size_t i = 0; i < r->terms_len; i++)
    if (r->terms[i] == term) return term;
  char offered[128] = "";
  size_t len = 0;
  for (size_t i = 0; i < r->terms_len && len < sizeof offered; i++)
    len += (size_t)snprintf(offered + len, sizeof offered - len, "%s%ld",
                            i ? ", " : "", r->terms[i]);
  dl_invalid(req,
             "argument 'term_months': %ld months is not offered "
             "(terms: %s)",
             term, offered);
  return -1;
}

/* The inventory vehicle of the vin argument (new reference), or NULL after
 * dl_invalid / dl_fail. */
static json_t *read_vehicle(dl_request *req, const char *vin) {
  json_t *v;
  int found = dl_row_one(req,
                         "SELECT vin, year, make, model, trim, price, "
                         "dealership_id FROM vehicles WHERE vin = ?",
                         vin, &v);
  if (found == 0)
    dl_invalid(req,
               "argument 'vin': %s is not in this dealer group's "
               "inventory (give 'price' instead)",
               vin);
  return v;
}

json_t *fin_payment_quote(dl_request *req, json_t *args) {
  fin_rules r;
  rules_load(req, &r);
  int ok = 1;
  double price = dl_arg_num(req, args, "price", NAN, &ok);
  double trade = dl_arg_num(req, args, "trade_in", 0, &ok);
  double down = dl_arg_num(req, args, "down_payment", NAN, &ok);
  double apr = dl_arg_num(req, args, "apr", NAN, &ok);
  const char *dealer_arg = dl_arg_str(req, args, "dealership", NULL, &ok);
  if (!ok) return NULL;
  char vin[DL_VIN_LEN + 1];
  int has_vin = dl_vin_arg(req, args, "vin", 0, vin);
  if (has_vin < 0) return NULL;
  if (!has_vin && isnan(price))
    return dl_invalid(req, "one of 'price' or 'vin' is required");
  long score;
  int band = read_band(req, args, &r, &score);
  long term = band < 0 ? -1 : read_term(req, args, &r);
  if (term < 0) return NULL;

  json_t *vehicle = NULL, *dealer = NULL, *out = NULL;
  if (has_vin) {
    vehicle = read_vehicle(req, vin);
    if (!vehicle) return NULL;
    /* A price given wins: the one negotiated rather than the sticker. */
    if (isnan(price))
      price = json_number_value(json_object_get(vehicle, "price"));
    if (!dealer_arg)
      dealer_arg = json_string_value(json_object_get(vehicle, "dealership_id"));
  }
  if (!isfinite(price) || price <= 0) {
    dl_invalid(req, "argument 'price' must be a positive amount");
    goto done;
  }
  if (!isfinite(trade) || trade < 0) {
    dl_invalid(req, "argument 'trade_in' must not be negative");
    goto done;
  }
  if (trade > price) {
    dl_invalid(req,
               "argument 'trade_in' ($%.2f) is more than the price "
               "($%.2f)",
               trade, price);
    goto done;
  }
  double min_down = price * r.min_down_pct[band] / 100.0;
  if (isnan(down)) down = min_down;
  if (!isfinite(down) || down < 0) {
    dl_invalid(req, "argument 'down_payment' must not be negative");
    goto done;
  }
  if (down > price) {
    dl_invalid(req,
               "argument 'down_payment' ($%.2f) is more than the price "
               "($%.2f)",
               down, price);
    goto done;
  }
  if (isnan(apr)) apr = r.apr[band];
  if (!isfinite(apr) || apr < 0 || apr > 40) {
    dl_invalid(req, "argument 'apr' must be a percentage between 0 and 40");
    goto done;
  }
  dealer = dl_dealership(req, "dealership", dealer_arg);
  if (!dealer) goto done;

  double rate = json_number_value(json_object_get(dealer, "sales_tax_rate"));
  double doc = json_number_value(json_object_get(dealer, "doc_fee"));
  double reg = json_number_value(json_object_get(dealer, "registration_fee"));
  double tax = rate * (price - trade + (r.taxable_fees ? doc : 0));
  double financed = price - trade - down + tax + doc + reg;
  if (financed < 0) {
    dl_invalid(req,
               "argument 'down_payment': with the trade-in it is more "
               "than the price with taxes and fees ($%.2f)",
               price - trade + tax + doc + reg);
    goto done;
  }
  /* The totals from the payment the customer pays (rounded), not the
   * exact one: 60 x 616.59, not 60 x 616.592... */
  double monthly = dl_cents(fin_monthly_payment(financed, apr, (int)term));
  double final = fin_final_payment(financed, monthly, apr, (int)term);
  double total = dl_cents(monthly * (double)(term - 1) + final);
  out = json_pack(
      "{sf sf sf sf sf sf s{sfsf} sf sf sI sf sf sf ss ss}", "price",
      dl_cents(price), "trade_in", dl_cents(trade), "down_payment",
      dl_cents(down), "min_down_payment", dl_cents(min_down), "sales_tax",
      dl_cents(tax), "sales_tax_rate", rate, "fees", "doc", dl_cents(doc),
      "registration", dl_cents(reg), "amount_financed", dl_cents(financed),
      "apr", apr, "term_months", (json_int_t)term, "monthly_payment",
      monthly, "total_interest", dl_cents(total - dl_cents(financed)),
      "total_of_payments", total, "credit_band", r.band[band],
      "dealership", json_string_value(json_object_get(dealer, "id")));
  if (out && final != monthly) /* the last payment settles the cents */
    json_object_set_new(out, "final_payment", json_real(final));
  if (out && score >= 0)
    json_object_set_new(out, "credit_score", json_integer(score));
  if (out && vehicle) {
    json_object_del(vehicle, "dealership_id");
    json_object_set(out, "vehicle", vehicle);
  }
  if (!out) dl_fail(req, "out of memory");
done:
  json_decref(vehicle);
  json_decref(dealer);
  return out;
}

json_t *fin_prequalify(dl_request *req, json_t *args) {
  fin_rules r;
  rules_load(req, &r);
  int ok = 1;
  double income = dl_arg_num(req, args, "monthly_income", NAN, &ok);
  double debts = dl_arg_num(req, args, "monthly_debts", 0, &ok);
  double requested = dl_arg_num(req, args, "requested_amount", NAN, &ok);
  if (!ok) return NULL;
  long score;
  int band = read_band(req, args, &r, &score);
  long term = band < 0 ? -1 : read_term(req, args, &r);
  if (term < 0) return NULL;
  if (!isnan(income) && (!isfinite(income) || income < 0))
    return dl_invalid(req, "argument 'monthly_income' must not be negative");
  if (!isfinite(debts) || debts < 0)
    return dl_invalid(req, "argument 'monthly_debts' must not be negative");
  if (!isnan(requested) && (!isfinite(requested) || requested <= 0))
    return dl_invalid(req, "argument 'requested_amount' must be a positive "
                           "amount");

  json_t *reasons = json_array();
  int approved = 1;
  const char *name = r.band[band];
  double apr = r.apr[band];
  if (score < 0 && !json_object_get(args, "credit_band"))
    dl_reason(reasons, "no credit score given: %s credit assumed", name);
  else if (score >= 0 && score < r.min_score[FIN_BANDS - 1]) {
    approved = 0;
    dl_reason(reasons, "credit score %ld is below the lowest band (%.0f)",
              score, r.min_score[FIN_BANDS - 1]);
  } else if (score >= 0)
    dl_reason(reasons, "credit score %ld: %s credit (%.0f and up), %.2f%% APR",
              score, name, r.min_score[band], apr);
  else
    dl_reason(reasons, "%s credit: %.2f%% APR", name, apr);

  double max_amount = r.max_amount[band];
  json_t *max_payment = json_null();
  if (!isnan(income)) {
    double by_income = income * r.max_payment_pct / 100.0;
    double by_dti = income * r.max_dti_pct / 100.0 - debts;
    double pay = fmax(0, fmin(by_income, by_dti));
    json_decref(max_payment);
    max_payment = json_real(dl_cents(pay));
    if (pay <= 0) {
      approved = 0;
      dl_reason(reasons,
                "monthly debts of $%.2f already take the %.0f%% of "
                "income lenders allow",
                debts, r.max_dti_pct);
      max_amount = 0;
    } else {
      double afford = floor(fin_principal_for_payment(pay, apr, (int)term));
      dl_reason(reasons,
                "a payment of up to $%.2f a month (%.0f%% of income, "
                "%.0f%% with debts) repays $%.0f over %ld months",
                pay, r.max_payment_pct, r.max_dti_pct, afford, term);
      if (afford < max_amount) max_amount = afford;
    }
  } else {
    dl_reason(reasons,
              "no income given: the limit is the group's maximum for "
              "%s credit",
              name);
  }
  /* A limit that rounds down to nothing is no approval, even when the
   * payment the income allows is a few cents above zero. */
  if (approved && max_amount < 1) {
    approved = 0;
    dl_reason(reasons, "nothing can be financed: the limit is $0");
  }
  if (!isnan(requested)) {
    if (requested > max_amount) {
      approved = 0;
      dl_reason(reasons,
                "the requested $%.2f is more than the $%.0f that can "
                "be financed",
                requested, max_amount);
    } else {
      dl_reason(reasons, "the requested $%.2f is within the $%.0f limit",
                requested, max_amount);
    }
  }
  json_t *out = json_pack("{sb ss sf sf sf so sI so}", "approved", approved,
                          "credit_band", name, "apr", apr, "max_amount",
                          max_amount, "min_down_pct", r.min_down_pct[band],
                          "max_monthly_payment", max_payment, "term_months",
                          (json_int_t)term, "reasons", reasons);
  if (!out) return dl_fail(req, "out of memory");
  if (score >= 0) json_object_set_new(out, "credit_score", json_integer(score));
  if (!isnan(requested))
    json_object_set_new(out, "requested_amount",
                        json_real(dl_cents(requested)));
  return out;
}
