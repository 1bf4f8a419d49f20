#!/usr/bin/env node
// reference_agent.mjs: a modern reference MCP agent built on the official
// @modelcontextprotocol/server 2.x SDK, for the fidelity suite (issue 6).
//
//   node reference_agent.mjs          Streamable HTTP on 127.0.0.1, port picked
//                                     by the OS (PORT env var to choose one);
//                                     prints "reference-agent listening on
//                                     127.0.0.1:PORT" on stderr; endpoint /mcp.
//   node reference_agent.mjs stdio    MCP on stdin/stdout.
//
// Both eras are served from ONE factory (the SDK's intended shape):
// - 2026-07-28 (modern) requests over HTTP go to createMcpHandler (one
//   instance per request; subscriptions/listen served by the SDK's router,
//   fed by handler.notify);
// - 2025-era (legacy) requests are routed with isLegacyRequest to sessionful
//   WebStandardStreamableHTTPServerTransports (one instance per session), not
//   to the SDK's stateless fallback, because legacy resources/subscribe,
//   unsolicited notifications/resources/updated and server->client
//   sampling/elicitation requests all need a session;
// - on stdio, serveStdio pins one instance per connection in either era.
//
// Features: tools with text, structured content, image, audio, embedded
// resource and resource links, a tool error (isError), progress, logging at
// several levels, sampling and elicitation (returned as input_required, which
// the SDK's legacy shim turns into real server->client requests for 2025-era
// clients), a tool that changes a resource; static resources (text and blob),
// a resource template with completion of its variable and a list callback,
// subscriptions (resources/subscribe in legacy, subscriptions/listen in
// modern); prompts with arguments, one with completion, one embedding a
// resource. Everything it returns is deterministic (no clocks, no random).
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  McpServer, ResourceTemplate, WebStandardStreamableHTTPServerTransport, completable, createMcpHandler,
  ResourceNotFoundError, inputRequired, inputResponse, isLegacyRequest,
} from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';

const INFO = { name: 'switchboard-reference-agent', version: '1.0.0' };

// A 1x1 PNG and a 4-sample 8 kHz mono 8-bit WAV, as base64.
export const TINY_PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
function tinyWav() {
  const samples = Buffer.from([128, 160, 128, 96]);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + samples.length, 4); h.write('WAVE', 8);
  h.write('fmt ', 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22);
  h.writeUInt32LE(8000, 24); h.writeUInt32LE(8000, 28); h.writeUInt16LE(1, 32); h.writeUInt16LE(8, 34);
  h.write('data', 36); h.writeUInt32LE(samples.length, 40);
  return Buffer.concat([h, samples]).toString('base64');
}
export const TINY_WAV = tinyWav();

export const STATIC_TEXT_URI = 'ref://static/hello';
export const STATIC_BLOB_URI = 'ref://static/logo';
export const NOTE_TEMPLATE = 'ref://notes/{name}';
export const noteUri = (name) => `ref://notes/${name}`;

// Process-wide state shared by every instance: the notes (a resource the
// update-note tool changes) and who must hear about changes.
const notes = new Map([['alpha', 'first note'], ['beta', 'second note'], ['bravo', 'third note']]);
const legacyInstances = new Map(); // McpServer -> Set of subscribed URIs (legacy sessions, legacy stdio)
const stdioModern = new Set(); // McpServer pinned to a modern stdio connection (its router filters)
let modernHandler; // createMcpHandler result (HTTP)

function resourceUpdated(uri) {
  for (const [server, uris] of legacyInstances) {
    if (uris.has(uri)) server.server.sendResourceUpdated({ uri }).catch(() => {});
  }
  for (const server of stdioModern) server.server.sendResourceUpdated({ uri }).catch(() => {});
  modernHandler?.notify.resourceUpdated(uri);
}

const text = (t) => ({ type: 'text', text: t });

