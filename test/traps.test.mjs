// Traps: when the core fails (forced here by exhausting a capped linear
// memory), its loop closes with LoopCrashedError instead of hanging, and
// nothing else is affected.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { createLoop, LoopClosedError, LoopCrashedError } from '../ts-host/dist/index.js';

const traps = suite('traps');

const CAP = 2 * 1024 * 1024;

traps('exhausting a capped memory crashes that loop only: the call throws LoopCrashedError', async () => {
  const bystander = await createLoop();
  const seen = [];
  bystander.callLater(5, () => seen.push('bystander ran'));
  const loop = await createLoop({ memoryLimitBytes: CAP });
  let error;
  let scheduled = 0;
  try {
    for (; scheduled < 10_000_000; scheduled++) loop.callLater(1000, () => {});
  } catch (e) {
    error = e;
  }
  assert.instance(error, LoopCrashedError);
  assert.match(error.message, /the event loop crashed and was closed/);
  assert.instance(error.cause, WebAssembly.RuntimeError);
  assert.ok(scheduled > 10_000 && scheduled < 200_000, `crashed after ${scheduled} timers`);
  assert.ok(loop.isClosed());
  assert.throws(
    () => loop.callSoon(() => {}),
    (e) => e instanceof LoopClosedError,
  );
  await loop.close();
  // The other loop, and a new one, work.
  await bystander.runUntilComplete(() => bystander.sleep(10));
  assert.equal(seen, ['bystander ran']);
  await bystander.close();
  const fresh = await createLoop({ memoryLimitBytes: CAP });
  assert.is(await fresh.runUntilComplete(() => fresh.sleep(1, 'fine')), 'fine');
  await fresh.close();
});

traps('a crash during a run rejects runForever and runUntilComplete instead of hanging', async () => {
  for (const run of ['runForever', 'runUntilComplete']) {
    const loop = await createLoop({ memoryLimitBytes: CAP });
    const flood = () => {
      for (let i = 0; i < 5000; i++) loop.callLater(60_000, () => {});
      loop.callSoon(flood);
    };
    loop.callSoon(flood);
    const reported = [];
    loop.setExceptionHandler((_, context) => reported.push(context.error));
    try {
      await (run === 'runForever' ? loop.runForever() : loop.runUntilComplete(new Promise(() => {})));
      assert.unreachable(`${run} resolved`);
    } catch (error) {
      assert.instance(error, LoopCrashedError, `${run}: ${error}`);
    }
    assert.ok(loop.isClosed());
    assert.not.ok(loop.isRunning());
    // The flooding callback saw the crash as an exception of its own.
    assert.ok(reported.every((e) => e instanceof LoopCrashedError));
    await loop.close();
  }
});

traps('a crash closes the loop’s connections', async () => {
  const loop = await createLoop({ memoryLimitBytes: CAP });
  const server = await loop.runUntilComplete(() => loop.createServer(() => {}, { port: 0 }));
  const client = await loop.runUntilComplete(() => loop.createConnection({ port: server.address().port }));
  try {
    for (;;) loop.callLater(1000, () => {});
  } catch (error) {
    assert.instance(error, LoopCrashedError);
  }
  assert.ok(client.closed);
  assert.is(loop.isClosed(), true);
  const other = await createLoop();
  try {
    await other.runUntilComplete(() => other.createConnection({ port: server.address().port }));
    assert.unreachable('the crashed loop’s server was closed');
  } catch (error) {
    assert.is(error.code, 'ECONNREFUSED');
  }
  await other.close();
});

// Debug mode keeps a stack per timer until the memory runs out: seconds of
// CPU, many more on a loaded machine (hence its limit).
traps(
  'a crashed debug-mode loop removes its unhandledRejection listener, as close() does',
  async () => {
    const before = process.listenerCount('unhandledRejection');
    const loop = await createLoop({ debug: true, memoryLimitBytes: CAP });
    assert.is(process.listenerCount('unhandledRejection'), before + 1, 'debug mode listens');
    const noop = () => {};
    try {
      for (;;) loop.callLater(1000, noop);
    } catch (error) {
      assert.instance(error, LoopCrashedError);
    }
    assert.ok(loop.isClosed());
    assert.is(process.listenerCount('unhandledRejection'), before, 'the listener went with the crash');
    await loop.close();
    assert.is(process.listenerCount('unhandledRejection'), before);
  },
  { timeLimitMs: 120_000 },
);

traps('bad memory limits are rejected', async () => {
  for (const bad of [-1, 1.5, '1MB', NaN]) {
    try {
      await createLoop({ memoryLimitBytes: bad });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, RangeError);
      assert.match(error.message, /memoryLimitBytes must be a whole number of bytes >= 0/);
    }
  }
});

traps.run();
