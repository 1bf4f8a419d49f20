/* demo_report.c: what `switchboard demo` prints.
 *
 * The trace of a run is printed once the run has ended (or waits for a
 * person), from the events it wrote: for each call, the agent chosen and
 * its score parts, the context version it was handed and the one its
 * answer made, the projection it was handed (read back: the version it
 * was handed, cut by its contextRequirements, exactly what the gateway
 * sent) beside the whole context's size, how long it took, and what it
 * answered. Context versions are read one at a time, in the events' order,
 * so the trace reads top to bottom.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/demo_internal.h"
#include "ctx/ctx.h"
#include "gateway/gateway.h"
#include "mcp/mcp.h"

#define CUT 100 /* characters of JSON shown per line */

const char *demo_thousands(int64_t n, char buf[32]) {
  char raw[32];
  int len = snprintf(raw, sizeof raw, "%lld", (long long)(n < 0 ? -n : n));
  int o = 0;
  if (n < 0) buf[o++] = '-';
  for (int i = 0; i < len; i++) {
    if (i && (len - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = raw[i];
  }
  buf[o] = '\0';
  return buf;
}

char *demo_json_cut(const json_t *v, size_t max) {
  char *text = sb_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!text) return sb_strdup("?");
  size_t n = strlen(text);
  if (n > max) {
    /* cut on a character boundary, not inside a UTF-8 sequence */
    size_t cut = max;
    while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80) cut--;
    memcpy(text + cut, "...", 4);
  }
  return text;
}

/* Print s in a column of `width` characters (UTF-8 aware, cut with
 * "..." when longer). */
static void column(FILE *f, const char *s, size_t width) {
  size_t chars = 0, i = 0;
  for (; s[i]; i++) {
    if (((unsigned char)s[i] & 0xC0) == 0x80) continue;
    if (chars == width - 3 && strlen(s + i) > 3) {
      size_t rest = 0;
      for (size_t k = i; s[k]; k++) rest += ((unsigned char)s[k] & 0xC0) != 0x80;
      if (rest > 3) {
        fprintf(f, "%.*s...", (int)i, s);
        return;
      }
    }
    chars++;
  }
  fputs(s, f);
  for (; chars < width; chars++) fputc(' ', f);
}

