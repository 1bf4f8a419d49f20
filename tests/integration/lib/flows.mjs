// flows.mjs: helpers for the workflow tests: a config with real MCP agents
// (tests/agents/flow_agent.mjs over stdio or Streamable HTTP), tenants and
// workflows written as YAML; switchboard started on it; REST calls on runs
// and events; waiting for a run's status with a deadline (polling the
// server, never a fixed sleep); reading the SSE event stream.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEADLINE_MS, startHttpServer, withDeadline } from './harness.mjs';
import { pollUntil, startHttpAgent } from '../../agents/agents_lib.mjs';
import { restClient } from './contexts_common.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const FLOW_AGENT = join(here, '..', '..', 'agents', 'flow_agent.mjs');

/** An AgentDefinition for flow_agent.mjs: stdio, or HTTP at `url`. */
export function flowAgent(id, capabilities, { url, requirements = [], env, limits } = {}) {
  const def = {
    id, name: `Agent ${id}`, type: 'general', capabilities,
    models: { primary: 'test-model' }, contextRequirements: requirements,
    outputFormat: 'json', maxTokens: 256, temperature: 0,
    transport: url ? { type: 'http', url } : { type: 'stdio', command: process.execPath, args: [FLOW_AGENT, id], ...(env ? { env } : {}) },
  };
  if (limits) def.limits = limits;
  return def;
}

/**
 * The calls flow_agent's `slow` received, as its CALLS file records them,
 * in order: [{key (the idempotency key), args}] ([] before the first).
 */
export function callsReceived(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => {
    const tab = line.indexOf('\t');
    return { key: line.slice(0, tab), args: JSON.parse(line.slice(tab + 1)) };
  });
}

/** Start flow_agent.mjs over Streamable HTTP. */
export const startFlowHttpAgent = (id, env = {}) =>
  startHttpAgent(FLOW_AGENT, `flow agent ${id}`, `flow agent ${id}`, [id, '--http'], env);

/**
 * Write a config: agents (definitions), workflows (YAML text of the list
 * items, indented under `workflows:`), tenants ({id, token}...),
 * `limits:` keys ({max_runs: 10}) and `server:` keys
 * ({shutdown_grace_ms: 5000}).
 */
export function writeFlowConfig({ agents = [], workflowsYaml = '', tenants = [], store, storeKeys = {}, limits = {}, server = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-flows-'));
  const lines = ['cache:', '  ttl_ms: 0'];
  if (Object.keys(server).length) {
    lines.push('server:');
    for (const [k, v] of Object.entries(server)) lines.push(`  ${k}: ${v}`);
  }
  if (Object.keys(limits).length) {
    lines.push('limits:');
    for (const [k, v] of Object.entries(limits)) lines.push(`  ${k}: ${v}`);
  }
  if (store || Object.keys(storeKeys).length) {
    lines.push('store:');
    if (store) lines.push(`  path: ${store}`);
    for (const [k, v] of Object.entries(storeKeys)) lines.push(`  ${k}: ${v}`);
  }
  if (tenants.length) {
    lines.push('auth:', '  tenants:');
    for (const t of tenants) lines.push(`    - id: ${t.id}`, `      token: ${t.token}`);
  }
  lines.push('agents:', ...agents.map((a) => `  - ${JSON.stringify(a)}`));
  if (workflowsYaml) lines.push('workflows:', workflowsYaml.replace(/^\n/, '').trimEnd());
  const file = join(dir, 'switchboard.yaml');
  writeFileSync(file, lines.join('\n') + '\n');
  return { file, dir };
}

/** Start switchboard on the config, with REST helpers for runs. */
export async function startFlowServer(configFile, { token, extraArgs = [] } = {}) {
  const server = await startHttpServer({ extraArgs: ['--config', configFile, ...extraArgs] });
  const base = server.url.replace(/\/mcp$/, '');
  return { server, base, rest: runsClient(base, token) };
}

export function runsClient(base, token) {
  const rc = restClient(base, token);
  return {
    ...rc,
    start: (body) => rc.call('POST', '/v1/runs', { body }),
    run: (id) => rc.call('GET', `/v1/runs/${id}`),
    list: (q = '') => rc.call('GET', `/v1/runs${q}`),
    action: (id, action, body) => rc.call('POST', `/v1/runs/${id}/${action}`, body === undefined ? {} : { body }),
    publish: (body) => rc.call('POST', '/v1/events', { body }),
    context: (id) => rc.call('GET', `/v1/contexts/${id}`),
    /** Wait until the run's status is one of `statuses`; returns the run. */
    async waitFor(id, statuses, what = `run ${id} to be ${statuses}`) {
      const want = [].concat(statuses);
      return pollUntil(async () => {
        const r = await rc.call('GET', `/v1/runs/${id}`);
        assert.equal(r.status, 200, r.text);
        return want.includes(r.json.status) ? r.json : { ok: false, message: `status ${r.json.status}: ${r.text.slice(0, 400)}` };
      }, { what, everyMs: 20 });
    },
  };
}

/** Start a run and assert it was accepted (201); the run. */
export async function startRun(rest, body) {
  const r = await rest.start(body);
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers.location, `/v1/runs/${r.json.id}`);
  return r.json;
}

/** The customer's first message, as input.context for a new run. */
export const inquiry = (text) => ({
  context: { data: { conversation: { messages: [{ role: 'user', content: text }] } } },
});

/**
 * Read the SSE stream at `path` until `until(events)` holds (or the
 * deadline), then close it. Events are {id, event, data}.
 */
export async function readEvents(base, path, until, { token, lastEventId, timeoutMs = DEADLINE_MS } = {}) {
  const ac = new AbortController();
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (lastEventId !== undefined) headers['Last-Event-ID'] = String(lastEventId);
  const events = [];
  const work = (async () => {
    const res = await fetch(base + path, { headers, signal: ac.signal });
    assert.equal(res.status, 200, await (res.status === 200 ? '' : res.text()));
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk, { stream: true });
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, at);
        buf = buf.slice(at + 2);
        const ev = {};
        for (const line of block.split('\n')) {
          const m = /^(id|event|data): ?(.*)$/.exec(line);
          if (m) ev[m[1]] = m[2];
        }
        if (ev.data) {
          ev.data = JSON.parse(ev.data);
          events.push(ev);
        }
      }
      if (until(events)) break;
    }
  })();
  try {
    await withDeadline(work, timeoutMs, `events on ${path} (got ${events.length}: ${events.map((e) => e.event).join(', ')})`);
  } finally {
    ac.abort();
  }
  return events;
}
