// Permissions beyond the operation's scope (issue 14, deliver 3), for API
// keys made with --scope and JWTs with a scope claim, on REST and on /mcp:
//
// - a context's metadata.permissions: every one is needed to read or write
//   it (REST, MCP tools and resources, agents_call with contextId,
//   workflow runs on it); the refusal names the permission, and another
//   tenant's id still reads exactly like a missing one;
// - contexts:read:<pointer> scopes: the context comes back with only those
//   parts of data; its history and diffs need the whole contexts:read;
// - user.permissions: the user section goes only to agents they grant;
// - /mcp over HTTP answers a refused tools/call 403 with an
//   insufficient_scope challenge, and the official client reports it (no
//   loop);
// - /v1/runs and /v1/events need runs:read / runs:write / events:*;
// - tools/list shows a restricted caller only the tools it may call;
// - a caller's bearer token (API key or JWT) never reaches an agent, while
//   the agent's own configured headers do;
// - the values of agents' configured headers and env (their credentials)
//   are never shown to a client, of any tenant, over REST or MCP;
// - agents explained with a context (REST and agents_explain) need its
//   metadata.permissions, as agents_call routed with it does.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { postModern, tempStorePath } from './lib/harness.mjs';
import { TENANTS, connectSdk, restClient, sampleInput, storeAdmin, startTenantServer, stopClean, withoutId } from './lib/contexts_common.mjs';
import { flowAgent, startFlowHttpAgent } from './lib/flows.mjs';
import { claimsFor, makeKeys, oauthConfig, signJwt } from './lib/oauth.mjs';

const AGENT_SECRET = 'agent-own-secret-42';
const ENV_SECRET = 'agent-env-secret-77';
// Credentials written into an agent's URL: the userinfo and a query token.
const URL_SECRET = 'url-userinfo-secret-55';
const QUERY_SECRET = 'url-query-secret-66';
const WORKFLOWS = `
  - name: triage
    steps:
      - id: look
        call: { agent: sales, tool: whoami }
`;

