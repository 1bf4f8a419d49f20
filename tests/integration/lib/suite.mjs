// The scenario list every {SDK era} x {transport} combination runs against
// the real switchboard binary. Tests in one suite share one connection (and
// one server) and run in order; each still sets up what it checks.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { annotate, connectLegacy, connectModern } from './clients.mjs';
import {
  DEADLINE_MS,
  LEGACY_VERSIONS,
  META_PROTOCOL_VERSION,
  MODERN_VERSION,
  PROMPT_MS,
  TOOL_ORDER,
  TOOLS_WITH_OUTPUT_SCHEMA,
  outgoingRequests,
  responseTo,
  textOf,
  withDeadline,
} from './harness.mjs';

const INFO_URI = 'switchboard://info';
const NOTES_TEMPLATE = 'switchboard://notes/{name}';
const noteUri = (name) => `switchboard://notes/${name}`;

/** Await a promise that must reject; returns the error. */
async function rejects(promise, what) {
  const outcome = await withDeadline(promise.then((v) => ({ value: v }), (e) => ({ error: e })), DEADLINE_MS, what);
  assert.ok(outcome.error, `${what}: expected a rejection, got ${JSON.stringify(outcome.value)}`);
  return outcome.error;
}

/**
 * Register the suite for one combination.
 * era: 'modern' (v2 client, 2026-07-28) | 'legacy' (v1 client, initialize)
 * transport: 'stdio' | 'http'
 */
