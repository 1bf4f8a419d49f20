/* fuzz_rpc.c: libFuzzer target for the JSON-RPC front door (src/rpc/rpc.c).
 *
 * Bytes go through sb_rpc_parse under small limits (so the size and depth
 * checks are hit often), every message object through sb_rpc_classify, and
 * whatever classifies is answered with the builders and dumped, the way a
 * transport would. Crashes, leaks (ASan) and UB (UBSan) are the findings;
 * the invariants below turn silent misclassification into crashes too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "rpc/rpc.h"

static void check(int cond) {
  if (!cond) abort();
}

static void handle_one(json_t *msg) {
  sb_rpc_msg m;
  sb_error err = {0};
  int rc = sb_rpc_classify(msg, &m, &err);
  json_t *reply = NULL;
  if (rc != 0) {
    check(rc == SB_RPC_INVALID_REQUEST && err.code == rc && err.msg[0]);
    check(!m.id || sb_rpc_id_valid(m.id));
    reply = sb_rpc_error_new(m.id, rc, err.msg, NULL);
  } else {
    check(m.root == msg);
    switch (m.kind) {
    case SB_RPC_REQUEST:
      check(m.method && m.method[0] && sb_rpc_id_valid(m.id));
      check(!m.params || json_is_object(m.params));
      reply = sb_rpc_result_new(m.id, json_pack("{s:s}", "echo", m.method));
      break;
    case SB_RPC_NOTIFICATION:
      check(m.method && m.method[0] && !m.id);
      reply = sb_rpc_notification_new(m.method, json_incref(m.params));
      break;
    case SB_RPC_RESPONSE:
      check(!m.method && (!m.result != !m.error));
      check(m.error || sb_rpc_id_valid(m.id));
      if (m.id) reply = sb_rpc_request_new(m.id, "ping", NULL);
      break;
    default: check(0);
    }
  }
  if (reply) {
    size_t len = 0;
    char *s = sb_rpc_dump(reply, &len);
    check(s && strlen(s) == len);
    /* what we emit must parse back as a message */
    json_t *back = NULL;
    check(sb_rpc_parse(s, len, NULL, &back, NULL) == 0 && json_is_object(back));
    json_decref(back);
    sb_free(s);
    json_decref(reply);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int initialised;
  if (!initialised) {
    sb_core_init();
    initialised = 1;
  }
  sb_rpc_limits limits = {.max_bytes = 16 * 1024, .max_depth = 16};
  json_t *root = NULL;
  sb_error err = {0};
  int rc = sb_rpc_parse((const char *)data, size, &limits, &root, &err);
  if (rc != 0) {
    check(!root && err.code == rc);
    check(rc == SB_RPC_PARSE_ERROR || rc == SB_RPC_INVALID_REQUEST);
    return 0;
  }
  if (json_is_array(root)) {
    for (size_t i = 0; i < json_array_size(root); i++)
      handle_one(json_array_get(root, i));
  } else {
    check(json_is_object(root));
    handle_one(root);
  }
  json_decref(root);
  return 0;
}
