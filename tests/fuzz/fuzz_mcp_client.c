/* fuzz_mcp_client.c: libFuzzer target for the MCP client (src/mcp/client.c)
 * facing a hostile agent, and for the public names of the tools an agent
 * lists (sb_gateway_tool_names).
 *
 * An agent is a third party: whatever it sends, in whatever order, must
 * not crash switchboard, answer a request twice or never, or make an
 * answer look like one of switchboard's own failures. Each input is one
 * conversation with a fresh client:
 *
 *   byte 0   bits 0-1 the era preference (auto, modern, legacy); bit 2 the
 *            client's sends fail from the start; bit 3 the agent's own
 *            requests go unanswered (else answered, by their first
 *            letter, with a result or an error)
 *   rest     lines. A line starting with one of these letters is an act of
 *            switchboard's side:
 *              R  send tools/call (with progress), to be answered
 *              C  cancel the newest request still waiting
 *              F  the transport says the oldest waiting request failed:
 *                 the next two bytes pick the outcome and whether the
 *                 session ended
 *              L  the transport is lost
 *              K  connect again
 *              S  sends fail from now on / work again (toggles)
 *              N  the rest of the line (JSON) is a tools/list result's
 *                 tools: name them for the main endpoint with the next
 *                 byte as the length limit
 *            any other line is what the agent sent (parsed as a transport
 *            would, sb_rpc_parse with small limits) and goes to
 *            sb_mcp_client_receive.
 *
 * The loop never runs during a conversation (deadlines would make runs
 * depend on the clock). At the end the client is freed and the loop run
 * once without waiting, so closed timers are released. Findings: crashes,
 * leaks (ASan), UB (UBSan), and the checks below: every request's callback
 * runs exactly once; an outcome decided here carries an error made here
 * (code and message, no data) and no result; an answer carries exactly one
 * of result and error; names are unique, within the limit and in the
 * allowed character set.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "gateway/gateway.h"
#include "mcp/mcp.h"
#include "rpc/rpc.h"

#define MAX_REQS 32

static void check(int cond) {
  if (!cond) abort();
}

typedef struct slot {
  sb_mcp_request *r; /* NULL once its callback has run */
  int calls;
} slot;

typedef struct conv {
  sb_mcp_client *client;
  int send_fails;
  int ignore_agent_requests;
  slot reqs[MAX_REQS];
  size_t nreqs;
  int connects, connect_answers;
} conv;

static int tr_send(void *t, json_t *msg) {
  conv *cv = t;
  check(json_is_object(msg));
  size_t len = 0;
  char *text = sb_rpc_dump(msg, &len); /* what would go on the wire */
  check(text != NULL);
  sb_free(text);
  return cv->send_fails ? SB_EIO : 0;
}

static void check_answer(sb_mcp_outcome outcome, json_t *result,
                         json_t *error) {
  check(!result != !error);
  if (outcome == SB_MCP_ANSWERED) return;
  check(outcome <= SB_MCP_REFUSED);
  check(error && !result);
  check(json_is_integer(json_object_get(error, "code")));
  check(json_is_string(json_object_get(error, "message")));
  check(!json_object_get(error, "data"));
}

static void on_answer(void *ud, sb_mcp_outcome outcome, json_t *result,
                      json_t *error) {
  slot *s = ud;
  check(++s->calls == 1);
  s->r = NULL;
  check_answer(outcome, result, error);
}

static void on_progress(void *ud, json_t *params) {
  slot *s = ud;
  check(s->calls == 0 && json_is_object(params));
}

static void on_connected(void *ud, sb_mcp_outcome outcome, json_t *result,
                         json_t *error) {
  conv *cv = ud;
  cv->connect_answers++;
  check(cv->connect_answers <= cv->connects);
  check_answer(outcome, result, error);
}

static void on_note(void *ud, const char *method, json_t *params) {
  (void)ud;
  check(method && method[0]);
  check(!params || json_is_object(params));
}

static void on_agent_request(void *ud, json_t *id, const char *method,
                             json_t *params, sb_mcp_request *related,
                             int guessed) {
  conv *cv = ud;
  (void)params;
  (void)related;
  (void)guessed;
  check(sb_rpc_id_valid(id) && method && method[0]);
  if (cv->ignore_agent_requests) return;
  if (method[0] & 1)
    sb_mcp_client_respond(cv->client, id, json_pack("{ss}", "ok", method), NULL);
  else
    sb_mcp_client_respond(cv->client, id, NULL,
                          json_pack("{siss}", "code", -32601, "message", "no"));
}

static void on_session_expired(void *ud) {
  conv *cv = ud;
  check(!sb_mcp_client_connected(cv->client));
}

static void start_connect(conv *cv) {
  cv->connects++;
  if (sb_mcp_client_connect(cv->client, 30000, on_connected, cv) != 0)
    cv->connects--; /* already connecting: refused, no callback */
}

/* The newest (newest = 1) or oldest request still waiting, or NULL. */
static slot *waiting(conv *cv, int newest) {
  for (size_t k = 0; k < cv->nreqs; k++) {
    slot *s = &cv->reqs[newest ? cv->nreqs - 1 - k : k];
    if (s->r) return s;
  }
  return NULL;
}

