// agents_persist.test.mjs: agents registered, replaced and removed through
// the API (REST and the MCP tools) are in the store before they are
// acknowledged: after a SIGKILL and a restart on the same store and config,
// and after a SIGHUP, every acknowledged change holds, a removal of a
// config agent included, and the first call to a stored agent is served.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startHttpServer, tempStorePath, textOf } from './lib/harness.mjs';
import { restClient, connectSdk } from './lib/contexts_common.mjs';
import { flakyAgent } from '../agents/agents_lib.mjs';

const OPS = { id: 'ops', token: 'token-for-the-ops-team-000111' };

function writeConfig(path, agents) {
  const lines = [
    'cache:', '  ttl_ms: 0',
    'auth:', '  admin_tenants: [ops]', '  tenants:',
    `    - id: ${OPS.id}`, `      token: ${OPS.token}`,
    'agents:', ...agents.map((a) => `  - ${JSON.stringify(a)}`),
  ];
  writeFileSync(path, lines.join('\n') + '\n');
}

const ids = (r) => r.json.agents.map((x) => x.definition.id).sort();

describe('agents changed through the API outlive a crash', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-persist-'));
  const cfg = join(dir, 'switchboard.yaml');
  const store = tempStorePath();
  writeConfig(cfg, [flakyAgent('a', 'A'), flakyAgent('c', 'C')]);
  const start = () => startHttpServer({ extraArgs: ['--config', cfg, '--store', store] });
  let server;

  after(async () => {
    if (!server) return;
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  it('keeps every acknowledged change across SIGKILL, restart and SIGHUP', async () => {
    server = await start();
    let ops = restClient(server.url.replace(/\/mcp$/, ''), OPS.token);
    // a new agent (REST), a config agent replaced (REST) and one removed
    // (REST), a new agent over MCP, and one registered then removed (MCP)
    assert.equal((await ops.call('POST', '/v1/agents', { body: flakyAgent('svc', 'SVC') })).status, 201);
    assert.equal((await ops.call('PUT', '/v1/agents/a', { body: flakyAgent('a', 'A2') })).status, 200);
    assert.equal((await ops.call('DELETE', '/v1/agents/c')).status, 204);
    const mcp = await connectSdk('modern', 'http', { url: server.url, token: OPS.token });
    try {
      for (const [tool, args] of [
        ['agents_register', { definition: flakyAgent('m', 'M') }],
        ['agents_register', { definition: flakyAgent('gone', 'G') }],
        ['agents_remove', { id: 'gone' }],
      ]) {
        const r = await mcp.callTool(tool, args);
        assert.notEqual(r.isError, true, `${tool}: ${textOf(r.content)}`);
      }
      // refused changes change nothing, in memory or in the store
      const dup = await mcp.callTool('agents_register', { definition: flakyAgent('m', 'other') });
      assert.equal(dup.isError, true);
      assert.equal(dup.structuredContent.error, 'conflict');
      await assert.rejects(mcp.callTool('agents_register', { definition: flakyAgent('m', 'M'), replace: 'yes' }),
        (e) => e.code === -32602 && /'replace' must be a boolean/.test(e.message));
    } finally {
      await mcp.close();
    }
    assert.equal((await ops.call('POST', '/v1/agents', { body: { ...flakyAgent('x', 'X'), type: 'nope' } })).status, 422);
    assert.equal((await ops.call('DELETE', '/v1/agents/nobody')).status, 404);
    assert.deepEqual(ids(await ops.call('GET', '/v1/agents')), ['a', 'm', 'svc']);

    server.proc.kill('SIGKILL');
    await server.exited;
    server = await start();
    ops = restClient(server.url.replace(/\/mcp$/, ''), OPS.token);
    await server.stderrMatch(/agent c: removed through the API \(by tenant ops\)/);
    const listed = await ops.call('GET', '/v1/agents');
    assert.deepEqual(ids(listed), ['a', 'm', 'svc']);
    for (const a of listed.json.agents) assert.equal(a.fromConfig, false, a.definition.id);

    // the first calls after the start wait for the agents and reach the
    // stored definitions (a is A2, not the config's A)
    const client = await connectSdk('modern', 'http', { url: server.url, token: OPS.token });
    try {
      assert.match(textOf((await client.callTool('a__whoami', {})).content), /^A2 /);
      assert.match(textOf((await client.callTool('svc__whoami', {})).content), /^SVC /);
      assert.match(textOf((await client.callTool('m__whoami', {})).content), /^M /);
    } finally {
      await client.close();
    }

    // a reload keeps the config away from the ids the API changed
    const said = await server.sighup(/config reloaded/);
    assert.match(said, /agent a: changed through the API, its definition in the config is not used/);
    assert.match(said, /agent c: changed through the API/);
    assert.deepEqual(ids(await ops.call('GET', '/v1/agents')), ['a', 'm', 'svc']);

    // registering the removed config agent again brings it back, and that
    // holds across a restart too
    assert.equal((await ops.call('PUT', '/v1/agents/c', { body: flakyAgent('c', 'C3') })).status, 200);
    const audit = server.stderr;
    assert.equal((await server.stop()).code, 0, audit.slice(-2000));
    server = await start();
    ops = restClient(server.url.replace(/\/mcp$/, ''), OPS.token);
    assert.deepEqual(ids(await ops.call('GET', '/v1/agents')), ['a', 'c', 'm', 'svc']);
    const again = await connectSdk('legacy', 'http', { url: server.url, token: OPS.token });
    try {
      assert.match(textOf((await again.callTool('c__whoami', {})).content), /^C3 /);
    } finally {
      await again.close();
    }
  });
});
