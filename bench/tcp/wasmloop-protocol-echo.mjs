// The wasmloop echo server of the TCP benchmark on the protocol API
// (asyncio's create_server with a protocol, as the uvloop server uses):
//   node wasmloop-protocol-echo.mjs BACKEND PORT
import { createLoop } from '../../ts-host/dist/index.js';

const [backend, port] = process.argv.slice(2);
const loop = await createLoop({ backend });

class Echo {
  connectionMade(transport) {
    this.transport = transport;
  }
  dataReceived(data) {
    this.transport.write(data);
  }
}

const server = await loop.runUntilComplete(() =>
  loop.createProtocolServer(() => new Echo(), { host: '127.0.0.1', port: Number(port), backlog: 1024 }),
);
process.on('SIGTERM', () => loop.stop());
console.log(`ready ${server.address().port}`);
await loop.runForever();
await loop.close();
