/* tasks.c: tool calls answered with a task handle, in both eras.
 *
 * The task provider (mcp.h) keeps the tasks and speaks one neutral task
 * object; this file owns the protocol around it: which clients may get a
 * task (2026-07-28: the extension io.modelcontextprotocol/tasks in the
 * request's client capabilities; 2025-11-25: params.task on tools/call in
 * a session of that revision), what is announced (the extension in
 * server/discover, the `tasks` capability in initialize, taskSupport on
 * the task tools in tools/list), the methods (tasks/get, tasks/update and
 * tasks/cancel of the extension; tasks/get, tasks/result, tasks/list and
 * tasks/cancel of the utility), and the shapes each revision gives a task.
 *
 * The two revisions disagree on little but names: ttlMs/pollIntervalMs vs
 * ttl/pollInterval; the 2026 task inlines its result (or error, or
 * inputRequests) where 2025 has the result fetched by tasks/result; a tool
 * result with isError is a "completed" task in 2026 and a "failed" one in
 * 2025; 2026 acknowledges tasks/cancel with an empty result where 2025
 * answers the cancelled task and refuses a task that had already ended.
 */
#include <string.h>

#include "mcp/mcp_internal.h"

#define MODULE "mcp"

/* The first legacy revision with the tasks utility. */
#define TASKS_LEGACY_VERSION "2025-11-25"

void sb_mcp_server_set_task_provider(sb_mcp_server *srv,
                                     const sb_mcp_task_provider *p) {
  srv->tasks = *p;
}

static int legacy_version_has_tasks(const char *version) {
  return version && !sb_mcp_version_is_modern(version) &&
         strcmp(version, TASKS_LEGACY_VERSION) >= 0;
}

/* The call's era serves tasks at all. */
static int tasks_served(const sb_mcp_call *c) {
  if (!c->srv->tasks.get) return 0;
  if (c->modern) return 1;
  return c->session && legacy_version_has_tasks(c->session->version);
}

static int is_task_tool(const sb_mcp_server *srv, const char *name) {
  for (const char *const *t = srv->tasks.tools; t && *t; t++)
    if (strcmp(*t, name) == 0) return 1;
  return 0;
}

void mcp_tasks_capabilities(sb_mcp_server *srv, json_t *caps, int modern,
                            const char *version) {
  if (!srv->tasks.get) return;
  if (modern) {
    json_t *ext = json_object_get(caps, "extensions");
    if (!json_is_object(ext)) {
      ext = json_object();
      json_object_set_new(caps, "extensions", ext);
    }
    json_object_set_new(ext, SB_MCP_EXT_TASKS, json_object());
  } else if (legacy_version_has_tasks(version)) {
    json_object_set_new(caps, "tasks",
                        json_pack("{s{}s{}s{s{s{}}}}", "list", "cancel",
                                  "requests", "tools", "call"));
  }
}

void mcp_tasks_mark_tools(sb_mcp_call *c, json_t *tools) {
  if (c->modern || !tasks_served(c)) return;
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    const char *name = json_string_value(json_object_get(t, "name"));
    if (!name || !is_task_tool(c->srv, name)) continue;
    json_t *copy = json_copy(t); /* the provider's object may be shared */
    if (!copy) continue;
    json_object_set_new(copy, "execution",
                        json_pack("{ss}", "taskSupport", "optional"));
    json_array_set_new(tools, i, copy);
  }
}

void mcp_tasks_relate(sb_mcp_call *c, json_t *obj) {
  if (c->modern || strcmp(c->method, "tasks/result") != 0 ||
      !json_is_object(obj))
    return;
  json_t *id = json_object_get(c->params, "taskId");
  json_t *meta = json_object_get(obj, "_meta");
  if (!json_is_object(meta)) {
    meta = json_object();
    json_object_set_new(obj, "_meta", meta);
  }
  json_object_set_new(meta, SB_MCP_META_RELATED_TASK,
                      json_pack("{sO}", "taskId", id));
}

