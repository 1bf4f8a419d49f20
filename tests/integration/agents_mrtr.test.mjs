// agents_mrtr.test.mjs: an agent's request for input reaches the client
// that made the call, in that client's era:
//   legacy agent (server-everything) + modern client: its sampling request
//     becomes an input_required result; the v2 SDK answers it with its
//     sampling handler and retries; the agent gets the answer;
//   modern agent (a second switchboard's ask_user) + legacy client: its
//     input_required becomes a real elicitation/create to the v1 client;
//   modern agent + modern client: input_required passes through.
import { describe, it, before, after } from 'node:test';
import { appendFileSync } from 'node:fs';
import assert from 'node:assert/strict';

import { Client as ModernClient, StreamableHTTPClientTransport as ModernHttp } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyHttp } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, CreateMessageRequestSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import { DEADLINE_MS, MODERN_VERSION, postModern, startHttpServer, textOf, withDeadline } from './lib/harness.mjs';
import { writeFlowConfig } from './lib/flows.mjs';
import { startModels } from './lib/models.mjs';
import { agentDef, everythingStdio, pollUntil, startHttpAgent, writeConfig } from '../agents/agents_lib.mjs';

const INFO = { name: 'switchboard-mrtr-tests', version: '0.1.0' };

async function modernClient(url, { sampling, elicit } = {}) {
  const caps = {};
  if (sampling) caps.sampling = {};
  if (elicit) caps.elicitation = { form: {} };
  const client = new ModernClient(INFO, { capabilities: caps, versionNegotiation: { mode: { pin: MODERN_VERSION } } });
  const seen = [];
  if (sampling) client.setRequestHandler('sampling/createMessage', async (req) => { seen.push(req); return sampling(req); });
  if (elicit) client.setRequestHandler('elicitation/create', async (req) => { seen.push(req); return elicit(req); });
  await withDeadline(client.connect(new ModernHttp(new URL(url))), DEADLINE_MS, 'v2 connect');
  return { client, seen };
}

async function legacyClient(url, elicit) {
  const client = new LegacyClient(INFO, { capabilities: { elicitation: {} } });
  const seen = [];
  client.setRequestHandler(ElicitRequestSchema, async (req) => { seen.push(req); return elicit(req); });
  const transport = new LegacyHttp(new URL(url));
  await withDeadline(client.connect(transport), DEADLINE_MS, 'v1 connect');
  return { client, seen, transport };
}

async function waitForTool(client, name) {
  await pollUntil(async () => {
    const names = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : undefined);
      names.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor);
    return names.includes(name) ? true : { ok: false, message: names.join(',') };
  }, { what: `${name} listed` });
}

