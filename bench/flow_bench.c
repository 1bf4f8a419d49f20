/* flow_bench: what a workflow step costs beyond the agent call it makes.
 *
 * In process, on one loop: the store (SQLite, WAL, synchronous=FULL, group
 * commit), the context manager, the event bus, the gateway with one agent
 * (bench/echo_agent, C, stdio) and the workflow engine, running a
 * three-step workflow (echo, echo, echo). Measured in the same run:
 *
 *   raw call     the gateway's tools/call to the agent, one at a time (the
 *                baseline each step contains), and 64 at once (calls/s)
 *   1 run        runs one after the other: run latency (start to
 *                run.completed), and per step the overhead = (time from
 *                the run's creation being durable to run.completed - 3 x
 *                the raw call's p50) / 3: the transition each step writes
 *                (context version + run row + events, durable) and the
 *                engine's own work, beyond the agent call
 *   64 runs      64 runs at a time, each replaced when it completes:
 *                steps per second
 *
 *   flow_bench --agent PATH [--dir DIR] [--seconds S] [--runs N]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "config/config.h"
#include "core/core.h"
#include "ctx/ctx.h"
#include "events/events.h"
#include "flow/flow.h"
#include "gateway/gateway.h"
#include "store/store.h"

#define TENANT "bench"
#define MAX_SLOTS 256

static uv_loop_t loop;
static sb_gateway *gw;
static sb_flow_engine *eng;
static sb_events *bus;

static void die(const char *what, const sb_error *err) {
  fprintf(stderr, "flow_bench: FAIL: %s%s%s\n", what, err ? ": " : "",
          err ? err->msg : "");
  exit(1);
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct samples {
  double *v;
  size_t n, cap;
} samples;

static void add(samples *s, double x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 4096;
    if (!(s->v = realloc(s->v, s->cap * sizeof *s->v)))
      die("out of memory", NULL);
  }
  s->v[s->n++] = x;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(samples *s, double p) {
  if (!s->n) return 0;
  qsort(s->v, s->n, sizeof *s->v, cmp);
  size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
  return s->v[i];
}

/* Run the loop until *flag or the deadline (seconds from now). */
static void run_until(int *flag, double seconds) {
  double end = now_s() + seconds;
  while (!*flag && now_s() < end)
    uv_run(&loop, UV_RUN_ONCE);
}

/* ---- raw calls ----------------------------------------------------------- */

typedef struct caller {
  double started;
  int busy;
} caller;

static samples raw_lat;
static double phase_end;
static long raw_done;
static int raw_stop;
static int raw_active;

static void raw_next(caller *c);

static void raw_back(void *ud, const sb_gateway_result *r) {
  caller *c = ud;
  if (r->outcome != SB_GATEWAY_ANSWERED || !r->result)
    die("the raw call failed",
        &(sb_error){.code = SB_EIO, .msg = "not answered"});
  add(&raw_lat, now_s() - c->started);
  raw_done++;
  c->busy = 0;
  raw_next(c);
}

static void raw_next(caller *c) {
  if (now_s() >= phase_end) {
    raw_active--;
    if (!raw_active) raw_stop = 1;
    return;
  }
  json_t *params = json_pack("{s{ss}}", "arguments", "text", "hi");
  sb_gateway_call_options o = {.agent = "echo",
                               .method = "tools/call",
                               .name = "echo",
                               .params = params,
                               .tenant = TENANT,
                               .on_done = raw_back,
                               .ud = c};
  sb_error err = {0};
  sb_gateway_call *call = NULL;
  c->started = now_s();
  c->busy = 1;
  if (sb_gateway_call_start(gw, &o, &call, &err) != 0) die("raw call", &err);
  json_decref(params);
}

static double raw_phase(int n, double seconds) {
  static caller cs[MAX_SLOTS];
  raw_done = 0;
  raw_stop = 0;
  raw_active = n;
  raw_lat.n = 0;
  double t0 = now_s();
  phase_end = t0 + seconds;
  for (int i = 0; i < n; i++)
    raw_next(&cs[i]);
  run_until(&raw_stop, seconds + 30);
  return (double)raw_done / (now_s() - t0);
}

/* ---- runs ---------------------------------------------------------------- */

typedef struct slot {
  char id[40];
  double started; /* sb_flow_run_start called */
  double created; /* its first transition durable */
  int live;
} slot;

static slot slots[MAX_SLOTS];
static int nslots;
static samples run_lat, steps_lat;
static long runs_done, runs_failed;
static int runs_stop, runs_active;

static void run_next(slot *s);

static void started(void *ud, const sb_flow_reply *r) {
  slot *s = ud;
  if (r->rc != 0) die("start a run", &r->err);
  snprintf(s->id, sizeof s->id, "%s",
           json_string_value(json_object_get(r->run, "id")));
  s->created = now_s();
}

