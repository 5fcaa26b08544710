// HTTP in virtual time: serve() and loop.fetch over the virtual backend's
// in-memory network, so a server's timeouts and a client's retries happen
// in virtual time, checked by loop time (and by the host waiting on no
// timer at all), and an HTTP program records and replays identically.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { ReplayDivergenceError, createHttpClient, createLoop, serve } from '../ts-host/dist/index.js';
import { countHostWaits, onLoop } from './helpers.mjs';

const base = (server) => `http://127.0.0.1:${server.address().port}`;

/** An application's retry: on a 503 or a failure, again after 100, 200, 400 ms ..., each try limited to 1 s. */
async function fetchWithRetry(loop, url, { attempts = 4, baseMs = 100, timeoutMs = 1000 } = {}) {
  for (let attempt = 0; ; attempt++) {
    const outcome = await loop.fetch(url, { signal: loop.timeoutSignal(timeoutMs) }).catch((error) => error);
    if (!(outcome instanceof Error) && outcome.status !== 503) return outcome;
    if (attempt + 1 === attempts) throw new Error(`gave up after ${attempts} attempts`);
    if (!(outcome instanceof Error)) await outcome.body?.cancel();
    await loop.sleep(baseMs * 2 ** attempt);
  }
}

/**
 * A server that answers 503, then hangs, then answers 200: the times (loop
 * time, ms) at which requests arrived go to `arrivals`.
 */
function flakyServer(loop, arrivals) {
  return serve(loop, {
    port: 0,
    fetch: () => {
      arrivals.push(loop.time());
      if (arrivals.length === 1) return new Response('busy', { status: 503 });
      if (arrivals.length === 2) return new Promise(() => {}); // never answers
      return new Response('done');
    },
  });
}

/**
 * Records how connections made through this connector end: a connector
 * wraps the client's protocol (as a TLS layer would) and sees every event.
 */
function watchingConnector(ends) {
  return async (loop, target, protocol) => {
    const lost = protocol.connectionLost.bind(protocol);
    protocol.connectionLost = (error) => {
      ends.push(loop.time());
      lost(error);
    };
    await loop.createProtocolConnection(() => protocol, { host: target.host, port: target.port });
  };
}

const virtual = suite('HTTP in virtual time');

virtual("the server's keepAliveTimeoutMs closes an idle connection after exactly that much virtual time", async () => {
  const { waits } = await countHostWaits(() =>
    onLoop('virtual', async (loop) => {
      const ends = [];
      const server = await serve(loop, { port: 0, keepAliveTimeoutMs: 5000, fetch: () => new Response('hi') });
      const http = createHttpClient(loop, { idleTimeoutMs: 60_000, connect: watchingConnector(ends) });
      await loop.sleep(250);
      assert.is(await (await http.fetch(base(server))).text(), 'hi');
      const answered = loop.time();
      while (ends.length === 0) await loop.sleep(100);
      assert.is(ends[0] - answered, 5000, 'closed by the server, 5 s after the response');
      assert.is(http.connections, 0);
      await http.close();
      await server.close();
    }),
  );
  assert.is(waits, 0, 'no host timer: the 5 s passed in virtual time');
});

virtual("the client's idleTimeoutMs closes its idle connections after exactly that much virtual time", async () => {
  const { waits } = await countHostWaits(() =>
    onLoop('virtual', async (loop) => {
      const ends = [];
      const server = await serve(loop, { port: 0, fetch: () => new Response('ok') });
      const http = createHttpClient(loop, { idleTimeoutMs: 50, connect: watchingConnector(ends) });
      await loop.sleep(250);
      await Promise.all([1, 2, 3].map(async () => (await http.fetch(base(server))).text()));
      const answered = loop.time();
      assert.is(http.idleConnections, 3, 'each kept alive, idle');
      while (http.connections > 0) await loop.sleep(1);
      assert.equal(
        ends.map((t) => t - answered),
        [50, 50, 50],
        'closed by the client, 50 ms after the responses',
      );
      await http.close();
      await server.close();
    }),
  );
  assert.is(waits, 0, 'no host timer: the timeouts ran in virtual time');
});

