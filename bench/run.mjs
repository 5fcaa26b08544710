// wasmloop benchmarks: each contender is validated, then measured side by
// side with its peers in one process, alternating, with a full GC before
// every timed run. Writes bench/RESULTS.md (and prints the same).
//
//   node --expose-gc bench/run.mjs [--runs N] [--n N] [--processes P]
//     [--out FILE] [--only NAME] [--tcp-seconds S] [--tcp-runs R]
//
// --only NAME runs one benchmark in this process and prints its figures as
// JSON (how the full run measures each benchmark in a fresh process).
// --processes P: the isolated sections (1 to 3b) run each benchmark in P
// fresh processes (3 unless told), their ratios summed up by the median.
//
// Contenders: wasmloop; Node's own timers (setTimeout, clearTimeout,
// setImmediate); a plain TypeScript binary-heap loop with the same API
// (bench/peers/heap-loop.ts).
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createLoop } from '../ts-host/dist/index.js';
import { compileCore } from '../ts-host/dist/core.js';
import { instantiate } from '../ts-host/dist/generated/core.js';
import { generationOf, makeHandle, makeTimerHandle, slotOf } from '../ts-host/dist/handles.js';
import { microtaskDrain } from '../ts-host/dist/host-tasks.js';
import { HeapLoop } from './peers/dist/heap-loop.js';
import { wholeOption } from './options.mjs';
import { VIRTUAL_N, virtualHour } from './virtual-hour.mjs';
import { TARGETS as MIXED_TARGETS, mixed, mixedGcReport, mixedReport } from './mixed.mjs';

const USAGE =
  'node --expose-gc bench/run.mjs [--runs N] [--n N] [--processes P] [--out FILE] [--only NAME] [--tcp-seconds S] [--tcp-runs R]';
/** The command line; an option it does not know, or one without its value, ends the run. */
function commandLine() {
  try {
    return parseArgs({
      options: {
        runs: { type: 'string', default: '7' },
        n: { type: 'string', default: '1000000' },
        processes: { type: 'string', default: '3' },
        out: { type: 'string', default: fileURLToPath(new URL('./RESULTS.md', import.meta.url)) },
        only: { type: 'string' },
        'tcp-seconds': { type: 'string' },
        'tcp-runs': { type: 'string' },
      },
    }).values;
  } catch (error) {
    console.error(`bench/run.mjs: ${error.message}\nusage: ${USAGE}`);
    process.exit(2);
  }
}
const options = commandLine();
/** A bad option's value: reported, and the run ends. */
function badOption(message) {
  console.error(`bench/run.mjs: ${message}`);
  process.exit(2);
}
const RUNS = wholeOption('--runs', options.runs, badOption);
const N = wholeOption('--n', options.n, badOption);
const PROCESSES = wholeOption('--processes', options.processes, badOption);
const OUT = options.out;
// --tcp-seconds S, --tcp-runs R: shorter TCP runs, to try the report out (bench/tcp/run.mjs's defaults otherwise).
const TCP_ARGS = [
  ...(options['tcp-seconds'] === undefined ? [] : ['--seconds', options['tcp-seconds']]),
  ...(options['tcp-runs'] === undefined ? [] : ['--runs', options['tcp-runs']]),
];

if (typeof globalThis.gc !== 'function') {
  console.error('bench/run.mjs needs --expose-gc (run it with `make bench`)');
  process.exit(2);
}
const gc = globalThis.gc;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const SPREAD_MS = 50; // timers spread over 1..50 ms

// ------------------------------------------------------------ contenders
//
// Each contender of a benchmark is `async (n) => { ns, check }`: it runs the
// workload once and returns the time and what it observed, which is
// validated before any timing counts.

const timersFired = {
  wasmloop: async (n) => {
    const loop = await createLoop();
    let count = 0;
    let done;
    const cb = () => {
      if (++count === n) done();
    };
    gc();
    const t0 = performance.now();
    await loop.runUntilComplete(
      () =>
        new Promise((resolve) => {
          done = resolve;
          for (let i = 0; i < n; i++) loop.callLater(1 + (i % SPREAD_MS), cb);
        }),
    );
    const ms = performance.now() - t0;
    await loop.close();
    return { ms: ms - SPREAD_MS, check: count };
  },
  'node setTimeout': async (n) => {
    let count = 0;
    let done;
    const cb = () => {
      if (++count === n) done();
    };
    gc();
    const t0 = performance.now();
    await new Promise((resolve) => {
      done = resolve;
      for (let i = 0; i < n; i++) setTimeout(cb, 1 + (i % SPREAD_MS));
    });
    return { ms: performance.now() - t0 - SPREAD_MS, check: count };
  },
  'ts heap loop': async (n) => {
    const loop = new HeapLoop();
    let count = 0;
    let done;
    const cb = () => {
      if (++count === n) done();
    };
    gc();
    const t0 = performance.now();
    await loop.runUntilComplete(
      new Promise((resolve) => {
        done = resolve;
        loop.callSoon(() => {
          for (let i = 0; i < n; i++) loop.callLater(1 + (i % SPREAD_MS), cb);
        });
      }),
    );
    return { ms: performance.now() - t0 - SPREAD_MS, check: count };
  },
};

const timersCancelled = {
  wasmloop: async (n) => {
    const loop = await createLoop();
    const handles = new Array(n);
    let fired = 0;
    const cb = () => fired++;
    gc();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) handles[i] = loop.callLater(1 + (i % SPREAD_MS), cb);
    for (let i = 0; i < n; i++) handles[i].cancel();
    const ms = performance.now() - t0;
    // Nothing may fire afterwards.
    await loop.runUntilComplete(() => loop.sleep(SPREAD_MS + 5));
    const left = loop.stats().timersPending;
    await loop.close();
    return { ms, check: fired === 0 && left === 0 && handles.every((h) => h.cancelled()) ? n : -1 };
  },
  'node setTimeout': async (n) => {
    const handles = new Array(n);
    let fired = 0;
    const cb = () => fired++;
    gc();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) handles[i] = setTimeout(cb, 1 + (i % SPREAD_MS));
    for (let i = 0; i < n; i++) clearTimeout(handles[i]);
    const ms = performance.now() - t0;
    await sleep(SPREAD_MS + 5);
    return { ms, check: fired === 0 ? n : -1 };
  },
  'ts heap loop': async (n) => {
    const loop = new HeapLoop();
    const handles = new Array(n);
    let fired = 0;
    const cb = () => fired++;
    gc();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) handles[i] = loop.callLater(1 + (i % SPREAD_MS), cb);
    for (let i = 0; i < n; i++) handles[i].cancel();
    const ms = performance.now() - t0;
    await loop.runUntilComplete(new Promise((resolve) => setTimeout(resolve, SPREAD_MS + 5)));
    return { ms, check: fired === 0 && handles.every((h) => h.cancelled()) ? n : -1 };
  },
  'host-side floor (no core)': async (n) => {
    const floor = new HostFloor();
    const handles = new Array(n);
    let fired = 0;
    const cb = () => fired++;
    gc();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) handles[i] = floor.callLater(1 + (i % SPREAD_MS), cb);
    for (let i = 0; i < n; i++) handles[i].cancel();
    const ms = performance.now() - t0;
    return { ms, check: floor.pending() === 0 && handles.every((h) => h.cancelled()) ? n : -1 };
  },
  // The core with nothing of the host's around it: its `call-later` and
  // `cancel` exports called raw, on an instance of its own made for the run
  // as each run's loop makes one (so it grows its memory as the loop's
  // does), the ids kept in a Float64Array: no handle, no callback table, no
  // argument check. The host-side floor is the rest of what the loop is
  // made of; the two together are the loop's parts, each measured alone.
  'core alone (raw exports)': async (n) => {
    const core = rawCore(await compileCore());
    const callLater = core.method('call-later');
    const cancel = core.method('cancel');
    const rep = core.rep;
    const ids = new Float64Array(n);
    let cancelled = 0;
    gc();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) ids[i] = callLater(rep, 1 + (i % SPREAD_MS));
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const slot = slotOf(id);
      cancelled += cancel(rep, slot, generationOf(id, slot));
    }
    const ms = performance.now() - t0;
    return { ms, check: cancelled };
  },
};

