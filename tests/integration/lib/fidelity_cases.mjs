// fidelity_cases.mjs: the client test set of the fidelity suite (issue 6).
//
// Each case is a function (ctx) => normalised result, where ctx is one
// connected official SDK client (v2 modern or v1 legacy) talking to an agent
// either directly or through switchboard's /agents/{id}/mcp. The suite runs
// every case on both paths and asserts the normalised results are equal.
//
// NORMALISATIONS (the only things allowed to differ between the two paths):
//  N1 `_meta` keys in the reserved `io.modelcontextprotocol/` namespace are
//     dropped from results and notifications (and `_meta` itself when that
//     leaves it empty): serverInfo names whoever answered (the agent, or
//     switchboard), subscriptionId is the client's own listen request id.
//  N2 When the two paths negotiated different eras (only: v2 client with the
//     legacy agent, where the direct connection falls back to 2025-11-25 and
//     the switchboard connection is 2026-07-28), the modern-only result
//     fields `resultType`, `ttlMs` and `cacheScope` are dropped: they do not
//     exist in the 2025 protocol.
//     Likewise a tool's `execution` (2025-11-25 task support), which the
//     2026-07-28 wire does not carry (the v2 SDK's codec strips it).
//  N3 In server-everything's generated text, wall-clock times
//     (toLocaleTimeString) become <time> and session ids become <session>
//     ("session <uuid>" over HTTP, "session undefined" over stdio, where the
//     log text also has no " - SessionId <uuid>" suffix): each path is a
//     different agent session created at a different moment.
//  N4 `_meta.progressToken` on a server->client request (sampling,
//     elicitation) is dropped: like a request id it is minted by whoever
//     sends that request (the agent SDK's legacy shim directly, switchboard
//     through it).
// Nothing else is normalised. Request ids never reach these results.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client as ModernClient, StreamableHTTPClientTransport as ModernHttp } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyHttp } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema, CreateMessageRequestSchema, ElicitRequestSchema, LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

import { DEADLINE_MS, EventLog, PROMPT_MS, withDeadline } from './harness.mjs';
import { startHttpAgent } from '../../agents/agents_lib.mjs';

/**
 * Deadline for a notification the agent pushes at once because of a call we
 * just made (a log, a resource update). Loopback delivery takes
 * milliseconds, and server-everything repeats both every 5 s, so 3 s means
 * the notification path is broken, not slow.
 */
export const NOTIFY_MS = 3 * PROMPT_MS;

const here = dirname(fileURLToPath(import.meta.url));
export const REFERENCE_AGENT = join(here, '..', '..', 'agents', 'reference_agent.mjs');

const CLIENT_INFO = { name: 'switchboard-fidelity-tests', version: '0.1.0' };
export const LOG_LEVEL_META = 'io.modelcontextprotocol/logLevel';

/** What the client's sampling handler answers, on every path. */
export const SAMPLING_ANSWER = { role: 'assistant', content: { type: 'text', text: 'The 2026 F-150 is in stock.' }, model: 'test-model', stopReason: 'endTurn' };

/** Start the reference agent over Streamable HTTP on 127.0.0.1. */
export const startReferenceHttp = () => startHttpAgent(REFERENCE_AGENT, 'reference-agent', 'reference agent');

/**
 * Connect one official SDK client. era 'modern' is the v2 client with
 * version negotiation 'auto' (2026-07-28 when the server offers it, the 2025
 * handshake otherwise); 'legacy' is the v1 client. Both declare sampling and
 * elicitation and answer them the same way; every notification is in
 * ctx.events as {method, params}, every server->client request in ctx.asked.
 */
