// Agents behind OAuth (transport.oauth): switchboard gets its own access
// tokens with the client credentials grant from a real authorization
// server (oidc-provider, tests/agents/oauth_agent.mjs) and sends them to
// an SDK agent that checks every request against that server.
// - Discovery the spec's way: an unauthenticated request for the agent's
//   challenge, its Protected Resource Metadata at the challenge's
//   resource_metadata (not at a well-known URI), the server's metadata by
//   OpenID Connect discovery after RFC 8414's URI is not found; the token
//   request names the resource (RFC 8707) and authenticates with Basic.
// - A token the agent stops taking is replaced and the call retried; a
//   403 insufficient_scope gets a token with the scope it names.
// - A token about to expire is renewed before the agent refuses it.
// - client_secret_post with the issuer configured; a wrong secret fails
//   calls with the server's error and never shows the secret.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';

import { agentDef, connect, pollUntil, startHttpAgent, startWithAgents, textOf, waitForTools, withStderr, callWithin, writeConfig } from '../agents/agents_lib.mjs';
import { runCli } from './lib/contexts_common.mjs';

const AGENT = join(import.meta.dirname, '..', 'agents', 'oauth_agent.mjs');
const SECRET = 'sb-secret-1 with spaces+symbols';

async function startOauthAgent(env = {}) {
  // An RSA key and oidc-provider to load first: slow on a loaded machine.
  const agent = await startHttpAgent(AGENT, 'oauth-agent', 'oauth agent', [], env, { deadlineMs: 30000 });
  agent.issuer = /authorization server at (http:\/\/127\.0\.0\.1:\d+)/.exec(agent.stderr)[1];
  agent.base = agent.url.replace(/\/mcp$/, '');
  agent.stats = async () => (await fetch(`${agent.base}/test/stats`)).json();
  agent.revoke = async () => assert.equal((await fetch(`${agent.base}/test/revoke`, { method: 'POST' })).status, 204);
  return agent;
}

// Each its own capability: a call is not passed on to another of them.
const oauthDef = (id, url, oauth, limits) => agentDef(id, { capabilities: [`oauth-${id}`], transport: { type: 'http', url, oauth }, limits });

