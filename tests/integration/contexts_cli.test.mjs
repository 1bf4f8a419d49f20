// `switchboard context get|history|diff` against a store a running server
// writes (and after it stopped): the CLI prints what the REST API serves,
// scoped to --tenant, with exit 0 found / 1 not found / 2 usage.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { tempStorePath } from './lib/harness.mjs';
import { TENANTS, restClient, runCli, sampleInput, startTenantServer, stopClean, withoutId } from './lib/contexts_common.mjs';

describe('switchboard context (CLI)', { timeout: 60000 }, () => {
  const store = tempStorePath();
  let server;
  let a;
  let id;
  const ghost = '01a2121b-0000-7000-8000-000000000000';
  const asA = ['--store', store, '--tenant', TENANTS.a.id];

  before(async () => {
    server = await startTenantServer({ store });
    a = restClient(server.base, TENANTS.a.token);
    const c = await a.create(sampleInput('cli'));
    assert.equal(c.status, 201, c.text);
    id = c.json.id;
    assert.equal((await a.merge(id, 1, { data: { conversation: { intent: 'lease' } } })).status, 200);
    assert.equal((await a.jsonPatch(id, 2, [{ op: 'add', path: '/data/conversation/messages/-', value: { role: 'user', content: 'm7' } }])).status, 200);
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  const cliJson = async (args) => {
    const r = await runCli(args);
    assert.equal(r.code, 0, `switchboard ${args.join(' ')} -> ${r.code}\nstderr: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  it('get prints the context JSON the server serves (server still running)', async () => {
    const rest = await a.get(id);
    assert.equal(rest.json.version, 3);
    assert.deepEqual(await cliJson(['context', 'get', id, ...asA]), rest.json);
  });

  it('get --version N prints a past version', async () => {
    const v1 = await cliJson(['context', 'get', id, '--version', '1', ...asA]);
    assert.deepEqual(v1, (await a.get(id, '?version=1')).json);
    assert.equal(v1.version, 1);
    assert.equal(v1.data.conversation.intent, 'buy_car');
    const v2 = await cliJson(['context', 'get', id, '--version=2', ...asA]);
    assert.equal(v2.data.conversation.intent, 'lease');
    const past = await runCli(['context', 'get', id, '--version', '9', ...asA]);
    assert.equal(past.code, 1, past.stderr);
    assert.equal(past.stdout, '');
  });

  it('get --requirements prints the projection an agent receives', async () => {
    const req = 'conversation.messages[-5:],workflow.variables.vin,user.profile.age';
    const cli = await cliJson(['context', 'get', id, '--requirements', req, ...asA]);
    const rest = await a.get(id, `?${new URLSearchParams({ requirements: req })}`);
    assert.deepEqual(cli, rest.json);
    assert.deepEqual(cli.data.conversation.messages.map((m) => m.content), ['m3', 'm4', 'm5', 'm6', 'm7']);
    assert.deepEqual(cli.missing, ['user.profile.age']);
    assert.deepEqual(Object.keys(cli.data).sort(), ['conversation', 'workflow']);
  });

  it('history and diff print what the REST API serves', async () => {
    const hist = await cliJson(['context', 'history', id, ...asA]);
    assert.deepEqual(hist, (await a.history(id)).json.versions);
    assert.deepEqual(hist.map((v) => v.version), [3, 2, 1]);
    const limited = await cliJson(['context', 'history', id, '--limit', '1', '--before', '3', ...asA]);
    assert.deepEqual(limited.map((v) => v.version), [2]);
    const diff = await cliJson(['context', 'diff', id, '1', '2', ...asA]);
    assert.deepEqual(diff, (await a.diff(id, 1, 2)).json.patch);
    assert.ok(diff.some((op) => op.path === '/data/conversation/intent' && op.value === 'lease'), JSON.stringify(diff));
  });

  it('another tenant (or none) gets exit 1 "not found", exactly like an unknown id', async () => {
    for (const verb of [['get', id], ['history', id], ['diff', id, '1', '2']]) {
      const theirs = await runCli(['context', ...verb, '--store', store, '--tenant', TENANTS.b.id]);
      const nobodys = await runCli(['context', verb[0], ghost, ...verb.slice(2), '--store', store, '--tenant', TENANTS.b.id]);
      assert.equal(theirs.code, 1, `${verb[0]} as dealer-b: ${theirs.stdout}${theirs.stderr}`);
      assert.match(theirs.stderr, new RegExp(`not found \\(tenant ${TENANTS.b.id}\\)`));
      assert.equal(theirs.stdout, '', 'nothing of the context is printed');
      assert.equal(nobodys.code, 1);
      assert.equal(withoutId(theirs.stderr, id), withoutId(nobodys.stderr, ghost), `${verb[0]}: same message but the id`);
    }
    // Without --tenant the CLI is the default tenant, which owns nothing here.
    const anon = await runCli(['context', 'get', id, '--store', store]);
    assert.equal(anon.code, 1, anon.stdout);
    // ...and says so, for whoever forgot --tenant.
    assert.match(anon.stderr, /not found \(tenant default\)/);
  });

  it('--config supplies store.path and auth.default_tenant', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-ctx-cli-'));
    const cfg = join(dir, 'sb.yaml');
    writeFileSync(cfg, `store:\n  path: ${store}\nauth:\n  default_tenant: ${TENANTS.a.id}\n`);
    const doc = await cliJson(['context', 'get', id, '--config', cfg]);
    assert.equal(doc.id, id);
    assert.equal(doc.version, 3);
    // --tenant overrides the file.
    const other = await runCli(['context', 'get', id, '--config', cfg, '--tenant', TENANTS.b.id]);
    assert.equal(other.code, 1);
  });

  it('bad usage exits 2 with a message on stderr', async () => {
    const cases = [
      ['context'],
      ['context', 'get'],
      ['context', 'frob', id, ...asA],
      ['context', 'get', id, '--version', 'abc', ...asA],
      ['context', 'get', id, '--version', '0', ...asA],
      ['context', 'diff', id, '1', ...asA],
      ['context', 'diff', id, '1', 'two', ...asA],
      ['context', 'get', id, 'extra', ...asA],
      ['context', 'get', id, '--bogus', ...asA],
      ['context', 'get', id, '--version'],
      ['context', 'get', id, '--requirements', 'nosuchsection.x', ...asA],
      ['context', 'get', id, '--store', store, '--tenant', 'bad tenant!'],
    ];
    for (const args of cases) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `switchboard ${args.join(' ')} -> ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
      assert.ok(r.stderr.trim().length > 0, `switchboard ${args.join(' ')}: a message on stderr`);
      assert.equal(r.stdout, '', `switchboard ${args.join(' ')}: nothing on stdout`);
    }
    const help = await runCli(['context', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /switchboard context get ID/);
  });

  it('reads still work after the server has stopped', async () => {
    const s = server;
    server = undefined;
    await stopClean(s);
    const doc = await cliJson(['context', 'get', id, ...asA]);
    assert.equal(doc.version, 3);
    assert.equal(doc.tenantId, TENANTS.a.id);
  });
});
