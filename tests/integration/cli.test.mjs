// cli.test.mjs: the switchboard command line: help and version output,
// usage and config errors (exit 2), runtime failures (exit 1), serving on
// stdio with a config file, and graceful shutdown on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = process.env.SWITCHBOARD_BIN;
assert.ok(BIN, 'SWITCHBOARD_BIN must point at the switchboard binary');
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const EXAMPLE = join(ROOT, 'examples', 'switchboard.yaml');

const dir = mkdtempSync(join(tmpdir(), 'sb-cli-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
function writeConfig(text) {
  const path = join(dir, `config-${++fileNo}.yaml`);
  writeFileSync(path, text);
  return path;
}

// Run the binary to completion (killed and failed after `timeoutMs`).
// `bytes` (printf escapes, e.g. '\\377') is a last argument of raw bytes,
// passed through sh: a JS string cannot hold bytes that are not UTF-8.
function run(args, { input, timeoutMs = 15000, bytes } = {}) {
  return new Promise((resolve, reject) => {
    const [cmd, argv] = bytes === undefined
      ? [BIN, args]
      : ['/bin/sh', ['-c', `exec "$0" "$@" "$(printf '${bytes}')"`, BIN, ...args]];
    const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], cwd: dir });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`switchboard ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

// Start `serve --listen ...` and resolve once it logs its address.
function startHttp(args, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
    let stderr = '';
    const exited = new Promise((res) => child.on('close', (code, signal) => res({ code, signal, stderr })));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no "listening on" line within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /listening on http:\/\/([\d.]+):(\d+)\/mcp/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve({ child, host: m[1], port: Number(m[2]), exited, stderr: () => stderr });
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening; stderr: ${stderr}`));
    });
  });
}

function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

const DISCOVER = {
  jsonrpc: '2.0',
  id: 1,
  method: 'server/discover',
  params: {
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  },
};

test('--help lists every subcommand and option, exit 0', async () => {
  for (const args of [['--help'], ['-h'], ['help']]) {
    const r = await run(args);
    assert.equal(r.code, 0, args.join(' '));
    for (const word of ['serve', 'check', 'help', '--version', '--help', '--stdio', '--listen'])
      assert.ok(r.stdout.includes(word), `${args.join(' ')} mentions ${word}`);
    assert.equal(r.stderr, '');
  }
});

test('help --help is the main help, and help of an unknown command points at it', async () => {
  for (const args of [['help', '--help'], ['help', '-h']]) {
    const r = await run(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /^switchboard \d+\.\d+\.\d+ - /);
    assert.ok(r.stdout.includes('help      show help'), args.join(' '));
    assert.equal(r.stderr, '');
  }
  const r = await run(['help', 'launch']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'launch'/);
  // The hint must name a command that works: not `help --help` read as
  // the help of a command called "--help".
  const hint = /Try '([^']+)'/.exec(r.stderr);
  assert.ok(hint, r.stderr);
  const h = await run(hint[1].split(' ').slice(1));
  assert.equal(h.code, 0, `${hint[1]}: ${h.stderr}`);
  assert.ok(h.stdout.includes('Commands:'), hint[1]);
});

test('no arguments prints usage on stderr, exit 2', async () => {
  const r = await run([]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Usage:/);
  assert.equal(r.stdout, '');
});

test('--version prints "switchboard X.Y.Z", exit 0', async () => {
  for (const args of [['--version'], ['-V']]) {
    const r = await run(args);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^switchboard \d+\.\d+\.\d+\n$/);
  }
});

test('serve --help lists every serve option, exit 0', async () => {
  for (const args of [['serve', '--help'], ['help', 'serve'], ['serve', '--stdio', '-h']]) {
    const r = await run(args);
    assert.equal(r.code, 0, args.join(' '));
    for (const opt of ['--config FILE', '--stdio', '--listen HOST:PORT', '--log-level LEVEL', '--help'])
      assert.ok(r.stdout.includes(opt), `${args.join(' ')} lists ${opt}`);
  }
  const r = await run(['check', '--help']);
  assert.equal(r.code, 0);
  assert.ok(r.stdout.includes('--config FILE'));
});

