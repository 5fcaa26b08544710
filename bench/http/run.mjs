// The HTTP server benchmark: wasmloop's serve() on each backend with a
// socket, against node:http, uvicorn (uvloop and httptools), Deno.serve and
// Bun.serve, all loaded by one wrk (Debian's) side by side in one run.
//
//   node bench/http/run.mjs [--seconds 5] [--runs 3] [--idle 10000] [--only a,b] [--pin] [--results FILE]
//
// Every server is validated first (status and body of both routes, from
// Node's own fetch), then warmed up; then each load runs every server RUNS
// times, alternating, all servers up for the whole phase. Per run: wrk's
// requests/s and its p50 and p99 (--latency), the server's CPU time per
// request from /proc (all its threads), and wrk's error counts (a run with
// a non-2xx answer or a socket error fails). Then, one server at a time in
// a fresh process, the memory of idle keep-alive connections: IDLE
// connections each answered once (idle-client.mjs), the server's resident
// memory before and after. With --results the report replaces the "HTTP
// server" section of that file (bench/results-section.mjs).
//
// --pin puts the servers on CPU 1 and wrk (and the idle client) on CPU 0.
import { execFileSync, spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { putSection } from '../results-section.mjs';
import { processCpu, residentBytes } from '../tcp/proc.mjs';
import { expectedBody } from './servers/bodies.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};
const SECONDS = Number(option('--seconds', 5));
const RUNS = Number(option('--runs', 3));
const IDLE = Number(option('--idle', 10_000));
const ONLY = option('--only', null)?.split(',') ?? null;
const PIN = args.includes('--pin');
const RESULTS = option('--results', null);
const UVICORN_PATH = process.env.UVICORN_PATH ?? '';

const servers = `${here}servers/`;
const NET_COMPLETION = `${root}ts-host/dist/backends/completion.js:createNetCompletionBackend`;
const node = process.execPath;
const WASMLOOP = [
  'wasmloop serve(), selector',
  'wasmloop serve(), completion',
  'wasmloop serve(), completion on node:net',
];
const NODE = 'node:http';
/** Node's sockets with a fixed reply and no HTTP layer: what any server on node:net spends at least. */
const NET_FLOOR = 'node:net, fixed reply (the floor on node:net)';
const UVICORN = 'uvicorn + uvloop + httptools';

/** Each contender: its command for a port. */
const SERVERS = {
  [WASMLOOP[0]]: (port) => [node, [`${servers}wasmloop.mjs`, 'selector', port]],
  [WASMLOOP[1]]: (port) => [node, [`${servers}wasmloop.mjs`, 'completion', port]],
  [WASMLOOP[2]]: (port) => [node, [`${servers}wasmloop.mjs`, NET_COMPLETION, port]],
  [NODE]: (port) => [node, [`${servers}node-http.mjs`, port]],
  [NET_FLOOR]: (port) => [node, [`${servers}node-net-floor.mjs`, port]],
  [UVICORN]: (port) => [
    'python3',
    [
      '-m',
      'uvicorn',
      'asgi_app:app',
      '--app-dir',
      servers,
      '--host',
      '127.0.0.1',
      '--port',
      port,
      '--loop',
      'uvloop',
      '--http',
      'httptools',
      '--no-access-log',
      '--log-level',
      'warning',
      '--lifespan',
      'off',
      '--timeout-keep-alive',
      '120',
      '--backlog',
      '4096',
    ],
  ],
  'Deno.serve': (port) => [`${root}node_modules/.bin/deno`, ['run', '--allow-net', `${servers}deno.mjs`, port]],
  'Bun.serve': (port) => [`${root}node_modules/.bin/bun`, [`${servers}bun.mjs`, port]],
};

const LOADS = [
  { name: 'Hello world, 50 connections', path: '/', connections: 50 },
  { name: 'Hello world, 1 connection', path: '/', connections: 1 },
  { name: '64 KiB response, 50 connections', path: '/64k', connections: 50 },
];

const names = Object.keys(SERVERS).filter((name) => ONLY === null || ONLY.some((o) => name.includes(o)));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** `command args...` with the open-files limit raised to the hard limit (10,000 connections need it), pinned with --pin. */
function wrapped(command, argv, cpu) {
  const inner = ['sh', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"', command, ...argv]];
  return PIN ? ['taskset', ['-c', String(cpu), inner[0], ...inner[1]]] : inner;
}

// ------------------------------------------------------------- servers

/** The servers' environment: uvicorn and its loop from UVICORN_PATH (make installs them there). */
function serverEnv() {
  return { ...process.env, PYTHONPATH: [UVICORN_PATH, process.env.PYTHONPATH].filter(Boolean).join(':') };
}

/** Starts `name` on `port`; resolves once it answers both routes correctly (the validation). */
async function start(name, port) {
  const [command, argv] = SERVERS[name](String(port));
  const [cmd, full] = wrapped(command, argv, 1);
  const child = spawn(cmd, full, { stdio: ['ignore', 'ignore', 'inherit'], env: serverEnv() });
  let exited = null;
  child.on('exit', (code) => {
    exited = code;
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited !== null) throw new Error(`${name} exited with ${exited} before it answered`);
    try {
      await validate(port);
      return { name, port, child };
    } catch (error) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${name} did not answer correctly within 30 s: ${error.message}`);
      }
      await sleep(200);
    }
  }
}

/** Both routes: status 200 and exactly the expected bytes. */
async function validate(port) {
  for (const path of ['/', '/64k']) {
    const response = await fetch(`http://127.0.0.1:${port}${path}`);
    const body = new Uint8Array(await response.arrayBuffer());
    const expected = expectedBody(path);
    if (response.status !== 200) throw new Error(`${path}: status ${response.status}`);
    if (body.length !== expected.length || !body.every((b, i) => b === expected[i])) {
      throw new Error(`${path}: a body of ${body.length} bytes that is not the expected ${expected.length}`);
    }
  }
}

function stop(server) {
  server.child.kill('SIGKILL');
}

// ---------------------------------------------------------------- load

/** One wrk run; its figures, or an error if any answer was not a 2xx or any socket failed. */
function wrk(port, load, seconds) {
  const wrkArgs = [
    '-t1',
    `-c${load.connections}`,
    `-d${seconds}s`,
    '--latency',
    `http://127.0.0.1:${port}${load.path}`,
  ];
  const [cmd, full] = PIN ? ['taskset', ['-c', '0', 'wrk', ...wrkArgs]] : ['wrk', wrkArgs];
  const out = execFileSync(cmd, full, { encoding: 'utf8' });
  const ms = (text) => {
    const [, value, unit] = /([\d.]+)(us|ms|s)/.exec(text);
    return Number(value) * { us: 1e-3, ms: 1, s: 1e3 }[unit];
  };
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = socketErrors === null ? 0 : socketErrors.slice(1).reduce((a, b) => a + Number(b), 0);
  if (bad !== null || requests === 0)
    throw new Error(`port ${port}: ${bad?.[1] ?? 0} non-2xx answers, ${requests} requests\n${out}`);
  return {
    requests,
    errors,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]),
    p50: ms(/\n\s+50%\s+(\S+)/.exec(out)[1]),
    p99: ms(/\n\s+99%\s+(\S+)/.exec(out)[1]),
  };
}

