// Virtual time: the 'virtual' backend, driving it by hand, Node's timer API
// on a loop, and the scenario table on every timer implementation.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import FakeTimers from '@sinonjs/fake-timers';
import {
  createLoop,
  LoopLimitError,
  LoopRunningError,
  NotSupportedError,
  ConnectionRefusedError,
  Timeout,
} from '../ts-host/dist/index.js';
import { scenarios } from './scenarios/timers.mjs';
import { countHostWaits } from './helpers.mjs';

// ------------------------------------------------------------- autojump

const autojump = suite('virtual backend: autojump');

autojump('time starts at 0 and an hour of sleeping takes milliseconds', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  assert.is(loop.backend, 'virtual');
  assert.is(loop.time(), 0);
  const { value: result, waits } = await countHostWaits(() =>
    loop.runUntilComplete(async () => {
      await loop.sleep(60 * 60 * 1000);
      return loop.time();
    }),
  );
  assert.is(result, 3_600_000);
  assert.is(waits, 0, 'an hour passed in virtual time only: no wait on the wall clock');
  await loop.close();
});

autojump('the clock jumps only when nothing is ready, to the exact deadline', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  const seen = [];
  loop.callLater(250, () => seen.push(['250', loop.time()]));
  loop.callLater(100, () => {
    seen.push(['100', loop.time()]);
    loop.callSoon(() => seen.push(['soon after 100', loop.time()]));
  });
  loop.callLater(100.5, () => seen.push(['100.5', loop.time()]));
  await loop.runUntilComplete(() => loop.sleep(1000));
  assert.equal(seen, [
    ['100', 100],
    ['soon after 100', 100],
    ['100.5', 100.5],
    ['250', 250],
  ]);
  await loop.close();
});

autojump('network programs run in virtual time with latency', async () => {
  const { createVirtualBackend } = await import('../ts-host/dist/index.js');
  const loop = await createLoop({ backend: 'virtual' });
  const result = await loop.runUntilComplete(async () => {
    const server = await loop.createServer(
      async (conn) => {
        for await (const chunk of conn) await conn.write(chunk);
        await conn.end();
      },
      { port: 80 },
    );
    const client = await loop.createConnection({ port: 80 });
    const t0 = loop.time();
    await client.write('ping');
    const reply = new TextDecoder().decode(await client.read());
    await client.end();
    assert.is(await client.read(), null);
    await server.close();
    return { reply, rtt: loop.time() - t0, port: client.remoteAddress.port };
  });
  assert.equal(result, { reply: 'ping', rtt: 0, port: 80 });
  await loop.close();
  assert.type(createVirtualBackend, 'function');
});

autojump('in-memory networking: refused connections and ports in use', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  await loop.runUntilComplete(async () => {
    try {
      await loop.createConnection({ port: 1234 });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, ConnectionRefusedError);
    }
    const server = await loop.createServer(() => {}, { port: 0 });
    assert.ok(server.address().port >= 49152);
    await server.close();
  });
  await loop.close();
});

// --------------------------------------------------------------- by hand

const manual = suite('virtual backend: advance, runUntilIdle, runAll');

manual('advance(ms) runs what is due on the way, each at its own time', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  const seen = [];
  loop.callLater(10, () => seen.push(loop.time()));
  loop.callLater(30, () => seen.push(loop.time()));
  loop.callLater(31, () => seen.push(loop.time()));
  assert.is(loop.advance(30), 2);
  assert.equal(seen, [10, 30]);
  assert.is(loop.time(), 30);
  assert.is(loop.advance(0), 0);
  assert.is(loop.advance(5), 1);
  assert.equal(seen, [10, 30, 31]);
  assert.is(loop.time(), 35);
  await loop.close();
});