describe('agents behind OAuth: client credentials', () => {
  let agent, fast, stuck, lister, server, client;
  before(async () => {
    agent = await startOauthAgent();
    fast = await startOauthAgent({ TOKEN_TTL_S: '2' });
    stuck = await startOauthAgent();
    lister = await startOauthAgent({ LIST_NEEDS_ADMIN: '1' });
    server = await startWithAgents([
      oauthDef('sec', agent.url, { clientId: 'switchboard', clientSecret: SECRET }, { maxConcurrent: 16 }),
      oauthDef('post', agent.url, { clientId: 'sb-post', clientSecret: SECRET, issuer: agent.issuer, tokenAuthMethod: 'client_secret_post', scope: 'mcp:tools' }),
      oauthDef('bad', agent.url, { clientId: 'switchboard', clientSecret: 'not-the-secret-xyzzy', tokenUrl: `${agent.issuer}/token` }, { timeoutMs: 3000 }),
      oauthDef('fast', fast.url, { clientId: 'switchboard', clientSecret: SECRET, scope: 'mcp:tools' }),
      oauthDef('stuck', stuck.url, { clientId: 'switchboard', clientSecret: SECRET }, { retries: 0 }),
      oauthDef('once', agent.url, { clientId: 'switchboard', clientSecret: SECRET }, { retries: 0 }),
      oauthDef('lister', lister.url, { clientId: 'switchboard', clientSecret: SECRET }),
    ]);
    client = await connect('modern', server.url);
    await waitForTools(client, ['sec__whoami', 'post__whoami', 'fast__whoami', 'stuck__whoami', 'once__whoami']);
  });
  after(async () => {
    await client?.close();
    await server?.stop();
    await agent?.stop();
    await fast?.stop();
    await stuck?.stop();
    await lister?.stop();
  });

  const whoami = async (id) => {
    const r = await callWithin(client, { name: `${id}__whoami`, arguments: {} });
    assert.ok(!r.isError, withStderr(server, textOf(r.content)));
    return JSON.parse(textOf(r.content));
  };

  it('finds the token endpoint from the challenge and calls with a token for this resource', async () => {
    const who = await whoami('sec');
    assert.deepEqual(who, { clientId: 'switchboard', scope: 'mcp:tools', aud: agent.url });
    assert.match(server.stderr, /agent sec: got an OAuth access token from http:\/\/127\.0\.0\.1:\d+\/token, valid 600 s/);
  });

  it('authenticates in the body when told to (client_secret_post, issuer given)', async () => {
    assert.deepEqual(await whoami('post'), { clientId: 'sb-post', scope: 'mcp:tools', aud: agent.url });
  });

  it('replaces a token the agent stopped taking, and the call goes through', async () => {
    await whoami('sec');
    await whoami('once');
    const before = await agent.stats();
    await agent.revoke();
    assert.deepEqual(await whoami('sec'), { clientId: 'switchboard', scope: 'mcp:tools', aud: agent.url });
    // With retries: 0 too: the refused request was not processed.
    assert.deepEqual(await whoami('once'), { clientId: 'switchboard', scope: 'mcp:tools', aud: agent.url });
    const after = await agent.stats();
    assert.ok(after.refused > before.refused, JSON.stringify({ before, after }));
    assert.ok(after.issued > before.issued, JSON.stringify({ before, after }));
    assert.match(server.stderr, /agent sec refused our access token; getting a new one/);
  });

  it('asks for the scope a 403 insufficient_scope names, then calls again', async () => {
    const r = await callWithin(client, { name: 'sec__admin-op', arguments: {} });
    assert.ok(!r.isError, withStderr(server, textOf(r.content)));
    assert.equal(textOf(r.content), 'admin done for switchboard');
    const { grants } = await agent.stats();
    assert.ok(grants.some((g) => g.clientId === 'switchboard' && g.scope === 'mcp:tools mcp:admin'), JSON.stringify(grants));
  });

  it('a tools/list refused for its scope is asked again with the new token', async () => {
    // Not only at the next health check, 15 s on.
    await pollUntil(async () => {
      const { tools } = await client.client.listTools();
      return tools.some((t) => t.name === 'lister__whoami') || { ok: false, message: 'not listed' };
    }, { timeoutMs: 5000, what: 'lister__whoami' });
    const { grants } = await lister.stats();
    assert.ok(grants.some((g) => g.scope === 'mcp:tools mcp:admin'), JSON.stringify(grants));
  });

  it('a scope the authorization server refuses is not asked for again', async () => {
    // root-op's 403 names mcp:root; the server answers invalid_scope.
    const r = await callWithin(client, { name: 'sec__root-op', arguments: {} });
    assert.ok(r.isError);
    assert.match(textOf(r.content), /HTTP 403 \(WWW-Authenticate: Bearer error="insufficient_scope", scope="mcp:root"/);
    assert.match(server.stderr, /agent sec: .* refused the scope the agent asked for \(invalid_scope\); asking without it/);
    // The next token (after a revocation) is asked without it, and works.
    await agent.revoke();
    assert.equal((await whoami('sec')).clientId, 'switchboard');
    // Asked again, the 403 is the agent's answer: no token request.
    const before = await agent.stats();
    const again = await callWithin(client, { name: 'sec__root-op', arguments: {} });
    assert.ok(again.isError);
    assert.equal((await agent.stats()).issued, before.issued);
  });

  it('a 403 that is not about scope is the agent\'s refusal: sent once, no new token', async () => {
    const before = await agent.stats();
    const r = await callWithin(client, { name: 'sec__forbidden', arguments: {} });
    assert.ok(r.isError);
    assert.match(textOf(r.content), /HTTP 403 \(WWW-Authenticate: Bearer error="access_denied"/);
    const after = await agent.stats();
    assert.equal(after.forbidden, before.forbidden + 1);
    assert.equal(after.issued, before.issued);
  });

  it('calls in flight when a token is revoked: each sent again with one new token', async () => {
    await whoami('sec');
    await agent.revoke();
    const before = await agent.stats();
    const all = await Promise.all(Array.from({ length: 12 }, () => whoami('sec')));
    for (const who of all) assert.equal(who.clientId, 'switchboard');
    const after = await agent.stats();
    assert.ok(after.issued - before.issued <= 2, JSON.stringify({ before, after }));
  });

  it('renews a token before it expires, with no refusal on the way', async () => {
    await whoami('fast');
    const first = await fast.stats();
    // Tokens last 2 s; each is renewed at 80% of that.
    const later = await pollUntil(async () => {
      const s = await fast.stats();
      return s.issued >= first.issued + 2 ? s : { ok: false, message: JSON.stringify(s) };
    }, { what: 'two renewals' });
    assert.deepEqual(await whoami('fast'), { clientId: 'switchboard', scope: 'mcp:tools', aud: fast.url });
    assert.equal((await fast.stats()).refused, later.refused, 'a request went with an expired token');
    assert.equal(later.refused, first.refused);
  });

  it('a renewal that fails shows in tokenError while the agent is still connected, and clears with the next token', async () => {
    const listed = async (id) => {
      const { agents } = await (await fetch(server.url.replace(/\/mcp$/, '/v1/agents'))).json();
      return agents.find((x) => x.definition.id === id);
    };
    await whoami('fast');
    assert.equal((await listed('fast')).tokenError, null);
    assert.equal((await fetch(`${fast.base}/test/close-tokens`, { method: 'POST' })).status, 204);
    try {
      // Renewed at 80% of its 2 s: the next renewal fails.
      const seen = await pollUntil(async () => {
        const x = await listed('fast');
        return x.tokenError ? x : { ok: false, message: JSON.stringify(x) };
      }, { timeoutMs: 10000, everyMs: 100, what: 'a failed renewal in tokenError' });
      assert.match(seen.tokenError, /refused the token request: HTTP 503: temporarily_unavailable: token endpoint closed by the test/);
      assert.equal(seen.connected, true);
    } finally {
      assert.equal((await fetch(`${fast.base}/test/close-tokens?off`, { method: 'POST' })).status, 204);
    }
    await pollUntil(async () => {
      const x = await listed('fast');
      return x.tokenError === null || { ok: false, message: JSON.stringify(x) };
    }, { timeoutMs: 15000, everyMs: 200, what: 'tokenError cleared by a new token' });
    await whoami('fast');
  });

  it('an agent that takes no token: calls fail as refused, and tokens are not asked for per call', async () => {
    await whoami('stuck');
    const before = await stuck.stats();
    assert.equal((await fetch(`${stuck.base}/test/refuse-all`, { method: 'POST' })).status, 204);
    const said = [];
    for (let i = 0; i < 8; i++) {
      const r = await callWithin(client, { name: 'stuck__whoami', arguments: {} });
      assert.ok(r.isError, textOf(r.content));
      said.push(textOf(r.content));
    }
    // Each refused with the agent's challenge (sent again once with the
    // new token while renewals go on), until the refusals open the
    // agent's breaker (5 failures).
    const refused = said.filter((t) => /HTTP 401 \(WWW-Authenticate: Bearer error="invalid_token"/.test(t));
    assert.ok(refused.length >= 3, said.join('\n'));
    assert.ok(said.every((t) => refused.includes(t) || /unavailable \(breaker open\)/.test(t)), said.join('\n'));
    const after = await stuck.stats();
    // Three new tokens at most (then one per 10 s), for five calls refused.
    assert.ok(after.issued - before.issued <= 3, JSON.stringify({ before, after }));
    assert.ok(after.refused - before.refused >= 5, JSON.stringify({ before, after }));
    // Fixed, but the tokens it refused stay refused: a new one is got
    // (within 10 s) and calls go through again (once the breaker lets).
    await stuck.revoke();
    assert.equal((await fetch(`${stuck.base}/test/refuse-all?off`, { method: 'POST' })).status, 204);
    await pollUntil(async () => {
      const r = await callWithin(client, { name: 'stuck__whoami', arguments: {} });
      return !r.isError || { ok: false, message: textOf(r.content) };
    }, { timeoutMs: 30000, everyMs: 500, what: 'stuck to answer again' });
  });

  it('`agents show` gets a token the same way; `agents list` shows no secret', async () => {
    const cfg = writeConfig([
      oauthDef('sec', agent.url, { clientId: 'switchboard', clientSecret: SECRET }),
      oauthDef('bad', agent.url, { clientId: 'switchboard', clientSecret: 'not-the-secret-xyzzy', issuer: agent.issuer }),
    ]);
    const show = await runCli(['agents', 'show', 'sec', '--config', cfg]);
    assert.equal(show.code, 0, show.stderr);
    const s = JSON.parse(show.stdout);
    assert.equal(s.authorization, 'OAuth client credentials: token obtained');
    assert.equal(s.tools, 4);
    const bad = await runCli(['agents', 'show', 'bad', '--config', cfg]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /bad: cannot get an OAuth access token: .*refused the token request: HTTP 401: invalid_client/);
    const list = await runCli(['agents', 'list', '--config', cfg]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /"clientSecret": "<redacted>"/);
    for (const out of [show.stdout, show.stderr, bad.stdout, bad.stderr, list.stdout, list.stderr]) {
      assert.doesNotMatch(out, /xyzzy|sb-secret-1/);
    }
  });

  it('a wrong secret: the call fails with the server\'s word for it, the secret nowhere', async () => {
    const r = await callWithin(client, { name: 'bad__whoami', arguments: {} });
    assert.ok(r.isError);
    assert.match(textOf(r.content), /cannot get an OAuth access token: http:\/\/127\.0\.0\.1:\d+\/token refused the token request: HTTP 401: invalid_client/);
    // The operator sees why in the agents' listing.
    const { agents } = await (await fetch(server.url.replace(/\/mcp$/, '/v1/agents'))).json();
    const bad = agents.find((x) => x.definition.id === 'bad');
    assert.match(bad.down, /^cannot get an OAuth access token: .*refused the token request: HTTP 401: invalid_client/);
    assert.equal(agents.find((x) => x.definition.id === 'sec').down, null);
    assert.match(bad.tokenError, /refused the token request: HTTP 401: invalid_client/);
    assert.equal(agents.find((x) => x.definition.id === 'sec').tokenError, null);
    assert.doesNotMatch(JSON.stringify(agents), /xyzzy|sb-secret-1/);
    assert.doesNotMatch(server.stderr, /xyzzy/);
    assert.doesNotMatch(server.stderr, /sb-secret-1/);
    assert.doesNotMatch(textOf(r.content), /xyzzy/);
  });
});

// What servers say goes into errors and `down` escaped and as UTF-8,
// whatever bytes they sent and wherever a message is cut: a string JSON
// cannot carry dropped the agent from the listing and answered its calls
// HTTP 500 with an empty body, or left its connect unanswered for good.
describe('agents behind OAuth: hostile bytes in what servers say', () => {
  let raw, as, nores, server;
  before(async () => {
    // An agent answering every request 401 with a challenge that is not
    // UTF-8 (a raw socket: Node's HTTP server would refuse to send it).
    raw = net.createServer((sock) => {
      const body = '{"e":"\x1b[2Jx"}';
      sock.on('data', () => {
        sock.end(Buffer.concat([
          Buffer.from('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer error_description="caf'),
          Buffer.from([0xe9]),
          Buffer.from(`"\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`),
          Buffer.from(`Connection: close\r\n\r\n${body}`),
        ]));
      });
    });
    // An authorization server whose error cuts inside characters.
    as = http.createServer((req, res) => {
      req.resume();
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'invalid_client', error_description: 'é'.repeat(400) }));
    });
    // An agent whose Protected Resource Metadata names no resource (RFC
    // 9728 requires it): nothing says the metadata is this agent's, so its
    // authorization server is not sent the secret.
    nores = http.createServer((req, res) => {
      req.resume();
      const base = `http://127.0.0.1:${nores.address().port}`;
      if (req.url === '/prm') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ authorization_servers: [`http://127.0.0.1:${as.address().port}`] }));
      } else if (req.url === '/mcp') {
        res.writeHead(401, { 'www-authenticate': `Bearer resource_metadata="${base}/prm"` }).end();
      } else {
        res.writeHead(404).end();
      }
    });
    await Promise.all([raw, as, nores].map((s) => new Promise((r) => s.listen(0, '127.0.0.1', r))));
    const rawUrl = `http://127.0.0.1:${raw.address().port}/mcp`;
    const asUrl = `http://127.0.0.1:${as.address().port}/token`;
    server = await startWithAgents([
      agentDef('rawbytes', { capabilities: ['raw'], transport: { type: 'http', url: rawUrl }, limits: { timeoutMs: 2000 } }),
      oauthDef('cut', rawUrl, { clientId: 'c', clientSecret: 's', tokenUrl: asUrl }, { timeoutMs: 2000 }),
      oauthDef('nores', `http://127.0.0.1:${nores.address().port}/mcp`, { clientId: 'c', clientSecret: 's' }, { timeoutMs: 2000 }),
    ]);
  });
  after(async () => {
    await server?.stop();
    raw?.close();
    as?.close();
    nores?.close();
  });

  it('lists both agents with why they are down, and their calls fail saying why', async () => {
    const base = server.url.replace(/\/mcp$/, '');
    const agents = await pollUntil(async () => {
      const res = await fetch(`${base}/v1/agents`);
      assert.equal(res.status, 200);
      const list = (await res.json()).agents;
      const downs = Object.fromEntries(list.map((x) => [x.definition.id, x.down]));
      return /HTTP 401/.test(downs.rawbytes ?? '') && /cannot get an OAuth/.test(downs.cut ?? '') &&
        /cannot get an OAuth/.test(downs.nores ?? '')
        ? downs : { ok: false, message: JSON.stringify(downs) };
    }, { what: 'both agents down with a reason' });
    assert.match(agents.rawbytes, /HTTP 401 \(WWW-Authenticate: Bearer error_description="caf\?"\): \{"e":"\\x1b\[2Jx"\}/);
    assert.match(agents.cut, /refused the token request: HTTP 400: invalid_client: (é)+/);
    assert.match(agents.nores, /\/prm: no resource/);
    for (const id of ['rawbytes', 'cut']) {
      const res = await fetch(`${base}/v1/agents/call`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ agent: id, tool: 'x', arguments: {}, timeoutMs: 2000 }),
      });
      // 503 not connected, or 504 having waited for a connect to the
      // deadline: never a 500 with an empty body.
      assert.ok([503, 504].includes(res.status), `${id}: ${res.status} ${await res.clone().text()}`);
      assert.match((await res.json()).error.message, id === 'cut' ? /cannot get an OAuth access token/ : /HTTP 401/);
    }
  });
});
