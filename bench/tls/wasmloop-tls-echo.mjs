// The wasmloop echo server of the TLS benchmark, on either API:
//   node wasmloop-tls-echo.mjs BACKEND PORT KEY_FILE CERT_FILE streams|protocol
// streams: createServer({ tls }) with `for await` reads and awaited writes
// (as bench/tcp/wasmloop-echo.mjs); protocol: createProtocolServer({ tls })
// with dataReceived -> write (as bench/tcp/wasmloop-protocol-echo.mjs).
import { readFileSync } from 'node:fs';
import { createLoop } from '../../ts-host/dist/index.js';

const [backend, port, keyFile, certFile, api] = process.argv.slice(2);
const tls = { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
const loop = await createLoop({ backend });
const listen = { host: '127.0.0.1', port: Number(port), backlog: 1024, tls };

class Echo {
  connectionMade(transport) {
    this.transport = transport;
  }
  dataReceived(data) {
    this.transport.write(data);
  }
}

const server = await loop.runUntilComplete(() =>
  api === 'protocol'
    ? loop.createProtocolServer(() => new Echo(), listen)
    : loop.createServer(async (conn) => {
        for await (const chunk of conn) await conn.write(chunk);
      }, listen),
);
process.on('SIGTERM', () => loop.stop());
console.log(`ready ${server.address().port}`);
await loop.runForever();
await loop.close();
