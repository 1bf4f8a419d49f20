// Several processes on one store: each run in progress is driven by one
// living process at a time. A server starting beside another leaves the
// other's runs alone (before, it brought them back too, and every step
// under way ran twice: two agents called, two bookings); when the process
// driving a run dies (another server, a `switchboard run`), a server still
// up takes the run over within store.takeover_interval_ms and goes on
// with it, with the same idempotency key (before, the run stayed "running"
// until a server restarted).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startHttpServer, switchboardBin } from './lib/harness.mjs';
import { pollUntil } from '../agents/agents_lib.mjs';
import { callsReceived, flowAgent, readEvents, runsClient, startRun, writeFlowConfig } from './lib/flows.mjs';

const WORKFLOW = `
  - name: held
    steps:
      - id: hold
        call: { agent: desk, tool: slow, arguments: { ms: 600000 } }
  - name: waiter
    steps:
      - id: approved
        wait: { event: finance.approved, where: { contextId: $context.id }, timeout: 60s }
  - name: brief
    steps:
      - id: approved
        wait: { event: finance.approved, where: { contextId: $context.id }, timeout: 5s }
  - name: asked
    steps:
      - id: confirm
        ask:
          message: Go ahead?
          schema: { type: object, properties: { ok: { type: boolean } }, required: [ok] }
      - id: hold
        call: { agent: desk, tool: slow, arguments: { ms: 600000 } }
`;

const servers = [];
after(async () => { await Promise.all(servers.map((s) => s.stop().catch(() => {}))); });

function setUp(name, takeoverMs = 200) {
  const dir = mkdtempSync(join(tmpdir(), `sb-drivers-${name}-`));
  const calls = join(dir, 'calls.tsv');
  const store = join(dir, 'sb.db');
  const { file } = writeFlowConfig({
    agents: [flowAgent('desk', ['desk'], { env: { CALLS: calls } })],
    workflowsYaml: WORKFLOW,
    store,
    storeKeys: { takeover_interval_ms: takeoverMs },
  });
  // The calls the agent received for key, in order (each process that
  // drives the step sends it once).
  const sent = (key) => callsReceived(calls).filter((c) => c.key === key);
  return { file, store, sent };
}

/** A server on the store, once it has claimed the runs to resume: {server, rest, resumed}. */
async function serve(file, store) {
  const server = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
  servers.push(server);
  const m = await server.stderrMatch(/resuming (\d+) runs in progress|no runs in progress to resume/);
  return { server, rest: runsClient(server.url.replace(/\/mcp$/, '')), resumed: Number(m[1] ?? 0) };
}

test('a second server leaves the first one\'s runs alone, and takes them over when it dies', async () => {
  const { file, store, sent } = setUp('serve');
  const a = await serve(file, store);
  assert.equal(a.resumed, 0);
  const run = await startRun(a.rest, { workflow: 'held' });
  const key = `${run.id}/hold/1`;
  await pollUntil(() => sent(key).length === 1 || { ok: false, message: 'not yet sent' },
    { what: 'the step\'s call to reach the agent' });

  // B starts while A drives the run: it brings none back.
  const b = await serve(file, store);
  assert.equal(b.resumed, 0, b.server.stderr.slice(-2000));
  assert.equal((await b.rest.run(run.id)).json.status, 'running');
  const answer = await b.rest.action(run.id, 'answer', { answer: {} });
  assert.equal(answer.status, 409, answer.text);
  assert.match(answer.json.error.message, /is running in another process on this store/);

  // A dies: B takes the run over and sends the step again, same key.
  a.server.proc.kill('SIGKILL');
  await a.server.exited;
  await b.server.stderrMatch(/taking over 1 runs in progress whose process has ended/);
  await pollUntil(() => sent(key).length === 2 || { ok: false, message: `${sent(key).length} calls` },
    { what: 'the step to be sent again by the server that took the run over' });
  const metrics = await b.rest.call('GET', '/metrics');
  assert.equal(metrics.status, 200, metrics.text);
  assert.match(metrics.text, /^switchboard_runs_taken_over_total 1$/m);

  // A third server beside B: B's run stays B's.
  const c = await serve(file, store);
  assert.equal(c.resumed, 0, c.server.stderr.slice(-2000));
  const cancelled = await b.rest.action(run.id, 'cancel', { reason: 'done testing' });
  assert.equal(cancelled.status, 200, cancelled.text);
  const ended = await c.rest.waitFor(run.id, 'cancelled');
  assert.deepEqual(ended.stopped, ['hold']);
  assert.equal(sent(key).length, 2, 'no third call: C never drove the run');
  for (const s of [b, c]) assert.equal((await s.server.stop()).code, 0, s.server.stderr.slice(-2000));
});

