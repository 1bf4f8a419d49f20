// Agents behind switchboard, end to end: the real binary (SWITCHBOARD_BIN)
// with real agents (@modelcontextprotocol/server-everything over stdio and
// Streamable HTTP, tests/agents/flaky_agent.mjs), driven by the official v2
// (modern) and v1 (legacy) SDK clients over Streamable HTTP. Covers tool
// namespacing, progress, cancellation, sampling relay, timeouts, crashes,
// restart, fallback, the breaker, and garbage on an agent's stdout.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import {
  DEADLINE_MS,
  callWithin,
  connect,
  everythingStdio,
  flakyAgent,
  pollUntil,
  startEverythingHttp,
  startWithAgents,
  agentDef,
  textOf,
  waitForTools,
  withDeadline,
  withStderr,
} from '../agents/agents_lib.mjs';

const ERAS = ['modern', 'legacy'];

describe('server-everything as a stdio agent', () => {
  let server;
  const clients = {};
  before(async () => {
    server = await startWithAgents([everythingStdio()]);
    for (const era of ERAS) clients[era] = await connect(era, server.url, era === 'legacy' ? {
      sampling: async (req) => ({
        model: 'test-model', role: 'assistant',
        content: { type: 'text', text: `sampled-answer-42 for ${req.params.messages[0].content.text}` },
      }),
    } : {});
  });
  after(async () => {
    for (const c of Object.values(clients)) await c.close();
    const exit = await server?.stop();
    assert.equal(exit?.code, 0, withStderr(server, 'switchboard exits 0 on SIGTERM with agents running'));
  });

  for (const era of ERAS) {
    describe(`${era} client`, () => {
      it('lists the agent tools namespaced once it is connected', async () => {
        const tools = await waitForTools(clients[era], ['everything__echo', 'everything__trigger-long-running-operation']);
        assert.ok(!tools.some((t) => t.name === 'trigger-long-running-operation'), 'agent tools are listed only with the prefix');
        const echo = tools.find((t) => t.name === 'everything__echo');
        assert.equal(echo.inputSchema.type, 'object', 'the agent\'s input schema is passed on');
        assert.ok(echo.inputSchema.properties?.message, `schema: ${JSON.stringify(echo.inputSchema)}`);
      });

      it('relays echo', async () => {
        const r = await callWithin(clients[era], { name: 'everything__echo', arguments: { message: `hello from ${era}` } });
        assert.ok(!r.isError, withStderr(server, `echo failed: ${JSON.stringify(r)}`));
        assert.equal(textOf(r.content), `Echo: hello from ${era}`);
      });

      it('relays progress of trigger-long-running-operation', async () => {
        const progress = [];
        const r = await callWithin(clients[era],
          { name: 'everything__trigger-long-running-operation', arguments: { duration: 0.5, steps: 5 } },
          DEADLINE_MS, { onprogress: (p) => progress.push(p) });
        assert.ok(!r.isError, withStderr(server, JSON.stringify(r)));
        assert.match(textOf(r.content), /Long running operation completed\. Duration: 0\.5 seconds, Steps: 5/);
        assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3, 4, 5], `progress seen: ${JSON.stringify(progress)}`);
        assert.ok(progress.every((p) => p.total === 5), `totals: ${JSON.stringify(progress)}`);
      });

      it('cancels a long-running operation and the next call works', async () => {
        const ac = new AbortController();
        const progress = [];
        const started = Date.now();
        const call = clients[era].callTool(
          { name: 'everything__trigger-long-running-operation', arguments: { duration: 30, steps: 300 } },
          { signal: ac.signal, timeout: 60000, onprogress: (p) => { progress.push(p); if (progress.length === 1) ac.abort('sb-agents-cancel'); } });
        await assert.rejects(withDeadline(call, DEADLINE_MS, 'cancelled call to reject'), /sb-agents-cancel/);
        assert.equal(progress.length >= 1, true, 'cancelled after the first progress');
        assert.ok(Date.now() - started < 10000, 'cancelled long before the operation would end');
        const r = await callWithin(clients[era], { name: 'everything__echo', arguments: { message: 'after cancel' } });
        assert.equal(textOf(r.content), 'Echo: after cancel');
      });
    });
  }

  it('legacy client: trigger-sampling-request reaches the client\'s sampling handler and returns its answer', async () => {
    const c = clients.legacy;
    await waitForTools(c, ['everything__trigger-sampling-request']);
    const from = c.samplings.items.length;
    const r = await callWithin(c, { name: 'everything__trigger-sampling-request', arguments: { prompt: 'what is six times seven', maxTokens: 20 } });
    assert.ok(!r.isError, withStderr(server, `sampling tool failed: ${JSON.stringify(r)}`));
    const seen = c.samplings.since(from);
    assert.equal(seen.length, 1, 'the handler was called once');
    assert.match(seen[0].params.messages[0].content.text, /what is six times seven/);
    assert.match(textOf(r.content), /sampled-answer-42 for .*what is six times seven/);
  });

  it('modern client: trigger-sampling-request fails with an error naming sampling (no hang)', async () => {
    const c = clients.modern;
    await waitForTools(c, ['everything__trigger-sampling-request']);
    let outcome;
    try {
      const r = await callWithin(c, { name: 'everything__trigger-sampling-request', arguments: { prompt: 'x' } });
      outcome = { isError: r.isError, text: textOf(r.content) };
    } catch (e) {
      if (/deadline of/.test(e.message)) throw e;
      outcome = { isError: true, text: e.message };
    }
    assert.equal(outcome.isError, true, `expected an error, got ${JSON.stringify(outcome)}`);
    assert.match(outcome.text, /sampling/i);
  });
});

