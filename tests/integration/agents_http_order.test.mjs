// A legacy HTTP agent that writes on its session's GET stream and then
// answers a POST (tests/agents/session_log_agent.mjs): the two come on two
// sockets, and switchboard reads what the GET socket already holds before
// it ends the call, so a modern client (no session of its own: the call's
// stream is the only way to it) gets every log line, in the order the
// agent wrote it, inside the call it belongs to. Before, the line was lost
// whenever the loop saw the POST's socket first.
// And an agent slow to open its GET stream: the calls sent right after
// switchboard connects wait for it (as SDK clients open it before their
// first call), so what the agent sends there for a call is not lost.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { MODERN_VERSION, startHttpServer } from './lib/harness.mjs';
import { restClient } from './lib/contexts_common.mjs';
import { pollUntil, startHttpAgent } from '../agents/agents_lib.mjs';
import { writeFlowConfig } from './lib/flows.mjs';

const AGENT = join(import.meta.dirname, '..', 'agents', 'session_log_agent.mjs');
const CALLS = 60;

const DEF = (url) => ({
  id: 'lg', name: 'Session log', type: 'general', capabilities: ['log.lines'],
  models: { primary: 'test-model' }, contextRequirements: [], outputFormat: 'text', maxTokens: 16, temperature: 0,
  transport: { type: 'http', url },
});

/** lg__logthen through /mcp as a modern client: the result's text and the
 * log lines that came in the call's stream. */
async function callLogthen(mcpUrl, id) {
  const res = await fetch(mcpUrl, {
    method: 'POST',
    headers: {
      accept: 'application/json, text/event-stream', 'content-type': 'application/json',
      'MCP-Protocol-Version': MODERN_VERSION, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'lg__logthen',
    },
    body: JSON.stringify({
      jsonrpc: '2.0', id, method: 'tools/call',
      params: {
        name: 'lg__logthen', arguments: {},
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
          'io.modelcontextprotocol/clientInfo': { name: 'order-test', version: '1.0.0' },
          'io.modelcontextprotocol/clientCapabilities': {},
          'io.modelcontextprotocol/logLevel': 'debug',
        },
      },
    }),
  });
  assert.equal(res.status, 200);
  const text = await res.text();
  const msgs = res.headers.get('content-type').startsWith('text/event-stream')
    ? text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)))
    : [JSON.parse(text)];
  const result = msgs.at(-1).result;
  assert.ok(result, text);
  return {
    text: result.content[0].text,
    logs: msgs.filter((m) => m.method === 'notifications/message').map((m) => m.params.data),
  };
}

/** In a describe: before it, the agent (with `env`) and a switchboard
 * fronting it (the agent's definition extended by `def`, the config's
 * `limits`); after it, both stopped, switchboard's exit checked. The
 * returned object's agent and server are set once they run. */
function withAgentAndServer({ env = {}, def = {}, limits = {} } = {}) {
  const ctx = { agent: null, server: null };
  before(async () => {
    ctx.agent = await startHttpAgent(AGENT, 'session log agent', 'session log agent', [], env);
    const { file } = writeFlowConfig({ agents: [{ ...DEF(ctx.agent.url), ...def }], limits });
    ctx.server = await startHttpServer({ extraArgs: ['--config', file] });
  });
  after(async () => {
    if (ctx.server) {
      const done = await ctx.server.stop();
      assert.equal(done.code, 0, ctx.server.stderr.slice(-2000));
    }
    await ctx.agent?.stop();
  });
  return ctx;
}

describe('a legacy HTTP agent logging on its GET stream before it answers', () => {
  const ctx = withAgentAndServer();

  before(async () => {
    const rest = restClient(ctx.server.url.replace(/\/mcp$/, ''), null);
    await pollUntil(async () => {
      const row = (await rest.call('GET', '/v1/agents')).json.agents.find((x) => x.definition.id === 'lg');
      return row?.connected ? { ok: true } : { ok: false, message: 'lg not connected' };
    }, { what: 'the agent connected' });
  });

  it(`a modern client gets each call's log line before its result (${CALLS} calls)`, async () => {
    const missing = [];
    for (let i = 1; i <= CALLS; i++) {
      const { text, logs } = await callLogthen(ctx.server.url, i);
      const n = /^call (\d+)$/.exec(text)[1];
      if (logs.join() !== `log ${n}`) missing.push({ call: n, logs });
    }
    assert.deepEqual(missing, [], `calls whose log line did not come in their stream: ${JSON.stringify(missing)}`);
  });
});

describe('a legacy HTTP agent slow to open its GET stream', () => {
  const ctx = withAgentAndServer({ env: { GET_DELAY_MS: '400' } });

  it('the first call after start waits for the stream, and gets its log line', async () => {
    // Sent at once: it waits for the agent to connect, then for the
    // stream (before, it went out at the connect, 400 ms before the
    // stream was up, and the agent had nowhere to send its log).
    const { text, logs } = await callLogthen(ctx.server.url, 1);
    assert.equal(text, 'call 1');
    assert.deepEqual(logs, ['log 1']);
  });
});

describe('a legacy HTTP agent whose first tools/list fails', () => {
  const ctx = withAgentAndServer({ env: { LIST_FAILS: '1' }, limits: { agent_health_interval_ms: 200 } });

  it('is listed again once it answers its health check', async () => {
    // Before, the failed listing stayed: the agent served no tools (an
    // empty list on /agents/lg/mcp) until it sent list_changed.
    const rest = restClient(ctx.server.url.replace(/\/mcp$/, ''), null);
    await pollUntil(async () => {
      const row = (await rest.call('GET', '/v1/agents')).json.agents.find((x) => x.definition.id === 'lg');
      return row?.tools > 0 ? { ok: true } : { ok: false, message: `lg: ${JSON.stringify(row)}` };
    }, { what: 'lg listed its tools' });
    assert.match(ctx.server.stderr, /agent lg: tools\/list failed/);
  });
});

describe('a legacy HTTP agent that ends its session while calls wait for it', () => {
  // Each session serves 5 calls: a call may find the session it was sent
  // in ended several times over (under ASan on a loaded machine, 4 times
  // in 2 runs of 12), so the retry budget is the largest there is.
  const ctx = withAgentAndServer({ env: { GET_DELAY_MS: '300', EXPIRE_AFTER: '5' }, def: { limits: { maxConcurrent: 64, retries: 10 } } });

  it('every call sent at start is answered, each once, across the new sessions', async () => {
    // They all wait for the first session (and its GET stream); those the
    // agent refuses with 404 as it ends a session are retried in the
    // next. Before, a call that had waited for the first session gave up
    // on the second: 503 "not connected".
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => callLogthen(ctx.server.url, i + 1)));
    const ns = results.map((r) => {
      const m = /^call (\d+)/.exec(r.text);
      assert.ok(m, `an answer that is not a call's: ${r.text}\n${ctx.server.stderr.slice(-3000)}`);
      return Number(m[1]);
    }).sort((a, b) => a - b);
    assert.equal(new Set(ns).size, 30, `answers: ${ns}`);
  });
});
