/* child.c: channels to stdio agents, i.e. child processes that speak
 * newline-delimited JSON-RPC on their stdin/stdout.
 *
 * One uv_process_t and three pipes per agent. The agent's stdin and
 * stdout are pipe(2)s made here rather than the socketpairs libuv makes
 * for UV_CREATE_PIPE: a message and its answer cross them every call, and
 * a pipe's write-and-wake-the-reader is the cheaper of the two (about 5 us
 * of a 30 us round trip on our 2-core VM, bench/pipe_rtt). Stdout is framed by
 * newline across partial reads; a line longer than max_message_bytes, or too
 * many lines that are not JSON, mean the agent is broken: we report the channel
 * down and kill it, so one bad agent never harms the others. Stderr lines
 * are the agent's log and go to ours, rate-limited. Writes are queued by
 * libuv but bounded: an agent that stops reading stdin is disconnected
 * rather than making us buffer without limit. The first message of a
 * loop turn is written at once, so the agent starts on it while we carry
 * on; the rest of that turn's messages are gathered and written together
 * just before the loop waits again (a uv_prepare): under load one
 * write(2), and one wake-up of the agent, carries many requests.
 *
 * Busy polling (sb_child_options.busy_poll_us, off by default): while a
 * request we wrote is unanswered and the loop has nothing else to do, a
 * uv_prepare polls the loop's epoll descriptor (poll(2), timeout 0) for up
 * to that long after the request went out, and reads the answer itself
 * when the agent's stdout is what became ready, instead of letting the
 * loop sleep in epoll and be woken by the answer. It trades a core's time
 * for the answer's wake-up (about 7 us for 15 us of CPU per call on our
 * 2-vCPU VM, bench/results/hop-2026-12-02.md). It spins only while the
 * loop is otherwise idle (no timer due, nothing pending; any ready
 * descriptor ends it, and a timer is never late by more than the budget)
 * and only for an agent whose recent answers came back within the budget
 * (a smoothed answer time), so a slow or busy agent, or a loaded server,
 * never makes us spin. The prepare is started with the channel and never
 * restarted: libuv runs prepares newest first, so every channel's flush
 * runs before any channel spins.
 *
 * Lifetime: the child runs in its own process group (so wrappers such as
 * `npx` take their children with them) and is reaped by the exit callback,
 * which is where a dead agent is noticed. sb_channel_close closes stdin,
 * sends SIGTERM and, after a short grace, SIGKILL; the struct is freed when
 * the process has been reaped and every handle has closed, which is always
 * after sb_channel_close returns, and no callback reaches the owner after
 * that. The process must ignore SIGPIPE (switchboard's main does), since a
 * write to an agent that died is an ordinary event here.
 *
 * Dying with switchboard (sb_child_options.exec_shim): the above needs us
 * alive. Killed by SIGKILL, or crashing, we close nothing and signal
 * nobody; an agent that does not stop at stdin EOF (or a wrapper whose
 * child does not) would live on, one more with each crash-restart. So on
 * Linux the agent carries PR_SET_PDEATHSIG(SIGKILL): the kernel kills it
 * when we die, however we die. That must be set in the child between fork
 * and exec, and uv_spawn has no hook there; rather than fork and exec
 * ourselves beside libuv's process handling (its SIGCHLD reaping, the
 * spawn-error pipe, the stdio set-up), the agent is spawned through a shim:
 * our own executable (/proc/self/exe) with a reserved first argument, whose
 * main() begins with sb_child_shim_main (child_shim.c). It sets the
 * signal, exits if its parent is no longer the pid we passed (we died
 * before the prctl: the classic race), and execs the command in place, so
 * the process libuv watches is the agent itself. An exec that fails is
 * reported as a failed start naming the command and the cause, through a
 * close-on-exec check pipe (descriptor 3 in the shim) read when the
 * process is reaped. It costs the agent's start one more exec: the shim's
 * start-up (loading our libraries: about 40 ms on a busy 2-vCPU VM), which
 * delays the agent but never blocks the loop. The signal is sent when the
 * *thread* that forked exits: uv_spawn runs on the loop thread, which in
 * switchboard is the main thread and lives as long as the process. It covers the direct child only: when that is a wrapper (`npx`,
 * `sh -c`), the wrapper is killed and its children are not; they see EOF
 * on stdin, since we held the only write end, and an MCP server stops
 * there. Without the shim (other executables linking net/), behaviour is
 * as before: agents must stop at stdin EOF.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/channel_internal.h"
#include "rpc/rpc.h"

#define MOD "agent"

extern char **environ;

enum {
  KILL_GRACE_MS = 1500,   /* SIGTERM -> SIGKILL */
  EXIT_DRAIN_MS = 250,    /* after exit, wait this long for stdout EOF */
  MAX_GARBAGE_LINES = 16, /* non-JSON stdout lines before we give up */
  GARBAGE_LOG_LINES = 3,  /* of which we log the first few */
  STDERR_LINE_MAX = 2048, /* longer stderr lines are logged truncated */
  STDERR_BURST = 20,      /* stderr lines logged per window */
  STDERR_WINDOW_MS = 1000,
  READ_CHUNK = 65536,
  MIN_WRITE_QUEUE = 1 << 20, /* bytes queued for stdin before we give up */
  PIPE_BYTES = 256 * 1024,   /* asked of the stdin and stdout pipes */
};

