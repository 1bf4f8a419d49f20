// Streamable HTTP, legacy sessions (2025-11-25): the GET notification
// stream, event ids, and resumption with Last-Event-ID. Notifications the
// server sends while the client is disconnected must arrive on the resumed
// stream in order, none lost and none twice. Plain fetch, no SDK.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DEADLINE_MS, startHttpServer, withDeadline } from './lib/harness.mjs';

const LEGACY = '2025-11-25';
const noteUri = (name) => `switchboard://notes/${name}`;

/** Reads SSE events off a fetch Response. */
class SseReader {
  constructor(res, ac) {
    this.res = res;
    this.ac = ac;
    this.reader = res.body.getReader();
    this.decoder = new TextDecoder();
    this.buf = '';
    this.lastId = undefined;
    this.ended = false;
  }
  /** Next event carrying data (comments and data-less primers only move
   * lastId); null when the stream ends. */
  async next(what = 'SSE event') {
    for (;;) {
      const sep = this.buf.indexOf('\n\n');
      if (sep >= 0) {
        const block = this.buf.slice(0, sep);
        this.buf = this.buf.slice(sep + 2);
        let id;
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'id') id = value;
          else if (field === 'data') data.push(value);
        }
        if (id !== undefined) this.lastId = id;
        const text = data.join('\n');
        if (text === '') continue;
        return { id, msg: JSON.parse(text) };
      }
      const { value, done } = await withDeadline(this.reader.read(), DEADLINE_MS, what);
      if (done) {
        this.ended = true;
        return null;
      }
      this.buf += this.decoder.decode(value, { stream: true });
    }
  }
  async abort() {
    this.ac.abort();
    await this.reader.cancel().catch(() => {});
  }
}

/** "<stream>-<seq>" -> [stream, seq]; asserts the shape. */
function parseId(id) {
  const m = /^(\d+)-(\d+)$/.exec(id || '');
  assert.ok(m, `event id ${JSON.stringify(id)} is <stream>-<seq>`);
  return [Number(m[1]), Number(m[2])];
}

