// Workflows end to end over REST, with real MCP agents (the official 1.x
// SDK server in tests/agents/flow_agent.mjs) over stdio and Streamable
// HTTP: arguments mapped from the context and literals, results saved
// where the step says, a branch, a parallel join, a question answered
// later, a booking that carries its idempotency key, each agent handed only
// its projection, every step a context version, retries, timeouts, an
// on-failure handoff to a human-review step, cancel / resume / fork, a
// step budget that stops a loop, and clear errors for bad requests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

import {
  flowAgent, inquiry, readEvents, startFlowHttpAgent, startFlowServer, startRun, writeFlowConfig,
} from './lib/flows.mjs';

const WORKFLOWS = `
  - name: lead
    description: inquiry to booked test drive
    steps:
      - id: intake
        call:
          capability: intake.classify
          tool: classify
          arguments:
            text: $conversation.messages[-1].content
      - id: route
        branch:
          - if: { path: workflow.outputs.intake.intent, equals: buy }
            goto: offer
          - else: general
      - id: offer
        parallel:
          - id: quote
            call:
              agent: finance
              tool: quote
              arguments: { price: 30000, months: 60 }
          - id: look
            call: { agent: sales, tool: whoami, arguments: { note: literal } }
        next: confirm
      - id: general
        call: { agent: intake, tool: whoami }
        next: done
      - id: confirm
        ask:
          message: Which slot suits you?
          schema: { type: object, properties: { slot: { type: string } } }
        save: workflow.variables.choice
      - id: book
        call:
          agent: sales
          tool: book
          arguments:
            slot: $workflow.variables.choice.slot
        save: conversation.entities.booking
      - id: done
        end: completed
  - name: recovery
    steps:
      - id: flaky
        call: { agent: sales, tool: fail_times, arguments: { n: 2 } }
        retry: { attempts: 3, backoff: 10ms }
      - id: slow
        call: { agent: finance, tool: slow, arguments: { ms: 5000 } }
        timeout: 200ms
        on_failure: review
      - id: never
        call: { agent: sales, tool: whoami }
      - id: review
        ask: { message: A person must look at this }
      - id: gave-up
        end: failed
        message: handed to a person
  - name: brittle
    steps:
      - id: hang
        call: { agent: brittle, tool: slow, arguments: { ms: 10000 } }
        retry: { attempts: 7, backoff: 1ms }
  - name: classified
    steps:
      - id: intake
        call:
          capability: intake.classify
          tool: classify
          arguments:
            text: $conversation.messages[-1].content
        save:
          conversation.intent: $result.intent
          conversation.entities: $result.entities
          workflow.variables.classifier: $result.agent
          workflow.variables.none: $result.no.such.part
  - name: shared
    steps:
      - id: one
        call: { agent: sales, tool: whoami }
      - id: two
        call: { agent: sales, tool: whoami }
  - name: unsaved
    steps:
      - id: who
        call: { agent: sales, tool: whoami }
        save: conversation.intent
        on_failure: handed-over
      - id: handed-over
        end: failed
        message: the result did not fit
  - name: unsaved-answer
    steps:
      - id: intent
        ask: { message: What does the customer want? }
        save: conversation.intent
  - name: traced
    steps:
      - id: who
        call: { agent: sales, tool: whoami }
      - id: again
        call: { agent: sales, tool: whoami }
  - name: fan-emit
    steps:
      - id: fan
        parallel:
          - id: tell
            emit: { type: lead.fanned, data: { run: $run.id } }
          - id: who
            call: { agent: sales, tool: whoami }
      - id: only-emits
        parallel:
          - id: tell-a
            emit: { type: lead.told, data: { to: a } }
          - id: tell-b
            emit: { type: lead.told, data: { to: b } }
      - id: done
        end: completed
  - name: loop
    max_steps: 5
    steps:
      - id: again
        call: { agent: sales, tool: whoami }
      - id: back
        branch:
          - if: { path: workflow.outputs.again.agent, equals: sales }
            goto: again
`;

