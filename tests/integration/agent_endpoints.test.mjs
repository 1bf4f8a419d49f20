// agent_endpoints.test.mjs: one agent, or a chosen subset of several, as an
// MCP server of its own.
//   /agents/{id}/mcp       every tool, resource, template, prompt of an agent
//                          under its own names, both eras;
//   /servers/{name}/mcp    the config's virtual servers: only what they include;
//   serve --stdio --agent  the same on stdio.
// And what a gateway must not get wrong there: unknown endpoints, sessions
// that belong to another endpoint, a tampered requestState, a legacy agent
// that dies mid-session, bad `servers:` config.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  CallToolResultSchema, CreateMessageRequestSchema, LoggingMessageNotificationSchema, ResourceListChangedNotificationSchema, ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

import { DEADLINE_MS, EventLog, MODERN_VERSION, startHttpServer, stdioServerParams, switchboardBin, textOf, withDeadline } from './lib/harness.mjs';
import {
  agentDef, callWithin, connect, everythingStdio, flakyAgent, pollUntil, startEverythingHttp, waitForTools, withStderr,
} from '../agents/agents_lib.mjs';

const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
  'io.modelcontextprotocol/clientCapabilities': { sampling: {} },
};

/** A config with agents and virtual servers (JSON is YAML flow style). */
function writeConfigWith(agents, servers = []) {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-mounts-')), 'switchboard.yaml');
  let text = 'cache:\n  ttl_ms: 0\nagents:\n' + agents.map((a) => `  - ${JSON.stringify(a)}\n`).join('');
  if (servers.length) text += 'servers:\n' + servers.map((s) => `  - ${JSON.stringify(s)}\n`).join('');
  writeFileSync(file, text);
  return file;
}

/** One modern JSON-RPC request by plain fetch, headers as 2026-07-28 wants. */
async function modernPost(url, id, method, params, name) {
  const headers = {
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    'MCP-Protocol-Version': MODERN_VERSION,
    'Mcp-Method': method,
  };
  if (name !== undefined) headers['Mcp-Name'] = name;
  const res = await withDeadline(fetch(url, {
    method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: META } }),
  }), DEADLINE_MS, `${method} ${url}`);
  const text = await withDeadline(res.text(), DEADLINE_MS, 'response body');
  // An SSE answer carries the response as the last data: line.
  const body = text.startsWith('{') ? text : text.split('\n').filter((l) => l.startsWith('data: ')).pop()?.slice(6);
  return { status: res.status, json: body ? JSON.parse(body) : undefined, text };
}

const SERVERS = [
  {
    name: 'front-desk',
    description: 'What the front desk may use',
    include: [
      { agent: 'everything', tools: ['echo', 'get-sum'], resources: ['demo://resource/static/'], prompts: ['simple-prompt'] },
      { agent: 'flaky', tools: ['whoami'], resources: [], prompts: [] },
    ],
  },
];

