// TLS echo over loopback: wasmloop's TLS (node:tls over the loop's
// transports) against Node's own `tls` server and Python's asyncio and
// uvloop with `ssl`, all driven by one C client (bench/tls/tls-echo-client.c,
// OpenSSL and epoll), side by side in one run.
//
//   node bench/tls/run.mjs [--seconds 2] [--runs 3] [--results FILE]
//
// Every server is validated first (a short run in which every echoed byte
// is checked), then each configuration runs every server RUNS times,
// alternating, all servers up for the whole configuration. Every server
// uses the same certificate (EC P-256, made with `openssl` for the run)
// and the client negotiates TLS 1.3. With --results the report replaces
// the "TLS echo" section of that file (bench/results-section.mjs).
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { certificates } from '../../test/tls-certs.mjs';
import { putSection } from '../results-section.mjs';
import { TLS_ECHO_CLIENT, buildTlsEchoClient, runEchoClient } from '../tcp/clients.mjs';
import { processCpu, startServer } from '../tcp/proc.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};
const SECONDS = Number(option('--seconds', 2));
const RUNS = Number(option('--runs', 3));
const RESULTS = option('--results', null);

const CONFIGS = [
  { connections: 1, bytes: 64 },
  { connections: 50, bytes: 64 },
  { connections: 1, bytes: 16 * 1024 },
  { connections: 50, bytes: 16 * 1024 },
];

const certs = certificates();
const KEY = certs.server.keyFile;
const CERT = certs.server.certFile;
const node = process.execPath;
const echo = `${here}wasmloop-tls-echo.mjs`;

/** Each contender: its command for a port. */
const SERVERS = {
  'wasmloop selector, streams': (port) => [node, [echo, 'selector', port, KEY, CERT, 'streams']],
  'wasmloop selector, protocol': (port) => [node, [echo, 'selector', port, KEY, CERT, 'protocol']],
  'wasmloop completion, protocol': (port) => [node, [echo, 'completion', port, KEY, CERT, 'protocol']],
  'node tls': (port) => [node, [`${here}node-tls-echo.mjs`, port, KEY, CERT]],
  'uvloop + ssl': (port) => ['python3', [`${here}asyncio-tls-echo.py`, 'uvloop', port, KEY, CERT]],
  'asyncio + ssl': (port) => ['python3', [`${here}asyncio-tls-echo.py`, 'asyncio', port, KEY, CERT]],
};
const NODE_TLS = 'node tls';
const UVLOOP = 'uvloop + ssl';

/** Runs the client against `port`; its result, checked (every byte echoed exactly). */
function client(port, { connections, bytes }, seconds) {
  const argv = ['127.0.0.1', String(port), String(connections), String(bytes), String(seconds), certs.ca.certFile];
  return runEchoClient(TLS_ECHO_CLIENT, argv);
}

/** One timed run: the client's result with the server's CPU time per round trip. */
async function measured(server, config, seconds) {
  const before = processCpu(server.child.pid);
  const result = await client(server.port, config, seconds);
  const after = processCpu(server.child.pid);
  if (before !== null && after !== null)
    result.serverUs = (after.user + after.sys - before.user - before.sys) / result.rounds;
  return result;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x, digits = 0) =>
  x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function versions() {
  const python = (code) => execFileSync('python3', ['-c', code], { encoding: 'utf8' }).trim();
  return [
    `Node ${process.version} (OpenSSL ${process.versions.openssl})`,
    `Python ${python('import platform; print(platform.python_version())')} (${python('import ssl; print(ssl.OPENSSL_VERSION)')}), uvloop ${python('import uvloop; print(uvloop.__version__)')}`,
    `the client: ${execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim()}`,
  ];
}

