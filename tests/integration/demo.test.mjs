// demo.test.mjs: the README's first command, end to end. `switchboard demo
// --once` with the dealership config (the five C agents as real child
// processes, each tenant's data written by dealer-data into a temp dir),
// then the store it leaves is read back with the CLI: the final context of
// every scripted conversation, that each tenant only ever saw its own
// inventory, that the slow credit desk fell back to the finance desk, and
// that the finance-desk-down conversation reached human review.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { switchboardBin, withDeadline } from './lib/harness.mjs';
import { connect, pollUntil } from '../agents/agents_lib.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = switchboardBin();
const AGENTS = join(dirname(BIN), 'agents');
const DEMO_MS = 180000;

/** The example config, pointed at this build, a temp data dir and store. */
function demoConfig(dir) {
  const text = readFileSync(join(ROOT, 'examples', 'dealership', 'switchboard.yaml'), 'utf8')
    .replaceAll('build/agents/', `${AGENTS}/`)
    .replaceAll('[--data, data/demo', `[--data, ${join(dir, 'data')}`)
    .replace('path: data/demo/switchboard.db', `path: ${join(dir, 'switchboard.db')}`)
    .replaceAll('../workflows/', `${join(ROOT, 'examples', 'workflows')}/`);
  const settings = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
  assert.ok(!/ build\/agents|data\/demo/.test(settings), `every path was rewritten:\n${settings}`);
  const path = join(dir, 'switchboard.yaml');
  writeFileSync(path, text);
  return path;
}

function runDemo(config, { once = true, onStdout } = {}) {
  const child = spawn(BIN, ['demo', ...(once ? ['--once'] : []), '--config', config, '--listen', '127.0.0.1:0',
    '--scenarios', join(ROOT, 'examples', 'dealership', 'conversations.json')], { cwd: ROOT });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; onStdout?.(stdout, child); });
  child.stderr.on('data', (d) => { stderr += d; });
  const done = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal, stdout, stderr })));
  return withDeadline(done, DEMO_MS, 'switchboard demo --once to exit').catch((e) => {
    child.kill('SIGKILL');
    throw new Error(`${e.message}\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-3000)}`);
  });
}

const cli = (args) => JSON.parse(execFileSync(BIN, args, { encoding: 'utf8' }));
const sql = (db, q) => execFileSync('sqlite3', [db, q], { encoding: 'utf8' }).trim();

test('the dealership demo, end to end, on both tenants', { timeout: DEMO_MS + 60000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-demo-'));
  execFileSync(join(AGENTS, 'dealer-data'), ['--out', join(dir, 'data')]);
  const config = demoConfig(dir);
  const r = await runDemo(config);
  const why = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-3000)}`;
  assert.equal(r.code, 0, `every scenario ends as its "expect" says: ${why}`);
  assert.match(r.stdout, /6 of 6 agents connected/, why);
  assert.match(r.stdout, /== summary/, why);
  assert.match(r.stdout, /fell back from finance-hq: timed out/, 'the slow credit desk, then the fallback');
  assert.match(r.stdout, /the demo takes agent finance offline/);
  assert.match(r.stdout, /waits for a person at step review/);
  for (const agent of ['general', 'sales', 'finance', 'service', 'parts'])
    assert.match(r.stdout, new RegExp(`^  ${agent} +\\d+ `, 'm'), `the summary's row of ${agent}`);

  const dbs = { 'north-star': join(dir, 'data', 'north-star.db'), lakeside: join(dir, 'data', 'lakeside.db') };
  const finals = {};
  for (const tenant of Object.keys(dbs)) {
    const runs = cli(['runs', 'list', '--config', config, '--tenant', tenant, '--json']);
    assert.equal(runs.length, 3, `three conversations in ${tenant}`);
    for (const run of runs) {
      const ctx = cli(['context', 'get', run.contextId, '--config', config, '--tenant', tenant]);
      const events = cli(['runs', 'events', run.id, '--config', config, '--tenant', tenant, '--json']);
      finals[`${tenant}/${run.workflow}`] = { run, ctx, events: events.events ?? events };
    }
  }
  const out = (k) => finals[k].ctx.data.workflow.outputs;

  // 1. North Star: a RAV4 hybrid, quoted and booked.
  let o = out('north-star/lead-to-test-drive');
  assert.equal(finals['north-star/lead-to-test-drive'].run.status, 'completed');
  assert.equal(o.intake.intent, 'buy');
  assert.equal(o.intake.entities.model, 'RAV4');
  // ...and the conversation's own fields, where every agent can read them
  const conv = finals['north-star/lead-to-test-drive'].ctx.data.conversation;
  assert.equal(conv.intent, 'buy');
  assert.equal(conv.entities.model, 'RAV4');
  assert.equal(conv.sentiment, o.intake.sentiment);
  assert.equal(o.search.vehicles[0].model, 'RAV4');
  assert.ok(o.search.vehicles[0].price <= 38000 * 1.1);
  assert.equal(o.quote.term_months, 60);
  assert.ok(o.quote.monthly_payment > 0);
  assert.match(o.book.booking_id, /^TD-/);
  assert.equal(o.book.vin, o.search.vehicles[0].vin);
  assert.deepEqual([...finals['north-star/lead-to-test-drive'].ctx.metadata.agents].sort(), ['finance', 'general', 'sales']);

  // 2. Lakeside, in Spanish: a used Forester.
  o = out('lakeside/lead-to-test-drive');
  assert.equal(finals['lakeside/lead-to-test-drive'].run.status, 'completed');
  assert.equal(o.intake.language, 'es');
  assert.equal(o.search.vehicles[0].model, 'Forester');
  assert.match(o.book.booking_id, /^TD-/);

  // 3, 4. Service visits: recalls checked, a bay booked, a part reserved or ordered.
  for (const tenant of ['north-star', 'lakeside']) {
    const k = `${tenant}/service-visit`;
    o = out(k);
    assert.equal(finals[k].run.status, 'completed', JSON.stringify(finals[k].run));
    assert.equal(o.intake.intent, 'service');
    assert.ok(Array.isArray(o.recalls.recalls));
    assert.match(o.booking.booking_id, /^SV-/);
    assert.match(o.order.order_id, /^PO-/);
    assert.deepEqual([...finals[k].ctx.metadata.agents].sort(), ['general', 'parts', 'service']);
  }

  // 5. The credit desk was too slow: the finance desk answered instead.
  const fin = finals['lakeside/finance-review'];
  assert.equal(fin.run.status, 'completed');
  const approval = fin.events.find((e) => (e.type ?? e.event) === 'step.completed' && e.data.step === 'approval');
  assert.equal(approval.data.agent, 'finance', JSON.stringify(approval));
  assert.deepEqual(approval.data.routing.fellBackFrom, [{ agent: 'finance-hq', outcome: 'timed out' }]);
  assert.ok(approval.data.routing.projectionBytes < approval.data.routing.contextBytes, 'a projection, not the whole context');

  // 6. Every finance desk failed: the application waits for a person.
  const down = finals['north-star/finance-review'];
  assert.equal(down.run.status, 'waiting');
  assert.ok(down.events.some((e) => (e.type ?? e.event) === 'finance.needs_review'));
  assert.equal(down.ctx.data.workflow.outputs.approval, undefined);

  // Tenant isolation: every VIN and dealership a tenant's contexts hold is
  // its own; none is in the other group's data.
  for (const [key, f] of Object.entries(finals)) {
    const tenant = key.split('/')[0];
    const other = tenant === 'lakeside' ? 'north-star' : 'lakeside';
    const text = JSON.stringify(f.ctx.data.workflow.outputs);
    for (const vin of new Set(text.match(/\b[A-HJ-NPR-Z0-9]{17}\b/g) ?? [])) {
      const mine = sql(dbs[tenant], `SELECT count(*) FROM (SELECT vin FROM vehicles WHERE vin='${vin}' UNION SELECT vin FROM customer_vehicles WHERE vin='${vin}')`);
      const theirs = sql(dbs[other], `SELECT count(*) FROM (SELECT vin FROM vehicles WHERE vin='${vin}' UNION SELECT vin FROM customer_vehicles WHERE vin='${vin}')`);
      assert.equal(mine, '1', `${key}: VIN ${vin} is ${tenant}'s`);
      assert.equal(theirs, '0', `${key}: VIN ${vin} is not ${other}'s`);
    }
    for (const id of new Set(text.match(/"dealership_id":"([a-z-]+)"/g) ?? []))
      assert.ok(id.includes(tenant === 'lakeside' ? '"lk-' : '"ns-'), `${key}: ${id}`);
  }
});

