// The audit trail and log redaction end to end: 401s (no token, a wrong
// token, a wrong API key) land as audit.auth_failed in the operators'
// tenant (the first admin tenant), naming the credential only by key id or
// hash prefix; a 403 for a bad Origin lands in the caller's own tenant;
// agent changes over MCP and REST (done, failed, refused) and a SIGHUP
// reload are audit.admin events; the CLI's tenant/key create and revoke
// are audit.admin events in the tenant concerned; nobody can publish an
// audit.* event; and a debug-level log of all of it shows no secret.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DEADLINE_MS, MODERN_VERSION, startHttpServer, tempStorePath, withDeadline } from './lib/harness.mjs';
import { restClient, runCli, stopClean } from './lib/contexts_common.mjs';
import { readEvents } from './lib/flows.mjs';

const A = { id: 'dealer-a', token: 'token-for-dealer-a-0123456789' }; // admin
const B = { id: 'dealer-b', token: 'token-for-dealer-b-9876543210' };
const WRONG_TOKEN = 'wrong-token-abcdefghijklmnop';
const WRONG_KEY = 'sb_0123456789ab_' + 'Q'.repeat(43);
const LLM_KEY = 'llm-secret-key-5f4dcc3b5aa765d6';
const PASSWORD = 'hunter2-very-secret';
const COOKIE = 'sid=cookie-secret-31337';
const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
  'io.modelcontextprotocol/clientCapabilities': {},
};

