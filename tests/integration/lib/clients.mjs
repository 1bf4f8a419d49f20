// Adapters over the two official SDK clients so one scenario list can drive
// all four combinations: {modern v2, legacy v1} x {stdio, Streamable HTTP}.
// Each adapter connects through the real SDK, taps the wire, and exposes a
// small uniform surface; everything era-specific stays visible here.
import { Client as ModernClient, StreamableHTTPClientTransport as ModernHttp } from '@modelcontextprotocol/client';
import { StdioClientTransport as ModernStdio } from '@modelcontextprotocol/client/stdio';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as LegacyStdio } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as LegacyHttp } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

import {
  DEADLINE_MS,
  EventLog,
  MODERN_VERSION,
  recordingFetch,
  startHttpServer,
  stdioServerParams,
  tapTransport,
  watchStdioChild,
  withDeadline,
} from './harness.mjs';

const CLIENT_INFO = { name: 'switchboard-sdk-tests', version: '0.1.0' };
const NOTIFICATION_METHODS = [
  'notifications/resources/updated',
  'notifications/resources/list_changed',
  'notifications/message',
];

/**
 * Common state: `notifications` holds what the SDK dispatched to our
 * handlers, `elicitations` the elicitation/create requests the SDK handed
 * to our handler (answered with `ctx.elicitAnswer`).
 */
function baseCtx(era, transportKind) {
  return {
    era,
    transportKind,
    notifications: new EventLog('notifications'),
    elicitations: new EventLog('elicitations'),
    elicitAnswer: 'forty-two',
    wire: undefined,
    http: undefined,
    server: undefined,
    child: undefined,
  };
}

function elicitHandler(ctx) {
  return async (request) => {
    ctx.elicitations.push(request);
    return { action: 'accept', content: { answer: ctx.elicitAnswer } };
  };
}

/** Connect the v2 client pinned to 2026-07-28 (so no initialize, no fallback). */
export async function connectModern(transportKind) {
  const ctx = baseCtx('modern', transportKind);
  const client = new ModernClient(CLIENT_INFO, {
    capabilities: { elicitation: { form: {} } },
    versionNegotiation: { mode: { pin: MODERN_VERSION } },
  });
  client.setRequestHandler('elicitation/create', elicitHandler(ctx));
  for (const m of NOTIFICATION_METHODS) client.setNotificationHandler(m, (n) => ctx.notifications.push(n));
  ctx.errors = new EventLog('client errors');
  client.onerror = (e) => ctx.errors.push(String(e));

  let transport;
  if (transportKind === 'stdio') {
    transport = new ModernStdio(stdioServerParams());
    ctx.child = watchStdioChild(transport);
  } else {
    ctx.server = await startHttpServer();
    const rec = recordingFetch();
    ctx.http = rec.log;
    transport = new ModernHttp(new URL(ctx.server.url), { fetch: rec.fetch });
  }
  ctx.wire = tapTransport(transport);
  ctx.transport = transport;
  ctx.client = client;
  try {
    await withDeadline(client.connect(transport), DEADLINE_MS, 'v2 client connect (server/discover)');
  } catch (e) {
    await cleanupAfterFailure(ctx);
    throw annotate(e, ctx);
  }
  ctx.child?.attach();

  ctx.callTool = (params, opts) => client.callTool(params, opts);
  ctx.subscribe = async (uri) => {
    const sub = await client.listen({ resourceSubscriptions: [uri], resourcesListChanged: true });
    return { honored: sub.honoredFilter, close: () => sub.close(), closed: sub.closed };
  };
  ctx.close = () => closeCtx(ctx);
  return ctx;
}

/** Connect the v1 client (initialize handshake, 2025-11-25). */
export async function connectLegacy(transportKind) {
  const ctx = baseCtx('legacy', transportKind);
  const client = new LegacyClient(CLIENT_INFO, { capabilities: { elicitation: {} } });
  client.setRequestHandler(ElicitRequestSchema, elicitHandler(ctx));
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => ctx.notifications.push(n));
  client.setNotificationHandler(ResourceListChangedNotificationSchema, (n) => ctx.notifications.push(n));
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => ctx.notifications.push(n));
  ctx.errors = new EventLog('client errors');
  client.onerror = (e) => ctx.errors.push(String(e));

  let transport;
  if (transportKind === 'stdio') {
    transport = new LegacyStdio(stdioServerParams());
    ctx.child = watchStdioChild(transport);
  } else {
    ctx.server = await startHttpServer();
    const rec = recordingFetch();
    ctx.http = rec.log;
    transport = new LegacyHttp(new URL(ctx.server.url), { fetch: rec.fetch });
  }
  ctx.wire = tapTransport(transport);
  ctx.transport = transport;
  ctx.client = client;
  try {
    await withDeadline(client.connect(transport), DEADLINE_MS, 'v1 client connect (initialize)');
  } catch (e) {
    await cleanupAfterFailure(ctx);
    throw annotate(e, ctx);
  }
  ctx.child?.attach();

  ctx.callTool = (params, opts) => client.callTool(params, CallToolResultSchema, opts);
  ctx.subscribe = async (uri) => {
    await client.subscribeResource({ uri });
    return { honored: undefined, close: () => client.unsubscribeResource({ uri }) };
  };
  ctx.close = () => closeCtx(ctx);
  return ctx;
}

/**
 * Close the client and report how the server process ended: for stdio the
 * SDK closes the child's stdin (the server must exit 0 on EOF); for HTTP we
 * send SIGTERM ourselves (the server must exit 0).
 */
async function closeCtx(ctx) {
  if (ctx.transportKind === 'stdio') {
    await ctx.client.close();
    const exit = await withDeadline(ctx.child.exited, DEADLINE_MS, 'stdio server to exit after stdin EOF');
    return { ...exit, how: 'stdin EOF', stderr: ctx.child.stderr };
  }
  // The legacy client ends its session explicitly (DELETE) before closing.
  if (ctx.era === 'legacy' && ctx.transport.sessionId) {
    await ctx.transport.terminateSession().catch(() => {});
  }
  await ctx.client.close();
  const exit = await ctx.server.stop();
  return { ...exit, how: 'SIGTERM', stderr: ctx.server.stderr };
}

async function cleanupAfterFailure(ctx) {
  await ctx.client?.close().catch(() => {});
  await ctx.server?.stop().catch(() => {});
}

/** Attach the server's stderr and the wire so a failed connect explains itself. */
export function annotate(e, ctx) {
  const stderr = ctx.server?.stderr ?? ctx.child?.stderr ?? '';
  const wire = (ctx.wire?.items || []).slice(-10).map((x) => `${x.dir} ${JSON.stringify(x.msg).slice(0, 300)}`);
  const http = (ctx.http?.items || []).slice(-6).map((x) => `${x.method} ${x.status ?? x.error} ${x.body ? x.body.slice(0, 200) : ''}`);
  const err = new Error(`${e.message}\n--- wire:\n${wire.join('\n')}\n--- http:\n${http.join('\n')}\n--- server stderr:\n${stderr.slice(-2000)}`);
  err.cause = e;
  return err;
}
