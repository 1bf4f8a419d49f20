/* builtin.c: the tools, resources and prompts switchboard itself serves.
 *
 * They are small on purpose: each proves one protocol path end to end —
 * structured output (switchboard_info, echo), tool errors (fail), progress,
 * logging and cancellation (slow_count), resource change notifications
 * (note_write), multi round-trip input (ask_user), prompts and completion.
 * Agents' tools (later) are served beside them through the same handlers.
 */
#include <ctype.h>
#include <string.h>

#include "mcp/mcp_internal.h"

#define NOTE_URI_PREFIX "switchboard://notes/"
#define INFO_URI "switchboard://info"
#define MAX_NOTES 1000
#define MAX_NOTE_BYTES (64 * 1024)
#define STATE_TTL_MS (10 * 60 * 1000)

struct mcp_builtin {
  json_t *tools;     /* array of Tool, in list order */
  json_t *templates; /* array of ResourceTemplate */
  json_t *prompts;   /* array of Prompt */
  /* object: tenant -> {name -> text}. Each tenant has its own notes:
   * another tenant's are not listed, read, completed or announced. */
  json_t *notes;
};

/* The notes of the call's tenant (borrowed), or NULL when it has none;
 * with `create`, made when missing (NULL only when out of memory). */
static json_t *notes_of(sb_mcp_call *c, int create) {
  json_t *all = c->srv->builtin->notes;
  const char *tenant = sb_mcp_call_tenant(c);
  if (!tenant) tenant = "";
  json_t *mine = json_object_get(all, tenant);
  if (!mine && create && json_object_set_new(all, tenant, json_object()) == 0)
    mine = json_object_get(all, tenant);
  return mine;
}

static const char *const greeting_names[] = {"Alice", "Avery", "Bob",
                                             "Carlos", "Dana", "Priya", NULL};

/* ---- definitions ------------------------------------------------------- */

static json_t *tool_defs(void) {
  json_error_t e;
  json_t *t = json_loads(
      "["
      "{\"name\":\"switchboard_info\",\"title\":\"switchboard info\","
      "\"description\":\"Name, version, supported protocol versions and "
      "uptime of this switchboard.\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{}},"
      "\"outputSchema\":{\"type\":\"object\",\"properties\":{"
      "\"name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
      "\"supportedVersions\":{\"type\":\"array\",\"items\":{\"type\":"
      "\"string\"}},\"uptimeMs\":{\"type\":\"integer\"}},"
      "\"required\":[\"name\",\"version\",\"supportedVersions\",\"uptimeMs\"]},"
      "\"annotations\":{\"readOnlyHint\":true,\"idempotentHint\":true}},"
      "{\"name\":\"echo\",\"title\":\"Echo\",\"description\":\"Returns the "
      "text it is given.\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{"
      "\"type\":\"string\"}},\"required\":[\"text\"]},"
      "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{"
      "\"type\":\"string\"}},\"required\":[\"text\"]},"
      "\"annotations\":{\"readOnlyHint\":true,\"idempotentHint\":true}},"
      "{\"name\":\"slow_count\",\"title\":\"Slow count\",\"description\":"
      "\"Counts to steps, one step every interval_ms, reporting progress; "
      "cancellable.\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
      "\"steps\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,"
      "\"default\":5},\"interval_ms\":{\"type\":\"integer\",\"minimum\":1,"
      "\"maximum\":60000,\"default\":100}}},"
      "\"annotations\":{\"readOnlyHint\":true}},"
      "{\"name\":\"fail\",\"title\":\"Fail\",\"description\":\"Always "
      "returns a tool error (isError).\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"message\":{"
      "\"type\":\"string\"}}}},"
      "{\"name\":\"note_write\",\"title\":\"Write a note\",\"description\":"
      "\"Stores a note as resource switchboard://notes/{name} and notifies "
      "subscribers.\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
      "\"name\":{\"type\":\"string\",\"pattern\":\"^[a-z0-9_-]{1,64}$\"},"
      "\"text\":{\"type\":\"string\"}},\"required\":[\"name\",\"text\"]}},"
      "{\"name\":\"ask_user\",\"title\":\"Ask the user\",\"description\":"
      "\"Asks the user a question through elicitation and returns the "
      "answer.\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"question\":{"
      "\"type\":\"string\"}}}}"
      "]",
      0, &e);
  return t;
}