/**
 * Servers A and B on one store; a run of `asked` started on A waits for
 * its answer, which is given through B (B takes the run over), and B's
 * next step reaches the agent: {a, b, run, key (that step's idempotency
 * key), sent}.
 */
async function answeredThroughB(name, takeoverMs) {
  const { file, store, sent } = setUp(name, takeoverMs);
  const a = await serve(file, store);
  const run = await startRun(a.rest, { workflow: 'asked' });
  await a.rest.waitFor(run.id, 'waiting');
  const b = await serve(file, store);
  const answered = await b.rest.action(run.id, 'answer', { answer: { ok: true } });
  assert.equal(answered.status, 200, answered.text);
  const key = `${run.id}/hold/1`;
  await pollUntil(() => sent(key).length === 1 || { ok: false, message: 'not yet sent' },
    { what: 'the step after the answer to reach the agent, sent by B' });
  return { a, b, run, key, sent };
}

// A waits on a question; the answer comes through B, which takes the run
// over and starts the next step, and A lets its copy go; B dies. A takes
// the run back and goes on from the row B wrote (the step B had under
// way), not from its copy of before the answer.
test('a run taken back by the server it came from goes on from what the other server wrote', async () => {
  const { a, b, run, key, sent } = await answeredThroughB('back');

  await a.server.stderrMatch(new RegExp(`run ${run.id}: another process on the store drives it now .*: it leaves this server`));

  b.server.proc.kill('SIGKILL');
  await b.server.exited;
  await a.server.stderrMatch(/taking over 1 runs in progress whose process has ended/);
  await pollUntil(() => sent(key).length === 2 || { ok: false, message: `${sent(key).length} calls` },
    { what: 'A to send the step B had under way again' });
  const view = (await a.rest.run(run.id)).json;
  assert.equal(view.status, 'running');
  assert.deepEqual(view.current, ['hold']);
  assert.deepEqual(view.history.map((h) => [h.step, h.status]), [['confirm', 'completed']]);
  const cancelled = await a.rest.action(run.id, 'cancel', {});
  assert.equal(cancelled.status, 200, cancelled.text);
  await a.rest.waitFor(run.id, 'cancelled');
  assert.equal((await a.server.stop()).code, 0, a.server.stderr.slice(-2000));
});

// Two servers behind one address: the answer to A's question comes
// through B, which takes the run over and starts the next step. A second
// answer through A finds A's copy behind the row: A lets the run go (409)
// instead of starting again the step B has under way. (No takeover
// rounds here: they would tell A first, as the next test shows.)
test('a server whose copy of a run another living server took over lets it go at its next write', async () => {
  const { a, b, run, key, sent } = await answeredThroughB('two', 86400000);

  const again = await a.rest.action(run.id, 'answer', { answer: { ok: false } });
  assert.equal(again.status, 409, again.text);
  assert.match(again.json.error.message, new RegExp(`run ${run.id} is driven by another process on this store now`));
  const metrics = await a.rest.call('GET', '/metrics');
  assert.match(metrics.text, /^switchboard_runs_in_progress 0$/m, 'A let its copy go');
  assert.equal(sent(key).length, 1, 'A did not send the step B has under way');

  const cancelled = await b.rest.action(run.id, 'cancel', {});
  assert.equal(cancelled.status, 200, cancelled.text);
  const ended = await a.rest.waitFor(run.id, 'cancelled');
  assert.deepEqual(ended.history.map((h) => [h.step, h.status]), [['confirm', 'completed']]);
  for (const s of [a, b]) assert.equal((await s.server.stop()).code, 0, s.server.stderr.slice(-2000));
});

// The same, without a second answer: A's next takeover round tells it
// that B took the run, and A lets its copy go.
test('a server learns at its next takeover round that another took its run, and lets its copy go', async () => {
  const { a, b, run, key, sent } = await answeredThroughB('moved');
  await a.server.stderrMatch(new RegExp(`run ${run.id}: another process on the store drives it now .*: it leaves this server`));
  const metrics = await a.rest.call('GET', '/metrics');
  assert.match(metrics.text, /^switchboard_runs_in_progress 0$/m, 'A let its copy go');
  const again = await a.rest.action(run.id, 'answer', { answer: { ok: false } });
  assert.equal(again.status, 409, again.text);
  assert.match(again.json.error.message, /is running in another process on this store/);
  const cancelled = await a.rest.action(run.id, 'cancel', {});
  assert.equal(cancelled.status, 200, cancelled.text);
  await b.server.stderrMatch(new RegExp(`run ${run.id}: its stored row is at rev \\d+, not \\d+ \\(written elsewhere\\)`));
  await b.rest.waitFor(run.id, 'cancelled');
  assert.equal(sent(key).length, 1);
  for (const s of [a, b]) assert.equal((await s.server.stop()).code, 0, s.server.stderr.slice(-2000));
});

