// The loop doing real work, and what happened: `node timers-demo.mjs`.
import { createLoop } from 'wasmloop';

const loop = await createLoop({ backend: 'auto' });
console.log(`wasmloop demo: backend '${loop.backend}', loop time ${loop.time().toFixed(3)} ms`);

// 1. 20,000 timers spread over 1..100 ms: did they fire in order, and how
//    late after their deadline?
const N = 20_000;
const lateness = new Float64Array(N);
const handles = new Array(N);
let fired = 0;
let order = true;
let lastWhen = -Infinity;
const onTimer = (i) => {
  const when = handles[i].when();
  if (when < lastWhen) order = false;
  lastWhen = when;
  lateness[fired++] = loop.time() - when;
};
const start = performance.now();
for (let i = 0; i < N; i++) handles[i] = loop.callLater(1 + ((i * 7919) % 100), onTimer, i);

// 2. A quarter of another batch of timers is cancelled before it fires.
let cancelledRan = 0;
const doomed = [];
for (let i = 0; i < 40_000; i++) doomed.push(loop.callLater(20 + (i % 30), () => cancelledRan++));
for (let i = 0; i < doomed.length; i += 4) doomed[i].cancel();

// 3. Concurrent async tasks, each sleeping on the loop.
const tasks = Array.from({ length: 5 }, async (_, t) => {
  let steps = 0;
  for (let k = 0; k < 10; k++) {
    await loop.sleep(3 + t);
    steps++;
  }
  return steps;
});

// 4. A callback that throws does not stop anything.
const errors = [];
loop.setExceptionHandler((_, context) => errors.push(context.message));
loop.callLater(5, function brokenCallback() {
  throw new Error('demo failure');
});

const steps = await loop.runUntilComplete(async () => {
  const done = await Promise.all(tasks);
  await loop.sleep(110);
  return done.reduce((a, b) => a + b, 0);
});
const wall = performance.now() - start;

const sorted = Array.from(lateness).sort((a, b) => a - b);
const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(3);
const s = loop.stats();
console.log(`timers: ${fired.toLocaleString('en')} of ${N.toLocaleString('en')} fired, in deadline order: ${order}`);
console.log(
  `  lateness after the deadline (ms): min ${pct(0)}  p50 ${pct(0.5)}  p99 ${pct(0.99)}  max ${pct(1)}  (never early: ${sorted[0] >= 0})`,
);
console.log(
  `cancelled timers: ${doomed.filter((h) => h.cancelled()).length.toLocaleString('en')} cancelled, ${cancelledRan.toLocaleString('en')} of the other ${((doomed.length * 3) / 4).toLocaleString('en')} ran`,
);
console.log(`async tasks: ${steps} sleeps completed across 5 tasks`);
console.log(`exceptions reported to the handler: ${errors.length} (${errors[0]})`);
console.log(
  `loop: ${s.iterations.toLocaleString('en')} iterations, ${s.callbacksRun.toLocaleString('en')} callbacks run, ${s.timersPending} timers pending, Wasm memory ${(s.wasmMemoryBytes / 2 ** 20).toFixed(1)} MiB`,
);
console.log(`wall time ${wall.toFixed(1)} ms`);
await loop.close();
