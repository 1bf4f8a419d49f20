// fidelity.test.mjs: issue 6. The same client test set (fidelity_cases.mjs)
// runs against an agent directly and through switchboard's
// /agents/{id}/mcp, and the normalised results must match, in all four era
// pairs:
//   v2 client (modern, 2026-07-28) x reference agent (@modelcontextprotocol/server 2.x, modern)
//   v2 client                      x server-everything (legacy agent)
//   v1 client (legacy)             x reference agent
//   v1 client                      x server-everything
// Every case is a pair of tests: "direct: X" (the case against the agent
// itself, checked for what the agent must say) and "through: X" (the same
// case through switchboard, deep-equal to the direct result after the
// normalisations documented in lib/fidelity_cases.mjs). Where a difference is
// required by the protocol, the case is in EXPECTED_DIFFERENCES and both
// sides are asserted explicitly instead.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';

import { DEADLINE_MS, startHttpServer, withDeadline } from './lib/harness.mjs';
import { agentDef, everythingStdio, startEverythingHttp, writeConfig } from '../agents/agents_lib.mjs';
import {
  EVERYTHING_CASES, REFERENCE_AGENT, REFERENCE_CASES, SAMPLING_ANSWER, connectClient, normalise, startReferenceHttp,
} from './lib/fidelity_cases.mjs';

// `direct` names the agent process the direct path talks to (over HTTP);
// the *-stdio agents are the same agent code, but switchboard runs them as
// stdio children, so their "through" half covers the stdio agent channel.
const AGENTS = [
  { id: 'ref', direct: 'ref', label: 'reference agent (modern)', era: 'modern', cases: REFERENCE_CASES },
  { id: 'everything', direct: 'everything', label: 'server-everything (legacy)', era: 'legacy', cases: EVERYTHING_CASES },
  { id: 'everything-stdio', direct: 'everything', label: 'server-everything (legacy; stdio child of switchboard)', era: 'legacy', cases: EVERYTHING_CASES },
  { id: 'ref-stdio', direct: 'ref', label: 'reference agent (modern; stdio child of switchboard)', era: 'modern', cases: REFERENCE_CASES },
];
const CLIENT_ERAS = [
  { era: 'modern', label: 'v2 client (modern)' },
  { era: 'legacy', label: 'v1 client (legacy)' },
];

/**
 * Checks on the direct result alone, so the direct half proves the case
 * exercises what it claims (keyed by agent id, then case name).
 */
const DIRECT_CHECKS = {
  ref: {
    'tool: image': (r) => assert.equal(r.content[1].type, 'image'),
    'tool: audio': (r) => assert.equal(r.content[0].type, 'audio'),
    'tool: embedded resource + resource link': (r) => assert.deepEqual(r.content.map((c) => c.type), ['text', 'resource', 'resource_link']),
    'tool: error result (isError)': (r) => assert.equal(r.isError, true),
    'protocol error: unknown tool': (r) => assert.equal(r.error?.code, -32602),
    'progress': (r) => assert.equal(r.progress.length, 3),
    'logging (threshold info)': (r) => assert.deepEqual(r.logs.map((l) => l.params.level), ['info', 'warning', 'error']),
    'sampling': (r) => {
      assert.equal(r.asked.length, 1);
      assert.match(JSON.stringify(r.result), new RegExp(SAMPLING_ANSWER.content.text));
    },
    'elicitation': (r) => {
      assert.equal(r.asked.length, 1);
      assert.match(JSON.stringify(r.result), /Tuesday at 9/);
    },
    'resources/read: not found': (r) => assert.equal(r.error?.code, -32602),
    'completion: template variable': (r) => assert.deepEqual(r.completion.values, ['beta', 'bravo']),
    'completion: prompt argument': (r) => assert.deepEqual(r.completion.values, ['Bob', 'Bobby']),
    'subscription: resource updated': (r) => assert.equal(r.notification.params.uri, 'ref://notes/bravo'),
  },
  everything: {
    'tool: image (get-tiny-image)': (r) => assert.ok(r.content.some((c) => c.type === 'image')),
    'tool: embedded resource (get-resource-reference)': (r) => assert.ok(r.content.some((c) => c.type === 'resource')),
    'progress': (r) => assert.equal(r.progress.length, 2),
    'sampling': (r) => {
      assert.equal(r.asked.length, 1);
      assert.match(JSON.stringify(r.result), new RegExp(SAMPLING_ANSWER.content.text));
    },
    'elicitation': (r) => assert.equal(r.asked.length, 1),
    'completion: prompt argument': (r) => assert.deepEqual(r.completion.values, ['Sales', 'Support']),
    'completion: prompt argument with context': (r) => assert.deepEqual(r.completion.values, ['David', 'Eve', 'Frank']),
    'subscription: resource updated': (r) => assert.equal(r.notification.params.uri, 'demo://resource/dynamic/text/1'),
  },
};

/**
 * Differences the protocol requires, asserted on both sides instead of
 * deep equality: EXPECTED_DIFFERENCES[agent.direct][clientEra][case](direct, through).
 */
