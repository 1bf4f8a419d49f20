// agents_subscriptions.test.mjs: a client's subscription that switchboard
// forwards to an agent is answered within the agent's timeoutMs, whatever
// the agent does. A modern agent that never acknowledges its
// subscriptions/listen (tests/agents/deaf_agent.mjs) must not leave the
// client's resources/subscribe or subscriptions/listen hanging, nor a
// second subscriber that joined while the first was still waiting; and the
// URI must not stay subscribed at the agent once every client was told no.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEADLINE_MS, MODERN_VERSION, startHttpServer, withDeadline } from './lib/harness.mjs';
import { agentDef, connect, pollUntil, writeConfig } from '../agents/agents_lib.mjs';

const DEAF = join(dirname(fileURLToPath(import.meta.url)), '..', 'agents', 'deaf_agent.mjs');
const TIMEOUT_MS = 600; // the agent's limits.timeoutMs
const URI = 'deaf://quiet';

/** A modern subscriptions/listen POST to url; the fetch Response. */
function postListen(url, id, notifications, signal) {
  return withDeadline(fetch(url, {
    method: 'POST',
    signal,
    headers: {
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      'MCP-Protocol-Version': MODERN_VERSION,
      'Mcp-Method': 'subscriptions/listen',
    },
    body: JSON.stringify({
      jsonrpc: '2.0', id, method: 'subscriptions/listen',
      params: {
        notifications,
        _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN_VERSION, 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    }),
  }), DEADLINE_MS, 'subscriptions/listen response');
}

describe('a modern agent that never acknowledges its subscriptions/listen', { timeout: 60000 }, () => {
  let server;
  let url;

  before(async () => {
    server = await startHttpServer({
      extraArgs: ['--config', writeConfig([agentDef('deaf', {
        limits: { timeoutMs: TIMEOUT_MS },
        transport: { type: 'stdio', command: process.execPath, args: [DEAF] },
      })])],
    });
    url = server.url.replace(/\/mcp$/, '/agents/deaf/mcp');
    // Connected once its resources are listed on its endpoint.
    const ctx = await connect('legacy', url);
    try {
      await pollUntil(async () => (await ctx.client.listResources()).resources.length > 0, { what: 'the deaf agent\'s resources' });
    } finally {
      await ctx.close();
    }
  });

  after(async () => {
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  // Nothing is left subscribed: the agent's last listen was cancelled with
  // none after it (it announces no list changes, so there is nothing else
  // to listen for), or names no URI.
  const listens = () => server.stderr.split('\n').filter((l) => l.includes('deaf: listen'));
  const nothingLeft = () => pollUntil(() => /deaf: listen( cancelled)?\s*$/.test(listens().at(-1) ?? '') || { ok: false, message: listens().at(-1) },
    { what: 'the last listen cancelled, or naming no URI' });

  function assertNotAcknowledged(e, started) {
    assert.match(e.message, /agent deaf did not acknowledge the subscription .*within 600 ms/, e.message);
    const took = Date.now() - started;
    assert.ok(took >= TIMEOUT_MS - 100 && took < TIMEOUT_MS + 5000, `answered after ${took} ms`);
    return true;
  }

  it('legacy resources/subscribe: an error naming the agent after its timeout; then nothing is left subscribed', async () => {
    const ctx = await connect('legacy', url);
    try {
      const started = Date.now();
      await withDeadline(assert.rejects(ctx.client.subscribeResource({ uri: URI }), (e) => assertNotAcknowledged(e, started)),
        DEADLINE_MS, 'resources/subscribe answered');
      await nothingLeft();
      // Not subscribed: a second try waits (and fails) again rather than
      // being told yes by leftover state.
      const again = Date.now();
      await withDeadline(assert.rejects(ctx.client.subscribeResource({ uri: URI }), (e) => assertNotAcknowledged(e, again)),
        DEADLINE_MS, 'the second resources/subscribe answered');
    } finally {
      await ctx.close();
    }
  });

  it('a second subscriber that joined while the first waited is answered too', async () => {
    const first = await connect('legacy', url);
    const second = await connect('legacy', url);
    try {
      const started = Date.now();
      const one = first.client.subscribeResource({ uri: URI });
      await pollUntil(() => listens().at(-1)?.includes(URI), { what: 'the listen naming the URI' });
      const two = second.client.subscribeResource({ uri: URI });
      const results = await withDeadline(Promise.allSettled([one, two]), DEADLINE_MS, 'both subscribers answered');
      for (const r of results) {
        assert.equal(r.status, 'rejected', JSON.stringify(r));
        assertNotAcknowledged(r.reason, started);
      }
      await nothingLeft();
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('modern subscriptions/listen: ended with an error naming the agent, not left open', async () => {
    const started = Date.now();
    const res = await postListen(url, 9, { resourceSubscriptions: [URI] });
    const text = await withDeadline(res.text(), DEADLINE_MS, 'subscriptions/listen ended');
    const msgs = text.startsWith('{') ? [JSON.parse(text)]
      : text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
    assert.ok(!msgs.some((m) => m.method === 'notifications/subscriptions/acknowledged'), text);
    const final = msgs.find((m) => m.id === 9);
    assert.ok(final?.error, text);
    assert.equal(final.error.data?.agent, 'deaf', text);
    assertNotAcknowledged(final.error, started);
    await nothingLeft();
  });
});

// subscriptions.mdx: the acknowledgment's notifications are the subset the
// server agreed to honor, and what it does not support is omitted. An
// agent serving tools only: its endpoint acknowledges tool list changes
// (switchboard sends those itself) but neither prompts nor resource
// subscriptions, and the listen does not fail over them.
describe('subscriptions/listen on the endpoint of an agent serving tools only', { timeout: 60000 }, () => {
  const RAW = join(dirname(fileURLToPath(import.meta.url)), '..', 'agents', 'raw_agent.mjs');
  let server;
  before(async () => {
    server = await startHttpServer({
      extraArgs: ['--config', writeConfig([agentDef('tools-only', {
        transport: { type: 'stdio', command: process.execPath, args: [RAW, 'T'] },
      })])],
    });
  });
  after(async () => {
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  it('acknowledges only what it can send', async () => {
    const url = server.url.replace(/\/mcp$/, '/agents/tools-only/mcp');
    const ctx = await connect('legacy', url);
    try {
      await pollUntil(async () => (await ctx.client.listTools()).tools.length > 0, { what: 'the agent\'s tools' });
    } finally {
      await ctx.close();
    }
    const abort = new AbortController();
    const res = await postListen(url, 3,
      { toolsListChanged: true, promptsListChanged: true, resourcesListChanged: true, resourceSubscriptions: ['raw://x'] },
      abort.signal);
    assert.equal(res.status, 200);
    let text = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) {
        text += decoder.decode(chunk, { stream: true });
        if (/^data: .*\n/m.test(text)) break;
      }
    } finally {
      abort.abort();
    }
    const first = JSON.parse(/^data: (.*)$/m.exec(text)[1]);
    assert.equal(first.method, 'notifications/subscriptions/acknowledged', text);
    assert.deepEqual(first.params.notifications, { toolsListChanged: true }, text);
  });
});

// An agent asked to listen only for what it announces: a modern agent
// serving tools without listChanged is sent no subscriptions/listen (it
// refused one at every connect).
describe('a modern agent that announces no notifications', { timeout: 60000 }, () => {
  const RAW = join(dirname(fileURLToPath(import.meta.url)), '..', 'agents', 'raw_agent.mjs');
  it('is sent no subscriptions/listen', async () => {
    const server = await startHttpServer({
      extraArgs: ['--config', writeConfig([agentDef('quiet', {
        transport: { type: 'stdio', command: process.execPath, args: [RAW, 'Q', '--dual'] },
      })])],
    });
    try {
      const ctx = await connect('modern', server.url);
      try {
        await pollUntil(async () => (await ctx.client.listTools()).tools.some((t) => t.name === 'quiet__whoami'), { what: 'the agent\'s tools' });
        // Its requests arrive in order over stdio: whatever it was sent at
        // connect came before this call.
        const r = await ctx.client.callTool({ name: 'quiet__whoami', arguments: {} });
        const seen = JSON.parse(r.content[0].text);
        assert.equal(seen.name, 'Q');
        assert.deepEqual(seen.refused.filter((m) => m === 'subscriptions/listen'), [], JSON.stringify(seen));
      } finally {
        await ctx.close();
      }
    } finally {
      const done = await server.stop();
      assert.equal(done.code, 0, server.stderr.slice(-2000));
    }
  });
});

// 2026-07-28 subscriptions.mdx: a listen the agent ends while it stays
// connected (tests/agents/listen_agent.mjs) is opened again, so the
// list_changed switchboard's clients were promised still come.
describe('a modern agent that ends its subscriptions/listen', { timeout: 60000 }, () => {
  const LISTENER = join(dirname(fileURLToPath(import.meta.url)), '..', 'agents', 'listen_agent.mjs');
  let server;
  let client;

  before(async () => {
    server = await startHttpServer({
      extraArgs: ['--config', writeConfig([agentDef('l', {
        transport: { type: 'stdio', command: process.execPath, args: [LISTENER] },
      })])],
    });
    client = await connect('modern', server.url);
    await pollUntil(async () => (await client.client.listTools()).tools.some((t) => t.name === 'l__add-tool') || { ok: false },
      { what: "the listener's tools" });
    await server.stderrMatch(/listener: listen 1 open/);
  });

  after(async () => {
    await client?.close();
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  it('is opened again, and a tool added after that is listed', async () => {
    const ended = await client.callTool({ name: 'l__end-listen', arguments: {} });
    assert.equal(ended.content[0].text, 'ended');
    await server.stderrMatch(/listener: listen 2 open/);
    const added = await client.callTool({ name: 'l__add-tool', arguments: {} });
    assert.equal(added.content[0].text, 'added extra-1');
    await pollUntil(async () => (await client.client.listTools()).tools.some((t) => t.name === 'l__extra-1') || { ok: false },
      { what: 'l__extra-1 listed, from the list_changed on the new listen' });
  });
});
