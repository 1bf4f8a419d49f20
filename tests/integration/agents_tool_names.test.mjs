// agents_tool_names.test.mjs: agents' tools on /mcp are named agentId__tool,
// shortened when that would pass limits.max_tool_name (64 by default, the
// limit many LLM hosts enforce): the shortened names are at most the limit,
// only A-Za-z0-9_-., stable across restarts, and calls made by them reach
// the agent's tool; `agents show` prints the mapping. The agent is a second
// switchboard (modern, over HTTP) under a long id.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startHttpServer, textOf } from './lib/harness.mjs';
import { runCli } from './lib/contexts_common.mjs';
import { agentDef, callWithin, connect, pollUntil } from '../agents/agents_lib.mjs';

const ID = 'west-coast-dealership-inventory-and-pricing-agent'; // 49 characters
const PLAIN = /^[A-Za-z0-9_.-]+$/;

function writeConfigWith(agentUrl, limits = '') {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-names-')), 'switchboard.yaml');
  writeFileSync(file, `cache:\n  ttl_ms: 0\n${limits}agents:\n  - ${JSON.stringify(agentDef(ID, { transport: { type: 'http', url: agentUrl } }))}\n`);
  return file;
}

/** The agent's tools as the front lists them, once they are there. */
async function agentTools(ctx) {
  return pollUntil(async () => {
    const { tools } = await ctx.client.listTools();
    const mine = tools.filter((t) => t.name.startsWith(ID.slice(0, 20)));
    return mine.length >= 6 ? mine : { ok: false, message: tools.map((t) => t.name).join(', ') };
  }, { what: 'the agent\'s tools on /mcp' });
}

describe('public names of agents\' tools', { timeout: 90000 }, () => {
  let back;
  let cfg;

  before(async () => {
    back = await startHttpServer();
    cfg = writeConfigWith(back.url);
  });

  after(async () => {
    const done = await back.stop();
    assert.equal(done.code, 0);
  });

  async function namesOnce(config, era = 'modern') {
    const front = await startHttpServer({ extraArgs: ['--config', config] });
    const ctx = await connect(era, front.url);
    try {
      const tools = await agentTools(ctx);
      return { names: tools.map((t) => t.name), ctx, front };
    } catch (e) {
      await ctx.close();
      await front.stop();
      throw e;
    }
  }

  it('names past 64 characters are shortened; calls by them reach the tool; the names survive a restart', async () => {
    const first = await namesOnce(cfg);
    let names;
    try {
      names = first.names;
      for (const n of names) {
        assert.ok(n.length <= 64, `${n} is ${n.length} characters`);
        assert.match(n, PLAIN);
      }
      // Short enough: as it was. Too long: cut, plus a hash.
      assert.ok(names.includes(`${ID}__echo`), names.join(', '));
      const info = names.find((n) => n.startsWith(`${ID}__sw_`));
      assert.ok(info, names.join(', '));
      assert.match(info, /^west-coast-dealership-inventory-and-pricing-agent__sw_[0-9a-f]{10}$/);
      assert.equal(new Set(names).size, names.length);
      const echo = await callWithin(first.ctx, { name: `${ID}__echo`, arguments: { text: 'F-150?' } });
      assert.equal(textOf(echo.content), 'F-150?');
      const r = await callWithin(first.ctx, { name: info, arguments: {} });
      assert.notEqual(r.isError, true, textOf(r.content));
      assert.match(textOf(r.content), /switchboard/);
    } finally {
      await first.ctx.close();
      await first.front.stop();
    }
    // A legacy client, on a new start: the same names.
    const again = await namesOnce(cfg, 'legacy');
    try {
      assert.deepEqual(again.names, names);
    } finally {
      await again.ctx.close();
      await again.front.stop();
    }
  });

  it('limits.max_tool_name sets the limit', async () => {
    const config = writeConfigWith(back.url, 'limits:\n  max_tool_name: 32\n');
    const short = await namesOnce(config);
    try {
      for (const n of short.names) {
        assert.ok(n.length <= 32, `${n} is ${n.length} characters`);
        assert.match(n, PLAIN);
      }
      // agents show names them the same way; its name for echo calls echo.
      const r = await runCli(['agents', 'show', ID, '--config', config]);
      assert.equal(r.code, 0, r.stderr);
      const { toolNames } = JSON.parse(r.stdout);
      assert.deepEqual(Object.keys(toolNames).sort(), [...short.names].sort());
      const echo = Object.keys(toolNames).find((n) => toolNames[n] === 'echo');
      assert.match(echo, /^west-coast-dealership_[0-9a-f]{10}$/);
      const res = await callWithin(short.ctx, { name: echo, arguments: { text: 'trade-in' } });
      assert.equal(textOf(res.content), 'trade-in');
    } finally {
      await short.ctx.close();
      await short.front.stop();
    }
  });

  it('agents show prints the mapping, the same as /mcp serves', async () => {
    const r = await runCli(['agents', 'show', ID, '--config', cfg]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(Object.keys(s.toolNames).length, s.tools);
    assert.equal(s.toolNames[`${ID}__echo`], 'echo');
    const info = Object.keys(s.toolNames).find((n) => s.toolNames[n] === 'switchboard_info');
    assert.match(info, /^west-coast-dealership-inventory-and-pricing-agent__sw_[0-9a-f]{10}$/);
    const served = await namesOnce(cfg);
    try {
      assert.deepEqual(Object.keys(s.toolNames).sort(), [...served.names].sort());
    } finally {
      await served.ctx.close();
      await served.front.stop();
    }
  });
});
