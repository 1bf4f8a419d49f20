// agents_modern.test.mjs: a modern (2026-07-28) agent behind switchboard:
// another switchboard, over Streamable HTTP. The front switchboard must
// detect the era with server/discover (no initialize), call the agent's
// tools, and honour the agent's ttlMs on tools/list: when the agent's
// tool list changes (an agent registered on it at run time) the front
// picks the change up by re-listing, since a modern agent sends no
// unsolicited list_changed without subscriptions/listen.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHttpServer, textOf } from './lib/harness.mjs';
import { restClient } from './lib/contexts_common.mjs';
import { agentDef, flakyAgent, pollUntil, writeConfig, connect } from '../agents/agents_lib.mjs';

describe('a modern agent: switchboard behind switchboard', () => {
  let back;
  let front;
  let client;

  before(async () => {
    back = await startHttpServer();
    front = await startHttpServer({
      extraArgs: ['--config', writeConfig([agentDef('back', { transport: { type: 'http', url: back.url } })])],
    });
    client = await connect('modern', front.url);
  });

  after(async () => {
    await client?.close();
    for (const s of [front, back]) {
      const done = await s?.stop();
      if (done) assert.equal(done.code, 0, s.stderr.slice(-2000));
    }
  });

  it('connects with server/discover and serves the agent\'s tools', async () => {
    await pollUntil(async () => {
      const { tools } = await client.client.listTools();
      return tools.some((t) => t.name === 'back__echo') ? tools : { ok: false, message: 'not yet' };
    }, { what: 'back__echo listed' });
    const res = await client.callTool({ name: 'back__echo', arguments: { text: 'through two switchboards' } });
    assert.equal(textOf(res.content), 'through two switchboards');
    assert.deepEqual(res.structuredContent, { text: 'through two switchboards' });
    const list = await restClient(front.url.replace(/\/mcp$/, ''), null).call('GET', '/v1/agents');
    assert.equal(list.json.agents[0].era, 'modern');
    assert.equal(list.json.agents[0].protocolVersion, '2026-07-28');
    assert.doesNotMatch(back.stderr, /initialized with/, 'no legacy session was opened on the back');
  });

  it('re-lists a modern agent\'s tools when they change (ttlMs)', async () => {
    const r = await restClient(back.url.replace(/\/mcp$/, ''), null)
      .call('POST', '/v1/agents', { body: flakyAgent('x', 'X') });
    assert.equal(r.status, 201, r.text);
    await pollUntil(async () => {
      const { tools } = await client.client.listTools();
      return tools.some((t) => t.name === 'back__x__whoami') ? tools : { ok: false, message: 'not yet' };
    }, { what: 'back__x__whoami listed on the front' });
    const res = await client.callTool({ name: 'back__x__whoami', arguments: {} });
    assert.match(textOf(res.content), /^X \(call 1\)/);
  });
});

describe('a modern HTTP agent that goes away and comes back', () => {
  let back;
  let front;
  let rest;

  before(async () => {
    back = await startHttpServer();
    const file = writeConfig([agentDef('back', { transport: { type: 'http', url: back.url } })],
      ['limits:', '  agent_health_interval_ms: 100', '  agent_health_timeout_ms: 1000']);
    front = await startHttpServer({ extraArgs: ['--config', file] });
    rest = restClient(front.url.replace(/\/mcp$/, ''), null);
  });

  after(async () => {
    for (const s of [front, back]) {
      const done = await s?.stop();
      if (done) assert.equal(done.code, 0, s.stderr.slice(-2000));
    }
  });

  const agent = async () => (await rest.call('GET', '/v1/agents')).json.agents[0];

  it('is shown down, its tools unlisted, until it answers again; then listed and called', async () => {
    await pollUntil(async () => {
      const a = await agent();
      return a.connected && a.tools > 0 ? a : { ok: false, message: JSON.stringify(a) };
    }, { what: 'back connected with its tools listed' });
    const port = back.port;
    const stopped = await back.stop();
    assert.equal(stopped.code, 0, back.stderr.slice(-2000));
    back = null;

    // Nothing listens at its URL: the next health check cannot connect.
    const gone = await pollUntil(async () => {
      const a = await agent();
      return a.connected === false ? a : { ok: false, message: JSON.stringify(a) };
    }, { what: 'back shown not connected once nothing listens at its URL' });
    assert.match(gone.down, /health check could not connect/, JSON.stringify(gone));
    assert.equal(gone.tools, 0, JSON.stringify(gone));
    assert.equal(gone.state.healthy, false, JSON.stringify(gone));
    const metrics = await rest.call('GET', '/metrics');
    assert.match(metrics.text, /switchboard_agent_up\{agent="back"[^}]*\} 0\n/, metrics.text.slice(0, 2000));
    await front.stderrMatch(/agent back: its health check could not connect/);

    // The same agent again, on the same port: reconnected and listed anew.
    back = await startHttpServer({ listen: `127.0.0.1:${port}` });
    await pollUntil(async () => {
      const a = await agent();
      return a.connected && a.tools > 0 && a.state.healthy ? a : { ok: false, message: JSON.stringify(a) };
    }, { what: 'back connected again with its tools listed', timeoutMs: 20000 });
    const client = await connect('modern', front.url);
    try {
      const res = await client.callTool({ name: 'back__echo', arguments: { text: 'back again' } });
      assert.equal(textOf(res.content), 'back again');
    } finally {
      await client.close();
    }
  });
});
