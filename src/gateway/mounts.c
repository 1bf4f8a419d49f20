/* mounts.c: MCP servers that show agents as they are.
 *
 * The main endpoint (/mcp) serves every agent's tools as agent__tool
 * beside switchboard's own. A mount is a further MCP server, of providers
 * only, that serves agents' tools, resources, templates, prompts and
 * completions under their own names:
 *
 *   - a per-agent mount, /agents/{id}/mcp or `serve --stdio --agent ID`:
 *     everything one agent offers, made on first use;
 *   - a virtual server, /servers/{name}/mcp, from the config's `servers:`
 *     list: the chosen tools, resources and prompts of several agents.
 *
 * Both eras are served whatever the agent speaks (mcp/ does the client's
 * era, calls.c and call_inputs.c translate what crosses). Requests go
 * through the same pipeline as agent__tool calls (deadline, breaker,
 * retries where safe) without falling back to other agents: a client that
 * names an agent gets that agent. Lists come from the agents' caches
 * (pool.c), so a list request never waits for an agent; list_changed,
 * resources/updated and log messages from an agent reach the mounts that
 * show it.
 *
 * A virtual server's item names are the agents' own; when two included
 * agents use the same name, the earlier include wins.
 *
 * An agent that is down (and has nothing cached) is not an empty list: a
 * per-agent mount answers list requests with an error naming the agent and
 * why. A virtual server lists what its live agents serve, and fails the
 * same way only when none of them is up.
 *
 * Lists are the caller's own: an agent the caller may not use
 * (opts.agent_visible: "agents:<id>") is left out of them, down or not, as
 * if the mount did not include it; what it serves is refused when asked
 * for anyway (opts.permit_agent, in gw_mcp_forward).
 */
#include "gateway/gateway_internal.h"

#define MODULE "mounts"
#define NAME_MAX_LEN 64

typedef struct include {
  char *agent;
  json_t *tools;     /* names, or NULL = all */
  json_t *resources; /* URI prefixes, or NULL = all */
  json_t *prompts;   /* names, or NULL = all */
} include;

typedef struct mount {
  sb_gateway *gw;
  char *name; /* the agent id, or the virtual server's name */
  int is_agent;
  include *includes; /* virtual servers */
  size_t nincludes;
  sb_mcp_server *srv;
} mount;

/* ---- what a mount shows ------------------------------------------------- */

static int name_in(json_t *names, const char *name) {
  if (!names) return 1;
  size_t i;
  json_t *v;
  json_array_foreach(names, i,
                     v) if (strcmp(json_string_value(v), name) == 0) return 1;
  return 0;
}

static int uri_in(json_t *prefixes, const char *uri) {
  if (!prefixes) return 1;
  size_t i;
  json_t *v;
  json_array_foreach(prefixes, i, v) {
    const char *p = json_string_value(v);
    if (strncmp(uri, p, strlen(p)) == 0) return 1;
  }
  return 0;
}

/* The field that names an item of `kind`. */
static const char *item_key(int kind) {
  return kind == LIST_RESOURCES   ? "uri"
         : kind == LIST_TEMPLATES ? "uriTemplate"
                                  : "name";
}

/* Whether include inc lets an item of `kind` through. */
static int included(const include *inc, int kind, json_t *item) {
  const char *key = item_key(kind);
  const char *v = json_string_value(json_object_get(item, key));
  if (!v) return 0;
  if (kind == LIST_TOOLS) return name_in(inc->tools, v);
  if (kind == LIST_PROMPTS) return name_in(inc->prompts, v);
  return uri_in(inc->resources, v);
}

/* The n-th agent of the mount (with its include, NULL for a per-agent
 * mount), or NULL past the end or when that agent is not registered. */
static agent *mount_agent(mount *m, size_t n, const include **inc) {
  sb_gateway *o = m->gw;
  *inc = NULL;
  if (m->is_agent) return n == 0 ? gw_agent_find(o, m->name) : NULL;
  if (n >= m->nincludes) return NULL;
  *inc = &m->includes[n];
  return gw_agent_find(o, m->includes[n].agent);
}

