// The mixed section: the timer workloads of a program, in ONE process.
//
// A program keeps some handles and drops others, bursts callSoon, and
// keeps a timeout per connection that every read pushes back, all in one
// process, on one loop. V8 decides things per process (allocation-site
// pretenuring, once per site; which objects a scavenge copies), so figures
// from a process that ran one workload alone say little about a program.
// Here every workload runs in one process, in an order that changes from
// round to round, each side by side with Node's own API for the same job:
//
//   fired      N `callLater` over 1..50 ms, handles dropped    / setTimeout
//   cancelled  N `callLater`, handles kept, then all cancelled / setTimeout + clearTimeout
//   soon       N `callSoon`, all run                           / setImmediate
//   refresh    C connections, each with a timeout pushed back on every one
//              of R reads (one read per connection per iteration) and
//              cancelled at close: `loop.deadline` + `refresh()` + `cancel()`
//                                                              / setTimeout + `timeout.refresh()` + clearTimeout
//
// One loop serves the whole section, as one serves a program. Every
// contender is validated (a full run whose result is checked) before any
// run is timed; each timed run follows a full GC. Reported per contender:
// the median and the spread (min-max) in ns per operation, the ratio of
// medians, the per-round ratios (each round's pair ran back to back), and
// whether every run of wasmloop lies within 0.5x-2x of its median; and,
// for each contender, how much of its timed window the main thread spent
// paused for garbage collection (V8's `gc` performance entries), so the
// report says which part of a run is the scheduler and which is the GC.
//
//   node --expose-gc bench/mixed.mjs [--runs 9] [--n 1000000] [--connections 10000]
//     [--reads 100] [--seed 1] [--cpu] [--json]
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createLoop } from '../ts-host/dist/index.js';
import { wholeOption } from './options.mjs';

const SPREAD_MS = 50;
const USAGE =
  'node --expose-gc bench/mixed.mjs [--runs 9] [--n 1000000] [--connections 10000] [--reads 100] [--seed 1] [--cpu] [--json]';

/** A small deterministic PRNG (mulberry32), so an order can be replayed with --seed. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(xs, random) {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * The workloads. Each contender is `async (ctx) => { ms, ops, check }`:
 * one full run, its time, how many operations it timed, and what it
 * observed (`check === expected` or the run is rejected). A contender
 * calls `ctx.now()` exactly twice, at the start and at the end of what it
 * times: the section reads the timed window's garbage collections from it.
 */
