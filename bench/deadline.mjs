// Per-connection timeouts: wasmloop's deadline (loop.deadline, refresh())
// against Node's timeout.refresh(), side by side in one process, as
// bench/run.mjs measures: each contender validated on the full workload
// first, then alternating runs with a full GC before each. Writes the
// "Deadlines" section of bench/RESULTS.md with --results.
//
//   node --expose-gc bench/deadline.mjs [--runs N] [--results FILE]
//
// Two workloads, 10,000 timeouts each (a server's connections):
//   refresh  1,000,000 refreshes spread over them, round robin (100 each);
//            the time of the refreshes alone. Validated by letting every
//            timeout run afterwards: each exactly once, and none before its
//            last refresh plus its period.
//   server   each connection's whole life: its timeout made when it opens,
//            refreshed on each of its 100 reads (the reads of all
//            connections interleaved), cancelled when it closes. Validated:
//            nothing ran, no timer is left. A third contender does what a
//            loop without deadlines does: cancel and schedule again per read.
import os from 'node:os';

import { createLoop } from '../ts-host/dist/index.js';
import { putSection } from './results-section.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};
const RUNS = Number(option('--runs', 7));
const RESULTS = option('--results', null);
const CONNECTIONS = 10_000;
const READS = 100;
const N = CONNECTIONS * READS;
/** The timeouts' period: longer than a run of refreshes, short enough to wait for. */
const PERIOD_MS = 200;

if (typeof globalThis.gc !== 'function') {
  console.error('bench/deadline.mjs needs --expose-gc');
  process.exit(2);
}
const gc = globalThis.gc;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------ contenders
//
// Each is `async () => { ms, check }`: one run of the workload, its time,
// and what it observed (N when everything was as it must be).

const refresh = {
  'wasmloop deadline.refresh()': async () => {
    const loop = await createLoop();
    let fired = 0;
    let early = 0;
    let refreshedAt = 0;
    const onDue = () => {
      if (loop.time() < refreshedAt + PERIOD_MS) early++;
      fired++;
    };
    const deadlines = new Array(CONNECTIONS);
    for (let c = 0; c < CONNECTIONS; c++) deadlines[c] = loop.deadline(PERIOD_MS, onDue);
    // Half a period on: a refresh that did not move them would let them run early.
    await sleep(PERIOD_MS / 2);
    gc();
    // The refreshes count from the loop time of this turn (read once).
    refreshedAt = loop.time();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) deadlines[i % CONNECTIONS].refresh();
    const ms = performance.now() - t0;
    await loop.runUntilComplete(async () => {
      while (fired < CONNECTIONS && loop.time() < refreshedAt + 10 * PERIOD_MS) await loop.sleep(PERIOD_MS / 4);
    });
    const left = loop.stats().timersPending;
    await loop.close();
    return { ms, check: fired === CONNECTIONS && early === 0 && left === 0 ? N : -1 };
  },
  'node timeout.refresh()': async () => {
    let fired = 0;
    let early = 0;
    let refreshedAt = 0;
    const onDue = () => {
      // Node's timers count from libuv's millisecond clock: up to 1 ms behind performance.now().
      if (performance.now() < refreshedAt + PERIOD_MS - 1) early++;
      fired++;
    };
    const timeouts = new Array(CONNECTIONS);
    for (let c = 0; c < CONNECTIONS; c++) timeouts[c] = setTimeout(onDue, PERIOD_MS);
    await sleep(PERIOD_MS / 2);
    gc();
    // Node's refresh() counts from libuv's clock, read when this turn began
    // (before the GC): a new turn starts the refreshes on a fresh reading.
    await sleep(0);
    const t0 = performance.now();
    refreshedAt = t0;
    for (let i = 0; i < N; i++) timeouts[i % CONNECTIONS].refresh();
    const ms = performance.now() - t0;
    const until = refreshedAt + 10 * PERIOD_MS;
    while (fired < CONNECTIONS && performance.now() < until) await sleep(PERIOD_MS / 4);
    return { ms, check: fired === CONNECTIONS && early === 0 ? N : -1 };
  },
};

