#!/usr/bin/env node
// everything_http.mjs: run @modelcontextprotocol/server-everything over
// Streamable HTTP, bound to 127.0.0.1 only, and print the port it really
// got. The upstream server reads PORT from the environment but listens on
// every interface and, with PORT=0, logs "port 0"; the tests need loopback
// only and no pick-then-bind race, so we pin the host and report
// server.address() ourselves:  "everything-http listening on 127.0.0.1:PORT".
import http from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function patchedListen(port, ...rest) {
  // express calls listen(port, callback): insert the host.
  const cb = typeof rest[rest.length - 1] === 'function' ? rest.pop() : undefined;
  // One line per request, so tests can count handshakes and learn the
  // session id: "everything-http POST session=<id|none> version=<v|none>".
  this.prependListener('request', (req) => {
    const sid = req.headers['mcp-session-id'] || 'none';
    const ver = req.headers['mcp-protocol-version'] || 'none';
    process.stderr.write(`everything-http ${req.method} session=${sid} version=${ver}\n`);
  });
  this.once('listening', () => {
    const a = this.address();
    process.stderr.write(`everything-http listening on ${a.address}:${a.port}\n`);
  });
  return listen.call(this, Number(port) || 0, '127.0.0.1', cb);
};

const require = createRequire(import.meta.url);
const pkg = require.resolve('@modelcontextprotocol/server-everything/package.json');
process.argv = [process.argv[0], 'index.js', 'streamableHttp'];
await import(join(dirname(pkg), 'dist', 'index.js'));