/**
 * What `callLater`, `callSoon` and `cancel` cost on the host's side alone,
 * with no core behind them: the argument checks, the callback table (chunks
 * of 4096, as the loop keeps it), and the loop's own handle objects
 * (`makeTimerHandle`, `makeHandle`), whose `cancel` clears the table entry;
 * `runAll` runs the table as the loop's batch does. Node's time over this
 * one is the best ratio any core, however fast, could reach with these
 * handles.
 */
class HostFloor {
  #chunks = [];
  #next = 0;
  #epoch = { loop: this, time: performance.now() };
  #soon = { loop: this, time: Number.NaN };
  callLater(delayMs, callback) {
    if (typeof delayMs !== 'number' || delayMs !== delayMs) throw new TypeError('callLater: delayMs must be a number');
    if (typeof callback !== 'function') throw new TypeError('callLater: callback must be a function');
    return makeTimerHandle(this.#epoch, this.#store(callback), 0, Math.max(delayMs, 0));
  }
  callSoon(callback) {
    if (typeof callback !== 'function') throw new TypeError('callSoon: callback must be a function');
    return makeHandle(this.#soon, this.#store(callback), 0);
  }
  #store(callback) {
    const slot = this.#next++;
    let chunk = this.#chunks[slot >>> 12];
    if (chunk === undefined) {
      chunk = new Array(4096);
      this.#chunks[slot >>> 12] = chunk;
    }
    chunk[slot & 4095] = callback;
    return slot;
  }
  _cancel(slot) {
    this.#chunks[slot >>> 12][slot & 4095] = undefined;
  }
  /**
   * Runs every stored callback in the order stored, each entry cleared
   * first and the microtask queue drained after each, as the loop's batch
   * runs them (callbacks.ts).
   */
  runAll() {
    const drain = microtaskDrain();
    const chunks = this.#chunks;
    for (let slot = 0; slot < this.#next; slot++) {
      const chunk = chunks[slot >>> 12];
      const entry = chunk[slot & 4095];
      if (entry === undefined) continue;
      chunk[slot & 4095] = undefined;
      try {
        entry();
      } catch (error) {
        console.error(error);
      }
      if (drain !== null) drain();
    }
    this.#next = 0;
  }
  pending() {
    return this.#chunks.reduce((n, chunk) => n + chunk.filter((entry) => entry !== undefined).length, 0);
  }
}

const soonRun = {
  wasmloop: async (n) => {
    const loop = await createLoop();
    let count = 0;
    let done;
    const cb = () => {
      if (++count === n) done();
    };
    gc();
    const t0 = performance.now();
    await loop.runUntilComplete(
      () =>
        new Promise((resolve) => {
          done = resolve;
          for (let i = 0; i < n; i++) loop.callSoon(cb);
        }),
    );
    const ms = performance.now() - t0;
    await loop.close();
    return { ms, check: count };
  },
  'node setImmediate': async (n) => {
    let count = 0;
    let done;
    const cb = () => {
      if (++count === n) done();
    };
    gc();
    const t0 = performance.now();
    await new Promise((resolve) => {
      done = resolve;
      for (let i = 0; i < n; i++) setImmediate(cb);
    });
    return { ms: performance.now() - t0, check: count };
  },
  'ts heap loop': async (n) => {
    const loop = new HeapLoop();
    let count = 0;
    let done;
    const cb = () => {
      if (++count === n) done();
    };
    gc();
    const t0 = performance.now();
    await loop.runUntilComplete(
      new Promise((resolve) => {
        done = resolve;
        loop.callSoon(() => {
          for (let i = 0; i < n; i++) loop.callSoon(cb);
        });
      }),
    );
    return { ms: performance.now() - t0, check: count };
  },
  'host-side floor (no core)': async (n) => {
    const floor = new HostFloor();
    let count = 0;
    const cb = () => count++;
    gc();
    const t0 = performance.now();
    await new Promise((resolve) =>
      setImmediate(() => {
        for (let i = 0; i < n; i++) floor.callSoon(cb);
        floor.runAll();
        resolve();
      }),
    );
    return { ms: performance.now() - t0, check: floor.pending() === 0 ? count : -1 };
  },
};

// -------------------------------------------------------------- harness

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
};

/**
 * Runs each contender once on the full workload and checks what it
 * observed. The same size as the timed runs on purpose: it is the warm-up
 * too, and a smaller run would leave V8 in a state the timed runs never
 * see (a short run whose handles all die teaches V8's allocation-site
 * pretenuring that they die young, a decision it did not revisit here: the kept
 * handles of every timed run then pay for scavenges instead).
 */
async function validate(name, contenders, n) {
  for (const [who, run] of Object.entries(contenders)) {
    const { check } = await run(n);
    if (check !== n) throw new Error(`${name}: ${who} failed validation (got ${check}, expected ${n})`);
  }
}

/**
 * Runs every contender `runs` times on `n` items, alternating and rotating
 * the order; each contender's ns per item: the median, the range, and every
 * run (`runs`, which `acrossProcesses` pools).
 */