static size_t mount_width(mount *m) { return m->is_agent ? 1 : m->nincludes; }

/* 1 if an earlier item in out already has this name (or URI). */
static int already(json_t *out, const char *key, const char *v) {
  size_t i;
  json_t *item;
  json_array_foreach(out, i, item) {
    const char *w = json_string_value(json_object_get(item, key));
    if (w && strcmp(w, v) == 0) return 1;
  }
  return 0;
}

/* Fail the list request: no agent of the mount can serve it. `down` is
 * [{agent, reason}...] (stolen). */
static void fail_list_down(mount *m, sb_mcp_call *call, int kind,
                           json_t *down) {
  char msg[512];
  size_t len = 0;
  if (m->is_agent)
    len = (size_t)snprintf(msg, sizeof msg,
                           "agent %s is down, so its %s cannot "
                           "be listed: ",
                           m->name, gw_list_kinds[kind].key);
  else
    len = (size_t)snprintf(msg, sizeof msg,
                           "every agent of virtual server %s "
                           "is down, so its %s cannot be listed: ",
                           m->name, gw_list_kinds[kind].key);
  size_t i;
  json_t *d;
  json_array_foreach(down, i, d) {
    if (len >= sizeof msg) break;
    len += (size_t)snprintf(
        msg + len, sizeof msg - len, m->is_agent ? "%s%s" : "%sagent %s (%s)",
        i ? "; " : "",
        m->is_agent ? json_string_value(json_object_get(d, "reason"))
                    : json_string_value(json_object_get(d, "agent")),
        json_string_value(json_object_get(d, "reason")));
  }
  json_t *data = m->is_agent ? json_deep_copy(json_array_get(down, 0))
                             : json_pack("{so}", "agents", json_incref(down));
  json_decref(down);
  sb_mcp_call_fail_list(call, SB_RPC_INTERNAL_ERROR, msg, data);
}

/* 1 if the caller may see the items of agent id. */
static int agent_visible(mount *m, sb_mcp_call *call, const char *id) {
  const sb_gateway_options *o = &m->gw->opts;
  return !o->agent_visible || o->agent_visible(o->permit_ud, call, id);
}

static void list_kind(mount *m, sb_mcp_call *call, int kind, json_t *out) {
  const char *key = item_key(kind);
  json_t *down = json_array();
  size_t live = 0;
  for (size_t n = 0; n < mount_width(m); n++) {
    const include *inc;
    agent *a = mount_agent(m, n, &inc);
    if (!agent_visible(m, call, m->is_agent ? m->name : m->includes[n].agent))
      continue;
    json_t *items = a ? gw_agent_list_items(a, kind) : NULL;
    const char *why = "not registered";
    /* What it served before a brief loss (a session re-opened) still is. */
    if (!a || (!items && !gw_agent_up(a, &why))) {
      json_array_append_new(down,
                            json_pack("{ssss}", "agent",
                                      a             ? a->def->id
                                      : m->is_agent ? m->name
                                                    : m->includes[n].agent,
                                      "reason", why));
      continue;
    }
    live++;
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item) {
      const char *v = json_string_value(json_object_get(item, key));
      if (!v || (inc && !included(inc, kind, item)) ||
          (!m->is_agent && already(out, key, v)))
        continue;
      json_array_append(out, item);
    }
  }
  if (!live && json_array_size(down))
    fail_list_down(m, call, kind, down);
  else
    json_decref(down);
}

/* The agent of the mount that serves `v` as an item of `kind` (a name, a
 * template's uriTemplate, or for resources a URI listed or matching a
 * template's fixed prefix). */
