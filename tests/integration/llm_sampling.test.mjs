// switchboard answers an agent's sampling/createMessage with the agent's
// own models (llm: in the config) when the caller cannot: a client that did
// not declare sampling (legacy and modern) and a workflow run. The models
// are served by tests/agents/openai_server.mjs, whose models behave by
// their name (ok-*, fail-*, malformed-*, badshape-*). Checked: the primary
// answers, with maxTokens capped by the definition's, its temperature and
// the API key sent; a failing primary falls back; all failing, the agent
// hears an error naming each model; structured output against the schema
// in _meta; non-text content refused; a client that can sample still gets
// the question; the key never appears in the logs; config errors name the
// key and line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { switchboardBin } from './lib/harness.mjs';
import { callWithin, connect, pollUntil, waitForTools, withStderr } from '../agents/agents_lib.mjs';
import { flowAgent, startFlowServer, startRun } from './lib/flows.mjs';
import { startModels } from './lib/models.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const REFERENCE_AGENT = join(here, '..', 'agents', 'reference_agent.mjs');
const KEY = 'sk-e2e-secret-4242';

const agent = (id, models, outputFormat = 'text', maxTokens = 100, temperature = 0.3) =>
  ({ ...flowAgent(id, [`${id}.ask`]), models, outputFormat, maxTokens, temperature });

function writeConfig(baseUrl) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-llm-'));
  const agents = [
    agent('buyer', { primary: 'ok-primary' }),
    agent('fallback', { primary: 'fail-primary', fallback: ['ok-second'] }, 'json', 1000, 0.7),
    agent('broken', { primary: 'fail-a', fallback: ['malformed-b'] }),
    agent('shaped', { primary: 'badshape-a', fallback: ['ok-b'] }, 'structured'),
    agent('slowpoke', { primary: 'slow-a' }),
    // a modern agent: its question comes as input_required
    { ...agent('reference', { primary: 'fail-x', fallback: ['ok-y'] }),
      transport: { type: 'stdio', command: process.execPath, args: [REFERENCE_AGENT, 'stdio'] } },
  ];
  const lines = ['cache:', '  ttl_ms: 0', 'limits:', '  page_size: 1000', 'llm:', `  base_url: ${baseUrl}`, '  api_key_env: SB_TEST_LLM_KEY',
    '  timeout_ms: 5000', 'agents:', ...agents.map((a) => `  - ${JSON.stringify(a)}`),
    'workflows:',
    '  - name: classify',
    '    steps:',
    '      - id: ask',
    '        call: { agent: buyer, tool: ask_model, arguments: { text: "I want to buy a Corolla" } }',
    '      - id: done',
    '        end: completed',
  ];
  const file = join(dir, 'switchboard.yaml');
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const SCHEMA = {
  type: 'object', required: ['intent'], additionalProperties: false,
  properties: { intent: { type: 'string', enum: ['buy', 'service'] }, model: { type: 'string' }, echo: { type: 'string' } },
};