manual('a timer cancelled in the turn that scheduled it costs no step of its own', async () => {
  // The core places a turn's new timers into its wheel when the loop next
  // looks at them, and drops the cancelled ones then: runAll jumps straight
  // to the live timer instead of stopping at the cancelled one's deadline.
  const steps = async (cancelledToo) => {
    const loop = await createLoop({ backend: 'virtual' });
    const seen = [];
    const early = cancelledToo ? loop.callLater(5, () => seen.push('cancelled one ran')) : null;
    loop.callLater(50, () => seen.push(loop.time()));
    early?.cancel();
    assert.is(loop.stats().timersPending, 1);
    const before = loop.stats().iterations;
    assert.is(loop.runAll(), 1);
    assert.equal(seen, [50]);
    assert.is(loop.stats().timersCancelled, 0, 'no cancelled entry is left');
    const taken = loop.stats().iterations - before;
    await loop.close();
    return taken;
  };
  assert.is(await steps(true), await steps(false), 'as many iterations as with the live timer alone');
});

manual('advanceAsync runs promise continuations between callbacks, from async code', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  const seen = [];
  (async () => {
    await loop.sleep(10);
    seen.push(`woke at ${loop.time()}`);
    await loop.sleep(10);
    seen.push(`woke again at ${loop.time()}`);
  })();
  assert.is(await loop.advanceAsync(25), 2);
  assert.equal(seen, ['woke at 10', 'woke again at 20']);
  loop.sleep(100).then(() => seen.push(`at ${loop.time()}`));
  await loop.runAllAsync();
  assert.equal(seen.at(-1), 'at 125');
  await loop.close();
});

manual('runAll steps timers and in-memory I/O with latency in time order', async () => {
  const loop = await createLoop({ backend: 'virtual', virtual: { latencyMs: 10 } });
  const seen = [];
  for (const ms of [5, 15, 25]) loop.callLater(ms, () => seen.push(`timer ${ms} at ${loop.time()}`));
  let conversation;
  await loop.runUntilComplete(async () => {
    const server = await loop.createServer(
      async (conn) => {
        const data = await conn.read();
        seen.push(`server read at ${loop.time()}`);
        await conn.write(data);
        await conn.end();
        await server.close();
      },
      { port: 80 },
    );
    const client = await loop.createConnection({ port: 80 });
    conversation = (async () => {
      await client.write('ping');
      await client.read();
      seen.push(`client read at ${loop.time()}`);
      await client.end();
    })();
  });
  const t0 = loop.time();
  const ran = await loop.runAllAsync();
  await conversation;
  assert.ok(ran > 0);
  // Connecting took virtual time too (the handshake crosses the network):
  // what matters is that every event runs at its own time, in order.
  const times = seen.map((line) => Number(line.split(' at ')[1]));
  assert.equal(
    [...times].sort((a, b) => a - b),
    times,
    `in time order: ${seen.join('; ')}`,
  );
  assert.ok(seen.includes(`server read at ${t0 + 10}`), seen.join('; '));
  assert.ok(seen.includes(`client read at ${t0 + 20}`), seen.join('; '));
  assert.is(seen.filter((line) => line.startsWith('timer')).length, 3);
  await loop.close();
});

manual('runAll jumps straight from deadline to deadline, each timer at its own time', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  const seen = [];
  const delays = [3_600_000, 1, 59_999.5, 1, 42, 0];
  for (const [i, ms] of delays.entries()) loop.callLater(ms, () => seen.push([i, loop.time()]));
  loop.callSoon(() => seen.push(['soon', loop.time()]));
  assert.is(loop.runAll(), 7);
  assert.equal(seen, [
    ['soon', 0],
    [5, 0],
    [1, 1],
    [3, 1],
    [4, 42],
    [2, 59_999.5],
    [0, 3_600_000],
  ]);
  assert.is(loop.time(), 3_600_000);
  // The backend's clock went along: advance counts from where runAll ended.
  loop.callLater(5, () => seen.push(['after', loop.time()]));
  assert.is(loop.advance(10), 1);
  assert.equal(seen.at(-1), ['after', 3_600_005]);
  assert.is(loop.time(), 3_600_010);
  await loop.close();
});

