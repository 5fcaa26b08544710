// TCP echo on Deno and Bun: wasmloop's completion backend on the host's own
// sockets against the same loop on the host's node:net, the host's own
// echo server (Deno.listen, Bun.listen) and the host's node:net echo, all
// driven by one C epoll client (bench/tcp/echo-client.c), side by side in
// one run per host. Writes the "Deno and Bun" section of bench/RESULTS.md.
//
//   node bench/tcp/hosts.mjs [--seconds S] [--runs N] [--hosts Deno,Bun] [--results FILE]
//
// wasmloop serves with the protocol API (bench/tcp/wasmloop-protocol-echo.mjs).
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { putSection } from '../results-section.mjs';
import { ECHO_CLIENT, buildEchoClient, runEchoClient } from './clients.mjs';
import { processCpu, startServer } from './proc.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = `${here}../../`;
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};
const SECONDS = Number(option('--seconds', 2));
const RUNS = Number(option('--runs', 5));
const RESULTS = option('--results', null);
const ONLY = option('--hosts', null)?.split(',') ?? null;
const CONFIGS = [
  { connections: 1, bytes: 64 },
  { connections: 50, bytes: 64 },
];
const NET = `${root}ts-host/dist/backends/completion.js:createNetCompletionBackend`;
const DENO = `${root}node_modules/.bin/deno`;
const BUN = `${root}node_modules/.bin/bun`;

const HOSTS = {
  Deno: {
    version: () => execFileSync(DENO, ['--version'], { encoding: 'utf8' }).split('\n')[0],
    servers: {
      'wasmloop completion (Deno.listen)': (port) => [
        DENO,
        ['run', '-A', `${here}wasmloop-protocol-echo.mjs`, 'completion', port],
      ],
      'wasmloop completion (node:net)': (port) => [DENO, ['run', '-A', `${here}wasmloop-protocol-echo.mjs`, NET, port]],
      'Deno.listen echo': (port) => [DENO, ['run', '-A', `${here}deno-echo.mjs`, port]],
      'node:net echo on Deno': (port) => [DENO, ['run', '-A', `${here}node-echo.mjs`, port]],
    },
  },
  Bun: {
    version: () => `bun ${execFileSync(BUN, ['--version'], { encoding: 'utf8' }).trim()}`,
    servers: {
      'wasmloop completion (Bun.listen)': (port) => [BUN, [`${here}wasmloop-protocol-echo.mjs`, 'completion', port]],
      'wasmloop completion (node:net)': (port) => [BUN, [`${here}wasmloop-protocol-echo.mjs`, NET, port]],
      'Bun.listen echo': (port) => [BUN, [`${here}bun-echo.mjs`, port]],
      'node:net echo on Bun': (port) => [BUN, [`${here}node-echo.mjs`, port]],
    },
  },
};

/** One run of the client against `port`: its checked result, and the server's CPU per round trip. */
async function client(port, pid, { connections, bytes }, seconds) {
  const before = processCpu(pid);
  const argv = ['127.0.0.1', String(port), String(connections), String(bytes), String(seconds)];
  const result = await runEchoClient(ECHO_CLIENT, argv);
  const after = processCpu(pid);
  if (before !== null && after !== null)
    result.serverCpuUs = (after.user - before.user + after.sys - before.sys) / result.rounds;
  return result;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const k = (n) => `${(n / 1000).toFixed(1)}k`;

async function main() {
  buildEchoClient();
  let port = 21_500 + Math.floor(Math.random() * 1000);
  const lines = [];
  for (const [host, { version, servers }] of Object.entries(HOSTS)) {
    if (ONLY !== null && !ONLY.includes(host)) continue;
    lines.push(`\n### ${host} (${version()})\n`);
    for (const config of CONFIGS) {
      const names = Object.keys(servers);
      const running = {};
      for (const name of names) {
        const p = ++port;
        const [command, argv] = servers[name](String(p));
        running[name] = { port: p, child: await startServer(argv.join(' '), command, argv, 20_000), runs: [] };
      }
      for (const name of names) await client(running[name].port, running[name].child.pid, config, 0.5); // validate and warm up
      for (let r = 0; r < RUNS; r++) {
        for (let j = 0; j < names.length; j++) {
          const name = names[(r + j) % names.length];
          running[name].runs.push(await client(running[name].port, running[name].child.pid, config, SECONDS));
        }
      }
      for (const name of names) running[name].child.kill('SIGKILL');
      const own = median(running[names[2]].runs.map((x) => x.roundTripsPerSecond));
      lines.push(
        `${config.connections} connection${config.connections > 1 ? 's' : ''}, ${config.bytes}-byte messages:\n`,
      );
      lines.push(
        "| server | round trips/s (median) | spread (min–max) | vs the host's own echo | p50 µs | server CPU µs/round trip |",
      );
      lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
      for (const name of names) {
        const runs = running[name].runs;
        const rts = runs.map((x) => x.roundTripsPerSecond);
        const m = median(rts);
        const cpu = runs.every((x) => x.serverCpuUs !== undefined)
          ? median(runs.map((x) => x.serverCpuUs)).toFixed(1)
          : 'n/a';
        lines.push(
          `| ${name} | ${k(m)} | ${k(Math.min(...rts))}–${k(Math.max(...rts))} | ${(m / own).toFixed(2)} | ${median(runs.map((x) => x.p50us)).toFixed(0)} | ${cpu} |`,
        );
      }
      lines.push('');
      console.error(`${host} ${config.connections}x${config.bytes}: done`);
    }
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const body = `(\`node bench/tcp/hosts.mjs\`, ${new Date().toISOString().slice(0, 10)})

Machine: ${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, client and server sharing them.
One C epoll client (\`bench/tcp/echo-client.c\`, ping-pong, every byte checked) against four servers per host, all up at once, ${RUNS} alternating runs of ${SECONDS} s each after a validated warm-up. wasmloop serves with the protocol API (\`bench/tcp/wasmloop-protocol-echo.mjs\`) on \`completion\`, which is the host's own sockets there (\`completion-deno.ts\`, \`completion-bun.ts\`), and on the host's \`node:net\` (\`createNetCompletionBackend\`); the host's own echo is \`bench/tcp/deno-echo.mjs\` or \`bench/tcp/bun-echo.mjs\`, its \`node:net\` echo \`bench/tcp/node-echo.mjs\`. Server CPU is user + system time over the runs (/proc), per round trip.
${lines.join('\n')}`;
  if (RESULTS !== null) putSection(RESULTS, "Deno and Bun: each host's own I/O", body);
  console.log(body);
}

await main();
