// Streamable HTTP transport, bad input: every malformed or refused request
// gets the HTTP status and JSON-RPC error the spec asks for, and the server
// keeps serving a good modern tools/call afterwards. Plain fetch/http, no
// SDK, so the exact bytes and headers are under test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { DEADLINE_MS, MODERN_VERSION, startHttpServer, withDeadline } from './lib/harness.mjs';

const LIMIT = 1024; // limits.max_message_bytes in the temp config
const IDLE_S = 1; // sessions.idle_timeout_s in the temp config
const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
  'io.modelcontextprotocol/clientCapabilities': {},
};

function modernHeaders(method, name, version = MODERN_VERSION) {
  const h = { 'MCP-Protocol-Version': version, 'Mcp-Method': method };
  if (name !== undefined) h['Mcp-Name'] = name;
  return h;
}

function echoCall(id, text, meta = META) {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { text }, _meta: meta } };
}

describe('Streamable HTTP: negative cases', { timeout: 120000 }, () => {
  let server;
  let dir;
  let url;
  let nextId = 1000;

  async function send(method, body, headers = {}) {
    const init = {
      method,
      headers: { accept: 'application/json, text/event-stream', ...headers },
    };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      init.headers['content-type'] = 'application/json';
    }
    const res = await withDeadline(fetch(url, init), DEADLINE_MS, `${method} ${url}`);
    const text = await withDeadline(res.text(), DEADLINE_MS, 'response body');
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, text, json };
  }
  const post = (body, headers) => send('POST', body, headers);

  function assertError(r, status, code, what) {
    const show = `${what}: HTTP ${r.status} ${r.text}`;
    assert.equal(r.status, status, show);
    assert.match(r.headers.get('content-type') || '', /application\/json/, show);
    assert.equal(r.json?.jsonrpc, '2.0', show);
    assert.equal(r.json?.error?.code, code, show);
    assert.equal(typeof r.json.error.message, 'string', show);
    assert.ok(r.json.error.message.length > 0, show);
    assert.equal(r.json.result, undefined, show);
  }

  /** An error that cannot name a request carries no id (or a null one). */
  function assertNoId(r) {
    assert.ok(r.json.id === undefined || r.json.id === null, `no id expected: ${r.text}`);
  }

  /** The server still answers a good modern tools/call echo. */
  async function echoStillWorks() {
    const id = nextId++;
    const text = `still ok ${id}`;
    const r = await post(echoCall(id, text), modernHeaders('tools/call', 'echo'));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, id);
    assert.equal(r.json.result?.structuredContent?.text, text, r.text);
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sb-http-neg-'));
    const cfg = path.join(dir, 'switchboard.yaml');
    writeFileSync(cfg, `limits:\n  max_message_bytes: ${LIMIT}\nsessions:\n  idle_timeout_s: ${IDLE_S}\n`);
    server = await startHttpServer({ extraArgs: ['--config', cfg, '--log-level', 'debug'] });
    url = server.url;
  });

  after(async () => {
    if (server) {
      const { code, signal } = await server.stop();
      rmSync(dir, { recursive: true, force: true });
      // A clean stop closes every connection and session (ASan builds
      // would report leaks as a non-zero exit here).
      assert.equal(signal, null, server.stderr);
      assert.equal(code, 0, server.stderr);
    }
  });

  it('answers a good modern tools/call with application/json', async () => {
    await echoStillWorks();
  });

  it('headers larger than limits.connection_memory_bytes: 431, and the server goes on', async () => {
    const fits = await post(echoCall(nextId++, 'fits'), { ...modernHeaders('tools/call', 'echo'), 'x-big': 'a'.repeat(8000) });
    assert.equal(fits.status, 200, fits.text);
    const big = await post(echoCall(nextId++, 'big'), { ...modernHeaders('tools/call', 'echo'), 'x-big': 'a'.repeat(20000) });
    assert.equal(big.status, 431, big.text);
    assert.match(big.text, /header was too big/);
    const after = await post(echoCall(nextId++, 'after'), modernHeaders('tools/call', 'echo'));
    assert.equal(after.status, 200, after.text);
  });

  it('malformed JSON: 400 with -32700 and no id', async () => {
    const r = await post('{"jsonrpc":"2.0","id":1,"method":', modernHeaders('tools/call', 'echo'));
    assertError(r, 400, -32700, 'malformed JSON');
    assertNoId(r);
    await echoStillWorks();
  });

  it('empty body: 400 with -32700', async () => {
    const r = await post('', modernHeaders('tools/call', 'echo'));
    assertError(r, 400, -32700, 'empty body');
    await echoStillWorks();
  });

  it('wrong jsonrpc value: 400 with -32600', async () => {
    const msg = { ...echoCall(7, 'x'), jsonrpc: '1.0' };
    const r = await post(msg, modernHeaders('tools/call', 'echo'));
    assertError(r, 400, -32600, 'jsonrpc 1.0');
    assert.match(r.json.error.message, /jsonrpc/);
    // Without _meta (no era of its own) the answer is the same.
    const r2 = await post({ jsonrpc: '1.0', id: 8, method: 'tools/list' });
    assertError(r2, 400, -32600, 'jsonrpc 1.0 without _meta');
    await echoStillWorks();
  });

  it('missing method: 400 with -32600', async () => {
    const r = await post({ jsonrpc: '2.0', id: 9, params: {} });
    assertError(r, 400, -32600, 'missing method');
    assert.match(r.json.error.message, /method/);
    await echoStillWorks();
  });

  it('a top-level JSON value that is not a message: 400 with -32600', async () => {
    const r = await post('"just a string"');
    assertError(r, 400, -32600, 'string body');
    await echoStillWorks();
  });

  it(`oversized body (Content-Length over ${LIMIT}): 413 naming the limit`, async () => {
    const big = echoCall(10, 'x'.repeat(LIMIT * 2));
    const r = await post(big, modernHeaders('tools/call', 'echo'));
    assertError(r, 413, -32600, 'oversized body');
    assert.match(r.json.error.message, new RegExp(String(LIMIT)));
    assert.match(r.json.error.message, /max_message_bytes/);
    await echoStillWorks();
  });

  it('oversized chunked body (no Content-Length): 413', async () => {
    const u = new URL(url);
    const { status, body } = await withDeadline(new Promise((resolve, reject) => {
      const req = http.request({
        host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
        headers: { 'content-type': 'application/json', ...modernHeaders('tools/call', 'echo') },
      }, (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (d) => { data += d; }).on('end', () => resolve({ status: res.statusCode, body: data }));
      });
      req.on('error', reject);
      const text = JSON.stringify(echoCall(11, 'y'.repeat(LIMIT * 3)));
      // Several chunks so the limit is crossed part-way through.
      for (let i = 0; i < text.length; i += 500) req.write(text.slice(i, i + 500));
      req.end();
    }), DEADLINE_MS, 'chunked upload');
    assert.equal(status, 413, body);
    assert.equal(JSON.parse(body).error.code, -32600);
    await echoStillWorks();
  });

  it('a body just under the limit is accepted', async () => {
    const base = JSON.stringify(echoCall(12, '')).length;
    const text = 'z'.repeat(LIMIT - base - 1);
    const r = await post(echoCall(12, text), modernHeaders('tools/call', 'echo'));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.result.structuredContent.text, text);
  });

  it('unsupported protocol version: 400 with -32022 listing the supported ones', async () => {
    const meta = { ...META, 'io.modelcontextprotocol/protocolVersion': '1999-01-01' };
    const r = await post(echoCall(13, 'x', meta), modernHeaders('tools/call', 'echo', '1999-01-01'));
    assertError(r, 400, -32022, 'unsupported _meta version');
    const supported = r.json.error.data?.supported;
    assert.ok(Array.isArray(supported), r.text);
    assert.ok(supported.includes(MODERN_VERSION), r.text);
    assert.ok(!supported.includes('1999-01-01'), r.text);
    // every version spoken here, legacy ones too, as server/discover says
    assert.ok(supported.includes('2025-11-25'), r.text);

    // Which headers a request needs depends on its version: one not
    // spoken here is answered as such even without the headers.
    const bare = await post(echoCall(13, 'x', meta), {});
    assertError(bare, 400, -32022, 'unsupported _meta version, no headers');
    assert.equal(bare.json.error.data?.requested, '1999-01-01', bare.text);
    // ...but a header naming another version is a mismatch, said first
    // (the header MUST match the body's field, whatever that says).
    const differs = await post(echoCall(13, 'x', meta), modernHeaders('tools/call', 'echo'));
    assertError(differs, 400, -32020, 'a header version that differs from an unsupported body version');
    assert.match(differs.json.error.message, new RegExp(`MCP-Protocol-Version header value '${MODERN_VERSION}' does not match body value '1999-01-01'`), differs.text);
    const notString = await post(echoCall(13, 'x', { ...META, 'io.modelcontextprotocol/protocolVersion': 5 }), {});
    assertError(notString, 400, -32602, 'a version that is not a string');
    assert.match(notString.json.error.message, /protocolVersion"\]: must be a string/, notString.text);
    // a legacy version is spoken after initialize, not in a _meta envelope
    const legacyMeta = { ...META, 'io.modelcontextprotocol/protocolVersion': '2025-11-25' };
    const inMeta = await post(echoCall(13, 'x', legacyMeta), modernHeaders('tools/call', 'echo', '2025-11-25'));
    assertError(inMeta, 400, -32022, 'a legacy version in _meta');
    assert.match(inMeta.json.error.message, /2025-11-25 is spoken in a session opened with initialize/, inMeta.text);

    // A legacy client announcing an unknown MCP-Protocol-Version header.
    const init = { jsonrpc: '2.0', id: 14, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } };
    const r2 = await post(init, { 'MCP-Protocol-Version': '1999-01-01' });
    assertError(r2, 400, -32022, 'unsupported MCP-Protocol-Version header');
    assert.ok(r2.json.error.data?.supported?.includes('2025-11-25'), r2.text);
    assert.equal(r2.headers.get('mcp-session-id'), null, 'no session for a refused initialize');
    await echoStillWorks();
  });

  it('unknown session id: 404 (POST, GET and DELETE)', async () => {
    const h = { 'Mcp-Session-Id': 'deadbeefdeadbeefdeadbeefdeadbeef', 'MCP-Protocol-Version': '2025-11-25' };
    const r = await post({ jsonrpc: '2.0', id: 15, method: 'tools/list' }, h);
    assertError(r, 404, -32001, 'unknown session POST');
    assert.equal(r.json.id, 15);
    const g = await send('GET', undefined, { ...h, accept: 'text/event-stream' });
    assert.equal(g.status, 404, g.text);
    const d = await send('DELETE', undefined, h);
    assert.equal(d.status, 404, d.text);
    await echoStillWorks();
  });

  it('disallowed Origin: 403 with a JSON-RPC error without id; loopback origins pass', async () => {
    const r = await post(echoCall(16, 'x'), { ...modernHeaders('tools/call', 'echo'), Origin: 'http://evil.example' });
    assertError(r, 403, -32600, 'evil origin');
    assertNoId(r);
    assert.match(r.json.error.message, /evil\.example/);
    const r2 = await post(echoCall(17, 'x'), { ...modernHeaders('tools/call', 'echo'), Origin: 'http://localhost.evil.example' });
    assert.equal(r2.status, 403, r2.text);
    // With no allowed_origins configured, loopback origins are accepted.
    for (const origin of ['http://localhost:5173', 'http://127.0.0.1', 'https://[::1]:8443']) {
      const ok = await post(echoCall(18, origin), { ...modernHeaders('tools/call', 'echo'), Origin: origin });
      assert.equal(ok.status, 200, `${origin}: ${ok.text}`);
      assert.equal(ok.json.result.structuredContent.text, origin);
    }
    await echoStillWorks();
  });

  it('mismatched or missing Mcp-Method / Mcp-Name / MCP-Protocol-Version: 400 with -32020', async () => {
    const wrongMethod = await post(echoCall(19, 'x'), modernHeaders('tools/list', 'echo'));
    assertError(wrongMethod, 400, -32020, 'Mcp-Method mismatch');
    assert.equal(wrongMethod.json.id, 19);
    assert.match(wrongMethod.json.error.message, /Mcp-Method/i);

    const wrongName = await post(echoCall(20, 'x'), modernHeaders('tools/call', 'fail'));
    assertError(wrongName, 400, -32020, 'Mcp-Name mismatch');

    const noName = await post(echoCall(21, 'x'), modernHeaders('tools/call', undefined));
    assertError(noName, 400, -32020, 'Mcp-Name missing');

    const noVersion = await post(echoCall(22, 'x'), { 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo' });
    assertError(noVersion, 400, -32020, 'MCP-Protocol-Version missing');

    const b64 = Buffer.from('echo').toString('base64');
    const encoded = await post(echoCall(23, 'b64'), modernHeaders('tools/call', `=?base64?${b64}?=`));
    assert.equal(encoded.status, 200, `base64 Mcp-Name: ${encoded.text}`);
    await echoStillWorks();
  });

  it('a request without a session or _meta protocolVersion: 400 with -32602 naming both ways in', async () => {
    // Session-less, only 2026-07-28 applies, and there a request missing a
    // required _meta field MUST be -32602 with 400 (basic/index.mdx).
    const cases = [
      ['legacy header, no _meta', { jsonrpc: '2.0', id: 24, method: 'tools/list', params: {} }, { 'MCP-Protocol-Version': '2025-11-25' }],
      ['no header, no params', { jsonrpc: '2.0', id: 240, method: 'tools/list' }, {}],
      ['_meta without protocolVersion', { jsonrpc: '2.0', id: 241, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/clientCapabilities': {} } } }, {}],
      ['modern header, no _meta', { jsonrpc: '2.0', id: 242, method: 'tools/list', params: {} }, modernHeaders('tools/list')],
    ];
    for (const [what, msg, headers] of cases) {
      const r = await post(msg, headers);
      assertError(r, 400, -32602, what);
      assert.equal(r.json.id, msg.id, what);
      assert.match(r.json.error.message, /initialize/, what);
      assert.match(r.json.error.message, /_meta/, what);
    }
    const g = await send('GET', undefined, { accept: 'text/event-stream' });
    assert.equal(g.status, 405, `GET without a session: ${g.text}`);
    await echoStillWorks();
  });

  it('an idle legacy session expires: its id then gets 404', async () => {
    const init = { jsonrpc: '2.0', id: 30, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'idle', version: '1' } } };
    const r = await post(init);
    assert.equal(r.status, 200, r.text);
    const sid = r.headers.get('mcp-session-id');
    assert.ok(sid, 'initialize returned Mcp-Session-Id');
    const h = { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' };
    const live = await post({ jsonrpc: '2.0', id: 31, method: 'ping' }, h);
    assert.equal(live.status, 200, live.text);
    // Wait (with a deadline) for the server to report the expiry; polling
    // the session itself would keep it alive.
    const t0 = Date.now();
    await withDeadline((async () => {
      while (!server.stderr.includes(`session ${sid} expired`)) await new Promise((res) => setTimeout(res, 50));
    })(), IDLE_S * 1000 + DEADLINE_MS, 'the session expiry log line');
    assert.ok(Date.now() - t0 >= IDLE_S * 1000 - 100, 'not expired before its idle timeout');
    const gone = await post({ jsonrpc: '2.0', id: 32, method: 'ping' }, h);
    assertError(gone, 404, -32001, 'expired session');
    await echoStillWorks();
  });

  it('a 2025-03-26 batch of invalid members: one application/json array of errors with id null', async () => {
    const init = { jsonrpc: '2.0', id: 33, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'batch', version: '1' } } };
    const r = await post(init);
    assert.equal(r.status, 200, r.text);
    const sid = r.headers.get('mcp-session-id');
    assert.ok(sid, r.text);
    const h = { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-03-26' };
    for (const [body, n] of [['[1]', 1], ['[{}]', 1], ['[[]]', 1], ['[1,{},[]]', 3]]) {
      // Before: an SSE stream with one unwrapped error, then heartbeats
      // forever (the deadline on the body catches that).
      const b = await post(body, h);
      assert.match(b.headers.get('content-type') || '', /application\/json/, `${body}: ${b.text}`);
      assert.ok(Array.isArray(b.json), `${body}: ${b.text}`);
      assert.equal(b.json.length, n, `${body}: ${b.text}`);
      for (const e of b.json) {
        assert.equal(e.jsonrpc, '2.0', b.text);
        assert.equal(e.id, null, b.text);
        assert.equal(e.error?.code, -32600, b.text);
      }
    }
    // A batch whose one request the batch itself cancels has nothing to
    // answer (JSON-RPC sends no empty array): 202, not a POST left open.
    const call = { jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'slow_count', arguments: { steps: 50, interval_ms: 200 } } };
    const cancel = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c1', reason: 'changed my mind' } };
    for (const accept of ['application/json, text/event-stream', 'application/json']) {
      const c = await post(JSON.stringify([call, cancel]), { ...h, Accept: accept });
      assert.equal(c.status, 202, `${accept}: ${c.text}`);
      assert.equal(c.text, '', accept);
    }
    // With another request beside it, that one's answer alone.
    const mixed = await post(JSON.stringify([{ ...call, id: 'c2' }, { jsonrpc: '2.0', id: 'p', method: 'ping' },
      { ...cancel, params: { requestId: 'c2' } }]), h);
    assert.equal(mixed.status, 200, mixed.text);
    assert.deepEqual(mixed.json, [{ jsonrpc: '2.0', id: 'p', result: {} }]);
    const d = await send('DELETE', undefined, h);
    assert.equal(d.status, 204, d.text);
    // initialize inside a batch (2025-03-26 forbids it) was told to "send
    // initialize first"; it is told what is wrong.
    const batched = await post(JSON.stringify([init, { jsonrpc: '2.0', id: 34, method: 'ping' }]), { 'MCP-Protocol-Version': '2025-03-26' });
    assert.equal(batched.status, 400, batched.text);
    assert.equal(batched.json.error.code, -32600, batched.text);
    assert.match(batched.json.error.message, /initialize must not be part of a JSON-RPC batch/);
    assert.equal(batched.headers.get('mcp-session-id'), null, 'no session was opened');
    await echoStillWorks();
  });

  it('wrong path is 404 (REST-shaped off MCP paths), other methods 405 with Allow', async () => {
    // A path of no MCP client's is answered in the REST API's shape, naming
    // where things are; a miss where MCP clients go, in JSON-RPC's.
    for (const path of ['/other', '/v1/nope', '/v1/contexts-typo/x']) {
      const res = await withDeadline(fetch(new URL(path, url), { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } }),
        DEADLINE_MS, `POST ${path}`);
      assert.equal(res.status, 404, path);
      const body = await res.json();
      assert.equal(body.jsonrpc, undefined, path);
      assert.equal(body.error.code, 'not_found', path);
      assert.match(body.error.message, /^nothing at \/\S+ \(the REST API is under \/v1\/: contexts, runs, events, agents; MCP is at \/mcp/, path);
    }
    for (const path of ['/mcp/x', '/agents/none/mcp', '/servers/none/mcp']) {
      const res = await withDeadline(fetch(new URL(path, url), { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } }),
        DEADLINE_MS, `POST ${path}`);
      assert.equal(res.status, 404, path);
      const body = await res.json();
      assert.equal(body.jsonrpc, '2.0', path);
      assert.match(body.error.message, /^no MCP endpoint at /, path);
    }
    const put = await send('PUT', '{}');
    assert.equal(put.status, 405, put.text);
    assert.match(put.headers.get('allow') || '', /POST/);
    await echoStillWorks();
  });

  it('a modern notification is accepted with 202 and no body', async () => {
    const r = await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1, _meta: META } },
      { ...modernHeaders('notifications/cancelled') });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.text, '');
    await echoStillWorks();
  });

  it('a request sent without an id is 400 with -32600 naming its method, not a 202 for a call never served', async () => {
    // Shaped as a notification, it was acknowledged 202 and never served:
    // the client took the call (or an initialize) for accepted.
    const write = { jsonrpc: '2.0', method: 'tools/call', params: { name: 'note_write', arguments: { name: 'no-id', text: 'x' }, _meta: META } };
    const r = await post(write, modernHeaders('tools/call', 'note_write'));
    assertError(r, 400, -32600, 'tools/call without an id');
    assertNoId(r);
    assert.match(r.json.error.message, /^tools\/call: a request needs an id/);
    assert.equal(r.json.error.data?.method, 'tools/call');
    const read = await post({ jsonrpc: '2.0', id: 26, method: 'resources/read', params: { uri: 'switchboard://notes/no-id', _meta: META } },
      modernHeaders('resources/read', 'switchboard://notes/no-id'));
    assert.equal(read.json?.error?.code, -32602, `the note was not written: ${read.text}`);
    // A legacy initialize without an id opens no session.
    const init = await post({ jsonrpc: '2.0', method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
    assertError(init, 400, -32600, 'initialize without an id');
    assert.match(init.json.error.message, /^initialize: a request needs an id/);
    assert.equal(init.headers.get('mcp-session-id'), null);
    await echoStillWorks();
  });

  it('an unknown method is 404 with -32601 (modern)', async () => {
    const r = await post({ jsonrpc: '2.0', id: 25, method: 'no/such', params: { _meta: META } }, modernHeaders('no/such'));
    assertError(r, 404, -32601, 'unknown method');
    await echoStillWorks();
  });

  it('a client that drops its SSE stream mid-call gets the call cancelled, and the server carries on', async () => {
    const ac = new AbortController();
    const body = {
      jsonrpc: '2.0', id: 26, method: 'tools/call',
      params: { name: 'slow_count', arguments: { steps: 1000, interval_ms: 20 }, _meta: { ...META, progressToken: 'p26' } },
    };
    const res = await withDeadline(fetch(url, {
      method: 'POST', signal: ac.signal, body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...modernHeaders('tools/call', 'slow_count') },
    }), DEADLINE_MS, 'slow_count POST');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    const reader = res.body.getReader();
    let seen = '';
    while (!seen.includes('notifications/progress')) {
      const { value, done } = await withDeadline(reader.read(), DEADLINE_MS, 'first progress event');
      assert.ok(!done, 'stream ended before any progress');
      seen += Buffer.from(value).toString('utf8');
    }
    assert.match(seen, /^data: /m);
    const cancelsBefore = server.stderr.split('cancelling its call').length;
    ac.abort();
    await reader.cancel().catch(() => {});
    // Closing the response stream is the modern cancellation signal: the
    // transport notices while the call is still running and cancels it.
    await withDeadline((async () => {
      while (server.stderr.split('cancelling its call').length <= cancelsBefore) await new Promise((res) => setTimeout(res, 20));
    })(), DEADLINE_MS, 'the server to cancel the dropped call');
    // Many quick requests right after: the aborted call's writes must not
    // land anywhere (or crash the server).
    for (let i = 0; i < 20; i++) await echoStillWorks();
  });
});