async function measure(server, load) {
  const before = processCpu(server.child.pid);
  const result = wrk(server.port, load, SECONDS);
  const after = processCpu(server.child.pid);
  if (before !== null && after !== null) {
    result.userUs = (after.user - before.user) / result.requests;
    result.sysUs = (after.sys - before.sys) / result.requests;
  }
  return result;
}

// -------------------------------------------------------------- memory

/** The server's memory with IDLE keep-alive connections open, each answered once. */
async function idleMemory(name, port) {
  const server = await start(name, port);
  try {
    await sleep(1000);
    const before = residentBytes(server.child.pid);
    const [cmd, full] = wrapped(node, [`${here}idle-client.mjs`, String(port), String(IDLE)], 0);
    const client = spawn(cmd, full, { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = [];
    let wake = null;
    let buffered = '';
    client.stdout.on('data', (data) => {
      buffered += data;
      let at = buffered.indexOf('\n');
      while (at !== -1) {
        lines.push(JSON.parse(buffered.slice(0, at)));
        buffered = buffered.slice(at + 1);
        at = buffered.indexOf('\n');
        wake?.();
      }
    });
    const line = async (n) => {
      while (lines.length < n) await new Promise((resolve) => (wake = resolve));
      return lines[n - 1];
    };
    const opened = await line(1);
    await sleep(1000);
    const after = residentBytes(server.child.pid);
    client.stdin.end();
    const { closedAfterAnswer } = await line(2);
    return { ...opened, closedAfterAnswer, before, after };
  } finally {
    stop(server);
  }
}

// -------------------------------------------------------------- report

const fmt = (x, digits = 1) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(digits));

/** What `command argv` prints that matches `pattern` (wrk -v prints its version and exits with 1). */
function version(command, argv, pattern = /[\d.]+/) {
  let out;
  try {
    out = execFileSync(command, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: serverEnv() });
  } catch (error) {
    out = `${error.stdout ?? ''}`;
  }
  return pattern.exec(out)?.[0] ?? '?';
}