mcp_builtin *mcp_builtin_new(sb_mcp_server *srv) {
  mcp_builtin *b = sb_calloc(1, sizeof *b);
  if (!b) return NULL;
  b->tools = tool_defs();
  b->templates = json_pack(
      "[{ssssssss}]", "uriTemplate", NOTE_URI_PREFIX "{name}", "name", "note",
      "mimeType", "text/plain", "description",
      "A note written with the note_write tool");
  b->prompts = json_pack(
      "[{sssssss[{sssssb}]}]", "name", "greeting", "title", "Greeting",
      "description", "Greets a customer by name on behalf of the dealership",
      "arguments", "name", "name", "description", "The customer's name",
      "required", 1);
  b->notes = json_object();
  if (!b->tools || !b->templates || !b->prompts || !b->notes) {
    mcp_builtin_free(b);
    return NULL;
  }
  return b;
}

void mcp_builtin_free(mcp_builtin *b) {
  if (!b) return;
  json_decref(b->tools);
  json_decref(b->templates);
  json_decref(b->prompts);
  json_decref(b->notes);
  sb_free(b);
}

json_t *mcp_builtin_capabilities(void) {
  return json_pack("{s{sb}s{sbsb}s{sb}s{}s{}}", "tools", "listChanged", 1,
                   "resources", "subscribe", 1, "listChanged", 1, "prompts",
                   "listChanged", 1, "logging", "completions");
}

/* ---- small helpers ----------------------------------------------------- */

static json_t *text_content(const char *text) {
  return json_pack("[{ssss}]", "type", "text", "text", text);
}


/* Optional integer argument in [lo, hi]; -1 on a bad value. */
static int int_arg(json_t *args, const char *key, long lo, long hi, long def,
                   long *out) {
  json_t *v = json_object_get(args, key);
  if (!v) {
    *out = def;
    return 0;
  }
  if (!json_is_integer(v) || json_integer_value(v) < lo ||
      json_integer_value(v) > hi)
    return -1;
  *out = (long)json_integer_value(v);
  return 0;
}

static int valid_note_name(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++)
    if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) ||
          s[i] == '_' || s[i] == '-'))
      return 0;
  return 1;
}

/* ---- tools ------------------------------------------------------------- */

static void list_tools(void *ud, sb_mcp_call *c, json_t *out) {
  mcp_builtin *b = ud;
  json_array_extend(out, b->tools);
}

static void tool_info(sb_mcp_server *srv, sb_mcp_call *c, json_t *args) {
  json_t *sc = json_pack("{sssssosI}", "name", srv->name, "version",
                         SB_VERSION, "supportedVersions",
                         sb_mcp_supported_versions_json(), "uptimeMs",
                         (json_int_t)(sb_now_ms() - srv->started_ms));
  char *text = sb_json_dumps(sc, JSON_COMPACT);
  sb_mcp_call_reply(c, json_pack("{soso}", "content", text_content(text),
                                 "structuredContent", sc));
  sb_free(text);
}

static void tool_echo(sb_mcp_server *srv, sb_mcp_call *c, json_t *args) {
  json_t *text = json_object_get(args, "text");
  if (!json_is_string(text)) {
    sb_mcp_call_fail_invalid_args(c, "echo",
                      text ? "property 'text' must be a string"
                           : "missing required property 'text'");
    return;
  }
  sb_mcp_call_reply(c, json_pack("{sos{sO}}", "content",
                                 text_content(json_string_value(text)),
                                 "structuredContent", "text", text));
}

static void tool_fail(sb_mcp_server *srv, sb_mcp_call *c, json_t *args) {
  const char *m = json_string_value(json_object_get(args, "message"));
  sb_mcp_call_reply(c, json_pack("{sosb}", "content",
                                 text_content(m ? m : "this tool always fails"),
                                 "isError", 1));
}

/* slow_count: a timer ticks once per step; cancellation stops it. */
typedef struct slow_count {
  uv_timer_t timer;
  sb_mcp_call *call; /* NULL once answered or cancelled */
  long step, steps;
} slow_count;

static void slow_closed(uv_handle_t *h) { sb_free(h->data); }

static void slow_tick(uv_timer_t *t) {
  slow_count *s = t->data;
  char msg[64];
  s->step++;
  snprintf(msg, sizeof msg, "step %ld of %ld", s->step, s->steps);
  sb_mcp_call_progress(s->call, (double)s->step, (double)s->steps, msg);
  sb_mcp_call_log(s->call, SB_LOG_INFO, "slow_count", json_string(msg));
  if (s->step < s->steps) return;
  snprintf(msg, sizeof msg, "counted to %ld", s->steps);
  sb_mcp_call *call = s->call;
  s->call = NULL;
  uv_timer_stop(t);
  uv_close((uv_handle_t *)t, slow_closed);
  sb_mcp_call_reply(call, json_pack("{so}", "content", text_content(msg)));
}

