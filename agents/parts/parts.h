/* parts.h: the parts counter's logic (dealer-parts): finding parts that
 * fit a vehicle, their stock across the group, and orders. */
#ifndef DL_PARTS_H
#define DL_PARTS_H

#include "common/agent.h"

/* The tools (dl_tool_fn). */
json_t *parts_find(dl_request *req, json_t *args);
json_t *parts_availability(dl_request *req, json_t *args);
json_t *parts_order(dl_request *req, json_t *args); /* mutating */

#endif
