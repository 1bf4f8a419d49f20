#!/usr/bin/env node
// stubborn_agent.mjs: a 2026-07-28 agent on stdio (raw JSON-RPC, one tool)
// that will not stop by itself: it neither exits at stdin EOF nor on
// SIGTERM; only SIGKILL ends it. It writes its pid to $PID_FILE when it
// starts. For switchboard's tests that an agent dies with switchboard,
// however switchboard dies.
//   PID_FILE=/tmp/x.pid node stubborn_agent.mjs
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const VERSION = '2026-07-28';
const send = (msg) => process.stdout.write(JSON.stringify(msg) + '\n');
const answer = (id, result) => send({ jsonrpc: '2.0', id, result: { resultType: 'complete', ...result } });

const handlers = {
  'server/discover': () => ({
    supportedVersions: [VERSION],
    capabilities: { tools: {} },
    _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'stubborn', version: '1.0.0' } },
  }),
  'tools/list': () => ({ tools: [{ name: 'hello', description: 'Says hello', inputSchema: { type: 'object' } }] }),
  'tools/call': () => ({ content: [{ type: 'text', text: 'hello' }] }),
  ping: () => ({}),
};

if (process.env.PID_FILE) writeFileSync(process.env.PID_FILE, `${process.pid}\n`);
process.on('SIGTERM', () => {}); // ignored
// A reader gone is no reason to stop either; and nothing is written once
// stdin has closed.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});
setInterval(() => {}, 1 << 30); // alive after stdin EOF
createInterface({ input: process.stdin }).on('line', (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch { return; }
  if (msg.id === undefined || !msg.method) return; // notifications, answers
  const h = handlers[msg.method];
  if (h) answer(msg.id, h(msg.params));
  else send({ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: `no method ${msg.method}` } });
});
