// Where the loop's CPU goes on Deno and Bun: the TCP echo at 50 connections
// x 64 B against servers that each add one part of what wasmloop does to
// the host's own echo, side by side, so that the differences of their CPU
// per round trip price the parts (docs/design.md, "Where the time goes").
// Writes the "Deno and Bun: where the loop's CPU goes" section of
// bench/RESULTS.md.
//
//   node bench/tcp/hosts-breakdown.mjs [--seconds S] [--runs N] [--hosts Deno,Bun] [--results FILE]
//
// CPU per round trip moves far less than round trips per second on a
// shared machine; read that column. Servers run one at a time, in turn.
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
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
const RUNS = Number(option('--runs', 9));
const RESULTS = option('--results', null);
const ONLY = option('--hosts', null)?.split(',') ?? null;
const DENO = `${root}node_modules/.bin/deno`;
const BUN = `${root}node_modules/.bin/bun`;
const WASMLOOP = `${here}wasmloop-protocol-echo.mjs`;

const HOSTS = {
  Deno: {
    version: () => execFileSync(DENO, ['--version'], { encoding: 'utf8' }).split('\n')[0],
    servers: {
      'Deno.listen echo': (port) => [DENO, ['run', '-A', `${here}deno-echo.mjs`, port]],
      '... each read copied out to an ArrayBuffer of its own': (port) => [
        DENO,
        ['run', '-A', `${here}deno-echo.mjs`, port, 'copy'],
      ],
      'the Deno backend alone (no loop)': (port) => [DENO, ['run', '-A', `${here}backend-echo.mjs`, port]],
      'wasmloop completion (Deno.listen)': (port) => [DENO, ['run', '-A', WASMLOOP, 'completion', port]],
    },
  },
  Bun: {
    version: () => `bun ${execFileSync(BUN, ['--version'], { encoding: 'utf8' }).trim()}`,
    servers: {
      'Bun.listen echo': (port) => [BUN, [`${here}bun-echo.mjs`, port]],
      '... writes of a host turn sent from one setImmediate': (port) => [BUN, [`${here}bun-echo.mjs`, port, 'batched']],
      'the Bun backend alone (no loop)': (port) => [BUN, [`${here}backend-echo.mjs`, port]],
      'wasmloop completion (Bun.listen)': (port) => [BUN, [WASMLOOP, 'completion', port]],
    },
  },
};

/** One run of the client: round trips/s and the server's user and system CPU per round trip (us). */
async function client(port, pid, seconds) {
  const before = processCpu(pid);
  const result = await runEchoClient(ECHO_CLIENT, ['127.0.0.1', String(port), '50', '64', String(seconds)]);
  const after = processCpu(pid);
  return {
    rate: result.roundTripsPerSecond,
    user: (after.user - before.user) / result.rounds,
    sys: (after.sys - before.sys) / result.rounds,
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  buildEchoClient();
  let port = 22_500 + Math.floor(Math.random() * 1000);
  const lines = [];
  const load = [];
  for (const [host, { version, servers }] of Object.entries(HOSTS)) {
    if (ONLY !== null && !ONLY.includes(host)) continue;
    const names = Object.keys(servers);
    const running = {};
    for (const name of names) {
      const p = ++port;
      const [command, argv] = servers[name](String(p));
      running[name] = { port: p, child: await startServer(argv.join(' '), command, argv, 20_000), runs: [] };
    }
    for (const name of names) await client(running[name].port, running[name].child.pid, 0.5); // validate and warm up
    for (let r = 0; r < RUNS; r++) {
      load.push(loadavg()[0]);
      for (let j = 0; j < names.length; j++) {
        const name = names[(r + j) % names.length];
        running[name].runs.push(await client(running[name].port, running[name].child.pid, SECONDS));
      }
    }
    for (const name of names) running[name].child.kill('SIGKILL');
    lines.push(`\n### ${host} (${version()})\n`);
    lines.push('| server | server CPU µs/round trip (median) | user | system | min–max | round trips/s (median) |');
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const name of names) {
      const runs = running[name].runs;
      const totals = runs.map((x) => x.user + x.sys);
      const m = (k) => median(runs.map((x) => x[k])).toFixed(2);
      lines.push(
        `| ${name} | ${median(totals).toFixed(2)} | ${m('user')} | ${m('sys')} | ${Math.min(...totals).toFixed(2)}–${Math.max(...totals).toFixed(2)} | ${(median(runs.map((x) => x.rate)) / 1000).toFixed(1)}k |`,
      );
    }
    console.error(`${host}: done`);
  }
  const body = `(\`node bench/tcp/hosts-breakdown.mjs\`, ${new Date().toISOString().slice(0, 10)})

Machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, load average ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)} during the runs.
The C epoll client at 50 connections x 64 B against four servers per host, each adding one part of what wasmloop does to the host's own echo; ${RUNS} alternating runs of ${SECONDS} s each after a validated warm-up. Server CPU is user + system time (/proc), per round trip: the differences between rows price the parts (docs/design.md, "Where the time goes").
${lines.join('\n')}`;
  if (RESULTS !== null) putSection(RESULTS, "Deno and Bun: where the loop's CPU goes", body);
  console.log(body);
}

await main();
