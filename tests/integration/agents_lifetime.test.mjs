// Stdio agents die with switchboard, however switchboard dies: an agent
// that ignores both stdin EOF and SIGTERM is gone soon after switchboard
// is killed with SIGKILL (no graceful shutdown ran: the kernel killed it,
// PR_SET_PDEATHSIG through the exec shim, see src/net/child.c). And an
// agent whose command cannot be started is still reported naming the
// command and the cause, as before the shim.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { agentDef, pollUntil, startWithAgents } from '../agents/agents_lib.mjs';
import { postModern } from './lib/harness.mjs';

const STUBBORN = join(dirname(fileURLToPath(import.meta.url)), '..', 'agents', 'stubborn_agent.mjs');

/** Running, i.e. signallable and not a zombie waiting to be reaped. */
function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if (e.code === 'ESRCH') return false;
    throw e;
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // gone meanwhile
  }
}

test('a stdio agent that ignores EOF and SIGTERM dies when switchboard is SIGKILLed', async () => {
  const pidFile = join(mkdtempSync(join(tmpdir(), 'sb-lifetime-')), 'agent.pid');
  const def = agentDef('stubborn', {
    transport: { type: 'stdio', command: process.execPath, args: [STUBBORN], env: { PID_FILE: pidFile } },
  });
  const server = await startWithAgents([def]);
  let pid;
  try {
    await server.stderrMatch(/agent stubborn: 1 tools/); // connected, listed
    pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(pid > 0 && alive(pid), `the agent runs (pid ${pid})`);
    server.proc.kill('SIGKILL');
    assert.equal((await server.exited).signal, 'SIGKILL');
    await pollUntil(() => !alive(pid) || { ok: false, message: `pid ${pid} still running` },
      { what: 'the agent to die with switchboard' });
  } finally {
    server.proc.kill('SIGKILL');
    if (pid && alive(pid)) process.kill(pid, 'SIGKILL'); // no orphan from a failed run
  }
});

test('an agent command that cannot be started is reported naming it and why', async () => {
  const missing = join(tmpdir(), `sb-no-such-agent-${process.pid}`);
  const server = await startWithAgents([agentDef('ghost', { transport: { type: 'stdio', command: missing } })]);
  const cause = `cannot start ${missing}: no such file or directory`;
  try {
    await server.stderrMatch(new RegExp(`agent ghost: .*${cause}`));
    // What a caller is told of the agent: the cause, not a consequence.
    const endpoint = server.url.replace(/\/mcp$/, '/agents/ghost/mcp');
    const r = await postModern(endpoint, 'unused', 'tools/list', {});
    assert.match(r.error?.data?.reason ?? '', new RegExp(`: ${cause}$`), r.text);
    assert.doesNotMatch(server.stderr, /status 127|connect failed/, 'the cause, not the shim\'s exit status');
  } finally {
    await server.stop();
  }
});

const RAW = join(dirname(fileURLToPath(import.meta.url)), '..', 'agents', 'raw_agent.mjs');

test('an agent slow to start gets its limits.startupTimeoutMs for the handshake', async () => {
  // Both agents answer initialize only once `go` exists, as an agent that
  // npx is still fetching, or a JVM still starting, would.
  const go = join(mkdtempSync(join(tmpdir(), 'sb-startup-')), 'go');
  const held = (id, startupTimeoutMs) => agentDef(id, {
    capabilities: ['x'], limits: { startupTimeoutMs },
    transport: { type: 'stdio', command: process.execPath, args: [RAW, id.toUpperCase(), `--hold-init=${go}`] },
  });
  const server = await startWithAgents([held('quick', 1000), held('patient', 60000)]);
  try {
    // Before, every agent had 15 s, whatever it needed: one that took
    // longer was killed and started again, each time, for ever.
    // (initialize gets what the probe left of the budget)
    await server.stderrMatch(/agent quick: initialize timed out after \d+ ms/);
    writeFileSync(go, '');
    const base = server.url.replace(/\/mcp$/, '');
    await pollUntil(async () => {
      const r = await (await fetch(`${base}/v1/agents`)).json();
      const patient = r.agents.find((a) => a.definition.id === 'patient');
      return patient?.connected === true || { ok: false, message: JSON.stringify(patient?.connected) };
    }, { what: 'patient to connect' });
    // On its first start: it was never given up on.
    assert.equal(server.stderr.match(/agent patient: PATIENT: ready/g)?.length, 1, server.stderr);
    assert.doesNotMatch(server.stderr, /agent patient: (initialize|server\/discover) timed out/);
  } finally {
    await server.stop();
  }
});

test('the handshake\'s probe and initialize share one limits.startupTimeoutMs', async () => {
  // An agent that never answers anything: the probe (server/discover)
  // takes the whole budget, and no initialize follows with a budget of its
  // own. Before, each got all of it: 2 s for a limit of 1 s.
  const mute = agentDef('mute', {
    capabilities: ['x'], limits: { startupTimeoutMs: 1000 },
    transport: { type: 'stdio', command: process.execPath, args: ['-e', 'process.stdin.resume()'] },
  });
  const server = await startWithAgents([mute]);
  try {
    await server.stderrMatch(/agent mute: server\/discover timed out after 1000 ms/);
    await server.stderrMatch(/agent mute: connect failed: did not answer its handshake within 1000 ms/);
    assert.doesNotMatch(server.stderr, /agent mute: initialize timed out/);
  } finally {
    await server.stop();
  }
});

