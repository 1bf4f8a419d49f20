/* pipe_rtt: the floor under the gateway's agent hop (bench/gateway.sh).
 *
 * switchboard relays a call to a stdio agent as one line down a pipe and
 * one line back, two processes each sleeping until its line arrives. This
 * measures that round trip with nothing else in it: a parent and a forked
 * child exchange one line of `--bytes` bytes (default 220, about an echo
 * tools/call with its _meta) over two pipes, `--rounds` times, and report
 * the round trip's percentiles in microseconds, for each way of waiting:
 *
 *   blocking   read(2) blocks in both processes
 *   epoll      both wait in epoll_wait(2) on non-blocking pipes, as an
 *              event loop does
 *   uv         both run a libuv loop: uv_read_start, uv_try_write (what
 *              switchboard and bench/echo_agent do)
 *   uv-sock    the same over a socketpair, which is what libuv makes for
 *              a child's stdio (UV_CREATE_PIPE) and so what switchboard
 *              talks to a stdio agent over
 *   spin       the parent polls with non-blocking reads instead of
 *              sleeping (the child blocks): one wake-up per round instead
 *              of two, which shows what a sleeping process's wake-up costs
 *              on this machine (a VM's idle wake-ups are often slow)
 *
 *   pipe_rtt [--rounds N] [--bytes B] [MODE...]     (default: all five)
 *
 * Prints one line per mode: "MODE p50_us P50 p99_us P99 mean_us MEAN"
 * with one decimal. Exit 1 on an I/O failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

enum { WARMUP = 2000, MAX_BYTES = 65536 };

typedef struct side {
  int in, out; /* the fds this process reads and writes */
} side;

static int rounds = 20000;
static size_t msg_bytes = 220;
static char msg[MAX_BYTES];

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EAGAIN) continue; /* a pipe this small never fills */
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* ---- waiting by mode: read one whole line of msg_bytes ------------------ */