describe('flaky agents A and B (timeouts, crashes, restart, fallback, garbage)', () => {
  let server;
  const clients = {};
  before(async () => {
    server = await startWithAgents([
      flakyAgent('a', 'A', { limits: { timeoutMs: 500, retries: 0 }, idempotentTools: ['whoami'] }),
      flakyAgent('b', 'B', { limits: { timeoutMs: 5000, retries: 0 }, idempotentTools: ['whoami'] }),
    ]);
    for (const era of ERAS) clients[era] = await connect(era, server.url);
    await waitForTools(clients.modern, ['a__whoami', 'a__hang', 'a__crash', 'a__garbage', 'b__whoami']);
  });
  after(async () => {
    for (const c of Object.values(clients)) await c.close();
    const exit = await server?.stop();
    assert.equal(exit?.code, 0, withStderr(server, 'switchboard exits 0'));
  });

  it('A__hang times out with an error naming agent a (both clients)', async () => {
    const started = Date.now();
    const results = await Promise.all(ERAS.map((era) => callWithin(clients[era], { name: 'a__hang', arguments: {} }, 5000)));
    const took = Date.now() - started;
    for (const r of results) {
      assert.equal(r.isError, true, withStderr(server, JSON.stringify(r)));
      assert.match(textOf(r.content), /agent a\b/);
      assert.match(textOf(r.content), /timed out/);
    }
    assert.ok(took >= 450 && took < 4000, `answered in ${took} ms (timeoutMs 500)`);
  });

  it('A__crash returns an error naming agent a and "exited", and A comes back', async () => {
    const r = await callWithin(clients.legacy, { name: 'a__crash', arguments: {} });
    assert.equal(r.isError, true, JSON.stringify(r));
    assert.match(textOf(r.content), /agent a\b/);
    assert.match(textOf(r.content), /exited/);
    const back = await pollUntil(async () => {
      const x = await clients.modern.callTool({ name: 'a__whoami', arguments: {} });
      const t = textOf(x.content);
      return /^A \(call \d+\)$/.test(t) ? t : { ok: false, message: t };
    }, { what: 'A to answer a__whoami after the restart' });
    assert.match(back, /^A \(call 1\)$/, 'a new process (its call counter restarted)');
  });

  it('fallback: a__whoami right after A crashes is answered by B (or by A, restarted), never an error', async () => {
    const crash = await callWithin(clients.legacy, { name: 'a__crash', arguments: {} });
    assert.equal(crash.isError, true);
    const r = await callWithin(clients.legacy, { name: 'a__whoami', arguments: {} });
    assert.ok(!r.isError, withStderr(server, `fallback failed: ${JSON.stringify(r)}`));
    assert.match(textOf(r.content), /^(A|B) \(call \d+\)$/);
    // And A does come back again.
    await pollUntil(async () => {
      const x = await clients.modern.callTool({ name: 'a__whoami', arguments: {} });
      return /^A /.test(textOf(x.content)) || { ok: false, message: textOf(x.content) };
    }, { what: 'A back after the second crash' });
  });

  it('a garbage line from A does not break B, and A\'s call gets an answer or a clear error', async () => {
    const [ga, wb] = await Promise.all([
      callWithin(clients.modern, { name: 'a__garbage', arguments: {} }),
      callWithin(clients.legacy, { name: 'b__whoami', arguments: {} }),
    ]);
    assert.match(textOf(wb.content), /^B \(call \d+\)$/);
    if (ga.isError) assert.match(textOf(ga.content), /agent a\b/, `A's error must name the agent: ${JSON.stringify(ga)}`);
    else assert.equal(textOf(ga.content), 'A after garbage');
    const again = await callWithin(clients.modern, { name: 'b__whoami', arguments: {} });
    assert.match(textOf(again.content), /^B \(call \d+\)$/);
    // A itself is still (or again) usable.
    await pollUntil(async () => {
      const x = await clients.legacy.callTool({ name: 'a__whoami', arguments: {} });
      return /^A /.test(textOf(x.content)) || { ok: false, message: textOf(x.content) };
    }, { what: 'A answering after its garbage line' });
  });
});