typedef struct child_channel {
  sb_channel base;
  uv_loop_t *loop;
  uv_process_t proc;
  uv_pipe_t to_child;   /* the agent's stdin */
  uv_pipe_t from_child; /* its stdout */
  uv_pipe_t err_pipe;   /* its stderr */
  uv_timer_t kill_timer;
  uv_timer_t report_timer;
  uv_prepare_t flush; /* writes `gathered` before the loop waits */
  sb_buf gathered;    /* lines sent this loop turn, not yet written */
  /* busy polling; spin_ns == 0: off */
  uv_prepare_t spin;
  uv_idle_t kick; /* after the spin read: the loop must not sleep */
  uint64_t spin_ns;        /* how long after a request we may spin */
  unsigned awaiting;       /* requests written and not answered yet */
  uint64_t awaiting_since; /* uv_hrtime() of the oldest of them, roughly */
  uint64_t answer_ns;      /* smoothed time an answer takes */
  int handles_open;
  int pid;
  size_t max_bytes;
  size_t max_queued;

  sb_buf out_line;    /* stdout framing */
  size_t out_scanned; /* bytes of out_line already searched for '\n' */
  int out_eof;
  unsigned garbage_lines;

  sb_buf err_line;    /* stderr framing */
  int err_truncating; /* skipping the tail of an over-long stderr line */
  uint64_t log_window_start;
  unsigned log_in_window;
  unsigned log_dropped;

  int exited;
  int check_fd;  /* the exec shim's check pipe (read end), or -1 */
  char *command; /* as configured, for "cannot start" (owned) */
  char exit_detail[64];
  char *fail_detail; /* why we gave up on the agent (owned), or NULL */
  int fail_weak;     /* fail_detail yields to the exit status if known */
  int killing;       /* SIGTERM sent */
  int tearing_down;  /* handles are being closed */
} child_channel;

typedef struct child_write {
  uv_write_t req;
  char *data;
} child_write;

static void teardown(child_channel *c);

/* ---- lifetime ---------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  child_channel *c = h->data;
  if (--c->handles_open > 0) return;
  sb_buf_free(&c->out_line);
  sb_buf_free(&c->err_line);
  sb_buf_free(&c->gathered);
  sb_free(c->fail_detail);
  sb_free(c->command);
  sb_channel_base_free(&c->base);
  sb_free(c);
}

static void close_handle(child_channel *c, uv_handle_t *h) {
  if (h->data == c && !uv_is_closing(h)) uv_close(h, on_handle_closed);
}

/* Close every handle; the struct goes with the last close callback. Only
 * called once the process has been reaped (or never started). */
static void teardown(child_channel *c) {
  if (c->tearing_down) return;
  c->tearing_down = 1;
  if (c->check_fd >= 0) close(c->check_fd);
  c->check_fd = -1;
  close_handle(c, (uv_handle_t *)&c->proc);
  close_handle(c, (uv_handle_t *)&c->to_child);
  close_handle(c, (uv_handle_t *)&c->from_child);
  close_handle(c, (uv_handle_t *)&c->err_pipe);
  close_handle(c, (uv_handle_t *)&c->kill_timer);
  close_handle(c, (uv_handle_t *)&c->report_timer);
  close_handle(c, (uv_handle_t *)&c->flush);
  close_handle(c, (uv_handle_t *)&c->spin);
  close_handle(c, (uv_handle_t *)&c->kick);
}

static void signal_child(child_channel *c, int signum) {
  if (c->exited || c->pid <= 0) return;
  /* The whole group first (wrappers and their children), then the child
   * itself in case it left the group. */
  if (kill(-c->pid, signum) != 0) uv_process_kill(&c->proc, signum);
}

static void on_kill_timer(uv_timer_t *t) {
  child_channel *c = t->data;
  if (c->exited) return;
  SB_WARN(MOD, "agent %s (pid %d) ignored SIGTERM; sending SIGKILL",
          c->base.name, c->pid);
  signal_child(c, SIGKILL);
}