static agent *owner_of(mount *m, int kind, const char *v) {
  const char *key = item_key(kind);
  for (size_t n = 0; n < mount_width(m); n++) {
    const include *inc;
    agent *a = mount_agent(m, n, &inc);
    if (!a) continue;
    size_t i;
    json_t *item;
    json_array_foreach(gw_agent_list_items(a, kind), i, item) {
      const char *w = json_string_value(json_object_get(item, key));
      if (w && strcmp(w, v) == 0 && (!inc || included(inc, kind, item)))
        return a;
    }
    if (kind != LIST_RESOURCES) continue;
    if (inc && !uri_in(inc->resources, v)) continue;
    json_array_foreach(gw_agent_list_items(a, LIST_TEMPLATES), i, item) {
      const char *t = json_string_value(json_object_get(item, "uriTemplate"));
      const char *brace = t ? strchr(t, '{') : NULL;
      size_t fixed = brace ? (size_t)(brace - t) : (t ? strlen(t) : 0);
      if (t && strncmp(v, t, fixed) == 0 && (brace || v[fixed] == '\0'))
        return a;
    }
  }
  return NULL;
}

/* The MCP server's item_visible: the item's agent may be used by the
 * caller (list_kind left out the agents it may not; this keeps a virtual
 * server's name that an earlier, refused agent owns out too, as calls to
 * it go there). */
static int mount_item_visible(void *ud, sb_mcp_call *call,
                              sb_mcp_item_kind kind, const char *name) {
  mount *m = ud;
  int lk = kind == SB_MCP_ITEM_TOOL       ? LIST_TOOLS
           : kind == SB_MCP_ITEM_RESOURCE ? LIST_RESOURCES
           : kind == SB_MCP_ITEM_TEMPLATE ? LIST_TEMPLATES
                                          : LIST_PROMPTS;
  if (m->is_agent) return 1; /* list_kind decided */
  agent *a = owner_of(m, lk, name);
  return !a || agent_visible(m, call, a->def->id);
}

/* ---- the provider -------------------------------------------------------- */

static void p_list_tools(void *ud, sb_mcp_call *call, json_t *out) {
  list_kind(ud, call, LIST_TOOLS, out);
}
static void p_list_resources(void *ud, sb_mcp_call *call, json_t *out) {
  list_kind(ud, call, LIST_RESOURCES, out);
}
static void p_list_templates(void *ud, sb_mcp_call *call, json_t *out) {
  list_kind(ud, call, LIST_TEMPLATES, out);
}
static void p_list_prompts(void *ud, sb_mcp_call *call, json_t *out) {
  list_kind(ud, call, LIST_PROMPTS, out);
}

/* A per-agent mount forwards whatever it is asked, even before the agent
 * has listed (the agent then answers "unknown tool" itself), so a client
 * sees the agent's own errors; a virtual server only what it includes. */
static agent *route(mount *m, int kind, const char *v) {
  const include *inc;
  if (m->is_agent) return mount_agent(m, 0, &inc);
  return v ? owner_of(m, kind, v) : NULL;
}

/* A tool or prompt by name: to the agent that serves it, if any. */
static int forward_named(mount *m, int kind, sb_mcp_call *call,
                         const char *name) {
  agent *a = route(m, kind, name);
  if (!a) return 0;
  gw_mcp_forward(m->gw, a, call, name);
  return 1;
}

static int p_call_tool(void *ud, sb_mcp_call *call, const char *name,
                       json_t *args) {
  return forward_named(ud, LIST_TOOLS, call, name);
}

static int p_read_resource(void *ud, sb_mcp_call *call, const char *uri) {
  mount *m = ud;
  agent *a = route(m, LIST_RESOURCES, uri);
  if (!a) return 0;
  gw_mcp_forward(m->gw, a, call, NULL);
  return 1;
}

static int p_get_prompt(void *ud, sb_mcp_call *call, const char *name,
                        json_t *args) {
  return forward_named(ud, LIST_PROMPTS, call, name);
}

static int p_complete(void *ud, sb_mcp_call *call, json_t *ref, json_t *arg) {
  mount *m = ud;
  const char *type = json_string_value(json_object_get(ref, "type"));
  const char *name = json_string_value(json_object_get(ref, "name"));
  const char *uri = json_string_value(json_object_get(ref, "uri"));
  agent *a = NULL;
  if (type && strcmp(type, "ref/prompt") == 0) a = route(m, LIST_PROMPTS, name);
  /* A resource ref names a template: the agent listing it. */
  else if (type && strcmp(type, "ref/resource") == 0)
    a = route(m, LIST_TEMPLATES, uri);
  if (!a) return 0;
  gw_mcp_forward(m->gw, a, call, NULL);
  return 1;
}

