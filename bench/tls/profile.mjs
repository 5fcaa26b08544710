// Where a wasmloop TLS server's time goes: runs bench/tls/wasmloop-tls-echo.mjs
// under `node --cpu-prof`, loads it with the benchmark's C client, and sums
// the profile's self time by layer (the functions' files), top functions too.
//
//   node bench/tls/profile.mjs [--backend selector] [--api protocol] [--connections 1] [--bytes 16384] [--seconds 5]
//
// The layers, from the socket up: the loop's transport (io/protocols.ts and
// the backend), the Duplex over it (io/transport-duplex.ts), Node's streams
// (internal/streams), Node's TLS in JS (_tls_wrap, JSStreamSocket) and in
// C++ (OpenSSL: the profile's "(program)" and native frames), then the TLS
// transport or connection above (io/tls-*.ts) and the program.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { certificates } from '../../test/tls-certs.mjs';
import { TLS_ECHO_CLIENT, buildTlsEchoClient } from '../tcp/clients.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};
const BACKEND = option('--backend', 'selector');
const API = option('--api', 'protocol');
const CONNECTIONS = option('--connections', '1');
const BYTES = option('--bytes', '16384');
const SECONDS = option('--seconds', '5');

/** The layer a profile node's function belongs to, by its file. */
function layer(frame) {
  const url = frame.url;
  if (url === '')
    return frame.functionName === '(garbage collector)' ? 'GC' : `native: ${frame.functionName || '(anonymous)'}`;
  if (url.includes('/io/transport-duplex.')) return 'wasmloop: TransportDuplex (transport as a Duplex)';
  if (url.includes('/io/connection-duplex.')) return 'wasmloop: ConnectionDuplex';
  if (/\/io\/tls[-.]/.test(url)) return 'wasmloop: TLS transport/connection (io/tls*.ts)';
  if (url.includes('/io/protocols.') || url.includes('/io/checked.') || url.includes('/net/'))
    return 'wasmloop: loop transport (io/protocols.ts, with the read and write calls into the addon)';
  if (url.includes('/io/')) return 'wasmloop: streams (io/)';
  if (url.includes('/backends/')) return 'wasmloop: backend';
  if (url.includes('ts-host/dist/')) return 'wasmloop: loop (driver, callbacks, core calls)';
  if (url.startsWith('wasm://')) return 'wasmloop: core (Wasm)';
  if (url.includes('_tls_wrap') || url.includes('internal/js_stream_socket') || url.includes('_tls_common'))
    return 'node: TLS in JS (_tls_wrap, JSStreamSocket)';
  if (url.includes('internal/streams') || url.includes('node:stream'))
    return 'node: streams (Readable/Writable/Duplex)';
  if (url.includes('internal/stream_base_commons')) return 'node: stream_base_commons';
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/').slice(0, 2).join('/')}`;
  if (url.includes('bench/tls/')) return 'the echo program';
  return url;
}

function summarize(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0));
  }
  const layers = new Map();
  const functions = new Map();
  let total = 0;
  for (const [id, us] of self) {
    const frame = byId.get(id).callFrame;
    if (frame.functionName === '(idle)') continue;
    total += us;
    const name = layer(frame);
    layers.set(name, (layers.get(name) ?? 0) + us);
    const fn = `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-1)[0]}:${frame.lineNumber + 1}`;
    functions.set(fn, (functions.get(fn) ?? 0) + us);
  }
  const pct = (us) => `${((100 * us) / total).toFixed(1)}%`;
  const rows = (map, n) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `| ${k} | ${(us / 1000).toFixed(0)} | ${pct(us)} |`);
  return [
    `Busy ${(total / 1000).toFixed(0)} ms (idle excluded).`,
    '',
    '| layer | self ms | share |',
    '| --- | ---: | ---: |',
    ...rows(layers, 20),
    '',
    '| function | self ms | share |',
    '| --- | ---: | ---: |',
    ...rows(functions, 25),
  ].join('\n');
}

async function main() {
  buildTlsEchoClient();
  const certs = certificates();
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-tls-prof-'));
  const port = String(23_000 + Math.floor(Math.random() * 1000));
  const server = spawn(
    process.execPath,
    [
      '--cpu-prof',
      '--cpu-prof-dir',
      dir,
      `${here}wasmloop-tls-echo.mjs`,
      BACKEND,
      port,
      certs.server.keyFile,
      certs.server.certFile,
      API,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => String(d).includes('ready') && resolve());
    server.on('exit', (code) => reject(new Error(`the server exited with ${code}`)));
  });
  const result = execFileSync(TLS_ECHO_CLIENT, ['127.0.0.1', port, CONNECTIONS, BYTES, SECONDS, certs.ca.certFile], {
    encoding: 'utf8',
  });
  const exited = new Promise((resolve) => server.on('exit', resolve));
  server.kill('SIGTERM');
  await exited;
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  rmSync(dir, { recursive: true, force: true });
  console.log(`${BACKEND}, ${API}, ${CONNECTIONS} x ${BYTES} B for ${SECONDS} s: ${result.trim()}\n`);
  console.log(summarize(profile));
}

await main();