static void start_kill(child_channel *c) {
  if (c->killing || c->exited) return;
  c->killing = 1;
  signal_child(c, SIGTERM);
  uv_timer_start(&c->kill_timer, on_kill_timer, KILL_GRACE_MS, 0);
}

/* ---- reporting the channel down ----------------------------------------- */

static void report_now(child_channel *c) {
  uv_timer_stop(&c->report_timer);
  const char *detail = c->fail_detail;
  if (!detail || (c->fail_weak && c->exited)) detail = c->exit_detail;
  sb_channel_report_closed(&c->base, detail);
}

static void on_report_timer(uv_timer_t *t) { report_now(t->data); }

/* Give up on the agent: stop reading it, kill it, and tell the owner on
 * the next loop turn (never from inside sb_channel_send). A weak reason
 * (a failed write) gives way to the exit status when the agent turns out
 * to have died, which is the more useful thing to read in a log. */
static void fail(child_channel *c, int weak, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(child_channel *c, int weak, const char *fmt, ...) {
  if (c->fail_detail || !sb_channel_live(&c->base)) return;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->fail_detail = sb_strdup(msg);
  c->fail_weak = weak;
  if (!weak) SB_WARN(MOD, "agent %s: %s; disconnecting", c->base.name, msg);
  uv_read_stop((uv_stream_t *)&c->from_child);
  start_kill(c);
  /* A weak reason waits a moment for the exit status to replace it. */
  uv_timer_start(&c->report_timer, on_report_timer, weak ? EXIT_DRAIN_MS : 0,
                 0);
}

/* After the exit: the errno the exec shim could not exec the command
 * with, or 0 (it did, or there is no shim). The process is gone, so the
 * check pipe holds all it will ever hold. */
static int exec_check(child_channel *c) {
  if (c->check_fd < 0) return 0;
  int e = 0;
  ssize_t n;
  do
    n = read(c->check_fd, &e, sizeof e);
  while (n < 0 && errno == EINTR);
  close(c->check_fd);
  c->check_fd = -1;
  return n == (ssize_t)sizeof e && e > 0 ? e : 0;
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal) {
  child_channel *c = p->data;
  c->exited = 1;
  int exec_errno = exec_check(c);
  uv_timer_stop(&c->kill_timer);
  if (term_signal)
    snprintf(c->exit_detail, sizeof c->exit_detail, "killed by signal %d",
             term_signal);
  else
    snprintf(c->exit_detail, sizeof c->exit_detail, "exited with status %lld",
             (long long)status);
  if (c->base.closed) {
    teardown(c);
    return;
  }
  char *cannot = exec_errno && (!c->fail_detail || c->fail_weak)
                     ? sb_asprintf("cannot start %s: %s", c->command,
                                   uv_strerror(-exec_errno))
                     : NULL;
  if (cannot) {
    /* The shim's 127 is no news; why the command did not start is, and
     * it never ran, so there is nothing of its to deliver first. It also
     * outweighs a weak reason (the first request's write found the pipe
     * already closed). */
    sb_free(c->fail_detail);
    c->fail_detail = cannot;
    c->fail_weak = 0;
    report_now(c);
    return;
  }
  SB_INFO(MOD, "agent %s (pid %d) %s", c->base.name, c->pid, c->exit_detail);
  if (c->fail_detail) {
    /* We gave up on it first. A strong reason is already on its way; a
     * weak one is replaced by the exit status right now. */
    if (c->fail_weak) report_now(c);
    return;
  }
  /* Deliver what the agent wrote before it died: wait briefly for stdout
   * EOF (a grandchild may hold the pipe open, hence the bound). */
  if (c->out_eof)
    report_now(c);
  else
    uv_timer_start(&c->report_timer, on_report_timer, EXIT_DRAIN_MS, 0);
}

/* ---- stdout: messages ---------------------------------------------------- */

/* An answer came: fold its time into the smoothed answer time (weight
 * 1/8; a sample counts at most 8 budgets, so one slow answer cannot keep
 * the spinning off for long). */
static void note_answer(child_channel *c) {
  uint64_t now = uv_hrtime();
  uint64_t sample = now - c->awaiting_since;
  if (sample > 8 * c->spin_ns) sample = 8 * c->spin_ns;
  c->answer_ns = c->answer_ns - c->answer_ns / 8 + sample / 8;
  if (--c->awaiting) c->awaiting_since = now;
}

static void process_line(child_channel *c, const char *data, size_t len) {
  while (len && (data[len - 1] == '\r' || data[len - 1] == ' ' ||
                 data[len - 1] == '\t'))
    len--;
  if (len == 0) return;
  sb_rpc_limits limits = {.max_bytes = c->max_bytes};
  json_t *msg = NULL;
  sb_error err = {0};
  if (sb_rpc_parse(data, len, &limits, &msg, &err) != 0) {
    c->garbage_lines++;
    if (c->garbage_lines <= GARBAGE_LOG_LINES)
      SB_WARN(MOD,
              "agent %s: ignoring a stdout line that is not JSON-RPC "
              "(%zu bytes): %s",
              c->base.name, len, err.msg);
    if (c->garbage_lines >= MAX_GARBAGE_LINES)
      fail(c, 0, "wrote %u lines on stdout that are not JSON-RPC",
           c->garbage_lines);
    return;
  }
  if (c->awaiting && !json_object_get(msg, "method")) note_answer(c);
  sb_channel_deliver(&c->base, msg);
  json_decref(msg);
}

static void out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  child_channel *c = h->data;
  if (sb_buf_reserve(&c->out_line, READ_CHUNK) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(c->out_line.data + c->out_line.len,
                     (unsigned)(c->out_line.cap - c->out_line.len - 1));
}

static void on_stdout_eof(child_channel *c) {
  c->out_eof = 1;
  uv_read_stop((uv_stream_t *)&c->from_child);
  /* A last line without its newline is still a message. */
  if (c->out_line.len && !c->fail_detail) {
    sb_buf line = c->out_line;
    c->out_line = (sb_buf)SB_BUF_INIT;
    process_line(c, line.data, line.len);
    sb_buf_free(&line);
  }
  if (c->exited && !c->fail_detail && sb_channel_live(&c->base)) report_now(c);
}

static void out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  child_channel *c = s->data;
  if (nread == UV_EOF) {
    on_stdout_eof(c);
    return;
  }
  if (nread == UV_ENOBUFS) {
    fail(c, 0, "out of memory reading its stdout");
    return;
  }
  if (nread < 0) {
    SB_WARN(MOD, "agent %s: reading stdout: %s", c->base.name,
            uv_strerror((int)nread));
    on_stdout_eof(c);
    return;
  }
  if (nread == 0) return;
  c->out_line.len += (size_t)nread;
  c->out_line.data[c->out_line.len] = '\0';
  size_t start = 0;
  for (;;) {
    char *nl = memchr(c->out_line.data + c->out_scanned, '\n',
                      c->out_line.len - c->out_scanned);
    if (!nl) break;
    size_t end = (size_t)(nl - c->out_line.data);
    process_line(c, c->out_line.data + start, end - start);
    /* The owner may have closed the channel, or we gave up on the agent:
     * either way the rest of the buffer is nobody's business. */
    if (!sb_channel_live(&c->base) || c->fail_detail) {
      sb_buf_reset(&c->out_line);
      c->out_scanned = 0;
      return;
    }
    start = end + 1;
    c->out_scanned = start;
  }
  sb_buf_consume(&c->out_line, start);
  c->out_scanned = c->out_line.len;
  if (c->out_line.len > c->max_bytes) {
    sb_buf_reset(&c->out_line);
    c->out_scanned = 0;
    fail(c, 0, "wrote a line longer than the limit of %zu bytes", c->max_bytes);
  }
}

