/* sqlite_keys.c: tenants and API keys in SQLite.
 *
 * A key's row holds its public id, its tenant, a hash of the whole key
 * (computed by auth/; the secret itself never reaches the store), its
 * scopes, and when it expires or was revoked. The tenant must be
 * registered: api_keys references tenants, and the connection enforces
 * foreign keys. Every change to a key moves the one-row key_epoch in the
 * same savepoint, so a server can poll that row cheaply and reload its
 * keys only when some process (the CLI, usually) changed them.
 */
#include <string.h>

#include "store/store_internal.h"

static int step_write(st_conn *c, sqlite3_stmt *st, st_req *q,
                      const char *what) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    return 0;
  }
  int x = sqlite3_extended_errcode(st_conn_db(c));
  int out;
  if (x == SQLITE_CONSTRAINT_PRIMARYKEY || x == SQLITE_CONSTRAINT_UNIQUE)
    out = sb_error_set(&q->res.err, SB_ECONFLICT, "%s %s already exists",
                       q->op == ST_OP_TENANT_CREATE ? "tenant" : "key",
                       q->op == ST_OP_TENANT_CREATE ? q->tenant : q->id);
  else if (x == SQLITE_CONSTRAINT_FOREIGNKEY)
    out = sb_error_set(&q->res.err, SB_ENOENT,
                       "tenant %s is not registered (switchboard tenant "
                       "create %s)",
                       q->tenant, q->tenant);
  else
    out = st_db_error(c, &q->res.err, what);
  sqlite3_reset(st);
  return out;
}

static int bump_epoch(st_conn *c, st_req *q) {
  return step_write(c, st_conn_stmt(c, STMT_KEY_EPOCH_BUMP), q,
                    "moving the key epoch");
}

int st_write_keys(st_conn *c, st_req *q) {
  sqlite3_stmt *st;
  int rc;
  switch (q->op) {
  case ST_OP_TENANT_CREATE:
    st = st_conn_stmt(c, STMT_TENANT_INSERT);
    st_bind_text(st, 1, q->tenant);
    st_bind_text(st, 2, q->doc ? q->doc : "");
    sqlite3_bind_int64(st, 3, q->now_ms);
    return step_write(c, st, q, "creating a tenant");
  case ST_OP_KEY_CREATE:
    st = st_conn_stmt(c, STMT_KEY_INSERT);
    st_bind_text(st, 1, q->id);
    st_bind_text(st, 2, q->tenant);
    st_bind_text(st, 3, q->patch);
    st_bind_text(st, 4, q->doc ? q->doc : "[]");
    sqlite3_bind_int64(st, 5, q->now_ms);
    sqlite3_bind_int64(st, 6, q->expires_ms);
    if ((rc = step_write(c, st, q, "creating a key")) != 0) return rc;
    q->res.count = 1;
    return bump_epoch(c, q);
  case ST_OP_KEY_REVOKE:
    st = st_conn_stmt(c, STMT_KEY_REVOKE);
    st_bind_text(st, 1, q->id);
    sqlite3_bind_int64(st, 2, q->now_ms);
    if ((rc = step_write(c, st, q, "revoking a key")) != 0) return rc;
    if (sqlite3_changes(st_conn_db(c)) == 0) {
      st = st_conn_stmt(c, STMT_KEY_EXISTS);
      st_bind_text(st, 1, q->id);
      int found = sqlite3_step(st) == SQLITE_ROW;
      sqlite3_reset(st);
      q->res.count = 0;
      return found ? 0
                   : sb_error_set(&q->res.err, SB_ENOENT, "key %s not found",
                                  q->id);
    }
    q->res.count = 1;
    return bump_epoch(c, q);
  default:
    return sb_error_set(&q->res.err, SB_EINVAL, "store: not a key write");
  }
}

static int push_key(sb_store_key_rows *out, sqlite3_stmt *st) {
  sb_store_key_row *items =
      sb_realloc(out->items, (out->len + 1) * sizeof *out->items);
  if (!items) return SB_ENOMEM;
  out->items = items;
  sb_store_key_row *k = &items[out->len++];
  memset(k, 0, sizeof *k);
  k->id = st_column_dup(st, 0);
  k->tenant = st_column_dup(st, 1);
  k->hash = st_column_dup(st, 2);
  k->scopes = st_column_dup(st, 3);
  k->created_ms = sqlite3_column_int64(st, 4);
  k->expires_ms = sqlite3_column_int64(st, 5);
  k->revoked_ms = sqlite3_column_int64(st, 6);
  return k->id && k->tenant && k->hash && k->scopes ? 0 : SB_ENOMEM;
}

static int push_tenant(sb_store_tenant_rows *out, sqlite3_stmt *st) {
  sb_store_tenant_row *items =
      sb_realloc(out->items, (out->len + 1) * sizeof *out->items);
  if (!items) return SB_ENOMEM;
  out->items = items;
  sb_store_tenant_row *t = &items[out->len++];
  t->id = st_column_dup(st, 0);
  t->name = st_column_dup(st, 1);
  t->created_ms = sqlite3_column_int64(st, 2);
  return t->id && t->name ? 0 : SB_ENOMEM;
}

int st_read_keys(st_conn *c, st_req *q) {
  sqlite3_stmt *st;
  if (q->op == ST_OP_KEYS_LOAD) {
    /* The epoch first: rows read after it are at least as new, so a
     * change that lands between the two reads shows at the next poll. */
    st = st_conn_stmt(c, STMT_KEY_EPOCH);
    int step = sqlite3_step(st);
    q->res.count = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
      return st_db_error(c, &q->res.err, "reading the key epoch");
    if (q->res.count == q->version) return 0;
    q->res.version = 1;
    st = st_conn_stmt(c, STMT_KEYS_LOAD);
  } else if (q->op == ST_OP_KEY_LIST) {
    st = st_conn_stmt(c, STMT_KEY_LIST);
    st_bind_text(st, 1, q->filter);
  } else {
    st = st_conn_stmt(c, STMT_TENANT_LIST);
  }
  int step, rc = 0;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int prc = q->op == ST_OP_TENANT_LIST ? push_tenant(&q->res.tenants, st)
                                         : push_key(&q->res.keys, st);
    if (prc != 0) {
      rc = sb_error_set(&q->res.err, SB_ENOMEM, "out of memory");
      break;
    }
  }
  if (!rc && step != SQLITE_DONE)
    rc = st_db_error(c, &q->res.err, "reading keys");
  sqlite3_reset(st);
  if (rc) {
    sb_store_key_rows_clear(&q->res.keys);
    sb_store_tenant_rows_clear(&q->res.tenants);
  }
  return rc;
}
