/* validate.c: the MCPContext document of the spec, checked field by field.
 *
 * The shape is written down once, as tables (schemas) of fields, and three
 * things walk the tables: the full-document validator, the data-only
 * validator and sb_ctx_fill_defaults. Adding a field to the model is one
 * table row. Error messages carry the dotted path of the offending value
 * because they reach API clients whose patch put it there.
 */
#include "ctx/ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum ftype {
  F_STRING,
  F_NONEMPTY_STRING,
  F_DATETIME,
  F_VERSION,      /* integer >= 1 */
  F_ENUM,         /* string, one of field.choices */
  F_OBJECT,       /* any object (open) */
  F_STRING_ARRAY, /* array of strings */
  F_ARRAY,        /* array of objects of field.sub */
  F_SECTION,      /* object of field.sub */
};

typedef struct schema schema;

typedef struct field {
  const char *name;
  enum ftype type;
  int required;
  const schema *sub;          /* F_ARRAY, F_SECTION */
  const char *const *choices; /* F_ENUM, NULL-terminated */
  const char *choice_list;    /* F_ENUM, for messages */
  int no_default;             /* fill_defaults leaves it missing */
} field;

struct schema {
  const field *fields;
  size_t nfields;
  int open; /* extra members allowed */
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const roles[] = {"user",  "assistant", "system",
                                    "agent", "tool",      NULL};
static const char *const sentiments[] = {"positive", "neutral", "negative",
                                         NULL};

static const field message_fields[] = {
    {"role", F_ENUM, 1, NULL, roles, "user, assistant, system, agent, tool", 0},
    {"content", F_STRING, 1, NULL, NULL, NULL, 0},
    {"timestamp", F_DATETIME, 0, NULL, NULL, NULL, 0},
    {"agentId", F_STRING, 0, NULL, NULL, NULL, 0},
};
static const schema message_schema = {message_fields, N(message_fields), 1};

static const field conversation_fields[] = {
    {"messages", F_ARRAY, 1, &message_schema, NULL, NULL, 0},
    {"intent", F_STRING, 1, NULL, NULL, NULL, 0},
    {"entities", F_OBJECT, 1, NULL, NULL, NULL, 0},
    {"sentiment", F_ENUM, 1, NULL, sentiments, "positive, neutral, negative",
     0},
    {"language", F_STRING, 1, NULL, NULL, NULL, 0},
};
static const schema conversation_schema = {conversation_fields,
                                           N(conversation_fields), 0};

static const field workflow_error_fields[] = {
    {"step", F_STRING, 1, NULL, NULL, NULL, 0},
    {"message", F_STRING, 1, NULL, NULL, NULL, 0},
    {"code", F_STRING, 0, NULL, NULL, NULL, 0},
    {"timestamp", F_DATETIME, 0, NULL, NULL, NULL, 0},
};
static const schema workflow_error_schema = {workflow_error_fields,
                                             N(workflow_error_fields), 1};

static const field workflow_fields[] = {
    {"currentStep", F_STRING, 1, NULL, NULL, NULL, 0},
    {"completedSteps", F_STRING_ARRAY, 1, NULL, NULL, NULL, 0},
    {"variables", F_OBJECT, 1, NULL, NULL, NULL, 0},
    {"outputs", F_OBJECT, 1, NULL, NULL, NULL, 0},
    {"errors", F_ARRAY, 1, &workflow_error_schema, NULL, NULL, 0},
};
static const schema workflow_schema = {workflow_fields, N(workflow_fields), 0};

static const field history_fields[] = {
    {"timestamp", F_DATETIME, 1, NULL, NULL, NULL, 0},
    {"summary", F_STRING, 1, NULL, NULL, NULL, 0},
    {"agentId", F_STRING, 0, NULL, NULL, NULL, 0},
    {"workflowId", F_STRING, 0, NULL, NULL, NULL, 0},
};
static const schema history_schema = {history_fields, N(history_fields), 1};

static const field user_fields[] = {
    {"id", F_STRING, 1, NULL, NULL, NULL, 0},
    {"profile", F_OBJECT, 1, NULL, NULL, NULL, 0},
    {"preferences", F_OBJECT, 1, NULL, NULL, NULL, 0},
    {"permissions", F_STRING_ARRAY, 1, NULL, NULL, NULL, 0},
    {"history", F_ARRAY, 1, &history_schema, NULL, NULL, 0},
};
static const schema user_schema = {user_fields, N(user_fields), 0};

static const field business_fields[] = {
    {"dealership", F_OBJECT, 1, NULL, NULL, NULL, 0},
    {"inventory", F_OBJECT, 1, NULL, NULL, NULL, 0},
    {"policies", F_OBJECT, 1, NULL, NULL, NULL, 0},
    {"integrations", F_OBJECT, 1, NULL, NULL, NULL, 0},
};
static const schema business_schema = {business_fields, N(business_fields), 0};

static const field data_fields[] = {
    {"conversation", F_SECTION, 1, &conversation_schema, NULL, NULL, 0},
    {"workflow", F_SECTION, 1, &workflow_schema, NULL, NULL, 0},
    {"user", F_SECTION, 1, &user_schema, NULL, NULL, 0},
    {"business", F_SECTION, 1, &business_schema, NULL, NULL, 0},
};
static const schema data_schema = {data_fields, N(data_fields), 0};

static const field metadata_fields[] = {
    {"agents", F_STRING_ARRAY, 1, NULL, NULL, NULL, 0},
    {"permissions", F_STRING_ARRAY, 1, NULL, NULL, NULL, 0},
    {"expiresAt", F_DATETIME, 1, NULL, NULL, NULL, 1},
};
static const schema metadata_schema = {metadata_fields, N(metadata_fields), 0};

static const field context_fields[] = {
    {"id", F_NONEMPTY_STRING, 1, NULL, NULL, NULL, 1},
    {"workflowId", F_STRING, 1, NULL, NULL, NULL, 0},
    {"tenantId", F_NONEMPTY_STRING, 1, NULL, NULL, NULL, 1},
    {"sessionId", F_STRING, 1, NULL, NULL, NULL, 0},
    {"timestamp", F_DATETIME, 1, NULL, NULL, NULL, 1},
    {"version", F_VERSION, 1, NULL, NULL, NULL, 0},
    {"data", F_SECTION, 1, &data_schema, NULL, NULL, 0},
    {"metadata", F_SECTION, 1, &metadata_schema, NULL, NULL, 0},
};
static const schema context_schema = {context_fields, N(context_fields), 0};

/* ---- RFC 3339 date-time ----------------------------------------------- */

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 1;
}

