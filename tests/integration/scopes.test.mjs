// Scopes per object (issue 14), for API keys made with --scope:
//
// - runs scoped per workflow: runs:read:<workflow> / runs:write:<workflow>
//   (the plain form meaning all), on REST, the runs_* tools, the MCP tasks
//   methods and the CLI's REST client; a refusal names the scope, another
//   tenant's run still reads like a missing one;
// - lists filtered by scope: resources/list, resources/templates/list,
//   prompts/list on /mcp, and every list of the per-agent and virtual
//   servers; reading or getting what is not listed is refused;
// - the agents REST API needs the scopes of its MCP tool twins
//   (tools:agents_list, _explain, _register, _remove), so a key of an
//   administrator tenant issued for something else changes no agent.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyHttp } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { DEADLINE_MS, postModern, tempStorePath, withDeadline } from './lib/harness.mjs';
import { TENANTS, restClient, runCli, sampleInput, storeAdmin, startTenantServer, stopClean, withoutId } from './lib/contexts_common.mjs';
import { runsClient } from './lib/flows.mjs';
import { everythingStdio, flakyAgent, pollUntil } from '../agents/agents_lib.mjs';

const ASK = (name) => `  - name: ${name}
    steps:
      - id: confirm
        ask: { message: "ok?" }`;
const GATE = `  - name: gate
    steps:
      - id: first
        ask: { message: "first?" }
        save: workflow.variables.first
      - id: second
        ask: { message: "second?" }`;
const SERVERS = `servers:
  - ${JSON.stringify({ name: 'desk', include: [{ agent: 'everything' }, { agent: 'flaky' }] })}`;

