// http_req.mjs: one HTTP request for the Node benchmarks, on a given
// keep-alive agent: {status, text}. A body is sent as JSON.
import http from 'node:http';

export function req(url, method, body, agent) {
  return new Promise((resolve, reject) => {
    const r = http.request(url, { method, agent, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
    });
    r.on('error', reject);
    r.end(body ? JSON.stringify(body) : undefined);
  });
}