const stripCodePrefix = (m) => m.replace(/^MCP error -?\d+: /, '');
// A legacy agent gets one pooled session, initialized once with the union
// of what switchboard can relay to its callers (sampling, elicitation,
// roots), not with each caller's own capabilities. server-everything lists
// get-roots-list only to clients declaring roots, and these test clients do
// not: through switchboard the tool is listed (it then reports that no
// roots are configured, since switchboard has none of its own and a
// roots/list outside a call has no client to ask; a roots/list inside a
// call from a client without roots is refused naming the capability); the
// rest is identical, in order.
const rootsToolExtra = (d, t) => {
  const names = (list) => list.map((x) => x.name);
  assert.ok(!names(d).includes('get-roots-list'), JSON.stringify(names(d)));
  assert.ok(names(t).includes('get-roots-list'), JSON.stringify(names(t)));
  assert.deepEqual(t.filter((x) => x.name !== 'get-roots-list'), d);
};
const EXPECTED_DIFFERENCES = {
  everything: {
    modern: { 'tools/list': rootsToolExtra },
    legacy: { 'tools/list': rootsToolExtra },
  },
  ref: {
    modern: {},
    legacy: {
      // A missing resource: the 2.x server SDK answers -32602 in every era
      // (the 2026-07-28 rule, applied to 2025 sessions too); switchboard
      // answers a 2025-era client with that era's resource-not-found code,
      // -32002, which it maps from the modern agent's -32602. Same message.
      'resources/read: not found': (d, t) => {
        assert.equal(d.error?.code, -32602, JSON.stringify(d));
        assert.equal(t.error?.code, -32002, JSON.stringify(t));
        assert.equal(stripCodePrefix(t.error.message), stripCodePrefix(d.error.message));
      },
    },
  },
};

describe('fidelity: directly vs through /agents/{id}/mcp', () => {
  let ref;
  let everything;
  let sb;
  const urls = {};

  before(async () => {
    [ref, everything] = await Promise.all([startReferenceHttp(), startEverythingHttp()]);
    urls.ref = ref.url;
    urls.everything = everything.url;
    sb = await startHttpServer({
      extraArgs: ['--config', writeConfig([
        agentDef('ref', { capabilities: ['reference'], transport: { type: 'http', url: ref.url } }),
        agentDef('everything', { capabilities: ['demo'], transport: { type: 'http', url: everything.url } }),
        everythingStdio('everything-stdio'),
        agentDef('ref-stdio', { capabilities: ['reference'], transport: { type: 'stdio', command: process.execPath, args: [REFERENCE_AGENT, 'stdio'] } }),
      ])],
    });
  });

  after(async () => {
    const done = sb ? await sb.stop() : undefined;
    await Promise.all([ref?.stop(), everything?.stop()]);
    if (done) assert.equal(done.code, 0, sb.stderr.slice(-3000));
  });

  for (const agent of AGENTS) {
    for (const client of CLIENT_ERAS) {
      describe(`${client.label} x ${agent.label}`, () => {
        let direct;
        let through;
        let throughError;
        const directResults = new Map();
        const throughUrl = () => `${sb.url.replace(/\/mcp$/, '')}/agents/${agent.id}/mcp`;

        before(async () => {
          direct = await connectClient(client.era, urls[agent.direct], 'direct');
          try {
            through = await connectClient(client.era, throughUrl(), 'through');
          } catch (e) {
            throughError = e;
          }
        });

        after(async () => {
          await direct?.close();
          await through?.close();
        });

        it('direct: negotiated era', () => {
          // A v2 client speaks 2026-07-28 only to an agent offering it.
          const expected = client.era === 'modern' && agent.era === 'modern' ? 'modern' : 'legacy';
          assert.equal(direct.negotiatedEra, expected);
        });

        it('through: negotiated era', () => {
          if (throughError) throw throughError;
          // switchboard serves both eras itself, whatever the agent's era.
          assert.equal(through.negotiatedEra, client.era);
        });

        const run = async (ctx, name) => {
          const eraDiffers = direct.negotiatedEra !== (through?.negotiatedEra ?? direct.negotiatedEra);
          const raw = await withDeadline(Promise.resolve().then(() => agent.cases[name](ctx)), DEADLINE_MS * 2, `${ctx.kind} ${name}`);
          const r = normalise(raw, { eraDiffers });
          // FIDELITY_DUMP=FILE appends every normalised result (JSON lines) for inspection.
          if (process.env.FIDELITY_DUMP) {
            appendFileSync(process.env.FIDELITY_DUMP, JSON.stringify({ agent: agent.id, client: client.era, path: ctx.kind, case: name, result: r }) + '\n');
          }
          return r;
        };

        for (const name of Object.keys(agent.cases)) {
          it(`direct: ${name}`, async () => {
            const r = await run(direct, name);
            directResults.set(name, r);
            DIRECT_CHECKS[agent.direct]?.[name]?.(r);
          });

          it(`through: ${name}`, async () => {
            if (throughError) throw throughError;
            const d = directResults.has(name) ? directResults.get(name) : await run(direct, name);
            const t = await run(through, name);
            const special = EXPECTED_DIFFERENCES[agent.direct]?.[client.era]?.[name];
            if (special) special(d, t);
            else assert.deepEqual(t, d, `${client.label} x ${agent.label}: "${name}" differs through switchboard`);
          });
        }
      });
    }
  }
});
