#!/usr/bin/env node
// session_log_agent.mjs: a legacy (2025-11-25) MCP agent over Streamable
// HTTP on 127.0.0.1, written against the wire with node:http (no SDK), with
// one session and its GET stream. Its tool logs on the session's GET stream
// (a message not tied to any request, as server-everything's simulated
// logging is) and answers the POST only after that write has gone out, so
// the log line is on switchboard's GET socket before the answer reaches the
// POST's.
//   logthen  logs "log N" (N counts calls) on the GET stream, then answers
//            "call N"; "call N (no stream)" when no GET stream was up
// With EXPIRE_AFTER=N it ends the session every N tool calls: later
// requests naming it get 404, and the next initialize opens a new one.
// With LIST_FAILS=N it answers its first N tools/list with HTTP 503 (an
// agent going away just after the handshake).
// With GET_DELAY_MS=N in its environment it sends the GET's response
// headers only N ms after the request came (an agent slow to open its
// stream, against calls sent before it is up).
// Prints "session log agent listening on 127.0.0.1:PORT" on stderr.
import http from 'node:http';

let sessions = 1;
let SESSION = 'log-session-1';
const expireAfter = Number(process.env.EXPIRE_AFTER || 0);
let stream = null;
let calls = 0;
const getDelayMs = Number(process.env.GET_DELAY_MS || 0);
let listFails = Number(process.env.LIST_FAILS || 0);

const server = http.createServer((req, res) => {
  if (req.method === 'GET') {
    const open = () => {
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': SESSION });
      res.flushHeaders();
      stream = res;
    };
    req.on('close', () => { if (stream === res) stream = null; });
    if (getDelayMs > 0) setTimeout(open, getDelayMs);
    else open();
    return;
  }
  if (req.method === 'DELETE') {
    res.writeHead(200).end();
    return;
  }
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const m = JSON.parse(body);
    if (m.method === 'initialize') {
      if (expireAfter) SESSION = `log-session-${++sessions}`;
    } else if (req.headers['mcp-session-id'] !== SESSION) {
      res.writeHead(404).end();
      return;
    }
    const sid = SESSION;
    if (!('id' in m)) {
      res.writeHead(202).end();
      return;
    }
    const answer = (payload) => {
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': sid });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, ...payload }));
    };
    switch (m.method) {
      case 'initialize':
        return answer({ result: { protocolVersion: '2025-11-25', capabilities: { tools: {}, logging: {} }, serverInfo: { name: 'session-log', version: '1.0.0' } } });
      case 'tools/list':
        if (listFails > 0) {
          listFails--;
          res.writeHead(503).end();
          return undefined;
        }
        return answer({ result: { tools: [{ name: 'logthen', inputSchema: { type: 'object' } }] } });
      case 'logging/setLevel':
      case 'ping':
        return answer({ result: {} });
      case 'tools/call': {
        const n = ++calls;
        if (expireAfter && n % expireAfter === 0) SESSION = `log-session-ended-${n}`;
        const up = stream !== null;
        const log = { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `log ${n}` } };
        if (stream) stream.write(`data: ${JSON.stringify(log)}\n\n`);
        // The log's write goes out when its socket uncorks (next tick);
        // the answer after that.
        return void setImmediate(() => answer({ result: { content: [{ type: 'text', text: `call ${n}${up ? '' : ' (no stream)'}` }] } }));
      }
      default:
        return answer({ error: { code: -32601, message: `Method not found: ${m.method}` } });
    }
  });
});
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  process.stderr.write(`session log agent listening on 127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)) && server.closeAllConnections());
