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
import { restClient, connectSdk, runCli } from './lib/contexts_common.mjs';
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
    // the log says what a reload applies, as the README does
    assert.match(said, /config reloaded: \d+ agent\(s\) and \d+ workflow\(s\) configured; quotas, the OAuth keys and the TLS certificate re-read; other settings take effect at the next start/);
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

    // the CLI reads the same store beside the running server: the agents
    // it lists, ranks and connects to are the server's, not the config's
    const list = await runCli(['agents', 'list', '--config', cfg, '--store', store]);
    assert.equal(list.code, 0, list.stderr);
    const defs = JSON.parse(list.stdout);
    assert.deepEqual(defs.map((d) => d.id).sort(), ['a', 'c', 'm', 'svc']);
    const whoami = (d) => d.transport.args.at(-1); // what its whoami answers
    assert.equal(whoami(defs.find((d) => d.id === 'a')), 'A2');
    assert.equal(whoami(defs.find((d) => d.id === 'c')), 'C3');
    const ranked = await runCli(['agents', 'explain', 'flaky', '--config', cfg, '--store', store]);
    assert.equal(ranked.code, 0, ranked.stderr);
    assert.deepEqual(JSON.parse(ranked.stdout).map((x) => x.id).sort(), ['a', 'c', 'm', 'svc']);
    const shown = await runCli(['agents', 'show', 'svc', '--config', cfg, '--store', store]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(JSON.parse(shown.stdout).id, 'svc');
    const gone = await runCli(['agents', 'show', 'gone', '--config', cfg, '--store', store]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no agent gone in the config or registered through the API/);
    // without the store file: the config's agents alone
    const bare = await runCli(['agents', 'list', '--config', cfg, '--store', join(dir, 'none.db')]);
    assert.equal(bare.code, 0, bare.stderr);
    assert.deepEqual(JSON.parse(bare.stdout).map((d) => [d.id, whoami(d)]), [['a', 'A'], ['c', 'C']]);
  });
});
