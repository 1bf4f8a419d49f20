// rest_hostile.test.mjs: the REST API (/v1/...) and the URL itself under
// hostile input: bytes in the path or the query that are not text (a %00,
// a control character, invalid UTF-8), bodies that are not what a route
// takes. Every case gets a 4xx naming the problem, nothing is done on the
// strength of a request that was misread, and the server keeps serving.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { DEADLINE_MS, EventLog, MODERN_VERSION, withDeadline } from './lib/harness.mjs';
import { readEvents, startFlowServer, writeFlowConfig } from './lib/flows.mjs';

const TOKEN = 'token-for-rest-hostile-0123456789';

const WORKFLOWS = `
  - name: quick
    steps: [ { id: done, end: completed } ]
  - name: asker
    steps:
      - id: q
        ask:
          message: Which slot?
          schema:
            type: object
            properties:
              slot: { type: string }
              seats: { type: integer, minimum: 1 }
            required: [slot]
      - id: done
        end: completed
  - name: tail
    steps:
      - id: first
        emit: { type: test.first }
      - id: last
        emit: { type: test.last }
`;

/** One request on a raw socket: the request line as given, bytes and all. */
function rawRequest(port, requestLine, body = '') {
  return new Promise((resolve, reject) => {
    const log = new EventLog('raw');
    let data = Buffer.alloc(0);
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('data', (d) => { data = Buffer.concat([data, d]); log.push('data'); });
    socket.on('error', reject);
    socket.on('close', () => resolve(data.toString('latin1')));
    socket.on('connect', () => {
      socket.write(Buffer.concat([
        Buffer.from(requestLine, 'latin1'),
        Buffer.from(`\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`),
      ]));
    });
    setTimeout(() => { socket.destroy(); reject(new Error(`no answer to ${JSON.stringify(requestLine)}`)); }, DEADLINE_MS);
  });
}