manual('synchronous advance from a host callback drains continuations too', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  const seen = [];
  (async () => {
    await loop.sleep(10);
    seen.push(loop.time());
    await loop.sleep(10);
    seen.push(loop.time());
  })();
  await new Promise((resolve) =>
    setImmediate(() => {
      loop.advance(25);
      resolve();
    }),
  );
  assert.equal(seen, [10, 20]);
  await loop.close();
});

manual('runUntilIdle runs what is ready without moving the clock', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  const seen = [];
  loop.callSoon(() => {
    seen.push('soon');
    loop.callSoon(() => seen.push('chained'));
  });
  loop.callLater(0, () => seen.push('zero timer'));
  loop.callLater(1, () => seen.push('1 ms'));
  assert.is(loop.runUntilIdle(), 3);
  assert.equal(seen, ['soon', 'zero timer', 'chained']);
  assert.is(loop.time(), 0);
  await loop.close();
});

manual('runAll jumps through every timer; re-arming timers hit the limit with an error naming it', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  let n = 0;
  loop.callLater(1000, () => n++);
  loop.callLater(5000, () => n++);
  assert.is(loop.runAll(), 2);
  assert.is(loop.time(), 5000);
  const again = () => loop.callLater(1, again);
  loop.callLater(1, again);
  try {
    loop.runAll({ limit: 500 });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, LoopLimitError);
    assert.is(error.limit, 500);
    assert.match(error.message, /runAll: stopped after 500 callbacks \(the limit\)/);
  }
  const chain = () => loop.callSoon(chain);
  loop.callSoon(chain);
  try {
    loop.runUntilIdle({ limit: 50 });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, LoopLimitError);
  }
  await loop.close();
});

manual('bad input: negative advance, bad limits, non-virtual loops, a running loop', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  assert.throws(
    () => loop.advance(-1),
    (e) => e instanceof RangeError && /advance: ms must be a finite number >= 0.*-1/.test(e.message),
  );
  assert.throws(
    () => loop.advance(Infinity),
    (e) => e instanceof RangeError,
  );
  assert.throws(
    () => loop.advance(NaN),
    (e) => e instanceof TypeError && /advance: ms/.test(e.message),
  );
  assert.throws(
    () => loop.advance('5'),
    (e) => e instanceof TypeError,
  );
  assert.throws(
    () => loop.runAll({ limit: 0 }),
    (e) => e instanceof RangeError && /runAll: limit must be a positive integer/.test(e.message),
  );
  assert.throws(
    () => loop.runAll(null),
    (e) => e instanceof TypeError,
  );
  let inside;
  await loop.runUntilComplete(async () => {
    try {
      loop.advance(1);
    } catch (error) {
      inside = error;
    }
  });
  assert.instance(inside, LoopRunningError);
  assert.is(loop.time(), 0, 'nothing moved');
  await loop.close();
  const real = await createLoop({ backend: 'selector' });
  for (const attempt of [() => real.advance(1), () => real.runAll(), () => real.runUntilIdle()]) {
    assert.throws(
      attempt,
      (e) => e instanceof NotSupportedError && /only a loop on the 'virtual' backend/.test(e.message),
    );
  }
  await real.close();
});

manual('a callback cannot close its loop inside advance, runUntilIdle or runAll; the run goes on', async () => {
  // Each call, and a delay its run reaches (runUntilIdle does not move the clock).
  const runs = [
    [(loop) => loop.runAll(), 5],
    [(loop) => loop.advance(20), 5],
    [(loop) => loop.runUntilIdle(), 0],
  ];
  for (const [drive, delay] of runs) {
    const loop = await createLoop({ backend: 'virtual' });
    const seen = [];
    let closing;
    loop.callLater(delay, () => {
      closing = loop.close().then(
        () => 'resolved',
        (error) => error,
      );
      seen.push('closer');
    });
    loop.callLater(delay, () => seen.push('after'));
    assert.is(drive(loop), 2);
    assert.equal(seen, ['closer', 'after']);
    const refused = await closing;
    assert.instance(refused, LoopRunningError);
    assert.match(refused.message, /^close: /);
    assert.not.ok(loop.isClosed());
    await loop.close();
    assert.ok(loop.isClosed());
  }
});

