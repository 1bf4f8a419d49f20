// shutdown.test.mjs: the graceful stop (server.shutdown_grace_ms). On
// SIGTERM the listening socket closes at once, a new request on an open
// connection is answered 503 with Connection: close, and the requests
// under way finish before the process exits 0; past the grace, or on a
// second signal, what is left is cut off; workflow runs send no new step
// in the drain. When stdin ends (serve --stdio), the requests already read
// are answered before the exit. Real calls to real agents (the flaky and flow agents,
// official 1.x SDK, stdio) through a real switchboard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DEADLINE_MS, startHttpServer, switchboardBin, tempStorePath, withDeadline } from './lib/harness.mjs';
import { connect, flakyAgent, pollUntil } from '../agents/agents_lib.mjs';
import { callsReceived, flowAgent, runsClient, writeFlowConfig } from './lib/flows.mjs';

/** A server with the flaky agent and this grace; {server, base}. */
async function start(graceMs) {
  const cfg = `${process.env.TMPDIR || '/tmp'}/sb-shutdown-${process.pid}-${graceMs}.yaml`;
  writeFileSync(cfg, [
    'server:', `  shutdown_grace_ms: ${graceMs}`,
    'agents:', `  - ${JSON.stringify(flakyAgent('desk', 'D'))}`,
  ].join('\n') + '\n');
  const server = await startHttpServer({ extraArgs: ['--config', cfg] });
  const base = server.url.replace(/\/mcp$/, '');
  await pollUntil(async () => {
    const r = await (await fetch(`${base}/readyz`)).json();
    return r.agents.connected === 1 || { ok: false, message: JSON.stringify(r) };
  }, { what: 'the agent to connect' });
  return { server, base };
}

/** POST /v1/agents/call on a connection of its own, kept alive: {status, json, agent}. */
function call(base, tool, args, agent) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ agent: 'desk', tool, arguments: args });
    const req = request(`${base}/v1/agents/call`, {
      method: 'POST', agent, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => { text += d; }).on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Wait until the agent has the call (switchboard counts it in flight). */
async function inFlight(base, n) {
  await pollUntil(async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const m = /^switchboard_agent_inflight\{agent="desk"[^}]*\} (\d+)$/m.exec(text);
    return Number(m?.[1]) === n || { ok: false, message: m?.[0] ?? text.slice(0, 200) };
  }, { what: `${n} call(s) in flight at the agent` });
}

/** Poll until a new connection to base is refused: the listener is closed. */
async function listenerClosed(base) {
  await pollUntil(async () => {
    const err = await fetch(`${base}/healthz`).then(() => null, (e) => e);
    return err?.cause?.code === 'ECONNREFUSED' || { ok: false, message: String(err ?? 'connected') };
  }, { what: 'new connections to be refused' });
}

test('SIGTERM: the call under way finishes, nothing new starts, then exit 0', async () => {
  const { server, base } = await start(20000);
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    // an open keep-alive connection, used once before the signal
    assert.equal((await call(base, 'whoami', {}, keepAlive)).status, 200);
    const slow = call(base, 'slow', { ms: 1500 });
    await inFlight(base, 1);
    server.proc.kill('SIGTERM');
    await listenerClosed(base);
    // a new request on the connection that was already open
    const late = await call(base, 'whoami', {}, keepAlive);
    assert.equal(late.status, 503, late.text);
    assert.equal(late.headers.connection, 'close');
    assert.equal(late.json.error.code, 'shutting_down', late.text);
    assert.match(late.json.error.message, /shutting down/);
    const done = await slow;
    assert.equal(done.status, 200, done.text);
    assert.match(JSON.stringify(done.json.result), /D slept 1500 ms/);
    const exit = await server.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(server.stderr, /received SIGTERM; stopping once 1 request\(s\) under way are answered/);
    assert.match(server.stderr, /every request answered; stopping/);
  } finally {
    keepAlive.destroy();
    server.proc.kill('SIGKILL');
  }
});

