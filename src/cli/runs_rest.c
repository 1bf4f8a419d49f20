/* runs_rest.c: `switchboard runs cancel|answer|resume|fork ID`, asked of a
 * running server over its REST API (POST /v1/runs/ID/ACTION): the server
 * owns its runs in memory, so only it may change them. One blocking
 * libcurl request with a deadline (a command has no loop to keep); a 503
 * with Retry-After (the run being brought back after a restart, the store
 * busy: nothing was done) is asked again after that pause, within the
 * same deadline. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

#define REST_TIMEOUT_MS 30000
#define RETRY_AFTER_MAX_S 5

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  return sb_buf_append(ud, data, size * n) == 0 ? size * n : 0;
}

/* The request body of the action; NULL after a usage error. */
static json_t *body_of(const sb_cli_runs_action *a, int *rc) {
  json_t *body = json_object();
  *rc = EXIT_USAGE;
  if (strcmp(a->verb, "answer") == 0) {
    if (!a->answer) {
      sb_cli_usage_error("runs", "%s", "answer needs --answer JSON");
      goto fail;
    }
    json_error_t jerr;
    json_t *answer = json_loads(a->answer, JSON_DECODE_ANY, &jerr);
    if (!answer) {
      sb_cli_eprintf("switchboard runs: --answer: not JSON (line %d, column "
                     "%d: %s)\n",
                     jerr.line, jerr.column, jerr.text);
      goto fail;
    }
    json_object_set_new(body, "answer", answer);
  } else if (a->answer) {
    sb_cli_usage_error("runs", "%s", "--answer is for answer");
    goto fail;
  }
  if (a->step) {
    if (strcmp(a->verb, "answer") != 0 && strcmp(a->verb, "fork") != 0) {
      sb_cli_usage_error("runs", "%s", "--step is for answer and fork");
      goto fail;
    }
    json_object_set_new(body, "step", json_string(a->step));
  } else if (strcmp(a->verb, "fork") == 0) {
    sb_cli_usage_error("runs", "%s",
                       "fork needs --step S (the step whose "
                       "context the new run starts from)");
    goto fail;
  }
  if (a->reason) {
    if (strcmp(a->verb, "cancel") != 0) {
      sb_cli_usage_error("runs", "%s", "--reason is for cancel");
      goto fail;
    }
    json_object_set_new(body, "reason", json_string(a->reason));
  }
  *rc = EXIT_OK;
  return body;
fail:
  json_decref(body);
  return NULL;
}

/* A run id goes into the path as it is: refuse what would change the path. */
static int plain_id(const char *id) {
  if (!*id) return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
      return 0;
  return 1;
}

/* The URL as it may be shown: no password (user:password@), no token in
 * its query. */
static const char *shown_url(const char *url, size_t len, char *out,
                             size_t cap) {
  char *cut = sb_strndup(url, len);
  char *redacted = cut ? sb_url_redacted(cut, "***") : NULL;
  const char *from = redacted ? redacted : "(the URL)";
  sb_cli_printable(from, strlen(from), out, cap);
  sb_free(redacted);
  sb_free(cut);
  return out;
}

