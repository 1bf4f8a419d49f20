/* sqlite_agents.c: agents registered, replaced or removed through the
 * API, one row per agent id (the last change wins; a NULL definition is a
 * removal). The server reads them once, when the store opens, and then
 * keeps them in memory; every later change is a write here before it is
 * acknowledged.
 */
#include <string.h>

#include "store/store_internal.h"

int st_write_agent(st_conn *c, st_req *q) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_AGENT_PUT);
  st_bind_text(st, 1, q->id);
  st_bind_text(st, 2, q->tenant);
  if (q->doc) st_bind_text(st, 3, q->doc);
  else sqlite3_bind_null(st, 3);
  sqlite3_bind_int64(st, 4, q->now_ms);
  int rc = sqlite3_step(st) == SQLITE_DONE
               ? 0
               : st_db_error(c, &q->res.err, "writing an agent");
  sqlite3_reset(st);
  return rc ? rc : st_write_extras(c, q); /* its audit event */
}

static int push_agent(sb_store_agent_rows *out, sqlite3_stmt *st) {
  sb_store_agent_row *items =
      sb_realloc(out->items, (out->len + 1) * sizeof *out->items);
  if (!items) return SB_ENOMEM;
  out->items = items;
  sb_store_agent_row *a = &items[out->len++];
  memset(a, 0, sizeof *a);
  a->id = st_column_dup(st, 0);
  a->tenant = st_column_dup(st, 1);
  int removed = sqlite3_column_type(st, 2) == SQLITE_NULL;
  a->definition = removed ? NULL : st_column_dup(st, 2);
  a->updated_ms = sqlite3_column_int64(st, 3);
  return a->id && a->tenant && (removed || a->definition) ? 0 : SB_ENOMEM;
}

int st_read_agents(st_conn *c, sb_store_agent_rows *out, sb_error *err) {
  sqlite3_stmt *st = st_conn_stmt(c, STMT_AGENTS_LIST);
  int step, rc = 0;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (push_agent(out, st) != 0) {
      rc = sb_error_set(err, SB_ENOMEM, "out of memory");
      break;
    }
  }
  if (!rc && step != SQLITE_DONE) rc = st_db_error(c, err, "reading agents");
  sqlite3_reset(st);
  if (rc) sb_store_agent_rows_clear(out);
  return rc;
}
