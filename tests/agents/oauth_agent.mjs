#!/usr/bin/env node
// oauth_agent.mjs: an MCP agent behind OAuth, and its authorization
// server, in one process, both on 127.0.0.1 with ports picked by the OS.
//
// The authorization server is oidc-provider (a certified OpenID Connect
// and OAuth 2.0 server): client credentials, resource indicators (RFC
// 8707), OpenID Connect discovery only (so a client must fall back from
// RFC 8414's well-known URI). Its opaque access tokens last TOKEN_TTL_S
// (default 600) seconds. Clients: "switchboard" (client_secret_basic) and
// "sb-post" (client_secret_post), secret "sb-secret-1 with spaces+symbols".
//
// The agent is the official @modelcontextprotocol/server 2.x SDK over
// Streamable HTTP at /mcp, behind a resource server check: every request
// needs a Bearer token the authorization server issued for this resource
// (looked up in the provider itself); else 401 with a challenge whose
// resource_metadata points at /meta/prm (not the well-known URI: only a
// client that reads the challenge finds it). Tools:
//   whoami     the token's client, scope and audience
//   admin-op   needs scope mcp:admin: without it, HTTP 403
//              insufficient_scope naming it
//   root-op    needs scope mcp:root, which the authorization server gives
//              nobody (a token request naming it is invalid_scope)
//   forbidden  always HTTP 403 access_denied (a policy's refusal, not
//              the token's); stats.forbidden counts them
// With LIST_NEEDS_ADMIN=1, tools/list needs mcp:admin too.
// Test hooks: POST /test/revoke refuses every token presented so far;
// POST /test/refuse-all refuses every token from then on (?off: no more);
// POST /test/close-tokens makes the authorization server answer every
// token request 503 temporarily_unavailable (?off: no more);
// GET /test/stats {issued, refused, grants: [{clientId, scope}]}.
//
// Prints "oauth-agent listening on 127.0.0.1:PORT" and
// "authorization server at http://127.0.0.1:PORT" on stderr.
import http from 'node:http';
import crypto from 'node:crypto';
import { z } from 'zod';
import Provider, { errors } from 'oidc-provider';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';

const TTL = Number(process.env.TOKEN_TTL_S) || 600;
const SECRET = 'sb-secret-1 with spaces+symbols';

const listen = (srv) => new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv.address().port)));

const asServer = http.createServer();
const rsServer = http.createServer();
const asPort = await listen(asServer);
const rsPort = await listen(rsServer);
const ISSUER = `http://127.0.0.1:${asPort}`;
const RESOURCE = `http://127.0.0.1:${rsPort}/mcp`;
const PRM_URL = `http://127.0.0.1:${rsPort}/meta/prm`;

const stats = { issued: 0, refused: 0, forbidden: 0, grants: [] };
const seen = new Set(); // the tokens presented so far
const revoked = new Set(); // ...of which these are refused
let refuseAll = false;
let tokensClosed = false;

const provider = new Provider(ISSUER, {
  clients: [
    { client_id: 'switchboard', client_secret: SECRET, grant_types: ['client_credentials'],
      redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_basic' },
    { client_id: 'sb-post', client_secret: SECRET, grant_types: ['client_credentials'],
      redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_post' },
  ],
  scopes: ['mcp:tools', 'mcp:admin'],
  ttl: { ClientCredentials: () => TTL },
  jwks: { keys: [crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' })] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== RESOURCE) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        // This server's policy: nobody gets mcp:root (RFC 6749 5.2).
        if (String(ctx.oidc.params.scope ?? '').split(' ').includes('mcp:root')) {
          throw new errors.InvalidScope('mcp:root is granted to no client', 'mcp:root');
        }
        return { scope: 'mcp:tools mcp:admin', accessTokenTTL: TTL, accessTokenFormat: 'opaque' };
      },
    },
  },
});
provider.on('grant.success', () => { stats.issued += 1; });
const providerCallback = provider.callback();
asServer.on('request', (req, res) => {
  if (tokensClosed && req.url.startsWith('/token')) {
    req.resume();
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'token endpoint closed by the test' }));
    return;
  }
  providerCallback(req, res);
});

