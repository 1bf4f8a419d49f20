// Events end to end: runs that emit and wait for events (agents
// coordinating through the bus, with a filter and a timeout), events an
// agent publishes in its result's _meta, the SSE stream at /v1/events
// (ordered, resumable with Last-Event-ID, no gap and no duplicate under
// concurrent runs, another tenant's events never shown), and workflow_run
// over MCP with the official SDKs: progress per step, an ask step answered
// through elicitation (legacy client), runs_* tools (modern client).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyHttp } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, ElicitRequestSchema, ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import { DEADLINE_MS, withDeadline } from './lib/harness.mjs';
import {
  flowAgent, inquiry, readEvents, runsClient, startFlowServer, startRun, writeFlowConfig,
} from './lib/flows.mjs';

const A = { id: 'dealer-a', token: 'token-dealer-a-0123456789' };
const B = { id: 'dealer-b', token: 'token-dealer-b-0123456789' };

const WORKFLOWS = `
  - name: approval
    steps:
      - id: ask-finance
        emit:
          type: finance.review-requested
          data: { contextId: $context.id, amount: 25000 }
      - id: approved
        wait:
          event: finance.approved
          where: { contextId: $context.id }
          timeout: 5s
        save: workflow.variables.approval
      - id: tell
        call: { agent: sales, tool: publish, arguments: { type: lead.approved-told, data: { n: 1 } } }
  - name: impatient
    steps:
      - id: approved
        wait: { event: finance.approved, timeout: 100ms }
  - name: patient
    steps:
      - id: approved
        wait:
          event: finance.approved
          where: { contextId: $context.id }
          timeout: 60s
        save: workflow.variables.approval
  - name: three
    steps:
      - id: one
        call: { agent: sales, tool: whoami }
      - id: two
        call: { agent: sales, tool: quote, arguments: { price: 1200, months: 12 } }
      - id: three
        call: { agent: sales, tool: whoami }
  - name: siblings
    steps:
      - id: both
        parallel:
          - { id: tell, emit: { type: lead.sibling, data: { contextId: $context.id } } }
          - id: hear
            wait: { event: lead.sibling, where: { contextId: $context.id }, timeout: 5s }
            save: workflow.variables.heard
  - name: loud
    steps:
      - id: tell
        emit:
          type: lead.heard
          data: { said: $conversation.messages }
      - id: done
        end: completed
  - name: loud-agent
    steps:
      - id: tell
        call: { agent: sales, tool: publish, arguments: { type: lead.agent-heard, data: { said: $conversation.messages } } }
  - name: asks
    steps:
      - id: intake
        call:
          agent: sales
          tool: classify
          arguments:
            text: $conversation.messages[-1].content
      - id: slot
        ask:
          message: Which day?
          schema: { type: object, properties: { day: { type: string } }, required: [day] }
        save: workflow.variables.day
      - id: book
        call: { agent: sales, tool: book, arguments: { slot: $workflow.variables.day.day } }
`;