/* ---- busy polling ------------------------------------------------------ */

/* True when any descriptor of the loop (the agent's stdout among them) is
 * ready, or the check fails. One poll(2) of the loop's backend (epoll)
 * descriptor: cheaper than a read of ours and a check of the others. */
static int loop_has_events(uv_loop_t *loop) {
  struct pollfd pfd = {.fd = uv_backend_fd(loop), .events = POLLIN};
  return pfd.fd < 0 || poll(&pfd, 1, 0) != 0;
}

/* Read what the agent wrote as libuv would have; 1 if anything was read
 * (EOF and errors are left to libuv, which sees them next). */
static int read_now(child_channel *c, uv_os_fd_t fd) {
  uv_buf_t buf;
  out_alloc((uv_handle_t *)&c->from_child, READ_CHUNK, &buf);
  if (!buf.base) return 0;
  ssize_t n = read(fd, buf.base, buf.len);
  if (n <= 0) return 0;
  out_read((uv_stream_t *)&c->from_child, n, &buf);
  return 1;
}

static void on_kick(uv_idle_t *h) { uv_idle_stop(h); }

static void on_spin(uv_prepare_t *p) {
  child_channel *c = p->data;
  if (!c->awaiting || c->answer_ns > c->spin_ns || c->out_eof ||
      c->fail_detail || !sb_channel_live(&c->base))
    return;
  uint64_t now = uv_hrtime();
  uint64_t until = c->awaiting_since + c->spin_ns;
  if (now >= until) return;
  int timeout_ms = uv_backend_timeout(c->loop);
  if (timeout_ms == 0) return; /* something is due: not idle */
  if (timeout_ms > 0 && now + (uint64_t)timeout_ms * 1000000u < until)
    until = now + (uint64_t)timeout_ms * 1000000u;
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->from_child, &fd) != 0) return;
  /* Wait for any descriptor to be ready: when it is the agent's answer,
   * read it here (the loop's poll would find nothing more to sleep on);
   * when it is anything else, let the loop serve it now. */
  while (!loop_has_events(c->loop))
    if (uv_hrtime() >= until) return;
  /* What the answer's delivery made due (a response to write, a caller's
   * check) must run now: the loop computes how long it may sleep after
   * the prepare callbacks, and an active idle handle makes that zero. */
  if (read_now(c, fd)) uv_idle_start(&c->kick, on_kick);
}

