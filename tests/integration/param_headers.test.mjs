// Tool parameters mirrored into HTTP headers (2026-07-28 Streamable HTTP,
// "Custom Headers from Tool Parameters"), against the real binary and a
// real agent: tests/agents/header_agent.mjs, on the official v2 server
// SDK, which refuses a tools/call whose Mcp-Param-* headers are missing or
// disagree with the arguments. Checked:
//   - switchboard, as the agent's client, sends the headers its tools ask
//     for (plain, base64 for what is not plain header text, integers), so
//     the call goes through from a v2 client, a raw request and a legacy
//     (2025-11-25) client alike;
//   - switchboard, as a server, answers 400 / -32020 naming the header when
//     a request's Mcp-Param-* header is missing or disagrees;
//   - a tool whose x-mcp-header declarations break the rules is not listed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEADLINE_MS, MODERN_VERSION, postModern, withDeadline } from './lib/harness.mjs';
import { agentDef, callWithin, connect, pollUntil, startHttpAgent, startWithAgents, withStderr } from '../agents/agents_lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const HEADER_AGENT = join(here, '..', 'agents', 'header_agent.mjs');

describe('Mcp-Param-* headers (x-mcp-header)', { timeout: 120000 }, () => {
  let agent;
  let server;
  let tools;

  before(async () => {
    agent = await startHttpAgent(HEADER_AGENT, 'header-agent', 'header agent');
    server = await startWithAgents([agentDef('hdr', { capabilities: ['regional'], transport: { type: 'http', url: agent.url } })]);
    tools = await pollUntil(async () => {
      const r = await postModern(server.url, 'none', 'tools/list', {});
      const names = (r.result?.tools ?? []).map((t) => t.name);
      return names.includes('hdr__regional-echo') ? r.result.tools : { ok: false, message: names.join(', ') };
    }, { what: "the header agent's tools" });
  });

  after(async () => {
    await server?.stop();
    await agent?.stop();
  });

  it('lists the tool with its declarations, and leaves out the one whose declarations break the rules', () => {
    const echo = tools.find((t) => t.name === 'hdr__regional-echo');
    assert.equal(echo.inputSchema.properties.region['x-mcp-header'], 'Region');
    assert.equal(tools.find((t) => t.name === 'hdr__bad-header'), undefined, withStderr(server, 'bad-header is listed'));
    assert.match(server.stderr, /bad-header\) left out: its inputSchema: x-mcp-header at n: number: allowed only on a property of type string, integer or boolean/);
  });

  it('a v2 client calls through /mcp and /agents/hdr/mcp: the agent gets the headers, base64 where the value is not plain', async () => {
    for (const [url, name] of [[server.url, 'hdr__regional-echo'], [server.url.replace(/\/mcp$/, '/agents/hdr/mcp'), 'regional-echo']]) {
      const ctx = await connect('modern', url);
      try {
        const r = await callWithin(ctx, { name, arguments: { region: 'Zürich ', shard: 7, message: 'hi' } });
        assert.equal(r.isError, undefined, JSON.stringify(r));
        assert.equal(r.content[0].text, 'Zürich : hi');
        assert.deepEqual(r.structuredContent.headers, {
          'mcp-param-region': `=?base64?${Buffer.from('Zürich ').toString('base64')}?=`,
          'mcp-param-shard': '7',
        });
      } finally {
        await ctx.close();
      }
    }
  });

  it('a legacy client calls the same tool: switchboard adds the headers the modern agent wants', async () => {
    const ctx = await connect('legacy', server.url);
    try {
      const r = await callWithin(ctx, { name: 'hdr__regional-echo', arguments: { region: 'us-west1', message: 'hello' } });
      assert.equal(r.isError, undefined, JSON.stringify(r));
      assert.deepEqual(r.structuredContent.headers, { 'mcp-param-region': 'us-west1' }, 'no shard: no header');
    } finally {
      await ctx.close();
    }
  });

  it('a request whose Mcp-Param-* header is missing or disagrees is 400 / -32020 naming it; a matching one goes through', async () => {
    const call = (headers) => postModern(server.url, 'none', 'tools/call',
      { name: 'hdr__regional-echo', arguments: { region: 'eu-west1', shard: 3, message: 'x' } }, { headers });
    const missing = await call({ 'Mcp-Param-Shard': '3' });
    assert.equal(missing.status, 400, missing.text);
    assert.equal(missing.error?.code, -32020);
    assert.equal(missing.error.message, 'Header mismatch: the Mcp-Param-Region header is required (the arguments carry eu-west1)');
    const wrong = await call({ 'Mcp-Param-Region': 'us-east1', 'Mcp-Param-Shard': '3' });
    assert.equal(wrong.status, 400, wrong.text);
    assert.match(wrong.error?.message ?? '', /Mcp-Param-Region header value 'us-east1' does not match the arguments' 'eu-west1'/);
    const broken = await call({ 'Mcp-Param-Region': '=?base64?%%%?=', 'Mcp-Param-Shard': '3' });
    assert.equal(broken.status, 400, broken.text);
    assert.match(broken.error?.message ?? '', /Mcp-Param-Region header value is not valid/);
    // Raw UTF-8 is not header text (RFC 9110): it must come base64-encoded,
    // even when its bytes are the body's.
    const rawUtf8 = await postModern(server.url, 'none', 'tools/call',
      { name: 'hdr__regional-echo', arguments: { region: 'café', shard: 3, message: 'x' } },
      { headers: { 'Mcp-Param-Region': Buffer.from('café').toString('latin1'), 'Mcp-Param-Shard': '3' } });
    assert.equal(rawUtf8.status, 400, rawUtf8.text);
    assert.equal(rawUtf8.error?.code, -32020);
    assert.match(rawUtf8.error.message, /Mcp-Param-Region header value is not valid \(characters other than visible ASCII/);
    // A header for a value the body does not carry disagrees with it.
    const extra = await postModern(server.url, 'none', 'tools/call',
      { name: 'hdr__regional-echo', arguments: { region: 'eu-west1', message: 'x' } },
      { headers: { 'Mcp-Param-Region': 'eu-west1', 'Mcp-Param-Shard': '3' } });
    assert.equal(extra.status, 400, extra.text);
    assert.equal(extra.error?.message, 'Header mismatch: the Mcp-Param-Shard header is sent but the arguments have no value for it');
    // Header names are case-insensitive; an integer compares as a number.
    const ok = await call({ 'mcp-param-region': `=?base64?${Buffer.from('eu-west1').toString('base64')}?=`, 'MCP-PARAM-SHARD': '3.0' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.result?.content?.[0]?.text, 'eu-west1: x', ok.text);
    assert.deepEqual(ok.result.structuredContent.headers, { 'mcp-param-region': 'eu-west1', 'mcp-param-shard': '3' });
  });
});

/**
 * One POST written byte for byte on a socket (fetch and node:http trim
 * header values): the status and the JSON-RPC answer (JSON or one SSE
 * event).
 */
async function rawPost(url, headerLines, body) {
  const { hostname, port, pathname } = new URL(url);
  const socket = net.connect({ host: hostname, port: Number(port) });
  let data = '';
  socket.on('data', (d) => { data += d.toString('utf8'); });
  const ended = new Promise((resolve, reject) => { socket.on('end', resolve); socket.on('error', reject); });
  socket.write([`POST ${pathname} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Connection: close',
    `Content-Length: ${Buffer.byteLength(body)}`, ...headerLines, '', body].join('\r\n'));
  await withDeadline(ended, DEADLINE_MS, 'the raw POST answered and closed');
  const [head, ...rest] = data.split('\r\n\r\n');
  let text = rest.join('\r\n\r\n');
  if (/transfer-encoding: *chunked/i.test(head)) {
    let out = '';
    for (let at = 0; ;) {
      const eol = text.indexOf('\r\n', at);
      const size = parseInt(text.slice(at, eol), 16);
      if (!size) break;
      out += text.slice(eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
    text = out;
  }
  const json = text.startsWith('{') ? text : text.split('\n').filter((l) => l.startsWith('data: ')).pop()?.slice(6);
  return { status: Number(head.split(' ')[1]), text, ...(json ? JSON.parse(json) : {}) };
}

/**
 * Within a describe: the header agent, and a switchboard fronting it that
 * lists its `tool`; both stopped after.
 */
function withHeaderAgent(tool) {
  const env = {};
  before(async () => {
    env.agent = await startHttpAgent(HEADER_AGENT, 'header-agent', 'header agent');
    env.server = await startWithAgents([agentDef('hdr', { capabilities: ['regional'], transport: { type: 'http', url: env.agent.url } })]);
    await pollUntil(async () => {
      const r = await postModern(env.server.url, 'none', 'tools/list', {});
      return (r.result?.tools ?? []).some((t) => t.name === `hdr__${tool}`) || { ok: false, message: r.text };
    }, { what: "the header agent's tools" });
  });
  after(async () => {
    await env.server?.stop();
    await env.agent?.stop();
  });
  return env;
}

// RFC 9110 5.5: the whitespace around a header's value is no part of it.
describe('header values with trailing whitespace', { timeout: 120000 }, () => {
  const env = withHeaderAgent('regional-echo');

  it('are taken without it: MCP-Protocol-Version, Mcp-Method, Mcp-Name and Mcp-Param-* match their body values', async () => {
    const body = JSON.stringify({
      jsonrpc: '2.0', id: 7, method: 'tools/call',
      params: {
        name: 'hdr__regional-echo', arguments: { region: 'eu-west1', shard: 3, message: 'x' },
        _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN_VERSION, 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    });
    const r = await rawPost(env.server.url, [
      'Content-Type: application/json', 'Accept: application/json, text/event-stream',
      `MCP-Protocol-Version: ${MODERN_VERSION}  `, 'Mcp-Method: tools/call\t', 'Mcp-Name: hdr__regional-echo ',
      'Mcp-Param-Region: eu-west1 \t', 'Mcp-Param-Shard: 3 ',
    ], body);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.result?.content?.[0]?.text, 'eu-west1: x', r.text);
    assert.deepEqual(r.result.structuredContent.headers, { 'mcp-param-region': 'eu-west1', 'mcp-param-shard': '3' });
    // A value that differs still does, whitespace or not.
    const wrong = await rawPost(env.server.url, [
      'Content-Type: application/json', 'Accept: application/json, text/event-stream',
      `MCP-Protocol-Version: ${MODERN_VERSION} `, 'Mcp-Method: tools/call ', 'Mcp-Name: hdr__regional-echo ',
      'Mcp-Param-Region: us-east1 ', 'Mcp-Param-Shard: 3 ',
    ], body);
    assert.equal(wrong.status, 400, wrong.text);
    assert.match(wrong.error?.message ?? '', /Mcp-Param-Region header value 'us-east1' does not match the arguments' 'eu-west1'/);
  });
});

// 2026-07-28 streamable-http.mdx: over Streamable HTTP a client cancels by
// closing the request's stream, and no notifications/cancelled is sent.
describe('a call to a modern HTTP agent that the client gives up on', { timeout: 60000 }, () => {
  const env = withHeaderAgent('hold');

  it('closes the agent\'s stream and sends it no notifications/cancelled', async () => {
    const stats = async () => (await fetch(`${env.agent.url.replace(/\/mcp$/, '')}/test/stats`)).json();
    const before = await stats();
    const abort = new AbortController();
    const call = postModern(env.server.url, 'none', 'tools/call', { name: 'hdr__hold', arguments: {} }, { signal: abort.signal }).catch((e) => e);
    await pollUntil(async () => (await stats()).holding > before.holding || { ok: false, message: 'not holding yet' }, { what: 'the agent holding the call' });
    abort.abort();
    await call;
    await pollUntil(async () => (await stats()).closedEarly > before.closedEarly || { ok: false, message: 'stream still open' },
      { what: "switchboard closing the agent's stream" });
    // A call after it, answered: what switchboard sent before is in.
    const r = await postModern(env.server.url, 'none', 'tools/call', { name: 'hdr__regional-echo', arguments: { region: 'eu', message: 'x' } }, { headers: { 'Mcp-Param-Region': 'eu' } });
    assert.equal(r.result?.content?.[0]?.text, 'eu: x', r.text);
    assert.equal((await stats()).cancelled, before.cancelled, 'a notifications/cancelled reached the agent');
  });
});