static void slow_cancel(sb_mcp_call *call, void *ud) {
  slow_count *s = ud;
  s->call = NULL;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, slow_closed);
}

static void tool_slow_count(sb_mcp_server *srv, sb_mcp_call *c, json_t *args) {
  long steps, interval;
  if (int_arg(args, "steps", 1, 1000, 5, &steps) != 0) {
    sb_mcp_call_fail_invalid_args(c, "slow_count",
                      "property 'steps' must be an integer from 1 to 1000");
    return;
  }
  if (int_arg(args, "interval_ms", 1, 60000, 100, &interval) != 0) {
    sb_mcp_call_fail_invalid_args(c, "slow_count",
                      "property 'interval_ms' must be an integer from 1 to "
                      "60000");
    return;
  }
  slow_count *s = sb_calloc(1, sizeof *s);
  if (!s) {
    sb_mcp_call_fail(c, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  s->call = c;
  s->steps = steps;
  uv_timer_init(srv->loop, &s->timer);
  s->timer.data = s;
  uv_timer_start(&s->timer, slow_tick, (uint64_t)interval, (uint64_t)interval);
  sb_mcp_call_on_cancel(c, slow_cancel, s);
}

static void tool_note_write(sb_mcp_server *srv, sb_mcp_call *c, json_t *args) {
  const char *name = json_string_value(json_object_get(args, "name"));
  json_t *text = json_object_get(args, "text");
  if (!valid_note_name(name)) {
    sb_mcp_call_fail_invalid_args(c, "note_write",
                      "property 'name' must match ^[a-z0-9_-]{1,64}$");
    return;
  }
  if (!json_is_string(text) || json_string_length(text) > MAX_NOTE_BYTES) {
    sb_mcp_call_fail_invalid_args(c, "note_write",
                      "property 'text' must be a string of at most 65536 "
                      "bytes");
    return;
  }
  json_t *notes = notes_of(c, 1);
  if (!notes) {
    sb_mcp_call_fail(c, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  int is_new = json_object_get(notes, name) == NULL;
  if (is_new && json_object_size(notes) >= MAX_NOTES) {
    sb_mcp_call_reply(c, json_pack("{sosb}", "content",
                                   text_content("too many notes (this "
                                                "tenant's limit is 1000)"),
                                   "isError", 1));
    return;
  }
  json_object_set(notes, name, text);
  const char *tenant = sb_mcp_call_tenant(c);
  char *uri = sb_asprintf(NOTE_URI_PREFIX "%s", name);
  char *msg = sb_asprintf("wrote %s", uri);
  /* Notify before answering, so on one channel the client sees the change
   * before the result that caused it. */
  if (uri) sb_mcp_server_resource_updated_for(srv, tenant, uri);
  if (is_new) sb_mcp_server_list_changed_for(srv, tenant, "resources");
  sb_mcp_call_reply(c, json_pack("{so}", "content",
                                 text_content(msg ? msg : "wrote note")));
  sb_free(uri);
  sb_free(msg);
}

/* ask_user: modern clients get an input_required result carrying an
 * elicitation request and a sealed requestState; legacy clients get a real
 * elicitation/create request and we answer when they respond. */
static json_t *elicit_params(const char *question) {
  return json_pack("{sssss{ss s{s{ss}} s[s]}}", "mode", "form", "message",
                   question, "requestedSchema", "type", "object",
                   "properties", "answer", "type", "string", "required",
                   "answer");
}

static json_t *answer_result(json_t *elicit_result) {
  const char *action =
      json_string_value(json_object_get(elicit_result, "action"));
  const char *answer = json_string_value(
      json_object_get(json_object_get(elicit_result, "content"), "answer"));
  if (action && strcmp(action, "accept") == 0 && answer) {
    char *text = sb_asprintf("you said: %s", answer);
    json_t *r = json_pack("{sos{ss}}", "content", text_content(text),
                          "structuredContent", "answer", answer);
    sb_free(text);
    return r;
  }
  char *text = sb_asprintf("the user did not answer (%s)",
                           action ? action : "no action");
  json_t *r = json_pack("{sosb}", "content", text_content(text), "isError", 1);
  sb_free(text);
  return r;
}

static void ask_user_legacy_answer(sb_mcp_call *c, json_t *result,
                                   json_t *error, void *ud) {
  if (!c) return; /* the call ended first; nothing to release */
  if (error) {
    const char *m = json_string_value(json_object_get(error, "message"));
    char *text = sb_asprintf("elicitation failed: %s", m ? m : "error");
    sb_mcp_call_reply(c, json_pack("{sosb}", "content", text_content(text),
                                   "isError", 1));
    sb_free(text);
    return;
  }
  sb_mcp_call_reply(c, answer_result(result));
}

static void tool_ask_user(sb_mcp_server *srv, sb_mcp_call *c, json_t *args) {
  const char *q = json_string_value(json_object_get(args, "question"));
  if (!q) q = "What is your answer?";
  if (!sb_mcp_call_has_capability(c, "elicitation")) {
    if (c->modern) {
      sb_mcp_call_fail(c, SB_RPC_MISSING_CLIENT_CAPABILITY,
                       "Server requires the elicitation capability for this "
                       "request",
                       json_pack("{s{s{}}}", "requiredCapabilities",
                                 "elicitation"));
    } else {
      sb_mcp_call_reply(
          c, json_pack("{sosb}", "content",
                       text_content("the client does not support elicitation"),
                       "isError", 1));
    }
    return;
  }
  if (!c->modern) {
    if (mcp_call_request_client(c, "elicitation/create", elicit_params(q),
                                ask_user_legacy_answer, NULL) != 0)
      sb_mcp_call_fail(c, SB_RPC_INTERNAL_ERROR,
                       "cannot send elicitation/create to this client", NULL);
    return;
  }
  json_t *p = c->params;
  const char *state = json_string_value(json_object_get(p, "requestState"));
  json_t *answer =
      json_object_get(json_object_get(p, "inputResponses"), "answer");
  if (state) {
    sb_error err = {0};
    json_t *payload =
        sb_mcp_state_open(c, state, "tools/call", "ask_user", &err);
    if (!payload) {
      sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, err.msg,
                       json_pack("{ss}", "param", "requestState"));
      return;
    }
    json_decref(payload);
    if (json_is_object(answer)) {
      sb_mcp_call_reply(c, answer_result(answer));
      return;
    }
  }
  json_t *payload = json_pack("{ss}", "q", q);
  char *sealed =
      sb_mcp_state_seal(c, "tools/call", "ask_user", payload, STATE_TTL_MS);
  json_decref(payload);
  json_t *r = json_pack("{sss{s{ssso}}ss}", "resultType", "input_required",
                        "inputRequests", "answer", "method",
                        "elicitation/create", "params", elicit_params(q),
                        "requestState", sealed ? sealed : "");
  sb_free(sealed);
  sb_mcp_call_reply(c, r);
}

static const struct {
  const char *name;
  void (*fn)(sb_mcp_server *, sb_mcp_call *, json_t *);
} tools[] = {
    {"switchboard_info", tool_info}, {"echo", tool_echo},
    {"slow_count", tool_slow_count}, {"fail", tool_fail},
    {"note_write", tool_note_write}, {"ask_user", tool_ask_user},
};

static int call_tool(void *ud, sb_mcp_call *c, const char *name,
                     json_t *args) {
  for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++) {
    if (strcmp(tools[i].name, name) == 0) {
      tools[i].fn(c->srv, c, args);
      return 1;
    }
  }
  return 0;
}

/* ---- resources --------------------------------------------------------- */

static void list_resources(void *ud, sb_mcp_call *c, json_t *items) {
  json_t *notes = notes_of(c, 0);
  json_array_append_new(
      items, json_pack("{ssssssss}", "uri", INFO_URI, "name", "info",
                       "mimeType", "application/json", "description",
                       "switchboard's name, version and protocol versions"));
  /* Notes in name order so pages are stable. */
  const char **names = sb_calloc(json_object_size(notes) + 1, sizeof *names);
  size_t n = 0;
  const char *key;
  json_t *v;
  json_object_foreach(notes, key, v) if (names) names[n++] = key;
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      const char *t = names[j];
      names[j] = names[j - 1];
      names[j - 1] = t;
    }
  for (size_t i = 0; i < n; i++) {
    char *uri = sb_asprintf(NOTE_URI_PREFIX "%s", names[i]);
    json_array_append_new(items, json_pack("{ssssss}", "uri", uri, "name",
                                           names[i], "mimeType",
                                           "text/plain"));
    sb_free(uri);
  }
  sb_free(names);
}

static void list_templates(void *ud, sb_mcp_call *c, json_t *out) {
  mcp_builtin *b = ud;
  json_array_extend(out, b->templates);
}

/* The text of the caller's note at uri (borrowed), or NULL. */
static json_t *note_at(sb_mcp_call *c, const char *uri) {
  size_t pl = strlen(NOTE_URI_PREFIX);
  if (strncmp(uri, NOTE_URI_PREFIX, pl) != 0) return NULL;
  return json_object_get(notes_of(c, 0), uri + pl);
}

static int read_resource(void *ud, sb_mcp_call *c, const char *uri) {
  sb_mcp_server *srv = c->srv;
  json_t *r = NULL;
  if (strcmp(uri, INFO_URI) == 0) {
    json_t *info = json_pack("{sssssoss}", "name", srv->name, "version",
                             SB_VERSION, "supportedVersions",
                             sb_mcp_supported_versions_json(), "modernVersion",
                             SB_MCP_MODERN_VERSION);
    char *text = sb_json_dumps(info, JSON_COMPACT);
    json_decref(info);
    r = json_pack("{s[{ssssss}]}", "contents", "uri", uri, "mimeType",
                  "application/json", "text", text);
    sb_free(text);
    sb_mcp_call_reply_cacheable(c, r, srv->limits.cache_ttl_ms, "public");
    return 1;
  }
  if (strncmp(uri, NOTE_URI_PREFIX, strlen(NOTE_URI_PREFIX)) != 0) return 0;
  json_t *text = note_at(c, uri);
  if (!text) {
    sb_mcp_call_fail_resource_not_found(c, uri);
    return 1;
  }
  r = json_pack("{s[{sssssO}]}", "contents", "uri", uri, "mimeType",
                "text/plain", "text", text);
  sb_mcp_call_reply_cacheable(c, r, 0, "private"); /* the tenant's own */
  return 1;
}

/* ---- prompts and completion ------------------------------------------- */

static void list_prompts(void *ud, sb_mcp_call *c, json_t *out) {
  mcp_builtin *b = ud;
  json_array_extend(out, b->prompts);
}

static int get_prompt(void *ud, sb_mcp_call *c, const char *name,
                      json_t *args) {
  if (strcmp(name, "greeting") != 0) return 0;
  const char *who = json_string_value(json_object_get(args, "name"));
  if (!who) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                     "Invalid arguments for prompt greeting: missing required "
                     "argument 'name'",
                     json_pack("{ss}", "prompt", name));
    return 1;
  }
  char *text = sb_asprintf("Please greet %s warmly on behalf of the "
                           "dealership and ask how we can help today.",
                           who);
  sb_mcp_call_reply(
      c, json_pack("{sss[{sss{ssss}}]}", "description", "Greeting for a customer",
                   "messages", "role", "user", "content", "type", "text",
                   "text", text));
  sb_free(text);
  return 1;
}

