// The conformance runner: runs one vector on one loop and returns what it
// logged. Every JavaScript host (Node, Deno, Bun, workerd, Chromium) imports
// this same file, so the vectors mean the same thing everywhere. It uses only
// the loop's public API and ECMAScript built-ins: no node: imports.
//
// A vector is JSON:
//   { "about": "...", "program": [step...], "run": ms | "runForever": true,
//     "virtualOnly"?: true, "expect": ["name", "error:<message>", "stopped", ...] }
// Steps:
//   { "soon": name, "then"?: [step...] }            loop.callSoon, logs name
//   { "later": name, "ms": n, "then"?: [...] }      loop.callLater(n)
//   { "at": name, "ms": n, "then"?: [...] }         loop.callAt(loop.time() + n)
//   { "cancel": name }                              cancels that handle
//   { "throw": message, "ms": n }                   a timer whose callback throws
//   { "microtask": name }                           a promise continuation, logs name
//   { "sleep": name, "ms": n }                      loop.sleep(n), logs name when it resolves
//   { "time": name }                                logs "<name> on time" if loop time has
//                                                   reached the deadline `name` was given
//   { "stop": true }                                loop.stop()
// "ms" may be the string "Infinity".
//
// "run": ms runs the loop for that many ms of loop time, and then on until
// every callback the program scheduled (a finite delay: not "Infinity") has
// run or been cancelled. Every such deadline is within `run` of the start,
// but one scheduled from a callback counts from when that callback ran: a
// loop stalled on a busy machine may reach `run` first. Without a stall,
// nothing is left then, and the run ends as it would at `run`.

/** How long past `run` a run waits for the callbacks still to come, in ms of loop time. */
const SETTLE_LIMIT_MS = 10_000;

/** Runs `vector` on a fresh loop from `createLoop(options)`; resolves to the log. */
export async function runVector(createLoop, vector, options) {
  const loop = await createLoop(options);
  const log = [];
  const handles = new Map();
  const deadlines = new Map();
  // The callbacks scheduled with a finite deadline that have neither run nor
  // been cancelled, each by a token of its own; `tokens`: those of `handles`.
  const outstanding = new Set();
  const tokens = new Map();
  const scheduled = (when) => {
    const token = {};
    if (when !== Infinity) outstanding.add(token);
    return token;
  };
  loop.setExceptionHandler((_loop, context) => {
    const error = context.error;
    log.push(`error:${error && typeof error === 'object' && 'message' in error ? error.message : String(error)}`);
  });
  const delay = (step) => (step.ms === 'Infinity' ? Infinity : step.ms);
  const body = (step, token) => () => {
    outstanding.delete(token);
    log.push(step.soon ?? step.later ?? step.at);
    for (const inner of step.then ?? []) perform(inner);
  };
  function perform(step) {
    if ('soon' in step) {
      const token = scheduled(0);
      tokens.set(step.soon, token);
      handles.set(step.soon, loop.callSoon(body(step, token)));
    } else if ('later' in step) {
      deadlines.set(step.later, loop.time() + Math.max(0, delay(step)));
      const token = scheduled(delay(step));
      tokens.set(step.later, token);
      handles.set(step.later, loop.callLater(delay(step), body(step, token)));
    } else if ('at' in step) {
      const when = loop.time() + delay(step);
      deadlines.set(step.at, when);
      const token = scheduled(when);
      tokens.set(step.at, token);
      handles.set(step.at, loop.callAt(when, body(step, token)));
    } else if ('cancel' in step) {
      handles.get(step.cancel)?.cancel();
      outstanding.delete(tokens.get(step.cancel));
    } else if ('throw' in step) {
      const token = scheduled(delay(step));
      loop.callLater(delay(step), () => {
        outstanding.delete(token);
        throw new Error(step.throw);
      });
    } else if ('microtask' in step) {
      Promise.resolve().then(() => log.push(step.microtask));
    } else if ('sleep' in step) {
      const token = scheduled(delay(step));
      loop.sleep(delay(step)).then(() => {
        outstanding.delete(token);
        log.push(step.sleep);
      });
    } else if ('time' in step) {
      if (loop.time() >= deadlines.get(step.time)) log.push(`${step.time} on time`);
      else log.push(`${step.time} early: time ${loop.time()} < deadline ${deadlines.get(step.time)}`);
    } else if ('stop' in step) {
      loop.stop();
    } else {
      throw new TypeError(`conformance vector: unknown step ${JSON.stringify(step)}`);
    }
  }
  try {
    for (const step of vector.program) perform(step);
    if (vector.runForever) {
      await loop.runForever();
      log.push('stopped');
    } else {
      await loop.runUntilComplete(async () => {
        await loop.sleep(vector.run);
        // What is still to come is due already: a limit against a hang only.
        const giveUpAt = loop.time() + SETTLE_LIMIT_MS;
        while (outstanding.size > 0 && loop.time() < giveUpAt) await loop.sleep(1);
      });
    }
  } finally {
    await loop.close();
  }
  return log;
}

/**
 * Runs every vector that applies to `backend`; resolves to one result per
 * vector: its name, the backend and the log it produced. The host does not
 * judge its own results: the test compares them with the vector files.
 */