export async function connectClient(era, url, kind) {
  const ctx = { era, kind, url, events: new EventLog(`${era} ${kind} notifications`), asked: new EventLog(`${era} ${kind} input requests`) };
  const elicitAnswer = { action: 'accept', content: { answer: 'Tuesday at 9' } };
  if (era === 'modern') {
    const c = new ModernClient(CLIENT_INFO, { capabilities: { sampling: {}, elicitation: { form: {} } }, versionNegotiation: { mode: 'auto' } });
    c.setRequestHandler('sampling/createMessage', async (req) => { ctx.asked.push({ method: req.method, params: req.params }); return SAMPLING_ANSWER; });
    c.setRequestHandler('elicitation/create', async (req) => { ctx.asked.push({ method: req.method, params: req.params }); return elicitAnswer; });
    for (const m of ['notifications/message', 'notifications/resources/updated']) {
      c.setNotificationHandler(m, (n) => ctx.events.push({ method: n.method, params: n.params }));
    }
    ctx.client = c;
    ctx.transport = new ModernHttp(new URL(url));
    ctx.callTool = (params, opts) => c.callTool(params, opts);
  } else {
    const c = new LegacyClient(CLIENT_INFO, { capabilities: { sampling: {}, elicitation: {} } });
    c.setRequestHandler(CreateMessageRequestSchema, async (req) => { ctx.asked.push({ method: req.method, params: req.params }); return SAMPLING_ANSWER; });
    c.setRequestHandler(ElicitRequestSchema, async (req) => { ctx.asked.push({ method: req.method, params: req.params }); return elicitAnswer; });
    for (const s of [LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema]) {
      c.setNotificationHandler(s, (n) => ctx.events.push({ method: n.method, params: n.params }));
    }
    ctx.client = c;
    ctx.transport = new LegacyHttp(new URL(url));
    ctx.callTool = (params, opts) => c.callTool(params, CallToolResultSchema, opts);
  }
  await withDeadline(ctx.client.connect(ctx.transport), DEADLINE_MS, `${era} client connect to ${url}`);
  ctx.negotiatedEra = era === 'modern' ? ctx.client.getProtocolEra() : 'legacy';
  ctx.close = async () => {
    if (era === 'legacy' && ctx.transport.sessionId) await ctx.transport.terminateSession().catch(() => {});
    await ctx.client.close().catch(() => {});
  };
  return ctx;
}

// ---- normalisation ----------------------------------------------------------

const RESERVED_META = 'io.modelcontextprotocol/';
const ERA_SPECIFIC_FIELDS = ['resultType', 'ttlMs', 'cacheScope', 'execution'];

/** N1 (+ N2 when eraDiffers), recursively. */
export function normalise(value, { eraDiffers = false } = {}) {
  if (Array.isArray(value)) return value.map((v) => normalise(v, { eraDiffers }));
  if (!value || typeof value !== 'object') return value;
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === '_meta' && v && typeof v === 'object') {
      const kept = Object.fromEntries(Object.entries(v).filter(([mk]) => !mk.startsWith(RESERVED_META)));
      if (Object.keys(kept).length) out._meta = normalise(kept, { eraDiffers });
      continue;
    }
    if (eraDiffers && ERA_SPECIFIC_FIELDS.includes(k)) continue;
    out[k] = normalise(v, { eraDiffers });
  }
  return out;
}

/** N3: server-everything's clocks and session ids. */
export function scrubVolatile(value) {
  return JSON.parse(JSON.stringify(value)
    .replace(/\b\d{1,2}:\d{2}:\d{2}(\s?[AP]M)?/g, '<time>')
    .replace(/ - SessionId [0-9a-f-]{36}/gi, '')
    .replace(/session ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|undefined)/gi, 'session <session>'));
}

/** A rejected request as data: its JSON-RPC code and message. */
export function errorOf(e) {
  return { error: { code: e?.code, message: String(e?.message ?? e) } };
}

async function settle(p) {
  try { return await p; } catch (e) { return errorOf(e); }
}

// ---- building blocks --------------------------------------------------------

const call = (ctx, name, args = {}, opts = {}, meta) => ctx.callTool({ name, arguments: args, ...(meta ? { _meta: meta } : {}) }, { timeout: DEADLINE_MS, ...opts });

/** A tool call that records progress notifications (client onprogress). */
async function callWithProgress(ctx, name, args) {
  const progress = [];
  const result = await call(ctx, name, args, { onprogress: (p) => progress.push(p) });
  return { result, progress };
}

/** The server->client request a call provoked (sampling / elicitation), plus the call's result. */
async function callAsking(ctx, name, args) {
  const from = ctx.asked.items.length;
  const result = await settle(call(ctx, name, args));
  const asked = ctx.asked.since(from).map((a) => {
    const meta = { ...(a.params?._meta ?? {}) };
    delete meta.progressToken; // N4
    const params = { ...a.params };
    if (Object.keys(meta).length) params._meta = meta; else delete params._meta;
    return { ...a, params };
  });
  return { result, asked };
}

/**
 * Resource subscription, era by era: legacy clients resources/subscribe and
 * wait for notifications/resources/updated; modern clients open
 * subscriptions/listen with resourceSubscriptions and wait for the same
 * notification on that stream. `trigger` makes the agent change the resource.
 */
async function subscribeAndWait(ctx, uri, trigger, untrigger) {
  const from = ctx.events.items.length;
  let sub;
  if (ctx.negotiatedEra === 'modern') {
    sub = await withDeadline(ctx.client.listen({ resourceSubscriptions: [uri] }), DEADLINE_MS, 'subscriptions/listen ack');
    // Only modern connections have an ack, so it is checked, not compared.
    assert.deepEqual(sub.honoredFilter, { resourceSubscriptions: [uri] }, 'the listen ack honours the subscription');
  } else {
    await ctx.client.subscribeResource({ uri });
  }
  try {
    const triggered = await trigger();
    const ev = await ctx.events.waitFor((e) => e.method === 'notifications/resources/updated' && e.params?.uri === uri,
      { from, timeoutMs: NOTIFY_MS, what: `notifications/resources/updated for ${uri}` });
    return { triggered, notification: ev };
  } finally {
    if (untrigger) await untrigger();
    if (sub) await sub.close();
    else await ctx.client.unsubscribeResource({ uri }).catch(() => {});
  }
}