describe('per-agent endpoints and virtual servers', { timeout: 120000 }, () => {
  let server;
  let base;
  const at = (path) => `${base}${path}`;

  before(async () => {
    server = await startHttpServer({
      extraArgs: ['--config', writeConfigWith([everythingStdio('everything'), flakyAgent('flaky', 'F')], SERVERS)],
    });
    base = server.url.replace(/\/mcp$/, '');
  });

  after(async () => {
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  for (const era of ['modern', 'legacy']) {
    it(`${era} client: the agent's own names, everything it serves`, async () => {
      const main = await connect(era, server.url);
      const own = await connect(era, at('/agents/everything/mcp'));
      try {
        const prefixed = (await waitForTools(main, ['everything__echo']))
          .map((t) => t.name).filter((n) => n.startsWith('everything__')).map((n) => n.slice('everything__'.length));
        const tools = (await waitForTools(own, ['echo'])).map((t) => t.name);
        assert.deepEqual(tools, prefixed, 'the same tools, unprefixed, in the agent\'s order');
        const echo = await callWithin(own, { name: 'echo', arguments: { message: 'F-150 in stock?' } });
        assert.equal(textOf(echo.content), 'Echo: F-150 in stock?');

        const { resources } = await own.client.listResources();
        assert.ok(resources.length > 0 && resources.every((r) => r.uri.startsWith('demo://')), JSON.stringify(resources));
        const read = await own.client.readResource({ uri: resources[0].uri });
        assert.equal(read.contents[0].uri, resources[0].uri);
        const { resourceTemplates } = await own.client.listResourceTemplates();
        assert.ok(resourceTemplates.some((t) => t.uriTemplate.includes('{resourceId}')), JSON.stringify(resourceTemplates));
        const { prompts } = await own.client.listPrompts();
        assert.ok(prompts.some((p) => p.name === 'simple-prompt'), JSON.stringify(prompts));
        const got = await own.client.getPrompt({ name: 'args-prompt', arguments: { city: 'Austin' } });
        assert.match(JSON.stringify(got.messages), /Austin/);
        await assert.rejects(own.client.readResource({ uri: 'demo://resource/none' }), (e) => {
          assert.equal(e.code, -32602, `${era}: ${e.message}`);
          return true;
        });
        // The agent's own unknown-tool answer, not ours.
        const unknown = await own.callTool({ name: 'everything__echo', arguments: {} }).catch((e) => e);
        assert.ok(unknown instanceof Error ? /everything__echo/.test(unknown.message) : unknown.isError, JSON.stringify(unknown));
      } finally {
        await own.close();
        await main.close();
      }
    });
  }

  it('serverInfo and capabilities are the agent\'s, named for its endpoint', async () => {
    const r = await modernPost(at('/agents/everything/mcp'), 1, 'server/discover', {});
    assert.equal(r.status, 200, r.text);
    const caps = r.json.result.capabilities;
    assert.ok(caps.tools && caps.resources && caps.prompts, JSON.stringify(caps));
    assert.equal(caps.tools.listChanged, true);
    // The agent's own `tasks` is 2025-11-25's capability: a modern client
    // knows tasks as an extension only.
    assert.equal(caps.tasks, undefined, JSON.stringify(caps));
    assert.equal(r.json.result._meta['io.modelcontextprotocol/serverInfo'].name, 'switchboard/agents/everything');
  });

  it('unknown agents and servers are 404 with a JSON-RPC error naming the path', async () => {
    for (const path of ['/agents/nobody/mcp', '/servers/nothing/mcp', '/agents//mcp', '/agents/everything/mcp/extra']) {
      const r = await modernPost(at(path), 7, 'tools/list', {});
      assert.equal(r.status, 404, `${path}: ${r.text}`);
      assert.equal(r.json.error.code, -32600, r.text);
      assert.ok(r.json.error.message.includes(path), r.json.error.message);
    }
  });

  it('bad input on an agent endpoint is answered like on /mcp, and the endpoint keeps serving', async () => {
    const url = at('/agents/everything/mcp');
    const raw = async (method, body, headers = {}) => {
      const res = await fetch(url, { method, headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json', ...headers }, body });
      const text = await res.text();
      return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
    };
    let r = await raw('POST', '{"jsonrpc":"2.0","id":1,"method":');
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.code, -32700, r.text);
    r = await raw('PUT', '{}');
    assert.equal(r.status, 405, r.text);
    assert.match(r.json.error.message, /PUT is not allowed on \/agents\/everything\/mcp/);
    r = await raw('POST', JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }));
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error.message, /Mcp-Session-Id header is required/);
    r = await raw('POST', JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' }, _meta: META } }),
      { 'MCP-Protocol-Version': MODERN_VERSION, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'get-sum' });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.code, -32020, r.text);
    const ok = await modernPost(url, 4, 'tools/call', { name: 'echo', arguments: { message: 'still here' } }, 'echo');
    assert.equal(ok.json.result.content[0].text, 'Echo: still here', ok.text);
  });

  it('a tools/call without arguments reaches the agent with empty arguments', async () => {
    await pollUntil(async () => {
      const l = await modernPost(at('/agents/flaky/mcp'), 20, 'tools/list', {});
      return (l.json.result?.tools || []).some((t) => t.name === 'whoami');
    }, { what: 'the flaky agent connected' });
    for (const [url, name] of [[at('/agents/flaky/mcp'), 'whoami'], [server.url, 'flaky__whoami']]) {
      const r = await modernPost(url, 21, 'tools/call', { name }, name);
      assert.equal(r.json.result?.isError, undefined, r.text);
      assert.match(r.json.result.content[0].text, /^F \(call \d+\)$/, r.text);
    }
  });

  it('a legacy session belongs to the endpoint that opened it', async () => {
    const own = await connect('legacy', at('/agents/everything/mcp'));
    try {
      const sid = own.transport.sessionId;
      assert.ok(sid);
      for (const url of [server.url, at('/agents/flaky/mcp')]) {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
        });
        assert.equal(res.status, 404, `${url} accepted another endpoint's session`);
        await res.text();
      }
      // ...and still works where it was opened.
      assert.ok((await own.client.listTools()).tools.length > 0);
    } finally {
      await own.close();
    }
  });

  it('a tampered requestState is refused; the genuine one completes the call', async () => {
    const url = at('/agents/everything/mcp');
    const params = { name: 'trigger-sampling-request', arguments: { prompt: 'Which trims?', maxTokens: 20 } };
    const first = await modernPost(url, 10, 'tools/call', params, params.name);
    assert.equal(first.json.result?.resultType, 'input_required', first.text);
    const state = first.json.result.requestState;
    const [key] = Object.keys(first.json.result.inputRequests);
    assert.equal(first.json.result.inputRequests[key].method, 'sampling/createMessage');
    const answer = { role: 'assistant', content: { type: 'text', text: 'XLT and Lariat' }, model: 'm', stopReason: 'endTurn' };
    const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    for (const forged of [flip(state, 12), flip(state, state.length - 3), `${state}x`, 'sb-park:nonsense']) {
      const r = await modernPost(url, 11, 'tools/call', { ...params, requestState: forged, inputResponses: { [key]: answer } }, params.name);
      assert.equal(r.json.error?.code, -32602, `forged state accepted: ${r.text}`);
      assert.match(r.json.error.message, /requestState/);
    }
    // Bound to its tool: the same state on another tool is refused too.
    const other = await modernPost(url, 12, 'tools/call', { name: 'echo', arguments: { message: 'x' }, requestState: state, inputResponses: { [key]: answer } }, 'echo');
    assert.equal(other.json.error?.code, -32602, other.text);
    const done = await modernPost(url, 13, 'tools/call', { ...params, requestState: state, inputResponses: { [key]: answer } }, params.name);
    assert.equal(done.json.result?.resultType, 'complete', done.text);
    assert.match(JSON.stringify(done.json.result.content), /XLT and Lariat/);
  });

  it('a legacy agent that dies mid-session is reconnected; the client keeps its session', async () => {
    const own = await connect('legacy', at('/agents/flaky/mcp'));
    try {
      await waitForTools(own, ['crash', 'whoami']);
      const sid = own.transport.sessionId;
      const crashed = await callWithin(own, { name: 'crash', arguments: {} });
      assert.equal(crashed.isError, true, JSON.stringify(crashed));
      assert.match(textOf(crashed.content), /flaky/);
      const res = await pollUntil(async () => {
        const r = await callWithin(own, { name: 'whoami', arguments: {} });
        return r.isError ? { ok: false, message: textOf(r.content) } : r;
      }, { what: 'whoami after the restart' });
      assert.match(textOf(res.content), /F/);
      assert.equal(own.transport.sessionId, sid, 'same session throughout');
    } finally {
      await own.close();
    }
  });

  for (const era of ['modern', 'legacy']) {
    it(`${era} client: a virtual server shows only what it includes`, async () => {
      const desk = await connect(era, at('/servers/front-desk/mcp'));
      try {
        const tools = (await waitForTools(desk, ['echo', 'get-sum', 'whoami'])).map((t) => t.name);
        assert.deepEqual(tools, ['echo', 'get-sum', 'whoami']);
        const who = await callWithin(desk, { name: 'whoami', arguments: {} });
        assert.match(textOf(who.content), /F/);
        const sum = await callWithin(desk, { name: 'get-sum', arguments: { a: 2, b: 3 } });
        assert.match(textOf(sum.content), /5/);
        const hidden = await desk.callTool({ name: 'get-env', arguments: {} }).catch((e) => e);
        assert.ok(hidden instanceof Error, `get-env is not included: ${JSON.stringify(hidden)}`);
        assert.match(hidden.message, /Unknown tool: get-env/);
        const { resources } = await desk.client.listResources();
        assert.ok(resources.length > 0, 'static resources included');
        assert.ok(resources.every((r) => r.uri.startsWith('demo://resource/static/')), JSON.stringify(resources.map((r) => r.uri)));
        const read = await desk.client.readResource({ uri: resources[0].uri });
        assert.equal(read.contents[0].uri, resources[0].uri);
        await assert.rejects(desk.client.readResource({ uri: 'demo://resource/dynamic/text/1' }), /not found/i);
        const { prompts } = await desk.client.listPrompts();
        assert.deepEqual(prompts.map((p) => p.name), ['simple-prompt']);
        await assert.rejects(desk.client.getPrompt({ name: 'args-prompt', arguments: { city: 'x' } }), /Unknown prompt/);
      } finally {
        await desk.close();
      }
    });
  }
});

