// Crash-resume with real SIGKILLs: 50 runs of a five-step workflow over a
// real MCP agent, switchboard killed at random points again and again and
// started on the same store. Every run completes; no booking step is
// executed twice by the agent that honours the idempotency key (it keeps
// a ledger of what it executed, across its own restarts); no context
// version is lost (each run's context has every version from 1 to its
// head, and the run names that head); the event log has no gap.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startHttpServer } from './lib/harness.mjs';
import { pollUntil } from '../agents/agents_lib.mjs';
import { callsReceived, flowAgent, readEvents, runsClient, writeFlowConfig } from './lib/flows.mjs';

const RUNS = 50;
const KILLS = 8;

const WORKFLOW = `
  - name: crashy
    steps:
      - id: look
        call: { agent: desk, tool: whoami }
      - id: book-drive
        call: { agent: desk, tool: book, arguments: { slot: $run.id } }
      - id: think
        call: { agent: desk, tool: slow, arguments: { ms: 300 } }
      - id: book-finance
        call: { agent: desk, tool: book, arguments: { slot: finance } }
      - id: wrap
        call: { agent: desk, tool: whoami }
`;

let server;
after(async () => { await server?.stop().catch(() => {}); });

test('runs survive SIGKILLs: all complete, no booking twice, no version lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-crash-'));
  const ledger = join(dir, 'ledger.tsv');
  const store = join(dir, 'sb.db');
  const { file } = writeFlowConfig({
    agents: [flowAgent('desk', ['desk'], { env: { LEDGER: ledger }, limits: { maxConcurrent: 64 } })],
    workflowsYaml: WORKFLOW,
  });
  // Started, and done reading the runs to resume (the store answers after
  // "listening"): resolves with how many it resumed.
  let resumedNow = 0;
  const start = async () => {
    server = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
    const m = await server.stderrMatch(/resuming (\d+) runs in progress|no runs in progress to resume/);
    resumedNow = Number(m[1] ?? 0);
    return runsClient(server.url.replace(/\/mcp$/, ''));
  };
  let rest = await start();
  const ids = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await rest.start({ workflow: 'crashy' });
    assert.equal(r.status, 201, r.text);
    ids.push(r.json.id); // acknowledged: it must complete
  }
  let resumed = 0;
  for (let k = 0; k < KILLS; k++) {
    // A random point in the middle of the work: fault injection, not a
    // wait for anything.
    await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 250)));
    if (resumedNow > 0) resumed++;
    server.proc.kill('SIGKILL');
    await server.exited;
    rest = await start();
  }
  assert.ok(resumed >= KILLS / 2, `runs were in progress at most kills (resumed after ${resumed} of ${KILLS})`);
  const runs = await pollUntil(async () => {
    const got = await Promise.all(ids.map((id) => rest.run(id)));
    const notDone = got.filter((r) => r.json?.status !== 'completed');
    return notDone.length === 0 ? got.map((r) => r.json)
      : { ok: false, message: `${notDone.length} not completed, e.g. ${notDone[0].text.slice(0, 300)}` };
  }, { what: 'every run to complete after the kills', timeoutMs: 60000 });

  // The agent executed each booking once: one ledger line per key.
  const lines = existsSync(ledger) ? readFileSync(ledger, 'utf8').trim().split('\n') : [];
  const keys = lines.map((l) => l.split('\t')[0]);
  const dupes = keys.filter((k, i) => keys.indexOf(k) !== i);
  assert.deepEqual(dupes, [], 'no booking executed twice');
  assert.equal(keys.length, RUNS * 2, 'every booking executed');
  for (const r of runs) {
    assert.ok(keys.includes(`${r.id}/book-drive/1`) && keys.includes(`${r.id}/book-finance/1`));
    assert.deepEqual(r.history.map((h) => h.step), ['look', 'book-drive', 'think', 'book-finance', 'wrap']);
    // No version lost: versions 1..head all readable, head = the run's.
    const ctx = (await rest.context(r.contextId)).json;
    assert.equal(ctx.version, r.contextVersion);
    assert.equal(ctx.version, 6);
    const hist = (await rest.call('GET', `/v1/contexts/${r.contextId}/history?limit=100`)).json;
    const versions = (hist.versions ?? hist.items ?? hist).map((v) => v.version).sort((a, b) => a - b);
    assert.deepEqual(versions, [1, 2, 3, 4, 5, 6]);
    assert.equal(ctx.data.workflow.outputs['book-drive'].booked, r.id);
  }
  // The event log: every seq once, from 1.
  const events = await readEvents(server.url.replace(/\/mcp$/, ''), '/v1/events?since=0',
    (evs) => evs.filter((e) => e.event === 'run.completed').length >= RUNS, { timeoutMs: 20000 });
  const seqs = events.map((e) => Number(e.id));
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
});

