// Contexts under load and under a crash, end to end over REST:
// optimistic concurrency (If-Match) with 8 racing writers never loses or
// duplicates a version, every version a client saw acknowledged
// survives SIGKILL of the server, and a store file deleted under the
// server makes writes fail instead of being acknowledged into nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';

import { DEADLINE_MS, tempStorePath, withDeadline } from './lib/harness.mjs';
import { TENANTS, restClient, startTenantServer, stopClean } from './lib/contexts_common.mjs';

test('8 concurrent If-Match writers: every 200 is a distinct version in the history exactly once; the rest are 409', async () => {
  const WRITERS = 8;
  const ATTEMPTS = 25;
  const server = await startTenantServer();
  try {
    const a = restClient(server.base, TENANTS.a.token);
    const created = await a.create({ workflowId: 'race' });
    assert.equal(created.status, 201, created.text);
    const id = created.json.id;

    // Each writer: read, then PATCH with If-Match of what it read; on 409
    // it reads again. Every PATCH is one attempt.
    const writer = async (w) => {
      const accepted = []; // {version, attempt}
      const conflicts = [];
      const others = [];
      let read = await a.get(id);
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const seen = Number(JSON.parse(read.headers.etag));
        const r = await a.merge(id, seen, { data: { workflow: { variables: { [`w${w}`]: attempt, last: `w${w}:${attempt}` } } } });
        if (r.status === 200) {
          assert.equal(r.json.version, seen + 1, `writer ${w}: 200 for If-Match ${seen} must be version ${seen + 1}`);
          assert.equal(r.headers.etag, `"${seen + 1}"`);
          accepted.push({ version: r.json.version, attempt });
          read = r; // the response is the new head as far as we know
        } else if (r.status === 409) {
          assert.equal(r.json.error.code, 'conflict');
          assert.ok(r.json.error.currentVersion > seen, `409 names a newer version than ${seen}: ${r.text}`);
          conflicts.push(r.json.error.currentVersion);
          read = await a.get(id);
        } else {
          others.push(`${r.status} ${r.text}`);
          read = await a.get(id);
        }
      }
      return { w, accepted, conflicts, others };
    };
    const results = await withDeadline(Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w))),
      20000, 'the concurrent writers');

    const unexpected = results.flatMap((r) => r.others);
    assert.deepEqual(unexpected, [], 'every attempt was a 200 or a 409');
    const accepted = results.flatMap((r) => r.accepted.map((x) => ({ ...x, w: r.w })));
    const conflicts = results.reduce((n, r) => n + r.conflicts.length, 0);
    assert.equal(accepted.length + conflicts, WRITERS * ATTEMPTS);
    assert.ok(conflicts > 0, 'the writers really raced (some 409s)');
    const versions = accepted.map((x) => x.version);
    assert.equal(new Set(versions).size, versions.length, 'no version was acknowledged twice');

    const hist = await a.history(id, '?limit=1000');
    assert.equal(hist.status, 200, hist.text);
    const histVersions = hist.json.versions.map((v) => v.version);
    assert.equal(histVersions.length, accepted.length + 1, 'history = version 1 + one version per 200');
    assert.deepEqual(histVersions, Array.from({ length: accepted.length + 1 }, (_, i) => accepted.length + 1 - i),
      'versions 1..N, newest first, no gaps or repeats');
    for (const v of versions) assert.equal(histVersions.filter((x) => x === v).length, 1, `version ${v} appears exactly once`);

    // Each acknowledged version holds exactly the write that got the 200.
    const head = await a.get(id);
    assert.equal(head.json.version, accepted.length + 1);
    for (const x of accepted) {
      const entry = hist.json.versions.find((v) => v.version === x.version);
      assert.ok(entry.patch.some((op) => op.path === '/data/workflow/variables/last' && op.value === `w${x.w}:${x.attempt}`),
        `version ${x.version} is writer ${x.w}'s attempt ${x.attempt}: ${JSON.stringify(entry.patch)}`);
    }
    const last = accepted.reduce((m, x) => (x.version > m.version ? x : m));
    assert.equal(head.json.data.workflow.variables.last, `w${last.w}:${last.attempt}`);
    for (const r of results) {
      const mine = r.accepted.at(-1);
      if (mine) assert.equal(head.json.data.workflow.variables[`w${r.w}`], mine.attempt, `writer ${r.w}'s last accepted value`);
    }
  } finally {
    await stopClean(server);
  }
});

