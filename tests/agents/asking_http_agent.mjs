#!/usr/bin/env node
// asking_http_agent.mjs: a legacy (2025-11-25) MCP agent on the official
// @modelcontextprotocol/sdk 1.x, over Streamable HTTP on 127.0.0.1, whose
// tool asks its client for sampling while another call is in flight. The
// SDK sends such a request on the response stream of the call it serves,
// which is how switchboard knows the call it belongs to.
//   wait_ask  waits for a poke, then logs "wait_ask asks" and asks
//             sampling/createMessage ("which trim?"), both on its own
//             stream, and answers "heard: TEXT"
//   poke      makes a waiting wait_ask ask, and answers "poked" once that
//             question has been answered; "nothing waits" when none waits
// Prints "asking-http listening on 127.0.0.1:PORT" on stderr.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CreateMessageResultSchema } from '@modelcontextprotocol/sdk/types.js';

let waiting = null; // lets the waiting wait_ask go on
let asked = null; // settles the poke once the question is answered
const transports = new Map();

function makeServer() {
  const server = new McpServer({ name: 'asking-http', version: '1.0.0' }, { capabilities: { tools: {}, logging: {} } });
  server.registerTool('wait_ask', { description: 'Waits for a poke, then asks for sampling', inputSchema: {} }, async (_args, extra) => {
    await new Promise((go) => { waiting = go; });
    try {
      await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', logger: 'asking', data: 'wait_ask asks' } });
      const r = await extra.sendRequest({
        method: 'sampling/createMessage',
        params: { messages: [{ role: 'user', content: { type: 'text', text: 'which trim?' } }], maxTokens: 5 },
      }, CreateMessageResultSchema);
      return { content: [{ type: 'text', text: `heard: ${r.content.text}` }] };
    } finally {
      asked?.();
    }
  });
  server.registerTool('poke', { description: 'Makes a waiting wait_ask ask', inputSchema: {} }, async () => {
    if (!waiting) return { content: [{ type: 'text', text: 'nothing waits' }] };
    const done = new Promise((settle) => { asked = settle; });
    const go = waiting;
    waiting = null;
    go();
    await done;
    return { content: [{ type: 'text', text: 'poked' }] };
  });
  return server;
}

const httpServer = http.createServer(async (req, res) => {
  const sid = req.headers['mcp-session-id'];
  let transport = sid ? transports.get(sid) : undefined;
  if (!transport) {
    if (sid || req.method !== 'POST') {
      res.writeHead(sid ? 404 : 405).end();
      return;
    }
    const t = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => transports.set(id, t),
    });
    t.onclose = () => { if (t.sessionId) transports.delete(t.sessionId); };
    await makeServer().connect(t);
    transport = t;
  }
  await transport.handleRequest(req, res);
});
httpServer.listen(0, '127.0.0.1', () => {
  process.stderr.write(`asking-http listening on 127.0.0.1:${httpServer.address().port}\n`);
});