describe('an agent whose tools/list never ends', () => {
  it('is asked for a bounded number of pages, and its tools are served', async () => {
    const RAW = new URL('../agents/raw_agent.mjs', import.meta.url).pathname;
    const server = await startWithAgents([
      agentDef('endless', { capabilities: ['x'], transport: { type: 'stdio', command: process.execPath, args: [RAW, 'E', '--endless-list'] } }),
      agentDef('same', { capabilities: ['x'], transport: { type: 'stdio', command: process.execPath, args: [RAW, 'S', '--endless-list=same'] } }),
    ]);
    try {
      // Once asked for pages without end (thousands a second), and its
      // tools never appeared.
      await server.stderrMatch(/agent endless: tools\/list: list cut short, as it took 1000 pages/);
      await server.stderrMatch(/agent same: tools\/list: list cut short, as the agent gave the same nextCursor again/);
      const c = await connect('modern', server.url);
      try {
        await waitForTools(c, ['endless__whoami', 'same__whoami']);
        const res = await callWithin(c, { name: 'endless__whoami', arguments: {} });
        assert.equal(JSON.parse(textOf(res.content)).name, 'E', withStderr(server, JSON.stringify(res)));
      } finally {
        await c.close();
      }
      // No more pages after the cut: page 1000 is the last one logged.
      await new Promise((res) => setTimeout(res, 300));
      assert.doesNotMatch(server.stderr, /E: tools\/list page 1500/, withStderr(server, 'pages went on'));
    } finally {
      await server.stop();
    }
  });
});