// A step under way when switchboard dies is sent again after the restart
// with the same idempotency key, and so with the same arguments: from the
// context version the run handed out, not from whatever the shared
// context became meanwhile. (An agent that keys its memory by the key may
// refuse a repeat with other arguments: the dealership agents do.)
test('a step sent again after a SIGKILL carries the arguments it was first sent with', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-crash-args-'));
  const calls = join(dir, 'calls.tsv');
  const store = join(dir, 'sb.db');
  const { file } = writeFlowConfig({
    agents: [flowAgent('desk', ['desk'], { env: { CALLS: calls } })],
    workflowsYaml: `
  - name: held
    steps:
      - id: hold
        call: { agent: desk, tool: slow, arguments: { ms: 600000, note: $workflow.variables.note } }
`,
  });
  const sent = (key) => callsReceived(calls).filter((c) => c.key === key).map((c) => c.args);
  let held = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
  try {
    let rest = runsClient(held.url.replace(/\/mcp$/, ''));
    const ctx = await rest.create({ data: { workflow: { variables: { note: 'before' } } } });
    assert.equal(ctx.status, 201, ctx.text);
    const run = await rest.start({ workflow: 'held', contextId: ctx.json.id });
    assert.equal(run.status, 201, run.text);
    const key = `${run.json.id}/hold/1`;
    await pollUntil(() => sent(key).length === 1 || { ok: false, message: 'not yet sent' },
      { what: 'the step\'s call to reach the agent' });
    // The context moves on while the call is in flight (a client's write,
    // acknowledged), then switchboard dies.
    const head = await rest.context(ctx.json.id);
    const moved = await rest.merge(ctx.json.id, head.json.version, { data: { workflow: { variables: { note: 'after' } } } });
    assert.equal(moved.status, 200, moved.text);
    held.proc.kill('SIGKILL');
    await held.exited;

    held = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
    rest = runsClient(held.url.replace(/\/mcp$/, ''));
    const both = await pollUntil(() => (sent(key).length >= 2 ? sent(key) : { ok: false, message: `sent ${sent(key).length}` }),
      { what: 'the step to be sent again after the restart' });
    assert.deepEqual(both[1], both[0], 'sent again with the arguments of the first send');
    assert.equal(both[1].note, 'before');
    // The client's acknowledged write is still the head.
    const after = await rest.context(ctx.json.id);
    assert.equal(after.json.version, moved.json.version);
    assert.equal(after.json.data.workflow.variables.note, 'after');
    const cancelled = await rest.action(run.json.id, 'cancel', { reason: 'done' });
    assert.equal(cancelled.status, 200, cancelled.text);
  } finally {
    await held.stop().catch(() => {});
  }
});

