// The timer sections of bench/run.mjs again on the current Node LTS, when
// the machine's default Node is another: section 0 (the mixed section, every
// timer workload in one process, with its targets and GC pauses), sections
// 1–3 (callLater fired, callLater kept then cancelled, callSoon, each against
// Node's own timers in the same process) and 3b (virtual time against sinon).
// It writes the "Core timers on the Node LTS" section of bench/RESULTS.md
// without touching the rest (results-section.mjs).
//
//   node bench/node-lts.mjs --results FILE [--runs N] [--n N] NODE...
//
// NODE...: Node binaries (the Makefile's NODE_VERSIONS); the LTS is the
// newest whose `process.release.lts` names an LTS line. Each benchmark runs
// in a fresh process of that Node, as bench/run.mjs runs its own:
// `bench/run.mjs --only NAME`, which prints its figures as JSON.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mixedGcReport, mixedReport } from './mixed.mjs';
import { wholeOption } from './options.mjs';
import { putSection } from './results-section.mjs';
import { VIRTUAL_N } from './virtual-hour.mjs';

const TITLE = 'Core timers on the Node LTS';
/** bench/run.mjs's isolated benchmarks, how its report names them, and the contender the ratios are against. */
const SECTIONS = [
  ['fired', '1. {n} `callLater` with delays spread over 1..50 ms, all fired', 'wasmloop'],
  ['cancelled', '2. {n} `callLater`, handles kept, then all cancelled', 'wasmloop'],
  ['soon', '3. {n} `callSoon`, all run', 'wasmloop'],
  [
    'virtual',
    `3b. Virtual time: ${VIRTUAL_N.toLocaleString('en')} timers spread over one virtual hour, all fired`,
    'wasmloop virtual',
  ],
];

const args = process.argv.slice(2);
const options = {};
const binaries = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === '--results' || arg === '--runs' || arg === '--n') {
    if (i + 1 >= args.length) usage(`${arg} needs a value`);
    options[arg.slice(2)] = args[++i];
  } else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
  else binaries.push(arg);
}
const runs = wholeOption('--runs', options.runs ?? '7', usage);
const n = wholeOption('--n', options.n ?? '1000000', usage);
if (options.results === undefined) usage('--results FILE is required');
if (binaries.length === 0) usage('give the Node binaries to choose the LTS from');

function usage(message) {
  console.error(
    `bench/node-lts.mjs: ${message}\nusage: node bench/node-lts.mjs --results FILE [--runs N] [--n N] NODE...`,
  );
  process.exit(2);
}

/** Each binary's version and LTS line (null for a Current release). */
const releases = binaries.map((node) => {
  const out = execFileSync(
    node,
    ['-p', 'JSON.stringify({ version: process.version, lts: process.release.lts ?? null })'],
    {
      encoding: 'utf8',
    },
  );
  return { node, ...JSON.parse(out) };
});
const major = (release) => Number(release.version.slice(1).split('.')[0]);
const lts = releases.filter((r) => typeof r.lts === 'string').sort((a, b) => major(b) - major(a))[0];
if (lts === undefined) {
  console.error(`bench/node-lts.mjs: none of ${releases.map((r) => r.version).join(', ')} is an LTS release`);
  process.exit(1);
}

const run = fileURLToPath(new URL('./run.mjs', import.meta.url));
/** `bench/run.mjs --only name` in a fresh process of the LTS: its figures. */
function measure(name) {
  console.error(`${name} on Node ${lts.version}...`);
  const out = execFileSync(lts.node, ['--expose-gc', run, '--only', name, '--runs', String(runs), '--n', String(n)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  return JSON.parse(out);
}
const mix = measure('mixed');
const results = SECTIONS.map(([name, heading, ours]) => ({ heading, ours, result: measure(name) }));

const fmt = (x, digits = 1) => x.toFixed(digits);
function table(result, key) {
  const ours = result[key].median;
  const rows = ['| contender | median ns/op | spread (min–max) | ratio vs wasmloop |', '| --- | ---: | ---: | ---: |'];
  for (const [who, s] of Object.entries(result)) {
    rows.push(
      `| ${who} | ${fmt(s.median)} | ${fmt(s.min)}–${fmt(s.max)} | ${who === key ? '1.00x' : `${fmt(s.median / ours, 2)}x`} |`,
    );
  }
  return rows.join('\n');
}

const date = new Date().toISOString().slice(0, 10);
const body = `(Node ${lts.version}, LTS '${lts.lts}'; \`make bench\`, ${date})

Sections 0 to 3b again, under the current Node LTS: the sections above ran on the machine's default Node (${process.version}, which \`make bench\` runs). The same workloads (N = ${n.toLocaleString('en')}, ${runs} runs per contender, full GC before each timed run, each contender validated first), each benchmark in a fresh process of Node ${lts.version} (\`bench/run.mjs --only\`). Ratios are peer time / wasmloop time from the same process (higher is better for wasmloop).

### 0. A program's mix: every timer workload in one process

${mix.runs} rounds in a shuffled order (seed ${mix.seed}), as section 0 above; the same targets.

${mixedReport(mix)}

${mixedGcReport(mix)}

${results.map(({ heading, ours, result }) => `### ${heading.replace('{n}', n.toLocaleString('en'))}\n\n${table(result, ours)}`).join('\n\n')}
`;
putSection(options.results, TITLE, body);
console.log(`## ${TITLE} ${body}`);
