// OAuth 2.1 resource server end to end: keys made and tokens signed here
// with node:crypto (RS256 and ES256), the public keys in the JWKS file
// auth.oauth names. A good token is served as its tenant claim (isolated
// from the others, on REST and through the official SDK client); every
// bad one (forged signature, expired, not yet valid, wrong audience or
// issuer, alg none, HS256 keyed with the public key, an unknown kid,
// garbage) is a 401 whose WWW-Authenticate points at the protected-
// resource metadata and says invalid_token; no token at all is a 401
// with the metadata only. The metadata document is served to anyone.
// SIGHUP re-reads the JWKS file: the new keys' tokens are served, the old
// ones' refused; a bad JWKS file, or a bad config, keeps the keys; of two
// SIGHUPs in quick succession the second's file is the one served.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';

import { DEADLINE_MS, startHttpServer, tempStorePath } from './lib/harness.mjs';
import { ISSUER, RESOURCE, claimsFor, makeKeys, now, oauthConfig, signJwt } from './lib/oauth.mjs';
import {
  TENANTS, connectSdk, restClient, sampleInput, startTenantServer, stopClean, writeTenantConfig,
} from './lib/contexts_common.mjs';

// writeTenantConfig appends `config` after auth.tenants: the oauth block
// continues the auth: mapping.
describe('OAuth bearer JWTs', { timeout: 120000 }, () => {
  const { rsa, ec, other, jwks } = makeKeys();
  let server;
  before(async () => {
    server = await startTenantServer({ store: tempStorePath(), config: oauthConfig(jwks) });
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  it('serves the protected-resource metadata to anyone (RFC 9728)', async () => {
    for (const path of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
      const r = await restClient(server.base, null).call('GET', path);
      assert.equal(r.status, 200, path);
      assert.deepEqual(r.json, {
        resource: RESOURCE,
        authorization_servers: [ISSUER],
        scopes_supported: ['contexts:read', 'contexts:write'],
        bearer_methods_supported: ['header'],
      });
    }
  });

  it('a caller without a token gets 401 pointing at the metadata', async () => {
    const r = await restClient(server.base, null).call('GET', '/v1/contexts/nope');
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'],
      'Bearer resource_metadata="https://switchboard.example.test/.well-known/oauth-protected-resource/mcp"');
  });

  const bad = {
    'forged signature': () => signJwt('RS256', other.privateKey, claimsFor('dealer-a'), { kid: 'rsa-1' }),
    expired: () => signJwt('RS256', rsa.privateKey, claimsFor('dealer-a', { exp: now() - 60 }), { kid: 'rsa-1' }),
    'no exp': () => signJwt('RS256', rsa.privateKey, { ...claimsFor('dealer-a'), exp: undefined }, { kid: 'rsa-1' }),
    'not yet valid': () => signJwt('ES256', ec.privateKey, claimsFor('dealer-a', { nbf: now() + 120 }), { kid: 'ec-1' }),
    'wrong audience': () => signJwt('RS256', rsa.privateKey, claimsFor('dealer-a', { aud: 'https://other.example.test/mcp' }), { kid: 'rsa-1' }),
    'wrong issuer': () => signJwt('RS256', rsa.privateKey, claimsFor('dealer-a', { iss: 'https://evil.example.test' }), { kid: 'rsa-1' }),
    'alg none': () => signJwt('none', null, claimsFor('dealer-a'), { kid: 'rsa-1' }),
    'HS256 keyed with the RSA public key': () => signJwt('HS256',
      rsa.publicKey.export({ format: 'pem', type: 'spki' }), claimsFor('dealer-a'), { kid: 'rsa-1' }),
    'ES256 under the RSA key id': () => signJwt('ES256', ec.privateKey, claimsFor('dealer-a'), { kid: 'rsa-1' }),
    'unknown kid': () => signJwt('RS256', rsa.privateKey, claimsFor('dealer-a'), { kid: 'rsa-2' }),
    'no tenant claim': () => signJwt('RS256', rsa.privateKey, { ...claimsFor('dealer-a'), tenant: undefined }, { kid: 'rsa-1' }),
    malformed: () => 'not.a.jwt',
    'two segments': () => 'eyJhbGciOiJSUzI1NiJ9.e30',
  };
  for (const [what, make] of Object.entries(bad)) {
    it(`refuses a token: ${what}`, async () => {
      const r = await restClient(server.base, make()).call('GET', '/v1/contexts/nope');
      assert.equal(r.status, 401, r.text);
      assert.match(r.headers['www-authenticate'],
        /^Bearer resource_metadata="https:\/\/switchboard\.example\.test\/\.well-known\/oauth-protected-resource\/mcp", error="invalid_token", error_description="[^"]+"$/);
      assert.equal(r.json.error.code, 'unauthorized');
    });
  }

  it('serves good RS256 and ES256 tokens as their tenant claim, isolated', async () => {
    const rsTok = signJwt('RS256', rsa.privateKey, claimsFor('dealer-a'), { kid: 'rsa-1' });
    const esTok = signJwt('ES256', ec.privateKey, claimsFor('dealer-j'), { kid: 'ec-1' });
    const a = restClient(server.base, rsTok);
    const j = restClient(server.base, esTok);
    const made = await j.create(sampleInput('jwt'));
    assert.equal(made.status, 201, made.text);
    const id = made.json.id;
    assert.equal((await j.get(id)).status, 200);
    // dealer-a by JWT, dealer-a by config token: both strangers to dealer-j.
    for (const c of [a, restClient(server.base, TENANTS.a.token)]) {
      const r = await c.get(id);
      assert.equal(r.status, 404, r.text);
    }
    // The JWT of dealer-a and the config token of dealer-a are one tenant.
    const mine = await a.create(sampleInput('a'));
    assert.equal((await restClient(server.base, TENANTS.a.token).get(mine.json.id)).status, 200);
  });

  it('the official SDK client connects with a bearer JWT', async () => {
    const tok = signJwt('ES256', ec.privateKey, claimsFor('dealer-j'), { kid: 'ec-1' });
    for (const era of ['modern', 'legacy']) {
      const c = await connectSdk(era, 'http', { url: server.url, token: tok });
      try {
        const r = await c.callTool('context_create', sampleInput(`sdk-${era}`));
        assert.ok(!r.isError, JSON.stringify(r));
        const id = r.structuredContent?.id ?? JSON.parse(r.content[0].text).id;
        assert.equal((await restClient(server.base, tok).get(id)).status, 200);
      } finally {
        await c.close();
      }
    }
  });
});

// Scopes enforced: a JWT's scope claim (space-separated) or scp (array),
// and an API key's --scope values, decide which tools, agents, workflows
// and context operations a caller may use; a refusal names the missing
// scope (REST and /mcp over HTTP: 403 with an insufficient_scope
// challenge; MCP on stdio: error -31003). Without scopes a caller may do
// what its tenant may, as before.
describe('scopes of JWTs and API keys', { timeout: 120000 }, () => {
  const { rsa, jwks } = makeKeys();
  const store = tempStorePath();
  let server;
  let readOnlyKey;
  const tok = (extra) => signJwt('RS256', rsa.privateKey, claimsFor('dealer-a', extra), { kid: 'rsa-1' });

  before(async () => {
    const { runCli } = await import('./lib/contexts_common.mjs');
    const cli = async (args) => {
      const r = await runCli(args);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    };
    await cli(['tenant', 'create', 'dealer-a', '--store', store]);
    readOnlyKey = await cli(['key', 'create', '--tenant', 'dealer-a', '--scope', 'contexts:read', '--store', store]);
    server = await startTenantServer({ store, config: oauthConfig(jwks) });
    // Keys are accepted once the keyring's first load is in (asynchronous,
    // just after the start): wait for it rather than race it.
    const end = Date.now() + 20000;
    while ((await restClient(server.base, readOnlyKey).get('00000000-0000-0000-0000-000000000000')).status === 401) {
      assert.ok(Date.now() < end, 'the API key was never accepted');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  it('REST: a missing scope is a 403 naming it, with the challenge', async () => {
    for (const [who, token] of [['API key', readOnlyKey], ['JWT scope', tok({ scope: 'contexts:read tools:echo' })],
      ['JWT scp', tok({ scp: ['contexts:read'] })]]) {
      const r = await restClient(server.base, token).create(sampleInput('ro'));
      assert.equal(r.status, 403, `${who}: ${r.text}`);
      assert.equal(r.json.error.message, 'missing scope "contexts:write"');
      assert.match(r.headers['www-authenticate'], /^Bearer error="insufficient_scope", scope="contexts:write", resource_metadata="[^"]+", error_description="missing scope contexts:write"$/);
      const run = await restClient(server.base, token).call('POST', '/v1/runs', { body: { workflow: 'payroll' } });
      assert.equal(run.status, 403, run.text);
      assert.equal(run.json.error.message, 'missing scope "workflows:payroll"');
      const call = await restClient(server.base, token).call('POST', '/v1/agents/call', { body: { agent: 'finance', tool: 'quote', arguments: {} } });
      assert.equal(call.status, 403, call.text);
      assert.equal(call.json.error.message, 'missing scope "agents:finance"');
    }
  });

  it('REST: a scope that grants, and no scopes at all, are served', async () => {
    const w = await restClient(server.base, tok({ scope: 'contexts' })).create(sampleInput('w'));
    assert.equal(w.status, 201, w.text);
    assert.equal((await restClient(server.base, readOnlyKey).get(w.json.id)).status, 200);
    assert.equal((await restClient(server.base, tok()).get(w.json.id)).status, 200);
    assert.equal((await restClient(server.base, TENANTS.a.token).get(w.json.id)).status, 200);
  });

  it('MCP: tools, agents and workflows refused by name', async () => {
    const c = await connectSdk('modern', 'http', { url: server.url, token: tok({ scope: 'tools:echo contexts:read' }) });
    try {
      const ok = await c.callTool('echo', { text: 'hi' });
      assert.ok(!ok.isError, JSON.stringify(ok));
      const cases = [
        ['context_create', sampleInput('m'), 'contexts:write'],
        ['agents_call', { agent: 'finance', tool: 'quote', arguments: {} }, 'agents:finance'],
        ['workflow_run', { workflow: 'payroll' }, 'workflows:payroll'],
        ['agents_list', {}, 'tools:agents_list'],
      ];
      // On HTTP a refusal is a 403 insufficient_scope challenge (MCP
      // authorization, runtime scope errors): the v2 client, holding a
      // plain bearer token (no OAuth provider to step up with), surfaces it
      // as InsufficientScopeError after one POST — no retry loop.
      for (const [name, args, scope] of cases) {
        const before = c.http.items.length;
        await assert.rejects(c.callTool(name, args), (e) => {
          assert.equal(e.requiredScope, scope, `${name}: ${e.message}`);
          assert.equal(e.errorDescription, `missing scope ${scope}`);
          assert.match(e.message, new RegExp(`Insufficient scope: required "${scope}"`));
          return true;
        }, name);
        const posts = c.http.items.slice(before).filter((x) => x.method === 'POST');
        assert.equal(posts.length, 1, `${name}: ${JSON.stringify(posts)}`);
        assert.equal(posts[0].status, 403);
      }
    } finally {
      await c.close();
    }
  });
});

describe('SIGHUP re-reads the JWKS file', { timeout: 120000 }, () => {
  // Three key sets, all under kid rsa-1: a token of one set is a bad
  // signature to the others.
  const sets = [makeKeys(), makeKeys(), makeKeys()];
  const config = oauthConfig(sets[0].jwks);
  const jwksPath = /jwks_file: (.*)/.exec(config)[1];
  const cfgPath = writeTenantConfig(config);
  let server;
  before(async () => {
    server = await startHttpServer({ extraArgs: ['--config', cfgPath, '--store', tempStorePath()] });
    server.base = server.url.replace(/\/mcp$/, '');
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  /** 401 when the token of key set i is refused; 404 (no such context) when served. */
  const statusOf = async (i) => {
    const tok = signJwt('RS256', sets[i].rsa.privateKey, claimsFor('dealer-a'), { kid: 'rsa-1' });
    return (await restClient(server.base, tok).get('00000000-0000-0000-0000-000000000000')).status;
  };
  const served = async () => Promise.all([0, 1, 2].map(async (i) => (await statusOf(i)) !== 401));

  it('a new JWKS file: its keys\' tokens are served, the old keys\' refused', async () => {
    assert.deepEqual(await served(), [true, false, false]);
    writeFileSync(jwksPath, JSON.stringify(sets[1].jwks));
    await server.sighup(/OAuth: 2 signing key\(s\) reloaded from .*jwks\.json/);
    assert.deepEqual(await served(), [false, true, false]);
  });

  it('a bad JWKS file keeps the keys, and says why', async () => {
    writeFileSync(jwksPath, '{"keys": 3}');
    const said = await server.sighup(/SIGHUP: config not reloaded/);
    assert.match(said, /error +app: SIGHUP: config not reloaded: auth\.oauth\.jwks_file: .*jwks\.json: expected \{"keys": \[\.\.\.\]\} \(the previous keys stay\)/);
    assert.deepEqual(await served(), [false, true, false]);
  });

  it('a bad config keeps the keys, even with a new JWKS file beside it', async () => {
    const good = readFileSync(cfgPath, 'utf8');
    writeFileSync(jwksPath, JSON.stringify(sets[2].jwks));
    writeFileSync(cfgPath, `${good}limits:\n  max_json_depth: lots\n`);
    try {
      const said = await server.sighup(/SIGHUP: config not reloaded/);
      assert.match(said, /limits\.max_json_depth/);
      assert.doesNotMatch(said, /signing key\(s\) reloaded/);
      assert.deepEqual(await served(), [false, true, false]);
    } finally {
      writeFileSync(cfgPath, good);
    }
  });

  it('two SIGHUPs in quick succession: the second\'s file is served', async () => {
    writeFileSync(jwksPath, JSON.stringify(sets[0].jwks));
    server.proc.kill('SIGHUP');
    writeFileSync(jwksPath, JSON.stringify(sets[2].jwks));
    server.proc.kill('SIGHUP');
    const end = Date.now() + DEADLINE_MS;
    while (!(await served())[2]) {
      assert.ok(Date.now() < end, `set 2 never served: ${server.stderr.slice(-2000)}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.deepEqual(await served(), [false, false, true]);
  });
});

// `check` reads the JWKS file as a start does: a file that does not load
// is the config's error (exit 2, naming the key and the file) from check
// and from serve alike, not a start that fails (exit 1) after check said
// the config was fine; a relative jwks_file is the config directory's.
describe('check and serve read the JWKS file', { timeout: 60000 }, () => {
  it('a bad or missing JWKS file is exit 2 naming it; a good one passes check', async () => {
    const { runCli } = await import('./lib/contexts_common.mjs');
    const { jwks } = makeKeys();
    const config = oauthConfig(jwks);
    const jwksPath = /jwks_file: (.*)/.exec(config)[1];
    const cfgPath = writeTenantConfig(config);
    let r = await runCli(['check', '--config', cfgPath]);
    assert.equal(r.code, 0, r.stderr);

    writeFileSync(jwksPath, '{"keys": 3}');
    for (const args of [['check', '--config', cfgPath],
      ['serve', '--config', cfgPath, '--listen', '127.0.0.1:0', '--store', tempStorePath()]]) {
      r = await runCli(args);
      assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /auth\.oauth\.jwks_file: .*jwks\.json: expected \{"keys": \[\.\.\.\]\}/, args[0]);
    }

    const relative = writeTenantConfig(config.replace(/jwks_file: .*/, 'jwks_file: keys/none.json'));
    r = await runCli(['check', '--config', relative]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /auth\.oauth\.jwks_file: \/.*sb-ctx-cfg-[^/]+\/keys\/none\.json: cannot open/);
  });
});
