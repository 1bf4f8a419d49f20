// Runs in progress are capped per tenant as well as in all
// (limits.max_runs_per_tenant, limits.max_runs): one tenant's waiting runs
// take its own share only, so another tenant still starts runs; a tenant at
// its share is told of its own limit (REST 503, MCP -31050), and a place
// comes back when one of its runs ends. Runs brought back at start count
// but always come back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { DEADLINE_MS, postModern, tempStorePath } from './lib/harness.mjs';
import { stopClean } from './lib/contexts_common.mjs';
import { runsClient, startFlowServer, startRun, writeFlowConfig } from './lib/flows.mjs';

const A = { id: 'tenant-a', token: 'token-for-tenant-a-0123456789' };
const B = { id: 'tenant-b', token: 'token-for-tenant-b-9876543210' };

// A run that waits on its question until it is answered.
const WORKFLOWS = `
  - name: waits
    steps:
      - id: question
        ask: { message: Still there? }
      - id: done
        end: completed
`;

let sw;
let base;
before(async () => {
  const { file } = writeFlowConfig({
    tenants: [A, B], workflowsYaml: WORKFLOWS, limits: { max_runs: 3, max_runs_per_tenant: 2 },
  });
  ({ server: sw, base } = await startFlowServer(file));
});
after(async () => { if (sw) await stopClean(sw); });

test('a tenant at limits.max_runs_per_tenant is refused naming its limit; another tenant still starts runs', async () => {
  const a = runsClient(base, A.token);
  const b = runsClient(base, B.token);
  const first = await startRun(a, { workflow: 'waits' });
  await startRun(a, { workflow: 'waits' });
  await a.waitFor(first.id, 'waiting');

  const third = await a.start({ workflow: 'waits' });
  assert.equal(third.status, 503, third.text);
  assert.match(third.json.error.message,
    /^tenant tenant-a has 2 runs in progress, its limit \(limits\.max_runs_per_tenant\); retry when one ends$/);
  const mcp = await postModern(`${base}/mcp`, A.token, 'tools/call',
    { name: 'workflow_run', arguments: { workflow: 'waits' } }, { tasks: false });
  assert.equal(mcp.error?.code, -31050, mcp.text);
  assert.match(mcp.error.message, /limits\.max_runs_per_tenant/);

  // the other tenant is not held back by A's waiting runs
  const other = await startRun(b, { workflow: 'waits' });
  await b.waitFor(other.id, 'waiting');

  // limits.max_runs caps them all (A 2 + B 1 = 3): B, under its share, is
  // refused naming the whole
  const full = await b.start({ workflow: 'waits' });
  assert.equal(full.status, 503, full.text);
  assert.match(full.json.error.message, /^too many runs in progress \(3, limits\.max_runs\); retry later$/);

  // one of A's runs ends: A has a place again
  const answered = await a.action(first.id, 'answer', { answer: { ok: true } });
  assert.equal(answered.status, 200, answered.text);
  await a.waitFor(first.id, 'completed');
  await startRun(a, { workflow: 'waits' });
});

test('runs brought back at start count against the share but are never refused', async () => {
  const store = tempStorePath();
  const config = (perTenant) => writeFlowConfig({
    tenants: [A], workflowsYaml: WORKFLOWS, limits: { max_runs_per_tenant: perTenant },
  }).file;
  const onStore = { extraArgs: ['--store', store] };
  const first = await startFlowServer(config(2), onStore);
  const ids = [];
  try {
    const a = runsClient(first.base, A.token);
    for (let i = 0; i < 2; i++) ids.push((await startRun(a, { workflow: 'waits' })).id);
    for (const id of ids) await a.waitFor(id, 'waiting');
  } finally {
    await stopClean(first.server);
  }
  // Again with a share of 1: both runs come back, and count.
  const again = await startFlowServer(config(1), onStore);
  try {
    const a = runsClient(again.base, A.token);
    await again.server.stderrMatch(/resuming 2 runs in progress/);
    const refused = await a.start({ workflow: 'waits' });
    assert.equal(refused.status, 503, refused.text);
    assert.match(refused.json.error.message, /^tenant tenant-a has 1 runs in progress, its limit/);
    for (const id of ids) {
      // A run still reading its context back answers 503 busy, "retry
      // shortly": the log line above comes before that read ends.
      let answered;
      for (const deadline = Date.now() + DEADLINE_MS; ;) {
        answered = await a.action(id, 'answer', { answer: { ok: true } });
        if (answered.status !== 503 || answered.json?.error?.code !== 'busy' || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(answered.status, 200, answered.text);
      await a.waitFor(id, 'completed');
    }
    await startRun(a, { workflow: 'waits' });
  } finally {
    await stopClean(again.server);
  }
});