describe('events and workflows over MCP', () => {
  let sw, a, b, base;

  before(async () => {
    const { file } = writeFlowConfig({
      agents: [flowAgent('sales', ['sales.offer'])],
      tenants: [A, B],
      workflowsYaml: WORKFLOWS,
    });
    ({ server: sw, base } = await startFlowServer(file));
    a = runsClient(base, A.token);
    b = runsClient(base, B.token);
  });

  after(async () => {
    await sw?.stop();
  });

  test('a run waits for an event that matches its filter, then goes on', async () => {
    const run = await startRun(a, { workflow: 'approval' });
    const waiting = await a.waitFor(run.id, 'waiting');
    assert.deepEqual(waiting.waiting[0].where, { contextId: run.contextId }, 'the filter, resolved when the step began');
    // the emitted request is in the log
    const requested = await readEvents(base, `/v1/events?types=finance.review-requested&run=${run.id}`,
      (evs) => evs.length >= 1, { token: A.token });
    assert.deepEqual(requested[0].data.data, { contextId: run.contextId, amount: 25000 });
    // an event for another context does not wake it; one from another tenant neither
    assert.equal((await a.publish({ type: 'finance.approved', data: { contextId: 'someone-else' } })).status, 201);
    assert.equal((await b.publish({ type: 'finance.approved', data: { contextId: run.contextId } })).status, 201);
    assert.equal((await a.run(run.id)).json.status, 'waiting');
    const ok = await a.publish({ type: 'finance.approved', data: { contextId: run.contextId, by: 'finance-bot' } });
    assert.equal(ok.status, 201, ok.text);
    const done = await a.waitFor(run.id, 'completed');
    const ctx = (await a.context(done.contextId)).json;
    assert.equal(ctx.data.workflow.variables.approval.by, 'finance-bot');
    // the agent's own event (from its result's _meta) is in the log, attributed
    const told = await readEvents(base, `/v1/events?types=lead.*&run=${run.id}`, (evs) => evs.length >= 1, { token: A.token });
    assert.equal(told[0].event, 'lead.approved-told');
    assert.deepEqual(told[0].data.data, { n: 1, publishedBy: 'sales' });
  });

  test("an emit step whose data passes what an event holds fails its run, naming the limit", async () => {
    // Before: any size, so a loop emitting a long conversation wrote
    // about 95 MB a second to the store.
    const said = (text) => ({ context: { data: { conversation: { messages: [{ role: 'user', content: text }] } } } });
    const small = await startRun(a, { workflow: 'loud', input: said('hello') });
    await a.waitFor(small.id, 'completed');
    const big = await startRun(a, { workflow: 'loud', input: said('x'.repeat(70000)) });
    const failed = await a.waitFor(big.id, 'failed');
    assert.equal(failed.error.step, 'tell');
    assert.match(failed.error.message, /^data: \d+ bytes as JSON, more than an event may hold \(events.max_data_bytes: 65536\)$/);
    // An agent's own events (in its result's _meta) are held to it too:
    // the one past it is dropped, naming the limit, the step goes on.
    const viaAgent = await startRun(a, { workflow: 'loud-agent', input: said('y'.repeat(70000)) });
    await a.waitFor(viaAgent.id, 'completed');
    await sw.stderrMatch(/agent sales published a lead\.agent-heard event: dropped: data: \d+ bytes as JSON, more than an event may hold/);
    const small2 = await startRun(a, { workflow: 'loud-agent', input: said('short') });
    await a.waitFor(small2.id, 'completed');
    const heard = await readEvents(base, `/v1/events?since=0&types=lead.agent-heard`, (evs) => evs.length >= 1, { token: A.token });
    assert.deepEqual(heard.map((e) => e.data.data.said[0].content), ['short']);
  });

  test("a wait in a parallel step takes the event its sibling emits, whichever is listed first", async () => {
    // Before: the wait took only events after the transition that started
    // it, and its sibling's emit was in that transition: it timed out.
    const run = await startRun(a, { workflow: 'siblings' });
    const done = await a.waitFor(run.id, ['completed', 'failed']);
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    const ctx = (await a.context(run.contextId)).json;
    assert.equal(ctx.data.workflow.variables.heard.contextId, run.contextId);
  });

  test('a wait has a timeout', async () => {
    const run = await startRun(a, { workflow: 'impatient' });
    const failed = await a.waitFor(run.id, 'failed');
    assert.match(failed.error.message, /no finance\.approved event for step approved within 100 ms/);
  });

  test('a run keeps its context past metadata.expiresAt until it ends', async () => {
    const expiresAt = new Date(Date.now() + 1000).toISOString();
    const made = await a.call('POST', '/v1/contexts', { body: { metadata: { expiresAt } } });
    assert.equal(made.status, 201, made.text);
    const run = await startRun(a, { workflow: 'patient', contextId: made.json.id });
    await a.waitFor(run.id, 'waiting');
    // Driven by the clock: wait until the expiry has passed.
    await new Promise((res) => setTimeout(res, Math.max(0, Date.parse(expiresAt) - Date.now() + 50)));
    const held = await a.context(run.contextId);
    assert.equal(held.status, 200, `a waiting run's context is live after its expiresAt: ${held.text}`);
    const ok = await a.publish({ type: 'finance.approved', data: { contextId: run.contextId, by: 'late-desk' } });
    assert.equal(ok.status, 201, ok.text);
    await a.waitFor(run.id, 'completed');
    // The run has ended: the context expires as it said.
    const gone = await a.context(run.contextId);
    assert.equal(gone.status, 404, gone.text);
  });

  test('publishing checks the type and the data', async () => {
    const own = await a.publish({ type: 'run.completed', data: {} });
    assert.equal(own.status, 400);
    assert.match(own.json.error.message, /not an event type one may publish/);
    // a long one is named by its start, not echoed whole
    const long = await a.publish({ type: 'X'.repeat(5000), data: {} });
    assert.equal(long.status, 400, long.text);
    assert.ok(long.json.error.message.startsWith(`type: "${'X'.repeat(64)}..." is not an event type`), long.text);
    assert.ok(long.json.error.message.length < 500, long.text);
    // Nothing a follower of run.* (or of the audit trail) would take for
    // switchboard's own, and no empty names.
    for (const type of ['run..completed', 'run.completed.x', 'step.started.x', 'agent.handoff2',
      'context.updated.v2', 'breaker.opened.x', 'audit.admin.x', 'a..b', '-.-.', 'x.y.']) {
      const r = await a.publish({ type, data: {} });
      assert.equal(r.status, 400, `${type}: ${r.text}`);
      assert.match(r.json.error.message, /run\., step\., agent\., context\., breaker\. and audit\. are switchboard's own/);
    }
    for (const type of ['running.late', 'lead.run', 'steps.x', '-.-']) {
      const r = await a.publish({ type, data: {} });
      assert.equal(r.status, 201, `${type}: ${r.text}`);
    }
    const arr = await a.publish({ type: 'x.y', data: [1] });
    assert.equal(arr.status, 400);
    // Data past events.max_data_bytes (64 KiB): refused, naming it.
    const big = await a.publish({ type: 'x.y', data: { pad: 'x'.repeat(70000) } });
    assert.equal(big.status, 413, big.text);
    assert.match(big.json.error.message, /^data: 70010 bytes as JSON, more than an event may hold \(events.max_data_bytes: 65536\)$/);
    const bad = await a.call('GET', '/v1/events?since=abc');
    assert.equal(bad.status, 400);
    // a number past int64 is no cursor: not a stream silent for ever
    for (const since of ['99999999999999999999', '+5', '%205']) {
      const r = await fetch(`${base}/v1/events?since=${since}`, { headers: { Authorization: `Bearer ${A.token}` } });
      const text = r.status === 400 ? await r.text() : (await r.body?.cancel(), '');
      assert.equal(r.status, 400, `since=${since}: answered ${r.status} (${r.headers.get('content-type')})`);
      assert.match(JSON.parse(text).error.message, /^since \/ Last-Event-ID: a sequence number/);
    }
  });

  test('the stream: in order, no gap, no duplicate under concurrent runs; resumable; per tenant', async () => {
    const runs = await Promise.all(Array.from({ length: 8 }, () => startRun(a, { workflow: 'three' })));
    await Promise.all(runs.map((r) => a.waitFor(r.id, 'completed')));
    const completedOf = (evs) => new Set(evs.filter((e) => e.event === 'run.completed' && runs.some((r) => r.id === e.data.runId)).map((e) => e.data.runId));
    const all = await readEvents(base, '/v1/events?since=0', (evs) => completedOf(evs).size === 8, { token: A.token });
    const seqs = all.map((e) => Number(e.id));
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'every seq once, in order, from 1');
    assert.ok(all.every((e) => e.data.seq === Number(e.id)));
    // each run's own events are in their order
    for (const r of runs) {
      const mine = all.filter((e) => e.data.runId === r.id).map((e) => e.event);
      assert.equal(mine[0], 'run.started');
      assert.equal(mine.at(-1), 'run.completed');
      assert.equal(mine.filter((t) => t === 'step.completed').length, 3);
    }
    // resume after the 10th: exactly what follows
    const cut = 10;
    const rest = await readEvents(base, '/v1/events', (evs) => evs.length >= seqs.length - cut,
      { token: A.token, lastEventId: cut });
    assert.deepEqual(rest.map((e) => Number(e.id)), seqs.slice(cut));
    // live: a stream open before a run sees it
    const live = readEvents(base, `/v1/events?since=${seqs.at(-1)}&types=run.*`, (evs) => evs.some((e) => e.event === 'run.completed'),
      { token: A.token });
    const late = await startRun(a, { workflow: 'three' });
    const got = await live;
    assert.ok(got.every((e) => e.data.runId === late.id));
    // dealer-b sees only its own (the finance.approved it published)
    const theirs = await readEvents(base, '/v1/events?since=0', (evs) => evs.length >= 1, { token: B.token });
    assert.equal(theirs[0].event, 'finance.approved');
    assert.equal(theirs[0].id, '1', 'another tenant numbers its own events');
    assert.equal((await b.run(late.id)).status, 404, 'another tenant\'s run reads as missing');
  });

  test('workflow_run over MCP (legacy client): progress per step, the question elicited', async () => {
    const client = new LegacyClient({ name: 'flow-tests', version: '1.0.0' }, { capabilities: { elicitation: {} } });
    const asked = [];
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push(req.params);
      return { action: 'accept', content: { day: 'Friday' } };
    });
    await client.connect(new LegacyHttp(new URL(sw.url), { requestInit: { headers: { Authorization: `Bearer ${A.token}` } } }));
    try {
      const progress = [];
      const result = await withDeadline(client.callTool(
        { name: 'workflow_run', arguments: { workflow: 'asks', input: inquiry('I want to buy') } },
        CallToolResultSchema, { onprogress: (p) => progress.push(p), timeout: DEADLINE_MS }), DEADLINE_MS, 'workflow_run');
      assert.ok(!result.isError, JSON.stringify(result));
      const run = result.structuredContent;
      assert.equal(run.status, 'completed');
      assert.equal(asked.length, 1);
      assert.equal(asked[0].message, 'Which day?');
      assert.deepEqual(asked[0].requestedSchema.required, ['day']);
      assert.deepEqual(progress.map((p) => p.message), ['step intake completed by sales', 'step slot completed',
        'step book completed by sales']);
      assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3]);
      const ctx = (await a.context(run.contextId)).json;
      assert.equal(ctx.data.workflow.outputs.book.booked, 'Friday');
    } finally {
      await client.close();
    }
  });

  test('events://log: a subscribed client hears its tenant\'s log move, then reads what follows', async () => {
    const connectAs = async (token) => {
      const c = new LegacyClient({ name: 'flow-tests', version: '1.0.0' }, { capabilities: {} });
      await c.connect(new LegacyHttp(new URL(sw.url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
      return c;
    };
    const mine = await connectAs(A.token);
    const theirs = await connectAs(B.token);
    try {
      const heard = { a: [], b: [] };
      mine.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => heard.a.push(n.params.uri));
      theirs.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => heard.b.push(n.params.uri));
      const listed = await mine.listResources();
      assert.ok(listed.resources.some((r) => r.uri === 'events://log'));
      const before = JSON.parse((await mine.readResource({ uri: 'events://log' })).contents[0].text);
      await mine.subscribeResource({ uri: 'events://log' });
      await theirs.subscribeResource({ uri: 'events://log' });
      const pub = await a.publish({ type: 'crm.call', data: { who: 'Ann' } });
      assert.equal(pub.status, 201);
      await withDeadline((async () => { while (!heard.a.length) await new Promise((r) => setImmediate(r)); })(),
        DEADLINE_MS, 'resources/updated for events://log');
      assert.equal(heard.a[0], 'events://log');
      const after = JSON.parse((await mine.readResource({ uri: `events://log?since=${before.lastSeq ?? 0}` })).contents[0].text);
      assert.ok(after.events.some((e) => e.type === 'crm.call' && e.data.who === 'Ann'));
      assert.equal(after.lastSeq, pub.json.seq);
      assert.deepEqual(heard.b, [], 'another tenant hears nothing of it');
      // A query the log does not take is -32602 naming it (it was answered
      // "Resource not found", as if there were no log).
      const named = (uri, message) => assert.rejects(mine.readResource({ uri }), (e) => {
        assert.equal(e.code, -32602, `${uri}: ${e.message}`);
        assert.match(e.message, message, uri);
        assert.doesNotMatch(e.message, /not found/i, uri);
        return true;
      });
      await named('events://log?since=x', /since: a sequence number/);
      // past int64 is no cursor either (it read as one past every event)
      await named('events://log?since=99999999999999999999', /since: a sequence number/);
      await named('events://log?since=-1', /since: a sequence number/);
      await named('events://log?types=run.*', /takes one query parameter, since=SEQ/);
      await named('events://log?since=1&since=2', /since: a sequence number/);
    } finally {
      await mine.close();
      await theirs.close();
    }
  });

  test('a cursor past the newest event is refused naming the newest, on the stream and on events://log alike; at the newest it goes on', async () => {
    const pub = await a.publish({ type: 'crm.call', data: { who: 'Bo' } });
    assert.equal(pub.status, 201);
    const past = pub.json.seq + 1000;
    const refusedBy = async (headers, query) => {
      const r = await fetch(`${base}/v1/events${query}`, { headers: { Authorization: `Bearer ${A.token}`, ...headers } });
      const text = r.status === 400 ? await r.text() : (await r.body?.cancel(), '');
      assert.equal(r.status, 400, `${query} ${JSON.stringify(headers)}: answered ${r.status} (${r.headers.get('content-type')})`);
      const m = /^since \/ Last-Event-ID: (\d+) is past the newest event of this tenant's log \((\d+)\)/.exec(JSON.parse(text).error.message);
      assert.ok(m, text);
      assert.equal(Number(m[1]), past);
      return Number(m[2]);
    };
    // once a stream that skipped every event up to `past` without a word
    const newest = await refusedBy({}, `?since=${past}`);
    assert.ok(newest >= pub.json.seq && newest < past, `newest ${newest}`);
    assert.ok(await refusedBy({ 'Last-Event-ID': String(past) }, '') >= newest);
    // the cursor is the tenant's own: past B's newest, though not A's
    const r = await fetch(`${base}/v1/events?since=${newest}`, { headers: { Authorization: `Bearer ${B.token}` } });
    const text = r.status === 400 ? await r.text() : (await r.body?.cancel(), '');
    assert.equal(r.status, 400, `B at A's newest: ${r.status}`);
    const theirs = /past the newest event of this tenant's log \((\d+)\)/.exec(JSON.parse(text).error.message);
    assert.ok(theirs && Number(theirs[1]) < newest, text);
    const client = new LegacyClient({ name: 'flow-tests', version: '1.0.0' }, { capabilities: {} });
    await client.connect(new LegacyHttp(new URL(sw.url), { requestInit: { headers: { Authorization: `Bearer ${A.token}` } } }));
    try {
      await assert.rejects(client.readResource({ uri: `events://log?since=${past}` }), (e) => {
        assert.equal(e.code, -32602, e.message);
        assert.match(e.message, new RegExp(`since: ${past} is past the newest event of this tenant's log \\(\\d+\\)`));
        assert.ok(e.data.newestSeq >= newest, JSON.stringify(e.data));
        return true;
      });
      // at the newest: nothing yet, then what follows
      const level = JSON.parse((await client.readResource({ uri: `events://log?since=${newest}` })).contents[0].text);
      assert.ok(level.events.every((e) => e.seq > newest));
    } finally {
      await client.close();
    }
    const live = readEvents(base, `/v1/events?since=${newest}&types=crm.*`, (evs) => evs.some((e) => e.data.data.who === 'Cy'), { token: A.token });
    const next = await a.publish({ type: 'crm.call', data: { who: 'Cy' } });
    assert.equal(next.status, 201);
    const got = await live;
    assert.ok(got.every((e) => Number(e.id) > newest));
  });

  test('workflow_run over MCP (modern client): the question as input_required, answered by the SDK', async () => {
    const { Client, StreamableHTTPClientTransport } = await import('@modelcontextprotocol/client');
    const client = new Client({ name: 'flow-tests', version: '1.0.0' },
      { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: { pin: '2026-07-28' } } });
    const asked = [];
    client.setRequestHandler('elicitation/create', async (req) => {
      asked.push(req.params);
      return { action: 'accept', content: { day: 'Saturday' } };
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(sw.url), { requestInit: { headers: { Authorization: `Bearer ${A.token}` } } }));
    try {
      const res = await withDeadline(client.callTool({ name: 'workflow_run', arguments: { workflow: 'asks', input: inquiry('buy') } }),
        DEADLINE_MS, 'workflow_run with input_required');
      assert.ok(!res.isError, JSON.stringify(res));
      assert.equal(res.structuredContent.status, 'completed');
      assert.equal(asked.length, 1);
      assert.equal(asked[0].message, 'Which day?');
      const ctx = (await a.context(res.structuredContent.contextId)).json;
      assert.equal(ctx.data.workflow.outputs.book.booked, 'Saturday');
      // a forged requestState is refused, naming the parameter
      const forged = await fetch(sw.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', Authorization: `Bearer ${A.token}`,
          'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'workflow_run' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'workflow_run', arguments: { workflow: 'asks' },
          requestState: 'Zm9v.YmFy', inputResponses: { slot: { action: 'accept', content: { day: 'x' } } },
          _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } } } }),
      });
      const body = await forged.json();
      assert.equal(body.error?.code, -32602, JSON.stringify(body));

      // answers of the wrong shape are refused, naming what is wrong, and
      // the question stays open until a real answer comes
      const raw = async (extra) => {
        const r = await fetch(sw.url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', Authorization: `Bearer ${A.token}`,
            'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'workflow_run' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'workflow_run',
            arguments: { workflow: 'asks', input: inquiry('buy') }, ...extra,
            _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } } } } }),
        });
        return r.json();
      };
      const asking = await raw({});
      assert.equal(asking.result?.resultType, 'input_required', JSON.stringify(asking));
      const requestState = asking.result.requestState;
      const cases = [
        [{ inputResponses: 5 }, /params\.inputResponses: expected an object keyed by the inputRequests' keys, got an integer/],
        [{ inputResponses: { slot: 'Friday' } }, /params\.inputResponses\["slot"\]: expected an object \(the result of that input request\), got a string/],
        [{ requestState: 7, inputResponses: {} }, /params\.requestState: expected the string the server handed out, got an integer/],
        [{ inputResponses: { slot: { action: 'maybe' } } }, /inputResponses\["slot"\]\.action: expected "accept", "decline" or "cancel"/],
        [{ inputResponses: { slot: { action: 'accept', content: 'Friday' } } }, /inputResponses\["slot"\]\.content: expected an object, got a string/],
      ];
      for (const [extra, message] of cases) {
        const refused = await raw({ requestState, ...extra });
        assert.equal(refused.error?.code, -32602, JSON.stringify(refused));
        assert.match(refused.error.message, message);
      }
      const answered = await raw({ requestState, inputResponses: { slot: { action: 'accept', content: { day: 'Monday' } } } });
      assert.equal(answered.result?.structuredContent?.status, 'completed', JSON.stringify(answered));
      const booked = (await a.context(answered.result.structuredContent.contextId)).json;
      assert.equal(booked.data.workflow.outputs.book.booked, 'Monday');
    } finally {
      await client.close();
    }
  });

  test('runs over MCP (modern client): start without waiting, answer, get, list', async () => {
    const { Client, StreamableHTTPClientTransport } = await import('@modelcontextprotocol/client');
    const client = new Client({ name: 'flow-tests', version: '1.0.0' }, { capabilities: {}, versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await client.connect(new StreamableHTTPClientTransport(new URL(sw.url), { requestInit: { headers: { Authorization: `Bearer ${A.token}` } } }));
    try {
      const call = (name, args) => withDeadline(client.callTool({ name, arguments: args }), DEADLINE_MS, name);
      // a misspelt argument is refused, not ignored (no run on a new context)
      await assert.rejects(call('workflow_run', { workflow: 'asks', wait: false, contextld: 'x' }),
        /contextld: unknown argument \(known: workflow, contextId, input, wait\)/);
      const started = await call('workflow_run', { workflow: 'asks', wait: false, input: inquiry('price please') });
      assert.ok(!started.isError, JSON.stringify(started));
      const id = started.structuredContent.id;
      const waiting = await a.waitFor(id, 'waiting');
      assert.equal(waiting.waiting[0].step, 'slot');
      const wrong = await call('runs_answer', { runId: id, answer: 'Friday' });
      assert.equal(wrong.isError, true);
      assert.match(wrong.structuredContent.message, /expects an object/);
      const answered = await call('runs_answer', { runId: id, answer: { day: 'Sunday' } });
      assert.ok(!answered.isError, JSON.stringify(answered));
      await a.waitFor(id, 'completed');
      const got = await call('runs_get', { runId: id });
      assert.equal(got.structuredContent.status, 'completed');
      const listed = await call('runs_list', { status: 'completed', limit: 1000 });
      assert.ok(listed.structuredContent.runs.some((r) => r.id === id));
      const missing = await call('runs_get', { runId: 'nope' });
      assert.equal(missing.isError, true);
      const pub = await call('events_publish', { type: 'crm.note', data: { text: 'called' } });
      assert.ok(pub.structuredContent.seq > 0);
      // An argument of the wrong type is refused naming it: a runId of 5
      // once published the event tied to no run, and a type of 5 was
      // reported as the type "".
      for (const [name, args, key] of [
        ['events_publish', { type: 'crm.note', runId: 5 }, 'runId'],
        ['events_publish', { type: 5 }, 'type'],
        ['runs_list', { cursor: 5 }, 'cursor'],
        ['runs_list', { status: ['completed'] }, 'status'],
        ['runs_cancel', { runId: id, reason: 5 }, 'reason'],
        ['runs_fork', { runId: id, step: 5 }, 'step'],
      ]) {
        await assert.rejects(call(name, args), new RegExp(`'${key}' must be a string`), `${name} ${JSON.stringify(args)}`);
      }
      await assert.rejects(call('events_publish', { data: {} }), /'type' is required/);
      // A misspelt argument is refused naming it, not ignored (a
      // "stauts" once listed every run).
      await assert.rejects(call('runs_list', { stauts: 'completed' }), /stauts: unknown argument \(known: status, cursor, limit\)/);
      await assert.rejects(call('runs_get', { runId: id, verbose: true }), /verbose: unknown argument/);
      await assert.rejects(call('events_publish', { type: 'crm.note', runID: id }), /runID: unknown argument/);
    } finally {
      await client.close();
    }
  });
});

