// Per-tenant quotas end to end: a tenant past its request rate gets 429
// with Retry-After and a body naming the limit, on REST and on /mcp (a
// JSON-RPC error -31051), while another tenant goes on unaffected;
// refused (401) callers consume nobody's quota; a tenant with as many
// calls in flight as max_concurrent_calls gets the same error naming that
// limit, and a place again once a call ends; on stdio the refusal is a
// JSON-RPC error seen by the official SDK client.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DEADLINE_MS, postModern, startHttpServer } from './lib/harness.mjs';
import { connectSdk, restClient, stopClean } from './lib/contexts_common.mjs';
import { flowAgent, runsClient } from './lib/flows.mjs';

const T = {
  a: { id: 'dealer-a', token: 'token-for-dealer-a-0123456789' }, // 1/s, burst 3
  b: { id: 'dealer-b', token: 'token-for-dealer-b-9876543210' }, // 1 call in flight
  c: { id: 'dealer-c', token: 'token-for-dealer-c-5555555555' }, // the global limits
};
const BURST = 3;
const QUOTA_EXCEEDED = -31051;

function writeConfig(lines) {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-quota-')), 'switchboard.yaml');
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

describe('quotas', { timeout: 60000 }, () => {
  let server;
  let url;
  let configPath;
  const configLines = (c = []) => [
    'auth:',
    '  tenants:',
    ...Object.values(T).flatMap((t) => [`    - id: ${t.id}`, `      token: ${t.token}`]),
    'quotas:',
    '  requests_per_second: 1000',
    '  tenants:',
    `    dealer-a: {requests_per_second: 1, burst: ${BURST}}`,
    '    dealer-b: {max_concurrent_calls: 1}',
    ...c,
  ];

  /** tools/call on /mcp (2026-07-28) as the tenant of `token`, with `id`. */
  async function mcpPost(token, id, name, args) {
    const { status, headers, text, ...message } = await postModern(url, token, 'tools/call', { name, arguments: args }, { tasks: false, id });
    return { status, headers, text, json: text ? message : undefined };
  }

  before(async () => {
    configPath = writeConfig(configLines());
    server = await startHttpServer({ extraArgs: ['--config', configPath, '--log-level', 'debug'] });
    url = server.url;
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  it('401s consume no quota; past the rate REST is a 429 naming the limit; another tenant is unaffected', async () => {
    const base = url.replace(/\/mcp$/, '');
    const bad = restClient(base, 'token-nobody-has-0000000000');
    for (let i = 0; i < 2 * BURST; i++) assert.equal((await bad.call('GET', '/v1/runs')).status, 401);
    const a = restClient(base, T.a.token);
    const c = restClient(base, T.c.token);
    // The whole burst is there (the 401s took none of it), then a refusal.
    const started = Date.now();
    let ok = 0;
    let refused;
    for (let i = 0; i < 20 && !refused; i++) {
      const r = await a.call('GET', '/v1/runs');
      if (r.status === 429) refused = r;
      else {
        assert.equal(r.status, 200, r.text);
        ok++;
      }
    }
    const elapsedS = (Date.now() - started) / 1000;
    assert.ok(refused, 'dealer-a was refused');
    assert.ok(ok >= BURST && ok <= BURST + Math.ceil(elapsedS) + 1, `${ok} admitted in ${elapsedS}s`);
    assert.equal(refused.json.error.code, 'quota_exceeded');
    assert.equal(refused.json.error.limit, 'quotas.requests_per_second');
    assert.match(refused.json.error.message, /dealer-a .*quotas\.requests_per_second/);
    const retry = Number(refused.headers['retry-after']);
    assert.ok(retry >= 1 && retry <= 1, `Retry-After ${refused.headers['retry-after']}`);
    // dealer-c, at the same moment: all admitted.
    for (let i = 0; i < 2 * BURST; i++) assert.equal((await c.call('GET', '/v1/runs')).status, 200);
    // The same bucket on /mcp: a JSON-RPC error, still a 429.
    const m = await mcpPost(T.a.token, 7, 'echo', { text: 'hi' });
    assert.equal(m.status, 429, m.text);
    assert.equal(m.json.id, 7);
    assert.equal(m.json.error.code, QUOTA_EXCEEDED);
    assert.equal(m.json.error.data.limit, 'quotas.requests_per_second');
    assert.ok(m.json.error.data.retryAfterMs > 0 && m.json.error.data.retryAfterMs <= 1000);
    assert.ok(Number(m.headers.get('retry-after')) >= 1);
    const mc = await mcpPost(T.c.token, 8, 'echo', { text: 'hi' });
    assert.equal(mc.status, 200, mc.text);
    assert.equal(mc.json.result.isError, undefined);
    assert.match(server.stderr, /refused: quota exceeded: tenant dealer-a/);
  });

  it('calls in flight past max_concurrent_calls are refused until one ends', async () => {
    const slow = mcpPost(T.b.token, 1, 'slow_count', { steps: 10, interval_ms: 100 });
    // Wait until the slow call holds its place (it is the only call of b).
    let refused;
    const end = Date.now() + DEADLINE_MS;
    while (!refused && Date.now() < end) {
      const r = await mcpPost(T.b.token, 2, 'echo', { text: 'second' });
      if (r.status === 429) refused = r;
      else await new Promise((res) => setTimeout(res, 10));
    }
    assert.ok(refused, 'a second call of dealer-b was refused');
    assert.equal(refused.json.error.code, QUOTA_EXCEEDED);
    assert.equal(refused.json.error.data.limit, 'quotas.max_concurrent_calls');
    assert.equal(refused.json.error.data.value, 1);
    assert.match(refused.json.error.message, /1 calls in flight/);
    // Another tenant meanwhile: unaffected.
    assert.equal((await mcpPost(T.c.token, 3, 'echo', { text: 'c' })).status, 200);
    const done = await slow;
    assert.equal(done.status, 200, done.text);
    assert.ok(done.json.result, done.text);
    // Its place is back.
    const after1 = await mcpPost(T.b.token, 4, 'echo', { text: 'after' });
    assert.equal(after1.status, 200, after1.text);
  });
  it('SIGHUP re-reads the quotas; a bad config keeps them and logs why', async () => {
    const c = restClient(url.replace(/\/mcp$/, ''), T.c.token);
    /** dealer-c's first refusal within n requests, or undefined. */
    const firstRefusal = async (n) => {
      for (let i = 0; i < n; i++) {
        const r = await c.call('GET', '/v1/runs');
        if (r.status === 429) return r;
        assert.equal(r.status, 200, r.text);
      }
      return undefined;
    };
    assert.equal(await firstRefusal(8), undefined, 'dealer-c has the global 1000 a second');
    writeFileSync(configPath, configLines(['    dealer-c: {requests_per_second: 1, burst: 2}']).join('\n') + '\n');
    assert.match(await server.sighup(/quotas reloaded/), /1 tenant override|3 tenant override/);
    const refused = await firstRefusal(8);
    assert.ok(refused, 'dealer-c was not limited after the reload');
    assert.match(refused.json.error.message, /dealer-c passed quotas\.requests_per_second \(1 a second\)/);
    // A bad file: nothing changes, and the log says what is wrong.
    writeFileSync(configPath, configLines(['    dealer-c: {requests_per_second: lots}']).join('\n') + '\n');
    const said = await server.sighup(/SIGHUP: config not reloaded/);
    assert.match(said, /quotas\.tenants\.dealer-c\.requests_per_second/);
    assert.doesNotMatch(said, /quotas reloaded/);
    const still = await firstRefusal(8);
    assert.ok(still, 'the old quotas were dropped by a bad config');
    assert.match(still.json.error.message, /\(1 a second\)/);
    // A file whose quotas load but whose agent is bad (serve and check
    // refuse it): its quotas were applied all the same, while the log
    // said the config was not reloaded.
    const lines = configLines(['    dealer-c: {requests_per_second: 1000}']);
    writeFileSync(configPath, [...lines, 'agents:', '  - {id: nameless, type: general}'].join('\n') + '\n');
    const refused2 = await server.sighup(/SIGHUP: config not reloaded/);
    assert.match(refused2, new RegExp(`config not reloaded: ${configPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${lines.length + 2}: agents\\[0\\]\\.`));
    assert.doesNotMatch(refused2, /quotas reloaded/);
    const kept = await firstRefusal(8);
    assert.ok(kept, 'a config with a bad agent changed the quotas');
    assert.match(kept.json.error.message, /\(1 a second\)/);
  });
});

describe('quotas and workflow runs', { timeout: 60000 }, () => {
  let server;
  let base;
  const B = T.b; // one call in flight

  before(async () => {
    const config = writeConfig([
      'auth:', '  tenants:', `    - id: ${B.id}`, `      token: ${B.token}`,
      'quotas:', '  max_concurrent_calls: 1',
      'agents:', `  - ${JSON.stringify(flowAgent('flow', ['slow']))}`,
      'workflows:',
      '  - name: slow-one',
      '    steps:',
      '      - id: wait',
      '        call: { agent: flow, tool: slow, arguments: { ms: 1500 } }',
      '  - name: slow-two',
      '    steps:',
      '      - id: both',
      '        parallel:',
      '          - id: first',
      '            call: { agent: flow, tool: slow, arguments: { ms: 300 } }',
      '          - id: second',
      '            call: { agent: flow, tool: slow, arguments: { ms: 300 } }',
    ]);
    server = await startHttpServer({ extraArgs: ['--config', config, '--log-level', 'debug'] });
    base = server.url.replace(/\/mcp$/, '');
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  const tool = (name, args) => postModern(server.url, B.token, 'tools/call', { name, arguments: args }, { tasks: false });
  const echo = () => tool('echo', { text: 'x' });

  it('a step\'s agent call holds one of the tenant\'s calls in flight', async () => {
    const rest = runsClient(base, B.token);
    const started = await rest.start({ workflow: 'slow-one' });
    assert.equal(started.status, 201, started.text);
    // While the step's call is out, the tenant's own calls are refused.
    let refused;
    const end = Date.now() + DEADLINE_MS;
    while (!refused) {
      const r = await echo();
      if (r.status === 429) refused = r;
      else {
        const run = await rest.run(started.json.id);
        assert.notEqual(run.json?.status, 'completed', 'the run ended and no call of the tenant was refused');
        assert.ok(Date.now() < end, 'never refused');
      }
    }
    assert.match(refused.text, /quotas\.max_concurrent_calls/);
    const run = await rest.waitFor(started.json.id, ['completed', 'failed']);
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    assert.equal((await echo()).status, 200, 'the place came back');
  });

  it('a step refused for the quota waits for room, not fails', async () => {
    const rest = runsClient(base, B.token);
    const started = await rest.start({ workflow: 'slow-two' });
    assert.equal(started.status, 201, started.text);
    const run = await rest.waitFor(started.json.id, ['completed', 'failed']);
    assert.equal(run.status, 'completed', JSON.stringify(run.error));
    assert.match(server.stderr, /a workflow step's call waits: quota exceeded: tenant dealer-b has 1 calls in flight/);
  });

  it('workflow_run over MCP, waiting for its run, does not hold the place its steps need', async () => {
    const r = await tool('workflow_run', { workflow: 'slow-one' });
    assert.equal(r.status, 200, r.text);
    const body = r.text.startsWith('{') ? r.text : r.text.split('\n').filter((l) => l.startsWith('data: ')).pop().slice(6);
    const result = JSON.parse(body).result;
    assert.equal(result.structuredContent.status, 'completed', body);
  });
});

describe('quotas on stdio', { timeout: 60000 }, () => {
  it('a call past max_concurrent_calls is a JSON-RPC error naming the limit', async () => {
    const config = writeConfig(['quotas:', '  max_concurrent_calls: 1']);
    const sdk = await connectSdk('modern', 'stdio', { stdioArgs: ['--config', config] });
    try {
      const slow = sdk.callTool('slow_count', { steps: 5, interval_ms: 100 });
      await assert.rejects(sdk.callTool('echo', { text: 'second' }), (e) => {
        assert.equal(e.code, QUOTA_EXCEEDED, String(e));
        assert.match(e.message, /quotas\.max_concurrent_calls/);
        return true;
      });
      const done = await slow;
      assert.ok(!done.isError);
      const again = await sdk.callTool('echo', { text: 'third' });
      assert.ok(!again.isError);
    } finally {
      await sdk.close();
    }
  });

});