/* The MCP server's authorize, for resources: a resource's agent must be
 * the caller's to use. A subscription is refused here; a read meets the
 * same check again where it is forwarded (gw_mcp_forward, where calls and
 * gets meet theirs). */
static int mount_authorize(void *ud, sb_mcp_call *call, sb_mcp_item_kind kind,
                           const char *name, json_t *args) {
  (void)args;
  mount *m = ud;
  const sb_gateway_options *o = &m->gw->opts;
  if (kind != SB_MCP_ITEM_RESOURCE || !o->permit_agent) return 0;
  agent *a = route(m, LIST_RESOURCES, name);
  return a ? o->permit_agent(o->permit_ud, call, a->def->id) : 0;
}

static void p_subscribe(void *ud, const char *uri, int on,
                        sb_mcp_sub_wait *wait) {
  mount *m = ud;
  agent *a = route(m, LIST_RESOURCES, uri);
  if (a) gw_agent_subscribe(a, uri, on, wait);
}

/* What the mount announces: the agent's own capabilities (a virtual
 * server: the union of its agents'), with list_changed on, since agents
 * come and go. Before an agent has connected, everything we can serve. */
static json_t *p_capabilities(void *ud) {
  mount *m = ud;
  json_t *caps = json_object();
  int any = 0;
  for (size_t n = 0; n < mount_width(m); n++) {
    const include *inc;
    agent *a = mount_agent(m, n, &inc);
    json_t *theirs = a && a->client && sb_mcp_client_connected(a->client)
                         ? sb_mcp_client_server_capabilities(a->client)
                         : NULL;
    if (!theirs) continue;
    any = 1;
    const char *key;
    json_t *v;
    json_object_foreach(theirs, key, v) {
      if (strcmp(key, "experimental") == 0) continue;
      json_t *mine = json_object_get(caps, key);
      if (!mine)
        json_object_set_new(caps, key, json_deep_copy(v));
      else if (json_is_object(mine) && json_is_object(v))
        json_object_update_missing(mine, v);
    }
  }
  if (!any) {
    json_decref(caps);
    caps = json_pack("{s{}s{sb}s{}s{}s{}}", "tools", "resources", "subscribe",
                     1, "prompts", "logging", "completions");
  }
  static const char *const listed[] = {"tools", "resources", "prompts"};
  for (int i = 0; i < 3; i++) {
    json_t *c = json_object_get(caps, listed[i]);
    if (json_is_object(c)) json_object_set_new(c, "listChanged", json_true());
  }
  return caps;
}

/* ---- mounts -------------------------------------------------------------- */

static void include_clear(include *inc) {
  sb_free(inc->agent);
  json_decref(inc->tools);
  json_decref(inc->resources);
  json_decref(inc->prompts);
}

static void mount_free(mount *m) {
  if (!m) return;
  sb_mcp_server_free(m->srv); /* destroys nothing of ours: no destroy cb */
  for (size_t i = 0; i < m->nincludes; i++)
    include_clear(&m->includes[i]);
  sb_free(m->includes);
  sb_free(m->name);
  sb_free(m);
}