// A backlog read from the log bigger than what the server keeps unsent
// for a client (limits.max_stream_buffer_bytes) reaches a client that
// reads it: the stream takes the log as fast as the client does. Before,
// a page of the log was queued whole, past the limit, and the client was
// cut off before it got an event, again at each reconnection.
test('a backlog larger than the stream buffer reaches a reading client whole and in order', async () => {
  const { appendFileSync } = await import('node:fs');
  const { file } = writeFlowConfig({});
  appendFileSync(file, 'limits:\n  max_stream_buffer_bytes: 65536\n');
  const { server, base, rest } = await startFlowServer(file);
  try {
    const N = 48; // 8 KB each: six times the buffer
    const pad = 'x'.repeat(8000);
    for (let i = 0; i < N; i++)
      assert.equal((await rest.publish({ type: 'lead.big', data: { i, pad } })).status, 201);
    const got = await readEvents(base, '/v1/events?since=0&types=lead.big', (evs) => evs.length >= N);
    assert.deepEqual(got.map((e) => e.data.data.i), Array.from({ length: N }, (_, i) => i));
    // ...and then live ones, on the same stream.
    const live = readEvents(base, `/v1/events?since=${got.at(-1).id}`, (evs) => evs.length >= 2);
    for (let i = N; i < N + 2; i++)
      assert.equal((await rest.publish({ type: 'lead.big', data: { i, pad } })).status, 201);
    assert.deepEqual((await live).map((e) => e.data.data.i), [N, N + 1]);
    assert.doesNotMatch(server.stderr, /SSE client is not reading/);
  } finally {
    await server.stop();
  }
});

