// Stress: 10 million pending timers, and 100 million schedule/cancel pairs
// with handle reuse. Exits non-zero on any lost, duplicated, early or
// wrongly cancelled callback; prints the counts (and, with --results FILE,
// appends them as a Markdown section).
//
//   node --expose-gc bench/stress.mjs [--timers N] [--churn N] [--results FILE]
import { putSection } from './results-section.mjs';
import { createLoop } from '../ts-host/dist/index.js';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};
const TIMERS = Number(option('--timers', 10_000_000));
const CHURN = Number(option('--churn', 100_000_000));
const RESULTS = option('--results', null);
const gc = globalThis.gc ?? (() => {});

function fail(message) {
  console.error(`stress: FAILED: ${message}`);
  process.exit(1);
}

async function pendingTimers() {
  const loop = await createLoop();
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const wasm0 = loop.stats().wasmMemoryBytes;
  let fired = 0;
  let wrong = 0;
  let early = 0;
  const start = loop.time();
  const onTime = () => {
    fired++;
  };
  const mustNotRun = () => {
    wrong++;
  };
  // TIMERS timers with their handles dropped (what the loop alone holds),
  // then a tenth more whose handles are kept and cancelled.
  const t0 = performance.now();
  for (let i = 0; i < TIMERS; i++) loop.callLater(1 + (i % 1000), onTime);
  const scheduleMs = performance.now() - t0;
  if (loop.stats().timersPending !== TIMERS) fail(`${loop.stats().timersPending} of ${TIMERS} timers pending`);
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  const wasm1 = loop.stats().wasmMemoryBytes;
  const perTimer = (wasm1 - wasm0 + heap1 - heap0) / TIMERS;
  const kept = [];
  for (let i = 0; i < TIMERS / 10; i++) kept.push(loop.callLater(1 + (i % 1000), mustNotRun));
  for (const h of kept) h.cancel();
  const expected = TIMERS;
  // A watchdog timer checks nothing fires before its time.
  loop.callLater(0.5, () => {
    if (fired > 0 && loop.time() < start + 1) early++;
  });
  await loop.runUntilComplete(async () => {
    while (fired < expected) await loop.sleep(50);
  });
  await loop.runUntilComplete(() => loop.sleep(1100));
  const totalMs = performance.now() - t0;
  if (fired !== expected) fail(`${fired} of ${expected} timers fired`);
  if (wrong !== 0) fail(`${wrong} cancelled timers ran`);
  if (early !== 0) fail('a timer fired early');
  if (loop.stats().timersPending !== 0) fail(`${loop.stats().timersPending} timers left`);
  await loop.close();
  return { timers: TIMERS, cancelled: kept.length, fired, perTimer, scheduleMs, totalMs, wasmBytes: wasm1 - wasm0 };
}

async function churn() {
  const loop = await createLoop();
  let liveFired = 0;
  let staleFired = 0;
  let lives = 0;
  const stale = [];
  const onLive = () => liveFired++;
  const onStale = () => staleFired++;
  const t0 = performance.now();
  for (let i = 0; i < CHURN; i++) {
    const h = loop.callLater(1000, onStale);
    h.cancel();
    if (i % 1000 === 0) {
      stale.push(h);
      if (stale.length > 64) stale.shift();
      // A live timer, likely in a slot a stale handle once had: no stale
      // handle may cancel it.
      const live = loop.callLater(0, onLive);
      lives++;
      for (const old of stale) old.cancel();
      if (live.cancelled()) fail('a live handle reports cancelled');
    }
    if (i % 10_000_000 === 0 && i > 0) await loop.runUntilComplete(() => loop.sleep(1));
  }
  const ms = performance.now() - t0;
  await loop.runUntilComplete(() => loop.sleep(5));
  if (liveFired !== lives) fail(`${liveFired} of ${lives} live timers fired: a stale handle cancelled a newer timer`);
  if (staleFired !== 0) fail(`${staleFired} cancelled timers ran`);
  const stats = loop.stats();
  await loop.close();
  return { pairs: CHURN, lives, liveFired, ms, slots: stats.slotsAllocated };
}

const a = await pendingTimers();
console.log(
  `stress: ${a.timers.toLocaleString('en')} pending timers: ${a.perTimer.toFixed(1)} bytes each (Wasm + the loop's JS tables), ` +
    `${a.fired.toLocaleString('en')} fired and ${a.cancelled.toLocaleString('en')} more cancelled, none early, none lost; ` +
    `scheduling ${a.scheduleMs.toFixed(0)} ms, all done in ${a.totalMs.toFixed(0)} ms`,
);
const b = await churn();
console.log(
  `stress: ${b.pairs.toLocaleString('en')} schedule/cancel pairs in ${b.ms.toFixed(0)} ms ` +
    `(${((b.ms * 1e6) / b.pairs).toFixed(1)} ns a pair), slots reused (${b.slots.toLocaleString('en')} ever allocated); ` +
    `${b.lives.toLocaleString('en')} live timers among stale handles, all ${b.liveFired.toLocaleString('en')} fired`,
);
if (RESULTS !== null) {
  putSection(
    RESULTS,
    'Stress',
    `(\`make stress\`, ${new Date().toISOString().slice(0, 10)})\n\n` +
      `- ${a.timers.toLocaleString('en')} pending timers: ${a.perTimer.toFixed(1)} bytes per timer (Wasm memory + the loop's JS tables); ` +
      `all ${a.fired.toLocaleString('en')} fired, and ${a.cancelled.toLocaleString('en')} more were cancelled and never ran; none early, none lost; ${a.totalMs.toFixed(0)} ms in all.\n` +
      `- ${b.pairs.toLocaleString('en')} schedule/cancel pairs with slot reuse in ${b.ms.toFixed(0)} ms; ${b.slots.toLocaleString('en')} slots ever allocated; ` +
      `${b.lives.toLocaleString('en')} live timers scheduled among stale handles that were cancelled again: all fired.\n`,
  );
}