// A resume sends the calls it starts again under the keys they had when
// the run stopped: a call cut off by a cancel (or failed by its timeout)
// may have acted, and a branch done before its parallel step stopped has.
// Before, each went out under the next visit's key, and an agent that
// honours keys acted twice.
test('a resume sends the steps it starts again under the keys they stopped with', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-resume-keys-'));
  const calls = join(dir, 'calls.tsv');
  const { file } = writeFlowConfig({
    agents: [flowAgent('desk', ['desk'], { env: { CALLS: calls } })],
    workflowsYaml: `
  - name: held
    steps:
      - id: hold
        call: { agent: desk, tool: slow, arguments: { ms: 600000 } }
  - name: fan
    steps:
      - id: both
        parallel:
          - id: quick
            call: { agent: desk, tool: slow, arguments: { ms: 1 } }
          - id: long
            call: { agent: desk, tool: slow, arguments: { ms: 600000 } }
  - name: impatient
    steps:
      - id: late
        call: { agent: desk, tool: slow, arguments: { ms: 600000 } }
        timeout: 200ms
`,
  });
  const keys = () => callsReceived(calls).map((c) => c.key);
  const count = (key) => keys().filter((k) => k === key).length;
  const server = await startHttpServer({ extraArgs: ['--config', file] });
  try {
    const rest = runsClient(server.url.replace(/\/mcp$/, ''));
    const sentTwice = (key) => pollUntil(() => count(key) >= 2 || { ok: false, message: keys().join() },
      { what: `${key} sent again` });

    // Cancelled while the call is in flight, then resumed.
    const held = (await rest.start({ workflow: 'held' })).json;
    await pollUntil(() => count(`${held.id}/hold/1`) === 1 || { ok: false, message: 'not sent' }, { what: 'hold sent' });
    assert.equal((await rest.action(held.id, 'cancel', { reason: 'paused' })).status, 200);
    assert.equal((await rest.action(held.id, 'resume')).status, 200);
    await sentTwice(`${held.id}/hold/1`);

    // A parallel step cancelled with one branch done: both go again under
    // their keys (the done one's agent answers from its memory).
    const fan = (await rest.start({ workflow: 'fan' })).json;
    await pollUntil(async () => ((await rest.run(fan.id)).json.history.some((h) => h.step === 'quick') || { ok: false, message: 'quick not done' }),
      { what: 'the quick branch done' });
    await pollUntil(() => count(`${fan.id}/long/1`) === 1 || { ok: false, message: 'not sent' }, { what: 'long sent' });
    assert.equal((await rest.action(fan.id, 'cancel')).status, 200);
    assert.equal((await rest.action(fan.id, 'resume')).status, 200);
    await sentTwice(`${fan.id}/long/1`);
    await sentTwice(`${fan.id}/quick/1`);

    // Failed by its timeout (the agent may still act), then resumed.
    const late = (await rest.start({ workflow: 'impatient' })).json;
    await rest.waitFor(late.id, 'failed');
    assert.equal((await rest.action(late.id, 'resume')).status, 200);
    await sentTwice(`${late.id}/late/1`);

    assert.deepEqual(keys().filter((k) => /\/2$/.test(k)), [], 'no call went out under a new key');
    for (const id of [held.id, fan.id, late.id]) await rest.action(id, 'cancel');
  } finally {
    await server.stop();
  }
});

// A step's tries are counted across restarts: the try a retry is due to
// make is stored with the step (and said in a step.retrying event), so a
// run brought back after a SIGKILL does not grant the step its tries
// afresh. Two tries in all: the first fails before the kill, the second
// (after the restart, at once) fails too, and the step has had its two.
// Counted afresh, the step would make a third try, after a 30 s backoff.
test('a step\'s tries go on counting after a SIGKILL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-crash-retry-'));
  const store = join(dir, 'sb.db');
  const { file } = writeFlowConfig({
    agents: [flowAgent('desk', ['desk'])],
    workflowsYaml: `
  - name: stubborn
    steps:
      - id: try
        call: { agent: desk, tool: fail_times, arguments: { n: 100 } }
        retry: { attempts: 2, backoff: 30s }
`,
  });
  let srv = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
  try {
    let base = srv.url.replace(/\/mcp$/, '');
    let rest = runsClient(base);
    const run = await rest.start({ workflow: 'stubborn' });
    assert.equal(run.status, 201, run.text);
    // The retry is durable once its event is in the log.
    const [retrying] = (await readEvents(base, `/v1/events?since=0&types=step.retrying&run=${run.json.id}`,
      (evs) => evs.length >= 1)).map((e) => e.data);
    assert.deepEqual({ ...retrying.data, retryInMs: undefined }, {
      step: 'try', visit: 1, attempt: 2, attempts: 2, message: 'agent desk: the tool failed: desk failure 1', agent: 'desk', retryInMs: undefined,
    });
    assert.equal(retrying.data.retryInMs, 30000);
    srv.proc.kill('SIGKILL');
    await srv.exited;

    srv = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
    base = srv.url.replace(/\/mcp$/, '');
    rest = runsClient(base);
    const failed = await rest.waitFor(run.json.id, 'failed');
    // the agent restarted with switchboard: its first failure is the step's second try
    assert.match(failed.error.message, /desk failure 1$/);
    assert.equal(failed.history.at(-1).attempts, 2, JSON.stringify(failed.history));
  } finally {
    await srv.stop().catch(() => {});
  }
});