export function workloads({ n, connections, reads }) {
  const gc = globalThis.gc;
  const immediate = () => new Promise((resolve) => setImmediate(resolve));
  return {
    fired: {
      ops: n,
      expected: n,
      wasmloop: async ({ loop, now, waited }) => {
        let count = 0;
        let done;
        const cb = () => {
          if (++count === n) done();
        };
        gc();
        const t0 = now();
        await loop.runUntilComplete(
          () =>
            new Promise((resolve) => {
              done = resolve;
              for (let i = 0; i < n; i++) loop.callLater(1 + (i % SPREAD_MS), cb);
            }),
        );
        return { ms: now() - t0 - waited(SPREAD_MS), check: count };
      },
      node: async ({ now, waited }) => {
        let count = 0;
        let done;
        const cb = () => {
          if (++count === n) done();
        };
        gc();
        const t0 = now();
        await new Promise((resolve) => {
          done = resolve;
          for (let i = 0; i < n; i++) setTimeout(cb, 1 + (i % SPREAD_MS));
        });
        return { ms: now() - t0 - waited(SPREAD_MS), check: count };
      },
    },
    cancelled: {
      ops: n,
      expected: n,
      wasmloop: async ({ loop, now }) => {
        const handles = new Array(n);
        let fired = 0;
        const cb = () => fired++;
        gc();
        const t0 = now();
        for (let i = 0; i < n; i++) handles[i] = loop.callLater(1 + (i % SPREAD_MS), cb);
        for (let i = 0; i < n; i++) handles[i].cancel();
        const ms = now() - t0;
        await loop.runUntilComplete(() => loop.sleep(SPREAD_MS + 5));
        const left = loop.stats().timersPending;
        return { ms, check: fired === 0 && left === 0 && handles.every((h) => h.cancelled()) ? n : -1 };
      },
      node: async ({ now }) => {
        const handles = new Array(n);
        let fired = 0;
        const cb = () => fired++;
        gc();
        const t0 = now();
        for (let i = 0; i < n; i++) handles[i] = setTimeout(cb, 1 + (i % SPREAD_MS));
        for (let i = 0; i < n; i++) clearTimeout(handles[i]);
        const ms = now() - t0;
        await new Promise((resolve) => setTimeout(resolve, SPREAD_MS + 5));
        return { ms, check: fired === 0 ? n : -1 };
      },
    },
    soon: {
      ops: n,
      expected: n,
      wasmloop: async ({ loop, now }) => {
        let count = 0;
        let done;
        const cb = () => {
          if (++count === n) done();
        };
        gc();
        const t0 = now();
        await loop.runUntilComplete(
          () =>
            new Promise((resolve) => {
              done = resolve;
              for (let i = 0; i < n; i++) loop.callSoon(cb);
            }),
        );
        return { ms: now() - t0, check: count };
      },
      node: async ({ now }) => {
        let count = 0;
        let done;
        const cb = () => {
          if (++count === n) done();
        };
        gc();
        const t0 = now();
        await new Promise((resolve) => {
          done = resolve;
          for (let i = 0; i < n; i++) setImmediate(cb);
        });
        return { ms: now() - t0, check: count };
      },
    },
    // A server's timeouts: `connections` connections open, each with an idle
    // timeout (10 s: none fires); every iteration, one read per connection
    // pushes its timeout back; after `reads` iterations every connection
    // closes and cancels its timeout. Counted per read.
    refresh: {
      ops: connections * reads,
      expected: connections * reads,
      wasmloop: async ({ loop, now }) => {
        const timeouts = new Array(connections);
        let expired = 0;
        let done = 0;
        const onTimeout = () => expired++;
        gc();
        const t0 = now();
        await loop.runUntilComplete(
          () =>
            new Promise((resolve) => {
              for (let c = 0; c < connections; c++) timeouts[c] = loop.deadline(10_000, onTimeout);
              let round = 0;
              const readAll = () => {
                for (let c = 0; c < connections; c++) timeouts[c].refresh();
                done += connections;
                if (++round < reads) {
                  loop.callSoon(readAll);
                  return;
                }
                for (let c = 0; c < connections; c++) timeouts[c].cancel();
                resolve();
              };
              loop.callSoon(readAll);
            }),
        );
        const ms = now() - t0;
        const left = loop.stats().timersPending;
        return { ms, check: expired === 0 && left === 0 ? done : -1 };
      },
      node: async ({ now }) => {
        const timeouts = new Array(connections);
        let expired = 0;
        let done = 0;
        const onTimeout = () => expired++;
        gc();
        const t0 = now();
        await new Promise((resolve) => {
          for (let c = 0; c < connections; c++) timeouts[c] = setTimeout(onTimeout, 10_000);
          let round = 0;
          const readAll = () => {
            for (let c = 0; c < connections; c++) timeouts[c].refresh();
            done += connections;
            if (++round < reads) {
              setImmediate(readAll);
              return;
            }
            for (let c = 0; c < connections; c++) clearTimeout(timeouts[c]);
            resolve();
          };
          setImmediate(readAll);
        });
        const ms = now() - t0;
        await immediate();
        return { ms, check: expired === 0 ? done : -1 };
      },
    },
  };
}

export const TARGETS = { fired: 3, cancelled: 1.5, soon: 2, refresh: 1 };
export const TITLES = {
  fired: '`callLater`, handles dropped, all fired, vs `setTimeout`',
  cancelled: '`callLater`, handles kept, then cancelled, vs `setTimeout` + `clearTimeout`',
  soon: '`callSoon`, all run, vs `setImmediate`',
  refresh:
    'connection timeouts: `deadline` + `refresh()` per read + `cancel()`, vs `setTimeout` + `timeout.refresh()` + `clearTimeout`',
};

