// The contexts REST API end to end (/v1/contexts): create, conditional
// reads, past versions, projections, merge and JSON patches with If-Match,
// the failure statuses, history and diff, against the real binary.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { TENANTS, applyPatch, connectSdk, restClient, sampleInput, startTenantServer, stopClean } from './lib/contexts_common.mjs';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

describe('contexts REST API', { timeout: 60000 }, () => {
  let server;
  let a;
  let v1; // the created document
  let id;
  let v3;

  before(async () => {
    server = await startTenantServer();
    a = restClient(server.base, TENANTS.a.token);
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  it('POST creates: 201, Location, ETag "1", server-set id/tenantId/version/timestamp', async () => {
    const before = Date.now();
    const r = await a.create(sampleInput('rest'));
    assert.equal(r.status, 201, r.text);
    v1 = r.json;
    id = v1.id;
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUIDv7 minted by the server');
    assert.equal(r.headers.location, `/v1/contexts/${id}`);
    assert.equal(r.headers.etag, '"1"');
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.equal(v1.tenantId, TENANTS.a.id, 'tenant from the bearer token');
    assert.equal(v1.version, 1);
    assert.match(v1.timestamp, RFC3339);
    assert.ok(Math.abs(Date.parse(v1.timestamp) - before) < 60000, `timestamp ${v1.timestamp} is now`);
    assert.match(v1.metadata.expiresAt, RFC3339);
    assert.ok(Date.parse(v1.metadata.expiresAt) > Date.now(), 'a default expiry in the future');
    // What we sent is kept; what we left out is filled.
    assert.equal(v1.workflowId, 'wf-rest');
    assert.equal(v1.data.conversation.messages.length, 7);
    assert.deepEqual(v1.data.workflow.completedSteps, []);
    assert.equal(v1.data.business.dealership && typeof v1.data.business.dealership, 'object');

    // Two creates get two ids.
    const r2 = await a.create({});
    assert.equal(r2.status, 201, r2.text);
    assert.notEqual(r2.json.id, id);
    assert.equal(r2.json.tenantId, TENANTS.a.id);

    // The caller's own tenantId is accepted (it changes nothing).
    const same = await a.create({ tenantId: TENANTS.a.id });
    assert.equal(same.status, 201, same.text);
    assert.equal(same.json.tenantId, TENANTS.a.id);
  });

  it('POST refuses another tenantId and server-owned fields with 422', async () => {
    const r = await a.create({ ...sampleInput('t'), tenantId: TENANTS.b.id });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.error.code, 'invalid');
    assert.match(r.json.error.message, /tenantId/);
    for (const field of [{ id: 'mine' }, { version: 9 }, { timestamp: '2026-01-01T00:00:00Z' }]) {
      const x = await a.create(field);
      assert.equal(x.status, 422, `${JSON.stringify(field)}: ${x.text}`);
      assert.match(x.json.error.message, new RegExp(Object.keys(field)[0]));
    }
    const bad = await a.create({ data: { conversation: { sentiment: 'angry' } } });
    assert.equal(bad.status, 422, bad.text);
    assert.match(bad.json.error.message, /data\.conversation\.sentiment/);
  });

  it('malformed JSON bodies are 400 bad_json', async () => {
    const r = await a.call('POST', '/v1/contexts', { body: '{"workflowId": ' });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.code, 'bad_json');
    const p = await a.call('PATCH', `/v1/contexts/${id}`,
      { body: '{"data": }', contentType: 'application/merge-patch+json', headers: { 'If-Match': '"1"' } });
    assert.equal(p.status, 400, p.text);
    assert.equal(p.json.error.code, 'bad_json');
    assert.equal((await a.get(id)).json.version, 1, 'a malformed patch changes nothing');
  });

  it('bodies nested past limits.max_json_depth are 400, as on /mcp (one parser for every surface)', async () => {
    const nest = (n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    // Default limit: 64 levels. The document itself is the first level.
    const deep = await a.call('POST', '/v1/contexts', { body: `{"data":{"workflow":{"variables":${nest(100)}}}}` });
    assert.equal(deep.status, 400, deep.text.slice(0, 300));
    assert.equal(deep.json.error.code, 'bad_json');
    assert.match(deep.json.error.message, /deeper than the limit of 64/);
    assert.match(deep.json.error.message, /max_json_depth/);
    const deepPatch = await a.call('PATCH', `/v1/contexts/${id}`,
      { body: `{"data":{"workflow":{"variables":${nest(2034)}}}}`, contentType: 'application/merge-patch+json', headers: { 'If-Match': '"1"' } });
    assert.equal(deepPatch.status, 400, deepPatch.text.slice(0, 300));
    assert.match(deepPatch.json.error.message, /deeper than the limit/);
    const deepCall = await a.call('POST', '/v1/agents/call', { body: `{"tool":"x","arguments":${nest(100)}}` });
    assert.equal(deepCall.status, 400, deepCall.text.slice(0, 300));
    assert.match(deepCall.json.error.message, /deeper than the limit/);
    // Within the limit it is an ordinary context.
    const ok = await a.call('POST', '/v1/contexts', { body: `{"data":{"workflow":{"variables":${nest(20)}}}}` });
    assert.equal(ok.status, 201, ok.text);
    assert.equal((await a.get(id)).json.version, 1, 'the deep patch changed nothing');
  });

  it('GET returns the document with its ETag; If-None-Match answers 304', async () => {
    const r = await a.get(id);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.etag, '"1"');
    assert.deepEqual(r.json, v1);
    const nm = await a.call('GET', `/v1/contexts/${id}`, { headers: { 'If-None-Match': '"1"' } });
    assert.equal(nm.status, 304);
    assert.equal(nm.text, '');
    assert.equal(nm.headers.etag, '"1"');
    const other = await a.call('GET', `/v1/contexts/${id}`, { headers: { 'If-None-Match': '"7"' } });
    assert.equal(other.status, 200);
    assert.deepEqual(other.json, v1);
  });

  it('PATCH applies a merge patch (If-Match "1" -> 200, ETag "2")', async () => {
    const r = await a.merge(id, 1, { data: { conversation: { intent: 'trade_in' }, workflow: { variables: { budget: null, color: 'red' } } } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.etag, '"2"');
    assert.equal(r.json.version, 2);
    assert.equal(r.json.data.conversation.intent, 'trade_in');
    assert.deepEqual(r.json.data.workflow.variables, { vin: '1HGCM82633A004352', color: 'red' }, 'null removed budget');
    assert.equal(r.json.id, id);
    assert.equal(r.json.tenantId, TENANTS.a.id);
    assert.ok(Date.parse(r.json.timestamp) >= Date.parse(v1.timestamp));
    // If-None-Match with the old ETag no longer matches.
    const nm = await a.call('GET', `/v1/contexts/${id}`, { headers: { 'If-None-Match': '"1"' } });
    assert.equal(nm.status, 200);
    assert.equal(nm.headers.etag, '"2"');
  });

  it('PATCH applies a JSON Patch (If-Match "2" -> 200, ETag "3")', async () => {
    const r = await a.jsonPatch(id, 2, [
      { op: 'add', path: '/data/conversation/messages/-', value: { role: 'user', content: 'm7' } },
      { op: 'replace', path: '/data/workflow/currentStep', value: 'appraise' },
      { op: 'test', path: '/data/workflow/variables/color', value: 'red' },
    ]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.etag, '"3"');
    v3 = r.json;
    assert.equal(v3.version, 3);
    assert.equal(v3.data.conversation.messages.length, 8);
    assert.equal(v3.data.conversation.messages.at(-1).content, 'm7');
    assert.equal(v3.data.workflow.currentStep, 'appraise');
    assert.deepEqual((await a.get(id)).json, v3, 'GET shows the head');
  });

  it('a stale If-Match is 409 with the current version; none is 428; wrong type 415', async () => {
    const stale = await a.merge(id, 1, { data: { conversation: { intent: 'lost update' } } });
    assert.equal(stale.status, 409, stale.text);
    assert.equal(stale.json.error.code, 'conflict');
    assert.equal(stale.json.error.currentVersion, 3);
    assert.equal(stale.headers.etag, '"3"');

    // Writers racing from the same version: one wins, every other is told
    // the same thing, whether the conflict was found before the write or
    // by the store's compare-and-set inside a batch of them.
    const race = (await a.create(sampleInput('race'))).json.id;
    const racers = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      a.merge(race, 1, { data: { workflow: { variables: { racer: i } } } })));
    assert.equal(racers.filter((x) => x.status === 200).length, 1, racers.map((x) => x.text).join('\n'));
    for (const x of racers.filter((y) => y.status !== 200)) {
      assert.equal(x.status, 409, x.text);
      assert.match(x.json.error.message, /^context \S+ is at version 2, not 1: read it again and reapply your change$/);
    }

    const none = await a.call('PATCH', `/v1/contexts/${id}`,
      { body: { data: {} }, contentType: 'application/merge-patch+json' });
    assert.equal(none.status, 428, none.text);
    assert.equal(none.json.error.code, 'precondition_required');

    const type = await a.call('PATCH', `/v1/contexts/${id}`,
      { body: { data: {} }, contentType: 'application/json', headers: { 'If-Match': '"3"' } });
    assert.equal(type.status, 415, type.text);
    assert.equal(type.json.error.code, 'unsupported_media_type');
    // A media type that only starts like one of ours is not it.
    for (const contentType of ['application/merge-patch+jsonx', 'application/json-patch+json-seq']) {
      const near = await a.call('PATCH', `/v1/contexts/${id}`,
        { body: { data: {} }, contentType, headers: { 'If-Match': '"3"' } });
      assert.equal(near.status, 415, `${contentType}: ${near.text}`);
    }

    const head = await a.get(id);
    assert.deepEqual(head.json, v3, 'none of them changed the context');
  });

  it('If-Match: a weak tag, "0" or a padded "03" is 412; an overflowing or malformed version, * or a list is 400 naming the header', async () => {
    const patch = (ifMatch) => a.call('PATCH', `/v1/contexts/${id}`,
      { body: { data: { conversation: { intent: 'should not stick' } } }, contentType: 'application/merge-patch+json', headers: { 'If-Match': ifMatch } });
    // RFC 9110 13.1.1: If-Match uses the strong comparison, so W/"3"
    // matches nothing, not even the current version.
    for (const tag of ['W/"3"', 'W/"1"']) {
      const weak = await patch(tag);
      assert.equal(weak.status, 412, `${tag}: ${weak.text}`);
      assert.equal(weak.json.error.code, 'precondition_failed');
      assert.match(weak.json.error.message, /If-Match/);
    }
    for (const tag of ['"99999999999999999999999"', '"9223372036854775808"', '"-1"', '"3', '"3x"', 'abc', '"03"x', '"0x"']) {
      const bad = await patch(tag);
      assert.equal(bad.status, 400, `${tag}: ${bad.text}`);
      assert.equal(bad.json.error.code, 'bad_request');
      assert.match(bad.json.error.message, /If-Match/);
    }
    // Well formed, but no version is 0: it matches nothing (412), as a
    // stale version would if it could not be named.
    const zero = await patch('"0"');
    assert.equal(zero.status, 412, zero.text);
    assert.equal(zero.json.error.message, 'If-Match: "0" matches no version (versions start at 1)');
    // "03" is a well-formed entity tag that is none of ours: 412, saying why
    for (const tag of ['"03"', '0003']) {
      const padded = await patch(tag);
      assert.equal(padded.status, 412, `${tag}: ${padded.text}`);
      assert.match(padded.json.error.message, /^If-Match: a version with leading zeros matches no ETag/, padded.text);
    }
    // Each says what to send instead.
    for (const [tag, message] of [['*', /^If-Match: \* does not say which version you read/],
      ['"2", "3"', /^If-Match: one version, the one you read, not a list$/]]) {
      const r = await patch(tag);
      assert.equal(r.status, 400, `${tag}: ${r.text}`);
      assert.match(r.json.error.message, message, r.text);
    }
    const head = await a.get(id);
    assert.deepEqual(head.json, v3, 'none of them changed the context');
  });

  it('a patch that makes the context invalid is 422 naming the field; nothing changes', async () => {
    const r = await a.merge(id, 3, { data: { conversation: { sentiment: 'angry', intent: 'should not stick' } } });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.error.code, 'invalid');
    assert.match(r.json.error.message, /data\.conversation\.sentiment/);
    assert.match(r.json.error.message, /angry/);
    const j = await a.jsonPatch(id, 3, [{ op: 'replace', path: '/data/conversation/sentiment', value: 'angry' }]);
    assert.equal(j.status, 422, j.text);
    assert.match(j.json.error.message, /data\.conversation\.sentiment/);
    // A JSON Patch whose target does not exist is refused too.
    const missing = await a.jsonPatch(id, 3, [{ op: 'replace', path: '/data/conversation/nope', value: 1 }]);
    assert.equal(missing.status, 422, missing.text);
    // Server-owned fields cannot be patched.
    const owned = await a.merge(id, 3, { tenantId: TENANTS.b.id });
    assert.equal(owned.status, 422, owned.text);
    assert.match(owned.json.error.message, /tenantId/);
    // So are the ones switchboard sets on each version: refused, not
    // silently overruled by a new version.
    for (const [what, r] of [
      ['merge version', await a.merge(id, 3, { version: 100 })],
      ['merge timestamp', await a.merge(id, 3, { timestamp: 'garbage' })],
      ['JSON Patch version', await a.jsonPatch(id, 3, [{ op: 'replace', path: '/version', value: 7 }])],
      ['JSON Patch timestamp', await a.jsonPatch(id, 3, [{ op: 'remove', path: '/timestamp' }])],
    ]) {
      assert.equal(r.status, 422, `${what}: ${r.text}`);
      assert.match(r.json.error.message, /^(version|timestamp): cannot be changed by an update$/, what);
    }

    const head = await a.get(id);
    assert.equal(head.headers.etag, '"3"');
    assert.deepEqual(head.json, v3, 'the context is unchanged');
    assert.equal((await a.history(id)).json.versions.length, 3, 'no version was added');
    // Copies double the document at will: 40 ops (2 KB) once asked for
    // 2^40 copies of it, memory the server does not have. They may copy
    // no more than a context may hold (contexts.max_bytes, 4 MiB).
    const bomb = Array.from({ length: 40 }, (_, i) => ({ op: 'copy', from: '/data/conversation', path: `/data/conversation/entities/c${i}` }));
    const b = await a.jsonPatch(id, 3, bomb);
    assert.equal(b.status, 413, b.text);
    assert.equal(b.json.error.code, 'too_large');
    assert.match(b.json.error.message, /^patch\[\d+\] copy \/data\/conversation\/entities\/c\d+: the patch's copies would add over 4194304 bytes/);
    assert.equal((await a.get(id)).headers.etag, '"3"', 'nothing changed');
  });

  it('?version=N reads past versions; a version past the head is 404', async () => {
    const r1 = await a.get(id, '?version=1');
    assert.equal(r1.status, 200, r1.text);
    assert.deepEqual(r1.json, v1);
    assert.equal(r1.headers.etag, '"1"');
    const r2 = await a.get(id, '?version=2');
    assert.equal(r2.json.version, 2);
    assert.equal(r2.json.data.conversation.intent, 'trade_in');
    assert.equal(r2.json.data.conversation.messages.length, 7);
    assert.deepEqual((await a.get(id, '?version=3')).json, v3);
    const past = await a.get(id, '?version=4');
    assert.equal(past.status, 404, past.text);
    assert.equal(past.json.error.code, 'not_found');
    const bad = await a.get(id, '?version=zero');
    assert.equal(bad.status, 400, bad.text);
  });

  it('?requirements=... returns only those parts plus the missing paths', async () => {
    const q = new URLSearchParams({ requirements: 'conversation.messages[-5:],workflow.variables.vin,user.profile.age' });
    const r = await a.get(id, `?${q}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, {
      id,
      version: 3,
      data: {
        conversation: { messages: v3.data.conversation.messages.slice(-5) },
        workflow: { variables: { vin: '1HGCM82633A004352' } },
      },
      missing: ['user.profile.age'],
    });
    // The raw (unencoded) form works too.
    const raw = await a.get(id, '?requirements=conversation.messages[-5:],workflow.variables.vin');
    assert.equal(raw.status, 200, raw.text);
    assert.deepEqual(raw.json.data.conversation.messages.map((m) => m.content), ['m3', 'm4', 'm5', 'm6', 'm7']);
    assert.deepEqual(raw.json.missing, []);
    const bad = await a.get(id, `?${new URLSearchParams({ requirements: 'nosuchsection.x' })}`);
    assert.equal(bad.status, 400, bad.text);
  });

  it('history lists every version newest first with the patch that made it', async () => {
    const r = await a.history(id);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, id);
    const versions = r.json.versions;
    assert.deepEqual(versions.map((v) => v.version), [3, 2, 1]);
    for (const v of versions) assert.match(v.timestamp, RFC3339);
    const docs = { 1: v1, 2: (await a.get(id, '?version=2')).json, 3: v3 };
    for (const n of [2, 3]) {
      const entry = versions.find((v) => v.version === n);
      assert.ok(Array.isArray(entry.patch) && entry.patch.length > 0, `version ${n} has a patch: ${JSON.stringify(entry)}`);
      assert.deepEqual(applyPatch(docs[n - 1], entry.patch), docs[n], `history patch of version ${n} turns ${n - 1} into ${n}`);
    }
    const page = await a.history(id, '?before=3&limit=1');
    assert.deepEqual(page.json.versions.map((v) => v.version), [2]);
  });

  it('diff gives the JSON Patch between two versions, either way', async () => {
    const r = await a.diff(id, 1, 3);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, id);
    assert.equal(r.json.from, 1);
    assert.equal(r.json.to, 3);
    assert.deepEqual(applyPatch(v1, r.json.patch), v3);
    const back = await a.diff(id, 3, 1);
    assert.deepEqual(applyPatch(v3, back.json.patch), v1);
    const same = await a.diff(id, 2, 2);
    assert.deepEqual(same.json.patch, []);
    const bad = await a.call('GET', `/v1/contexts/${id}/diff?from=1`);
    assert.equal(bad.status, 400, bad.text);
    const past = await a.diff(id, 1, 9);
    assert.equal(past.status, 404, past.text);
  });

  it('unknown ids are 404 not_found; other methods are 405', async () => {
    for (const r of [await a.get('no-such-context'), await a.history('no-such-context'), await a.merge('no-such-context', 1, {})]) {
      assert.equal(r.status, 404, r.text);
      assert.equal(r.json.error.code, 'not_found');
    }
    const del = await a.call('DELETE', `/v1/contexts/${id}`);
    assert.equal(del.status, 405, del.text);
    assert.match(del.headers.allow, /GET/);
    const put = await a.call('GET', '/v1/contexts');
    assert.equal(put.status, 405, put.text);
  });
});

describe('contexts.max_bytes', { timeout: 60000 }, () => {
  let server;
  let a;
  before(async () => {
    server = await startTenantServer({ config: 'contexts:\n  max_bytes: 4096' });
    a = restClient(server.base, TENANTS.a.token);
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  it('a context that would pass the limit is 413 naming both sizes; nothing changes', async () => {
    const notes = 'x'.repeat(5000);
    const big = await a.create({ data: { workflow: { variables: { notes } } } });
    assert.equal(big.status, 413, big.text);
    assert.equal(big.json.error.code, 'too_large');
    assert.match(big.json.error.message, /^the context would be \d+ bytes, over the limit of 4096 \(contexts\.max_bytes\)$/);

    const r = await a.create({ data: { workflow: { variables: { notes: 'short' } } } });
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    const grown = await a.merge(id, 1, { data: { workflow: { variables: { notes } } } });
    assert.equal(grown.status, 413, grown.text);
    assert.match(grown.json.error.message, /over the limit of 4096/);
    const copies = Array.from({ length: 20 }, (_, i) => ({ op: 'copy', from: '/data/workflow', path: `/data/workflow/variables/c${i}` }));
    const bomb = await a.jsonPatch(id, 1, copies);
    assert.equal(bomb.status, 413, bomb.text);
    assert.match(bomb.json.error.message, /the patch's copies would add over 4096 bytes/);
    const head = await a.get(id);
    assert.equal(head.headers.etag, '"1"', 'no version was added');
    assert.equal(head.json.data.workflow.variables.notes, 'short');

    // the MCP tools say the same, as a tool error the model can act on
    const c = await connectSdk('modern', 'http', { url: server.url, token: TENANTS.a.token });
    try {
      const u = await c.callTool('context_update', { id, expectedVersion: 1, mergePatch: { data: { workflow: { variables: { notes } } } } });
      assert.equal(u.isError, true);
      assert.equal(u.structuredContent.error, 'too_large');
      assert.match(u.structuredContent.message, /over the limit of 4096/);
    } finally {
      await c.close();
    }
  });
});