virtual(
  "the server's requestTimeoutMs: a head that stops arriving gets its 408 exactly that long after the connection opened",
  () =>
    onLoop('virtual', async (loop) => {
      const server = await serve(loop, { port: 0, requestTimeoutMs: 2000, fetch: () => new Response('never') });
      const conn = await loop.createConnection({ port: server.address().port });
      const connected = loop.time();
      await loop.sleep(30);
      await conn.write('GET / HTTP/1.1\r\nHo');
      let text = '';
      for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read())
        text += new TextDecoder().decode(chunk);
      assert.match(text, /^HTTP\/1\.1 408 /);
      assert.is(loop.time() - connected, 2000, 'the 408 came at the deadline, counted from the connection');
      conn.close();
      await server.close();
    }),
);

virtual("the server's bodyTimeoutMs: a request body that stalls is answered 408, and the client stops sending it", () =>
  onLoop('virtual', async (loop) => {
    const server = await serve(loop, {
      port: 0,
      bodyTimeoutMs: 3000,
      fetch: async (r) => new Response(await r.text()),
    });
    let pulls = 0;
    const stalling = new ReadableStream({
      pull(controller) {
        if (pulls++ === 0) controller.enqueue(new TextEncoder().encode('the start, then nothing'));
        else return new Promise(() => {});
      },
    });
    const start = loop.time();
    const response = await loop.fetch(base(server), { method: 'POST', body: stalling, duplex: 'half' });
    assert.is(response.status, 408);
    assert.is(loop.time() - start, 3000);
    await response.text();
    await server.close();
  }),
);

virtual('a client retry with backoff and a per-try timeout runs in virtual time', async () => {
  const { value: arrivals, waits } = await countHostWaits(() =>
    onLoop('virtual', async (loop) => {
      const arrivals = [];
      const server = await flakyServer(loop, arrivals);
      const start = loop.time();
      const response = await fetchWithRetry(loop, base(server));
      assert.is(await response.text(), 'done');
      await server.close();
      return arrivals.map((t) => t - start);
    }),
  );
  // 503 at once; 100 ms later a try that hangs until its 1 s timeout; 200 ms after that, success.
  assert.equal(arrivals, [0, 100, 1300]);
  assert.is(waits, 0, 'the 1.3 s passed in virtual time');
});

/** An HTTP program: a server, a retried fetch, a POST, all in one loop; returns what it saw. */
async function httpProgram(loop, { baseMs = 100 } = {}) {
  return loop.runUntilComplete(async () => {
    const arrivals = [];
    const server = await flakyServer(loop, arrivals);
    const response = await fetchWithRetry(loop, base(server), { baseMs });
    const body = await response.text();
    const echo = await serve(loop, { port: 0, fetch: async (r) => new Response(`${r.method} ${await r.text()}`) });
    const posted = await (await loop.fetch(base(echo), { method: 'POST', body: 'x'.repeat(100_000) })).text();
    await Promise.all([server.close(), echo.close()]);
    return { arrivals, body, posted: posted.length, end: loop.time() };
  });
}

virtual('record and replay: an HTTP program replays identically; a changed one diverges', async () => {
  const recording = await createLoop({ backend: 'virtual', record: true });
  const seen = await httpProgram(recording);
  const trace = JSON.stringify(recording.trace());
  await recording.close();
  assert.equal(seen.arrivals, [0, 100, 1300]);

  const replaying = await createLoop({ backend: 'virtual', replay: trace });
  assert.equal(await httpProgram(replaying), seen);
  const { callbacks, iterations } = JSON.parse(trace);
  assert.equal(replaying.trace().callbacks, callbacks, 'the same callbacks');
  assert.equal(replaying.trace().iterations, iterations, 'in the same iterations, at the same times');
  await replaying.close();

  const changed = await createLoop({ backend: 'virtual', replay: trace });
  const error = await httpProgram(changed, { baseMs: 150 }).catch((e) => e);
  assert.instance(error, ReplayDivergenceError);
  assert.match(error.message, /iteration \d+/);
  await changed.close();
});

virtual.run();
