/* context_cmd.c: `switchboard context get|history|diff`, reading contexts
 * straight from the store a server writes (SQLite in WAL mode lets a
 * reader run beside the server). Output is JSON on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "ctx/ctx.h"
#include "store/store.h"

const char sb_cli_context_help[] =
    "Usage:\n"
    "  switchboard context get ID [--version N] [--requirements P1,P2,...]\n"
    "  switchboard context history ID [--before N] [--limit N]\n"
    "  switchboard context diff ID FROM TO\n"
    "\n"
    "Read a context (or a past version, or the projection an agent with\n"
    "those requirement paths receives), its version history, or the JSON\n"
    "Patch between two versions. Prints JSON on stdout.\n"
    "\n"
    "Options:\n"
    "  --config FILE     read store.path and auth.default_tenant from FILE\n"
    "  --store PATH      the SQLite file (overrides store.path)\n"
    "  --tenant ID       whose context (overrides auth.default_tenant)\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 found, 1 not found or store error, 2 usage error.\n";

typedef struct ctx_args {
  const char *config, *store, *tenant, *version, *requirements, *before,
      *limit;
  const char *positional[4];
  int npositional;
} ctx_args;

static int parse(int argc, char **argv, ctx_args *a) {
  static const char *const names[] = {"--config",  "--store",
                                      "--tenant",  "--version",
                                      "--requirements", "--before",
                                      "--limit"};
  const char **const slots[] = {&a->config,  &a->store,        &a->tenant,
                                &a->version, &a->requirements, &a->before,
                                &a->limit};
  for (int i = 0; i < argc; i++) {
    int rc = sb_cli_take_option("context", argc, argv, &i, names, slots,
                                sizeof names / sizeof names[0]);
    if (rc < 0) return EXIT_USAGE;
    if (rc) continue;
    if (argv[i][0] == '-')
      return sb_cli_usage_error("context", "unknown option '%s'", argv[i]);
    if (a->npositional == 4)
      return sb_cli_usage_error("context", "unexpected argument '%s'", argv[i]);
    a->positional[a->npositional++] = argv[i];
  }
  return 0;
}

/* A positive integer argument, or -1 with a usage error printed. */
static long long number(const char *what, const char *v) {
  int64_t n = 0;
  if (!v || sb_parse_digits(v, strlen(v), &n) != 0 || n < 1) {
    sb_cli_usage_error("context", "%s: expected an integer >= 1", what);
    return -1;
  }
  return n;
}

static int print_json(json_t *v) {
  char *text = sb_json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(v);
  if (!text) return EXIT_RUNTIME;
  puts(text);
  sb_free(text);
  return EXIT_OK;
}

int sb_cli_context(int argc, char **argv) {
  ctx_args a = {0};
  for (int i = 0; i < argc; i++)
    if (sb_cli_is_help(argv[i])) {
      fputs(sb_cli_context_help, stdout);
      return EXIT_OK;
    }
  if (parse(argc, argv, &a) != 0) return EXIT_USAGE;
  if (a.npositional < 2)
    return sb_cli_usage_error("context", "%s",
                              "expected get|history|diff and a context ID");
  const char *verb = a.positional[0], *id = a.positional[1];
  int is_get = strcmp(verb, "get") == 0, is_hist = strcmp(verb, "history") == 0,
      is_diff = strcmp(verb, "diff") == 0;
  if (!is_get && !is_hist && !is_diff)
    return sb_cli_usage_error("context", "unknown subcommand '%s'", verb);
  if (a.npositional != (is_diff ? 4 : 2))
    return sb_cli_usage_error("context", "%s",
                              is_diff ? "diff needs ID FROM TO"
                                      : "expected exactly one context ID");

  sb_config cfg;
  sb_error err = {0};
  sb_config_defaults(&cfg);
  int rc = EXIT_USAGE;
  if ((a.config && sb_config_load(&cfg, a.config, &err) != 0) ||
      (a.store && sb_config_set_store_path(&cfg, a.store, &err) != 0) ||
      (a.tenant && sb_config_set_default_tenant(&cfg, a.tenant, &err) != 0)) {
    sb_cli_eprintf("switchboard context: %s\n", err.msg);
    goto done;
  }
  long long version = a.version ? number("--version", a.version) : 0;
  long long before = a.before ? number("--before", a.before) : 0;
  long long limit = a.limit ? number("--limit", a.limit) : 50;
  long long from = is_diff ? number("FROM", a.positional[2]) : 0;
  long long to = is_diff ? number("TO", a.positional[3]) : 0;
  if (version < 0 || before < 0 || limit < 0 || from < 0 || to < 0) goto done;

  sb_cli_ctx c;
  if (sb_cli_ctx_open(&c, &cfg, &err) != 0) {
    sb_cli_eprintf("switchboard context: %s\n", err.msg);
    rc = EXIT_RUNTIME;
    goto done;
  }
  json_t *out = NULL;
  int r;
  if (is_get && a.requirements) {
    json_t *paths = json_array();
    char *copy = sb_strdup(a.requirements), *save = NULL;
    for (char *p = copy ? strtok_r(copy, ",", &save) : NULL; p;
         p = strtok_r(NULL, ",", &save))
      json_array_append_new(paths, json_string(p));
    sb_free(copy);
    r = sb_cli_ctx_wait(&c, sb_ctx_get_projected_async(
                                c.m, cfg.default_tenant, id, paths,
                                sb_cli_ctx_done, &c, &err),
                        &out, &err);
    json_decref(paths);
  } else if (is_get) {
    r = sb_cli_ctx_wait(&c, sb_ctx_get_async(c.m, cfg.default_tenant, id,
                                             version, sb_cli_ctx_done, &c,
                                             &err),
                        &out, &err);
  } else if (is_hist) {
    r = sb_cli_ctx_wait(&c, sb_ctx_history_async(c.m, cfg.default_tenant, id,
                                                 before, (size_t)limit,
                                                 sb_cli_ctx_done, &c, &err),
                        &out, &err);
  } else {
    r = sb_cli_ctx_wait(&c, sb_ctx_diff_versions_async(
                                c.m, cfg.default_tenant, id, from, to,
                                sb_cli_ctx_done, &c, &err),
                        &out, &err);
  }
  sb_cli_ctx_close(&c);
  if (r != 0) {
    /* Another tenant's context reads as missing: say whose was asked for
     * (a store's contexts belong to tenants; --tenant picks one). */
    if (r == SB_ENOENT && strstr(err.msg, "not found"))
      sb_cli_eprintf("switchboard context: %s (tenant %s)\n", err.msg,
                     cfg.default_tenant);
    else
      sb_cli_eprintf("switchboard context: %s\n",
                     r == SB_ENOMEM ? "out of memory" : err.msg);
    rc = r == SB_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
    goto done;
  }
  rc = print_json(out);
done:
  sb_config_free(&cfg);
  return rc;
}
