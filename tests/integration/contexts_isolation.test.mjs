// Tenant isolation of contexts end to end: over REST, MCP tools, MCP
// resources and resource subscriptions, another tenant's context must be
// indistinguishable from one that does not exist, and its changes must
// never reach another tenant's listeners. The notes of note_write
// (switchboard://notes/...) are each tenant's own likewise.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ResourceListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import { DEADLINE_MS, PROMPT_MS, withDeadline } from './lib/harness.mjs';
import {
  TENANTS,
  connectSdk,
  contextUri,
  isContextUpdate,
  restClient,
  sampleInput,
  startTenantServer,
  stopClean,
  withoutId,
} from './lib/contexts_common.mjs';

/** Normalise a REST answer so answers about two different ids compare. */
const restShape = (r, id) => ({ status: r.status, etag: r.headers.etag, body: withoutId(r.text, id) });
/** Same for a tool result. */
const toolShape = (r, id) => ({
  isError: r.isError,
  structured: JSON.parse(withoutId(JSON.stringify(r.structuredContent ?? null), id)),
  text: withoutId((r.content || []).map((c) => c.text).join('\n'), id),
});

async function settle(promise) {
  return withDeadline(promise.then((value) => ({ value }), (error) => ({ error })), DEADLINE_MS, 'a request');
}

