// Streamable HTTP against hostile connections, on raw sockets (node:net) so
// the exact bytes and their timing are under test: request framing (RFC
// 9112 6.1), a chunked body past the size limit, slowloris (headers and
// bodies trickled in, a crowd of such connections while a caller with a
// token keeps being served, the per-address cap), and clients that stop
// reading a plain answer or an SSE stream. Deadlines are configured small; every wait is on an event
// with a deadline, never a fixed sleep.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';

import { DEADLINE_MS, EventLog, MODERN_VERSION, withDeadline } from './lib/harness.mjs';
import { TENANTS, startTenantServer, stopClean } from './lib/contexts_common.mjs';

const LIMIT = 16384; // limits.max_message_bytes
const HEADER_S = 2; // limits.header_timeout_s
const BODY_S = 2; // limits.body_timeout_s
const SEND_S = 2; // limits.send_timeout_s
const MAX_CONNECTIONS = 200;
const RESERVE = 20;
const PER_ADDRESS = 60;
const STREAM_BUFFER = 65536; // limits.max_stream_buffer_bytes
const TOKEN = TENANTS.a.token;
const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
  'io.modelcontextprotocol/clientCapabilities': {},
};

/**
 * A raw TCP connection to the server: what it received, when it ended,
 * and how (`end` for a FIN, `error` with its code for a reset).
 */
class Raw {
  constructor(port, { localAddress } = {}) {
    this.data = '';
    this.events = new EventLog('raw');
    this.openedAt = Date.now();
    this.socket = net.connect({ port, host: '127.0.0.1', localAddress });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => this.events.push({ type: 'connect' }));
    this.socket.on('data', (d) => { this.data += d.toString('latin1'); this.events.push({ type: 'data' }); });
    this.socket.on('end', () => this.events.push({ type: 'end' }));
    this.socket.on('error', (e) => { this.error = e.code; this.events.push({ type: 'error', code: e.code }); });
    this.socket.on('close', () => { this.closedAt = Date.now(); this.events.push({ type: 'close' }); });
    this.connected = this.events.waitFor((e) => e.type === 'connect' || e.type === 'close', { what: 'connect' });
  }
  get closed() { return this.closedAt !== undefined; }
  write(text) { if (!this.closed && !this.socket.destroyed) this.socket.write(text); }
  waitClosed(timeoutMs = DEADLINE_MS) { return this.events.waitFor((e) => e.type === 'close', { timeoutMs, what: 'the server to close the connection' }); }
  waitData(pred, what, timeoutMs = DEADLINE_MS) {
    return this.events.waitFor(() => pred(this.data), { timeoutMs, what }).then(() => this.data);
  }
  /** Our writes fail once the server has reset the connection. */
  waitReset() {
    return withDeadline((async () => {
      while (!this.error && !this.closed) {
        this.write('x');
        await new Promise((res) => setTimeout(res, 50));
      }
    })(), DEADLINE_MS, 'the connection to be reset');
  }
  destroy() { this.socket.destroy(); }
}

