// Limits and timeouts on servers and connections, on every backend with a
// network: maxConnections (the connection over the limit is accepted and
// closed at once), idleTimeoutMs (an idle connection is closed, what waits
// rejects with TimeoutError; a protocol hears it in connectionLost),
// readTimeoutMs (the read rejects, the connection stays usable). On
// `virtual` the times are asserted exactly; elsewhere the cases wait for
// the events (never a timed assertion). Each case ends with the counts
// back to where they were: timers, watchers, expected completions,
// descriptors.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { TimeoutError, createLoop } from '../ts-host/dist/index.js';
import { virtualBackends } from './fixtures/backends.mjs';
import { suite } from './harness.mjs';
import { IO_BACKENDS, backendLabel } from './helpers.mjs';
import { outcome, until, within } from './io-helpers.mjs';

/** The virtual backend, made where this file can count its network's descriptors. */
const COUNTED_VIRTUAL = `${fileURLToPath(new URL('./fixtures/backends.mjs', import.meta.url))}:countedVirtual`;

/**
 * Open sockets but Unix ones: the process's (Linux), or the virtual
 * network's descriptors. Only network sockets, as a runtime opens
 * descriptors of its own as it goes (Deno: its cache files, Unix socket
 * pairs); the cases here use TCP only.
 */
function openDescriptors(spec) {
  if (spec === COUNTED_VIRTUAL) return virtualBackends[virtualBackends.length - 1].openDescriptors();
  const unix = new Set();
  for (const line of readFileSync('/proc/self/net/unix', 'utf8').split('\n').slice(1)) {
    const inode = line.trim().split(/\s+/)[6];
    if (inode !== undefined) unix.add(inode);
  }
  let sockets = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const link = readlinkSync(`/proc/self/fd/${fd}`);
      if (link.startsWith('socket:[') && !unix.has(link.slice(8, -1))) sockets++;
    } catch {
      // Closed since it was listed.
    }
  }
  return sockets;
}

/**
 * Runs `fn(loop, virtual)` on a fresh loop of `backend`; afterwards the
 * loop's timers, watchers and expected completions are back to none, the
 * descriptors where they were, and nothing was reported.
 */
async function onLoop(backend, fn) {
  const spec = backend === 'virtual' ? COUNTED_VIRTUAL : backend;
  const loop = await createLoop({ backend: spec });
  const reports = [];
  loop.setExceptionHandler((_loop, context) => reports.push(`${context.message}: ${context.error}`));
  try {
    const before = openDescriptors(spec);
    await loop.runUntilComplete(() => fn(loop, backend === 'virtual'));
    await loop.runUntilComplete(() =>
      until(
        loop,
        () => openDescriptors(spec) <= before,
        'descriptors back',
        () => `(${openDescriptors(spec)} > ${before})`,
      ),
    );
    const { timersPending, watchers, completionsPending } = loop.stats();
    assert.equal(
      { timersPending, watchers, completionsPending },
      { timersPending: 0, watchers: 0, completionsPending: 0 },
    );
    assert.equal(reports, [], 'nothing was reported');
  } finally {
    await loop.close();
  }
}

const text = (bytes) => (bytes === null ? null : Buffer.from(bytes).toString());

/** A read's outcome once the peer ends or drops the connection: null, or the reset it saw. */
async function endOf(conn) {
  const { value, error } = await within(outcome(conn.read()), 'the end of the stream');
  if (error !== undefined && !/ECONNRESET|EPIPE/.test(String(error))) throw error;
  return value ?? null;
}

/** Reads `conn` to its end (or a reset), discarding. */
async function drain(conn) {
  while ((await endOf(conn)) !== null) {
    // Discarded.
  }
}

/** An echo handler that records how it ended. */
function echo(ended) {
  return async (conn) => {
    try {
      for await (const chunk of conn) await conn.write(chunk);
      ended.push('end');
    } catch (error) {
      ended.push(error);
      throw error;
    }
  };
}

/** Writes `message` and reads its echo. */
async function roundTrip(conn, message) {
  await conn.write(message);
  assert.is(text(await within(conn.read(), `the echo of ${message}`)), message);
}

