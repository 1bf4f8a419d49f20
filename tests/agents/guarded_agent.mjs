#!/usr/bin/env node
// guarded_agent.mjs: an MCP agent on the official @modelcontextprotocol/sdk
// 1.x behind the SDK's own bearer-token middleware (requireBearerAuth), over
// Streamable HTTP on 127.0.0.1, stateless. The token "good-token" is served
// until POST /revoke; any other token, and every token after /revoke, gets
// what an OAuth resource server answers: 401 with WWW-Authenticate and the
// body {"error": "invalid_token", "error_description": ...}, which is not
// JSON-RPC.
//   hello  answers "hello"
// Prints "guarded agent listening on 127.0.0.1:PORT" on stderr.
import express from 'express';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';

let revoked = false;

const verifier = {
  async verifyAccessToken(token) {
    if (revoked || token !== 'good-token') throw new InvalidTokenError('The access token expired');
    return { token, clientId: 'switchboard', scopes: [], expiresAt: Math.floor(Date.now() / 1000) + 3600 };
  },
};

const app = express();
app.use(express.json());
app.post('/revoke', (req, res) => {
  revoked = true;
  res.status(204).end();
});
app.post('/mcp', requireBearerAuth({ verifier }), async (req, res) => {
  const server = new McpServer({ name: 'guarded-agent', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.registerTool('hello', { description: 'Say hello' }, async () => ({ content: [{ type: 'text', text: 'hello' }] }));
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => { transport.close(); server.close(); });
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
});
const srv = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  process.stderr.write(`guarded agent listening on 127.0.0.1:${srv.address().port}\n`);
});
