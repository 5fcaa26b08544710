// loop.deadline(ms, callback): a timer that refresh() pushes back without a
// core call. On the virtual backend, so every time asserted is exact, and
// the core timers behind it are counted by the callbacks they run.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { Deadline, LoopClosedError } from '../ts-host/dist/index.js';
import { freshLoop } from './helpers.mjs';

const deadline = suite('loop.deadline(ms, callback)');
freshLoop(deadline, { backend: 'virtual' });

deadline('runs the callback, with its arguments, once ms of loop time pass', async ({ loop }) => {
  const calls = [];
  const d = loop.deadline(100, (a, b) => calls.push([loop.time(), a, b]), 'x', 2);
  assert.instance(d, Deadline);
  assert.is(d.ms, 100);
  assert.is(d.armed, true);
  assert.is(d.due, 100);
  loop.advance(99);
  assert.equal(calls, [], 'not before its time');
  loop.advance(1);
  assert.equal(calls, [[100, 'x', 2]]);
  assert.is(d.armed, false);
  assert.is(d.due, Infinity);
  loop.advance(1000);
  assert.is(calls.length, 1, 'once');
  assert.is(loop.stats().timersPending, 0);
});

deadline('refresh() pushes it back to ms after the refresh, at one core timer per period', async ({ loop }) => {
  let firedAt = null;
  const d = loop.deadline(100, () => (firedAt = loop.time()));
  const ranBefore = loop.stats().callbacksRun;
  // A refresh every 10 ms for a second: 100 pushes.
  for (let t = 10; t <= 1000; t += 10) {
    loop.advance(10);
    d.refresh();
    assert.is(d.due, t + 100);
    assert.is(loop.stats().timersPending, 1, 'one core timer stands behind it');
  }
  assert.is(firedAt, null, 'never due while refreshed');
  loop.advance(99);
  assert.is(firedAt, null);
  loop.advance(1);
  assert.is(firedAt, 1100);
  // The core timer fired once per stretch it was pushed past (each time it
  // fires, 90 ms are left: 1100 / 90 < 13), not once per push.
  const ran = loop.stats().callbacksRun - ranBefore;
  assert.ok(ran <= 13, `${ran} core timer callbacks for 100 refreshes`);
});

deadline('many refreshes within one turn cost no core call and no timer', async ({ loop }) => {
  const d = loop.deadline(50, () => undefined);
  const slots = loop.stats().slotsAllocated;
  for (let i = 0; i < 100_000; i++) d.refresh();
  assert.is(loop.stats().timersPending, 1);
  assert.is(loop.stats().slotsAllocated, slots, 'no new slot was handed out');
  d.cancel();
});

deadline('refresh() after the callback ran arms it again: due ms from then', async ({ loop }) => {
  const firedAt = [];
  const d = loop.deadline(30, () => firedAt.push(loop.time()));
  loop.advance(40);
  assert.equal(firedAt, [30]);
  d.refresh();
  assert.is(d.armed, true);
  assert.is(d.due, 70);
  loop.advance(30);
  assert.equal(firedAt, [30, 70]);
});

deadline('cancel() disarms it until the next refresh(); it is idempotent', async ({ loop }) => {
  let fired = 0;
  const d = loop.deadline(30, () => fired++);
  loop.advance(10);
  d.cancel();
  d.cancel();
  assert.is(d.armed, false);
  assert.is(loop.stats().timersPending, 0, 'the core timer is cancelled at once');
  loop.advance(100);
  assert.is(fired, 0);
  d.refresh();
  assert.is(d.due, 140);
  loop.advance(30);
  assert.is(fired, 1);
  d.cancel();
  assert.is(fired, 1, 'cancelling after it ran does nothing');
});

deadline('refresh(ms) changes the period; a shorter one fires at its own time', async ({ loop }) => {
  const firedAt = [];
  const d = loop.deadline(1000, () => firedAt.push(loop.time()));
  loop.advance(100);
  d.refresh(10);
  assert.is(d.ms, 10);
  assert.is(d.due, 110);
  assert.is(loop.stats().timersPending, 1, 'the old timer was replaced, not left behind');
  loop.advance(10);
  assert.equal(firedAt, [110], 'not at 1000');
  d.refresh(500);
  loop.advance(499);
  assert.equal(firedAt, [110]);
  loop.advance(1);
  assert.equal(firedAt, [110, 610]);
});

