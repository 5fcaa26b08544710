// Shared by the test suites: a fresh loop per case, and small utilities.
import { fileURLToPath } from 'node:url';
import { createLoop } from '../ts-host/dist/index.js';

/** The completion backend's portable implementation (on `node:net`), as a `module:function` backend spec. */
export const NET_COMPLETION = `${fileURLToPath(new URL('../ts-host/dist/backends/completion.js', import.meta.url))}:createNetCompletionBackend`;

/** The host running the suites: 'node', 'deno' or 'bun' (test/host-suites.mjs runs them on the other two). */
export const HOST = globalThis.Deno !== undefined ? 'deno' : globalThis.Bun !== undefined ? 'bun' : 'node';

/** Whether the `selector` backend runs here: its addon needs libuv, which only Node has (docs/hosts.md). */
export const SELECTOR = HOST === 'node';

/**
 * Every backend with a network: the I/O suites run against each. On Deno
 * and Bun `completion` is the host's own sockets (completion-deno.ts,
 * completion-bun.ts); NET_COMPLETION is their node:net.
 */
export const IO_BACKENDS = [...(SELECTOR ? ['selector'] : []), 'completion', NET_COMPLETION, 'virtual'];

/** A backend with real sockets, for the side of a case that is not under test: the selector on Node, completion elsewhere. */
export const REAL_BACKEND = SELECTOR ? 'selector' : 'completion';

/** The Node.js that runs helper processes (on Deno and Bun: the machine's `node`). */
export const NODE = HOST === 'node' ? process.execPath : 'node';

/**
 * Bugs of a host, not of wasmloop, that break a case there: by host, then
 * by the key a case names. docs/hosts.md ("Deno and Bun: what the suites
 * found") says how each one shows.
 */
const HOST_BUGS = {
  deno: {
    emfile: 'Deno 2.9.6 panics once out of descriptors (ext/signals/lib.rs:58 unwraps EMFILE)',
    'node:net reset write':
      "Deno 2.9.6's node:net fails a write the peer reset with ECANCELED, not ECONNRESET or EPIPE",
    'node:net half-open': "Deno 2.9.6's node:net fails a write after the peer's FIN with EPIPE, allowHalfOpen or not",
    'tls paused end':
      "Deno 2.9.6's node:tls: a TLSSocket paused while records arrive, then resumed, reads every byte but never emits 'end' for the peer's close_notify (its own tls.createServer too)",
    'tls expired code':
      "Deno 2.9.6's node:tls (rustls) refuses an expired certificate as UNABLE_TO_VERIFY_LEAF_SIGNATURE, not CERT_HAS_EXPIRED (its own tls.connect too)",
  },
  bun: {
    'tls server half-close':
      "Bun 1.4.5's server-side node:tls TLSSocket over a Duplex (not a net.Socket) closes on the peer's close_notify: its later writes fail ('Socket is closed'), pending ones are cut short",
  },
};

/**
 * Registers `fn` as case `title` of `suite` (with the harness's case
 * `options`), or, where `bug` (a key, or a list of keys for bugs of
 * different hosts) is a known bug of this host (HOST_BUGS), skips it with
 * the reason in its title. `bug` null: no known bug concerns the case here.
 */
export function unlessHostBug(suite, bug, title, fn, options) {
  const keys = bug === null ? [] : [bug].flat();
  const reason = keys.map((key) => HOST_BUGS[HOST]?.[key]).find((r) => r !== undefined);
  if (reason === undefined) suite(title, fn, options);
  else suite.skip(`${title} [skipped on ${HOST}: ${reason}]`, fn);
}

/**
 * The largest chunk one read of `backend` delivers here: 64 KiB (the
 * loop's reads, Node's and Deno's), but Bun reads up to 512 KiB at once
 * (its sockets' receive buffer), on its own sockets and its node:net alike.
 */
export function readChunkMax(backend) {
  return HOST === 'bun' && backend !== 'virtual' ? 512 * 1024 : 64 * 1024;
}

/** `[command, args]` that runs `script` with `args` on the host running the suites (Deno needs its permissions). */
export function hostCommand(script, ...args) {
  return HOST === 'deno' ? [process.execPath, ['run', '-A', script, ...args]] : [process.execPath, [script, ...args]];
}

/** A backend's name in test titles. */
export const backendLabel = (backend) =>
  backend === NET_COMPLETION
    ? 'completion on node:net'
    : backend === 'completion' && HOST !== 'node'
      ? `completion on ${HOST}`
      : backend;

/**
 * A TCP port whose connects get no answer (test/fixtures/unanswered-port.mjs,
 * in a Node process: it needs the selector's addon). `close()` releases it.
 */
export async function unansweredPort() {
  const { spawn } = await import('node:child_process');
  const fixture = fileURLToPath(new URL('./fixtures/unanswered-port.mjs', import.meta.url));
  const child = spawn(NODE, [fixture], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (data) => resolve(Number(String(data).trim())));
    child.once('exit', (code) => reject(new Error(`unanswered-port.mjs exited with ${code}`)));
  });
  return {
    port,
    close: () =>
      new Promise((resolve) => {
        child.once('exit', resolve);
        child.stdin.end();
      }),
  };
}

/** Runs `fn(loop)` on a fresh loop of `backend` until it settles; closes the loop. */
export async function onLoop(backend, fn) {
  const loop = await createLoop({ backend });
  try {
    return await loop.runUntilComplete(() => fn(loop));
  } finally {
    if (!loop.isRunning()) await loop.close();
  }
}

/** A uvu `before.each`/`after.each` pair giving every case `context.loop`, a fresh loop. */
export function freshLoop(suite, options = {}) {
  suite.before.each(async (context) => {
    context.loop = await createLoop(options);
  });
  suite.after.each(async (context) => {
    if (context.loop.isRunning()) {
      context.loop.stop();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await context.loop.close();
  });
}

/** Busy-waits `ms` milliseconds of wall time. */
export function spin(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* busy */
  }
}

/** Replaces console[method] while `fn` runs; returns what was logged. */
export async function capture(method, fn) {
  const original = console[method];
  const calls = [];
  console[method] = (...args) => calls.push(args);
  try {
    await fn();
  } finally {
    console[method] = original;
  }
  return calls;
}

/**
 * Runs `fn` and counts the host timers with a positive delay armed meanwhile
 * (the loop arms one whenever it waits for real time), with their delays.
 * Zero waits means the work ran without waiting on the wall clock: virtual
 * time, checked without timing anything.
 *
 * `slept` lists the waits that ended with their timer firing, each as
 * `{ armedAt, firedAt }` on the `performance.now()` scale: from the moment
 * the timer was armed to the moment its callback began. A loop arms its
 * timer after its batch and runs the next one from that callback, so each
 * is a stretch in which the loop was idle, however slow the machine.
 */
export async function countHostWaits(fn) {
  const real = globalThis.setTimeout;
  const delays = [];
  const slept = [];
  globalThis.setTimeout = function (callback, ms, ...args) {
    if (!(ms > 0)) return real.call(this, callback, ms, ...args);
    delays.push(ms);
    const wait = { armedAt: performance.now(), firedAt: null };
    const fired = function (...callbackArgs) {
      wait.firedAt = performance.now();
      slept.push(wait);
      return callback.apply(this, callbackArgs);
    };
    return real.call(this, fired, ms, ...args);
  };
  try {
    const value = await fn();
    return { value, waits: delays.length, delays, slept };
  } finally {
    globalThis.setTimeout = real;
  }
}
