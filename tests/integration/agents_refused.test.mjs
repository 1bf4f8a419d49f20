// An HTTP agent that refuses switchboard's token, as an OAuth resource
// server does (tests/agents/guarded_agent.mjs: the official SDK's bearer
// middleware, 401 with {"error": "invalid_token", ...}, a body that is not
// JSON-RPC): the connection, and a call made after the token was revoked,
// fail at once naming the HTTP status and the agent's own words, instead of
// waiting out the probe or the call's timeout for an answer that never
// comes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { DEADLINE_MS, startHttpServer, withDeadline } from './lib/harness.mjs';
import { restClient } from './lib/contexts_common.mjs';
import { pollUntil, startHttpAgent } from '../agents/agents_lib.mjs';
import { writeFlowConfig } from './lib/flows.mjs';

const GUARDED = join(import.meta.dirname, '..', 'agents', 'guarded_agent.mjs');

describe('an HTTP agent that answers 401', () => {
  let agent;
  let server;
  let rest;
  const def = (id, token) => ({
    id, name: `Agent ${id}`, type: 'general', capabilities: [`${id}.hello`],
    models: { primary: 'test-model' }, contextRequirements: [], outputFormat: 'text', maxTokens: 16, temperature: 0,
    // Long enough that waiting one out would overrun the test's deadline.
    limits: { timeoutMs: 60000 },
    transport: { type: 'http', url: agent.url, headers: { Authorization: `Bearer ${token}` } },
  });

  before(async () => {
    agent = await startHttpAgent(GUARDED, 'guarded agent', 'guarded agent');
    const { file } = writeFlowConfig({ agents: [def('kept', 'good-token'), def('refused', 'stale-token')] });
    server = await startHttpServer({ extraArgs: ['--config', file] });
    rest = restClient(server.url.replace(/\/mcp$/, ''), null);
  });
  after(async () => {
    if (server) {
      const done = await server.stop();
      assert.equal(done.code, 0, server.stderr.slice(-2000));
    }
    await agent?.stop();
  });

  const agentRow = async (id) => (await rest.call('GET', '/v1/agents')).json.agents.find((x) => x.definition.id === id);

  it('an agent that refuses the token is down, the log naming HTTP 401 and why', async () => {
    await pollUntil(async () => ((await agentRow('kept')).connected ? { ok: true } : { ok: false, message: 'kept not connected' }),
      { what: 'the agent with a good token connected' });
    const said = await server.stderrMatch(/refused[^\n]*HTTP 401[^\n]*/);
    assert.match(said[0], /invalid_token/, said[0]);
    assert.doesNotMatch(server.stderr, /refused[^\n]*(no answer|timed out)/);
    const row = await agentRow('refused');
    assert.equal(row.connected, false, JSON.stringify(row));
  });

  it('a call refused with 401 mid-session fails at once with the status, not the timeout', async () => {
    const call = () => withDeadline(rest.call('POST', '/v1/agents/call', { body: { agent: 'kept', tool: 'hello', arguments: {} } }),
      DEADLINE_MS, 'agents/call');
    const ok = await call();
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.result.content[0].text, 'hello');
    const revoked = await fetch(agent.url.replace(/\/mcp$/, '/revoke'), { method: 'POST' });
    assert.equal(revoked.status, 204);
    const refused = await call();
    assert.notEqual(refused.status, 200, refused.text);
    assert.match(refused.text, /HTTP 401/, refused.text);
    assert.match(refused.text, /invalid_token/, refused.text);
    assert.doesNotMatch(refused.text, /timed out/, refused.text);
  });
});
