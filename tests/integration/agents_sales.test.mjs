// dealer-sales (and dealer-general) driven by the official SDK client over
// stdio and Streamable HTTP, on demo data written by dealer-data into a
// temporary directory: tool listing, a search, an idempotent booking, the
// tenant taken from _meta with two tenants that never see each other's
// cars, and the intake agent's sampling path with its rules fallback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { switchboardBin, withDeadline, DEADLINE_MS } from './lib/harness.mjs';

const agentsDir = join(dirname(switchboardBin()), 'agents');
const bin = (name) => join(agentsDir, `dealer-${name}`);
let data;

before(() => {
  data = mkdtempSync(join(tmpdir(), 'sb-demo-'));
  const out = execFileSync(bin('data'), ['--out', data], { encoding: 'utf8' });
  assert.match(out, /north-star\.db: North Star Auto Group: 3 dealerships, 1500 vehicles/);
  assert.match(out, /lakeside\.db: Lakeside Motors: 3 dealerships, 1500 vehicles/);
});
after(() => rmSync(data, { recursive: true, force: true }));

async function stdioClient(name, args = [], capabilities = {}) {
  const client = new Client({ name: 'agents-sales-test', version: '1.0.0' }, { capabilities });
  const transport = new StdioClientTransport({ command: bin(name), args: ['--data', data, ...args], stderr: 'pipe' });
  await withDeadline(client.connect(transport), DEADLINE_MS, `${name} to initialize`);
  return client;
}

const call = (client, name, args, meta = {}) =>
  withDeadline(client.callTool({ name, arguments: args, _meta: meta }), DEADLINE_MS, `${name} to answer`);
const tenant = (t, extra = {}) => ({ 'switchboard/tenant': t, ...extra });

test('tools/list: four tools with schemas; only the booking is mutating', async () => {
  const client = await stdioClient('sales');
  try {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name), ['search_inventory', 'vehicle_details', 'test_drive_slots', 'book_test_drive']);
    for (const t of tools) {
      assert.equal(t.inputSchema.type, 'object');
      assert.equal(t.outputSchema.type, 'object');
      assert.equal(t.annotations?.readOnlyHint === true, t.name !== 'book_test_drive');
    }
  } finally {
    await client.close();
  }
});

test('search, idempotent booking, tenants with disjoint inventories', async () => {
  const client = await stdioClient('sales');
  try {
    const r = await call(client, 'search_inventory', { model: 'a Camry', budget: 32000, limit: 5 }, tenant('north-star'));
    assert.ok(!r.isError, JSON.stringify(r));
    const s = r.structuredContent;
    assert.ok(s.total_matches >= 5);
    assert.equal(s.vehicles.length, 5);
    for (const v of s.vehicles) {
      assert.equal(v.model, 'Camry');
      assert.ok(v.price <= 32000 * 1.1);
      assert.ok(v.score >= 0 && v.score <= 100);
    }
    const scores = s.vehicles.map((v) => v.score);
    assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
    assert.match(r.content[0].text, /^5 of \d+ matching vehicles/);

    // the same key twice: one booking, the same answer
    const vin = s.vehicles[0].vin;
    const key = { 'switchboard/idempotencyKey': 'run-1/book/1' };
    const args = { vin, starts_at: '2027-01-05T10:00', customer_name: 'Ann Lee' };
    const b1 = await call(client, 'book_test_drive', args, tenant('north-star', key));
    const b2 = await call(client, 'book_test_drive', args, tenant('north-star', key));
    assert.ok(!b1.isError, JSON.stringify(b1));
    assert.deepEqual(b2.structuredContent, b1.structuredContent);
    assert.match(b1.structuredContent.booking_id, /^TD-\d+$/);
    const slots = await call(client, 'test_drive_slots', { vin, date: '2027-01-05' }, tenant('north-star'));
    assert.ok(!slots.structuredContent.slots.some((x) => x.starts_at === '2027-01-05T10:00'));
    // another key for the taken slot is refused
    const b3 = await call(client, 'book_test_drive', args, tenant('north-star', { 'switchboard/idempotencyKey': 'run-2/book/1' }));
    assert.equal(b3.isError, true);
    assert.match(b3.content[0].text, /already taken/);

    // the other tenant: no such VIN, and none of its cars are north-star's
    const d = await call(client, 'vehicle_details', { vin }, tenant('lakeside'));
    assert.equal(d.isError, true);
    assert.match(d.content[0].text, new RegExp(`no vehicle with VIN ${vin} at Lakeside Motors`));
    const all = async (t) => {
      const vins = new Set();
      for (const body of ['sedan', 'suv', 'truck', 'hatchback', 'coupe', 'van']) {
        const x = await call(client, 'search_inventory', { body, limit: 20 }, tenant(t));
        for (const v of x.structuredContent.vehicles) vins.add(v.vin);
      }
      return vins;
    };
    const ns = await all('north-star');
    const lk = await all('lakeside');
    assert.ok(ns.size > 50 && lk.size > 50);
    assert.equal([...ns].filter((v) => lk.has(v)).length, 0);
  } finally {
    await client.close();
  }
});