describe('audit events and redacted logs', { timeout: 90000 }, () => {
  const store = tempStorePath();
  let server;
  let base;
  let keyK;

  const cli = async (args) => {
    const r = await runCli([...args, '--store', store]);
    assert.equal(r.code, 0, `switchboard ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const audits = (token, n, types = 'audit.*') =>
    readEvents(base, `/v1/events?since=0&types=${types}`, (evs) => evs.length >= n, { token });

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-audit-'));
    const config = join(dir, 'switchboard.yaml');
    writeFileSync(config, [
      'auth:',
      '  tenants:',
      `    - {id: ${A.id}, token: ${A.token}}`,
      `    - {id: ${B.id}, token: ${B.token}}`,
      `  admin_tenants: [${A.id}]`,
    ].join('\n') + '\n');
    process.env.SWITCHBOARD_LLM_BASE_URL = 'http://127.0.0.1:9/v1';
    process.env.SWITCHBOARD_LLM_API_KEY = LLM_KEY;
    try {
      server = await startHttpServer({ extraArgs: ['--config', config, '--store', store, '--log-level', 'debug'] });
    } finally {
      delete process.env.SWITCHBOARD_LLM_BASE_URL;
      delete process.env.SWITCHBOARD_LLM_API_KEY;
    }
    base = server.url.replace(/\/mcp$/, '');
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  it('401s are audit.auth_failed in the operators\' tenant, the credential named by id or hash only', async () => {
    assert.equal((await restClient(base, null).call('GET', '/v1/runs')).status, 401);
    assert.equal((await restClient(base, WRONG_TOKEN).call('GET', '/v1/runs', { headers: { Cookie: COOKIE } })).status, 401);
    const res = await withDeadline(fetch(server.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${WRONG_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { password: PASSWORD }, _meta: META } }),
    }), DEADLINE_MS, 'POST /mcp');
    assert.equal(res.status, 401);
    await res.text();
    const evs = await audits(A.token, 3, 'audit.auth_failed');
    const data = evs.map((e) => e.data.data);
    assert.deepEqual(data.map((d) => [d.status, d.reason, d.credential.split(':')[0]]),
      [[401, 'missing_token', 'none'], [401, 'refused_token', 'token'], [401, 'refused_token', 'key']]);
    assert.equal(data[2].credential, 'key:0123456789ab');
    assert.match(data[1].credential, /^token:[0-9a-f]{12}$/);
    assert.deepEqual(data.map((d) => [d.method, d.path]), [['GET', '/v1/runs'], ['GET', '/v1/runs'], ['POST', '/mcp']]);
    assert.equal(data[0].remote, '127.0.0.1');
    assert.ok(!JSON.stringify(evs).includes(WRONG_TOKEN) && !JSON.stringify(evs).includes(WRONG_KEY));
  });

  it('a 403 for an Origin lands in the caller\'s tenant; other tenants see none of it', async () => {
    const r = await restClient(base, B.token).call('GET', '/v1/runs', { headers: { Origin: 'https://evil.example' } });
    assert.equal(r.status, 403);
    const evs = await audits(B.token, 1);
    assert.equal(evs[0].event, 'audit.auth_failed');
    assert.equal(evs[0].data.data.status, 403);
    assert.equal(evs[0].data.data.reason, 'origin_not_allowed');
    const inA = await audits(A.token, 3, 'audit.auth_failed');
    assert.ok(inA.every((e) => e.data.data.status === 401));
  });

  it('agent changes over MCP and REST, and refusals, are audit.admin events', async () => {
    const a = restClient(base, A.token);
    assert.equal((await a.call('DELETE', '/v1/agents/nope')).status, 404);
    assert.equal((await restClient(base, B.token).call('DELETE', '/v1/agents/nope')).status, 403);
    const res = await withDeadline(fetch(server.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${A.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'MCP-Protocol-Version': MODERN_VERSION,
        'Mcp-Method': 'tools/call',
        'Mcp-Name': 'agents_remove',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'agents_remove', arguments: { id: 'ghost' }, _meta: META } }),
    }), DEADLINE_MS, 'agents_remove');
    await res.text();
    const inA = (await audits(A.token, 2, 'audit.admin')).map((e) => e.data.data);
    assert.deepEqual(inA.map((d) => [d.action, d.via, d.outcome, d.target]),
      [['agents_remove', 'rest', 'failed', 'nope'], ['agents_remove', 'mcp', 'failed', 'ghost']]);
    const inB = (await audits(B.token, 2)).map((e) => [e.event, e.data.data.action, e.data.data.outcome]);
    assert.deepEqual(inB[1], ['audit.admin', 'agents_remove', 'refused']);
  });

  it('a SIGHUP reload is an audit.admin event', async () => {
    server.proc.kill('SIGHUP');
    const evs = await audits(A.token, 3, 'audit.admin');
    const d = evs[2].data.data;
    assert.deepEqual([d.action, d.via, d.outcome], ['config.reload', 'sighup', 'ok']);
  });

  it('the CLI\'s tenant and key changes are audit.admin events in the tenant concerned', async () => {
    await cli(['tenant', 'create', 'dealer-k']);
    const made = await cli(['key', 'create', '--tenant', 'dealer-k']);
    const doomed = made.stdout.trim();
    keyK = (await cli(['key', 'create', '--tenant', 'dealer-k'])).stdout.trim();
    await cli(['key', 'revoke', doomed.slice(3, 15)]);
    // The server takes new keys at its next key refresh (every 250 ms).
    const end = Date.now() + DEADLINE_MS;
    while ((await restClient(base, keyK).call('GET', '/v1/runs')).status !== 200) {
      assert.ok(Date.now() < end, 'the new key was never accepted');
      await new Promise((r) => setTimeout(r, 50));
    }
    const evs = await audits(keyK, 4, 'audit.admin');
    assert.deepEqual(evs.map((e) => [e.data.data.action, e.data.data.via, e.data.data.target]), [
      ['tenant.create', 'cli', 'dealer-k'],
      ['key.create', 'cli', doomed.slice(3, 15)],
      ['key.create', 'cli', keyK.slice(3, 15)],
      ['key.revoke', 'cli', doomed.slice(3, 15)],
    ]);
    assert.ok(!JSON.stringify(evs).includes(doomed.slice(16)));
  });

  it('clients cannot publish audit events', async () => {
    const a = restClient(base, A.token);
    for (const type of ['audit.auth_failed', 'audit.admin', 'audit.anything']) {
      const r = await a.call('POST', '/v1/events', { body: { type, data: {} } });
      assert.ok(r.status >= 400 && r.status < 500, `${type}: ${r.status} ${r.text}`);
    }
    const ok = await a.call('POST', '/v1/events', { body: { type: 'dealer.note', data: { password: PASSWORD } } });
    assert.ok(ok.status < 300, ok.text);
  });

  it('a change that went through is recorded at its wall-clock time, so the retention sweep keeps it', async () => {
    const def = {
      id: 'dated', name: 'Dated', type: 'general', capabilities: ['dated.x'], models: { primary: 'm' },
      contextRequirements: [], outputFormat: 'text', maxTokens: 16, temperature: 0,
      transport: { type: 'stdio', command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'] },
    };
    const before = Date.now();
    const r = await restClient(base, A.token).call('POST', '/v1/agents', { body: def });
    assert.equal(r.status, 201, r.text);
    const evs = await readEvents(base, '/v1/events?since=0&types=audit.admin',
      (all) => all.some((e) => e.data.data.action === 'agents_register'), { token: A.token });
    const ev = evs.find((e) => e.data.data.action === 'agents_register');
    assert.equal(ev.data.data.outcome, 'ok');
    const at = Date.parse(ev.data.time);
    assert.ok(at >= before - 1000 && at <= Date.now() + 1000, `recorded at ${ev.data.time}`);
  });

  it('a flood of refused requests: at most 50 events a second, each later one counting those left out; paths cut', async () => {
    const FLOOD = 300;
    const refusedAt = (path) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${WRONG_TOKEN}` } })
      .then((r) => { assert.equal(r.status, 401); return r.text(); });
    const long = `/flood/${'p'.repeat(1000)}`;
    const ours = (evs) => evs.filter((e) => e.event === 'audit.auth_failed' && e.data.data.path.startsWith('/flood'));
    await Promise.all(Array.from({ length: FLOOD }, () => refusedAt(long)));
    // Refused once more every 100 ms until one is recorded with the count
    // of those left out (the next second's first), after the flood: a
    // flood slow enough to span two seconds has such an event of its own
    // in the middle, which counts only those before it.
    const a = restClient(base, A.token);
    const flooded = await a.call('POST', '/v1/events', { body: { type: 'qa.flooded', data: {} } });
    assert.equal(flooded.status, 201, flooded.text);
    let sent = FLOOD;
    const end = Date.now() + DEADLINE_MS;
    for (;;) {
      await refusedAt(long);
      sent++;
      const counted = await readEvents(base, `/v1/events?since=${flooded.json.seq}&types=audit.auth_failed`,
        (all) => ours(all).some((e) => e.data.data.suppressed > 0), { token: A.token, timeoutMs: 100 }).then(() => true, () => false);
      if (counted) break;
      assert.ok(Date.now() < end, `no event counted what was left out of ${sent} refusals`);
    }
    // Everything recorded so far, up to a mark published after it.
    assert.ok((await a.call('POST', '/v1/events', { body: { type: 'qa.mark', data: {} } })).status < 300);
    const evs = ours(await readEvents(base, '/v1/events?since=0&types=audit.auth_failed,qa.mark',
      (all) => all.some((e) => e.event === 'qa.mark'), { token: A.token }));
    assert.ok(evs.length < FLOOD, `${evs.length} events for ${FLOOD} refusals at once`);
    // Every refusal is an event or counted by a later one, but those since
    // the last event recorded (the polls after it: none).
    const counted = evs.length + evs.reduce((n, e) => n + (e.data.data.suppressed ?? 0), 0);
    assert.equal(counted, sent);
    for (const e of evs) assert.equal(e.data.data.path, long.slice(0, 200));
  });

  it('no secret appears in the debug log', async () => {
    assert.match(server.stderr, /audit: auth failed: 401 refused_token/);
    assert.match(server.stderr, /audit: admin: agents_remove via mcp by tenant dealer-a: failed ghost/);
    for (const secret of [A.token, B.token, WRONG_TOKEN, WRONG_KEY.slice(16), LLM_KEY, PASSWORD, 'cookie-secret-31337', keyK.slice(16)])
      assert.ok(!server.stderr.includes(secret), `the log shows ${secret}`);
  });
});
