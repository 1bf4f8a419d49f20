// logging.test.mjs: a reader of stderr that stops reading cannot stop the
// server. The server's log goes to a pipe here, as it does under a
// container runtime or `2>&1 | tee`; the test stops reading it while an
// agent floods the log (its notifications/message, logged at debug), and
// the server must go on answering: lines wait in a bounded buffer, the
// rest are dropped and counted in a line written once the reader is back.
// Before, the first write to the full pipe stopped the event loop, every
// tenant's requests with it, until someone read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

import { startHttpServer, withDeadline, DEADLINE_MS } from './lib/harness.mjs';
import { agentDef, writeConfig, pollUntil } from '../agents/agents_lib.mjs';

const RAW = join(dirname(fileURLToPath(import.meta.url)), '..', 'agents', 'raw_agent.mjs');

test('a log reader that stops reading does not stop the server', async () => {
  const cfg = writeConfig([agentDef('chat', {
    capabilities: ['chat'], transport: { type: 'stdio', command: process.execPath, args: [RAW, 'C'] },
  })]);
  const server = await startHttpServer({ extraArgs: ['--config', cfg, '--log-level', 'debug'] });
  const base = server.url.replace(/\/mcp$/, '');
  const call = async (args) => {
    const res = await withDeadline(fetch(`${base}/v1/agents/call`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'chat', tool: 'chatter', arguments: args }),
    }), DEADLINE_MS, 'the chatter call');
    return { status: res.status, json: await res.json() };
  };
  try {
    await pollUntil(async () => {
      const r = await (await fetch(`${base}/readyz`)).json();
      return r.agents.connected === 1 || { ok: false, message: JSON.stringify(r) };
    }, { what: 'the agent to connect' });

    // Nobody reads stderr from here: the pipe (64 KiB) fills at once.
    server.proc.stderr.pause();
    const from = server.stderr.length;
    // About 1.6 MB of log lines: more than the pipe and the server's
    // buffer for a lagging reader hold together.
    const first = await call({ count: 800, bytes: 1900 });
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.equal(first.json.result.content[0].text, 'chattered 800');
    // Still answering, the log still unread.
    const again = await call({ count: 50, bytes: 1900 });
    assert.equal(again.json.result.content[0].text, 'chattered 50');
    const health = await withDeadline(fetch(`${base}/healthz`), DEADLINE_MS, '/healthz');
    assert.equal(health.status, 200);

    // The reader is back: what was kept arrives, and a line says how many
    // were dropped.
    server.proc.stderr.resume();
    const [, dropped] = await server.stderrMatch(/warning log: (\d+) log lines dropped: stderr was not being read/);
    const lines = server.stderr.slice(from).split('\n');
    const kept = lines.filter((l) => /debug +agents: agent chat log: \d+ x+$/.test(l)).length;
    assert.ok(Number(dropped) > 0 && kept > 0, `kept ${kept}, dropped ${dropped}`);
    assert.ok(kept + Number(dropped) <= 850, `kept ${kept} + dropped ${dropped} of 850 lines`);
    // Lines are whole: nothing cut mid-line by a partial write.
    assert.ok(lines.every((l) => l === '' || /^\d{4}-\d\d-\d\dT/.test(l)),
      lines.find((l) => l !== '' && !/^\d{4}-\d\d-\d\dT/.test(l))?.slice(0, 200));
    // And the log goes on as before.
    await call({ count: 1, bytes: 10 });
    await server.stderrMatch(/agent chat log: 0 x{10}\n/);
  } finally {
    server.proc.stderr.resume();
    await server.stop();
  }
});

test('a server started with stderr closed logs into nothing, not into whatever takes descriptor 2', async () => {
  const { spawn } = await import('node:child_process');
  const { readlinkSync, realpathSync } = await import('node:fs');
  const { switchboardBin, tempStorePath } = await import('./lib/harness.mjs');
  // sh closes fd 2 (`2>&-`) and execs the server; the port comes on a
  // file the test reads, since stderr is gone.
  const store = tempStorePath();
  const proc = spawn('/bin/sh', ['-c', 'exec "$0" serve --listen 127.0.0.1:0 --store "$1" 2>&-', switchboardBin(), store],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    // Before: descriptor 2 went to the next open() (here the event loop's
    // epoll instance; an agent's pipe or the store file as well), and every
    // log line was written into it.
    // The process is sh until it execs the server (sh's own descriptors,
    // 10 among them, are not the server's): first the server, then its
    // tenth descriptor, opened well after it took care of 0-2.
    const bin = realpathSync(switchboardBin());
    await pollUntil(() => {
      try {
        return readlinkSync(`/proc/${proc.pid}/exe`) === bin &&
          readlinkSync(`/proc/${proc.pid}/fd/10`) !== undefined;
      } catch {
        return { ok: false, message: 'not started' };
      }
    }, { what: 'the server to start and open its descriptors' });
    assert.equal(readlinkSync(`/proc/${proc.pid}/fd/2`), '/dev/null');
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
});
