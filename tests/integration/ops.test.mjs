// ops.test.mjs: what an operator's probes and monitoring read. /healthz
// and /readyz answer anyone (no token, outside the quotas); /metrics is
// the Prometheus text format, for administrator tenants only, and its
// agent counters move with real calls to a real agent (the flaky agent,
// the official 1.x SDK over stdio).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';

import { startHttpServer } from './lib/harness.mjs';
import { TENANTS, restClient, sampleInput } from './lib/contexts_common.mjs';
import { flakyAgent, pollUntil } from '../agents/agents_lib.mjs';

const OPS = { id: 'ops', token: 'token-for-the-ops-team-000222' };

/** The exposition as {family: {type, help, samples: [{labels, value}]}}, checking every line's syntax. */
function parseMetrics(text) {
  const families = {};
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'the text ends with a newline');
  for (const line of lines) {
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      const f = (families[m[2]] ??= { samples: [] });
      if (m[1] === 'TYPE') {
        assert.match(m[3], /^(counter|gauge)$/, line);
        f.type = m[3];
      } else f.help = m[3];
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    const f = families[m[1]];
    assert.ok(f?.type && f.help, `${m[1]}: sample before its HELP and TYPE`);
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    const value = Number(m[3]);
    assert.ok(Number.isFinite(value), line);
    f.samples.push({ labels, value });
  }
  return families;
}