int sb_ctx_datetime_valid(const char *s) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y, mo, d, h, mi, sec, oh, om;
  if (!s || strlen(s) < 20) return 0;
  if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
      s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
      !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) ||
      s[16] != ':' || !digits(s + 17, 2, &sec))
    return 0;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return 0;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > mdays[mo - 1] + (mo == 2 && leap)) return 0;
  const char *p = s + 19;
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  if ((*p == 'Z' || *p == 'z') && p[1] == '\0') return 1;
  if (*p != '+' && *p != '-') return 0;
  if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) ||
      p[6] != '\0')
    return 0;
  return oh <= 23 && om <= 59;
}

/* ---- validation ------------------------------------------------------- */

typedef sb_jpath vpath; /* see core.h */

static int invalid(sb_error *err, const vpath *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int invalid(sb_error *err, const vpath *p, const char *fmt, ...) {
  if (!err) return SB_EINVAL;
  char why[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return sb_error_set(err, SB_EINVAL, "%s: %s", p->len ? p->buf : "context",
                      why);
}


static int check_object(const json_t *v, const schema *s, vpath *p,
                        sb_error *err);

static int check_field(const json_t *v, const field *f, vpath *p,
                       sb_error *err) {
  switch (f->type) {
  case F_STRING:
  case F_NONEMPTY_STRING:
    if (!json_is_string(v))
      return invalid(err, p, "expected a string (got %s)", sb_json_type_name(v));
    if (f->type == F_NONEMPTY_STRING && json_string_length(v) == 0)
      return invalid(err, p, "must not be empty");
    return 0;
  case F_DATETIME:
    if (!json_is_string(v))
      return invalid(err, p, "expected an RFC 3339 date-time string (got %s)",
                     sb_json_type_name(v));
    if (strlen(json_string_value(v)) != json_string_length(v) ||
        !sb_ctx_datetime_valid(json_string_value(v)))
      return invalid(err, p, "expected an RFC 3339 date-time (got \"%.60s\")",
                     json_string_value(v));
    return 0;
  case F_VERSION:
    if (!json_is_integer(v))
      return invalid(err, p, "expected an integer (got %s)", sb_json_type_name(v));
    if (json_integer_value(v) < 1)
      return invalid(err, p, "must be >= 1 (got %lld)",
                     (long long)json_integer_value(v));
    return 0;
  case F_ENUM:
    if (json_is_string(v)) {
      for (const char *const *c = f->choices; *c; c++)
        if (strlen(*c) == json_string_length(v) &&
            !strcmp(*c, json_string_value(v)))
          return 0;
      return invalid(err, p, "must be one of %s (got \"%.60s\")",
                     f->choice_list, json_string_value(v));
    }
    return invalid(err, p, "must be one of %s (got %s)", f->choice_list,
                   sb_json_type_name(v));
  case F_OBJECT:
    if (!json_is_object(v))
      return invalid(err, p, "expected an object (got %s)", sb_json_type_name(v));
    return 0;
  case F_SECTION: return check_object(v, f->sub, p, err);
  case F_STRING_ARRAY:
  case F_ARRAY:
    if (!json_is_array(v))
      return invalid(err, p, "expected an array (got %s)", sb_json_type_name(v));
    for (size_t i = 0; i < json_array_size(v); i++) {
      const json_t *item = json_array_get(v, i);
      size_t saved = sb_jpath_index(p, i);
      int rc = 0;
      if (f->type == F_ARRAY)
        rc = check_object(item, f->sub, p, err);
      else if (!json_is_string(item))
        rc = invalid(err, p, "expected a string (got %s)", sb_json_type_name(item));
      sb_jpath_pop(p, saved);
      if (rc != 0) return rc;
    }
    return 0;
  }
  return 0;
}

static const field *find_field(const schema *s, const char *key,
                               size_t key_len) {
  for (size_t i = 0; i < s->nfields; i++)
    if (strlen(s->fields[i].name) == key_len &&
        !memcmp(s->fields[i].name, key, key_len))
      return &s->fields[i];
  return NULL;
}

static int check_object(const json_t *v, const schema *s, vpath *p,
                        sb_error *err) {
  if (!json_is_object(v))
    return invalid(err, p, "expected an object (got %s)", sb_json_type_name(v));
  for (size_t i = 0; i < s->nfields; i++) {
    const field *f = &s->fields[i];
    json_t *member = json_object_get(v, f->name);
    size_t saved = sb_jpath_key(p, f->name);
    int rc = 0;
    if (member)
      rc = check_field(member, f, p, err);
    else if (f->required)
      rc = invalid(err, p, "missing required field");
    sb_jpath_pop(p, saved);
    if (rc != 0) return rc;
  }
  if (s->open) return 0;
  const char *key;
  size_t key_len;
  json_t *member;
  json_object_keylen_foreach((json_t *)v, key, key_len, member) {
    if (find_field(s, key, key_len)) continue;
    char known[256];
    size_t used = 0;
    known[0] = '\0';
    for (size_t i = 0; i < s->nfields && used < sizeof known; i++)
      used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                               i ? ", " : "", s->fields[i].name);
    size_t saved = sb_jpath_key(p, key);
    invalid(err, p, "unknown field (known: %s)", known);
    sb_jpath_pop(p, saved);
    return SB_EINVAL;
  }
  return 0;
}

static const char *type_word(enum ftype t) {
  switch (t) {
  case F_STRING:
  case F_NONEMPTY_STRING: return "a string";
  case F_DATETIME: return "a date-time";
  case F_VERSION: return "a version number";
  case F_ENUM: return "one of a few words";
  case F_STRING_ARRAY: return "a list of strings";
  case F_ARRAY: return "a list";
  case F_OBJECT:
  case F_SECTION: return "an object";
  }
  return "a value";
}

int sb_ctx_data_path_settable(const char *path, sb_error *err) {
  const schema *s = &data_schema;
  const char *key = path ? path : "";
  char at[256] = "data";
  for (;;) {
    const char *dot = strchr(key, '.');
    size_t n = dot ? (size_t)(dot - key) : strlen(key);
    const field *f = find_field(s, key, n);
    if (!f) {
      if (s->open) return 0;
      sb_buf names = SB_BUF_INIT;
      for (size_t i = 0; i < s->nfields; i++)
        sb_buf_printf(&names, "%s%s", i ? ", " : "", s->fields[i].name);
      sb_error_set(err, SB_EINVAL,
                   "%s has no field \"%.*s\" (its fields: %s)", at,
                   (int)(n < 64 ? n : 64), key,
                   names.data ? names.data : "none");
      sb_buf_free(&names);
      return SB_EINVAL;
    }
    size_t len = strlen(at);
    snprintf(at + len, sizeof at - len, ".%.*s", (int)n, key);
    if (!dot) return 0;
    if (f->type == F_OBJECT) return 0; /* open: any key below */
    if (f->type != F_SECTION)
      return sb_error_set(err, SB_EINVAL,
                          "%s holds %s: nothing can be saved inside it", at,
                          type_word(f->type));
    s = f->sub;
    key = dot + 1;
  }
}

int sb_ctx_validate(const json_t *doc, sb_error *err) {
  vpath p = {.len = 0};
  p.buf[0] = '\0';
  return check_object(doc, &context_schema, &p, err);
}

int sb_ctx_validate_data(const json_t *data, sb_error *err) {
  vpath p = {.len = 0};
  sb_jpath_key(&p, "data");
  return check_object(data, &data_schema, &p, err);
}

/* ---- defaults --------------------------------------------------------- */

static json_t *empty_value(const field *f);

/* A copy of v (an object, or NULL) with s's missing fields filled. */
static json_t *fill(const json_t *v, const schema *s) {
  json_t *out = v ? json_deep_copy(v) : json_object();
  if (!out) return NULL;
  for (size_t i = 0; i < s->nfields; i++) {
    const field *f = &s->fields[i];
    json_t *member = json_object_get(out, f->name);
    json_t *filled = NULL;
    if (f->type == F_SECTION && json_is_object(member)) {
      filled = fill(member, f->sub);
    } else if (!member && !f->no_default) {
      filled = empty_value(f);
    } else {
      continue;
    }
    if (!filled || json_object_set_new(out, f->name, filled) != 0) {
      json_decref(out);
      return NULL;
    }
  }
  return out;
}

static json_t *empty_value(const field *f) {
  switch (f->type) {
  case F_STRING:
  case F_NONEMPTY_STRING:
  case F_DATETIME: return json_string("");
  case F_VERSION: return json_integer(1);
  case F_ENUM:
    return json_string(f->choices == sentiments ? "neutral" : f->choices[0]);
  case F_OBJECT: return json_object();
  case F_STRING_ARRAY:
  case F_ARRAY: return json_array();
  case F_SECTION: return fill(NULL, f->sub);
  }
  return NULL;
}

json_t *sb_ctx_fill_defaults(const json_t *doc) {
  if (doc && !json_is_object(doc)) return NULL;
  return fill(doc, &context_schema);
}