async function measure(name, contenders, n = N, runs = RUNS) {
  await validate(name, contenders, n);
  const names = Object.keys(contenders);
  const times = Object.fromEntries(names.map((k) => [k, []]));
  for (let r = 0; r < runs; r++) {
    for (let j = 0; j < names.length; j++) {
      const who = names[(r + j) % names.length];
      const { ms, check } = await contenders[who](n);
      if (check !== n) throw new Error(`${name}: ${who} lost work in run ${r} (${check} of ${n})`);
      times[who].push((ms * 1e6) / n);
    }
  }
  return Object.fromEntries(names.map((k) => [k, { ...stats(times[k]), runs: times[k] }]));
}

/**
 * One isolated benchmark measured in several processes (`measure`'s figures
 * from each), summed up per contender: the median of its processes'
 * medians, the range of all its runs, and its ratio to `baseline` as each
 * process measured it (the peer's median over the baseline's, both from
 * that process), with the median and the range of those ratios. A process
 * is one sample of what V8 decides for a workload (when it tenures, what
 * it optimizes) and of the machine's state at that minute: the same
 * build's section 1 read 2.42x and 3.98x in two processes a minute apart
 * (2026-11-29), a spread that the runs within one process do not show.
 */
function acrossProcesses(results, baseline) {
  const out = {};
  for (const who of Object.keys(results[0])) {
    const ratios = results.map((r) => r[who].median / r[baseline].median);
    const runs = stats(results.flatMap((r) => r[who].runs));
    const median = stats(results.map((r) => r[who].median)).median;
    out[who] = { median, min: runs.min, max: runs.max, ratio: stats(ratios) };
  }
  return out;
}

// --------------------------------------------------------------- memory

/**
 * Bytes per pending timer held by a scheduler at N pending: JS heap growth
 * (after full GCs) plus Wasm memory growth. Each scheduler is measured in a
 * function of its own and torn down before the next, so one's garbage never
 * lands in another's figure.
 */
function heapUsed() {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

async function memoryOf(who) {
  const cb = () => {};
  if (who === 'wasmloop') {
    const loop = await createLoop();
    const heap0 = heapUsed();
    const wasm0 = loop.stats().wasmMemoryBytes;
    for (let i = 0; i < N; i++) loop.callLater(1e9 + (i % SPREAD_MS), cb);
    const heap1 = heapUsed();
    const wasm1 = loop.stats().wasmMemoryBytes;
    if (loop.stats().timersPending !== N) throw new Error('memory: wasmloop lost timers');
    await loop.close();
    return { wasm: (wasm1 - wasm0) / N, js: (heap1 - heap0) / N };
  }
  if (who === 'node setTimeout') {
    const handles = new Array(N).fill(null);
    const heap0 = heapUsed();
    for (let i = 0; i < N; i++) handles[i] = setTimeout(cb, 1e9 + (i % SPREAD_MS));
    const heap1 = heapUsed();
    for (let i = 0; i < N; i++) {
      clearTimeout(handles[i]);
      handles[i] = null;
    }
    return { wasm: 0, js: (heap1 - heap0) / N };
  }
  const loop = new HeapLoop();
  const heap0 = heapUsed();
  for (let i = 0; i < N; i++) loop.callLater(1e9 + (i % SPREAD_MS), cb);
  const heap1 = heapUsed();
  return { wasm: 0, js: (heap1 - heap0) / N, keep: loop };
}

async function memory() {
  const out = {};
  for (const who of ['wasmloop', 'node setTimeout', 'ts heap loop']) {
    const { wasm, js } = await memoryOf(who);
    out[who] = { wasm, js };
    heapUsed();
  }
  return out;
}

// ------------------------------------------------------------- boundary

/**
 * A core instance of its own from `modules` (`compileCore()`), with no loop
 * of the host's around it (its clock reads 0, nothing is ever ready or
 * completed): `bound`, its `event-loop` resource through jco's bindings;
 * `rep`, the core's pointer for that resource; `method(name)`, the raw
 * export of one of its methods, which takes `rep` first.
 */
function rawCore(modules) {
  let rawExports;
  let rep;
  const root = instantiate(
    (file) => modules.get(file),
    {
      'wasmloop:core/clock': { now: () => 0 },
      'wasmloop:core/readiness': { takeReady: () => new Uint32Array(0) },
      'wasmloop:core/completion': { takeCompleted: () => new Uint32Array(0) },
    },
    (module, imports) => {
      const key = '[export]wasmloop:core/event-loop@0.1.0';
      if (imports?.[key]) {
        const create = imports[key]['[resource-new]event-loop'];
        imports[key]['[resource-new]event-loop'] = (r) => {
          rep = r;
          return create(r);
        };
      }
      const instance = new WebAssembly.Instance(module, imports);
      if (instance.exports.memory) rawExports = instance.exports;
      return instance;
    },
  );
  const bound = new root.eventLoop.EventLoop();
  const method = (name) => {
    const f = rawExports[`wasmloop:core/event-loop@0.1.0#[method]event-loop.${name}`];
    if (typeof f !== 'function') throw new Error(`the core component lacks event-loop.${name}`);
    return f;
  };
  return { bound, rep, method };
}

/** ns per call: a trivial export through jco's bindings, raw, and a JS function. */
async function boundary() {
  const { bound, rep, method } = rawCore(await compileCore());
  const raw = method('time');
  const js = {
    t: 0,
    time() {
      return this.t;
    },
  };
  const M = 10_000_000;
  const contenders = {
    'jco 1.12.0 bindings': () => {
      let s = 0;
      for (let i = 0; i < M; i++) s += bound.time();
      return s;
    },
    'raw Wasm export': () => {
      let s = 0;
      for (let i = 0; i < M; i++) s += raw(rep);
      return s;
    },
    'plain JS method': () => {
      let s = 0;
      for (let i = 0; i < M; i++) s += js.time();
      return s;
    },
  };
  for (const f of Object.values(contenders)) if (f() !== 0) throw new Error('boundary: validation failed');
  const times = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let r = 0; r < RUNS; r++) {
    for (const [k, f] of Object.entries(contenders)) {
      gc();
      const t0 = performance.now();
      f();
      times[k].push(((performance.now() - t0) * 1e6) / M);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, stats(v)]));
}

// ---------------------------------------------------- readiness iteration

/**
 * ns per readiness iteration: a one-byte ping-pong through a pipe, each
 * byte read in a readiness callback that writes the next. Through the loop
 * (`addReader` on the selector backend) and through the selector's bare
 * poller (the addon's uv_poll batch straight into JavaScript, no loop): the
 * difference is what the loop adds to each I/O iteration (the run-once
 * crossing, the token take, the batch, the accounting).
 */