test('unknown options, commands and missing values: exit 2 naming them', async () => {
  const cases = [
    [['serve', '--stdio', '--bogus'], /--bogus/],
    [['--frobnicate'], /unknown option '--frobnicate'/],
    [['launch'], /unknown command 'launch'/],
    [['help', 'launch'], /unknown command 'launch'/],
    // nothing after --version or --help is silently dropped
    [['--version', 'extra'], /unexpected argument 'extra'/],
    [['-h', 'serve'], /unexpected argument 'serve'/],
    [['agents', 'explain', '', '--config', 'x.yaml'], /CAPABILITY: empty/],
    [['serve', '--config'], /option --config needs a value/],
    [['serve', '--stdio', '--log-level'], /option --log-level needs a value/],
    [['serve', '--listen'], /option --listen needs a value/],
    // an option where a value should be is a forgotten value, not the value
    [['serve', '--config', '--stdio'], /option --config needs a value/],
    [['run', 'lead', '--input', '--config', 'x.yaml'], /option --input needs a value/],
    [['runs', 'list', '--tenant', '--store', 's.db'], /option --tenant needs a value/],
    [['key', 'create', '--scope', '--tenant', 't'], /option --scope needs a value/],
    // the same option twice is refused, not the last one silently kept
    [['check', '--config', 'a.yaml', '--config', 'b.yaml'], /option --config given more than once/],
    [['run', 'lead', '--config=a.yaml', '--context-id', 'c1', '--context-id=c2'], /option --context-id given more than once/],
    [['runs', 'list', '--limit', '5', '--limit', '6'], /option --limit given more than once/],
    [['agents', 'list', '--tenant', 'a', '--tenant', 'b'], /option --tenant given more than once/],
    [['context', 'get', 'c1', '--version', '1', '--version', '2'], /option --version given more than once/],
    [['demo', '--store', 'a.db', '--store', 'b.db'], /option --store given more than once/],
    [['tenant', 'create', 't', '--name', 'A', '--name', 'B'], /option --name given more than once/],
    [['serve', '--stdio', 'extra'], /unexpected argument 'extra'/],
    [['serve', '--stdio', '--log-level', 'loud'], /--log-level: .*got 'loud'/],
    [['serve', '--listen', '127.0.0.1:99999'], /--listen: bad port "99999"/],
    [['serve', '--listen', 'example.com:80'], /--listen: bad host "example.com"/],
    [['serve', '--stdio', '--listen', '127.0.0.1:0'], /cannot be combined/],
    [['serve'], /nothing to serve on/],
    [['check'], /missing --config FILE/],
    [['check', '--stdio'], /unknown option '--stdio'/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit code (stderr: ${r.stderr})`);
    assert.match(r.stderr, re, args.join(' '));
    assert.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout`);
  }
});

test('config errors: exit 2 with file:line: key.path', async () => {
  const unknownKey = writeConfig('server:\n  log_level: info\n  lisen: 127.0.0.1:8080\n');
  let r = await run(['serve', '--config', unknownKey, '--stdio']);
  assert.equal(r.code, 2);
  assert.ok(
    r.stderr.includes(`${unknownKey}:3: server.lisen: unknown key (known: listen, allowed_origins, log_level, log_format, shutdown_grace_ms, tls)`),
    r.stderr,
  );

  const badValue = writeConfig('limits:\n  max_json_depth: 16\n\n  page_size: many\n');
  r = await run(['serve', `--config=${badValue}`, '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 2);
  assert.ok(
    r.stderr.includes(`${badValue}:4: limits.page_size: expected an integer between 1 and 1000, got "many"`),
    r.stderr,
  );

  const syntax = writeConfig('limits:\n  page_size: 5\n bad: 1\n');
  r = await run(['serve', '--config', syntax, '--stdio']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`${syntax.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: invalid YAML`));

  const missing = join(dir, 'does-not-exist.yaml');
  r = await run(['serve', '--config', missing, '--stdio']);
  assert.equal(r.code, 2);
  assert.ok(r.stderr.includes(`${missing}: cannot open`), r.stderr);

  r = await run(['check', '--config', badValue]);
  assert.equal(r.code, 2);
  assert.ok(r.stderr.includes(`${badValue}:4: limits.page_size`));
});

test('check warns of agents and capabilities that workflows and virtual servers name and no agent of the config answers to; exit 0', async () => {
  const agent = (id, caps) => `  - {id: ${id}, name: ${id}, type: finance, capabilities: [${caps}], models: {primary: m},
      outputFormat: text, maxTokens: 10, temperature: 0, transport: {type: stdio, command: /bin/cat}}`;
  const file = writeConfig([
    'agents:', agent('finance', 'finance.quote'), agent('sales', 'sales.inventory'),
    'servers:',
    '  - name: desk',
    '    include: [{agent: sales, tools: [a]}, {agent: ghost, tools: [b]}]',
    'workflows:',
    '  - name: w',
    '    steps:',
    '      - id: a',
    '        call: {agent: finanse, tool: t}',
    '      - id: b',
    '        call: {capability: finance.qoute, tool: t}',
    '      - id: c',
    '        call: {capability: finance.quote, tool: t}',
    '      - id: d',
    '        call: {agent: finance, tool: t}',
    '',
  ].join('\n'));
  const r = await run(['check', '--config', file]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.deepEqual(lines, [
    `switchboard: warning: ${file}:12: step "a": call.agent: no agent "finanse" in the config (agents: finance, sales); a run reaching this step fails unless one is registered through the API by then`,
    `switchboard: warning: ${file}:14: step "b": call.capability: no agent of the config offers "finance.qoute" (capabilities: finance.quote, sales.inventory); a run reaching this step fails unless one is registered through the API by then`,
    'switchboard: warning: config line 7: servers[0].include[1].agent: no agent "ghost" in the config (agents: finance, sales); virtual server desk shows none of its tools unless one is registered through the API',
  ]);
  assert.match(r.stdout, /: ok$/m);
});

test('check warns of stdio agents whose command cannot start on this host; exit 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-cmd-'));
  const plain = join(dir, 'not-executable.sh');
  writeFileSync(plain, '#!/bin/sh\n');
  const agent = (id, transport) => `  - ${JSON.stringify({ id, name: id, type: 'general', capabilities: ['x'],
    models: { primary: 'm' }, outputFormat: 'text', maxTokens: 10, temperature: 0, transport: { type: 'stdio', ...transport } })}`;
  const file = writeConfig([
    'agents:',
    agent('found', { command: 'cat' }),
    agent('absolute', { command: '/bin/cat' }),
    agent('typo', { command: 'no-such-agent-program', env: { PATH: `${dir}:/bin` } }),
    agent('relative', { command: './missing-agent.sh', cwd: dir }),
    agent('plain', { command: plain }),
    agent('nodir', { command: '/bin/cat', cwd: join(dir, 'nope') }),
    agent('pathdir', { command: 'cat', env: { PATH: dir } }),
    '',
  ].join('\n'));
  const r = await run(['check', '--config', file]);
  assert.equal(r.code, 0, r.stderr);
  const tail = 'the agent does not start (it is tried again with backoff) until it can';
  assert.deepEqual(r.stderr.trim().split('\n'), [
    `switchboard: warning: config line 4: agents[2] "typo": transport.command: no-such-agent-program is not found on PATH (${dir}:/bin); ${tail}`,
    `switchboard: warning: config line 5: agents[3] "relative": transport.command: ${dir}/./missing-agent.sh: No such file or directory; ${tail}`,
    `switchboard: warning: config line 6: agents[4] "plain": transport.command: ${plain}: Permission denied; ${tail}`,
    `switchboard: warning: config line 7: agents[5] "nodir": transport.command: its cwd ${dir}/nope is not a directory here; ${tail}`,
    `switchboard: warning: config line 8: agents[6] "pathdir": transport.command: cat is not found on PATH (${dir}); ${tail}`,
  ]);
  assert.match(r.stdout, /: ok$/m);
});

