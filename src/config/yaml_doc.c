/* yaml_doc.c: whole YAML documents read as JSON, for files that are not
 * the config itself (workflow definitions), and the bounded file read the
 * config loader shares.
 *
 * The rules are the config's: at most 1 MiB, one document, no aliases,
 * YAML core-schema scalars. The line map (a JSON object from each node's
 * JSON Pointer to its line) is what lets a module that validates the JSON
 * much later still say "lead.yaml:14: ...".
 */
#include "config/config_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int cfg_read_file(const char *path, const char *what, char **out,
                  size_t *out_len, sb_error *err) {
  int rc = 0, fd = -1;
  char *data = NULL;
  size_t len = 0;
  *out = NULL;
  *out_len = 0;
  /* A FIFO (or a device) in its place is refused, not waited on. */
  fd = sb_open_regular(path);
  if (fd < 0 && errno == EINVAL) {
    rc = sb_error_set(err, SB_EIO, "%s: not a regular file", path);
    goto cleanup;
  }
  if (fd < 0) {
    rc = sb_error_set(err, errno == ENOENT ? SB_ENOENT : SB_EIO,
                      "%s: cannot open: %s", path, strerror(errno));
    goto cleanup;
  }
  /* Read up to one byte past the limit: a file over it is caught. */
  data = sb_malloc(SB_CONFIG_MAX_FILE_BYTES + 2);
  if (!data) {
    rc = sb_error_set(err, SB_ENOMEM, "%s: out of memory", path);
    goto cleanup;
  }
  for (;;) {
    ssize_t n = read(fd, data + len, SB_CONFIG_MAX_FILE_BYTES + 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = sb_error_set(err, SB_EIO, "%s: cannot read: %s", path,
                        strerror(errno));
      goto cleanup;
    }
    if (n == 0) break;
    len += (size_t)n;
    if (len > SB_CONFIG_MAX_FILE_BYTES) {
      rc = sb_error_set(err, SB_ETOOBIG,
                        "%s: the file is larger than the 1 MiB limit for %s",
                        path, what);
      goto cleanup;
    }
  }
  data[len] = '\0';
  *out = data;
  *out_len = len;
  data = NULL;
cleanup:
  if (fd >= 0) close(fd);
  sb_free(data);
  return rc;
}

/* STREAM_START, one DOCUMENT with its root node, STREAM_END. */
static int read_stream(parse_ctx *p, json_t **out) {
  int rc;
  if ((rc = cfg_next_event(p)) != 0) return rc; /* STREAM_START */
  if ((rc = cfg_next_event(p)) != 0) return rc;
  if (p->ev.type == YAML_STREAM_END_EVENT) { /* empty or only comments */
    *out = json_null();
    if (p->lines) {
      json_t *one = json_integer(1);
      if (!one || json_object_set_new(p->lines, "", one) != 0)
        return sb_error_set(p->err, SB_ENOMEM, "%s: out of memory", p->name);
    }
    return 0;
  }
  if ((rc = cfg_next_event(p)) != 0) return rc; /* the root node */
  if ((rc = cfg_parse_json(p, "", out)) != 0) return rc;
  if ((rc = cfg_next_event(p)) != 0) return rc; /* DOCUMENT_END */
  if ((rc = cfg_next_event(p)) != 0) return rc;
  if (p->ev.type != YAML_STREAM_END_EVENT)
    return cfg_fail_at(p, cfg_ev_line(p), NULL, SB_EINVAL,
                       "a second YAML document; the file must be one "
                       "document");
  return 0;
}

int sb_config_read_yaml(const char *yaml, size_t len, const char *name,
                        json_t **out, json_t **lines, sb_error *err) {
  parse_ctx p;
  json_t *doc = NULL;
  int rc;
  *out = NULL;
  if (lines) *lines = NULL;
  memset(&p, 0, sizeof p);
  if (!name) name = "<yaml>";
  if (len > SB_CONFIG_MAX_FILE_BYTES)
    return sb_error_set(err, SB_ETOOBIG,
                        "%s: the document is %zu bytes, more than the %d "
                        "byte (1 MiB) limit",
                        name, len, SB_CONFIG_MAX_FILE_BYTES);
  if (lines && !(p.lines = json_object()))
    return sb_error_set(err, SB_ENOMEM, "%s: out of memory", name);
  if (!yaml_parser_initialize(&p.parser)) {
    json_decref(p.lines);
    return sb_error_set(err, SB_ENOMEM, "%s: out of memory", name);
  }
  yaml_parser_set_input_string(
      &p.parser, (const unsigned char *)(yaml ? yaml : ""), yaml ? len : 0);
  p.name = name;
  p.input = yaml ? yaml : "";
  p.input_len = yaml ? len : 0;
  p.err = err;
  rc = read_stream(&p, &doc);
  if (p.have_ev) yaml_event_delete(&p.ev);
  yaml_parser_delete(&p.parser);
  sb_buf_free(&p.ptr);
  if (rc != 0) {
    json_decref(doc);
    json_decref(p.lines);
    return rc;
  }
  *out = doc;
  if (lines) *lines = p.lines;
  return 0;
}

int sb_config_read_yaml_file(const char *path, json_t **out, json_t **lines,
                             sb_error *err) {
  char *data = NULL;
  size_t len = 0;
  *out = NULL;
  if (lines) *lines = NULL;
  if (!path) return sb_error_set(err, SB_EINVAL, "yaml: missing file name");
  int rc = cfg_read_file(path, "a YAML file", &data, &len, err);
  if (rc == 0) rc = sb_config_read_yaml(data, len, path, out, lines, err);
  sb_free(data);
  return rc;
}