describe('tenant isolation of contexts', { timeout: 60000 }, () => {
  let server;
  let a;
  let b;
  let idA;
  let idB;
  let docA; // dealer-a's context at version 2
  const ghost = randomUUID(); // an id nobody has
  const clients = [];

  before(async () => {
    server = await startTenantServer();
    a = restClient(server.base, TENANTS.a.token);
    b = restClient(server.base, TENANTS.b.token);
    const ca = await a.create(sampleInput('a'));
    assert.equal(ca.status, 201, ca.text);
    idA = ca.json.id;
    const pa = await a.merge(idA, 1, { data: { conversation: { intent: 'second' } } });
    assert.equal(pa.status, 200, pa.text);
    docA = pa.json;
    const cb = await b.create(sampleInput('b'));
    assert.equal(cb.status, 201, cb.text);
    idB = cb.json.id;
    assert.equal(cb.json.tenantId, TENANTS.b.id);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    if (server) await stopClean(server);
  });

  it('REST: dealer-b on dealer-a\'s id gets exactly what an unknown id gets', async () => {
    const ops = {
      get: (id) => b.get(id),
      'get ?version=1': (id) => b.get(id, '?version=1'),
      'get ?requirements': (id) => b.get(id, '?requirements=workflow.variables.vin'),
      'get If-None-Match': (id) => b.call('GET', `/v1/contexts/${id}`, { headers: { 'If-None-Match': '"2"' } }),
      'merge patch': (id) => b.merge(id, 2, { data: { conversation: { intent: 'hijacked' } } }),
      'json patch': (id) => b.jsonPatch(id, 2, [{ op: 'replace', path: '/data/conversation/intent', value: 'hijacked' }]),
      'stale merge patch': (id) => b.merge(id, 1, { data: { conversation: { intent: 'hijacked' } } }),
      history: (id) => b.history(id),
      diff: (id) => b.diff(id, 1, 2),
    };
    for (const [name, op] of Object.entries(ops)) {
      const theirs = await op(idA);
      const nobodys = await op(ghost);
      assert.equal(theirs.status, 404, `${name} on another tenant's id: ${theirs.status} ${theirs.text}`);
      assert.equal(theirs.json?.error?.code, 'not_found', `${name}: ${theirs.text}`);
      assert.deepEqual(restShape(theirs, idA), restShape(nobodys, ghost), `${name}: another tenant's id vs an unknown id`);
    }
    // The owner still sees it, unchanged by dealer-b's attempts.
    const mine = await a.get(idA);
    assert.equal(mine.status, 200);
    assert.deepEqual(mine.json, docA);
    assert.equal((await a.history(idA)).json.versions.length, 2);
  });

  it('missing or unknown bearer tokens are 401 on REST and on /mcp', async () => {
    const anon = restClient(server.base, null);
    const wrong = restClient(server.base, 'not-a-configured-token-at-all');
    for (const c of [anon, wrong]) {
      for (const r of [await c.get(idA), await c.create({}), await c.merge(idA, 2, {}), await c.history(idA)]) {
        assert.equal(r.status, 401, r.text);
        assert.equal(r.headers['www-authenticate'], 'Bearer');
        assert.ok(!r.text.includes(idA.slice(-12)) && !r.text.includes('second'), 'a 401 reveals nothing of the context');
      }
    }
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
    for (const auth of [undefined, 'Bearer not-a-configured-token-at-all', `Basic ${TENANTS.a.token}`]) {
      const headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': '2026-07-28' };
      if (auth) headers.Authorization = auth;
      const r = await fetch(server.url, { method: 'POST', headers, body });
      assert.equal(r.status, 401, `${auth}: ${await r.text()}`);
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    }
    // The official clients cannot connect without a valid token either.
    for (const era of ['modern', 'legacy']) {
      const out = await settle(connectSdk(era, 'http', { url: server.url, token: 'not-a-configured-token-at-all' }));
      if (out.value) clients.push(out.value);
      assert.ok(out.error, `${era} client connected with an unknown token`);
    }
    // Nothing was created by the refused calls.
    assert.equal((await a.get(idA)).json.version, 2);
  });

  for (const era of ['modern', 'legacy']) {
    it(`MCP tools and resources (${era} client over HTTP): another tenant's id is an unknown id`, async () => {
      const c = await connectSdk(era, 'http', { url: server.url, token: TENANTS.b.token });
      clients.push(c);
      const calls = {
        'context_get': (id) => ['context_get', { id }],
        'context_get version': (id) => ['context_get', { id, version: 1 }],
        'context_get requirements': (id) => ['context_get', { id, requirements: ['workflow.variables.vin'] }],
        'context_update merge': (id) => ['context_update', { id, expectedVersion: 2, mergePatch: { data: { conversation: { intent: 'hijacked' } } } }],
        'context_update patch': (id) => ['context_update', { id, expectedVersion: 2, patch: [{ op: 'replace', path: '/data/conversation/intent', value: 'hijacked' }] }],
        'context_history': (id) => ['context_history', { id }],
        'context_diff': (id) => ['context_diff', { id, from: 1, to: 2 }],
      };
      for (const [name, make] of Object.entries(calls)) {
        const theirs = await c.callTool(...make(idA));
        const nobodys = await c.callTool(...make(ghost));
        assert.equal(theirs.isError, true, `${name}: ${JSON.stringify(theirs)}`);
        assert.equal(theirs.structuredContent?.error, 'not_found', `${name}: ${JSON.stringify(theirs)}`);
        assert.equal(theirs.structuredContent?.currentVersion, undefined, `${name} leaks a version`);
        assert.deepEqual(toolShape(theirs, idA), toolShape(nobodys, ghost), `${name}: another tenant's id vs an unknown id`);
      }
      for (const version of [undefined, 1]) {
        const theirs = await settle(c.readResource(contextUri(idA, version)));
        const nobodys = await settle(c.readResource(contextUri(ghost, version)));
        assert.ok(theirs.error, `resources/read ${contextUri(idA, version)} by dealer-b succeeded: ${JSON.stringify(theirs.value)}`);
        assert.ok(nobodys.error);
        assert.equal(theirs.error.code, nobodys.error.code, 'same JSON-RPC error code');
        assert.equal(withoutId(theirs.error.message, idA), withoutId(nobodys.error.message, ghost));
        assert.deepEqual(JSON.parse(withoutId(JSON.stringify(theirs.error.data ?? null), idA)),
          JSON.parse(withoutId(JSON.stringify(nobodys.error.data ?? null), ghost)));
      }
      // dealer-b's own context is readable through the same connection, so
      // the refusals above are about the tenant, not the connection.
      const own = await c.readResource(contextUri(idB));
      assert.equal(JSON.parse(own.contents[0].text).id, idB);
      const ownTool = await c.callTool('context_get', { id: idB });
      assert.notEqual(ownTool.isError, true);
      assert.equal(ownTool.structuredContent.tenantId, TENANTS.b.id);
      assert.deepEqual((await a.get(idA)).json, docA, 'dealer-a\'s context is untouched');
    });
  }

  it('a dealer-b subscriber gets no notification when dealer-a\'s context changes', async () => {
    // dealer-a's own listener is the positive control: the change does notify.
    const ownerListener = await connectSdk('modern', 'http', { url: server.url, token: TENANTS.a.token });
    clients.push(ownerListener);
    const ownerSub = await ownerListener.subscribe([contextUri(idA)]);
    assert.deepEqual(ownerSub.honored.resourceSubscriptions, [contextUri(idA)]);

    const modernB = await connectSdk('modern', 'http', { url: server.url, token: TENANTS.b.token });
    const legacyB = await connectSdk('legacy', 'http', { url: server.url, token: TENANTS.b.token });
    clients.push(modernB, legacyB);
    const subModern = await modernB.subscribe([contextUri(idA), contextUri(idB)]);
    // Whether the filter is honoured must not depend on whose id it is.
    const probe = await connectSdk('modern', 'http', { url: server.url, token: TENANTS.b.token });
    clients.push(probe);
    const probeSub = await probe.subscribe([contextUri(ghost), contextUri(idB)]);
    assert.deepEqual(
      JSON.parse(withoutId(JSON.stringify(subModern.honored), idA)),
      JSON.parse(withoutId(JSON.stringify(probeSub.honored), ghost)),
      'the honoured filter for another tenant\'s id looks like one for an unknown id');
    await legacyB.subscribe([contextUri(idA), contextUri(idB)]);

    const fromOwner = ownerListener.notifications.items.length;
    const fromModern = modernB.notifications.items.length;
    const fromLegacy = legacyB.notifications.items.length;
    const ua = await a.merge(idA, 2, { data: { conversation: { intent: 'third' } } });
    assert.equal(ua.status, 200, ua.text);
    await ownerListener.notifications.waitFor((n) => isContextUpdate(n) && n.params.uri === contextUri(idA),
      { from: fromOwner, timeoutMs: PROMPT_MS, what: `the owner's update for ${contextUri(idA)}` });
    const ub = await b.merge(idB, 1, { data: { conversation: { intent: 'own change' } } });
    assert.equal(ub.status, 200, ub.text);

    for (const [name, c, from] of [['modern', modernB, fromModern], ['legacy', legacyB, fromLegacy]]) {
      const first = await c.notifications.waitFor(isContextUpdate,
        { from, timeoutMs: PROMPT_MS, what: `dealer-b's ${name} listener: its own context's update` });
      assert.equal(first.params.uri, contextUri(idB),
        `dealer-b's ${name} listener got ${JSON.stringify(first)} first: dealer-a's change leaked`);
      assert.ok(!c.notifications.since(from).some((n) => JSON.stringify(n).includes(idA)),
        `dealer-b's ${name} listener saw dealer-a's id`);
    }
    assert.ok(!ownerListener.notifications.since(fromOwner).some((n) => JSON.stringify(n).includes(idB)),
      'dealer-a\'s listener saw dealer-b\'s id');
    await subModern.close();
    await probeSub.close();
    await ownerSub.close();
  });

  it('notes are each tenant\'s own: not listed, read, completed or announced to another', async () => {
    const noteUri = (name) => `switchboard://notes/${name}`;
    const ownerA = await connectSdk('legacy', 'http', { url: server.url, token: TENANTS.a.token });
    const listenerB = await connectSdk('legacy', 'http', { url: server.url, token: TENANTS.b.token });
    clients.push(ownerA, listenerB);
    listenerB.client.setNotificationHandler(ResourceListChangedNotificationSchema,
      (n) => listenerB.notifications.push(n));
    await listenerB.subscribe([noteUri('deal-a'), noteUri('deal-b'), noteUri('shared')]);
    const from = listenerB.notifications.items.length;

    assert.notEqual((await ownerA.callTool('note_write', { name: 'deal-a', text: 'Maya Johnson, 30k' })).isError, true);
    assert.notEqual((await ownerA.callTool('note_write', { name: 'shared', text: 'dealer-a\'s' })).isError, true);
    // dealer-b's own write is the positive control: its update arrives,
    // and nothing of dealer-a's (written before it) came first.
    assert.notEqual((await listenerB.callTool('note_write', { name: 'deal-b', text: 'its own' })).isError, true);
    const own = await listenerB.notifications.waitFor((n) => n.params?.uri === noteUri('deal-b'),
      { from, timeoutMs: PROMPT_MS, what: 'dealer-b\'s update for its own note' });
    const before = listenerB.notifications.items.slice(from, listenerB.notifications.items.indexOf(own));
    assert.deepEqual(before, [], `dealer-b heard of dealer-a's notes: ${JSON.stringify(before)}`);

    const listed = (await listenerB.client.listResources()).resources.map((r) => r.uri);
    assert.ok(listed.includes(noteUri('deal-b')), listed.join());
    assert.ok(!listed.includes(noteUri('deal-a')) && !listed.includes(noteUri('shared')), `dealer-b lists dealer-a's notes: ${listed}`);
    for (const name of ['deal-a', 'shared']) {
      await assert.rejects(listenerB.readResource(noteUri(name)), (e) => /Resource not found/.test(e.message), name);
    }
    const done = await listenerB.client.complete({ ref: { type: 'ref/resource', uri: 'switchboard://notes/{name}' }, argument: { name: 'name', value: '' } });
    assert.deepEqual(done.completion.values, ['deal-b']);
    // The same name in each tenant is two notes.
    assert.notEqual((await listenerB.callTool('note_write', { name: 'shared', text: 'dealer-b\'s' })).isError, true);
    assert.equal((await ownerA.readResource(noteUri('shared'))).contents[0].text, 'dealer-a\'s');
    assert.equal((await listenerB.readResource(noteUri('shared'))).contents[0].text, 'dealer-b\'s');
  });
});