// ---- the reference agent's cases -------------------------------------------

export const REFERENCE_CASES = {
  'tools/list': async (ctx) => (await ctx.client.listTools()).tools,
  'tool: text + structuredContent (echo)': (ctx) => call(ctx, 'echo', { message: 'Is the F-150 in stock?' }),
  'tool: image': (ctx) => call(ctx, 'get-image'),
  'tool: audio': (ctx) => call(ctx, 'get-audio'),
  'tool: embedded resource + resource link': (ctx) => call(ctx, 'get-resource', { name: 'alpha' }),
  'tool: error result (isError)': (ctx) => call(ctx, 'fail', { reason: 'no stock' }),
  'tool: invalid arguments': (ctx) => settle(call(ctx, 'echo', { message: 42 })),
  'protocol error: unknown tool': (ctx) => settle(call(ctx, 'no-such-tool')),
  'progress': (ctx) => callWithProgress(ctx, 'progress', { steps: 3 }),
  'logging (threshold info)': async (ctx) => {
    // 2025: logging/setLevel on the session; 2026-07-28: the per-request
    // io.modelcontextprotocol/logLevel _meta key (the v2 SDK does not set
    // it by itself). Either way debug is below the threshold.
    let meta;
    if (ctx.negotiatedEra === 'modern') meta = { [LOG_LEVEL_META]: 'info' };
    else await ctx.client.setLoggingLevel('info');
    const from = ctx.events.items.length;
    const result = await call(ctx, 'log', {}, {}, meta);
    const logs = await ctx.events.waitForCount((e) => e.method === 'notifications/message', 3, { from, timeoutMs: NOTIFY_MS, what: 'log messages' });
    return { result, logs };
  },
  'sampling': (ctx) => callAsking(ctx, 'ask-llm', { prompt: 'Is the F-150 in stock?' }),
  'elicitation': (ctx) => callAsking(ctx, 'ask-user', { question: 'When can you bring the car in?' }),
  'resources/list': async (ctx) => (await ctx.client.listResources()).resources,
  'resources/templates/list': async (ctx) => (await ctx.client.listResourceTemplates()).resourceTemplates,
  'resources/read: static text': (ctx) => ctx.client.readResource({ uri: 'ref://static/hello' }),
  'resources/read: static blob': (ctx) => ctx.client.readResource({ uri: 'ref://static/logo' }),
  'resources/read: from template': (ctx) => ctx.client.readResource({ uri: 'ref://notes/beta' }),
  'resources/read: not found': (ctx) => settle(ctx.client.readResource({ uri: 'ref://notes/no-such-note' })),
  'completion: template variable': (ctx) => ctx.client.complete({ ref: { type: 'ref/resource', uri: 'ref://notes/{name}' }, argument: { name: 'name', value: 'b' } }),
  'completion: prompt argument': (ctx) => ctx.client.complete({ ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'name', value: 'Bo' } }),
  'prompts/list': async (ctx) => (await ctx.client.listPrompts()).prompts,
  'prompts/get: arguments': (ctx) => ctx.client.getPrompt({ name: 'greet', arguments: { name: 'Alice', tone: 'formal' } }),
  'prompts/get: embedded resource': (ctx) => ctx.client.getPrompt({ name: 'with-note', arguments: { note: 'alpha' } }),
  'prompts/get: unknown prompt': (ctx) => settle(ctx.client.getPrompt({ name: 'no-such-prompt' })),
  'subscription: resource updated': (ctx) => subscribeAndWait(ctx, 'ref://notes/bravo',
    () => call(ctx, 'update-note', { name: 'bravo', text: 'updated by the fidelity suite' })),
};

// ---- server-everything's cases ----------------------------------------------

const EV_TEXT_1 = 'demo://resource/dynamic/text/1';