export function defineSdkSuite({ era, transport }) {
  const title = `${era === 'modern' ? 'v2 client (2026-07-28)' : 'v1 client (legacy initialize)'} over ${transport}`;
  describe(title, { timeout: 120000 }, () => {
    let ctx;
    let closed = false;
    // Wrap a test body so a failure carries the wire and server stderr.
    const step = (fn) => async () => {
      try {
        await fn();
      } catch (e) {
        throw ctx ? annotate(e, ctx) : e;
      }
    };

    before(async () => {
      ctx = await (era === 'modern' ? connectModern(transport) : connectLegacy(transport));
    });
    after(async () => {
      if (ctx && !closed) await ctx.close().catch(() => {});
    });

    if (era === 'modern') {
      it('connects in modern mode: server/discover, no initialize, _meta on every request', step(async () => {
        const { client, wire } = ctx;
        assert.equal(client.getProtocolEra(), 'modern');
        assert.equal(client.getNegotiatedProtocolVersion(), MODERN_VERSION);
        const disc = client.getDiscoverResult();
        assert.ok(disc, 'connect kept a DiscoverResult');
        assert.ok(disc.supportedVersions.includes(MODERN_VERSION), `supportedVersions ${JSON.stringify(disc.supportedVersions)}`);
        assert.equal(client.getServerVersion()?.name, 'switchboard');

        // Discover again on the tapped connection itself so the wire shows it.
        const again = await client.discover();
        assert.ok(again.supportedVersions.includes(MODERN_VERSION));
        for (const v of LEGACY_VERSIONS) assert.ok(again.supportedVersions.includes(v), `supportedVersions lacks ${v}`);
        const reqs = outgoingRequests(wire);
        const discReq = reqs.find((m) => m.method === 'server/discover');
        assert.ok(discReq, 'server/discover went over the wire');
        const discRes = responseTo(wire, discReq.id);
        assert.equal(discRes?.result?._meta?.['io.modelcontextprotocol/serverInfo']?.name, 'switchboard',
          `discover result: ${JSON.stringify(discRes)}`);

        assert.ok(!wire.items.some((e) => e.dir === 'out' && (e.msg.method === 'initialize' || e.msg.method === 'notifications/initialized')),
          'the modern client must not send initialize');
        for (const m of reqs) {
          assert.equal(m.params?._meta?.[META_PROTOCOL_VERSION], MODERN_VERSION, `request ${m.method} lacks the _meta protocol version`);
        }
        if (transport === 'http') {
          const posts = ctx.http.items.filter((x) => x.method === 'POST');
          assert.ok(posts.length > 0);
          for (const p of posts) {
            assert.equal(p.headers['mcp-protocol-version'], MODERN_VERSION, `POST ${p.body} lacks MCP-Protocol-Version`);
            assert.equal(p.responseHeaders?.['mcp-session-id'], undefined, 'a modern server must not mint sessions');
          }
        }
      }));
    } else {
      it('connects with initialize and negotiates a legacy version', step(async () => {
        const { client, wire } = ctx;
        const first = wire.items.find((e) => e.dir === 'out');
        assert.equal(first?.msg.method, 'initialize', 'the v1 client opens with initialize');
        const res = responseTo(wire, first.msg.id);
        assert.ok(res?.result, `initialize answered with ${JSON.stringify(res)}`);
        assert.equal(res.result.protocolVersion, '2025-11-25', 'negotiated the v1 client\'s latest version');
        assert.equal(res.result.serverInfo?.name, 'switchboard');
        assert.equal(client.getServerVersion()?.name, 'switchboard');
        assert.ok(wire.items.some((e) => e.dir === 'out' && e.msg.method === 'notifications/initialized'));
        // Legacy requests carry no modern _meta envelope.
        for (const m of outgoingRequests(wire)) assert.equal(m.params?._meta?.[META_PROTOCOL_VERSION], undefined);
        if (transport === 'http') {
          assert.ok(typeof ctx.transport.sessionId === 'string' && ctx.transport.sessionId.length > 0,
            'a legacy HTTP session id was issued');
        }
      }));
    }

    it('advertises the server capabilities', step(async () => {
      const caps = ctx.client.getServerCapabilities();
      assert.ok(caps, 'capabilities known after connect');
      assert.equal(caps.tools?.listChanged, true, `tools: ${JSON.stringify(caps.tools)}`);
      assert.equal(caps.resources?.subscribe, true, `resources: ${JSON.stringify(caps.resources)}`);
      assert.equal(caps.resources?.listChanged, true);
      assert.equal(caps.prompts?.listChanged, true);
      assert.ok(caps.logging, 'logging capability');
      assert.ok(caps.completions, 'completions capability');
    }));

    it('lists the built-in tools in order with their schemas', step(async () => {
      const { tools } = await ctx.client.listTools();
      assert.deepEqual(tools.map((t) => t.name), TOOL_ORDER);
      for (const t of tools) {
        assert.equal(t.inputSchema?.type, 'object', `${t.name} inputSchema`);
        if (TOOLS_WITH_OUTPUT_SCHEMA.includes(t.name)) assert.equal(t.outputSchema?.type, 'object', `${t.name} outputSchema`);
      }
      const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
      assert.deepEqual(byName.echo.inputSchema.required, ['text']);
      assert.equal(byName.echo.inputSchema.properties.text.type, 'string');
      assert.equal(byName.slow_count.inputSchema.properties.steps.type, 'integer');
      assert.ok(byName.note_write.inputSchema.required.includes('name'));
    }));

    it('calls switchboard_info', step(async () => {
      const r = await ctx.callTool({ name: 'switchboard_info', arguments: {} });
      assert.notEqual(r.isError, true);
      assert.ok(textOf(r.content).length > 0, 'has text content');
      const sc = r.structuredContent;
      assert.equal(sc?.name, 'switchboard');
      assert.equal(typeof sc.version, 'string');
      assert.ok(sc.supportedVersions.includes(MODERN_VERSION));
      assert.ok(Number.isFinite(sc.uptimeMs) && sc.uptimeMs >= 0);
    }));

    it('calls echo: text content and structuredContent', step(async () => {
      const text = 'héllo, switchboard ✓';
      const r = await ctx.callTool({ name: 'echo', arguments: { text } });
      assert.notEqual(r.isError, true);
      assert.deepEqual(r.content, [{ type: 'text', text }]);
      assert.deepEqual(r.structuredContent, { text });
    }));

    it('calls fail: a tool-level error with isError', step(async () => {
      const r = await ctx.callTool({ name: 'fail', arguments: { message: 'boom-42' } });
      assert.equal(r.isError, true);
      assert.match(textOf(r.content), /boom-42/);
    }));

    it('calls slow_count and receives progress in order', step(async () => {
      const from = ctx.wire.items.length;
      const progress = [];
      // 100 ms apart: a client stalled longer than that under load reads two
      // notifications and the response at once, and the SDK race below
      // then drops more than the last one.
      const r = await ctx.callTool({ name: 'slow_count', arguments: { steps: 4, interval_ms: 100 } },
        { onprogress: (p) => progress.push(p), timeout: DEADLINE_MS });
      assert.notEqual(r.isError, true);
      assert.match(textOf(r.content), /counted to 4/);

      // Server side (wire): all four progress notifications, in order, with
      // the request's token, before the response.
      const req = ctx.wire.since(from, (e) => e.dir === 'out' && e.msg.method === 'tools/call' && e.msg.params?.name === 'slow_count')[0]?.msg;
      assert.ok(req?.params._meta?.progressToken !== undefined, 'the SDK sent a progressToken');
      const seen = [];
      for (const e of ctx.wire.items.slice(from)) {
        if (e.dir !== 'in') continue;
        if (e.msg.id === req.id) break;
        if (e.msg.method === 'notifications/progress' && e.msg.params.progressToken === req.params._meta.progressToken) seen.push(e.msg.params);
      }
      assert.deepEqual(seen.map((p) => p.progress), [1, 2, 3, 4], `wire progress before the response: ${JSON.stringify(seen)}`);
      for (const p of seen) {
        assert.equal(p.total, 4);
        assert.equal(p.message, `step ${p.progress} of 4`);
      }
      // Client side (SDK callback): the v2 SDK validates notifications
      // asynchronously but settles responses synchronously, so the progress
      // notification written just before the response can lose the race and
      // be dropped ("unknown token"). Everything before it must arrive, in order.
      const got = progress.map((p) => p.progress);
      assert.deepEqual(got.slice(0, 3), [1, 2, 3], `onprogress saw ${JSON.stringify(progress)}`);
      assert.ok(got.length <= 4 && (got.length === 3 || got[3] === 4), `onprogress saw ${JSON.stringify(progress)}`);
      for (const p of progress) assert.equal(p.total, 4);
    }));

    if (era === 'legacy') {
      it('sends log messages from slow_count after logging/setLevel', step(async () => {
        await ctx.client.setLoggingLevel('info');
        const from = ctx.notifications.items.length;
        await ctx.callTool({ name: 'slow_count', arguments: { steps: 2, interval_ms: 10 } });
        const msg = await ctx.notifications.waitFor(
          (n) => n.method === 'notifications/message' && n.params.logger === 'slow_count',
          { from, what: 'notifications/message from slow_count' });
        assert.equal(msg.params.level, 'info');
      }));
    }

    it('cancels a slow call, and the server keeps serving', step(async () => {
      const { wire } = ctx;
      const ac = new AbortController();
      const progress = [];
      let cancelAt = -1;
      const call = ctx.callTool({ name: 'slow_count', arguments: { steps: 200, interval_ms: 50 } }, {
        signal: ac.signal,
        timeout: DEADLINE_MS,
        onprogress: (p) => {
          progress.push(p);
          if (progress.length === 2) {
            cancelAt = wire.items.length;
            ac.abort('sb-test-cancel');
          }
        },
      });
      const err = await rejects(call, 'cancelled slow_count');
      assert.match(String(err.message), /sb-test-cancel/, `rejected with ${err}`);
      assert.ok(cancelAt >= 0, 'cancelled after the second progress notification');

      const req = outgoingRequests(wire).find((m) => m.method === 'tools/call' && m.params?.name === 'slow_count' && m.params.arguments?.steps === 200);
      assert.ok(req, 'the slow call went over the wire');
      const token = req.params._meta?.progressToken;
      const streamSurvives = !(era === 'modern' && transport === 'http');
      if (streamSurvives) {
        // stdio, and legacy HTTP: cancellation is a notifications/cancelled.
        assert.ok(wire.items.some((e) => e.dir === 'out' && e.msg.method === 'notifications/cancelled' && e.msg.params.requestId === req.id),
          'client sent notifications/cancelled');
      }

      const echo = await ctx.callTool({ name: 'echo', arguments: { text: 'still here' } });
      assert.deepEqual(echo.structuredContent, { text: 'still here' });

      // A second slow call that spans several of the cancelled call's
      // intervals: by the time it completes, a call that ignored the cancel
      // would have produced more progress (and eventually a response).
      const r = await ctx.callTool({ name: 'slow_count', arguments: { steps: 6, interval_ms: 50 } });
      assert.match(textOf(r.content), /counted to 6/);
      if (streamSurvives) {
        const late = wire.since(cancelAt, (e) => e.dir === 'in' && e.msg.method === 'notifications/progress' && e.msg.params.progressToken === token);
        assert.ok(late.length <= 1, `server kept reporting progress after cancel: ${JSON.stringify(late.map((e) => e.msg.params))}`);
        assert.equal(responseTo(wire, req.id), undefined, 'no response is sent for a cancelled request');
      }
    }));

    it('reads switchboard://info and rejects an unknown resource', step(async () => {
      const r = await ctx.client.readResource({ uri: INFO_URI });
      assert.equal(r.contents.length, 1);
      const [c] = r.contents;
      assert.equal(c.uri, INFO_URI);
      assert.equal(c.mimeType, 'application/json');
      const info = JSON.parse(c.text);
      assert.equal(info.name, 'switchboard');

      const err = await rejects(ctx.client.readResource({ uri: 'switchboard://nope' }, { cacheMode: 'bypass' }), 'read of an unknown resource');
      assert.equal(err.code, era === 'modern' ? -32602 : -32002, `error: ${err}`);
    }));

    it('lists resources and the notes template', step(async () => {
      const { resources } = await ctx.client.listResources();
      assert.ok(resources.some((r) => r.uri === INFO_URI && r.mimeType === 'application/json'), JSON.stringify(resources));
      const { resourceTemplates } = await ctx.client.listResourceTemplates();
      const tpl = resourceTemplates.find((t) => t.uriTemplate === NOTES_TEMPLATE);
      assert.ok(tpl, JSON.stringify(resourceTemplates));
      assert.equal(tpl.mimeType, 'text/plain');
    }));

    it('subscribes to a note and receives resources/updated on note_write', step(async () => {
      const uri = noteUri('x');
      if (era === 'legacy' && transport === 'http') {
        // Legacy unsolicited notifications ride the standalone GET stream;
        // the SDK opens it after initialize.
        const get = await ctx.http.waitFor((x) => x.method === 'GET', { what: 'the legacy GET SSE stream' });
        assert.equal(get.status, 200, `GET stream answered ${get.status}`);
      }
      const sub = await ctx.subscribe(uri);
      if (era === 'modern') {
        assert.deepEqual(sub.honored.resourceSubscriptions, [uri], `honored ${JSON.stringify(sub.honored)}`);
      }
      const from = ctx.notifications.items.length;
      const w = await ctx.callTool({ name: 'note_write', arguments: { name: 'x', text: 'first' } });
      assert.notEqual(w.isError, true, textOf(w.content));
      const upd = await ctx.notifications.waitFor(
        (n) => n.method === 'notifications/resources/updated' && n.params.uri === uri,
        { from, timeoutMs: PROMPT_MS, what: `notifications/resources/updated for ${uri} (within ${PROMPT_MS} ms of note_write)` });
      assert.equal(upd.params.uri, uri);
      await ctx.notifications.waitFor((n) => n.method === 'notifications/resources/list_changed',
        { from, timeoutMs: PROMPT_MS, what: 'notifications/resources/list_changed for the new note' });

      // An unsubscribed note must not produce an update; the next update for
      // x arrives after it would have, so its absence is observable.
      const from2 = ctx.notifications.items.length;
      await ctx.callTool({ name: 'note_write', arguments: { name: 'y', text: 'other' } });
      await ctx.callTool({ name: 'note_write', arguments: { name: 'x', text: 'second' } });
      await ctx.notifications.waitFor((n) => n.method === 'notifications/resources/updated' && n.params.uri === uri,
        { from: from2, timeoutMs: PROMPT_MS, what: `second update for ${uri}` });
      assert.ok(!ctx.notifications.since(from2).some((n) => n.method === 'notifications/resources/updated' && n.params.uri === noteUri('y')),
        'no update for a note nobody subscribed to');

      const read = await ctx.client.readResource({ uri }, { cacheMode: 'bypass' });
      assert.equal(read.contents[0].text, 'second');
      assert.equal(read.contents[0].mimeType, 'text/plain');
      const { resources } = await ctx.client.listResources(undefined, { cacheMode: 'bypass' });
      assert.ok(resources.some((r) => r.uri === uri), 'the written note is listed');
      await sub.close();
    }));

    it('gets the greeting prompt', step(async () => {
      const { prompts } = await ctx.client.listPrompts();
      const greeting = prompts.find((p) => p.name === 'greeting');
      assert.ok(greeting, JSON.stringify(prompts));
      assert.ok(greeting.arguments.some((a) => a.name === 'name' && a.required === true));
      const r = await ctx.client.getPrompt({ name: 'greeting', arguments: { name: 'Ada' } });
      assert.ok(r.messages.length > 0);
      assert.match(r.messages.map((m) => m.content?.text ?? '').join('\n'), /Ada/);
      const err = await rejects(ctx.client.getPrompt({ name: 'greeting', arguments: {} }), 'greeting without its required argument');
      assert.equal(err.code, -32602, `error: ${err}`);
    }));

    it('completes the greeting name argument and note names', step(async () => {
      const r = await ctx.client.complete({ ref: { type: 'ref/prompt', name: 'greeting' }, argument: { name: 'name', value: 'A' } });
      assert.ok(Array.isArray(r.completion.values), JSON.stringify(r));
      assert.ok(r.completion.values.length <= 100);
      for (const v of r.completion.values) {
        assert.equal(typeof v, 'string');
        assert.ok(v.toLowerCase().startsWith('a'), `completion ${v} does not extend the prefix "A"`);
      }
      await ctx.callTool({ name: 'note_write', arguments: { name: 'completion_note', text: 't' } });
      const n = await ctx.client.complete({ ref: { type: 'ref/resource', uri: NOTES_TEMPLATE }, argument: { name: 'name', value: 'compl' } });
      assert.ok(n.completion.values.includes('completion_note'), JSON.stringify(n));
    }));

    it('drives ask_user through the client elicitation handler', step(async () => {
      const from = ctx.wire.items.length;
      ctx.elicitAnswer = `answer-${era}-${transport}`;
      const r = await withDeadline(
        ctx.callTool({ name: 'ask_user', arguments: { question: 'What is the answer?' } }, { timeout: DEADLINE_MS }),
        PROMPT_MS, `ask_user to complete within ${PROMPT_MS} ms (the answer is immediate)`);
      assert.notEqual(r.isError, true, textOf(r.content));
      assert.match(textOf(r.content), new RegExp(`you said: ${ctx.elicitAnswer}`));
      const asked = ctx.elicitations.items.at(-1);
      assert.ok(asked, 'the SDK handed an elicitation/create to our handler');
      assert.equal(asked.params.requestedSchema?.properties?.answer?.type, 'string');
      const calls = ctx.wire.since(from, (e) => e.dir === 'out' && e.msg.method === 'tools/call').map((e) => e.msg);
      if (era === 'modern') {
        // Multi round-trip: the first answer is input_required, the retry
        // carries inputResponses and echoes requestState.
        assert.equal(calls.length, 2, `tools/call legs: ${JSON.stringify(calls)}`);
        const first = responseTo(ctx.wire, calls[0].id);
        assert.equal(first?.result?.resultType, 'input_required', JSON.stringify(first));
        assert.equal(first.result.inputRequests?.answer?.method, 'elicitation/create');
        assert.equal(typeof first.result.requestState, 'string');
        assert.equal(calls[1].params.requestState, first.result.requestState);
        assert.deepEqual(calls[1].params.inputResponses?.answer?.content, { answer: ctx.elicitAnswer });
        assert.ok(!ctx.wire.since(from).some((e) => e.dir === 'in' && e.msg.method === 'elicitation/create'),
          'modern servers send no server-to-client requests');
      } else {
        assert.equal(calls.length, 1);
        assert.ok(ctx.wire.since(from).some((e) => e.dir === 'in' && e.msg.method === 'elicitation/create'),
          'the legacy server sent an elicitation/create request');
      }
    }));

    if (era === 'modern') {
      it('ask_user without the elicitation capability fails with -32021', step(async () => {
        const err = await rejects(ctx.callTool({
          name: 'ask_user',
          arguments: {},
          // User _meta wins over the SDK's envelope: claim no capabilities.
          _meta: { 'io.modelcontextprotocol/clientCapabilities': {} },
        }), 'ask_user without elicitation');
        assert.equal(err.code, -32021, `error: ${err}`);
      }));
    }

    it('shuts down cleanly', step(async () => {
      closed = true;
      // Errors the client reported while the connection was in use (closing
      // aborts the legacy GET stream, which the v1 SDK reports too).
      const reported = [...ctx.errors.items];
      const exit = await ctx.close();
      assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null },
        `server exit after ${exit.how}; stderr:\n${exit.stderr.slice(-2000)}`);
      // main.c warns when a module left a libuv handle open after stop.
      assert.doesNotMatch(exit.stderr, /still open/, 'shutdown left handles open');
      // The SDK-side progress race (see the slow_count test) is reported via
      // onerror; anything else the client complained about is a failure.
      const errors = reported.filter((e) => !/progress notification for an unknown token/.test(e));
      assert.deepEqual(errors, [], 'client reported errors');
    }));
  });
}