describe('an agent that lists tools the MCP schema refuses', () => {
  it("leaves them out, so every client can still list every agent's tools", async () => {
    const RAW = new URL('../agents/raw_agent.mjs', import.meta.url).pathname;
    const server = await startWithAgents([
      agentDef('junk', { capabilities: ['x'], transport: { type: 'stdio', command: process.execPath, args: [RAW, 'J', '--junk-tools'] } }),
      agentDef('fine', { capabilities: ['x'], transport: { type: 'stdio', command: process.execPath, args: [RAW, 'F'] } }),
    ]);
    try {
      await server.stderrMatch(/agent junk: tools\/list: item \d+ \(bad_schema\) left out: its inputSchema is not a JSON Schema of type "object"/);
      // Once the SDK clients refused the whole list (every agent's tools).
      for (const era of ERAS) {
        const c = await connect(era, server.url);
        try {
          const tools = await waitForTools(c, ['junk__whoami', 'fine__whoami']);
          const names = tools.map((t) => t.name);
          assert.equal(new Set(names).size, names.length, `duplicate names: ${names.join(', ')}`);
          assert.ok(!names.some((n) => /bad_schema|no_schema|bad_output/.test(n) || n === 'junk__'), names.join(', '));
          const res = await callWithin(c, { name: 'junk__whoami', arguments: {} });
          assert.equal(JSON.parse(textOf(res.content)).name, 'J');
          // A result that is not a CallToolResult: once passed on as it
          // was, and the client's SDK refused it without naming the agent.
          const bad = await callWithin(c, { name: 'junk__malformed', arguments: {} });
          assert.equal(bad.isError, true, JSON.stringify(bad));
          assert.match(textOf(bad.content), /agent junk answered tools\/call with a result that is not a CallToolResult: content is not a list/);
        } finally {
          await c.close();
        }
      }
      assert.match(server.stderr, /agent junk: tools\/list: .*left out: an item of that name came before/);
    } finally {
      await server.stop();
    }
  });
});

describe('a tool whose output is not an object (any JSON Schema and value since 2026-07-28)', () => {
  it('is served to modern clients as it is, and to legacy clients without what their era cannot carry', async () => {
    const RAW = new URL('../agents/raw_agent.mjs', import.meta.url).pathname;
    const server = await startWithAgents([
      agentDef('arr', { capabilities: ['x'], transport: { type: 'stdio', command: process.execPath, args: [RAW, 'A'] } }),
    ]);
    try {
      for (const era of ERAS) {
        const c = await connect(era, server.url);
        try {
          const tools = await waitForTools(c, ['arr__primes']);
          const primes = tools.find((t) => t.name === 'arr__primes');
          const res = await callWithin(c, { name: 'arr__primes', arguments: {} });
          assert.ok(!res.isError, JSON.stringify(res));
          if (era === 'modern') {
            assert.deepEqual(primes.outputSchema, { type: 'array', items: { type: 'integer' } });
            assert.deepEqual(res.structuredContent, [2, 3, 5]);
          } else {
            // 2025-11-25: an object schema and an object value, or none.
            assert.equal(primes.outputSchema, undefined, JSON.stringify(primes));
            assert.equal(res.structuredContent, undefined, JSON.stringify(res));
            assert.equal(textOf(res.content), '[2,3,5]');
          }
        } finally {
          await c.close();
        }
      }
    } finally {
      await server.stop();
    }
  });
});