/* ---- stderr: the agent's log -------------------------------------------- */

static void log_stderr_line(child_channel *c, const char *data, size_t len,
                            int truncated) {
  while (len && (data[len - 1] == '\r' || data[len - 1] == '\n'))
    len--;
  uint64_t now = sb_now_ms();
  if (now - c->log_window_start >= STDERR_WINDOW_MS) {
    if (c->log_dropped)
      SB_WARN(MOD, "agent %s: %u stderr lines not logged (rate limit)",
              c->base.name, c->log_dropped);
    c->log_window_start = now;
    c->log_in_window = 0;
    c->log_dropped = 0;
  }
  if (c->log_in_window >= STDERR_BURST) {
    c->log_dropped++;
    return;
  }
  c->log_in_window++;
  SB_INFO(MOD, "agent %s: %.*s%s", c->base.name, (int)len, data,
          truncated ? " [truncated]" : "");
}

static void err_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  child_channel *c = h->data;
  if (sb_buf_reserve(&c->err_line, 4096) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(c->err_line.data + c->err_line.len,
                     (unsigned)(c->err_line.cap - c->err_line.len - 1));
}

static void err_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  child_channel *c = s->data;
  if (nread < 0) {
    uv_read_stop(s);
    if (c->err_line.len && !c->err_truncating)
      log_stderr_line(c, c->err_line.data, c->err_line.len, 0);
    if (c->log_dropped)
      SB_WARN(MOD, "agent %s: %u stderr lines not logged (rate limit)",
              c->base.name, c->log_dropped);
    c->log_dropped = 0;
    sb_buf_free(&c->err_line);
    return;
  }
  c->err_line.len += (size_t)nread;
  if (c->err_line.data) c->err_line.data[c->err_line.len] = '\0';
  size_t start = 0;
  char *nl;
  while (start < c->err_line.len &&
         (nl = memchr(c->err_line.data + start, '\n',
                      c->err_line.len - start)) != NULL) {
    size_t end = (size_t)(nl - c->err_line.data);
    if (c->err_truncating)
      c->err_truncating = 0;
    else
      log_stderr_line(c, c->err_line.data + start, end - start, 0);
    start = end + 1;
  }
  sb_buf_consume(&c->err_line, start);
  if (c->err_line.len > STDERR_LINE_MAX) {
    if (!c->err_truncating)
      log_stderr_line(c, c->err_line.data, STDERR_LINE_MAX, 1);
    c->err_truncating = 1;
    sb_buf_reset(&c->err_line);
  }
}

/* ---- stdin: sending ------------------------------------------------------ */

static void on_written(uv_write_t *req, int status) {
  child_write *w = (child_write *)req;
  child_channel *c = req->handle->data;
  sb_free(w->data);
  sb_free(w);
  if (status < 0 && status != UV_ECANCELED)
    fail(c, 1, "writing to its stdin failed: %s", uv_strerror(status));
}

/* Above this a drained gathering buffer is given back rather than kept. */
#define GATHER_KEEP_MAX (256u * 1024u)

/* Write what this loop turn gathered: straight into the pipe when it has
 * room (the usual case, no copy), the rest through libuv's queue. */
