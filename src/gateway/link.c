/* link.c: one agent's channel and MCP client, opened from its
 * AgentDefinition.
 *
 * The pool and `switchboard agents show` both reach agents this way, so a
 * definition means the same thing to both: every argument, environment
 * variable and header is passed, however many there are. The client's
 * transport reads the channel slot it was given at each send, which lets
 * the pool replace a crashed channel under a client that lives on.
 */
#include "gateway/gateway_internal.h"

static int link_send(void *t, json_t *msg) {
  sb_channel *ch = *(sb_channel **)t;
  return ch ? sb_channel_send(ch, msg, NULL) : SB_EIO;
}

static int link_send_headers(void *t, json_t *msg, const json_t *headers) {
  sb_channel *ch = *(sb_channel **)t;
  return ch ? sb_channel_send_headers(ch, msg, headers, NULL) : SB_EIO;
}

static void link_cancel(void *t, json_t *id) {
  sb_channel *ch = *(sb_channel **)t;
  if (ch) sb_channel_cancel(ch, id);
}

static int link_set_header(void *t, const char *name, const char *value) {
  sb_channel *ch = *(sb_channel **)t;
  return ch ? sb_channel_set_header(ch, name, value) : 0;
}

/* "NAME=value" (environment) or "Name: value" (headers) strings,
 * NULL-terminated; NULL on ENOMEM. Free with sb_strv_free. */
static char **pair_strings(const sb_agent_pairs *p, const char *between) {
  char **v = sb_calloc(p->len + 1, sizeof *v);
  for (size_t i = 0; v && i < p->len; i++)
    if (!(v[i] = sb_asprintf("%s%s%s", p->items[i].name, between,
                             p->items[i].value))) {
      sb_strv_free(v);
      return NULL;
    }
  return v;
}

static sb_channel *open_channel(const sb_gateway_link_options *o,
                                sb_error *err) {
  const sb_agent_transport *t = &o->def->transport;
  sb_channel *ch = NULL;
  if (t->type == SB_AGENT_TRANSPORT_STDIO) {
    const char **args = sb_calloc(t->args.len + 1, sizeof *args);
    char **env = pair_strings(&t->env, "=");
    for (size_t i = 0; args && i < t->args.len; i++) args[i] = t->args.items[i];
    sb_child_options co = {.command = t->command,
                           .args = args,
                           .env = (const char *const *)env,
                           .cwd = t->cwd,
                           .name = o->def->id,
                           .max_message_bytes = o->max_message_bytes,
                           .busy_poll_us = o->busy_poll_us,
                           .exec_shim = o->exec_shim};
    if (args && env) ch = sb_channel_spawn(o->loop, &co, &o->channel, err);
    else sb_error_set(err, SB_ENOMEM, "out of memory");
    sb_strv_free(env);
    sb_free(args);
  } else {
    char **headers = pair_strings(&t->headers, ": ");
    sb_http_channel_options ho = {.url = t->url,
                                  .headers = (const char *const *)headers,
                                  .name = o->def->id,
                                  .max_message_bytes = o->max_message_bytes};
    if (headers) ch = sb_channel_http(o->loop, &ho, &o->channel, err);
    else sb_error_set(err, SB_ENOMEM, "out of memory");
    sb_strv_free(headers);
  }
  return ch;
}

int sb_gateway_link_open(const sb_gateway_link_options *o, sb_channel **ch,
                         sb_mcp_client **client, sb_error *err) {
  sb_channel *fresh = open_channel(o, err);
  if (!fresh) return err && err->code ? err->code : SB_EIO;
  if (!*client) {
    json_t *caps = json_pack("{s{}s{}s{}}", "sampling", "elicitation", "roots");
    sb_mcp_client_options co = {
        .loop = o->loop,
        .name = o->def->id,
        .transport = {link_send, link_cancel, link_set_header, ch,
                      link_send_headers,
                      o->def->transport.type == SB_AGENT_TRANSPORT_HTTP},
        .events = o->client,
        .capabilities = caps};
    *client = caps ? sb_mcp_client_new(&co) : NULL;
    json_decref(caps);
    if (!*client) {
      sb_channel_close(fresh);
      return sb_error_set(err, SB_ENOMEM, "out of memory");
    }
  }
  *ch = fresh;
  return 0;
}

void sb_gateway_link_failed(sb_mcp_client *client, json_t *id,
                            sb_channel_failure kind, const char *detail) {
  if (!client) return;
  sb_mcp_outcome outcome = kind == SB_CHANNEL_UNSENT ? SB_MCP_UNSENT
                           : kind == SB_CHANNEL_LOST ? SB_MCP_LOST
                           : kind == SB_CHANNEL_REFUSED
                               ? SB_MCP_REFUSED
                               : SB_MCP_SESSION_EXPIRED;
  sb_mcp_client_request_failed(client, id, outcome,
                               kind == SB_CHANNEL_SESSION_ENDED, detail);
}