describe('Streamable HTTP: legacy GET stream and Last-Event-ID resumption', { timeout: 120000 }, () => {
  let server;
  let url;
  let nextId = 1;

  async function rpc(sessionId, method, params, { expectStatus = 200 } = {}) {
    const id = nextId++;
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': LEGACY,
    };
    if (sessionId) headers['Mcp-Session-Id'] = sessionId;
    const res = await withDeadline(fetch(url, {
      method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
    }), DEADLINE_MS, method);
    const text = await withDeadline(res.text(), DEADLINE_MS, `${method} body`);
    assert.equal(res.status, expectStatus, `${method}: ${text}`);
    // Responses may come as JSON or as an SSE stream ending in the result.
    let msg;
    if ((res.headers.get('content-type') || '').includes('text/event-stream')) {
      const datas = text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
      msg = datas.find((m) => m.id === id);
    } else {
      msg = JSON.parse(text);
    }
    assert.equal(msg?.id, id, `${method}: ${text}`);
    return { msg, headers: res.headers };
  }

  async function notify(sessionId, method, params) {
    const res = await withDeadline(fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'MCP-Protocol-Version': LEGACY, 'Mcp-Session-Id': sessionId,
      },
      body: JSON.stringify({ jsonrpc: '2.0', method, ...(params ? { params } : {}) }),
    }), DEADLINE_MS, method);
    assert.equal(res.status, 202, await res.text());
  }

  async function openSession() {
    const { msg, headers } = await rpc(null, 'initialize', {
      protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'resume-test', version: '1' },
    });
    assert.equal(msg.result?.protocolVersion, LEGACY, JSON.stringify(msg));
    const sid = headers.get('mcp-session-id');
    assert.match(sid || '', /^[\x21-\x7e]{16,}$/, 'visible-ASCII session id');
    await notify(sid, 'notifications/initialized');
    return sid;
  }

  async function openGet(sid, lastEventId, expectStatus = 200) {
    const ac = new AbortController();
    const headers = { accept: 'text/event-stream', 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': LEGACY };
    if (lastEventId) headers['Last-Event-ID'] = lastEventId;
    const res = await withDeadline(fetch(url, { method: 'GET', headers, signal: ac.signal }), DEADLINE_MS, 'GET stream');
    if (expectStatus !== 200) {
      const text = await res.text();
      assert.equal(res.status, expectStatus, text);
      return JSON.parse(text);
    }
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') || '', /^text\/event-stream/);
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    return new SseReader(res, ac);
  }

  const writeNote = (sid, name) => rpc(sid, 'tools/call', { name: 'note_write', arguments: { name, text: `text of ${name}` } });

  const describeEv = (ev) => `${ev.id} ${ev.msg.method}${ev.msg.params?.uri ? ' ' + ev.msg.params.uri : ''}`;

  before(async () => {
    server = await startHttpServer();
    url = server.url;
  });

  after(async () => {
    if (server) {
      const { code, signal } = await server.stop();
      assert.equal(signal, null, server.stderr);
      assert.equal(code, 0, server.stderr);
    }
  });

  it('replays missed notifications after Last-Event-ID in order, none lost or duplicated', async () => {
    const sid = await openSession();
    const sub = await rpc(sid, 'resources/subscribe', { uri: noteUri('r1') });
    assert.ok(sub.msg.result, JSON.stringify(sub.msg));

    // Live: the GET stream carries a note's list_changed with an event id.
    const live = await openGet(sid);
    await writeNote(sid, 'r0');
    const first = await live.next('list_changed for r0');
    assert.equal(first.msg.method, 'notifications/resources/list_changed', describeEv(first));
    const [stream0, seq0] = parseId(first.id);
    assert.equal(stream0, 0, 'GET stream events are on stream 0');
    await live.abort();

    // Disconnected: r1 is new and subscribed (updated + list_changed), the
    // second write of r1 only updates, r2 is new but unsubscribed.
    await writeNote(sid, 'r1');
    await writeNote(sid, 'r1');
    await writeNote(sid, 'r2');
    const expected = [
      'notifications/resources/updated switchboard://notes/r1',
      'notifications/resources/list_changed',
      'notifications/resources/updated switchboard://notes/r1',
      'notifications/resources/list_changed',
    ].sort();

    const resumed = await openGet(sid, first.id);
    const missed = [];
    for (let i = 0; i < expected.length; i++) missed.push(await resumed.next(`missed event ${i + 1}`));
    const seqs = missed.map((ev) => parseId(ev.id));
    for (const [stream] of seqs) assert.equal(stream, 0);
    for (let i = 0; i < seqs.length; i++) {
      assert.ok(seqs[i][1] > (i ? seqs[i - 1][1] : seq0), `ids ascend: ${missed.map(describeEv).join(', ')}`);
    }
    assert.deepEqual(
      missed.map((ev) => `${ev.msg.method}${ev.msg.params?.uri ? ' ' + ev.msg.params.uri : ''}`).sort(),
      expected, missed.map(describeEv).join(', '));
    // updated(r1) precedes the second updated(r1): writes were in order.
    const updatedIdx = missed.map((ev, i) => (ev.msg.method.endsWith('updated') ? i : -1)).filter((i) => i >= 0);
    assert.equal(updatedIdx.length, 2);

    // Then it continues live, and the very next event is the new one (so
    // nothing was replayed twice).
    await writeNote(sid, 'r3');
    const next = await resumed.next('live event after the replay');
    assert.equal(next.msg.method, 'notifications/resources/list_changed', describeEv(next));
    assert.ok(parseId(next.id)[1] > seqs.at(-1)[1]);
    await resumed.abort();

    // Resuming from the middle replays only what came after that id.
    const mid = missed[1].id;
    const again = await openGet(sid, mid);
    const tail = [];
    for (let i = 0; i < 3; i++) tail.push(await again.next(`tail event ${i + 1}`));
    assert.deepEqual(tail.map((ev) => ev.id), [missed[2].id, missed[3].id, next.id]);
    await writeNote(sid, 'r4');
    const after4 = await again.next('live r4');
    assert.ok(parseId(after4.id)[1] > parseId(next.id)[1], describeEv(after4));
    await again.abort();
  });

  it('keeps notifications for a session with no GET stream until one connects', async () => {
    const sid = await openSession();
    const other = await openSession();
    // A new note is announced to every session; this one has no stream yet.
    await writeNote(other, 'quiet1');
    const get = await openGet(sid);
    const ev = await get.next('buffered list_changed');
    assert.equal(ev.msg.method, 'notifications/resources/list_changed');
    assert.equal(parseId(ev.id)[0], 0);
    // Nothing else was waiting: the next event is a fresh one.
    await writeNote(other, 'quiet2');
    const ev2 = await get.next('live list_changed');
    assert.equal(ev2.msg.method, 'notifications/resources/list_changed');
    assert.ok(parseId(ev2.id)[1] > parseId(ev.id)[1]);
    await get.abort();
  });

  it('refuses a second live GET stream with 409 and rejects a malformed Last-Event-ID', async () => {
    const sid = await openSession();
    const first = await openGet(sid);
    await writeNote(sid, 'c409');
    const ev = await first.next('event on the first stream');
    assert.ok(first.lastId);
    assert.equal(ev.msg.method, 'notifications/resources/list_changed');
    const err = await openGet(sid, undefined, 409);
    assert.equal(err.error?.code, -32600, JSON.stringify(err));
    const bad = await openGet(sid, 'not-an-id', 400);
    assert.ok(bad.error, JSON.stringify(bad));
    await first.abort();
  });

  it('DELETE ends the session: its GET stream closes and the id is then unknown', async () => {
    const sid = await openSession();
    const get = await openGet(sid);
    const res = await withDeadline(fetch(url, { method: 'DELETE', headers: { 'Mcp-Session-Id': sid } }), DEADLINE_MS, 'DELETE');
    assert.ok(res.status === 200 || res.status === 204, `DELETE: ${res.status}`);
    // The stream ends (no more events).
    assert.equal(await get.next('end of the GET stream'), null);
    const gone = await rpc(sid, 'tools/list', {}, { expectStatus: 404 }).catch((e) => e);
    assert.ok(!(gone instanceof Error) || /404/.test(String(gone)), String(gone));
    const res2 = await withDeadline(fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'Mcp-Session-Id': sid },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    }), DEADLINE_MS, 'POST after DELETE');
    assert.equal(res2.status, 404);
    assert.equal((await res2.json()).error.code, -32001);
  });

  it('a legacy POST that streams gives its events resumable ids on their own stream', async () => {
    const sid = await openSession();
    const id = nextId++;
    const res = await withDeadline(fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'MCP-Protocol-Version': LEGACY, 'Mcp-Session-Id': sid,
      },
      body: JSON.stringify({
        jsonrpc: '2.0', id, method: 'tools/call',
        params: { name: 'slow_count', arguments: { steps: 3, interval_ms: 10 }, _meta: { progressToken: 'pt' } },
      }),
    }), DEADLINE_MS, 'slow_count');
    assert.match(res.headers.get('content-type') || '', /text\/event-stream/);
    const sse = new SseReader(res, new AbortController());
    const events = [];
    for (;;) {
      const ev = await sse.next('slow_count stream');
      if (!ev) break;
      events.push(ev);
    }
    assert.equal(events.length, 4, events.map(describeEv).join(', '));
    assert.deepEqual(events.slice(0, 3).map((e) => e.msg.params.progress), [1, 2, 3]);
    assert.equal(events[3].msg.id, id);
    const ids = events.map((e) => parseId(e.id));
    const stream = ids[0][0];
    assert.ok(stream > 0, 'POST streams are numbered from 1');
    for (const [s] of ids) assert.equal(s, stream);
    // Resuming that stream after its second event replays the rest and ends.
    const replay = await openGet(sid, events[1].id);
    const rest = [];
    for (;;) {
      const ev = await replay.next('replayed POST stream');
      if (!ev) break;
      rest.push(ev);
    }
    assert.deepEqual(rest.map((e) => e.id), [events[2].id, events[3].id]);
    assert.equal(rest[1].msg.id, id);
  });

  /** POST tools/call slow_count with a progress token; returns once the
   * response has turned into an SSE stream. */
  async function startSlowCount(sid, steps, intervalMs) {
    const id = nextId++;
    const ac = new AbortController();
    const res = await withDeadline(fetch(url, {
      method: 'POST',
      signal: ac.signal,
      headers: {
        'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'MCP-Protocol-Version': LEGACY, 'Mcp-Session-Id': sid,
      },
      body: JSON.stringify({
        jsonrpc: '2.0', id, method: 'tools/call',
        params: { name: 'slow_count', arguments: { steps, interval_ms: intervalMs }, _meta: { progressToken: `pt-${id}` } },
      }),
    }), DEADLINE_MS, 'slow_count');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') || '', /text\/event-stream/);
    return { id, sse: new SseReader(res, ac) };
  }

  /** Every event until the stream ends. */
  async function drain(reader, what) {
    const out = [];
    for (;;) {
      const ev = await reader.next(what);
      if (!ev) return out;
      out.push(ev);
    }
  }

  it('a dropped legacy POST stream does not cancel the call: GET with Last-Event-ID continues it to the result', async () => {
    const sid = await openSession();
    const { id, sse } = await startSlowCount(sid, 5, 100);
    const first = await sse.next('first progress');
    assert.equal(first.msg.method, 'notifications/progress', describeEv(first));
    assert.equal(first.msg.params.progress, 1);
    assert.equal(first.msg.params.progressToken, `pt-${id}`);
    const [stream, seq1] = parseId(first.id);
    assert.ok(stream > 0, 'POST streams are numbered from 1');
    await sse.abort();

    const resumed = await openGet(sid, first.id);
    const rest = await drain(resumed, 'resumed POST stream');
    const desc = rest.map(describeEv).join(', ');
    assert.equal(rest.length, 5, desc);
    // Progress 2..5 exactly once each, in order, then the final result.
    assert.deepEqual(rest.slice(0, 4).map((e) => e.msg.method), Array(4).fill('notifications/progress'), desc);
    assert.deepEqual(rest.slice(0, 4).map((e) => e.msg.params.progress), [2, 3, 4, 5], desc);
    const final = rest[4].msg;
    assert.equal(final.id, id, desc);
    assert.equal(final.result?.content?.[0]?.text, 'counted to 5', JSON.stringify(final));
    // All on the POST's stream, ids strictly ascending after the resume point.
    let prev = seq1;
    for (const ev of rest) {
      const [s, q] = parseId(ev.id);
      assert.equal(s, stream, desc);
      assert.ok(q > prev, `ids ascend: ${desc}`);
      prev = q;
    }

    // The stream is complete now: resuming it again only replays.
    const again = await openGet(sid, rest[2].id);
    const tail = await drain(again, 'second resumption');
    assert.deepEqual(tail.map((e) => e.id), [rest[3].id, rest[4].id]);

    // The session is still fine.
    const list = await rpc(sid, 'tools/list', {});
    assert.ok(Array.isArray(list.msg.result?.tools));
  });

  it('notifications/cancelled still cancels a call whose POST stream was dropped', async () => {
    const sid = await openSession();
    // Long enough that a call that is not cancelled would finish on the
    // resumed stream well after the cancellation.
    const { id, sse } = await startSlowCount(sid, 30, 100);
    const first = await sse.next('first progress');
    assert.equal(first.msg.params?.progress, 1, describeEv(first));
    await sse.abort();

    await notify(sid, 'notifications/cancelled', { requestId: id, reason: 'test' });

    // Resuming the stream replays whatever progress came before the
    // cancellation and then ends: no further events, no result.
    const resumed = await openGet(sid, first.id);
    const rest = await drain(resumed, 'resumed stream of a cancelled call');
    const desc = rest.map(describeEv).join(', ');
    assert.equal(resumed.ended, true);
    assert.ok(rest.length < 29, desc);
    for (const ev of rest) {
      assert.equal(ev.msg.method, 'notifications/progress', desc);
      assert.notEqual(ev.msg.id, id, desc);
    }
    // Nothing was written after the resumption ended: a second resume from
    // the last replayed event (or the first) finds nothing more.
    const last = rest.length ? rest.at(-1).id : first.id;
    const again = await openGet(sid, last);
    assert.deepEqual(await drain(again, 'nothing after a cancelled call'), []);
  });

  it('keeps at most 16 dropped calls per session, cancelling the oldest (the rest run until the server stops)', async () => {
    const sid = await openSession();
    const firsts = [];
    for (let i = 0; i < 17; i++) {
      const { id, sse } = await startSlowCount(sid, 1000, 50);
      const first = await sse.next(`first progress of call ${i + 1}`);
      assert.equal(first.msg.params?.progress, 1, describeEv(first));
      await sse.abort();
      // Resuming makes sure the server has orphaned this call before the
      // next one (so "oldest" is well defined) and shows it still runs.
      const live = await openGet(sid, first.id);
      const ev = await live.next(`live progress of call ${i + 1}`);
      assert.equal(ev.msg.method, 'notifications/progress', describeEv(ev));
      assert.ok(ev.msg.params.progress > 1, describeEv(ev));
      await live.abort();
      firsts.push({ id, first });
    }
    // The 17th orphan pushed the 1st out: its stream only replays, then ends.
    const oldest = await openGet(sid, firsts[0].first.id);
    const rest = await drain(oldest, 'resumed stream of the cancelled oldest call');
    assert.ok(rest.every((e) => e.msg.method === 'notifications/progress' && e.msg.id !== firsts[0].id),
      rest.map(describeEv).join(', '));
    // The 2nd is still running: its resumed stream stays open with new progress.
    const second = await openGet(sid, firsts[1].first.id);
    let ev;
    do {
      ev = await second.next('progress of the second call');
      assert.ok(ev, 'the second call is still running');
    } while (parseId(ev.id)[1] <= parseId(rest.at(-1)?.id ?? firsts[0].first.id)[1]);
    assert.equal(ev.msg.method, 'notifications/progress', describeEv(ev));
    await second.abort();
  });
});