static void on_end(void *ud, const sb_event *e) {
  (void)ud;
  for (int i = 0; i < nslots; i++) {
    slot *s = &slots[i];
    if (!s->live || strcmp(s->id, e->run_id) != 0) continue;
    if (strcmp(e->type, "run.completed") == 0) {
      add(&run_lat, now_s() - s->started);
      add(&steps_lat, now_s() - s->created);
      runs_done++;
    } else {
      runs_failed++;
    }
    s->live = 0;
    run_next(s);
    return;
  }
}

static void run_next(slot *s) {
  if (now_s() >= phase_end) {
    if (--runs_active == 0) runs_stop = 1;
    return;
  }
  sb_flow_start st = {.tenant = TENANT, .workflow = "three"};
  sb_error err = {0};
  s->id[0] = '\0';
  s->started = now_s();
  s->live = 1;
  if (sb_flow_run_start(eng, &st, started, s, &err) != 0) die("start", &err);
}

static double runs_phase(int n, double seconds) {
  runs_done = runs_failed = 0;
  runs_stop = 0;
  runs_active = nslots = n;
  run_lat.n = steps_lat.n = 0;
  double t0 = now_s();
  phase_end = t0 + seconds;
  for (int i = 0; i < n; i++)
    run_next(&slots[i]);
  run_until(&runs_stop, seconds + 60);
  if (runs_failed)
    die("runs failed", &(sb_error){.code = SB_EIO, .msg = "see the log"});
  return (double)runs_done / (now_s() - t0);
}

/* ---- set-up -------------------------------------------------------------- */

static const char *const workflow_yaml =
    "name: three\n"
    "steps:\n"
    "  - id: one\n"
    "    call: { agent: echo, tool: echo, arguments: { text: one } }\n"
    "  - id: two\n"
    "    call: { agent: echo, tool: echo, arguments: { text: "
    "$workflow.outputs.one } }\n"
    "  - id: three\n"
    "    call: { agent: echo, tool: echo, arguments: { text: three } }\n";

static int connected(void) {
  json_t *list = sb_gateway_list_json(gw, NULL);
  int ok = json_is_true(json_object_get(json_array_get(list, 0), "connected"));
  json_decref(list);
  return ok;
}