static mount *mount_new(sb_gateway *gw, const char *name, int is_agent,
                        const char *description) {
  mount *m = sb_calloc(1, sizeof *m);
  if (!m || !(m->name = sb_strdup(name))) {
    sb_free(m);
    return NULL;
  }
  m->gw = gw;
  m->is_agent = is_agent;
  char *server_name =
      sb_asprintf("switchboard/%s/%s", is_agent ? "agents" : "servers", name);
  char *instructions =
      description ? NULL
                  : sb_asprintf(is_agent ? "Agent %s, through switchboard."
                                         : "Virtual server %s, through "
                                           "switchboard.",
                                name);
  sb_mcp_server_options so = {.limits = gw->opts.mcp_limits,
                              .default_tenant = gw->default_tenant,
                              .loop = gw->opts.loop,
                              .name = server_name,
                              .instructions =
                                  description ? description : instructions,
                              .no_builtins = 1,
                              .capabilities = p_capabilities,
                              .capabilities_ud = m,
                              .admission = gw->opts.admission,
                              .item_visible = mount_item_visible,
                              .authorize = mount_authorize,
                              .authorize_ud = m};
  m->srv = server_name ? sb_mcp_server_new(&so) : NULL;
  sb_free(server_name);
  sb_free(instructions);
  sb_mcp_provider p = {.name = is_agent ? "agent" : "virtual server",
                       .ud = m,
                       .list_tools = p_list_tools,
                       .call_tool = p_call_tool,
                       .list_resources = p_list_resources,
                       .list_templates = p_list_templates,
                       .read_resource = p_read_resource,
                       .list_prompts = p_list_prompts,
                       .get_prompt = p_get_prompt,
                       .complete = p_complete,
                       .subscribe = p_subscribe,
                       .volatile_lists = 1};
  if (!m->srv || sb_mcp_server_add_provider(m->srv, &p) != 0) {
    mount_free(m);
    return NULL;
  }
  return m;
}

static int mounts_append(gw_mounts *ms, mount *m) {
  mount **grown = sb_realloc(ms->list, (ms->len + 1) * sizeof *grown);
  if (!grown) return SB_ENOMEM;
  ms->list = grown;
  ms->list[ms->len++] = m;
  return 0;
}

static mount *find_mount(gw_mounts *ms, const char *name, int is_agent) {
  for (size_t i = 0; ms && i < ms->len; i++)
    if (ms->list[i]->is_agent == is_agent &&
        strcmp(ms->list[i]->name, name) == 0)
      return ms->list[i];
  return NULL;
}

sb_mcp_server *sb_gateway_agent_server(sb_gateway *gw, const char *id) {
  mount *m = find_mount(gw->mounts, id, 1);
  if (m) return m->srv;
  if (!gw_agent_find(gw, id)) return NULL;
  if (!(m = mount_new(gw, id, 1, NULL))) return NULL;
  if (mounts_append(gw->mounts, m) != 0) {
    mount_free(m);
    return NULL;
  }
  SB_INFO(MODULE, "serving agent %s on its own endpoint", id);
  return m->srv;
}

sb_mcp_server *sb_gateway_virtual_server(sb_gateway *gw, const char *name) {
  mount *m = find_mount(gw->mounts, name, 0);
  return m ? m->srv : NULL;
}

/* Every mount showing agent id. */
#define FOR_MOUNTS_OF(gw, id, m)                                               \
  for (size_t i_ = 0; (gw)->mounts && i_ < (gw)->mounts->len; i_++)            \
    if (((m) = (gw)->mounts->list[i_]) && mount_shows((m), (id)))

static int mount_shows(mount *m, const char *id) {
  if (m->is_agent) return strcmp(m->name, id) == 0;
  for (size_t i = 0; i < m->nincludes; i++)
    if (strcmp(m->includes[i].agent, id) == 0) return 1;
  return 0;
}

void gw_mounts_list_changed(sb_gateway *gw, const char *agent_id,
                            const char *kind) {
  mount *m;
  FOR_MOUNTS_OF(gw, agent_id, m) sb_mcp_server_list_changed(m->srv, kind);
}

void gw_mounts_resource_updated(sb_gateway *gw, const char *agent_id,
                                const char *uri) {
  mount *m;
  FOR_MOUNTS_OF(gw, agent_id, m) sb_mcp_server_resource_updated(m->srv, uri);
}

void gw_mounts_log(sb_gateway *gw, const char *agent_id, json_t *params) {
  mount *m;
  /* Only the agent's own endpoint: its clients chose that agent. */
  FOR_MOUNTS_OF(gw, agent_id, m)
  if (m->is_agent) sb_mcp_server_forward_log(m->srv, params);
}

/* ---- virtual servers from the config ------------------------------------ */

static int valid_name(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > NAME_MAX_LEN) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
      return 0;
  return 1;
}

