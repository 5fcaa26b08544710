// wasmloop's serve() against node:http, hello world, under wrk: requests/s,
// p99 latency and the server's CPU per request (user and system, from
// /proc), alternating the servers run by run. Linux, with wrk installed.
//
//   node bench/http/compare.mjs [--runs 3] [--seconds 5] [--connections 50] [--backend selector] [--pin]
//
// --pin runs the servers on CPU 1 and wrk on CPU 0 (taskset), so neither
// migrates between cores during a run.
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { processCpu } from '../tcp/proc.mjs';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    backend: { type: 'string', default: 'selector' },
    pin: { type: 'boolean', default: false },
  },
});
const hello = fileURLToPath(new URL('./hello.mjs', import.meta.url));

/** Starts a server; resolves once it printed its line. */
function start(args, port) {
  const command = values.pin
    ? ['taskset', ['-c', '1', process.execPath, hello, ...args, String(port)]]
    : [process.execPath, [hello, ...args, String(port)]];
  const child = spawn(command[0], command[1], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

function wrk(port) {
  const wrkArgs = ['-t1', `-c${values.connections}`, `-d${values.seconds}s`, '--latency', `http://127.0.0.1:${port}/`];
  const out = values.pin
    ? execFileSync('taskset', ['-c', '0', 'wrk', ...wrkArgs], { encoding: 'utf8' })
    : execFileSync('wrk', wrkArgs, { encoding: 'utf8' });
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const [, value, unit] = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99 = Number(value) * { us: 1e-3, ms: 1, s: 1e3 }[unit];
  return { requests, rps, p99 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const servers = {
  'node:http': await start(['node'], 18081),
  [`wasmloop (${values.backend})`]: await start(['wasmloop', values.backend], 18082),
};
const ports = { 'node:http': 18081, [`wasmloop (${values.backend})`]: 18082 };
const results = Object.fromEntries(Object.keys(servers).map((name) => [name, []]));
try {
  for (const name of Object.keys(servers)) wrk(ports[name]); // warm-up
  for (let run = 0; run < Number(values.runs); run++) {
    for (const [name, child] of Object.entries(servers)) {
      const before = processCpu(child.pid);
      const r = wrk(ports[name]);
      const after = processCpu(child.pid);
      results[name].push({
        ...r,
        userUs: (after.user - before.user) / r.requests,
        systemUs: (after.sys - before.sys) / r.requests,
      });
    }
  }
} finally {
  for (const child of Object.values(servers)) child.kill();
}
console.log(
  `hello world, ${values.connections} connections, ${values.runs} x ${values.seconds} s each, medians (every run in brackets)`,
);
console.log('| server | requests/s | p99 ms | CPU µs/request (user + system) |');
console.log('| --- | --- | --- | --- |');
for (const [name, rs] of Object.entries(results)) {
  const list = (k, d) => rs.map((r) => r[k].toFixed(d)).join(', ');
  console.log(
    `| ${name} | ${median(rs.map((r) => r.rps)).toFixed(0)} [${list('rps', 0)}] | ${median(rs.map((r) => r.p99)).toFixed(2)} [${list('p99', 2)}] | ${median(rs.map((r) => r.userUs + r.systemUs)).toFixed(1)} (${median(rs.map((r) => r.userUs)).toFixed(1)} + ${median(rs.map((r) => r.systemUs)).toFixed(1)}) |`,
  );
}
const [node, ours] = Object.values(results);
console.log(
  `\nratio (wasmloop / node:http): ${(median(ours.map((r) => r.rps)) / median(node.map((r) => r.rps))).toFixed(2)}x requests/s, p99 ${(median(ours.map((r) => r.p99)) / median(node.map((r) => r.p99))).toFixed(2)}x`,
);