static int read_line_blocking(int fd, char *buf) {
  size_t got = 0;
  while (got < msg_bytes) {
    ssize_t n = read(fd, buf + got, msg_bytes - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

static int read_line_spin(int fd, char *buf) {
  size_t got = 0;
  while (got < msg_bytes) {
    ssize_t n = read(fd, buf + got, msg_bytes - got);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

static int read_line_epoll(int ep, int fd, char *buf) {
  size_t got = 0;
  while (got < msg_bytes) {
    struct epoll_event ev;
    int k = epoll_wait(ep, &ev, 1, -1);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    for (;;) {
      ssize_t n = read(fd, buf + got, msg_bytes - got);
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return -1;
      got += (size_t)n;
      if (got == msg_bytes) break;
    }
  }
  return 0;
}

static int set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int epoll_for(int fd) {
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) return -1;
  return ep;
}

/* ---- the libuv flavour --------------------------------------------------- */

typedef struct uv_side {
  uv_loop_t loop;
  uv_pipe_t in, out;
  char buf[MAX_BYTES];
  size_t got;
  int parent;
  int left; /* rounds still to make (parent) */
  uint64_t sent_at;
  uint64_t *samples;
  int nsamples;
  int failed;
} uv_side;

static void uv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  uv_side *s = h->data;
  *b = uv_buf_init(s->buf + s->got, (unsigned)(sizeof s->buf - s->got));
}

static void uv_send(uv_side *s) {
  uv_buf_t b = uv_buf_init(msg, (unsigned)msg_bytes);
  if (uv_try_write((uv_stream_t *)&s->out, &b, 1) != (int)msg_bytes) {
    s->failed = 1;
    uv_stop(&s->loop);
  }
}

static void uv_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  uv_side *s = st->data;
  if (n < 0) {
    if (s->parent) s->failed = 1;
    uv_stop(&s->loop);
    return;
  }
  s->got += (size_t)n;
  if (s->got < msg_bytes) return;
  s->got = 0;
  if (!s->parent) {
    uv_send(s);
    return;
  }
  uint64_t t = now_ns();
  if (s->left <= rounds) s->samples[s->nsamples++] = t - s->sent_at;
  if (--s->left == 0) {
    uv_stop(&s->loop);
    return;
  }
  s->sent_at = now_ns();
  uv_send(s);
}

static int uv_run_side(side fds, int parent, uint64_t *samples) {
  static uv_side s;
  memset(&s, 0, sizeof s);
  s.parent = parent;
  s.samples = samples;
  s.left = rounds + WARMUP;
  if (uv_loop_init(&s.loop) || uv_pipe_init(&s.loop, &s.in, 0) ||
      uv_pipe_init(&s.loop, &s.out, 0) || uv_pipe_open(&s.in, fds.in) ||
      uv_pipe_open(&s.out, fds.out))
    return -1;
  s.in.data = &s;
  uv_read_start((uv_stream_t *)&s.in, uv_alloc, uv_on_read);
  if (parent) {
    s.sent_at = now_ns();
    uv_send(&s);
  }
  uv_run(&s.loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&s.in, NULL);
  uv_close((uv_handle_t *)&s.out, NULL);
  uv_run(&s.loop, UV_RUN_DEFAULT);
  uv_loop_close(&s.loop);
  return s.failed || (parent && s.nsamples != rounds) ? -1 : 0;
}

/* ---- one mode ------------------------------------------------------------ */

typedef enum mode {
  MODE_BLOCKING,
  MODE_EPOLL,
  MODE_UV,
  MODE_UV_SOCK,
  MODE_SPIN,
  MODE_COUNT
} mode;
static const char *const mode_names[] = {"blocking", "epoll", "uv", "uv-sock",
                                         "spin"};

/* The child's side: echo every line until EOF. */
static int child_echo(mode m, side fds) {
  char buf[MAX_BYTES];
  if (m == MODE_UV || m == MODE_UV_SOCK) return uv_run_side(fds, 0, NULL);
  int ep = -1;
  if (m == MODE_EPOLL) {
    if (set_nonblocking(fds.in) != 0 || (ep = epoll_for(fds.in)) < 0) return -1;
  }
  for (;;) {
    int rc = m == MODE_EPOLL ? read_line_epoll(ep, fds.in, buf)
                             : read_line_blocking(fds.in, buf);
    if (rc != 0) return 0; /* EOF: the parent is done */
    if (write_all(fds.out, buf, msg_bytes) != 0) return -1;
  }
}

static int parent_drive(mode m, side fds, uint64_t *samples) {
  if (m == MODE_UV || m == MODE_UV_SOCK) return uv_run_side(fds, 1, samples);
  char buf[MAX_BYTES];
  int ep = -1;
  if (m == MODE_EPOLL || m == MODE_SPIN) {
    if (set_nonblocking(fds.in) != 0) return -1;
    if (m == MODE_EPOLL && (ep = epoll_for(fds.in)) < 0) return -1;
  }
  for (int i = 0; i < rounds + WARMUP; i++) {
    uint64_t t0 = now_ns();
    if (write_all(fds.out, msg, msg_bytes) != 0) return -1;
    int rc = m == MODE_EPOLL  ? read_line_epoll(ep, fds.in, buf)
             : m == MODE_SPIN ? read_line_spin(fds.in, buf)
                              : read_line_blocking(fds.in, buf);
    if (rc != 0) return -1;
    if (i >= WARMUP) samples[i - WARMUP] = now_ns() - t0;
  }
  if (ep >= 0) close(ep);
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int run_mode(mode m) {
  int down[2], up[2];
  if (m == MODE_UV_SOCK) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, down) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, up) != 0)
      return -1;
  } else if (pipe(down) != 0 || pipe(up) != 0) {
    return -1;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(down[1]);
    close(up[0]);
    _exit(child_echo(m, (side){down[0], up[1]}) == 0 ? 0 : 1);
  }
  close(down[0]);
  close(up[1]);
  uint64_t *samples = calloc((size_t)rounds, sizeof *samples);
  int rc = samples ? parent_drive(m, (side){up[0], down[1]}, samples) : -1;
  close(down[1]); /* EOF ends the child */
  close(up[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (rc == 0) {
    qsort(samples, (size_t)rounds, sizeof *samples, cmp_u64);
    double sum = 0;
    for (int i = 0; i < rounds; i++)
      sum += (double)samples[i];
    printf("%s p50_us %.1f p99_us %.1f mean_us %.1f\n", mode_names[m],
           (double)samples[rounds / 2] / 1e3,
           (double)samples[(size_t)rounds * 99 / 100] / 1e3,
           sum / rounds / 1e3);
  }
  free(samples);
  return rc;
}

int main(int argc, char **argv) {
  int modes[MODE_COUNT], nmodes = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc) {
      msg_bytes = (size_t)strtoul(argv[++i], NULL, 10);
    } else {
      int found = 0;
      for (int k = 0; k < MODE_COUNT && !found; k++)
        if (strcmp(argv[i], mode_names[k]) == 0 && nmodes < MODE_COUNT)
          modes[nmodes++] = k, found = 1;
      if (!found) {
        fprintf(stderr, "usage: pipe_rtt [--rounds N] [--bytes B] "
                        "[blocking|epoll|uv|uv-sock|spin]...\n");
        return 2;
      }
    }
  }
  if (rounds < 100 || msg_bytes < 2 || msg_bytes > MAX_BYTES) {
    fprintf(stderr, "pipe_rtt: --rounds >= 100, 2 <= --bytes <= %d\n",
            MAX_BYTES);
    return 2;
  }
  memset(msg, 'x', msg_bytes - 1);
  msg[msg_bytes - 1] = '\n';
  if (!nmodes)
    for (int k = 0; k < MODE_COUNT; k++)
      modes[nmodes++] = k;
  for (int i = 0; i < nmodes; i++) {
    if (run_mode((mode)modes[i]) != 0) {
      fprintf(stderr, "pipe_rtt: %s: I/O failed\n", mode_names[modes[i]]);
      return 1;
    }
  }
  return 0;
}
