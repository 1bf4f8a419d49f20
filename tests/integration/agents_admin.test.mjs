// agents_admin.test.mjs: agents registered and removed at run time (REST
// admin API and MCP tools), only by administrator tenants; validation
// errors naming the field; getOptimalAgent's explanation; and SIGHUP
// reloading the config's agents without dropping a legacy session.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';

import { DEADLINE_MS, startHttpServer, withDeadline, textOf } from './lib/harness.mjs';
import { TENANTS, restClient, connectSdk } from './lib/contexts_common.mjs';
import { flakyAgent, pollUntil } from '../agents/agents_lib.mjs';

const OPS = { id: 'ops', token: 'token-for-the-ops-team-000111' };

/** A config with the two dealer tenants, an admin tenant and `agents`. */
function writeAdminConfig(path, agents) {
  const lines = [
    'cache:', '  ttl_ms: 0',
    'auth:', '  admin_tenants: [ops]', '  tenants:',
    ...[...Object.values(TENANTS), OPS].flatMap((t) => [`    - id: ${t.id}`, `      token: ${t.token}`]),
    'agents:', ...agents.map((a) => `  - ${JSON.stringify(a)}`),
  ];
  writeFileSync(path, lines.join('\n') + '\n');
}

describe('agents admin and reload', () => {
  let server;
  let cfgPath;
  let ops;
  let dealer;

  before(async () => {
    cfgPath = `${process.env.TMPDIR || '/tmp'}/sb-admin-${process.pid}.yaml`;
    writeAdminConfig(cfgPath, [flakyAgent('a', 'A', { capabilities: ['quote'] })]);
    server = await startHttpServer({ extraArgs: ['--config', cfgPath] });
    const base = server.url.replace(/\/mcp$/, '');
    ops = restClient(base, OPS.token);
    dealer = restClient(base, TENANTS.a.token);
    await pollUntil(async () => {
      const r = await ops.call('GET', '/v1/agents');
      const a = r.json?.agents?.[0];
      return a?.connected && a.tools > 0 ? r : { ok: false, message: r.text };
    }, { what: 'agent a connected and its tools listed' });
  });

  after(async () => {
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  it('lists configured agents with their state', async () => {
    const r = await dealer.call('GET', '/v1/agents');
    assert.equal(r.status, 200);
    const [a] = r.json.agents;
    assert.equal(a.definition.id, 'a');
    assert.equal(a.fromConfig, true);
    assert.equal(a.era, 'legacy');
    assert.equal(a.state.breaker, 'closed');
    assert.ok(a.tools >= 5, `tools: ${a.tools}`);
  });

  it('refuses changes from a tenant that is not an administrator', async () => {
    const r = await dealer.call('POST', '/v1/agents', { body: flakyAgent('x', 'X') });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, 'forbidden');
    const mcp = await connectSdk('modern', 'http', { url: server.url, token: TENANTS.a.token });
    try {
      const res = await mcp.callTool('agents_register', { definition: flakyAgent('x', 'X') });
      assert.equal(res.isError, true);
      assert.match(textOf(res.content), /not an administrator/);
    } finally {
      await mcp.close();
    }
  });

  it('names the bad field of an invalid definition', async () => {
    const bad = { ...flakyAgent('y', 'Y'), type: 'marketing' };
    const r = await ops.call('POST', '/v1/agents', { body: bad });
    assert.equal(r.status, 422);
    assert.match(r.json.error.message, /^type: must be one of sales, service, parts, finance, general/);
    const dup = await ops.call('POST', '/v1/agents', { body: flakyAgent('a', 'A') });
    assert.equal(dup.status, 409);
  });

  it('registers an agent at run time, serves its tools, and removes it', async () => {
    const mcp = await connectSdk('modern', 'http', { url: server.url, token: OPS.token });
    try {
      const r = await ops.call('POST', '/v1/agents', { body: flakyAgent('svc', 'SVC', { capabilities: ['quote'] }) });
      assert.equal(r.status, 201, r.text);
      // Answered as PUT is, with where the agent now is.
      assert.deepEqual(r.json, { registered: 'svc' });
      assert.equal(r.headers.location, '/v1/agents/svc');
      assert.equal((await ops.call('GET', r.headers.location)).json.definition.id, 'svc');
      await pollUntil(async () => {
        const { tools } = await mcp.client.listTools();
        return tools.some((t) => t.name === 'svc__whoami') ? tools : { ok: false, message: 'not yet' };
      }, { what: 'svc__whoami listed' });
      assert.match(textOf((await mcp.callTool('svc__whoami', {})).content), /^SVC \(call 1\)/);

      // the ranking for the shared capability has both, with score parts
      const ex = await dealer.call('GET', '/v1/agents/explain?capability=quote');
      assert.equal(ex.status, 200);
      assert.deepEqual(ex.json.ranking.map((c) => c.id).sort(), ['a', 'svc']);
      for (const c of ex.json.ranking) assert.deepEqual(Object.keys(c.parts).sort(), ['capacity', 'coverage', 'health', 'latency']);

      // removal through the MCP tool
      const removed = await mcp.callTool('agents_remove', { id: 'svc' });
      assert.notEqual(removed.isError, true, textOf(removed.content));
      const { tools } = await mcp.client.listTools();
      assert.ok(!tools.some((t) => t.name.startsWith('svc__')), 'svc tools gone');
      const again = await ops.call('DELETE', '/v1/agents/svc');
      assert.equal(again.status, 404);
    } finally {
      await mcp.close();
    }
  });

  it('SIGHUP with an agent whose limits changed keeps its process and the calls in flight on it', async () => {
    const legacy = await connectSdk('legacy', 'http', { url: server.url, token: TENANTS.a.token });
    try {
      const before = textOf((await legacy.callTool('a__whoami', {})).content);
      const slow = legacy.callTool('a__slow', { ms: 1500 });
      await pollUntil(async () => {
        const r = await ops.call('GET', '/v1/agents');
        return r.json?.agents?.[0]?.state?.inflight === 1 ? r : { ok: false, message: r.text };
      }, { what: 'the slow call in flight' });
      writeAdminConfig(cfgPath, [flakyAgent('a', 'A', { capabilities: ['quote'], limits: { maxConcurrent: 3, timeoutMs: 20000 } })]);
      const said = await server.sighup(/agent a updated \(its connection and calls in flight kept\)/);
      assert.doesNotMatch(said, /agent a (replaced|removed)/);
      assert.match(textOf((await slow).content), /^A slept 1500 ms/);
      const [a] = (await ops.call('GET', '/v1/agents')).json.agents;
      assert.equal(a.definition.limits.maxConcurrent, 3);
      assert.equal(a.state.maxConcurrent, 3);
      // the same process answers: its count of whoami calls goes on
      const n = Number(/\(call (\d+)\)/.exec(before)[1]);
      assert.equal(textOf((await legacy.callTool('a__whoami', {})).content), `A (call ${n + 1})`);
    } finally {
      await legacy.close();
    }
  });

  it('SIGHUP reloads the agents from the config without dropping a legacy session', async () => {
    const legacy = await connectSdk('legacy', 'http', { url: server.url, token: TENANTS.a.token });
    try {
      assert.match(textOf((await legacy.callTool('a__whoami', {})).content), /^A /);
      writeAdminConfig(cfgPath, [flakyAgent('b', 'B', { capabilities: ['quote'] })]);
      server.proc.kill('SIGHUP');
      const r = await pollUntil(async () => {
        const res = await ops.call('GET', '/v1/agents');
        const ids = (res.json?.agents ?? []).map((x) => `${x.definition.id}:${x.connected}`);
        return ids.join(',') === 'b:true' ? res : { ok: false, message: ids.join(',') };
      }, { what: 'agents [b] connected after SIGHUP' });
      assert.equal(r.json.agents[0].fromConfig, true);
      // the same session goes on: no new initialize, and b's tools work
      const sid = legacy.transport.sessionId;
      assert.match(textOf((await legacy.callTool('b__whoami', {})).content), /^B /);
      assert.equal(legacy.transport.sessionId, sid);
      const gone = await withDeadline(legacy.callTool('a__whoami', {}).then(
        (x) => ({ result: x }), (e) => ({ error: e })), DEADLINE_MS, 'a__whoami after reload');
      assert.ok(gone.error || gone.result?.isError, 'a__whoami is no longer served');
    } finally {
      await legacy.close();
    }
  });

  it('a broken config on SIGHUP changes nothing', async () => {
    writeFileSync(cfgPath, 'agents:\n  - {id: b, type: nope}\n');
    server.proc.kill('SIGHUP');
    await pollUntil(() => (/config not reloaded/.test(server.stderr) ? true : { ok: false }),
      { what: '"config not reloaded" in the log' });
    const r = await ops.call('GET', '/v1/agents');
    assert.deepEqual(r.json.agents.map((x) => x.definition.id), ['b']);
  });

  it('a SIGHUP that changes auth.tenants says they are not applied until the next start', async () => {
    writeAdminConfig(cfgPath, [flakyAgent('b', 'B', { capabilities: ['quote'] })]);
    writeFileSync(cfgPath, readFileSync(cfgPath, 'utf8').replace(OPS.token, 'a-new-token-for-the-ops-team-222'));
    const said = await server.sighup(/config reloaded/);
    assert.match(said, /auth\.tenants, auth\.admin_tenants or auth\.default_tenant changed in .* and are not applied: they take effect at the next start/);
    assert.equal((await ops.call('GET', '/v1/agents')).status, 200, 'the token the server started with still holds');
    writeAdminConfig(cfgPath, [flakyAgent('b', 'B', { capabilities: ['quote'] })]);
    assert.doesNotMatch(await server.sighup(/config reloaded/), /not applied/);
  });

  it('a SIGHUP whose config has an agent with a command not found says so, and applies the rest', async () => {
    const ghost = { ...flakyAgent('g', 'G'), transport: { type: 'stdio', command: 'no-such-agent-program', env: { PATH: '/bin' } } };
    writeAdminConfig(cfgPath, [flakyAgent('b', 'B', { capabilities: ['quote'] }), ghost]);
    const said = await server.sighup(/config reloaded/);
    assert.match(said, /SIGHUP: config line \d+: agents\[1\] "g": transport\.command: no-such-agent-program is not found on PATH \(\/bin\); the agent does not start/);
    const r = await ops.call('GET', '/v1/agents');
    assert.deepEqual(r.json.agents.map((x) => x.definition.id).sort(), ['b', 'g']);
    writeAdminConfig(cfgPath, [flakyAgent('b', 'B', { capabilities: ['quote'] })]);
    assert.doesNotMatch(await server.sighup(/config reloaded/), /transport\.command/);
  });

  it('an empty config, or one without agents, on SIGHUP (a file caught mid-write) changes nothing', async () => {
    for (const empty of ['', '\n# nothing yet\n']) {
      writeFileSync(cfgPath, empty);
      const said = await server.sighup(/SIGHUP: config not reloaded: .*the file is empty/);
      assert.match(said, /a config that means to remove every agent says "agents: \[\]"/);
      const r = await ops.call('GET', '/v1/agents');
      assert.deepEqual(r.json.agents.map((x) => x.definition.id), ['b'], 'the agents are kept');
    }
    // a file with settings but no agents key: cut off before it, most likely
    writeFileSync(cfgPath, 'cache:\n  ttl_ms: 0\n');
    const said = await server.sighup(/SIGHUP: config not reloaded: .*no agents key, which would stop the 1 agent\(s\) the config runs/);
    assert.match(said, /says "agents: \[\]"/);
    const r = await ops.call('GET', '/v1/agents');
    assert.deepEqual(r.json.agents.map((x) => x.definition.id), ['b'], 'the agents are kept');
    // agents: [] means it
    writeAdminConfig(cfgPath, []);
    await server.sighup(/config reloaded: 0 agent\(s\)/);
    assert.deepEqual((await ops.call('GET', '/v1/agents')).json.agents, []);
  });
});