function makeServer(token) {
  const server = new McpServer({ name: 'switchboard-oauth-agent', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.registerTool('whoami', { description: 'Who the access token says the caller is', inputSchema: z.object({}) },
    async () => ({ content: [{ type: 'text', text: JSON.stringify(token) }] }));
  server.registerTool('admin-op', { description: 'Needs scope mcp:admin', inputSchema: z.object({}) },
    async () => ({ content: [{ type: 'text', text: `admin done for ${token.clientId}` }] }));
  server.registerTool('root-op', { description: 'Needs scope mcp:root', inputSchema: z.object({}) },
    async () => ({ content: [{ type: 'text', text: 'unreachable' }] }));
  server.registerTool('forbidden', { description: 'Refused by policy', inputSchema: z.object({}) },
    async () => ({ content: [{ type: 'text', text: 'unreachable' }] }));
  return server;
}

function refuse(res, status, error, scope) {
  stats.refused += 1;
  res.writeHead(status, {
    'content-type': 'application/json',
    'www-authenticate': `Bearer error="${error}", scope="${scope}", resource_metadata="${PRM_URL}"`,
  });
  res.end(JSON.stringify({ error }));
}

/** The provider's record of a Bearer token for this resource, or null. */
async function tokenOf(req) {
  const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
  if (!m) return null;
  const t = await provider.ClientCredentials.find(m[1]);
  if (!t || t.isExpired || t.aud !== RESOURCE || revoked.has(m[1]) || refuseAll) return null;
  seen.add(m[1]);
  return { clientId: t.clientId, scope: t.scope, aud: t.aud };
}

rsServer.on('request', async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks);
  if (req.url === '/meta/prm') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ resource: RESOURCE, authorization_servers: [ISSUER], scopes_supported: ['mcp:tools'] }));
    return;
  }
  if (req.url === '/test/revoke' && req.method === 'POST') {
    for (const t of seen) revoked.add(t);
    res.writeHead(204).end();
    return;
  }
  if (req.url.startsWith('/test/refuse-all') && req.method === 'POST') {
    refuseAll = !req.url.endsWith('?off');
    res.writeHead(204).end();
    return;
  }
  if (req.url.startsWith('/test/close-tokens') && req.method === 'POST') {
    tokensClosed = !req.url.endsWith('?off');
    res.writeHead(204).end();
    return;
  }
  if (req.url === '/test/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  if (req.url !== '/mcp') {
    res.writeHead(404).end();
    return;
  }
  const token = await tokenOf(req);
  if (!token) {
    refuse(res, 401, 'invalid_token', 'mcp:tools');
    return;
  }
  if (!stats.grants.some((g) => g.scope === token.scope && g.clientId === token.clientId))
    stats.grants.push({ clientId: token.clientId, scope: token.scope });
  let msg = null;
  try { msg = JSON.parse(body.toString('utf8')); } catch { /* the SDK answers it */ }
  const tool = msg?.method === 'tools/call' ? msg.params?.name : null;
  const needs = tool === 'admin-op' || (msg?.method === 'tools/list' && process.env.LIST_NEEDS_ADMIN === '1')
    ? 'mcp:admin' : tool === 'root-op' ? 'mcp:root' : null;
  if (needs && !token.scope.split(' ').includes(needs)) {
    refuse(res, 403, 'insufficient_scope', needs);
    return;
  }
  if (tool === 'forbidden') {
    stats.forbidden += 1;
    refuse(res, 403, 'access_denied', 'mcp:tools');
    return;
  }
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
  const handler = createMcpHandler(() => makeServer(token), { legacy: 'stateless' });
  const response = await handler.fetch(new Request(`http://127.0.0.1${req.url}`, {
    method: req.method, headers, body: body.length ? body : undefined,
  }));
  const out = {};
  response.headers.forEach((v, k) => { out[k] = v; });
  res.writeHead(response.status, out);
  res.end(Buffer.from(await response.arrayBuffer()));
});

process.on('SIGTERM', () => {
  for (const s of [asServer, rsServer]) s.closeAllConnections?.();
  asServer.close(() => rsServer.close(() => process.exit(0)));
});
process.stderr.write(`authorization server at ${ISSUER}\n`);
process.stderr.write(`oauth-agent listening on 127.0.0.1:${rsPort}\n`);
