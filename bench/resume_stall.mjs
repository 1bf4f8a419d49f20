// resume_stall.mjs: how long a restart that brings back many runs holds
// switchboard's event loop.
//
// Starts `switchboard serve` (SWITCHBOARD_BIN, default build-release) on a
// fresh store with a workflow whose first step asks a question, leaves N
// runs waiting on it, stops the server (SIGTERM) and starts it again on
// the store. From "listening" until the log says the N runs are back, and
// for 200 probes after, it asks GET /healthz one request at a time on a
// keep-alive connection. The baseline, measured in the same run: the same
// restart with no run to bring back. Printed: the slowest and p99 /healthz
// of each, their ratio, and how long the N runs took to be back.
//
//   node bench/resume_stall.mjs [N...]          (default: 1000 9000)
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

import { req } from './http_req.mjs';

const bin = process.env.SWITCHBOARD_BIN || new URL('../build-release/switchboard', import.meta.url).pathname;
const sizes = process.argv.slice(2).map(Number);
if (!sizes.length) sizes.push(1000, 9000);
if (sizes.some((n) => !Number.isInteger(n) || n < 0 || n > 10000)) {
  console.error('resume_stall: each N is a count of runs, 0..10000 (the engine holds 10000 at most)');
  process.exit(2);
}

const CONFIG = `cache:
  ttl_ms: 0
limits:
  max_runs_per_tenant: 10000
agents: []
workflows:
  - name: asked
    steps:
      - id: confirm
        ask:
          message: Go ahead?
          schema: { type: object, properties: { ok: { type: boolean } }, required: [ok] }
`;

function serve(dir) {
  const proc = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--store', join(dir, 'sb.db'),
    '--config', join(dir, 'sb.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const waiters = [];
  proc.stderr.setEncoding('utf8').on('data', (d) => {
    err += d;
    for (const w of waiters.splice(0)) if (!w(err)) waiters.push(w);
  });
  const match = (re) => new Promise((resolve, reject) => {
    const w = (text) => { const m = re.exec(text); if (m) resolve(m); return m; };
    if (!w(err)) waiters.push(w);
    proc.once('exit', (c) => reject(new Error(`switchboard exited ${c}: ${err}`)));
  });
  return { proc, match, stop: () => new Promise((r) => { proc.once('exit', r); proc.kill('SIGTERM'); }) };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const others = new http.Agent({ keepAlive: true, maxSockets: 32 });

async function leaveWaiting(dir, n) {
  const s = serve(dir);
  const url = (await s.match(/listening on (http:\/\/\S+)\/mcp/))[1];
  let made = 0;
  const worker = async () => {
    while (made < n) {
      made++;
      const r = await req(`${url}/v1/runs`, 'POST', { workflow: 'asked' }, others);
      if (r.status !== 201) throw new Error(`start: ${r.status} ${r.text}`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  await s.stop();
}

/** Restart on dir's store: {max, p99, probes, backMs}. */
async function restart(dir, n) {
  const s = serve(dir);
  const url = (await s.match(/listening on (http:\/\/\S+)\/mcp/))[1];
  const t0 = process.hrtime.bigint();
  let back = false;
  let backMs = 0;
  s.match(n ? new RegExp(`resuming ${n} runs in progress`) : /no runs in progress to resume/).then(() => {
    back = true;
    backMs = Number(process.hrtime.bigint() - t0) / 1e6;
  });
  const lat = [];
  for (let after = 0; !back || after < 200; after += back ? 1 : 0) {
    const t = process.hrtime.bigint();
    const r = await req(`${url}/healthz`, 'GET', null, agent);
    if (r.status !== 200) throw new Error(`healthz ${r.status}`);
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  await s.stop();
  lat.sort((a, b) => a - b);
  return { max: lat.at(-1), p99: lat[Math.floor(lat.length * 0.99)], probes: lat.length, backMs };
}

const fmt = (x) => x.toFixed(2).padStart(8);
for (const n of sizes) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-resume-'));
  const idle = mkdtempSync(join(tmpdir(), 'sb-resume-idle-'));
  try {
    for (const d of [dir, idle]) writeFileSync(join(d, 'sb.yaml'), CONFIG);
    await leaveWaiting(dir, n);
    await leaveWaiting(idle, 0);
    const base = await restart(idle, 0);
    const got = await restart(dir, n);
    console.log(`${String(n).padStart(5)} runs back in ${got.backMs.toFixed(0).padStart(5)} ms: ` +
      `/healthz slowest ${fmt(got.max)} ms, p99 ${fmt(got.p99)} ms (${got.probes} probes); ` +
      `restart with none: slowest ${fmt(base.max)} ms, p99 ${fmt(base.p99)} ms; ` +
      `slowest ratio ${(got.max / base.max).toFixed(1)}x`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(idle, { recursive: true, force: true });
  }
}
agent.destroy();
others.destroy();