const ASKING = `
  - name: asking
    steps:
      - id: confirm
        ask: { message: Which slot? }
      - id: done
        end: completed
`;

/** Start n runs of "asking" and wait until each waits for its answer
 * (a start the store is too busy for, 503, is started again). */
async function startWaiting(rest, n) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const r = await pollUntil(async () => {
      const s = await rest.start({ workflow: 'asking' });
      return s.status === 503 ? { ok: false, message: s.text } : s;
    }, { what: 'a run to start' });
    assert.equal(r.status, 201, r.text);
    ids.push(r.json.id);
  }
  for (const id of ids) await rest.waitFor(id, 'waiting');
  return ids;
}

/**
 * RUNS runs waiting for an answer under store.max_pending = maxPending,
 * then a SIGKILL and a restart on the same store: {srv, rest, ids}. The
 * caller stops srv.
 */
async function waitingRunsAfterCrash(maxPending, runs) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-crash-many-'));
  const store = join(dir, 'sb.db');
  const { file } = writeFlowConfig({
    agents: [flowAgent('desk', ['desk'])],
    workflowsYaml: ASKING,
  });
  appendFileSync(file, `store:\n  max_pending: ${maxPending}\n`);
  let srv = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
  let ids;
  try {
    ids = await startWaiting(runsClient(srv.url.replace(/\/mcp$/, '')), runs);
  } finally {
    srv.proc.kill('SIGKILL');
    await srv.exited;
  }
  srv = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
  return { srv, rest: runsClient(srv.url.replace(/\/mcp$/, '')), ids };
}

// More runs in progress than the store takes operations at once
// (store.max_pending), and than the engine brings into memory in one turn
// of its loop (64): every one is brought back after the restart, not
// only the first max_pending or the first slice. (A cancellation is the
// probe: a run not brought back is "waiting: only a running or waiting
// run can be cancelled"; one the store is too busy for now is a 503, to
// retry.)
test('runs in progress beyond store.max_pending are all brought back after a SIGKILL', async () => {
  const RUNS = 150;
  const { srv, rest, ids } = await waitingRunsAfterCrash(4, RUNS);
  try {
    await srv.stderrMatch(new RegExp(`resuming ${RUNS} runs in progress`));
    for (const id of ids) {
      const r = await pollUntil(async () => {
        const c = await rest.action(id, 'cancel', { reason: 'probe' });
        return c.status === 503 ? { ok: false, message: c.text } : c;
      }, { what: `run ${id} to take its cancellation` });
      assert.equal(r.status, 200, `run ${id}: ${r.text}`);
      assert.equal(r.json.status, 'cancelled');
    }
    assert.doesNotMatch(srv.stderr, /cannot be resumed/);
  } finally {
    await srv.stop().catch(() => {});
  }
});

// A run's transition the store cannot take yet (its queue full: here the
// reads of the runs brought back at start, with store.max_pending 1)
// waits its turn: an answer refused "busy" must stay answerable, and one
// taken must carry its run on; neither is dropped with the run left
// waiting for ever.
test('answers that find the store busy after a restart are kept, and every run completes', async () => {
  const { srv, rest, ids } = await waitingRunsAfterCrash(1, 24);
  try {
    const answers = await Promise.all(ids.map((id) => pollUntil(async () => {
      const r = await rest.action(id, 'answer', { answer: { slot: 'friday' } });
      return r.status === 503 ? { ok: false, message: r.text } : r;
    }, { what: `run ${id} to take its answer`, everyMs: 5 })));
    answers.forEach((r, i) => assert.equal(r.status, 200, `run ${ids[i]}: ${r.text}`));
    for (const id of ids) await rest.waitFor(id, 'completed');
  } finally {
    await srv.stop().catch(() => {});
  }
});