test('SIGTERM: past shutdown_grace_ms, or on a second signal, the rest is cut off', async () => {
  for (const how of ['grace', 'second signal']) {
    const { server, base } = await start(how === 'grace' ? 300 : 600000);
    try {
      const hung = call(base, 'hang', {}).then((r) => r, (e) => e);
      await inFlight(base, 1);
      server.proc.kill('SIGTERM');
      await listenerClosed(base);
      if (how === 'second signal') server.proc.kill('SIGTERM');
      const exit = await server.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, how);
      const r = await hung;
      assert.ok(r instanceof Error || r.status >= 500, `${how}: the hung call is cut off, got ${r.status} ${r.text}`);
      if (how === 'grace')
        assert.match(server.stderr, /shutdown_grace_ms is over with 1 request\(s\) under way: they are cut off/);
    } finally {
      server.proc.kill('SIGKILL');
    }
  }
});

test('SIGTERM ends a subscriptions/listen stream with its completion result, with no grace configured', async () => {
  const { startHttpServer: start } = await import('./lib/harness.mjs');
  const server = await start();
  const res = await fetch(server.url, {
    method: 'POST',
    headers: {
      accept: 'application/json, text/event-stream', 'content-type': 'application/json',
      'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'subscriptions/listen',
    },
    body: JSON.stringify({
      jsonrpc: '2.0', id: 7, method: 'subscriptions/listen',
      params: {
        notifications: { resourceSubscriptions: ['events://log'] },
        _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    }),
  });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let text = '';
  const readUntil = async (pred) => {
    while (!pred(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
  };
  await readUntil((t) => t.includes('subscriptions/acknowledged'));
  server.proc.kill('SIGTERM');
  // Before: the stream was cut with the process, no response: a client
  // took it for a dropped connection (2026-07-28 subscriptions: a server
  // ending one itself SHOULD answer the listen request first).
  await readUntil(() => false);
  const last = JSON.parse(text.trim().split('\n').filter((l) => l.startsWith('data: ')).at(-1).slice(6));
  assert.equal(last.id, 7);
  assert.equal(last.result.resultType, 'complete');
  assert.equal(last.result._meta['io.modelcontextprotocol/subscriptionId'], 7);
  assert.equal((await server.exited).code, 0);
});

/** A config whose workflow `two` calls desk's `slow` twice (1.5 s, then
 * 1 ms), the agent recording each call in `calls`; this grace. */
function twoSteps(calls, graceMs) {
  return writeFlowConfig({
    server: { shutdown_grace_ms: graceMs },
    agents: [flowAgent('desk', ['desk'], { env: { CALLS: calls }, limits: { maxConcurrent: 8, timeoutMs: 600000 } })],
    workflowsYaml: `
  - name: two
    steps:
      - id: one
        call: { agent: desk, tool: slow, arguments: { ms: 1500, note: one } }
      - id: two
        call: { agent: desk, tool: slow, arguments: { ms: 1, note: two } }
`,
  });
}

// A drain sends no new workflow step. The call in flight at SIGTERM ends
// within the grace and its end is stored; the step after it is not sent
// (a call sent in the drain was cut off at the exit and sent again after
// the restart: an agent that does not honour the key acted twice), nor
// failed: it stays active in the stored run, and the next start sends it,
// once. Held: an unrelated request keeps the drain open past the step's
// end (the way QA found it); not held: the step's call alone is waited
// for. flow_agent's `slow` records every call as it arrives (CALLS).
for (const held of [false, true]) {
  test(`SIGTERM${held ? ', the drain held open by a request' : ''}: the step in flight ends and is stored, the next is sent only after the restart`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-drain-steps-'));
    const calls = join(dir, 'calls.tsv');
    const store = join(dir, 'sb.db');
    const { file } = twoSteps(calls, held ? 4000 : 20000);
    const sent = (id) => callsReceived(calls).filter((c) => c.key.startsWith(`${id}/`)).map((c) => c.key);
    let server = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
    let base = server.url.replace(/\/mcp$/, '');
    try {
      await server.stderrMatch(/no runs in progress to resume/);
      let hold;
      if (held) {
        // Under way at the agent before the run starts: cut off at the grace.
        hold = call(base, 'slow', { ms: 600000, note: 'hold' }).then((r) => r, (e) => e);
        await pollUntil(() => callsReceived(calls).some((c) => c.args.note === 'hold') || { ok: false, message: 'not yet' },
          { what: 'the held request at the agent' });
      }
      const run = await runsClient(base).start({ workflow: 'two' });
      assert.equal(run.status, 201, run.text);
      const id = run.json.id;
      await pollUntil(() => sent(id).length === 1 || { ok: false, message: sent(id).join() },
        { what: 'step one\'s call at the agent' });
      server.proc.kill('SIGTERM');
      assert.deepEqual(await server.exited, { code: 0, signal: null }, server.stderr);
      if (held) await hold;
      // Nothing was sent in the drain but the call already in flight.
      assert.deepEqual(sent(id), [`${id}/one/1`], 'step two was not sent during the drain');
      const stopped = server.stderr;

      server = await startHttpServer({ extraArgs: ['--config', file, '--store', store] });
      base = server.url.replace(/\/mcp$/, '');
      await server.stderrMatch(/resuming 1 runs in progress/);
      const done = await runsClient(base).waitFor(id, 'completed');
      assert.deepEqual(done.history.map((h) => h.step), ['one', 'two']);
      // Step one's end was stored in the drain: not sent again; step two
      // was left active, not failed: sent once, after the restart.
      assert.deepEqual(sent(id), [`${id}/one/1`, `${id}/two/1`], 'each step\'s call received exactly once');

      if (held) {
        assert.match(stopped, /stopping once 1 request\(s\) and 1 workflow step\(s\) under way are answered/);
        assert.match(stopped, /shutdown_grace_ms is over with 1 request\(s\) under way: they are cut off/);
      } else {
        assert.match(stopped, /stopping once 1 workflow step\(s\) under way are stored/);
        assert.match(stopped, /every request answered and every workflow step under way stored; stopping/);
      }
    } finally {
      await server.stop().catch(() => {});
    }
  });
}

// A workflow_run call that follows its run (wait) is answered when the
// stop begins, with the run as it stands: before, it waited for an end
// that comes only after the restart, held the stop to the end of the grace
// (here 10 minutes) and was cut off unanswered.
for (const era of ['modern', 'legacy']) {
  test(`SIGTERM answers a ${era} workflow_run that follows its run, and does not wait out the grace for it`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-drain-watch-'));
    const calls = join(dir, 'calls.tsv');
    const { file } = twoSteps(calls, 600000);
    const server = await startHttpServer({ extraArgs: ['--config', file, '--store', join(dir, 'sb.db')] });
    let c;
    try {
      c = await connect(era, server.url);
      const answer = c.callTool({ name: 'workflow_run', arguments: { workflow: 'two' } }, { timeout: 600000 });
      await pollUntil(() => callsReceived(calls).length === 1 || { ok: false, message: 'not yet' },
        { what: 'step one\'s call at the agent' });
      server.proc.kill('SIGTERM');
      const res = await answer;
      assert.notEqual(res.isError, true, JSON.stringify(res));
      assert.equal(res.structuredContent.workflow, 'two', JSON.stringify(res));
      assert.equal(res.structuredContent.status, 'running', JSON.stringify(res));
      assert.deepEqual(await server.exited, { code: 0, signal: null }, server.stderr);
      assert.match(server.stderr, /every request answered and every workflow step under way stored; stopping/);
    } finally {
      await c?.close().catch(() => {});
      await server.stop().catch(() => {});
    }
  });
}

/**
 * serve --stdio with the flaky agent and this grace: `messages` are written
 * and stdin is ended at once. {proc, answers (by id), stderr, exited}; the
 * answers fill in as stdout is read.
 */
function stdioSession(graceMs, messages) {
  const cfg = `${process.env.TMPDIR || '/tmp'}/sb-shutdown-stdio-${process.pid}-${graceMs}.yaml`;
  writeFileSync(cfg, [
    'server:', `  shutdown_grace_ms: ${graceMs}`,
    'agents:', `  - ${JSON.stringify(flakyAgent('desk', 'D'))}`,
  ].join('\n') + '\n');
  const proc = spawn(switchboardBin(), ['serve', '--stdio', '--config', cfg, '--store', tempStorePath()],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  const s = { proc, answers: new Map(), stderr: '' };
  let pending = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => {
    pending += d;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const msg = JSON.parse(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      if (msg.id !== undefined) s.answers.set(msg.id, msg);
    }
  });
  proc.stderr.setEncoding('utf8').on('data', (d) => { s.stderr += d; });
  s.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  proc.stdin.end(messages.map((m) => JSON.stringify(m)).join('\n') + '\n');
  return s;
}

const stdioOpening = [
  { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'shutdown-test', version: '1' } } },
  { jsonrpc: '2.0', method: 'notifications/initialized' },
];
const callTool = (id, name, args) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

