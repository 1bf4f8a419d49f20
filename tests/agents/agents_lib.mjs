// agents_lib.mjs: helpers for the agent integration tests: write a config
// with AgentDefinitions, start switchboard on it, connect the official v2
// (modern) and v1 (legacy) SDK clients to it over Streamable HTTP, and wait
// on conditions with deadlines (never fixed sleeps).
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

import { Client as ModernClient, StreamableHTTPClientTransport as ModernHttp } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyHttp } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import { DEADLINE_MS, EventLog, MODERN_VERSION, startHttpServer, textOf, withDeadline } from '../integration/lib/harness.mjs';

export { DEADLINE_MS, textOf, withDeadline };

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
export const FLAKY = join(here, 'flaky_agent.mjs');
export const EVERYTHING_HTTP = join(here, 'everything_http.mjs');
export const EVERYTHING = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')),
  'dist', 'index.js');

/** An AgentDefinition with the required fields filled in. */
export function agentDef(id, { capabilities = ['general'], transport, limits, idempotentTools } = {}) {
  const d = {
    id, name: `Agent ${id}`, type: 'general', capabilities,
    models: { primary: 'test-model' }, outputFormat: 'text', maxTokens: 256, temperature: 0.2,
    transport,
  };
  if (limits) d.limits = limits;
  if (idempotentTools) d.idempotentTools = idempotentTools;
  return d;
}

export const flakyAgent = (id, name, opts = {}) =>
  agentDef(id, { capabilities: ['flaky'], transport: { type: 'stdio', command: process.execPath, args: [FLAKY, name] }, ...opts });

export const everythingStdio = (id = 'everything') =>
  agentDef(id, { capabilities: ['demo'], transport: { type: 'stdio', command: process.execPath, args: [EVERYTHING, 'stdio'] } });

/**
 * Write the agents into a YAML config (JSON is valid YAML flow style).
 * cache.ttl_ms is 0 because the v2 client honours ttlMs on tools/list: with
 * the default (60 s) a list fetched before an agent connected would hide
 * the agent's tools from a client that does not listen for list_changed.
 * `settings`: more YAML lines, before the agents ('limits:', '  ...').
 */
export function writeConfig(agents, settings = []) {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-agents-')), 'switchboard.yaml');
  writeFileSync(file, ['cache:', '  ttl_ms: 0', ...settings, 'agents:', ...agents.map((a) => `  - ${JSON.stringify(a)}`)].join('\n') + '\n');
  return file;
}

/** Start switchboard with these agents. */
export async function startWithAgents(agents) {
  return startHttpServer({ extraArgs: ['--config', writeConfig(agents)] });
}

const CLIENT_INFO = { name: 'switchboard-agents-tests', version: '0.1.0' };

/**
 * Connect one SDK client to `url`. `sampling` (legacy only) is the handler
 * for sampling/createMessage; the requests it saw are in ctx.samplings.
 */
export async function connect(era, url, { sampling } = {}) {
  const ctx = { era, samplings: new EventLog('sampling requests') };
  if (era === 'modern') {
    ctx.client = new ModernClient(CLIENT_INFO, { capabilities: {}, versionNegotiation: { mode: { pin: MODERN_VERSION } } });
    ctx.transport = new ModernHttp(new URL(url));
    ctx.callTool = (params, opts) => ctx.client.callTool(params, opts);
  } else {
    ctx.client = new LegacyClient(CLIENT_INFO, { capabilities: sampling ? { sampling: {} } : {} });
    if (sampling) {
      ctx.client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
        ctx.samplings.push(req);
        return sampling(req);
      });
    }
    ctx.transport = new LegacyHttp(new URL(url));
    ctx.callTool = (params, opts) => ctx.client.callTool(params, CallToolResultSchema, opts);
  }
  await withDeadline(ctx.client.connect(ctx.transport), DEADLINE_MS, `${era} client connect`);
  ctx.close = async () => {
    if (era === 'legacy' && ctx.transport.sessionId) await ctx.transport.terminateSession().catch(() => {});
    await ctx.client.close().catch(() => {});
  };
  return ctx;
}

/** Poll until `check()` returns a truthy value; throw at the deadline with the last value seen. */
export async function pollUntil(check, { timeoutMs = DEADLINE_MS, what = 'condition', everyMs = 50 } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last && last.ok !== false) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`deadline of ${timeoutMs} ms passed waiting for ${what}; last: ${String(last?.message ?? JSON.stringify(last))}`);
    // A poll interval, not synchronisation: we re-check the condition.
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Poll tools/list until every one of `names` is listed. */
export async function waitForTools(ctx, names, opts = {}) {
  return pollUntil(async () => {
    const { tools } = await ctx.client.listTools();
    const have = new Set(tools.map((t) => t.name));
    return names.every((n) => have.has(n)) ? tools : { ok: false, message: `listed: ${[...have].join(', ')}` };
  }, { what: `tools ${names.join(', ')}`, ...opts });
}

/** A call that must settle (result or rejection) within the deadline. */
export function callWithin(ctx, params, ms = DEADLINE_MS, opts = {}) {
  return withDeadline(ctx.callTool(params, { timeout: ms + 1000, ...opts }), ms, `tools/call ${params.name}`);
}

/** Append switchboard's stderr to an assertion message. */
export function withStderr(server, msg) {
  return `${msg}\n--- switchboard stderr (tail):\n${server.stderr.slice(-3000)}`;
}

/**
 * Start an agent script that serves Streamable HTTP on 127.0.0.1 with a
 * port picked by the OS and says "<banner> listening on 127.0.0.1:PORT" on
 * stderr (everything_http.mjs, reference_agent.mjs).
 */
export async function startHttpAgent(script, banner, label, args = [], env = {}, { deadlineMs = DEADLINE_MS } = {}) {
  const proc = spawn(process.execPath, [script, ...args],
    { env: { ...process.env, ...env, PORT: '0' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const listening = new RegExp(`${banner} listening on 127\\.0\\.0\\.1:(\\d+)`);
  const port = await withDeadline(new Promise((resolve, reject) => {
    proc.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
      const m = listening.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    exited.then(() => reject(new Error(`${label} exited early: ${stderr}`)));
  }), deadlineMs, `${label} to listen`).catch((e) => {
    proc.kill('SIGKILL');
    // what it said before it stalled, if anything: where it stopped
    throw new Error(`${e.message}; its stderr so far: ${JSON.stringify(stderr.slice(-2000))}`);
  });
  assert.ok(port > 0);
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    get stderr() { return stderr; },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await withDeadline(exited, DEADLINE_MS, `${label} to exit`).catch(() => proc.kill('SIGKILL'));
    },
  };
}

/** Start server-everything over Streamable HTTP on 127.0.0.1. */
export const startEverythingHttp = () => startHttpAgent(EVERYTHING_HTTP, 'everything-http', 'server-everything');