test('a cursor behind the retention: the stream and events://log say which events were trimmed', async () => {
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const store = join(mkdtempSync(join(tmpdir(), 'sb-trim-')), 'sb.db');
  const { file } = writeFlowConfig({});
  let { server, base, rest } = await startFlowServer(file, { extraArgs: ['--store', store] });
  const seqs = [];
  for (let i = 0; i < 5; i++) seqs.push((await rest.publish({ type: 'crm.tick', data: { i } })).json.seq);
  await server.stop();
  // The middle three made older than any retention; the next start trims
  // them.
  const sql = spawnSync('sqlite3', ['-batch', store], {
    input: `UPDATE events SET created_ms = 0 WHERE seq BETWEEN ${seqs[1]} AND ${seqs[3]};\n`, encoding: 'utf8',
  });
  assert.equal(sql.status, 0, sql.stderr);
  ({ server, base, rest } = await startFlowServer(file, { extraArgs: ['--store', store, '--log-level', 'debug'] }));
  try {
    await server.stderrMatch(/trimmed 3 old events/);
    // Before: the stream went from seqs[0] straight to seqs[4], and a
    // consumer could not tell it had missed anything.
    const got = await readEvents(base, `/v1/events?since=${seqs[0]}`, (evs) => evs.length >= 2);
    assert.equal(got[0].event, 'gap');
    assert.equal(got[0].id, undefined, 'the cursor does not move');
    assert.deepEqual([got[0].data.from, got[0].data.to], [seqs[1], seqs[3]]);
    assert.deepEqual([got[1].event, Number(got[1].id)], ['crm.tick', seqs[4]]);
    // From the oldest kept (since=0): nothing is missed, nothing said.
    const all = await readEvents(base, '/v1/events?since=0', (evs) => evs.length >= 2);
    assert.deepEqual(all.map((e) => Number(e.id)), [seqs[0], seqs[4]]);

    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    const client = new Client({ name: 'trim-test', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(server.url)));
    try {
      const read = async (since) => JSON.parse((await client.readResource({ uri: `events://log?since=${since}` })).contents[0].text);
      const r = await read(seqs[0]);
      assert.deepEqual(r.trimmed && [r.trimmed.from, r.trimmed.to], [seqs[1], seqs[3]]);
      assert.deepEqual(r.events.map((e) => e.seq), [seqs[4]]);
      // Nothing after the cursor but trimmed events: lastSeq is where to
      // go on from, not null (which read as "start over from 0").
      const behind = await read(seqs[2]);
      assert.deepEqual(behind.events.map((e) => e.seq), [seqs[4]]);
      const atEnd = await read(seqs[4]);
      assert.deepEqual(atEnd.events, []);
      assert.equal(atEnd.lastSeq, seqs[4]);
      assert.equal(atEnd.trimmed, undefined);
    } finally {
      await client.close();
    }
  } finally {
    await server.stop();
  }
});
