// The contract of a loop iteration (docs/design.md, "One iteration"): one
// case per rule.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { Handle } from '../ts-host/dist/index.js';
import { countHostWaits, freshLoop, spin } from './helpers.mjs';

const contract = suite('iteration contract');
freshLoop(contract);

contract('1. the clock is read once: loop.time() holds for the whole iteration', async ({ loop }) => {
  const seen = [];
  loop.callSoon(() => {
    seen.push(loop.time());
    spin(5);
  });
  loop.callSoon(() => seen.push(loop.time()));
  await loop.runUntilComplete(() => loop.sleep(0));
  assert.is(seen.length, 2);
  assert.is(seen[0], seen[1], 'both callbacks of one batch see the same time despite 5 ms of work');
  assert.ok(loop.time() > seen[0], 'the next iteration reads the clock again');
});

contract('2. expired timers are collected before any callback runs: a re-armed 0 ms timer waits', async ({ loop }) => {
  const order = [];
  let rearmed = 0;
  let rearmedAll;
  const rearm = () => {
    order.push(`rearm ${rearmed}`);
    if (++rearmed < 3) loop.callLater(0, rearm);
    else rearmedAll();
  };
  const before = loop.stats().iterations;
  await loop.runUntilComplete(
    () =>
      new Promise((resolve) => {
        rearmedAll = resolve;
        loop.callLater(0, rearm);
        loop.callLater(0, () => order.push('other'));
      }),
  );
  assert.equal(order, ['rearm 0', 'other', 'rearm 1', 'rearm 2']);
  // Each re-armed timer needed an iteration of its own: no spinning inside one.
  assert.ok(loop.stats().iterations - before >= 3);
});

contract('3a. the wait is until the earliest deadline: an idle loop does not spin', async ({ loop }) => {
  const start = loop.time();
  const iterationsBefore = loop.stats().iterations;
  await loop.runUntilComplete(() => loop.sleep(40));
  assert.ok(loop.time() - start >= 40);
  const iterations = loop.stats().iterations - iterationsBefore;
  assert.ok(iterations <= 6, `slept 40 ms in ${iterations} iterations`);
});

contract('3b. the wait is 0 while callbacks are ready: a callSoon chain runs without host timers', async ({ loop }) => {
  let n = 0;
  const { waits } = await countHostWaits(() =>
    loop.runUntilComplete(
      () =>
        new Promise((resolve) => {
          const step = () => (++n === 2000 ? resolve() : loop.callSoon(step));
          loop.callSoon(step);
        }),
    ),
  );
  assert.is(n, 2000);
  assert.is(waits, 0, 'ready work never waits on a host timer');
});

contract('3c. with nothing pending the wait is forever: an outside callback wakes the loop', async ({ loop }) => {
  const ran = [];
  const woken = new Promise((resolve) =>
    setTimeout(
      () =>
        loop.callSoon(() => {
          ran.push('woken');
          resolve();
        }),
      20,
    ),
  );
  const done = loop.runForever();
  await woken;
  assert.equal(ran, ['woken']);
  assert.ok(loop.isRunning());
  loop.stop();
  await done;
});

/**
 * Wakes the sleeping loop `times` times from host macrotasks (a callSoon
 * from a setImmediate, as I/O would), running `onWake` in each; resolves
 * after the last.
 */
function wakeFromOutside(loop, times, onWake) {
  return new Promise((resolve) => {
    let n = 0;
    const poke = () =>
      loop.callSoon(() => {
        onWake(n);
        if (++n === times) resolve();
        else setImmediate(poke);
      });
    setImmediate(poke);
  });
}

contract(
  '3d. a host timer outlives wakeups: a deadline pushed back on each arms one host timer, not one per wakeup',
  async ({ loop }) => {
    let fired = 0;
    const idle = loop.deadline(5_000, () => fired++);
    const { delays } = await countHostWaits(() =>
      loop.runUntilComplete(() => wakeFromOutside(loop, 50, () => idle.refresh())),
    );
    idle.cancel();
    assert.is(fired, 0);
    assert.ok(delays.length <= 2, `${delays.length} host timers for 50 wakeups: ${delays}`);
    assert.ok(
      delays.every((ms) => ms > 4_000),
      `each armed for the deadline: ${delays}`,
    );
  },
);

