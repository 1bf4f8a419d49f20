/* agents_cmd.c: `switchboard agents list|explain|show`: the config's
 * agents, with the changes a server stored from its API applied over them
 * (as the server applies them at start) when the store file exists.
 *
 * explain ranks the configured agents for a capability the way the
 * running server's getOptimalAgent does (registry/ scoring), against a
 * stored context when --context is given. A fresh registry has no load or
 * failures, so the ranking shows coverage and the static parts; the
 * running server's admin API shows live load. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "ctx/ctx.h"
#include "gateway/gateway.h"
#include "registry/registry.h"
#include "store/store.h"

const char sb_cli_agents_help[] =
    "Usage:\n"
    "  switchboard agents list --config FILE\n"
    "  switchboard agents explain CAPABILITY --config FILE [--context ID]\n"
    "  switchboard agents show ID --config FILE\n"
    "\n"
    "list prints the AgentDefinitions (validated) as JSON: the config's,\n"
    "with the agents registered, replaced or removed through a server's\n"
    "API (kept in its store, store.path or --store) applied over them, as\n"
    "the server applies them when it starts. Without a store file: the\n"
    "config's alone.\n"
    "show connects to one agent as the server would and prints its era,\n"
    "negotiated version, capabilities, counts of tools, resources and\n"
    "prompts, and what switchboard translates for it.\n"
    "explain prints each agent with CAPABILITY, best first, with its score\n"
    "and the parts of it (coverage of its contextRequirements by the\n"
    "context, health, spare capacity, latency).\n"
    "\n"
    "Options:\n"
    "  --config FILE     the config with the agents: section\n"
    "  --context ID      score coverage against this stored context\n"
    "  --store PATH      the server's SQLite file (overrides store.path)\n"
    "  --tenant ID       whose context (overrides auth.default_tenant)\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 done, 1 not found, unreachable or store error, 2 usage\n"
    "or config error.\n";

int sb_cli_agents_registry(const sb_config *cfg, const char *path,
                           const char *cmd, sb_registry **out) {
  sb_registry_options ro = {.sees_user = sb_gateway_sees_user};
  sb_registry *reg = sb_registry_new(&ro);
  if (!reg) return EXIT_RUNTIME;
  for (size_t i = 0; i < json_array_size(cfg->agents); i++) {
    sb_agent_def *def = NULL;
    sb_error err = {0};
    if (sb_agent_def_parse(json_array_get(cfg->agents, i), &def, &err) != 0 ||
        sb_registry_register_take(reg, def, 0, &err) != 0) {
      sb_cli_eprintf("switchboard%s%s: %s:%zu: agents[%zu].%s\n",
                     cmd ? " " : "", cmd ? cmd : "", path,
                     cfg->agent_lines ? cfg->agent_lines[i] : 0, i, err.msg);
      sb_registry_free(reg);
      return EXIT_USAGE;
    }
  }
  if (out)
    *out = reg;
  else
    sb_registry_free(reg);
  return EXIT_OK;
}

/* Apply the agent changes a server stored from its API (read when the
 * store opened) over the config's registry, as app/agent_admin.c does at
 * start: a removal drops the id, a definition takes its place; one that no
 * longer validates starts nothing (the config's definition of that id is
 * not used either). */
static void apply_stored(sb_cli_ctx *c, sb_registry *reg) {
  sb_store_agent_rows rows;
  sb_store_agents_at_open(c->store, &rows);
  for (size_t i = 0; i < rows.len; i++) {
    const sb_store_agent_row *r = &rows.items[i];
    sb_agent_def *def = NULL;
    sb_error err = {0};
    if (r->definition &&
        sb_agent_def_parse_text(r->definition, strlen(r->definition), &def,
                                &err) == 0 &&
        sb_registry_register_take(reg, def, 1, &err) == 0)
      continue;
    sb_registry_remove(reg, r->id);
    if (r->definition)
      sb_cli_eprintf(
          "switchboard agents: agent %s, registered through the API (by "
          "tenant %s), is not started by the server: %s\n",
          r->id, r->tenant, err.msg);
  }
  sb_store_agent_rows_clear(&rows);
}

