// agents_busy_poll.test.mjs: limits.agent_busy_poll_us off and on. With
// busy polling switchboard reads a stdio agent's answers itself while it
// would otherwise sleep (src/net/child.c); the calls must come out the
// same either way: answers byte for byte, in sequence and concurrently,
// progress notifications in between, and a clean exit with the agent
// still running. 1000 µs (the maximum) makes nearly every answer go
// through the spinning path on any machine.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startHttpServer } from './lib/harness.mjs';
import {
  DEADLINE_MS, callWithin, connect, everythingStdio, textOf, waitForTools, withStderr,
} from '../agents/agents_lib.mjs';

function configWith(busyPollUs) {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-busy-')), 'switchboard.yaml');
  writeFileSync(file, `cache:\n  ttl_ms: 0\nlimits:\n  agent_busy_poll_us: ${busyPollUs}\n`
    + `agents:\n  - ${JSON.stringify({ ...everythingStdio(), limits: { maxConcurrent: 64 } })}\n`);
  return file;
}

// Escapes, non-ASCII, and a size past one pipe read.
const TEXTS = ['plain', 'quote " backslash \\ tab \t newline \n', 'é ü 漢字 🚗', 'x'.repeat(100000)];

for (const busy of [0, 1000]) {
  describe(`limits.agent_busy_poll_us: ${busy}`, () => {
    let server;
    let client;
    before(async () => {
      server = await startHttpServer({ extraArgs: ['--config', configWith(busy)] });
      client = await connect('modern', server.url);
      await waitForTools(client, ['everything__echo']);
    });
    after(async () => {
      await client?.close();
      const exit = await server?.stop();
      assert.equal(exit?.code, 0, withStderr(server, 'switchboard exits 0 on SIGTERM'));
    });

    it('relays echoes one after another, byte for byte', async () => {
      for (let i = 0; i < 40; i++) {
        const message = `${TEXTS[i % TEXTS.length]} #${i}`;
        const r = await callWithin(client, { name: 'everything__echo', arguments: { message } });
        assert.ok(!r.isError, withStderr(server, JSON.stringify(r).slice(0, 500)));
        assert.equal(textOf(r.content), `Echo: ${message}`);
      }
    });

    it('relays concurrent echoes, each to its caller', async () => {
      const calls = Array.from({ length: 16 }, (_, i) =>
        callWithin(client, { name: 'everything__echo', arguments: { message: `c${i}` } }));
      const results = await Promise.all(calls);
      results.forEach((r, i) => assert.equal(textOf(r.content), `Echo: c${i}`));
    });

    it('relays progress before the answer', async () => {
      const progress = [];
      const r = await callWithin(client,
        { name: 'everything__trigger-long-running-operation', arguments: { duration: 0.2, steps: 4 } },
        DEADLINE_MS, { onprogress: (p) => progress.push(p) });
      assert.ok(!r.isError, withStderr(server, JSON.stringify(r)));
      assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3, 4]);
    });
  });
}
