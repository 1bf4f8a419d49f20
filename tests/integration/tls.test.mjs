// HTTPS on the listener (server.tls), with certificates made here by the
// openssl CLI: a Node https client trusting the certificate, and the
// official SDK clients (both eras, in a child Node trusting it through
// NODE_EXTRA_CA_CERTS) work over https; after the files are replaced and
// SIGHUP sent, a new connection sees the new certificate (fingerprints
// compared); a bad file at reload keeps the current certificate and logs
// an error naming the file; a bad file at start stops the start, naming
// the file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEADLINE_MS, startHttpServer, switchboardBin, withDeadline } from './lib/harness.mjs';
import { runCli, stopClean } from './lib/contexts_common.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

function makeCert(dir, name) {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key, fingerprint: new X509Certificate(readFileSync(cert)).fingerprint256 };
}

/** GET over a new TLS connection trusting `ca`; {status, body, fingerprint}. */
function get(url, ca) {
  return withDeadline(new Promise((resolve, reject) => {
    const req = https.get(url, { ca: readFileSync(ca), agent: false }, (res) => {
      const fingerprint = res.socket.getPeerCertificate().fingerprint256;
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, fingerprint }));
    });
    req.on('error', reject);
  }), DEADLINE_MS, `GET ${url}`);
}

describe('TLS on the listener', { skip: !haveOpenssl && 'no openssl CLI', timeout: 90000 }, () => {
  let dir;
  let one;
  let two;
  let live; // the files the config names
  let server;
  let base;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-tls-'));
    one = makeCert(dir, 'one');
    two = makeCert(dir, 'two');
    live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
    copyFileSync(one.cert, live.cert);
    copyFileSync(one.key, live.key);
    const config = join(dir, 'switchboard.yaml');
    writeFileSync(config, `server:\n  tls:\n    cert_file: ${live.cert}\n    key_file: ${live.key}\n`);
    server = await startHttpServer({ extraArgs: ['--config', config] });
    assert.match(server.url, /^https:\/\//);
    base = server.url.replace(/\/mcp$/, '');
  });
  after(async () => {
    if (server) await stopClean(server);
  });

  it('a Node https client trusting the certificate is served', async () => {
    const r = await get(`${base}/v1/runs`, one.cert);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { runs: [] });
    assert.equal(r.fingerprint, one.fingerprint);
  });

  it('the official SDK clients (both eras) work over https', async () => {
    const script = `
      import { Client as Modern, StreamableHTTPClientTransport as ModernHttp } from '@modelcontextprotocol/client';
      import { Client as Legacy } from '@modelcontextprotocol/sdk/client/index.js';
      import { StreamableHTTPClientTransport as LegacyHttp } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
      const url = new URL(process.argv[1]);
      const out = {};
      const m = new Modern({ name: 'tls', version: '1' }, { capabilities: {}, versionNegotiation: { mode: { pin: '2026-07-28' } } });
      await m.connect(new ModernHttp(url));
      out.modern = (await m.callTool({ name: 'echo', arguments: { text: 'over tls' } })).content[0].text;
      await m.close();
      const l = new Legacy({ name: 'tls', version: '1' }, { capabilities: {} });
      const t = new LegacyHttp(url);
      await l.connect(t);
      out.legacy = (await l.callTool({ name: 'echo', arguments: { text: 'over tls' } })).content[0].text;
      await t.terminateSession();
      await l.close();
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, server.url], {
      cwd: ROOT, env: { ...process.env, NODE_EXTRA_CA_CERTS: one.cert }, encoding: 'utf8', timeout: DEADLINE_MS,
    });
    assert.equal(r.status, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.match(out.modern, /over tls/);
    assert.match(out.legacy, /over tls/);
  });

  it('after the files are replaced and SIGHUP, new connections get the new certificate', async () => {
    copyFileSync(two.cert, live.cert);
    copyFileSync(two.key, live.key);
    server.proc.kill('SIGHUP');
    const end = Date.now() + DEADLINE_MS;
    let r;
    for (;;) {
      r = await get(`${base}/v1/runs`, two.cert).catch((e) => ({ error: e }));
      if (r.fingerprint === two.fingerprint) break;
      assert.ok(Date.now() < end, `still ${r.fingerprint ?? r.error}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.equal(r.status, 200);
    assert.match(server.stderr, /TLS certificate reloaded from .*live\.crt/);
  });

  it('a bad file at reload keeps the current certificate and logs an error naming it', async () => {
    writeFileSync(live.cert, 'not a certificate\n');
    const before = server.stderr.length;
    server.proc.kill('SIGHUP');
    const end = Date.now() + DEADLINE_MS;
    while (!/TLS certificate not reloaded/.test(server.stderr.slice(before))) {
      assert.ok(Date.now() < end, `no error logged: ${server.stderr.slice(before)}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.match(server.stderr.slice(before), /error .*TLS certificate not reloaded, the current one is kept: server\.tls\.cert_file: .*live\.crt/);
    const r = await get(`${base}/v1/runs`, two.cert);
    assert.equal(r.fingerprint, two.fingerprint);
    assert.equal(r.status, 200);
  });

  it('a bad certificate file stops the start, naming the file, and check finds it first', async () => {
    const bad = join(dir, 'bad.yaml');
    const garbage = join(dir, 'garbage.crt');
    writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    writeFileSync(bad, `server:\n  tls:\n    cert_file: ${garbage}\n    key_file: ${one.key}\n`);
    // A config error (exit 2), as `check` finds it before a start.
    const r = await runCli(['serve', '--config', bad, '--listen', '127.0.0.1:0', '--store', join(dir, 'x.db')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /server\.tls\.cert_file: .*garbage\.crt: not a PEM certificate/);
    const c = await runCli(['check', '--config', bad]);
    assert.equal(c.code, 2, c.stderr);
    assert.match(c.stderr, /server\.tls\.cert_file: .*garbage\.crt: not a PEM certificate/);
    assert.equal(c.stdout, '');
    const missing = join(dir, 'missing.yaml');
    writeFileSync(missing, `server:\n  tls:\n    cert_file: ${one.cert}\n    key_file: ${join(dir, 'nope.key')}\n`);
    const r2 = await runCli(['serve', '--config', missing, '--listen', '127.0.0.1:0', '--store', join(dir, 'y.db')]);
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, /server\.tls\.key_file: cannot read .*nope\.key: No such file/);
    const c2 = await runCli(['check', '--config', missing]);
    assert.equal(c2.code, 2, c2.stderr);
    assert.match(c2.stderr, /server\.tls\.key_file: cannot read .*nope\.key: No such file/);
    // A key that is not the certificate's.
    const mismatch = join(dir, 'mismatch.yaml');
    writeFileSync(mismatch, `server:\n  tls:\n    cert_file: ${one.cert}\n    key_file: ${two.key}\n`);
    const r3 = await runCli(['serve', '--config', mismatch, '--listen', '127.0.0.1:0', '--store', join(dir, 'z.db')]);
    assert.equal(r3.code, 2, r3.stderr);
    assert.match(r3.stderr, /do not make a certificate and its key/);
    const c3 = await runCli(['check', '--config', mismatch]);
    assert.equal(c3.code, 2, c3.stderr);
    assert.match(c3.stderr, /do not make a certificate and its key/);
    // The files that load pass check.
    const good = join(dir, 'good.yaml');
    writeFileSync(good, `server:\n  tls:\n    cert_file: ${one.cert}\n    key_file: ${one.key}\n`);
    const c4 = await runCli(['check', '--config', good]);
    assert.equal(c4.code, 0, c4.stderr);
    assert.ok(switchboardBin());
  });
});
