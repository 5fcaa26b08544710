// Timeouts on the loop's clock: loop.timeoutSignal(ms) (AbortSignal.timeout
// on loop time) and loop.waitFor(work, ms) (asyncio's wait_for). On the
// virtual backend, so every time asserted is exact.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { createLoop, LoopClosedError } from '../ts-host/dist/index.js';
import { freshLoop } from './helpers.mjs';

const timeoutSignal = suite('loop.timeoutSignal(ms)');
freshLoop(timeoutSignal, { backend: 'virtual' });

timeoutSignal('aborts once ms of loop time have passed, with a TimeoutError DOMException', async ({ loop }) => {
  const signal = loop.timeoutSignal(250);
  assert.instance(signal, AbortSignal);
  let abortedAt = null;
  signal.addEventListener('abort', () => (abortedAt = loop.time()));
  loop.advance(249);
  assert.is(signal.aborted, false, 'not before its time');
  loop.advance(1);
  assert.is(abortedAt, 250);
  assert.instance(signal.reason, DOMException);
  assert.is(signal.reason.name, 'TimeoutError');
  assert.match(signal.reason.message, /timeoutSignal: timed out after 250 ms of loop time/);
});

timeoutSignal('Infinity never aborts and does not keep the loop alive', async ({ loop }) => {
  const signal = loop.timeoutSignal(Infinity);
  // runAll() jumps time while anything can still happen: it returns at once.
  assert.is(loop.runAll(), 0);
  assert.is(loop.time(), 0);
  assert.is(signal.aborted, false);
});

timeoutSignal('a negative ms aborts at the next timer phase, as callLater runs it', async ({ loop }) => {
  const signal = loop.timeoutSignal(-5);
  assert.is(signal.aborted, false, 'not synchronously');
  loop.runUntilIdle();
  assert.is(signal.aborted, true);
});

timeoutSignal('bad ms: a TypeError naming the argument; on a closed loop: LoopClosedError', async ({ loop }) => {
  for (const bad of [NaN, '10', undefined, null]) {
    assert.throws(
      () => loop.timeoutSignal(bad),
      (e) => e instanceof TypeError && /timeoutSignal: ms must be/.test(e.message),
      String(bad),
    );
  }
  assert.is(loop.stats().timersPending, 0, 'nothing was scheduled');
  await loop.close();
  assert.throws(
    () => loop.timeoutSignal(10),
    (e) => e instanceof LoopClosedError && /timeoutSignal/.test(e.message),
  );
});

const waitFor = suite('loop.waitFor(work, timeoutMs)');
freshLoop(waitFor, { backend: 'virtual' });

waitFor('resolves with the value when the work settles first, and cancels its timer', async ({ loop }) => {
  const value = await loop.runUntilComplete(() => loop.waitFor(loop.sleep(30, 'done'), 100));
  assert.is(value, 'done');
  assert.is(loop.time(), 30);
  assert.is(loop.stats().timersPending, 0, 'the timeout was cancelled');
});

waitFor('rejects with the work error when it fails first', async ({ loop }) => {
  const error = await loop
    .runUntilComplete(() =>
      loop.waitFor(
        loop.sleep(10).then(() => Promise.reject(new Error('boom'))),
        100,
      ),
    )
    .catch((e) => e);
  assert.is(error.message, 'boom');
  assert.is(loop.stats().timersPending, 0);
});

waitFor(
  'rejects with a TimeoutError once the time is up, and aborts the signal given to the work',
  async ({ loop }) => {
    let given = null;
    const error = await loop
      .runUntilComplete(() =>
        loop.waitFor((signal) => {
          given = signal;
          return loop.sleep(1000);
        }, 100),
      )
      .catch((e) => e);
    assert.instance(error, DOMException);
    assert.is(error.name, 'TimeoutError');
    assert.match(error.message, /waitFor: timed out after 100 ms of loop time/);
    assert.is(loop.time(), 100, 'rejected at the timeout, not when the work would have ended');
    assert.is(given.aborted, true);
    assert.is(given.reason, error);
  },
);

waitFor('work that settles after the timeout changes nothing', async ({ loop }) => {
  let finish;
  const work = new Promise((resolve) => (finish = resolve));
  const error = await loop.runUntilComplete(() => loop.waitFor(work, 5)).catch((e) => e);
  assert.is(error.name, 'TimeoutError');
  finish('late');
  await loop.runUntilComplete(() => loop.sleep(1));
  assert.is(loop.stats().timersPending, 0);
});

waitFor('a function that throws rejects with its error and leaves no timer', async ({ loop }) => {
  const error = await loop
    .runUntilComplete(() =>
      loop.waitFor(() => {
        throw new RangeError('bad start');
      }, 100),
    )
    .catch((e) => e);
  assert.instance(error, RangeError);
  assert.is(loop.stats().timersPending, 0);
});

waitFor('closing the loop first rejects with LoopClosedError and aborts the signal', async ({ loop }) => {
  let given = null;
  const waiting = loop
    .waitFor((signal) => {
      given = signal;
      return new Promise(() => {});
    }, 1000)
    .catch((e) => e);
  await loop.close();
  const error = await waiting;
  assert.instance(error, LoopClosedError);
  assert.match(error.message, /waitFor/);
  assert.is(given.aborted, true);
  assert.is(given.reason, error);
});

waitFor('bad input: TypeErrors naming the argument; on a closed loop: LoopClosedError', async ({ loop }) => {
  assert.throws(
    () => loop.waitFor(Promise.resolve(1), NaN),
    (e) => e instanceof TypeError && /waitFor: timeoutMs must be/.test(e.message),
  );
  assert.throws(
    () => loop.waitFor(Promise.resolve(1), '5'),
    (e) => e instanceof TypeError && /timeoutMs/.test(e.message),
  );
  assert.throws(
    () => loop.waitFor(42, 5),
    (e) => e instanceof TypeError && /waitFor: work must be a promise or a function, got number 42/.test(e.message),
  );
  assert.throws(
    () => loop.waitFor(null, 5),
    (e) => e instanceof TypeError && /got null/.test(e.message),
  );
  assert.is(loop.stats().timersPending, 0, 'nothing was scheduled');
  await loop.close();
  assert.throws(
    () => loop.waitFor(Promise.resolve(1), 5),
    (e) => e instanceof LoopClosedError && /waitFor/.test(e.message),
  );
});

waitFor('works on the real clock too', async () => {
  const loop = await createLoop({ backend: 'selector' });
  try {
    const error = await loop.runUntilComplete(() => loop.waitFor(loop.sleep(1000), 20)).catch((e) => e);
    assert.is(error.name, 'TimeoutError');
    assert.ok(loop.time() >= 20);
  } finally {
    await loop.close();
  }
});

timeoutSignal.run();
waitFor.run();