describe('input requests across eras', () => {
  let back;
  let front;

  before(async () => {
    back = await startHttpServer(); // a modern agent with ask_user
    front = await startHttpServer({
      extraArgs: ['--config', writeConfig([
        everythingStdio('everything'),
        agentDef('back', { transport: { type: 'http', url: back.url } }),
        agentDef('raw', { transport: { type: 'stdio', command: process.execPath, args: [RAW, 'raw'] } }),
      ])],
    });
  });

  after(async () => {
    for (const s of [front, back]) {
      const done = await s.stop();
      assert.equal(done.code, 0, s.stderr.slice(-2000));
    }
  });

  it('legacy agent sampling -> modern client: input_required answered by the SDK', async () => {
    const { client, seen } = await modernClient(front.url, {
      sampling: async () => ({ role: 'assistant', content: { type: 'text', text: 'the 2026 F-150 is in stock' }, model: 'test-model', stopReason: 'endTurn' }),
    });
    try {
      await waitForTool(client, 'everything__trigger-sampling-request');
      const res = await withDeadline(client.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'Is the F-150 in stock?', maxTokens: 50 } }),
        DEADLINE_MS, 'sampling round trip');
      assert.notEqual(res.isError, true, JSON.stringify(res));
      assert.equal(seen.length, 1, 'the client sampling handler ran once');
      assert.match(JSON.stringify(res.content), /the 2026 F-150 is in stock/);
    } finally {
      await client.close();
    }
  });

  it('modern agent input_required -> legacy client: asked as elicitation/create', async () => {
    const { client, seen, transport } = await legacyClient(front.url, async () => ({ action: 'accept', content: { answer: 'tuesday at 9' } }));
    try {
      await waitForTool(client, 'back__ask_user');
      const res = await withDeadline(client.callTool({ name: 'back__ask_user', arguments: { question: 'When can you bring the car in?' } }, CallToolResultSchema),
        DEADLINE_MS, 'elicitation round trip');
      assert.equal(seen.length, 1);
      assert.equal(seen[0].params.message, 'When can you bring the car in?');
      assert.equal(textOf(res.content), 'you said: tuesday at 9');
      assert.equal(res.resultType, undefined, 'no resultType for a legacy client');
    } finally {
      if (transport.sessionId) await transport.terminateSession().catch(() => {});
      await client.close();
    }
  });

  it("legacy client: a question tied by guess to the newest call, which the agent answers first, is asked again for the older call", async () => {
    // stdio says nothing of which call the question is for; the newest (the
    // poke) is the guess, and the agent answers it before the question is
    // answered: the question was wait_ask's, and it is asked there.
    const client = new LegacyClient(INFO, { capabilities: { sampling: {} } });
    const seen = [];
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      seen.push(req);
      return { role: 'assistant', content: { type: 'text', text: 'XLE' }, model: 'm' };
    });
    const transport = new LegacyHttp(new URL(front.url));
    await withDeadline(client.connect(transport), DEADLINE_MS, 'v1 connect');
    try {
      await waitForTool(client, 'raw__poke');
      const waiting = client.callTool({ name: 'raw__wait_ask', arguments: {} }, CallToolResultSchema, { timeout: DEADLINE_MS });
      let poked;
      for (const deadline = Date.now() + DEADLINE_MS; ;) {
        poked = await client.callTool({ name: 'raw__poke', arguments: { answer_first: true } }, CallToolResultSchema, { timeout: DEADLINE_MS });
        if (textOf(poked.content) !== 'nothing waits' || Date.now() > deadline) break;
      }
      assert.equal(textOf(poked.content), 'poked');
      const heard = await waiting;
      assert.equal(textOf(heard.content), 'raw heard: XLE');
      assert.ok(seen.length >= 1 && seen.every((r) => r.params.messages[0].content.text === 'which trim?'), JSON.stringify(seen));
    } finally {
      if (transport.sessionId) await transport.terminateSession().catch(() => {});
      await client.close();
    }
  });

  it('modern agent input_required -> modern client: passed through and retried', async () => {
    const { client, seen } = await modernClient(front.url, { elicit: async () => ({ action: 'accept', content: { answer: 'blue' } }) });
    try {
      await waitForTool(client, 'back__ask_user');
      const res = await withDeadline(client.callTool({ name: 'back__ask_user', arguments: {} }), DEADLINE_MS, 'pass-through round trip');
      assert.equal(seen.length, 1);
      assert.equal(textOf(res.content), 'you said: blue');
    } finally {
      await client.close();
    }
  });

  it('a modern client without the capability an agent asks for gets -32021 naming it (HTTP 400), from a legacy or a modern agent', async () => {
    // 2026-07-28 basic/index.mdx: a request that needs a capability the
    // client did not declare is answered MissingRequiredClientCapability.
    const cases = [
      ['everything__trigger-elicitation-request', {}, 'elicitation'],
      ['everything__trigger-sampling-request', { prompt: 'x', maxTokens: 5 }, 'sampling'],
      ['back__ask_user', {}, 'elicitation'],
    ];
    for (const [name, args, cap] of cases) {
      const r = await postModern(front.url, 'none', 'tools/call', { name, arguments: args }, { tasks: false });
      assert.equal(r.status, 400, `${name}: ${r.text}`);
      assert.equal(r.error?.code, -32021, `${name}: ${r.text}`);
      assert.deepEqual(r.error.data?.requiredCapabilities, { [cap]: {} }, `${name}: ${r.text}`);
    }
  });

  it('a tampered switchboard requestState is refused', async () => {
    const res = await fetch(front.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': MODERN_VERSION, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'back__ask_user' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'back__ask_user', arguments: {}, requestState: 'Zm9v.YmFy', inputResponses: { answer: { action: 'accept', content: { answer: 'x' } } }, _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN_VERSION, 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } } } }),
    });
    const body = await res.json();
    // not ours, so it goes to the agent as its own state, which refuses it
    assert.equal(body.error?.code, -32602, JSON.stringify(body));
    assert.match(body.error.message, /requestState/);
  });
});