async function readinessIteration() {
  const { loadSelectorAddon } = await import('../ts-host/dist/backends/selector.js');
  const addon = loadSelectorAddon();
  const M = 100_000;
  const one = new Uint8Array([1]);
  const scratch = new Uint8Array(16);
  const contenders = {
    'wasmloop selector (addReader)': async () => {
      const loop = await createLoop({ backend: 'selector' });
      const [r, w] = addon.pipe();
      let n = 0;
      gc();
      const t0 = performance.now();
      await loop.runUntilComplete(
        () =>
          new Promise((resolve) => {
            loop.addReader(r, () => {
              addon.read(r, scratch, 0, 16);
              if (++n === M) {
                loop.removeReader(r);
                resolve();
                return;
              }
              addon.write(w, one, 0, 1);
            });
            addon.write(w, one, 0, 1);
          }),
      );
      const ns = ((performance.now() - t0) * 1e6) / M;
      addon.close(r);
      addon.close(w);
      await loop.close();
      return { ns, check: n };
    },
    'bare poller (no loop)': async () => {
      const [r, w] = addon.pipe();
      const shared = new Uint32Array(16);
      let n = 0;
      let done;
      const finished = new Promise((resolve) => (done = resolve));
      const poller = new addon.Poller((count) => {
        for (let i = 0; i < count; i++) {
          addon.read(r, scratch, 0, 16);
          if (++n === M) {
            poller.unwatch(r, 1);
            done();
            return;
          }
          addon.write(w, one, 0, 1);
        }
      }, shared);
      gc();
      const t0 = performance.now();
      poller.watch(r, 1, 1);
      addon.write(w, one, 0, 1);
      await finished;
      const ns = ((performance.now() - t0) * 1e6) / M;
      poller.close();
      addon.close(r);
      addon.close(w);
      return { ns, check: n };
    },
  };
  for (const [who, f] of Object.entries(contenders)) {
    const { check } = await f();
    if (check !== M) throw new Error(`readiness iteration: ${who} ran ${check} of ${M}`);
  }
  const times = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let r = 0; r < RUNS; r++) {
    for (const [k, f] of Object.entries(contenders)) times[k].push((await f()).ns);
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, stats(v)]));
}

// ------------------------------------------------------------ cold start

function coldStart() {
  const url = new URL('../ts-host/dist/index.js', import.meta.url).href;
  const program = `
    const t0 = performance.now();
    const { createLoop } = await import(${JSON.stringify(url)});
    const t1 = performance.now();
    const loop = await createLoop();
    const t2 = performance.now();
    const again = await createLoop();
    const t3 = performance.now();
    console.log(JSON.stringify({ importMs: t1 - t0, firstLoopMs: t2 - t1, nextLoopMs: t3 - t2 }));`;
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', program], { encoding: 'utf8' });
    runs.push(JSON.parse(out));
  }
  return {
    importMs: stats(runs.map((r) => r.importMs)),
    firstLoopMs: stats(runs.map((r) => r.firstLoopMs)),
    nextLoopMs: stats(runs.map((r) => r.nextLoopMs)),
  };
}

// --------------------------------------------------------------- report

const fmt = (x, digits = 1) => x.toFixed(digits);
const machine = () => {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`;
};

/**
 * An isolated section's table (`acrossProcesses` figures); each target is
 * judged on the median of the processes' ratios. `floors[who]`: what a
 * missed target of `who`'s is said beside (a ratio the measured floors
 * allow).
 */
function table(result, baseline, targets, floors = {}) {
  const rows = [
    '| contender | median ns/op (median of processes) | spread of all runs (min–max) | ratio vs wasmloop (median of processes) | processes (min–max) | target |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const [who, s] of Object.entries(result)) {
    const ours = who === baseline;
    const ratio = ours ? '1.00x' : `${fmt(s.ratio.median, 2)}x`;
    const range = ours ? '' : `${fmt(s.ratio.min, 2)}x–${fmt(s.ratio.max, 2)}x`;
    const target = targets[who];
    const met = target === undefined || s.ratio.median >= target;
    const floor = !met && floors[who] !== undefined ? ` (${floors[who]})` : '';
    const verdict = target === undefined ? '' : `>= ${target}x: ${met ? 'met' : `**not met**${floor}`}`;
    rows.push(`| ${who} | ${fmt(s.median)} | ${fmt(s.min)}–${fmt(s.max)} | ${ratio} | ${range} | ${verdict} |`);
  }
  return rows.join('\n');
}

/**
 * Each benchmark runs in a process of its own (its contenders side by side,
 * alternating, in that one process), so the JIT and GC state one benchmark
 * leaves behind (V8's pretenuring decisions above all) never favours or
 * penalises a contender in the next.
 */
const BENCHMARKS = {
  mixed: () => mixed({ runs: Math.max(RUNS, 9), n: N }),
  fired: () => measure('timers fired', timersFired),
  cancelled: () => measure('timers cancelled', timersCancelled),
  soon: () => measure('callSoon', soonRun),
  virtual: () => measure('virtual hour', virtualHour, VIRTUAL_N, 9),
  memory: () => memory(),
  boundary: () => boundary(),
  iteration: () => readinessIteration(),
};

function inChild(name) {
  console.error(`${name}...`);
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', fileURLToPath(import.meta.url), '--only', name, '--runs', String(RUNS), '--n', String(N)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
  );
  return JSON.parse(out);
}

/** The TCP benchmark's floor under a streams API on node:net (bench/tcp/node-net-streams-floor.mjs). */
const STREAMS_FLOOR = 'streams floor on node net (no loop)';

/** The TCP benchmark's bare poller (bench/tcp/bare-echo.mjs): the floor under every server on Node. */
const BARE_POLLER = 'bare poller (no loop)';

/**
 * The TCP benchmark's control (bench/tcp/run.mjs): uvloop's server a second
 * time, whose difference from the first is a sample of the run's noise.
 */
const SECOND_UVLOOP = "a second uvloop (the run's noise)";

/**
 * The run's noise beside a missed target: `ratio` (a server's figure over
 * its peer's) misses `target` (`atLeast`: a floor, else a ceiling) by no
 * more than the two identical uvloop servers differ (`aa`, the second's
 * figure over the first's). One pair's difference is a sample of the
 * noise, not a bound on it, so the verdict stays a miss; the note says
 * the run could not tell the difference.
 */
function noiseNote(ratio, target, atLeast, aa, figure) {
  if (!Number.isFinite(aa)) return '';
  const miss = atLeast ? target / ratio : ratio / target;
  const noise = Math.max(aa, 1 / aa);
  return miss <= noise ? `within the run's noise: a second uvloop's ${figure} was ${fmt(aa, 2)}x the first's` : '';
}

/** How far over the bare poller's system calls per round trip a wasmloop server may go. */
const SYSCALL_MARGIN = 0.1;

/**
 * The system calls per round trip of a TCP row (bench/tcp/syscalls.mjs),
 * each server's beside the bare poller's, the floor under every server on
 * Node: a wasmloop server making more than the floor's, by more than
 * timing moves the polls, is a regression in the loop's I/O path.
 */