describe('workflows over REST with real agents', () => {
  let financeHttp, sw, rest;

  before(async () => {
    financeHttp = await startFlowHttpAgent('finance');
    const { file } = writeFlowConfig({
      agents: [
        flowAgent('intake', ['intake.classify'], { requirements: ['conversation.messages[-1:]'] }),
        flowAgent('sales', ['sales.offer'], { requirements: ['workflow.outputs.intake'] }),
        flowAgent('finance', ['finance.quote'], { url: financeHttp.url, requirements: ['workflow.variables'] }),
        // its own timeout: the agent is too slow, which the breaker counts
        // (a caller's shorter deadline is the caller's impatience, not)
        flowAgent('brittle', ['brittle'], { limits: { timeoutMs: 50 } }),
      ],
      workflowsYaml: WORKFLOWS,
    });
    ({ server: sw, rest } = await startFlowServer(file));
  });

  after(async () => {
    await sw?.stop();
    await financeHttp?.stop();
  });

  test("the starter's trace context (W3C traceparent) goes with the run to every agent it calls; a malformed one does not", async () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    for (const [traceparent, want] of [[tp, tp], ['00-nothex-00f067aa0ba902b7-01', null]]) {
      const r = await rest.call('POST', '/v1/runs', { body: { workflow: 'traced' }, headers: { traceparent } });
      assert.equal(r.status, 201, r.text);
      const run = await rest.waitFor(r.json.id, 'completed');
      assert.equal(run.trace, undefined, "the run's view does not show it");
      const wf = (await rest.context(run.contextId)).json.data.workflow;
      assert.equal(wf.outputs.who.trace, want, JSON.stringify(wf.outputs.who));
      assert.equal(wf.outputs.again.trace, want, JSON.stringify(wf.outputs.again));
      // A fork goes on in its run's trace, as with its scopes.
      const forked = await rest.action(run.id, 'fork', { step: 'who' });
      assert.equal(forked.status, 201, forked.text);
      const f = await rest.waitFor(forked.json.id, 'completed');
      const fwf = (await rest.context(f.contextId)).json.data.workflow;
      assert.equal(fwf.outputs.again.trace, want, JSON.stringify(fwf.outputs.again));
    }
  });

  test('a lead: intake, branch, parallel join, a question, a booking', async () => {
    const started = await startRun(rest, { workflow: 'lead', input: { ...inquiry('I want to buy a Toyota'), variables: { budget: 32000 } } });
    assert.equal(started.workflow, 'lead');
    assert.match(started.id, /^[0-9a-f-]{36}$/);
    const waiting = await rest.waitFor(started.id, 'waiting');
    assert.deepEqual(waiting.current, ['confirm']);
    assert.equal(waiting.waiting[0].message, 'Which slot suits you?');
    assert.equal(waiting.history.length, 5, 'five steps before the question');
    const order = waiting.history.map((h) => h.step);
    assert.deepEqual(order.slice(0, 2), ['intake', 'route']);
    assert.deepEqual([...order.slice(2, 4)].sort(), ['look', 'quote']);
    assert.equal(order[4], 'offer', 'the parallel step joins after both branches');
    assert.equal(waiting.history[1].to, 'offer');

    const answered = await rest.action(started.id, 'answer', { answer: { slot: 'Sat 10:00' } });
    assert.equal(answered.status, 200, answered.text);
    const run = await rest.waitFor(started.id, 'completed');
    assert.deepEqual(run.history.map((h) => h.step).slice(5), ['confirm', 'book', 'done']);
    assert.deepEqual(run.current, []);

    const ctx = (await rest.context(run.contextId)).json;
    const wf = ctx.data.workflow;
    // arguments from a $path and literals; results saved by default and where the step says
    assert.equal(wf.outputs.intake.intent, 'buy');
    assert.deepEqual(wf.outputs.intake.entities, { make: 'toyota' });
    assert.equal(wf.outputs.quote.monthly, 500);
    assert.deepEqual(wf.outputs.look.args, { note: 'literal' });
    assert.deepEqual(wf.variables, { budget: 32000, choice: { slot: 'Sat 10:00' } });
    assert.equal(ctx.data.conversation.entities.booking.booked, 'Sat 10:00');
    assert.equal(wf.outputs.book, undefined, 'saved where the step says, not in outputs');
    const steps = wf.completedSteps;
    assert.deepEqual(steps.slice(0, 2), ['intake', 'route']);
    assert.deepEqual(steps.slice(2, 4).sort(), ['look', 'quote'], 'the branches, in the order they ended');
    assert.deepEqual(steps.slice(4), ['offer', 'confirm', 'book', 'done']);
    assert.equal(wf.completedSteps.length, 8);
    assert.equal(wf.currentStep, '');
    assert.deepEqual([...ctx.metadata.agents].sort(), ['finance', 'intake', 'sales']);
    // the idempotency key: run/step/visit
    assert.equal(wf.outputs.intake.key, `${run.id}/intake/1`);
    assert.equal(ctx.data.conversation.entities.booking.key, `${run.id}/book/1`);
    // each agent saw only its projection: sales requires workflow.outputs.intake
    const seen = wf.outputs.look.context;
    assert.deepEqual(Object.keys(seen.data), ['workflow']);
    assert.deepEqual(Object.keys(seen.data.workflow), ['outputs']);
    assert.deepEqual(Object.keys(seen.data.workflow.outputs), ['intake']);
    assert.equal(seen.id, run.contextId);
    assert.deepEqual(wf.outputs.look.run, { id: run.id, workflow: 'lead', step: 'look' });
    // every transition is a version, and the history says which
    const versions = run.history.map((h) => h.contextVersion);
    assert.deepEqual(versions, [...versions].sort((a, b) => a - b), 'versions grow along the history');
    assert.equal(ctx.version, run.contextVersion);
    assert.equal(ctx.version, 6, 'create, intake, quote, look, confirm, book (done in the same)');
  });

  test('save as a mapping: the parts of a result go where the spec keeps them', async () => {
    const started = await startRun(rest, { workflow: 'classified', input: inquiry('I want to buy a Toyota') });
    const run = await rest.waitFor(started.id, 'completed');
    const ctx = (await rest.context(run.contextId)).json;
    assert.equal(ctx.data.conversation.intent, 'buy');
    assert.deepEqual(ctx.data.conversation.entities, { make: 'toyota' });
    assert.equal(ctx.data.workflow.variables.classifier, 'intake');
    assert.equal('none' in ctx.data.workflow.variables, false, 'a part the result lacks is not saved');
    assert.equal(ctx.data.workflow.outputs?.intake, undefined, 'the mapping replaces the default save');
  });

  test('a result or an answer the context refuses fails the step, or is refused: the run never hangs', async () => {
    // whoami answers an object; the context holds conversation.intent as a string
    const started = await startRun(rest, { workflow: 'unsaved', input: inquiry('buy a Ford') });
    const run = await rest.waitFor(started.id, 'failed');
    assert.deepEqual(run.error, { step: 'handed-over', message: 'the result did not fit' });
    const who = run.history.find((h) => h.step === 'who');
    assert.equal(who.status, 'failed');
    assert.equal(who.agent, 'sales');
    assert.match(who.error, /^step who: the context refused its result: data\.conversation\.intent: expected a string/);
    const ctx = (await rest.context(run.contextId)).json;
    assert.equal(ctx.data.workflow.errors[0].code, 'unsaved');
    assert.equal(ctx.data.conversation.intent, '', 'nothing of the result was saved');

    // an answer that does not fit is refused, and the question stays open
    const asked = await startRun(rest, { workflow: 'unsaved-answer' });
    await rest.waitFor(asked.id, 'waiting');
    const refused = await rest.action(asked.id, 'answer', { answer: { intent: 'buy' } });
    assert.equal(refused.status, 400, refused.text);
    assert.match(refused.json.error.message, /data\.conversation\.intent: expected a string/);
    const still = await rest.run(asked.id);
    assert.equal(still.json.status, 'waiting');
    assert.deepEqual(still.json.current, ['intent']);
    const answered = await rest.action(asked.id, 'answer', { answer: 'buy' });
    assert.equal(answered.status, 200, answered.text);
    const done = await rest.waitFor(asked.id, 'completed');
    assert.equal((await rest.context(done.contextId)).json.data.conversation.intent, 'buy');
  });

  test('two dozen runs started at once on one context are all answered and all complete, without waiting on each other for minutes', async () => {
    // Each step is the context's next version: the runs of one server
    // write it in turn rather than conflict (they kept losing, paused,
    // and the last start was answered after a minute).
    const ctx = await rest.call('POST', '/v1/contexts', { body: {} });
    assert.equal(ctx.status, 201, ctx.text);
    const starts = await Promise.all(Array.from({ length: 24 }, () => rest.start({ workflow: 'shared', contextId: ctx.json.id })));
    for (const s of starts) assert.equal(s.status, 201, s.text);
    for (const s of starts) await rest.waitFor(s.json.id, 'completed');
    const after = (await rest.context(ctx.json.id)).json;
    assert.equal(after.version, 1 + 24 * 3, 'each run: its start and two steps, one version each');
  });

  test('the list of runs pages with nextCursor, and refuses a cursor it did not give', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await startRun(rest, { workflow: 'classified', input: inquiry(`buy a Honda ${i}`) });
      await rest.waitFor(r.id, 'completed');
      ids.push(r.id);
    }
    const first = await rest.list('?status=completed&limit=2');
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.runs.length, 2);
    assert.equal(typeof first.json.nextCursor, 'string');
    const next = await rest.list(`?status=completed&limit=2&cursor=${first.json.nextCursor}`);
    assert.equal(next.status, 200, next.text);
    // newest first: the last two started, then the one before them
    assert.deepEqual(first.json.runs.map((r) => r.id), [ids[2], ids[1]]);
    assert.equal(next.json.runs[0].id, ids[0]);
    for (const bad of ['garbage', 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz']) {
      const r = await rest.list(`?cursor=${bad}`);
      assert.equal(r.status, 400, r.text);
      assert.match(r.json.error.message, /^cursor: not one a list of runs gave/);
    }
  });

  test('retries, a timeout, and the on-failure handoff to a person', async () => {
    const started = await startRun(rest, { workflow: 'recovery' });
    const waiting = await rest.waitFor(started.id, 'waiting');
    const flaky = waiting.history.find((h) => h.step === 'flaky');
    assert.equal(flaky.status, 'completed');
    assert.equal(flaky.attempts, 3, 'two failures, then the third try');
    const slow = waiting.history.find((h) => h.step === 'slow');
    assert.equal(slow.status, 'failed');
    assert.match(slow.error, /finance/);
    assert.deepEqual(waiting.current, ['review'], 'on_failure handed the run to the review step');
    assert.ok(!waiting.history.some((h) => h.step === 'never'));
    const ctx = (await rest.context(waiting.contextId)).json;
    const [err] = ctx.data.workflow.errors;
    assert.equal(err.step, 'slow');
    assert.equal(err.code, 'timed_out');
    assert.equal(err.agentId, 'finance');
    await rest.action(started.id, 'answer', { answer: { ok: true } });
    const done = await rest.waitFor(started.id, 'failed');
    assert.deepEqual(done.error, { step: 'gave-up', message: 'handed to a person' });
    // the workflow ended it as failed: a resume does not turn that into completed
    const resumed = await rest.action(started.id, 'resume');
    assert.equal(resumed.status, 409, resumed.text);
    assert.match(resumed.json.error.message, /failed at step gave-up \(handed to a person\) with no step under way/);
    assert.equal((await rest.run(started.id)).json.status, 'failed');
  });

  test('cancel, resume and fork', async () => {
    const started = await startRun(rest, { workflow: 'lead', input: inquiry('buy a Honda') });
    await rest.waitFor(started.id, 'waiting');
    const cancelled = await rest.action(started.id, 'cancel', { reason: 'customer called back' });
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.equal(cancelled.json.status, 'cancelled');
    const again = await rest.action(started.id, 'cancel');
    assert.equal(again.status, 409);
    assert.match(again.json.error.message, /is cancelled/);
    const ctx = (await rest.context(started.contextId)).json;
    assert.match(ctx.data.workflow.errors.at(-1).message, /customer called back/);

    const resumed = await rest.action(started.id, 'resume');
    assert.equal(resumed.status, 200, resumed.text);
    const back = await rest.waitFor(started.id, 'waiting');
    assert.deepEqual(back.current, ['confirm']);
    await rest.action(started.id, 'answer', { answer: { slot: 'Mon 9:00' } });
    const finished = await rest.waitFor(started.id, 'completed');

    // a fork from the intake step replays from the version it left
    const intake = finished.history.find((h) => h.step === 'intake');
    const forked = await rest.action(started.id, 'fork', { step: 'intake' });
    assert.equal(forked.status, 201, forked.text);
    assert.equal(forked.headers.location, `/v1/runs/${forked.json.id}`);
    assert.notEqual(forked.json.id, started.id);
    assert.notEqual(forked.json.contextId, started.contextId);
    assert.deepEqual(forked.json.forkedFrom, { runId: started.id, step: 'intake', contextVersion: intake.contextVersion });
    const f = await rest.waitFor(forked.json.id, 'waiting');
    assert.equal(f.history[0].step, 'route', 'the fork goes on after intake, without calling it again');
    const fctx = (await rest.context(f.contextId)).json;
    assert.equal(fctx.data.workflow.outputs.intake.intent, 'buy', 'the fork starts from the version intake left');
    assert.equal(fctx.data.workflow.variables.choice, undefined, 'nothing from after that version');
    await rest.action(f.id, 'cancel');

    const noStep = await rest.action(started.id, 'fork', { step: 'nope' });
    assert.equal(noStep.status, 404);
    assert.match(noStep.json.error.message, /no completed step "nope"/);
  });

  test('a fork from a branch of a parallel step runs the branches not yet done then, and joins', async () => {
    const started = await startRun(rest, { workflow: 'lead', input: inquiry('buy a Honda') });
    const run = await rest.waitFor(started.id, 'waiting');
    const branches = run.history.filter((h) => h.step === 'quote' || h.step === 'look');
    assert.equal(branches.length, 2);
    const [first, second] = branches; // in the order they completed
    const forked = await rest.action(started.id, 'fork', { step: first.step });
    assert.equal(forked.status, 201, forked.text);
    const f = await rest.waitFor(forked.json.id, 'waiting');
    assert.deepEqual(f.history.map((h) => h.step), [second.step, 'offer'],
      `the fork runs ${second.step}, which had not completed when ${first.step} did, then joins`);
    assert.deepEqual(f.current, ['confirm']);
    const fctx = (await rest.context(f.contextId)).json;
    assert.ok(fctx.data.workflow.outputs[first.step], 'copied from the version it left');
    assert.ok(fctx.data.workflow.outputs[second.step], 'run again in the fork');
    // from the branch that completed last: nothing left under way, the fork goes on after the join
    const last = await rest.action(started.id, 'fork', { step: second.step });
    assert.equal(last.status, 201, last.text);
    const l = await rest.waitFor(last.json.id, 'waiting');
    assert.deepEqual(l.history, []);
    assert.deepEqual(l.current, ['confirm']);
    for (const id of [started.id, f.id, l.id]) await rest.action(id, 'cancel');
  });

  test('timeouts open the agent\'s breaker: breaker.opened in the log, then refusals, then the step fails', async () => {
    const started = await startRun(rest, { workflow: 'brittle' });
    const failed = await rest.waitFor(started.id, 'failed');
    assert.equal(failed.history[0].attempts, 7);
    assert.match(failed.error.message, /brittle/);
    const evs = await readEvents(sw.url.replace(/\/mcp$/, ''), '/v1/events?types=breaker.*,agent.failed',
      (e) => e.some((x) => x.event === 'breaker.opened'));
    const opened = evs.find((e) => e.event === 'breaker.opened');
    assert.deepEqual(opened.data.data, { agent: 'brittle' });
    assert.ok(evs.some((e) => e.event === 'agent.failed' && e.data.data.agent === 'brittle'));
  });

  test('an emit inside a parallel step publishes and ends its branch; emits alone join at once', async () => {
    const started = await startRun(rest, { workflow: 'fan-emit' });
    // It waited for ever: the emit was made active, like a call, and
    // nothing ever completed it.
    const run = await rest.waitFor(started.id, 'completed');
    const steps = run.history.map((h) => h.step);
    assert.deepEqual([...steps.slice(0, 2)].sort(), ['tell', 'who']);
    assert.deepEqual(steps.slice(2), ['fan', 'tell-a', 'tell-b', 'only-emits', 'done']);
    const evs = await readEvents(sw.url.replace(/\/mcp$/, ''), `/v1/events?since=0&types=lead.*&run=${started.id}`,
      (e) => e.filter((x) => x.event.startsWith('lead.')).length >= 3);
    const told = evs.filter((x) => x.event.startsWith('lead.')).map((x) => [x.event, x.data.data]);
    assert.deepEqual(told, [['lead.fanned', { run: started.id }], ['lead.told', { to: 'a' }], ['lead.told', { to: 'b' }]]);
  });

  test('a loop is stopped by the step budget with a clear error', async () => {
    const started = await startRun(rest, { workflow: 'loop' });
    const run = await rest.waitFor(started.id, 'failed');
    assert.match(run.error.message, /budget of 5 steps/);
    assert.equal(run.stepsRun, 5, "the step refused is not counted");
    // it stopped at no step: a resume would have nothing to run (and read
    // as completed though nothing ran)
    const resumed = await rest.action(started.id, 'resume');
    assert.equal(resumed.status, 409, resumed.text);
    assert.match(resumed.json.error.message, /failed at step back \(the run has executed its budget of 5 steps.*\) with no step under way: there is nothing to resume/);
    const after = await rest.run(started.id);
    assert.equal(after.json.status, 'failed');
    assert.equal(after.json.stepsRun, 5);
  });

  test('bad requests are refused with what is wrong', async () => {
    const unknown = await rest.start({ workflow: 'nope' });
    assert.equal(unknown.status, 404);
    assert.match(unknown.json.error.message, /no workflow "nope" \(workflows: lead, loop, recovery\)|workflows: /);
    const badInput = await rest.start({ workflow: 'lead', input: { colour: 'red' } });
    assert.equal(badInput.status, 400);
    assert.match(badInput.json.error.message, /input\.colour: unknown/);
    const badVar = await rest.start({ workflow: 'lead', input: { variables: { 'a.b': 1 } } });
    assert.equal(badVar.status, 400);
    const noCtx = await rest.start({ workflow: 'lead', contextId: '01a20000-0000-7000-8000-000000000000' });
    assert.equal(noCtx.status, 404);
    assert.match(noCtx.json.error.message, /contextId/);
    const notJson = await rest.call('POST', '/v1/runs', { body: '{"workflow":', contentType: 'application/json' });
    assert.equal(notJson.status, 400);
    const missing = await rest.run('01a20000-0000-7000-8000-000000000000');
    assert.equal(missing.status, 404);
    const notWaiting = await rest.action('01a20000-0000-7000-8000-000000000000', 'answer', { answer: {} });
    assert.equal(notWaiting.status, 404);
    const badAction = await rest.action('x', 'explode');
    assert.equal(badAction.status, 404);
    const list = await rest.list('?status=bogus');
    assert.equal(list.status, 400);
    const limit = await rest.list('?limit=5abc');
    assert.equal(limit.status, 400);
    assert.match(limit.json.error.message, /limit/);
    // an input over the message limit (4 MiB) is refused whole
    const huge = await rest.start({ workflow: 'lead', input: { variables: { notes: 'x'.repeat(5 * 1024 * 1024) } } });
    assert.equal(huge.status, 413);
    // one nested past limits.max_json_depth too
    let deep = {};
    for (let i = 0; i < 100; i++) deep = { d: deep };
    const tooDeep = await rest.start({ workflow: 'lead', input: { variables: { deep } } });
    assert.equal(tooDeep.status, 400);
    assert.match(tooDeep.json.error.message, /deep|depth|nest/i);
    // An answer for a step the workflow has no question at is a bad
    // request (not a 409: no state of the run would take it).
    const asking = await startRun(rest, { workflow: 'lead', input: inquiry('buy a Ford') });
    await rest.waitFor(asking.id, 'waiting');
    for (const step of ['zzz', 'intake']) {
      const r = await rest.action(asking.id, 'answer', { answer: {}, step });
      assert.equal(r.status, 400, `${step}: ${r.text}`);
      assert.equal(r.json.error.message, `step: workflow lead has no ask step ${step}`);
    }
    assert.equal((await rest.action(asking.id, 'cancel')).status, 200);
  });
});

