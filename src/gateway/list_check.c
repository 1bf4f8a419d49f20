/* list_check.c: what of an agent's lists and tool results can be served.
 *
 * An agent's tools are served on the main endpoint beside every other
 * agent's, and its resources, templates and prompts on its own endpoints:
 * an item that is not what the MCP schema says (a tool without a name or
 * with an inputSchema that is not an object schema, a second tool of the
 * same name) makes an SDK client refuse the whole list, every agent's
 * tools with it. Such items are left out, each named in the log; so is a
 * tool whose x-mcp-header declarations break the rules, which conforming
 * HTTP clients leave out themselves.
 */
#include <stdio.h>
#include <string.h>

#include "gateway/gateway_internal.h"

#define MAX_LOGGED 10 /* items left out named one by one; then a count */

/* A JSON Schema a Tool may carry: an object of type "object". */
static int object_schema(const json_t *s) {
  const char *type = json_string_value(json_object_get(s, "type"));
  return json_is_object(s) && type && strcmp(type, "object") == 0;
}

/* NULL if v is absent or a string. */
static const char *optional_string(const json_t *item, const char *key,
                                   const char *why) {
  const json_t *v = json_object_get(item, key);
  return !v || json_is_string(v) ? NULL : why;
}

/* buf: room for a reason made for this tool. */
static const char *tool_unfit(const json_t *t, char *buf, size_t n) {
  const json_t *out = json_object_get(t, "outputSchema");
  const json_t *ann = json_object_get(t, "annotations");
  const json_t *in = json_object_get(t, "inputSchema");
  if (!object_schema(in))
    return "its inputSchema is not a JSON Schema of type \"object\"";
  /* Conforming HTTP clients leave such a tool out of the list (2026-07-28),
   * and its calls could not carry the headers it asks for. */
  sb_error err = {0};
  if (sb_mcp_tool_headers_check(in, &err) != 0) {
    snprintf(buf, n, "its inputSchema: %.300s", err.msg);
    return buf;
  }
  /* Any JSON Schema since 2026-07-28 (legacy clients get it only when it
   * is of type "object": sb_mcp_server). */
  if (out && !json_is_object(out)) return "its outputSchema is not an object";
  if (ann && !json_is_object(ann)) return "its annotations are not an object";
  return optional_string(t, "description", "its description is not a string");
}

static const char *prompt_unfit(const json_t *p) {
  const json_t *args = json_object_get(p, "arguments");
  if (args && !json_is_array(args)) return "its arguments are not a list";
  size_t i;
  const json_t *a;
  json_array_foreach(args, i, a) {
    if (!json_is_string(json_object_get(a, "name")))
      return "an argument has no name";
  }
  return optional_string(p, "description", "its description is not a string");
}

/* Why item cannot be served as one of a `kind` list, or NULL. The key
 * (name or URI) is the one that must be a unique non-empty string. */
static const char *item_unfit(int kind, const json_t *item, const json_t *seen,
                              const char **key, char *buf, size_t n) {
  const char *field = kind == LIST_RESOURCES   ? "uri"
                      : kind == LIST_TEMPLATES ? "uriTemplate"
                                               : "name";
  *key = json_string_value(json_object_get(item, field));
  if (!json_is_object(item)) return "it is not an object";
  if (!*key || !**key) return kind == LIST_TOOLS || kind == LIST_PROMPTS
                                  ? "it has no name"
                                  : "it has no URI";
  if (json_object_get(seen, *key)) return "an item of that name came before";
  if (kind != LIST_TOOLS && kind != LIST_PROMPTS &&
      !json_is_string(json_object_get(item, "name")))
    return "it has no name";
  if (kind == LIST_TOOLS) return tool_unfit(item, buf, n);
  if (kind == LIST_PROMPTS) return prompt_unfit(item);
  return NULL;
}

json_t *gw_list_servable(const char *agent_id, int kind, json_t *items) {
  json_t *kept = json_array();
  json_t *seen = json_object();
  if (!kept || !seen) {
    json_decref(kept);
    json_decref(seen);
    return json_incref(items);
  }
  size_t i, dropped = 0;
  json_t *item;
  json_array_foreach(items, i, item) {
    const char *key = NULL;
    char buf[400];
    const char *why = item_unfit(kind, item, seen, &key, buf, sizeof buf);
    if (!why) {
      json_object_set(seen, key, json_true());
      json_array_append(kept, item);
      continue;
    }
    if (++dropped <= MAX_LOGGED)
      SB_WARN("agents", "agent %s: %s: item %zu (%.64s) left out: %s",
              agent_id, gw_list_kinds[kind].method, i, key ? key : "?", why);
  }
  if (dropped > MAX_LOGGED)
    SB_WARN("agents", "agent %s: %s: %zu items left out in all", agent_id,
            gw_list_kinds[kind].method, dropped);
  json_decref(seen);
  return kept;
}

/* Why a tools/call result is not a CallToolResult, or NULL. Only what is
 * there is checked: a task or input_required result has no content. */
static const char *tool_result_unfit(const json_t *r) {
  const json_t *content = json_object_get(r, "content");
  const json_t *is_error = json_object_get(r, "isError");
  if (!json_is_object(r)) return "it is not an object";
  if (content && !json_is_array(content)) return "content is not a list";
  size_t i;
  const json_t *block;
  json_array_foreach(content, i, block) {
    if (!json_is_string(json_object_get(block, "type")))
      return "an item of content has no type";
  }
  /* structuredContent is any JSON value (2026-07-28). */
  if (is_error && !json_is_boolean(is_error)) return "isError is not a boolean";
  return NULL;
}

json_t *gw_tool_result_checked(const char *agent_id, const json_t *result) {
  const char *why = tool_result_unfit(result);
  if (!why) return NULL;
  char text[256];
  snprintf(text, sizeof text,
           "agent %s answered tools/call with a result that is not a "
           "CallToolResult: %s",
           agent_id, why);
  SB_WARN("agents", "%s", text);
  return json_pack("{s[{ssss}]sb}", "content", "type", "text", "text", text,
                   "isError", 1);
}
