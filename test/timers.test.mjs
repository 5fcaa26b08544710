// Timers: ordering, never early, time scales, infinite and huge delays.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { TimerHandle, Handle } from '../ts-host/dist/index.js';
import { freshLoop } from './helpers.mjs';

const timers = suite('timers');
freshLoop(timers);

timers('a timer never runs before scheduled time + delay', async ({ loop }) => {
  const late = [];
  const delays = [0, 0.3, 1, 1.5, 2, 3, 5, 8, 13, 21];
  for (const d of delays) {
    const scheduled = loop.time();
    loop.callLater(d, () => late.push(loop.time() - (scheduled + d)));
  }
  await loop.runUntilComplete(() => loop.sleep(40));
  assert.is(late.length, delays.length);
  for (const l of late) assert.ok(l >= 0, `ran ${-l} ms early`);
});

timers('never early, also for timers scheduled from inside callbacks', async ({ loop }) => {
  const early = [];
  let n = 0;
  await loop.runUntilComplete(
    () =>
      new Promise((resolve) => {
        const step = () => {
          const scheduled = loop.time();
          const d = (n * 7) % 5;
          loop.callLater(d, () => {
            if (loop.time() < scheduled + d) early.push([scheduled, d, loop.time()]);
            if (++n < 30) step();
            else resolve();
          });
        };
        step();
      }),
  );
  assert.is(n, 30);
  assert.equal(early, []);
});

timers('equal deadlines run in scheduling order', async ({ loop }) => {
  const order = [];
  const when = loop.time() + 5;
  for (let i = 0; i < 200; i++) loop.callAt(when, () => order.push(i));
  await loop.runUntilComplete(() => loop.sleep(10));
  assert.equal(order, [...Array(200).keys()]);
});

timers('timers run in deadline order regardless of scheduling order', async ({ loop }) => {
  const order = [];
  for (const d of [9, 3, 7, 1, 5]) loop.callLater(d, () => order.push(d));
  await loop.runUntilComplete(() => loop.sleep(15));
  assert.equal(order, [1, 3, 5, 7, 9]);
});

timers('equal delays scheduled in one iteration keep their order across ms ticks', async ({ loop }) => {
  const order = [];
  for (let i = 0; i < 500; i++) loop.callLater(1 + (i % 7), () => order.push(i));
  await loop.runUntilComplete(() => loop.sleep(20));
  const expected = [...Array(500).keys()].sort((a, b) => (a % 7) - (b % 7) || a - b);
  assert.equal(order, expected);
});

timers('callAt uses the loop.time() scale; past times run at once, in deadline order', async ({ loop }) => {
  const order = [];
  const now = loop.time();
  assert.ok(now > 2);
  loop.callAt(now + 4, () => order.push(['later', loop.time() >= now + 4]));
  loop.callAt(now - 2, () => order.push(['past', true]));
  loop.callAt(-5, () => order.push(['negative (deadline 0)', true]));
  await loop.runUntilComplete(() => loop.sleep(8));
  assert.equal(order, [
    ['negative (deadline 0)', true],
    ['past', true],
    ['later', true],
  ]);
});

timers('when() reports the scheduled time on the loop.time() scale', async ({ loop }) => {
  const now = loop.time();
  const a = loop.callLater(25, () => {});
  const b = loop.callAt(now + 7.5, () => {});
  const c = loop.callLater(-3, () => {});
  assert.is(a.when(), now + 25);
  assert.is(b.when(), now + 7.5);
  assert.is(c.when(), now, 'a negative delay counts as 0');
  a.cancel();
  assert.is(a.when(), now + 25, 'when() still answers after cancel');
});

timers('a negative delay runs as 0', async ({ loop }) => {
  let ran = false;
  loop.callLater(-100, () => {
    ran = true;
  });
  await loop.runUntilComplete(() => loop.sleep(0));
  assert.ok(ran);
});

timers('an Infinity delay never fires and does not keep the loop alive', async ({ loop }) => {
  let ran = false;
  const handle = loop.callLater(Infinity, () => {
    ran = true;
  });
  assert.is(handle.when(), Infinity);
  assert.is(loop.stats().timersPending, 1);
  // runForever with only that timer arms no host timer: it returns only
  // when stopped, and nothing ran meanwhile.
  const done = loop.runForever();
  // Once the run has had an iteration, the loop has nothing left to do.
  await new Promise((resolve) => loop.callSoon(resolve));
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.is(ran, false);
  const iterations = loop.stats().iterations;
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.is(loop.stats().iterations, iterations, 'the idle loop did not iterate');
  loop.stop();
  await done;
  handle.cancel();
  assert.is(loop.stats().timersPending, 0);
});

timers('huge finite delays saturate instead of overflowing', async ({ loop }) => {
  const order = [];
  loop.callLater(1e300, () => order.push('huge'));
  loop.callLater(Number.MAX_VALUE, () => order.push('max'));
  loop.callLater(2 ** 64, () => order.push('2^64'));
  loop.callLater(1, () => order.push('soon'));
  await loop.runUntilComplete(() => loop.sleep(10));
  assert.equal(order, ['soon'], 'saturated timers did not wrap around to the past');
  assert.is(loop.stats().timersPending, 3);
});

timers('handles are instances of Handle and TimerHandle', async ({ loop }) => {
  const soon = loop.callSoon(() => {});
  const later = loop.callLater(1, () => {});
  assert.ok(soon instanceof Handle);
  assert.not.ok(soon instanceof TimerHandle);
  assert.ok(later instanceof Handle);
  assert.ok(later instanceof TimerHandle);
  assert.not.ok({ cancel() {} } instanceof Handle);
});

timers('arguments are passed to the callback', async ({ loop }) => {
  const got = [];
  loop.callSoon((a, b) => got.push(['soon', a, b]), 1, 'two');
  loop.callLater(1, (...rest) => got.push(['later', ...rest]), 'x', null, 3);
  loop.callAt(loop.time() + 2, (o) => got.push(['at', o.k]), { k: 9 });
  await loop.runUntilComplete(() => loop.sleep(5));
  assert.equal(got, [
    ['soon', 1, 'two'],
    ['later', 'x', null, 3],
    ['at', 9],
  ]);
});

timers('sleep resolves with its value after the delay', async ({ loop }) => {
  const start = loop.time();
  const value = await loop.runUntilComplete(() => loop.sleep(12, 'done'));
  assert.is(value, 'done');
  assert.ok(loop.time() - start >= 12);
});

timers('many timers across wheel levels all fire exactly once, in order', async ({ loop }) => {
  const fired = [];
  const n = 3000;
  const delays = [];
  for (let i = 0; i < n; i++) {
    const d = (i * 37) % 97;
    delays.push(d);
    loop.callLater(d, () => fired.push(i));
  }
  await loop.runUntilComplete(() => loop.sleep(120));
  assert.is(fired.length, n);
  assert.is(new Set(fired).size, n);
  const expected = [...Array(n).keys()].sort((a, b) => delays[a] - delays[b] || a - b);
  assert.equal(fired, expected);
});

timers.run();