test('after the demo it keeps serving: an MCP client connects as its snippet says', { timeout: DEMO_MS + 60000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-demo-'));
  execFileSync(join(AGENTS, 'dealer-data'), ['--out', join(dir, 'data')]);
  const config = demoConfig(dir);
  let served;
  const ready = new Promise((res) => { served = res; });
  const exited = runDemo(config, {
    once: false,
    onStdout: (text, child) => { if (text.includes('Ctrl-C stops it')) served({ text, child }); },
  });
  const { text, child } = await withDeadline(Promise.race([ready, exited.then((r) => {
    throw new Error(`the demo exited before serving: ${JSON.stringify(r).slice(-3000)}`);
  })]), DEMO_MS, 'the demo to finish its scenarios and say how to connect');
  const snippet = JSON.parse(text.match(/^  (\{"mcpServers": \{"dealership": \{"type": "http".*)$/m)[1]);
  const c = await connect('modern', snippet.mcpServers.dealership.url);
  try {
    const res = await c.callTool({ name: 'sales__search_inventory', arguments: { make: 'Toyota', model: 'RAV4', limit: 2 } });
    assert.notEqual(res.isError, true, JSON.stringify(res));
    assert.equal(res.structuredContent.vehicles.length, 2);
    for (const v of res.structuredContent.vehicles)
      assert.match(v.dealership_id, /^ns-/, 'a caller without a key is the default tenant, north-star');
  } finally {
    await c.close();
  }
  // The application waiting for a person: a finance manager answers it as
  // the trace says, over the server's REST API, and the run ends.
  const [, runId, base] = text.match(/switchboard runs answer (\S+) --answer JSON --url (\S+)/);
  const answered = await fetch(`${base}/v1/runs/${runId}/answer`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ answer: { decision: 'approved', apr: 7.25 } }),
  });
  assert.equal(answered.status, 200, await answered.text());
  const run = await pollUntil(async () => {
    const r = await (await fetch(`${base}/v1/runs/${runId}`)).json();
    return r.status === 'waiting' || r.status === 'running' ? null : r;
  }, { what: `run ${runId} to end after the answer` });
  assert.equal(run.status, 'completed', JSON.stringify(run));
  assert.match(text, /"command": "sh", "args": \["-c", "cd '[^']+' && exec '[^']+switchboard' serve --config '[^']+switchboard\.yaml' --stdio/);
  child.kill('SIGTERM');
  const r = await exited;
  assert.equal(r.code, 0, r.stderr.slice(-2000));
});
