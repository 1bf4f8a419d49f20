/* stdio.c: MCP over this process's stdin and stdout.
 *
 * Messages are newline-delimited JSON. Reads are framed across partial
 * reads; a line longer than the configured message limit is answered with
 * an error once and skipped up to its newline, so one bad message never
 * desynchronises the stream. stdout carries only protocol messages (logs go
 * to stderr) and is written asynchronously so a slow client never blocks
 * the loop.
 */
#include <string.h>
#include <unistd.h>

#include "net/net.h"

#define MODULE "stdio"

struct sb_stdio_server {
  uv_loop_t *loop;
  sb_mcp_server *srv;
  sb_mcp_session *session;
  sb_mcp_out out;
  uv_pipe_t in_pipe;
  uv_tty_t in_tty;
  uv_stream_t *in;
  uv_pipe_t out_pipe;
  uv_tty_t out_tty;
  uv_stream_t *stdout_stream;
  int stdout_is_file; /* regular file: plain blocking writes never stall */
  uv_fs_t file_req; /* stdin is a regular file: chunked reads */
  int file_reading;
  sb_buf line;
  int discarding; /* skipping the rest of an oversized line */
  int refs;       /* open handles + pending reads + the owner */
  int stopping;
  int paused; /* started paused: nothing read until resumed */
  void (*on_eof)(void *);
  void *ud;
};

typedef struct write_req {
  uv_write_t req;
  char *data;
} write_req;

static void on_written(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  if (status < 0) SB_WARN(MODULE, "stdout write failed: %s", uv_strerror(status));
  sb_free(w->data);
  sb_free(w);
}

/* Write len bytes to a regular file's stdout: plain blocking writes. */
static int write_file(const char *data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(STDOUT_FILENO, data + off, len - off);
    if (n < 0) break;
    off += (size_t)n;
  }
  return off == len ? 0 : SB_EIO;
}

/* Queue what the stream did not take at once, in an allocation of its own
 * that on_written frees. */
static int queue_rest(sb_stdio_server *s, const char *data, size_t len) {
  write_req *w = sb_calloc(1, sizeof *w);
  char *copy = sb_malloc(len);
  if (!w || !copy) {
    sb_free(w);
    sb_free(copy);
    return SB_ENOMEM;
  }
  memcpy(copy, data, len);
  w->data = copy;
  uv_buf_t buf = uv_buf_init(copy, (unsigned)len);
  if (uv_write(&w->req, s->stdout_stream, &buf, 1, on_written) < 0) {
    sb_free(copy);
    sb_free(w);
    return SB_EIO;
  }
  return 0;
}

static int stdio_write(sb_mcp_out *out, json_t *msg, int final) {
  sb_stdio_server *s = out->data;
  if (!s->stdout_stream && !s->stdout_is_file) return SB_ECANCELED;
  if (!msg) return 0; /* a request that ends with nothing to say */
  /* Most messages fit the stack: dumped there and written from there,
   * and only what the pipe does not take at once is copied on. A longer
   * one is dumped into an allocation of its length (and the newline). */
  char stack[4096], *heap;
  size_t len;
  char *line =
      sb_json_dump_to(msg, JSON_COMPACT, stack, sizeof stack, 1, &len, &heap);
  if (!line) return SB_ENOMEM;
  line[len++] = '\n';
  int rc = 0;
  if (s->stdout_is_file) {
    rc = write_file(line, len);
  } else {
    /* uv_try_write refuses while earlier bytes still wait in libuv's
     * queue, which keeps the order. */
    uv_buf_t buf = uv_buf_init(line, (unsigned)len);
    int n = uv_try_write(s->stdout_stream, &buf, 1);
    if (n == UV_EAGAIN) n = 0;
    if (n < 0)
      rc = SB_EIO;
    else if ((size_t)n < len)
      rc = queue_rest(s, line + n, len - (size_t)n);
  }
  sb_free(heap);
  return rc;
}

static void process_line(sb_stdio_server *s, const char *data, size_t len) {
  while (len && (data[len - 1] == '\r' || data[len - 1] == ' ')) len--;
  if (len == 0) return;
  sb_mcp_server_dispatch_bytes(s->srv, s->session, &s->out, data, len);
}