function syscallSection(row) {
  const bare = row.servers[BARE_POLLER]?.syscalls;
  const check = (who, total) => {
    if (!who.startsWith('wasmloop') || bare === undefined) return '';
    const over = total - bare.total;
    return `<= the bare poller + ${SYSCALL_MARGIN}: ${over <= SYSCALL_MARGIN ? 'met' : `**not met** (${fmt(over, 2)} more)`}`;
  };
  return `\n\nSystem calls per round trip, server side, over one more run of ${row.syscalls.toLocaleString('en')} round trips (counted ${row.syscallCounter === 'perf' ? 'in the kernel with `perf stat` on the syscall tracepoints, the server running at full speed' : 'with `strace -c -f`, which stops the server at every call and so changes how calls batch'}; bench/tcp/syscalls.mjs). *epoll_pwait* is libuv's poll (Node and uvloop), *empty* those of its calls that found nothing ready; *epoll_wait* a poll of the server's own: the selector's epoll set, which libuv's poll only reports as readable (one more call per wakeup), and Python's selectors. *read* and *write* are the socket calls, \`recv\`/\`send\` included. Node turns on libuv's idle-time metrics, and with them libuv first polls with a zero timeout, then blocks if that found nothing: a call more whenever the next message had not arrived yet, which timing decides: the *empty* column.${row.connections === 1 ? ' At one connection every round trip is a wakeup, so *read* and *write* are the same on any machine.' : ' With many connections a wakeup serves several round trips, so the polls move with timing.'} The check: no wasmloop server makes more calls per round trip than the bare poller (the addon's batch straight into JavaScript, Node's floor) by more than ${SYSCALL_MARGIN}, so a call the loop adds to each wakeup shows on any machine.

| server | epoll_pwait | empty | epoll_wait | read | write | other | total | check |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${Object.entries(row.servers)
  .filter(([, r]) => r.syscalls)
  .map(
    ([who, r]) =>
      `| ${who} | ${fmt(r.syscalls.pwait, 2)} | ${r.syscalls.pwaitEmpty === null ? 'n/a' : fmt(r.syscalls.pwaitEmpty, 2)} | ${fmt(r.syscalls.wait, 2)} | ${fmt(r.syscalls.read, 2)} | ${fmt(r.syscalls.write, 2)} | ${fmt(r.syscalls.other, 2)} | ${fmt(r.syscalls.total, 2)} | ${check(who, r.syscalls.total)} |`,
  )
  .join('\n')}`;
}

/**
 * The user CPU per round trip of a TCP row, pooled over its passes
 * (bench/tcp/run.mjs), each server against uvloop's and the bare poller's,
 * with the target for wasmloop's servers: within 1.2x uvloop's. Node's
 * floor (the bare poller) is said beside it.
 */
function userCpuSection(row) {
  const uv = row.servers.uvloop.userCpu;
  const bare = row.servers[BARE_POLLER].userCpu;
  const floor = bare.pooled / uv.pooled;
  const rows = Object.entries(row.servers)
    .filter(([, r]) => r.userCpu)
    .map(([who, r]) => {
      const u = r.userCpu;
      const vsUv = u.pooled / uv.pooled;
      const target = who.startsWith('wasmloop')
        ? `<= 1.2x uvloop: ${vsUv <= 1.2 ? 'met' : `**not met**${floor > 1.2 ? ` (the bare poller, Node's floor: ${fmt(floor, 2)}x)` : ''}`}`
        : '';
      return `| ${who} | ${fmt(u.pooled, 2)} | ${fmt(u.min, 2)}–${fmt(u.max, 2)} | ${fmt(vsUv, 2)}x | ${fmt(u.pooled - bare.pooled, 2)} | ${target} |`;
    });
  return `

User CPU per round trip, server side, pooled over ${uv.passes} more passes of ${row.userCpu.roundTrips.toLocaleString('en')} round trips, every server once per pass (bench/tcp/run.mjs). /proc counts user and system time by where the scheduler tick finds the process, and at one connection user time is about a tenth of the CPU: the few dozen ticks of it in each 2-second run above make that column move by a quarter between runs; pooled, each figure here rests on ${uv.roundTrips.toLocaleString('en')} round trips. At one connection every round trip is a wakeup: this is the user CPU per wakeup. The bare poller is Node's floor, what any server on Node pays: one libuv iteration, the addon's callback into JavaScript, a read and a write through the addon.

| server | user µs/round trip (pooled) | passes (min–max) | vs uvloop | over the bare poller, µs | target |
| --- | ---: | ---: | ---: | ---: | --- |
${rows.join('\n')}

Node's floor, the bare poller, is ${fmt(floor, 2)}x uvloop's user CPU per round trip here, and ${fmt(row.servers[BARE_POLLER].roundTrips / row.servers.uvloop.roundTrips, 2)}x its round trips per second in the table above.`;
}

/**
 * The results as one SVG bar chart: for each benchmark and peer, how many
 * times faster wasmloop was (peer time / wasmloop time, or wasmloop
 * throughput / peer throughput for TCP). 1x is a tie; targets are marked.
 */