static void act_request(conv *cv) {
  if (cv->nreqs == MAX_REQS) return;
  slot *s = &cv->reqs[cv->nreqs++];
  s->r = sb_mcp_client_request(
      cv->client, "tools/call",
      json_pack("{sss{si}}", "name", "echo", "arguments", "n", (int)cv->nreqs),
      60000, on_progress, on_answer, s);
  if (s->r) check(s->calls == 0);
  else check(s->calls == 1);
}

static void act_failed(conv *cv, const uint8_t *p, size_t n) {
  slot *s = waiting(cv, 0);
  if (!s) return;
  static const sb_mcp_outcome outcomes[] = {SB_MCP_UNSENT, SB_MCP_LOST,
                                            SB_MCP_SESSION_EXPIRED};
  sb_mcp_outcome o = outcomes[(n > 1 ? p[1] : 0) % 3];
  int ended = n > 2 && (p[2] & 1);
  json_t *id = json_integer(sb_mcp_request_id(s->r));
  sb_mcp_client_request_failed(cv->client, id, o, ended, "fuzz: failed");
  json_decref(id);
  check(s->calls == 1);
}

static void act_names(const uint8_t *p, size_t n) {
  if (n < 2) return;
  size_t max_len = p[1];
  json_t *tools = sb_json_loadb((const char *)p + 2, n - 2, 0, NULL);
  /* As pool.c gives them: [[agent id, tool name]...], two agents. */
  json_t *pairs = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    const char *name = json_string_value(json_object_get(t, "name"));
    if (name)
      json_array_append_new(pairs,
                            json_pack("[ss]", i & 1 ? "sales" : "a__b", name));
  }
  json_t *names = sb_gateway_tool_names(pairs, max_len);
  if (names) {
    check(json_object_size(names) == json_array_size(pairs)); /* one each */
    const char *pub;
    json_t *v;
    json_object_foreach(names, pub, v) {
      size_t len = strlen(pub);
      size_t limit = max_len == 0 ? SB_GATEWAY_TOOL_NAME_MAX
                     : max_len < SB_GATEWAY_TOOL_NAME_MIN
                         ? SB_GATEWAY_TOOL_NAME_MIN
                         : max_len;
      check(len > 0 && len <= limit);
      for (size_t k = 0; k < len; k++) {
        char c = pub[k];
        check((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.');
      }
    }
  }
  json_decref(names);
  json_decref(pairs);
  json_decref(tools);
}

static void agent_says(conv *cv, const uint8_t *p, size_t n) {
  sb_rpc_limits lim = {.max_bytes = 4096, .max_depth = 16};
  sb_error err = {0};
  json_t *msg = NULL;
  if (sb_rpc_parse((const char *)p, n, &lim, &msg, &err) != 0) return;
  sb_mcp_client_receive(cv->client, msg);
  json_decref(msg);
}

static void line(conv *cv, const uint8_t *p, size_t n) {
  if (n == 0) return;
  switch (p[0]) {
  case 'R': act_request(cv); break;
  case 'C': {
    slot *s = waiting(cv, 1);
    if (s) {
      sb_mcp_request_cancel(s->r, "fuzz");
      check(s->calls == 1);
    }
    break;
  }
  case 'F': act_failed(cv, p, n); break;
  case 'L':
    sb_mcp_client_transport_lost(cv->client, "fuzz: lost");
    check(!waiting(cv, 0));
    break;
  case 'K': start_connect(cv); break;
  case 'S': cv->send_fails = !cv->send_fails; break;
  case 'N': act_names(p, n); break;
  default: agent_says(cv, p, n);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uv_loop_t loop;
  static int inited;
  if (!inited) {
    uv_loop_init(&loop);
    sb_log_set_level(SB_LOG_ERROR);
    inited = 1;
  }
  if (size == 0) return 0;
  conv cv = {0};
  cv.send_fails = data[0] & 4;
  cv.ignore_agent_requests = (data[0] & 8) != 0;
  json_t *caps = json_pack("{s{}s{}}", "sampling", "elicitation");
  sb_mcp_client_options o = {
      .loop = &loop,
      .name = "fuzz-agent",
      .transport = {.send = tr_send, .t = &cv},
      .events = {.on_notification = on_note,
                 .on_agent_request = on_agent_request,
                 .on_session_expired = on_session_expired,
                 .ud = &cv},
      .era = (sb_mcp_client_era_pref)((data[0] & 3) % 3),
      .capabilities = caps,
  };
  cv.client = sb_mcp_client_new(&o);
  json_decref(caps);
  check(cv.client != NULL);
  start_connect(&cv);

  const uint8_t *p = data + 1, *end = data + size;
  while (p < end) {
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    line(&cv, p, n);
    p += n + 1;
  }

  sb_mcp_client_free(cv.client); /* fails whatever still waits */
  for (size_t k = 0; k < cv.nreqs; k++) check(cv.reqs[k].calls == 1);
  uv_run(&loop, UV_RUN_NOWAIT);
  return 0;
}
