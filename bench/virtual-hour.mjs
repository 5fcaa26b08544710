// Section 3b of bench/run.mjs: virtual time. 100,000 timers spread over one
// virtual hour, scheduled and then all run: wasmloop's `virtual` backend
// (`loop.runAll()`) against sinon's fake timers (`clock.runAll()`). Its
// own module so that bench/node-lts.mjs can name the workload's size.
import FakeTimers from '@sinonjs/fake-timers';
import { createLoop } from '../ts-host/dist/index.js';

const HOUR = 3_600_000;
/** Timers per run. */
export const VIRTUAL_N = 100_000;
/** Delays spread over one hour, the same for every contender. */
const virtualDelays = Array.from({ length: VIRTUAL_N }, (_, i) => (i * 7919) % HOUR);

/** The contenders, `async (n) => { ms, check }` as bench/run.mjs measures them (run with --expose-gc). */
export const virtualHour = {
  'wasmloop virtual': async (n) => {
    const loop = await createLoop({ backend: 'virtual' });
    let count = 0;
    const cb = () => count++;
    globalThis.gc();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) loop.callLater(virtualDelays[i % VIRTUAL_N], cb);
    loop.runAll({ limit: n + 1 });
    const ms = performance.now() - t0;
    const ok = loop.time() <= HOUR;
    await loop.close();
    return { ms, check: ok ? count : -1 };
  },
  'sinon fake-timers': async (n) => {
    const clock = FakeTimers.createClock(0, n + 10);
    let count = 0;
    const cb = () => count++;
    globalThis.gc();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) clock.setTimeout(cb, virtualDelays[i % VIRTUAL_N]);
    clock.runAll();
    return { ms: performance.now() - t0, check: count };
  },
};