/**
 * What a run is timed with: wall time (the figure), or the process's CPU
 * time (all its threads, GC helpers included), which a loaded machine
 * disturbs less; an idle wait costs no CPU time.
 */
export const CLOCKS = {
  wall: { now: () => performance.now(), waited: (ms) => ms },
  cpu: {
    now: () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1000;
    },
    waited: () => 0,
  },
};

/**
 * The main thread's garbage-collection pauses, from V8's `gc` performance
 * entries (start and duration in ms, on `performance.now()`'s scale). Node
 * makes each entry in an immediate after the collection, so `pausedIn`
 * lets immediates run before it reads them.
 */
function gcPauses() {
  const pauses = [];
  const take = (entries) => {
    for (const e of entries) pauses.push({ start: e.startTime, duration: e.duration });
  };
  const observer = new PerformanceObserver((list) => take(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  const immediate = () => new Promise((resolve) => setImmediate(resolve));
  return {
    /** ms of pauses that began in [from, to]; forgets every pause seen so far. */
    async pausedIn(from, to) {
      await immediate();
      await immediate();
      take(observer.takeRecords());
      let ms = 0;
      for (const p of pauses) if (p.start >= from && p.start <= to) ms += p.duration;
      pauses.length = 0;
      return ms;
    },
    stop: () => observer.disconnect(),
  };
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1], all: xs };
};

/**
 * Runs the section: validation of every contender (in a shuffled order),
 * then `runs` rounds, each visiting the workloads in a fresh shuffled order
 * and, within a workload, both contenders back to back (which one first
 * alternates). Returns per workload the stats of both and the round ratios.
 */
export async function mixed({
  runs = 9,
  n = 1_000_000,
  connections = 10_000,
  reads = 100,
  seed = 1,
  clock = 'wall',
  log = () => {},
} = {}) {
  if (typeof globalThis.gc !== 'function') throw new Error('the mixed section needs --expose-gc');
  const random = prng(seed);
  const set = workloads({ n, connections, reads });
  const names = Object.keys(set);
  const loop = await createLoop();
  // The wall time of each `now()` a contender makes: its timed window.
  const timed = [];
  const ctx = {
    loop,
    waited: CLOCKS[clock].waited,
    now: () => {
      timed.push(performance.now());
      return CLOCKS[clock].now();
    },
  };
  const pauses = gcPauses();
  const orders = [];
  const check = (name, who, result, phase) => {
    if (result.check !== set[name].expected) {
      throw new Error(`mixed ${name}: ${who} ${phase}: got ${result.check}, expected ${set[name].expected}`);
    }
  };
  // One run of a contender: its result, and the GC pauses in its timed window (ms).
  const runOne = async (name, who, phase) => {
    timed.length = 0;
    const result = await set[name][who](ctx);
    check(name, who, result, phase);
    if (timed.length !== 2) throw new Error(`mixed ${name}: ${who} called now() ${timed.length} times, not 2`);
    return { ...result, gcMs: await pauses.pausedIn(timed[0], timed[1]) };
  };
  // Validation, in a shuffled order too.
  const first = shuffled(names, random);
  orders.push(first);
  for (const name of first) {
    for (const who of ['wasmloop', 'node']) await runOne(name, who, 'failed validation');
  }
  const times = Object.fromEntries(names.map((k) => [k, { wasmloop: [], node: [] }]));
  const gcTimes = Object.fromEntries(names.map((k) => [k, { wasmloop: [], node: [] }]));
  for (let r = 0; r < runs; r++) {
    const order = shuffled(names, random);
    orders.push(order);
    log(`round ${r + 1}/${runs}: ${order.join(', ')}`);
    for (const name of order) {
      const pair = r % 2 === 0 ? ['wasmloop', 'node'] : ['node', 'wasmloop'];
      for (const who of pair) {
        const result = await runOne(name, who, `run ${r}`);
        const ns = (result.ms * 1e6) / set[name].ops;
        const gcNs = (result.gcMs * 1e6) / set[name].ops;
        times[name][who].push(ns);
        gcTimes[name][who].push(gcNs);
        log(`  ${name} ${who}: ${ns.toFixed(1)} ns/op, GC pauses ${gcNs.toFixed(1)}`);
      }
    }
  }
  pauses.stop();
  await loop.close();
  const out = {};
  for (const name of names) {
    // Per contender: its times, its GC pauses, and its times less its pauses.
    const split = (who) => ({
      ...stats(times[name][who]),
      gc: stats(gcTimes[name][who]),
      mutator: stats(times[name][who].map((t, i) => t - gcTimes[name][who][i])),
    });
    const ours = split('wasmloop');
    const node = split('node');
    const roundRatios = times[name].node.map((t, i) => t / times[name].wasmloop[i]);
    out[name] = {
      ops: set[name].ops,
      wasmloop: ours,
      node,
      ratio: node.median / ours.median,
      rounds: stats(roundRatios),
    };
  }
  return { runs, n, connections, reads, seed, orders, results: out };
}

