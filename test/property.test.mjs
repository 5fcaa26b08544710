// Property tests at the TypeScript API, through the real component
// (fast-check): random programs of scheduling, cancellation (also from
// inside callbacks), stop and close at random points, checked against what
// the API promises.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  ConnectionResetError,
  createLoop,
  IncompleteReadError,
  LimitOverrunError,
  LoopClosedError,
} from '../ts-host/dist/index.js';

const RUNS = Number(process.env.FAST_CHECK_RUNS ?? 200);
let operationsChecked = 0;

/** One step of a program. Indices pick among the callbacks scheduled so far. */
const step = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('soon') }) },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('later'),
      delay: fc.oneof(fc.integer({ min: -5, max: 60 }), fc.double({ min: 0, max: 5, noNaN: true })),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('at'), offset: fc.integer({ min: -10, max: 40 }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('cancel'), pick: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('cancelFromCallback'),
      pick: fc.nat(),
      delay: fc.integer({ min: 0, max: 50 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('chain'),
      depth: fc.integer({ min: 1, max: 4 }),
      delay: fc.integer({ min: 0, max: 20 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('advance'), ms: fc.integer({ min: 0, max: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('stopInCallback'), delay: fc.integer({ min: 0, max: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('close') }) },
);

/**
 * Runs `program` on a virtual loop (by hand, with advance) and checks:
 * exactly once unless cancelled before running; never early; callSoon in
 * order; timers in (deadline, scheduling) order within an iteration's time;
 * nothing runs after close, and every operation then throws LoopClosedError.
 */
async function check(program) {
  const loop = await createLoop({ backend: 'virtual' });
  /** Every callback: { id, when, kind, order, runs, cancelledBeforeRun, handle } */
  const all = [];
  const ran = [];
  let closed = false;
  let stopRequested = false;
  let order = 0;
  const schedule = (kind, delayOrWhen, body) => {
    const entry = { id: all.length, kind, order: order++, runs: 0, cancelledBeforeRun: false, handle: null, when: 0 };
    const fn = () => {
      entry.runs++;
      ran.push({ id: entry.id, at: loop.time(), iteration: loop.stats().iterations });
      body?.();
    };
    if (kind === 'soon') entry.handle = loop.callSoon(fn);
    else if (kind === 'later') entry.handle = loop.callLater(delayOrWhen, fn);
    else entry.handle = loop.callAt(delayOrWhen, fn);
    entry.when = kind === 'soon' ? loop.time() : entry.handle.when();
    // The core's deadline: nanoseconds, delays rounded up (docs/design.md).
    const nowNs = Math.round(loop.time() * 1e6);
    entry.key =
      kind === 'later'
        ? nowNs + Math.ceil(Math.max(delayOrWhen, 0) * 1e6)
        : kind === 'at'
          ? Math.ceil(Math.max(delayOrWhen, 0) * 1e6)
          : nowNs;
    all.push(entry);
    return entry;
  };
  const cancel = (entry) => {
    if (entry.runs === 0 && !entry.handle.cancelled()) entry.cancelledBeforeRun = true;
    entry.handle.cancel();
  };
  for (const s of program) {
    operationsChecked++;
    if (closed) {
      assert.throws(
        () => loop.callSoon(() => {}),
        (e) => e instanceof LoopClosedError,
      );
      continue;
    }
    switch (s.op) {
      case 'soon':
        schedule('soon');
        break;
      case 'later':
        schedule('later', s.delay);
        break;
      case 'at':
        schedule('at', loop.time() + s.offset);
        break;
      case 'cancel':
        if (all.length > 0) cancel(all[s.pick % all.length]);
        break;
      case 'cancelFromCallback': {
        if (all.length === 0) break;
        const victim = all[s.pick % all.length];
        schedule('later', s.delay, () => cancel(victim));
        break;
      }
      case 'chain': {
        let depth = s.depth;
        const next = () => {
          if (--depth > 0) schedule('later', s.delay, next);
        };
        schedule('soon', 0, next);
        break;
      }
      case 'advance':
        loop.advance(s.ms);
        break;
      case 'stopInCallback':
        // stop() from a callback while the loop is driven by hand: the next run returns at once.
        schedule('later', s.delay, () => {
          stopRequested = true;
          loop.stop();
        });
        break;
      case 'close':
        await loop.close();
        closed = true;
        break;
    }
  }
  if (!closed) {
    loop.runAll({ limit: 1_000_000 });
    // A stop() requested by a callback applies to the next run, which then
    // does one iteration and returns.
    if (stopRequested) await loop.runForever();
    assert.not.ok(loop.isRunning());
  }
  // Exactly once, unless cancelled before it ran; never early.
  for (const e of all) {
    if (e.cancelledBeforeRun) assert.is(e.runs, 0, `callback ${e.id} was cancelled before it ran but ran`);
    else if (!closed) assert.is(e.runs, 1, `callback ${e.id} (${e.kind}) ran ${e.runs} times`);
    else assert.ok(e.runs <= 1);
  }
  for (const r of ran) {
    const e = all[r.id];
    if (e.kind !== 'soon')
      assert.ok(Math.round(r.at * 1e6) >= e.key, `callback ${r.id} ran at ${r.at}, before its time ${e.when}`);
  }
  // Order: among timers, (due time, scheduling order), except that a timer
  // due before its iteration runs in that iteration.
  for (let i = 1; i < ran.length; i++) {
    const a = all[ran[i - 1].id];
    const b = all[ran[i].id];
    const sameIteration = ran[i - 1].iteration === ran[i].iteration;
    if (sameIteration && a.kind !== 'soon' && b.kind !== 'soon') {
      const ka = a.key;
      const kb = b.key;
      assert.ok(ka < kb || (ka === kb && a.order < b.order), `timers ${a.id} and ${b.id} ran out of order`);
    }
    if (sameIteration && a.kind === 'soon' && b.kind === 'soon') {
      assert.ok(a.order < b.order, `callSoon ${a.id} ran before the earlier ${b.id}`);
    }
    if (sameIteration && a.kind !== 'soon' && b.kind === 'soon') {
      assert.unreachable(`callSoon ${b.id} ran after timer ${a.id} in one iteration: ready callbacks come first`);
    }
  }
  if (!closed) await loop.close();
}

const props = suite('property tests through the component');

props('exactly once, never early, in order, cancellation and stop/close at random points', async () => {
  await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 20, maxLength: 80, size: 'max' }), check), {
    numRuns: RUNS,
    seed: 42,
    includeErrorInReport: true,
  });
  console.log(`fast-check: ${RUNS} programs, ${operationsChecked} operations checked`);
  assert.ok(operationsChecked > RUNS * 10);
});

props('the real backend agrees: random programs on selector time', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 8 }), { minLength: 1, maxLength: 30 }), async (delays) => {
      const loop = await createLoop({ backend: 'selector' });
      const seen = [];
      const handles = delays.map((d, i) => loop.callLater(d, () => seen.push(i)));
      handles.forEach((h, i) => {
        if (i % 3 === 2) h.cancel();
      });
      await loop.runUntilComplete(() => loop.sleep(12));
      const expected = delays
        .map((d, i) => [d, i])
        .filter(([, i]) => i % 3 !== 2)
        .sort((x, y) => x[0] - y[0] || x[1] - y[1])
        .map(([, i]) => i);
      assert.equal(seen, expected);
      await loop.close();
    }),
    { numRuns: 25, seed: 7 },
  );
});

