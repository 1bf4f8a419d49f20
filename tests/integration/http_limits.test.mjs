// Streamable HTTP, resource caps a hostile client meets: legacy sessions
// (in all and per tenant, and what each keeps of its initialize) and
// subscriptions/listen (the filter's size and the streams per tenant).
// Plain fetch, so the exact statuses and errors are under test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { DEADLINE_MS, withDeadline } from './lib/harness.mjs';
import { TENANTS, startTenantServer, stopClean } from './lib/contexts_common.mjs';

const MAX_SESSIONS = 5;
const MAX_PER_TENANT = 3;

describe('Streamable HTTP: session and subscription caps', { timeout: 60000 }, () => {
  let server;
  let url;

  async function post(token, body, headers = {}) {
    const res = await withDeadline(fetch(url, {
      method: 'POST',
      headers: {
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }), DEADLINE_MS, 'POST /mcp');
    const text = await withDeadline(res.text(), DEADLINE_MS, 'response body');
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, text, json };
  }

  const initialize = (token, clientInfo = { name: 'caps', version: '1' }) => post(token, {
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo },
  });

  async function del(token, sid) {
    const res = await withDeadline(fetch(url, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}`, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' },
    }), DEADLINE_MS, 'DELETE /mcp');
    await res.text();
    return res.status;
  }

  before(async () => {
    server = await startTenantServer({
      extraArgs: ['--log-level', 'debug'],
      config: [
        'sessions:',
        `  max: ${MAX_SESSIONS}`,
        `  max_per_tenant: ${MAX_PER_TENANT}`,
      ].join('\n'),
    });
    url = server.url;
  });

  after(async () => {
    if (server) await stopClean(server);
  });

  it('initialize past sessions.max_per_tenant, then sessions.max: 503 naming the limit', async () => {
    const a = [];
    for (let i = 0; i < MAX_PER_TENANT; i++) {
      const r = await initialize(TENANTS.a.token);
      assert.equal(r.status, 200, r.text);
      a.push(r.headers.get('mcp-session-id'));
    }
    const overA = await initialize(TENANTS.a.token);
    assert.equal(overA.status, 503, overA.text);
    assert.equal(overA.json?.error?.code, -32050, overA.text);
    assert.match(overA.json.error.message, /sessions\.max_per_tenant/);
    assert.equal(overA.headers.get('mcp-session-id'), null);

    // The other tenant still gets in, up to the server's cap.
    const b = [];
    for (let i = 0; i < MAX_SESSIONS - MAX_PER_TENANT; i++) {
      const r = await initialize(TENANTS.b.token);
      assert.equal(r.status, 200, r.text);
      b.push(r.headers.get('mcp-session-id'));
    }
    const overB = await initialize(TENANTS.b.token);
    assert.equal(overB.status, 503, overB.text);
    assert.match(overB.json.error.message, /sessions\.max\b/);
    assert.doesNotMatch(overB.json.error.message, /max_per_tenant/);

    // Ending a session frees its place.
    assert.equal(await del(TENANTS.a.token, a.pop()), 204);
    const again = await initialize(TENANTS.b.token);
    assert.equal(again.status, 200, again.text);
    b.push(again.headers.get('mcp-session-id'));
    for (const sid of a) assert.equal(await del(TENANTS.a.token, sid), 204);
    for (const sid of b) assert.equal(await del(TENANTS.b.token, sid), 204);
  });

  it('a 3 MB clientInfo is refused with -32602 and opens no session', async () => {
    const r = await initialize(TENANTS.a.token, { name: 'big', version: '1', blob: 'x'.repeat(3 * 1024 * 1024) });
    assert.equal(r.json?.error?.code, -32602, r.text.slice(0, 300));
    assert.equal(r.json.error.data?.param, 'clientInfo');
    assert.equal(r.headers.get('mcp-session-id'), null);
    const long = await initialize(TENANTS.a.token, { name: 'n'.repeat(1000), version: '1' });
    assert.equal(long.json?.error?.code, -32602, long.text.slice(0, 300));
    assert.equal(long.json.error.data?.param, 'clientInfo.name');
    // None of them took a place: the tenant still opens its full share.
    const sids = [];
    for (let i = 0; i < MAX_PER_TENANT; i++) {
      const ok = await initialize(TENANTS.a.token);
      assert.equal(ok.status, 200, ok.text);
      sids.push(ok.headers.get('mcp-session-id'));
    }
    for (const sid of sids) assert.equal(await del(TENANTS.a.token, sid), 204);
  });
});
