/* references.c: what the config names that is not there: names in the
 * workflows and virtual servers that no agent of the config answers to,
 * and stdio agents' commands that this host cannot run.
 *
 * A workflow step's call.agent or call.capability, and a virtual server's
 * include[].agent, name agents; an agent may also be registered through
 * the API later, so a name the config does not know is not an error at
 * load. But a misspelt one (`finanse`) loads fine and fails only when a
 * run reaches the step, so `switchboard check` and `serve` say so, one
 * line each, naming the file and line and what the config has. Likewise a
 * command misspelt or not installed yet: the agent is started (and
 * restarted with backoff) as configured, and `check`, `serve` and a
 * reload say why it will not start before its first try fails.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "flow/flow.h"
#include "net/net.h"

#define NAMES_MAX 300 /* the "(agents: ...)" list in a line */

static int has_agent(const json_t *agents, const char *id) {
  size_t i;
  json_t *a;
  json_array_foreach(agents, i, a) {
    const char *own = json_string_value(json_object_get(a, "id"));
    if (own && strcmp(own, id) == 0) return 1;
  }
  return 0;
}

static int offers(const json_t *agents, const char *capability) {
  size_t i, j;
  json_t *a, *c;
  json_array_foreach(agents, i, a) {
    json_array_foreach(json_object_get(a, "capabilities"), j, c) {
      const char *own = json_string_value(c);
      if (own && strcmp(own, capability) == 0) return 1;
    }
  }
  return 0;
}

/* The config's agent ids, or every capability they offer, joined by ", "
 * (cut short past NAMES_MAX with "..."). */
static void list_names(const json_t *agents, int capabilities, char *out,
                       size_t cap) {
  out[0] = '\0';
  size_t i, j, n = 0;
  json_t *a, *c;
  json_array_foreach(agents, i, a) {
    json_t *names = capabilities ? json_object_get(a, "capabilities") : NULL;
    json_t *one = capabilities ? NULL : json_object_get(a, "id");
    for (j = 0; capabilities ? j < json_array_size(names) : j < 1; j++) {
      const char *name = json_string_value(
          capabilities ? (c = json_array_get(names, j)) : one);
      if (!name) continue;
      size_t len = strlen(out);
      if (len + strlen(name) + 6 >= cap) {
        snprintf(out + len, cap - len, "%s...", n ? ", " : "");
        return;
      }
      snprintf(out + len, cap - len, "%s%s", n++ ? ", " : "", name);
    }
  }
  if (!n) snprintf(out, cap, "none");
}

static void say(sb_app_note_fn fn, void *ud, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(sb_app_note_fn fn, void *ud, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fn(ud, line);
}

size_t sb_app_unknown_references(const sb_config *cfg, const sb_flow_defs *defs,
                                 sb_app_note_fn fn, void *ud) {
  const json_t *agents = cfg->agents;
  char names[NAMES_MAX];
  size_t found = 0;
  for (size_t d = 0; defs && d < defs->len; d++) {
    const sb_flow_def *def = defs->items[d];
    for (size_t s = 0; s < def->nsteps; s++) {
      const sb_flow_step *st = &def->steps[s];
      if (st->kind != SB_FLOW_CALL) continue;
      if (st->agent && !has_agent(agents, st->agent)) {
        list_names(agents, 0, names, sizeof names);
        say(fn, ud,
            "%s:%zu: step \"%s\": call.agent: no agent \"%s\" in the "
            "config (agents: %s); a run reaching this step fails unless "
            "one is registered through the API by then",
            def->file, st->line, st->id, st->agent, names);
        found++;
      }
      if (st->capability && !offers(agents, st->capability)) {
        list_names(agents, 1, names, sizeof names);
        say(fn, ud,
            "%s:%zu: step \"%s\": call.capability: no agent of the config "
            "offers \"%s\" (capabilities: %s); a run reaching this step "
            "fails unless one is registered through the API by then",
            def->file, st->line, st->id, st->capability, names);
        found++;
      }
    }
  }
  size_t i, j;
  json_t *server, *inc;
  json_array_foreach(cfg->servers, i, server) {
    json_array_foreach(json_object_get(server, "include"), j, inc) {
      const char *id = json_string_value(json_object_get(inc, "agent"));
      if (!id || has_agent(agents, id)) continue;
      list_names(agents, 0, names, sizeof names);
      say(fn, ud,
          "config line %zu: servers[%zu].include[%zu].agent: no agent \"%s\" "
          "in the config (agents: %s); virtual server %s shows none of its "
          "tools unless one is registered through the API",
          cfg->server_lines ? cfg->server_lines[i] : 0, i, j, id, names,
          json_string_value(json_object_get(server, "name")) ?: "?");
      found++;
    }
  }
  return found;
}

size_t sb_app_missing_commands(const sb_config *cfg, sb_app_note_fn fn,
                               void *ud) {
  size_t i, found = 0;
  json_t *a;
  json_array_foreach(cfg->agents, i, a) {
    json_t *t = json_object_get(a, "transport");
    const char *type = json_string_value(json_object_get(t, "type"));
    const char *command = json_string_value(json_object_get(t, "command"));
    if (!type || strcmp(type, "stdio") != 0 || !command) continue;
    /* The PATH the agent gets: its own env's, else ours. */
    const char *path =
        json_string_value(json_object_get(json_object_get(t, "env"), "PATH"));
    char why[600];
    if (sb_child_command_check(command, path ? path : getenv("PATH"),
                               json_string_value(json_object_get(t, "cwd")),
                               why, sizeof why) == 0)
      continue;
    say(fn, ud,
        "config line %zu: agents[%zu] \"%s\": transport.command: %s; "
        "the agent does not start (it is tried again with backoff) until "
        "it can",
        cfg->agent_lines ? cfg->agent_lines[i] : 0, i,
        json_string_value(json_object_get(a, "id")) ?: "?", why);
    found++;
  }
  return found;
}