describe('context permissions, path reads, runs scopes, token isolation', { timeout: 180000 }, () => {
  const { rsa, jwks } = makeKeys();
  const store = tempStorePath();
  const keys = {};
  let server, salesHttp, admin;
  const tok = (scope) => signJwt('RS256', rsa.privateKey, claimsFor('dealer-a', { scope }), { kid: 'rsa-1' });

  before(async () => {
    const { key, tenant } = storeAdmin(store);
    await tenant('dealer-a');
    await tenant('dealer-b');
    keys.contexts = await key('dealer-a', 'contexts', 'tools:call');
    keys.finance = await key('dealer-a', 'contexts', 'finance', 'agents', 'workflows');
    keys.userRead = await key('dealer-a', 'contexts:read:/user');
    keys.workflows = await key('dealer-a', 'workflows:triage', 'agents:sales');
    keys.runsRead = await key('dealer-a', 'runs:read');
    keys.agents = await key('dealer-a', 'agents');
    keys.agentsReading = await key('dealer-a', 'agents', 'contexts:read');
    keys.other = await key('dealer-b', 'contexts', 'finance');
    salesHttp = await startFlowHttpAgent('sales');
    const sales = flowAgent('sales', ['sales.offer'], { url: salesHttp.url, requirements: ['user.profile', 'workflow.variables'] });
    sales.transport.headers = { 'X-Dealer-Key': AGENT_SECRET };
    const finance = flowAgent('finance', ['finance.quote'], { requirements: ['user.profile'] });
    finance.transport.env = { FINANCE_API_KEY: ENV_SECRET };
    // Never reachable (port 1): listed with its URL, and its failures logged.
    const vault = flowAgent('vault', ['vault.none'],
      { url: `http://ops:${URL_SECRET}@127.0.0.1:1/mcp?region=north&access_token=${QUERY_SECRET}` });
    const config = [oauthConfig(jwks), 'agents:', ...[sales, finance, vault].map((a) => `  - ${JSON.stringify(a)}`),
      'workflows:', WORKFLOWS.replace(/^\n/, '').trimEnd()].join('\n');
    server = await startTenantServer({ store, config });
    admin = restClient(server.base, TENANTS.a.token);
    const end = Date.now() + 20000;
    while ((await restClient(server.base, keys.contexts).get('00000000-0000-0000-0000-000000000000')).status === 401) {
      assert.ok(Date.now() < end, 'the API keys were never accepted');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  after(async () => {
    if (server) await stopClean(server);
    await salesHttp?.stop();
  });

  const financeContext = async () => {
    const input = sampleInput('fin');
    input.metadata = { permissions: ['finance'] };
    const r = await admin.create(input);
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  const refused = (r, scope, message) => {
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.error.message, message);
    assert.equal(r.json.error.scope, scope);
    assert.match(r.headers['www-authenticate'], new RegExp(`^Bearer error="insufficient_scope", scope="${scope}", resource_metadata="[^"]+"`));
  };

  it('REST: metadata.permissions guard reads and writes, naming the permission', async () => {
    const ctx = await financeContext();
    for (const [who, token] of [['API key', keys.contexts], ['JWT', tok('contexts')]]) {
      const rc = restClient(server.base, token);
      const msg = 'context requires scope "finance"';
      refused(await rc.get(ctx.id), 'finance', msg);
      refused(await rc.merge(ctx.id, 1, { data: { conversation: { intent: 'x' } } }), 'finance', msg);
      refused(await rc.history(ctx.id), 'finance', msg);
      refused(await rc.diff(ctx.id, 1, 1), 'finance', msg);
      const made = sampleInput('mine');
      made.metadata = { permissions: ['finance'] };
      refused(await rc.create(made), 'finance', msg);
    }
    for (const token of [keys.finance, tok('contexts finance')]) {
      const rc = restClient(server.base, token);
      const got = await rc.get(ctx.id);
      assert.equal(got.status, 200, got.text);
      const v = got.json.version;
      const patched = await rc.merge(ctx.id, v, { data: { conversation: { intent: `by-${v}` } } });
      assert.equal(patched.status, 200, patched.text);
    }
    // Another tenant's id reads exactly like one that does not exist, even
    // for a caller holding the permission.
    const other = restClient(server.base, keys.other);
    const theirs = await other.get(ctx.id);
    const missing = await other.get('0190a000-0000-7000-8000-000000000000');
    assert.equal(theirs.status, 404);
    assert.equal(withoutId(theirs.text, ctx.id), withoutId(missing.text, '0190a000-0000-7000-8000-000000000000'));
  });

  it('REST: contexts:read:<pointer> reads only those paths; history needs contexts:read', async () => {
    const made = await admin.create(sampleInput('paths'));
    for (const token of [keys.userRead, tok('contexts:read:/user')]) {
      const rc = restClient(server.base, token);
      const got = await rc.get(made.json.id);
      assert.equal(got.status, 200, got.text);
      assert.deepEqual(Object.keys(got.json.data), ['user']);
      assert.deepEqual(got.json.data.user.profile, { name: 'Ada' });
      assert.equal(got.json.version, 1);
      const proj = await rc.get(made.json.id, '?requirements=conversation.intent,user.id');
      assert.equal(proj.status, 200, proj.text);
      assert.deepEqual(proj.json.data, { user: { id: 'user-paths' } });
      refused(await rc.history(made.json.id), 'contexts:read', 'missing scope "contexts:read"');
      refused(await rc.merge(made.json.id, 1, { data: {} }), 'contexts:write', 'missing scope "contexts:write"');
    }
    const narrow = await restClient(server.base, tok('contexts:read:/conversation/intent')).get(made.json.id);
    assert.equal(narrow.status, 200, narrow.text);
    assert.deepEqual(narrow.json.data, { conversation: { intent: 'buy_car' } });
  });

  it('REST and MCP: a writer gets back what it may read of its write, and a patch reads nothing more', async () => {
    const made = await admin.create(sampleInput('writer'));
    const id = made.json.id;
    // Write-only: the answer has no data; path reader: only its paths.
    const writeOnly = restClient(server.base, tok('contexts:write'));
    let v = 1;
    const blind = await writeOnly.merge(id, v++, {});
    assert.equal(blind.status, 200, blind.text);
    assert.equal(blind.json.data, undefined, blind.text);
    assert.equal(blind.json.version, 2);
    const pathWriter = restClient(server.base, tok('contexts:read:/conversation contexts:write'));
    const seen = await pathWriter.merge(id, v++, { data: { conversation: { intent: 'service' } } });
    assert.equal(seen.status, 200, seen.text);
    assert.deepEqual(Object.keys(seen.json.data), ['conversation']);
    assert.equal(seen.json.data.conversation.intent, 'service');
    const viaTool = await postModern(server.url, tok('contexts:write'), 'tools/call',
      { name: 'context_update', arguments: { id, expectedVersion: v++, mergePatch: {} } });
    assert.equal(viaTool.result?.isError, undefined, JSON.stringify(viaTool));
    assert.ok(!JSON.stringify(viaTool.result).includes('Ada'), JSON.stringify(viaTool.result));
    // A JSON Patch that reads outside the caller's paths: copy, move, test.
    for (const op of [
      { op: 'copy', from: '/data/user/profile', path: '/data/conversation/leak' },
      { op: 'move', from: '/data/user', path: '/data/conversation/leak' },
      { op: 'test', path: '/data/user/profile/name', value: 'Ada' },
      { op: 'copy', from: '/data', path: '/data/conversation/leak' },
      { op: 'copy', from: '', path: '/data/conversation/leak' },
      { op: 'test', path: '', value: {} },
      // Whether a hidden path exists shows in how a write to it fails.
      { op: 'remove', path: '/data/user/profile/guess' },
      { op: 'replace', path: '/data/user/profile/name', value: 'x' },
      { op: 'add', path: '/data/user/profile/nick', value: 'x' },
    ]) {
      const r = await pathWriter.jsonPatch(id, v, [op]);
      refused(r, 'contexts:read', `patch[0]: ${op.op} reads ${op.from ?? op.path}, which this caller may not read (scope "contexts:read" or one of its paths; a merge patch reads nothing)`);
    }
    const inside = await pathWriter.jsonPatch(id, v++, [{ op: 'copy', from: '/data/conversation/messages/0', path: '/data/conversation/messages/-' }]);
    assert.equal(inside.status, 200, inside.text);
    const whole = await admin.get(id);
    assert.equal(whole.json.version, v);
    assert.equal(whole.json.data.conversation.leak, undefined);
    assert.deepEqual(whole.json.data.user.profile, { name: 'Ada' });
  });

  it('MCP over HTTP: a refused call is a 403 challenge the official client reports', async () => {
    const ctx = await financeContext();
    const c = await connectSdk('legacy', 'http', { url: server.url, token: tok('contexts tools:echo') });
    try {
      for (const [name, args, scope] of [['agents_list', {}, 'tools:agents_list'],
        ['context_get', { id: ctx.id }, 'finance']]) {
        const before = c.http.items.length;
        await assert.rejects(c.callTool(name, args), (e) => {
          assert.equal(e.code, 403, `${name}: ${e.message}`);
          assert.match(e.message, new RegExp(`"code":-31003.*scope \\\\"${scope}\\\\"`));
          return true;
        }, name);
        // One POST, no retry loop; its challenge names the scope.
        const posts = c.http.items.slice(before).filter((x) => x.method === 'POST');
        assert.equal(posts.length, 1, JSON.stringify(posts));
        assert.match(posts[0].responseHeaders['www-authenticate'], new RegExp(`^Bearer error="insufficient_scope", scope="${scope}"`));
      }
      const ok = await c.callTool('echo', { text: 'still fine' });
      assert.ok(!ok.isError);
      await assert.rejects(c.readResource(`context://${ctx.id}`), (e) => e.code === 403);
    } finally {
      await c.close();
    }
    // A path reader gets the filtered context over MCP too.
    const made = await admin.create(sampleInput('mcp'));
    const m = await connectSdk('modern', 'http', { url: server.url, token: keys.userRead });
    try {
      const got = await m.callTool('context_get', { id: made.json.id });
      assert.deepEqual(Object.keys(got.structuredContent.data), ['user']);
    } finally {
      await m.close();
    }
  });

  it('REST runs and events: runs:read, runs:write, events:*; runs on a guarded context', async () => {
    const ctx = await financeContext();
    const wf = restClient(server.base, keys.workflows);
    const started = await wf.call('POST', '/v1/runs', { body: { workflow: 'triage' } });
    assert.equal(started.status, 201, started.text);
    const id = started.json.id;
    refused(await wf.call('GET', '/v1/runs'), 'runs:read', 'missing scope "runs:read"');
    refused(await wf.call('GET', `/v1/runs/${id}`), 'runs:read', 'missing scope "runs:read"');
    for (const action of ['cancel', 'answer', 'resume', 'fork'])
      refused(await wf.call('POST', `/v1/runs/${id}/${action}`, { body: {} }), 'runs:write', 'missing scope "runs:write"');
    refused(await wf.call('GET', '/v1/events'), 'events:read', 'missing scope "events:read"');
    refused(await wf.call('POST', '/v1/events', { body: { type: 'x.y' } }), 'events:write', 'missing scope "events:write"');
    for (const token of [keys.runsRead, tok('runs:read')]) {
      const rc = restClient(server.base, token);
      assert.equal((await rc.call('GET', '/v1/runs')).status, 200);
      assert.equal((await rc.call('GET', `/v1/runs/${id}`)).status, 200);
      refused(await rc.call('POST', `/v1/runs/${id}/cancel`, { body: {} }), 'runs:write', 'missing scope "runs:write"');
    }
    // A run on a context whose permissions the caller lacks never starts.
    refused(await wf.call('POST', '/v1/runs', { body: { workflow: 'triage', contextId: ctx.id } }), 'finance', 'context requires scope "finance"');
    const fine = await restClient(server.base, keys.finance).call('POST', '/v1/runs', { body: { workflow: 'triage', contextId: ctx.id } });
    assert.equal(fine.status, 201, fine.text);
  });

  it('agents_call with contextId: metadata.permissions, and user.permissions pick who sees the user', async () => {
    const ctx = await financeContext();
    const call = (token, body) => restClient(server.base, token).call('POST', '/v1/agents/call', { body });
    refused(await call(keys.agents, { agent: 'sales', tool: 'whoami', contextId: ctx.id }), 'finance', 'context requires scope "finance"');
    const c = await connectSdk('legacy', 'http', { url: server.url, token: tok('agents') });
    try {
      await assert.rejects(c.callTool('agents_call', { agent: 'sales', tool: 'whoami', contextId: ctx.id }), (e) => e.code === 403 && /scope \\"finance\\"/.test(e.message));
    } finally {
      await c.close();
    }
    const input = sampleInput('who');
    input.data.user.permissions = ['agents:sales'];
    const made = await admin.create(input);
    // The agent reads the context for its caller: who may not read it may
    // not hand it over either (nor have a version written by the call).
    refused(await call(keys.agents, { agent: 'sales', tool: 'whoami', contextId: made.json.id }), 'contexts:read',
      'missing scope "contexts:read": an agent is handed the context on the caller\'s behalf');
    assert.equal((await admin.get(made.json.id)).json.version, 1);
    const seen = async (agent) => {
      const r = await call(keys.agentsReading, { agent, tool: 'whoami', contextId: made.json.id });
      assert.equal(r.status, 200, r.text);
      return r.json.result.structuredContent.context;
    };
    assert.deepEqual((await seen('sales')).data.user, { profile: { name: 'Ada' } });
    const fin = await seen('finance');
    assert.equal(fin.data.user, undefined, JSON.stringify(fin));
    assert.deepEqual(fin.missing, ['user.profile']);
  });

  it('tools/list shows a restricted caller only what it may call', async () => {
    const names = async (token) => {
      const c = await connectSdk('legacy', 'http', { url: server.url, token });
      try {
        return (await c.client.listTools()).tools.map((t) => t.name);
      } finally {
        await c.close();
      }
    };
    const sales = await names(tok('agents:sales tools:echo contexts:read:/user'));
    for (const n of ['sales__whoami', 'echo', 'context_get', 'agents_call', 'workflow_run']) assert.ok(sales.includes(n), `${n} missing: ${sales}`);
    for (const n of ['finance__whoami', 'agents_list', 'context_create', 'context_history', 'runs_list', 'slow_count'])
      assert.ok(!sales.includes(n), `${n} listed: ${sales}`);
    // No scopes at all (and a config token): everything, as before.
    const all = await names(TENANTS.a.token);
    for (const n of ['finance__whoami', 'agents_list', 'context_create', 'runs_list']) assert.ok(all.includes(n), `${n} missing: ${all}`);
  });

  it('a caller\'s bearer token never reaches an agent; the agent\'s own headers do', async () => {
    const jwt = tok('agents');
    for (const token of [keys.agents, jwt]) {
      const r = await restClient(server.base, token).call('POST', '/v1/agents/call', { body: { agent: 'sales', tool: 'whoami', arguments: {} } });
      assert.equal(r.status, 200, r.text);
    }
    const c = await connectSdk('legacy', 'http', { url: server.url, token: jwt });
    try {
      const r = await c.callTool('sales__whoami', {});
      assert.ok(!r.isError, JSON.stringify(r));
    } finally {
      await c.close();
    }
    const log = await restClient(server.base, TENANTS.a.token).call('POST', '/v1/agents/call', { body: { agent: 'sales', tool: 'headers_seen', arguments: {} } });
    assert.equal(log.status, 200, log.text);
    const seen = log.json.result.structuredContent.seen;
    assert.ok(seen.filter((s) => s.method === 'tools/call').length >= 4, JSON.stringify(seen));
    const text = JSON.stringify(seen);
    for (const secret of [keys.agents, jwt, TENANTS.a.token]) assert.ok(!text.includes(secret), `a caller's token reached the agent: ${text}`);
    for (const s of seen) {
      assert.equal(s.authorization, null, JSON.stringify(s));
      assert.equal(s.x['x-dealer-key'], AGENT_SECRET, JSON.stringify(s));
    }
  });

  it('agents\' configured headers, env values and URL credentials are never shown to clients nor logged', async () => {
    const shown = [];
    for (const token of [keys.contexts, TENANTS.b.token, TENANTS.a.token]) {
      const rc = restClient(server.base, token);
      const list = await rc.call('GET', '/v1/agents');
      assert.equal(list.status, 200, list.text);
      shown.push(list.text);
      const byId = list.json.agents.map((a) => a.definition);
      const sales = byId.find((d) => d.id === 'sales');
      const finance = byId.find((d) => d.id === 'finance');
      // The names stay (an operator sees what is configured), the values go.
      assert.deepEqual(Object.keys(sales.transport.headers), ['X-Dealer-Key']);
      assert.deepEqual(Object.keys(finance.transport.env), ['FINANCE_API_KEY']);
      assert.equal(sales.transport.headers['X-Dealer-Key'], '<redacted>');
      assert.equal(finance.transport.env.FINANCE_API_KEY, '<redacted>');
      assert.equal(byId.find((d) => d.id === 'vault').transport.url,
        'http://<redacted>@127.0.0.1:1/mcp?region=north&access_token=<redacted>');
      for (const id of ['sales', 'finance']) {
        const one = await rc.call('GET', `/v1/agents/${id}`);
        assert.equal(one.status, 200, one.text);
        shown.push(one.text);
      }
    }
    const c = await connectSdk('legacy', 'http', { url: server.url, token: TENANTS.b.token });
    try {
      const r = await c.callTool('agents_list', {});
      assert.ok(!r.isError, JSON.stringify(r));
      shown.push(JSON.stringify(r));
    } finally {
      await c.close();
    }
    // A call to the unreachable agent fails naming its URL, but not with
    // the credentials in it. Before, the 503 (seen by any tenant) carried
    // them in clear, as did a run's stored error.
    const failed = await restClient(server.base, TENANTS.b.token).call('POST', '/v1/agents/call',
      { body: { agent: 'vault', tool: 'anything', arguments: {}, timeoutMs: 1000 } });
    assert.ok([503, 504].includes(failed.status), failed.text);
    assert.match(failed.text, /http:\/\/\[REDACTED\]@127\.0\.0\.1:1\/mcp\?region=north&access_token=\[REDACTED\]/, failed.text);
    shown.push(failed.text);
    for (const text of [...shown, server.stderr])
      for (const secret of [AGENT_SECRET, ENV_SECRET, URL_SECRET, QUERY_SECRET])
        assert.ok(!text.includes(secret), `an agent's secret shown: ${text}`);
    assert.match(server.stderr, /vault/, 'the unreachable agent was never logged');
    // said once, with the cause after the masked URL
    assert.match(server.stderr, /agent vault: connect failed: connect to http:\/\/\[REDACTED\]@127\.0\.0\.1:1\/mcp\?region=north&access_token=\[REDACTED\]: /);
    assert.doesNotMatch(server.stderr, /agent vault: connect failed: agent vault/);
  });

  it('explaining the ranking on a context needs its metadata.permissions, as routing with it does', async () => {
    const ctx = await financeContext();
    const path = `/v1/agents/explain?capability=sales.offer&context=${ctx.id}`;
    const msg = 'context requires scope "finance"';
    for (const token of [keys.contexts, tok('contexts tools:agents_explain')])
      refused(await restClient(server.base, token).call('GET', path), 'finance', msg);
    const c = await connectSdk('legacy', 'http', { url: server.url, token: keys.contexts });
    try {
      await assert.rejects(c.callTool('agents_explain', { capability: 'sales.offer', contextId: ctx.id }), (e) => {
        assert.equal(e.code, 403, e.message);
        assert.match(e.message, /"code":-31003.*context requires scope \\"finance\\"/);
        return true;
      });
    } finally {
      await c.close();
    }
    // Holding it: the ranking.
    const ok = await restClient(server.base, tok('contexts finance tools:agents_explain')).call('GET', path);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.ranking[0].agent ?? ok.json.ranking[0].id, 'sales', ok.text);
    // Another tenant's context reads as a missing one.
    const other = restClient(server.base, TENANTS.b.token);
    const theirs = await other.call('GET', path);
    const ghost = '0190a000-0000-7000-8000-000000000000';
    const missing = await other.call('GET', path.replace(ctx.id, ghost));
    assert.equal(theirs.status, 404, theirs.text);
    assert.equal(withoutId(theirs.text, ctx.id), withoutId(missing.text, ghost));
  });
});
