// Node's own `tls` echo server (TLS on the libuv stream, in C++):
//   node node-tls-echo.mjs PORT KEY_FILE CERT_FILE
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

const [port, keyFile, certFile] = process.argv.slice(2);
const server = tls.createServer(
  { key: readFileSync(keyFile), cert: readFileSync(certFile), noDelay: true },
  (socket) => {
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('error', () => socket.destroy());
  },
);
server.listen(Number(port), '127.0.0.1', 1024, () => console.log(`ready ${server.address().port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
