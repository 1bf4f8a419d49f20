// Workflow runs as MCP tasks, against the real binary and a real MCP agent
// (tests/agents/flow_agent.mjs over stdio):
//   - 2026-07-28, the tasks extension (io.modelcontextprotocol/tasks): the
//     v2 SDK client has no runtime for it (its task methods are 2025-11-25
//     vocabulary only), so tasks/get, tasks/update and tasks/cancel go as
//     raw JSON-RPC over HTTP with the headers 2026-07-28 asks for; the v2
//     client itself checks server/discover and that a client without the
//     extension never gets a task;
//   - 2025-11-25, the tasks utility, driven by the v1 SDK client's own task
//     support (client.experimental.tasks: callToolStream, getTask,
//     getTaskResult, listTasks, cancelTask).
// Also: a task outlives a restart of switchboard (same store), unknown
// task ids get -32602, and another tenant's task is an unknown task.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client as ModernClient, StreamableHTTPClientTransport as ModernHttp } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyHttp } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, CreateTaskResultSchema, ElicitRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';

import { DEADLINE_MS, MODERN_VERSION, TASKS_EXTENSION, postModern, startHttpServer, tempStorePath, withDeadline } from './lib/harness.mjs';
import { agentDef, pollUntil } from '../agents/agents_lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const FLOW_AGENT = join(here, '..', 'agents', 'flow_agent.mjs');
const RELATED = 'io.modelcontextprotocol/related-task';
const TENANTS = {
  a: { id: 'dealer-a', token: 'tasks-token-dealer-a-0123456789' },
  b: { id: 'dealer-b', token: 'tasks-token-dealer-b-9876543210' },
};
const INFO = { name: 'switchboard-tasks-tests', version: '0.1.0' };
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

const WORKFLOWS = [
  {
    name: 'tasks-classify',
    steps: [{ id: 'classify', call: { agent: 'flow', tool: 'classify', arguments: { text: '$workflow.variables.text' } } }],
  },
  {
    name: 'tasks-ask',
    steps: [
      { id: 'classify', call: { agent: 'flow', tool: 'classify', arguments: { text: '$workflow.variables.text' } } },
      {
        id: 'confirm',
        ask: { message: 'Which slot suits you?', schema: { type: 'object', properties: { slot: { type: 'string' } }, required: ['slot'] } },
        save: 'workflow.variables.pick',
      },
      { id: 'book', call: { agent: 'flow', tool: 'book', arguments: { slot: '$workflow.variables.pick.slot' } } },
    ],
  },
  {
    // What the agent was handed (its _meta's traceparent among it).
    name: 'tasks-who',
    steps: [{ id: 'who', call: { agent: 'flow', tool: 'whoami' } }],
  },
  {
    // Two questions at once: a tasks/update may answer both.
    name: 'tasks-two',
    steps: [{
      id: 'both',
      parallel: [
        { id: 'slot', ask: { message: 'Which slot?', schema: { type: 'object', properties: { slot: { type: 'string' } }, required: ['slot'] } }, save: 'workflow.variables.slot' },
        { id: 'color', ask: { message: 'Which color?', schema: { type: 'object', properties: { color: { type: 'string', enum: ['red', 'blue'] } }, required: ['color'] } }, save: 'workflow.variables.color' },
      ],
    }],
  },
  {
    // A question any accept answers: nothing is required.
    name: 'tasks-ok',
    steps: [
      { id: 'ok', ask: { message: 'Go ahead?', schema: { type: 'object', properties: { note: { type: 'string' } } } }, save: 'workflow.variables.ok' },
    ],
  },
];

function writeConfig() {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-tasks-')), 'switchboard.yaml');
  const agent = agentDef('flow', {
    capabilities: ['intake.classify'],
    transport: { type: 'stdio', command: process.execPath, args: [FLOW_AGENT, 'flow'] },
  });
  writeFileSync(file, [
    'cache:', '  ttl_ms: 0',
    'auth:', '  tenants:',
    ...Object.values(TENANTS).flatMap((t) => [`    - id: ${t.id}`, `      token: ${t.token}`]),
    'agents:', `  - ${JSON.stringify(agent)}`,
    'workflows:', ...WORKFLOWS.map((w) => `  - ${JSON.stringify(w)}`),
  ].join('\n') + '\n');
  return file;
}

