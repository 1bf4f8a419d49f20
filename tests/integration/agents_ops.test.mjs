// The service, parts and finance agents (agents/service, agents/parts,
// agents/finance) as real processes under the official v1 SDK client: the
// tool lists, a quote with known numbers, an idempotent booking (the same
// _meta key twice: one booking, the same answer), Streamable HTTP, and
// dealer-finance's --delay-ms answering late without holding up the loop
// or the other calls. The tenant file is the schema
// (agents/common/schema.c) plus tests/fixtures/dealer_ops.sql, built with
// the sqlite3 command-line shell in a temporary directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';

import { DEADLINE_MS, switchboardBin, tapTransport, withDeadline } from './lib/harness.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TENANT = 'north-star';
const agentBin = (name) => join(dirname(switchboardBin()), 'agents', `dealer-${name}`);
const KEY = 'switchboard/idempotencyKey';

/** dl_schema_sql, read from its C source: the string literals, comments out. */
function schemaSql() {
  const src = readFileSync(join(ROOT, 'agents/common/schema.c'), 'utf8');
  const body = src.slice(src.indexOf('dl_schema_sql[] =')).replace(/\/\*[\s\S]*?\*\//g, '');
  return [...body.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(`"${m[1]}"`)).join('');
}

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', ['-batch', db], { input: sql, encoding: 'utf8' });
  assert.equal(r.status, 0, `sqlite3 failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** A data directory with the fixture tenant's file. */
function fixtureDir() {
  const dir = mkdtempSync(join(tmpdir(), 'dl-ops-'));
  const fixture = readFileSync(join(ROOT, 'tests/fixtures/dealer_ops.sql'), 'utf8');
  sqlite(join(dir, `${TENANT}.db`), schemaSql() + fixture);
  return dir;
}

/** A v1 client on the agent over stdio; close() checks the clean exit. */
async function connectStdio(name, extraArgs = []) {
  const dir = fixtureDir();
  const transport = new StdioClientTransport({
    command: agentBin(name),
    args: ['--data', dir, '--tenant', TENANT, ...extraArgs],
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  const wire = tapTransport(transport);
  const client = new Client({ name: 'agents-ops-test', version: '0.1.0' });
  await withDeadline(client.connect(transport), DEADLINE_MS, `${name} to initialize`);
  const child = transport._process;
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    client,
    wire,
    db: join(dir, `${TENANT}.db`),
    get stderr() { return stderr; },
    call: (name, args, meta) =>
      client.callTool({ name, arguments: args, ...(meta ? { _meta: meta } : {}) }, CallToolResultSchema),
    async close() {
      await client.close();
      const exit = await withDeadline(exited, DEADLINE_MS, `${name} to exit on stdin EOF`);
      assert.deepEqual(exit, { code: 0, signal: null }, `exit; stderr:\n${stderr}`);
    },
  };
}

test('each agent lists its tools, read-only ones annotated', async () => {
  const want = {
    finance: ['payment_quote', 'prequalify'],
    service: ['recall_lookup', 'service_slots', 'book_service'],
    parts: ['find_parts', 'part_availability', 'order_part'],
  };
  for (const [name, tools] of Object.entries(want)) {
    const a = await connectStdio(name);
    const { tools: listed } = await a.client.listTools();
    assert.deepEqual(listed.map((t) => t.name), tools);
    for (const t of listed) {
      assert.equal(t.inputSchema.type, 'object');
      const mutating = t.name === 'book_service' || t.name === 'order_part';
      assert.equal(t.annotations?.readOnlyHint, mutating ? undefined : true, t.name);
    }
    assert.equal(a.client.getServerVersion().name, `dealer-${name}`);
    await a.close();
  }
});

test('payment_quote: a vehicle by VIN with the known numbers', async () => {
  const a = await connectStdio('finance');
  try {
    const r = await a.call('payment_quote', { vin: '4T1C11AK9RU654321' });
    assert.equal(r.isError, undefined);
    const q = r.structuredContent;
    // 28500, 5% down (good credit), 6.875% tax, $125 + $150 fees, 6.99%, 60 months
    assert.equal(q.down_payment, 1425);
    assert.equal(q.sales_tax, 1959.38);
    assert.equal(q.amount_financed, 29309.38);
    assert.equal(q.monthly_payment, 580.22);
    // what the customer pays: 59 x 580.22, then 580.39 settling the cents
    assert.equal(q.final_payment, 580.39);
    assert.equal(q.total_of_payments, 34813.37);
    assert.equal(q.dealership, 'ns-minneapolis');
    assert.match(r.content[0].text, /^\$580\.22\/month for 60 months at 6\.99% APR/);
    assert.deepEqual(JSON.parse(r.content[0].text.split('\n')[1]), q);
    // arguments the desk cannot use are -32602 naming the argument
    await assert.rejects(a.call('payment_quote', { price: 20000, term_months: 66 }),
      (e) => e.code === -32602 && /term_months/.test(e.message));
  } finally {
    await a.close();
  }
});

test('book_service: the same idempotency key twice books once and answers the same', async () => {
  const a = await connectStdio('service');
  try {
    const args = { vin: '4T1B11HK8KU123456', service: 'recall 24V-051', customer_name: 'Dana Lee' };
    const first = await a.call('book_service', args, { [KEY]: 'run-1/book/1' });
    assert.equal(first.isError, undefined, first.content?.[0]?.text);
    assert.equal(first.structuredContent.booking_id, 'SV-1002');
    assert.equal(first.structuredContent.slot.slot_id, 3);
    const again = await a.call('book_service', args, { [KEY]: 'run-1/book/1' });
    assert.deepEqual(again.structuredContent, first.structuredContent);
    assert.equal(sqlite(a.db, "SELECT count(*) FROM service_bookings WHERE id <> 'SV-1001';"), '1');
    // the key with other arguments is refused
    await assert.rejects(a.call('book_service', { ...args, customer_name: 'Dana Leigh' }, { [KEY]: 'run-1/book/1' }),
      (e) => e.code === -32602 && /other arguments/.test(e.message));
    // the booked slot is taken now: a tool error, not a booking
    const taken = await a.call('book_service', { ...args, slot_id: 3 });
    assert.equal(taken.isError, true);
    assert.match(taken.content[0].text, /already taken/);
    // and the recall shows the booking
    const recall = await a.call('recall_lookup', { vin: '4T1B11HK8KU123456' });
    assert.equal(recall.structuredContent.recalls[0].booking_id, 'SV-1002');
    await assert.rejects(a.call('recall_lookup', { vin: '4T1B11HK0KU123456' }),
      (e) => e.code === -32602 && /'vin'/.test(e.message));
  } finally {
    await a.close();
  }
});

test('order_part reserves from stock under an idempotency key', async () => {
  const a = await connectStdio('parts');
  try {
    const found = await a.call('find_parts', { query: 'front brake pads', vin: '4T1B11HK8KU123456' });
    assert.deepEqual(found.structuredContent.parts.map((p) => p.part_number),
      ['TOY-BP-F-CAM', 'TOY-BR-F-CAM', 'TOY-BP-R-GEN']);
    const args = { part_number: 'TOY-BP-F-CAM', quantity: 3 };
    const o = await a.call('order_part', args, { [KEY]: 'run-2/parts/1' });
    const o2 = await a.call('order_part', args, { [KEY]: 'run-2/parts/1' });
    assert.deepEqual(o2.structuredContent, o.structuredContent);
    assert.equal(o.structuredContent.status, 'reserved');
    assert.equal(sqlite(a.db, "SELECT quantity FROM part_stock WHERE part_number = 'TOY-BP-F-CAM' " +
      "AND dealership_id = 'ns-stpaul';"), '2');
  } finally {
    await a.close();
  }
});

test('--http serves Streamable HTTP', async () => {
  const dir = fixtureDir();
  const proc = spawn(agentBin('service'), ['--http', '127.0.0.1:0', '--data', dir, '--tenant', TENANT],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  let stderr = '';
  const url = await withDeadline(new Promise((resolve, reject) => {
    proc.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
      const m = /serving MCP on (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(stderr);
      if (m) resolve(m[1]);
    });
    exited.then(() => reject(new Error(`dealer-service exited; stderr:\n${stderr}`)));
  }), DEADLINE_MS, 'the URL on stderr');
  const client = new Client({ name: 'agents-ops-test', version: '0.1.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  try {
    await withDeadline(client.connect(transport), DEADLINE_MS, 'connect over HTTP');
    const r = await client.callTool({ name: 'service_slots', arguments: { limit: 2 } }, CallToolResultSchema);
    assert.deepEqual(r.structuredContent.slots.map((s) => s.slot_id), [3, 4]);
    assert.equal(r.structuredContent.date, '2027-01-05');
    await transport.terminateSession().catch(() => {});
    await client.close();
  } finally {
    proc.kill('SIGTERM');
  }
  assert.deepEqual(await withDeadline(exited, DEADLINE_MS, 'exit on SIGTERM'), { code: 0, signal: null });
});

test('--delay-ms answers late without holding up the loop or the other call', async () => {
  const DELAY = 1500;
  const a = await connectStdio('finance', ['--delay-ms', String(DELAY)]);
  try {
    const from = a.wire.items.length;
    const started = Date.now();
    const quotes = [
      a.call('payment_quote', { price: 25000, apr: 6, down_payment: 0, credit_band: 'excellent' }),
      a.call('prequalify', { credit_score: 700 }),
    ];
    // Sent after both, answered first: the loop is free during the delay.
    const list = a.client.listTools();
    const [q, p] = await Promise.all(quotes);
    await list;
    assert.equal(q.structuredContent.term_months, 60);
    assert.equal(p.structuredContent.credit_band, 'good');
    const answers = a.wire.items.slice(from).filter((e) => e.dir === 'in' && e.msg.id !== undefined);
    const order = answers.map((e) => (e.msg.result?.tools ? 'list' : 'call'));
    assert.deepEqual(order, ['list', 'call', 'call']);
    // Each call waited the delay, and the two waited together: the second
    // answer came well within one delay of the first (one after the other
    // they would be a whole delay apart).
    for (const e of answers.slice(1)) assert.ok(e.t - started >= DELAY - 50, `answered after ${e.t - started} ms`);
    assert.ok(answers[2].t - answers[1].t < DELAY / 2,
      `answers ${answers[2].t - answers[1].t} ms apart: the calls did not overlap`);
  } finally {
    await a.close();
  }
});

test('a delayed call cancelled by the client is dropped, the agent goes on', async () => {
  const a = await connectStdio('finance', ['--delay-ms', '1000']);
  try {
    const ac = new AbortController();
    const from = a.wire.items.length;
    const pending = a.client.callTool({ name: 'prequalify', arguments: {} }, CallToolResultSchema, { signal: ac.signal });
    const sent = await a.wire.waitFor((e) => e.dir === 'out' && e.msg.method === 'tools/call', { from, what: 'the call sent' });
    ac.abort('test');
    await assert.rejects(pending);
    // Sent after the cancelled one and answered a whole delay later: had
    // the cancelled call been answered, its answer would be on the wire.
    const r = await a.call('prequalify', { credit_band: 'fair' });
    assert.equal(r.structuredContent.credit_band, 'fair');
    assert.equal(a.wire.items.find((e) => e.dir === 'in' && e.msg.id === sent.msg.id), undefined);
  } finally {
    await a.close();
  }
});
