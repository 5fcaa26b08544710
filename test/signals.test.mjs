// Signal handlers (asyncio's add_signal_handler): a signal the process
// receives runs a loop callback. The process signals itself with SIGUSR2,
// whose default action would end it: every case keeps a handler installed
// while it sends one.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { LoopClosedError, NotSupportedError, createLoop } from '../ts-host/dist/index.js';
import { freshLoop } from './helpers.mjs';
import { until as untilOr } from './io-helpers.mjs';

const signals = suite('addSignalHandler / removeSignalHandler');
freshLoop(signals, { backend: 'selector' });

const raise = () => process.kill(process.pid, 'SIGUSR2');
/** Until `done()` is true: the signal's callback ran (a generous limit against a hang). */
const until = (loop, done) => untilOr(loop, done, 'the signal handler ran');

signals('a signal runs the handler as a loop callback, with its arguments', async ({ loop }) => {
  const calls = [];
  loop.addSignalHandler('SIGUSR2', (a, b) => calls.push([a, b, loop.isRunning()]), 'x', 2);
  await loop.runUntilComplete(async () => {
    raise();
    await until(loop, () => calls.length > 0);
  });
  assert.equal(calls, [['x', 2, true]]);
  assert.ok(loop.removeSignalHandler('SIGUSR2'));
});

signals('each signal runs the handler once more', async ({ loop }) => {
  let count = 0;
  loop.addSignalHandler('SIGUSR2', () => count++);
  await loop.runUntilComplete(async () => {
    for (let i = 1; i <= 3; i++) {
      raise();
      await until(loop, () => count >= i);
    }
  });
  assert.is(count, 3);
  loop.removeSignalHandler('SIGUSR2');
});

signals('a second handler for the same signal replaces the first', async ({ loop }) => {
  const calls = [];
  const before = process.listenerCount('SIGUSR2');
  loop.addSignalHandler('SIGUSR2', () => calls.push('first'));
  loop.addSignalHandler('SIGUSR2', () => calls.push('second'));
  assert.is(process.listenerCount('SIGUSR2'), before + 1, 'one listener, not two');
  await loop.runUntilComplete(async () => {
    raise();
    await until(loop, () => calls.length > 0);
    await loop.sleep(20);
  });
  assert.equal(calls, ['second']);
  loop.removeSignalHandler('SIGUSR2');
});

signals('removeSignalHandler: true once, then false; the handler no longer runs', async ({ loop }) => {
  // The process's own listener: it sees the signal arrive.
  let delivered = 0;
  const guard = () => delivered++;
  process.on('SIGUSR2', guard);
  try {
    let count = 0;
    loop.addSignalHandler('SIGUSR2', () => count++);
    assert.is(loop.removeSignalHandler('SIGUSR2'), true);
    assert.is(loop.removeSignalHandler('SIGUSR2'), false);
    await loop.runUntilComplete(async () => {
      raise();
      await untilOr(loop, () => delivered > 0, 'the signal reached the process');
      // A handler still installed would run as a loop callback in these iterations.
      await loop.sleep(10);
    });
    assert.is(delivered, 1);
    assert.is(count, 0);
  } finally {
    process.off('SIGUSR2', guard);
  }
});

signals('a handler that throws is reported; the loop and the handler go on', async ({ loop }) => {
  const reported = [];
  loop.setExceptionHandler((_loop, context) => reported.push(context.error.message));
  let count = 0;
  loop.addSignalHandler('SIGUSR2', () => {
    count++;
    throw new Error('handler failed');
  });
  await loop.runUntilComplete(async () => {
    raise();
    await until(loop, () => count >= 1);
    raise();
    await until(loop, () => count >= 2);
  });
  assert.is(count, 2);
  assert.equal(reported, ['handler failed', 'handler failed']);
  loop.removeSignalHandler('SIGUSR2');
});

signals('close() removes every handler the loop set', async ({ loop }) => {
  const before = process.listenerCount('SIGUSR2');
  const beforeHup = process.listenerCount('SIGHUP');
  loop.addSignalHandler('SIGUSR2', () => {});
  loop.addSignalHandler('SIGHUP', () => {});
  assert.is(process.listenerCount('SIGUSR2'), before + 1);
  await loop.close();
  assert.is(process.listenerCount('SIGUSR2'), before);
  assert.is(process.listenerCount('SIGHUP'), beforeHup);
});

signals('bad input: errors naming the signal or the callback; a closed loop: LoopClosedError', async ({ loop }) => {
  const cases = [
    [
      () => loop.addSignalHandler(12, () => {}),
      TypeError,
      /addSignalHandler: signal must be a signal name such as 'SIGINT', got number 12/,
    ],
    [
      () => loop.addSignalHandler('SIGFOO', () => {}),
      RangeError,
      /addSignalHandler: signal "SIGFOO" is not a signal name/,
    ],
    [() => loop.addSignalHandler('sigint', () => {}), RangeError, /"sigint" is not a signal name/],
    [() => loop.addSignalHandler('SIGKILL', () => {}), RangeError, /addSignalHandler: SIGKILL cannot be handled/],
    [() => loop.addSignalHandler('SIGSTOP', () => {}), RangeError, /SIGSTOP cannot be handled/],
    [() => loop.addSignalHandler('SIGSEGV', () => {}), RangeError, /SIGSEGV cannot be handled/],
    [
      () => loop.addSignalHandler('SIGUSR2', 'handler'),
      TypeError,
      /addSignalHandler: callback must be a function, got string/,
    ],
    [() => loop.removeSignalHandler(undefined), TypeError, /removeSignalHandler: signal must be a signal name/],
  ];
  const before = process.listenerCount('SIGUSR2');
  for (const [attempt, ErrorClass, pattern] of cases) {
    assert.throws(attempt, (e) => e instanceof ErrorClass && pattern.test(e.message), String(pattern));
  }
  assert.is(process.listenerCount('SIGUSR2'), before, 'nothing was installed');
  await loop.close();
  assert.throws(
    () => loop.addSignalHandler('SIGUSR2', () => {}),
    (e) => e instanceof LoopClosedError && /addSignalHandler/.test(e.message),
  );
  assert.throws(
    () => loop.removeSignalHandler('SIGUSR2'),
    (e) => e instanceof LoopClosedError,
  );
});

signals('a host without process signals: NotSupportedError', async ({ loop }) => {
  const saved = globalThis.process;
  const before = saved.listenerCount('SIGUSR2');
  Object.defineProperty(globalThis, 'process', { value: undefined, configurable: true, writable: true });
  try {
    assert.throws(
      () => loop.addSignalHandler('SIGUSR2', () => {}),
      (e) => e instanceof NotSupportedError && /no process signals/.test(e.message),
    );
  } finally {
    Object.defineProperty(globalThis, 'process', { value: saved, configurable: true, writable: true });
  }
  assert.is(saved.listenerCount('SIGUSR2'), before);
});

signals('two loops each get the signal', async () => {
  const a = await createLoop({ backend: 'selector' });
  const b = await createLoop({ backend: 'selector' });
  try {
    const seen = [];
    a.addSignalHandler('SIGUSR2', () => seen.push('a'));
    b.addSignalHandler('SIGUSR2', () => seen.push('b'));
    raise();
    await Promise.all([
      a.runUntilComplete(() => until(a, () => seen.includes('a'))),
      new Promise((resolve) => setTimeout(resolve, 0)).then(() =>
        b.runUntilComplete(() => until(b, () => seen.includes('b'))),
      ),
    ]);
    assert.equal([...seen].sort(), ['a', 'b']);
  } finally {
    await a.close();
    await b.close();
  }
});

signals.run();