// ---------------------------------------------------------------- timers

const timers = suite('loop.timers');

timers("Node's argument handling", async () => {
  const loop = await createLoop({ backend: 'virtual' });
  const t = loop.timers;
  for (const bad of [undefined, null, 'f', 42]) {
    assert.throws(
      () => t.setTimeout(bad, 1),
      (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE',
    );
    assert.throws(
      () => t.setInterval(bad, 1),
      (e) => e.code === 'ERR_INVALID_ARG_TYPE',
    );
    assert.throws(
      () => t.setImmediate(bad),
      (e) => e.code === 'ERR_INVALID_ARG_TYPE',
    );
  }
  const timeout = t.setTimeout(() => {}, 5);
  assert.ok(timeout instanceof Timeout);
  assert.type(+timeout, 'number');
  assert.is(timeout.hasRef(), true);
  assert.is(timeout.unref().hasRef(), false);
  t.clearTimeout(undefined);
  t.clearTimeout(null);
  t.clearTimeout('not a timer');
  t.clearTimeout(timeout);
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  const seen = [];
  t.setTimeout(() => seen.push(loop.time()), 2 ** 31);
  loop.advance(5);
  await new Promise((resolve) => setImmediate(resolve));
  process.off('warning', onWarning);
  assert.equal(seen, [1], 'an overflowing delay runs after 1 ms');
  assert.is(warnings[0]?.name, 'TimeoutOverflowWarning');
  await loop.close();
});

timers('refresh restarts the delay from now', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  const seen = [];
  const timeout = loop.timers.setTimeout(() => seen.push(loop.time()), 10);
  loop.advance(6);
  timeout.refresh();
  loop.advance(20);
  assert.equal(seen, [16]);
  await loop.close();
});

// ------------------------------------------------------------ scenarios

const table = suite('timer scenarios: Node, sinon, loop.timers (virtual and real)');

/**
 * The closest racing deadlines of a scenario are this far apart (ms): tick 3
 * of 'an interval cleared after three ticks' and the timeout its tick 2 set,
 * 10 and 15 ms after tick 2.
 */
const SCENARIO_MIN_GAP_MS = 5;

/** The delay Node's timers use for `ms` (lib/internal/timers.js): whole ms from 1 to 2^31 - 1, else 1. */
const nodeDelay = (ms) => {
  const after = Number(ms);
  return after >= 1 && after <= 2 ** 31 - 1 ? Math.trunc(after) : 1;
};

/**
 * The scenario on Node's own timers, or null when they ran too late for its
 * order to be defined.
 *
 * The scenarios' order holds for deadlines counted from one clock reading
 * per callback; Node reads its clock again for each timer it arms. Here
 * each callback's deadline is counted from the start of the callback that
 * set it (an interval's from its previous deadline, which can make it up
 * to 1 ms early), and Node runs no timer before its own deadline (in the
 * whole ms it counts). So a callback that runs ahead of one due at least
 * SCENARIO_MIN_GAP_MS before it has made that one more than
 * SCENARIO_MIN_GAP_MS - 2 ms late (or still waiting when the scenario
 * ends): a run where no callback was that late ran in the scenario's order,
 * and one where some was is not checked.
 */
