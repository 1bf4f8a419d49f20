#!/usr/bin/env node
// flaky_agent.mjs: a real MCP agent (the official 1.x SDK server, stdio)
// whose tools misbehave on demand, for switchboard's failure-recovery
// tests: it can hang, be slow, crash mid-call, answer with garbage, or
// fail. Its name and capabilities come from the command line:
//   node flaky_agent.mjs NAME
// Every tool answers with the agent's NAME so tests see who served a call.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const name = process.argv[2] || 'flaky';
const server = new McpServer({ name, version: '1.0.0' });
const text = (t) => ({ content: [{ type: 'text', text: t }] });
let calls = 0;

server.tool('whoami', 'Says which agent answered', {}, async () => {
  calls++;
  return text(`${name} (call ${calls})`);
});
server.tool('slow', 'Answers after ms milliseconds', { ms: z.number().int().min(0) },
  async ({ ms }, extra) => {
    await new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      extra.signal.addEventListener('abort', () => { clearTimeout(t); reject(new Error('cancelled')); });
    });
    return text(`${name} slept ${ms} ms`);
  });
server.tool('hang', 'Never answers', {}, () => new Promise(() => {}));
server.tool('freeze', 'Blocks its whole process (reads and answers nothing, pings included) for ms milliseconds, then answers',
  { ms: z.number().int().min(0) }, async ({ ms }) => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    return text(`${name} thawed`);
  });
let hangOnceCalls = 0;
server.tool('hang_once', 'Never answers its first call; answers the next ones', {}, async () => {
  hangOnceCalls++;
  if (hangOnceCalls === 1) return new Promise(() => {});
  return text(`${name} answered try ${hangOnceCalls}`);
});
server.tool('crash', 'Exits the process in the middle of the call', {}, async () => {
  process.stderr.write(`${name}: crashing on purpose\n`);
  process.exit(3);
});
server.tool('garbage', 'Writes a line that is not JSON, then answers', {}, async () => {
  process.stdout.write('this is not json\n');
  return text(`${name} after garbage`);
});
server.tool('fail', 'Returns a tool error', {}, async () => ({ ...text(`${name} failed`), isError: true }));
server.tool('ask_then_withdraw', 'Asks the client for sampling, then withdraws the request (notifications/cancelled)', {},
  async () => {
    const ac = new AbortController();
    const asked = server.server.createMessage(
      { messages: [{ role: 'user', content: { type: 'text', text: 'never mind' } }], maxTokens: 5 },
      { signal: ac.signal });
    setImmediate(() => ac.abort('changed my mind'));
    try {
      await asked;
      return text(`${name}: the client answered anyway`);
    } catch {
      return text(`${name} withdrew its question`);
    }
  });
server.tool('ask', 'Asks the client for sampling and returns the answer text', {}, async () => {
  const r = await server.server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'which trim?' } }], maxTokens: 5 });
  return text(`${name} heard: ${r.content?.text}`);
});
let grown = false;
server.tool('grow', 'Adds a tool named extra (the SDK then sends tools/list_changed)', {}, async () => {
  if (!grown) {
    grown = true;
    server.tool('extra', 'Appeared at run time', {}, async () => text(`${name} extra`));
  }
  return text(`${name} grew`);
});

await server.connect(new StdioServerTransport());
process.stderr.write(`${name}: ready\n`);