static void reject_oversized(sb_stdio_server *s) {
  size_t limit = sb_mcp_server_limits(s->srv)->max_message_bytes;
  char msg[160];
  snprintf(msg, sizeof msg,
           "message exceeds the limit of %zu bytes; skipped up to its newline",
           limit);
  json_t *err = sb_rpc_error_new(NULL, SB_RPC_INVALID_REQUEST, msg, NULL);
  stdio_write(&s->out, err, 1);
  json_decref(err);
}

static void stop_input(sb_stdio_server *s);

/* Frame what was just appended to s->line: dispatch each complete line,
 * keep the partial tail, and police the length of the line in progress. */
static void feed(sb_stdio_server *s, size_t nread) {
  size_t limit = sb_mcp_server_limits(s->srv)->max_message_bytes;
  size_t scanned = s->line.len;
  s->line.len += nread;
  s->line.data[s->line.len] = '\0';
  size_t start = 0;
  for (size_t i = scanned; i < s->line.len; i++) {
    if (s->line.data[i] != '\n') continue;
    if (s->discarding) s->discarding = 0;
    else process_line(s, s->line.data + start, i - start);
    if (s->stopping) return;
    start = i + 1;
  }
  sb_buf_consume(&s->line, start);
  if (s->line.len > limit) {
    if (!s->discarding) reject_oversized(s);
    s->discarding = 1;
    sb_buf_reset(&s->line);
  }
}

/* At EOF a last line without its newline is still a message. */
static void feed_eof(sb_stdio_server *s) {
  if (!s->discarding && s->line.len > 0)
    process_line(s, s->line.data, s->line.len);
  sb_buf_reset(&s->line);
}

