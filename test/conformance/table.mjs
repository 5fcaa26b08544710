// Writes the README's host table (`make readme`) between the `hosts:begin`
// and `hosts:end` markers, from the reports the last test runs saved:
// build/hosts-report.json (make test-hosts: the conformance vectors on each
// host), build/pack-report.json (make test-pack: the user path on each host,
// from the packed tarball) and build/node-versions/*.json (make
// test-node-versions). The table shows what the runs found, never what
// someone typed; make test itself edits no tracked file.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './hosts.mjs';

const BEGIN = '<!-- hosts:begin (written by `make readme` from the last test run; do not edit) -->';
const END = '<!-- hosts:end -->';

function readReport(file, target) {
  const path = join(ROOT, file);
  if (!existsSync(path)) throw new Error(`${file} is missing: run \`make ${target}\` first`);
  return JSON.parse(readFileSync(path, 'utf8'));
}

const run = readReport('build/hosts-report.json', 'test-hosts');
const pack = readReport('build/pack-report.json', 'test-pack');
const versionsDir = join(ROOT, 'build/node-versions');
const otherNodes = existsSync(versionsDir)
  ? readdirSync(versionsDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(versionsDir, f), 'utf8')).reports.node)
      .filter((r) => r !== undefined)
      .sort((a, b) => Number.parseInt(a.version, 10) - Number.parseInt(b.version, 10))
  : [];

const BACKENDS = ['selector', 'completion', 'virtual', 'clock'];
/** What a refused backend said, shortened to its reason. */
const reason = (error) => error.replace(/^BackendError: backend '\w+' cannot start here: /, '');
const short = (sha) => (sha ? `\`${sha.slice(0, 16)}…\`` : 'none');
const passed = (r) => `${r.results.filter((x) => x.pass).length}/${r.results.length}`;

function tcp(report) {
  if (report.tcpNote) return report.tcpNote;
  const echo = report.echo ?? {};
  const real = Object.entries(echo).filter(([name]) => name !== 'virtual');
  if (real.length === 0) return report.autoTcp ? `none: \`${report.autoTcp.split(':')[0]}\`` : 'none';
  return real
    .map(([name, e]) =>
      e.pass
        ? `${name}: server + client`
        : e.supported === false
          ? `${name}: ${e.client?.pass ? 'client' : 'no client'} (server: \`NotSupportedError\`)`
          : `${name}: **failed**`,
    )
    .join('; ');
}

/** The user paths of a host in the pack report (Chromium has two). */
function userPaths(host) {
  const entries = Object.entries(pack.reports).filter(([name]) => name === host || name.startsWith(`${host} (`));
  // wasmtime runs components, not npm packages: its user path is the
  // clone's `make wasi` artifacts, which `make test-wasi` runs.
  if (entries.length === 0 && host === 'wasmtime') {
    return {
      text: 'not from the tarball: `make wasi`, then `wasmtime run -S inherit-network build/wasi/echo-server.wasm` (docs/wasmtime.md; `make test-wasi` runs it)',
      sha: [],
    };
  }
  if (entries.length === 0) return { text: 'none yet', sha: [] };
  return {
    text: entries.map(([, r]) => r.path).join('; '),
    sha: entries.map(([, r]) => r.core?.find((m) => m.file === 'core.core.wasm')?.sha256),
  };
}

/** sha256 of the core.core.wasm a host compiled (from the conformance run). */
function compiledSha(name, r) {
  if (name === 'wasmtime') return `component ${short(r.componentSha256)} (read by Node)`;
  if (name === 'workerd') return `${short(run.coreModules['core.core.wasm'].sha256)} (the config's file)`;
  return short(r.compiled?.find((m) => m.file === 'core.core.wasm')?.sha256);
}

const rows = Object.entries(run.reports).map(([name, r]) => {
  const backends = BACKENDS.map((b) => {
    const state = r.backends?.[b];
    if (state === undefined) return null;
    return state.starts ? `\`${b}\`` : `~~${b}~~ (${reason(state.error)})`;
  }).filter((x) => x !== null);
  const version =
    name === 'node' && otherNodes.length > 0
      ? `${r.version}; also ${otherNodes.map((n) => `${n.version} (${passed(n)}, ${short(n.compiled?.[0]?.sha256)})`).join(', ')}`
      : r.version;
  const paths = userPaths(name);
  return `| ${name} | ${version} | ${paths.text} | ${passed(r)} | \`${r.autoBackend}\` | ${r.backendsNote ?? backends.join(', ')} | ${tcp(r)} | ${compiledSha(name, r)} |`;
});

const modules = Object.entries(run.coreModules)
  .map(([file, m]) => `\`${file}\` \`${m.sha256}\``)
  .join(', ');
const table = [
  BEGIN,
  `Conformance run ${run.date.slice(0, 10)}: ${run.vectors.length} vectors, each on \`auto\` and on \`virtual\` (virtual-time vectors on \`virtual\` only). ` +
    `Tarball run ${pack.date.slice(0, 10)}. Core component sha256 \`${run.componentSha256}\`; its core modules, as every JavaScript host's loader hashed the bytes it compiled: ${modules}.`,
  '',
  '| Host | Version | User path tested from the tarball | Vectors passed | `auto` picks | Backends (struck: refused, with the reason the loop gives) | TCP | sha256 of the compiled `core.core.wasm` |',
  '|---|---|---|---|---|---|---|---|',
  ...rows,
  END,
].join('\n');

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const start = readme.indexOf('<!-- hosts:begin');
const end = readme.indexOf(END);
if (start < 0 || end < 0) throw new Error('README.md: the hosts:begin / hosts:end markers are missing');
writeFileSync(join(ROOT, 'README.md'), readme.slice(0, start) + table + readme.slice(end + END.length));
console.log(
  `README.md: host table from ${Object.keys(run.reports).length} hosts, ${Object.keys(pack.reports).length} user paths, ${otherNodes.length} more Node versions`,
);