// 2025-11-25: a client cancels a request with notifications/cancelled,
// sent on another POST. The cancelled request's own POST must still end
// (its SSE stream closed, with no response for the request), not be held
// until the client gives up, pinning the connection and the session.
describe('a legacy request cancelled by notifications/cancelled', () => {
  let server;
  before(async () => { server = await startHttpServer(); });
  after(async () => {
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  it('has its POST ended, with no response for it', async () => {
    const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const init = await withDeadline(fetch(server.url, {
      method: 'POST', headers: base,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
    }), DEADLINE_MS, 'initialize');
    const sid = init.headers.get('mcp-session-id');
    await init.text();
    const headers = { ...base, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' };
    const note = (body) => withDeadline(fetch(server.url, { method: 'POST', headers, body: JSON.stringify(body) }), DEADLINE_MS, body.method);
    assert.equal((await note({ jsonrpc: '2.0', method: 'notifications/initialized' })).status, 202);
    const call = await withDeadline(fetch(server.url, {
      method: 'POST', headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'slow_count', arguments: { steps: 50, interval_ms: 200 }, _meta: { progressToken: 'p' } } }),
    }), DEADLINE_MS, 'tools/call');
    assert.equal(call.status, 200);
    const reader = call.body.getReader();
    const decoder = new TextDecoder();
    let seen = '';
    // In progress once its first progress notification is in.
    while (!seen.includes('notifications/progress')) {
      const { value, done } = await withDeadline(reader.read(), DEADLINE_MS, 'the first progress notification');
      assert.equal(done, false, `the stream ended before any progress: ${seen}`);
      seen += decoder.decode(value);
    }
    const cancelled = await note({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7, reason: 'user' } });
    assert.equal(cancelled.status, 202);
    for (;;) {
      const { value, done } = await withDeadline(reader.read(), DEADLINE_MS, "the cancelled call's stream to end");
      if (done) break;
      seen += decoder.decode(value);
    }
    assert.doesNotMatch(seen, /"id":\s*7/, 'no response for the cancelled request');
  });
});
