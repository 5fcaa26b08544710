// Bun.serve for the HTTP benchmark: GET / is 'Hello, World!', GET /64k is 64 KiB.
//
//   bun bench/http/servers/bun.mjs PORT
import { BIG, HELLO } from './bodies.mjs';

const port = Number(process.argv[2] ?? 8080);
Bun.serve({
  port,
  hostname: '127.0.0.1',
  // Bun's longest idle timeout (s): the memory measurement holds connections open.
  idleTimeout: 255,
  fetch: (request) => (request.url.endsWith('/64k') ? new Response(BIG) : new Response(HELLO)),
});
console.log(`ready: Bun.serve on ${port}`);
