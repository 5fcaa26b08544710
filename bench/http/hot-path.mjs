// The server's per-request work without sockets: a keep-alive GET fed to one
// connection's protocol object again and again, its response written to a
// transport that drops it. Shows what the HTTP layer itself costs, apart from
// the kernel and the client.
//
//   node bench/http/hot-path.mjs [response|url] [light|native]
import { createLoop } from '../../ts-host/dist/index.js';
import { loadParser } from '../../ts-host/dist/http/parser.js';
import { HttpProtocol } from '../../ts-host/dist/http/protocol.js';
import { HTTP_DEFAULTS } from '../../ts-host/dist/http/server.js';

import { installLightResponse } from '../../ts-host/dist/http/light-response.js';

const kind = process.argv[2] ?? 'response';
if ((process.argv[3] ?? 'light') === 'light') installLightResponse();
const loop = await createLoop({ backend: 'virtual' });
const parser = await loadParser();
const handlers = {
  response: () => new Response('Hello, World!'),
  url: (r) => new Response(`Hello, ${r.url}`),
};
const context = {
  loop,
  parser,
  fetch: handlers[kind],
  ...HTTP_DEFAULTS,
  maxHeaders: 100,
  connections: new Set(),
  closing: false,
  defaultHost: '127.0.0.1:8080',
  onEmpty: null,
};
let written = 0;
const address = { family: 'IPv4', host: '127.0.0.1', port: 1 };
const transport = {
  write(data) {
    written += data.length;
  },
  writeEof() {},
  close() {},
  abort() {},
  isClosing: () => false,
  pauseReading() {},
  resumeReading() {},
  isReading: () => true,
  writeBufferSize: () => 0,
  setWriteBufferLimits() {},
  localAddress: address,
  remoteAddress: address,
};
const protocol = new HttpProtocol(context);
protocol.connectionMade(transport);
const request = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n');
const N = 200_000;
// A macrotask per request, as the loop gives each read (microtasks run between).
const tick = () => new Promise((resolve) => setImmediate(resolve));
for (let i = 0; i < N / 4; i++) {
  protocol.dataReceived(request.slice());
  await tick();
}
for (let round = 0; round < 3; round++) {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    protocol.dataReceived(request.slice());
    await tick();
  }
  const ns = ((performance.now() - t0) * 1e6) / N;
  console.log(`${kind}: ${ns.toFixed(0)} ns per request (${written} bytes written so far)`);
}
process.exit(0);
