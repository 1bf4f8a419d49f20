#!/usr/bin/env node
// header_agent.mjs: a 2026-07-28 MCP agent on the official
// @modelcontextprotocol/server 2.x SDK, over Streamable HTTP on 127.0.0.1,
// whose tools mirror parameters into HTTP headers (x-mcp-header). The SDK
// itself refuses a tools/call whose Mcp-Param-* headers are missing or
// disagree with the arguments (400, -32020), as the specification says a
// server must; the tool answers with the Mcp-Param-* headers its request
// carried, so a test sees exactly what the client sent.
//   regional-echo  {region (header Region), shard? (header Shard), message}
//   bad-header     declares x-mcp-header on a number: an invalid tool that
//                  conforming clients leave out of their lists
//   hold           answers "held" after 10 s (a call to cancel)
// GET /test/stats {holding: calls of hold begun, closedEarly: requests
// whose stream the client closed before the answer, cancelled:
// notifications/cancelled received (2026-07-28 sends none over HTTP)}.
// Prints "header-agent listening on 127.0.0.1:PORT" on stderr.
import http from 'node:http';
import { z } from 'zod';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';

let lastHeaders = {};
const stats = { holding: 0, closedEarly: 0, cancelled: 0 };

function makeServer() {
  const server = new McpServer({ name: 'switchboard-header-agent', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.registerTool('regional-echo', {
    description: 'Echo a message in a region; region and shard go as Mcp-Param headers too',
    inputSchema: z.object({
      region: z.string().meta({ 'x-mcp-header': 'Region' }),
      shard: z.number().int().optional().meta({ 'x-mcp-header': 'Shard' }),
      message: z.string(),
    }),
  }, async ({ region, message }) => ({
    content: [{ type: 'text', text: `${region}: ${message}` }],
    structuredContent: { headers: lastHeaders },
  }));
  server.registerTool('bad-header', {
    description: 'Declares x-mcp-header on a number, which the rules forbid',
    inputSchema: z.object({ n: z.number().meta({ 'x-mcp-header': 'N' }) }),
  }, async () => ({ content: [{ type: 'text', text: 'unreachable' }] }));
  server.registerTool('hold', { description: 'Answers after 10 s', inputSchema: z.object({}) }, async () => {
    stats.holding += 1;
    await new Promise((r) => setTimeout(r, 10000));
    return { content: [{ type: 'text', text: 'held' }] };
  });
  return server;
}

const handler = createMcpHandler(makeServer, { legacy: 'reject' });

const srv = http.createServer(async (req, res) => {
  if (req.url === '/test/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  res.on('close', () => { if (!res.writableEnded) stats.closedEarly += 1; });
  const chunks = [];
  for await (const c of req) chunks.push(c);
  try {
    if (JSON.parse(Buffer.concat(chunks).toString('utf8')).method === 'notifications/cancelled') stats.cancelled += 1;
  } catch { /* the SDK answers it */ }
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
  lastHeaders = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.startsWith('mcp-param-')));
  const response = await handler.fetch(new Request(`http://127.0.0.1${req.url}`, {
    method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined,
  }));
  const out = {};
  response.headers.forEach((v, k) => { out[k] = v; });
  res.writeHead(response.status, out);
  res.end(Buffer.from(await response.arrayBuffer()));
});
process.on('SIGTERM', () => { srv.closeAllConnections?.(); srv.close(() => process.exit(0)); });
srv.listen(Number(process.env.PORT) || 0, '127.0.0.1', () => {
  const a = srv.address();
  process.stderr.write(`header-agent listening on ${a.address}:${a.port}\n`);
});
