/* service.h: the service desk's logic (dealer-service): recalls by VIN,
 * free service slots, bookings with a labor estimate. */
#ifndef DL_SERVICE_H
#define DL_SERVICE_H

#include "common/agent.h"

/* The labor hours of a service ("oil change", "recall 24V-051"...): the
 * policy service.labor_hours (a name -> hours object, matched as a
 * substring) when it has one that fits, else the built-in table; 1.0 for a
 * service neither knows. req may be NULL (the table alone). */
double svc_labor_hours(dl_request *req, const char *service);

/* The tools (dl_tool_fn). */
json_t *svc_recall_lookup(dl_request *req, json_t *args);
json_t *svc_service_slots(dl_request *req, json_t *args);
json_t *svc_book_service(dl_request *req, json_t *args); /* mutating */

#endif