describe('a context with no room left (contexts.max_bytes)', () => {
  const MAX = 4096;
  let sw, rest;
  /** A workflow that asks for a pad saved in the context, then calls an
   * agent, handing off to an end step `recover` if the call fails. */
  const brim = (name, recover, message) => `
  - name: ${name}
    steps:
      - id: pad
        ask: { message: How much?, schema: { type: object, properties: { pad: { type: string } } } }
        save: workflow.variables.pad
      - id: who
        call: { agent: sales, tool: whoami }
        on_failure: ${recover}
      - id: ${recover}
        end: failed
        message: ${message}`;

  before(async () => {
    const { file } = writeFlowConfig({
      agents: [flowAgent('sales', ['sales.offer'])],
      workflowsYaml: `
  - name: fill
    steps:
      - id: who
        call: { agent: sales, tool: whoami }
      - id: done
        end: completed
  - name: hold
    steps:
      - id: q
        ask: { message: Which slot?, schema: { type: object, properties: { slot: { type: string } } } }
${brim('brim', 'recover_after_running_out_of_room', 'no room left')}
${brim('brim_long', 'recover', 'no room left '.repeat(100))}
`,
    });
    appendFileSync(file, `contexts:\n  max_bytes: ${MAX}\n`);
    ({ server: sw, rest } = await startFlowServer(file));
  });

  after(async () => {
    await sw?.stop();
  });

  /** A context this many bytes short of the limit, as stored. */
  async function nearlyFull(room) {
    const made = await rest.call('POST', '/v1/contexts', { body: { data: { workflow: { variables: { pad: '' } } } } });
    assert.equal(made.status, 201, made.text);
    const pad = 'x'.repeat(MAX - room - Buffer.byteLength(JSON.stringify(made.json)));
    const r = await rest.call('PATCH', `/v1/contexts/${made.json.id}`, {
      body: { data: { workflow: { variables: { pad } } } }, contentType: 'application/merge-patch+json', headers: { 'If-Match': '"1"' },
    });
    assert.equal(r.status, 200, r.text);
    return r.json;
  }

  test('a step whose result and whose failure the context cannot hold fails the run; it does not stay running', async () => {
    // The result is refused (too large), and so is the failure's entry in
    // data.workflow.errors: the failure is written without it.
    const ctx = await nearlyFull(120);
    const started = await startRun(rest, { workflow: 'fill', contextId: ctx.id });
    const run = await rest.waitFor(started.id, 'failed');
    assert.equal(run.error.step, 'who', JSON.stringify(run));
    assert.match(run.error.message, /^step who: the context refused its result: .*contexts\.max_bytes/, JSON.stringify(run));
    const after = (await rest.context(ctx.id)).json;
    assert.deepEqual(after.data.workflow.errors ?? [], [], 'no entry: there was no room');
    assert.ok(Buffer.byteLength(JSON.stringify(after)) <= MAX);
  });

  test("a cancellation with a reason the context cannot hold still cancels; the run keeps the reason", async () => {
    const ctx = await nearlyFull(120);
    const started = await startRun(rest, { workflow: 'hold', contextId: ctx.id });
    await rest.waitFor(started.id, 'waiting');
    const reason = `the customer went elsewhere: ${'y'.repeat(200)}`;
    const cancelled = await rest.action(started.id, 'cancel', { reason });
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.equal(cancelled.json.status, 'cancelled', cancelled.text);
    const run = await rest.waitFor(started.id, 'cancelled');
    assert.deepEqual(run.current, [], JSON.stringify(run));
  });

  /** Starts `workflow` on a new context and answers its first question
   * with the pad that leaves the context no byte: an answer the context
   * refuses says how large it would have made it (the question stays
   * open); one that much shorter fits exactly. */
  async function brimmed(workflow) {
    const made = await rest.call('POST', '/v1/contexts', { body: {} });
    assert.equal(made.status, 201, made.text);
    const started = await startRun(rest, { workflow, contextId: made.json.id });
    await rest.waitFor(started.id, 'waiting');
    const over = await rest.action(started.id, 'answer', { answer: { pad: 'p'.repeat(MAX) } });
    const size = Number(/would be (\d+) bytes/.exec(over.text)?.[1]);
    assert.ok(size > MAX, over.text);
    const pad = MAX - (size - MAX);
    const filled = await rest.action(started.id, 'answer', { answer: { pad: 'p'.repeat(pad) } });
    assert.equal(filled.status, 200, filled.text);
    return { run: started.id, contextId: made.json.id, pad };
  }

  test('a run whose own answer filled its context to the byte still hands off on failure and ends', async () => {
    // The call's result is refused; so is its failure's handoff without
    // the errors entry (one more completed step, the end's own entry), but
    // it takes a little more than the limit (a run must be able to end).
    const { run: id, contextId, pad } = await brimmed('brim');
    const run = await rest.waitFor(id, 'failed');
    assert.equal(run.error.step, 'recover_after_running_out_of_room', JSON.stringify(run));
    assert.equal(run.error.message, 'no room left', JSON.stringify(run));
    const after = (await rest.context(contextId)).json;
    assert.deepEqual(after.data.workflow.completedSteps, ['pad', 'recover_after_running_out_of_room']);
    assert.equal(after.data.workflow.variables.pad.pad.length, pad);
    const bytes = Buffer.byteLength(JSON.stringify(after));
    assert.ok(bytes > MAX && bytes <= MAX + 1024, `${bytes} bytes`);
  });

  test('a failure whose on_failure writes more than the context can take fails the run at the step', async () => {
    const { run: id, contextId } = await brimmed('brim_long');
    const run = await rest.waitFor(id, 'failed');
    assert.equal(run.error.step, 'who', JSON.stringify(run));
    assert.match(run.error.message, /^step who: the context refused its result: .*; its on_failure was not taken: the context has no room left \(contexts\.max_bytes\)$/, JSON.stringify(run));
    assert.ok(!run.history.some((h) => h.step === 'recover'), JSON.stringify(run.history));
    const after = (await rest.context(contextId)).json;
    assert.deepEqual(after.data.workflow.completedSteps, ['pad']);
    assert.deepEqual(after.data.workflow.errors, []);
  });
});