describe('REST: hostile input', { timeout: 120000 }, () => {
  let server;
  let base;
  let rest;

  before(async () => {
    const { file } = writeFlowConfig({ workflowsYaml: WORKFLOWS, tenants: [{ id: 'dealer-h', token: TOKEN }] });
    ({ server, base, rest } = await startFlowServer(file, { token: TOKEN }));
  });

  after(async () => {
    const done = await server.stop();
    assert.equal(done.code, 0, `switchboard exited with ${JSON.stringify(done)}; stderr:\n${server.stderr.slice(-3000)}`);
  });

  /** The server is up and still answers a good request. */
  async function stillServing() {
    assert.equal(server.proc.exitCode, null, `switchboard died; stderr:\n${server.stderr.slice(-3000)}`);
    const r = await rest.list();
    assert.equal(r.status, 200, r.text);
  }

  it('a URL whose path or query decodes to a NUL, a control character or invalid UTF-8 is a 400 naming it', async () => {
    const before = (await rest.list()).json.runs.length;
    const cases = [
      // A %00 used to end the path early: this one started a run of "quick".
      ['POST', '/v1/runs/%00x/cancel', { workflow: 'quick' }],
      ['POST', '/v1/contexts/%00abc', {}],
      // Invalid UTF-8 in an id used to make the error unbuildable: 500 "{}".
      ['POST', '/v1/runs/%ff/cancel', undefined],
      ['DELETE', '/v1/agents/%ff', undefined],
      ['GET', '/v1/agents/explain?capability=%ff', undefined],
      ['GET', '/v1/contexts/x?requirements=conversation%00', undefined],
      // A newline in an id reached the log and the audit trail as is.
      ['DELETE', '/v1/agents/a%0a2026-01-01T00:00:00.000Z%20info%20forged', undefined],
      ['GET', '/v1/runs?status=running%0d', undefined],
      // Not a REST route at all: the "no MCP endpoint" error quoted the
      // path, failed to build, and the request went on with no MCP server
      // behind it (a NULL dereference).
      ['POST', '/%ff', { jsonrpc: '2.0', id: 1, method: 'ping' }],
    ];
    for (const [method, path, body] of cases) {
      const r = await rest.call(method, path, body === undefined ? {} : { body });
      assert.equal(r.status, 400, `${method} ${path}: ${r.status} ${r.text}`);
      assert.match(r.json?.error?.message ?? '', /NUL, a control character or bytes that are not UTF-8/, `${method} ${path}: ${r.text}`);
      // Under /v1 the REST shape, as every other REST error (it was a
      // JSON-RPC error: decided before the route was taken); elsewhere
      // the JSON-RPC one.
      if (path.startsWith('/v1/')) {
        assert.equal(r.json.error.code, 'bad_request', `${method} ${path}: ${r.text}`);
        assert.equal(r.json.jsonrpc, undefined, `${method} ${path}: ${r.text}`);
      } else {
        assert.equal(r.json.jsonrpc, '2.0', `${method} ${path}: ${r.text}`);
        assert.equal(r.json.error.code, -32600, `${method} ${path}: ${r.text}`);
      }
    }
    assert.equal((await rest.list()).json.runs.length, before, 'a refused request started a run');
    assert.doesNotMatch(server.stderr, /forged/, 'the refused id reached the log');
    await stillServing();
  });

  it('raw bytes in the request line are refused the same way', async () => {
    for (const line of ['POST /\xff HTTP/1.1', 'GET /v1/runs/\xc3\x28 HTTP/1.1', 'GET /v1/runs?status=\x01 HTTP/1.1']) {
      const text = await rawRequest(server.port, line, line.startsWith('POST') ? '{"jsonrpc":"2.0","id":1,"method":"ping"}' : '');
      assert.match(text, /^HTTP\/1\.1 400 /, `${JSON.stringify(line)}: ${text}`);
      assert.match(text, /not UTF-8/, `${JSON.stringify(line)}: ${text}`);
    }
    await stillServing();
  });

  it('a body field a route does not take is a 400 naming it, and nothing is done', async () => {
    const before = (await rest.list()).json.runs.length;
    const asked = await rest.start({ workflow: 'asker' });
    assert.equal(asked.status, 201, asked.text);
    const id = asked.json.id;
    const cases = [
      // A misspelt contextId used to start the run on a new context.
      ['POST', '/v1/runs', { workflow: 'quick', contextld: 'x' }, /^contextld: unknown field \(known: workflow, contextId, input\)$/],
      ['POST', '/v1/runs', [{ workflow: 'quick' }], /^body: expected an object \(keys: workflow, contextId, input\), got an array$/],
      // Fields of another action were read by every action.
      ['POST', `/v1/runs/${id}/cancel`, { step: 'q' }, /^step: unknown field \(known: reason\)$/],
      ['POST', `/v1/runs/${id}/cancel`, ['now'], /^body: expected an object/],
      ['POST', `/v1/runs/${id}/answer`, { answr: { slot: 'x' } }, /^answr: unknown field \(known: step, answer\)$/],
      ['POST', `/v1/runs/${id}/resume`, { step: 'q' }, /^step: unknown field \(this takes none\)$/],
      ['POST', '/v1/events', { type: 'lead.new', dat: {} }, /^dat: unknown field \(known: type, data, runId\)$/],
      ['POST', '/v1/agents/call', { agent: 'a', tool: 't', argument: {} }, /^argument: unknown field \(known: capability, agent, tool, arguments, contextId, timeoutMs\)$/],
      // The context a run creates: what the server sets is refused, as by
      // POST /v1/contexts, and another tenant above all (it was dropped
      // silently, the run going on in the caller's tenant).
      ['POST', '/v1/runs', { workflow: 'quick', input: { context: { tenantId: 'dealer-other', data: {} } } },
        /^input\.context\.tenantId: must be omitted \(it is the caller's tenant\)$/],
      ['POST', '/v1/runs', { workflow: 'quick', input: { context: { id: 'mine', data: {} } } },
        /^input\.context\.id: set by the server, must not be given$/],
      ['POST', '/v1/runs', { workflow: 'quick', input: { context: { version: 9, data: {} } } },
        /^input\.context\.version: set by the server, must not be given$/],
    ];
    for (const [method, path, body, message] of cases) {
      const r = await rest.call(method, path, { body });
      assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.error.code, 'bad_request', r.text);
      assert.match(r.json.error.message, message, r.text);
    }
    // Two bad fields: one answer, naming the first.
    const two = await rest.start({ workflow: 5, contextId: 6 });
    assert.equal(two.status, 400, two.text);
    assert.equal(two.json.error.message, 'workflow: expected a string');
    assert.equal((await rest.list()).json.runs.length, before + 1, 'only the asker run was started');
    const still = await rest.run(id);
    assert.equal(still.json.status, 'waiting', still.text);
    // A reason past 256 bytes is refused, naming both sizes (it was cut
    // short silently); one of 256 is kept whole.
    const long = await rest.action(id, 'cancel', { reason: 'x'.repeat(257) });
    assert.equal(long.status, 400, long.text);
    assert.equal(long.json.error.message, 'reason: 257 bytes; at most 256');
    assert.equal((await rest.run(id)).json.status, 'waiting');
    // A good body still works, and an empty body is still fine for resume.
    const whole = `test ${'y'.repeat(251)}`;
    const cancelled = await rest.action(id, 'cancel', { reason: whole });
    assert.equal(cancelled.status, 200, cancelled.text);
    const ctx = await rest.call('GET', `/v1/contexts/${cancelled.json.contextId}`);
    assert.equal(ctx.status, 200, ctx.text);
    assert.equal(ctx.json.data.workflow.errors.at(-1).message, `cancelled: ${whole}`, ctx.text);
    const resumed = await rest.call('POST', `/v1/runs/${id}/resume`);
    assert.equal(resumed.status, 200, resumed.text);
    await stillServing();
  });

  it('a query parameter a route does not take is a 400 naming it and those it takes, and nothing is done', async () => {
    // A misspelt ?version read the head, a ?contextId (the MCP tools' name)
    // ranked without the context, and every answer looked right.
    const made = await rest.call('POST', '/v1/contexts', { body: {} });
    assert.equal(made.status, 201, made.text);
    const id = made.json.id;
    const runs = (await rest.list()).json.runs.length;
    const cases = [
      ['GET', `/v1/contexts/${id}?versoin=1`, 'versoin', 'version, requirements'],
      ['GET', `/v1/contexts/${id}/history?limt=1`, 'limt', 'before, limit'],
      ['GET', `/v1/contexts/${id}/diff?from=1&to=1&form=1`, 'form', 'from, to'],
      ['PATCH', `/v1/contexts/${id}?force=1`, 'force', 'none'],
      ['POST', '/v1/contexts?x=1', 'x', 'none'],
      ['GET', `/v1/agents/explain?capability=x&contextId=${id}`, 'contextId', 'capability, context'],
      ['GET', '/v1/agents?kind=sales', 'kind', 'type, capability'],
      ['GET', '/v1/runs?stauts=waiting', 'stauts', 'status, cursor, limit'],
      ['POST', '/v1/runs?dry=1', 'dry', 'none'],
      ['GET', '/v1/events?bogus=1', 'bogus', 'since, types, run'],
      ['GET', `/v1/events?${'k'.repeat(100)}=1`, `${'k'.repeat(64)}...`, 'since, types, run'],
    ];
    for (const [method, path, name, takes] of cases) {
      const body = method === 'GET' ? undefined : method === 'PATCH' ? { metadata: { tags: ['x'] } } : method === 'POST' && path.startsWith('/v1/runs') ? { workflow: 'quick' } : {};
      const patch = method === 'PATCH' ? { headers: { 'If-Match': '"1"' }, contentType: 'application/merge-patch+json' } : {};
      const r = await rest.call(method, path, { body, ...patch });
      assert.equal(r.status, 400, `${method} ${path}: ${r.text}`);
      assert.equal(r.json.error.code, 'bad_request', r.text);
      assert.equal(r.json.error.message, `unknown query parameter "${name}" (this endpoint takes: ${takes})`, r.text);
    }
    assert.equal((await rest.list()).json.runs.length, runs, 'no run was started');
    const ctx = await rest.call('GET', `/v1/contexts/${id}?version=1&requirements=user.id`);
    assert.equal(ctx.status, 200, ctx.text);
    assert.equal((await rest.call('GET', `/v1/contexts/${id}`)).json.version, 1, 'the PATCH was not applied');
    await stillServing();
  });

  it('a body whose Content-Type is not JSON is a 415 naming it, on REST and on /mcp; JSON types and none are read', async () => {
    const post = (path, contentType, body) => fetch(`${base}${path}`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${TOKEN}`,
        Accept: 'application/json, text/event-stream',
        ...(contentType ? { 'Content-Type': contentType } : {}),
      },
      body: new TextEncoder().encode(body), // bytes: fetch adds no type of its own
    }).then(async (r) => ({ status: r.status, json: await r.json().catch(() => null) }));
    const before = (await rest.list()).json.runs.length;
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx']) {
      const r = await post('/v1/runs', type, JSON.stringify({ workflow: 'quick' }));
      assert.equal(r.status, 415, `${type}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error.code, 'unsupported_media_type');
      assert.match(r.json.error.message, /^Content-Type: .* is not JSON: send application\/json$/);
      const m = await post('/mcp', type, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN_VERSION } } }));
      assert.equal(m.status, 415, `${type} on /mcp: ${JSON.stringify(m.json)}`);
      assert.equal(m.json.error.code, -32600);
      assert.match(m.json.error.message, /Content-Type/);
    }
    assert.equal((await rest.list()).json.runs.length, before, 'nothing was started');
    for (const type of ['application/json', 'Application/JSON; charset=utf-8', null]) {
      const r = await post('/v1/runs', type, JSON.stringify({ workflow: 'quick' }));
      assert.equal(r.status, 201, `${type}: ${JSON.stringify(r.json)}`);
    }
    // Without credentials the 401 comes first: the type says nothing then.
    const anon = await fetch(`${base}/v1/runs`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: '{}' });
    assert.equal(anon.status, 401);
  });

  it('an event whose runId names no run of the tenant is a 404, and is not logged', async () => {
    const started = await rest.start({ workflow: 'asker' });
    assert.equal(started.status, 201, started.text);
    const id = started.json.id;
    const typo = `${id.slice(0, -1)}${id.endsWith('0') ? '1' : '0'}`;
    const refused = await rest.call('POST', '/v1/events', { body: { type: 'lead.note', runId: typo } });
    assert.equal(refused.status, 404, refused.text);
    assert.equal(refused.json.error.message, `runId: no run ${typo}`);
    // An empty runId names no run either: it was logged as tied to none.
    const empty = await rest.call('POST', '/v1/events', { body: { type: 'lead.note', runId: '' } });
    assert.equal(empty.status, 400, empty.text);
    assert.match(empty.json.error.message, /^runId: empty/);
    const first = await rest.call('POST', '/v1/events', { body: { type: 'lead.note', runId: id } });
    assert.equal(first.status, 201, first.text);
    const second = await rest.call('POST', '/v1/events', { body: { type: 'lead.note' } });
    assert.equal(second.status, 201, second.text);
    assert.equal(second.json.seq, first.json.seq + 1, 'the refused event took no seq');
    await stillServing();
  });

  it("an answer that does not match the ask step's schema is a 400 naming the field; the run keeps waiting", async () => {
    const started = await rest.start({ workflow: 'asker' });
    assert.equal(started.status, 201, started.text);
    const id = started.json.id;
    const cases = [
      // Only the top-level type was checked: these were saved as answers.
      [{}, /^answer: does not match step q's schema: \$: missing required property "slot"$/],
      [{ slot: 10 }, /^answer: does not match step q's schema: \$\.slot: expected type string, got an integer$/],
      [{ slot: 'Sat', seats: 0 }, /^answer: does not match step q's schema: \$\.seats: /],
      ['Sat', /^answer: step q expects an object/],
    ];
    for (const [answer, message] of cases) {
      const r = await rest.action(id, 'answer', { answer });
      assert.equal(r.status, 400, `${JSON.stringify(answer)}: ${r.text}`);
      assert.match(r.json.error.message, message, r.text);
    }
    const still = await rest.run(id);
    assert.equal(still.json.status, 'waiting', still.text);
    assert.equal(still.json.stepsRun, 1, still.text);
    const answered = await rest.action(id, 'answer', { answer: { slot: 'Sat 10:00', seats: 2 } });
    assert.equal(answered.status, 200, answered.text);
    const done = await rest.waitFor(id, 'completed');
    const ctx = await rest.context(done.contextId);
    assert.deepEqual(ctx.json.data.workflow.outputs.q, { slot: 'Sat 10:00', seats: 2 });
  });

  it('an answer and cancels at once: one of them ends the run, and an acknowledged end stands', async () => {
    // A cancel queued behind the answer that completed the run (the run
    // still in memory) used to be applied to the completed run: each such
    // cancel was acknowledged, wrote a context version and a run.cancelled,
    // and the acknowledged completion became "cancelled".
    for (let round = 0; round < 3; round++) {
      const started = await rest.start({ workflow: 'asker' });
      assert.equal(started.status, 201, started.text);
      const id = started.json.id;
      const answer = rest.action(id, 'answer', { answer: { slot: 'Sat' } });
      const cancels = Array.from({ length: 10 }, () => rest.action(id, 'cancel', { reason: 'race' }));
      const [answered, ...cancelled] = await Promise.all([answer, ...cancels]);
      const okCancels = cancelled.filter((r) => r.status === 200);
      for (const r of cancelled) assert.ok(r.status === 200 || r.status === 409, r.text);
      assert.ok(answered.status === 200 || answered.status === 409, answered.text);
      const ended = (answered.status === 200 ? 1 : 0) + okCancels.length;
      assert.equal(ended, 1, `one end acknowledged, got answer ${answered.status} and ${okCancels.length} cancels`);
      const run = (await rest.run(id)).json;
      assert.equal(run.status, answered.status === 200 ? 'completed' : 'cancelled', JSON.stringify(run));
      for (const r of cancelled.filter((x) => x.status === 409))
        assert.match(r.json.error.message, /only a running or waiting run can be cancelled/, r.text);
      // The log holds exactly one end for the run.
      const marker = await rest.publish({ type: 'test.marker', runId: id });
      assert.equal(marker.status, 201, marker.text);
      const events = await readEvents(base, `/v1/events?run=${id}`, (evs) => evs.some((e) => e.event === 'test.marker'), { token: TOKEN });
      const ends = events.filter((e) => e.event === 'run.completed' || e.event === 'run.cancelled').map((e) => e.event);
      assert.deepEqual(ends, [run.status === 'completed' ? 'run.completed' : 'run.cancelled']);
    }
  });

  it('a fork from a step the run ended after is a 400 naming the step, and starts no run', async () => {
    // With nothing after the step the fork had no step to start at, and
    // ran the workflow again from its first step (its calls included).
    const quick = await rest.start({ workflow: 'quick' });
    assert.equal(quick.status, 201, quick.text);
    const tail = await rest.start({ workflow: 'tail' });
    assert.equal(tail.status, 201, tail.text);
    await rest.waitFor(quick.json.id, 'completed');
    await rest.waitFor(tail.json.id, 'completed');
    const before = (await rest.list()).json.runs.length;
    for (const [id, step] of [[quick.json.id, 'done'], [tail.json.id, 'last']]) {
      const r = await rest.action(id, 'fork', { step });
      assert.equal(r.status, 400, `fork from ${step}: ${r.text}`);
      assert.equal(r.json.error.code, 'bad_request', r.text);
      assert.match(r.json.error.message, new RegExp(`^step: nothing follows step "${step}" in run ${id} \\(the run ended after it\\)`), r.text);
    }
    assert.equal((await rest.list()).json.runs.length, before, 'no run was started');
    // A step with one after it still forks, going on there.
    const forked = await rest.action(tail.json.id, 'fork', { step: 'first' });
    assert.equal(forked.status, 201, forked.text);
    const f = await rest.waitFor(forked.json.id, 'completed');
    assert.deepEqual(f.history.map((h) => h.step), ['last']);
    await stillServing();
  });

  it('GET /v1/events with a filter that can match no event is a 400 naming it, not a stream silent for ever', async () => {
    const cases = [
      ['types=*', /^types: "\*" is not an event type nor a pattern of them/],
      ['types=Run.completed', /^types: "Run\.completed" is not an event type/],
      ['types=run', /^types: "run" is not an event type/],
      ['types=run.*,*.completed', /^types: "\*\.completed" is not an event type/],
      ['types=run.%20', /^types: "run\. " is not an event type/],
      [`types=${'a'.repeat(200)}.b`, /^types: "a{64}\.\.\." is not an event type/],
      ['run=', /^run: empty; leave it out, or name a run$/],
      // An empty list is not "every event".
      ...['types=', 'types=,,'].map((q) => [q, /^types: empty; leave it out for every event/]),
    ];
    for (const [query, message] of cases) {
      const r = await rest.call('GET', `/v1/events?${query}`);
      assert.equal(r.status, 400, `${query}: ${r.text}`);
      assert.equal(r.json.error.code, 'bad_request', r.text);
      assert.match(r.json.error.message, message, r.text);
    }
    // A run that is not the tenant's: 404 naming it, as for POST /v1/events.
    const unknown = await rest.call('GET', '/v1/events?run=no-such-run&types=run.*');
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(unknown.json.error.message, 'run: no run no-such-run', unknown.text);
    // Types and prefixes still filter, and an empty entry is skipped.
    const marker = await rest.publish({ type: 'test.filtered' });
    assert.equal(marker.status, 201, marker.text);
    const events = await readEvents(base, '/v1/events?types=run.*,,test.filtered', (evs) => evs.some((e) => e.event === 'test.filtered'), { token: TOKEN });
    assert.ok(events.every((e) => e.event === 'test.filtered' || e.event.startsWith('run.')), events.map((e) => e.event).join());
    await stillServing();
  });

  it('GET a context with ?version and ?requirements projects that version, not the head', async () => {
    const made = await rest.call('POST', '/v1/contexts', { body: { data: { user: { id: 'first' } } } });
    assert.equal(made.status, 201, made.text);
    const id = made.json.id;
    const patched = await rest.call('PATCH', `/v1/contexts/${id}`, {
      body: { data: { user: { id: 'second' } } }, contentType: 'application/merge-patch+json', headers: { 'If-Match': '"1"' },
    });
    assert.equal(patched.status, 200, patched.text);
    // The version was dropped when requirements were given: version 2's data came back.
    const old = await rest.call('GET', `/v1/contexts/${id}?version=1&requirements=user.id`);
    assert.equal(old.status, 200, old.text);
    assert.deepEqual({ version: old.json.version, data: old.json.data }, { version: 1, data: { user: { id: 'first' } } });
    const head = await rest.call('GET', `/v1/contexts/${id}?requirements=user.id`);
    assert.deepEqual({ version: head.json.version, data: head.json.data }, { version: 2, data: { user: { id: 'second' } } });
    const none = await rest.call('GET', `/v1/contexts/${id}?version=9&requirements=user.id`);
    assert.equal(none.status, 404, none.text);
    assert.match(none.json.error.message, /has versions 1 to 2, not 9/);
    // A bad path is named as the caller named it: requirements, not paths.
    const bad = await rest.call('GET', `/v1/contexts/${id}?requirements=user.id,user..id`);
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.json.error.message, /^requirements\[1\]: invalid path "user\.\.id": empty segment/, bad.text);
  });

  it('a number past what a query or Last-Event-ID can hold is a 400 naming it, not read as the largest one', async () => {
    const made = await rest.call('POST', '/v1/contexts', { body: { data: { user: { id: 'n' } } } });
    assert.equal(made.status, 201, made.text);
    const id = made.json.id;
    const huge = '99999999999999999999999';
    for (const [path, message] of [
      [`/v1/contexts/${id}?version=${huge}`, /^version: expected an integer from 1 to 9223372036854775807$/],
      [`/v1/contexts/${id}?version=%2B1`, /^version: /],
      [`/v1/contexts/${id}/diff?from=1&to=${huge}`, /^from and to are required versions, integers from 1 to 9223372036854775807$/],
      [`/v1/contexts/${id}/history?before=${huge}`, /^before and limit must be integers from 1 to 9223372036854775807/],
      [`/v1/events?since=${huge}`, /^since \/ Last-Event-ID: a sequence number \(an integer from 0 to 9223372036854775807\)$/],
    ]) {
      const r = await rest.call('GET', path);
      assert.equal(r.status, 400, `${path}: ${r.status} ${r.text}`);
      assert.equal(r.json.error.code, 'bad_request');
      assert.match(r.json.error.message, message, path);
    }
    const resumed = await rest.call('GET', '/v1/events', { headers: { 'Last-Event-ID': huge } });
    assert.equal(resumed.status, 400, resumed.text);
    assert.match(resumed.json.error.message, /^since \/ Last-Event-ID: /);
    await stillServing();
  });

  it('every 405 carries the Allow header (RFC 9110 15.5.6), and the methods it lists are served', async () => {
    const cases = [
      ['PUT', '/v1/runs', 'GET, POST'],
      ['DELETE', '/v1/runs/x', 'GET'],
      ['GET', '/v1/runs/x/cancel', 'POST'],
      ['PUT', '/v1/events', 'GET, POST'],
      ['GET', '/v1/agents/call', 'POST'],
      ['POST', '/healthz', 'GET'],
      ['PUT', '/v1/contexts', 'POST'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${TOKEN}` } });
      const text = await res.text();
      assert.equal(res.status, 405, `${method} ${path}: ${text}`);
      assert.equal(res.headers.get('allow'), allow, `${method} ${path}: Allow`);
      assert.equal(JSON.parse(text).error.code, 'method_not_allowed');
    }
    await stillServing();
  });

  it('UTF-8 text in ids and query values is still served', async () => {
    const r = await rest.call('GET', '/v1/agents/explain?capability=%C3%A9t%C3%A9');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.capability, 'été');
    const missing = await rest.call('GET', '/v1/runs/%E2%82%AC');
    assert.equal(missing.status, 404, missing.text);
    assert.match(missing.json.error.message, /run € not found/);
  });
});