contract(
  '3h. a wakeup with a timer pending reads the clock twice: the wait reuses the batch-end reading',
  async ({ loop }) => {
    // Each wakeup reads the clock for its iteration (phase 1) and after its
    // batch (the loop's busy time); poll-timeout, which reads it again when a
    // timer is pending, is handed the second reading.
    const idle = loop.deadline(5_000, () => {});
    const perf = globalThis.performance;
    const now = perf.now;
    let reads = 0;
    perf.now = function countedNow() {
      reads++;
      return now.call(this);
    };
    try {
      await loop.runUntilComplete(() => wakeFromOutside(loop, 50, () => {}));
    } finally {
      // The own property goes; the prototype's method shows again.
      delete perf.now;
    }
    idle.cancel();
    assert.ok(reads <= 2 * 50 + 6, `${reads} clock reads for 50 wakeups`);
    assert.ok(reads >= 50, `${reads} clock reads: the counter saw the loop's reads`);
  },
);

contract(
  '3i. a reading handed to the wait is not kept: the next iteration reads the clock afresh',
  async ({ loop }) => {
    // Nothing pending after the first batch, so poll-timeout reads no clock;
    // the reading it was offered must not stand in for the next iteration's.
    const times = [];
    await loop.runUntilComplete(
      () =>
        new Promise((resolve) => {
          loop.callSoon(() => {
            times.push(loop.time());
            setTimeout(() => {
              loop.callSoon(() => {
                times.push(loop.time());
                resolve();
              });
            }, 30);
          });
        }),
    );
    assert.ok(times[1] - times[0] >= 25, `the loop's time moved ${times[1] - times[0]} ms in 30`);
  },
);

contract('3e. a host timer armed for a deadline since pushed back runs nothing early', async ({ loop }) => {
  // Pushed back at each of 3 wakeups about 15 ms apart: the timer armed
  // for the first deadline fires before the deadline does.
  let firedAt = null;
  let lastRefresh = null;
  const idle = loop.deadline(30, () => (firedAt = loop.time()));
  await loop.runUntilComplete(async () => {
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 15));
      await wakeFromOutside(loop, 1, () => {
        idle.refresh();
        lastRefresh = loop.time();
      });
    }
    await loop.sleep(60);
  });
  assert.ok(firedAt !== null, 'it ran');
  assert.ok(firedAt >= lastRefresh + 30, `ran at ${firedAt}, its last refresh at ${lastRefresh}`);
});

contract('3f. a deadline that moves earlier gets an earlier host timer', async ({ loop }) => {
  const start = loop.time();
  let firedAt = null;
  const late = loop.callLater(10_000, () => {});
  await loop.runUntilComplete(async () => {
    // The loop sleeps on a host timer for 10 s; an earlier timer replaces it.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) =>
      loop.callSoon(() =>
        loop.callLater(20, () => {
          firedAt = loop.time();
          resolve();
        }),
      ),
    );
  });
  late.cancel();
  assert.ok(firedAt - start < 1_000, `the 20 ms timer ran ${firedAt - start} ms in`);
});

contract('3g. with every timer cancelled the loop keeps no host timer while it sleeps', async ({ loop }) => {
  const hostTimers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
  const afterHostTurn = () => new Promise((resolve) => setImmediate(resolve));
  const before = hostTimers();
  const timer = loop.callLater(10_000, () => {});
  const done = loop.runForever();
  await afterHostTurn();
  await afterHostTurn();
  const whilePending = hostTimers() - before;
  // Cancelled from inside the loop, which then sleeps with nothing pending.
  loop.callSoon(() => timer.cancel());
  await afterHostTurn();
  await afterHostTurn();
  const afterCancel = hostTimers() - before;
  loop.stop();
  await done;
  assert.is(whilePending, 1, 'one host timer while the 10 s timer was pending');
  assert.is(afterCancel, 0, 'none once it was cancelled');
});

contract('4a. callbacks run in the order they became ready', async ({ loop }) => {
  const order = [];
  for (let i = 0; i < 100; i++) loop.callSoon(() => order.push(i));
  await loop.runUntilComplete(() => loop.sleep(0));
  assert.equal(order, [...Array(100).keys()]);
});

contract('4b. callbacks scheduled during a batch run in the next iteration', async ({ loop }) => {
  const log = [];
  loop.callSoon(() => {
    log.push(['a', loop.stats().iterations]);
    loop.callSoon(() => log.push(['c', loop.stats().iterations]));
  });
  loop.callSoon(() => log.push(['b', loop.stats().iterations]));
  await loop.runUntilComplete(() => loop.sleep(5));
  assert.equal(
    log.map(([name]) => name),
    ['a', 'b', 'c'],
  );
  assert.is(log[0][1], log[1][1], 'a and b ran in one iteration');
  assert.ok(log[2][1] > log[1][1], 'c ran in a later iteration');
});

