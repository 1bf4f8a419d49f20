// Shared harness for the integration tests: start/stop the real switchboard
// binary, tap the wire under the official SDK clients, and wait for events
// with deadlines (never fixed sleeps).
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh SQLite file for one server, so tests never share state. */
export function tempStorePath() {
  return join(mkdtempSync(join(tmpdir(), 'sb-test-')), 'switchboard.db');
}

export const MODERN_VERSION = '2026-07-28';
export const LEGACY_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];
// The built-ins first, then the context tools, the agents admin tools and
// the workflow tools (providers in registration order), then the gateway's
// agents_call; agents' own tools would follow.
export const TOOL_ORDER = ['switchboard_info', 'echo', 'slow_count', 'fail', 'note_write', 'ask_user',
  'context_create', 'context_get', 'context_update', 'context_history', 'context_diff',
  'agents_list', 'agents_register', 'agents_remove', 'agents_explain',
  'workflow_run', 'runs_list', 'runs_get', 'runs_cancel', 'runs_answer', 'runs_resume', 'runs_fork',
  'events_publish', 'agents_call'];
// Tools that /tmp/builtins.md says carry an outputSchema.
export const TOOLS_WITH_OUTPUT_SCHEMA = ['switchboard_info', 'echo'];
export const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';
export const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';

/** Default deadline for anything we wait on. Generous: CI machines are slow. */
export const DEADLINE_MS = Number(process.env.SB_TEST_DEADLINE_MS || 10000);
/**
 * Deadline for a message the server should push promptly because of an
 * event on another request (a notification caused by note_write, the
 * legacy ask_user result after the client's elicitation answer). Loopback
 * delivery takes milliseconds; seconds mean a stream was not woken.
 */
export const PROMPT_MS = Number(process.env.SB_TEST_PROMPT_MS || 1000);

export function switchboardBin() {
  const bin = process.env.SWITCHBOARD_BIN;
  assert.ok(bin, 'SWITCHBOARD_BIN must point at the built switchboard binary');
  return bin;
}

