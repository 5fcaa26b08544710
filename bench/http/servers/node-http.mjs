// node:http for the HTTP benchmark: GET / is 'Hello, World!', GET /64k is 64 KiB.
//
//   node bench/http/servers/node-http.mjs PORT
import http from 'node:http';
import { BIG, HELLO } from './bodies.mjs';

const port = Number(process.argv[2] ?? 8080);
const big = Buffer.from(BIG);
const server = http.createServer((request, response) => {
  const body = request.url === '/64k' ? big : HELLO;
  response.writeHead(200, { 'content-type': 'text/plain' });
  response.end(body);
});
server.keepAliveTimeout = 120_000;
server.listen(port, '127.0.0.1', 4096, () => console.log(`ready: node:http on ${port}`));