/** Writes `message` and reads its echo: null, or how the connection failed instead (the peer closed it). */
async function echoFailure(conn, message) {
  const wrote = await outcome(conn.write(message));
  if (wrote.error !== undefined) return String(wrote.error);
  const { value, error } = await within(outcome(conn.read()), `the echo of ${message}`);
  if (error !== undefined) return String(error);
  if (value === null) return 'the end of the stream';
  assert.is(text(value), message);
  return null;
}

for (const backend of IO_BACKENDS) {
  const label = backendLabel(backend);
  const test = suite(`limits on '${label}'`);
  // Short on real time (the cases wait it out); exact on virtual time.
  const idle = (virtual) => (virtual ? 1000 : 200);

  test('maxConnections: one more is accepted and closed at once, and counted; room again after a close', () =>
    onLoop(backend, async (loop) => {
      const ended = [];
      const server = await loop.createServer(echo(ended), { port: 0, maxConnections: 2 });
      const port = server.address().port;
      const first = await loop.createConnection({ port });
      const second = await loop.createConnection({ port });
      await roundTrip(first, 'one');
      await roundTrip(second, 'two');
      const third = await loop.createConnection({ port });
      assert.is(await endOf(third), null, 'the third reads the end of the stream, not a wait in the backlog');
      assert.is(loop.stats().connectionsRefused, 1);
      assert.is(server.connections, 2);
      third.close();
      first.close();
      await until(
        loop,
        () => server.connections === 1,
        'the first one gone',
        () => `(${server.connections})`,
      );
      const fourth = await loop.createConnection({ port });
      await roundTrip(fourth, 'four');
      assert.is(loop.stats().connectionsRefused, 1, 'the fourth got in');
      second.close();
      fourth.close();
      await within(server.close(), 'server.close()');
      assert.equal(ended, ['end', 'end', 'end']);
    }));

  test('maxConnections on a protocol server: the protocol of one too many is never made', () =>
    onLoop(backend, async (loop) => {
      let made = 0;
      const server = await loop.createProtocolServer(
        () => {
          made++;
          return { connectionMade: (t) => t.write('hi') };
        },
        { port: 0, maxConnections: 1 },
      );
      const port = server.address().port;
      const first = await loop.createConnection({ port });
      assert.is(text(await within(first.read(), 'the greeting')), 'hi');
      const second = await loop.createConnection({ port });
      assert.is(await endOf(second), null);
      assert.is(made, 1);
      assert.is(loop.stats().connectionsRefused, 1);
      first.close();
      second.close();
      server.abortClients();
      await within(server.close(), 'server.close()');
    }));

  test('idleTimeoutMs: activity keeps a connection open; idle, it is closed and its read rejects with TimeoutError', () =>
    onLoop(backend, async (loop, virtual) => {
      const ms = idle(virtual);
      const ended = [];
      const server = await loop.createServer(echo(ended), { port: 0, idleTimeoutMs: ms });
      const port = server.address().port;
      // Three times half the limit, each with a round trip: never idle for
      // long enough. On a real clock a busy machine can stall the loop for
      // longer than that between two round trips, and the server then
      // rightly closes the connection: the client sees that at least `ms`
      // after its last message, and the case starts over on a new one.
      // Seen any sooner, the activity did not keep the connection open.
      let client = null;
      for (let attempt = 1; client === null; attempt++) {
        const opened = loop.time();
        const conn = await loop.createConnection({ port });
        // The server's last activity on the connection was no earlier than this.
        let activeSince = opened;
        for (const message of ['a', 'b', 'c']) {
          await loop.sleep(ms / 2);
          const sent = loop.time();
          const failure = await echoFailure(conn, message);
          if (failure !== null) {
            const idleFor = loop.time() - activeSince;
            assert.ok(!virtual && idleFor >= ms, `closed ${idleFor} ms after the last activity (${failure})`);
            assert.ok(attempt < 20, `the loop stalled for ${ms} ms in each of ${attempt} attempts`);
            conn.close();
            break;
          }
          activeSince = sent;
          if (message === 'c') client = conn;
        }
      }
      const endedBefore = ended.length;
      const timedOutBefore = loop.stats().connectionsTimedOut;
      const lastActivity = loop.time();
      assert.is(await endOf(client), null, 'the server closed it');
      if (virtual) assert.is(loop.time(), lastActivity + ms, 'exactly idleTimeoutMs after the last round trip');
      await until(loop, () => ended.length === endedBefore + 1, 'the handler ended');
      const timedOut = ended.at(-1);
      assert.instance(timedOut, TimeoutError);
      assert.is(timedOut.name, 'TimeoutError');
      assert.is(timedOut.timeoutMs, ms);
      assert.match(timedOut.message, /idle for idleTimeoutMs/);
      assert.is(loop.stats().connectionsTimedOut, timedOutBefore + 1);
      client.close();
      await within(server.close(), 'server.close()');
    }));

  test('idleTimeoutMs on createConnection: a pending read and a pending write both reject with TimeoutError', () =>
    onLoop(backend, async (loop, virtual) => {
      const ms = idle(virtual);
      const kept = [];
      // The server never reads: the client's large write stalls once the buffers fill.
      const server = await loop.createServer((conn) => void kept.push(conn), { port: 0 });
      const client = await loop.createConnection({ port: server.address().port, idleTimeoutMs: ms });
      const write = outcome(client.write(new Uint8Array(64 * 1024 * 1024)));
      const read = outcome(client.read());
      const [w, r] = await within(Promise.all([write, read]), 'both operations');
      assert.instance(w.error, TimeoutError, `the write: ${w.error}`);
      assert.instance(r.error, TimeoutError, `the read: ${r.error}`);
      assert.is(client.closed, true);
      assert.is(loop.stats().connectionsTimedOut, 1);
      await until(loop, () => kept.length === 1, 'the server side');
      await drain(kept[0]);
      kept[0].close();
      await within(server.close(), 'server.close()');
    }));

  test('readTimeoutMs: the read rejects with TimeoutError, the connection stays open and loses nothing', () =>
    onLoop(backend, async (loop, virtual) => {
      const ms = idle(virtual);
      const seen = [];
      // Reads of the frame's rest that timed out too: on a real clock, a busy
      // machine can keep the client from sending it for readTimeoutMs.
      let stalled = 0;
      const server = await loop.createServer(
        async (conn) => {
          const start = loop.time();
          seen.push(await outcome(conn.read()));
          if (virtual) seen.push(loop.time() - start);
          // A framed read that gets part of its frame, then nothing: what it read is kept.
          seen.push(await outcome(conn.readExactly(4)));
          let frame = await outcome(conn.readExactly(4));
          while (!virtual && frame.error instanceof TimeoutError) {
            stalled++;
            frame = await outcome(conn.readExactly(4));
          }
          if (frame.error !== undefined) throw frame.error;
          seen.push(text(frame.value));
          await conn.write('still open');
        },
        { port: 0, readTimeoutMs: ms },
      );
      const client = await loop.createConnection({ port: server.address().port });
      await until(loop, () => seen.length >= (virtual ? 2 : 1), 'the first read timed out');
      await client.write('ab');
      await until(loop, () => seen.length >= (virtual ? 3 : 2), 'the framed read timed out');
      await client.write('cd');
      assert.is(text(await within(client.read(), 'the reply')), 'still open');
      const [first, ...rest] = virtual ? [seen[0], ...seen.slice(2)] : seen;
      assert.instance(first.error, TimeoutError);
      assert.match(first.error.message, /read: no data arrived within readTimeoutMs/);
      if (virtual) assert.is(seen[1], ms, 'the read waited exactly readTimeoutMs');
      assert.instance(rest[0].error, TimeoutError, 'the framed read timed out too');
      assert.is(rest[1], 'abcd', 'the framed read that timed out lost nothing');
      assert.is(loop.stats().readsTimedOut, 2 + stalled);
      assert.is(loop.stats().connectionsTimedOut, 0);
      assert.is(await endOf(client), null);
      client.close();
      await within(server.close(), 'server.close()');
    }));

  test('idleTimeoutMs on protocols: connectionLost(TimeoutError) on the server and on a client', () =>
    onLoop(backend, async (loop, virtual) => {
      const ms = idle(virtual);
      const lost = [];
      const server = await loop.createProtocolServer(
        () => ({
          dataReceived(data) {
            this.transport.write(data);
          },
          connectionMade(t) {
            this.transport = t;
          },
          connectionLost: (error) => lost.push(['server', error]),
        }),
        { port: 0, idleTimeoutMs: ms },
      );
      const port = server.address().port;
      const replies = [];
      const { transport } = await loop.createProtocolConnection(
        () => ({
          dataReceived: (data) => replies.push(text(data)),
          connectionLost: (error) => lost.push(['client', error]),
        }),
        { port },
      );
      transport.write('ping');
      await until(loop, () => lost.length === 2, 'both ends lost');
      // The echo came before the end, unless a busy machine kept the server
      // from reading for idleTimeoutMs after it accepted (never on virtual time).
      if (virtual || replies.length > 0) assert.equal(replies, ['ping'], 'the echo');
      const byEnd = Object.fromEntries(lost);
      assert.instance(byEnd.server, TimeoutError);
      assert.is(byEnd.server.timeoutMs, ms);
      // The client's own connection, with a limit of its own, from the client side.
      const clientLost = [];
      await loop.createProtocolConnection(() => ({ connectionLost: (error) => clientLost.push(error) }), {
        port,
        idleTimeoutMs: ms / 2,
      });
      await until(loop, () => clientLost.length === 1, 'the client timed out');
      assert.instance(clientLost[0], TimeoutError);
      assert.is(clientLost[0].timeoutMs, ms / 2);
      // The server's end goes too, closed by the client; or timed out itself
      // where a busy machine let both limits pass before the loop ran again
      // (never on virtual time).
      await until(loop, () => lost.length === 3, "the server's end of it");
      const serverTimedOut = lost[2][1] instanceof TimeoutError;
      assert.ok(!(virtual && serverTimedOut), "on virtual time the client's shorter limit runs out first");
      assert.is(loop.stats().connectionsTimedOut, serverTimedOut ? 3 : 2);
      server.abortClients();
      await within(server.close(), 'server.close()');
    }));

  test.run();
}