static void release(sb_stdio_server *s) {
  if (--s->refs > 0) return;
  sb_buf_free(&s->line);
  sb_free(s);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  sb_stdio_server *s = h->data;
  if (sb_buf_reserve(&s->line, 65536) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(s->line.data + s->line.len,
                     (unsigned)(s->line.cap - s->line.len - 1));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  sb_stdio_server *s = stream->data;
  if (nread < 0) {
    if (nread != UV_EOF)
      SB_WARN(MODULE, "stdin read failed: %s", uv_strerror((int)nread));
    else
      feed_eof(s);
    stop_input(s);
    return;
  }
  feed(s, (size_t)nread);
}

/* stdin redirected from a regular file: read it through the loop's thread
 * pool, one chunk at a time. */
static void file_read_next(sb_stdio_server *s);

static void file_read_cb(uv_fs_t *req) {
  sb_stdio_server *s = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  s->file_reading = 0;
  if (!s->stopping) {
    if (n > 0) {
      feed(s, (size_t)n);
      file_read_next(s);
    } else {
      if (n < 0) SB_WARN(MODULE, "stdin read failed: %s", uv_strerror((int)n));
      else feed_eof(s);
      stop_input(s);
    }
  }
  release(s);
}

static void file_read_next(sb_stdio_server *s) {
  if (s->stopping || sb_buf_reserve(&s->line, 65536) != 0) {
    if (!s->stopping) stop_input(s);
    return;
  }
  uv_buf_t buf = uv_buf_init(s->line.data + s->line.len,
                             (unsigned)(s->line.cap - s->line.len - 1));
  s->file_req.data = s;
  s->refs++;
  s->file_reading = 1;
  if (uv_fs_read(s->loop, &s->file_req, STDIN_FILENO, &buf, 1, -1,
                 file_read_cb) < 0) {
    s->file_reading = 0;
    s->refs--;
    stop_input(s);
  }
}

static void handle_closed(uv_handle_t *h) { release(h->data); }

static void on_stdout_drained(uv_shutdown_t *req, int status) {
  uv_close((uv_handle_t *)req->handle, handle_closed);
  sb_free(req);
}

static void stop_input(sb_stdio_server *s) {
  if (s->stopping) return;
  s->stopping = 1;
  if (s->in) uv_read_stop(s->in);
  /* The requests already read are still answered; the owner decides how
   * long to wait for them (sb_stdio_server_busy) before it stops. */
  if (s->on_eof) s->on_eof(s->ud);
}

int sb_stdio_server_busy(const sb_stdio_server *s) {
  if (!s) return 0;
  return sb_mcp_out_busy(&s->out) ||
         (s->stdout_stream &&
          uv_stream_get_write_queue_size(s->stdout_stream) > 0);
}

/* Open fd as a libuv stream; *out stays NULL for a regular file. */
static int open_stream(uv_loop_t *loop, int fd, int readable, uv_pipe_t *pipe,
                       uv_tty_t *tty, uv_stream_t **out, sb_error *err) {
  uv_handle_type t = uv_guess_handle(fd);
  int rc;
  *out = NULL;
  if (t == UV_FILE) return 0;
  if (t == UV_TTY) {
    rc = uv_tty_init(loop, tty, fd, readable);
    *out = (uv_stream_t *)tty;
  } else if (t == UV_NAMED_PIPE) {
    rc = uv_pipe_init(loop, pipe, 0);
    if (rc == 0) rc = uv_pipe_open(pipe, fd);
    *out = (uv_stream_t *)pipe;
  } else {
    return sb_error_set(err, SB_EINVAL,
                        "fd %d must be a pipe, socket, terminal or file for "
                        "MCP over stdio",
                        fd);
  }
  if (rc < 0) {
    *out = NULL;
    return sb_error_set(err, SB_EIO, "cannot open fd %d: %s", fd,
                        uv_strerror(rc));
  }
  return 0;
}

static void close_streams(sb_stdio_server *s) {
  if (s->in) {
    uv_close((uv_handle_t *)s->in, handle_closed);
    s->in = NULL;
  }
  uv_stream_t *out = s->stdout_stream;
  s->stdout_stream = NULL;
  s->stdout_is_file = 0;
  if (!out) return;
  /* Let queued stdout writes drain before closing (a plain uv_close would
   * cancel them and lose answers already produced). */
  uv_shutdown_t *req = sb_calloc(1, sizeof *req);
  if (!req || uv_shutdown(req, out, on_stdout_drained) < 0) {
    sb_free(req);
    uv_close((uv_handle_t *)out, handle_closed);
  }
}

static sb_stdio_server *stdio_start(uv_loop_t *loop, sb_mcp_server *srv,
                                    void (*on_eof)(void *ud), void *ud,
                                    int paused, sb_error *err) {
  sb_stdio_server *s = sb_calloc(1, sizeof *s);
  if (!s) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    return NULL;
  }
  s->loop = loop;
  s->srv = srv;
  s->on_eof = on_eof;
  s->ud = ud;
  s->out.write = stdio_write;
  s->out.data = s;
  s->refs = 1; /* dropped by sb_stdio_server_stop */
  if (open_stream(loop, STDIN_FILENO, 1, &s->in_pipe, &s->in_tty, &s->in,
                  err) != 0 ||
      open_stream(loop, STDOUT_FILENO, 0, &s->out_pipe, &s->out_tty,
                  &s->stdout_stream, err) != 0)
    goto fail;
  if (s->in) {
    s->in->data = s;
    s->refs++;
  }
  if (s->stdout_stream) {
    s->stdout_stream->data = s;
    s->refs++;
  } else {
    s->stdout_is_file = 1;
  }
  s->session = sb_mcp_session_new(srv, &s->out);
  if (!s->session) {
    sb_error_set(err, SB_ENOMEM, "out of memory");
    goto fail;
  }
  s->paused = paused;
  if (!paused) {
    s->paused = 1;
    sb_stdio_server_resume(s);
  }
  return s;
fail:
  close_streams(s);
  release(s);
  return NULL;
}

sb_stdio_server *sb_stdio_server_start(uv_loop_t *loop, sb_mcp_server *srv,
                                       void (*on_eof)(void *ud), void *ud,
                                       sb_error *err) {
  return stdio_start(loop, srv, on_eof, ud, 0, err);
}

sb_stdio_server *sb_stdio_server_start_paused(uv_loop_t *loop,
                                              sb_mcp_server *srv,
                                              void (*on_eof)(void *ud),
                                              void *ud, sb_error *err) {
  return stdio_start(loop, srv, on_eof, ud, 1, err);
}

void sb_stdio_server_resume(sb_stdio_server *s) {
  if (!s || !s->paused || s->stopping) return;
  s->paused = 0;
  if (s->in) uv_read_start(s->in, alloc_cb, read_cb);
  else file_read_next(s);
  SB_INFO(MODULE, "serving MCP on stdin/stdout");
}

void sb_stdio_server_stop(sb_stdio_server *s) {
  if (!s) return;
  if (!s->stopping) {
    s->stopping = 1;
    if (s->in) uv_read_stop(s->in);
  }
  if (s->file_reading) uv_cancel((uv_req_t *)&s->file_req);
  sb_mcp_out_detach(&s->out);
  sb_mcp_session_free(s->session);
  s->session = NULL;
  close_streams(s);
  release(s);
}