function chart(mix, fired, cancelled, soon, virt, tcp) {
  const rows = [];
  for (const [name, r] of Object.entries(mix.results)) {
    rows.push({ label: `mixed: ${name} vs Node`, ratio: r.ratio, target: MIXED_TARGETS[name] });
  }
  const timed = (title, result, ours, targets) => {
    for (const [who, s] of Object.entries(result)) {
      if (who === ours) continue;
      rows.push({ label: `${title}: vs ${who}`, ratio: s.ratio.median, target: targets[who] });
    }
  };
  timed('isolated: 1M timers fired', fired, 'wasmloop', { 'node setTimeout': 3, 'ts heap loop': 1 });
  timed('isolated: 1M timers cancelled', cancelled, 'wasmloop', { 'node setTimeout': 2, 'ts heap loop': 1 });
  timed('isolated: 1M callSoon', soon, 'wasmloop', { 'node setImmediate': 2, 'ts heap loop': 1 });
  timed('virtual hour', virt, 'wasmloop virtual', { 'sinon fake-timers': 5 });
  for (const row of tcp) {
    if (row.scale) continue;
    const name = `TCP ${row.connections}x${row.bytes >= 1024 ? `${row.bytes / 1024}KiB` : `${row.bytes}B`}`;
    for (const ours of [
      'wasmloop selector',
      'wasmloop completion',
      'wasmloop selector, protocol',
      'wasmloop completion, protocol',
    ]) {
      for (const peer of ['node net', 'uvloop', 'asyncio']) {
        rows.push({
          label: `${name} ${ours.replace('wasmloop ', '')}: vs ${peer}`,
          ratio: row.servers[ours].roundTrips / row.servers[peer].roundTrips,
          target: peer === 'node net' ? 0.9 : peer === 'uvloop' ? 1 : undefined,
        });
      }
    }
  }
  const left = 330;
  const width = 900;
  const barH = 16;
  const gap = 6;
  const top = 40;
  const max = Math.max(2, ...rows.map((r) => Math.max(r.ratio, r.target ?? 0))) * 1.05;
  const x = (v) => left + (v / max) * (width - left - 60);
  const height = top + rows.length * (barH + gap) + 30;
  const esc = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const bars = rows
    .map((r, i) => {
      const y = top + i * (barH + gap);
      const ok = r.target === undefined || r.ratio >= r.target;
      const fill = r.ratio >= 1 ? (ok ? '#2f855a' : '#d69e2e') : ok ? '#d69e2e' : '#c53030';
      const mark =
        r.target === undefined
          ? ''
          : `<line x1="${x(r.target)}" y1="${y - 2}" x2="${x(r.target)}" y2="${y + barH + 2}" stroke="#1a202c" stroke-width="2"/>`;
      return (
        `<text x="${left - 8}" y="${y + barH - 4}" text-anchor="end" font-size="12">${esc(r.label)}</text>` +
        `<rect x="${left}" y="${y}" width="${Math.max(1, x(r.ratio) - left)}" height="${barH}" fill="${fill}"/>` +
        `<text x="${x(r.ratio) + 4}" y="${y + barH - 4}" font-size="11">${r.ratio.toFixed(2)}x</text>${mark}`
      );
    })
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">wasmloop against its peers: how many times faster (higher is better; black marks: targets)</text>
<line x1="${x(1)}" y1="${top - 6}" x2="${x(1)}" y2="${height - 24}" stroke="#718096" stroke-dasharray="4 3"/>
<text x="${x(1)}" y="${height - 10}" font-size="11" text-anchor="middle">1x (a tie)</text>
${bars}
</svg>
`;
}

async function main() {
  const only = options.only;
  if (only !== undefined) {
    if (!Object.hasOwn(BENCHMARKS, only)) {
      console.error(`bench/run.mjs: --only takes one of ${Object.keys(BENCHMARKS).join(', ')}, got ${only}`);
      process.exit(2);
    }
    process.stdout.write(JSON.stringify(await BENCHMARKS[only]()));
    return;
  }
  const started = new Date();
  console.error(`wasmloop benchmarks: N=${N}, ${RUNS} alternating runs each, isolated ones in ${PROCESSES} processes`);
  const mix = inChild('mixed');
  // The isolated benchmarks take turns, so that a slow minute of the
  // machine's falls on one process of each rather than on all of one.
  const isolated = { fired: [], cancelled: [], soon: [], virtual: [] };
  for (let p = 0; p < PROCESSES; p++) for (const name of Object.keys(isolated)) isolated[name].push(inChild(name));
  const fired = acrossProcesses(isolated.fired, 'wasmloop');
  const cancelled = acrossProcesses(isolated.cancelled, 'wasmloop');
  const soon = acrossProcesses(isolated.soon, 'wasmloop');
  const virt = acrossProcesses(isolated.virtual, 'wasmloop virtual');
  // Section 2's two floors: the loop's host side alone and its core alone.
  const host = cancelled['host-side floor (no core)'].median;
  const core = cancelled['core alone (raw exports)'].median;
  const cancelledParts = { host, core, ceiling: cancelled['node setTimeout'].median / (host + core) };
  const mem = inChild('memory');
  const bound = inChild('boundary');
  const iteration = inChild('iteration');
  console.error('tcp echo...');
  const tcp = JSON.parse(
    execFileSync(process.execPath, [fileURLToPath(new URL('./tcp/run.mjs', import.meta.url)), ...TCP_ARGS], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  console.error('cold start...');
  const cold = coldStart();
  const componentBytes = statSync(new URL('../build/core.component.wasm', import.meta.url)).size;
  const jcoVersion = JSON.parse(
    readFileSync(new URL('../node_modules/@bytecodealliance/jco/package.json', import.meta.url)),
  ).version;

  const memRows = Object.entries(mem)
    .map(([who, m]) => `| ${who} | ${fmt(m.wasm)} | ${fmt(m.js)} | ${fmt(m.wasm + m.js)} |`)
    .join('\n');
  const ourMem = mem.wasmloop.wasm + mem.wasmloop.js;
  const boundRatio = bound['jco 1.12.0 bindings'].median / bound['raw Wasm export'].median;
  const boundRows = Object.entries(bound)
    .map(([who, s]) => `| ${who} | ${fmt(s.median, 2)} | ${fmt(s.min, 2)}–${fmt(s.max, 2)} |`)
    .join('\n');

  const tcpSections = tcp
    .map((row) => {
      const node = row.servers['node net'];
      const uv = row.servers.uvloop;
      // The floor of the streams API on node:net, said beside a miss of the server on it.
      const streamsFloor = row.servers[STREAMS_FLOOR];
      // Node's floor, said beside a miss of uvloop's throughput.
      const bare = row.servers[BARE_POLLER];
      const bareNote =
        bare === undefined ? '' : `the bare poller, Node's floor: ${fmt(bare.roundTrips / uv.roundTrips, 2)}x`;
      // The control: the second uvloop's throughput and p99 over the first's.
      const control = row.servers[SECOND_UVLOOP];
      const aaThroughput = control === undefined ? undefined : control.roundTrips / uv.roundTrips;
      const aaP99 = control === undefined ? undefined : control.p99us / uv.p99us;
      // What is said beside a miss: the floor under it, and the run's noise when the miss is within it.
      const missNote = (parts) => {
        const said = parts.filter((part) => part !== '').join('; ');
        return said === '' ? '' : ` (${said})`;
      };
      const lines = Object.entries(row.servers).map(([who, r]) => {
        const vsNode = r.roundTrips / node.roundTrips;
        const p99VsNode = r.p99us / node.p99us;
        const vsUv = r.roundTrips / uv.roundTrips;
        const onNet = who === 'wasmloop completion (node:net)' && streamsFloor !== undefined;
        const floorNote = (ratio) => (onNet ? `the streams floor on node net: ${fmt(ratio, 2)}x` : '');
        const targets =
          who.startsWith('wasmloop') && !row.scale
            ? `throughput >= 0.9x node: ${vsNode >= 0.9 ? 'met' : `**not met**${missNote([floorNote(streamsFloor?.roundTrips / node.roundTrips), noiseNote(vsNode, 0.9, true, aaThroughput, 'throughput')])}`}; p99 <= 1.2x node: ${p99VsNode <= 1.2 ? 'met' : `**not met**${missNote([floorNote(streamsFloor?.p99us / node.p99us), noiseNote(p99VsNode, 1.2, false, aaP99, 'p99')])}`}; beats uvloop: ${vsUv > 1 ? 'met' : `**not met**${missNote([bareNote, noiseNote(vsUv, 1, true, aaThroughput, 'throughput')])}`}`
            : '';
        const cpu = r.serverUserUs === null ? 'n/a' : `${fmt(r.serverUserUs, 2)} + ${fmt(r.serverSysUs, 2)}`;
        const mib = (bytes) => fmt(bytes / 2 ** 20, 0);
        const memory =
          r.rss === null
            ? 'n/a'
            : row.scale && r.idleRss !== null
              ? `${mib(r.rss)} (${fmt((r.rss - r.idleRss) / row.connections / 1024, 1)} KiB per connection)`
              : mib(r.rss);
        return `| ${who} | ${Math.round(r.roundTrips).toLocaleString('en')} | ${Math.round(r.min).toLocaleString('en')}–${Math.round(r.max).toLocaleString('en')} | ${r.p50us} | ${r.p99us} | ${cpu} | ${Math.round(r.clientCpu * 100)}% | ${memory} | ${fmt(vsNode, 2)}x | ${fmt(p99VsNode, 2)}x | ${fmt(vsUv, 2)}x | ${targets} |`;
      });
      const syscallTable = Object.values(row.servers).some((r) => r.syscalls) ? syscallSection(row) : '';
      const userCpuTable = Object.values(row.servers).some((r) => r.userCpu) ? userCpuSection(row) : '';
      const controlNote =
        control === undefined || row.scale
          ? ''
          : `\n\nThe run's noise: the last row is uvloop's server a second time, the same program taking its turns with the rest, at ${fmt(aaThroughput, 2)}x the first one's throughput and ${fmt(aaP99, 2)}x its p99. Two servers of this table that differ by less than that differ by less than the run can tell; a missed target within it says so.`;
      const scaleNote = row.scale
        ? `\n\nA scale check, with no target: ${row.connections.toLocaleString('en')} connections open at once, every one a ping-pong. Memory per connection is the server's resident memory under load less its memory before the first connection, over the number of connections.`
        : '';
      return `### ${row.connections.toLocaleString('en')} connection${row.connections > 1 ? 's' : ''}, ${row.bytes >= 1024 ? `${row.bytes / 1024} KiB` : `${row.bytes}-byte`} messages${scaleNote}

${row.runs} alternating runs of ${row.seconds} s per server.

| server | round trips/s (median) | spread | p50 µs | p99 µs | server CPU µs/round trip (user + sys) | client CPU | server RSS MiB | throughput vs node | p99 vs node | throughput vs uvloop | targets |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${lines.join('\n')}${controlNote}${syscallTable}${userCpuTable}`;
    })
    .join('\n\n');

  const report = `# wasmloop benchmark results

Machine: ${machine()}
Date: ${started.toISOString().slice(0, 10)} (${started.toISOString()})
Command: \`make bench\` (\`node --expose-gc bench/run.mjs\`), N = ${N.toLocaleString('en')}, full GC before each timed run, every contender first validated on the full workload (which also warms it up), one shared callback per benchmark.
Ratios are peer time / wasmloop time from the same run (higher is better for wasmloop). The same ratios, as a chart: [results.svg](results.svg).

## 0. A program's mix: every timer workload in one process

What a program does with timers, in one process and on one loop (\`bench/mixed.mjs\`): ${mix.n.toLocaleString('en')} timers fired with their handles dropped, ${mix.n.toLocaleString('en')} timers whose handles are kept and then all cancelled, ${mix.n.toLocaleString('en')} \`callSoon\`, and a server's connection timeouts (${mix.connections.toLocaleString('en')} connections, each with a 10 s timeout pushed back on every read, ${mix.reads} reads per connection, one per connection per iteration, cancelled at close: \`loop.deadline\` and \`refresh()\`), each side by side with Node's own API for the same job (\`setTimeout\`, \`clearTimeout\`, \`setImmediate\`, \`timeout.refresh()\`). ${mix.runs} rounds; every round visits the workloads in a new shuffled order (seed ${mix.seed}), the two contenders of a workload back to back, which one first alternating. Every contender is validated first, in a shuffled order too. Wall time per operation; the fired workloads less the ${SPREAD_MS} ms they must wait.

${mixedReport(mix)}

Where the time went: the main thread's garbage-collection pauses inside each timed run (V8's \`gc\` performance entries that began between the run's first and last clock reading), per operation, and each contender's time with its own pauses left out. What is left is the mutator's share: the scheduler, the handles, the glue. V8 sizes its young generation by version (its new space grows to 32 MiB on Node 20 and 22, to 128 MiB on Node 24: \`v8.getHeapSpaceStatistics()\` while 3M objects are kept), and a kept handle is copied by every scavenge it lives through until it is promoted, so the pauses move between Node versions more than the loop does; the section "Core timers on the Node LTS" runs this section again on the current LTS.

${mixedGcReport(mix)}

The sections below (1 to 3b) run each benchmark alone, in ${PROCESSES} fresh processes of its own, taking turns with the other isolated benchmarks (its contenders side by side in each process, ${RUNS} alternating runs each): the isolated figures, kept to compare with earlier results. A contender's time is the median of its processes' medians, beside the range of all its runs; its ratio to wasmloop is each process's own (the two medians of that process), and the table gives the median of the ${PROCESSES} processes' ratios, on which the target is judged, and their range: a process is one sample of what V8 decides for the workload and of the machine's state at that minute, and the processes spread further than the runs within one.

## 1. ${N.toLocaleString('en')} \`callLater\` with delays spread over 1..${SPREAD_MS} ms, all fired (isolated)

Wall time from the first schedule to the last callback, minus the ${SPREAD_MS} ms every contender must wait.

${table(fired, 'wasmloop', { 'node setTimeout': 3, 'ts heap loop': 1 })}

## 2. ${N.toLocaleString('en')} \`callLater\`, handles kept, then all cancelled (isolated)

${table(cancelled, 'wasmloop', { 'node setTimeout': 2, 'ts heap loop': 1 }, { 'node setTimeout': `Node over the two floors together: ${fmt(cancelledParts.ceiling, 2)}x` })}

The host-side floor is no scheduler: the same argument checks, callback table and handle object (\`makeTimerHandle\`) with no core behind them. Node's time over the floor's, ${fmt(cancelled['node setTimeout'].median / cancelledParts.host, 2)}x, is the most any core could reach with this handle. The core alone is the loop's other part: its \`call-later\` and \`cancel\` exports called raw on an instance of its own, made for each run as the loop's is, with no handle, table or check: ${fmt(cancelledParts.core)} ns per timer. Node's time over the two floors together, ${fmt(cancelledParts.ceiling, 2)}x, is the most this core could reach with this handle; the loop spends ${fmt(cancelled.wasmloop.median - cancelledParts.host - cancelledParts.core)} ns per timer over its two parts (the glue between them, V8 compiling the loop's hot path again for each run's new instance, and the two sharing one process's caches and garbage collector: docs/design.md, "Where the time goes").

## 3. ${N.toLocaleString('en')} \`callSoon\`, all run (isolated)

${table(soon, 'wasmloop', { 'node setImmediate': 2, 'ts heap loop': 1 })}

The host-side floor here is the same argument check, callback table and handle object (\`makeHandle\`), and the microtask checkpoint after each callback that the loop's batch runs, with no core and no driver. Node's time over the floor's, ${fmt(soon['node setImmediate'].median / soon['host-side floor (no core)'].median, 2)}x, is the most any core could reach with this handle and this order; the core and the driver add ${fmt(soon.wasmloop.median - soon['host-side floor (no core)'].median)} ns per callback.

## 3b. Virtual time: ${VIRTUAL_N.toLocaleString('en')} timers spread over one virtual hour, all fired (isolated)

Scheduling plus running them all (\`loop.runAll()\` on the \`virtual\` backend, \`clock.runAll()\` for sinon), per timer; 9 alternating runs in each process.

${table(virt, 'wasmloop virtual', { 'sinon fake-timers': 5 })}

## 4. Memory per pending timer at ${N.toLocaleString('en')} pending

Wasm linear memory growth plus JS heap growth (after a full GC) while the timers are pending; handles are not kept by the caller (Node's \`Timeout\` objects are held by Node itself).

| scheduler | Wasm bytes/timer | JS heap bytes/timer | total bytes/timer |
| --- | ---: | ---: | ---: |
${memRows}

Target: at most 32 bytes per pending timer for wasmloop: ${ourMem <= 32 ? 'met' : '**not met**'} (${fmt(ourMem)}).

## 5. The boundary: a trivial export (\`event-loop.time\`)

| call | median ns/call | spread |
| --- | ---: | ---: |
${boundRows}

jco ${jcoVersion} bindings / raw Wasm: ${fmt(boundRatio, 2)}x (target: within 2x: ${boundRatio <= 2 ? 'met' : '**not met**'}).

## 5b. A readiness iteration: what the loop adds to each I/O wakeup

A one-byte ping-pong through a pipe, ${(100_000).toLocaleString('en')} iterations: each readiness callback reads the byte and writes the next, through the loop (\`addReader\` on the \`selector\` backend) and through the selector's bare poller (the addon's batch straight into JavaScript, no loop).

| path | median ns/iteration | spread |
| --- | ---: | ---: |
${Object.entries(iteration)
  .map(([who, s]) => `| ${who} | ${fmt(s.median, 0)} | ${fmt(s.min, 0)}–${fmt(s.max, 0)} |`)
  .join('\n')}

The loop adds ${fmt(iteration['wasmloop selector (addReader)'].median - iteration['bare poller (no loop)'].median, 0)} ns per iteration (no target; this guards the hot path).

## 6. TCP echo over loopback

One load client for every server: \`bench/tcp/echo-client.c\` (C, epoll), ping-pong (each connection sends a message and waits for all of it to come back, checked byte for byte), alternating timed runs per server after a validated warm-up (each section says how many and how long): 5 at one connection, where every round trip waits on the wakeups of two sleeping processes and a run's p99 follows what else the machine did in it, 3 at more. Servers: \`bench/tcp/wasmloop-echo.mjs\` (the \`read()\`/\`write()\` streams API) on each backend, the completion backend in both its implementations (native I/O, as \`completion\` picks on Node, and the portable \`node:net\` one), \`bench/tcp/wasmloop-protocol-echo.mjs\` (the protocol API, \`createProtocolServer\`, as the uvloop server uses protocols) on each backend, Node's \`net\` (\`socket.on('data') -> write\`), the floor under any \`read()\`/\`write()\` streams API on Node's \`net\` (\`bench/tcp/node-net-streams-floor.mjs\`: a promise per read and per write, no loop; the floor of the \`node:net\` row), the selector's bare poller with no loop on top (\`bench/tcp/bare-echo.mjs\`: the floor under every Node.js server here, what Node and the addon cost), and Python 3 asyncio and uvloop (\`pip install uvloop\`) with protocols (\`bench/tcp/asyncio-echo.py\`); last, as a control, uvloop's server a second time, whose difference from the first is what the machine did meanwhile (each table says it). Client and server share the machine's 2 cores.

Two columns say where a run's limit lies. *Server CPU* is the CPU time the server process used per round trip (all its threads, from /proc, in clock ticks over each 2 s run), user and kernel apart; *client CPU* is the share of one core the client used. Where the client is near 100%, the client is the limit and servers cannot pull apart; where neither is, as with one connection, each round trip waits on the wakeups of two sleeping processes.

${tcpSections}

## 7. The component and start-up

- Core component: ${componentBytes.toLocaleString('en')} bytes (${fmt(componentBytes / 1024)} KiB; target at most 64 KiB: ${componentBytes <= 64 * 1024 ? 'met' : '**not met**'}).
- Cold process, median of ${RUNS} (min–max): importing wasmloop ${fmt(cold.importMs.median, 2)} ms (${fmt(cold.importMs.min, 2)}–${fmt(cold.importMs.max, 2)}); first \`createLoop()\` (compiles the core) ${fmt(cold.firstLoopMs.median, 2)} ms (${fmt(cold.firstLoopMs.min, 2)}–${fmt(cold.firstLoopMs.max, 2)}); each later \`createLoop()\` ${fmt(cold.nextLoopMs.median, 2)} ms (${fmt(cold.nextLoopMs.min, 2)}–${fmt(cold.nextLoopMs.max, 2)}).
`;
  // The chart goes beside the report (bench/results.svg for bench/RESULTS.md).
  writeFileSync(new URL('./results.svg', pathToFileURL(OUT)), chart(mix, fired, cancelled, soon, virt, tcp));
  // Sections other targets append (stress, soak, fuzzing, deadlines, HTTP,
  // TLS, the hosts' I/O, the Node LTS rows) are kept: every one but the
  // numbered sections this report writes.
  let kept = '';
  try {
    const previous = readFileSync(OUT, 'utf8');
    kept = previous
      .split(/\n(?=## )/)
      .filter((section) => /^## (?!\d)/.test(section))
      .map((section) => `\n${section.trimEnd()}\n`)
      .join('');
  } catch {
    // No earlier results.
  }
  writeFileSync(OUT, report + kept);
  console.log(report + kept);
}

await main();
