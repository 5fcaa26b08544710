// The test suites' `suite`: uvu's, with a time limit on every case and hook.
//
// uvu awaits each case for as long as it takes, so one case waiting for an
// event that never comes hangs the whole run (and CI until its own limit).
// Here each case races a limit (DEFAULT_TIME_LIMIT_MS, or the suite's or the
// case's own): past it the case fails with its suite's and its own name, and
// the run goes on. The limit guards against hangs; it asserts nothing about
// speed, so it sits far above what any case needs.
//
//   import { suite } from './harness.mjs';
//   const io = suite('streams', {}, { timeLimitMs: 60_000 }); // context, options: both optional
//   io('a case', async (context) => { ... });
//   io('a slow case', async () => { ... }, { timeLimitMs: 120_000 });
//
// A case that timed out may leave handles open (a socket, a loop waiting for
// I/O) that would keep Node running after the last suite: once a limit has
// been hit, the process exits when no case or hook has started or ended for
// longer than any limit (by then uvu has printed its summary and set the exit
// code).
import { suite as uvuSuite } from 'uvu';

/** A case's or hook's limit unless its suite or itself sets one. */
export const DEFAULT_TIME_LIMIT_MS = 30_000;

// The real timers, taken before any case can install fake ones (sinon's
// fake timers, or the counting setTimeout of helpers.mjs's countHostWaits).
const { setTimeout: realSetTimeout, clearTimeout: realClearTimeout } = globalThis;

/** Set once a limit has been hit: from then on, the run ends when it goes quiet. */
let quietWatch = null;
let quietLimitMs = 0;

/** Marks activity: a case or hook with `limitMs` started, or one ended (0). */
function stirred(limitMs) {
  if (quietWatch === null) return;
  realClearTimeout(quietWatch);
  // Longer than the running case's limit, which ends it first.
  armQuietWatch(Math.max(limitMs, quietLimitMs) + 1000);
}

function armQuietWatch(ms) {
  quietWatch = realSetTimeout(() => {
    console.error(
      `\n  harness: a case hit its time limit and handles it left open keep the process alive; exiting with code 1`,
    );
    process.exit(1);
  }, ms);
  // Only open handles may keep the process alive; this watch must not.
  // (Node and Bun return a timer object; Deno a number, unref'd its way.)
  if (typeof quietWatch === 'object') quietWatch.unref();
  else globalThis.Deno?.unrefTimer(quietWatch);
}

/** `fn(context)` raced against `limitMs`; past it, rejects naming `label`. */
function limited(label, limitMs, fn) {
  return (context) => {
    stirred(limitMs);
    let timer;
    const limit = new Promise((_, reject) => {
      timer = realSetTimeout(() => {
        quietLimitMs = Math.max(quietLimitMs, limitMs);
        if (quietWatch === null) armQuietWatch(quietLimitMs + 1000);
        reject(
          new Error(
            `${label} did not finish within its time limit of ${limitMs / 1000} s ` +
              '(a case that needs longer sets { timeLimitMs })',
          ),
        );
      }, limitMs);
    });
    const run = Promise.resolve().then(() => fn(context));
    return Promise.race([run, limit]).finally(() => {
      realClearTimeout(timer);
      stirred(0);
    });
  };
}

/**
 * uvu's `suite(name, context)`, every case and hook under a time limit:
 * `options.timeLimitMs` for the suite, or a case's third argument
 * `{ timeLimitMs }`.
 */
export function suite(name = '', context = {}, options = {}) {
  const inner = uvuSuite(name, context);
  const suiteLimit = options.timeLimitMs ?? DEFAULT_TIME_LIMIT_MS;
  const caseLabel = (caseName) => (name === '' ? `'${caseName}'` : `'${name}' › '${caseName}'`);
  const addCase =
    (register) =>
    (caseName, handler, caseOptions = {}) =>
      register(caseName, limited(caseLabel(caseName), caseOptions.timeLimitMs ?? suiteLimit, handler));
  const addHook = (register, hookName) => (handler) =>
    register(limited(`the ${hookName} hook of '${name}'`, suiteLimit, handler));

  const test = addCase(inner);
  test.only = addCase(inner.only);
  test.skip = inner.skip;
  test.before = addHook(inner.before, 'before');
  test.before.each = addHook(inner.before.each, 'before.each');
  test.after = addHook(inner.after, 'after');
  test.after.each = addHook(inner.after.each, 'after.each');
  test.run = inner.run;
  return test;
}

/** uvu's `test`: the cases of a file that has no suites of its own. */
export const test = suite();
