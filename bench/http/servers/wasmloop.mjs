// serve() for the HTTP benchmark: GET / is 'Hello, World!', GET /64k is 64 KiB.
//
//   node bench/http/servers/wasmloop.mjs BACKEND PORT
//
// Idle keep-alive connections stay for two minutes and up to 20,000 are
// taken (the memory measurement holds 10,000 open), as for every server.
import { createLoop, serve } from '../../../ts-host/dist/index.js';
import { BIG, HELLO } from './bodies.mjs';

const [backend = 'selector', port = '8080'] = process.argv.slice(2);
const loop = await createLoop({ backend });
await loop.runUntilComplete(() =>
  serve(loop, {
    port: Number(port),
    keepAliveTimeoutMs: 120_000,
    maxConnections: 20_000,
    fetch: (request) => (request.url.endsWith('/64k') ? new Response(BIG) : new Response(HELLO)),
  }),
);
console.log(`ready: wasmloop serve() on ${loop.backend}, port ${port}`);
await loop.runForever();
