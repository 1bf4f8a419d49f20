/* llm.c (config/): the llm: section — the OpenAI-compatible endpoint that
 * answers agents' sampling requests with their models (llm/) — and the
 * environment variables that override it. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

#define DEFAULT_KEY_ENV "OPENAI_API_KEY"

/* An http(s) URL with a host and no space, control character or quote
 * (URLs reach headers and JSON documents). */
int cfg_url_valid(const char *s) {
  if (strncasecmp(s, "http://", 7) != 0 && strncasecmp(s, "https://", 8) != 0)
    return 0;
  const char *host = s + (s[4] == ':' ? 7 : 8);
  if (!*host || *host == '/') return 0;
  for (; *s; s++)
    if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '"') return 0;
  return 1;
}

static int env_name_valid(const char *s) {
  if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
    return 0;
  for (s++; *s; s++)
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
          (*s >= '0' && *s <= '9') || *s == '_'))
      return 0;
  return 1;
}

int cfg_parse_llm_string(parse_ctx *p, const key_spec *k, const char *path) {
  const char *what = k->kind == KEY_URL
                         ? "an http:// or https:// URL"
                         : "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)";
  char *v = NULL;
  int rc = cfg_scalar_string(p, path, what, &v);
  if (rc != 0) return rc;
  if (k->kind == KEY_URL ? !cfg_url_valid(v) : !env_name_valid(v)) {
    char got[96];
    cfg_describe_event(p, got, sizeof got);
    sb_free(v);
    return cfg_fail_at(p, cfg_ev_line(p), path, SB_EINVAL, "expected %s, got %s",
                       what, got);
  }
  char **field = (char **)(void *)((char *)p->cfg + k->offset);
  sb_free(*field);
  *field = v;
  return 0;
}

void sb_config_llm_endpoint(const sb_config *cfg, sb_config_llm *out) {
  const char *url = getenv("SWITCHBOARD_LLM_BASE_URL");
  const char *key = getenv("SWITCHBOARD_LLM_API_KEY");
  out->base_url = url && *url ? url : cfg->llm_base_url;
  if (!key || !*key)
    key = getenv(cfg->llm_api_key_env ? cfg->llm_api_key_env : DEFAULT_KEY_ENV);
  out->api_key = key && *key ? key : NULL;
  out->timeout_ms = cfg->llm_timeout_ms;
}