describe('serve --stdio --agent', { timeout: 60000 }, () => {
  it('serves one agent on stdio under its own names', async () => {
    const params = stdioServerParams(['--config', writeConfigWith([everythingStdio('everything')]), '--agent', 'everything']);
    const transport = new StdioClientTransport(params);
    const client = new LegacyClient({ name: 'stdio-agent-test', version: '0' }, { capabilities: {} });
    await withDeadline(client.connect(transport), DEADLINE_MS, 'stdio connect');
    try {
      const tools = await pollUntil(async () => {
        const { tools: t } = await client.listTools();
        return t.some((x) => x.name === 'echo') ? t : { ok: false, message: t.map((x) => x.name).join(',') };
      }, { what: 'echo listed' });
      assert.ok(!tools.some((t) => t.name.includes('__')), 'no prefixes, no switchboard tools');
      const r = await withDeadline(client.callTool({ name: 'echo', arguments: { message: 'stdio' } }, CallToolResultSchema), DEADLINE_MS, 'echo');
      assert.equal(textOf(r.content), 'Echo: stdio');
    } finally {
      await client.close();
    }
  });

  function run(args) {
    return new Promise((resolve) => {
      const p = spawn(switchboardBin(), args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let stderr = '';
      p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
      p.stdin.end();
      p.once('exit', (code) => resolve({ code, stderr }));
    });
  }

  it('a tools/list sent at once, as an MCP host does, finds the agent\'s tools, not "not connected yet"', async () => {
    // It used to be answered while the agent was still starting: -32603
    // "agent everything is down, so its tools cannot be listed: not
    // connected yet", for a host that lists once.
    const cfg = writeConfigWith([everythingStdio('everything')]);
    const p = spawn(switchboardBin(), ['serve', '--stdio', '--config', cfg, '--agent', 'everything'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => p.once('exit', (code) => resolve(code)));
    try {
      const first = new Promise((resolve) => {
        let out = '';
        p.stdout.setEncoding('utf8').on('data', (d) => {
          out += d;
          const nl = out.indexOf('\n');
          if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)));
        });
      });
      p.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: META } })}\n`);
      const answer = await withDeadline(first, DEADLINE_MS, 'the first tools/list answered');
      assert.ok(answer.result, `${JSON.stringify(answer)}\n${stderr}`);
      assert.ok(answer.result.tools.some((t) => t.name === 'echo'), JSON.stringify(answer.result.tools.map((t) => t.name)));
    } finally {
      p.stdin.end();
      assert.equal(await withDeadline(exited, DEADLINE_MS, 'exit on EOF'), 0, stderr);
    }
  });

  it('refuses what cannot work, naming why', async () => {
    const cfg = writeConfigWith([everythingStdio('everything')]);
    let r = await withDeadline(run(['serve', '--listen', '127.0.0.1:0', '--config', cfg, '--agent', 'everything']), DEADLINE_MS, 'exit');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--agent needs --stdio/);
    r = await withDeadline(run(['serve', '--stdio', '--agent', 'everything']), DEADLINE_MS, 'exit');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /needs --config/);
    r = await withDeadline(run(['serve', '--stdio', '--config', cfg, '--agent', 'nobody']), DEADLINE_MS, 'exit');
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /--agent nobody: no agent with that id/);
  });

  it('a bad servers: entry stops the start with the line and the path', async () => {
    const cases = [
      [{ name: 'desk', include: [{ agent: 'everything', tool: ['echo'] }] }, /line 6: servers\[0\]\.include\[0\]\.tool: unknown field \(known: agent, tools, resources, prompts\)/],
      [{ name: 'bad name!', include: [{ agent: 'everything' }] }, /servers\[0\]\.name: required: 1 to 64 letters/],
      [{ name: 'desk', include: [] }, /servers\[0\]\.include: required: a non-empty list/],
      [{ name: 'desk', include: [{ agent: 'everything', tools: 'echo' }] }, /servers\[0\]\.include\[0\]\.tools: expected a list of strings, got a string/],
      [{ name: 'desk', include: [{ tools: ['echo'] }] }, /servers\[0\]\.include\[0\]\.agent: required/],
    ];
    for (const [bad, want] of cases) {
      const cfg = writeConfigWith([everythingStdio('everything')], [bad]);
      const r = await withDeadline(run(['serve', '--stdio', '--config', cfg]), DEADLINE_MS, 'exit');
      assert.notEqual(r.code, 0, `${JSON.stringify(bad)} accepted`);
      assert.match(r.stderr, want, withStderr({ stderr: r.stderr }, JSON.stringify(bad)));
    }
  });
});

describe('a modern agent behind its own endpoint (switchboard behind switchboard)', { timeout: 60000 }, () => {
  let back;
  let front;
  let url;

  before(async () => {
    back = await startHttpServer();
    front = await startHttpServer({
      extraArgs: ['--config', writeConfigWith([{ ...flakyAgent('back', 'B'), capabilities: ['general'], transport: { type: 'http', url: back.url } }])],
    });
    url = front.url.replace(/\/mcp$/, '/agents/back/mcp');
  });

  after(async () => {
    for (const s of [front, back]) {
      const done = await s.stop();
      assert.equal(done.code, 0, s.stderr.slice(-2000));
    }
  });

  it('legacy client: resources/subscribe becomes the agent\'s subscriptions/listen; updates come back', async () => {
    const ctx = await connect('legacy', url);
    const updates = new EventLog('resources/updated');
    const lists = new EventLog('resources/list_changed');
    ctx.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => updates.push(n.params.uri));
    ctx.client.setNotificationHandler(ResourceListChangedNotificationSchema, () => lists.push('changed'));
    try {
      await waitForTools(ctx, ['note_write']);
      // Answered only once the agent has acknowledged the listen naming
      // the URI: the very next write is seen.
      await ctx.client.subscribeResource({ uri: 'switchboard://notes/trade-in' });
      const r = await callWithin(ctx, { name: 'note_write', arguments: { name: 'trade-in', text: '2019 Civic' } });
      assert.notEqual(r.isError, true, textOf(r.content));
      await updates.waitFor((u) => u === 'switchboard://notes/trade-in', { what: 'resources/updated through the bridge' });
      await lists.waitFor(() => true, { what: 'resources/list_changed for the new note' });
      const read = await ctx.client.readResource({ uri: 'switchboard://notes/trade-in' });
      assert.equal(read.contents[0].text, '2019 Civic');
      await ctx.client.unsubscribeResource({ uri: 'switchboard://notes/trade-in' });
    } finally {
      await ctx.close();
    }
  });

  it('legacy client: logging/setLevel is honoured for a modern agent\'s log messages', async () => {
    const ctx = await connect('legacy', url);
    const logs = new EventLog('notifications/message');
    ctx.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
    try {
      await waitForTools(ctx, ['slow_count']);
      await callWithin(ctx, { name: 'slow_count', arguments: { steps: 2, interval_ms: 10 } });
      assert.equal(logs.items.length, 0, 'nothing before logging/setLevel');
      await ctx.client.setLoggingLevel('info');
      await callWithin(ctx, { name: 'slow_count', arguments: { steps: 2, interval_ms: 10 } });
      await logs.waitFor((p) => p.data === 'step 2 of 2', { what: 'the agent\'s log lines' });
      assert.ok(logs.items.every((p) => p.level === 'info' && p.logger === 'slow_count'), JSON.stringify(logs.items));
      await ctx.client.setLoggingLevel('error');
      const before = logs.items.length;
      await callWithin(ctx, { name: 'slow_count', arguments: { steps: 2, interval_ms: 10 } });
      assert.equal(logs.items.length, before, 'info lines are filtered at level error');
    } finally {
      await ctx.close();
    }
  });

  it('modern client: _meta logLevel gets the agent\'s log lines in the request\'s stream', async () => {
    const post = async (level) => {
      const meta = { ...META };
      if (level) meta['io.modelcontextprotocol/logLevel'] = level;
      const res = await fetch(url, {
        method: 'POST',
        headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json', 'MCP-Protocol-Version': MODERN_VERSION, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'slow_count' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'slow_count', arguments: { steps: 2, interval_ms: 10 }, _meta: { ...meta, progressToken: 'p1' } } }),
      });
      const text = await res.text();
      return text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
    };
    let msgs = await post('info');
    const logs = msgs.filter((m) => m.method === 'notifications/message').map((m) => m.params.data);
    assert.deepEqual(logs, ['step 1 of 2', 'step 2 of 2'], JSON.stringify(msgs));
    const progress = msgs.filter((m) => m.method === 'notifications/progress');
    assert.deepEqual(progress.map((m) => [m.params.progressToken, m.params.progress]), [['p1', 1], ['p1', 2]]);
    assert.equal(msgs.at(-1).result.resultType, 'complete');
    msgs = await post(undefined);
    assert.equal(msgs.filter((m) => m.method === 'notifications/message').length, 0, 'no logLevel, no log lines');
  });
});

describe('a legacy HTTP agent: one pooled session, re-opened when the agent ends it', { timeout: 60000 }, () => {
  let agent;
  let sb;

  before(async () => {
    agent = await startEverythingHttp();
    sb = await startHttpServer({ extraArgs: ['--config', writeConfigWith([agentDef('e', { transport: { type: 'http', url: agent.url } })])] });
  });

  after(async () => {
    const done = await sb.stop();
    await agent.stop();
    assert.equal(done.code, 0, sb.stderr.slice(-2000));
  });

  // everything_http.mjs logs every request it gets: an initialize is a POST
  // with no session and no MCP-Protocol-Version header (the server/discover
  // probe carries 2026-07-28).
  const initializes = () => agent.stderr.split('\n').filter((l) => /^everything-http POST session=none version=none$/.test(l)).length;
  const sessionId = () => /everything-http POST session=([0-9a-f-]{36})/.exec(agent.stderr)?.[1];

  it('many calls from clients of both eras share one initialize', async () => {
    const legacy = await connect('legacy', sb.url.replace(/\/mcp$/, '/agents/e/mcp'));
    const modern = await connect('modern', sb.url.replace(/\/mcp$/, '/agents/e/mcp'));
    try {
      await waitForTools(legacy, ['echo']);
      for (let i = 0; i < 3; i++) {
        for (const ctx of [legacy, modern]) {
          const r = await callWithin(ctx, { name: 'echo', arguments: { message: `call ${i}` } });
          assert.equal(textOf(r.content), `Echo: call ${i}`);
        }
      }
      assert.equal(initializes(), 1, agent.stderr);
    } finally {
      await legacy.close();
      await modern.close();
    }
  });

  it('the agent ends the session: the next call opens a new one and succeeds', async () => {
    const ctx = await connect('legacy', sb.url.replace(/\/mcp$/, '/agents/e/mcp'));
    try {
      await waitForTools(ctx, ['echo']);
      const sid = sessionId();
      assert.ok(sid, agent.stderr);
      const del = await fetch(agent.url, { method: 'DELETE', headers: { 'mcp-session-id': sid } });
      assert.equal(del.status, 200);
      const r = await callWithin(ctx, { name: 'echo', arguments: { message: 'after the restart' } });
      assert.equal(textOf(r.content), 'Echo: after the restart', withStderr(sb, JSON.stringify(r)));
      assert.equal(initializes(), 2, agent.stderr);
    } finally {
      await ctx.close();
    }
  });
});

describe('an agent\'s question to a legacy client, withdrawn or outlived', { timeout: 60000 }, () => {
  let sb;

  before(async () => {
    sb = await startHttpServer({ extraArgs: ['--config', writeConfigWith([flakyAgent('flaky', 'F')])] });
  });

  after(async () => {
    const done = await sb.stop();
    assert.equal(done.code, 0, sb.stderr.slice(-2000));
  });

  // A v1 client whose sampling handler never answers; it records the
  // request and whether the SDK aborted it (notifications/cancelled).
  async function withSilentSampler() {
    const ctx = await connect('legacy', sb.url.replace(/\/mcp$/, '/agents/flaky/mcp'), { sampling: () => new Promise(() => {}) });
    const aborted = new EventLog('aborted sampling requests');
    ctx.client.setRequestHandler(CreateMessageRequestSchema, (req, extra) => {
      ctx.samplings.push(req);
      extra.signal.addEventListener('abort', () => aborted.push(extra.requestId));
      return new Promise(() => {});
    });
    return { ctx, aborted };
  }

  it('the agent withdraws its sampling request: the client is told, the call ends', async () => {
    const { ctx, aborted } = await withSilentSampler();
    try {
      await waitForTools(ctx, ['ask_then_withdraw']);
      const r = await callWithin(ctx, { name: 'ask_then_withdraw', arguments: {} });
      assert.equal(textOf(r.content), 'F withdrew its question');
      await ctx.samplings.waitFor(() => true, { what: 'the sampling request' });
      await aborted.waitFor(() => true, { what: 'notifications/cancelled for it' });
    } finally {
      await ctx.close();
    }
  });

  it('the client cancels its call while the agent\'s question waits: the agent gets an error, nothing leaks', async () => {
    const { ctx } = await withSilentSampler();
    try {
      await waitForTools(ctx, ['ask']);
      const ac = new AbortController();
      const pending = ctx.callTool({ name: 'ask', arguments: {} }, { signal: ac.signal });
      await ctx.samplings.waitFor(() => true, { what: 'the sampling request' });
      ac.abort('the customer left');
      await assert.rejects(withDeadline(pending, DEADLINE_MS, 'the cancelled call'));
      // The agent keeps serving (and switchboard exits cleanly, leak-checked
      // under the sanitizer build).
      const who = await callWithin(ctx, { name: 'whoami', arguments: {} });
      assert.match(textOf(who.content), /^F /);
    } finally {
      await ctx.close();
    }
  });
});

describe('an agent that is down is not an empty list', { timeout: 60000 }, () => {
  let server;
  let base;
  const at = (path) => `${base}${path}`;
  // An agent that exits as soon as it starts: never connected, always down.
  const ghost = agentDef('ghost', { transport: { type: 'stdio', command: process.execPath, args: ['-e', 'process.exit(3)'] } });

  before(async () => {
    server = await startHttpServer({
      extraArgs: ['--config', writeConfigWith([everythingStdio('everything'), ghost], [
        { name: 'mixed', include: [{ agent: 'ghost' }, { agent: 'everything', tools: ['echo'] }] },
        { name: 'haunted', include: [{ agent: 'ghost' }] },
      ])],
    });
    base = server.url.replace(/\/mcp$/, '');
  });

  after(async () => {
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  it('/agents/{id}/mcp: tools/list, resources/list and prompts/list fail naming the agent and why', async () => {
    for (const [id, method] of [[1, 'tools/list'], [2, 'resources/list'], [3, 'prompts/list'], [4, 'resources/templates/list']]) {
      const r = await modernPost(at('/agents/ghost/mcp'), id, method, {});
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.error?.code, -32603, `${method}: ${r.text}`);
      assert.match(r.json.error.message, /agent ghost is down/, r.text);
      assert.equal(r.json.error.data.agent, 'ghost', r.text);
      assert.ok(r.json.error.data.reason && r.json.error.message.includes(r.json.error.data.reason), r.text);
    }
    // Once it has failed at least once, the reason says how.
    await pollUntil(async () => {
      const r = await modernPost(at('/agents/ghost/mcp'), 5, 'tools/list', {});
      return /exit|closed|failed/.test(r.json.error?.data?.reason ?? '') ? r : { ok: false, message: r.text };
    }, { what: 'the reason the ghost agent is down' });
    // A legacy client is told the same.
    const legacy = await connect('legacy', at('/agents/ghost/mcp'));
    try {
      await assert.rejects(legacy.client.listTools(), (e) => /agent ghost is down/.test(e.message));
    } finally {
      await legacy.close();
    }
  });

  it('a virtual server lists its live agents, and fails only when all of them are down', async () => {
    const tools = await pollUntil(async () => {
      const r = await modernPost(at('/servers/mixed/mcp'), 6, 'tools/list', {});
      return r.json.result?.tools?.length ? r.json.result.tools : { ok: false, message: r.text };
    }, { what: 'the live agent\'s tools on the mixed server' });
    assert.deepEqual(tools.map((t) => t.name), ['echo']);
    const r = await modernPost(at('/servers/haunted/mcp'), 7, 'tools/list', {});
    assert.equal(r.json.error?.code, -32603, r.text);
    assert.match(r.json.error.message, /every agent of virtual server haunted is down, so its tools cannot be listed: agent ghost \(/, r.text);
    assert.deepEqual(r.json.error.data.agents.map((a) => a.agent), ['ghost'], r.text);
  });
});
