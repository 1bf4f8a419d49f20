/* idle_conns.c: hold N idle keep-alive TCP connections open to a server so
 * bench/http_echo.sh can read the server's RSS per idle connection.
 *
 *   idle_conns HOST PORT N MODE
 *     MODE none: connect only (the script then waits until the server holds
 *                N more fds, so every connection has really been accepted)
 *     MODE get:  send one "GET /bench-idle" on each connection and read its
 *                complete response (which proves the server processed it);
 *                the connection then idles, kept alive
 *
 * Prints "ready OPEN" once all connections are in place, then idles until
 * stdin reaches EOF, prints "still-open K" (how many the server has not
 * closed meanwhile) and exits. Exit status 1 if any connection failed.
 * A bench tool, not library code: it prints and exits freely.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_CONNS = 100000, RESP_CAP = 8192, DEADLINE_MS = 30000 };

typedef struct conn {
  int fd;
  size_t sent;
  size_t got;
  int done; /* response complete (or nothing to wait for) */
  char resp[RESP_CAP];
} conn;

static const char request[] = "GET /bench-idle HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\n"
                              "Connection: keep-alive\r\n"
                              "\r\n";

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A response is complete once the header block and Content-Length bytes of
 * body have arrived. (The server answers an unknown path with a fixed-size
 * 404, so chunked encoding isn't needed here.) */
static int response_complete(const conn *c) {
  const char *end = memmem(c->resp, c->got, "\r\n\r\n", 4);
  if (!end) return 0;
  size_t header_len = (size_t)(end - c->resp) + 4;
  size_t body = 0;
  for (const char *p = c->resp; p < end; p++) {
    if ((p == c->resp || p[-1] == '\n') &&
        strncasecmp(p, "content-length:", 15) == 0) {
      body = strtoul(p + 15, NULL, 10);
      break;
    }
  }
  return c->got >= header_len + body;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: idle_conns HOST PORT N none|get\n");
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  long n = atol(argv[3]);
  int send_get = strcmp(argv[4], "get") == 0;
  if (n < 1 || n > MAX_CONNS || port < 1 || port > 65535) {
    fprintf(stderr, "idle_conns: bad port or count\n");
    return 2;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((unsigned short)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "idle_conns: bad IPv4 address %s\n", host);
    return 2;
  }
  conn *conns = calloc((size_t)n, sizeof *conns);
  struct pollfd *pfds = calloc((size_t)n, sizeof *pfds);
  if (!conns || !pfds) {
    fprintf(stderr, "idle_conns: out of memory\n");
    return 1;
  }

  /* All connects start at once, non-blocking; if the server's accept
   * backlog overflows, the kernel retries SYNs, which only costs time. */
  long failed = 0;
  for (long i = 0; i < n; i++) {
    conn *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
      fprintf(stderr, "idle_conns: socket: %s\n", strerror(errno));
      return 1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0 &&
        errno != EINPROGRESS) {
      fprintf(stderr, "idle_conns: connect: %s\n", strerror(errno));
      return 1;
    }
    c->done = !send_get;
  }

  /* Drive every connection until it is established (and, in get mode, its
   * response has arrived), under one overall deadline. */
  long deadline = now_ms() + DEADLINE_MS;
  long pending = n;
  int *established = calloc((size_t)n, sizeof *established);
  if (!established) return 1;
  while (pending > 0) {
    long left = deadline - now_ms();
    if (left <= 0) {
      fprintf(stderr, "idle_conns: %ld of %ld connections not ready in %d ms\n",
              pending, n, DEADLINE_MS);
      return 1;
    }
    long k = 0;
    for (long i = 0; i < n; i++) {
      conn *c = &conns[i];
      if (c->fd < 0 || (established[i] && c->done)) continue;
      pfds[k].fd = c->fd;
      pfds[k].events =
          !established[i] || c->sent < sizeof request - 1 ? POLLOUT : POLLIN;
      pfds[k].revents = 0;
      k++;
    }
    if (poll(pfds, (nfds_t)k, (int)(left < 1000 ? left : 1000)) < 0) {
      if (errno == EINTR) continue;
      perror("idle_conns: poll");
      return 1;
    }
    /* pfds[j] maps back to conns in the same order as built above */
    long j = 0;
    for (long i = 0; i < n && j < k; i++) {
      conn *c = &conns[i];
      if (c->fd < 0 || (established[i] && c->done)) continue;
      short re = pfds[j++].revents;
      if (!re) continue;
      if (!established[i]) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0) {
          fprintf(stderr, "idle_conns: connect: %s\n", strerror(soerr));
          close(c->fd);
          c->fd = -1;
          failed++;
          pending--;
          continue;
        }
        established[i] = 1;
        if (c->done) {
          pending--;
          continue;
        }
      }
      if (c->sent < sizeof request - 1) {
        ssize_t w = send(c->fd, request + c->sent, sizeof request - 1 - c->sent,
                         MSG_NOSIGNAL);
        if (w > 0)
          c->sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN)
          goto conn_failed;
        continue;
      }
      ssize_t r = recv(c->fd, c->resp + c->got, RESP_CAP - c->got, 0);
      if (r > 0) {
        c->got += (size_t)r;
        if (response_complete(c)) {
          c->done = 1;
          pending--;
        } else if (c->got == RESP_CAP) {
          fprintf(stderr, "idle_conns: response larger than %d bytes\n",
                  RESP_CAP);
          goto conn_failed;
        }
        continue;
      }
      if (r < 0 && errno == EAGAIN) continue;
    conn_failed:
      fprintf(stderr, "idle_conns: connection %ld closed by the server\n", i);
      close(c->fd);
      c->fd = -1;
      failed++;
      pending--;
    }
  }
  if (send_get && failed == 0 && strncmp(conns[0].resp, "HTTP/1.1 ", 9) != 0) {
    fprintf(stderr, "idle_conns: unexpected response: %.40s\n", conns[0].resp);
    failed++;
  }

  printf("ready %ld\n", n - failed);
  fflush(stdout);

  /* Idle until the script is done measuring (stdin EOF). */
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
  }

  /* Which connections did the server close while we idled? A closed one
   * polls readable and recv returns 0 (or an error). */
  long open_count = 0;
  for (long i = 0; i < n; i++) {
    if (conns[i].fd < 0) continue;
    char b;
    ssize_t r = recv(conns[i].fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) open_count++;
    close(conns[i].fd);
  }
  printf("still-open %ld\n", open_count);
  free(established);
  free(pfds);
  free(conns);
  return failed ? 1 : 0;
}
