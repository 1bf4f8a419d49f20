// A long loop of steps that call no one (emit, branch) keeps the server
// responsive: the run is cut into transitions of at most 256 steps, each
// written on its own turn of the event loop, so /healthz and other
// requests are answered while it executes, and a cancelled loop can be
// resumed at once. Its state stays bounded: the history keeps its first
// 100 and last 400 entries (historyElided counts the others), and so does
// the context's data.workflow.completedSteps.
// Synchronised by the run's own answers and events, never by sleeps.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { tempStorePath } from './lib/harness.mjs';
import { readEvents, startFlowServer, writeFlowConfig } from './lib/flows.mjs';
import { runCli } from './lib/contexts_common.mjs';

const MAX_STEPS = 100000;

const WORKFLOWS = `
  - name: spin
    max_steps: ${MAX_STEPS}
    steps:
      - id: tick
        emit: { type: spin.tick, data: { run: $run.id } }
      - id: loop
        branch:
          - if: { path: workflow.variables.stop, exists: true }
            goto: done
          - else: tick
      - id: done
        end: completed
`;

describe('a long agentless loop', () => {
  let sw, rest, base, store;

  before(async () => {
    const { file } = writeFlowConfig({ workflowsYaml: WORKFLOWS });
    store = tempStorePath();
    ({ server: sw, rest, base } = await startFlowServer(file, { extraArgs: ['--store', store] }));
  });

  after(async () => { await sw?.stop(); });

  test('the server answers while it executes; its state stays bounded', async () => {
    // The start answers once the loop's first part is durable: the run is
    // still running (it used to answer only after all 100 000 steps).
    const started = await rest.start({ workflow: 'spin' });
    assert.equal(started.status, 201, started.text);
    const run = started.json;
    assert.equal(run.status, 'running', `started: ${started.text.slice(0, 300)}`);
    assert.ok(run.stepsRun > 0 && run.stepsRun <= 256, `first part: ${run.stepsRun} steps`);
    assert.equal(run.current.length, 1, 'it goes on at one step');
    assert.ok(['tick', 'loop'].includes(run.current[0]));

    // Answered while the run goes on: the run read afterwards has not ended.
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    const during = await rest.run(run.id);
    assert.equal(during.status, 200, during.text);
    assert.equal(during.json.status, 'running', `during: ${during.text.slice(0, 300)}`);
    assert.ok(during.json.stepsRun <= MAX_STEPS);

    // The end, as its event tells.
    const evs = await readEvents(base, `/v1/events?since=0&types=run.*&run=${run.id}`,
      (e) => e.some((x) => x.event === 'run.failed' || x.event === 'run.completed'), { timeoutMs: 120000 });
    assert.ok(evs.some((x) => x.event === 'run.failed'), JSON.stringify(evs.slice(-3)));

    const end = await rest.run(run.id);
    assert.equal(end.json.status, 'failed');
    assert.match(end.json.error.message, /budget of 100000 steps/);
    assert.equal(end.json.stepsRun, MAX_STEPS, "the step refused is not counted");
    assert.equal(end.json.history.length, 500);
    assert.equal(end.json.historyElided, MAX_STEPS - 500);
    assert.deepEqual(end.json.history.slice(0, 2).map((h) => [h.step, h.visit]), [['tick', 1], ['loop', 1]]);
    assert.deepEqual(end.json.history.slice(-2).map((h) => [h.step, h.visit]), [['tick', 50000], ['loop', 50000]]);
    assert.deepEqual(end.json.current, []);
    assert.equal(end.json.continueAt, undefined);

    const ctx = await rest.context(run.contextId);
    assert.equal(ctx.status, 200, ctx.text);
    assert.equal(ctx.json.data.workflow.completedSteps.length, 500);

    // The CLI's summary counts the entries the run did not keep.
    const cli = await runCli(['runs', 'get', run.id, '--store', store, '--tenant', 'default']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /steps {5}100000 run: tick \(completed\), loop \(completed\),/);
    assert.match(cli.stdout, new RegExp(`\\.\\.\\. ${MAX_STEPS - 20} more \\.\\.\\.`));
  });

  // A cancellation acknowledged leaves the run resumable at once. Looping
  // runs take turns to go on; one cancelled while it waited for its turn
  // used to stay in memory until the turn came, and a resume meanwhile
  // was refused (409 "still in progress").
  test('a looping run cancelled can be resumed at once', async () => {
    const ids = [];
    for (let i = 0; i < 24; i++) {
      const r = await rest.start({ workflow: 'spin' });
      assert.equal(r.status, 201, r.text);
      ids.push(r.json.id);
    }
    const busy = async (call) => {
      for (;;) {
        const r = await call();
        if (r.status !== 503) return r;
      }
    };
    for (const id of ids) {
      const c = await busy(() => rest.action(id, 'cancel', { reason: 'pause' }));
      assert.equal(c.status, 200, c.text);
      const r = await busy(() => rest.action(id, 'resume'));
      assert.equal(r.status, 200, `run ${id}: ${r.text}`);
      assert.equal(r.json.status, 'running');
    }
    for (const id of ids) {
      const c = await busy(() => rest.action(id, 'cancel', { reason: 'done' }));
      assert.equal(c.status, 200, c.text);
    }
  });
});
