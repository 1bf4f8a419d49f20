/* outcome.c: how a call ended, as a C value, and what that allows
 * (sb_gateway_decide: the breaker, a retry, a fallback). Pure. */
#include "gateway/gateway_internal.h"

sb_gateway_outcome gw_outcome_of(sb_mcp_outcome o) {
  switch (o) {
  case SB_MCP_ANSWERED: return SB_GATEWAY_ANSWERED;
  case SB_MCP_UNSENT: return SB_GATEWAY_UNSENT;
  case SB_MCP_LOST: return SB_GATEWAY_LOST;
  case SB_MCP_TIMED_OUT: return SB_GATEWAY_TIMED_OUT;
  case SB_MCP_CANCELLED: return SB_GATEWAY_CANCELLED;
  case SB_MCP_SESSION_EXPIRED: return SB_GATEWAY_SESSION_EXPIRED;
  case SB_MCP_REFUSED: return SB_GATEWAY_REFUSED;
  }
  return SB_GATEWAY_LOST;
}

const char *sb_gateway_outcome_name(sb_gateway_outcome o) {
  switch (o) {
  case SB_GATEWAY_ANSWERED: return "answered";
  case SB_GATEWAY_UNSENT: return "unsent";
  case SB_GATEWAY_LOST: return "lost after delivery";
  case SB_GATEWAY_TIMED_OUT: return "timed out";
  case SB_GATEWAY_CANCELLED: return "cancelled";
  case SB_GATEWAY_SESSION_EXPIRED: return "session expired";
  case SB_GATEWAY_REFUSED: return "refused";
  case SB_GATEWAY_BREAKER_OPEN: return "breaker open";
  case SB_GATEWAY_AT_CAPACITY: return "at capacity";
  case SB_GATEWAY_NOT_CONNECTED: return "not connected";
  case SB_GATEWAY_NO_AGENT: return "no agent";
  case SB_GATEWAY_INPUT_REFUSED: return "input refused";
  case SB_GATEWAY_STOPPING: return "stopping";
  case SB_GATEWAY_INVALID: return "invalid";
  case SB_GATEWAY_BUSY: return "busy";
  case SB_GATEWAY_FORBIDDEN: return "forbidden";
  }
  return "unknown";
}

sb_gateway_decision sb_gateway_decide(sb_gateway_outcome o, int repeatable) {
  sb_gateway_decision d = {0, 0, 0};
  switch (o) {
  case SB_GATEWAY_UNSENT:
    /* Never reached the agent: safe to send again, there or elsewhere. */
    d.breaker_failure = 1;
    d.retry = d.fallback = 1;
    break;
  case SB_GATEWAY_SESSION_EXPIRED:
    /* The agent is up; only its session ended, before it read this. */
    d.retry = d.fallback = 1;
    break;
  case SB_GATEWAY_REFUSED:
    /* Not processed, but our credentials (or their scope) do not do for
     * this agent: it counts against it, another may take the call, and
     * the agent again only once a new token came (calls.c). */
    d.breaker_failure = 1;
    d.retry = d.fallback = 1;
    break;
  case SB_GATEWAY_LOST:
  case SB_GATEWAY_TIMED_OUT:
    /* The agent may have acted: again only if that is harmless. */
    d.breaker_failure = 1;
    d.retry = d.fallback = repeatable;
    break;
  case SB_GATEWAY_BREAKER_OPEN:
  case SB_GATEWAY_AT_CAPACITY:
  case SB_GATEWAY_NOT_CONNECTED:
    /* Refused before sending: another agent may take it. */
    d.fallback = 1;
    break;
  case SB_GATEWAY_ANSWERED:  /* the agent's answer, even its own error */
  case SB_GATEWAY_CANCELLED: /* the caller gave up */
  case SB_GATEWAY_NO_AGENT:
  case SB_GATEWAY_INPUT_REFUSED:
  case SB_GATEWAY_STOPPING:
  case SB_GATEWAY_INVALID:
  case SB_GATEWAY_BUSY:
  case SB_GATEWAY_FORBIDDEN:
    break;
  }
  return d;
}

sb_gateway_outcome gw_refusal_outcome(sb_registry_refusal why) {
  switch (why) {
  case SB_REFUSE_BREAKER_OPEN: return SB_GATEWAY_BREAKER_OPEN;
  case SB_REFUSE_AT_CAPACITY: return SB_GATEWAY_AT_CAPACITY;
  default: return SB_GATEWAY_NOT_CONNECTED;
  }
}
