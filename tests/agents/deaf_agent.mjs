#!/usr/bin/env node
// deaf_agent.mjs: a 2026-07-28 agent on stdio, raw JSON-RPC (no SDK, which
// would acknowledge for us), that never acknowledges a subscriptions/listen:
// the listen is neither answered nor followed by
// notifications/subscriptions/acknowledged. Everything else it serves
// plainly: one tool, one resource. For switchboard's tests of what its
// clients are told when an agent leaves a subscription unacknowledged.
//   node deaf_agent.mjs
// It logs each listen it receives on stderr ("deaf: listen URIS"), and
// each one cancelled ("deaf: listen cancelled").
import { createInterface } from 'node:readline';

const VERSION = '2026-07-28';
const send = (msg) => process.stdout.write(JSON.stringify(msg) + '\n');
const listens = new Set(); // ids of the listens not cancelled
const answer = (id, result) => send({ jsonrpc: '2.0', id, result: { resultType: 'complete', ...result } });

const handlers = {
  'server/discover': () => ({
    supportedVersions: [VERSION],
    capabilities: { tools: {}, resources: { subscribe: true } },
    _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'deaf', version: '1.0.0' } },
  }),
  'tools/list': () => ({ tools: [{ name: 'hello', description: 'Says hello', inputSchema: { type: 'object' } }] }),
  'tools/call': () => ({ content: [{ type: 'text', text: 'hello' }] }),
  'resources/list': () => ({ resources: [{ uri: 'deaf://quiet', name: 'quiet' }] }),
  'resources/templates/list': () => ({ resourceTemplates: [] }),
  'resources/read': () => ({ contents: [{ uri: 'deaf://quiet', text: 'shh' }] }),
  ping: () => ({}),
};

createInterface({ input: process.stdin }).on('line', (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch { return; }
  if (msg.method === 'notifications/cancelled' && listens.has(msg.params?.requestId)) {
    listens.delete(msg.params.requestId);
    process.stderr.write('deaf: listen cancelled\n');
    return;
  }
  if (msg.id === undefined || !msg.method) return; // notifications, answers
  if (msg.method === 'subscriptions/listen') {
    const uris = msg.params?.notifications?.resourceSubscriptions ?? [];
    listens.add(msg.id);
    process.stderr.write(`deaf: listen ${uris.join(',')}\n`);
    return; // never acknowledged, never answered
  }
  const h = handlers[msg.method];
  if (h) answer(msg.id, h(msg.params));
  else send({ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: `Method not found: ${msg.method}` } });
});
