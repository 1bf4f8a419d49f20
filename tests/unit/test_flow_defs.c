/* test_flow_defs.c: sets of workflow definitions from the config
 * (src/flow/defs.c): inline definitions, files and directories in name
 * order, duplicates naming both places, allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/core.h"
#include "flow/flow.h"
#include "test_json.h"

/* ---- sets of definitions (defs.c) ------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_defs_load(void **state) {
  (void)state;
  char dir[] = "/tmp/sbflowXXXXXX";
  assert_non_null(mkdtemp(dir));
  char sub[64];
  snprintf(sub, sizeof sub, "%s/flows", dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  write_file(sub, "b.yaml", "name: beta\nsteps: [{id: a, end: completed}]\n");
  write_file(sub, "a.yml", "name: alpha\nsteps: [{id: a, end: completed}]\n");
  write_file(sub, "notes.txt", "not a workflow\n");
  write_file(sub, ".hidden.yaml", "garbage: [\n");
  write_file(dir, "one.yaml", "name: one\nsteps: [{id: a, end: failed}]\n");
  const char *cfg_yaml = "workflows:\n"
                         "  - flows\n"
                         "  - name: inline\n"
                         "    steps:\n"
                         "      - id: x\n"
                         "        end: completed\n"
                         "  - one.yaml\n";
  char cfg_path[64];
  snprintf(cfg_path, sizeof cfg_path, "%s/sb.yaml", dir);
  write_file(dir, "sb.yaml", cfg_yaml);
  sb_config cfg;
  sb_error err;
  sb_config_defaults(&cfg);
  assert_int_equal(sb_config_load(&cfg, cfg_path, &err), 0);
  sb_flow_defs defs;
  if (sb_flow_defs_load(cfg.workflows, cfg.workflow_lines, cfg.config_file,
                        cfg.config_dir, &defs, &err) != 0)
    fail_msg("%s", err.msg);
  assert_int_equal(defs.len, 4);
  /* directory files by name: a.yml before b.yaml */
  assert_string_equal(defs.items[0]->name, "alpha");
  assert_string_equal(defs.items[1]->name, "beta");
  assert_string_equal(defs.items[2]->name, "inline");
  assert_string_equal(defs.items[3]->name, "one");
  char want[128];
  snprintf(want, sizeof want, "%s/flows/a.yml", dir);
  assert_string_equal(defs.items[0]->file, want);
  assert_string_equal(defs.items[2]->file, cfg_path);
  assert_int_equal(defs.items[2]->steps[0].line, 5);
  assert_ptr_equal(sb_flow_defs_find(&defs, "one"), defs.items[3]);
  assert_null(sb_flow_defs_find(&defs, "two"));
  assert_null(sb_flow_defs_find(NULL, "one"));
  sb_flow_defs_clear(&defs);
  assert_int_equal(defs.len, 0);
  sb_flow_defs_clear(&defs);
  /* every allocation of a load may fail: ENOMEM, an empty set, no leak */
  size_t base = sb_alloc_live_bytes();
  int failures = 0;
  for (long n = 1; n < 3000; n++) {
    sb_alloc_fail_after(n);
    int rc = sb_flow_defs_load(cfg.workflows, cfg.workflow_lines,
                               cfg.config_file, cfg.config_dir, &defs, &err);
    sb_alloc_fail_after(0);
    if (rc == 0) {
      assert_int_equal(defs.len, 4);
      sb_flow_defs_clear(&defs);
      break;
    }
    failures++;
    if (rc != SB_ENOMEM) fail_msg("allocation %ld: %s", n, err.msg);
    assert_int_equal(defs.len, 0);
    assert_int_equal(sb_alloc_live_bytes(), base);
  }
  assert_true(failures > 20);
  assert_int_equal(sb_alloc_live_bytes(), base);
  sb_config_free(&cfg);

  /* an inline definition's errors name the config file and line */
  sb_config_defaults(&cfg);
  const char *inline_bad = "workflows:\n"
                           "  - name: w\n"
                           "    steps:\n"
                           "      - id: quote\n"
                           "        call:\n"
                           "          capability: finance.quote\n";
  assert_int_equal(sb_config_load_string(&cfg, inline_bad, strlen(inline_bad),
                                         "config.yaml", &err),
                   0);
  assert_int_equal(sb_flow_defs_load(cfg.workflows, cfg.workflow_lines,
                                     cfg.config_file, cfg.config_dir, &defs,
                                     &err),
                   SB_EINVAL);
  assert_string_equal(err.msg, "config.yaml:6: step \"quote\": call.tool: "
                               "required (the tool to call)");
  assert_int_equal(defs.len, 0);
  sb_config_free(&cfg);

  /* duplicates name both places; missing and odd files name the item */
  write_file(sub, "c.yaml",
             "# again\nname: alpha\nsteps: [{id: a, end: "
             "completed}]\n");
  json_t *list = J("['flows']");
  json_t *lines = J("{'': 3, '/0': 3}");
  assert_int_equal(sb_flow_defs_load(list, lines, "sb.yaml", dir, &defs, &err),
                   SB_EINVAL);
  snprintf(want, sizeof want,
           "%s/flows/c.yaml:2: name: duplicate workflow name \"alpha\" (also "
           "defined at %s/flows/a.yml:1)",
           dir, dir);
  assert_string_equal(err.msg, want);
  assert_int_equal(defs.len, 0);
  json_decref(list);
  list = J("['nope.yaml']");
  assert_int_equal(sb_flow_defs_load(list, lines, "sb.yaml", dir, &defs, &err),
                   SB_ENOENT);
  snprintf(want, sizeof want,
           "sb.yaml:3: workflows[0]: cannot open \"%s/nope.yaml\": No such "
           "file or directory",
           dir);
  assert_string_equal(err.msg, want);
  json_decref(list);
  list = J("['flows/notes.txt']");
  assert_int_equal(sb_flow_defs_load(list, lines, "sb.yaml", dir, &defs, &err),
                   SB_EINVAL);
  snprintf(want, sizeof want,
           "sb.yaml:3: workflows[0]: \"%s/flows/notes.txt\" is neither a "
           "directory nor a .yaml or .yml file",
           dir);
  assert_string_equal(err.msg, want);
  json_decref(list);
  list = J("[{'name': 'x', 'steps': [{'id': 'a', 'end': 'completed'}]}, "
           "{'name': 'x', 'steps': [{'id': 'b', 'end': 'failed'}]}]");
  json_decref(lines);
  lines = J("{'/0': 2, '/0/name': 2, '/1': 4, '/1/name': 4}");
  assert_int_equal(sb_flow_defs_load(list, lines, "sb.yaml", ".", &defs, &err),
                   SB_EINVAL);
  assert_string_equal(err.msg, "sb.yaml:4: name: duplicate workflow name "
                               "\"x\" (also defined at sb.yaml:2)");
  json_decref(list);
  list = J("[3]");
  assert_int_equal(sb_flow_defs_load(list, NULL, NULL, NULL, &defs, &err),
                   SB_EINVAL);
  assert_string_equal(err.msg, "<config>: workflows[0]: expected a workflow "
                               "definition (a mapping) or a file or directory "
                               "name, got an integer");
  json_decref(list);
  json_decref(lines);
  /* no list: no workflows */
  assert_int_equal(sb_flow_defs_load(NULL, NULL, NULL, NULL, &defs, &err), 0);
  assert_int_equal(defs.len, 0);

  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  sb_core_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defs_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