async function legacy(url, token) {
  const client = new LegacyClient({ name: 'scopes-test', version: '1' }, { capabilities: { tasks: {} } });
  const transport = new LegacyHttp(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  await withDeadline(client.connect(transport), DEADLINE_MS, 'legacy connect');
  return { client, close: async () => { await transport.terminateSession().catch(() => {}); await client.close(); } };
}

describe('scopes per workflow and filtered lists', { timeout: 180000 }, () => {
  const store = tempStorePath();
  const keys = {};
  let server, admin, serverConfig;
  const runs = {};

  before(async () => {
    const { key, tenant } = storeAdmin(store);
    await tenant('dealer-a');
    await tenant('dealer-b');
    keys.triage = await key('dealer-a', 'runs:read:triage', 'runs:write:triage');
    keys.triageRead = await key('dealer-a', 'runs:read:triage');
    keys.none = await key('dealer-a', 'workflows');
    keys.all = await key('dealer-a', 'runs');
    keys.other = await key('dealer-b', 'runs');
    keys.everything = await key('dealer-a', 'agents:everything');
    keys.flaky = await key('dealer-a', 'agents:flaky', 'tools:echo');
    keys.gate = await key('dealer-a', 'workflows:gate', 'runs', 'contexts');
    keys.gateFinance = await key('dealer-a', 'workflows:gate', 'runs', 'contexts', 'finance');
    keys.notes = await key('dealer-a', 'resources:switchboard://notes', 'prompts:greeting', 'events:read');
    keys.agentsList = await key('dealer-a', 'tools:agents_list');
    // dealer-a administers agents (the line goes on the auth: mapping).
    const config = ['  admin_tenants: [dealer-a]', 'agents:', ...[everythingStdio('everything'), flakyAgent('flaky', 'F')].map((a) => `  - ${JSON.stringify(a)}`),
      SERVERS, 'workflows:', ASK('triage'), ASK('quote'), GATE].join('\n');
    serverConfig = config;
    server = await startTenantServer({ store, config });
    admin = restClient(server.base, TENANTS.a.token);
    const end = Date.now() + 20000;
    while ((await restClient(server.base, keys.all).call('GET', '/v1/runs')).status === 401) {
      assert.ok(Date.now() < end, 'the API keys were never accepted');
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const wf of ['triage', 'quote']) {
      const r = await admin.call('POST', '/v1/runs', { body: { workflow: wf } });
      assert.equal(r.status, 201, r.text);
      runs[wf] = r.json.id;
    }
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  const refused = (r, scope) => {
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.error.scope, scope);
    assert.equal(r.json.error.message, `missing scope "${scope}"`);
    assert.match(r.headers['www-authenticate'], new RegExp(`^Bearer error="insufficient_scope", scope="${scope}"`));
  };

  it('REST: runs:read:<workflow> and runs:write:<workflow>', async () => {
    const rc = restClient(server.base, keys.triage);
    const list = await rc.call('GET', '/v1/runs');
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json.runs.map((r) => r.workflow), ['triage']);
    assert.equal((await rc.call('GET', `/v1/runs/${runs.triage}`)).status, 200);
    refused(await rc.call('GET', `/v1/runs/${runs.quote}`), 'runs:read:quote');
    // Each action with the body it takes (a field it does not take is a 400).
    for (const [action, body] of [['cancel', {}], ['answer', { answer: {}, step: 'confirm' }], ['resume', {}], ['fork', { step: 'confirm' }]])
      refused(await rc.call('POST', `/v1/runs/${runs.quote}/${action}`, { body }), 'runs:write:quote');
    // Reading one workflow's runs grants no writing at all.
    refused(await restClient(server.base, keys.triageRead).call('POST', `/v1/runs/${runs.triage}/cancel`, { body: {} }), 'runs:write');
    // No runs scope at all: refused before any lookup, naming the plain scope.
    const none = restClient(server.base, keys.none);
    refused(await none.call('GET', '/v1/runs'), 'runs:read');
    refused(await none.call('GET', `/v1/runs/${runs.quote}`), 'runs:read');
    refused(await none.call('POST', `/v1/runs/${runs.quote}/cancel`, { body: {} }), 'runs:write');
    // The plain scope: everything.
    const all = await restClient(server.base, keys.all).call('GET', '/v1/runs');
    assert.deepEqual(all.json.runs.map((r) => r.workflow).sort(), ['quote', 'triage']);
    // Another tenant's run reads exactly like a missing one.
    const other = restClient(server.base, keys.other);
    const theirs = await other.call('GET', `/v1/runs/${runs.quote}`);
    const missing = await other.call('GET', '/v1/runs/0190a000-0000-7000-8000-000000000000');
    assert.equal(theirs.status, 404);
    assert.equal(withoutId(theirs.text, runs.quote), withoutId(missing.text, '0190a000-0000-7000-8000-000000000000'));
  });

  it('MCP: runs_* tools check the run\'s workflow; runs_list filters', async () => {
    const call = (token, name, args) => postModern(server.url, token, 'tools/call', { name, arguments: args });
    const listed = await call(keys.triage, 'runs_list', {});
    assert.deepEqual(listed.result.structuredContent.runs.map((r) => r.workflow), ['triage'], JSON.stringify(listed));
    const got = await call(keys.triage, 'runs_get', { runId: runs.triage });
    assert.equal(got.result.structuredContent.id, runs.triage);
    for (const [name, args, scope] of [['runs_get', {}, 'runs:read:quote'], ['runs_cancel', {}, 'runs:write:quote'],
      ['runs_answer', { answer: {} }, 'runs:write:quote'], ['runs_fork', { step: 'confirm' }, 'runs:write:quote']]) {
      const r = await call(keys.triage, name, { runId: runs.quote, ...args });
      assert.equal(r.status, 403, `${name}: ${JSON.stringify(r)}`);
      assert.equal(r.error.code, -31003);
      assert.equal(r.error.data.scope, scope, JSON.stringify(r.error));
    }
    const r = await call(keys.none, 'runs_get', { runId: runs.quote });
    assert.equal(r.error?.data?.scope, 'runs:read', JSON.stringify(r));
    // tools/list: the runs tools are there for a per-workflow key.
    const tools = (await postModern(server.url, keys.triageRead, 'tools/list', {})).result.tools.map((t) => t.name);
    assert.ok(tools.includes('runs_list') && tools.includes('runs_get'), tools.join());
    assert.ok(!tools.includes('runs_cancel'), tools.join());
  });

  it('MCP tasks: the same scopes as the runs surface', async () => {
    const task = (token, method, taskId, extra = {}) => postModern(server.url, token, method, { taskId, ...extra });
    const ok = await task(keys.triage, 'tasks/get', runs.triage);
    assert.equal(ok.result?.taskId, runs.triage, JSON.stringify(ok));
    for (const [method, scope, extra] of [['tasks/get', 'runs:read:quote'], ['tasks/cancel', 'runs:write:quote'],
      ['tasks/update', 'runs:write:quote', { inputResponses: {} }]]) {
      const r = await task(keys.triage, method, runs.quote, extra);
      assert.equal(r.error?.code, -31003, `${method}: ${JSON.stringify(r)}`);
      assert.equal(r.error.data.scope, scope);
      assert.equal(r.status, 403);
    }
    for (const [method, scope, extra] of [['tasks/get', 'runs:read'], ['tasks/cancel', 'runs:write'], ['tasks/update', 'runs:write', { inputResponses: {} }]]) {
      const r = await task(keys.none, method, runs.triage, extra);
      assert.equal(r.error?.data?.scope, scope, `${method}: ${JSON.stringify(r)}`);
    }
    // Another tenant's run is an unknown task, whatever its scopes.
    const theirs = await task(keys.other, 'tasks/get', runs.quote);
    assert.equal(theirs.error?.code, -32602, JSON.stringify(theirs));
    // 2025-11-25: tasks/list lists only the runs it may read; tasks/result refuses.
    const c = await legacy(server.url, keys.triage);
    try {
      const listed = await c.client.experimental.tasks.listTasks();
      assert.deepEqual(listed.tasks.map((t) => t.taskId), [runs.triage]);
      await assert.rejects(c.client.experimental.tasks.getTaskResult(runs.quote), (e) => e.code === 403 || /runs:read:quote/.test(e.message));
    } finally {
      await c.close();
    }
    const n = await legacy(server.url, keys.none);
    try {
      await assert.rejects(n.client.experimental.tasks.listTasks(), (e) => /runs:read/.test(e.message));
    } finally {
      await n.close();
    }
  });

  it('CLI: runs cancel through REST names the missing scope', async () => {
    const r = await runCli(['runs', 'cancel', runs.quote, '--url', server.base, '--token', keys.triage]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /answered 403: missing scope "runs:write:quote"/);
    const run = await admin.call('GET', `/v1/runs/${runs.quote}`);
    assert.equal(run.json.status, 'waiting');
  });

  const list = async (path, token, method) => {
    const r = await postModern(`${server.base}${path}`, token, method, {});
    assert.ok(r.result, `${path} ${method}: ${JSON.stringify(r)}`);
    return r;
  };
  const names = (r) => (r.result.tools ?? r.result.resources ?? r.result.resourceTemplates ?? r.result.prompts)
    .map((x) => x.uri ?? x.uriTemplate ?? x.name);

  it('/mcp: resources, templates and prompts lists filtered; reads and gets refused', async () => {
    const wrote = await postModern(server.url, TENANTS.a.token, 'tools/call', { name: 'note_write', arguments: { name: 'memo', text: 'hi' } });
    assert.ok(wrote.result && !wrote.result.isError, JSON.stringify(wrote));
    const resources = names(await list('/mcp', keys.flaky, 'resources/list'));
    assert.deepEqual(resources, ['switchboard://info']);
    assert.deepEqual(names(await list('/mcp', keys.flaky, 'resources/templates/list')), []);
    const prompts = await list('/mcp', keys.flaky, 'prompts/list');
    assert.deepEqual(names(prompts), []);
    assert.equal(prompts.result._meta?.['io.modelcontextprotocol/cacheScope'] ?? 'private', 'private');
    const read = await postModern(server.url, keys.flaky, 'resources/read', { uri: 'switchboard://notes/memo' });
    assert.equal(read.status, 403, JSON.stringify(read));
    assert.equal(read.error.data.scope, 'resources:switchboard://notes/memo');
    const got = await postModern(server.url, keys.flaky, 'prompts/get', { name: 'greeting', arguments: { name: 'Ada' } });
    assert.equal(got.error?.data?.scope, 'prompts:greeting', JSON.stringify(got));
    // Granted: listed, and read.
    assert.deepEqual(names(await list('/mcp', keys.notes, 'resources/list')).sort(), ['events://log', 'switchboard://info', 'switchboard://notes/memo']);
    assert.deepEqual(names(await list('/mcp', keys.notes, 'resources/templates/list')), ['switchboard://notes/{name}']);
    assert.deepEqual(names(await list('/mcp', keys.notes, 'prompts/list')), ['greeting']);
    const ok = await postModern(server.url, keys.notes, 'resources/read', { uri: 'switchboard://notes/memo' });
    assert.equal(ok.result?.contents?.[0]?.text, 'hi', JSON.stringify(ok));
    // Unrestricted: everything, as before.
    assert.ok(names(await list('/mcp', TENANTS.a.token, 'resources/templates/list')).includes('context://{id}'));
  });

  it('subscribing to a resource needs what reading it needs, in both eras', async () => {
    for (const uri of ['events://log', 'switchboard://notes/memo']) {
      const listen = await postModern(server.url, keys.flaky, 'subscriptions/listen',
        { notifications: { resourceSubscriptions: ['switchboard://info', uri] } });
      assert.equal(listen.error?.code, -31003, JSON.stringify(listen));
      const read = await postModern(server.url, keys.flaky, 'resources/read', { uri });
      assert.equal(listen.error.data.scope, read.error.data.scope, JSON.stringify(listen));
    }
    const narrow = await legacy(server.url, keys.flaky);
    try {
      await assert.rejects(narrow.client.subscribeResource({ uri: 'events://log' }), /events:read/);
    } finally {
      await narrow.close();
    }
    const granted = await legacy(server.url, keys.notes);
    try {
      assert.deepEqual(await granted.client.subscribeResource({ uri: 'events://log' }), {});
    } finally {
      await granted.close();
    }
  });

  it('REST agents API: the scopes of its MCP twins, before an administrator may change anything', async () => {
    const rc = restClient(server.base, keys.none); // dealer-a (an administrator), scope 'workflows' only
    const def = flakyAgent('planted', 'P');
    refused(await rc.call('GET', '/v1/agents'), 'tools:agents_list');
    refused(await rc.call('GET', '/v1/agents/flaky'), 'tools:agents_list');
    refused(await rc.call('GET', '/v1/agents/explain?capability=flaky'), 'tools:agents_explain');
    refused(await rc.call('POST', '/v1/agents', { body: def }), 'tools:agents_register');
    refused(await rc.call('PUT', '/v1/agents/planted', { body: def }), 'tools:agents_register');
    refused(await rc.call('DELETE', '/v1/agents/flaky'), 'tools:agents_remove');
    // Nothing changed: no planted agent, flaky still there.
    const ids = (await admin.call('GET', '/v1/agents')).json.agents.map((a) => a.definition.id).sort();
    assert.deepEqual(ids, ['everything', 'flaky']);
    // Holding the scope: the list.
    const listed = await restClient(server.base, keys.agentsList).call('GET', '/v1/agents');
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.json.agents.map((a) => a.definition.id).sort(), ['everything', 'flaky']);
    refused(await restClient(server.base, keys.agentsList).call('DELETE', '/v1/agents/flaky'), 'tools:agents_remove');
  });

  it('per-agent and virtual servers list only the agents the caller may use', async () => {
    await pollUntil(async () => {
      const r = await postModern(`${server.base}/agents/everything/mcp`, TENANTS.a.token, 'tools/list', {});
      return r.result?.tools?.length > 0 ? true : { ok: false, message: JSON.stringify(r) };
    }, { what: 'the everything agent listed' });
    const all = {};
    for (const m of ['tools/list', 'resources/list', 'resources/templates/list', 'prompts/list']) {
      all[m] = names(await list('/agents/everything/mcp', keys.everything, m));
      assert.ok(all[m].length > 0, `${m} of everything: empty`);
      assert.deepEqual(names(await list('/agents/everything/mcp', keys.flaky, m)), [], m);
    }
    const read = await postModern(`${server.base}/agents/everything/mcp`, keys.flaky, 'resources/read', { uri: all['resources/list'][0] });
    assert.equal(read.error?.data?.scope, 'agents:everything', JSON.stringify(read));
    const prompt = await postModern(`${server.base}/agents/everything/mcp`, keys.flaky, 'prompts/get', { name: all['prompts/list'][0] });
    assert.equal(prompt.error?.data?.scope, 'agents:everything', JSON.stringify(prompt));
    const listen = await postModern(`${server.base}/agents/everything/mcp`, keys.flaky, 'subscriptions/listen',
      { notifications: { resourceSubscriptions: [all['resources/list'][0]] } });
    assert.equal(listen.error?.data?.scope, 'agents:everything', JSON.stringify(listen));
    // The virtual server: each caller sees its own agents' items.
    await pollUntil(async () => {
      const r = await postModern(`${server.base}/servers/desk/mcp`, TENANTS.a.token, 'tools/list', {});
      return r.result?.tools?.some((t) => t.name === 'whoami') ? true : { ok: false, message: JSON.stringify(r) };
    }, { what: 'the flaky agent listed' });
    const flakyTools = names(await list('/servers/desk/mcp', keys.flaky, 'tools/list'));
    assert.ok(flakyTools.includes('whoami'), flakyTools.join());
    for (const t of all['tools/list']) if (t !== 'whoami') assert.ok(!flakyTools.includes(t), `${t} listed: ${flakyTools}`);
    assert.deepEqual(names(await list('/servers/desk/mcp', keys.flaky, 'prompts/list')), []);
    const evTools = names(await list('/servers/desk/mcp', keys.everything, 'tools/list'));
    assert.ok(!evTools.includes('whoami') || all['tools/list'].includes('whoami'), evTools.join());
    assert.ok(evTools.includes(all['tools/list'][0]), evTools.join());
  });

  it('a run\'s steps check the context\'s permissions against its starter\'s scopes, across a restart', async () => {
    const runs = {};
    const ctx = {};
    for (const [who, token] of [['plain', keys.gate], ['finance', keys.gateFinance]]) {
      const made = await admin.create(sampleInput(`gate-${who}`));
      assert.equal(made.status, 201, made.text);
      ctx[who] = made.json;
      const rest = runsClient(server.base, token);
      const r = await rest.start({ workflow: 'gate', contextId: made.json.id });
      assert.equal(r.status, 201, r.text);
      runs[who] = r.json.id;
      await rest.waitFor(r.json.id, 'waiting');
    }
    // The scopes are stored with the run: a restart keeps them.
    await stopClean(server);
    server = await startTenantServer({ store, config: serverConfig });
    admin = restClient(server.base, TENANTS.a.token);
    for (const who of ['plain', 'finance']) {
      const head = await admin.get(ctx[who].id);
      const patched = await admin.merge(ctx[who].id, head.json.version, { metadata: { permissions: ['finance'] } });
      assert.equal(patched.status, 200, patched.text);
    }
    for (const [who, token] of [['plain', keys.gate], ['finance', keys.gateFinance]]) {
      const rest = runsClient(server.base, token);
      await pollUntil(async () => ((await rest.run(runs[who])).json?.status === 'waiting' ? true : { ok: false }), { what: `run ${who} back` });
      const answered = await rest.action(runs[who], 'answer', { step: 'first', answer: { ok: true } });
      assert.equal(answered.status, 200, answered.text);
    }
    // Waited for as failed: the answer's transition is written first (the
    // run waiting at "second"), the step's refusal in the next one.
    const plain = await runsClient(server.base, keys.gate).waitFor(runs.plain, 'failed');
    assert.equal(plain.status, 'failed', JSON.stringify(plain));
    assert.equal(plain.error.code, 'forbidden', JSON.stringify(plain.error));
    assert.match(plain.error.message, /context requires scope "finance"/);
    assert.equal(plain.error.step, 'second', JSON.stringify(plain.error));
    // The same run by a starter holding "finance" goes on to its next question.
    const fine = await runsClient(server.base, keys.gateFinance).waitFor(runs.finance, ['failed', 'waiting']);
    assert.equal(fine.status, 'waiting', JSON.stringify(fine.error));
    assert.equal(fine.waiting[0].step, 'second');
    assert.equal(fine.principal, undefined, 'the starter\'s scopes are not shown');
  });
});
