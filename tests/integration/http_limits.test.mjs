// Streamable HTTP, resource caps a hostile client meets: legacy sessions
// (in all and per tenant, and what each keeps of its initialize) and
// subscriptions/listen (the filter's size and the streams per tenant), and
// the REST event streams (GET /v1/events) per tenant, under the same cap.
// Plain fetch, so the exact statuses and errors are under test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { DEADLINE_MS, MODERN_VERSION, withDeadline } from './lib/harness.mjs';
import { TENANTS, startTenantServer, stopClean } from './lib/contexts_common.mjs';

const MAX_SESSIONS = 5;
const MAX_PER_TENANT = 3;
const MAX_LISTEN_URIS = 10;
const MAX_LISTEN_STREAMS = 2;
const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
  'io.modelcontextprotocol/clientCapabilities': {},
};

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
        'limits:',
        `  max_listen_uris: ${MAX_LISTEN_URIS}`,
        `  max_listen_streams_per_tenant: ${MAX_LISTEN_STREAMS}`,
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
    assert.equal(overA.json?.error?.code, -31050, overA.text);
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

  const listenHeaders = { 'MCP-Protocol-Version': MODERN_VERSION, 'Mcp-Method': 'subscriptions/listen' };
  const listenMsg = (id, uris) => ({
    jsonrpc: '2.0', id, method: 'subscriptions/listen',
    params: { notifications: { resourceSubscriptions: uris }, _meta: META },
  });

  /** Open a listen stream; resolves once it is acknowledged (or answered). */
  async function openListen(token, id) {
    const ac = new AbortController();
    const res = await withDeadline(fetch(url, {
      method: 'POST', signal: ac.signal,
      headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json', authorization: `Bearer ${token}`, ...listenHeaders },
      body: JSON.stringify(listenMsg(id, ['switchboard://notes/a'])),
    }), DEADLINE_MS, 'listen POST');
    if (!/text\/event-stream/.test(res.headers.get('content-type') || '')) {
      return { status: res.status, json: JSON.parse(await res.text()) };
    }
    const reader = res.body.getReader();
    let seen = '';
    while (!seen.includes('notifications/subscriptions/acknowledged')) {
      const { value, done } = await withDeadline(reader.read(), DEADLINE_MS, 'listen acknowledgement');
      assert.ok(!done, `stream ended before its acknowledgement: ${seen}`);
      seen += Buffer.from(value).toString('utf8');
    }
    return { status: res.status, close: () => { ac.abort(); return reader.cancel().catch(() => {}); } };
  }

  it('subscriptions/listen: a filter over max_listen_uris is -32602 naming the limit', async () => {
    const uris = Array.from({ length: 60000 }, (_, i) => `switchboard://notes/n${i}`);
    const r = await post(TENANTS.a.token, listenMsg(40, uris), listenHeaders);
    assert.equal(r.json?.error?.code, -32602, r.text.slice(0, 300));
    assert.match(r.json.error.message, /max_listen_uris/);
    assert.match(r.json.error.message, /60000 URIs/);
    const ok = await openListen(TENANTS.a.token, 41);
    assert.ok(ok.close, JSON.stringify(ok.json));
    await ok.close();
  });

  it('resources/subscribe: a session holds at most max_listen_uris subscriptions, each URI at most 8 KiB', async () => {
    const init = await initialize(TENANTS.a.token);
    const sid = init.headers.get('mcp-session-id');
    const h = { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' };
    await post(TENANTS.a.token, { jsonrpc: '2.0', method: 'notifications/initialized' }, h);
    const subscribe = (id, uri) => post(TENANTS.a.token, { jsonrpc: '2.0', id, method: 'resources/subscribe', params: { uri } }, h);
    const huge = await subscribe(2, `switchboard://notes/${'u'.repeat(9000)}`);
    assert.equal(huge.json?.error?.code, -32602, huge.text.slice(0, 300));
    assert.match(huge.json.error.message, /^params\.uri: a URI of 9020 bytes; a subscription takes at most 8192$/);
    for (let i = 0; i < MAX_LISTEN_URIS; i++) {
      const r = await subscribe(10 + i, `switchboard://notes/s${i}`);
      assert.deepEqual(r.json?.result, {}, r.text);
    }
    const over = await subscribe(30, 'switchboard://notes/one-more');
    assert.equal(over.json?.error?.code, -32602, over.text);
    assert.match(over.json.error.message, /holds 10 subscriptions, the limit \(limits\.max_listen_uris\)/);
    // Again to one it holds is fine; after an unsubscribe there is room.
    assert.deepEqual((await subscribe(31, 'switchboard://notes/s0')).json?.result, {});
    const off = await post(TENANTS.a.token, { jsonrpc: '2.0', id: 32, method: 'resources/unsubscribe', params: { uri: 'switchboard://notes/s0' } }, h);
    assert.deepEqual(off.json?.result, {}, off.text);
    assert.deepEqual((await subscribe(33, 'switchboard://notes/one-more')).json?.result, {});
    const listen = await post(TENANTS.a.token, listenMsg(34, [`switchboard://notes/${'u'.repeat(9000)}`]), listenHeaders);
    assert.equal(listen.json?.error?.code, -32602, listen.text.slice(0, 300));
    assert.match(listen.json.error.message, /^params\.notifications\.resourceSubscriptions: a URI of 9020 bytes/);
    assert.equal(await del(TENANTS.a.token, sid), 204);
  });

  it('subscriptions/listen: a tenant holds at most max_listen_streams_per_tenant streams', async () => {
    const open = [];
    for (let i = 0; i < MAX_LISTEN_STREAMS; i++) {
      const s = await openListen(TENANTS.a.token, 50 + i);
      assert.ok(s.close, JSON.stringify(s.json));
      open.push(s);
    }
    const over = await openListen(TENANTS.a.token, 59);
    assert.equal(over.json?.error?.code, -31050, JSON.stringify(over.json));
    assert.match(over.json.error.message, /max_listen_streams_per_tenant/);
    // Another tenant is not affected.
    const b = await openListen(TENANTS.b.token, 60);
    assert.ok(b.close, JSON.stringify(b.json));
    await b.close();
    // Closing a stream frees its place once the server has noticed.
    await open.shift().close();
    await withDeadline((async () => {
      for (;;) {
        const s = await openListen(TENANTS.a.token, 61);
        if (s.close) { open.push(s); return; }
        assert.equal(s.json?.error?.code, -31050, JSON.stringify(s.json));
        await new Promise((res) => setTimeout(res, 50));
      }
    })(), DEADLINE_MS, 'a place freed by the closed stream');
    for (const s of open) await s.close();
  });

  it('GET /v1/events: a tenant holds at most max_listen_streams_per_tenant event streams', async () => {
    const events = url.replace(/\/mcp$/, '/v1/events');
    const openEvents = async (token) => {
      const ac = new AbortController();
      const res = await withDeadline(fetch(events, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: ac.signal }),
        DEADLINE_MS, 'GET /v1/events');
      if (res.status !== 200) return { status: res.status, headers: res.headers, json: JSON.parse(await res.text()) };
      const reader = res.body.getReader();
      return { status: 200, close: async () => { ac.abort(); await reader.cancel().catch(() => {}); } };
    };
    const open = [];
    for (let i = 0; i < MAX_LISTEN_STREAMS; i++) {
      const s = await openEvents(TENANTS.a.token);
      assert.equal(s.status, 200, JSON.stringify(s.json));
      open.push(s);
    }
    const over = await openEvents(TENANTS.a.token);
    assert.equal(over.status, 503, JSON.stringify(over.json));
    assert.equal(over.headers.get('retry-after'), '1');
    assert.equal(over.json.error.code, 'busy');
    assert.match(over.json.error.message, /^too many open event streams: this tenant's limit of 2 \(limits\.max_listen_streams_per_tenant\) is reached/);
    // Another tenant is not affected.
    const b = await openEvents(TENANTS.b.token);
    assert.equal(b.status, 200, JSON.stringify(b.json));
    await b.close();
    // Closing a stream frees its place once the server has noticed.
    await open.shift().close();
    await withDeadline((async () => {
      for (;;) {
        const s = await openEvents(TENANTS.a.token);
        if (s.status === 200) { open.push(s); return; }
        assert.equal(s.status, 503, JSON.stringify(s.json));
        await new Promise((res) => setTimeout(res, 50));
      }
    })(), DEADLINE_MS, 'a place freed by the closed stream');
    for (const s of open) await s.close();
  });
});
