// loop_stall.mjs: how long an agentless loop holds switchboard's event loop.
//
// Starts `switchboard serve` (SWITCHBOARD_BIN, default build-release) on a
// fresh store with one workflow that loops through an emit and a branch
// step until its max_steps budget fails it, hammers GET /healthz one
// request at a time on a keep-alive connection while one run executes,
// and prints the slowest /healthz answer, the run's wall time, and the
// run's final stepsRun / history length / size of its GET.
//
//   node bench/loop_stall.mjs [max_steps...]      (default: 1000 10000 100000)
//   LOOP_STALL_NO_PROBES=1 node bench/loop_stall.mjs ...  (loop CPU alone)
import http from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

import { req as httpReq } from './http_req.mjs';

const bin = process.env.SWITCHBOARD_BIN || new URL('../build-release/switchboard', import.meta.url).pathname;
const sizes = process.argv.slice(2).map(Number);
if (!sizes.length) sizes.push(1000, 10000, 100000);

function config(dir, maxSteps) {
  const file = join(dir, 'sb.yaml');
  writeFileSync(file, `cache:
  ttl_ms: 0
agents: []
workflows:
  - name: spin
    max_steps: ${maxSteps}
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
`);
  return file;
}

async function start(maxSteps) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-stall-'));
  const proc = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--store', join(dir, 'sb.db'),
    '--config', config(dir, maxSteps)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const url = await new Promise((resolve, reject) => {
    proc.stderr.setEncoding('utf8').on('data', (d) => {
      err += d;
      const m = /listening on (http:\/\/[^\s]+)\/mcp/.exec(err);
      if (m) resolve(m[1]);
    });
    proc.once('exit', (c) => reject(new Error(`exited ${c}: ${err}`)));
  });
  return { proc, url };
}

// CPU seconds the server's main thread (the event loop's) has used.
function loopCpu(pid) {
  const f = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in ticks of 10 ms
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const other = new http.Agent({ keepAlive: true, maxSockets: 4 });

const req = (url, method = 'GET', body, ag = other) => httpReq(url, method, body, ag);

async function measure(maxSteps) {
  const { proc, url } = await start(maxSteps);
  // Warm up the connection.
  for (let i = 0; i < 20; i++) await req(url + '/healthz', 'GET', null, agent);
  let stop = false, max = 0, n = 0;
  const lat = [];
  // LOOP_STALL_NO_PROBES=1: no /healthz client, for the loop thread's CPU
  // per step alone.
  const probes = !process.env.LOOP_STALL_NO_PROBES;
  const hammer = (async () => {
    while (!stop && probes) {
      const t = process.hrtime.bigint();
      const r = await req(url + '/healthz', 'GET', null, agent);
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (r.status !== 200) throw new Error(`healthz ${r.status}`);
      lat.push(ms); n++;
      if (ms > max) max = ms;
    }
  })();
  const cpu0 = loopCpu(proc.pid);
  const t0 = process.hrtime.bigint();
  const s = await req(url + '/v1/runs', 'POST', { workflow: 'spin' });
  const startMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (s.status !== 201) throw new Error(`start ${s.status} ${s.text}`);
  const id = JSON.parse(s.text).id;
  // Wait for its end: the listing (no history) every 50 ms.
  let status;
  for (;;) {
    const l = await req(url + '/v1/runs?limit=1');
    status = JSON.parse(l.text).runs[0].status;
    if (status !== 'running') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const totalMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = loopCpu(proc.pid) - cpu0;
  stop = true;
  await hammer;
  const g = await req(url + `/v1/runs/${id}`);
  const run = JSON.parse(g.text);
  lat.sort((a, b) => a - b);
  const p99 = lat[Math.floor(lat.length * 0.99)] ?? 0;
  console.log(`max_steps ${String(maxSteps).padStart(6)}: healthz max ${max.toFixed(1).padStart(7)} ms, p99 ${p99.toFixed(1).padStart(6)} ms (${n} probes); ` +
    `start answered ${startMs.toFixed(0)} ms, run ${status} after ${totalMs.toFixed(0)} ms ` +
    `(loop thread CPU ${(cpu * 1e6 / maxSteps).toFixed(1)} us/step, probes included); stepsRun ${run.stepsRun}, ` +
    `history ${run.history.length}${run.historyElided ? ` (+${run.historyElided} elided)` : ''}, GET ${(g.text.length / 1024).toFixed(0)} KiB`);
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
}

for (const s of sizes) await measure(s);
agent.destroy();
other.destroy();
