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
