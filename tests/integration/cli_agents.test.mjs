// cli_agents.test.mjs: `switchboard agents list|explain|show` against real
// agents: a legacy SDK agent over stdio and a modern one (switchboard)
// over Streamable HTTP.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHttpServer } from './lib/harness.mjs';
import { runCli } from './lib/contexts_common.mjs';
import { agentDef, flakyAgent, writeConfig } from '../agents/agents_lib.mjs';

describe('switchboard agents (CLI)', () => {
  let modern;
  let cfg;

  before(async () => {
    modern = await startHttpServer();
    cfg = writeConfig([
      flakyAgent('legacy-a', 'LA', { capabilities: ['quote'] }),
      agentDef('modern-b', { capabilities: ['quote'], transport: { type: 'http', url: modern.url } }),
    ]);
  });

  after(async () => {
    const done = await modern.stop();
    assert.equal(done.code, 0);
  });

  it('list prints the validated definitions', async () => {
    const r = await runCli(['agents', 'list', '--config', cfg]);
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout);
    assert.deepEqual(list.map((d) => d.id), ['legacy-a', 'modern-b']);
    assert.deepEqual(list[0].limits, { maxConcurrent: 4, timeoutMs: 30000, retries: 2, cacheTtlMs: 0, startupTimeoutMs: 15000 });
  });

  it('explain ranks the agents with a capability, with the parts of each score', async () => {
    const r = await runCli(['agents', 'explain', 'quote', '--config', cfg]);
    assert.equal(r.code, 0, r.stderr);
    const ranking = JSON.parse(r.stdout);
    assert.deepEqual(ranking.map((c) => c.rank), [1, 2]);
    for (const c of ranking) assert.ok(c.parts && typeof c.score === 'number');
    const none = JSON.parse((await runCli(['agents', 'explain', 'nothing', '--config', cfg])).stdout);
    assert.deepEqual(none, []);
  });

  it('show reports a legacy agent\'s era, version and tools', async () => {
    const r = await runCli(['agents', 'show', 'legacy-a', '--config', cfg]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.era, 'legacy');
    assert.equal(s.protocolVersion, '2025-11-25');
    assert.equal(s.serverInfo.name, 'LA');
    assert.ok(s.tools >= 6);
    assert.ok(s.bridge.length > 0);
    // the modules' info lines (the agent's own stderr among them) stay out
    assert.doesNotMatch(r.stderr, / info /, r.stderr);
  });

  it('show reports a modern agent over HTTP', async () => {
    const r = await runCli(['agents', 'show', 'modern-b', '--config', cfg]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.era, 'modern');
    assert.equal(s.protocolVersion, '2026-07-28');
    assert.equal(s.serverInfo.name, 'switchboard');
    assert.ok(s.tools >= 6 && s.resources >= 1 && s.prompts >= 1, r.stdout);
  });

  it('list, check and show never print an agent\'s credentials', async () => {
    // Before, `check` and `agents list` printed the URL's password and
    // token and the header values, and `show` the URL in its connect error.
    const secrets = ['pw-in-url-91', 'token-in-query-92', 'header-value-93', 'env-value-94'];
    const envy = flakyAgent('envy', 'EV', { capabilities: ['quote'] });
    envy.transport.env = { API_KEY: secrets[3] };
    const locked = writeConfig([
      agentDef('locked', {
        capabilities: ['quote'],
        transport: { type: 'http', url: `http://ops:${secrets[0]}@127.0.0.1:1/mcp?access_token=${secrets[1]}`, headers: { 'X-Key': secrets[2] } },
      }),
      envy,
    ]);
    const list = await runCli(['agents', 'list', '--config', locked]);
    assert.equal(list.code, 0, list.stderr);
    const shown = JSON.parse(list.stdout).find((d) => d.id === 'locked').transport;
    assert.equal(shown.url, 'http://<redacted>@127.0.0.1:1/mcp?access_token=<redacted>');
    assert.deepEqual(shown.headers, { 'X-Key': '<redacted>' });
    assert.deepEqual(JSON.parse(list.stdout).find((d) => d.id === 'envy').transport.env, { API_KEY: '<redacted>' });
    const check = await runCli(['check', '--config', locked]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /"headers":\{"X-Key":"<redacted>"\}/);
    const show = await runCli(['agents', 'show', 'locked', '--config', locked]);
    assert.notEqual(show.code, 0);
    assert.match(show.stderr, /connect to http:\/\/\[REDACTED\]@127\.0\.0\.1:1\/mcp\?access_token=\[REDACTED\]/, show.stderr);
    for (const r of [list, check, show])
      for (const s of secrets) assert.ok(!(r.stdout + r.stderr).includes(s), `${s} shown: ${r.stdout}${r.stderr}`);
  });

  it('an unknown agent is not found (exit 1)', async () => {
    const r = await runCli(['agents', 'show', 'nobody', '--config', cfg]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no agent nobody in the config/);
  });
});