int sb_cli_runs_rest(const sb_cli_runs_action *a) {
  if (!a->url || !*a->url)
    return sb_cli_usage_error("runs", "%s",
                              "give --url http://HOST:PORT (or "
                              "SWITCHBOARD_URL, or a --config with "
                              "server.listen): the server that runs it");
  /* Whatever shape it has, the URL is shown without its credentials. */
  char given[400];
  shown_url(a->url, strlen(a->url), given, sizeof given);
  if (strncmp(a->url, "http://", 7) != 0 && strncmp(a->url, "https://", 8) != 0)
    return sb_cli_usage_error("runs",
                              "--url: expected http://HOST:PORT, got "
                              "'%s'",
                              given);
  /* A URL libcurl cannot use (a port past 65535, no host, a blank) is the
   * caller's mistake, not a server out of reach (exit 1). */
  CURLU *cu = curl_url();
  CURLUcode uc = cu ? curl_url_set(cu, CURLUPART_URL, a->url, 0)
                    : CURLUE_OUT_OF_MEMORY;
  char *host = NULL;
  if (uc == CURLUE_OK) uc = curl_url_get(cu, CURLUPART_HOST, &host, 0);
  curl_free(host);
  curl_url_cleanup(cu);
  if (uc != CURLUE_OK) {
    char what[600];
    snprintf(what, sizeof what, "--url: expected http://HOST:PORT, got '%s' (%s)",
             given, curl_url_strerror(uc));
    return sb_cli_usage_error("runs", "%s", what);
  }
  if (!plain_id(a->id))
    return sb_cli_usage_error("runs", "not a run id: '%s'", a->id);
  int rc;
  json_t *body = body_of(a, &rc);
  if (!body) return rc;

  size_t ulen = strlen(a->url);
  while (ulen && a->url[ulen - 1] == '/')
    ulen--;
  char *url =
      sb_asprintf("%.*s/v1/runs/%s/%s", (int)ulen, a->url, a->id, a->verb);
  char *text = sb_json_dumps(body, JSON_COMPACT);
  char *auth =
      a->token ? sb_asprintf("Authorization: Bearer %s", a->token) : NULL;
  sb_buf resp = SB_BUF_INIT;
  struct curl_slist *headers = NULL;
  CURL *easy = NULL;
  json_t *answer = NULL;
  rc = EXIT_RUNTIME;
  if (!url || !text || (a->token && !auth) ||
      curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
      !(easy = curl_easy_init())) {
    sb_cli_eprintf("switchboard runs: out of memory\n");
    goto done;
  }
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Accept: application/json");
  if (auth) headers = curl_slist_append(headers, auth);
  char curl_err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, text);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)REST_TIMEOUT_MS);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, curl_err);
  uint64_t deadline = sb_now_ms() + REST_TIMEOUT_MS;
  CURLcode cc;
  long status = 0;
  for (;;) {
    sb_buf_reset(&resp);
    cc = curl_easy_perform(easy);
    if (cc != CURLE_OK) break;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t wait_s = 0;
    if (status != 503 ||
        curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &wait_s) != CURLE_OK ||
        wait_s <= 0)
      break;
    if (wait_s > RETRY_AFTER_MAX_S) wait_s = RETRY_AFTER_MAX_S;
    uint64_t at = sb_now_ms() + (uint64_t)wait_s * 1000u;
    if (at >= deadline) break;
    sb_cli_eprintf(
        "switchboard runs: the server is busy (503); asking again in "
        "%lld s\n",
        (long long)wait_s);
    struct timespec ts = {.tv_sec = (time_t)wait_s};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     (long)(deadline - sb_now_ms()));
  }
  if (cc != CURLE_OK) {
    char where[600];
    sb_cli_eprintf("switchboard runs: cannot reach the server at %s: %s%s\n",
                   shown_url(a->url, ulen, where, sizeof where),
                   curl_err[0] ? curl_err : curl_easy_strerror(cc),
                   cc == CURLE_COULDNT_CONNECT
                       ? " (is `switchboard serve` running there? see --url)"
                       : "");
    goto done;
  }
  json_error_t jerr;
  snprintf(jerr.text, sizeof jerr.text, "%s", "the body is empty");
  answer = resp.len ? json_loadb(resp.data, resp.len, JSON_REJECT_DUPLICATES,
                                 &jerr)
                    : NULL;
  char said[700];
  if (status < 200 || status >= 300) {
    json_t *msg = json_object_get(json_object_get(answer, "error"), "message");
    if (json_is_string(msg))
      sb_cli_eprintf("switchboard runs: %s %s: the server answered %ld: %s\n",
                     a->verb, a->id, status,
                     sb_cli_printable(json_string_value(msg),
                                      json_string_length(msg), said,
                                      sizeof said));
    else
      sb_cli_eprintf("switchboard runs: %s %s: the server answered %ld%s%s\n",
                     a->verb, a->id, status, resp.len ? ": " : "",
                     sb_cli_printable(resp.data ? resp.data : "",
                                      resp.len > 300 ? 300 : resp.len, said,
                                      sizeof said));
    goto done;
  }
  if (!json_is_object(answer)) {
    sb_cli_eprintf("switchboard runs: the server's answer is not a JSON "
                   "object%s%s\n",
                   answer ? "" : ": ",
                   answer ? ""
                          : sb_cli_printable(jerr.text, strlen(jerr.text), said,
                                             sizeof said));
    goto done;
  }
  /* A 2xx that is no run (a proxy's page, another service on the port)
   * is not taken for one. */
  if (!json_is_string(json_object_get(answer, "id")) ||
      !json_is_string(json_object_get(answer, "status"))) {
    sb_cli_eprintf("switchboard runs: %s %s: the server's answer is not a run "
                   "(no \"id\" and \"status\" strings): is --url a switchboard "
                   "server?\n",
                   a->verb, a->id);
    goto done;
  }
  sb_cli_run_print(stdout, answer, a->as_json);
  rc = EXIT_OK;
done:
  json_decref(answer);
  json_decref(body);
  if (easy) curl_easy_cleanup(easy);
  curl_slist_free_all(headers);
  sb_buf_free(&resp);
  sb_free(auth);
  sb_free(text);
  sb_free(url);
  return rc;
}
