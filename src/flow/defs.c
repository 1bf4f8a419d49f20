/* defs.c: the set of workflow definitions the config names.
 *
 * The config's `workflows:` list holds inline definitions and names of
 * YAML files or directories of them. Files in a directory load in file
 * name order, so which of two duplicates is reported does not depend on
 * the file system. Names must be unique across the whole set; the error
 * names both places.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "flow/flow_internal.h"

typedef struct loader {
  sb_flow_defs *out;
  char **where; /* "file:line" of each definition's name, parallel to out */
  size_t cap;
  const json_t *lines; /* the config's line map of the list */
  const char *config_file;
  sb_error *err;
} loader;

void sb_flow_defs_clear(sb_flow_defs *defs) {
  if (!defs) return;
  for (size_t i = 0; i < defs->len; i++)
    sb_flow_def_free(defs->items[i]);
  sb_free(defs->items);
  defs->items = NULL;
  defs->len = 0;
}

const sb_flow_def *sb_flow_defs_find(const sb_flow_defs *defs,
                                     const char *name) {
  if (!defs || !name) return NULL;
  for (size_t i = 0; i < defs->len; i++)
    if (strcmp(defs->items[i]->name, name) == 0) return defs->items[i];
  return NULL;
}

static size_t line_at(const json_t *lines, const char *ptr) {
  json_t *v = json_object_get(lines, ptr);
  return json_is_integer(v) ? (size_t)json_integer_value(v) : 0;
}

static char *place(const char *file, size_t line) {
  return line ? sb_asprintf("%s:%zu", file, line) : sb_strdup(file);
}

/* Take d into the set; `lines`/`prefix` locate its name for messages. */
static int add(loader *l, sb_flow_def *d, const json_t *lines,
               const char *prefix) {
  char ptr[64];
  snprintf(ptr, sizeof ptr, "%s/name", prefix);
  char *where = place(d->file, line_at(lines, ptr));
  if (!where) {
    sb_flow_def_free(d);
    return sb_error_set(l->err, SB_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < l->out->len; i++) {
    if (strcmp(l->out->items[i]->name, d->name) != 0) continue;
    int rc = sb_error_set(l->err, SB_EINVAL,
                          "%s: name: duplicate workflow name \"%s\" (also "
                          "defined at %s)",
                          where, d->name, l->where[i]);
    sb_free(where);
    sb_flow_def_free(d);
    return rc;
  }
  if (l->out->len == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 8;
    sb_flow_def **items = sb_realloc(l->out->items, ncap * sizeof *items);
    if (items) l->out->items = items;
    char **wh = items ? sb_realloc(l->where, ncap * sizeof *wh) : NULL;
    if (wh) l->where = wh;
    if (!items || !wh) {
      sb_free(where);
      sb_flow_def_free(d);
      return sb_error_set(l->err, SB_ENOMEM, "out of memory");
    }
    l->cap = ncap;
  }
  l->where[l->out->len] = where;
  l->out->items[l->out->len++] = d;
  return 0;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n > k && strcmp(s + n - k, suffix) == 0;
}

static int is_yaml_name(const char *s) {
  return ends_with(s, ".yaml") || ends_with(s, ".yml");
}

static int load_file(loader *l, const char *path) {
  json_t *doc = NULL, *lines = NULL;
  sb_flow_def *d = NULL;
  int rc = sb_config_read_yaml_file(path, &doc, &lines, l->err);
  if (rc == 0) rc = flow_def_build(doc, lines, "", path, &d, l->err);
  if (rc == 0) rc = add(l, d, lines, "");
  json_decref(doc);
  json_decref(lines);
  return rc;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.yaml and *.yml file of dir (hidden files skipped), by name. */
static int load_dir(loader *l, const char *dir, const char *where) {
  DIR *dh = opendir(dir);
  if (!dh)
    return sb_error_set(l->err, SB_EIO, "%s: cannot open directory \"%s\": %s",
                        where, dir, strerror(errno));
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(dh)) != NULL) {
    if (e->d_name[0] == '.' || !is_yaml_name(e->d_name)) continue;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      char **grown = sb_realloc(names, ncap * sizeof *names);
      if (!grown) {
        rc = sb_error_set(l->err, SB_ENOMEM, "out of memory");
        break;
      }
      names = grown;
      cap = ncap;
    }
    if (!(names[n] = sb_strdup(e->d_name)))
      rc = sb_error_set(l->err, SB_ENOMEM, "out of memory");
    else
      n++;
  }
  closedir(dh);
  if (n) qsort(names, n, sizeof *names, cmp_names);
  size_t dlen = strlen(dir);
  int slash = dlen && dir[dlen - 1] == '/';
  for (size_t i = 0; i < n && rc == 0; i++) {
    char *path = sb_asprintf("%s%s%s", dir, slash ? "" : "/", names[i]);
    rc = path ? load_file(l, path)
              : sb_error_set(l->err, SB_ENOMEM, "out of memory");
    sb_free(path);
  }
  for (size_t i = 0; i < n; i++)
    sb_free(names[i]);
  sb_free(names);
  return rc;
}

