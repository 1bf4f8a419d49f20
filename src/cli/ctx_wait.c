/* ctx_wait.c: the context manager for one-shot commands.
 *
 * The CLI has no server loop, so it runs one of its own: open the store on
 * it, start one asynchronous manager operation, and run the loop until
 * that operation's callback has run. Nothing else shares this loop, so
 * running it here blocks nobody.
 */
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "ctx/ctx.h"
#include "store/store.h"

int sb_cli_ctx_open(sb_cli_ctx *c, const struct sb_config *cfg, sb_error *err) {
  memset(c, 0, sizeof *c);
  int rc = uv_loop_init(&c->loop);
  if (rc != 0)
    return sb_error_set(err, SB_EIO, "cannot create an event loop: %s",
                        uv_strerror(rc));
  c->loop_inited = 1;
  /* Every command here reads: a store that is not there is an error. */
  sb_store_options so = {.path = cfg->store_path,
                         .loop = &c->loop,
                         .readers = 1,
                         .must_exist = 1,
                         .check = (sb_store_check)cfg->store_check_on_start};
  if (!(c->store = sb_store_open_sqlite(&so, err))) goto fail;
  sb_ctx_manager_options mo = {.store = c->store,
                               .snapshot_every = cfg->ctx_snapshot_every,
                               .max_doc_bytes = cfg->ctx_max_bytes};
  if (!(c->m = sb_ctx_manager_new(&mo))) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    goto fail;
  }
  return 0;
fail:
  sb_cli_ctx_close(c);
  return err && err->code ? err->code : SB_EIO;
}

void sb_cli_ctx_done(void *ud, const sb_ctx_result *res) {
  sb_cli_ctx *c = ud;
  c->done = 1;
  c->rc = res->rc;
  c->err = res->err;
  c->out = json_incref(res->doc);
  c->count = res->count;
}

int sb_cli_ctx_wait(sb_cli_ctx *c, int submitted, json_t **out, sb_error *err) {
  *out = NULL;
  if (submitted != 0) return submitted; /* err was filled by the call */
  while (!c->done && uv_run(&c->loop, UV_RUN_ONCE) != 0) {
  }
  if (!c->done) return sb_error_set(err, SB_EIO, "the store never answered");
  c->done = 0;
  if (c->rc != 0) {
    if (err) *err = c->err;
    return c->rc;
  }
  *out = c->out;
  c->out = NULL;
  return 0;
}

void sb_cli_ctx_close(sb_cli_ctx *c) {
  sb_ctx_manager_free(c->m);
  sb_store_close(c->store);
  json_decref(c->out);
  c->m = NULL;
  c->store = NULL;
  c->out = NULL;
  if (c->loop_inited) {
    uv_run(&c->loop, UV_RUN_DEFAULT); /* let the store's handle close */
    uv_loop_close(&c->loop);
    c->loop_inited = 0;
  }
}
