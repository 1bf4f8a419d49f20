// Crash cycles over every kind of acknowledged write at once: contexts
// created and updated over REST (If-Match) and MCP (context_update),
// events published, workflow runs started over REST and as MCP tasks,
// questions answered and events waited for, a live event stream read
// throughout. switchboard is killed with SIGKILL at random moments (some
// while it is still bringing runs back) and started again on the same
// store, CYCLES times. Then: every acknowledged context version is there
// with what was written, versions have no gap; every acknowledged event
// is in the log as published, every event a stream was shown is in the
// log as shown, and the log has no gap; every run and task is known and
// completes; each booking was executed once per idempotency key; the
// store passes integrity_check after each kill; the agents die with
// their parent; each start is clean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { postModern, startHttpServer } from './lib/harness.mjs';
import { pollUntil } from '../agents/agents_lib.mjs';
import { flowAgent, readEvents, runsClient, writeFlowConfig } from './lib/flows.mjs';

const CYCLES = 6;
const TOKEN = 'crash-cycles-token-0123456789';

function sqliteAvailable() {
  try {
    execFileSync('sqlite3', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('SIGKILL cycles under mixed load: nothing acknowledged is lost, runs complete, bookings once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-cycles-'));
  const ledger = join(dir, 'ledger.tsv');
  const store = join(dir, 'sb.db');
  // The agent's id names this test's processes apart from any other's.
  const AGENT = `desk${process.pid}`;
  const { file } = writeFlowConfig({
    agents: [flowAgent(AGENT, ['desk'], { env: { LEDGER: ledger }, limits: { maxConcurrent: 64 } })],
    tenants: [{ id: 't1', token: TOKEN }],
    workflowsYaml: `
  - name: crashy
    steps:
      - id: look
        call: { agent: ${AGENT}, tool: whoami }
      - id: book-drive
        call: { agent: ${AGENT}, tool: book, arguments: { slot: $run.id } }
      - id: think
        call: { agent: ${AGENT}, tool: slow, arguments: { ms: 100 } }
      - id: announce
        emit: { type: crash.announced, data: { run: $run.id } }
      - id: book-finance
        call: { agent: ${AGENT}, tool: book, arguments: { slot: finance } }
  - name: asky
    steps:
      - id: confirm
        ask: { message: slot?, schema: { type: object, properties: { slot: { type: string } }, required: [slot] } }
        save: workflow.variables.answer
      - id: book
        call: { agent: ${AGENT}, tool: book, arguments: { slot: $workflow.variables.answer.slot } }
  - name: waity
    steps:
      - id: hold
        wait: { event: crash.go, where: { run: $run.id } }
      - id: book
        call: { agent: ${AGENT}, tool: book, arguments: { slot: waited } }
`,
  });

  const ctxs = new Map(); // context id -> Map(version -> tag written)
  const published = new Map(); // seq -> "writer/n"
  const streamed = new Map(); // seq -> {type, data} a live stream showed
  const runs = new Map(); // run id -> workflow
  const tasks = new Set(); // task ids (runs) acknowledged over MCP
  const problems = [];
  const problem = (m) => problems.push(m);

  let server;
  let base;
  let rest;
  const start = async () => {
    server = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
    await server.stderrMatch(/resuming \d+ runs in progress|no runs in progress to resume/);
    base = server.url.replace(/\/mcp$/, '');
    rest = runsClient(base, TOKEN);
  };
  const agentPids = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      return cmd.includes('flow_agent.mjs') && cmd.includes(AGENT) && !/\) Z /.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
    } catch { return false; } // gone meanwhile
  });

  // ---- the load: each loop ends at the kill (a refused connection) -----
  const restWriter = async (stop, w) => {
    let id; let v = 0;
    while (!stop.now) {
      try {
        if (!id) {
          const tag = `r${w}-${ctxs.size}`;
          const r = await rest.create({ data: { workflow: { variables: { tag } } } });
          if (r.status !== 201) return stop.now || problem(`create: ${r.status} ${r.text}`);
          id = r.json.id; v = 1;
          ctxs.set(id, new Map([[1, tag]]));
          continue;
        }
        const tag = `r${w}-${v + 1}`;
        const r = await rest.merge(id, v, { data: { workflow: { variables: { tag } } } });
        if (r.status !== 200) return stop.now || problem(`PATCH: ${r.status} ${r.text}`);
        if (r.json.version !== v + 1) problem(`PATCH of version ${v} acknowledged as ${r.json.version}`);
        v = r.json.version;
        ctxs.get(id).set(v, tag);
        if (v >= 20) id = undefined;
      } catch { return; }
    }
  };
  const mcpWriter = async (stop) => {
    let id; let v = 0; let n = 0;
    const call = async (name, args) => {
      const r = await postModern(server.url, TOKEN, 'tools/call', { name, arguments: args }, { tasks: false, id: ++n });
      if (r.error || r.result?.isError) throw Object.assign(new Error(JSON.stringify(r.error ?? r.result)), { answered: true });
      return r.result.structuredContent;
    };
    while (!stop.now) {
      try {
        if (!id) {
          const tag = `m-${ctxs.size}`;
          const c = await call('context_create', { data: { workflow: { variables: { tag } } } });
          id = c.id; v = c.version;
          ctxs.set(id, new Map([[1, tag]]));
          continue;
        }
        const tag = `m-${v + 1}`;
        const c = await call('context_update', { id, expectedVersion: v, mergePatch: { data: { workflow: { variables: { tag } } } } });
        if (c.version !== v + 1) problem(`context_update of version ${v} acknowledged as ${c.version}`);
        v = c.version;
        ctxs.get(id).set(v, tag);
        if (v >= 20) id = undefined;
      } catch (e) { return stop.now || !e.answered || problem(`MCP: ${e.message}`); }
    }
  };
  const publisher = async (stop, w) => {
    for (let n = 0; !stop.now; n++) {
      try {
        const r = await rest.publish({ type: 'crash.published', data: { w, n } });
        if (r.status !== 201) return stop.now || problem(`publish: ${r.status} ${r.text}`);
        published.set(r.json.seq, `${w}/${n}`);
      } catch { return; }
    }
  };
  const runner = async (stop) => {
    const kinds = ['crashy', 'asky', 'waity'];
    for (let i = 0; !stop.now; i++) {
      try {
        const r = await rest.start({ workflow: kinds[i % kinds.length] });
        if (r.status !== 201) return stop.now || problem(`POST /v1/runs: ${r.status} ${r.text}`);
        runs.set(r.json.id, kinds[i % kinds.length]);
      } catch { return; }
    }
  };
  const taskStarter = async (stop) => {
    for (let n = 1; !stop.now; n++) {
      try {
        const r = await postModern(server.url, TOKEN, 'tools/call', { name: 'workflow_run', arguments: { workflow: 'crashy' } }, { id: n });
        if (r.result?.resultType !== 'task') return stop.now || problem(`workflow_run as a task: ${JSON.stringify(r).slice(0, 300)}`);
        tasks.add(r.result.taskId);
        runs.set(r.result.taskId, 'crashy');
      } catch { return; }
    }
  };
  // Answers the questions and publishes the events the waiting runs want.
  const mover = async (stop) => {
    while (!stop.now) {
      try {
        const r = await rest.list('?status=waiting&limit=100');
        if (r.status !== 200) return;
        for (const run of r.json.runs) {
          if (stop.now) return;
          if (run.workflow === 'asky') await rest.action(run.id, 'answer', { answer: { slot: `s-${run.id}` } });
          else if (run.workflow === 'waity') await rest.publish({ type: 'crash.go', data: { run: run.id } });
        }
      } catch { return; }
      // A poll interval, not synchronisation: the next round lists again.
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  // What a live stream shows must be durable: it is told after the commit.
  const streamReader = async (stop) => {
    const ac = new AbortController();
    stop.aborts.push(ac);
    try {
      const since = streamed.size ? Math.max(...streamed.keys()) : 0;
      const res = await fetch(`${base}/v1/events?since=${since}`, { headers: { Authorization: `Bearer ${TOKEN}` }, signal: ac.signal });
      const dec = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const m = /^data: ?(.*)$/m.exec(buf.slice(0, at));
          buf = buf.slice(at + 2);
          if (m) {
            const d = JSON.parse(m[1]);
            streamed.set(d.seq, { type: d.type, data: JSON.stringify(d.data) });
          }
        }
      }
    } catch { /* the kill, or our abort */ }
  };

  const checkContexts = async (which) => {
    for (const [id, versions] of which) {
      const head = await rest.context(id);
      if (head.status !== 200) { problem(`context ${id}: ${head.status} after the restart`); continue; }
      const last = Math.max(...versions.keys());
      if (head.json.version < last) problem(`context ${id}: head ${head.json.version} < acknowledged ${last}`);
      const hist = await rest.history(id, '?limit=1000');
      const got = hist.json.versions.map((x) => x.version);
      const want = Array.from({ length: head.json.version }, (_, i) => head.json.version - i);
      if (JSON.stringify(got) !== JSON.stringify(want)) problem(`context ${id}: versions ${got} are not ${head.json.version}..1`);
      for (const [v, tag] of versions) {
        const r = await rest.get(id, `?version=${v}`);
        if (r.json?.data?.workflow?.variables?.tag !== tag) problem(`context ${id} version ${v}: ${r.text.slice(0, 200)} is not "${tag}"`);
      }
    }
  };

  await start();
  try {
    for (let c = 0; c < CYCLES; c++) {
      const stop = { now: false, aborts: [] };
      const load = [
        restWriter(stop, 0), restWriter(stop, 1), mcpWriter(stop), publisher(stop, 0),
        runner(stop), taskStarter(stop), mover(stop), streamReader(stop),
      ];
      // A random moment, some while runs are still being brought back:
      // fault injection, not a wait for anything.
      await new Promise((r) => setTimeout(r, c % 3 === 2 ? Math.floor(Math.random() * 30) : 150 + Math.floor(Math.random() * 900)));
      server.proc.kill('SIGKILL');
      stop.now = true;
      assert.equal((await server.exited).signal, 'SIGKILL');
      for (const ac of stop.aborts) ac.abort();
      await Promise.all(load);
      assert.doesNotMatch(server.stderr, /\berror\b|cannot be resumed|corrupt|malformed/i, 'a clean run up to the kill');
      // The agents go with their parent (they read EOF on stdin).
      await pollUntil(() => agentPids().length === 0 || { ok: false, message: `still running: ${agentPids()}` },
        { what: 'the agents to exit after their parent was killed' });
      if (sqliteAvailable()) {
        assert.equal(execFileSync('sqlite3', [store, 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim(), 'ok');
      }
      await start();
      await checkContexts([...ctxs].slice(-4)); // the newest, at each restart
    }
    assert.ok(ctxs.size > CYCLES && published.size > 0 && runs.size > CYCLES && tasks.size > 0 && streamed.size > 0,
      `the load got through: ${ctxs.size} contexts, ${published.size} events, ${runs.size} runs, ${tasks.size} tasks, ${streamed.size} streamed`);

    // Everything in flight ends: the questions answered, the events sent.
    const stop = { now: false, aborts: [] };
    const moving = mover(stop);
    await pollUntil(async () => {
      const running = (await rest.list('?status=running&limit=100')).json.runs;
      const waiting = (await rest.list('?status=waiting&limit=100')).json.runs;
      return running.length + waiting.length === 0
        || { ok: false, message: `${running.length} running, ${waiting.length} waiting, e.g. ${JSON.stringify(running[0] ?? waiting[0]).slice(0, 300)}` };
    }, { what: 'every run to end', timeoutMs: 60000 });
    stop.now = true;
    await moving;

    await checkContexts(ctxs);
    for (const [id, workflow] of runs) {
      const r = await rest.run(id);
      if (r.json?.status !== 'completed') problem(`run ${id} (${workflow}): ${r.status} ${r.text.slice(0, 300)}`);
    }
    for (const id of tasks) {
      const t = await postModern(server.url, TOKEN, 'tasks/get', { taskId: id });
      if (t.result?.status !== 'completed') problem(`task ${id}: ${JSON.stringify(t).slice(0, 300)}`);
    }
    // The log: 1..N without a gap; what was acknowledged or shown, as it was.
    const last = Math.max(0, ...published.keys(), ...streamed.keys());
    const log = await readEvents(base, '/v1/events?since=0', (e) => e.length > 0 && Number(e.at(-1).id) >= last,
      { token: TOKEN, timeoutMs: 20000 });
    const seqs = log.map((e) => Number(e.id));
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'the event log has no gap');
    const bySeq = new Map(log.map((e) => [Number(e.id), e.data]));
    for (const [seq, tag] of published) {
      const e = bySeq.get(seq);
      if (e?.type !== 'crash.published' || `${e.data.w}/${e.data.n}` !== tag) problem(`published event ${seq} (${tag}): ${JSON.stringify(e)}`);
    }
    for (const [seq, x] of streamed) {
      const e = bySeq.get(seq);
      if (e?.type !== x.type || JSON.stringify(e.data) !== x.data) problem(`streamed event ${seq} ${x.type}: now ${JSON.stringify(e)}`);
    }
    // Each booking once per key, and every run's bookings made.
    const keys = (existsSync(ledger) ? readFileSync(ledger, 'utf8').trim().split('\n') : []).map((l) => l.split('\t')[0]);
    const twice = keys.filter((k, i) => keys.indexOf(k) !== i);
    if (twice.length) problem(`bookings executed twice: ${twice.slice(0, 5)}`);
    for (const [id, workflow] of runs) {
      const want = workflow === 'crashy' ? [`${id}/book-drive/1`, `${id}/book-finance/1`] : [`${id}/book/1`];
      for (const k of want) if (!keys.includes(k)) problem(`run ${id}: booking ${k} never executed`);
    }
    assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems`);
  } finally {
    await server.stop().catch(() => {});
  }
});
