// Health checks: a connected agent whose process stops answering (blocked,
// so pings go unanswered too) is marked unhealthy by the periodic ping
// (limits.agent_health_interval_ms / agent_health_timeout_ms), routing by
// capability prefers the healthy agent meanwhile, and the agent is healthy
// again once it answers.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHttpServer } from './lib/harness.mjs';
import { restClient } from './lib/contexts_common.mjs';
import { flakyAgent, pollUntil, writeConfig } from '../agents/agents_lib.mjs';

const FREEZE_MS = 2000;

describe('agent health checks', () => {
  let server;
  let rest;

  before(async () => {
    const file = writeConfig([flakyAgent('a', 'A', { capabilities: ['quote'] }), flakyAgent('b', 'B', { capabilities: ['quote'] })],
      ['limits:', '  agent_health_interval_ms: 100', '  agent_health_timeout_ms: 300']);
    server = await startHttpServer({ extraArgs: ['--config', file] });
    rest = restClient(server.url.replace(/\/mcp$/, ''), null);
    await pollUntil(async () => {
      const r = await rest.call('GET', '/v1/agents');
      const up = (r.json?.agents ?? []).filter((x) => x.connected && x.tools > 0);
      return up.length === 2 ? r : { ok: false, message: r.text };
    }, { what: 'both agents connected with their tools listed' });
  });

  after(async () => {
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  const state = async (id) => (await rest.call('GET', '/v1/agents')).json.agents.find((x) => x.definition.id === id).state;
  const ranking = async () => (await rest.call('GET', '/v1/agents/explain?capability=quote')).json.ranking;

  it('a blocked agent turns unhealthy, loses the ranking, and recovers', async () => {
    // Registration order would make a win a tie: it starts first.
    assert.equal((await ranking())[0].id, 'a');
    const frozen = rest.call('POST', '/v1/agents/call', { body: { agent: 'a', tool: 'freeze', arguments: { ms: FREEZE_MS } } });
    await pollUntil(async () => ((await state('a')).healthy === false ? { ok: true } : { ok: false, message: 'still healthy' }),
      { what: 'agent a marked unhealthy by its unanswered ping' });
    const r = await ranking();
    assert.equal(r[0].id, 'b', JSON.stringify(r));
    const a = r.find((x) => x.id === 'a');
    assert.equal(a.parts.health, 0, JSON.stringify(a));
    const routed = await rest.call('POST', '/v1/agents/call', { body: { capability: 'quote', tool: 'whoami' } });
    assert.equal(routed.status, 200, routed.text);
    assert.equal(routed.json.routing.agent, 'b', routed.text);

    const thawed = await frozen;
    assert.equal(thawed.status, 200, thawed.text);
    await pollUntil(async () => ((await state('a')).healthy === true ? { ok: true } : { ok: false, message: 'still unhealthy' }),
      { what: 'agent a healthy again once its pings are answered' });
    // the log says both, once each
    await server.stderrMatch(/agent a: answers its health check again/);
    assert.equal((server.stderr.match(/agent a: health check failed \(.*\); it ranks last/g) ?? []).length, 1, server.stderr);
    assert.doesNotMatch(server.stderr, /agent b: health check/);
  });
});
