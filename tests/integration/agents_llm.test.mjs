// agents_llm.test.mjs: the dealership's intake agent with its models. The
// agent (dealer-general --llm) asks its caller for the classification with
// sampling/createMessage; the client that calls it through switchboard
// cannot sample, so switchboard answers with the agent's own models
// (models.primary, then models.fallback) from the local OpenAI-compatible
// test server: a failing primary falls back, the answer is the model's
// (method "llm"), maxTokens and temperature come from the AgentDefinition;
// with every model failing the call fails with an error naming each model
// tried.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { switchboardBin } from './lib/harness.mjs';
import { callWithin, connect, waitForTools, withStderr } from '../agents/agents_lib.mjs';
import { startFlowServer } from './lib/flows.mjs';
import { startModels } from './lib/models.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const AGENTS = join(dirname(switchboardBin()), 'agents');

const intake = (id, models, data) => ({
  id, name: id, type: 'general', capabilities: ['intake.classify'], models,
  contextRequirements: ['conversation.messages[-3:]'], outputFormat: 'json', maxTokens: 300, temperature: 0.1,
  transport: { type: 'stdio', command: join(AGENTS, 'dealer-general'), args: ['--data', data, '--llm'] },
});

describe('the intake agent classifies with its models', () => {
  let models, sb, client;

  before(async () => {
    models = await startModels();
    const dir = mkdtempSync(join(tmpdir(), 'sb-agents-llm-'));
    execFileSync(join(AGENTS, 'dealer-data'), ['--out', join(dir, 'data')]);
    const file = join(dir, 'switchboard.yaml');
    writeFileSync(file, [
      'auth:', '  default_tenant: north-star',
      'llm:', `  base_url: ${models.baseUrl}`, '  timeout_ms: 5000',
      'agents:',
      `  - ${JSON.stringify(intake('general', { primary: 'fail-primary', fallback: ['intake-second'] }, join(dir, 'data')))}`,
      `  - ${JSON.stringify(intake('general-down', { primary: 'fail-a', fallback: ['malformed-b'] }, join(dir, 'data')))}`,
    ].join('\n') + '\n');
    sb = await startFlowServer(file);
    client = await connect('modern', sb.server.url); // declares no sampling
    await waitForTools(client, ['general__classify_inquiry', 'general-down__classify_inquiry']);
  });

  after(async () => {
    await client?.close();
    await sb?.server.stop();
    await models?.stop();
  });

  const classify = async (name) => {
    const r = await callWithin(client, { name, arguments: { text: 'My Escape squeals when I brake.' } });
    assert.notEqual(r.isError, true, withStderr(sb.server, JSON.stringify(r)));
    return r.structuredContent;
  };

  test('the primary fails, the fallback model answers: the classification is the model\'s', async () => {
    const before = (await models.requests()).length;
    const out = await classify('general__classify_inquiry');
    assert.equal(out.method, 'llm', JSON.stringify(out));
    assert.equal(out.summary, 'classified by intake-second');
    assert.equal(out.intent, 'service');
    const sent = (await models.requests()).slice(before);
    assert.deepEqual(sent.map((s) => s.model), ['fail-primary', 'intake-second']);
    for (const s of sent) {
      assert.equal(s.max_tokens, 300, 'min(the agent asks 512, the definition 300)');
      assert.equal(s.temperature, 0.1, 'the definition\'s temperature');
      assert.match(s.messages.at(-1).content, /squeals when I brake/);
    }
  });

  test('every model failing: a clear error naming each model tried', async () => {
    // The agent speaks 2026-07-28: its question came as input_required, and
    // an input response can only be a result, so switchboard ends the call
    // with the models' failure rather than make one up.
    const r = await callWithin(client, { name: 'general-down__classify_inquiry', arguments: { text: 'My Escape squeals.' } });
    assert.equal(r.isError, true, JSON.stringify(r));
    assert.match(r.content[0].text, /all 2 models failed: fail-a: HTTP 500.*; malformed-b: malformed completion/);
  });
});