export async function runAll(createLoop, vectors, backend) {
  const results = [];
  for (const [name, vector] of Object.entries(vectors)) {
    if (vector.virtualOnly && backend !== 'virtual') continue;
    let got;
    try {
      got = await runVector(createLoop, vector, { backend });
    } catch (error) {
      got = [`runner error: ${error?.stack ? error.stack : error}`];
    }
    results.push({ name, backend, got });
  }
  return results;
}

/**
 * TCP echo over loopback on `backend`: a server echoes what it reads; a client
 * sends `bytes` bytes of a known pattern in 64 KiB writes and reads them back.
 * With `port`, the client talks to an echo server already listening there
 * (outside the loop) instead. Resolves to { pass, detail }, and
 * `supported: false` when the host cannot do it and the loop said so with a
 * NotSupportedError.
 */
export async function echoCheck(createLoop, backend, bytes = 4 << 20, port = undefined) {
  const loop = await createLoop({ backend });
  try {
    return await loop.runUntilComplete(async () => {
      let server = null;
      if (port === undefined) {
        server = await loop.createServer(
          async (conn) => {
            for await (const chunk of conn) await conn.write(chunk);
            await conn.end();
          },
          { host: '127.0.0.1', port: 0 },
        );
      }
      const client = await loop.createConnection({ host: '127.0.0.1', port: port ?? server.address().port });
      const payload = new Uint8Array(bytes);
      for (let i = 0; i < bytes; i++) payload[i] = (i * 31 + (i >>> 11)) & 0xff;
      const reading = (async () => {
        let received = 0;
        let bad = -1;
        for await (const chunk of client) {
          for (let i = 0; i < chunk.length && bad < 0; i++) if (chunk[i] !== payload[received + i]) bad = received + i;
          received += chunk.length;
        }
        return { received, bad };
      })();
      for (let off = 0; off < bytes; off += 1 << 16) await client.write(payload.subarray(off, off + (1 << 16)));
      await client.end();
      const { received, bad } = await reading;
      if (server !== null) await server.close();
      const pass = received === bytes && bad < 0;
      return { pass, detail: `${received} of ${bytes} bytes echoed${bad >= 0 ? `, first wrong byte at ${bad}` : ''}` };
    });
  } catch (error) {
    if (error && error.name === 'NotSupportedError')
      return { pass: false, supported: false, detail: `${error.name}: ${error.message}` };
    return { pass: false, detail: `echo failed: ${error?.stack ? error.stack : error}` };
  } finally {
    await loop.close();
  }
}

/**
 * Everything a JS host reports: the vectors on `auto` and `virtual`, which
 * backends start here (and the error of those that do not), TCP echo on
 * every backend that has a network (client-only against `echoPort` where
 * the host cannot listen), the error `auto` gives for TCP when it has none,
 * and what the loader compiled (`loadedCore()`: each core module's sha256,
 * hashed from the bytes handed to WebAssembly.compile).
 */
export async function hostReport(wasmloop, { host, version, createOptions = {}, echoPort }) {
  const createLoop = (options) => wasmloop.createLoop({ ...options, ...createOptions });
  const backends = {};
  for (const name of wasmloop.BACKEND_NAMES) {
    try {
      const loop = await createLoop({ backend: name });
      backends[name] = { starts: true, chose: loop.backend };
      await loop.close();
    } catch (error) {
      backends[name] = { starts: false, error: `${error.name}: ${error.message}` };
    }
  }
  const autoBackend = backends.auto.chose;
  const vectors = vectorsOf();
  const results = [...(await runAll(createLoop, vectors, 'auto')), ...(await runAll(createLoop, vectors, 'virtual'))];
  const echo = {};
  for (const name of ['selector', 'completion', 'virtual']) {
    if (!backends[name].starts) continue;
    echo[name] = await echoCheck(createLoop, name, name === 'virtual' ? 1 << 20 : 4 << 20);
    // A host that cannot listen may still connect out: to an echo server
    // the test runs outside the host, where it gave one.
    if (echo[name].supported === false && echoPort !== undefined) {
      echo[name].client = await echoCheck(createLoop, name, 1 << 20, echoPort);
    }
  }
  let autoTcp = 'works';
  if (autoBackend === 'clock') {
    const loop = await createLoop({ backend: 'auto' });
    try {
      await loop.createConnection({ host: '127.0.0.1', port: 9 });
      autoTcp = 'connected (unexpected)';
    } catch (error) {
      autoTcp = `${error.name}: ${error.message}`;
    } finally {
      await loop.close();
    }
  }
  return {
    host,
    version,
    autoBackend,
    backends,
    compiled: wasmloop.loadedCore(),
    results,
    echo,
    autoTcp,
  };
}

let loadedVectors = null;
/** The vectors a host was given (see `useVectors`). */
function vectorsOf() {
  if (loadedVectors === null) throw new Error('conformance runner: call useVectors(vectors) first');
  return loadedVectors;
}
/** Hands the runner the vectors, as each host loads them its own way. */
export function useVectors(vectors) {
  loadedVectors = vectors;
}
