// Writes the README's host table from the last run of test/hosts.test.mjs
// (build/hosts-report.json), between the `hosts:begin` and `hosts:end`
// markers. `make test` runs it after the hosts test, so the table always
// shows what the last run found, never what someone typed.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './hosts.mjs';

const BEGIN = '<!-- hosts:begin (written by test/conformance/table.mjs from the last `make test`; do not edit) -->';
const END = '<!-- hosts:end -->';

const run = JSON.parse(readFileSync(join(ROOT, 'build/hosts-report.json'), 'utf8'));
const BACKENDS = ['selector', 'completion', 'virtual', 'clock'];

/** What a refused backend said, shortened to its reason. */
const reason = (error) => error.replace(/^BackendError: backend '\w+' cannot start here: /, '');

function tcp(report) {
  if (report.tcpNote) return report.tcpNote;
  const echo = report.echo ?? {};
  const real = Object.entries(echo).filter(([name]) => name !== 'virtual');
  if (real.length === 0) return report.autoTcp ? `none: \`${report.autoTcp.split(':')[0]}\`` : 'none';
  return real
    .map(([name, e]) => (e.pass ? `${name}: server + client` : e.supported === false ? `${name}: ${e.client?.pass ? 'client' : 'no client'} (server: \`NotSupportedError\`)` : `${name}: **failed**`))
    .join('; ');
}

const rows = Object.entries(run.reports).map(([name, r]) => {
  const passed = r.results.filter((x) => x.pass).length;
  const backends = BACKENDS.map((b) => {
    const state = r.backends?.[b];
    if (state === undefined) return null;
    return state.starts ? `\`${b}\`` : `~~${b}~~ (${reason(state.error)})`;
  }).filter((x) => x !== null);
  return `| ${name} | ${r.version} | ${passed}/${r.results.length} | \`${r.autoBackend}\` | ${r.backendsNote ?? backends.join(', ')} | ${tcp(r)} | \`${r.componentSha256.slice(0, 16)}…\` |`;
});

const table = [
  BEGIN,
  `Last run ${run.date.slice(0, 10)}: ${run.vectors.length} vectors, each on \`auto\` and on \`virtual\` (virtual-time vectors on \`virtual\` only). Core component sha256 \`${run.componentSha256}\`.`,
  '',
  '| Host | Version | Vectors passed | `auto` picks | Backends (struck: refused, with the reason the loop gives) | TCP | Core sha256 |',
  '|---|---|---|---|---|---|---|',
  ...rows,
  END,
].join('\n');

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const start = readme.indexOf(BEGIN.slice(0, 17));
const end = readme.indexOf(END);
if (start < 0 || end < 0) throw new Error('README.md: the hosts:begin / hosts:end markers are missing');
writeFileSync(join(ROOT, 'README.md'), readme.slice(0, start) + table + readme.slice(end + END.length));
console.log(`README.md: host table from ${Object.keys(run.reports).length} hosts`);
