#!/usr/bin/env node
// flow_agent.mjs: a real MCP agent (the official 1.x SDK server, stdio or
// Streamable HTTP) for the workflow tests. It answers with structured
// content, shows what switchboard handed it (the context projection and
// the idempotency key in _meta), honours the idempotency key on `book`
// (sent twice, it acts once and answers the same), and appends every
// execution of `book` to LEDGER (a file, so the count survives restarts
// of the agent and of switchboard). `ask_model` asks its caller for
// sampling (sampling/createMessage) and answers with what came back, or
// with the error. `slow` appends each call it receives (its idempotency
// key and arguments) to CALLS when that is set, as the call arrives, so a
// test can see what a call still in flight was sent with. Over HTTP it
// keeps the headers every request came with that matter to credentials
// (Authorization, and any X-* header, such as those an AgentDefinition
// configures), and `headers_seen` answers them.
//   node flow_agent.mjs NAME [--http]
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CreateMessageResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

const name = process.argv[2] || 'flow';
const http = process.argv.includes('--http');
const KEY = 'switchboard/idempotencyKey';
const done = new Map(); // idempotency key -> result
// An agent that honours the key remembers it across its own restarts: the
// ledger (one "key<TAB>result" line per execution) is its memory.
if (process.env.LEDGER && existsSync(process.env.LEDGER)) {
  for (const line of readFileSync(process.env.LEDGER, 'utf8').split('\n')) {
    const tab = line.indexOf('\t');
    if (tab > 0) done.set(line.slice(0, tab), JSON.parse(line.slice(tab + 1)));
  }
}
let failures = 0;
const seenHeaders = []; // {method, authorization, x: {X-* headers}} per HTTP request

function build() {
  const server = new McpServer({ name, version: '1.0.0' });
  const answer = (obj, meta) => ({
    content: [{ type: 'text', text: JSON.stringify(obj) }],
    structuredContent: obj,
    ...(meta ? { _meta: meta } : {}),
  });
  server.tool('classify', 'Intent and entities of an inquiry', { text: z.string() }, async ({ text }, extra) => {
    const t = text.toLowerCase();
    const intent = /service|oil|brake/.test(t) ? 'service' : /buy|price|lease/.test(t) ? 'buy' : 'other';
    const make = (t.match(/\b(toyota|honda|ford|bmw)\b/) || [])[1];
    return answer({ intent, entities: make ? { make } : {}, agent: name, key: extra._meta?.[KEY] ?? null });
  });
  server.tool('whoami', 'What switchboard handed this agent', { note: z.any().optional() }, async (args, extra) =>
    answer({ agent: name, args, context: extra._meta?.['switchboard/context'] ?? null,
      key: extra._meta?.[KEY] ?? null, run: extra._meta?.['switchboard/run'] ?? null,
      trace: extra._meta?.traceparent ?? null }));
  server.tool('headers_seen', 'The credential headers of every HTTP request so far', {}, async () =>
    answer({ agent: name, seen: seenHeaders }));
  server.tool('quote', 'A monthly payment', { price: z.number(), months: z.number().int().min(1) },
    async ({ price, months }) => answer({ monthly: Math.round((price / months) * 100) / 100, agent: name }));
  server.tool('book', 'Book a slot (acts once per idempotency key)', { slot: z.string() }, async ({ slot }, extra) => {
    const key = extra._meta?.[KEY];
    if (key && done.has(key)) return answer(done.get(key));
    const result = { booked: slot, agent: name, key: key ?? null };
    if (process.env.LEDGER) appendFileSync(process.env.LEDGER, `${key}\t${JSON.stringify(result)}\n`);
    if (key) done.set(key, result);
    return answer(result);
  });
  server.tool('fail_times', 'Fails its first n calls in this process', { n: z.number().int() }, async ({ n }) => {
    failures++;
    if (failures <= n) return { content: [{ type: 'text', text: `${name} failure ${failures}` }], isError: true };
    return answer({ ok: true, after: failures - 1, agent: name });
  });
  server.tool('slow', 'Answers after ms milliseconds', { ms: z.number().int().min(0), note: z.any().optional() }, async (args, extra) => {
    const { ms } = args;
    if (process.env.CALLS) appendFileSync(process.env.CALLS, `${extra._meta?.[KEY] ?? ''}\t${JSON.stringify(args)}\n`);
    await new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      extra.signal.addEventListener('abort', () => { clearTimeout(t); reject(new Error('cancelled')); });
    });
    return answer({ slept: ms, agent: name });
  });
  server.tool('publish', 'Answers and publishes an event in _meta', { type: z.string(), data: z.any().optional() },
    async ({ type, data }) => answer({ published: type, agent: name },
      { 'switchboard/events': [{ type, data: data ?? {} }] }));
  server.tool('ask_model', 'Asks its caller for sampling; answers {ok, result} or {ok: false, error, code}',
    { text: z.string(), maxTokens: z.number().int().optional(), schema: z.any().optional(), image: z.boolean().optional() },
    async ({ text, maxTokens, schema, image }, extra) => {
      const params = {
        messages: [{ role: 'user', content: image ? { type: 'image', data: 'AAAA', mimeType: 'image/png' } : { type: 'text', text } }],
        systemPrompt: 'You classify dealership inquiries.',
        maxTokens: maxTokens ?? 500,
        ...(schema ? { _meta: { 'switchboard/outputSchema': schema } } : {}),
      };
      try {
        const result = await extra.sendRequest({ method: 'sampling/createMessage', params }, CreateMessageResultSchema);
        return answer({ ok: true, result, agent: name });
      } catch (e) {
        return answer({ ok: false, error: String(e.message ?? e), code: e.code ?? null, agent: name });
      }
    });
  return server;
}

if (http) {
  const srv = createServer(async (req, res) => {
    const server = build();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => { transport.close(); server.close(); });
    await server.connect(transport);
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const msg = body ? JSON.parse(body) : undefined;
      const x = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.startsWith('x-')));
      seenHeaders.push({ method: msg?.method ?? req.method, authorization: req.headers.authorization ?? null, x });
      transport.handleRequest(req, res, msg);
    });
  });
  srv.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
    process.stderr.write(`flow agent ${name} listening on 127.0.0.1:${srv.address().port}\n`);
  });
} else {
  await build().connect(new StdioServerTransport());
}