/* An optional list of non-empty strings; *out NULL when absent. */
static int string_list(json_t *v, const char *path, json_t **out,
                       sb_error *err) {
  *out = NULL;
  if (!v) return 0;
  size_t i;
  json_t *s;
  if (!json_is_array(v))
    return sb_error_set(err, SB_EINVAL,
                        "%s: expected a list of strings, got %s", path,
                        sb_json_type_name(v));
  json_array_foreach(
      v, i,
      s) if (!json_is_string(s) ||
             !*json_string_value(
                 s)) return sb_error_set(err, SB_EINVAL,
                                         "%s[%zu]: expected a non-empty string",
                                         path, i);
  *out = json_incref(v);
  return 0;
}

static int parse_include(json_t *v, const char *path, include *inc,
                         sb_error *err) {
  if (!json_is_object(v))
    return sb_error_set(err, SB_EINVAL, "%s: expected a mapping, got %s", path,
                        sb_json_type_name(v));
  const char *key;
  json_t *f;
  json_object_foreach(v, key, f) {
    if (strcmp(key, "agent") && strcmp(key, "tools") &&
        strcmp(key, "resources") && strcmp(key, "prompts"))
      return sb_error_set(err, SB_EINVAL,
                          "%s.%s: unknown field (known: agent, tools, "
                          "resources, prompts)",
                          path, key);
  }
  const char *id = json_string_value(json_object_get(v, "agent"));
  if (!id || !*id)
    return sb_error_set(err, SB_EINVAL,
                        "%s.agent: required: the id of an agent", path);
  char sub[160];
  int rc;
  snprintf(sub, sizeof sub, "%s.tools", path);
  if ((rc = string_list(json_object_get(v, "tools"), sub, &inc->tools, err)))
    return rc;
  snprintf(sub, sizeof sub, "%s.resources", path);
  if ((rc = string_list(json_object_get(v, "resources"), sub, &inc->resources,
                        err)))
    return rc;
  snprintf(sub, sizeof sub, "%s.prompts", path);
  if ((rc =
           string_list(json_object_get(v, "prompts"), sub, &inc->prompts, err)))
    return rc;
  inc->agent = sb_strdup(id);
  return inc->agent ? 0 : sb_error_set(err, SB_ENOMEM, "out of memory");
}

/* What a `servers:` item must be, checked without a gateway: its keys,
 * name, description and includes. `switchboard check` runs it too, so a
 * config that serve would refuse at start is not reported ok. */
static int server_check(json_t *v, const char *path, sb_error *err) {
  if (!json_is_object(v))
    return sb_error_set(err, SB_EINVAL, "%s: expected a mapping", path);
  const char *key;
  json_t *f;
  json_object_foreach(v, key, f) {
    if (strcmp(key, "name") && strcmp(key, "description") &&
        strcmp(key, "include"))
      return sb_error_set(
          err, SB_EINVAL,
          "%s.%s: unknown field (known: name, description, include)", path,
          key);
  }
  if (!valid_name(json_string_value(json_object_get(v, "name"))))
    return sb_error_set(
        err, SB_EINVAL,
        "%s.name: required: 1 to %d letters, digits, '-', '_' or '.'", path,
        NAME_MAX_LEN);
  json_t *desc = json_object_get(v, "description");
  if (desc && !json_is_string(desc))
    return sb_error_set(err, SB_EINVAL, "%s.description: expected a string",
                        path);
  json_t *incs = json_object_get(v, "include");
  if (!json_is_array(incs) || json_array_size(incs) == 0)
    return sb_error_set(err, SB_EINVAL,
                        "%s.include: required: a non-empty list of {agent, "
                        "tools, resources, prompts}",
                        path);
  size_t i;
  json_t *item;
  json_array_foreach(incs, i, item) {
    char sub[128];
    snprintf(sub, sizeof sub, "%s.include[%zu]", path, i);
    include inc = {0};
    int rc = parse_include(item, sub, &inc, err);
    include_clear(&inc);
    if (rc != 0) return rc;
  }
  return 0;
}

