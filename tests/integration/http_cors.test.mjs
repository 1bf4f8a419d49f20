// CORS for browser pages of an allowed Origin (server.allowed_origins): a
// preflight (OPTIONS with Access-Control-Request-Method) is answered 204
// without credentials, naming the methods and granting the headers asked
// for; every answer to a request of an allowed Origin, errors included,
// carries Access-Control-Allow-Origin for it, Vary: Origin and the headers
// a client must read (Mcp-Session-Id, ETag, Location, WWW-Authenticate...).
// Another Origin is refused as before (403, no CORS headers), and a
// request without an Origin gets none.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { DEADLINE_MS, withDeadline } from './lib/harness.mjs';
import { TENANTS, sampleInput, startTenantServer, stopClean } from './lib/contexts_common.mjs';

const APP = 'https://app.dealer.test';
const INIT = {
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'page', version: '1' } },
};

describe('CORS for allowed origins', () => {
  let server;
  before(async () => {
    server = await startTenantServer({ config: `server:\n  allowed_origins: [${APP}]` });
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  const send = async (method, path, { origin, token, body, headers = {} } = {}) => {
    const h = { ...headers };
    if (origin) h.Origin = origin;
    if (token) h.Authorization = `Bearer ${token}`;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const res = await withDeadline(fetch(server.base + path, {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
    }), DEADLINE_MS, `${method} ${path}`);
    return { status: res.status, headers: res.headers, text: await res.text() };
  };
  const exposes = (r, name) => (r.headers.get('access-control-expose-headers') || '').split(/,\s*/).includes(name);

  it('a preflight of an allowed origin is 204, without credentials, granting what it asks', async () => {
    for (const path of ['/mcp', '/v1/contexts', '/v1/contexts/some-id', '/agents/none/mcp']) {
      const r = await send('OPTIONS', path, {
        origin: APP,
        headers: { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type, mcp-protocol-version, mcp-param-region' },
      });
      assert.equal(r.status, 204, `${path}: ${r.text}`);
      assert.equal(r.headers.get('access-control-allow-origin'), APP, path);
      assert.match(r.headers.get('access-control-allow-methods'), /\bPOST\b.*\bPATCH\b.*\bDELETE\b/, path);
      assert.equal(r.headers.get('access-control-allow-headers'), 'authorization, content-type, mcp-protocol-version, mcp-param-region', path);
      assert.equal(r.headers.get('access-control-max-age'), '600', path);
      assert.equal(r.headers.get('vary'), 'Origin', path);
    }
    // Asking for nothing in particular: the headers switchboard reads.
    const plain = await send('OPTIONS', '/mcp', { origin: APP, headers: { 'Access-Control-Request-Method': 'GET' } });
    assert.equal(plain.status, 204, plain.text);
    assert.match(plain.headers.get('access-control-allow-headers'), /Authorization, Content-Type, .*Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID, If-Match/);
  });

  it('another origin is refused, preflight or not, with no CORS header', async () => {
    for (const [method, headers] of [['OPTIONS', { 'Access-Control-Request-Method': 'POST' }], ['GET', {}]]) {
      const r = await send(method, '/v1/contexts/x', { origin: 'https://evil.test', token: TENANTS.a.token, headers });
      assert.equal(r.status, 403, `${method}: ${r.text}`);
      assert.equal(r.headers.get('access-control-allow-origin'), null, method);
    }
  });

  it('MCP and REST answers to an allowed origin carry the CORS headers, errors too', async () => {
    const init = await send('POST', '/mcp', {
      origin: APP, token: TENANTS.a.token, body: INIT, headers: { Accept: 'application/json, text/event-stream' },
    });
    assert.equal(init.status, 200, init.text);
    assert.equal(init.headers.get('access-control-allow-origin'), APP);
    assert.equal(init.headers.get('vary'), 'Origin');
    assert.ok(exposes(init, 'Mcp-Session-Id'), init.headers.get('access-control-expose-headers'));
    const session = init.headers.get('mcp-session-id');
    assert.ok(session);
    // A notification: 202 with no body.
    const note = await send('POST', '/mcp', {
      origin: APP, token: TENANTS.a.token, body: { jsonrpc: '2.0', method: 'notifications/initialized' },
      headers: { 'Mcp-Session-Id': session, 'MCP-Protocol-Version': '2025-11-25' },
    });
    assert.equal(note.status, 202, note.text);
    assert.equal(note.headers.get('access-control-allow-origin'), APP);

    const made = await send('POST', '/v1/contexts', { origin: APP, token: TENANTS.a.token, body: sampleInput('cors') });
    assert.equal(made.status, 201, made.text);
    assert.equal(made.headers.get('access-control-allow-origin'), APP);
    for (const name of ['ETag', 'Location']) assert.ok(exposes(made, name), name);

    const refused = await send('GET', '/v1/contexts/x', { origin: APP });
    assert.equal(refused.status, 401, refused.text);
    assert.equal(refused.headers.get('access-control-allow-origin'), APP);
    assert.ok(exposes(refused, 'WWW-Authenticate'));
  });

  it('without an Origin nothing changes: no CORS headers, the shared answers unchanged', async () => {
    const init = await send('POST', '/mcp', { token: TENANTS.a.token, body: INIT, headers: { Accept: 'application/json, text/event-stream' } });
    assert.equal(init.status, 200, init.text);
    const note = await send('POST', '/mcp', {
      token: TENANTS.a.token, body: { jsonrpc: '2.0', method: 'notifications/initialized' },
      headers: { 'Mcp-Session-Id': init.headers.get('mcp-session-id'), 'MCP-Protocol-Version': '2025-11-25' },
    });
    assert.equal(note.status, 202, note.text);
    for (const r of [init, note]) {
      assert.equal(r.headers.get('access-control-allow-origin'), null);
      assert.equal(r.headers.get('access-control-expose-headers'), null);
    }
    // An OPTIONS that is no preflight is no preflight.
    const options = await send('OPTIONS', '/mcp', { token: TENANTS.a.token });
    assert.equal(options.status, 405, options.text);
  });
});