test('check prints the effective settings, which load back unchanged', async () => {
  const r = await run(['check', '--config', EXAMPLE]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ {2}listen: 127\.0\.0\.1:8080$/m);
  assert.match(r.stdout, /^ {2}page_size: 50$/m);
  const again = writeConfig(r.stdout);
  const r2 = await run(['check', '--config', again]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(r2.stdout.replace(/^#.*\n/, ''), r.stdout.replace(/^#.*\n/, ''));

  // IPv6 listen addresses and origins survive the round trip too.
  const v6 = writeConfig('server:\n  listen: "[::1]:9000"\n  allowed_origins: [HTTP://LocalHost:3000]\n');
  const r3 = await run(['check', '--config', v6]);
  assert.equal(r3.code, 0, r3.stderr);
  assert.match(r3.stdout, /^ {2}listen: "\[::1\]:9000"$/m);
  assert.match(r3.stdout, /^ {2}allowed_origins: \["http:\/\/localhost:3000"\]$/m);
  const r4 = await run(['check', '--config', writeConfig(r3.stdout)]);
  assert.equal(r4.code, 0, r4.stderr);
  assert.equal(r4.stdout.replace(/^#.*\n/, ''), r3.stdout.replace(/^#.*\n/, ''));
});

test('check validates the workflows the config names, with file and line', async () => {
  const examples = join(ROOT, 'examples', 'workflows');
  const good = writeConfig(`workflows:\n  - ${examples}\n  - name: ping\n    steps: [{id: done, end: completed}]\n`);
  const r = await run(['check', '--config', good]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^# workflow web-inquiry: 13 steps, from .*example\.yaml$/m);
  assert.match(r.stdout, /^# workflow lead-to-test-drive: 11 steps, from .*lead-to-test-drive\.yaml$/m);
  assert.match(r.stdout, /^# workflow ping: 1 steps, from /m);

  const bad = writeConfig('workflows:\n  - name: w\n    steps:\n      - id: quote\n        call:\n          capability: finance.quote\n');
  const r2 = await run(['check', '--config', bad]);
  assert.equal(r2.code, 2);
  assert.ok(r2.stderr.includes(`${bad}:6: step "quote": call.tool: required`), r2.stderr);

  const missing = writeConfig('workflows: [nope/]\n');
  const r3 = await run(['check', '--config', missing]);
  assert.equal(r3.code, 2);
  assert.ok(r3.stderr.includes(`${missing}:1: workflows[0]: cannot open "${dir}/nope/"`), r3.stderr);
});

test('serve --stdio with a config answers server/discover and exits 0 on EOF', async () => {
  // cache.ttl_ms shows up as ttlMs in the discover result: proof the file was applied.
  const cfg = writeConfig('server:\n  log_level: warning\ncache:\n  ttl_ms: 4321\n');
  const r = await run(['serve', '--config', cfg, '--stdio'], { input: JSON.stringify(DISCOVER) + '\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.signal, null);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, r.stdout);
  const msg = JSON.parse(lines[0]);
  assert.equal(msg.id, 1);
  assert.ok(msg.result, JSON.stringify(msg));
  assert.ok(msg.result.supportedVersions.includes('2026-07-28'));
  assert.equal(msg.result.ttlMs, 4321);
  // log_level: warning silences the info lines on stderr
  assert.doesNotMatch(r.stderr, / info /);
});

test('server.log_format: json (or --log-format json) writes every log line as one JSON object', async () => {
  const cfg = writeConfig('server:\n  log_level: debug\n  log_format: json\n');
  // a request with a method that does not exist: logged at debug, quoting the client's bytes
  const input = [DISCOVER, { jsonrpc: '2.0', id: 2, method: 'no/such\n"thing', params: { _meta: DISCOVER.params?._meta } }]
    .map((m) => JSON.stringify(m) + '\n').join('');
  for (const args of [['--config', cfg], ['--log-format', 'json', '--log-level', 'debug']]) {
    const r = await run(['serve', ...args, '--stdio'], { input });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.ok(lines.length >= 2, r.stderr);
    for (const line of lines) {
      const o = JSON.parse(line);
      assert.deepEqual(Object.keys(o), ['time', 'level', 'module', 'msg'], line);
      assert.match(o.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.match(o.level, /^(debug|info|notice|warning|error)$/);
    }
  }
  const bad = await run(['serve', '--log-format', 'xml', '--stdio'], { input: '' });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--log-format: expected text or json, got 'xml'/);
  const badCfg = await run(['serve', '--config', writeConfig('server:\n  log_format: yaml\n'), '--stdio'], { input: '' });
  assert.equal(badCfg.code, 2);
  assert.match(badCfg.stderr, /server\.log_format: expected text or json, got "yaml"/);
});

test('serve --stdio: a request before initialize without _meta protocolVersion is -32602 naming both ways in', async () => {
  // Before initialize, only 2026-07-28 applies, and a request missing its
  // required _meta is malformed there: -32602 (basic/index.mdx), as on HTTP.
  const input = [
    { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    { jsonrpc: '2.0', id: 2, method: 'tools/list', params: { _meta: { other: 1 } } },
  ].map((m) => JSON.stringify(m) + '\n').join('');
  const r = await run(['serve', '--stdio'], { input });
  assert.equal(r.code, 0, r.stderr);
  const msgs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(msgs.map((m) => m.id), [1, 2], r.stdout);
  for (const m of msgs) {
    assert.equal(m.error?.code, -32602, JSON.stringify(m));
    assert.match(m.error.message, /initialize/);
    assert.match(m.error.message, /io\.modelcontextprotocol\/protocolVersion/);
  }
});

test('serve --stdio: stdin ending while workflow_run starts its run neither crashes nor loses the run', async () => {
  // The call was cancelled (stdin ended) before the run's first write came
  // back; the watch of the call was freed then, and the write's callback
  // read it afterwards (a use after free AddressSanitizer reports).
  const store = join(dir, `runs-${++fileNo}.db`);
  const config = writeConfig('workflows:\n  - name: ping\n    steps: [{id: done, end: completed}]\n');
  const input = [
    { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'c', version: '1' } } },
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'workflow_run', arguments: { workflow: 'ping' } } },
  ].map((m) => JSON.stringify(m) + '\n').join('');
  const r = await run(['serve', '--stdio', '--config', config, '--store', store], { input });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error/, r.stderr);
  // The run was started: it is in the store, and completed.
  const listed = await run(['runs', 'list', '--store', store, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const runs = JSON.parse(listed.stdout).runs ?? JSON.parse(listed.stdout);
  assert.equal(runs.length, 1, listed.stdout);
  assert.equal(runs[0].status, 'completed');
});

test('serve --stdio: stopping while runs in progress are read back frees them (no leak under ASan)', async () => {
  // A run brought back at start reads its context; stopping meanwhile
  // detached it, and the read's end then dropped its hold without freeing
  // it. Races with the read, so a few starts.
  const store = join(dir, `resume-${++fileNo}.db`);
  const config = writeConfig('workflows:\n  - name: asks\n    steps:\n      - id: q\n        ask: { message: which? }\n');
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'c', version: '1' } } };
  const start = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'workflow_run', arguments: { workflow: 'asks', wait: false } } };
  const lines = (...ms) => ms.map((m) => JSON.stringify(m) + '\n').join('');
  for (let i = 0; i < 3; i++) {
    const r = await run(['serve', '--stdio', '--config', config, '--store', store], { input: lines(init, start) });
    assert.equal(r.code, 0, r.stderr);
  }
  for (let i = 0; i < 8; i++) {
    const r = await run(['serve', '--stdio', '--config', config, '--store', store], { input: lines(init) });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /LeakSanitizer|AddressSanitizer/, r.stderr);
  }
});

test('--log-level overrides the config file', async () => {
  const cfg = writeConfig('server:\n  log_level: error\n');
  const quiet = await run(['serve', '--config', cfg, '--stdio']);
  assert.equal(quiet.code, 0);
  assert.doesNotMatch(quiet.stderr, / info /);
  const loud = await run(['serve', '--config', cfg, '--stdio', '--log-level=info']);
  assert.equal(loud.code, 0);
  assert.match(loud.stderr, / info /);
});

test('SIGTERM on serve --listen 127.0.0.1:0 stops it with exit 0', async () => {
  const srv = await startHttp(['serve', '--listen', '127.0.0.1:0']);
  assert.equal(srv.host, '127.0.0.1');
  assert.ok(srv.port > 0);
  // It really serves: a modern request over HTTP gets an answer.
  const res = await withDeadline(
    fetch(`http://127.0.0.1:${srv.port}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'server/discover',
      },
      body: JSON.stringify(DISCOVER),
    }),
    10000,
    'POST server/discover',
  );
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  srv.child.kill('SIGTERM');
  const done = await withDeadline(srv.exited, 10000, 'exit after SIGTERM');
  assert.equal(done.code, 0, done.stderr);
  assert.equal(done.signal, null);
});

test('SIGINT stops serve --stdio with exit 0 while stdin stays open', async () => {
  const child = spawn(BIN, ['serve', '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'], cwd: dir });
  let stderr = '';
  let stdout = '';
  const exited = new Promise((res) => child.on('close', (code, signal) => res({ code, signal })));
  child.stderr.on('data', (d) => (stderr += d));
  // Wait until it answers, so the signal handlers are surely installed.
  const answered = new Promise((res) =>
    child.stdout.on('data', (d) => {
      stdout += d;
      if (stdout.includes('\n')) res();
    }),
  );
  child.stdin.write(JSON.stringify(DISCOVER) + '\n');
  await withDeadline(answered, 10000, 'discover over stdio');
  child.kill('SIGINT');
  const done = await withDeadline(exited, 10000, 'exit after SIGINT');
  assert.equal(done.code, 0, stderr);
  assert.equal(done.signal, null);
  child.stdin.destroy();
});

test('server.listen from the config is used; a taken port exits 1', async () => {
  const first = await startHttp(['serve', '--listen', '127.0.0.1:0']);
  try {
    // The same port again, from the config file: cannot bind -> exit 1.
    const cfg = writeConfig(`server:\n  listen: 127.0.0.1:${first.port}\n`);
    const r = await run(['serve', '--config', cfg]);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(String(first.port)), r.stderr);
    // --listen overrides the taken address from the config.
    const second = await startHttp(['serve', '--config', cfg, '--listen', '127.0.0.1:0']);
    assert.notEqual(second.port, first.port);
    second.child.kill('SIGTERM');
    assert.equal((await withDeadline(second.exited, 10000, 'second exit')).code, 0);
  } finally {
    first.child.kill('SIGTERM');
    const done = await withDeadline(first.exited, 10000, 'first exit');
    assert.equal(done.code, 0);
  }
});

test('commands that read a store refuse one that is not there, and create nothing', async () => {
  // A misspelt --store used to make a new, empty store (and its
  // directories) and then report "no runs", "[]" or "not found" from it.
  const missing = join(dir, 'no-such-dir', 'typo.db');
  const reads = [
    ['context', 'get', 'some-id'],
    ['context', 'history', 'some-id'],
    ['runs', 'list'],
    ['runs', 'get', 'some-id'],
    ['tenant', 'list'],
    ['key', 'list'],
    ['key', 'revoke', '0123456789ab'],
  ];
  for (const args of reads) {
    const r = await run([...args, '--store', missing]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, /store: .*typo\.db: No such file or directory/, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '', `${args.join(' ')} printed a result: ${r.stdout}`);
    assert.equal(existsSync(join(dir, 'no-such-dir')), false, `${args.join(' ')} created the store's directory`);
  }
  // Creating a tenant still starts a store where there is none.
  const fresh = join(dir, 'fresh', 'switchboard.db');
  const made = await run(['tenant', 'create', 'dealer-x', '--store', fresh]);
  assert.equal(made.code, 0, made.stderr);
  const listed = await run(['tenant', 'list', '--store', fresh]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.equal(JSON.parse(listed.stdout)[0].id, 'dealer-x');
});

test('tenant create refuses a --name that is not UTF-8 text; tenant list shows a stored one', async () => {
  const store = join(dir, 'tenant-names', 'switchboard.db');
  assert.equal((await run(['tenant', 'create', 'dealer-n', '--name', 'Key Motors', '--store', store])).code, 0);
  // Such a name was stored, and the tenant then left out of tenant list
  // (JSON holds UTF-8 only).
  for (const [args, bytes] of [[['tenant', 'create', 'dealer-bad', '--store', store, '--name'], 'Caf\\351'],
    [['tenant', 'create', 'dealer-nl', '--store', store, '--name'], 'a\\nb']]) {
    const r = await run(args, { bytes });
    assert.equal(r.code, 2, `--name ${bytes}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, /--name: '(Caf|a)\?b?' is not UTF-8 text without control characters \(shown as '\?'\)/, r.stderr);
  }
  const long = await run(['tenant', 'create', 'dealer-long', '--store', store, '--name', 'x'.repeat(257)]);
  assert.equal(long.code, 2, long.stderr);
  assert.match(long.stderr, /--name: longer than 256 bytes/);
  const listed = await run(['tenant', 'list', '--store', store]);
  assert.deepEqual(JSON.parse(listed.stdout).map((t) => [t.id, t.name]), [['dealer-n', 'Key Motors']]);
  // One stored by an earlier version is listed, its bad bytes shown as '?'.
  const sql = spawnSync('sqlite3', ['-batch', store], { input: "UPDATE tenants SET name = CAST(X'436166E9' AS TEXT);\n", encoding: 'utf8' });
  assert.equal(sql.status, 0, `sqlite3 failed: ${sql.stderr}`);
  const again = await run(['tenant', 'list', '--store', store]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout).map((t) => [t.id, t.name]), [['dealer-n', 'Caf?']]);
});

test('key create refuses an empty or spaced --scope, storing nothing, and warns of an --expires in the past', async () => {
  const store = join(dir, 'keys', 'switchboard.db');
  assert.equal((await run(['tenant', 'create', 'dealer-k', '--store', store])).code, 0);
  const refused = [
    // A key without scopes may do everything its tenant may, and empty
    // scopes were dropped: --scope "" made an unrestricted key.
    [['--scope', ''], /--scope: empty; a key without scopes may do everything its tenant may/],
    [['--scope', 'contexts:read', '--scope', ''], /--scope: empty/],
    [['--scope', 'contexts:read runs:read'], /--scope: 'contexts:read runs:read' holds a space or a control character/],
    // A scope that can grant nothing made a key refused everything.
    ...['bogus::', 'contexts:', 'a::b', '*', 'agents:fin*x'].map((scope) =>
      [['--scope', scope], new RegExp(`--scope: '${scope.replace('*', '\\*')}' is not a scope: names joined by ':', none empty`)]),
    [['--scope', `agents:${'x'.repeat(300)}`], /--scope: longer than 256 bytes/],
  ];
  for (const [args, message] of refused) {
    const r = await run(['key', 'create', '--tenant', 'dealer-k', ...args, '--store', store]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, message, r.stderr);
    assert.equal(r.stdout, '', `a key was printed: ${r.stdout}`);
  }
  // A scope that is not UTF-8 could not be stored as JSON: it was dropped
  // and the key made with no scopes, unrestricted.
  for (const bytes of ['contexts:\\377', 'caf\\303']) {
    const r = await run(['key', 'create', '--tenant', 'dealer-k', '--store', store, '--scope'], { bytes });
    assert.equal(r.code, 2, `--scope ${bytes}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, /--scope: '(contexts:|caf)\?' is not UTF-8 text/, r.stderr);
    assert.equal(r.stdout, '', `a key was printed: ${r.stdout}`);
  }
  const listed = await run(['key', 'list', '--store', store]);
  assert.deepEqual(JSON.parse(listed.stdout || '[]'), [], listed.stdout);
  // A key that expired before it was made was printed as if usable; it is
  // still made (tests of expiry use one), with a warning.
  const old = await run(['key', 'create', '--tenant', 'dealer-k', '--expires', '2000-01-01T00:00:00Z', '--store', store]);
  assert.equal(old.code, 0, old.stderr);
  assert.match(old.stderr, /warning: --expires 2000-01-01T00:00:00Z is in the past: the server will refuse this key/);
  await run(['key', 'revoke', old.stdout.trim().slice(3, 15), '--store', store]);
  // A scope given twice is stored once.
  const ok = await run(['key', 'create', '--tenant', 'dealer-k', '--scope', 'contexts:read', '--scope', 'resources:switchboard://notes',
    '--scope', 'contexts:read', '--expires', '2h', '--store', store]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^sb_[0-9a-f]{12}_/);
  const keys = JSON.parse((await run(['key', 'list', '--store', store])).stdout).filter((k) => !k.revoked);
  assert.deepEqual(keys.map((k) => k.scopes), [['contexts:read', 'resources:switchboard://notes']]);
});

test('check refuses the virtual servers serve would refuse, with the same error', async () => {
  // check used to print "ok" for these, and serve then stopped at start.
  const cases = [
    ['servers:\n  - name: x\n    agents: [sales]\n', 'config line 2: servers[0].agents: unknown field (known: name, description, include)'],
    ['servers:\n  - name: "a/b"\n    include: [{agent: sales}]\n', "config line 2: servers[0].name: required: 1 to 64 letters, digits, '-', '_' or '.'"],
    ['servers:\n  - name: x\n    include: []\n', 'config line 2: servers[0].include: required: a non-empty list of {agent, tools, resources, prompts}'],
    ['servers:\n  - name: x\n    include: [{agent: sales, tools: [""]}]\n', 'config line 2: servers[0].include[0].tools[0]: expected a non-empty string'],
    ['servers:\n  - name: x\n    include: [{agent: a}]\n  - name: x\n    include: [{agent: b}]\n', 'config line 4: servers[1].name: x is already a virtual server'],
  ];
  for (const [yaml, message] of cases) {
    const cfg = writeConfig(yaml);
    const checked = await run(['check', '--config', cfg]);
    assert.equal(checked.code, 2, `${yaml}: ${checked.stdout}`);
    assert.equal(checked.stderr.trim(), `switchboard: ${message}`);
    // A config error, exit 2, as check says (serve exited 1, a runtime
    // failure, when the app refused it at its start).
    const served = await run(['serve', '--config', cfg, '--stdio', '--store', join(dir, 'servers.db')]);
    assert.equal(served.code, 2, served.stderr);
    assert.equal(served.stderr, checked.stderr);
  }
  const good = writeConfig('servers:\n  - name: front\n    description: the front desk\n    include: [{agent: sales, tools: [search_inventory]}]\n');
  const ok = await run(['check', '--config', good]);
  assert.equal(ok.code, 0, ok.stderr);
});

test('check refuses the agent definitions serve would refuse, and serve names the file and line, exit 2', async () => {
  // check used to print "ok" for these; serve then failed to start with
  // exit 1 and "config line N", naming no file.
  const agent = (extra) =>
    `agents:\n  - id: a\n    name: A\n    type: sales\n    capabilities: [x]\n    models: {primary: m}\n    outputFormat: json\n    maxTokens: 64\n    temperature: 0\n${extra}`;
  const cases = [
    ['agents:\n  - id: a\n    transport: {type: stdio, command: /bin/cat}\n',
     ':2: agents[0].name: missing required field (and type, capabilities, models, outputFormat, maxTokens, temperature)'],
    [agent('    transport: {type: stdio}\n'), ':2: agents[0].transport'],
    [agent('    transport: {type: stdio, command: /bin/cat}\n') +
       '  - id: a\n    name: B\n    type: sales\n    capabilities: [x]\n    models: {primary: m}\n' +
       '    outputFormat: json\n    maxTokens: 64\n    temperature: 0\n    transport: {type: stdio, command: /bin/cat}\n',
     ':11: agents[1].agent "a" is already registered'],
  ];
  for (const [yaml, message] of cases) {
    const cfg = writeConfig(yaml);
    const checked = await run(['check', '--config', cfg]);
    assert.equal(checked.code, 2, `${yaml}: ${checked.stdout}`);
    assert.ok(checked.stderr.startsWith(`switchboard: ${cfg}${message}`), checked.stderr);
    assert.equal(checked.stdout, '');
    const served = await run(['serve', '--config', cfg, '--stdio', '--store', join(dir, 'agents.db')]);
    assert.equal(served.code, 2, served.stderr);
    assert.equal(served.stderr, checked.stderr);
  }
  const good = writeConfig(agent('    transport: {type: stdio, command: /bin/cat}\n'));
  const ok = await run(['check', '--config', good]);
  assert.equal(ok.code, 0, ok.stderr);
});

test('serve refuses the workflow definitions check refuses, with the same error, exit 2', async () => {
  // serve exited 1 (a runtime failure) for these; check said 2.
  const wfDir = join(dir, 'bad-workflows');
  mkdirSync(wfDir, { recursive: true });
  writeFileSync(join(wfDir, 'a.yaml'), 'name: a\nsteps:\n  - {id: s, emit: {type: a.b}, next: nope}\n');
  const cases = [
    [`workflows: [${wfDir}/]\n`, `${wfDir}/a.yaml:3: step "s": next: no step "nope" (steps: s)`],
    ['workflows:\n  - name: b\n    steps: []\n', ':3: steps: expected a non-empty list of steps, got an empty list'],
  ];
  for (const [yaml, message] of cases) {
    const cfg = writeConfig(yaml);
    const checked = await run(['check', '--config', cfg]);
    assert.equal(checked.code, 2, `${yaml}: ${checked.stdout}`);
    assert.ok(checked.stderr.trim().endsWith(message), checked.stderr);
    const served = await run(['serve', '--config', cfg, '--stdio', '--store', join(dir, 'workflows.db')]);
    assert.equal(served.code, 2, served.stderr);
    assert.equal(served.stderr, checked.stderr);
  }
});

test('key --help lists the options key takes, and says scopes are enforced', async () => {
  const r = await run(['key', '--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const opt of ['--tenant T', '--scope S', '--expires WHEN', '--config FILE', '--store PATH'])
    assert.ok(r.stdout.includes(`\n  ${opt}`), `key --help lists ${opt} under Options`);
  assert.match(r.stdout, /Scopes are stored, listed and enforced/);
});

test('demo names a scenarios file it cannot open, without a line number it does not have', async () => {
  const missing = join(dir, 'no-such-scenarios.json');
  const r = await run(['demo', '--once', '--config', join(ROOT, 'examples', 'dealership', 'switchboard.yaml'),
    '--scenarios', missing, '--store', join(dir, 'demo.db'), '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr, `switchboard demo: --scenarios ${missing}: unable to open ${missing}: No such file or directory\n`);
  assert.ok(!existsSync(join(dir, 'demo.db')), 'nothing was started');
});

// The "section.key" paths of a YAML text's block mappings, two levels
// deep, comments left out.
function keyPaths(text) {
  const paths = new Set();
  let section = null;
  for (const line of text.split('\n')) {
    let m;
    if ((m = /^([a-z_]+):/.exec(line))) {
      section = m[1];
      paths.add(section);
    } else if (section && (m = /^ {2}([a-z_]+):/.exec(line))) {
      paths.add(`${section}.${m[1]}`);
    } else if (section && (m = /^ {4}([a-z_]+):/.exec(line)) && /^(server\.tls|auth\.oauth)$/.test([...paths].at(-1) ?? '')) {
      paths.add(`${[...paths].at(-1)}.${m[1]}`);
    }
  }
  return paths;
}

test('check prints every setting, the example\'s keys and the optional sections, and they load back', async () => {
  // check used to leave out shutdown_grace_ms, tls, the header and body
  // timeouts, the per-address and listen limits, sessions.max, the store's
  // max_pending and readers, admin_tenants, oauth, llm, quotas and servers.
  const { readFileSync } = await import('node:fs');
  const example = readFileSync(EXAMPLE, 'utf8');
  const r = await run(['check', '--config', EXAMPLE]);
  assert.equal(r.code, 0, r.stderr);
  const printed = keyPaths(r.stdout);
  for (const path of keyPaths(example))
    assert.ok(printed.has(path), `check prints ${path}, which examples/switchboard.yaml sets`);

  // check loads the TLS and JWKS files as serve would: real ones.
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost']);
  assert.equal(made.status, 0, String(made.stderr));
  const { makeKeys } = await import('./lib/oauth.mjs');
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(makeKeys().jwks));
  const cfg = writeConfig([
    'server:',
    '  shutdown_grace_ms: 2500',
    `  tls: {cert_file: ${cert}, key_file: ${key}}`,
    'auth:',
    '  admin_tenants: [ops]',
    '  oauth: {issuer: "https://login.example.com", resource: "https://mcp.example.com/mcp",',
    '          jwks_file: jwks.json, leeway_s: 30, scopes_supported: [runs]}',
    'llm: {base_url: "http://127.0.0.1:9/v1", timeout_ms: 1234}',
    'quotas: {requests_per_second: 5, tenants: {ops: {burst: 9}}}',
    'servers: [{name: front, include: [{agent: sales, tools: [search_inventory]}]}]',
    '',
  ].join('\n'));
  const c = await run(['check', '--config', cfg]);
  assert.equal(c.code, 0, c.stderr);
  for (const line of [
    '  shutdown_grace_ms: 2500', `    cert_file: "${cert}"`, '  admin_tenants: ["ops"]',
    '    issuer: "https://login.example.com"', '    jwks_file: "jwks.json"', '    leeway_s: 30',
    '  base_url: "http://127.0.0.1:9/v1"', '  timeout_ms: 1234', '  requests_per_second: 5',
    '    ops: {burst: 9}',
  ])
    assert.ok(c.stdout.split('\n').includes(line), `check prints ${JSON.stringify(line)}:\n${c.stdout}`);
  assert.match(c.stdout, /^servers: \[\{"name":"front"/m);
  const again = await run(['check', '--config', writeConfig(c.stdout)]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.replace(/^#.*\n/, ''), c.stdout.replace(/^#.*\n/, ''));
});

test('the commented sections of examples/switchboard.yaml load once uncommented', async () => {
  // "# agents:" then "#   - id: ..." lines: drop the "# " and the
  // two columns of the comment's indent. The agents example once held
  // an unquoted [conversation.messages[-5:], ...], which is no YAML.
  const { readFileSync } = await import('node:fs');
  const lines = readFileSync(EXAMPLE, 'utf8').split('\n');
  const out = [];
  let inside = false;
  const sections = [];
  for (const line of lines) {
    const m = /^# (agents|servers|workflows):$/.exec(line);
    if (m) {
      inside = true;
      sections.push(m[1]);
      out.push(`${m[1]}:`);
    } else if (inside && line.startsWith('#   ')) {
      out.push(line.slice(2));
    } else {
      inside = false;
      out.push(line);
    }
  }
  assert.deepEqual(sections.sort(), ['agents', 'servers', 'workflows']);
  // workflows/ is relative to the example's directory.
  const text = out.join('\n').replace(/^ {2}- workflows\/$/m, `  - ${join(dirname(EXAMPLE), 'workflows')}/`);
  assert.notEqual(text, out.join('\n'));
  const r = await run(['check', '--config', writeConfig(text)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^agents: \[\{"id":"service"/m);
  assert.match(r.stdout, /^servers: \[\{"name":"front-desk"/m);
  assert.match(r.stdout, /^# workflow web-inquiry: /m);
});

test('a store another process keeps locked: exit 1 naming it and the wait, no warning about open handles', async () => {
  const store = join(dir, 'locked.db');
  const made = await run(['serve', '--stdio', '--store', store], { input: '' });
  assert.equal(made.code, 0, made.stderr);
  // sqlite3 holds the write lock while its stdin stays open.
  const holder = spawn('sqlite3', [store], { stdio: ['pipe', 'pipe', 'inherit'] });
  holder.stdin.write('BEGIN IMMEDIATE; CREATE TABLE held(a); SELECT \'held\';\n');
  await new Promise((resolve) => holder.stdout.on('data', (d) => { if (String(d).includes('held')) resolve(); }));
  try {
    const r = await run(['serve', '--store', store, '--listen', '127.0.0.1:1']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`store: ${store.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: another process held its write lock for longer than 5000 ms \\(database is locked\\)`));
    // The wait at start made the shutdown guard's clock stale: it warned
    // at once that handles were open (there were none).
    assert.doesNotMatch(r.stderr, /still open/);
  } finally {
    holder.stdin.end();
    await new Promise((resolve) => holder.once('exit', resolve));
  }
});