export const EVERYTHING_CASES = {
  'tools/list': async (ctx) => (await ctx.client.listTools()).tools,
  'tool: text (echo)': (ctx) => call(ctx, 'echo', { message: 'Is the F-150 in stock?' }),
  'tool: get-sum': (ctx) => call(ctx, 'get-sum', { a: 2, b: 3 }),
  'tool: image (get-tiny-image)': (ctx) => call(ctx, 'get-tiny-image'),
  'tool: annotated message + image': (ctx) => call(ctx, 'get-annotated-message', { messageType: 'error', includeImage: true }),
  'tool: structuredContent': (ctx) => call(ctx, 'get-structured-content', { location: 'New York' }),
  'tool: embedded resource (get-resource-reference)': async (ctx) => scrubVolatile(await call(ctx, 'get-resource-reference', { resourceType: 'Text', resourceId: 2 })),
  'tool: resource links': (ctx) => call(ctx, 'get-resource-links', { count: 2 }),
  'tool: invalid arguments': (ctx) => settle(call(ctx, 'get-sum', { a: 'two', b: 3 })),
  'protocol error: unknown tool': (ctx) => settle(call(ctx, 'no-such-tool')),
  'progress': (ctx) => callWithProgress(ctx, 'trigger-long-running-operation', { duration: 0.2, steps: 2 }),
  'logging (simulated, threshold debug)': async (ctx) => {
    // server-everything logs outside any request (a random level every 5 s
    // after toggle-simulated-logging, the first one at once), so only the
    // fact and shape of the first message are compared.
    //
    // A modern client has no session: through switchboard it gets the
    // first message only if switchboard reads it while the toggle's call
    // is in flight. An HTTP agent sends it on its session's GET stream,
    // before the call's answer on the POST; read in the other order (two
    // sockets, a loaded machine), the call is over and the message has
    // nowhere to go. So up to three toggles: the first message of any is
    // the one compared (direct, the first always comes).
    if (ctx.negotiatedEra === 'legacy') await ctx.client.setLoggingLevel('debug');
    const meta = ctx.negotiatedEra === 'modern' ? { [LOG_LEVEL_META]: 'debug' } : undefined;
    let on;
    let log;
    for (let tries = 0; tries < 3 && (!log || log.error); tries++) {
      const from = ctx.events.items.length;
      on = await call(ctx, 'toggle-simulated-logging', {}, {}, meta);
      try {
        log = await settle(ctx.events.waitFor((e) => e.method === 'notifications/message' && /-level message|level-message/.test(String(e.params?.data)),
          { from, timeoutMs: NOTIFY_MS, what: 'a simulated log message' }));
      } finally {
        await call(ctx, 'toggle-simulated-logging', {}, {}, meta).catch(() => {});
      }
    }
    return scrubVolatile({ on, log: log.error ? log : { method: log.method, level: typeof log.params.level, data: String(log.params.data).replace(/^\w+[- ]level[- ]message/i, '<level> message') } });
  },
  'sampling': (ctx) => callAsking(ctx, 'trigger-sampling-request', { prompt: 'Is the F-150 in stock?', maxTokens: 50 }),
  'elicitation': (ctx) => callAsking(ctx, 'trigger-elicitation-request'),
  'resources/list': async (ctx) => (await ctx.client.listResources()).resources,
  'resources/templates/list': async (ctx) => (await ctx.client.listResourceTemplates()).resourceTemplates,
  'resources/read: static document': (ctx) => ctx.client.readResource({ uri: 'demo://resource/static/document/instructions.md' }),
  'resources/read: from template': async (ctx) => scrubVolatile(await ctx.client.readResource({ uri: EV_TEXT_1 })),
  'resources/read: not found': (ctx) => settle(ctx.client.readResource({ uri: 'demo://resource/static/document/no-such-file.md' })),
  'completion: template variable': (ctx) => ctx.client.complete({ ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/text/{resourceId}' }, argument: { name: 'resourceId', value: '3' } }),
  'completion: prompt argument': (ctx) => ctx.client.complete({ ref: { type: 'ref/prompt', name: 'completable-prompt' }, argument: { name: 'department', value: 'S' } }),
  'completion: prompt argument with context': (ctx) => ctx.client.complete({ ref: { type: 'ref/prompt', name: 'completable-prompt' }, argument: { name: 'name', value: '' }, context: { arguments: { department: 'Sales' } } }),
  'prompts/list': async (ctx) => (await ctx.client.listPrompts()).prompts,
  'prompts/get: no arguments': (ctx) => ctx.client.getPrompt({ name: 'simple-prompt' }),
  'prompts/get: arguments': (ctx) => ctx.client.getPrompt({ name: 'args-prompt', arguments: { city: 'Austin', state: 'TX' } }),
  'prompts/get: embedded resource': async (ctx) => scrubVolatile(await ctx.client.getPrompt({ name: 'resource-prompt', arguments: { resourceType: 'Text', resourceId: '1' } })),
  'subscription: resource updated': async (ctx) => scrubVolatile(await subscribeAndWait(ctx, EV_TEXT_1,
    () => call(ctx, 'toggle-subscriber-updates'), () => call(ctx, 'toggle-subscriber-updates').catch(() => {}))),
};