/** A read a stream client makes, for the framed-read model below. */
const readStep = fc.oneof(
  fc.record({ op: fc.constant('read') }),
  fc.record({ op: fc.constant('exactly'), n: fc.integer({ min: 0, max: 30 }) }),
  fc.record({
    op: fc.constant('until'),
    sep: fc.constantFrom('\n', 'ab', 'xyz'),
    limit: fc.integer({ min: 1, max: 40 }),
  }),
  fc.record({ op: fc.constant('line'), limit: fc.integer({ min: 1, max: 40 }) }),
);

/**
 * Framed reads against a model: the stream is `text` (bytes 0..255 as
 * latin1), written in the given chunk sizes; every read's outcome must be
 * what the concatenated stream dictates, whatever the chunking.
 */
async function checkFramedReads(text, cuts, steps) {
  const loop = await createLoop({ backend: 'virtual' });
  const bytes = Buffer.from(text, 'latin1');
  const latin = (b) => Buffer.from(b).toString('latin1');
  try {
    await loop.runUntilComplete(async () => {
      const server = await loop.createServer(
        async (conn) => {
          try {
            let at = 0;
            for (const cut of cuts) {
              if (at >= bytes.length) break;
              await conn.write(bytes.subarray(at, Math.min(bytes.length, at + cut)));
              at += cut;
              // One write per virtual millisecond: the client reads between them.
              await loop.sleep(1);
            }
            if (at < bytes.length) await conn.write(bytes.subarray(at));
            await conn.end();
            while ((await conn.read()) !== null);
          } catch (error) {
            // The client may finish its reads and close before the whole stream is sent.
            if (!(error instanceof ConnectionResetError)) throw error;
            conn.close();
          }
        },
        { port: 0 },
      );
      const client = await loop.createConnection({ port: server.address().port });
      let cursor = 0;
      for (const step of steps) {
        const rest = text.slice(cursor);
        if (step.op === 'read') {
          const chunk = await client.read();
          if (rest.length === 0) assert.is(chunk, null);
          else {
            assert.ok(
              chunk !== null && chunk.length > 0 && rest.startsWith(latin(chunk)),
              'read: a prefix of the rest',
            );
            cursor += chunk.length;
          }
        } else if (step.op === 'exactly') {
          const outcome = await client.readExactly(step.n).catch((e) => e);
          if (rest.length >= step.n) {
            assert.is(latin(outcome), rest.slice(0, step.n));
            cursor += step.n;
          } else {
            assert.instance(outcome, IncompleteReadError);
            assert.is(latin(outcome.partial), rest);
            cursor = text.length;
          }
        } else {
          const sep = step.op === 'line' ? '\n' : step.sep;
          const outcome = await (step.op === 'line'
            ? client.readLine({ limit: step.limit })
            : client.readUntil(sep, { limit: step.limit })
          ).catch((e) => e);
          const found = rest.indexOf(sep);
          if (found >= 0 && found + sep.length <= step.limit) {
            assert.is(latin(outcome), rest.slice(0, found + sep.length));
            cursor += found + sep.length;
          } else if (found >= 0 || rest.length > step.limit) {
            assert.instance(
              outcome,
              LimitOverrunError,
              `${step.op} ${JSON.stringify(sep)} limit ${step.limit} on ${JSON.stringify(rest)}`,
            );
          } else if (step.op === 'line') {
            assert.is(outcome === null ? null : latin(outcome), rest.length === 0 ? null : rest);
            cursor = text.length;
          } else {
            assert.instance(outcome, IncompleteReadError);
            assert.is(latin(outcome.partial), rest);
            cursor = text.length;
          }
        }
      }
      client.close();
      await server.close();
    });
  } finally {
    await loop.close();
  }
}

props('framed reads agree with a model of the stream, whatever its chunking', async () => {
  // Few letters, so separators ('ab', 'xyz', newlines) are common and often cut by a chunk boundary.
  const text = fc.string({ unit: fc.constantFrom('a', 'b', 'x', 'y', 'z', '\n', '\u00ff', '\u0000'), maxLength: 120 });
  await fc.assert(
    fc.asyncProperty(
      text,
      fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 40 }),
      fc.array(readStep, { minLength: 1, maxLength: 25 }),
      checkFramedReads,
    ),
    { numRuns: Math.max(100, RUNS * 2), seed: 11, includeErrorInReport: true },
  );
});

props.run();