int main(int argc, char **argv) {
  const char *agent = NULL, *dir = "/tmp";
  double seconds = 3;
  int many = 64, only_runs = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--agent") == 0 && i + 1 < argc)
      agent = argv[++i];
    else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
      dir = argv[++i];
    else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
      seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
      many = atoi(argv[++i]);
    else if (strcmp(argv[i], "--only-runs") == 0)
      only_runs = 1; /* profiling */
    else {
      fprintf(stderr, "usage: flow_bench --agent PATH [--dir DIR] [--seconds "
                      "S] [--runs N]\n");
      return 2;
    }
  }
  if (!agent || many < 1 || many > MAX_SLOTS)
    die("--agent PATH is required; --runs 1..256", NULL);
  sb_core_init();
  sb_log_set_level(SB_LOG_WARNING);
  uv_loop_init(&loop);
  sb_error err = {0};
  char path[512];
  snprintf(path, sizeof path, "%s/flow_bench.db", dir);
  sb_store_options so = {.path = path, .loop = &loop};
  sb_store *st = sb_store_open_sqlite(&so, &err);
  if (!st) die("store", &err);
  sb_ctx_manager_options mo = {.store = st};
  sb_ctx_manager *ctx = sb_ctx_manager_new(&mo);
  sb_events_options eo = {.store = st};
  if (!(bus = sb_events_new(&eo, &err))) die("events", &err);
  sb_gateway_options go = {.loop = &loop,
                           .default_tenant = TENANT,
                           .max_message_bytes = 1 << 20,
                           .ctx = ctx};
  if (!(gw = sb_gateway_new(&go, &err))) die("gateway", &err);
  json_t *def =
      json_pack("{sssssss[s]s{ss}s[]sssisfs{sss[]}s{si}}", "id", "echo", "name",
                "Echo", "type", "general", "capabilities", "echo", "models",
                "primary", "none", "contextRequirements", "outputFormat",
                "text", "maxTokens", 1, "temperature", 0.0, "transport",
                "command", agent, "args", "limits", "maxConcurrent", 1024);
  json_object_set_new(json_object_get(def, "transport"), "type",
                      json_string("stdio"));
  if (sb_gateway_add(gw, def, 0, 0, &err) != 0) die("agent", &err);
  json_decref(def);
  json_t *src = NULL, *lines = NULL;
  if (sb_config_read_yaml(workflow_yaml, strlen(workflow_yaml), "bench", &src,
                          &lines, &err) != 0)
    die("workflow", &err);
  sb_flow_def *wf = NULL;
  if (sb_flow_def_from_json(src, lines, "bench", &wf, &err) != 0)
    die("workflow", &err);
  sb_flow_def *items[] = {wf};
  sb_flow_defs defs = {.items = items, .len = 1};
  sb_flow_engine_options fo = {.store = st,
                               .ctx = ctx,
                               .gateway = gw,
                               .events = bus,
                               .defs = &defs,
                               .max_runs = 100000,
                               .max_runs_per_tenant = 100000};
  if (!(eng = sb_flow_engine_new(&fo, &err))) die("engine", &err);
  double end = now_s() + 15;
  while (!connected() && now_s() < end)
    uv_run(&loop, UV_RUN_ONCE);
  if (!connected()) die("the echo agent did not connect", NULL);
  const char *types[] = {"run.completed", "run.failed"};
  sb_events_filter f = {.types = types, .ntypes = 2};
  if (!sb_events_subscribe(bus, TENANT, 0, &f, on_end, NULL, NULL, &err))
    die("subscribe", &err);

  printf("flow bench: a three-step workflow over a C stdio echo agent; %.0f s "
         "per phase, synchronous=FULL\n\n",
         seconds);
  double raw1 = 0, raw_p50 = 0, raw_p99 = 0, rawn = 1;
  if (!only_runs) {
    raw_phase(1, seconds / 2); /* warm-up */
    raw1 = raw_phase(1, seconds);
    raw_p50 = pct(&raw_lat, 0.5);
    raw_p99 = pct(&raw_lat, 0.99);
    rawn = raw_phase(many, seconds);
  }
  double runs1 = runs_phase(1, seconds);
  samples over = {0};
  for (size_t i = 0; i < steps_lat.n; i++)
    add(&over, (steps_lat.v[i] - 3 * raw_p50) / 3);
  double run_p50 = pct(&run_lat, 0.5), run_p99 = pct(&run_lat, 0.99);
  double ov_p50 = pct(&over, 0.5), ov_p99 = pct(&over, 0.99);
  sb_store_stats s0, s1;
  sb_store_get_stats(st, &s0);
  double c0 = cpu_s();
  double runsn = runs_phase(many, seconds);
  double loop_cpu = cpu_s() - c0;
  sb_store_get_stats(st, &s1);
  long steps_n = runs_done * 3;
  double runn_p50 = pct(&run_lat, 0.5), runn_p99 = pct(&run_lat, 0.99);

  printf("%-28s %12s %10s %10s\n", "", "per second", "p50 ms", "p99 ms");
  printf("%-28s %12.0f %10.3f %10.3f\n", "raw call, 1 at a time", raw1,
         raw_p50 * 1e3, raw_p99 * 1e3);
  printf("%-28s %12.0f %10s %10s\n", "raw call, 64 at a time", rawn, "", "");
  printf("%-28s %12.1f %10.3f %10.3f\n", "1 run at a time (runs)", runs1,
         run_p50 * 1e3, run_p99 * 1e3);
  printf("%-28s %12.1f %10.3f %10.3f\n", "  per-step overhead", runs1 * 3,
         ov_p50 * 1e3, ov_p99 * 1e3);
  char label[64];
  snprintf(label, sizeof label, "%d runs at a time (steps)", many);
  printf("%-28s %12.0f %10.3f %10.3f\n", label, runsn * 3, runn_p50 * 1e3,
         runn_p99 * 1e3);
  printf("\nat %d runs: loop thread CPU %.0f us per step; %.1f writes per "
         "commit; store writer CPU %.0f us per write\n",
         many, steps_n ? loop_cpu * 1e6 / (double)steps_n : 0,
         s1.batches > s0.batches ? (double)(s1.writes - s0.writes) /
                                       (double)(s1.batches - s0.batches)
                                 : 0,
         s1.writes > s0.writes ? (double)(s1.writer_cpu_us - s0.writer_cpu_us) /
                                     (double)(s1.writes - s0.writes)
                               : 0);
  printf("\nratios: per-step overhead p50 / raw call p50 = %.2f; steps/s at "
         "%d runs / raw calls/s at 64 = %.2f\n",
         ov_p50 / raw_p50, many, runsn * 3 / rawn);
  printf("bars: per-step overhead p50 <= 1 ms at 1 run: %s (%.3f ms); >= 2000 "
         "steps/s at %d runs: %s (%.0f)\n",
         ov_p50 <= 0.001 ? "met" : "NOT met", ov_p50 * 1e3, many,
         runsn * 3 >= 2000 ? "met" : "NOT met", runsn * 3);
  sb_flow_engine_free(eng);
  sb_gateway_free(gw);
  sb_events_free(bus);
  sb_ctx_manager_free(ctx);
  sb_store_close(st);
  sb_flow_def_free(wf);
  json_decref(src);
  json_decref(lines);
  uv_run(&loop, UV_RUN_DEFAULT);
  return 0;
}
