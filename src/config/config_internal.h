/* config_internal.h: the YAML parser's state and helpers, shared by the
 * files of src/config/ (config.c: the schema and the parser; tenants.c:
 * auth.tenants; yaml_json.c: free-form sections kept as JSON). */
#ifndef SB_CONFIG_INTERNAL_H
#define SB_CONFIG_INTERNAL_H

#include <jansson.h>
#include <yaml.h>

#include "config/config.h"

typedef struct parse_ctx {
  yaml_parser_t parser;
  yaml_event_t ev;
  int have_ev;
  const char *name;
  const char *input;
  size_t input_len;
  sb_config *cfg; /* the private copy being filled */
  sb_error *err;
  json_t *lines;  /* when set, cfg_parse_json records every node's line
                     here under its JSON Pointer (see ptr) */
  sb_buf ptr;     /* the JSON Pointer of the node being read, relative to
                     where the caller started cfg_parse_json */
} parse_ctx;

/* Larger than any hand-written config; small enough that a mistaken path
 * (a log file, a device) fails fast instead of being parsed. */
#define SB_CONFIG_MAX_FILE_BYTES (1024 * 1024)

/* ---- the schema (keys.c) ---- */

typedef enum key_kind {
  KEY_SECTION,
  KEY_INT,    /* int field */
  KEY_SIZE,   /* size_t field */
  KEY_LONG,   /* long field */
  KEY_LISTEN, /* listen_host + listen_port */
  KEY_ORIGINS,
  KEY_LOG_LEVEL,
  KEY_LOG_FORMAT,
  KEY_STORE_CHECK, /* store.check_on_start: auto, always or never */
  KEY_PATH,    /* char * field: a file path */
  KEY_TENANT,  /* char * field: a tenant id */
  KEY_TENANTS, /* tenants list */
  KEY_AGENTS,  /* agents list, kept as JSON */
  KEY_SERVERS, /* servers list (virtual servers), kept as JSON */
  KEY_ADMINS,  /* admin tenant ids */
  KEY_WORKFLOWS, /* workflow definitions and files, kept as JSON */
  KEY_URL,       /* char * field: an http(s) URL */
  KEY_ENV_NAME,  /* char * field: an environment variable's name */
  KEY_TLS,       /* server.tls: a section whose two keys go together */
  KEY_QUOTA_TENANTS, /* quotas.tenants: per-tenant overrides */
  KEY_OAUTH,     /* auth.oauth: a section whose keys go together */
  KEY_CLAIM,     /* char * field: a JWT claim's name */
  KEY_URLS,      /* auth.oauth.authorization_servers */
  KEY_SCOPES,    /* auth.oauth.scopes_supported */
} key_kind;

typedef struct key_spec {
  const char *name;
  key_kind kind;
  size_t offset; /* into sb_config, for numbers */
  long long min, max;
  const struct key_spec *children; /* KEY_SECTION, NULL-name terminated */
} key_spec;

#define NUM(n, k, field, lo, hi)                                               \
  { n, k, offsetof(sb_config, field), lo, hi, NULL }

/* Every table has fewer keys than this; used to remember first lines. */
#define MAX_SECTION_KEYS 24
/* The top-level keys, each section's keys under it. */
extern const key_spec cfg_top_keys[];

/* 1 for the static default strings (never freed). */
int cfg_is_static_default(const char *s);
void cfg_free_tenants(sb_config_tenant *t, size_t n);
/* Line (1-based) of the current event. */
size_t cfg_ev_line(const parse_ctx *p);
/* Fill p->err with "name:line: path: message"; returns code. */
int cfg_fail_at(parse_ctx *p, size_t line, const char *path, int code,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int cfg_next_event(parse_ctx *p);
const char *cfg_ev_scalar(const parse_ctx *p);
int cfg_ev_is_null(const parse_ctx *p);
void cfg_describe_event(const parse_ctx *p, char *out, size_t cap);
int cfg_fail_alias(parse_ctx *p, const char *path);
/* A plain scalar string value; *out is a new copy. */
int cfg_scalar_string(parse_ctx *p, const char *path, const char *what,
                      char **out);

/* tenants.c */
int cfg_parse_tenants(parse_ctx *p, const char *path);
int cfg_parse_admins(parse_ctx *p, const char *path);
void cfg_free_strings(char **v, size_t n);

/* yaml_json.c: the current node (scalar, sequence or mapping) as JSON,
 * consuming it; *out is a new reference. Scalars follow the YAML core
 * schema (plain true/false/null/integers/floats), quoted ones are strings.
 * With p->lines set, every node's line is recorded (pointers start from
 * p->ptr as it is on entry). */
int cfg_parse_json(parse_ctx *p, const char *path, json_t **out);
/* The workflows: key into cfg->workflows and cfg->workflow_lines. */
int cfg_parse_workflows(parse_ctx *p, const char *path);

/* config.c: a mapping of `keys` (MAPPING_START current; consumes to its
 * end). */
int cfg_parse_mapping(parse_ctx *p, const key_spec *keys, const char *path);

/* quotas.c: server.tls (both files or neither) and quotas.tenants; the
 * overrides' copy and release. */
int cfg_parse_tls(parse_ctx *p, const key_spec *k, const char *path);
int cfg_parse_quota_tenants(parse_ctx *p, const char *path);
void cfg_free_quota_tenants(sb_config_quota *q, size_t n);
int cfg_clone_quota_tenants(sb_config *dst, const sb_config *src);

/* llm.c: a KEY_URL or KEY_ENV_NAME value into its field; whether a
 * string is an http(s) URL. */
int cfg_url_valid(const char *s);
int cfg_parse_llm_string(parse_ctx *p, const key_spec *k, const char *path);

/* oauth.c: auth.oauth's own kinds of value, and the check that its
 * required keys came together (line: the section's). */
int cfg_parse_oauth_value(parse_ctx *p, const key_spec *k, const char *path);
int cfg_check_oauth(parse_ctx *p, size_t line, const char *path);
void cfg_release_oauth(sb_config *cfg);
int cfg_clone_oauth(sb_config *dst, const sb_config *src);

/* yaml_doc.c: the whole of a regular file of at most
 * SB_CONFIG_MAX_FILE_BYTES; *data (caller frees with sb_free) is
 * NUL-terminated. `what` names the file's role in the size message. */
int cfg_read_file(const char *path, const char *what, char **data,
                  size_t *len, sb_error *err);

#endif