/** The machine, and its load average when the benchmark began (other work on it makes the figures noisy). */
function machine(load) {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB, ${os.type()} ${os.release()}; load average ${load.map((x) => fmt(x, 2)).join(', ')} (1, 5, 15 min) at the start`;
}

function loadTable(load, rows) {
  const nodeRow = rows[NODE];
  const uvRow = rows[UVICORN];
  const lines = Object.entries(rows).map(([name, r]) => {
    const vsNode = nodeRow ? `${fmt(r.rps / nodeRow.rps, 2)}x` : 'n/a';
    const p99VsNode = nodeRow ? `${fmt(r.p99 / nodeRow.p99, 2)}x` : 'n/a';
    const vsUv = uvRow ? `${fmt(r.rps / uvRow.rps, 2)}x` : 'n/a';
    const cpu = r.userUs === null ? 'n/a' : `${fmt(r.userUs + r.sysUs)} (${fmt(r.userUs)} + ${fmt(r.sysUs)})`;
    return `| ${name} | ${Math.round(r.rps).toLocaleString('en')} | ${Math.round(r.min).toLocaleString('en')}–${Math.round(r.max).toLocaleString('en')} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${cpu} | ${r.errors} | ${vsNode} | ${p99VsNode} | ${vsUv} |`;
  });
  return `### ${load.name} (\`GET ${load.path}\`)

| server | requests/s (median) | spread | p50 ms | p99 ms | server CPU µs/request (user + sys) | socket errors | vs node:http | p99 vs node:http | vs uvicorn |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${lines.join('\n')}`;
}

function targets(rows) {
  const nodeRow = rows[NODE];
  const uvRow = rows[UVICORN];
  const verdict = (ok) => (ok ? 'met' : '**not met**');
  return WASMLOOP.filter((name) => rows[name] !== undefined)
    .map((name) => {
      const r = rows[name];
      const parts = [];
      if (nodeRow) {
        const ratio = r.rps / nodeRow.rps;
        const p99 = r.p99 / nodeRow.p99;
        parts.push(`≥ 1.5x node:http's requests/s: ${verdict(ratio >= 1.5)} (${fmt(ratio, 2)}x)`);
        parts.push(`p99 no worse than node:http's: ${verdict(p99 <= 1)} (${fmt(p99, 2)}x)`);
      }
      if (uvRow) parts.push(`ahead of uvicorn + uvloop: ${verdict(r.rps > uvRow.rps)} (${fmt(r.rps / uvRow.rps, 2)}x)`);
      return `- ${name}: ${parts.join('; ')}`;
    })
    .concat(floorLine(rows))
    .join('\n');
}

/** Where the floor on node:net stands, against node:http and under serve() on node:net. */
function floorLine(rows) {
  const floor = rows[NET_FLOOR];
  const nodeRow = rows[NODE];
  const served = rows[WASMLOOP[2]];
  if (floor === undefined || nodeRow === undefined) return [];
  const cpu = (r) => (r.userUs === null ? null : r.userUs + r.sysUs);
  const over =
    served === undefined || cpu(served) === null || cpu(floor) === null
      ? ''
      : `; serve() on node:net spends ${fmt(cpu(served) - cpu(floor), 1)} µs of CPU a request over it (${fmt(cpu(served), 1)} against ${fmt(cpu(floor), 1)})`;
  return [`- ${NET_FLOOR}, no target: ${fmt(floor.rps / nodeRow.rps, 2)}x node:http's requests/s${over}`];
}