static int has_prefix_ci(const char *s, const char *prefix) {
  for (; *prefix; s++, prefix++)
    if (tolower((unsigned char)*s) != tolower((unsigned char)*prefix))
      return 0;
  return 1;
}

static int complete(void *ud, sb_mcp_call *c, json_t *ref, json_t *arg) {
  const char *type = json_string_value(json_object_get(ref, "type"));
  const char *arg_name = json_string_value(json_object_get(arg, "name"));
  const char *value = json_string_value(json_object_get(arg, "value"));
  json_t *values = json_array();
  if (strcmp(type, "ref/prompt") == 0 &&
      strcmp(json_string_value(json_object_get(ref, "name")) ?: "",
             "greeting") == 0 &&
      strcmp(arg_name, "name") == 0) {
    for (int i = 0; greeting_names[i]; i++)
      if (has_prefix_ci(greeting_names[i], value))
        json_array_append_new(values, json_string(greeting_names[i]));
  } else if (strcmp(type, "ref/resource") == 0 &&
             strcmp(json_string_value(json_object_get(ref, "uri")) ?: "",
                    NOTE_URI_PREFIX "{name}") == 0 &&
             strcmp(arg_name, "name") == 0) {
    const char *key;
    json_t *v;
    json_object_foreach(notes_of(c, 0), key, v) if (
        has_prefix_ci(key, value) && json_array_size(values) < 100)
        json_array_append_new(values, json_string(key));
  } else {
    json_decref(values);
    return 0;
  }
  size_t n = json_array_size(values);
  sb_mcp_call_reply(c, json_pack("{s{sosisb}}", "completion", "values", values,
                                 "total", (int)n, "hasMore", 0));
  return 1;
}

const sb_mcp_provider mcp_builtin_provider = {
    .name = "builtin",
    .list_tools = list_tools,
    .call_tool = call_tool,
    .list_resources = list_resources,
    .list_templates = list_templates,
    .read_resource = read_resource,
    .list_prompts = list_prompts,
    .get_prompt = get_prompt,
    .complete = complete,
};
