// tmp.mjs, preloaded (--import) by every integration test file: the
// file's temporary files (stores, configs, agents' data, the servers'
// own) go into one directory of its own, removed when its process exits,
// instead of piling up in the system's temporary directory run after run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

if (!process.env.SB_TEST_TMPDIR) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-itest-'));
  process.env.SB_TEST_TMPDIR = dir;
  process.env.TMPDIR = dir;
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
}