async function onNode(scenario) {
  const log = [];
  let lateMs = -Infinity;
  // When the running callback started: the deadlines it sets count from here.
  let startedAt = 0;
  // Each callback set and not cleared, by its handle: its deadline, whether it ran, and its clear.
  const pending = new Map();
  const timed = (entry, callback) =>
    function (...args) {
      startedAt = performance.now();
      lateMs = Math.max(lateMs, startedAt - entry.deadline);
      entry.ran = true;
      return callback.apply(this, args);
    };
  const clearing = (clear) => (handle) => {
    // A handle, or a timeout's numeric id (`+timeout`).
    for (const key of pending.keys()) {
      if (key === handle || (typeof handle === 'number' && typeof key === 'object' && +key === handle))
        pending.delete(key);
    }
    clear(handle);
  };
  const t = {
    setTimeout: (callback, ms, ...args) => {
      const entry = { deadline: startedAt + nodeDelay(ms), ran: false, clear: clearTimeout };
      const handle = setTimeout(timed(entry, callback), ms, ...args);
      pending.set(handle, entry);
      return handle;
    },
    setInterval: (callback, ms, ...args) => {
      const entry = { deadline: startedAt + nodeDelay(ms), ran: false, clear: clearInterval };
      const tick = timed(entry, callback);
      const handle = setInterval(
        function (...tickArgs) {
          try {
            return tick.apply(this, tickArgs);
          } finally {
            // Node re-arms from the tick's start: the next deadline is no earlier than this.
            entry.deadline += nodeDelay(ms);
            entry.ran = false;
          }
        },
        ms,
        ...args,
      );
      pending.set(handle, entry);
      return handle;
    },
    setImmediate: (callback, ...args) => {
      const entry = { deadline: startedAt, ran: false, clear: clearImmediate };
      const handle = setImmediate(timed(entry, callback), ...args);
      pending.set(handle, entry);
      return handle;
    },
    clearTimeout: clearing(clearTimeout),
    clearInterval: clearing(clearInterval),
    clearImmediate: clearing(clearImmediate),
  };
  await new Promise((resolve, reject) => {
    // Against a hang only, within the harness's limit.
    const guard = setTimeout(() => reject(new Error('scenario did not finish')), 20_000);
    startedAt = performance.now();
    scenario.run(
      t,
      (x) => log.push(x),
      () => {
        clearTimeout(guard);
        // A callback that has not run by the end is as late as its deadline is past.
        const now = performance.now();
        for (const entry of pending.values()) if (!entry.ran) lateMs = Math.max(lateMs, now - entry.deadline);
        resolve();
      },
    );
  });
  for (const [handle, entry] of pending) entry.clear(handle);
  return lateMs < SCENARIO_MIN_GAP_MS - 2 ? log : null;
}

function onSinon(scenario) {
  const clock = FakeTimers.createClock();
  const log = [];
  let done = false;
  scenario.run(
    clock,
    (x) => log.push(x),
    () => {
      done = true;
    },
  );
  clock.runAll();
  assert.ok(done, 'sinon ran the scenario to its end');
  return log;
}

async function onVirtual(scenario) {
  const loop = await createLoop({ backend: 'virtual' });
  const log = [];
  let done = false;
  scenario.run(
    loop.timers,
    (x) => log.push(x),
    () => {
      done = true;
    },
  );
  loop.runAll();
  assert.ok(done);
  await loop.close();
  return log;
}

/**
 * The scenario on `loop.timers`, or null when a real clock's timers ran too
 * late for its order to be defined: a timer that runs SCENARIO_MIN_GAP_MS
 * or more after its deadline (a loaded machine) may run after a later one.
 */
async function onLoop(scenario, backend) {
  const loop = await createLoop({ backend });
  const log = [];
  await loop.runUntilComplete(() => new Promise((resolve) => scenario.run(loop.timers, (x) => log.push(x), resolve)));
  const late = loop.stats().lagMaxMs >= SCENARIO_MIN_GAP_MS;
  await loop.close();
  return late ? null : log;
}

for (const scenario of scenarios) {
  table(scenario.name, async () => {
    const results = {
      'node timers': await onNode(scenario),
      'sinon fake-timers': onSinon(scenario),
      'loop.timers, virtual': await onVirtual(scenario),
      'loop.timers, autojump': await onLoop(scenario, 'virtual'),
      'loop.timers, selector': await onLoop(scenario, 'selector'),
    };
    for (const [who, log] of Object.entries(results)) {
      // null: a real-clock run whose timers ran too late for the order to be defined.
      if (log !== null) assert.equal(log, scenario.expect, who);
    }
    assert.ok(results['loop.timers, virtual'] !== null && results['loop.timers, autojump'] !== null);
  });
}

autojump.run();
manual.run();
timers.run();
table.run();