async function main() {
  const started = new Date();
  const loadAtStart = os.loadavg();
  let port = 20_500 + Math.floor(Math.random() * 1000);
  const results = Object.fromEntries(LOADS.map((load) => [load.name, Object.fromEntries(names.map((n) => [n, []]))]));
  const running = [];
  try {
    for (const name of names) running.push(await start(name, ++port));
    console.error(`http: ${running.length} servers validated`);
    for (const server of running) for (const load of LOADS) wrk(server.port, load, 1); // warm-up
    for (let r = 0; r < RUNS; r++) {
      for (const load of LOADS) {
        for (let j = 0; j < running.length; j++) {
          const server = running[(r + j) % running.length];
          results[load.name][server.name].push(await measure(server, load));
        }
      }
      console.error(`http: run ${r + 1} of ${RUNS} done`);
    }
  } finally {
    for (const server of running) stop(server);
  }
  const memory = {};
  for (const name of names) {
    memory[name] = await idleMemory(name, ++port);
    console.error(`http: ${name}: ${IDLE} idle connections measured`);
  }

  const summary = {};
  for (const load of LOADS) {
    summary[load.name] = {};
    for (const name of names) {
      const runs = results[load.name][name];
      const rps = runs.map((x) => x.rps);
      summary[load.name][name] = {
        rps: median(rps),
        min: Math.min(...rps),
        max: Math.max(...rps),
        p50: median(runs.map((x) => x.p50)),
        p99: median(runs.map((x) => x.p99)),
        userUs: runs[0].userUs === undefined ? null : median(runs.map((x) => x.userUs)),
        sysUs: runs[0].sysUs === undefined ? null : median(runs.map((x) => x.sysUs)),
        errors: runs.reduce((n, x) => n + x.errors, 0),
      };
    }
  }
  const memoryRows = Object.entries(memory).map(([name, m]) => {
    const mib = (b) => (b === null ? 'n/a' : fmt(b / 2 ** 20, 1));
    const per =
      m.before === null || m.after === null || m.answered === 0
        ? 'n/a'
        : fmt((m.after - m.before) / m.answered / 1024, 2);
    const problems = m.failed > 0 ? `${m.failed} failed (first: ${m.firstProblem})` : 'none';
    return `| ${name} | ${mib(m.before)} | ${mib(m.after)} | ${per} | ${m.answered.toLocaleString('en')} | ${problems} | ${m.closedAfterAnswer} |`;
  });
  const versions = [
    `Node ${process.version}`,
    `uvicorn ${version('python3', ['-c', 'import uvicorn, uvloop, httptools; print(uvicorn.__version__, "with uvloop", uvloop.__version__, "and httptools", httptools.__version__)'], /.+/)} on Python ${version('python3', ['--version'])}`,
    `Deno ${version(`${root}node_modules/.bin/deno`, ['--version'])}`,
    `Bun ${version(`${root}node_modules/.bin/bun`, ['--version'])}`,
    `wrk ${version('wrk', ['-v'], /[\d.]+[-\w.+]*/)}`,
  ];
  const hello = summary[LOADS[0].name];
  const short = RUNS < 3 || SECONDS < 5 || IDLE < 10_000;
  const body = `(\`make bench-http\`, ${started.toISOString().slice(0, 10)})

Machine: ${machine(loadAtStart)}
Date: ${started.toISOString()}
${short ? '**A short run**, which shows that the benchmark works; its figures are not the ones to quote (`make bench-http` with its defaults, on a quiet machine, gives those).\n' : ''}Command: \`node bench/http/run.mjs ${args.join(' ')}\`: ${RUNS} alternating runs of ${SECONDS} s per server and load after a validated warm-up, all servers up throughout${PIN ? ', servers on CPU 1 and wrk on CPU 0' : ', servers and wrk sharing the cores'}.
Versions: ${versions.join('; ')}.
Servers (bench/http/servers/): wasmloop's \`serve()\` with a fetch handler on each backend with a socket; \`node:http\`; Node's \`net\` writing a prepared response per request head with no HTTP layer (\`node-net-floor.mjs\`: the floor under any server on node:net, validated as the others); uvicorn with \`--loop uvloop --http httptools\`, no access log, an ASGI app; \`Deno.serve\`; \`Bun.serve\`. Each answers \`GET /\` with \`Hello, World!\` (text/plain) and \`GET /64k\` with 64 KiB, keeps idle connections two minutes, and runs one process. Before timing, each was validated: both routes' status and exact bytes, from Node's fetch; a wrk run with a non-2xx answer fails the benchmark.
Load: wrk, one thread, keep-alive. Server CPU is the server process's CPU time (all threads, from /proc) over the requests wrk completed; its spread across runs is in the requests/s spread.

${LOADS.map((load) => loadTable(load, summary[load.name])).join('\n\n')}

### Memory per idle keep-alive connection (${IDLE.toLocaleString('en')} connections)

Each server in a fresh process: its resident memory a second after validation, then with ${IDLE.toLocaleString('en')} connections open, each having had one \`GET /\` answered (status and body checked; bench/http/idle-client.mjs, ${'200'} connecting at a time), a second after the last answer.

| server | RSS before MiB | RSS with connections MiB | KiB per connection | connections answered | failures | closed by the server during the measurement |
| --- | ---: | ---: | ---: | ---: | --- | ---: |
${memoryRows.join('\n')}

### Targets (hello world, 50 connections)

${targets(hello)}
`;
  console.log(`## HTTP server ${body}`);
  if (RESULTS !== null) putSection(RESULTS, 'HTTP server', body);
}

await main();