/** Reject with a descriptive error if `promise` does not settle in `ms`. */
export function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`deadline of ${ms} ms passed waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';

/**
 * One 2026-07-28 request by plain fetch, with a bearer token: the
 * Mcp-Method header, Mcp-Name from the params (taskId, uri or name), the
 * protocol version in _meta, and the tasks extension declared unless
 * `tasks` is false. Answers { status, headers, text, ...the JSON-RPC
 * message }, the message read from a JSON body or the last SSE data line.
 */
export async function postModern(url, token, method, params, { tasks = true, elicitation = false, id = 1, headers: extra = {}, meta: extraMeta = {}, signal } = {}) {
  const name = params.taskId ?? params.uri ?? params.name;
  const headers = {
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    authorization: `Bearer ${token}`,
    'MCP-Protocol-Version': MODERN_VERSION,
    'Mcp-Method': method,
    ...extra,
  };
  if (name !== undefined) headers['Mcp-Name'] = name;
  const meta = {
    'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
    'io.modelcontextprotocol/clientCapabilities': {
      ...(tasks ? { extensions: { [TASKS_EXTENSION]: {} } } : {}),
      ...(elicitation ? { elicitation: { form: {} } } : {}),
    },
    ...extraMeta,
  };
  const res = await withDeadline(fetch(url, {
    method: 'POST', headers, signal, body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: meta } }),
  }), DEADLINE_MS, method);
  const text = await withDeadline(res.text(), DEADLINE_MS, `${method} body`);
  const body = text.startsWith('{') ? text : text.split('\n').filter((l) => l.startsWith('data: ')).pop()?.slice(6);
  return { status: res.status, headers: res.headers, text, ...(body ? JSON.parse(body) : {}) };
}

/**
 * An append-only list of events that tests can wait on: waitFor resolves as
 * soon as a matching item is (or already was) pushed, or rejects at the
 * deadline listing what did arrive, so a failure shows the wire evidence.
 */
export class EventLog {
  constructor(name) {
    this.name = name;
    this.items = [];
    this._waiters = new Set();
  }
  push(item) {
    this.items.push(item);
    for (const w of [...this._waiters]) {
      if (w.pred(item)) {
        this._waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(item);
      }
    }
  }
  /** Items pushed after index `from` that match. */
  since(from, pred = () => true) {
    return this.items.slice(from).filter(pred);
  }
  waitFor(pred, { timeoutMs = DEADLINE_MS, what = 'event', from = 0 } = {}) {
    const hit = this.items.slice(from).find(pred);
    if (hit !== undefined) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this._waiters.delete(w);
        const seen = this.items.slice(from).map(summarise).slice(-20);
        reject(new Error(`${this.name}: deadline of ${timeoutMs} ms passed waiting for ${what}; ` +
          `saw ${seen.length ? '\n  ' + seen.join('\n  ') : 'nothing'}`));
      }, timeoutMs);
      this._waiters.add(w);
    });
  }
  /** Wait until `n` items (from index `from`) match; resolves with them. */
  async waitForCount(pred, n, { from = 0, ...opts } = {}) {
    let count = 0;
    await this.waitFor((item) => pred(item) && ++count >= n, { ...opts, from, what: `${n} x ${opts.what || 'event'}` });
    return this.items.slice(from).filter(pred);
  }
}

function summarise(item) {
  const s = JSON.stringify(item);
  return s && s.length > 400 ? s.slice(0, 400) + '…' : s;
}

/**
 * Record every JSON-RPC message a transport sends and receives, without
 * changing its class (the v2 client treats the base StdioClientTransport
 * specially). Returns an EventLog of {dir: 'out'|'in', msg}.
 */
export function tapTransport(transport) {
  const log = new EventLog('wire');
  const send = transport.send.bind(transport);
  transport.send = (msg, opts) => {
    for (const m of Array.isArray(msg) ? msg : [msg]) log.push({ dir: 'out', t: Date.now(), msg: structuredClone(m) });
    return send(msg, opts);
  };
  let handler = transport.onmessage;
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    enumerable: true,
    get: () => handler && ((m, extra) => {
      log.push({ dir: 'in', t: Date.now(), msg: structuredClone(m) });
      return handler(m, extra);
    }),
    set: (fn) => { handler = fn; },
  });
  return log;
}

/**
 * A fetch that records each HTTP exchange (method, headers, body, status,
 * response headers) so tests can check transport-level rules.
 */
export function recordingFetch() {
  const log = new EventLog('http');
  const fetchImpl = async (url, init = {}) => {
    const headers = Object.fromEntries(new Headers(init.headers || {}).entries());
    const entry = { t: Date.now(), method: init.method || 'GET', url: String(url), headers, body: typeof init.body === 'string' ? init.body : undefined };
    let res;
    try {
      res = await fetch(url, init);
    } catch (e) {
      entry.error = String(e);
      log.push(entry);
      throw e;
    }
    entry.status = res.status;
    entry.tResponse = Date.now();
    entry.responseHeaders = Object.fromEntries(res.headers.entries());
    log.push(entry);
    return res;
  };
  return { fetch: fetchImpl, log };
}

/** Outgoing JSON-RPC requests (have an id and a method) in a wire log. */
export function outgoingRequests(wire) {
  return wire.items.filter((e) => e.dir === 'out' && e.msg.method !== undefined && e.msg.id !== undefined).map((e) => e.msg);
}

/** The response (result or error) to request `id` seen on the wire. */
export function responseTo(wire, id) {
  const e = wire.items.find((x) => x.dir === 'in' && x.msg.id === id && (x.msg.result !== undefined || x.msg.error !== undefined));
  return e && e.msg;
}

/**
 * Spawn `switchboard serve --listen 127.0.0.1:0` and wait (with a deadline)
 * for the stderr line announcing the endpoint. Returns a handle with url,
 * the captured stderr, and stop() which sends SIGTERM and resolves with
 * {code, signal} once the process has exited.
 */
export async function startHttpServer({ extraArgs = [], timeoutMs = DEADLINE_MS, wrap = [], listen = '127.0.0.1:0' } = {}) {
  const bin = switchboardBin();
  const store = extraArgs.includes('--store') ? [] : ['--store', tempStorePath()];
  // wrap: a command that runs the server (['prlimit', '--nofile=320'...]);
  // listen: its address (a port of its own: a server started again on
  // the port another left).
  const argv = [...wrap, bin, 'serve', '--listen', listen, ...store, ...extraArgs];
  const proc = spawn(argv[0], argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  const waiters = new Set(); // { re, resolve } for stderrMatch()
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  proc.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
  const ready = new Promise((resolve, reject) => {
    proc.once('error', reject);
    proc.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
      for (const w of waiters) {
        const hit = w.re.exec(stderr);
        if (hit) { waiters.delete(w); w.resolve(hit); }
      }
      const m = /listening on (https?:\/\/(\[[^\]]+\]|[^\s:/]+):(\d+)\/mcp)/.exec(stderr);
      if (m) resolve({ url: m[1], host: m[2], port: Number(m[3]) });
    });
    exited.then(({ code, signal }) =>
      reject(new Error(`switchboard exited (code ${code}, signal ${signal}) before listening; stderr:\n${stderr}`)));
  });
  let info;
  try {
    info = await withDeadline(ready, timeoutMs, `"listening on http://…/mcp" on stderr (got: ${JSON.stringify(stderr)})`);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  assert.equal(info.host, '127.0.0.1', 'server must listen on 127.0.0.1 only');
  assert.ok(info.port > 0, 'a real port was picked');
  return {
    ...info,
    proc,
    get stderr() { return stderr; },
    get stdout() { return stdout; },
    exited,
    /** Resolves with the match once stderr matches `re` (or already did). */
    stderrMatch(re, { timeoutMs: t = DEADLINE_MS } = {}) {
      const hit = re.exec(stderr);
      if (hit) return Promise.resolve(hit);
      const w = { re };
      const p = new Promise((resolve) => { w.resolve = resolve; waiters.add(w); });
      return withDeadline(p, t, `${re} on stderr (got: ${JSON.stringify(stderr.slice(-2000))})`)
        .finally(() => waiters.delete(w));
    },
    /** SIGHUP, then resolves with what stderr says from then on, once that
     * matches `re`. */
    async sighup(re, { timeoutMs: t = DEADLINE_MS } = {}) {
      const from = stderr.length;
      proc.kill('SIGHUP');
      const since = { exec: (all) => re.exec(all.slice(from)), toString: () => `${re} after SIGHUP` };
      await this.stderrMatch(since, { timeoutMs: t });
      return stderr.slice(from);
    },
    async stop({ timeoutMs: t = DEADLINE_MS } = {}) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      try {
        return await withDeadline(exited, t, 'switchboard to exit after SIGTERM');
      } catch (e) {
        proc.kill('SIGKILL');
        throw e;
      }
    },
  };
}

/**
 * For the SDKs' stdio transports (which spawn the server themselves):
 * parameters for `switchboard serve --stdio` with stderr piped so we can
 * show it on failure.
 */
export function stdioServerParams(extraArgs = []) {
  const store = extraArgs.includes('--store') ? [] : ['--store', tempStorePath()];
  return { command: switchboardBin(), args: ['serve', '--stdio', ...store, ...extraArgs], stderr: 'pipe' };
}

/**
 * Collect a stdio transport's child stderr (requires stderr: 'pipe') and,
 * once started, its exit status. The SDK keeps the child in a private
 * field; we read it only to assert the clean exit on stdin EOF.
 */
export function watchStdioChild(transport) {
  const state = { stderr: '', exit: undefined, exited: undefined };
  const s = transport.stderr;
  if (s) {
    s.setEncoding?.('utf8');
    s.on('data', (d) => { state.stderr += d; });
  }
  state.attach = () => {
    const child = transport._process;
    if (!child) return false;
    state.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
      else child.once('exit', (code, signal) => resolve({ code, signal }));
    }).then((r) => { state.exit = r; return r; });
    return true;
  };
  return state;
}

/** Pull the text of all text content blocks of a tool/prompt result. */
export function textOf(content) {
  return (content || []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}
