// `make demo`: `wasmloop run` serving the example echo server on the `auto`
// backend, a client driving it for a few seconds, then the server's stats.
// Runs wherever wasmloop is installed, beside echo-server.mjs.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createLoop } from 'wasmloop';

const here = fileURLToPath(new URL('.', import.meta.url));
// The package's `wasmloop` command, as its package.json names it.
const manifest = new URL(import.meta.resolve('wasmloop/package.json'));
const cli = fileURLToPath(new URL(JSON.parse(readFileSync(manifest, 'utf8')).bin.wasmloop, manifest));
const SECONDS = Number(process.argv[2] ?? 3);
const CONNECTIONS = 20;

console.log('$ wasmloop run ./echo-server.mjs:main --backend auto --port 0 --stats');
const server = spawn(
  process.execPath,
  [cli, 'run', './echo-server.mjs:main', '--backend', 'auto', '--port', '0', '--stats'],
  { cwd: here, stdio: ['ignore', 'pipe', 'inherit'] },
);
let serverOut = '';
server.stdout.on('data', (d) => (serverOut += d));
const port = await new Promise((resolve, reject) => {
  server.stdout.on('data', () => {
    const m = /listening on [\d.]+:(\d+)/.exec(serverOut);
    if (m) resolve(Number(m[1]));
  });
  server.on('exit', (code) => reject(new Error(`the server exited with ${code}`)));
});
process.stdout.write(serverOut);

// The client: its own loop, CONNECTIONS connections in ping-pong.
const loop = await createLoop();
const latencies = [];
let bytes = 0;
let wrong = 0;
await loop.runUntilComplete(async () => {
  const end = loop.time() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, c) => {
      const conn = await loop.createConnection({ port });
      for (let i = 0; loop.time() < end; i++) {
        const message = `connection ${c} message ${i} ${'x'.repeat((i * 37) % 200)}`;
        const t0 = performance.now();
        await conn.write(message);
        let got = '';
        while (got.length < message.length) got += new TextDecoder().decode(await conn.read());
        latencies.push(performance.now() - t0);
        if (got !== message) wrong++;
        bytes += message.length * 2;
      }
      conn.close();
    }),
  );
});
await loop.close();
latencies.sort((a, b) => a - b);
const pct = (p) => `${(latencies[Math.floor(p * (latencies.length - 1))] * 1000).toFixed(0)} µs`;
console.log(
  `client: ${CONNECTIONS} connections for ${SECONDS} s: ${latencies.length.toLocaleString('en')} round trips ` +
    `(${Math.round(latencies.length / SECONDS).toLocaleString('en')}/s), ${(bytes / 2 ** 20).toFixed(1)} MiB echoed, ` +
    `${wrong} wrong replies; latency p50 ${pct(0.5)}, p99 ${pct(0.99)}`,
);

server.kill('SIGTERM');
await new Promise((resolve) => server.on('exit', resolve));
process.stdout.write(serverOut.slice(serverOut.indexOf('wasmloop stats')));
if (wrong > 0) process.exit(1);
