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
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { postModern } from './lib/harness.mjs';
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
    // Header names are case-insensitive; an integer compares as a number.
    const ok = await call({ 'mcp-param-region': `=?base64?${Buffer.from('eu-west1').toString('base64')}?=`, 'MCP-PARAM-SHARD': '3.0' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.result?.content?.[0]?.text, 'eu-west1: x', ok.text);
    assert.deepEqual(ok.result.structuredContent.headers, { 'mcp-param-region': 'eu-west1', 'mcp-param-shard': '3' });
  });
});
