// Expired contexts (metadata.expiresAt in the past) cannot be read through
// any interface: REST, MCP tools and resources (HTTP and stdio), the CLI.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { DEADLINE_MS, tempStorePath, withDeadline } from './lib/harness.mjs';
import {
  TENANTS,
  connectSdk,
  contextUri,
  restClient,
  runCli,
  sampleInput,
  startTenantServer,
  stopClean,
  withoutId,
} from './lib/contexts_common.mjs';

const PAST = '2020-01-01T00:00:00Z';
const ghost = '01a2121b-0000-7000-8000-00000000dead';

async function settle(promise) {
  return withDeadline(promise.then((value) => ({ value }), (error) => ({ error })), DEADLINE_MS, 'a request');
}

/** Every MCP read/write of `id` fails like the same call on an unknown id. */
async function assertMcpNotFound(c, id) {
  const calls = [
    ['context_get', { id }],
    ['context_get', { id, version: 1 }],
    ['context_get', { id, requirements: ['workflow.variables.vin'] }],
    ['context_update', { id, expectedVersion: 1, mergePatch: { data: { conversation: { intent: 'revived' } } } }],
    ['context_history', { id }],
    ['context_diff', { id, from: 1, to: 1 }],
  ];
  for (const [name, args] of calls) {
    const r = await c.callTool(name, args);
    assert.equal(r.isError, true, `${name} ${JSON.stringify(args)} on an expired context: ${JSON.stringify(r)}`);
    assert.equal(r.structuredContent.error, 'not_found', `${name}: ${JSON.stringify(r.structuredContent)}`);
    const u = await c.callTool(name, { ...args, id: ghost });
    assert.equal(withoutId(r.structuredContent.message, id), withoutId(u.structuredContent.message, ghost));
  }
  for (const uri of [contextUri(id), contextUri(id, 1)]) {
    const r = await settle(c.readResource(uri));
    assert.ok(r.error, `resources/read ${uri} of an expired context: ${JSON.stringify(r.value)}`);
    assert.equal(r.error.code, c.era === 'modern' ? -32602 : -32002, String(r.error));
  }
}

describe('expired contexts are unreadable everywhere', { timeout: 60000 }, () => {
  const store = tempStorePath();
  let server;
  let a;
  let expiredRest;
  let expiredMcp;
  const clients = [];

  before(async () => {
    server = await startTenantServer({ store });
    a = restClient(server.base, TENANTS.a.token);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    if (server) await stopClean(server);
  });

  it('REST: a context created already expired answers 404 to every request', async () => {
    const c = await a.create({ ...sampleInput('exp'), metadata: { expiresAt: PAST } });
    assert.equal(c.status, 201, c.text);
    expiredRest = c.json.id;
    assert.equal(c.json.metadata.expiresAt, PAST);
    const live = await a.create(sampleInput('live'));
    assert.equal((await a.get(live.json.id)).status, 200, 'a live context of the same tenant reads fine');
    const reqs = [
      (id) => a.get(id),
      (id) => a.get(id, '?version=1'),
      (id) => a.get(id, '?requirements=workflow.variables.vin'),
      (id) => a.merge(id, 1, { metadata: { expiresAt: '2099-01-01T00:00:00Z' } }),
      (id) => a.history(id),
      (id) => a.diff(id, 1, 1),
    ];
    for (const req of reqs) {
      const r = await req(expiredRest);
      const u = await req(ghost);
      assert.equal(r.status, 404, `${req}: ${r.status} ${r.text}`);
      assert.equal(r.json.error.code, 'not_found');
      assert.equal(withoutId(r.text, expiredRest), withoutId(u.text, ghost), 'exactly like an unknown id');
    }
  });

  it('REST: a context becomes unreadable once its expiresAt passes', async () => {
    const soon = new Date(Date.now() + 1000).toISOString();
    const c = await a.create({ metadata: { expiresAt: soon } });
    assert.equal(c.status, 201, c.text);
    assert.equal((await a.get(c.json.id)).status, 200, 'readable before it expires');
    // Poll with a deadline: the change is driven by the clock, not by an event.
    const deadline = Date.now() + 5000;
    let r;
    do {
      r = await a.get(c.json.id);
      if (r.status === 404) break;
      assert.equal(r.status, 200, r.text);
      await new Promise((res) => setTimeout(res, 50));
    } while (Date.now() < deadline);
    assert.equal(r.status, 404, `still readable 4 s after expiresAt ${soon}`);
    assert.ok(Date.now() >= Date.parse(soon), 'not before its expiresAt');
  });

  for (const era of ['modern', 'legacy']) {
    it(`MCP over HTTP (${era} client): tools and resources treat an expired context as unknown`, async () => {
      const c = await connectSdk(era, 'http', { url: server.url, token: TENANTS.a.token });
      clients.push(c);
      await assertMcpNotFound(c, expiredRest);
      const made = await c.callTool('context_create', { metadata: { expiresAt: PAST } });
      assert.notEqual(made.isError, true, JSON.stringify(made));
      expiredMcp = made.structuredContent.id;
      await assertMcpNotFound(c, expiredMcp);
      assert.equal((await a.get(expiredMcp)).status, 404, 'and over REST');
    });
  }

  it('MCP over stdio: an expired context is unknown', async () => {
    const c = await connectSdk('legacy', 'stdio', { stdioArgs: ['--store', tempStorePath()] });
    clients.push(c);
    const made = await c.callTool('context_create', { metadata: { expiresAt: PAST } });
    assert.notEqual(made.isError, true, JSON.stringify(made));
    await assertMcpNotFound(c, made.structuredContent.id);
    const live = await c.callTool('context_create', {});
    assert.notEqual((await c.callTool('context_get', { id: live.structuredContent.id })).isError, true);
  });

  it('CLI: get, history and diff of an expired context exit 1 "not found"', async () => {
    for (const args of [['get', expiredRest], ['get', expiredRest, '--version', '1'], ['history', expiredRest], ['diff', expiredRest, '1', '1']]) {
      const r = await runCli(['context', ...args, '--store', store, '--tenant', TENANTS.a.id]);
      assert.equal(r.code, 1, `context ${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /not found/);
      assert.equal(r.stdout, '');
    }
  });
});