describe('contexts.max_bytes lowered under a run', () => {
  test('a run whose context is past the new limit still fails when its step does; it does not stay running', async () => {
    // Written under 8 KiB, then the server restarted with 4 KiB: the wait's
    // timeout fails the step, whose handoff and errors entry would grow a
    // context already past the limit; the run fails at the step.
    const { file, dir } = writeFlowConfig({
      agents: [flowAgent('sales', ['sales.offer'])],
      workflowsYaml: `
  - name: shrink
    steps:
      - id: pad
        ask: { message: How much?, schema: { type: object, properties: { pad: { type: string } } } }
        save: workflow.variables.pad
      - id: hear
        wait: { event: lot.ready, timeout: 2s }
        on_failure: recover
      - id: recover
        end: failed
        message: no word
`,
    });
    const base = readFileSync(file, 'utf8');
    const store = `${dir}/sb.db`;
    writeFileSync(file, `${base}contexts:\n  max_bytes: 8192\n`);
    let { server, rest } = await startFlowServer(file, { extraArgs: ['--store', store] });
    let id, contextId;
    try {
      const made = await rest.call('POST', '/v1/contexts', { body: {} });
      assert.equal(made.status, 201, made.text);
      contextId = made.json.id;
      ({ id } = await startRun(rest, { workflow: 'shrink', contextId }));
      await rest.waitFor(id, 'waiting');
      const answered = await rest.action(id, 'answer', { answer: { pad: 'p'.repeat(6000) } });
      assert.equal(answered.status, 200, answered.text);
    } finally {
      await server.stop();
    }
    writeFileSync(file, `${base}contexts:\n  max_bytes: 4096\n`);
    ({ server, rest } = await startFlowServer(file, { extraArgs: ['--store', store] }));
    try {
      const run = await rest.waitFor(id, 'failed');
      assert.equal(run.error.step, 'hear', JSON.stringify(run));
      assert.match(run.error.message, /its on_failure was not taken: the context has no room left/, JSON.stringify(run));
      const ctx = (await rest.context(contextId)).json;
      assert.deepEqual(ctx.data.workflow.errors, []);
      assert.equal(ctx.data.workflow.variables.pad.pad.length, 6000);
    } finally {
      await server.stop();
    }
  });
});