describe('breaker', () => {
  let server;
  let client;
  before(async () => {
    server = await startWithAgents([
      flakyAgent('a', 'A', { limits: { timeoutMs: 100, retries: 0 }, idempotentTools: ['whoami'] }),
      flakyAgent('b', 'B', { limits: { timeoutMs: 5000, retries: 0 } }),
    ]);
    client = await connect('modern', server.url);
    await waitForTools(client, ['a__whoami', 'a__hang', 'b__whoami']);
  });
  after(async () => {
    await client?.close();
    await server?.stop();
  });

  it('five timeouts on a__hang open A\'s breaker; the next a__whoami is answered by B', async () => {
    const before = await callWithin(client, { name: 'a__whoami', arguments: {} });
    assert.match(textOf(before.content), /^A /, 'A answers while its breaker is closed');
    for (let i = 0; i < 5; i++) {
      const r = await callWithin(client, { name: 'a__hang', arguments: {} }, 3000);
      assert.equal(r.isError, true);
      assert.match(textOf(r.content), /agent a\b.*timed out/s, `timeout ${i + 1}: ${textOf(r.content)}`);
    }
    const r = await callWithin(client, { name: 'a__whoami', arguments: {} });
    assert.ok(!r.isError, withStderr(server, JSON.stringify(r)));
    assert.match(textOf(r.content), /^B \(call \d+\)$/, withStderr(server, 'B answers while A\'s breaker is open'));
  });

  it('A killed and back while its breaker is open is probed at once, not after the cooldown', async () => {
    const agents = async () => (await fetch(server.url.replace(/\/mcp$/, '/v1/agents'))).json();
    const rowA = async () => (await agents()).agents.find((x) => x.definition.id === 'a');
    assert.equal((await rowA()).state.breaker, 'open', 'opened by the test before');
    const pid = execFileSync('pgrep', ['-P', String(server.proc.pid), '-f', 'flaky_agent.mjs A$']).toString().trim();
    process.kill(Number(pid), 'SIGKILL');
    await pollUntil(async () => ((await rowA()).connected ? { ok: false, message: 'still connected' } : { ok: true }), { what: 'A seen down' });
    const back = await pollUntil(async () => {
      const a = await rowA();
      return a.connected ? a : { ok: false, message: JSON.stringify(a) };
    }, { what: 'A connected again' });
    assert.notEqual(back.state.breaker, 'open', withStderr(server, JSON.stringify(back.state)));
    const r = await callWithin(client, { name: 'a__whoami', arguments: {} });
    assert.match(textOf(r.content), /^A \(call 1\)$/, withStderr(server, 'the new A answers the probe'));
    assert.equal((await rowA()).state.breaker, 'closed');
    assert.match(server.stderr, /agent a: circuit breaker opened/);
    assert.match(server.stderr, /agent a: circuit breaker closed/);
  });
});

describe('a retry the breaker refuses', () => {
  it('the call says how its last try ended, not only that the breaker is open', async () => {
    const server = await startWithAgents([
      flakyAgent('c', 'C', { limits: { timeoutMs: 100, retries: 1 }, idempotentTools: ['hang'] }),
    ]);
    try {
      const client = await connect('modern', server.url);
      await waitForTools(client, ['c__hang']);
      // Two tries a call: the fifth try (the third call's first) opens the
      // breaker, which refuses that call's retry.
      const texts = [];
      for (let i = 0; i < 3; i++) texts.push(textOf((await callWithin(client, { name: 'c__hang', arguments: {} }, 5000)).content));
      assert.match(texts[0], /agent c\b.*timed out/s, texts[0]);
      assert.match(texts[2], /agent c\b.*timed out.*\(not tried again: breaker open\)/s, withStderr(server, texts[2]));
      await client.close();
    } finally {
      await server.stop();
    }
  });
});

describe('server-everything over Streamable HTTP as an agent', () => {
  let everything;
  let server;
  const clients = {};
  before(async () => {
    everything = await startEverythingHttp();
    server = await startWithAgents([agentDef('remote', { capabilities: ['demo'], transport: { type: 'http', url: everything.url } })]);
    for (const era of ERAS) clients[era] = await connect(era, server.url);
  });
  after(async () => {
    for (const c of Object.values(clients)) await c.close();
    await server?.stop();
    await everything?.stop();
  });

  for (const era of ERAS) {
    it(`${era} client: remote__echo works through switchboard`, async () => {
      await waitForTools(clients[era], ['remote__echo']);
      const r = await callWithin(clients[era], { name: 'remote__echo', arguments: { message: `over http, ${era}` } });
      assert.ok(!r.isError, withStderr(server, JSON.stringify(r)));
      assert.equal(textOf(r.content), `Echo: over http, ${era}`);
    });
  }
});
