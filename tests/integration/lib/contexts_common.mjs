// Shared pieces of the contexts_*.test.mjs end-to-end tests: a two-tenant
// config, a small REST client for /v1/contexts, and SDK client adapters
// that authenticate with a tenant's bearer token.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client as ModernClient, StreamableHTTPClientTransport as ModernHttp } from '@modelcontextprotocol/client';
import { StdioClientTransport as ModernStdio } from '@modelcontextprotocol/client/stdio';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as LegacyStdio } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as LegacyHttp } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import {
  DEADLINE_MS,
  EventLog,
  MODERN_VERSION,
  recordingFetch,
  startHttpServer,
  stdioServerParams,
  switchboardBin,
  watchStdioChild,
  withDeadline,
} from './harness.mjs';

export const TENANTS = {
  a: { id: 'dealer-a', token: 'token-for-dealer-a-0123456789' },
  b: { id: 'dealer-b', token: 'token-for-dealer-b-9876543210' },
};

export const CONTEXT_TOOLS = ['context_create', 'context_get', 'context_update', 'context_history', 'context_diff'];
export const contextUri = (id, version) => (version ? `context://${id}/versions/${version}` : `context://${id}`);

/** A temp YAML config listing both tenants (plus `extra` YAML appended). */
export function writeTenantConfig(extra = '') {
  const dir = mkdtempSync(join(tmpdir(), 'sb-ctx-cfg-'));
  const path = join(dir, 'switchboard.yaml');
  writeFileSync(path, [
    'auth:',
    '  tenants:',
    ...Object.values(TENANTS).flatMap((t) => [`    - id: ${t.id}`, `      token: ${t.token}`]),
    extra,
  ].join('\n') + '\n');
  return path;
}

/** A switchboard HTTP server with both tenants configured (plus `config`
 * YAML appended to the file). */
export async function startTenantServer({ store, extraArgs = [], config = '', wrap = [] } = {}) {
  const args = ['--config', writeTenantConfig(config), ...(store ? ['--store', store] : []), ...extraArgs];
  const server = await startHttpServer({ extraArgs: args, wrap });
  server.base = server.url.replace(/\/mcp$/, '');
  return server;
}

/**
 * A REST caller for one tenant (token may be null for "no credentials").
 * Returns {status, headers (lower-case object), text, json}.
 */
export function restClient(base, token) {
  const call = async (method, path, { body, headers = {}, contentType } = {}) => {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    let payload;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['Content-Type'] = contentType || 'application/json';
    }
    const { res, text } = await withDeadline((async () => {
      const r = await fetch(base + path, { method, headers: h, body: payload });
      return { res: r, text: await r.text() };
    })(), DEADLINE_MS, `${method} ${path}`);
    let json;
    try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
    return { status: res.status, headers: Object.fromEntries(res.headers.entries()), text, json };
  };
  return {
    call,
    create: (body) => call('POST', '/v1/contexts', { body }),
    get: (id, query = '') => call('GET', `/v1/contexts/${id}${query}`),
    merge: (id, version, patch) => call('PATCH', `/v1/contexts/${id}`,
      { body: patch, contentType: 'application/merge-patch+json', headers: { 'If-Match': `"${version}"` } }),
    jsonPatch: (id, version, ops) => call('PATCH', `/v1/contexts/${id}`,
      { body: ops, contentType: 'application/json-patch+json', headers: { 'If-Match': `"${version}"` } }),
    history: (id, query = '') => call('GET', `/v1/contexts/${id}/history${query}`),
    diff: (id, from, to) => call('GET', `/v1/contexts/${id}/diff?from=${from}&to=${to}`),
  };
}

/** A context input with enough in it to project and patch. */
export function sampleInput(tag = 'x') {
  return {
    workflowId: `wf-${tag}`,
    sessionId: `sess-${tag}`,
    data: {
      conversation: {
        messages: Array.from({ length: 7 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `m${i}` })),
        intent: 'buy_car',
        sentiment: 'positive',
        language: 'en',
      },
      workflow: { currentStep: 'qualify', variables: { vin: '1HGCM82633A004352', budget: 30000 } },
      user: { id: `user-${tag}`, profile: { name: 'Ada' } },
    },
  };
}

/** Replace every occurrence of `id` by "<id>" so two messages compare. */
export function withoutId(text, id) {
  return String(text).split(id).join('<id>');
}