test('a run of a killed `switchboard run` is taken over by the server on the store', async () => {
  const { file, store, sent } = setUp('cli');
  const s = await serve(file, store);
  const cli = spawn(switchboardBin(), ['run', 'held', '--config', file, '--json'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  cli.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => cli.once('close', (code, signal) => resolve({ code, signal })));
  const id = (await pollUntil(() => /run (\S+) of held/.exec(stderr) || { ok: false, message: stderr },
    { what: 'switchboard run to start its run' }))[1];
  const key = `${id}/hold/1`;
  await pollUntil(() => sent(key).length === 1 || { ok: false, message: 'not yet sent' },
    { what: 'the step\'s call to reach the agent' });
  // While the command lives, the server leaves its run alone.
  const answer = await s.rest.action(id, 'answer', { answer: {} });
  assert.equal(answer.status, 409, answer.text);

  cli.kill('SIGKILL');
  assert.equal((await exited).signal, 'SIGKILL');
  await s.server.stderrMatch(/taking over 1 runs in progress whose process has ended/);
  await pollUntil(() => sent(key).length === 2 || { ok: false, message: `${sent(key).length} calls` },
    { what: 'the step to be sent again by the server' });
  const cancelled = await s.rest.action(id, 'cancel', {});
  assert.equal(cancelled.status, 200, cancelled.text);
  await s.rest.waitFor(id, 'cancelled');
  assert.equal((await s.server.stop()).code, 0, s.server.stderr.slice(-2000));
});

test("events another process on the store writes reach this one's streams and waiting runs", async () => {
  const { file, store } = setUp('events');
  const one = await serve(file, store);
  const two = await serve(file, store);
  const base1 = one.server.url.replace(/\/mcp$/, '');
  // Before: only this process's own commits were heard; a stream on one
  // server stalled, and a run waiting there timed out, while the events
  // were in the log (until a commit of its own showed the gap).
  // The stream is live (it has had this process's own event) before the
  // other process publishes, so the event cannot come from its first read.
  const from = (await one.rest.publish({ type: 'qa.start', data: {} })).json.seq;
  let sent;
  const heard = readEvents(base1, `/v1/events?since=${from - 1}&types=qa.*,crm.*`, (evs) => {
    if (!sent && evs.some((e) => e.event === 'qa.start'))
      sent = two.rest.publish({ type: 'crm.lead', data: { n: 1 } });
    return evs.some((e) => e.event === 'crm.lead');
  });
  const got = await heard;
  const published = await sent;
  assert.equal(published.status, 201, published.text);
  assert.deepEqual(got.map((e) => Number(e.id)), [from, published.json.seq]);

  const run = await startRun(one.rest, { workflow: 'waiter' });
  await one.rest.waitFor(run.id, 'waiting');
  const approved = await two.rest.publish({ type: 'finance.approved', data: { contextId: run.contextId } });
  assert.equal(approved.status, 201, approved.text);
  await one.rest.waitFor(run.id, 'completed');
});

test('a wait brought back after its deadline takes the event that came before it', async () => {
  // B never takes A's runs over (its interval is long); it publishes
  // while A is down, before the wait's deadline.
  const { file, store } = setUp('deadline', 600000);
  const a = await serve(file, store);
  const run = await startRun(a.rest, { workflow: 'brief' });
  const waiting = await a.rest.waitFor(run.id, 'waiting');
  const deadline = waiting.waiting[0].deadline;
  const b = await serve(file, store);
  a.server.proc.kill('SIGKILL');
  await a.server.exited;
  const sent = await b.rest.publish({ type: 'finance.approved', data: { contextId: run.contextId } });
  assert.equal(sent.status, 201, sent.text);
  // The premise (5 s leave room for a second server to start under the
  // sanitizers): otherwise the run failing would be right.
  assert.ok(Date.now() < deadline, `published ${Date.now() - deadline} ms after the wait's deadline`);
  await pollUntil(() => Date.now() > deadline + 200 || { ok: false, message: 'the deadline is ahead' },
    { what: "the wait's deadline to pass" });
  // Before: the overdue deadline fired before the wait had read the log,
  // and the run failed with the event in it (3 restarts in 6).
  const again = await serve(file, store);
  assert.equal(again.resumed, 1);
  const done = await again.rest.waitFor(run.id, ['completed', 'failed']);
  assert.equal(done.status, 'completed', JSON.stringify(done.error));
  for (const s of [b, again]) await s.server.stop();
});
