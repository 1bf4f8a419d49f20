// agents_retry.test.mjs: a failed call is retried (with backoff) when that
// is safe — the tool is listed in idempotentTools — and is not retried
// when it is not; both end in one answer for the caller.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { DEADLINE_MS, textOf, withDeadline } from './lib/harness.mjs';
import { flakyAgent, startWithAgents, connect, waitForTools, callWithin } from '../agents/agents_lib.mjs';

describe('retries', () => {
  let server;
  let ctx;

  before(async () => {
    server = await startWithAgents([
      flakyAgent('safe', 'S', { limits: { timeoutMs: 300, retries: 2 }, idempotentTools: ['hang_once'] }),
      flakyAgent('unsafe', 'U', { limits: { timeoutMs: 300, retries: 2 } }),
    ]);
    ctx = await connect('modern', server.url);
    await waitForTools(ctx, ['safe__hang_once', 'unsafe__hang_once']);
  });

  after(async () => {
    await ctx?.close();
    const done = await server.stop();
    assert.equal(done.code, 0, server.stderr.slice(-2000));
  });

  it('an idempotent tool that timed out is retried and the retry answers', async () => {
    const res = await callWithin(ctx, { name: 'safe__hang_once', arguments: {} });
    assert.notEqual(res.isError, true, JSON.stringify(res));
    assert.equal(textOf(res.content), 'S answered try 2');
    assert.match(server.stderr, /agent safe: retrying hang_once in \d+ ms after: agent safe: tools\/call timed out/);
  });

  it('a tool that is not idempotent is not run twice', async () => {
    const res = await callWithin(ctx, { name: 'unsafe__hang_once', arguments: {} });
    assert.equal(res.isError, true);
    assert.match(textOf(res.content), /agent unsafe: tools\/call timed out after 300 ms/);
    // the agent saw exactly one call: its next answer is try 2
    const next = await callWithin(ctx, { name: 'unsafe__hang_once', arguments: {} });
    assert.equal(textOf(next.content), 'U answered try 2');
  });
});

describe('an agent\'s tools/list_changed reaches switchboard\'s clients', () => {
  it('a tool an agent adds at run time is announced and served', async () => {
    const server = await startWithAgents([flakyAgent('g', 'G')]);
    const ctx = await connect('modern', server.url);
    try {
      await waitForTools(ctx, ['g__grow']);
      let announced;
      const changed = new Promise((resolve) => { announced = resolve; });
      ctx.client.setNotificationHandler('notifications/tools/list_changed', () => announced());
      const sub = await ctx.client.listen({ toolsListChanged: true });
      assert.equal(sub.honoredFilter.toolsListChanged, true);
      await callWithin(ctx, { name: 'g__grow', arguments: {} });
      await withDeadline(changed, DEADLINE_MS, 'notifications/tools/list_changed');
      await waitForTools(ctx, ['g__extra']);
      assert.equal(textOf((await callWithin(ctx, { name: 'g__extra', arguments: {} })).content), 'G extra');
      await sub.close();
    } finally {
      await ctx.close();
      const done = await server.stop();
      assert.equal(done.code, 0, server.stderr.slice(-2000));
    }
  });
});