describe('Streamable HTTP: hostile connections', { timeout: 120000 }, () => {
  let server;
  let port;

  before(async () => {
    server = await startTenantServer({
      extraArgs: ['--log-level', 'debug'],
      config: [
        'limits:',
        `  max_message_bytes: ${LIMIT}`,
        `  header_timeout_s: ${HEADER_S}`,
        `  body_timeout_s: ${BODY_S}`,
        `  send_timeout_s: ${SEND_S}`,
        `  max_connections: ${MAX_CONNECTIONS}`,
        `  connection_reserve: ${RESERVE}`,
        `  max_connections_per_address: ${PER_ADDRESS}`,
        `  max_stream_buffer_bytes: ${STREAM_BUFFER}`,
      ].join('\n'),
    });
    port = server.port;
  });

  after(async () => {
    if (server) await stopClean(server);
  });

  /** A modern echo over a new connection (agent: false), with the token. */
  function echoOnNewConnection(text) {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text }, _meta: META } });
    return withDeadline(new Promise((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port, path: '/mcp', method: 'POST', agent: false,
        headers: {
          'content-type': 'application/json', accept: 'application/json, text/event-stream',
          authorization: `Bearer ${TOKEN}`, 'content-length': Buffer.byteLength(body),
          'MCP-Protocol-Version': MODERN_VERSION, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo',
        },
      }, (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (d) => { data += d; }).on('end', () => resolve({ status: res.statusCode, json: JSON.parse(data) }));
      });
      req.on('error', reject);
      req.end(body);
    }), DEADLINE_MS, `echo ${text}`);
  }

  const statusOf = (data) => Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1]);

  /** How often `line` is in the server's log so far. */
  const logged = (line) => server.stderr.split(line).length - 1;
  /** Wait for `line` to be logged once more than `before` times. */
  const waitLogged = (line, before, timeoutMs, what) => withDeadline((async () => {
    while (logged(line) <= before) await new Promise((res) => setTimeout(res, 20));
  })(), timeoutMs, what);

  it('Content-Length with Transfer-Encoding is 400 at once, and the connection closes', async () => {
    const c = new Raw(port);
    await c.connected;
    c.write(`POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\n` +
      'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n');
    // Before: read as chunked, waiting for chunks; no answer at all.
    const data = await c.waitData((d) => /\r\n\r\n/.test(d), 'an answer', (HEADER_S * 1000) / 2);
    assert.equal(statusOf(data), 400, data);
    assert.match(data, /Connection: close/i, data);
    assert.match(data, /Transfer-Encoding/);
    await c.waitClosed();
  });

  it('a header that may appear once, sent twice, is 400 naming it, whichever token or version comes first', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'twice' }, _meta: META } });
    const base = {
      Authorization: [`Bearer ${TOKEN}`], 'MCP-Protocol-Version': [MODERN_VERSION], 'Mcp-Method': ['tools/call'], 'Mcp-Name': ['echo'],
    };
    const cases = [
      // Two tenants' tokens: which one is the caller? (The first one was.)
      ['Authorization', `Bearer ${TENANTS.b.token}`],
      ['MCP-Protocol-Version', '2025-06-18'],
      ['Mcp-Method', 'tools/list'],
      ['Mcp-Name', 'fail'],
      ['Mcp-Session-Id', 'abc'],
      ['Content-Type', 'text/plain'],
      // A proxy in front may route by another Host than the one read.
      ['Host', 'elsewhere.example'],
      // A tool parameter mirrored into a header: which value was checked?
      ['Mcp-Param-Region', 'eu-west1'],
    ];
    for (const [name, second] of cases) {
      const headers = { ...base, 'Content-Type': ['application/json'] };
      headers[name] = [...(headers[name] || [`${second}-first`]), second];
      const lines = Object.entries(headers).flatMap(([k, vs]) => vs.map((v) => `${k}: ${v}\r\n`)).join('');
      const c = new Raw(port);
      await c.connected;
      c.write(`POST /mcp HTTP/1.1\r\nHost: x\r\n${lines}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      const data = await c.waitData((d) => /\r\n\r\n\{.*\}$/s.test(d), `the answer to two ${name} headers`);
      assert.equal(statusOf(data), 400, `${name} twice: ${data}`);
      assert.match(data, new RegExp(`${name}: sent more than once`, 'i'), data);
      c.destroy();
    }
    // Once each, the same request is served.
    assert.equal((await echoOnNewConnection('once')).status, 200);
  });

  it('a query parameter given twice is 400 naming it, in the shape of the route', async () => {
    // Before: MHD handed out the first; a proxy that read the second saw
    // another request than the one answered.
    const headers = { Authorization: `Bearer ${TOKEN}` };
    const twice = await fetch(`http://127.0.0.1:${port}/v1/runs?limit=1&status=running&limit=500`, { headers });
    assert.equal(twice.status, 400);
    const body = await twice.json();
    assert.equal(body.error.code, 'bad_request', JSON.stringify(body));
    assert.match(body.error.message, /query parameter "limit": given more than once/);
    const once = await fetch(`http://127.0.0.1:${port}/v1/runs?limit=1&status=running`, { headers });
    assert.equal(once.status, 200, await once.text());
  });

  it('a query larger than a connection\'s memory takes: 431 at once, naming the limit', async () => {
    const c = new Raw(port);
    await c.connected;
    const query = Array.from({ length: 600 }, (_, i) => `a${i}=b${i}`).join('&');
    c.write(`GET /v1/contexts?${query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
    // Before: microhttpd gave up on it (its pool full) with no answer it
    // could send, and the client waited for the header deadline.
    const data = await c.waitData((d) => /\r\n\r\n.*\}\}/s.test(d), 'an answer', (HEADER_S * 1000) / 2);
    assert.equal(statusOf(data), 431, data);
    assert.match(data, /"code":"query_too_large","message":"the request line \(\d+ bytes\) and its 600 query parameters need \d+ bytes of the connection's memory; at most 7168 \(half of limits.connection_memory_bytes, 64 bytes a parameter\)"/);
    await c.waitClosed();
    // Fewer parameters, but long enough to take the pool as well (before
    // this was weighed by count alone: 99 of 80 bytes went unanswered).
    const long = new Raw(port);
    await long.connected;
    const values = Array.from({ length: 99 }, (_, i) => `p${i}=${'v'.repeat(80)}`).join('&');
    long.write(`GET /v1/runs?${values} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
    const said = await long.waitData((d) => /\r\n\r\n.*\}\}/s.test(d), 'an answer', (HEADER_S * 1000) / 2);
    assert.equal(statusOf(said), 431, said);
    assert.match(said, /"code":"query_too_large"/);
    // A request answered 431 is not run. Before, a long query that still
    // fit microhttpd's pool was answered 431 and then published its event
    // (or started its run) all the same.
    const publish = async (query) => {
      const body = JSON.stringify({ type: 'qa.refused', data: {} });
      const raw = new Raw(port);
      await raw.connected;
      raw.write(`POST /v1/events${query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      await raw.waitClosed();
      return raw.data;
    };
    const first = await publish('');
    assert.equal(statusOf(first), 201, first);
    const refused = await publish(`?x=${'a'.repeat(7100)}`);
    assert.equal(statusOf(refused), 431, refused);
    const next = await publish('');
    assert.equal(statusOf(next), 201, next);
    const seqOf = (d) => JSON.parse(d.slice(d.indexOf('\r\n\r\n') + 4)).seq;
    assert.equal(seqOf(next), seqOf(first) + 1, 'the refused request published nothing');
    assert.equal((await echoOnNewConnection('after the query')).json.result.content[0].text, 'after the query');
  });

  it('an HTTP/1.1 request without Host is 400 naming it (RFC 9112 3.2); HTTP/1.0 needs none', async () => {
    for (const target of ['/mcp', '/v1/runs']) {
      const c = new Raw(port);
      await c.connected;
      c.write(`GET ${target} HTTP/1.1\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`);
      const data = await c.waitData((d) => /\r\n\r\n\{.*\}$/s.test(d), `the answer to ${target} without Host`);
      assert.equal(statusOf(data), 400, data);
      assert.match(data, /Host: required in an HTTP\/1\.1 request \(RFC 9112 3\.2\)/, data);
      c.destroy();
    }
    const c = new Raw(port);
    await c.connected;
    c.write(`GET /v1/runs HTTP/1.0\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
    const data = await c.waitData((d) => /\r\n\r\n\{.*\}$/s.test(d), 'the answer to HTTP/1.0 without Host');
    assert.equal(statusOf(data), 200, data);
    c.destroy();
  });

  it('an unknown transfer coding is answered at once (400, or 501 for a coding before chunked)', async () => {
    for (const [te, status] of [['gzip', 400], ['chunked, gzip', 400], ['gzip, chunked', 501], ['identity', 400]]) {
      const c = new Raw(port);
      await c.connected;
      const t0 = Date.now();
      c.write(`POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nTransfer-Encoding: ${te}\r\n\r\n{}`);
      // Before: MHD read the body until the connection closed.
      const data = await c.waitData((d) => /\r\n\r\n/.test(d), `an answer to Transfer-Encoding: ${te}`, (HEADER_S * 1000) / 2);
      assert.equal(statusOf(data), status, `${te}: ${data}`);
      assert.ok(Date.now() - t0 < 1000, `${te}: answered at once`);
      await c.waitClosed();
    }
  });

  it('a chunked body past the size limit is answered 413 as soon as it passes, and the connection closes', async () => {
    const c = new Raw(port);
    await c.connected;
    c.write(`POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\n` +
      `Transfer-Encoding: chunked\r\nMCP-Protocol-Version: ${MODERN_VERSION}\r\n\r\n`);
    const chunk = 'a'.repeat(4096);
    for (let i = 0; i < (LIMIT / chunk.length) + 2; i++) c.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    // The body never ends (no last chunk): before, the 413 waited for it.
    const data = await c.waitData((d) => /\r\n\r\n\{.*\}$/s.test(d), 'the 413', (BODY_S * 1000) / 2);
    assert.equal(statusOf(data), 413, data);
    assert.match(data, /max_message_bytes/);
    assert.match(data, /Connection: close/i);
    await c.waitClosed();
    // The server carries on.
    assert.equal((await echoOnNewConnection('after 413')).status, 200);
  });

  it('headers trickled in are cut off at limits.header_timeout_s, bodies at body_timeout_s', async () => {
    const slow = new Raw(port);
    await slow.connected;
    slow.write('POST /mcp HTTP/1.1\r\nHost: x\r\n');
    // One byte every 100 ms: each resets an idle timer, not a deadline.
    const trickle = setInterval(() => slow.write('X-Slow: a\r\n'), 100);
    try {
      await slow.waitClosed(HEADER_S * 1000 + DEADLINE_MS);
    } finally {
      clearInterval(trickle);
    }
    const lived = slow.closedAt - slow.openedAt;
    assert.ok(lived >= HEADER_S * 1000 - 200 && lived < HEADER_S * 1000 + 1500, `closed after ${lived} ms`);

    const body = new Raw(port);
    await body.connected;
    body.write(`POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 1000\r\n\r\n{`);
    const trickle2 = setInterval(() => body.write(' '), 100);
    try {
      await body.waitClosed(BODY_S * 1000 + DEADLINE_MS);
    } finally {
      clearInterval(trickle2);
    }
    const bodyLived = body.closedAt - body.openedAt;
    assert.ok(bodyLived < BODY_S * 1000 + 1500, `body cut after ${bodyLived} ms`);

    // An idle connection that holds nothing goes too.
    const idle = new Raw(port);
    await idle.connected;
    await idle.waitClosed(HEADER_S * 1000 + DEADLINE_MS);
  });

  it('a crowd of trickling connections: a caller with a token keeps being served', async () => {
    const CROWD = 300; // past max_connections; each address under its cap
    const ADDRESSES = 6;
    const crowd = new Set();
    let stopped = false;
    let opened = 0;
    const lifetimes = [];
    const connected = new EventLog('crowd');
    const open = (i) => {
      if (stopped) return;
      const c = new Raw(port, { localAddress: `127.0.0.${2 + (i % ADDRESSES)}` });
      crowd.add(c);
      opened++;
      c.connected.then(() => { connected.push(i); c.write('POST /mcp HTTP/1.1\r\nHost: x\r\n'); });
      c.events.waitFor((e) => e.type === 'close', { timeoutMs: 600000 }).then(() => {
        crowd.delete(c);
        if (!stopped) lifetimes.push(c.closedAt - c.openedAt);
        // The attacker comes back (paced, as an attacker would be).
        setTimeout(() => open(i), 50);
      }, () => {});
    };
    for (let i = 0; i < CROWD; i++) open(i);
    const trickle = setInterval(() => { for (const c of crowd) c.write('X'); }, 300);
    try {
      await connected.waitForCount(() => true, CROWD, { what: 'the crowd connected' });
      // Keep calling for longer than the header deadline, so the crowd
      // both overflows its share and meets its deadlines meanwhile.
      const t0 = Date.now();
      for (let k = 0; k < 15 || Date.now() - t0 < (HEADER_S + 1) * 1000; k++) {
        const r = await echoOnNewConnection(`through the crowd ${k}`);
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assert.equal(r.json.result.structuredContent.text, `through the crowd ${k}`);
      }
      // Past their share the oldest strangers made room for newcomers, and
      // none outlived its header deadline either way.
      assert.ok(lifetimes.length > 0, 'the server closed trickling connections');
      const longest = Math.max(...lifetimes);
      assert.ok(longest < HEADER_S * 1000 + 2000, `a trickling connection lived ${longest} ms`);
    } finally {
      stopped = true;
      clearInterval(trickle);
      for (const c of crowd) c.destroy();
    }
    assert.ok(opened > CROWD, 'connections were cut and came back');
    assert.match(server.stderr, /connection_reserve/);
  });

  it(`connections from one address past max_connections_per_address (${PER_ADDRESS}) are refused at once`, async () => {
    const conns = [];
    for (let i = 0; i < PER_ADDRESS + 10; i++) {
      const c = new Raw(port, { localAddress: '127.0.0.9' });
      conns.push(c);
      await c.connected;
    }
    try {
      await Promise.all(conns.map((c) => c.waitClosed(HEADER_S * 1000 + DEADLINE_MS)));
      // Refused ones are closed right after accept; the others live until
      // their header deadline.
      const quick = conns.filter((c) => c.closedAt - c.openedAt < (HEADER_S * 1000) / 2);
      assert.equal(quick.length, 10, `lifetimes: ${conns.map((c) => c.closedAt - c.openedAt).join(' ')}`);
    } finally {
      for (const c of conns) c.destroy();
    }
    assert.equal((await echoOnNewConnection('after the cap')).status, 200);
  });

  it('a 2025-03-26 batch\'s answer is bounded by max_message_bytes: the members past it are errors saying so', async () => {
    const post = (body, headers = {}) => fetch(`http://127.0.0.1:${port}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${TOKEN}`, ...headers },
      body: JSON.stringify(body),
    });
    const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'batcher', version: '1' } } });
    await init.text();
    const sid = init.headers.get('mcp-session-id');
    const h = { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-03-26' };
    await (await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, h)).text();
    // Six echoes of 2,400 bytes: about 30 KB of answers (each holds the
    // text twice) from 15 KB asked, under a limit of 16 KB.
    const text = 'e'.repeat(2400);
    const batch = Array.from({ length: 6 }, (_, i) => ({ jsonrpc: '2.0', id: i + 1, method: 'tools/call', params: { name: 'echo', arguments: { text } } }));
    assert.ok(JSON.stringify(batch).length < LIMIT);
    const res = await post(batch, h);
    assert.equal(res.status, 200);
    const body = await res.text();
    const answers = body.startsWith('[') ? JSON.parse(body)
      : JSON.parse(body.split('\n').find((l) => l.startsWith('data: [')).slice(6));
    assert.deepEqual(answers.map((a) => a.id).sort(), [1, 2, 3, 4, 5, 6]);
    const whole = answers.filter((a) => a.result);
    assert.ok(whole.length >= 1 && whole.length < 6, `${whole.length} answers whole`);
    for (const a of whole) assert.equal(a.result.structuredContent.text, text);
    assert.ok(JSON.stringify(whole).length <= LIMIT);
    for (const a of answers.filter((x) => !x.result)) {
      assert.equal(a.error?.code, -32603, JSON.stringify(a).slice(0, 300));
      assert.equal(a.error.message, `left out: the batch's answers pass ${LIMIT} bytes (limits.max_message_bytes); send this request on its own`);
    }
    assert.ok(body.length < 2 * LIMIT, `an answer of ${body.length} bytes`);
  });

  it('a client that stops reading its answers is reset at limits.send_timeout_s', async () => {
    // Pipelined echoes, about 12 KB of answer each, far more than the
    // socket buffers hold: the client takes the first bytes and no more.
    // Before, the server held the connection and the unsent answer until
    // limits.connection_timeout_s (300 s).
    const text = 's'.repeat(6000);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text }, _meta: META } });
    const request = `POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\n` +
      `Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: ${MODERN_VERSION}\r\nMcp-Method: tools/call\r\n` +
      `Mcp-Name: echo\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const c = new Raw(port);
    await c.connected;
    c.write(request);
    await c.waitData((d) => d.includes('"structuredContent"'), 'the first answer');
    c.socket.pause(); // and never read again
    const line = 'did not take its answer within limits.send_timeout_s';
    const before = logged(line);
    c.write(request.repeat(3000));
    await waitLogged(line, before, (SEND_S + 10) * 1000, 'the server to give up on the answer');
    await c.waitReset();
    c.destroy();
    assert.equal((await echoOnNewConnection('after the stalled reader')).status, 200);
  });

  it('an SSE client that stops reading: its connection is really closed', async () => {
    // A 2025-03-26 session, where one POST may carry a batch: 50 slow
    // counts write progress to one SSE stream, fast.
    const init = await fetch(`http://127.0.0.1:${port}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'slow reader', version: '1' } } }),
    });
    assert.equal(init.status, 200);
    await init.text();
    const sid = init.headers.get('mcp-session-id');
    const batch = JSON.stringify(Array.from({ length: 50 }, (_, i) => ({
      jsonrpc: '2.0', id: i + 1, method: 'tools/call',
      params: { name: 'slow_count', arguments: { steps: 1000, interval_ms: 1 }, _meta: { progressToken: `p${i}` } },
    })));
    assert.ok(batch.length < LIMIT);
    const c = new Raw(port);
    await c.connected;
    c.write(`POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\n` +
      `Accept: application/json, text/event-stream\r\nMcp-Session-Id: ${sid}\r\nMCP-Protocol-Version: 2025-03-26\r\n` +
      `Content-Length: ${Buffer.byteLength(batch)}\r\n\r\n${batch}`);
    await c.waitData((d) => d.includes('notifications/progress'), 'the first progress event');
    c.socket.pause(); // and never read again
    const line = 'SSE client is not reading';
    await waitLogged(line, logged(line), DEADLINE_MS, 'the server to give up on the stream');
    // The server's end of the connection is gone (reset): our writes fail.
    // Before, the stream was "closed" in the log while the connection
    // stayed open holding half an event, and writes kept succeeding.
    await c.waitReset();
    c.destroy();
    assert.equal((await echoOnNewConnection('after the slow reader')).status, 200);
  });
});

