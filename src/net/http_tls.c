/* http_tls.c: HTTPS on the listener, and its certificate reloaded while
 * the server runs (read anywhere, e.g. on a worker thread; installed on
 * the loop).
 *
 * libmicrohttpd (built with GnuTLS in Debian) serves TLS with MHD_USE_TLS.
 * Rather than restarting the listener to change certificates (which would
 * drop the connections and streams it holds), the daemon is given GnuTLS's
 * certificate-retrieval callback (MHD_OPTION_HTTPS_CERT_CALLBACK): each
 * handshake asks it for the certificate chain and key, and it answers
 * with the server's current ones. MHD sets the GnuTLS session's pointer to
 * its connection, whose socket context is our http_conn (set when the
 * connection starts, before its handshake), which leads to the server. So
 * a reload only swaps the server's current credentials: new connections
 * get the new certificate, established ones keep theirs.
 *
 * Credentials a handshake was given may still be referenced by its
 * session, so the ones replaced are kept (retired) until the server stops:
 * a few KiB per reload.
 */
#include "net/http_internal.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

#define MOD "http"
#define MAX_CHAIN 8
#define MAX_PEM_BYTES (1024 * 1024)

struct http_tls_creds {
  gnutls_pcert_st chain[MAX_CHAIN];
  unsigned chain_len;
  gnutls_privkey_t key;
  char *cert_pem; /* for MHD_OPTION_HTTPS_MEM_CERT / KEY at start */
  char *key_pem;
  char *cert_file; /* for the reload's log line */
  http_tls_creds *retired_next;
};

void sb_http_tls_free(http_tls_creds *c) {
  if (!c) return;
  for (unsigned i = 0; i < c->chain_len; i++)
    gnutls_pcert_deinit(&c->chain[i]);
  if (c->key) gnutls_privkey_deinit(c->key);
  if (c->key_pem) {
    memset(c->key_pem, 0, strlen(c->key_pem));
    sb_free(c->key_pem);
  }
  sb_free(c->cert_pem);
  sb_free(c->cert_file);
  sb_free(c);
}

/* The whole of a PEM file (NUL-terminated; caller frees). */
static char *read_pem(const char *path, const char *what, sb_error *err) {
  FILE *f = sb_fopen_regular(path);
  if (!f) {
    sb_error_set(err, SB_EIO, "server.tls.%s: cannot read %s: %s", what, path,
                 errno == EINVAL ? "not a regular file" : strerror(errno));
    return NULL;
  }
  sb_buf b = SB_BUF_INIT;
  int rc = sb_buf_read_file(&b, f, MAX_PEM_BYTES);
  fclose(f);
  if (rc == SB_ETOOBIG || rc == SB_ENOMEM) {
    sb_error_set(err, SB_ETOOBIG, "server.tls.%s: %s: larger than 1 MiB",
                 what, path);
    sb_buf_free(&b);
    return NULL;
  }
  int failed = rc != 0;
  if (failed || !b.len) {
    sb_error_set(err, SB_EINVAL, "server.tls.%s: %s: %s", what, path,
                 failed ? "read error" : "empty file");
    sb_buf_free(&b);
    return NULL;
  }
  return b.data;
}

int sb_http_tls_load(const char *cert_file, const char *key_file,
                     http_tls_creds **out, sb_error *err) {
  http_tls_creds *c = sb_calloc(1, sizeof *c);
  gnutls_certificate_credentials_t check = NULL;
  int rc = SB_EINVAL;
  *out = NULL;
  if (!c || !(c->cert_file = sb_strdup(cert_file))) {
    sb_free(c);
    return sb_error_set(err, SB_ENOMEM, "out of memory");
  }
  if (!(c->cert_pem = read_pem(cert_file, "cert_file", err)) ||
      !(c->key_pem = read_pem(key_file, "key_file", err))) {
    rc = err ? err->code : SB_EIO;
    goto fail;
  }
  gnutls_datum_t cd = {(unsigned char *)c->cert_pem,
                       (unsigned)strlen(c->cert_pem)};
  gnutls_datum_t kd = {(unsigned char *)c->key_pem,
                       (unsigned)strlen(c->key_pem)};
  c->chain_len = MAX_CHAIN;
  int g = gnutls_pcert_list_import_x509_raw(c->chain, &c->chain_len, &cd,
                                            GNUTLS_X509_FMT_PEM, 0);
  if (g < 0) {
    c->chain_len = 0;
    sb_error_set(err, SB_EINVAL,
                 "server.tls.cert_file: %s: not a PEM certificate (chain): %s",
                 cert_file, gnutls_strerror(g));
    goto fail;
  }
  if ((g = gnutls_privkey_init(&c->key)) < 0 ||
      (g = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM,
                                          NULL, 0)) < 0) {
    sb_error_set(err, SB_EINVAL,
                 "server.tls.key_file: %s: not a PEM private key: %s", key_file,
                 gnutls_strerror(g));
    goto fail;
  }
  /* GnuTLS checks that the key is the certificate's. */
  if ((g = gnutls_certificate_allocate_credentials(&check)) < 0 ||
      (g = gnutls_certificate_set_x509_key_mem2(
           check, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
    sb_error_set(err, SB_EINVAL,
                 "server.tls: %s and %s do not make a certificate and its "
                 "key: %s",
                 cert_file, key_file, gnutls_strerror(g));
    goto fail;
  }
  gnutls_certificate_free_credentials(check);
  *out = c;
  return 0;
fail:
  if (check) gnutls_certificate_free_credentials(check);
  sb_http_tls_free(c);
  return rc;
}

/* GnuTLS asks for our certificate during a handshake. */
static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn,
                    int nreqs, const gnutls_pk_algorithm_t *algos, int nalgos,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length,
                    gnutls_privkey_t *key) {
  (void)req_ca_dn;
  (void)nreqs;
  (void)algos;
  (void)nalgos;
  struct MHD_Connection *conn = gnutls_session_get_ptr(session);
  http_conn *hc = conn ? http_conn_of(conn) : NULL;
  http_tls_creds *c = hc ? http_conn_server(hc)->tls : NULL;
  if (!c) return -1; /* the handshake fails */
  *pcert = c->chain;
  *pcert_length = c->chain_len;
  *key = c->key;
  return 0;
}

void *http_tls_callback(void) { return (void *)retrieve; }

const char *http_tls_cert_pem(const http_tls_creds *c) { return c->cert_pem; }
const char *http_tls_key_pem(const http_tls_creds *c) { return c->key_pem; }

int http_tls_supported(void) {
  return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES &&
         MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) == MHD_YES;
}

void http_tls_free_all(sb_http_server *s) {
  sb_http_tls_free(s->tls);
  s->tls = NULL;
  while (s->tls_retired) {
    http_tls_creds *c = s->tls_retired;
    s->tls_retired = c->retired_next;
    sb_http_tls_free(c);
  }
}

int sb_http_server_install_tls(sb_http_server *s, http_tls_creds *fresh,
                               sb_error *err) {
  if (!s->tls) {
    sb_http_tls_free(fresh);
    return sb_error_set(err, SB_ESTATE,
                        "server.tls: the listener serves plain HTTP; TLS is "
                        "turned on at the next start");
  }
  s->tls->retired_next = s->tls_retired;
  s->tls_retired = s->tls;
  s->tls = fresh;
  SB_INFO(MOD, "TLS certificate reloaded from %s: new connections get it",
          fresh->cert_file);
  return 0;
}

int sb_http_server_is_tls(const sb_http_server *s) { return s && s->tls; }
