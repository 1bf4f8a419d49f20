/* finance.h: the finance desk's logic (dealer-finance): payment quotes and
 * prequalification under the dealer group's finance.* policies. */
#ifndef DL_FINANCE_H
#define DL_FINANCE_H

#include "common/agent.h"

/* The monthly payment that repays `principal` in `months` at `apr_pct`
 * percent a year, unrounded: P·r / (1 − (1 + r)^−n), r = APR / 1200;
 * P / n at 0%. */
double fin_monthly_payment(double principal, double apr_pct, int months);
/* The principal a monthly `payment` repays in `months` at `apr_pct`
 * (the inverse of fin_monthly_payment), unrounded. */
double fin_principal_for_payment(double payment, double apr_pct, int months);
/* The last of `months` payments of `payment` (in cents, as the customer
 * pays them) on `principal` (cents): each month's interest is rounded to
 * the cent and the last payment settles what is left, so the payments
 * add up to the principal and its interest exactly. */
double fin_final_payment(double principal, double payment, double apr_pct,
                         int months);

/* The tools (dl_tool_fn). */
json_t *fin_payment_quote(dl_request *req, json_t *args);
json_t *fin_prequalify(dl_request *req, json_t *args);

#endif