deadline('Infinity is never due and does not keep the loop alive', async ({ loop }) => {
  let fired = 0;
  const d = loop.deadline(Infinity, () => fired++);
  assert.is(d.armed, false);
  assert.is(d.due, Infinity);
  assert.is(loop.runAll(), 0);
  d.refresh(20);
  assert.is(d.armed, true);
  d.refresh(Infinity);
  assert.is(d.armed, false, 'an infinite period disarms it');
  assert.is(loop.stats().timersPending, 0);
  assert.is(loop.runAll(), 0);
  assert.is(fired, 0);
});

deadline('0 ms is due in the next timer phase', async ({ loop }) => {
  let fired = 0;
  loop.deadline(0, () => fired++);
  assert.is(fired, 0, 'not synchronously');
  loop.runUntilIdle();
  assert.is(fired, 1);
});

deadline('refreshed inside callbacks, it counts from the iteration that refreshed it', async ({ loop }) => {
  let firedAt = null;
  const d = loop.deadline(100, () => (firedAt = loop.time()));
  loop.callLater(70, () => d.refresh());
  loop.callLater(150, () => d.refresh());
  loop.runAll();
  assert.is(firedAt, 250);
});

deadline('a callback that throws goes to the exception handler; the loop goes on', async ({ loop }) => {
  const reports = [];
  loop.setExceptionHandler((_loop, context) => reports.push(context.error.message));
  loop.deadline(5, () => {
    throw new Error('boom');
  });
  let after = false;
  loop.callLater(10, () => (after = true));
  loop.runAll();
  assert.equal(reports, ['boom']);
  assert.is(after, true);
});

deadline('10,000 deadlines refreshed, then half run and half cancelled: no timer left', async ({ loop }) => {
  let fired = 0;
  const deadlines = [];
  for (let i = 0; i < 10_000; i++) deadlines.push(loop.deadline(100 + (i % 7), () => fired++));
  for (let round = 0; round < 10; round++) {
    loop.advance(50);
    for (const d of deadlines) d.refresh();
  }
  assert.is(loop.stats().timersPending, 10_000);
  for (let i = 0; i < 5000; i++) deadlines[i].cancel();
  loop.runAll();
  assert.is(fired, 5000);
  assert.is(loop.stats().timersPending, 0);
  assert.ok(deadlines.every((d) => !d.armed));
});

deadline('bad input: TypeError or RangeError naming the argument; a closed loop: LoopClosedError', async ({ loop }) => {
  for (const bad of [NaN, '10', undefined, null]) {
    assert.throws(
      () => loop.deadline(bad, () => undefined),
      (e) => e instanceof TypeError && /deadline: ms must be a number/.test(e.message),
      String(bad),
    );
  }
  assert.throws(
    () => loop.deadline(-1, () => undefined),
    (e) => e instanceof RangeError && /deadline: ms must be >= 0/.test(e.message),
  );
  assert.throws(
    () => loop.deadline(10, 'f'),
    (e) => e instanceof TypeError && /deadline: callback must be a function/.test(e.message),
  );
  const d = loop.deadline(10, () => undefined);
  assert.throws(
    () => d.refresh(-5),
    (e) => e instanceof RangeError && /deadline.refresh: ms must be >= 0/.test(e.message),
  );
  assert.throws(
    () => d.refresh('5'),
    (e) => e instanceof TypeError && /deadline.refresh: ms/.test(e.message),
  );
  assert.is(d.ms, 10, 'a refused period changes nothing');
  assert.is(loop.stats().timersPending, 1);
  await loop.close();
  assert.throws(
    () => loop.deadline(10, () => undefined),
    (e) => e instanceof LoopClosedError && /deadline/.test(e.message),
  );
  assert.throws(
    () => d.refresh(),
    (e) => e instanceof LoopClosedError && /deadline.refresh/.test(e.message),
  );
  d.cancel();
});

deadline.run();