function report(rows, started, load, cipher) {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const short = SECONDS < 2 || RUNS < 3;
  const lines = [
    `(\`make bench-tls\`, ${started.toISOString().slice(0, 10)})`,
    '',
    `Machine: ${cpu}, ${os.cpus().length} cores, ${fmt(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}; load average ${load.map((x) => fmt(x, 2)).join(', ')} (1, 5, 15 min) at the start`,
    `Date: ${started.toISOString()}`,
    ...(short
      ? [
          '**A short run**, which shows that the benchmark works; its figures are not the ones to quote (`make bench-tls` with its defaults, on a quiet machine, gives those).',
        ]
      : []),
    `Command: \`node bench/tls/run.mjs ${args.join(' ')}\`: ${RUNS} alternating runs of ${SECONDS} s per server and configuration after a validated warm-up, all servers up throughout, servers and client sharing the cores.`,
    `Versions: ${versions().join('; ')}.`,
    `Client: \`bench/tls/tls-echo-client.c\` (C, OpenSSL, epoll), ping-pong: each connection sends a message and waits for all of it to come back, checked byte for byte; handshakes (TLS 1.3, ${cipher}, the certificate verified) happen before the clock starts. Servers (bench/tls/): wasmloop's \`createServer({ tls })\` (streams: \`for await\` and awaited writes) and \`createProtocolServer({ tls })\` (protocol: \`dataReceived\` -> \`write\`), both node:tls over the loop's transports; Node's own \`tls.createServer\` (TLS on the libuv stream, in C++); asyncio and uvloop \`create_server(ssl=)\` with protocols. Server CPU is the server process's CPU time (all threads, /proc) per round trip.`,
  ];
  for (const row of rows) {
    const size = row.bytes >= 1024 ? `${row.bytes / 1024} KiB` : `${row.bytes}-byte`;
    lines.push('', `### ${row.connections} connection${row.connections > 1 ? 's' : ''}, ${size} messages`, '');
    lines.push(
      '| server | round trips/s (median) | spread (min–max) | vs node tls | vs uvloop | p50 µs | p99 µs | server CPU µs/round trip |',
    );
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    const ref = row.servers[NODE_TLS].roundTrips;
    const uv = row.servers[UVLOOP].roundTrips;
    for (const [name, s] of Object.entries(row.servers)) {
      const cpuUs = s.serverUs === null ? '–' : fmt(s.serverUs, 1);
      lines.push(
        `| ${name} | ${fmt(s.roundTrips)} | ${fmt(s.min)}–${fmt(s.max)} | ${fmt(s.roundTrips / ref, 2)}x | ${fmt(s.roundTrips / uv, 2)}x | ${s.p50us} | ${s.p99us} | ${cpuUs} |`,
      );
    }
  }
  return lines.join('\n');
}

async function main() {
  const started = new Date();
  const load = os.loadavg();
  buildTlsEchoClient();
  const names = Object.keys(SERVERS);
  const rows = [];
  let cipher = '';
  let port = 21_500 + Math.floor(Math.random() * 1000);
  for (const config of CONFIGS) {
    const servers = {};
    for (const name of names)
      servers[name] = { port: ++port, child: await startServer(name, ...SERVERS[name](String(port))), runs: [] };
    for (const name of names) cipher = (await client(servers[name].port, config, 0.5)).cipher; // validate and warm up
    for (let r = 0; r < RUNS; r++) {
      for (let j = 0; j < names.length; j++) {
        const name = names[(r + j) % names.length];
        servers[name].runs.push(await measured(servers[name], config, SECONDS));
      }
    }
    for (const name of names) servers[name].child.kill('SIGKILL');
    const row = { ...config, servers: {} };
    for (const name of names) {
      const runs = servers[name].runs;
      const rts = runs.map((x) => x.roundTripsPerSecond);
      row.servers[name] = {
        roundTrips: median(rts),
        min: Math.min(...rts),
        max: Math.max(...rts),
        p50us: median(runs.map((x) => x.p50us)),
        p99us: median(runs.map((x) => x.p99us)),
        serverUs: runs[0].serverUs === undefined ? null : median(runs.map((x) => x.serverUs)),
      };
    }
    rows.push(row);
    console.error(`tls ${config.connections}x${config.bytes}: done`);
  }
  const body = report(rows, started, load, cipher);
  if (RESULTS !== null) putSection(RESULTS, 'TLS echo', body);
  else process.stdout.write(`${body}\n`);
}

await main();