// Two tenants of one server, for the raw agent's questions.
const RAW = new URL('../agents/raw_agent.mjs', import.meta.url).pathname;
const A = { id: 'dealer-a', token: 'mrtr-token-dealer-a-0123456789' };
const B = { id: 'dealer-b', token: 'mrtr-token-dealer-b-0123456789' };

/** dealer-a's raw__wait_ask held at the agent, then dealer-b's raw__poke
 * making it ask, with nothing on stdio to say for which call (poked again
 * while it answers "nothing waits": dealer-a's call is still on its way).
 * The poke is checked; dealer-a's answer is returned. */
async function askWhileAnotherTenantPokes(url) {
  const opts = { tasks: false, meta: { 'io.modelcontextprotocol/clientCapabilities': { sampling: {} } } };
  const waiting = postModern(url, A.token, 'tools/call', { name: 'raw__wait_ask', arguments: {} }, opts);
  let poked;
  for (const deadline = Date.now() + DEADLINE_MS; ;) {
    poked = await postModern(url, B.token, 'tools/call', { name: 'raw__poke', arguments: {} }, opts);
    if (poked.result?.content?.[0]?.text !== 'nothing waits' || Date.now() > deadline) break;
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(poked.result?.resultType, 'complete', poked.text);
  assert.equal(poked.result?.content?.[0]?.text, 'poked', poked.text);
  return waiting;
}

describe('a raw agent asking in the middle of a call: tenant binding, capabilities the client lacks', () => {
  const ASKING = new URL('../agents/asking_http_agent.mjs', import.meta.url).pathname;
  let server;
  let asking; // a legacy HTTP agent on the v1 SDK

  before(async () => {
    asking = await startHttpAgent(ASKING, 'asking-http', 'asking agent');
    const { file } = writeFlowConfig({
      agents: [
        agentDef('raw', { transport: { type: 'stdio', command: process.execPath, args: [RAW, 'raw'] } }),
        agentDef('asking', { transport: { type: 'http', url: asking.url } }),
      ],
      tenants: [A, B],
    });
    server = await startHttpServer({ extraArgs: ['--config', file] });
    await pollUntil(async () => {
      const r = await postModern(server.url, A.token, 'tools/list', {});
      const names = r.result?.tools?.map((t) => t.name) ?? [];
      return names.includes('raw__ask') && names.includes('asking__wait_ask') ? true : { ok: false, message: r.text };
    }, { what: 'raw__ask and asking__wait_ask listed' });
  });
  after(async () => {
    await asking?.stop(); // first: a server that never started must not keep it
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  it('another tenant presenting its requestState is refused, and the owner still answers', async () => {
    const opts = { meta: { 'io.modelcontextprotocol/clientCapabilities': { sampling: {} } } };
    const asked = await postModern(server.url, A.token, 'tools/call', { name: 'raw__ask', arguments: {} }, opts);
    assert.equal(asked.result?.resultType, 'input_required', asked.text);
    const state = asked.result.requestState;
    const answer = { agent_request: { role: 'assistant', content: { type: 'text', text: 'XLE' }, model: 'm' } };
    const retry = (token, text) => postModern(server.url, token, 'tools/call',
      { name: 'raw__ask', arguments: {}, requestState: state, inputResponses: { agent_request: { ...answer.agent_request, content: { type: 'text', text } } } }, opts);
    const stolen = await retry(B.token, 'from dealer-b');
    assert.equal(stolen.error?.code, -32602, stolen.text);
    assert.match(stolen.error.message, /requestState: issued for a different request/);
    const owned = await retry(A.token, 'XLE');
    assert.equal(owned.result?.content?.[0]?.text, 'raw heard: XLE', owned.text);
  });

  it('a roots request after the refused sampling does not hide the missing sampling capability (-32021 names sampling)', async () => {
    // Agents that sync roots on a timer (server-everything does, 350 ms
    // after it starts) may ask for them in the middle of a call, after the
    // question the client could not take: the call still failed for want
    // of sampling, not of roots.
    const r = await postModern(server.url, A.token, 'tools/call', { name: 'raw__ask', arguments: { roots: true } }, { tasks: false });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.error?.code, -32021, r.text);
    assert.deepEqual(r.error.data?.requiredCapabilities, { sampling: {} }, r.text);
  });

  it('a call that lacked sampling and elicitation both is -32021 naming both (requiredCapabilities lists the missing ones)', async () => {
    const r = await postModern(server.url, A.token, 'tools/call', { name: 'raw__ask', arguments: { elicit: true } }, { tasks: false });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.error?.code, -32021, r.text);
    assert.deepEqual(r.error.data?.requiredCapabilities, { sampling: {}, elicitation: {} }, r.text);
    assert.match(r.error.message, /^the agent needs the sampling and elicitation capabilities for this request/, r.text);
  });

  it('roots a modern client did not declare: a tool error done without them passes through; a failed call is -32021 naming roots', async () => {
    const without = await postModern(server.url, A.token, 'tools/call', { name: 'raw__roots', arguments: {} }, { tasks: false });
    assert.equal(without.status, 200, without.text);
    assert.equal(without.result?.isError, true, without.text);
    assert.match(without.result?.content?.[0]?.text ?? '', /^raw works without roots/, without.text);
    const failed = await postModern(server.url, A.token, 'tools/call', { name: 'raw__roots', arguments: { fail: true } }, { tasks: false });
    assert.equal(failed.status, 400, failed.text);
    assert.equal(failed.error?.code, -32021, failed.text);
    assert.deepEqual(failed.error.data?.requiredCapabilities, { roots: {} }, failed.text);
    const declared = await postModern(server.url, A.token, 'tools/call', { name: 'raw__roots', arguments: { fail: true } },
      { tasks: false, meta: { 'io.modelcontextprotocol/clientCapabilities': { roots: {} } } });
    assert.equal(declared.result?.resultType, 'input_required', declared.text);
  });

  it('a question an agent asks without saying for which call, while calls of two tenants are open, reaches neither', async () => {
    // stdio says nothing of which call a request belongs to: the newest
    // call is the guess, and a guess must never hand one tenant's question
    // (its prompt) to another.
    const asked = await askWhileAnotherTenantPokes(server.url);
    assert.equal(asked.result?.isError, true, asked.text);
    assert.match(asked.result.content[0].text, /raw was refused: switchboard cannot tell which of the calls in progress/, asked.text);
  });

  it("a question tied by guess to a caller's newest call, which the agent answers first, goes to that caller's older call", async () => {
    // stdio says nothing of which call a request belongs to: with one
    // caller's calls in flight the newest is the guess. When the agent
    // answers that call with its question still open, the question was
    // the older call's: it is asked there, not left unanswered (which
    // would hold the older call until its timeout).
    const opts = { tasks: false, meta: { 'io.modelcontextprotocol/clientCapabilities': { sampling: {} } } };
    const waiting = postModern(server.url, A.token, 'tools/call', { name: 'raw__wait_ask', arguments: {} }, opts);
    let poked;
    for (const deadline = Date.now() + DEADLINE_MS; ;) {
      poked = await postModern(server.url, A.token, 'tools/call', { name: 'raw__poke', arguments: { answer_first: true } }, opts);
      if (poked.result?.content?.[0]?.text !== 'nothing waits' || Date.now() > deadline) break;
      await new Promise((r) => setImmediate(r));
    }
    // the guess: the poke, the newest call
    assert.equal(poked.result?.resultType, 'input_required', poked.text);
    const answer = (key, text) => ({ [key]: { role: 'assistant', content: { type: 'text', text }, model: 'm' } });
    const pokeKey = Object.keys(poked.result.inputRequests)[0];
    // the agent answered the poke: the question moves to wait_ask
    const asked = await waiting;
    assert.equal(asked.result?.resultType, 'input_required', asked.text);
    const key = Object.keys(asked.result.inputRequests)[0];
    assert.equal(asked.result.inputRequests[key].params.messages[0].content.text, 'which trim?', asked.text);
    // the poke's retry gets the poke's own answer; its question is gone
    const pokeEnd = await postModern(server.url, A.token, 'tools/call',
      { name: 'raw__poke', arguments: { answer_first: true }, requestState: poked.result.requestState, inputResponses: answer(pokeKey, 'ignored') }, opts);
    assert.equal(pokeEnd.result?.content?.[0]?.text, 'poked', pokeEnd.text);
    const heard = await postModern(server.url, A.token, 'tools/call',
      { name: 'raw__wait_ask', arguments: {}, requestState: asked.result.requestState, inputResponses: answer(key, 'XLE') }, opts);
    assert.equal(heard.result?.content?.[0]?.text, 'raw heard: XLE', heard.text);
  });

  it('over HTTP the stream a question (or a log line) comes on names its call: it reaches that caller, not the newest call', async () => {
    const opts = { tasks: false, meta: { 'io.modelcontextprotocol/clientCapabilities': { sampling: {} }, 'io.modelcontextprotocol/logLevel': 'debug' } };
    const logs = (r) => r.text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)))
      .filter((m) => m.method === 'notifications/message').map((m) => m.params.data);
    const waiting = postModern(server.url, A.token, 'tools/call', { name: 'asking__wait_ask', arguments: {} }, opts);
    let poke;
    for (const deadline = Date.now() + DEADLINE_MS; ;) {
      // dealer-b's call is the newest when the agent asks for dealer-a's
      poke = postModern(server.url, B.token, 'tools/call', { name: 'asking__poke', arguments: {} }, opts);
      const first = await Promise.race([poke.then((r) => ({ poke: r })), waiting.then((r) => ({ asked: r }))]);
      if (first.poke?.result?.content?.[0]?.text !== 'nothing waits' || Date.now() > deadline) break;
    }
    const asked = await waiting;
    assert.equal(asked.result?.resultType, 'input_required', asked.text);
    const question = Object.values(asked.result.inputRequests)[0];
    assert.equal(question.params.messages[0].content.text, 'which trim?', asked.text);
    const key = Object.keys(asked.result.inputRequests)[0];
    const answered = await postModern(server.url, A.token, 'tools/call', {
      name: 'asking__wait_ask', arguments: {}, requestState: asked.result.requestState,
      inputResponses: { [key]: { role: 'assistant', content: { type: 'text', text: 'XLE' }, model: 'm' } },
    }, opts);
    assert.equal(answered.result?.content?.[0]?.text, 'heard: XLE', answered.text);
    const poked = await poke;
    assert.equal(poked.result?.content?.[0]?.text, 'poked', poked.text);
    assert.deepEqual(logs(asked), ['wait_ask asks'], asked.text);
    assert.deepEqual(logs(poked), [], poked.text);
  });

  it("switchboard's own questions (ask_user) are bound to the tenant too", async () => {
    const opts = { elicitation: true };
    const asked = await postModern(server.url, A.token, 'tools/call', { name: 'ask_user', arguments: { question: 'colour?' } }, opts);
    assert.equal(asked.result?.resultType, 'input_required', asked.text);
    const retry = (token) => postModern(server.url, token, 'tools/call',
      { name: 'ask_user', arguments: { question: 'colour?' }, requestState: asked.result.requestState, inputResponses: { answer: { action: 'accept', content: { answer: 'red' } } } }, opts);
    const stolen = await retry(B.token);
    assert.equal(stolen.error?.code, -32602, stolen.text);
    assert.match(stolen.error.message, /requestState: issued for a different request/);
    const owned = await retry(A.token);
    assert.equal(owned.result?.resultType, 'complete', owned.text);
    assert.match(owned.result?.content?.[0]?.text ?? '', /red/, owned.text);
  });
});