/* A string item: a .yaml/.yml file or a directory, relative to base_dir. */
static int load_named(loader *l, const char *name, const char *base_dir,
                      size_t i) {
  char ptr[32];
  snprintf(ptr, sizeof ptr, "/%zu", i);
  size_t line = line_at(l->lines, ptr);
  char *where =
      line ? sb_asprintf("%s:%zu: workflows[%zu]", l->config_file, line, i)
           : sb_asprintf("%s: workflows[%zu]", l->config_file, i);
  int relative =
      name[0] != '/' && base_dir && *base_dir && strcmp(base_dir, ".") != 0;
  char *path = relative ? sb_asprintf("%s%s%s", base_dir,
                                      ends_with(base_dir, "/") ? "" : "/", name)
                        : sb_strdup(name);
  int rc = 0;
  struct stat st;
  if (!where || !path) {
    rc = sb_error_set(l->err, SB_ENOMEM, "out of memory");
  } else if (stat(path, &st) != 0) {
    rc = sb_error_set(l->err, errno == ENOENT ? SB_ENOENT : SB_EIO,
                      "%s: cannot open \"%s\": %s", where, path,
                      strerror(errno));
  } else if (S_ISDIR(st.st_mode)) {
    rc = load_dir(l, path, where);
  } else if (!is_yaml_name(name)) {
    rc = sb_error_set(l->err, SB_EINVAL,
                      "%s: \"%s\" is neither a directory nor a .yaml or .yml "
                      "file",
                      where, path);
  } else {
    rc = load_file(l, path);
  }
  sb_free(where);
  sb_free(path);
  return rc;
}

int sb_flow_defs_load(const json_t *list, const json_t *lines,
                      const char *config_file, const char *base_dir,
                      sb_flow_defs *out, sb_error *err) {
  loader l = {out, NULL, 0, lines, config_file ? config_file : "<config>", err};
  int rc = 0;
  out->items = NULL;
  out->len = 0;
  if (list && !json_is_array(list))
    return sb_error_set(err, SB_EINVAL, "%s: workflows: expected a list",
                        l.config_file);
  for (size_t i = 0; rc == 0 && i < json_array_size(list); i++) {
    const json_t *item = json_array_get(list, i);
    if (json_is_object(item)) {
      char prefix[32];
      sb_flow_def *d = NULL;
      snprintf(prefix, sizeof prefix, "/%zu", i);
      rc = flow_def_build(item, lines, prefix, l.config_file, &d, err);
      if (rc == 0) rc = add(&l, d, lines, prefix);
    } else if (json_is_string(item) && json_string_length(item) &&
               strlen(json_string_value(item)) == json_string_length(item)) {
      rc = load_named(&l, json_string_value(item), base_dir, i);
    } else {
      rc = sb_error_set(err, SB_EINVAL,
                        "%s: workflows[%zu]: expected a workflow definition "
                        "(a mapping) or a file or directory name, got %s",
                        l.config_file, i, sb_json_type_name(item));
    }
  }
  for (size_t i = 0; i < out->len; i++)
    sb_free(l.where[i]);
  sb_free(l.where);
  if (rc != 0) sb_flow_defs_clear(out);
  return rc;
}