describe('sampling answered with the agent\'s models', () => {
  let models, sb, legacy, modern;

  before(async () => {
    models = await startModels();
    process.env.SB_TEST_LLM_KEY = KEY;
    sb = await startFlowServer(writeConfig(models.baseUrl));
    delete process.env.SB_TEST_LLM_KEY;
    legacy = await connect('legacy', sb.server.url); // no sampling capability
    modern = await connect('modern', sb.server.url);
    await waitForTools(legacy, ['buyer__ask_model', 'fallback__ask_model', 'broken__ask_model', 'shaped__ask_model',
      'reference__ask-llm', 'slowpoke__ask_model']);
  });

  after(async () => {
    await legacy?.close();
    await modern?.close();
    await sb?.server.stop();
    await models?.stop();
  });

  const ask = async (client, name, args) => {
    const r = await callWithin(client, { name, arguments: args });
    assert.ok(!r.isError, withStderr(sb.server, JSON.stringify(r)));
    return r.structuredContent;
  };

  test('the primary answers; maxTokens capped by the definition, its temperature and the key sent', async () => {
    const before = (await models.requests()).length;
    const out = await ask(legacy, 'buyer__ask_model', { text: 'I want to buy a Corolla', maxTokens: 500 });
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal(out.result.role, 'assistant');
    assert.equal(out.result.model, 'ok-primary');
    assert.equal(out.result.stopReason, 'endTurn');
    assert.equal(out.result.content.type, 'text');
    const said = JSON.parse(out.result.content.text);
    assert.deepEqual(said, { intent: 'buy', model: 'ok-primary', echo: 'I want to buy a Corolla' });
    const sent = (await models.requests()).slice(before);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].model, 'ok-primary');
    assert.equal(sent[0].max_tokens, 100, 'min(request 500, definition 100)');
    assert.equal(sent[0].temperature, 0.3);
    assert.equal(sent[0].authorization, `Bearer ${KEY}`);
    assert.deepEqual(sent[0].messages, [
      { role: 'system', content: 'You classify dealership inquiries.' },
      { role: 'user', content: 'I want to buy a Corolla' },
    ]);
    // a request asking for fewer tokens than the definition keeps its own
    await ask(legacy, 'buyer__ask_model', { text: 'x', maxTokens: 40 });
    assert.equal((await models.requests()).at(-1).max_tokens, 40);
  });

  test('a failing primary falls back (modern client too); json output parsed', async () => {
    const before = (await models.requests()).length;
    const out = await ask(modern, 'fallback__ask_model', { text: 'service please' });
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal(out.result.model, 'ok-second');
    assert.equal(JSON.parse(out.result.content.text).echo, 'service please');
    const sent = (await models.requests()).slice(before);
    assert.deepEqual(sent.map((r) => r.model), ['fail-primary', 'ok-second']);
    assert.ok(sent.every((r) => r.temperature === 0.7 && r.max_tokens === 500));
  });

  test('all models failing: the agent hears an error naming each model tried', async () => {
    const out = await ask(legacy, 'broken__ask_model', { text: 'hello' });
    assert.equal(out.ok, false, JSON.stringify(out));
    assert.match(out.error, /all 2 models failed: fail-a: HTTP 500 \(upstream error\); malformed-b: malformed completion: not JSON/);
    assert.match(out.error, /agent broken's models/);
  });

  test('structured output is checked against the schema the agent put in _meta', async () => {
    const out = await ask(legacy, 'shaped__ask_model', { text: 'hi', schema: SCHEMA });
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal(out.result.model, 'ok-b', 'badshape-a answered {"intent":42}: a failure');
    const bad = await ask(legacy, 'shaped__ask_model', { text: 'hi', schema: { ...SCHEMA, properties: { ...SCHEMA.properties, intent: { enum: ['service'] } } } });
    assert.equal(bad.ok, false);
    assert.match(bad.error, /badshape-a: the answer does not match the output schema: \$\.intent: 42 is not one of the allowed values; ok-b: the answer does not match the output schema: \$\.intent: "buy" is not one of the allowed values/);
  });

  test('a modern agent\'s input_required for sampling is answered by its models', async () => {
    const r = await callWithin(legacy, { name: 'reference__ask-llm', arguments: { prompt: 'which trims?' } });
    assert.ok(!r.isError, withStderr(sb.server, JSON.stringify(r)));
    assert.match(r.content[0].text, /^the model \(ok-y\) said: \{"intent":"buy","model":"ok-y","echo":"which trims\?"\}$/);
    const sent = (await models.requests()).slice(-2);
    assert.deepEqual(sent.map((q) => q.model), ['fail-x', 'ok-y']);
    assert.equal(sent[1].max_tokens, 64);
  });

  test('content other than text is refused with a clear error', async () => {
    const before = (await models.requests()).length;
    const out = await ask(legacy, 'buyer__ask_model', { text: 'x', image: true });
    assert.equal(out.ok, false);
    assert.match(out.error, /content of type image cannot be answered by switchboard's models \(text only\)/);
    assert.equal((await models.requests()).length, before, 'no model was asked');
  });

  test('a client that can sample still answers itself', async () => {
    const before = (await models.requests()).length;
    const sampler = await connect('legacy', sb.server.url, {
      sampling: async () => ({ role: 'assistant', content: { type: 'text', text: 'from the client' }, model: 'client-model' }),
    });
    try {
      await waitForTools(sampler, ['buyer__ask_model']);
      const out = await ask(sampler, 'buyer__ask_model', { text: 'x' });
      assert.equal(out.result.model, 'client-model');
      assert.equal((await models.requests()).length, before);
    } finally {
      await sampler.close();
    }
  });

  test('a workflow run\'s step: the agent gets the model\'s answer', async () => {
    const started = await startRun(sb.rest, { workflow: 'classify', input: { context: { data: {} } } });
    const run = await sb.rest.waitFor(started.id, ['completed', 'failed']);
    assert.equal(run.status, 'completed', JSON.stringify(run));
    const ctx = (await sb.rest.context(run.contextId)).json;
    const out = ctx.data.workflow.outputs.ask;
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal(out.result.model, 'ok-primary');
  });

  test('the call cancelled while a model is thinking: its LLM request is dropped', async () => {
    const ac = new AbortController();
    const call = legacy.callTool({ name: 'slowpoke__ask_model', arguments: { text: 'x' } }, { signal: ac.signal });
    await pollUntil(async () => (await models.requests()).some((r) => r.model === 'slow-a'), { what: 'the slow model asked' });
    ac.abort();
    await assert.rejects(call);
    await pollUntil(() => sb.server.stderr.includes('agent slowpoke: its sampling request went away before a model answered'),
      { what: 'the models\' call cancelled' });
    // switchboard goes on serving
    const out = await ask(legacy, 'buyer__ask_model', { text: 'still there?' });
    assert.equal(out.result.model, 'ok-primary');
  });

  test('the API key never appears in the logs; switchboard stops cleanly', async () => {
    await legacy.close();
    await modern.close();
    const { code, signal } = await sb.server.stop();
    assert.equal(code, 0, withStderr(sb.server, `exit code ${code}, signal ${signal}`));
    assert.ok(!/LeakSanitizer|AddressSanitizer/.test(sb.server.stderr), withStderr(sb.server, 'sanitizer report'));
    assert.ok(sb.server.stderr.includes('LLM endpoint'), sb.server.stderr.slice(0, 2000));
    assert.ok(!sb.server.stderr.includes(KEY));
  });
});

describe('llm config errors', () => {
  const check = (yaml) => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-llm-cfg-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, yaml);
    return spawnSync(switchboardBin(), ['check', '--config', file], { encoding: 'utf8' });
  };

  test('a bad base_url, api_key_env or timeout_ms names the file, line and key', () => {
    let r = check('llm:\n  base_url: localhost:8080\n');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /bad\.yaml:2: llm\.base_url: expected an http:\/\/ or https:\/\/ URL, got "localhost:8080"/);
    r = check('llm:\n  base_url: http://127.0.0.1:1/v1\n  api_key_env: "MY-KEY"\n');
    assert.match(r.stderr, /bad\.yaml:3: llm\.api_key_env: expected an environment variable name/);
    r = check('llm:\n  timeout_ms: 600001\n');
    assert.match(r.stderr, /bad\.yaml:2: llm\.timeout_ms: expected an integer between 1 and 600000/);
    r = check('llm:\n  model: gpt-x\n');
    assert.match(r.stderr, /bad\.yaml:2: llm\.model: unknown key \(known: base_url, api_key_env, timeout_ms\)/);
  });
});