contract('4c. a callback cancelled by an earlier one in the same batch is skipped', async ({ loop }) => {
  const order = [];
  let second;
  loop.callSoon(() => {
    order.push('first');
    second.cancel();
  });
  second = loop.callSoon(() => order.push('second'));
  loop.callSoon(() => order.push('third'));
  await loop.runUntilComplete(() => loop.sleep(0));
  assert.equal(order, ['first', 'third']);
  assert.ok(second.cancelled());
});

contract('4d. an expired timer cancelled by an earlier callback in the same batch is skipped', async ({ loop }) => {
  const order = [];
  let timer;
  loop.callLater(1, () => {
    order.push('first');
    timer.cancel();
  });
  timer = loop.callLater(1, () => order.push('cancelled'));
  loop.callLater(1, () => order.push('third'));
  await loop.runUntilComplete(() => loop.sleep(10));
  assert.equal(order, ['first', 'third']);
});

contract('4e. the callSoon queue keeps order and skips cancelled callbacks across many bursts', async ({ loop }) => {
  // 10,000 a burst spans three chunks of the host's queue; later bursts
  // reuse the chunks the first left behind.
  for (let burst = 0; burst < 3; burst++) {
    const ran = [];
    const handles = [];
    for (let i = 0; i < 10_000; i++) handles.push(loop.callSoon(() => ran.push(i)));
    for (let i = burst; i < 10_000; i += 3) handles[i].cancel();
    const kept = [...Array(10_000).keys()].filter((i) => i % 3 !== burst % 3 || i < burst);
    assert.is(loop.stats().readyPending, kept.length, `burst ${burst}: cancelled ones no longer count`);
    await loop.runUntilComplete(() => loop.sleep(0));
    assert.equal(ran, kept, `burst ${burst}: in order, the cancelled ones skipped`);
    assert.is(loop.stats().readyPending, 0);
    assert.ok(handles.every((h, i) => h.cancelled() === ((i - burst) % 3 === 0 && i >= burst)));
  }
});

contract(
  '4g. a burst of callSoon leaves no memory behind: the queue keeps a few chunks, not the burst',
  async ({ loop }) => {
    const burst = async (n) => {
      let ran = 0;
      for (let i = 0; i < n; i++) loop.callSoon(() => ran++);
      await loop.runUntilComplete(() => loop.sleep(0));
      assert.is(ran, n);
    };
    await burst(10_000);
    globalThis.gc();
    const before = process.memoryUsage().heapUsed;
    await burst(1_000_000);
    globalThis.gc();
    const kept = process.memoryUsage().heapUsed - before;
    assert.ok(kept < 2 * 2 ** 20, `${(kept / 2 ** 20).toFixed(1)} MiB kept after a burst of 1M`);
  },
);

contract('4f. a callSoon handle cancels only its own callback, and only before it runs', async ({ loop }) => {
  const order = [];
  const a = loop.callSoon(() => order.push('a'));
  const b = loop.callSoon(() => order.push('b'));
  b.cancel();
  b.cancel();
  assert.is(loop.stats().readyPending, 1, 'cancelling twice counts once');
  await loop.runUntilComplete(() => loop.sleep(0));
  assert.equal(order, ['a']);
  a.cancel(); // after it ran: nothing to cancel
  const c = loop.callSoon(() => order.push('c'));
  await loop.runUntilComplete(() => loop.sleep(0));
  assert.equal(order, ['a', 'c'], 'a stale handle did not cancel a later callback');
  assert.ok(c instanceof Handle && !c.cancelled());
});

contract('5. promise continuations created in a callback run before the next loop callback', async ({ loop }) => {
  const order = [];
  loop.callSoon(() => {
    order.push('callback 1');
    Promise.resolve().then(() => order.push('continuation 1'));
    (async () => {
      await null;
      await null;
      order.push('async chain');
    })();
    queueMicrotask(() => order.push('microtask'));
    process.nextTick(() => order.push('nextTick'));
  });
  loop.callSoon(() => order.push('callback 2'));
  await loop.runUntilComplete(() => loop.sleep(0));
  assert.equal(order, ['callback 1', 'nextTick', 'continuation 1', 'microtask', 'async chain', 'callback 2']);
});

contract.run();