const sample = (families, name, labels = {}) => families[name]?.samples.find((s) =>
  Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

describe('health probes and metrics', () => {
  let server;
  let base;
  let ops;
  let dealer;

  before(async () => {
    const cfg = `${process.env.TMPDIR || '/tmp'}/sb-ops-${process.pid}.yaml`;
    const agent = { ...flakyAgent('quoter', 'Q', { capabilities: ['quote'] }), type: 'finance' };
    writeFileSync(cfg, [
      'auth:', '  admin_tenants: [ops]', '  tenants:',
      ...[TENANTS.a, OPS].flatMap((t) => [`    - id: ${t.id}`, `      token: ${t.token}`]),
      // the dealer's quota, which the probes must not count against
      'quotas:', '  tenants:', `    ${TENANTS.a.id}: {requests_per_second: 1, burst: 1}`,
      'agents:', `  - ${JSON.stringify(agent)}`,
    ].join('\n') + '\n');
    server = await startHttpServer({ extraArgs: ['--config', cfg] });
    base = server.url.replace(/\/mcp$/, '');
    ops = restClient(base, OPS.token);
    dealer = restClient(base, TENANTS.a.token);
  });

  after(async () => {
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  it('/healthz and /readyz answer without a token, past the quota, and only to GET', async () => {
    const anyone = restClient(base, null);
    for (let i = 0; i < 5; i++) {
      const h = await anyone.call('GET', '/healthz');
      assert.equal(h.status, 200, h.text);
      assert.deepEqual(h.json, { status: 'ok' });
    }
    const ready = await pollUntil(async () => {
      const r = await anyone.call('GET', '/readyz');
      return r.json?.agents?.connected === 1 ? r : { ok: false, message: r.text };
    }, { what: 'the agent connected, as /readyz says' });
    assert.equal(ready.status, 200, ready.text);
    assert.equal(ready.json.status, 'ready');
    assert.deepEqual(ready.json.agents, { connected: 1, registered: 1 });
    assert.equal(ready.json.store.maxPending, 4096);
    // the dealer spends its quota; its probes still answer
    let refused;
    for (let i = 0; i < 3 && refused?.status !== 429; i++) refused = await dealer.call('GET', '/v1/agents');
    assert.equal(refused.status, 429, refused.text);
    assert.equal((await dealer.call('GET', '/healthz')).status, 200);
    assert.equal((await dealer.call('GET', '/readyz')).status, 200);
    const post = await anyone.call('POST', '/healthz', { body: {} });
    assert.equal(post.status, 405, post.text);
    assert.match(post.json.error.message, /^use GET on \/healthz$/);
    const below = await anyone.call('GET', '/healthz/x');
    assert.equal(below.status, 404, below.text);
    // a bad token on a probe is not looked at
    const forged = await restClient(base, 'not-a-token').call('GET', '/healthz');
    assert.equal(forged.status, 200, forged.text);
  });

  it('/metrics needs a token, and an administrator tenant', async () => {
    const none = await restClient(base, null).call('GET', '/metrics');
    assert.equal(none.status, 401, none.text);
    const d = await pollUntil(async () => {
      const r = await dealer.call('GET', '/metrics'); // past the dealer's quota: 429 until a token is back
      return r.status !== 429 ? r : { ok: false, message: r.text };
    }, { what: "the dealer's quota to let a request through" });
    assert.equal(d.status, 403, d.text);
    assert.match(d.json.error.message, /administrator tenant \(auth\.admin_tenants\)/);
  });

  it('/metrics is the Prometheus text format, and the agent counters follow real calls', async () => {
    const scrape = async () => {
      const r = await ops.call('GET', '/metrics');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
      return parseMetrics(r.text);
    };
    const before = await scrape();
    const agent = { agent: 'quoter', type: 'finance' };
    assert.equal(sample(before, 'switchboard_agent_up', agent), 1);
    assert.equal(before.switchboard_agent_calls_total.type, 'counter');
    assert.equal(sample(before, 'switchboard_agents'), 1);
    assert.ok(sample(before, 'switchboard_agent_tools', agent) >= 5);
    assert.equal(sample(before, 'switchboard_agent_max_concurrent', agent), 4);
    assert.equal(sample(before, 'switchboard_agent_breaker_open', agent), 0);
    assert.equal(sample(before, 'switchboard_store_max_pending'), 4096);
    const ok0 = sample(before, 'switchboard_agent_calls_total', { ...agent, result: 'ok' });
    const failed0 = sample(before, 'switchboard_agent_calls_total', { ...agent, result: 'failed' });
    const writes0 = sample(before, 'switchboard_store_writes_total');

    const call = (tool) => ops.call('POST', '/v1/agents/call', { body: { agent: 'quoter', tool, arguments: {} } });
    assert.equal((await call('whoami')).status, 200);
    assert.equal((await call('whoami')).status, 200);
    const crashed = await call('crash');
    assert.notEqual(crashed.status, 200, crashed.text);
    const ctx = await ops.create(sampleInput('ops'));
    assert.equal(ctx.status, 201, ctx.text);

    // HTTP responses by class: the first scrape's own 200 and the ones here
    const got4xx = sample(before, 'switchboard_http_responses_total', { code: '4xx' });
    const mid = await scrape();
    assert.equal((await ops.call('GET', '/healthz/nope')).status, 404);
    assert.equal((await ops.call('GET', '/readyz')).status, 200);
    const classes = await scrape();
    const delta = (code) => sample(classes, 'switchboard_http_responses_total', { code }) -
      sample(mid, 'switchboard_http_responses_total', { code });
    assert.equal(delta('4xx'), 1);
    assert.equal(delta('2xx'), 2, 'the readyz and the middle scrape');
    assert.equal(delta('5xx'), 0);
    assert.ok(got4xx >= 2, 'the 401 and 403 of /metrics in the test before');
    assert.ok(sample(classes, 'switchboard_http_connections') >= 1);
    assert.equal(sample(classes, 'switchboard_mcp_sessions'), 0);

    const after = await scrape();
    assert.equal(sample(after, 'switchboard_agent_calls_total', { ...agent, result: 'ok' }), ok0 + 2);
    assert.equal(sample(after, 'switchboard_agent_calls_total', { ...agent, result: 'failed' }), failed0 + 1);
    assert.ok(sample(after, 'switchboard_agent_latency_seconds', agent) > 0);
    assert.ok(sample(after, 'switchboard_store_writes_total') > writes0, 'the context was written');
    assert.ok(sample(after, 'switchboard_uptime_seconds') >= sample(before, 'switchboard_uptime_seconds'));
  });
});