static void on_flush(uv_prepare_t *p) {
  child_channel *c = p->data;
  uv_prepare_stop(p);
  sb_buf *g = &c->gathered;
  if (!g->len) return;
  if (c->fail_detail || c->exited || c->base.closed) {
    sb_buf_reset(g);
    return;
  }
  uv_stream_t *in = (uv_stream_t *)&c->to_child;
  uv_buf_t buf = uv_buf_init(g->data, (unsigned)g->len);
  int n = uv_try_write(in, &buf, 1);
  if (n < 0 && n != UV_EAGAIN) {
    sb_buf_reset(g);
    fail(c, 1, "writing to its stdin failed: %s", uv_strerror(n));
    return;
  }
  size_t done = n > 0 ? (size_t)n : 0;
  if (done < g->len) {
    child_write *w = sb_malloc(sizeof *w);
    char *rest = w ? sb_malloc(g->len - done) : NULL;
    if (!rest) {
      sb_free(w);
      sb_buf_reset(g);
      fail(c, 0, "out of memory writing to its stdin");
      return;
    }
    memcpy(rest, g->data + done, g->len - done);
    w->data = rest;
    buf = uv_buf_init(rest, (unsigned)(g->len - done));
    int rc = uv_write(&w->req, in, &buf, 1, on_written);
    if (rc < 0) {
      sb_free(rest);
      sb_free(w);
      sb_buf_reset(g);
      fail(c, 1, "writing to its stdin failed: %s", uv_strerror(rc));
      return;
    }
  }
  if (g->cap > GATHER_KEEP_MAX)
    sb_buf_free(g);
  else
    sb_buf_reset(g);
}

static int child_send(sb_channel *ch, json_t *msg, const json_t *headers,
                      sb_error *err) {
  (void)headers; /* a pipe has none */
  child_channel *c = (child_channel *)ch;
  if (c->fail_detail || c->exited)
    return sb_error_set(err, SB_ESTATE, "agent %s is not running", ch->name);
  /* Most messages fit the stack: dumped there, written from there, and
   * only what the pipe does not take copied on. A longer one is dumped
   * again, into an allocation of its length. */
  char stack[4096], *heap;
  size_t len;
  char *text =
      sb_json_dump_to(msg, JSON_COMPACT, stack, sizeof stack, 0, &len, &heap);
  if (!text) return sb_error_set(err, SB_ENOMEM, "out of memory");
  size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->to_child) +
                  c->gathered.len;
  if (queued + len + 1 > c->max_queued) {
    sb_free(heap);
    fail(c, 0, "stopped reading its stdin (%zu bytes waiting)", queued);
    return sb_error_set(err, SB_EIO,
                        "agent %s stopped reading its stdin (%zu bytes "
                        "waiting); disconnecting",
                        ch->name, queued);
  }
  if (c->spin_ns && json_object_get(msg, "method") &&
      json_object_get(msg, "id")) {
    /* Requests unanswered long past the budget (lost, or slow) are
     * forgotten, so they cannot keep the window shut for the new one. */
    uint64_t now = uv_hrtime();
    if (c->awaiting && now - c->awaiting_since > 8 * c->spin_ns)
      c->awaiting = 0;
    if (c->awaiting++ == 0) c->awaiting_since = now;
  }
  size_t done = 0; /* bytes of text + "\n" already in the pipe */
  if (!uv_is_active((uv_handle_t *)&c->flush)) {
    /* The turn's first message: straight to the agent (uv_try_write
     * refuses while libuv still queues earlier bytes, keeping the order). */
    uv_buf_t bufs[2] = {uv_buf_init(text, (unsigned)len), uv_buf_init("\n", 1)};
    int n = uv_try_write((uv_stream_t *)&c->to_child, bufs, 2);
    if (n < 0 && n != UV_EAGAIN) {
      sb_free(heap);
      fail(c, 1, "writing to its stdin failed: %s", uv_strerror(n));
      return sb_error_set(err, SB_EIO, "agent %s: write: %s", ch->name,
                          uv_strerror(n));
    }
    if (n > 0) done = (size_t)n;
    uv_prepare_start(&c->flush, on_flush); /* gathers the turn's others */
  }
  int rc = 0;
  if (done < len + 1 &&
      (rc = sb_buf_reserve(&c->gathered, len + 1 - done)) == 0) {
    if (done < len) {
      memcpy(c->gathered.data + c->gathered.len, text + done, len - done);
      c->gathered.len += len - done;
    }
    c->gathered.data[c->gathered.len++] = '\n';
  }
  sb_free(heap);
  if (rc != 0) return sb_error_set(err, SB_ENOMEM, "out of memory");
  return 0;
}

static void child_close(sb_channel *ch) {
  child_channel *c = (child_channel *)ch;
  uv_read_stop((uv_stream_t *)&c->from_child);
  uv_timer_stop(&c->report_timer);
  /* EOF on stdin is the polite request to stop; SIGTERM the firm one. */
  close_handle(c, (uv_handle_t *)&c->to_child);
  if (c->exited || c->pid <= 0) {
    teardown(c);
    return;
  }
  start_kill(c);
}

