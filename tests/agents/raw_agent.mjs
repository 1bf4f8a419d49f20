#!/usr/bin/env node
// raw_agent.mjs: a minimal legacy MCP agent over stdio, written against
// the JSON-RPC wire directly (no SDK), for answers an SDK would not send:
//   node raw_agent.mjs NAME [--dual]
// With --endless-list[=same] its tools/list never ends, with --junk-tools
// it lists tools no client would take (see below); with --hold-init=FILE
// it answers initialize only once FILE exists (an agent still starting,
// for as long as a test wants).
// With --dual it also answers server/discover (so switchboard speaks to it
// as a 2026-07-28 agent) yet asks for sampling the legacy way, with a
// request of its own while it serves the call, as some dual-era servers do.
// Tools:
//   whoami  answers with NAME and the request's _meta as JSON text (so a
//           test sees exactly what switchboard handed the agent), and the
//           methods it answered "no method" so far (`refused`)
//   forged  answers every call with a JSON-RPC error whose data carries the
//           keys switchboard's own failures once carried (agent,
//           delivered: false, transport, sessionExpired; timeout too when
//           its argument timeout is true); the message counts calls
//   ask     sends sampling/createMessage to switchboard, waits for the
//           answer and returns its text; with argument roots true it then
//           asks roots/list too before it answers (as agents that sync
//           roots on a timer may, in the middle of a call); with elicit
//           true it asks elicitation/create after the sampling, and fails
//           (isError) when either was refused
//   wait_ask  answers nothing until a poke; then asks sampling for itself
//           (with nothing on the wire to say for which call) and answers
//           with what it heard, as ask does
//   poke    sets a waiting wait_ask asking, and answers "poked" once that
//           question is answered (with argument answer_first true: at
//           once, before it is); "nothing waits" when none is waiting
//   roots   asks roots/list, then answers with how many roots it got; when
//           refused, a tool error result, or with argument fail true a
//           JSON-RPC error (it cannot work without them)
//   ask_mrtr  the 2026-07-28 way: answers input_required with one sampling
//           question and requestState "s1"; the retry carrying the answer
//           (inputResponses.q) gets its text back
//   chatter sends `count` log notifications (notifications/message) of
//           `bytes` characters each, then answers "chattered COUNT"
//   primes  output schema and structuredContent an array ([2, 3, 5]), no
//           content (2026-07-28 allows any JSON Schema and value there)
import { existsSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { createInterface } from 'node:readline';

const name = process.argv[2] || 'raw';
const dual = process.argv.includes('--dual');
// --endless-list: every tools/list page has a nextCursor, new each time
// (--endless-list=same: the same one), the first page holding the tools.
const endless = process.argv.find((a) => a.startsWith('--endless-list'));
let listed = 0;
// --junk-tools: tools/list also holds items the MCP schema refuses (no
// name, a second whoami, schemas that are not object schemas).
const junk = process.argv.includes('--junk-tools') ? [
  5, null, { name: 5, inputSchema: { type: 'object' } }, { name: '', inputSchema: { type: 'object' } },
  { name: 'whoami', description: 'a second whoami', inputSchema: { type: 'object' } },
  { name: 'bad_schema', inputSchema: 5 }, { name: 'no_schema' },
  { name: 'bad_output', inputSchema: { type: 'object' }, outputSchema: 'a string' },
  // a fine tool whose result is not a CallToolResult
  { name: 'malformed', inputSchema: { type: 'object' } },
] : [];
const hold = process.argv.find((a) => a.startsWith('--hold-init='))?.slice('--hold-init='.length);
/** Run `go` once the --hold-init file exists (at once without one). */
const whenReleased = (go) => {
  if (!hold || existsSync(hold)) return go();
  const w = watch(dirname(hold), (_, file) => {
    if (file !== basename(hold) || !existsSync(hold)) return;
    w.close();
    go();
  });
  if (existsSync(hold)) { w.close(); go(); } // made while the watch started
};
let forgedCalls = 0;
const refused = []; // the methods answered "no method", in order
let nextId = 1;
let waitingAsk; // the id of a wait_ask call waiting for a poke
const waiting = new Map(); // our request id -> { call: the tools/call id it serves, roots, text }
const send = (m) => process.stdout.write(JSON.stringify(m) + '\n');
const tools = [
  { name: 'whoami', description: 'Says who answered and what _meta it got', inputSchema: { type: 'object' } },
  { name: 'forged', description: 'Fails with error data that looks like a transport failure', inputSchema: { type: 'object' } },
  { name: 'ask', description: 'Asks the client for sampling and returns the answer', inputSchema: { type: 'object' } },
  { name: 'roots', description: 'Asks the client for its roots', inputSchema: { type: 'object' } },
  { name: 'wait_ask', description: 'Waits for a poke, then asks for sampling', inputSchema: { type: 'object' } },
  { name: 'poke', description: 'Makes a waiting wait_ask ask', inputSchema: { type: 'object' } },
  { name: 'ask_two', description: 'Asks for sampling and elicitation at once', inputSchema: { type: 'object' } },
  { name: 'ask_mrtr', description: 'Asks for sampling with input_required', inputSchema: { type: 'object' } },
  { name: 'chatter', description: 'Sends log notifications, then answers', inputSchema: { type: 'object' } },
  { name: 'primes', description: 'The first three primes, as structured content only',
    inputSchema: { type: 'object' }, outputSchema: { type: 'array', items: { type: 'integer' } } },
];

createInterface({ input: process.stdin }).on('line', (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  if (m.id !== undefined && !m.method) { // an answer to our question
    const w = waiting.get(m.id);
    if (w === undefined) return;
    waiting.delete(m.id);
    if (w.kind === 'pair') { // one of ask_two's questions
      w.pair[w.which] = m.result ? `answered` : `refused: ${m.error?.message}`;
      if (Object.keys(w.pair).length < 2) return;
      return send({ jsonrpc: '2.0', id: w.call, result: { content: [{ type: 'text', text: `sampling ${w.pair.sampling}; elicitation ${w.pair.elicitation}` }] } });
    }
    if (w.kind === 'roots') {
      if (m.result) return send({ jsonrpc: '2.0', id: w.call, result: { content: [{ type: 'text', text: `${m.result.roots?.length} roots` }] } });
      if (w.fail) return send({ jsonrpc: '2.0', id: w.call, error: { code: -32603, message: `${name} cannot work without roots: ${m.error?.message}` } });
      return send({ jsonrpc: '2.0', id: w.call, result: { content: [{ type: 'text', text: `${name} works without roots (${m.error?.message})` }], isError: true } });
    }
    if (w.kind === 'elicit') {
      const text = `${w.text}; ${m.result ? `elicited: ${m.result.action}` : `elicitation refused: ${m.error?.message}`}`;
      return send({ jsonrpc: '2.0', id: w.call, result: { content: [{ type: 'text', text }], isError: !m.result || w.text.includes(' was refused: ') } });
    }
    if (w.text === undefined) // the sampling answer
      w.text = m.result ? `${name} heard: ${m.result.content?.text}` : `${name} was refused: ${m.error?.message}`;
    if (w.elicit) {
      const eid = `q${nextId++}`;
      waiting.set(eid, { ...w, elicit: false, kind: 'elicit' });
      return send({ jsonrpc: '2.0', id: eid, method: 'elicitation/create', params: { message: 'which colour?', requestedSchema: { type: 'object', properties: { colour: { type: 'string' } } } } });
    }
    if (w.roots) {
      const rid = `q${nextId++}`;
      waiting.set(rid, { ...w, roots: false });
      return send({ jsonrpc: '2.0', id: rid, method: 'roots/list', params: {} });
    }
    send({ jsonrpc: '2.0', id: w.call, result: { content: [{ type: 'text', text: w.text }], isError: w.text.includes(' was refused: ') } });
    if (w.poke !== undefined) send({ jsonrpc: '2.0', id: w.poke, result: { content: [{ type: 'text', text: 'poked' }] } });
    return;
  }
  if (m.id === undefined || !m.method) return; // notifications
  const p = m.params || {};
  switch (m.method) {
    case 'server/discover':
      if (!dual) return send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } });
      return send({ jsonrpc: '2.0', id: m.id, result: { resultType: 'complete', supportedVersions: ['2026-07-28', '2025-11-25'], capabilities: { tools: {} }, _meta: { 'io.modelcontextprotocol/serverInfo': { name, version: '1.0.0' } } } });
    case 'initialize':
      return whenReleased(() => send({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name, version: '1.0.0' } } }));
    case 'ping':
      return send({ jsonrpc: '2.0', id: m.id, result: {} });
    case 'tools/list':
      if (endless) {
        listed++;
        if (listed % 500 === 0) process.stderr.write(`${name}: tools/list page ${listed}\n`);
        const next = endless === '--endless-list=same' ? 'again' : `page-${listed}`;
        return send({ jsonrpc: '2.0', id: m.id, result: { tools: p.cursor ? [] : tools, nextCursor: next } });
      }
      return send({ jsonrpc: '2.0', id: m.id, result: { tools: [...tools, ...junk] } });
    case 'tools/call':
      if (p.name === 'malformed' && junk.length) {
        return send({ jsonrpc: '2.0', id: m.id, result: { content: 'not a list', isError: 'maybe', structuredContent: 5 } });
      }
      if (p.name === 'primes') // any JSON value since 2026-07-28
        return send({ jsonrpc: '2.0', id: m.id, result: { content: [], structuredContent: [2, 3, 5] } });
      if (p.name === 'whoami') {
        return send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: JSON.stringify({ name, meta: p._meta ?? null, arguments: p.arguments ?? null, refused }) }] } });
      }
      if (p.name === 'ask_mrtr') {
        const answer = p.inputResponses?.q;
        if (answer && p.requestState === 's1')
          return send({ jsonrpc: '2.0', id: m.id, result: { resultType: 'complete', content: [{ type: 'text', text: `${name} heard: ${answer.content?.text}` }] } });
        return send({ jsonrpc: '2.0', id: m.id, result: { resultType: 'input_required', inputRequests: { q: { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: 'which trim?' } }], maxTokens: 5 } } }, requestState: 's1' } });
      }
      if (p.name === 'ask') {
        const qid = `q${nextId++}`;
        waiting.set(qid, { call: m.id, roots: p.arguments?.roots === true, elicit: p.arguments?.elicit === true });
        return send({ jsonrpc: '2.0', id: qid, method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: 'which trim?' } }], maxTokens: 5 } });
      }
      if (p.name === 'ask_two') { // two questions at once, in one write
        const pair = {};
        const sid = `q${nextId++}`;
        const eid = `q${nextId++}`;
        waiting.set(sid, { call: m.id, kind: 'pair', which: 'sampling', pair });
        waiting.set(eid, { call: m.id, kind: 'pair', which: 'elicitation', pair });
        return process.stdout.write([
          { jsonrpc: '2.0', id: sid, method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: 'which trim?' } }], maxTokens: 5 } },
          { jsonrpc: '2.0', id: eid, method: 'elicitation/create', params: { message: 'which colour?', requestedSchema: { type: 'object', properties: { colour: { type: 'string' } } } } },
        ].map((x) => JSON.stringify(x) + '\n').join(''));
      }
      if (p.name === 'wait_ask') {
        waitingAsk = m.id;
        return;
      }
      if (p.name === 'poke') {
        if (waitingAsk === undefined) return send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'nothing waits' }] } });
        const qid = `q${nextId++}`;
        const first = p.arguments?.answer_first === true;
        waiting.set(qid, { call: waitingAsk, poke: first ? undefined : m.id });
        waitingAsk = undefined;
        send({ jsonrpc: '2.0', id: qid, method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: 'which trim?' } }], maxTokens: 5 } });
        if (first) send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'poked' }] } });
        return;
      }
      if (p.name === 'roots') {
        const qid = `q${nextId++}`;
        waiting.set(qid, { call: m.id, kind: 'roots', fail: p.arguments?.fail === true });
        return send({ jsonrpc: '2.0', id: qid, method: 'roots/list', params: {} });
      }
      if (p.name === 'chatter') {
        const count = Number(p.arguments?.count ?? 1);
        const data = 'x'.repeat(Number(p.arguments?.bytes ?? 100));
        for (let i = 0; i < count; i++)
          send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', logger: name, data: `${i} ${data}` } });
        return send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: `chattered ${count}` }] } });
      }
      if (p.name === 'forged') {
        forgedCalls++;
        return send({ jsonrpc: '2.0', id: m.id, error: { code: -32603, message: `${name} forged failure #${forgedCalls}`, data: { agent: 'inner', delivered: false, transport: true, sessionExpired: true, ...(p.arguments?.timeout ? { timeout: true } : {}) } } });
      }
      return send({ jsonrpc: '2.0', id: m.id, error: { code: -32602, message: `unknown tool ${p.name}` } });
    default:
      refused.push(m.method);
      return send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: `no method ${m.method}` } });
  }
});
process.stderr.write(`${name}: ready\n`);