const taskGet = (url, token, taskId) => postModern(url, token, 'tasks/get', { taskId });

/** Poll tasks/get (at the pollIntervalMs the task suggests) until pred. */
async function pollTask(url, token, taskId, pred, what) {
  let interval = 50;
  return pollUntil(async () => {
    const r = await taskGet(url, token, taskId);
    assert.ok(r.result, `tasks/get answered ${JSON.stringify(r)}`);
    interval = Math.min(r.result.pollIntervalMs ?? 50, 200);
    return pred(r.result) ? r.result : { ok: false, message: JSON.stringify(r.result) };
  }, { what, everyMs: interval });
}

async function legacyClient(url, token, elicit) {
  const client = new LegacyClient(INFO, { capabilities: { elicitation: {}, tasks: {} } });
  const asked = [];
  client.setRequestHandler(ElicitRequestSchema, async (req) => { asked.push(req); return elicit(req); });
  const transport = new LegacyHttp(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  await withDeadline(client.connect(transport), DEADLINE_MS, 'v1 client connect');
  return { client, asked, close: async () => { await transport.terminateSession().catch(() => {}); await client.close(); } };
}

async function drain(stream, ms = DEADLINE_MS * 2) {
  const out = [];
  await withDeadline((async () => { for await (const m of stream) out.push(m); })(), ms, 'callToolStream to end');
  return out;
}

describe('workflow runs as MCP tasks', { timeout: 180000 }, () => {
  let server;
  let config;
  let store;
  const A = TENANTS.a.token;
  const B = TENANTS.b.token;

  before(async () => {
    config = writeConfig();
    store = tempStorePath();
    server = await startHttpServer({ extraArgs: ['--config', config, '--store', store] });
    // The agent is up once its tools are listed.
    await pollUntil(async () => {
      const r = await postModern(server.url, A, 'tools/list', {});
      return r.result?.tools?.some((t) => t.name === 'flow__classify') || { ok: false, message: JSON.stringify(r).slice(0, 300) };
    }, { what: 'the flow agent tools' });
  });

  after(async () => { await server?.stop(); });

  it('server/discover announces the extension; a v2 client that does not declare it gets the plain result', async () => {
    const client = new ModernClient(INFO, { capabilities: {}, versionNegotiation: { mode: { pin: MODERN_VERSION } } });
    const transport = new ModernHttp(new URL(server.url), { requestInit: { headers: { authorization: `Bearer ${A}` } } });
    await withDeadline(client.connect(transport), DEADLINE_MS, 'v2 client connect');
    try {
      assert.deepEqual(client.getServerCapabilities()?.extensions?.[TASKS_EXTENSION], {});
      const res = await withDeadline(client.callTool({ name: 'workflow_run', arguments: { workflow: 'tasks-classify', input: { variables: { text: 'I want to buy a Honda' } } } }),
        DEADLINE_MS, 'workflow_run without tasks');
      assert.equal(res.resultType ?? 'complete', 'complete');
      assert.equal(res.taskId, undefined, 'no task for a client without the extension');
      assert.equal(res.structuredContent.status, 'completed');
      assert.equal(res.structuredContent.history.length, 1);
    } finally {
      await client.close();
    }
    // The raw request without the extension: no task either.
    const raw = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-classify', input: { variables: { text: 'buy' } } } }, { tasks: false });
    assert.equal(raw.result.resultType, 'complete');
    assert.equal(raw.result.structuredContent.status, 'completed');
    // an argument of the wrong type is named, with what it is
    for (const [args, message] of [
      [{ wait: 'yes' }, "'wait' must be a boolean, got a string"],
      [{ input: [] }, "'input' must be an object, got an array"],
      [{ contextId: 7 }, "'contextId' must be a string, got an integer"],
    ]) {
      const bad = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-classify', ...args } }, { tasks: false });
      assert.equal(bad.error?.code, -32602, bad.text);
      assert.equal(bad.error.message, `Invalid arguments for tool workflow_run: ${message}`, bad.text);
    }
  });

  it('2026-07-28: workflow_run becomes a task; tasks/get polls it to completed with the result', async () => {
    const created = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-classify', input: { variables: { text: 'I want to buy a Honda' } } } });
    assert.equal(created.status, 200);
    const t = created.result;
    assert.equal(t.resultType, 'task', JSON.stringify(created));
    assert.equal(typeof t.taskId, 'string');
    assert.ok(['working', 'completed'].includes(t.status), t.status);
    assert.match(t.createdAt, ISO);
    assert.match(t.lastUpdatedAt, ISO);
    assert.equal(t.ttlMs, null, 'runs are kept without limit');
    assert.equal(typeof t.pollIntervalMs, 'number');
    assert.equal(t.result, undefined, 'CreateTaskResult carries no result');
    // Durable before acknowledged: tasks/get answers at once.
    const first = await taskGet(server.url, A, t.taskId);
    assert.equal(first.result.resultType, 'complete');
    assert.equal(first.result.taskId, t.taskId);
    const done = await pollTask(server.url, A, t.taskId, (x) => x.status === 'completed', 'task completed');
    assert.equal(done.createdAt, t.createdAt);
    assert.equal(done.result.isError, undefined);
    assert.equal(done.result.structuredContent.status, 'completed');
    assert.equal(done.result.structuredContent.id, t.taskId, 'the task is the run');
    const out = done.result.structuredContent.history[0];
    assert.equal(out.step, 'classify');
    assert.equal(out.agent, 'flow');
  });

  it("workflow_run hands the caller's trace context (_meta traceparent, tracestate) to the agents its run calls", async () => {
    const trace = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'sb=1' };
    const created = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-who' } }, { tasks: false, meta: trace });
    const run = created.result?.structuredContent;
    assert.equal(run?.status, 'completed', JSON.stringify(created));
    const r = await fetch(new URL(`/v1/contexts/${run.contextId}`, server.url), { headers: { authorization: `Bearer ${A}` } });
    assert.equal((await r.json()).data.workflow.outputs.who.trace, trace.traceparent);
  });

  it('2026-07-28: an ask step is input_required, answered with tasks/update', async () => {
    const created = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-ask', input: { variables: { text: 'buy a Ford' } } } });
    const id = created.result.taskId;
    const waiting = await pollTask(server.url, A, id, (x) => x.status === 'input_required', 'input_required');
    const keys = Object.keys(waiting.inputRequests);
    assert.deepEqual(keys, ['confirm/1']);
    const req = waiting.inputRequests['confirm/1'];
    assert.equal(req.method, 'elicitation/create');
    assert.equal(req.params.message, 'Which slot suits you?');
    assert.deepEqual(req.params.requestedSchema.required, ['slot']);
    // Responses for unknown keys are ignored; the task still waits.
    const ignored = await postModern(server.url, A, 'tasks/update', { taskId: id, inputResponses: { 'nope/1': { action: 'accept', content: { slot: 'x' } } } });
    assert.deepEqual(Object.keys(ignored.result).filter((k) => k !== '_meta'), ['resultType']);
    assert.equal((await taskGet(server.url, A, id)).result.status, 'input_required');
    // The answer: acknowledged with an empty result.
    const ack = await postModern(server.url, A, 'tasks/update', { taskId: id, inputResponses: { 'confirm/1': { action: 'accept', content: { slot: 'sat-10am' } } } });
    assert.equal(ack.result.resultType, 'complete', JSON.stringify(ack));
    const done = await pollTask(server.url, A, id, (x) => x.status === 'completed', 'completed after the answer');
    const run = done.result.structuredContent;
    assert.deepEqual(run.history.map((h) => h.step), ['classify', 'confirm', 'book']);
    const booked = run.history.find((h) => h.step === 'book');
    assert.equal(booked.status, 'completed');
  });

  it('2026-07-28: a tasks/update response with no valid action is -32602 naming it, and the run keeps waiting', async () => {
    const created = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-ask', input: { variables: { text: 'buy' } } } });
    const id = created.result.taskId;
    await pollTask(server.url, A, id, (x) => x.status === 'input_required', 'input_required');
    // Each of these once cancelled the run, as if the person had said no.
    for (const response of [{}, { action: 'bogus' }, { action: 5, content: { slot: 'x' } }, 'accept']) {
      const r = await postModern(server.url, A, 'tasks/update', { taskId: id, inputResponses: { 'confirm/1': response } });
      assert.equal(r.error?.code, -32602, `${JSON.stringify(response)}: ${JSON.stringify(r)}`);
      assert.match(r.error.message, /confirm\/1/, r.error.message);
      assert.match(r.error.message, /accept, decline or cancel|an object/, r.error.message);
      assert.equal((await taskGet(server.url, A, id)).result.status, 'input_required', `after ${JSON.stringify(response)}`);
    }
    // A malformed response beside a good one: nothing is given.
    const mixed = await postModern(server.url, A, 'tasks/update', { taskId: id, inputResponses: { 'confirm/1': { action: 'nope' }, 'other/1': { action: 'accept' } } });
    assert.equal(mixed.error?.code, -32602, JSON.stringify(mixed));
    assert.equal((await taskGet(server.url, A, id)).result.status, 'input_required');
    await postModern(server.url, A, 'tasks/cancel', { taskId: id });
  });

  it('2026-07-28: a tasks/update answering two questions where the second does not fit its schema gives neither, and says which', async () => {
    const created = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-two' } });
    const id = created.result.taskId;
    const waiting = await pollTask(server.url, A, id, (x) => x.status === 'input_required' && Object.keys(x.inputRequests ?? {}).length === 2, 'two questions');
    assert.deepEqual(Object.keys(waiting.inputRequests).sort(), ['color/1', 'slot/1']);
    const slot = { action: 'accept', content: { slot: 'wed-11am' } };
    const refused = await postModern(server.url, A, 'tasks/update', { taskId: id, inputResponses: { 'slot/1': slot, 'color/1': { action: 'accept', content: { color: 'green' } } } });
    assert.equal(refused.error?.code, -32602, JSON.stringify(refused));
    assert.match(refused.error.message, /^params\.inputResponses\["color\/1"\]: answer: does not match step color's schema: \$\.color: "green" is not one of the allowed values$/);
    // Neither answer was given: both questions are still asked.
    const still = (await taskGet(server.url, A, id)).result;
    assert.equal(still.status, 'input_required');
    assert.deepEqual(Object.keys(still.inputRequests).sort(), ['color/1', 'slot/1']);
    const ack = await postModern(server.url, A, 'tasks/update', { taskId: id, inputResponses: { 'slot/1': slot, 'color/1': { action: 'accept', content: { color: 'blue' } } } });
    assert.equal(ack.result?.resultType, 'complete', JSON.stringify(ack));
    const done = await pollTask(server.url, A, id, (x) => x.status === 'completed', 'completed after both answers');
    const r = await fetch(new URL(`/v1/contexts/${done.result.structuredContent.contextId}`, server.url), { headers: { authorization: `Bearer ${A}` } });
    const vars = (await r.json()).data.workflow.variables;
    assert.deepEqual({ slot: vars.slot, color: vars.color }, { slot: { slot: 'wed-11am' }, color: { color: 'blue' } });
  });

  it('an accept without content answers {} through tasks/update and through workflow_run\'s retry alike; a content that is not an object is refused by both', async () => {
    const saved = async (contextId) => {
      const r = await fetch(new URL(`/v1/contexts/${contextId}`, server.url), { headers: { authorization: `Bearer ${A}` } });
      assert.equal(r.status, 200);
      return (await r.json()).data.workflow.variables.ok;
    };
    // tasks/update (once answered null)
    const created = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-ok' } });
    const id = created.result.taskId;
    await pollTask(server.url, A, id, (x) => x.status === 'input_required', 'input_required');
    const bad = await postModern(server.url, A, 'tasks/update', { taskId: id, inputResponses: { 'ok/1': { action: 'accept', content: null } } });
    assert.equal(bad.error?.code, -32602, JSON.stringify(bad));
    assert.match(bad.error.message, /\["ok\/1"\]\.content: expected an object, got null/);
    assert.equal((await taskGet(server.url, A, id)).result.status, 'input_required');
    const ack = await postModern(server.url, A, 'tasks/update', { taskId: id, inputResponses: { 'ok/1': { action: 'accept' } } });
    assert.equal(ack.result?.resultType, 'complete', JSON.stringify(ack));
    const done = await pollTask(server.url, A, id, (x) => x.status === 'completed', 'completed after the answer');
    assert.deepEqual(await saved(done.result.structuredContent.contextId), {});
    // workflow_run answered with its requestState (input_required, no task)
    const call = (extra) => postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-ok' }, ...extra }, { tasks: false, elicitation: true });
    const asking = await call({});
    assert.equal(asking.result?.resultType, 'input_required', JSON.stringify(asking));
    const { requestState } = asking.result;
    const refused = await call({ requestState, inputResponses: { ok: { action: 'accept', content: null } } });
    assert.equal(refused.error?.code, -32602, JSON.stringify(refused));
    assert.match(refused.error.message, /\["ok"\]\.content: expected an object, got null/);
    const answered = await call({ requestState, inputResponses: { ok: { action: 'accept' } } });
    assert.equal(answered.result?.structuredContent?.status, 'completed', JSON.stringify(answered));
    assert.deepEqual(await saved(answered.result.structuredContent.contextId), {});
  });

  it('2026-07-28: tasks/cancel stops a waiting run; unknown ids are -32602', async () => {
    const created = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-ask', input: { variables: { text: 'buy' } } } });
    const id = created.result.taskId;
    await pollTask(server.url, A, id, (x) => x.status === 'input_required', 'input_required');
    const ack = await postModern(server.url, A, 'tasks/cancel', { taskId: id });
    assert.equal(ack.result.resultType, 'complete', JSON.stringify(ack));
    const t = (await taskGet(server.url, A, id)).result;
    assert.equal(t.status, 'cancelled');
    assert.equal(t.result, undefined);
    assert.equal(t.inputRequests, undefined);
    // Cancelling again is cooperative: acknowledged, still cancelled.
    const again = await postModern(server.url, A, 'tasks/cancel', { taskId: id });
    assert.ok(again.result, JSON.stringify(again));
    for (const method of ['tasks/get', 'tasks/cancel', 'tasks/update']) {
      const params = { taskId: '0190aaaa-0000-7000-8000-000000000000', ...(method === 'tasks/update' ? { inputResponses: {} } : {}) };
      const r = await postModern(server.url, A, method, params);
      assert.equal(r.error?.code, -32602, `${method}: ${JSON.stringify(r)}`);
      assert.match(r.error.message, /Task not found/);
    }
  });

  it("another tenant's task is an unknown task", async () => {
    const created = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-ask', input: { variables: { text: 'buy' } } } });
    const id = created.result.taskId;
    await pollTask(server.url, A, id, (x) => x.status === 'input_required', 'input_required');
    const ghost = await taskGet(server.url, B, '0190aaaa-0000-7000-8000-000000000000');
    for (const method of ['tasks/get', 'tasks/cancel', 'tasks/update']) {
      const r = await postModern(server.url, B, method, { taskId: id, ...(method === 'tasks/update' ? { inputResponses: { 'confirm/1': { action: 'accept', content: { slot: 'stolen' } } } } : {}) });
      assert.equal(r.error?.code, -32602, `${method}: ${JSON.stringify(r)}`);
      assert.equal(r.error.message, ghost.error.message);
    }
    // Tenant A's task is untouched, and a legacy tasks/list of B does not show it.
    assert.equal((await taskGet(server.url, A, id)).result.status, 'input_required');
    const b = await legacyClient(server.url, B, () => ({ action: 'cancel' }));
    try {
      const list = await b.client.experimental.tasks.listTasks();
      assert.ok(!list.tasks.some((x) => x.taskId === id), 'B lists no task of A');
      await assert.rejects(b.client.experimental.tasks.getTask(id), (e) => e instanceof McpError && e.code === -32602);
    } finally {
      await b.close();
    }
    await postModern(server.url, A, 'tasks/cancel', { taskId: id });
  });

  it('2025-11-25: the v1 SDK runs workflow_run as a task, answering the ask through tasks/result', async () => {
    const c = await legacyClient(server.url, A, () => ({ action: 'accept', content: { slot: 'mon-9am' } }));
    try {
      const caps = c.client.getServerCapabilities();
      assert.deepEqual(caps.tasks, { list: {}, cancel: {}, requests: { tools: { call: {} } } });
      assert.equal(caps.extensions, undefined, 'the extension is for 2026-07-28');
      const { tools } = await c.client.listTools();
      assert.deepEqual(tools.find((t) => t.name === 'workflow_run').execution, { taskSupport: 'optional' });
      assert.equal(tools.find((t) => t.name === 'runs_get').execution, undefined);
      const msgs = await drain(c.client.experimental.tasks.callToolStream({
        name: 'workflow_run', arguments: { workflow: 'tasks-ask', input: { variables: { text: 'buy a BMW' } } },
      }, CallToolResultSchema, { timeout: DEADLINE_MS * 2 }));
      const created = msgs.find((m) => m.type === 'taskCreated');
      assert.ok(created, JSON.stringify(msgs));
      assert.equal(created.task.status, 'working');
      assert.match(created.task.createdAt, ISO);
      assert.equal(created.task.ttl, null);
      const id = created.task.taskId;
      assert.ok(msgs.some((m) => m.type === 'taskStatus' && m.task.status === 'input_required'), JSON.stringify(msgs));
      const last = msgs.at(-1);
      assert.equal(last.type, 'result', JSON.stringify(last));
      assert.equal(last.result.structuredContent.status, 'completed');
      assert.deepEqual(last.result.structuredContent.history.map((h) => h.step), ['classify', 'confirm', 'book']);
      assert.equal(last.result._meta?.[RELATED]?.taskId, id, 'tasks/result carries related-task');
      // The question came as elicitation/create tied to the task.
      assert.equal(c.asked.length, 1);
      assert.equal(c.asked[0].params.message, 'Which slot suits you?');
      assert.equal(c.asked[0].params._meta?.[RELATED]?.taskId, id);
      // tasks/get and tasks/list of the finished task; cancelling it is refused.
      const t = await c.client.experimental.tasks.getTask(id);
      assert.equal(t.status, 'completed');
      assert.equal(t.result, undefined, '2025-11-25 tasks/get carries no result');
      const list = await c.client.experimental.tasks.listTasks();
      assert.ok(list.tasks.some((x) => x.taskId === id && x.status === 'completed'));
      await assert.rejects(c.client.experimental.tasks.cancelTask(id),
        (e) => e instanceof McpError && e.code === -32602 && /terminal status 'completed'/.test(e.message));
      await assert.rejects(c.client.experimental.tasks.getTask('0190aaaa-0000-7000-8000-000000000000'),
        (e) => e instanceof McpError && e.code === -32602);
      // A tool without task support refuses a task: -32601.
      await assert.rejects(c.client.request({ method: 'tools/call', params: { name: 'runs_list', arguments: {}, task: {} } }, CallToolResultSchema),
        (e) => e instanceof McpError && e.code === -32601);
    } finally {
      await c.close();
    }
  });

  it('2025-11-25: tasks/cancel answers the cancelled task; a declined question cancels the run', async () => {
    const c = await legacyClient(server.url, A, () => ({ action: 'decline' }));
    try {
      await c.client.listTools();
      const start = () => c.client.request({ method: 'tools/call', params: { name: 'workflow_run', arguments: { workflow: 'tasks-ask', input: { variables: { text: 'buy' } } }, task: { ttl: 60000 } } },
        CreateTaskResultSchema);
      const one = (await start()).task.taskId;
      await pollUntil(async () => (await c.client.experimental.tasks.getTask(one)).status === 'input_required', { what: 'input_required' });
      const cancelled = await c.client.experimental.tasks.cancelTask(one);
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.taskId, one);
      // The declined question: the run is cancelled and tasks/result says so.
      const two = (await start()).task.taskId;
      await pollUntil(async () => (await c.client.experimental.tasks.getTask(two)).status === 'input_required', { what: 'input_required' });
      const res = await withDeadline(c.client.experimental.tasks.getTaskResult(two, CallToolResultSchema), DEADLINE_MS, 'tasks/result');
      assert.equal(res.isError, true);
      assert.equal(res.structuredContent.status, 'cancelled');
      assert.equal((await c.client.experimental.tasks.getTask(two)).status, 'cancelled');
    } finally {
      await c.close();
    }
  });

  /** A tasks/ask run whose first question `firstAnswer` answers: the
   * tasks/result that asked fails as `refused` says, the question stays
   * open, and the next tasks/result asks it again and completes. */
  async function firstAnswerFails(firstAnswer, refused) {
    let n = 0;
    const c = await legacyClient(server.url, A, () => (n++ === 0 ? firstAnswer() : { action: 'accept', content: { slot: 'tue-2pm' } }));
    try {
      await c.client.listTools();
      const id = (await c.client.request({ method: 'tools/call', params: { name: 'workflow_run', arguments: { workflow: 'tasks-ask', input: { variables: { text: 'buy' } } }, task: {} } },
        CreateTaskResultSchema)).task.taskId;
      await pollUntil(async () => (await c.client.experimental.tasks.getTask(id)).status === 'input_required', { what: 'input_required' });
      await assert.rejects(withDeadline(c.client.experimental.tasks.getTaskResult(id, CallToolResultSchema, { timeout: DEADLINE_MS * 2 }), DEADLINE_MS, 'tasks/result with a failed answer'),
        (e) => e instanceof McpError && refused(e));
      assert.equal((await c.client.experimental.tasks.getTask(id)).status, 'input_required', 'the question is still open');
      const res = await withDeadline(c.client.experimental.tasks.getTaskResult(id, CallToolResultSchema), DEADLINE_MS, 'tasks/result');
      assert.equal(res.structuredContent.status, 'completed', JSON.stringify(res));
      assert.equal(c.asked.length, 2);
    } finally {
      await c.close();
    }
  }

  it("2025-11-25: an answer to tasks/result's question that the ask's schema refuses is -32602 naming it, not a tasks/result blocked for ever; asked again, a fitting answer completes", async () => {
    // The first answer lacks the schema's required slot.
    await firstAnswerFails(() => ({ action: 'accept', content: {} }),
      (e) => e.code === -32602 && /does not match step confirm's schema/.test(e.message));
  });

  it('2025-11-25: a client whose elicitation handler fails makes tasks/result an error naming it, not a tasks/result blocked for ever; asked again, an answer completes', async () => {
    await firstAnswerFails(() => { throw new McpError(-32000, 'the salesperson closed the form'); },
      (e) => e.code === -32603 &&
        /the client answered the question of step confirm \(elicitation\/create\) with error -32000 .*the salesperson closed the form.*the run still waits/.test(e.message));
  });

  it('a task outlives a restart of switchboard and its run finishes', async () => {
    const created = await postModern(server.url, A, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'tasks-ask', input: { variables: { text: 'lease a Toyota' } } } });
    const id = created.result.taskId;
    const before = await pollTask(server.url, A, id, (x) => x.status === 'input_required', 'input_required');
    await server.stop();
    server = await startHttpServer({ extraArgs: ['--config', config, '--store', store] });
    const after = (await taskGet(server.url, A, id)).result;
    assert.equal(after.status, 'input_required', JSON.stringify(after));
    assert.equal(after.createdAt, before.createdAt);
    assert.deepEqual(Object.keys(after.inputRequests), ['confirm/1']);
    // The agent comes back with the server; then the answer finishes the run.
    await pollUntil(async () => {
      const r = await postModern(server.url, A, 'tools/list', {});
      return r.result?.tools?.some((t) => t.name === 'flow__book') || { ok: false };
    }, { what: 'the flow agent after the restart' });
    await postModern(server.url, A, 'tasks/update', { taskId: id, inputResponses: { 'confirm/1': { action: 'accept', content: { slot: 'tue-2pm' } } } });
    const done = await pollTask(server.url, A, id, (x) => x.status === 'completed', 'completed after the restart');
    assert.deepEqual(done.result.structuredContent.history.map((h) => h.step), ['classify', 'confirm', 'book']);
  });
});
