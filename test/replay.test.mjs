// Record and replay, and determinism in virtual time.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { createLoop, NotSupportedError, ReplayDivergenceError } from '../ts-host/dist/index.js';
import { countHostWaits } from './helpers.mjs';

/** A seeded program of `n` random loop operations (xorshift, so every run is the same). */
async function randomProgram(loop, seed, n) {
  let state = seed >>> 0 || 1;
  const rand = (k) => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % k;
  };
  const handles = [];
  const log = [];
  let ops = 0;
  const op = () => {
    if (ops >= n) return;
    ops++;
    switch (rand(6)) {
      case 0:
        handles.push(
          loop.callSoon(function soon() {
            log.push('s');
            op();
          }),
        );
        break;
      case 1:
      case 2:
        handles.push(
          loop.callLater(rand(50), function later() {
            log.push('l');
            op();
            op();
          }),
        );
        break;
      case 3:
        handles.push(
          loop.callAt(loop.time() + rand(20), function at() {
            log.push('a');
            op();
          }),
        );
        break;
      case 4:
        if (handles.length > 0) handles[rand(handles.length)].cancel();
        op();
        break;
      default:
        loop.sleep(rand(30)).then(() => {
          log.push('p');
          op();
        });
    }
  };
  await loop.runUntilComplete(async () => {
    for (let i = 0; i < 20; i++) op();
    while (ops < n || loop.stats().timersPending + loop.stats().readyPending > 0) await loop.sleep(100);
  });
  return log;
}

const determinism = suite('determinism');

determinism('a seeded program of 10,000 random operations gives byte-identical traces', async () => {
  const runs = [];
  for (let r = 0; r < 3; r++) {
    const loop = await createLoop({ backend: 'virtual', record: true });
    const log = await randomProgram(loop, 12345, 10_000);
    runs.push({ log: log.join(''), trace: JSON.stringify(loop.trace()) });
    await loop.close();
  }
  assert.ok(runs[0].trace.length > 10_000);
  assert.is(runs[1].trace, runs[0].trace);
  assert.is(runs[2].trace, runs[0].trace);
  assert.is(runs[1].log, runs[0].log);
  const other = await createLoop({ backend: 'virtual', record: true });
  await randomProgram(other, 999, 10_000);
  assert.is.not(JSON.stringify(other.trace()), runs[0].trace, 'a different seed gives a different trace');
  await other.close();
});

const replay = suite('record and replay');

replay('a recorded program replays in virtual time, in the same order', async () => {
  const recording = await createLoop({ backend: 'virtual', record: true });
  const log = await randomProgram(recording, 7, 2000);
  const trace = recording.trace();
  await recording.close();
  assert.is(trace.format, 'wasmloop-trace');
  assert.is(trace.backend, 'virtual');
  const replaying = await createLoop({ backend: 'virtual', replay: JSON.stringify(trace) });
  const again = await randomProgram(replaying, 7, 2000);
  assert.equal(again, log);
  assert.equal(replaying.trace(), trace);
  await replaying.close();
});

replay('a program recorded on real time replays in virtual time', async () => {
  const program = async (loop) => {
    const order = [];
    loop.callLater(15, function slow() {
      order.push('slow');
    });
    loop.callLater(5, function fast() {
      order.push('fast');
      loop.callSoon(function next() {
        order.push('next');
      });
    });
    await loop.runUntilComplete(() => loop.sleep(25));
    return order;
  };
  const recording = await createLoop({ backend: 'selector', record: true });
  const order = await program(recording);
  const trace = recording.trace();
  await recording.close();
  const replaying = await createLoop({ backend: 'virtual', replay: trace });
  const { value: replayed, waits } = await countHostWaits(() => program(replaying));
  assert.equal(replayed, order);
  assert.is(waits, 0, 'the replay never waits on the wall clock: virtual time');
  // The replay ran each iteration at the recorded time.
  assert.equal(
    replaying.trace().iterations.map(([t]) => t),
    trace.iterations.map(([t]) => t),
  );
  await replaying.close();
});

replay('the first divergence is reported precisely', async () => {
  const recording = await createLoop({ backend: 'virtual', record: true });
  recording.callLater(5, function first() {});
  recording.callLater(10, function second() {});
  await recording.runUntilComplete(() => recording.sleep(20));
  const trace = recording.trace();
  await recording.close();

  // Scheduled in another order.
  const swapped = await createLoop({ backend: 'virtual', replay: trace });
  swapped.callLater(10, function second() {});
  swapped.callLater(5, function first() {});
  try {
    await swapped.runUntilComplete(() => swapped.sleep(20));
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ReplayDivergenceError);
    assert.is(error.iteration, 1);
    assert.is(error.position, 0);
    assert.match(
      error.message,
      /iteration 1, position 0 \(loop time 5 ms\): expected callback #0 \(callLater first\), ran callback #1 \(callLater first\)/,
    );
  }
  assert.not.ok(swapped.isClosed(), 'a divergence ends the run, not the loop');
  await swapped.close();

  // A callback missing from the replayed program: every later serial shifts,
  // so the first iteration already differs.
  const missing = await createLoop({ backend: 'virtual', replay: trace });
  missing.callLater(5, function first() {});
  try {
    await missing.runUntilComplete(() => missing.sleep(20));
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ReplayDivergenceError);
    assert.match(
      error.message,
      /iteration 0, position 0 \(loop time 0 ms\): expected callback #2 \(callSoon <anonymous>\), ran callback #1/,
    );
  }
  await missing.close();

  // Nothing due where the recording ran something.
  const starved = await createLoop({ backend: 'virtual', replay: trace });
  starved.callLater(5, function first() {});
  starved.callLater(12, function second() {});
  try {
    await starved.runUntilComplete(() => starved.sleep(20));
    assert.unreachable();
  } catch (error) {
    assert.match(
      error.message,
      /iteration 2: the recording ran callback #1 \(callLater second\) at loop time 10 ms, but at 10 ms nothing is due/,
    );
  }
  await starved.close();

  // Same order, another function.
  const renamed = await createLoop({ backend: 'virtual', replay: trace });
  renamed.callLater(5, function first() {});
  renamed.callLater(10, function third() {});
  try {
    await renamed.runUntilComplete(() => renamed.sleep(20));
    assert.unreachable();
  } catch (error) {
    assert.match(error.message, /callback #1 was callLater second in the recording but is callLater third now/);
  }
  await renamed.close();
});

