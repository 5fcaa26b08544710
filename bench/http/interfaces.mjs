// What `wasmloop serve --interface node` costs: one (req, res) listener
// on plain node:http, the same listener on the loop's connections (Node's
// http.Server fed TransportDuplex streams), and the same hello world as a
// fetch handler under `wasmloop serve` (with and without the access log,
// which goes to /dev/null). wrk against each in turn, run by run;
// requests/s, p99 and the server's CPU per request (user + system, from
// /proc). Linux, with wrk installed.
//
//   node bench/http/interfaces.mjs [--runs 3] [--seconds 3] [--connections 50] [--backend selector]
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { processCpu } from '../tcp/proc.mjs';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    backend: { type: 'string', default: 'selector' },
  },
});
const app = fileURLToPath(new URL('./interface-app.mjs', import.meta.url));
const cli = fileURLToPath(new URL('../../ts-host/dist/cli.js', import.meta.url));
const serveArgs = (port, ...more) => [cli, 'serve', ...more, '--port', String(port), '--backend', values.backend];

const SERVERS = {
  'node:http, (req, res)': (port) => [app, String(port)],
  'wasmloop serve --interface node': (port) =>
    serveArgs(port, `${app}:listener`, '--interface', 'node', '--no-access-log'),
  'wasmloop serve (fetch)': (port) => serveArgs(port, app, '--no-access-log'),
  'wasmloop serve (fetch), access log on': (port) => serveArgs(port, app),
};

/** Starts a server; resolves once it says where it serves. */
function start(args) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
      if (/serving on/.test(err)) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${err}`)));
  });
}

function wrk(port) {
  const out = execFileSync(
    'wrk',
    ['-t1', `-c${values.connections}`, `-d${values.seconds}s`, '--latency', `http://127.0.0.1:${port}/`],
    { encoding: 'utf8' },
  );
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const [, value, unit] = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99 = Number(value) * { us: 1e-3, ms: 1, s: 1e3 }[unit];
  return { requests, rps, p99 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const names = Object.keys(SERVERS);
const ports = Object.fromEntries(names.map((name, i) => [name, 18180 + i]));
const children = {};
const results = Object.fromEntries(names.map((name) => [name, []]));
try {
  for (const name of names) children[name] = await start(SERVERS[name](ports[name]));
  for (const name of names) wrk(ports[name]); // warm-up
  for (let run = 0; run < Number(values.runs); run++) {
    for (const name of names) {
      const before = processCpu(children[name].pid);
      const r = wrk(ports[name]);
      const after = processCpu(children[name].pid);
      results[name].push({
        ...r,
        userUs: (after.user - before.user) / r.requests,
        systemUs: (after.sys - before.sys) / r.requests,
      });
    }
  }
} finally {
  for (const child of Object.values(children)) child.kill();
}
console.log(
  `hello world, ${values.backend}, ${values.connections} connections, ${values.runs} x ${values.seconds} s each, medians (every run in brackets)`,
);
console.log('| server | requests/s | p99 ms | CPU µs/request (user + system) |');
console.log('| --- | --- | --- | --- |');
for (const [name, rs] of Object.entries(results)) {
  const list = (k, d) => rs.map((r) => r[k].toFixed(d)).join(', ');
  console.log(
    `| ${name} | ${median(rs.map((r) => r.rps)).toFixed(0)} [${list('rps', 0)}] | ${median(rs.map((r) => r.p99)).toFixed(2)} [${list('p99', 2)}] | ${median(rs.map((r) => r.userUs + r.systemUs)).toFixed(1)} (${median(rs.map((r) => r.userUs)).toFixed(1)} + ${median(rs.map((r) => r.systemUs)).toFixed(1)}) |`,
  );
}
const rps = (name) => median(results[name].map((r) => r.rps));
console.log(
  `\n--interface node / node:http: ${(rps(names[1]) / rps(names[0])).toFixed(2)}x requests/s; fetch / --interface node: ${(rps(names[2]) / rps(names[1])).toFixed(2)}x; access log on / off: ${(rps(names[3]) / rps(names[2])).toFixed(2)}x`,
);