int mcp_tasks_route_call(sb_mcp_call *c, const char *name, json_t *args) {
  sb_mcp_server *srv = c->srv;
  if (!tasks_served(c)) return 0;
  if (c->modern) {
    json_t *ext = json_object_get(c->caps, "extensions");
    if (!json_object_get(ext, SB_MCP_EXT_TASKS) || !is_task_tool(srv, name))
      return 0; /* never a task for a client that did not declare it */
    srv->tasks.call_tool(srv->tasks.ud, c, name, args);
    return 1;
  }
  json_t *task = json_object_get(c->params, "task");
  if (!task) return 0;
  if (!json_is_object(task)) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, "params.task: must be an object",
                     json_pack("{ss}", "param", "task"));
    return 1;
  }
  if (!is_task_tool(srv, name)) {
    /* tools.mdx of 2025-11-25: taskSupport absent means forbidden. */
    char msg[256];
    snprintf(msg, sizeof msg,
             "Method not found: tool %.150s does not support task-augmented "
             "execution",
             name);
    sb_mcp_call_fail(c, SB_RPC_METHOD_NOT_FOUND, msg,
                     json_pack("{ss}", "tool", name));
    return 1;
  }
  /* The requested ttl is advisory: the provider says what it keeps. */
  srv->tasks.call_tool(srv->tasks.ud, c, name, args);
  return 1;
}

/* ---- shapes -------------------------------------------------------------- */

static const char *task_status(json_t *task) {
  const char *s = json_string_value(json_object_get(task, "status"));
  return s ? s : "working";
}

/* The 2025-11-25 status: a tool result with isError is a failed task. */
static const char *legacy_status(json_t *task) {
  const char *s = task_status(task);
  if (strcmp(s, "completed") == 0 &&
      json_is_true(json_object_get(json_object_get(task, "result"), "isError")))
    return "failed";
  return s;
}

static void copy_field(json_t *dst, const char *to, json_t *src,
                       const char *from) {
  json_t *v = json_object_get(src, from);
  if (v) json_object_set(dst, to, v);
}

/* Task of 2025-11-25 (new reference). */
static json_t *legacy_task(json_t *task) {
  json_t *t = json_pack("{ss}", "status", legacy_status(task));
  if (!t) return NULL;
  copy_field(t, "taskId", task, "taskId");
  copy_field(t, "statusMessage", task, "statusMessage");
  copy_field(t, "createdAt", task, "createdAt");
  copy_field(t, "lastUpdatedAt", task, "lastUpdatedAt");
  json_t *ttl = json_object_get(task, "ttlMs");
  json_object_set(t, "ttl", ttl ? ttl : json_null());
  copy_field(t, "pollInterval", task, "pollIntervalMs");
  return t;
}

/* Task of 2026-07-28 without what a status inlines (new reference). */
static json_t *modern_task_base(json_t *task) {
  json_t *t = json_object();
  if (!t) return NULL;
  static const char *const keys[] = {"taskId",        "status",
                                     "statusMessage", "createdAt",
                                     "lastUpdatedAt", "ttlMs",
                                     "pollIntervalMs"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    copy_field(t, keys[i], task, keys[i]);
  if (!json_object_get(t, "ttlMs")) json_object_set_new(t, "ttlMs", json_null());
  return t;
}

/* DetailedTask of 2026-07-28: the base and the one field its status
 * inlines (new reference). */
static json_t *modern_task_detailed(json_t *task) {
  json_t *t = modern_task_base(task);
  if (!t) return NULL;
  const char *s = task_status(task);
  if (strcmp(s, "completed") == 0)
    copy_field(t, "result", task, "result");
  else if (strcmp(s, "failed") == 0)
    copy_field(t, "error", task, "error");
  else if (strcmp(s, "input_required") == 0)
    copy_field(t, "inputRequests", task, "inputRequests");
  return t;
}

void sb_mcp_call_reply_task(sb_mcp_call *c, json_t *task) {
  if (!task) {
    sb_mcp_call_fail(c, SB_RPC_INTERNAL_ERROR, "out of memory", NULL);
    return;
  }
  json_t *r = NULL;
  if (strcmp(c->method, "tools/call") == 0) {
    if (c->modern) {
      r = modern_task_base(task);
      if (r) json_object_set_new(r, "resultType", json_string("task"));
    } else {
      /* A task begins in `working` (2025-11-25, Task Status Lifecycle):
       * what it has moved on to since, tasks/get tells. */
      json_t *t = legacy_task(task);
      if (t) {
        json_object_set_new(t, "status", json_string("working"));
        json_object_del(t, "statusMessage");
      }
      r = t ? json_pack("{so}", "task", t) : NULL;
    }
  } else if (strcmp(c->method, "tasks/get") == 0) {
    r = c->modern ? modern_task_detailed(task) : legacy_task(task);
  } else if (strcmp(c->method, "tasks/cancel") == 0 && !c->modern) {
    r = legacy_task(task);
  } else {
    r = json_object(); /* tasks/update, 2026 tasks/cancel: acknowledged */
  }
  json_decref(task);
  sb_mcp_call_reply(c, r);
}

void sb_mcp_call_reply_tasks(sb_mcp_call *c, json_t *tasks,
                             const char *next_cursor) {
  json_t *list = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) json_array_append_new(list, legacy_task(t));
  json_decref(tasks);
  json_t *r = json_pack("{so}", "tasks", list);
  if (r && next_cursor)
    json_object_set_new(r, "nextCursor", json_string(next_cursor));
  sb_mcp_call_reply(c, r);
}

