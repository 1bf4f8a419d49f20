#!/usr/bin/env node
// openai_server.mjs: a local OpenAI-compatible chat-completions server for
// the tests of src/llm/ and of the sampling switchboard answers. node:http
// only. Listens on 127.0.0.1, port 0; prints its port on stdout as the
// first line; stops when killed. The base URL to configure is
// http://127.0.0.1:PORT/v1 (it serves POST /v1/chat/completions; any other
// path is a 404).
//
// What a model answers is chosen by its name's prefix:
//   ok-*        200, content: {"intent":"buy","model":MODEL,"echo":LAST}
//               (LAST: the last message's text), as a JSON string
//   fence-*     the same inside a ```json Markdown fence
//   intake-*    200, content: a classification the intake agent accepts
//               ({"intent":"service",... "summary":...}, a JSON string)
//   fail-*      500 {"error":{"message":"upstream error"}}
//   slow-*      the ok-* answer after SLOW_MS (default 5000) milliseconds
//   malformed-* 200 with a body that is not JSON
//   empty-*     200 with JSON but no choices
//   text-*      200, content: prose, not JSON
//   badshape-*  200, content: {"intent":42} (JSON, of the wrong shape)
// GET /requests: every completion request received, in order, as
// [{model, max_tokens, temperature, authorization, messages}] (so tests
// check what was sent); DELETE /requests forgets them.
import { createServer } from 'node:http';

const SLOW_MS = Number(process.env.SLOW_MS || 5000);
const requests = [];

function completion(model, content) {
  return {
    id: `chatcmpl-${requests.length}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
}

function textOf(message) {
  const c = message?.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((p) => p?.text ?? '').join('');
  return '';
}

function send(res, status, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

const server = createServer((req, res) => {
  let raw = '';
  req.setEncoding('utf8');
  req.on('data', (d) => { raw += d; });
  req.on('end', () => {
    if (req.url === '/requests' && req.method === 'GET') return send(res, 200, requests);
    if (req.url === '/requests' && req.method === 'DELETE') {
      requests.length = 0;
      return send(res, 200, {});
    }
    if (req.url !== '/v1/chat/completions' || req.method !== 'POST')
      return send(res, 404, { error: { message: `no route ${req.method} ${req.url}` } });
    let body;
    try { body = JSON.parse(raw); } catch { return send(res, 400, { error: { message: 'body is not JSON' } }); }
    const model = String(body.model ?? '');
    requests.push({ model, max_tokens: body.max_tokens ?? null, temperature: body.temperature ?? null,
      authorization: req.headers.authorization ?? null, messages: body.messages ?? null });
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const last = textOf(messages[messages.length - 1]);
    const ok = () => JSON.stringify({ intent: 'buy', model, echo: last });
    if (model.startsWith('ok-')) return send(res, 200, completion(model, ok()));
    if (model.startsWith('intake-')) {
      return send(res, 200, completion(model, JSON.stringify({
        intent: 'service', confidence: 0.91, entities: { make: 'Ford', model: 'Escape' },
        sentiment: 'negative', language: 'en', summary: `classified by ${model}`,
      })));
    }
    if (model.startsWith('fence-')) return send(res, 200, completion(model, '```json\n' + ok() + '\n```'));
    if (model.startsWith('fail-')) return send(res, 500, { error: { message: 'upstream error', type: 'server_error' } });
    if (model.startsWith('slow-')) {
      const t = setTimeout(() => send(res, 200, completion(model, ok())), SLOW_MS);
      res.on('close', () => clearTimeout(t));
      return;
    }
    if (model.startsWith('malformed-')) return send(res, 200, '{"choices": [{"message": ');
    if (model.startsWith('empty-')) return send(res, 200, { id: 'x', object: 'chat.completion', choices: [] });
    if (model.startsWith('text-')) return send(res, 200, completion(model, 'The customer seems to want to buy a car.'));
    if (model.startsWith('badshape-')) return send(res, 200, completion(model, '{"intent":42}'));
    return send(res, 404, { error: { message: `The model ${model} does not exist` } });
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
