// Preloaded (node --require) into the Node MCP proxies that bench/gateway.sh
// runs: a server told only a port (supergateway's `app.listen(port)` binds
// every interface) binds 127.0.0.1 instead, so the benchmark never listens
// beyond this machine. Calls that name a host are left alone.
'use strict';
const net = require('node:net');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') {
    args.splice(1, 0, '127.0.0.1');
  } else if (args[0] && typeof args[0] === 'object' && args[0].port !== undefined &&
             args[0].host === undefined && args[0].path === undefined) {
    args[0] = { ...args[0], host: '127.0.0.1' };
  }
  return listen.apply(this, args);
};
