// Contexts over MCP with the official SDK clients: the v2 client
// (2026-07-28) and the v1 client (legacy initialize), each over stdio and
// Streamable HTTP. Tools context_create/get/update/history/diff, resources
// context://{id} and context://{id}/versions/{n}, and
// notifications/resources/updated for every new version.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { DEADLINE_MS, PROMPT_MS, tempStorePath, textOf, withDeadline } from './lib/harness.mjs';
import {
  CONTEXT_TOOLS,
  TENANTS,
  applyPatch,
  connectSdk,
  contextUri,
  isContextUpdate,
  restClient,
  sampleInput,
  startTenantServer,
  stopClean,
} from './lib/contexts_common.mjs';

const COMBOS = [
  { era: 'modern', kind: 'http' },
  { era: 'modern', kind: 'stdio' },
  { era: 'legacy', kind: 'http' },
  { era: 'legacy', kind: 'stdio' },
];

for (const { era, kind } of COMBOS) {
  describe(`contexts over MCP: ${era === 'modern' ? 'v2' : 'v1'} client over ${kind}`, { timeout: 60000 }, () => {
    let server;
    let c;
    let id;
    let created;
    let v2doc;
    let v3doc;
    let sub;
    const tenant = TENANTS.a.id;

    before(async () => {
      if (kind === 'http') {
        server = await startTenantServer();
        c = await connectSdk(era, kind, { url: server.url, token: TENANTS.a.token });
      } else {
        c = await connectSdk(era, kind, { stdioArgs: ['--store', tempStorePath(), '--tenant', tenant] });
      }
    });
    after(async () => {
      await sub?.close().catch(() => {});
      const exit = await c?.close();
      if (kind === 'stdio' && exit) assert.equal(exit.code, 0, `stdio server exit ${JSON.stringify(exit)}; stderr:\n${c.child.stderr}`);
      if (server) await stopClean(server);
    });

    it('lists the context tools and the two context resource templates', async () => {
      const { tools } = await c.client.listTools();
      const names = tools.map((t) => t.name);
      for (const t of CONTEXT_TOOLS) assert.ok(names.includes(t), `tools/list lacks ${t}: ${names}`);
      const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
      assert.deepEqual(byName.context_update.inputSchema.required, ['id', 'expectedVersion']);
      assert.equal(byName.context_get.annotations?.readOnlyHint, true);
      const { resourceTemplates } = await c.client.listResourceTemplates();
      const uris = resourceTemplates.map((t) => t.uriTemplate);
      assert.ok(uris.includes('context://{id}'), JSON.stringify(uris));
      assert.ok(uris.includes('context://{id}/versions/{n}'), JSON.stringify(uris));
      for (const t of resourceTemplates.filter((x) => x.uriTemplate.startsWith('context://'))) assert.equal(t.mimeType, 'application/json');
    });

    it('context_create makes version 1 with server-set fields', async () => {
      const r = await c.callTool('context_create', sampleInput('mcp'));
      assert.notEqual(r.isError, true, textOf(r.content));
      created = r.structuredContent;
      id = created.id;
      assert.match(id, /^[0-9a-f-]{36}$/);
      assert.equal(created.version, 1);
      assert.equal(created.workflowId, 'wf-mcp');
      assert.ok(!Number.isNaN(Date.parse(created.timestamp)));
      assert.deepEqual(JSON.parse(textOf(r.content)), created, 'the text content is the same document');
      const other = await c.callTool('context_create', { tenantId: 'dealer-zzz' });
      assert.equal(other.isError, true);
      assert.equal(other.structuredContent.error, 'invalid');
    });

    it(`the context belongs to the caller's tenant (${kind === 'http' ? 'bearer token' : 'serve --stdio --tenant'})`, async () => {
      assert.equal(created.tenantId, tenant, `created ${JSON.stringify(created)}`);
      const r = await c.callTool('context_get', { id });
      assert.equal(r.structuredContent.tenantId, tenant);
    });

    it('subscribes to context://id', async () => {
      sub = await c.subscribe([contextUri(id)]);
      if (era === 'modern') assert.deepEqual(sub.honored.resourceSubscriptions, [contextUri(id)]);
    });

    it('context_update with a merge patch makes version 2 and notifies', async () => {
      const from = c.notifications.items.length;
      const r = await c.callTool('context_update', { id, expectedVersion: 1, mergePatch: { data: { conversation: { intent: 'finance' } } } });
      assert.notEqual(r.isError, true, textOf(r.content));
      v2doc = r.structuredContent;
      assert.equal(v2doc.version, 2);
      assert.equal(v2doc.data.conversation.intent, 'finance');
      const n = await c.notifications.waitFor((x) => isContextUpdate(x) && x.params.uri === contextUri(id),
        { from, timeoutMs: PROMPT_MS, what: `notifications/resources/updated for ${contextUri(id)} (version 2)` });
      assert.equal(n.params.uri, contextUri(id));
    });

    it('context_update with a JSON Patch makes version 3 and notifies again', async () => {
      const from = c.notifications.items.length;
      const r = await c.callTool('context_update', {
        id,
        expectedVersion: 2,
        patch: [
          { op: 'add', path: '/data/conversation/messages/-', value: { role: 'agent', content: 'm7', agentId: 'finance-bot' } },
          { op: 'add', path: '/data/workflow/completedSteps/-', value: 'qualify' },
        ],
      });
      assert.notEqual(r.isError, true, textOf(r.content));
      v3doc = r.structuredContent;
      assert.equal(v3doc.version, 3);
      assert.deepEqual(v3doc.data.workflow.completedSteps, ['qualify']);
      assert.equal(v3doc.data.conversation.messages.at(-1).agentId, 'finance-bot');
      const got = await c.notifications.waitFor((x) => isContextUpdate(x) && x.params.uri === contextUri(id),
        { from, timeoutMs: PROMPT_MS, what: `notifications/resources/updated for ${contextUri(id)} (version 3)` });
      assert.ok(got);
    });

    it('a stale expectedVersion is a tool error "conflict" with currentVersion; nothing changes', async () => {
      const r = await c.callTool('context_update', { id, expectedVersion: 1, mergePatch: { data: { conversation: { intent: 'lost' } } } });
      assert.equal(r.isError, true, JSON.stringify(r));
      assert.equal(r.structuredContent.error, 'conflict');
      assert.equal(r.structuredContent.currentVersion, 3);
      assert.match(textOf(r.content), /version 3/);
      const invalid = await c.callTool('context_update', { id, expectedVersion: 3, mergePatch: { data: { conversation: { sentiment: 'angry' } } } });
      assert.equal(invalid.isError, true);
      assert.equal(invalid.structuredContent.error, 'invalid');
      assert.match(invalid.structuredContent.message, /data\.conversation\.sentiment/);
      const head = await c.callTool('context_get', { id });
      assert.deepEqual(head.structuredContent, v3doc);
    });

    it('a misspelt argument is refused naming it: a read is never wider than asked', async () => {
      for (const [name, args, key] of [
        ['context_get', { id, requirments: ['conversation.intent'] }, 'requirments'],
        ['context_update', { id, expectedVersion: 1, merge_patch: {} }, 'merge_patch'],
        ['context_history', { id, limt: 1 }, 'limt'],
        ['context_diff', { id, from: 1, to: 2, format: 'x' }, 'format'],
      ]) {
        const out = await withDeadline(
          c.callTool(name, args).then((v) => ({ v }), (e) => ({ e })), DEADLINE_MS, name);
        if (out.e) assert.equal(out.e.code, -32602, String(out.e));
        else assert.equal(out.v.isError, true, JSON.stringify(out.v));
        assert.match(String(out.e?.message ?? textOf(out.v.content)), new RegExp(`${key}: unknown argument \\(known: `), name);
      }
    });

    it('malformed context_update arguments are JSON-RPC invalid params', async () => {
      const out = await withDeadline(
        c.callTool('context_update', { id, mergePatch: {} }).then((v) => ({ v }), (e) => ({ e })), DEADLINE_MS, 'bad call');
      // An SDK may surface the error as a rejection or (v2) as an isError result.
      if (out.e) assert.equal(out.e.code, -32602, String(out.e));
      else assert.equal(out.v.isError, true, JSON.stringify(out.v));
      assert.match(String(out.e?.message ?? textOf(out.v.content)), /expectedVersion/);
    });

    it('context_get reads the head, a past version, and a projection', async () => {
      const head = await c.callTool('context_get', { id });
      assert.deepEqual(head.structuredContent, v3doc);
      const past = await c.callTool('context_get', { id, version: 1 });
      assert.deepEqual(past.structuredContent, created);
      const proj = await c.callTool('context_get', { id, requirements: ['conversation.messages[-5:]', 'workflow.variables.vin', 'user.profile.age'] });
      assert.notEqual(proj.isError, true, textOf(proj.content));
      assert.deepEqual(proj.structuredContent, {
        id,
        version: 3,
        data: {
          conversation: { messages: v3doc.data.conversation.messages.slice(-5) },
          workflow: { variables: { vin: v3doc.data.workflow.variables.vin } },
        },
        missing: ['user.profile.age'],
      });
      const gone = await c.callTool('context_get', { id, version: 4 });
      assert.equal(gone.isError, true);
      assert.equal(gone.structuredContent.error, 'not_found');
    });

    it('context_history and context_diff', async () => {
      const h = await c.callTool('context_history', { id });
      assert.notEqual(h.isError, true, textOf(h.content));
      assert.equal(h.structuredContent.id, id);
      assert.deepEqual(h.structuredContent.versions.map((v) => v.version), [3, 2, 1]);
      const p2 = h.structuredContent.versions.find((v) => v.version === 2).patch;
      assert.ok(p2.some((op) => op.path === '/data/conversation/intent' && op.value === 'finance'), JSON.stringify(p2));
      const limited = await c.callTool('context_history', { id, limit: 1 });
      assert.deepEqual(limited.structuredContent.versions.map((v) => v.version), [3]);

      const d = await c.callTool('context_diff', { id, from: 1, to: 3 });
      assert.notEqual(d.isError, true, textOf(d.content));
      assert.equal(d.structuredContent.from, 1);
      assert.equal(d.structuredContent.to, 3);
      assert.deepEqual(applyPatch(created, d.structuredContent.patch), v3doc, 'diff 1->3 turns version 1 into version 3');
      const back = await c.callTool('context_diff', { id, from: 3, to: 1 });
      assert.deepEqual(applyPatch(v3doc, back.structuredContent.patch), created);
      const none = await c.callTool('context_diff', { id, from: 3, to: 3 });
      assert.deepEqual(none.structuredContent.patch, []);
    });

    it('resources/read serves context://id and context://id/versions/1', async () => {
      const head = await c.readResource(contextUri(id));
      assert.equal(head.contents.length, 1);
      assert.equal(head.contents[0].uri, contextUri(id));
      assert.equal(head.contents[0].mimeType, 'application/json');
      assert.deepEqual(JSON.parse(head.contents[0].text), v3doc);
      const v1 = await c.readResource(contextUri(id, 1));
      assert.equal(v1.contents[0].uri, contextUri(id, 1));
      assert.deepEqual(JSON.parse(v1.contents[0].text), created);
      const v2 = await c.readResource(contextUri(id, 2));
      assert.deepEqual(JSON.parse(v2.contents[0].text), v2doc);
      const missing = await withDeadline(c.readResource(contextUri(id, 9)).then((v) => ({ v }), (e) => ({ e })), DEADLINE_MS, 'read');
      assert.ok(missing.e, `read of version 9 gave ${JSON.stringify(missing.v)}`);
      // Resource not found: -32602 from 2026-07-28 on, -32002 before.
      assert.equal(missing.e.code, era === 'modern' ? -32602 : -32002, String(missing.e));
    });

    it('the head resource follows new versions (and notifies) while versions/1 stays', async () => {
      const from = c.notifications.items.length;
      const r = await c.callTool('context_update', { id, expectedVersion: 3, mergePatch: { data: { user: { profile: { age: 41 } } } } });
      assert.equal(r.structuredContent.version, 4, textOf(r.content));
      await c.notifications.waitFor((x) => isContextUpdate(x) && x.params.uri === contextUri(id),
        { from, timeoutMs: PROMPT_MS, what: 'update notification for version 4' });
      const head = await c.readResource(contextUri(id));
      assert.equal(JSON.parse(head.contents[0].text).version, 4);
      assert.equal(JSON.parse(head.contents[0].text).data.user.profile.age, 41);
      const v1 = await c.readResource(contextUri(id, 1));
      assert.deepEqual(JSON.parse(v1.contents[0].text), created);
      // Exactly one update per new version (2, 3, 4) reached this subscriber.
      assert.equal(c.notifications.items.filter((x) => isContextUpdate(x) && x.params.uri === contextUri(id)).length, 3,
        JSON.stringify(c.notifications.items));
    });

    if (kind === 'http') {
      it('the REST API sees the same context (one store, one tenant), and its writes notify MCP subscribers', async () => {
        const rest = restClient(server.base, TENANTS.a.token);
        const got = await rest.get(id);
        assert.equal(got.status, 200, got.text);
        assert.equal(got.json.version, 4);
        const from = c.notifications.items.length;
        const p = await rest.merge(id, 4, { data: { conversation: { language: 'de' } } });
        assert.equal(p.status, 200, p.text);
        await c.notifications.waitFor((x) => isContextUpdate(x) && x.params.uri === contextUri(id),
          { from, timeoutMs: PROMPT_MS, what: 'update notification for a REST write' });
        const r = await c.callTool('context_get', { id });
        assert.equal(r.structuredContent.version, 5);
        assert.equal(r.structuredContent.data.conversation.language, 'de');
      });
    }
  });
}