void sb_mcp_call_fail_task_unknown(sb_mcp_call *c) {
  sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                   "Failed to retrieve task: Task not found",
                   json_pack("{sO}", "taskId",
                             json_object_get(c->params, "taskId")));
}

void sb_mcp_call_task_cancel_refused(sb_mcp_call *c, json_t *task) {
  if (c->modern) {
    json_decref(task);
    sb_mcp_call_reply(c, json_object());
    return;
  }
  char msg[128];
  snprintf(msg, sizeof msg,
           "Cannot cancel task: already in terminal status '%s'",
           task ? legacy_status(task) : "unknown");
  json_decref(task);
  sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, msg, NULL);
}

/* ---- methods ------------------------------------------------------------- */

/* The taskId of a tasks/ request, or NULL with the call answered. */
static const char *task_request(sb_mcp_call *c) {
  if (!tasks_served(c)) {
    char msg[160];
    snprintf(msg, sizeof msg, "Method not found: %s (tasks are served to "
                              "2026-07-28 and 2025-11-25 clients)",
             c->method);
    sb_mcp_call_fail(c, SB_RPC_METHOD_NOT_FOUND, msg,
                     json_pack("{ss}", "method", c->method));
    return NULL;
  }
  const char *id = json_string_value(json_object_get(c->params, "taskId"));
  if (!id)
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, "params.taskId: required string",
                     json_pack("{ss}", "param", "taskId"));
  return id;
}

void mcp_handle_tasks_get(sb_mcp_server *srv, sb_mcp_call *c) {
  const char *id = task_request(c);
  if (id) srv->tasks.get(srv->tasks.ud, c, id);
}

void mcp_handle_tasks_cancel(sb_mcp_server *srv, sb_mcp_call *c) {
  const char *id = task_request(c);
  if (id) srv->tasks.cancel(srv->tasks.ud, c, id);
}

void mcp_handle_tasks_update(sb_mcp_server *srv, sb_mcp_call *c) {
  const char *id = task_request(c);
  if (!id) return;
  json_t *responses = json_object_get(c->params, "inputResponses");
  if (!json_is_object(responses)) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS,
                     "params.inputResponses: required object",
                     json_pack("{ss}", "param", "inputResponses"));
    return;
  }
  srv->tasks.update(srv->tasks.ud, c, id, responses);
}

void mcp_handle_tasks_result(sb_mcp_server *srv, sb_mcp_call *c) {
  const char *id = task_request(c);
  if (id) srv->tasks.result(srv->tasks.ud, c, id);
}

void mcp_handle_tasks_list(sb_mcp_server *srv, sb_mcp_call *c) {
  if (!tasks_served(c)) {
    task_request(c); /* answers: method not found */
    return;
  }
  json_t *cursor = json_object_get(c->params, "cursor");
  if (cursor && !json_is_null(cursor) && !json_is_string(cursor)) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, "params.cursor: must be a string",
                     json_pack("{ss}", "param", "cursor"));
    return;
  }
  /* No page of ours has an empty cursor (as for the other lists). */
  if (json_is_string(cursor) && json_string_length(cursor) == 0) {
    sb_mcp_call_fail(c, SB_RPC_INVALID_PARAMS, "Invalid cursor",
                     json_pack("{ss}", "param", "cursor"));
    return;
  }
  srv->tasks.list(srv->tasks.ud, c, json_string_value(cursor));
}