test('SIGKILL mid-stream: every acknowledged version survives a restart on the same store', async () => {
  const store = tempStorePath();
  const KILL_AFTER = 45; // past a snapshot boundary (snapshot_every 32)
  const server = await startTenantServer({ store });
  let id;
  const acked = [];
  const failures = [];
  try {
    const a = restClient(server.base, TENANTS.a.token);
    const created = await a.create({ workflowId: 'crash' });
    assert.equal(created.status, 201, created.text);
    id = created.json.id;
    acked.push(1);
    // Keep writing; once KILL_AFTER versions are acknowledged, SIGKILL the
    // server right after starting the next PATCH.
    let version = 1;
    let killed = false;
    const loop = (async () => {
      for (let i = 0; i < 10000; i++) {
        let r;
        try {
          const pending = a.merge(id, version, { data: { workflow: { variables: { step: i, tag: `v${version + 1}` } } } });
          if (acked.length >= KILL_AFTER && !killed) {
            // Kill with this PATCH under way: it may or may not have been
            // committed, but it was never acknowledged.
            killed = true;
            server.proc.kill('SIGKILL');
          }
          r = await pending;
        } catch (e) {
          failures.push(String(e));
          return; // the server is gone
        }
        if (r.status !== 200) {
          failures.push(`${r.status} ${r.text}`);
          return;
        }
        version = r.json.version;
        acked.push(version);
      }
    })();
    await withDeadline(loop, DEADLINE_MS, 'the write loop to end with the server killed');
    const exit = await withDeadline(server.exited, DEADLINE_MS, 'the killed server to exit');
    assert.equal(exit.signal, 'SIGKILL');
    assert.ok(failures.length === 1 && !/^\d{3} /.test(failures[0]), `the loop ended on the kill, not on an HTTP error: ${failures}`);
  } finally {
    if (server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL');
  }
  assert.ok(acked.length >= KILL_AFTER, `acknowledged ${acked.length} versions`);

  const again = await startTenantServer({ store });
  try {
    const a = restClient(again.base, TENANTS.a.token);
    const head = await a.get(id);
    assert.equal(head.status, 200, head.text);
    const lastAcked = acked.at(-1);
    assert.ok(head.json.version >= lastAcked, `head ${head.json.version} >= last acknowledged ${lastAcked}`);
    for (const v of acked) {
      const r = await a.get(id, `?version=${v}`);
      assert.equal(r.status, 200, `version ${v}: ${r.text}`);
      assert.equal(r.json.version, v);
      if (v > 1) assert.equal(r.json.data.workflow.variables.tag, `v${v}`, `version ${v} holds what was acknowledged`);
    }
    const hist = await a.history(id, '?limit=1000');
    assert.deepEqual(hist.json.versions.map((x) => x.version),
      Array.from({ length: head.json.version }, (_, i) => head.json.version - i), 'no gaps after the crash');
    // The store is writable after recovery.
    const next = await a.merge(id, head.json.version, { data: { workflow: { currentStep: 'recovered' } } });
    assert.equal(next.status, 200, next.text);
    assert.equal(next.json.version, head.json.version + 1);
  } finally {
    await stopClean(again);
  }
});

test('the store file deleted under a running server: creates fail (5xx), /readyz says store_lost, nothing acknowledged is lost', async () => {
  const store = tempStorePath();
  const server = await startTenantServer({ store });
  let kept;
  try {
    const a = restClient(server.base, TENANTS.a.token);
    const first = await a.create({ workflowId: 'before-rm' });
    assert.equal(first.status, 201, first.text);
    kept = first.json.id;
    for (const f of [store, `${store}-wal`, `${store}-shm`]) rmSync(f, { force: true });
    assert.ok(!existsSync(store));

    // Before: 201, and after a restart the context was gone.
    const second = await a.create({ workflowId: 'after-rm' });
    assert.ok(second.status >= 500, `a create after the file went must fail, got ${second.status} ${second.text}`);
    assert.match(second.json.error.message, /the store file .*switchboard\.db was deleted or replaced under the server: nothing was written/);
    const update = await a.merge(kept, 1, { data: { workflow: { currentStep: 'x' } } });
    assert.ok(update.status >= 500, `an update must fail too: ${update.status} ${update.text}`);

    const ready = await restClient(server.base, null).call('GET', '/readyz');
    assert.equal(ready.status, 503, ready.text);
    assert.equal(ready.json.status, 'store_lost');
    assert.equal(ready.json.store.lost, true);
    // said loudly, once
    await server.stderrMatch(/was deleted or replaced under the server/);
    assert.equal(server.stderr.match(/every write fails from now on/g).length, 1, server.stderr);
  } finally {
    await stopClean(server);
  }
});