static int child_ended(const sb_channel *ch) {
  const child_channel *c = (const child_channel *)ch;
  return c->fail_detail != NULL || c->exited;
}

static int child_pid(const sb_channel *ch) {
  return ((const child_channel *)ch)->pid;
}

static const sb_channel_ops child_ops = {
    .send = child_send,
    .close = child_close,
    .pid = child_pid,
    .ended = child_ended,
};

/* ---- spawning ------------------------------------------------------------ */

/* Close those of a pipe's ends still open (-1: not open). */
static void close_pair(uv_file fds[2]) {
  for (int i = 0; i < 2; i++) {
    if (fds[i] >= 0) close(fds[i]);
    fds[i] = -1;
  }
}

static void close_fds(uv_file in_fds[2], uv_file out_fds[2]) {
  close_pair(in_fds);
  close_pair(out_fds);
}

/* Our environment plus opts->env, where the agent's settings replace ours
 * of the same name. The array is ours, the strings are borrowed. */
static char **merged_env(const char *const *extra) {
  size_t n_ours = 0, n_extra = 0;
  while (environ && environ[n_ours])
    n_ours++;
  while (extra && extra[n_extra])
    n_extra++;
  char **env = sb_calloc(n_ours + n_extra + 1, sizeof *env);
  if (!env) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n_extra; i++)
    env[k++] = (char *)extra[i];
  for (size_t i = 0; i < n_ours; i++) {
    /* Drop our own setting of a name the agent's env overrides. */
    const char *eq = strchr(environ[i], '=');
    size_t name_len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    int overridden = 0;
    for (size_t j = 0; j < n_extra && !overridden; j++)
      overridden = strncmp(extra[j], environ[i], name_len) == 0 &&
                   extra[j][name_len] == '=';
    if (!overridden) env[k++] = environ[i];
  }
  return env;
}