describe("a question nobody may be asked (a guess among two tenants' calls) is refused even with the agent's models configured", () => {
  let server;
  let models;

  before(async () => {
    models = await startModels();
    const { file } = writeFlowConfig({
      agents: [{ ...agentDef('raw', { transport: { type: 'stdio', command: process.execPath, args: [RAW, 'raw'] } }), models: { primary: 'ok-primary' } }],
      tenants: [A, B],
    });
    appendFileSync(file, `llm:\n  base_url: ${models.baseUrl}\n`);
    server = await startHttpServer({ extraArgs: ['--config', file] });
    await pollUntil(async () => {
      const r = await postModern(server.url, A.token, 'tools/list', {});
      return r.result?.tools?.some((t) => t.name === 'raw__wait_ask') ? true : { ok: false, message: r.text };
    }, { what: 'raw__wait_ask listed' });
  });
  after(async () => {
    await models?.stop(); // first: a server that never started must not keep it
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  it('the models are not asked either: their answer would live and die with a call the question may not belong to', async () => {
    const asked = await askWhileAnotherTenantPokes(server.url);
    assert.equal(asked.result?.isError, true, asked.text);
    assert.match(asked.result.content[0].text, /raw was refused: switchboard cannot tell which of the calls in progress/, asked.text);
    assert.deepEqual(await models.requests(), []);
    // alone on the agent, the same question is the caller's, and the
    // models answer it for a caller that cannot sample
    const alone = await postModern(server.url, A.token, 'tools/call', { name: 'raw__ask', arguments: {} }, { tasks: false });
    assert.match(alone.result?.content?.[0]?.text ?? '', /^raw heard: /, alone.text);
    const sent = await models.requests();
    assert.equal(sent.length, 1, JSON.stringify(sent));
    assert.equal(sent[0].model, 'ok-primary', JSON.stringify(sent[0]));
  });
});

/**
 * Within a describe: a switchboard with the raw agent alone (its `limits`,
 * if given), up once `tool` is listed; stopped after, cleanly.
 */
function withRawAgent(tool, limits) {
  const env = {};
  before(async () => {
    env.server = await startHttpServer({
      extraArgs: ['--config', writeConfig([agentDef('raw', {
        ...(limits ? { limits } : {}),
        transport: { type: 'stdio', command: process.execPath, args: [RAW, 'raw'] },
      })])],
    });
    await pollUntil(async () => {
      const r = await postModern(env.server.url, 'none', 'tools/list', {});
      return r.result?.tools?.some((t) => t.name === tool) || { ok: false, message: r.text };
    }, { what: `${tool} listed` });
  });
  after(async () => {
    const done = await env.server.stop();
    assert.equal(done.code, 0, env.server.stderr.slice(-2000));
  });
  return env;
}

// 2026-07-28 mrtr.mdx: servers MUST NOT assume that clients will fulfil
// the inputRequests or retry. A legacy agent's question parks its call,
// which holds a place at the agent: callers that never come back must not
// take every place (maxConcurrent 2 here: one call may wait so).
describe('modern callers that never come back with the answer', () => {
  const env = withRawAgent('raw__ask', { maxConcurrent: 2, timeoutMs: 60000 });

  it('do not hold every place at the agent: the oldest waiting call is cancelled, and its retry told so', async () => {
    const opts = { meta: { 'io.modelcontextprotocol/clientCapabilities': { sampling: {} } } };
    const asked = [];
    for (let i = 0; i < 2; i++) {
      const r = await postModern(env.server.url, 'none', 'tools/call', { name: 'raw__ask', arguments: {} }, opts);
      assert.equal(r.result?.resultType, 'input_required', r.text);
      asked.push(r.result.requestState);
    }
    // Both abandoned; a plain call still finds a place, at once.
    const plain = await postModern(env.server.url, 'none', 'tools/call', { name: 'raw__whoami', arguments: {} });
    assert.equal(plain.result?.resultType, 'complete', plain.text);
    assert.notEqual(plain.result.isError, true, plain.text);
    // The first caller, back after all: its call was given up.
    const answer = { agent_request: { role: 'assistant', content: { type: 'text', text: 'late' }, model: 'm' } };
    const late = await postModern(env.server.url, 'none', 'tools/call',
      { name: 'raw__ask', arguments: {}, requestState: asked[0], inputResponses: answer }, opts);
    assert.equal(late.result?.isError, true, late.text);
    assert.match(late.result.content[0].text, /its caller had not come back with the answer/, late.text);
    // The second is still waiting for its caller, and is answered.
    const kept = await postModern(env.server.url, 'none', 'tools/call',
      { name: 'raw__ask', arguments: {}, requestState: asked[1], inputResponses: answer }, opts);
    assert.equal(kept.result?.content?.[0]?.text, 'raw heard: late', kept.text);
  });
});

describe('a legacy agent asking a modern caller two questions at once', () => {
  const env = withRawAgent('raw__ask_two');

  it('is passed the first; the second is refused to the agent saying one is asked at a time', async () => {
    const opts = { meta: { 'io.modelcontextprotocol/clientCapabilities': { sampling: {}, elicitation: { form: {} } } } };
    const asked = await postModern(env.server.url, 'none', 'tools/call', { name: 'raw__ask_two', arguments: {} }, opts);
    assert.equal(asked.result?.resultType, 'input_required', asked.text);
    assert.deepEqual(Object.keys(asked.result.inputRequests), ['agent_request']);
    assert.equal(asked.result.inputRequests.agent_request.method, 'sampling/createMessage');
    const answer = { agent_request: { role: 'assistant', content: { type: 'text', text: 'XLE' }, model: 'm' } };
    const done = await postModern(env.server.url, 'none', 'tools/call',
      { name: 'raw__ask_two', arguments: {}, requestState: asked.result.requestState, inputResponses: answer }, opts);
    assert.equal(done.result?.content?.[0]?.text,
      'sampling answered; elicitation refused: switchboard passes the caller of this call one question at a time, and another is being asked of it; send elicitation/create again once that one is answered', done.text);
  });
});
