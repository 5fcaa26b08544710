// Deno.serve for the HTTP benchmark: GET / is 'Hello, World!', GET /64k is 64 KiB.
//
//   deno run --allow-net bench/http/servers/deno.mjs PORT
import { BIG, HELLO } from './bodies.mjs';

const port = Number(Deno.args[0] ?? 8080);
Deno.serve({ port, hostname: '127.0.0.1', onListen: () => console.log(`ready: Deno.serve on ${port}`) }, (request) =>
  request.url.endsWith('/64k') ? new Response(BIG) : new Response(HELLO),
);
