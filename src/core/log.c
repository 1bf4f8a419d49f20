/* log.c: log lines on stderr, which never block the thread that logs.
 *
 * A server's stderr is a pipe or a socket more often than a file (a
 * terminal, `2>&1 | tee`, a container runtime, journald), and a reader
 * that stops reading would fill it: a blocking write there would stop
 * the event loop, and every tenant with it, until someone read. So once
 * sb_log_start has run, a line is written straight away when the reader
 * keeps up (order and timing as before), and kept in a bounded buffer
 * when it does not, which a thread of its own drains as the reader
 * makes room; past the buffer lines are dropped, and a line counting
 * them is written once there is room again. Before sb_log_start (the
 * command-line tools), lines are plain blocking writes. */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
  SINK_MAX_PENDING = 1 << 20, /* bytes kept for a reader that lags */
  SINK_DRAIN_MS = 2000,       /* what sb_log_stop waits for it at most */
};

static sb_log_level current_level = SB_LOG_INFO;
static sb_log_format current_format = SB_LOG_TEXT;
static const char *const level_names[] = {"debug", "info", "notice", "warning",
                                          "error"};

void sb_log_set_level(sb_log_level level) { current_level = level; }
sb_log_level sb_log_get_level(void) { return current_level; }

void sb_log_set_format(sb_log_format format) { current_format = format; }

int sb_log_format_parse(const char *name) {
  if (name && strcmp(name, "text") == 0) return SB_LOG_TEXT;
  if (name && strcmp(name, "json") == 0) return SB_LOG_JSON;
  return -1;
}

/* ---- lines ------------------------------------------------------------- */

int sb_log_level_parse(const char *name) {
  if (!name) return -1; /* e.g. a config key present with no value */
  for (int i = 0; i < 5; i++)
    if (strcmp(name, level_names[i]) == 0) return i;
  return -1;
}

/* One entry, formatted, redacted and escaped, ending in a newline, into
 * out (ENTRY_MAX bytes); returns its length. */
enum { MESSAGE_MAX = 2048, ENTRY_MAX = (MESSAGE_MAX + 64) * 4 + 2 };

static size_t format_entry(char *out, sb_log_level level, const char *module,
                           const char *fmt, va_list ap) {
  char ts[32];
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  char line[MESSAGE_MAX];
  int json = current_format == SB_LOG_JSON;
  int n = json ? 0
               : snprintf(line, sizeof line, "%s.%03ldZ %-7s %s: ", ts,
                          now.tv_nsec / 1000000L, level_names[level], module);
  if (n >= 0 && (size_t)n < sizeof line)
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  /* No secret leaves through a log line, whoever formatted it. */
  char clean[sizeof line + 64];
  sb_log_redact(line, clean, sizeof clean);
  size_t len;
  if (json) {
    /* The message escaped whole: control characters cannot break the
     * line, and the object stays valid JSON whatever a client sent. */
    char msg[sizeof clean * 2], mod[128];
    sb_json_escape(clean, msg, sizeof msg);
    sb_json_escape(module, mod, sizeof mod);
    int w = snprintf(out, ENTRY_MAX - 1,
                     "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\","
                     "\"module\":\"%s\",\"msg\":\"%s\"}",
                     ts, now.tv_nsec / 1000000L, level_names[level], mod, msg);
    len = w < 0 ? 0 : (size_t)w < ENTRY_MAX - 1 ? (size_t)w : ENTRY_MAX - 2;
  } else {
    /* One entry, one line: an error quoting what a client sent ("got
     * \"a\\n2026-... audit: ...\"") must not start a line of its own
     * that reads as another entry of the log or the audit trail. */
    len = sb_escape_controls(clean, strlen(clean), out, ENTRY_MAX - 1,
                             SB_ESC_KEEP_TAB | SB_ESC_NAMED_CRLF);
  }
  out[len++] = '\n';
  return len;
}

static size_t entry(char *out, sb_log_level level, const char *module,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static size_t entry(char *out, sb_log_level level, const char *module,
                    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t len = format_entry(out, level, module, fmt, ap);
  va_end(ap);
  return len;
}

/* ---- the sink -------------------------------------------------------- */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t wake;
  pthread_t thread;
  int running;   /* sb_log_start ran: lines go through the sink */
  int stopping;  /* sb_log_stop: drain, then end */
  int fd;        /* where lines go: stderr, or a non-blocking reopening */
  int owned;     /* fd is ours to close */
  int is_socket; /* send(MSG_DONTWAIT) instead of write */
  char *pending; /* bytes the reader has not taken yet */
  size_t pending_len, pending_off;
  unsigned long dropped; /* lines left out since the last count written */
} sink = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .fd = STDERR_FILENO};

/* Bytes of data written without waiting: 0 when the reader's side is
 * full, -1 when it is gone (or stderr is closed): then nothing will
 * ever be read and lines are let go. */
static ssize_t write_now(const char *data, size_t len) {
  for (;;) {
    ssize_t n = sink.is_socket
                    ? send(sink.fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL)
                    : write(sink.fd, data, len);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  }
}

/* Keep a line (or its unwritten tail) for the drainer; mu held. */
static void keep(const char *data, size_t len) {
  if (sink.pending_off > 0 && sink.pending_off == sink.pending_len)
    sink.pending_off = sink.pending_len = 0;
  if (!sink.pending) sink.pending = sb_malloc(SINK_MAX_PENDING);
  if (!sink.pending || sink.pending_len + len > SINK_MAX_PENDING) {
    sink.dropped++;
    return;
  }
  if (sink.pending_off > 0) { /* room at the front: move what is left */
    memmove(sink.pending, sink.pending + sink.pending_off,
            sink.pending_len - sink.pending_off);
    sink.pending_len -= sink.pending_off;
    sink.pending_off = 0;
    if (sink.pending_len + len > SINK_MAX_PENDING) {
      sink.dropped++;
      return;
    }
  }
  memcpy(sink.pending + sink.pending_len, data, len);
  sink.pending_len += len;
  pthread_cond_signal(&sink.wake);
}

