/* fuzz_config.c: libFuzzer target for the YAML config loader.
 *
 * Each input is loaded onto fresh defaults and freed, so ASan sees any
 * leak or overread in the loader or in how it drives libyaml; an accepted
 * config must also satisfy the documented ranges.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int initialised;
  if (!initialised) {
    sb_core_init();
    initialised = 1;
  }
  sb_config cfg;
  sb_error err;
  sb_config_defaults(&cfg);
  int rc =
      sb_config_load_string(&cfg, (const char *)data, size, "fuzz.yaml", &err);
  if (rc == 0) {
    /* What the rest of switchboard relies on after a successful load. */
    if (!cfg.listen_host || cfg.listen_port < 0 || cfg.listen_port > 65535 ||
        cfg.page_size < 1 || cfg.page_size > 1000 || cfg.max_json_depth < 8 ||
        (cfg.allowed_origins_len && !cfg.allowed_origins) ||
        cfg.log_level < SB_LOG_DEBUG || cfg.log_level > SB_LOG_ERROR)
      abort();
    for (size_t i = 0; i < cfg.allowed_origins_len; i++)
      if (!cfg.allowed_origins[i] || strncmp(cfg.allowed_origins[i], "http", 4))
        abort();
  } else {
    /* Every failure names the file. */
    if (strncmp(err.msg, "fuzz.yaml", 9) != 0) abort();
  }
  sb_config_free(&cfg);
  return 0;
}
