#!/usr/bin/env node
// listen_agent.mjs: a 2026-07-28 agent on stdio, raw JSON-RPC, that
// acknowledges each subscriptions/listen and sends its tools/list_changed
// on the open listen only, as a modern server does. Its tools:
//   end-listen  answers the open listen (the agent ends it, as a server
//               restarting or shedding streams does)
//   add-tool    adds a tool named extra-N and says so on the open listen
// Its tools/list says ttlMs of an hour, so a client learns of a change
// from the listen alone. It logs each listen it receives on stderr
// ("listener: listen N open") and each one it ends.
import { createInterface } from 'node:readline';

const VERSION = '2026-07-28';
const send = (msg) => process.stdout.write(JSON.stringify(msg) + '\n');
const answer = (id, result) => send({ jsonrpc: '2.0', id, result: { resultType: 'complete', ...result } });
let listen = null; // the open listen's id
let listens = 0;
const extra = [];

const text = (t) => ({ content: [{ type: 'text', text: t }] });
const tools = {
  'end-listen': () => {
    if (listen === null) return text('no listen open');
    answer(listen, {});
    process.stderr.write(`listener: listen ${listens} ended\n`);
    listen = null;
    return text('ended');
  },
  'add-tool': () => {
    extra.push(`extra-${extra.length + 1}`);
    if (listen !== null) {
      send({ jsonrpc: '2.0', method: 'notifications/tools/list_changed', params: { _meta: { 'io.modelcontextprotocol/subscriptionId': listen } } });
    }
    return text(`added ${extra.at(-1)}${listen === null ? ' (no listen open to say so)' : ''}`);
  },
};

const handlers = {
  'server/discover': () => ({
    supportedVersions: [VERSION],
    capabilities: { tools: { listChanged: true } },
    _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'listener', version: '1.0.0' } },
  }),
  'tools/list': () => ({
    ttlMs: 3600000,
    tools: [...Object.keys(tools), ...extra].map((name) => ({ name, inputSchema: { type: 'object' } })),
  }),
  'tools/call': (p) => (tools[p?.name] ?? (() => text(`${p?.name} called`)))(),
  ping: () => ({}),
};

createInterface({ input: process.stdin }).on('line', (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch { return; }
  if (msg.method === 'notifications/cancelled' && msg.params?.requestId === listen) {
    listen = null;
    return;
  }
  if (msg.id === undefined || !msg.method) return; // notifications, answers
  if (msg.method === 'subscriptions/listen') {
    listen = msg.id;
    listens++;
    process.stderr.write(`listener: listen ${listens} open\n`);
    send({ jsonrpc: '2.0', method: 'notifications/subscriptions/acknowledged', params: { _meta: { 'io.modelcontextprotocol/subscriptionId': msg.id } } });
    return;
  }
  const h = handlers[msg.method];
  if (h) answer(msg.id, h(msg.params));
  else send({ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: `Method not found: ${msg.method}` } });
});
