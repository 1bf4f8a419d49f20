// events://log answers are bounded by bytes: a read gives no more events
// than fit in half of limits.max_message_bytes (the first always, however
// large), says "more" when events follow its lastSeq, and reading on from
// lastSeq gives every event exactly once, in order. Before, a read gave
// up to 500 events of up to events.max_data_bytes each whatever their
// size: 33 MB under the default config, built on the loop.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { postModern } from './lib/harness.mjs';
import { startFlowServer } from './lib/flows.mjs';

const A = { id: 'dealer-a', token: 'token-dealer-a-0123456789' };
const MAX_MESSAGE = 131072; // limits.max_message_bytes: events take 64 KiB a read
const MAX_DATA = 100000; // events.max_data_bytes: one event may pass 64 KiB

describe('events://log bounded by bytes', () => {
  let sw;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-events-bound-'));
    const file = join(dir, 'switchboard.yaml');
    writeFileSync(file, [
      'limits:', `  max_message_bytes: ${MAX_MESSAGE}`,
      'events:', `  max_data_bytes: ${MAX_DATA}`,
      'auth:', '  tenants:', `    - id: ${A.id}`, `      token: ${A.token}`,
      'agents: []', '',
    ].join('\n'));
    sw = await startFlowServer(file, { token: A.token });
  });
  after(async () => { await sw?.server.stop(); });

  const read = async (since) => {
    const r = await postModern(sw.server.url, A.token, 'resources/read', { uri: `events://log?since=${since}` });
    assert.equal(r.status, 200, r.text.slice(0, 400));
    assert.ok(r.result, r.text.slice(0, 400));
    const body = JSON.parse(r.result.contents[0].text);
    assert.ok(Array.isArray(body.events), r.text.slice(0, 400));
    return { size: Buffer.byteLength(r.text), body };
  };

  test('reads stay under the limit, and reading on from lastSeq gives every event once, in order', async () => {
    // 40 events of ~20 KB (800 KB in all, six times the limit), one of
    // ~90 KB (alone past the 64 KiB the events of a read may take), and
    // some with quotes, which the answer's text escapes.
    const published = [];
    for (let i = 0; i < 44; i++) {
      const blob = i === 17 ? 'b'.repeat(90000) : (i % 10 === 3 ? '"q"'.repeat(6000) : 'a'.repeat(20000));
      const r = await sw.rest.publish({ type: 'crm.blob', data: { i, blob } });
      assert.equal(r.status, 201, r.text);
      published.push(r.json.seq);
    }
    const got = [];
    let since = 0;
    let reads = 0;
    let alone = false;
    for (;;) {
      const { size, body } = await read(since);
      reads++;
      assert.ok(size < MAX_MESSAGE, `read ${reads} from ${since}: ${size} bytes, past limits.max_message_bytes ${MAX_MESSAGE}`);
      // Counted as sent, escapes included: several events take at most
      // half the limit, and the answer around them a little more. Before,
      // events full of quotes were counted unescaped and took twice that.
      if (body.events.length > 1) assert.ok(size <= MAX_MESSAGE / 2 + 1024, `read ${reads} from ${since}: ${size} bytes for ${body.events.length} events`);
      assert.ok(body.events.length >= 1 || !body.more, `read ${reads}: no event, yet more`);
      if (body.events.some((e) => e.data.i === 17)) {
        alone = true;
        assert.equal(body.events.length, 1, 'the event past the budget comes alone');
      }
      for (const e of body.events) got.push(e.seq);
      if (!body.events.length) break;
      assert.equal(body.lastSeq, body.events.at(-1).seq);
      since = body.lastSeq;
      assert.ok(reads < 100, 'reads end');
    }
    assert.ok(alone, 'the large event was read');
    assert.deepEqual(got, published, 'every event exactly once, in order');
    assert.ok(reads > 6, `${reads} reads`);
  });
});