// A parallel step's timeout bounds the whole step: once it passes, the
// step fails (its branches still under way stop) and the run goes to its
// on_failure. The deadline is stored with the run's branches, so a run
// brought back after a SIGKILL that came past it fails at once rather
// than being granted the time afresh, or waiting for ever.
test('a parallel step\'s timeout ends it, and still does after a SIGKILL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-crash-par-'));
  const store = join(dir, 'sb.db');
  const { file } = writeFlowConfig({
    agents: [flowAgent('desk', ['desk'])],
    workflowsYaml: ['1s', '3s'].map((t) => `
  - name: racing-${t}
    steps:
      - id: both
        parallel:
          - id: person
            ask: { message: Which slot? }
          - id: agent
            call: { agent: desk, tool: slow, arguments: { ms: 60000 } }
        timeout: ${t}
        on_failure: late
      - id: done
        end: completed
      - id: late
        end: failed
        message: not in time
`).join(''),
  });
  let srv = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
  try {
    let rest = runsClient(srv.url.replace(/\/mcp$/, ''));
    const first = await rest.start({ workflow: 'racing-1s' });
    assert.equal(first.status, 201, first.text);
    const failed = await rest.waitFor(first.json.id, 'failed', 'the parallel step to time out');
    assert.equal(failed.error.message, 'not in time');
    const par = failed.history.find((h) => h.step === 'both');
    assert.equal(par?.status, 'failed', JSON.stringify(failed.history));
    assert.match(JSON.stringify(failed.history), /parallel step both: not done within 1000 ms/);

    // Killed before the deadline (the run is stored once acknowledged),
    // started again after it.
    const second = await rest.start({ workflow: 'racing-3s' });
    assert.equal(second.status, 201, second.text);
    srv.proc.kill('SIGKILL');
    await srv.exited;
    // Past the stored deadline: a fault injected by the clock, not a wait
    // for anything the server does.
    await new Promise((r) => setTimeout(r, 3200));
    srv = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
    rest = runsClient(srv.url.replace(/\/mcp$/, ''));
    const t0 = Date.now();
    const after = await rest.waitFor(second.json.id, 'failed', 'the run brought back past its deadline to fail');
    assert.ok(Date.now() - t0 < 2000, `failed at once, not after a fresh timeout (${Date.now() - t0} ms)`);
    assert.equal(after.error.message, 'not in time');
  } finally {
    await srv.stop().catch(() => {});
  }
});

// A call refused for room (its agent at maxConcurrent) waits its turn
// within the step's timeout, counted from its first refusal in this
// process: a run brought back after a SIGKILL sends its call as a new try,
// with a fresh timeout, and one that finds the agent busy waits for room
// as long. Before, the wait was counted from the step's start (stored with
// the run, before the downtime): after a restart that came later than the
// timeout, every step refused for room failed at once ("waited 5022 ms for
// room", code at_capacity) and took its run down with it.
test('a step brought back after a SIGKILL waits for room in its agent, not failing for the downtime', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-crash-room-'));
  const calls = join(dir, 'calls.tsv');
  const store = join(dir, 'sb.db');
  const { file } = writeFlowConfig({
    agents: [flowAgent('desk', ['desk'], { env: { CALLS: calls }, limits: { maxConcurrent: 1 } })],
    workflowsYaml: `
  - name: roomy
    steps:
      - id: nap
        call: { agent: desk, tool: slow, arguments: { ms: 500 } }
        timeout: 3s
`,
  });
  let srv = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
  try {
    let rest = runsClient(srv.url.replace(/\/mcp$/, ''));
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await rest.start({ workflow: 'roomy' });
      assert.equal(r.status, 201, r.text);
      ids.push(r.json.id);
    }
    // One call reaches the agent; the others wait for room.
    const sent = () => callsReceived(calls).length;
    await pollUntil(() => sent() >= 1 || { ok: false, message: 'no call yet' }, { what: 'a step\'s call to reach the agent' });
    srv.proc.kill('SIGKILL');
    await srv.exited;
    // Down for longer than the steps' timeout: a fault injected by the
    // clock, not a wait for anything the server does.
    await new Promise((r) => setTimeout(r, 3200));
    srv = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
    rest = runsClient(srv.url.replace(/\/mcp$/, ''));
    for (const id of ids) {
      const run = await rest.waitFor(id, ['completed', 'failed'], `run ${id} to end`);
      assert.equal(run.status, 'completed', JSON.stringify(run.error));
    }
  } finally {
    await srv.stop().catch(() => {});
  }
});