const fmt = (x, d = 1) => x.toFixed(d);

/** The section as markdown. */
export function mixedReport(m) {
  const rows = [
    '| workload | ops per run | wasmloop median ns/op (min–max) | Node median ns/op (min–max) | Node / wasmloop (medians) | per-round ratios (min–max) | wasmloop runs within 0.5x–2x of median | target |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |',
  ];
  for (const [name, r] of Object.entries(m.results)) {
    const w = r.wasmloop;
    const steady = w.min >= 0.5 * w.median && w.max <= 2 * w.median;
    const target = TARGETS[name];
    rows.push(
      `| ${TITLES[name]} | ${r.ops.toLocaleString('en')} | ${fmt(w.median)} (${fmt(w.min)}–${fmt(w.max)}) | ${fmt(r.node.median)} (${fmt(r.node.min)}–${fmt(r.node.max)}) | ${fmt(r.ratio, 2)}x | ${fmt(r.rounds.min, 2)}x–${fmt(r.rounds.max, 2)}x | ${steady ? 'yes' : '**no**'} | >= ${target}x: ${r.ratio >= target ? 'met' : '**not met**'} |`,
    );
  }
  return rows.join('\n');
}

/**
 * Where the section's time went: the main thread's GC pauses inside each
 * timed window, and the ratio with them left out (each run's time less its
 * pauses, medians). The pauses are wall time; under `--cpu` the times are
 * the process's CPU time (GC helper threads included), so there the split
 * is only indicative.
 */
export function mixedGcReport(m) {
  const rows = [
    '| workload | wasmloop GC pauses ns/op, median (min–max) | share of its time | Node GC pauses ns/op, median (min–max) | share of its time | Node / wasmloop, pauses left out |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  const pauses = (s) => `${fmt(s.gc.median)} (${fmt(s.gc.min)}–${fmt(s.gc.max)})`;
  const share = (s) => `${fmt((100 * s.gc.median) / s.median, 0)}%`;
  for (const [name, r] of Object.entries(m.results)) {
    rows.push(
      `| ${TITLES[name]} | ${pauses(r.wasmloop)} | ${share(r.wasmloop)} | ${pauses(r.node)} | ${share(r.node)} | ${fmt(r.node.mutator.median / r.wasmloop.mutator.median, 2)}x |`,
    );
  }
  return rows.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        runs: { type: 'string', default: '9' },
        n: { type: 'string', default: '1000000' },
        connections: { type: 'string', default: '10000' },
        reads: { type: 'string', default: '100' },
        seed: { type: 'string', default: '1' },
        cpu: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    console.error(`bench/mixed.mjs: ${error.message}\nusage: ${USAGE}`);
    process.exit(2);
  }
  const whole = (name) =>
    wholeOption(`--${name}`, values[name], (message) => {
      console.error(`bench/mixed.mjs: ${message}`);
      process.exit(2);
    });
  const m = await mixed({
    runs: whole('runs'),
    n: whole('n'),
    connections: whole('connections'),
    reads: whole('reads'),
    seed: whole('seed'),
    clock: values.cpu ? 'cpu' : 'wall',
    log: (line) => console.error(line),
  });
  if (values.json) console.log(JSON.stringify(m));
  else console.log(`${mixedReport(m)}\n\n${mixedGcReport(m)}`);
}