/** One McpServer with the whole surface; `era` is the SDK's McpRequestContext.era. */
export function makeServer(era, kind) {
  const server = new McpServer(INFO, {
    capabilities: {
      tools: { listChanged: true },
      resources: { subscribe: true, listChanged: true },
      prompts: { listChanged: true },
      logging: {},
      completions: {},
    },
    instructions: 'Reference agent for the switchboard fidelity suite.',
  });

  server.registerTool('echo', {
    title: 'Echo', description: 'Echo a message back as text and structured content',
    inputSchema: z.object({ message: z.string() }),
    outputSchema: z.object({ echoed: z.string(), length: z.number() }),
    annotations: { readOnlyHint: true },
  }, async ({ message }) => ({
    content: [text(`echo: ${message}`)],
    structuredContent: { echoed: message, length: message.length },
  }));

  server.registerTool('get-image', { description: 'A tiny PNG with a caption' }, async () => ({
    content: [text('a 1x1 image follows'), { type: 'image', data: TINY_PNG, mimeType: 'image/png' }],
  }));

  server.registerTool('get-audio', { description: 'A tiny WAV' }, async () => ({
    content: [{ type: 'audio', data: TINY_WAV, mimeType: 'audio/wav' }],
  }));

  server.registerTool('get-resource', {
    description: 'An embedded resource and a resource link',
    inputSchema: z.object({ name: z.string().default('alpha') }),
  }, async ({ name }) => {
    if (!notes.has(name)) return { isError: true, content: [text(`no note named ${name}`)] };
    return {
      content: [
        text(`note ${name}:`),
        { type: 'resource', resource: { uri: noteUri(name), mimeType: 'text/plain', text: notes.get(name) } },
        { type: 'resource_link', uri: STATIC_BLOB_URI, name: 'logo', mimeType: 'image/png', description: 'the logo' },
      ],
    };
  });

  server.registerTool('fail', {
    description: 'Always fails as a tool error (isError)',
    inputSchema: z.object({ reason: z.string().default('it was always going to fail') }),
  }, async ({ reason }) => ({ isError: true, content: [text(`failed: ${reason}`)] }));

  server.registerTool('progress', {
    description: 'Reports progress for each step (when the call carries a progressToken)',
    inputSchema: z.object({ steps: z.number().int().min(1).max(20).default(3) }),
  }, async ({ steps }, ctx) => {
    const token = ctx.mcpReq._meta?.progressToken;
    for (let i = 1; i <= steps; i++) {
      if (token !== undefined) {
        await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: steps, message: `step ${i} of ${steps}` } });
      }
    }
    return { content: [text(`done ${steps} steps`)] };
  });

  server.registerTool('log', {
    description: 'Logs one message at each of debug, info, warning and error',
  }, async (ctx) => {
    for (const level of ['debug', 'info', 'warning', 'error']) {
      await ctx.mcpReq.log(level, `${level} from the reference agent`, 'reference');
    }
    return { content: [text('logged 4 messages')] };
  });

  // Sampling and elicitation are written once as multi round-trip handlers:
  // 2026-07-28 clients see input_required; for 2025-era sessions the SDK's
  // legacy shim sends real sampling/createMessage and elicitation/create
  // requests and re-enters the handler with the answers.
  server.registerTool('ask-llm', {
    description: 'Asks the client to sample an LLM',
    inputSchema: z.object({ prompt: z.string() }),
  }, async ({ prompt }, ctx) => {
    const r = inputResponse(ctx.mcpReq.inputResponses, 'llm');
    if (r.kind !== 'sampling') {
      return inputRequired({
        inputRequests: {
          llm: inputRequired.createMessage({
            messages: [{ role: 'user', content: text(prompt) }],
            systemPrompt: 'You are a dealership assistant.',
            maxTokens: 64,
          }),
        },
      });
    }
    const c = r.result.content;
    const said = Array.isArray(c) ? c.map((b) => b.text ?? '').join('') : c?.text;
    return { content: [text(`the model (${r.result.model}) said: ${said}`)] };
  });

  server.registerTool('ask-user', {
    description: 'Asks the user a question (elicitation)',
    inputSchema: z.object({ question: z.string() }),
  }, async ({ question }, ctx) => {
    const r = inputResponse(ctx.mcpReq.inputResponses, 'answer');
    if (r.kind !== 'elicit') {
      return inputRequired({
        inputRequests: {
          answer: inputRequired.elicit({
            message: question,
            requestedSchema: { type: 'object', properties: { answer: { type: 'string', title: 'Answer' } }, required: ['answer'] },
          }),
        },
      });
    }
    if (r.action !== 'accept') return { content: [text(`the user chose to ${r.action}`)] };
    return { content: [text(`the user said: ${r.content?.answer}`)] };
  });

  server.registerTool('update-note', {
    description: 'Changes a note (notifies subscribers of ref://notes/{name})',
    inputSchema: z.object({ name: z.string(), text: z.string() }),
  }, async ({ name, text: body }) => {
    notes.set(name, body);
    resourceUpdated(noteUri(name));
    return { content: [text(`note ${name} updated`)] };
  });

  server.registerResource('hello', STATIC_TEXT_URI, { title: 'Hello', description: 'A static text resource', mimeType: 'text/plain' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'Hello from the reference agent.' }] }));
  server.registerResource('logo', STATIC_BLOB_URI, { title: 'Logo', description: 'A static blob resource', mimeType: 'image/png' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'image/png', blob: TINY_PNG }] }));

  server.registerResource('note', new ResourceTemplate(NOTE_TEMPLATE, {
    list: async () => ({ resources: [...notes.keys()].sort().map((n) => ({ uri: noteUri(n), name: `note ${n}`, mimeType: 'text/plain' })) }),
    complete: { name: (value) => [...notes.keys()].sort().filter((n) => n.startsWith(value)) },
  }), { title: 'Note', description: 'A note by name', mimeType: 'text/plain' }, async (uri, { name }) => {
    if (!notes.has(name)) {
      // resources/read misses answer -32602 in every era with this SDK.
      throw new ResourceNotFoundError(uri.href);
    }
    return { contents: [{ uri: uri.href, mimeType: 'text/plain', text: notes.get(name) }] };
  });

  server.registerPrompt('greet', {
    title: 'Greet', description: 'Greets a customer by name',
    argsSchema: z.object({
      name: completable(z.string().describe('Customer name'), (v) => ['Alice', 'Bob', 'Bobby'].filter((n) => n.startsWith(v))),
      tone: z.string().describe('formal or casual').optional(),
    }),
  }, ({ name, tone }) => ({
    description: 'A greeting',
    messages: [{ role: 'user', content: text(tone === 'formal' ? `Good day, ${name}.` : `Hi ${name}!`) }],
  }));

  server.registerPrompt('with-note', {
    description: 'Embeds a note as a resource',
    argsSchema: z.object({ note: z.string() }),
  }, ({ note }) => ({
    messages: [
      { role: 'user', content: text(`Summarise note ${note}:`) },
      { role: 'user', content: { type: 'resource', resource: { uri: noteUri(note), mimeType: 'text/plain', text: notes.get(note) ?? '' } } },
    ],
  }));

  if (era === 'legacy') {
    // 2025-era subscriptions; subscriptions/listen replaces these in 2026-07-28.
    const uris = new Set();
    legacyInstances.set(server, uris);
    server.server.setRequestHandler('resources/subscribe', async (req) => { uris.add(req.params.uri); return {}; });
    server.server.setRequestHandler('resources/unsubscribe', async (req) => { uris.delete(req.params.uri); return {}; });
  } else if (kind === 'stdio') {
    stdioModern.add(server);
  }
  return server;
}

