// The floor under any HTTP server built on node:net sockets: Node's `net`
// with a fixed reply per request and no HTTP layer. It finds each request
// head's end and its target, nothing more (no fields, no framing checks, no
// Date), and writes a response prepared at start-up. What it spends per
// request is what Node's sockets and streams cost; a server on node:net
// (wasmloop's `completion` on node:net, node:http) spends that and more.
//
//   node bench/http/servers/node-net-floor.mjs PORT
import net from 'node:net';
import { BIG, HELLO } from './bodies.mjs';

const port = Number(process.argv[2] ?? 8080);
const response = (body) =>
  Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n`, 'latin1'),
    Buffer.from(body),
  ]);
const hello = response(new TextEncoder().encode(HELLO));
const big = response(BIG);
const END = Buffer.from('\r\n\r\n');
const BIG_TARGET = Buffer.from('GET /64k ');

const server = net.createServer({ noDelay: true }, (socket) => {
  // Bytes of a request head that has not ended yet (a head split over reads).
  let carried = null;
  socket.on('data', (chunk) => {
    const bytes = carried === null ? chunk : Buffer.concat([carried, chunk]);
    let start = 0;
    let end = bytes.indexOf(END, start);
    while (end !== -1) {
      const isBig = bytes.compare(BIG_TARGET, 0, BIG_TARGET.length, start, start + BIG_TARGET.length) === 0;
      socket.write(isBig ? big : hello);
      start = end + END.length;
      end = bytes.indexOf(END, start);
    }
    carried = start === bytes.length ? null : bytes.subarray(start);
  });
  socket.on('error', () => socket.destroy());
});
server.listen(port, '127.0.0.1', 4096, () => console.log(`ready: node:net floor on ${port}`));