const server = {
  'wasmloop deadline': async () => {
    const loop = await createLoop();
    let fired = 0;
    const onIdle = () => fired++;
    const deadlines = new Array(CONNECTIONS);
    gc();
    const t0 = performance.now();
    for (let c = 0; c < CONNECTIONS; c++) deadlines[c] = loop.deadline(PERIOD_MS, onIdle);
    for (let i = 0; i < N; i++) deadlines[i % CONNECTIONS].refresh();
    for (let c = 0; c < CONNECTIONS; c++) deadlines[c].cancel();
    const ms = performance.now() - t0;
    await loop.runUntilComplete(() => loop.sleep(PERIOD_MS + 10));
    const left = loop.stats().timersPending;
    await loop.close();
    return { ms, check: fired === 0 && left === 0 ? N : -1 };
  },
  'node setTimeout + refresh() + clearTimeout': async () => {
    let fired = 0;
    const onIdle = () => fired++;
    const timeouts = new Array(CONNECTIONS);
    gc();
    const t0 = performance.now();
    for (let c = 0; c < CONNECTIONS; c++) timeouts[c] = setTimeout(onIdle, PERIOD_MS);
    for (let i = 0; i < N; i++) timeouts[i % CONNECTIONS].refresh();
    for (let c = 0; c < CONNECTIONS; c++) clearTimeout(timeouts[c]);
    const ms = performance.now() - t0;
    await sleep(PERIOD_MS + 10);
    return { ms, check: fired === 0 ? N : -1 };
  },
  'wasmloop callLater + cancel per read': async () => {
    const loop = await createLoop();
    let fired = 0;
    const onIdle = () => fired++;
    const handles = new Array(CONNECTIONS);
    gc();
    const t0 = performance.now();
    for (let c = 0; c < CONNECTIONS; c++) handles[c] = loop.callLater(PERIOD_MS, onIdle);
    for (let i = 0; i < N; i++) {
      const c = i % CONNECTIONS;
      handles[c].cancel();
      handles[c] = loop.callLater(PERIOD_MS, onIdle);
    }
    for (let c = 0; c < CONNECTIONS; c++) handles[c].cancel();
    const ms = performance.now() - t0;
    await loop.runUntilComplete(() => loop.sleep(PERIOD_MS + 10));
    const left = loop.stats().timersPending;
    await loop.close();
    return { ms, check: fired === 0 && left === 0 ? N : -1 };
  },
};

// -------------------------------------------------------------- harness

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
};

/** Validates every contender on the full workload (the warm-up too), then alternates `RUNS` timed runs. */
async function measure(name, contenders) {
  for (const [who, run] of Object.entries(contenders)) {
    const { check } = await run();
    if (check !== N) throw new Error(`${name}: ${who} failed validation`);
  }
  const names = Object.keys(contenders);
  const times = Object.fromEntries(names.map((k) => [k, []]));
  for (let r = 0; r < RUNS; r++) {
    for (let j = 0; j < names.length; j++) {
      const who = names[(r + j) % names.length];
      const { ms, check } = await contenders[who]();
      if (check !== N) throw new Error(`${name}: ${who} lost work in run ${r}`);
      times[who].push((ms * 1e6) / N);
    }
  }
  return Object.fromEntries(names.map((k) => [k, stats(times[k])]));
}

const fmt = (x, digits = 1) => x.toFixed(digits);

function table(result, baseline) {
  const rows = [
    '| contender | median ns per read | spread (min–max) | ratio vs wasmloop |',
    '| --- | ---: | ---: | ---: |',
  ];
  const ours = result[baseline].median;
  for (const [who, s] of Object.entries(result)) {
    rows.push(
      `| ${who} | ${fmt(s.median)} | ${fmt(s.min)}–${fmt(s.max)} | ${who === baseline ? '1.00x' : `${fmt(s.median / ours, 2)}x`} |`,
    );
  }
  return rows.join('\n');
}

const started = new Date();
console.error(`deadlines: ${CONNECTIONS.toLocaleString('en')} timeouts x ${READS} reads, ${RUNS} alternating runs`);
const refreshed = await measure('refresh', refresh);
const served = await measure('server', server);
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const ratio = refreshed['node timeout.refresh()'].median / refreshed['wasmloop deadline.refresh()'].median;
const body = `(\`make bench-deadline\`, ${started.toISOString().slice(0, 10)})

Machine: ${cpu}, ${os.cpus().length} cores, Node ${process.version}. Command: \`node --expose-gc bench/deadline.mjs --results bench/RESULTS.md\`: ${CONNECTIONS.toLocaleString('en')} per-connection timeouts of ${PERIOD_MS} ms, ${READS} reads each (${N.toLocaleString('en')} in all, the connections' reads interleaved), ${RUNS} alternating runs per contender in one process, a full GC before each, every contender first validated on the full workload. Times are per read (per refresh).

### Refreshes alone

${N.toLocaleString('en')} refreshes, round robin over the ${CONNECTIONS.toLocaleString('en')} timeouts. Validated afterwards: every timeout runs exactly once, and none before its last refresh plus ${PERIOD_MS} ms.

${table(refreshed, 'wasmloop deadline.refresh()')}

Target: fewer ns per refresh than Node's \`timeout.refresh()\`: ${ratio > 1 ? 'met' : '**not met**'} (${fmt(ratio, 2)}x).

### A server's connections

Each timeout made when its connection opens, refreshed on each read, cancelled when it closes. Validated: nothing ran, no timer left.

${table(served, 'wasmloop deadline')}
`;
console.log(`## Deadlines ${body}`);
if (RESULTS !== null) putSection(RESULTS, 'Deadlines', body);