const input = suite('limits: bad input');

input('each option is checked, naming it; unknown and misplaced ones are refused', async () => {
  const loop = await createLoop({ backend: 'virtual' });
  const handler = () => undefined;
  const factory = () => ({});
  const rejects = async (promise, type, pattern) => {
    const { error } = await outcome(promise);
    assert.instance(error, type, String(error));
    assert.match(error.message, pattern);
  };
  for (const [bad, type] of [
    [0, RangeError],
    [-1, RangeError],
    [Number.NaN, TypeError],
    ['5', TypeError],
    [null, TypeError],
  ]) {
    await rejects(
      loop.createServer(handler, { port: 0, idleTimeoutMs: bad }),
      type,
      /createServer: idleTimeoutMs must be/,
    );
    await rejects(
      loop.createConnection({ port: 1, readTimeoutMs: bad }),
      type,
      /createConnection: readTimeoutMs must be/,
    );
  }
  for (const [bad, type] of [
    [0, RangeError],
    [1.5, RangeError],
    [-3, RangeError],
    [2 ** 31, RangeError],
    ['3', TypeError],
  ]) {
    await rejects(
      loop.createServer(handler, { port: 0, maxConnections: bad }),
      type,
      /createServer: maxConnections must be/,
    );
  }
  await rejects(
    loop.createProtocolServer(factory, { port: 0, readTimeoutMs: 10 }),
    TypeError,
    /createProtocolServer: readTimeoutMs bounds a stream's read\(\), and a protocol has none/,
  );
  await rejects(loop.createProtocolConnection(factory, { port: 1, readTimeoutMs: 10 }), TypeError, /readTimeoutMs/);
  await rejects(
    loop.createConnection({ port: 1, maxConnections: 3 }),
    TypeError,
    /createConnection: unknown option 'maxConnections'/,
  );
  await rejects(
    loop.createServer(handler, { port: 0, timeout: 5 }),
    TypeError,
    /unknown option 'timeout' \(did you mean 'idleTimeoutMs'\?\)/,
  );
  await rejects(loop.createServer(handler, { port: 0, maxconn: 5 }), TypeError, /did you mean 'maxConnections'/);
  assert.is(loop.stats().watchers, 0, 'nothing was opened');
  // Infinity is none: accepted.
  const server = await loop.runUntilComplete(() =>
    loop.createServer(handler, { port: 0, maxConnections: Infinity, idleTimeoutMs: Infinity, readTimeoutMs: Infinity }),
  );
  await loop.runUntilComplete(() => server.close());
  await loop.close();
});

input.run();
