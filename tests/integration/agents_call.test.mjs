// agents_call.test.mjs: calls routed with the context (agents_call), typed
// outcomes against forged error data, and calls to agents that have not
// connected yet. Real agents (stdio child processes) behind a real
// switchboard, driven with the official v2 (modern) SDK client.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEADLINE_MS, textOf } from './lib/harness.mjs';
import { agentDef, startWithAgents, connect, waitForTools, callWithin, withStderr, writeConfig, FLAKY, pollUntil } from '../agents/agents_lib.mjs';

const RAW = join(dirname(fileURLToPath(import.meta.url)), '..', 'agents', 'raw_agent.mjs');
const raw = (id, name, extra = {}) => ({
  ...agentDef(id, { capabilities: ['quotes'], transport: { type: 'stdio', command: process.execPath, args: [RAW, name] } }),
  ...extra,
});

describe('agents_call', () => {
  let server;
  let c;

  before(async () => {
    server = await startWithAgents([
      raw('vinbot', 'V', { contextRequirements: ['workflow.variables.vin'] }),
      raw('budgetbot', 'B', { type: 'finance', contextRequirements: ['workflow.variables.budget', 'conversation.intent'] }),
      raw('forger', 'F', { capabilities: ['forging'], limits: { retries: 2 } }),
    ]);
    c = await connect('modern', server.url);
    await waitForTools(c, ['vinbot__whoami', 'budgetbot__whoami', 'forger__forged']);
  });

  after(async () => {
    await c?.close();
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  const route = async (args) => {
    const res = await callWithin(c, { name: 'agents_call', arguments: args });
    assert.notEqual(res.isError, true, withStderr(server, JSON.stringify(res)));
    return { got: JSON.parse(textOf(res.content)), routing: res._meta?.['switchboard/routing'] };
  };

  it('the context decides the agent, each gets only its paths, and metadata.agents gains it', async () => {
    const created = (await c.callTool({
      name: 'context_create',
      arguments: { data: { workflow: { variables: { budget: 30000, secret: 'not for agents' } }, conversation: { intent: 'buy', messages: [] } } },
    })).structuredContent;
    assert.ok(created.id);

    const first = await route({ capability: 'quotes', tool: 'whoami', arguments: { q: 1 }, contextId: created.id });
    assert.equal(first.got.name, 'B', 'budgetbot covers the context (2 of 2 paths), vinbot none');
    assert.deepEqual(first.got.arguments, { q: 1 });
    assert.deepEqual(first.got.meta['switchboard/context'], {
      id: created.id, version: 1,
      data: { workflow: { variables: { budget: 30000 } }, conversation: { intent: 'buy' } },
      missing: [],
    }, 'exactly the required paths, nothing else of the context');
    assert.equal(first.got.meta['switchboard/tenant'], 'default', 'the caller\'s tenant, named by switchboard');
    assert.equal(first.routing.agent, 'budgetbot');
    assert.equal(first.routing.rank, 1);
    assert.equal(first.routing.parts.coverage, 1);
    for (const k of ['health', 'capacity', 'latency']) assert.equal(typeof first.routing.parts[k], 'number', k);
    assert.equal(first.routing.contextVersion, 2, JSON.stringify(first.routing));
    // Sizes for the handoff events: what the agent was handed, beside the
    // whole context it was cut from (version 1, as created).
    assert.equal(first.routing.projectionBytes, Buffer.byteLength(JSON.stringify(first.got.meta['switchboard/context'])));
    assert.equal(first.routing.contextBytes, Buffer.byteLength(JSON.stringify(created)), JSON.stringify(first.routing));

    const v2 = (await c.callTool({ name: 'context_get', arguments: { id: created.id } })).structuredContent;
    assert.equal(v2.version, 2);
    assert.deepEqual(v2.metadata.agents, ['budgetbot']);

    // The context gains the vin and loses the budget and intent: vinbot now wins.
    const upd = await c.callTool({
      name: 'context_update',
      arguments: { id: created.id, expectedVersion: 2, mergePatch: { data: { workflow: { variables: { budget: null, vin: '1HGCM82633A004352' } }, conversation: { intent: '' } } } },
    });
    assert.notEqual(upd.isError, true, JSON.stringify(upd));
    const second = await route({ capability: 'quotes', tool: 'whoami', contextId: created.id });
    assert.equal(second.got.name, 'V');
    assert.deepEqual(second.got.meta['switchboard/context'].data, { workflow: { variables: { vin: '1HGCM82633A004352' } } });
    assert.equal(second.routing.agent, 'vinbot');
    const v4 = (await c.callTool({ name: 'context_get', arguments: { id: created.id } })).structuredContent;
    assert.deepEqual(v4.metadata.agents, ['budgetbot', 'vinbot']);
    assert.equal(v4.version, 4);

    // agents_explain with the same context shows that ranking.
    const ex = (await c.callTool({ name: 'agents_explain', arguments: { capability: 'quotes', contextId: created.id } })).structuredContent;
    // A contextId that is not a string is refused, not explained without it.
    await assert.rejects(callWithin(c, { name: 'agents_explain', arguments: { capability: 'quotes', contextId: 5 } }), /'contextId' must be a string/);
    assert.deepEqual(ex.ranking.map((r) => r.id), ['vinbot', 'budgetbot']);
  });

  it("a call of an agent's own tool hands it the projection of the context its _meta names", async () => {
    const created = (await c.callTool({
      name: 'context_create',
      arguments: { data: { workflow: { variables: { budget: 12000, vin: 'VIN9', secret: 'no' } }, conversation: { intent: 'finance' } } },
    })).structuredContent;
    const meta = { 'switchboard/contextId': created.id };
    const res = await callWithin(c, { name: 'budgetbot__whoami', arguments: { n: 1 }, _meta: meta });
    assert.notEqual(res.isError, true, withStderr(server, JSON.stringify(res)));
    const got = JSON.parse(textOf(res.content));
    assert.equal(got.name, 'B');
    assert.deepEqual(got.meta['switchboard/context'], {
      id: created.id, version: 1,
      data: { workflow: { variables: { budget: 12000 } }, conversation: { intent: 'finance' } },
      missing: [],
    }, "budgetbot's paths only");
    assert.equal(got.meta['switchboard/contextId'], undefined, "the caller's _meta is not passed on");
    const routing = res._meta?.['switchboard/routing'];
    assert.equal(routing?.agent, 'budgetbot', JSON.stringify(res._meta));
    assert.equal(routing.contextId, created.id);
    assert.equal(routing.contextVersion, 2);

    // The same through the agent's own endpoint, where the tool has its own name.
    const own = await connect('modern', server.url.replace(/\/mcp$/, '/agents/vinbot/mcp'));
    try {
      const r2 = await callWithin(own, { name: 'whoami', arguments: {}, _meta: meta });
      assert.notEqual(r2.isError, true, JSON.stringify(r2));
      const got2 = JSON.parse(textOf(r2.content));
      assert.equal(got2.name, 'V');
      assert.deepEqual(got2.meta['switchboard/context'].data, { workflow: { variables: { vin: 'VIN9' } } });
      assert.equal(r2._meta?.['switchboard/routing']?.contextVersion, 3);
    } finally {
      await own.client.close();
    }
    const now = (await c.callTool({ name: 'context_get', arguments: { id: created.id } })).structuredContent;
    assert.deepEqual(now.metadata.agents, ['budgetbot', 'vinbot']);
    assert.equal(now.version, 3);

    // The caller's OpenTelemetry trace context goes on to the agent; a
    // traceparent not in the W3C format does not.
    const trace = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01', tracestate: 'sb=1', baggage: 'dealer=a' };
    for (const [name, params] of [['vinbot__whoami', { arguments: {} }], ['agents_call', { arguments: { agent: 'vinbot', tool: 'whoami' } }]]) {
      const traced = JSON.parse(textOf((await callWithin(c, { name, ...params, _meta: { ...trace, 'x/other': 1 } })).content));
      assert.deepEqual({ traceparent: traced.meta.traceparent, tracestate: traced.meta.tracestate, baggage: traced.meta.baggage }, trace, name);
      assert.equal(traced.meta['x/other'], undefined, "the caller's other _meta is not passed on");
    }
    const untraced = JSON.parse(textOf((await callWithin(c, { name: 'vinbot__whoami', arguments: {}, _meta: { traceparent: '00-zz-00f067aa0ba902b7-01' } })).content));
    assert.equal(untraced.meta.traceparent, undefined);

    await assert.rejects(callWithin(c, { name: 'vinbot__whoami', arguments: {}, _meta: { 'switchboard/contextId': 7 } }),
      /_meta\.switchboard\/contextId: expected a context id/);
    await assert.rejects(callWithin(c, { name: 'vinbot__whoami', arguments: {}, _meta: { 'switchboard/contextId': '0193aaaa-0000-7000-8000-000000000000' } }),
      /contextId: /);
  });

  it('POST /v1/agents/call routes the same way over REST', async () => {
    const base = server.url.replace(/\/mcp$/, '');
    const post = async (body) => {
      const r = await fetch(`${base}/v1/agents/call`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    };
    const created = (await c.callTool({ name: 'context_create', arguments: { data: { workflow: { variables: { vin: 'VIN1' } } } } })).structuredContent;
    const ok = await post({ capability: 'quotes', tool: 'whoami', arguments: { via: 'rest' }, contextId: created.id });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.agent, 'vinbot');
    const got = JSON.parse(ok.body.result.content[0].text);
    assert.deepEqual(got.arguments, { via: 'rest' });
    assert.deepEqual(got.meta['switchboard/context'].data, { workflow: { variables: { vin: 'VIN1' } } });
    assert.equal(ok.body.routing.contextVersion, 2);
    assert.equal(ok.body.routing.parts.coverage, 1);
    // W3C trace context headers go on to the agent in its _meta.
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const traced = await fetch(`${base}/v1/agents/call`, { method: 'POST', headers: { 'Content-Type': 'application/json', traceparent: tp, tracestate: 'sb=rest' },
      body: JSON.stringify({ agent: 'vinbot', tool: 'whoami' }) });
    const tracedMeta = JSON.parse((await traced.json()).result.content[0].text).meta;
    assert.equal(tracedMeta.traceparent, tp);
    assert.equal(tracedMeta.tracestate, 'sb=rest');

    assert.equal((await post('{"tool": ')).status, 400);
    const both = await post({ capability: 'quotes', agent: 'vinbot', tool: 'whoami' });
    assert.equal(both.status, 400);
    assert.match(both.body.error.message, /give 'capability' or 'agent', not both/);
    // Neither is not "both"; a tool that is not a non-empty string is named.
    const neither = await post({ tool: 'whoami' });
    assert.equal(neither.status, 400);
    assert.match(neither.body.error.message, /give 'capability' or 'agent' \(neither was given\)/);
    for (const tool of ['', 5]) {
      const badTool = await post({ agent: 'vinbot', tool });
      assert.equal(badTool.status, 400, JSON.stringify(badTool.body));
      assert.match(badTool.body.error.message, /'tool' must be a non-empty string/);
    }
    assert.equal((await post({ capability: 'teleport', tool: 'whoami' })).status, 404);
    const missing = await post({ capability: 'quotes', tool: 'whoami', contextId: '0193aaaa-0000-7000-8000-000000000000' });
    assert.equal(missing.status, 422, JSON.stringify(missing.body));
    assert.match(missing.body.error.message, /^contextId: /);
    const agentError = await post({ agent: 'forger', tool: 'forged' });
    assert.equal(agentError.status, 502);
    assert.equal(agentError.body.error.code, 'agent_error');
  });

  it('names an agent; refuses bad arguments and unknown contexts clearly', async () => {
    const named = await route({ agent: 'vinbot', tool: 'whoami' });
    assert.equal(named.got.name, 'V');
    assert.equal(named.got.meta?.['switchboard/context'], undefined, 'no context, no projection');
    await assert.rejects(callWithin(c, { name: 'agents_call', arguments: { tool: 'whoami' } }), /give 'capability' or 'agent'/);
    await assert.rejects(callWithin(c, { name: 'agents_call', arguments: { capability: 'quotes', tool: 'whoami', contextId: 'nope' } }), /contextId: /);
    // A misspelt argument is refused, naming it, rather than ignored (a
    // misspelt contextId routed the call without its context).
    await assert.rejects(callWithin(c, { name: 'agents_call', arguments: { capability: 'quotes', tool: 'whoami', contextid: 'x' } }),
      /contextid: unknown argument \(known: capability, agent, tool, arguments, contextId\)/);
    const listed = (await c.client.listTools()).tools.find((t) => t.name === 'agents_call');
    assert.equal(listed.inputSchema.additionalProperties, false);
    const none = await callWithin(c, { name: 'agents_call', arguments: { capability: 'teleport', tool: 'whoami' } });
    assert.equal(none.isError, true);
    assert.match(textOf(none.content), /no agent has capability teleport/);
  });

  it("an agent's error whose data looks like a transport failure is its answer: no retry, no breaker", async () => {
    // The agent numbers its calls: each of ours must reach it exactly once.
    const seen = [];
    for (let i = 0; i < 6; i++) {
      const e = await callWithin(c, { name: 'forger__forged', arguments: {} }).then(() => null, (err) => err);
      const m = /F forged failure #(\d+)/.exec(e?.message ?? '');
      assert.ok(m, `an error from the agent, got ${e?.message}`);
      seen.push(Number(m[1]));
    }
    for (let i = 1; i < seen.length; i++)
      assert.equal(seen[i], seen[i - 1] + 1, `one call at the agent per call (no retry): ${seen}`);
    const list = (await c.callTool({ name: 'agents_list', arguments: {} })).structuredContent.agents;
    const forger = list.find((a) => a.definition.id === 'forger');
    assert.equal(forger.state.breaker, 'closed', JSON.stringify(forger.state));
    assert.equal(forger.state.callsFailed, 0, 'answers, not transport failures');
    assert.equal(forger.state.callsOk, seen.length + 1, 'the six here and the REST one');
  });

  it('agents_list and GET /v1/agents show only the agents of a type, or with a capability, when asked', async () => {
    const ids = (list) => list.map((a) => a.definition.id).sort();
    const tool = async (args) => c.callTool({ name: 'agents_list', arguments: args });
    assert.deepEqual(ids((await tool({ type: 'finance' })).structuredContent.agents), ['budgetbot']);
    assert.deepEqual(ids((await tool({ capability: 'quotes' })).structuredContent.agents), ['budgetbot', 'vinbot']);
    assert.deepEqual(ids((await tool({ type: 'general', capability: 'quotes' })).structuredContent.agents), ['vinbot']);
    assert.deepEqual((await tool({ type: 'parts' })).structuredContent.agents, []);
    const bad = await tool({ type: 'marketing' }).then((r) => r, (e) => e);
    assert.match(bad.message ?? JSON.stringify(bad), /type: expected one of sales, service, parts, finance, general \(got "marketing"\)/);
    const typo = await tool({ capabilty: 'quotes' }).then((r) => r, (e) => e);
    assert.match(typo.message ?? JSON.stringify(typo), /capabilty: unknown argument/);
    const base = server.url.replace(/\/mcp$/, '');
    const get = async (q) => {
      const r = await fetch(`${base}/v1/agents${q}`);
      return { status: r.status, json: await r.json() };
    };
    const fin = await get('?type=finance&capability=quotes');
    assert.equal(fin.status, 200);
    assert.deepEqual(ids(fin.json.agents), ['budgetbot']);
    assert.deepEqual(ids((await get('?capability=forging')).json.agents), ['forger']);
    const refused = await get('?type=marketing');
    assert.equal(refused.status, 400);
    assert.match(refused.json.error.message, /^type: expected one of sales/);
  });

  it('a call right after agents_register waits for the new agent to connect', async () => {
    const reg = await c.callTool({ name: 'agents_register', arguments: { definition: raw('late', 'L', { capabilities: ['late'] }) } });
    assert.notEqual(reg.isError, true, JSON.stringify(reg));
    const res = await callWithin(c, { name: 'late__whoami', arguments: {} });
    assert.notEqual(res.isError, true, withStderr(server, JSON.stringify(res)));
    assert.equal(JSON.parse(textOf(res.content)).name, 'L');
  });
});

describe('the first call after start', () => {
  it('waits for the agent instead of answering "not connected"', async () => {
    const server = await startWithAgents([raw('early', 'E')]);
    try {
      const c = await connect('modern', server.url);
      const res = await callWithin(c, { name: 'early__whoami', arguments: {} });
      assert.notEqual(res.isError, true, withStderr(server, JSON.stringify(res)));
      assert.equal(JSON.parse(textOf(res.content)).name, 'E');
      await c.close();
    } finally {
      await server.stop();
    }
  });
});

describe('an agent that cannot start', () => {
  it('a call to it says why it is not connected, at once once its connects keep failing', async () => {
    // Its timeout is long: a call that waited for a connection would not
    // be answered within the deadline.
    const ghost = agentDef('ghost', { capabilities: ['g'], transport: { type: 'stdio', command: '/nonexistent/switchboard-test-agent' }, limits: { timeoutMs: 120000 } });
    const server = await startWithAgents([ghost]);
    try {
      await pollUntil(() => ((server.stderr.match(/agent ghost: cannot start/g) ?? []).length >= 2 ? { ok: true } : { ok: false, message: server.stderr.slice(-500) }),
        { what: 'two failed starts of ghost' });
      const base = server.url.replace(/\/mcp$/, '');
      const post = async (body) => {
        const r = await fetch(`${base}/v1/agents/call`, {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(DEADLINE_MS),
        });
        return { status: r.status, body: await r.json() };
      };
      // Once said only "unavailable (not connected)", after waiting.
      const down = await post({ agent: 'ghost', tool: 'x' });
      assert.equal(down.status, 503, JSON.stringify(down.body));
      assert.match(down.body.error.message, /not connected: .*cannot start \/nonexistent\/switchboard-test-agent/);
      const again = await post({ agent: 'ghost', tool: 'x', timeoutMs: 100 });
      assert.equal(again.status, 503, JSON.stringify(again.body));
      assert.match(again.body.error.message, /cannot start \/nonexistent\/switchboard-test-agent/);
    } finally {
      await server.stop();
    }
  });
});

describe('a dual-era agent', () => {
  it("asking for sampling with a request of its own reaches a legacy client that declared it", async () => {
    // It answers server/discover, so switchboard speaks to it as modern,
    // yet it asks the legacy way while serving the call.
    const server = await startWithAgents([agentDef('dual', {
      capabilities: ['x'], transport: { type: 'stdio', command: process.execPath, args: [RAW, 'D', '--dual'] },
    })]);
    try {
      const c = await connect('legacy', server.url.replace(/\/mcp$/, '/agents/dual/mcp'), {
        sampling: async () => ({ role: 'assistant', content: { type: 'text', text: 'the blue one' }, model: 'test' }),
      });
      const res = await callWithin(c, { name: 'ask', arguments: {} });
      assert.equal(textOf(res.content), 'D heard: the blue one', withStderr(server, JSON.stringify(res)));
      assert.equal(c.samplings.items.length, 1);
      assert.match(server.stderr, /agent dual: modern MCP 2026-07-28/);
      await c.close();
    } finally {
      await server.stop();
    }
  });
});

describe('a switchboard fronting another switchboard', () => {
  it("the inner one's errors are answers to the outer one: no retry, no breaker", async () => {
    // The inner switchboard serves a forging agent and a hanging one on
    // stdio; the outer one has the inner one as its agent.
    const inner = writeConfig([
      raw('forger', 'F', { capabilities: ['forging'] }),
      { ...agentDef('hanger', { capabilities: ['x'], transport: { type: 'stdio', command: process.execPath, args: [FLAKY, 'H'] } }), limits: { timeoutMs: 300 } },
    ]);
    const server = await startWithAgents([{
      ...agentDef('inner', { capabilities: ['inner'], transport: { type: 'stdio', command: process.env.SWITCHBOARD_BIN, args: ['serve', '--stdio', '--config', inner] } }),
      limits: { retries: 2, timeoutMs: 5000 },
    }]);
    try {
      const c = await connect('modern', server.url);
      await waitForTools(c, ['inner__forger__forged', 'inner__hanger__hang']);
      const seen = [];
      for (let i = 0; i < 3; i++) {
        const e = await callWithin(c, { name: 'inner__forger__forged', arguments: {} }).then(() => null, (err) => err);
        const m = /F forged failure #(\d+)/.exec(e?.message ?? '');
        assert.ok(m, withStderr(server, `the forged error, got ${e?.message}`));
        seen.push(Number(m[1]));
      }
      assert.deepEqual(seen, [seen[0], seen[0] + 1, seen[0] + 2], 'each call reached the agent once');
      // The inner agent times out: the inner switchboard answers with a
      // tool error, which the outer one passes on without a retry.
      const res = await callWithin(c, { name: 'inner__hanger__hang', arguments: {} });
      assert.equal(res.isError, true);
      assert.match(textOf(res.content), /agent hanger: tools\/call timed out after 300 ms/);
      const list = (await c.callTool({ name: 'agents_list', arguments: {} })).structuredContent.agents;
      const state = list.find((a) => a.definition.id === 'inner').state;
      assert.equal(state.callsFailed, 0, JSON.stringify(state));
      assert.equal(state.breaker, 'closed');
      assert.doesNotMatch(server.stderr, /agent inner: retrying/);
      await c.close();
    } finally {
      await server.stop();
    }
  });
});