static double num(const json_t *o, const char *k) {
  return json_number_value(json_object_get(o, k));
}
static const char *str(const json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

/* One line for what a dealership tool answered: the figures a person
 * reads first; anything else as cut JSON. */
static void answered(FILE *f, const json_t *out) {
  char a[32];
  json_t *v0 = json_array_get(json_object_get(out, "vehicles"), 0);
  json_t *p0 = json_array_get(json_object_get(out, "parts"), 0);
  if (str(out, "intent")) {
    char *ents = demo_json_cut(json_object_get(out, "entities"), 70);
    fprintf(f, "intent %s (%.2f), sentiment %s, language %s, entities %s",
            str(out, "intent"), num(out, "confidence"),
            str(out, "sentiment") ? str(out, "sentiment") : "?",
            str(out, "language") ? str(out, "language") : "?", ents);
    sb_free(ents);
  } else if (json_object_get(out, "vehicles")) {
    fprintf(f, "%lld matches", (long long)num(out, "total_matches"));
    if (v0)
      fprintf(f, "; best: %lld %s %s %s, $%s, score %.0f, at %s",
              (long long)num(v0, "year"), str(v0, "make"), str(v0, "model"),
              str(v0, "trim") ? str(v0, "trim") : "",
              demo_thousands((int64_t)num(v0, "price"), a), num(v0, "score"),
              str(v0, "dealership") ? str(v0, "dealership")
                                    : str(v0, "dealership_id"));
  } else if (json_object_get(out, "monthly_payment")) {
    fprintf(f, "$%.2f a month for %lld months at %.2f%% APR on $%s financed",
            num(out, "monthly_payment"), (long long)num(out, "term_months"),
            num(out, "apr"), demo_thousands((int64_t)num(out, "amount_financed"), a));
  } else if (json_object_get(out, "approved")) {
    fprintf(f, "%s, band %s, up to $%s at %.2f%% APR",
            json_is_true(json_object_get(out, "approved")) ? "approved"
                                                           : "not approved",
            str(out, "credit_band") ? str(out, "credit_band") : "?",
            demo_thousands((int64_t)num(out, "max_amount"), a), num(out, "apr"));
  } else if (str(out, "booking_id")) {
    json_t *slot = json_object_get(out, "slot");
    const char *at = str(out, "starts_at") ? str(out, "starts_at")
                                           : str(slot, "starts_at");
    fprintf(f, "booking %s, %s%s%s", str(out, "booking_id"), at ? at : "",
            str(out, "vehicle") ? ", " : "",
            str(out, "vehicle") ? str(out, "vehicle") : "");
  } else if (json_object_get(out, "recalls")) {
    json_t *r0 = json_array_get(json_object_get(out, "recalls"), 0);
    fprintf(f, "%zu open recall(s)%s%s%s%s",
            json_array_size(json_object_get(out, "recalls")), r0 ? ": " : "",
            r0 ? str(r0, "campaign") : "", r0 ? " " : "",
            r0 ? str(r0, "component") : "");
  } else if (json_object_get(out, "parts")) {
    fprintf(f, "%zu part(s)", json_array_size(json_object_get(out, "parts")));
    if (p0)
      fprintf(f, "; first: %s %s, $%.2f", str(p0, "part_number"),
              str(p0, "name"), num(p0, "price"));
  } else if (str(out, "order_id")) {
    fprintf(f, "order %s, %s, ready by %s, $%.2f", str(out, "order_id"),
            str(out, "status"), str(out, "ready_by"), num(out, "total"));
  } else {
    char *t = demo_json_cut(out, CUT);
    fputs(t, f);
    sb_free(t);
  }
}

/* ---- the trace ---------------------------------------------------------- */

typedef struct trace {
  demo *d;
  void (*done)(demo *d);
  json_t *ev; /* the step.completed being printed (borrowed) */
} trace;

static void trace_next(trace *t);

static const char *started_kind(demo *d, const char *step) {
  size_t i;
  json_t *e;
  const char *kind = NULL;
  json_array_foreach(d->cur.events, i, e) {
    json_t *data = json_object_get(e, "data");
    if (strcmp(str(e, "type"), "step.started") == 0 && str(data, "step") &&
        strcmp(str(data, "step"), step) == 0)
      kind = str(data, "kind");
  }
  return kind;
}

static void add_stats(demo *d, const char *agent, json_t *data) {
  json_t *s = json_object_get(d->agents, agent);
  if (!s) {
    s = json_pack("{sIsIsIsI}", "calls", (json_int_t)0, "ms", (json_int_t)0,
                  "handed", (json_int_t)0, "whole", (json_int_t)0);
    json_object_set_new(d->agents, agent, s);
  }
  json_t *routing = json_object_get(data, "routing");
  const char *keys[] = {"calls", "ms", "handed", "whole"};
  json_int_t add[] = {1, (json_int_t)num(data, "durationMs"),
                      (json_int_t)num(routing, "projectionBytes"),
                      (json_int_t)num(routing, "contextBytes")};
  for (int k = 0; k < 4; k++)
    json_object_set_new(s, keys[k],
                        json_integer(json_integer_value(json_object_get(s, keys[k])) + add[k]));
}

/* Print one call, with the projection cut from the version it was
 * handed (`doc`, NULL if it could not be read). */
static void print_call(demo *d, json_t *data, const json_t *doc) {
  FILE *f = d->out;
  const char *step = str(data, "step"), *agent = str(data, "agent");
  json_t *routing = json_object_get(data, "routing");
  json_t *parts = json_object_get(routing, "parts");
  char a[32], b[32];
  const char *hi = d->color ? "\033[36m" : "", *off = d->color ? "\033[0m" : "";
  fprintf(f, "  %-12s -> %s%s%s", step, hi, agent, off);
  if (routing) {
    fprintf(f, "  rank %lld, score %.2f = coverage %.2f, health %.2f, "
               "capacity %.2f, latency %.2f",
            (long long)num(routing, "rank"), num(routing, "score"),
            num(parts, "coverage"), num(parts, "health"), num(parts, "capacity"),
            num(parts, "latency"));
  }
  fputc('\n', f);
  size_t k;
  json_t *fb;
  json_array_foreach(json_object_get(routing, "fellBackFrom"), k, fb)
      fprintf(f, "  %-12s    fell back from %s: %s\n", "", str(fb, "agent"),
              str(fb, "outcome"));
  int64_t handed = (int64_t)num(routing, "projectionBytes"),
          whole = (int64_t)num(routing, "contextBytes");
  fprintf(f, "  %-12s    context v%lld -> v%lld, handed %s B of %s B (%.0f%%), "
             "%lld ms\n", "", (long long)num(data, "handedVersion"),
          (long long)num(data, "contextVersion"), demo_thousands(handed, a),
          demo_thousands(whole, b), whole ? 100.0 * (double)handed / (double)whole : 0.0,
          (long long)num(data, "durationMs"));
  const sb_agent_def *def = sb_registry_get(
      sb_gateway_registry(sb_app_gateway(d->app)), agent);
  json_t *proj = NULL;
  if (doc && def &&
      sb_ctx_project(json_object_get(doc, "data"), def->requirements_json,
                     &proj, NULL, NULL) == 0) {
    char *t = demo_json_cut(proj, CUT);
    fprintf(f, "  %-12s    handed   %s\n", "", t);
    sb_free(t);
    json_decref(proj);
  }
  json_t *out = json_object_get(
      json_object_get(json_object_get(json_object_get(d->cur.final_ctx, "data"),
                                      "workflow"),
                      "outputs"),
      step);
  if (out) {
    fprintf(f, "  %-12s    answered ", "");
    answered(f, out);
    fputc('\n', f);
  }
  add_stats(d, agent, data);
  d->cur.calls++;
}

static void on_version(void *ud, const sb_ctx_result *res) {
  trace *t = ud;
  if (t->d->stopping) {
    sb_free(t);
    return;
  }
  print_call(t->d, json_object_get(t->ev, "data"), res->rc == 0 ? res->doc : NULL);
  t->d->cur.trace_at++;
  trace_next(t);
}

static void print_event(demo *d, json_t *e) {
  FILE *f = d->out;
  const char *type = str(e, "type");
  json_t *data = json_object_get(e, "data");
  const char *step = str(data, "step");
  const char *bad = d->color ? "\033[31m" : "", *ok = d->color ? "\033[32m" : "",
             *wait = d->color ? "\033[33m" : "", *off = d->color ? "\033[0m" : "";
  long long ms = (long long)(json_integer_value(json_object_get(e, "time")) -
                             d->cur.created_ms);
  if (strcmp(type, "step.completed") == 0) {
    const char *kind = started_kind(d, step);
    fprintf(f, "  %-12s    (%s)\n", step, kind ? kind : "step");
  } else if (strcmp(type, "step.failed") == 0) {
    fprintf(f, "  %-12s %sfailed%s: %s\n", step, bad, off, str(data, "message"));
  } else if (strcmp(type, "agent.failed") == 0) {
    fprintf(f, "  %-12s    agent %s: %s\n", step, str(data, "agent"),
            str(data, "outcome"));
  } else if (strcmp(type, "run.waiting") == 0) {
    fprintf(f, "  %swaits for a person at step %s%s; answer it with\n"
               "    switchboard runs answer %s --answer JSON --url "
               "http://%s:%d\n", wait, step, off, d->cur.run_id,
            d->cfg.listen_host, sb_app_http_port(d->app));
  } else if (strcmp(type, "run.completed") == 0) {
    fprintf(f, "  %scompleted%s in %lld ms\n", ok, off, ms);
  } else if (strcmp(type, "run.failed") == 0) {
    fprintf(f, "  %sfailed%s after %lld ms: %s\n", bad, off, ms,
            str(data, "message") ? str(data, "message") : "");
  } else if (strcmp(type, "run.cancelled") == 0) {
    fprintf(f, "  cancelled after %lld ms\n", ms);
  } else if (strncmp(type, "lead.", 5) == 0 || strncmp(type, "service.", 8) == 0 ||
             strncmp(type, "finance.", 8) == 0) {
    fprintf(f, "  %-12s    event %s\n", "", type);
  }
}

static void trace_next(trace *t) {
  demo *d = t->d;
  while (d->cur.trace_at < json_array_size(d->cur.events)) {
    json_t *e = json_array_get(d->cur.events, d->cur.trace_at);
    json_t *data = json_object_get(e, "data");
    if (strcmp(str(e, "type"), "step.completed") == 0 && str(data, "agent")) {
      t->ev = e;
      sb_error err = {0};
      int64_t v = (int64_t)num(data, "handedVersion");
      if (v > 0 && sb_ctx_get_async(sb_app_ctx(d->app), d->cur.tenant,
                                    d->cur.context_id, v, on_version, t,
                                    &err) == 0)
        return;
      print_call(d, data, NULL);
    } else {
      print_event(d, e);
    }
    d->cur.trace_at++;
  }
  void (*done)(demo *) = t->done;
  sb_free(t);
  fputc('\n', d->out);
  done(d);
}

void demo_trace(demo *d, void (*done)(demo *d)) {
  trace *t = sb_calloc(1, sizeof *t);
  if (!t) {
    done(d);
    return;
  }
  t->d = d;
  t->done = done;
  trace_next(t);
}

/* ---- the summary -------------------------------------------------------- */

void demo_record(demo *d) {
  json_t *spec = d->cur.spec;
  const char *status = str(d->cur.run, "status");
  const char *at = NULL;
  if (status && strcmp(status, "waiting") == 0)
    at = json_string_value(json_array_get(json_object_get(d->cur.run, "current"), 0));
  json_t *last = json_array_get(d->cur.events, json_array_size(d->cur.events) - 1);
  int64_t ms = last ? json_integer_value(json_object_get(last, "time")) -
                          d->cur.created_ms : 0;
  /* What the scenario says it should come to. */
  json_t *expect = json_object_get(spec, "expect");
  const char *want = str(expect, "status"), *want_at = str(expect, "step");
  int as_expected = (!want || (status && strcmp(want, status) == 0)) &&
                    (!want_at || (at && strcmp(want_at, at) == 0));
  if (!as_expected) d->exit_code = EXIT_RUNTIME;
  json_array_append_new(
      d->rows,
      json_pack("{sssssssssssIsIsIsb}", "title", str(spec, "title"), "tenant",
                d->cur.tenant, "workflow", str(spec, "workflow"), "status",
                status ? status : "?", "at", at ? at : "", "calls",
                (json_int_t)d->cur.calls, "version",
                json_integer_value(json_object_get(d->cur.final_ctx, "version")),
                "ms", (json_int_t)ms, "expected", as_expected));
}

/* tools/list of `srv` answered in-process (a modern request, every page):
 * the number of tools and the bytes of their definitions; -1 if an answer
 * does not come at once. */
typedef struct listed {
  sb_mcp_out out;
  json_t *result;
} listed;

static int listed_write(sb_mcp_out *out, json_t *msg, int final) {
  listed *l = out->data;
  json_t *r = json_object_get(msg, "result");
  if (r) {
    json_decref(l->result);
    l->result = json_incref(r);
  }
  return 0;
}

static int catalog(sb_mcp_server *srv, int64_t *bytes) {
  int count = 0;
  *bytes = 0;
  char *cursor = NULL;
  for (int page = 0; srv && page < 100; page++) {
    listed l = {.out = {.write = listed_write}};
    l.out.data = &l;
    json_t *req = json_pack("{sssiss s{s{ss s{}}}}", "jsonrpc", "2.0", "id",
                            page + 1, "method", "tools/list", "params",
                            "_meta", SB_MCP_META_PROTOCOL_VERSION,
                            SB_MCP_MODERN_VERSION, SB_MCP_META_CLIENT_CAPS);
    if (cursor)
      json_object_set_new(json_object_get(req, "params"), "cursor",
                          json_string(cursor));
    sb_free(cursor);
    cursor = NULL;
    sb_mcp_server_dispatch(srv, NULL, &l.out, req);
    sb_mcp_out_detach(&l.out);
    json_decref(req);
    json_t *tools = json_object_get(l.result, "tools");
    if (!json_is_array(tools)) {
      json_decref(l.result);
      return -1;
    }
    count += (int)json_array_size(tools);
    *bytes += (int64_t)json_dumpb(tools, NULL, 0, JSON_COMPACT);
    const char *next = str(l.result, "nextCursor");
    if (next) cursor = sb_strdup(next);
    json_decref(l.result);
    if (!cursor) break;
  }
  sb_free(cursor);
  return count;
}

void demo_summary(demo *d) {
  FILE *f = d->out;
  char a[32], b[32];
  fprintf(f, "== summary\n\n  %-3s %-44s %-11s %-19s %-18s %5s %4s %7s\n", "#",
          "scenario", "tenant", "workflow", "status", "calls", "ctx", "time");
  size_t i;
  json_t *r;
  json_array_foreach(d->rows, i, r) {
    char status[64];
    snprintf(status, sizeof status, "%s%s%s", str(r, "status"),
             *str(r, "at") ? " at " : "", str(r, "at"));
    fprintf(f, "  %-3zu ", i + 1);
    column(f, str(r, "title"), 44);
    fprintf(f, " %-11s %-19s %-18s %5lld   v%-3lld %5lld ms%s\n",
            str(r, "tenant"), str(r, "workflow"), status,
            (long long)num(r, "calls"), (long long)num(r, "version"),
            (long long)num(r, "ms"),
            json_is_true(json_object_get(r, "expected")) ? "" : "  (NOT as expected)");
  }
  sb_gateway *gw = sb_app_gateway(d->app);
  int64_t all_bytes = 0;
  int all = catalog(sb_app_mcp(d->app), &all_bytes);
  fprintf(f, "\n  Selective context: what each agent was handed, against the "
             "whole context at each call;\n  its own endpoint's tool catalog "
             "(/agents/ID/mcp) against the aggregated one on /mcp\n  (%d tools, "
             "%s B).\n\n", all, demo_thousands(all_bytes, a));
  fprintf(f, "  %-11s %5s %8s %10s %10s %6s   %s\n", "agent", "calls",
          "mean ms", "handed B", "whole B", "share", "its endpoint's tools");
  const char *id;
  json_t *s;
  json_object_foreach(d->agents, id, s) {
    int64_t calls = (int64_t)num(s, "calls"), handed = (int64_t)num(s, "handed"),
            whole = (int64_t)num(s, "whole"), tool_bytes = 0;
    int tools = catalog(sb_gateway_agent_server(gw, id), &tool_bytes);
    char c[32];
    fprintf(f, "  %-11s %5lld %8.1f %10s %10s %5.0f%%   %d, %s B (%.0f%%)\n",
            id, (long long)calls, calls ? num(s, "ms") / (double)calls : 0.0,
            demo_thousands(handed, a), demo_thousands(whole, b),
            whole ? 100.0 * (double)handed / (double)whole : 0.0, tools,
            demo_thousands(tool_bytes, c),
            all_bytes ? 100.0 * (double)tool_bytes / (double)all_bytes : 0.0);
  }
  fputc('\n', f);
}

void demo_connect_help(demo *d) {
  char exe[PATH_MAX], cwd[PATH_MAX], cfg[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
  if (!realpath(d->config_path, cfg)) snprintf(cfg, sizeof cfg, "%s", d->config_path);
  int port = sb_app_http_port(d->app);
  fprintf(d->out,
          "switchboard keeps serving the dealership (tenant %s for callers "
          "without a key).\n"
          "Connect any MCP client over Streamable HTTP:\n"
          "  {\"mcpServers\": {\"dealership\": {\"type\": \"http\", \"url\": "
          "\"http://%s:%d/mcp\"}}}\n"
          "or let it start its own switchboard over stdio (its own store, so "
          "it does not share this one's):\n"
          "  {\"mcpServers\": {\"dealership\": {\"command\": \"sh\", \"args\": "
          "[\"-c\", \"cd '%s' && exec '%s' serve --config '%s' --stdio --store "
          "data/demo/stdio.db\"]}}}\n"
          "Each agent on its own: http://%s:%d/agents/sales/mcp (and general, "
          "service, parts, finance).\n"
          "Ctrl-C stops it.\n",
          d->cfg.default_tenant, d->cfg.listen_host, port, cwd, exe, cfg,
          d->cfg.listen_host, port);
}
