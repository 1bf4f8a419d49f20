// models.mjs: the local OpenAI-compatible test server
// (tests/agents/openai_server.mjs) for the tests of switchboard's LLM
// chain: started on a free port, its base URL, what it was sent, stopped.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEADLINE_MS, withDeadline } from './harness.mjs';

const OPENAI_SERVER = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'agents', 'openai_server.mjs');

/** Start the OpenAI-compatible test server; its base URL and requests. */
export async function startModels() {
  const proc = spawn(process.execPath, [OPENAI_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const port = await withDeadline(new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out.split('\n')[0]));
    });
    exited.then(() => reject(new Error('the OpenAI test server exited')));
  }), DEADLINE_MS, 'the OpenAI test server to listen');
  const base = `http://127.0.0.1:${port}`;
  return {
    baseUrl: `${base}/v1`,
    async requests() { return (await fetch(`${base}/requests`)).json(); },
    async stop() {
      proc.kill('SIGTERM');
      await withDeadline(exited, DEADLINE_MS, 'the OpenAI test server to exit').catch(() => proc.kill('SIGKILL'));
    },
  };
}

