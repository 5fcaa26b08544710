// The wasmloop echo server of the TCP benchmark: node wasmloop-echo.mjs BACKEND PORT
import { ConnectionResetError, createLoop } from '../../ts-host/dist/index.js';

const [backend, port] = process.argv.slice(2);
const loop = await createLoop({ backend });
const server = await loop.runUntilComplete(() =>
  loop.createServer(
    async (conn) => {
      try {
        let chunk;
        while ((chunk = await conn.read()) !== null) await conn.write(chunk);
      } catch (error) {
        // A load client that exits mid-message resets its connections.
        if (!(error instanceof ConnectionResetError)) throw error;
      } finally {
        conn.close();
      }
    },
    { host: '127.0.0.1', port: Number(port), backlog: 1024 },
  ),
);
process.on('SIGTERM', () => loop.stop());
console.log(`ready ${server.address().port}`);
await loop.runForever();
await loop.close();