describe('Streamable HTTP: a descriptor limit below max_connections', { timeout: 120000 }, () => {
  // 320 descriptors (prlimit, soft and hard: nothing to raise) against the
  // default max_connections of 10,000: switchboard fits its connections
  // under the limit, keeping its reserve for callers with a token. Before,
  // a crowd of slow strangers took every descriptor and accept failed for
  // everyone, silently, until their header deadline.
  let server;
  let port;

  before(async () => {
    server = await startTenantServer({
      wrap: ['prlimit', '--nofile=320:320', '--'],
      config: 'limits:\n  header_timeout_s: 60',
    });
    port = server.port;
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  it('the limit is fitted and said; a crowd past it does not lock a caller with a token out', async () => {
    assert.match(server.stderr, /limits\.max_connections 10000 is more than this process may open \(RLIMIT_NOFILE 320, 256 kept for the store and agents\): serving at most 64 connections, 7 of them kept for authenticated callers/);
    const crowd = [];
    try {
      for (let i = 0; i < 400; i++) {
        const c = new Raw(port, { localAddress: `127.0.0.${2 + (i % 6)}` });
        crowd.push(c);
        c.connected.then(() => c.write('POST /mcp HTTP/1.1\r\nHost: x\r\n'));
      }
      await Promise.all(crowd.map((c) => c.connected));
      for (let k = 0; k < 5; k++) {
        const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: `k${k}` }, _meta: META } });
        const res = await withDeadline(fetch(`http://127.0.0.1:${port}/mcp`, {
          method: 'POST', body,
          headers: {
            'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${TOKEN}`,
            'MCP-Protocol-Version': MODERN_VERSION, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo', connection: 'close',
          },
        }), DEADLINE_MS, `echo k${k} through the crowd`);
        assert.equal(res.status, 200);
        assert.equal((await res.json()).result.structuredContent.text, `k${k}`);
      }
    } finally {
      for (const c of crowd) c.destroy();
    }
  });
});