describe('Streamable HTTP: a session\'s replay ring is bounded in bytes', { timeout: 60000 }, () => {
  // limits.max_stream_buffer_bytes 8192: the ring keeps what fits in an
  // eighth of it, 1 KiB (the newest event always). Before, it kept
  // replay_events (256) events of any size: hundreds of megabytes a
  // session for a client that asked for big answers.
  let server;
  let url;
  let id = 1;
  const post = async (sid, method, params) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': LEGACY, ...(sid ? { 'Mcp-Session-Id': sid } : {}) },
      body: JSON.stringify({ jsonrpc: '2.0', ...(params === undefined ? {} : { id: id++ }), method, ...(params ? { params } : {}) }),
    });
    await res.text();
    return res;
  };

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-ring-'));
    writeFileSync(join(dir, 'switchboard.yaml'), 'limits:\n  max_stream_buffer_bytes: 8192\n');
    server = await startHttpServer({ extraArgs: ['--config', join(dir, 'switchboard.yaml')] });
    url = server.url;
  });
  after(async () => {
    if (server) assert.equal((await server.stop()).code, 0, server.stderr);
  });

  it('a client resuming after 40 missed events gets the newest that fit in 1 KiB, in order', async () => {
    const init = await post(null, 'initialize', { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'ring', version: '1' } });
    const sid = init.headers.get('mcp-session-id');
    await post(sid, 'notifications/initialized');
    // Each note written announces list_changed to the session: 40 events
    // kept for a GET stream that is not there.
    for (let i = 0; i < 40; i++) await post(sid, 'tools/call', { name: 'note_write', arguments: { name: `n${i}`, text: 'x' } });
    const ac = new AbortController();
    const res = await fetch(url, { headers: { accept: 'text/event-stream', 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': LEGACY, 'Last-Event-ID': '0-0' }, signal: ac.signal });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    let text = '';
    // Then one event of another kind, live: the replay is what came before.
    await post(sid, 'resources/subscribe', { uri: 'switchboard://notes/live' });
    await post(sid, 'tools/call', { name: 'note_write', arguments: { name: 'live', text: 'x' } });
    while (!text.includes('switchboard://notes/live')) {
      const { value, done } = await withDeadline(reader.read(), DEADLINE_MS, 'the replay, then the live event');
      assert.ok(!done, text);
      text += Buffer.from(value).toString('utf8');
    }
    ac.abort();
    const blocks = text.split('\n\n').filter((b) => /^id: 0-/m.test(b));
    const replayed = blocks.slice(0, blocks.findIndex((b) => b.includes('notes/live')));
    const ids = replayed.map((b) => Number(/^id: 0-(\d+)$/m.exec(b)[1]));
    assert.ok(ids.length > 2 && ids.length < 40, `${ids.length} events replayed`);
    for (let i = 1; i < ids.length; i++) assert.equal(ids[i], ids[i - 1] + 1, `in order, none missing: ${ids}`);
    const bytes = replayed.reduce((n, b) => n + Buffer.byteLength(b) + 2, 0);
    assert.ok(bytes <= 1024, `${bytes} bytes replayed`);
  });
});