int sb_gateway_check_servers(const json_t *servers, const size_t *lines,
                             sb_error *err) {
  size_t i;
  json_t *v;
  json_array_foreach(servers, i, v) {
    char path[48];
    snprintf(path, sizeof path, "servers[%zu]", i);
    sb_error perr = {0};
    const char *name = json_string_value(json_object_get(v, "name"));
    int rc = server_check(v, path, &perr);
    for (size_t j = 0; rc == 0 && j < i; j++)
      if (strcmp(name, json_string_value(json_object_get(
                           json_array_get(servers, j), "name"))) == 0)
        rc = sb_error_set(&perr, SB_EINVAL,
                          "%s.name: %s is already a virtual server", path,
                          name);
    if (rc != 0)
      return sb_error_set(err, rc, "config line %zu: %s", lines ? lines[i] : 0,
                          perr.msg);
  }
  return 0;
}

/* One `servers:` item into a mount (NULL with err naming the path). */
static mount *parse_server(sb_gateway *gw, json_t *v, const char *path,
                           sb_error *err) {
  if (server_check(v, path, err) != 0) return NULL;
  const char *name = json_string_value(json_object_get(v, "name"));
  if (find_mount(gw->mounts, name, 0)) {
    sb_error_set(err, SB_EINVAL, "%s.name: %s is already a virtual server",
                 path, name);
    return NULL;
  }
  json_t *desc = json_object_get(v, "description");
  json_t *incs = json_object_get(v, "include");
  mount *m = mount_new(gw, name, 0, json_string_value(desc));
  if (!m ||
      !(m->includes = sb_calloc(json_array_size(incs), sizeof *m->includes))) {
    mount_free(m);
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  size_t i;
  json_t *item;
  json_array_foreach(incs, i, item) {
    char sub[128];
    snprintf(sub, sizeof sub, "%s.include[%zu]", path, i);
    m->nincludes = i + 1;
    if (parse_include(item, sub, &m->includes[i], err) != 0) {
      mount_free(m);
      return NULL;
    }
  }
  return m;
}

int sb_gateway_add_servers(sb_gateway *gw, const json_t *servers,
                           const size_t *lines, sb_error *err) {
  size_t i;
  json_t *v;
  json_array_foreach(servers, i, v) {
    char path[48];
    snprintf(path, sizeof path, "servers[%zu]", i);
    sb_error perr = {0};
    mount *m = parse_server(gw, v, path, &perr);
    if (!m || mounts_append(gw->mounts, m) != 0) {
      mount_free(m);
      return sb_error_set(err, perr.code ? perr.code : SB_ENOMEM,
                          "config line %zu: %s", lines ? lines[i] : 0,
                          perr.msg[0] ? perr.msg : "out of memory");
    }
    SB_INFO(MODULE, "virtual server %s (%zu agent(s))", m->name, m->nincludes);
  }
  return 0;
}

void gw_mounts_stop(sb_gateway *gw) {
  gw_mounts *ms = gw->mounts;
  if (!ms) return;
  for (size_t i = 0; i < ms->len; i++)
    mount_free(ms->list[i]);
  sb_free(ms->list);
  sb_free(ms);
  gw->mounts = NULL;
}

/* ---- HTTP: /agents/{id}/mcp and /servers/{name}/mcp ---------------------- */

sb_mcp_server *sb_gateway_mount_resolve(void *ud, const char *path) {
  sb_gateway *gw = ud;
  int is_agent = strncmp(path, "/agents/", 8) == 0;
  if (!is_agent && strncmp(path, "/servers/", 9) != 0) return NULL;
  const char *name = path + (is_agent ? 8 : 9);
  const char *slash = strchr(name, '/');
  if (!slash || strcmp(slash, "/mcp") != 0) return NULL;
  char buf[NAME_MAX_LEN + 1];
  size_t n = (size_t)(slash - name);
  if (n == 0 || n > NAME_MAX_LEN) return NULL;
  memcpy(buf, name, n);
  buf[n] = '\0';
  return is_agent ? sb_gateway_agent_server(gw, buf)
                  : sb_gateway_virtual_server(gw, buf);
}