static void emit(const char *line, size_t len) {
  pthread_mutex_lock(&sink.mu);
  if (!sink.running) {
    /* One write per line so concurrent writers don't interleave. */
    fwrite(line, 1, len, stderr);
    pthread_mutex_unlock(&sink.mu);
    return;
  }
  if (sink.pending_off == sink.pending_len && !sink.dropped) {
    ssize_t n = write_now(line, len);
    if (n < 0 || (size_t)n == len) {
      pthread_mutex_unlock(&sink.mu);
      return;
    }
    line += n;
    len -= (size_t)n;
  }
  keep(line, len);
  pthread_mutex_unlock(&sink.mu);
}

/* The drainer: writes what is kept as the reader makes room, then the
 * count of lines dropped meanwhile. */
static void *drain(void *arg) {
  (void)arg;
  static char note[ENTRY_MAX];
  uint64_t deadline = 0;
  pthread_mutex_lock(&sink.mu);
  for (;;) {
    if (sink.pending_off == sink.pending_len && sink.dropped) {
      unsigned long dropped = sink.dropped;
      sink.dropped = 0;
      pthread_mutex_unlock(&sink.mu);
      size_t n = entry(note, SB_LOG_WARNING, "log",
                       "%lu log lines dropped: stderr was not being read "
                       "(kept %d KiB for it)",
                       dropped, SINK_MAX_PENDING / 1024);
      pthread_mutex_lock(&sink.mu);
      keep(note, n);
      continue;
    }
    if (sink.pending_off == sink.pending_len) {
      if (sink.stopping) break;
      pthread_cond_wait(&sink.wake, &sink.mu);
      continue;
    }
    if (sink.stopping && !deadline) deadline = sb_now_ms() + SINK_DRAIN_MS;
    if (deadline && sb_now_ms() >= deadline) break;
    ssize_t n = write_now(sink.pending + sink.pending_off,
                          sink.pending_len - sink.pending_off);
    if (n < 0) { /* nobody will read: let it go */
      sink.pending_off = sink.pending_len = 0;
      sink.dropped = 0;
      continue;
    }
    sink.pending_off += (size_t)n;
    if (n > 0) continue;
    pthread_mutex_unlock(&sink.mu);
    struct pollfd p = {.fd = sink.fd, .events = POLLOUT};
    (void)poll(&p, 1, 100); /* woken by room; rechecks stopping */
    pthread_mutex_lock(&sink.mu);
  }
  pthread_mutex_unlock(&sink.mu);
  return NULL;
}

/* A descriptor for stderr that does not block, without changing the one
 * the process shares with its parent (O_NONBLOCK on a shared pipe or
 * terminal would surprise whoever else writes to it): a pipe or a
 * terminal is opened anew through /proc; a socket is sent to with
 * MSG_DONTWAIT; a regular file is written as it is (a write there waits
 * on no other process). */
static void open_sink(void) {
  struct stat st;
  sink.fd = STDERR_FILENO;
  sink.owned = sink.is_socket = 0;
  if (fstat(STDERR_FILENO, &st) != 0) return;
  if (S_ISSOCK(st.st_mode)) {
    sink.is_socket = 1;
  } else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
    int fd = open("/proc/self/fd/2",
                  O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | O_APPEND);
    if (fd >= 0) {
      sink.fd = fd;
      sink.owned = 1;
    }
  }
}

int sb_log_start(void) {
  pthread_mutex_lock(&sink.mu);
  if (sink.running) {
    pthread_mutex_unlock(&sink.mu);
    return 0;
  }
  fflush(stderr);
  open_sink();
  sink.stopping = 0;
  int rc = pthread_create(&sink.thread, NULL, drain, NULL);
  if (rc == 0) {
    sink.running = 1;
  } else if (sink.owned) {
    close(sink.fd);
    sink.fd = STDERR_FILENO;
    sink.owned = 0;
  }
  pthread_mutex_unlock(&sink.mu);
  return rc == 0 ? 0 : SB_ENOMEM;
}

void sb_log_stop(void) {
  pthread_mutex_lock(&sink.mu);
  if (!sink.running) {
    pthread_mutex_unlock(&sink.mu);
    return;
  }
  sink.stopping = 1;
  pthread_cond_signal(&sink.wake);
  pthread_mutex_unlock(&sink.mu);
  pthread_join(sink.thread, NULL);
  pthread_mutex_lock(&sink.mu);
  sink.running = 0;
  if (sink.owned) close(sink.fd);
  sink.fd = STDERR_FILENO;
  sink.owned = sink.is_socket = 0;
  sb_free(sink.pending);
  sink.pending = NULL;
  sink.pending_len = sink.pending_off = 0;
  sink.dropped = 0;
  pthread_mutex_unlock(&sink.mu);
}

/* ---- sb_log ---------------------------------------------------------- */

void sb_log(sb_log_level level, const char *module, const char *fmt, ...) {
  if (level < current_level) return;
  char out[ENTRY_MAX];
  va_list ap;
  va_start(ap, fmt);
  size_t len = format_entry(out, level, module, fmt, ap);
  va_end(ap);
  emit(out, len);
}