sb_channel *sb_channel_spawn(uv_loop_t *loop, const sb_child_options *opts,
                             const sb_channel_events *ev, sb_error *err) {
  if (!loop || !opts || !opts->command || !*opts->command) {
    sb_error_set(err, SB_EINVAL, "an agent needs a command");
    return NULL;
  }
  child_channel *c = sb_calloc(1, sizeof *c);
  if (!c) goto nomem;
  if (sb_channel_base_init(&c->base, &child_ops, ev,
                           opts->name ? opts->name : opts->command) != 0) {
    sb_free(c);
    goto nomem;
  }
  c->loop = loop;
  c->check_fd = -1;
  c->max_bytes = opts->max_message_bytes ? opts->max_message_bytes
                                         : SB_RPC_DEFAULT_MAX_BYTES;
  c->max_queued = 4 * c->max_bytes;
  if (c->max_queued < MIN_WRITE_QUEUE) c->max_queued = MIN_WRITE_QUEUE;

  /* From here on every handle is initialised, so failure paths can simply
   * tear down and let the close callbacks free the struct. */
  uv_pipe_init(loop, &c->to_child, 0);
  uv_pipe_init(loop, &c->from_child, 0);
  uv_pipe_init(loop, &c->err_pipe, 0);
  uv_timer_init(loop, &c->kill_timer);
  uv_timer_init(loop, &c->report_timer);
  uv_prepare_init(loop, &c->flush);
  uv_prepare_init(loop, &c->spin);
  uv_idle_init(loop, &c->kick);
  uv_unref((uv_handle_t *)&c->kick); /* never keeps the loop alive */
  c->to_child.data = c->from_child.data = c->err_pipe.data = c;
  c->kill_timer.data = c->report_timer.data = c->flush.data = c;
  c->spin.data = c->kick.data = c;
  c->handles_open = 8;
  c->spin_ns = (uint64_t)opts->busy_poll_us * 1000u;

  size_t nargs = 0;
  while (opts->args && opts->args[nargs])
    nargs++;
  /* Through the shim: <shim> SB_CHILD_SHIM_ARG <our pid> <command> ... */
  const char *shim = opts->exec_shim;
  size_t lead = shim ? 3 : 0;
  char parent[24];
  snprintf(parent, sizeof parent, "%d", (int)getpid());
  char **argv = sb_calloc(lead + nargs + 2, sizeof *argv);
  char **env = merged_env(opts->env);
  c->command = sb_strdup(opts->command);
  if (!argv || !env || !c->command) {
    sb_free(argv);
    sb_free(env);
    c->base.closed = 1;
    teardown(c);
    goto nomem;
  }
  if (shim) {
    argv[0] = (char *)shim;
    argv[1] = SB_CHILD_SHIM_ARG;
    argv[2] = parent;
  }
  argv[lead] = (char *)opts->command;
  for (size_t i = 0; i < nargs; i++)
    argv[lead + i + 1] = (char *)opts->args[i];

  /* The agent's ends block (as stdio does anywhere), ours do not; both
   * are close-on-exec, the child's copies on 0 and 1 are not. */
  uv_file in_fds[2] = {-1, -1}, out_fds[2] = {-1, -1};
  uv_file check_fds[2] = {-1, -1}; /* the shim's check pipe */
  int prc = uv_pipe(in_fds, 0, UV_NONBLOCK_PIPE);
  if (prc == 0) prc = uv_pipe(out_fds, UV_NONBLOCK_PIPE, 0);
  if (prc == 0 && shim) prc = uv_pipe(check_fds, UV_NONBLOCK_PIPE, 0);
  if (prc != 0) {
    close_fds(in_fds, out_fds);
    close_pair(check_fds);
    sb_free(argv);
    sb_free(env);
    sb_error_set(err, SB_EIO, "agent %s: cannot make its pipes: %s",
                 c->base.name, uv_strerror(prc));
    c->base.closed = 1;
    teardown(c);
    return NULL;
  }
  /* Room for a burst of requests (or answers) as large as a socketpair's
   * buffers gave, so that a busy turn's gathered lines still go out in one
   * write: 64 KiB by default, more where the system lets us. */
  fcntl(in_fds[1], F_SETPIPE_SZ, PIPE_BYTES);
  fcntl(out_fds[0], F_SETPIPE_SZ, PIPE_BYTES);
  uv_stdio_container_t stdio[4] = {
      {.flags = UV_INHERIT_FD, .data.fd = in_fds[0]},
      {.flags = UV_INHERIT_FD, .data.fd = out_fds[1]},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
       .data.stream = (uv_stream_t *)&c->err_pipe},
      {.flags = UV_INHERIT_FD, .data.fd = check_fds[1]}, /* shim only */
  };
  uv_process_options_t po = {
      .exit_cb = on_exit_cb,
      .file = shim ? shim : opts->command,
      .args = argv,
      .env = env,
      .cwd = opts->cwd,
      .flags = UV_PROCESS_DETACHED, /* own process group, see kill */
      .stdio_count = shim ? 4 : 3,
      .stdio = stdio,
  };
  int rc = uv_spawn(loop, &c->proc, &po);
  c->proc.data = c;
  sb_free(argv);
  sb_free(env);
  c->handles_open++; /* the process handle must be closed even on failure */
  /* The child's ends are the child's now (or nobody's). */
  close(in_fds[0]);
  close(out_fds[1]);
  in_fds[0] = out_fds[1] = -1;
  if (shim) {
    close(check_fds[1]);
    c->check_fd = check_fds[0];
  }
  if (rc == 0 && (rc = uv_pipe_open(&c->to_child, in_fds[1])) == 0) {
    in_fds[1] = -1;
    if ((rc = uv_pipe_open(&c->from_child, out_fds[0])) == 0) out_fds[0] = -1;
  }
  close_fds(in_fds, out_fds);
  if (rc < 0 && c->proc.pid > 0 && !c->exited) {
    /* spawned, but we cannot talk to it */
    sb_error_set(err, SB_EIO, "agent %s: cannot open its pipes: %s",
                 c->base.name, uv_strerror(rc));
    c->pid = c->proc.pid;
    c->base.closed = 1;
    signal_child(c, SIGKILL); /* the exit callback tears down */
    return NULL;
  }
  if (rc < 0 && shim) {
    sb_error_set(err, SB_EIO,
                 "agent %s: cannot start %s: its exec shim %s: %s",
                 c->base.name, opts->command, shim, uv_strerror(rc));
    c->base.closed = 1;
    teardown(c);
    return NULL;
  }
  if (rc < 0) {
    sb_error_set(err, SB_EIO, "agent %s: cannot start %s: %s", c->base.name,
                 opts->command, uv_strerror(rc));
    c->base.closed = 1;
    teardown(c);
    return NULL;
  }
  c->pid = c->proc.pid;
  c->log_window_start = sb_now_ms();
  uv_read_start((uv_stream_t *)&c->from_child, out_alloc, out_read);
  uv_read_start((uv_stream_t *)&c->err_pipe, err_alloc, err_read);
  if (c->spin_ns) {
    uv_prepare_start(&c->spin, on_spin);
    uv_unref((uv_handle_t *)&c->spin); /* never keeps the loop alive */
  }
  SB_DEBUG(MOD, "agent %s started (pid %d)", c->base.name, c->pid);
  return &c->base;

nomem:
  sb_error_set(err, SB_ENOMEM, "out of memory");
  return NULL;
}