/** Run the CLI to completion (extra `env` on top of ours); resolves {code, signal, stdout, stderr}. */
export function runCli(args, { timeoutMs = DEADLINE_MS, env = {} } = {}) {
  const proc = spawn(switchboardBin(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
  proc.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  const done = new Promise((resolve, reject) => {
    proc.once('error', reject);
    proc.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return withDeadline(done, timeoutMs, `switchboard ${args.join(' ')}`).catch((e) => {
    proc.kill('SIGKILL');
    throw e;
  });
}

/**
 * The CLI's tenant and key commands on the store file `store`, each
 * asserted to succeed: tenant(id) creates a tenant; key(tenant, ...scopes)
 * creates a key with those scopes and resolves with the key (its stdout).
 */
export function storeAdmin(store) {
  const cli = async (args) => {
    const r = await runCli([...args, '--store', store]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  return {
    tenant: (id) => cli(['tenant', 'create', id]),
    key: (tenant, ...scopes) => cli(['key', 'create', '--tenant', tenant, ...scopes.flatMap((s) => ['--scope', s])]),
  };
}

const CLIENT_INFO = { name: 'switchboard-ctx-tests', version: '0.1.0' };

/**
 * Connect an official SDK client. era: 'modern' (v2, pinned 2026-07-28) |
 * 'legacy' (v1, initialize); kind: 'http' (url + token) | 'stdio' (args for
 * serve --stdio). The returned adapter has: client, notifications (EventLog
 * of notifications/resources/updated), http (EventLog of HTTP exchanges),
 * callTool, subscribe(uris) -> {honored, close}, readResource, close().
 */
export async function connectSdk(era, kind, { url, token, stdioArgs = [] } = {}) {
  const notifications = new EventLog(`${era}/${kind} notifications`);
  let client;
  if (era === 'modern') {
    client = new ModernClient(CLIENT_INFO, { capabilities: {}, versionNegotiation: { mode: { pin: MODERN_VERSION } } });
    client.setNotificationHandler('notifications/resources/updated', (n) => notifications.push(n));
  } else {
    client = new LegacyClient(CLIENT_INFO, { capabilities: {} });
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => notifications.push(n));
  }
  let transport;
  let http;
  let child;
  if (kind === 'http') {
    // The SDKs' documented way to add request headers: requestInit.
    const rec = recordingFetch();
    http = rec.log;
    const opts = { fetch: rec.fetch, requestInit: { headers: token ? { Authorization: `Bearer ${token}` } : {} } };
    transport = era === 'modern' ? new ModernHttp(new URL(url), opts) : new LegacyHttp(new URL(url), opts);
  } else {
    const params = stdioServerParams(stdioArgs);
    transport = era === 'modern' ? new ModernStdio(params) : new LegacyStdio(params);
    child = watchStdioChild(transport);
  }
  try {
    await withDeadline(client.connect(transport), DEADLINE_MS, `${era} client connect over ${kind}`);
  } catch (e) {
    await client.close().catch(() => {});
    throw new Error(`${e.message}\nstderr: ${child?.stderr ?? ''}`, { cause: e });
  }
  child?.attach();
  const ad = { era, kind, client, transport, notifications, http, child };
  ad.callTool = (name, args) => withDeadline(era === 'modern'
    ? client.callTool({ name, arguments: args })
    : client.callTool({ name, arguments: args }, CallToolResultSchema), DEADLINE_MS, `tools/call ${name}`);
  ad.readResource = (uri) => withDeadline(era === 'modern'
    ? client.readResource({ uri }, { cacheMode: 'bypass' })
    : client.readResource({ uri }), DEADLINE_MS, `resources/read ${uri}`);
  ad.subscribe = async (uris) => {
    if (era === 'modern') {
      const sub = await withDeadline(client.listen({ resourceSubscriptions: uris }), DEADLINE_MS, 'subscriptions/listen');
      return { honored: sub.honoredFilter, close: () => sub.close() };
    }
    if (kind === 'http') {
      // Legacy unsolicited notifications ride the standalone GET stream the
      // SDK opens after initialize; it must be up before anything changes.
      const get = await http.waitFor((x) => x.method === 'GET', { what: 'the legacy GET SSE stream' });
      assert.equal(get.status, 200, `GET stream answered ${get.status}`);
    }
    for (const uri of uris) await withDeadline(client.subscribeResource({ uri }), DEADLINE_MS, `resources/subscribe ${uri}`);
    return { honored: undefined, close: async () => { for (const uri of uris) await client.unsubscribeResource({ uri }); } };
  };
  ad.close = async () => {
    if (era === 'legacy' && kind === 'http' && transport.sessionId) await transport.terminateSession().catch(() => {});
    await client.close().catch(() => {});
    if (child) return withDeadline(child.exited, DEADLINE_MS, 'stdio server exit on stdin EOF');
    return undefined;
  };
  return ad;
}

/** notifications/resources/updated for a context:// URI in an adapter's log. */
export const isContextUpdate = (n) => n.method === 'notifications/resources/updated' && n.params.uri.startsWith('context://');

/**
 * Apply an RFC 6902 patch (the ops a diff produces) to a copy of doc, so a
 * test can check that history/diff patches really lead from one version to
 * the next.
 */
export function applyPatch(doc, ops) {
  const out = structuredClone(doc);
  const unesc = (t) => t.replace(/~1/g, '/').replace(/~0/g, '~');
  const locate = (path) => {
    const toks = path.split('/').slice(1).map(unesc);
    const last = toks.pop();
    let parent = out;
    for (const t of toks) {
      assert.ok(parent !== null && typeof parent === 'object', `patch path ${path} crosses a non-container`);
      parent = parent[Array.isArray(parent) ? Number(t) : t];
    }
    return { parent, last };
  };
  for (const op of ops) {
    const { parent, last } = locate(op.path);
    if (op.op === 'add') {
      if (Array.isArray(parent)) parent.splice(last === '-' ? parent.length : Number(last), 0, structuredClone(op.value));
      else parent[last] = structuredClone(op.value);
    } else if (op.op === 'replace') {
      assert.ok(Array.isArray(parent) ? Number(last) < parent.length : Object.hasOwn(parent, last), `replace of missing ${op.path}`);
      parent[Array.isArray(parent) ? Number(last) : last] = structuredClone(op.value);
    } else if (op.op === 'remove') {
      assert.ok(Array.isArray(parent) ? Number(last) < parent.length : Object.hasOwn(parent, last), `remove of missing ${op.path}`);
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else {
      assert.fail(`unexpected op ${op.op} in a server diff`);
    }
  }
  return out;
}

/**
 * Stop a server with SIGTERM and require a clean exit 0 (so a crash or a
 * sanitizer report at shutdown fails the test, with the server's stderr).
 */
export async function stopClean(server) {
  const exit = await server.stop();
  assert.equal(exit.code, 0, `server exit ${JSON.stringify(exit)}; stderr:\n${server.stderr.slice(-4000)}`);
  return exit;
}