test('--http serves the same tools', async () => {
  const child = spawn(bin('sales'), ['--data', data, '--http', '127.0.0.1:0', '--tenant', 'lakeside'], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const url = await withDeadline(new Promise((resolve, reject) => {
      let err = '';
      child.stderr.on('data', (chunk) => {
        err += chunk;
        const m = err.match(/serving MCP on (http:\/\/\S+)/);
        if (m) resolve(m[1]);
      });
      child.on('exit', (code) => reject(new Error(`dealer-sales exited ${code}: ${err}`)));
    }), DEADLINE_MS, 'dealer-sales --http to listen');
    const client = new Client({ name: 'agents-sales-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    try {
      const r = await call(client, 'search_inventory', { make: 'subaru', condition: 'new', limit: 3 });
      assert.ok(!r.isError, JSON.stringify(r));
      assert.equal(r.structuredContent.vehicles.length, 3);
      for (const v of r.structuredContent.vehicles) assert.equal(v.dealership_id, 'lk-milwaukee');
    } finally {
      await client.close();
    }
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    assert.equal(await withDeadline(exited, DEADLINE_MS, 'dealer-sales to exit'), 0);
  }
});

test('dealer-general: rules, and --llm by sampling with the rules as fallback', async () => {
  const rules = await stdioClient('general');
  try {
    const r = await call(rules, 'classify_inquiry', { text: 'Looking for a Camry under $32k, call me at 612-555-0142' });
    assert.equal(r.structuredContent.intent, 'buy');
    assert.equal(r.structuredContent.method, 'rules');
    assert.deepEqual(r.structuredContent.entities, { make: 'Toyota', model: 'Camry', budget: 32000, phone: '(612) 555-0142' });
  } finally {
    await rules.close();
  }
  let answer = JSON.stringify({ intent: 'service', confidence: 0.9, entities: { make: 'Honda' }, sentiment: 'negative', language: 'en', summary: 'A Honda needs service.' });
  const seen = [];
  const llm = await stdioClient('general', ['--llm'], { sampling: {} });
  llm.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    seen.push(req.params);
    return { role: 'assistant', content: { type: 'text', text: answer }, model: 'test-model', stopReason: 'endTurn' };
  });
  try {
    const r = await call(llm, 'classify_inquiry', { text: 'my Honda is making a noise' });
    assert.equal(r.structuredContent.method, 'llm');
    assert.equal(r.structuredContent.sentiment, 'negative');
    assert.equal(seen.length, 1);
    assert.equal(seen[0].maxTokens, 512);
    assert.equal(seen[0]._meta['switchboard/outputSchema'].type, 'object');
    answer = 'I think it is about service.';
    const f = await call(llm, 'classify_inquiry', { text: 'my Honda is making a noise' });
    assert.equal(f.structuredContent.method, 'rules');
    assert.equal(f.structuredContent.intent, 'service');
    assert.match(f.structuredContent.llmError, /not JSON/);
  } finally {
    await llm.close();
  }
});