test('stdin closed: the requests already read are answered, a long answer whole, then exit 0', async () => {
  const intent = 'x'.repeat(300000); // the answer carries it twice: more than a pipe holds
  const s = stdioSession(0, [
    ...stdioOpening,
    callTool(2, 'desk__slow', { ms: 300 }),
    callTool(3, 'context_create', { data: { conversation: { intent } } }),
    { jsonrpc: '2.0', id: 4, method: 'ping' },
  ]);
  try {
    const exit = await withDeadline(s.exited, DEADLINE_MS, 'the exit after stdin ends');
    assert.deepEqual(exit, { code: 0, signal: null }, s.stderr);
    assert.deepEqual([...s.answers.keys()].sort(), [1, 2, 3, 4]);
    assert.match(JSON.stringify(s.answers.get(2).result), /D slept 300 ms/);
    const created = s.answers.get(3).result;
    assert.ok(!created.isError, JSON.stringify(created).slice(0, 300));
    assert.equal(created.structuredContent.data.conversation.intent, intent);
    assert.match(s.stderr, /stdin closed; stopping once 1 request\(s\) under way are answered \(within 10000 ms/);
    assert.match(s.stderr, /every request answered; stopping/);
  } finally {
    s.proc.kill('SIGKILL');
  }
});

test('stdin closed: past shutdown_grace_ms, or on a signal, the rest is cut off', async () => {
  for (const how of ['grace', 'signal']) {
    const s = stdioSession(how === 'grace' ? 300 : 600000, [...stdioOpening, callTool(2, 'desk__hang', {})]);
    try {
      if (how === 'signal') {
        await withDeadline(new Promise((resolve) => {
          const check = () => (/stdin closed; stopping once/.test(s.stderr) ? resolve() : s.proc.stderr.once('data', check));
          check();
        }), DEADLINE_MS, 'the drain after stdin ends');
        s.proc.kill('SIGTERM');
      }
      const exit = await withDeadline(s.exited, DEADLINE_MS, `the exit (${how})`);
      assert.deepEqual(exit, { code: 0, signal: null }, `${how}: ${s.stderr}`);
      assert.ok(s.answers.has(1), how);
      assert.ok(!s.answers.has(2), `${how}: the hung call has no answer`);
      if (how === 'grace')
        assert.match(s.stderr, /shutdown_grace_ms is over with 1 request\(s\) under way: they are cut off/);
      else
        assert.match(s.stderr, /received SIGTERM; stopping/);
    } finally {
      s.proc.kill('SIGKILL');
    }
  }
});