replay('malformed traces and misuse are clear errors', async () => {
  const cases = [
    [{ backend: 'virtual', replay: '{not json' }, /replay is not a wasmloop trace \(invalid JSON/],
    [{ backend: 'virtual', replay: {} }, /replay is not a wasmloop trace \(format is not 'wasmloop-trace'\)/],
    [
      {
        backend: 'virtual',
        replay: {
          format: 'wasmloop-trace',
          version: 9,
          backend: 'x',
          start: 0,
          reads: [],
          callbacks: [],
          iterations: [],
        },
      },
      /version 9 is not 1/,
    ],
    [
      {
        backend: 'virtual',
        replay: {
          format: 'wasmloop-trace',
          version: 1,
          backend: 'x',
          start: 0,
          reads: [],
          callbacks: [],
          iterations: [[0, [3]]],
        },
      },
      /names a callback that is not in callbacks/,
    ],
    [
      {
        backend: 'virtual',
        replay: {
          format: 'wasmloop-trace',
          version: 1,
          backend: 'x',
          start: 0,
          reads: [],
          callbacks: [['callSoon', 'f']],
          iterations: [
            [5, [0]],
            [1, [0]],
          ],
        },
      },
      /goes back in time/,
    ],
    [
      {
        backend: 'virtual',
        replay: {
          format: 'wasmloop-trace',
          version: 1,
          backend: 'x',
          start: -1,
          reads: [],
          callbacks: [],
          iterations: [],
        },
      },
      /start is not a time/,
    ],
    [
      {
        backend: 'selector',
        replay: {
          format: 'wasmloop-trace',
          version: 1,
          backend: 'x',
          start: 0,
          reads: [],
          callbacks: [],
          iterations: [],
        },
      },
      /replay needs backend 'virtual'/,
    ],
    [{ record: 'yes' }, /record must be a boolean/],
  ];
  for (const [options, pattern] of cases) {
    try {
      const loop = await createLoop(options);
      await loop.close();
      assert.unreachable(String(pattern));
    } catch (error) {
      assert.instance(error, TypeError);
      assert.match(error.message, pattern);
    }
  }
  const plain = await createLoop({ backend: 'virtual' });
  assert.throws(
    () => plain.trace(),
    (e) => e instanceof NotSupportedError && /does not record/.test(e.message),
  );
  await plain.close();
});

determinism.run();
replay.run();

const network = suite('replaying I/O');

/** A TCP exchange: an echo server, two clients, interleaved with timers. */
async function exchange(loop) {
  const log = [];
  await loop.runUntilComplete(async () => {
    const server = await loop.createServer(
      async function handler(conn) {
        let chunk;
        while ((chunk = await conn.read()) !== null) {
          log.push(`server got ${new TextDecoder().decode(chunk)}`);
          await conn.write(chunk);
        }
        await conn.end();
      },
      { port: 0 },
    );
    const port = server.address().port;
    const talk = async (name, delay) => {
      const client = await loop.createConnection({ port });
      await loop.sleep(delay);
      await client.write(name);
      log.push(`${name} got ${new TextDecoder().decode(await client.read())}`);
      await client.end();
      await client.read();
    };
    await Promise.all([talk('alice', 5), talk('bob', 15)]);
    await server.close();
  });
  return log;
}

network('a TCP exchange recorded on the selector backend replays in virtual time, in the same order', async () => {
  const recording = await createLoop({ backend: 'selector', record: true });
  const log = await exchange(recording);
  const trace = recording.trace();
  await recording.close();
  assert.ok(
    trace.callbacks.some(([kind]) => kind === 'watch'),
    'the recording has readiness events',
  );
  const replaying = await createLoop({ backend: 'virtual', replay: trace });
  const { value: replayedLog, waits } = await countHostWaits(() => exchange(replaying));
  assert.equal(replayedLog, log);
  assert.is(waits, 0, 'the replay never waits on the wall clock: virtual time');
  const replayed = replaying.trace();
  assert.equal(replayed.iterations, trace.iterations, 'the same callbacks, in the same iterations, at the same times');
  await replaying.close();
});

network('the virtual network adds its latency to every trip', async () => {
  const loop = await createLoop({ backend: 'virtual', virtual: { latencyMs: 10 } });
  const timings = await loop.runUntilComplete(async () => {
    const server = await loop.createServer(
      async (conn) => {
        await conn.write(await conn.read());
        conn.close();
      },
      { port: 7 },
    );
    const client = await loop.createConnection({ port: 7 });
    const t0 = loop.time();
    await client.write('x');
    await client.read();
    const rtt = loop.time() - t0;
    client.close();
    await server.close();
    return rtt;
  });
  assert.is(timings, 20, 'one round trip: twice the one-way latency');
  await loop.close();
  try {
    await createLoop({ backend: 'selector', virtual: { latencyMs: 1 } });
    assert.unreachable();
  } catch (error) {
    assert.match(error.message, /the virtual option needs backend 'virtual'/);
  }
  try {
    await createLoop({ backend: 'virtual', virtual: { latencyMs: -1 } });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, RangeError);
  }
});

network.run();