function forget(server) {
  legacyInstances.delete(server);
  stdioModern.delete(server);
}

// ---- HTTP ----------------------------------------------------------------

const legacySessions = new Map(); // session id -> { transport, server }

async function legacyFetch(request) {
  const sid = request.headers.get('mcp-session-id');
  if (sid) {
    const s = legacySessions.get(sid);
    if (!s) {
      return Response.json({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }, { status: 404 });
    }
    return s.transport.handleRequest(request);
  }
  const server = makeServer('legacy', 'http');
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (id) => { legacySessions.set(id, { transport, server }); },
    onsessionclosed: (id) => { legacySessions.delete(id); forget(server); },
  });
  transport.onclose = () => {
    if (transport.sessionId) legacySessions.delete(transport.sessionId);
    forget(server);
  };
  await server.connect(transport);
  const res = await transport.handleRequest(request);
  if (!transport.sessionId) { forget(server); await server.close().catch(() => {}); } // not an initialize
  return res;
}

async function toWebRequest(req, signal) {
  const chunks = [];
  if (req.method !== 'GET' && req.method !== 'HEAD') for await (const c of req) chunks.push(c);
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (Array.isArray(v)) for (const x of v) headers.append(k, x); else if (v !== undefined) headers.set(k, v);
  }
  return new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url}`, {
    method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined, signal,
  });
}

async function sendWebResponse(res, response) {
  const headers = {};
  response.headers.forEach((v, k) => { headers[k] = v; });
  res.writeHead(response.status, headers);
  if (!response.body) { res.end(); return; }
  const reader = response.body.getReader();
  res.on('close', () => { reader.cancel().catch(() => {}); });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      res.write(value);
    }
  } catch { /* client went away */ }
  res.end();
}

async function serveHttp() {
  modernHandler = createMcpHandler(() => makeServer('modern', 'http'), { legacy: 'reject' });
  const srv = http.createServer(async (req, res) => {
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/mcp') { res.writeHead(404).end(); return; }
      const request = await toWebRequest(req, ac.signal);
      const response = (await isLegacyRequest(request)) ? await legacyFetch(request) : await modernHandler.fetch(request);
      await sendWebResponse(res, response);
    } catch (e) {
      process.stderr.write(`reference-agent: ${e?.stack ?? e}\n`);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e?.message ?? e));
    }
  });
  const shutdown = async () => {
    await modernHandler.close().catch(() => {});
    for (const { transport } of legacySessions.values()) await transport.close().catch(() => {});
    srv.closeAllConnections?.();
    srv.close(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  srv.listen(Number(process.env.PORT) || 0, '127.0.0.1', () => {
    const a = srv.address();
    process.stderr.write(`reference-agent listening on ${a.address}:${a.port}\n`);
  });
}

if (process.argv[2] === 'stdio') {
  serveStdio((ctx) => makeServer(ctx.era, 'stdio'), { onerror: (e) => process.stderr.write(`reference-agent: ${e?.message ?? e}\n`) });
} else {
  await serveHttp();
}