describe('a SIGHUP reloads the workflows', () => {
  // v1 asks, then ends as it says; v2 asks something else.
  const greet = (v, end) => `
  - name: greet
    steps:
      - id: slot
        ask: { message: Which slot (${v})? }
      - id: done
        end: ${end}
        message: ended by ${v}`;

  test('new runs start from the file as reloaded; a run under way keeps its own definition', async () => {
    const { file } = writeFlowConfig({ workflowsYaml: greet('v1', 'completed') });
    const { server, rest } = await startFlowServer(file);
    try {
      const first = await startRun(rest, { workflow: 'greet' });
      assert.equal((await rest.waitFor(first.id, 'waiting')).waiting[0].message, 'Which slot (v1)?');
      assert.equal((await rest.start({ workflow: 'second' })).status, 404);

      // Before: "other settings (workflows included) take effect at the
      // next start": a workflow added or fixed needed a restart.
      writeFileSync(file, readFileSync(file, 'utf8').replace(greet('v1', 'completed'),
        greet('v2', 'failed') + '\n  - name: second\n    steps:\n      - { id: only, end: completed }'));
      const said = await server.sighup(/config reloaded|config not reloaded/);
      assert.match(said, /config reloaded: 0 agent\(s\) and 2 workflow\(s\) configured/);

      const second = await startRun(rest, { workflow: 'greet' });
      assert.equal((await rest.waitFor(second.id, 'waiting')).waiting[0].message, 'Which slot (v2)?');
      await rest.waitFor((await startRun(rest, { workflow: 'second' })).id, 'completed');
      // The first run goes on by v1 to its end.
      assert.equal((await rest.action(first.id, 'answer', { answer: 'any' })).status, 200);
      await rest.waitFor(first.id, 'completed');

      // A file whose workflow does not load changes nothing.
      writeFileSync(file, readFileSync(file, 'utf8').replace('id: only, end: completed', 'id: only, end: sideways'));
      assert.match(await server.sighup(/config (not )?reloaded/), /config not reloaded/);
      await rest.waitFor((await startRun(rest, { workflow: 'second' })).id, 'completed');
    } finally {
      await server.stop();
    }
  });
});
