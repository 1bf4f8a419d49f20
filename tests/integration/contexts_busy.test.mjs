// Back-pressure of the context store, end to end: with store.max_pending: 1
// a burst of concurrent creates finds the queue full. REST answers those
// with 503, Retry-After and {"error":{"code":"busy"}}; MCP with JSON-RPC
// error -31050. Every create that was acknowledged is stored; the refused
// ones left nothing behind, and the server serves normally afterwards.
// /readyz says busy while the queue is full (held by another process's
// SQLite write lock) and ready once it drains.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DEADLINE_MS, MODERN_VERSION, startHttpServer, withDeadline } from './lib/harness.mjs';
import { TENANTS, restClient, startTenantServer, writeTenantConfig } from './lib/contexts_common.mjs';

const BURST = 64;
const MAX_BURSTS = 20;

/** Have locker (a sqlite3 shell on the store) take the write lock. */
async function takeLock(locker) {
  const locked = new Promise((resolve, reject) => {
    let out = '';
    locker.stdout.on('data', (b) => { out += b; if (out.includes('locked')) resolve(); });
    locker.on('exit', (code) => reject(new Error(`sqlite3 exited ${code}`)));
  });
  locker.stdin.write("BEGIN EXCLUSIVE;\nSELECT 'locked';\n");
  await withDeadline(locked, DEADLINE_MS, 'sqlite3 taking the write lock');
}

async function busyServer() {
  const server = await startHttpServer({
    extraArgs: ['--config', writeTenantConfig('store:\n  max_pending: 1\n')],
  });
  server.base = server.url.replace(/\/mcp$/, '');
  return server;
}

test('REST: a full store queue is a 503 busy with Retry-After; acknowledged creates are all stored', async () => {
  const server = await busyServer();
  try {
    const a = restClient(server.base, TENANTS.a.token);
    let busy = null;
    const ids = [];
    // Bursts until one create is refused; each burst is concurrent.
    for (let burst = 0; !busy && burst < MAX_BURSTS; burst++) {
      const rs = await withDeadline(Promise.all(Array.from({ length: BURST }, () => a.create({}))),
        DEADLINE_MS, 'a burst of creates');
      for (const r of rs) {
        if (r.status === 201) ids.push(r.json.id);
        else if (r.status === 503) busy = r;
        else assert.fail(`unexpected ${r.status}: ${r.text}`);
      }
    }
    assert.ok(busy, `no create was refused in ${MAX_BURSTS} bursts of ${BURST}`);
    assert.equal(busy.headers['retry-after'], '1');
    assert.equal(busy.json.error.code, 'busy');
    assert.match(busy.json.error.message, /busy/);
    // One at a time, nothing is refused: every acknowledged create reads back.
    for (const id of ids) {
      const g = await a.get(id);
      assert.equal(g.status, 200, `acknowledged context ${id}: ${g.text}`);
    }
    const after = await a.create({});
    assert.equal(after.status, 201, after.text);
  } finally {
    await server.stop();
  }
});

test('MCP: a full store queue is JSON-RPC error -31050 on tools/call', async () => {
  const server = await busyServer();
  try {
    const call = async (id) => {
      const res = await fetch(server.url, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${TENANTS.a.token}`,
          'Content-Type': 'application/json',
          Accept: 'application/json, text/event-stream',
          'MCP-Protocol-Version': MODERN_VERSION,
          'Mcp-Method': 'tools/call',
          'Mcp-Name': 'context_create',
        },
        body: JSON.stringify({
          jsonrpc: '2.0', id, method: 'tools/call',
          params: {
            name: 'context_create', arguments: {},
            _meta: {
              'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
              'io.modelcontextprotocol/clientCapabilities': {},
            },
          },
        }),
      });
      return { status: res.status, json: await res.json() };
    };
    let busy = null;
    let created = 0;
    for (let burst = 0; !busy && burst < MAX_BURSTS; burst++) {
      const rs = await withDeadline(Promise.all(Array.from({ length: BURST }, (_, i) => call(i + 1))),
        DEADLINE_MS, 'a burst of tools/call');
      for (const r of rs) {
        assert.equal(r.status, 200);
        if (r.json.error) busy = r.json.error;
        else {
          assert.ok(r.json.result.structuredContent.id, JSON.stringify(r.json));
          created++;
        }
      }
    }
    assert.ok(busy, `no tools/call was refused in ${MAX_BURSTS} bursts of ${BURST}`);
    assert.equal(busy.code, -31050);
    assert.match(busy.message, /busy/);
    assert.ok(created > 0);
  } finally {
    await server.stop();
  }
});

test('/readyz answers 503 busy while the store queue is full, and 200 once it drains', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-readyz-'));
  const store = join(dir, 'store.db');
  const server = await startTenantServer({ store, config: 'store:\n  max_pending: 1\n' });
  // Another process holds SQLite's write lock: the store's writer waits on
  // it (up to its 5 s busy timeout), so one create fills the queue.
  const locker = spawn('sqlite3', ['-batch', store], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const a = restClient(server.base, TENANTS.a.token);
    const ready = async () => {
      const r = await fetch(`${server.base}/readyz`);
      return { status: r.status, json: await r.json() };
    };
    // Start-up's own store work (runs to resume, expiry) may hold the one
    // slot for a moment: ready once it is done.
    await withDeadline((async () => { while ((await ready()).status !== 200); })(),
      DEADLINE_MS, '/readyz ready after start-up');
    await takeLock(locker);

    const pendingCreate = a.create({});
    let busy;
    await withDeadline((async () => {
      for (;;) {
        busy = await ready();
        if (busy.status !== 200) return;
      }
    })(), DEADLINE_MS, '/readyz seeing the queued create');
    assert.equal(busy.status, 503, JSON.stringify(busy.json));
    assert.equal(busy.json.status, 'busy');
    assert.equal(busy.json.store.pending, 1, JSON.stringify(busy.json));
    assert.equal(busy.json.store.maxPending, 1, JSON.stringify(busy.json));

    locker.stdin.end('COMMIT;\n');
    const created = await withDeadline(pendingCreate, DEADLINE_MS, 'the held create');
    assert.equal(created.status, 201, created.text);
    const again = await withDeadline((async () => {
      for (;;) { const r = await ready(); if (r.status === 200) return r; }
    })(), DEADLINE_MS, '/readyz ready again once the create is stored');
    assert.equal(again.json.status, 'ready');
  } finally {
    locker.kill();
    await server.stop();
  }
});

test('a write lock another process holds past the busy timeout: 503 busy with Retry-After (was 500), then writes go through', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-locked-'));
  const store = join(dir, 'store.db');
  const server = await startTenantServer({ store });
  const locker = spawn('sqlite3', ['-batch', store], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const a = restClient(server.base, TENANTS.a.token);
    assert.equal((await a.create({})).status, 201);
    await takeLock(locker);
    // The store's writer waits its 5 s busy timeout, then gives up.
    const refused = await withDeadline(a.create({}), DEADLINE_MS, 'a create under the lock');
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.json.error.code, 'busy', refused.text);
    assert.match(refused.json.error.message, /database is locked/);
    assert.ok(Number(refused.headers['retry-after']) >= 1, JSON.stringify(refused.headers));
    locker.stdin.end('COMMIT;\n');
    await new Promise((resolve) => locker.once('exit', resolve));
    const created = await withDeadline(a.create({}), DEADLINE_MS, 'a create once the lock is let go');
    assert.equal(created.status, 201, created.text);
  } finally {
    locker.kill();
    await server.stop();
  }
});