int sb_cli_agents(int argc, char **argv) {
  const char *config = NULL, *context = NULL, *store = NULL, *tenant = NULL;
  const char *pos[2] = {NULL, NULL};
  int npos = 0;
  for (int i = 0; i < argc; i++) {
    if (sb_cli_is_help(argv[i])) {
      fputs(sb_cli_agents_help, stdout);
      return EXIT_OK;
    }
    const char *const names[] = {"--config", "--context", "--store",
                                 "--tenant"};
    const char **const slots[] = {&config, &context, &store, &tenant};
    int rc = sb_cli_take_option("agents", argc, argv, &i, names, slots, 4);
    if (rc < 0) return EXIT_USAGE;
    if (rc) continue;
    if (argv[i][0] == '-')
      return sb_cli_usage_error("agents", "unknown option '%s'", argv[i]);
    if (npos == 2)
      return sb_cli_usage_error("agents", "unexpected argument '%s'", argv[i]);
    pos[npos++] = argv[i];
  }
  int is_list = npos == 1 && strcmp(pos[0], "list") == 0;
  int is_explain = npos == 2 && strcmp(pos[0], "explain") == 0;
  int is_show = npos == 2 && strcmp(pos[0], "show") == 0;
  if (!is_list && !is_explain && !is_show)
    return sb_cli_usage_error("agents", "%s",
                              "expected 'list', 'explain CAPABILITY' or "
                              "'show ID'");
  if ((is_explain || is_show) && !*pos[1])
    return sb_cli_usage_error("agents", "%s",
                              is_explain ? "CAPABILITY: empty" : "ID: empty");
  if (!config) return sb_cli_usage_error("agents", "%s", "missing --config FILE");

  sb_config cfg;
  sb_error err = {0};
  sb_config_defaults(&cfg);
  sb_registry *reg = NULL;
  sb_cli_ctx c;
  memset(&c, 0, sizeof c); /* closing an unopened one does nothing */
  json_t *out = NULL, *data = NULL;
  int rc = EXIT_USAGE;
  if (sb_config_load(&cfg, config, &err) != 0 ||
      (store && sb_config_set_store_path(&cfg, store, &err) != 0) ||
      (tenant && sb_config_set_default_tenant(&cfg, tenant, &err) != 0)) {
    sb_cli_eprintf("switchboard agents: %s\n", err.msg);
    goto done;
  }
  if ((rc = sb_cli_agents_registry(&cfg, config, "agents", &reg)) != EXIT_OK)
    goto done;
  /* The command's own lines are the output; the modules' (an agent's
   * stderr among them) are for trouble, as for `run`. */
  sb_log_set_level(cfg.log_level > SB_LOG_WARNING ? (sb_log_level)cfg.log_level
                                                  : SB_LOG_WARNING);
  int r = sb_cli_ctx_open(&c, &cfg, &err);
  if (r == 0) {
    apply_stored(&c, reg);
  } else if (r != SB_ENOENT || context) {
    sb_cli_eprintf("switchboard agents: %s\n", err.msg);
    rc = EXIT_RUNTIME;
    goto done;
  }
  if (is_show) {
    const sb_agent_def *def = sb_registry_get(reg, pos[1]);
    if (!def) {
      sb_cli_eprintf(
          "switchboard agents: no agent %s in the config or registered "
          "through the API\n",
          pos[1]);
      rc = EXIT_RUNTIME; /* not found, as for context and runs */
      goto done;
    }
    sb_cli_ctx_close(&c); /* the store's threads are not needed meanwhile */
    signal(SIGPIPE, SIG_IGN);
    rc = sb_cli_agents_show(&cfg, sb_agent_def_ref((sb_agent_def *)def));
    goto done;
  }
  if (is_list) {
    out = json_array();
    for (size_t i = 0; i < sb_registry_count(reg); i++) {
      /* As GET /v1/agents shows them: without the agents' credentials. */
      json_t *def = sb_agent_def_to_json(sb_registry_at(reg, i));
      if (def) sb_agent_def_json_redact(def);
      json_array_append_new(out, def);
    }
  } else {
    if (context) {
      json_t *doc = NULL;
      if (sb_cli_ctx_wait(&c, sb_ctx_get_async(c.m, cfg.default_tenant,
                                               context, 0, sb_cli_ctx_done,
                                               &c, &err),
                          &doc, &err) != 0) {
        sb_cli_eprintf("switchboard agents: %s\n", err.msg);
        rc = EXIT_RUNTIME;
        goto done;
      }
      data = json_incref(json_object_get(doc, "data"));
      json_decref(doc);
    }
    if (sb_registry_explain(reg, pos[1], data, sb_now_ms(), &out, &err) != 0) {
      sb_cli_eprintf("switchboard agents: %s\n", err.msg);
      rc = EXIT_RUNTIME;
      goto done;
    }
  }
  char *text = sb_json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                      JSON_REAL_PRECISION(6));
  if (text) puts(text);
  sb_free(text);
  rc = EXIT_OK;
done:
  sb_cli_ctx_close(&c);
  json_decref(out);
  json_decref(data);
  sb_registry_free(reg);
  sb_config_free(&cfg);
  return rc;
}
